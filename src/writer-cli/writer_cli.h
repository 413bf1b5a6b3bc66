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
#include <stddef.h>
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

/* The component (@logical_path, @name) of @bcd (may be NULL), or NULL. */
struct vss_bcd_component *wcli_component(const struct vss_bcd *bcd, const char *logical_path,
					 const char *name);

/* systemctl @verb @unit; 0 or -EIO with @why. */
int wcli_systemctl(const char *verb, const char *unit, char *why, size_t len);

/*
 * Taking part in restores in place: what the program serves (clusters,
 * servers), each stopped at pre_restore if it runs and its component is
 * restored to its live place, started again at post_restore or abort.
 * One it has nothing to stop with is refused while it runs: its files
 * must not change under it.
 */
#define WCLI_SERVED_MAX 32
struct wcli_restore {
	const char *logical_path;       /* of the components */
	const char *noun;               /* "cluster" */
	void *data;                     /* the callbacks' */
	/* The index of the one named @name, or -1. */
	int (*find)(void *data, const char *name);
	const char *(*name)(void *data, int i);
	bool (*running)(void *data, int i);
	/* What stops and starts @i, for messages; "" for nothing. */
	const char *(*manager)(void *data, int i);
	/* Stop or start @i with it: 0 or -errno with @why. */
	int (*stop)(void *data, int i, char *why, size_t len);
	int (*start)(void *data, int i, char *why, size_t len);
	bool stopped[WCLI_SERVED_MAX];  /* by pre_restore, not started since */
};
/* pre_restore: stops what is restored in place and runs; a failure is set
 * on @w (what was stopped stays stopped until wcli_start_stopped). */
int wcli_pre_restore(struct vss_writer *w, struct wcli_restore *r);
/* Starts what pre_restore stopped; the first failure in @why. */
int wcli_start_stopped(struct wcli_restore *r, char *why, size_t len);

/* The program: --run-dir, --timeout, --once, --config FILE, -h, --help;
 * load, describe, register, dispatch until SIGTERM or SIGINT (or vssd
 * goes, with --once).  The exit status: 0, 1 failed (said), 2 usage. */
int wcli_main(int argc, char **argv, const struct wcli_writer *w);

#endif
