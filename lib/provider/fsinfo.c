/*
 * provider/fsinfo.c - the mount behind a path, from /proc/self/mountinfo
 * (libmount), and a class and a refusal message for its filesystem type.
 *
 * The mount is found by the mount ID that statx() reports for the path, so
 * bind mounts, over-mounts and btrfs subvolumes (which have st_devs of their
 * own) all resolve to the mount the path is really reached through.  Kernels
 * without STATX_MNT_ID (before 5.8) fall back to the longest mount point that
 * is a prefix of the resolved path.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libmount/libmount.h>

#include "fsinfo.h"

#define MOUNTINFO "/proc/self/mountinfo"

struct fstype_desc {
	const char *type;
	enum vss_fsinfo_class cls;
	const char *what;       /* what kind of filesystem it is */
	const char *instead;    /* what would work instead */
};

#define NET_WHAT    "a network filesystem"
#define NET_INSTEAD "take the shadow copy on the server, or use --allow-live to read it live"
#define PSEUDO_WHAT    "a pseudo filesystem the kernel makes up"
#define PSEUDO_INSTEAD "nothing on it is stored, so there is nothing to shadow; leave it out of the backup"
#define RO_WHAT    "a read-only filesystem"
#define RO_INSTEAD "its contents cannot change, so reading it live is already exact: use --allow-live"

static const struct fstype_desc fstypes[] = {
	{ "btrfs", VSS_FSINFO_BTRFS, NULL, NULL },
	{ "ext2", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "ext3", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "ext4", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "xfs", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "f2fs", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "jfs", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "reiserfs", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "nilfs2", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "vfat", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "exfat", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "ntfs", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "ntfs3", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "hfsplus", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "fuseblk", VSS_FSINFO_BLOCK, NULL, NULL },
	{ "nfs", VSS_FSINFO_NETWORK, NET_WHAT, NET_INSTEAD },
	{ "nfs4", VSS_FSINFO_NETWORK, NET_WHAT, NET_INSTEAD },
	{ "cifs", VSS_FSINFO_NETWORK, NET_WHAT, NET_INSTEAD },
	{ "smb3", VSS_FSINFO_NETWORK, NET_WHAT, NET_INSTEAD },
	{ "smbfs", VSS_FSINFO_NETWORK, NET_WHAT, NET_INSTEAD },
	{ "ncpfs", VSS_FSINFO_NETWORK, NET_WHAT, NET_INSTEAD },
	{ "ceph", VSS_FSINFO_NETWORK, NET_WHAT, NET_INSTEAD },
	{ "glusterfs", VSS_FSINFO_NETWORK, NET_WHAT, NET_INSTEAD },
	{ "lustre", VSS_FSINFO_NETWORK, NET_WHAT, NET_INSTEAD },
	{ "afs", VSS_FSINFO_NETWORK, NET_WHAT, NET_INSTEAD },
	{ "davfs", VSS_FSINFO_NETWORK, NET_WHAT, NET_INSTEAD },
	{ "9p", VSS_FSINFO_NETWORK, "a filesystem shared over 9P by a host or server",
	  "take the shadow copy where the files are stored, or use --allow-live to read it live" },
	{ "virtiofs", VSS_FSINFO_NETWORK, "a directory shared by the virtual machine's host",
	  "take the shadow copy on the host, or use --allow-live to read it live" },
	{ "tmpfs", VSS_FSINFO_TMPFS, "a memory filesystem, emptied at every reboot",
	  "no provider can shadow it; keep the data on btrfs or on a vss volume, or use --allow-live to read it live" },
	{ "ramfs", VSS_FSINFO_TMPFS, "a memory filesystem, emptied at every reboot",
	  "no provider can shadow it; keep the data on btrfs or on a vss volume, or use --allow-live to read it live" },
	{ "overlay", VSS_FSINFO_OVERLAY, "a union of other directories", NULL /* built from its options */ },
	{ "proc", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "sysfs", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "devtmpfs", VSS_FSINFO_PSEUDO, "the kernel's device node filesystem",
	  "device nodes are made at boot, so there is nothing to shadow; leave it out of the backup" },
	{ "devpts", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "cgroup", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "cgroup2", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "securityfs", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "selinuxfs", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "debugfs", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "tracefs", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "pstore", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "bpf", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "configfs", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "fusectl", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "mqueue", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "hugetlbfs", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "efivarfs", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "binfmt_misc", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "autofs", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "rpc_pipefs", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "nsfs", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "nfsd", VSS_FSINFO_PSEUDO, PSEUDO_WHAT, PSEUDO_INSTEAD },
	{ "squashfs", VSS_FSINFO_OTHER, RO_WHAT, RO_INSTEAD },
	{ "iso9660", VSS_FSINFO_OTHER, RO_WHAT, RO_INSTEAD },
	{ "erofs", VSS_FSINFO_OTHER, RO_WHAT, RO_INSTEAD },
	{ "cramfs", VSS_FSINFO_OTHER, RO_WHAT, RO_INSTEAD },
};

/* FUSE subtypes (fuse.NAME) whose data lives on another machine. */
static const char *const fuse_remote[] = {
	"sshfs", "rclone", "s3fs", "gcsfuse", "goofys", "blobfuse", "blobfuse2",
	"curlftpfs", "glusterfs", "ceph-fuse", "cephfs", "smbnetfs", "davfs2",
	"juicefs", "gvfsd-fuse", "afuse", "httpfs2", "onedriver", "google-drive-ocamlfuse",
};

#define FUSE_WHAT    "a FUSE filesystem, served by a program in user space"
#define FUSE_INSTEAD "shadow the filesystem that holds its data instead, or use --allow-live to read it live"

static const struct fstype_desc *find_desc(const char *fstype)
{
	for (size_t i = 0; i < sizeof(fstypes) / sizeof(fstypes[0]); i++)
		if (strcmp(fstypes[i].type, fstype) == 0)
			return &fstypes[i];
	return NULL;
}

static bool is_fuse_remote(const char *fstype)
{
	if (strncmp(fstype, "fuse.", 5) != 0)
		return false;
	for (size_t i = 0; i < sizeof(fuse_remote) / sizeof(fuse_remote[0]); i++)
		if (strcmp(fstype + 5, fuse_remote[i]) == 0)
			return true;
	return false;
}

enum vss_fsinfo_class vss_fsinfo_classify(const char *fstype, const char *source)
{
	const struct fstype_desc *d;
	struct stat st;

	if (!fstype)
		return VSS_FSINFO_OTHER;
	d = find_desc(fstype);
	if (d)
		return d->cls;
	if (is_fuse_remote(fstype))
		return VSS_FSINFO_NETWORK;
	if (strcmp(fstype, "fuse") == 0 || strncmp(fstype, "fuse.", 5) == 0)
		return VSS_FSINFO_FUSE;
	if (source && source[0] == '/' && stat(source, &st) == 0 && S_ISBLK(st.st_mode))
		return VSS_FSINFO_BLOCK;
	return VSS_FSINFO_OTHER;
}

const char *vss_fsinfo_class_name(enum vss_fsinfo_class cls)
{
	switch (cls) {
	case VSS_FSINFO_BTRFS:   return "btrfs";
	case VSS_FSINFO_BLOCK:   return "block";
	case VSS_FSINFO_NETWORK: return "network";
	case VSS_FSINFO_FUSE:    return "fuse";
	case VSS_FSINFO_TMPFS:   return "tmpfs";
	case VSS_FSINFO_OVERLAY: return "overlay";
	case VSS_FSINFO_PSEUDO:  return "pseudo";
	case VSS_FSINFO_OTHER:   break;
	}
	return "other";
}

bool vss_fsinfo_has_option(const char *opts, const char *name)
{
	char *val;
	size_t len;

	if (!opts)
		return false;
	return mnt_optstr_get_option(opts, name, &val, &len) == 0;
}

int vss_fsinfo_check(const struct vss_fsinfo *fi, const char *shown, struct vss_error *err)
{
	const char *type = fi->fstype ? fi->fstype : "an unknown filesystem";
	const struct fstype_desc *d;
	char *upper = NULL;
	size_t ulen = 0;

	if (!shown)
		shown = fi->path ? fi->path : fi->mount_point;
	switch (fi->cls) {
	case VSS_FSINFO_BTRFS:
	case VSS_FSINFO_BLOCK:
		return 0;
	case VSS_FSINFO_OVERLAY:
		if (fi->fs_options &&
		    mnt_optstr_get_option(fi->fs_options, "upperdir", &upper, &ulen) == 0 && ulen > 0)
			return vss_error_set(err, -EOPNOTSUPP,
				"%s is on %s (a union of other directories): shadow the filesystems "
				"that hold its upper directory (%.*s) and lower directories instead, "
				"or use --allow-live to read it live", shown, type, (int)ulen, upper);
		return vss_error_set(err, -EOPNOTSUPP,
			"%s is on %s (a union of other directories): shadow the filesystems that "
			"hold its lower directories instead, or use --allow-live to read it live",
			shown, type);
	case VSS_FSINFO_FUSE:
		return vss_error_set(err, -EOPNOTSUPP, "%s is on %s (" FUSE_WHAT "): " FUSE_INSTEAD,
				     shown, type);
	case VSS_FSINFO_NETWORK:
	case VSS_FSINFO_TMPFS:
	case VSS_FSINFO_PSEUDO:
	case VSS_FSINFO_OTHER:
		break;
	}
	d = fi->fstype ? find_desc(fi->fstype) : NULL;
	if (d && d->what)
		return vss_error_set(err, -EOPNOTSUPP, "%s is on %s (%s): %s", shown, type,
				     d->what, d->instead);
	if (fi->cls == VSS_FSINFO_NETWORK)
		return vss_error_set(err, -EOPNOTSUPP, "%s is on %s (" NET_WHAT "): " NET_INSTEAD,
				     shown, type);
	return vss_error_set(err, -EOPNOTSUPP,
		"%s is on %s, which no vss provider can shadow: keep the data on btrfs or on a "
		"vss volume, or use --allow-live to read it live", shown, type);
}

void vss_fsinfo_release(struct vss_fsinfo *fi)
{
	if (!fi)
		return;
	free(fi->path);
	free(fi->mount_point);
	free(fi->root);
	free(fi->fstype);
	free(fi->source);
	free(fi->vfs_options);
	free(fi->fs_options);
	memset(fi, 0, sizeof(*fi));
}

static int dup_field(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

/* Fills @fi (all but ->path) from one libmount entry. */
static int fill_from_fs(struct vss_fsinfo *fi, struct libmnt_fs *fs, struct vss_error *err)
{
	if (dup_field(&fi->mount_point, mnt_fs_get_target(fs)) < 0 ||
	    dup_field(&fi->root, mnt_fs_get_root(fs)) < 0 ||
	    dup_field(&fi->fstype, mnt_fs_get_fstype(fs)) < 0 ||
	    dup_field(&fi->source, mnt_fs_get_source(fs)) < 0 ||
	    dup_field(&fi->vfs_options, mnt_fs_get_vfs_options(fs)) < 0 ||
	    dup_field(&fi->fs_options, mnt_fs_get_fs_options(fs)) < 0)
		return vss_error_set(err, -ENOMEM, "out of memory");
	fi->mount_id = mnt_fs_get_id(fs);
	fi->devno = mnt_fs_get_devno(fs);
	fi->cls = vss_fsinfo_classify(fi->fstype, fi->source);
	return 0;
}

static int load_table(struct libmnt_table **tbp, struct vss_error *err)
{
	*tbp = mnt_new_table_from_file(MOUNTINFO);
	if (!*tbp)
		return vss_error_set(err, -EIO, "cannot read %s", MOUNTINFO);
	return 0;
}

static struct libmnt_fs *find_by_id(struct libmnt_table *tb, int id)
{
	struct libmnt_iter *itr = mnt_new_iter(MNT_ITER_FORWARD);
	struct libmnt_fs *fs = NULL, *found = NULL;

	if (!itr)
		return NULL;
	while (mnt_table_next_fs(tb, itr, &fs) == 0) {
		if (mnt_fs_get_id(fs) == id) {
			found = fs;
			break;
		}
	}
	mnt_free_iter(itr);
	return found;
}

int vss_fsinfo_by_mount_id(int mount_id, struct vss_fsinfo *fi, struct vss_error *err)
{
	struct libmnt_table *tb;
	struct libmnt_fs *fs;
	int rc;

	memset(fi, 0, sizeof(*fi));
	rc = load_table(&tb, err);
	if (rc < 0)
		return rc;
	fs = find_by_id(tb, mount_id);
	if (!fs)
		rc = vss_error_set(err, -ENOENT, "mount %d is gone", mount_id);
	else
		rc = fill_from_fs(fi, fs, err);
	mnt_unref_table(tb);
	if (rc < 0)
		vss_fsinfo_release(fi);
	return rc;
}

int vss_fsinfo_probe(const char *path, struct vss_fsinfo *fi, struct vss_error *err)
{
	struct libmnt_table *tb = NULL;
	struct libmnt_fs *fs = NULL;
	struct statx stx;
	int rc;

	memset(fi, 0, sizeof(*fi));
	fi->path = realpath(path, NULL);
	if (!fi->path)
		return vss_error_set(err, -errno, "%s: %s", path, strerror(errno));
	rc = load_table(&tb, err);
	if (rc < 0)
		goto fail;
	if (statx(AT_FDCWD, fi->path, 0, STATX_MNT_ID, &stx) < 0) {
		rc = vss_error_set(err, -errno, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (stx.stx_mask & STATX_MNT_ID)
		fs = find_by_id(tb, (int)stx.stx_mnt_id);
	if (!fs)
		fs = mnt_table_find_mountpoint(tb, fi->path, MNT_ITER_BACKWARD);
	if (!fs) {
		rc = vss_error_set(err, -ENOENT, "%s: no mount found for it in %s", path, MOUNTINFO);
		goto fail;
	}
	rc = fill_from_fs(fi, fs, err);
	if (rc < 0)
		goto fail;
	mnt_unref_table(tb);
	return 0;

fail:
	mnt_unref_table(tb);
	vss_fsinfo_release(fi);
	return rc;
}

int vss_fsinfo_foreach(int (*fn)(void *arg, const struct vss_fsinfo *fi), void *arg,
		       struct vss_error *err)
{
	struct libmnt_table *tb;
	struct libmnt_iter *itr;
	struct libmnt_fs *fs = NULL;
	int rc;

	rc = load_table(&tb, err);
	if (rc < 0)
		return rc;
	itr = mnt_new_iter(MNT_ITER_FORWARD);
	if (!itr) {
		mnt_unref_table(tb);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	while (rc == 0 && mnt_table_next_fs(tb, itr, &fs) == 0) {
		struct vss_fsinfo fi = { 0 };

		rc = fill_from_fs(&fi, fs, err);
		if (rc == 0)
			rc = fn(arg, &fi);
		vss_fsinfo_release(&fi);
	}
	mnt_free_iter(itr);
	mnt_unref_table(tb);
	return rc;
}
