/*
 * tests/btrfs/test_fsinfo.c - fsinfo: the mount behind a path and the
 * refusal of what no provider can shadow, on real mounts made by run.sh
 * (tmpfs, overlay, proc, ext4, FUSE, btrfs) and on a table of types.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "provider/fsinfo.h"

/* The mount point named by @var, or NULL (and a skip) when run.sh made none. */
static const char *place(const char *var)
{
	const char *p = getenv(var);

	if (!p || !*p) {
		print_message("%s is not set: this case needs run.sh's fixture\n", var);
		return NULL;
	}
	return p;
}

static void classify_table(void **state)
{
	static const struct { const char *type; enum vss_fsinfo_class cls; } t[] = {
		{ "btrfs", VSS_FSINFO_BTRFS },
		{ "ext4", VSS_FSINFO_BLOCK },
		{ "xfs", VSS_FSINFO_BLOCK },
		{ "fuseblk", VSS_FSINFO_BLOCK },
		{ "nfs", VSS_FSINFO_NETWORK },
		{ "nfs4", VSS_FSINFO_NETWORK },
		{ "cifs", VSS_FSINFO_NETWORK },
		{ "smb3", VSS_FSINFO_NETWORK },
		{ "fuse.sshfs", VSS_FSINFO_NETWORK },
		{ "fuse.rclone", VSS_FSINFO_NETWORK },
		{ "fuse", VSS_FSINFO_FUSE },
		{ "fuse.bindfs", VSS_FSINFO_FUSE },
		{ "tmpfs", VSS_FSINFO_TMPFS },
		{ "ramfs", VSS_FSINFO_TMPFS },
		{ "overlay", VSS_FSINFO_OVERLAY },
		{ "proc", VSS_FSINFO_PSEUDO },
		{ "sysfs", VSS_FSINFO_PSEUDO },
		{ "devtmpfs", VSS_FSINFO_PSEUDO },
		{ "cgroup", VSS_FSINFO_PSEUDO },
		{ "cgroup2", VSS_FSINFO_PSEUDO },
		{ "squashfs", VSS_FSINFO_OTHER },
		{ "madeupfs", VSS_FSINFO_OTHER },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum vss_fsinfo_class c = vss_fsinfo_classify(t[i].type, "none");
		if (c != t[i].cls)
			fail_msg("%s: class %s, expected %s", t[i].type,
				 vss_fsinfo_class_name(c), vss_fsinfo_class_name(t[i].cls));
	}
	/* An unknown type on a block device is taken as a block filesystem. */
	const char *dev = getenv("VSS_TEST_BTRFS_DEV");
	if (dev)
		assert_int_equal(vss_fsinfo_classify("madeupfs", dev), VSS_FSINFO_BLOCK);
}

/* The example of the issue, word for word, from a mount that is not here. */
static void message_wording(void **state)
{
	struct vss_fsinfo fi = { .fstype = "nfs4", .path = "/mnt/x", .cls = VSS_FSINFO_NETWORK };
	struct vss_error err;

	assert_int_equal(vss_fsinfo_check(&fi, NULL, &err), -EOPNOTSUPP);
	assert_string_equal(err.msg, "/mnt/x is on nfs4 (a network filesystem): take the shadow "
			    "copy on the server, or use --allow-live to read it live");
	fi.fstype = "btrfs";
	fi.cls = VSS_FSINFO_BTRFS;
	assert_int_equal(vss_fsinfo_check(&fi, NULL, &err), 0);
}

static void has_option(void **state)
{
	assert_true(vss_fsinfo_has_option("rw,flushoncommit,space_cache=v2", "flushoncommit"));
	assert_true(vss_fsinfo_has_option("rw,space_cache=v2", "space_cache"));
	assert_false(vss_fsinfo_has_option("rw,noflushoncommit", "flushoncommit"));
	assert_false(vss_fsinfo_has_option("rw,flushoncommitx", "flushoncommit"));
	assert_false(vss_fsinfo_has_option(NULL, "ro"));
}

/*
 * Probes @sub under the mount in @var: the right mount point, type, class,
 * and (for a refused class) a message naming the path, the type and each
 * of the phrases in the NULL-terminated list.
 */
static void check_mount(const char *var, const char *sub, const char *fstype,
			enum vss_fsinfo_class cls, ...)
{
	const char *mp = place(var);
	struct vss_fsinfo fi;
	struct vss_error err;
	char path[4096], shown[4200];
	const char *phrase;
	va_list ap;
	int rc;

	if (!mp)
		skip();
	snprintf(path, sizeof(path), "%s%s", mp, sub);
	vss_error_clear(&err);
	rc = vss_fsinfo_probe(path, &fi, &err);
	if (rc < 0)
		fail_msg("probe %s: %s", path, err.msg);
	assert_string_equal(fi.mount_point, mp);
	if (strcmp(fi.fstype, fstype) != 0 &&
	    !(strcmp(fstype, "fuse.*") == 0 && strncmp(fi.fstype, "fuse", 4) == 0))
		fail_msg("%s: type %s, expected %s", path, fi.fstype, fstype);
	assert_int_equal(fi.cls, cls);
	assert_true(fi.mount_id > 0);

	rc = vss_fsinfo_check(&fi, path, &err);
	if (cls == VSS_FSINFO_BTRFS || cls == VSS_FSINFO_BLOCK) {
		assert_int_equal(rc, 0);
	} else {
		assert_int_equal(rc, -EOPNOTSUPP);
		print_message("refused: %s\n", err.msg);
		snprintf(shown, sizeof(shown), "%s is on %s (", path, fi.fstype);
		if (strncmp(err.msg, shown, strlen(shown)) != 0)
			fail_msg("message does not start with \"%s\": %s", shown, err.msg);
		va_start(ap, cls);
		while ((phrase = va_arg(ap, const char *)) != NULL)
			if (!strstr(err.msg, phrase))
				fail_msg("message lacks \"%s\": %s", phrase, err.msg);
		va_end(ap);
	}
	vss_fsinfo_release(&fi);
}

static void refuses_tmpfs(void **state)
{
	check_mount("VSS_TEST_TMPFS", "/lower/l.txt", "tmpfs", VSS_FSINFO_TMPFS,
		    "memory filesystem", "btrfs", "--allow-live", NULL);
}

static void refuses_overlay(void **state)
{
	char upper[4096];
	const char *t = place("VSS_TEST_TMPFS");

	if (!t)
		skip();
	snprintf(upper, sizeof(upper), "upper directory (%s/upper)", t);
	check_mount("VSS_TEST_OVERLAY", "/l.txt", "overlay", VSS_FSINFO_OVERLAY,
		    "union of other directories", upper, "--allow-live", NULL);
}

static void refuses_proc(void **state)
{
	check_mount("VSS_TEST_PROC", "/self/status", "proc", VSS_FSINFO_PSEUDO,
		    "pseudo filesystem", "nothing to shadow", NULL);
}

static void refuses_fuse(void **state)
{
	check_mount("VSS_TEST_FUSE", "/hello", "fuse.*", VSS_FSINFO_FUSE,
		    "FUSE filesystem", "--allow-live", NULL);
}

static void refuses_fuse_remote(void **state)
{
	check_mount("VSS_TEST_FUSE_SSHFS", "/hello", "fuse.sshfs", VSS_FSINFO_NETWORK,
		    "network filesystem", "on the server", "--allow-live", NULL);
}

static void accepts_ext4(void **state)
{
	check_mount("VSS_TEST_EXT4", "", "ext4", VSS_FSINFO_BLOCK, NULL);
}

static void accepts_btrfs(void **state)
{
	/* Inside a nested subvolume (its own st_dev): still the top mount. */
	check_mount("VSS_TEST_BTRFS_TOP", "/vol/nested/n.txt", "btrfs", VSS_FSINFO_BTRFS, NULL);
	check_mount("VSS_TEST_BTRFS_VOL", "/dir", "btrfs", VSS_FSINFO_BTRFS, NULL);
}

static void missing_path(void **state)
{
	struct vss_fsinfo fi;
	struct vss_error err;

	assert_int_equal(vss_fsinfo_probe("/nonexistent/vss/path", &fi, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/vss/path"));
}

static void by_mount_id(void **state)
{
	const char *mp = place("VSS_TEST_BTRFS_TOP");
	struct vss_fsinfo a, b;
	struct vss_error err;

	if (!mp)
		skip();
	assert_int_equal(vss_fsinfo_probe(mp, &a, &err), 0);
	assert_int_equal(vss_fsinfo_by_mount_id(a.mount_id, &b, &err), 0);
	assert_string_equal(a.mount_point, b.mount_point);
	assert_string_equal(a.fs_options, b.fs_options);
	assert_true(vss_fsinfo_has_option(a.vfs_options, "nosuid"));
	assert_true(a.devno == b.devno);
	vss_fsinfo_release(&a);
	vss_fsinfo_release(&b);
	assert_int_equal(vss_fsinfo_by_mount_id(-5, &b, &err), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(classify_table),
		cmocka_unit_test(message_wording),
		cmocka_unit_test(has_option),
		cmocka_unit_test(refuses_tmpfs),
		cmocka_unit_test(refuses_overlay),
		cmocka_unit_test(refuses_proc),
		cmocka_unit_test(refuses_fuse),
		cmocka_unit_test(refuses_fuse_remote),
		cmocka_unit_test(accepts_ext4),
		cmocka_unit_test(accepts_btrfs),
		cmocka_unit_test(missing_path),
		cmocka_unit_test(by_mount_id),
	};

	return cmocka_run_group_tests_name("fsinfo", tests, NULL, NULL);
}
