/*
 * tests/unit/test_store.c - the diff-area log store: records come back in
 * order across segments and checkpoints, a torn tail is cut cleanly, and
 * damaged superblocks or head segments are refused with a message.  Format
 * versions 2 and 3: REDO and DONE records, the records of changed-block
 * tracking and revert, and which versions open; when a freed,
 * recycled or held slot may be handed out again, and what its space becomes.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/store.h"
#include "util/crc32c.h"

#define BS 4096u

static const struct vss_store_ops *ops = &vss_store_log_ops;

struct fx {
	char dir[64], path[96];
	struct vss_rec got[4096];
	size_t ngot;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/vss-test-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/diff", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct vss_file *fopen_(struct fx *f, int flags)
{
	struct vss_file *file;
	assert_int_equal(vss_vfs_posix()->open(vss_vfs_posix(), f->path, flags, &file), 0);
	return file;
}

static int collect(void *arg, const struct vss_rec *rec)
{
	struct fx *f = arg;
	if (f->ngot < 4096)
		f->got[f->ngot++] = *rec;
	return 0;
}

static void format(struct fx *f)
{
	struct vss_store_geometry geo = { .block_size = BS, .origin_size = 1 << 30,
					  .max_bytes = VSS_COW_UNBOUNDED };
	struct vss_file *file = fopen_(f, VSS_VFS_CREATE);
	assert_int_equal(ops->format(file, &geo, NULL), 0);
	vss_file_close(file);
}

static int emit_nothing(void *arg)
{
	return 0;
}

/* Opens and replays (into f->got), without the checkpoint that follows. */
static int open_only(struct fx *f, struct vss_store **st, struct vss_error *err)
{
	struct vss_store_geometry geo;
	int r = ops->open(fopen_(f, 0), &geo, st, err);
	if (r)
		return r;
	f->ngot = 0;
	r = ops->replay(*st, collect, f, err);
	if (r) {
		ops->close(*st);
		*st = NULL;
	}
	return r;
}

static int open_replay(struct fx *f, struct vss_store **st, struct vss_error *err)
{
	int r = open_only(f, st, err);
	if (!r && (r = ops->checkpoint(*st, emit_nothing, NULL, 0))) {
		ops->close(*st);
		*st = NULL;
	}
	return r;
}

static struct vss_rec copy_rec(uint64_t i)
{
	return (struct vss_rec){ .type = VSS_REC_COPY, .block = i * 3, .seq = 1, .slot = (uint32_t)i + 5 };
}

/* Takes a slot and writes @len bytes of @fill at its start; their crc. */
static uint32_t fill_new_slot(struct vss_store *st, int fill, uint32_t len, uint32_t *slot)
{
	unsigned char buf[BS];

	memset(buf, fill, len);
	assert_int_equal(ops->alloc_slot(st, slot), 0);
	assert_int_equal(ops->write_slot(st, *slot, buf, len), 0);
	return vss_crc32c(0, buf, len);
}

/* A COPY record whose slot really holds the content it names. */
static struct vss_rec copy_rec_data(struct vss_store *st, uint64_t i)
{
	struct vss_rec r = copy_rec(i);

	r.data_crc = fill_new_slot(st, (int)(i * 7 + 1), BS, &r.slot);
	return r;
}

/* A REDO record of @len bytes at @off of @block, its slot written. */
static struct vss_rec redo_rec_data(struct vss_store *st, uint64_t block, uint32_t off,
				    uint32_t len, int fill)
{
	struct vss_rec r = { .type = VSS_REC_REDO, .block = block, .off = off, .len = len };

	r.data_crc = fill_new_slot(st, fill, len, &r.slot);
	return r;
}

static uint64_t add(struct vss_store *st, struct vss_rec r)
{
	uint64_t lsn = 0;
	assert_int_equal(ops->append(st, &r, &lsn), 0);
	return lsn;
}

/* Appends a record with nothing to check behind it, and commits. */
static void add_commit(struct vss_store *st)
{
	assert_int_equal(ops->commit(st, add(st, (struct vss_rec){ .type = VSS_REC_NEXT_SEQ, .seq = 1 })), 0);
}

static uint64_t slot_pos(uint32_t slot)
{
	return 2 * 4096 + (uint64_t)slot * BS;
}

static uint64_t file_size(struct fx *f)
{
	struct stat sb;
	assert_int_equal(stat(f->path, &sb), 0);
	return (uint64_t)sb.st_size;
}

static void records_across_segments(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;
	uint64_t lsn = 0;

	format(f);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	assert_int_equal(f->ngot, 0);
	struct vss_rec c = { .type = VSS_REC_SHADOW_CREATE, .seq = 1, .flags = 1, .created_ns = 42 };
	memset(c.id, 7, 16);
	assert_int_equal(ops->append(st, &c, &lsn), 0);
	uint32_t slots[1000];
	for (uint64_t i = 0; i < 1000; i++) {   /* ~10 segments of 4 KiB */
		struct vss_rec r = copy_rec_data(st, i);
		slots[i] = r.slot;
		assert_int_equal(ops->append(st, &r, &lsn), 0);
	}
	assert_int_equal(ops->commit(st, lsn), 0);
	assert_true(ops->durable_lsn(st) >= lsn);
	ops->close(st);

	assert_int_equal(open_replay(f, &st, NULL), 0);
	assert_int_equal(f->ngot, 1001);
	assert_int_equal(f->got[0].type, VSS_REC_SHADOW_CREATE);
	assert_int_equal(f->got[0].created_ns, 42);
	assert_memory_equal(f->got[0].id, c.id, 16);
	for (uint64_t i = 0; i < 1000; i++) {
		assert_int_equal(f->got[i + 1].type, VSS_REC_COPY);
		assert_int_equal(f->got[i + 1].block, i * 3);
		assert_int_equal(f->got[i + 1].slot, slots[i]);
	}
	ops->close(st);
}

static int emit_two(void *arg)
{
	struct vss_store *st = arg;
	uint64_t lsn;
	struct vss_rec a = { .type = VSS_REC_NEXT_SEQ, .seq = 9 };
	struct vss_rec b = copy_rec(77);
	int r = ops->append(st, &a, &lsn);
	return r ? r : ops->append(st, &b, &lsn);
}

static void checkpoint_replaces_log(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;
	uint64_t lsn;

	format(f);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	for (uint64_t i = 0; i < 500; i++) {
		struct vss_rec r = copy_rec(i);
		assert_int_equal(ops->append(st, &r, &lsn), 0);
	}
	assert_int_equal(ops->commit(st, lsn), 0);
	assert_int_equal(ops->checkpoint(st, emit_two, st, 0), 0);
	ops->close(st);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	assert_int_equal(f->ngot, 2);
	assert_int_equal(f->got[0].type, VSS_REC_NEXT_SEQ);
	assert_int_equal(f->got[1].block, 77 * 3);
	/* the old log's slots were given back */
	struct vss_store_usage u;
	ops->usage(st, &u);
	assert_true(u.log_slots <= 2);
	ops->close(st);
}

static void torn_tail_is_cut(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;
	uint64_t lsn;

	format(f);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	for (uint64_t i = 0; i < 50; i++) {
		struct vss_rec r = copy_rec_data(st, i);
		assert_int_equal(ops->append(st, &r, &lsn), 0);
	}
	assert_int_equal(ops->commit(st, lsn), 0);
	ops->close(st);
	/* Damage record 31 (head segment: 40 bytes header, the open's SYNC record
	 * of 24 bytes, then 40 bytes a COPY record):
	 * as if the last flush had been torn there.  The head slot is in the
	 * current superblock (the copy with the higher sequence, byte 16). */
	int fd = open(f->path, O_RDWR);
	unsigned char sb[2][128];
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, sb[0], 128, 0), 128);
	assert_int_equal(pread(fd, sb[1], 128, 4096), 128);
	uint64_t seq0, seq1, head;
	memcpy(&seq0, sb[0] + 16, 8);
	memcpy(&seq1, sb[1] + 16, 8);
	memcpy(&head, sb[seq1 > seq0] + 48, 8);
	assert_int_equal(pwrite(fd, "XX", 2, 8192 + head * BS + 40 + 24 + 30 * 40 + 20), 2);
	close(fd);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	assert_int_equal(f->ngot, 30);
	ops->close(st);
}

/* A record may reach the disk before the slot it names; unless a SYNC
 * record vouches for it, replay checks the slot and ends the log there. */
static void unvouched_record_naming_stale_slot_is_cut(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;
	uint64_t lsn;

	format(f);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	for (uint64_t i = 0; i < 20; i++) {
		struct vss_rec r = copy_rec_data(st, i);
		if (i == 12)
			r.data_crc ^= 1;   /* as if its slot write had not reached the disk */
		assert_int_equal(ops->append(st, &r, &lsn), 0);
	}
	assert_int_equal(ops->commit(st, lsn), 0);
	ops->close(st);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	assert_int_equal(f->ngot, 12);
	ops->close(st);

	/* Vouched for by a SYNC record (a second commit carries it): kept,
	 * slot content not looked at. */
	format(f);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	for (uint64_t i = 0; i < 20; i++) {
		struct vss_rec r = copy_rec_data(st, i);
		if (i == 12)
			r.data_crc ^= 1;
		assert_int_equal(ops->append(st, &r, &lsn), 0);
	}
	assert_int_equal(ops->commit(st, lsn), 0);
	struct vss_rec n = { .type = VSS_REC_NEXT_SEQ, .seq = 3 };
	assert_int_equal(ops->append(st, &n, &lsn), 0);
	assert_int_equal(ops->commit(st, lsn), 0);
	ops->close(st);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	assert_int_equal(f->ngot, 21);
	ops->close(st);
}

static void superblock_damage(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;
	struct vss_error err;

	format(f);
	/* a torn write of one copy: the other one serves */
	int fd = open(f->path, O_RDWR);
	assert_int_equal(pwrite(fd, "garbage", 7, 60), 7);
	assert_int_equal(open_replay(f, &st, &err), 0);
	ops->close(st);
	/* both damaged: refused, with a reason */
	format(f);
	assert_int_equal(pwrite(fd, "garbage", 7, 60), 7);
	assert_int_equal(pwrite(fd, "garbage", 7, 4096 + 60), 7);
	assert_int_equal(open_replay(f, &st, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "checksum"));
	/* not ours at all */
	char zero[8192] = { 0 };
	assert_int_equal(pwrite(fd, zero, sizeof(zero), 0), (ssize_t)sizeof(zero));
	assert_int_equal(open_replay(f, &st, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "signature"));
	close(fd);
}

static void head_segment_missing(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;
	struct vss_error err;

	format(f);
	assert_int_equal(truncate(f->path, 8192), 0);
	assert_int_equal(open_replay(f, &st, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "head segment"));
	assert_int_equal(truncate(f->path, 100), 0);
	assert_int_equal(open_replay(f, &st, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "truncated"));
}

static void decode_rejects_bad_records(void **state)
{
	unsigned char buf[64] = { 0 };
	struct vss_rec r;
	assert_int_equal(vss_store_log_decode(buf, sizeof(buf), 1, &r), 0);
	buf[4] = VSS_REC_COPY;
	buf[6] = 32;
	buf[8] = 1;
	assert_int_equal(vss_store_log_decode(buf, sizeof(buf), 1, &r), -EUCLEAN); /* crc */
	buf[6] = 200;
	assert_int_equal(vss_store_log_decode(buf, sizeof(buf), 1, &r), -EUCLEAN); /* len */
	assert_int_equal(vss_store_log_decode(buf, 10, 1, &r), 0); /* too short to be one */
}

/* ---- format version 2: REDO and DONE records ---- */

/* A new diff area, opened and checkpointed (appends are allowed). */
static struct vss_store *fresh(struct fx *f)
{
	struct vss_store *st;
	format(f);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	return st;
}

static void redo_and_done_round_trip(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;

	st = fresh(f);
	struct vss_rec a = redo_rec_data(st, 0x123456789aull, 1000, 3000, 0x5c);
	uint64_t la = add(st, a);
	uint64_t ld = add(st, (struct vss_rec){ .type = VSS_REC_DONE, .block = la });
	struct vss_rec b = redo_rec_data(st, 7, 0, BS, 0xa7);
	uint64_t lb = add(st, b);
	assert_int_equal(ops->commit(st, lb), 0);
	ops->close(st);

	assert_int_equal(open_replay(f, &st, NULL), 0);
	assert_int_equal(f->ngot, 3);
	const struct vss_rec *x = &f->got[0], *d = &f->got[1], *y = &f->got[2];
	assert_int_equal(x->type, VSS_REC_REDO);
	assert_int_equal(x->block, 0x123456789aull);
	assert_int_equal(x->slot, a.slot);
	assert_int_equal(x->data_crc, a.data_crc);
	assert_int_equal(x->off, 1000);
	assert_int_equal(x->len, 3000);
	assert_int_equal(x->lsn, la);
	assert_int_equal(d->type, VSS_REC_DONE);
	assert_int_equal(d->block, la);
	assert_int_equal(d->lsn, ld);
	assert_int_equal(y->type, VSS_REC_REDO);
	assert_int_equal(y->block, 7);
	assert_int_equal(y->slot, b.slot);
	assert_int_equal(y->data_crc, b.data_crc);
	assert_int_equal(y->off, 0);
	assert_int_equal(y->len, BS);
	assert_int_equal(y->lsn, lb);
	ops->close(st);
}

/* Version 3: the records of changed-block tracking and revert come back
 * with every field; a MARK that no room is kept for is appended by
 * append_extra. */
static void tracking_records_round_trip(void **state)
{
	struct fx *f = *state;
	struct vss_store *st = fresh(f);
	struct vss_rec in[] = {
		{ .type = VSS_REC_BOOKMARK, .seq = 7, .flags = 2, .created_ns = 0x1122334455667788ull,
		  .id = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 } },
		{ .type = VSS_REC_BMAP, .seq = 7, .block = 0x40000040ull, .bits = 0x8000000000000001ull },
		{ .type = VSS_REC_MARK, .block = 0x123456789ull, .seq = 6 },
		{ .type = VSS_REC_BOOKMARK_LOST, .seq = 7, .flags = 3 },
		{ .type = VSS_REC_BOOKMARK_DROP, .seq = 7 },
		{ .type = VSS_REC_REVERT, .seq = 9, .flags = VSS_REVERT_ABANDONED },
		{ .type = VSS_REC_CLOSE },
	};
	size_t n = sizeof(in) / sizeof(in[0]);
	uint64_t lsn = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i].type == VSS_REC_MARK)
			assert_int_equal(ops->append_extra(st, &in[i], &lsn), 0);
		else
			lsn = add(st, in[i]);
	}
	assert_int_equal(ops->commit(st, lsn), 0);
	ops->close(st);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	assert_int_equal(f->ngot, n);
	for (size_t i = 0; i < n; i++) {
		const struct vss_rec *g = &f->got[i];

		assert_int_equal(g->type, in[i].type);
		assert_int_equal(g->seq, in[i].seq);
		assert_int_equal(g->flags, in[i].flags);
		assert_int_equal(g->block, in[i].block);
		assert_int_equal(g->bits, in[i].bits);
		assert_int_equal(g->created_ns, in[i].created_ns);
		assert_memory_equal(g->id, in[i].id, 16);
	}
	ops->close(st);
}

/* append_extra keeps the reserve for making room: past the maximum it says
 * -ENOSPC and the store goes on taking what it must (a DELETE record). */
static void append_extra_stops_at_the_maximum(void **state)
{
	struct fx *f = *state;
	struct vss_store *st = fresh(f);
	struct vss_store_usage u;
	uint64_t lsn = 0;
	int r = 0;

	ops->usage(st, &u);
	assert_int_equal(ops->set_max(st, u.used_bytes + 2 * BS), 0);
	for (uint64_t i = 0; i < 100000 && !r; i++)
		r = ops->append_extra(st, &(struct vss_rec){ .type = VSS_REC_MARK, .block = i }, &lsn);
	assert_int_equal(r, -ENOSPC);
	assert_false(ops->failed(st));
	assert_int_equal(ops->commit(st, add(st, (struct vss_rec){ .type = VSS_REC_SHADOW_DELETE,
								      .seq = 1 })), 0);
	ops->usage(st, &u);
	assert_true(u.used_bytes <= u.max_bytes + BS);
	ops->close(st);
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

/* Rewrites the version of both superblock copies (byte 8), and their crc. */
static void set_sb_version(struct fx *f, uint32_t version)
{
	int fd = open(f->path, O_RDWR);
	unsigned char sb[128];

	assert_true(fd >= 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pread(fd, sb, sizeof(sb), i * 4096), (ssize_t)sizeof(sb));
		put_le32(sb + 8, version);
		put_le32(sb + 124, vss_crc32c(0, sb, 124));
		assert_int_equal(pwrite(fd, sb, sizeof(sb), i * 4096), (ssize_t)sizeof(sb));
	}
	close(fd);
}

/* @n bytes at @off of the file, little-endian. */
static uint64_t file_le(struct fx *f, uint64_t off, int n)
{
	int fd = open(f->path, O_RDONLY);
	unsigned char b[8];

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, (size_t)n, (off_t)off), n);
	close(fd);
	return get_le(b, n);
}

/* A field of the current superblock (the copy with the higher sb_seq). */
static uint64_t sb_field(struct fx *f, int off, int n)
{
	int cur = file_le(f, 4096 + 16, 8) > file_le(f, 16, 8);
	return file_le(f, (uint64_t)cur * 4096 + (uint64_t)off, n);
}

static uint32_t sb_version(struct fx *f)
{
	return (uint32_t)sb_field(f, 8, 4);
}

static void superblock_versions(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;
	struct vss_error err;

	format(f);
	assert_int_equal(sb_version(f), 3);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	assert_int_equal(ops->commit(st, add(st, (struct vss_rec){ .type = VSS_REC_NEXT_SEQ, .seq = 4 })), 0);
	ops->close(st);

	/* Versions 1 (no REDO or DONE records yet) and 2 (no bookmarks) are
	 * read as they are, and written as version 3 by their first
	 * checkpoint. */
	for (uint32_t v = 1; v <= 2; v++) {
		set_sb_version(f, v);
		assert_int_equal(open_replay(f, &st, &err), 0);
		assert_int_equal(f->ngot, 1);
		assert_int_equal(f->got[0].seq, 4);
		assert_int_equal(ops->commit(st, add(st, (struct vss_rec){
			.type = VSS_REC_NEXT_SEQ, .seq = 4 })), 0);
		ops->close(st);
		assert_int_equal(sb_version(f), 3);
	}

	/* A newer format (or a nonsense one) is refused, with a reason. */
	set_sb_version(f, 4);
	assert_int_equal(open_replay(f, &st, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "version"));
	set_sb_version(f, 0);
	assert_int_equal(open_replay(f, &st, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "version"));
	set_sb_version(f, 3);
	assert_int_equal(open_replay(f, &st, &err), 0);
	ops->close(st);
}

/* REDO records are checked like COPY records, but only their len bytes:
 * a REDO record's slot may be the last thing in the file, cut short. */
static void unvouched_redo_naming_stale_slot_is_cut(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;

	for (int vouch = 0; vouch < 2; vouch++) {
		st = fresh(f);
		add(st, (struct vss_rec){ .type = VSS_REC_NEXT_SEQ, .seq = 1 });
		struct vss_rec r = redo_rec_data(st, 5, 100, 700, 0x33);
		r.data_crc ^= 1;   /* as if its slot write had not reached the disk */
		add(st, r);
		add(st, (struct vss_rec){ .type = VSS_REC_NEXT_SEQ, .seq = 2 });
		add_commit(st);
		if (vouch)          /* carries the SYNC record the first commit appended */
			add_commit(st);
		ops->close(st);
		assert_int_equal(open_replay(f, &st, NULL), 0);
		assert_int_equal(f->ngot, vouch ? 5 : 1);
		ops->close(st);
	}

	/* Its slot matches, and the file ends inside it (at the end of the
	 * REDO record's bytes): replayed, and the engine can take the slot. */
	st = fresh(f);
	uint32_t spare;
	assert_int_equal(ops->alloc_slot(st, &spare), 0);  /* below the log's slots */
	add(st, (struct vss_rec){ .type = VSS_REC_NEXT_SEQ, .seq = 1 });
	struct vss_rec r = redo_rec_data(st, 5, 100, 700, 0x33);
	add(st, r);
	add_commit(st);
	ops->close(st);
	assert_int_equal(file_size(f), slot_pos(r.slot) + 700);
	assert_int_equal(open_only(f, &st, NULL), 0);
	assert_int_equal(f->ngot, 3);
	assert_int_equal(f->got[1].type, VSS_REC_REDO);
	assert_int_equal(f->got[1].len, 700);
	assert_int_equal(ops->mark_used(st, r.slot, 700), 0);
	ops->close(st);
}

/* write_out: appended records reach the file without a commit, so they
 * survive a crash of the process (a close without commit here). */
static void write_out_survives_process_crash(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;

	st = fresh(f);
	uint64_t l = add(st, redo_rec_data(st, 3, 0, 100, 9));
	assert_int_equal(ops->write_out(st), 0);
	add(st, (struct vss_rec){ .type = VSS_REC_NEXT_SEQ, .seq = 1 });   /* not written out */
	ops->close(st);
	assert_int_equal(open_replay(f, &st, NULL), 0);
	assert_int_equal(f->ngot, 1);
	assert_int_equal(f->got[0].type, VSS_REC_REDO);
	assert_int_equal(f->got[0].lsn, l);
	ops->close(st);
}

/* ---- slot reuse ---- */

/* A freed slot comes back only once a durable SYNC record vouches for the
 * record that freed it: the commit after the one that made it durable. */
static void freed_slot_waits_for_vouching(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;
	uint32_t s;

	st = fresh(f);
	struct vss_rec c = copy_rec_data(st, 1);
	assert_int_equal(ops->commit(st, add(st, c)), 0);
	uint64_t ld = add(st, (struct vss_rec){ .type = VSS_REC_SHADOW_DELETE, .seq = 1 });
	ops->free_slot(st, c.slot);
	assert_int_equal(ops->commit(st, ld), 0);
	/* The DELETE record is durable; nothing durable says so yet. */
	assert_int_equal(ops->alloc_slot(st, &s), 0);
	assert_int_not_equal(s, c.slot);
	add_commit(st);
	/* Vouched for: the lowest free slot again. */
	assert_int_equal(ops->alloc_slot(st, &s), 0);
	assert_int_equal(s, c.slot);
	ops->close(st);

	/* At the maximum, alloc_slot makes both commits itself. */
	st = fresh(f);
	/* the two log slots, one data slot, room for the log's next segment */
	assert_int_equal(ops->set_max(st, slot_pos(4)), 0);
	c = copy_rec_data(st, 1);
	assert_int_equal(ops->commit(st, add(st, c)), 0);
	assert_int_equal(ops->alloc_slot(st, &s), -ENOSPC);
	ld = add(st, (struct vss_rec){ .type = VSS_REC_SHADOW_DELETE, .seq = 1 });
	ops->free_slot(st, c.slot);
	assert_int_equal(ops->alloc_slot(st, &s), 0);
	assert_int_equal(s, c.slot);
	assert_true(ops->durable_lsn(st) > ld);
	ops->close(st);
}

/*
 * The maximum holds for everything the diff area takes: data slots, the
 * log's segments and the pool kept for them.  With 4 KiB slots the pool
 * needs two segments whenever the current one is nearly full (LOG_SLACK is
 * more than a segment holds), and more when many slots are handed out that
 * no record names yet (concurrent first writes).  A data slot that would
 * take the total past the maximum is refused, the pool's growth counted.
 */
static void maximum_counts_the_log_pool(void **state)
{
	struct fx *f = *state;
	struct vss_store_usage u;
	struct vss_store *st;

	/* @fill small records first put the segment's end at every distance
	 * from where the data slots run out */
	for (unsigned int fill = 120; fill <= 170; fill += 2)
	for (uint32_t nmax = 10; nmax <= 14; nmax++)
	for (unsigned int unnamed = 0; unnamed <= 24; unnamed += 8) {
		const uint64_t max = slot_pos(nmax);
		unsigned int taken = 0;
		uint32_t pend[32];
		unsigned int npend = 0;

		st = fresh(f);
		assert_int_equal(ops->set_max(st, max), 0);
		for (unsigned int k = 0; k < fill; k++)
			add(st, (struct vss_rec){ .type = VSS_REC_NEXT_SEQ, .seq = k + 1 });
		for (uint64_t i = 0;; i++) {
			struct vss_rec c = copy_rec(i);
			int r = ops->alloc_slot(st, &c.slot);

			ops->usage(st, &u);
			assert_true(u.used_bytes <= max);
			if (r == -ENOSPC)
				break;
			assert_int_equal(r, 0);
			taken++;
			/* @unnamed slots at a time wait for their records */
			pend[npend++] = c.slot;
			if (npend > unnamed) {
				for (unsigned int k = 0; k < npend; k++) {
					c = copy_rec(i * 32 + k);
					c.slot = pend[k];
					add(st, c);
				}
				npend = 0;
			}
			ops->usage(st, &u);
			assert_true(u.used_bytes <= max);
		}
		/* the limit was reached by data, not by a runaway pool */
		assert_true(taken + 6 >= nmax);
		ops->close(st);
	}
}

/*
 * Slots named by COPY and REDO records of a replayed log that no SYNC record
 * vouches for stay taken until the first checkpoint, even if nothing live
 * names them: a crash before it replays that log again, which checks them.
 */
static void unvouched_slots_held_until_checkpoint(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;
	uint32_t taken[6], s;

	st = fresh(f);
	struct vss_rec cs = copy_rec_data(st, 1), cu = copy_rec_data(st, 2);
	struct vss_rec rt = redo_rec_data(st, 9, 0, 500, 0x42);
	add(st, cs);
	add(st, cu);
	add(st, rt);
	/* as if their shadow (and the write) were gone: nothing live names them */
	assert_int_equal(ops->commit(st, add(st, (struct vss_rec){ .type = VSS_REC_SHADOW_DELETE, .seq = 1 })), 0);
	ops->close(st);     /* the SYNC record the commit appended is lost */

	/* Opened, not yet checkpointed: slots taken and written now... */
	assert_int_equal(open_only(f, &st, NULL), 0);
	assert_int_equal(f->ngot, 4);
	for (int i = 0; i < 6; i++) {
		unsigned char junk[BS];
		memset(junk, 0xee, sizeof(junk));
		assert_int_equal(ops->alloc_slot(st, &taken[i]), 0);
		assert_int_equal(ops->write_slot(st, taken[i], junk, BS), 0);
	}
	ops->close(st);     /* ...and a crash before the checkpoint */
	/* The old log again, whole: none of its slots was overwritten. */
	assert_int_equal(open_only(f, &st, NULL), 0);
	assert_int_equal(f->ngot, 4);
	for (int i = 0; i < 6; i++) {
		assert_int_not_equal(taken[i], cs.slot);
		assert_int_not_equal(taken[i], cu.slot);
		assert_int_not_equal(taken[i], rt.slot);
	}

	/* The engine takes over a held slot, once; the file may end inside
	 * a REDO record's slot. */
	assert_int_equal(ops->mark_used(st, cs.slot, BS), 0);
	assert_int_equal(ops->mark_used(st, cs.slot, BS), -EUCLEAN);
	assert_int_equal(ops->mark_used(st, rt.slot, 500), 0);
	/* The checkpoint frees the rest (cu's slot), not those taken over. */
	assert_int_equal(ops->checkpoint(st, emit_nothing, NULL, 0), 0);
	int seen = 0;
	for (int i = 0; i < 16; i++) {
		assert_int_equal(ops->alloc_slot(st, &s), 0);
		assert_int_not_equal(s, cs.slot);
		assert_int_not_equal(s, rt.slot);
		seen |= s == cu.slot;
	}
	assert_true(seen);
	ops->close(st);

	/* Vouched for by a durable SYNC record: not held (not checked either). */
	st = fresh(f);
	cs = copy_rec_data(st, 1);
	add(st, cs);
	add(st, (struct vss_rec){ .type = VSS_REC_SHADOW_DELETE, .seq = 1 });
	add_commit(st);
	add_commit(st);
	ops->close(st);
	assert_int_equal(open_only(f, &st, NULL), 0);
	assert_int_equal(ops->alloc_slot(st, &s), 0);
	assert_int_equal(s, cs.slot);
	ops->close(st);
}

struct space {
	uint64_t used, allocated, size;
};

static struct space space(struct fx *f, struct vss_store *st)
{
	struct vss_store_usage u;
	ops->usage(st, &u);
	return (struct space){ u.used_bytes, u.allocated_bytes, file_size(f) };
}

/* Frees (or recycles) @n slots, written whole, and checks what became of
 * their space once they are free again. */
static void release_and_check(struct fx *f, struct vss_store *st, const uint32_t *s,
			      int n, int keep, int vouch)
{
	struct space a = space(f, st), b;

	if (vouch)
		add(st, (struct vss_rec){ .type = VSS_REC_SHADOW_DELETE, .seq = 1 });
	for (int i = 0; i < n; i++)
		(keep ? ops->recycle_slot : ops->free_slot)(st, s[i]);
	if (vouch) {
		add_commit(st);
		add_commit(st);
	}
	b = space(f, st);
	assert_int_equal(b.used, a.used - (uint64_t)n * BS);
	if (keep) {
		assert_true(b.allocated >= a.allocated);
		assert_int_equal(b.size, a.size);
	} else {
		assert_true(b.allocated + (uint64_t)n * BS <= a.allocated);
		assert_true(b.size < a.size);
	}
}

/* recycle_slot frees like free_slot, but the slot's space stays in the
 * file; free_slot cuts the file after its last used slot and punches the
 * rest. */
static void recycled_slots_keep_their_space(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;
	uint32_t s[8];

	for (int keep = 0; keep < 2; keep++) {
		st = fresh(f);
		/* one below the log's slots, the rest the top of the file */
		for (int i = 0; i < 8; i++) {
			struct vss_rec c = copy_rec_data(st, (uint64_t)i);
			s[i] = c.slot;
			add(st, c);
		}
		add_commit(st);
		release_and_check(f, st, s, 8, keep, 1);

		/* Right after a checkpoint nothing waits to be vouched for:
		 * released at once, the same way. */
		assert_int_equal(ops->checkpoint(st, emit_nothing, NULL, 0), 0);
		for (int i = 0; i < 4; i++)
			fill_new_slot(st, i + 1, BS, &s[i]);
		release_and_check(f, st, s, 4, keep, 0);
		ops->close(st);
	}
}


static void put_le64(unsigned char *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

/* A log segment (gen, index, first lsn) holding one SHADOW_DELETE record
 * of shadow 77: what a volume's user could write in a block. */
static void forge_segment(unsigned char *p, uint64_t gen, uint64_t idx, uint64_t first_lsn)
{
	memset(p, 0, BS);
	memcpy(p, "VSSL", 4);
	put_le64(p + 8, gen);
	put_le64(p + 16, idx);
	put_le64(p + 24, 0xFFFFFFFFull);        /* no next segment */
	put_le64(p + 32, first_lsn);
	put_le32(p + 4, vss_crc32c(0, p + 8, 32));
	unsigned char *r = p + 40;
	r[4] = VSS_REC_SHADOW_DELETE;
	r[6] = 24;
	put_le64(r + 8, first_lsn);
	put_le32(r + 16, 77);
	put_le32(r, vss_crc32c(0, r + 4, 20));
}

/* Takes a slot for a REDO record of @len bytes of @data, and recycles it
 * once that is over (DONE, vouched for): free again, its bytes kept. */
static uint32_t redo_and_recycle(struct vss_store *st, const unsigned char *data)
{
	struct vss_rec r = { .type = VSS_REC_REDO, .len = BS, .data_crc = vss_crc32c(0, data, BS) };

	assert_int_equal(ops->alloc_slot(st, &r.slot), 0);
	assert_int_equal(ops->write_slot(st, r.slot, data, BS), 0);
	uint64_t l = add(st, r);
	assert_int_equal(ops->commit(st, l), 0);
	add(st, (struct vss_rec){ .type = VSS_REC_DONE, .block = l });
	ops->recycle_slot(st, r.slot);
	return r.slot;
}

/*
 * A recycled REDO slot holding a forged segment (for the segment that
 * starts at @first_lsn; 0: not known yet) is taken for the log's next
 * segment by the log running into it; the log ends inside the segment
 * before it.  Returns the lsn that next segment would start at, and the
 * slot in *@slot.  (A checkpoint's log now comes from the reserved pool,
 * slots reserved before any recycling, so this setup cannot steer one
 * into the recycled slot; both take their successor through the same
 * log_take_next(), which this exercises.)
 */
static uint64_t recycled_slot_reserved_for_log(struct fx *f, uint64_t first_lsn, uint32_t *slot)
{
	struct vss_store *st = fresh(f);
	struct vss_store_usage u;
	unsigned char seg[BS];

	forge_segment(seg, sb_field(f, 56, 8), 3, first_lsn);
	*slot = redo_and_recycle(st, seg);
	add_commit(st);
	add_commit(st);                         /* vouched for: free, bytes kept */
	do {    /* fill two segments: the first successor comes from the log's
		 * reserve, the second is the lowest free slot */
		add(st, (struct vss_rec){ .type = VSS_REC_NEXT_SEQ, .seq = 1 });
		ops->usage(st, &u);
	} while (u.log_slots < 4);
	add_commit(st);
	uint64_t next = ops->durable_lsn(st) + 1;
	ops->close(st);
	return next;
}

/* The slot reserved for the log's next segment is read by every replay
 * (the chain leads there) before the log ever writes it: what a recycled
 * slot still holds must not pass for that segment. */
static void recycled_slot_never_continues_the_log(void **state)
{
	struct fx *f = *state;
	struct vss_store *st;
	uint32_t slot, again;
	uint64_t first = recycled_slot_reserved_for_log(f, 0, &slot);

	assert_int_equal(recycled_slot_reserved_for_log(f, first, &again), first);
	assert_int_equal(again, slot);
	/* the chain from the head leads to the recycled slot */
	uint64_t seg = sb_field(f, 48, 8);
	for (int i = 0; i < 8 && seg != slot; i++)
		seg = file_le(f, slot_pos((uint32_t)seg) + 24, 8);
	assert_int_equal(seg, slot);
	assert_int_equal(open_only(f, &st, NULL), 0);
	for (size_t i = 0; i < f->ngot; i++)
		assert_false(f->got[i].type == VSS_REC_SHADOW_DELETE && f->got[i].seq == 77);
	if (f->ngot)
		assert_int_equal(f->got[f->ngot - 1].lsn, first - 1);
	ops->close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(records_across_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(checkpoint_replaces_log, setup, teardown),
		cmocka_unit_test_setup_teardown(torn_tail_is_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(unvouched_record_naming_stale_slot_is_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(superblock_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(head_segment_missing, setup, teardown),
		cmocka_unit_test(decode_rejects_bad_records),
		cmocka_unit_test_setup_teardown(redo_and_done_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(tracking_records_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(append_extra_stops_at_the_maximum, setup, teardown),
		cmocka_unit_test_setup_teardown(superblock_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(unvouched_redo_naming_stale_slot_is_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(write_out_survives_process_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(freed_slot_waits_for_vouching, setup, teardown),
		cmocka_unit_test_setup_teardown(maximum_counts_the_log_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(unvouched_slots_held_until_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(recycled_slots_keep_their_space, setup, teardown),
		cmocka_unit_test_setup_teardown(recycled_slot_never_continues_the_log, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
