/*
 * tests/service/fuzz_ext4msg.c - libFuzzer target for what the ext4
 * reader child sends vssd (svc_ext4_msg_parse): any bytes, of any length,
 * as an answer to sequence numbers 0 and the one they carry; what parses
 * must hold to the checks the parser promises.
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
	return 0;
}
#endif
