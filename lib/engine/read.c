/*
 * engine/read.c - reads: of the volume (through the redo queue), and of
 * shadows without a per-block lock, planned as few reads as the layout
 * allows and sent to the kernel as one batch, with the diff area read
 * ahead for sequential readers.  Design notes 4 and 8 (the index of notes
 * is at the head of volume.c).
 *
 * DESIGN NOTES
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
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/volume_i.h"

/* ---- the volume: the origin with the redo queue laid over it ---- */

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
	assert(cow_held(&vol->ixlock));
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

void cow_prefetch_slots(void *ctx, const struct vss_prefetch_req *rq)
{
	struct vss_cow_volume *vol = ctx;
	uint32_t slot[PREFETCH_CHUNK];
	uint64_t hinted = 0;

	for (uint64_t b = rq->first; b < rq->first + rq->count; b += PREFETCH_CHUNK) {
		uint64_t n = rq->first + rq->count - b;

		if (n > PREFETCH_CHUNK)
			n = PREFETCH_CHUNK;
		cow_rdlock(&vol->ixlock);
		for (uint64_t i = 0; i < n; i++)
			if (!vss_index_find(&vol->index, b + i, rq->seq, NULL, &slot[i]))
				slot[i] = NO_SLOT;
		cow_unlock(&vol->ixlock);
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
	cow_mutex_lock(&vol->prefetch.lock);
	done = vol->prefetch.done;
	cow_mutex_unlock(&vol->prefetch.lock);
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
	size_t n, pos, nrd = READ_STACK_BLOCKS + 4;   /* room in rd[] */
	struct shadow *s;
	int r = 0, any_origin = 0, none_owned;

	cow_settle(vol);
	cow_rdlock(&vol->gate);
	s = cow_shadow_by_seq(vol, sh->seq, &pos);
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
		nrd = nblk + nblk / (VSS_READ_IOV_MAX / 2) + 4;
		rd = malloc(nrd * sizeof(*rd) + nblk * (sizeof(*iov) + sizeof(*slot)));
		if (!rd) {
			r = -ENOMEM;
			goto out;
		}
		iov = (struct iovec *)(rd + nrd);
		slot = (uint32_t *)(iov + nblk);
	}

	/* Where each block comes from, under one hold of the index lock. */
	cow_rdlock(&vol->ixlock);
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
	cow_unlock(&vol->ixlock);
	if (any_origin && nslot)
		n = plan_reads_whole(vol, buf, off, end, first, slot, rd, iov);
	else
		n = plan_reads(vol, buf, off, end, first, slot, rd);
	assert(n <= nrd);
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
	cow_rdlock(&vol->ixlock);
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
	cow_unlock(&vol->ixlock);
	assert(n <= nblk && n <= nrd);
	r = vss_vfs_read_batch(vol->vfs, rd, n);
	if (r > 0)
		r = 0;
done:
	if (!r && s->invalid)
		r = -EIO;
	if (rd != stack_rd)
		free(rd);
out:
	cow_unlock(&vol->gate);
	return r ? r : (ssize_t)len;
}

int vss_cow_shadow_open(struct vss_cow_volume *vol, const vss_cow_id id,
			struct vss_cow_shadow **out)
{
	struct vss_cow_shadow *sh;
	struct shadow *s;

	cow_rdlock(&vol->gate);
	s = cow_shadow_by_id(vol, id, NULL);
	if (!s) {
		cow_unlock(&vol->gate);
		return -ENOENT;
	}
	sh = malloc(sizeof(*sh));
	if (!sh) {
		cow_unlock(&vol->gate);
		return -ENOMEM;
	}
	sh->vol = vol;
	sh->seq = s->seq;
	atomic_init(&sh->next_off, 0);
	atomic_init(&sh->ra_end, 0);
	atomic_init(&sh->cold, 0);
	atomic_fetch_add(&vol->handles, 1);
	cow_unlock(&vol->gate);
	*out = sh;
	return 0;
}

void vss_cow_shadow_close(struct vss_cow_shadow *sh)
{
	int was;

	if (!sh)
		return;
	was = atomic_fetch_sub(&sh->vol->handles, 1);
	assert(was > 0);
	(void)was;
	free(sh);
}
