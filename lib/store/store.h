/*
 * store/store.h - the diff area behind a struct of operations, the way
 * dm-snapshot separates its engine from its exception store.
 *
 * A store keeps two things for the engine: slots (block-sized places for old
 * block contents) and a durable record of the engine's metadata (shadows
 * created, deleted and invalidated; which block of which shadow lives in
 * which slot).  The engine owns the meaning of the records; the store owns
 * their encoding, their durability and recovery.  The one store today is the
 * log-structured diff-area file (store_log.c, whose head documents the
 * on-disk format).
 */
#ifndef VSS_STORE_STORE_H
#define VSS_STORE_STORE_H

#include <stdint.h>

#include <vss/cow.h>
#include "io/vfs.h"

struct vss_store;

/* One metadata record, as the engine means it. */
enum vss_rec_type {
	VSS_REC_SHADOW_CREATE = 1,  /* seq, flags, created_ns, id, set_id */
	VSS_REC_SHADOW_DELETE = 2,  /* seq: its blocks are handed down or freed */
	VSS_REC_SHADOW_INVALID = 3, /* seq: reads fail from now on */
	VSS_REC_COPY = 4,           /* block's old content for shadow seq is in slot */
	VSS_REC_NEXT_SEQ = 5,       /* seq: the next shadow gets at least this */
	VSS_REC_SYNC = 6,           /* (store's own) block: every record up to this lsn was durable */
	VSS_REC_REDO = 7,           /* bytes [off, off+len) of block are to be written from slot */
	VSS_REC_DONE = 8,           /* block: every REDO record up to this lsn is in the origin */
	/* Version 3: changed-block tracking (engine/bookmark.c) and revert. */
	VSS_REC_BOOKMARK = 9,       /* seq, flags (why lost, 0: tracking), created_ns, id */
	VSS_REC_BOOKMARK_DROP = 10, /* seq: the bookmark is deleted */
	VSS_REC_BOOKMARK_LOST = 11, /* seq, flags: why it can no longer be trusted */
	VSS_REC_BMAP = 12,          /* seq, block (a multiple of 64), bits: 64 blocks of its map */
	VSS_REC_MARK = 13,          /* block, seq: written; bookmarks newer than seq mark it */
	VSS_REC_CLOSE = 14,         /* closed cleanly: nothing was written after this */
	VSS_REC_REVERT = 15,        /* seq, flags (VSS_REVERT_*): the origin goes back to seq */
};

/* VSS_REC_REVERT's flags. */
#define VSS_REVERT_BEGIN     0u  /* the origin is being rewritten from the shadow's blocks */
#define VSS_REVERT_DONE      1u  /* ... it was: the shadow's blocks are the origin's now */
#define VSS_REVERT_ABANDONED 2u  /* ... it failed part way: nothing is resumed */

struct vss_rec {
	enum vss_rec_type type;
	uint32_t seq;
	uint32_t flags;
	uint32_t slot;
	uint32_t data_crc;          /* COPY: crc32c of the slot's content; REDO: of its len bytes */
	uint32_t off, len;          /* REDO: the bytes of the block it writes */
	uint64_t block;             /* COPY, REDO, BMAP, MARK: the block; SYNC, DONE: the lsn */
	uint64_t bits;              /* BMAP: bit i is block + i */
	uint64_t lsn;               /* replay: the record's own lsn */
	uint64_t created_ns;
	vss_cow_id id;
	vss_cow_id set_id;
};

/* What the store hands back while replaying: each record in log order. */
typedef int (*vss_store_replay_fn)(void *arg, const struct vss_rec *rec);

struct vss_store_geometry {
	uint32_t block_size;
	uint64_t origin_size;
	uint64_t max_bytes;         /* VSS_COW_UNBOUNDED for none */
};

struct vss_store_usage {
	uint64_t used_bytes;        /* header + slots in use (data and log) */
	uint64_t allocated_bytes;   /* what the file occupies on disk */
	uint64_t max_bytes;
	uint64_t data_slots;        /* slots holding block contents */
	uint64_t log_slots;
};

struct vss_store_ops {
	const char *name;

	/* Makes a new, empty diff area in @file; durable on return. */
	int (*format)(struct vss_file *file, const struct vss_store_geometry *geo,
		      struct vss_error *err);
	/* Opens the diff area in @file (ownership passes to the store, also on
	 * failure) and reads its geometry into @geo.  A corrupt diff area fails
	 * with -EUCLEAN and is not modified. */
	int (*open)(struct vss_file *file, struct vss_store_geometry *geo,
		    struct vss_store **out, struct vss_error *err);
	/* Hands every durable record to @fn, in log order; call once, right
	 * after open().  -EUCLEAN if the log is damaged beyond a torn tail;
	 * an error from @fn is returned as is. */
	int (*replay)(struct vss_store *st, vss_store_replay_fn fn, void *arg,
		      struct vss_error *err);
	/* Tells a freshly opened store that the first @len bytes of @slot
	 * hold live data (after replay); -EUCLEAN if it is used twice or
	 * they lie outside the file. */
	int (*mark_used)(struct vss_store *st, uint32_t slot, uint32_t len);
	/* Starts a new log holding the engine's full state: call @emit, which
	 * appends every live record with append() (at most @bytes of them; 0:
	 * no more than the current log holds); the new log replaces the old
	 * one atomically and durably when this returns 0.  -ENOSPC: the
	 * filesystem has no room for the new log; nothing changed, the old
	 * log stays in use. */
	int (*checkpoint)(struct vss_store *st, int (*emit)(void *arg), void *arg,
			  uint64_t bytes);
	/* Closes, without implied checkpoint; frees @st. */
	void (*close)(struct vss_store *st);

	/* Reserves a free slot, and room in the log for the record that will
	 * name it.  -ENOSPC: the maximum would be passed, or the filesystem
	 * has no room left for the log to grow into; the caller makes room
	 * (appending a few records, which always fit) and tries again. */
	int (*alloc_slot)(struct vss_store *st, uint32_t *slot);
	/* Gives a slot back (its space too); it is reused only once a durable
	 * SYNC record vouches for the record that freed it. */
	void (*free_slot)(struct vss_store *st, uint32_t slot);
	/* free_slot() for a slot about to be reused: its space stays in the
	 * file (giving it back can cost a synchronous discard). */
	void (*recycle_slot)(struct vss_store *st, uint32_t slot);
	/* Writes @len bytes (at most a block) at the start of @slot / reads
	 * @len bytes from @off into @slot (which may run on into the slots
	 * after it); 0 or -errno. */
	int (*write_slot)(struct vss_store *st, uint32_t slot, const void *buf, uint32_t len);
	int (*read_slot)(struct vss_store *st, uint32_t slot, void *buf,
			 uint32_t off, uint32_t len);
	/* Fills @rd with the read of @len bytes from @off in @slot (which may
	 * run on into the slots after it) into @buf, for the caller to do with
	 * its other reads in one vss_vfs_read_batch() on the store's vfs. */
	void (*read_slot_prep)(struct vss_store *st, uint32_t slot, void *buf,
			       uint32_t off, uint32_t len, struct vss_read *rd);

	/* Appends a record (buffered); its log sequence number goes in *@lsn.
	 * -EINVAL before the first checkpoint() after open(): a replayed log
	 * is never appended to, its torn tail may hide stale records. */
	int (*append)(struct vss_store *st, const struct vss_rec *rec, uint64_t *lsn);
	/* append() for a record that no slot reserved room for (MARK): the
	 * log's reserve is topped up first, so that what making room appends
	 * still fits after it.  -ENOSPC when the maximum or the filesystem
	 * leaves no room for it: nothing is appended, the store goes on. */
	int (*append_extra)(struct vss_store *st, const struct vss_rec *rec, uint64_t *lsn);
	/* Returns once every record up to @lsn, and every slot written before
	 * it was appended, is durable.  Concurrent callers share one flush. */
	int (*commit)(struct vss_store *st, uint64_t lsn);
	/* Writes every record appended so far to the file, unsynced: they
	 * survive a crash of the process (not a power loss).  0 or -errno. */
	int (*write_out)(struct vss_store *st);
	/* The highest lsn known durable. */
	uint64_t (*durable_lsn)(struct vss_store *st);

	/* Sets the maximum (persisted). */
	int (*set_max)(struct vss_store *st, uint64_t max_bytes);
	void (*usage)(struct vss_store *st, struct vss_store_usage *out);
	/* Percent of the maximum in use (0 when unbounded); no system call. */
	unsigned int (*fill)(struct vss_store *st);
	/* Marks the diff area unusable, in memory and on disk (sticky): the
	 * metadata could not be written, so no shadow in it can be trusted.
	 * 0 once the mark is durable, else -errno (the caller records the
	 * failure elsewhere). */
	int (*mark_failed)(struct vss_store *st);
	/* Whether a store was marked failed (now, or before it was opened). */
	int (*failed)(struct vss_store *st);
	/* The diff area's identity: the uuid it was made with (kept by every
	 * copy of it), and the device and inode of its open file (0 when the
	 * vfs cannot tell). */
	void (*identity)(struct vss_store *st, unsigned char uuid[16], uint64_t *dev,
			 uint64_t *ino);
};

extern const struct vss_store_ops vss_store_log_ops;

/* Record encoding, shared with the fuzz target: decodes one record at @buf
 * (at most @avail bytes).  Returns its length, 0 at a clean end (zeros), or
 * -EUCLEAN if the bytes are not a valid record. */
int vss_store_log_decode(const unsigned char *buf, uint32_t avail,
			 uint64_t expect_lsn, struct vss_rec *rec);

#endif
