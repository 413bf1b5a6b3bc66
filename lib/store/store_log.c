/*
 * store/store_log.c - the diff-area file: slots for old block contents and
 * a log of the engine's metadata records, with group commit and recovery.
 *
 * ON-DISK FORMAT (version 3).  All integers little-endian.  CRC is CRC-32C.
 * Version 2 added the REDO and DONE records, version 3 the records of
 * changed-block tracking and revert (BOOKMARK to REVERT below; their
 * meaning is the engine's, engine/bookmark.c and engine/revert.c).  A
 * version 1 or 2 diff area is read as is and written as version 3 from its
 * first checkpoint on (every open makes one); this code refuses versions
 * above 3, so an older vss never misreads a record it does not know.
 *
 *   offset 0      superblock copy A (4096 bytes reserved, 128 used)
 *   offset 4096   superblock copy B
 *   data_offset   slot 0, slot 1, ... each block_size bytes;
 *                 data_offset = max(8192, block_size)
 *
 * Superblock:
 *     0  magic "VSSDIFF1"          64  log_first_lsn u64
 *     8  version u32 (3)           72  max_bytes u64 (all ones: unbounded)
 *    12  flags u32 (1: FAILED)     80  uuid[16] of this diff area
 *    16  sb_seq u64                96  reserved (zero)
 *    24  block_size u32           124  crc u32 over bytes 0..123
 *    28  reserved u32
 *    32  origin_size u64
 *    40  data_offset u64
 *    48  log_head_slot u64
 *    56  log_gen u64
 * The valid copy (magic, version, crc) with the higher sb_seq is current.  A
 * superblock is only ever rewritten into the other copy, then synced, so a
 * torn superblock write leaves the previous one intact.
 *
 * The metadata log is a chain of segments, each one slot long:
 *     0  magic "VSSL"   4 crc u32 over bytes 8..39   8 log_gen u64
 *    16  seg_index u64 (0 for the head)   24 next_slot u64   32 first_lsn u64
 *    40  records, then zeros
 * Every segment is written whole (zero-padded) the first time, so nothing of
 * an earlier use of the slot survives behind its records.  The slot named as
 * a segment's successor is taken with it, and its header zeroed at once:
 * replay follows the chain there before the log writes it, and a recycled
 * slot still holds what it held (for a REDO record, bytes the volume's user
 * chose, which could pass for the next segment).  Record:
 *     0  crc u32 over bytes 4..len-1   4 type u16   6 len u16 (multiple of 8)
 *     8  lsn u64                       16 payload:
 *   SHADOW_CREATE (len 64): seq u32, flags u32, created_ns u64, id[16], set_id[16]
 *   SHADOW_DELETE, SHADOW_INVALID, NEXT_SEQ (len 24): seq u32, zero u32
 *   SYNC (len 24): lsn u64
 *   COPY (len 40): block u64, seq u32, slot u32, data_crc u32 (crc32c of the
 *                  slot's block_size bytes; 0 in a checkpoint), zero u32
 *   REDO (len 40): block u64, slot u32, data_crc u32 (crc32c of the len
 *                  bytes at the start of the slot), off u32, len u32: a
 *                  write of those bytes to [off, off+len) of the block,
 *                  acknowledged but maybe not yet in the origin
 *   DONE (len 24): lsn u64: every REDO record up to it is in the origin
 *   BOOKMARK (len 48): seq u32, flags u32 (0: tracking; else why it was
 *                  lost), created_ns u64, id[16]: changed-block tracking
 *                  from shadow seq, which may be deleted since
 *   BOOKMARK_DROP, CLOSE (len 24): seq u32, zero u32 (CLOSE: seq zero)
 *   BOOKMARK_LOST, REVERT (len 24): seq u32, flags u32 (LOST: why; REVERT:
 *                  0 begin, 1 done, 2 abandoned)
 *   BMAP (len 40): seq u32, zero u32, block u64 (a multiple of 64), bits u64:
 *                  bit i set means block + i is in the bookmark's map
 *   MARK (len 32): block u64, seq u32, zero u32: the block was written;
 *                  every bookmark newer than shadow seq has it in its map
 * A CLOSE record is the last one a clean close appends: a log that does
 * not end with one was not closed cleanly, and the engine then trusts
 * only the tracking that COPY records made durable (engine/bookmark.c).
 * LSNs increase by one per record and never repeat, across generations too.
 *
 * Ordering.  A slot's content is written before the record naming it is
 * appended.  Appended records stay in memory (staged) until a commit, which
 * writes them and syncs the file once; after it a SYNC record (lsn L: every
 * record up to L, and every slot they name, is durable) is appended for the
 * next commit to carry.  The disk may persist a record before the slot it
 * names, so replay reads the slot of every COPY record past the last SYNC
 * and checks it against the record's data crc; the first mismatch ends the
 * log there, as a torn tail does (nothing at or after it was committed, so
 * no origin write relied on it).  REDO records are checked the same way.
 * The engine lets the origin block a record protects be overwritten only
 * after that record's commit.  A slot freed by a record (DELETE, DONE) is
 * reused only once a durable SYNC record vouches for the freeing record,
 * and so for the record that named the slot: replay never checks a reused
 * slot against an old record (it would end the log there, and lose what
 * came after).  Staged bytes are written out
 * (unsynced) once STAGED_COMMIT segments wait, so memory stays bounded when
 * nobody asks for durability, and whenever the engine asks (write_out: a
 * REDO record must survive a crash of the process the moment its write is
 * acknowledged).  Log bytes are only ever written with the lock held, so
 * the pieces of a segment reach the file in order.
 *
 * A full filesystem.  The log must never fail for want of space: deleting
 * a shadow to make room needs a DELETE record and a commit.  So the log
 * grows only into space reserved ahead (vss_file_reserve: fallocate with
 * KEEP_SIZE): a pool of taken slots, in memory only (after a crash they
 * are just free slots), from which the log takes its next segments.  The
 * pool always holds room for a record for every slot handed out that no
 * record names yet, plus LOG_SLACK bytes for what making room appends
 * (DELETE, SYNC, DONE, INVALID, NEXT_SEQ).  alloc_slot() tops the pool up
 * first and returns -ENOSPC when the filesystem cannot give that space:
 * the engine then deletes shadows, as at the maximum.  A checkpoint
 * reserves every slot its new log needs before it changes anything, and
 * returns -ENOSPC with the old log still in use.  Writes into reserved
 * space do not fail on ext4 and XFS (they keep blocks for converting
 * unwritten extents).  On a copy-on-write filesystem (btrfs without
 * nodatacow) a rewrite of log bytes needs new space all the same, so
 * there a full filesystem can still fail the diff area as a whole (every
 * shadow invalid, live writes go on), as before.
 *
 * Torn writes and recovery.  Replay starts at the superblock's head segment
 * and stops at the first record whose crc, lsn or length is wrong, or at a
 * segment whose header does not continue the chain (gen, index, first_lsn):
 * that is where the last flush was torn, and nothing behind it was ever
 * acknowledged.  A bad superblock pair or head segment, or records that do
 * not make sense together (the engine checks), make the diff area corrupt:
 * it is refused, not repaired.  After a successful open the engine writes
 * its whole state as a new log generation (checkpoint) and switches the
 * superblock to it; the old log is freed only after that switch is durable,
 * so a crash in the middle leaves the old log in force.  Until then the
 * slots its unvouched COPY and REDO records name stay taken too (held),
 * even those no live record needs any more: replaying the old log again
 * checks them, and must find them as they were.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "store/store.h"
#include "util/crc32c.h"

#define SB_SIZE        4096u
#define SB_USED        128u
#define SB_MAGIC       "VSSDIFF1"
#define SB_VERSION     3u
#define SB_VERSION_MIN 1u
#define SB_FLAG_FAILED 0x1u
#define SEG_MAGIC      "VSSL"
#define SEG_HDR        40u
#define REC_HDR        16u
#define REC_CREATE_LEN 64u
#define REC_SMALL_LEN  24u
#define REC_COPY_LEN   40u
#define REC_BOOKMARK_LEN 48u
#define REC_MARK_LEN   32u
#define MAX_SLOTS      0xFFFFFFF0u  /* slots are u32 in records */
#define LOG_SLACK      4096u        /* log bytes kept for making room (see head) */

/* Fuzzing builds accept any checksum, so that mutations reach the parsers
 * behind them; nothing else changes. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define crc_ok(stored, computed) ((void)(stored), (void)(computed), 1)
#else
#define crc_ok(stored, computed) ((stored) == (computed))
#endif

struct pending_free {
	uint32_t slot;
	int keep;       /* recycled: its space is not given back */
	uint64_t lsn;   /* reusable once this is vouched for */
};

/* Log bytes appended but not yet in the file.  They go to the file only in
 * a commit, after a sync that makes every slot they name durable first. */
struct staged {
	uint32_t slot, from, len;
	unsigned char *buf;
};

#define STAGED_COMMIT 8         /* this many staged segments are written out */

struct vss_store {
	struct vss_file *file;
	struct vss_store_geometry geo;
	uint32_t bs;
	uint64_t data_off;
	unsigned char uuid[16];

	pthread_mutex_t lock;           /* protects every field below */
	pthread_cond_t cond;            /* commit finished */
#ifndef NDEBUG
	_Atomic(const void *) owner;    /* the thread holding lock, for assert() */
#endif

	/* superblock */
	uint64_t sb_seq;
	int sb_which;                   /* copy (0 A, 1 B) that is current */
	uint32_t sb_flags;

	/* slots: a bit per slot, set when in use or waiting to be freed */
	uint64_t *bitmap;
	uint64_t *unrec;                /* a bit per slot: handed out, no record names it yet */
	uint64_t bitmap_bits;
	uint64_t nunrec;                /* set bits of unrec */
	uint32_t *pool;                 /* taken, space reserved: the log's next segments */
	size_t npool, pool_cap;
	uint64_t nslots;                /* high-water mark: slots below exist in the file */
	uint64_t used_slots;            /* set bits */
	uint64_t data_slots;
	uint64_t hint;                  /* no free slot below this */
	struct pending_free *pend;
	size_t npend, pend_cap;
	uint32_t *held;                 /* taken until the first checkpoint (see head) */
	size_t nheld, held_cap;
	int held_sorted;

	/* the current log */
	uint64_t gen;
	uint32_t head_slot;
	uint32_t *log_slots;            /* its segments, in order */
	size_t nlog, log_cap;
	uint32_t seg_slot, next_slot;
	uint64_t seg_index;
	uint64_t log_first_lsn;
	int next_reserved;              /* next_slot is taken (not so right after open) */
	int log_ready;                  /* a generation of our own was begun (checkpoint) */
	int failed_durable;             /* the FAILED flag is on disk */
	unsigned char *seg_buf;
	uint32_t seg_used;              /* bytes of seg_buf holding header + records */
	uint32_t seg_written;           /* bytes of it already staged */
	int seg_fresh;                  /* not yet staged whole */
	struct staged *staged;          /* log bytes waiting for the next commit */
	size_t nstaged, staged_cap;
	uint64_t next_lsn;
	_Atomic uint64_t durable;       /* written under lock, read without */
	uint64_t vouched;               /* a durable SYNC record covers up to here */
	uint64_t sync_appended;         /* what the last SYNC record appended covers */
	int committing;
	int failed;
};

/* ---- the lock, with its holder known to assert() ---- */

#ifndef NDEBUG
static _Thread_local char self;         /* this thread, by the address */
#define assert_locked(st) assert((st)->owner == &self)
#else
#define assert_locked(st) ((void)0)
#endif

static void lock(struct vss_store *st)
{
	pthread_mutex_lock(&st->lock);
#ifndef NDEBUG
	st->owner = &self;
#endif
}

static void unlock(struct vss_store *st)
{
	assert_locked(st);
#ifndef NDEBUG
	st->owner = NULL;
#endif
	pthread_mutex_unlock(&st->lock);
}

/* Waits for a commit to finish (lock held). */
static void wait_commit(struct vss_store *st)
{
	assert_locked(st);
#ifndef NDEBUG
	st->owner = NULL;
#endif
	pthread_cond_wait(&st->cond, &st->lock);
#ifndef NDEBUG
	st->owner = &self;
#endif
}

/* ---- little-endian helpers ---- */

static void put16(unsigned char *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint64_t slot_off(const struct vss_store *st, uint64_t slot)
{
	return st->data_off + slot * st->bs;
}

/* ---- records ---- */

static uint32_t rec_len(enum vss_rec_type t)
{
	switch (t) {
	case VSS_REC_SHADOW_CREATE: return REC_CREATE_LEN;
	case VSS_REC_SHADOW_DELETE:
	case VSS_REC_SHADOW_INVALID:
	case VSS_REC_NEXT_SEQ:
	case VSS_REC_SYNC:
	case VSS_REC_DONE:
	case VSS_REC_BOOKMARK_DROP:
	case VSS_REC_BOOKMARK_LOST:
	case VSS_REC_CLOSE:
	case VSS_REC_REVERT: return REC_SMALL_LEN;
	case VSS_REC_COPY:
	case VSS_REC_REDO:
	case VSS_REC_BMAP: return REC_COPY_LEN;
	case VSS_REC_BOOKMARK: return REC_BOOKMARK_LEN;
	case VSS_REC_MARK: return REC_MARK_LEN;
	}
	return 0;
}

static uint32_t rec_encode(unsigned char *p, const struct vss_rec *r, uint64_t lsn)
{
	uint32_t len = rec_len(r->type);

	memset(p, 0, len);
	put16(p + 4, (uint16_t)r->type);
	put16(p + 6, (uint16_t)len);
	put64(p + 8, lsn);
	switch (r->type) {
	case VSS_REC_SHADOW_CREATE:
		put32(p + 16, r->seq);
		put32(p + 20, r->flags);
		put64(p + 24, r->created_ns);
		memcpy(p + 32, r->id, 16);
		memcpy(p + 48, r->set_id, 16);
		break;
	case VSS_REC_SHADOW_DELETE:
	case VSS_REC_SHADOW_INVALID:
	case VSS_REC_NEXT_SEQ:
		put32(p + 16, r->seq);
		break;
	case VSS_REC_COPY:
		put64(p + 16, r->block);
		put32(p + 24, r->seq);
		put32(p + 28, r->slot);
		put32(p + 32, r->data_crc);
		break;
	case VSS_REC_REDO:
		put64(p + 16, r->block);
		put32(p + 24, r->slot);
		put32(p + 28, r->data_crc);
		put32(p + 32, r->off);
		put32(p + 36, r->len);
		break;
	case VSS_REC_SYNC:
	case VSS_REC_DONE:
		put64(p + 16, r->block);
		break;
	case VSS_REC_BOOKMARK:
		put32(p + 16, r->seq);
		put32(p + 20, r->flags);
		put64(p + 24, r->created_ns);
		memcpy(p + 32, r->id, 16);
		break;
	case VSS_REC_BOOKMARK_DROP:
	case VSS_REC_CLOSE:
		put32(p + 16, r->seq);
		break;
	case VSS_REC_BOOKMARK_LOST:
	case VSS_REC_REVERT:
		put32(p + 16, r->seq);
		put32(p + 20, r->flags);
		break;
	case VSS_REC_BMAP:
		put32(p + 16, r->seq);
		put64(p + 24, r->block);
		put64(p + 32, r->bits);
		break;
	case VSS_REC_MARK:
		put64(p + 16, r->block);
		put32(p + 24, r->seq);
		break;
	}
	put32(p, vss_crc32c(0, p + 4, len - 4));
	return len;
}

int vss_store_log_decode(const unsigned char *p, uint32_t avail,
			 uint64_t expect_lsn, struct vss_rec *r)
{
	uint32_t len, type;
	static const unsigned char zero[REC_HDR];

	if (avail < REC_HDR || !memcmp(p, zero, REC_HDR))
		return 0;
	type = get16(p + 4);
	len = get16(p + 6);
	if (len < REC_HDR || len > avail || len % 8 || len != rec_len(type))
		return -EUCLEAN;
	if (!crc_ok(get32(p), vss_crc32c(0, p + 4, len - 4)) || get64(p + 8) != expect_lsn)
		return -EUCLEAN;
	memset(r, 0, sizeof(*r));
	r->type = type;
	switch (type) {
	case VSS_REC_SHADOW_CREATE:
		r->seq = get32(p + 16);
		r->flags = get32(p + 20);
		r->created_ns = get64(p + 24);
		memcpy(r->id, p + 32, 16);
		memcpy(r->set_id, p + 48, 16);
		break;
	case VSS_REC_SHADOW_DELETE:
	case VSS_REC_SHADOW_INVALID:
	case VSS_REC_NEXT_SEQ:
		r->seq = get32(p + 16);
		break;
	case VSS_REC_COPY:
		r->block = get64(p + 16);
		r->seq = get32(p + 24);
		r->slot = get32(p + 28);
		r->data_crc = get32(p + 32);
		break;
	case VSS_REC_REDO:
		r->block = get64(p + 16);
		r->slot = get32(p + 24);
		r->data_crc = get32(p + 28);
		r->off = get32(p + 32);
		r->len = get32(p + 36);
		break;
	case VSS_REC_SYNC:
	case VSS_REC_DONE:
		r->block = get64(p + 16);
		break;
	case VSS_REC_BOOKMARK:
		r->seq = get32(p + 16);
		r->flags = get32(p + 20);
		r->created_ns = get64(p + 24);
		memcpy(r->id, p + 32, 16);
		break;
	case VSS_REC_BOOKMARK_DROP:
	case VSS_REC_CLOSE:
		r->seq = get32(p + 16);
		break;
	case VSS_REC_BOOKMARK_LOST:
	case VSS_REC_REVERT:
		r->seq = get32(p + 16);
		r->flags = get32(p + 20);
		break;
	case VSS_REC_BMAP:
		r->seq = get32(p + 16);
		r->block = get64(p + 24);
		r->bits = get64(p + 32);
		break;
	case VSS_REC_MARK:
		r->block = get64(p + 16);
		r->seq = get32(p + 24);
		break;
	}
	r->lsn = expect_lsn;
	return (int)len;
}

/* ---- superblock ---- */

struct sb {
	uint32_t flags, block_size;
	uint64_t seq, origin_size, data_off, head_slot, gen, first_lsn, max_bytes;
	unsigned char uuid[16];
};

static void sb_encode(unsigned char *p, const struct sb *s)
{
	memset(p, 0, SB_SIZE);
	memcpy(p, SB_MAGIC, 8);
	put32(p + 8, SB_VERSION);
	put32(p + 12, s->flags);
	put64(p + 16, s->seq);
	put32(p + 24, s->block_size);
	put64(p + 32, s->origin_size);
	put64(p + 40, s->data_off);
	put64(p + 48, s->head_slot);
	put64(p + 56, s->gen);
	put64(p + 64, s->first_lsn);
	put64(p + 72, s->max_bytes);
	memcpy(p + 80, s->uuid, 16);
	put32(p + 124, vss_crc32c(0, p, 124));
}

/* 0 if @p holds a valid superblock, -EUCLEAN (with a reason) otherwise. */
static int sb_decode(const unsigned char *p, struct sb *s, const char **why)
{
	if (memcmp(p, SB_MAGIC, 8)) {
		*why = "no vss diff-area signature";
		return -EUCLEAN;
	}
	if (!crc_ok(get32(p + 124), vss_crc32c(0, p, 124))) {
		*why = "superblock checksum mismatch";
		return -EUCLEAN;
	}
	if (get32(p + 8) < SB_VERSION_MIN || get32(p + 8) > SB_VERSION) {
		*why = "unsupported diff-area format version";
		return -EUCLEAN;
	}
	s->flags = get32(p + 12);
	s->seq = get64(p + 16);
	s->block_size = get32(p + 24);
	s->origin_size = get64(p + 32);
	s->data_off = get64(p + 40);
	s->head_slot = get64(p + 48);
	s->gen = get64(p + 56);
	s->first_lsn = get64(p + 64);
	s->max_bytes = get64(p + 72);
	memcpy(s->uuid, p + 80, 16);
	if (s->block_size < VSS_COW_BLOCK_MIN || s->block_size > VSS_COW_BLOCK_MAX ||
	    (s->block_size & (s->block_size - 1))) {
		*why = "superblock has an invalid block size";
		return -EUCLEAN;
	}
	if (s->data_off != (s->block_size > 2 * SB_SIZE ? s->block_size : 2 * SB_SIZE) ||
	    s->head_slot >= MAX_SLOTS || s->first_lsn == 0) {
		*why = "superblock fields are inconsistent";
		return -EUCLEAN;
	}
	return 0;
}

/* Writes the current state into the other superblock copy, durably. */
static int sb_write(struct vss_store *st, uint64_t head_slot, uint64_t gen,
		    uint64_t first_lsn)
{
	unsigned char *p = calloc(1, SB_SIZE);
	struct sb s = {
		.flags = st->sb_flags, .block_size = st->bs, .seq = st->sb_seq + 1,
		.origin_size = st->geo.origin_size, .data_off = st->data_off,
		.head_slot = head_slot, .gen = gen, .first_lsn = first_lsn,
		.max_bytes = st->geo.max_bytes,
	};
	int which = st->sb_which ^ 1, r;

	assert_locked(st);
	if (!p)
		return -ENOMEM;
	memcpy(s.uuid, st->uuid, 16);
	sb_encode(p, &s);
	r = vss_file_pwrite(st->file, p, SB_SIZE, (uint64_t)which * SB_SIZE);
	if (!r)
		r = vss_file_sync(st->file);
	free(p);
	if (r)
		return r;
	st->sb_seq++;
	st->sb_which = which;
	return 0;
}

/* ---- slot bitmap ---- */

static int bit_test(const struct vss_store *st, uint64_t s)
{
	return s < st->bitmap_bits && (st->bitmap[s / 64] >> (s % 64)) & 1;
}

static int bitmap_grow(struct vss_store *st, uint64_t need)
{
	uint64_t bits = st->bitmap_bits ? st->bitmap_bits : 1024;
	uint64_t *nb;

	while (bits <= need)
		bits *= 2;
	if (bits == st->bitmap_bits)
		return 0;
	nb = realloc(st->bitmap, bits / 8);
	if (!nb)
		return -ENOMEM;
	memset((char *)nb + st->bitmap_bits / 8, 0, (bits - st->bitmap_bits) / 8);
	st->bitmap = nb;
	nb = realloc(st->unrec, bits / 8);
	if (!nb)
		return -ENOMEM;
	memset((char *)nb + st->bitmap_bits / 8, 0, (bits - st->bitmap_bits) / 8);
	st->unrec = nb;
	st->bitmap_bits = bits;
	return 0;
}

static int bit_set(struct vss_store *st, uint64_t s)
{
	int r;

	assert_locked(st);
	/* A slot is taken once: used_slots counts the bits set. */
	assert(!bit_test(st, s));
	r = bitmap_grow(st, s);
	if (r)
		return r;
	st->bitmap[s / 64] |= 1ull << (s % 64);
	st->used_slots++;
	if (s >= st->nslots)
		st->nslots = s + 1;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * Frees @n slots for reuse now and gives their space back: the file is cut
 * after its last used slot, and the rest is punched out in runs (one call a
 * run: on a filesystem mounted with discard each call is slow).  Sorts @s.
 */
/* Marks slots free; with @keep their space stays allocated in the file
 * (they are about to be reused), else it is given back. */
static void slots_release_keep(struct vss_store *st, uint32_t *s, size_t n, int keep)
{
	assert_locked(st);
	for (size_t i = 0; i < n; i++) {
		/* Only a slot in use is given back, and only once. */
		assert(bit_test(st, s[i]) && st->used_slots > 0);
		assert(!((st->unrec[s[i] / 64] >> (s[i] % 64)) & 1));
		st->bitmap[s[i] / 64] &= ~(1ull << (s[i] % 64));
		st->used_slots--;
		if (s[i] < st->hint)
			st->hint = s[i];
	}
	if (keep)
		return;
	if (n > 1)
		qsort(s, n, sizeof(*s), cmp_u32);
	if (n && s[n - 1] + 1 >= st->nslots) {
		while (st->nslots && !bit_test(st, st->nslots - 1))
			st->nslots--;
		vss_file_truncate(st->file, slot_off(st, st->nslots));
	}
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && s[j] == s[j - 1] + 1)
			j++;
		if (s[i] < st->nslots) {
			uint64_t last = s[j - 1] < st->nslots ? s[j - 1] : st->nslots - 1;
			vss_file_punch(st->file, slot_off(st, s[i]), (last - s[i] + 1) * st->bs);
		}
		i = j;
	}
}

static void slots_release(struct vss_store *st, uint32_t *s, size_t n)
{
	slots_release_keep(st, s, n, 0);
}

static void slot_release(struct vss_store *st, uint32_t s)
{
	slots_release(st, &s, 1);
}

static int over_max(const struct vss_store *st, uint64_t slots)
{
	if (st->geo.max_bytes == VSS_COW_UNBOUNDED)
		return 0;
	return st->data_off + slots * st->bs > st->geo.max_bytes;
}

/* Finds and takes the lowest free slot (data_slot_take() minds the maximum). */
static int slot_take(struct vss_store *st, uint32_t *out)
{
	uint64_t s = st->hint;

	assert_locked(st);
	while (s < st->nslots) {
		uint64_t w = st->bitmap[s / 64];
		if (w == ~0ull) {
			s = (s / 64 + 1) * 64;
			continue;
		}
		if (!((w >> (s % 64)) & 1))
			break;
		s++;
	}
	if (s >= MAX_SLOTS)
		return -ENOSPC;
	st->hint = s + 1;
	int r = bit_set(st, s);
	if (r)
		return r;
	*out = (uint32_t)s;
	return 0;
}

static void release_pending(struct vss_store *st)
{
	uint32_t *done = malloc(st->npend * sizeof(*done) + 1);
	size_t j = 0, n = 0, k = st->npend;

	assert_locked(st);
	/* Given back from the front of done[], recycled from the back. */
	for (size_t i = 0; i < st->npend; i++) {
		if (st->pend[i].lsn > st->vouched)
			st->pend[j++] = st->pend[i];
		else if (done)
			done[st->pend[i].keep ? --k : n++] = st->pend[i].slot;
		else
			slots_release_keep(st, &st->pend[i].slot, 1, st->pend[i].keep);
	}
	if (done) {
		slots_release(st, done, n);
		slots_release_keep(st, done + k, st->npend - k, 1);
	}
	st->npend = j;
	free(done);
}

/* ---- the log ---- */

/* Makes room for one more slot number in the array *@v of @n (of *@cap). */
static int slots_grow(uint32_t **v, size_t n, size_t *cap)
{
	if (n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		uint32_t *nv = realloc(*v, c * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	return 0;
}

static int log_slots_push(struct vss_store *st, uint32_t slot)
{
	assert_locked(st);
	if (slots_grow(&st->log_slots, st->nlog, &st->log_cap))
		return -ENOMEM;
	st->log_slots[st->nlog++] = slot;
	return 0;
}

static void seg_header(struct vss_store *st, uint64_t first_lsn)
{
	unsigned char *p = st->seg_buf;

	memset(p, 0, st->bs);
	memcpy(p, SEG_MAGIC, 4);
	put64(p + 8, st->gen);
	put64(p + 16, st->seg_index);
	put64(p + 24, st->next_slot);
	put64(p + 32, first_lsn);
	put32(p + 4, vss_crc32c(0, p + 8, SEG_HDR - 8));
	st->seg_used = SEG_HDR;
	st->seg_written = 0;
	st->seg_fresh = 1;
}

/* Stages what of the current segment is not staged yet (lock held). */
static int seg_stage(struct vss_store *st)
{
	uint32_t from = st->seg_fresh ? 0 : st->seg_written;
	uint32_t to = st->seg_fresh ? st->bs : st->seg_used;
	struct staged *w;

	assert_locked(st);
	if (from >= to)
		return 0;
	if (st->nstaged == st->staged_cap) {
		size_t cap = st->staged_cap ? st->staged_cap * 2 : 16;
		struct staged *n = realloc(st->staged, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		st->staged = n;
		st->staged_cap = cap;
	}
	w = &st->staged[st->nstaged];
	w->buf = malloc(to - from);
	if (!w->buf)
		return -ENOMEM;
	memcpy(w->buf, st->seg_buf + from, to - from);
	w->slot = st->seg_slot;
	w->from = from;
	w->len = to - from;
	st->nstaged++;
	st->seg_fresh = 0;
	st->seg_written = st->seg_used;
	return 0;
}

static void staged_drop(struct staged *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(w[i].buf);
	free(w);
}

/* Writes staged log bytes to the file, in order, and frees them. */
static int staged_write(struct vss_store *st, struct staged *w, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		if (!r)
			r = vss_file_pwrite(st->file, w[i].buf, w[i].len,
					    slot_off(st, w[i].slot) + w[i].from);
		free(w[i].buf);
	}
	free(w);
	return r;
}

static void staged_take(struct vss_store *st, struct staged **w, size_t *n)
{
	*w = st->staged;
	*n = st->nstaged;
	st->staged = NULL;
	st->nstaged = st->staged_cap = 0;
}

/* Writes what is staged, unsynced (lock held: log bytes are only ever
 * written under it, so the pieces of a segment land in order). */
static int log_write_out(struct vss_store *st)
{
	struct staged *w;
	size_t nw;
	int r;

	assert_locked(st);
	staged_take(st, &w, &nw);
	r = staged_write(st, w, nw);
	if (r)
		st->failed = 1;
	return r;
}

/* ---- the log's reserve (see the head: a full filesystem) ---- */

/* @slot is named by a record now, or given back: no record to make room for. */
static void unrec_clear(struct vss_store *st, uint32_t slot)
{
	assert_locked(st);
	if (slot < st->bitmap_bits && (st->unrec[slot / 64] >> (slot % 64)) & 1) {
		assert(st->nunrec > 0 && bit_test(st, slot));
		st->unrec[slot / 64] &= ~(1ull << (slot % 64));
		st->nunrec--;
	}
}

/* Bytes of records one segment surely holds (records do not straddle). */
static uint64_t seg_room(const struct vss_store *st)
{
	return st->bs - SEG_HDR - REC_CREATE_LEN;
}

/* Bytes the log can take without space the filesystem has yet to give:
 * the rest of the current segment, then one segment per pool slot (each
 * step moves into the reserved successor and takes a pool slot as its
 * own successor). */
static uint64_t log_room(const struct vss_store *st)
{
	uint64_t cur = st->seg_used < st->bs - REC_CREATE_LEN ?
		       st->bs - REC_CREATE_LEN - st->seg_used : 0;

	return cur + st->npool * seg_room(st);
}

/* Bytes the log must be able to take: a record for every slot handed out
 * and not yet named, with @extra more, and what making room appends. */
static uint64_t log_need(const struct vss_store *st, uint64_t extra)
{
	return (st->nunrec + extra) * REC_COPY_LEN + LOG_SLACK;
}

/* Takes the lowest free slot and reserves its space on disk (lock held). */
static int slot_take_reserved(struct vss_store *st, uint32_t *slot)
{
	int r = slot_take(st, slot);

	assert_locked(st);
	if (r)
		return r;
	r = vss_file_reserve(st->file, slot_off(st, *slot), st->bs);
	if (r == -EOPNOTSUPP)
		r = 0;          /* cannot: writes there may meet ENOSPC as before */
	if (r) {
		slot_release(st, *slot);
		return r;
	}
	return 0;
}

/* Adds a slot to the pool; -ENOSPC when the filesystem has no room. */
static int pool_add(struct vss_store *st)
{
	uint32_t slot;
	int r;

	assert_locked(st);
	if (slots_grow(&st->pool, st->npool, &st->pool_cap))
		return -ENOMEM;
	r = slot_take_reserved(st, &slot);
	if (!r) {
		/* Kept in order: the log takes the lowest first. */
		size_t i = st->npool++;
		for (; i && st->pool[i - 1] > slot; i--)
			st->pool[i] = st->pool[i - 1];
		st->pool[i] = slot;
	}
	return r;
}

/* Grows the pool until the log can take @need bytes (the pool keeps what
 * it got on failure).  Lock held. */
static int pool_fill(struct vss_store *st, uint64_t need)
{
	int r = 0;

	assert_locked(st);
	while (!r && log_room(st) < need)
		r = pool_add(st);
	return r;
}

/* Gives back pool slots beyond what the log needs now (lock held). */
static void pool_trim(struct vss_store *st)
{
	uint64_t need = log_need(st, 0);

	assert_locked(st);
	while (st->npool > 1 && log_room(st) - seg_room(st) >= need)
		slot_release(st, st->pool[--st->npool]);
}

/* A slot for a log segment: from the pool, else taken and reserved now
 * (which fails with -ENOSPC only if the engine outran the reserve). */
static int log_slot_get(struct vss_store *st, uint32_t *slot)
{
	assert_locked(st);
	if (st->npool) {
		*slot = st->pool[0];
		memmove(st->pool, st->pool + 1, --st->npool * sizeof(*st->pool));
		return 0;
	}
	return slot_take_reserved(st, slot);
}

/* Takes a slot for the log's next segment and zeroes its header (see the
 * head: replay reads it before the log writes it). */
static int log_take_next(struct vss_store *st, uint32_t *slot)
{
	static const unsigned char zero[SEG_HDR];
	int r = log_slot_get(st, slot);

	assert_locked(st);
	return r ? r : vss_file_pwrite(st->file, zero, SEG_HDR, slot_off(st, *slot));
}

/* Starts the log's next segment in the slot reserved for it. */
static int seg_advance(struct vss_store *st)
{
	uint32_t next;
	int r = seg_stage(st);

	assert_locked(st);
	if (r)
		return r;
	r = log_take_next(st, &next);
	if (r)
		return r;
	r = log_slots_push(st, st->next_slot);
	if (r)
		return r;
	st->seg_slot = st->next_slot;
	st->next_slot = next;
	st->seg_index++;
	seg_header(st, st->next_lsn);
	return 0;
}

/* Begins a new log generation in fresh slots (head and its successor). */
static int log_begin(struct vss_store *st)
{
	uint32_t head, next;
	int r;

	assert_locked(st);
	r = log_slot_get(st, &head);
	if (r)
		return r;
	r = log_take_next(st, &next);
	if (r)
		return r;
	st->nlog = 0;
	r = log_slots_push(st, head);
	if (r)
		return r;
	st->gen++;
	st->head_slot = head;
	st->seg_slot = head;
	st->next_slot = next;
	st->next_reserved = 1;
	st->seg_index = 0;
	st->log_first_lsn = st->next_lsn;
	st->log_ready = 1;
	seg_header(st, st->next_lsn);
	return 0;
}

static int log_append(struct vss_store *st, const struct vss_rec *rec, uint64_t *lsn)
{
	uint32_t len = rec_len(rec->type);
	int r;

	assert_locked(st);
	if (!len || !st->log_ready)
		return -EINVAL;
	if (st->failed)
		return -EIO;
	if (st->seg_used + len > st->bs) {
		r = seg_advance(st);
		if (r) {
			st->failed = 1;
			return r;
		}
	}
	if ((rec->type == VSS_REC_COPY || rec->type == VSS_REC_REDO))
		unrec_clear(st, rec->slot);
	rec_encode(st->seg_buf + st->seg_used, rec, st->next_lsn);
	st->seg_used += len;
	*lsn = st->next_lsn++;
	return 0;
}

/* ---- consistency (for assert()) ---- */

#ifndef NDEBUG
static uint64_t popcount(const uint64_t *words, uint64_t bits)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < bits / 64; i++)
		n += (uint64_t)__builtin_popcountll(words[i]);
	return n;
}

/* The slot bitmap agrees with everything that counts or holds slots:
 * used_slots counts its bits, nunrec those of unrec (a subset), the log's
 * segments, its reserved successor and the pool are in use, and no slot
 * at or past nslots is.  O(slots / 64).  Lock held. */
static void store_check(struct vss_store *st)
{
	assert_locked(st);
	assert(popcount(st->bitmap, st->bitmap_bits) == st->used_slots);
	assert(popcount(st->unrec, st->bitmap_bits) == st->nunrec);
	for (uint64_t i = 0; i < st->bitmap_bits / 64; i++)
		assert(!(st->unrec[i] & ~st->bitmap[i]));
	for (size_t i = 0; i < st->nlog; i++)
		assert(bit_test(st, st->log_slots[i]));
	assert(!st->next_reserved || bit_test(st, st->next_slot));
	for (size_t i = 0; i < st->npool; i++)
		assert(bit_test(st, st->pool[i]) && (!i || st->pool[i - 1] < st->pool[i]));
	for (uint64_t s = st->nslots; s < st->bitmap_bits; s++)
		assert(!bit_test(st, s));
	assert(st->data_slots <= st->used_slots);
}
#else
static void store_check(struct vss_store *st) { (void)st; }
#endif

/* ---- operations ---- */

static int store_format(struct vss_file *file, const struct vss_store_geometry *geo,
			struct vss_error *err)
{
	uint32_t bs = geo->block_size;
	uint64_t data_off = bs > 2 * SB_SIZE ? bs : 2 * SB_SIZE;
	unsigned char *buf = calloc(1, bs > SB_SIZE ? bs : SB_SIZE);
	struct sb s = {
		.block_size = bs, .seq = 1, .origin_size = geo->origin_size,
		.data_off = data_off, .head_slot = 0, .gen = 1, .first_lsn = 1,
		.max_bytes = geo->max_bytes,
	};
	int r;

	if (!buf)
		return vss_error_set(err, -ENOMEM, "out of memory");
	uuid_generate(s.uuid);
	r = vss_file_truncate(file, 0);
	/* The head segment: gen 1, index 0, next slot 1, no records. */
	memcpy(buf, SEG_MAGIC, 4);
	put64(buf + 8, 1);
	put64(buf + 16, 0);
	put64(buf + 24, 1);
	put64(buf + 32, 1);
	put32(buf + 4, vss_crc32c(0, buf + 8, SEG_HDR - 8));
	if (!r)
		r = vss_file_pwrite(file, buf, bs, data_off);
	if (!r) {
		sb_encode(buf, &s);
		r = vss_file_pwrite(file, buf, SB_SIZE, 0);
	}
	if (!r) {
		s.seq = 0;
		sb_encode(buf, &s);
		r = vss_file_pwrite(file, buf, SB_SIZE, SB_SIZE);
	}
	if (!r)
		r = vss_file_sync(file);
	free(buf);
	if (r)
		return vss_error_set(err, r, "cannot write the new diff area: %s", strerror(-r));
	return 0;
}

static void store_free(struct vss_store *st)
{
	if (!st)
		return;
	vss_file_close(st->file);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st->bitmap);
	free(st->unrec);
	free(st->pool);
	free(st->pend);
	free(st->held);
	free(st->log_slots);
	free(st->seg_buf);
	for (size_t i = 0; i < st->nstaged; i++)
		free(st->staged[i].buf);
	free(st->staged);
	free(st);
}

/* Keeps @slot taken until the first checkpoint after open is in force. */
static int hold_slot(struct vss_store *st, uint32_t slot)
{
	assert_locked(st);
	if (st->nheld == st->held_cap) {
		size_t cap = st->held_cap ? 2 * st->held_cap : 64;
		uint32_t *n = realloc(st->held, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		st->held = n;
		st->held_cap = cap;
	}
	st->held[st->nheld++] = slot;
	st->held_sorted = 0;
	return bit_set(st, slot);
}

/* Takes @slot off the held list, if it is there. */
static int unhold_slot(struct vss_store *st, uint32_t slot)
{
	size_t lo = 0, hi = st->nheld;

	assert_locked(st);
	if (!st->held_sorted) {
		if (st->nheld > 1)
			qsort(st->held, st->nheld, sizeof(*st->held), cmp_u32);
		st->held_sorted = 1;
	}
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (st->held[mid] < slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == st->nheld || st->held[lo] != slot)
		return 0;
	memmove(&st->held[lo], &st->held[lo + 1], (st->nheld - lo - 1) * sizeof(*st->held));
	st->nheld--;
	return 1;
}

/*
 * Walks the log from its head.  With @fn NULL, only finds the highest lsn a
 * SYNC record vouches for (*@covered).  Otherwise claims the log's segments
 * and hands each record to @fn, stopping (as at a torn tail) at the first
 * COPY record past *@covered whose slot does not hold the content it names.
 */
static int log_walk(struct vss_store *st, uint64_t first_lsn, vss_store_replay_fn fn,
		    void *arg, uint64_t *covered, struct vss_error *err)
{
	uint64_t slot = st->head_slot, idx = 0, lsn = first_lsn, fsize;
	unsigned char *p = st->seg_buf, *data = NULL;
	int r = 0, stop = 0;

	r = vss_file_size(st->file, &fsize);
	if (r)
		return vss_error_set(err, r, "cannot stat the diff area: %s", strerror(-r));
	while (!stop) {
		if (slot >= MAX_SLOTS || slot_off(st, slot) + st->bs > fsize ||
		    bit_test(st, slot))
			break;
		r = vss_file_pread(st->file, p, st->bs, slot_off(st, slot));
		if (r) {
			vss_error_set(err, r, "cannot read the diff area log: %s", strerror(-r));
			goto out;
		}
		if (memcmp(p, SEG_MAGIC, 4) || !crc_ok(get32(p + 4), vss_crc32c(0, p + 8, SEG_HDR - 8)) ||
		    get64(p + 8) != st->gen || get64(p + 16) != idx || get64(p + 32) != lsn)
			break;
		if (fn) {
			lock(st);
			r = bit_set(st, slot);
			if (!r)
				r = log_slots_push(st, (uint32_t)slot);
			unlock(st);
			if (r) {
				vss_error_set(err, r, "out of memory");
				goto out;
			}
		}
		for (uint32_t off = SEG_HDR; off < st->bs;) {
			struct vss_rec rec;
			int len = vss_store_log_decode(p + off, st->bs - off, lsn, &rec);
			if (len <= 0)
				break;
			if (!fn) {
				if (rec.type == VSS_REC_SYNC && rec.block > *covered)
					*covered = rec.block;
			} else {
				if ((rec.type == VSS_REC_COPY || rec.type == VSS_REC_REDO) &&
				    lsn > *covered) {
					/* Not vouched for: its slot must hold what it names. */
					uint32_t n = rec.type == VSS_REC_COPY ? st->bs : rec.len;
					if (!data && !(data = malloc(st->bs))) {
						r = vss_error_set(err, -ENOMEM, "out of memory");
						goto out;
					}
					if (n > st->bs || slot_off(st, rec.slot) + n > fsize ||
					    vss_file_pread(st->file, data, n,
							   slot_off(st, rec.slot)) ||
					    !crc_ok(rec.data_crc, vss_crc32c(0, data, n))) {
						stop = 1;
						break;
					}
				}
				if ((rec.type == VSS_REC_COPY || rec.type == VSS_REC_REDO) &&
				    lsn > *covered && !bit_test(st, rec.slot)) {
					lock(st);
					r = hold_slot(st, rec.slot);
					unlock(st);
					if (r) {
						vss_error_set(err, r, "out of memory");
						goto out;
					}
				}
				if (rec.type != VSS_REC_SYNC)
					r = fn(arg, &rec);
				if (r)
					goto out;  /* the engine filled err through its own arg */
			}
			lsn++;
			off += (uint32_t)len;
		}
		slot = get64(p + 24);
		idx++;
	}
	if (idx == 0)
		r = vss_error_set(err, -EUCLEAN,
				  "diff area is corrupt: the log head segment is missing or damaged");
	else if (fn) {
		lock(st);
		st->next_lsn = lsn;
		st->durable = lsn - 1;
		st->vouched = st->sync_appended = *covered;
		unlock(st);
	}
out:
	free(data);
	return r;
}

static int store_open(struct vss_file *file, struct vss_store_geometry *geo,
		      struct vss_store **out, struct vss_error *err)
{
	unsigned char sbuf[2][SB_SIZE];
	struct sb s[2], *cur = NULL;
	const char *why[2] = { NULL, NULL };
	struct vss_store *st;
	uint64_t fsize;
	int r;

	r = vss_file_size(file, &fsize);
	if (r) {
		vss_file_close(file);
		return vss_error_set(err, r, "cannot stat the diff area: %s", strerror(-r));
	}
	if (fsize < 2 * SB_SIZE) {
		vss_file_close(file);
		return vss_error_set(err, -EUCLEAN,
				     "diff area is truncated (%llu bytes): no superblock",
				     (unsigned long long)fsize);
	}
	for (int i = 0; i < 2; i++) {
		r = vss_file_pread(file, sbuf[i], SB_SIZE, (uint64_t)i * SB_SIZE);
		if (r) {
			vss_file_close(file);
			return vss_error_set(err, r, "cannot read the diff area: %s", strerror(-r));
		}
		if (sb_decode(sbuf[i], &s[i], &why[i]) == 0 && (!cur || s[i].seq > cur->seq))
			cur = &s[i];
	}
	if (!cur) {
		vss_file_close(file);
		return vss_error_set(err, -EUCLEAN, "diff area is not usable: %s", why[0]);
	}

	st = calloc(1, sizeof(*st));
	if (!st) {
		vss_file_close(file);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	st->file = file;
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	st->bs = cur->block_size;
	st->data_off = cur->data_off;
	memcpy(st->uuid, cur->uuid, 16);
	st->sb_seq = cur->seq;
	st->sb_which = (int)(cur - s);
	st->sb_flags = cur->flags;
	st->failed = !!(cur->flags & SB_FLAG_FAILED);
	st->failed_durable = st->failed;
	st->gen = cur->gen;
	st->head_slot = (uint32_t)cur->head_slot;
	st->log_first_lsn = cur->first_lsn;
	st->geo.block_size = cur->block_size;
	st->geo.origin_size = cur->origin_size;
	st->geo.max_bytes = cur->max_bytes;
	st->seg_buf = malloc(st->bs);
	if (!st->seg_buf) {
		store_free(st);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	*geo = st->geo;
	*out = st;
	return 0;
}

static int store_replay(struct vss_store *st, vss_store_replay_fn fn, void *arg,
			struct vss_error *err)
{
	uint64_t covered = 0;
	int r = log_walk(st, st->log_first_lsn, NULL, NULL, &covered, err);

	return r ? r : log_walk(st, st->log_first_lsn, fn, arg, &covered, err);
}

static int store_commit(struct vss_store *st, uint64_t lsn);

static int store_mark_used(struct vss_store *st, uint32_t slot, uint32_t len)
{
	uint64_t fsize;
	int r, held = 0;

	lock(st);
	if (bit_test(st, slot) && !(held = unhold_slot(st, slot))) {
		r = -EUCLEAN;
	} else {
		r = vss_file_size(st->file, &fsize);
		if (!r && (len > st->bs || slot_off(st, slot) + len > fsize))
			r = -EUCLEAN;
		if (!r && !held)
			r = bit_set(st, slot);
		if (!r)
			st->data_slots++;
	}
	unlock(st);
	return r;
}

static int store_checkpoint(struct vss_store *st, int (*emit)(void *arg), void *arg,
			    uint64_t bytes)
{
	uint32_t *old, old_next;
	size_t nold, nw;
	int old_next_reserved, r = 0;
	uint64_t segs, keep;
	struct staged *w;

	/* Nobody else uses the store meanwhile (the engine holds its gate
	 * exclusively), but the fields are changed under the lock all the
	 * same, released only while @emit appends (each append takes it). */
	lock(st);
	old = st->log_slots;
	nold = st->nlog;
	old_next = st->next_slot;
	old_next_reserved = st->next_reserved;
	/* Every slot the new log takes is reserved before anything changes:
	 * on a full filesystem this fails with -ENOSPC, and the old log goes
	 * on as if nothing had happened. */
	if (!bytes)
		bytes = (uint64_t)nold * st->bs;
	segs = (bytes + REC_SMALL_LEN + seg_room(st) - 1) / seg_room(st) + 1;
	keep = (log_need(st, 0) + seg_room(st) - 1) / seg_room(st);
	while (!r && st->npool < segs + keep)
		r = pool_add(st);
	if (r) {
		pool_trim(st);
		unlock(st);
		return r;
	}

	/* The old log keeps its slots (so stays intact) until the switch; what
	 * of it was never written is superseded by the new one. */
	staged_take(st, &w, &nw);
	staged_drop(w, nw);
	st->log_slots = NULL;
	st->nlog = st->log_cap = 0;
	/* Slots the new log names must be durable before it is written. */
	r = vss_file_sync(st->file);
	if (!r)
		r = log_begin(st);
	unlock(st);
	if (!r)
		r = emit(arg);
	lock(st);
	if (!r) {
		/* The whole new log is synced before it is in force. */
		struct vss_rec sync = { .type = VSS_REC_SYNC, .block = st->next_lsn - 1 };
		uint64_t slsn;
		r = log_append(st, &sync, &slsn);
	}
	if (!r)
		r = seg_stage(st);
	if (!r) {
		staged_take(st, &w, &nw);
		r = staged_write(st, w, nw);
	}
	if (!r)
		r = vss_file_sync(st->file);
	if (!r)
		r = sb_write(st, st->head_slot, st->gen, st->log_first_lsn);
	if (r) {
		/* On disk the old log is still in force; in memory we cannot
		 * go on appending to a log nothing points at. */
		st->failed = 1;
		unlock(st);
		free(old);
		return r;
	}
	st->durable = st->next_lsn - 1;
	st->vouched = st->sync_appended = st->durable;  /* the new log ends with its SYNC record */
	slots_release(st, old, nold);
	slots_release(st, st->held, st->nheld);
	st->nheld = 0;
	if (old_next_reserved)
		slot_release(st, old_next);
	release_pending(st);
	pool_trim(st);
	store_check(st);
	unlock(st);
	free(old);
	return 0;
}

static void store_close(struct vss_store *st)
{
	store_free(st);
}

/* Pool slots pool_fill() would add for the log to take @need bytes. */
static uint64_t pool_short(const struct vss_store *st, uint64_t need)
{
	uint64_t room = log_room(st);

	return need > room ? (need - room + seg_room(st) - 1) / seg_room(st) : 0;
}

/*
 * A data slot, with log room for its record kept (lock held).  The maximum
 * counts all the diff area takes: this slot, the pool slots the log must
 * keep once it is handed out (two or more with small blocks: LOG_SLACK
 * alone can be more than a segment holds), and, if that leaves the pool
 * empty, one segment more: the log takes its segments regardless of the
 * maximum, and must stay inside it.
 */
static int data_slot_take(struct vss_store *st, uint32_t *slot)
{
	uint64_t grow = pool_short(st, log_need(st, 1));
	int r;

	assert_locked(st);
	if (over_max(st, st->used_slots + 1 + grow + (st->npool + grow ? 0 : 1)))
		return -ENOSPC;
	r = slot_take(st, slot);
	if (r)
		return r;
	r = pool_fill(st, log_need(st, 1));
	if (r)
		slots_release_keep(st, slot, 1, 1);  /* as it was: free, space untouched */
	return r;
}

static int store_alloc_slot(struct vss_store *st, uint32_t *slot)
{
	int r;

	lock(st);
	r = data_slot_take(st, slot);
	/* Slots are waiting for a durable SYNC record to vouch for the record
	 * that freed them: the first commit makes it durable, the second the
	 * SYNC record that the first appended. */
	for (int i = 0; i < 2 && r == -ENOSPC && st->npend && !st->failed; i++) {
		uint64_t lsn = st->next_lsn - 1;
		unlock(st);
		r = store_commit(st, lsn);
		lock(st);
		if (!r)
			r = data_slot_take(st, slot);
	}
	if (!r) {
		assert(!((st->unrec[*slot / 64] >> (*slot % 64)) & 1));
		st->data_slots++;
		st->unrec[*slot / 64] |= 1ull << (*slot % 64);
		st->nunrec++;
	}
	unlock(st);
	return r;
}

static void free_slot_keep(struct vss_store *st, uint32_t slot, int keep)
{
	lock(st);
	/* A data slot the engine holds: in use until given back here. */
	assert(st->data_slots > 0 && bit_test(st, slot));
	st->data_slots--;
	unrec_clear(st, slot);
	if (st->next_lsn - 1 <= st->vouched) {
		slots_release_keep(st, &slot, 1, keep);
	} else {
		if (st->npend == st->pend_cap) {
			size_t cap = st->pend_cap ? st->pend_cap * 2 : 64;
			struct pending_free *n = realloc(st->pend, cap * sizeof(*n));
			if (!n) {
				/* Cannot remember it: leak the slot rather than
				 * reuse it too early.  It comes back at next open. */
				unlock(st);
				return;
			}
			st->pend = n;
			st->pend_cap = cap;
		}
		st->pend[st->npend].slot = slot;
		st->pend[st->npend].keep = keep;
		st->pend[st->npend].lsn = st->next_lsn - 1;
		st->npend++;
	}
	unlock(st);
}

static void store_free_slot(struct vss_store *st, uint32_t slot)
{
	free_slot_keep(st, slot, 0);
}

static void store_recycle_slot(struct vss_store *st, uint32_t slot)
{
	free_slot_keep(st, slot, 1);
}

static int store_write_slot(struct vss_store *st, uint32_t slot, const void *buf, uint32_t len)
{
	if (len > st->bs)
		return -EINVAL;
	return vss_file_pwrite(st->file, buf, len, slot_off(st, slot));
}

static int store_read_slot(struct vss_store *st, uint32_t slot, void *buf,
			   uint32_t off, uint32_t len)
{
	return vss_file_pread(st->file, buf, len, slot_off(st, slot) + off);
}

static void store_read_slot_prep(struct vss_store *st, uint32_t slot, void *buf,
				 uint32_t off, uint32_t len, struct vss_read *rd)
{
	*rd = (struct vss_read){ .file = st->file, .buf = buf, .len = len,
				 .off = slot_off(st, slot) + off };
}

static int store_append(struct vss_store *st, const struct vss_rec *rec, uint64_t *lsn)
{
	int r;

	lock(st);
	r = log_append(st, rec, lsn);
	/* Even with nobody waiting for durability, staged log bytes must not
	 * pile up: write them out, unsynced (replay checks what no SYNC
	 * record vouches for). */
	if (!r && st->nstaged >= STAGED_COMMIT)
		r = log_write_out(st);
	unlock(st);
	return r;
}

static int store_append_extra(struct vss_store *st, const struct vss_rec *rec, uint64_t *lsn)
{
	uint64_t need, grow;
	int r;

	lock(st);
	need = log_need(st, 0) + rec_len(rec->type);
	grow = pool_short(st, need);
	if (st->failed)
		r = -EIO;
	else if (grow && over_max(st, st->used_slots + grow))
		r = -ENOSPC;
	else
		r = pool_fill(st, need);
	if (!r)
		r = log_append(st, rec, lsn);
	if (!r && st->nstaged >= STAGED_COMMIT)
		r = log_write_out(st);
	unlock(st);
	return r;
}

static int store_write_out(struct vss_store *st)
{
	int r;

	lock(st);
	r = st->failed ? -EIO : seg_stage(st);
	if (!r)
		r = log_write_out(st);
	unlock(st);
	return r;
}

/* Group commit: one thread writes and syncs for everyone waiting. */
static int store_commit(struct vss_store *st, uint64_t lsn)
{
	int r = 0;

	lock(st);
	while (st->durable < lsn) {
		uint64_t target, sync_val;

		if (st->failed) {
			r = -EIO;
			break;
		}
		if (st->committing) {
			wait_commit(st);
			continue;
		}
		st->committing = 1;
		target = st->next_lsn - 1;
		sync_val = st->sync_appended;   /* its SYNC record is at or before target */
		r = seg_stage(st);
		if (!r)
			r = log_write_out(st);
		unlock(st);
		/* One sync for the slots and the records together.  A record
		 * may reach the disk before the slot it names; replay checks
		 * the slot of every COPY and REDO record no SYNC record
		 * vouches for. */
		if (!r)
			r = vss_file_sync(st->file);
		lock(st);
		st->committing = 0;
		if (r) {
			st->failed = 1;
		} else {
			struct vss_rec sync = { .type = VSS_REC_SYNC, .block = target };
			uint64_t slsn;
			st->durable = target;
			if (sync_val > st->vouched)
				st->vouched = sync_val;
			release_pending(st);
			/* Vouches for them at the next commit (or never: then
			 * replay checks their slots, which is slower, not wrong). */
			if (log_append(st, &sync, &slsn))
				st->failed = 1;
			else
				st->sync_appended = target;
		}
		pthread_cond_broadcast(&st->cond);
		if (r)
			break;
	}
	unlock(st);
	return r;
}

static uint64_t store_durable_lsn(struct vss_store *st)
{
	return atomic_load(&st->durable);
}

static int store_set_max(struct vss_store *st, uint64_t max_bytes)
{
	int r;

	lock(st);
	st->geo.max_bytes = max_bytes;
	r = sb_write(st, st->head_slot, st->gen, st->log_first_lsn);
	unlock(st);
	return r;
}

static void store_usage(struct vss_store *st, struct vss_store_usage *u)
{
	uint64_t alloc = 0;

	lock(st);
	u->used_bytes = st->data_off + st->used_slots * st->bs;
	u->max_bytes = st->geo.max_bytes;
	u->data_slots = st->data_slots;
	u->log_slots = st->nlog + (st->next_reserved ? 1 : 0);
	unlock(st);
	if (vss_file_allocated(st->file, &alloc) == 0)
		u->allocated_bytes = alloc;
	else
		u->allocated_bytes = 0;
}

static unsigned int store_fill(struct vss_store *st)
{
	unsigned int pct = 0;

	lock(st);
	if (st->geo.max_bytes != VSS_COW_UNBOUNDED && st->geo.max_bytes)
		pct = (unsigned int)((st->data_off + st->used_slots * st->bs) * 100 /
				     st->geo.max_bytes);
	unlock(st);
	return pct;
}

static int store_mark_failed(struct vss_store *st)
{
	unsigned char *p;
	int r;

	lock(st);
	st->failed = 1;
	if (st->failed_durable) {
		unlock(st);
		return 0;
	}
	/* Both copies: whichever write survives, the flag does. */
	st->sb_flags |= SB_FLAG_FAILED;
	p = calloc(1, SB_SIZE);
	if (!p) {
		unlock(st);
		return -ENOMEM;
	}
	struct sb s = {
		.flags = st->sb_flags, .block_size = st->bs, .seq = st->sb_seq + 1,
		.origin_size = st->geo.origin_size, .data_off = st->data_off,
		.head_slot = st->head_slot, .gen = st->gen, .first_lsn = st->log_first_lsn,
		.max_bytes = st->geo.max_bytes,
	};
	memcpy(s.uuid, st->uuid, 16);
	sb_encode(p, &s);
	r = vss_file_pwrite(st->file, p, SB_SIZE, 0);
	if (!r)
		r = vss_file_pwrite(st->file, p, SB_SIZE, SB_SIZE);
	if (!r)
		r = vss_file_sync(st->file);
	if (!r) {
		st->sb_seq++;
		st->failed_durable = 1;
	}
	free(p);
	unlock(st);
	return r;
}

static int store_failed(struct vss_store *st)
{
	int f;

	lock(st);
	f = st->failed || (st->sb_flags & SB_FLAG_FAILED);
	unlock(st);
	return f;
}

static void store_identity(struct vss_store *st, unsigned char uuid[16], uint64_t *dev,
			   uint64_t *ino)
{
	memcpy(uuid, st->uuid, 16);
	if (vss_file_ident(st->file, dev, ino) != 0)
		*dev = *ino = 0;
}

const struct vss_store_ops vss_store_log_ops = {
	.name = "log",
	.format = store_format,
	.open = store_open,
	.replay = store_replay,
	.mark_used = store_mark_used,
	.checkpoint = store_checkpoint,
	.close = store_close,
	.alloc_slot = store_alloc_slot,
	.free_slot = store_free_slot,
	.recycle_slot = store_recycle_slot,
	.write_slot = store_write_slot,
	.read_slot = store_read_slot,
	.read_slot_prep = store_read_slot_prep,
	.append = store_append,
	.append_extra = store_append_extra,
	.write_out = store_write_out,
	.commit = store_commit,
	.durable_lsn = store_durable_lsn,
	.set_max = store_set_max,
	.usage = store_usage,
	.fill = store_fill,
	.mark_failed = store_mark_failed,
	.failed = store_failed,
	.identity = store_identity,
};
