/*
 * engine/shadow.c - shadows taken, deleted (their blocks handed down to the
 * next older shadow) and listed, and the diff area's maximum.  Design note
 * 2 (the index of notes is at the head of volume.c).
 *
 * DESIGN NOTE
 *
 * 2. Deleting shadow s.  Each of its entries (b, s) is handed down to the
 *    next older shadow p if (b, p) is missing (p used to read it through s),
 *    otherwise freed.  Shadows older than p read through p, so they see the
 *    same bytes as before.  Replay applies a DELETE record the same way.
 *    Bookmarks newer than p (or all, without p) that s's entries spoke for
 *    get s's blocks in their maps first (design note 10, bookmark.c).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/volume_i.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Removes shadow at @pos, handing its entries down (design note 2).  With
 * @free_slots the store gets the freed slots back (not during replay, when
 * the store learns what is used only afterwards).
 */
int cow_shadow_remove(struct vss_cow_volume *vol, size_t pos, int free_slots)
{
	struct shadow *s = vol->shadows[pos];
	struct shadow *p = pos ? vol->shadows[pos - 1] : NULL;
	struct vss_index *ix = &vol->index;
	uint64_t *blocks = NULL;
	size_t n = 0, cap = 0;

	assert(cow_held_excl(&vol->gate) && pos < vol->nshadows);
	cow_wrlock(&vol->ixlock);
	for (size_t i = 0; i < ix->cap; i++) {
		uint64_t k = ix->keys[i];
		if (!k || vss_index_key_seq(k) != s->seq)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			uint64_t *nb = realloc(blocks, cap * sizeof(*nb));
			if (!nb) {
				cow_unlock(&vol->ixlock);
				free(blocks);
				return -ENOMEM;
			}
			blocks = nb;
		}
		blocks[n++] = vss_index_key_block(k);
	}
	/* owned counts the shadow's entries, all of which were just found. */
	assert(n == atomic_load(&s->owned));
	cow_unlock(&vol->ixlock);
	/* Design note 10: what the entries said of bookmarks newer than p. */
	cow_bm_fold(vol, p ? p->seq : 0, s->seq, blocks, n);
	cow_wrlock(&vol->ixlock);
	for (size_t i = 0; i < n; i++) {
		uint32_t slot;
		if (p && !vss_index_has(ix, blocks[i], p->seq)) {
			int rk = vss_index_rekey(ix, blocks[i], s->seq, p->seq);

			assert(rk == 0);
			(void)rk;
			p->owned++;
		} else {
			int rm = vss_index_remove(ix, blocks[i], s->seq, &slot);

			assert(rm == 1);
			if (rm && free_slots)
				vol->sops->free_slot(vol->store, slot);
		}
	}
	cow_unlock(&vol->ixlock);
	free(blocks);
	memmove(&vol->shadows[pos], &vol->shadows[pos + 1],
		(vol->nshadows - pos - 1) * sizeof(*vol->shadows));
	vol->nshadows--;
	free(s);
	cow_recount(vol);
	cow_check(vol);
	return 0;
}

/* Deletes the shadow at @pos with its record. Gate held exclusively. */
int cow_delete_at(struct vss_cow_volume *vol, size_t pos)
{
	struct shadow *s = vol->shadows[pos];
	struct vss_rec rec = { .type = VSS_REC_SHADOW_DELETE, .seq = s->seq };
	uint64_t lsn;
	int r;

	assert(cow_held_excl(&vol->gate));
	r = vol->sops->append(vol->store, &rec, &lsn);
	if (r) {
		cow_metadata_failed(vol, r);
	}
	r = cow_shadow_remove(vol, pos, 1);
	if (r)
		return r;
	if (!vol->sops->failed(vol->store)) {
		/* So that it cannot come back, and its slots can be reused. */
		r = vol->sops->commit(vol->store, lsn);
		if (r)
			cow_metadata_failed(vol, r);
		cow_maybe_checkpoint(vol);
	}
	return 0;
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
	cow_settle(vol);
	cow_wrlock(&vol->gate);
	/* The instant includes every write acknowledged: queued ones too. */
	cow_drain(vol);
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
	if (cow_shadow_by_id(vol, params->id, NULL)) {
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
	/* A bookmark the new shadow covers relies on the COPY records from now
	 * on: the MARK records before must be durable (design note 10). */
	if (!r && (persistent || lost_ns ||
		   (vol->bm_track > vol->newest_valid &&
		    atomic_load(&vol->mark_lsn) > vol->sops->durable_lsn(vol->store))))
		r = vol->sops->commit(vol->store, lsn);
	if (r) {
		cow_metadata_failed(vol, r);
		vss_error_set(err, r, "cannot record the shadow in the diff area: %s", strerror(-r));
		goto out;
	}
	r = cow_shadow_append(vol, &rec);
	if (r) {
		vss_error_set(err, r, "out of memory");
		goto out;
	}
	if (lost_ns) {
		vol->shadows[vol->nshadows - 1]->invalid = 1;
		cow_recount(vol);
	}
out:
	cow_unlock(&vol->gate);
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

int vss_cow_shadow_delete(struct vss_cow_volume *vol, const vss_cow_id id,
			  struct vss_error *err)
{
	size_t pos;
	int r;

	cow_wrlock(&vol->gate);
	if (!cow_shadow_by_id(vol, id, &pos)) {
		r = vss_error_set(err, -ENOENT, "no such shadow");
	} else {
		r = cow_delete_at(vol, pos);
		if (r)
			vss_error_set(err, r, "cannot delete the shadow: %s", strerror(-r));
	}
	cow_unlock(&vol->gate);
	return r;
}

int vss_cow_shadow_list(struct vss_cow_volume *vol, struct vss_cow_shadow_info **out,
			size_t *count)
{
	struct vss_cow_shadow_info *a;

	cow_settle(vol);
	cow_rdlock(&vol->gate);
	a = calloc(vol->nshadows ? vol->nshadows : 1, sizeof(*a));
	if (!a) {
		cow_unlock(&vol->gate);
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
	cow_unlock(&vol->gate);
	*out = a;
	return 0;
}

int vss_cow_set_max_diff(struct vss_cow_volume *vol, uint64_t max_bytes,
			 struct vss_error *err)
{
	struct vss_store_usage u;
	int r;

	cow_wrlock(&vol->gate);
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
		r = cow_delete_at(vol, 0);
		if (r) {
			vss_error_set(err, r, "cannot delete a shadow to fit: %s", strerror(-r));
			goto out;
		}
		cow_emit(vol, VSS_COW_EV_SHADOW_DELETED, id, 0,
			 "shadow deleted: the diff area maximum was lowered below its use");
	}
out:
	cow_unlock(&vol->gate);
	return r;
}
