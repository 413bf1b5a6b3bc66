/*
 * service/fs.c - mkfs, superblock detection, mount/umount and freeze/thaw
 * (see fs.h).  mkfs is the only program vssd runs; everything else is a
 * system call.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
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

int vss_fs_mkfs(const char *fstype, const char *dev, struct vss_error *err)
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
		argv[i++] = "-q";
		argv[i++] = "-F";
		argv[i++] = "-E";
		argv[i++] = "nodiscard";
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

int vss_fs_mount(const char *dev, const char *dir, const char *fstype,
		 const char *options, int shadow, struct vss_error *err)
{
	char opts[1024];
	char *vfs = NULL, *fs = NULL;
	unsigned long flags = 0;
	const char *extra = "";
	int rc;

	if (shadow) {
		if (strcmp(fstype, "ext4") == 0)
			extra = "ro,noload";
		else if (strcmp(fstype, "xfs") == 0)
			extra = "ro,norecovery,nouuid";
		else if (strcmp(fstype, "btrfs") == 0)
			extra = "ro,rescue=nologreplay";
		else
			extra = "ro";
	}
	snprintf(opts, sizeof(opts), "%s%s%s", options ? options : "",
		 options && *options && *extra ? "," : "", extra);
	if (mnt_split_optstr(opts, NULL, &vfs, &fs, 0, 0) != 0)
		return vss_error_set(err, -EINVAL, "cannot parse mount options \"%s\"", opts);
	if (vfs && mnt_optstr_get_flags(vfs, &flags, mnt_get_builtin_optmap(MNT_LINUX_MAP)) != 0) {
		rc = vss_error_set(err, -EINVAL, "cannot parse mount options \"%s\"", opts);
		goto out;
	}
	if (mount(dev, dir, fstype, flags, fs) < 0) {
		rc = vss_error_set(err, -errno, "cannot mount %s (%s) at %s: %s", dev, fstype,
				   dir, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(vfs);
	free(fs);
	return rc;
}

int vss_fs_umount(const char *dir, struct vss_error *err)
{
	for (int i = 0; i < 20; i++) {
		if (umount2(dir, 0) == 0)
			return 0;
		if (errno != EBUSY)
			return vss_error_set(err, -errno, "cannot unmount %s: %s", dir,
					     strerror(errno));
		/* A process that just closed a file there may still be exiting. */
		usleep(50000);
	}
	return vss_error_set(err, -EBUSY, "cannot unmount %s: it is in use", dir);
}

int vss_fs_make_mountpoint(const char *dir, struct vss_error *err)
{
	if (dir[0] != '/')
		return vss_error_set(err, -EINVAL, "mount point %s must be an absolute path", dir);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return vss_error_set(err, -errno, "cannot create %s: %s", dir, strerror(errno));
	return 0;
}

int vss_fs_free_mountpoint(const char *dir, char real[PATH_MAX], struct vss_error *err)
{
	if (!realpath(dir, real))
		return vss_error_set(err, -errno, "%s: %s", dir, strerror(errno));
	if (vss_fs_is_mountpoint(real))
		return vss_error_set(err, -EBUSY, "something is already mounted at %s", real);
	return 0;
}

void vss_fs_umount_force(const char *dir)
{
	int fd;

	if (umount2(dir, 0) == 0)
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
	umount2(dir, MNT_DETACH);
}

static int freeze_ioctl(const char *dir, unsigned long req, const char *what,
			struct vss_error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return vss_error_set(err, -errno, "cannot open %s: %s", dir, strerror(errno));
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
		if (s->dir && strcmp(tgt, s->dir) == 0 &&
		    (!s->dev || (src && strcmp(src, s->dev) == 0)))
			s->found = 1;
		if (s->fn && src && strcmp(src, s->dev) == 0)
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
