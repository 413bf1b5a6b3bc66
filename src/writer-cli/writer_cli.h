/*
 * writer_cli.h - what the database writers' programs (vss-writer-postgresql,
 * vss-writer-mariadb) share: their messages, the options every writer
 * takes (--run-dir, --timeout, --once), signals, and registering and
 * running on vss/writer.h.  Only programs use it; the library knows
 * nothing of it.
 */
#ifndef VSS_WRITER_CLI_H
#define VSS_WRITER_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <vss/writer.h>

/* What a database writer program is; wcli_main() does the rest. */
struct wcli_writer {
	const char *prog;               /* "vss-writer-postgresql" */
	const char *name;               /* the writer's name: "postgresql" */
	const char *class_id;
	uint32_t schema;                /* VSS_BS_* */
	const char *default_config;     /* --config's default */
	const char *noun;               /* what it serves: "cluster" */
	const char *about;              /* the help's lines between usage and options */
	const char *config_help;        /* what --config holds: "the clusters, ..." */
	const struct vss_writer_handlers *handlers;
	void *data;                     /* the handlers' */
	/* Reads @config: how many it serves, or -errno (said). */
	int (*load)(const char *config, void *data);
	/* Learns where the @i-th one's files are; -errno with @why. */
	int (*locate)(void *data, int i, char *why, size_t len);
	/* The component of the @i-th one load() counted, into @wmd. */
	int (*add)(struct vss_wmd *wmd, void *data, int i, struct vss_error *err);
	const struct vss_wmd_restore_method *restore;   /* NULL: the default */
	void (*cleanup)(void *data);    /* before the writer closes */
};

/* "PROG: ..." and a newline on standard error. */
void wcli_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A stamp function: the stamp of the component @name (of @data) in @out,
 * or -errno with @why; -ENOENT: not one of ours.  @prev is the stamp of
 * the backup this one builds on (NULL for none), @type the backup's. */
typedef int (*wcli_stamp_fn)(void *data, const char *name, const char *prev,
			     enum vss_backup_type type, char *out, size_t olen,
			     char *why, size_t wlen);
#define WCLI_STAMP_MAX 1024
#define WCLI_WHY_MAX 8704
/* prepare_backup: each selected component at @logical_path gets @stamp's
 * stamp (the previous one is logged). */
int wcli_set_stamps(struct vss_writer *w, const struct vss_writer_event *ev,
		    const char *logical_path, wcli_stamp_fn stamp, void *data);

/* The program: --run-dir, --timeout, --once, --config FILE, -h, --help;
 * load, describe, register, dispatch until SIGTERM or SIGINT (or vssd
 * goes, with --once).  The exit status: 0, 1 failed (said), 2 usage. */
int wcli_main(int argc, char **argv, const struct wcli_writer *w);

#endif
