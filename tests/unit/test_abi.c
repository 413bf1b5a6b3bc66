/*
 * tests/unit/test_abi.c - the public API as a program outside the tree sees
 * it: public headers only, linked with libvss.so.0.  Option structs of
 * other sizes than the library's (an older caller, a newer one, one that
 * forgot the size), the version, and the writer states' numbers and names
 * that the protocol and doc/writers.md fix.
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

#include <vss/cow.h>
#include <vss/version.h>
#include <vss/writer.h>

struct dir {
	char path[64], origin[96], diff[96];
};

static void dir_make(struct dir *d)
{
	int fd;

	snprintf(d->path, sizeof(d->path), "/tmp/vss-test-abi-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	snprintf(d->origin, sizeof(d->origin), "%s/origin", d->path);
	snprintf(d->diff, sizeof(d->diff), "%s/diff", d->path);
	fd = open(d->origin, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
}

static void dir_remove(struct dir *d)
{
	unlink(d->diff);
	unlink(d->origin);
	rmdir(d->path);
}

/* A caller built against a newer header: one member more. */
struct newer_cow_config {
	struct vss_cow_config c;
	uint64_t added;
};

static void cow_config_of_other_sizes(void **state)
{
	struct newer_cow_config newer = { .c = VSS_COW_CONFIG_INIT };
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_cow_volume *vol;
	struct vss_error err = { 0 };
	struct stat st;
	struct dir d;

	(void)state;
	dir_make(&d);
	/* The size was not set (a struct not from VSS_COW_CONFIG_INIT). */
	cfg.size = 0;
	assert_int_equal(vss_cow_open(d.origin, d.diff, &cfg, VSS_COW_CREATE, &vol, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "sizeof(struct vss_cow_config)"));
	cfg.size = offsetof(struct vss_cow_config, max_diff_bytes);
	assert_int_equal(vss_cow_open(d.origin, d.diff, &cfg, VSS_COW_CREATE, &vol, &err),
			 -EINVAL);
	/* A member this library does not know, set: refused, nothing made. */
	newer.c.size = sizeof(newer);
	newer.added = 1;
	assert_int_equal(vss_cow_open(d.origin, d.diff, &newer.c, VSS_COW_CREATE, &vol, &err),
			 -E2BIG);
	assert_non_null(strstr(err.msg, VSS_VERSION));
	assert_int_equal(stat(d.diff, &st), -1);
	/* The same member left zero: the newer caller asked nothing new. */
	newer.added = 0;
	newer.c.block_size = 8192;
	assert_int_equal(vss_cow_open(d.origin, d.diff, &newer.c, VSS_COW_CREATE, &vol, &err),
			 0);
	assert_int_equal(vss_cow_block_size(vol), 8192);
	assert_int_equal(vss_cow_close(vol), 0);
	dir_remove(&d);
}

struct newer_writer_options {
	struct vss_writer_options o;
	void *added;
};

struct newer_writer_handlers {
	struct vss_writer_handlers h;
	vss_writer_handler added;
};

static int nothing(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	(void)w, (void)ev, (void)data;
	return 0;
}

static void writer_structs_of_other_sizes(void **state)
{
	struct newer_writer_options newer = { .o = VSS_WRITER_OPTIONS_INIT };
	struct newer_writer_handlers hn = { .h = { .size = sizeof(hn) } };
	struct vss_writer_options o = VSS_WRITER_OPTIONS_INIT;
	struct vss_writer_handlers h = { .size = sizeof(h), .freeze = nothing };
	struct vss_writer *w = NULL;
	struct vss_error err = { 0 };
	struct vss_wmd *wmd;
	struct dir d;

	(void)state;
	dir_make(&d);      /* a run directory where no vssd listens */
	o.run_dir = newer.o.run_dir = d.path;
	assert_int_equal(vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = "abi", .class_id = "6f1a2b3c-0000-4000-8000-000000000001",
		.instance_id = "6f1a2b3c-0000-4000-8000-000000000002",
		.usage = VSS_UT_USER_DATA, .source = VSS_ST_OTHER }, &wmd, &err), 0);

	/* Sizes checked before anything is tried. */
	o.size = 0;
	assert_int_equal(vss_writer_open(&o, wmd, &h, NULL, &w, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "sizeof(struct vss_writer_options)"));
	o.size = sizeof(o);
	h.size = 0;
	assert_int_equal(vss_writer_open(&o, wmd, &h, NULL, &w, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "sizeof(struct vss_writer_handlers)"));
	h.size = sizeof(h);
	newer.o.size = sizeof(newer);
	newer.added = &newer;
	assert_int_equal(vss_writer_open(&newer.o, wmd, &h, NULL, &w, &err), -E2BIG);
	hn.added = nothing;
	assert_int_equal(vss_writer_open(&o, wmd, &hn.h, NULL, &w, &err), -E2BIG);
	assert_null(w);

	/* Accepted: then the library looks for vssd, which is not there. */
	assert_int_equal(vss_writer_open(&o, wmd, &h, NULL, &w, &err), -ENOENT);
	newer.added = NULL;
	hn.added = NULL;
	assert_int_equal(vss_writer_open(&newer.o, wmd, &hn.h, NULL, &w, &err), -ENOENT);
	assert_int_equal(vss_writer_open(NULL, wmd, NULL, NULL, &w, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "cannot reach vssd"));
	vss_wmd_free(wmd);
	dir_remove(&d);
}

static void version(void **state)
{
	char v[32];

	(void)state;
	assert_string_equal(vss_version(), VSS_VERSION);
	assert_int_equal(vss_version_number(), VSS_VERSION_NUMBER);
	snprintf(v, sizeof(v), "%d.%d.%d", VSS_VERSION_MAJOR, VSS_VERSION_MINOR,
		 VSS_VERSION_PATCH);
	assert_string_equal(v, VSS_VERSION);
}

/* The numbers and names of doc/writers.md, which the protocol carries. */
static void writer_states_and_failures(void **state)
{
	static const char *const names[] = {
		"unknown", "stable", "waiting_for_freeze", "waiting_for_thaw",
		"waiting_for_post_snapshot", "waiting_for_backup_complete",
		"failed_at_identify", "failed_at_prepare_backup",
		"failed_at_prepare_snapshot", "failed_at_freeze", "failed_at_thaw",
		"failed_at_post_snapshot", "failed_at_backup_complete",
		"failed_at_pre_restore", "failed_at_post_restore",
		"failed_at_backup_shutdown",
	};

	(void)state;
	assert_int_equal(VSS_WS_STABLE, 1);
	assert_int_equal(VSS_WS_WAITING_FOR_BACKUP_COMPLETE, 5);
	assert_int_equal(VSS_WS_FAILED_AT_FREEZE, 9);
	assert_int_equal(VSS_WS_MAX, 15);
	for (int s = 0; s <= VSS_WS_MAX; s++)
		assert_string_equal(vss_writer_state_name((enum vss_writer_state)s), names[s]);
	assert_null(vss_writer_state_name((enum vss_writer_state)(VSS_WS_MAX + 1)));
	assert_null(vss_writer_state_name((enum vss_writer_state)-1));

	assert_string_equal(vss_writer_failure_name(VSS_WF_NONE), "");
	assert_string_equal(vss_writer_failure_name(VSS_WF_TIMEOUT), "timeout");
	assert_null(vss_writer_failure_name((enum vss_writer_failure)(VSS_WF_MAX + 1)));
	for (int k = VSS_WF_NONE; k <= VSS_WF_MAX; k++)
		assert_int_equal(vss_writer_failure_from_name(
			vss_writer_failure_name((enum vss_writer_failure)k)), k);
	assert_int_equal(vss_writer_failure_from_name(NULL), VSS_WF_NONE);
	assert_int_equal(vss_writer_failure_from_name("out_of_resources"),
			 VSS_WF_OUT_OF_RESOURCES);
	assert_int_equal(vss_writer_failure_from_name("Timeout"), -EINVAL);
	/* The restore side's kinds and the file restore statuses
	 * (VSS_FILE_RESTORE_STATUS's numbers, and ours after them). */
	assert_int_equal(VSS_WF_RECOVERY_FAILED, 6);
	assert_int_equal(VSS_WF_PARTIAL_FAILURE, 7);
	assert_string_equal(vss_writer_failure_name(VSS_WF_RECOVERY_FAILED), "recovery_failed");
	assert_string_equal(vss_writer_failure_name(VSS_WF_PARTIAL_FAILURE), "partial_failure");
	assert_int_equal(VSS_RS_NONE, 1);
	assert_int_equal(VSS_RS_ALL, 2);
	assert_int_equal(VSS_RS_FAILED, 3);
	assert_int_equal(VSS_RS_STAGED, 4);
	for (int k = VSS_RS_UNDEFINED; k <= VSS_RS_MAX; k++)
		assert_int_equal(vss_file_restore_status_from_name(
			vss_file_restore_status_name((enum vss_file_restore_status)k)), k);
	assert_string_equal(vss_file_restore_status_name(VSS_RS_STAGED), "staged");
	assert_null(vss_file_restore_status_name((enum vss_file_restore_status)(VSS_RS_MAX + 1)));
	assert_int_equal(vss_file_restore_status_from_name("All"), -EINVAL);
	assert_int_equal(vss_file_restore_status_from_name(NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cow_config_of_other_sizes),
		cmocka_unit_test(writer_structs_of_other_sizes),
		cmocka_unit_test(version),
		cmocka_unit_test(writer_states_and_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
