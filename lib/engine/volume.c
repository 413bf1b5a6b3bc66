/*
 * engine/volume.c - the copy-on-write engine's volume: the shadow list, the
 * failures of its diff area, its side of the redo queue, and accounting.
 * The engine's other files (engine/volume_i.h lists them) share what is
 * here; the design notes below say how the engine keeps shadows exact.
 *
 * DESIGN NOTES, each where the code that enforces it is:
 *
 *   1. The chain                                       volume.c (below)
 *   2. Deleting a shadow (hand-down)                   shadow.c
 *   3. Locks                                           volume.c (below)
 *   4. A shadow read racing with a first write         read.c
 *   5. Durability of copies before the origin changes  write.c
 *   6. The diff area never fails a write               write.c
 *   7. Persistent first writes: the redo queue         write.c (and redo.c)
 *   8. Shadow reads from a cold cache: readahead       read.c
 *   9. The diff area seen from outside                 open.c
 *  10. Bookmarks: changed blocks that outlive shadows  bookmark.c
 *  11. Revert                                          revert.c
 *
 * 1. The chain.  Shadows have a sequence number, increasing with creation.
 *    An index entry (block b, seq s) -> slot says: the content b had when
 *    shadow s was taken, and until the first write to b while s was the
 *    newest shadow, is in that slot.  Shadow s reads b from the entry with
 *    the smallest seq >= s, or from the origin if there is none.  A write
 *    copies b only if (b, newest) is missing, so its cost does not depend
 *    on the number of shadows.
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
 *    The store has its own lock below all of these.  Each function whose
 *    comment says which lock it wants held asserts it (engine/lock.h: who
 *    holds what is known to every build but buildtype=release).  Open
 *    holds the gate exclusively too, though nobody else has the volume yet.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/volume_i.h"

void cow_emit(struct vss_cow_volume *vol, enum vss_cow_event_type type,
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

struct shadow *cow_shadow_by_seq(struct vss_cow_volume *vol, uint32_t seq, size_t *pos)
{
	size_t lo = 0, hi = vol->nshadows;

	assert(cow_held(&vol->gate));

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

struct shadow *cow_shadow_by_id(struct vss_cow_volume *vol, const vss_cow_id id, size_t *pos)
{
	assert(cow_held(&vol->gate));
	for (size_t i = 0; i < vol->nshadows; i++)
		if (!memcmp(vol->shadows[i]->id, id, 16)) {
			if (pos)
				*pos = i;
			return vol->shadows[i];
		}
	return NULL;
}

void cow_recount(struct vss_cow_volume *vol)
{
	assert(cow_held_excl(&vol->gate));
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

int cow_shadow_append(struct vss_cow_volume *vol, const struct vss_rec *rec)
{
	struct shadow *s;

	assert(cow_held_excl(&vol->gate));
	/* Oldest first: seq increasing. */
	assert(!vol->nshadows || vol->shadows[vol->nshadows - 1]->seq < rec->seq);
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
	cow_recount(vol);
	return 0;
}

#ifndef NDEBUG
void cow_check(struct vss_cow_volume *vol)
{
	uint64_t *count = calloc(vol->nshadows ? vol->nshadows : 1, sizeof(*count));
	uint64_t entries = 0;

	assert(cow_held_excl(&vol->gate));
	if (!count)
		return;         /* no memory to check with */
	for (size_t i = 0; i < vol->index.cap; i++) {
		uint64_t k = vol->index.keys[i];
		struct shadow *s;
		size_t pos;

		if (!k)
			continue;
		entries++;
		/* Design note 1: an entry belongs to a shadow of the list. */
		s = cow_shadow_by_seq(vol, vss_index_key_seq(k), &pos);
		assert(s);
		if (s)
			count[pos]++;
		assert(vss_index_key_block(k) < vol->nblocks);
	}
	assert(entries == vol->index.count);
	for (size_t i = 0; i < vol->nshadows; i++) {
		assert(atomic_load(&vol->shadows[i]->owned) == count[i]);
		assert(vol->shadows[i]->seq < vol->next_seq);
	}
	free(count);
}
#endif

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
			cow_emit(vol, VSS_COW_EV_METADATA_ERROR, NULL, r,
				 "cannot record the diff area's failure anywhere (%s): after a restart its "
				 "shadows may look valid but miss later writes; delete them",
				 strerror(-r));
	}
	pthread_mutex_unlock(&vol->fail_lock);
}

/* Sticky failure of the diff area's metadata: nothing in it can be trusted. */
void cow_metadata_failed(struct vss_cow_volume *vol, int error)
{
	int was;

	assert(cow_held_excl(&vol->gate));
	was = vol->sops->failed(vol->store);

	note_failure(vol, error);
	if (!was)
		cow_emit(vol, VSS_COW_EV_METADATA_ERROR, NULL, error,
			 "diff area metadata cannot be written (%s): every shadow of the volume is invalid",
			 strerror(-error));
	for (size_t i = 0; i < vol->nshadows; i++) {
		struct shadow *s = vol->shadows[i];
		if (s->invalid)
			continue;
		s->invalid = 1;
		cow_emit(vol, VSS_COW_EV_SHADOW_INVALID, s->id, error,
			 "shadow invalidated: the diff area's metadata cannot be written");
	}
	cow_recount(vol);
	cow_bm_fail_all(vol);
}

/* ---- the redo queue's side (design note 7) ---- */

/* The flusher could not commit: record it durably now (the queued writes
 * go to the origin next); the shadows are invalidated by the next caller
 * that can take the gate (cow_settle()). */
void cow_redo_failed(void *arg, int error)
{
	struct vss_cow_volume *vol = arg;
	int expect = 0;

	if (!atomic_compare_exchange_strong(&vol->async_failed, &expect, error))
		return;
	note_failure(vol, error);
	cow_emit(vol, VSS_COW_EV_METADATA_ERROR, NULL, error,
		 "diff area metadata cannot be written (%s): every shadow of the volume is invalid",
		 strerror(-error));
}

static void redo_write_error(void *arg, uint64_t off, uint32_t len, int error)
{
	struct vss_cow_volume *vol = arg;

	cow_emit(vol, VSS_COW_EV_WRITE_ERROR, NULL, error,
		 "an acknowledged write of %u bytes at %llu could not be written to the volume (%s); "
		 "the next flush fails", len, (unsigned long long)off, strerror(-error));
}

struct vss_redo_env cow_redo_env(struct vss_cow_volume *vol)
{
	return (struct vss_redo_env){
		.origin = vol->origin, .sops = vol->sops, .store = vol->store,
		.size = vol->size, .bs = vol->bs, .bs_shift = vol->bs_shift,
		.failed = cow_redo_failed, .write_error = redo_write_error, .arg = vol,
	};
}

/* Brings the shadow list in line with a failure the flusher met. Gate not held. */
void cow_settle(struct vss_cow_volume *vol)
{
	assert(!cow_held(&vol->gate));
	if (!atomic_load(&vol->async_failed) || atomic_load(&vol->async_settled))
		return;
	cow_wrlock(&vol->gate);
	if (!atomic_load(&vol->async_settled)) {
		cow_metadata_failed(vol, atomic_load(&vol->async_failed));
		atomic_store(&vol->async_settled, 1);
	}
	cow_unlock(&vol->gate);
}

/* Everything queued so far is in the origin. */
void cow_drain(struct vss_cow_volume *vol)
{
	if (vol->redo)
		vss_redo_drain(vol->redo, NULL);
}

void vss_cow_quiesce(struct vss_cow_volume *vol)
{
	cow_drain(vol);
}

/* Logs a record and, if @durable, waits for it; on failure the diff area
 * is failed.  Gate held exclusively. */
static int log_rec(struct vss_cow_volume *vol, const struct vss_rec *rec, int durable)
{
	uint64_t lsn;
	int r;

	assert(cow_held_excl(&vol->gate));
	r = vol->sops->append(vol->store, rec, &lsn);
	if (!r && durable)
		r = vol->sops->commit(vol->store, lsn);
	if (r)
		cow_metadata_failed(vol, r);
	return r;
}

/* Marks shadows invalid, from @pos to the newest. Gate held exclusively. */
void cow_invalidate_from(struct vss_cow_volume *vol, size_t pos, int error, const char *why)
{
	int durable = vol->valid_persistent > 0;

	assert(cow_held_excl(&vol->gate));
	for (size_t i = pos; i < vol->nshadows; i++) {
		struct shadow *s = vol->shadows[i];
		struct vss_rec rec = { .type = VSS_REC_SHADOW_INVALID, .seq = s->seq };
		if (s->invalid)
			continue;
		s->invalid = 1;
		if (log_rec(vol, &rec, 0) == 0)
			cow_emit(vol, VSS_COW_EV_SHADOW_INVALID, s->id, error,
				 "shadow invalidated: %s", why);
	}
	cow_recount(vol);
	if (durable)
		log_rec(vol, &(struct vss_rec){ .type = VSS_REC_NEXT_SEQ, .seq = vol->next_seq }, 1);
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

/* ---- accounting ---- */

int vss_cow_usage(struct vss_cow_volume *vol, struct vss_cow_usage *out)
{
	struct vss_store_usage u;

	cow_rdlock(&vol->gate);
	vol->sops->usage(vol->store, &u);
	out->used_bytes = u.used_bytes;
	out->allocated_bytes = u.allocated_bytes;
	out->max_bytes = u.max_bytes;
	cow_rdlock(&vol->ixlock);
	out->copied_blocks = vol->index.count;
	out->index_bytes = vss_index_bytes(&vol->index);
	cow_unlock(&vol->ixlock);
	out->shadows = (uint32_t)vol->nshadows;
	cow_unlock(&vol->gate);
	return 0;
}

uint64_t vss_cow_size(const struct vss_cow_volume *vol) { return vol->size; }
uint32_t vss_cow_block_size(const struct vss_cow_volume *vol) { return vol->bs; }
