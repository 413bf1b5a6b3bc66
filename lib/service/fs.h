/*
 * service/fs.h - filesystems on managed devices: making one (mkfs), telling
 * which one a device holds, mounting a live volume or a read-only shadow,
 * unmounting, and freezing/thawing for a shadow set.
 */
#ifndef VSS_SERVICE_FS_H
#define VSS_SERVICE_FS_H

#include <limits.h>

#include <vss/error.h>

/* True for the filesystems vssd knows how to make and to mount from a shadow. */
int vss_fs_supported(const char *fstype);

/* Runs mkfs.@fstype on @dev, without discard; its output goes into @err on failure. */
int vss_fs_mkfs(const char *fstype, const char *dev, struct vss_error *err);

/* Reads @dev's superblock: "ext4", "xfs", "btrfs", or NULL if none of these. */
const char *vss_fs_detect(const char *dev);

/*
 * Mounts @dev (holding @fstype) at @dir with @options (mount(8) syntax, may
 * be NULL).  @shadow adds what a read-only image of a filesystem that was
 * live needs: ro, and ext4 noload, xfs norecovery,nouuid, btrfs
 * rescue=nologreplay.
 */
int vss_fs_mount(const char *dev, const char *dir, const char *fstype,
		 const char *options, int shadow, struct vss_error *err);

/* Unmounts @dir; -EBUSY if it is in use. */
int vss_fs_umount(const char *dir, struct vss_error *err);

/* Unmounts @dir even if busy: syncs it, then detaches it lazily. */
void vss_fs_umount_force(const char *dir);

/* FIFREEZE / FITHAW on the filesystem mounted at @dir. */
int vss_fs_freeze(const char *dir, struct vss_error *err);
int vss_fs_thaw(const char *dir, struct vss_error *err);

/* For a mount asked for: refuses a relative @dir, creates it if missing. */
int vss_fs_make_mountpoint(const char *dir, struct vss_error *err);

/* Resolves @dir (which must exist) into @real; -EBUSY if something is
 * already mounted there. */
int vss_fs_free_mountpoint(const char *dir, char real[PATH_MAX], struct vss_error *err);

/* True if @dir is a mount point (its own entry in /proc/self/mountinfo). */
int vss_fs_is_mountpoint(const char *dir);

/* True if @dev is mounted at @dir right now. */
int vss_fs_mounted_from(const char *dev, const char *dir);

/* Calls @fn for every mount whose source is @dev, innermost last. */
void vss_fs_each_mount_of(const char *dev, void (*fn)(void *arg, const char *dir),
			  void *arg);

#endif
