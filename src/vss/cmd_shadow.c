/*
 * vss/cmd_shadow.c - create shadow, list shadows, delete shadows, expose,
 * unexpose.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client/client_json.h"

#define MAX_TARGETS 64

/*
 * The set is taken with "hold": it stays ours until set.complete, so if
 * this process dies before it has printed the IDs the daemon deletes it.
 */
int cmd_shadow_create(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "for", 0, true }, { "persistent", 0, false }, { "no-writers", 0, false },
		{ "provider", 0, true }, { "allow-live", 0, false },
		{ "freeze-timeout", 0, true }, { NULL, 0, false },
	};
	const char *targets[MAX_TARGETS];
	struct vss_client *c;
	struct vss_error err = { 0 };
	struct cli_args a;
	json_t *args, *list, *res, *done, *sh;
	size_t i;
	int rc, n;

	if ((rc = cli_parse(&a, "create shadow", argc, argv, opts, 0, 0)))
		return rc;
	n = cli_get_all(&a, "for", targets, MAX_TARGETS);
	if (n == 0)
		return cli_error(EXIT_USAGE, "create shadow: at least one --for TARGET is needed");
	list = json_array();
	for (int k = 0; k < n; k++) {
		char *t = cli_target(targets[k]);

		json_array_append_new(list, json_string(t));
		free(t);
	}
	args = json_pack("{s:o, s:b, s:b, s:b}", "targets", list,
			 "persistent", cli_has(&a, "persistent"),
			 "no_writers", cli_has(&a, "no-writers"), "hold", 1);
	if (cli_has(&a, "provider"))
		json_object_set_new(args, "provider", json_string(cli_get(&a, "provider")));
	if (cli_has(&a, "allow-live"))
		json_object_set_new(args, "allow_live", json_true());
	if (cli_has(&a, "freeze-timeout")) {
		char *end;
		long v = strtol(cli_get(&a, "freeze-timeout"), &end, 10);

		if (*end || v < 1 || v > 3600) {
			json_decref(args);
			return cli_error(EXIT_USAGE, "create shadow: --freeze-timeout takes 1 "
					 "to 3600 seconds");
		}
		json_object_set_new(args, "timeout_ms", json_integer((json_int_t)v * 1000));
	}
	if (vss_client_open(vss_client_run_dir(a.run_dir), &c, &err) < 0) {
		json_decref(args);
		return cli_error(EXIT_UNREACHABLE, "%s (is vssd running?)", err.msg);
	}
	rc = vss_client_call_json(c, "shadow.create", args, &res, &err);
	if (rc == 0) {
		rc = vss_client_call_json(c, "set.complete",
					  json_pack("{s:O}", "set", json_object_get(res, "set")),
					  &done, &err);
		json_decref(done);
		if (rc < 0)
			json_decref(res);
	}
	vss_client_close(c);
	if (rc < 0)
		return cli_error(rc == -ECONNRESET || rc == -EPIPE ? EXIT_UNREACHABLE
								    : EXIT_FAILED, "%s", err.msg);
	json_object_del(res, "complete");
	json_array_foreach(json_object_get(res, "warnings"), i, sh)
		fprintf(stderr, "vss: warning: %s\n", cli_line(json_string_value(sh)));
	if (a.json) {
		cli_print_json(res);
	} else {
		printf("%s\n", json_string_value(json_object_get(res, "set")));
		json_array_foreach(json_object_get(res, "shadows"), i, sh) {
			const char *host = json_string_value(json_object_get(sh, "host"));

			printf("%s %s %s%s%s\n",
			       cli_line(json_string_value(json_object_get(sh, "id"))),
			       cli_line(json_string_value(json_object_get(sh, "target"))),
			       host ? cli_line(host) : "", host ? ":" : "",
			       cli_line(json_string_value(json_object_get(sh, "device"))));
		}
	}
	json_decref(res);
	return 0;
}

int cmd_shadow_list(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "for", 0, true }, { "set", 0, true }, { NULL, 0, false },
	};
	static const char *const hdr[] = { "ID", "SET", "VOLUME", "CREATED", "STATE",
					   "DIFF", "ATTRIBUTES", "DEVICE" };
	struct cli_args a;
	json_t *args, *res, *sh;
	size_t i;
	int rc;

	if ((rc = cli_parse(&a, "list shadows", argc, argv, opts, 0, 0)))
		return rc;
	args = json_object();
	cli_set_for(&a, args, "for");
	if (cli_has(&a, "set"))
		json_object_set_new(args, "set", json_string(cli_get(&a, "set")));
	if ((rc = cli_call(&a, "shadow.list", args, &res)))
		return rc;
	if (a.json) {
		cli_print_json(res);
	} else if (json_array_size(json_object_get(res, "shadows")) == 0) {
		puts(CLI_NOTHING_FOUND);
	} else {
		struct cli_table *t = cli_table_new(8, hdr);

		json_array_foreach(json_object_get(res, "shadows"), i, sh) {
			char diff[32], attrs[256] = "", volume[512];
			const char *row[8], *host = json_string_value(json_object_get(sh, "host"));
			json_t *w;
			size_t k;

			json_array_foreach(json_object_get(sh, "attributes"), k, w) {
				if (k)
					strncat(attrs, ",", sizeof(attrs) - strlen(attrs) - 1);
				strncat(attrs, json_string_value(w), sizeof(attrs) - strlen(attrs) - 1);
			}
			cli_bytes((uint64_t)json_integer_value(json_object_get(sh, "diff_bytes")),
				  diff);
			row[0] = json_string_value(json_object_get(sh, "id"));
			row[1] = json_string_value(json_object_get(sh, "set"));
			/* Another host's member of a set this host coordinated. */
			snprintf(volume, sizeof(volume), "%s%s%s", host ? host : "", host ? ":" : "",
				 json_string_value(json_object_get(sh, "volume")));
			row[2] = volume;
			row[3] = json_string_value(json_object_get(sh, "created"));
			row[4] = json_string_value(json_object_get(sh, "state"));
			row[5] = diff;
			row[6] = attrs;
			row[7] = json_string_value(json_object_get(sh, "device"));
			cli_table_add(t, row);
		}
		cli_table_print(t);
	}
	json_decref(res);
	return 0;
}

int cmd_shadow_delete(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "shadow", 0, true }, { "set", 0, true }, { "for", 0, true },
		{ "oldest", 0, false }, { "all", 0, false }, { "quiet", 'q', false },
		{ NULL, 0, false },
	};
	struct cli_args a;
	json_t *args, *res;
	bool has_for, oldest, all;
	int rc, modes;
	long long n;

	if ((rc = cli_parse(&a, "delete shadows", argc, argv, opts, 0, 0)))
		return rc;
	has_for = cli_has(&a, "for");
	oldest = cli_has(&a, "oldest");
	all = cli_has(&a, "all");
	modes = cli_has(&a, "shadow") + cli_has(&a, "set") + (has_for || all);
	if (modes != 1 || (has_for && oldest == all) || (!has_for && oldest))
		return cli_error(EXIT_USAGE, "delete shadows: give one of --shadow ID, --set "
				 "SET_ID, --for TARGET --oldest, --for TARGET --all, --all");
	args = json_pack("{s:b, s:b}", "oldest", oldest, "all", all);
	if (cli_has(&a, "shadow"))
		json_object_set_new(args, "shadow", json_string(cli_get(&a, "shadow")));
	if (cli_has(&a, "set"))
		json_object_set_new(args, "set", json_string(cli_get(&a, "set")));
	cli_set_for(&a, args, "for");
	if ((rc = cli_call(&a, "shadow.delete", args, &res)))
		return rc;
	n = json_integer_value(json_object_get(res, "deleted"));
	if (a.json)
		cli_print_json(res);
	else if (!cli_has(&a, "quiet"))
		printf("Deleted %lld shadow cop%s.\n", n, n == 1 ? "y" : "ies");
	/* Other hosts' members that could not be deleted there (each said why
	 * as a warning) stay listed: not done. */
	rc = json_array_size(json_object_get(res, "kept")) ? EXIT_FAILED : 0;
	json_decref(res);
	return rc;
}

/* vss expose --gmt VOLUME, vss unexpose --gmt VOLUME: the volume's
 * persistent shadows under its snapshot directory, for Samba. */
static int gmt(const struct cli_args *a, bool on)
{
	json_t *res;
	int rc;

	if (a->npos)
		return cli_error(EXIT_USAGE, "%s --gmt VOLUME takes nothing else", a->cmd);
	if ((rc = cli_call(a, "volume.gmt", json_pack("{s:s, s:b}", "name", cli_get(a, "gmt"),
						      "on", on), &res)))
		return rc;
	if (a->json)
		cli_print_json(res);
	else if (on)
		printf("Persistent shadow copies of volume %s exposed under %s (%lld now)\n",
		       cli_line(json_string_value(json_object_get(res, "volume"))),
		       json_is_string(json_object_get(res, "dir"))
		       ? cli_line(json_string_value(json_object_get(res, "dir")))
		       : "its mount point, once mounted",
		       (long long)json_integer_value(json_object_get(res, "shadows")));
	else
		printf("Shadow copies of volume %s no longer exposed for Samba\n",
		       cli_line(json_string_value(json_object_get(res, "volume"))));
	json_decref(res);
	return 0;
}

int cmd_expose(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { "gmt", 0, true }, { NULL, 0, false } };
	struct cli_args a;
	json_t *res;
	char *dir;
	int rc;

	if ((rc = cli_parse(&a, "expose", argc, argv, opts, 0, 2)))
		return rc;
	if (cli_has(&a, "gmt"))
		return gmt(&a, true);
	if (a.npos != 2)
		return cli_error(EXIT_USAGE, "expose: SHADOW_ID DIR, or --gmt VOLUME");
	dir = cli_mount_point(a.pos[1]);
	rc = cli_call(&a, "shadow.expose", json_pack("{s:s, s:s}", "shadow", a.pos[0],
						     "dir", dir), &res);
	free(dir);
	if (rc)
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("Shadow copy %s exposed at %s (%s on %s)\n",
		       json_string_value(json_object_get(res, "shadow")),
		       json_string_value(json_object_get(res, "dir")),
		       json_string_value(json_object_get(res, "fstype")),
		       json_string_value(json_object_get(res, "loop")));
	json_decref(res);
	return 0;
}

int cmd_unexpose(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { "gmt", 0, true }, { NULL, 0, false } };
	struct cli_args a;
	json_t *res;
	char *dir;
	int rc;

	if ((rc = cli_parse(&a, "unexpose", argc, argv, opts, 0, 1)))
		return rc;
	if (cli_has(&a, "gmt"))
		return gmt(&a, false);
	if (a.npos != 1)
		return cli_error(EXIT_USAGE, "unexpose: DIR, or --gmt VOLUME");
	dir = cli_abs_path(a.pos[0]);
	rc = cli_call(&a, "shadow.unexpose", json_pack("{s:s}", "dir", dir), &res);
	free(dir);
	if (rc)
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("Shadow copy %s unexposed from %s\n",
		       json_string_value(json_object_get(res, "shadow")),
		       json_string_value(json_object_get(res, "dir")));
	json_decref(res);
	return 0;
}

/* What an export serves: a shadow's ID or a volume's name. */
static const char *export_name(json_t *x)
{
	json_t *sh = json_object_get(x, "shadow");

	return json_is_string(sh) ? json_string_value(sh)
				  : json_string_value(json_object_get(x, "volume"));
}

/* One line for an export: where it listens, and what its block status is. */
static void print_export(json_t *x)
{
	json_t *sock = json_object_get(x, "socket");
	const char *since = json_string_value(json_object_get(x, "changed_since"));
	bool tls = json_is_string(json_object_get(x, "tls_certificates"));
	const char *addr = json_string_value(json_object_get(x, "address"));

	if (!addr)
		addr = "";
	if (json_is_string(sock))
		printf("%s %s:///?socket=%s", export_name(x), tls ? "nbds+unix" : "nbd+unix",
		       cli_line(json_string_value(sock)));
	else
		printf("%s %s://%s%s%s:%lld", export_name(x), tls ? "nbds" : "nbd",
		       strchr(addr, ':') ? "[" : "", addr[0] ? addr : "HOST",
		       strchr(addr, ':') ? "]" : "",
		       (long long)json_integer_value(json_object_get(x, "port")));
	if (tls)
		printf(" (TLS, clients certified by the CA in %s)",
		       cli_line(json_string_value(json_object_get(x, "tls_certificates"))));
	if (since)
		printf(" (changed since %s: %lld bytes, the dirty extents of %s and the data "
		       "of base:allocation)", since,
		       (long long)json_integer_value(json_object_get(x, "changed_bytes")),
		       cli_line(json_string_value(json_object_get(x, "metadata_context"))));
	if (json_is_string(json_object_get(x, "volume")))
		printf(" [live]");
	if (!json_is_true(json_object_get(x, "running")))
		printf(" [%s no longer runs]", since ? "its server" : "nbdkit");
	printf("\n");
}

int cmd_export(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "socket", 0, true }, { "port", 0, true }, { "changed-since", 0, true },
		{ "tls-certificates", 0, true }, { "listen", 0, true }, { NULL, 0, false }
	};
	struct cli_args a;
	json_t *args, *res;
	char *sock = NULL, *tls = NULL, *end;
	unsigned long port = 0;
	int rc;

	if ((rc = cli_parse(&a, "export", argc, argv, opts, 1, 1)))
		return rc;
	if (cli_has(&a, "port")) {
		errno = 0;
		port = strtoul(cli_get(&a, "port"), &end, 10);
		if (errno || *end || port == 0 || port > 65535)
			return cli_error(EXIT_USAGE, "export: --port takes 1 to 65535");
	}
	if (cli_has(&a, "socket") && cli_has(&a, "port"))
		return cli_error(EXIT_USAGE, "export: --socket or --port, not both");
	if (cli_has(&a, "listen") && !cli_has(&a, "port"))
		return cli_error(EXIT_USAGE, "export: --listen ADDR goes with --port N");
	if (cli_has(&a, "socket"))
		sock = cli_abs_path(cli_get(&a, "socket"));
	if (cli_has(&a, "tls-certificates"))
		tls = cli_abs_path(cli_get(&a, "tls-certificates"));
	args = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?}", "target", a.pos[0], "socket", sock,
			 "since", cli_get(&a, "changed-since"), "tls", tls,
			 "listen", cli_get(&a, "listen"));
	if (args && port)
		json_object_set_new(args, "port", json_integer((json_int_t)port));
	free(sock);
	free(tls);
	if ((rc = cli_call(&a, "shadow.export", args, &res)))
		return rc;
	if (a.json) {
		cli_print_json(res);
	} else {
		printf("%s exported read-only over NBD: ",
		       json_is_string(json_object_get(res, "volume")) ? "Volume" : "Shadow copy");
		print_export(res);
		if (json_is_string(json_object_get(res, "warning")))
			fprintf(stderr, "vss: warning: %s\n",
				json_string_value(json_object_get(res, "warning")));
	}
	json_decref(res);
	return 0;
}

int cmd_unexport(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { NULL, 0, false } };
	struct cli_args a;
	json_t *res;
	int rc;

	if ((rc = cli_parse(&a, "unexport", argc, argv, opts, 1, 1)))
		return rc;
	if ((rc = cli_call(&a, "shadow.unexport", json_pack("{s:s}", "target", a.pos[0]),
			   &res)))
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("%s %s no longer exported\n",
		       json_is_string(json_object_get(res, "volume")) ? "Volume" : "Shadow copy",
		       export_name(res));
	json_decref(res);
	return 0;
}

int cmd_export_list(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { NULL, 0, false } };
	struct cli_args a;
	json_t *res, *x;
	size_t i;
	int rc;

	if ((rc = cli_parse(&a, "list exports", argc, argv, opts, 0, 0)))
		return rc;
	if ((rc = cli_call(&a, "export.list", json_object(), &res)))
		return rc;
	if (a.json)
		cli_print_json(res);
	else if (json_array_size(json_object_get(res, "exports")) == 0)
		printf("No shadow copy is exported\n");
	else
		json_array_foreach(json_object_get(res, "exports"), i, x)
			print_export(x);
	json_decref(res);
	return 0;
}
