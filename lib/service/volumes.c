/*
 * service/volumes.c - the volume manager: managed volumes (an origin plus its
 * diff area, opened in the engine), their read-write devices, and the
 * filesystems mounted on them through loop devices.
 */
#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/major.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "engine/cow_i.h"
#include "provider/provider.h"
#include "service/args.h"
#include "service/caller.h"
#include "service/gmt.h"
#include "service/export.h"
#include "service/log.h"
#include "service/retire.h"
#include "service/service_i.h"
#include "provider/rbd/provider.h"
#include "service/shadows.h"
#include "service/storage.h"
#include "service/volumes.h"

/* ---- the devices: the only code on the I/O path ---- */

static ssize_t vdev_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct svc_volume *v = ctx;
	ssize_t n;

	pthread_rwlock_rdlock(&v->gate);
	n = v->direct ? v->direct->read(v->direct_ctx, buf, len, off)
		: v->cow ? vss_cow_read(v->cow, buf, len, off) : -EIO;
	pthread_rwlock_unlock(&v->gate);
	return n;
}

static ssize_t vdev_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct svc_volume *v = ctx;
	ssize_t n;

	pthread_rwlock_rdlock(&v->gate);
	pthread_rwlock_rdlock(&v->wgate);
	n = v->direct ? v->direct->write(v->direct_ctx, buf, len, off)
		: v->cow ? vss_cow_write(v->cow, buf, len, off) : -EIO;
	pthread_rwlock_unlock(&v->wgate);
	pthread_rwlock_unlock(&v->gate);
	if (n > 0)
		atomic_fetch_add_explicit(&v->io.write_bytes, (uint64_t)n, memory_order_relaxed);
	return n;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int vdev_flush(void *ctx)
{
	struct svc_volume *v = ctx;
	uint64_t t0 = mono_ns(), ns, max;
	int rc;

	pthread_rwlock_rdlock(&v->gate);
	pthread_rwlock_rdlock(&v->wgate);
	rc = v->direct ? v->direct->flush(v->direct_ctx)
		: v->cow ? vss_cow_flush(v->cow) : -EIO;
	pthread_rwlock_unlock(&v->wgate);
	pthread_rwlock_unlock(&v->gate);
	ns = mono_ns() - t0;
	atomic_fetch_add_explicit(&v->io.flushes, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&v->io.flush_ns, ns, memory_order_relaxed);
	max = atomic_load_explicit(&v->io.flush_max_ns, memory_order_relaxed);
	while (ns > max && !atomic_compare_exchange_weak_explicit(&v->io.flush_max_ns, &max, ns,
								  memory_order_relaxed,
								  memory_order_relaxed))
		;
	return rc;
}

static void vdev_release(void *ctx)
{
	svc_volume_put(ctx);
}

const struct vss_device_ops svc_volume_device_ops = {
	.read = vdev_read,
	.write = vdev_write,
	.flush = vdev_flush,
	.release = vdev_release,
};

struct shadow_dev {
	struct svc_volume *vol;
	struct vss_cow_shadow *h;
};

static ssize_t sdev_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct shadow_dev *d = ctx;

	return vss_cow_shadow_read(d->h, buf, len, off);
}

static void sdev_release(void *ctx)
{
	struct shadow_dev *d = ctx;

	vss_cow_shadow_close(d->h);
	svc_volume_put(d->vol);
	free(d);
}

const struct vss_device_ops svc_shadow_device_ops = {
	.read = sdev_read,
	.release = sdev_release,
};

int svc_shadow_add_device(struct vss_service *svc, struct svc_shadow *sh,
			  struct vss_error *err)
{
	struct shadow_dev *d = calloc(1, sizeof(*d));
	vss_cow_id id;
	int rc;

	if (!d)
		return vss_error_set(err, -ENOMEM, "out of memory");
	svc_id_parse(sh->rec.id, id);
	rc = vss_cow_shadow_open(sh->vol->cow, id, &d->h);
	if (rc < 0) {
		free(d);
		return vss_error_set(err, rc, "cannot open shadow %s: %s", sh->rec.id,
				     strerror(-rc));
	}
	d->vol = sh->vol;
	svc_volume_get(sh->vol);
	rc = svc->tr->ops->add(svc->tr, VSS_DEVICE_SHADOW, sh->rec.id, sh->vol->rec.size,
			       &svc_shadow_device_ops, d, err);
	if (rc < 0) {
		vss_cow_shadow_close(d->h);
		svc_volume_put(d->vol);
		free(d);
	}
	return rc;
}

/* ---- lifetime ---- */

void svc_volume_get(struct svc_volume *v)
{
	int was = atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);

	/* Only a holder of a reference may take another. */
	assert(was > 0);
	(void)was;
}

void svc_volume_put(struct svc_volume *v)
{
	int was = atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel);

	assert(was > 0);
	if (was != 1)
		return;
	if (v->cow) {
		int rc = vss_cow_close(v->cow);

		if (rc < 0)
			vss_log("volume %s: closing the engine failed: %s", v->rec.name,
				strerror(-rc));
	}
	if (v->direct && v->direct->release)
		v->direct->release(v->direct_ctx);
	if (v->origin_fd >= 0)
		close(v->origin_fd);
	if (v->deleted && !v->direct) {
		/* A detached diff area's path is no longer its file. */
		svc_diff_unlink(v->svc, v->rec.diff_path, !v->detached);
		if (v->rec.owns_backing)
			unlink(v->rec.backing);
	}
	pthread_rwlock_destroy(&v->gate);
	pthread_rwlock_destroy(&v->wgate);
	free(v->rec.backing);
	free(v->rec.diff_path);
	free(v->rec.note);
	free(v->offline_why);
	free(v->mount_dir);
	free(v);
}

/* Called on the engine's thread: log now, leave the bookkeeping to the housekeeper. */
static void on_engine_event(void *arg, const struct vss_cow_event *ev)
{
	struct svc_volume *v = arg;
	struct vss_service *svc = v->svc;
	struct svc_event *e;
	char id[37];

	svc_id_str(ev->shadow, id);
	switch (ev->type) {
	case VSS_COW_EV_SHADOW_DELETED:
		vss_log("shadow %s of volume %s deleted: diff area limit (%s)", id,
			v->rec.name, ev->msg ? ev->msg : "");
		break;
	case VSS_COW_EV_SHADOW_INVALID:
		vss_log("shadow %s of volume %s invalidated: %s", id, v->rec.name,
			ev->msg ? ev->msg : "");
		return;
	case VSS_COW_EV_DIFF_NEAR_FULL:
		vss_log("volume %s: diff area near full: %s", v->rec.name,
			ev->msg ? ev->msg : "");
		return;
	case VSS_COW_EV_METADATA_ERROR:
		vss_log("volume %s: diff area metadata cannot be written: %s", v->rec.name,
			ev->msg ? ev->msg : "");
		return;
	case VSS_COW_EV_WRITE_ERROR:
		vss_log("volume %s: %s", v->rec.name, ev->msg ? ev->msg : "write error");
		return;
	case VSS_COW_EV_BOOKMARK_LOST:
		vss_log("volume %s: bookmark %s: %s", v->rec.name, id, ev->msg ? ev->msg : "lost");
		return;
	default:
		return;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->type = ev->type;
	snprintf(e->volume, sizeof(e->volume), "%s", v->rec.name);
	memcpy(e->shadow, id, sizeof(e->shadow));
	pthread_mutex_lock(&svc->ev_lock);
	e->next = svc->ev_head;
	svc->ev_head = e;
	pthread_cond_signal(&svc->ev_cond);
	pthread_mutex_unlock(&svc->ev_lock);
}

static void id_to_hex(const unsigned char id[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static bool hex_to_id(const char *hex, unsigned char id[16])
{
	for (int i = 0; i < 16; i++) {
		unsigned int b;

		if (!isxdigit((unsigned char)hex[2 * i]) || !isxdigit((unsigned char)hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2x", &b) != 1)
			return false;
		id[i] = (unsigned char)b;
	}
	return hex[32] == '\0';
}

int svc_volume_cow_open(struct svc_volume *v, const char *diff_path, unsigned int flags,
			struct vss_cow_volume **out, struct vss_error *err)
{
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_cow_guard guard = { 0 };
	char marks[2][PATH_MAX];
	unsigned char id[16];

	cfg.block_size = v->rec.block_size;
	cfg.max_diff_bytes = v->rec.max_diff;
	cfg.event = on_engine_event;
	cfg.event_arg = v;
	svc_diff_marks(v->svc, diff_path, marks);
	guard.marks[0] = marks[0];
	guard.marks[1] = marks[1];
	if (!(flags & VSS_COW_CREATE) && hex_to_id(v->rec.diff_id, id))
		guard.expect_id = id;
	return vss_cow_open_guarded(v->rec.backing, diff_path, &cfg, flags, &guard, out, err);
}

bool svc_volume_learn_diff(struct svc_volume *v)
{
	unsigned char id[16];
	char hex[33];

	vss_cow_diff_identity(v->cow, id, &v->diff_dev, &v->diff_ino);
	id_to_hex(id, hex);
	if (strcmp(hex, v->rec.diff_id) == 0)
		return false;
	memcpy(v->rec.diff_id, hex, sizeof(hex));
	return true;
}

void svc_volume_set_note(struct svc_volume *v, const char *note)
{
	free(v->rec.note);
	v->rec.note = note ? strdup(note) : NULL;
}

void svc_volume_device_path(struct vss_service *svc, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/volumes/%s", svc->dev_dir, name);
}

struct svc_volume *svc_volume_new(struct vss_service *svc, const struct vss_catalog_volume *rec)
{
	pthread_rwlockattr_t attr;
	struct svc_volume *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->svc = svc;
	v->rec = *rec;
	v->rec.backing = strdup(rec->backing);
	v->rec.diff_path = strdup(rec->diff_path);
	v->rec.note = rec->note ? strdup(rec->note) : NULL;
	v->origin_fd = -1;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&v->gate, &attr);
	pthread_rwlock_init(&v->wgate, &attr);
	pthread_rwlockattr_destroy(&attr);
	atomic_init(&v->refs, 1);
	if (!v->rec.backing || !v->rec.diff_path || (rec->note && !v->rec.note)) {
		svc_volume_put(v);
		return NULL;
	}
	return v;
}

/* Whether block device @dev is mounted (/proc/self/mountinfo): where, in @out. */
static bool mounted_at(dev_t dev, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], mnt[4096];
	unsigned int ma, mi;
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &ma, &mi, mnt) == 3 &&
		    makedev(ma, mi) == dev) {
			snprintf(out, len, "is mounted at %.400s", mnt);
			found = true;
		}
	fclose(f);
	return found;
}

/* The first holder of @dev in sysfs (device mapper, md, bcache), in @out. */
static bool held_by(dev_t dev, char *out, size_t len)
{
	char dir[64], name[300], dm[300] = "";
	struct dirent *e;
	bool found = false;
	DIR *d;

	snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u/holders", major(dev), minor(dev));
	if (!(d = opendir(dir)))
		return false;
	while (!found && (e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(name, sizeof(name), "/sys/class/block/%.200s/dm/name", e->d_name);
		if ((f = fopen(name, "re"))) {
			if (!fgets(dm, sizeof(dm), f))
				dm[0] = '\0';
			dm[strcspn(dm, "\n")] = '\0';
			fclose(f);
		}
		snprintf(out, len, "is held by %.200s%s%.200s%s", e->d_name, dm[0] ? " (" : "",
			 dm, dm[0] ? ", device mapper: an LVM volume, a mapping or a crypt device "
			 "on it)" : "");
		found = true;
	}
	closedir(d);
	return found;
}

/* Whether @dev is an active swap area (/proc/swaps), in @out. */
static bool swap_on(dev_t dev, char *out, size_t len)
{
	FILE *f = fopen("/proc/swaps", "re");
	char line[4096], path[4096];
	struct stat st;
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%4095s", path) == 1 && path[0] == '/' && stat(path, &st) == 0 &&
		    S_ISBLK(st.st_mode) && st.st_rdev == dev) {
			snprintf(out, len, "is in use as swap");
			found = true;
		}
	fclose(f);
	return found;
}

/*
 * Why block device @dev cannot be opened exclusively: mounted (where),
 * held (by what), swap, or one of its partitions so; else another
 * exclusive opener.  For the refusal's message.
 */
static void busy_why(dev_t dev, char *out, size_t len)
{
	char dir[64], part[600], why[512];
	struct dirent *e;
	DIR *d;

	if (mounted_at(dev, out, len) || held_by(dev, out, len) || swap_on(dev, out, len))
		return;
	snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u", major(dev), minor(dev));
	if ((d = opendir(dir))) {
		while ((e = readdir(d))) {
			unsigned int ma, mi;
			FILE *f;
			int n;

			snprintf(part, sizeof(part), "%s/%.200s/partition", dir, e->d_name);
			if (e->d_name[0] == '.' || access(part, F_OK) < 0)
				continue;
			snprintf(part, sizeof(part), "%s/%.200s/dev", dir, e->d_name);
			if (!(f = fopen(part, "re")))
				continue;
			n = fscanf(f, "%u:%u", &ma, &mi);
			fclose(f);
			if (n == 2 && (mounted_at(makedev(ma, mi), why, sizeof(why)) ||
				       held_by(makedev(ma, mi), why, sizeof(why)) ||
				       swap_on(makedev(ma, mi), why, sizeof(why)))) {
				snprintf(out, len, "has partition %.200s, which %s", e->d_name, why);
				closedir(d);
				return;
			}
		}
		closedir(d);
	}
	snprintf(out, len, "is open exclusively by another program");
}

int svc_volume_open_origin(struct svc_volume *v, struct vss_error *err)
{
	const char *path = v->rec.backing;
	uint64_t size = 0;
	struct stat st;
	int fd;

	if (stat(path, &st) < 0)
		return vss_error_set(err, -errno, "the origin %s: %s", path, strerror(errno));
	if (S_ISBLK(st.st_mode)) {
		/* Exclusive: fails while it is mounted or held (device mapper,
		 * md, swap, another exclusive opener), and keeps anyone from
		 * mounting it while vss serves it. */
		fd = open(path, O_RDWR | O_EXCL | O_CLOEXEC);
		if (fd < 0 && errno == EBUSY) {
			char why[1024];

			busy_why(st.st_rdev, why, sizeof(why));
			return vss_error_set(err, -EBUSY, "the origin %s is in use: it %s; "
					     "unmount or release it first", path, why);
		}
	} else if (S_ISREG(st.st_mode)) {
		fd = open(path, O_RDWR | O_CLOEXEC);
	} else {
		return vss_error_set(err, -EINVAL, "the origin %s is neither a file nor a block "
				     "device", path);
	}
	if (fd < 0)
		return vss_error_set(err, -errno, "the origin %s: %s", path, strerror(errno));
	v->origin_fd = fd;
	/* What the engine would refuse of the origin is said here, so that
	 * what it refuses afterwards is the diff area's doing. */
	if (S_ISREG(st.st_mode) ? st.st_size == 0 :
	    ioctl(fd, BLKGETSIZE64, &size) < 0 || size == 0)
		return vss_error_set(err, -EINVAL, "the origin %s is empty", path);
	return 0;
}

int svc_volume_serve(struct vss_service *svc, struct svc_volume *v, struct vss_error *err)
{
	int rc;

	if (v->cow) {
		v->rec.size = vss_cow_size(v->cow);
		v->rec.block_size = vss_cow_block_size(v->cow);
	}
	svc_volume_get(v);
	rc = svc->tr->ops->add(svc->tr, VSS_DEVICE_VOLUME, v->rec.name, v->rec.size,
			       &svc_volume_device_ops, v, err);
	if (rc < 0) {
		/* The reference taken for the device, never added: the caller's stays. */
		int was = atomic_fetch_sub_explicit(&v->refs, 1, memory_order_relaxed);

		assert(was > 1);
		(void)was;
		return rc;
	}
	/* Append, so listings keep creation order. */
	struct svc_volume **pp = &svc->volumes;

	while (*pp)
		pp = &(*pp)->next;
	*pp = v;
	return 0;
}

int svc_volume_load(struct vss_service *svc, const struct vss_catalog_volume *rec,
		    unsigned int cow_flags, struct svc_volume **out, struct vss_error *err)
{
	struct svc_volume *v = svc_volume_new(svc, rec);
	int rc;

	*out = NULL;
	if (!v)
		return vss_error_set(err, -ENOMEM, "out of memory");
	if ((rc = svc_volume_open_origin(v, err)) < 0 ||
	    (rc = svc_volume_cow_open(v, rec->diff_path, cow_flags, &v->cow, err)) < 0) {
		v->cow = NULL;
		svc_volume_put(v);
		return rc;
	}
	svc_volume_learn_diff(v);
	if ((rc = svc_volume_serve(svc, v, err)) < 0) {
		svc_volume_put(v);
		return rc;
	}
	*out = v;
	return 0;
}

struct svc_volume *svc_volume_find(struct vss_service *svc, const char *name)
{
	for (struct svc_volume *v = svc->volumes; v; v = v->next)
		if (strcmp(v->rec.name, name) == 0)
			return v;
	return NULL;
}

int svc_volume_open_count(struct vss_service *svc, struct svc_volume *v)
{
	return (int)svc->tr->ops->open_count(svc->tr, VSS_DEVICE_VOLUME, v->rec.name);
}

static bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

int svc_resolve_target(struct vss_service *svc, const char *target,
		       struct svc_volume **out, struct vss_error *err)
{
	char real[PATH_MAX];
	struct stat st, mst;

	*out = NULL;
	if (target[0] != '/') {
		*out = svc_volume_find(svc, target);
		if (!*out)
			return vss_error_set(err, -ENOENT, "no volume named \"%s\"", target);
		return 0;
	}
	if (!realpath(target, real) || stat(real, &st) < 0)
		return vss_error_set(err, -ENOENT, "%s: %s", target, strerror(errno));
	/* The volume whose filesystem holds the path: a volume mounted inside
	 * another is not the outer one.  Else the innermost mount the path is
	 * under (a btrfs subvolume has a device number of its own). */
	for (struct svc_volume *v = svc->volumes; v; v = v->next)
		if (v->mount_dir && stat(v->mount_dir, &mst) == 0 && mst.st_dev == st.st_dev) {
			*out = v;
			return 0;
		}
	for (struct svc_volume *v = svc->volumes; v; v = v->next)
		if (v->mount_dir && path_within(real, v->mount_dir) &&
		    (!*out || strlen(v->mount_dir) > strlen((*out)->mount_dir)))
			*out = v;
	if (*out)
		return 0;
	return vss_error_set(err, -ENOENT, "%s is not inside a mounted volume", target);
}

static int count_rows(void *arg, const struct vss_catalog_shadow *s)
{
	struct { const char *name; int n; } *c = arg;

	if (strcmp(s->volume, c->name) == 0)
		c->n++;
	return 0;
}

/* Shadows the catalog knows of volume @name (for volumes not served). */
static int catalog_shadow_count(struct vss_service *svc, const char *name)
{
	struct { const char *name; int n; } c = { name, 0 };

	vss_catalog_shadow_each(svc->cat, count_rows, &c, NULL);
	return c.n;
}

/*
 * A volume as listed.  "state": "online"; "degraded" while its note says
 * what happened to its diff area (lost, damaged, moved, detached: until
 * the shadows concerned are deleted); "offline" when it is not served
 * (the origin cannot be opened): "reason" says why.
 */
static json_t *volume_json(struct vss_service *svc, struct svc_volume *v)
{
	char dev[PATH_MAX];
	const char *state = v->offline_why ? "offline" : v->rec.note ? "degraded" : "online";
	const char *reason = v->offline_why ? v->offline_why : v->rec.note;

	svc_volume_device_path(svc, v->rec.name, dev, sizeof(dev));
	return json_pack("{s:s, s:I, s:I, s:s, s:o, s:o, s:o, s:o, s:i, s:s, s:s, s:o}",
			 "name", v->rec.name,
			 "size", (json_int_t)v->rec.size,
			 "block_size", (json_int_t)v->rec.block_size,
			 "backing", v->rec.backing,
			 "device", v->cow || v->direct ? json_string(dev) : json_null(),
			 "mount", v->mount_dir ? json_string(v->mount_dir) : json_null(),
			 "fstype", v->mount_dir ? json_string(v->fstype) : json_null(),
			 "loop", v->mount_dir ? json_string(v->mount_loop) : json_null(),
			 "shadows", v->cow || v->direct ? svc_shadow_count(svc, v)
					   : catalog_shadow_count(svc, v->rec.name),
			 "diff_area", v->rec.diff_path,
			 "state", state,
			 "reason", reason ? json_string(reason) : json_null());
}

static int check_name(const char *name, struct vss_error *err)
{
	size_t n = strlen(name);

	if (n == 0 || n > VSS_NAME_MAX || name[0] == '.' || name[0] == '-')
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			goto bad;
	return 0;
bad:
	return vss_error_set(err, -EINVAL, "invalid volume name \"%s\": use 1 to %d letters, "
			     "digits, '.', '_' or '-', not starting with '.' or '-'",
			     name, VSS_NAME_MAX);
}

static int backing_size(const char *path, uint64_t *size, struct vss_error *err)
{
	struct stat st;
	int fd;

	if (stat(path, &st) < 0)
		return vss_error_set(err, -errno, "backing %s: %s", path, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (!S_ISBLK(st.st_mode))
		return vss_error_set(err, -EINVAL, "backing %s is neither a file nor a block device",
				     path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vss_error_set(err, -errno, "backing %s: %s", path, strerror(errno));
	if (ioctl(fd, BLKGETSIZE64, size) < 0) {
		int rc = -errno;

		close(fd);
		return vss_error_set(err, rc, "backing %s: %s", path, strerror(-rc));
	}
	close(fd);
	return 0;
}

/* ---- what may back a volume: nothing vss already uses, by device and inode ---- */

/* The same file: a block device by its number, anything else by its
 * filesystem and inode (so hard links and other names are the same). */
static bool same_file(const struct stat *a, const struct stat *b)
{
	if (S_ISBLK(a->st_mode) || S_ISBLK(b->st_mode))
		return S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode) && a->st_rdev == b->st_rdev;
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

struct probe {
	struct stat st;                 /* the candidate */
	dev_t fuse_dev;                 /* RUN/dev: vss's own devices */
	char what[2 * PATH_MAX];        /* what it turned out to be */
};

/* Walks @dir (not into other filesystems, nor into vss's device tree),
 * looking for the candidate; true if found (probe->what says where). */
static bool walk_for(struct probe *p, int dirfd, const char *dir, dev_t dev, int depth)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *de;
	bool found = false;

	if (!d) {
		close(dirfd);
		return false;
	}
	while (!found && (de = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;
		int fd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (same_file(&st, &p->st)) {
			snprintf(p->what, sizeof(p->what), "is vssd's own file %s", path);
			found = true;
		} else if (S_ISDIR(st.st_mode) && st.st_dev == dev && depth < 8 &&
			   (fd = openat(dirfd, de->d_name,
					O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
			found = walk_for(p, fd, path, dev, depth + 1);
		}
	}
	closedir(d);
	return found;
}

static bool under_dir(struct probe *p, const char *dir)
{
	struct stat st;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return false;
	}
	return walk_for(p, fd, dir, st.st_dev, 0);
}

/* The backing file of loop device @dev as a struct stat (a block device
 * or a file); false if it has none. */
static bool loop_backing(const char *dev, struct stat *out)
{
	struct loop_info64 li;
	int fd = open(dev, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return false;
	rc = ioctl(fd, LOOP_GET_STATUS64, &li);
	close(fd);
	if (rc < 0)
		return false;
	memset(out, 0, sizeof(*out));
	if (li.lo_rdevice) {
		out->st_mode = S_IFBLK;
		out->st_rdev = (dev_t)li.lo_rdevice;
	} else {
		out->st_mode = S_IFREG;
		out->st_dev = (dev_t)li.lo_device;
		out->st_ino = (ino_t)li.lo_inode;
	}
	return true;
}

static void loop_over(void *arg, const char *dev, const char *backing)
{
	struct probe *p = arg;
	struct stat b;

	if (!p->what[0] && loop_backing(dev, &b) && same_file(&b, &p->st))
		snprintf(p->what, sizeof(p->what), "is in use: loop device %s is attached to it",
			 dev);
}

/* Whether @p's candidate is something vss uses: a volume's origin or diff
 * area, a file of its state or run directory (the catalog, its -wal and
 * -shm among them), one of its devices.  Sets p->what. */
static bool used_by_vss(struct vss_service *svc, struct probe *p)
{
	struct svc_volume *lists[2] = { svc->volumes, svc->offline };
	struct stat st;

	for (int l = 0; l < 2; l++)
		for (struct svc_volume *v = lists[l]; v; v = v->next) {
			if ((v->origin_fd >= 0 ? fstat(v->origin_fd, &st) : stat(v->rec.backing, &st)) == 0 &&
			    same_file(&st, &p->st)) {
				snprintf(p->what, sizeof(p->what), "already backs volume %s",
					 v->rec.name);
				return true;
			}
			if ((stat(v->rec.diff_path, &st) == 0 && same_file(&st, &p->st)) ||
			    (v->cow && S_ISREG(p->st.st_mode) && v->diff_dev == p->st.st_dev &&
			     v->diff_ino == p->st.st_ino)) {
				snprintf(p->what, sizeof(p->what), "is the diff area of volume %s",
					 v->rec.name);
				return true;
			}
		}
	if (!S_ISBLK(p->st.st_mode) && p->st.st_dev == p->fuse_dev) {
		snprintf(p->what, sizeof(p->what), "is a vss device");
		return true;
	}
	return under_dir(p, svc->state_dir) || under_dir(p, svc->run_dir);
}

/*
 * Refuses a backing that vss already uses (used_by_vss), that a loop
 * device is attached to, and a loop device over anything vss uses (its
 * own devices among them).  A block device that is mounted or held is
 * refused when the volume opens it exclusively (svc_volume_open_origin).
 * A file on a filesystem on a vss volume is allowed: the set coordinator refuses
 * to freeze such a filesystem.
 */
static int check_backing(struct vss_service *svc, const char *path, struct vss_error *err)
{
	struct probe p = { 0 };
	struct stat st;

	if (path_within(path, svc->state_dir) || path_within(path, svc->run_dir))
		return vss_error_set(err, -EINVAL, "backing %s lies in vssd's %s directory", path,
				     path_within(path, svc->run_dir) ? "run" : "state");
	if (stat(path, &p.st) < 0)
		return vss_error_set(err, -errno, "backing %s: %s", path, strerror(errno));
	p.fuse_dev = stat(svc->dev_dir, &st) == 0 ? st.st_dev : (dev_t)-1;
	if (used_by_vss(svc, &p))
		goto refuse;
	vss_loop_each_under("", loop_over, &p);
	if (p.what[0])
		goto refuse;
	if (S_ISBLK(p.st.st_mode) && major(p.st.st_rdev) == LOOP_MAJOR) {
		char dev[VSS_LOOP_NAME_MAX];
		struct probe inner = { .fuse_dev = p.fuse_dev };

		snprintf(dev, sizeof(dev), "/dev/loop%u", minor(p.st.st_rdev));
		if (loop_backing(dev, &inner.st) && used_by_vss(svc, &inner)) {
			snprintf(p.what, sizeof(p.what), "is a loop device over a file that %.4000s",
				 inner.what);
			goto refuse;
		}
	}
	return 0;
refuse:
	return vss_error_set(err, -EBUSY, "backing %s %s", path, p.what);
}

static int name_matches(void *arg, const struct vss_catalog_volume *v)
{
	return strcmp(v->name, arg) == 0;
}

/* A volume that could not be opened at start is not served, but keeps its name. */
static bool in_catalog(struct vss_service *svc, const char *name)
{
	return vss_catalog_volume_each(svc->cat, name_matches, (void *)name, NULL) > 0;
}

static struct svc_volume *offline_find(struct vss_service *svc, const char *name)
{
	for (struct svc_volume *v = svc->offline; v; v = v->next)
		if (strcmp(v->rec.name, name) == 0)
			return v;
	return NULL;
}

/* "volume create NAME --rbd POOL/IMAGE": the image is the origin, with no
 * diff area (provider/rbd). */
static int create_rbd(struct vss_service *svc, const char *name, const char *spec,
		      const char *backing, uint64_t size, json_t **res, struct vss_error *err)
{
	struct svc_volume *v;
	int rc;

	if (backing)
		return vss_error_set(err, -EINVAL, "a volume has a backing file or an RBD image, "
				     "not both");
	if ((rc = svc_rbd_volume_create(svc, name, spec, size, &v, err)) < 0)
		return rc;
	if ((rc = vss_catalog_volume_put(svc->cat, &v->rec, err)) < 0) {
		svc->tr->ops->remove(svc->tr, VSS_DEVICE_VOLUME, name);
		for (struct svc_volume **pp = &svc->volumes; *pp; pp = &(*pp)->next)
			if (*pp == v) {
				*pp = v->next;
				break;
			}
		svc_volume_put(v);
		return rc;
	}
	vss_log("volume %s created on RBD image %s: %llu bytes", name, spec,
		(unsigned long long)v->rec.size);
	*res = volume_json(svc, v);
	json_object_set_new(*res, "warnings", json_array());
	return 0;
}

int svc_op_volume_create(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			 struct vss_error *err)
{
	struct vss_catalog_volume rec = { 0 };
	const char *name, *backing, *rbd;
	char backing_real[PATH_MAX], path[PATH_MAX], diff[PATH_MAX], tag[9];
	uint64_t size = 0, block_size = VSS_COW_BLOCK_DEFAULT;
	struct svc_volume *v;
	bool made_backing = false;
	int rc, fd;

	if ((rc = svc_arg_str(args, "name", true, &name, err)) < 0 ||
	    (rc = svc_arg_str(args, "backing", false, &backing, err)) < 0 ||
	    (rc = svc_arg_str(args, "rbd", false, &rbd, err)) < 0 ||
	    (rc = svc_arg_u64(args, "size", false, &size, err)) < 0 ||
	    (rc = svc_arg_u64(args, "block_size", false, &block_size, err)) < 0 ||
	    (rc = check_name(name, err)) < 0)
		return rc;
	if ((v = offline_find(svc, name)))
		return vss_error_set(err, -EEXIST, "a volume named \"%s\" already exists (not "
				     "served: %s; delete it first)", name, v->offline_why);
	if (svc_volume_find(svc, name) || in_catalog(svc, name))
		return vss_error_set(err, -EEXIST, "a volume named \"%s\" already exists", name);
	if (rbd)
		return create_rbd(svc, name, rbd, backing, size, res, err);
	if (block_size < VSS_COW_BLOCK_MIN || block_size > VSS_COW_BLOCK_MAX ||
	    (block_size & (block_size - 1)))
		return vss_error_set(err, -EINVAL, "block size %llu is not a power of two "
				     "from 4K to 1M", (unsigned long long)block_size);
	snprintf(tag, sizeof(tag), "%s", svc_short_tag());
	if (backing) {
		if (backing[0] != '/')
			return vss_error_set(err, -EINVAL, "backing %s must be an absolute path",
					     backing);
		if (!realpath(backing, backing_real))
			return vss_error_set(err, -errno, "backing %s: %s", backing,
					     strerror(errno));
		if (path_within(backing_real, svc->dev_dir))
			return vss_error_set(err, -EINVAL, "backing %s is a vss device", backing);
		if ((rc = check_backing(svc, backing_real, err)) < 0 ||
		    (rc = backing_size(backing_real, &size, err)) < 0)
			return rc;
		if (size < VSS_COW_BLOCK_MIN)
			return vss_error_set(err, -EINVAL, "backing %s is too small (%llu bytes)",
					     backing, (unsigned long long)size);
		snprintf(path, sizeof(path), "%s", backing_real);
	} else {
		if (size == 0)
			return vss_error_set(err, -EINVAL, "a size is needed without a backing file");
		if (size % 4096)
			return vss_error_set(err, -EINVAL, "size %llu is not a multiple of 4K",
					     (unsigned long long)size);
		snprintf(path, sizeof(path), "%s/volumes/%s-%s.img", svc->state_dir, name, tag);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return vss_error_set(err, -errno, "cannot create %s: %s", path,
					     strerror(errno));
		if (ftruncate(fd, (off_t)size) < 0) {
			rc = vss_error_set(err, -errno, "cannot size %s: %s", path, strerror(errno));
			close(fd);
			unlink(path);
			return rc;
		}
		close(fd);
		made_backing = true;
	}
	snprintf(diff, sizeof(diff), "%s/diff/%s-%s.diff", svc->state_dir, name, tag);
	snprintf(rec.name, sizeof(rec.name), "%s", name);
	rec.size = size;
	rec.block_size = (uint32_t)block_size;
	rec.backing = path;
	rec.owns_backing = made_backing;
	rec.diff_path = diff;
	rec.storage_explicit = false;
	rec.max_diff = VSS_COW_UNBOUNDED;
	rec.created_ns = svc_now_ns();
	rc = svc_volume_load(svc, &rec, VSS_COW_CREATE, &v, err);
	if (rc < 0)
		goto fail;
	rc = vss_catalog_volume_put(svc->cat, &v->rec, err);
	if (rc < 0) {
		svc->tr->ops->remove(svc->tr, VSS_DEVICE_VOLUME, name);
		for (struct svc_volume **pp = &svc->volumes; *pp; pp = &(*pp)->next)
			if (*pp == v) {
				*pp = v->next;
				break;
			}
		v->deleted = true;
		v->rec.owns_backing = made_backing;
		svc_volume_put(v);
		return rc;
	}
	vss_log("volume %s created: %llu bytes, block size %u, backing %s", name,
		(unsigned long long)v->rec.size, v->rec.block_size, v->rec.backing);
	*res = volume_json(svc, v);
	json_object_set_new(*res, "warnings", svc_volatile_warning(v));
	return 0;
fail:
	unlink(diff);
	if (made_backing)
		unlink(path);
	return rc;
}

int svc_op_volume_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
		       struct vss_error *err)
{
	json_t *arr = json_array();

	for (struct svc_volume *v = svc->volumes; v; v = v->next)
		json_array_append_new(arr, volume_json(svc, v));
	for (struct svc_volume *v = svc->offline; v; v = v->next)
		json_array_append_new(arr, volume_json(svc, v));
	*res = json_pack("{s:o}", "volumes", arr);
	return 0;
}

/* Forgets where @v was mounted (not the catalog's record). */
static void forget_mount(struct svc_volume *v)
{
	free(v->mount_dir);
	v->mount_dir = NULL;
	v->mount_id = 0;
	v->mount_loop[0] = '\0';
	v->fstype[0] = '\0';
}

/*
 * Where the mount @id is now (in @tab, every mount read once), if it is
 * still the one vss made: from @loop whose backing file is @file (vssd's
 * device), or for a bind mount (@loop "") of the directory @file.  Mount
 * IDs and loop devices are both reused, so the source is checked as well
 * as the ID.
 */
static bool mount_now(struct vss_fs_mounts *tab, uint64_t id, const char *loop,
		      const char *file, char now[PATH_MAX])
{
	char source[PATH_MAX], backing[PATH_MAX];
	size_t n = strlen(file);
	struct stat a, b;

	if (!vss_fs_mounts_where(tab, id, now, source, sizeof(source)))
		return false;
	if (loop[0])
		return strcmp(source, loop) == 0 &&
		       vss_loop_backing(loop, backing, sizeof(backing)) == 0 &&
		       strncmp(backing, file, n) == 0 && (backing[n] == '\0' || backing[n] == '/');
	if (stat(now, &a) < 0 || stat(file, &b) < 0)
		return false;
	/* A block device mounted directly (an LVM snapshot): its filesystem's. */
	if (S_ISBLK(b.st_mode))
		return a.st_dev == b.st_rdev;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

struct moved {
	struct vss_catalog_mount m;
	char options[1024];
	bool found;
};

static int find_row(void *arg, const struct vss_catalog_mount *m)
{
	struct moved *mv = arg;

	if (m->shadow != mv->m.shadow || strcmp(m->name, mv->m.name) != 0)
		return 0;
	snprintf(mv->options, sizeof(mv->options), "%s", m->options);
	snprintf(mv->m.fstype, sizeof(mv->m.fstype), "%s", m->fstype);
	mv->found = true;
	return 1;
}

/* The catalog's record of the mount of @name follows it to @dir. */
static void record_moved(struct vss_service *svc, bool shadow, const char *name,
			 const char *dir)
{
	struct moved mv = { .m = { .shadow = shadow } };
	struct vss_error e;

	snprintf(mv.m.name, sizeof(mv.m.name), "%s", name);
	vss_catalog_mount_each(svc->cat, find_row, &mv, NULL);
	if (!mv.found)
		return;
	mv.m.dir = (char *)dir;
	mv.m.options = mv.options;
	if (vss_catalog_mount_put(svc->cat, &mv.m, &e) < 0)
		vss_log("%s %s: %s", shadow ? "shadow" : "volume", name, e.msg);
}

/*
 * Whether the mount @id that vss made (of @name: from @loop on @file, a
 * bind mount of @file, or of the block device @file itself) is still there.  If its directory was renamed or
 * swapped since, *@dir and the catalog's record follow it, so that vss
 * can still unmount it and the volume can be mounted again.
 */
static bool still_mounted(struct vss_service *svc, struct vss_fs_mounts *tab, bool shadow,
			  const char *name, uint64_t id, const char *loop, const char *file,
			  char **dir)
{
	char now[PATH_MAX], *moved;

	if (!id)    /* the kernel gave no mount ID: by path, as it was */
		return loop[0] ? vss_fs_mounted_from(loop, *dir) : vss_fs_is_mountpoint(*dir);
	if (!mount_now(tab, id, loop, file, now))
		return false;
	if (strcmp(now, *dir) != 0 && (moved = strdup(now))) {
		vss_log("%s %s: its mount moved from %s to %s; following it",
			shadow ? "shadow" : "volume", name, *dir, now);
		free(*dir);
		*dir = moved;
		record_moved(svc, shadow, name, moved);
	}
	return true;
}

void svc_refresh_mounts(struct vss_service *svc)
{
	struct vss_fs_mounts *tab = vss_fs_mounts_read();
	char file[PATH_MAX];

	svc_assert_locked(svc);
	/* Mounts cannot be read: nothing is forgotten on that account. */
	if (!tab) {
		svc_check_diff_areas(svc);
		return;
	}
	for (struct svc_volume *v = svc->volumes; v; v = v->next) {
		if (!v->mount_dir)
			continue;
		svc_volume_device_path(svc, v->rec.name, file, sizeof(file));
		if (still_mounted(svc, tab, false, v->rec.name, v->mount_id, v->mount_loop, file,
				  &v->mount_dir))
			continue;
		vss_log("volume %s: %s is no longer mounted from %s (unmounted outside vss); "
			"forgetting it", v->rec.name, v->mount_dir, v->mount_loop);
		vss_catalog_mount_delete(svc->cat, false, v->rec.name, NULL);
		forget_mount(v);
	}
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next) {
		if (!sh->expose_dir)
			continue;
		if (sh->expose_loop[0])
			sh->prov->location(svc, sh, file, sizeof(file));
		else
			snprintf(file, sizeof(file), "%s", sh->path ? sh->path : "");
		if (still_mounted(svc, tab, true, sh->rec.id, sh->expose_id, sh->expose_loop,
				  file, &sh->expose_dir))
			continue;
		vss_log("shadow %s: %s is no longer mounted (unmounted outside vss); "
			"forgetting it", sh->rec.id, sh->expose_dir);
		vss_catalog_mount_delete(svc->cat, true, sh->rec.id, NULL);
		svc_shadow_unexpose(sh, false);
	}
	vss_fs_mounts_free(tab);
	svc_check_diff_areas(svc);
}

int svc_volume_umount(struct vss_service *svc, struct svc_volume *v, bool force,
		      struct vss_error *err)
{
	bool lazy = false;
	int rc;

	if (!v->mount_dir)
		return 0;
	svc_gmt_release(svc, v);
	if (force) {
		if (vss_fs_is_mountpoint(v->mount_dir) && vss_fs_umount(v->mount_dir, NULL) < 0) {
			vss_log("volume %s: %s is busy; synced and detached lazily", v->rec.name,
				v->mount_dir);
			vss_fs_umount_force(v->mount_dir);
			lazy = true;
		}
	} else if ((rc = vss_fs_umount(v->mount_dir, err)) < 0) {
		return rc;
	}
	/* Unless still in use (lazily detached): the loop device outlives us. */
	if (!lazy && (rc = vss_loop_limit_dirty(v->mount_loop, 0)) < 0)
		vss_log("volume %s: %s keeps vssd's bound on its dirty pages: %s", v->rec.name,
			v->mount_loop, strerror(-rc));
	vss_log("volume %s unmounted from %s", v->rec.name, v->mount_dir);
	forget_mount(v);
	return 0;
}

/* Waits a little for the device to be closed: a loop device detaches
 * asynchronously after the unmount that released it. */
bool svc_volume_wait_closed(struct vss_service *svc, struct svc_volume *v)
{
	for (int i = 0; i < 40; i++) {
		if (svc_volume_open_count(svc, v) == 0)
			return true;
		usleep(50000);
	}
	return false;
}

/* A volume the catalog knows but that is not served: its rows go, and
 * the files vssd made for it. */
static int delete_offline(struct vss_service *svc, struct svc_volume *v, bool force,
			  json_t **res, struct vss_error *err)
{
	int n = catalog_shadow_count(svc, v->rec.name), rc;

	if (n > 0 && !force)
		return vss_error_set(err, -EBUSY, "volume %s has %d shadow cop%s in the catalog; "
				     "delete them first (or use --force)", v->rec.name, n,
				     n == 1 ? "y" : "ies");
	if ((rc = vss_catalog_volume_delete(svc->cat, v->rec.name, err)) < 0)
		return rc;
	for (struct svc_volume **pp = &svc->offline; *pp; pp = &(*pp)->next)
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	vss_log("volume %s deleted (it was not served: %s)", v->rec.name, v->offline_why);
	*res = json_pack("{s:s}", "deleted", v->rec.name);
	v->deleted = true;
	svc_volume_put(v);
	return 0;
}

int svc_op_volume_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			 struct vss_error *err)
{
	const char *name;
	bool force;
	struct svc_volume *v;
	int rc, n;

	if ((rc = svc_arg_str(args, "name", true, &name, err)) < 0 ||
	    (rc = svc_arg_bool(args, "force", &force, err)) < 0)
		return rc;
	if (offline_find(svc, name))
		return delete_offline(svc, offline_find(svc, name), force, res, err);
	/* Its shadows deleted after a backup that returned may still be going. */
	if (!force && (rc = svc_retire_wait(svc, name, err)) < 0)
		return rc;
	v = svc_volume_find(svc, name);
	if (!v)
		return vss_error_set(err, -ENOENT, "no volume named \"%s\"", name);
	if (v->mount_dir) {
		if (!force)
			return vss_error_set(err, -EBUSY, "volume %s is mounted at %s; "
					     "unmount it first (or use --force)", name,
					     v->mount_dir);
		if ((rc = svc_volume_umount(svc, v, false, err)) < 0)
			return rc;
	}
	if (svc_exports_has_volume(svc, name) && !force)
		return vss_error_set(err, -EBUSY, "volume %s is exported over NBD; unexport it "
				     "first (or use --force)", name);
	n = svc_shadow_count(svc, v);
	if (n > 0 && !force)
		return vss_error_set(err, -EBUSY, "volume %s has %d shadow cop%s%s; delete "
				     "them first (or use --force)", name, n, n == 1 ? "y" : "ies",
				     svc_shadow_count_why(svc, v));
	/* With --force: its nbdkit is a user of its device like any other. */
	svc_exports_end_of(svc, true, name);
	if (!svc_volume_wait_closed(svc, v)) {
		if (!force)
			return vss_error_set(err, -EBUSY, "the device of volume %s is open "
					     "(use --force to delete it anyway)", name);
		/* Its users get ENODEV from now on; the engine closes when they do. */
		vss_log("volume %s: deleting it while its device is open", name);
	}
	for (struct svc_shadow *sh = svc->shadows, *next; sh; sh = next) {
		next = sh->next;
		if (svc_shadow_of(sh, v))
			svc_shadow_remove(svc, sh, "its volume was deleted");
	}
	if ((rc = vss_catalog_volume_delete(svc->cat, name, err)) < 0)
		return rc;
	svc->tr->ops->remove(svc->tr, VSS_DEVICE_VOLUME, name);
	for (struct svc_volume **pp = &svc->volumes; *pp; pp = &(*pp)->next)
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	v->deleted = true;
	vss_log("volume %s deleted", name);
	svc_volume_put(v);
	*res = json_pack("{s:s}", "deleted", name);
	return 0;
}

/*
 * What a filesystem on a volume may hold dirty (in its loop device's bdi),
 * above what the device tree may (transport/fuse.c): doc/service.md.
 */
#define LOOP_DIRTY_MAX_BYTES (256ull << 20)

int svc_mount_device(struct vss_service *svc, const char *file, unsigned int flags,
		     int dirfd, const char *mkfs, const char *fstype, const char *options,
		     const char *what, char loop[VSS_LOOP_NAME_MAX], const char **found,
		     struct vss_fs_mounted *mounted, struct vss_error *err)
{
	bool shadow = flags & VSS_FS_SHADOW;
	int oflags = shadow ? O_RDONLY : O_RDWR;
	int rc, fd, file_fd;

	/* Through the page cache when the transport offers it (the write
	 * path and caching, doc/service.md), else direct as before. */
	if (svc->tr->ops->open_cached)
		rc = svc->tr->ops->open_cached(svc->tr, file, oflags, &file_fd);
	else
		rc = (file_fd = open(file, oflags | O_CLOEXEC)) < 0 ? -errno : 0;
	if (rc < 0)
		return vss_error_set(err, rc, "cannot open %s: %s", file, strerror(-rc));
	rc = vss_loop_attach(file_fd, file, shadow, !svc->tr->ops->open_cached, loop, &fd, err);
	close(file_fd);
	if (rc < 0)
		return rc;
	if (!shadow && (rc = vss_loop_limit_dirty(loop, LOOP_DIRTY_MAX_BYTES)) < 0)
		vss_log("%s: the filesystem on %s keeps the kernel's bound on its dirty pages: %s",
			what, loop, strerror(-rc));
	if (mkfs && (rc = vss_fs_mkfs(mkfs, loop, flags & SVC_DEVICE_ZEROED, err)) < 0)
		goto out;
	flags &= ~SVC_DEVICE_ZEROED;
	if (!(*found = vss_fs_detect(loop)))
		rc = vss_error_set(err, -EINVAL, "%s holds no ext4, xfs or btrfs filesystem%s",
				   what, shadow ? " to mount" : " (make one with --mkfs)");
	else if (fstype && strcmp(fstype, *found) != 0)
		rc = vss_error_set(err, -EINVAL, "%s holds %s, not the %s it held when it was "
				   "mounted", what, *found, fstype);
	else
		rc = vss_fs_mount(loop, dirfd, *found, options, flags, mounted, err);
out:
	close(fd);  /* autoclear: the loop device now lives as long as the mount */
	return rc;
}

/*
 * Whether the device of @v reads all zeros, so that a mkfs on it need not
 * write zeros (vss_fs_mkfs): an engine's volume whose origin is a regular
 * file with no data in it at all (SEEK_DATA finds none), once the engine's
 * redo queue (a persistent shadow's first writes) is in it.  False when
 * unsure: a block device, a filesystem without SEEK_DATA (all data), a
 * volume of another provider.
 */
static bool volume_reads_zeros(struct svc_volume *v)
{
	struct stat st;
	bool zeros = false;

	pthread_rwlock_rdlock(&v->gate);
	pthread_rwlock_rdlock(&v->wgate);
	if (v->cow && !v->direct && v->origin_fd >= 0 && fstat(v->origin_fd, &st) == 0 &&
	    S_ISREG(st.st_mode) && vss_cow_flush(v->cow) == 0)
		zeros = lseek(v->origin_fd, 0, SEEK_DATA) < 0 && errno == ENXIO;
	pthread_rwlock_unlock(&v->wgate);
	pthread_rwlock_unlock(&v->gate);
	return zeros;
}

int svc_volume_mount(struct vss_service *svc, struct svc_volume *v, const char *dir,
		     unsigned int how, const char *mkfs, const char *fstype,
		     const char *options, struct vss_error *err)
{
	char real[PATH_MAX], dev[PATH_MAX], loop[VSS_LOOP_NAME_MAX], what[80];
	struct vss_fs_mounted m;
	const char *found;
	int rc, dirfd;

	if (v->mount_dir)
		return vss_error_set(err, -EBUSY, "volume %s is already mounted at %s",
				     v->rec.name, v->mount_dir);
	if (svc_volume_open_count(svc, v) > 0)
		return vss_error_set(err, -EBUSY, "the device of volume %s is in use",
				     v->rec.name);
	if ((rc = svc_mountpoint_open(svc, NULL, dir, how, &dirfd, real, err)) < 0)
		return rc;
	svc_volume_device_path(svc, v->rec.name, dev, sizeof(dev));
	snprintf(what, sizeof(what), "volume %s", v->rec.name);
	rc = svc_mount_device(svc, dev, mkfs && volume_reads_zeros(v) ? SVC_DEVICE_ZEROED : 0,
			      dirfd, mkfs, fstype, options, what, loop, &found, &m, err);
	close(dirfd);
	if (rc < 0)
		return rc;
	/* Where it landed, which is what was opened and checked as @real even
	 * if the directory has been renamed since. */
	if (!m.dir[0])
		snprintf(m.dir, sizeof(m.dir), "%s", real);
	if (!(v->mount_dir = strdup(m.dir))) {
		vss_fs_umount_force(m.dir);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	v->mount_id = m.id;
	snprintf(v->mount_loop, sizeof(v->mount_loop), "%s", loop);
	snprintf(v->fstype, sizeof(v->fstype), "%s", found);
	vss_log("volume %s mounted at %s (%s on %s)", v->rec.name, v->mount_dir, found, loop);
	return 0;
}

int svc_op_volume_mount(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			struct vss_error *err)
{
	const char *name, *dir, *mkfs, *options;
	struct vss_catalog_mount m = { .shadow = false };
	struct svc_volume *v;
	int rc;

	if ((rc = svc_arg_str(args, "name", true, &name, err)) < 0 ||
	    (rc = svc_arg_str(args, "dir", true, &dir, err)) < 0 ||
	    (rc = svc_arg_str(args, "mkfs", false, &mkfs, err)) < 0 ||
	    (rc = svc_arg_str(args, "options", false, &options, err)) < 0)
		return rc;
	v = svc_volume_find(svc, name);
	if (!v)
		return vss_error_set(err, -ENOENT, "no volume named \"%s\"", name);
	if (v->mount_dir)
		return vss_error_set(err, -EBUSY, "volume %s is already mounted at %s", name,
				     v->mount_dir);
	if (mkfs && !vss_fs_supported(mkfs))
		return vss_error_set(err, -EINVAL, "cannot make a %s filesystem "
				     "(supported: ext4, xfs, btrfs)", mkfs);
	if ((rc = svc_volume_mount(svc, v, dir, SVC_MOUNT_MKDIR, mkfs, NULL, options, err)) < 0)
		return rc;
	/* Recorded, so that a restart mounts it again (restore.c). */
	snprintf(m.name, sizeof(m.name), "%s", name);
	m.dir = v->mount_dir;
	m.options = (char *)options;
	snprintf(m.fstype, sizeof(m.fstype), "%s", v->fstype);
	if ((rc = vss_catalog_mount_put(svc->cat, &m, err)) < 0) {
		svc_volume_umount(svc, v, true, NULL);
		return rc;
	}
	*res = json_pack("{s:s, s:s, s:s, s:s}", "volume", name, "mount", v->mount_dir,
			 "loop", v->mount_loop, "fstype", v->fstype);
	return 0;
}

int svc_op_volume_umount(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			 struct vss_error *err)
{
	const char *name;
	struct svc_volume *v;
	struct vss_error e;
	char dir[PATH_MAX];
	int rc;

	if ((rc = svc_arg_str(args, "name", true, &name, err)) < 0)
		return rc;
	v = svc_volume_find(svc, name);
	if (!v)
		return vss_error_set(err, -ENOENT, "no volume named \"%s\"", name);
	if (!v->mount_dir)
		return vss_error_set(err, -EINVAL, "volume %s is not mounted", name);
	snprintf(dir, sizeof(dir), "%s", v->mount_dir);
	if ((rc = svc_volume_umount(svc, v, false, err)) < 0)
		return rc;
	if (vss_catalog_mount_delete(svc->cat, false, name, &e) < 0)
		vss_log("volume %s: %s", name, e.msg);
	*res = json_pack("{s:s, s:s}", "volume", name, "mount", dir);
	return 0;
}
