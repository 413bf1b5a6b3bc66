/*
 * tests/engine/test_track.c - crash tests of changed-block tracking and
 * revert (design notes 10 and 11 in lib/engine), on crashvfs: power lost at
 * a random moment of a workload of writes, shadows, deletions and
 * bookmarks.  After recovery each bookmark is lost (and says why) or lists
 * every block whose content differs from its shadow's instant: never a
 * wrong answer; one that a persistent shadow covered through the crash is
 * never lost; a clean close loses none.  A revert cut by a crash either
 * never touched the volume or is finished by the next open, and the older
 * shadows read what they read before.
 *
 * Environment: VSS_TEST_SEED (the seed is printed), VSS_TRACK_ITERS
 * (iterations of each test), VSS_TEST_VERBOSE=1 (trace every step).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <vss/cow.h>
#include "engine/cow_i.h"
#include "crashvfs.h"
#include "testutil.h"

#define SIZE      (384u << 10)
#define MAX_SH    12
#define MAX_BM    6

struct tshadow {
	vss_cow_id id;
	unsigned char *data;        /* the volume at its instant */
	bool persistent;
};

struct tbook {
	vss_cow_id id;
	unsigned char *data;        /* its shadow's instant */
	bool maybe;                 /* a crash cut its creation or deletion */
	bool must_keep;             /* a persistent shadow covered it through the crash */
};

struct track {
	uint64_t seed, rng;
	unsigned int iter;
	uint32_t bs;
	struct crashvfs *cv;
	struct vss_cow_volume *vol;
	unsigned char *cur;         /* the volume as written */
	struct tshadow sh[MAX_SH];
	unsigned int nsh;
	struct tbook bm[MAX_BM];
	unsigned int nbm;
	unsigned long n_lost, n_kept, n_crashes, n_reverts_done, n_reverts_cut;
};

static uint64_t g_seed;

static void tfail(struct track *t, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void tfail(struct track *t, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	print_error("test_track: iteration %u seed %llu (line %d): %s\n"
		    "  repeat with VSS_TEST_SEED=%llu\n", t->iter, (unsigned long long)t->seed,
		    line, msg, (unsigned long long)g_seed);
	fail();
}

#define CHECK(t, cond, ...) \
	do { if (!(cond)) tfail((t), __LINE__, __VA_ARGS__); } while (0)

static bool crashed(struct track *t, uint64_t gen)
{
	return crashvfs_crashes(t->cv) != gen;
}

static int open_vol(struct track *t, struct vss_error *err)
{
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;

	cfg.block_size = t->bs;
	return vss_cow_open_vfs(crashvfs_vfs(t->cv), "origin", "diff", &cfg, VSS_COW_CREATE,
				&t->vol, err);
}

static void track_init(struct track *t, unsigned int iter)
{
	static const uint32_t sizes[] = { 4096, 16384, 65536 };

	memset(t, 0, sizeof(*t));
	t->iter = iter;
	t->seed = g_seed + iter * 7919u;
	t->rng = t->seed;
	t->bs = sizes[rng_below(&t->rng, 3)];
	t->cur = malloc(SIZE);
	assert_non_null(t->cur);
	rng_fill(&t->rng, t->cur, SIZE);
	assert_int_equal(crashvfs_new(&t->cv), 0);
	assert_int_equal(crashvfs_put(t->cv, "origin", t->cur, SIZE), 0);
}

static void track_free(struct track *t)
{
	if (t->vol)
		vss_cow_close(t->vol);
	for (unsigned int i = 0; i < t->nsh; i++)
		free(t->sh[i].data);
	for (unsigned int i = 0; i < t->nbm; i++)
		free(t->bm[i].data);
	crashvfs_free(t->cv);
	free(t->cur);
}

/* ---- steps; each returns false once a crash stopped it ---- */

static bool do_write(struct track *t, uint64_t gen)
{
	unsigned char buf[3 * 65536];
	uint64_t off = rng_below(&t->rng, SIZE);
	size_t len = 1 + (size_t)rng_below(&t->rng, rng_below(&t->rng, 2) ? 512 : sizeof(buf));

	if (len > SIZE - off)
		len = SIZE - off;
	rng_fill(&t->rng, buf, len);
	ssize_t n = vss_cow_write(t->vol, buf, len, off);
	if (crashed(t, gen))
		return false;
	CHECK(t, n == (ssize_t)len, "write %zu at %llu: %zd", len, (unsigned long long)off, n);
	memcpy(t->cur + off, buf, len);
	return true;
}

static bool do_shadow(struct track *t, uint64_t gen, bool persistent)
{
	struct vss_cow_shadow_params p = { .flags = persistent ? VSS_COW_SHADOW_PERSISTENT : 0 };
	struct vss_error err = { 0 };
	int r;

	if (t->nsh == MAX_SH)
		return true;
	rng_fill(&t->rng, p.id, sizeof(p.id));
	r = vss_cow_shadow_create(t->vol, &p, &err);
	if (crashed(t, gen))
		return false;
	CHECK(t, r == 0, "shadow_create: %d (%s)", r, err.msg);
	memcpy(t->sh[t->nsh].id, p.id, 16);
	t->sh[t->nsh].persistent = persistent;
	t->sh[t->nsh].data = malloc(SIZE);
	assert_non_null(t->sh[t->nsh].data);
	memcpy(t->sh[t->nsh++].data, t->cur, SIZE);
	return true;
}

static void forget_shadow(struct track *t, unsigned int i)
{
	free(t->sh[i].data);
	memmove(&t->sh[i], &t->sh[i + 1], (t->nsh - i - 1) * sizeof(t->sh[0]));
	t->nsh--;
}

static bool do_delete(struct track *t, uint64_t gen, const vss_cow_id keep)
{
	unsigned int i;
	int r;

	if (!t->nsh)
		return true;
	i = (unsigned int)rng_below(&t->rng, t->nsh);
	if (keep && !memcmp(t->sh[i].id, keep, 16))
		return true;
	r = vss_cow_shadow_delete(t->vol, t->sh[i].id, NULL);
	if (crashed(t, gen))
		return false;
	CHECK(t, r == 0, "shadow_delete: %d", r);
	forget_shadow(t, i);
	return true;
}

static bool do_bookmark(struct track *t, uint64_t gen)
{
	struct vss_error err = { 0 };
	unsigned int i;
	int r;

	if (!t->nsh || t->nbm == MAX_BM)
		return true;
	i = (unsigned int)rng_below(&t->rng, t->nsh);
	for (unsigned int k = 0; k < t->nbm; k++)
		if (!memcmp(t->bm[k].id, t->sh[i].id, 16))
			return true;
	r = vss_cow_bookmark_create(t->vol, t->sh[i].id, &err);
	struct tbook *b = &t->bm[t->nbm++];
	memset(b, 0, sizeof(*b));
	memcpy(b->id, t->sh[i].id, 16);
	b->data = malloc(SIZE);
	assert_non_null(b->data);
	memcpy(b->data, t->sh[i].data, SIZE);
	if (crashed(t, gen)) {
		b->maybe = true;
		return false;
	}
	CHECK(t, r == 0, "bookmark_create: %d (%s)", r, err.msg);
	return true;
}

/* ---- after recovery ---- */

/* Every bookmark is listed as it must be; each tracking one lists every
 * block whose content is not its shadow's; @expect_all: none is lost. */
static void check_bookmarks(struct track *t, bool expect_all)
{
	struct vss_cow_bookmark_info *info = NULL;
	unsigned char *now = malloc(SIZE);
	size_t n = 0;
	int r;

	assert_non_null(now);
	CHECK(t, vss_cow_read(t->vol, now, SIZE, 0) == SIZE, "read of the volume");
	r = vss_cow_bookmark_list(t->vol, &info, &n);
	CHECK(t, r == 0, "bookmark_list: %d", r);
	for (unsigned int i = 0; i < t->nbm;) {
		struct tbook *b = &t->bm[i];
		struct vss_cow_extent *e = NULL;
		struct vss_error err = { 0 };
		bool listed = false;
		size_t ne = 0;

		for (size_t k = 0; k < n; k++)
			listed |= !memcmp(info[k].id, b->id, 16);
		CHECK(t, listed || b->maybe, "bookmark %u was made, and is not listed", i);
		if (!listed) {
			free(b->data);
			memmove(b, b + 1, (t->nbm - i - 1) * sizeof(*b));
			t->nbm--;
			continue;
		}
		b->maybe = false;
		r = vss_cow_changed_extents(t->vol, b->id, NULL, &e, &ne, &err);
		if (r == -ESTALE) {
			CHECK(t, !expect_all && !b->must_keep, "bookmark %u lost: %s", i, err.msg);
			t->n_lost++;
			vss_cow_bookmark_delete(t->vol, b->id, NULL);
			free(b->data);
			memmove(b, b + 1, (t->nbm - i - 1) * sizeof(*b));
			t->nbm--;
			continue;
		}
		CHECK(t, r == 0, "changed extents of bookmark %u: %d (%s)", i, r, err.msg);
		unsigned char *mark = calloc(SIZE / t->bs + 1, 1);
		assert_non_null(mark);
		for (size_t k = 0; k < ne; k++)
			for (uint64_t o = e[k].offset; o < e[k].offset + e[k].length; o += t->bs)
				mark[o / t->bs] = 1;
		for (uint64_t blk = 0; blk * t->bs < SIZE; blk++) {
			uint64_t o = blk * t->bs, l = o + t->bs > SIZE ? SIZE - o : t->bs;

			CHECK(t, mark[blk] || !memcmp(now + o, b->data + o, l),
			      "bookmark %u leaves out block %llu, which changed since", i,
			      (unsigned long long)blk);
		}
		free(mark);
		free(e);
		t->n_kept++;
		i++;
	}
	free(info);
	free(now);
}

/* The model follows what the crash left: the volume, the shadows. */
static void resync(struct track *t)
{
	struct vss_cow_shadow_info *info = NULL;
	size_t n = 0;

	CHECK(t, vss_cow_read(t->vol, t->cur, SIZE, 0) == SIZE, "read of the volume");
	CHECK(t, vss_cow_shadow_list(t->vol, &info, &n) == 0, "shadow_list");
	for (unsigned int i = 0; i < t->nsh;) {
		bool listed = false, valid = false;

		for (size_t k = 0; k < n; k++)
			if (!memcmp(info[k].id, t->sh[i].id, 16)) {
				listed = true;
				valid = info[k].state == VSS_COW_SHADOW_VALID;
			}
		if (!listed || !valid) {
			if (listed)
				vss_cow_shadow_delete(t->vol, t->sh[i].id, NULL);
			forget_shadow(t, i);
		} else {
			i++;
		}
	}
	free(info);
}

static void reopen(struct track *t)
{
	struct vss_error err = { 0 };
	int r;

	if (t->vol) {
		vss_cow_close(t->vol);          /* its files are dead: fails, frees */
		t->vol = NULL;
	}
	r = open_vol(t, &err);
	CHECK(t, r == 0, "open after a crash: %d (%s)", r, err.msg);
}

/* ---- the tests ---- */

static void test_bookmarks_through_crashes(void **state)
{
	unsigned int iters = (unsigned int)env_u64("VSS_TRACK_ITERS", 200);
	unsigned long kept = 0, lost = 0;

	(void)state;
	for (unsigned int it = 0; it < iters; it++) {
		struct track t;
		struct vss_error err = { 0 };

		track_init(&t, it);
		CHECK(&t, open_vol(&t, &err) == 0, "open: %s", err.msg);
		for (unsigned int epoch = 0; epoch < 3; epoch++) {
			uint64_t gen = crashvfs_crashes(t.cv);
			bool cover = rng_below(&t.rng, 2);
			vss_cow_id keep_id;
			const unsigned char *keep = NULL;
			bool ok = true;

			/* A bookmark that a persistent shadow newer than it covers
			 * through the crash: never lost (design note 10). */
			ok = do_shadow(&t, gen, rng_below(&t.rng, 2)) && do_write(&t, gen);
			if (ok && cover && t.nbm < MAX_BM) {
				unsigned int before = t.nbm;

				ok = do_bookmark(&t, gen);
				if (ok && t.nbm > before && t.nsh < MAX_SH) {
					ok = do_shadow(&t, gen, true);
					memcpy(keep_id, t.sh[t.nsh - 1].id, 16);
					keep = keep_id;
					t.bm[t.nbm - 1].must_keep = ok;
				}
			}
			trace("iteration %u epoch %u: block %u, %u shadows, %u bookmarks%s\n", it,
			      epoch, t.bs, t.nsh, t.nbm, cover ? ", one covered" : "");
			crashvfs_crash_after(t.cv, 1 + rng_below(&t.rng, 300), rng_next(&t.rng));
			for (unsigned int s = 0; ok && s < 200; s++) {
				uint64_t pick = rng_below(&t.rng, 100);

				if (pick < 70)
					ok = do_write(&t, gen);
				else if (pick < 78)
					ok = do_shadow(&t, gen, rng_below(&t.rng, 2));
				else if (pick < 86)
					ok = do_delete(&t, gen, keep);
				else if (pick < 94)
					ok = do_bookmark(&t, gen);
				else
					ok = vss_cow_flush(t.vol) == 0 || !crashed(&t, gen);
			}
			crashvfs_crash_after(t.cv, 0, 0);
			if (!crashed(&t, gen))
				crashvfs_crash(t.cv, rng_next(&t.rng));
			t.n_crashes++;
			reopen(&t);
			check_bookmarks(&t, false);
			for (unsigned int i = 0; i < t.nbm; i++)
				t.bm[i].must_keep = false;
			resync(&t);
		}
		/* A clean close loses nothing. */
		CHECK(&t, vss_cow_close(t.vol) == 0, "close");
		t.vol = NULL;
		crashvfs_crash(t.cv, rng_next(&t.rng));
		reopen(&t);
		check_bookmarks(&t, true);
		kept += t.n_kept;
		lost += t.n_lost;
		track_free(&t);
	}
	print_message("test_track: %u iterations of 3 crashes: bookmarks found tracking %lu "
		      "times, lost %lu times\n", iters, kept, lost);
}

/* A revert cut anywhere: before its first record is durable the volume is
 * untouched; after it, the next open finishes it. */
static void test_revert_through_crashes(void **state)
{
	unsigned int iters = (unsigned int)env_u64("VSS_TRACK_ITERS", 200);
	unsigned long done = 0, untouched = 0, finished = 0;

	(void)state;
	for (unsigned int it = 0; it < iters; it++) {
		struct track t;
		struct vss_error err = { 0 };
		unsigned char *before = malloc(SIZE), *now = malloc(SIZE);
		uint64_t gen;
		unsigned int target;
		int r;

		assert_true(before && now);
		track_init(&t, it);
		CHECK(&t, open_vol(&t, &err) == 0, "open: %s", err.msg);
		gen = crashvfs_crashes(t.cv);
		for (unsigned int s = 0; s < 60; s++) {
			uint64_t pick = rng_below(&t.rng, 100);
			bool ok = pick < 80 ? do_write(&t, gen)
				: pick < 93 ? do_shadow(&t, gen, rng_below(&t.rng, 2))
					    : do_bookmark(&t, gen);
			CHECK(&t, ok, "a crash with none armed");
		}
		if (!t.nsh)
			CHECK(&t, do_shadow(&t, gen, true), "shadow");
		CHECK(&t, vss_cow_flush(t.vol) == 0, "flush");
		memcpy(before, t.cur, SIZE);
		target = (unsigned int)rng_below(&t.rng, t.nsh);
		crashvfs_crash_after(t.cv, 1 + rng_below(&t.rng, 80), rng_next(&t.rng));
		r = vss_cow_revert(t.vol, t.sh[target].id, &err);
		crashvfs_crash_after(t.cv, 0, 0);
		if (!crashed(&t, gen)) {
			CHECK(&t, r == 0, "revert: %d (%s)", r, err.msg);
			done++;
			crashvfs_crash(t.cv, rng_next(&t.rng));
		}
		reopen(&t);
		CHECK(&t, vss_cow_read(t.vol, now, SIZE, 0) == SIZE, "read");
		if (!memcmp(now, t.sh[target].data, SIZE)) {
			finished++;
		} else {
			CHECK(&t, r != 0 && !memcmp(now, before, SIZE), "after a revert %s, the "
			      "volume is neither the shadow nor what it was", r ? "cut" : "done");
			untouched++;
		}
		/* Every older shadow that is still listed reads its instant. */
		for (unsigned int i = 0; i <= target; i++) {
			struct vss_cow_shadow *h;

			if (vss_cow_shadow_open(t.vol, t.sh[i].id, &h))
				continue;
			r = (int)vss_cow_shadow_read(h, now, SIZE, 0);
			vss_cow_shadow_close(h);
			if (r == -EIO)
				continue;
			CHECK(&t, r == SIZE && !memcmp(now, t.sh[i].data, SIZE),
			      "shadow %u of %u reads another instant after the revert", i, target);
		}
		check_bookmarks(&t, false);
		CHECK(&t, vss_cow_close(t.vol) == 0, "close");
		t.vol = NULL;
		free(before);
		free(now);
		track_free(&t);
	}
	print_message("test_track: reverts: %lu done, %lu finished at open or done, %lu cut "
		      "before they began\n", done, finished, untouched);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bookmarks_through_crashes),
		cmocka_unit_test(test_revert_through_crashes),
	};

	g_seed = base_seed();
	print_message("test_track: seed %llu\n", (unsigned long long)g_seed);
	return cmocka_run_group_tests_name("changed-block tracking through crashes", tests,
					   NULL, NULL);
}
