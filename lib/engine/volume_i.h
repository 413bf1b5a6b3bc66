/*
 * engine/volume_i.h - what the files of the copy-on-write engine share: the
 * volume, its shadows and shadow handles, and the functions one file of it
 * calls in another.  Private to lib/engine; the design notes it refers to
 * are indexed at the head of volume.c.
 *
 *   volume.c   the shadow list, failures, the redo queue's side, accounting
 *   open.c     open, replay, recovery, checkpoint, detach, close
 *   read.c     reads of the volume and of shadows, read plans, readahead
 *   write.c    the write path: copy-on-write, durability, making room
 *   shadow.c   shadows taken, deleted (hand-down), listed
 *   bookmark.c changed-block tracking: bookmarks, their maps, changed extents
 *   revert.c   the volume rolled back to a shadow
 */
#ifndef VSS_ENGINE_VOLUME_I_H
#define VSS_ENGINE_VOLUME_I_H

#include <assert.h>
#include <pthread.h>
#include <stdint.h>

#include "engine/cow_i.h"
#include "engine/index.h"
#include "engine/lock.h"
#include "engine/prefetch.h"
#include "engine/redo.h"
#include "store/store.h"

#define NSTRIPES 256

struct shadow {
	vss_cow_id id;
	vss_cow_id set_id;
	uint32_t seq;
	uint32_t flags;
	uint64_t created_ns;
	int invalid;
	_Atomic uint64_t owned;        /* entries with this seq */
};

struct vss_cow_volume {
	struct vss_vfs *vfs;
	char *failed_path;             /* DIFF.failed: the failure, when the diff area takes no writes */
	char *marks[VSS_COW_MARKS];    /* more places that record it (design note 9), or NULL */
	int failed_noted;              /* failed_path or a mark was written (fail_lock) */
	char detached[256];            /* why persistence was taken away (note 9), "" if not: gate */
	struct vss_file *origin;
	const struct vss_store_ops *sops;
	struct vss_store *store;
	struct vss_cow_config cfg;
	uint64_t size;
	uint64_t nblocks;
	uint32_t bs;
	unsigned int bs_shift;
	void *scratch;                 /* one block: where shadow reads drop origin bytes (never read) */
	struct vss_prefetch prefetch;  /* diff-area readahead for sequential shadow readers */
	_Atomic uint64_t ra_hinted;    /* diff-area bytes it hinted, in all */

	struct cow_rwlock gate;
	/* Under gate (exclusive to change, shared to read): */
	struct shadow **shadows;       /* oldest first, seq increasing */
	size_t nshadows, shadows_cap;
	uint32_t next_seq;
	size_t valid_persistent;       /* valid persistent shadows */
	uint32_t newest_valid;         /* seq of the newest valid shadow, 0 if none */
	uint64_t room_gen;             /* bumped each time make_room() acts */
	_Atomic int near_full;         /* NEAR_FULL reported, not yet cleared */
	struct bookmark **bookmarks;   /* seq increasing (bookmark.c) */
	size_t nbookmarks;
	uint32_t bm_track;             /* highest seq of a bookmark not lost, 0 if none */
	int opening;                   /* open: no record can be appended yet */

	struct cow_rwlock ixlock;
	struct vss_index index;

	pthread_mutex_t stripe[NSTRIPES];
	_Atomic uint64_t stripe_lsn[NSTRIPES];
	_Atomic int handles;

	/* Design note 7: NULL while replaying, or if the flusher could not
	 * start (then every write waits for its commit). */
	struct vss_redo *redo;
	_Atomic int async_failed;      /* the flusher could not commit: -errno */
	_Atomic int async_settled;     /* ... and metadata_failed() has run since */
	pthread_mutex_t fail_lock;     /* failed_noted */
	int log_stale;                 /* open could not write a new log: the replayed one takes no records */

	_Atomic uint64_t mark_lsn;     /* the highest lsn of a MARK record */

	/* replay only */
	struct vss_error *replay_err;
	struct vss_redo_log replay_redo;
	int replay_clean;              /* the log so far ends with a CLOSE record */
	uint32_t replay_revert;        /* a revert begun and not ended, 0 if none */
};

/* A bookmark's map: a bit per block, in pages made when first needed. */
#define BM_PAGE_WORDS 512              /* 4 KiB: 32768 blocks */
#define BM_PAGE_BITS  (BM_PAGE_WORDS * 64)
typedef _Atomic uint64_t bm_word;

/* Why a bookmark was lost (its records' flags; 0: tracking). */
enum bm_lost {
	BM_LOST_UNCLEAN = 1,           /* not closed cleanly while the map held what no COPY did */
	BM_LOST_NO_ROOM,               /* the diff area had no room to record a change */
	BM_LOST_FAILED,                /* the diff area failed */
	BM_LOST_NO_MEMORY,             /* no memory for its map */
};

struct bookmark {
	vss_cow_id id;
	uint32_t seq;                  /* its shadow's */
	uint32_t lost;                 /* 0 or enum bm_lost (gate exclusive to change) */
	uint64_t created_ns;
	_Atomic(bm_word *) *pages;     /* npages pages, NULL until a bit is set */
	size_t npages;
	_Atomic uint64_t marked;       /* bits set */
};

struct vss_cow_shadow {
	struct vss_cow_volume *vol;
	uint32_t seq;
	/* Readahead (hints; handles shared by threads race harmlessly): */
	_Atomic uint64_t next_off;     /* where a sequential read goes on */
	_Atomic uint64_t ra_end;       /* diff-area readahead asked up to here */
	_Atomic int cold;              /* the stream met slots not in the page cache */
};

/* ---- volume.c ---- */

/* Tells the owner (cfg.event) of an event, with a message. */
void cow_emit(struct vss_cow_volume *vol, enum vss_cow_event_type type,
	      const vss_cow_id id, int error, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* The shadow list (gate held; changed only with it exclusive). */
struct shadow *cow_shadow_by_seq(struct vss_cow_volume *vol, uint32_t seq, size_t *pos);
struct shadow *cow_shadow_by_id(struct vss_cow_volume *vol, const vss_cow_id id, size_t *pos);
/* Recomputes valid_persistent and newest_valid. */
void cow_recount(struct vss_cow_volume *vol);
/* Appends the shadow a SHADOW_CREATE record describes; 0 or -ENOMEM. */
int cow_shadow_append(struct vss_cow_volume *vol, const struct vss_rec *rec);

/* Whether the index and the shadow list agree: every entry names a shadow
 * in the list, and each shadow's owned counts its entries.  O(entries);
 * compiled only with assertions, where it asserts.  Gate held exclusively. */
#ifndef NDEBUG
void cow_check(struct vss_cow_volume *vol);
#else
static inline void cow_check(struct vss_cow_volume *vol) { (void)vol; }
#endif

/* Sticky failure of the diff area's metadata: every shadow invalid. */
void cow_metadata_failed(struct vss_cow_volume *vol, int error);
/* Marks shadows invalid from @pos to the newest, saying @why. */
void cow_invalidate_from(struct vss_cow_volume *vol, size_t pos, int error, const char *why);

/* The redo queue's side (design note 7): its environment, the failure of a
 * commit it could not make (recorded now; settled by cow_settle(), which
 * takes the gate), and waiting until what is queued is in the origin. */
struct vss_redo_env cow_redo_env(struct vss_cow_volume *vol);
void cow_redo_failed(void *arg, int error);
void cow_settle(struct vss_cow_volume *vol);
void cow_drain(struct vss_cow_volume *vol);

/* ---- shadow.c ---- */

/* Removes the shadow at @pos, handing its entries down (design note 2);
 * with @free_slots the store gets the freed slots back. */
int cow_shadow_remove(struct vss_cow_volume *vol, size_t pos, int free_slots);
/* Deletes the shadow at @pos with its record.  Gate held exclusively. */
int cow_delete_at(struct vss_cow_volume *vol, size_t pos);

/* ---- bookmark.c ---- */

struct bookmark *cow_bm_by_id(struct vss_cow_volume *vol, const vss_cow_id id, size_t *pos);
/* Recomputes bm_track.  Gate exclusive. */
void cow_bm_recount(struct vss_cow_volume *vol);
/* Marks @n blocks in every bookmark not lost with @lo < seq <= @hi: they
 * leave the index entries that said they changed (design note 10).  Gate
 * exclusive. */
void cow_bm_fold(struct vss_cow_volume *vol, uint32_t lo, uint32_t hi,
		 const uint64_t *blocks, size_t n);
/* The write path: marks blocks @first..@last in the bookmarks no valid
 * shadow covers, logging a MARK record for each newly marked block.  0 or
 * the -errno of what failed (then cow_bm_give_up()).  Gate shared. */
int cow_bm_mark(struct vss_cow_volume *vol, uint64_t first, uint64_t last);
/* Loses the bookmarks the write path could not mark (@error).  Takes the gate. */
void cow_bm_give_up(struct vss_cow_volume *vol, int error);
/* Every bookmark lost, in memory only (the diff area failed). Gate exclusive. */
void cow_bm_fail_all(struct vss_cow_volume *vol);
/* Replay of BOOKMARK, BOOKMARK_DROP, BOOKMARK_LOST, BMAP and MARK records. */
int cow_bm_replay(struct vss_cow_volume *vol, const struct vss_rec *rec);
/* After replay: which bookmarks may have missed writes (design note 10). */
void cow_bm_after_replay(struct vss_cow_volume *vol, int failed);
/* Checkpoint: appends every bookmark and its map / at most the bytes that takes. */
int cow_bm_emit(struct vss_cow_volume *vol);
uint64_t cow_bm_bytes(struct vss_cow_volume *vol);
void cow_bm_release(struct vss_cow_volume *vol);

/* ---- revert.c ---- */

/* Replay of a REVERT record. */
int cow_revert_replay(struct vss_cow_volume *vol, const struct vss_rec *rec);
/* Open: finishes the revert a crash interrupted (replay_revert). */
int cow_revert_resume(struct vss_cow_volume *vol, struct vss_error *err);

/* ---- open.c ---- */

/* Rewrites the log when deletions left it mostly garbage.  Gate exclusive. */
int cow_maybe_checkpoint(struct vss_cow_volume *vol);

/* ---- read.c ---- */

/* The prefetch thread's work (engine/prefetch.h): hints the slots of the
 * blocks of @rq to the kernel. */
void cow_prefetch_slots(void *ctx, const struct vss_prefetch_req *rq);

#endif
