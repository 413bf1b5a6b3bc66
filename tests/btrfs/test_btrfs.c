/*
 * tests/btrfs/test_btrfs.c - the btrfs provider on a real btrfs made by
 * run.sh: probe, snapshots and what nested subvolumes become in them, mount
 * options exactly as before (after success, failure, and when the user had
 * flushoncommit on), recovery of an option left on by a dead process,
 * listing and cleanup of orphans, and the measurement behind not using
 * FIFREEZE on btrfs.
 *
 * Layout (run.sh): TOP = the top level, mounted nosuid,nodev,noatime,
 * compress=zstd:1; TOP/vol (a.txt, dir/b.txt), TOP/vol/nested (n.txt),
 * TOP/vol/nested/deeper, TOP/vol/dir/inner, TOP/other (o.txt), TOP/busy are
 * subvolumes; VOL = TOP/vol mounted with subvol=vol; RO = a read-only bind
 * of TOP/other; BIND = a bind of the plain directory TOP/vol/dir.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrfsutil.h>
#include <cmocka.h>
#include <linux/fs.h>

#include "provider/btrfs/btrfs.h"

static const char *TOP, *VOL, *RO, *BIND;

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	assert_non_null(s);
	return s;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f)
		return NULL;
	do {
		if (n + 4096 + 1 > cap) {
			cap = (cap + 4096) * 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		r = fread(buf + n, 1, 4096, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* Every /proc/self/mountinfo line of the superblock @dev, in order. */
static char *mountinfo_of(dev_t dev)
{
	char *all = slurp("/proc/self/mountinfo"), *out, *line, *save = NULL;
	char want[32];
	size_t len = 0;

	assert_non_null(all);
	out = calloc(1, strlen(all) + 1);
	assert_non_null(out);
	snprintf(want, sizeof(want), " %u:%u ", major(dev), minor(dev));
	for (line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, want)) {
			len += (size_t)sprintf(out + len, "%s\n", line);
		}
	}
	free(all);
	return out;
}

static dev_t top_dev(void)
{
	struct vss_fsinfo fi;
	struct vss_error err;
	dev_t d;

	assert_int_equal(vss_fsinfo_probe(TOP, &fi, &err), 0);
	d = fi.devno;
	vss_fsinfo_release(&fi);
	return d;
}

static bool flush_on(void)
{
	char *mi = mountinfo_of(top_dev());
	bool on = strstr(mi, ",flushoncommit") != NULL;

	free(mi);
	return on;
}

/* The test's own way to switch the option (as a user or a dead vss would). */
static void set_flush(bool on)
{
	int fd = fspick(AT_FDCWD, TOP, FSPICK_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fsconfig(fd, FSCONFIG_SET_FLAG, on ? "flushoncommit" : "noflushoncommit",
				  NULL, 0), 0);
	assert_int_equal(fsconfig(fd, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0), 0);
	close(fd);
	assert_int_equal(flush_on(), on);
}

static struct vss_btrfs_snapshot_params params(unsigned set, unsigned shadow, bool persistent)
{
	struct vss_btrfs_snapshot_params p;

	memset(&p, 0, sizeof(p));
	memset(p.set_id, 0x5e, 16);
	memset(p.shadow_id, 0xa0, 16);
	p.set_id[15] = (unsigned char)set;
	p.shadow_id[15] = (unsigned char)shadow;
	p.persistent = persistent;
	return p;
}

/* Prepare + commit, failing the test on error. */
static struct vss_btrfs_snapshot *take(const char *path, unsigned set, unsigned shadow,
				       bool persistent)
{
	struct vss_btrfs_snapshot_params p = params(set, shadow, persistent);
	struct vss_btrfs_snapshot *s;
	struct vss_error err;

	vss_error_clear(&err);
	if (vss_btrfs_snapshot_prepare(path, &p, &s, &err) < 0)
		fail_msg("prepare %s: %s", path, err.msg);
	if (vss_btrfs_snapshot_commit(s, &err) < 0)
		fail_msg("commit %s: %s", path, err.msg);
	return s;
}

static void drop(struct vss_btrfs_snapshot *s)
{
	struct vss_error err;

	if (vss_btrfs_delete(vss_btrfs_snapshot_path(s), &err) < 0)
		fail_msg("delete: %s", err.msg);
	vss_btrfs_snapshot_free(s);
}

static void assert_file(const char *path, const char *content)
{
	char *c = slurp(path);

	if (!c)
		fail_msg("%s: %s", path, strerror(errno));
	assert_string_equal(c, content);
	free(c);
}

static bool is_empty_dir(const char *path)
{
	char *cmd = fmt("test -d '%s' && test -z \"$(ls -A '%s')\"", path, path);
	int rc = system(cmd);

	free(cmd);
	return rc == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- probe ---- */

static void probe_paths(void **state)
{
	struct vss_btrfs_info in;
	struct vss_error err;
	uint64_t id;
	char *p;

	p = fmt("%s/vol/dir/b.txt", TOP);
	assert_int_equal(vss_btrfs_probe(p, &in, &err), 0);
	free(p);
	assert_string_equal(in.fs.mount_point, TOP);
	p = fmt("%s/vol", TOP);
	assert_string_equal(in.subvol_root, p);
	assert_int_equal(btrfs_util_subvolume_id(p, &id), BTRFS_UTIL_OK);
	assert_int_equal(in.subvol_id, id);
	free(p);
	assert_string_equal(in.rel_path, "dir/b.txt");
	assert_string_equal(in.subvol_path, "vol");
	assert_int_equal(in.n_nested, 0);
	vss_btrfs_info_release(&in);

	/* The whole subvolume: its nested subvolumes, at any depth. */
	p = fmt("%s/vol", TOP);
	assert_int_equal(vss_btrfs_probe(p, &in, &err), 0);
	free(p);
	assert_string_equal(in.rel_path, "");
	assert_int_equal(in.n_nested, 3);
	qsort(in.nested, in.n_nested, sizeof(char *), cmp_str);
	assert_string_equal(in.nested[0], "dir/inner");
	assert_string_equal(in.nested[1], "nested");
	assert_string_equal(in.nested[2], "nested/deeper");
	assert_null(in.nested[3]);
	vss_btrfs_info_release(&in);

	/* A directory inside it: only what is below, relative to it. */
	p = fmt("%s/vol/dir", TOP);
	assert_int_equal(vss_btrfs_probe(p, &in, &err), 0);
	free(p);
	assert_int_equal(in.n_nested, 1);
	assert_string_equal(in.nested[0], "inner");
	vss_btrfs_info_release(&in);

	/* A file in a nested subvolume belongs to that subvolume. */
	p = fmt("%s/vol/nested/n.txt", TOP);
	assert_int_equal(vss_btrfs_probe(p, &in, &err), 0);
	free(p);
	assert_string_equal(in.subvol_path, "vol/nested");
	assert_string_equal(in.rel_path, "n.txt");
	vss_btrfs_info_release(&in);

	/* Through the subvol=vol mount. */
	p = fmt("%s/dir/b.txt", VOL);
	assert_int_equal(vss_btrfs_probe(p, &in, &err), 0);
	free(p);
	assert_string_equal(in.fs.mount_point, VOL);
	assert_string_equal(in.subvol_root, VOL);
	assert_string_equal(in.rel_path, "dir/b.txt");
	assert_string_equal(in.subvol_path, "vol");
	vss_btrfs_info_release(&in);
}

static void probe_refusals(void **state)
{
	struct vss_btrfs_snapshot_params p = params(1, 1, false);
	struct vss_btrfs_snapshot *s;
	struct vss_btrfs_info in;
	struct vss_error err;
	char *path;

	/* A read-only mount: nothing can change, nothing to snapshot. */
	assert_int_equal(vss_btrfs_snapshot_prepare(RO, &p, &s, &err), -EROFS);
	assert_non_null(strstr(err.msg, "read-only"));
	assert_null(s);

	/* A bind of a plain directory: the subvolume root is out of sight. */
	path = fmt("%s/b.txt", BIND);
	assert_int_equal(vss_btrfs_probe(path, &in, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "not visible"));
	free(path);

	/* Not btrfs at all. */
	assert_int_equal(vss_btrfs_probe("/proc/self", &in, &err), -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "is on proc"));

	/* IDs are required. */
	memset(&p, 0, sizeof(p));
	assert_int_equal(vss_btrfs_snapshot_prepare(TOP, &p, &s, &err), -EINVAL);
}

/* ---- snapshots ---- */

static void snapshot_basic(void **state)
{
	char *target = fmt("%s/vol/dir", TOP), *dir = fmt("%s/.vss-snapshots", TOP), *p;
	struct vss_btrfs_snapshot *s = take(target, 1, 1, false);
	const char *sp = vss_btrfs_snapshot_path(s);
	struct vss_btrfs_snapshot_params pp = params(9, 9, false);
	struct vss_btrfs_snapshot *s2;
	struct vss_error err;
	struct stat st;
	bool ro = false;

	/* Where it is: documented name, hidden directory, closed to others. */
	p = fmt("%s/vss.5e5e5e5e-5e5e-5e5e-5e5e-5e5e5e5e5e01.a0a0a0a0-a0a0-a0a0-a0a0-a0a0a0a0a001"
		".temporary", dir);
	assert_string_equal(sp, p);
	free(p);
	p = fmt("%s/dir", sp);
	assert_string_equal(vss_btrfs_snapshot_target(s), p);
	free(p);
	assert_int_equal(lstat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(btrfs_util_is_subvolume(dir), BTRFS_UTIL_OK);

	/* What it holds: read-only, the target's contents. */
	assert_int_equal(btrfs_util_get_subvolume_read_only(sp, &ro), BTRFS_UTIL_OK);
	assert_true(ro);
	p = fmt("%s/b.txt", vss_btrfs_snapshot_target(s));
	assert_file(p, "beta\n");
	assert_true(open(p, O_WRONLY) < 0 && errno == EROFS);
	free(p);
	assert_true(vss_btrfs_snapshot_stats(s)->switched);

	/* Nested subvolumes are not in it: empty directories stand in for them. */
	p = fmt("%s/nested", sp);
	assert_true(is_empty_dir(p));
	free(p);
	p = fmt("%s/dir/inner", sp);
	assert_true(is_empty_dir(p));
	free(p);
	p = fmt("%s/a.txt", sp);
	assert_file(p, "alpha\n");
	free(p);

	/* Later changes do not reach it. */
	p = fmt("%s/vol/dir/b.txt", TOP);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("changed\n", f);
	fclose(f);
	free(p);
	p = fmt("%s/b.txt", vss_btrfs_snapshot_target(s));
	assert_file(p, "beta\n");
	free(p);

	/* A target inside a snapshot is refused. */
	assert_int_equal(vss_btrfs_snapshot_prepare(vss_btrfs_snapshot_target(s), &pp, &s2, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, ".vss-snapshots"));

	/* Committing twice is an error; deleting removes it. */
	assert_int_equal(vss_btrfs_snapshot_commit(s, &err), -EINVAL);
	p = strdup(sp);
	drop(s);
	assert_true(access(p, F_OK) < 0 && errno == ENOENT);
	free(p);

	p = fmt("%s/vol/dir/b.txt", TOP);
	f = fopen(p, "w");
	fputs("beta\n", f);
	fclose(f);
	free(p);
	free(target);
	free(dir);
}

/* Snapshotting a nested subvolume on its own gives its contents. */
static void snapshot_nested_itself(void **state)
{
	char *target = fmt("%s/vol/nested", TOP), *p;
	struct vss_btrfs_snapshot *s = take(target, 2, 1, false);

	p = fmt("%s/n.txt", vss_btrfs_snapshot_target(s));
	assert_file(p, "nested\n");
	free(p);
	p = fmt("%s/deeper", vss_btrfs_snapshot_path(s));
	assert_true(is_empty_dir(p));
	free(p);
	drop(s);
	free(target);
}

static void snapshot_subvol_mount(void **state)
{
	char *target = fmt("%s/a.txt", VOL), *p;
	struct vss_btrfs_snapshot *s = take(target, 3, 1, true), *s2;
	struct vss_btrfs_info in;
	struct vss_error err;

	/* Kept at the root of the mount that holds the target. */
	p = fmt("%s/.vss-snapshots/", VOL);
	assert_memory_equal(vss_btrfs_snapshot_path(s), p, strlen(p));
	free(p);
	assert_non_null(strstr(vss_btrfs_snapshot_path(s), ".persistent"));
	assert_file(vss_btrfs_snapshot_target(s), "alpha\n");

	/* That directory is a subvolume inside vol: not a nested subvolume the
	 * probe reports, and an empty directory in a snapshot of vol. */
	assert_int_equal(vss_btrfs_probe(VOL, &in, &err), 0);
	for (size_t i = 0; i < in.n_nested; i++)
		assert_null(strstr(in.nested[i], ".vss-snapshots"));
	assert_int_equal(in.n_nested, 3);
	vss_btrfs_info_release(&in);
	p = fmt("%s/vol", TOP);
	s2 = take(p, 3, 2, false);
	free(p);
	p = fmt("%s/.vss-snapshots", vss_btrfs_snapshot_path(s2));
	assert_true(is_empty_dir(p));
	free(p);
	drop(s2);
	drop(s);
	free(target);
}

/* ---- mount options ---- */

static char *lock_file(void)
{
	struct vss_btrfs_info in;
	struct vss_error err;
	char u[37];
	struct stat st;

	assert_int_equal(vss_btrfs_probe(TOP, &in, &err), 0);
	vss_btrfs_format_id(in.fs_uuid, u);
	vss_btrfs_info_release(&in);
	if (stat(VSS_BTRFS_LOCK_DIR, &st) == 0)
		return fmt("%s/vss-btrfs-%s.lock", VSS_BTRFS_LOCK_DIR, u);
	return fmt("/run/vss-btrfs-%s.lock", u);
}

static void write_note(const char *lf, dev_t dev)
{
	FILE *f = fopen(lf, "w");

	assert_non_null(f);
	fprintf(f, "flushoncommit %u:%u 999999\n", major(dev), minor(dev));
	fclose(f);
}

static void options_restored(void **state)
{
	dev_t dev = top_dev();
	char *before = mountinfo_of(dev), *after, *target = fmt("%s/other", TOP), *p;
	struct vss_btrfs_snapshot_params pp = params(4, 1, false);
	struct vss_btrfs_snapshot *s;
	struct vss_error err;

	assert_null(strstr(before, "flushoncommit"));
	assert_non_null(strstr(before, "nosuid,nodev,noatime"));

	/* After success. */
	s = take(target, 4, 2, false);
	after = mountinfo_of(dev);
	assert_string_equal(before, after);
	free(after);
	print_message("commit: lock %llu us, flushoncommit on %llu us, snapshot %llu us, "
		      "off %llu us\n",
		      (unsigned long long)vss_btrfs_snapshot_stats(s)->lock_us,
		      (unsigned long long)vss_btrfs_snapshot_stats(s)->enable_us,
		      (unsigned long long)vss_btrfs_snapshot_stats(s)->snapshot_us,
		      (unsigned long long)vss_btrfs_snapshot_stats(s)->restore_us);
	drop(s);

	/* After a failed snapshot (the name is taken between prepare and
	 * commit, so the ioctl fails with flushoncommit already on). */
	assert_int_equal(vss_btrfs_snapshot_prepare(target, &pp, &s, &err), 0);
	assert_int_equal(mkdir(vss_btrfs_snapshot_path(s), 0700), 0);
	assert_int_equal(vss_btrfs_snapshot_commit(s, &err), -EEXIST);
	print_message("failed commit: %s\n", err.msg);
	after = mountinfo_of(dev);
	assert_string_equal(before, after);
	free(after);
	assert_true(vss_btrfs_snapshot_stats(s)->switched);
	assert_int_equal(rmdir(vss_btrfs_snapshot_path(s)), 0);
	vss_btrfs_snapshot_free(s);

	/* When the user runs with flushoncommit: left on, never touched. */
	set_flush(true);
	free(before);
	before = mountinfo_of(dev);
	s = take(target, 4, 3, false);
	assert_false(vss_btrfs_snapshot_stats(s)->switched);
	after = mountinfo_of(dev);
	assert_string_equal(before, after);
	free(after);
	drop(s);
	set_flush(false);

	/* The lock file holds no note once done. */
	p = lock_file();
	char *note = slurp(p);
	assert_non_null(note);
	assert_string_equal(note, "");
	free(note);
	free(p);
	free(before);
	free(target);
}

/* A process that died with flushoncommit on: the next one puts it back. */
static void crash_recovery(void **state)
{
	char *lf = lock_file(), *note, *target = fmt("%s/other", TOP);
	dev_t dev = top_dev();
	struct vss_btrfs_snapshot *s;
	struct vss_error err;
	unsigned n = 99;

	/* Cleanup switches it off and empties the note. */
	set_flush(true);
	write_note(lf, dev);
	assert_int_equal(vss_btrfs_cleanup(TOP, NULL, NULL, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_false(flush_on());
	note = slurp(lf);
	assert_string_equal(note, "");
	free(note);

	/* A commit adopts it: snapshot exact, option off afterwards. */
	set_flush(true);
	write_note(lf, dev);
	s = take(target, 5, 1, false);
	assert_true(vss_btrfs_snapshot_stats(s)->switched);
	assert_false(flush_on());
	drop(s);

	/* A note about another superblock is stale: the user's option stays. */
	set_flush(true);
	write_note(lf, makedev(0, 1));
	assert_int_equal(vss_btrfs_cleanup(TOP, NULL, NULL, NULL, &err), 0);
	assert_true(flush_on());
	note = slurp(lf);
	assert_string_equal(note, "");
	free(note);

	/* No note: the user's option stays, through cleanup and commit. */
	assert_int_equal(vss_btrfs_cleanup(TOP, NULL, NULL, NULL, &err), 0);
	assert_true(flush_on());
	s = take(target, 5, 2, false);
	assert_true(flush_on());
	drop(s);
	set_flush(false);
	free(target);
	free(lf);
}

/*
 * The real thing: a process killed (SIGKILL) at random moments while it
 * takes shadow after shadow.  Whatever it left, one cleanup puts the mount
 * options back exactly and removes its temporary snapshots.
 */
static void killed_mid_commit(void **state)
{
	dev_t dev = top_dev();
	char *before = mountinfo_of(dev), *after, *target = fmt("%s/other", TOP), *lf = lock_file();
	int left_on = 0, rounds = 12;
	unsigned total = 0, n;

	srand((unsigned)time(NULL));
	for (int r = 0; r < rounds; r++) {
		struct vss_error err;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			for (unsigned i = 1;; i++) {
				struct vss_btrfs_snapshot_params p = params(0x40 + (unsigned)r, i & 0xff,
									    false);
				struct vss_btrfs_snapshot *s;

				p.shadow_id[14] = (unsigned char)(i >> 8);
				if (vss_btrfs_snapshot_prepare(target, &p, &s, NULL) < 0 ||
				    vss_btrfs_snapshot_commit(s, NULL) < 0)
					_exit(1);
				vss_btrfs_snapshot_free(s);
			}
		}
		usleep((useconds_t)(30 + rand() % 300) * 1000);
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		left_on += flush_on();
		assert_int_equal(vss_btrfs_cleanup(TOP, NULL, NULL, &n, &err), 0);
		total += n;
		after = mountinfo_of(dev);
		assert_string_equal(before, after);
		free(after);
		char *note = slurp(lf);
		assert_non_null(note);
		assert_string_equal(note, "");
		free(note);
	}
	print_message("killed %d times: flushoncommit was left on %d times, always put back; "
		      "%u temporary snapshots cleaned up\n", rounds, left_on, total);
	free(before);
	free(target);
	free(lf);
}

/* ---- orphans ---- */

struct seen_list {
	int n;
	struct vss_btrfs_entry e[16];
	char *paths[16], *origins[16], *mps[16];
};

static int collect(void *arg, const struct vss_btrfs_entry *e)
{
	struct seen_list *l = arg;

	if (strncmp(e->path, getenv("VSS_TEST_DIR"), strlen(getenv("VSS_TEST_DIR"))) != 0)
		return 0;       /* another test's filesystem: not ours to look at */
	assert_true(l->n < 16);
	l->e[l->n] = *e;
	l->paths[l->n] = strdup(e->path);
	l->origins[l->n] = e->origin ? strdup(e->origin) : NULL;
	l->e[l->n].path = l->paths[l->n];
	l->e[l->n].origin = l->origins[l->n];
	l->mps[l->n] = strdup(e->mount_point);
	l->e[l->n].mount_point = l->mps[l->n];
	l->n++;
	return 0;
}

static void seen_free(struct seen_list *l)
{
	for (int i = 0; i < l->n; i++) {
		free(l->paths[i]);
		free(l->origins[i]);
		free(l->mps[i]);
	}
	l->n = 0;
}

static const struct vss_btrfs_entry *find_shadow(struct seen_list *l, unsigned set, unsigned sh)
{
	for (int i = 0; i < l->n; i++)
		if (l->e[i].set_id[15] == set && l->e[i].shadow_id[15] == sh &&
		    l->e[i].set_id[0] == 0x5e)
			return &l->e[i];
	return NULL;
}

static bool keep_none(void *arg, const struct vss_btrfs_entry *e)
{
	(*(int *)arg)++;
	return false;
}

static void orphans(void **state)
{
	char *p, *foreign, *plain, *writable;
	struct vss_btrfs_snapshot *a, *b, *c, *d;
	const struct vss_btrfs_entry *e;
	struct seen_list l = { 0 };
	struct vss_error err;
	unsigned n;
	int asked = 0;
	time_t now = time(NULL);

	/* What a crashed service would leave: two sets, two kinds, two dirs. */
	p = fmt("%s/vol", TOP);
	a = take(p, 6, 1, false);
	free(p);
	p = fmt("%s/vol/nested", TOP);
	b = take(p, 6, 2, true);
	free(p);
	p = fmt("%s/other/o.txt", TOP);
	c = take(p, 7, 1, false);
	free(p);
	d = take(VOL, 8, 1, true);

	/* Things that look a little like ours, and are not. */
	foreign = fmt("%s/.vss-snapshots/foreign", TOP);
	assert_int_equal(btrfs_util_create_snapshot(VOL, foreign, BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY,
						    NULL, NULL), BTRFS_UTIL_OK);
	plain = fmt("%s/.vss-snapshots/vss.5e5e5e5e-5e5e-5e5e-5e5e-5e5e5e5e5e09."
		    "a0a0a0a0-a0a0-a0a0-a0a0-a0a0a0a0a009.temporary", TOP);
	assert_int_equal(mkdir(plain, 0700), 0);
	writable = fmt("%s/.vss-snapshots/vss.5e5e5e5e-5e5e-5e5e-5e5e-5e5e5e5e5e0a."
		       "a0a0a0a0-a0a0-a0a0-a0a0-a0a0a0a0a00a.temporary", TOP);
	assert_int_equal(btrfs_util_create_subvolume(writable, 0, NULL, NULL), BTRFS_UTIL_OK);

	/* Listing every btrfs mount finds each once, with what it was. */
	assert_int_equal(vss_btrfs_list(NULL, collect, &l, &err), 0);
	assert_int_equal(l.n, 5);
	e = find_shadow(&l, 6, 1);
	assert_non_null(e);
	assert_false(e->persistent);
	assert_true(e->read_only);
	assert_string_equal(e->origin, "vol");
	assert_string_equal(e->path, vss_btrfs_snapshot_path(a));
	assert_string_equal(e->mount_point, TOP);
	assert_true(e->created.tv_sec >= now - 60 && e->created.tv_sec <= now + 5);
	e = find_shadow(&l, 6, 2);
	assert_non_null(e);
	assert_true(e->persistent);
	assert_string_equal(e->origin, "vol/nested");
	e = find_shadow(&l, 7, 1);
	assert_non_null(e);
	assert_string_equal(e->origin, "other");
	e = find_shadow(&l, 8, 1);
	assert_non_null(e);
	assert_true(e->persistent);
	assert_string_equal(e->mount_point, VOL);
	assert_string_equal(e->origin, "vol");
	e = find_shadow(&l, 10, 10);
	assert_non_null(e);
	assert_false(e->read_only);
	seen_free(&l);

	/* One mount only. */
	assert_int_equal(vss_btrfs_list(VOL, collect, &l, &err), 0);
	assert_int_equal(l.n, 1);
	seen_free(&l);
	assert_int_equal(vss_btrfs_list("/proc", collect, &l, &err), -EINVAL);

	/* Start-up cleanup: temporary ones go, persistent ones are listed
	 * again; nothing that is not ours is touched. */
	assert_int_equal(vss_btrfs_cleanup(TOP, NULL, NULL, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(vss_btrfs_cleanup(VOL, NULL, NULL, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(vss_btrfs_list(NULL, collect, &l, &err), 0);
	assert_int_equal(l.n, 3);
	assert_non_null(find_shadow(&l, 6, 2));
	assert_non_null(find_shadow(&l, 8, 1));
	assert_non_null(find_shadow(&l, 10, 10));
	seen_free(&l);
	assert_int_equal(access(foreign, F_OK), 0);
	assert_int_equal(access(plain, F_OK), 0);

	/* The callback decides; a writable one is never deleted. */
	assert_int_equal(vss_btrfs_cleanup(TOP, keep_none, &asked, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(asked, 2);
	assert_int_equal(vss_btrfs_cleanup(VOL, keep_none, &asked, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(vss_btrfs_list(NULL, collect, &l, &err), 0);
	assert_int_equal(l.n, 1);
	seen_free(&l);

	/* vss_btrfs_delete refuses what is not ours. */
	assert_int_equal(vss_btrfs_delete(foreign, &err), -EINVAL);
	assert_int_equal(vss_btrfs_delete(writable, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "read-only"));
	p = fmt("%s/vol", TOP);
	assert_int_equal(vss_btrfs_delete(p, &err), -EINVAL);
	free(p);
	p = fmt("%s/other/vss.5e5e5e5e-5e5e-5e5e-5e5e-5e5e5e5e5e0b."
		"a0a0a0a0-a0a0-a0a0-a0a0-a0a0a0a0a00b.temporary", TOP);
	assert_int_equal(btrfs_util_create_snapshot(VOL, p, BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY,
						    NULL, NULL), BTRFS_UTIL_OK);
	assert_int_equal(vss_btrfs_delete(p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a vss snapshot directory"));
	assert_int_equal(btrfs_util_delete_subvolume(p, 0), BTRFS_UTIL_OK);
	free(p);

	assert_int_equal(btrfs_util_delete_subvolume(foreign, 0), BTRFS_UTIL_OK);
	assert_int_equal(btrfs_util_delete_subvolume(writable, 0), BTRFS_UTIL_OK);
	assert_int_equal(rmdir(plain), 0);
	vss_btrfs_snapshot_free(a);
	vss_btrfs_snapshot_free(b);
	vss_btrfs_snapshot_free(c);
	vss_btrfs_snapshot_free(d);
	free(foreign);
	free(plain);
	free(writable);
}

/* ---- why btrfs is not FIFREEZE'd ---- */

static int frozen_fd = -1;

static int thaw_teardown(void **state)
{
	if (frozen_fd >= 0) {
		ioctl(frozen_fd, FITHAW, 0);
		close(frozen_fd);
		frozen_fd = -1;
	}
	return 0;
}

static char proc_state(pid_t pid)
{
	char *p = fmt("/proc/%d/stat", (int)pid), *st = slurp(p), *q, s;

	free(p);
	if (!st)
		return '?';
	q = strrchr(st, ')');
	s = q ? q[2] : '?';
	free(st);
	return s;
}

/*
 * The measurement: on a frozen btrfs, creating a snapshot does not fail,
 * it waits (uninterruptibly) for the thaw.  Commit inside a freeze of the
 * same filesystem would therefore deadlock.
 */
static void freeze_blocks_snapshot(void **state)
{
	char *dst = fmt("%s/freeze-probe", TOP), *src = fmt("%s/other", TOP);
	struct timespec t0, t1;
	int status;
	pid_t pid;
	char st;

	frozen_fd = open(TOP, O_RDONLY | O_DIRECTORY);
	assert_true(frozen_fd >= 0);
	assert_int_equal(ioctl(frozen_fd, FIFREEZE, 0), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(btrfs_util_create_snapshot(src, dst, BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY,
						 NULL, NULL) == BTRFS_UTIL_OK ? 0 : 1);
	usleep(1500 * 1000);
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);   /* still waiting */
	st = proc_state(pid);
	print_message("snapshot of a frozen btrfs: after 1.5 s still running, state %c\n", st);
	assert_int_equal(st, 'D');
	assert_int_equal(ioctl(frozen_fd, FITHAW, 0), 0);
	close(frozen_fd);
	frozen_fd = -1;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	print_message("... and it completed only after FITHAW, %.2f s after it started\n",
		      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	assert_int_equal(btrfs_util_delete_subvolume(dst, 0), BTRFS_UTIL_OK);
	free(dst);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(probe_paths),
		cmocka_unit_test(probe_refusals),
		cmocka_unit_test(snapshot_basic),
		cmocka_unit_test(snapshot_nested_itself),
		cmocka_unit_test(snapshot_subvol_mount),
		cmocka_unit_test(options_restored),
		cmocka_unit_test(crash_recovery),
		cmocka_unit_test(killed_mid_commit),
		cmocka_unit_test(orphans),
		cmocka_unit_test_teardown(freeze_blocks_snapshot, thaw_teardown),
	};

	TOP = getenv("VSS_TEST_BTRFS_TOP");
	VOL = getenv("VSS_TEST_BTRFS_VOL");
	RO = getenv("VSS_TEST_BTRFS_RO");
	BIND = getenv("VSS_TEST_BTRFS_BIND");
	if (!TOP || !VOL || !RO || !BIND || !getenv("VSS_TEST_DIR")) {
		printf("SKIP: run through tests/btrfs/run.sh, which makes the filesystems\n");
		return 77;
	}
	return cmocka_run_group_tests_name("btrfs", tests, NULL, NULL);
}
