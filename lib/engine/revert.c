/*
 * engine/revert.c - the volume rolled back in place to one of its shadows
 * (vshadow -revert), in time proportional to the blocks written since it.
 * Design note 11 (the index of notes is at the head of volume.c).
 *
 * DESIGN NOTE
 *
 * 11. Revert to shadow s.  Shadows newer than s are deleted first, newest
 *    first: each hands its entries down (note 2), so that s then has an
 *    entry for every block written since its instant, holding the content
 *    the block had then.  A REVERT record (begin) is committed; each of
 *    those slots is written over its origin block; the origin is synced;
 *    then a REVERT record (done) drops s's entries and frees their slots,
 *    committed before anything else may happen: the origin now holds what
 *    they held, which older shadows read through s (note 1) and s itself
 *    reads from the origin.  Bookmarks newer than s get those blocks in
 *    their maps (they were written); s's and older ones need nothing, the
 *    volume being s again.  A crash between the two records leaves begin
 *    alone at the end of the log: the next open writes the slots over the
 *    origin again (the same bytes) and applies done itself, before the
 *    volume is used.  A revert that fails part way logs abandoned instead:
 *    nothing is resumed over writes made since, and s keeps its entries.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/volume_i.h"

struct entry {
	uint64_t block;
	uint32_t slot;
};

static int cmp_slot(const void *a, const void *b)
{
	uint32_t x = ((const struct entry *)a)->slot, y = ((const struct entry *)b)->slot;
	return x < y ? -1 : x > y;
}

/* The entries of shadow @seq, malloc'd (*@out NULL when there are none). */
static int entries_of(struct vss_cow_volume *vol, uint32_t seq, struct entry **out, size_t *n)
{
	struct entry *v = NULL;
	size_t cap = 0;

	*n = 0;
	cow_rdlock(&vol->ixlock);
	for (size_t i = 0; i < vol->index.cap; i++) {
		uint64_t k = vol->index.keys[i];

		if (!k || vss_index_key_seq(k) != seq)
			continue;
		if (*n == cap) {
			struct entry *nv;

			cap = cap ? cap * 2 : 256;
			if (!(nv = realloc(v, cap * sizeof(*nv)))) {
				cow_unlock(&vol->ixlock);
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[*n].block = vss_index_key_block(k);
		v[(*n)++].slot = vol->index.slots[i];
	}
	cow_unlock(&vol->ixlock);
	*out = v;
	return 0;
}

/* Writes every slot of shadow @s over its origin block, in slot order, and
 * syncs the origin; 0 or -errno.  Gate exclusive. */
static int rewrite_origin(struct vss_cow_volume *vol, struct shadow *s)
{
	struct entry *v;
	unsigned char *buf = NULL;
	size_t n;
	int r;

	assert(cow_held_excl(&vol->gate));
	if ((r = entries_of(vol, s->seq, &v, &n)) < 0)
		return r;
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_slot);
	if (n && !(buf = malloc(vol->bs)))
		r = -ENOMEM;
	for (size_t i = 0; !r && i < n; i++) {
		uint64_t off = v[i].block << vol->bs_shift;
		uint32_t len = off + vol->bs > vol->size ? (uint32_t)(vol->size - off) : vol->bs;

		r = vol->sops->read_slot(vol->store, v[i].slot, buf, 0, len);
		if (!r)
			r = vss_file_pwrite(vol->origin, buf, len, off);
	}
	if (!r)
		r = vss_file_sync(vol->origin);
	free(buf);
	free(v);
	return r;
}

/* What a REVERT done record means: shadow @s's blocks are the origin's now.
 * With @free_slots the store gets its slots back (not during replay or
 * open, when it learns what is used afterwards).  Gate exclusive. */
static int revert_done(struct vss_cow_volume *vol, struct shadow *s, int free_slots)
{
	struct entry *v;
	uint64_t *blocks;
	size_t n;
	int r;

	assert(cow_held_excl(&vol->gate));
	if ((r = entries_of(vol, s->seq, &v, &n)) < 0)
		return r;
	blocks = malloc((n ? n : 1) * sizeof(*blocks));
	if (!blocks) {
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		blocks[i] = v[i].block;
	/* Design note 10: for bookmarks newer than s these are writes. */
	cow_bm_fold(vol, s->seq, UINT32_MAX, blocks, n);
	cow_wrlock(&vol->ixlock);
	for (size_t i = 0; i < n; i++) {
		uint32_t slot;
		int rm = vss_index_remove(&vol->index, v[i].block, s->seq, &slot);

		assert(rm == 1);
		(void)rm;
		if (free_slots)
			vol->sops->free_slot(vol->store, slot);
	}
	atomic_store(&s->owned, 0);
	cow_unlock(&vol->ixlock);
	free(blocks);
	free(v);
	cow_check(vol);
	return 0;
}

int cow_revert_replay(struct vss_cow_volume *vol, const struct vss_rec *rec)
{
	struct vss_error *err = vol->replay_err;
	struct shadow *s = cow_shadow_by_seq(vol, rec->seq, NULL);
	int r;

	assert(cow_held_excl(&vol->gate));
	if (!s || rec->flags > VSS_REVERT_ABANDONED ||
	    (rec->flags == VSS_REVERT_BEGIN) != !vol->replay_revert ||
	    (vol->replay_revert && vol->replay_revert != rec->seq) ||
	    vol->shadows[vol->nshadows - 1] != s)
		return vss_error_set(err, -EUCLEAN, "diff area is corrupt: a revert record is out "
				     "of place");
	vol->replay_revert = rec->flags == VSS_REVERT_BEGIN ? rec->seq : 0;
	if (rec->flags != VSS_REVERT_DONE)
		return 0;
	r = revert_done(vol, s, 0);
	return r ? vss_error_set(err, r, "out of memory") : 0;
}

int cow_revert_resume(struct vss_cow_volume *vol, struct vss_error *err)
{
	struct shadow *s = cow_shadow_by_seq(vol, vol->replay_revert, NULL);
	int r;

	assert(cow_held_excl(&vol->gate) && s);
	r = rewrite_origin(vol, s);
	if (r)
		return vss_error_set(err, r, "cannot finish reverting the volume to shadow seq "
				     "%u: %s", s->seq, strerror(-r));
	r = revert_done(vol, s, 0);
	if (r)
		return vss_error_set(err, r, "out of memory");
	vol->replay_revert = 0;
	return 0;
}

/* Logs a REVERT record of @s with @flags and commits it. */
static int log_revert(struct vss_cow_volume *vol, struct shadow *s, uint32_t flags)
{
	struct vss_rec rec = { .type = VSS_REC_REVERT, .seq = s->seq, .flags = flags };
	uint64_t lsn;
	int r = vol->sops->append(vol->store, &rec, &lsn);

	if (!r)
		r = vol->sops->commit(vol->store, lsn);
	if (r)
		cow_metadata_failed(vol, r);
	return r;
}

int vss_cow_revert(struct vss_cow_volume *vol, const vss_cow_id id, struct vss_error *err)
{
	struct shadow *s;
	size_t pos;
	int r;

	cow_settle(vol);
	cow_wrlock(&vol->gate);
	/* Every acknowledged write is in the origin before it is undone. */
	cow_drain(vol);
	s = cow_shadow_by_id(vol, id, &pos);
	if (!s) {
		r = vss_error_set(err, -ENOENT, "no such shadow");
		goto out;
	}
	if (s->invalid) {
		r = vss_error_set(err, -EIO, "the shadow is invalid: what the volume held then "
				  "is not all in the diff area");
		goto out;
	}
	if (vol->sops->failed(vol->store) || vol->log_stale) {
		r = vss_error_set(err, -EIO, "the diff area takes no records: it has failed or "
				  "had no room for its log when the volume was opened");
		goto out;
	}
	/* Newer shadows go, newest first: s ends up with every block written
	 * since it (design note 11). */
	while (vol->nshadows > pos + 1) {
		r = cow_delete_at(vol, vol->nshadows - 1);
		if (r) {
			vss_error_set(err, r, "cannot delete the newer shadows: %s", strerror(-r));
			goto out;
		}
	}
	if (vol->sops->failed(vol->store) || s->invalid) {
		r = vss_error_set(err, -EIO, "the diff area failed while the newer shadows were "
				  "deleted");
		goto out;
	}
	if ((r = log_revert(vol, s, VSS_REVERT_BEGIN)) != 0) {
		vss_error_set(err, r, "cannot record the revert in the diff area: %s", strerror(-r));
		goto out;
	}
	r = rewrite_origin(vol, s);
	if (r) {
		/* The volume is part old, part new; its writes are the user's
		 * from now on, so nothing may replay the revert over them. */
		log_revert(vol, s, VSS_REVERT_ABANDONED);
		vss_error_set(err, r, "the volume is partly reverted (%s); revert it again",
			      strerror(-r));
		goto out;
	}
	/* Done is committed before any write: a replay must not redo it over them. */
	if ((r = log_revert(vol, s, VSS_REVERT_DONE)) != 0) {
		vss_error_set(err, r, "cannot record the end of the revert: %s", strerror(-r));
		goto out;
	}
	if ((r = revert_done(vol, s, 1)) != 0) {
		/* Recorded but not applied here: the entries stay, reads stay exact. */
		vss_error_set(err, r, "out of memory");
		goto out;
	}
	cow_maybe_checkpoint(vol);
out:
	cow_unlock(&vol->gate);
	return r;
}
