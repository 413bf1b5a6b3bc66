/*
 * provider/btrfs/btrfs.c - read-only btrfs snapshots as shadows (see btrfs.h for
 * the life of one shadow and where snapshots live; doc/btrfs-provider.md
 * for the measurements behind the choices below).
 *
 * DESIGN NOTES
 *
 * 1. No FIFREEZE.  Creating a snapshot starts a write on the superblock
 *    (mnt_want_write), which waits, in uninterruptible sleep, for FITHAW on
 *    a frozen btrfs.  So the service must leave btrfs filesystems out of its
 *    freeze list; the snapshot is atomic on its own (one transaction).
 *
 * 2. flushoncommit.  The snapshot ioctl flushes the subvolume's dirty data
 *    and then commits a transaction with the snapshot in it.  Data written
 *    between the flush and the commit is not in the snapshot, but renames
 *    and size changes made in that gap are: files renamed into place show
 *    up empty or stale.  With flushoncommit the commit itself flushes all
 *    dirty data while it holds off new writers, so the snapshot is one
 *    instant.  Commit switches it on just before and back off just after.
 *
 * 3. Switching it.  fspick() + fsconfig(FSCONFIG_SET_FLAG, "flushoncommit")
 *    + FSCONFIG_CMD_RECONFIGURE changes that one superblock option.  mount(2)
 *    with MS_REMOUNT is not used: it also replaces the mount's per-mount
 *    flags (nosuid, nodev, noexec, ro) and the superblock's MS_RMT_MASK flags
 *    with whatever is passed, so it would have to rebuild them from
 *    mountinfo, which does not show all of them.  Measured: MS_REMOUNT with
 *    data "flushoncommit" alone dropped nosuid,nodev,noexec from the mount.
 *
 * 4. The lock file /run/lock/vss-btrfs-<fs uuid>.lock serialises commits on
 *    one filesystem across threads and processes (flock, held only inside
 *    commit and recovery).  While vss has flushoncommit switched on, the
 *    file holds one line, "flushoncommit MAJOR:MINOR PID", naming the
 *    superblock; it is emptied once the option is off again.  Whoever next
 *    takes the lock and finds a line left by a dead process switches the
 *    option off on that superblock if it is still mounted (or adopts it, in
 *    a commit).  /run is emptied at boot, as are mount options, so a note
 *    never outlives what it is about.
 *
 * 5. Which snapshots are ours: read-only subvolumes whose name parses as
 *    vss.<uuid>.<uuid>.(persistent|temporary), directly inside a directory
 *    named .vss-snapshots that is owned by root and not writable by others.
 *    Nothing else is listed, and nothing else is ever deleted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <btrfsutil.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>

#include "provider/btrfs/btrfs.h"

#define NAME_PREFIX   "vss."
#define KIND_PERSIST  "persistent"
#define KIND_TEMP     "temporary"
#define MARKER_WORD   "flushoncommit"

enum snap_state { SNAP_PREPARED, SNAP_COMMITTED, SNAP_FAILED };

struct vss_btrfs_snapshot {
	struct vss_btrfs_info info;
	char *dir;              /* <mount point>/.vss-snapshots */
	char *name;             /* vss.SET.SHADOW.KIND */
	char *path;             /* dir/name */
	char *target;           /* path/rel_path */
	int src_fd;             /* the subvolume to snapshot (its root directory) */
	int dir_fd;             /* dir */
	int mnt_fd;             /* O_PATH, the mount's root: what fspick() reconfigures */
	int lock_fd;            /* the lock file (note 4) */
	enum snap_state state;
	struct vss_btrfs_commit_stats stats;
};

/* ---- small helpers ---- */

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A libbtrfsutil failure as a negative errno plus a message. */
static int bu_error(struct vss_error *err, enum btrfs_util_error e, const char *what,
		    const char *path)
{
	int code = errno ? -errno : -EIO;

	if (e == BTRFS_UTIL_ERROR_NO_MEMORY)
		code = -ENOMEM;
	return vss_error_set(err, code, "%s %s: %s (%s)", what, path, btrfs_util_strerror(e),
			     strerror(-code));
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a);
	char *s;

	if (!*b)
		return strdup(a);
	if (la > 0 && a[la - 1] == '/')
		la--;
	s = malloc(la + 1 + strlen(b) + 1);
	if (!s)
		return NULL;
	memcpy(s, a, la);
	s[la] = '/';
	strcpy(s + la + 1, b);
	return s;
}

void vss_btrfs_format_id(const unsigned char id[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[id[i] >> 4];
		*p++ = hex[id[i] & 15];
	}
	*p = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parses exactly 36 characters of lower-case UUID; 0 or -1. */
static int parse_id(const char *s, unsigned char id[16])
{
	int n = 0;

	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -1;
			continue;
		}
		int hi = hexval(s[i]), lo;
		if (hi < 0)
			return -1;
		lo = hexval(s[++i]);
		if (lo < 0)
			return -1;
		id[n++] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* vss.<set>.<shadow>.<kind>: 0 and the fields, or -1 if it is not ours. */
static int parse_name(const char *name, unsigned char set[16], unsigned char shadow[16],
		      bool *persistent)
{
	const size_t pl = sizeof(NAME_PREFIX) - 1;

	if (strncmp(name, NAME_PREFIX, pl) != 0 || strlen(name) < pl + 36 + 1 + 36 + 1)
		return -1;
	name += pl;
	if (parse_id(name, set) < 0 || name[36] != '.')
		return -1;
	name += 37;
	if (parse_id(name, shadow) < 0 || name[36] != '.')
		return -1;
	name += 37;
	if (strcmp(name, KIND_PERSIST) == 0)
		*persistent = true;
	else if (strcmp(name, KIND_TEMP) == 0)
		*persistent = false;
	else
		return -1;
	return 0;
}

static bool is_zero_id(const unsigned char id[16])
{
	for (int i = 0; i < 16; i++)
		if (id[i])
			return false;
	return true;
}

static bool has_component(const char *path, const char *comp)
{
	size_t n = strlen(comp);

	for (const char *p = path; (p = strstr(p, comp)) != NULL; p += n)
		if ((p == path || p[-1] == '/') && (p[n] == '/' || p[n] == '\0'))
			return true;
	return false;
}

static int fs_uuid_of_fd(int fd, unsigned char uuid[16])
{
	struct btrfs_ioctl_fs_info_args args;

	memset(&args, 0, sizeof(args));
	if (ioctl(fd, BTRFS_IOC_FS_INFO, &args) < 0)
		return -errno;
	memcpy(uuid, args.fsid, 16);
	return 0;
}

static int fs_uuid_of_path(const char *path, unsigned char uuid[16])
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -errno;
	rc = fs_uuid_of_fd(fd, uuid);
	close(fd);
	return rc;
}

/* ---- probe ---- */

void vss_btrfs_info_release(struct vss_btrfs_info *info)
{
	if (!info)
		return;
	vss_fsinfo_release(&info->fs);
	free(info->subvol_root);
	free(info->subvol_path);
	free(info->rel_path);
	for (size_t i = 0; i < info->n_nested; i++)
		free(info->nested[i]);
	free(info->nested);
	memset(info, 0, sizeof(*info));
}

/* The nearest directory at or above info->fs.path that is a subvolume root,
 * not above the mount point. */
static int find_subvol_root(struct vss_btrfs_info *info, const char *shown,
			    struct vss_error *err)
{
	const char *mp = info->fs.mount_point;
	size_t mlen = strlen(mp);
	char *cand = strdup(info->fs.path);

	if (!cand)
		return vss_error_set(err, -ENOMEM, "out of memory");
	for (;;) {
		enum btrfs_util_error e = btrfs_util_is_subvolume(cand);
		char *slash;

		if (e == BTRFS_UTIL_OK)
			break;
		if (e != BTRFS_UTIL_ERROR_NOT_SUBVOLUME && e != BTRFS_UTIL_ERROR_NOT_BTRFS) {
			int rc = bu_error(err, e, "cannot inspect", cand);
			free(cand);
			return rc;
		}
		if (strlen(cand) <= mlen) {
			free(cand);
			return vss_error_set(err, -EOPNOTSUPP,
				"%s: the root of its btrfs subvolume is not visible under the mount %s "
				"(a bind mount of a directory inside a subvolume); name a path under a "
				"mount of the subvolume itself", shown, mp);
		}
		slash = strrchr(cand, '/');
		if (slash == cand)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	info->subvol_root = cand;
	if (strcmp(cand, info->fs.path) == 0) {
		info->rel_path = strdup("");
	} else {
		size_t cl = strlen(cand);
		info->rel_path = strdup(info->fs.path + cl + (cand[cl - 1] == '/' ? 0 : 1));
	}
	if (!info->rel_path)
		return vss_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* Subvolumes below the target, relative to it; ours (.vss-snapshots) left out. */
static int find_nested(struct vss_btrfs_info *info, struct vss_error *err)
{
	struct btrfs_util_subvolume_iterator *it;
	enum btrfs_util_error e;
	size_t rl = strlen(info->rel_path), cap = 0;
	char *p;
	int rc = 0;

	e = btrfs_util_create_subvolume_iterator(info->subvol_root, 0, 0, &it);
	if (e)
		return bu_error(err, e, "cannot list subvolumes under", info->subvol_root);
	while ((e = btrfs_util_subvolume_iterator_next(it, &p, NULL)) == BTRFS_UTIL_OK) {
		const char *rel;

		if (rl == 0)
			rel = p;
		else if (strncmp(p, info->rel_path, rl) == 0 && p[rl] == '/')
			rel = p + rl + 1;
		else
			rel = NULL;
		if (!rel || has_component(p, VSS_BTRFS_SNAPSHOT_DIR)) {
			free(p);
			continue;
		}
		if (info->n_nested + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 8;
			char **n = realloc(info->nested, ncap * sizeof(*n));
			if (!n) {
				free(p);
				rc = vss_error_set(err, -ENOMEM, "out of memory");
				break;
			}
			info->nested = n;
			cap = ncap;
		}
		info->nested[info->n_nested] = strdup(rel);
		free(p);
		if (!info->nested[info->n_nested]) {
			rc = vss_error_set(err, -ENOMEM, "out of memory");
			break;
		}
		info->nested[++info->n_nested] = NULL;
	}
	if (rc == 0 && e != BTRFS_UTIL_ERROR_STOP_ITERATION)
		rc = bu_error(err, e, "cannot list subvolumes under", info->subvol_root);
	btrfs_util_destroy_subvolume_iterator(it);
	return rc;
}

int vss_btrfs_probe(const char *path, struct vss_btrfs_info *info, struct vss_error *err)
{
	enum btrfs_util_error e;
	int rc;

	memset(info, 0, sizeof(*info));
	rc = vss_fsinfo_probe(path, &info->fs, err);
	if (rc < 0)
		return rc;
	if (info->fs.cls != VSS_FSINFO_BTRFS) {
		rc = vss_fsinfo_check(&info->fs, path, err);
		if (rc == 0)
			rc = vss_error_set(err, -EOPNOTSUPP,
					   "%s is on %s, not btrfs: the btrfs provider cannot shadow it",
					   path, info->fs.fstype);
		goto fail;
	}
	rc = find_subvol_root(info, path, err);
	if (rc < 0)
		goto fail;
	e = btrfs_util_subvolume_id(info->subvol_root, &info->subvol_id);
	if (e) {
		rc = bu_error(err, e, "cannot get the subvolume ID of", info->subvol_root);
		goto fail;
	}
	/* Needs CAP_SYS_ADMIN; informative only, so a failure leaves it NULL. */
	if (btrfs_util_subvolume_path(info->subvol_root, 0, &info->subvol_path) != BTRFS_UTIL_OK)
		info->subvol_path = NULL;
	rc = fs_uuid_of_path(info->subvol_root, info->fs_uuid);
	if (rc < 0) {
		rc = vss_error_set(err, rc, "cannot read the filesystem UUID of %s: %s",
				   info->subvol_root, strerror(-rc));
		goto fail;
	}
	rc = find_nested(info, err);
	if (rc < 0)
		goto fail;
	return 0;

fail:
	vss_btrfs_info_release(info);
	return rc;
}

/* ---- flushoncommit and the lock file (note 4) ---- */

static int lock_path(const unsigned char fs_uuid[16], char *buf, size_t len)
{
	char u[37];
	struct stat st;
	const char *dir = VSS_BTRFS_LOCK_DIR;

	vss_btrfs_format_id(fs_uuid, u);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		dir = "/run";
	return snprintf(buf, len, "%s/vss-btrfs-%s.lock", dir, u) < (int)len ? 0 : -ENAMETOOLONG;
}

static int open_lock(const unsigned char fs_uuid[16], bool create, struct vss_error *err)
{
	char p[PATH_MAX];
	int fd;

	if (lock_path(fs_uuid, p, sizeof(p)) < 0)
		return vss_error_set(err, -ENAMETOOLONG, "lock file name too long");
	fd = open(p, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
	if (fd < 0 && !(errno == ENOENT && !create))
		return vss_error_set(err, -errno, "cannot open the lock file %s: %s", p, strerror(errno));
	return fd < 0 ? -ENOENT : fd;
}

static void lock_fd_wait(int fd)
{
	while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
		;
}

/* The superblock named in the lock file, or 0 if it holds no note. */
static dev_t read_marker(int fd)
{
	char buf[128];
	unsigned maj, min;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, MARKER_WORD " %u:%u", &maj, &min) != 2)
		return 0;
	return makedev(maj, min);
}

static int write_marker(int fd, dev_t devno)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), MARKER_WORD " %u:%u %ld\n", major(devno),
			 minor(devno), (long)getpid());

	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		return -errno;
	return 0;
}

static void clear_marker(int fd)
{
	/* Best effort: a note left behind only costs one spare remount later. */
	if (ftruncate(fd, 0) < 0)
		return;
}

/* Switches flushoncommit on the superblock of the mount whose root is @mnt_fd. */
static int set_flushoncommit(int mnt_fd, bool on, const char *mp, struct vss_error *err)
{
	const char *opt = on ? "flushoncommit" : "noflushoncommit";
	char klog[256] = "";
	int fd, rc = 0;

	fd = fspick(mnt_fd, "", FSPICK_EMPTY_PATH | FSPICK_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOSYS)
			return vss_error_set(err, -ENOSYS,
				"cannot switch flushoncommit on %s: this kernel has no fspick() "
				"(Linux 5.2 or later is needed for exact btrfs shadows)", mp);
		return vss_error_set(err, -errno, "cannot switch %s on %s: fspick: %s", opt, mp,
				     strerror(errno));
	}
	if (fsconfig(fd, FSCONFIG_SET_FLAG, opt, NULL, 0) < 0 ||
	    fsconfig(fd, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0) < 0) {
		rc = -errno;
		/* The kernel explains itself through the context's log. */
		ssize_t n = read(fd, klog, sizeof(klog) - 1);
		klog[n > 0 ? n : 0] = '\0';
		if (n > 0 && klog[n - 1] == '\n')
			klog[n - 1] = '\0';
		vss_error_set(err, rc, "cannot switch %s on %s: %s%s%s", opt, mp, strerror(-rc),
			      klog[0] ? ": " : "", klog);
	}
	close(fd);
	return rc;
}

/* Whether flushoncommit is in force on mount @mount_id now: 1, 0, or -errno. */
static int flushoncommit_now(int mount_id, dev_t *devno, struct vss_error *err)
{
	struct vss_fsinfo fi;
	int rc = vss_fsinfo_by_mount_id(mount_id, &fi, err);

	if (rc < 0)
		return rc;
	rc = vss_fsinfo_has_option(fi.fs_options, "flushoncommit") ? 1 : 0;
	if (devno)
		*devno = fi.devno;
	vss_fsinfo_release(&fi);
	return rc;
}

/*
 * With the lock held: if the note names superblock @devno and a dead
 * process left flushoncommit on there, switch it off through @mnt_fd.  Any
 * other note is stale and is dropped.
 */
static int recover_marker(int lock_fd, int mnt_fd, int mount_id, const char *mp,
			  struct vss_error *err)
{
	dev_t noted = read_marker(lock_fd), devno = 0;
	int on, rc;

	if (!noted)
		return 0;
	on = flushoncommit_now(mount_id, &devno, err);
	if (on < 0)
		return on;
	if (on && noted == devno) {
		rc = set_flushoncommit(mnt_fd, false, mp, err);
		if (rc < 0)
			return rc;
	}
	clear_marker(lock_fd);
	return 0;
}

/* ---- prepare / commit ---- */

/* Creates (if needed) and checks <mount point>/.vss-snapshots; returns an fd. */
static int open_snapshot_dir(const char *dir, struct vss_error *err)
{
	struct stat st;
	int fd;

	if (lstat(dir, &st) < 0) {
		enum btrfs_util_error e;

		if (errno != ENOENT)
			return vss_error_set(err, -errno, "%s: %s", dir, strerror(errno));
		e = btrfs_util_create_subvolume(dir, 0, NULL, NULL);
		if (e && errno != EEXIST)
			return bu_error(err, e, "cannot create the snapshot directory", dir);
		if (!e && chmod(dir, 0700) < 0)
			return vss_error_set(err, -errno, "chmod %s: %s", dir, strerror(errno));
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vss_error_set(err, -errno, "%s: %s", dir, strerror(errno));
	if (fstat(fd, &st) < 0 || st.st_uid != 0) {
		close(fd);
		return vss_error_set(err, -EPERM,
			"%s is not owned by root: refusing to keep snapshots there", dir);
	}
	if ((st.st_mode & 077) && fchmod(fd, 0700) < 0) {
		int rc = vss_error_set(err, -errno, "chmod %s: %s", dir, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

int vss_btrfs_snapshot_prepare(const char *path, const struct vss_btrfs_snapshot_params *params,
			       struct vss_btrfs_snapshot **snapp, struct vss_error *err)
{
	struct vss_btrfs_snapshot *s;
	struct vss_btrfs_info *info;
	char set[37], shadow[37];
	enum btrfs_util_error e;
	struct stat st;
	int rc;

	*snapp = NULL;
	if (is_zero_id(params->set_id) || is_zero_id(params->shadow_id))
		return vss_error_set(err, -EINVAL, "a btrfs shadow needs a set ID and a shadow ID");
	s = calloc(1, sizeof(*s));
	if (!s)
		return vss_error_set(err, -ENOMEM, "out of memory");
	s->src_fd = s->dir_fd = s->mnt_fd = s->lock_fd = -1;
	info = &s->info;

	rc = vss_btrfs_probe(path, info, err);
	if (rc < 0)
		goto fail;
	if (has_component(info->fs.path, VSS_BTRFS_SNAPSHOT_DIR)) {
		rc = vss_error_set(err, -EINVAL, "%s is inside a vss snapshot directory (%s), "
				   "which is already read-only", path, VSS_BTRFS_SNAPSHOT_DIR);
		goto fail;
	}
	if (vss_fsinfo_has_option(info->fs.vfs_options, "ro") ||
	    vss_fsinfo_has_option(info->fs.fs_options, "ro")) {
		rc = vss_error_set(err, -EROFS, "%s is on a read-only btrfs mount (%s): its contents "
				   "cannot change, so use --allow-live to read it live",
				   path, info->fs.mount_point);
		goto fail;
	}

	vss_btrfs_format_id(params->set_id, set);
	vss_btrfs_format_id(params->shadow_id, shadow);
	s->dir = join(info->fs.mount_point, VSS_BTRFS_SNAPSHOT_DIR);
	if (asprintf(&s->name, NAME_PREFIX "%s.%s.%s", set, shadow,
		     params->persistent ? KIND_PERSIST : KIND_TEMP) < 0)
		s->name = NULL;
	s->path = s->dir && s->name ? join(s->dir, s->name) : NULL;
	s->target = s->path ? join(s->path, info->rel_path) : NULL;
	if (!s->target) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}

	rc = s->dir_fd = open_snapshot_dir(s->dir, err);
	if (rc < 0)
		goto fail;
	if (fstatat(s->dir_fd, s->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		rc = vss_error_set(err, -EEXIST, "%s already exists", s->path);
		goto fail;
	}
	s->src_fd = open(info->subvol_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->src_fd < 0) {
		rc = vss_error_set(err, -errno, "%s: %s", info->subvol_root, strerror(errno));
		goto fail;
	}
	s->mnt_fd = open(info->fs.mount_point, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->mnt_fd < 0) {
		rc = vss_error_set(err, -errno, "%s: %s", info->fs.mount_point, strerror(errno));
		goto fail;
	}
	rc = s->lock_fd = open_lock(info->fs_uuid, true, err);
	if (rc < 0)
		goto fail;

	/* Flush now, so that the flush inside the commit (note 2) is short. */
	e = btrfs_util_sync_fd(s->src_fd);
	if (e) {
		rc = bu_error(err, e, "cannot sync", info->fs.mount_point);
		goto fail;
	}
	s->state = SNAP_PREPARED;
	*snapp = s;
	return 0;

fail:
	vss_btrfs_snapshot_free(s);
	return rc;
}

int vss_btrfs_snapshot_commit(struct vss_btrfs_snapshot *s, struct vss_error *err)
{
	struct vss_btrfs_commit_stats *st = &s->stats;
	const char *mp = s->info.fs.mount_point;
	int mount_id = s->info.fs.mount_id;
	enum btrfs_util_error e;
	bool ours = false;      /* we must switch flushoncommit back off */
	dev_t devno = 0, noted;
	uint64_t t0, t1;
	int on, rc = 0, rrc = 0;
	struct vss_error rerr;

	if (s->state != SNAP_PREPARED)
		return vss_error_set(err, -EINVAL, "%s: commit without a fresh prepare", s->path);
	s->state = SNAP_FAILED;
	memset(st, 0, sizeof(*st));

	t0 = now_us();
	lock_fd_wait(s->lock_fd);
	t1 = now_us();
	st->lock_us = t1 - t0;

	on = flushoncommit_now(mount_id, &devno, err);
	if (on < 0) {
		rc = on;
		goto unlock;
	}
	noted = read_marker(s->lock_fd);
	if (on && noted == devno) {
		ours = true;    /* left on by a dead commit: ours to switch off */
	} else {
		if (noted)
			clear_marker(s->lock_fd);
		if (!on) {
			rc = write_marker(s->lock_fd, devno);
			if (rc < 0) {
				vss_error_set(err, rc, "cannot write the lock file for %s: %s", mp,
					      strerror(-rc));
				goto unlock;
			}
			rc = set_flushoncommit(s->mnt_fd, true, mp, err);
			if (rc < 0) {
				clear_marker(s->lock_fd);
				goto unlock;
			}
			ours = true;
			on = flushoncommit_now(mount_id, NULL, err);
			if (on <= 0) {
				rc = on < 0 ? on : vss_error_set(err, -EIO,
					"flushoncommit did not take effect on %s", mp);
				goto restore;
			}
		}
	}
	st->switched = ours;
	t0 = now_us();
	st->enable_us = t0 - t1;

	e = btrfs_util_create_snapshot_fd2(s->src_fd, s->dir_fd, s->name,
					   BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY, NULL, NULL);
	t1 = now_us();
	st->snapshot_us = t1 - t0;
	if (e)
		rc = bu_error(err, e, "cannot snapshot", s->info.subvol_root);

restore:
	if (ours) {
		vss_error_clear(&rerr);
		rrc = set_flushoncommit(s->mnt_fd, false, mp, &rerr);
		if (rrc == 0 && flushoncommit_now(mount_id, NULL, &rerr) != 0)
			rrc = vss_error_set(&rerr, -EIO, "flushoncommit is still on");
		if (rrc == 0)
			clear_marker(s->lock_fd);
		st->restore_us = now_us() - t1;
	}
	if (rrc < 0) {
		/* The user's options are not as they were: fail the shadow rather
		 * than hand it out; the note stays in the lock file for recovery. */
		if (rc == 0)
			btrfs_util_delete_subvolume_fd(s->dir_fd, s->name, 0);
		rc = vss_error_set(err, rrc, "flushoncommit could not be switched back off on %s "
				   "(%s); run: mount -o remount,noflushoncommit %s", mp, rerr.msg, mp);
	}
unlock:
	flock(s->lock_fd, LOCK_UN);
	if (rc == 0)
		s->state = SNAP_COMMITTED;
	return rc;
}

const char *vss_btrfs_snapshot_path(const struct vss_btrfs_snapshot *s)
{
	return s->path;
}

const char *vss_btrfs_snapshot_target(const struct vss_btrfs_snapshot *s)
{
	return s->target;
}

const struct vss_btrfs_info *vss_btrfs_snapshot_info(const struct vss_btrfs_snapshot *s)
{
	return &s->info;
}

const struct vss_btrfs_commit_stats *vss_btrfs_snapshot_stats(const struct vss_btrfs_snapshot *s)
{
	return &s->stats;
}

void vss_btrfs_snapshot_free(struct vss_btrfs_snapshot *s)
{
	if (!s)
		return;
	if (s->src_fd >= 0)
		close(s->src_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	if (s->mnt_fd >= 0)
		close(s->mnt_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	vss_btrfs_info_release(&s->info);
	free(s->dir);
	free(s->name);
	free(s->path);
	free(s->target);
	free(s);
}

/* ---- delete, list, cleanup ---- */

/* Whether @dir is a snapshot directory we may trust (note 5). */
static int check_snapshot_dir(const char *dir, struct stat *st, struct vss_error *err)
{
	const char *base = strrchr(dir, '/');

	base = base ? base + 1 : dir;
	if (strcmp(base, VSS_BTRFS_SNAPSHOT_DIR) != 0)
		return vss_error_set(err, -EINVAL, "%s is not a vss snapshot directory", dir);
	if (lstat(dir, st) < 0)
		return vss_error_set(err, -errno, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st->st_mode) || st->st_uid != 0 || (st->st_mode & 022))
		return vss_error_set(err, -EINVAL, "%s is not a vss snapshot directory "
				     "(not a root-owned directory closed to others)", dir);
	return 0;
}

int vss_btrfs_delete(const char *snapshot_path, struct vss_error *err)
{
	unsigned char set[16], shadow[16];
	enum btrfs_util_error e;
	bool persistent, ro = false;
	struct stat st;
	char *path, *slash;
	int rc;

	path = strdup(snapshot_path);
	if (!path)
		return vss_error_set(err, -ENOMEM, "out of memory");
	while (strlen(path) > 1 && path[strlen(path) - 1] == '/')
		path[strlen(path) - 1] = '\0';
	slash = strrchr(path, '/');
	if (!slash || parse_name(slash + 1, set, shadow, &persistent) < 0) {
		rc = vss_error_set(err, -EINVAL, "%s is not a vss btrfs snapshot", snapshot_path);
		goto out;
	}
	*slash = '\0';         /* path is its directory for a moment */
	rc = check_snapshot_dir(path, &st, err);
	*slash = '/';
	if (rc < 0)
		goto out;
	if (lstat(path, &st) < 0) {
		rc = vss_error_set(err, -errno, "%s: %s", snapshot_path, strerror(errno));
		goto out;
	}
	e = S_ISDIR(st.st_mode) ? btrfs_util_get_subvolume_read_only(path, &ro) : BTRFS_UTIL_OK;
	if (!S_ISDIR(st.st_mode) || e || !ro) {
		rc = vss_error_set(err, -EINVAL, "%s is not a vss btrfs snapshot (not a read-only "
				   "subvolume)", snapshot_path);
		goto out;
	}
	e = btrfs_util_delete_subvolume(path, 0);
	if (e)
		rc = bu_error(err, e, "cannot delete", snapshot_path);
out:
	free(path);
	return rc;
}

/* Subvolume UUIDs of one filesystem and their paths, to name a snapshot's origin. */
struct origin_map {
	size_t n;
	struct { unsigned char uuid[16]; char *path; } *v;
	bool loaded;
};

static void origin_map_free(struct origin_map *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

static int origin_map_add(struct origin_map *m, const unsigned char uuid[16], const char *path)
{
	void *nv = realloc(m->v, (m->n + 1) * sizeof(*m->v));

	if (!nv)
		return -ENOMEM;
	m->v = nv;
	memcpy(m->v[m->n].uuid, uuid, 16);
	m->v[m->n].path = strdup(path);
	if (!m->v[m->n].path)
		return -ENOMEM;
	m->n++;
	return 0;
}

static void origin_map_load(struct origin_map *m, const char *mp)
{
	struct btrfs_util_subvolume_iterator *it;
	struct btrfs_util_subvolume_info si;
	char *p;

	m->loaded = true;
	if (btrfs_util_subvolume_info(mp, BTRFS_FS_TREE_OBJECTID, &si) == BTRFS_UTIL_OK &&
	    !is_zero_id(si.uuid))
		origin_map_add(m, si.uuid, "");
	if (btrfs_util_create_subvolume_iterator(mp, BTRFS_FS_TREE_OBJECTID, 0, &it))
		return;
	while (btrfs_util_subvolume_iterator_next_info(it, &p, &si) == BTRFS_UTIL_OK) {
		if (!has_component(p, VSS_BTRFS_SNAPSHOT_DIR))
			origin_map_add(m, si.uuid, p);
		free(p);
	}
	btrfs_util_destroy_subvolume_iterator(it);
}

static const char *origin_lookup(struct origin_map *m, const char *mp, const unsigned char uuid[16])
{
	if (is_zero_id(uuid))
		return NULL;
	if (!m->loaded)
		origin_map_load(m, mp);
	for (size_t i = 0; i < m->n; i++)
		if (memcmp(m->v[i].uuid, uuid, 16) == 0)
			return m->v[i].path;
	return NULL;
}

/* Dedup of snapshot directories seen through several mounts. */
struct seen {
	size_t n;
	struct { dev_t dev; ino_t ino; } *v;
};

static int list_dir(const char *mp, struct seen *seen,
		    int (*fn)(void *arg, const struct vss_btrfs_entry *e), void *arg,
		    struct vss_error *err)
{
	struct origin_map om = { 0 };
	struct dirent *de;
	struct stat st;
	char *dir;
	DIR *d;
	int rc = 0, fd;

	dir = join(mp, VSS_BTRFS_SNAPSHOT_DIR);
	if (!dir)
		return vss_error_set(err, -ENOMEM, "out of memory");
	if (lstat(dir, &st) < 0) {
		free(dir);
		return 0;               /* never snapshotted through this mount */
	}
	if (check_snapshot_dir(dir, &st, err) < 0) {
		vss_error_clear(err);
		free(dir);
		return 0;               /* someone else's directory of that name */
	}
	if (seen) {
		for (size_t i = 0; i < seen->n; i++) {
			if (seen->v[i].dev == st.st_dev && seen->v[i].ino == st.st_ino) {
				free(dir);
				return 0;
			}
		}
		void *nv = realloc(seen->v, (seen->n + 1) * sizeof(*seen->v));
		if (!nv) {
			free(dir);
			return vss_error_set(err, -ENOMEM, "out of memory");
		}
		seen->v = nv;
		seen->v[seen->n].dev = st.st_dev;
		seen->v[seen->n].ino = st.st_ino;
		seen->n++;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		rc = vss_error_set(err, -errno, "%s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(dir);
		return rc;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		struct vss_btrfs_entry en;
		struct btrfs_util_subvolume_info si;
		struct stat est;
		char *path;

		memset(&en, 0, sizeof(en));
		if (parse_name(de->d_name, en.set_id, en.shadow_id, &en.persistent) < 0)
			continue;
		if (fstatat(fd, de->d_name, &est, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(est.st_mode))
			continue;
		path = join(dir, de->d_name);
		if (!path) {
			rc = vss_error_set(err, -ENOMEM, "out of memory");
			break;
		}
		if (btrfs_util_subvolume_info(path, 0, &si) != BTRFS_UTIL_OK ||
		    btrfs_util_is_subvolume(path) != BTRFS_UTIL_OK) {
			free(path);
			continue;       /* a plain directory with our kind of name: not ours */
		}
		en.path = path;
		en.mount_point = mp;
		en.subvol_id = si.id;
		en.created = si.otime;
		en.read_only = (si.flags & BTRFS_ROOT_SUBVOL_RDONLY) != 0;
		memcpy(en.origin_uuid, si.parent_uuid, 16);
		en.origin = origin_lookup(&om, mp, si.parent_uuid);
		rc = fn(arg, &en);
		free(path);
	}
	closedir(d);
	origin_map_free(&om);
	free(dir);
	return rc;
}

/* Mount points of every btrfs mount, in mountinfo order. */
struct mp_list {
	size_t n;
	char **v;
};

static int collect_btrfs(void *arg, const struct vss_fsinfo *fi)
{
	struct mp_list *l = arg;
	void *nv;

	if (fi->cls != VSS_FSINFO_BTRFS)
		return 0;
	nv = realloc(l->v, (l->n + 1) * sizeof(*l->v));
	if (!nv)
		return -ENOMEM;
	l->v = nv;
	l->v[l->n] = strdup(fi->mount_point);
	if (!l->v[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static void mp_list_free(struct mp_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* The mount points to look at: @mount_point alone (checked), or every btrfs mount. */
static int mount_points(const char *mount_point, struct mp_list *l, struct vss_error *err)
{
	struct vss_fsinfo fi;
	int rc;

	memset(l, 0, sizeof(*l));
	if (!mount_point) {
		rc = vss_fsinfo_foreach(collect_btrfs, l, err);
		if (rc == -ENOMEM)
			vss_error_set(err, rc, "out of memory");
		return rc;
	}
	rc = vss_fsinfo_probe(mount_point, &fi, err);
	if (rc < 0)
		return rc;
	if (fi.cls != VSS_FSINFO_BTRFS)
		rc = vss_error_set(err, -EINVAL, "%s is not on btrfs", mount_point);
	else if (strcmp(fi.path, fi.mount_point) != 0)
		rc = vss_error_set(err, -EINVAL, "%s is not a mount point (%s is)", mount_point,
				   fi.mount_point);
	else
		rc = collect_btrfs(l, &fi);
	vss_fsinfo_release(&fi);
	if (rc == -ENOMEM)
		vss_error_set(err, rc, "out of memory");
	return rc;
}

int vss_btrfs_list(const char *mount_point,
		   int (*fn)(void *arg, const struct vss_btrfs_entry *e), void *arg,
		   struct vss_error *err)
{
	struct seen seen = { 0 };
	struct mp_list l;
	int rc;

	rc = mount_points(mount_point, &l, err);
	for (size_t i = 0; rc == 0 && i < l.n; i++)
		rc = list_dir(l.v[i], &seen, fn, arg, err);
	free(seen.v);
	mp_list_free(&l);
	return rc;
}

struct cleanup_ctx {
	bool (*keep)(void *arg, const struct vss_btrfs_entry *e);
	void *arg;
	struct mp_list doomed;
};

static int cleanup_decide(void *arg, const struct vss_btrfs_entry *e)
{
	struct cleanup_ctx *c = arg;
	bool keep = c->keep ? c->keep(c->arg, e) : e->persistent;
	void *nv;

	if (keep || !e->read_only)
		return 0;
	nv = realloc(c->doomed.v, (c->doomed.n + 1) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	c->doomed.v = nv;
	c->doomed.v[c->doomed.n] = strdup(e->path);
	if (!c->doomed.v[c->doomed.n])
		return -ENOMEM;
	c->doomed.n++;
	return 0;
}

/* Switches flushoncommit off where a dead process left it on (note 4). */
static int recover_mount(const char *mp, struct vss_error *err)
{
	unsigned char uuid[16];
	struct vss_fsinfo fi;
	int lock_fd, mnt_fd, rc;

	if (fs_uuid_of_path(mp, uuid) < 0)
		return 0;       /* not reachable now: nothing we can do here */
	lock_fd = open_lock(uuid, false, err);
	if (lock_fd == -ENOENT)
		return 0;
	if (lock_fd < 0)
		return lock_fd;
	rc = vss_fsinfo_probe(mp, &fi, err);
	if (rc < 0)
		goto out;
	mnt_fd = open(fi.mount_point, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (mnt_fd < 0) {
		rc = vss_error_set(err, -errno, "%s: %s", fi.mount_point, strerror(errno));
	} else {
		lock_fd_wait(lock_fd);
		rc = recover_marker(lock_fd, mnt_fd, fi.mount_id, fi.mount_point, err);
		flock(lock_fd, LOCK_UN);
		close(mnt_fd);
	}
	vss_fsinfo_release(&fi);
out:
	close(lock_fd);
	return rc;
}

int vss_btrfs_cleanup(const char *mount_point,
		      bool (*keep)(void *arg, const struct vss_btrfs_entry *e), void *arg,
		      unsigned *deleted, struct vss_error *err)
{
	struct cleanup_ctx c = { .keep = keep, .arg = arg };
	struct vss_error e1;
	struct seen seen = { 0 };
	struct mp_list l;
	unsigned n = 0;
	int rc, first = 0;

	if (deleted)
		*deleted = 0;
	rc = mount_points(mount_point, &l, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < l.n; i++) {
		vss_error_clear(&e1);
		rc = recover_mount(l.v[i], &e1);
		if (rc == 0)
			rc = list_dir(l.v[i], &seen, cleanup_decide, &c, &e1);
		if (rc == -ENOMEM && !e1.msg[0])
			vss_error_set(&e1, rc, "out of memory");
		if (rc < 0 && !first) {
			first = rc;
			vss_error_set(err, rc, "%s", e1.msg);
		}
	}
	for (size_t i = 0; i < c.doomed.n; i++) {
		vss_error_clear(&e1);
		rc = vss_btrfs_delete(c.doomed.v[i], &e1);
		if (rc == 0)
			n++;
		else if (!first) {
			first = rc;
			vss_error_set(err, rc, "%s", e1.msg);
		}
	}
	free(seen.v);
	mp_list_free(&c.doomed);
	mp_list_free(&l);
	if (deleted)
		*deleted = n;
	return first;
}
