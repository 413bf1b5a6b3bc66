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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/log.h"
#include "service/service_i.h"

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
	char *seen;
	json_t *arr;
	int rc;

	if ((rc = svc_arg_str(args, "for", false, &target, err)) < 0)
		return rc;
	/* As the caller sees it (caller.c): vssd tells no one about paths they cannot reach. */
	if (target) {
		if ((rc = svc_caller_path(who, target, &seen, err)) < 0)
			return rc;
		rc = svc_resolve_target(svc, seen, &only, err);
		free(seen);
		if (rc < 0)
			return rc;
	}
	arr = json_array();
	for (struct svc_volume *v = svc->volumes; v; v = v->next) {
		json_t *o;

		if (only && v != only)
			continue;
		if (!(o = storage_json(v, err))) {
			json_decref(arr);
			return err->code;
		}
		json_array_append_new(arr, o);
	}
	*res = json_pack("{s:o}", "shadowstorage", arr);
	return 0;
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

/* Reopens the engine on a fresh diff area at @path (the volume has no shadows). */
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
	pthread_rwlock_wrlock(&v->gate);
	rc = vss_cow_close(v->cow);
	v->cow = NULL;
	if (rc < 0)
		vss_log("volume %s: closing the old diff area: %s", v->rec.name, strerror(-rc));
	rc = svc_volume_cow_open(v, path, VSS_COW_CREATE, &fresh, err);
	if (rc < 0) {
		struct vss_error e2;

		unlink(path);
		free(copy);
		if (svc_volume_cow_open(v, old, 0, &v->cow, &e2) < 0) {
			vss_log("volume %s: cannot reopen its diff area %s: %s", v->rec.name,
				old, e2.msg);
			v->cow = NULL;
		}
		pthread_rwlock_unlock(&v->gate);
		return rc;
	}
	v->cow = fresh;
	pthread_rwlock_unlock(&v->gate);
	unlink(old);
	free(old);
	v->rec.diff_path = copy;
	return 0;
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
	if ((rc = svc_resolve_target(svc, target, &v, err)) < 0)
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
	*res = storage_json(v, err);
	return *res ? 0 : err->code;
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
	if ((rc = svc_resolve_target(svc, target, &v, err)) < 0)
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
	if ((rc = svc_resolve_target(svc, target, &v, err)) < 0)
		return rc;
	if (!v->rec.storage_explicit)
		return vss_error_set(err, -ENOENT, "volume %s has no shadow storage added",
				     v->rec.name);
	n = svc_shadow_count(svc, v);
	if (n > 0)
		return vss_error_set(err, -EBUSY, "volume %s has %d shadow cop%s; delete them "
				     "first", v->rec.name, n, n == 1 ? "y" : "ies");
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
	*res = json_pack("{s:s}", "volume", v->rec.name);
	return 0;
}
