/*
 * engine/volume.c - the copy-on-write engine: origin I/O, the shadow chain,
 * shadow reads, deletion with hand-down, the diff-area limit, and recovery.
 *
 * DESIGN NOTES
 *
 * 1. The chain.  Shadows have a sequence number, increasing with creation.
 *    An index entry (block b, seq s) -> slot says: the content b had when
 *    shadow s was taken, and until the first write to b while s was the
 *    newest shadow, is in that slot.  Shadow s reads b from the entry with
 *    the smallest seq >= s, or from the origin if there is none.  A write
 *    copies b only if (b, newest) is missing, so its cost does not depend
 *    on the number of shadows.
 *
 * 2. Deleting shadow s.  Each of its entries (b, s) is handed down to the
 *    next older shadow p if (b, p) is missing (p used to read it through s),
 *    otherwise freed.  Shadows older than p read through p, so they see the
 *    same bytes as before.  Replay applies a DELETE record the same way.
 *
 * 3. Locks, outermost first:
 *      gate (rwlock)    shared by every read and write of the volume or a
 *                       shadow; exclusive to change the shadow list (create,
 *                       delete, invalidate, limit) and to checkpoint.  Taking
 *                       it exclusively waits for all I/O in flight, which is
 *                       what makes a shadow's instant exact.
 *      stripe (mutex)   one of NSTRIPES by block: serialises the copy of
 *                       one block so that it happens once.
 *      ixlock (rwlock)  the index.
 *    The store has its own lock below all of these.
 *
 * 4. A shadow read racing with the first write to the same block.  The
 *    writer inserts the index entry (after the slot holds the old content)
 *    before it writes the origin.  The reader reads the origin first and
 *    then looks the block up again: if an entry has appeared, the origin
 *    bytes may be new, and it reads the slot instead.  If none has, no
 *    writer had yet started writing that block's origin when the reader
 *    finished reading it.  So shadow reads take no per-block lock.  A read
 *    looks up all its blocks under one hold of ixlock and notes the index
 *    generation; every read it then needs (origin and slots) goes to the
 *    vfs as one batch (when blocks of both kinds mix, the origin is read
 *    whole, the bytes of blocks with slots dropped into a scratch block:
 *    plan_reads_whole), complete before the second look, which is skipped
 *    when the generation has not moved: then no entry can have appeared.
 *    The first look is skipped too when no shadow from the one read on
 *    owns a block (a shadow just taken): each shadow's count of entries
 *    (owned) moves with its entries, under ixlock, so a count of zero seen
 *    with the generation means no entry, and the second look is made as
 *    usual.
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
 *
 * 8. Shadow reads from a cold cache.  A read that mixes origin blocks and
 *    slots reads the origin whole, one vectored read (plan_reads_whole),
 *    so the kernel's readahead follows the origin.  Slots lie in copy
 *    order, where no readahead of the kernel's can foresee them: slot
 *    reads probe the page cache (RWF_NOWAIT first), and a sequential
 *    stream of a handle that misses turns cold; a cold stream has the
 *    prefetch thread (engine/prefetch.h) hint the slots of the next
 *    READAHEAD bytes to the kernel.  Only hints, outside every lock but
 *    the index lock: nothing is read from what they bring in.  A read
 *    within READAHEAD / 4 of where the stream got to goes on with it (a
 *    FUSE device gets the kernel's requests in any order); a farther one
 *    starts a new stream, which posts from its second read on (from its
 *    first at offset 0).  test_volume.c readahead_out_of_order_and_random.
 *
 * 9. The diff area seen from outside (cow_i.h, for the service).  A
 *    failure the diff area cannot take (its filesystem shut down) is
 *    written beside it (DIFF.failed) and in every mark the owner gave
 *    (the service puts them in its state and run directories, which may
 *    be on other filesystems), before the write that met it goes on to
 *    the origin; an open that finds any of them (or cannot tell one is
 *    absent) fails the diff area before its REDO records could be
 *    replayed (note 7).  Only a failure that reaches none of them is
 *    forgotten.  An open may be told the identity the diff area must have
 *    (the uuid its superblock was made with): another diff area put at
 *    the path is refused before it is replayed, so its REDO records never
 *    reach this origin.  When the owner finds that the
 *    path no longer leads to the open file (deleted or replaced), the
 *    volume is detached: the queue is applied to the origin, shadows turn
 *    non-persistent (still exact and readable while open: the file is) and
 *    persistent ones are refused, since no restart will find the file.
 *    When a diff area is lost, the owner makes a fresh one and records the
 *    shadows the old one held as invalid from the start (they own no
 *    entry, so notes 1-2 hold as for any invalid shadow), to keep them
 *    listed until they are deleted.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include "engine/cow_i.h"
#include "engine/index.h"
#include "engine/prefetch.h"
#include "engine/redo.h"
#include "store/store.h"
#include "util/crc32c.h"
#include "util/struct_in.h"

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

	pthread_rwlock_t gate;
	/* Under gate (exclusive to change, shared to read): */
	struct shadow **shadows;       /* oldest first, seq increasing */
	size_t nshadows, shadows_cap;
	uint32_t next_seq;
	size_t valid_persistent;       /* valid persistent shadows */
	uint32_t newest_valid;         /* seq of the newest valid shadow, 0 if none */
	uint64_t room_gen;             /* bumped each time make_room() acts */
	_Atomic int near_full;         /* NEAR_FULL reported, not yet cleared */

	pthread_rwlock_t ixlock;
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

	/* replay only */
	struct vss_error *replay_err;
	struct vss_redo_log replay_redo;
};

struct vss_cow_shadow {
	struct vss_cow_volume *vol;
	uint32_t seq;
	/* Readahead (hints; handles shared by threads race harmlessly): */
	_Atomic uint64_t next_off;     /* where a sequential read goes on */
	_Atomic uint64_t ra_end;       /* diff-area readahead asked up to here */
	_Atomic int cold;              /* the stream met slots not in the page cache */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned int stripe_of(uint64_t block)
{
	return (unsigned int)((block * 0x9E3779B97F4A7C15ull) >> 56) % NSTRIPES;
}

static void emit(struct vss_cow_volume *vol, enum vss_cow_event_type type,
		 const vss_cow_id id, int error, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void emit(struct vss_cow_volume *vol, enum vss_cow_event_type type,
		 const vss_cow_id id, int error, const char *fmt, ...)
{
	struct vss_cow_event ev = { .type = type, .error = error };
	char msg[256];
	va_list ap;

	if (!vol->cfg.event)
		return;
	if (id)
		memcpy(ev.shadow, id, 16);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ev.msg = msg;
	vol->cfg.event(vol->cfg.event_arg, &ev);
}

/* ---- the shadow list (gate held) ---- */

static struct shadow *shadow_by_seq(struct vss_cow_volume *vol, uint32_t seq, size_t *pos)
{
	size_t lo = 0, hi = vol->nshadows;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (vol->shadows[mid]->seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < vol->nshadows && vol->shadows[lo]->seq == seq) {
		if (pos)
			*pos = lo;
		return vol->shadows[lo];
	}
	return NULL;
}

static struct shadow *shadow_by_id(struct vss_cow_volume *vol, const vss_cow_id id, size_t *pos)
{
	for (size_t i = 0; i < vol->nshadows; i++)
		if (!memcmp(vol->shadows[i]->id, id, 16)) {
			if (pos)
				*pos = i;
			return vol->shadows[i];
		}
	return NULL;
}

static void recount(struct vss_cow_volume *vol)
{
	vol->valid_persistent = 0;
	vol->newest_valid = 0;
	for (size_t i = 0; i < vol->nshadows; i++) {
		struct shadow *s = vol->shadows[i];
		if (s->invalid)
			continue;
		vol->newest_valid = s->seq;
		if (s->flags & VSS_COW_SHADOW_PERSISTENT)
			vol->valid_persistent++;
	}
}

static int shadow_append(struct vss_cow_volume *vol, const struct vss_rec *rec)
{
	struct shadow *s;

	if (vol->nshadows == vol->shadows_cap) {
		size_t cap = vol->shadows_cap ? vol->shadows_cap * 2 : 16;
		struct shadow **n = realloc(vol->shadows, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		vol->shadows = n;
		vol->shadows_cap = cap;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s->id, rec->id, 16);
	memcpy(s->set_id, rec->set_id, 16);
	s->seq = rec->seq;
	s->flags = rec->flags;
	s->created_ns = rec->created_ns;
	vol->shadows[vol->nshadows++] = s;
	if (rec->seq >= vol->next_seq)
		vol->next_seq = rec->seq + 1;
	recount(vol);
	return 0;
}

/*
 * Removes shadow at @pos, handing its entries down (design note 2).  With
 * @free_slots the store gets the freed slots back (not during replay, when
 * the store learns what is used only afterwards).
 */
static int shadow_remove(struct vss_cow_volume *vol, size_t pos, int free_slots)
{
	struct shadow *s = vol->shadows[pos];
	struct shadow *p = pos ? vol->shadows[pos - 1] : NULL;
	struct vss_index *ix = &vol->index;
	uint64_t *blocks = NULL;
	size_t n = 0, cap = 0;

	pthread_rwlock_wrlock(&vol->ixlock);
	for (size_t i = 0; i < ix->cap; i++) {
		uint64_t k = ix->keys[i];
		if (!k || vss_index_key_seq(k) != s->seq)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			uint64_t *nb = realloc(blocks, cap * sizeof(*nb));
			if (!nb) {
				pthread_rwlock_unlock(&vol->ixlock);
				free(blocks);
				return -ENOMEM;
			}
			blocks = nb;
		}
		blocks[n++] = vss_index_key_block(k);
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t slot;
		if (p && !vss_index_has(ix, blocks[i], p->seq)) {
			vss_index_rekey(ix, blocks[i], s->seq, p->seq);
			p->owned++;
		} else if (vss_index_remove(ix, blocks[i], s->seq, &slot) && free_slots) {
			vol->sops->free_slot(vol->store, slot);
		}
	}
	pthread_rwlock_unlock(&vol->ixlock);
	free(blocks);
	memmove(&vol->shadows[pos], &vol->shadows[pos + 1],
		(vol->nshadows - pos - 1) * sizeof(*vol->shadows));
	vol->nshadows--;
	free(s);
	recount(vol);
	return 0;
}

/* Writes one file that records the failure (a line of text says what
 * failed, for whoever finds it); 0 once it is durable. */
static int write_mark(struct vss_cow_volume *vol, const char *path, int error)
{
	struct vss_file *f;
	char line[PATH_MAX + 160];
	int r = vol->vfs->open(vol->vfs, path, VSS_VFS_CREATE, &f), n;

	if (r)
		return r;
	n = snprintf(line, sizeof(line), "the diff area %.*s failed (%s): no shadow in it "
		     "can be trusted\n", (int)(strlen(vol->failed_path) - strlen(".failed")),
		     vol->failed_path, strerror(-error));
	r = vss_file_pwrite(f, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1, 0);
	if (!r)
		r = vss_file_sync(f);
	vss_file_close(f);
	return r;
}

/* Records the diff area's failure durably: in the diff area, or else beside
 * it and in the marks the owner gave (design note 9).  Takes no lock but
 * its own (the flusher calls it too). */
static void note_failure(struct vss_cow_volume *vol, int error)
{
	pthread_mutex_lock(&vol->fail_lock);
	if (vol->sops->mark_failed(vol->store) != 0 && !vol->failed_noted) {
		/* The diff area takes no writes: say so beside it and in
		 * every mark, so that no later open trusts the shadows in it. */
		int r = write_mark(vol, vol->failed_path, error);

		vol->failed_noted = !r;
		for (int i = 0; i < VSS_COW_MARKS; i++)
			if (vol->marks[i] && write_mark(vol, vol->marks[i], error) == 0)
				vol->failed_noted = 1;
		if (!vol->failed_noted)
			emit(vol, VSS_COW_EV_METADATA_ERROR, NULL, r,
			     "cannot record the diff area's failure anywhere (%s): after a restart its "
			     "shadows may look valid but miss later writes; delete them",
			     strerror(-r));
	}
	pthread_mutex_unlock(&vol->fail_lock);
}

/* Sticky failure of the diff area's metadata: nothing in it can be trusted. */
static void metadata_failed(struct vss_cow_volume *vol, int error)
{
	int was = vol->sops->failed(vol->store);

	note_failure(vol, error);
	if (!was)
		emit(vol, VSS_COW_EV_METADATA_ERROR, NULL, error,
		     "diff area metadata cannot be written (%s): every shadow of the volume is invalid",
		     strerror(-error));
	for (size_t i = 0; i < vol->nshadows; i++) {
		struct shadow *s = vol->shadows[i];
		if (s->invalid)
			continue;
		s->invalid = 1;
		emit(vol, VSS_COW_EV_SHADOW_INVALID, s->id, error,
		     "shadow invalidated: the diff area's metadata cannot be written");
	}
	recount(vol);
}

/* ---- the redo queue's side (design note 7) ---- */

/* The flusher could not commit: record it durably now (the queued writes
 * go to the origin next); the shadows are invalidated by the next caller
 * that can take the gate (settle()). */
static void redo_failed(void *arg, int error)
{
	struct vss_cow_volume *vol = arg;
	int expect = 0;

	if (!atomic_compare_exchange_strong(&vol->async_failed, &expect, error))
		return;
	note_failure(vol, error);
	emit(vol, VSS_COW_EV_METADATA_ERROR, NULL, error,
	     "diff area metadata cannot be written (%s): every shadow of the volume is invalid",
	     strerror(-error));
}

static void redo_write_error(void *arg, uint64_t off, uint32_t len, int error)
{
	struct vss_cow_volume *vol = arg;

	emit(vol, VSS_COW_EV_WRITE_ERROR, NULL, error,
	     "an acknowledged write of %u bytes at %llu could not be written to the volume (%s); "
	     "the next flush fails", len, (unsigned long long)off, strerror(-error));
}

static struct vss_redo_env redo_env(struct vss_cow_volume *vol)
{
	return (struct vss_redo_env){
		.origin = vol->origin, .sops = vol->sops, .store = vol->store,
		.size = vol->size, .bs = vol->bs, .bs_shift = vol->bs_shift,
		.failed = redo_failed, .write_error = redo_write_error, .arg = vol,
	};
}

static void metadata_failed(struct vss_cow_volume *vol, int error);

/* Brings the shadow list in line with a failure the flusher met. Gate not held. */
static void settle(struct vss_cow_volume *vol)
{
	if (!atomic_load(&vol->async_failed) || atomic_load(&vol->async_settled))
		return;
	pthread_rwlock_wrlock(&vol->gate);
	if (!atomic_load(&vol->async_settled)) {
		metadata_failed(vol, atomic_load(&vol->async_failed));
		atomic_store(&vol->async_settled, 1);
	}
	pthread_rwlock_unlock(&vol->gate);
}

/* Everything queued so far is in the origin. */
static void drain(struct vss_cow_volume *vol)
{
	if (vol->redo)
		vss_redo_drain(vol->redo, NULL);
}

void vss_cow_quiesce(struct vss_cow_volume *vol)
{
	drain(vol);
}

/* Logs a record and, if @durable, waits for it; on failure the diff area
 * is failed.  Gate held exclusively. */
static int log_rec(struct vss_cow_volume *vol, const struct vss_rec *rec, int durable)
{
	uint64_t lsn;
	int r = vol->sops->append(vol->store, rec, &lsn);

	if (!r && durable)
		r = vol->sops->commit(vol->store, lsn);
	if (r)
		metadata_failed(vol, r);
	return r;
}

/* Marks shadows invalid, from @pos to the newest. Gate held exclusively. */
static void invalidate_from(struct vss_cow_volume *vol, size_t pos, int error, const char *why)
{
	int durable = vol->valid_persistent > 0;

	for (size_t i = pos; i < vol->nshadows; i++) {
		struct shadow *s = vol->shadows[i];
		struct vss_rec rec = { .type = VSS_REC_SHADOW_INVALID, .seq = s->seq };
		if (s->invalid)
			continue;
		s->invalid = 1;
		if (log_rec(vol, &rec, 0) == 0)
			emit(vol, VSS_COW_EV_SHADOW_INVALID, s->id, error,
			     "shadow invalidated: %s", why);
	}
	recount(vol);
	if (durable)
		log_rec(vol, &(struct vss_rec){ .type = VSS_REC_NEXT_SEQ, .seq = vol->next_seq }, 1);
}

static int maybe_checkpoint(struct vss_cow_volume *vol);

/* Deletes the shadow at @pos with its record. Gate held exclusively. */
static int delete_at(struct vss_cow_volume *vol, size_t pos)
{
	struct shadow *s = vol->shadows[pos];
	struct vss_rec rec = { .type = VSS_REC_SHADOW_DELETE, .seq = s->seq };
	uint64_t lsn;
	int r;

	r = vol->sops->append(vol->store, &rec, &lsn);
	if (r) {
		metadata_failed(vol, r);
	}
	r = shadow_remove(vol, pos, 1);
	if (r)
		return r;
	if (!vol->sops->failed(vol->store)) {
		/* So that it cannot come back, and its slots can be reused. */
		r = vol->sops->commit(vol->store, lsn);
		if (r)
			metadata_failed(vol, r);
		maybe_checkpoint(vol);
	}
	return 0;
}

/* A slot could not be had: make room (design note 6).  @seen_gen is the
 * room_gen the caller saw when it failed; if it moved, somebody else has
 * made room meanwhile and the caller just tries again.  Takes the gate. */
static void make_room(struct vss_cow_volume *vol, uint64_t seen_gen, int error)
{
	pthread_rwlock_wrlock(&vol->gate);
	if (vol->room_gen == seen_gen && vol->newest_valid) {
		vol->room_gen++;
		if (vol->nshadows > 1) {
			vss_cow_id id;
			memcpy(id, vol->shadows[0]->id, 16);
			if (delete_at(vol, 0) == 0)
				emit(vol, VSS_COW_EV_SHADOW_DELETED, id, error,
				     "shadow deleted to make room in the diff area (%s)",
				     error == -ENOSPC ? "limit reached or filesystem full"
						      : strerror(-error));
		} else {
			invalidate_from(vol, 0, error,
					"the diff area cannot hold even the newest shadow");
		}
	}
	pthread_rwlock_unlock(&vol->gate);
}

/* The copy of @block could not be written: invalidate every shadow that
 * would read it from the origin. Takes the gate. */
static void copy_failed(struct vss_cow_volume *vol, uint64_t block, int error)
{
	uint32_t m;
	size_t pos;

	pthread_rwlock_wrlock(&vol->gate);
	pthread_rwlock_rdlock(&vol->ixlock);
	m = vss_index_max_seq(&vol->index, block);
	pthread_rwlock_unlock(&vol->ixlock);
	for (pos = 0; pos < vol->nshadows && vol->shadows[pos]->seq <= m; pos++)
		;
	char why[128];
	snprintf(why, sizeof(why), "the diff area could not take a block's old content (%s)",
		 strerror(-error));
	invalidate_from(vol, pos, error, why);
	pthread_rwlock_unlock(&vol->gate);
}

/* Reports a diff area passing 90% of its maximum, once until it drops
 * below 80% again.  Cheap: no system call. */
static void check_near_full(struct vss_cow_volume *vol)
{
	unsigned int pct = vol->sops->fill(vol->store);

	if (pct >= 90 && !atomic_exchange(&vol->near_full, 1))
		emit(vol, VSS_COW_EV_DIFF_NEAR_FULL, NULL, 0,
		     "diff area is %u%% full", pct);
	else if (pct < 80 && atomic_load(&vol->near_full))
		atomic_store(&vol->near_full, 0);
}

/* ---- the write path ---- */

enum copy_result {
	COPY_DONE = 0,          /* copied now, already copied, or not needed */
	COPY_NO_ROOM,           /* no slot: make room and retry */
	COPY_FAILED,            /* the copy could not be written */
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

	pthread_rwlock_rdlock(&vol->ixlock);
	m = vss_index_max_seq(&vol->index, block);
	pthread_rwlock_unlock(&vol->ixlock);
	if (m == newest)
		goto copied;
	if (vol->newest_valid <= m)
		return COPY_DONE;       /* no valid shadow reads it from the origin */

	pthread_mutex_lock(&vol->stripe[st]);
	pthread_rwlock_rdlock(&vol->ixlock);
	m = vss_index_max_seq(&vol->index, block);
	pthread_rwlock_unlock(&vol->ixlock);
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
	pthread_rwlock_wrlock(&vol->ixlock);
	r = vss_index_insert(&vol->index, block, newest, slot);
	if (!r) {
		/* With the entry, under the index lock: a reader that finds no
		 * shadow owning anything skips the lookups (see
		 * vss_cow_shadow_read). */
		struct shadow *s = shadow_by_seq(vol, newest, NULL);
		if (s)
			s->owned++;
	}
	pthread_rwlock_unlock(&vol->ixlock);
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

	settle(vol);
	pthread_rwlock_rdlock(&vol->gate);
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
		if (cr == COPY_DONE)
			break;
		pthread_rwlock_unlock(&vol->gate);
		if (cr == COPY_NO_ROOM)
			make_room(vol, room_gen, error);
		else
			copy_failed(vol, b, error);
		pthread_rwlock_rdlock(&vol->gate);
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
			pthread_rwlock_unlock(&vol->gate);
			pthread_rwlock_wrlock(&vol->gate);
			metadata_failed(vol, r);
			pthread_rwlock_unlock(&vol->gate);
			pthread_rwlock_rdlock(&vol->gate);
		}
	}
	r = vss_file_pwrite(vol->origin, buf, len, off);
out:
	if (copied && vol->cfg.max_diff_bytes != VSS_COW_UNBOUNDED)
		check_near_full(vol);
	pthread_rwlock_unlock(&vol->gate);
	return r ? r : (ssize_t)len;
}

ssize_t vss_cow_read(struct vss_cow_volume *vol, void *buf, size_t len, uint64_t off)
{
	int r;

	if (off >= vol->size || !len)
		return 0;
	if (len > vol->size - off)
		len = (size_t)(vol->size - off);
	if (vol->redo)
		r = vss_redo_read(vol->redo, buf, len, off);
	else
		r = vss_file_pread(vol->origin, buf, len, off);
	return r ? r : (ssize_t)len;
}

int vss_cow_flush(struct vss_cow_volume *vol)
{
	uint64_t done = 0;
	int r, werr = 0;

	/* Shared: a checkpoint (gate exclusive) must not see a commit. */
	pthread_rwlock_rdlock(&vol->gate);
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
			redo_failed(vol, r);
	}
	pthread_rwlock_unlock(&vol->gate);
	return r ? r : werr;
}

/* ---- shadow reads ---- */

#define NO_SLOT UINT32_MAX
#define READ_STACK_BLOCKS 256
#define READ_RUN_MAX (1u << 30)  /* bytes in one read: slot reads take 32-bit lengths */

/*
 * Where the run of blocks that starts at byte @pos of a read ending at @end
 * ends (a block number): origin blocks, or blocks in consecutive slots (at
 * most @max_slots of these), and less than READ_RUN_MAX bytes.
 */
static uint64_t run_limit(const struct vss_cow_volume *vol, uint64_t pos, uint64_t end,
			  uint64_t first, const uint32_t *slot, uint64_t max_slots)
{
	uint64_t b = pos >> vol->bs_shift, nb = b + 1;
	uint32_t s0 = slot[b - first];

	while ((nb << vol->bs_shift) < end && (nb << vol->bs_shift) - pos < READ_RUN_MAX &&
	       (s0 == NO_SLOT ? slot[nb - first] == NO_SLOT
			      : slot[nb - first] == s0 + (nb - b) && nb - b < max_slots))
		nb++;
	return nb;
}

/*
 * Plans the reads of [@off, @end) of a shadow whose blocks @first.. have
 * been looked up into @slot[] (NO_SLOT: from the origin) into @rd, as few as
 * the layout allows: a run of origin blocks is one read, and so is a run of
 * blocks in consecutive slots.  Returns how many (at most one per block).
 */
static size_t plan_reads(struct vss_cow_volume *vol, char *out, uint64_t off, uint64_t end,
			 uint64_t first, const uint32_t *slot, struct vss_read *rd)
{
	uint64_t pos = off;
	size_t n = 0;

	while (pos < end) {
		uint64_t b = pos >> vol->bs_shift, nb = run_limit(vol, pos, end, first, slot, UINT64_MAX);
		uint64_t run_end;
		uint32_t s0 = slot[b - first];

		run_end = nb << vol->bs_shift;
		if (run_end > end)
			run_end = end;
		if (s0 == NO_SLOT)
			rd[n] = (struct vss_read){ .file = vol->origin, .buf = out + (pos - off),
						   .len = run_end - pos, .off = pos };
		else {
			vol->sops->read_slot_prep(vol->store, s0, out + (pos - off),
						  (uint32_t)(pos & (vol->bs - 1)),
						  (uint32_t)(run_end - pos), &rd[n]);
			rd[n].probe = 1;        /* readahead() wants to know */
		}
		n++;
		pos = run_end;
	}
	return n;
}

/*
 * The same reads, but the origin is read whole, as one read of [@off,
 * @end) (more only past VSS_READ_IOV_MAX pieces or READ_RUN_MAX bytes),
 * vectored: the origin blocks into @out, the bytes of blocks that have
 * slots into the volume's scratch block, never looked at.  The kernel then
 * sees one sequential read of the origin (readahead works on a cold cache;
 * a warm one copies the dropped bytes in vain, but spares the work of a
 * read per piece), and the slot reads, which fill the
 * blocks of @out the origin read skips, go with it in the same batch.
 * @iov has room for one entry per block.
 */
static size_t plan_reads_whole(struct vss_cow_volume *vol, char *out, uint64_t off,
			       uint64_t end, uint64_t first, const uint32_t *slot,
			       struct vss_read *rd, struct iovec *iov)
{
	struct vss_read *org = NULL;
	uint64_t pos = off;
	size_t n = 0, niov = 0;

	while (pos < end) {
		/* A slot run takes an entry per block: at most a read's worth. */
		uint64_t b = pos >> vol->bs_shift;
		uint64_t nb = run_limit(vol, pos, end, first, slot, VSS_READ_IOV_MAX);
		uint64_t run_end, need;         /* need: iov entries */
		uint32_t s0 = slot[b - first];

		run_end = nb << vol->bs_shift;
		if (run_end > end)
			run_end = end;
		need = s0 == NO_SLOT ? 1 : nb - b;
		if (!org || org->iovcnt + need > VSS_READ_IOV_MAX ||
		    org->len + (run_end - pos) > READ_RUN_MAX) {
			org = &rd[n++];
			*org = (struct vss_read){ .file = vol->origin, .off = pos, .iov = &iov[niov] };
		}
		if (s0 == NO_SLOT) {
			iov[niov++] = (struct iovec){ .iov_base = out + (pos - off),
						      .iov_len = run_end - pos };
			org->iovcnt++;
		} else {
			vol->sops->read_slot_prep(vol->store, s0, out + (pos - off),
						  (uint32_t)(pos & (vol->bs - 1)),
						  (uint32_t)(run_end - pos), &rd[n]);
			rd[n++].probe = 1;
			/* One scratch entry per block: the scratch is a block. */
			for (uint64_t p = pos, e; p < run_end; p = e, org->iovcnt++) {
				e = ((p >> vol->bs_shift) + 1) << vol->bs_shift;
				if (e > run_end)
					e = run_end;
				iov[niov++] = (struct iovec){ .iov_base = vol->scratch,
							      .iov_len = e - p };
			}
		}
		org->len += run_end - pos;
		pos = run_end;
	}
	return n;
}

/* Whether no shadow from position @pos on owns a block (index lock held):
 * a read of the shadow at @pos then finds every block in the origin.  Looks
 * at the newest few only; more than that is answered "maybe". */
#define OWNS_NONE_LOOK 16
static int owns_none_since(struct vss_cow_volume *vol, size_t pos)
{
	if (vol->nshadows - pos > OWNS_NONE_LOOK)
		return 0;
	for (size_t i = pos; i < vol->nshadows; i++)
		if (atomic_load(&vol->shadows[i]->owned))
			return 0;
	return 1;
}

/*
 * Diff-area readahead (engine/prefetch.h).  A handle's reads that follow
 * one another, give or take READAHEAD / 4 (or start at 0), make a stream;
 * a stream turns cold when one of its reads found a slot missing from the
 * page cache (the vfs probes slot reads: RWF_NOWAIT first).  A cold stream asks for the slots of the
 * next READAHEAD bytes each time it comes within half of that of the end
 * of what it asked for before; a warm one asks for nothing (waking the
 * prefetch thread costs a reader 20-50 us on the 2-core guest, measured:
 * 7% of a warm read).  The prefetch thread looks the blocks up under the
 * index lock, a chunk at a time, and hints each run of consecutive slots
 * to the kernel.  A hint for a slot freed or reused meanwhile only reads
 * something in vain: nothing is read from it.
 */
#define READAHEAD (32u << 20)
#define PREFETCH_CHUNK 64

static void prefetch_slots(void *ctx, const struct vss_prefetch_req *rq)
{
	struct vss_cow_volume *vol = ctx;
	uint32_t slot[PREFETCH_CHUNK];
	uint64_t hinted = 0;

	for (uint64_t b = rq->first; b < rq->first + rq->count; b += PREFETCH_CHUNK) {
		uint64_t n = rq->first + rq->count - b;

		if (n > PREFETCH_CHUNK)
			n = PREFETCH_CHUNK;
		pthread_rwlock_rdlock(&vol->ixlock);
		for (uint64_t i = 0; i < n; i++)
			if (!vss_index_find(&vol->index, b + i, rq->seq, NULL, &slot[i]))
				slot[i] = NO_SLOT;
		pthread_rwlock_unlock(&vol->ixlock);
		for (uint64_t i = 0, j; i < n; i = j) {
			struct vss_read rd;

			j = i + 1;
			if (slot[i] == NO_SLOT)
				continue;
			while (j < n && slot[j] == slot[i] + (j - i))
				j++;
			vol->sops->read_slot_prep(vol->store, slot[i], NULL, 0,
						  (uint32_t)((j - i) << vol->bs_shift), &rd);
			vss_file_willneed(rd.file, rd.off, rd.len);
			hinted += rd.len;
		}
	}
	atomic_fetch_add_explicit(&vol->ra_hinted, hinted, memory_order_relaxed);
}

/* After a read of [@off, @end) of @sh, whose shadow (or a newer one) owns
 * blocks; @missed: some of its slots were not in the page cache. */
static void readahead(struct vss_cow_shadow *sh, uint32_t seq, uint64_t off, uint64_t end,
		      int missed)
{
	struct vss_cow_volume *vol = sh->vol;
	uint64_t next = atomic_load_explicit(&sh->next_off, memory_order_relaxed);
	uint64_t ra = atomic_load_explicit(&sh->ra_end, memory_order_relaxed), to;

	/* Near where the stream got to counts as going on: a FUSE device's
	 * readers get the kernel's readahead requests in any order. */
	if (off + READAHEAD / 4 < next || off > next + READAHEAD / 4) {
		/* A jump: a new stream, warm until it misses. */
		atomic_store_explicit(&sh->next_off, end, memory_order_relaxed);
		atomic_store_explicit(&sh->ra_end, end, memory_order_relaxed);
		atomic_store_explicit(&sh->cold, missed, memory_order_relaxed);
		if (off != 0)
			return;         /* not sequential (yet) */
		ra = end;
	} else if (end > next) {
		atomic_store_explicit(&sh->next_off, end, memory_order_relaxed);
	}
	if (missed)
		atomic_store_explicit(&sh->cold, 1, memory_order_relaxed);
	else if (!atomic_load_explicit(&sh->cold, memory_order_relaxed))
		return;
	if (ra < end)
		ra = end;
	to = end + READAHEAD < vol->size ? end + READAHEAD : vol->size;
	if (ra >= to || ra - end >= READAHEAD / 2)
		return;         /* far enough ahead */
	atomic_store_explicit(&sh->ra_end, to, memory_order_relaxed);
	ra &= ~(uint64_t)(vol->bs - 1);
	vss_prefetch_post(&vol->prefetch, &(struct vss_prefetch_req){
		.seq = seq, .first = ra >> vol->bs_shift,
		.count = ((to - 1) >> vol->bs_shift) + 1 - (ra >> vol->bs_shift) });
}

uint64_t vss_cow_readahead_wait(struct vss_cow_volume *vol, uint64_t *hinted)
{
	uint64_t done;

	vss_prefetch_drain(&vol->prefetch);
	pthread_mutex_lock(&vol->prefetch.lock);
	done = vol->prefetch.done;
	pthread_mutex_unlock(&vol->prefetch.lock);
	if (hinted)
		*hinted = atomic_load(&vol->ra_hinted);
	return done;
}

/*
 * The blocks are looked up under one hold of the index lock (none at all
 * when no shadow from this one on owns a block: a shadow just taken), and all the
 * reads they need, of the origin and of the diff area, go to the vfs as one
 * batch: with the posix vfs one system call, not one per run of blocks.
 * The origin is read whole when some blocks come from it and some from
 * slots (plan_reads_whole): bench-engine --reads measured a shadow with 2%
 * of its blocks copied at 0.60-0.64x of the volume read cold, against
 * 0.46-0.50x in pieces, and the same warm (before the readahead of design
 * note 8, which took it to 0.90-0.93x cold).
 */
ssize_t vss_cow_shadow_read(struct vss_cow_shadow *sh, void *buf, size_t len, uint64_t off)
{
	struct vss_cow_volume *vol = sh->vol;
	uint32_t stack_slots[READ_STACK_BLOCKS], *slot = stack_slots;
	struct vss_read stack_rd[READ_STACK_BLOCKS + 4], *rd = stack_rd;
	struct iovec stack_iov[READ_STACK_BLOCKS], *iov = stack_iov;
	uint64_t first, nblk, end, gen, nslot = 0;
	size_t n, pos;
	struct shadow *s;
	int r = 0, any_origin = 0, none_owned;

	settle(vol);
	pthread_rwlock_rdlock(&vol->gate);
	s = shadow_by_seq(vol, sh->seq, &pos);
	if (!s) {
		r = -ESTALE;
		goto out;
	}
	if (s->invalid) {
		r = -EIO;
		goto out;
	}
	if (off >= vol->size)
		len = 0;
	else if (len > vol->size - off)
		len = (size_t)(vol->size - off);
	if (!len)
		goto out;
	end = off + len;
	first = off >> vol->bs_shift;
	nblk = ((end - 1) >> vol->bs_shift) - first + 1;
	if (nblk > READ_STACK_BLOCKS) {
		/* Whole-origin plans: a read per VSS_READ_IOV_MAX / 2 blocks
		 * at worst besides the slot runs (see plan_reads_whole). */
		size_t nrd = nblk + nblk / (VSS_READ_IOV_MAX / 2) + 4;

		rd = malloc(nrd * sizeof(*rd) + nblk * (sizeof(*iov) + sizeof(*slot)));
		if (!rd) {
			r = -ENOMEM;
			goto out;
		}
		iov = (struct iovec *)(rd + nrd);
		slot = (uint32_t *)(iov + nblk);
	}

	/* Where each block comes from, under one hold of the index lock. */
	pthread_rwlock_rdlock(&vol->ixlock);
	gen = vol->index.gen;
	none_owned = owns_none_since(vol, pos);
	if (none_owned) {
		memset(slot, 0xff, nblk * sizeof(*slot));  /* NO_SLOT */
		any_origin = 1;
	} else {
		for (uint64_t i = 0; i < nblk; i++) {
			if (!vss_index_find(&vol->index, first + i, s->seq, NULL, &slot[i]))
				slot[i] = NO_SLOT;
			else
				nslot++;
		}
		any_origin = nslot < nblk;
	}
	pthread_rwlock_unlock(&vol->ixlock);
	if (any_origin && nslot)
		n = plan_reads_whole(vol, buf, off, end, first, slot, rd, iov);
	else
		n = plan_reads(vol, buf, off, end, first, slot, rd);
	r = vss_vfs_read_batch(vol->vfs, rd, n);
	if (r >= 0 && !none_owned)
		readahead(sh, s->seq, off, end, r > 0);
	if (r > 0)
		r = 0;          /* slots that were not in the page cache */
	if (r || !any_origin)
		goto done;

	/* Design note 4: a block copied while we read the origin is read
	 * again from its slot.  An unchanged index generation says that no
	 * block was. */
	n = 0;
	pthread_rwlock_rdlock(&vol->ixlock);
	for (uint64_t i = 0; vol->index.gen != gen && i < nblk; i++) {
		uint64_t bs_ = (first + i) << vol->bs_shift, be = bs_ + vol->bs;
		uint32_t now;

		/* Only blocks read from the origin that have a slot now. */
		if (slot[i] != NO_SLOT ||
		    !vss_index_find(&vol->index, first + i, s->seq, NULL, &now))
			continue;
		if (bs_ < off)
			bs_ = off;
		if (be > end)
			be = end;
		vol->sops->read_slot_prep(vol->store, now, (char *)buf + (bs_ - off),
					  (uint32_t)(bs_ & (vol->bs - 1)), (uint32_t)(be - bs_),
					  &rd[n++]);
	}
	pthread_rwlock_unlock(&vol->ixlock);
	r = vss_vfs_read_batch(vol->vfs, rd, n);
	if (r > 0)
		r = 0;
done:
	if (!r && s->invalid)
		r = -EIO;
	if (rd != stack_rd)
		free(rd);
out:
	pthread_rwlock_unlock(&vol->gate);
	return r ? r : (ssize_t)len;
}

int vss_cow_shadow_open(struct vss_cow_volume *vol, const vss_cow_id id,
			struct vss_cow_shadow **out)
{
	struct vss_cow_shadow *sh;
	struct shadow *s;

	pthread_rwlock_rdlock(&vol->gate);
	s = shadow_by_id(vol, id, NULL);
	if (!s) {
		pthread_rwlock_unlock(&vol->gate);
		return -ENOENT;
	}
	sh = malloc(sizeof(*sh));
	if (!sh) {
		pthread_rwlock_unlock(&vol->gate);
		return -ENOMEM;
	}
	sh->vol = vol;
	sh->seq = s->seq;
	atomic_init(&sh->next_off, 0);
	atomic_init(&sh->ra_end, 0);
	atomic_init(&sh->cold, 0);
	atomic_fetch_add(&vol->handles, 1);
	pthread_rwlock_unlock(&vol->gate);
	*out = sh;
	return 0;
}

void vss_cow_shadow_close(struct vss_cow_shadow *sh)
{
	if (!sh)
		return;
	atomic_fetch_sub(&sh->vol->handles, 1);
	free(sh);
}

/* ---- shadow management ---- */

static int check_params(const struct vss_cow_shadow_params *params, struct vss_error *err)
{
	static const vss_cow_id zero;

	if (!memcmp(params->id, zero, 16))
		return vss_error_set(err, -EINVAL, "a shadow id must not be all zeros");
	if (params->flags & ~VSS_COW_SHADOW_PERSISTENT)
		return vss_error_set(err, -EINVAL, "unknown shadow flags 0x%x", params->flags);
	return 0;
}

/*
 * Takes a shadow; or, with @lost_ns, records one a lost diff area held
 * (design note 9): created then, invalid from the start, durable.
 */
static int create_shadow(struct vss_cow_volume *vol, const struct vss_cow_shadow_params *params,
			 uint64_t lost_ns, struct vss_error *err)
{
	struct vss_rec rec = { .type = VSS_REC_SHADOW_CREATE };
	int persistent = !!(params->flags & VSS_COW_SHADOW_PERSISTENT);
	uint64_t lsn;
	int r;

	if ((r = check_params(params, err)) < 0)
		return r;
	settle(vol);
	pthread_rwlock_wrlock(&vol->gate);
	/* The instant includes every write acknowledged: queued ones too. */
	drain(vol);
	if (vol->sops->failed(vol->store)) {
		r = vss_error_set(err, -EIO, "the diff area has failed; delete its shadows and "
				  "recreate the shadow storage");
		goto out;
	}
	if (persistent && vol->detached[0]) {
		r = vss_error_set(err, -ESTALE, "no persistent shadow can be taken: %s",
				  vol->detached);
		goto out;
	}
	if (shadow_by_id(vol, params->id, NULL)) {
		r = vss_error_set(err, -EEXIST, "a shadow with this id exists already");
		goto out;
	}
	if (vol->nshadows >= VSS_COW_MAX_SHADOWS) {
		r = vss_error_set(err, -EMLINK, "the volume has %d shadows, the most it can have",
				  VSS_COW_MAX_SHADOWS);
		goto out;
	}
	if (vol->next_seq > VSS_INDEX_SEQ_MAX) {
		r = vss_error_set(err, -EOVERFLOW, "the volume has used up its shadow numbers");
		goto out;
	}
	if (persistent && !lost_ns) {
		/* The shadow's content must survive a crash: the origin first. */
		r = vss_file_sync(vol->origin);
		if (r) {
			vss_error_set(err, r, "cannot flush the volume: %s", strerror(-r));
			goto out;
		}
	}
	rec.seq = vol->next_seq;
	rec.flags = params->flags;
	rec.created_ns = lost_ns ? lost_ns : now_ns();
	memcpy(rec.id, params->id, 16);
	memcpy(rec.set_id, params->set_id, 16);
	r = vol->sops->append(vol->store, &rec, &lsn);
	if (!r && lost_ns)
		r = vol->sops->append(vol->store, &(struct vss_rec){
			.type = VSS_REC_SHADOW_INVALID, .seq = rec.seq }, &lsn);
	if (!r && (persistent || lost_ns))
		r = vol->sops->commit(vol->store, lsn);
	if (r) {
		metadata_failed(vol, r);
		vss_error_set(err, r, "cannot record the shadow in the diff area: %s", strerror(-r));
		goto out;
	}
	r = shadow_append(vol, &rec);
	if (r) {
		vss_error_set(err, r, "out of memory");
		goto out;
	}
	if (lost_ns) {
		vol->shadows[vol->nshadows - 1]->invalid = 1;
		recount(vol);
	}
out:
	pthread_rwlock_unlock(&vol->gate);
	return r;
}

int vss_cow_shadow_create(struct vss_cow_volume *vol,
			  const struct vss_cow_shadow_params *params,
			  struct vss_error *err)
{
	return create_shadow(vol, params, 0, err);
}

int vss_cow_shadow_create_lost(struct vss_cow_volume *vol,
			       const struct vss_cow_shadow_params *params, uint64_t created_ns,
			       struct vss_error *err)
{
	return create_shadow(vol, params, created_ns ? created_ns : 1, err);
}

void vss_cow_detach(struct vss_cow_volume *vol, const char *why)
{
	settle(vol);
	pthread_rwlock_wrlock(&vol->gate);
	/* What is queued was acknowledged: to the origin now, since the
	 * file holding its REDO records is no longer where a restart looks. */
	drain(vol);
	for (size_t i = 0; i < vol->nshadows; i++)
		vol->shadows[i]->flags &= ~VSS_COW_SHADOW_PERSISTENT;
	recount(vol);
	snprintf(vol->detached, sizeof(vol->detached), "%s", why);
	pthread_rwlock_unlock(&vol->gate);
}

int vss_cow_open_handles(struct vss_cow_volume *vol)
{
	return atomic_load(&vol->handles);
}

void vss_cow_diff_identity(struct vss_cow_volume *vol, unsigned char id[16], uint64_t *dev,
			   uint64_t *ino)
{
	vol->sops->identity(vol->store, id, dev, ino);
}

int vss_cow_shadow_delete(struct vss_cow_volume *vol, const vss_cow_id id,
			  struct vss_error *err)
{
	size_t pos;
	int r;

	pthread_rwlock_wrlock(&vol->gate);
	if (!shadow_by_id(vol, id, &pos)) {
		r = vss_error_set(err, -ENOENT, "no such shadow");
	} else {
		r = delete_at(vol, pos);
		if (r)
			vss_error_set(err, r, "cannot delete the shadow: %s", strerror(-r));
	}
	pthread_rwlock_unlock(&vol->gate);
	return r;
}

int vss_cow_shadow_list(struct vss_cow_volume *vol, struct vss_cow_shadow_info **out,
			size_t *count)
{
	struct vss_cow_shadow_info *a;

	settle(vol);
	pthread_rwlock_rdlock(&vol->gate);
	a = calloc(vol->nshadows ? vol->nshadows : 1, sizeof(*a));
	if (!a) {
		pthread_rwlock_unlock(&vol->gate);
		return -ENOMEM;
	}
	for (size_t i = 0; i < vol->nshadows; i++) {
		struct shadow *s = vol->shadows[i];
		memcpy(a[i].id, s->id, 16);
		memcpy(a[i].set_id, s->set_id, 16);
		a[i].flags = s->flags;
		a[i].state = s->invalid ? VSS_COW_SHADOW_INVALID : VSS_COW_SHADOW_VALID;
		a[i].created_ns = s->created_ns;
		a[i].diff_bytes = atomic_load(&s->owned) * vol->bs;
		a[i].seq = s->seq;
	}
	*count = vol->nshadows;
	pthread_rwlock_unlock(&vol->gate);
	*out = a;
	return 0;
}

int vss_cow_set_max_diff(struct vss_cow_volume *vol, uint64_t max_bytes,
			 struct vss_error *err)
{
	struct vss_store_usage u;
	int r;

	pthread_rwlock_wrlock(&vol->gate);
	r = vol->sops->set_max(vol->store, max_bytes);
	if (r) {
		vss_error_set(err, r, "cannot record the new maximum: %s", strerror(-r));
		goto out;
	}
	vol->cfg.max_diff_bytes = max_bytes;
	/* Shrinking below what is used deletes shadows, oldest first. */
	for (;;) {
		vol->sops->usage(vol->store, &u);
		if (max_bytes == VSS_COW_UNBOUNDED || u.used_bytes <= max_bytes ||
		    !vol->nshadows)
			break;
		vss_cow_id id;
		memcpy(id, vol->shadows[0]->id, 16);
		r = delete_at(vol, 0);
		if (r) {
			vss_error_set(err, r, "cannot delete a shadow to fit: %s", strerror(-r));
			goto out;
		}
		emit(vol, VSS_COW_EV_SHADOW_DELETED, id, 0,
		     "shadow deleted: the diff area maximum was lowered below its use");
	}
out:
	pthread_rwlock_unlock(&vol->gate);
	return r;
}

/* ---- changed-block tracking ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int vss_cow_changed_extents(struct vss_cow_volume *vol, const vss_cow_id from,
			    const vss_cow_id to, struct vss_cow_extent **out,
			    size_t *count, struct vss_error *err)
{
	struct shadow *a, *b = NULL;
	uint32_t lo, hi;
	uint64_t *blocks = NULL;
	size_t n = 0, cap = 0, ne = 0;
	struct vss_cow_extent *ext = NULL;
	int r = 0;

	settle(vol);
	pthread_rwlock_rdlock(&vol->gate);
	a = shadow_by_id(vol, from, NULL);
	if (to)
		b = shadow_by_id(vol, to, NULL);
	if (!a || (to && !b)) {
		r = vss_error_set(err, -ENOENT, "no such shadow");
		goto out;
	}
	if (a->invalid) {
		r = vss_error_set(err, -EIO, "the older shadow is invalid: its changes are unknown");
		goto out;
	}
	lo = a->seq;
	hi = b ? b->seq : UINT32_MAX;
	if (lo >= hi) {
		r = vss_error_set(err, -EINVAL, "the first shadow must be older than the second");
		goto out;
	}
	pthread_rwlock_rdlock(&vol->ixlock);
	for (size_t i = 0; i < vol->index.cap; i++) {
		uint64_t k = vol->index.keys[i];
		if (!k || vss_index_key_seq(k) < lo || vss_index_key_seq(k) >= hi)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			uint64_t *nb = realloc(blocks, cap * sizeof(*nb));
			if (!nb) {
				pthread_rwlock_unlock(&vol->ixlock);
				r = vss_error_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			blocks = nb;
		}
		blocks[n++] = vss_index_key_block(k);
	}
	pthread_rwlock_unlock(&vol->ixlock);
	if (n)
		qsort(blocks, n, sizeof(*blocks), cmp_u64);
	ext = calloc(n ? n : 1, sizeof(*ext));
	if (!ext) {
		r = vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t o = blocks[i] << vol->bs_shift;
		uint64_t l = (uint64_t)vol->bs;
		if (o + l > vol->size)
			l = vol->size - o;
		if (ne && ext[ne - 1].offset + ext[ne - 1].length >= o) {
			if (o + l > ext[ne - 1].offset + ext[ne - 1].length)
				ext[ne - 1].length = o + l - ext[ne - 1].offset;
			continue;
		}
		ext[ne].offset = o;
		ext[ne].length = l;
		ne++;
	}
	*out = ext;
	*count = ne;
	ext = NULL;
out:
	pthread_rwlock_unlock(&vol->gate);
	free(blocks);
	free(ext);
	return r;
}

/* ---- accounting ---- */

int vss_cow_usage(struct vss_cow_volume *vol, struct vss_cow_usage *out)
{
	struct vss_store_usage u;

	pthread_rwlock_rdlock(&vol->gate);
	vol->sops->usage(vol->store, &u);
	out->used_bytes = u.used_bytes;
	out->allocated_bytes = u.allocated_bytes;
	out->max_bytes = u.max_bytes;
	pthread_rwlock_rdlock(&vol->ixlock);
	out->copied_blocks = vol->index.count;
	out->index_bytes = vss_index_bytes(&vol->index);
	pthread_rwlock_unlock(&vol->ixlock);
	out->shadows = (uint32_t)vol->nshadows;
	pthread_rwlock_unlock(&vol->gate);
	return 0;
}

uint64_t vss_cow_size(const struct vss_cow_volume *vol) { return vol->size; }
uint32_t vss_cow_block_size(const struct vss_cow_volume *vol) { return vol->bs; }

/* ---- checkpoint, replay, open and close ---- */

static int emit_state(void *arg)
{
	struct vss_cow_volume *vol = arg;
	struct vss_rec rec;
	uint64_t lsn;
	int r = 0;

	/* Shadows in creation order (replay insists), then the counter. */
	for (size_t i = 0; !r && i < vol->nshadows; i++) {
		struct shadow *s = vol->shadows[i];
		rec = (struct vss_rec){ .type = VSS_REC_SHADOW_CREATE, .seq = s->seq,
					.flags = s->flags, .created_ns = s->created_ns };
		memcpy(rec.id, s->id, 16);
		memcpy(rec.set_id, s->set_id, 16);
		r = vol->sops->append(vol->store, &rec, &lsn);
		if (!r && s->invalid) {
			rec = (struct vss_rec){ .type = VSS_REC_SHADOW_INVALID, .seq = s->seq };
			r = vol->sops->append(vol->store, &rec, &lsn);
		}
	}
	if (!r) {
		rec = (struct vss_rec){ .type = VSS_REC_NEXT_SEQ, .seq = vol->next_seq };
		r = vol->sops->append(vol->store, &rec, &lsn);
	}
	for (size_t i = 0; !r && i < vol->index.cap; i++) {
		uint64_t k = vol->index.keys[i];
		if (!k)
			continue;
		rec = (struct vss_rec){ .type = VSS_REC_COPY, .block = vss_index_key_block(k),
					.seq = vss_index_key_seq(k), .slot = vol->index.slots[i] };
		r = vol->sops->append(vol->store, &rec, &lsn);
	}
	return r;
}

/* At most the bytes of records emit_state() appends. */
static uint64_t state_bytes(struct vss_cow_volume *vol)
{
	return (uint64_t)vol->index.count * 40 + (uint64_t)vol->nshadows * (64 + 24) + 24;
}

/* Rewrites the log when deletions left it mostly garbage. Gate exclusive. */
static int maybe_checkpoint(struct vss_cow_volume *vol)
{
	struct vss_store_usage u;
	uint64_t live, log_bytes;
	int r;

	vol->sops->usage(vol->store, &u);
	live = vol->index.count * 32 + vol->nshadows * 64 + 64;
	log_bytes = u.log_slots * vol->bs;
	if (log_bytes <= 2 * live + (1u << 20))
		return 0;
	drain(vol);     /* the new log holds no REDO record */
	r = vol->sops->checkpoint(vol->store, emit_state, vol, state_bytes(vol));
	/* No room for a new log on the filesystem: the old one goes on. */
	if (r && r != -ENOSPC)
		metadata_failed(vol, r);
	if (!r)
		vol->log_stale = 0;
	return r;
}

static int replay_rec(void *arg, const struct vss_rec *rec)
{
	struct vss_cow_volume *vol = arg;
	struct vss_error *err = vol->replay_err;
	struct shadow *s = NULL;
	size_t pos = 0;
	int r;

	if (rec->type == VSS_REC_REDO) {
		if (rec->block >= vol->nblocks || !rec->len || rec->off >= vol->bs ||
		    rec->len > vol->bs - rec->off ||
		    (rec->block << vol->bs_shift) + rec->off + rec->len > vol->size)
			return vss_error_set(err, -EUCLEAN,
					     "diff area is corrupt: a redo record names bytes outside the volume");
		r = vss_redo_log_add(&vol->replay_redo, rec);
		return r ? vss_error_set(err, r, "out of memory") : 0;
	}
	if (rec->type == VSS_REC_DONE) {
		vss_redo_log_done(&vol->replay_redo, rec->block);
		return 0;
	}
	if (rec->type != VSS_REC_NEXT_SEQ && rec->type != VSS_REC_SHADOW_CREATE) {
		s = shadow_by_seq(vol, rec->seq, &pos);
		if (!s)
			return vss_error_set(err, -EUCLEAN,
					     "diff area is corrupt: a record names shadow %u, which does not exist",
					     rec->seq);
	}
	switch (rec->type) {
	case VSS_REC_SHADOW_CREATE: {
		static const vss_cow_id zero;
		if (rec->seq < vol->next_seq || rec->seq > VSS_INDEX_SEQ_MAX ||
		    !memcmp(rec->id, zero, 16) || shadow_by_id(vol, rec->id, NULL) ||
		    vol->nshadows >= VSS_COW_MAX_SHADOWS)
			return vss_error_set(err, -EUCLEAN,
					     "diff area is corrupt: shadow record %u is out of order or repeated",
					     rec->seq);
		r = shadow_append(vol, rec);
		return r ? vss_error_set(err, r, "out of memory") : 0;
	}
	case VSS_REC_SHADOW_DELETE:
		r = shadow_remove(vol, pos, 0);
		return r ? vss_error_set(err, r, "out of memory") : 0;
	case VSS_REC_SHADOW_INVALID:
		s->invalid = 1;
		recount(vol);
		return 0;
	case VSS_REC_COPY:
		if (rec->block >= vol->nblocks || vss_index_has(&vol->index, rec->block, rec->seq))
			return vss_error_set(err, -EUCLEAN,
					     "diff area is corrupt: a copy record names block %llu of shadow %u twice or out of range",
					     (unsigned long long)rec->block, rec->seq);
		r = vss_index_insert(&vol->index, rec->block, rec->seq, rec->slot);
		if (r)
			return vss_error_set(err, r, "out of memory");
		s->owned++;
		return 0;
	case VSS_REC_SYNC:
	case VSS_REC_REDO:
	case VSS_REC_DONE:
		break;  /* the store's own, or handled above */
	case VSS_REC_NEXT_SEQ:
		if (rec->seq > VSS_INDEX_SEQ_MAX + 1)
			return vss_error_set(err, -EUCLEAN, "diff area is corrupt: bad sequence record");
		if (rec->seq > vol->next_seq)
			vol->next_seq = rec->seq;
		return 0;
	}
	return vss_error_set(err, -EUCLEAN, "diff area is corrupt: unknown record type %u",
			     rec->type);
}

static void volume_free(struct vss_cow_volume *vol)
{
	vss_prefetch_stop(&vol->prefetch);     /* first: it looks at the index and store */
	if (vol->store)
		vol->sops->close(vol->store);
	vss_file_close(vol->origin);
	free(vol->failed_path);
	for (int i = 0; i < VSS_COW_MARKS; i++)
		free(vol->marks[i]);
	free(vol->scratch);
	for (size_t i = 0; i < vol->nshadows; i++)
		free(vol->shadows[i]);
	free(vol->shadows);
	vss_index_release(&vol->index);
	vss_redo_log_free(&vol->replay_redo);
	pthread_mutex_destroy(&vol->fail_lock);
	pthread_rwlock_destroy(&vol->gate);
	pthread_rwlock_destroy(&vol->ixlock);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_destroy(&vol->stripe[i]);
	free(vol);
}

static int open_volume(struct vss_vfs *vfs, const char *origin_path, const char *diff_path,
		       const struct vss_cow_config *cfg, unsigned int flags,
		       const struct vss_cow_guard *guard, struct vss_cow_volume **out,
		       struct vss_error *err)
{
	struct vss_cow_config defcfg = VSS_COW_CONFIG_INIT, ours;
	struct vss_store_geometry geo;
	struct vss_cow_volume *vol;
	struct vss_file *df = NULL;
	int r;

	vss_error_clear(err);
	if (!cfg)
		cfg = &defcfg;
	/* The caller's struct may be older or newer than ours. */
	r = vss_struct_in(&ours, sizeof(ours), cfg, cfg->size,
			  VSS_SIZE_TO(struct vss_cow_config, event_arg), "struct vss_cow_config", err);
	if (r < 0)
		return r;
	cfg = &ours;
	vol = calloc(1, sizeof(*vol));
	if (!vol)
		return vss_error_set(err, -ENOMEM, "out of memory");
	vol->cfg = *cfg;
	vol->vfs = vfs;
	vol->sops = &vss_store_log_ops;
	vss_prefetch_init(&vol->prefetch, prefetch_slots, vol);
	if (asprintf(&vol->failed_path, "%s.failed", diff_path) < 0) {
		vol->failed_path = NULL;
		r = vss_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (int i = 0; guard && i < VSS_COW_MARKS; i++)
		if (guard->marks[i] && !(vol->marks[i] = strdup(guard->marks[i]))) {
			r = vss_error_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
	vol->next_seq = 1;
	{
		/* Creating a shadow must not wait behind an endless stream of
		 * I/O: new readers queue behind a waiting exclusive locker.  The
		 * gate is never taken shared twice by one thread. */
		pthread_rwlockattr_t a;
		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&vol->gate, &a);
		pthread_rwlockattr_destroy(&a);
	}
	pthread_rwlock_init(&vol->ixlock, NULL);
	pthread_mutex_init(&vol->fail_lock, NULL);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&vol->stripe[i], NULL);
	r = vss_index_init(&vol->index);
	if (r) {
		vss_error_set(err, r, "out of memory");
		goto fail;
	}

	r = vfs->open(vfs, origin_path, 0, &vol->origin);
	if (r) {
		vss_error_set(err, r, "cannot open the volume %s: %s", origin_path, strerror(-r));
		goto fail;
	}
	r = vss_file_size(vol->origin, &vol->size);
	if (r) {
		vss_error_set(err, r, "cannot get the size of %s: %s", origin_path, strerror(-r));
		goto fail;
	}
	if (!vol->size) {
		r = vss_error_set(err, -EINVAL, "the volume %s is empty", origin_path);
		goto fail;
	}

	r = vfs->open(vfs, diff_path, 0, &df);
	if (r == -ENOENT && (flags & VSS_COW_CREATE)) {
		uint32_t bs = cfg->block_size;
		if (bs < VSS_COW_BLOCK_MIN || bs > VSS_COW_BLOCK_MAX || (bs & (bs - 1))) {
			r = vss_error_set(err, -EINVAL,
					  "block size %u is not a power of two from 4K to 1M", bs);
			goto fail;
		}
		r = vfs->open(vfs, diff_path, VSS_VFS_CREATE | VSS_VFS_EXCL, &df);
		if (!r) {
			geo = (struct vss_store_geometry){ .block_size = bs,
				.origin_size = vol->size, .max_bytes = cfg->max_diff_bytes };
			r = vol->sops->format(df, &geo, err);
			if (r) {
				vss_file_close(df);
				df = NULL;
				vfs->unlink(vfs, diff_path);
				goto fail;
			}
		}
	}
	if (r) {
		if (!err || !err->code)
			vss_error_set(err, r, "cannot open the diff area %s: %s", diff_path,
				      strerror(-r));
		goto fail;
	}

	r = vol->sops->open(df, &geo, &vol->store, err);
	df = NULL;
	if (r)
		goto fail;
	if (guard && guard->expect_id) {
		/* Before anything in it is replayed: another diff area's
		 * REDO records would write its volume's bytes into this one. */
		unsigned char id[16];
		uint64_t dev, ino;

		vol->sops->identity(vol->store, id, &dev, &ino);
		if (memcmp(id, guard->expect_id, 16) != 0) {
			r = vss_error_set(err, -ESTALE, "%s is not this volume's diff area "
					  "(another diff area, made for another volume or "
					  "before this one)", diff_path);
			goto fail;
		}
	}
	if (geo.origin_size != vol->size) {
		r = vss_error_set(err, -EINVAL,
				  "the diff area %s was made for a volume of %llu bytes, but %s has %llu",
				  diff_path, (unsigned long long)geo.origin_size, origin_path,
				  (unsigned long long)vol->size);
		goto fail;
	}
	vol->bs = geo.block_size;
	vol->bs_shift = (unsigned int)__builtin_ctz(vol->bs);
	vol->nblocks = (vol->size + vol->bs - 1) >> vol->bs_shift;
	vol->cfg.block_size = vol->bs;
	vol->scratch = malloc(vol->bs);
	if (!vol->scratch) {
		r = vss_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	vol->cfg.max_diff_bytes = geo.max_bytes;

	vol->replay_err = err;
	r = vol->sops->replay(vol->store, replay_rec, vol, err);
	vol->replay_err = NULL;
	if (r)
		goto fail;
	for (int i = -1; i < VSS_COW_MARKS; i++) {
		/* A failure recorded anywhere (design note 9).  A mark that
		 * cannot be opened for another reason than its absence (a
		 * read-only filesystem) counts: trusting a failed diff area
		 * is the one thing that must not happen. */
		const char *mark = i < 0 ? vol->failed_path : vol->marks[i];
		struct vss_file *f;
		int m = mark ? vfs->open(vfs, mark, 0, &f) : -ENOENT;

		if (m == 0)
			vss_file_close(f);
		if (m != -ENOENT && m != -ENOTDIR)
			vol->sops->mark_failed(vol->store);
	}
	if (!vol->sops->failed(vol->store)) {
		/* Design note 7: acknowledged writes that may not have reached
		 * the origin.  Their slots stay taken until the checkpoint
		 * below is in force: a crash before it replays them again. */
		struct vss_redo_env env = redo_env(vol);
		r = vss_redo_log_apply(&vol->replay_redo, &env, err);
		for (size_t i = vol->replay_redo.start; !r && i < vol->replay_redo.n; i++)
			if (vol->sops->mark_used(vol->store, vol->replay_redo.v[i].slot,
						 vol->replay_redo.v[i].len))
				r = vss_error_set(err, -EUCLEAN, "diff area is corrupt: slot %u is "
						  "used twice or lies past its end",
						  vol->replay_redo.v[i].slot);
		if (r)
			goto fail;
	} else {
		vss_redo_log_free(&vol->replay_redo);
	}
	/* Non-persistent shadows do not outlive their process.  Their
	 * entries go down to older shadows or (nothing durable refers to the
	 * slot once the checkpoint below is in force) free. */
	for (size_t i = vol->nshadows; i-- > 0;)
		if (!(vol->shadows[i]->flags & VSS_COW_SHADOW_PERSISTENT)) {
			r = shadow_remove(vol, i, 0);
			if (r) {
				vss_error_set(err, r, "out of memory");
				goto fail;
			}
		}
	for (size_t i = 0; i < vol->index.cap; i++) {
		if (!vol->index.keys[i])
			continue;
		r = vol->sops->mark_used(vol->store, vol->index.slots[i], vol->bs);
		if (r) {
			if (r == -EUCLEAN)
				vss_error_set(err, r, "diff area is corrupt: slot %u is used twice "
					      "or lies past its end", vol->index.slots[i]);
			else
				vss_error_set(err, r, "cannot read the diff area: %s", strerror(-r));
			goto fail;
		}
	}

	if (vol->sops->failed(vol->store)) {
		/* Sticky: what is in it cannot be trusted; keep it read-only. */
		for (size_t i = 0; i < vol->nshadows; i++)
			vol->shadows[i]->invalid = 1;
		recount(vol);
	} else {
		r = vol->sops->checkpoint(vol->store, emit_state, vol, state_bytes(vol));
		if (r == -ENOSPC) {
			vol->log_stale = 1;
			/* The volume must come up all the same.  The replayed log
			 * stays in force and takes no records: the shadows read
			 * as they are until the first write that needs a copy,
			 * which can only invalidate them (note 6); freeing space
			 * and opening again keeps them. */
			emit(vol, VSS_COW_EV_METADATA_ERROR, NULL, r,
			     "no room for the diff area's new log (filesystem full): its shadows "
			     "stay readable until the first write that needs a copy invalidates "
			     "them; free space and reopen the volume to keep them");
		} else if (r) {
			vss_error_set(err, r, "cannot write the diff area: %s", strerror(-r));
			goto fail;
		} else {
			for (size_t i = vol->replay_redo.start; i < vol->replay_redo.n; i++)
				vol->sops->free_slot(vol->store, vol->replay_redo.v[i].slot);
		}
		vss_redo_log_free(&vol->replay_redo);
		/* Without a flusher, writes just wait for their commits. */
		struct vss_redo_env env = redo_env(vol);
		if (vss_redo_start(&env, &vol->redo) != 0)
			vol->redo = NULL;
	}
	*out = vol;
	return 0;
fail:
	vss_file_close(df);
	volume_free(vol);
	return r;
}

int vss_cow_open_vfs(struct vss_vfs *vfs, const char *origin_path,
		     const char *diff_path, const struct vss_cow_config *cfg,
		     unsigned int flags, struct vss_cow_volume **out,
		     struct vss_error *err)
{
	return open_volume(vfs, origin_path, diff_path, cfg, flags, NULL, out, err);
}

int vss_cow_open_guarded(const char *origin_path, const char *diff_path,
			 const struct vss_cow_config *cfg, unsigned int flags,
			 const struct vss_cow_guard *guard, struct vss_cow_volume **out,
			 struct vss_error *err)
{
	return open_volume(vss_vfs_posix(), origin_path, diff_path, cfg, flags, guard, out,
			   err);
}

int vss_cow_open(const char *origin_path, const char *diff_path,
		 const struct vss_cow_config *cfg, unsigned int flags,
		 struct vss_cow_volume **out, struct vss_error *err)
{
	return vss_cow_open_vfs(vss_vfs_posix(), origin_path, diff_path, cfg, flags,
				out, err);
}

int vss_cow_close(struct vss_cow_volume *vol)
{
	int r = 0, r2;

	if (!vol)
		return 0;
	pthread_rwlock_wrlock(&vol->gate);
	if (vol->redo) {
		r = vss_redo_stop(vol->redo);   /* applies what is queued */
		vol->redo = NULL;
	}
	/* The origin first: the DONE records committed next must not stand
	 * for writes a power loss could still take back. */
	r2 = vss_file_sync(vol->origin);
	if (!r)
		r = r2;
	if (!vol->sops->failed(vol->store) && !vol->log_stale) {
		struct vss_rec rec = { .type = VSS_REC_NEXT_SEQ, .seq = vol->next_seq };
		uint64_t lsn;
		r2 = vol->sops->append(vol->store, &rec, &lsn);
		if (!r2)
			r2 = vol->sops->commit(vol->store, lsn);
		if (!r)
			r = r2;
	} else if (vol->sops->failed(vol->store)) {
		/* One more try to put the failure in the diff area itself. */
		vol->sops->mark_failed(vol->store);
	}       /* else the log is stale (open found no room): the old one stays in force */
	pthread_rwlock_unlock(&vol->gate);
	volume_free(vol);
	return r;
}
