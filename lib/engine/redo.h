/*
 * engine/redo.h - the redo queue: writes acknowledged before the copies
 * they depend on are durable, applied to the origin after one group commit
 * (design note 7 in engine/write.c).
 *
 * A write that would otherwise wait for a commit (a first write while a
 * persistent shadow exists) puts its new bytes in diff-area slots, logs a
 * REDO record for each block it touches, and returns as soon as those
 * records are in the file (they survive a crash of the process).  The
 * flusher thread commits (one fdatasync for the whole batch: copies, REDO
 * records and their slots), writes the batch to the origin in queue order,
 * logs a DONE record and frees the slots.  Until then, reads of the volume
 * see the queued bytes, and a later write to a queued block queues behind
 * them, so the origin gets every block's writes in the order they returned.
 */
#ifndef VSS_ENGINE_REDO_H
#define VSS_ENGINE_REDO_H

#include <stddef.h>
#include <stdint.h>

#include "io/vfs.h"
#include "store/store.h"

struct vss_redo;

struct vss_redo_env {
	struct vss_file *origin;
	const struct vss_store_ops *sops;
	struct vss_store *store;
	uint64_t size;                  /* of the origin */
	uint32_t bs;
	unsigned int bs_shift;
	/* Called on the flusher thread when the diff area cannot be made
	 * durable (the queued writes go to the origin all the same): the
	 * volume must record the failure without taking its gate. */
	void (*failed)(void *arg, int error);
	/* Called on the flusher thread when a queued write cannot be written
	 * to the origin (it was acknowledged: the next drain reports it). */
	void (*write_error)(void *arg, uint64_t off, uint32_t len, int error);
	void *arg;
};

/* Starts the flusher thread; 0 or -errno. */
int vss_redo_start(const struct vss_redo_env *env, struct vss_redo **out);
/* Applies everything queued, stops the flusher and frees @q.  Returns
 * what vss_redo_take_error() would have. */
int vss_redo_stop(struct vss_redo *q);

/*
 * Queues a write of @len bytes at @off (within the origin), whose copies
 * are appended to the log already.  0: queued, and durable against a crash
 * of the process.  -EAGAIN: not queued (no slot, too large, the log has
 * failed): the caller waits with vss_redo_wait_clear() and writes directly.
 */
int vss_redo_write(struct vss_redo *q, const void *buf, size_t len, uint64_t off);
/* Whether blocks @first..@last may have queued writes (a cheap check that
 * may say yes for a block that has none). */
int vss_redo_queued(struct vss_redo *q, uint64_t first, uint64_t last);
/* Waits until no write is queued on blocks @first..@last. */
void vss_redo_wait_clear(struct vss_redo *q, uint64_t first, uint64_t last);
/* Reads the origin with the queued writes laid over it: what the volume
 * holds.  0 or -errno. */
int vss_redo_read(struct vss_redo *q, void *buf, size_t len, uint64_t off);
/*
 * Waits until every write queued before the call is in the origin (not
 * synced).  *@done_lsn (if not NULL) gets the lsn of the last DONE record,
 * which the caller commits after syncing the origin if it wants no REDO
 * record replayed.
 */
void vss_redo_drain(struct vss_redo *q, uint64_t *done_lsn);
/* The error of the first queued write that could not be written to the
 * origin since the last call, or 0. */
int vss_redo_take_error(struct vss_redo *q);

/*
 * Recovery: the REDO records a replay found that no DONE record covers, in
 * log order.  vss_redo_log_apply() writes them to the origin and syncs it;
 * the caller then marks their slots used, so that nothing (the new log of
 * the checkpoint among them) takes one before the checkpoint is in force.
 */
struct vss_redo_log {
	struct vss_redo_entry {
		uint64_t lsn, block;
		uint32_t off, len, slot, crc;
	} *v;
	size_t n, cap, start;
};

int vss_redo_log_add(struct vss_redo_log *l, const struct vss_rec *rec);
void vss_redo_log_done(struct vss_redo_log *l, uint64_t lsn);
int vss_redo_log_apply(struct vss_redo_log *l, const struct vss_redo_env *env,
		       struct vss_error *err);
void vss_redo_log_free(struct vss_redo_log *l);

#endif
