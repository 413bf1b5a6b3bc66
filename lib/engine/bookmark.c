/*
 * engine/bookmark.c - changed-block tracking: bookmarks (which blocks were
 * written since a shadow's instant, kept after the shadow is deleted), their
 * maps, and the changed extents between a shadow or bookmark and a later
 * shadow or now.  Design note 10 (the index of notes is at the head of
 * volume.c).
 *
 * DESIGN NOTE
 *
 * 10. Bookmarks.  The blocks written since shadow s's instant are the
 *    index entries with a seq >= s (design note 1: a write copies the block
 *    for the newest shadow unless an entry at or after the newest valid
 *    one already holds it).  A bookmark B, named by s, keeps that after s
 *    is gone: changed(B) = map(B) + {b : an entry (b, t) with t >= B.seq}.
 *    Its map takes what the entries cannot say:
 *    - folds: when shadow t is deleted and the next older shadow p is
 *      older than B (or there is none), t's entries are handed down below
 *      B.seq or freed, so every block of t goes into map(B) first, for
 *      each B with p < B.seq <= t (replay of a DELETE does the same);
 *    - marks: while no valid shadow at or after B.seq exists (B.seq >
 *      newest_valid: "uncovered"), writes copy nothing B could see, so the
 *      write path sets each block in map(B) (an atomic bit; cow_bm_mark)
 *      and logs a MARK record (block, newest_valid) for a block newly set:
 *      replay marks it in every bookmark newer than that seq, which is
 *      exactly the set marked.  The MARK record is not waited for: it is
 *      in the log at a clean close (CLOSE is its last record) and goes to
 *      disk with any commit before.
 *    So no write waits for tracking.  What a crash may lose is a MARK record
 *    (or a COPY record of a shadow no durable record needed: COPY records
 *    are committed before the origin changes only while a valid persistent
 *    shadow exists, design note 5).  A log that does not end with CLOSE
 *    keeps a bookmark only if, where it ends, a valid shadow at or after it
 *    and a valid persistent shadow exist ("durably covered"): every write
 *    since it became so made a committed COPY record, and it became so
 *    only by a commit with the gate exclusive (a shadow taken: a
 *    persistent one commits; any other commits when MARK records wait;
 *    open's checkpoint), after which every MARK before it was durable.
 *    Leaving that state is always committed (deleting a shadow; losing the
 *    last valid persistent one commits, note 6).  Every other bookmark is
 *    lost there (BM_LOST_UNCLEAN): the next incremental reads everything.
 *    A bookmark is also lost when a MARK cannot be logged (no room), when
 *    its map cannot grow (memory) and when the diff area fails.  A lost
 *    bookmark stays listed, with why, until it is deleted.  A checkpoint
 *    writes each map as BMAP records, after the COPY records (replay of a
 *    BMAP or MARK needs its bookmark; a COPY record marks nothing).
 *    Making a bookmark syncs the origin: a write before the shadow's instant
 *    that a power loss took back would differ from what the shadow read,
 *    and nothing tracks it.
 *    Changed extents from B to shadow T: map(B) + entries in [B.seq, T.seq):
 *    while T is valid B is covered, so only folds of shadows older than T
 *    reach map(B).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/volume_i.h"

static const char *lost_why(uint32_t lost)
{
	switch (lost) {
	case BM_LOST_UNCLEAN:
		return "the volume was not closed cleanly";
	case BM_LOST_NO_ROOM:
		return "the diff area had no room to record a change";
	case BM_LOST_FAILED:
		return "the diff area failed";
	case BM_LOST_NO_MEMORY:
		return "there was no memory for its map";
	}
	return "tracking was given up";
}

/* ---- maps ---- */

static struct bookmark *bm_new(struct vss_cow_volume *vol, const vss_cow_id id, uint32_t seq,
			       uint64_t created_ns)
{
	struct bookmark *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->npages = (size_t)((vol->nblocks + BM_PAGE_BITS - 1) / BM_PAGE_BITS);
	b->pages = calloc(b->npages ? b->npages : 1, sizeof(*b->pages));
	if (!b->pages) {
		free(b);
		return NULL;
	}
	memcpy(b->id, id, 16);
	b->seq = seq;
	b->created_ns = created_ns;
	return b;
}

static void bm_clear(struct bookmark *b)
{
	for (size_t i = 0; i < b->npages; i++) {
		free(atomic_load(&b->pages[i]));
		atomic_store(&b->pages[i], NULL);
	}
	atomic_store(&b->marked, 0);
}

static void bm_free(struct bookmark *b)
{
	if (!b)
		return;
	bm_clear(b);
	free(b->pages);
	free(b);
}

static int bm_test(struct bookmark *b, uint64_t block)
{
	bm_word *page = atomic_load(&b->pages[block / BM_PAGE_BITS]);
	uint64_t bit = block % BM_PAGE_BITS;

	return page && (atomic_load(&page[bit / 64]) >> (bit % 64)) & 1;
}

/* Sets @block in @b's map (*@fresh = 1 if it was not set); 0 or -ENOMEM.
 * Any number of threads at once: pages are put in place with a CAS. */
static int bm_set(struct bookmark *b, uint64_t block, int *fresh)
{
	_Atomic(bm_word *) *slot = &b->pages[block / BM_PAGE_BITS];
	bm_word *page = atomic_load(slot);
	uint64_t bit = block % BM_PAGE_BITS, mask = 1ull << (bit % 64);

	if (!page) {
		bm_word *expect = NULL;

		page = calloc(BM_PAGE_WORDS, sizeof(*page));
		if (!page)
			return -ENOMEM;
		if (!atomic_compare_exchange_strong(slot, &expect, page)) {
			free(page);
			page = expect;
		}
	}
	if (!(atomic_fetch_or(&page[bit / 64], mask) & mask)) {
		atomic_fetch_add(&b->marked, 1);
		*fresh = 1;
	}
	return 0;
}

/* ---- the list (gate held; changed with it exclusive) ---- */

static struct bookmark *bm_by_seq(struct vss_cow_volume *vol, uint32_t seq, size_t *pos)
{
	assert(cow_held(&vol->gate));
	for (size_t i = 0; i < vol->nbookmarks; i++)
		if (vol->bookmarks[i]->seq == seq) {
			if (pos)
				*pos = i;
			return vol->bookmarks[i];
		}
	return NULL;
}

struct bookmark *cow_bm_by_id(struct vss_cow_volume *vol, const vss_cow_id id, size_t *pos)
{
	assert(cow_held(&vol->gate));
	for (size_t i = 0; i < vol->nbookmarks; i++)
		if (!memcmp(vol->bookmarks[i]->id, id, 16)) {
			if (pos)
				*pos = i;
			return vol->bookmarks[i];
		}
	return NULL;
}

void cow_bm_recount(struct vss_cow_volume *vol)
{
	assert(cow_held_excl(&vol->gate));
	vol->bm_track = 0;
	for (size_t i = 0; i < vol->nbookmarks; i++) {
		/* Seq increasing: the write path's loop stops at the first covered one. */
		assert(!i || vol->bookmarks[i - 1]->seq < vol->bookmarks[i]->seq);
		if (!vol->bookmarks[i]->lost)
			vol->bm_track = vol->bookmarks[i]->seq;
	}
}

/* Puts @b in the list at its place by seq; 0 or -ENOMEM. */
static int bm_insert(struct vss_cow_volume *vol, struct bookmark *b)
{
	struct bookmark **n = realloc(vol->bookmarks, (vol->nbookmarks + 1) * sizeof(*n));
	size_t i;

	assert(cow_held_excl(&vol->gate));
	if (!n)
		return -ENOMEM;
	vol->bookmarks = n;
	for (i = vol->nbookmarks; i > 0 && vol->bookmarks[i - 1]->seq > b->seq; i--)
		vol->bookmarks[i] = vol->bookmarks[i - 1];
	vol->bookmarks[i] = b;
	vol->nbookmarks++;
	cow_bm_recount(vol);
	return 0;
}

static void bm_remove(struct vss_cow_volume *vol, size_t pos)
{
	assert(cow_held_excl(&vol->gate) && pos < vol->nbookmarks);
	bm_free(vol->bookmarks[pos]);
	memmove(&vol->bookmarks[pos], &vol->bookmarks[pos + 1],
		(vol->nbookmarks - pos - 1) * sizeof(*vol->bookmarks));
	vol->nbookmarks--;
	cow_bm_recount(vol);
}

/* Whether records can be appended now (not while opening, nor to a stale
 * log: then what is lost is recorded by the checkpoint, or not at all). */
static int can_log(struct vss_cow_volume *vol)
{
	return !vol->opening && !vol->log_stale && !vol->sops->failed(vol->store);
}

/*
 * Loses @b for @why: its map is dropped and, at run time, a BOOKMARK_LOST
 * record says so (not waited for: a crash before it is durable loses the
 * bookmark anyway, since it was not durably covered).  Gate exclusive.
 */
static void bm_lose(struct vss_cow_volume *vol, struct bookmark *b, uint32_t why)
{
	struct vss_rec rec = { .type = VSS_REC_BOOKMARK_LOST, .seq = b->seq, .flags = why };
	uint64_t lsn;
	int r;

	assert(cow_held_excl(&vol->gate));
	if (b->lost)
		return;
	b->lost = why;
	bm_clear(b);
	cow_bm_recount(vol);
	if (can_log(vol)) {
		r = vol->sops->append(vol->store, &rec, &lsn);
		if (r)
			cow_metadata_failed(vol, r);
	}
}

void cow_bm_fail_all(struct vss_cow_volume *vol)
{
	assert(cow_held_excl(&vol->gate));
	for (size_t i = 0; i < vol->nbookmarks; i++)
		if (!vol->bookmarks[i]->lost) {
			vol->bookmarks[i]->lost = BM_LOST_FAILED;
			bm_clear(vol->bookmarks[i]);
		}
	cow_bm_recount(vol);
}

void cow_bm_release(struct vss_cow_volume *vol)
{
	for (size_t i = 0; i < vol->nbookmarks; i++)
		bm_free(vol->bookmarks[i]);
	free(vol->bookmarks);
	vol->bookmarks = NULL;
	vol->nbookmarks = 0;
}

/* ---- what changes maps (design note 10) ---- */

void cow_bm_fold(struct vss_cow_volume *vol, uint32_t lo, uint32_t hi,
		 const uint64_t *blocks, size_t n)
{
	assert(cow_held_excl(&vol->gate));
	for (size_t i = 0; i < vol->nbookmarks; i++) {
		struct bookmark *b = vol->bookmarks[i];
		int fresh;

		if (b->seq <= lo || b->seq > hi || b->lost)
			continue;
		for (size_t k = 0; k < n; k++)
			if (bm_set(b, blocks[k], &fresh)) {
				bm_lose(vol, b, BM_LOST_NO_MEMORY);
				break;
			}
	}
}

int cow_bm_mark(struct vss_cow_volume *vol, uint64_t first, uint64_t last)
{
	uint32_t cov = vol->newest_valid;

	assert(cow_held(&vol->gate));
	for (uint64_t blk = first; blk <= last; blk++) {
		int fresh = 0, r;

		/* Newest first: the uncovered ones are the newest. */
		for (size_t i = vol->nbookmarks; i-- > 0;) {
			struct bookmark *b = vol->bookmarks[i];

			if (b->seq <= cov)
				break;
			if (!b->lost && !bm_test(b, blk) && (r = bm_set(b, blk, &fresh)))
				return r;
		}
		if (fresh) {
			struct vss_rec rec = { .type = VSS_REC_MARK, .block = blk, .seq = cov };
			uint64_t lsn, seen;

			r = vol->sops->append_extra(vol->store, &rec, &lsn);
			if (r)
				return r;
			seen = atomic_load(&vol->mark_lsn);
			while (seen < lsn && !atomic_compare_exchange_weak(&vol->mark_lsn, &seen, lsn))
				;
		}
	}
	return 0;
}

void cow_bm_give_up(struct vss_cow_volume *vol, int error)
{
	uint32_t why = error == -ENOMEM ? BM_LOST_NO_MEMORY
		     : error == -ENOSPC || error == -EDQUOT ? BM_LOST_NO_ROOM : 0;

	assert(!cow_held(&vol->gate));
	cow_wrlock(&vol->gate);
	if (!why) {
		/* The log cannot be written (a stale log included: only the
		 * diff area's FAILED flag can say that the map missed writes). */
		cow_metadata_failed(vol, error);
	} else {
		for (size_t i = vol->nbookmarks; i-- > 0;) {
			struct bookmark *b = vol->bookmarks[i];

			if (b->seq <= vol->newest_valid)
				break;
			if (!b->lost) {
				bm_lose(vol, b, why);
				cow_emit(vol, VSS_COW_EV_BOOKMARK_LOST, b->id, error,
					 "changed-block tracking from shadow seq %u lost: %s; the "
					 "next incremental reads everything", b->seq, lost_why(why));
			}
		}
	}
	cow_unlock(&vol->gate);
}

/* ---- replay and checkpoint ---- */

int cow_bm_replay(struct vss_cow_volume *vol, const struct vss_rec *rec)
{
	struct vss_error *err = vol->replay_err;
	struct bookmark *b = NULL;
	size_t pos = 0;
	int fresh;

	assert(cow_held_excl(&vol->gate));     /* open holds it */
	if (rec->type != VSS_REC_BOOKMARK && rec->type != VSS_REC_MARK) {
		b = bm_by_seq(vol, rec->seq, &pos);
		if (!b)
			return vss_error_set(err, -EUCLEAN, "diff area is corrupt: a record names "
					     "bookmark %u, which does not exist", rec->seq);
	}
	switch (rec->type) {
	case VSS_REC_BOOKMARK: {
		static const vss_cow_id zero;

		if (!rec->seq || rec->seq >= vol->next_seq || !memcmp(rec->id, zero, 16) ||
		    bm_by_seq(vol, rec->seq, NULL) || cow_bm_by_id(vol, rec->id, NULL) ||
		    vol->nbookmarks >= VSS_COW_MAX_BOOKMARKS)
			return vss_error_set(err, -EUCLEAN, "diff area is corrupt: bookmark record "
					     "%u is out of place or repeated", rec->seq);
		b = bm_new(vol, rec->id, rec->seq, rec->created_ns);
		if (!b || bm_insert(vol, b)) {
			bm_free(b);
			return vss_error_set(err, -ENOMEM, "out of memory");
		}
		b->lost = rec->flags;
		cow_bm_recount(vol);
		return 0;
	}
	case VSS_REC_BOOKMARK_DROP:
		bm_remove(vol, pos);
		return 0;
	case VSS_REC_BOOKMARK_LOST:
		b->lost = rec->flags ? rec->flags : BM_LOST_UNCLEAN;
		bm_clear(b);
		cow_bm_recount(vol);
		return 0;
	case VSS_REC_BMAP:
		if (rec->block % 64 || rec->block >= vol->nblocks ||
		    (vol->nblocks - rec->block < 64 && rec->bits >> (vol->nblocks - rec->block)))
			return vss_error_set(err, -EUCLEAN, "diff area is corrupt: a bookmark map "
					     "names blocks past the volume's end");
		for (unsigned int i = 0; !b->lost && i < 64; i++)
			if ((rec->bits >> i) & 1 && bm_set(b, rec->block + i, &fresh))
				return vss_error_set(err, -ENOMEM, "out of memory");
		return 0;
	case VSS_REC_MARK:
		if (rec->block >= vol->nblocks || rec->seq >= vol->next_seq)
			return vss_error_set(err, -EUCLEAN, "diff area is corrupt: a mark record "
					     "names block %llu of %llu", (unsigned long long)rec->block,
					     (unsigned long long)vol->nblocks);
		for (size_t i = vol->nbookmarks; i-- > 0;) {
			b = vol->bookmarks[i];
			if (b->seq <= rec->seq)
				break;
			if (!b->lost && bm_set(b, rec->block, &fresh))
				return vss_error_set(err, -ENOMEM, "out of memory");
		}
		return 0;
	default:
		break;
	}
	return vss_error_set(err, -EUCLEAN, "diff area is corrupt: unknown record type %u",
			     rec->type);
}

void cow_bm_after_replay(struct vss_cow_volume *vol, int failed)
{
	/* Design note 10: durably covered, with the replayed list of shadows. */
	int durable = vol->valid_persistent > 0;

	assert(cow_held_excl(&vol->gate));
	for (size_t i = 0; i < vol->nbookmarks; i++) {
		struct bookmark *b = vol->bookmarks[i];

		if (b->lost)
			continue;
		if (failed)
			b->lost = BM_LOST_FAILED;
		else if (!vol->replay_clean && !(durable && vol->newest_valid >= b->seq))
			b->lost = BM_LOST_UNCLEAN;
		if (b->lost)
			bm_clear(b);
	}
	cow_bm_recount(vol);
}

int cow_bm_emit(struct vss_cow_volume *vol)
{
	uint64_t lsn;
	int r = 0;

	assert(cow_held_excl(&vol->gate));
	for (size_t i = 0; !r && i < vol->nbookmarks; i++) {
		struct bookmark *b = vol->bookmarks[i];
		struct vss_rec rec = { .type = VSS_REC_BOOKMARK, .seq = b->seq, .flags = b->lost,
				       .created_ns = b->created_ns };

		memcpy(rec.id, b->id, 16);
		r = vol->sops->append(vol->store, &rec, &lsn);
		for (size_t p = 0; !r && !b->lost && p < b->npages; p++) {
			bm_word *page = atomic_load(&b->pages[p]);

			for (size_t w = 0; !r && page && w < BM_PAGE_WORDS; w++) {
				uint64_t bits = atomic_load(&page[w]);

				if (!bits)
					continue;
				rec = (struct vss_rec){ .type = VSS_REC_BMAP, .seq = b->seq,
					.block = (uint64_t)p * BM_PAGE_BITS + (uint64_t)w * 64,
					.bits = bits };
				r = vol->sops->append(vol->store, &rec, &lsn);
			}
		}
	}
	return r;
}

uint64_t cow_bm_bytes(struct vss_cow_volume *vol)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < vol->nbookmarks; i++)
		bytes += 48 + 40 * atomic_load(&vol->bookmarks[i]->marked);
	return bytes;
}

/* ---- the API ---- */

/*
 * At VSS_COW_MAX_BOOKMARKS, deletes the oldest lost bookmark, else the
 * oldest whose shadow is gone (whoever needed it reads everything next
 * time: never wrong); -EMLINK if every one still has its shadow.  Gate
 * exclusive.
 */
static int bm_make_room(struct vss_cow_volume *vol, struct vss_error *err)
{
	struct vss_rec rec = { .type = VSS_REC_BOOKMARK_DROP };
	size_t pos = vol->nbookmarks;
	uint64_t lsn;
	int r;

	assert(cow_held_excl(&vol->gate));
	if (vol->nbookmarks < VSS_COW_MAX_BOOKMARKS)
		return 0;
	for (size_t i = 0; i < vol->nbookmarks && pos == vol->nbookmarks; i++)
		if (vol->bookmarks[i]->lost)
			pos = i;
	for (size_t i = 0; i < vol->nbookmarks && pos == vol->nbookmarks; i++)
		if (!cow_shadow_by_seq(vol, vol->bookmarks[i]->seq, NULL))
			pos = i;
	if (pos == vol->nbookmarks)
		return vss_error_set(err, -EMLINK, "the volume has %d bookmarks of shadows it "
				     "still has, the most it can have", VSS_COW_MAX_BOOKMARKS);
	rec.seq = vol->bookmarks[pos]->seq;
	cow_emit(vol, VSS_COW_EV_BOOKMARK_LOST, vol->bookmarks[pos]->id, -EMLINK,
		 "bookmark of shadow seq %u deleted to make room for a new one (at most %d)",
		 rec.seq, VSS_COW_MAX_BOOKMARKS);
	bm_remove(vol, pos);
	r = vol->sops->append(vol->store, &rec, &lsn);
	if (r) {
		cow_metadata_failed(vol, r);
		return vss_error_set(err, r, "cannot record the deletion in the diff area: %s",
				     strerror(-r));
	}
	return 0;
}

int vss_cow_bookmark_create(struct vss_cow_volume *vol, const vss_cow_id id,
			    struct vss_error *err)
{
	struct vss_rec rec = { .type = VSS_REC_BOOKMARK };
	struct bookmark *b = NULL;
	struct shadow *s;
	uint64_t lsn;
	int r;

	cow_settle(vol);
	cow_wrlock(&vol->gate);
	cow_drain(vol);
	if (!(s = cow_shadow_by_id(vol, id, NULL))) {
		r = vss_error_set(err, -ENOENT, "no such shadow");
	} else if (cow_bm_by_id(vol, id, NULL)) {
		r = vss_error_set(err, -EEXIST, "the shadow has a bookmark already");
	} else if (s->invalid) {
		r = vss_error_set(err, -EIO, "the shadow is invalid: the changes since it are "
				  "unknown already");
	} else if (!can_log(vol)) {
		r = vss_error_set(err, -EIO, "the diff area takes no records: it has failed or "
				  "had no room for its log when the volume was opened");
	} else if ((r = bm_make_room(vol, err)) < 0) {
		/* said why */
	} else if (!(b = bm_new(vol, id, s->seq, s->created_ns))) {
		r = vss_error_set(err, -ENOMEM, "out of memory");
	} else if ((r = vss_file_sync(vol->origin)) != 0) {
		/* What the shadow read must not be taken back by a power loss:
		 * a write before its instant is tracked by nothing. */
		vss_error_set(err, r, "cannot flush the volume: %s", strerror(-r));
	} else {
		rec.seq = s->seq;
		rec.created_ns = s->created_ns;
		memcpy(rec.id, id, 16);
		r = vol->sops->append(vol->store, &rec, &lsn);
		if (!r)
			r = vol->sops->commit(vol->store, lsn);
		if (r) {
			cow_metadata_failed(vol, r);
			vss_error_set(err, r, "cannot record the bookmark in the diff area: %s",
				      strerror(-r));
		} else if ((r = bm_insert(vol, b)) != 0) {
			/* Recorded, not kept: the next open finds it, tracking. */
			vss_error_set(err, r, "out of memory");
		} else {
			b = NULL;
		}
	}
	cow_unlock(&vol->gate);
	bm_free(b);
	return r;
}

int vss_cow_bookmark_delete(struct vss_cow_volume *vol, const vss_cow_id id,
			    struct vss_error *err)
{
	struct vss_rec rec = { .type = VSS_REC_BOOKMARK_DROP };
	size_t pos;
	uint64_t lsn;
	int r = 0;

	cow_settle(vol);
	cow_wrlock(&vol->gate);
	if (!cow_bm_by_id(vol, id, &pos)) {
		r = vss_error_set(err, -ENOENT, "no such bookmark");
		goto out;
	}
	rec.seq = vol->bookmarks[pos]->seq;
	bm_remove(vol, pos);
	if (can_log(vol)) {
		r = vol->sops->append(vol->store, &rec, &lsn);
		if (!r)
			r = vol->sops->commit(vol->store, lsn);
		if (r) {
			cow_metadata_failed(vol, r);
			vss_error_set(err, r, "cannot record the deletion in the diff area: %s",
				      strerror(-r));
		}
	}
out:
	cow_unlock(&vol->gate);
	return r;
}

int vss_cow_bookmark_list(struct vss_cow_volume *vol, struct vss_cow_bookmark_info **out,
			  size_t *count)
{
	struct vss_cow_bookmark_info *a;

	cow_settle(vol);
	cow_rdlock(&vol->gate);
	a = calloc(vol->nbookmarks ? vol->nbookmarks : 1, sizeof(*a));
	if (!a) {
		cow_unlock(&vol->gate);
		return -ENOMEM;
	}
	for (size_t i = 0; i < vol->nbookmarks; i++) {
		struct bookmark *b = vol->bookmarks[i];

		memcpy(a[i].id, b->id, 16);
		a[i].seq = b->seq;
		a[i].state = b->lost ? VSS_COW_BOOKMARK_LOST : VSS_COW_BOOKMARK_TRACKING;
		a[i].created_ns = b->created_ns;
		a[i].marked_blocks = atomic_load(&b->marked);
		a[i].shadow_exists = cow_shadow_by_seq(vol, b->seq, NULL) != NULL;
		if (b->lost)
			snprintf(a[i].why, sizeof(a[i].why), "%s", lost_why(b->lost));
	}
	*count = vol->nbookmarks;
	cow_unlock(&vol->gate);
	*out = a;
	return 0;
}

/* ---- changed extents ---- */

struct blocks {
	uint64_t *v;
	size_t n, cap;
};

static int blocks_add(struct blocks *bl, uint64_t block)
{
	if (bl->n == bl->cap) {
		size_t cap = bl->cap ? bl->cap * 2 : 1024;
		uint64_t *nv = realloc(bl->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		bl->v = nv;
		bl->cap = cap;
	}
	bl->v[bl->n++] = block;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The blocks of entries with a seq in [@lo, @hi), and of @b's map. */
static int collect(struct vss_cow_volume *vol, uint32_t lo, uint32_t hi, struct bookmark *b,
		   struct blocks *bl)
{
	int r = 0;

	cow_rdlock(&vol->ixlock);
	for (size_t i = 0; !r && i < vol->index.cap; i++) {
		uint64_t k = vol->index.keys[i];

		if (k && vss_index_key_seq(k) >= lo && vss_index_key_seq(k) < hi)
			r = blocks_add(bl, vss_index_key_block(k));
	}
	cow_unlock(&vol->ixlock);
	for (size_t p = 0; !r && b && p < b->npages; p++) {
		bm_word *page = atomic_load(&b->pages[p]);

		for (size_t w = 0; !r && page && w < BM_PAGE_WORDS; w++) {
			uint64_t bits = atomic_load(&page[w]);

			while (!r && bits) {
				unsigned int i = (unsigned int)__builtin_ctzll(bits);

				bits &= bits - 1;
				r = blocks_add(bl, (uint64_t)p * BM_PAGE_BITS + (uint64_t)w * 64 + i);
			}
		}
	}
	return r;
}

int vss_cow_changed_extents(struct vss_cow_volume *vol, const vss_cow_id from,
			    const vss_cow_id to, struct vss_cow_extent **out,
			    size_t *count, struct vss_error *err)
{
	struct shadow *a, *t = NULL;
	struct bookmark *b;
	struct blocks bl = { 0 };
	struct vss_cow_extent *ext = NULL;
	uint32_t lo, hi;
	size_t ne = 0;
	int r = 0;

	cow_settle(vol);
	cow_rdlock(&vol->gate);
	a = cow_shadow_by_id(vol, from, NULL);
	b = cow_bm_by_id(vol, from, NULL);
	if (to)
		t = cow_shadow_by_id(vol, to, NULL);
	if ((!a && !b) || (to && !t)) {
		r = vss_error_set(err, -ENOENT, !a && !b ? "no such shadow or bookmark"
							   : "no such shadow");
		goto out;
	}
	if (b && b->lost) {
		r = vss_error_set(err, -ESTALE, "its changed-block tracking was lost: %s",
				  lost_why(b->lost));
		goto out;
	}
	if (!b && a->invalid) {
		r = vss_error_set(err, -EIO, "the older shadow is invalid: its changes are unknown");
		goto out;
	}
	lo = b ? b->seq : a->seq;
	hi = t ? t->seq : UINT32_MAX;
	if (lo >= hi) {
		r = vss_error_set(err, -EINVAL, "the first shadow must be older than the second");
		goto out;
	}
	if (collect(vol, lo, hi, b, &bl)) {
		r = vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (bl.n)
		qsort(bl.v, bl.n, sizeof(*bl.v), cmp_u64);
	ext = calloc(bl.n ? bl.n : 1, sizeof(*ext));
	if (!ext) {
		r = vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < bl.n; i++) {
		uint64_t o = bl.v[i] << vol->bs_shift;
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
	cow_unlock(&vol->gate);
	free(bl.v);
	free(ext);
	return r;
}
