/*
 * tests/service/test_qcow2.c - the qcow2 image that carries an export's
 * changed-block map (service/qcow2.c), checked by qemu itself: `qemu-img
 * check` finds no error and no leak (refcounts, bitmap directory, tables),
 * `qemu-img info` lists the bitmap with its name and granularity; bad
 * extents and an existing file are refused.  Skipped (77) without qemu-img.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "service/qcow2.h"

static char dir[] = "/tmp/vss-test-qcow2-XXXXXX";

/* @cmd's standard output (at most @size - 1 bytes) and exit status. */
static int run(const char *cmd, char *out, size_t size)
{
	FILE *p = popen(cmd, "r");
	size_t n;

	assert_non_null(p);
	n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	return pclose(p);
}

static void check_image(const char *path, const char *name, uint32_t g)
{
	char cmd[512], out[16384], want[128];

	snprintf(cmd, sizeof(cmd), "qemu-img check -f qcow2 '%s' 2>&1", path);
	if (run(cmd, out, sizeof(out)) != 0)
		fail_msg("%s: %s", cmd, out);
	assert_non_null(strstr(out, "No errors were found on the image."));
	snprintf(cmd, sizeof(cmd), "qemu-img info -f qcow2 --output=json '%s'", path);
	assert_int_equal(run(cmd, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "\"name\": \"%s\"", name);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "\"granularity\": %u", g);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "\"backing-filename-format\": \"raw\""));
	assert_null(strstr(out, "in-use"));
}

static void test_small_and_sparse(void **state)
{
	struct vss_cow_extent e[] = { { 0, 16384 }, { 65536, 49152 }, { 5 << 20, 16384 },
				      { (8 << 20) - 16384, 16384 } };
	char path[128], backing[128];
	struct vss_error err;
	uint32_t g = 16384;

	(void)state;
	snprintf(path, sizeof(path), "%s/a.qcow2", dir);
	snprintf(backing, sizeof(backing), "%s/dev", dir);
	close(open(backing, O_WRONLY | O_CREAT, 0600));
	assert_int_equal(truncate(backing, 8 << 20), 0);
	assert_int_equal(svc_qcow2_bitmap_write(path, 8 << 20, backing, "base-a", &g, e, 4,
						&err), 0);
	assert_int_equal(g, 16384);
	check_image(path, "base-a", 16384);
	/* Not over an existing file. */
	assert_int_equal(svc_qcow2_bitmap_write(path, 8 << 20, backing, "b", &g, e, 4, &err),
			 -EEXIST);
	/* Nothing changed: a bitmap table of zero entries only. */
	snprintf(path, sizeof(path), "%s/empty.qcow2", dir);
	assert_int_equal(svc_qcow2_bitmap_write(path, 8 << 20, backing, "e", &g, NULL, 0,
						&err), 0);
	check_image(path, "e", 16384);
	/* A thin pool's chunk of 192 KiB: bits of 64 KiB. */
	snprintf(path, sizeof(path), "%s/chunk.qcow2", dir);
	g = 196608;
	assert_int_equal(svc_qcow2_bitmap_write(path, 8 << 20, backing, "c", &g, NULL, 0,
						&err), 0);
	assert_int_equal(g, 65536);
	check_image(path, "c", 65536);
}

static void test_large(void **state)
{
	/* 3 TiB and 4 KiB: 6145 L1 entries, 24 MiB of bitmap (385 table
	 * entries, 3 data clusters), an extent up to a size not a multiple of g. */
	uint64_t size = (3ull << 40) + 4096;
	struct vss_cow_extent e[] = { { 1ull << 30, 1ull << 30 }, { (2ull << 40), 16384 },
				      { size - 20480, 20480 } };
	char path[128];
	struct vss_error err;
	uint32_t g = 16384;

	(void)state;
	snprintf(path, sizeof(path), "%s/large.qcow2", dir);
	assert_int_equal(svc_qcow2_bitmap_write(path, size, "/dev/null", "large", &g, e, 3,
						&err), 0);
	check_image(path, "large", 16384);
}

static void test_bad(void **state)
{
	struct vss_cow_extent order[] = { { 65536, 16384 }, { 0, 16384 } };
	struct vss_cow_extent out[] = { { 0, (8 << 20) + 1 } };
	char path[128];
	struct vss_error err;
	uint32_t g = 16384;

	(void)state;
	snprintf(path, sizeof(path), "%s/bad.qcow2", dir);
	assert_int_equal(svc_qcow2_bitmap_write(path, 8 << 20, "/dev/null", "x", &g, order, 2,
						&err), -EINVAL);
	assert_int_equal(svc_qcow2_bitmap_write(path, 8 << 20, "/dev/null", "x", &g, out, 1,
						&err), -EINVAL);
	assert_non_null(strstr(err.msg, "outside"));
	assert_int_equal(access(path, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_and_sparse),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_bad),
	};
	char cmd[128];
	int rc;

	if (system("qemu-img --version >/dev/null 2>&1") != 0) {
		fprintf(stderr, "qemu-img (qemu-utils) missing: skipped\n");
		return 77;
	}
	if (!mkdtemp(dir))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
