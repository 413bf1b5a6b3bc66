/*
 * provider/builtin.c - the built-in provider: the copy-on-write
 * engine under a managed volume.  A target is a volume name or a path inside
 * a volume vss mounted; its shadow is an engine shadow served as the
 * read-only device RUN/dev/shadows/ID.  prepare asks the coordinator to
 * freeze the volume's filesystem and close its gate around commit;
 * recovery is the service's reconciliation of the catalog with the engine
 * (service.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <vss/version.h>

#include "provider/provider.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/volumes.h"

#define BUILTIN_NAME "vss-cow"
#define BUILTIN_ID   "5e1f0c9a-3b0d-4c6e-9a51-7d2c8b4f0e11"

static int builtin_supports(struct vss_service *svc, const char *target,
			    struct vss_error *err)
{
	struct svc_volume *v;
	int rc;

	if ((rc = svc_resolve_target(svc, target, &v, err)) < 0)
		return rc;
	if (!v->cow)
		return vss_error_set(err, -ENOTSUP, "volume %s has no copy-on-write engine: its "
				     "storage makes its shadows", v->rec.name);
	return 0;
}

/*
 * Resolves the target to a volume (priv), refuses what the set cannot take
 * of it (more shadows than the engine keeps; a filesystem to freeze that
 * holds the service's own files, on which the copy-on-write would wait for
 * the very freeze), and asks the coordinator to close the volume's gate
 * around commit and to freeze its filesystem if vss mounted one.
 */
static int builtin_prepare(struct vss_service *svc, struct svc_member *m,
			   struct vss_error *err)
{
	char dev[PATH_MAX];
	struct svc_volume *v;
	struct stat st;
	const char *what;
	int rc;

	if ((rc = svc_resolve_target(svc, m->target, &v, err)) < 0)
		return rc;
	if (svc_shadow_count(svc, v) >= VSS_COW_MAX_SHADOWS)
		return vss_error_set(err, -EMLINK, "volume %s already has %d shadow copies",
				     v->rec.name, VSS_COW_MAX_SHADOWS);
	if (v->mount_dir) {
		if (stat(v->mount_dir, &st) < 0)
			return vss_error_set(err, -errno, "%s: %s", v->mount_dir,
					     strerror(errno));
		if (svc_same_fs_as_state(svc, st.st_dev, &what))
			return vss_error_set(err, -EBUSY, "refusing to freeze %s: it holds %s",
					     v->mount_dir, what);
	}
	svc_volume_device_path(svc, v->rec.name, dev, sizeof(dev));
	if (!(m->device = strdup(dev)))
		return vss_error_set(err, -ENOMEM, "out of memory");
	m->priv = v;
	m->volume = v->rec.name;
	m->gate = &v->wgate;
	m->freeze_dir = v->mount_dir;
	m->freeze_loop = v->mount_loop;
	return 0;
}

/* Called with the volume's gate closed for writing, filesystems frozen. */
static int builtin_commit(struct vss_service *svc, struct svc_member *m,
			  struct vss_error *err)
{
	struct svc_volume *v = m->priv;
	struct vss_cow_shadow_params p = {
		.flags = m->persistent ? VSS_COW_SHADOW_PERSISTENT : 0,
	};

	memcpy(p.id, m->id, sizeof(p.id));
	memcpy(p.set_id, m->set_id, sizeof(p.set_id));
	return vss_cow_shadow_create(v->cow, &p, err);
}

static void builtin_abort(struct vss_service *svc, struct svc_member *m)
{
	struct svc_volume *v = m->priv;

	if (m->taken)
		vss_cow_shadow_delete(v->cow, m->id, NULL);
	m->taken = false;
	m->priv = NULL;
}

static int builtin_adopt(struct vss_service *svc, struct svc_member *m, struct svc_shadow *sh,
			 struct vss_error *err)
{
	sh->vol = m->priv;
	m->priv = NULL;
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
	.name = BUILTIN_NAME,
	.id = BUILTIN_ID,
	.version = VSS_VERSION,
	.kind = "software",
	.priority = 100,
	.caps = SVC_PROVIDER_DROP_AT_OPEN,
	.catalog_attr = 0,
	.shadow_attr = "differential",
	.supports = builtin_supports,
	.prepare = builtin_prepare,
	.commit = builtin_commit,
	.abort = builtin_abort,
	.adopt = builtin_adopt,
	.location = builtin_location,
	.remove = builtin_remove,
	.expose = NULL,
	.recover = NULL,
	.changed = NULL,
	.keep = NULL,
	.forget = NULL,
	.origin_of = NULL,
	.paths = builtin_paths,
};
