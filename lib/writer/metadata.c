/*
 * writer/metadata.c - the writer metadata document (doc/writer-metadata.md):
 * built by writers, parsed and examined by requesters, and which file sets a
 * backup of each type takes.  Also the JSON helpers components.c shares.
 *
 * Parsing refuses anything the format does not allow, with a message naming
 * the JSON path; serializing what it accepted and parsing that again gives
 * the same document.  Builder and parser share one set of checks: the parser
 * calls the same internal setters, at the paths the builder would use.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer/writer_doc_i.h"

/* ------------------------------------------------------------------------
 * Shared: paths, messages, checks, readers
 * ------------------------------------------------------------------------ */

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

int doc_check_name(struct doc_ctx *c, const char *member, const char *s)
{
	char q[DOC_QUOTE_BUF];
	int r = doc_check_text(c, member, s, VSS_DOC_NAME_MAX, 0);

	if (r < 0)
		return r;
	if (strchr(s, '/'))
		return doc_fail_at(c, member, -EINVAL, "must not contain '/', got %s",
				   doc_quote(q, s));
	return 0;
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
	char q[DOC_QUOTE_BUF];
	int r = doc_check_text(c, member, s, VSS_DOC_SPEC_MAX, 0);

	if (r < 0)
		return r;
	if (strchr(s, '/'))
		return doc_fail_at(c, member, -EINVAL, "must not contain '/', got %s",
				   doc_quote(q, s));
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

/* "a, b, c": the names a value may take, for messages. */
static const char *name_list(char *buf, size_t size, const struct doc_name *t)
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
			   doc_quote(q, s), name_list(list, sizeof(list), t));
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

/* ------------------------------------------------------------------------
 * The writer metadata document
 * ------------------------------------------------------------------------ */

static const struct doc_name usage_names[] = {
	{ "user_data", VSS_UT_USER_DATA },
	{ "bootable_system_state", VSS_UT_BOOTABLE_SYSTEM_STATE },
	{ "system_service", VSS_UT_SYSTEM_SERVICE },
	{ "other", VSS_UT_OTHER },
	{ NULL, 0 },
};

static const struct doc_name source_names[] = {
	{ "transacted_db", VSS_ST_TRANSACTED_DB },
	{ "nontransacted_db", VSS_ST_NONTRANSACTED_DB },
	{ "other", VSS_ST_OTHER },
	{ NULL, 0 },
};

static const struct doc_name method_names[] = {
	{ "restore_if_not_there", VSS_RME_RESTORE_IF_NOT_THERE },
	{ "restore_if_can_replace", VSS_RME_RESTORE_IF_CAN_REPLACE },
	{ "stop_restore_start", VSS_RME_STOP_RESTORE_START },
	{ "restore_to_alternate_location", VSS_RME_RESTORE_TO_ALTERNATE_LOCATION },
	{ "restore_at_reboot", VSS_RME_RESTORE_AT_REBOOT },
	{ "restore_at_reboot_if_cannot_replace", VSS_RME_RESTORE_AT_REBOOT_IF_CANNOT_REPLACE },
	{ "custom", VSS_RME_CUSTOM },
	{ "restore_stop_start", VSS_RME_RESTORE_STOP_START },
	{ NULL, 0 },
};

static const struct doc_name writer_restore_names[] = {
	{ "never", VSS_WRE_NEVER },
	{ "if_replace_fails", VSS_WRE_IF_REPLACE_FAILS },
	{ "always", VSS_WRE_ALWAYS },
	{ NULL, 0 },
};

static const struct doc_name component_type_names[] = {
	{ "database", VSS_CT_DATABASE },
	{ "file_group", VSS_CT_FILE_GROUP },
	{ NULL, 0 },
};

static const struct doc_name kind_names[] = {
	{ "files", VSS_FSK_FILES },
	{ "database", VSS_FSK_DATABASE },
	{ "log", VSS_FSK_LOG },
	{ NULL, 0 },
};

const struct doc_name doc_backup_type_names[] = {
	{ "full", VSS_BT_FULL },
	{ "incremental", VSS_BT_INCREMENTAL },
	{ "differential", VSS_BT_DIFFERENTIAL },
	{ "log", VSS_BT_LOG },
	{ "copy", VSS_BT_COPY },
	{ NULL, 0 },
};

static const struct doc_name schema_names[] = {
	{ "differential", VSS_BS_DIFFERENTIAL },
	{ "incremental", VSS_BS_INCREMENTAL },
	{ "exclusive_incremental_differential", VSS_BS_EXCLUSIVE_INCREMENTAL_DIFFERENTIAL },
	{ "log", VSS_BS_LOG },
	{ "copy", VSS_BS_COPY },
	{ "timestamped", VSS_BS_TIMESTAMPED },
	{ "last_modify", VSS_BS_LAST_MODIFY },
	{ "lsn", VSS_BS_LSN },
	{ "writer_supports_new_target", VSS_BS_WRITER_SUPPORTS_NEW_TARGET },
	{ "writer_supports_restore_with_move", VSS_BS_WRITER_SUPPORTS_RESTORE_WITH_MOVE },
	{ "independent_system_state", VSS_BS_INDEPENDENT_SYSTEM_STATE },
	{ "rollforward_restore", VSS_BS_ROLLFORWARD_RESTORE },
	{ "restore_rename", VSS_BS_RESTORE_RENAME },
	{ "authoritative_restore", VSS_BS_AUTHORITATIVE_RESTORE },
	{ "writer_supports_parallel_restores", VSS_BS_WRITER_SUPPORTS_PARALLEL_RESTORES },
	{ NULL, 0 },
};

/* The backup-required bits; the snapshot-required bits are these << 8. */
static const struct doc_name fsbt_names[] = {
	{ "full", VSS_FSBT_FULL_BACKUP_REQUIRED },
	{ "differential", VSS_FSBT_DIFFERENTIAL_BACKUP_REQUIRED },
	{ "incremental", VSS_FSBT_INCREMENTAL_BACKUP_REQUIRED },
	{ "log", VSS_FSBT_LOG_BACKUP_REQUIRED },
	{ NULL, 0 },
};

struct wmd_file_set {
	enum vss_file_set_kind kind;
	char *path, *file_spec, *alternate_path;
	bool recursive;
	uint32_t mask;
};

struct wmd_dep {
	char *class_id;  /* NULL: this writer */
	char *logical_path, *name;
};

struct wmd_spec {
	char *path, *file_spec, *destination;
	bool recursive;
};

struct wmd_component {
	enum vss_component_type type;
	char *logical_path, *name, *caption;
	bool selectable, selectable_for_restore;
	struct wmd_file_set *sets;
	size_t nsets, capsets;
	struct wmd_dep *deps;
	size_t ndeps, capdeps;
};

struct vss_wmd {
	char *writer_name, *instance_name;
	char class_id[DOC_UUID_LEN + 1], instance_id[DOC_UUID_LEN + 1];
	enum vss_usage_type usage;
	enum vss_source_type source;

	enum vss_restore_method method;
	char *service, *user_procedure;
	enum vss_writer_restore writer_restore;
	bool reboot_required;

	uint32_t schema;
	struct wmd_component **comps;
	size_t ncomps, capcomps;
	struct wmd_spec *excludes, *maps;
	size_t nexcludes, capexcludes, nmaps, capmaps;
};

static const char *nz(const char *s)
{
	return s ? s : "";
}

static void spec_release(struct wmd_spec *s)
{
	free(s->path);
	free(s->file_spec);
	free(s->destination);
}

static void component_free(struct wmd_component *cp)
{
	if (!cp)
		return;
	for (size_t i = 0; i < cp->nsets; i++) {
		free(cp->sets[i].path);
		free(cp->sets[i].file_spec);
		free(cp->sets[i].alternate_path);
	}
	for (size_t i = 0; i < cp->ndeps; i++) {
		free(cp->deps[i].class_id);
		free(cp->deps[i].logical_path);
		free(cp->deps[i].name);
	}
	free(cp->sets);
	free(cp->deps);
	free(cp->logical_path);
	free(cp->name);
	free(cp->caption);
	free(cp);
}

void vss_wmd_free(struct vss_wmd *wmd)
{
	if (!wmd)
		return;
	for (size_t i = 0; i < wmd->ncomps; i++)
		component_free(wmd->comps[i]);
	for (size_t i = 0; i < wmd->nexcludes; i++)
		spec_release(&wmd->excludes[i]);
	for (size_t i = 0; i < wmd->nmaps; i++)
		spec_release(&wmd->maps[i]);
	free(wmd->comps);
	free(wmd->excludes);
	free(wmd->maps);
	free(wmd->writer_name);
	free(wmd->instance_name);
	free(wmd->service);
	free(wmd->user_procedure);
	free(wmd);
}

static int check_enum(struct doc_ctx *c, const char *member,
		      const struct doc_name *t, unsigned v)
{
	char list[320];

	if (doc_name_of(t, v))
		return 0;
	return doc_fail_at(c, member, -EINVAL, "invalid value %u (one of: %s)", v,
			   name_list(list, sizeof(list), t));
}

/* Contradictions within the schema itself (the rest: wmd_validate). */
static int check_schema(struct doc_ctx *c, uint32_t schema)
{
	const uint32_t needs_id = VSS_BS_EXCLUSIVE_INCREMENTAL_DIFFERENTIAL |
				  VSS_BS_TIMESTAMPED | VSS_BS_LAST_MODIFY;
	uint32_t bad = schema & needs_id;

	if (schema & ~VSS_BS_ALL)
		return doc_fail_at(c, "backup_schema", -EINVAL, "unknown bits 0x%x",
				   schema & ~VSS_BS_ALL);
	if (bad && !(schema & (VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL))) {
		bad &= ~(bad - 1);  /* the first in table order */
		return doc_fail_at(c, "backup_schema", -EINVAL,
				   "\"%s\" needs \"incremental\" or \"differential\"",
				   doc_name_of(schema_names, bad));
	}
	return 0;
}

static int wmd_set_identity(struct doc_ctx *c, struct vss_wmd *wmd,
			    const struct vss_wmd_identity *id)
{
	int r;

	if (!id->writer_name)
		return doc_fail_at(c, "writer_name", -EINVAL, "missing required member");
	if ((r = doc_check_text(c, "writer_name", id->writer_name, VSS_DOC_NAME_MAX, 0)) < 0)
		return r;
	if (!id->class_id)
		return doc_fail_at(c, "writer_class_id", -EINVAL, "missing required member");
	if ((r = doc_check_uuid(c, "writer_class_id", id->class_id, wmd->class_id)) < 0)
		return r;
	if (!id->instance_id)
		return doc_fail_at(c, "writer_instance_id", -EINVAL, "missing required member");
	if ((r = doc_check_uuid(c, "writer_instance_id", id->instance_id, wmd->instance_id)) < 0)
		return r;
	if ((r = doc_check_text(c, "instance_name", nz(id->instance_name),
				VSS_DOC_NAME_MAX, DOC_EMPTY_OK)) < 0)
		return r;
	if ((r = check_enum(c, "usage_type", usage_names, id->usage)) < 0 ||
	    (r = check_enum(c, "source_type", source_names, id->source)) < 0)
		return r;
	wmd->usage = id->usage;
	wmd->source = id->source;
	if ((r = doc_strdup(c, id->writer_name, &wmd->writer_name)) < 0)
		return r;
	return doc_strdup(c, nz(id->instance_name), &wmd->instance_name);
}

static struct vss_wmd *wmd_alloc(void)
{
	struct vss_wmd *wmd = calloc(1, sizeof(*wmd));

	if (wmd) {
		wmd->method = VSS_RME_RESTORE_IF_CAN_REPLACE;
		wmd->writer_restore = VSS_WRE_NEVER;
	}
	return wmd;
}

int vss_wmd_new(const struct vss_wmd_identity *id, struct vss_wmd **out,
		struct vss_error *err)
{
	struct doc_ctx c;
	struct vss_wmd *wmd;
	int r;

	doc_ctx_init(&c, err);
	*out = NULL;
	if (!(wmd = wmd_alloc()))
		return doc_nomem(&c);
	if ((r = wmd_set_identity(&c, wmd, id)) < 0) {
		vss_wmd_free(wmd);
		return r;
	}
	*out = wmd;
	return 0;
}

int vss_wmd_set_backup_schema(struct vss_wmd *wmd, uint32_t schema,
			      struct vss_error *err)
{
	struct doc_ctx c;
	int r;

	doc_ctx_init(&c, err);
	if ((r = check_schema(&c, schema)) < 0)
		return r;
	wmd->schema = schema;
	return 0;
}

/* @c is at "$.restore_method". */
static int wmd_set_restore(struct doc_ctx *c, struct vss_wmd *wmd,
			   const struct vss_wmd_restore_method *rm)
{
	bool wants_service = rm->method == VSS_RME_STOP_RESTORE_START ||
			     rm->method == VSS_RME_RESTORE_STOP_START;
	char *service, *proc;
	int r;

	if ((r = check_enum(c, "method", method_names, rm->method)) < 0 ||
	    (r = check_enum(c, "writer_restore", writer_restore_names, rm->writer_restore)) < 0)
		return r;
	if (wants_service && !rm->service)
		return doc_fail_at(c, "service", -EINVAL,
				   "required with method \"%s\"",
				   doc_name_of(method_names, rm->method));
	if (!wants_service && rm->service)
		return doc_fail_at(c, "service", -EINVAL,
				   "only allowed with methods \"stop_restore_start\" and \"restore_stop_start\"");
	if (rm->service &&
	    (r = doc_check_text(c, "service", rm->service, VSS_DOC_NAME_MAX, 0)) < 0)
		return r;
	if (rm->method == VSS_RME_CUSTOM && !rm->user_procedure)
		return doc_fail_at(c, "user_procedure", -EINVAL,
				   "required with method \"custom\"");
	if (rm->user_procedure &&
	    (r = doc_check_text(c, "user_procedure", rm->user_procedure,
				VSS_DOC_TEXT_MAX, DOC_CTL_OK)) < 0)
		return r;
	if ((r = doc_strdup(c, rm->service, &service)) < 0)
		return r;
	if ((r = doc_strdup(c, rm->user_procedure, &proc)) < 0) {
		free(service);
		return r;
	}
	free(wmd->service);
	free(wmd->user_procedure);
	wmd->service = service;
	wmd->user_procedure = proc;
	wmd->method = rm->method;
	wmd->writer_restore = rm->writer_restore;
	wmd->reboot_required = rm->reboot_required;
	return 0;
}

int vss_wmd_set_restore_method(struct vss_wmd *wmd,
			       const struct vss_wmd_restore_method *rm,
			       struct vss_error *err)
{
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	doc_enter(&c, "restore_method");
	return wmd_set_restore(&c, wmd, rm);
}

static int component_cmp(const void *ctx, size_t a, size_t b)
{
	struct wmd_component *const *comps = ctx;
	int r = strcmp(comps[a]->logical_path, comps[b]->logical_path);

	return r ? r : strcmp(comps[a]->name, comps[b]->name);
}

static int find_component(const struct vss_wmd *wmd, const char *lp,
			  const char *name)
{
	for (size_t i = 0; i < wmd->ncomps; i++)
		if (!strcmp(wmd->comps[i]->logical_path, nz(lp)) &&
		    !strcmp(wmd->comps[i]->name, name))
			return (int)i;
	return -ENOENT;
}

/* @c is at "$.components[n]"; @check_dup: builders check here, the parser
 * all at once in wmd_validate. */
static int wmd_add_component(struct doc_ctx *c, struct vss_wmd *wmd,
			     const struct vss_wmd_component_info *ci, bool check_dup)
{
	char q1[DOC_QUOTE_BUF], q2[DOC_QUOTE_BUF];
	struct wmd_component *cp;
	int r;

	if ((r = check_enum(c, "type", component_type_names, ci->type)) < 0 ||
	    (r = doc_check_logical_path(c, "logical_path", nz(ci->logical_path))) < 0)
		return r;
	if (!ci->name)
		return doc_fail_at(c, "name", -EINVAL, "missing required member");
	if ((r = doc_check_name(c, "name", ci->name)) < 0 ||
	    (r = doc_check_text(c, "caption", nz(ci->caption), VSS_DOC_NAME_MAX,
				DOC_EMPTY_OK)) < 0)
		return r;
	if (check_dup && (r = find_component(wmd, ci->logical_path, ci->name)) >= 0)
		return doc_fail(c, -EEXIST,
				"duplicate of $.components[%d] (logical path %s, name %s)",
				r, doc_quote(q1, nz(ci->logical_path)),
				doc_quote(q2, ci->name));
	if ((r = doc_grow(c, &wmd->comps, &wmd->capcomps, wmd->ncomps,
			  sizeof(*wmd->comps))) < 0)
		return r;
	if (!(cp = calloc(1, sizeof(*cp))))
		return doc_nomem(c);
	cp->type = ci->type;
	cp->selectable = ci->selectable;
	cp->selectable_for_restore = ci->selectable_for_restore;
	if ((r = doc_strdup(c, nz(ci->logical_path), &cp->logical_path)) < 0 ||
	    (r = doc_strdup(c, ci->name, &cp->name)) < 0 ||
	    (r = doc_strdup(c, nz(ci->caption), &cp->caption)) < 0) {
		component_free(cp);
		return r;
	}
	wmd->comps[wmd->ncomps++] = cp;
	return 0;
}

int vss_wmd_add_component(struct vss_wmd *wmd,
			  const struct vss_wmd_component_info *ci,
			  struct vss_error *err)
{
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	doc_enter(&c, "components");
	doc_enter_index(&c, wmd->ncomps);
	return wmd_add_component(&c, wmd, ci, true);
}

/* @c is at "...file_sets[n]". */
static int wmd_add_file_set(struct doc_ctx *c, struct wmd_component *cp,
			    const struct vss_wmd_file_set *fs)
{
	struct wmd_file_set *s;
	int r;

	if ((r = check_enum(c, "kind", kind_names, fs->kind)) < 0)
		return r;
	if ((fs->kind == VSS_FSK_FILES) != (cp->type == VSS_CT_FILE_GROUP))
		return doc_fail_at(c, "kind", -EINVAL,
				   "\"%s\" file sets belong to %s components, this one is a %s",
				   doc_name_of(kind_names, fs->kind),
				   fs->kind == VSS_FSK_FILES ? "file_group" : "database",
				   doc_name_of(component_type_names, cp->type));
	if (!fs->path)
		return doc_fail_at(c, "path", -EINVAL, "missing required member");
	if ((r = doc_check_abs_path(c, "path", fs->path)) < 0)
		return r;
	if (!fs->file_spec)
		return doc_fail_at(c, "file_spec", -EINVAL, "missing required member");
	if ((r = doc_check_spec(c, "file_spec", fs->file_spec)) < 0)
		return r;
	if (fs->alternate_path &&
	    (r = doc_check_abs_path(c, "alternate_path", fs->alternate_path)) < 0)
		return r;
	if (fs->backup_type_mask & ~VSS_FSBT_DEFAULT)
		return doc_fail(c, -EINVAL, "backup type mask has unknown bits 0x%x",
				fs->backup_type_mask & ~VSS_FSBT_DEFAULT);
	if ((r = doc_grow(c, &cp->sets, &cp->capsets, cp->nsets, sizeof(*cp->sets))) < 0)
		return r;
	s = &cp->sets[cp->nsets];
	memset(s, 0, sizeof(*s));
	s->kind = fs->kind;
	s->recursive = fs->recursive;
	s->mask = fs->backup_type_mask;
	if ((r = doc_strdup(c, fs->path, &s->path)) < 0 ||
	    (r = doc_strdup(c, fs->file_spec, &s->file_spec)) < 0 ||
	    (r = doc_strdup(c, fs->alternate_path, &s->alternate_path)) < 0) {
		free(s->path);
		free(s->file_spec);
		return r;
	}
	cp->nsets++;
	return 0;
}

/* Finds the component a builder adds to, and sets @c to its path. */
static int builder_component(struct doc_ctx *c, struct vss_wmd *wmd,
			     const char *lp, const char *name, const char *what)
{
	char q1[DOC_QUOTE_BUF], q2[DOC_QUOTE_BUF];
	int i;

	doc_enter(c, "components");
	i = name ? find_component(wmd, lp, name) : -ENOENT;
	if (i < 0)
		return doc_fail(c, -ENOENT,
				"no component with logical path %s and name %s to add %s to",
				doc_quote(q1, nz(lp)), doc_quote(q2, nz(name)), what);
	doc_enter_index(c, (size_t)i);
	return i;
}

int vss_wmd_add_file_set(struct vss_wmd *wmd, const char *logical_path,
			 const char *name, const struct vss_wmd_file_set *fs,
			 struct vss_error *err)
{
	struct doc_ctx c;
	struct wmd_component *cp;
	int i;

	doc_ctx_init(&c, err);
	if ((i = builder_component(&c, wmd, logical_path, name, "a file set")) < 0)
		return i;
	cp = wmd->comps[i];
	doc_enter(&c, "file_sets");
	doc_enter_index(&c, cp->nsets);
	return wmd_add_file_set(&c, cp, fs);
}

/* @c is at "...dependencies[n]". */
static int wmd_add_dep(struct doc_ctx *c, const struct vss_wmd *wmd,
		       struct wmd_component *cp, const struct vss_wmd_dependency *dep)
{
	char id[DOC_UUID_LEN + 1];
	struct wmd_dep *d;
	int r;

	if (dep->writer_class_id &&
	    (r = doc_check_uuid(c, "writer_class_id", dep->writer_class_id, id)) < 0)
		return r;
	if ((r = doc_check_logical_path(c, "logical_path", nz(dep->logical_path))) < 0)
		return r;
	if (!dep->name)
		return doc_fail_at(c, "name", -EINVAL, "missing required member");
	if ((r = doc_check_name(c, "name", dep->name)) < 0)
		return r;
	if ((!dep->writer_class_id || !strcmp(id, wmd->class_id)) &&
	    !strcmp(nz(dep->logical_path), cp->logical_path) &&
	    !strcmp(dep->name, cp->name))
		return doc_fail(c, -EINVAL, "a component must not depend on itself");
	if ((r = doc_grow(c, &cp->deps, &cp->capdeps, cp->ndeps, sizeof(*cp->deps))) < 0)
		return r;
	d = &cp->deps[cp->ndeps];
	memset(d, 0, sizeof(*d));
	if ((r = doc_strdup(c, dep->writer_class_id ? id : NULL, &d->class_id)) < 0 ||
	    (r = doc_strdup(c, nz(dep->logical_path), &d->logical_path)) < 0 ||
	    (r = doc_strdup(c, dep->name, &d->name)) < 0) {
		free(d->class_id);
		free(d->logical_path);
		return r;
	}
	cp->ndeps++;
	return 0;
}

int vss_wmd_add_dependency(struct vss_wmd *wmd, const char *logical_path,
			   const char *name, const struct vss_wmd_dependency *dep,
			   struct vss_error *err)
{
	struct doc_ctx c;
	struct wmd_component *cp;
	int i;

	doc_ctx_init(&c, err);
	if ((i = builder_component(&c, wmd, logical_path, name, "a dependency")) < 0)
		return i;
	cp = wmd->comps[i];
	doc_enter(&c, "dependencies");
	doc_enter_index(&c, cp->ndeps);
	return wmd_add_dep(&c, wmd, cp, dep);
}

/* @c is at "$.exclude_files[n]" or "$.alternate_location_mappings[n]". */
static int wmd_add_spec(struct doc_ctx *c, struct wmd_spec **arr, size_t *n,
			size_t *cap, const struct vss_wmd_file_spec *spec,
			bool mapping)
{
	struct wmd_spec *s;
	int r;

	if (!spec->path)
		return doc_fail_at(c, "path", -EINVAL, "missing required member");
	if ((r = doc_check_abs_path(c, "path", spec->path)) < 0)
		return r;
	if (!spec->file_spec)
		return doc_fail_at(c, "file_spec", -EINVAL, "missing required member");
	if ((r = doc_check_spec(c, "file_spec", spec->file_spec)) < 0)
		return r;
	if (mapping && !spec->destination)
		return doc_fail_at(c, "destination", -EINVAL, "missing required member");
	if (!mapping && spec->destination)
		return doc_fail_at(c, "destination", -EINVAL,
				   "only allowed in alternate location mappings");
	if (mapping && (r = doc_check_abs_path(c, "destination", spec->destination)) < 0)
		return r;
	if ((r = doc_grow(c, arr, cap, *n, sizeof(**arr))) < 0)
		return r;
	s = &(*arr)[*n];
	memset(s, 0, sizeof(*s));
	s->recursive = spec->recursive;
	if ((r = doc_strdup(c, spec->path, &s->path)) < 0 ||
	    (r = doc_strdup(c, spec->file_spec, &s->file_spec)) < 0 ||
	    (r = doc_strdup(c, spec->destination, &s->destination)) < 0) {
		spec_release(s);
		return r;
	}
	(*n)++;
	return 0;
}

int vss_wmd_add_exclude_files(struct vss_wmd *wmd,
			      const struct vss_wmd_file_spec *spec,
			      struct vss_error *err)
{
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	doc_enter(&c, "exclude_files");
	doc_enter_index(&c, wmd->nexcludes);
	return wmd_add_spec(&c, &wmd->excludes, &wmd->nexcludes, &wmd->capexcludes,
			    spec, false);
}

int vss_wmd_add_alternate_location_mapping(struct vss_wmd *wmd,
					   const struct vss_wmd_file_spec *map,
					   struct vss_error *err)
{
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	doc_enter(&c, "alternate_location_mappings");
	doc_enter_index(&c, wmd->nmaps);
	return wmd_add_spec(&c, &wmd->maps, &wmd->nmaps, &wmd->capmaps, map, true);
}

/* Components sorted by (logical path, name), for lookups by identity. */
struct comp_index {
	const struct vss_wmd *wmd;
	size_t *order;
};

static int comp_order(const void *a, const void *b, void *arg)
{
	const struct vss_wmd *wmd = arg;
	return component_cmp(wmd->comps, *(const size_t *)a, *(const size_t *)b);
}

static long comp_lookup(const struct comp_index *ix, const char *lp, const char *name)
{
	size_t lo = 0, hi = ix->wmd->ncomps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct wmd_component *cp = ix->wmd->comps[ix->order[mid]];
		int r = strcmp(lp, cp->logical_path);
		if (!r)
			r = strcmp(name, cp->name);
		if (!r)
			return (long)ix->order[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

static void dep_path(struct doc_ctx *c, size_t comp, size_t dep)
{
	doc_enter(c, "components");
	doc_enter_index(c, comp);
	doc_enter(c, "dependencies");
	doc_enter_index(c, dep);
}

/*
 * Dependencies within this writer must resolve and must not go round in a
 * circle.  Depth-first over the components, iteratively (a long chain must
 * not exhaust the stack): 0 unvisited, 1 on the current path, 2 done.
 */
static int check_dependencies(struct doc_ctx *c, const struct vss_wmd *wmd)
{
	char q1[DOC_QUOTE_BUF], q2[DOC_QUOTE_BUF];
	struct comp_index ix = { wmd, NULL };
	size_t n = wmd->ncomps, *stack = NULL, *next = NULL;
	long *target = NULL;
	size_t *first = NULL;  /* first[i]: where component i's targets start */
	unsigned char *state = NULL;
	size_t ndeps = 0;
	int r = 0;

	for (size_t i = 0; i < n; i++)
		ndeps += wmd->comps[i]->ndeps;
	if (!ndeps)
		return 0;
	ix.order = malloc(n * sizeof(size_t));
	first = malloc((n + 1) * sizeof(size_t));
	target = malloc(ndeps * sizeof(long));
	stack = malloc(n * sizeof(size_t));
	next = calloc(n, sizeof(size_t));
	state = calloc(n, 1);
	if (!ix.order || !first || !target || !stack || !next || !state) {
		r = doc_nomem(c);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ix.order[i] = i;
	qsort_r(ix.order, n, sizeof(size_t), comp_order, (void *)wmd);

	/* Resolve, in document order. */
	for (size_t i = 0, k = 0; i < n; i++) {
		const struct wmd_component *cp = wmd->comps[i];
		first[i] = k;
		for (size_t j = 0; j < cp->ndeps; j++, k++) {
			const struct wmd_dep *d = &cp->deps[j];
			target[k] = -1;
			if (d->class_id && strcmp(d->class_id, wmd->class_id))
				continue;  /* another writer's: not ours to check */
			target[k] = comp_lookup(&ix, d->logical_path, d->name);
			if (target[k] < 0) {
				dep_path(c, i, j);
				r = doc_fail(c, -EINVAL,
					     "this writer has no component with logical path %s and name %s",
					     doc_quote(q1, d->logical_path),
					     doc_quote(q2, d->name));
				goto out;
			}
		}
	}
	first[n] = ndeps;

	for (size_t root = 0; root < n; root++) {
		size_t sp = 0;
		if (state[root])
			continue;
		stack[sp++] = root;
		state[root] = 1;
		while (sp) {
			size_t u = stack[sp - 1];
			if (first[u] + next[u] == first[u + 1]) {
				state[u] = 2;
				sp--;
				continue;
			}
			size_t j = next[u]++;
			long v = target[first[u] + j];
			if (v < 0 || state[v] == 2)
				continue;
			if (state[v] == 1) {
				dep_path(c, u, j);
				r = doc_fail(c, -EINVAL,
					     "dependency cycle back to $.components[%ld]", v);
				goto out;
			}
			state[v] = 1;
			stack[sp++] = (size_t)v;
		}
	}
out:
	free(ix.order);
	free(first);
	free(target);
	free(stack);
	free(next);
	free(state);
	return r;
}

static int wmd_validate(struct doc_ctx *c, const struct vss_wmd *wmd)
{
	char q1[DOC_QUOTE_BUF], q2[DOC_QUOTE_BUF];
	size_t first, dup;
	size_t mark;
	int r;

	if ((r = check_schema(c, wmd->schema)) < 0)
		return r;
	if (wmd->schema & VSS_BS_LOG) {
		bool has_log = false;
		for (size_t i = 0; i < wmd->ncomps && !has_log; i++)
			for (size_t j = 0; j < wmd->comps[i]->nsets; j++)
				has_log = has_log || wmd->comps[i]->sets[j].kind == VSS_FSK_LOG;
		if (!has_log)
			return doc_fail_at(c, "backup_schema", -EINVAL,
					   "\"log\" needs a file set of kind \"log\"");
	}
	if (wmd->method == VSS_RME_RESTORE_TO_ALTERNATE_LOCATION && !wmd->nmaps)
		return doc_fail_at(c, "restore_method", -EINVAL,
				   "method \"restore_to_alternate_location\" needs alternate_location_mappings");

	r = doc_first_duplicate(wmd->ncomps, component_cmp, wmd->comps, &first, &dup);
	if (r < 0)
		return doc_nomem(c);
	mark = doc_enter(c, "components");
	if (r > 0) {
		doc_enter_index(c, dup);
		return doc_fail(c, -EINVAL,
				"duplicate of $.components[%zu] (logical path %s, name %s)",
				first, doc_quote(q1, wmd->comps[dup]->logical_path),
				doc_quote(q2, wmd->comps[dup]->name));
	}
	doc_leave(c, mark);
	return check_dependencies(c, wmd);
}

int vss_wmd_validate(const struct vss_wmd *wmd, struct vss_error *err)
{
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	return wmd_validate(&c, wmd);
}

/* ---- serializing ---- */

static json_t *spec_json(const struct wmd_spec *s)
{
	json_t *o = json_object();

	if (o && doc_put_str(o, "path", s->path) &&
	    doc_put_str(o, "file_spec", s->file_spec) &&
	    doc_put(o, "recursive", json_boolean(s->recursive)) &&
	    doc_put_str(o, "destination", s->destination))
		return o;
	json_decref(o);
	return NULL;
}

static json_t *file_set_json(const struct wmd_file_set *s)
{
	json_t *o = json_object();

	if (o && doc_put_str(o, "kind", doc_name_of(kind_names, s->kind)) &&
	    doc_put_str(o, "path", s->path) &&
	    doc_put_str(o, "file_spec", s->file_spec) &&
	    doc_put(o, "recursive", json_boolean(s->recursive)) &&
	    doc_put_str(o, "alternate_path", s->alternate_path) &&
	    doc_put(o, "backup_required", doc_flag_array(fsbt_names, s->mask)) &&
	    doc_put(o, "snapshot_required", doc_flag_array(fsbt_names, s->mask >> 8)))
		return o;
	json_decref(o);
	return NULL;
}

static json_t *dep_json(const struct wmd_dep *d)
{
	json_t *o = json_object();

	if (o && doc_put_str(o, "writer_class_id", d->class_id) &&
	    doc_put_str(o, "logical_path", d->logical_path) &&
	    doc_put_str(o, "name", d->name))
		return o;
	json_decref(o);
	return NULL;
}

static json_t *component_json(const struct wmd_component *cp)
{
	json_t *o = json_object(), *sets = json_array(), *deps = json_array();
	bool ok = o && sets && deps;

	for (size_t i = 0; ok && i < cp->ndeps; i++)
		ok = doc_append(deps, dep_json(&cp->deps[i]));
	for (size_t i = 0; ok && i < cp->nsets; i++)
		ok = doc_append(sets, file_set_json(&cp->sets[i]));
	if (ok && doc_put_str(o, "type", doc_name_of(component_type_names, cp->type)) &&
	    doc_put_str(o, "logical_path", cp->logical_path) &&
	    doc_put_str(o, "name", cp->name) &&
	    doc_put_str(o, "caption", cp->caption) &&
	    doc_put(o, "selectable", json_boolean(cp->selectable)) &&
	    doc_put(o, "selectable_for_restore", json_boolean(cp->selectable_for_restore)) &&
	    doc_put(o, "dependencies", json_incref(deps)) &&
	    doc_put(o, "file_sets", json_incref(sets))) {
		json_decref(sets);
		json_decref(deps);
		return o;
	}
	json_decref(o);
	json_decref(sets);
	json_decref(deps);
	return NULL;
}

static json_t *wmd_json(const struct vss_wmd *wmd)
{
	json_t *o = json_object(), *rm = json_object(), *comps = json_array(),
	       *ex = json_array(), *maps = json_array();
	bool ok = o && rm && comps && ex && maps;

	ok = ok && doc_put_str(rm, "method", doc_name_of(method_names, wmd->method)) &&
	     doc_put_str(rm, "service", wmd->service) &&
	     doc_put_str(rm, "user_procedure", wmd->user_procedure) &&
	     doc_put_str(rm, "writer_restore",
			 doc_name_of(writer_restore_names, wmd->writer_restore)) &&
	     doc_put(rm, "reboot_required", json_boolean(wmd->reboot_required));
	for (size_t i = 0; ok && i < wmd->nexcludes; i++)
		ok = doc_append(ex, spec_json(&wmd->excludes[i]));
	for (size_t i = 0; ok && i < wmd->nmaps; i++)
		ok = doc_append(maps, spec_json(&wmd->maps[i]));
	for (size_t i = 0; ok && i < wmd->ncomps; i++)
		ok = doc_append(comps, component_json(wmd->comps[i]));
	ok = ok && doc_put_str(o, "format", "vss-writer-metadata") &&
	     doc_put(o, "version", json_integer(DOC_VERSION)) &&
	     doc_put_str(o, "writer_name", wmd->writer_name) &&
	     doc_put_str(o, "writer_class_id", wmd->class_id) &&
	     doc_put_str(o, "writer_instance_id", wmd->instance_id) &&
	     doc_put_str(o, "instance_name", wmd->instance_name) &&
	     doc_put_str(o, "usage_type", doc_name_of(usage_names, wmd->usage)) &&
	     doc_put_str(o, "source_type", doc_name_of(source_names, wmd->source)) &&
	     doc_put(o, "restore_method", json_incref(rm)) &&
	     doc_put(o, "backup_schema", doc_flag_array(schema_names, wmd->schema)) &&
	     doc_put(o, "exclude_files", json_incref(ex)) &&
	     doc_put(o, "alternate_location_mappings", json_incref(maps)) &&
	     doc_put(o, "components", json_incref(comps));
	json_decref(rm);
	json_decref(comps);
	json_decref(ex);
	json_decref(maps);
	if (ok)
		return o;
	json_decref(o);
	return NULL;
}

int vss_wmd_serialize(const struct vss_wmd *wmd, char **json, size_t *len,
		      struct vss_error *err)
{
	struct doc_ctx c;
	json_t *root;
	int r;

	doc_ctx_init(&c, err);
	*json = NULL;
	if ((r = wmd_validate(&c, wmd)) < 0)
		return r;
	if (!(root = wmd_json(wmd)))
		return doc_nomem(&c);
	r = doc_dump(&c, root, json, len);
	json_decref(root);
	return r;
}

/* ---- parsing ---- */

static const char *const root_members[] = {
	"format", "version", "writer_name", "writer_class_id", "writer_instance_id",
	"instance_name", "usage_type", "source_type", "restore_method",
	"backup_schema", "exclude_files", "alternate_location_mappings",
	"components", NULL,
};
static const char *const restore_members[] = {
	"method", "service", "user_procedure", "writer_restore", "reboot_required", NULL,
};
static const char *const component_members[] = {
	"type", "logical_path", "name", "caption", "selectable",
	"selectable_for_restore", "dependencies", "file_sets", NULL,
};
static const char *const file_set_members[] = {
	"kind", "path", "file_spec", "recursive", "alternate_path",
	"backup_required", "snapshot_required", NULL,
};
static const char *const dep_members[] = {
	"writer_class_id", "logical_path", "name", NULL,
};
static const char *const exclude_members[] = {
	"path", "file_spec", "recursive", NULL,
};
static const char *const map_members[] = {
	"path", "file_spec", "recursive", "destination", NULL,
};

static int parse_identity(struct doc_ctx *c, json_t *root, struct vss_wmd *wmd)
{
	struct vss_wmd_identity id = { 0 };
	unsigned usage, source;
	int r;

	if ((r = doc_string(c, root, "writer_name", true, &id.writer_name)) < 0 ||
	    (r = doc_string(c, root, "writer_class_id", true, &id.class_id)) < 0 ||
	    (r = doc_string(c, root, "writer_instance_id", true, &id.instance_id)) < 0 ||
	    (r = doc_string(c, root, "instance_name", false, &id.instance_name)) < 0 ||
	    (r = doc_enum(c, root, "usage_type", usage_names, true, 0, &usage)) < 0 ||
	    (r = doc_enum(c, root, "source_type", source_names, true, 0, &source)) < 0)
		return r;
	id.usage = usage;
	id.source = source;
	return wmd_set_identity(c, wmd, &id);
}

static int parse_restore(struct doc_ctx *c, json_t *root, struct vss_wmd *wmd)
{
	struct vss_wmd_restore_method rm = { 0 };
	unsigned method, wr;
	json_t *o;
	size_t mark;
	int r;

	if ((r = doc_object(c, root, "restore_method", false, &o)) < 0 || !o)
		return r;
	mark = doc_enter(c, "restore_method");
	if ((r = doc_members(c, o, restore_members)) < 0 ||
	    (r = doc_enum(c, o, "method", method_names, true, 0, &method)) < 0 ||
	    (r = doc_string(c, o, "service", false, &rm.service)) < 0 ||
	    (r = doc_string(c, o, "user_procedure", false, &rm.user_procedure)) < 0 ||
	    (r = doc_enum(c, o, "writer_restore", writer_restore_names, false,
			  VSS_WRE_NEVER, &wr)) < 0 ||
	    (r = doc_bool(c, o, "reboot_required", false, &rm.reboot_required)) < 0)
		return r;
	rm.method = method;
	rm.writer_restore = wr;
	if ((r = wmd_set_restore(c, wmd, &rm)) < 0)
		return r;
	doc_leave(c, mark);
	return 0;
}

/* Each element of the array member @key is an object; @fn reads it with
 * @c at "<key>[i]". */
static int parse_each(struct doc_ctx *c, json_t *obj, const char *key,
		      bool required,
		      int (*fn)(struct doc_ctx *c, json_t *elem, void *arg), void *arg)
{
	json_t *a, *v;
	size_t i, mark;
	int r;

	if ((r = doc_array(c, obj, key, required, &a)) < 0 || !a)
		return r;
	mark = doc_enter(c, key);
	json_array_foreach(a, i, v) {
		size_t m = doc_enter_index(c, i);
		if ((r = fn(c, v, arg)) < 0)
			return r;
		doc_leave(c, m);
	}
	doc_leave(c, mark);
	return 0;
}

struct spec_arg {
	struct vss_wmd *wmd;
	bool mapping;
};

static int parse_spec(struct doc_ctx *c, json_t *o, void *arg)
{
	struct spec_arg *a = arg;
	struct vss_wmd_file_spec s = { 0 };
	int r;

	if ((r = doc_members(c, o, a->mapping ? map_members : exclude_members)) < 0 ||
	    (r = doc_string(c, o, "path", true, &s.path)) < 0 ||
	    (r = doc_string(c, o, "file_spec", true, &s.file_spec)) < 0 ||
	    (r = doc_bool(c, o, "recursive", false, &s.recursive)) < 0 ||
	    (a->mapping &&
	     (r = doc_string(c, o, "destination", true, &s.destination)) < 0))
		return r;
	if (a->mapping)
		return wmd_add_spec(c, &a->wmd->maps, &a->wmd->nmaps,
				    &a->wmd->capmaps, &s, true);
	return wmd_add_spec(c, &a->wmd->excludes, &a->wmd->nexcludes,
			    &a->wmd->capexcludes, &s, false);
}

struct comp_arg {
	struct vss_wmd *wmd;
	struct wmd_component *cp;
};

static int parse_file_set(struct doc_ctx *c, json_t *o, void *arg)
{
	struct comp_arg *a = arg;
	struct vss_wmd_file_set fs = { 0 };
	uint32_t backup, snapshot;
	unsigned kind;
	int r;

	if ((r = doc_members(c, o, file_set_members)) < 0 ||
	    (r = doc_enum(c, o, "kind", kind_names, true, 0, &kind)) < 0 ||
	    (r = doc_string(c, o, "path", true, &fs.path)) < 0 ||
	    (r = doc_string(c, o, "file_spec", true, &fs.file_spec)) < 0 ||
	    (r = doc_bool(c, o, "recursive", false, &fs.recursive)) < 0 ||
	    (r = doc_string(c, o, "alternate_path", false, &fs.alternate_path)) < 0 ||
	    (r = doc_flags(c, o, "backup_required", fsbt_names,
			   VSS_FSBT_ALL_BACKUP_REQUIRED, &backup)) < 0 ||
	    (r = doc_flags(c, o, "snapshot_required", fsbt_names,
			   VSS_FSBT_ALL_BACKUP_REQUIRED, &snapshot)) < 0)
		return r;
	fs.kind = kind;
	fs.backup_type_mask = backup | snapshot << 8;
	return wmd_add_file_set(c, a->cp, &fs);
}

static int parse_dep(struct doc_ctx *c, json_t *o, void *arg)
{
	struct comp_arg *a = arg;
	struct vss_wmd_dependency d = { 0 };
	int r;

	if ((r = doc_members(c, o, dep_members)) < 0 ||
	    (r = doc_string(c, o, "writer_class_id", false, &d.writer_class_id)) < 0 ||
	    (r = doc_string(c, o, "logical_path", false, &d.logical_path)) < 0 ||
	    (r = doc_string(c, o, "name", true, &d.name)) < 0)
		return r;
	return wmd_add_dep(c, a->wmd, a->cp, &d);
}

static int parse_component(struct doc_ctx *c, json_t *o, void *arg)
{
	struct vss_wmd *wmd = arg;
	struct vss_wmd_component_info ci = { 0 };
	struct comp_arg a = { wmd, NULL };
	unsigned type;
	int r;

	if ((r = doc_members(c, o, component_members)) < 0 ||
	    (r = doc_enum(c, o, "type", component_type_names, true, 0, &type)) < 0 ||
	    (r = doc_string(c, o, "logical_path", false, &ci.logical_path)) < 0 ||
	    (r = doc_string(c, o, "name", true, &ci.name)) < 0 ||
	    (r = doc_string(c, o, "caption", false, &ci.caption)) < 0 ||
	    (r = doc_bool(c, o, "selectable", false, &ci.selectable)) < 0 ||
	    (r = doc_bool(c, o, "selectable_for_restore", false,
			  &ci.selectable_for_restore)) < 0)
		return r;
	ci.type = type;
	if ((r = wmd_add_component(c, wmd, &ci, false)) < 0)
		return r;
	a.cp = wmd->comps[wmd->ncomps - 1];
	if ((r = parse_each(c, o, "dependencies", false, parse_dep, &a)) < 0)
		return r;
	return parse_each(c, o, "file_sets", false, parse_file_set, &a);
}

int vss_wmd_parse(const char *buf, size_t len, size_t max_size,
		  struct vss_wmd **out, struct vss_error *err)
{
	struct doc_ctx c;
	struct spec_arg ex, maps;
	struct vss_wmd *wmd = NULL;
	json_t *root;
	uint32_t schema;
	int r;

	doc_ctx_init(&c, err);
	*out = NULL;
	if ((r = doc_root(&c, buf, len, max_size, "vss-writer-metadata", &root)) < 0)
		return r;
	if (!(wmd = wmd_alloc())) {
		r = doc_nomem(&c);
		goto fail;
	}
	ex = (struct spec_arg){ wmd, false };
	maps = (struct spec_arg){ wmd, true };
	if ((r = doc_members(&c, root, root_members)) < 0 ||
	    (r = parse_identity(&c, root, wmd)) < 0 ||
	    (r = parse_restore(&c, root, wmd)) < 0 ||
	    (r = doc_flags(&c, root, "backup_schema", schema_names, 0, &schema)) < 0 ||
	    (r = check_schema(&c, schema)) < 0 ||
	    (r = parse_each(&c, root, "exclude_files", false, parse_spec, &ex)) < 0 ||
	    (r = parse_each(&c, root, "alternate_location_mappings", false,
			    parse_spec, &maps)) < 0 ||
	    (r = parse_each(&c, root, "components", true, parse_component, wmd)) < 0)
		goto fail;
	wmd->schema = schema;
	if ((r = wmd_validate(&c, wmd)) < 0)
		goto fail;
	json_decref(root);
	*out = wmd;
	return 0;
fail:
	vss_wmd_free(wmd);
	json_decref(root);
	return r;
}

/* ---- examining ---- */

void vss_wmd_identity(const struct vss_wmd *wmd, struct vss_wmd_identity *out)
{
	out->writer_name = wmd->writer_name;
	out->class_id = wmd->class_id;
	out->instance_id = wmd->instance_id;
	out->instance_name = wmd->instance_name;
	out->usage = wmd->usage;
	out->source = wmd->source;
}

uint32_t vss_wmd_backup_schema(const struct vss_wmd *wmd)
{
	return wmd->schema;
}

void vss_wmd_restore_method(const struct vss_wmd *wmd,
			    struct vss_wmd_restore_method *out)
{
	out->method = wmd->method;
	out->service = wmd->service;
	out->user_procedure = wmd->user_procedure;
	out->writer_restore = wmd->writer_restore;
	out->reboot_required = wmd->reboot_required;
}

size_t vss_wmd_component_count(const struct vss_wmd *wmd)
{
	return wmd->ncomps;
}

int vss_wmd_component(const struct vss_wmd *wmd, size_t comp,
		      struct vss_wmd_component_info *out)
{
	const struct wmd_component *cp;

	if (comp >= wmd->ncomps)
		return -ERANGE;
	cp = wmd->comps[comp];
	out->type = cp->type;
	out->logical_path = cp->logical_path;
	out->name = cp->name;
	out->caption = cp->caption;
	out->selectable = cp->selectable;
	out->selectable_for_restore = cp->selectable_for_restore;
	return 0;
}

int vss_wmd_find_component(const struct vss_wmd *wmd, const char *logical_path,
			   const char *name)
{
	return name ? find_component(wmd, logical_path, name) : -ENOENT;
}

size_t vss_wmd_file_set_count(const struct vss_wmd *wmd, size_t comp)
{
	return comp < wmd->ncomps ? wmd->comps[comp]->nsets : 0;
}

int vss_wmd_file_set(const struct vss_wmd *wmd, size_t comp, size_t i,
		     struct vss_wmd_file_set *out)
{
	const struct wmd_file_set *s;

	if (comp >= wmd->ncomps || i >= wmd->comps[comp]->nsets)
		return -ERANGE;
	s = &wmd->comps[comp]->sets[i];
	out->kind = s->kind;
	out->path = s->path;
	out->file_spec = s->file_spec;
	out->recursive = s->recursive;
	out->alternate_path = s->alternate_path;
	out->backup_type_mask = s->mask;
	return 0;
}

size_t vss_wmd_dependency_count(const struct vss_wmd *wmd, size_t comp)
{
	return comp < wmd->ncomps ? wmd->comps[comp]->ndeps : 0;
}

int vss_wmd_dependency(const struct vss_wmd *wmd, size_t comp, size_t i,
		       struct vss_wmd_dependency *out)
{
	const struct wmd_dep *d;

	if (comp >= wmd->ncomps || i >= wmd->comps[comp]->ndeps)
		return -ERANGE;
	d = &wmd->comps[comp]->deps[i];
	out->writer_class_id = d->class_id;
	out->logical_path = d->logical_path;
	out->name = d->name;
	return 0;
}

static int spec_at(const struct wmd_spec *arr, size_t n, size_t i,
		   struct vss_wmd_file_spec *out)
{
	if (i >= n)
		return -ERANGE;
	out->path = arr[i].path;
	out->file_spec = arr[i].file_spec;
	out->recursive = arr[i].recursive;
	out->destination = arr[i].destination;
	return 0;
}

size_t vss_wmd_exclude_count(const struct vss_wmd *wmd)
{
	return wmd->nexcludes;
}

int vss_wmd_exclude(const struct vss_wmd *wmd, size_t i,
		    struct vss_wmd_file_spec *out)
{
	return spec_at(wmd->excludes, wmd->nexcludes, i, out);
}

size_t vss_wmd_alternate_location_count(const struct vss_wmd *wmd)
{
	return wmd->nmaps;
}

int vss_wmd_alternate_location(const struct vss_wmd *wmd, size_t i,
			       struct vss_wmd_file_spec *out)
{
	return spec_at(wmd->maps, wmd->nmaps, i, out);
}

/* ---- what a backup of a given type takes (see writer_doc.h) ---- */

int vss_wmd_plan_values(uint32_t schema, enum vss_file_set_kind kind,
			uint32_t mask, enum vss_backup_type type,
			struct vss_wmd_plan *out, struct vss_error *err)
{
	enum vss_backup_type t = type;
	uint32_t backup_bit;

	vss_error_clear(err);
	if (!doc_name_of(doc_backup_type_names, type))
		return vss_error_set(err, -EINVAL, "invalid backup type %d", (int)type);
	if (!doc_name_of(kind_names, kind))
		return vss_error_set(err, -EINVAL, "invalid file set kind %d", (int)kind);
	if (mask & ~VSS_FSBT_DEFAULT)
		return vss_error_set(err, -EINVAL, "backup type mask has unknown bits 0x%x",
				     mask & ~VSS_FSBT_DEFAULT);

	if ((t == VSS_BT_INCREMENTAL && !(schema & VSS_BS_INCREMENTAL)) ||
	    (t == VSS_BT_DIFFERENTIAL && !(schema & VSS_BS_DIFFERENTIAL)) ||
	    (t == VSS_BT_LOG && !(schema & VSS_BS_LOG)) ||
	    (t == VSS_BT_COPY && !(schema & VSS_BS_COPY)))
		t = VSS_BT_FULL;
	switch (t) {
	case VSS_BT_INCREMENTAL: backup_bit = VSS_FSBT_INCREMENTAL_BACKUP_REQUIRED; break;
	case VSS_BT_DIFFERENTIAL: backup_bit = VSS_FSBT_DIFFERENTIAL_BACKUP_REQUIRED; break;
	case VSS_BT_LOG: backup_bit = VSS_FSBT_LOG_BACKUP_REQUIRED; break;
	default: backup_bit = VSS_FSBT_FULL_BACKUP_REQUIRED; break;
	}

	out->effective_type = t;
	if (t == VSS_BT_LOG && kind != VSS_FSK_LOG)
		out->selection = VSS_SEL_NONE;
	else if (mask & backup_bit)
		out->selection = VSS_SEL_ALL;
	else if (t == VSS_BT_FULL || t == VSS_BT_COPY)
		out->selection = VSS_SEL_NONE;
	else
		out->selection = VSS_SEL_CHANGED;
	out->snapshot_required = out->selection != VSS_SEL_NONE &&
				 (mask & (backup_bit << 8));
	return 0;
}

int vss_wmd_plan(const struct vss_wmd *wmd, enum vss_backup_type type,
		 size_t comp, size_t i, struct vss_wmd_plan *out,
		 struct vss_error *err)
{
	const struct wmd_file_set *s;

	if (comp >= wmd->ncomps || i >= wmd->comps[comp]->nsets)
		return vss_error_set(err, -ERANGE,
				     "$.components[%zu].file_sets[%zu]: no such file set",
				     comp, i);
	s = &wmd->comps[comp]->sets[i];
	return vss_wmd_plan_values(wmd->schema, s->kind, s->mask, type, out, err);
}
