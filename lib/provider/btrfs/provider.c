/*
 * provider/btrfs/provider.c - the btrfs provider behind the service's
 * provider operations: a path on btrfs gets a read-only snapshot of its
 * subvolume (btrfs.h, the mechanism, does the work).  prepare asks for no
 * gate and no freeze: a snapshot of a FIFREEZE'd btrfs waits for the thaw.
 * Commit runs while the other members of the set are frozen, and writes
 * through the filesystem it snapshots (SVC_PROVIDER_COMMIT_WRITES).
 *
 * Which snapshots are this instance's: the catalog.  prepare writes the
 * shadow's row before the snapshot exists, so a vssd killed at any point
 * leaves a row for every snapshot it may have made; recover deletes the
 * snapshots whose row says "not persistent", lists the persistent ones
 * again, and leaves every snapshot without a row (another instance's) alone.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/version.h>

#include "provider/btrfs/btrfs.h"
#include "provider/provider.h"
#include "service/fs.h"
#include "service/log.h"
#include "service/service_i.h"
#include "service/shadows.h"

/* What a shadow of @path is of: the root of the subvolume that holds it. */
static char *btrfs_origin_of(const char *path)
{
	struct vss_btrfs_info info = { 0 };
	char *out = NULL;

	if (vss_btrfs_probe(path, &info, NULL) == 0)
		out = strdup(info.subvol_root);
	vss_btrfs_info_release(&info);
	return out;
}

static int btrfs_supports(struct vss_service *svc, const char *target, struct vss_error *err)
{
	struct vss_fsinfo fi = { 0 };
	int rc;

	if (target[0] != '/')
		return vss_error_set(err, -EINVAL, "provider btrfs takes paths, not volume "
				     "names (%s)", target);
	if ((rc = vss_fsinfo_probe(target, &fi, err)) < 0)
		return rc;
	if (fi.cls != VSS_FSINFO_BTRFS)
		rc = vss_error_set(err, -EOPNOTSUPP, "%s is on %s, not on btrfs", target,
				   fi.fstype);
	vss_fsinfo_release(&fi);
	return rc;
}

static int btrfs_prepare(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	struct vss_btrfs_snapshot_params p = { .persistent = m->persistent };
	struct vss_btrfs_snapshot *snap;
	const struct vss_btrfs_info *info;
	struct vss_catalog_shadow row;
	int rc;

	memcpy(p.set_id, m->set_id, 16);
	memcpy(p.shadow_id, m->id, 16);
	if ((rc = vss_btrfs_snapshot_prepare(m->target, &p, &snap, err)) < 0)
		return rc;
	info = vss_btrfs_snapshot_info(snap);
	if (info->n_nested > 0) {
		char line[VSS_ERROR_MSG_MAX];

		snprintf(line, sizeof(line), "%s holds %zu nested subvolume%s (%s%s), which "
			 "will be empty directories in the shadow; add them as targets to "
			 "shadow them too", m->target, info->n_nested,
			 info->n_nested == 1 ? "" : "s", info->nested[0],
			 info->n_nested > 1 ? ", ..." : "");
		m->warning = strdup(line);
	}
	/* The row first: whatever happens next, recovery knows the snapshot is ours. */
	svc_provider_row(m, &row);
	if ((rc = vss_catalog_shadow_put(svc->cat, &row, err)) < 0) {
		vss_btrfs_snapshot_free(snap);
		free(m->warning);
		m->warning = NULL;
		return rc;
	}
	m->priv = snap;
	return 0;
}

static int btrfs_commit(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	return vss_btrfs_snapshot_commit(m->priv, err);
}

static void btrfs_abort(struct vss_service *svc, struct svc_member *m)
{
	struct vss_error e;
	char id[37];

	if (m->taken && vss_btrfs_delete(vss_btrfs_snapshot_path(m->priv), &e) < 0)
		vss_log("btrfs snapshot %s: %s", vss_btrfs_snapshot_path(m->priv), e.msg);
	m->taken = false;
	vss_btrfs_snapshot_free(m->priv);
	m->priv = NULL;
	svc_id_str(m->id, id);
	vss_catalog_shadow_delete(svc->cat, id, NULL);
}

static int btrfs_adopt(struct vss_service *svc, struct svc_member *m, struct svc_shadow *sh,
		       struct vss_error *err)
{
	struct vss_btrfs_snapshot *snap = m->priv;
	int rc = 0;

	sh->path = strdup(vss_btrfs_snapshot_path(snap));
	sh->origin = strdup(vss_btrfs_snapshot_info(snap)->subvol_root);
	sh->target_path = strdup(vss_btrfs_snapshot_target(snap));
	if (!sh->path || !sh->origin || !sh->target_path)
		rc = vss_error_set(err, -ENOMEM, "out of memory");
	vss_btrfs_snapshot_free(snap);
	m->priv = NULL;
	return rc;
}

static int btrfs_remove(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err)
{
	int rc;

	if (!sh->path)
		return 0;   /* never adopted: its set's abort deleted the snapshot */
	rc = vss_btrfs_delete(sh->path, err);
	return rc == -ENOENT ? 0 : rc;
}

static int btrfs_expose(struct vss_service *svc, struct svc_shadow *sh, int dirfd,
			unsigned int flags, json_t **res, struct vss_error *err)
{
	struct vss_fs_mounted m;
	int rc;

	/* Read-only, nosuid, nodev, noexec before it is attached: never
	 * anything else, not even for a moment. */
	if ((rc = vss_fs_bind(sh->path, dirfd, flags, &m, err)) < 0)
		return rc;
	if (!(sh->expose_dir = strdup(m.dir))) {
		vss_fs_umount_force(m.dir);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	sh->expose_id = m.id;
	sh->expose_loop[0] = '\0';
	vss_log("shadow %s exposed at %s (bind mount of %s, read-only)", sh->rec.id, m.dir,
		sh->path);
	*res = json_pack("{s:s, s:s, s:s, s:s}", "shadow", sh->rec.id, "dir", m.dir,
			 "source", sh->path, "fstype", "btrfs");
	return 0;
}

/* ---- recovery ---- */

struct recovery {
	struct vss_service *svc;
	struct svc_rows rows;
	bool *found;                   /* per row: its snapshot exists */
	unsigned int kept;
};

/* The target inside the snapshot @sh->path, and the live subvolume's root,
 * if the live target still resolves (else NULL and the mount point). */
static void resolve_again(struct svc_shadow *sh, const char *mount_point)
{
	struct vss_btrfs_info info = { 0 };

	if (vss_btrfs_probe(sh->rec.target, &info, NULL) == 0) {
		if (asprintf(&sh->target_path, "%s%s%s", sh->path, info.rel_path[0] ? "/" : "",
			     info.rel_path) < 0)
			sh->target_path = NULL;
		sh->origin = strdup(info.subvol_root);
	} else {
		sh->origin = strdup(mount_point);
	}
	vss_btrfs_info_release(&info);
}

static bool keep_snapshot(void *arg, const struct vss_btrfs_entry *e)
{
	struct recovery *r = arg;
	char id[37];

	vss_btrfs_format_id(e->shadow_id, id);
	for (size_t i = 0; i < r->rows.count; i++) {
		const struct vss_catalog_shadow *row = &r->rows.rows[i];
		struct svc_shadow *sh;

		if (strcmp(row->id, id) != 0)
			continue;
		r->found[i] = true;
		if (!(row->attrs & VSS_CATALOG_ATTR_PERSISTENT) || !e->persistent) {
			vss_log("btrfs snapshot %s deleted: not persistent, left by a previous "
				"run", e->path);
			vss_catalog_shadow_delete(r->svc->cat, row->id, NULL);
			return false;
		}
		if (svc_shadow_find(r->svc, id))
			return true;
		if (!(sh = calloc(1, sizeof(*sh))))
			return true;
		sh->prov = &svc_provider_btrfs;
		sh->rec = *row;
		sh->rec.target = strdup(row->target);
		sh->path = strdup(e->path);
		resolve_again(sh, e->mount_point);
		svc_provider_list_add(r->svc, sh);
		r->kept++;
		return true;
	}
	return true;    /* not in our catalog: another instance's, or no vssd's */
}

static int btrfs_recover(struct vss_service *svc, struct vss_error *err)
{
	struct recovery r = { .svc = svc };
	unsigned int deleted = 0;
	int rc;

	if ((rc = svc_provider_rows(svc, VSS_CATALOG_ATTR_BTRFS, &r.rows, err)) < 0)
		goto out;
	if (r.rows.count == 0)
		goto out;
	if (!(r.found = calloc(r.rows.count, sizeof(*r.found)))) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = vss_btrfs_cleanup(NULL, keep_snapshot, &r, &deleted, err);
	for (size_t i = 0; i < r.rows.count; i++) {
		const struct vss_catalog_shadow *row = &r.rows.rows[i];

		if (r.found[i])
			continue;
		/* A persistent one may be on a filesystem not mounted yet: keep its
		 * row for the next start.  The others were never made (vssd died
		 * before the commit) or were deleted behind our back. */
		if (row->attrs & VSS_CATALOG_ATTR_PERSISTENT) {
			vss_log("shadow %s (btrfs, %s): its snapshot is on no mounted btrfs; "
				"kept in the catalog, not listed", row->id, row->target);
			continue;
		}
		vss_catalog_shadow_delete(svc->cat, row->id, NULL);
		vss_log("shadow %s (btrfs, %s) forgotten: its snapshot does not exist",
			row->id, row->target);
	}
	vss_log("btrfs: %u snapshot%s of an earlier run deleted, %u persistent kept", deleted,
		deleted == 1 ? "" : "s", r.kept);
out:
	free(r.found);
	svc_provider_rows_release(&r.rows);
	return rc;
}

static bool is_btrfs_mount(const struct vss_fsinfo *fi)
{
	return fi->cls == VSS_FSINFO_BTRFS && !strstr(fi->mount_point, "/" VSS_BTRFS_SNAPSHOT_DIR);
}

static json_t *btrfs_paths(struct vss_service *svc)
{
	return svc_provider_mounts(is_btrfs_mount);
}

const struct vss_provider_ops svc_provider_btrfs = {
	.name = "btrfs",
	.id = "b7e4c2d0-6a1f-4f3e-8d25-1c9b0a7e5f42",
	.version = VSS_VERSION,
	.kind = "filesystem",
	.priority = 50,
	.caps = SVC_PROVIDER_COMMIT_WRITES,
	.catalog_attr = VSS_CATALOG_ATTR_BTRFS,
	.shadow_attr = "plex",
	.supports = btrfs_supports,
	.prepare = btrfs_prepare,
	.commit = btrfs_commit,
	.abort = btrfs_abort,
	.adopt = btrfs_adopt,
	.location = svc_provider_location_path,
	.remove = btrfs_remove,
	.expose = btrfs_expose,
	.recover = btrfs_recover,
	.changed = NULL,
	.keep = NULL,
	.forget = NULL,
	.origin_of = btrfs_origin_of,
	.paths = btrfs_paths,
};
