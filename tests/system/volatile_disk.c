/*
 * volatile_disk.c - a disk with a volatile write cache, as a FUSE file, for
 * tests/system/test_order.py: what a power loss would leave of it is on
 * the host, apart, and only a flush puts writes there.
 *
 *     vss-test-volatile-disk DIR SIZE MOUNTPOINT
 *
 * makes DIR/live and DIR/durable, SIZE bytes of zeros each, and mounts
 * MOUNTPOINT (in the foreground, one thread) with one file, MOUNTPOINT/disk.
 * Reads and writes of the disk go to DIR/live; a write marks its 4 KiB
 * pages dirty, and only an fsync or fdatasync of the disk copies the dirty
 * pages to DIR/durable (and fdatasyncs it): DIR/durable is what the disk
 * would hold after a power loss at any moment.  A hole punched is dirty
 * too.  Each fsync adds a line "fsync PAGES" to DIR/fsyncs (the pages it
 * made durable), for the test's messages.  Nothing else of the kernel's
 * page cache matters: the mount has no writeback cache, so every write()
 * on the disk reaches this program before it returns.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096u

static int live_fd = -1, durable_fd = -1, log_fd = -1;
static uint64_t disk_size;
static unsigned char *dirty;    /* a byte per page: written since the last fsync */

static const char *const DISK = "/disk";

static void *vd_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->direct_io = 0;
	cfg->kernel_cache = 0;
	cfg->attr_timeout = 0;
	return NULL;
}

static int vd_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0700;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, DISK) != 0)
		return -ENOENT;
	st->st_mode = S_IFREG | 0600;
	st->st_nlink = 1;
	st->st_size = (off_t)disk_size;
	st->st_blocks = (blkcnt_t)(disk_size / 512);
	return 0;
}

static int vd_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	if (strcmp(path, "/") != 0)
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, DISK + 1, NULL, 0, 0);
	return 0;
}

static int vd_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, DISK) != 0)
		return -ENOENT;
	if (fi->flags & O_TRUNC)
		return -EPERM;
	return 0;
}

static int vd_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)fi;
	if (strcmp(path, DISK) != 0)
		return -ENOENT;
	return (uint64_t)size == disk_size ? 0 : -EPERM;   /* a disk's size is fixed */
}

static int in_range(off_t off, size_t len)
{
	return off >= 0 && (uint64_t)off <= disk_size && len <= disk_size - (uint64_t)off;
}

static void mark(off_t off, size_t len)
{
	for (uint64_t p = (uint64_t)off / PAGE; len && p <= ((uint64_t)off + len - 1) / PAGE; p++)
		dirty[p] = 1;
}

static int vd_read(const char *path, char *buf, size_t len, off_t off,
		   struct fuse_file_info *fi)
{
	ssize_t n;

	(void)path;
	(void)fi;
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= disk_size)
		return 0;
	if (len > disk_size - (uint64_t)off)
		len = disk_size - (uint64_t)off;
	n = pread(live_fd, buf, len, off);
	return n < 0 ? -errno : (int)n;
}

static int vd_write(const char *path, const char *buf, size_t len, off_t off,
		    struct fuse_file_info *fi)
{
	size_t done = 0;

	(void)path;
	(void)fi;
	if (!in_range(off, len))
		return -ENOSPC;
	while (done < len) {
		ssize_t n = pwrite(live_fd, buf + done, len - done, off + (off_t)done);

		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	mark(off, len);
	return (int)len;
}

static int vd_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	if (len < 0 || !in_range(off, (size_t)len))
		return -EINVAL;
	if (!(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (fallocate(live_fd, mode, off, len) < 0)
		return -errno;
	if (mode & FALLOC_FL_PUNCH_HOLE)
		mark(off, (size_t)len);
	return 0;
}

static int vd_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	static char page[PAGE];
	uint64_t pages = 0;
	char line[64];
	int n;

	(void)path;
	(void)datasync;
	(void)fi;
	for (uint64_t p = 0; p < disk_size / PAGE; p++) {
		if (!dirty[p])
			continue;
		if (pread(live_fd, page, PAGE, (off_t)(p * PAGE)) != PAGE ||
		    pwrite(durable_fd, page, PAGE, (off_t)(p * PAGE)) != PAGE)
			return -EIO;
		dirty[p] = 0;
		pages++;
	}
	if (fdatasync(durable_fd) < 0)
		return -EIO;
	n = snprintf(line, sizeof(line), "fsync %llu\n", (unsigned long long)pages);
	if (write(log_fd, line, (size_t)n) != n)
		return -EIO;
	return 0;
}

static int vd_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	return 0;       /* close(), not a cache flush: nothing becomes durable */
}

static const struct fuse_operations ops = {
	.init = vd_init,
	.getattr = vd_getattr,
	.readdir = vd_readdir,
	.open = vd_open,
	.truncate = vd_truncate,
	.read = vd_read,
	.write = vd_write,
	.fallocate = vd_fallocate,
	.fsync = vd_fsync,
	.flush = vd_flush,
};

static int make(const char *dir, const char *name, int flags)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, flags | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		fprintf(stderr, "vss-test-volatile-disk: cannot make %s: %s\n", path,
			strerror(errno));
	return fd;
}

int main(int argc, char **argv)
{
	char *fargv[] = { argv[0], "-f", "-s", "-o", "fsname=vss-test-volatile-disk",
			  argc == 4 ? argv[3] : NULL, NULL };
	char *end;

	if (argc != 4) {
		fprintf(stderr, "usage: vss-test-volatile-disk DIR SIZE MOUNTPOINT\n");
		return 2;
	}
	disk_size = strtoull(argv[2], &end, 10);
	if (*end || disk_size == 0 || disk_size % PAGE) {
		fprintf(stderr, "vss-test-volatile-disk: SIZE must be a positive multiple "
			"of %u bytes, not \"%s\"\n", PAGE, argv[2]);
		return 2;
	}
	if ((live_fd = make(argv[1], "live", O_RDWR)) < 0 ||
	    (durable_fd = make(argv[1], "durable", O_RDWR)) < 0 ||
	    (log_fd = make(argv[1], "fsyncs", O_WRONLY | O_APPEND)) < 0)
		return 1;
	if (ftruncate(live_fd, (off_t)disk_size) < 0 ||
	    ftruncate(durable_fd, (off_t)disk_size) < 0) {
		perror("vss-test-volatile-disk: ftruncate");
		return 1;
	}
	if (!(dirty = calloc(disk_size / PAGE, 1))) {
		perror("vss-test-volatile-disk");
		return 1;
	}
	return fuse_main(6, fargv, &ops, NULL);
}
