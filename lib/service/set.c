/*
 * service/set.c - the shadow set coordinator (set.h): one set of shadows,
 * of any providers, at one instant, or nothing at all.  It knows providers
 * only through their operations and the member fields their prepare fills
 * in (a gate to close, a filesystem to freeze), and filesystems only
 * through svc->freezer, so that tests/service/test_set.c drives it with fake
 * ones, without root.
 *
 * Taking a set, all under svc->lock (the order matters):
 *   1. pick a provider per target (provider.h) and prepare it: the built-in
 *      one resolves the target to a volume and refuses to freeze a
 *      filesystem that holds the service's state, run directory, or a
 *      volume's backing file or diff area (the copy-on-write would wait for
 *      the very filesystem it froze); refuse a volume twice.  Other
 *      providers' filesystems are never frozen (a btrfs snapshot of a frozen
 *      btrfs waits for the thaw);
 *   2. settle the filesystems to freeze (freezer->settle: their loop
 *      devices switched to direct I/O, which writes the device tree's page
 *      cache under them back, and their own dirty pages synced, so that
 *      the freeze has little to write),
 *      start the guardian for them (guardian.h), settle them again (what
 *      was dirtied while the guardian started; a settle that took half
 *      the guardian's bound aborts the set before anything is frozen,
 *      since a bound that passed before FIFREEZE would leave what we
 *      freeze unguarded), then FIFREEZE each: the
 *      filesystem flushes itself through its loop device and our device
 *      (the writeback cache's dirty pages, then FSYNC) into the engine, and
 *      the loop device is flushed once more, so it is clean on the volume;
 *   3. close the gate of every volume of the set (vol->wgate for writing):
 *      writes in flight finish, new ones wait, reads go on; every write
 *      acknowledged until now is in the engine;
 *   2b. every member whose provider holds its target does so (LVM: a
 *      device-mapper suspend, which freezes the filesystem; the guardian
 *      resumes it if vssd dies);
 *   4. every member's provider commits (one engine shadow per volume, one btrfs
 *      snapshot per subvolume, one LVM snapshot per LV, which resumes it):
 *      the set's single instant.  A member nothing can hold (m->own_instant:
 *      a thin LV, which lvcreate must suspend itself) commits first, while
 *      every other member is still frozen, gated or held, so no write its
 *      shadow holds can depend on one the others miss; a set takes at most
 *      one such member (refused at step 1, before anything is frozen); then
 *      the members whose commit resumes nothing, then the held ones;
 *   5. open the gates, resume what a failed commit left held, FITHAW in
 *      reverse order, release the guardian, give the loop devices their
 *      cache back;
 *   6. adopt the shadows (devices, catalog rows, the service's list).
 * A set that spans hosts (p->sync: peer.h) meets the other hosts at each
 * step (set.h, enum svc_set_step): after 1, before and after 2, before and
 * after 4, before 5.  A step that fails (a peer failed, went away or did
 * not answer in time) aborts the set here like a local failure, and the
 * other hosts are told (sync->abort) so that they abort theirs.
 * With allow_live a member whose provider fails at prepare or commit is
 * read live instead (fall_back; after a failed commit, once the set is
 * thawed), the reply saying so for that member (m->fallback).
 * A member records how far it got (prepared, frozen, taken), and every way
 * out goes through abort_set(), which undoes exactly that: the shadows
 * already taken are deleted, the ones adopted removed.  Every path thaws
 * what it froze, and the guardian covers a crash.  A freeze longer than
 * svc->freeze_limit_ms (VSS_FREEZE_LIMIT_MS; the guardian thawed on its
 * own) aborts the set: what it holds may not be consistent.  This is the
 * "commit" step of a backup's life (backup.c), and the only place a set is
 * made.
 *
 * Invariants (asserted where they are relied on):
 *  - svc->lock is held throughout;
 *  - a member commits only once prepared, with every gate of the set closed
 *    and every filesystem to freeze frozen; a gate belongs to one member;
 *  - on return no gate is closed and no filesystem frozen; every member is
 *    adopted (its shadow listed with its catalog row) or aborted (neither
 *    prepared nor taken), and on failure no shadow of the set is listed.
 * Nothing is left frozen even if vssd dies: the guardian thaws what it
 * holds (guardian.h).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "service/fs.h"
#include "service/guardian.h"
#include "service/log.h"
#include "service/loop.h"
#include "service/service_i.h"
#include "service/set.h"
#include "service/shadows.h"
#include "service/volumes.h"

/* ---- the real freezer: the guardian and FIFREEZE ---- */

static int fs_guard(struct vss_service *svc, const char *const *dirs, size_t n,
		    const dev_t *held, size_t nheld, void **guard, struct vss_error *err)
{
	struct vss_guardian_config cfg = {
		.limit_ms = svc->freeze_limit_ms, .server = getpid(),
		.device_tree = svc->dev_dir, .resume = held, .n_resume = nheld,
	};

	return vss_guardian_start(dirs, n, &cfg, (struct vss_guardian **)guard, err);
}

/*
 * The settle (doc/service.md, "Freeze time").  A mounted volume's loop
 * device writes through the device tree's page cache (the write path and
 * caching); for the settle it is switched to direct I/O, so that its
 * writes reach the engine before they are acknowledged and nothing new is
 * dirtied above it while the filesystem syncs: the freeze finds the cache
 * clean.  Bounding the tree's dirty pages low instead (how it was done
 * before) throttled every writer of the tree in balance_dirty_pages, and
 * each such throttled period lowered the bdi's dirty_ratelimit, which
 * recovers only slowly: after some tens of sets, writes to every vss
 * volume ran at a fraction of their speed.
 */
static void fs_settle(struct vss_service *svc, const char *const *dirs,
		      const char *const *loops, bool *switched, size_t n, bool on)
{
	int rc;

	(void)svc;
	for (size_t i = 0; i < n; i++) {
		if (!loops[i] || (!on && !switched[i]) || (on && switched[i]))
			continue;
		/* Only ever the loop device of what vss mounted (a loop device
		 * freed by an unmount may be someone else's by now). */
		if (on && !vss_fs_mounted_from(loops[i], dirs[i]))
			continue;
		rc = vss_loop_set_direct(loops[i], on);
		if (rc < 0)
			vss_log("cannot switch %s %s direct I/O: %s", loops[i],
				on ? "to" : "back from", strerror(-rc));
		else if (on)
			switched[i] = rc == 0;
		else
			switched[i] = false;
	}
	for (size_t i = 0; on && i < n; i++) {
		int fd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		/* Freezing checks the mount properly; this is only a head start. */
		if (fd >= 0) {
			syncfs(fd);
			close(fd);
		}
	}
}

static int fs_freeze(const char *dir, const char *loop, const char *volume,
		     struct vss_error *err)
{
	int rc, fd;

	/* Only ever freeze what vss mounted on its own volume. */
	if (!vss_fs_mounted_from(loop, dir))
		return vss_error_set(err, -ESTALE, "%s is no longer mounted from volume %s", dir,
				     volume);
	if ((rc = vss_fs_freeze(dir, err)) < 0)
		return rc;
	/* The loop device's flush fsyncs our device file: the kernel writes
	 * its dirty pages back, then the engine flushes.  FIFREEZE did it
	 * already unless the filesystem was mounted without barriers; this is
	 * cheap when there is nothing left. */
	fd = open(loop, O_RDONLY | O_CLOEXEC);
	rc = fd < 0 || fsync(fd) < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	if (rc < 0) {
		vss_error_set(err, rc, "cannot flush %s (volume %s) once frozen: %s", loop,
			      volume, strerror(-rc));
		if (vss_fs_thaw(dir, NULL) < 0)
			vss_log("volume %s: %s stays frozen until the guardian thaws it", volume,
				dir);
	}
	return rc;
}

static int fs_release(void *guard)
{
	return vss_guardian_finish(guard);
}

const struct svc_freezer_ops svc_freezer_fs = {
	.settle = fs_settle,
	.guard = fs_guard,
	.freeze = fs_freeze,
	.thaw = vss_fs_thaw,
	.release = fs_release,
};

/* ---- the coordinator ---- */

/* The meeting with the set's other hosts at @step, if the set spans hosts. */
static int sync_step(const struct svc_set_params *p, const struct svc_set *set,
		     enum svc_set_step step, int64_t deadline_ms, struct vss_error *err)
{
	return p->sync ? p->sync->step(p->sync->ctx, set, step, deadline_ms, err) : 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double ms_between(uint64_t a, uint64_t b)
{
	return (double)(b - a) / 1e6;
}

/* What the devices of the set's volumes did (struct svc_volume_io), summed:
 * taken between the set's steps for its log line. */
struct set_io {
	uint64_t bytes, flushes, flush_ns, flush_max_ns;
};

/* The sums now; with @clear, the longest flush starts again from 0. */
static struct set_io set_io_now(struct vss_service *svc, const struct svc_set *set, bool clear)
{
	struct set_io io = { 0 };

	for (size_t i = 0; i < set->n; i++) {
		struct svc_volume *v = set->m[i].volume ? svc_volume_find(svc, set->m[i].volume)
						      : NULL;
		uint64_t max;

		if (!v)
			continue;
		io.bytes += atomic_load_explicit(&v->io.write_bytes, memory_order_relaxed);
		io.flushes += atomic_load_explicit(&v->io.flushes, memory_order_relaxed);
		io.flush_ns += atomic_load_explicit(&v->io.flush_ns, memory_order_relaxed);
		max = clear ? atomic_exchange_explicit(&v->io.flush_max_ns, 0, memory_order_relaxed)
			    : atomic_load_explicit(&v->io.flush_max_ns, memory_order_relaxed);
		if (max > io.flush_max_ns)
			io.flush_max_ns = max;
	}
	return io;
}

void svc_set_free(struct svc_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		free(set->m[i].warning);
		free(set->m[i].fallback);
		free(set->m[i].device);
	}
	free(set);
}

/*
 * The set fails: every shadow of it already listed is removed, every member
 * still prepared is aborted (its shadow deleted if taken).  Nothing is
 * frozen or gated any more (the steps undo those before they fail).
 */
static void abort_set(struct vss_service *svc, struct svc_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		struct svc_member *m = &set->m[i];

		assert(!m->frozen);
		if (set->shadows[i])
			svc_shadow_remove(svc, set->shadows[i], NULL);
		set->shadows[i] = NULL;
		if (m->prepared)
			m->prov->abort(svc, m);
		m->prepared = m->taken = false;
	}
}

/*
 * A member whose provider failed at @step ("prepare" or "commit", with @rc
 * and @err saying why) is read live instead when the requester allows it
 * (p->allow_live) and the live provider takes its target: m->fallback says
 * so, for the reply and the log; never silently.  Called with the member
 * not prepared (a failed prepare undoes itself; a failed commit is aborted
 * first), outside the freeze.  0 once it is prepared live, else @rc.
 */
static int fall_back(struct vss_service *svc, struct svc_member *m,
		     const struct svc_set_params *p, const char *step, int rc,
		     struct vss_error *err)
{
	const struct vss_provider_ops *live = NULL;
	const char *failed = m->prov->name;
	char why[VSS_ERROR_MSG_MAX];
	struct vss_error lerr = { 0 };

	for (size_t i = 0; svc->providers[i]; i++)
		if (svc->providers[i]->caps & SVC_PROVIDER_LIVE)
			live = svc->providers[i];
	if (!p->allow_live || !live || (m->prov->caps & SVC_PROVIDER_LIVE) ||
	    live->supports(svc, m->target, &lerr) < 0)
		return rc;
	snprintf(why, sizeof(why), "%s", err->msg);
	free(m->device);
	m->device = NULL;
	m->volume = NULL;
	m->gate = NULL;
	m->freeze_dir = m->freeze_loop = NULL;
	m->hold_dev = 0;
	m->own_instant = NULL;
	m->priv = NULL;
	m->prov = live;
	if (live->prepare(svc, m, &lerr) < 0)
		return rc;      /* the provider's failure is the one to report */
	free(m->fallback);
	if (asprintf(&m->fallback, "%s: provider %s failed at %s (%s): read live instead "
		     "(--allow-live)", m->target, failed, step, why) < 0) {
		m->fallback = NULL;
		live->abort(svc, m);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	vss_log("%s", m->fallback);
	return 0;
}

/* 1. A provider per target, each prepared; a gate belongs to one member.
 * The filesystems to freeze go into @dirs. */
static int prepare_members(struct vss_service *svc, struct svc_set *set,
			   const struct svc_set_params *p, const char **dirs,
			   struct vss_error *err)
{
	int rc;

	for (size_t i = 0; i < set->n; i++) {
		struct svc_member *m = &set->m[i];

		m->target = p->targets[i];
		uuid_generate_random(m->id);
		m->set_id = set->uuid;
		m->persistent = p->persistent;
		m->no_writers = p->no_writers;
		if ((rc = svc_provider_select(svc, m->target, p->provider, p->allow_live,
					      &m->prov, &m->warning, err)) < 0)
			return rc;
		if ((rc = m->prov->prepare(svc, m, err)) < 0 &&
		    (rc = fall_back(svc, m, p, "prepare", rc, err)) < 0)
			return rc;
		m->prepared = true;
		if (m->warning)
			vss_log("set %s: %s%s", set->id, m->warning,
				m->prov->caps & SVC_PROVIDER_LIVE ? " (read live: --allow-live)" : "");
		for (size_t j = 0; m->gate && j < i; j++)
			if (set->m[j].gate == m->gate)
				return vss_error_set(err, -EINVAL, "volume %s is in the set twice "
						     "(%s and %s)", m->volume ? m->volume : "",
						     set->m[j].target, m->target);
		for (size_t j = 0; m->own_instant && j < i; j++)
			if (set->m[j].own_instant)
				return vss_error_set(err, -EINVAL, "%s (%s) and %s (%s) cannot be "
						     "in one set: neither can be held still while "
						     "the other is snapshotted, so the set would be "
						     "two instants, not one; take them in separate "
						     "sets (a set takes at most one thin LV)",
						     set->m[j].target, set->m[j].own_instant,
						     m->target, m->own_instant);
		if (m->freeze_dir)
			dirs[set->nfreeze++] = m->freeze_dir;
	}
	return svc_provider_check_freeze(svc, set->m, set->n, dirs, set->nfreeze, err);
}

/* 2. Freezes every member's filesystem (the guardian already holds them). */
static int freeze_members(struct vss_service *svc, struct svc_set *set, struct vss_error *err)
{
	int rc = 0;

	for (size_t i = 0; i < set->n && rc == 0; i++) {
		struct svc_member *m = &set->m[i];

		if (!m->freeze_dir)
			continue;
		rc = svc->freezer->freeze(m->freeze_dir, m->freeze_loop, m->volume, err);
		m->frozen = rc == 0;
	}
	return rc;
}

/* 2b. Every hold, after the freezes and before the first commit: one
 * instant for the held members too (the guardian already covers them). */
static int hold_members(struct vss_service *svc, struct svc_set *set, struct vss_error *err)
{
	int rc = 0;

	for (size_t i = 0; i < set->n && rc == 0; i++) {
		struct svc_member *m = &set->m[i];

		if (m->prov->hold) {
			rc = m->prov->hold(svc, m, err);
			m->held = rc == 0;
		}
	}
	return rc;
}

/* 5a. What a failed or skipped commit left held is resumed, newest first. */
static void unhold_members(struct vss_service *svc, struct svc_set *set)
{
	for (size_t i = set->n; i-- > 0;)
		if (set->m[i].held) {
			set->m[i].prov->unhold(svc, &set->m[i]);
			set->m[i].held = false;
		}
}

/* 3, 4: every gate closed, every member commits, the gates open again.  A
 * member whose commit fails while live reads are allowed is marked
 * (@failed, with why) and the others go on: it falls back after the thaw
 * (commit_fallbacks), nothing of it being made. */
static int commit_members(struct vss_service *svc, struct svc_set *set,
			  const struct svc_set_params *p, char **failed, struct vss_error *err)
{
	int rc = 0;

	for (size_t i = 0; i < set->n; i++)
		if (set->m[i].gate)
			pthread_rwlock_wrlock(set->m[i].gate);
	for (size_t k = 0; k < 3 * set->n && rc == 0; k++) {
		size_t i = k % set->n;
		struct svc_member *m = &set->m[i];

		/* In three passes: the member that makes its own instant, then the
		 * others whose commit ends nothing, then the held ones (a classic
		 * LV's commit resumes it): until the last pass nothing of the set
		 * takes writes, so the one un-held member's instant is the set's. */
		if (k / set->n != (m->own_instant ? 0u : !m->prov->hold ? 1u : 2u))
			continue;
		assert(m->prepared && !m->taken);
		assert(!m->freeze_dir || m->frozen);
		assert(!m->prov->hold || m->held);
		rc = m->prov->commit(svc, m, err);
		m->taken = rc == 0;
		if (rc < 0 && p->allow_live && !(m->prov->caps & SVC_PROVIDER_LIVE) &&
		    (failed[i] = strdup(err->msg)))
			rc = 0;
	}
	for (size_t i = set->n; i-- > 0;)
		if (set->m[i].gate)
			pthread_rwlock_unlock(set->m[i].gate);
	return rc;
}

/* After the thaw: each member whose commit failed (@failed[i], why) is
 * aborted and read live instead, or the set fails with its error. */
static int commit_fallbacks(struct vss_service *svc, struct svc_set *set,
			    const struct svc_set_params *p, char **failed, struct vss_error *err)
{
	int rc = 0;

	for (size_t i = 0; i < set->n && rc == 0; i++) {
		struct svc_member *m = &set->m[i];

		if (!failed[i])
			continue;
		m->prov->abort(svc, m);
		m->prepared = false;
		vss_error_set(err, -EIO, "%s", failed[i]);
		if ((rc = fall_back(svc, m, p, "commit", -EIO, err)) < 0)
			break;
		m->prepared = true;
		if ((rc = m->prov->commit(svc, m, err)) == 0)
			m->taken = true;
	}
	return rc;
}

/* 5. Thaws what was frozen, newest first. */
static void thaw_members(struct vss_service *svc, struct svc_set *set)
{
	for (size_t i = set->n; i-- > 0;) {
		struct svc_member *m = &set->m[i];
		struct vss_error terr;

		if (m->frozen && svc->freezer->thaw(m->freeze_dir, &terr) < 0)
			vss_log("set %s: %s", set->id, terr.msg);
		m->frozen = false;
	}
}

/* 6. Each member becomes a listed shadow with its catalog row. */
static int adopt_members(struct vss_service *svc, struct svc_set *set,
			 const struct svc_set_params *p, struct vss_error *err)
{
	int rc;

	for (size_t i = 0; i < set->n; i++) {
		struct svc_member *m = &set->m[i];
		struct svc_shadow *sh = calloc(1, sizeof(*sh));

		if (!sh || !(sh->rec.target = strdup(m->target))) {
			free(sh);
			return vss_error_set(err, -ENOMEM, "out of memory");
		}
		sh->prov = m->prov;
		svc_id_str(m->id, sh->rec.id);
		memcpy(sh->rec.set_id, set->id, sizeof(set->id));
		if (m->volume)
			snprintf(sh->rec.volume, sizeof(sh->rec.volume), "%s", m->volume);
		sh->rec.created_ns = svc_now_ns();
		if (p->sync && p->sync->coordinator)
			snprintf(sh->rec.coordinator, sizeof(sh->rec.coordinator), "%s",
				 p->sync->coordinator);
		sh->rec.attrs = (p->persistent ? VSS_CATALOG_ATTR_PERSISTENT : 0) |
				(p->no_writers ? VSS_CATALOG_ATTR_NO_WRITERS : 0) |
				m->prov->catalog_attr;
		sh->owner = p->owner;
		/* Listed first: a failure below removes it like any other shadow. */
		svc_provider_list_add(svc, sh);
		set->shadows[i] = sh;
		m->taken = false;
		m->prepared = false;
		if ((rc = m->prov->adopt(svc, m, sh, err)) < 0 ||
		    (rc = vss_catalog_shadow_put(svc->cat, &sh->rec, err)) < 0)
			return rc;
	}
	return 0;
}

int svc_set_take(struct vss_service *svc, const struct svc_set_params *p,
		 struct svc_set **out, struct vss_error *err)
{
	const char *dirs[SVC_SET_MAX], *loops[SVC_SET_MAX];
	bool switched[SVC_SET_MAX] = { false };
	dev_t held[SVC_SET_MAX];
	size_t nheld = 0;
	char how[48] = "";
	char *failed[SVC_SET_MAX] = { NULL };  /* why each member's commit failed */
	struct svc_set *set;
	void *guard = NULL;
	uint64_t t_settle, t_settled, t_guarded = 0, t_freeze = 0, t_frozen = 0, t_thawed = 0;
	uint64_t t_gate, t_open;
	struct set_io io_settle = { 0 }, io_freeze = { 0 }, io_frozen = { 0 }, io_open = { 0 };
	struct set_io io_thawed = { 0 };
	int64_t deadline_ms;
	bool settled = false;
	int rc, grc = 0;

	svc_assert_locked(svc);
	*out = NULL;
	if (p->n > SVC_SET_MAX || (p->n == 0 && !p->sync))
		return vss_error_set(err, -E2BIG, "a set holds 1 to %d targets", SVC_SET_MAX);
	if (!(set = calloc(1, sizeof(*set))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	set->n = p->n;
	if (p->sync && p->sync->set_id) {
		if (svc_id_parse(p->sync->set_id, set->uuid) < 0) {
			free(set);
			return vss_error_set(err, -EINVAL, "\"%s\" is not a set ID",
					     p->sync->set_id);
		}
	} else {
		uuid_generate_random(set->uuid);
	}
	svc_id_str(set->uuid, set->id);
	if ((rc = prepare_members(svc, set, p, dirs, err)) < 0 ||
	    (rc = sync_step(p, set, SVC_SET_PREPARED, 0, err)) < 0)
		goto abort;
	for (size_t i = 0, j = 0; i < set->n; i++) {
		if (set->m[i].hold_dev)
			held[nheld++] = set->m[i].hold_dev;
		if (set->m[i].freeze_dir)  /* in the order of dirs */
			loops[j++] = set->m[i].freeze_loop;
	}
	/* 2. freeze: settled, then the guardian, so that nothing stays frozen
	 * whatever happens, then settled again: what was dirtied while the
	 * guardian started is written back too, not inside the freeze */
	settled = set->nfreeze > 0 && svc->freezer->settle;
	io_settle = set_io_now(svc, set, false);
	t_settle = mono_ns();
	if (settled)
		svc->freezer->settle(svc, dirs, loops, switched, set->nfreeze, true);
	t_settled = mono_ns();
	if (set->nfreeze > 0 || nheld > 0) {
		if ((rc = svc->freezer->guard(svc, dirs, set->nfreeze, held, nheld, &guard,
					      err)) < 0)
			goto abort;
		t_guarded = mono_ns();
		if (settled)
			svc->freezer->settle(svc, dirs, loops, switched, set->nfreeze, true);
	}
	io_freeze = set_io_now(svc, set, true);
	t_freeze = mono_ns();
	/* Other hosts' members (peer.h) are told to thaw by the guardian's
	 * bound here, which runs from its start. */
	deadline_ms = (int64_t)((t_guarded ? t_guarded : t_freeze) / 1000000u) +
		      svc->freeze_limit_ms;
	/* One that has passed before FIFREEZE would leave nothing to thaw
	 * what we freeze after it (a thaw during a freeze waits for it). */
	if (t_guarded && ms_between(t_guarded, t_freeze) > svc->freeze_limit_ms / 2)
		rc = vss_error_set(err, -ETIMEDOUT, "the filesystems took %.0f ms to write "
				   "back their cached data, more than half the %u ms "
				   "they may stay frozen; the set was aborted before "
				   "freezing them", ms_between(t_guarded, t_freeze),
				   svc->freeze_limit_ms);
	else if ((rc = sync_step(p, set, SVC_SET_FREEZE, deadline_ms, err)) == 0)
		rc = freeze_members(svc, set, err);
	t_frozen = mono_ns();
	io_frozen = set_io_now(svc, set, false);
	if (rc == 0)
		rc = hold_members(svc, set, err);
	if (rc == 0 && (set->nfreeze > 0 || nheld > 0) && svc->test_freeze_hold_ms) {
		vss_log("set %s: holding the freeze for %u ms (test hook)", set->id,
			svc->test_freeze_hold_ms);
		usleep(svc->test_freeze_hold_ms * 1000u);
	}
	if (rc == 0 && (rc = sync_step(p, set, SVC_SET_FROZEN, deadline_ms, err)) == 0)
		rc = sync_step(p, set, SVC_SET_COMMIT, deadline_ms, err);
	/* 3, 4: the set's instant */
	t_gate = mono_ns();
	if (rc == 0)
		rc = commit_members(svc, set, p, failed, err);
	t_open = mono_ns();
	io_open = set_io_now(svc, set, false);
	if (rc == 0 && (rc = sync_step(p, set, SVC_SET_COMMITTED, deadline_ms, err)) == 0)
		rc = sync_step(p, set, SVC_SET_THAW, deadline_ms, err);
	/* 5. resume and thaw, whatever happened */
	unhold_members(svc, set);
	thaw_members(svc, set);
	if (set->nfreeze > 0 || nheld > 0) {
		t_thawed = mono_ns();
		io_thawed = set_io_now(svc, set, false);
		grc = svc->freezer->release(guard);
	}
	if (settled)
		svc->freezer->settle(svc, dirs, loops, switched, set->nfreeze, false);
	settled = false;
	if (rc == 0 && (grc == -ETIMEDOUT || ((set->nfreeze > 0 || nheld > 0) &&
			ms_between(t_freeze, t_thawed) > svc->freeze_limit_ms)))
		rc = vss_error_set(err, -ETIMEDOUT, "the filesystems stayed frozen longer than "
				   "%u ms; the set was aborted", svc->freeze_limit_ms);
	if (rc == 0)
		rc = commit_fallbacks(svc, set, p, failed, err);
	if (rc < 0)
		goto abort;
	/* 6. adopt */
	if ((rc = adopt_members(svc, set, p, err)) < 0)
		goto abort;
	set->frozen_ms = set->nfreeze || nheld ? ms_between(t_freeze, t_thawed) : 0.0;
	set->held_ms = ms_between(t_gate, t_open);
	if (nheld > 0)
		snprintf(how, sizeof(how), " (%zu by a device suspend)", nheld);
	if (set->nfreeze + nheld > 0)
		vss_log("shadow set %s created: %zu shadow%s (%s%s), %zu filesystem%s frozen%s "
			"for %.3f ms, writes held for %.3f ms (before: settle %.3f ms, guardian "
			"%.3f ms, settle %.3f ms; freeze %.3f ms, commit %.3f ms, thaw %.3f ms; "
			"settles wrote back %.0f KiB; in the freeze %.0f KiB written back, %llu "
			"flushes of the engine in %.3f ms, the longest %.3f ms; in the thaw "
			"%llu flushes in %.3f ms)",
			set->id, set->n, set->n == 1 ? "" : "s",
			p->persistent ? "persistent" : "not persistent",
			p->no_writers ? ", no writers" : "", set->nfreeze + nheld,
			set->nfreeze + nheld == 1 ? "" : "s", how, set->frozen_ms, set->held_ms,
			ms_between(t_settle, t_settled), ms_between(t_settled, t_guarded),
			ms_between(t_guarded, t_freeze), ms_between(t_freeze, t_frozen),
			ms_between(t_gate, t_open), ms_between(t_open, t_thawed),
			(double)(io_freeze.bytes - io_settle.bytes) / 1024.0,
			(double)(io_frozen.bytes - io_freeze.bytes) / 1024.0,
			(unsigned long long)(io_frozen.flushes - io_freeze.flushes),
			(double)(io_frozen.flush_ns - io_freeze.flush_ns) / 1e6,
			(double)io_frozen.flush_max_ns / 1e6,
			(unsigned long long)(io_thawed.flushes - io_open.flushes),
			(double)(io_thawed.flush_ns - io_open.flush_ns) / 1e6);
	else
		vss_log("shadow set %s created: %zu shadow%s (%s%s), no filesystem frozen, "
			"writes held for %.3f ms", set->id, set->n, set->n == 1 ? "" : "s",
			p->persistent ? "persistent" : "not persistent",
			p->no_writers ? ", no writers" : "", set->held_ms);
	*out = set;
	for (size_t i = 0; i < SVC_SET_MAX; i++)
		free(failed[i]);
	return 0;
abort:
	if (p->sync && p->sync->abort)
		p->sync->abort(p->sync->ctx, set, err->msg);
	unhold_members(svc, set);
	thaw_members(svc, set);
	if (settled)
		svc->freezer->settle(svc, dirs, loops, switched, set->nfreeze, false);
	abort_set(svc, set);
	vss_log("set %s aborted: %s", set->id, err->msg);
	svc_set_free(set);
	for (size_t i = 0; i < SVC_SET_MAX; i++)
		free(failed[i]);
	return rc;
}
