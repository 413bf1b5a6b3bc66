/*
 * service/loop.h - loop devices: how a volume or shadow device (a file in
 * the transport's tree) becomes a block device a filesystem can live on.
 * Every loop device vssd makes has autoclear set, so it goes away with the
 * last user (the unmount), and is found again by its backing file.
 */
#ifndef VSS_SERVICE_LOOP_H
#define VSS_SERVICE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <vss/error.h>

#define VSS_LOOP_NAME_MAX 32

/*
 * Attaches @file_fd (the caller's, still open after; @file is its path,
 * recorded as the backing file) to a free loop device (LOOP_CTL_GET_FREE +
 * LOOP_CONFIGURE, 4 KiB logical blocks, direct I/O if @dio and the file
 * allows it, else through the page cache).  On success @dev holds
 * "/dev/loopN" and *@fd an open descriptor on it, which keeps the device
 * alive until the caller has mounted it and closes the descriptor.
 */
int vss_loop_attach(int file_fd, const char *file, bool read_only, bool dio,
		    char dev[VSS_LOOP_NAME_MAX], int *fd, struct vss_error *err);

/*
 * Bounds what the filesystem on the loop device @dev may hold dirty to
 * @bytes, always (its bdi's max_bytes and strict_limit): so that a stopped
 * or slow vssd holds back that much, not the machine's whole dirty limit,
 * which would stall writers to every other device.  With 0, gives the
 * device the kernel's defaults back (loop devices outlive their use, and
 * the next user expects those).  0 or -errno.
 */
int vss_loop_limit_dirty(const char *dev, uint64_t bytes);

/*
 * Switches the loop device @dev to direct I/O (@on) or back through the
 * page cache (LOOP_SET_DIRECT_IO).  Switching on, the kernel first fsyncs
 * the backing file, then waits for the requests in flight; from then on
 * every write is acknowledged only once the backing file's owner (the
 * engine) returned, and nothing new is cached above it.  0 if @dev was
 * switched, 1 if it already was so (nothing done), or -errno.
 */
int vss_loop_set_direct(const char *dev, bool on);

/* Detaches a loop device now (LOOP_CLR_FD); -ENXIO if already free. */
int vss_loop_detach(const char *dev);

/*
 * Calls @fn for every loop device whose backing file lies under @prefix
 * ("/dev/loopN", backing path).  Used to find what a dead vssd left.
 */
/* The file the loop device @dev (/dev/loopN) reads, into @out: 0, or
 * -ENOENT if it has none (detached). */
int vss_loop_backing(const char *dev, char *out, size_t size);
void vss_loop_each_under(const char *prefix,
			 void (*fn)(void *arg, const char *dev, const char *backing),
			 void *arg);

#endif
