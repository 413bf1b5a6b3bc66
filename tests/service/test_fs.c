/*
 * tests/service/test_fs.c - where vssd may mount (service/fs.h): the
 * system's directories are refused, a path is opened without following a
 * symlink in any component, directories are made only where asked, and
 * vssd's private directories are refused when they are someone else's.
 * No mount here: tests/system/test_mount_safety.py mounts.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "service/fs.h"

static char dir[] = "/tmp/vss-fs-XXXXXX";

static int setup(void **state)
{
	char p[PATH_MAX];

	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/real", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/real/inner", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/link", dir);
	assert_int_equal(symlink("real", p), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void system_directories_are_refused(void **state)
{
	static const char *const refused[] = {
		"/", "/var", "/run", "/tmp", "/proc", "/proc/sys", "/sys/fs/cgroup", "/dev",
		"/dev/shm", "/etc", "/etc/ssh", "/usr", "/usr/lib/x", "/boot/efi", "/bin",
		"/sbin/x", "/lib", "/lib64", "/libx32/y", NULL,
	};
	static const char *const allowed[] = {
		"/var/lib/data", "/run/media/backup", "/tmp/vss-test", "/home/u/x", "/srv",
		"/mnt", "/etcetera", "/usrdata", "/devices", "/varx", NULL,
	};
	struct vss_error err;

	for (size_t i = 0; refused[i]; i++) {
		err.msg[0] = '\0';
		assert_int_equal(vss_fs_check_target(refused[i], &err), -EPERM);
		assert_non_null(strstr(err.msg, "refusing to mount on"));
		assert_non_null(strstr(err.msg, refused[i]));
	}
	for (size_t i = 0; allowed[i]; i++)
		assert_int_equal(vss_fs_check_target(allowed[i], NULL), 0);
}

static void symlinks_are_not_followed(void **state)
{
	char p[PATH_MAX], real[PATH_MAX], want[PATH_MAX];
	struct vss_error err;
	int fd;

	/* The symlink as the last component, and as one on the way. */
	snprintf(p, sizeof(p), "%s/link", dir);
	assert_int_equal(vss_fs_open(p, NULL, VSS_FS_OPEN_NOFOLLOW, &fd, real, &err), -ELOOP);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err.msg, "symlink"));
	snprintf(p, sizeof(p), "%s/link/inner", dir);
	assert_int_equal(vss_fs_open(p, NULL, VSS_FS_OPEN_NOFOLLOW, &fd, real, &err), -ELOOP);
	/* Made through a symlink: refused, and nothing made. */
	snprintf(p, sizeof(p), "%s/link/new", dir);
	assert_int_equal(vss_fs_open(p, NULL, VSS_FS_OPEN_NOFOLLOW | VSS_FS_OPEN_MKDIR, &fd,
				     real, &err), -ELOOP);
	snprintf(p, sizeof(p), "%s/real/new", dir);
	assert_int_equal(access(p, F_OK), -1);
	/* Without NOFOLLOW a path resolves as usual, to what it names. */
	snprintf(p, sizeof(p), "%s/link/inner", dir);
	assert_int_equal(vss_fs_open(p, NULL, 0, &fd, real, &err), 0);
	close(fd);
	snprintf(want, sizeof(want), "%s/real/inner", dir);
	assert_string_equal(real, want);
	/* "." and ".." are no symlinks: the path the kernel has comes back. */
	snprintf(p, sizeof(p), "%s/real/inner/../inner/.", dir);
	assert_int_equal(vss_fs_open(p, NULL, VSS_FS_OPEN_NOFOLLOW, &fd, real, &err), 0);
	close(fd);
	assert_string_equal(real, want);
}

static void directories_are_made_only_when_asked(void **state)
{
	char p[PATH_MAX], real[PATH_MAX];
	struct vss_error err;
	struct stat st;
	int fd;

	snprintf(p, sizeof(p), "%s/real/made", dir);
	assert_int_equal(vss_fs_open(p, NULL, VSS_FS_OPEN_NOFOLLOW, &fd, real, &err), -ENOENT);
	assert_int_equal(vss_fs_open(p, NULL, VSS_FS_OPEN_NOFOLLOW | VSS_FS_OPEN_MKDIR, &fd,
				     real, &err), 0);
	close(fd);
	assert_string_equal(real, p);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* Again: it exists, it is opened. */
	assert_int_equal(vss_fs_open(p, NULL, VSS_FS_OPEN_NOFOLLOW | VSS_FS_OPEN_MKDIR, &fd,
				     real, &err), 0);
	close(fd);
	assert_int_equal(vss_fs_rmdir(p), 0);
	assert_int_equal(stat(p, &st), -1);
	/* A symlink in its place is not removed, nor what it points to. */
	snprintf(p, sizeof(p), "%s/link", dir);
	assert_int_equal(vss_fs_rmdir(p), -ENOTDIR);
	assert_int_equal(lstat(p, &st), 0);
	snprintf(p, sizeof(p), "%s/real", dir);
	assert_int_equal(stat(p, &st), 0);
}

static void private_directories_are_their_owners(void **state)
{
	char p[PATH_MAX], real[PATH_MAX];
	int dfd, fd;
	struct stat st;

	snprintf(p, sizeof(p), "%s/real", dir);
	assert_int_equal(vss_fs_open(p, NULL, VSS_FS_OPEN_NOFOLLOW, &dfd, real, NULL), 0);
	assert_int_equal(vss_fs_private_dir(dfd, "mine", 0700, getuid(), getgid(), &fd), 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/real/mine", dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, getuid());
	/* Someone else's: refused (it is ours, so ask for another owner). */
	assert_int_equal(vss_fs_private_dir(dfd, "mine", 0700, getuid() + 1, getgid(), &fd),
			 -EPERM);
	assert_int_equal(fd, -1);
	/* Never through a symlink, never more than one component. */
	assert_int_equal(symlinkat("mine", dfd, "alias"), 0);
	assert_int_equal(vss_fs_private_dir(dfd, "alias", 0700, getuid(), getgid(), &fd),
			 -ELOOP);
	assert_int_equal(vss_fs_private_dir(dfd, "mine/x", 0700, getuid(), getgid(), &fd),
			 -EINVAL);
	assert_int_equal(vss_fs_private_dir(dfd, "..", 0700, getuid(), getgid(), &fd),
			 -EINVAL);
	close(dfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(system_directories_are_refused),
		cmocka_unit_test(symlinks_are_not_followed),
		cmocka_unit_test(directories_are_made_only_when_asked),
		cmocka_unit_test(private_directories_are_their_owners),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
