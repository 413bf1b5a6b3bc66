/*
 * tests/lib/crashvfs.c - the crash-simulating, fault-injecting in-memory vfs
 * of crashvfs.h.  Files keep a volatile and a durable image plus the queue of
 * unsynced changes between them; a crash replays a random part of the queue.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crashvfs.h"
#include "testutil.h"

enum change_kind { CH_WRITE, CH_PUNCH, CH_TRUNCATE };

/* One unsynced change: its data is a private copy (writes only). */
struct change {
	enum change_kind kind;
	uint64_t off;
	uint64_t len;           /* for CH_TRUNCATE: the new size, in off */
	unsigned char *data;
};

struct image {
	unsigned char *buf;
	uint64_t size;
	uint64_t cap;
};

struct node {
	char *path;
	bool linked;            /* reachable by name; else freed at the last close */
	unsigned int refs;      /* open handles */
	struct image vol;       /* what reads see */
	struct image dur;       /* what survives a crash */
	struct change *q;       /* unsynced changes, oldest first */
	size_t nq, qcap;
	uint64_t calls[CRASHVFS_NOPS];
	/* Filesystem space, in CRASHVFS_PAGE pages of the volatile image:
	 * one flag per page, set once written or reserved. */
	unsigned char *pages;
	uint64_t npages_cap, allocated;
	uint64_t budget;        /* pages the file may hold; 0: no limit */
	struct node *next;
};

struct fault {
	char *path;
	enum crashvfs_op op;
	uint64_t after;         /* calls still to succeed */
	int error;
	bool sticky;
	bool fired;
	struct fault *next;
};

struct handle {
	struct vss_file base;
	struct crashvfs *cv;
	struct node *node;
	uint64_t gen;           /* crashes seen when opened; dead once it differs */
};

/* What crashvfs_vfs() hands out: a vfs for the "process" that runs until
 * the next crash.  Opens through it fail with -EIO after that crash, as a
 * process that lost power cannot open files any more. */
struct boot_vfs {
	struct vss_vfs vfs;     /* first: the open/unlink calls cast back */
	struct crashvfs *cv;
	uint64_t gen;           /* crashes when it was handed out */
	struct boot_vfs *next;
};

struct crashvfs {
	pthread_mutex_t lock;   /* protects everything below and every node */
	struct boot_vfs *boots;
	struct node *nodes;
	struct fault *faults;
	uint64_t gen;           /* crashes so far */
	uint64_t faults_hit;
	uint64_t crash_in;      /* armed crash: changing calls to go, 0 = none */
	uint64_t crash_seed;
};

/* ---- small helpers ---- */

#define CRASHVFS_PAGE 4096u

/* Pages of [@off, @off+@len) not yet allocated; -ENOMEM. */
static int64_t pages_new(struct node *n, uint64_t off, uint64_t len)
{
	uint64_t first = off / CRASHVFS_PAGE, last = (off + len - 1) / CRASHVFS_PAGE;
	int64_t k = 0;

	if (!len)
		return 0;
	if (last >= n->npages_cap) {
		uint64_t cap = n->npages_cap ? n->npages_cap : 256;
		unsigned char *p;
		while (cap <= last)
			cap *= 2;
		p = realloc(n->pages, cap);
		if (!p)
			return -ENOMEM;
		memset(p + n->npages_cap, 0, cap - n->npages_cap);
		n->pages = p;
		n->npages_cap = cap;
	}
	for (uint64_t i = first; i <= last; i++)
		k += !n->pages[i];
	return k;
}

/* Allocates the pages of [@off, @off+@len), or fails with -ENOSPC when the
 * budget would be passed (allocating nothing). */
static int pages_alloc(struct node *n, uint64_t off, uint64_t len)
{
	int64_t k = pages_new(n, off, len);

	if (k < 0)
		return (int)k;
	if (n->budget && n->allocated + (uint64_t)k > n->budget)
		return -ENOSPC;
	for (uint64_t i = off / CRASHVFS_PAGE; len && i <= (off + len - 1) / CRASHVFS_PAGE; i++)
		n->pages[i] = 1;
	n->allocated += (uint64_t)k;
	return 0;
}

/* Gives back the whole pages inside [@off, @off+@len) (@len 0: to the end). */
static void pages_free(struct node *n, uint64_t off, uint64_t len)
{
	uint64_t first = (off + CRASHVFS_PAGE - 1) / CRASHVFS_PAGE;
	uint64_t end = len ? (off + len) / CRASHVFS_PAGE : n->npages_cap;

	for (uint64_t i = first; i < end && i < n->npages_cap; i++) {
		n->allocated -= n->pages[i];
		n->pages[i] = 0;
	}
}

/* After a crash: the pages holding anything are allocated. */
static void pages_recount(struct node *n)
{
	const struct image *im = &n->vol;

	pages_free(n, 0, 0);
	for (uint64_t off = 0; off < im->size; off += CRASHVFS_PAGE) {
		uint64_t len = im->size - off < CRASHVFS_PAGE ? im->size - off : CRASHVFS_PAGE;
		for (uint64_t i = 0; i < len; i++)
			if (im->buf[off + i]) {
				uint64_t save = n->budget;
				n->budget = 0;  /* what survived is there, budget or not */
				(void)pages_alloc(n, off, 1);
				n->budget = save;
				break;
			}
	}
}

static int image_reserve(struct image *im, uint64_t size)
{
	unsigned char *p;
	uint64_t cap;

	if (size <= im->cap)
		return 0;
	cap = im->cap ? im->cap : 4096;
	while (cap < size)
		cap *= 2;
	p = realloc(im->buf, cap);
	if (!p)
		return -ENOMEM;
	im->buf = p;
	im->cap = cap;
	return 0;
}

static int image_resize(struct image *im, uint64_t size)
{
	int r = image_reserve(im, size);

	if (r < 0)
		return r;
	if (size > im->size)
		memset(im->buf + im->size, 0, size - im->size);
	im->size = size;
	return 0;
}

static int image_write(struct image *im, const void *data, uint64_t len, uint64_t off)
{
	int r;

	if (off + len > im->size) {
		r = image_resize(im, off + len);
		if (r < 0)
			return r;
	}
	memcpy(im->buf + off, data, len);
	return 0;
}

static void image_punch(struct image *im, uint64_t off, uint64_t len)
{
	if (off >= im->size)
		return;
	if (len > im->size - off)
		len = im->size - off;
	memset(im->buf + off, 0, len);
}

static int image_copy(struct image *dst, const struct image *src)
{
	int r = image_reserve(dst, src->size);

	if (r < 0)
		return r;
	if (src->size)
		memcpy(dst->buf, src->buf, src->size);
	dst->size = src->size;
	return 0;
}

static void image_release(struct image *im)
{
	free(im->buf);
	*im = (struct image){ 0 };
}

/* Applies @c whole to @im. */
static int change_apply(struct image *im, const struct change *c)
{
	switch (c->kind) {
	case CH_WRITE:
		return image_write(im, c->data, c->len, c->off);
	case CH_PUNCH:
		image_punch(im, c->off, c->len);
		return 0;
	case CH_TRUNCATE:
		return image_resize(im, c->off);
	}
	return -EINVAL;
}

/* Applies only the sectors of @c that @rng picks (writes and punches). */
static int change_apply_torn(struct image *im, const struct change *c, uint64_t *rng)
{
	uint64_t first = c->off / CRASHVFS_SECTOR;
	uint64_t last = (c->off + c->len - 1) / CRASHVFS_SECTOR;
	unsigned int mode = (unsigned int)rng_below(rng, 3);
	uint64_t cut = first + rng_below(rng, last - first + 1);
	int r;

	if (c->len == 0 || c->kind == CH_TRUNCATE)
		return 0;
	for (uint64_t s = first; s <= last; s++) {
		uint64_t lo = s * CRASHVFS_SECTOR, hi = lo + CRASHVFS_SECTOR;
		bool take;

		/* a prefix, a suffix, or any sectors at all */
		if (mode == 0)
			take = s < cut;
		else if (mode == 1)
			take = s >= cut;
		else
			take = rng_below(rng, 2);
		if (!take)
			continue;
		if (lo < c->off)
			lo = c->off;
		if (hi > c->off + c->len)
			hi = c->off + c->len;
		if (c->kind == CH_WRITE) {
			r = image_write(im, c->data + (lo - c->off), hi - lo, lo);
			if (r < 0)
				return r;
		} else {
			image_punch(im, lo, hi - lo);
		}
	}
	return 0;
}

static void queue_clear(struct node *n)
{
	for (size_t i = 0; i < n->nq; i++)
		free(n->q[i].data);
	n->nq = 0;
}

static int queue_push(struct node *n, enum change_kind kind, const void *data,
		      uint64_t len, uint64_t off)
{
	struct change *c;

	if (n->nq == n->qcap) {
		size_t cap = n->qcap ? n->qcap * 2 : 16;
		struct change *q = realloc(n->q, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		n->q = q;
		n->qcap = cap;
	}
	c = &n->q[n->nq];
	*c = (struct change){ .kind = kind, .off = off, .len = len };
	if (kind == CH_WRITE && len) {
		c->data = malloc(len);
		if (!c->data)
			return -ENOMEM;
		memcpy(c->data, data, len);
	}
	n->nq++;
	return 0;
}

static void node_free(struct crashvfs *cv, struct node *n)
{
	struct node **pp;

	for (pp = &cv->nodes; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	queue_clear(n);
	free(n->q);
	free(n->pages);
	image_release(&n->vol);
	image_release(&n->dur);
	free(n->path);
	free(n);
}

static struct node *node_find(struct crashvfs *cv, const char *path)
{
	for (struct node *n = cv->nodes; n; n = n->next)
		if (n->linked && strcmp(n->path, path) == 0)
			return n;
	return NULL;
}

static struct node *node_new(struct crashvfs *cv, const char *path)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->path = strdup(path);
	if (!n->path) {
		free(n);
		return NULL;
	}
	n->linked = true;
	n->next = cv->nodes;
	cv->nodes = n;
	return n;
}

/* ---- the crash ---- */

/* Lock held.  Replays part of each file's queue onto its durable image. */
static void do_crash(struct crashvfs *cv, uint64_t seed)
{
	uint64_t rng = seed ^ 0x5DEECE66Dull;

	cv->gen++;
	cv->crash_in = 0;
	for (struct node *n = cv->nodes; n; n = n->next) {
		/* how this file's queue fares: mixed, nothing, everything,
		 * an in-order prefix, or a prefix ending in a torn change */
		unsigned int style = (unsigned int)rng_below(&rng, 5);
		size_t prefix = (size_t)rng_below(&rng, n->nq + 1);

		if (!n->linked) {
			queue_clear(n);
			continue;
		}
		for (size_t i = 0; i < n->nq; i++) {
			const struct change *c = &n->q[i];
			unsigned int fate = 0;   /* 0 drop, 1 whole, 2 torn */
			uint64_t p = rng_below(&rng, 100);

			switch (style) {
			case 0:
				fate = p < 45 ? 1 : p < 75 ? 0 : 2;
				break;
			case 1:
				fate = 0;
				break;
			case 2:
				fate = 1;
				break;
			case 3:
				fate = i < prefix;
				break;
			case 4:
				fate = i < prefix ? 1 : i == prefix ? 2 : 0;
				break;
			}
			/* out of memory here would only make the crash milder */
			if (fate == 1)
				(void)change_apply(&n->dur, c);
			else if (fate == 2)
				(void)change_apply_torn(&n->dur, c, &rng);
		}
		queue_clear(n);
		(void)image_copy(&n->vol, &n->dur);
		pages_recount(n);
	}
}

/* ---- file operations ---- */

#define H(f) ((struct handle *)(f))

/*
 * Lock held.  Everything a call goes through before it acts: a dead handle,
 * an armed crash (for changing calls; *@crashed says so), an injected fault.
 * Returns 0 to go on or the error to fail with.
 */
static int call_enter(struct handle *h, enum crashvfs_op op, bool changing,
		      bool *crashed)
{
	struct crashvfs *cv = h->cv;
	struct node *n = h->node;

	*crashed = false;
	if (h->gen != cv->gen)
		return -EIO;
	n->calls[op]++;
	if (changing && cv->crash_in && --cv->crash_in == 0) {
		*crashed = true;
		return 0;
	}
	for (struct fault *f = cv->faults; f; f = f->next) {
		if (f->op != op || strcmp(f->path, n->path) != 0)
			continue;
		if (f->after) {
			f->after--;
			return 0;
		}
		if (f->fired && !f->sticky)
			return 0;
		f->fired = true;
		cv->faults_hit++;
		return f->error;
	}
	return 0;
}

static int cv_pread(struct vss_file *f, void *buf, size_t len, uint64_t off)
{
	struct crashvfs *cv = H(f)->cv;
	struct image *im = &H(f)->node->vol;
	bool crashed;
	int r;

	pthread_mutex_lock(&cv->lock);
	r = call_enter(H(f), CRASHVFS_PREAD, false, &crashed);
	if (r == 0) {
		uint64_t have = off < im->size ? im->size - off : 0;
		if (have > len)
			have = len;
		if (have)
			memcpy(buf, im->buf + off, have);
		memset((unsigned char *)buf + have, 0, len - have);
	}
	pthread_mutex_unlock(&cv->lock);
	return r;
}

/* pwrite, punch and truncate: change the volatile image, queue the change. */
static int cv_change(struct vss_file *f, enum crashvfs_op op, enum change_kind kind,
		     const void *data, uint64_t len, uint64_t off)
{
	struct crashvfs *cv = H(f)->cv;
	struct node *n = H(f)->node;
	bool crashed;
	int r;

	pthread_mutex_lock(&cv->lock);
	r = call_enter(H(f), op, true, &crashed);
	if (r == 0 && !crashed && kind == CH_WRITE)
		r = pages_alloc(n, off, len);
	if (r == 0) {
		struct change c = { .kind = kind, .off = off, .len = len,
				    .data = (unsigned char *)data };
		r = queue_push(n, kind, data, len, off);
		if (r == 0) {
			r = change_apply(&n->vol, &c);
			if (r < 0)
				free(n->q[--n->nq].data);
		}
		if (r == 0 && kind == CH_PUNCH)
			pages_free(n, off, len);
		else if (r == 0 && kind == CH_TRUNCATE)
			pages_free(n, off + CRASHVFS_PAGE - 1 - (off + CRASHVFS_PAGE - 1) % CRASHVFS_PAGE, 0);
	}
	if (crashed) {
		do_crash(cv, cv->crash_seed);
		r = -EIO;
	}
	pthread_mutex_unlock(&cv->lock);
	return r;
}

static int cv_pwrite(struct vss_file *f, const void *buf, size_t len, uint64_t off)
{
	return cv_change(f, CRASHVFS_PWRITE, CH_WRITE, buf, len, off);
}

static int cv_punch(struct vss_file *f, uint64_t off, uint64_t len)
{
	return cv_change(f, CRASHVFS_PUNCH, CH_PUNCH, NULL, len, off);
}

/* Space only: not a change of content, so nothing to queue for a crash. */
static int cv_reserve(struct vss_file *f, uint64_t off, uint64_t len)
{
	struct crashvfs *cv = H(f)->cv;
	bool crashed;
	int r;

	pthread_mutex_lock(&cv->lock);
	r = call_enter(H(f), CRASHVFS_RESERVE, false, &crashed);
	if (r == 0)
		r = pages_alloc(H(f)->node, off, len);
	pthread_mutex_unlock(&cv->lock);
	return r;
}

static int cv_truncate(struct vss_file *f, uint64_t size)
{
	return cv_change(f, CRASHVFS_TRUNCATE, CH_TRUNCATE, NULL, 0, size);
}

static int cv_sync(struct vss_file *f)
{
	struct crashvfs *cv = H(f)->cv;
	struct node *n = H(f)->node;
	bool crashed;
	int r;

	pthread_mutex_lock(&cv->lock);
	r = call_enter(H(f), CRASHVFS_SYNC, true, &crashed);
	if (crashed) {
		do_crash(cv, cv->crash_seed);
		r = -EIO;
	} else if (r == 0) {
		for (size_t i = 0; i < n->nq && r == 0; i++)
			r = change_apply(&n->dur, &n->q[i]);
		if (r == 0)
			queue_clear(n);
	}
	pthread_mutex_unlock(&cv->lock);
	return r;
}

static int cv_size(struct vss_file *f, uint64_t *size)
{
	struct crashvfs *cv = H(f)->cv;
	int r = 0;

	pthread_mutex_lock(&cv->lock);
	if (H(f)->gen != cv->gen)
		r = -EIO;
	else
		*size = H(f)->node->vol.size;
	pthread_mutex_unlock(&cv->lock);
	return r;
}

/* Counts 4 KiB pages holding anything but zeros, like a sparse file. */
static int cv_allocated(struct vss_file *f, uint64_t *bytes)
{
	struct crashvfs *cv = H(f)->cv;
	const struct image *im = &H(f)->node->vol;
	uint64_t pages = 0;
	int r = 0;

	pthread_mutex_lock(&cv->lock);
	if (H(f)->gen != cv->gen) {
		r = -EIO;
	} else {
		for (uint64_t off = 0; off < im->size; off += 4096) {
			uint64_t len = im->size - off < 4096 ? im->size - off : 4096;
			for (uint64_t i = 0; i < len; i++) {
				if (im->buf[off + i]) {
					pages++;
					break;
				}
			}
		}
		*bytes = pages * 4096;
	}
	pthread_mutex_unlock(&cv->lock);
	return r;
}

static void cv_close(struct vss_file *f)
{
	struct crashvfs *cv = H(f)->cv;
	struct node *n = H(f)->node;

	pthread_mutex_lock(&cv->lock);
	if (--n->refs == 0 && !n->linked)
		node_free(cv, n);
	pthread_mutex_unlock(&cv->lock);
	free(f);
}

static const struct vss_file_ops cv_file_ops = {
	.pread = cv_pread,
	.pwrite = cv_pwrite,
	.sync = cv_sync,
	.punch = cv_punch,
	.reserve = cv_reserve,
	.truncate = cv_truncate,
	.size = cv_size,
	.allocated = cv_allocated,
	.close = cv_close,
};

/* ---- the vfs ---- */

#define BOOT(v) ((struct boot_vfs *)(v))
#define CV(v) (BOOT(v)->cv)

static int cv_open(struct vss_vfs *vfs, const char *path, int flags,
		   struct vss_file **out)
{
	struct crashvfs *cv = CV(vfs);
	struct handle *h = calloc(1, sizeof(*h));
	struct node *n;
	int r = 0;

	if (!h)
		return -ENOMEM;
	pthread_mutex_lock(&cv->lock);
	n = node_find(cv, path);
	if (BOOT(vfs)->gen != cv->gen)
		r = -EIO;
	else if (n && (flags & VSS_VFS_CREATE) && (flags & VSS_VFS_EXCL))
		r = -EEXIST;
	else if (!n && !(flags & VSS_VFS_CREATE))
		r = -ENOENT;
	else if (!n && !(n = node_new(cv, path)))
		r = -ENOMEM;
	if (r == 0) {
		n->refs++;
		h->base.ops = &cv_file_ops;
		h->cv = cv;
		h->node = n;
		h->gen = cv->gen;
		*out = &h->base;
	}
	pthread_mutex_unlock(&cv->lock);
	if (r < 0)
		free(h);
	return r;
}

static int cv_unlink(struct vss_vfs *vfs, const char *path)
{
	struct crashvfs *cv = CV(vfs);
	struct node *n;
	int r = 0;

	pthread_mutex_lock(&cv->lock);
	n = node_find(cv, path);
	if (BOOT(vfs)->gen != cv->gen) {
		r = -EIO;
	} else if (!n) {
		r = -ENOENT;
	} else {
		n->linked = false;
		if (n->refs == 0)
			node_free(cv, n);
	}
	pthread_mutex_unlock(&cv->lock);
	return r;
}

int crashvfs_new(struct crashvfs **out)
{
	struct crashvfs *cv = calloc(1, sizeof(*cv));

	if (!cv)
		return -ENOMEM;
	pthread_mutex_init(&cv->lock, NULL);
	*out = cv;
	return 0;
}

void crashvfs_free(struct crashvfs *cv)
{
	if (!cv)
		return;
	while (cv->nodes)
		node_free(cv, cv->nodes);
	crashvfs_clear_faults(cv);
	while (cv->boots) {
		struct boot_vfs *b = cv->boots;
		cv->boots = b->next;
		free(b);
	}
	pthread_mutex_destroy(&cv->lock);
	free(cv);
}

struct vss_vfs *crashvfs_vfs(struct crashvfs *cv)
{
	struct boot_vfs *b = calloc(1, sizeof(*b));

	if (!b)
		abort();  /* tests only: no way to report it through this API */
	b->vfs.open = cv_open;
	b->vfs.unlink = cv_unlink;
	b->cv = cv;
	pthread_mutex_lock(&cv->lock);
	b->gen = cv->gen;
	b->next = cv->boots;
	cv->boots = b;
	pthread_mutex_unlock(&cv->lock);
	return &b->vfs;
}

int crashvfs_crash(struct crashvfs *cv, uint64_t seed)
{
	pthread_mutex_lock(&cv->lock);
	do_crash(cv, seed);
	pthread_mutex_unlock(&cv->lock);
	return 0;
}

void crashvfs_crash_after(struct crashvfs *cv, uint64_t n, uint64_t seed)
{
	pthread_mutex_lock(&cv->lock);
	cv->crash_in = n;
	cv->crash_seed = seed;
	pthread_mutex_unlock(&cv->lock);
}

uint64_t crashvfs_crashes(struct crashvfs *cv)
{
	uint64_t g;

	pthread_mutex_lock(&cv->lock);
	g = cv->gen;
	pthread_mutex_unlock(&cv->lock);
	return g;
}

int crashvfs_fail(struct crashvfs *cv, const char *path, enum crashvfs_op op,
		  uint64_t after, int error, unsigned int flags)
{
	struct fault *f;

	if ((unsigned int)op >= CRASHVFS_NOPS || error >= 0 || !path)
		return -EINVAL;
	pthread_mutex_lock(&cv->lock);
	for (f = cv->faults; f; f = f->next)
		if (f->op == op && strcmp(f->path, path) == 0)
			break;
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (f)
			f->path = strdup(path);
		if (!f || !f->path) {
			free(f);
			pthread_mutex_unlock(&cv->lock);
			return -ENOMEM;
		}
		f->op = op;
		f->next = cv->faults;
		cv->faults = f;
	}
	f->after = after;
	f->error = error;
	f->sticky = flags & CRASHVFS_STICKY;
	f->fired = false;
	pthread_mutex_unlock(&cv->lock);
	return 0;
}

void crashvfs_clear_faults(struct crashvfs *cv)
{
	pthread_mutex_lock(&cv->lock);
	while (cv->faults) {
		struct fault *f = cv->faults;
		cv->faults = f->next;
		free(f->path);
		free(f);
	}
	pthread_mutex_unlock(&cv->lock);
}

uint64_t crashvfs_faults_hit(struct crashvfs *cv)
{
	uint64_t n;

	pthread_mutex_lock(&cv->lock);
	n = cv->faults_hit;
	pthread_mutex_unlock(&cv->lock);
	return n;
}

int crashvfs_stats(struct crashvfs *cv, const char *path, struct crashvfs_stats *out)
{
	struct node *n;
	int r = 0;

	pthread_mutex_lock(&cv->lock);
	n = node_find(cv, path);
	if (!n) {
		r = -ENOENT;
	} else {
		memcpy(out->calls, n->calls, sizeof(out->calls));
		out->unsynced = n->nq;
		out->size = n->vol.size;
		out->durable_size = n->dur.size;
	}
	pthread_mutex_unlock(&cv->lock);
	return r;
}

int crashvfs_put(struct crashvfs *cv, const char *path, const void *data, size_t len)
{
	struct node *n;
	int r;

	pthread_mutex_lock(&cv->lock);
	n = node_find(cv, path);
	if (!n)
		n = node_new(cv, path);
	if (!n) {
		pthread_mutex_unlock(&cv->lock);
		return -ENOMEM;
	}
	queue_clear(n);
	n->vol.size = 0;
	r = image_resize(&n->vol, len);
	if (r == 0 && data && len)
		memcpy(n->vol.buf, data, len);
	if (r == 0)
		r = image_copy(&n->dur, &n->vol);
	pthread_mutex_unlock(&cv->lock);
	return r;
}

int crashvfs_get(struct crashvfs *cv, const char *path, bool durable,
		 void **out, size_t *len)
{
	const struct image *im;
	struct node *n;
	int r = 0;

	pthread_mutex_lock(&cv->lock);
	n = node_find(cv, path);
	if (!n) {
		r = -ENOENT;
	} else {
		im = durable ? &n->dur : &n->vol;
		*out = malloc(im->size ? im->size : 1);
		if (!*out) {
			r = -ENOMEM;
		} else {
			if (im->size)
				memcpy(*out, im->buf, im->size);
			*len = im->size;
		}
	}
	pthread_mutex_unlock(&cv->lock);
	return r;
}

int crashvfs_set_budget(struct crashvfs *cv, const char *path, uint64_t bytes)
{
	struct node *n;
	int r = 0;

	pthread_mutex_lock(&cv->lock);
	n = node_find(cv, path);
	if (!n)
		r = -ENOENT;
	else
		n->budget = (bytes + CRASHVFS_PAGE - 1) / CRASHVFS_PAGE;
	pthread_mutex_unlock(&cv->lock);
	return r;
}

uint64_t crashvfs_allocated(struct crashvfs *cv, const char *path)
{
	struct node *n;
	uint64_t a = 0;

	pthread_mutex_lock(&cv->lock);
	n = node_find(cv, path);
	if (n)
		a = n->allocated * CRASHVFS_PAGE;
	pthread_mutex_unlock(&cv->lock);
	return a;
}

bool crashvfs_exists(struct crashvfs *cv, const char *path)
{
	bool e;

	pthread_mutex_lock(&cv->lock);
	e = node_find(cv, path) != NULL;
	pthread_mutex_unlock(&cv->lock);
	return e;
}
