/*
 * tests/engine/test_model.c - randomized model-based test of the copy-on-write
 * engine (include/vss/cow.h): after every step the volume and each shadow are
 * compared with a plain in-memory copy, on real files and on crashvfs; each
 * bookmark's changed blocks with the blocks written since its shadow's
 * instant, exactly, through deletions, reopenings and reverts.
 *
 * VSS_TEST_SEED=n repeats a run (the seed is printed); VSS_TEST_ROUNDS=n sets
 * the steps per case; VSS_TEST_VERBOSE=1 traces the steps.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include <vss/cow.h>
#include "engine/cow_i.h"
#include "crashvfs.h"
#include "testutil.h"

#define MAX_LIVE     8     /* shadows kept alive at once */
#define MAX_BOOKMARKS 6
#define MAX_THREADS  4

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the model ---- */

struct mshadow {
	vss_cow_id id;
	vss_cow_id set_id;
	uint32_t flags;
	uint32_t gen;               /* writes after it carry a generation >= this */
	uint32_t seq;               /* what the engine listed at creation */
	uint64_t created_ns;
	bool invalid;
	unsigned char *data;        /* the volume at its instant */
	struct vss_cow_shadow *h;   /* an open handle, or NULL */
};

/* A bookmark: the blocks written since its shadow's instant, by the model. */
struct mbook {
	vss_cow_id id;
	uint32_t seq, gen;          /* its shadow's */
	bool lost;                  /* the engine said so (only with a diff area limit) */
	unsigned char *since;       /* a byte per block: written since */
	unsigned char *maybe;       /* a byte per block: written after a shadow the
				     * volume was reverted to, so back as it was:
				     * may be listed too (doc/cli.md, vss diff) */
};

/* The generations in which a block was written, ascending, no repeats. */
struct block_hist {
	uint32_t *gens;
	uint32_t n, cap;
};

struct event_rec {
	enum vss_cow_event_type type;
	vss_cow_id id;
	int error;
};

struct test_case {
	const char *name;
	uint32_t block_size;
	uint64_t size;
	bool vfs;                   /* crashvfs instead of real files */
};

struct model {
	const struct test_case *tc;
	uint64_t base_seed;         /* VSS_TEST_SEED, or made from the time */
	uint64_t seed;              /* this case's */
	uint64_t rng;
	unsigned int round;
	const char *step;

	char dir[64];               /* temp dir of the real files, or "" */
	char origin[PATH_MAX];
	char diff[PATH_MAX];
	struct crashvfs *cv;
	struct vss_cow_volume *vol;

	uint32_t bs;
	uint64_t size;
	uint64_t nblocks;
	uint64_t max_diff;
	unsigned char *ref;         /* the volume as it must read */
	struct mshadow sh[MAX_LIVE + 1];    /* live shadows, oldest first */
	unsigned int nsh;
	uint32_t gen;               /* shadows created so far */
	uint32_t max_seq;           /* highest seq ever listed */
	pthread_mutex_t hist_lock;
	struct block_hist *hist;
	struct mbook bm[MAX_BOOKMARKS];     /* oldest first; hist_lock for since[] */
	unsigned int nbm;

	pthread_mutex_t ev_lock;
	struct event_rec *ev;
	size_t nev, evcap;

	void *held[HELD_MAX];       /* see hold() */

	/* what the run went through, printed at the end */
	unsigned int n_created, n_deleted, n_dropped, n_invalid, n_reopen, n_conc, n_extents;
	unsigned int n_bookmarks, n_reverts, n_lost;
};

static void model_fail(struct model *m, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void model_fail(struct model *m, int line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	print_error("test_model: case %s seed %llu round %u step %s (line %d): %s\n"
		    "  repeat with VSS_TEST_SEED=%llu\n",
		    m->tc->name, (unsigned long long)m->seed, m->round,
		    m->step ? m->step : "-", line, msg,
		    (unsigned long long)m->base_seed);
	fail();
}

#define CHECK(m, cond, ...) \
	do { if (!(cond)) model_fail((m), __LINE__, __VA_ARGS__); } while (0)

/* The first 8 bytes of an id in hex, for messages (a few may be live at once). */
static const char *idstr(const vss_cow_id id)
{
	static _Thread_local char bufs[4][20];
	static _Thread_local unsigned int next;
	char *s = bufs[next++ % 4];

	for (int i = 0; i < 8; i++)
		snprintf(s + 2 * i, 3, "%02x", id[i]);
	return s;
}

static void on_event(void *arg, const struct vss_cow_event *ev)
{
	struct model *m = arg;

	pthread_mutex_lock(&m->ev_lock);
	if (m->nev == m->evcap) {
		size_t cap = m->evcap ? m->evcap * 2 : 16;
		struct event_rec *p = realloc(m->ev, cap * sizeof(*p));
		if (!p) {
			pthread_mutex_unlock(&m->ev_lock);
			return;
		}
		m->ev = p;
		m->evcap = cap;
	}
	m->ev[m->nev].type = ev->type;
	memcpy(m->ev[m->nev].id, ev->shadow, sizeof(vss_cow_id));
	m->ev[m->nev].error = ev->error;
	m->nev++;
	pthread_mutex_unlock(&m->ev_lock);
}

static void hist_add(struct model *m, uint64_t block, uint32_t gen)
{
	struct block_hist *h = &m->hist[block];

	if (h->n && h->gens[h->n - 1] == gen)
		return;
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 4;
		uint32_t *p = realloc(h->gens, cap * sizeof(*p));
		assert_non_null(p);
		h->gens = p;
		h->cap = cap;
	}
	h->gens[h->n++] = gen;
}

/* Whether @block was written in a generation in [lo, hi). */
static bool hist_any(const struct model *m, uint64_t block, uint32_t lo, uint32_t hi)
{
	const struct block_hist *h = &m->hist[block];

	for (uint32_t i = h->n; i-- > 0;) {
		if (h->gens[i] < lo)
			return false;
		if (h->gens[i] < hi)
			return true;
	}
	return false;
}

/* Records a write of [off, off+len) (already clipped to the volume). */
static void model_note_write(struct model *m, uint64_t off, uint64_t len, bool locked)
{
	if (!len)
		return;
	if (locked)
		pthread_mutex_lock(&m->hist_lock);
	for (uint64_t b = off / m->bs; b <= (off + len - 1) / m->bs; b++) {
		hist_add(m, b, m->gen);
		for (unsigned int i = 0; i < m->nbm; i++)
			m->bm[i].since[b] = 1;
	}
	if (locked)
		pthread_mutex_unlock(&m->hist_lock);
}

/* ---- setup and teardown ---- */

static const struct test_case cases[] = {
	{ "4k-1m-files",    4096,  1u << 20,                false },
	{ "4k-1m-vfs",      4096,  1u << 20,                true },
	{ "16k-2m-files",   16384, 2u << 20,                false },
	{ "16k-odd-vfs",    16384, (2u << 20) + 5000,       true },
	{ "64k-4m-files",   65536, 4u << 20,                false },
	{ "64k-2m-vfs",     65536, 2u << 20,                true },
};

static void model_close_handles(struct model *m)
{
	for (unsigned int i = 0; i < m->nsh; i++) {
		if (m->sh[i].h)
			vss_cow_shadow_close(m->sh[i].h);
		m->sh[i].h = NULL;
	}
}

/* Opens (or creates) the volume; @block_size and @max_diff count only when
 * the diff area is made, an existing one keeps its own. */
static int model_open_volume(struct model *m, uint32_t block_size, uint64_t max_diff)
{
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_error err = { 0 };
	int r;

	cfg.block_size = block_size;
	cfg.max_diff_bytes = max_diff;
	cfg.event = on_event;
	cfg.event_arg = m;
	if (m->cv)
		r = vss_cow_open_vfs(crashvfs_vfs(m->cv), m->origin, m->diff, &cfg,
				     VSS_COW_CREATE, &m->vol, &err);
	else
		r = vss_cow_open(m->origin, m->diff, &cfg, VSS_COW_CREATE, &m->vol, &err);
	CHECK(m, r == 0, "open: %d (%.150s)", r, err.msg);
	return r;
}

static int teardown(void **state);

/* @state holds the case on entry, the model on return. */
static int setup(void **state)
{
	const struct test_case *tc = *state;
	struct model *m = calloc(1, sizeof(*m));

	*state = m;
	if (!m)
		return -1;
	m->tc = tc;
	m->base_seed = base_seed();
	m->seed = m->base_seed + (uint64_t)(tc - cases) * 1000003u;
	m->rng = m->seed;
	m->bs = tc->block_size;
	m->size = tc->size;
	m->nblocks = (m->size + m->bs - 1) / m->bs;
	m->max_diff = VSS_COW_UNBOUNDED;
	pthread_mutex_init(&m->hist_lock, NULL);
	pthread_mutex_init(&m->ev_lock, NULL);
	m->ref = malloc(m->size);
	m->hist = calloc(m->nblocks, sizeof(*m->hist));
	if (!m->ref || !m->hist)
		goto fail;
	rng_fill(&m->rng, m->ref, m->size);

	if (tc->vfs) {
		if (crashvfs_new(&m->cv) < 0)
			goto fail;
		snprintf(m->origin, sizeof(m->origin), "origin.img");
		snprintf(m->diff, sizeof(m->diff), "origin.diff");
		if (crashvfs_put(m->cv, m->origin, m->ref, m->size) < 0)
			goto fail;
	} else {
		int fd;

		sweep_stale_dirs("model");
		snprintf(m->dir, sizeof(m->dir), "/tmp/vss-model-%d-XXXXXX", (int)getpid());
		if (!mkdtemp(m->dir)) {
			m->dir[0] = 0;
			goto fail;
		}
		snprintf(m->origin, sizeof(m->origin), "%s/origin.img", m->dir);
		snprintf(m->diff, sizeof(m->diff), "%s/origin.diff", m->dir);
		fd = open(m->origin, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			goto fail;
		if (pwrite(fd, m->ref, m->size, 0) != (ssize_t)m->size) {
			close(fd);
			goto fail;
		}
		close(fd);
	}
	print_message("test_model: case %s seed %llu\n", tc->name,
		      (unsigned long long)m->seed);
	return 0;
fail:
	teardown(state);
	return -1;
}

static int teardown(void **state)
{
	struct model *m = *state;

	if (!m)
		return 0;
	model_close_handles(m);
	if (m->vol)
		vss_cow_close(m->vol);
	for (unsigned int i = 0; i < m->nsh; i++)
		free(m->sh[i].data);
	for (uint64_t b = 0; m->hist && b < m->nblocks; b++)
		free(m->hist[b].gens);
	for (unsigned int i = 0; i < m->nbm; i++) {
		free(m->bm[i].since);
		free(m->bm[i].maybe);
	}
	free(m->hist);
	free(m->ref);
	free(m->ev);
	for (int i = 0; i < HELD_MAX; i++)
		free(m->held[i]);
	crashvfs_free(m->cv);
	if (m->dir[0])
		nftw(m->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	pthread_mutex_destroy(&m->hist_lock);
	pthread_mutex_destroy(&m->ev_lock);
	free(m);
	*state = NULL;
	return 0;
}

/* ---- reading and comparing ---- */

/* Reads the whole volume (@h NULL) or shadow in chunks of random sizes. */
static ssize_t read_whole(struct model *m, struct vss_cow_shadow *h,
			  unsigned char *out, uint64_t *rng)
{
	uint64_t off = 0;

	while (off < m->size) {
		size_t len = 1 + rng_below(rng, 4 * (uint64_t)m->bs);
		size_t want = m->size - off < len ? m->size - off : len;
		ssize_t n;

		if (rng_below(rng, 4) == 0 && off % m->bs == 0)
			len = want = m->size - off < m->bs ? m->size - off : m->bs;
		n = h ? vss_cow_shadow_read(h, out + off, len, off)
		      : vss_cow_read(m->vol, out + off, len, off);
		if (n < 0)
			return n;
		if ((size_t)n != want)
			return -EPROTO;
		off += (uint64_t)n;
	}
	return (ssize_t)off;
}

static uint64_t first_diff(const unsigned char *a, const unsigned char *b, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return i;
	return len;
}

/* Reads past the end: short at the end, 0 at or after it. */
static void check_tail_reads(struct model *m, struct vss_cow_shadow *h,
			     const unsigned char *ref, const char *what)
{
	unsigned char buf[64];
	ssize_t n;

	n = h ? vss_cow_shadow_read(h, buf, sizeof(buf), m->size - 10)
	      : vss_cow_read(m->vol, buf, sizeof(buf), m->size - 10);
	CHECK(m, n == 10, "%s: read across the end returned %zd, not 10", what, n);
	CHECK(m, memcmp(buf, ref + m->size - 10, 10) == 0, "%s: tail bytes differ", what);
	n = h ? vss_cow_shadow_read(h, buf, sizeof(buf), m->size)
	      : vss_cow_read(m->vol, buf, sizeof(buf), m->size);
	CHECK(m, n == 0, "%s: read at the end returned %zd, not 0", what, n);
	n = h ? vss_cow_shadow_read(h, buf, sizeof(buf), m->size + 12345)
	      : vss_cow_read(m->vol, buf, sizeof(buf), m->size + 12345);
	CHECK(m, n == 0, "%s: read past the end returned %zd, not 0", what, n);
}

static void verify_contents(struct model *m)
{
	unsigned char *buf = hold(m->held, malloc(m->size));
	uint64_t d;
	ssize_t n;

	assert_non_null(buf);
	n = read_whole(m, NULL, buf, &m->rng);
	CHECK(m, n == (ssize_t)m->size, "volume read: %zd", n);
	d = first_diff(buf, m->ref, m->size);
	CHECK(m, d == m->size, "volume differs from the model at byte %llu (block %llu)",
	      (unsigned long long)d, (unsigned long long)(d / m->bs));
	check_tail_reads(m, NULL, m->ref, "volume");

	for (unsigned int i = 0; i < m->nsh; i++) {
		struct mshadow *s = &m->sh[i];

		if (s->invalid) {
			n = vss_cow_shadow_read(s->h, buf, 1 + rng_below(&m->rng, m->bs),
						rng_below(&m->rng, m->size));
			CHECK(m, n == -EIO, "invalid shadow %s (seq %u) read: %zd, not -EIO",
			      idstr(s->id), s->seq, n);
			continue;
		}
		n = read_whole(m, s->h, buf, &m->rng);
		CHECK(m, n == (ssize_t)m->size, "shadow %s (seq %u) read: %zd",
		      idstr(s->id), s->seq, n);
		d = first_diff(buf, s->data, m->size);
		CHECK(m, d == m->size,
		      "shadow %s (seq %u, #%u of %u) differs from its instant at byte %llu (block %llu)",
		      idstr(s->id), s->seq, i, m->nsh, (unsigned long long)d,
		      (unsigned long long)(d / m->bs));
		if (rng_below(&m->rng, 4) == 0)
			check_tail_reads(m, s->h, s->data, "shadow");
	}
	release(m->held, buf, false);
}

/* Every block written between two shadows is listed; no block that was not. */
static void verify_changed(struct model *m)
{
	for (unsigned int i = 0; i < m->nsh; i++) {
		for (unsigned int j = i + 1; j <= m->nsh; j++) {
			const struct mshadow *from = &m->sh[i];
			const struct mshadow *to = j < m->nsh ? &m->sh[j] : NULL;
			uint32_t hi = to ? to->gen : UINT32_MAX;
			struct vss_cow_extent *ext = NULL;
			struct vss_error err = { 0 };
			bool any_invalid = false;
			unsigned char *listed;
			size_t n = 0;
			int r;

			for (unsigned int k = i; k < j && k < m->nsh; k++)
				any_invalid |= m->sh[k].invalid;
			if (to)
				any_invalid |= to->invalid;
			r = vss_cow_changed_extents(m->vol, from->id, to ? to->id : NULL,
						    &ext, &n, &err);
			if (r < 0 && any_invalid)
				continue;
			hold(m->held, ext);
			CHECK(m, r == 0, "changed_extents(seq %u, seq %u): %d (%s)",
			      from->seq, to ? to->seq : 0, r, err.msg);
			m->n_extents++;
			listed = hold(m->held, calloc(m->nblocks, 1));
			assert_non_null(listed);
			for (size_t k = 0; k < n; k++) {
				uint64_t o = ext[k].offset, l = ext[k].length;

				CHECK(m, o % m->bs == 0 && l > 0 && o + l <= m->size &&
				      ((o + l) % m->bs == 0 || o + l == m->size),
				      "changed_extents(seq %u, seq %u): bad extent %llu+%llu",
				      from->seq, to ? to->seq : 0, (unsigned long long)o,
				      (unsigned long long)l);
				CHECK(m, k == 0 || ext[k - 1].offset + ext[k - 1].length < o,
				      "changed_extents(seq %u, seq %u): extents %zu and %zu not sorted and merged",
				      from->seq, to ? to->seq : 0, k - 1, k);
				for (uint64_t b = o / m->bs; b * m->bs < o + l; b++)
					listed[b] = 1;
			}
			for (uint64_t b = 0; b < m->nblocks; b++) {
				bool written = hist_any(m, b, from->gen, hi);
				bool since = hist_any(m, b, from->gen, UINT32_MAX);

				CHECK(m, !written || listed[b],
				      "changed_extents(seq %u, seq %u) leaves out block %llu, written between them",
				      from->seq, to ? to->seq : 0, (unsigned long long)b);
				CHECK(m, !listed[b] || since,
				      "changed_extents(seq %u, seq %u) lists block %llu, never written since seq %u",
				      from->seq, to ? to->seq : 0, (unsigned long long)b, from->seq);
				CHECK(m, !listed[b] || written || any_invalid,
				      "changed_extents(seq %u, seq %u) lists block %llu, written only after seq %u",
				      from->seq, to ? to->seq : 0, (unsigned long long)b,
				      to ? to->seq : 0);
			}
			release(m->held, listed, false);
			release(m->held, ext, false);
		}
	}
}

/* Reads the changed extents from @from (to @to) into a byte per block;
 * returns the call's result. */
static int changed_blocks(struct model *m, const vss_cow_id from, const vss_cow_id to,
			  unsigned char *listed, struct vss_error *err)
{
	struct vss_cow_extent *ext = NULL;
	size_t n = 0;
	int r = vss_cow_changed_extents(m->vol, from, to, &ext, &n, err);

	memset(listed, 0, m->nblocks);
	for (size_t k = 0; r == 0 && k < n; k++)
		for (uint64_t b = ext[k].offset / m->bs; b * m->bs < ext[k].offset + ext[k].length; b++)
			listed[b] = 1;
	free(ext);
	return r;
}

/* Each bookmark lists exactly the blocks written since its shadow, up to
 * now; up to a later shadow, at least those written before it and none
 * written since neither.  Lost only with a diff area limit. */
static void verify_bookmarks(struct model *m)
{
	struct vss_cow_bookmark_info *info = NULL;
	unsigned char *listed = hold(m->held, malloc(m->nblocks));
	size_t n = 0;
	int r;

	assert_non_null(listed);
	r = vss_cow_bookmark_list(m->vol, &info, &n);
	hold(m->held, info);
	CHECK(m, r == 0 && n == m->nbm, "bookmark_list: %d, %zu listed, the model has %u", r, n,
	      m->nbm);
	for (unsigned int i = 0; i < m->nbm; i++) {
		struct mbook *bk = &m->bm[i];
		struct vss_error err = { 0 };

		CHECK(m, !memcmp(info[i].id, bk->id, 16) && info[i].seq == bk->seq,
		      "bookmark %u is listed as seq %u, the model has seq %u", i, info[i].seq, bk->seq);
		r = changed_blocks(m, bk->id, NULL, listed, &err);
		if (r == -ESTALE) {
			CHECK(m, m->max_diff != VSS_COW_UNBOUNDED || bk->lost,
			      "bookmark seq %u lost with no diff area limit: %s", bk->seq, err.msg);
			CHECK(m, info[i].state == VSS_COW_BOOKMARK_LOST, "bookmark seq %u: -ESTALE "
			      "but listed as tracking", bk->seq);
			if (!bk->lost)
				m->n_lost++;
			bk->lost = true;
			continue;
		}
		CHECK(m, r == 0 && !bk->lost, "changed extents of bookmark seq %u: %d (%s)%s", bk->seq,
		      r, err.msg, bk->lost ? ", which was lost before" : "");
		for (uint64_t b = 0; b < m->nblocks; b++)
			CHECK(m, listed[b] == bk->since[b] || (listed[b] && bk->maybe[b]),
			      "bookmark seq %u %s block %llu", bk->seq,
			      listed[b] ? "lists" : "leaves out", (unsigned long long)b);
		m->n_extents++;
		for (unsigned int j = 0; j < m->nsh; j++) {
			const struct mshadow *t = &m->sh[j];

			if (t->seq <= bk->seq || t->invalid)
				continue;
			r = changed_blocks(m, bk->id, t->id, listed, &err);
			CHECK(m, r == 0, "changed extents of bookmark seq %u to seq %u: %d (%s)",
			      bk->seq, t->seq, r, err.msg);
			for (uint64_t b = 0; b < m->nblocks; b++) {
				CHECK(m, listed[b] || !hist_any(m, b, bk->gen, t->gen),
				      "bookmark seq %u to seq %u leaves out block %llu", bk->seq,
				      t->seq, (unsigned long long)b);
				CHECK(m, !listed[b] || bk->since[b] || bk->maybe[b],
				      "bookmark seq %u to seq %u lists "
				      "block %llu, never written since", bk->seq, t->seq,
				      (unsigned long long)b);
			}
		}
	}
	release(m->held, info, false);
	release(m->held, listed, false);
}

static void verify_usage(struct model *m)
{
	struct vss_cow_shadow_info *info = NULL;
	struct vss_cow_usage u;
	uint64_t owned = 0;
	size_t n = 0;
	int r;

	r = vss_cow_usage(m->vol, &u);
	CHECK(m, r == 0, "usage: %d", r);
	r = vss_cow_shadow_list(m->vol, &info, &n);
	CHECK(m, r == 0, "shadow_list: %d", r);
	for (size_t i = 0; i < n; i++)
		owned += info[i].diff_bytes;
	free(info);
	CHECK(m, u.shadows == n, "usage counts %u shadows, list %zu", u.shadows, n);
	CHECK(m, u.max_bytes == m->max_diff, "usage max %llu, set %llu",
	      (unsigned long long)u.max_bytes, (unsigned long long)m->max_diff);
	CHECK(m, u.copied_blocks * m->bs <= u.used_bytes,
	      "%llu copied blocks but only %llu bytes used",
	      (unsigned long long)u.copied_blocks, (unsigned long long)u.used_bytes);
	CHECK(m, owned <= u.used_bytes, "shadows own %llu bytes, %llu used",
	      (unsigned long long)owned, (unsigned long long)u.used_bytes);
	CHECK(m, m->max_diff == VSS_COW_UNBOUNDED || owned == 0 || u.used_bytes <= m->max_diff,
	      "diff area uses %llu bytes, past its maximum %llu, while shadows still own %llu",
	      (unsigned long long)u.used_bytes, (unsigned long long)m->max_diff,
	      (unsigned long long)owned);
}

static void free_shadow(struct mshadow *s)
{
	if (s->h)
		vss_cow_shadow_close(s->h);
	free(s->data);
	memset(s, 0, sizeof(*s));
}

static void remove_shadow(struct model *m, unsigned int i)
{
	free_shadow(&m->sh[i]);
	memmove(&m->sh[i], &m->sh[i + 1], (m->nsh - i - 1) * sizeof(m->sh[0]));
	m->nsh--;
	memset(&m->sh[m->nsh], 0, sizeof(m->sh[0]));
}

static bool event_seen(struct model *m, enum vss_cow_event_type type, const vss_cow_id id)
{
	for (size_t i = 0; i < m->nev; i++)
		if (m->ev[i].type == type && memcmp(m->ev[i].id, id, sizeof(vss_cow_id)) == 0)
			return true;
	return false;
}

/*
 * Brings the model in line with the engine's list after a step, checking
 * that the engine only did what it may: drop the oldest shadows (diff area
 * limit), invalidate the last one standing, and say so with events.
 * @reopened: non-persistent shadows are gone, invalid persistent ones may be.
 */
static void reconcile(struct model *m, bool reopened)
{
	struct vss_cow_shadow_info *info = NULL;
	bool limited = m->max_diff != VSS_COW_UNBOUNDED;
	size_t n = 0, k = 0;
	unsigned int i;
	int r;

	r = vss_cow_shadow_list(m->vol, &info, &n);
	CHECK(m, r == 0, "shadow_list: %d", r);
	hold(m->held, info);

	if (reopened) {
		for (i = 0; i < m->nsh;) {
			struct mshadow *s = &m->sh[i];
			bool listed = k < n && memcmp(info[k].id, s->id, sizeof(vss_cow_id)) == 0;

			if (!(s->flags & VSS_COW_SHADOW_PERSISTENT)) {
				CHECK(m, !listed, "non-persistent shadow %s (seq %u) survived reopening",
				      idstr(s->id), s->seq);
				remove_shadow(m, i);
			} else if (!listed) {
				CHECK(m, s->invalid, "persistent shadow %s (seq %u) lost on reopening",
				      idstr(s->id), s->seq);
				remove_shadow(m, i);
			} else {
				i++;
				k++;
			}
		}
		k = 0;
	}

	/* the shadows gone since the last step must be the oldest ones */
	while (k < m->nsh && (n == 0 || memcmp(info[0].id, m->sh[k].id, sizeof(vss_cow_id)) != 0))
		k++;
	CHECK(m, m->nsh - k == n, "engine lists %zu shadows; the model expects %u (or the newest of them)",
	      n, m->nsh);
	for (i = 0; i < k; i++) {
		struct mshadow *s = &m->sh[0];
		char c;
		ssize_t rr;

		CHECK(m, limited, "shadow %s (seq %u) vanished with no diff area limit",
		      idstr(s->id), s->seq);
		pthread_mutex_lock(&m->ev_lock);
		bool ev = event_seen(m, VSS_COW_EV_SHADOW_DELETED, s->id);
		pthread_mutex_unlock(&m->ev_lock);
		CHECK(m, ev, "shadow %s (seq %u) deleted without a SHADOW_DELETED event",
		      idstr(s->id), s->seq);
		rr = s->h ? vss_cow_shadow_read(s->h, &c, 1, 0) : -ESTALE;
		CHECK(m, rr == -ESTALE, "read through a handle of deleted shadow seq %u: %zd, not -ESTALE",
		      s->seq, rr);
		remove_shadow(m, 0);
		m->n_dropped++;
	}

	for (i = 0; i < m->nsh; i++) {
		struct mshadow *s = &m->sh[i];
		const struct vss_cow_shadow_info *in = &info[i];
		enum vss_cow_shadow_state want = s->invalid ? VSS_COW_SHADOW_INVALID
							    : VSS_COW_SHADOW_VALID;

		CHECK(m, memcmp(in->id, s->id, sizeof(vss_cow_id)) == 0,
		      "list entry %u is %s, the model has %s (oldest first)", i,
		      idstr(in->id), idstr(s->id));
		CHECK(m, memcmp(in->set_id, s->set_id, sizeof(vss_cow_id)) == 0,
		      "shadow seq %u: set id changed", s->seq);
		CHECK(m, in->flags == s->flags, "shadow seq %u: flags %#x, created with %#x",
		      s->seq, in->flags, s->flags);
		CHECK(m, in->seq == s->seq, "shadow seq %u now listed with seq %u", s->seq, in->seq);
		CHECK(m, in->created_ns == s->created_ns, "shadow seq %u: created_ns changed",
		      s->seq);
		CHECK(m, i == 0 || info[i - 1].seq < in->seq, "list not in creation order at %u", i);
		if (in->state == VSS_COW_SHADOW_INVALID && want == VSS_COW_SHADOW_VALID) {
			CHECK(m, limited && !reopened,
			      "shadow seq %u turned invalid with no diff area limit", s->seq);
			CHECK(m, i == 0,
			      "shadow seq %u turned invalid while %u older shadows were kept",
			      s->seq, i);
			pthread_mutex_lock(&m->ev_lock);
			bool ev = event_seen(m, VSS_COW_EV_SHADOW_INVALID, s->id);
			pthread_mutex_unlock(&m->ev_lock);
			CHECK(m, ev, "shadow seq %u invalid without a SHADOW_INVALID event", s->seq);
			s->invalid = true;
			m->n_invalid++;
		}
		CHECK(m, in->state == (s->invalid ? VSS_COW_SHADOW_INVALID : VSS_COW_SHADOW_VALID),
		      "shadow seq %u: state %d, expected %s", s->seq, (int)in->state,
		      s->invalid ? "invalid" : "valid");
		CHECK(m, s->invalid || limited || in->diff_bytes <= (uint64_t)m->nblocks * m->bs,
		      "shadow seq %u owns %llu bytes, more than the volume", s->seq,
		      (unsigned long long)in->diff_bytes);
	}
	release(m->held, info, false);

	/* every event names something that happened */
	pthread_mutex_lock(&m->ev_lock);
	for (size_t e = 0; e < m->nev; e++) {
		const struct event_rec *ev = &m->ev[e];

		CHECK(m, ev->type != VSS_COW_EV_METADATA_ERROR,
		      "METADATA_ERROR event (%d) with no I/O fault", ev->error);
		CHECK(m, limited || ev->type != VSS_COW_EV_DIFF_NEAR_FULL,
		      "DIFF_NEAR_FULL event with no limit");
		CHECK(m, limited || ev->type != VSS_COW_EV_BOOKMARK_LOST,
		      "BOOKMARK_LOST event with no limit");
		if (ev->type == VSS_COW_EV_SHADOW_DELETED || ev->type == VSS_COW_EV_SHADOW_INVALID) {
			for (i = 0; i < m->nsh; i++) {
				if (memcmp(m->sh[i].id, ev->id, sizeof(vss_cow_id)) != 0)
					continue;
				CHECK(m, ev->type != VSS_COW_EV_SHADOW_DELETED,
				      "SHADOW_DELETED event for seq %u, which is still listed",
				      m->sh[i].seq);
				CHECK(m, m->sh[i].invalid,
				      "SHADOW_INVALID event for seq %u, which is listed valid",
				      m->sh[i].seq);
			}
		}
	}
	m->nev = 0;
	pthread_mutex_unlock(&m->ev_lock);
}

static void verify_all(struct model *m, bool reopened)
{
	reconcile(m, reopened);
	verify_contents(m);
	verify_changed(m);
	verify_bookmarks(m);
	verify_usage(m);
}

/* ---- steps ---- */

/* Picks a write inside [lo, hi): tiny, partial, whole, page-sized or several blocks. */
static void pick_write(uint64_t *rng, uint64_t lo, uint64_t hi, uint32_t bs,
		       uint64_t *off, size_t *len)
{
	uint64_t span = hi - lo, l;
	unsigned int kind = (unsigned int)rng_below(rng, 6);

	switch (kind) {
	case 0: l = 1 + rng_below(rng, 512); break;
	case 1: l = 1 + rng_below(rng, bs); break;
	case 2: l = bs; break;
	case 3: l = bs + rng_below(rng, 3 * (uint64_t)bs); break;
	case 4: l = 4096 * (1 + rng_below(rng, 4)); break;
	default: l = 1 + rng_below(rng, 2 * (uint64_t)bs); break;
	}
	if (l > span)
		l = span;
	*off = lo + rng_below(rng, span - l + 1);
	if ((kind == 2 || kind == 4) && rng_below(rng, 2)) {
		uint64_t a = kind == 2 ? bs : 4096;
		uint64_t o = (*off / a) * a;
		if (o >= lo)
			*off = o;
	}
	*len = (size_t)l;
}

static void step_writes(struct model *m)
{
	unsigned int count = 1 + (unsigned int)rng_below(&m->rng, 24);
	unsigned char *buf = hold(m->held, malloc(4 * (size_t)m->bs + 4096));

	assert_non_null(buf);
	m->step = "writes";
	for (unsigned int i = 0; i < count; i++) {
		uint64_t off, want;
		size_t len;
		ssize_t n;

		pick_write(&m->rng, 0, m->size, m->bs, &off, &len);
		if (rng_below(&m->rng, 16) == 0) {              /* across the end */
			len = 1 + rng_below(&m->rng, 2 * (uint64_t)m->bs);
			off = m->size - 1 - rng_below(&m->rng, len < m->size ? len : m->size);
		} else if (rng_below(&m->rng, 40) == 0) {       /* past the end */
			off = m->size + rng_below(&m->rng, m->bs);
		}
		want = off >= m->size ? 0 : m->size - off < len ? m->size - off : len;
		rng_fill(&m->rng, buf, len);
		n = vss_cow_write(m->vol, buf, len, off);
		trace("round %u: write %zu at %llu\n", m->round, len, (unsigned long long)off);
		CHECK(m, n == (ssize_t)want, "write %zu at %llu returned %zd, not %llu",
		      len, (unsigned long long)off, n, (unsigned long long)want);
		if (want) {
			memcpy(m->ref + off, buf, want);
			model_note_write(m, off, want, false);
		}
	}
	release(m->held, buf, false);
}

struct worker {
	struct model *m;
	pthread_t th;
	uint64_t rng;
	uint64_t lo, hi;            /* writers: the region this one owns */
	unsigned int nwrites;
	atomic_bool *done;          /* readers: stop when set */
	atomic_bool *stale;         /* readers: per model shadow, may be deleted now */
	char err[256];              /* first failure, "" if none */
};

static void *writer_main(void *arg)
{
	struct worker *w = arg;
	struct model *m = w->m;
	size_t cap = 4 * (size_t)m->bs + 4096;
	unsigned char *buf = malloc(cap), *back = malloc(cap);

	if (!buf || !back) {
		snprintf(w->err, sizeof(w->err), "out of memory");
		goto out;
	}
	for (unsigned int i = 0; i < w->nwrites; i++) {
		uint64_t off;
		size_t len;
		ssize_t n;

		pick_write(&w->rng, w->lo, w->hi, m->bs, &off, &len);
		rng_fill(&w->rng, buf, len);
		n = vss_cow_write(m->vol, buf, len, off);
		if (n != (ssize_t)len) {
			snprintf(w->err, sizeof(w->err), "concurrent write %zu at %llu returned %zd",
				 len, (unsigned long long)off, n);
			break;
		}
		memcpy(m->ref + off, buf, len);
		model_note_write(m, off, len, true);
		n = vss_cow_read(m->vol, back, len, off);
		if (n != (ssize_t)len || memcmp(back, buf, len) != 0) {
			snprintf(w->err, sizeof(w->err),
				 "read back of concurrent write %zu at %llu: %zd bytes, %s",
				 len, (unsigned long long)off, n,
				 n == (ssize_t)len ? "content differs" : "short");
			break;
		}
		if (rng_below(&w->rng, 8) == 0)
			sched_yield();
	}
out:
	free(buf);
	free(back);
	return NULL;
}

static void *reader_main(void *arg)
{
	struct worker *w = arg;
	struct model *m = w->m;
	unsigned char *buf = malloc(4 * (size_t)m->bs);
	unsigned int reads = 0;

	if (!buf) {
		snprintf(w->err, sizeof(w->err), "out of memory");
		return NULL;
	}
	while (m->nsh && (reads < 16 || !atomic_load(w->done))) {
		unsigned int i = (unsigned int)rng_below(&w->rng, m->nsh);
		const struct mshadow *s = &m->sh[i];
		size_t len = 1 + rng_below(&w->rng, 4 * (uint64_t)m->bs);
		uint64_t off = rng_below(&w->rng, m->size);
		size_t want = m->size - off < len ? m->size - off : len;
		ssize_t n;

		reads++;
		n = vss_cow_shadow_read(s->h, buf, len, off);
		if (s->invalid && n == -EIO)
			continue;
		/* a shadow being deleted, or dropped or invalidated by the limit */
		if ((n == -ESTALE && (atomic_load(&w->stale[i]) ||
				      m->max_diff != VSS_COW_UNBOUNDED)) ||
		    (n == -EIO && m->max_diff != VSS_COW_UNBOUNDED))
			continue;
		if (n != (ssize_t)want) {
			snprintf(w->err, sizeof(w->err),
				 "concurrent read of shadow seq %u, %zu at %llu: %zd", s->seq, len,
				 (unsigned long long)off, n);
			break;
		}
		if (memcmp(buf, s->data + off, want) != 0) {
			snprintf(w->err, sizeof(w->err),
				 "concurrent read of shadow seq %u, %zu at %llu: content differs at byte %llu",
				 s->seq, len, (unsigned long long)off,
				 (unsigned long long)(off + first_diff(buf, s->data + off, want)));
			break;
		}
	}
	free(buf);
	return NULL;
}

/*
 * Several writers, each in a region of its own whose edges fall inside
 * blocks (so two threads share a block), a reader of the shadows, and at
 * times a shadow deleted under their feet.
 */
static void step_concurrent(struct model *m)
{
	unsigned int nw = 2 + (unsigned int)rng_below(&m->rng, MAX_THREADS - 1);
	struct worker w[MAX_THREADS + 1];
	atomic_bool done = false, stale[MAX_LIVE + 1];
	uint64_t cuts[MAX_THREADS + 1];
	int victim = -1;

	m->step = "concurrent writes";
	trace("round %u: concurrent writes\n", m->round);
	m->n_conc++;
	memset(w, 0, sizeof(w));
	for (unsigned int i = 0; i <= MAX_LIVE; i++)
		atomic_init(&stale[i], false);
	cuts[0] = 0;
	cuts[nw] = m->size;
	for (unsigned int i = 1; i < nw; i++) {
		uint64_t even = m->size * i / nw;
		uint64_t jitter = rng_below(&m->rng, m->bs);
		cuts[i] = even > jitter + cuts[i - 1] + 1 ? even - jitter : even;
	}
	for (unsigned int i = 0; i < nw; i++) {
		w[i].m = m;
		w[i].rng = rng_next(&m->rng);
		w[i].lo = cuts[i];
		w[i].hi = cuts[i + 1];
		w[i].nwrites = 4 + (unsigned int)rng_below(&m->rng, 28);
	}
	w[nw].m = m;
	w[nw].rng = rng_next(&m->rng);
	w[nw].done = &done;
	w[nw].stale = stale;
	if (m->nsh && rng_below(&m->rng, 3) == 0)
		victim = (int)rng_below(&m->rng, m->nsh);
	if (victim >= 0)
		atomic_store(&stale[victim], true);

	for (unsigned int i = 0; i < nw; i++)
		assert_int_equal(pthread_create(&w[i].th, NULL, writer_main, &w[i]), 0);
	if (m->nsh)
		assert_int_equal(pthread_create(&w[nw].th, NULL, reader_main, &w[nw]), 0);
	if (victim >= 0) {
		struct vss_error err = { 0 };
		int r;

		usleep((useconds_t)rng_below(&m->rng, 2000));
		r = vss_cow_shadow_delete(m->vol, m->sh[victim].id, &err);
		/* the limit may have taken it first */
		if (r == -ENOENT && m->max_diff != VSS_COW_UNBOUNDED)
			r = 0;
		if (r < 0) {
			snprintf(w[nw].err, sizeof(w[nw].err),
				 "deleting shadow seq %u during writes: %d (%.150s)",
				 m->sh[victim].seq, r, err.msg);
			victim = -1;
		}
	}
	for (unsigned int i = 0; i < nw; i++)
		pthread_join(w[i].th, NULL);
	atomic_store(&done, true);
	if (m->nsh)
		pthread_join(w[nw].th, NULL);
	for (unsigned int i = 0; i <= nw; i++)
		CHECK(m, w[i].err[0] == 0, "%s", w[i].err);
	if (victim >= 0) {
		char c;
		ssize_t n = vss_cow_shadow_read(m->sh[victim].h, &c, 1, 0);

		CHECK(m, n == -ESTALE, "read of deleted shadow seq %u: %zd, not -ESTALE",
		      m->sh[victim].seq, n);
		remove_shadow(m, (unsigned int)victim);
	}
}

static void step_create(struct model *m)
{
	struct vss_cow_shadow_params p = { 0 };
	struct vss_cow_shadow_info *info = NULL;
	struct vss_error err = { 0 };
	struct mshadow *s;
	uint64_t t0, t1;
	size_t n = 0;
	int r;

	m->step = "create shadow";
	if (m->nsh && rng_below(&m->rng, 10) == 0) {    /* a taken id */
		memcpy(p.id, m->sh[rng_below(&m->rng, m->nsh)].id, sizeof(p.id));
		r = vss_cow_shadow_create(m->vol, &p, &err);
		CHECK(m, r == -EEXIST, "create with a taken id: %d, not -EEXIST", r);
	}
	rng_fill(&m->rng, p.id, sizeof(p.id));
	rng_fill(&m->rng, p.set_id, sizeof(p.set_id));
	p.flags = rng_below(&m->rng, 3) ? VSS_COW_SHADOW_PERSISTENT : 0;
	t0 = now_ns();
	r = vss_cow_shadow_create(m->vol, &p, &err);
	t1 = now_ns();
	if (r == -ENOSPC && m->max_diff != VSS_COW_UNBOUNDED)
		return;     /* no room even for its record; the limit is tiny */
	CHECK(m, r == 0, "shadow_create: %d (%.150s)", r, err.msg);

	s = &m->sh[m->nsh++];
	memcpy(s->id, p.id, sizeof(s->id));
	memcpy(s->set_id, p.set_id, sizeof(s->set_id));
	s->flags = p.flags;
	s->data = malloc(m->size);
	assert_non_null(s->data);
	memcpy(s->data, m->ref, m->size);
	s->gen = ++m->gen;
	r = vss_cow_shadow_open(m->vol, s->id, &s->h);
	CHECK(m, r == 0, "shadow_open of a new shadow: %d", r);

	r = vss_cow_shadow_list(m->vol, &info, &n);
	hold(m->held, info);
	CHECK(m, r == 0 && n > 0, "shadow_list: %d", r);
	CHECK(m, memcmp(info[n - 1].id, s->id, sizeof(vss_cow_id)) == 0,
	      "the new shadow is not listed last");
	s->seq = info[n - 1].seq;
	s->created_ns = info[n - 1].created_ns;
	release(m->held, info, false);
	CHECK(m, m->max_seq ? s->seq > m->max_seq : s->seq == 1,
	      "new shadow has seq %u; the highest before was %u", s->seq, m->max_seq);
	CHECK(m, s->created_ns >= t0 && s->created_ns <= t1,
	      "created_ns %llu outside the call [%llu, %llu]",
	      (unsigned long long)s->created_ns, (unsigned long long)t0,
	      (unsigned long long)t1);
	m->max_seq = s->seq;
	m->n_created++;
	trace("round %u: created seq %u%s\n", m->round, s->seq,
	      s->flags & VSS_COW_SHADOW_PERSISTENT ? " (persistent)" : "");
}

static void step_delete(struct model *m)
{
	struct vss_cow_shadow *h = NULL;
	struct vss_error err = { 0 };
	unsigned int i;
	vss_cow_id id;
	ssize_t n;
	char c;
	int r;

	m->step = "delete shadow";
	if (!m->nsh) {
		rng_fill(&m->rng, id, sizeof(id));
		r = vss_cow_shadow_delete(m->vol, id, &err);
		CHECK(m, r == -ENOENT, "deleting an unknown id: %d, not -ENOENT", r);
		r = vss_cow_shadow_open(m->vol, id, &h);
		CHECK(m, r == -ENOENT, "opening an unknown id: %d, not -ENOENT", r);
		return;
	}
	switch (rng_below(&m->rng, 4)) {
	case 0: i = 0; m->step = "delete oldest"; break;
	case 1: i = m->nsh - 1; m->step = "delete newest"; break;
	case 2: i = m->nsh / 2; m->step = "delete middle"; break;
	default: i = (unsigned int)rng_below(&m->rng, m->nsh); break;
	}
	memcpy(id, m->sh[i].id, sizeof(id));
	trace("round %u: %s: seq %u, #%u of %u\n", m->round, m->step, m->sh[i].seq, i, m->nsh);
	r = vss_cow_shadow_delete(m->vol, id, &err);
	CHECK(m, r == 0, "shadow_delete seq %u: %d (%s)", m->sh[i].seq, r, err.msg);
	n = vss_cow_shadow_read(m->sh[i].h, &c, 1, 0);
	CHECK(m, n == -ESTALE, "read of deleted shadow seq %u: %zd, not -ESTALE",
	      m->sh[i].seq, n);
	remove_shadow(m, i);
	m->n_deleted++;
	r = vss_cow_shadow_open(m->vol, id, &h);
	CHECK(m, r == -ENOENT, "opening a deleted shadow: %d, not -ENOENT", r);
	r = vss_cow_shadow_delete(m->vol, id, &err);
	CHECK(m, r == -ENOENT, "deleting it again: %d, not -ENOENT", r);
}

static void step_limit(struct model *m)
{
	struct vss_cow_usage u;
	struct vss_error err = { 0 };
	uint64_t max, k;
	int r;

	m->step = "set max diff";
	r = vss_cow_usage(m->vol, &u);
	CHECK(m, r == 0, "usage: %d", r);
	k = rng_below(&m->rng, 24);
	switch (rng_below(&m->rng, 5)) {
	case 0:
		max = VSS_COW_UNBOUNDED;
		break;
	case 1:     /* below what is used: the oldest must go */
		max = u.used_bytes - (k * m->bs < u.used_bytes / 2 ? k * m->bs : u.used_bytes / 2);
		break;
	default:    /* a little room: later writes hit it */
		max = u.used_bytes + k * m->bs;
		break;
	}
	r = vss_cow_set_max_diff(m->vol, max, &err);
	CHECK(m, r == 0, "set_max_diff(%llu): %d (%s)", (unsigned long long)max, r, err.msg);
	m->max_diff = max;
	trace("round %u: max diff %llu (used %llu)\n", m->round, (unsigned long long)max,
	      (unsigned long long)u.used_bytes);
}

/* Makes a bookmark of a valid shadow, or deletes one. */
static void step_bookmark(struct model *m)
{
	struct vss_error err = { 0 };
	unsigned int i;
	int r;

	if (m->nbm && (m->nbm == MAX_BOOKMARKS || rng_below(&m->rng, 3) == 0)) {
		m->step = "delete bookmark";
		i = (unsigned int)rng_below(&m->rng, m->nbm);
		r = vss_cow_bookmark_delete(m->vol, m->bm[i].id, &err);
		CHECK(m, r == 0, "bookmark_delete seq %u: %d (%s)", m->bm[i].seq, r, err.msg);
		free(m->bm[i].since);
		free(m->bm[i].maybe);
		memmove(&m->bm[i], &m->bm[i + 1], (m->nbm - i - 1) * sizeof(m->bm[0]));
		m->nbm--;
		return;
	}
	m->step = "bookmark";
	if (!m->nsh)
		return;
	i = (unsigned int)rng_below(&m->rng, m->nsh);
	const struct mshadow *s = &m->sh[i];
	unsigned int at = 0;
	bool has = false;

	for (unsigned int k = 0; k < m->nbm; k++) {
		has |= m->bm[k].seq == s->seq;
		at += m->bm[k].seq < s->seq;
	}
	r = vss_cow_bookmark_create(m->vol, s->id, &err);
	if (has || s->invalid) {
		CHECK(m, r == (has ? -EEXIST : -EIO), "bookmark of seq %u (%s): %d, not %d",
		      s->seq, has ? "has one" : "invalid", r, has ? -EEXIST : -EIO);
		return;
	}
	CHECK(m, r == 0, "bookmark_create seq %u: %d (%s)", s->seq, r, err.msg);
	memmove(&m->bm[at + 1], &m->bm[at], (m->nbm - at) * sizeof(m->bm[0]));
	struct mbook *bk = &m->bm[at];
	memcpy(bk->id, s->id, 16);
	bk->seq = s->seq;
	bk->gen = s->gen;
	bk->lost = false;
	bk->since = malloc(m->nblocks);
	bk->maybe = calloc(m->nblocks, 1);
	assert_non_null(bk->since);
	assert_non_null(bk->maybe);
	for (uint64_t b = 0; b < m->nblocks; b++)
		bk->since[b] = hist_any(m, b, s->gen, UINT32_MAX);
	m->nbm++;
	m->n_bookmarks++;
	trace("round %u: bookmark seq %u\n", m->round, s->seq);
}

/* Rolls the volume back to a valid shadow: newer ones go, the rest stay. */
static void step_revert(struct model *m)
{
	struct vss_error err = { 0 };
	unsigned int i;
	int r;

	m->step = "revert";
	if (!m->nsh)
		return;
	i = (unsigned int)rng_below(&m->rng, m->nsh);
	struct mshadow *s = &m->sh[i];
	r = vss_cow_revert(m->vol, s->id, &err);
	if (s->invalid) {
		CHECK(m, r == -EIO, "revert to invalid seq %u: %d, not -EIO", s->seq, r);
		return;
	}
	CHECK(m, r == 0, "revert to seq %u: %d (%s)", s->seq, r, err.msg);
	trace("round %u: revert to seq %u\n", m->round, s->seq);
	for (unsigned int k = 0; k < m->nbm; k++) {
		struct mbook *bk = &m->bm[k];

		for (uint64_t b = 0; b < m->nblocks; b++) {
			if (bk->seq > s->seq)           /* rewritten: written, for it */
				bk->since[b] |= hist_any(m, b, s->gen, UINT32_MAX);
			else {                          /* the volume is s again */
				bk->maybe[b] |= hist_any(m, b, s->gen, UINT32_MAX);
				bk->since[b] = hist_any(m, b, bk->gen, s->gen);
			}
		}
	}
	for (uint64_t b = 0; b < m->nblocks; b++) {
		struct block_hist *h = &m->hist[b];

		while (h->n && h->gens[h->n - 1] >= s->gen)
			h->n--;
	}
	memcpy(m->ref, s->data, m->size);
	while (m->nsh > i + 1)
		remove_shadow(m, m->nsh - 1);
	m->n_reverts++;
}

static void step_reopen(struct model *m)
{
	static const uint32_t other[] = { 4096, 16384, 65536, 1u << 20 };
	int r;

	m->step = "reopen";
	trace("round %u: reopen\n", m->round);
	m->n_reopen++;
	model_close_handles(m);
	r = vss_cow_close(m->vol);
	m->vol = NULL;
	CHECK(m, r == 0, "close: %d", r);
	/* an existing diff area keeps its own block size */
	model_open_volume(m, other[rng_below(&m->rng, 4)],
			  rng_below(&m->rng, 2) ? VSS_COW_UNBOUNDED : (uint64_t)m->bs * 3);
	CHECK(m, vss_cow_block_size(m->vol) == m->bs, "block size %u after reopening, made with %u",
	      vss_cow_block_size(m->vol), m->bs);
	CHECK(m, vss_cow_size(m->vol) == m->size, "size %llu after reopening",
	      (unsigned long long)vss_cow_size(m->vol));
	for (unsigned int i = 0; i < m->nsh; i++) {
		const struct mshadow *s = &m->sh[i];
		bool may_go = !(s->flags & VSS_COW_SHADOW_PERSISTENT) || s->invalid;

		r = vss_cow_shadow_open(m->vol, s->id, &m->sh[i].h);
		CHECK(m, r == 0 || (r == -ENOENT && may_go),
		      "shadow_open of %s seq %u after reopening: %d",
		      s->flags & VSS_COW_SHADOW_PERSISTENT ? "persistent" : "non-persistent",
		      s->seq, r);
		if (r < 0)
			m->sh[i].h = NULL;
	}
}

static void run_case(void **state)
{
	struct model *m = *state;
	unsigned int rounds = (unsigned int)env_u64("VSS_TEST_ROUNDS", 50);

	model_open_volume(m, m->bs, m->max_diff);
	CHECK(m, vss_cow_block_size(m->vol) == m->bs, "block size %u, asked %u",
	      vss_cow_block_size(m->vol), m->bs);
	CHECK(m, vss_cow_size(m->vol) == m->size, "size %llu, origin has %llu",
	      (unsigned long long)vss_cow_size(m->vol), (unsigned long long)m->size);
	verify_all(m, false);

	for (m->round = 1; m->round <= rounds; m->round++) {
		uint64_t pick = rng_below(&m->rng, 100);
		bool reopened = false;

		if (pick < 28) {
			step_writes(m);
		} else if (pick < 50) {
			step_concurrent(m);
		} else if (pick < 68) {
			if (m->nsh < MAX_LIVE)
				step_create(m);
			else
				step_delete(m);
		} else if (pick < 78) {
			step_delete(m);
		} else if (pick < 84) {
			step_bookmark(m);
		} else if (pick < 86) {
			step_revert(m);
		} else if (pick < 92) {
			step_limit(m);
		} else {
			step_reopen(m);
			reopened = true;
		}
		verify_all(m, reopened);
	}
	/* the end: lift the limit, reopen once more, everything still exact */
	m->round = rounds + 1;
	step_reopen(m);
	verify_all(m, true);
	print_message("test_model: case %s: %u shadows created, %u deleted, %u dropped and "
		      "%u invalidated by the limit; %u reopenings, %u concurrent phases, "
		      "%u changed-extents checks; %u bookmarks (%u lost to the limit), "
		      "%u reverts\n", m->tc->name, m->n_created, m->n_deleted,
		      m->n_dropped, m->n_invalid, m->n_reopen, m->n_conc, m->n_extents,
		      m->n_bookmarks, m->n_lost, m->n_reverts);
}

int main(void)
{
	struct CMUnitTest tests[sizeof(cases) / sizeof(cases[0])];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		tests[i] = (struct CMUnitTest){ cases[i].name, run_case, setup, teardown,
						(void *)&cases[i] };
	return cmocka_run_group_tests_name("engine model", tests, NULL, NULL);
}
