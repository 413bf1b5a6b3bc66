/*
 * tests/service/test_ext4msg.c - the ext4 reader's answer as vssd parses
 * it (svc_ext4_msg_parse: what a child that read hostile bytes sends):
 * a well-formed answer comes back as encoded; a wrong length, magic,
 * sequence number or status, an unterminated text, a type a mount would
 * not open, nanoseconds of a second or more, a digest on a directory or a
 * directory without its entries are refused; control bytes in the text
 * are made printable.  And a directory's signature does not depend on the
 * order its entries come in, but on each of their fields.  The frames of
 * a version copied back (svc_ext4_frame_parse) come back as encoded, and
 * are refused with a wrong length, magic, sequence number or kind, a
 * name with '/' or NUL or a dot name, a device, a symlink without target
 * or with NUL in it, bytes after a file's entry, too much DATA, an
 * xattr's length that does not add up, an END without its NUL.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "service/ext4read.h"

static unsigned char buf[SVC_EXT4_MSG_LEN];

static struct svc_ext4_info file_info(void)
{
	struct svc_ext4_info in = { .seq = 7, .status = SVC_EXT4_FOUND, .mode = S_IFREG | 0640,
				    .uid = 1000, .gid = 100, .size = 12345,
				    .mtime_sec = -5, .mtime_nsec = 999999999,
				    .has_digest = true };

	memset(in.digest, 0xab, sizeof(in.digest));
	return in;
}

static void round_trip(void **state)
{
	struct svc_ext4_info in = file_info(), out;

	(void)state;
	svc_ext4_msg_encode(&in, buf);
	assert_int_equal(svc_ext4_msg_parse(buf, sizeof(buf), 7, &out), 0);
	assert_int_equal(out.status, SVC_EXT4_FOUND);
	assert_int_equal(out.mode, S_IFREG | 0640);
	assert_int_equal(out.uid, 1000);
	assert_int_equal(out.gid, 100);
	assert_int_equal(out.size, 12345);
	assert_int_equal(out.mtime_sec, -5);
	assert_int_equal(out.mtime_nsec, 999999999);
	assert_true(out.has_digest);
	assert_false(out.has_dirsig);
	assert_memory_equal(out.digest, in.digest, sizeof(in.digest));
	/* A directory with its entries' signature. */
	in = (struct svc_ext4_info){ .seq = 8, .status = SVC_EXT4_FOUND, .mode = S_IFDIR | 0755,
				     .has_dirsig = true, .dirsig = 0x1122334455667788ull };
	svc_ext4_msg_encode(&in, buf);
	assert_int_equal(svc_ext4_msg_parse(buf, sizeof(buf), 8, &out), 0);
	assert_true(out.has_dirsig);
	assert_true(out.dirsig == 0x1122334455667788ull);
}

static void refused(void **state)
{
	struct svc_ext4_info in = file_info(), out;
	unsigned char b[SVC_EXT4_MSG_LEN + 1];

	(void)state;
	svc_ext4_msg_encode(&in, b);
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN - 1, 7, &out), -EPROTO);
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN + 1, 7, &out), -EPROTO);
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN, 6, &out), -EPROTO);
	b[0] ^= 1;
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN, 7, &out), -EPROTO);
	b[0] ^= 1;
	b[8] = 4;                                       /* status */
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN, 7, &out), -EPROTO);
	b[8] = 0;
	memset(b + 88, 'x', SVC_EXT4_TEXT_MAX);        /* no NUL */
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN, 7, &out), -EPROTO);
	b[88 + SVC_EXT4_TEXT_MAX - 1] = 0;
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN, 7, &out), 0);
	in.mode = S_IFCHR | 0600;
	svc_ext4_msg_encode(&in, b);
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN, 7, &out), -EPROTO);
	in = file_info();
	in.mtime_nsec = 1000000000u;
	svc_ext4_msg_encode(&in, b);
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN, 7, &out), -EPROTO);
	in = file_info();
	in.size = (uint64_t)INT64_MAX + 1;
	svc_ext4_msg_encode(&in, b);
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN, 7, &out), -EPROTO);
	in = file_info();
	in.mode = S_IFDIR | 0755;                      /* a digest, no entries */
	svc_ext4_msg_encode(&in, b);
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN, 7, &out), -EPROTO);
	in.has_digest = false;
	svc_ext4_msg_encode(&in, b);
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN, 7, &out), -EPROTO);
	in = file_info();
	in.has_dirsig = true;                          /* entries on a file */
	svc_ext4_msg_encode(&in, b);
	assert_int_equal(svc_ext4_msg_parse(b, SVC_EXT4_MSG_LEN, 7, &out), -EPROTO);
}

static void text_made_printable(void **state)
{
	struct svc_ext4_info in = { .seq = 1, .status = SVC_EXT4_BAD }, out;

	(void)state;
	strcpy(in.msg, "bad\x1b[2Jinode\xff");
	svc_ext4_msg_encode(&in, buf);
	assert_int_equal(svc_ext4_msg_parse(buf, sizeof(buf), 1, &out), 0);
	assert_string_equal(out.msg, "bad?[2Jinode?");
}

static void dirsig_fields(void **state)
{
	char n1[] = "a", n2[] = "b";
	struct svc_dirent_sig x[2] = { { n1, S_IFREG, 3, 10, 1 }, { n2, S_IFDIR, 0, 11, 2 } };
	struct svc_dirent_sig y[2] = { x[1], x[0] };
	uint64_t h;

	(void)state;
	h = svc_dirsig(x, 2);
	assert_true(svc_dirsig(y, 2) == h);
	x[0].nsec = 2;
	assert_true(svc_dirsig(x, 2) != h);
	x[0].nsec = 1;
	x[1].type = S_IFREG;
	assert_true(svc_dirsig(x, 2) != h);
	x[1].type = S_IFDIR;
	assert_true(svc_dirsig(x, 2) == h);
	assert_true(svc_dirsig(x, 1) != h);
}

static unsigned char frame[SVC_EXT4_FRAME_MAX + 1];

static int frame_rt(const struct svc_ext4_frame *in, struct svc_ext4_frame *out)
{
	size_t n = svc_ext4_frame_encode(in, 9, frame);

	assert_true(n >= SVC_EXT4_FRAME_HEAD);
	return svc_ext4_frame_parse(frame, n, 9, out);
}

static void frames(void **state)
{
	static unsigned char big[SVC_EXT4_DATA_MAX + 1];
	struct svc_ext4_frame in = { .kind = SVC_EXT4_ENTRY, .mode = S_IFLNK | 0777, .uid = 5,
				     .gid = 6, .size = 4, .atime_sec = -1, .atime_nsec = 7,
				     .mtime_sec = 1700000000, .mtime_nsec = 999999999,
				     .name = (const unsigned char *)"link", .name_len = 4,
				     .data = (const unsigned char *)"../a", .data_len = 4 }, out;
	size_t n;

	(void)state;
	assert_int_equal(frame_rt(&in, &out), 0);
	assert_int_equal(out.kind, SVC_EXT4_ENTRY);
	assert_int_equal(out.mode, S_IFLNK | 0777);
	assert_int_equal(out.uid, 5);
	assert_int_equal(out.atime_sec, -1);
	assert_int_equal(out.mtime_nsec, 999999999);
	assert_memory_equal(out.name, "link", 4);
	assert_int_equal(out.data_len, 4);
	assert_memory_equal(out.data, "../a", 4);
	n = svc_ext4_frame_encode(&in, 9, frame);
	assert_int_equal(svc_ext4_frame_parse(frame, n, 8, &out), -EPROTO);
	assert_int_equal(svc_ext4_frame_parse(frame, n - 1, 9, &out), -EPROTO);
	assert_int_equal(svc_ext4_frame_parse(frame, SVC_EXT4_FRAME_HEAD - 1, 9, &out), -EPROTO);
	frame[0] ^= 1;
	assert_int_equal(svc_ext4_frame_parse(frame, n, 9, &out), -EPROTO);
	frame[0] ^= 1;
	frame[8] = 9;                                   /* kind */
	assert_int_equal(svc_ext4_frame_parse(frame, n, 9, &out), -EPROTO);
	in.data = (const unsigned char *)"a\0b/";       /* a NUL in the target */
	in.data_len = in.size = 4;
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in.data_len = in.size = 0;                      /* no target */
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in.data = (const unsigned char *)"../a";
	in.data_len = in.size = 4;
	in.name = (const unsigned char *)"a/b";
	in.name_len = 3;
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in.name = (const unsigned char *)"..";
	in.name_len = 2;
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in.name = (const unsigned char *)"a\0";
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in.name = (const unsigned char *)"ok";
	in.mode = S_IFCHR | 0600;
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in.mode = S_IFREG | 0600;                       /* bytes after a file's entry */
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in.data_len = 0;
	in.size = 1ull << 40;
	assert_int_equal(frame_rt(&in, &out), 0);
	in.mtime_nsec = 1000000000u;
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in = (struct svc_ext4_frame){ .kind = SVC_EXT4_DATA, .data = big,
				      .data_len = SVC_EXT4_DATA_MAX, .size = SVC_EXT4_DATA_MAX };
	assert_int_equal(frame_rt(&in, &out), 0);
	assert_int_equal(out.data_len, SVC_EXT4_DATA_MAX);
	in.data_len = in.size = SVC_EXT4_DATA_MAX + 1;
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in.data_len = 10;                               /* size says otherwise */
	in.size = 11;
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in = (struct svc_ext4_frame){ .kind = SVC_EXT4_XATTR,
				      .name = (const unsigned char *)"user.a", .name_len = 6,
				      .data = (const unsigned char *)"v", .data_len = 1, .size = 1 };
	assert_int_equal(frame_rt(&in, &out), 0);
	assert_memory_equal(out.data, "v", 1);
	in.size = 2;
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in.size = 1;
	in.name_len = 0;
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
	in = (struct svc_ext4_frame){ .kind = SVC_EXT4_POP };
	assert_int_equal(frame_rt(&in, &out), 0);
	in = (struct svc_ext4_frame){ .kind = SVC_EXT4_END, .status = SVC_EXT4_BAD,
				      .msg = "bad\x1b" };
	assert_int_equal(frame_rt(&in, &out), 0);
	assert_string_equal(out.msg, "bad?");
	n = svc_ext4_frame_encode(&in, 9, frame);
	frame[n - 1] = 'x';                             /* no NUL */
	assert_int_equal(svc_ext4_frame_parse(frame, n, 9, &out), -EPROTO);
	in.status = 4;
	assert_int_equal(frame_rt(&in, &out), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(refused),
		cmocka_unit_test(text_made_printable),
		cmocka_unit_test(dirsig_fields),
		cmocka_unit_test(frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
