/*
 * tests/service/test_versions.c - what makes a shadow's version of a path
 * the next newer one's without a mount (svc_versions_same_bytes): two
 * copies of an ext4 volume's first 16 KiB are the same if they differ only
 * in the superblock fields a freeze rewrites, and not if anything else
 * differs, in the superblock or beside it, or if it is not ext4.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "service/versions.h"

#define LEN 16384

static unsigned char a[LEN], b[LEN];

/* Two equal first blocks of an ext4 volume, with some content. */
static void ext4_pair(void)
{
	for (size_t i = 0; i < LEN; i++)
		a[i] = (unsigned char)(i * 7 + 3);
	a[1080] = 0x53;
	a[1081] = 0xef;
	memcpy(b, a, LEN);
}

static void put32(unsigned char *p, size_t at, uint32_t v)
{
	memcpy(p + at, &v, sizeof(v));
}

static void volatile_fields_pass(void **state)
{
	(void)state;
	ext4_pair();
	assert_true(svc_versions_same_bytes(a, b, 0, LEN));
	ext4_pair();
	put32(b, 1024 + 0x30, 123456);                  /* s_wtime */
	put32(b, 1024 + 0x178, 99);                     /* s_kbytes_written */
	put32(b, 1024 + 0x3fc, 0xdeadbeef);             /* s_checksum */
	put32(b, 1024 + 0x0c, 7);                       /* s_free_blocks_count_lo */
	assert_true(svc_versions_same_bytes(a, b, 0, LEN));
}

static void anything_else_counts(void **state)
{
	static const size_t at[] = { 1024 + 0x04, 1024 + 0x18, 1024 + 0x78, 1024 + 0x60,
				     1024 + 0x3a, 1024 + 0x2b, 1024 + 0x38, 1024 + 0x3fb,
				     4096 + 0x0c, 100, LEN - 1 };

	(void)state;
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		ext4_pair();
		put32(b, 1024 + 0x30, 1);               /* with a volatile one too */
		b[at[i]] ^= 0x40;
		assert_false(svc_versions_same_bytes(a, b, 0, LEN));
	}
}

static void only_ext4(void **state)
{
	(void)state;
	ext4_pair();
	a[1080] = b[1080] = 0;
	b[1024 + 0x30] ^= 1;
	assert_false(svc_versions_same_bytes(a, b, 0, LEN));
	/* Bytes that start past the superblock: compared as they are. */
	ext4_pair();
	assert_true(svc_versions_same_bytes(a + 4096, b + 4096, 4096, LEN - 4096));
	b[5000] ^= 1;
	assert_false(svc_versions_same_bytes(a + 4096, b + 4096, 4096, LEN - 4096));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(volatile_fields_pass),
		cmocka_unit_test(anything_else_counts),
		cmocka_unit_test(only_ext4),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
