/*
 * provider/fsinfo.h - which filesystem a path lives on, and whether any
 * snapshot provider can shadow it.
 *
 * Reads /proc/self/mountinfo through libmount.  The service asks this first
 * for every target, picks a provider by class (btrfs, or the built-in engine
 * for a vss volume on a block device), and shows the refusal message for the
 * classes no provider can shadow.  Thread-safe: no state between calls.
 */
#ifndef VSS_PROVIDER_FSINFO_H
#define VSS_PROVIDER_FSINFO_H

#include <stdbool.h>
#include <sys/types.h>

#include <vss/error.h>

enum vss_fsinfo_class {
	VSS_FSINFO_OTHER = 0,   /* a local filesystem no provider knows */
	VSS_FSINFO_BTRFS,       /* btrfs: the btrfs provider */
	VSS_FSINFO_BLOCK,       /* ext4, xfs, ... on a block device: the built-in engine if it is a vss volume */
	VSS_FSINFO_NETWORK,     /* nfs, cifs, ..., and FUSE mounts of remote data (fuse.sshfs, ...) */
	VSS_FSINFO_FUSE,        /* any other FUSE filesystem (fuse, fuse.*) */
	VSS_FSINFO_TMPFS,       /* tmpfs, ramfs: memory only */
	VSS_FSINFO_OVERLAY,     /* overlay: a union of other directories */
	VSS_FSINFO_PSEUDO,      /* proc, sysfs, cgroup2, ...: made up by the kernel */
};

/*
 * One mount, as /proc/self/mountinfo shows it.  Every string is owned by the
 * struct and lives until vss_fsinfo_release().
 */
struct vss_fsinfo {
	char *path;             /* the path asked about, resolved (realpath); NULL from vss_fsinfo_foreach() */
	char *mount_point;      /* where the filesystem holding it is mounted */
	char *root;             /* the directory of that filesystem mounted there ("/", "/@home") */
	char *fstype;           /* "btrfs", "nfs4", "fuse.sshfs", ... */
	char *source;           /* "/dev/sda2", "server:/export", "tmpfs", ... */
	char *vfs_options;      /* per-mount options: "rw,nosuid,relatime" */
	char *fs_options;       /* superblock options: "rw,space_cache=v2,subvol=/" */
	int mount_id;           /* mountinfo's first field, unique while mounted */
	dev_t devno;            /* the superblock's st_dev (btrfs: not a subvolume's) */
	enum vss_fsinfo_class cls;
};

/*
 * Finds the mount that holds @path (which must exist) and classifies it.
 * On success the caller releases @fi with vss_fsinfo_release().
 */
int vss_fsinfo_probe(const char *path, struct vss_fsinfo *fi, struct vss_error *err);

/* The mount with this ID as it is now; -ENOENT if it is gone. */
int vss_fsinfo_by_mount_id(int mount_id, struct vss_fsinfo *fi, struct vss_error *err);

/*
 * Calls @fn for every mount, in mountinfo order (fi->path is NULL); stops at
 * the first non-zero return, which it returns.  @fi is valid during the call.
 */
int vss_fsinfo_foreach(int (*fn)(void *arg, const struct vss_fsinfo *fi), void *arg,
		       struct vss_error *err);

/* Frees what @fi owns and zeroes it; safe on a zeroed struct. */
void vss_fsinfo_release(struct vss_fsinfo *fi);

/*
 * The class of a filesystem type; @source (may be NULL) decides an unknown
 * type: a block device source makes it VSS_FSINFO_BLOCK.
 */
enum vss_fsinfo_class vss_fsinfo_classify(const char *fstype, const char *source);

/* "btrfs", "block", "network", "fuse", "tmpfs", "overlay", "pseudo", "other". */
const char *vss_fsinfo_class_name(enum vss_fsinfo_class cls);

/*
 * 0 if some provider may be able to shadow @fi (btrfs, or a filesystem on a
 * block device); otherwise -EOPNOTSUPP and, in @err, one line that names the
 * filesystem type and says what would work instead, e.g.
 *   "/mnt/x is on nfs4 (a network filesystem): take the shadow copy on the
 *    server, or use --allow-live to read it live".
 * @shown is the path as the user gave it (NULL: fi->path).
 */
int vss_fsinfo_check(const struct vss_fsinfo *fi, const char *shown, struct vss_error *err);

/* Whether the comma-separated option string @opts holds option @name. */
bool vss_fsinfo_has_option(const char *opts, const char *name);

#endif
