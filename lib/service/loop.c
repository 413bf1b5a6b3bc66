/*
 * service/loop.c - loop devices through the loop-control ioctls (see loop.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/loop.h>

#include "service/loop.h"

static int configure(int loop_fd, int file_fd, const char *file, bool read_only,
		     bool dio)
{
	struct loop_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = (unsigned int)file_fd;
	cfg.block_size = 4096;
	cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (read_only ? LO_FLAGS_READ_ONLY : 0) |
			    (dio ? LO_FLAGS_DIRECT_IO : 0);
	snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", file);
	return ioctl(loop_fd, LOOP_CONFIGURE, &cfg) < 0 ? -errno : 0;
}

int vss_loop_attach(int file_fd, const char *file, bool read_only, bool dio,
		    char dev[VSS_LOOP_NAME_MAX], int *fd, struct vss_error *err)
{
	int ctl, loop_fd = -1, rc = 0;

	*fd = -1;
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return vss_error_set(err, -errno, "cannot open /dev/loop-control: %s",
				     strerror(errno));
	/* Another process may take the free device first: try a few times. */
	for (int tries = 0; tries < 16; tries++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);

		if (n < 0) {
			rc = vss_error_set(err, -errno, "no free loop device: %s",
					   strerror(errno));
			break;
		}
		snprintf(dev, VSS_LOOP_NAME_MAX, "/dev/loop%d", n);
		loop_fd = open(dev, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (loop_fd < 0) {
			rc = vss_error_set(err, -errno, "cannot open %s: %s", dev, strerror(errno));
			if (errno == ENOENT)
				continue;
			break;
		}
		rc = configure(loop_fd, file_fd, file, read_only, dio);
		if (rc == -EINVAL && dio)  /* no direct I/O on this file: buffered then */
			rc = configure(loop_fd, file_fd, file, read_only, false);
		if (rc == 0)
			break;
		close(loop_fd);
		loop_fd = -1;
		if (rc != -EBUSY) {
			vss_error_set(err, rc, "cannot configure %s on %s: %s", dev, file,
				      strerror(-rc));
			break;
		}
	}
	if (loop_fd >= 0) {
		rc = 0;
		*fd = loop_fd;
	} else if (rc == 0 || rc == -EBUSY) {
		rc = vss_error_set(err, -EBUSY, "cannot find a free loop device");
	}
	close(ctl);
	return rc;
}

int vss_loop_limit_dirty(const char *dev, uint64_t bytes)
{
	struct stat st;
	int rc = 0;

	if (stat(dev, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	/* The kernel's defaults for a block device: max_ratio 100, no strict
	 * limit; writing max_ratio also sets max_bytes to match. */
	for (int i = 0; i < 2 && rc == 0; i++) {
		char path[96], text[32];
		int fd, len;

		snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/%s", major(st.st_rdev),
			 minor(st.st_rdev), i == 0 ? "strict_limit" :
			 bytes ? "max_bytes" : "max_ratio");
		len = snprintf(text, sizeof(text), "%" PRIu64 "\n",
			       i == 0 ? (bytes ? 1 : 0) : bytes ? bytes : 100);
		if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
			return -errno;
		if (write(fd, text, (size_t)len) != len)
			rc = -errno;
		close(fd);
	}
	return rc;
}

int vss_loop_set_direct(const char *dev, bool on)
{
	char path[96], text[8] = "";
	struct stat st;
	int fd, rc = 0;

	if (stat(dev, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/loop/dio", major(st.st_rdev),
		 minor(st.st_rdev));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		ssize_t n = read(fd, text, sizeof(text) - 1);

		close(fd);
		if (n > 0 && (text[0] == '1') == on)
			return 1;
	}
	if ((fd = open(dev, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (ioctl(fd, LOOP_SET_DIRECT_IO, on ? 1ul : 0ul) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int vss_loop_detach(const char *dev)
{
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, LOOP_CLR_FD, 0) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int vss_loop_backing(const char *dev, char *out, size_t size)
{
	const char *name = strrchr(dev, '/');
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", name ? name + 1 : dev);
	if (!(f = fopen(path, "re")))
		return -ENOENT;
	if (!fgets(out, (int)size, f)) {
		fclose(f);
		return -ENOENT;
	}
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

void vss_loop_each_under(const char *prefix,
			 void (*fn)(void *arg, const char *dev, const char *backing),
			 void *arg)
{
	DIR *d = opendir("/sys/block");
	struct dirent *de;
	size_t plen = strlen(prefix);

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[512], backing[4096], dev[VSS_LOOP_NAME_MAX];
		FILE *f;

		if (strncmp(de->d_name, "loop", 4) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (!fgets(backing, sizeof(backing), f)) {
			fclose(f);
			continue;
		}
		fclose(f);
		backing[strcspn(backing, "\n")] = '\0';
		if (strncmp(backing, prefix, plen) != 0 ||
		    (backing[plen] != '/' && backing[plen] != '\0'))
			continue;
		snprintf(dev, sizeof(dev), "/dev/%.24s", de->d_name);
		fn(arg, dev, backing);
	}
	closedir(d);
}
