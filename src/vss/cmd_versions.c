/*
 * vss/cmd_versions.c - vss versions and vss restore-version: a file's
 * earlier versions across the shadows of its volume, and one copied back
 * (vssd's shadow.versions and shadow.restore_version, which look and copy
 * as the caller; doc/protocol.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_versions(int argc, char **argv)
{
	static const char *const hdr[] = { "SHADOW", "CREATED", "TYPE", "SIZE", "MODIFIED" };
	static const struct cli_opt opts[] = { { "read", 0, true }, { NULL, 0, false } };
	struct cli_args a;
	json_t *res, *arr, *v;
	char *path;
	size_t i;
	int rc;

	if ((rc = cli_parse(&a, "versions", argc, argv, opts, 1, 1)))
		return rc;
	if (cli_has(&a, "read") && strcmp(cli_get(&a, "read"), "auto") != 0 &&
	    strcmp(cli_get(&a, "read"), "mount") != 0 && strcmp(cli_get(&a, "read"), "direct") != 0)
		return cli_error(EXIT_USAGE, "versions: --read is auto, mount or direct");
	path = cli_abs_path(a.pos[0]);
	rc = cli_call(&a, "shadow.versions", json_pack("{s:s, s:s?}", "path", path, "read",
						       cli_get(&a, "read")), &res);
	free(path);
	if (rc)
		return rc;
	/* Shadows that could not be read: said, never silently left out. */
	json_array_foreach(json_object_get(res, "unreadable"), i, v)
		fprintf(stderr, "vss: warning: shadow copy %s cannot be read: %s\n",
			cli_line(json_string_value(json_object_get(v, "shadow"))),
			cli_line(json_string_value(json_object_get(v, "error"))));
	arr = json_object_get(res, "versions");
	if (a.json) {
		cli_print_json(res);
	} else if (json_array_size(arr) == 0) {
		puts(CLI_NOTHING_FOUND);
	} else {
		struct cli_table *t = cli_table_new(5, hdr);

		json_array_foreach(arr, i, v) {
			char size[32];
			const char *row[5] = {
				json_string_value(json_object_get(v, "shadow")),
				json_string_value(json_object_get(v, "created")),
				json_string_value(json_object_get(v, "type")),
				cli_bytes((uint64_t)json_integer_value(json_object_get(v, "size")),
					  size),
				json_string_value(json_object_get(v, "mtime")),
			};

			cli_table_add(t, row);
		}
		cli_table_print(t);
	}
	json_decref(res);
	return 0;
}

int cmd_restore_version(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "shadow", 0, true }, { "to", 0, true }, { "force", 0, false },
		{ "read", 0, true }, { NULL, 0, false },
	};
	struct cli_args a;
	json_t *res;
	char *path, *to = NULL, size[32];
	int rc;

	if ((rc = cli_parse(&a, "restore-version", argc, argv, opts, 1, 1)))
		return rc;
	if (!cli_has(&a, "shadow"))
		return cli_error(EXIT_USAGE, "restore-version: --shadow ID is needed");
	if (cli_has(&a, "read") && strcmp(cli_get(&a, "read"), "auto") != 0 &&
	    strcmp(cli_get(&a, "read"), "mount") != 0 && strcmp(cli_get(&a, "read"), "direct") != 0)
		return cli_error(EXIT_USAGE, "restore-version: --read is auto, mount or direct");
	path = cli_abs_path(a.pos[0]);
	if (cli_has(&a, "to"))
		to = cli_abs_path(cli_get(&a, "to"));
	rc = cli_call(&a, "shadow.restore_version",
		      json_pack("{s:s, s:s, s:s?, s:b, s:s?}", "path", path, "shadow",
				cli_get(&a, "shadow"), "to", to, "force", cli_has(&a, "force"),
				"read", cli_get(&a, "read")),
		      &res);
	free(path);
	free(to);
	if (rc)
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("Restored %s from shadow copy %s to %s (%lld entries, %s)\n",
		       cli_line(json_string_value(json_object_get(res, "path"))),
		       cli_get(&a, "shadow"),
		       cli_line(json_string_value(json_object_get(res, "to"))),
		       (long long)json_integer_value(json_object_get(res, "files")),
		       cli_bytes((uint64_t)json_integer_value(json_object_get(res, "bytes")), size));
	json_decref(res);
	return 0;
}
