/*
 * engine/open.c - a volume's life: open (format, replay, recovery of the
 * redo queue, the first checkpoint), checkpoints, detach and close.
 * Design note 9 (the index of notes is at the head of volume.c).
 *
 * DESIGN NOTE
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/volume_i.h"
#include "util/struct_in.h"

/* ---- checkpoint, replay, open and close ---- */

static int emit_state(void *arg)
{
	struct vss_cow_volume *vol = arg;
	struct vss_rec rec;
	uint64_t lsn;
	int r = 0;

	/* The index too: no writer adds an entry while the gate is exclusive. */
	assert(cow_held_excl(&vol->gate));
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
	/* Bookmarks last: a COPY record replayed after one would mark nothing,
	 * but their maps need the shadows' seqs known (design note 10). */
	return r ? r : cow_bm_emit(vol);
}

/* At most the bytes of records emit_state() appends. */
static uint64_t state_bytes(struct vss_cow_volume *vol)
{
	return (uint64_t)vol->index.count * 40 + (uint64_t)vol->nshadows * (64 + 24) + 24 +
	       cow_bm_bytes(vol);
}

/* Rewrites the log when deletions left it mostly garbage. Gate exclusive. */
int cow_maybe_checkpoint(struct vss_cow_volume *vol)
{
	struct vss_store_usage u;
	uint64_t live, log_bytes;
	int r;

	assert(cow_held_excl(&vol->gate));
	vol->sops->usage(vol->store, &u);
	live = vol->index.count * 32 + vol->nshadows * 64 + 64 + cow_bm_bytes(vol);
	log_bytes = u.log_slots * vol->bs;
	if (log_bytes <= 2 * live + (1u << 20))
		return 0;
	cow_drain(vol);     /* the new log holds no REDO record */
	r = vol->sops->checkpoint(vol->store, emit_state, vol, state_bytes(vol));
	/* No room for a new log on the filesystem: the old one goes on. */
	if (r && r != -ENOSPC)
		cow_metadata_failed(vol, r);
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

	assert(cow_held_excl(&vol->gate));     /* open holds it */
	/* Design note 10: the log was closed cleanly if CLOSE is its last. */
	vol->replay_clean = rec->type == VSS_REC_CLOSE;
	switch (rec->type) {
	case VSS_REC_BOOKMARK:
	case VSS_REC_BOOKMARK_DROP:
	case VSS_REC_BOOKMARK_LOST:
	case VSS_REC_BMAP:
	case VSS_REC_MARK:
		return cow_bm_replay(vol, rec);
	case VSS_REC_REVERT:
		return cow_revert_replay(vol, rec);
	case VSS_REC_CLOSE:
		return 0;
	default:
		break;
	}
	if (vol->replay_revert)
		return vss_error_set(err, -EUCLEAN, "diff area is corrupt: a record follows an "
				     "unfinished revert");
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
		s = cow_shadow_by_seq(vol, rec->seq, &pos);
		if (!s)
			return vss_error_set(err, -EUCLEAN,
					     "diff area is corrupt: a record names shadow %u, which does not exist",
					     rec->seq);
	}
	switch (rec->type) {
	case VSS_REC_SHADOW_CREATE: {
		static const vss_cow_id zero;
		if (rec->seq < vol->next_seq || rec->seq > VSS_INDEX_SEQ_MAX ||
		    !memcmp(rec->id, zero, 16) || cow_shadow_by_id(vol, rec->id, NULL) ||
		    vol->nshadows >= VSS_COW_MAX_SHADOWS)
			return vss_error_set(err, -EUCLEAN,
					     "diff area is corrupt: shadow record %u is out of order or repeated",
					     rec->seq);
		r = cow_shadow_append(vol, rec);
		return r ? vss_error_set(err, r, "out of memory") : 0;
	}
	case VSS_REC_SHADOW_DELETE:
		r = cow_shadow_remove(vol, pos, 0);
		return r ? vss_error_set(err, r, "out of memory") : 0;
	case VSS_REC_SHADOW_INVALID:
		s->invalid = 1;
		cow_recount(vol);
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
	case VSS_REC_BOOKMARK:
	case VSS_REC_BOOKMARK_DROP:
	case VSS_REC_BOOKMARK_LOST:
	case VSS_REC_BMAP:
	case VSS_REC_MARK:
	case VSS_REC_CLOSE:
	case VSS_REC_REVERT:
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
	cow_bm_release(vol);
	vss_index_release(&vol->index);
	vss_redo_log_free(&vol->replay_redo);
	pthread_mutex_destroy(&vol->fail_lock);
	cow_rwlock_destroy(&vol->gate);
	cow_rwlock_destroy(&vol->ixlock);
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
	/* Creating a shadow must not wait behind an endless stream of I/O:
	 * new readers queue behind a waiting exclusive locker. */
	cow_rwlock_init(&vol->gate, 1);
	cow_rwlock_init(&vol->ixlock, 0);
	pthread_mutex_init(&vol->fail_lock, NULL);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&vol->stripe[i], NULL);
	/* Nobody else has the volume yet, but what open does (replay, the
	 * first checkpoint) is done as the rest of the engine does it: with
	 * the gate exclusive. */
	cow_wrlock(&vol->gate);
	vol->opening = 1;
	vss_prefetch_init(&vol->prefetch, cow_prefetch_slots, vol);
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
	/* Design note 10: with the shadows as the log left them. */
	cow_bm_after_replay(vol, vol->sops->failed(vol->store));
	if (!vol->sops->failed(vol->store)) {
		/* Design note 7: acknowledged writes that may not have reached
		 * the origin.  Their slots stay taken until the checkpoint
		 * below is in force: a crash before it replays them again. */
		struct vss_redo_env env = cow_redo_env(vol);
		r = vss_redo_log_apply(&vol->replay_redo, &env, err);
		for (size_t i = vol->replay_redo.start; !r && i < vol->replay_redo.n; i++)
			if (vol->sops->mark_used(vol->store, vol->replay_redo.v[i].slot,
						 vol->replay_redo.v[i].len))
				r = vss_error_set(err, -EUCLEAN, "diff area is corrupt: slot %u is "
						  "used twice or lies past its end",
						  vol->replay_redo.v[i].slot);
		/* Design note 11: after the queue, which was older. */
		if (!r && vol->replay_revert)
			r = cow_revert_resume(vol, err);
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
			r = cow_shadow_remove(vol, i, 0);
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
		cow_recount(vol);
	} else {
		r = vol->sops->checkpoint(vol->store, emit_state, vol, state_bytes(vol));
		if (r == -ENOSPC) {
			vol->log_stale = 1;
			/* The volume must come up all the same.  The replayed log
			 * stays in force and takes no records: the shadows read
			 * as they are until the first write that needs a copy,
			 * which can only invalidate them (note 6); freeing space
			 * and opening again keeps them. */
			cow_emit(vol, VSS_COW_EV_METADATA_ERROR, NULL, r,
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
		struct vss_redo_env env = cow_redo_env(vol);
		if (vss_redo_start(&env, &vol->redo) != 0)
			vol->redo = NULL;
	}
	vol->opening = 0;
	cow_check(vol);
	cow_unlock(&vol->gate);
	*out = vol;
	return 0;
fail:
	vss_file_close(df);
	cow_unlock(&vol->gate);
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
	/* cow.h: open shadow handles must have been closed. */
	assert(atomic_load(&vol->handles) == 0);
	cow_wrlock(&vol->gate);
	cow_check(vol);
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
		/* The last record: every MARK is before it (design note 10). */
		if (!r2)
			r2 = vol->sops->append(vol->store, &(struct vss_rec){
				.type = VSS_REC_CLOSE }, &lsn);
		if (!r2)
			r2 = vol->sops->commit(vol->store, lsn);
		if (!r)
			r = r2;
	} else if (vol->sops->failed(vol->store)) {
		/* One more try to put the failure in the diff area itself. */
		vol->sops->mark_failed(vol->store);
	}       /* else the log is stale (open found no room): the old one stays in force */
	cow_unlock(&vol->gate);
	volume_free(vol);
	return r;
}

/* ---- detach (design note 9) ---- */

void vss_cow_detach(struct vss_cow_volume *vol, const char *why)
{
	cow_settle(vol);
	cow_wrlock(&vol->gate);
	/* What is queued was acknowledged: to the origin now, since the
	 * file holding its REDO records is no longer where a restart looks. */
	cow_drain(vol);
	for (size_t i = 0; i < vol->nshadows; i++)
		vol->shadows[i]->flags &= ~VSS_COW_SHADOW_PERSISTENT;
	cow_recount(vol);
	snprintf(vol->detached, sizeof(vol->detached), "%s", why);
	cow_unlock(&vol->gate);
}
