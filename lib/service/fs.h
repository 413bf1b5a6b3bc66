/*
 * service/fs.h - filesystems on managed devices: making one (mkfs), telling
 * which one a device holds, mounting a live volume or a read-only shadow,
 * unmounting, and freezing/thawing for a shadow set.  Also where vssd may
 * mount at all: directories are opened without following symlinks (as a
 * local user sees them, when one names them), checked against the system's
 * directories, and mounted on through their descriptor, so that what is
 * mounted is the directory that was checked, whatever its path does next.
 */
#ifndef VSS_SERVICE_FS_H
#define VSS_SERVICE_FS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <vss/error.h>

/* True for the filesystems vssd knows how to make and to mount from a shadow. */
int vss_fs_supported(const char *fstype);

/*
 * Runs mkfs.@fstype on @dev, without discard; its output goes into @err on
 * failure.  @zeroed: @dev is known to read all zeros, so mkfs need not
 * write zeros (ext4's inode tables and journal); false when unsure.
 */
int vss_fs_mkfs(const char *fstype, const char *dev, bool zeroed, struct vss_error *err);

/* Reads @dev's superblock: "ext4", "xfs", "btrfs", or NULL if none of these. */
const char *vss_fs_detect(const char *dev);

/*
 * A local user's credentials: a path is looked up in a child process that
 * takes them (groups, gid, uid) first, so that it sees exactly what the
 * user would.  NULL stands for vssd itself (root).
 */
struct vss_fs_cred {
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	int ngroups;
};

#define VSS_FS_OPEN_NOFOLLOW 0x1u /* a directory; no symlink in any component */
#define VSS_FS_OPEN_MKDIR    0x2u /* create the last component first if missing (0755
				   * as root, 0700 as a user); its parent must exist */
#define VSS_FS_OPEN_OWNED    0x4u /* with a @cred: the directory must be the user's */
#define VSS_FS_OPEN_READ     0x8u /* opened for reading (not O_PATH): @cred may read it */

/*
 * Opens the absolute @path as @cred sees it (following symlinks unless
 * VSS_FS_OPEN_NOFOLLOW): *@fd is an O_PATH descriptor (close it), @real the
 * path of what was opened as the kernel names it.  With a @cred, a path
 * that does not exist and one the user cannot reach give the same -ENOENT
 * and message; a lookup that takes longer than 10 s
 * (VSS_TEST_CALLER_TIMEOUT_MS in the environment: that many ms) is killed
 * and fails with -ETIMEDOUT.
 */
int vss_fs_open(const char *path, const struct vss_fs_cred *cred, unsigned int how,
		int *fd, char real[PATH_MAX], struct vss_error *err);

/*
 * -EPERM with why if @real (absolute, resolved) is a directory nothing may
 * ever be mounted on: /, the system's directories that hold what the
 * system runs on (/proc, /sys, /dev, /etc, /usr, /boot, /bin, /sbin, /lib*,
 * and everything below them), and /var, /run and /tmp themselves (below
 * them is the administrator's choice: /var/lib/data, /run/media/backup).
 */
int vss_fs_check_target(const char *real, struct vss_error *err);

/* -EBUSY if @fd (a directory) is the root of a mount: something is mounted there. */
int vss_fs_check_free(int fd, const char *real, struct vss_error *err);

/*
 * Opens the directory @name (one component) inside @dirfd, creating it
 * first with @mode if missing, never through a symlink: *@fd an O_PATH
 * descriptor.  Unless @uid is (uid_t)-1, one it made is given to
 * @uid:@gid, and one that is not @uid's is refused with -EPERM.
 */
int vss_fs_private_dir(int dirfd, const char *name, mode_t mode, uid_t uid, gid_t gid,
		       int *fd);

/* Removes the empty directory @path (its parent opened without following
 * symlinks; a symlink in its place is not followed). */
int vss_fs_rmdir(const char *path);

/* Where a mount landed: its ID (/proc/self/mountinfo, statx STATX_MNT_ID)
 * and its mount point as the kernel named it right after the mount. */
struct vss_fs_mounted {
	uint64_t id;
	char dir[PATH_MAX];
};

#define VSS_FS_SHADOW 0x1u  /* a shadow: read-only (ext4 noload, xfs norecovery,nouuid,
			     * btrfs rescue=nologreplay), nosuid, nodev, noexec */
#define VSS_FS_EXEC   0x2u  /* with VSS_FS_SHADOW: without noexec */

/*
 * Mounts @dev (holding @fstype) on the directory @dirfd (vss_fs_open())
 * with @options (mount(8) syntax, may be NULL; propagation and bind options
 * are refused) and, with VSS_FS_SHADOW, what a shadow needs on top.
 */
int vss_fs_mount(const char *dev, int dirfd, const char *fstype, const char *options,
		 unsigned int flags, struct vss_fs_mounted *out, struct vss_error *err);

/* Bind-mounts the directory @src (opened without following symlinks) on
 * @dirfd: read-only, nosuid, nodev, and noexec unless VSS_FS_EXEC, set on
 * the new mount before it is attached. */
int vss_fs_bind(const char *src, int dirfd, unsigned int flags, struct vss_fs_mounted *out,
		struct vss_error *err);

/* The mount whose root is @dir (no symlinks): made read-only, nosuid,
 * nodev (and noexec unless VSS_FS_EXEC), its ID into *@id. */
int vss_fs_harden(const char *dir, unsigned int flags, uint64_t *id, struct vss_error *err);

/* Unmounts the mount whose root is @dir (no symlinks followed); -EBUSY if
 * it is in use, -EINVAL if nothing is mounted there. */
int vss_fs_umount(const char *dir, struct vss_error *err);

/*
 * Detaches the mount @id (0: any) whose root is @dir (no symlinks) at
 * once, used or not, but keeps its filesystem alive: *@hold is a
 * descriptor on its root.  Closing *@hold does the unmount's slow part
 * (the filesystem's teardown, its inodes evicted) in the thread that
 * closes it, unless something else still uses the filesystem: then it
 * goes when that lets go.
 */
int vss_fs_umount_detach(const char *dir, uint64_t id, int *hold, struct vss_error *err);

/* A process found using a filesystem or a device (vss_fs_holders). */
struct vss_fs_holder {
	pid_t pid;
	char comm[17];                  /* its command name, non-printable bytes as '?' */
};

/*
 * The processes that use the filesystem whose device is @dev (an open
 * file, a working or root directory in it) or the block device @dev
 * itself (opened), looked for in /proc: up to @max into @out; returns how
 * many were found (can be more than @max), or -errno if /proc cannot be
 * read.  A file only mapped, or a mount in another namespace, is not seen.
 */
int vss_fs_holders(dev_t dev, struct vss_fs_holder *out, size_t max);

/* Unmounts @dir even if busy: syncs it, then detaches it lazily. */
void vss_fs_umount_force(const char *dir);

/* FIFREEZE / FITHAW on the filesystem mounted at @dir (its root; no symlinks). */
int vss_fs_freeze(const char *dir, struct vss_error *err);
int vss_fs_thaw(const char *dir, struct vss_error *err);

/* Every mount, read once from /proc/self/mountinfo, for many lookups
 * (svc_refresh_mounts: one read, not one per mount); NULL if it cannot be
 * read.  vss_fs_mounts_where() is vss_fs_mount_where() on it. */
struct vss_fs_mounts;
struct vss_fs_mounts *vss_fs_mounts_read(void);
void vss_fs_mounts_free(struct vss_fs_mounts *m);
int vss_fs_mounts_where(struct vss_fs_mounts *m, uint64_t id, char dir[PATH_MAX], char *source,
			size_t size);

/* True if @dir is a mount point (its own entry in /proc/self/mountinfo). */
int vss_fs_is_mountpoint(const char *dir);

/* True if @dev is mounted at @dir right now. */
int vss_fs_mounted_from(const char *dev, const char *dir);

/* 1 if the mount @id exists: its mount point now into @dir and its source
 * into @source (@size bytes); else 0. */
int vss_fs_mount_where(uint64_t id, char dir[PATH_MAX], char *source, size_t size);

/* Calls @fn for every mount whose source is @dev, innermost last. */
void vss_fs_each_mount_of(const char *dev, void (*fn)(void *arg, const char *dir),
			  void *arg);

#endif
