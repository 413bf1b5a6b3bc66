/*
 * provider/lvm/provider.c - the LVM provider behind the service's provider
 * operations: a path on a filesystem whose device is a logical volume gets
 * a snapshot of that LV (lvm.h does the work): a thin snapshot of a thin
 * LV, a classic copy-on-write snapshot (1/VSS_LVM_COW_DIVISOR of the
 * origin: its shadow storage, which "resize shadowstorage" grows) of any
 * other.
 *
 * The instant: the set does not FIFREEZE these filesystems (on 6.1 the
 * device-mapper suspend inside lvcreate then fails: it freezes the
 * filesystem itself, and a second freeze is EBUSY).  Instead hold suspends
 * every classic LV of the set (the kernel freezes each filesystem and
 * holds its writes), then each commit's lvcreate finds its LV suspended,
 * snapshots it and resumes it; unhold resumes whatever a failed commit
 * left.  Every classic LV is suspended before the first is resumed: one
 * instant for them.  A thin LV cannot be held so (lvm_hold): its lvcreate
 * suspends (freezes) it on its own.  So prepare marks it (m->own_instant):
 * the coordinator commits it first, while every other member is still
 * held, frozen or gated, which keeps the set one instant, and refuses a
 * set with two (doc/providers.md, "The instant").
 *
 * Which snapshots are this instance's: the catalog, as for btrfs.  prepare
 * writes the row before lvcreate, so whatever kill -9 interrupts leaves a
 * row for every snapshot that may exist; recover removes those whose row
 * says "not persistent" and lists the persistent ones again.  A snapshot
 * without a row (another instance's), or without the tag "vss", is never
 * touched.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <vss/version.h>

#include "provider/fsinfo.h"
#include "provider/lvm/lvm.h"
#include "provider/provider.h"
#include "service/fs.h"
#include "service/log.h"
#include "service/service_i.h"
#include "service/shadows.h"

struct lvm_member {
	struct vss_lvm_lv origin;
	struct vss_lvm_lv snap;
	dev_t dev;
	char *mount_point;
	char what[2 * VSS_LVM_NAME_MAX + 16];  /* "thin LV VG/LV": m->own_instant */
};

/* /dev/mapper/VG-LV, dashes doubled as device-mapper names them. */
static void dm_path(const char *vg, const char *lv, char *out, size_t size)
{
	size_t k = (size_t)snprintf(out, size, "/dev/mapper/");

	vss_lvm_dm_name(vg, lv, "", out + k, size - k);
}

/* The filesystem holding @path, and whether its device is an LV (sysfs only). */
static int probe(const char *path, struct vss_fsinfo *fi, struct vss_error *err)
{
	int rc;

	if (path[0] != '/')
		return vss_error_set(err, -EINVAL, "provider lvm takes paths, not volume names "
				     "(%s)", path);
	if ((rc = vss_fsinfo_probe(path, fi, err)) < 0)
		return rc;
	if (fi->cls != VSS_FSINFO_BLOCK && fi->cls != VSS_FSINFO_BTRFS) {
		rc = vss_error_set(err, -EOPNOTSUPP, "%s is on %s (%s), not on a block device",
				   path, fi->fstype, fi->source);
		vss_fsinfo_release(fi);
		return rc;
	}
	if ((rc = vss_lvm_of_dev(fi->devno, NULL, err)) < 0) {
		char why[VSS_ERROR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		rc = vss_error_set(err, -EOPNOTSUPP, "%s is on %s (%s), not on a logical volume: "
				   "%s", path, fi->source, fi->fstype, why);
		vss_fsinfo_release(fi);
	}
	return rc;
}

static int lvm_supports(struct vss_service *svc, const char *target, struct vss_error *err)
{
	struct vss_fsinfo fi = { 0 };
	int rc = probe(target, &fi, err);

	vss_fsinfo_release(&fi);
	return rc;
}

static void member_free(struct lvm_member *lm)
{
	if (!lm)
		return;
	free(lm->mount_point);
	free(lm);
}

/* Refuses a thin snapshot in a pool near full, with the numbers. */
static int check_pool(const struct svc_member *m, const struct vss_lvm_lv *origin,
		      struct vss_error *err)
{
	struct vss_lvm_lv pool;
	int rc;

	if ((rc = vss_lvm_get(origin->vg, origin->pool, &pool, err)) < 0)
		return rc;
	if (pool.data_percent < VSS_LVM_THIN_FULL_PCT)
		return 0;
	return vss_error_set(err, -ENOSPC, "%s is on %s/%s, whose thin pool %s/%s is %.1f%% "
			     "full (%.0f of %.0f MiB): a snapshot makes every overwrite take new "
			     "space, so none is taken above %.0f%%; extend the pool (lvextend) "
			     "first", m->target, origin->vg, origin->name, pool.vg, pool.name,
			     pool.data_percent,
			     (double)pool.size * pool.data_percent / 100.0 / 1048576.0,
			     (double)pool.size / 1048576.0, VSS_LVM_THIN_FULL_PCT);
}

static int lvm_prepare(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	struct vss_fsinfo fi = { 0 };
	struct vss_catalog_shadow row;
	struct lvm_member *lm;
	int rc;

	if ((rc = probe(m->target, &fi, err)) < 0)
		return rc;
	if (!(lm = calloc(1, sizeof(*lm))) || !(lm->mount_point = strdup(fi.mount_point))) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	lm->dev = fi.devno;
	if ((rc = vss_lvm_of_dev(fi.devno, &lm->origin, err)) < 0)
		goto fail;
	if (lm->origin.ours || lm->origin.origin[0]) {
		rc = vss_error_set(err, -EINVAL, "%s is on %s/%s, itself a snapshot: shadow its "
				   "origin instead", m->target, lm->origin.vg, lm->origin.name);
		goto fail;
	}
	if (strcmp(lm->origin.segtype, "thin-pool") == 0) {
		rc = vss_error_set(err, -EOPNOTSUPP, "%s is on %s/%s (%s): no snapshot of that",
				   m->target, lm->origin.vg, lm->origin.name, lm->origin.segtype);
		goto fail;
	}
	if (lm->origin.thin && (rc = check_pool(m, &lm->origin, err)) < 0)
		goto fail;
	/* The row first: whatever happens next, recovery knows the snapshot is ours. */
	svc_provider_row(m, &row);
	if ((rc = vss_catalog_shadow_put(svc->cat, &row, err)) < 0)
		goto fail;
	vss_fsinfo_release(&fi);
	m->priv = lm;
	if (!lm->origin.thin) {
		m->hold_dev = lm->dev;   /* lvm_hold suspends it: the guardian resumes it */
	} else {
		snprintf(lm->what, sizeof(lm->what), "thin LV %s/%s", lm->origin.vg,
			 lm->origin.name);
		m->own_instant = lm->what;
	}
	return 0;
fail:
	vss_fsinfo_release(&fi);
	member_free(lm);
	return rc;
}

/* A thin LV is not held: lvcreate of a suspended thin LV does not send the
 * pool its create_snap message, and the snapshot it records cannot be
 * activated (6.1, lvm 2.03.16).  Its own suspend inside lvcreate freezes it. */
static int lvm_hold(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	struct lvm_member *lm = m->priv;

	return lm->origin.thin ? 0 : vss_lvm_hold(lm->dev, err);
}

static int lvm_commit(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	struct lvm_member *lm = m->priv;

	return vss_lvm_snapshot(&lm->origin, m->id, m->set_id, m->persistent, 0, &lm->snap,
				err);
}

static void lvm_unhold(struct vss_service *svc, struct svc_member *m)
{
	struct lvm_member *lm = m->priv;
	struct vss_error e;
	bool was;

	if (vss_lvm_unhold(lm->dev, &was, &e) < 0)
		vss_log("LV %s/%s: cannot resume it: %s", lm->origin.vg, lm->origin.name, e.msg);
	else if (was)
		vss_log("LV %s/%s resumed (its snapshot was not taken)", lm->origin.vg,
			lm->origin.name);
}

static void lvm_abort(struct vss_service *svc, struct svc_member *m)
{
	struct lvm_member *lm = m->priv;
	struct vss_error e;
	char id[37];

	if (m->taken && vss_lvm_remove(lm->snap.vg, lm->snap.name, &e) < 0)
		vss_log("LVM snapshot %s/%s: %s", lm->snap.vg, lm->snap.name, e.msg);
	m->taken = false;
	member_free(lm);
	m->priv = NULL;
	m->own_instant = NULL;
	svc_id_str(m->id, id);
	vss_catalog_shadow_delete(svc->cat, id, NULL);
}

static int lvm_adopt(struct vss_service *svc, struct svc_member *m, struct svc_shadow *sh,
		     struct vss_error *err)
{
	struct lvm_member *lm = m->priv;
	char dev[PATH_MAX];
	int rc = 0;

	dm_path(lm->snap.vg, lm->snap.name, dev, sizeof(dev));
	sh->path = strdup(dev);
	sh->origin = strdup(lm->mount_point);
	if (!sh->path || !sh->origin)
		rc = vss_error_set(err, -ENOMEM, "out of memory");
	else
		vss_log("shadow %s: %s snapshot %s/%s of %s/%s", sh->rec.id,
			lm->snap.thin ? "thin" : "classic", lm->snap.vg, lm->snap.name,
			lm->origin.vg, lm->origin.name);
	member_free(lm);
	m->priv = NULL;
	m->own_instant = NULL;
	return rc;
}

static int lvm_remove(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err)
{
	struct vss_lvm_lv snap;
	vss_cow_id id;
	int rc;

	if (!sh->path)
		return 0;   /* never adopted: its set's abort removed the snapshot */
	svc_id_parse(sh->rec.id, id);
	if ((rc = vss_lvm_find(NULL, id, &snap, err)) < 0)
		return rc == -ENOENT ? 0 : rc;
	rc = vss_lvm_remove(snap.vg, snap.name, err);
	return rc == -ENOENT ? 0 : rc;
}

static void lvm_info(struct vss_service *svc, const struct svc_shadow *sh,
		     struct vss_cow_shadow_info *info)
{
	struct vss_lvm_lv snap;
	struct vss_error e;
	vss_cow_id id;

	svc_id_parse(sh->rec.id, id);
	if (vss_lvm_find(NULL, id, &snap, &e) < 0) {
		info->state = VSS_COW_SHADOW_INVALID;
		return;
	}
	if (snap.snap_invalid)
		info->state = VSS_COW_SHADOW_INVALID;
	if (!snap.thin && snap.snap_percent >= 0)
		info->diff_bytes = (uint64_t)((double)snap.size * snap.snap_percent / 100.0);
}

/*
 * Mounts the snapshot's own device (read-only at the device-mapper level
 * already), not through a loop device: a loop over a block device takes
 * its 4 KiB logical block size, on which a 1 KiB-block ext4 or a 512-byte
 * sector xfs does not mount.
 */
static int lvm_expose(struct vss_service *svc, struct svc_shadow *sh, int dirfd,
		      unsigned int flags, json_t **res, struct vss_error *err)
{
	struct vss_fs_mounted m;
	const char *fstype;
	int rc;

	if (!sh->path)
		return vss_error_set(err, -ENOENT, "shadow %s has no device", sh->rec.id);
	fstype = vss_fs_detect(sh->path);
	if (!fstype || (strcmp(fstype, "ext4") != 0 && strcmp(fstype, "xfs") != 0))
		return vss_error_set(err, -EOPNOTSUPP, "shadow %s (%s) holds %s: only ext4 and "
				     "xfs are mounted", sh->rec.id, sh->path,
				     fstype ? fstype : "no filesystem vss knows");
	if ((rc = vss_fs_mount(sh->path, dirfd, fstype, NULL, flags | VSS_FS_SHADOW, &m,
			       err)) < 0)
		return rc;
	if (!(sh->expose_dir = strdup(m.dir))) {
		vss_fs_umount_force(m.dir);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	sh->expose_id = m.id;
	sh->expose_loop[0] = '\0';
	vss_log("shadow %s exposed at %s (%s on %s, read-only)", sh->rec.id, m.dir, fstype,
		sh->path);
	*res = json_pack("{s:s, s:s, s:s, s:s}", "shadow", sh->rec.id, "dir", m.dir,
			 "source", sh->path, "fstype", fstype);
	return 0;
}

/* A classic snapshot's copy-on-write space: its shadow storage, as large as
 * the snapshot LV (lvm's snap_percent of it used).  Thin snapshots have
 * none of their own (the pool's). */
static json_t *lvm_storage(struct vss_service *svc, const struct svc_shadow *sh)
{
	struct vss_lvm_lv snap;
	struct vss_error e;
	vss_cow_id id;
	char origin[2 * VSS_LVM_NAME_MAX], loc[PATH_MAX];

	svc_id_parse(sh->rec.id, id);
	if (vss_lvm_find(NULL, id, &snap, &e) < 0 || snap.thin)
		return NULL;
	snprintf(origin, sizeof(origin), "%s/%s", snap.vg, snap.origin);
	dm_path(snap.vg, snap.name, loc, sizeof(loc));
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:b, s:i, s:s, s:s, s:b}",
			 "volume", origin, "location", loc,
			 "used", (json_int_t)(snap.snap_percent > 0
					      ? (double)snap.size * snap.snap_percent / 100.0 : 0),
			 "allocated", (json_int_t)snap.size, "max", (json_int_t)snap.size,
			 "explicit", 0, "shadows", 1, "shadow", sh->rec.id, "provider", "lvm",
			 "invalid", snap.snap_invalid);
}

static int lvm_storage_resize(struct vss_service *svc, struct svc_shadow *sh, uint64_t size,
			      struct vss_error *err)
{
	struct vss_lvm_lv snap;
	vss_cow_id id;
	int rc;

	svc_id_parse(sh->rec.id, id);
	if ((rc = vss_lvm_find(NULL, id, &snap, err)) < 0)
		return rc;
	if (snap.snap_invalid)
		return vss_error_set(err, -EINVAL, "shadow %s overflowed its shadow storage: it "
				     "is invalid, and growing it would not make it exact again",
				     sh->rec.id);
	return vss_lvm_extend(snap.vg, snap.name, size, err);
}

/* Changed blocks between two thin snapshots of one origin, from the pool's
 * metadata (thin_delta). */
static int lvm_changed(struct vss_service *svc, const char *from_id,
		       const struct svc_shadow *to, struct vss_cow_extent **ext, size_t *n,
		       uint64_t *size, uint64_t *unit, struct vss_error *err)
{
	const struct svc_shadow *from = svc_shadow_find(svc, from_id);
	struct vss_lvm_lv a, b;
	struct vss_lvm_extent *d;
	vss_cow_id id;
	int rc;

	*ext = NULL;
	*n = 0;
	if (!from || from->prov != &svc_provider_lvm)
		return -ENOENT;     /* no bookmarks: only its own live shadows */
	if (!to)
		return vss_error_set(err, -EOPNOTSUPP, "shadow copy %s (lvm): changed blocks only "
				     "between two of its shadow copies, not up to now", from->rec.id);
	svc_id_parse(from->rec.id, id);
	if ((rc = vss_lvm_find(NULL, id, &a, err)) < 0)
		return rc;
	svc_id_parse(to->rec.id, id);
	if ((rc = vss_lvm_find(NULL, id, &b, err)) < 0)
		return rc;
	if (!a.thin || !b.thin || strcmp(a.vg, b.vg) != 0 || strcmp(a.origin, b.origin) != 0)
		return vss_error_set(err, -EOPNOTSUPP, "shadow copies %s and %s are not thin "
				     "snapshots of one LV: no changed blocks between them",
				     from->rec.id, to->rec.id);
	if ((rc = vss_lvm_thin_delta(&a, &b, &d, n, unit, err)) < 0)
		return rc;
	/* The same two fields: a vss_cow_extent array is what the service hands on. */
	if (*n && !(*ext = calloc(*n, sizeof(**ext)))) {
		free(d);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < *n; i++) {
		(*ext)[i].offset = d[i].offset;
		(*ext)[i].length = d[i].length;
	}
	free(d);
	*size = b.size;
	return 0;
}

/* ---- recovery ---- */

static int lvm_recover(struct vss_service *svc, struct vss_error *err)
{
	struct svc_rows rows;
	struct vss_lvm_lv *all = NULL;
	size_t n = 0;
	unsigned int deleted = 0, kept = 0;
	bool *found = NULL;
	int rc;

	if ((rc = svc_provider_rows(svc, VSS_CATALOG_ATTR_LVM, &rows, err)) < 0 ||
	    rows.count == 0)
		goto out;
	if ((rc = vss_lvm_list(NULL, &all, &n, err)) < 0)
		goto out;
	if (!(found = calloc(rows.count, sizeof(*found)))) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		const struct vss_lvm_lv *lv = &all[k];
		char id[37], dev[PATH_MAX];

		if (!lv->ours)
			continue;
		vss_lvm_format_id(lv->shadow_id, id);
		for (size_t i = 0; i < rows.count; i++) {
			const struct vss_catalog_shadow *row = &rows.rows[i];
			struct svc_shadow *sh;
			struct vss_error e;

			if (strcmp(row->id, id) != 0)
				continue;
			found[i] = true;
			if (!(row->attrs & VSS_CATALOG_ATTR_PERSISTENT) || !lv->persistent) {
				if (vss_lvm_remove(lv->vg, lv->name, &e) < 0) {
					vss_log("LVM snapshot %s/%s: %s", lv->vg, lv->name, e.msg);
					break;
				}
				vss_log("LVM snapshot %s/%s removed: not persistent, left by a "
					"previous run", lv->vg, lv->name);
				vss_catalog_shadow_delete(svc->cat, row->id, NULL);
				deleted++;
				break;
			}
			if (svc_shadow_find(svc, id) || !(sh = calloc(1, sizeof(*sh))))
				break;
			dm_path(lv->vg, lv->name, dev, sizeof(dev));
			sh->prov = &svc_provider_lvm;
			sh->rec = *row;
			sh->rec.target = strdup(row->target);
			sh->path = strdup(dev);
			sh->origin = svc_provider_mount_of(row->target);
			if (!sh->origin)
				sh->origin = strdup(row->target);
			svc_provider_list_add(svc, sh);
			kept++;
			break;
		}
	}
	for (size_t i = 0; i < rows.count; i++) {
		const struct vss_catalog_shadow *row = &rows.rows[i];

		if (found[i])
			continue;
		/* A persistent one may be in a VG not active yet: kept for the next start. */
		if (row->attrs & VSS_CATALOG_ATTR_PERSISTENT) {
			vss_log("shadow %s (LVM, %s): its snapshot is in no active volume group; "
				"kept in the catalog, not listed", row->id, row->target);
			continue;
		}
		vss_catalog_shadow_delete(svc->cat, row->id, NULL);
		vss_log("shadow %s (LVM, %s) forgotten: its snapshot does not exist", row->id,
			row->target);
	}
	vss_log("lvm: %u snapshot%s of an earlier run removed, %u persistent kept", deleted,
		deleted == 1 ? "" : "s", kept);
out:
	free(found);
	free(all);
	svc_provider_rows_release(&rows);
	return rc;
}

static bool is_lvm_mount(const struct vss_fsinfo *fi)
{
	return (fi->cls == VSS_FSINFO_BLOCK || fi->cls == VSS_FSINFO_BTRFS) &&
	       vss_lvm_of_dev(fi->devno, NULL, NULL) == 0;
}

static json_t *lvm_paths(struct vss_service *svc)
{
	return svc_provider_mounts(is_lvm_mount);
}

const struct vss_provider_ops svc_provider_lvm = {
	.name = "lvm",
	.id = "0c3f9a6e-2d41-4b8a-9e57-6f1d2a8c4b93",
	.version = VSS_VERSION,
	.kind = "software",
	.priority = 40,
	.caps = 0,
	.catalog_attr = VSS_CATALOG_ATTR_LVM,
	.shadow_attr = "plex",
	.supports = lvm_supports,
	.prepare = lvm_prepare,
	.hold = lvm_hold,
	.commit = lvm_commit,
	.unhold = lvm_unhold,
	.abort = lvm_abort,
	.adopt = lvm_adopt,
	.location = svc_provider_location_path,
	.remove = lvm_remove,
	.info = lvm_info,
	.changed = lvm_changed,
	.storage = lvm_storage,
	.storage_resize = lvm_storage_resize,
	.expose = lvm_expose,
	.recover = lvm_recover,
	.origin_of = NULL,
	.paths = lvm_paths,
};
