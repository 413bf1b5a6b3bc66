/*
 * vss-writer-sqlite - a writer for SQLite databases.  At PrepareForSnapshot
 * it checkpoints each database's WAL (the slow part); at Freeze it takes the
 * write lock (BEGIN IMMEDIATE on its first connection), then checkpoints
 * the whole WAL into the database file through a second connection, and
 * holds the lock until Thaw or Abort.  So no transaction is half-written
 * when the shadow is taken, and the database file alone (without its -wal)
 * holds every transaction committed before the freeze.  A checkpoint that
 * needs no writer lock is the only kind that can run while the first
 * connection holds it: PASSIVE (FULL, RESTART and TRUNCATE wait for the
 * writer lock; a connection cannot checkpoint inside its own transaction,
 * SQLITE_LOCKED).  PASSIVE stops at the oldest snapshot a reader still
 * uses, so it is tried again until the WAL is all in the file, for at most
 * LOCK_WAIT_MS; a reader holding an older snapshot that long fails the
 * Freeze (retryable).  Other readers are never blocked; writers wait at
 * most the freeze window.  Each database is one database component: its
 * file and its WAL/journal.
 *
 * Restores: at PreRestore each database restored to its own place is let
 * go of (its WAL checkpointed into it and truncated, its connection
 * closed), so that the restored files are what the next open reads; at
 * PostRestore, or the Abort of a restore, it is opened again, and a
 * database that fails quick_check after the restore fails PostRestore
 * (recovery_failed).  A restore elsewhere (--to, an alternate location)
 * leaves it open.
 *
 * At every identify each DATABASE is resolved again as it was given: one
 * that now resolves elsewhere (a symlink pointed at another file, a
 * directory moved) is opened there and the metadata given again
 * (vss_writer_set_metadata), so the backup takes the files it is now; one
 * that is gone fails the writer at identify, naming it.
 *
 * vss-writer-sqlite [--run-dir DIR] [--timeout SECONDS] [--once] DATABASE...
 * (--timeout: the freeze-to-thaw window this writer allows; default 60 s.
 * When vssd goes away the writer lets go of its locks (abort) and registers
 * again once vssd is back; --once: exit instead.)
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uuid/uuid.h>

#include <vss/writer.h>

#define SQLITE_CLASS_ID "3d8f0b6a-7c21-4e9d-b5a4-2f6e8c1d0a77"
#define MAX_DBS 64
#define LOCK_WAIT_MS 10000

struct db {
	char given[PATH_MAX];           /* as on the command line */
	char path[PATH_MAX];            /* what it resolved to */
	char lp[PATH_MAX];              /* its component: logical path and name */
	const char *name;
	sqlite3 *conn;                  /* NULL while a restore has it closed */
	sqlite3 *ckpt;                  /* checkpoints while conn holds the lock; NULL with conn */
	bool locked;
};

struct dbs {
	struct db db[MAX_DBS];
	int n;
	char instance[37];
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("vss-writer-sqlite: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * SQLite's own busy handler sleeps longer and longer between tries, and a
 * process that commits in a loop takes the write lock back within
 * microseconds: we would hardly ever see it free.  Retry every 100 us for
 * LOCK_WAIT_MS instead.
 */
static int busy(void *arg, int tries)
{
	static struct timespec start;
	struct timespec now;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (tries == 0)
		start = now;
	if ((now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L >=
	    LOCK_WAIT_MS)
		return 0;
	usleep(100);
	return 1;
}

static int exec_sql(struct db *d, const char *sql, char *why, size_t len)
{
	char *msg = NULL;

	if (sqlite3_exec(d->conn, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	snprintf(why, len, "%s: %s: %s", d->path, sql, msg ? msg : sqlite3_errmsg(d->conn));
	sqlite3_free(msg);
	return -EIO;
}

static void unlock_all(struct dbs *s)
{
	char why[512];

	for (int i = 0; i < s->n; i++)
		if (s->db[i].locked && s->db[i].conn) {
			if (exec_sql(&s->db[i], "ROLLBACK", why, sizeof(why)) < 0)
				say("%s", why);
			s->db[i].locked = false;
		}
}

static void checkpoint(struct dbs *s)
{
	for (int i = 0; i < s->n; i++) {
		int rc = SQLITE_OK;

		/* Reading first: see checkpoint_whole(). */
		if (s->db[i].ckpt &&
		    (rc = sqlite3_exec(s->db[i].ckpt, "PRAGMA schema_version", NULL, NULL,
				       NULL)) == SQLITE_OK)
			rc = sqlite3_wal_checkpoint_v2(s->db[i].ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE,
						       NULL, NULL);

		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			say("%s: checkpoint: %s", s->db[i].path, sqlite3_errmsg(s->db[i].ckpt));
	}
}

/*
 * With @d's write lock held: its WAL all copied into the database file
 * (and the file synced), so that the file alone holds every commit.  No
 * new frame can be added while the lock is held, so a checkpoint that
 * reaches the end of the WAL is final.  -EBUSY with @why when a reader's
 * snapshot keeps it from the end for LOCK_WAIT_MS.
 */
static int checkpoint_whole(struct db *d, char *why, size_t len)
{
	struct timespec start, now;
	int log = 0, done = 0;

	/* A connection that has read nothing yet does not know the database
	 * is in WAL mode, and its checkpoint does nothing (-1 frames): one
	 * read opens the WAL. */
	if (sqlite3_exec(d->ckpt, "PRAGMA schema_version", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(why, len, "%s: %s", d->path, sqlite3_errmsg(d->ckpt));
		return -EIO;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int rc = sqlite3_wal_checkpoint_v2(d->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE,
						   &log, &done);

		/* -1/-1: not in WAL mode; the file is all there is. */
		if ((rc == SQLITE_OK && done >= log) || (rc == SQLITE_OK && log < 0))
			return 0;
		if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
			snprintf(why, len, "%s: checkpoint: %s", d->path, sqlite3_errmsg(d->ckpt));
			return -EIO;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000L +
		    (now.tv_nsec - start.tv_nsec) / 1000000L >= LOCK_WAIT_MS) {
			snprintf(why, len, "%s: %d of the WAL's %d frames could be checkpointed "
				 "into the database file in %d ms: a reader keeps an older "
				 "snapshot open", d->path, done, log, LOCK_WAIT_MS);
			return -EBUSY;
		}
		usleep(1000);
	}
}

static int on_prepare_snapshot(struct vss_writer *w, const struct vss_writer_event *ev,
			       void *data)
{
	checkpoint(data);
	return 0;
}

static int on_freeze(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct dbs *s = data;
	char why[1024];

	for (int i = 0; i < s->n; i++) {
		int rc;

		if (!s->db[i].conn) {
			vss_writer_set_failure(w, VSS_WF_RETRYABLE, "%s is closed for a restore",
					       s->db[i].path);
			unlock_all(s);
			return -EBUSY;
		}
		/* Waits for a writer in progress to commit, then keeps others out. */
		if (exec_sql(&s->db[i], "BEGIN IMMEDIATE", why, sizeof(why)) < 0) {
			unlock_all(s);
			vss_writer_set_failure(w, VSS_WF_RETRYABLE, "%s", why);
			return -EBUSY;
		}
		s->db[i].locked = true;
		if ((rc = checkpoint_whole(&s->db[i], why, sizeof(why))) < 0) {
			unlock_all(s);
			vss_writer_set_failure(w, rc == -EBUSY ? VSS_WF_RETRYABLE :
					       VSS_WF_NONRETRYABLE, "%s", why);
			return rc;
		}
	}
	return 0;
}

static int on_thaw(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	unlock_all(data);
	return 0;
}

/* Opens @d's two connections; -EIO with @why. */
static int db_open(struct db *d, char *why, size_t len)
{
	if (sqlite3_open_v2(d->path, &d->conn, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_open_v2(d->path, &d->ckpt, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		snprintf(why, len, "%s: %s", d->path,
			 sqlite3_errmsg(d->ckpt ? d->ckpt : d->conn));
		sqlite3_close(d->ckpt);
		sqlite3_close(d->conn);
		d->conn = d->ckpt = NULL;
		return -EIO;
	}
	sqlite3_busy_handler(d->conn, busy, NULL);
	sqlite3_busy_handler(d->ckpt, busy, NULL);
	return 0;
}

/* Whether the restore in progress writes @d's files back to their place. */
static bool restored_in_place(struct vss_writer *w, const struct db *d)
{
	struct vss_writer_restore_info ri;

	if (vss_writer_restore_info(w, &ri) < 0 || ri.to)
		return false;
	for (size_t i = 0; i < ri.component_count; i++) {
		struct vss_writer_restore_component c;

		if (vss_writer_restore_component(w, i, &c) == 0 && c.original_location &&
		    strcmp(c.logical_path, d->lp) == 0 && strcmp(c.name, d->name) == 0)
			return true;
	}
	return false;
}

/* PreRestore: every database restored in place is checkpointed whole into
 * its file (its WAL truncated) and closed. */
static int on_pre_restore(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct dbs *s = data;
	char why[PATH_MAX + 1024] = "";

	unlock_all(s);
	for (int i = 0; i < s->n; i++) {
		struct db *d = &s->db[i];

		if (!d->conn || !restored_in_place(w, d))
			continue;
		if (d->ckpt && sqlite3_close(d->ckpt) == SQLITE_OK)
			d->ckpt = NULL;
		if (exec_sql(d, "PRAGMA wal_checkpoint(TRUNCATE)", why, sizeof(why)) < 0 ||
		    d->ckpt || sqlite3_close(d->conn) != SQLITE_OK) {
			vss_writer_set_failure(w, VSS_WF_RETRYABLE, "%s cannot be let go of for the "
					       "restore: %s", d->path, why[0] ? why :
					       sqlite3_errmsg(d->conn));
			return -EBUSY;
		}
		d->conn = NULL;
		say("%s: closed for the restore", d->path);
	}
	return 0;
}

/* Opens again what a restore closed; the first failure in @why. */
static int reopen_all(struct dbs *s, bool check, char *why, size_t len)
{
	int rc = 0;

	for (int i = 0; i < s->n; i++) {
		struct db *d = &s->db[i];
		char *msg = NULL, why_open[PATH_MAX + 256];
		int r = 0;

		if (d->conn)
			continue;
		if (db_open(d, why_open, sizeof(why_open)) < 0) {
			r = -EIO;
			if (!rc)
				snprintf(why, len, "%s cannot be opened after the restore",
					 d->path);
			say("%s", why_open);
		} else if (check) {
			sqlite3_stmt *st = NULL;

			if (sqlite3_prepare_v2(d->conn, "PRAGMA quick_check", -1, &st, NULL) !=
			    SQLITE_OK || sqlite3_step(st) != SQLITE_ROW ||
			    strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
				r = -EIO;
				if (asprintf(&msg, "%s", st && sqlite3_column_text(st, 0) ?
					     (const char *)sqlite3_column_text(st, 0) :
					     sqlite3_errmsg(d->conn)) < 0)
					msg = NULL;
				if (!rc)
					snprintf(why, len, "the restored %s fails quick_check: %s",
						 d->path, msg ? msg : "?");
			}
			sqlite3_finalize(st);
		}
		say("%s: %s after the restore", d->path, r < 0 ? "NOT usable" : "opened again");
		free(msg);
		rc = rc ? rc : r;
	}
	return rc;
}

static int on_post_restore(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	char why[1024];

	if (reopen_all(data, true, why, sizeof(why)) == 0)
		return 0;
	vss_writer_set_failure(w, VSS_WF_RECOVERY_FAILED, "%s", why);
	return -EIO;
}

/* Abort: a backup's lets go of the locks, a restore's opens again what it
 * closed. */
static int on_abort(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct vss_writer_restore_info ri;
	char why[1024];

	unlock_all(data);
	if (vss_writer_restore_info(w, &ri) == 0 && reopen_all(data, false, why, sizeof(why)) < 0)
		say("%s", why);
	return 0;
}

/* Logical path of a database: its directory without the leading '/'. */
static int add_component(struct vss_wmd *wmd, const char *path, struct vss_error *err)
{
	char dir[PATH_MAX], lp[PATH_MAX], spec[NAME_MAX + 16];
	const char *base = strrchr(path, '/') + 1;
	int rc;

	snprintf(dir, sizeof(dir), "%.*s", (int)(base - path - 1), path);
	if (!dir[0])
		snprintf(dir, sizeof(dir), "/");
	snprintf(lp, sizeof(lp), "%s", dir + 1);
	if ((rc = vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_DATABASE, .logical_path = lp, .name = base,
		.caption = "SQLite database", .selectable = true,
		.selectable_for_restore = true }, err)) < 0)
		return rc;
	if ((rc = vss_wmd_add_file_set(wmd, lp, base, &(struct vss_wmd_file_set){
		.kind = VSS_FSK_DATABASE, .path = dir, .file_spec = base,
		.backup_type_mask = VSS_FSBT_DEFAULT }, err)) < 0)
		return rc;
	snprintf(spec, sizeof(spec), "%s-wal", base);
	if ((rc = vss_wmd_add_file_set(wmd, lp, base, &(struct vss_wmd_file_set){
		.kind = VSS_FSK_LOG, .path = dir, .file_spec = spec,
		.backup_type_mask = VSS_FSBT_DEFAULT }, err)) < 0)
		return rc;
	snprintf(spec, sizeof(spec), "%s-journal", base);
	return vss_wmd_add_file_set(wmd, lp, base, &(struct vss_wmd_file_set){
		.kind = VSS_FSK_LOG, .path = dir, .file_spec = spec,
		.backup_type_mask = VSS_FSBT_DEFAULT }, err);
}

/* @d's component: logical path its directory without the leading '/',
 * name its file's (as add_component names it). */
static void db_names(struct db *d)
{
	const char *base = strrchr(d->path, '/') + 1;

	snprintf(d->lp, sizeof(d->lp), "%.*s",
		 base - d->path > 1 ? (int)(base - d->path - 2) : 0, d->path + 1);
	d->name = base;
}

/* The writer's metadata: a component per database, at its path now. */
static int metadata(const struct dbs *s, struct vss_wmd **out, struct vss_error *err)
{
	struct vss_wmd *wmd;
	int rc = vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = "sqlite", .class_id = SQLITE_CLASS_ID, .instance_id = s->instance,
		.usage = VSS_UT_USER_DATA, .source = VSS_ST_TRANSACTED_DB }, &wmd, err);

	*out = NULL;
	if (rc < 0)
		return rc;
	/* It takes part in every restore of its databases (PreRestore closes
	 * them, PostRestore opens them again). */
	rc = vss_wmd_set_restore_method(wmd, &(struct vss_wmd_restore_method){
		.method = VSS_RME_RESTORE_IF_CAN_REPLACE,
		.writer_restore = VSS_WRE_ALWAYS }, err);
	for (int i = 0; rc == 0 && i < s->n; i++)
		rc = add_component(wmd, s->db[i].path, err);
	if (rc < 0) {
		vss_wmd_free(wmd);
		return rc;
	}
	*out = wmd;
	return 0;
}

/* Identify: each database resolved again; one that moved is opened where it
 * is now and the metadata given again. */
static int on_identify(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct dbs *s = data;
	struct vss_error err = { 0 };
	struct vss_wmd *wmd;
	bool moved = false;
	int rc = 0;

	for (int i = 0; rc == 0 && i < s->n; i++) {
		struct db *d = &s->db[i];
		char now[PATH_MAX], why[PATH_MAX + 256];

		if (!realpath(d->given, now)) {
			rc = -errno;
			vss_writer_set_failure(w, VSS_WF_NONRETRYABLE, "database %s: %s", d->given,
					       strerror(errno));
			break;
		}
		if (strcmp(now, d->path) == 0 || !d->conn || d->locked)
			continue;
		say("%s is %s now: opening it there", d->given, now);
		sqlite3_close(d->ckpt);
		sqlite3_close(d->conn);
		d->conn = d->ckpt = NULL;
		snprintf(d->path, sizeof(d->path), "%s", now);
		db_names(d);
		moved = true;
		if ((rc = db_open(d, why, sizeof(why))) < 0)
			vss_writer_set_failure(w, VSS_WF_NONRETRYABLE, "%s", why);
	}
	if (rc < 0 || !moved)
		return rc;
	if ((rc = metadata(s, &wmd, &err)) == 0) {
		rc = vss_writer_set_metadata(w, wmd, &err);
		vss_wmd_free(wmd);
	}
	if (rc < 0)
		vss_writer_set_failure(w, VSS_WF_NONRETRYABLE, "%s", err.msg);
	return rc;
}

static void on_connection(struct vss_writer *w, bool up, const char *why, void *data)
{
	(void)w;
	(void)data;
	if (up)
		say("%s", why);     /* "registered", "registered again" */
	else
		say("%s; registering when vssd is up", why);
}

static int usage(FILE *f)
{
	fputs("usage: vss-writer-sqlite [--run-dir DIR] [--timeout SECONDS] [--once] "
	      "DATABASE...\n"
	      "A vss writer for SQLite databases: checkpoints each DATABASE and holds its\n"
	      "write lock from a shadow copy set's freeze to its thaw.\n"
	      "  --run-dir DIR      vssd's run directory (default $VSS_RUN_DIR or /run/vss)\n"
	      "  --timeout SECONDS  the freeze-to-thaw window it allows, 1 to 3600\n"
	      "                     (default 60)\n"
	      "  --once             exit when vssd goes away (default: register again\n"
	      "                     when it is back)\n"
	      "  -h, --help         print this and exit\n"
	      "Stops on SIGTERM or SIGINT.  Exit codes: 0 stopped, 1 failed (or, with\n"
	      "--once, vssd went away), 2 usage error.  More: man 8 vss-writer-sqlite.\n", f);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct vss_writer_handlers handlers = {
		.size = sizeof(struct vss_writer_handlers),
		.identify = on_identify, .prepare_snapshot = on_prepare_snapshot, .freeze = on_freeze,
		.thaw = on_thaw, .abort = on_abort,
		.pre_restore = on_pre_restore, .post_restore = on_post_restore,
	};
	static struct dbs s;
	const char *run_dir = NULL;
	bool once = false;
	unsigned int timeout_s = 60;
	struct vss_error err = { 0 };
	struct vss_writer *w;
	struct vss_wmd *wmd;
	uuid_t u;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--run-dir") == 0) {
			if (++i >= argc)
				return usage(stderr);
			run_dir = argv[i];
			continue;
		}
		if (strcmp(argv[i], "--once") == 0) {
			once = true;
			continue;
		}
		if (strcmp(argv[i], "--timeout") == 0) {
			char *end;
			long v;

			if (++i >= argc)
				return usage(stderr);
			v = strtol(argv[i], &end, 10);
			if (*end || v < 1 || v > 3600) {
				say("--timeout takes 1 to 3600 seconds");
				return 2;
			}
			timeout_s = (unsigned int)v;
			continue;
		}
		if (argv[i][0] == '-')
			return usage(stderr);
		if (s.n >= MAX_DBS) {
			say("at most %d databases", MAX_DBS);
			return 2;
		}
		snprintf(s.db[s.n].given, sizeof(s.db[s.n].given), "%s", argv[i]);
		if (!realpath(argv[i], s.db[s.n].path)) {
			say("%s: %s", argv[i], strerror(errno));
			return 1;
		}
		s.n++;
	}
	if (s.n == 0)
		return usage(stderr);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < s.n; i++) {
		char why[PATH_MAX + 256];

		if (db_open(&s.db[i], why, sizeof(why)) < 0) {
			say("%s", why);
			return 1;
		}
		db_names(&s.db[i]);
	}
	uuid_generate_random(u);
	uuid_unparse_lower(u, s.instance);
	rc = metadata(&s, &wmd, &err);
	if (rc == 0)
		rc = vss_writer_open(&(struct vss_writer_options){
			.size = sizeof(struct vss_writer_options), .run_dir = run_dir,
			.timeout_ms = timeout_s * 1000u,
			.reconnect = !once, .on_connection = on_connection }, wmd,
				     &handlers, &s, &w, &err);
	vss_wmd_free(wmd);
	if (rc < 0) {
		say("%s", err.msg);
		return 1;
	}
	say("%s (%d database%s)", vss_writer_fd(w) >= 0 ? "registered" : "started, vssd not up yet",
	    s.n, s.n == 1 ? "" : "s");
	rc = vss_writer_run(w, &stop, &err);
	unlock_all(&s);
	vss_writer_close(w);
	for (int i = 0; i < s.n; i++) {
		sqlite3_close(s.db[i].ckpt);
		sqlite3_close(s.db[i].conn);
	}
	if (rc < 0) {
		say("%s", err.msg);
		return 1;
	}
	return 0;
}
