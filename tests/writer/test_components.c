/*
 * tests/writer/test_components.c - the backup components document: round
 * trips, the example of doc/ checked against its writer, every refusal with
 * its exact message, RFC 3339 times against hand-computed epoch seconds.
 * Usage: test-writer-components DOC_DIR
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include <vss/writer_doc.h>

#include "docedit.h"


#define CLS "11111111-2222-3333-4444-555555555555"
#define INST "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define CLS2 "22222222-2222-3333-4444-555555555555"

/* A small valid document; the refusal cases each edit it a little. */
static const char base_doc[] =
	"{\"format\":\"vss-backup-components\",\"version\":1,"
	"\"backup_type\":\"incremental\",\"partial_file_support\":true,"
	"\"writers\":[{\"writer_class_id\":\"" CLS "\",\"writer_instance_id\":\"" INST "\","
	"\"components\":["
	"{\"name\":\"db\",\"partial_files\":[{\"path\":\"/var/db\",\"filename\":\"data\","
	"\"ranges\":[{\"offset\":0,\"length\":10},{\"offset\":100,\"length\":10}]}],"
	"\"differenced_files\":[{\"path\":\"/var/db\",\"file_spec\":\"*.log\","
	"\"last_modify_time\":\"2024-02-29T12:34:56Z\"}]},"
	"{\"logical_path\":\"cfg\",\"name\":\"files\"}]}]}";

static char *edited(const char *const *paths, const char *const *values, size_t n)
{
	json_t *root = json_loads(base_doc, 0, NULL);
	char *text;

	assert_non_null(root);
	for (size_t e = 0; e < n && paths[e]; e++)
		edit(root, paths[e], values[e]);
	text = json_dumps(root, JSON_COMPACT);
	assert_non_null(text);
	json_decref(root);
	return text;
}

struct edit_case {
	const char *path[3], *value[3];
	int code;
	const char *msg;
};

static void run_cases(const struct edit_case *cases, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		const struct edit_case *t = &cases[k];
		char *text = edited(t->path, t->value, 3);
		struct vss_bcd *bcd = (void *)1;
		struct vss_error err;
		int r = vss_bcd_parse(text, strlen(text), 0, &bcd, &err);

		if (r != t->code || strcmp(err.msg, t->msg))
			print_message("case %zu: %s\n", k, text);
		assert_int_equal(r, t->code);
		assert_int_equal(err.code, t->code);
		assert_string_equal(err.msg, t->msg);
		assert_null(bcd);
		free(text);
	}
}

#define C0 "writers/0/components/0/"
#define C0_MSG "$.writers[0].components[0]."
#define PF0 C0 "partial_files/0/"
#define PF0_MSG C0_MSG "partial_files[0]."

static void base_document_parses(void **state)
{
	struct vss_bcd *bcd;
	struct vss_error err;
	struct vss_bcd_component *c;
	struct vss_bcd_partial_file pf;
	struct vss_bcd_differenced_files df;

	assert_int_equal(vss_bcd_parse(base_doc, strlen(base_doc), 0, &bcd, &err), 0);
	assert_int_equal(vss_bcd_backup_type(bcd), VSS_BT_INCREMENTAL);
	assert_true(vss_bcd_partial_file_support(bcd));
	assert_int_equal(vss_bcd_component_count(bcd), 2);
	c = vss_bcd_component_at(bcd, 0);
	assert_non_null(c);
	assert_false(vss_bcd_backup_succeeded(c));
	assert_null(vss_bcd_backup_stamp(c));
	assert_int_equal(vss_bcd_partial_file_count(c), 1);
	assert_int_equal(vss_bcd_partial_file(c, 0, &pf), 0);
	assert_int_equal(pf.range_count, 2);
	assert_int_equal(pf.ranges[1].offset, 100);
	assert_null(pf.metadata);
	assert_int_equal(vss_bcd_partial_file(c, 1, &pf), -ERANGE);
	assert_int_equal(vss_bcd_differenced_files(c, 0, &df), 0);
	assert_false(df.recursive);
	/* 2024-02-29 is day 19782 since 1970-01-01: 19782 * 86400 + 45296. */
	assert_int_equal(df.last_modify.tv_sec, 1709210096);
	assert_int_equal(df.last_modify.tv_nsec, 0);
	assert_null(vss_bcd_component_at(bcd, 2));
	vss_bcd_free(bcd);
}

static const struct edit_case root_cases[] = {
	{ { "format" }, { "\"vss-writer-metadata\"" }, -EINVAL,
	  "$.format: expected \"vss-backup-components\", got \"vss-writer-metadata\"" },
	{ { "version" }, { "0" }, -EINVAL,
	  "$.version: unsupported version 0 (this library reads version 1)" },
	{ { "backup_type" }, { "\"weekly\"" }, -EINVAL,
	  "$.backup_type: unknown value \"weekly\" (one of: full, incremental, differential, log, copy)" },
	{ { "backup_type" }, { NULL }, -EINVAL, "$.backup_type: missing required member" },
	{ { "partial_file_support" }, { "\"yes\"" }, -EINVAL,
	  "$.partial_file_support: expected boolean, got string" },
	{ { "partial_file_support" }, { "false" }, -EINVAL,
	  C0_MSG "partial_files[0]: partial files need \"partial_file_support\": true" },
	{ { "writers" }, { NULL }, -EINVAL, "$.writers: missing required member" },
	{ { "writers" }, { "{}" }, -EINVAL, "$.writers: expected array, got object" },
	{ { "extra" }, { "true" }, -EINVAL, "$: unknown member \"extra\"" },
	{ { "writers/0/writer_class_id" }, { "\"nope\"" }, -EINVAL,
	  "$.writers[0].writer_class_id: not a UUID (8-4-4-4-12 hexadecimal digits): \"nope\"" },
	{ { "writers/0/writer_instance_id" }, { NULL }, -EINVAL,
	  "$.writers[0].writer_instance_id: missing required member" },
	{ { "writers/0/components" }, { "[]" }, -EINVAL, "$.writers[0].components: must not be empty" },
	{ { "writers/1" }, { "{\"writer_class_id\":\"11111111-2222-3333-4444-555555555555\","
			     "\"writer_instance_id\":\"AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE\","
			     "\"components\":[{\"name\":\"x\"}]}" }, -EINVAL,
	  "$.writers[1]: duplicate of $.writers[0] (writer class id " CLS ", instance id " INST ")" },
	{ { "writers/0/site" }, { "1" }, -EINVAL, "$.writers[0]: unknown member \"site\"" },
};

static void refuses_root_and_writers(void **state)
{
	run_cases(root_cases, sizeof(root_cases) / sizeof(root_cases[0]));
}

static const struct edit_case component_cases[] = {
	{ { "writers/0/components/1/name", "writers/0/components/1/logical_path" },
	  { "\"db\"", NULL }, -EINVAL,
	  "$.writers[0].components[1]: duplicate of $.writers[0].components[0] (logical path \"\", name \"db\")" },
	{ { "writers/0/components/1/name" }, { NULL }, -EINVAL,
	  "$.writers[0].components[1].name: missing required member" },
	{ { "writers/0/components/1/logical_path" }, { "\"cfg/\"" }, -EINVAL,
	  "$.writers[0].components[1].logical_path: must be names joined by single '/', without a leading or trailing '/', got \"cfg/\"" },
	{ { C0 "backup_succeeded" }, { "\"true\"" }, -EINVAL,
	  C0_MSG "backup_succeeded: expected boolean, got string" },
	{ { C0 "backup_stamp" }, { "\"\"" }, -EINVAL, C0_MSG "backup_stamp: must not be empty" },
	{ { C0 "backup_stamp" }, { "17" }, -EINVAL, C0_MSG "backup_stamp: expected string, got integer" },
	{ { C0 "previous_backup_stamp" }, { "\"a\\nb\"" }, -EINVAL,
	  C0_MSG "previous_backup_stamp: has control character 0x0a at byte 1" },
	{ { C0 "pre_restore_failure_message" }, { "\"\\u007f\"" }, -EINVAL,
	  C0_MSG "pre_restore_failure_message: has control character 0x7f at byte 0" },
	{ { C0 "post_restore_failure_msg" }, { "\"x\"" }, -EINVAL,
	  "$.writers[0].components[0]: unknown member \"post_restore_failure_msg\"" },
	{ { C0 "partial_files" }, { "{}" }, -EINVAL,
	  C0_MSG "partial_files: expected array, got object" },
};

static void refuses_components(void **state)
{
	run_cases(component_cases, sizeof(component_cases) / sizeof(component_cases[0]));
}

static const struct edit_case partial_cases[] = {
	{ { PF0 "ranges/0/offset" }, { "-1" }, -EINVAL,
	  PF0_MSG "ranges[0].offset: must not be negative, got -1" },
	{ { PF0 "ranges/1/length" }, { "0" }, -EINVAL,
	  PF0_MSG "ranges[1].length: must be positive, got 0" },
	{ { PF0 "ranges/1/length" }, { "-5" }, -EINVAL,
	  PF0_MSG "ranges[1].length: must be positive, got -5" },
	{ { PF0 "ranges/1/offset" }, { "5" }, -EINVAL,
	  PF0_MSG "ranges[1]: bytes [5, 15) overlap ranges[0], bytes [0, 10)" },
	{ { PF0 "ranges" }, { "[{\"offset\":100,\"length\":10},{\"offset\":50,\"length\":51}]" }, -EINVAL,
	  PF0_MSG "ranges[1]: bytes [50, 101) overlap ranges[0], bytes [100, 110)" },
	{ { PF0 "ranges" }, { "[{\"offset\":0,\"length\":1000},{\"offset\":10,\"length\":1},"
			      "{\"offset\":500,\"length\":1}]" }, -EINVAL,
	  PF0_MSG "ranges[1]: bytes [10, 11) overlap ranges[0], bytes [0, 1000)" },
	{ { PF0 "ranges" }, { "[{\"offset\":7,\"length\":3},{\"offset\":7,\"length\":3}]" }, -EINVAL,
	  PF0_MSG "ranges[1]: bytes [7, 10) overlap ranges[0], bytes [7, 10)" },
	{ { PF0 "ranges" }, { "[]" }, -EINVAL, PF0_MSG "ranges: must not be empty" },
	{ { PF0 "ranges" }, { NULL }, -EINVAL, PF0_MSG "ranges: missing required member" },
	{ { PF0 "ranges/1" }, { "{\"offset\":9223372036854775800,\"length\":100}" }, -EINVAL,
	  PF0_MSG "ranges[1]: offset + length is past the largest file offset (2^63 - 1)" },
	{ { PF0 "ranges/0/offset" }, { "1.5" }, -EINVAL,
	  PF0_MSG "ranges[0].offset: expected integer, got real" },
	{ { PF0 "ranges/0/extra" }, { "1" }, -EINVAL, PF0_MSG "ranges[0]: unknown member \"extra\"" },
	{ { PF0 "ranges/0" }, { "[0,10]" }, -EINVAL, PF0_MSG "ranges[0]: expected object, got array" },
	{ { PF0 "filename" }, { "\"a/b\"" }, -EINVAL,
	  PF0_MSG "filename: must not contain '/', got \"a/b\"" },
	{ { PF0 "path" }, { "\"/var/db/..\"" }, -EINVAL,
	  PF0_MSG "path: must not have a '.' or '..' segment, got \"/var/db/..\"" },
	{ { PF0 "metadata" }, { "\"\"" }, -EINVAL, PF0_MSG "metadata: must not be empty" },
	{ { C0 "partial_files/1" }, { "{\"path\":\"/var/db\",\"filename\":\"data\","
				      "\"ranges\":[{\"offset\":50,\"length\":1}]}" }, -EINVAL,
	  C0_MSG "partial_files[1]: duplicate of partial_files[0] (same path and filename)" },
};

static void refuses_partial_files(void **state)
{
	run_cases(partial_cases, sizeof(partial_cases) / sizeof(partial_cases[0]));
}

#define DF0 C0 "differenced_files/0/"
#define DF0_MSG C0_MSG "differenced_files[0]."
#define TIME_MSG(t) DF0_MSG "last_modify_time: not an RFC 3339 UTC time " \
	"(YYYY-MM-DDThh:mm:ss[.fraction]Z, 1970 to 9999): \"" t "\""

static const struct edit_case diff_cases[] = {
	{ { DF0 "last_modify_time" }, { "\"2024-02-30T00:00:00Z\"" }, -EINVAL,
	  TIME_MSG("2024-02-30T00:00:00Z") },
	{ { DF0 "last_modify_time" }, { "\"2023-02-29T00:00:00Z\"" }, -EINVAL,
	  TIME_MSG("2023-02-29T00:00:00Z") },
	{ { DF0 "last_modify_time" }, { "\"2100-02-29T00:00:00Z\"" }, -EINVAL,
	  TIME_MSG("2100-02-29T00:00:00Z") },
	{ { DF0 "last_modify_time" }, { "\"2024-05-01T02:00:00+02:00\"" }, -EINVAL,
	  TIME_MSG("2024-05-01T02:00:00+02:00") },
	{ { DF0 "last_modify_time" }, { "\"1969-12-31T23:59:59Z\"" }, -EINVAL,
	  TIME_MSG("1969-12-31T23:59:59Z") },
	{ { DF0 "last_modify_time" }, { "\"2024-05-01 02:00:00Z\"" }, -EINVAL,
	  TIME_MSG("2024-05-01 02:00:00Z") },
	{ { DF0 "last_modify_time" }, { "\"2024-05-01T24:00:00Z\"" }, -EINVAL,
	  TIME_MSG("2024-05-01T24:00:00Z") },
	{ { DF0 "last_modify_time" }, { "\"2016-12-31T23:59:60Z\"" }, -EINVAL,
	  TIME_MSG("2016-12-31T23:59:60Z") },
	{ { DF0 "last_modify_time" }, { "\"2024-05-01T02:00:00.Z\"" }, -EINVAL,
	  TIME_MSG("2024-05-01T02:00:00.Z") },
	{ { DF0 "last_modify_time" }, { "\"2024-05-01T02:00:00.1234567891Z\"" }, -EINVAL,
	  TIME_MSG("2024-05-01T02:00:00.1234567891Z") },
	{ { DF0 "last_modify_time" }, { "\"2024-05-01t02:00:00z\"" }, -EINVAL,
	  TIME_MSG("2024-05-01t02:00:00z") },
	{ { DF0 "last_modify_time" }, { "1714528800" }, -EINVAL,
	  DF0_MSG "last_modify_time: expected string, got integer" },
	{ { DF0 "last_modify_time" }, { NULL }, -EINVAL,
	  DF0_MSG "last_modify_time: missing required member" },
	{ { DF0 "path" }, { "\"rel/dir\"" }, -EINVAL,
	  DF0_MSG "path: must be an absolute path, got \"rel/dir\"" },
	{ { DF0 "file_spec" }, { "\".\"" }, -EINVAL, DF0_MSG "file_spec: must not be '.' or '..'" },
	{ { DF0 "recursive" }, { "null" }, -EINVAL, DF0_MSG "recursive: expected boolean, got null" },
};

static void refuses_differenced_files(void **state)
{
	run_cases(diff_cases, sizeof(diff_cases) / sizeof(diff_cases[0]));
}

/* Touching ranges are fine, in any order; options may span lines. */
static void accepts_edge_values(void **state)
{
	const char *p[] = { PF0 "ranges", C0 "backup_options", DF0 "last_modify_time" };
	const char *v[] = { ("[{\"offset\":10,\"length\":5},{\"offset\":0,\"length\":10},"
			     "{\"offset\":9223372036854775806,\"length\":1}]"),
			    "\"a=1\\nb=2\\tc\"", "\"9999-12-31T23:59:59.999999999Z\"" };
	char *text = edited(p, v, 3);
	struct vss_bcd_differenced_files df;
	struct vss_bcd_partial_file pf;
	struct vss_bcd_component *c;
	struct vss_error err;
	struct vss_bcd *bcd;

	assert_int_equal(vss_bcd_parse(text, strlen(text), 0, &bcd, &err), 0);
	c = vss_bcd_component_at(bcd, 0);
	assert_string_equal(vss_bcd_backup_options(c), "a=1\nb=2\tc");
	assert_int_equal(vss_bcd_partial_file(c, 0, &pf), 0);
	assert_int_equal(pf.range_count, 3);
	assert_int_equal(pf.ranges[2].offset, INT64_MAX - 1);
	assert_int_equal(vss_bcd_differenced_files(c, 0, &df), 0);
	assert_int_equal(df.last_modify.tv_sec, 253402300799LL);
	assert_int_equal(df.last_modify.tv_nsec, 999999999);
	vss_bcd_free(bcd);
	free(text);
}

static void string_limits(void **state)
{
	struct { const char *path; size_t max; const char *msg; } t[] = {
		{ C0 "backup_stamp", 4096, C0_MSG "backup_stamp: is 4097 bytes, over the limit of 4096" },
		{ C0 "previous_backup_stamp", 4096, C0_MSG "previous_backup_stamp: is 4097 bytes, over the limit of 4096" },
		{ C0 "backup_options", 65536, C0_MSG "backup_options: is 65537 bytes, over the limit of 65536" },
		{ C0 "backup_metadata", 65536, C0_MSG "backup_metadata: is 65537 bytes, over the limit of 65536" },
		{ PF0 "metadata", 65536, PF0_MSG "metadata: is 65537 bytes, over the limit of 65536" },
		{ "writers/0/components/1/name", 1024, "$.writers[0].components[1].name: is 1025 bytes, over the limit of 1024" },
	};
	for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
		for (size_t extra = 0; extra < 2; extra++) {
			size_t n = t[k].max + extra;
			char *v = malloc(n + 3), *text;
			struct vss_bcd *bcd;
			struct vss_error err;
			v[0] = '"';
			memset(v + 1, 's', n);
			v[n + 1] = '"';
			v[n + 2] = '\0';
			text = edited(&t[k].path, (const char *const *)&v, 1);
			int r = vss_bcd_parse(text, strlen(text), 0, &bcd, &err);
			if (!extra) {
				assert_int_equal(r, 0);
				vss_bcd_free(bcd);
			} else {
				assert_int_equal(r, -EINVAL);
				assert_string_equal(err.msg, t[k].msg);
			}
			free(text);
			free(v);
		}
	}
}

static void refuses_malformed_and_oversized(void **state)
{
	struct vss_bcd *bcd = (void *)1;
	struct vss_error err;
	char msg[128];
	size_t len = strlen(base_doc);

	assert_int_equal(vss_bcd_parse("{\"format\" \"x\"}", 14, 0, &bcd, &err), -EBADMSG);
	assert_string_equal(err.msg, "$: malformed JSON at line 1, column 13: ':' expected near '\"x\"'");
	assert_null(bcd);
	assert_int_equal(vss_bcd_parse("{\"a\":99999999999999999999}", 26, 0, &bcd, &err), -EBADMSG);
	assert_string_equal(err.msg, "$: malformed JSON at line 1, column 25: too big integer near '99999999999999999999'");
	assert_int_equal(vss_bcd_parse("\"x\"", 3, 0, &bcd, &err), -EBADMSG);
	assert_string_equal(err.msg, "$: malformed JSON at line 1, column 3: '[' or '{' expected near '\"x\"'");
	assert_int_equal(vss_bcd_parse(base_doc, len, len - 1, &bcd, &err), -EFBIG);
	snprintf(msg, sizeof(msg), "$: document is %zu bytes, over the limit of %zu", len, len - 1);
	assert_string_equal(err.msg, msg);
	assert_int_equal(err.code, -EFBIG);
}

/* RFC 3339 against epoch seconds worked out by hand (days * 86400 + time). */
static void times(void **state)
{
	static const struct { const char *in, *out; long long sec; long nsec; } t[] = {
		{ "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", 0, 0 },
		/* 2000-03-01: 30 years of 365 days + 7 leap days + Jan + Feb(29). */
		{ "2000-03-01T00:00:00Z", "2000-03-01T00:00:00Z", (10957LL + 31 + 29) * 86400, 0 },
		{ "2024-02-29T12:34:56.5Z", "2024-02-29T12:34:56.5Z", 1709210096, 500000000 },
		{ "2024-05-01T02:00:00.000000000Z", "2024-05-01T02:00:00Z", 1714528800, 0 },
		{ "2024-05-01T02:00:00.000000001Z", "2024-05-01T02:00:00.000000001Z", 1714528800, 1 },
		{ "2024-05-01T02:00:00.120Z", "2024-05-01T02:00:00.12Z", 1714528800, 120000000 },
		{ "9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z", 253402300799LL, 0 },
	};
	char buf[VSS_BCD_TIME_BUF];
	struct timespec ts;

	for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
		assert_int_equal(vss_bcd_time_parse(t[k].in, &ts), 0);
		assert_int_equal(ts.tv_sec, t[k].sec);
		assert_int_equal(ts.tv_nsec, t[k].nsec);
		assert_int_equal(vss_bcd_time_format(&ts, buf), 0);
		assert_string_equal(buf, t[k].out);
	}
	/* The longest text fits the buffer exactly. */
	ts = (struct timespec){ .tv_sec = 253402300799LL, .tv_nsec = 123456789 };
	assert_int_equal(vss_bcd_time_format(&ts, buf), 0);
	assert_string_equal(buf, "9999-12-31T23:59:59.123456789Z");
	assert_int_equal(strlen(buf) + 1, VSS_BCD_TIME_BUF);
	/* Every day of a leap and a common year, through format and parse. */
	for (long long d = 19358; d < 19358 + 366 + 365; d++) {
		ts = (struct timespec){ .tv_sec = d * 86400 + 3723, .tv_nsec = 0 };
		struct timespec back;
		assert_int_equal(vss_bcd_time_format(&ts, buf), 0);
		assert_int_equal(vss_bcd_time_parse(buf, &back), 0);
		assert_int_equal(back.tv_sec, ts.tv_sec);
	}
	ts = (struct timespec){ .tv_sec = -1 };
	assert_int_equal(vss_bcd_time_format(&ts, buf), -EINVAL);
	ts = (struct timespec){ .tv_sec = 253402300800LL };
	assert_int_equal(vss_bcd_time_format(&ts, buf), -EINVAL);
	ts = (struct timespec){ .tv_sec = 0, .tv_nsec = 1000000000L };
	assert_int_equal(vss_bcd_time_format(&ts, buf), -EINVAL);
	assert_int_equal(vss_bcd_time_parse("2024-05-01T02:00:00", &ts), -EINVAL);
	assert_int_equal(vss_bcd_time_parse("2024-05-01T02:00:00Zx", &ts), -EINVAL);
	assert_int_equal(vss_bcd_time_parse("", &ts), -EINVAL);
}

static char *round_trip(const struct vss_bcd *bcd, struct vss_bcd **back)
{
	struct vss_error err;
	char *a, *b;
	size_t la, lb;

	assert_int_equal(vss_bcd_serialize(bcd, &a, &la, &err), 0);
	assert_int_equal(strlen(a), la);
	assert_int_equal(vss_bcd_parse(a, la, 0, back, &err), 0);
	assert_int_equal(vss_bcd_serialize(*back, &b, &lb, &err), 0);
	assert_string_equal(a, b);
	free(b);
	return a;
}

static void builder_round_trip(void **state)
{
	struct vss_bcd_range ranges[] = { { 4096, 4096 }, { 0, 512 } };
	struct vss_bcd_component *c1, *c2, *c3, *c;
	struct vss_bcd_component_info ci;
	struct vss_bcd_partial_file pf;
	struct vss_bcd_differenced_files df;
	struct vss_bcd *bcd, *back;
	struct vss_error err;
	char *text;

	assert_int_equal(vss_bcd_new(VSS_BT_DIFFERENTIAL, true, &bcd, &err), 0);
	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS, .instance_id = INST, .logical_path = "a/b", .name = "one" },
		&c1, &err), 0);
	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS2, .instance_id = INST, .name = "other" }, &c2, &err), 0);
	/* Same writer, ids in upper case: grouped with the first. */
	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = "11111111-2222-3333-4444-555555555555",
		.instance_id = "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", .name = "two" },
		&c3, &err), 0);
	assert_int_equal(vss_bcd_set_backup_stamp(c1, "stamp-2", &err), 0);
	assert_int_equal(vss_bcd_set_previous_backup_stamp(c1, "stamp-1", &err), 0);
	assert_int_equal(vss_bcd_set_backup_options(c1, "opt", &err), 0);
	assert_int_equal(vss_bcd_set_backup_metadata(c1, "label\nSTART WAL 0/2\n", &err), 0);
	assert_int_equal(vss_bcd_set_pre_restore_failure_msg(c1, "pre", &err), 0);
	assert_int_equal(vss_bcd_set_post_restore_failure_msg(c1, "post", &err), 0);
	assert_int_equal(vss_bcd_set_backup_options(c1, NULL, &err), 0);
	vss_bcd_set_backup_succeeded(c1, true);
	assert_int_equal(vss_bcd_add_partial_file(c1, &(struct vss_bcd_partial_file){
		.path = "/srv", .filename = "f.db", .ranges = ranges, .range_count = 2,
		.metadata = "m" }, &err), 0);
	ranges[0].offset = 1;  /* the document keeps its own copy */
	assert_int_equal(vss_bcd_add_differenced_files(c3, &(struct vss_bcd_differenced_files){
		.path = "/srv", .file_spec = "*.log", .recursive = true,
		.last_modify = { .tv_sec = 1714528800, .tv_nsec = 250000000 } }, &err), 0);
	/* No time: null in the document, the epoch in C. */
	assert_int_equal(vss_bcd_add_differenced_files(c3, &(struct vss_bcd_differenced_files){
		.path = "/srv", .file_spec = "*.dat" }, &err), 0);

	text = round_trip(bcd, &back);
	assert_int_equal(vss_bcd_backup_type(back), VSS_BT_DIFFERENTIAL);
	assert_int_equal(vss_bcd_component_count(back), 3);
	/* Grouped by writer, in the order writers were first added. */
	c = vss_bcd_component_at(back, 0);
	vss_bcd_component_info(c, &ci);
	assert_string_equal(ci.name, "one");
	assert_string_equal(ci.logical_path, "a/b");
	assert_string_equal(ci.class_id, CLS);
	assert_string_equal(vss_bcd_backup_stamp(c), "stamp-2");
	assert_string_equal(vss_bcd_previous_backup_stamp(c), "stamp-1");
	assert_null(vss_bcd_backup_options(c));
	assert_string_equal(vss_bcd_backup_metadata(c), "label\nSTART WAL 0/2\n");
	assert_string_equal(vss_bcd_pre_restore_failure_msg(c), "pre");
	assert_string_equal(vss_bcd_post_restore_failure_msg(c), "post");
	assert_true(vss_bcd_backup_succeeded(c));
	assert_int_equal(vss_bcd_partial_file(c, 0, &pf), 0);
	assert_string_equal(pf.path, "/srv");
	assert_string_equal(pf.filename, "f.db");
	assert_string_equal(pf.metadata, "m");
	assert_int_equal(pf.range_count, 2);
	assert_int_equal(pf.ranges[0].offset, 4096);
	assert_int_equal(pf.ranges[0].length, 4096);
	assert_int_equal(pf.ranges[1].offset, 0);
	assert_int_equal(pf.ranges[1].length, 512);
	c = vss_bcd_component_at(back, 1);
	vss_bcd_component_info(c, &ci);
	assert_string_equal(ci.name, "two");
	assert_string_equal(ci.instance_id, INST);
	assert_false(vss_bcd_backup_succeeded(c));
	assert_int_equal(vss_bcd_differenced_files_count(c), 2);
	assert_int_equal(vss_bcd_differenced_files(c, 0, &df), 0);
	assert_true(df.recursive);
	assert_int_equal(df.last_modify.tv_sec, 1714528800);
	assert_int_equal(df.last_modify.tv_nsec, 250000000);
	assert_int_equal(vss_bcd_differenced_files(c, 1, &df), 0);
	assert_string_equal(df.file_spec, "*.dat");
	assert_int_equal(df.last_modify.tv_sec, 0);
	assert_int_equal(df.last_modify.tv_nsec, 0);
	assert_non_null(strstr(text, "\"last_modify_time\": null"));
	c = vss_bcd_component_at(back, 2);
	vss_bcd_component_info(c, &ci);
	assert_string_equal(ci.class_id, CLS2);
	assert_non_null(strstr(text, "\"last_modify_time\": \"2024-05-01T02:00:00.25Z\""));

	assert_ptr_equal(vss_bcd_find_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS, .instance_id = INST, .name = "two" }), c3);
	assert_ptr_equal(vss_bcd_find_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS2, .instance_id = INST, .logical_path = "", .name = "other" }), c2);
	assert_null(vss_bcd_find_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS2, .instance_id = INST, .name = "one" }));
	assert_null(vss_bcd_find_component(bcd, &(struct vss_bcd_component_info){
		.class_id = "bad", .instance_id = INST, .name = "one" }));
	free(text);
	vss_bcd_free(back);
	vss_bcd_free(bcd);
}

static void builder_refusals(void **state)
{
	struct vss_bcd_range r[] = { { 0, 10 } };
	struct vss_bcd_component *c = (void *)1;
	struct vss_bcd *bcd = (void *)1;
	struct vss_error err;
	char *json;

	assert_int_equal(vss_bcd_new(0, false, &bcd, &err), -EINVAL);
	assert_string_equal(err.msg, "$.backup_type: invalid value 0 (one of: full, incremental, differential, log, copy)");
	assert_null(bcd);
	assert_int_equal(vss_bcd_new(VSS_BT_FULL, false, &bcd, &err), 0);
	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS, .instance_id = "x", .name = "db" }, &c, &err), -EINVAL);
	assert_string_equal(err.msg, "$.writers[0].writer_instance_id: not a UUID (8-4-4-4-12 hexadecimal digits): \"x\"");
	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS, .instance_id = INST, .name = "a/b" }, &c, &err), -EINVAL);
	assert_string_equal(err.msg, "$.writers[0].components[0].name: must not contain '/', got \"a/b\"");
	/* The writer made for the refused component is gone again. */
	assert_int_equal(vss_bcd_component_count(bcd), 0);
	assert_int_equal(vss_bcd_serialize(bcd, &json, NULL, &err), 0);
	assert_non_null(strstr(json, "\"writers\": []"));
	free(json);

	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS, .instance_id = INST, .name = "db" }, &c, &err), 0);
	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS, .instance_id = INST, .name = "db" }, NULL, &err), -EEXIST);
	assert_string_equal(err.msg, "$.writers[0].components[1]: duplicate of $.writers[0].components[0] (logical path \"\", name \"db\")");
	assert_int_equal(vss_bcd_add_partial_file(c, &(struct vss_bcd_partial_file){
		.path = "/d", .filename = "f", .ranges = r, .range_count = 1 }, &err), -EINVAL);
	assert_string_equal(err.msg, "$.writers[0].components[0].partial_files[0]: partial files need \"partial_file_support\": true");
	assert_int_equal(vss_bcd_add_differenced_files(c, &(struct vss_bcd_differenced_files){
		.path = "/d", .file_spec = "*", .last_modify = { .tv_sec = 0, .tv_nsec = 1000000000L } }, &err), -EINVAL);
	assert_string_equal(err.msg, "$.writers[0].components[0].differenced_files[0].last_modify_time: out of range (1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z)");
	assert_int_equal(vss_bcd_set_backup_stamp(c, "", &err), -EINVAL);
	assert_string_equal(err.msg, "$.writers[0].components[0].backup_stamp: must not be empty");
	assert_int_equal(vss_bcd_set_backup_stamp(c, "ok", &err), 0);
	assert_int_equal(vss_bcd_set_backup_stamp(c, "bad\x01", &err), -EINVAL);
	assert_string_equal(vss_bcd_backup_stamp(c), "ok");  /* unchanged on refusal */
	vss_bcd_free(bcd);

	assert_int_equal(vss_bcd_new(VSS_BT_INCREMENTAL, true, &bcd, &err), 0);
	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS, .instance_id = INST, .name = "db" }, &c, &err), 0);
	struct vss_bcd_range bad[] = { { 0, 10 }, { 20, 5 }, { 9, 2 } };
	assert_int_equal(vss_bcd_add_partial_file(c, &(struct vss_bcd_partial_file){
		.path = "/d", .filename = "f", .ranges = bad, .range_count = 3 }, &err), -EINVAL);
	assert_string_equal(err.msg, "$.writers[0].components[0].partial_files[0].ranges[2]: bytes [9, 11) overlap ranges[0], bytes [0, 10)");
	assert_int_equal(vss_bcd_add_partial_file(c, &(struct vss_bcd_partial_file){
		.path = "/d", .filename = "f", .ranges = bad, .range_count = 0 }, &err), -EINVAL);
	assert_string_equal(err.msg, "$.writers[0].components[0].partial_files[0].ranges: must not be empty");
	assert_int_equal(vss_bcd_add_partial_file(c, &(struct vss_bcd_partial_file){
		.path = "/d", .filename = "f", .ranges = bad, .range_count = 2 }, &err), 0);
	assert_int_equal(vss_bcd_add_partial_file(c, &(struct vss_bcd_partial_file){
		.path = "/d", .filename = "f", .ranges = bad, .range_count = 1 }, &err), -EEXIST);
	assert_string_equal(err.msg, "$.writers[0].components[0].partial_files[1]: duplicate of partial_files[0] (same path and filename)");
	assert_int_equal(vss_bcd_partial_file_count(c), 1);
	vss_bcd_free(bcd);
}

/* The example in doc/backup-components.md, against the writer whose
 * metadata is the example in doc/writer-metadata.md. */
static void documented_example(void **state)
{
	char *text = doc_example("backup-components.md");
	char *wtext = doc_example("writer-metadata.md");
	struct vss_bcd_differenced_files df;
	struct vss_bcd_partial_file pf;
	struct vss_bcd_component *c;
	struct vss_bcd *bcd, *back;
	struct vss_wmd *wmd;
	struct vss_error err;

	assert_int_equal(vss_bcd_parse(text, strlen(text), 0, &bcd, &err), 0);
	assert_int_equal(vss_bcd_backup_type(bcd), VSS_BT_INCREMENTAL);
	assert_true(vss_bcd_partial_file_support(bcd));
	assert_int_equal(vss_bcd_component_count(bcd), 2);
	c = vss_bcd_component_at(bcd, 0);
	assert_string_equal(vss_bcd_backup_stamp(c), "lsn:0/3000060");
	assert_string_equal(vss_bcd_previous_backup_stamp(c), "lsn:0/2000028");
	assert_string_equal(vss_bcd_backup_options(c), "compress=zstd");
	assert_string_equal(vss_bcd_backup_metadata(c), "START WAL LOCATION: 0/3000028\n"
			    "CHECKPOINT LOCATION: 0/3000060\n");
	assert_int_equal(vss_bcd_partial_file(c, 0, &pf), 0);
	assert_int_equal(pf.range_count, 2);
	assert_int_equal(pf.ranges[0].offset, 65536);
	assert_int_equal(pf.ranges[1].length, 8192);
	assert_int_equal(vss_bcd_differenced_files(c, 0, &df), 0);
	/* 2024-05-01 is day 19844: 19844 * 86400 + 2 h. */
	assert_int_equal(df.last_modify.tv_sec, 19844LL * 86400 + 7200);
	c = vss_bcd_component_at(bcd, 1);
	assert_string_equal(vss_bcd_post_restore_failure_msg(c),
			    "reload failed: run systemctl reload postgresql@15-main");

	assert_int_equal(vss_wmd_parse(wtext, strlen(wtext), 0, &wmd, &err), 0);
	assert_int_equal(vss_bcd_check_writer(bcd, wmd, &err), 0);
	free(round_trip(bcd, &back));
	vss_bcd_free(back);
	vss_wmd_free(wmd);
	vss_bcd_free(bcd);
	free(wtext);
	free(text);
}

static void check_against_writer(void **state)
{
	struct vss_bcd_component *c, *other;
	struct vss_error err;
	struct vss_wmd *wmd;
	struct vss_bcd *bcd;

	assert_int_equal(vss_wmd_new(&(struct vss_wmd_identity){ .writer_name = "w",
		.class_id = CLS, .instance_id = INST, .usage = VSS_UT_OTHER,
		.source = VSS_ST_OTHER }, &wmd, &err), 0);
	assert_int_equal(vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_FILE_GROUP, .name = "db" }, &err), 0);
	assert_int_equal(vss_bcd_new(VSS_BT_INCREMENTAL, false, &bcd, &err), 0);
	/* Another writer's components, even unknown ones, are not checked. */
	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS2, .instance_id = INST, .name = "unknown" }, &other, &err), 0);
	assert_int_equal(vss_bcd_set_backup_stamp(other, "s", &err), 0);
	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS, .instance_id = INST, .name = "db" }, &c, &err), 0);
	assert_int_equal(vss_bcd_check_writer(bcd, wmd, &err), 0);

	assert_int_equal(vss_bcd_set_previous_backup_stamp(c, "s", &err), 0);
	assert_int_equal(vss_bcd_check_writer(bcd, wmd, &err), -EINVAL);
	assert_string_equal(err.msg, "$.writers[1].components[0].previous_backup_stamp: writer \"w\" does not declare \"timestamped\" in its backup schema");
	assert_int_equal(vss_bcd_set_previous_backup_stamp(c, NULL, &err), 0);
	assert_int_equal(vss_bcd_add_differenced_files(c, &(struct vss_bcd_differenced_files){
		.path = "/d", .file_spec = "*" }, &err), 0);
	assert_int_equal(vss_bcd_check_writer(bcd, wmd, &err), -EINVAL);
	assert_string_equal(err.msg, "$.writers[1].components[0].differenced_files: writer \"w\" does not declare \"last_modify\" in its backup schema");
	assert_int_equal(vss_wmd_set_backup_schema(wmd, VSS_BS_INCREMENTAL | VSS_BS_LAST_MODIFY, &err), 0);
	assert_int_equal(vss_bcd_check_writer(bcd, wmd, &err), 0);

	assert_int_equal(vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
		.class_id = CLS, .instance_id = INST, .logical_path = "x", .name = "db" }, NULL, &err), 0);
	assert_int_equal(vss_bcd_check_writer(bcd, wmd, &err), -EINVAL);
	assert_string_equal(err.msg, "$.writers[1].components[1]: writer \"w\" has no component with logical path \"x\" and name \"db\"");
	vss_bcd_free(bcd);
	vss_wmd_free(wmd);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base_document_parses),
		cmocka_unit_test(refuses_root_and_writers),
		cmocka_unit_test(refuses_components),
		cmocka_unit_test(refuses_partial_files),
		cmocka_unit_test(refuses_differenced_files),
		cmocka_unit_test(accepts_edge_values),
		cmocka_unit_test(string_limits),
		cmocka_unit_test(refuses_malformed_and_oversized),
		cmocka_unit_test(times),
		cmocka_unit_test(builder_round_trip),
		cmocka_unit_test(builder_refusals),
		cmocka_unit_test(documented_example),
		cmocka_unit_test(check_against_writer),
	};
	if (argc > 1)
		doc_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
