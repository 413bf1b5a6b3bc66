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
	/* Sets the file size; 0 or -errno. */
	int (*truncate)(struct vss_file *f, uint64_t size);
	/* Current size in bytes (for a block device, its capacity); 0 or -errno. */
	int (*size)(struct vss_file *f, uint64_t *size);
	/* Bytes the file occupies on its filesystem; 0 or -errno. */
	int (*allocated)(struct vss_file *f, uint64_t *bytes);
	/* Releases the file (no implied sync). */
	void (*close)(struct vss_file *f);
};

/* Every file object starts with this. */
struct vss_file {
	const struct vss_file_ops *ops;
};

#define VSS_VFS_CREATE 0x1   /* create if missing */
#define VSS_VFS_EXCL   0x2   /* with CREATE: fail with -EEXIST if it exists */

/* One read of a batch: @len bytes at @off of @file into @buf. */
struct vss_read {
	struct vss_file *file;
	void *buf;
	size_t len;
	uint64_t off;
};

struct vss_vfs {
	/* Opens @path read-write; on success *@out is owned by the caller. */
	int (*open)(struct vss_vfs *vfs, const char *path, int flags, struct vss_file **out);
	/* Removes @path; 0 or -errno. */
	int (*unlink)(struct vss_vfs *vfs, const char *path);
	/* Optional (NULL: one pread each).  Does the @n reads of @rd, on files
	 * of this vfs, each as pread does, in any order and together: returns
	 * once all are done, 0 or the -errno of one that failed. */
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
static inline int vss_file_truncate(struct vss_file *f, uint64_t s)
{ return f->ops->truncate(f, s); }
static inline int vss_file_size(struct vss_file *f, uint64_t *s) { return f->ops->size(f, s); }
static inline int vss_file_allocated(struct vss_file *f, uint64_t *b)
{ return f->ops->allocated(f, b); }
static inline void vss_file_close(struct vss_file *f) { if (f) f->ops->close(f); }

/* Many reads at once (vss_vfs.read_batch), or one after the other. */
static inline int vss_vfs_read_batch(struct vss_vfs *vfs, const struct vss_read *rd, size_t n)
{
	if (vfs->read_batch)
		return vfs->read_batch(vfs, rd, n);
	for (size_t i = 0; i < n; i++) {
		int r = vss_file_pread(rd[i].file, rd[i].buf, rd[i].len, rd[i].off);
		if (r)
			return r;
	}
	return 0;
}

#endif
