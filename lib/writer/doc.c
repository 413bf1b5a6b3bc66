/*
 * writer/doc.c - what the two documents (metadata.c: writer metadata;
 * components.c: backup components) share, declared in writer_doc_i.h: the
 * JSON path of the value being checked, for messages; the checks of text,
 * names, paths, file specs and UUIDs; typed member readers over jansson;
 * serializing, memory and duplicate-finding helpers; the names of the
 * backup types, which both documents write.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer/writer_doc_i.h"

void doc_ctx_init(struct doc_ctx *c, struct vss_error *err)
{
	c->err = err;
	c->path[0] = '$';
	c->path[1] = '\0';
	c->len = 1;
	vss_error_clear(err);
}

static size_t doc_append_path(struct doc_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static size_t doc_append_path(struct doc_ctx *c, const char *fmt, ...)
{
	size_t mark = c->len, room = sizeof(c->path) - c->len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->path + c->len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	c->len += (size_t)n < room ? (size_t)n : room - 1;
	return mark;
}

size_t doc_enter(struct doc_ctx *c, const char *member)
{
	return doc_append_path(c, ".%s", member);
}

size_t doc_enter_index(struct doc_ctx *c, size_t i)
{
	return doc_append_path(c, "[%zu]", i);
}

void doc_leave(struct doc_ctx *c, size_t mark)
{
	c->len = mark;
	c->path[mark] = '\0';
}

static int doc_vfail(struct doc_ctx *c, const char *member, int code,
		     const char *fmt, va_list ap)
{
	char msg[VSS_ERROR_MSG_MAX];

	if (!c->err)
		return code;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (member)
		vss_error_set(c->err, code, "%s.%s: %s", c->path, member, msg);
	else
		vss_error_set(c->err, code, "%s: %s", c->path, msg);
	/* One line, whatever the document held. */
	for (char *p = c->err->msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return code;
}

int doc_fail(struct doc_ctx *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	doc_vfail(c, NULL, code, fmt, ap);
	va_end(ap);
	return code;
}

int doc_fail_at(struct doc_ctx *c, const char *member, int code,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	doc_vfail(c, member, code, fmt, ap);
	va_end(ap);
	return code;
}

int doc_nomem(struct doc_ctx *c)
{
	return doc_fail(c, -ENOMEM, "out of memory");
}

const char *doc_quote(char buf[DOC_QUOTE_BUF], const char *s)
{
	size_t n = strlen(s), max = DOC_QUOTE_BUF - 6, o = 0;
	bool cut = n > max;

	if (cut) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	buf[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)s[i];
		buf[o++] = b < 0x20 || b == 0x7f ? '?' : (char)b;
	}
	if (cut) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char b = s[i];
		size_t k;
		uint32_t cp;

		if (b < 0x80) {
			i++;
			continue;
		} else if (b >= 0xC2 && b <= 0xDF) {
			k = 1;
			cp = b & 0x1F;
		} else if (b >= 0xE0 && b <= 0xEF) {
			k = 2;
			cp = b & 0x0F;
		} else if (b >= 0xF0 && b <= 0xF4) {
			k = 3;
			cp = b & 0x07;
		} else {
			return false;
		}
		if (n - i - 1 < k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return false;
		i += k + 1;
	}
	return true;
}

int doc_check_text(struct doc_ctx *c, const char *member, const char *s,
		   size_t max, unsigned flags)
{
	size_t n = strlen(s);

	if (n == 0 && !(flags & DOC_EMPTY_OK))
		return doc_fail_at(c, member, -EINVAL, "must not be empty");
	if (n > max)
		return doc_fail_at(c, member, -EINVAL,
				   "is %zu bytes, over the limit of %zu", n, max);
	if (!utf8_valid((const unsigned char *)s, n))
		return doc_fail_at(c, member, -EINVAL, "is not valid UTF-8");
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)s[i];
		if ((b < 0x20 || b == 0x7f) &&
		    !((flags & DOC_CTL_OK) && (b == '\t' || b == '\n' || b == '\r')))
			return doc_fail_at(c, member, -EINVAL,
					   "has control character 0x%02x at byte %zu",
					   b, i);
	}
	return 0;
}

/* Text of at most @max bytes without a '/'. */
static int check_slashless(struct doc_ctx *c, const char *member, const char *s, size_t max)
{
	char q[DOC_QUOTE_BUF];
	int r = doc_check_text(c, member, s, max, 0);

	if (r < 0)
		return r;
	if (strchr(s, '/'))
		return doc_fail_at(c, member, -EINVAL, "must not contain '/', got %s",
				   doc_quote(q, s));
	return 0;
}

int doc_check_name(struct doc_ctx *c, const char *member, const char *s)
{
	return check_slashless(c, member, s, VSS_DOC_NAME_MAX);
}

int doc_check_logical_path(struct doc_ctx *c, const char *member, const char *s)
{
	char q[DOC_QUOTE_BUF];
	size_t n = strlen(s);
	int r = doc_check_text(c, member, s, VSS_DOC_NAME_MAX, DOC_EMPTY_OK);

	if (r < 0 || n == 0)
		return r;
	if (s[0] == '/' || s[n - 1] == '/' || strstr(s, "//"))
		return doc_fail_at(c, member, -EINVAL,
				   "must be names joined by single '/', without a leading or trailing '/', got %s",
				   doc_quote(q, s));
	return 0;
}

/* Is s[0..n) "." or ".."? */
static bool dot_segment(const char *s, size_t n)
{
	return (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

int doc_check_abs_path(struct doc_ctx *c, const char *member, const char *s)
{
	char q[DOC_QUOTE_BUF];
	size_t n = strlen(s);
	int r = doc_check_text(c, member, s, VSS_DOC_PATH_MAX, 0);

	if (r < 0)
		return r;
	if (s[0] != '/')
		return doc_fail_at(c, member, -EINVAL, "must be an absolute path, got %s",
				   doc_quote(q, s));
	if (n == 1)
		return 0;
	if (s[n - 1] == '/' || strstr(s, "//"))
		return doc_fail_at(c, member, -EINVAL,
				   "must not have an empty segment ('//' or a trailing '/'), got %s",
				   doc_quote(q, s));
	for (const char *seg = s + 1; *seg;) {
		const char *end = strchr(seg, '/');
		size_t len = end ? (size_t)(end - seg) : strlen(seg);
		if (dot_segment(seg, len))
			return doc_fail_at(c, member, -EINVAL,
					   "must not have a '.' or '..' segment, got %s",
					   doc_quote(q, s));
		seg += len + (end != NULL);
	}
	return 0;
}

int doc_check_spec(struct doc_ctx *c, const char *member, const char *s)
{
	int r = check_slashless(c, member, s, VSS_DOC_SPEC_MAX);

	if (r < 0)
		return r;
	if (dot_segment(s, strlen(s)))
		return doc_fail_at(c, member, -EINVAL, "must not be '.' or '..'");
	return 0;
}

int doc_check_uuid(struct doc_ctx *c, const char *member, const char *s,
		   char out[DOC_UUID_LEN + 1])
{
	char q[DOC_QUOTE_BUF];
	bool nil = true;
	size_t i;

	for (i = 0; i < DOC_UUID_LEN && s[i]; i++) {
		char ch = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (ch != '-')
				break;
			out[i] = '-';
			continue;
		}
		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			break;
		nil = nil && ch == '0';
		out[i] = ch;
	}
	if (i != DOC_UUID_LEN || s[i] != '\0')
		return doc_fail_at(c, member, -EINVAL,
				   "not a UUID (8-4-4-4-12 hexadecimal digits): %s",
				   doc_quote(q, s));
	out[DOC_UUID_LEN] = '\0';
	if (nil)
		return doc_fail_at(c, member, -EINVAL, "must not be the nil UUID");
	return 0;
}

const char *doc_name_of(const struct doc_name *t, unsigned value)
{
	for (; t->name; t++)
		if (t->value == value)
			return t->name;
	return NULL;
}

unsigned doc_value_of(const struct doc_name *t, const char *name)
{
	for (; name && t->name; t++)
		if (strcmp(t->name, name) == 0)
			return t->value;
	return 0;
}

json_t *doc_flag_array(const struct doc_name *t, uint32_t value)
{
	json_t *a = json_array();

	for (; a && t->name; t++)
		if ((value & t->value) && json_array_append_new(a, json_string(t->name))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "real";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

int doc_root(struct doc_ctx *c, const char *buf, size_t len, size_t max_size,
	     const char *format, json_t **out)
{
	char q[DOC_QUOTE_BUF];
	json_error_t jerr;
	const char *fmt, *nul;
	json_int_t version;
	json_t *root;
	int r;

	if (!max_size)
		max_size = VSS_DOC_SIZE_DEFAULT;
	if (len > max_size)
		return doc_fail(c, -EFBIG, "document is %zu bytes, over the limit of %zu",
				len, max_size);
	/* jansson would stop at a NUL byte and report "end of file". */
	if ((nul = memchr(buf, '\0', len)))
		return doc_fail(c, -EBADMSG, "malformed JSON: NUL byte at offset %zu",
				(size_t)(nul - buf));
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return doc_fail(c, -EBADMSG, "malformed JSON at line %d, column %d: %s",
				jerr.line, jerr.column, jerr.text);
	if (!json_is_object(root)) {
		r = doc_fail(c, -EINVAL, "expected object, got %s", json_type_name(root));
		goto fail;
	}
	/* The identity first: a document of the other kind should say so. */
	if ((r = doc_string(c, root, "format", true, &fmt)) < 0)
		goto fail;
	if (strcmp(fmt, format)) {
		r = doc_fail_at(c, "format", -EINVAL, "expected \"%s\", got %s",
				format, doc_quote(q, fmt));
		goto fail;
	}
	if ((r = doc_int(c, root, "version", &version)) < 0)
		goto fail;
	if (version != DOC_VERSION) {
		r = doc_fail_at(c, "version", -EINVAL,
				"unsupported version %lld (this library reads version %d)",
				(long long)version, DOC_VERSION);
		goto fail;
	}
	*out = root;
	return 0;
fail:
	json_decref(root);
	return r;
}

int doc_members(struct doc_ctx *c, json_t *obj, const char *const *allowed)
{
	char q[DOC_QUOTE_BUF];
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return doc_fail(c, -EINVAL, "expected object, got %s", json_type_name(obj));
	json_object_foreach(obj, key, v) {
		const char *const *a;
		for (a = allowed; *a && strcmp(*a, key); a++)
			;
		if (!*a)
			return doc_fail(c, -EINVAL, "unknown member %s", doc_quote(q, key));
	}
	return 0;
}

/* The member @key of type @type, or NULL if it is missing and optional. */
static int doc_get(struct doc_ctx *c, json_t *obj, const char *key,
		   json_type type, bool required, json_t **out)
{
	json_t *v = json_object_get(obj, key);
	json_type t;
	const char *want;

	*out = NULL;
	if (!v)
		return required ? doc_fail_at(c, key, -EINVAL, "missing required member")
				: 0;
	t = json_typeof(v);
	if (type == JSON_TRUE ? !json_is_boolean(v) : t != type) {
		switch (type) {
		case JSON_OBJECT: want = "object"; break;
		case JSON_ARRAY: want = "array"; break;
		case JSON_STRING: want = "string"; break;
		case JSON_INTEGER: want = "integer"; break;
		default: want = "boolean"; break;
		}
		return doc_fail_at(c, key, -EINVAL, "expected %s, got %s", want,
				   json_type_name(v));
	}
	*out = v;
	return 0;
}

int doc_string(struct doc_ctx *c, json_t *obj, const char *key, bool required,
	       const char **out)
{
	json_t *v;
	int r = doc_get(c, obj, key, JSON_STRING, required, &v);

	*out = v ? json_string_value(v) : NULL;
	return r;
}

int doc_bool(struct doc_ctx *c, json_t *obj, const char *key, bool dflt,
	     bool *out)
{
	json_t *v;
	int r = doc_get(c, obj, key, JSON_TRUE, false, &v);

	*out = v ? json_is_true(v) : dflt;
	return r;
}

int doc_int(struct doc_ctx *c, json_t *obj, const char *key, json_int_t *out)
{
	json_t *v;
	int r = doc_get(c, obj, key, JSON_INTEGER, true, &v);

	*out = v ? json_integer_value(v) : 0;
	return r;
}

int doc_array(struct doc_ctx *c, json_t *obj, const char *key, bool required,
	      json_t **out)
{
	return doc_get(c, obj, key, JSON_ARRAY, required, out);
}

int doc_object(struct doc_ctx *c, json_t *obj, const char *key, bool required,
	       json_t **out)
{
	return doc_get(c, obj, key, JSON_OBJECT, required, out);
}

const char *doc_name_list(char *buf, size_t size, const struct doc_name *t)
{
	size_t o = 0;

	buf[0] = '\0';
	for (; t->name && o < size; t++) {
		int n = snprintf(buf + o, size - o, "%s%s", o ? ", " : "", t->name);
		if (n < 0)
			break;
		o += (size_t)n;
	}
	return buf;
}

static int doc_name_value(struct doc_ctx *c, const char *member,
			  const struct doc_name *t, const char *s, unsigned *out)
{
	char q[DOC_QUOTE_BUF], list[320];

	for (const struct doc_name *n = t; n->name; n++)
		if (!strcmp(n->name, s)) {
			*out = n->value;
			return 0;
		}
	return doc_fail_at(c, member, -EINVAL, "unknown value %s (one of: %s)",
			   doc_quote(q, s), doc_name_list(list, sizeof(list), t));
}

int doc_enum(struct doc_ctx *c, json_t *obj, const char *key,
	     const struct doc_name *t, bool required, unsigned dflt,
	     unsigned *out)
{
	const char *s;
	int r = doc_string(c, obj, key, required, &s);

	*out = dflt;
	if (r < 0 || !s)
		return r;
	return doc_name_value(c, key, t, s, out);
}

int doc_flags(struct doc_ctx *c, json_t *obj, const char *key,
	      const struct doc_name *t, uint32_t dflt, uint32_t *out)
{
	char q[DOC_QUOTE_BUF];
	json_t *a, *v;
	size_t i, mark;
	int r = doc_array(c, obj, key, false, &a);

	*out = dflt;
	if (r < 0 || !a)
		return r;
	*out = 0;
	mark = doc_enter(c, key);
	json_array_foreach(a, i, v) {
		size_t m = doc_enter_index(c, i);
		unsigned bit = 0;
		if (!json_is_string(v)) {
			r = doc_fail(c, -EINVAL, "expected string, got %s", json_type_name(v));
			break;
		}
		if ((r = doc_name_value(c, NULL, t, json_string_value(v), &bit)) < 0)
			break;
		if (*out & bit) {
			r = doc_fail(c, -EINVAL, "%s given twice",
				     doc_quote(q, json_string_value(v)));
			break;
		}
		*out |= bit;
		doc_leave(c, m);
	}
	if (r == 0)
		doc_leave(c, mark);
	return r;
}

bool doc_put(json_t *obj, const char *key, json_t *v)
{
	/* json_object_set_new takes (and on failure frees) v, NULL included. */
	return json_object_set_new(obj, key, v) == 0;
}

bool doc_put_str(json_t *obj, const char *key, const char *s)
{
	return !s || doc_put(obj, key, json_string(s));
}

bool doc_append(json_t *arr, json_t *v)
{
	return json_array_append_new(arr, v) == 0;
}

int doc_dump(struct doc_ctx *c, json_t *root, char **json, size_t *len)
{
	const size_t flags = JSON_INDENT(2);
	size_t n = json_dumpb(root, NULL, 0, flags);
	char *buf;

	if (n == 0)
		return doc_nomem(c);
	/* Our own buffer: the caller frees it with free() whatever allocator
	 * jansson was given. */
	buf = malloc(n + 2);
	if (!buf)
		return doc_nomem(c);
	if (json_dumpb(root, buf, n, flags) != n) {
		free(buf);
		return doc_nomem(c);
	}
	buf[n++] = '\n';
	buf[n] = '\0';
	*json = buf;
	if (len)
		*len = n;
	return 0;
}

int doc_strdup(struct doc_ctx *c, const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : doc_nomem(c);
}

int doc_grow(struct doc_ctx *c, void *arr, size_t *cap, size_t n, size_t elem)
{
	size_t ncap;
	void *old, *q;

	if (n < *cap)
		return 0;
	/* @arr points at a "T *"; memcpy moves it without type punning. */
	memcpy(&old, arr, sizeof(old));
	ncap = *cap ? *cap * 2 : 4;
	q = reallocarray(old, ncap, elem);
	if (!q)
		return doc_nomem(c);
	memcpy(arr, &q, sizeof(q));
	*cap = ncap;
	return 0;
}

struct dup_sort {
	int (*cmp)(const void *ctx, size_t a, size_t b);
	const void *ctx;
};

static int dup_order(const void *a, const void *b, void *arg)
{
	const struct dup_sort *s = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int r = s->cmp(s->ctx, x, y);

	return r ? r : (x > y) - (x < y);
}

int doc_first_duplicate(size_t n, int (*cmp)(const void *ctx, size_t a, size_t b),
			const void *ctx, size_t *first, size_t *dup)
{
	struct dup_sort s = { cmp, ctx };
	size_t *idx;
	bool found = false;

	if (n < 2)
		return 0;
	idx = malloc(n * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	qsort_r(idx, n, sizeof(*idx), dup_order, &s);
	/* Equal items sort by index, so the smallest later one follows its
	 * group's first. */
	for (size_t i = 1; i < n; i++)
		if (!cmp(ctx, idx[i - 1], idx[i]) && (!found || idx[i] < *dup)) {
			*first = idx[i - 1];
			*dup = idx[i];
			found = true;
		}
	free(idx);
	return found;
}

const struct doc_name doc_backup_type_names[] = {
	{ "full", VSS_BT_FULL },
	{ "incremental", VSS_BT_INCREMENTAL },
	{ "differential", VSS_BT_DIFFERENTIAL },
	{ "log", VSS_BT_LOG },
	{ "copy", VSS_BT_COPY },
	{ NULL, 0 },
};
