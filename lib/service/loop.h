/*
 * service/loop.h - loop devices: how a volume or shadow device (a file in
 * the transport's tree) becomes a block device a filesystem can live on.
 * Every loop device vssd makes has autoclear set, so it goes away with the
 * last user (the unmount), and is found again by its backing file.
 */
#ifndef VSS_SERVICE_LOOP_H
#define VSS_SERVICE_LOOP_H

#include <stdbool.h>

#include <vss/error.h>

#define VSS_LOOP_NAME_MAX 32

/*
 * Attaches @file to a free loop device (LOOP_CTL_GET_FREE + LOOP_CONFIGURE,
 * 4 KiB logical blocks, direct I/O when the file allows it).  On success
 * @dev holds "/dev/loopN" and *@fd an open descriptor on it, which keeps the
 * device alive until the caller has mounted it and closes the descriptor.
 */
int vss_loop_attach(const char *file, bool read_only, char dev[VSS_LOOP_NAME_MAX],
		    int *fd, struct vss_error *err);

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
