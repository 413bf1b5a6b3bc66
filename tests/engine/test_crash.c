/*
 * tests/engine/test_crash.c - crash and fault tests of the copy-on-write
 * engine: power loss simulated by crashvfs at random moments of a threaded
 * write storm, a real SIGKILL of a child process, and EIO/ENOSPC injection.
 *
 * Environment: VSS_TEST_SEED (the seed is printed), VSS_CRASH_ITERS (crashvfs
 * iterations), VSS_KILL_ROUNDS (SIGKILL rounds), VSS_FAULT_ITERS (fault runs),
 * VSS_CRASH_SERIAL=1 (single-threaded storms only: a failure repeats exactly
 * from its seed), VSS_TEST_VERBOSE=1 (trace every step), VSS_TEST_DUMP=DIR
 * (keep the origin and diff area as each simulated crash left them).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <vss/cow.h>
#include "engine/cow_i.h"
#include "crashvfs.h"
#include "testutil.h"

#define MAX_WRITERS 3
#define MAX_LIVE    6       /* live shadows the storm keeps at most */
#define NO_SEQ      UINT64_MAX

/* ---- helpers ---- */

static uint64_t first_diff(const unsigned char *a, const unsigned char *b, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return i;
	return len;
}

/*
 * The content of write @opid of a storm: a function of (key, opid, offset),
 * so that a parent can rebuild what a killed child wrote from its op log.
 */
static uint64_t gen_word(uint64_t key, uint64_t opid, uint64_t word)
{
	return mix64(key ^ (opid * 0x9E3779B97F4A7C15ull) ^ (word * 0xC2B2AE3D27D4EB4Full));
}

static unsigned char gen_byte(uint64_t key, uint64_t opid, uint64_t x)
{
	return (unsigned char)(gen_word(key, opid, x >> 3) >> ((x & 7) * 8));
}

static void gen_fill(uint64_t key, uint64_t opid, uint64_t off, size_t len, unsigned char *out)
{
	size_t i = 0;

	while (i < len) {
		uint64_t x = off + i;
		uint64_t w = gen_word(key, opid, x >> 3);

		do {
			out[i++] = (unsigned char)(w >> ((x & 7) * 8));
			x++;
		} while (i < len && (x & 7));
	}
}

static void make_id(uint64_t key, uint32_t idx, vss_cow_id id)
{
	uint64_t a = mix64(key ^ 0x1D1D ^ ((uint64_t)idx << 20));
	uint64_t b = mix64(a ^ idx);

	memcpy(id, &a, 8);
	memcpy(id + 8, &b, 8);
}

/* ---- what every test here shares: seed, temp dir, failure report ---- */

struct ctx {
	uint64_t base_seed;
	uint64_t seed;              /* of the current iteration */
	const char *test;
	unsigned int iter;
	const char *phase;
	char dir[64];               /* temp dir, "" if none */
	pid_t child;                /* a child to kill at teardown, 0 if none */
	struct crashvfs *cv;
	struct vss_cow_volume *vol;
	struct run *rn;
	struct storm *st;
	struct fmodel *fm;
	void *held[HELD_MAX];       /* see hold() */
	/* what a test went through, printed at its end */
	unsigned long n_crashes, n_writes, n_shadows, n_checked, n_recovery_crashes;
	unsigned long n_faults, n_invalid, n_gone, n_back, n_failed_creates;
};

static void ctx_fail(struct ctx *c, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ctx_fail(struct ctx *c, int line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	print_error("test_crash: %s iteration %u seed %llu phase %s (line %d): %s\n"
		    "  repeat with VSS_TEST_SEED=%llu\n",
		    c->test, c->iter, (unsigned long long)c->seed,
		    c->phase ? c->phase : "-", line, msg,
		    (unsigned long long)c->base_seed);
	fail();
}

#define CHECK(c, cond, ...) \
	do { if (!(cond)) ctx_fail((c), __LINE__, __VA_ARGS__); } while (0)

static void run_free(struct run *rn);
static void storm_free(struct storm *st);
static void fmodel_close_handles(struct fmodel *fm);
static void fmodel_free(struct fmodel *fm);

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -1;
	c->base_seed = base_seed();
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	if (!c)
		return 0;
	if (c->child > 0) {
		kill(c->child, SIGKILL);
		waitpid(c->child, NULL, 0);
	}
	storm_free(c->st);
	fmodel_close_handles(c->fm);
	if (c->vol)
		vss_cow_close(c->vol);
	run_free(c->rn);
	fmodel_free(c->fm);
	for (int i = 0; i < HELD_MAX; i++)
		free(c->held[i]);
	crashvfs_free(c->cv);
	if (c->dir[0])
		nftw(c->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(c);
	*state = NULL;
	return 0;
}

static void make_tempdir(struct ctx *c, const char *tag)
{
	sweep_stale_dirs(tag);
	snprintf(c->dir, sizeof(c->dir), "/tmp/vss-%s-%d-XXXXXX", tag, (int)getpid());
	if (!mkdtemp(c->dir)) {
		c->dir[0] = 0;
		CHECK(c, false, "mkdtemp: %s", strerror(errno));
	}
}

static void start(struct ctx *c, const char *test, unsigned int iter)
{
	c->test = test;
	c->iter = iter;
	c->seed = mix64(c->base_seed ^ (uint64_t)iter * 7919u ^ (uint64_t)(uintptr_t)test[0]);
	c->phase = NULL;
}

/* ==== crashvfs itself ==== */

static void open_file(struct crashvfs *cv, const char *path, int flags, struct vss_file **f)
{
	assert_int_equal(crashvfs_vfs(cv)->open(crashvfs_vfs(cv), path, flags, f), 0);
}

static void test_crashvfs_basics(void **state)
{
	struct crashvfs *cv;
	struct vss_file *f, *g;
	struct vss_vfs *vfs;
	struct crashvfs_stats s;
	unsigned char buf[9000], back[9000];
	uint64_t v;
	void *img;
	size_t len;

	assert_int_equal(crashvfs_new(&cv), 0);
	((struct ctx *)*state)->cv = cv;
	vfs = crashvfs_vfs(cv);
	assert_int_equal(vfs->open(vfs, "a", 0, &f), -ENOENT);
	open_file(cv, "a", VSS_VFS_CREATE, &f);
	assert_int_equal(vfs->open(vfs, "a", VSS_VFS_CREATE | VSS_VFS_EXCL, &g), -EEXIST);
	memset(buf, 0xAB, sizeof(buf));
	assert_int_equal(vss_file_pwrite(f, buf, 100, 5000), 0);
	assert_int_equal(vss_file_size(f, &v), 0);
	assert_int_equal(v, 5100);
	assert_int_equal(vss_file_pread(f, back, 200, 5000), 0);   /* zeros past the end */
	assert_memory_equal(back, buf, 100);
	for (int i = 100; i < 200; i++)
		assert_int_equal(back[i], 0);
	assert_int_equal(vss_file_pread(f, back, 100, 0), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(back[i], 0);
	assert_int_equal(vss_file_allocated(f, &v), 0);
	assert_int_equal(v, 4096);                  /* only page 1 holds data */
	assert_int_equal(crashvfs_stats(cv, "a", &s), 0);
	assert_int_equal(s.unsynced, 1);
	assert_int_equal(s.durable_size, 0);
	assert_int_equal(vss_file_sync(f), 0);
	assert_int_equal(crashvfs_stats(cv, "a", &s), 0);
	assert_int_equal(s.unsynced, 0);
	assert_int_equal(s.durable_size, 5100);
	assert_int_equal(s.calls[CRASHVFS_PWRITE], 1);

	/* punch and truncate */
	assert_int_equal(vss_file_punch(f, 5010, 20), 0);
	assert_int_equal(vss_file_pread(f, back, 100, 5000), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(back[i], i >= 10 && i < 30 ? 0 : 0xAB);
	assert_int_equal(vss_file_truncate(f, 5050), 0);
	assert_int_equal(vss_file_size(f, &v), 0);
	assert_int_equal(v, 5050);
	assert_int_equal(vss_file_truncate(f, 0), 0);
	assert_int_equal(vss_file_allocated(f, &v), 0);
	assert_int_equal(v, 0);

	/* a second handle sees the same file; unlink keeps it for open handles */
	open_file(cv, "a", 0, &g);
	assert_int_equal(vss_file_pwrite(g, buf, 10, 0), 0);
	assert_int_equal(vss_file_pread(f, back, 10, 0), 0);
	assert_memory_equal(back, buf, 10);
	assert_int_equal(vfs->unlink(vfs, "a"), 0);
	assert_false(crashvfs_exists(cv, "a"));
	assert_int_equal(vfs->unlink(vfs, "a"), -ENOENT);
	assert_int_equal(vss_file_pread(g, back, 10, 0), 0);
	assert_memory_equal(back, buf, 10);
	vss_file_close(f);
	vss_file_close(g);

	assert_int_equal(crashvfs_put(cv, "b", buf, 777), 0);
	assert_int_equal(crashvfs_get(cv, "b", true, &img, &len), 0);
	assert_int_equal(len, 777);
	assert_memory_equal(img, buf, 777);
	free(img);
}

/* Unsynced writes come back whole, not at all, or torn at sectors; never
 * anything else, and every outcome shows up across seeds. */
static void test_crashvfs_crash(void **state)
{
	const size_t sz = 8 * CRASHVFS_SECTOR;
	unsigned char a[8 * CRASHVFS_SECTOR], b[8 * CRASHVFS_SECTOR];
	bool seen_old = false, seen_new = false, seen_torn = false;
	struct crashvfs *cv;
	struct vss_file *f;

	assert_int_equal(crashvfs_new(&cv), 0);
	((struct ctx *)*state)->cv = cv;
	memset(a, 'A', sz);
	memset(b, 'B', sz);
	for (uint64_t seed = 1; seed <= 200; seed++) {
		unsigned char *img;
		size_t len;
		unsigned int nb = 0;

		assert_int_equal(crashvfs_put(cv, "f", a, sz), 0);
		open_file(cv, "f", 0, &f);
		assert_int_equal(vss_file_pwrite(f, b, sz - 100, 50), 0);
		assert_int_equal(crashvfs_crash(cv, seed), 0);
		/* the old handle is dead */
		assert_int_equal(vss_file_pwrite(f, b, 1, 0), -EIO);
		assert_int_equal(vss_file_sync(f), -EIO);
		vss_file_close(f);
		assert_int_equal(crashvfs_get(cv, "f", false, (void **)&img, &len), 0);
		assert_int_equal(len, sz);
		for (size_t s = 0; s < 8; s++) {
			unsigned char *p = img + s * CRASHVFS_SECTOR;
			size_t lo = s == 0 ? 50 : 0;
			size_t hi = s == 7 ? CRASHVFS_SECTOR - 50 : CRASHVFS_SECTOR;
			bool isb = p[lo] == 'B';

			/* bytes outside the write are never touched */
			for (size_t i = 0; i < lo; i++)
				assert_int_equal(p[i], 'A');
			for (size_t i = hi; i < CRASHVFS_SECTOR; i++)
				assert_int_equal(p[i], 'A');
			/* a sector is all old or all new */
			for (size_t i = lo; i < hi; i++)
				assert_int_equal(p[i], isb ? 'B' : 'A');
			nb += isb;
		}
		seen_old |= nb == 0;
		seen_new |= nb == 8;
		seen_torn |= nb > 0 && nb < 8;
		free(img);
	}
	assert_true(seen_old && seen_new && seen_torn);

	/* synced writes always survive; a crash armed on the third call */
	assert_int_equal(crashvfs_put(cv, "f", a, sz), 0);
	open_file(cv, "f", 0, &f);
	assert_int_equal(vss_file_pwrite(f, b, 10, 0), 0);
	assert_int_equal(vss_file_sync(f), 0);
	crashvfs_crash_after(cv, 2, 99);
	assert_int_equal(vss_file_pwrite(f, b, 10, 100), 0);
	assert_int_equal(crashvfs_crashes(cv), 200);
	assert_int_equal(vss_file_pwrite(f, b, 10, 200), -EIO);
	assert_int_equal(crashvfs_crashes(cv), 201);
	vss_file_close(f);
	open_file(cv, "f", 0, &f);
	{
		unsigned char back[10];
		assert_int_equal(vss_file_pread(f, back, 10, 0), 0);
		assert_memory_equal(back, b, 10);
	}
	vss_file_close(f);
}

static void test_crashvfs_faults(void **state)
{
	struct crashvfs *cv;
	struct vss_file *f;
	struct crashvfs_stats s;
	unsigned char buf[64] = { 1 };

	assert_int_equal(crashvfs_new(&cv), 0);
	((struct ctx *)*state)->cv = cv;
	open_file(cv, "d", VSS_VFS_CREATE, &f);
	assert_int_equal(crashvfs_fail(cv, "d", CRASHVFS_PWRITE, 2, -EIO, 0), 0);
	assert_int_equal(vss_file_pwrite(f, buf, 64, 0), 0);
	assert_int_equal(vss_file_pwrite(f, buf, 64, 64), 0);
	assert_int_equal(vss_file_pwrite(f, buf, 64, 128), -EIO);
	assert_int_equal(vss_file_pwrite(f, buf, 64, 128), 0);     /* one-shot */
	assert_int_equal(crashvfs_faults_hit(cv), 1);
	assert_int_equal(crashvfs_fail(cv, "d", CRASHVFS_PWRITE, 0, -ENOSPC, CRASHVFS_STICKY), 0);
	assert_int_equal(vss_file_pwrite(f, buf, 64, 256), -ENOSPC);
	assert_int_equal(vss_file_pwrite(f, buf, 64, 256), -ENOSPC);
	assert_int_equal(crashvfs_stats(cv, "d", &s), 0);
	assert_int_equal(s.size, 192);                              /* failed calls change nothing */
	assert_int_equal(crashvfs_fail(cv, "d", CRASHVFS_SYNC, 0, -EIO, 0), 0);
	assert_int_equal(vss_file_sync(f), -EIO);
	assert_int_equal(crashvfs_stats(cv, "d", &s), 0);
	assert_int_equal(s.unsynced, 3);
	assert_int_equal(s.durable_size, 0);
	crashvfs_clear_faults(cv);
	assert_int_equal(vss_file_pwrite(f, buf, 64, 256), 0);
	assert_int_equal(vss_file_sync(f), 0);
	assert_int_equal(crashvfs_stats(cv, "d", &s), 0);
	assert_int_equal(s.durable_size, 320);
	assert_int_equal(crashvfs_fail(cv, "other", CRASHVFS_PWRITE, 0, -EIO, CRASHVFS_STICKY), 0);
	assert_int_equal(vss_file_pwrite(f, buf, 64, 0), 0);       /* another file's fault */
	assert_int_equal(crashvfs_fail(cv, "d", CRASHVFS_PWRITE, 0, 5, 0), -EINVAL);
	vss_file_close(f);
}

/* ==== the write storm, its log, and what may survive it ==== */

struct wop {
	uint64_t opid;
	uint64_t off;
	uint32_t len;
	uint64_t start;             /* storm seq taken before the call */
	uint64_t end;               /* taken after it returned in full; NO_SEQ if not */
};

struct writer {
	struct storm *st;
	pthread_t th;
	unsigned int idx;
	uint64_t lo, hi;            /* the region it owns */
	uint64_t rng;
	unsigned int max_writes;
	struct wop *ops;
	size_t nops, cap;
	char err[256];
};

/* Records passed from a killed child to its parent; 40 bytes, atomic in a pipe. */
enum krec_type { K_READY = 1, K_WSTART, K_WEND, K_SSTART, K_SEND, K_DSTART, K_DEND,
		 K_FSTART, K_FEND, K_FAIL, K_DONE };

struct krec {
	uint32_t type;
	uint32_t thread;
	uint64_t a, b, c, d;
};

struct storm {
	struct vss_cow_volume *vol;
	struct crashvfs *cv;        /* (a): stop once it crashed; else NULL */
	uint64_t cv_gen;
	int pipe_fd;                /* (b): report every event here; else -1 */
	uint64_t key;               /* content key of this storm */
	uint64_t size;
	uint32_t bs;
	const unsigned char *base;  /* the volume when it began */
	atomic_uint_fast64_t seq;   /* orders every call against every other */
	atomic_uint_fast64_t next_opid;
	unsigned int nw;
	struct writer w[MAX_WRITERS];
	uint64_t durable_cut;       /* writes ending before this seq must be durable */
	uint64_t flush_start;       /* (b): the parent's note of a flush under way */
	char err[256];              /* control's first failure */
};

enum sh_state { SH_CREATING, SH_LIVE, SH_FAILED, SH_DELETING, SH_DELETED };

/* A shadow of a run, from its creation until it is verified gone. */
struct cshadow {
	vss_cow_id id;
	uint32_t idx;
	bool persistent;
	enum sh_state state;
	uint64_t c_start, c_end;    /* storm seqs around create; c_end NO_SEQ if it never returned */
	unsigned char *pinned;      /* exact content, once verified after a crash */
	unsigned char *pin_try;     /* read right after creation, checked later */
	uint32_t seq;               /* engine's, 0 until verified */
};

/* One volume across crashes. */
struct run {
	uint64_t key0;              /* shadow ids */
	uint64_t size;
	uint32_t bs;
	unsigned char *base;        /* the volume at the start of the current storm */
	struct cshadow *sh;
	size_t nsh, cap;
	uint32_t next_idx;
};

static void run_free(struct run *rn)
{
	if (!rn)
		return;
	for (size_t i = 0; i < rn->nsh; i++) {
		free(rn->sh[i].pinned);
		free(rn->sh[i].pin_try);
	}
	free(rn->sh);
	free(rn->base);
	free(rn);
}

static struct cshadow *run_add(struct run *rn, uint32_t idx, bool persistent)
{
	struct cshadow *s;

	if (rn->nsh == rn->cap) {
		size_t cap = rn->cap ? rn->cap * 2 : 16;
		struct cshadow *p = realloc(rn->sh, cap * sizeof(*p));
		assert_non_null(p);
		rn->sh = p;
		rn->cap = cap;
	}
	s = &rn->sh[rn->nsh++];
	memset(s, 0, sizeof(*s));
	s->idx = idx;
	s->persistent = persistent;
	s->state = SH_CREATING;
	s->c_start = s->c_end = NO_SEQ;
	make_id(rn->key0, idx, s->id);
	if (idx >= rn->next_idx)
		rn->next_idx = idx + 1;
	return s;
}

static struct cshadow *run_find_idx(struct run *rn, uint32_t idx)
{
	for (size_t i = 0; i < rn->nsh; i++)
		if (rn->sh[i].idx == idx)
			return &rn->sh[i];
	return NULL;
}

static struct cshadow *run_find_id(struct run *rn, const vss_cow_id id)
{
	for (size_t i = 0; i < rn->nsh; i++)
		if (memcmp(rn->sh[i].id, id, sizeof(vss_cow_id)) == 0)
			return &rn->sh[i];
	return NULL;
}

static void storm_free(struct storm *st)
{
	if (!st)
		return;
	for (unsigned int i = 0; i < MAX_WRITERS; i++)
		free(st->w[i].ops);
	free(st);
}

static struct storm *storm_new(struct run *rn, struct vss_cow_volume *vol,
			       struct crashvfs *cv, int pipe_fd, uint64_t *rng)
{
	struct storm *st = calloc(1, sizeof(*st));
	uint64_t cuts[MAX_WRITERS + 1];

	assert_non_null(st);
	st->vol = vol;
	st->cv = cv;
	st->cv_gen = cv ? crashvfs_crashes(cv) : 0;
	st->pipe_fd = pipe_fd;
	st->key = rng_next(rng);
	st->size = rn->size;
	st->bs = rn->bs;
	st->base = rn->base;
	atomic_init(&st->seq, 1);
	atomic_init(&st->next_opid, 1);
	st->nw = 2 + (unsigned int)rng_below(rng, MAX_WRITERS - 1);
	cuts[0] = 0;
	cuts[st->nw] = st->size;
	for (unsigned int i = 1; i < st->nw; i++) {
		uint64_t even = st->size * i / st->nw, j = rng_below(rng, st->bs);
		cuts[i] = even > j + cuts[i - 1] + 1 ? even - j : even;
	}
	for (unsigned int i = 0; i < st->nw; i++) {
		struct writer *w = &st->w[i];

		w->st = st;
		w->idx = i;
		w->lo = cuts[i];
		w->hi = cuts[i + 1];
		w->rng = rng_next(rng);
	}
	return st;
}

static void report(struct storm *st, uint32_t type, uint32_t thread,
		   uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
	struct krec r = { type, thread, a, b, c, d };
	ssize_t n;

	if (st->pipe_fd < 0)
		return;
	do
		n = write(st->pipe_fd, &r, sizeof(r));
	while (n < 0 && errno == EINTR);
}

static bool storm_stopped(struct storm *st)
{
	return st->cv && crashvfs_crashes(st->cv) != st->cv_gen;
}

static uint64_t storm_tick(struct storm *st)
{
	return atomic_fetch_add(&st->seq, 1);
}

static struct wop *writer_push(struct writer *w)
{
	if (w->nops == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct wop *p = realloc(w->ops, cap * sizeof(*p));
		if (!p)
			return NULL;
		w->ops = p;
		w->cap = cap;
	}
	return &w->ops[w->nops++];
}

static void pick_write(uint64_t *rng, uint64_t lo, uint64_t hi, uint32_t bs,
		       uint64_t *off, uint32_t *len)
{
	uint64_t span = hi - lo, l;

	switch (rng_below(rng, 5)) {
	case 0: l = 1 + rng_below(rng, 600); break;
	case 1: l = 1 + rng_below(rng, bs); break;
	case 2: l = bs; break;
	case 3: l = bs + rng_below(rng, 2 * (uint64_t)bs); break;
	default: l = 4096; break;
	}
	if (l > span)
		l = span;
	*off = lo + rng_below(rng, span - l + 1);
	if (l % 4096 == 0 && rng_below(rng, 2) && (*off / 4096) * 4096 >= lo)
		*off = (*off / 4096) * 4096;
	*len = (uint32_t)l;
}

/* One logged write of writer @w, content from gen_fill() into @buf (3 blocks
 * + 4 KiB).  false once the writer must stop (a crash, or a failure). */
static bool writer_one(struct writer *w, unsigned char *buf)
{
	struct storm *st = w->st;
	struct wop *op = writer_push(w);
	ssize_t n;

	if (!op) {
		snprintf(w->err, sizeof(w->err), "out of memory");
		return false;
	}
	pick_write(&w->rng, w->lo, w->hi, st->bs, &op->off, &op->len);
	op->opid = atomic_fetch_add(&st->next_opid, 1);
	op->end = NO_SEQ;
	gen_fill(st->key, op->opid, op->off, op->len, buf);
	op->start = storm_tick(st);
	report(st, K_WSTART, w->idx, op->opid, op->off, op->len, op->start);
	n = vss_cow_write(st->vol, buf, op->len, op->off);
	if (n != (ssize_t)op->len) {
		if (!storm_stopped(st)) {
			snprintf(w->err, sizeof(w->err), "write %u at %llu returned %zd",
				 op->len, (unsigned long long)op->off, n);
			report(st, K_FAIL, w->idx, __LINE__, (uint64_t)n, 0, 0);
		}
		return false;
	}
	op->end = storm_tick(st);
	report(st, K_WEND, w->idx, op->opid, 0, 0, op->end);
	trace("  write op %llu [%llu, +%u) seq %llu..%llu\n", (unsigned long long)op->opid,
	      (unsigned long long)op->off, op->len, (unsigned long long)op->start,
	      (unsigned long long)op->end);
	return true;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct storm *st = w->st;
	unsigned char *buf = malloc(3 * (size_t)st->bs + 4096);

	if (!buf) {
		snprintf(w->err, sizeof(w->err), "out of memory");
		return NULL;
	}
	for (unsigned int i = 0; i < w->max_writes && !storm_stopped(st); i++) {
		if (!writer_one(w, buf))
			break;
		if (rng_below(&w->rng, 4) == 0)
			sched_yield();
	}
	free(buf);
	return NULL;
}

static void storm_start(struct storm *st, unsigned int max_writes)
{
	for (unsigned int i = 0; i < st->nw; i++) {
		st->w[i].max_writes = max_writes;
		if (pthread_create(&st->w[i].th, NULL, writer_main, &st->w[i]) != 0)
			abort();
	}
}

/* Waits for the writers: each stops after its writes, or at the crash. */
static void storm_wait(struct storm *st)
{
	for (unsigned int i = 0; i < st->nw; i++)
		pthread_join(st->w[i].th, NULL);
}

static unsigned int live_shadows(const struct run *rn)
{
	unsigned int n = 0;

	for (size_t i = 0; i < rn->nsh; i++)
		n += rn->sh[i].state == SH_LIVE;
	return n;
}

/* Reads a whole shadow into a new buffer; NULL if any read fails. */
static unsigned char *read_shadow(struct vss_cow_volume *vol, const vss_cow_id id,
				  uint64_t size, uint32_t bs, uint64_t *rng)
{
	struct vss_cow_shadow *h;
	unsigned char *buf;
	uint64_t off = 0;

	if (vss_cow_shadow_open(vol, id, &h) < 0)
		return NULL;
	buf = malloc(size);
	while (buf && off < size) {
		size_t len = 1 + rng_below(rng, 8 * (uint64_t)bs);
		size_t want = size - off < len ? size - off : len;
		ssize_t n = vss_cow_shadow_read(h, buf + off, len, off);

		if (n != (ssize_t)want) {
			free(buf);
			buf = NULL;
			break;
		}
		off += want;
	}
	vss_cow_shadow_close(h);
	return buf;
}

/*
 * The storm's control: creates (mostly persistent) shadows, deletes them,
 * flushes, at random moments of the writes, until told to stop.  @pin: read
 * each new shadow back at once, to compare with what survives the crash.
 */
static bool control_one(struct storm *st, struct run *rn, uint64_t *rng, bool pin)
{
	{
		uint64_t p = rng_below(rng, 100);
		struct vss_error err = { 0 };

		if (p < 35 && live_shadows(rn) < MAX_LIVE) {
			struct vss_cow_shadow_params prm = { 0 };
			struct cshadow *s = run_add(rn, rn->next_idx, rng_below(rng, 5) != 0);
			int r;

			memcpy(prm.id, s->id, sizeof(prm.id));
			prm.flags = s->persistent ? VSS_COW_SHADOW_PERSISTENT : 0;
			s->c_start = storm_tick(st);
			report(st, K_SSTART, 0, s->idx, s->persistent, 0, s->c_start);
			r = vss_cow_shadow_create(st->vol, &prm, &err);
			s->c_end = storm_tick(st);
			report(st, K_SEND, 0, s->idx, (uint64_t)(int64_t)r, 0, s->c_end);
			trace("  create #%u (%s) seq %llu..%llu: %d\n", s->idx,
			      s->persistent ? "persistent" : "non-persistent",
			      (unsigned long long)s->c_start, (unsigned long long)s->c_end, r);
			s->state = r == 0 ? SH_LIVE : SH_FAILED;
			if (r < 0 && !storm_stopped(st)) {
				snprintf(st->err, sizeof(st->err), "shadow_create: %d (%.150s)", r, err.msg);
				report(st, K_FAIL, 0, __LINE__, (uint64_t)r, 0, 0);
				return false;
			}
			if (r == 0 && s->persistent && s->c_start > st->durable_cut)
				st->durable_cut = s->c_start;
			if (r == 0 && pin && rng_below(rng, 2))
				s->pin_try = read_shadow(st->vol, s->id, st->size, st->bs, rng);
		} else if (p < 50 && live_shadows(rn) > 0) {
			unsigned int k = (unsigned int)rng_below(rng, live_shadows(rn));
			struct cshadow *s = NULL;
			int r;

			for (size_t i = 0; i < rn->nsh; i++)
				if (rn->sh[i].state == SH_LIVE && k-- == 0)
					s = &rn->sh[i];
			s->state = SH_DELETING;
			report(st, K_DSTART, 0, s->idx, 0, 0, storm_tick(st));
			r = vss_cow_shadow_delete(st->vol, s->id, &err);
			report(st, K_DEND, 0, s->idx, (uint64_t)(int64_t)r, 0, storm_tick(st));
			trace("  delete #%u: %d\n", s->idx, r);
			if (r == 0) {
				s->state = SH_DELETED;
			} else if (!storm_stopped(st)) {
				snprintf(st->err, sizeof(st->err), "shadow_delete: %d (%.150s)", r, err.msg);
				report(st, K_FAIL, 0, __LINE__, (uint64_t)r, 0, 0);
				return false;
			}
		} else if (p < 80) {
			uint64_t t = storm_tick(st);
			int r;

			report(st, K_FSTART, 0, 0, 0, 0, t);
			r = vss_cow_flush(st->vol);
			report(st, K_FEND, 0, 0, (uint64_t)(int64_t)r, 0, storm_tick(st));
			trace("  flush at %llu: %d\n", (unsigned long long)t, r);
			if (r == 0 && t > st->durable_cut)
				st->durable_cut = t;
			if (r < 0 && !storm_stopped(st)) {
				snprintf(st->err, sizeof(st->err), "flush: %d", r);
				report(st, K_FAIL, 0, __LINE__, (uint64_t)r, 0, 0);
				return false;
			}
		}
	}
	return true;
}

static void storm_control(struct storm *st, struct run *rn, uint64_t *rng,
			  unsigned int actions, bool pin)
{
	for (unsigned int a = 0; a < actions && !storm_stopped(st); a++) {
		usleep((useconds_t)rng_below(rng, 300));
		if (!control_one(st, rn, rng, pin))
			break;
	}
}

/*
 * The same storm from one thread, writes and control interleaved, so that a
 * failure repeats exactly from its seed (the crash armed on an I/O call).
 */
static void storm_serial(struct storm *st, struct run *rn, uint64_t *rng, unsigned int steps)
{
	unsigned char *buf = malloc(3 * (size_t)st->bs + 4096);

	assert_non_null(buf);
	for (unsigned int i = 0; i < steps && !storm_stopped(st); i++) {
		struct writer *w = &st->w[rng_below(rng, st->nw)];

		if (rng_below(rng, 100) < 80 ? !writer_one(w, buf) : !control_one(st, rn, rng, true))
			break;
	}
	free(buf);
}

/*
 * Whether @got can be what the volume held at a cut of the storm: over the
 * storm's base, every write that ended before seq @def, and at any byte
 * possibly a write that started before @poss instead (in flight at the cut:
 * whole, torn or not at all).  Returns the first byte it cannot explain, or
 * the size.
 */
static uint64_t check_cut(const struct storm *st, const unsigned char *got,
			  uint64_t def, uint64_t poss)
{
	unsigned char *exp = malloc(st->size);
	uint64_t d;

	assert_non_null(exp);
	memcpy(exp, st->base, st->size);
	for (unsigned int t = 0; t < st->nw; t++) {
		for (size_t i = 0; i < st->w[t].nops; i++) {
			const struct wop *op = &st->w[t].ops[i];
			if (op->end < def)
				gen_fill(st->key, op->opid, op->off, op->len, exp + op->off);
		}
	}
	for (unsigned int t = 0; t < st->nw; t++) {
		for (size_t i = 0; i < st->w[t].nops; i++) {
			const struct wop *op = &st->w[t].ops[i];
			if (op->end < def || op->start >= poss)
				continue;
			for (uint64_t x = op->off; x < op->off + op->len; x++)
				if (got[x] != exp[x] && gen_byte(st->key, op->opid, x) == got[x])
					exp[x] = got[x];
		}
	}
	d = first_diff(exp, got, st->size);
	free(exp);
	return d;
}

/* Prints what the storm did to byte @x, when check_cut() cannot explain it. */
static void explain_cut(const struct storm *st, const unsigned char *got, uint64_t x,
			uint64_t def, uint64_t poss)
{
	print_error("  byte %llu holds %#x; base %#x; cut: ended before %llu, started before %llu\n",
		    (unsigned long long)x, got[x], st->base[x], (unsigned long long)def,
		    (unsigned long long)poss);
	for (unsigned int t = 0; t < st->nw; t++) {
		for (size_t i = 0; i < st->w[t].nops; i++) {
			const struct wop *op = &st->w[t].ops[i];
			if (x < op->off || x >= op->off + op->len)
				continue;
			print_error("  writer %u op %llu [%llu, +%u) seq %llu..%lld: byte %#x\n", t,
				    (unsigned long long)op->opid, (unsigned long long)op->off,
				    op->len, (unsigned long long)op->start,
				    op->end == NO_SEQ ? -1ll : (long long)op->end,
				    gen_byte(st->key, op->opid, x));
		}
	}
}

static const char *state_name(enum sh_state s)
{
	static const char *const names[] = { "creating", "live", "failed", "deleting", "deleted" };

	return names[s];
}

/*
 * After a crash (or kill) and reopening: every persistent shadow whose
 * creation returned is there, valid and exact; shadows in doubt (being
 * created or deleted) may be there, and then exact; non-persistent ones are
 * gone; the volume holds every write made durable by a flush.  Then the
 * survivors are pinned and the volume's content becomes the next base.
 */
static void verify_recovered(struct ctx *c, struct run *rn, struct storm *st,
			     struct vss_cow_volume *vol, uint64_t *rng)
{
	struct vss_cow_shadow_info *info = NULL;
	unsigned char *got;
	uint64_t d, off;
	size_t n = 0;
	int r;

	c->phase = "verify shadows";
	CHECK(c, vss_cow_size(vol) == rn->size, "size %llu after recovery",
	      (unsigned long long)vss_cow_size(vol));
	CHECK(c, vss_cow_block_size(vol) == rn->bs, "block size %u after recovery",
	      vss_cow_block_size(vol));
	r = vss_cow_shadow_list(vol, &info, &n);
	CHECK(c, r == 0, "shadow_list: %d", r);
	hold(c->held, info);
	for (size_t i = 0; i < n; i++) {
		struct cshadow *s = run_find_id(rn, info[i].id);

		CHECK(c, s, "recovered shadow %zu (seq %u) was never created", i, info[i].seq);
		CHECK(c, s->persistent, "non-persistent shadow #%u (%s) survived the crash",
		      s->idx, state_name(s->state));
		CHECK(c, info[i].state == VSS_COW_SHADOW_VALID,
		      "shadow #%u (%s) recovered invalid", s->idx, state_name(s->state));
		CHECK(c, info[i].flags & VSS_COW_SHADOW_PERSISTENT, "shadow #%u lost its flag", s->idx);
		CHECK(c, i == 0 || info[i - 1].seq < info[i].seq, "list not in seq order at %zu", i);
		CHECK(c, i == 0 || run_find_id(rn, info[i - 1].id)->idx < s->idx,
		      "list not in creation order at %zu", i);
		CHECK(c, !s->seq || s->seq == info[i].seq, "shadow #%u: seq %u became %u",
		      s->idx, s->seq, info[i].seq);
		s->seq = info[i].seq;
	}
	for (size_t k = 0; k < rn->nsh; k++) {
		struct cshadow *s = &rn->sh[k];
		bool listed = false;

		for (size_t i = 0; i < n; i++)
			listed |= memcmp(info[i].id, s->id, sizeof(vss_cow_id)) == 0;
		CHECK(c, listed || !s->persistent || s->state != SH_LIVE,
		      "persistent shadow #%u (seq %u), whose creation returned, is lost",
		      s->idx, s->seq);
		if (!listed) {
			s->state = SH_DELETED;
			continue;
		}
		got = hold(c->held, read_shadow(vol, s->id, rn->size, rn->bs, rng));
		CHECK(c, got, "reading recovered shadow #%u failed", s->idx);
		if (s->pinned) {
			d = first_diff(got, s->pinned, rn->size);
			CHECK(c, d == rn->size,
			      "shadow #%u (seq %u, from an earlier crash) changed at byte %llu (block %llu)",
			      s->idx, s->seq, (unsigned long long)d, (unsigned long long)(d / rn->bs));
		} else if (s->pin_try) {
			d = check_cut(st, s->pin_try, s->c_start, s->c_end);
			if (d != rn->size)
				explain_cut(st, s->pin_try, d, s->c_start, s->c_end);
			CHECK(c, d == rn->size,
			      "shadow #%u (seq %u) read before the crash is not its instant at byte %llu",
			      s->idx, s->seq, (unsigned long long)d);
			d = first_diff(got, s->pin_try, rn->size);
			if (d != rn->size) {
				print_error("  read before the crash: %#x\n", s->pin_try[d]);
				explain_cut(st, got, d, s->c_start, s->c_end);
			}
			CHECK(c, d == rn->size,
			      "shadow #%u (seq %u) reads differently after the crash at byte %llu (block %llu)",
			      s->idx, s->seq, (unsigned long long)d, (unsigned long long)(d / rn->bs));
		} else {
			d = check_cut(st, got, s->c_start, s->c_end);
			if (d != rn->size) {
				unsigned char v = 0;
				ssize_t nv = vss_cow_read(vol, &v, 1, d);

				explain_cut(st, got, d, s->c_start, s->c_end);
				print_error("  the volume holds %#x there (read: %zd)\n", v, nv);
			}
			CHECK(c, d == rn->size,
			      "shadow #%u (seq %u, %s) is not its instant at byte %llu (block %llu)",
			      s->idx, s->seq, state_name(s->state), (unsigned long long)d,
			      (unsigned long long)(d / rn->bs));
		}
		free(s->pinned);
		free(s->pin_try);
		release(c->held, got, true);
		s->pinned = got;
		s->pin_try = NULL;
		s->state = SH_LIVE;
		c->n_checked++;
	}
	release(c->held, info, false);

	/* forget the shadows that are gone */
	for (size_t k = 0; k < rn->nsh;) {
		if (rn->sh[k].state == SH_DELETED) {
			free(rn->sh[k].pinned);
			free(rn->sh[k].pin_try);
			rn->sh[k] = rn->sh[--rn->nsh];
		} else {
			k++;
		}
	}
	for (size_t k = 1; k < rn->nsh; k++)    /* keep creation order */
		for (size_t j = k; j > 0 && rn->sh[j - 1].idx > rn->sh[j].idx; j--) {
			struct cshadow t = rn->sh[j];
			rn->sh[j] = rn->sh[j - 1];
			rn->sh[j - 1] = t;
		}

	c->phase = "verify volume";
	got = hold(c->held, malloc(rn->size));
	assert_non_null(got);
	for (off = 0; off < rn->size;) {
		size_t len = 1 + rng_below(rng, 8 * (uint64_t)rn->bs);
		size_t want = rn->size - off < len ? rn->size - off : len;
		ssize_t nr = vss_cow_read(vol, got + off, len, off);

		CHECK(c, nr == (ssize_t)want, "volume read at %llu: %zd", (unsigned long long)off, nr);
		off += want;
	}
	for (unsigned int t = 0; t < st->nw; t++)
		c->n_writes += st->w[t].nops;
	d = check_cut(st, got, st->durable_cut, NO_SEQ);
	if (d != rn->size)
		explain_cut(st, got, d, st->durable_cut, NO_SEQ);
	CHECK(c, d == rn->size,
	      "volume lost a write it must keep (flushed, or returned before a kill) at byte %llu (block %llu)",
	      (unsigned long long)d, (unsigned long long)(d / rn->bs));
	release(c->held, got, true);
	free(rn->base);
	rn->base = got;
}

static struct run *run_new(struct ctx *c, uint64_t *rng)
{
	static const uint32_t bss[] = { 4096, 16384, 65536 };
	struct run *rn = calloc(1, sizeof(*rn));

	assert_non_null(rn);
	c->rn = rn;
	rn->key0 = rng_next(rng);
	rn->bs = bss[rng_below(rng, 3)];
	rn->size = (uint64_t)rn->bs * (8 + rng_below(rng, 24));
	if (rn->size > (512u << 10))
		rn->size = 512u << 10;
	if (rng_below(rng, 4) == 0)
		rn->size += 1 + rng_below(rng, rn->bs - 1);     /* a partial last block */
	rn->base = malloc(rn->size);
	assert_non_null(rn->base);
	rng_fill(rng, rn->base, rn->size);
	return rn;
}

/* ==== (a) power loss with crashvfs ==== */

struct crasher {
	struct crashvfs *cv;
	useconds_t delay;
	uint64_t seed;
};

static void *crasher_main(void *arg)
{
	struct crasher *k = arg;

	usleep(k->delay);
	crashvfs_crash(k->cv, k->seed);
	return NULL;
}

static int open_vfs(struct ctx *c, struct run *rn, struct vss_cow_volume **vol,
		    struct vss_error *err)
{
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;

	cfg.block_size = rn->bs;
	return vss_cow_open_vfs(crashvfs_vfs(c->cv), "origin", "diff", &cfg,
				VSS_COW_CREATE, vol, err);
}

/* With VSS_TEST_DUMP=DIR, keeps the files as the crash left them, for study. */
static void dump_files(struct ctx *c, unsigned int epoch)
{
	static const char *const names[] = { "origin", "diff" };
	const char *dir = getenv("VSS_TEST_DUMP");

	for (unsigned int i = 0; dir && i < 2; i++) {
		char path[PATH_MAX];
		void *img;
		size_t len;
		FILE *f;

		if (crashvfs_get(c->cv, names[i], true, &img, &len) < 0)
			continue;
		snprintf(path, sizeof(path), "%s/iter%u-epoch%u.%s", dir, c->iter, epoch, names[i]);
		f = fopen(path, "wb");
		if (f) {
			fwrite(img, 1, len, f);
			fclose(f);
		}
		free(img);
	}
}

/* Reopens after a crash, at times crashing again in the middle of recovery. */
static void reopen_after_crash(struct ctx *c, struct run *rn, uint64_t *rng)
{
	struct vss_error err = { 0 };
	int r;

	c->phase = "recovery";
	if (rng_below(rng, 3) == 0) {
		uint64_t gen = crashvfs_crashes(c->cv);

		crashvfs_crash_after(c->cv, 1 + rng_below(rng, 8), rng_next(rng));
		r = open_vfs(c, rn, &c->vol, &err);
		crashvfs_crash_after(c->cv, 0, 0);
		if (crashvfs_crashes(c->cv) == gen) {
			CHECK(c, r == 0, "open after a crash: %d (%.150s)", r, err.msg);
			return;
		}
		if (r == 0) {
			vss_cow_close(c->vol);
			c->vol = NULL;
		}
		c->n_recovery_crashes++;
		c->phase = "recovery after a crash during recovery";
	}
	r = open_vfs(c, rn, &c->vol, &err);
	CHECK(c, r == 0, "open after a crash: %d (%.150s)", r, err.msg);
}

static void storm_check_errors(struct ctx *c, struct storm *st)
{
	for (unsigned int i = 0; i < st->nw; i++)
		CHECK(c, st->w[i].err[0] == 0, "writer %u: %s", i, st->w[i].err);
	CHECK(c, st->err[0] == 0, "control: %s", st->err);
}

static void crash_iteration(struct ctx *c, uint64_t *rng)
{
	struct run *rn = run_new(c, rng);
	unsigned int epochs = 2 + (unsigned int)rng_below(rng, 2);
	bool serial_only = env_u64("VSS_CRASH_SERIAL", 0) != 0;
	struct vss_error err = { 0 };
	int r;

	assert_int_equal(crashvfs_new(&c->cv), 0);
	assert_int_equal(crashvfs_put(c->cv, "origin", rn->base, rn->size), 0);
	c->phase = "open";
	r = open_vfs(c, rn, &c->vol, &err);
	CHECK(c, r == 0, "open: %d (%.150s)", r, err.msg);

	for (unsigned int e = 0; e < epochs; e++) {
		unsigned int mode = (unsigned int)rng_below(rng, 5);
		struct crasher k = { c->cv, (useconds_t)rng_below(rng, 20000), rng_next(rng) };
		pthread_t kt;
		struct storm *st;

		if (serial_only)        /* VSS_CRASH_SERIAL: every epoch repeatable */
			mode = 4;
		c->phase = mode == 0 ? "storm, crash from a thread" :
			   mode == 1 ? "storm, crash inside an I/O call" :
			   mode == 2 ? "storm, crash between operations" :
			   mode == 3 ? "storm, crash inside close" :
				       "serial storm, crash inside an I/O call";
		st = c->st = storm_new(rn, c->vol, c->cv, -1, rng);
		trace("iteration %u epoch %u: %s; block %u, size %llu, %u writers\n", c->iter, e,
		      c->phase, rn->bs, (unsigned long long)rn->size, st->nw);
		if (mode == 1 || mode == 4)
			crashvfs_crash_after(c->cv, 1 + rng_below(rng, 600), k.seed);
		if (mode == 4) {
			storm_serial(st, rn, rng, 50 + (unsigned int)rng_below(rng, 400));
		} else {
			storm_start(st, 40 + (unsigned int)rng_below(rng, 160));
			if (mode == 0)
				assert_int_equal(pthread_create(&kt, NULL, crasher_main, &k), 0);
			storm_control(st, rn, rng, 10 + (unsigned int)rng_below(rng, 30), true);
			storm_wait(st);
		}
		if (mode == 0)
			pthread_join(kt, NULL);
		crashvfs_crash_after(c->cv, 0, 0);
		storm_check_errors(c, st);
		if (crashvfs_crashes(c->cv) == st->cv_gen) {
			if (mode == 2 && rng_below(rng, 2)) {
				uint64_t t = storm_tick(st);
				r = vss_cow_flush(c->vol);
				CHECK(c, r == 0, "flush: %d", r);
				st->durable_cut = t;
			}
			if (mode == 3) {
				uint64_t gen = crashvfs_crashes(c->cv);
				uint64_t t = storm_tick(st);

				crashvfs_crash_after(c->cv, 1 + rng_below(rng, 12), k.seed);
				r = vss_cow_close(c->vol);
				c->vol = NULL;
				crashvfs_crash_after(c->cv, 0, 0);
				if (crashvfs_crashes(c->cv) == gen) {
					CHECK(c, r == 0, "close: %d", r);
					st->durable_cut = t;
				}
			}
			if (crashvfs_crashes(c->cv) == st->cv_gen)
				crashvfs_crash(c->cv, k.seed);
		}
		if (c->vol) {
			vss_cow_close(c->vol);      /* its files are dead: fails, frees */
			c->vol = NULL;
		}
		dump_files(c, e);
		c->n_crashes++;
		reopen_after_crash(c, rn, rng);
		verify_recovered(c, rn, st, c->vol, rng);
		storm_free(st);
		c->st = NULL;
	}

	/* a clean close keeps everything */
	c->phase = "clean close and reopen";
	{
		struct storm *st = c->st = storm_new(rn, c->vol, c->cv, -1, rng);

		r = vss_cow_close(c->vol);
		c->vol = NULL;
		CHECK(c, r == 0, "close: %d", r);
		crashvfs_crash(c->cv, rng_next(rng));
		r = open_vfs(c, rn, &c->vol, &err);
		CHECK(c, r == 0, "open: %d (%.150s)", r, err.msg);
		st->durable_cut = NO_SEQ;
		verify_recovered(c, rn, st, c->vol, rng);
		storm_free(st);
		c->st = NULL;
	}
	r = vss_cow_close(c->vol);
	c->vol = NULL;
	CHECK(c, r == 0, "close: %d", r);
	crashvfs_free(c->cv);
	c->cv = NULL;
	run_free(rn);
	c->rn = NULL;
}

static void test_crash_storm(void **state)
{
	struct ctx *c = *state;
	unsigned int iters = (unsigned int)env_u64("VSS_CRASH_ITERS", 40);

	print_message("test_crash: power loss, %u iterations, VSS_TEST_SEED=%llu\n", iters,
		      (unsigned long long)c->base_seed);
	for (unsigned int i = 0; i < iters; i++) {
		uint64_t rng;

		start(c, "power loss", i);
		rng = c->seed;
		crash_iteration(c, &rng);
	}
	print_message("test_crash: %lu crashes (%lu more during recovery), %lu writes, "
		      "%lu shadows found exact after a crash\n", c->n_crashes,
		      c->n_recovery_crashes, c->n_writes, c->n_checked);
}

/* ==== (b) SIGKILL of a real process ==== */

static void child_fail(int fd, int line, int err)
{
	struct krec r = { K_FAIL, 0, (uint64_t)line, (uint64_t)(int64_t)err, 0, 0 };

	if (write(fd, &r, sizeof(r)) < 0)
		_exit(3);
	_exit(2);
}

/* The child: a write storm on real files until the parent kills it.  It
 * inherits the run (shadows, next index) and the storm's key from the parent. */
static void child_main(struct ctx *c, struct run *rn, uint64_t key, uint64_t rng, int fd)
{
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_error err = { 0 };
	char origin[PATH_MAX], diff[PATH_MAX];
	struct vss_cow_volume *vol;
	struct storm *st;
	struct krec ready = { K_READY, 0, 0, 0, 0, 0 };
	int r;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	snprintf(origin, sizeof(origin), "%s/origin.img", c->dir);
	snprintf(diff, sizeof(diff), "%s/origin.diff", c->dir);
	cfg.block_size = rn->bs;
	r = vss_cow_open(origin, diff, &cfg, VSS_COW_CREATE, &vol, &err);
	if (r < 0)
		child_fail(fd, __LINE__, r);
	st = storm_new(rn, vol, NULL, fd, &rng);
	st->key = key;
	if (write(fd, &ready, sizeof(ready)) < 0)
		_exit(3);
	storm_start(st, 100000);
	storm_control(st, rn, &rng, 100000, false);
	for (;;)
		pause();
}

/* Folds one record of the child into the parent's picture of the storm. */
static void apply_krec(struct ctx *c, struct run *rn, struct storm *st, const struct krec *k)
{
	struct writer *w = k->thread < MAX_WRITERS ? &st->w[k->thread] : NULL;
	struct cshadow *s;
	struct wop *op;

	switch (k->type) {
	case K_WSTART:
		CHECK(c, w && k->c <= UINT32_MAX, "bad record");
		op = writer_push(w);
		assert_non_null(op);
		*op = (struct wop){ k->a, k->b, (uint32_t)k->c, k->d, NO_SEQ };
		break;
	case K_WEND:
		CHECK(c, w && w->nops && w->ops[w->nops - 1].opid == k->a, "unmatched write end");
		w->ops[w->nops - 1].end = k->d;
		break;
	case K_SSTART:
		s = run_add(rn, (uint32_t)k->a, k->b != 0);
		s->c_start = k->d;
		break;
	case K_SEND:
		s = run_find_idx(rn, (uint32_t)k->a);
		CHECK(c, s, "unmatched create end");
		s->c_end = k->d;
		s->state = (int64_t)k->b == 0 ? SH_LIVE : SH_FAILED;
		if (s->state == SH_LIVE && s->persistent && s->c_start > st->durable_cut)
			st->durable_cut = s->c_start;
		break;
	case K_DSTART:
		s = run_find_idx(rn, (uint32_t)k->a);
		CHECK(c, s, "delete of an unknown shadow");
		s->state = SH_DELETING;
		break;
	case K_DEND:
		s = run_find_idx(rn, (uint32_t)k->a);
		CHECK(c, s, "delete of an unknown shadow");
		if ((int64_t)k->b == 0)
			s->state = SH_DELETED;
		break;
	case K_FSTART:
		st->flush_start = k->d;
		break;
	case K_FEND:
		if ((int64_t)k->b == 0 && st->flush_start > st->durable_cut)
			st->durable_cut = st->flush_start;
		break;
	case K_FAIL:
		CHECK(c, false, "the child failed at line %llu: %lld",
		      (unsigned long long)k->a, (long long)(int64_t)k->b);
		break;
	default:
		break;
	}
}

static void kill_round(struct ctx *c, struct run *rn, uint64_t *rng)
{
	unsigned char rbuf[sizeof(struct krec) * 64];
	size_t have = 0;
	uint64_t key = rng_next(rng), child_rng = rng_next(rng);
	int delay_ms = 10 + (int)rng_below(rng, 150);
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_error err = { 0 };
	char origin[PATH_MAX], diff[PATH_MAX];
	bool ready = false, eof = false;
	struct storm *st;
	int fds[2], status, r;
	struct timespec t0, t;

	c->phase = "child";
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	c->child = fork();
	assert_true(c->child >= 0);
	if (c->child == 0) {
		close(fds[0]);
		child_main(c, rn, key, child_rng, fds[1]);
		_exit(0);
	}
	close(fds[1]);

	/* the parent's copy of the storm, built from the child's records */
	st = c->st = calloc(1, sizeof(*st));
	assert_non_null(st);
	st->key = key;
	st->size = rn->size;
	st->bs = rn->bs;
	st->base = rn->base;
	st->nw = MAX_WRITERS;
	st->pipe_fd = -1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!eof) {
		struct pollfd pfd = { fds[0], POLLIN, 0 };
		long elapsed;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t);
		elapsed = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (c->child > 0 && ready && elapsed >= delay_ms) {
			kill(c->child, SIGKILL);
			waitpid(c->child, &status, 0);
			c->child = 0;
		}
		if (c->child > 0 && !ready && elapsed > 30000)
			break;      /* the child never got going: reported below */
		if (poll(&pfd, 1, c->child > 0 ? 1 : 1000) <= 0)
			continue;
		n = read(fds[0], rbuf + have, sizeof(rbuf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			eof = true;
			break;
		}
		have += (size_t)n;
		size_t used = 0;
		for (; have - used >= sizeof(struct krec); used += sizeof(struct krec)) {
			struct krec k;

			memcpy(&k, rbuf + used, sizeof(k));
			if (k.type == K_READY) {
				ready = true;
				clock_gettime(CLOCK_MONOTONIC, &t0);
			} else if (k.type == K_FAIL) {
				if (c->child > 0) {
					kill(c->child, SIGKILL);
					waitpid(c->child, &status, 0);
					c->child = 0;
				}
				apply_krec(c, rn, st, &k);
			} else {
				apply_krec(c, rn, st, &k);
			}
		}
		memmove(rbuf, rbuf + used, have - used);
		have -= used;
	}
	close(fds[0]);
	if (c->child > 0) {
		kill(c->child, SIGKILL);
		waitpid(c->child, &status, 0);
		c->child = 0;
	}
	CHECK(c, ready, "the child never opened the volume");

	snprintf(origin, sizeof(origin), "%s/origin.img", c->dir);
	snprintf(diff, sizeof(diff), "%s/origin.diff", c->dir);
	cfg.block_size = rn->bs;
	c->phase = "recovery after SIGKILL";
	r = vss_cow_open(origin, diff, &cfg, VSS_COW_CREATE, &c->vol, &err);
	CHECK(c, r == 0, "open after SIGKILL: %d (%.150s)", r, err.msg);
	/* A killed process loses nothing it was told was written: every write
	 * that returned is in the volume (those in flight may or may not be). */
	st->durable_cut = NO_SEQ - 1;
	verify_recovered(c, rn, st, c->vol, rng);
	r = vss_cow_close(c->vol);
	c->vol = NULL;
	CHECK(c, r == 0, "close: %d", r);
	storm_free(st);
	c->st = NULL;
}

static void test_sigkill(void **state)
{
	struct ctx *c = *state;
	unsigned int rounds = (unsigned int)env_u64("VSS_KILL_ROUNDS", 8);
	char origin[PATH_MAX];
	uint64_t rng;
	struct run *rn;
	int fd;

	start(c, "sigkill", 0);
	rng = c->seed;
	print_message("test_crash: SIGKILL, %u rounds, VSS_TEST_SEED=%llu\n", rounds,
		      (unsigned long long)c->base_seed);
	make_tempdir(c, "kill");
	rn = run_new(c, &rng);
	snprintf(origin, sizeof(origin), "%s/origin.img", c->dir);
	fd = open(origin, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(c, fd >= 0, "creating the origin: %s", strerror(errno));
	CHECK(c, pwrite(fd, rn->base, rn->size, 0) == (ssize_t)rn->size, "writing the origin");
	close(fd);
	for (unsigned int i = 0; i < rounds; i++) {
		c->iter = i;
		kill_round(c, rn, &rng);
	}
	print_message("test_crash: %u kills, %lu writes, %lu shadows found exact after a kill\n",
		      rounds, c->n_writes, c->n_checked);
}

/* ==== (c) EIO and ENOSPC ==== */

struct fshadow {
	vss_cow_id id;
	bool persistent;
	bool invalid;               /* seen invalid: must never come back valid */
	bool gone;                  /* not listed (deleted, or dropped by the engine) */
	bool deleted;               /* by us, and the delete returned 0 */
	bool failed;                /* its creation returned an error */
	unsigned char *data;
	struct vss_cow_shadow *h;
};

struct fmodel {
	uint64_t size;
	uint32_t bs;
	unsigned char *ref;
	struct fshadow sh[16];
	unsigned int nsh;
	bool origin_fault;          /* the armed fault is on the origin */
	pthread_mutex_t ev_lock;
	unsigned int ev_meta;       /* METADATA_ERROR events */
	struct { enum vss_cow_event_type type; vss_cow_id id; } ev[256];
	unsigned int nev;
};

static void fmodel_close_handles(struct fmodel *fm)
{
	for (unsigned int i = 0; fm && i < fm->nsh; i++) {
		if (fm->sh[i].h)
			vss_cow_shadow_close(fm->sh[i].h);
		fm->sh[i].h = NULL;
	}
}

/* Frees the model; the volume whose events it receives must be closed. */
static void fmodel_free(struct fmodel *fm)
{
	if (!fm)
		return;
	fmodel_close_handles(fm);
	for (unsigned int i = 0; i < fm->nsh; i++)
		free(fm->sh[i].data);
	free(fm->ref);
	pthread_mutex_destroy(&fm->ev_lock);
	free(fm);
}

static void fault_event(void *arg, const struct vss_cow_event *ev)
{
	struct fmodel *fm = arg;

	pthread_mutex_lock(&fm->ev_lock);
	if (ev->type == VSS_COW_EV_METADATA_ERROR)
		fm->ev_meta++;
	if (fm->nev < sizeof(fm->ev) / sizeof(fm->ev[0])) {
		fm->ev[fm->nev].type = ev->type;
		memcpy(fm->ev[fm->nev].id, ev->shadow, sizeof(vss_cow_id));
		fm->nev++;
	}
	pthread_mutex_unlock(&fm->ev_lock);
}

static bool fault_event_seen(struct fmodel *fm, enum vss_cow_event_type type,
			     const vss_cow_id id)
{
	bool seen;

	pthread_mutex_lock(&fm->ev_lock);
	seen = fm->ev_meta > 0;
	for (unsigned int i = 0; i < fm->nev && !seen; i++)
		seen = fm->ev[i].type == type &&
		       memcmp(fm->ev[i].id, id, sizeof(vss_cow_id)) == 0;
	seen |= fm->nev == sizeof(fm->ev) / sizeof(fm->ev[0]);
	pthread_mutex_unlock(&fm->ev_lock);
	return seen;
}

static int fault_open(struct ctx *c, struct fmodel *fm, struct vss_error *err)
{
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;

	cfg.block_size = fm->bs;
	cfg.event = fault_event;
	cfg.event_arg = fm;
	return vss_cow_open_vfs(crashvfs_vfs(c->cv), "origin", "diff", &cfg,
				VSS_COW_CREATE, &c->vol, err);
}

static void fault_write(struct ctx *c, struct fmodel *fm, uint64_t *rng)
{
	unsigned char buf[3 * 16384 + 4096];
	uint64_t off, hit = crashvfs_faults_hit(c->cv);
	uint32_t len;
	ssize_t n;

	pick_write(rng, 0, fm->size, fm->bs, &off, &len);
	rng_fill(rng, buf, len);
	n = vss_cow_write(c->vol, buf, len, off);
	trace("  write %u at %llu: %zd (faults hit %llu)\n", len, (unsigned long long)off, n,
	      (unsigned long long)crashvfs_faults_hit(c->cv));
	if (n != (ssize_t)len) {
		/* only a failing origin may fail a write, and then with its error */
		CHECK(c, fm->origin_fault && crashvfs_faults_hit(c->cv) > hit && n < 0,
		      "write %u at %llu returned %zd (diff area faults must not fail writes)",
		      len, (unsigned long long)off, n);
		n = vss_cow_write(c->vol, buf, len, off);
		CHECK(c, n == (ssize_t)len, "write after a one-shot origin fault: %zd", n);
	}
	memcpy(fm->ref + off, buf, len);
}

static void fault_create(struct ctx *c, struct fmodel *fm, uint64_t *rng, bool sticky_fired)
{
	struct vss_cow_shadow_params p = { 0 };
	struct vss_error err = { 0 };
	uint64_t hit = crashvfs_faults_hit(c->cv);
	struct fshadow *s;
	int r;

	if (fm->nsh == sizeof(fm->sh) / sizeof(fm->sh[0]))
		return;
	rng_fill(rng, p.id, sizeof(p.id));
	p.flags = rng_below(rng, 3) ? VSS_COW_SHADOW_PERSISTENT : 0;
	r = vss_cow_shadow_create(c->vol, &p, &err);
	trace("  create shadow %u (%s): %d %s\n", fm->nsh, p.flags ? "persistent" : "non-persistent",
	      r, r < 0 ? err.msg : "");
	/* failing is fair once the diff area has failed */
	CHECK(c, r == 0 || crashvfs_faults_hit(c->cv) > 0 || fm->ev_meta > 0,
	      "shadow_create with no fault: %d (%.150s)", r, err.msg);
	CHECK(c, r < 0 || !(sticky_fired && p.flags && hit > 0),
	      "persistent shadow_create returned 0 while every diff-area write or sync fails");
	s = &fm->sh[fm->nsh++];
	memset(s, 0, sizeof(*s));
	memcpy(s->id, p.id, sizeof(s->id));
	s->persistent = p.flags != 0;
	s->data = malloc(fm->size);
	assert_non_null(s->data);
	memcpy(s->data, fm->ref, fm->size);
	if (r < 0) {
		/* its record may still reach the disk: if it ever shows up, it
		 * must be exact or invalid like any other */
		s->gone = true;
		s->failed = true;
		c->n_failed_creates++;
		return;
	}
	r = vss_cow_shadow_open(c->vol, s->id, &s->h);
	if (r == -ENOENT) {         /* dropped already: the diff area has failed */
		CHECK(c, crashvfs_faults_hit(c->cv) > 0, "new shadow cannot be opened");
		s->h = NULL;
		s->gone = true;
	} else {
		CHECK(c, r == 0, "shadow_open: %d", r);
	}
}

/* Whatever the faults did: the volume is exact, every shadow is exact,
 * invalid (reads -EIO) or gone, and says so; nothing invalid comes back. */
static void fault_check(struct ctx *c, struct fmodel *fm, bool reopened, bool lenient,
			uint64_t *rng)
{
	struct vss_cow_shadow_info *info = NULL;
	unsigned char *got = hold(c->held, malloc(fm->size));
	bool faults;
	size_t n = 0;
	uint64_t d, off;
	int r;

	/* The flusher works behind the writes: let it meet its faults first. */
	vss_cow_quiesce(c->vol);
	faults = crashvfs_faults_hit(c->cv) > 0;
	assert_non_null(got);
	for (off = 0; off < fm->size;) {
		size_t len = 1 + rng_below(rng, 2 * (uint64_t)fm->bs);
		size_t want = fm->size - off < len ? fm->size - off : len;
		ssize_t nr = vss_cow_read(c->vol, got + off, len, off);

		CHECK(c, nr == (ssize_t)want, "volume read: %zd", nr);
		off += want;
	}
	d = first_diff(got, fm->ref, fm->size);
	CHECK(c, d == fm->size, "volume differs at byte %llu", (unsigned long long)d);

	r = vss_cow_shadow_list(c->vol, &info, &n);
	CHECK(c, r == 0, "shadow_list: %d", r);
	hold(c->held, info);
	trace("  listed:");
	for (size_t i = 0; i < n; i++)
		trace(" seq %u%s", info[i].seq, info[i].state == VSS_COW_SHADOW_VALID ? "" : " (invalid)");
	trace("\n");
	for (size_t i = 0; i < n; i++) {
		struct fshadow *s = NULL;

		for (unsigned int k = 0; k < fm->nsh; k++)
			if (memcmp(fm->sh[k].id, info[i].id, sizeof(vss_cow_id)) == 0)
				s = &fm->sh[k];
		CHECK(c, s, "listed shadow %zu was never created", i);
		if (!s->gone)
			continue;
		/* on reopening, a shadow may come back from the durable log if a
		 * crash, a failed close or a failed diff area lost its deletion
		 * (ours or the engine's); then it is checked like the others */
		CHECK(c, reopened && (faults || lenient),
		      "shadow %u (%s) came back %s", (unsigned int)(s - fm->sh),
		      s->deleted ? "deleted" : s->failed ? "creation failed" : "dropped by the engine",
		      reopened ? "after a clean close" : "while open");
		CHECK(c, s->persistent, "non-persistent shadow %u came back after reopening",
		      (unsigned int)(s - fm->sh));
		s->gone = false;
		s->deleted = false;
		c->n_back++;
		r = vss_cow_shadow_open(c->vol, s->id, &s->h);
		CHECK(c, r == 0, "opening a listed shadow: %d", r);
	}
	for (unsigned int k = 0; k < fm->nsh; k++) {
		struct fshadow *s = &fm->sh[k];
		const struct vss_cow_shadow_info *in = NULL;
		ssize_t nr;
		char ch;

		if (s->gone)
			continue;
		for (size_t i = 0; i < n; i++)
			if (memcmp(info[i].id, s->id, sizeof(vss_cow_id)) == 0)
				in = &info[i];
		if (!in) {
			CHECK(c, faults || (reopened && !s->persistent),
			      "shadow %u vanished with no fault", k);
			CHECK(c, reopened || fault_event_seen(fm, VSS_COW_EV_SHADOW_DELETED, s->id),
			      "shadow %u vanished without an event", k);
			if (s->h && !reopened) {
				nr = vss_cow_shadow_read(s->h, &ch, 1, 0);
				CHECK(c, nr == -ESTALE || nr == -EIO,
				      "read of a vanished shadow: %zd", nr);
			}
			if (s->h)
				vss_cow_shadow_close(s->h);
			s->h = NULL;
			s->gone = true;
			c->n_gone++;
			continue;
		}
		CHECK(c, !reopened || s->persistent, "non-persistent shadow %u survived reopening (%s)",
		      k, in->state == VSS_COW_SHADOW_VALID ? "valid" : "invalid");
		if (in->state == VSS_COW_SHADOW_INVALID) {
			CHECK(c, faults, "shadow %u invalid with no fault", k);
			CHECK(c, s->invalid || reopened ||
			      fault_event_seen(fm, VSS_COW_EV_SHADOW_INVALID, s->id),
			      "shadow %u turned invalid without an event", k);
			c->n_invalid += !s->invalid;
			s->invalid = true;
			if (s->h) {
				nr = vss_cow_shadow_read(s->h, &ch, 1, rng_below(rng, fm->size));
				CHECK(c, nr == -EIO, "read of invalid shadow %u: %zd, not -EIO", k, nr);
			}
			continue;
		}
		/* invalid is for good while open; a reopened diff area that lost
		 * the invalidation may show the shadow again, but only exact */
		CHECK(c, !s->invalid || reopened, "shadow %u was invalid and is listed valid again", k);
		CHECK(c, s->h, "valid shadow %u has no handle", k);
		for (off = 0; off < fm->size;) {
			size_t len = 1 + rng_below(rng, 2 * (uint64_t)fm->bs);
			size_t want = fm->size - off < len ? fm->size - off : len;

			nr = vss_cow_shadow_read(s->h, got + off, len, off);
			CHECK(c, nr == (ssize_t)want, "read of shadow %u, listed valid: %zd", k, nr);
			off += want;
		}
		d = first_diff(got, s->data, fm->size);
		CHECK(c, d == fm->size,
		      "shadow %u, listed valid%s, differs from its instant at byte %llu (block %llu)",
		      k, s->invalid ? " after reopening although it was invalid" : "",
		      (unsigned long long)d, (unsigned long long)(d / fm->bs));
		s->invalid = false;
	}
	release(c->held, info, false);
	release(c->held, got, false);
}

static void fault_steps(struct ctx *c, struct fmodel *fm, uint64_t *rng, unsigned int count,
			bool sticky_fired)
{
	for (unsigned int i = 0; i < count; i++) {
		uint64_t p = rng_below(rng, 100);
		struct vss_error err = { 0 };

		if (p < 60) {
			unsigned int w = 1 + (unsigned int)rng_below(rng, 8);
			while (w--)
				fault_write(c, fm, rng);
		} else if (p < 85) {
			fault_create(c, fm, rng, sticky_fired);
		} else if (fm->nsh) {
			unsigned int k = (unsigned int)rng_below(rng, fm->nsh);
			struct fshadow *s = &fm->sh[k];
			int r;

			if (s->gone)
				continue;
			r = vss_cow_shadow_delete(c->vol, s->id, &err);
			trace("  delete shadow %u: %d\n", k, r);
			CHECK(c, r == 0 || (r == -ENOENT && crashvfs_faults_hit(c->cv) > 0),
			      "shadow_delete: %d (%.150s)", r, err.msg);
			if (s->h)
				vss_cow_shadow_close(s->h);
			s->h = NULL;
			s->gone = true;
			s->deleted = r == 0;
		}
		fault_check(c, fm, false, false, rng);
	}
}

static void fault_iteration(struct ctx *c, uint64_t *rng)
{
	static const int errs[] = { -EIO, -ENOSPC };
	struct fmodel *fm = calloc(1, sizeof(*fm));
	struct vss_error err = { 0 };
	enum crashvfs_op op;
	const char *target;
	bool sticky, crashed;
	int r, e, close_r;

	assert_non_null(fm);
	c->fm = fm;
	pthread_mutex_init(&fm->ev_lock, NULL);
	fm->bs = rng_below(rng, 2) ? 4096 : 16384;
	fm->size = (uint64_t)fm->bs * (16 + rng_below(rng, 16));
	fm->ref = malloc(fm->size);
	assert_non_null(fm->ref);
	rng_fill(rng, fm->ref, fm->size);
	assert_int_equal(crashvfs_new(&c->cv), 0);
	assert_int_equal(crashvfs_put(c->cv, "origin", fm->ref, fm->size), 0);
	c->phase = "open";
	trace("fault iteration %u: block %u, size %llu\n", c->iter, fm->bs,
	      (unsigned long long)fm->size);
	r = fault_open(c, fm, &err);
	CHECK(c, r == 0, "open: %d (%.150s)", r, err.msg);

	c->phase = "before the fault";
	fault_steps(c, fm, rng, 2 + (unsigned int)rng_below(rng, 6), false);

	fm->origin_fault = rng_below(rng, 8) == 0;
	if (fm->origin_fault) {
		target = "origin";
		op = CRASHVFS_PWRITE;
		e = -EIO;
		sticky = false;
	} else {
		target = "diff";
		op = rng_below(rng, 2) ? CRASHVFS_PWRITE : CRASHVFS_SYNC;
		e = errs[rng_below(rng, 2)];
		sticky = rng_below(rng, 2);
	}
	c->phase = op == CRASHVFS_SYNC ? (sticky ? "diff sync failing for good" : "diff sync failing once") :
		   fm->origin_fault ? "origin write failing once" :
		   sticky ? "diff write failing for good" : "diff write failing once";
	{
		uint64_t after = rng_below(rng, 12);

		trace(" %s: %s %s fails with %d after %llu more calls\n", c->phase, target,
		      op == CRASHVFS_SYNC ? "sync" : "pwrite", e, (unsigned long long)after);
		r = crashvfs_fail(c->cv, target, op, after, e, sticky ? CRASHVFS_STICKY : 0);
		assert_int_equal(r, 0);
	}
	fault_steps(c, fm, rng, 4 + (unsigned int)rng_below(rng, 10), sticky);

	c->phase = "after the fault cleared";
	trace(" %s\n", c->phase);
	crashvfs_clear_faults(c->cv);
	fault_steps(c, fm, rng, 2 + (unsigned int)rng_below(rng, 4), false);

	fmodel_close_handles(fm);
	crashed = rng_below(rng, 2);
	if (!crashed) {
		c->phase = "close and reopen";
		r = vss_cow_close(c->vol);  /* may report the earlier failure */
	} else {
		c->phase = "flush, crash and reopen";
		r = vss_cow_flush(c->vol);
		CHECK(c, r == 0, "flush with the faults cleared: %d", r);
		crashvfs_crash(c->cv, rng_next(rng));
		vss_cow_close(c->vol);
	}
	c->vol = NULL;
	close_r = r;
	trace(" %s (close: %d)\n", c->phase, r);
	r = fault_open(c, fm, &err);
	CHECK(c, r == 0, "reopening after the faults: %d (%.150s)", r, err.msg);
	for (unsigned int k = 0; k < fm->nsh; k++) {
		if (fm->sh[k].gone)
			continue;
		r = vss_cow_shadow_open(c->vol, fm->sh[k].id, &fm->sh[k].h);
		if (r < 0)
			fm->sh[k].h = NULL;
	}
	fault_check(c, fm, true, crashed || close_r != 0, rng);
	c->phase = "after reopening";
	fault_steps(c, fm, rng, 3, false);

	c->n_faults += crashvfs_faults_hit(c->cv);
	fmodel_close_handles(fm);
	r = vss_cow_close(c->vol);
	c->vol = NULL;
	fmodel_free(fm);
	c->fm = NULL;
	crashvfs_free(c->cv);
	c->cv = NULL;
}

static void test_io_faults(void **state)
{
	struct ctx *c = *state;
	unsigned int iters = (unsigned int)env_u64("VSS_FAULT_ITERS", 60);

	print_message("test_crash: I/O faults, %u iterations, VSS_TEST_SEED=%llu\n", iters,
		      (unsigned long long)c->base_seed);
	for (unsigned int i = 0; i < iters; i++) {
		uint64_t rng;

		start(c, "io faults", i);
		rng = c->seed;
		fault_iteration(c, &rng);
	}
	print_message("test_crash: %lu failed I/O calls; %lu shadows invalidated, %lu gone, "
		      "%lu back after reopening, %lu creations failed\n", c->n_faults,
		      c->n_invalid, c->n_gone, c->n_back, c->n_failed_creates);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crashvfs_basics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crashvfs_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crashvfs_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_storm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_faults, setup, teardown),
	};

	return cmocka_run_group_tests_name("engine crash", tests, NULL, NULL);
}
