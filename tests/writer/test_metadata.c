/*
 * tests/writer/test_metadata.c - the writer metadata document: builder and
 * parser round trips, the example in doc/writer-metadata.md, every refusal
 * with its exact message, and which file sets each backup type takes.
 * Usage: test-writer-metadata DOC_DIR
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

/* A small valid document; the refusal cases each edit it a little. */
static const char base_doc[] =
	"{\"format\":\"vss-writer-metadata\",\"version\":1,"
	"\"writer_name\":\"w\",\"writer_class_id\":\"" CLS "\","
	"\"writer_instance_id\":\"" INST "\","
	"\"usage_type\":\"user_data\",\"source_type\":\"transacted_db\","
	"\"components\":["
	"{\"type\":\"database\",\"name\":\"db\",\"file_sets\":"
	"[{\"kind\":\"database\",\"path\":\"/var/db\",\"file_spec\":\"*\"}]},"
	"{\"type\":\"file_group\",\"logical_path\":\"cfg\",\"name\":\"files\",\"file_sets\":"
	"[{\"kind\":\"files\",\"path\":\"/etc/w\",\"file_spec\":\"*.conf\"}]}]}";

struct edit_case {
	const char *path[3], *value[3];
	int code;
	const char *msg;
};

static void run_cases(const struct edit_case *cases, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		const struct edit_case *t = &cases[k];
		json_t *root = json_loads(base_doc, 0, NULL);
		struct vss_error err;
		struct vss_wmd *wmd = (void *)1;
		char *text;

		assert_non_null(root);
		for (int e = 0; e < 3 && t->path[e]; e++)
			edit(root, t->path[e], t->value[e]);
		text = json_dumps(root, JSON_COMPACT);
		assert_non_null(text);
		int r = vss_wmd_parse(text, strlen(text), 0, &wmd, &err);
		if (r != t->code || strcmp(err.msg, t->msg))
			print_message("case %zu: %s\n", k, text);
		assert_int_equal(r, t->code);
		assert_int_equal(err.code, t->code);
		assert_string_equal(err.msg, t->msg);
		assert_null(wmd);
		free(text);
		json_decref(root);
	}
}

static void base_document_parses(void **state)
{
	struct vss_wmd *wmd;
	struct vss_error err;
	struct vss_wmd_file_set fs;
	struct vss_wmd_restore_method rm;

	assert_int_equal(vss_wmd_parse(base_doc, strlen(base_doc), 0, &wmd, &err), 0);
	assert_string_equal(err.msg, "");
	assert_int_equal(vss_wmd_component_count(wmd), 2);
	/* Defaults. */
	vss_wmd_restore_method(wmd, &rm);
	assert_int_equal(rm.method, VSS_RME_RESTORE_IF_CAN_REPLACE);
	assert_int_equal(rm.writer_restore, VSS_WRE_NEVER);
	assert_null(rm.service);
	assert_int_equal(vss_wmd_backup_schema(wmd), 0);
	assert_int_equal(vss_wmd_file_set(wmd, 0, 0, &fs), 0);
	assert_int_equal(fs.backup_type_mask, VSS_FSBT_DEFAULT);
	assert_int_equal(fs.backup_type_mask, 0xF0F);
	assert_false(fs.recursive);
	assert_null(fs.alternate_path);
	vss_wmd_free(wmd);
}

static const struct edit_case root_cases[] = {
	{ { "version" }, { "2" }, -EINVAL,
	  "$.version: unsupported version 2 (this library reads version 1)" },
	{ { "version" }, { "\"1\"" }, -EINVAL, "$.version: expected integer, got string" },
	{ { "version" }, { "1.0" }, -EINVAL, "$.version: expected integer, got real" },
	{ { "format" }, { "\"vss-backup-components\"" }, -EINVAL,
	  "$.format: expected \"vss-writer-metadata\", got \"vss-backup-components\"" },
	{ { "format" }, { NULL }, -EINVAL, "$.format: missing required member" },
	{ { "colour" }, { "\"red\"" }, -EINVAL, "$: unknown member \"colour\"" },
	{ { "writer_name" }, { NULL }, -EINVAL, "$.writer_name: missing required member" },
	{ { "writer_name" }, { "5" }, -EINVAL, "$.writer_name: expected string, got integer" },
	{ { "writer_name" }, { "\"\"" }, -EINVAL, "$.writer_name: must not be empty" },
	{ { "writer_name" }, { "\"a\\u0001b\"" }, -EINVAL,
	  "$.writer_name: has control character 0x01 at byte 1" },
	{ { "writer_class_id" }, { "\"1111-2222\"" }, -EINVAL,
	  "$.writer_class_id: not a UUID (8-4-4-4-12 hexadecimal digits): \"1111-2222\"" },
	{ { "writer_class_id" }, { "\"11111111-2222-3333-4444-55555555555g\"" }, -EINVAL,
	  "$.writer_class_id: not a UUID (8-4-4-4-12 hexadecimal digits): \"11111111-2222-3333-4444-55555555555g\"" },
	{ { "writer_class_id" }, { "\"111111112-222-3333-4444-555555555555\"" }, -EINVAL,
	  "$.writer_class_id: not a UUID (8-4-4-4-12 hexadecimal digits): \"111111112-222-3333-4444-555555555555\"" },
	{ { "writer_instance_id" }, { "\"00000000-0000-0000-0000-000000000000\"" }, -EINVAL,
	  "$.writer_instance_id: must not be the nil UUID" },
	{ { "usage_type" }, { "\"user\"" }, -EINVAL,
	  "$.usage_type: unknown value \"user\" (one of: user_data, bootable_system_state, system_service, other)" },
	{ { "source_type" }, { "null" }, -EINVAL, "$.source_type: expected string, got null" },
	{ { "instance_name" }, { "[]" }, -EINVAL, "$.instance_name: expected string, got array" },
};

static void refuses_root_members(void **state)
{
	run_cases(root_cases, sizeof(root_cases) / sizeof(root_cases[0]));
}

static const struct edit_case restore_cases[] = {
	{ { "restore_method" }, { "{\"method\":\"stop_restore_start\"}" }, -EINVAL,
	  "$.restore_method.service: required with method \"stop_restore_start\"" },
	{ { "restore_method" }, { "{\"method\":\"restore_if_not_there\",\"service\":\"x\"}" }, -EINVAL,
	  "$.restore_method.service: only allowed with methods \"stop_restore_start\" and \"restore_stop_start\"" },
	{ { "restore_method" }, { "{\"method\":\"custom\"}" }, -EINVAL,
	  "$.restore_method.user_procedure: required with method \"custom\"" },
	{ { "restore_method" }, { "{\"method\":\"restore_to_alternate_location\"}" }, -EINVAL,
	  "$.restore_method: method \"restore_to_alternate_location\" needs alternate_location_mappings" },
	{ { "restore_method" }, { "{\"writer_restore\":\"never\"}" }, -EINVAL,
	  "$.restore_method.method: missing required member" },
	{ { "restore_method" }, { "{\"method\":\"custom\",\"user_procedure\":\"x\",\"when\":1}" }, -EINVAL,
	  "$.restore_method: unknown member \"when\"" },
	{ { "restore_method" }, { "{\"method\":\"restore_if_not_there\",\"writer_restore\":\"sometimes\"}" }, -EINVAL,
	  "$.restore_method.writer_restore: unknown value \"sometimes\" (one of: never, if_replace_fails, always)" },
	{ { "restore_method" }, { "{\"method\":\"restore_if_not_there\",\"reboot_required\":0}" }, -EINVAL,
	  "$.restore_method.reboot_required: expected boolean, got integer" },
	{ { "restore_method" }, { "\"restore_if_not_there\"" }, -EINVAL,
	  "$.restore_method: expected object, got string" },
	{ { "alternate_location_mappings" }, { "[{\"path\":\"/x\",\"file_spec\":\"*\"}]" }, -EINVAL,
	  "$.alternate_location_mappings[0].destination: missing required member" },
	{ { "alternate_location_mappings" }, { "[{\"path\":\"/x\",\"file_spec\":\"*\",\"destination\":\"y\"}]" }, -EINVAL,
	  "$.alternate_location_mappings[0].destination: must be an absolute path, got \"y\"" },
	{ { "exclude_files" }, { "[{\"path\":\"/x\",\"file_spec\":\"*\",\"destination\":\"/y\"}]" }, -EINVAL,
	  "$.exclude_files[0]: unknown member \"destination\"" },
	{ { "exclude_files" }, { "[{\"path\":\"/x\",\"file_spec\":\"a/b\"}]" }, -EINVAL,
	  "$.exclude_files[0].file_spec: must not contain '/', got \"a/b\"" },
	{ { "exclude_files" }, { "[{\"file_spec\":\"*\"}]" }, -EINVAL,
	  "$.exclude_files[0].path: missing required member" },
	{ { "exclude_files" }, { "{}" }, -EINVAL, "$.exclude_files: expected array, got object" },
};

static void refuses_restore_method_and_file_specs(void **state)
{
	run_cases(restore_cases, sizeof(restore_cases) / sizeof(restore_cases[0]));
}

static const struct edit_case schema_cases[] = {
	{ { "backup_schema" }, { "[\"incremental\",\"weekly\"]" }, -EINVAL,
	  "$.backup_schema[1]: unknown value \"weekly\" (one of: differential, incremental, "
	  "exclusive_incremental_differential, log, copy, timestamped, last_modify, lsn, "
	  "writer_supports_new_target, writer_supports_restore_with_move, independent_system_state, "
	  "rollforward_restore, restore_rename, authoritative_restore, writer_supports_parallel_restores)" },
	{ { "backup_schema" }, { "[\"copy\",\"copy\"]" }, -EINVAL,
	  "$.backup_schema[1]: \"copy\" given twice" },
	{ { "backup_schema" }, { "[\"copy\",7]" }, -EINVAL,
	  "$.backup_schema[1]: expected string, got integer" },
	{ { "backup_schema" }, { "\"incremental\"" }, -EINVAL,
	  "$.backup_schema: expected array, got string" },
	{ { "backup_schema" }, { "[\"exclusive_incremental_differential\"]" }, -EINVAL,
	  "$.backup_schema: \"exclusive_incremental_differential\" needs \"incremental\" or \"differential\"" },
	{ { "backup_schema" }, { "[\"copy\",\"last_modify\"]" }, -EINVAL,
	  "$.backup_schema: \"last_modify\" needs \"incremental\" or \"differential\"" },
	{ { "backup_schema" }, { "[\"timestamped\"]" }, -EINVAL,
	  "$.backup_schema: \"timestamped\" needs \"incremental\" or \"differential\"" },
	{ { "backup_schema" }, { "[\"log\"]" }, -EINVAL,
	  "$.backup_schema: \"log\" needs a file set of kind \"log\"" },
};

static void refuses_contradictory_schemas(void **state)
{
	run_cases(schema_cases, sizeof(schema_cases) / sizeof(schema_cases[0]));
}

static const struct edit_case component_cases[] = {
	{ { "components" }, { NULL }, -EINVAL, "$.components: missing required member" },
	{ { "components/0" }, { "[]" }, -EINVAL, "$.components[0]: expected object, got array" },
	{ { "components/0/extra" }, { "1" }, -EINVAL, "$.components[0]: unknown member \"extra\"" },
	{ { "components/0/type" }, { "\"table\"" }, -EINVAL,
	  "$.components[0].type: unknown value \"table\" (one of: database, file_group)" },
	{ { "components/0/type" }, { NULL }, -EINVAL, "$.components[0].type: missing required member" },
	{ { "components/0/name" }, { "\"a/b\"" }, -EINVAL,
	  "$.components[0].name: must not contain '/', got \"a/b\"" },
	{ { "components/0/name" }, { "\"\"" }, -EINVAL, "$.components[0].name: must not be empty" },
	{ { "components/1/logical_path" }, { "\"/cfg\"" }, -EINVAL,
	  "$.components[1].logical_path: must be names joined by single '/', without a leading or trailing '/', got \"/cfg\"" },
	{ { "components/1/logical_path" }, { "\"a//b\"" }, -EINVAL,
	  "$.components[1].logical_path: must be names joined by single '/', without a leading or trailing '/', got \"a//b\"" },
	{ { "components/1/name", "components/1/logical_path", "components/1/file_sets" },
	  { "\"db\"", NULL, NULL }, -EINVAL,
	  "$.components[1]: duplicate of $.components[0] (logical path \"\", name \"db\")" },
	{ { "components/0/selectable" }, { "1" }, -EINVAL,
	  "$.components[0].selectable: expected boolean, got integer" },
	{ { "components/0/caption" }, { "\"tab\\there\"" }, -EINVAL,
	  "$.components[0].caption: has control character 0x09 at byte 3" },
};

static void refuses_components(void **state)
{
	run_cases(component_cases, sizeof(component_cases) / sizeof(component_cases[0]));
}

#define FS0 "components/0/file_sets/0/"
#define FS0_MSG "$.components[0].file_sets[0]."

static const struct edit_case file_set_cases[] = {
	{ { FS0 "path" }, { "\"var/db\"" }, -EINVAL,
	  FS0_MSG "path: must be an absolute path, got \"var/db\"" },
	{ { FS0 "path" }, { "\"/var/../etc\"" }, -EINVAL,
	  FS0_MSG "path: must not have a '.' or '..' segment, got \"/var/../etc\"" },
	{ { FS0 "path" }, { "\"/var/./db\"" }, -EINVAL,
	  FS0_MSG "path: must not have a '.' or '..' segment, got \"/var/./db\"" },
	{ { FS0 "path" }, { "\"/var/db/\"" }, -EINVAL,
	  FS0_MSG "path: must not have an empty segment ('//' or a trailing '/'), got \"/var/db/\"" },
	{ { FS0 "path" }, { "\"/var//db\"" }, -EINVAL,
	  FS0_MSG "path: must not have an empty segment ('//' or a trailing '/'), got \"/var//db\"" },
	{ { FS0 "path" }, { NULL }, -EINVAL, FS0_MSG "path: missing required member" },
	{ { FS0 "file_spec" }, { "\"db/*.dat\"" }, -EINVAL,
	  FS0_MSG "file_spec: must not contain '/', got \"db/*.dat\"" },
	{ { FS0 "file_spec" }, { "\"\"" }, -EINVAL, FS0_MSG "file_spec: must not be empty" },
	{ { FS0 "file_spec" }, { "\"..\"" }, -EINVAL, FS0_MSG "file_spec: must not be '.' or '..'" },
	{ { FS0 "kind" }, { "\"files\"" }, -EINVAL,
	  FS0_MSG "kind: \"files\" file sets belong to file_group components, this one is a database" },
	{ { "components/1/file_sets/0/kind" }, { "\"log\"" }, -EINVAL,
	  "$.components[1].file_sets[0].kind: \"log\" file sets belong to database components, this one is a file_group" },
	{ { FS0 "kind" }, { "\"logs\"" }, -EINVAL,
	  FS0_MSG "kind: unknown value \"logs\" (one of: files, database, log)" },
	{ { FS0 "alternate_path" }, { "\"rel\"" }, -EINVAL,
	  FS0_MSG "alternate_path: must be an absolute path, got \"rel\"" },
	{ { FS0 "recursive" }, { "\"yes\"" }, -EINVAL,
	  FS0_MSG "recursive: expected boolean, got string" },
	{ { FS0 "backup_required" }, { "[\"full\",\"weekly\"]" }, -EINVAL,
	  FS0_MSG "backup_required[1]: unknown value \"weekly\" (one of: full, differential, incremental, log)" },
	{ { FS0 "snapshot_required" }, { "[\"log\",\"log\"]" }, -EINVAL,
	  FS0_MSG "snapshot_required[1]: \"log\" given twice" },
	{ { FS0 "mask" }, { "3855" }, -EINVAL,
	  "$.components[0].file_sets[0]: unknown member \"mask\"" },
};

static void refuses_file_sets(void **state)
{
	run_cases(file_set_cases, sizeof(file_set_cases) / sizeof(file_set_cases[0]));
}

static const struct edit_case dependency_cases[] = {
	{ { "components/0/dependencies" }, { "[{\"name\":\"nope\"}]" }, -EINVAL,
	  "$.components[0].dependencies[0]: this writer has no component with logical path \"\" and name \"nope\"" },
	{ { "components/0/dependencies" },
	  { "[{\"writer_class_id\":\"" CLS "\",\"logical_path\":\"cfg\",\"name\":\"file\"}]" }, -EINVAL,
	  "$.components[0].dependencies[0]: this writer has no component with logical path \"cfg\" and name \"file\"" },
	{ { "components/0/dependencies" }, { "[{\"name\":\"db\"}]" }, -EINVAL,
	  "$.components[0].dependencies[0]: a component must not depend on itself" },
	{ { "components/0/dependencies", "components/1/dependencies" },
	  { "[{\"logical_path\":\"cfg\",\"name\":\"files\"}]", "[{\"name\":\"db\"}]" }, -EINVAL,
	  "$.components[1].dependencies[0]: dependency cycle back to $.components[0]" },
	{ { "components/0/dependencies" }, { "[{\"writer_class_id\":\"x\",\"name\":\"db\"}]" }, -EINVAL,
	  "$.components[0].dependencies[0].writer_class_id: not a UUID (8-4-4-4-12 hexadecimal digits): \"x\"" },
	{ { "components/0/dependencies" }, { "[{\"logical_path\":\"cfg\"}]" }, -EINVAL,
	  "$.components[0].dependencies[0].name: missing required member" },
};

static void refuses_dependencies(void **state)
{
	run_cases(dependency_cases, sizeof(dependency_cases) / sizeof(dependency_cases[0]));
}

/* Dependencies on another writer's components are not ours to check; a
 * chain that is no cycle is fine. */
static void accepts_foreign_and_chained_dependencies(void **state)
{
	json_t *root = json_loads(base_doc, 0, NULL);
	struct vss_wmd_dependency d;
	struct vss_error err;
	struct vss_wmd *wmd;
	char *text;

	edit(root, "components/0/dependencies",
	     "[{\"writer_class_id\":\"99999999-2222-3333-4444-555555555555\",\"name\":\"elsewhere\"},"
	     "{\"logical_path\":\"cfg\",\"name\":\"files\"}]");
	text = json_dumps(root, JSON_COMPACT);
	assert_int_equal(vss_wmd_parse(text, strlen(text), 0, &wmd, &err), 0);
	assert_int_equal(vss_wmd_dependency_count(wmd, 0), 2);
	assert_int_equal(vss_wmd_dependency(wmd, 0, 0, &d), 0);
	assert_string_equal(d.writer_class_id, "99999999-2222-3333-4444-555555555555");
	assert_string_equal(d.logical_path, "");
	assert_string_equal(d.name, "elsewhere");
	assert_int_equal(vss_wmd_dependency(wmd, 0, 1, &d), 0);
	assert_null(d.writer_class_id);
	assert_int_equal(vss_wmd_dependency(wmd, 0, 2, &d), -ERANGE);
	vss_wmd_free(wmd);
	free(text);
	json_decref(root);
}

static void expect_raw(const char *text, size_t len, size_t max, int code, const char *msg)
{
	struct vss_wmd *wmd = (void *)1;
	struct vss_error err;

	assert_int_equal(vss_wmd_parse(text, len, max, &wmd, &err), code);
	assert_string_equal(err.msg, msg);
	assert_null(wmd);
}

static void refuses_malformed_json(void **state)
{
	expect_raw("", 0, 0, -EBADMSG,
		   "$: malformed JSON at line 1, column 0: '[' or '{' expected near end of file");
	expect_raw("{\"format\":", 10, 0, -EBADMSG,
		   "$: malformed JSON at line 1, column 10: unexpected token near end of file");
	expect_raw("{}x", 3, 0, -EBADMSG,
		   "$: malformed JSON at line 1, column 3: end of file expected near 'x'");
	expect_raw("{\"a\":1,\"a\":2}", 13, 0, -EBADMSG,
		   "$: malformed JSON at line 1, column 10: duplicate object key near '\"a\"'");
	expect_raw("{\"a\":\"\\u0000\"}", 14, 0, -EBADMSG,
		   "$: malformed JSON at line 1, column 13: \\u0000 is not allowed without JSON_ALLOW_NUL near '\"\\u0000\"'");
	expect_raw("{\"a\":\"\xff\"}", 9, 0, -EBADMSG,
		   "$: malformed JSON at line 1, column 6: unable to decode byte 0xff near '\"'");
	/* A NUL byte inside the buffer is not the end of the document. */
	expect_raw("{}\0", 3, 0, -EBADMSG, "$: malformed JSON: NUL byte at offset 2");
	expect_raw("{\"a\0\":1}", 8, 0, -EBADMSG, "$: malformed JSON: NUL byte at offset 3");
	expect_raw("[]", 2, 0, -EINVAL, "$: expected object, got array");
	expect_raw("{}", 2, 0, -EINVAL, "$.format: missing required member");
	expect_raw("{\"format\":\"vss-writer-metadata\"}", 32, 0, -EINVAL,
		   "$.version: missing required member");
}

static void refuses_oversized(void **state)
{
	size_t len = strlen(base_doc), big = VSS_DOC_SIZE_DEFAULT;
	char msg[128], *buf;
	struct vss_wmd *wmd;
	struct vss_error err;

	snprintf(msg, sizeof(msg), "$: document is %zu bytes, over the limit of 64", len);
	expect_raw(base_doc, len, 64, -EFBIG, msg);
	assert_int_equal(vss_wmd_parse(base_doc, len, len, &wmd, &err), 0);
	vss_wmd_free(wmd);

	/* Exactly 1 MiB parses (trailing white space), one byte more does not. */
	buf = malloc(big + 1);
	assert_non_null(buf);
	memcpy(buf, base_doc, len);
	memset(buf + len, ' ', big + 1 - len);
	assert_int_equal(vss_wmd_parse(buf, big, 0, &wmd, &err), 0);
	vss_wmd_free(wmd);
	expect_raw(buf, big + 1, 0, -EFBIG,
		   "$: document is 1048577 bytes, over the limit of 1048576");
	free(buf);
}

/* Limits are byte counts: at the limit accepted, one past refused. */
static void string_limits(void **state)
{
	struct { const char *path; size_t max; const char *prefix, *msg; } t[] = {
		{ "components/0/caption", 1024, "", "$.components[0].caption: is 1025 bytes, over the limit of 1024" },
		{ "writer_name", 1024, "", "$.writer_name: is 1025 bytes, over the limit of 1024" },
		{ FS0 "path", 4095, "/", FS0_MSG "path: is 4096 bytes, over the limit of 4095" },
		{ FS0 "file_spec", 255, "", FS0_MSG "file_spec: is 256 bytes, over the limit of 255" },
	};
	for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
		for (size_t extra = 0; extra < 2; extra++) {
			size_t n = t[k].max + extra, p = strlen(t[k].prefix);
			char *v = malloc(n + 3);
			json_t *root = json_loads(base_doc, 0, NULL);
			struct vss_wmd *wmd;
			struct vss_error err;
			char *text;
			v[0] = '"';
			memcpy(v + 1, t[k].prefix, p);
			memset(v + 1 + p, 'x', n - p);
			v[n + 1] = '"';
			v[n + 2] = '\0';
			edit(root, t[k].path, v);
			text = json_dumps(root, JSON_COMPACT);
			int r = vss_wmd_parse(text, strlen(text), 0, &wmd, &err);
			if (!extra) {
				assert_int_equal(r, 0);
				vss_wmd_free(wmd);
			} else {
				assert_int_equal(r, -EINVAL);
				assert_string_equal(err.msg, t[k].msg);
			}
			free(text);
			free(v);
			json_decref(root);
		}
	}
}

static void upper_case_uuids_are_normalized(void **state)
{
	json_t *root = json_loads(base_doc, 0, NULL);
	struct vss_wmd_identity id;
	struct vss_error err;
	struct vss_wmd *wmd;
	char *text;

	edit(root, "writer_class_id", "\"ABCDEF01-2345-6789-ABCD-EF0123456789\"");
	text = json_dumps(root, JSON_COMPACT);
	assert_int_equal(vss_wmd_parse(text, strlen(text), 0, &wmd, &err), 0);
	vss_wmd_identity(wmd, &id);
	assert_string_equal(id.class_id, "abcdef01-2345-6789-abcd-ef0123456789");
	assert_string_equal(id.instance_id, INST);
	assert_string_equal(id.instance_name, "");
	vss_wmd_free(wmd);
	free(text);
	json_decref(root);
}

/* Serialize, parse, serialize again: the two texts are the same. */
static char *round_trip(const struct vss_wmd *wmd, struct vss_wmd **back)
{
	struct vss_error err;
	char *a, *b;
	size_t la, lb;

	assert_int_equal(vss_wmd_serialize(wmd, &a, &la, &err), 0);
	assert_int_equal(strlen(a), la);
	assert_int_equal(vss_wmd_parse(a, la, 0, back, &err), 0);
	assert_int_equal(vss_wmd_serialize(*back, &b, &lb, &err), 0);
	assert_string_equal(a, b);
	free(b);
	return a;
}

static struct vss_wmd *build_full(void)
{
	struct vss_error err;
	struct vss_wmd *wmd;

	assert_int_equal(vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = "Mail store", .class_id = CLS, .instance_id = INST,
		.instance_name = "primary", .usage = VSS_UT_USER_DATA,
		.source = VSS_ST_NONTRANSACTED_DB }, &wmd, &err), 0);
	assert_int_equal(vss_wmd_set_backup_schema(wmd, VSS_BS_INCREMENTAL |
		VSS_BS_DIFFERENTIAL | VSS_BS_EXCLUSIVE_INCREMENTAL_DIFFERENTIAL |
		VSS_BS_LOG | VSS_BS_COPY | VSS_BS_TIMESTAMPED, &err), 0);
	assert_int_equal(vss_wmd_set_restore_method(wmd, &(struct vss_wmd_restore_method){
		.method = VSS_RME_CUSTOM, .user_procedure = "1. stop mail\n2. copy\n",
		.writer_restore = VSS_WRE_ALWAYS, .reboot_required = true }, &err), 0);
	assert_int_equal(vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_DATABASE, .logical_path = "stores/a", .name = "index",
		.caption = "Index ✉", .selectable = true }, &err), 0);
	assert_int_equal(vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_FILE_GROUP, .name = "spool",
		.selectable_for_restore = true }, &err), 0);
	assert_int_equal(vss_wmd_add_file_set(wmd, "stores/a", "index", &(struct vss_wmd_file_set){
		.kind = VSS_FSK_DATABASE, .path = "/srv/mail/index", .file_spec = "*.idx",
		.recursive = true, .alternate_path = "/srv/mail/alt",
		.backup_type_mask = VSS_FSBT_FULL_BACKUP_REQUIRED |
				    VSS_FSBT_INCREMENTAL_SNAPSHOT_REQUIRED }, &err), 0);
	assert_int_equal(vss_wmd_add_file_set(wmd, "stores/a", "index", &(struct vss_wmd_file_set){
		.kind = VSS_FSK_LOG, .path = "/srv/mail/journal", .file_spec = "j?",
		.backup_type_mask = 0 }, &err), 0);
	assert_int_equal(vss_wmd_add_file_set(wmd, "", "spool", &(struct vss_wmd_file_set){
		.kind = VSS_FSK_FILES, .path = "/", .file_spec = "spool*",
		.backup_type_mask = VSS_FSBT_DEFAULT }, &err), 0);
	assert_int_equal(vss_wmd_add_dependency(wmd, "stores/a", "index", &(struct vss_wmd_dependency){
		.name = "spool" }, &err), 0);
	assert_int_equal(vss_wmd_add_dependency(wmd, NULL, "spool", &(struct vss_wmd_dependency){
		.writer_class_id = "01234567-89AB-CDEF-0123-456789ABCDEF",
		.logical_path = "x/y", .name = "z" }, &err), 0);
	assert_int_equal(vss_wmd_add_exclude_files(wmd, &(struct vss_wmd_file_spec){
		.path = "/srv/mail", .file_spec = "*.tmp", .recursive = true }, &err), 0);
	assert_int_equal(vss_wmd_add_alternate_location_mapping(wmd, &(struct vss_wmd_file_spec){
		.path = "/srv/mail", .file_spec = "*", .destination = "/srv/restore" }, &err), 0);
	assert_int_equal(vss_wmd_validate(wmd, &err), 0);
	return wmd;
}

static void builder_round_trip(void **state)
{
	struct vss_wmd *wmd = build_full(), *back;
	struct vss_wmd_identity id;
	struct vss_wmd_restore_method rm;
	struct vss_wmd_component_info ci;
	struct vss_wmd_file_set fs;
	struct vss_wmd_dependency d;
	struct vss_wmd_file_spec sp;
	char *text = round_trip(wmd, &back);

	vss_wmd_identity(back, &id);
	assert_string_equal(id.writer_name, "Mail store");
	assert_string_equal(id.class_id, CLS);
	assert_string_equal(id.instance_id, INST);
	assert_string_equal(id.instance_name, "primary");
	assert_int_equal(id.usage, VSS_UT_USER_DATA);
	assert_int_equal(id.source, VSS_ST_NONTRANSACTED_DB);
	assert_int_equal(vss_wmd_backup_schema(back), 0x3F);
	vss_wmd_restore_method(back, &rm);
	assert_int_equal(rm.method, VSS_RME_CUSTOM);
	assert_string_equal(rm.user_procedure, "1. stop mail\n2. copy\n");
	assert_null(rm.service);
	assert_int_equal(rm.writer_restore, VSS_WRE_ALWAYS);
	assert_true(rm.reboot_required);

	assert_int_equal(vss_wmd_component_count(back), 2);
	assert_int_equal(vss_wmd_component(back, 0, &ci), 0);
	assert_int_equal(ci.type, VSS_CT_DATABASE);
	assert_string_equal(ci.logical_path, "stores/a");
	assert_string_equal(ci.name, "index");
	assert_string_equal(ci.caption, "Index ✉");
	assert_true(ci.selectable);
	assert_false(ci.selectable_for_restore);
	assert_int_equal(vss_wmd_component(back, 1, &ci), 0);
	assert_string_equal(ci.logical_path, "");
	assert_false(ci.selectable);
	assert_true(ci.selectable_for_restore);
	assert_int_equal(vss_wmd_component(back, 2, &ci), -ERANGE);
	assert_int_equal(vss_wmd_find_component(back, NULL, "spool"), 1);
	assert_int_equal(vss_wmd_find_component(back, "stores/a", "index"), 0);
	assert_int_equal(vss_wmd_find_component(back, "stores", "index"), -ENOENT);

	assert_int_equal(vss_wmd_file_set_count(back, 0), 2);
	assert_int_equal(vss_wmd_file_set(back, 0, 0, &fs), 0);
	assert_int_equal(fs.kind, VSS_FSK_DATABASE);
	assert_string_equal(fs.path, "/srv/mail/index");
	assert_string_equal(fs.file_spec, "*.idx");
	assert_true(fs.recursive);
	assert_string_equal(fs.alternate_path, "/srv/mail/alt");
	assert_int_equal(fs.backup_type_mask, 0x401);
	assert_int_equal(vss_wmd_file_set(back, 0, 1, &fs), 0);
	assert_int_equal(fs.kind, VSS_FSK_LOG);
	assert_int_equal(fs.backup_type_mask, 0);
	assert_null(fs.alternate_path);
	assert_int_equal(vss_wmd_file_set(back, 1, 0, &fs), 0);
	assert_string_equal(fs.path, "/");
	assert_int_equal(fs.backup_type_mask, 0xF0F);
	assert_int_equal(vss_wmd_file_set(back, 1, 1, &fs), -ERANGE);

	assert_int_equal(vss_wmd_dependency(back, 0, 0, &d), 0);
	assert_null(d.writer_class_id);
	assert_string_equal(d.name, "spool");
	assert_int_equal(vss_wmd_dependency(back, 1, 0, &d), 0);
	assert_string_equal(d.writer_class_id, "01234567-89ab-cdef-0123-456789abcdef");
	assert_string_equal(d.logical_path, "x/y");

	assert_int_equal(vss_wmd_exclude_count(back), 1);
	assert_int_equal(vss_wmd_exclude(back, 0, &sp), 0);
	assert_string_equal(sp.file_spec, "*.tmp");
	assert_true(sp.recursive);
	assert_null(sp.destination);
	assert_int_equal(vss_wmd_alternate_location_count(back), 1);
	assert_int_equal(vss_wmd_alternate_location(back, 0, &sp), 0);
	assert_string_equal(sp.destination, "/srv/restore");
	assert_int_equal(vss_wmd_alternate_location(back, 1, &sp), -ERANGE);

	/* The mask in its JSON form. */
	assert_non_null(strstr(text, "\"backup_required\": [\n"
				     "            \"full\"\n"
				     "          ],\n"
				     "          \"snapshot_required\": [\n"
				     "            \"incremental\"\n"
				     "          ]"));
	free(text);
	vss_wmd_free(back);
	vss_wmd_free(wmd);
}

static void builder_refusals(void **state)
{
	struct vss_wmd_identity id = { .writer_name = "w", .class_id = CLS,
		.instance_id = INST, .usage = VSS_UT_OTHER, .source = VSS_ST_OTHER };
	struct vss_error err;
	struct vss_wmd *wmd = (void *)1;
	char *json = (void *)1;

	id.writer_name = NULL;
	assert_int_equal(vss_wmd_new(&id, &wmd, &err), -EINVAL);
	assert_string_equal(err.msg, "$.writer_name: missing required member");
	assert_null(wmd);
	id.writer_name = "w";
	id.usage = 0;
	assert_int_equal(vss_wmd_new(&id, &wmd, &err), -EINVAL);
	assert_string_equal(err.msg, "$.usage_type: invalid value 0 (one of: user_data, "
				     "bootable_system_state, system_service, other)");
	id.usage = VSS_UT_OTHER;
	id.instance_id = "not-a-uuid";
	assert_int_equal(vss_wmd_new(&id, &wmd, &err), -EINVAL);
	assert_string_equal(err.msg, "$.writer_instance_id: not a UUID (8-4-4-4-12 "
				     "hexadecimal digits): \"not-a-uuid\"");
	id.instance_id = INST;
	assert_int_equal(vss_wmd_new(&id, &wmd, &err), 0);

	assert_int_equal(vss_wmd_set_backup_schema(wmd, 0x800, &err), -EINVAL);
	assert_string_equal(err.msg, "$.backup_schema: unknown bits 0x800");
	assert_int_equal(vss_wmd_set_backup_schema(wmd, VSS_BS_TIMESTAMPED, &err), -EINVAL);
	assert_string_equal(err.msg, "$.backup_schema: \"timestamped\" needs \"incremental\" or \"differential\"");
	assert_int_equal(vss_wmd_backup_schema(wmd), 0);
	assert_int_equal(vss_wmd_set_restore_method(wmd, &(struct vss_wmd_restore_method){
		.method = VSS_RME_RESTORE_STOP_START, .writer_restore = VSS_WRE_NEVER }, &err), -EINVAL);
	assert_string_equal(err.msg, "$.restore_method.service: required with method \"restore_stop_start\"");
	assert_int_equal(vss_wmd_set_restore_method(wmd, &(struct vss_wmd_restore_method){
		.method = VSS_RME_RESTORE_AT_REBOOT }, &err), -EINVAL);
	assert_string_equal(err.msg, "$.restore_method.writer_restore: invalid value 0 "
				     "(one of: never, if_replace_fails, always)");

	struct vss_wmd_component_info db = { .type = VSS_CT_DATABASE, .name = "db" };
	assert_int_equal(vss_wmd_add_component(wmd, &db, &err), 0);
	assert_int_equal(vss_wmd_add_component(wmd, &db, &err), -EEXIST);
	assert_string_equal(err.msg, "$.components[1]: duplicate of $.components[0] (logical path \"\", name \"db\")");
	assert_int_equal(vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_FILE_GROUP, .name = "\xff" }, &err), -EINVAL);
	assert_string_equal(err.msg, "$.components[1].name: is not valid UTF-8");
	assert_int_equal(vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_FILE_GROUP, .name = "\xc0\xaf" }, &err), -EINVAL);
	assert_string_equal(err.msg, "$.components[1].name: is not valid UTF-8");
	assert_int_equal(vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.name = "x" }, &err), -EINVAL);
	assert_string_equal(err.msg, "$.components[1].type: invalid value 0 (one of: database, file_group)");
	assert_int_equal(vss_wmd_component_count(wmd), 1);

	struct vss_wmd_file_set fs = { .kind = VSS_FSK_DATABASE, .path = "/d",
		.file_spec = "*", .backup_type_mask = 0x10000 };
	assert_int_equal(vss_wmd_add_file_set(wmd, "x", "y", &fs, &err), -ENOENT);
	assert_string_equal(err.msg, "$.components: no component with logical path \"x\" and name \"y\" to add a file set to");
	assert_int_equal(vss_wmd_add_file_set(wmd, NULL, "db", &fs, &err), -EINVAL);
	assert_string_equal(err.msg, "$.components[0].file_sets[0]: backup type mask has unknown bits 0x10000");
	fs.backup_type_mask = VSS_FSBT_DEFAULT;
	fs.file_spec = NULL;
	assert_int_equal(vss_wmd_add_file_set(wmd, NULL, "db", &fs, &err), -EINVAL);
	assert_string_equal(err.msg, "$.components[0].file_sets[0].file_spec: missing required member");
	assert_int_equal(vss_wmd_file_set_count(wmd, 0), 0);

	assert_int_equal(vss_wmd_add_exclude_files(wmd, &(struct vss_wmd_file_spec){
		.path = "/a", .file_spec = "*", .destination = "/b" }, &err), -EINVAL);
	assert_string_equal(err.msg, "$.exclude_files[0].destination: only allowed in alternate location mappings");

	/* Checks that span members wait for validate / serialize. */
	assert_int_equal(vss_wmd_add_dependency(wmd, NULL, "db", &(struct vss_wmd_dependency){
		.logical_path = "later", .name = "added" }, &err), 0);
	assert_int_equal(vss_wmd_serialize(wmd, &json, NULL, &err), -EINVAL);
	assert_null(json);
	assert_string_equal(err.msg, "$.components[0].dependencies[0]: this writer has no component with logical path \"later\" and name \"added\"");
	assert_int_equal(vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_FILE_GROUP, .logical_path = "later", .name = "added" }, &err), 0);
	assert_int_equal(vss_wmd_validate(wmd, &err), 0);
	assert_string_equal(err.msg, "");
	assert_int_equal(vss_wmd_set_backup_schema(wmd, VSS_BS_LOG, &err), 0);
	assert_int_equal(vss_wmd_validate(wmd, &err), -EINVAL);
	assert_string_equal(err.msg, "$.backup_schema: \"log\" needs a file set of kind \"log\"");
	fs.kind = VSS_FSK_LOG;
	fs.file_spec = "*.log";
	assert_int_equal(vss_wmd_add_file_set(wmd, NULL, "db", &fs, &err), 0);
	assert_int_equal(vss_wmd_serialize(wmd, &json, NULL, &err), 0);
	free(json);
	vss_wmd_free(wmd);
}

/* The example in doc/writer-metadata.md parses to what its text says. */
static void documented_example(void **state)
{
	char *text = doc_example("writer-metadata.md");
	struct vss_wmd *wmd, *back;
	struct vss_wmd_identity id;
	struct vss_wmd_restore_method rm;
	struct vss_wmd_file_set fs;
	struct vss_wmd_plan p;
	struct vss_error err;

	assert_int_equal(vss_wmd_parse(text, strlen(text), 0, &wmd, &err), 0);
	vss_wmd_identity(wmd, &id);
	assert_string_equal(id.writer_name, "PostgreSQL");
	assert_string_equal(id.class_id, "6f1c2a9e-3b7d-4e5f-9a8b-0c1d2e3f4a5b");
	assert_string_equal(id.instance_name, "cluster 15/main");
	assert_int_equal(id.source, VSS_ST_TRANSACTED_DB);
	vss_wmd_restore_method(wmd, &rm);
	assert_int_equal(rm.method, VSS_RME_STOP_RESTORE_START);
	assert_string_equal(rm.service, "postgresql@15-main.service");
	assert_int_equal(rm.writer_restore, VSS_WRE_IF_REPLACE_FAILS);
	assert_int_equal(vss_wmd_backup_schema(wmd), VSS_BS_DIFFERENTIAL |
			 VSS_BS_INCREMENTAL | VSS_BS_LOG | VSS_BS_TIMESTAMPED |
			 VSS_BS_LAST_MODIFY);
	assert_int_equal(vss_wmd_component_count(wmd), 2);
	assert_int_equal(vss_wmd_exclude_count(wmd), 1);
	assert_int_equal(vss_wmd_file_set(wmd, 0, 0, &fs), 0);
	assert_int_equal(fs.backup_type_mask, 0x703);
	assert_int_equal(vss_wmd_file_set(wmd, 0, 1, &fs), 0);
	assert_int_equal(fs.backup_type_mask, 0x00F);
	assert_string_equal(fs.alternate_path, "/srv/restore/pg_wal");
	assert_int_equal(vss_wmd_file_set(wmd, 1, 0, &fs), 0);
	assert_int_equal(fs.backup_type_mask, 0xF0F);

	/* What the document's text says an incremental and a log backup take. */
	assert_int_equal(vss_wmd_plan(wmd, VSS_BT_INCREMENTAL, 0, 0, &p, &err), 0);
	assert_int_equal(p.selection, VSS_SEL_CHANGED);
	assert_true(p.snapshot_required);
	assert_int_equal(vss_wmd_plan(wmd, VSS_BT_INCREMENTAL, 0, 1, &p, &err), 0);
	assert_int_equal(p.selection, VSS_SEL_ALL);
	assert_false(p.snapshot_required);
	assert_int_equal(vss_wmd_plan(wmd, VSS_BT_INCREMENTAL, 1, 0, &p, &err), 0);
	assert_int_equal(p.selection, VSS_SEL_ALL);
	assert_true(p.snapshot_required);
	assert_int_equal(vss_wmd_plan(wmd, VSS_BT_LOG, 0, 0, &p, &err), 0);
	assert_int_equal(p.selection, VSS_SEL_NONE);
	assert_int_equal(vss_wmd_plan(wmd, VSS_BT_LOG, 0, 1, &p, &err), 0);
	assert_int_equal(p.selection, VSS_SEL_ALL);
	assert_false(p.snapshot_required);
	assert_int_equal(vss_wmd_plan(wmd, VSS_BT_LOG, 1, 0, &p, &err), 0);
	assert_int_equal(p.selection, VSS_SEL_NONE);
	assert_int_equal(vss_wmd_plan(wmd, VSS_BT_LOG, 1, 1, &p, &err), -ERANGE);
	assert_string_equal(err.msg, "$.components[1].file_sets[1]: no such file set");

	free(round_trip(wmd, &back));
	vss_wmd_free(back);
	vss_wmd_free(wmd);
	free(text);
}

/*
 * The selection rules, each row worked out by hand from the rules in
 * writer_doc.h (and VSS_BACKUP_TYPE / VSS_FILE_SPEC_BACKUP_TYPE).
 */
static void backup_type_selection(void **state)
{
#define F VSS_FSK_FILES
#define D VSS_FSK_DATABASE
#define L VSS_FSK_LOG
#define NONE VSS_SEL_NONE
#define CHG VSS_SEL_CHANGED
#define ALL VSS_SEL_ALL
	static const struct {
		uint32_t schema;
		enum vss_file_set_kind kind;
		uint32_t mask;
		enum vss_backup_type type, eff;
		enum vss_selection sel;
		bool snap;
	} t[] = {
		/* A writer without the schema gets a full backup instead. */
		{ 0, F, 0xF0F, VSS_BT_FULL, VSS_BT_FULL, ALL, true },
		{ 0, F, 0xF0F, VSS_BT_INCREMENTAL, VSS_BT_FULL, ALL, true },
		{ 0, F, 0xF0F, VSS_BT_DIFFERENTIAL, VSS_BT_FULL, ALL, true },
		{ 0, D, 0xF0F, VSS_BT_LOG, VSS_BT_FULL, ALL, true },
		{ 0, F, 0xF0F, VSS_BT_COPY, VSS_BT_FULL, ALL, true },
		{ VSS_BS_INCREMENTAL, F, 0x000, VSS_BT_DIFFERENTIAL, VSS_BT_FULL, NONE, false },
		/* Copy reads the full bits. */
		{ VSS_BS_COPY, F, 0x101, VSS_BT_COPY, VSS_BT_COPY, ALL, true },
		{ VSS_BS_COPY, F, 0x001, VSS_BT_COPY, VSS_BT_COPY, ALL, false },
		{ VSS_BS_COPY, F, 0x100, VSS_BT_COPY, VSS_BT_COPY, NONE, false },
		{ VSS_BS_COPY, F, 0xE0E, VSS_BT_COPY, VSS_BT_COPY, NONE, false },
		/* Full without the full backup-required bit: not needed. */
		{ 0, D, 0x10E, VSS_BT_FULL, VSS_BT_FULL, NONE, false },
		/* Incremental and differential: whole if required, else changes. */
		{ VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL, D, 0x501, VSS_BT_INCREMENTAL,
		  VSS_BT_INCREMENTAL, CHG, true },
		{ VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL, D, 0x501, VSS_BT_DIFFERENTIAL,
		  VSS_BT_DIFFERENTIAL, CHG, false },
		{ VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL, D, 0x004, VSS_BT_INCREMENTAL,
		  VSS_BT_INCREMENTAL, ALL, false },
		{ VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL, D, 0x004, VSS_BT_FULL,
		  VSS_BT_FULL, NONE, false },
		{ VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL, F, 0x202, VSS_BT_DIFFERENTIAL,
		  VSS_BT_DIFFERENTIAL, ALL, true },
		{ VSS_BS_INCREMENTAL, F, 0x000, VSS_BT_INCREMENTAL, VSS_BT_INCREMENTAL, CHG, false },
		/* Log backups take log file sets only. */
		{ VSS_BS_LOG, D, 0xF0F, VSS_BT_LOG, VSS_BT_LOG, NONE, false },
		{ VSS_BS_LOG, F, 0xF0F, VSS_BT_LOG, VSS_BT_LOG, NONE, false },
		{ VSS_BS_LOG, L, 0xF0F, VSS_BT_LOG, VSS_BT_LOG, ALL, true },
		{ VSS_BS_LOG, L, 0x801, VSS_BT_LOG, VSS_BT_LOG, CHG, true },
		{ VSS_BS_LOG, L, 0x008, VSS_BT_LOG, VSS_BT_LOG, ALL, false },
	};
	struct vss_error err;
	struct vss_wmd_plan p;

	for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
		memset(&p, 0xA5, sizeof(p));
		assert_int_equal(vss_wmd_plan_values(t[k].schema, t[k].kind, t[k].mask,
						     t[k].type, &p, &err), 0);
		if (p.effective_type != t[k].eff || p.selection != t[k].sel ||
		    p.snapshot_required != t[k].snap)
			print_message("row %zu\n", k);
		assert_int_equal(p.effective_type, t[k].eff);
		assert_int_equal(p.selection, t[k].sel);
		assert_int_equal(p.snapshot_required, t[k].snap);
	}
#undef D
#undef L
#undef NONE
#undef CHG
#undef ALL
	assert_int_equal(vss_wmd_plan_values(0, F, 0, 0, &p, &err), -EINVAL);
	assert_string_equal(err.msg, "invalid backup type 0");
	assert_int_equal(vss_wmd_plan_values(0, 9, 0, VSS_BT_FULL, &p, &err), -EINVAL);
	assert_string_equal(err.msg, "invalid file set kind 9");
	assert_int_equal(vss_wmd_plan_values(0, F, 0x1000, VSS_BT_FULL, &p, &err), -EINVAL);
	assert_string_equal(err.msg, "backup type mask has unknown bits 0x1000");
#undef F
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base_document_parses),
		cmocka_unit_test(refuses_root_members),
		cmocka_unit_test(refuses_restore_method_and_file_specs),
		cmocka_unit_test(refuses_contradictory_schemas),
		cmocka_unit_test(refuses_components),
		cmocka_unit_test(refuses_file_sets),
		cmocka_unit_test(refuses_dependencies),
		cmocka_unit_test(accepts_foreign_and_chained_dependencies),
		cmocka_unit_test(refuses_malformed_json),
		cmocka_unit_test(refuses_oversized),
		cmocka_unit_test(string_limits),
		cmocka_unit_test(upper_case_uuids_are_normalized),
		cmocka_unit_test(builder_round_trip),
		cmocka_unit_test(builder_refusals),
		cmocka_unit_test(documented_example),
		cmocka_unit_test(backup_type_selection),
	};
	if (argc > 1)
		doc_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
