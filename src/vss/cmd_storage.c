/*
 * vss/cmd_storage.c - list|add|resize|delete shadowstorage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <vss/client.h>

#include "cli.h"

/* --maxsize: a size, UNBOUNDED, or N% (1..100), as the wire wants it. */
static int maxsize_arg(const struct cli_args *a, json_t *args)
{
	const char *s = cli_get(a, "maxsize");
	uint64_t v;
	char *end;
	long pct;

	if (!s)
		return 0;
	if (strcasecmp(s, "UNBOUNDED") == 0) {
		json_object_set_new(args, "maxsize", json_string("UNBOUNDED"));
		return 0;
	}
	if (strchr(s, '%')) {
		pct = strtol(s, &end, 10);
		if (end != s && strcmp(end, "%") == 0 && pct >= 1 && pct <= 100 &&
		    s[0] >= '0' && s[0] <= '9') {
			json_object_set_new(args, "maxsize", json_string(s));
			return 0;
		}
	} else if (vss_parse_size(s, &v) == 0 && v > 0) {
		json_object_set_new(args, "maxsize", json_integer((json_int_t)v));
		return 0;
	}
	return cli_error(EXIT_USAGE, "%s: --maxsize: \"%s\" is not a size, N%% (1 to 100) "
			 "or UNBOUNDED", a->cmd, s);
}

static void print_max(json_t *st, char *buf)
{
	json_t *m = json_object_get(st, "max");

	if (json_is_null(m) || !m)
		strcpy(buf, "UNBOUNDED");
	else
		cli_bytes((uint64_t)json_integer_value(m), buf);
}

int cmd_storage_list(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { "for", 0, true }, { NULL, 0, false } };
	static const char *const hdr[] = { "VOLUME", "LOCATION", "USED", "ALLOCATED", "MAX" };
	struct cli_args a;
	json_t *args, *res, *st;
	size_t i;
	int rc;

	if ((rc = cli_parse(&a, "list shadowstorage", argc, argv, opts, 0, 0)))
		return rc;
	args = json_object();
	cli_set_for(&a, args, "for");
	if ((rc = cli_call(&a, "storage.list", args, &res)))
		return rc;
	if (a.json) {
		cli_print_json(res);
	} else if (json_array_size(json_object_get(res, "shadowstorage")) == 0) {
		puts(CLI_NOTHING_FOUND);
	} else {
		struct cli_table *t = cli_table_new(5, hdr);

		json_array_foreach(json_object_get(res, "shadowstorage"), i, st) {
			char used[32], alloc[32], max[32];
			const char *row[5];

			cli_bytes((uint64_t)json_integer_value(json_object_get(st, "used")), used);
			cli_bytes((uint64_t)json_integer_value(json_object_get(st, "allocated")),
				  alloc);
			print_max(st, max);
			row[0] = json_string_value(json_object_get(st, "volume"));
			row[1] = json_string_value(json_object_get(st, "location"));
			row[2] = used;
			row[3] = alloc;
			row[4] = max;
			cli_table_add(t, row);
		}
		cli_table_print(t);
	}
	json_decref(res);
	return 0;
}

static int storage_change(int argc, char **argv, const char *cmd, const char *op,
			  const struct cli_opt *opts, bool need_max)
{
	struct cli_args a;
	json_t *args, *res;
	char max[32];
	int rc;

	if ((rc = cli_parse(&a, cmd, argc, argv, opts, 0, 0)))
		return rc;
	if (!cli_has(&a, "for"))
		return cli_error(EXIT_USAGE, "%s: --for VOLUME is needed", cmd);
	if (need_max && !cli_has(&a, "maxsize"))
		return cli_error(EXIT_USAGE, "%s: --maxsize SIZE is needed", cmd);
	args = json_object();
	cli_set_for(&a, args, "for");
	if ((rc = maxsize_arg(&a, args))) {
		json_decref(args);
		return rc;
	}
	if (cli_has(&a, "on")) {
		char *on = cli_abs_path(cli_get(&a, "on"));

		json_object_set_new(args, "on", json_string(on));
		free(on);
	}
	if ((rc = cli_call(&a, op, args, &res)))
		return rc;
	if (a.json) {
		cli_print_json(res);
	} else if (strcmp(op, "storage.delete") == 0) {
		printf("Shadow storage of volume %s deleted\n",
		       json_string_value(json_object_get(res, "volume")));
	} else {
		print_max(res, max);
		printf("Shadow storage of volume %s: %s, max %s\n",
		       json_string_value(json_object_get(res, "volume")),
		       json_string_value(json_object_get(res, "location")), max);
	}
	json_decref(res);
	return 0;
}

int cmd_storage_add(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "for", 0, true }, { "on", 0, true }, { "maxsize", 0, true }, { NULL, 0, false },
	};

	return storage_change(argc, argv, "add shadowstorage", "storage.add", opts, false);
}

int cmd_storage_resize(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "for", 0, true }, { "maxsize", 0, true }, { NULL, 0, false },
	};

	return storage_change(argc, argv, "resize shadowstorage", "storage.resize", opts, true);
}

int cmd_storage_delete(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { "for", 0, true }, { NULL, 0, false } };

	return storage_change(argc, argv, "delete shadowstorage", "storage.delete", opts, false);
}
