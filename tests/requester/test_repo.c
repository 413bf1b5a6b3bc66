/*
 * tests/requester/test_repo.c - the backup repository (vss/backup.h) on
 * plain directories, without vssd and without root: a tree backed up
 * (read live), changed, backed up again incrementally, each backup
 * restored elsewhere and compared with a copy of the tree made by this
 * test; the repository's refusals (not a repository, a newer format, IDs
 * and paths that are not ones, a manifest that does not match); base64.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <vss/backup.h>

#include "requester/repo_i.h"
#include "../lib/testutil.h"

static char base_dir[64];

static void path_of(char *out, const char *rel)
{
	snprintf(out, PATH_MAX, "%s/%s", base_dir, rel);
}

static void write_at(const char *rel, const char *text)
{
	char p[PATH_MAX];
	FILE *f;

	path_of(p, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	snprintf(base_dir, sizeof(base_dir), "/tmp/vss-test-repo-XXXXXX");
	assert_non_null(mkdtemp(base_dir));
	return 0;
}

static int teardown(void **state)
{
	run("rm -rf '%s'", base_dir);
	return 0;
}

/* Restores backup @id under @to and compares the tree with @ref (a copy of
 * the source the test kept): same names, kinds, bytes, modes and mtimes. */
static void restored_equals(struct vss_repo *r, const char *id, const char *src,
			    const char *ref)
{
	struct vss_restore_params p = { .size = sizeof(p) };
	struct vss_restore_result res;
	struct vss_error err = { 0 };
	char to[PATH_MAX];

	path_of(to, "restored");
	run("rm -rf '%s'", to);
	p.to = to;
	assert_int_equal(vss_repo_restore(r, id, &p, &res, &err), 0);
	/* diff -r compares the bytes and the kinds; rsync's itemized dry run
	 * the modes and times (no output: nothing differs). */
	run("diff -r --no-dereference '%s' '%s%s'", ref, to, src);
	run("test -z \"$(rsync -ani --delete '%s/' '%s%s/')\"", ref, to, src);
}

static void backup_of(struct vss_repo *r, const char *src, enum vss_backup_type type,
		      struct vss_backup_info *out)
{
	struct vss_backup_source s = { src, src };
	struct vss_backup_params p = { .size = sizeof(p), .type = type, .sources = &s,
				       .nsources = 1 };
	struct vss_error err = { 0 };

	assert_int_equal(vss_repo_backup(r, &p, out, &err), 0);
}

static void chain_of_backups(void **state)
{
	char repo_dir[PATH_MAX], src[PATH_MAX], ref0[PATH_MAX], ref1[PATH_MAX];
	struct vss_backup_info b0, b1, b2, *list;
	struct vss_error err = { 0 };
	struct vss_repo *r;
	size_t n;

	path_of(repo_dir, "repo");
	path_of(src, "src");
	path_of(ref0, "ref0");
	path_of(ref1, "ref1");
	run("mkdir -p '%s/d/e' && echo one > '%s/d/e/f' && echo two > '%s/g' && "
	    "ln -s f '%s/d/e/link' && ln '%s/g' '%s/hard' && "
	    "truncate -s 10M '%s/sparse' && echo x >> '%s/sparse'",
	    src, src, src, src, src, src, src, src);
	assert_int_equal(vss_repo_open(repo_dir, VSS_REPO_CREATE, &r, &err), 0);
	backup_of(r, src, VSS_BT_FULL, &b0);
	assert_int_equal(b0.type, VSS_BT_FULL);
	assert_int_equal(b0.files_stored, 3);   /* f, g, sparse: hard is a link */
	run("cp -a '%s' '%s'", src, ref0);
	/* Changed: a new file, one removed, one rewritten. */
	write_at("src/d/new", "three");
	run("rm '%s/g' && echo changed > '%s/d/e/f' && touch -d @1 '%s/d/e/f'", src, src, src);
	backup_of(r, src, VSS_BT_INCREMENTAL, &b1);
	assert_int_equal(b1.type, VSS_BT_INCREMENTAL);
	assert_string_equal(b1.base, b0.id);
	/* new, f, and hard: a second name of g before, its only name now;
	 * sparse is unchanged and not read again. */
	assert_int_equal(b1.files_stored, 3);
	assert_int_equal(b1.deleted, 1);        /* g (hard keeps the bytes) */
	run("cp -a '%s' '%s'", src, ref1);
	restored_equals(r, b0.id, src, ref0);
	restored_equals(r, b1.id, src, ref1);
	/* A differential of an unchanged tree: against the full. */
	backup_of(r, src, VSS_BT_DIFFERENTIAL, &b2);
	assert_string_equal(b2.base, b0.id);
	assert_int_equal(vss_repo_list(r, &list, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].id, b0.id);
	assert_string_equal(list[2].id, b2.id);
	free(list);
	assert_int_equal(vss_repo_verify(r, NULL, NULL, NULL, &err), 0);
	/* The full is needed by both: refused, then all three go. */
	assert_int_equal(vss_repo_delete(r, b0.id, false, &n, &err), -EBUSY);
	assert_int_equal(vss_repo_delete(r, b0.id, true, &n, &err), 0);
	assert_int_equal(n, 3);
	vss_repo_close(r);
}

struct racer {
	const char *dir;
	int rc;
};

static void *make_at_once(void *arg)
{
	struct racer *rc = arg;
	struct vss_repo *r;

	rc->rc = vss_repo_open(rc->dir, VSS_REPO_CREATE, &r, NULL);
	if (rc->rc == 0)
		vss_repo_close(r);
	return NULL;
}

/* Several processes' first backups into a new repository at once: each
 * finds a repository, none a directory half made. */
static void made_by_many_at_once(void **state)
{
	for (int round = 0; round < 20; round++) {
		char dir[PATH_MAX];
		struct racer rc[8];
		pthread_t t[8];

		snprintf(dir, sizeof(dir), "%s/race%d", base_dir, round);
		for (int i = 0; i < 8; i++) {
			rc[i].dir = dir;
			assert_int_equal(pthread_create(&t[i], NULL, make_at_once, &rc[i]), 0);
		}
		for (int i = 0; i < 8; i++) {
			pthread_join(t[i], NULL);
			assert_int_equal(rc[i].rc, 0);
		}
	}
}

static void not_a_repository(void **state)
{
	char dir[PATH_MAX];
	struct vss_error err = { 0 };
	struct vss_repo *r;

	path_of(dir, "plain");
	run("mkdir -p '%s' && echo keep > '%s/file'", dir, dir);
	assert_int_equal(vss_repo_open(dir, 0, &r, &err), -ENOENT);
	assert_int_equal(vss_repo_open(dir, VSS_REPO_CREATE, &r, &err), -EMEDIUMTYPE);
	assert_non_null(strstr(err.msg, "not empty"));
	path_of(dir, "newer");
	run("mkdir -p '%s' && echo '{\"format\": \"vss-backup-repository\", \"version\": 3}' "
	    "> '%s/vss-backup-repository'", dir, dir);
	assert_int_equal(vss_repo_open(dir, 0, &r, &err), -EPROTO);
	path_of(dir, "other");
	run("mkdir -p '%s' && echo '{\"format\": \"something\"}' "
	    "> '%s/vss-backup-repository'", dir, dir);
	assert_int_equal(vss_repo_open(dir, 0, &r, &err), -EMEDIUMTYPE);
}

static void damaged_manifest_is_refused(void **state)
{
	char repo_dir[PATH_MAX], src[PATH_MAX], m[PATH_MAX + 128];
	struct vss_backup_info b;
	struct vss_restore_params p = { .size = sizeof(p) };
	struct vss_restore_result res;
	struct vss_error err = { 0 };
	struct vss_repo *r;

	path_of(repo_dir, "repo2");
	path_of(src, "src2");
	run("mkdir -p '%s' && echo data > '%s/f'", src, src);
	assert_int_equal(vss_repo_open(repo_dir, VSS_REPO_CREATE, &r, &err), 0);
	backup_of(r, src, VSS_BT_FULL, &b);
	snprintf(m, sizeof(m), "%s/backups/%s/manifest.jsonl", repo_dir, b.id);
	run("echo '{\"s\":1,\"p\":\"x\",\"k\":\"d\"}' >> '%s'", m);
	path_of(m, "r2");
	p.to = m;
	assert_int_equal(vss_repo_restore(r, b.id, &p, &res, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "checksum"));
	assert_int_equal(vss_repo_verify(r, b.id, NULL, NULL, &err), -EBADMSG);
	/* An incremental on it, which reads it as its base, refuses too. */
	{
		struct vss_backup_source bs = { src, src };
		struct vss_backup_params bp = { .size = sizeof(bp), .type = VSS_BT_INCREMENTAL,
						.sources = &bs, .nsources = 1 };
		struct vss_backup_info inc;

		assert_int_equal(vss_repo_backup(r, &bp, &inc, &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "the base of this backup is damaged"));
		assert_non_null(strstr(err.msg, "checksum"));
	}
	/* A prefix that names nothing, and an empty one. */
	assert_int_equal(vss_repo_restore(r, "1999", &p, &res, &err), -ENOENT);
	vss_repo_close(r);
}

static void entries_are_checked(void **state)
{
	static const char *const bad[] = {
		"{\"s\":1,\"p\":\"../x\",\"k\":\"d\"}",
		"{\"s\":1,\"p\":\"/etc\",\"k\":\"d\"}",
		"{\"s\":1,\"p\":\"a//b\",\"k\":\"d\"}",
		"{\"s\":1,\"p\":\"a/./b\",\"k\":\"d\"}",
		"{\"s\":0,\"p\":\"a\",\"k\":\"d\"}",
		"{\"s\":1,\"p\":\"a\",\"k\":\"z\"}",
		"{\"s\":1,\"p\":\"a\",\"k\":\"h\",\"h\":\"../b\"}",
		"{\"s\":1,\"p\":\"a\",\"k\":\"f\",\"size\":1,\"in\":\"../x\",\"sha256\":\"00\"}",
		"{\"s\":1,\"p\":\"a\",\"k\":\"f\",\"size\":-1,\"in\":\"x\",\"sha256\":"
		"\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	};
	struct entry e;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], 0, NULL);

		assert_non_null(j);
		assert_int_equal(entry_from_json(j, &e), -EBADMSG);
		json_decref(j);
	}
}

/* A base read whole into an index: the last line of a path wins, a line
 * without its newline counts, a bad line is named by its number. */
static void base_index_reads_every_line(void **state)
{
	static const char good[] =
		"{\"s\":1,\"p\":\"\",\"k\":\"d\",\"mode\":493,\"ino\":2}\n"
		"{\"s\":1,\"p\":\"a\",\"k\":\"l\",\"mode\":511,\"l\":\"b\"}\n"
		"{\"s\":1,\"p\":\"\xc3\xa9\",\"k\":\"d\",\"x\":{\"user.a\":\"AA==\"}}\n"
		"{\"s\":1,\"p\":\"a\",\"k\":\"h\",\"h\":\"c/d\"}\n"
		"{\"s\":2,\"p\":\"a\",\"k\":\"-\"}";
	static const char bad[] =
		"{\"s\":1,\"p\":\"\",\"k\":\"d\"}\n"
		"{\"s\":1,\"p\":\"a\",\"k\":\"d\"}\n"
		"{\"s\":1,\"p\":\"../a\",\"k\":\"d\"}\n"
		"{\"s\":1,\"p\":\"b\",\"k\":\"d\"}\n";
	struct entry_index *x;
	unsigned long line;
	struct entry *e;

	(void)state;
	assert_int_equal(entry_index_parse(strdup(good), strlen(good), &x, &line), 0);
	assert_non_null(e = entry_index_find(x, 1, "a"));
	assert_int_equal(e->kind, EK_HARD);
	assert_string_equal(e->link, "c/d");
	assert_non_null(e = entry_index_find(x, 1, "\xc3\xa9"));
	assert_non_null(e->xattrs);
	assert_non_null(e = entry_index_find(x, 2, "a"));
	assert_int_equal(e->kind, EK_GONE);
	assert_non_null(entry_index_find(x, 1, ""));
	assert_null(entry_index_find(x, 2, ""));
	entry_index_free(x);
	assert_int_equal(entry_index_parse(strdup(bad), strlen(bad), &x, &line), -EBADMSG);
	assert_null(x);
	assert_int_equal(line, 3);
	assert_int_equal(entry_index_parse(strdup("\n"), 1, &x, &line), -EBADMSG);
	assert_int_equal(line, 1);
	assert_int_equal(entry_index_parse(strdup(""), 0, &x, &line), 0);
	entry_index_free(x);
}

/* The direct line reader reads what jansson reads, and refuses what it
 * refuses, whichever of them takes the line; the writer's lines read back. */
static void lines_read_as_jansson_reads_them(void **state)
{
	static const char *const lines[] = {
		/* as backups write them */
		"{\"s\":1,\"p\":\"d/f\",\"k\":\"f\",\"mode\":420,\"uid\":0,\"gid\":0,"
		"\"mtime\":1796534434424752637,\"atime\":-9223372036854775808,"
		"\"ctime\":9223372036854775807,\"ino\":131075,\"size\":2124,"
		"\"in\":\"20261206T052050.108Z-32718ea2\",\"sha256\":"
		"\"47a1bbcd57a6828a80cc1c5f0c6d201f1e3b93e3960bef4e40cab94aaccbdaba\"}\n",
		" { \"k\" : \"d\" , \"s\" : 2 , \"p\" : \"\" } \r\n",
		"{\"s\":1,\"p\":\"a\",\"k\":\"h\",\"h\":\"b c\"}",
		/* left to jansson: an escape, UTF-8, a key twice or unknown, a
		 * real, an array */
		"{\"s\":1,\"p\":\"a\\\"b\",\"k\":\"d\"}",
		"{\"s\":1,\"p\":\"\xc3\xa9t\xc3\xa9\",\"k\":\"d\"}",
		"{\"s\":1,\"p\":\"a\",\"p\":\"b\",\"k\":\"d\"}",
		"{\"s\":1,\"p\":\"a\",\"k\":\"d\",\"later\":true}",
		"{\"s\":1.0,\"p\":\"a\",\"k\":\"d\"}",
		"{\"s\":1,\"p\":\"a\",\"k\":\"d\",\"mode\":1e3}",
		/* refused by both */
		"{\"s\":1,\"p\":\"a\",\"k\":\"d\",\"mode\":9223372036854775808}",
		"{\"s\":01,\"p\":\"a\",\"k\":\"d\"}",
		"{\"s\":1,\"p\":\"../a\",\"k\":\"d\"}",
		"{\"s\":1,\"p\":\"a\",\"k\":\"d\"} x",
		"{\"s\":1,\"p\":\"a\",\"k\":\"d\",}",
		"{}",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		json_t *j = json_loads(lines[i], 0, NULL), *a, *b;
		char *copy = strdup(lines[i]), *ta, *tb;
		struct entry e1, e2;
		int r1 = j ? entry_from_json(j, &e1) : -EBADMSG;
		int r2 = entry_from_line(copy, strlen(copy), &e2);

		assert_int_equal(r1, r2);
		if (r1 == 0) {
			struct repo_line l = { 0 };
			struct entry e3;

			a = entry_to_json(&e1);
			b = entry_to_json(&e2);
			ta = json_dumps(a, JSON_SORT_KEYS);
			tb = json_dumps(b, JSON_SORT_KEYS);
			assert_string_equal(ta, tb);
			assert_int_equal(entry_line(&e2, &l), 0);
			assert_int_equal(entry_from_line(l.buf, l.len, &e3), 0);
			free(tb);
			json_decref(b);
			b = entry_to_json(&e3);
			tb = json_dumps(b, JSON_SORT_KEYS);
			assert_string_equal(ta, tb);
			free(ta);
			free(tb);
			free(l.buf);
			json_decref(a);
			json_decref(b);
			entry_release(&e1);
			entry_release(&e2);
			entry_release(&e3);
		}
		json_decref(j);
		free(copy);
	}
}

static void base64_round_trips(void **state)
{
	const char *cases[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	const char *enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };

	for (size_t i = 0; i < 7; i++) {
		char *e = b64_encode(cases[i], strlen(cases[i]));
		size_t n;
		char *d = b64_decode(e, &n);

		assert_string_equal(e, enc[i]);
		assert_int_equal(n, strlen(cases[i]));
		assert_memory_equal(d, cases[i], n);
		free(e);
		free(d);
	}
	assert_null(b64_decode("Zm9", NULL));
	assert_null(b64_decode("Z=9v", NULL));
	assert_null(b64_decode("Zm9!", NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chain_of_backups),
		cmocka_unit_test(made_by_many_at_once),
		cmocka_unit_test(not_a_repository),
		cmocka_unit_test(damaged_manifest_is_refused),
		cmocka_unit_test(entries_are_checked),
		cmocka_unit_test(lines_read_as_jansson_reads_them),
		cmocka_unit_test(base_index_reads_every_line),
		cmocka_unit_test(base64_round_trips),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
