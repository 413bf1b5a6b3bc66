/*
 * io/vfs_posix.c - the production vss_vfs: plain file descriptors, with
 * pread/pwrite loops, fdatasync, hole punching through fallocate(), and
 * read batches in one system call through io_uring (io/uring.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/uring.h"
#include "io/vfs.h"

/*
 * A sync with nothing written since the last one that succeeded returns at
 * once, without an fdatasync: a freeze flushes the filesystem's device ten
 * or so times (journal commit, checkpoint, superblock), a few of them with
 * nothing new for the origin, and each fdatasync costs the host a cache
 * flush of its disk (doc/service.md, "Freeze time").  @written counts every
 * call that may change the file, once it is done and before it returns to
 * its caller; a sync reads it before its fdatasync begins and, once that
 * succeeded, records it in @synced: every call counted then was done
 * before the fdatasync began, so it is durable, and one still in flight is
 * counted after, so the next sync does not skip it.  Every change of a
 * file goes through its one vss_file (the engine opens each of its files
 * once); a file just opened counts as changed (a vssd killed before its
 * flush may have left dirty pages of it).
 */
struct posix_file {
	struct vss_file base;
	int fd;
	atomic_uint_least64_t written;  /* calls that may have changed the file */
	atomic_uint_least64_t synced;   /* @written as the last good sync began */
	int is_blk;
};

#define PF(f) ((struct posix_file *)(f))

static int posix_pread(struct vss_file *f, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = pread(PF(f)->fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {           /* past the end: reads as zeros */
			for (size_t i = 0; i < len; i++)
				p[i] = 0;
			return 0;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* Something may have changed the file: the next sync must reach the disk. */
static void changed(struct vss_file *f)
{
	atomic_fetch_add_explicit(&PF(f)->written, 1, memory_order_release);
}

/*
 * No pwrite crosses a multiple of PIECE: the host's page cache makes a
 * folio as large as the write that creates it (up to the write's
 * alignment), and on ext4 every later small write into a folio walks all
 * of the folio's buffer heads (write_begin, commit, write-back).  The
 * origin gets 1 MiB writes (a mounted volume's write-back, a layout, a
 * restore) and then random 4 KiB ones: measured on the test VM (Linux
 * 6.18, ext4; doc/service.md, "The write path and caching"), a random
 * 4 KiB pwrite costs 28-31 us of CPU into 1 MiB folios, 10-12 into 256 KiB
 * ones, 6-7 into 64 KiB ones, while rewriting in 256 KiB pieces costs as
 * much CPU per MiB as in 1 MiB ones (88-95 us) and 64 KiB pieces 140-161.
 */
#define PIECE (256u << 10)

static int posix_pwrite(struct vss_file *f, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	int r = 0;

	while (len) {
		size_t want = PIECE - (size_t)(off & (PIECE - 1));
		ssize_t n = pwrite(PF(f)->fd, p, len < want ? len : want, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0) {
			r = -ENOSPC;
			break;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	changed(f);
	return r;
}

static int posix_sync(struct vss_file *f)
{
	uint64_t gen = atomic_load_explicit(&PF(f)->written, memory_order_acquire);
	uint64_t done = atomic_load_explicit(&PF(f)->synced, memory_order_acquire);

	if (gen == done)
		return 0;
	if (fdatasync(PF(f)->fd) < 0)
		return -errno;
	/* Syncs may end out of order: keep the newest count. */
	while (done < gen && !atomic_compare_exchange_weak_explicit(&PF(f)->synced, &done, gen,
								    memory_order_release,
								    memory_order_acquire))
		;
	return 0;
}

static int posix_punch(struct vss_file *f, uint64_t off, uint64_t len)
{
	int r;

	if (PF(f)->is_blk)
		return -EOPNOTSUPP;
	r = fallocate(PF(f)->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) < 0 ? -errno : 0;
	changed(f);
	return r;
}

static int posix_reserve(struct vss_file *f, uint64_t off, uint64_t len)
{
	int r;

	if (PF(f)->is_blk)
		return 0;       /* a device's blocks are all there */
	r = fallocate(PF(f)->fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0 ? -errno : 0;
	changed(f);
	return r;
}

static int posix_truncate(struct vss_file *f, uint64_t size)
{
	int r;

	if (PF(f)->is_blk)
		return -EOPNOTSUPP;
	r = ftruncate(PF(f)->fd, (off_t)size) < 0 ? -errno : 0;
	changed(f);
	return r;
}

static int posix_size(struct vss_file *f, uint64_t *size)
{
	struct stat st;

	if (PF(f)->is_blk)
		return ioctl(PF(f)->fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	if (fstat(PF(f)->fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int posix_allocated(struct vss_file *f, uint64_t *bytes)
{
	struct stat st;

	if (fstat(PF(f)->fd, &st) < 0)
		return -errno;
	*bytes = PF(f)->is_blk ? 0 : (uint64_t)st.st_blocks * 512u;
	return 0;
}

static void posix_close(struct vss_file *f)
{
	close(PF(f)->fd);
	free(f);
	vss_uring_release();
}

static void posix_willneed(struct vss_file *f, uint64_t off, uint64_t len)
{
	(void)posix_fadvise(PF(f)->fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
}

static int posix_ident(struct vss_file *f, uint64_t *dev, uint64_t *ino)
{
	struct stat st;

	if (fstat(PF(f)->fd, &st) < 0)
		return -errno;
	*dev = (uint64_t)st.st_dev;
	*ino = (uint64_t)st.st_ino;
	return 0;
}

static const struct vss_file_ops posix_file_ops = {
	.pread = posix_pread,
	.pwrite = posix_pwrite,
	.sync = posix_sync,
	.punch = posix_punch,
	.reserve = posix_reserve,
	.willneed = posix_willneed,
	.truncate = posix_truncate,
	.size = posix_size,
	.allocated = posix_allocated,
	.close = posix_close,
	.ident = posix_ident,
};

static int posix_open(struct vss_vfs *vfs, const char *path, int flags,
		      struct vss_file **out)
{
	int oflags = O_RDWR | O_CLOEXEC;
	struct posix_file *pf;
	struct stat st;
	int fd;

	if (flags & VSS_VFS_CREATE)
		oflags |= O_CREAT;
	if (flags & VSS_VFS_EXCL)
		oflags |= O_EXCL;
	fd = open(path, oflags, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	pf = calloc(1, sizeof(*pf));
	if (!pf) {
		close(fd);
		return -ENOMEM;
	}
	pf->base.ops = &posix_file_ops;
	pf->fd = fd;
	/* What was written before this open may not be durable yet (a vssd
	 * killed before its flush): the first sync always reaches the disk. */
	atomic_init(&pf->written, 1);
	atomic_init(&pf->synced, 0);
	pf->is_blk = S_ISBLK(st.st_mode);
	vss_uring_hold();       /* rings are kept while files are open */
	*out = &pf->base;
	return 0;
}

static int posix_unlink(struct vss_vfs *vfs, const char *path)
{
	return unlink(path) < 0 ? -errno : 0;
}

/* A vectored read alone: preadv, the rest of a short one piecewise. */
static int posix_readv(const struct vss_read *rd)
{
	ssize_t n;

	do
		n = preadv(PF(rd->file)->fd, rd->iov, rd->iovcnt, (off_t)rd->off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n >= rd->len ? 0 : vss_read_rest(rd, (size_t)n);
}

/*
 * One turn of at most VSS_URING_ENTRIES reads through io_uring: probes go
 * first with RWF_NOWAIT, and those the page cache could not serve (counted
 * in *@misses) go again at once in a second submission, together.
 * Whatever io_uring leaves undone (a short read at the end of a file, an
 * error) is read again with pread, which has the last word on errors.
 * -ENOSYS: io_uring cannot be used, nothing was read.
 */
static int uring_turn(const struct vss_read *rd, unsigned int k, int *misses)
{
	struct vss_uring_read ur[VSS_URING_ENTRIES], again[VSS_URING_ENTRIES];
	unsigned int which[VSS_URING_ENTRIES], n = 0;

	for (unsigned int i = 0; i < k; i++) {
		/* One read is at most 1 GiB: the ring's lengths are 32 bits. */
		size_t len = rd[i].len < (1u << 30) ? rd[i].len : (1u << 30);
		ur[i] = (struct vss_uring_read){ .fd = PF(rd[i].file)->fd,
			.len = (uint32_t)len, .buf = rd[i].buf, .off = rd[i].off,
			.iov = rd[i].iov, .nowait = rd[i].probe,
			.iovcnt = rd[i].iovcnt > 0 ? (unsigned int)rd[i].iovcnt : 0 };
	}
	if (vss_uring_read(ur, k) == -ENOSYS)
		return -ENOSYS;
	for (unsigned int i = 0; i < k; i++)
		if (rd[i].probe && ur[i].res == -EAGAIN) {
			again[n] = ur[i];
			again[n].nowait = 0;
			which[n++] = i;
		}
	*misses += (int)n;
	if (n && vss_uring_read(again, n) != -ENOSYS)
		for (unsigned int j = 0; j < n; j++)
			ur[which[j]].res = again[j].res;
	for (unsigned int i = 0; i < k; i++) {
		size_t got = ur[i].res > 0 ? (size_t)ur[i].res : 0;
		int r;

		if (got >= rd[i].len)
			continue;
		r = vss_read_rest(&rd[i], got);
		if (r)
			return r;
	}
	return 0;
}

/* In turns of VSS_URING_ENTRIES, one system call each (two when probes
 * miss the page cache); without io_uring, one pread or preadv each (and
 * no probe is answered). */
static int posix_read_batch(struct vss_vfs *vfs, const struct vss_read *rd, size_t n)
{
	int misses = 0;

	for (size_t i = 0; i < n; i++)
		if (rd[i].iovcnt > VSS_READ_IOV_MAX)
			return -EINVAL;
	while (n > 1) {
		unsigned int k = n < VSS_URING_ENTRIES ? (unsigned int)n : VSS_URING_ENTRIES;
		int r = uring_turn(rd, k, &misses);

		if (r == -ENOSYS)
			break;
		if (r)
			return r;
		rd += k;
		n -= k;
	}
	for (size_t i = 0; i < n; i++) {
		int r = rd[i].iovcnt > 0 ? posix_readv(&rd[i]) : posix_pread(rd[i].file, rd[i].buf,
									      rd[i].len, rd[i].off);
		if (r)
			return r;
	}
	return misses;
}

static struct vss_vfs posix_vfs = {
	.open = posix_open,
	.unlink = posix_unlink,
	.read_batch = posix_read_batch,
};

struct vss_vfs *vss_vfs_posix(void)
{
	return &posix_vfs;
}
