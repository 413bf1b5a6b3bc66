/*
 * vss/cmd_schedule.c - vss schedule add, list, delete, run: shadows vssd
 * takes by itself on a schedule, and deletes by its retention (vssd's
 * schedule.*; doc/protocol.md).  The values are checked here with vssd's
 * own parsers (service/timeline.h), so a bad one is a usage error; vssd
 * checks them again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "service/timeline.h"

#define MAX_TARGETS 64

static int add(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "for", 0, true }, { "every", 0, true }, { "at", 0, true }, { "on", 0, true },
		{ "keep", 0, true }, { "persistent", 0, false }, { "no-writers", 0, false },
		{ NULL, 0, false },
	};
	const char *targets[MAX_TARGETS], *every, *at, *on, *keep;
	unsigned int kept[SVC_KEEP_CLASSES], days;
	struct vss_error err = { 0 };
	struct cli_args a;
	json_t *args, *list, *res;
	uint64_t ns;
	int rc, n, minute;

	if ((rc = cli_parse(&a, "schedule add", argc, argv, opts, 0, 0)))
		return rc;
	every = cli_get(&a, "every");
	at = cli_get(&a, "at");
	on = cli_get(&a, "on");
	keep = cli_get(&a, "keep");
	n = cli_get_all(&a, "for", targets, MAX_TARGETS);
	if (n == 0)
		return cli_error(EXIT_USAGE, "schedule add: at least one --for TARGET is needed");
	if (!every == !at)
		return cli_error(EXIT_USAGE, "schedule add: either --every DURATION or --at TIME");
	if (on && !at)
		return cli_error(EXIT_USAGE, "schedule add: --on goes with --at");
	/* vssd may allow shorter intervals for its tests: it has the last word. */
	if ((every && svc_timeline_parse_every(every, 1000000000ull, &ns, &err) < 0) ||
	    (at && svc_timeline_parse_at(at, &minute, &err) < 0) ||
	    (on && svc_timeline_parse_days(on, &days, &err) < 0) ||
	    (keep && svc_timeline_parse_keep(keep, kept, &err) < 0))
		return cli_error(EXIT_USAGE, "schedule add: %s", err.msg);
	list = json_array();
	for (int k = 0; k < n; k++) {
		char *t = cli_target(targets[k]);

		json_array_append_new(list, json_string(t));
		free(t);
	}
	args = json_pack("{s:o, s:s?, s:s?, s:s?, s:s?, s:b, s:b}", "targets", list,
			 "every", every, "at", at, "on", on, "keep", keep,
			 "persistent", cli_has(&a, "persistent"),
			 "no_writers", cli_has(&a, "no-writers"));
	if ((rc = cli_call(&a, "schedule.add", args, &res)))
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("Schedule %s added; next run %s\n",
		       json_string_value(json_object_get(res, "id")),
		       json_string_value(json_object_get(res, "next_run")));
	json_decref(res);
	return 0;
}

/* "every 3600 s" or "at 03:00 on mon,tue". */
static void when_str(json_t *s, char *buf, size_t len)
{
	json_t *on, *d;
	size_t i, used;

	if (json_is_integer(json_object_get(s, "every_s"))) {
		snprintf(buf, len, "every %llds",
			 (long long)json_integer_value(json_object_get(s, "every_s")));
		return;
	}
	used = (size_t)snprintf(buf, len, "at %s on ",
				json_string_value(json_object_get(s, "at")));
	on = json_object_get(s, "on");
	json_array_foreach(on, i, d)
		if (used < len)
			used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "",
						 json_string_value(d));
}

static void keep_str(json_t *s, char *buf, size_t len)
{
	json_t *keep = json_object_get(s, "keep");
	size_t used = 0;

	buf[0] = '\0';
	for (int c = 0; c < SVC_KEEP_CLASSES && used < len; c++) {
		json_int_t v = json_integer_value(json_object_get(keep, svc_keep_class_names[c]));

		if (v)
			used += (size_t)snprintf(buf + used, len - used, "%s%s=%lld",
						 used ? "," : "", svc_keep_class_names[c],
						 (long long)v);
	}
}

static int list(int argc, char **argv)
{
	static const char *const hdr[] = { "ID", "TARGETS", "WHEN", "KEEP", "NEXT", "LAST",
					   "SHADOWS" };
	struct cli_args a;
	json_t *res, *arr, *s, *t;
	size_t i, k;
	int rc;

	if ((rc = cli_parse(&a, "schedule list", argc, argv, NULL, 0, 0)))
		return rc;
	if ((rc = cli_call(&a, "schedule.list", json_object(), &res)))
		return rc;
	arr = json_object_get(res, "schedules");
	if (a.json) {
		cli_print_json(res);
	} else if (json_array_size(arr) == 0) {
		puts(CLI_NOTHING_FOUND);
	} else {
		struct cli_table *tab = cli_table_new(7, hdr);

		json_array_foreach(arr, i, s) {
			char targets[1024] = "", when[64], keep[128], count[16];
			size_t used = 0;

			json_array_foreach(json_object_get(s, "targets"), k, t)
				if (used < sizeof(targets))
					used += (size_t)snprintf(targets + used, sizeof(targets) - used,
								 "%s%s", k ? "," : "",
								 json_string_value(t));
			when_str(s, when, sizeof(when));
			keep_str(s, keep, sizeof(keep));
			snprintf(count, sizeof(count), "%lld",
				 (long long)json_integer_value(json_object_get(s, "shadows")));
			const char *row[7] = {
				json_string_value(json_object_get(s, "id")), cli_line(targets), when,
				keep, json_string_value(json_object_get(s, "next_run")),
				json_is_string(json_object_get(s, "last_run"))
					? json_string_value(json_object_get(s, "last_run")) : "never",
				count,
			};

			cli_table_add(tab, row);
		}
		cli_table_print(tab);
		json_array_foreach(arr, i, s)
			if (json_is_string(json_object_get(s, "last_error")))
				printf("%s: last run failed: %s\n",
				       json_string_value(json_object_get(s, "id")),
				       cli_line(json_string_value(json_object_get(s, "last_error"))));
	}
	json_decref(res);
	return 0;
}

static int delete(int argc, char **argv)
{
	struct cli_args a;
	json_t *res;
	int rc;

	if ((rc = cli_parse(&a, "schedule delete", argc, argv, NULL, 1, 1)))
		return rc;
	if ((rc = cli_call(&a, "schedule.delete", json_pack("{s:s}", "schedule", a.pos[0]),
			   &res)))
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("Schedule %s deleted\n", json_string_value(json_object_get(res, "deleted")));
	json_decref(res);
	return 0;
}

static int run(int argc, char **argv)
{
	struct cli_args a;
	json_t *res;
	long long n, d;
	int rc;

	if ((rc = cli_parse(&a, "schedule run", argc, argv, NULL, 1, 1)))
		return rc;
	if ((rc = cli_call(&a, "schedule.run", json_pack("{s:s}", "schedule", a.pos[0]), &res)))
		return rc;
	n = (long long)json_array_size(json_object_get(res, "shadows"));
	d = (long long)json_integer_value(json_object_get(res, "deleted"));
	if (a.json)
		cli_print_json(res);
	else
		printf("Schedule %s ran: set %s (%lld shadow cop%s), %lld deleted by its "
		       "retention\n", json_string_value(json_object_get(res, "schedule")),
		       json_string_value(json_object_get(res, "set")), n, n == 1 ? "y" : "ies", d);
	json_decref(res);
	return 0;
}

int cmd_schedule(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} subs[] = { { "add", add }, { "list", list }, { "delete", delete }, { "run", run } };

	if (argc < 1)
		return cli_error(EXIT_USAGE, "schedule what? (see vss --help)");
	for (size_t k = 0; k < sizeof(subs) / sizeof(subs[0]); k++)
		if (strcmp(argv[0], subs[k].name) == 0)
			return subs[k].fn(argc - 1, argv + 1);
	return cli_error(EXIT_USAGE, "unknown command \"schedule %s\" (see vss --help)", argv[0]);
}
