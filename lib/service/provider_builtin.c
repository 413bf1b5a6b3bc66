/*
 * service/provider_builtin.c - the built-in provider: the copy-on-write
 * engine under a managed volume.  A target is a volume name or a path inside
 * a volume vss mounted; its shadow is an engine shadow served as the
 * read-only device RUN/dev/shadows/ID.  The coordinator freezes the volume's
 * filesystem and closes its gate around commit; recovery is the service's
 * reconciliation of the catalog with the engine (service.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <vss/version.h>

#include "service/log.h"
#include "service/service_i.h"

static int builtin_supports(struct vss_service *svc, const char *target,
			    struct vss_error *err)
{
	struct svc_volume *v;

	return svc_resolve_target(svc, target, &v, err);
}

static int builtin_prepare(struct vss_service *svc, struct svc_member *m,
			   struct vss_error *err)
{
	return svc_resolve_target(svc, m->target, &m->vol, err);
}

/* Called with m->vol->gate closed for writing, filesystems frozen. */
static int builtin_commit(struct vss_service *svc, struct svc_member *m,
			  struct vss_error *err)
{
	struct vss_cow_shadow_params p = {
		.flags = m->persistent ? VSS_COW_SHADOW_PERSISTENT : 0,
	};

	memcpy(p.id, m->id, sizeof(p.id));
	memcpy(p.set_id, m->set_id, sizeof(p.set_id));
	return vss_cow_shadow_create(m->vol->cow, &p, err);
}

static void builtin_abort(struct vss_service *svc, struct svc_member *m)
{
	if (m->taken)
		vss_cow_shadow_delete(m->vol->cow, m->id, NULL);
	m->taken = false;
}

static int builtin_adopt(struct vss_service *svc, struct svc_member *m, struct svc_shadow *sh,
			 struct vss_error *err)
{
	sh->vol = m->vol;
	return svc_shadow_add_device(svc, sh, err);
}

static void builtin_location(struct vss_service *svc, const struct svc_shadow *sh, char *out,
			     size_t len)
{
	snprintf(out, len, "%s/shadows/%s", svc->dev_dir, sh->rec.id);
}

static int builtin_remove(struct vss_service *svc, struct svc_shadow *sh,
			  struct vss_error *err)
{
	vss_cow_id id;
	int rc;

	svc->tr->ops->remove(svc->tr, VSS_DEVICE_SHADOW, sh->rec.id);
	svc_id_parse(sh->rec.id, id);
	rc = vss_cow_shadow_delete(sh->vol->cow, id, err);
	return rc == -ENOENT ? 0 : rc;
}

static json_t *builtin_paths(struct vss_service *svc)
{
	json_t *arr = json_array();

	for (struct svc_volume *v = svc->volumes; v; v = v->next)
		json_array_append_new(arr, json_string(v->mount_dir ? v->mount_dir
								    : v->rec.name));
	return arr;
}

const struct vss_provider_ops svc_provider_builtin = {
	.name = VSS_PROVIDER_NAME,
	.id = VSS_PROVIDER_ID,
	.version = VSS_VERSION,
	.kind = "software",
	.priority = 100,
	.catalog_attr = 0,
	.supports = builtin_supports,
	.prepare = builtin_prepare,
	.commit = builtin_commit,
	.abort = builtin_abort,
	.adopt = builtin_adopt,
	.location = builtin_location,
	.remove = builtin_remove,
	.expose = NULL,
	.recover = NULL,
	.paths = builtin_paths,
};
