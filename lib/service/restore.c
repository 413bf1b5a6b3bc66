/*
 * service/restore.c - what a restart brings back: the volumes the
 * administrator mounted ("vss volume mount") and the shadows exposed ("vss
 * expose"), from the catalog's records of them (catalog.h).
 *
 * The records are read as soon as the catalog is open (start may delete a
 * shadow, and the record of its exposure with it) and acted on once a dead
 * vssd's mounts are cleaned up (service.c) and every volume and shadow is
 * served again.
 * Volumes are mounted read-write with their recorded options (xfs once more
 * with nouuid if a dead instance of it is still held open: mount_again()),
 * refused if they no longer hold the recorded filesystem type; shadows are
 * exposed as "vss expose" does (svc_shadow_expose()).  In order of their
 * directories, so that a directory inside another mount is there when it
 * is needed.  Nothing already mounted is ever unmounted: a directory with
 * something on it is a failure, except a btrfs shadow's bind mount that
 * outlived a killed vssd (the same directory: it is adopted).  No directory
 * is made, and no filesystem.
 *
 * What cannot be brought back is logged in one line, and its record
 *  - dropped when the volume or shadow is served but the mount fails (the
 *    directory is gone, something else is mounted there, the filesystem
 *    refuses) or when the shadow no longer exists: from then on the catalog
 *    records exactly what "vss volume list" and "vss list shadows" show;
 *  - kept when the volume or shadow still exists but is not served this
 *    time (the volume could not be opened, a btrfs snapshot lies on a
 *    filesystem not mounted yet): the next start tries again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "service/fs.h"
#include "service/log.h"
#include "service/service_i.h"

struct svc_restore {
	struct vss_catalog_mount *items;        /* strings owned */
	size_t count, cap;
	unsigned int done, failed, kept;
};

static int collect(void *arg, const struct vss_catalog_mount *m)
{
	struct svc_restore *r = arg;
	struct vss_catalog_mount *items = svc_grow(r->items, &r->cap, r->count, sizeof(*items));
	struct vss_catalog_mount *it;

	if (!items)
		return -ENOMEM;
	r->items = items;
	it = &r->items[r->count];
	*it = *m;
	it->dir = strdup(m->dir);
	it->options = strdup(m->options);
	r->count++;
	return it->dir && it->options ? 0 : -ENOMEM;
}

void svc_restore_free(struct svc_restore *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->count; i++) {
		free(r->items[i].dir);
		free(r->items[i].options);
	}
	free(r->items);
	free(r);
}

int svc_restore_read(struct vss_service *svc, struct svc_restore **out, struct vss_error *err)
{
	struct svc_restore *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (!r)
		return vss_error_set(err, -ENOMEM, "out of memory");
	rc = vss_catalog_mount_each(svc->cat, collect, r, err);
	if (rc < 0) {
		if (rc == -ENOMEM)
			vss_error_set(err, rc, "out of memory");
		svc_restore_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* Logs why @m is not brought back and drops its record. */
static void forget(struct vss_service *svc, struct svc_restore *r,
		   const struct vss_catalog_mount *m, const char *why)
{
	vss_log("restore: %s %s not %s again at %s: %s; forgotten",
		m->shadow ? "shadow" : "volume", m->name,
		m->shadow ? "exposed" : "mounted", m->dir, why);
	vss_catalog_mount_delete(svc->cat, m->shadow, m->name, NULL);
	r->failed++;
}

static void keep(struct svc_restore *r, const struct vss_catalog_mount *m)
{
	vss_log("restore: %s %s not %s again at %s: it is not served; kept for the next "
		"start", m->shadow ? "shadow" : "volume", m->name,
		m->shadow ? "exposed" : "mounted", m->dir);
	r->kept++;
}

/*
 * After a kill -9, a process that still has files open on the dead mount
 * keeps that filesystem alive (lazily unmounted), and xfs refuses a second
 * instance of the same UUID (EINVAL).  The dead one can do no more I/O (its
 * loop device reads a dead FUSE tree), so the volume is mounted with nouuid.
 */
static int mount_again(struct vss_service *svc, struct svc_volume *v,
		       const struct vss_catalog_mount *m, struct vss_error *err)
{
	char opts[1024];
	int rc = svc_volume_mount(svc, v, m->dir, NULL, m->fstype,
				  m->options[0] ? m->options : NULL, err);

	if (rc != -EINVAL || strcmp(m->fstype, "xfs") != 0)
		return rc;
	snprintf(opts, sizeof(opts), "%s%snouuid", m->options, m->options[0] ? "," : "");
	svc_volume_wait_closed(svc, v);     /* the failed try's loop device goes */
	if (svc_volume_mount(svc, v, m->dir, NULL, m->fstype, opts, NULL) < 0)
		return rc;
	vss_log("restore: volume %s mounted with nouuid: its xfs is still held open on "
		"the dead mount of a previous vssd", m->name);
	return 0;
}

static void restore_mount(struct vss_service *svc, struct svc_restore *r,
			  const struct vss_catalog_mount *m)
{
	struct svc_volume *v = svc_volume_find(svc, m->name);
	struct vss_error e;

	if (!v)
		keep(r, m);
	else if (mount_again(svc, v, m, &e) == 0)
		r->done++;
	else
		forget(svc, r, m, e.msg);
}

static int row_matches(void *arg, const struct vss_catalog_shadow *s)
{
	return strcmp(s->id, arg) == 0;
}

/* A btrfs shadow's bind mount outlives a vssd killed with -9: @dir is then
 * the very directory the shadow is (same device and inode). */
static bool still_exposed(struct vss_service *svc, struct svc_shadow *sh, const char *dir)
{
	char where[PATH_MAX];
	struct stat a, b;

	sh->prov->location(svc, sh, where, sizeof(where));
	return vss_fs_is_mountpoint(dir) && stat(dir, &a) == 0 && stat(where, &b) == 0 &&
	       S_ISDIR(b.st_mode) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static void restore_exposure(struct vss_service *svc, struct svc_restore *r,
			     const struct vss_catalog_mount *m)
{
	struct svc_shadow *sh = svc_shadow_find(svc, m->name);
	struct vss_error e;
	json_t *res = NULL;

	if (!sh) {
		if (vss_catalog_shadow_each(svc->cat, row_matches, (void *)m->name, NULL) > 0)
			keep(r, m);
		else
			forget(svc, r, m, "the shadow no longer exists (not persistent, or deleted)");
	} else if (still_exposed(svc, sh, m->dir)) {
		if (!(sh->expose_dir = strdup(m->dir))) {
			forget(svc, r, m, "out of memory");
			return;
		}
		vss_log("shadow %s is still exposed at %s", sh->rec.id, m->dir);
		r->done++;
	} else if (svc_shadow_expose(svc, sh, m->dir, &res, &e) == 0) {
		json_decref(res);
		r->done++;
	} else {
		forget(svc, r, m, e.msg);
	}
}

void svc_restore_run(struct vss_service *svc, struct svc_restore *r)
{
	for (size_t i = 0; i < r->count; i++) {
		if (r->items[i].shadow)
			restore_exposure(svc, r, &r->items[i]);
		else
			restore_mount(svc, r, &r->items[i]);
	}
	if (r->count > 0)
		vss_log("restore: %u of %zu mounts and exposures brought back, %u forgotten, "
			"%u kept for the next start", r->done, r->count, r->failed, r->kept);
}
