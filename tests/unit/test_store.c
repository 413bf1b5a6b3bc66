/*
 * tests/unit/test_store.c - the diff-area log store: records come back in
 * order across segments and checkpoints, a torn tail is cut cleanly, and
 * damaged superblocks or head segments are refused with a message.
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

static int open_replay(struct fx *f, struct vss_store **st, struct vss_error *err)
{
	struct vss_store_geometry geo;
	int r = ops->open(fopen_(f, 0), &geo, st, err);
	if (r)
		return r;
	f->ngot = 0;
	r = ops->replay(*st, collect, f, err);
	if (!r)
		r = ops->checkpoint(*st, emit_nothing, NULL);
	if (r) {
		ops->close(*st);
		*st = NULL;
	}
	return r;
}

static struct vss_rec copy_rec(uint64_t i)
{
	return (struct vss_rec){ .type = VSS_REC_COPY, .block = i * 3, .seq = 1, .slot = (uint32_t)i + 5 };
}

/* A COPY record whose slot really holds the content it names. */
static struct vss_rec copy_rec_data(struct vss_store *st, uint64_t i)
{
	unsigned char buf[BS];
	struct vss_rec r = copy_rec(i);

	memset(buf, (int)(i * 7 + 1), sizeof(buf));
	assert_int_equal(ops->alloc_slot(st, &r.slot), 0);
	assert_int_equal(ops->write_slot(st, r.slot, buf, BS), 0);
	r.data_crc = vss_crc32c(0, buf, sizeof(buf));
	return r;
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
	assert_int_equal(ops->checkpoint(st, emit_two, st), 0);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
