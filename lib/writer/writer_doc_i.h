/*
 * writer/writer_doc_i.h - what metadata.c and components.c share: the JSON
 * path of the value being checked (for messages), typed member readers over
 * jansson, and the checks of names, paths, UUIDs and times.  Defined in
 * doc.c; private to lib/writer.
 */
#ifndef VSS_WRITER_DOC_I_H
#define VSS_WRITER_DOC_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <vss/writer_doc.h>

#define DOC_VERSION   1
#define DOC_UUID_LEN  36
#define DOC_QUOTE_BUF 72 /* a quoted value in a message: 64 bytes and "..." */

/*
 * Where in a document we are, as a JSON path ("$.components[2].name"), so
 * that every message names its place.  Builders use the path the value will
 * have once serialized, so a builder and the parser say the same thing.
 */
struct doc_ctx {
	struct vss_error *err;
	size_t len;
	char path[256];
};

void doc_ctx_init(struct doc_ctx *c, struct vss_error *err);
/* Appends ".member" or "[i]"; returns the mark for doc_leave. */
size_t doc_enter(struct doc_ctx *c, const char *member);
size_t doc_enter_index(struct doc_ctx *c, size_t i);
void doc_leave(struct doc_ctx *c, size_t mark);
/* "<path>: <message>" (doc_fail_at: "<path>.<member>: ..."); returns code. */
int doc_fail(struct doc_ctx *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int doc_fail_at(struct doc_ctx *c, const char *member, int code,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int doc_nomem(struct doc_ctx *c);
/* @s in quotes, shortened to fit DOC_QUOTE_BUF, control bytes as '?'. */
const char *doc_quote(char buf[DOC_QUOTE_BUF], const char *s);

/* Checks of values; @member is appended to the path in the message. */
#define DOC_EMPTY_OK 1u  /* "" is allowed */
#define DOC_CTL_OK   2u  /* tab, newline and carriage return are allowed */
int doc_check_text(struct doc_ctx *c, const char *member, const char *s,
		   size_t max, unsigned flags);
int doc_check_name(struct doc_ctx *c, const char *member, const char *s);
int doc_check_logical_path(struct doc_ctx *c, const char *member, const char *s);
int doc_check_abs_path(struct doc_ctx *c, const char *member, const char *s);
int doc_check_spec(struct doc_ctx *c, const char *member, const char *s);
/* Checks a UUID and writes it in lower case to @out. */
int doc_check_uuid(struct doc_ctx *c, const char *member, const char *s,
		   char out[DOC_UUID_LEN + 1]);

/* Names of enumeration values and flag bits, as the documents write them;
 * tables end with a NULL name. */
struct doc_name {
	const char *name;
	unsigned value;
};
extern const struct doc_name doc_backup_type_names[];
extern const struct doc_name doc_restore_method_names[];
const char *doc_name_of(const struct doc_name *t, unsigned value);
/* The value @name stands for in table @t, or 0 (no table has a value 0). */
unsigned doc_value_of(const struct doc_name *t, const char *name);
/* "a, b, c": the names of table @t, in @buf of @size, for messages. */
const char *doc_name_list(char *buf, size_t size, const struct doc_name *t);
/* A JSON array of the names of the bits set in @value, in table order. */
json_t *doc_flag_array(const struct doc_name *t, uint32_t value);

/* Member readers.  A missing optional member leaves the default (or NULL);
 * strings returned are borrowed from the JSON value. */
int doc_root(struct doc_ctx *c, const char *buf, size_t len, size_t max_size,
	     const char *format, json_t **out);
int doc_members(struct doc_ctx *c, json_t *obj, const char *const *allowed);
int doc_string(struct doc_ctx *c, json_t *obj, const char *key, bool required,
	       const char **out);
int doc_bool(struct doc_ctx *c, json_t *obj, const char *key, bool dflt,
	     bool *out);
int doc_int(struct doc_ctx *c, json_t *obj, const char *key, json_int_t *out);
int doc_array(struct doc_ctx *c, json_t *obj, const char *key, bool required,
	      json_t **out);
int doc_object(struct doc_ctx *c, json_t *obj, const char *key, bool required,
	       json_t **out);
int doc_enum(struct doc_ctx *c, json_t *obj, const char *key,
	     const struct doc_name *t, bool required, unsigned dflt,
	     unsigned *out);
int doc_flags(struct doc_ctx *c, json_t *obj, const char *key,
	      const struct doc_name *t, uint32_t dflt, uint32_t *out);

/* Serializing: doc_put* return false when out of memory (and free @v). */
bool doc_put(json_t *obj, const char *key, json_t *v);
bool doc_put_str(json_t *obj, const char *key, const char *s); /* NULL: omitted */
bool doc_append(json_t *arr, json_t *v);
int doc_dump(struct doc_ctx *c, json_t *root, char **json, size_t *len);

/* Memory. */
int doc_strdup(struct doc_ctx *c, const char *s, char **out); /* NULL stays NULL */
/* Makes room for one more element of @elem bytes in the array *@arr
 * (@arr is the address of a "T *"). */
int doc_grow(struct doc_ctx *c, void *arr, size_t *cap, size_t n, size_t elem);

/*
 * The first duplicate among @n items under @cmp, in document order: sets
 * *dup to the smallest index equal to an earlier one and *first to that
 * earlier one.  Returns 1 if found, 0 if none, -ENOMEM.
 */
int doc_first_duplicate(size_t n, int (*cmp)(const void *ctx, size_t a, size_t b),
			const void *ctx, size_t *first, size_t *dup);

#endif
