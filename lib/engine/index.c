/*
 * engine/index.c - Robin Hood hash table of (block, seq) -> slot; see index.h.
 *
 * Invariants: a key sits at distance d = (pos - home(block)) mod cap from its
 * home, and along any probe run distances never drop by more than one from
 * one bucket to the next (Robin Hood order), so a lookup may stop at the
 * first bucket whose resident is closer to its home than we are to ours.
 * Along a probe run, one block's entries come in descending seq order, so
 * the write path's question (has the newest shadow a copy?) is answered by
 * the first entry of the block, however many shadows hold it.  A re-key
 * only ever lowers a seq to the next older shadow's, below which the block
 * has no entry between, so it keeps that order.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "engine/index.h"

#define INITIAL_CAP 1024

/* The table's capacity is any size (it grows by a quarter), so a hash is
 * mapped onto it by multiplication rather than by a mask. */
static size_t home(const struct vss_index *ix, uint64_t block)
{
	uint64_t h = block * 0x9E3779B97F4A7C15ull;
	h ^= h >> 29;
	h *= 0xBF58476D1CE4E5B9ull;
	return (size_t)(((unsigned __int128)h * ix->cap) >> 64);
}

static size_t dist(const struct vss_index *ix, size_t pos, uint64_t key)
{
	size_t h = home(ix, vss_index_key_block(key));
	return pos >= h ? pos - h : pos + ix->cap - h;
}

static size_t next_pos(const struct vss_index *ix, size_t pos)
{
	return pos + 1 == ix->cap ? 0 : pos + 1;
}

static int alloc_table(struct vss_index *ix, size_t cap)
{
	ix->keys = calloc(cap, sizeof(*ix->keys));
	ix->slots = malloc(cap * sizeof(*ix->slots));
	if (!ix->keys || !ix->slots) {
		free(ix->keys);
		free(ix->slots);
		return -ENOMEM;
	}
	ix->cap = cap;
	ix->count = 0;
	return 0;
}

int vss_index_init(struct vss_index *ix)
{
	ix->gen = 0;
	return alloc_table(ix, INITIAL_CAP);
}

void vss_index_release(struct vss_index *ix)
{
	free(ix->keys);
	free(ix->slots);
	ix->keys = NULL;
	ix->slots = NULL;
	ix->cap = ix->count = 0;
}

static void place(struct vss_index *ix, uint64_t key, uint32_t slot)
{
	size_t pos = home(ix, vss_index_key_block(key)), d = 0;

	for (;;) {
		uint64_t k = ix->keys[pos];
		if (!k) {
			ix->keys[pos] = key;
			ix->slots[pos] = slot;
			ix->count++;
			return;
		}
		size_t kd = dist(ix, pos, k);
		/* Robin Hood, and among one block's entries (same home, so
		 * same distance) the higher seq first. */
		if (kd < d || (kd == d && vss_index_key_block(k) == vss_index_key_block(key) &&
			       vss_index_key_seq(k) < vss_index_key_seq(key))) {
			uint32_t s = ix->slots[pos];
			ix->keys[pos] = key;
			ix->slots[pos] = slot;
			key = k;
			slot = s;
			d = kd;
		}
		pos = next_pos(ix, pos);
		d++;
	}
}

static int grow(struct vss_index *ix)
{
	struct vss_index old = *ix;
	int r = alloc_table(ix, old.cap + old.cap / 4);

	if (r) {
		*ix = old;
		return r;
	}
	for (size_t i = 0; i < old.cap; i++)
		if (old.keys[i])
			place(ix, old.keys[i], old.slots[i]);
	assert(ix->count == old.count && vss_index_check(ix) == 0);
	free(old.keys);
	free(old.slots);
	return 0;
}

/* Position of @key, or (size_t)-1. */
static size_t locate(const struct vss_index *ix, uint64_t key)
{
	size_t pos = home(ix, vss_index_key_block(key)), d = 0;

	for (;;) {
		uint64_t k = ix->keys[pos];
		if (!k || dist(ix, pos, k) < d)
			return (size_t)-1;
		if (k == key)
			return pos;
		pos = next_pos(ix, pos);
		d++;
	}
}

int vss_index_find(const struct vss_index *ix, uint64_t block, uint32_t min_seq,
		   uint32_t *seq, uint32_t *slot)
{
	size_t pos = home(ix, block), d = 0;
	uint32_t best = 0, best_slot = 0;

	for (;;) {
		uint64_t k = ix->keys[pos];
		if (!k || dist(ix, pos, k) < d)
			break;
		if (vss_index_key_block(k) == block) {
			uint32_t s = vss_index_key_seq(k);
			if (s < min_seq)
				break;  /* descending: the rest are older still */
			best = s;
			best_slot = ix->slots[pos];
		}
		pos = next_pos(ix, pos);
		d++;
	}
	if (!best)
		return 0;
	if (seq)
		*seq = best;
	if (slot)
		*slot = best_slot;
	return 1;
}

int vss_index_has(const struct vss_index *ix, uint64_t block, uint32_t seq)
{
	return locate(ix, vss_index_key(block, seq)) != (size_t)-1;
}

uint32_t vss_index_max_seq(const struct vss_index *ix, uint64_t block)
{
	size_t pos = home(ix, block), d = 0;

	for (;;) {
		uint64_t k = ix->keys[pos];
		if (!k || dist(ix, pos, k) < d)
			return 0;
		if (vss_index_key_block(k) == block)
			return vss_index_key_seq(k);  /* the first is the newest */
		pos = next_pos(ix, pos);
		d++;
	}
}

int vss_index_insert(struct vss_index *ix, uint64_t block, uint32_t seq, uint32_t slot)
{
	if (block > VSS_INDEX_BLOCK_MAX || !seq || seq > VSS_INDEX_SEQ_MAX)
		return -EINVAL;
	if ((ix->count + 1) * 10 > ix->cap * 9) {
		int r = grow(ix);
		if (r)
			return r;
	}
	assert(locate(ix, vss_index_key(block, seq)) == (size_t)-1);
	place(ix, vss_index_key(block, seq), slot);
	ix->gen++;
	return 0;
}

int vss_index_remove(struct vss_index *ix, uint64_t block, uint32_t seq, uint32_t *slot)
{
	size_t pos = locate(ix, vss_index_key(block, seq));

	if (pos == (size_t)-1)
		return 0;
	assert(ix->count > 0);
	if (slot)
		*slot = ix->slots[pos];
	for (;;) {
		size_t next = next_pos(ix, pos);
		uint64_t k = ix->keys[next];
		if (!k || dist(ix, next, k) == 0)
			break;
		ix->keys[pos] = k;
		ix->slots[pos] = ix->slots[next];
		pos = next;
	}
	ix->keys[pos] = 0;
	ix->count--;
	ix->gen++;
	return 1;
}

#ifndef NDEBUG
/* The seq of @block's entry with the smallest seq >= @min_seq, 0 if none. */
static uint32_t oldest_from(const struct vss_index *ix, uint64_t block, uint32_t min_seq)
{
	uint32_t seq = 0;

	return vss_index_find(ix, block, min_seq, &seq, NULL) ? seq : 0;
}
#endif

int vss_index_rekey(struct vss_index *ix, uint64_t block, uint32_t seq, uint32_t new_seq)
{
	size_t pos = locate(ix, vss_index_key(block, seq));

	if (pos == (size_t)-1 || !new_seq || new_seq > VSS_INDEX_SEQ_MAX)
		return -ENOENT;
	/* The contract (index.h) that keeps a block's entries in order: no
	 * entry from @new_seq up to @seq but this one. */
	assert(new_seq < seq && oldest_from(ix, block, new_seq) == seq);
	/* Same block, same home: the key can change in place. */
	ix->keys[pos] = vss_index_key(block, new_seq);
	ix->gen++;
	return 0;
}

int vss_index_check(const struct vss_index *ix)
{
	size_t n = 0;

	for (size_t pos = 0; pos < ix->cap; pos++) {
		uint64_t k = ix->keys[pos];
		size_t prev = pos ? pos - 1 : ix->cap - 1, d;

		if (!k)
			continue;
		n++;
		if (!vss_index_key_seq(k))
			return -EUCLEAN;
		/* Robin Hood order, and no gap between a key and its home. */
		d = dist(ix, pos, k);
		if (d && (!ix->keys[prev] || dist(ix, prev, ix->keys[prev]) + 1 < d))
			return -EUCLEAN;
		if (locate(ix, k) != pos)
			return -EUCLEAN;
		/* Along the run from its home, the block's newer entries first. */
		for (size_t p = home(ix, vss_index_key_block(k)); p != pos; p = next_pos(ix, p))
			if (vss_index_key_block(ix->keys[p]) == vss_index_key_block(k) &&
			    vss_index_key_seq(ix->keys[p]) <= vss_index_key_seq(k))
				return -EUCLEAN;
	}
	return n == ix->count ? 0 : -EUCLEAN;
}
