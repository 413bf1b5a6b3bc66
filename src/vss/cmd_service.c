/*
 * vss/cmd_service.c - status, list writers, list providers, abort backup.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void print_holds(json_t *res);

int cmd_status(int argc, char **argv)
{
	struct cli_args a;
	json_t *res;
	int rc;

	if ((rc = cli_parse(&a, "status", argc, argv, NULL, 0, 0)) ||
	    (rc = cli_call(&a, "status", NULL, &res)))
		return rc;
	if (a.json) {
		cli_print_json(res);
	} else {
		printf("vssd %s (protocol %lld), pid %lld\n",
		       json_string_value(json_object_get(res, "version")),
		       json_integer_value(json_object_get(res, "protocol")),
		       json_integer_value(json_object_get(res, "pid")));
		printf("state directory: %s\n",
		       cli_line(json_string_value(json_object_get(res, "state_dir"))));
		printf("run directory:   %s\n",
		       cli_line(json_string_value(json_object_get(res, "run_dir"))));
		printf("volumes: %lld\n", json_integer_value(json_object_get(res, "volumes")));
		printf("shadows: %lld\n", json_integer_value(json_object_get(res, "shadows")));
		printf("writers connected: %lld\n",
		       json_integer_value(json_object_get(res, "writers")));
		print_holds(res);
	}
	json_decref(res);
	return 0;
}

/* "backup" and "held_sets" of status: who holds what, since and until when. */
static void print_hold(const char *what, json_t *h)
{
	const char *until = json_string_value(json_object_get(h, "until"));

	printf("%s: uid %lld, pid %lld, since %s", what,
	       json_integer_value(json_object_get(h, "uid")),
	       json_integer_value(json_object_get(h, "pid")),
	       json_string_value(json_object_get(h, "since")));
	if (until)
		printf(", until %s (lease %lld ms)", until,
		       json_integer_value(json_object_get(h, "lease_ms")));
	if (json_is_string(json_object_get(h, "set")))
		printf(", set %s", json_string_value(json_object_get(h, "set")));
	putchar('\n');
}

static void print_holds(json_t *res)
{
	json_t *b = json_object_get(res, "backup"), *h;
	size_t i;

	if (json_is_object(b)) {
		char what[96];

		snprintf(what, sizeof(what), "backup slot: %s, session %lld (%s)",
			 json_string_value(json_object_get(b, "kind")),
			 json_integer_value(json_object_get(b, "session")),
			 json_string_value(json_object_get(b, "state")));
		print_hold(what, b);
	} else if (b) {
		puts("backup slot: free");
	}
	json_array_foreach(json_object_get(res, "held_sets"), i, h)
		print_hold("held set", h);
}

/* vss abort backup [SESSION]: root ends a backup (another requester's too). */
int cmd_abort(int argc, char **argv)
{
	struct cli_args a;
	json_t *args, *res, *st, *b;
	long long id;
	char *end;
	int rc;

	if (argc < 1 || strcmp(argv[0], "backup") != 0)
		return cli_error(EXIT_USAGE, "abort what? (vss abort backup [SESSION])");
	if ((rc = cli_parse(&a, "abort backup", argc - 1, argv + 1, NULL, 0, 1)))
		return rc;
	if (a.npos == 1) {
		id = strtoll(a.pos[0], &end, 10);
		if (*end || id <= 0)
			return cli_error(EXIT_USAGE, "abort backup: SESSION is a number (vss "
					 "status shows it)");
	} else {
		if ((rc = cli_call(&a, "status", NULL, &st)))
			return rc;
		b = json_object_get(st, "backup");
		id = json_is_object(b) ? json_integer_value(json_object_get(b, "session")) : 0;
		json_decref(st);
		if (id <= 0)
			return cli_error(EXIT_FAILED, "no backup is in progress");
	}
	args = json_pack("{s:I}", "session", (json_int_t)id);
	if ((rc = cli_call(&a, "backup.abort", args, &res)))
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("backup session %lld aborted\n", id);
	json_decref(res);
	return 0;
}

int cmd_writers_list(int argc, char **argv)
{
	static const char *const hdr[] = { "NAME", "ID", "INSTANCE", "STATE", "LAST ERROR" };
	struct cli_args a;
	json_t *res, *w;
	size_t i;
	int rc;

	if ((rc = cli_parse(&a, "list writers", argc, argv, NULL, 0, 0)) ||
	    (rc = cli_call(&a, "writers.list", NULL, &res)))
		return rc;
	if (a.json) {
		cli_print_json(res);
	} else if (json_array_size(json_object_get(res, "writers")) == 0) {
		puts(CLI_NOTHING_FOUND);
	} else {
		struct cli_table *t = cli_table_new(5, hdr);

		json_array_foreach(json_object_get(res, "writers"), i, w) {
			char state[64];
			const char *row[5];

			snprintf(state, sizeof(state), "%lld %s",
				 json_integer_value(json_object_get(w, "state")),
				 json_string_value(json_object_get(w, "state_name")));
			row[0] = json_string_value(json_object_get(w, "name"));
			row[1] = json_string_value(json_object_get(w, "id"));
			row[2] = json_string_value(json_object_get(w, "instance"));
			row[3] = state;
			row[4] = json_string_value(json_object_get(w, "last_error"));
			cli_table_add(t, row);
		}
		cli_table_print(t);
	}
	json_decref(res);
	return 0;
}

int cmd_providers_list(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { "for", 0, true }, { NULL, 0, false } };
	static const char *const hdr[] = { "NAME", "ID", "VERSION", "KIND", "PRIORITY",
					   "PATHS" };
	struct cli_args a;
	json_t *args, *res, *p;
	size_t i;
	int rc;

	if ((rc = cli_parse(&a, "list providers", argc, argv, opts, 0, 0)))
		return rc;
	args = json_object();
	if (cli_has(&a, "for")) {
		char *t = cli_target(cli_get(&a, "for"));

		json_object_set_new(args, "for", json_string(t));
		free(t);
	}
	if ((rc = cli_call(&a, "providers.list", args, &res)))
		return rc;
	if (a.json) {
		cli_print_json(res);
	} else {
		struct cli_table *t = cli_table_new(6, hdr);

		json_array_foreach(json_object_get(res, "providers"), i, p) {
			char prio[24], paths[1024] = "";
			const char *row[6];
			json_t *w;
			size_t k, used = 0;

			json_array_foreach(json_object_get(p, "paths"), k, w)
				if (used < sizeof(paths))
					used += (size_t)snprintf(paths + used, sizeof(paths) - used,
								 "%s%s", k ? "," : "",
								 json_string_value(w));

			snprintf(prio, sizeof(prio), "%lld",
				 json_integer_value(json_object_get(p, "priority")));
			row[0] = json_string_value(json_object_get(p, "name"));
			row[1] = json_string_value(json_object_get(p, "id"));
			row[2] = json_string_value(json_object_get(p, "version"));
			row[3] = json_string_value(json_object_get(p, "kind"));
			row[4] = prio;
			row[5] = paths[0] ? paths : "-";
			cli_table_add(t, row);
		}
		cli_table_print(t);
		if (json_object_get(res, "for")) {
			const char *sel = json_string_value(json_object_get(res, "selected"));

			if (sel)
				printf("%s: provider %s\n",
				       cli_line(json_string_value(json_object_get(res, "for"))),
				       cli_line(sel));
			else
				printf("%s: no provider: %s\n",
				       cli_line(json_string_value(json_object_get(res, "for"))),
				       cli_line(json_string_value(json_object_get(res, "refusal"))));
		}
	}
	json_decref(res);
	return 0;
}
