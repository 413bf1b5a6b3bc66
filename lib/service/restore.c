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
 * is needed.  Each directory is opened and checked as the operations do
 * (svc_mountpoint_open(): no symlinks, no system, state or run directory
 * but vssd's own RUN/exec/SET/ID), and a record follows its mount if the
 * directory has another path by now.  Nothing already mounted is ever
 * unmounted: a directory with something on it is a failure, except a
 * btrfs shadow's bind mount that outlived a killed vssd (the same
 * directory: it is adopted, and made nosuid, nodev, noexec again).  No
 * directory is made, and no filesystem; empty RUN/exec directories left
 * by a stop or a crash are removed.
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provider/provider.h"
#include "service/caller.h"
#include "service/log.h"
#include "service/restore.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/volumes.h"

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
	int rc = svc_volume_mount(svc, v, m->dir, 0, NULL, m->fstype,
				  m->options[0] ? m->options : NULL, err);

	if (rc != -EINVAL || strcmp(m->fstype, "xfs") != 0)
		return rc;
	snprintf(opts, sizeof(opts), "%s%snouuid", m->options, m->options[0] ? "," : "");
	svc_volume_wait_closed(svc, v);     /* the failed try's loop device goes */
	if (svc_volume_mount(svc, v, m->dir, 0, NULL, m->fstype, opts, NULL) < 0)
		return rc;
	vss_log("restore: volume %s mounted with nouuid: its xfs is still held open on "
		"the dead mount of a previous vssd", m->name);
	return 0;
}

/* The mount landed on the recorded directory, which has another path by
 * now (renamed): the record says where it is. */
static void record_landed(struct vss_service *svc, const struct vss_catalog_mount *m,
			  const char *dir)
{
	struct vss_catalog_mount now = *m;
	struct vss_error e;

	if (strcmp(m->dir, dir) == 0)
		return;
	vss_log("restore: %s %s is at %s, no longer at %s", m->shadow ? "shadow" : "volume",
		m->name, dir, m->dir);
	now.dir = (char *)dir;
	if (vss_catalog_mount_put(svc->cat, &now, &e) < 0)
		vss_log("restore: %s", e.msg);
}

static void restore_mount(struct vss_service *svc, struct svc_restore *r,
			  const struct vss_catalog_mount *m)
{
	struct svc_volume *v = svc_volume_find(svc, m->name);
	struct vss_error e;

	if (!v) {
		keep(r, m);
	} else if (mount_again(svc, v, m, &e) == 0) {
		record_landed(svc, m, v->mount_dir);
		r->done++;
	} else {
		forget(svc, r, m, e.msg);
	}
}

static int row_matches(void *arg, const struct vss_catalog_shadow *s)
{
	return strcmp(s->id, arg) == 0;
}

/* A btrfs shadow's bind mount outlives a vssd killed with -9: @dir is then
 * the very directory the shadow is (same device and inode), a mount root,
 * reached without a symlink. */
static bool still_exposed(struct vss_service *svc, struct svc_shadow *sh, const char *dir)
{
	char where[PATH_MAX], real[PATH_MAX];
	struct stat a, b;
	bool same;
	int fd;

	sh->prov->location(svc, sh, where, sizeof(where));
	if (vss_fs_open(dir, NULL, VSS_FS_OPEN_NOFOLLOW, &fd, real, NULL) < 0)
		return false;
	same = vss_fs_check_free(fd, real, NULL) == -EBUSY && fstat(fd, &a) == 0 &&
	       stat(where, &b) == 0 && S_ISDIR(b.st_mode) && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
	close(fd);
	return same;
}

static bool within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

static void restore_exposure(struct vss_service *svc, struct svc_restore *r,
			     const struct vss_catalog_mount *m)
{
	struct svc_shadow *sh = svc_shadow_find(svc, m->name);
	/* As "vss expose" made it: noexec unless root asked otherwise. */
	unsigned int flags = strcmp(m->options, "exec") == 0 ? VSS_FS_EXEC : 0;
	char exec_dir[PATH_MAX], real[PATH_MAX];
	struct vss_error e;
	json_t *res = NULL;
	bool own;
	int fd;

	snprintf(exec_dir, sizeof(exec_dir), "%s/exec", svc->run_dir);
	own = within(m->dir, exec_dir);
	if (!sh) {
		if (vss_catalog_shadow_each(svc->cat, row_matches, (void *)m->name, NULL) > 0)
			keep(r, m);
		else
			forget(svc, r, m, "the shadow no longer exists (not persistent, or deleted)");
		/* Its own directory, if any, is swept below. */
	} else if (still_exposed(svc, sh, m->dir)) {
		/* Made by an older vssd, maybe without nosuid or nodev: now with. */
		if (vss_fs_harden(m->dir, flags, &sh->expose_id, &e) < 0) {
			vss_fs_umount_force(m->dir);
			forget(svc, r, m, e.msg);
			return;
		}
		if (!(sh->expose_dir = strdup(m->dir))) {
			forget(svc, r, m, "out of memory");
			return;
		}
		sh->expose_own = own;
		vss_log("shadow %s is still exposed at %s", sh->rec.id, m->dir);
		r->done++;
	} else if (svc_mountpoint_open(svc, NULL, m->dir, own ? SVC_MOUNT_OWN : 0, &fd, real,
				       &e) < 0) {
		forget(svc, r, m, e.msg);
	} else if (svc_shadow_expose(svc, sh, fd, flags, &res, &e) == 0) {
		close(fd);
		json_decref(res);
		sh->expose_own = own;
		record_landed(svc, m, sh->expose_dir);
		r->done++;
	} else {
		close(fd);
		forget(svc, r, m, e.msg);
	}
}

/*
 * vssd's own exposure directories (RUN/exec/SET/ID) outlive their exposure
 * when vssd stops or dies with a requester's set exposed: whatever is
 * empty and not mounted on is removed (rmdir refuses the rest; a symlink
 * put in their place is not followed).
 */
static void sweep_own_dirs(struct vss_service *svc)
{
	char exec_dir[PATH_MAX], real[PATH_MAX];
	struct dirent *de;
	int execfd, fd;
	DIR *d;

	snprintf(exec_dir, sizeof(exec_dir), "%s/exec", svc->run_dir);
	if (vss_fs_open(exec_dir, NULL, VSS_FS_OPEN_NOFOLLOW, &execfd, real, NULL) < 0)
		return;
	fd = openat(execfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		close(execfd);
		return;
	}
	while ((de = readdir(d))) {
		int setfd;
		DIR *sd;
		struct dirent *le;

		if (de->d_name[0] == '.')
			continue;
		setfd = openat(execfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (setfd < 0)
			continue;
		if (!(sd = fdopendir(setfd))) {
			close(setfd);
			continue;
		}
		while ((le = readdir(sd)))
			if (le->d_name[0] != '.')
				unlinkat(dirfd(sd), le->d_name, AT_REMOVEDIR);
		closedir(sd);
		unlinkat(execfd, de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
	close(execfd);
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
	sweep_own_dirs(svc);
}
