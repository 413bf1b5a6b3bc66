/*
 * service/gmt.c - the snapshot directory Samba's vfs_shadow_copy2 reads
 * (gmt.h).
 *
 * MOUNT/.snapshots is made by vssd, root's, 0755, never through a
 * symlink, and refused if it is anyone else's (a user who can write the
 * volume's root must not choose what vssd mounts on); each shadow's
 * directory in it is made the same way and removed with its exposure.
 * A shadow already exposed elsewhere by someone's request keeps that
 * exposure and is left out here; one vssd exposed for its own reading
 * (versions.c) is moved here.  A shadow that cannot be mounted (invalid)
 * is tried once, and logged once.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "service/args.h"
#include "service/caller.h"
#include "service/fs.h"
#include "service/gmt.h"
#include "service/log.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/volumes.h"

/* "@GMT-YYYY.MM.DD-HH.MM.SS" of @ns, UTC: Samba's default shadow:format. */
static void gmt_name(uint64_t ns, char out[32])
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "@GMT-%Y.%m.%d-%H.%M.%S", &tm);
}

/* The shadow's instant as the engine keeps it (what vss list shadows
 * shows), 0 if the engine has no valid shadow of that ID. */
static uint64_t instant_of(const struct svc_shadow *sh)
{
	struct vss_cow_shadow_info *infos = NULL;
	uint64_t ns = 0;
	size_t k = 0;

	if (!sh->vol->cow || vss_cow_shadow_list(sh->vol->cow, &infos, &k) < 0)
		return 0;
	for (size_t i = 0; i < k && !ns; i++) {
		char id[37];

		svc_id_str(infos[i].id, id);
		if (strcmp(id, sh->rec.id) == 0 && infos[i].state != VSS_COW_SHADOW_INVALID)
			ns = infos[i].created_ns;
	}
	free(infos);
	return ns;
}

static bool wanted(const struct svc_shadow *sh)
{
	return sh->vol && sh->vol->rec.gmt && sh->vol->mount_dir && !sh->owner && !sh->retiring &&
	       (sh->rec.attrs & VSS_CATALOG_ATTR_PERSISTENT) && !sh->gmt_failed;
}

/* @v's snapshot directory, opened (made if missing): an O_PATH descriptor. */
static int snapdir_open(struct svc_volume *v, int *fd, struct vss_error *err)
{
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_NO_SYMLINKS };
	long mfd = syscall(SYS_openat2, AT_FDCWD, v->mount_dir, &how, sizeof(how));
	int rc;

	if (mfd < 0)
		return vss_error_set(err, -errno, "%s: %s", v->mount_dir, strerror(errno));
	rc = vss_fs_private_dir((int)mfd, SVC_GMT_SNAPDIR, 0755, 0, 0, fd);
	close((int)mfd);
	if (rc < 0)
		return vss_error_set(err, rc, "%s/%s: %s", v->mount_dir, SVC_GMT_SNAPDIR,
				     rc == -EPERM ? "not root's: not used" : strerror(-rc));
	return 0;
}

static int expose_gmt(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err)
{
	char name[32], real[PATH_MAX];
	uint64_t ns = instant_of(sh);
	json_t *res = NULL;
	int sfd, fd, rc;

	if (!ns)
		return vss_error_set(err, -EIO, "the shadow is invalid");
	gmt_name(ns, name);
	if ((rc = snapdir_open(sh->vol, &sfd, err)) < 0)
		return rc;
	rc = vss_fs_private_dir(sfd, name, 0755, 0, 0, &fd);
	close(sfd);
	if (rc < 0)
		return vss_error_set(err, rc, "%s/%s/%s: %s", sh->vol->mount_dir, SVC_GMT_SNAPDIR,
				     name, strerror(-rc));
	snprintf(real, sizeof(real), "%s/%s/%s", sh->vol->mount_dir, SVC_GMT_SNAPDIR, name);
	/* Two shadows in one second: the first keeps the name. */
	if ((rc = vss_fs_check_free(fd, real, err)) < 0) {
		close(fd);
		return rc;
	}
	rc = svc_shadow_expose(svc, sh, fd, 0, &res, err);
	close(fd);
	json_decref(res);
	if (rc < 0) {
		vss_fs_rmdir(real);
		return rc;
	}
	sh->expose_own = true;          /* its directory goes with it */
	sh->expose_gmt = true;
	return 0;
}

void svc_gmt_sync(struct vss_service *svc)
{
	svc_assert_locked(svc);
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next) {
		struct vss_error e;

		if (sh->expose_gmt && !wanted(sh)) {
			svc_shadow_unexpose(sh, true);
			continue;
		}
		if (!wanted(sh) || sh->expose_gmt)
			continue;
		if (sh->expose_dir) {
			/* Someone's exposure stays; vssd's own reading moves here. */
			if (!sh->expose_reading)
				continue;
			svc_shadow_unexpose(sh, true);
		}
		if (expose_gmt(svc, sh, &e) < 0) {
			sh->gmt_failed = true;
			vss_log("shadow %s: not exposed for Samba: %s", sh->rec.id, e.msg);
		}
	}
}

void svc_gmt_release(struct vss_service *svc, struct svc_volume *v)
{
	svc_assert_locked(svc);
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		if (sh->vol == v && sh->expose_gmt)
			svc_shadow_unexpose(sh, true);
}

int svc_op_volume_gmt(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		      json_t **res, struct vss_error *err)
{
	struct svc_volume *v;
	const char *name;
	bool on;
	int rc, n = 0;

	if ((rc = svc_arg_str(args, "name", true, &name, err)) < 0 ||
	    (rc = svc_arg_bool(args, "on", &on, err)) < 0)
		return rc;
	if (!(v = svc_volume_find(svc, name)))
		return vss_error_set(err, -ENOENT, "no volume %s", name);
	if (v->rec.gmt != on) {
		v->rec.gmt = on;
		if ((rc = vss_catalog_volume_put(svc->cat, &v->rec, err)) < 0) {
			v->rec.gmt = !on;
			return rc;
		}
		for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
			if (sh->vol == v)
				sh->gmt_failed = false;
		vss_log("volume %s: shadows %s for Samba", v->rec.name, on ? "exposed" : "no longer "
			"exposed");
	}
	svc_gmt_sync(svc);
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		n += sh->vol == v && sh->expose_gmt;
	*res = json_pack("{s:s, s:b, s:o, s:i}", "volume", v->rec.name, "on", on,
			 "dir", v->mount_dir ? json_sprintf("%s/%s", v->mount_dir, SVC_GMT_SNAPDIR)
					     : json_null(), "shadows", n);
	return 0;
}
