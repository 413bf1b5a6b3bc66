/*
 * service/retire.c - the end of a shadow its requester no longer waits for
 * (retire.h).  Unmounting a shadow's ext4 that a backup walked means
 * evicting every inode the walk brought in: half a second for 100,000
 * files, which the requester used to wait for.  shadow.delete with
 * "detach" (shadows.c) detaches the mount at once (nothing can reach it by
 * its path from then on) and queues the shadow here, marked retiring (not
 * listed, not exposed again, not deleted twice); this thread then:
 *
 *   1. closes the descriptor that kept the filesystem alive: the kernel
 *      tears it down in this thread and releases the loop device under it
 *      (LO_FLAGS_AUTOCLEAR), unless something else still uses the
 *      filesystem (a file opened in it before the detach);
 *   2. waits until the loop device no longer reads the shadow, up to
 *      RELEASE_WAIT_MS; then
 *   3. deletes the shadow (svc->lock): device, engine, catalog, list.
 *
 * A shadow whose filesystem is still in use after that is held: listed
 * again (state "deleting", sh->retire_held, with the processes that use
 * it in sh->retire_by, looked for every RESCAN_MS at first, then less
 * often: every tenth of the time it has been held, at most RESCAN_MAX_MS,
 * so that a walk of /proc does not cost vssd CPU all day), looked at every
 * RECHECK_MS and deleted once its loop device lets it go.  So no shadow is deleted while something still
 * reads it, but for one bound: a shadow held longer than vssd's
 * --hold-max (what any hold on a set may last) is deleted anyway, its
 * readers named in the log (their reads fail from then on), since a held
 * shadow keeps its diff area growing with every write to its volume.
 *
 * Requests that need the volume's shadows gone (volume.delete,
 * storage.add, storage.delete) wait for those being let go, held or not
 * (svc_retire_wait), up to WAIT_MS, and name what still uses those held.
 *
 * The queue is under retire_lock, which this thread never holds while it
 * waits or takes svc->lock.  vssd's stop (svc_retire_stop) finishes what
 * is queued first, and deletes the shadows still held then (the stop
 * takes their devices away in any case).  A vssd that dies with shadows queued
 * loses its descriptors (the kernel lets the filesystems go) and drops the
 * shadows at its next start, as any non-persistent shadow it left; a
 * filesystem still in use then keeps its loop device until its last user
 * lets go (service.c's cleanup sets it to clear itself then), and that
 * device reads nothing any more (the old FUSE tree is gone).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "service/clock.h"
#include "service/log.h"
#include "service/loop.h"
#include "service/retire.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/volumes.h"

#define RELEASE_WAIT_MS 2000
#define RECHECK_MS      250     /* a held shadow's loop device looked at */
#define RESCAN_MS       1000    /* ... and who uses it looked for in /proc */
#define RESCAN_MAX_MS   60000
#define WAIT_MS         5000    /* svc_retire_wait: RELEASE_WAIT_MS and a slow unmount */

struct svc_retiring {
	struct svc_retiring *next;
	char id[37];
	char loop[VSS_LOOP_NAME_MAX];
	char backing[4096];
	dev_t dev;                      /* the loop device's number (its filesystem's too) */
	int hold;                       /* -1 once closed */
	int64_t held_since;             /* svc_mono_ms() when found still in use, or 0 */
	int64_t scanned_at;             /* when its users were last looked for */
};

/* Whether @r's loop device still reads its shadow. */
static bool still_reads(const struct svc_retiring *r)
{
	char now[4096];

	return vss_loop_backing(r->loop, now, sizeof(now)) == 0 && strcmp(now, r->backing) == 0;
}

/* "PID 12 (cat), PID 34 (less)" of @by (@n found), or what says none was. */
static void holders_str(const struct vss_fs_holder *by, int n, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	if (n <= 0) {
		snprintf(out, size, "nothing vssd can name (a file only mapped, a mount in "
			 "another namespace)");
		return;
	}
	for (int i = 0; i < n && i < 4 && used < size; i++)
		used += (size_t)snprintf(out + used, size - used, "%sPID %d (%s)", i ? ", " : "",
					 (int)by[i].pid, by[i].comm);
	if (n > 4 && used < size)
		snprintf(out + used, size - used, " and %d more", n - 4);
}

/*
 * Lets @r's filesystem go and deletes its shadow: true if done (or the
 * shadow went another way), false if the filesystem is still in use (the
 * shadow is held).  With @first, closes the descriptor and waits up to
 * RELEASE_WAIT_MS; else only looks.
 */
static bool retire_one(struct vss_service *svc, struct svc_retiring *r, bool first)
{
	int64_t t0 = svc_mono_ms(), closed = t0;
	struct vss_fs_holder by[4];
	struct svc_shadow *sh;
	bool busy, expired = false, rescan = false;
	int n = 0;

	if (first) {
		close(r->hold);         /* the filesystem's teardown happens here */
		r->hold = -1;
		closed = svc_mono_ms();
		while ((busy = still_reads(r)) && svc_mono_ms() < closed + RELEASE_WAIT_MS)
			usleep(10000);
	} else {
		busy = still_reads(r);
	}
	if (busy) {
		/* Looked for without svc->lock: /proc can be long to walk. */
		int64_t now = svc_mono_ms(), every = r->held_since ? (now - r->held_since) / 10 : 0;

		every = every < RESCAN_MS ? RESCAN_MS : every > RESCAN_MAX_MS ? RESCAN_MAX_MS : every;
		if ((rescan = now - r->scanned_at >= every)) {
			n = vss_fs_holders(r->dev, by, 4);
			r->scanned_at = svc_mono_ms();
		}
		if (!r->held_since)
			r->held_since = svc_mono_ms();
		expired = svc_mono_ms() - r->held_since >= (int64_t)svc->hold_max_ms;
	}
	svc_lock(svc);
	sh = svc_shadow_find(svc, r->id);
	if (sh && sh->retiring && busy && rescan) {
		memcpy(sh->retire_by, by, sizeof(by));
		sh->retire_by_n = n < 0 ? 0 : n;
	}
	if (sh && sh->retiring && busy && !expired) {
		if (!sh->retire_held) {
			char who[256];

			holders_str(sh->retire_by, sh->retire_by_n, who, sizeof(who));
			vss_log("shadow %s: its filesystem is still in use after its mount was "
				"detached (through %s, by %s): deleted once nothing uses it, or "
				"after %llu s (--hold-max)", r->id, r->loop, who,
				(unsigned long long)(svc->hold_max_ms / 1000));
		}
		sh->retire_held = true;
	} else if (sh && sh->retiring) {
		char why[512], who[256];

		if (busy) {
			holders_str(sh->retire_by, sh->retire_by_n, who, sizeof(who));
			snprintf(why, sizeof(why), "deleted on request (its set): its filesystem "
				 "was still in use after --hold-max (%llu s), by %s, whose reads "
				 "fail from now on", (unsigned long long)(svc->hold_max_ms / 1000),
				 who);
		} else if (first) {
			snprintf(why, sizeof(why), "deleted on request (its set), once unmounted "
				 "(%llu ms, released %llu ms later)",
				 (unsigned long long)(closed - t0),
				 (unsigned long long)(svc_mono_ms() - closed));
		} else {
			snprintf(why, sizeof(why), "deleted on request (its set), once its "
				 "filesystem was no longer in use");
		}
		svc_shadow_remove(svc, sh, why);
	}
	svc_unlock(svc);
	return !(sh && busy && !expired);
}

static void *retire_main(void *arg)
{
	struct vss_service *svc = arg;
	struct svc_retiring *held = NULL;

	pthread_mutex_lock(&svc->retire_lock);
	for (;;) {
		struct svc_retiring *list, **pp;

		if (!svc->retire_head && !svc->retire_stop) {
			if (held) {
				struct timespec dl;

				clock_gettime(CLOCK_REALTIME, &dl);
				dl.tv_nsec += RECHECK_MS * 1000000L;
				dl.tv_sec += dl.tv_nsec / 1000000000L;
				dl.tv_nsec %= 1000000000L;
				pthread_cond_timedwait(&svc->retire_cond, &svc->retire_lock, &dl);
			} else {
				pthread_cond_wait(&svc->retire_cond, &svc->retire_lock);
			}
		}
		if (!svc->retire_head && svc->retire_stop)
			break;
		list = svc->retire_head;
		svc->retire_head = NULL;
		pthread_mutex_unlock(&svc->retire_lock);
		while (list) {
			struct svc_retiring *r = list;

			list = r->next;
			if (retire_one(svc, r, true)) {
				free(r);
			} else {
				r->next = held;
				held = r;
			}
		}
		for (pp = &held; *pp;) {
			struct svc_retiring *r = *pp;

			if (retire_one(svc, r, false)) {
				*pp = r->next;
				free(r);
			} else {
				pp = &r->next;
			}
		}
		pthread_mutex_lock(&svc->retire_lock);
	}
	pthread_mutex_unlock(&svc->retire_lock);
	/* vssd stops: its devices go with it, so these go now too. */
	while (held) {
		struct svc_retiring *r = held;
		struct svc_shadow *sh;

		held = r->next;
		svc_lock(svc);
		if ((sh = svc_shadow_find(svc, r->id)) && sh->retiring)
			svc_shadow_remove(svc, sh, "deleted on request (its set): vssd is stopping, "
					  "though its filesystem is still in use");
		svc_unlock(svc);
		free(r);
	}
	return NULL;
}

int svc_retire_start(struct vss_service *svc, struct vss_error *err)
{
	int rc = pthread_create(&svc->retire_thread, NULL, retire_main, svc);

	if (rc)
		return vss_error_set(err, -rc, "cannot start a thread: %s", strerror(rc));
	svc->retire_running = true;
	return 0;
}

void svc_retire_stop(struct vss_service *svc)
{
	if (!svc->retire_running)
		return;
	pthread_mutex_lock(&svc->retire_lock);
	svc->retire_stop = true;
	pthread_cond_signal(&svc->retire_cond);
	pthread_mutex_unlock(&svc->retire_lock);
	pthread_join(svc->retire_thread, NULL);
	svc->retire_running = false;
}

int svc_retire_queue(struct vss_service *svc, const char *id, const char *loop,
		     const char *backing, int hold, struct vss_error *err)
{
	struct svc_retiring *r = calloc(1, sizeof(*r)), **pp;
	struct stat st;

	svc_assert_locked(svc);
	if (!r)
		return vss_error_set(err, -ENOMEM, "out of memory");
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->loop, sizeof(r->loop), "%s", loop);
	snprintf(r->backing, sizeof(r->backing), "%s", backing);
	if (stat(loop, &st) == 0)
		r->dev = st.st_rdev;
	r->hold = hold;
	pthread_mutex_lock(&svc->retire_lock);
	for (pp = &svc->retire_head; *pp; pp = &(*pp)->next)
		;
	*pp = r;
	pthread_cond_signal(&svc->retire_cond);
	pthread_mutex_unlock(&svc->retire_lock);
	return 0;
}

/* A shadow of @v being let go (and found held, first), or NULL. */
static struct svc_shadow *retiring_of(struct vss_service *svc, struct svc_volume *v)
{
	struct svc_shadow *found = NULL;

	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		if (svc_shadow_of(sh, v) && sh->retiring && (!found || sh->retire_held))
			found = sh;
	return found;
}

int svc_retire_wait(struct vss_service *svc, const char *name, struct vss_error *err)
{
	int64_t deadline = svc_mono_ms() + WAIT_MS;
	struct svc_volume *v;
	struct svc_shadow *sh;
	char who[256];

	svc_assert_locked(svc);
	for (;;) {
		if (!(v = svc_volume_find(svc, name)) || !(sh = retiring_of(svc, v)))
			return 0;       /* gone: the caller says so */
		if (svc_mono_ms() >= deadline)
			break;
		svc_unlock(svc);
		usleep(20000);
		svc_lock(svc);
	}
	if (!sh->retire_held)
		return vss_error_set(err, -EBUSY, "volume %s: shadow %s, deleted after a backup, "
				     "is still being unmounted after %d s: try again in a moment "
				     "(or use --force)", name, sh->rec.id, WAIT_MS / 1000);
	holders_str(sh->retire_by, sh->retire_by_n, who, sizeof(who));
	return vss_error_set(err, -EBUSY, "volume %s: shadow %s, deleted after a backup, is "
			     "still in use through its detached mount after %d s, by %s: it goes "
			     "once they let go of it (or use --force)", name, sh->rec.id,
			     WAIT_MS / 1000, who);
}
