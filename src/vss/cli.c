/*
 * vss/cli.c - argument parsing, daemon calls and printing for the commands
 * (see cli.h).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "client/client_json.h"
#include "proto/proto.h"

int cli_error(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("vss: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

static const struct cli_opt common_opts[] = {
	{ "run-dir", 0, true },
	{ "json", 0, false },
	{ NULL, 0, false },
};

static const struct cli_opt *find_opt(const struct cli_opt *opts, const char *name,
				      char short_name)
{
	for (int pass = 0; pass < 2; pass++) {
		const struct cli_opt *o = pass ? common_opts : opts;

		for (; o && o->name; o++)
			if ((name && strcmp(o->name, name) == 0) ||
			    (!name && short_name && o->short_name == short_name))
				return o;
	}
	return NULL;
}

int cli_parse(struct cli_args *a, const char *cmd, int argc, char **argv,
	      const struct cli_opt *opts, int min_pos, int max_pos)
{
	bool only_pos = false;

	memset(a, 0, sizeof(*a));
	a->cmd = cmd;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *val = NULL;
		const struct cli_opt *o;
		char name[64];

		if (only_pos || arg[0] != '-' || strcmp(arg, "-") == 0) {
			if (a->npos >= max_pos || a->npos >= CLI_MAX_POS)
				return cli_error(EXIT_USAGE, "%s: unexpected argument \"%s\" "
						 "(see vss --help)", cmd, arg);
			a->pos[a->npos++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (arg[1] == '-') {
			const char *eq = strchr(arg + 2, '=');
			size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);

			if (len >= sizeof(name))
				len = sizeof(name) - 1;
			memcpy(name, arg + 2, len);
			name[len] = '\0';
			o = find_opt(opts, name, 0);
			if (eq)
				val = eq + 1;
		} else {
			o = arg[2] ? NULL : find_opt(opts, NULL, arg[1]);
		}
		if (!o)
			return cli_error(EXIT_USAGE, "%s: unknown option %s (see vss --help)",
					 cmd, arg);
		if (o->has_arg && !val) {
			if (i + 1 >= argc)
				return cli_error(EXIT_USAGE, "%s: option --%s needs a value",
						 cmd, o->name);
			val = argv[++i];
		} else if (!o->has_arg && val) {
			return cli_error(EXIT_USAGE, "%s: option --%s takes no value", cmd,
					 o->name);
		}
		if (strcmp(o->name, "run-dir") == 0) {
			a->run_dir = val;
			continue;
		}
		if (strcmp(o->name, "json") == 0) {
			a->json = true;
			continue;
		}
		if (a->n >= CLI_MAX_OPTS)
			return cli_error(EXIT_USAGE, "%s: too many options", cmd);
		a->names[a->n] = o->name;
		a->vals[a->n++] = val ? val : "";
	}
	if (a->npos < min_pos)
		return cli_error(EXIT_USAGE, "%s: missing argument (see vss --help)", cmd);
	return 0;
}

const char *cli_get(const struct cli_args *a, const char *name)
{
	const char *v = NULL;

	for (int i = 0; i < a->n; i++)
		if (strcmp(a->names[i], name) == 0)
			v = a->vals[i];
	return v;
}

bool cli_has(const struct cli_args *a, const char *name)
{
	return cli_get(a, name) != NULL;
}

int cli_get_all(const struct cli_args *a, const char *name, const char **out, int max)
{
	int k = 0;

	for (int i = 0; i < a->n && k < max; i++)
		if (strcmp(a->names[i], name) == 0)
			out[k++] = a->vals[i];
	return k;
}

int cli_call(const struct cli_args *a, const char *op, json_t *args, json_t **res)
{
	struct vss_client *c;
	struct vss_error err = { 0 };
	int rc;

	*res = NULL;
	rc = vss_client_open(vss_client_run_dir(a->run_dir), &c, &err);
	if (rc < 0) {
		json_decref(args);
		return cli_error(EXIT_UNREACHABLE, "%s (is vssd running?)", err.msg);
	}
	rc = vss_client_call_json(c, op, args, res, &err);
	vss_client_close(c);
	if (rc == -ECONNRESET || rc == -EPIPE)
		return cli_error(EXIT_UNREACHABLE, "%s", err.msg);
	if (rc < 0)
		return cli_error(EXIT_FAILED, "%s", err.msg);
	/* What vssd warns of (a diff area on tmpfs, say) goes to the user
	 * whatever the output form. */
	if (json_is_array(json_object_get(*res, "warnings"))) {
		json_t *w;
		size_t i;

		json_array_foreach(json_object_get(*res, "warnings"), i, w)
			fprintf(stderr, "vss: warning: %s\n", cli_line(json_string_value(w)));
	}
	return 0;
}

char *cli_mount_point(const char *path)
{
	char cwd[PATH_MAX], joined[2 * PATH_MAX + 2];

	if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return strdup(path);
	snprintf(joined, sizeof(joined), "%s/%s", cwd, path);
	return strdup(joined);
}

char *cli_abs_path(const char *path)
{
	char real[PATH_MAX];

	if (realpath(path, real))
		return strdup(real);
	return cli_mount_point(path);
}

bool cli_remote_target(const char *target)
{
	size_t n = strcspn(target, ":/");

	/* HOST:TARGET: HOST as vssd takes a host's name (doc/peers.md). */
	if (target[n] != ':' || !target[n + 1] || n == 0 || n > 63 ||
	    !isalnum((unsigned char)target[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)target[i]) && !strchr("._-", target[i]))
			return false;
	return true;
}

int cli_local_only(const struct cli_args *a, const char *const *fors, int n)
{
	for (int k = 0; k < n; k++)
		if (cli_remote_target(fors[k]))
			return cli_error(EXIT_USAGE, "%s: %s is another host's target: %s reads "
					 "this host's shadows only (sets across hosts: vss create "
					 "shadow --for HOST:TARGET; doc/peers.md)", a->cmd, fors[k],
					 a->cmd);
	return 0;
}

char *cli_target(const char *target)
{
	if (cli_remote_target(target))
		return strdup(target);
	if (strchr(target, '/') || strcmp(target, ".") == 0 || strcmp(target, "..") == 0)
		return cli_abs_path(target);
	return strdup(target);
}

/* The --for values given, or @take of each volume vssd serves that has a
 * string @has; @none says why there are none. */
static int given_or_volumes(const struct cli_args *a, const char **fors, int max, json_t **vols,
			    const char *has, const char *take, const char *none)
{
	int n = cli_get_all(a, "for", fors, max), rc;
	json_t *v;
	size_t i;

	*vols = NULL;
	if (n > 0)
		return n;
	if ((rc = cli_call(a, "volume.list", NULL, vols)))
		return -rc;
	json_array_foreach(json_object_get(*vols, "volumes"), i, v)
		if (json_is_string(json_object_get(v, has)) && n < max)
			fors[n++] = json_string_value(json_object_get(v, take));
	if (n == 0)
		return -cli_error(EXIT_FAILED, "%s: %s", a->cmd, none);
	return n;
}

int cli_targets(const struct cli_args *a, const char **fors, int max, json_t **vols)
{
	return given_or_volumes(a, fors, max, vols, "mount", "mount",
				"no --for TARGET given and no volume is mounted");
}

int cli_volumes(const struct cli_args *a, const char **fors, int max, json_t **vols)
{
	return given_or_volumes(a, fors, max, vols, "device", "name",
				"no --for VOLUME given and vssd serves no volume");
}

void cli_set_for(const struct cli_args *a, json_t *args, const char *key)
{
	char *t;

	if (!cli_has(a, "for"))
		return;
	t = cli_target(cli_get(a, "for"));
	json_object_set_new(args, key, json_string(t));
	free(t);
}

const char *cli_bytes(uint64_t n, char *buf)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, 32, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, 32, "%.1f %s", v, units[u]);
	return buf;
}

void cli_print_json(json_t *doc)
{
	json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

struct cli_table {
	int ncols, nrows, cap;
	char **cells;       /* (nrows + 1) * ncols, row 0 the headers */
};

struct cli_table *cli_table_new(int ncols, const char *const *headers)
{
	struct cli_table *t = calloc(1, sizeof(*t));

	t->ncols = ncols;
	cli_table_add(t, headers);
	return t;
}

const char *cli_line(const char *s)
{
	static char bufs[8][16384];
	static unsigned int next;
	char *b = bufs[next++ % 8];

	return s ? vss_proto_line(b, sizeof(bufs[0]), s) : NULL;
}

void cli_table_add(struct cli_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 8;
		t->cells = realloc(t->cells, (size_t)t->cap * (size_t)t->ncols * sizeof(char *));
	}
	for (int i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = strdup(cells[i] ? cli_line(cells[i]) : "-");
	t->nrows++;
}

void cli_table_print(struct cli_table *t)
{
	int width[16] = { 0 };

	for (int r = 0; r < t->nrows; r++)
		for (int c = 0; c < t->ncols && c < 16; c++) {
			int w = (int)strlen(t->cells[r * t->ncols + c]);

			if (w > width[c])
				width[c] = w;
		}
	for (int r = 0; r < t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];

			if (c == t->ncols - 1)
				printf("%s\n", s);
			else
				printf("%-*s  ", width[c], s);
		}
	}
	for (int i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
