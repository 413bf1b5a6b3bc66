/*
 * writer_cli.c - the database writers' shared program parts (writer_cli.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

#include "writer_cli.h"

static const char *prog_name = "vss-writer";
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

void wcli_say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void wcli_init(struct wcli *c, const char *prog)
{
	memset(c, 0, sizeof(*c));
	c->prog = prog_name = prog;
	c->timeout_s = 60;
}

int wcli_option(struct wcli *c, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	char *end;
	long v;

	if (strcmp(a, "--once") == 0) {
		c->once = true;
		return 1;
	}
	if (strcmp(a, "--run-dir") != 0 && strcmp(a, "--timeout") != 0)
		return 0;
	if (*i + 1 >= argc) {
		wcli_say("%s needs a value", a);
		return 2;
	}
	if (strcmp(a, "--run-dir") == 0) {
		c->run_dir = argv[++*i];
		return 1;
	}
	v = strtol(argv[++*i], &end, 10);
	if (*end || v < 1 || v > 3600) {
		wcli_say("--timeout takes 1 to 3600 seconds");
		return 2;
	}
	c->timeout_s = (unsigned int)v;
	return 1;
}

int wcli_wmd_new(const char *name, const char *class_id, struct vss_wmd **out,
		 struct vss_error *err)
{
	char inst[37];
	uuid_t u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, inst);
	return vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = name, .class_id = class_id, .instance_id = inst,
		.usage = VSS_UT_USER_DATA, .source = VSS_ST_TRANSACTED_DB }, out, err);
}

static void on_connection(struct vss_writer *w, bool up, const char *why, void *data)
{
	if (up)
		wcli_say("%s", why);
	else
		wcli_say("%s; registering when vssd is up", why);
}

int wcli_run(const struct wcli *c, const struct vss_wmd *wmd,
	     const struct vss_writer_handlers *h, void *data, const char *what,
	     void (*cleanup)(void *data))
{
	struct vss_error err = { 0 };
	struct vss_writer *w;
	int rc;

	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	rc = vss_writer_open(&(struct vss_writer_options){
		.size = sizeof(struct vss_writer_options), .run_dir = c->run_dir,
		.timeout_ms = c->timeout_s * 1000u, .reconnect = !c->once,
		.on_connection = on_connection }, wmd, h, data, &w, &err);
	if (rc < 0) {
		wcli_say("%s", err.msg);
		return 1;
	}
	wcli_say("%s (%s)", vss_writer_fd(w) >= 0 ? "registered" : "started, vssd not up yet",
		 what);
	rc = vss_writer_run(w, &stop, &err);
	cleanup(data);
	vss_writer_close(w);
	if (rc < 0) {
		wcli_say("%s", err.msg);
		return 1;
	}
	return 0;
}
