/*
 * tests/writer/docedit.h - what the writer document tests share: the JSON
 * example of a doc/ page, and an editor that changes one member of a
 * document by path (for the refusal cases).  Include after <cmocka.h> and
 * <jansson.h>; main() may point doc_dir at the source tree's doc/.
 */
#ifndef VSS_TESTS_WRITER_DOCEDIT_H
#define VSS_TESTS_WRITER_DOCEDIT_H

static const char *doc_dir = "doc";

/* The first ```json block of a file in doc/, malloc'd. */
static char *doc_example(const char *name)
{
	char path[1024], *text, *start, *end, *out;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", doc_dir, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	text = malloc((size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	text[n] = '\0';
	fclose(f);
	start = strstr(text, "```json\n");
	assert_non_null(start);
	start += 8;
	end = strstr(start, "```");
	assert_non_null(end);
	out = strndup(start, (size_t)(end - start));
	free(text);
	return out;
}

/* Sets (value: JSON text) or deletes (value NULL) the member at @path,
 * "a/0/b"; an array index one past the end appends. */
static void edit(json_t *root, const char *path, const char *value)
{
	char buf[256], *save, *tok, *next;
	json_t *cur = root, *v = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	tok = strtok_r(buf, "/", &save);
	while ((next = strtok_r(NULL, "/", &save))) {
		cur = json_is_array(cur) ? json_array_get(cur, (size_t)atoi(tok))
					 : json_object_get(cur, tok);
		assert_non_null(cur);
		tok = next;
	}
	if (value) {
		v = json_loads(value, JSON_DECODE_ANY, NULL);
		assert_non_null(v);
	}
	if (json_is_array(cur)) {
		size_t i = (size_t)atoi(tok);
		if (!v)
			assert_int_equal(json_array_remove(cur, i), 0);
		else if (i == json_array_size(cur))
			assert_int_equal(json_array_append_new(cur, v), 0);
		else
			assert_int_equal(json_array_set_new(cur, i, v), 0);
	} else if (!v) {
		assert_int_equal(json_object_del(cur, tok), 0);
	} else {
		assert_int_equal(json_object_set_new(cur, tok, v), 0);
	}
}

#endif
