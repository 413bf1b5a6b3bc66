/*
 * writer_cli.h - what the database writers' programs (vss-writer-postgresql)
 * share: their messages, the options every writer
 * takes (--run-dir, --timeout, --once), signals, and registering and
 * running on vss/writer.h.  Only programs use it; the library knows
 * nothing of it.
 */
#ifndef VSS_WRITER_CLI_H
#define VSS_WRITER_CLI_H

#include <signal.h>
#include <stdbool.h>

#include <vss/writer.h>

struct wcli {
	const char *prog;               /* "vss-writer-postgresql" */
	const char *run_dir;            /* NULL: the library's default */
	unsigned int timeout_s;         /* 60 unless --timeout */
	bool once;
};

/* "PROG: ..." and a newline on standard error. */
void wcli_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sets @prog for wcli_say and the defaults. */
void wcli_init(struct wcli *c, const char *prog);
/* Takes argv[*i] (and its value) if it is a common option: 1; 0 if it is
 * not one; 2 after a usage error (said). */
int wcli_option(struct wcli *c, int argc, char **argv, int *i);
/* A new metadata document for a database writer (@name, @class_id, a new
 * instance ID; user data, transacted database). */
int wcli_wmd_new(const char *name, const char *class_id, struct vss_wmd **out,
		 struct vss_error *err);
/* Registers @wmd with @h and @data, dispatches until SIGTERM or SIGINT
 * (or vssd goes, with --once); @cleanup(data) runs before the writer
 * closes.  The exit status: 0, or 1 with the reason said. */
int wcli_run(const struct wcli *c, const struct vss_wmd *wmd,
	     const struct vss_writer_handlers *h, void *data, const char *what,
	     void (*cleanup)(void *data));

#endif
