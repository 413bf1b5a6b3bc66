/*
 * provider/registry.c - the provider registry: which providers exist
 * (svc->providers: svc_providers, or a test's), which one takes a target,
 * "list providers", recovery at start, and what providers share (their
 * catalog rows, the service's list).  What differs between providers is in
 * their capabilities (provider.h); nothing here asks which one it is.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <vss/version.h>

#include "provider/fsinfo.h"
#include "provider/provider.h"
#include "service/args.h"
#include "service/caller.h"
#include "service/log.h"
#include "service/service_i.h"
#include "service/shadows.h"

const struct vss_provider_ops *const svc_providers[] = {
#ifdef VSS_HAVE_RBD
	&svc_provider_rbd,
#endif
	&svc_provider_builtin,
	&svc_provider_btrfs,
	&svc_provider_lvm,
	&svc_provider_live,
	NULL,
};

const struct vss_provider_ops *svc_provider_find(struct vss_service *svc, const char *name)
{
	for (size_t i = 0; svc->providers[i]; i++)
		if (strcmp(svc->providers[i]->name, name) == 0)
			return svc->providers[i];
	return NULL;
}

char *svc_provider_mount_of(const char *path)
{
	struct vss_fsinfo fi = { 0 };
	char *out = NULL;

	if (vss_fsinfo_probe(path, &fi, NULL) == 0)
		out = strdup(fi.mount_point);
	vss_fsinfo_release(&fi);
	return out;
}

char *svc_provider_origin_of(struct vss_service *svc, const char *path)
{
	for (size_t i = 0; svc->providers[i]; i++) {
		char *out;

		if (svc->providers[i]->origin_of && (out = svc->providers[i]->origin_of(path)))
			return out;
	}
	return svc_provider_mount_of(path);
}

int svc_provider_select(struct vss_service *svc, const char *target, const char *forced,
			bool allow_live, const struct vss_provider_ops **out, char **warning,
			struct vss_error *err)
{
	const struct vss_provider_ops *const *all = svc->providers;
	struct vss_fsinfo fi = { 0 };
	struct vss_error first = { 0 };
	int rc;

	svc_assert_locked(svc);
	*out = NULL;
	*warning = NULL;
	if (forced) {
		const struct vss_provider_ops *p = svc_provider_find(svc, forced);
		char line[VSS_ERROR_MSG_MAX];

		if (!p)
			return vss_error_set(err, -ENOENT, "no provider named \"%s\" (vss list "
					     "providers shows them)", forced);
		if ((p->caps & SVC_PROVIDER_LIVE) && !allow_live)
			return vss_error_set(err, -EINVAL, "provider %s reads the live "
					     "filesystem: say so with --allow-live", p->name);
		if ((rc = p->supports(svc, target, err)) < 0)
			return rc;
		snprintf(line, sizeof(line), "read live (--provider %s --allow-live): no shadow "
			 "copy is made of it", p->name);
		if ((p->caps & SVC_PROVIDER_LIVE) && !(*warning = strdup(line)))
			return vss_error_set(err, -ENOMEM, "out of memory");
		*out = p;
		return 0;
	}
	for (size_t i = 0; all[i]; i++) {
		struct vss_error e;

		if (all[i]->caps & SVC_PROVIDER_LIVE)
			continue;
		if (all[i]->supports(svc, target, &e) == 0) {
			*out = all[i];
			return 0;
		}
		if (i == 0)
			first = e;
	}
	/* A volume name, or a path that does not exist: the first provider's answer. */
	if (target[0] != '/')
		return vss_error_set(err, first.code ? first.code : -ENOENT, "%s", first.msg);
	if ((rc = vss_fsinfo_probe(target, &fi, err)) < 0)
		return rc;
	rc = vss_fsinfo_check(&fi, target, err);
	if (rc == 0)
		rc = vss_error_set(err, -EOPNOTSUPP, "%s is not inside a mounted volume and no "
				   "other provider can shadow it (it is on %s, %s): mount it "
				   "from a vss volume (vss volume mount) or keep it on btrfs, "
				   "or use --allow-live to read it live",
				   target, fi.fstype, fi.source);
	vss_fsinfo_release(&fi);
	for (size_t i = 0; allow_live && all[i] && !*out; i++)
		if (all[i]->caps & SVC_PROVIDER_LIVE)
			*out = all[i];
	if (!*out)
		return rc;
	if (!(*warning = strdup(err->msg))) {
		*out = NULL;
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/* The file behind loop device @source ("/dev/loopN") into @file; false if none. */
static bool loop_backing_file(const char *source, char *file, size_t size)
{
	char path[PATH_MAX];
	size_t len;
	FILE *f;

	if (strncmp(source, "/dev/loop", 9) != 0)
		return false;
	snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", source + 5);
	if (!(f = fopen(path, "re")))
		return false;
	len = fread(file, 1, size - 1, f);
	fclose(f);
	file[len] = '\0';
	if (len > 0 && file[len - 1] == '\n')
		file[--len] = '\0';
	return len > 0;
}

int svc_provider_check_freeze(struct vss_service *svc, const struct svc_member *m, size_t n,
			      const char *const *freeze_dirs, size_t nfreeze,
			      struct vss_error *err)
{
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		struct vss_fsinfo fi = { 0 };
		char file[PATH_MAX];
		struct stat st;

		if (!(m[i].prov->caps & SVC_PROVIDER_COMMIT_WRITES) ||
		    vss_fsinfo_probe(m[i].target, &fi, NULL) < 0)
			continue;
		if (!loop_backing_file(fi.source, file, sizeof(file))) {
			vss_fsinfo_release(&fi);
			continue;
		}
		/* Its loop device on a volume of the set: the gate would stop its commit. */
		for (size_t k = 0; k < n && rc == 0; k++)
			if (m[k].gate && m[k].device && strcmp(file, m[k].device) == 0)
				rc = vss_error_set(err, -EBUSY, "%s (%s on %s) lives on volume "
						   "%s, which is in the same set: take it "
						   "through the volume, or in another set",
						   m[i].target, fi.fstype, fi.source,
						   m[k].volume ? m[k].volume : m[k].device);
		/* Its image on a filesystem the set freezes: the commit would wait for the thaw. */
		for (size_t k = 0; k < nfreeze && rc == 0 && stat(file, &st) == 0; k++) {
			struct stat fst;

			if (stat(freeze_dirs[k], &fst) == 0 && fst.st_dev == st.st_dev)
				rc = vss_error_set(err, -EBUSY, "refusing to freeze %s: it holds "
						   "the image behind %s (%s, under %s), which "
						   "must be written to while the set is taken; "
						   "take them in two sets", freeze_dirs[k],
						   fi.source, fi.fstype, m[i].target);
		}
		vss_fsinfo_release(&fi);
	}
	return rc;
}

void svc_providers_recover(struct vss_service *svc)
{
	for (size_t i = 0; svc->providers[i]; i++) {
		const struct vss_provider_ops *p = svc->providers[i];
		struct vss_error e;

		if (p->recover && p->recover(svc, &e) < 0)
			vss_log("provider %s: recovery: %s", p->name, e.msg);
	}
}

int svc_op_providers_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			  struct vss_error *err)
{
	const struct vss_provider_ops *chosen = NULL;
	struct vss_error why = { 0 };
	const char *target;
	char *warning = NULL, *seen = NULL;
	json_t *arr;
	int rc;

	if ((rc = svc_arg_str(args, "for", false, &target, err)) < 0)
		return rc;
	/* As the caller sees it (caller.c): vssd tells no one about paths they cannot reach. */
	if (target && (rc = svc_caller_path(who, target, &seen, err)) < 0)
		return rc;
	if (seen)
		target = seen;
	if (target && svc_provider_select(svc, target, NULL, false, &chosen, &warning, &why) < 0)
		chosen = NULL;
	free(warning);
	arr = json_array();
	for (size_t i = 0; svc->providers[i]; i++) {
		const struct vss_provider_ops *p = svc->providers[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o}", "name", p->name,
				      "id", p->id, "version", p->version, "kind", p->kind,
				      "priority", p->priority, "paths", p->paths(svc));

		/* A live provider takes whatever exists: it is not asked. */
		if (target && !(p->caps & SVC_PROVIDER_LIVE)) {
			struct vss_error e = { 0 };
			bool yes = p->supports(svc, target, &e) == 0;

			json_object_set_new(o, "supports", json_boolean(yes));
			json_object_set_new(o, "selected", json_boolean(p == chosen));
			json_object_set_new(o, "reason", yes ? json_null() : json_string(e.msg));
		}
		json_array_append_new(arr, o);
	}
	*res = json_pack("{s:o}", "providers", arr);
	if (target) {
		json_object_set_new(*res, "for", json_string(target));
		json_object_set_new(*res, "selected", chosen ? json_string(chosen->name)
							     : json_null());
		json_object_set_new(*res, "refusal", chosen ? json_null()
							    : json_string(why.msg));
	}
	free(seen);
	return 0;
}

static int collect(void *arg, const struct vss_catalog_shadow *s)
{
	struct svc_rows *r = arg;
	struct vss_catalog_shadow *rows;

	if (!(s->attrs & r->attr))
		return 0;
	if (!(rows = svc_grow(r->rows, &r->cap, r->count, sizeof(*rows))))
		return -ENOMEM;
	r->rows = rows;
	r->rows[r->count] = *s;
	if (!(r->rows[r->count].target = strdup(s->target)))
		return -ENOMEM;
	r->count++;
	return 0;
}

int svc_provider_rows(struct vss_service *svc, unsigned int attr, struct svc_rows *r,
		      struct vss_error *err)
{
	memset(r, 0, sizeof(*r));
	r->attr = attr;
	return vss_catalog_shadow_each(svc->cat, collect, r, err);
}

void svc_provider_rows_release(struct svc_rows *r)
{
	for (size_t i = 0; i < r->count; i++)
		free(r->rows[i].target);
	free(r->rows);
	memset(r, 0, sizeof(*r));
}

void svc_provider_row(const struct svc_member *m, struct vss_catalog_shadow *row)
{
	memset(row, 0, sizeof(*row));
	svc_id_str(m->id, row->id);
	svc_id_str(m->set_id, row->set_id);
	row->target = (char *)m->target;
	row->created_ns = svc_now_ns();
	row->attrs = m->prov->catalog_attr |
		     (m->persistent ? VSS_CATALOG_ATTR_PERSISTENT : 0) |
		     (m->no_writers ? VSS_CATALOG_ATTR_NO_WRITERS : 0);
}

void svc_provider_location_path(struct vss_service *svc, const struct svc_shadow *sh,
				char *out, size_t len)
{
	snprintf(out, len, "%s", sh->path ? sh->path : "");
}

struct mounts {
	json_t *arr;
	bool (*want)(const struct vss_fsinfo *fi);
};

static int add_mount(void *arg, const struct vss_fsinfo *fi)
{
	struct mounts *m = arg;

	if (m->want(fi))
		json_array_append_new(m->arr, json_string(fi->mount_point));
	return 0;
}

json_t *svc_provider_mounts(bool (*want)(const struct vss_fsinfo *fi))
{
	struct mounts m = { json_array(), want };

	vss_fsinfo_foreach(add_mount, &m, NULL);
	return m.arr;
}

void svc_provider_list_add(struct vss_service *svc, struct svc_shadow *sh)
{
	struct svc_shadow **pp;

	for (pp = &svc->shadows; *pp; pp = &(*pp)->next)
		;
	*pp = sh;
}

