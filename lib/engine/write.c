/*
 * engine/write.c - the write path: a block's old content goes to the diff
 * area before the first write to it since the newest shadow, durable
 * before the origin changes (or queued, with the write, on the redo
 * queue), and room is made when the diff area is full.  Design notes 5, 6
 * and 7 (the index of notes is at the head of volume.c).
 *
 * DESIGN NOTES
 *
 * 5. Durability.  When a valid persistent shadow exists, a write waits
 *    until the COPY records of every block it touches are durable (group
 *    commit in the store) before it writes the origin.  stripe_lsn[] holds,
 *    per stripe, the highest lsn of a copy made there; it is raised before
 *    the entry becomes visible, so a second writer that finds the entry also
 *    finds an lsn at least that high and waits for it too.
 *
 * 6. The diff area never fails a write.  When a slot cannot be had (limit
 *    or full filesystem), the writer steps out of the shared gate and, with
 *    it exclusive, deletes the oldest shadow, or, if only the newest is
 *    left, invalidates it; then retries.  When the copy cannot be written
 *    (EIO), every shadow that would read the block from the origin is
 *    invalidated.  When the log cannot be made durable, the diff area is
 *    marked failed (sticky, also on disk: in the diff area, or where note 9
 *    says when it takes no writes) and every shadow is invalidated.
 *    A full filesystem is a limit like the maximum, not a failure: the
 *    store keeps the log's growth reserved and says -ENOSPC from
 *    alloc_slot() while it cannot (store_log.c head), so the records that
 *    making room appends always fit; a checkpoint with no room is skipped
 *    (the old log goes on).  A redo write that gets no slot is written
 *    through (note 7), and the flusher's commits only write reserved log
 *    space, so no queued write is stuck or lost.
 *
 * 7. Persistent first writes do not wait for a sync (engine/redo.c).  A
 *    write that would wait for a commit (note 5) instead writes its new
 *    bytes to diff-area slots, logs REDO records naming them, writes the
 *    log out (unsynced: it now survives a crash of the process) and
 *    returns.  The flusher commits once for the whole batch queued, then
 *    writes the batch to the origin in queue order, logs DONE and frees the
 *    slots.  So the origin still changes only after the copy is durable,
 *    and an acknowledged write is lost only in a power loss before the next
 *    flush, as on any disk with a write cache.  Rules that keep it exact:
 *    - while a block has queued writes, every write to it queues too, so
 *      the origin sees each block's writes in the order they returned;
 *    - vss_cow_read() lays the queue over the origin;
 *    - shadow reads need nothing: a queued block was copied for the newest
 *      shadow before it was queued, so no shadow reads it from the origin;
 *    - taking a shadow, a checkpoint and a flush drain the queue first
 *      (the shadow's instant, and a new log, must not depend on it);
 *    - replay applies the REDO records no DONE record covers, in log
 *      order, before anything else happens (a failed diff area's REDO
 *      records are ignored: nothing after the failure could be logged);
 *    - a commit the flusher cannot make fails the diff area (as in note 6)
 *      and the queued writes still go to the origin: they were
 *      acknowledged, and no shadow in a failed diff area is trusted again.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/volume_i.h"
#include "util/crc32c.h"

static unsigned int stripe_of(uint64_t block)
{
	return (unsigned int)((block * 0x9E3779B97F4A7C15ull) >> 56) % NSTRIPES;
}

/* A slot could not be had: make room (design note 6).  @seen_gen is the
 * room_gen the caller saw when it failed; if it moved, somebody else has
 * made room meanwhile and the caller just tries again.  Takes the gate. */
static void make_room(struct vss_cow_volume *vol, uint64_t seen_gen, int error)
{
	cow_wrlock(&vol->gate);
	if (vol->room_gen == seen_gen && vol->newest_valid) {
		vol->room_gen++;
		if (vol->nshadows > 1) {
			vss_cow_id id;
			memcpy(id, vol->shadows[0]->id, 16);
			if (cow_delete_at(vol, 0) == 0)
				cow_emit(vol, VSS_COW_EV_SHADOW_DELETED, id, error,
					 "shadow deleted to make room in the diff area (%s)",
					 error == -ENOSPC ? "limit reached or filesystem full"
							  : strerror(-error));
		} else {
			cow_invalidate_from(vol, 0, error,
					    "the diff area cannot hold even the newest shadow");
		}
	}
	cow_unlock(&vol->gate);
}

/* The copy of @block could not be written: invalidate every shadow that
 * would read it from the origin. Takes the gate. */
static void copy_failed(struct vss_cow_volume *vol, uint64_t block, int error)
{
	uint32_t m;
	size_t pos;

	cow_wrlock(&vol->gate);
	cow_rdlock(&vol->ixlock);
	m = vss_index_max_seq(&vol->index, block);
	cow_unlock(&vol->ixlock);
	for (pos = 0; pos < vol->nshadows && vol->shadows[pos]->seq <= m; pos++)
		;
	char why[128];
	snprintf(why, sizeof(why), "the diff area could not take a block's old content (%s)",
		 strerror(-error));
	cow_invalidate_from(vol, pos, error, why);
	cow_unlock(&vol->gate);
}

/* Reports a diff area passing 90% of its maximum, once until it drops
 * below 80% again.  Cheap: no system call. */
static void check_near_full(struct vss_cow_volume *vol)
{
	unsigned int pct = vol->sops->fill(vol->store);

	if (pct >= 90 && !atomic_exchange(&vol->near_full, 1))
		cow_emit(vol, VSS_COW_EV_DIFF_NEAR_FULL, NULL, 0,
			 "diff area is %u%% full", pct);
	else if (pct < 80 && atomic_load(&vol->near_full))
		atomic_store(&vol->near_full, 0);
}

/* ---- the write path ---- */

enum copy_result {
	COPY_DONE = 0,          /* copied now, already copied, or not needed */
	COPY_NO_ROOM,           /* no slot: make room and retry */
	COPY_FAILED,            /* the copy could not be written */
	COPY_UNMARKED,          /* a bookmark could not be marked: lose it and retry */
};

/*
 * Makes sure @block's old content is in the diff area for the newest shadow
 * (seq @newest), when a valid shadow needs it.  Raises *@need_lsn to the lsn
 * that must be durable before the origin block is overwritten.  Gate shared.
 */
static enum copy_result ensure_copied(struct vss_cow_volume *vol, uint64_t block,
				      uint32_t newest, uint64_t *need_lsn, int *copied,
				      int *error)
{
	unsigned int st = stripe_of(block);
	uint32_t m, slot;
	uint64_t lsn, off = block << vol->bs_shift;
	void *buf;
	int r;

	assert(cow_held(&vol->gate) && !cow_held_excl(&vol->gate));
	cow_rdlock(&vol->ixlock);
	m = vss_index_max_seq(&vol->index, block);
	cow_unlock(&vol->ixlock);
	if (m == newest)
		goto copied;
	if (vol->newest_valid <= m)
		return COPY_DONE;       /* no valid shadow reads it from the origin */

	pthread_mutex_lock(&vol->stripe[st]);
	cow_rdlock(&vol->ixlock);
	m = vss_index_max_seq(&vol->index, block);
	cow_unlock(&vol->ixlock);
	if (m == newest) {
		pthread_mutex_unlock(&vol->stripe[st]);
		goto copied;
	}

	buf = malloc(vol->bs);
	if (!buf) {
		*error = -ENOMEM;
		pthread_mutex_unlock(&vol->stripe[st]);
		return COPY_FAILED;
	}
	r = vss_file_pread(vol->origin, buf, vol->bs, off);
	if (!r && off + vol->bs > vol->size)
		memset((char *)buf + (vol->size - off), 0, off + vol->bs - vol->size);
	if (r) {
		*error = r;
		free(buf);
		pthread_mutex_unlock(&vol->stripe[st]);
		return COPY_FAILED;
	}
	r = vol->sops->alloc_slot(vol->store, &slot);
	if (r) {
		free(buf);
		pthread_mutex_unlock(&vol->stripe[st]);
		*error = r;
		return r == -ENOSPC || r == -EDQUOT ? COPY_NO_ROOM : COPY_FAILED;
	}
	r = vol->sops->write_slot(vol->store, slot, buf, vol->bs);
	uint32_t data_crc = vss_crc32c(0, buf, vol->bs);
	free(buf);
	if (!r) {
		struct vss_rec rec = { .type = VSS_REC_COPY, .block = block,
				       .seq = newest, .slot = slot, .data_crc = data_crc };
		r = vol->sops->append(vol->store, &rec, &lsn);
		if (r) {
			/* The log is gone: nothing can be kept. */
			vol->sops->free_slot(vol->store, slot);
			pthread_mutex_unlock(&vol->stripe[st]);
			*error = r;
			return COPY_FAILED;
		}
	} else {
		vol->sops->free_slot(vol->store, slot);
		pthread_mutex_unlock(&vol->stripe[st]);
		*error = r;
		return r == -ENOSPC || r == -EDQUOT ? COPY_NO_ROOM : COPY_FAILED;
	}
	/* Design note 5: the lsn is visible before the entry is. */
	if (atomic_load(&vol->stripe_lsn[st]) < lsn)
		atomic_store(&vol->stripe_lsn[st], lsn);
	cow_wrlock(&vol->ixlock);
	r = vss_index_insert(&vol->index, block, newest, slot);
	if (!r) {
		/* With the entry, under the index lock: a reader that finds no
		 * shadow owning anything skips the lookups (see
		 * vss_cow_shadow_read). */
		struct shadow *s = cow_shadow_by_seq(vol, newest, NULL);

		assert(s);      /* the list cannot change under the gate */
		if (s)
			s->owned++;
	}
	cow_unlock(&vol->ixlock);
	pthread_mutex_unlock(&vol->stripe[st]);
	if (r) {
		*error = r;
		return COPY_FAILED;
	}
	*copied = 1;
copied:
	lsn = atomic_load(&vol->stripe_lsn[st]);
	if (lsn > *need_lsn)
		*need_lsn = lsn;
	return COPY_DONE;
}

ssize_t vss_cow_write(struct vss_cow_volume *vol, const void *buf, size_t len, uint64_t off)
{
	uint64_t first, last, need_lsn;
	int r, copied, need_commit;

	if (off >= vol->size || !len)
		return 0;
	if (len > vol->size - off)
		len = (size_t)(vol->size - off);
	first = off >> vol->bs_shift;
	last = (off + len - 1) >> vol->bs_shift;

	cow_settle(vol);
	cow_rdlock(&vol->gate);
	for (;;) {
		uint32_t newest = vol->nshadows ? vol->shadows[vol->nshadows - 1]->seq : 0;
		uint64_t room_gen = vol->room_gen;
		enum copy_result cr = COPY_DONE;
		uint64_t b = first;
		int error = 0;

		need_lsn = 0;
		copied = 0;
		if (vol->newest_valid) {
			for (; b <= last; b++) {
				cr = ensure_copied(vol, b, newest, &need_lsn, &copied, &error);
				if (cr != COPY_DONE)
					break;
			}
		}
		/* Design note 10: bookmarks no valid shadow covers. */
		if (cr == COPY_DONE && vol->bm_track > vol->newest_valid &&
		    (error = cow_bm_mark(vol, first, last)) != 0)
			cr = COPY_UNMARKED;
		if (cr == COPY_DONE)
			break;
		cow_unlock(&vol->gate);
		if (cr == COPY_NO_ROOM)
			make_room(vol, room_gen, error);
		else if (cr == COPY_UNMARKED)
			cow_bm_give_up(vol, error);
		else
			copy_failed(vol, b, error);
		cow_rdlock(&vol->gate);
	}
	need_commit = vol->valid_persistent && need_lsn > vol->sops->durable_lsn(vol->store);
	if (vol->redo && (need_commit || vss_redo_queued(vol->redo, first, last))) {
		/* Design note 7. */
		if (vss_redo_write(vol->redo, buf, len, off) == 0) {
			r = 0;
			goto out;
		}
		vss_redo_wait_clear(vol->redo, first, last);
	}
	if (need_commit) {
		r = vol->sops->commit(vol->store, need_lsn);
		if (r) {
			cow_unlock(&vol->gate);
			cow_wrlock(&vol->gate);
			cow_metadata_failed(vol, r);
			cow_unlock(&vol->gate);
			cow_rdlock(&vol->gate);
		}
	}
	r = vss_file_pwrite(vol->origin, buf, len, off);
out:
	if (copied && vol->cfg.max_diff_bytes != VSS_COW_UNBOUNDED)
		check_near_full(vol);
	cow_unlock(&vol->gate);
	return r ? r : (ssize_t)len;
}

int vss_cow_flush(struct vss_cow_volume *vol)
{
	uint64_t done = 0;
	int r, werr = 0;

	/* Shared: a checkpoint (gate exclusive) must not see a commit. */
	cow_rdlock(&vol->gate);
	if (vol->redo) {
		vss_redo_drain(vol->redo, &done);
		werr = vss_redo_take_error(vol->redo);
	}
	r = vss_file_sync(vol->origin);
	/* The writes are durable in the origin: no REDO record of theirs may
	 * be replayed over later ones after a power loss (a failed diff
	 * area's are never replayed). */
	if (!r && !vol->sops->failed(vol->store) && done > vol->sops->durable_lsn(vol->store)) {
		r = vol->sops->commit(vol->store, done);
		if (r)
			cow_redo_failed(vol, r);
	}
	cow_unlock(&vol->gate);
	return r ? r : werr;
}
