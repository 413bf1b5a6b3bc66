/*
 * service/storage.c - shadow storage: where each volume's diff area lives
 * and how large it may grow.  Every volume has a diff area from its
 * creation (in STATE/diff, unbounded); "add shadowstorage" chooses another
 * place and/or a maximum, "resize" changes the maximum (the engine deletes
 * the oldest shadows to fit), "delete" returns to the default.
 *
 * Moving a diff area means reopening the engine on a new one, which is only
 * done while the volume has no shadows; its device stays served throughout:
 * the gate (held for writing) parks I/O while the engine is swapped.
 *
 * A diff area that is lost, damaged or unusable never takes its volume
 * offline (doc/service.md, "When a diff area is lost"): at start it is
 * copied, or kept aside and replaced by a fresh one (svc_diff_recover); a
 * file deleted or replaced under a running vssd is noticed and the volume
 * detached from it (svc_check_diff_areas).  Failures are recorded in marks
 * beside the state and run directories too (engine design note 9).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "engine/cow_i.h"
#include "provider/provider.h"
#include "service/args.h"
#include "service/caller.h"
#include "service/log.h"
#include "service/retire.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/storage.h"
#include "service/volumes.h"

/* ---- the files of a diff area ---- */

void svc_diff_marks(struct vss_service *svc, const char *diff, char marks[2][PATH_MAX])
{
	const char *base = strrchr(diff, '/') ? strrchr(diff, '/') + 1 : diff;

	snprintf(marks[0], PATH_MAX, "%s/failed/%s", svc->state_dir, base);
	snprintf(marks[1], PATH_MAX, "%s/failed/%s", svc->run_dir, base);
}

void svc_diff_unlink(struct vss_service *svc, const char *diff, bool file)
{
	char marks[2][PATH_MAX], failed[PATH_MAX + 8];

	svc_diff_marks(svc, diff, marks);
	snprintf(failed, sizeof(failed), "%s.failed", diff);
	if (file)
		unlink(diff);
	unlink(failed);
	unlink(marks[0]);
	unlink(marks[1]);
}

/* Whether a failure of the diff area @diff is recorded anywhere (as the
 * engine reads its marks: whatever is there, and cannot be told absent). */
static bool known_failed(struct vss_service *svc, const char *diff)
{
	char marks[2][PATH_MAX], failed[PATH_MAX + 8];
	const char *all[3] = { failed, marks[0], marks[1] };
	struct stat st;

	svc_diff_marks(svc, diff, marks);
	snprintf(failed, sizeof(failed), "%s.failed", diff);
	for (int i = 0; i < 3; i++)
		if (stat(all[i], &st) == 0 || (errno != ENOENT && errno != ENOTDIR))
			return true;
	return false;
}

/* Writes @path.failed, so that the engine opens the diff area @path
 * failed; true once it is durable. */
static bool carry_failure(const char *path, const char *from)
{
	char failed[PATH_MAX + 8], line[2 * PATH_MAX];
	bool done;
	int fd, n;

	/* A name cut short would mark another file: not carried. */
	if ((size_t)snprintf(failed, sizeof(failed), "%s.failed", path) >= sizeof(failed))
		return false;
	fd = open(failed, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	n = snprintf(line, sizeof(line), "the diff area %s, of which this is a copy or a "
		     "successor, had failed: no shadow in it can be trusted\n", from);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = (int)strlen(line);
	done = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
	close(fd);
	return done;
}

const char *svc_volatile_fs(const char *path)
{
	char dir[PATH_MAX];
	struct statfs sf;

	if (statfs(path, &sf) < 0) {
		snprintf(dir, sizeof(dir), "%s", path);
		if (statfs(dirname(dir), &sf) < 0)
			return NULL;
	}
	if (sf.f_type == TMPFS_MAGIC)
		return "tmpfs";
	if (sf.f_type == RAMFS_MAGIC)
		return "ramfs";
	return NULL;
}

json_t *svc_volatile_warning(struct svc_volume *v)
{
	json_t *arr = json_array();
	const char *fs = svc_volatile_fs(v->rec.diff_path);
	char line[PATH_MAX + 200];

	if (!fs)
		return arr;
	snprintf(line, sizeof(line), "the shadow storage of volume %s is on a %s (%s): its "
		 "persistent shadows will not survive a restart of the machine", v->rec.name, fs,
		 v->rec.diff_path);
	vss_log("volume %s: warning: %s", v->rec.name, line);
	json_array_append_new(arr, json_string(line));
	return arr;
}

/* Where a new diff area of @v goes: beside @near (a diff area path), or
 * in the state directory's diff directory if @near is NULL or there. */
#define FRESH_MAX (PATH_MAX + 128)
static void fresh_path(struct vss_service *svc, struct svc_volume *v, const char *near,
		       char out[FRESH_MAX])
{
	char dir[PATH_MAX], deflt[PATH_MAX];
	struct stat st;

	snprintf(deflt, sizeof(deflt), "%s/diff", svc->state_dir);
	snprintf(dir, sizeof(dir), "%s", near ? near : deflt);
	if (near)
		dirname(dir);
	if (strcmp(dir, deflt) == 0 || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		snprintf(out, FRESH_MAX, "%s/%s-%s.diff", deflt, v->rec.name, svc_short_tag());
	else
		snprintf(out, FRESH_MAX, "%s/%s-%s.vssdiff", dir, v->rec.name, svc_short_tag());
}

/* A volume without an engine (provider/rbd) has no diff area to manage. */
static int has_diff_area(const struct svc_volume *v, struct vss_error *err)
{
	if (!v->cow)
		return vss_error_set(err, -EOPNOTSUPP, "volume %s has no diff area: its storage "
				     "makes its shadows", v->rec.name);
	return 0;
}

static json_t *storage_json(struct svc_volume *v, struct vss_error *err)
{
	struct vss_cow_usage u;
	int rc = vss_cow_usage(v->cow, &u);

	if (rc < 0) {
		vss_error_set(err, rc, "cannot read the diff area usage of %s: %s",
			      v->rec.name, strerror(-rc));
		return NULL;
	}
	return json_pack("{s:s, s:s, s:I, s:I, s:o, s:b, s:i}",
			 "volume", v->rec.name, "location", v->rec.diff_path,
			 "used", (json_int_t)u.used_bytes,
			 "allocated", (json_int_t)u.allocated_bytes,
			 "max", v->rec.max_diff == VSS_COW_UNBOUNDED
				? json_null() : json_integer((json_int_t)v->rec.max_diff),
			 "explicit", v->rec.storage_explicit,
			 "shadows", (int)u.shadows);
}

int svc_op_storage_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			struct vss_error *err)
{
	const char *target;
	struct svc_volume *only = NULL;
	char *seen, *mount = NULL;
	json_t *arr;
	int rc;

	if ((rc = svc_arg_str(args, "for", false, &target, err)) < 0)
		return rc;
	/* As the caller sees it (caller.c): vssd tells no one about paths they cannot reach. */
	if (target) {
		if ((rc = svc_caller_path(who, target, &seen, err)) < 0)
			return rc;
		rc = svc_resolve_target(svc, seen, &only, err);
		/* Not a volume: a path whose shadows hold storage of their own (LVM). */
		if (rc < 0 && seen[0] == '/' && (mount = svc_provider_mount_of(seen)))
			rc = 0;
		free(seen);
		if (rc < 0)
			return rc;
	}
	arr = json_array();
	for (struct svc_volume *v = svc->volumes; v && !mount; v = v->next) {
		json_t *o;

		if ((only && v != only) || !v->cow)
			continue;
		if (!(o = storage_json(v, err))) {
			json_decref(arr);
			return err->code;
		}
		json_array_append_new(arr, o);
	}
	for (struct svc_shadow *sh = svc->shadows; sh && !only; sh = sh->next) {
		json_t *o;

		if (!sh->prov->storage || (mount && (!sh->origin || strcmp(sh->origin, mount))))
			continue;
		if ((o = sh->prov->storage(svc, sh)))
			json_array_append_new(arr, o);
	}
	free(mount);
	*res = json_pack("{s:o}", "shadowstorage", arr);
	return 0;
}

/*
 * resize for a path that is not a volume: the storage of every shadow of
 * it that holds its own (an LVM classic snapshot) grows to "maxsize"
 * bytes.  -ENOENT if there is none.
 */
static int resize_shadows(struct vss_service *svc, const char *path, json_t *args,
			  json_t **res, struct vss_error *err)
{
	json_t *m = json_object_get(args, "maxsize");
	char *mount = svc_provider_mount_of(path);
	int rc = 0, n = 0;

	if (!mount)
		return vss_error_set(err, -ENOENT, "%s: no such volume or mount", path);
	if (!json_is_integer(m) || json_integer_value(m) <= 0) {
		free(mount);
		return vss_error_set(err, -EINVAL, "the shadow storage of shadows of %s is "
				     "resized to a size in bytes (not N%% or UNBOUNDED)", path);
	}
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next) {
		json_t *before;

		if (!sh->prov->storage_resize || !sh->prov->storage || !sh->origin ||
		    strcmp(sh->origin, mount) != 0 || !(before = sh->prov->storage(svc, sh)))
			continue;   /* none of its own (a thin snapshot) */
		json_decref(before);
		if ((rc = sh->prov->storage_resize(svc, sh, (uint64_t)json_integer_value(m),
						   err)) < 0)
			break;
		vss_log("shadow %s: shadow storage grown to %lld bytes", sh->rec.id,
			(long long)json_integer_value(m));
		json_decref(*res);
		*res = sh->prov->storage(svc, sh);
		n++;
	}
	free(mount);
	if (rc == 0 && n == 0)
		rc = vss_error_set(err, -ENOENT, "%s is no volume, and no shadow of it has shadow "
				   "storage of its own", path);
	if (rc == 0 && !*res)
		rc = vss_error_set(err, -EIO, "cannot read the shadow storage of %s", path);
	if (rc < 0) {
		json_decref(*res);
		*res = NULL;
	}
	return rc;
}

/*
 * "maxsize": a byte count, "UNBOUNDED", or "N%" of the volume size (a
 * string); the client checked the syntax, the daemon checks it again.
 */
static int parse_max(json_t *args, struct svc_volume *v, bool *given, uint64_t *out,
		     struct vss_error *err)
{
	json_t *m = json_object_get(args, "maxsize");
	const char *s;
	char *end;
	unsigned long long pct;

	*given = m && !json_is_null(m);
	if (!*given)
		return 0;
	if (json_is_integer(m) && json_integer_value(m) > 0) {
		*out = (uint64_t)json_integer_value(m);
		return 0;
	}
	s = json_string_value(m);
	if (s && strcasecmp(s, "UNBOUNDED") == 0) {
		*out = VSS_COW_UNBOUNDED;
		return 0;
	}
	if (s && *s >= '0' && *s <= '9') {
		errno = 0;
		pct = strtoull(s, &end, 10);
		if (errno == 0 && strcmp(end, "%") == 0 && pct > 0 && pct <= 100) {
			*out = v->rec.size / 100 * pct + v->rec.size % 100 * pct / 100;
			return 0;
		}
	}
	return vss_error_set(err, -EINVAL, "maxsize must be a positive size, N%% (1 to 100) "
			     "or UNBOUNDED");
}

static int set_max(struct vss_service *svc, struct svc_volume *v, uint64_t max,
		   struct vss_error *err)
{
	int rc = vss_cow_set_max_diff(v->cow, max, err);

	if (rc < 0)
		return rc;
	v->rec.max_diff = max;
	return 0;
}

/* Reopens the engine on a fresh diff area at @path (the volume has no
 * shadows); the old one is removed (but not a detached one's path, which
 * is no longer its file). */
static int move_diff_area(struct vss_service *svc, struct svc_volume *v,
			  const char *path, struct vss_error *err)
{
	struct vss_cow_volume *fresh;
	char *old = v->rec.diff_path, *copy = strdup(path);
	int rc;

	if (!copy)
		return vss_error_set(err, -ENOMEM, "out of memory");
	if (access(path, F_OK) == 0) {
		free(copy);
		return vss_error_set(err, -EEXIST, "%s already exists", path);
	}
	if (vss_cow_open_handles(v->cow) > 0) {
		/* Closing the engine under them would free what they use. */
		free(copy);
		return vss_error_set(err, -EBUSY, "a deleted shadow of volume %s is still open "
				     "(its device): close it first", v->rec.name);
	}
	pthread_rwlock_wrlock(&v->gate);
	rc = vss_cow_close(v->cow);
	v->cow = NULL;
	if (rc < 0)
		vss_log("volume %s: closing the old diff area: %s", v->rec.name, strerror(-rc));
	rc = svc_volume_cow_open(v, path, VSS_COW_CREATE, &fresh, err);
	if (rc < 0) {
		struct vss_error e2;

		svc_diff_unlink(svc, path, true);
		free(copy);
		if (svc_volume_cow_open(v, old, 0, &v->cow, &e2) < 0) {
			struct vss_error e3;
			char why[sizeof(e2.msg)];

			/* As at start: a fresh one rather than none. */
			v->cow = NULL;
			memcpy(why, e2.msg, sizeof(why));
			vss_log("volume %s: cannot reopen its diff area %s: %s", v->rec.name,
				old, why);
			if (svc_diff_recover(svc, v, e2.code, why, &e3) < 0) {
				vss_log("volume %s: no diff area at all (its I/O fails): %s",
					v->rec.name, e3.msg);
			} else {
				svc_volume_learn_diff(v);
				vss_catalog_volume_put(svc->cat, &v->rec, NULL);
			}
		}
		pthread_rwlock_unlock(&v->gate);
		return rc;
	}
	v->cow = fresh;
	pthread_rwlock_unlock(&v->gate);
	svc_diff_unlink(svc, old, !v->detached);
	free(old);
	v->rec.diff_path = copy;
	v->detached = false;
	svc_volume_set_note(v, NULL);   /* it was about shadows, and there are none */
	svc_volume_learn_diff(v);
	return 0;
}

/*
 * The volume @target names, once its shadows deleted after a backup that
 * returned are gone (svc_retire_wait: svc->lock is let go meanwhile, so
 * the target is looked up again after).
 */
static int resolve_settled(struct vss_service *svc, const char *target, struct svc_volume **v,
			   struct vss_error *err)
{
	char name[256];
	int rc;

	if ((rc = svc_resolve_target(svc, target, v, err)) < 0)
		return rc;
	snprintf(name, sizeof(name), "%s", (*v)->rec.name);
	if ((rc = svc_retire_wait(svc, name, err)) < 0)
		return rc;
	return svc_resolve_target(svc, target, v, err);
}

int svc_op_storage_add(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
		       struct vss_error *err)
{
	const char *target, *on;
	struct svc_volume *v;
	uint64_t max = VSS_COW_UNBOUNDED;
	bool max_given;
	char real[PATH_MAX], path[PATH_MAX + 100];
	int rc;

	if ((rc = svc_arg_str(args, "for", true, &target, err)) < 0 ||
	    (rc = svc_arg_str(args, "on", false, &on, err)) < 0)
		return rc;
	if ((rc = resolve_settled(svc, target, &v, err)) < 0 ||
	    (rc = has_diff_area(v, err)) < 0)
		return rc;
	if ((rc = parse_max(args, v, &max_given, &max, err)) < 0)
		return rc;
	if (v->rec.storage_explicit)
		return vss_error_set(err, -EEXIST, "volume %s already has shadow storage "
				     "(resize or delete it)", v->rec.name);
	if (on) {
		struct stat st;

		if (on[0] != '/' || !realpath(on, real) || stat(real, &st) < 0 ||
		    !S_ISDIR(st.st_mode))
			return vss_error_set(err, -ENOENT, "%s is not an existing directory", on);
		for (struct svc_volume *o = svc->volumes; o; o = o->next) {
			struct stat mst;

			if (o->mount_dir && stat(o->mount_dir, &mst) == 0 &&
			    mst.st_dev == st.st_dev)
				return vss_error_set(err, -EINVAL, "shadow storage cannot live on "
						     "a vss volume (%s)", o->rec.name);
		}
		snprintf(path, sizeof(path), "%s/%s-%s.vssdiff", real, v->rec.name,
			 svc_short_tag());
		if (strcmp(path, v->rec.diff_path) != 0) {
			if (svc_shadow_count(svc, v) > 0)
				return vss_error_set(err, -EBUSY, "volume %s has shadow copies: "
						     "its shadow storage cannot move", v->rec.name);
			if ((rc = move_diff_area(svc, v, path, err)) < 0)
				return rc;
		}
	}
	if (max_given && (rc = set_max(svc, v, max, err)) < 0)
		return rc;
	v->rec.storage_explicit = true;
	if ((rc = vss_catalog_volume_put(svc->cat, &v->rec, err)) < 0)
		return rc;
	vss_log("volume %s: shadow storage at %s, max %s", v->rec.name, v->rec.diff_path,
		v->rec.max_diff == VSS_COW_UNBOUNDED ? "unbounded" : "set");
	if (!(*res = storage_json(v, err)))
		return err->code;
	json_object_set_new(*res, "warnings", svc_volatile_warning(v));
	return 0;
}

int svc_op_storage_resize(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			  struct vss_error *err)
{
	const char *target;
	struct svc_volume *v;
	uint64_t max = VSS_COW_UNBOUNDED;
	bool max_given;
	int rc;

	if ((rc = svc_arg_str(args, "for", true, &target, err)) < 0)
		return rc;
	if ((rc = svc_resolve_target(svc, target, &v, err)) < 0) {
		*res = NULL;
		return target[0] == '/' ? resize_shadows(svc, target, args, res, err) : rc;
	}
	if ((rc = has_diff_area(v, err)) < 0)
		return rc;
	if ((rc = parse_max(args, v, &max_given, &max, err)) < 0)
		return rc;
	if (!max_given)
		return vss_error_set(err, -EINVAL, "missing argument \"maxsize\"");
	if ((rc = set_max(svc, v, max, err)) < 0)
		return rc;
	v->rec.storage_explicit = true;
	if ((rc = vss_catalog_volume_put(svc->cat, &v->rec, err)) < 0)
		return rc;
	if (max == VSS_COW_UNBOUNDED)
		vss_log("volume %s: shadow storage maximum removed", v->rec.name);
	else
		vss_log("volume %s: shadow storage maximum set to %llu bytes", v->rec.name,
			(unsigned long long)max);
	*res = storage_json(v, err);
	return *res ? 0 : err->code;
}

int svc_op_storage_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			  struct vss_error *err)
{
	const char *target;
	struct svc_volume *v;
	char path[PATH_MAX];
	int rc, n;

	if ((rc = svc_arg_str(args, "for", true, &target, err)) < 0)
		return rc;
	if ((rc = resolve_settled(svc, target, &v, err)) < 0 ||
	    (rc = has_diff_area(v, err)) < 0)
		return rc;
	if (!v->rec.storage_explicit)
		return vss_error_set(err, -ENOENT, "volume %s has no shadow storage added",
				     v->rec.name);
	n = svc_shadow_count(svc, v);
	if (n > 0)
		return vss_error_set(err, -EBUSY, "volume %s has %d shadow cop%s%s; delete "
				     "them first", v->rec.name, n, n == 1 ? "y" : "ies",
				     svc_shadow_count_why(svc, v));
	if ((rc = set_max(svc, v, VSS_COW_UNBOUNDED, err)) < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/diff/", svc->state_dir);
	if (strncmp(v->rec.diff_path, path, strlen(path)) != 0) {
		snprintf(path, sizeof(path), "%s/diff/%s-%s.diff", svc->state_dir,
			 v->rec.name, svc_short_tag());
		if ((rc = move_diff_area(svc, v, path, err)) < 0)
			return rc;
	}
	v->rec.storage_explicit = false;
	if ((rc = vss_catalog_volume_put(svc->cat, &v->rec, err)) < 0)
		return rc;
	vss_log("volume %s: shadow storage deleted (back to the default)", v->rec.name);
	*res = json_pack("{s:s, s:o}", "volume", v->rec.name, "warnings", svc_volatile_warning(v));
	return 0;
}

/* ---- a diff area lost, damaged or unusable at start ---- */

/* Copies the file @from to the new file @to, holes kept, durably. */
static int copy_file(const char *from, const char *to, struct vss_error *err)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
	size_t bufsize = 1 << 20;
	char *buf = NULL;
	struct stat st;
	off_t pos = 0;

	if (in < 0)
		return vss_error_set(err, -errno, "cannot read %s: %s", from, strerror(errno));
	if (fstat(in, &st) < 0 || !(buf = malloc(bufsize))) {
		rc = vss_error_set(err, buf ? -errno : -ENOMEM, "cannot read %s", from);
		goto out;
	}
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0 || ftruncate(out, st.st_size) < 0) {
		rc = vss_error_set(err, -errno, "cannot create %s: %s", to, strerror(errno));
		goto out;
	}
	while (pos < st.st_size) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;          /* a hole to the end */
		hole = data < 0 ? -1 : lseek(in, data, SEEK_HOLE);
		if (data < 0 || hole < 0) {
			rc = vss_error_set(err, -errno, "cannot read %s: %s", from, strerror(errno));
			goto out;
		}
		for (pos = data; pos < hole;) {
			size_t want = (size_t)(hole - pos) < bufsize ? (size_t)(hole - pos) : bufsize;
			ssize_t n = pread(in, buf, want, pos);

			if (n <= 0 || pwrite(out, buf, (size_t)n, pos) != n) {
				rc = vss_error_set(err, n < 0 ? -errno : -EIO, "cannot copy %s to %s: %s",
						   from, to, n < 0 ? strerror(errno) : "short read or write");
				goto out;
			}
			pos += n;
		}
	}
	if (fsync(out) < 0)
		rc = vss_error_set(err, -errno, "cannot write %s: %s", to, strerror(errno));
out:
	free(buf);
	if (out >= 0)
		close(out);
	close(in);
	if (rc < 0 && out >= 0)
		unlink(to);
	return rc;
}

struct lost_rows {
	const char *volume;
	struct vss_catalog_shadow *rows;
	size_t count, cap;
};

static int collect_lost(void *arg, const struct vss_catalog_shadow *s)
{
	struct lost_rows *l = arg;
	struct vss_catalog_shadow *rows;

	if (strcmp(s->volume, l->volume) != 0 || !(s->attrs & VSS_CATALOG_ATTR_PERSISTENT))
		return 0;
	if (!(rows = svc_grow(l->rows, &l->cap, l->count, sizeof(*rows))))
		return -ENOMEM;
	l->rows = rows;
	l->rows[l->count] = *s;
	l->rows[l->count++].target = NULL;
	return 0;
}

/* The persistent shadows the catalog knows of @v, recorded invalid in its
 * fresh diff area (engine design note 9); how many. */
static int record_lost(struct vss_service *svc, struct svc_volume *v)
{
	struct lost_rows l = { .volume = v->rec.name };
	int n = 0;

	vss_catalog_shadow_each(svc->cat, collect_lost, &l, NULL);
	for (size_t i = 0; i < l.count; i++) {
		struct vss_cow_shadow_params p = { .flags = VSS_COW_SHADOW_PERSISTENT };
		struct vss_error e;

		if (svc_id_parse(l.rows[i].id, p.id) < 0 || svc_id_parse(l.rows[i].set_id, p.set_id) < 0)
			continue;
		if (vss_cow_shadow_create_lost(v->cow, &p, l.rows[i].created_ns, &e) < 0)
			vss_log("volume %s: shadow %s cannot be kept listed: %s", v->rec.name,
				l.rows[i].id, e.msg);
		else
			n++;
	}
	free(l.rows);
	return n;
}

/* Renames the damaged diff area @path aside (with what recorded its
 * failure); where it is now, in @aside, or "" if it could not be moved. */
static void keep_aside(struct vss_service *svc, const char *path, char aside[PATH_MAX + 64])
{
	char stamp[32], failed[PATH_MAX + 8], aside_failed[PATH_MAX + 80];
	time_t now = time(NULL);
	bool was_failed = known_failed(svc, path);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(aside, PATH_MAX + 64, "%s.damaged-%s", path, stamp);
	if (access(aside, F_OK) == 0)
		snprintf(aside, PATH_MAX + 64, "%s.damaged-%s-%s", path, stamp, svc_short_tag());
	if (rename(path, aside) < 0) {
		vss_log("volume diff area %s cannot be renamed aside (%s): left in place", path,
			strerror(errno));
		aside[0] = '\0';
		return;
	}
	snprintf(failed, sizeof(failed), "%s.failed", path);
	snprintf(aside_failed, sizeof(aside_failed), "%s.failed", aside);
	if (rename(failed, aside_failed) < 0 && was_failed)
		carry_failure(aside, path);
	svc_diff_unlink(svc, path, false);
}

int svc_diff_recover(struct vss_service *svc, struct svc_volume *v, int rc, const char *why,
		     struct vss_error *err)
{
	char *old = strdup(v->rec.diff_path), path[FRESH_MAX], aside[PATH_MAX + 64] = "";
	char note[4 * PATH_MAX];
	bool missing = access(old ? old : "", F_OK) < 0 && errno == ENOENT;
	struct vss_error e;
	int lost;

	if (!old)
		return vss_error_set(err, -ENOMEM, "out of memory");
	if (!missing && rc != -EUCLEAN && rc != -ESTALE && rc != -EINVAL) {
		/* Intact but unusable where it is (a read-only filesystem, an
		 * immutable file, I/O errors when writing): a copy in the state
		 * directory goes on with its shadows and its queued writes. */
		fresh_path(svc, v, NULL, path);
		if (copy_file(old, path, &e) == 0) {
			/* A failure recorded beside the original must hold for the copy. */
			if (known_failed(svc, old) && !carry_failure(path, old))
				vss_error_set(&e, -EIO, "cannot record its failure beside the copy");
			else if (svc_volume_cow_open(v, path, 0, &v->cow, &e) == 0) {
				snprintf(note, sizeof(note), "its diff area %s could not be used at "
					 "start (%s); copied to %s, where it goes on with its shadows; "
					 "the original is left as it was", old, why, path);
				vss_log("volume %s: %s", v->rec.name, note);
				svc_diff_unlink(svc, old, false);
				free(v->rec.diff_path);
				v->rec.diff_path = strdup(path);
				svc_volume_set_note(v, note);
				free(old);
				return v->rec.diff_path ? 0 : vss_error_set(err, -ENOMEM, "out of memory");
			}
			v->cow = NULL;
			svc_diff_unlink(svc, path, true);
		}
		vss_log("volume %s: its diff area %s could not be used (%s) nor copied (%s)",
			v->rec.name, old, why, e.msg);
	}
	if (!missing)
		keep_aside(svc, old, aside);
	else
		svc_diff_unlink(svc, old, false);
	fresh_path(svc, v, old, path);
	if (svc_volume_cow_open(v, path, VSS_COW_CREATE, &v->cow, &e) < 0) {
		vss_log("volume %s: cannot make a diff area at %s: %s", v->rec.name, path, e.msg);
		fresh_path(svc, v, NULL, path);
		if (svc_volume_cow_open(v, path, VSS_COW_CREATE, &v->cow, err) < 0) {
			v->cow = NULL;
			free(old);
			return err->code;
		}
	}
	free(v->rec.diff_path);
	v->rec.diff_path = strdup(path);
	if (!v->rec.diff_path) {
		free(old);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	lost = record_lost(svc, v);
	if (missing)
		snprintf(note, sizeof(note), "its diff area %s was missing at start; a fresh one "
			 "is at %s; the %d persistent shadow%s it held %s lost (listed invalid until "
			 "deleted)", old, path, lost, lost == 1 ? "" : "s", lost == 1 ? "is" : "are");
	else
		snprintf(note, sizeof(note), "its diff area %s could not be used at start (%s); "
			 "%s%s; a fresh one is at %s; the %d persistent shadow%s it held %s lost "
			 "(listed invalid until deleted)", old, why,
			 aside[0] ? "kept as " : "left in place", aside, path, lost,
			 lost == 1 ? "" : "s", lost == 1 ? "is" : "are");
	vss_log("volume %s: %s", v->rec.name, note);
	vss_log("volume %s: if vssd did not stop cleanly before, writes acknowledged while a "
		"persistent shadow existed that were still queued in the old diff area (at most "
		"32 MiB, not yet on the volume) are lost with it%s", v->rec.name,
		aside[0] ? " (their REDO records may be recovered by hand from the kept file)" : "");
	svc_volume_set_note(v, lost ? note : NULL);
	free(old);
	return 0;
}

/* ---- a diff area deleted or replaced under a running vssd ---- */

static void detach(struct vss_service *svc, struct svc_volume *v, bool replaced)
{
	char note[PATH_MAX + 400];

	snprintf(note, sizeof(note), "its diff area %s was %s while in use: its shadows stay "
		 "readable (the open file is intact) until vssd stops, but are no longer "
		 "persistent, and no persistent shadow can be taken; a fresh diff area is made "
		 "once they are deleted", v->rec.diff_path,
		 replaced ? "replaced by another file" : "deleted");
	vss_log("volume %s: %s", v->rec.name, note);
	vss_cow_detach(v->cow, "the volume's diff area was deleted or replaced while in use; "
		       "delete its shadows and a fresh one is made");
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next) {
		if (sh->vol != v || !(sh->rec.attrs & VSS_CATALOG_ATTR_PERSISTENT))
			continue;
		sh->rec.attrs &= ~VSS_CATALOG_ATTR_PERSISTENT;
		vss_catalog_shadow_put(svc->cat, &sh->rec, NULL);
		vss_log("shadow %s of volume %s is no longer persistent: its diff area is gone",
			sh->rec.id, v->rec.name);
	}
	v->detached = true;
	svc_volume_set_note(v, note);
	vss_catalog_volume_put(svc->cat, &v->rec, NULL);
}

void svc_check_diff_areas(struct vss_service *svc)
{
	svc_assert_locked(svc);
	for (struct svc_volume *v = svc->volumes; v; v = v->next) {
		struct vss_cow_usage u;
		struct vss_error e;
		struct stat st;
		char path[FRESH_MAX];

		if (!v->cow)
			continue;
		if (!v->detached && (v->diff_dev || v->diff_ino)) {
			if (stat(v->rec.diff_path, &st) < 0) {
				if (errno == ENOENT || errno == ENOTDIR)
					detach(svc, v, false);
			} else if ((uint64_t)st.st_dev != v->diff_dev ||
				   (uint64_t)st.st_ino != v->diff_ino) {
				detach(svc, v, true);
			}
		}
		if (svc_shadow_count(svc, v) > 0 || vss_cow_usage(v->cow, &u) < 0 || u.shadows)
			continue;
		if (v->detached) {
			if (vss_cow_open_handles(v->cow) > 0)
				continue;       /* a deleted shadow's device is still open */
			fresh_path(svc, v, v->rec.diff_path, path);
			if (move_diff_area(svc, v, path, &e) < 0) {
				fresh_path(svc, v, NULL, path);
				if (move_diff_area(svc, v, path, &e) < 0) {
					vss_log("volume %s: cannot make a fresh diff area at %s: %s",
						v->rec.name, path, e.msg);
					continue;
				}
			}
			vss_log("volume %s: the shadows of its detached diff area are gone; a "
				"fresh one is at %s", v->rec.name, v->rec.diff_path);
			json_decref(svc_volatile_warning(v));
		} else if (v->rec.note) {
			vss_log("volume %s: no shadow is left of what its note said (%s); "
				"forgetting it", v->rec.name, v->rec.note);
			svc_volume_set_note(v, NULL);
		} else {
			continue;
		}
		vss_catalog_volume_put(svc->cat, &v->rec, NULL);
	}
}
