/*
 * service/provider.c - the provider registry: which providers exist, which
 * one takes a target, "list providers", recovery at start; and the "live"
 * pseudo-provider that --allow-live falls back to (the live filesystem,
 * read as it is, nothing made, nothing frozen).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <vss/version.h>

#include "provider/fsinfo.h"
#include "service/log.h"
#include "service/service_i.h"

const struct vss_provider_ops *const svc_providers[] = {
	&svc_provider_builtin,
	&svc_provider_btrfs,
	&svc_provider_live,
	NULL,
};

const struct vss_provider_ops *svc_provider_find(const char *name)
{
	for (size_t i = 0; svc_providers[i]; i++)
		if (strcmp(svc_providers[i]->name, name) == 0)
			return svc_providers[i];
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

char *svc_provider_origin_of(const char *path)
{
	char *out = svc_provider_btrfs_origin_of(path);

	return out ? out : svc_provider_mount_of(path);
}

int svc_provider_select(struct vss_service *svc, const char *target, const char *forced,
			bool allow_live, const struct vss_provider_ops **out, char **warning,
			struct vss_error *err)
{
	struct vss_fsinfo fi = { 0 };
	struct vss_error first = { 0 };
	int rc;

	*out = NULL;
	*warning = NULL;
	if (forced) {
		const struct vss_provider_ops *p = svc_provider_find(forced);

		if (!p)
			return vss_error_set(err, -ENOENT, "no provider named \"%s\" (vss list "
					     "providers shows them)", forced);
		if (p == &svc_provider_live && !allow_live)
			return vss_error_set(err, -EINVAL, "provider live reads the live "
					     "filesystem: say so with --allow-live");
		if ((rc = p->supports(svc, target, err)) < 0)
			return rc;
		if (p == &svc_provider_live &&
		    !(*warning = strdup("read live (--provider live --allow-live): no shadow "
					"copy is made of it")))
			return vss_error_set(err, -ENOMEM, "out of memory");
		*out = p;
		return 0;
	}
	for (size_t i = 0; svc_providers[i]; i++) {
		struct vss_error e;

		if (svc_providers[i] == &svc_provider_live)
			continue;
		if (svc_providers[i]->supports(svc, target, &e) == 0) {
			*out = svc_providers[i];
			return 0;
		}
		if (i == 0)
			first = e;
	}
	/* A volume name, or a path that does not exist: the built-in's answer. */
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
	if (!allow_live)
		return rc;
	if (!(*warning = strdup(err->msg)))
		return vss_error_set(err, -ENOMEM, "out of memory");
	*out = &svc_provider_live;
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
		char file[PATH_MAX], dev[PATH_MAX];
		struct stat st;

		if (m[i].vol || m[i].prov == &svc_provider_live ||
		    vss_fsinfo_probe(m[i].target, &fi, NULL) < 0)
			continue;
		if (!loop_backing_file(fi.source, file, sizeof(file))) {
			vss_fsinfo_release(&fi);
			continue;
		}
		/* Its loop device on a volume of the set: the gate would stop its commit. */
		for (size_t k = 0; k < n && rc == 0; k++) {
			if (!m[k].vol)
				continue;
			svc_volume_device_path(svc, m[k].vol->rec.name, dev, sizeof(dev));
			if (strcmp(file, dev) == 0)
				rc = vss_error_set(err, -EBUSY, "%s (%s on %s) lives on volume "
						   "%s, which is in the same set: take it "
						   "through the volume, or in another set",
						   m[i].target, fi.fstype, fi.source,
						   m[k].vol->rec.name);
		}
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
	for (size_t i = 0; svc_providers[i]; i++) {
		struct vss_error e;

		if (svc_providers[i]->recover && svc_providers[i]->recover(svc, &e) < 0)
			vss_log("provider %s: recovery: %s", svc_providers[i]->name, e.msg);
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
	for (size_t i = 0; svc_providers[i]; i++) {
		const struct vss_provider_ops *p = svc_providers[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o}", "name", p->name,
				      "id", p->id, "version", p->version, "kind", p->kind,
				      "priority", p->priority, "paths", p->paths(svc));

		if (target && p != &svc_provider_live) {
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

/* ---- live: the filesystem itself, for --allow-live ---- */

static int live_supports(struct vss_service *svc, const char *target, struct vss_error *err)
{
	char real[PATH_MAX];

	if (target[0] != '/')
		return vss_error_set(err, -EINVAL, "provider live takes paths, not volume "
				     "names (%s)", target);
	if (!realpath(target, real))
		return vss_error_set(err, -errno, "%s: %s", target, strerror(errno));
	return 0;
}

static int live_prepare(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	char real[PATH_MAX];

	if (!realpath(m->target, real))
		return vss_error_set(err, -errno, "%s: %s", m->target, strerror(errno));
	if (!(m->priv = strdup(real)))
		return vss_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

static int live_commit(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	return 0;
}

static void live_abort(struct vss_service *svc, struct svc_member *m)
{
	free(m->priv);
	m->priv = NULL;
}

static int live_adopt(struct vss_service *svc, struct svc_member *m, struct svc_shadow *sh,
		      struct vss_error *err)
{
	sh->path = m->priv;
	m->priv = NULL;
	sh->origin = svc_provider_origin_of(sh->path);
	sh->target_path = strdup(sh->path);
	return 0;
}

static void live_location(struct vss_service *svc, const struct svc_shadow *sh, char *out,
			  size_t len)
{
	snprintf(out, len, "%s", sh->path ? sh->path : "");
}

static int live_remove(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err)
{
	return 0;
}

static int live_expose(struct vss_service *svc, struct svc_shadow *sh, int dirfd,
		       unsigned int flags, json_t **res, struct vss_error *err)
{
	return vss_error_set(err, -EOPNOTSUPP, "shadow %s is the live filesystem (%s): read "
			     "it there", sh->rec.id, sh->path);
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

void svc_provider_list_add(struct vss_service *svc, struct svc_shadow *sh)
{
	struct svc_shadow **pp;

	for (pp = &svc->shadows; *pp; pp = &(*pp)->next)
		;
	*pp = sh;
}

/* Live "shadows" from the catalog: the persistent ones are listed again, the others dropped. */
static int live_recover(struct vss_service *svc, struct vss_error *err)
{
	struct svc_rows r;
	int rc = svc_provider_rows(svc, VSS_CATALOG_ATTR_LIVE, &r, err);

	for (size_t i = 0; rc == 0 && i < r.count; i++) {
		const struct vss_catalog_shadow *s = &r.rows[i];
		struct svc_shadow *sh;

		if (!(s->attrs & VSS_CATALOG_ATTR_PERSISTENT)) {
			vss_catalog_shadow_delete(svc->cat, s->id, NULL);
			vss_log("shadow %s (live %s) deleted: not persistent, left by a "
				"previous run", s->id, s->target);
			continue;
		}
		if (!(sh = calloc(1, sizeof(*sh)))) {
			rc = vss_error_set(err, -ENOMEM, "out of memory");
			break;
		}
		sh->prov = &svc_provider_live;
		sh->rec = *s;
		sh->rec.target = strdup(s->target);
		if (!(sh->path = realpath(s->target, NULL)))
			sh->path = strdup(s->target);
		sh->origin = svc_provider_origin_of(sh->path);
		sh->target_path = strdup(sh->path);
		svc_provider_list_add(svc, sh);
	}
	svc_provider_rows_release(&r);
	return rc;
}

static json_t *live_paths(struct vss_service *svc)
{
	return json_array();
}

const struct vss_provider_ops svc_provider_live = {
	.name = "live",
	.id = "3f7d2a51-0c44-4e8b-b6f1-9e2a7c5d1b03",
	.version = VSS_VERSION,
	.kind = "none",
	.priority = 0,
	.catalog_attr = VSS_CATALOG_ATTR_LIVE,
	.supports = live_supports,
	.prepare = live_prepare,
	.commit = live_commit,
	.abort = live_abort,
	.adopt = live_adopt,
	.location = live_location,
	.remove = live_remove,
	.expose = live_expose,
	.recover = live_recover,
	.paths = live_paths,
};
