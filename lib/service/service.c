/*
 * service/service.c - vssd's life: start (locks, cleanup of what a dead
 * vssd left, catalog, devices, reconciliation of shadows), the housekeeper
 * that acts on the engine's events, and a clean stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include <vss/version.h>

#include "provider/provider.h"
#include "provider/rbd/provider.h"
#include "service/backup.h"
#include "service/export.h"
#include "service/gmt.h"
#include "service/guardian.h"
#include "service/log.h"
#include "service/peer.h"
#include "service/restore.h"
#include "service/retire.h"
#include "service/schedule.h"
#include "service/server.h"
#include "service/service_i.h"
#include "service/set.h"
#include "service/shadows.h"
#include "service/storage.h"
#include "service/volumes.h"
#include "service/writers.h"

void svc_id_str(const vss_cow_id id, char out[37])
{
	uuid_unparse_lower(id, out);
}

int svc_id_parse(const char *s, vss_cow_id id)
{
	return uuid_parse(s, id) == 0 ? 0 : -EINVAL;
}

uint64_t svc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void svc_time_str(uint64_t ns, char out[40])
{
	time_t s = (time_t)(ns / 1000000000u);
	struct tm tm;
	size_t n;

	gmtime_r(&s, &tm);
	n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 40 - n, ".%03uZ", (unsigned int)(ns % 1000000000u / 1000000u));
}

const char *svc_short_tag(void)
{
	static __thread char tag[9];
	char full[37];
	uuid_t u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, full);
	memcpy(tag, full, 8);
	tag[8] = '\0';
	return tag;
}

int svc_same_fs_as_state(struct vss_service *svc, dev_t dev, const char **what)
{
	static __thread char buf[160];
	struct stat st;

	if (stat(svc->state_dir, &st) == 0 && st.st_dev == dev) {
		*what = "the service's state directory";
		return 1;
	}
	if (stat(svc->run_dir, &st) == 0 && st.st_dev == dev) {
		*what = "the service's run directory";
		return 1;
	}
	for (struct svc_volume *v = svc->volumes; v; v = v->next) {
		if (stat(v->rec.diff_path, &st) == 0 && st.st_dev == dev) {
			snprintf(buf, sizeof(buf), "the diff area of volume %s", v->rec.name);
			*what = buf;
			return 1;
		}
		if (stat(v->rec.backing, &st) == 0 && !S_ISBLK(st.st_mode) && st.st_dev == dev) {
			snprintf(buf, sizeof(buf), "the backing file of volume %s", v->rec.name);
			*what = buf;
			return 1;
		}
	}
	return 0;
}

void *svc_grow(void *items, size_t *cap, size_t count, size_t size)
{
	size_t n = *cap ? 2 * *cap : 16;
	void *bigger;

	if (count < *cap)
		return items;
	if (!(bigger = realloc(items, n * size)))
		return NULL;
	*cap = n;
	return bigger;
}

/* ---- operations about the service itself ---- */

int svc_op_status(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
		  struct vss_error *err)
{
	int volumes = 0, shadows = 0;

	for (struct svc_volume *v = svc->volumes; v; v = v->next)
		volumes++;
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		shadows += !sh->retiring || sh->retire_held;
	*res = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:s}",
			 "version", VSS_VERSION, "protocol", 1, "volumes", volumes,
			 "shadows", shadows, "writers", svc_writers_count(svc), "pid", (int)getpid(),
			 "state_dir", svc->state_dir, "run_dir", svc->run_dir,
			 "transport", svc->tr->ops->name);
	/* Who holds the backup slot and which sets are held (backup.c). */
	json_object_update_new(*res, svc_backup_holds_json(svc));
	return 0;
}

/* ---- start ---- */

static int make_dir(const char *path, mode_t mode, struct vss_error *err)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return vss_error_set(err, -errno, "cannot create %s: %s", tmp,
					     strerror(errno));
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return vss_error_set(err, -errno, "cannot create %s: %s", tmp, strerror(errno));
	return 0;
}

static int take_lock(const char *dir, const char *what, int *fd_out, struct vss_error *err)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/vssd.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return vss_error_set(err, -errno, "cannot open %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int rc = -errno;

		close(fd);
		if (rc == -EWOULDBLOCK)
			return vss_error_set(err, -EBUSY, "another vssd is using the %s %s",
					     what, dir);
		return vss_error_set(err, rc, "cannot lock %s: %s", path, strerror(-rc));
	}
	*fd_out = fd;
	return 0;
}

static void detach_mount(void *arg, const char *dir)
{
	if (umount2(dir, MNT_DETACH) == 0)
		vss_log("cleanup: unmounted %s, left by a previous vssd", dir);
}

/*
 * A loop device whose filesystem is still in use (a shadow's a backup had
 * let go while something read it, the mount already detached) cannot go
 * yet: LOOP_CLR_FD only marks it to clear itself when its last user lets
 * go, which is said, with that user.
 */
static void clean_loop(void *arg, const char *dev, const char *backing)
{
	struct vss_fs_holder by[4];
	struct stat st;
	char now[4096];
	int n;

	vss_fs_each_mount_of(dev, detach_mount, NULL);
	if (vss_loop_detach(dev) < 0)
		return;
	if (vss_loop_backing(dev, now, sizeof(now)) < 0 || strcmp(now, backing) != 0) {
		vss_log("cleanup: detached %s (%s), left by a previous vssd", dev, backing);
		return;
	}
	n = stat(dev, &st) == 0 ? vss_fs_holders(st.st_rdev, by, 1) : 0;
	if (n > 0)
		vss_log("cleanup: %s (%s), left by a previous vssd, is still in use (by PID %d "
			"(%s)%s): it goes when that lets go", dev, backing, (int)by[0].pid,
			by[0].comm, n > 1 ? " and others" : "");
	else
		vss_log("cleanup: %s (%s), left by a previous vssd, is still in use: it goes "
			"when that lets go", dev, backing);
}

/*
 * A vssd killed with -9 leaves its filesystems mounted on loop devices over
 * its dead FUSE tree, that tree's mount, and the socket file.  The state
 * lock proves no vssd owns them any more.
 */
static void clean_leftovers(struct vss_service *svc)
{
	char sock[PATH_MAX];

	vss_loop_each_under(svc->dev_dir, clean_loop, NULL);
	if (vss_fs_is_mountpoint(svc->dev_dir) && umount2(svc->dev_dir, MNT_DETACH) == 0)
		vss_log("cleanup: unmounted the device tree %s, left by a previous vssd",
			svc->dev_dir);
	snprintf(sock, sizeof(sock), "%s/vssd.sock", svc->run_dir);
	unlink(sock);
}

struct volume_recs {
	struct vss_catalog_volume *recs;
	size_t count, cap;
};

static int collect_volume(void *arg, const struct vss_catalog_volume *rec)
{
	struct volume_recs *r = arg;
	struct vss_catalog_volume *recs = svc_grow(r->recs, &r->cap, r->count, sizeof(*recs));

	if (!recs)
		return -ENOMEM;
	r->recs = recs;
	recs[r->count] = *rec;
	recs[r->count].backing = strdup(rec->backing);
	recs[r->count].diff_path = strdup(rec->diff_path);
	recs[r->count].note = rec->note ? strdup(rec->note) : NULL;
	r->count++;
	return 0;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/*
 * Opens a volume of the catalog: its origin, then its diff area, which
 * never takes the volume down with it (svc_diff_recover).  A volume that
 * still cannot be served (its origin cannot be opened) is listed offline,
 * with the reason, and can be deleted.
 */
static void load_volume(struct vss_service *svc, const struct vss_catalog_volume *rec)
{
	struct svc_volume *v = svc_volume_new(svc, rec);
	struct vss_error err = { 0 };
	int rc;

	if (!v) {
		vss_log("volume %s cannot be opened and is not served: out of memory", rec->name);
		return;
	}
	if (svc_rbd_is_backing(rec->backing)) {
		/* No engine: the cluster keeps its shadows.  Unreachable, it is
		 * listed offline and retried (svc_rbd_retry). */
		if (svc_rbd_volume_open(svc, v, &err) == 0)
			return;
		goto offline;
	}
	if ((rc = svc_volume_open_origin(v, &err)) < 0)
		goto offline;
	rc = svc_volume_cow_open(v, rec->diff_path, 0, &v->cow, &err);
	if (rc < 0 && rc != -ENOMEM) {
		char why[sizeof(err.msg)];

		v->cow = NULL;
		memcpy(why, err.msg, sizeof(why));
		rc = svc_diff_recover(svc, v, rc, why, &err);
	}
	if (rc < 0) {
		v->cow = NULL;
		goto offline;
	}
	if (svc_volume_learn_diff(v) | !same_str(rec->diff_path, v->rec.diff_path) |
	    !same_str(rec->note, v->rec.note))
		vss_catalog_volume_put(svc->cat, &v->rec, NULL);
	json_decref(svc_volatile_warning(v));
	if ((rc = svc_volume_serve(svc, v, &err)) == 0)
		return;
	vss_cow_close(v->cow);
	v->cow = NULL;
offline:
	v->offline_why = strdup(err.msg);
	vss_log("volume %s cannot be opened and is not served: %s (it is listed offline; delete "
		"it, or restart vssd once that is mended)", rec->name, err.msg);
	struct svc_volume **pp = &svc->offline;

	while (*pp)
		pp = &(*pp)->next;
	*pp = v;
}

/* Every volume of the catalog, read first: opening one may rewrite its row. */
static int load_volumes(struct vss_service *svc, struct vss_error *err)
{
	struct volume_recs r = { 0 };
	int rc = vss_catalog_volume_each(svc->cat, collect_volume, &r, err);

	for (size_t i = 0; i < r.count; i++) {
		if (rc == 0 && r.recs[i].backing && r.recs[i].diff_path)
			load_volume(svc, &r.recs[i]);
		free(r.recs[i].backing);
		free(r.recs[i].diff_path);
		free(r.recs[i].note);
	}
	free(r.recs);
	return rc == -ENOMEM ? vss_error_set(err, rc, "out of memory") : rc;
}

struct shadow_rows {
	struct vss_catalog_shadow *rows;
	size_t count, cap;
};

static int collect_row(void *arg, const struct vss_catalog_shadow *s)
{
	struct shadow_rows *r = arg;
	struct vss_catalog_shadow *rows = svc_grow(r->rows, &r->cap, r->count, sizeof(*rows));

	if (!rows)
		return -ENOMEM;
	r->rows = rows;
	r->rows[r->count] = *s;
	r->rows[r->count].target = strdup(s->target);
	r->count++;
	return 0;
}

/*
 * The engine has replayed each diff area: the persistent shadows are back,
 * the others gone.  Make the catalog and the service's list say the same,
 * and serve a device for each shadow.
 */
static int reconcile_shadows(struct vss_service *svc, struct vss_error *err)
{
	struct shadow_rows r = { 0 };
	int rc = vss_catalog_shadow_each(svc->cat, collect_row, &r, err);

	if (rc < 0)
		goto out;
	for (struct svc_volume *v = svc->volumes; v; v = v->next) {
		struct vss_cow_shadow_info *infos = NULL;
		size_t k = 0;

		if (!v->cow || vss_cow_shadow_list(v->cow, &infos, &k) < 0)
			continue;
		for (size_t i = 0; i < k; i++) {
			struct svc_shadow *sh = calloc(1, sizeof(*sh));
			struct vss_catalog_shadow *row = NULL;
			struct vss_error e;
			char id[37];

			if (!sh)
				break;
			svc_id_str(infos[i].id, id);
			for (size_t j = 0; j < r.count; j++)
				if (strcmp(r.rows[j].id, id) == 0)
					row = &r.rows[j];
			sh->prov = &svc_provider_builtin;
			sh->vol = v;
			if (row) {
				sh->rec = *row;
				sh->rec.target = row->target;
				row->target = NULL;
				row->id[0] = '\0';  /* matched */
			} else {
				/* Taken, but vssd died before the catalog heard of it. */
				memcpy(sh->rec.id, id, sizeof(id));
				svc_id_str(infos[i].set_id, sh->rec.set_id);
				snprintf(sh->rec.volume, sizeof(sh->rec.volume), "%s", v->rec.name);
				sh->rec.target = strdup(v->rec.name);
				sh->rec.created_ns = infos[i].created_ns;
				sh->rec.attrs = infos[i].flags & VSS_COW_SHADOW_PERSISTENT
						? VSS_CATALOG_ATTR_PERSISTENT : 0;
				vss_catalog_shadow_put(svc->cat, &sh->rec, NULL);
			}
			struct svc_shadow **pp = &svc->shadows;

			while (*pp)
				pp = &(*pp)->next;
			*pp = sh;
			if (!(infos[i].flags & VSS_COW_SHADOW_PERSISTENT)) {
				svc_shadow_remove(svc, sh, "not persistent, left by a previous run");
				continue;
			}
			if (svc_shadow_add_device(svc, sh, &e) < 0)
				vss_log("shadow %s: no device: %s", id, e.msg);
		}
		free(infos);
	}
	for (size_t j = 0; j < r.count; j++) {
		struct vss_catalog_shadow *row = &r.rows[j];

		struct svc_volume *rv = svc_volume_find(svc, row->volume);

		/* Rows of volumes without an engine are their provider's (recover). */
		if (!row->id[0] || !rv || !rv->cow)
			continue;
		vss_catalog_shadow_delete(svc->cat, row->id, NULL);
		vss_log("shadow %s of volume %s deleted: %s", row->id, row->volume,
			row->attrs & VSS_CATALOG_ATTR_PERSISTENT
			? "its diff area no longer holds it"
			: "not persistent, left by a previous run");
	}
out:
	for (size_t j = 0; j < r.count; j++)
		free(r.rows[j].target);
	free(r.rows);
	return rc;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Memory: a burst of writes leaves the FUSE workers' malloc arenas holding
 * what it freed (each worker's 1 MiB request buffer once the worker exits,
 * the copies of writes queued behind a persistent shadow: up to 32 MiB),
 * 50 to 80 MB that glibc keeps for reuse.  Once vssd has gone idle (under
 * IDLE_CPU_PERMILLE of a CPU over a check) after being busy, the
 * housekeeper gives it back with malloc_trim().  Only this thread touches
 * the state.
 */
#define TRIM_CHECK_MS     2000
#define IDLE_CPU_PERMILLE 20

struct idle_trim {
	uint64_t cpu_ns;        /* the process's CPU time at the last check */
	uint64_t due_ms;        /* the next check (mono_ms) */
	bool busy;              /* work since the last trim */
};

static void trim_when_idle(struct idle_trim *t)
{
	struct timespec ts;
	uint64_t now, used;

	if (mono_ms() < t->due_ms)
		return;
	t->due_ms = mono_ms() + TRIM_CHECK_MS;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	used = now - t->cpu_ns;
	t->cpu_ns = now;
	if (used * 1000 > (uint64_t)TRIM_CHECK_MS * 1000000u * IDLE_CPU_PERMILLE) {
		t->busy = true;
		return;
	}
	if (t->busy) {
		malloc_trim(0);
		t->busy = false;
	}
}

/* Acts on the engine's events, looks at the diff areas every svc->check_ms
 * (svc_check_diff_areas) and gives memory back once idle (trim_when_idle). */
static void *housekeeper(void *arg)
{
	struct vss_service *svc = arg;
	uint64_t due = mono_ms() + svc->check_ms;
	unsigned int tick = svc->check_ms < TRIM_CHECK_MS ? svc->check_ms : TRIM_CHECK_MS;
	struct idle_trim trim = { .due_ms = mono_ms() + TRIM_CHECK_MS };

	pthread_mutex_lock(&svc->ev_lock);
	for (;;) {
		struct svc_event *list;
		struct timespec dl;

		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += tick / 1000;
		dl.tv_nsec += (long)(tick % 1000) * 1000000;
		if (dl.tv_nsec >= 1000000000) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000;
		}
		while (!svc->ev_head && !svc->ev_stop &&
		       pthread_cond_timedwait(&svc->ev_cond, &svc->ev_lock, &dl) != ETIMEDOUT)
			;
		if (!svc->ev_head && svc->ev_stop)
			break;
		pthread_mutex_unlock(&svc->ev_lock);
		trim_when_idle(&trim);
		pthread_mutex_lock(&svc->ev_lock);
		if (!svc->ev_head && svc->ev_stop)
			break;
		list = svc->ev_head;
		svc->ev_head = NULL;
		pthread_mutex_unlock(&svc->ev_lock);
		svc_lock(svc);
		while (list) {
			struct svc_event *e = list;
			struct svc_shadow *sh;

			list = e->next;
			/* Already logged by the engine callback. */
			if (e->type == VSS_COW_EV_SHADOW_DELETED &&
			    (sh = svc_shadow_find(svc, e->shadow)))
				svc_shadow_remove(svc, sh, NULL);
			free(e);
		}
		/* Samba's snapshot directories follow the shadows (gmt.h). */
		svc_gmt_sync(svc);
		svc_rbd_retry(svc);
		if (mono_ms() >= due) {
			svc_check_diff_areas(svc);
			due = mono_ms() + svc->check_ms;
		}
		svc_unlock(svc);
		pthread_mutex_lock(&svc->ev_lock);
	}
	pthread_mutex_unlock(&svc->ev_lock);
	return NULL;
}

static char *absolute(const char *dir)
{
	char real[PATH_MAX];

	return realpath(dir, real) ? strdup(real) : NULL;
}

/* This host's name as its peers know it: @given, or the first label of the
 * system's host name (a peer checks it as peer_msg.h says). */
static int host_name(struct vss_service *svc, const char *given, struct vss_error *err)
{
	char buf[256] = "";
	size_t n;

	if (given) {
		if (!svc_peer_name_ok(given, strlen(given)))
			return vss_error_set(err, -EINVAL, "the host name \"%s\" must be 1 to %d "
					     "letters, digits, '.', '_' or '-', beginning with a "
					     "letter or a digit", given, SVC_PEER_NAME_MAX);
		snprintf(svc->host_name, sizeof(svc->host_name), "%s", given);
		return 0;
	}
	if (gethostname(buf, sizeof(buf) - 1) < 0)
		buf[0] = '\0';
	n = strcspn(buf, ".");
	if (!svc_peer_name_ok(buf, n))
		snprintf(buf, sizeof(buf), "localhost");
	else
		buf[n] = '\0';
	snprintf(svc->host_name, sizeof(svc->host_name), "%s", buf);
	return 0;
}

int vss_service_open(const struct vss_service_config *cfg, struct vss_service **out,
		     struct vss_error *err)
{
	struct vss_service *svc = calloc(1, sizeof(*svc));
	struct svc_restore *restore = NULL;
	char path[PATH_MAX];
	int rc;

	*out = NULL;
	if (!svc)
		return vss_error_set(err, -ENOMEM, "out of memory");
	svc->state_lock_fd = svc->run_lock_fd = -1;
	svc->test_freeze_hold_ms = cfg->test_freeze_hold_ms;
	/* Tests only: look at the diff areas more often than every 10 s. */
	svc->check_ms = getenv("VSS_TEST_DIFF_CHECK_MS") ? (unsigned int)atoi(getenv("VSS_TEST_DIFF_CHECK_MS")) : 0;
	if (!svc->check_ms)
		svc->check_ms = 10000;
	svc->freeze_limit_ms = cfg->test_freeze_limit_ms ? cfg->test_freeze_limit_ms
							 : VSS_FREEZE_LIMIT_MS;
	svc->hold_lease_ms = cfg->hold_lease_ms ? cfg->hold_lease_ms : VSS_HOLD_LEASE_MS;
	svc->hold_max_ms = cfg->hold_max_ms ? cfg->hold_max_ms : VSS_HOLD_MAX_MS;
	svc_mutex_init(&svc->lock);
	svc->providers = cfg->test_providers ? cfg->test_providers : svc_providers;
	svc->freezer = cfg->test_freezer ? cfg->test_freezer : &svc_freezer_fs;
	pthread_mutex_init(&svc->ev_lock, NULL);
	pthread_cond_init(&svc->ev_cond, NULL);
	pthread_mutex_init(&svc->retire_lock, NULL);
	pthread_cond_init(&svc->retire_cond, NULL);
	if ((rc = svc_writers_init(svc, err)) < 0 ||
	    (rc = svc_rbd_init(svc, cfg->ceph_conf, cfg->ceph_id, err)) < 0)
		goto fail;
	if ((rc = make_dir(cfg->state_dir, 0700, err)) < 0 ||
	    (rc = make_dir(cfg->run_dir, 0755, err)) < 0)
		goto fail;
	svc->state_dir = absolute(cfg->state_dir);
	svc->run_dir = absolute(cfg->run_dir);
	if (!svc->state_dir || !svc->run_dir) {
		rc = vss_error_set(err, -ENOMEM, "cannot resolve the state and run directories");
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/dev", svc->run_dir);
	svc->dev_dir = strdup(path);
	svc->operator_group = strdup(cfg->operator_group ? cfg->operator_group : "vss");
	svc->peers_path = strdup(cfg->peers_path ? cfg->peers_path : SVC_PEERS_PATH);
	if (!svc->dev_dir || !svc->operator_group || !svc->peers_path) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = host_name(svc, cfg->host_name, err)) < 0)
		goto fail;
	svc->peer_timeout_ms = cfg->peer_timeout_ms ? cfg->peer_timeout_ms : SVC_PEER_TIMEOUT_MS;
	if ((rc = take_lock(svc->state_dir, "state directory", &svc->state_lock_fd, err)) < 0 ||
	    (rc = take_lock(svc->run_dir, "run directory", &svc->run_lock_fd, err)) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/volumes", svc->state_dir);
	if ((rc = make_dir(path, 0700, err)) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/diff", svc->state_dir);
	if ((rc = make_dir(path, 0700, err)) < 0)
		goto fail;
	/* Where diff area failures are recorded too (engine design note 9). */
	snprintf(path, sizeof(path), "%s/failed", svc->state_dir);
	if ((rc = make_dir(path, 0700, err)) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/failed", svc->run_dir);
	if ((rc = make_dir(path, 0700, err)) < 0)
		goto fail;
	clean_leftovers(svc);
	snprintf(path, sizeof(path), "%s/catalog.db", svc->state_dir);
	if ((rc = vss_catalog_open(path, &svc->cat, err)) < 0 ||
	    (rc = svc_restore_read(svc, &restore, err)) < 0)
		goto fail;
	svc->tr = cfg->test_transport ? cfg->test_transport : vss_transport_fuse_new();
	if (!svc->tr) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = svc->tr->ops->start(svc->tr, svc->dev_dir, err)) < 0) {
		free(svc->tr);  /* never started: nothing else to release */
		svc->tr = NULL;
		goto fail;
	}
	if (svc->tr->ops->limit_dirty && (rc = svc->tr->ops->limit_dirty(svc->tr, 0)) < 0)
		vss_log("the device tree keeps the kernel's bound on its dirty pages (%s): "
			"writes to mounted volumes are slower", strerror(-rc));
	if ((rc = pthread_create(&svc->ev_thread, NULL, housekeeper, svc)) != 0) {
		rc = vss_error_set(err, -rc, "cannot start a thread: %s", strerror(rc));
		goto fail;
	}
	svc->ev_running = true;
	if ((rc = svc_retire_start(svc, err)) < 0)
		goto fail;
	svc_lock(svc);
	rc = load_volumes(svc, err);
	if (rc == 0)
		rc = reconcile_shadows(svc, err);
	if (rc == 0)
		rc = svc_remotes_load(svc, err);
	if (rc == 0) {
		svc_providers_recover(svc);
		svc_restore_run(svc, restore);
		svc_gmt_sync(svc);
		svc_exports_restore(svc);
	}
	svc_unlock(svc);
	svc_restore_free(restore);
	restore = NULL;
	if (rc < 0)
		goto fail;
	if ((rc = svc_schedules_start(svc, err)) < 0 ||
	    (rc = svc_server_start(svc, cfg, err)) < 0)
		goto fail;
	vss_log("started (version %s, state %s, run %s)", VSS_VERSION, svc->state_dir,
		svc->run_dir);
	*out = svc;
	return 0;
fail:
	svc_restore_free(restore);
	vss_service_close(svc);
	return rc;
}

void vss_service_close(struct vss_service *svc)
{
	if (!svc)
		return;
	/* A scheduled run in progress finishes first: it needs the writers. */
	svc_schedules_stop(svc);
	svc_writers_shutdown(svc);
	svc_server_stop(svc);
	/* The shadows deleted in the background go first: nothing left mounted. */
	svc_retire_stop(svc);
	svc_schedules_free(svc);
	svc_lock(svc);
	svc_exports_end_all(svc);
	/* Their catalog records stay: the next start mounts them again (restore.c). */
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		if (sh->expose_dir) {
			if (vss_fs_umount(sh->expose_dir, NULL) < 0)
				vss_fs_umount_force(sh->expose_dir);
			vss_log("shadow %s unexposed from %s", sh->rec.id, sh->expose_dir);
			svc_shadow_unexpose(sh, false);
		}
	for (struct svc_volume *v = svc->volumes; v; v = v->next)
		if (v->mount_dir && svc_volume_umount(svc, v, false, NULL) < 0)
			svc_volume_umount(svc, v, true, NULL);
	/*
	 * Non-persistent shadows are dropped: out of the catalog now, out of
	 * the diff area when the engine next opens it (it deletes them then).
	 * Deleting them here instead would make the stop as slow as freeing
	 * their whole diff area.
	 */
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		if (!(sh->rec.attrs & VSS_CATALOG_ATTR_PERSISTENT)) {
			struct vss_error e;

			/* Other providers' snapshots cost nothing to delete now. */
			if (!(sh->prov->caps & SVC_PROVIDER_DROP_AT_OPEN) &&
			    sh->prov->remove(svc, sh, &e) < 0)
				vss_log("shadow %s: %s", sh->rec.id, e.msg);
			vss_catalog_shadow_delete(svc->cat, sh->rec.id, NULL);
			vss_log("shadow %s of %s dropped: the service is stopping and it is "
				"not persistent", sh->rec.id,
				sh->vol ? sh->vol->rec.name : sh->rec.target);
		}
	/* Other hosts' members of sets that are not persistent go the same way. */
	svc_remotes_close(svc);
	for (struct svc_volume *v = svc->volumes; v; v = v->next)
		svc_volume_wait_closed(svc, v);
	svc_unlock(svc);
	if (svc->ev_running) {
		pthread_mutex_lock(&svc->ev_lock);
		svc->ev_stop = true;
		pthread_cond_signal(&svc->ev_cond);
		pthread_mutex_unlock(&svc->ev_lock);
		pthread_join(svc->ev_thread, NULL);
	}
	if (svc->tr)
		svc->tr->ops->stop(svc->tr);
	while (svc->shadows) {
		struct svc_shadow *sh = svc->shadows;

		svc->shadows = sh->next;
		free(sh->rec.target);
		free(sh->path);
		free(sh->origin);
		free(sh->target_path);
		free(sh);
	}
	while (svc->volumes) {
		struct svc_volume *v = svc->volumes;

		svc->volumes = v->next;
		svc_volume_put(v);
	}
	while (svc->offline) {
		struct svc_volume *v = svc->offline;

		svc->offline = v->next;
		svc_volume_put(v);
	}
	while (svc->ev_head) {
		struct svc_event *e = svc->ev_head;

		svc->ev_head = e->next;
		free(e);
	}
	svc_rbd_release(svc);
	vss_catalog_close(svc->cat);
	if (svc->run_lock_fd >= 0) {
		char sock[PATH_MAX];

		snprintf(sock, sizeof(sock), "%s/vssd.sock", svc->run_dir);
		unlink(sock);
		close(svc->run_lock_fd);
		vss_log("stopped");
	}
	if (svc->state_lock_fd >= 0)
		close(svc->state_lock_fd);
	free(svc->state_dir);
	free(svc->run_dir);
	free(svc->dev_dir);
	free(svc->operator_group);
	free(svc->peers_path);
	svc_writers_free(svc);
	free(svc);
}
