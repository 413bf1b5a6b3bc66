/*
 * engine/index.h - the in-memory block index: which shadow holds which
 * block's old content in which diff-area slot.
 *
 * One table for all shadows of a volume, keyed by (block, shadow seq); all
 * entries of one block hash to the same home, so "the oldest copy at or
 * after shadow s" is one short probe run whatever the number of shadows.
 * Open addressing with Robin Hood probing and backward-shift deletion; an
 * entry is 12 bytes (a 64-bit key, a 32-bit slot) in two parallel arrays and
 * the table grows by a quarter at 90% load, so memory is 13.3 to 16.7 bytes
 * per copied block once it is past its initial size.
 *
 * Not thread-safe: the engine serialises access with its index lock.
 */
#ifndef VSS_ENGINE_INDEX_H
#define VSS_ENGINE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define VSS_INDEX_SEQ_BITS  24
#define VSS_INDEX_SEQ_MAX   ((1u << VSS_INDEX_SEQ_BITS) - 1)
#define VSS_INDEX_BLOCK_MAX ((1ull << (64 - VSS_INDEX_SEQ_BITS)) - 1)

struct vss_index {
	uint64_t *keys;     /* (block << 24) | seq; 0 marks an empty bucket */
	uint32_t *slots;
	size_t cap;         /* any size >= 1024 */
	size_t count;
	uint64_t gen;       /* bumped by every insert, removal and re-key: while it
			     * stays the same, every lookup answers the same */
};

int vss_index_init(struct vss_index *ix);
void vss_index_release(struct vss_index *ix);

/* The entry of @block with the smallest seq >= @min_seq: 1 (filling @seq and
 * @slot, either may be NULL) or 0 if none. */
int vss_index_find(const struct vss_index *ix, uint64_t block, uint32_t min_seq,
		   uint32_t *seq, uint32_t *slot);

/* Whether (@block, @seq) has an entry. */
int vss_index_has(const struct vss_index *ix, uint64_t block, uint32_t seq);

/* The largest seq with an entry for @block, 0 if none. */
uint32_t vss_index_max_seq(const struct vss_index *ix, uint64_t block);

/* Adds (@block, @seq) -> @slot, which must not exist yet; 0 or -ENOMEM. */
int vss_index_insert(struct vss_index *ix, uint64_t block, uint32_t seq, uint32_t slot);

/* Removes (@block, @seq); 1 (slot in *@slot) or 0 if absent. */
int vss_index_remove(struct vss_index *ix, uint64_t block, uint32_t seq, uint32_t *slot);

/* Moves (@block, @seq) to (@block, @new_seq): @new_seq is lower than @seq
 * and @block has no entry with a seq from @new_seq to @seq (the hand-down
 * to the next older shadow), which keeps a block's entries in order. */
int vss_index_rekey(struct vss_index *ix, uint64_t block, uint32_t seq, uint32_t new_seq);

/* Whether the table keeps its invariants (index.c head): every entry
 * found from its home in Robin Hood order, a block's newer entries before
 * its older ones, the count right.  0 or -EUCLEAN; O(entries x probe
 * length): for tests and assertions. */
int vss_index_check(const struct vss_index *ix);

static inline uint64_t vss_index_key(uint64_t block, uint32_t seq)
{
	return block << VSS_INDEX_SEQ_BITS | seq;
}
static inline uint64_t vss_index_key_block(uint64_t key) { return key >> VSS_INDEX_SEQ_BITS; }
static inline uint32_t vss_index_key_seq(uint64_t key) { return (uint32_t)(key & VSS_INDEX_SEQ_MAX); }

/* Bytes of memory the table holds. */
static inline size_t vss_index_bytes(const struct vss_index *ix)
{
	return ix->cap * (sizeof(uint64_t) + sizeof(uint32_t));
}

#endif
