/*
 * io/vfs.h - file access behind a struct of operations (SQLite's sqlite3_vfs).
 *
 * The engine and the diff-area store reach the origin and the diff area only
 * through this, so that tests can substitute a file that simulates a crash
 * (dropping or tearing writes that were never synced) or injects EIO/ENOSPC.
 * Production uses vss_vfs_posix().
 */
#ifndef VSS_IO_VFS_H
#define VSS_IO_VFS_H

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct vss_file;

struct vss_file_ops {
	/* Reads exactly @len bytes at @off (zeros past the end); 0 or -errno. */
	int (*pread)(struct vss_file *f, void *buf, size_t len, uint64_t off);
	/* Writes exactly @len bytes at @off, growing the file if needed; 0 or -errno. */
	int (*pwrite)(struct vss_file *f, const void *buf, size_t len, uint64_t off);
	/* Makes every completed write durable (fdatasync); 0 or -errno. */
	int (*sync)(struct vss_file *f);
	/* Deallocates [@off, @off+@len) so it reads as zeros; 0 or -errno (-EOPNOTSUPP is harmless). */
	int (*punch)(struct vss_file *f, uint64_t off, uint64_t len);
	/* Optional (NULL: nothing reserved).  Allocates [@off, @off+@len) on
	 * the filesystem without changing what the file reads or its size
	 * (fallocate with KEEP_SIZE), so that writes there later do not fail
	 * for want of space: 0, -ENOSPC, or -errno (-EOPNOTSUPP: the
	 * filesystem cannot; writes may then meet ENOSPC as usual). */
	int (*reserve)(struct vss_file *f, uint64_t off, uint64_t len);
	/* Optional (NULL: no hint).  Starts reading [@off, @off+@len) into the
	 * page cache without waiting for it (POSIX_FADV_WILLNEED): a hint. */
	void (*willneed)(struct vss_file *f, uint64_t off, uint64_t len);
	/* Sets the file size; 0 or -errno. */
	int (*truncate)(struct vss_file *f, uint64_t size);
	/* Current size in bytes (for a block device, its capacity); 0 or -errno. */
	int (*size)(struct vss_file *f, uint64_t *size);
	/* Bytes the file occupies on its filesystem; 0 or -errno. */
	int (*allocated)(struct vss_file *f, uint64_t *bytes);
	/* Releases the file (no implied sync). */
	void (*close)(struct vss_file *f);
	/* Optional (NULL: unknown).  The device and inode of the open file
	 * (fstat), so that a caller can tell whether a path still leads to
	 * it; 0 or -errno. */
	int (*ident)(struct vss_file *f, uint64_t *dev, uint64_t *ino);
};

/* Every file object starts with this. */
struct vss_file {
	const struct vss_file_ops *ops;
};

#define VSS_VFS_CREATE 0x1   /* create if missing */
#define VSS_VFS_EXCL   0x2   /* with CREATE: fail with -EEXIST if it exists */

/*
 * One read of a batch: @len bytes at @off of @file into @buf.  Vectored
 * when @iovcnt > 0 (at most VSS_READ_IOV_MAX): the @len bytes go to the
 * buffers of @iov in turn, as preadv() puts them (@buf unused; the @iov
 * lengths add up to @len).  With @probe set, the batch also tells whether
 * the read found its bytes in the page cache (see read_batch).
 */
struct vss_read {
	struct vss_file *file;
	void *buf;
	size_t len;
	uint64_t off;
	const struct iovec *iov;
	int iovcnt;
	int probe;
};

#define VSS_READ_IOV_MAX 1024   /* IOV_MAX on Linux */

/* The buffer of the byte @at of a vectored read, with the bytes of it left
 * from there; for the generic piecewise fallbacks. */
static inline void *vss_read_iov_at(const struct vss_read *rd, size_t at, size_t *left)
{
	for (int i = 0; i < rd->iovcnt; i++) {
		if (at < rd->iov[i].iov_len) {
			*left = rd->iov[i].iov_len - at;
			return (char *)rd->iov[i].iov_base + at;
		}
		at -= rd->iov[i].iov_len;
	}
	*left = 0;
	return NULL;
}

struct vss_vfs {
	/* Opens @path read-write; on success *@out is owned by the caller. */
	int (*open)(struct vss_vfs *vfs, const char *path, int flags, struct vss_file **out);
	/* Removes @path; 0 or -errno. */
	int (*unlink)(struct vss_vfs *vfs, const char *path);
	/* Optional (NULL: one pread each).  Does the @n reads of @rd, on files
	 * of this vfs, each as pread does, in any order and together: returns
	 * once all are done, the -errno of one that failed, or how many of
	 * the reads marked @probe had to wait for the disk (0 when it cannot
	 * tell): those were read all the same. */
	int (*read_batch)(struct vss_vfs *vfs, const struct vss_read *rd, size_t n);
};

/* The real one: pread/pwrite/fdatasync/fallocate on file descriptors, read
 * batches through io_uring (io/uring.h). */
struct vss_vfs *vss_vfs_posix(void);

static inline int vss_file_pread(struct vss_file *f, void *b, size_t n, uint64_t o)
{ return f->ops->pread(f, b, n, o); }
static inline int vss_file_pwrite(struct vss_file *f, const void *b, size_t n, uint64_t o)
{ return f->ops->pwrite(f, b, n, o); }
static inline int vss_file_sync(struct vss_file *f) { return f->ops->sync(f); }
static inline int vss_file_punch(struct vss_file *f, uint64_t o, uint64_t n)
{ return f->ops->punch(f, o, n); }
static inline int vss_file_reserve(struct vss_file *f, uint64_t o, uint64_t n)
{ return f->ops->reserve ? f->ops->reserve(f, o, n) : -EOPNOTSUPP; }
static inline void vss_file_willneed(struct vss_file *f, uint64_t o, uint64_t n)
{ if (f->ops->willneed) f->ops->willneed(f, o, n); }
static inline int vss_file_truncate(struct vss_file *f, uint64_t s)
{ return f->ops->truncate(f, s); }
static inline int vss_file_size(struct vss_file *f, uint64_t *s) { return f->ops->size(f, s); }
static inline int vss_file_allocated(struct vss_file *f, uint64_t *b)
{ return f->ops->allocated(f, b); }
static inline void vss_file_close(struct vss_file *f) { if (f) f->ops->close(f); }
static inline int vss_file_ident(struct vss_file *f, uint64_t *dev, uint64_t *ino)
{ return f->ops->ident ? f->ops->ident(f, dev, ino) : -EOPNOTSUPP; }

/* The bytes of one read of a batch from its byte @got on, by the file's
 * pread: a vectored read a piece at a time. */
static inline int vss_read_rest(const struct vss_read *rd, size_t got)
{
	size_t left;
	void *p;

	if (rd->iovcnt <= 0)
		return vss_file_pread(rd->file, (char *)rd->buf + got, rd->len - got, rd->off + got);
	if (rd->iovcnt > VSS_READ_IOV_MAX)
		return -EINVAL;
	while (got < rd->len && (p = vss_read_iov_at(rd, got, &left))) {
		int r = vss_file_pread(rd->file, p, left, rd->off + got);
		if (r)
			return r;
		got += left;
	}
	return 0;
}

/* Many reads at once (vss_vfs.read_batch), or one after the other: 0 or
 * more (probes that missed the page cache) when all are done, or -errno.
 * A vectored read of more than VSS_READ_IOV_MAX pieces is refused, -EINVAL. */
static inline int vss_vfs_read_batch(struct vss_vfs *vfs, const struct vss_read *rd, size_t n)
{
	if (vfs->read_batch)
		return vfs->read_batch(vfs, rd, n);
	for (size_t i = 0; i < n; i++) {
		int r = vss_read_rest(&rd[i], 0);
		if (r)
			return r;
	}
	return 0;
}

#endif
