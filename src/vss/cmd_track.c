/*
 * vss/cmd_track.c - vss diff, vss revert, vss list bookmarks and vss delete
 * bookmark: the changed blocks since a shadow (or its bookmark, which
 * outlives it), and a volume rolled back to a shadow (vssd's shadow.diff,
 * bookmark.* and volume.revert; doc/protocol.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_diff(int argc, char **argv)
{
	struct cli_args a;
	json_t *res, *ext;
	size_t i;
	int rc;

	if ((rc = cli_parse(&a, "diff", argc, argv, NULL, 1, 2)))
		return rc;
	rc = cli_call(&a, "shadow.diff", json_pack("{s:s, s:s?}", "from", a.pos[0],
						   "to", a.npos > 1 ? a.pos[1] : NULL), &res);
	if (rc)
		return rc;
	if (a.json) {
		cli_print_json(res);
	} else {
		/* One extent a line, in bytes: what a script reads. */
		json_array_foreach(json_object_get(res, "extents"), i, ext)
			printf("%lld %lld\n", (long long)json_integer_value(json_array_get(ext, 0)),
			       (long long)json_integer_value(json_array_get(ext, 1)));
	}
	json_decref(res);
	return 0;
}

int cmd_revert(int argc, char **argv)
{
	struct cli_args a;
	json_t *res;
	long long n;
	int rc;

	if ((rc = cli_parse(&a, "revert", argc, argv, NULL, 1, 1)))
		return rc;
	if ((rc = cli_call(&a, "volume.revert", json_pack("{s:s}", "shadow", a.pos[0]), &res)))
		return rc;
	n = json_integer_value(json_object_get(res, "deleted"));
	if (a.json) {
		cli_print_json(res);
	} else {
		char b[32];

		printf("Volume %s reverted to shadow copy %s (%s written back, %lld newer "
		       "shadow cop%s deleted)\n",
		       cli_line(json_string_value(json_object_get(res, "volume"))),
		       json_string_value(json_object_get(res, "shadow")),
		       cli_bytes((uint64_t)json_integer_value(json_object_get(res, "rewritten")), b),
		       n, n == 1 ? "y" : "ies");
	}
	json_decref(res);
	return 0;
}

int cmd_bookmark_list(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { "for", 0, true }, { NULL, 0, false } };
	static const char *const hdr[] = { "ID", "VOLUME", "CREATED", "STATE", "SHADOW",
					   "MARKED" };
	struct cli_args a;
	json_t *res, *arr, *b;
	json_t *args = json_object();
	size_t i;
	int rc;

	if ((rc = cli_parse(&a, "list bookmarks", argc, argv, opts, 0, 0))) {
		json_decref(args);
		return rc;
	}
	cli_set_for(&a, args, "for");
	if ((rc = cli_call(&a, "bookmark.list", args, &res)))
		return rc;
	arr = json_object_get(res, "bookmarks");
	if (a.json) {
		cli_print_json(res);
	} else if (json_array_size(arr) == 0) {
		puts(CLI_NOTHING_FOUND);
	} else {
		struct cli_table *t = cli_table_new(6, hdr);

		json_array_foreach(arr, i, b) {
			char marked[32];
			const char *row[6] = {
				json_string_value(json_object_get(b, "id")),
				cli_line(json_string_value(json_object_get(b, "volume"))),
				json_string_value(json_object_get(b, "created")),
				json_string_value(json_object_get(b, "state")),
				json_is_true(json_object_get(b, "shadow")) ? "yes" : "deleted",
				cli_bytes((uint64_t)json_integer_value(json_object_get(b,
							"marked_bytes")), marked),
			};

			cli_table_add(t, row);
		}
		cli_table_print(t);
		json_array_foreach(arr, i, b)
			if (json_is_string(json_object_get(b, "why")))
				printf("%s: lost: %s\n", json_string_value(json_object_get(b, "id")),
				       cli_line(json_string_value(json_object_get(b, "why"))));
	}
	json_decref(res);
	return 0;
}

int cmd_bookmark_delete(int argc, char **argv)
{
	struct cli_args a;
	json_t *res;
	int rc;

	if ((rc = cli_parse(&a, "delete bookmark", argc, argv, NULL, 1, 1)))
		return rc;
	if ((rc = cli_call(&a, "bookmark.delete", json_pack("{s:s}", "bookmark", a.pos[0]),
			   &res)))
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("Deleted bookmark %s.\n", json_string_value(json_object_get(res, "deleted")));
	json_decref(res);
	return 0;
}
