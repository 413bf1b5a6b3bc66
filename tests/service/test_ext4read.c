/*
 * tests/service/test_ext4read.c - the ext4 reader child on real images
 * (mkfs.ext4 -d, debugfs): a file's type, size, mode, time (to the second:
 * the nanoseconds are compared with the kernel's in test_versions_direct.py) and SHA-256
 * as written, a directory with its entries, a missing path absent; a
 * journal that needs recovery (with a journal, the flag set by debugfs)
 * sent to the mount path; inline data and not ext4 sent to the mount path; a crafted
 * inode said to be damaged.  Needs root (the child takes nobody's uid)
 * and e2fsprogs: else skipped (77).
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
#include <openssl/sha.h>

#include "service/ext4read.h"

static char dir[] = "/tmp/vss-test-ext4read-XXXXXX";
static char img[64], src[64];

static int run(const char *cmd)
{
	char full[8192];

	snprintf(full, sizeof(full), "%s >/dev/null 2>&1", cmd);
	return system(full);
}

static void make_image(const char *extra)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd), "rm -f %s && mkfs.ext4 -q -F -b 4096 -I 256 %s -d %s %s 16M",
		 img, extra, src, img);
	assert_int_equal(run(cmd), 0);
}

static int read_path(const char *rel, uint32_t digest, struct svc_ext4_info *info)
{
	struct svc_ext4_reader *r;
	struct vss_error err;
	int fd = open(img, O_RDONLY | O_CLOEXEC), rc;

	assert_true(fd >= 0);
	assert_int_equal(svc_ext4_reader_new(rel, &r, &err), 0);
	rc = svc_ext4_reader_read(r, fd, digest, info, &err);
	if (rc < 0)
		fprintf(stderr, "reader: %s\n", err.msg);
	svc_ext4_reader_free(r);
	close(fd);
	return rc;
}

static void reads_what_was_written(void **state)
{
	static const char data[] = "the bytes of f\n";
	unsigned char want[SHA256_DIGEST_LENGTH];
	struct svc_ext4_info info;

	(void)state;
	make_image("");
	assert_int_equal(read_path("d/f", SVC_EXT4_DIGEST_ALL, &info), 0);
	assert_int_equal(info.status, SVC_EXT4_FOUND);
	assert_int_equal(info.mode, S_IFREG | 0640);
	assert_int_equal(info.size, sizeof(data) - 1);
	assert_int_equal(info.mtime_sec, 1234567890);        /* mke2fs -d keeps no ns */
	assert_true(info.has_digest);
	SHA256((const unsigned char *)data, sizeof(data) - 1, want);
	assert_memory_equal(info.digest, want, sizeof(want));
	/* No digest asked, or the file is larger than asked for. */
	assert_int_equal(read_path("d/f", SVC_EXT4_DIGEST_NONE, &info), 0);
	assert_false(info.has_digest);
	assert_int_equal(read_path("d/f", 4, &info), 0);
	assert_false(info.has_digest);
	assert_int_equal(read_path("d", SVC_EXT4_DIGEST_ALL, &info), 0);
	assert_true(S_ISDIR(info.mode) && info.has_dirsig && !info.has_digest);
	assert_int_equal(read_path("d/none", 0, &info), 0);
	assert_int_equal(info.status, SVC_EXT4_ABSENT);
	assert_int_equal(read_path("d/f/below", 0, &info), 0);
	assert_int_equal(info.status, SVC_EXT4_ABSENT);
	/* A symlink, at the end or on the way, is not followed. */
	assert_int_equal(read_path("link", 0, &info), 0);
	assert_int_equal(info.status, SVC_EXT4_ABSENT);
	assert_int_equal(read_path("link/f", 0, &info), 0);
	assert_int_equal(info.status, SVC_EXT4_ABSENT);
}

static void journal_needs_recovery(void **state)
{
	struct svc_ext4_info info;
	char cmd[4096];

	(void)state;
	make_image("");
	snprintf(cmd, sizeof(cmd), "debugfs -w -R 'feature needs_recovery' %s", img);
	assert_int_equal(run(cmd), 0);
	assert_int_equal(read_path("d/f", 0, &info), 0);
	assert_int_equal(info.status, SVC_EXT4_MOUNT);
	assert_non_null(strstr(info.msg, "journal needs recovery"));
}

static void inline_data(void **state)
{
	struct svc_ext4_info info;

	(void)state;
	make_image("-O inline_data");
	assert_int_equal(read_path("d/f", 0, &info), 0);
	assert_int_equal(info.status, SVC_EXT4_MOUNT);
	assert_non_null(strstr(info.msg, "inline data"));
}

static void not_ext4(void **state)
{
	struct svc_ext4_info info;
	char cmd[4096];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -f %s && truncate -s 16M %s", img, img);
	assert_int_equal(run(cmd), 0);
	assert_int_equal(read_path("d/f", 0, &info), 0);
	assert_int_equal(info.status, SVC_EXT4_MOUNT);
}

static void crafted_inode(void **state)
{
	struct svc_ext4_info info;
	char cmd[4096];

	(void)state;
	make_image("");
	/* f's inode: its size field set behind the checksum's back. */
	snprintf(cmd, sizeof(cmd), "debugfs -w -R 'sif d/f size 99999' %s && "
		 "debugfs -w -R 'set_inode_field d/f checksum 1' %s", img, img);
	assert_int_equal(run(cmd), 0);
	assert_int_equal(read_path("d/f", 0, &info), 0);
	assert_int_equal(info.status, SVC_EXT4_BAD);
	assert_true(info.msg[0] != '\0');
}

static int setup(void **state)
{
	char cmd[4096];

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(img, sizeof(img), "%s/img", dir);
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/d && printf 'the bytes of f\\n' > %s/d/f && "
		 "chmod 0640 %s/d/f && touch -d @1234567890.123456789 %s/d/f && "
		 "ln -s d %s/link", src, src, src, src, src);
	return run(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[4096];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return run(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reads_what_was_written),
		cmocka_unit_test(journal_needs_recovery),
		cmocka_unit_test(inline_data),
		cmocka_unit_test(not_ext4),
		cmocka_unit_test(crafted_inode),
	};

	if (geteuid() != 0 || run("command -v mkfs.ext4 && command -v debugfs") != 0) {
		fprintf(stderr, "skipped: needs root and e2fsprogs\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
