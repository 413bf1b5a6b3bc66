/*
 * io/uring.h - many reads in one system call, through io_uring (liburing).
 * The posix vfs batches a shadow read's pieces with it
 * (vss_vfs_read_batch() in io/vfs.h).  Not installed.
 */
#ifndef VSS_IO_URING_H
#define VSS_IO_URING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Reads at most this many at once (one system call); longer batches go in
 * turns. */
#define VSS_URING_ENTRIES 128u

/* One read: @len bytes at @off of @fd into @buf; or, when @iovcnt > 0,
 * into the @iovcnt buffers of @iov as preadv() would (@len, @buf unused).
 * With @nowait, only from the page cache (RWF_NOWAIT): -EAGAIN if it would
 * wait for the disk.  vss_uring_read() sets @res to the bytes read (fewer
 * at the end of the file) or to a negative errno; a read it did not do
 * keeps -ECANCELED. */
struct vss_uring_read {
	int fd;
	uint32_t len;
	void *buf;
	uint64_t off;
	const struct iovec *iov;
	unsigned int iovcnt;
	int nowait;
	int32_t res;
};

/*
 * Does the reads of @rd in one system call and returns once every one of
 * them is finished: 0, or a negative errno if io_uring cannot be used now
 * (-ENOSYS: not at all, from now on).  Either way each @res says what
 * became of its read; the caller reads whatever is not complete by other
 * means.  More than VSS_URING_ENTRIES: -EINVAL, and @rd is not touched.
 * Thread-safe.
 */
int vss_uring_read(struct vss_uring_read *rd, unsigned int n);

/* Rings are kept for reuse while somebody holds them: the posix vfs, for
 * as long as it has files open.  The last release closes them. */
void vss_uring_hold(void);
void vss_uring_release(void);

/* Tests: 0 makes vss_uring_read() answer -ENOSYS, 1 restores it. */
void vss_uring_enable(int on);

#endif
