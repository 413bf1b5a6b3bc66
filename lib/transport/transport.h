/*
 * transport/transport.h - how devices are exposed to the rest of the system:
 * a tree with volumes/NAME (read-write) and shadows/ID (read-only) under one
 * root directory.  The service only talks to a struct vss_transport; FUSE
 * (transport/fuse.c) is today's implementation, another (ublk, NBD) could
 * replace it behind the same operations.
 *
 * A device is served through struct vss_device_ops, called from the
 * transport's own threads, any number at once.  The transport never calls
 * into the service otherwise, so the service may hold its locks while it
 * opens, reads or writes the devices it exposes.
 */
#ifndef VSS_TRANSPORT_TRANSPORT_H
#define VSS_TRANSPORT_TRANSPORT_H

#include <stdint.h>
#include <sys/types.h>

#include <vss/error.h>

enum vss_device_kind {
	VSS_DEVICE_VOLUME = 0,  /* ROOT/volumes/NAME, read-write */
	VSS_DEVICE_SHADOW = 1,  /* ROOT/shadows/NAME, read-only */
};

struct vss_device_ops {
	/* Reads up to @len bytes at @off: the count (short only at the end), or -errno. */
	ssize_t (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	/* Writes @len bytes at @off: the count, or -errno.  NULL for read-only devices. */
	ssize_t (*write)(void *ctx, const void *buf, size_t len, uint64_t off);
	/* Makes every acknowledged write durable: 0 or -errno.  May be NULL. */
	int (*flush)(void *ctx);
	/* Called once, after removal, when no operation runs and no handle is open. */
	void (*release)(void *ctx);
};

struct vss_transport;

struct vss_transport_ops {
	const char *name;
	/* Starts serving an empty tree at @root (created if missing). */
	int (*start)(struct vss_transport *t, const char *root, struct vss_error *err);
	/* Adds a device of @size bytes; -EEXIST if the name is taken.  @ctx is
	 * the device's until release() is called. */
	int (*add)(struct vss_transport *t, enum vss_device_kind kind,
		   const char *name, uint64_t size, const struct vss_device_ops *ops,
		   void *ctx, struct vss_error *err);
	/* Removes a device from the tree: new opens fail, open handles get
	 * -ENODEV; release() follows once it is idle.  -ENOENT if unknown. */
	int (*remove)(struct vss_transport *t, enum vss_device_kind kind,
		      const char *name);
	/* Opens @path, a device file in this tree, with open(2) @flags, for a
	 * loop device to sit on: through the kernel's page cache (for a volume
	 * the FUSE writeback cache), unlike every other open, which is direct.
	 * The descriptor (*@fd) is the caller's.  0 or -errno. */
	int (*open_cached)(struct vss_transport *t, const char *path, int flags, int *fd);
	/* Bounds what the tree may hold dirty in the page cache to @bytes, or to
	 * its usual bound with 0 (what vssd sets at start; a set does not lower
	 * it, doc/service.md "Freeze time").  0 or -errno.  May be NULL. */
	int (*limit_dirty)(struct vss_transport *t, uint64_t bytes);
	/* Open handles of a device now (0 if unknown). */
	unsigned int (*open_count)(struct vss_transport *t, enum vss_device_kind kind,
				   const char *name);
	/* Removes every device, stops serving, and frees @t. */
	void (*stop)(struct vss_transport *t);
};

/* Every transport object starts with this. */
struct vss_transport {
	const struct vss_transport_ops *ops;
};

/* FUSE, low-level API, multi-threaded.  Returns NULL on out of memory. */
struct vss_transport *vss_transport_fuse_new(void);

#endif
