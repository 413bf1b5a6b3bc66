/*
 * tests/unit/test_index.c - the block index against a plain array model:
 * random inserts, removals and re-keys, with every query checked, the
 * generation moving with every change and only then, and the table's own
 * consistency check passing (and failing on a damaged table).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "engine/index.h"

#define NB 300   /* blocks */
#define NS 40    /* seqs */

static uint32_t model[NB][NS + 1];   /* slot + 1, 0 = absent */

static void model_find(uint64_t b, uint32_t min_seq, int *found, uint32_t *seq, uint32_t *slot)
{
	*found = 0;
	for (uint32_t s = min_seq; s <= NS; s++)
		if (model[b][s]) {
			*found = 1;
			*seq = s;
			*slot = model[b][s] - 1;
			return;
		}
}

static void random_against_model(void **state)
{
	struct vss_index ix;
	unsigned seed = 12345;
	size_t count = 0;

	memset(model, 0, sizeof(model));
	assert_int_equal(vss_index_init(&ix), 0);
	for (int step = 0; step < 200000; step++) {
		uint64_t b = (uint64_t)rand_r(&seed) % NB;
		uint32_t s = 1 + (uint32_t)rand_r(&seed) % NS;
		int op = rand_r(&seed) % 10;
		uint64_t gen = ix.gen, changes = 0;
		if (op < 5) {
			if (!model[b][s]) {
				uint32_t slot = (uint32_t)rand_r(&seed);
				assert_int_equal(vss_index_insert(&ix, b, s, slot), 0);
				model[b][s] = slot + 1;
				count++;
				changes++;
			}
		} else if (op < 8) {
			uint32_t slot = 0;
			int had = model[b][s] != 0;
			assert_int_equal(vss_index_remove(&ix, b, s, &slot), had);
			if (had) {
				assert_int_equal(slot, model[b][s] - 1);
				model[b][s] = 0;
				count--;
				changes++;
			}
		} else if (op < 9) {
			/* the engine's hand-down: to a lower seq, with no entry
			 * of the block in between (index.h) */
			uint32_t t = 1 + (uint32_t)rand_r(&seed) % NS;
			int clear = t < s;
			for (uint32_t u = t; clear && u < s; u++)
				clear = !model[b][u];
			if (model[b][s] && clear) {
				assert_int_equal(vss_index_rekey(&ix, b, s, t), 0);
				model[b][t] = model[b][s];
				model[b][s] = 0;
				changes++;
			}
		}
		/* a reader that finds the generation unchanged may trust
		 * what it looked up before (engine design note 4) */
		assert_int_equal(ix.gen, gen + changes);
		/* queries */
		uint64_t qb = (uint64_t)rand_r(&seed) % NB;
		uint32_t qs = 1 + (uint32_t)rand_r(&seed) % NS, seq = 0, slot = 0, mseq = 0, mslot = 0;
		int found;
		model_find(qb, qs, &found, &mseq, &mslot);
		assert_int_equal(vss_index_find(&ix, qb, qs, &seq, &slot), found);
		if (found) {
			assert_int_equal(seq, mseq);
			assert_int_equal(slot, mslot);
		}
		assert_int_equal(vss_index_has(&ix, qb, qs), model[qb][qs] != 0);
		uint32_t mx = 0;
		for (uint32_t t = 1; t <= NS; t++)
			if (model[qb][t])
				mx = t;
		assert_int_equal(vss_index_max_seq(&ix, qb), mx);
		assert_int_equal(ix.count, count);
		assert_int_equal(ix.gen, gen + changes);
		if (step % 997 == 0)
			assert_int_equal(vss_index_check(&ix), 0);
	}
	assert_int_equal(vss_index_check(&ix), 0);
	vss_index_release(&ix);
}

/* vss_index_check() finds what would break lookups: a wrong count, a key
 * moved out of its probe run, a block's entries out of seq order. */
static void check_finds_damage(void **state)
{
	struct vss_index ix;
	size_t a = SIZE_MAX, b = SIZE_MAX;
	uint64_t k;

	assert_int_equal(vss_index_init(&ix), 0);
	for (uint64_t i = 0; i < 500; i++)
		for (uint32_t s = 1; s <= 3; s++)
			assert_int_equal(vss_index_insert(&ix, i, s, (uint32_t)(i * 4 + s)), 0);
	assert_int_equal(vss_index_check(&ix), 0);

	ix.count++;
	assert_int_equal(vss_index_check(&ix), -EUCLEAN);
	ix.count--;

	/* Two entries of one block side by side: swapped, the older first. */
	for (size_t i = 0; i + 1 < ix.cap && a == SIZE_MAX; i++)
		if (ix.keys[i] && ix.keys[i + 1] &&
		    vss_index_key_block(ix.keys[i]) == vss_index_key_block(ix.keys[i + 1]))
			a = i;
	assert_true(a != SIZE_MAX);
	k = ix.keys[a];
	ix.keys[a] = ix.keys[a + 1];
	ix.keys[a + 1] = k;
	assert_int_equal(vss_index_check(&ix), -EUCLEAN);
	ix.keys[a + 1] = ix.keys[a];
	ix.keys[a] = k;
	assert_int_equal(vss_index_check(&ix), 0);

	/* A key put in an empty bucket away from its run. */
	for (size_t i = 0; i < ix.cap && b == SIZE_MAX; i++)
		if (!ix.keys[i] && ix.keys[(i + ix.cap / 2) % ix.cap])
			b = i;
	assert_true(b != SIZE_MAX);
	ix.keys[b] = ix.keys[(b + ix.cap / 2) % ix.cap];
	ix.keys[(b + ix.cap / 2) % ix.cap] = 0;
	assert_int_equal(vss_index_check(&ix), -EUCLEAN);
	vss_index_release(&ix);
}

static void large_blocks_and_growth(void **state)
{
	struct vss_index ix;
	assert_int_equal(vss_index_init(&ix), 0);
	for (uint64_t i = 0; i < 100000; i++)
		assert_int_equal(vss_index_insert(&ix, i * 7919 + (1ull << 39), 1 + (uint32_t)(i % 3), (uint32_t)i), 0);
	for (uint64_t i = 0; i < 100000; i++) {
		uint32_t slot;
		assert_true(vss_index_find(&ix, i * 7919 + (1ull << 39), 1, NULL, &slot));
		assert_int_equal(slot, (uint32_t)i);
	}
	/* at most 90% load, at least 72% after growing by a quarter: at most
	 * 16.7 bytes of table per entry */
	assert_true(ix.count * 10 <= ix.cap * 9);
	assert_true(ix.count * 100 >= ix.cap * 70);
	assert_true(vss_index_bytes(&ix) * 10 <= ix.count * 167);
	assert_int_equal(vss_index_insert(&ix, VSS_INDEX_BLOCK_MAX + 1, 1, 0), -EINVAL);
	assert_int_equal(vss_index_insert(&ix, 1, 0, 0), -EINVAL);
	vss_index_release(&ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_against_model),
		cmocka_unit_test(large_blocks_and_growth),
		cmocka_unit_test(check_finds_damage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
