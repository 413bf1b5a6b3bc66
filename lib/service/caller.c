/*
 * service/caller.c - what a caller names, as the caller would see it.
 * vssd runs as root: a path a user or an operator gives it is looked up in
 * a child that has taken the caller's credentials (fs.h, vss_fs_open()), so
 * that vssd never tells a caller about, nor acts on, what the caller could
 * not reach itself; and a directory to mount on is opened once, without
 * following symlinks, checked, and mounted on through that descriptor.
 *
 * Where nothing may be mounted: the system's directories (fs.h), and the
 * state and run directories, but for vssd's own exposure directories
 * RUN/exec/SET/ID (shadows.c makes them; restore.c finds them again).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/caller.h"
#include "service/service_i.h"

const struct vss_fs_cred *svc_caller_cred(const struct svc_caller *who,
					  struct vss_fs_cred *buf)
{
	if (!who || who->uid == 0)
		return NULL;
	buf->uid = who->uid;
	buf->gid = who->gid;
	buf->groups = who->groups;
	buf->ngroups = who->ngroups;
	return buf;
}

int svc_caller_path(const struct svc_caller *who, const char *path, char **out,
		    struct vss_error *err)
{
	struct vss_fs_cred buf;
	const struct vss_fs_cred *cred = svc_caller_cred(who, &buf);
	char real[PATH_MAX];
	int rc, fd;

	*out = NULL;
	if (!cred || path[0] != '/') {
		if (!(*out = strdup(path)))
			return vss_error_set(err, -ENOMEM, "out of memory");
		return 0;
	}
	if ((rc = vss_fs_open(path, cred, 0, &fd, real, err)) < 0)
		return rc;
	close(fd);
	if (!(*out = strdup(real)))
		return vss_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

int svc_caller_reaches(const struct svc_caller *who, const char *path, const char *what,
		       struct vss_error *err)
{
	struct vss_fs_cred buf;
	const struct vss_fs_cred *cred = svc_caller_cred(who, &buf);
	char real[PATH_MAX];
	int fd;

	if (!cred)
		return 0;
	if (vss_fs_open(path, cred, 0, &fd, real, NULL) < 0)
		return vss_error_set(err, -EACCES, "permission denied: you may not reach %s "
				     "(%s), so you may not expose its shadows", path, what);
	close(fd);
	return 0;
}

static bool within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/*
 * @in without "//", "." and "..": exact for a path that may hold no
 * symlink (the ".." of a real directory is its parent, lexically too).
 */
static int normalize(const char *in, char out[PATH_MAX])
{
	size_t len = 0;

	if (in[0] != '/')
		return -EINVAL;
	out[0] = '\0';
	for (const char *p = in; *p;) {
		size_t n;

		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.')) {
			p += n;
			continue;
		}
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
			out[len] = '\0';
			p += n;
			continue;
		}
		if (len + 1 + n >= PATH_MAX)
			return -ENAMETOOLONG;
		out[len++] = '/';
		memcpy(out + len, p, n);
		len += n;
		out[len] = '\0';
		p += n;
	}
	if (len == 0)
		strcpy(out, "/");
	return 0;
}

/* The service's own directories: nothing is mounted in them but vssd's
 * own exposure directories (RUN/exec/SET/ID) with SVC_MOUNT_OWN. */
static int check_own_dirs(struct vss_service *svc, const char *path, unsigned int how,
			  struct vss_error *err)
{
	char exec_dir[PATH_MAX];

	snprintf(exec_dir, sizeof(exec_dir), "%s/exec", svc->run_dir);
	if (within(path, svc->state_dir))
		return vss_error_set(err, -EPERM, "refusing to mount on %s: it is in vssd's "
				     "state directory %s", path, svc->state_dir);
	if (within(path, svc->run_dir) &&
	    !((how & SVC_MOUNT_OWN) && within(path, exec_dir) && strcmp(path, exec_dir) != 0))
		return vss_error_set(err, -EPERM, "refusing to mount on %s: it is in vssd's "
				     "run directory %s", path, svc->run_dir);
	if (!(how & SVC_MOUNT_OWN))
		return 0;
	if (!within(path, exec_dir) || strcmp(path, exec_dir) == 0)
		return vss_error_set(err, -EPERM, "%s is not one of vssd's exposure "
				     "directories", path);
	return 0;
}

static int check_target(struct vss_service *svc, const char *path, unsigned int how,
			struct vss_error *err)
{
	int rc = vss_fs_check_target(path, err);

	return rc < 0 ? rc : check_own_dirs(svc, path, how, err);
}

int svc_mountpoint_open(struct vss_service *svc, const struct svc_caller *who,
			const char *dir, unsigned int how, int *fd, char real[PATH_MAX],
			struct vss_error *err)
{
	struct vss_fs_cred buf;
	const struct vss_fs_cred *cred = svc_caller_cred(who, &buf);
	unsigned int open_how = VSS_FS_OPEN_NOFOLLOW;
	char norm[PATH_MAX];
	int rc;

	*fd = -1;
	if (dir[0] != '/')
		return vss_error_set(err, -EINVAL, "mount point %s must be an absolute path", dir);
	if (how & SVC_MOUNT_MKDIR)
		open_how |= VSS_FS_OPEN_MKDIR;
	if (cred)
		open_how |= VSS_FS_OPEN_OWNED;
	/* Before anything is made: the path as it will resolve (no symlinks). */
	if ((rc = normalize(dir, norm)) < 0)
		return vss_error_set(err, rc, "%s: %s", dir, strerror(-rc));
	if ((rc = check_target(svc, norm, how, err)) < 0)
		return rc;
	if ((rc = vss_fs_open(dir, cred, open_how, fd, real, err)) < 0)
		return rc;
	/* And what it is: a bind mount may give a directory another name. */
	if ((rc = check_target(svc, real, how, err)) < 0 ||
	    (rc = vss_fs_check_free(*fd, real, err)) < 0) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}
