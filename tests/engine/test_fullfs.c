/*
 * tests/engine/test_fullfs.c - the diff area's filesystem runs full
 * (crashvfs byte budget): live writes never fail, the oldest shadows are
 * deleted first, the survivors stay exact, also after a reopen, and the
 * diff area as a whole never fails.  VSS_TEST_SEED=n repeats a run;
 * VSS_FULLFS_ITERS sets how many runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <vss/cow.h>
#include "crashvfs.h"
#include "engine/cow_i.h"
#include "testutil.h"

#define BS        4096u
#define VOL_SIZE  (4u << 20)
#define MAX_SH    16

struct sh {
	vss_cow_id id;
	int persistent;
	int gone;               /* deleted (by an event) */
	int invalid;            /* invalidated (by an event) */
	unsigned char *image;   /* the volume at its instant */
};

struct fx {
	struct crashvfs *cv;
	struct sh sh[MAX_SH];
	int nsh;
	int deleted_order[MAX_SH];
	int ndeleted;
	int metadata_errors, invalid_not_alone;
};

static int sh_by_id(struct fx *f, const vss_cow_id id)
{
	for (int i = 0; i < f->nsh; i++)
		if (!memcmp(f->sh[i].id, id, 16))
			return i;
	return -1;
}

static void on_event(void *arg, const struct vss_cow_event *ev)
{
	struct fx *f = arg;
	int i = sh_by_id(f, ev->shadow);

	if (ev->type == VSS_COW_EV_SHADOW_DELETED && i >= 0) {
		f->sh[i].gone = 1;
		f->deleted_order[f->ndeleted++] = i;
	} else if (ev->type == VSS_COW_EV_METADATA_ERROR) {
		f->metadata_errors++;
		fprintf(stderr, "metadata error: %s\n", ev->msg);
	} else if (ev->type == VSS_COW_EV_SHADOW_INVALID && i >= 0) {
		/* Only the newest, once every older one is deleted. */
		for (int k = 0; k < i; k++)
			f->invalid_not_alone += !f->sh[k].gone;
		f->sh[i].invalid = 1;
	}
}

static struct vss_cow_volume *open_vol(struct fx *f)
{
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_cow_volume *vol = NULL;
	struct vss_error err = { 0 };

	cfg.block_size = BS;
	cfg.event = on_event;
	cfg.event_arg = f;
	if (vss_cow_open_vfs(crashvfs_vfs(f->cv), "origin", "diff", &cfg, VSS_COW_CREATE,
			     &vol, &err))
		fail_msg("open: %s", err.msg);
	return vol;
}

static void check_shadow(struct vss_cow_volume *vol, struct sh *s, int idx)
{
	struct vss_cow_shadow *h;
	unsigned char *buf = malloc(VOL_SIZE);

	assert_non_null(buf);
	assert_int_equal(vss_cow_shadow_open(vol, s->id, &h), 0);
	assert_int_equal(vss_cow_shadow_read(h, buf, VOL_SIZE, 0), VOL_SIZE);
	if (memcmp(buf, s->image, VOL_SIZE))
		fail_msg("shadow %d is not what the volume held at its instant", idx);
	vss_cow_shadow_close(h);
	free(buf);
}

static void check_volume(struct vss_cow_volume *vol, const unsigned char *ref)
{
	unsigned char *buf = malloc(VOL_SIZE);

	assert_non_null(buf);
	assert_int_equal(vss_cow_read(vol, buf, VOL_SIZE, 0), VOL_SIZE);
	assert_memory_equal(buf, ref, VOL_SIZE);
	free(buf);
}

static void one_run(uint64_t seed)
{
	struct fx f = { 0 };
	uint64_t rng = seed;
	unsigned char *ref = malloc(VOL_SIZE), *wbuf = malloc(64 * 1024);
	uint64_t budget = (uint64_t)(384 + rng_below(&rng, 512)) * 4096;  /* 1.5..3.5 MiB */
	struct vss_cow_volume *vol;
	int survivors = 0;

	assert_non_null(ref);
	assert_non_null(wbuf);
	assert_int_equal(crashvfs_new(&f.cv), 0);
	rng_fill(&rng, ref, VOL_SIZE);
	assert_int_equal(crashvfs_put(f.cv, "origin", ref, VOL_SIZE), 0);
	vol = open_vol(&f);
	assert_int_equal(crashvfs_set_budget(f.cv, "diff", budget), 0);

	for (int round = 0; round < MAX_SH; round++) {
		struct vss_cow_shadow_params p = { .flags = rng_below(&rng, 2) ?
						   VSS_COW_SHADOW_PERSISTENT : 0 };
		struct vss_error err = { 0 };
		struct sh *s = &f.sh[f.nsh];

		rng_fill(&rng, p.id, 16);
		memcpy(s->id, p.id, 16);
		s->persistent = !!p.flags;
		s->image = malloc(VOL_SIZE);
		assert_non_null(s->image);
		memcpy(s->image, ref, VOL_SIZE);
		f.nsh++;
		if (vss_cow_shadow_create(vol, &p, &err))
			fail_msg("create shadow %d: %s", round, err.msg);
		/* A storm: writes of 1..16 blocks anywhere, some unaligned. */
		for (int w = 0, n = 10 + (int)rng_below(&rng, 40); w < n; w++) {
			uint64_t len = 1 + rng_below(&rng, 16 * BS);
			uint64_t off = rng_below(&rng, VOL_SIZE - len + 1);
			if (rng_below(&rng, 2)) {
				off &= ~(uint64_t)(BS - 1);
				len = (len + BS - 1) & ~(uint64_t)(BS - 1);
				if (off + len > VOL_SIZE)
					len = VOL_SIZE - off;
			}
			rng_fill(&rng, wbuf, len);
			assert_int_equal(vss_cow_write(vol, wbuf, len, off), (ssize_t)len);
			memcpy(ref + off, wbuf, len);
		}
		if (rng_below(&rng, 4) == 0)
			assert_int_equal(vss_cow_flush(vol), 0);
		assert_true(crashvfs_allocated(f.cv, "diff") <= budget);
	}
	check_volume(vol, ref);
	assert_int_equal(f.metadata_errors, 0);
	assert_true(f.ndeleted > 0);    /* the budget is far below what all would need */
	fprintf(stderr, "  %d shadows, %d deleted, budget %llu\n", f.nsh, f.ndeleted,
		(unsigned long long)budget);
	/* Oldest first: every deleted shadow is older than every survivor. */
	for (int i = 0; i < f.ndeleted; i++)
		assert_int_equal(f.deleted_order[i], i);
	for (int i = 0; i < f.nsh; i++)
		assert_int_equal(f.sh[i].gone, i < f.ndeleted);
	assert_int_equal(f.invalid_not_alone, 0);
	for (int i = f.ndeleted; i < f.nsh; i++) {
		if (f.sh[i].invalid)
			continue;
		check_shadow(vol, &f.sh[i], i);
		survivors++;
	}
	assert_int_equal(vss_cow_close(vol), 0);

	/* Reopen with the filesystem still full: no new log can be written,
	 * but the volume comes up exact, the persistent survivors read as they
	 * did, and the event says why; close leaves the old log in force. */
	{
		int before = f.metadata_errors;

		/* not a page more than the diff area has now */
		assert_int_equal(crashvfs_set_budget(f.cv, "diff", crashvfs_allocated(f.cv, "diff")), 0);
		vol = open_vol(&f);
		check_volume(vol, ref);
		for (int i = f.ndeleted; i < f.nsh; i++)
			if (f.sh[i].persistent && !f.sh[i].invalid)
				check_shadow(vol, &f.sh[i], i);
		assert_int_equal(vss_cow_close(vol), 0);
		assert_true(f.metadata_errors <= before + 1);
		fprintf(stderr, "  reopened full: %d event(s)\n", f.metadata_errors - before);
		f.metadata_errors = before;
	}

	/* Reopen: a new log needs room on the filesystem, as much as the state
	 * it holds; give it some (see doc/limits.md). */
	assert_int_equal(crashvfs_set_budget(f.cv, "diff", budget + (1u << 20)), 0);
	vol = open_vol(&f);
	check_volume(vol, ref);
	{
		struct vss_cow_shadow_info *info;
		size_t n;
		int want = 0;
		assert_int_equal(vss_cow_shadow_list(vol, &info, &n), 0);
		for (int i = f.ndeleted; i < f.nsh; i++) {
			if (!f.sh[i].persistent || f.sh[i].invalid)
				continue;
			check_shadow(vol, &f.sh[i], i);
			want++;
		}
		assert_true((int)n >= want);
		free(info);
	}
	assert_int_equal(f.metadata_errors, 0);
	assert_int_equal(vss_cow_close(vol), 0);
	(void)survivors;
	for (int i = 0; i < f.nsh; i++)
		free(f.sh[i].image);
	crashvfs_free(f.cv);
	free(ref);
	free(wbuf);
}

static void test_full_filesystem(void **state)
{
	uint64_t seed = base_seed(), iters = env_u64("VSS_FULLFS_ITERS", 6);

	(void)state;
	for (uint64_t i = 0; i < iters; i++) {
		fprintf(stderr, "fullfs run %llu seed %llu\n", (unsigned long long)i,
			(unsigned long long)(seed + i));
		one_run(seed + i);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_filesystem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
