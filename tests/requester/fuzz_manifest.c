/*
 * tests/requester/fuzz_manifest.c - libFuzzer target: the input is one line
 * of a backup's manifest (doc/backup-format.md), which comes from a
 * repository anyone with write access to it may have crafted.  A line the
 * parser accepts names a path that stays inside its source (no "..", not
 * absolute, no empty component) and, written out again and read back,
 * gives the same line; the direct line reader (entry_from_line) and the
 * one through jansson accept the same lines and read the same entries, and
 * the line the backup writes (entry_line) reads back as its entry.  The
 * whole input, read as a manifest into a backup's base (entry_index_parse:
 * lines read in place, several a run), gives the entries its lines give.
 *
 * Built with -DVSS_MANIFEST_SEEDS it is instead the seed maker that
 * tests/fuzz/run-fuzz.sh runs first: it writes one line of each kind.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "requester/repo_i.h"

#ifndef VSS_MANIFEST_SEEDS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void stays_inside(const char *p)
{
	if (p[0] == '/' || strstr(p, "//"))
		abort();
	for (const char *c = p; *c;) {
		size_t n = strcspn(c, "/");

		if (n == 0 || (n == 2 && c[0] == '.' && c[1] == '.') || (n == 1 && c[0] == '.'))
			abort();
		c += n + (c[n] == '/');
	}
}

/* The same entry, as a line sorted by key. */
static char *canonical(const struct entry *e)
{
	json_t *j = entry_to_json(e);
	char *text = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;

	json_decref(j);
	if (!text)
		abort();
	return text;
}

/* The line the writer makes of @e reads back as @e. */
static void written_reads_back(const struct entry *e)
{
	struct repo_line l = { 0 };
	struct entry back;
	char *a, *b;

	if (entry_line(e, &l) < 0 || l.len == 0 || l.buf[l.len - 1] != '\n' ||
	    entry_from_line(l.buf, l.len, &back) < 0)
		abort();
	a = canonical(e);
	b = canonical(&back);
	if (strcmp(a, b) != 0)
		abort();
	free(a);
	free(b);
	free(l.buf);
	entry_release(&back);
}

static void none_unseen(void *arg, struct entry *e)
{
	(void)arg;
	(void)e;
	abort();        /* every path was looked up */
}

/* The whole input as a manifest read into an index (entry_index_parse,
 * which reads lines in place and borrows their strings): it is refused
 * exactly when one of its lines is, naming the first; else every line's
 * path finds the entry of the last line with that path, which reads as
 * that line does on its own. */
static void index_agrees(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), **canon = NULL, *a;
	struct { size_t off, len; } *lines = NULL;
	size_t nlines = 0, first_bad = 0;
	struct entry_index *x;
	unsigned long bad_line;
	int rc;

	if (!text)
		return;
	memcpy(text, data, size);
	for (const uint8_t *c = data, *end = data + size; c < end; nlines++) {
		const uint8_t *nl = memchr(c, '\n', (size_t)(end - c));

		c = nl ? nl + 1 : end;
	}
	if (nlines > 2000) {            /* the check below is quadratic */
		free(text);
		return;
	}
	rc = entry_index_parse(text, size, &x, &bad_line);
	if (rc == -ENOMEM)
		return;
	if (!(canon = calloc(nlines + 1, sizeof(*canon))) ||
	    !(lines = calloc(nlines + 1, sizeof(*lines))))
		abort();
	for (size_t i = 0, off = 0; i < nlines; i++) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);

		lines[i].off = off;
		lines[i].len = nl ? (size_t)(nl - data) + 1 - off : size - off;
		off += lines[i].len;
	}
	/* Every line on its own (pass 0), then looked up in the index (1). */
	for (int pass = 0; pass < 2 && !first_bad; pass++) {
		for (size_t i = 0; i < nlines; i++) {
			char *line = malloc(lines[i].len + 1);
			struct entry e, *found;
			bool later = false;

			if (!line)
				abort();
			memcpy(line, data + lines[i].off, lines[i].len);
			line[lines[i].len] = '\0';
			if (entry_from_line(line, lines[i].len, &e) < 0) {
				if (pass == 1)
					abort();
				if (!first_bad)
					first_bad = i + 1;
				free(line);
				continue;
			}
			if (pass == 0) {
				canon[i] = canonical(&e);
			} else {
				if (!(found = entry_index_find_seen(x, e.src, e.path)))
					abort();
				stays_inside(found->path);
				if (found->kind == EK_HARD)
					stays_inside(found->link);
				a = canonical(found);
				/* Its own line's entry, or a later line's of its path. */
				for (size_t k = i; k < nlines && !later; k++)
					later = strcmp(a, canon[k]) == 0;
				if (!later)
					abort();
				free(a);
			}
			entry_release(&e);
			free(line);
		}
		/* Refused exactly when a line is, naming the first. */
		if (pass == 0 && (first_bad ? rc != -EBADMSG || bad_line != first_bad : rc != 0))
			abort();
	}
	if (!first_bad)
		entry_index_unseen(x, none_unseen, NULL);
	entry_index_free(x);
	for (size_t i = 0; i < nlines; i++)
		free(canon[i]);
	free(canon);
	free(lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = json_loadb((const char *)data, size, 0, NULL), *out, *again;
	char *line = malloc(size + 1), *a, *b;
	struct entry e, e2, fast;
	int fast_rc;

	index_agrees(data, size);
	if (!line)
		return 0;
	/* The direct reader and jansson agree on every input: both refuse it,
	 * or both read the same entry. */
	memcpy(line, data, size);
	line[size] = '\0';
	fast_rc = entry_from_line(line, size, &fast);
	free(line);
	if (!j || entry_from_json(j, &e) < 0) {
		if (fast_rc == 0)
			abort();
		json_decref(j);
		return 0;
	}
	if (fast_rc < 0)
		abort();
	a = canonical(&e);
	b = canonical(&fast);
	if (strcmp(a, b) != 0)
		abort();
	free(a);
	free(b);
	entry_release(&fast);
	stays_inside(e.path);
	if (e.kind == EK_HARD)
		stays_inside(e.link);
	written_reads_back(&e);
	out = entry_to_json(&e);
	if (entry_from_json(out, &e2) < 0)
		abort();
	again = entry_to_json(&e2);
	a = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
	b = json_dumps(again, JSON_SORT_KEYS | JSON_COMPACT);
	if (!a || !b || strcmp(a, b) != 0)
		abort();
	free(a);
	free(b);
	json_decref(out);
	json_decref(again);
	entry_release(&e);
	entry_release(&e2);
	json_decref(j);
	return 0;
}
#else
#include "write_seeds.h"

int main(int argc, char **argv)
{
	static const char *const seeds[] = {
		"{\"s\":1,\"p\":\"\",\"k\":\"d\",\"mode\":493,\"uid\":0,\"gid\":0,\"mtime\":1,"
		"\"atime\":1,\"ctime\":1,\"ino\":2}",
		"{\"s\":1,\"p\":\"a/b\",\"k\":\"f\",\"mode\":420,\"uid\":0,\"gid\":0,\"mtime\":1,"
		"\"atime\":1,\"ctime\":1,\"ino\":12,\"size\":10485761,"
		"\"in\":\"20261206T024512.345Z-1f2e3d4c\",\"sha256\":"
		"\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
		"\"data\":[[10485760,1]],\"x\":{\"user.a\":\"AP8=\"}}",
		"{\"s\":2,\"p64\":\"/w==\",\"k\":\"l\",\"mode\":511,\"uid\":0,\"gid\":0,"
		"\"mtime\":1,\"atime\":1,\"ctime\":1,\"ino\":3,\"l\":\"../x\"}",
		"{\"s\":1,\"p\":\"c\",\"k\":\"h\",\"h\":\"a/b\"}",
		/* Version 2: a partial file of a component, in two layers. */
		"{\"s\":1,\"p\":\"db\",\"k\":\"f\",\"mode\":420,\"uid\":0,\"gid\":0,"
		"\"mtime\":1,\"atime\":1,\"ctime\":1,\"ino\":13,\"size\":8192,"
		"\"in\":\"20261206T024512.345Z-1f2e3d4c\",\"sha256\":"
		"\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
		"\"layers\":[{\"in\":\"20261205T000000.000Z-00000000\",\"size\":4096,"
		"\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
		"\"data\":[[0,1]]},{\"in\":\"20261206T024512.345Z-1f2e3d4c\",\"size\":8192,"
		"\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
		"\"ranges\":[[0,10],[4096,4096]]}],\"c\":2}",
		"{\"s\":1,\"p\":\"null\",\"k\":\"c\",\"mode\":438,\"uid\":0,\"gid\":0,\"mtime\":1,"
		"\"atime\":1,\"ctime\":1,\"ino\":4,\"rdev\":259}",
		"{\"s\":1,\"p\":\"gone\",\"k\":\"-\"}",
		/* As backups write them: big numbers, the direct reader's shape. */
		"{\"s\":1,\"p\":\"d0000/f000000\",\"k\":\"f\",\"mode\":420,\"uid\":0,"
		"\"gid\":0,\"mtime\":1796534434424752637,\"atime\":1796534434422925808,"
		"\"ctime\":-9223372036854775808,\"ino\":131075,\"size\":2124,"
		"\"in\":\"20261206T052050.108Z-32718ea2\",\"sha256\":"
		"\"47a1bbcd57a6828a80cc1c5f0c6d201f1e3b93e3960bef4e40cab94aaccbdaba\"}\n",
		"{ \"s\" : 1 , \"p\":\"l\",\"k\":\"l\",\"mode\":511,\"l\":\"a b\",\"c\":3}",
		/* A manifest of several lines, one path twice (the last wins). */
		"{\"s\":1,\"p\":\"\",\"k\":\"d\",\"mode\":493,\"ino\":2}\n"
		"{\"s\":1,\"p\":\"a\",\"k\":\"l\",\"mode\":511,\"l\":\"b\"}\n"
		"{\"s\":1,\"p64\":\"/w==\",\"k\":\"-\"}\n"
		"{\"s\":1,\"p\":\"a\",\"k\":\"h\",\"h\":\"c/d\"}\n"
		"{\"s\":2,\"p\":\"a\",\"k\":\"-\"}",
	};

	return write_seeds(argc, argv, seeds, sizeof(seeds) / sizeof(seeds[0]));
}
#endif
