/*
 * provider/live.c - the "live" pseudo-provider that --allow-live falls back
 * to: the live filesystem, read as it is, nothing made, nothing frozen
 * (SVC_PROVIDER_LIVE).  Its "shadows" are catalog rows, so that a
 * persistent one is listed again after a restart.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/version.h>

#include "provider/provider.h"
#include "service/log.h"
#include "service/service_i.h"
#include "service/shadows.h"


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
	sh->origin = svc_provider_origin_of(svc, sh->path);
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
		sh->origin = svc_provider_origin_of(svc, sh->path);
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
	.caps = SVC_PROVIDER_LIVE,
	.catalog_attr = VSS_CATALOG_ATTR_LIVE,
	.shadow_attr = "live",
	.supports = live_supports,
	.prepare = live_prepare,
	.commit = live_commit,
	.abort = live_abort,
	.adopt = live_adopt,
	.location = live_location,
	.remove = live_remove,
	.expose = live_expose,
	.recover = live_recover,
	.changed = NULL,
	.keep = NULL,
	.forget = NULL,
	.origin_of = NULL,
	.paths = live_paths,
};
