/*
 * service/caller.h - who sent a request (its credentials and role), and what
 * it names as it sees it: paths looked up with its credentials, directories
 * to mount on opened once and checked (caller.c).
 */
#ifndef VSS_SERVICE_CALLER_H
#define VSS_SERVICE_CALLER_H

#include <limits.h>
#include <sys/types.h>

#include <vss/error.h>

#include "service/fs.h"

struct conn;
struct vss_service;

/*
 * Who may do what (doc/security.md).  Every request is checked against the
 * role its operation needs before it runs (server.c):
 *  - user: any local user who can reach the socket: status and listings;
 *  - operator: members of the group "vss": take, complete, expose and
 *    delete shadow copy sets, run backups, register writers;
 *  - root: everything, including what chooses files, devices, mount
 *    points or options for vssd to use as root (volumes, shadow storage).
 */
enum svc_role { SVC_ROLE_USER, SVC_ROLE_OPERATOR, SVC_ROLE_ROOT };

#define SVC_CALLER_GROUPS_MAX 64

/* The peer of a request: its credentials as the kernel gave them when it
 * connected (SO_PEERCRED) and its supplementary groups read then. */
struct svc_caller {
	struct conn *conn;              /* the connection; NULL for vssd itself */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t groups[SVC_CALLER_GROUPS_MAX];
	int ngroups;
	enum svc_role role;
};

/* @who's credentials in @buf for fs.h, or NULL for root (and for @who NULL:
 * vssd itself). */
const struct vss_fs_cred *svc_caller_cred(const struct svc_caller *who,
					  struct vss_fs_cred *buf);
/* A path a caller named (a target, a --for; *@out malloc'd): root's and
 * what is not an absolute path (a volume name) as they are; anyone else's
 * resolved as that caller (fs.h: in a child with the caller's
 * credentials), "does not exist" and "may not reach it" alike. */
int svc_caller_path(const struct svc_caller *who, const char *path, char **out,
		    struct vss_error *err);
/* 0 if @who can reach @path (the live side of a shadow, named @what in the
 * message), else -EACCES. */
int svc_caller_reaches(const struct svc_caller *who, const char *path, const char *what,
		       struct vss_error *err);
#define SVC_MOUNT_MKDIR 0x1u    /* create the directory if missing */
#define SVC_MOUNT_OWN   0x2u    /* vssd's own RUN/exec/SET/ID, at start (restore.c) */
/*
 * Opens @dir to mount on, as @who (NULL: vssd) sees it, never through a
 * symlink: an existing directory (SVC_MOUNT_MKDIR: made, as @who), that
 * is @who's own unless @who is root, is none of the system's (fs.h), nor in
 * the state or run directory (but SVC_MOUNT_OWN's), and has nothing mounted
 * on it.  *@fd (O_PATH) is what to mount on; @real its path.
 */
int svc_mountpoint_open(struct vss_service *svc, const struct svc_caller *who,
			const char *dir, unsigned int how, int *fd, char real[PATH_MAX],
			struct vss_error *err);

#endif
