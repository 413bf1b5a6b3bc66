/*
 * service/fs.c - mkfs, superblock detection, mount/umount and freeze/thaw,
 * and the places vssd mounts on (see fs.h).  mkfs is the only program vssd
 * runs; everything else is a system call.  Mounts go through the new mount
 * API (fsopen/fsmount, open_tree) and land with move_mount() on a
 * descriptor of the directory that was checked; paths are opened with
 * openat2(RESOLVE_NO_SYMLINKS).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libmount.h>

#include "service/fs.h"

int vss_fs_supported(const char *fstype)
{
	return fstype && (strcmp(fstype, "ext4") == 0 || strcmp(fstype, "xfs") == 0 ||
			  strcmp(fstype, "btrfs") == 0);
}

/* Runs @argv, collecting its output (stdout and stderr) into @out. */
static int run(char *const argv[], char *out, size_t outlen)
{
	int pfd[2], status;
	size_t used = 0;
	pid_t pid;

	out[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -errno;
	}
	if (pid == 0) {
		sigset_t none;
		int devnull = open("/dev/null", O_RDONLY);

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		char buf[512];
		ssize_t n = read(pfd[0], buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (used + 1 < outlen) {
			size_t k = (size_t)n < outlen - 1 - used ? (size_t)n : outlen - 1 - used;

			memcpy(out + used, buf, k);
			used += k;
			out[used] = '\0';
		}
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status))
		return WEXITSTATUS(status) == 127 ? -ENOENT : WEXITSTATUS(status);
	return -EINTR;
}

int vss_fs_mkfs(const char *fstype, const char *dev, bool zeroed, struct vss_error *err)
{
	char out[2048], prog[32];
	char *argv[8];
	int i = 0, rc;

	if (!vss_fs_supported(fstype))
		return vss_error_set(err, -EINVAL, "cannot make a %s filesystem "
				     "(supported: ext4, xfs, btrfs)", fstype);
	snprintf(prog, sizeof(prog), "mkfs.%s", fstype);
	argv[i++] = prog;
	if (strcmp(fstype, "ext4") == 0) {
		/*
		 * The inode tables (~1.5% of the volume) must be zeroed before
		 * any shadow is taken.  Left to the kernel's lazy init, they
		 * are zeroed after the mount, in the background, for seconds
		 * to minutes, and every shadow taken meanwhile copies those
		 * blocks into its diff area (and a set's settle writes them
		 * through).  So: on a device that reads all zeros already (a
		 * new volume), assume_storage_prezeroed=1 (e2fsprogs 1.47):
		 * mkfs writes neither the inode tables nor the journal and
		 * marks every group's table zeroed, so the kernel has nothing
		 * left to do either; elsewhere lazy_itable_init=0, mkfs
		 * zeroes the tables itself.
		 */
		argv[i++] = "-q";
		argv[i++] = "-F";
		argv[i++] = "-E";
		argv[i++] = zeroed ? "nodiscard,assume_storage_prezeroed=1"
				   : "nodiscard,lazy_itable_init=0";
	} else {
		argv[i++] = "-q";
		argv[i++] = "-f";
		argv[i++] = "-K";   /* no discard, for both xfs and btrfs */
	}
	argv[i++] = (char *)dev;
	argv[i] = NULL;
	rc = run(argv, out, sizeof(out));
	if (rc == 0)
		return 0;
	out[strcspn(out, "\n")] = '\0';
	if (rc < 0)
		return vss_error_set(err, rc, "cannot run %s: %s", prog, strerror(-rc));
	return vss_error_set(err, -EIO, "%s failed (exit %d): %s", prog, rc, out);
}

const char *vss_fs_detect(const char *dev)
{
	unsigned char buf[4096];
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	const char *type = NULL;

	if (fd < 0)
		return NULL;
	/* ext2/3/4: 0xEF53 at 1024 + 56; xfs: "XFSB" at 0; btrfs: "_BHRfS_M" at 64K + 64 */
	if (pread(fd, buf, 2048, 0) == 2048) {
		if (memcmp(buf, "XFSB", 4) == 0)
			type = "xfs";
		else if (buf[1024 + 56] == 0x53 && buf[1024 + 57] == 0xEF)
			type = "ext4";
	}
	if (!type && pread(fd, buf, 4096, 65536) == 4096 &&
	    memcmp(buf + 64, "_BHRfS_M", 8) == 0)
		type = "btrfs";
	close(fd);
	return type;
}

/* ---- where vssd may mount ---- */

static int openat2_fd(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = { .flags = flags, .resolve = resolve };
	long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

/* The path the kernel has for @fd; -ENOENT if it was deleted. */
static int fd_path(int fd, char out[PATH_MAX])
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, PATH_MAX - 1);
	if (n < 0)
		return -errno;
	out[n] = '\0';
	if (out[0] != '/' || (n > 10 && strcmp(out + n - 10, " (deleted)") == 0))
		return -ENOENT;
	return 0;
}

/* Splits the absolute @path into its parent (@parent) and last component
 * (*@base, inside @parent's buffer); -EINVAL for "/" or a last "." or "..". */
static int split_path(const char *path, char parent[PATH_MAX], const char **base)
{
	size_t n = strlen(path);
	char *slash;

	if (path[0] != '/' || n + 2 > PATH_MAX)
		return -EINVAL;
	memcpy(parent, path, n + 1);
	while (n > 1 && parent[n - 1] == '/')
		parent[--n] = '\0';
	slash = strrchr(parent, '/');
	if (!slash[1] || strcmp(slash + 1, ".") == 0 || strcmp(slash + 1, "..") == 0)
		return -EINVAL;
	*slash = '\0';
	*base = slash + 1;
	if (slash == parent) {
		/* The base moves one to the right: "/" is the parent. */
		memmove(slash + 2, slash + 1, strlen(slash + 1) + 1);
		parent[0] = '/';
		parent[1] = '\0';
		*base = parent + 2;
	}
	return 0;
}

/* What vss_fs_open() does, in this process: an O_PATH descriptor or a
 * negative errno (-EPERM: not owned by @owner, unless it is (uid_t)-1). */
static int open_here(const char *path, unsigned int how, uid_t owner)
{
	uint64_t flags = O_PATH | O_CLOEXEC, resolve = 0;
	char parent[PATH_MAX];
	const char *base;
	struct stat st;
	int fd, pfd;

	if (how & VSS_FS_OPEN_NOFOLLOW) {
		flags |= O_DIRECTORY;
		resolve = RESOLVE_NO_SYMLINKS;
	}
	/* Proof that the caller may read it: no O_PATH; a fifo does not block. */
	if (how & VSS_FS_OPEN_READ)
		flags = (flags & ~(uint64_t)O_PATH) | O_RDONLY | O_NONBLOCK | O_NOCTTY;
	if (!(how & VSS_FS_OPEN_MKDIR)) {
		fd = openat2_fd(AT_FDCWD, path, flags, resolve);
	} else {
		if ((fd = split_path(path, parent, &base)) < 0)
			return fd;
		pfd = openat2_fd(AT_FDCWD, parent, O_PATH | O_DIRECTORY | O_CLOEXEC, resolve);
		if (pfd < 0)
			return pfd;
		if (mkdirat(pfd, base, owner == (uid_t)-1 ? 0755 : 0700) < 0 && errno != EEXIST)
			fd = -errno;
		else
			fd = openat2_fd(pfd, base, flags, resolve);
		close(pfd);
	}
	if (fd < 0 || owner == (uid_t)-1 || !(how & VSS_FS_OPEN_OWNED))
		return fd;
	if (fstat(fd, &st) < 0 || st.st_uid != owner) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

static unsigned int caller_timeout_ms(void)
{
	const char *s = getenv("VSS_TEST_CALLER_TIMEOUT_MS");
	long v = s ? strtol(s, NULL, 10) : 0;

	return v > 0 && v < 600000 ? (unsigned int)v : 10000;
}

/* The child's answer: a negative errno, or 0 and the descriptor. */
static void send_result(int sock, int rc)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &rc, sizeof(rc) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (rc >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &rc, sizeof(int));
		rc = 0;
	}
	(void)!sendmsg(sock, &msg, MSG_NOSIGNAL);
}

static int recv_result(int sock, unsigned int timeout_ms, int *fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct pollfd p = { sock, POLLIN, 0 };
	int rc = -EIO, got = -1;
	struct iovec iov = { &rc, sizeof(rc) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	ssize_t n;
	int k;

	while ((k = poll(&p, 1, (int)timeout_ms)) < 0 && errno == EINTR)
		;
	if (k == 0)
		return -ETIMEDOUT;
	n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (n != (ssize_t)sizeof(rc))
		return -EIO;   /* the child died before it answered */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&got, CMSG_DATA(c), sizeof(int));
	if (rc == 0 && got < 0)
		return -EIO;
	if (rc < 0 && got >= 0)
		close(got);
	*fd = got;
	return rc;
}

/*
 * Children that did not die of SIGKILL within a second (a lookup in
 * uninterruptible sleep: a hard NFS mount whose server is gone) are
 * reaped by a later call, so that a stuck lookup never holds vssd.
 */
static pthread_mutex_t stuck_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t stuck[32];

static void reap(pid_t pid, bool killed)
{
	int tries = killed ? 100 : -1;
	pid_t r;

	while ((r = waitpid(pid, NULL, tries < 0 ? 0 : WNOHANG)) == 0 ||
	       (r < 0 && errno == EINTR)) {
		if (r == 0 && --tries < 0)
			break;
		if (r == 0)
			usleep(10000);
	}
	pthread_mutex_lock(&stuck_lock);
	for (size_t i = 0; i < sizeof(stuck) / sizeof(stuck[0]); i++) {
		if (stuck[i] && waitpid(stuck[i], NULL, WNOHANG) != 0)
			stuck[i] = 0;
		if (r == 0 && !stuck[i]) {
			stuck[i] = pid;
			r = -1;
		}
	}
	pthread_mutex_unlock(&stuck_lock);
}

/*
 * open_here() in a child that is @cred: it takes the user's groups, gid and
 * uid (and so loses every capability) before it looks, is not dumpable (its
 * memory is vssd's), keeps no descriptor of vssd's but its socket, and
 * hands the descriptor back over it.  A child that does not answer in time
 * (a lookup stuck in a FUSE filesystem, a stopped process) is killed.
 */
static int open_as(const char *path, const struct vss_fs_cred *cred, unsigned int how)
{
	unsigned int timeout_ms = caller_timeout_ms();
	int sv[2], rc, fd = -1;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	if (pid == 0) {
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		if (sv[1] > 0)
			close_range(0, (unsigned int)sv[1] - 1, 0);
		close_range((unsigned int)sv[1] + 1, ~0u, 0);
		if (setgroups((size_t)cred->ngroups, cred->groups) < 0 ||
		    setresgid(cred->gid, cred->gid, cred->gid) < 0 ||
		    setresuid(cred->uid, cred->uid, cred->uid) < 0)
			send_result(sv[1], -ECHILD);
		else
			send_result(sv[1], open_here(path, how, cred->uid));
		_exit(0);
	}
	close(sv[1]);
	rc = recv_result(sv[0], timeout_ms, &fd);
	close(sv[0]);
	if (rc == -ETIMEDOUT)
		kill(pid, SIGKILL);
	reap(pid, rc == -ETIMEDOUT);
	return rc < 0 ? rc : fd;
}

int vss_fs_open(const char *path, const struct vss_fs_cred *cred, unsigned int how,
		int *fd, char real[PATH_MAX], struct vss_error *err)
{
	int rc;

	*fd = -1;
	if (path[0] != '/')
		return vss_error_set(err, -EINVAL, "%s must be an absolute path", path);
	rc = cred ? open_as(path, cred, how) : open_here(path, how, (uid_t)-1);
	if (rc >= 0) {
		int r = fd_path(rc, real);

		if (r == 0) {
			*fd = rc;
			return 0;
		}
		close(rc);
		rc = r;
	}
	if (cred && (rc == -ENOENT || rc == -EACCES))
		return vss_error_set(err, -ENOENT, "%s does not exist or you may not reach it",
				     path);
	switch (rc) {
	case -ELOOP:
		if (how & VSS_FS_OPEN_NOFOLLOW)
			return vss_error_set(err, rc, "%s: refusing to follow a symlink to "
					     "mount there (name the directory itself)", path);
		break;
	case -EPERM:
		if (cred && (how & VSS_FS_OPEN_OWNED))
			return vss_error_set(err, rc, "%s is not yours: name a directory "
					     "you own", path);
		break;
	case -ECHILD:
		return vss_error_set(err, -EPERM, "cannot take uid %u to look up %s",
				     (unsigned int)cred->uid, path);
	case -ETIMEDOUT:
		return vss_error_set(err, rc, "looking up %s as uid %u took longer than "
				     "%u ms", path, (unsigned int)cred->uid,
				     caller_timeout_ms());
	case -EINVAL:
		if (how & VSS_FS_OPEN_MKDIR)
			return vss_error_set(err, rc, "%s cannot be created as a directory",
					     path);
		break;
	default:
		break;
	}
	return vss_error_set(err, rc, "%s: %s", path, strerror(-rc));
}

static bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

int vss_fs_check_target(const char *real, struct vss_error *err)
{
	/* What the system runs on: never covered, nor anything in it. */
	static const char *const system[] = { "/proc", "/sys", "/dev", "/etc", "/usr",
					      "/boot", "/bin", "/sbin" };
	/* Covering these would hide all of the system's state or scratch. */
	static const char *const tops[] = { "/", "/var", "/run", "/tmp" };

	for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++)
		if (strcmp(real, tops[i]) == 0)
			return vss_error_set(err, -EPERM, "refusing to mount on %s: a system "
					     "directory", real);
	for (size_t i = 0; i < sizeof(system) / sizeof(system[0]); i++)
		if (path_within(real, system[i]))
			return vss_error_set(err, -EPERM, "refusing to mount on %s: %s%s is "
					     "a system directory", real,
					     strcmp(real, system[i]) ? "it is inside " : "",
					     system[i]);
	/* /lib, /lib32, /lib64, /libx32, /libexec ... */
	if (strncmp(real, "/lib", 4) == 0) {
		size_t n = 4 + strcspn(real + 4, "/");

		return vss_error_set(err, -EPERM, "refusing to mount on %s: %s%.*s is a "
				     "system directory", real, real[n] ? "it is inside " : "",
				     (int)n, real);
	}
	return 0;
}

/* 1 if @fd is the root of a mount, 0 if not, a negative errno if unknown. */
static int is_mount_root(int fd)
{
	struct statx sx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, 0, &sx) < 0)
		return -errno;
	if (!(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return -EOPNOTSUPP;
	return !!(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

int vss_fs_check_free(int fd, const char *real, struct vss_error *err)
{
	int r = is_mount_root(fd);

	if (r < 0)
		r = vss_fs_is_mountpoint(real);
	if (r > 0)
		return vss_error_set(err, -EBUSY, "something is already mounted at %s", real);
	return 0;
}

int vss_fs_private_dir(int dirfd, const char *name, mode_t mode, uid_t uid, gid_t gid,
		       int *fd)
{
	struct stat st;
	bool made;
	int d;

	*fd = -1;
	if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	made = mkdirat(dirfd, name, mode) == 0;
	if (!made && errno != EEXIST)
		return -errno;
	d = openat2_fd(dirfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC,
		       RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH);
	if (d < 0)
		return d;
	if (uid != (uid_t)-1) {
		if (made && fchownat(d, "", uid, gid, AT_EMPTY_PATH) < 0) {
			int rc = -errno;

			close(d);
			return rc;
		}
		if (fstat(d, &st) < 0 || st.st_uid != uid) {
			close(d);
			return -EPERM;
		}
	}
	*fd = d;
	return 0;
}

int vss_fs_rmdir(const char *path)
{
	char parent[PATH_MAX];
	const char *base;
	int pfd, rc;

	if ((rc = split_path(path, parent, &base)) < 0)
		return rc;
	pfd = openat2_fd(AT_FDCWD, parent, O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_SYMLINKS);
	if (pfd < 0)
		return pfd;
	rc = unlinkat(pfd, base, AT_REMOVEDIR) < 0 ? -errno : 0;
	close(pfd);
	return rc;
}

/* The mount @mfd (attached by now) into @out: its ID and where it is. */
static void landed(int mfd, struct vss_fs_mounted *out)
{
	struct statx sx;

	out->id = 0;
	if (statx(mfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) == 0 && (sx.stx_mask & STATX_MNT_ID))
		out->id = sx.stx_mnt_id;
	if (fd_path(mfd, out->dir) < 0)
		out->dir[0] = '\0';
}

/* The first error the filesystem logged on @fsfd (fsopen's log), or "". */
static void fs_log(int fsfd, char *out, size_t len)
{
	char buf[512];
	ssize_t n;

	out[0] = '\0';
	while ((n = read(fsfd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		if (!out[0] && n > 2 && buf[0] == 'e' && buf[1] == ' ') {
			buf[strcspn(buf, "\n")] = '\0';
			snprintf(out, len, "%.*s", (int)len - 1, buf + 2);
		}
	}
}

/* Superblock flags (fsconfig) and mount attributes (fsmount) of MS_* flags. */
static const struct {
	unsigned long ms;
	const char *sb;             /* fsconfig flag, or NULL */
	unsigned int attr;          /* MOUNT_ATTR_*, or 0 */
} ms_map[] = {
	{ MS_RDONLY, "ro", MOUNT_ATTR_RDONLY },
	{ MS_NOSUID, NULL, MOUNT_ATTR_NOSUID },
	{ MS_NODEV, NULL, MOUNT_ATTR_NODEV },
	{ MS_NOEXEC, NULL, MOUNT_ATTR_NOEXEC },
	{ MS_NOATIME, NULL, MOUNT_ATTR_NOATIME },
	{ MS_NODIRATIME, NULL, MOUNT_ATTR_NODIRATIME },
	{ MS_STRICTATIME, NULL, MOUNT_ATTR_STRICTATIME },
	{ MS_RELATIME, NULL, MOUNT_ATTR_RELATIME },
	{ MS_NOSYMFOLLOW, NULL, MOUNT_ATTR_NOSYMFOLLOW },
	{ MS_SYNCHRONOUS, "sync", 0 },
	{ MS_DIRSYNC, "dirsync", 0 },
	{ MS_LAZYTIME, "lazytime", 0 },
	{ MS_SILENT, "silent", 0 },
};

/* fsconfig() of one filesystem option "name" or "name=value" (@len bytes). */
static int set_fs_option(int fsfd, const char *name, size_t namesz, const char *val,
			 size_t valsz)
{
	char n[256], v[768];

	if (namesz >= sizeof(n) || valsz >= sizeof(v))
		return -ENAMETOOLONG;
	memcpy(n, name, namesz);
	n[namesz] = '\0';
	if (!val)
		return fsconfig(fsfd, FSCONFIG_SET_FLAG, n, NULL, 0) < 0 ? -errno : 0;
	memcpy(v, val, valsz);
	v[valsz] = '\0';
	return fsconfig(fsfd, FSCONFIG_SET_STRING, n, v, 0) < 0 ? -errno : 0;
}

int vss_fs_mount(const char *dev, int dirfd, const char *fstype, const char *options,
		 unsigned int flags, struct vss_fs_mounted *out, struct vss_error *err)
{
	char opts[1024], where[PATH_MAX], why[256] = "";
	char *vfs = NULL, *fs = NULL, *p;
	unsigned long msflags = 0, known = 0;
	unsigned int attrs = 0;
	const char *extra = "";
	int rc, fsfd = -1, mfd = -1;
	char *name, *val;
	size_t namesz, valsz;

	if (fd_path(dirfd, where) < 0)
		snprintf(where, sizeof(where), "(a directory that is gone)");
	if (flags & VSS_FS_SHADOW) {
		if (strcmp(fstype, "ext4") == 0)
			extra = "ro,noload";
		else if (strcmp(fstype, "xfs") == 0)
			extra = "ro,norecovery,nouuid";
		else if (strcmp(fstype, "btrfs") == 0)
			extra = "ro,rescue=nologreplay";
		else
			extra = "ro";
		attrs |= MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
		if (!(flags & VSS_FS_EXEC))
			attrs |= MOUNT_ATTR_NOEXEC;
	}
	snprintf(opts, sizeof(opts), "%s%s%s", options ? options : "",
		 options && *options && *extra ? "," : "", extra);
	if (mnt_split_optstr(opts, NULL, &vfs, &fs, 0, 0) != 0)
		return vss_error_set(err, -EINVAL, "cannot parse mount options \"%s\"", opts);
	if (vfs && mnt_optstr_get_flags(vfs, &msflags, mnt_get_builtin_optmap(MNT_LINUX_MAP)) != 0) {
		rc = vss_error_set(err, -EINVAL, "cannot parse mount options \"%s\"", opts);
		goto out;
	}
	for (size_t i = 0; i < sizeof(ms_map) / sizeof(ms_map[0]); i++)
		known |= ms_map[i].ms;
	if (msflags & ~known) {
		rc = vss_error_set(err, -EINVAL, "mount options \"%s\": bind, move, remount "
				   "and propagation options are not for a filesystem", opts);
		goto out;
	}
	if ((fsfd = fsopen(fstype, FSOPEN_CLOEXEC)) < 0) {
		rc = vss_error_set(err, -errno, "cannot mount %s: %s", fstype, strerror(errno));
		goto out;
	}
	rc = fsconfig(fsfd, FSCONFIG_SET_STRING, "source", dev, 0) < 0 ? -errno : 0;
	for (size_t i = 0; rc == 0 && i < sizeof(ms_map) / sizeof(ms_map[0]); i++) {
		if (!(msflags & ms_map[i].ms))
			continue;
		attrs |= ms_map[i].attr;
		if (ms_map[i].sb && fsconfig(fsfd, FSCONFIG_SET_FLAG, ms_map[i].sb, NULL, 0) < 0)
			rc = -errno;
	}
	for (p = fs; rc == 0 && p &&
	     mnt_optstr_next_option(&p, &name, &namesz, &val, &valsz) == 0;)
		rc = set_fs_option(fsfd, name, namesz, val, valsz);
	if (rc == 0 && fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		rc = -errno;
	if (rc < 0) {
		fs_log(fsfd, why, sizeof(why));
		rc = vss_error_set(err, rc, "cannot mount %s (%s) at %s: %s", dev, fstype, where,
				   why[0] ? why : strerror(-rc));
		goto out;
	}
	if ((mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, attrs)) < 0 ||
	    move_mount(mfd, "", dirfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
		rc = vss_error_set(err, -errno, "cannot mount %s (%s) at %s: %s", dev, fstype,
				   where, strerror(errno));
		goto out;
	}
	landed(mfd, out);
	rc = 0;
out:
	if (mfd >= 0)
		close(mfd);
	if (fsfd >= 0)
		close(fsfd);
	free(vfs);
	free(fs);
	return rc;
}

static unsigned int shadow_attrs(unsigned int flags)
{
	return MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
	       (flags & VSS_FS_EXEC ? 0 : MOUNT_ATTR_NOEXEC);
}

int vss_fs_bind(const char *src, int dirfd, unsigned int flags, struct vss_fs_mounted *out,
		struct vss_error *err)
{
	struct mount_attr attr = { .attr_set = shadow_attrs(flags) };
	char where[PATH_MAX];
	int sfd, tfd, rc = 0;

	if (fd_path(dirfd, where) < 0)
		snprintf(where, sizeof(where), "(a directory that is gone)");
	sfd = openat2_fd(AT_FDCWD, src, O_PATH | O_DIRECTORY | O_CLOEXEC,
			 RESOLVE_NO_SYMLINKS);
	if (sfd < 0)
		return vss_error_set(err, sfd, "cannot bind-mount %s: %s", src, strerror(-sfd));
	tfd = open_tree(sfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	close(sfd);
	if (tfd < 0)
		return vss_error_set(err, -errno, "cannot bind-mount %s: %s", src,
				     strerror(errno));
	if (mount_setattr(tfd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
		rc = vss_error_set(err, -errno, "cannot make a bind mount of %s read-only: %s",
				   src, strerror(errno));
	else if (move_mount(tfd, "", dirfd, "", MOVE_MOUNT_F_EMPTY_PATH |
						MOVE_MOUNT_T_EMPTY_PATH) < 0)
		rc = vss_error_set(err, -errno, "cannot bind-mount %s on %s: %s", src, where,
				   strerror(errno));
	else
		landed(tfd, out);
	close(tfd);
	return rc;
}

/* The root of the mount at @dir, opened with @flags (no symlinks followed);
 * -EINVAL if @dir is not the root of a mount. */
static int open_mount_root(const char *dir, uint64_t flags)
{
	int fd = openat2_fd(AT_FDCWD, dir, flags | O_DIRECTORY | O_CLOEXEC,
			    RESOLVE_NO_SYMLINKS);
	int r;

	if (fd < 0)
		return fd;
	if ((r = is_mount_root(fd)) == 0 || (r < 0 && !vss_fs_is_mountpoint(dir))) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

int vss_fs_harden(const char *dir, unsigned int flags, uint64_t *id, struct vss_error *err)
{
	struct mount_attr attr = { .attr_set = shadow_attrs(flags) };
	struct vss_fs_mounted m;
	int fd = open_mount_root(dir, O_PATH);
	int rc = 0;

	if (fd < 0)
		return vss_error_set(err, fd, "%s: %s", dir, fd == -EINVAL ? "nothing is "
				     "mounted there" : strerror(-fd));
	if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
		rc = vss_error_set(err, -errno, "cannot make %s read-only: %s", dir,
				   strerror(errno));
	landed(fd, &m);
	*id = m.id;
	close(fd);
	return rc;
}

/* The parent of @dir, opened without following symlinks (O_PATH), and
 * @dir's last component in *@base. */
static int umount_parent(const char *dir, char parent[PATH_MAX], const char **base,
			 struct vss_error *err)
{
	int pfd, rc;

	if ((rc = split_path(dir, parent, base)) < 0)
		return vss_error_set(err, rc, "cannot unmount %s", dir);
	pfd = openat2_fd(AT_FDCWD, parent, O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_SYMLINKS);
	if (pfd < 0)
		return vss_error_set(err, pfd, "cannot unmount %s: %s", dir, strerror(-pfd));
	return pfd;
}

/*
 * umount2() takes a path, and a descriptor on the mount would keep it busy.
 * So the parent is opened without following symlinks and the mount named
 * as its last component through it (/proc/self/fd/P/NAME, not followed if
 * a symlink): no symlink planted on the way can make vssd unmount anything
 * but a mount at @dir.
 */
static int umount_at(const char *dir, int mflags, struct vss_error *err)
{
	char parent[PATH_MAX], p[PATH_MAX + 32];
	const char *base;
	int pfd, fd, rc;

	if ((pfd = umount_parent(dir, parent, &base, err)) < 0)
		return pfd;
	fd = openat2_fd(pfd, base, O_PATH | O_DIRECTORY | O_CLOEXEC,
			RESOLVE_NO_SYMLINKS);
	rc = fd < 0 ? fd : is_mount_root(fd);
	if (fd >= 0)
		close(fd);
	if (rc == 0) {
		close(pfd);
		return vss_error_set(err, -EINVAL, "cannot unmount %s: nothing is mounted "
				     "there", dir);
	}
	if (rc < 0 && rc != -EOPNOTSUPP) {
		close(pfd);
		return vss_error_set(err, rc, "cannot unmount %s: %s", dir, strerror(-rc));
	}
	snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", pfd, base);
	rc = umount2(p, mflags | UMOUNT_NOFOLLOW) < 0 ? -errno : 0;
	close(pfd);
	if (rc < 0)
		vss_error_set(err, rc, "cannot unmount %s: %s", dir, strerror(-rc));
	return rc;
}

int vss_fs_umount(const char *dir, struct vss_error *err)
{
	int rc;

	for (int i = 0; i < 20; i++) {
		if ((rc = umount_at(dir, 0, err)) != -EBUSY)
			return rc;
		/* A process that just closed a file there may still be exiting. */
		usleep(50000);
	}
	return vss_error_set(err, -EBUSY, "cannot unmount %s: it is in use", dir);
}

/* The ID of the mount @fd is on, or 0 if unknown. */
static uint64_t mount_id(int fd)
{
	struct statx sx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) == 0 && (sx.stx_mask & STATX_MNT_ID))
		return sx.stx_mnt_id;
	return 0;
}

/*
 * The root of the mount at @dir (no symlinks), checked to be the mount
 * @id (when not 0): O_PATH into *@fd.
 */
static int open_root_of(int pfd, const char *base, uint64_t id, int *fd)
{
	int rc;

	*fd = openat2_fd(pfd, base, O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_SYMLINKS);
	if (*fd < 0)
		return *fd;
	rc = is_mount_root(*fd);
	if (rc == 0 || (rc > 0 && id && mount_id(*fd) != id))
		rc = -EINVAL;
	if (rc < 0 && rc != -EOPNOTSUPP) {
		close(*fd);
		*fd = -1;
		return rc;
	}
	return 0;
}

int vss_fs_umount_detach(const char *dir, uint64_t id, int *hold, struct vss_error *err)
{
	char parent[PATH_MAX], p[PATH_MAX + 32];
	const char *base;
	int pfd, fd, rc;

	*hold = -1;
	if ((pfd = umount_parent(dir, parent, &base, err)) < 0)
		return pfd;
	if ((rc = open_root_of(pfd, base, id, &fd)) < 0) {
		close(pfd);
		return vss_error_set(err, rc, "cannot unmount %s: %s", dir, rc == -EINVAL
				     ? "it is not the mount that was made there" : strerror(-rc));
	}
	snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", pfd, base);
	rc = umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 ? -errno : 0;
	close(pfd);
	if (rc < 0) {
		close(fd);
		return vss_error_set(err, rc, "cannot unmount %s: %s", dir, strerror(-rc));
	}
	*hold = fd;
	return 0;
}

/*
 * Whether the descriptor, directory or device at @path of /proc uses @dev.
 * The file is any process's, on any filesystem (a user's FUSE one whose
 * daemon never answers): AT_STATX_DONT_SYNC takes what the kernel has
 * cached, asking no filesystem (the device numbers are the superblock's).
 */
static bool uses_dev(int dirfd, const char *path, dev_t dev)
{
	struct statx st;

	if (statx(dirfd, path, AT_STATX_DONT_SYNC, STATX_TYPE, &st) < 0)
		return false;
	return makedev(st.stx_dev_major, st.stx_dev_minor) == dev ||
	       (S_ISBLK(st.stx_mode) && makedev(st.stx_rdev_major, st.stx_rdev_minor) == dev);
}

static bool pid_uses_dev(int procfd, const char *pid, dev_t dev)
{
	char p[NAME_MAX + 16];
	struct dirent *de;
	bool found = false;
	DIR *d;
	int fd;

	snprintf(p, sizeof(p), "%s/cwd", pid);
	if (uses_dev(procfd, p, dev))
		return true;
	snprintf(p, sizeof(p), "%s/root", pid);
	if (uses_dev(procfd, p, dev))
		return true;
	snprintf(p, sizeof(p), "%s/fd", pid);
	if ((fd = openat(procfd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return false;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return false;
	}
	while (!found && (de = readdir(d)))
		found = de->d_name[0] != '.' && uses_dev(fd, de->d_name, dev);
	closedir(d);
	return found;
}

int vss_fs_holders(dev_t dev, struct vss_fs_holder *out, size_t max)
{
	struct dirent *de;
	int procfd, listfd, n = 0;
	DIR *d;

	if ((procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if ((listfd = fcntl(procfd, F_DUPFD_CLOEXEC, 0)) < 0 || !(d = fdopendir(listfd))) {
		int rc = -errno;

		if (listfd >= 0)
			close(listfd);
		close(procfd);
		return rc;
	}
	while ((de = readdir(d))) {
		char p[NAME_MAX + 16], comm[64] = "";
		size_t len;
		FILE *f;
		int fd;

		if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
		    strspn(de->d_name, "0123456789") != strlen(de->d_name) ||
		    !pid_uses_dev(procfd, de->d_name, dev))
			continue;
		if ((size_t)n < max) {
			out[n].pid = (pid_t)atoi(de->d_name);
			snprintf(p, sizeof(p), "%s/comm", de->d_name);
			if ((fd = openat(procfd, p, O_RDONLY | O_CLOEXEC)) >= 0 &&
			    (f = fdopen(fd, "re"))) {
				if (!fgets(comm, sizeof(comm), f))
					comm[0] = '\0';
				fclose(f);
			} else if (fd >= 0) {
				close(fd);
			}
			comm[strcspn(comm, "\n")] = '\0';
			len = strlen(comm);
			for (size_t i = 0; i < len; i++)      /* a process names itself */
				if (comm[i] < 0x20 || comm[i] > 0x7e)
					comm[i] = '?';
			snprintf(out[n].comm, sizeof(out[n].comm), "%s", comm);
		}
		n++;
	}
	closedir(d);
	close(procfd);
	return n;
}

void vss_fs_umount_force(const char *dir)
{
	int fd;

	if (umount_at(dir, 0, NULL) != -EBUSY)
		return;
	fd = open_mount_root(dir, O_RDONLY | O_NONBLOCK);
	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
	umount_at(dir, MNT_DETACH, NULL);
}

static int freeze_ioctl(const char *dir, unsigned long req, const char *what,
			struct vss_error *err)
{
	int fd = open_mount_root(dir, O_RDONLY);
	int rc = 0;

	if (fd < 0)
		return vss_error_set(err, fd, "cannot open %s: %s", dir, fd == -EINVAL
				     ? "nothing is mounted there" : strerror(-fd));
	if (ioctl(fd, req, 0) < 0)
		rc = vss_error_set(err, -errno, "cannot %s %s: %s", what, dir, strerror(errno));
	close(fd);
	return rc;
}

int vss_fs_freeze(const char *dir, struct vss_error *err)
{
	return freeze_ioctl(dir, FIFREEZE, "freeze", err);
}

int vss_fs_thaw(const char *dir, struct vss_error *err)
{
	return freeze_ioctl(dir, FITHAW, "thaw", err);
}

struct mount_scan {
	const char *dev;
	const char *dir;
	int found;
	uint64_t id;                    /* the mount to find (vss_fs_mount_where), or 0 */
	char *where, *source;
	size_t source_size;
	void (*fn)(void *arg, const char *dir);
	void *arg;
};

static void scan_mounts(struct mount_scan *s)
{
	struct libmnt_table *tb = mnt_new_table_from_file("/proc/self/mountinfo");
	struct libmnt_iter *it;
	struct libmnt_fs *fs;

	if (!tb)
		return;
	it = mnt_new_iter(MNT_ITER_FORWARD);
	while (it && mnt_table_next_fs(tb, it, &fs) == 0) {
		const char *src = mnt_fs_get_source(fs);
		const char *tgt = mnt_fs_get_target(fs);

		if (!tgt)
			continue;
		if (s->id && (uint64_t)mnt_fs_get_id(fs) == s->id) {
			s->found = 1;
			snprintf(s->where, PATH_MAX, "%s", tgt);
			snprintf(s->source, s->source_size, "%s", src ? src : "");
		}
		if (s->dir && strcmp(tgt, s->dir) == 0 &&
		    (!s->dev || (src && strcmp(src, s->dev) == 0)))
			s->found = 1;
		if (s->fn && src && s->dev && strcmp(src, s->dev) == 0)
			s->fn(s->arg, tgt);
	}
	mnt_free_iter(it);
	mnt_unref_table(tb);
}

int vss_fs_is_mountpoint(const char *dir)
{
	struct mount_scan s = { .dir = dir };

	scan_mounts(&s);
	return s.found;
}

int vss_fs_mounted_from(const char *dev, const char *dir)
{
	struct mount_scan s = { .dev = dev, .dir = dir };

	scan_mounts(&s);
	return s.found;
}

void vss_fs_each_mount_of(const char *dev, void (*fn)(void *arg, const char *dir),
			  void *arg)
{
	struct mount_scan s = { .dev = dev, .fn = fn, .arg = arg };

	scan_mounts(&s);
}

struct vss_fs_mounts *vss_fs_mounts_read(void)
{
	return (struct vss_fs_mounts *)mnt_new_table_from_file("/proc/self/mountinfo");
}

void vss_fs_mounts_free(struct vss_fs_mounts *m)
{
	if (m)
		mnt_unref_table((struct libmnt_table *)m);
}

int vss_fs_mounts_where(struct vss_fs_mounts *m, uint64_t id, char dir[PATH_MAX], char *source,
			size_t size)
{
	struct libmnt_iter *it;
	struct libmnt_fs *fs;
	int found = 0;

	if (!m || !id)
		return 0;
	if (!(it = mnt_new_iter(MNT_ITER_FORWARD)))
		return 0;
	while (!found && mnt_table_next_fs((struct libmnt_table *)m, it, &fs) == 0) {
		const char *src = mnt_fs_get_source(fs), *tgt = mnt_fs_get_target(fs);

		if (!tgt || (uint64_t)mnt_fs_get_id(fs) != id)
			continue;
		found = 1;
		snprintf(dir, PATH_MAX, "%s", tgt);
		snprintf(source, size, "%s", src ? src : "");
	}
	mnt_free_iter(it);
	return found;
}

int vss_fs_mount_where(uint64_t id, char dir[PATH_MAX], char *source, size_t size)
{
	struct mount_scan s = { .id = id, .where = dir, .source = source, .source_size = size };

	if (!id)
		return 0;
	scan_mounts(&s);
	return s.found;
}
