/*
 * tests/requester/test_plan.c - writers' components in file-level backups
 * (vss_repo_plan, vss_repo_backup with a plan; doc/backup-format.md
 * "Components"), without vssd and without root: the test plays the writer
 * (its metadata, and what it sets at PrepareForBackup) and reads a tree in
 * /tmp through "DIR/." as if it were a shadow.  Each rule is checked on what
 * the repository holds afterwards and on what a restore gives back, against
 * copies and expectations this test makes itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <vss/backup.h>

#include "../lib/testutil.h"

#define CLS1  "11111111-1111-4111-8111-111111111111"
#define INST1 "21111111-1111-4111-8111-111111111111"
#define CLS2  "12222222-2222-4222-8222-222222222222"
#define INST2 "22222222-2222-4222-8222-222222222222"
#define CLS3  "13333333-3333-4333-8333-333333333333"
#define INST3 "23333333-3333-4333-8333-333333333333"

static char top[64];

/* @rel under the test's directory (valid for the next three calls). */
static char *at(const char *rel)
{
	static char buf[4][PATH_MAX];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], PATH_MAX, "%s/%s", top, rel);
	return buf[k];
}

static int setup(void **state)
{
	(void)state;
	snprintf(top, sizeof(top), "/tmp/vss-test-plan-XXXXXX");
	assert_non_null(mkdtemp(top));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	run("rm -rf '%s'", top);
	return 0;
}

/* ---- the writer the test plays ---- */

struct fileset {
	const char *rel;                /* under top */
	const char *spec;
	bool recursive;
	uint32_t mask;
};

static struct vss_wmd *writer(const char *name, const char *cls, const char *inst,
			      uint32_t schema, const struct fileset *sets, size_t n)
{
	struct vss_error err = { 0 };
	struct vss_wmd *wmd;

	assert_int_equal(vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = name, .class_id = cls, .instance_id = inst,
		.usage = VSS_UT_USER_DATA, .source = VSS_ST_OTHER }, &wmd, &err), 0);
	assert_int_equal(vss_wmd_set_backup_schema(wmd, schema, &err), 0);
	assert_int_equal(vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_FILE_GROUP, .name = "data", .selectable = true }, &err), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(vss_wmd_add_file_set(wmd, NULL, "data", &(struct vss_wmd_file_set){
			.kind = VSS_FSK_FILES, .path = at(sets[i].rel), .file_spec = sets[i].spec,
			.recursive = sets[i].recursive, .backup_type_mask = sets[i].mask },
			&err), 0);
	return wmd;
}

/* The last progress report of the last backup. */
static struct vss_backup_progress last;

static void progress(void *arg, const struct vss_backup_progress *p)
{
	(void)arg;
	last = *p;
}

/* One backup as vss backup create makes it: plan, the writers' turn at
 * PrepareForBackup (@prepare), then the backup of @src read through
 * "src/." (a shadow standing for it) or, with @live, read live. */
struct turn {
	const char *prev_seen[3];       /* the previous stamps the writers got */
	enum vss_backup_type types[3];  /* each component's type */
	void (*prepare)(struct vss_bcd *bcd, void *arg);
	void *arg;
};

static int backup(struct vss_repo *r, enum vss_backup_type type, const char *const *src,
		  size_t nsrc, bool live, bool only, struct vss_wmd **wmds, size_t nw,
		  struct turn *t, struct vss_backup_info *out, struct vss_error *err)
{
	struct vss_backup_source s[4];
	char read[4][PATH_MAX], *bcd_text = NULL, *texts[3] = { 0 };
	struct vss_backup_params p = { .size = sizeof(p), .type = type, .sources = s,
				       .nsources = nsrc };
	struct vss_backup_plan *plan = NULL;
	struct vss_bcd *bcd;
	int rc;

	for (size_t i = 0; i < nsrc; i++) {
		snprintf(read[i], PATH_MAX, "%s%s", src[i], live ? "" : "/.");
		s[i] = (struct vss_backup_source){ .live = src[i], .read = src[i] };
	}
	assert_int_equal(vss_bcd_new(type, true, &bcd, NULL), 0);
	for (size_t i = 0; i < nw; i++) {
		struct vss_wmd_identity id;

		vss_wmd_identity(wmds[i], &id);
		assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
			.class_id = id.class_id, .instance_id = id.instance_id, .name = "data" },
			NULL, NULL), 0);
		assert_int_equal(vss_wmd_serialize(wmds[i], &texts[i], NULL, NULL), 0);
	}
	rc = vss_repo_plan(r, &p, (const struct vss_wmd *const *)wmds, nw, bcd, &plan, err);
	if (rc < 0)
		goto out;
	for (size_t i = 0; t && i < nw; i++) {
		struct vss_bcd_component *c = vss_bcd_component_at(bcd, i);
		struct vss_bcd_component_info ci;

		vss_bcd_component_info(c, &ci);
		t->prev_seen[i] = vss_bcd_previous_backup_stamp(c);
		t->types[i] = vss_backup_plan_component_type(plan, &ci);
	}
	/* The writers' turn; the stamps the test writes are the backup's type. */
	for (size_t i = 0; i < nw; i++) {
		static int count;
		char stamp[64];

		snprintf(stamp, sizeof(stamp), "%s-%d", i ? "w" : "db", ++count);
		vss_bcd_set_backup_stamp(vss_bcd_component_at(bcd, i), stamp, NULL);
	}
	if (t && t->prepare)
		t->prepare(bcd, t->arg);
	if ((rc = vss_backup_plan_check(plan, bcd, err)) < 0)
		goto out;
	for (size_t i = 0; i < vss_bcd_component_count(bcd); i++)
		vss_bcd_set_backup_succeeded(vss_bcd_component_at(bcd, i), true);
	assert_int_equal(vss_bcd_serialize(bcd, &bcd_text, NULL, NULL), 0);
	for (size_t i = 0; i < nsrc; i++)
		s[i].read = read[i];
	p.components = bcd_text;
	p.writer_metadata = (const char *const *)texts;
	p.nwriters = nw;
	p.plan = plan;
	p.components_only = only;
	p.progress = progress;
	memset(&last, 0, sizeof(last));
	rc = vss_repo_backup(r, &p, out, err);
out:
	for (size_t i = 0; i < nw; i++)
		free(texts[i]);
	free(bcd_text);
	if (t)
		for (size_t i = 0; i < nw; i++)
			t->prev_seen[i] = t->prev_seen[i] ? strdup(t->prev_seen[i]) : NULL;
	vss_bcd_free(bcd);
	vss_backup_plan_free(plan);
	return rc;
}

/* The manifest line of @path (inside source 1) in backup @id, or NULL. */
static json_t *entry(const char *repo, const char *id, const char *path)
{
	char file[PATH_MAX], *line = NULL;
	size_t cap = 0;
	json_t *found = NULL;
	FILE *f;

	snprintf(file, sizeof(file), "%s/backups/%s/manifest.jsonl", repo, id);
	f = fopen(file, "r");
	assert_non_null(f);
	while (!found && getline(&line, &cap, f) > 0) {
		json_t *j = json_loads(line, 0, NULL);

		if (j && strcmp(json_string_value(json_object_get(j, "p")) ?: "", path) == 0)
			found = j;
		else
			json_decref(j);
	}
	free(line);
	fclose(f);
	return found;
}

/* Whether backup @id stores bytes of @path itself. */
static bool stored_in(const char *repo, const char *id, const char *path)
{
	json_t *e = entry(repo, id, path);
	bool yes = e && strcmp(json_string_value(json_object_get(e, "in")) ?: "", id) == 0;

	json_decref(e);
	return yes;
}

static void restore(struct vss_repo *r, const char *id, const char *to)
{
	struct vss_restore_params p = { .size = sizeof(p), .to = to };
	struct vss_restore_result res;
	struct vss_error err = { 0 };

	run("rm -rf '%s'", to);
	if (vss_repo_restore(r, id, &p, &res, &err) < 0)
		fail_msg("restore of %s: %s", id, err.msg);
}

static void free_turn(struct turn *t)
{
	for (size_t i = 0; i < 3; i++) {
		free((char *)t->prev_seen[i]);
		t->prev_seen[i] = NULL;
	}
}

/* ---- masks, stamps, partial and differenced files ---- */

struct prep {
	bool partial, differenced;
	struct timespec since;          /* differenced files' time; {0, 0}: none */
};

static void prepare_db(struct vss_bcd *bcd, void *arg)
{
	struct prep *pp = arg;
	struct vss_bcd_component *c = vss_bcd_component_at(bcd, 0);
	struct vss_bcd_range ranges[] = { { 8192, 100 }, { 4096, 4096 } };
	struct vss_error err = { 0 };

	if (pp->partial)
		assert_int_equal(vss_bcd_add_partial_file(c, &(struct vss_bcd_partial_file){
			.path = at("src"), .filename = "big.db", .ranges = ranges,
			.range_count = 2 }, &err), 0);
	if (pp->differenced)
		assert_int_equal(vss_bcd_add_differenced_files(c, &(struct vss_bcd_differenced_files){
			.path = at("src/logs"), .file_spec = "*.log",
			.last_modify = pp->since }, &err), 0);
}

static void masks_stamps_partial_differenced(void **state)
{
	static const struct fileset sets[] = {
		{ "src/all", "*", true, VSS_FSBT_ALL_BACKUP_REQUIRED },
		{ "src/fullonly", "*", true, VSS_FSBT_FULL_BACKUP_REQUIRED },
		{ "src/none", "*", true, 0 },
		{ "src", "*.db", false, VSS_FSBT_FULL_BACKUP_REQUIRED },
		{ "src/logs", "*.log", false, VSS_FSBT_FULL_BACKUP_REQUIRED },
	};
	char src_dir[PATH_MAX];
	const char *src[] = { src_dir };
	struct vss_wmd *wmd;
	struct vss_backup_info b0, b1, b2, b3;
	struct vss_error err = { 0 };
	struct prep pp = { 0 };
	struct turn t0 = { 0 }, t1 = { .prepare = prepare_db, .arg = &pp }, t2 = { 0 }, t3 = { 0 };
	char repo_dir[PATH_MAX];
	struct vss_repo *r;
	json_t *e;
	time_t now = time(NULL);

	(void)state;
	snprintf(repo_dir, sizeof(repo_dir), "%s", at("repo"));
	snprintf(src_dir, sizeof(src_dir), "%s", at("src"));
	run("mkdir -p %s/all %s/fullonly %s/none %s/logs %s/other %s/tmp", src[0], src[0],
	    src[0], src[0], src[0], src[0]);
	run("cd %s && echo a > all/a1 && echo f > fullonly/f1 && echo n > none/n1 && "
	    "echo o > other/o1 && echo t > tmp/t.tmp && echo x > logs/x.log && "
	    "echo y > logs/y.log && head -c 20000 /dev/urandom > big.db", src[0]);
	/* Times in the past, so that "modified after" means something. */
	run("touch -d @%ld %s/logs/x.log %s/logs/y.log", (long)now - 1000, src[0], src[0]);
	wmd = writer("db", CLS1, INST1, VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL |
		     VSS_BS_TIMESTAMPED | VSS_BS_LAST_MODIFY, sets, 5);
	assert_int_equal(vss_wmd_add_exclude_files(wmd, &(struct vss_wmd_file_spec){
		.path = at("src/tmp"), .file_spec = "*.tmp" }, &err), 0);
	assert_int_equal(vss_repo_open(repo_dir, VSS_REPO_CREATE, &r, &err), 0);

	/* A full: the sets whose mask says full, whole; "none" left out; the
	 * excluded file left out; what no writer holds, as always. */
	assert_int_equal(backup(r, VSS_BT_FULL, src, 1, false, false, &wmd, 1, &t0, &b0, &err),
			 0);
	assert_int_equal(t0.types[0], VSS_BT_FULL);
	assert_null(t0.prev_seen[0]);
	assert_true(stored_in(repo_dir, b0.id, "all/a1"));
	assert_true(stored_in(repo_dir, b0.id, "fullonly/f1"));
	assert_true(stored_in(repo_dir, b0.id, "big.db"));
	assert_true(stored_in(repo_dir, b0.id, "other/o1"));
	assert_null(entry(repo_dir, b0.id, "none/n1"));
	assert_null(entry(repo_dir, b0.id, "tmp/t.tmp"));
	e = entry(repo_dir, b0.id, "all/a1");
	assert_int_equal(json_integer_value(json_object_get(e, "c")), 1);
	json_decref(e);
	e = entry(repo_dir, b0.id, "other/o1");
	assert_null(json_object_get(e, "c"));
	json_decref(e);
	run("grep -q '\"version\": 2' %s/vss-backup-repository", repo_dir);
	run("grep -q '\"type\": \"full\"' %s/backups/%s/backup.json", repo_dir, b0.id);

	/* An incremental.  big.db changes in [4096, 8292) only, and the writer
	 * names those ranges; x.log's attributes change (its ctime) but not
	 * since the writer's time; y.log is rewritten after it. */
	run("cp -a %s %s", src[0], at("ref0"));
	run("cd %s && printf '%%04096d' 7 | dd of=big.db bs=1 seek=4096 conv=notrunc "
	    "status=none && printf 'tail' | dd of=big.db bs=1 seek=8288 conv=notrunc status=none",
	    src[0]);
	run("chmod 600 %s/logs/x.log && echo new > %s/logs/y.log", src[0], src[0]);
	pp = (struct prep){ .partial = true, .differenced = true,
			    .since = { .tv_sec = now - 500 } };
	assert_int_equal(backup(r, VSS_BT_INCREMENTAL, src, 1, false, false, &wmd, 1, &t1, &b1,
				&err), 0);
	assert_string_equal(b1.base, b0.id);
	assert_int_equal(t1.types[0], VSS_BT_INCREMENTAL);
	/* The first pass counted what the second stored: the totals of the
	 * progress, known from the start. */
	assert_true(last.done);
	assert_int_equal(last.bytes, b1.bytes_stored);
	assert_int_equal(last.total_bytes, b1.bytes_stored);
	assert_int_equal(last.files, last.total_files);
	assert_true(last.total_bytes > 0 && last.total_bytes < 20000);
	/* The stamp the full stored came back as the previous one. */
	assert_non_null(t1.prev_seen[0]);
	assert_true(strncmp(t1.prev_seen[0], "db-", 3) == 0);
	assert_true(stored_in(repo_dir, b1.id, "all/a1"));      /* required: whatever changed */
	assert_false(stored_in(repo_dir, b1.id, "fullonly/f1")); /* unchanged */
	assert_true(stored_in(repo_dir, b1.id, "none/n1"));      /* not in the base: changed */
	assert_false(stored_in(repo_dir, b1.id, "logs/x.log"));  /* not since the time */
	assert_true(stored_in(repo_dir, b1.id, "logs/y.log"));
	e = entry(repo_dir, b1.id, "big.db");
	{
		json_t *layers = json_object_get(e, "layers");
		json_t *ranges = json_object_get(json_array_get(layers, 1), "ranges");

		assert_int_equal(json_array_size(layers), 2);
		assert_string_equal(json_string_value(json_object_get(json_array_get(layers, 0),
								      "in")), b0.id);
		/* Touching ranges became one: [4096, 8292). */
		assert_int_equal(json_array_size(ranges), 1);
		assert_int_equal(json_integer_value(json_array_get(json_array_get(ranges, 0), 0)),
				 4096);
		assert_int_equal(json_integer_value(json_array_get(json_array_get(ranges, 0), 1)),
				 4196);
		/* Only the ranges are stored: the rest is a hole. */
		run("test $(stat -c %%b %s/backups/%s/data/1/big.db) -le 24", repo_dir, b1.id);
	}
	json_decref(e);
	run("cp -a %s %s", src[0], at("ref1"));

	/* Each backup restores to what it saw: big.db from its layers. */
	restore(r, b0.id, at("r0"));
	run("cmp %s/big.db %s%s/big.db", at("ref0"), at("r0"), src[0]);
	run("cmp %s/all/a1 %s%s/all/a1", at("ref0"), at("r0"), src[0]);
	run("test ! -e %s%s/none/n1 && test ! -e %s%s/tmp/t.tmp", at("r0"), src[0], at("r0"),
	    src[0]);
	restore(r, b1.id, at("r1"));
	run("cmp %s/big.db %s%s/big.db", at("ref1"), at("r1"), src[0]);
	run("cmp %s/logs/y.log %s%s/logs/y.log", at("ref1"), at("r1"), src[0]);
	run("cmp %s/logs/x.log %s%s/logs/x.log", at("ref1"), at("r1"), src[0]);
	run("cmp %s/none/n1 %s%s/none/n1", at("ref1"), at("r1"), src[0]);
	assert_int_equal(vss_repo_verify(r, NULL, NULL, NULL, &err), 0);

	/* An incremental on it: an unchanged partial file keeps its layers. */
	assert_int_equal(backup(r, VSS_BT_INCREMENTAL, src, 1, false, false, &wmd, 1, &t2, &b2,
				&err), 0);
	e = entry(repo_dir, b2.id, "big.db");
	assert_int_equal(json_array_size(json_object_get(e, "layers")), 2);
	json_decref(e);
	restore(r, b2.id, at("r2"));
	run("cmp %s/big.db %s%s/big.db", at("ref1"), at("r2"), src[0]);
	/* A differential: against the full, and its stamp. */
	assert_int_equal(backup(r, VSS_BT_DIFFERENTIAL, src, 1, false, false, &wmd, 1, &t3, &b3,
				&err), 0);
	assert_string_equal(b3.base, b0.id);
	assert_string_equal(t3.prev_seen[0], t1.prev_seen[0]);

	/* A damaged range is found by verify and by a restore. */
	run("printf X | dd of=%s/backups/%s/data/1/big.db bs=1 seek=5000 conv=notrunc "
	    "status=none", repo_dir, b1.id);
	assert_int_equal(vss_repo_verify(r, b1.id, NULL, NULL, &err), -EBADMSG);
	{
		struct vss_restore_params p = { .size = sizeof(p), .to = at("r4") };
		struct vss_restore_result res;

		assert_int_equal(vss_repo_restore(r, b1.id, &p, &res, &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "big.db"));
	}
	free_turn(&t0);
	free_turn(&t1);
	free_turn(&t2);
	free_turn(&t3);
	vss_wmd_free(wmd);
	vss_repo_close(r);
}

/* ---- a writer that does not mix, and one with full backups only ---- */

static void exclusive_and_full_only_writers(void **state)
{
	static const struct fileset s2[] = { { "ex/two", "*", true, VSS_FSBT_FULL_BACKUP_REQUIRED } };
	static const struct fileset s3[] = {
		{ "ex/three", "*", true, VSS_FSBT_FULL_BACKUP_REQUIRED },
	};
	char ex_dir[PATH_MAX];
	const char *src[] = { ex_dir };
	struct vss_wmd *w[2];
	struct vss_backup_info b[5];
	struct vss_error err = { 0 };
	struct turn t[5];
	struct vss_repo *r;

	(void)state;
	snprintf(ex_dir, sizeof(ex_dir), "%s", at("ex"));
	memset(t, 0, sizeof(t));
	run("mkdir -p %s/two %s/three && echo 2 > %s/two/f && echo 3 > %s/three/f", src[0],
	    src[0], src[0], src[0]);
	w[0] = writer("ex", CLS2, INST2, VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL |
		      VSS_BS_EXCLUSIVE_INCREMENTAL_DIFFERENTIAL | VSS_BS_TIMESTAMPED, s2, 1);
	w[1] = writer("fullonly", CLS3, INST3, 0, s3, 1);
	assert_int_equal(vss_repo_open(at("exrepo"), VSS_REPO_CREATE, &r, &err), 0);
	assert_int_equal(backup(r, VSS_BT_FULL, src, 1, false, false, w, 2, &t[0], &b[0], &err), 0);
	assert_int_equal(backup(r, VSS_BT_INCREMENTAL, src, 1, false, false, w, 2, &t[1], &b[1],
				&err), 0);
	assert_int_equal(t[1].types[0], VSS_BT_INCREMENTAL);
	assert_non_null(t[1].prev_seen[0]);
	/* Full only: whole, every time, whatever its mask says for
	 * incrementals, and no stamp. */
	assert_int_equal(t[1].types[1], VSS_BT_FULL);
	assert_null(t[1].prev_seen[1]);
	assert_true(stored_in(at("exrepo"), b[1].id, "three/f"));
	assert_false(stored_in(at("exrepo"), b[1].id, "two/f"));
	/* A differential after an incremental would be a mix: a full for it. */
	assert_int_equal(backup(r, VSS_BT_DIFFERENTIAL, src, 1, false, false, w, 2, &t[2], &b[2],
				&err), 0);
	assert_int_equal(t[2].types[0], VSS_BT_FULL);
	assert_null(t[2].prev_seen[0]);
	assert_true(stored_in(at("exrepo"), b[2].id, "two/f"));
	/* That full starts its chain again: a differential, then an
	 * incremental after it is a mix again. */
	assert_int_equal(backup(r, VSS_BT_FULL, src, 1, false, false, w, 2, &t[3], &b[3], &err), 0);
	assert_int_equal(backup(r, VSS_BT_DIFFERENTIAL, src, 1, false, false, w, 2, &t[4], &b[4],
				&err), 0);
	assert_int_equal(t[4].types[0], VSS_BT_DIFFERENTIAL);
	assert_non_null(t[4].prev_seen[0]);
	free_turn(&t[0]);
	assert_int_equal(backup(r, VSS_BT_INCREMENTAL, src, 1, false, false, w, 2, &t[0], &b[0],
				&err), 0);
	assert_int_equal(t[0].types[0], VSS_BT_FULL);
	for (int i = 0; i < 5; i++)
		free_turn(&t[i]);
	vss_wmd_free(w[0]);
	vss_wmd_free(w[1]);
	vss_repo_close(r);
}

/* ---- only the components' files; what is refused ---- */

static void outside(struct vss_bcd *bcd, void *arg)
{
	struct vss_bcd_range range = { 0, 10 };

	(void)arg;
	assert_int_equal(vss_bcd_add_partial_file(vss_bcd_component_at(bcd, 0),
		&(struct vss_bcd_partial_file){ .path = "/etc", .filename = "passwd",
		.ranges = &range, .range_count = 1 }, NULL), 0);
}

static void components_only_and_refusals(void **state)
{
	static const struct fileset sets[] = {
		{ "co/a/db", "*.db", false, VSS_FSBT_ALL_BACKUP_REQUIRED },
		{ "co/b", "*", true, VSS_FSBT_DEFAULT },
	};
	struct vss_wmd *wmd;
	struct vss_backup_info b0;
	struct vss_error err = { 0 };
	struct turn t = { .prepare = outside };
	struct vss_bcd *bcd;
	struct vss_repo *r;
	char **paths;
	size_t n;
	json_t *e;

	(void)state;
	run("mkdir -p %s/a/db %s/b/c %s/elsewhere && echo 1 > %s/a/db/x.db && "
	    "echo 2 > %s/a/db/x.txt && echo 3 > %s/b/c/f && echo 4 > %s/elsewhere/g",
	    at("co"), at("co"), at("co"), at("co"), at("co"), at("co"), at("co"));
	wmd = writer("db", CLS1, INST1, VSS_BS_INCREMENTAL, sets, 2);
	assert_int_equal(vss_bcd_new(VSS_BT_FULL, true, &bcd, &err), 0);
	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS1, .instance_id = INST1, .name = "data" }, NULL, &err), 0);
	/* The sources: the file sets' directories. */
	assert_int_equal(vss_backup_component_paths(bcd, (const struct vss_wmd *const *)&wmd, 1,
						    &paths, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(paths[0], at("co/a/db"));
	assert_string_equal(paths[1], at("co/b"));
	vss_bcd_free(bcd);
	assert_int_equal(vss_repo_open(at("corepo"), VSS_REPO_CREATE, &r, &err), 0);
	assert_int_equal(backup(r, VSS_BT_FULL, (const char *const *)paths, n, false, true, &wmd,
				1, NULL, &b0, &err), 0);
	assert_int_equal(b0.files_stored, 2);   /* x.db and f: not x.txt */
	/* Entries: the two sources' directories, x.db, c and c/f. */
	assert_int_equal(b0.files, 5);
	e = entry(at("corepo"), b0.id, "c/f");
	assert_non_null(e);
	json_decref(e);
	/* A partial file outside the sources is refused, naming the writer. */
	assert_int_equal(backup(r, VSS_BT_FULL, (const char *const *)paths, n, false, true, &wmd,
				1, &t, &b0, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "writer db"));
	assert_non_null(strstr(err.msg, "/etc/passwd"));
	/* A set that needs a snapshot cannot be read live. */
	assert_int_equal(backup(r, VSS_BT_FULL, (const char *const *)paths, n, true, true, &wmd,
				1, NULL, &b0, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "writer db needs"));
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	vss_wmd_free(wmd);
	vss_repo_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(masks_stamps_partial_differenced),
		cmocka_unit_test(exclusive_and_full_only_writers),
		cmocka_unit_test(components_only_and_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
