/*
 * tests/service/fuzz_ext4msg.c - libFuzzer target for what the ext4
 * reader child sends vssd (svc_ext4_msg_parse) and the frames of a
 * version it sends to be copied back (svc_ext4_frame_parse): any bytes,
 * of any length, for sequence numbers 0 and the one they carry; what
 * parses must hold to the checks the parsers promise.
 *
 * Built a second time with -DVSS_EXT4MSG_SEEDS as a program that writes a
 * seed corpus (each kind of answer the child gives) into the directory it
 * is given.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "service/ext4read.h"

#ifndef VSS_EXT4MSG_SEEDS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const uint8_t *data, size_t size, uint32_t seq)
{
	struct svc_ext4_frame f;
	const uint8_t *end = data + size;

	if (svc_ext4_frame_parse(data, size, seq, &f) < 0)
		return;
	assert(size >= SVC_EXT4_FRAME_HEAD && size <= SVC_EXT4_FRAME_MAX);
	assert(!f.name_len || (f.name >= data && f.name + f.name_len <= end &&
			       !memchr(f.name, '\0', f.name_len)));
	assert(!f.data_len || (f.data >= data && f.data + f.data_len <= end));
	switch (f.kind) {
	case SVC_EXT4_ENTRY:
		assert(S_ISREG(f.mode) || S_ISDIR(f.mode) || S_ISLNK(f.mode));
		assert(!(f.mode & ~(uint32_t)(S_IFMT | 07777)));
		assert(f.name_len <= 255 && !memchr(f.name, '/', f.name_len));
		assert(f.atime_nsec < 1000000000u && f.mtime_nsec < 1000000000u);
		assert(S_ISLNK(f.mode) ? f.data_len == f.size && f.size >= 1 &&
					 f.size <= SVC_EXT4_LINK_MAX : !f.data_len);
		break;
	case SVC_EXT4_XATTR:
		assert(f.name_len >= 1 && f.name_len <= SVC_EXT4_XATTR_NAME_MAX);
		assert(f.data_len == f.size && f.size <= SVC_EXT4_XATTR_VALUE_MAX);
		break;
	case SVC_EXT4_DATA:
		assert(f.data_len >= 1 && f.data_len <= SVC_EXT4_DATA_MAX && f.size == f.data_len);
		break;
	case SVC_EXT4_POP:
		assert(!f.name_len && !f.data_len);
		break;
	case SVC_EXT4_END:
		assert(f.status >= SVC_EXT4_FOUND && f.status <= SVC_EXT4_BAD);
		assert(strlen(f.msg) < SVC_EXT4_TEXT_MAX);
		for (const char *c = f.msg; *c; c++)
			assert(*c >= 0x20 && *c < 0x7f);
		break;
	default:
		assert(0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct svc_ext4_info out;
	uint32_t seq = 0;

	if (size >= 8)
		memcpy(&seq, data + 4, 4);
	for (int i = 0; i < 2; i++, seq = 0) {
		if (svc_ext4_msg_parse(data, size, seq, &out) < 0)
			continue;
		assert(size == SVC_EXT4_MSG_LEN);
		assert(strlen(out.msg) < SVC_EXT4_TEXT_MAX);
		for (const char *c = out.msg; *c; c++)
			assert(*c >= 0x20 && *c < 0x7f);
		if (out.status == SVC_EXT4_FOUND) {
			assert(out.mtime_nsec < 1000000000u && out.size <= (uint64_t)INT64_MAX);
			assert(S_ISREG(out.mode) || S_ISDIR(out.mode) || S_ISFIFO(out.mode));
			assert(out.has_dirsig == S_ISDIR(out.mode));
		}
	}
	if (size >= 8)
		memcpy(&seq, data + 4, 4);
	for (int i = 0; i < 2; i++, seq = 0)
		check_frame(data, size, seq);
	return 0;
}
#else
int main(int argc, char **argv)
{
	struct svc_ext4_info in[] = {
		{ .seq = 1, .status = SVC_EXT4_FOUND, .mode = S_IFREG | 0644, .size = 4096,
		  .mtime_sec = 1700000000, .mtime_nsec = 5, .has_digest = true },
		{ .seq = 2, .status = SVC_EXT4_FOUND, .mode = S_IFDIR | 0755, .size = 4096,
		  .has_dirsig = true, .dirsig = 42 },
		{ .seq = 3, .status = SVC_EXT4_ABSENT },
		{ .seq = 4, .status = SVC_EXT4_MOUNT, .msg = "its journal needs recovery" },
		{ .seq = 5, .status = SVC_EXT4_BAD, .msg = "cannot open its filesystem" },
	};
	unsigned char buf[SVC_EXT4_MSG_LEN];

	if (argc != 2)
		return 2;
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		char path[4096];
		FILE *f;

		snprintf(path, sizeof(path), "%s/seed-%zu", argv[1], i);
		svc_ext4_msg_encode(&in[i], buf);
		if (!(f = fopen(path, "wb")) || fwrite(buf, sizeof(buf), 1, f) != 1)
			return 1;
		fclose(f);
	}
	{
		static unsigned char frame[SVC_EXT4_FRAME_MAX];
		static const unsigned char bytes[] = "some bytes", value[] = "blue";
		const struct svc_ext4_frame fr[] = {
			{ .kind = SVC_EXT4_ENTRY, .mode = S_IFDIR | 0755, .mtime_nsec = 3 },
			{ .kind = SVC_EXT4_ENTRY, .mode = S_IFREG | 0640, .size = 10,
			  .name = (const unsigned char *)"a", .name_len = 1 },
			{ .kind = SVC_EXT4_ENTRY, .mode = S_IFLNK | 0777, .size = 4,
			  .name = (const unsigned char *)"l", .name_len = 1,
			  .data = (const unsigned char *)"../a", .data_len = 4 },
			{ .kind = SVC_EXT4_XATTR, .name = (const unsigned char *)"user.color",
			  .name_len = 10, .data = value, .data_len = 4, .size = 4 },
			{ .kind = SVC_EXT4_DATA, .data = bytes, .data_len = 10, .size = 10 },
			{ .kind = SVC_EXT4_POP },
			{ .kind = SVC_EXT4_END, .status = SVC_EXT4_FOUND },
			{ .kind = SVC_EXT4_END, .status = SVC_EXT4_BAD, .msg = "cannot read" },
		};

		for (size_t i = 0; i < sizeof(fr) / sizeof(fr[0]); i++) {
			char path[4096];
			size_t n = svc_ext4_frame_encode(&fr[i], 7, frame);
			FILE *f;

			snprintf(path, sizeof(path), "%s/seed-frame-%zu", argv[1], i);
			if (!n || !(f = fopen(path, "wb")) || fwrite(frame, n, 1, f) != 1)
				return 1;
			fclose(f);
		}
	}
	return 0;
}
#endif
