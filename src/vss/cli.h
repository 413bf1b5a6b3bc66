/*
 * vss/cli.h - the command line's own plumbing: the argument parser, the
 * call to the daemon with the contract's exit codes, and table printing.
 * Each cmd_*.c file parses one group of commands and prints its results.
 */
#ifndef VSS_CLI_H
#define VSS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include <vss/backup.h>
#include <vss/requester.h>

#define EXIT_FAILED      1
#define EXIT_USAGE       2
#define EXIT_UNREACHABLE 3

#define CLI_MAX_OPTS 32
#define CLI_MAX_POS  8

/* An option a command accepts: "--name" (and "-c" if short is set). */
struct cli_opt {
	const char *name;
	char short_name;
	bool has_arg;
};

struct cli_args {
	const char *cmd;                        /* "volume create", for messages */
	const char *run_dir;
	bool json;
	int n;
	const char *names[CLI_MAX_OPTS];
	const char *vals[CLI_MAX_OPTS];
	int npos;
	const char *pos[CLI_MAX_POS];
};

/*
 * Parses argv against @opts (plus --run-dir and --json, which every
 * command takes).  Returns 0, or prints a usage error and returns
 * EXIT_USAGE.
 */
int cli_parse(struct cli_args *a, const char *cmd, int argc, char **argv,
	      const struct cli_opt *opts, int min_pos, int max_pos);
const char *cli_get(const struct cli_args *a, const char *name);
bool cli_has(const struct cli_args *a, const char *name);
/* The values of a repeated option, in order; returns how many. */
int cli_get_all(const struct cli_args *a, const char *name, const char **out, int max);

/* Prints "vss: error: ..." and returns @code. */
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Calls @op with @args (stolen).  On success returns 0 and *@res; else
 * prints the error and returns the exit code (1, or 3 if unreachable). */
int cli_call(const struct cli_args *a, const char *op, json_t *args, json_t **res);

/* A target or directory as the daemon needs it: absolute, resolved if it exists. */
char *cli_abs_path(const char *path);
/* @path made absolute (against the working directory) without resolving
 * any symlink in it: a mount point, which vssd refuses to reach through a
 * symlink (malloc'd). */
char *cli_mount_point(const char *path);
/* A target: a volume name and another host's HOST:TARGET stay as they are,
 * anything path-like becomes absolute. */
char *cli_target(const char *target);
/* Whether @target is HOST:TARGET, another host's (doc/peers.md). */
bool cli_remote_target(const char *target);
/* 0, or EXIT_USAGE after saying why, if one of @fors is another host's:
 * for commands that read the shadows here (exec, backup create). */
int cli_local_only(const struct cli_args *a, const char *const *fors, int n);
/* The --for TARGETs given, or every mounted volume's mount point: how many
 * (at most @max; *@vols holds the strings of the latter, the caller frees
 * it), or minus the exit code after printing why there are none. */
int cli_targets(const struct cli_args *a, const char **fors, int max, json_t **vols);
/* The same with --for VOLUME, or every volume vssd serves, by name. */
int cli_volumes(const struct cli_args *a, const char **fors, int max, json_t **vols);
/* Sets @key in @args to the target given as --for, if it was given. */
void cli_set_for(const struct cli_args *a, json_t *args, const char *key);

/* Human-readable bytes ("1.5 GiB"); @buf of at least 32 bytes. */
const char *cli_bytes(uint64_t n, char *buf);

/* Prints @doc as the --json output. */
void cli_print_json(json_t *doc);

/* A table: add rows of @ncols strings, then print with aligned columns. */
struct cli_table;
/* @s as one printable line (vss_proto_line: control characters and bytes
 * that are not UTF-8 escaped): what vssd sends may hold names others chose,
 * which must not drive the terminal of whoever reads them.  Valid until the
 * eighth call after this one; NULL for NULL. */
const char *cli_line(const char *s);
struct cli_table *cli_table_new(int ncols, const char *const *headers);
void cli_table_add(struct cli_table *t, const char *const *cells);
void cli_table_print(struct cli_table *t);

#define CLI_NOTHING_FOUND "No items found that satisfy the query."

int cmd_status(int argc, char **argv);
int cmd_abort(int argc, char **argv);
int cmd_volume(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_expose(int argc, char **argv);
int cmd_unexpose(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_unexport(int argc, char **argv);
int cmd_export_list(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_resize(int argc, char **argv);
int cmd_shadow_create(int argc, char **argv);
int cmd_shadow_list(int argc, char **argv);
int cmd_shadow_delete(int argc, char **argv);
int cmd_storage_list(int argc, char **argv);
int cmd_storage_add(int argc, char **argv);
int cmd_storage_resize(int argc, char **argv);
int cmd_storage_delete(int argc, char **argv);
int cmd_writers_list(int argc, char **argv);
int cmd_providers_list(int argc, char **argv);
int cmd_volume_list(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
/* cmd_backup.c, shared with cmd_image.c.  Each returns 0, or prints why
 * not and returns the exit code. */
/* The --type of vss backup create (default full; log only if @log_ok) into
 * @bt, and --to given; @what names the kind of backup in the message. */
int backup_type_arg(const struct cli_args *a, const char *what, bool log_ok,
		    enum vss_backup_type *bt);
/* A requester for a backup of type @bt: the writers' metadata gathered
 * (none with --no-writers), the components --component names selected
 * (all without it); @provider (if not NULL) forced. */
int backup_begin(const struct cli_args *a, enum vss_backup_type bt, bool partial,
		 const char *provider, struct vss_requester **req);
/* Takes the set: the volumes of @paths (if not NULL) or the @n targets
 * @fors, prepared for backup, @plan (if not NULL) checked, the shadows made. */
int backup_take(struct vss_requester *req, const char *const *fors, int n,
		const char *const *paths, size_t npaths, const struct vss_backup_plan *plan);
/* Without --for, the targets of @cmd: the directories of the selected
 * components' files (the set takes the volumes they are on), at most
 * @max, into *@paths (malloc'd strings; free each, then the array), *@n 0
 * when no component is selected.  0, or prints why not and returns the
 * exit code (no file of the components exists, too many places). */
int component_targets(const char *cmd, struct vss_requester *req, size_t max, char ***paths,
		      size_t *n);
/* Progress on standard error, one line rewritten in place, when it is a
 * terminal and --quiet was not given: files and bytes done, of how many
 * when the total is known, the rate, and then the time left. */
struct progress {
	struct timespec start;
	bool on;
};
void backup_progress_init(struct progress *pr, const struct cli_args *a);
/* A vss_backup_progress_fn; @arg is the struct progress. */
void backup_show_progress(void *arg, const struct vss_backup_progress *p);
/* Aborts @req unless @ok (its backup completed), and closes it. */
void backup_end(struct vss_requester *req, bool ok);
/* cmd_image.c: vss backup create --image (cmd_backup dispatches on it). */
bool cmd_image_wanted(int argc, char **argv);
int cmd_image_create(int argc, char **argv);
/* cmd_track.c */
int cmd_diff(int argc, char **argv);
int cmd_revert(int argc, char **argv);
int cmd_bookmark_list(int argc, char **argv);
int cmd_bookmark_delete(int argc, char **argv);
/* cmd_schedule.c */
int cmd_schedule(int argc, char **argv);
/* cmd_versions.c */
int cmd_versions(int argc, char **argv);
int cmd_restore_version(int argc, char **argv);

#endif
