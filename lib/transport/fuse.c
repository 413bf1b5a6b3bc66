/*
 * transport/fuse.c - the device tree served through FUSE (low-level API,
 * multi-threaded).  Inodes: 1 the root, 2 "volumes", 3 "shadows", then one
 * per device, never reused while the daemon runs.
 *
 * Caching (doc/service.md, "The write path and caching"): the mount has the
 * FUSE writeback cache, and a device file has two kinds of opens.
 *  - Cached: the open a loop device sits on, made by vssd itself through
 *    ft_open_cached() (the opener's thread is what tells it apart).  It goes
 *    through the page cache: a write is acknowledged once it is a dirty
 *    page, the kernel writes dirty pages back in large requests, and a
 *    flush of the loop device (what a filesystem's flush, sync or FIFREEZE
 *    becomes) fsyncs the file: the kernel writes every dirty page back and
 *    only then sends FSYNC, which calls the device's flush().  keep_cache
 *    is off, so each such open starts with an empty cache: nothing read
 *    before a revert or a restore of the origin survives into the next
 *    mount.
 *  - Direct: every other open (a raw volume's users, vss itself, tools) is
 *    direct_io, as before: a write is acknowledged only after the device's
 *    write() returned, so a shadow of a raw volume holds every write that
 *    returned before it was asked for.
 * The FUSE bdi's dirty pages are bounded (ft_limit_dirty), so that a slow
 * or stopped diff area holds at most that much above the engine and the
 * kernel's dirty-page throttling of other devices is not dragged in; its
 * readahead is MAX_WRITE, so a cached read reaches a device in requests
 * as large as a write's.
 *
 * Locking: t->lock protects the node list and every node's nlookup, opens
 * and removed fields.  Reads and writes on an open handle take no lock: the
 * handle holds the node (opens > 0), so its ops and ctx stay valid.
 * t->cached_lock serializes cached opens; t->cached_tid is the thread making
 * one (0: none), read without the lock by op_open.
 */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "transport/transport.h"

#define INO_ROOT    1
#define INO_VOLUMES 2
#define INO_SHADOWS 3
#define INO_FIRST   16

#define ATTR_TIMEOUT 3600.0   /* a device's attributes never change */
#define MAX_WRITE    (1u << 20)
/*
 * The most the device tree may hold dirty in the page cache, all devices
 * together (they share the mount's bdi): what a flush, and so a freeze,
 * may have to write back.  doc/service.md has the measurements.
 */
#define DIRTY_MAX_BYTES (1ull << 30)
/* Where that is more than the machine's own dirty limit: a share of it. */
#define DIRTY_MAX_RATIO 25

struct fnode {
	struct fnode *next;
	fuse_ino_t ino;
	enum vss_device_kind kind;
	char *name;
	uint64_t size;
	const struct vss_device_ops *ops;
	void *ctx;
	uint64_t nlookup;       /* the kernel's references (lookup - forget) */
	unsigned int opens;     /* open handles */
	_Atomic bool removed;   /* out of the tree; ctx released once opens == 0.  Set
				 * under lock, read without it on the I/O path */
	bool released;
	struct timespec ctime;
};

struct fuse_transport {
	struct vss_transport base;
	pthread_mutex_t lock;
	struct fnode *nodes;            /* newest first */
	fuse_ino_t next_ino;
	struct fuse_session *se;
	pthread_t loop_thread;
	bool loop_running;
	pthread_mutex_t done_lock;      /* guards loop_done, for the timed join */
	pthread_cond_t done_cond;
	bool loop_done;
	char *root;
	struct timespec start;
	dev_t dev;                      /* the mount's, for its bdi; 0 until known */
	pthread_mutex_t cached_lock;
	_Atomic pid_t cached_tid;       /* the thread in ft_open_cached(), or 0 */
};

static struct fuse_transport *ft_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fnode *find_ino(struct fuse_transport *t, fuse_ino_t ino)
{
	for (struct fnode *n = t->nodes; n; n = n->next)
		if (n->ino == ino)
			return n;
	return NULL;
}

static struct fnode *find_name(struct fuse_transport *t, enum vss_device_kind kind,
			       const char *name)
{
	for (struct fnode *n = t->nodes; n; n = n->next)
		if (!n->removed && n->kind == kind && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

/*
 * Called with t->lock held after a node lost a reference.  Returns the ctx
 * release to run after unlocking (ops->release must not run under our lock:
 * it may close an engine handle).  Frees the node when nothing refers to it.
 */
static bool node_settle(struct fuse_transport *t, struct fnode *n,
			const struct vss_device_ops **rel_ops, void **rel_ctx)
{
	*rel_ops = NULL;
	*rel_ctx = NULL;
	if (!n->removed || n->opens > 0)
		return false;
	if (!n->released) {
		n->released = true;
		*rel_ops = n->ops;
		*rel_ctx = n->ctx;
	}
	if (n->nlookup == 0) {
		for (struct fnode **pp = &t->nodes; *pp; pp = &(*pp)->next)
			if (*pp == n) {
				*pp = n->next;
				break;
			}
		free(n->name);
		free(n);
		return true;
	}
	return false;
}

static void run_release(const struct vss_device_ops *ops, void *ctx)
{
	if (ops && ops->release)
		ops->release(ctx);
}

static void dir_attr(fuse_ino_t ino, struct fuse_transport *t, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_atim = st->st_mtim = st->st_ctim = t->start;
}

static void node_attr(const struct fnode *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	/* Only root may read the devices; shadows are never writable. */
	st->st_mode = S_IFREG | (n->kind == VSS_DEVICE_VOLUME ? 0600 : 0400);
	st->st_nlink = n->removed ? 0 : 1;
	st->st_size = (off_t)n->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
	st->st_atim = st->st_mtim = st->st_ctim = n->ctime;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* See the comment at the top: only cached opens use it. */
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE)
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->max_write = MAX_WRITE;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_transport *t = ft_of(req);
	struct fuse_entry_param e;
	struct fnode *n;

	memset(&e, 0, sizeof(e));
	e.attr_timeout = ATTR_TIMEOUT;
	e.entry_timeout = 0;    /* devices come and go: always ask */
	if (parent == INO_ROOT) {
		if (strcmp(name, "volumes") == 0)
			e.ino = INO_VOLUMES;
		else if (strcmp(name, "shadows") == 0)
			e.ino = INO_SHADOWS;
		else {
			fuse_reply_err(req, ENOENT);
			return;
		}
		e.entry_timeout = ATTR_TIMEOUT;
		dir_attr(e.ino, t, &e.attr);
		fuse_reply_entry(req, &e);
		return;
	}
	if (parent != INO_VOLUMES && parent != INO_SHADOWS) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	pthread_mutex_lock(&t->lock);
	n = find_name(t, parent == INO_VOLUMES ? VSS_DEVICE_VOLUME : VSS_DEVICE_SHADOW, name);
	if (n) {
		n->nlookup++;
		e.ino = n->ino;
		node_attr(n, &e.attr);
	}
	pthread_mutex_unlock(&t->lock);
	if (!n)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_entry(req, &e);
}

static void forget_one(struct fuse_transport *t, fuse_ino_t ino, uint64_t nlookup)
{
	const struct vss_device_ops *ops;
	void *ctx;
	struct fnode *n;

	if (ino < INO_FIRST)
		return;
	pthread_mutex_lock(&t->lock);
	n = find_ino(t, ino);
	if (n) {
		n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
		node_settle(t, n, &ops, &ctx);
	} else {
		ops = NULL;
		ctx = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	run_release(ops, ctx);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(ft_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		forget_one(ft_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fuse_transport *t = ft_of(req);
	struct stat st;
	struct fnode *n;

	if (ino == INO_ROOT || ino == INO_VOLUMES || ino == INO_SHADOWS) {
		dir_attr(ino, t, &st);
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
		return;
	}
	pthread_mutex_lock(&t->lock);
	n = find_ino(t, ino);
	if (n)
		node_attr(n, &st);
	pthread_mutex_unlock(&t->lock);
	if (!n)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

/*
 * Sizes are fixed, like a disk's: a truncate (dd without conv=notrunc, an
 * O_TRUNC open) is answered with the unchanged attributes, as ftruncate on
 * a block device is a no-op for the tools that use it.
 */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	op_getattr(req, ino, fi);
}

struct dirlist {
	size_t count;
	struct { fuse_ino_t ino; mode_t mode; char *name; } e[];
};

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fuse_transport *t = ft_of(req);
	struct dirlist *dl;
	size_t cap = 2, i = 0;

	if (ino != INO_ROOT && ino != INO_VOLUMES && ino != INO_SHADOWS) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	pthread_mutex_lock(&t->lock);
	for (struct fnode *n = t->nodes; n; n = n->next)
		cap++;
	dl = calloc(1, sizeof(*dl) + cap * sizeof(dl->e[0]));
	if (!dl) {
		pthread_mutex_unlock(&t->lock);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (ino == INO_ROOT) {
		dl->e[i].ino = INO_VOLUMES;
		dl->e[i].mode = S_IFDIR;
		dl->e[i++].name = strdup("volumes");
		dl->e[i].ino = INO_SHADOWS;
		dl->e[i].mode = S_IFDIR;
		dl->e[i++].name = strdup("shadows");
	} else {
		enum vss_device_kind kind = ino == INO_VOLUMES ? VSS_DEVICE_VOLUME
							       : VSS_DEVICE_SHADOW;

		for (struct fnode *n = t->nodes; n; n = n->next) {
			if (n->removed || n->kind != kind)
				continue;
			dl->e[i].ino = n->ino;
			dl->e[i].mode = S_IFREG;
			dl->e[i++].name = strdup(n->name);
		}
	}
	dl->count = i;
	pthread_mutex_unlock(&t->lock);
	fi->fh = (uintptr_t)dl;
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dirlist *dl = (struct dirlist *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Entry k (k = 0, 1 "." and ".."; then the list) has offset k + 1. */
	for (size_t k = (size_t)off; k < dl->count + 2; k++) {
		struct stat st = { 0 };
		const char *name;
		size_t len;

		if (k == 0) {
			name = ".";
			st.st_ino = ino;
			st.st_mode = S_IFDIR;
		} else if (k == 1) {
			name = "..";
			st.st_ino = INO_ROOT;
			st.st_mode = S_IFDIR;
		} else {
			name = dl->e[k - 2].name;
			st.st_ino = dl->e[k - 2].ino;
			st.st_mode = dl->e[k - 2].mode;
			if (!name)
				continue;
		}
		len = fuse_add_direntry(req, buf + used, size - used, name, &st,
					(off_t)k + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirlist *dl = (struct dirlist *)(uintptr_t)fi->fh;

	for (size_t i = 0; i < dl->count; i++)
		free(dl->e[i].name);
	free(dl);
	fuse_reply_err(req, 0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fuse_transport *t = ft_of(req);
	pid_t tid = atomic_load(&t->cached_tid);
	struct fnode *n;
	bool cached;
	int err = 0;

	if (ino < INO_FIRST) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	pthread_mutex_lock(&t->lock);
	n = find_ino(t, ino);
	if (!n || n->removed)
		err = ENOENT;
	else if (n->kind == VSS_DEVICE_SHADOW && (fi->flags & O_ACCMODE) != O_RDONLY)
		err = EROFS;    /* root passes the mode bits: refuse here */
	else
		n->opens++;
	pthread_mutex_unlock(&t->lock);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)n;
	cached = tid != 0 && fuse_req_ctx(req)->pid == tid;
	fi->direct_io = !cached;
	fi->keep_cache = 0;     /* a cached open starts clean (the top) */
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* The opener was interrupted: the kernel will send no release. */
		const struct vss_device_ops *ops;
		void *ctx;

		pthread_mutex_lock(&t->lock);
		n->opens--;
		node_settle(t, n, &ops, &ctx);
		pthread_mutex_unlock(&t->lock);
		run_release(ops, ctx);
	}
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fuse_transport *t = ft_of(req);
	struct fnode *n = (struct fnode *)(uintptr_t)fi->fh;
	const struct vss_device_ops *ops;
	void *ctx;

	pthread_mutex_lock(&t->lock);
	n->opens--;
	node_settle(t, n, &ops, &ctx);
	pthread_mutex_unlock(&t->lock);
	run_release(ops, ctx);
	fuse_reply_err(req, 0);
}

static bool is_removed(struct fnode *n)
{
	return atomic_load_explicit(&n->removed, memory_order_acquire);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fnode *n = (struct fnode *)(uintptr_t)fi->fh;
	char *buf;
	ssize_t got;

	if (is_removed(n)) {
		fuse_reply_err(req, ENODEV);
		return;
	}
	if (off < 0 || (uint64_t)off >= n->size || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > n->size - (uint64_t)off)
		size = (size_t)(n->size - (uint64_t)off);
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	got = n->ops->read(n->ctx, buf, size, (uint64_t)off);
	if (got < 0)
		fuse_reply_err(req, (int)-got);
	else
		fuse_reply_buf(req, buf, (size_t)got);
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct fnode *n = (struct fnode *)(uintptr_t)fi->fh;
	ssize_t done;

	if (is_removed(n)) {
		fuse_reply_err(req, ENODEV);
		return;
	}
	if (!n->ops->write) {
		fuse_reply_err(req, EROFS);
		return;
	}
	/* Past the end of a disk there is no room, as for a block device. */
	if (off < 0 || (size > 0 && (uint64_t)off >= n->size)) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	if (size > n->size - (uint64_t)off)
		size = (size_t)(n->size - (uint64_t)off);
	done = n->ops->write(n->ctx, buf, size, (uint64_t)off);
	if (done < 0)
		fuse_reply_err(req, (int)-done);
	else
		fuse_reply_write(req, (size_t)done);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct fnode *n = (struct fnode *)(uintptr_t)fi->fh;
	int rc = 0;

	if (is_removed(n))
		rc = -ENODEV;
	else if (n->ops->flush)
		rc = n->ops->flush(n->ctx);
	fuse_reply_err(req, -rc);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close(2) promises no durability; fsync does. */
	fuse_reply_err(req, 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	fuse_reply_err(req, EOPNOTSUPP);
}

static const struct fuse_lowlevel_ops fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.open = op_open,
	.release = op_release,
	.read = op_read,
	.write = op_write,
	.fsync = op_fsync,
	.flush = op_flush,
	.fallocate = op_fallocate,
};

static void *loop_main(void *arg)
{
	struct fuse_transport *t = arg;
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();

	fuse_loop_cfg_set_clone_fd(cfg, 1);
	fuse_loop_cfg_set_max_threads(cfg, 64);
	fuse_loop_cfg_set_idle_threads(cfg, 16);
	fuse_session_loop_mt(t->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	pthread_mutex_lock(&t->done_lock);
	t->loop_done = true;
	pthread_cond_broadcast(&t->done_cond);
	pthread_mutex_unlock(&t->done_lock);
	return NULL;
}

/*
 * The mount's bdi (/sys/class/bdi/MAJ:MIN, its st_dev): FUSE starts it at
 * max_ratio 1 with strict_limit, a few tens of MiB on most machines, which
 * throttles writers long before write-back gets going.  strict_limit is
 * kept on (the bound holds even when the rest of the machine is clean);
 * max_bytes sets the bound.
 */
static int bdi_write(struct fuse_transport *t, const char *what, uint64_t value)
{
	char path[128], text[32];
	int fd, len;
	ssize_t w;

	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/%s", major(t->dev), minor(t->dev),
		 what);
	len = snprintf(text, sizeof(text), "%" PRIu64 "\n", value);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = write(fd, text, (size_t)len);
	close(fd);
	return w == len ? 0 : w < 0 ? -errno : -EIO;
}

static int ft_start(struct vss_transport *base, const char *root, struct vss_error *err)
{
	struct fuse_transport *t = (struct fuse_transport *)base;
	char *argv[] = { "vssd", "-o",
		"default_permissions,fsname=vss,subtype=vss", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct stat st;
	int rc;

	if (mkdir(root, 0755) < 0 && errno != EEXIST)
		return vss_error_set(err, -errno, "cannot create %s: %s", root, strerror(errno));
	t->root = strdup(root);
	if (!t->root)
		return vss_error_set(err, -ENOMEM, "out of memory");
	t->se = fuse_session_new(&args, &fuse_ops, sizeof(fuse_ops), t);
	fuse_opt_free_args(&args);
	if (!t->se)
		return vss_error_set(err, -EIO, "cannot create the FUSE session");
	if (fuse_session_mount(t->se, root) != 0) {
		fuse_session_destroy(t->se);
		t->se = NULL;
		return vss_error_set(err, -EIO, "cannot mount the device tree at %s "
				     "(is /dev/fuse available?)", root);
	}
	rc = pthread_create(&t->loop_thread, NULL, loop_main, t);
	if (rc) {
		fuse_session_unmount(t->se);
		fuse_session_destroy(t->se);
		t->se = NULL;
		return vss_error_set(err, -rc, "cannot start the FUSE thread: %s", strerror(rc));
	}
	t->loop_running = true;
	/* Served now, so stat() is answered: the bdi is named after st_dev. */
	if (stat(root, &st) == 0 && major(st.st_dev) == 0) {
		t->dev = st.st_dev;
		/* Readahead in requests as large as a write's (a shadow read
		 * batches its pieces per request); a hint: errors ignored. */
		(void)bdi_write(t, "read_ahead_kb", MAX_WRITE >> 10);
	}
	return 0;
}

static int ft_limit_dirty(struct vss_transport *base, uint64_t bytes)
{
	struct fuse_transport *t = (struct fuse_transport *)base;

	int rc;

	if (!t->dev)
		return -ENODEV;
	if ((rc = bdi_write(t, "strict_limit", 1)) < 0)
		return rc;
	rc = bdi_write(t, "max_bytes", bytes ? bytes : DIRTY_MAX_BYTES);
	if (rc == -EINVAL && !bytes)
		rc = bdi_write(t, "max_ratio", DIRTY_MAX_RATIO);
	return rc;
}

static int ft_open_cached(struct vss_transport *base, const char *path, int flags, int *fd)
{
	struct fuse_transport *t = (struct fuse_transport *)base;
	int rc = 0;

	pthread_mutex_lock(&t->cached_lock);
	atomic_store(&t->cached_tid, gettid());
	*fd = open(path, flags | O_CLOEXEC);
	if (*fd < 0)
		rc = -errno;
	atomic_store(&t->cached_tid, 0);
	pthread_mutex_unlock(&t->cached_lock);
	return rc;
}

static int ft_add(struct vss_transport *base, enum vss_device_kind kind,
		  const char *name, uint64_t size, const struct vss_device_ops *ops,
		  void *ctx, struct vss_error *err)
{
	struct fuse_transport *t = (struct fuse_transport *)base;
	struct fnode *n;

	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name))) {
		free(n);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	n->kind = kind;
	n->size = size;
	n->ops = ops;
	n->ctx = ctx;
	clock_gettime(CLOCK_REALTIME, &n->ctime);
	pthread_mutex_lock(&t->lock);
	if (find_name(t, kind, name)) {
		pthread_mutex_unlock(&t->lock);
		free(n->name);
		free(n);
		return vss_error_set(err, -EEXIST, "device %s already exists", name);
	}
	n->ino = t->next_ino++;
	n->next = t->nodes;
	t->nodes = n;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static int ft_remove(struct vss_transport *base, enum vss_device_kind kind,
		     const char *name)
{
	struct fuse_transport *t = (struct fuse_transport *)base;
	const struct vss_device_ops *ops = NULL;
	void *ctx = NULL;
	struct fnode *n;

	pthread_mutex_lock(&t->lock);
	n = find_name(t, kind, name);
	if (n) {
		atomic_store_explicit(&n->removed, true, memory_order_release);
		node_settle(t, n, &ops, &ctx);
	}
	pthread_mutex_unlock(&t->lock);
	run_release(ops, ctx);
	return n ? 0 : -ENOENT;
}

static unsigned int ft_open_count(struct vss_transport *base,
				  enum vss_device_kind kind, const char *name)
{
	struct fuse_transport *t = (struct fuse_transport *)base;
	struct fnode *n;
	unsigned int c = 0;

	pthread_mutex_lock(&t->lock);
	n = find_name(t, kind, name);
	if (n)
		c = n->opens;
	pthread_mutex_unlock(&t->lock);
	return c;
}

static void ft_stop(struct vss_transport *base)
{
	struct fuse_transport *t = (struct fuse_transport *)base;
	bool joined = true;

	if (t->se) {
		fuse_session_exit(t->se);
		/* Unmounting ends the connection, which ends the worker threads. */
		fuse_session_unmount(t->se);
	}
	if (t->loop_running) {
		struct timespec until;
		int rc = 0;

		/* A lazily unmounted tree still in use keeps the connection
		 * alive; do not hang for it: the process exit aborts it. */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 3;
		pthread_mutex_lock(&t->done_lock);
		while (!t->loop_done && rc == 0)
			rc = pthread_cond_timedwait(&t->done_cond, &t->done_lock, &until);
		joined = t->loop_done;
		pthread_mutex_unlock(&t->done_lock);
		if (joined)
			pthread_join(t->loop_thread, NULL);
		else
			pthread_detach(t->loop_thread);
	}
	if (!joined)
		return;     /* threads may still touch @t: leave it */
	if (t->se)
		fuse_session_destroy(t->se);
	/* No thread serves the tree any more: release what is left. */
	while (t->nodes) {
		struct fnode *n = t->nodes;

		t->nodes = n->next;
		if (!n->released)
			run_release(n->ops, n->ctx);
		free(n->name);
		free(n);
	}
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->cached_lock);
	free(t->root);
	free(t);
}

static const struct vss_transport_ops fuse_transport_ops = {
	.name = "fuse",
	.start = ft_start,
	.add = ft_add,
	.remove = ft_remove,
	.open_cached = ft_open_cached,
	.limit_dirty = ft_limit_dirty,
	.open_count = ft_open_count,
	.stop = ft_stop,
};

struct vss_transport *vss_transport_fuse_new(void)
{
	struct fuse_transport *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->base.ops = &fuse_transport_ops;
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->done_lock, NULL);
	pthread_mutex_init(&t->cached_lock, NULL);
	pthread_cond_init(&t->done_cond, NULL);
	t->next_ino = INO_FIRST;
	clock_gettime(CLOCK_REALTIME, &t->start);
	return &t->base;
}
