/*
 * vss/writer.h - writing a VSS writer: a program that keeps its data
 * consistent while vssd takes shadow copies (IVssWriter, in C).
 *
 * A writer registers with vssd with its writer metadata document
 * (vss/writer_doc.h), then answers the events of every backup, in order:
 *
 *   identify          the requester gathers metadata
 *   prepare_backup    the backup components document for this writer: read
 *                     previous backup stamps, set a new one, add partial and
 *                     differenced files (ev->components, changed in place)
 *   prepare_snapshot  get ready to freeze (slow work belongs here)
 *   freeze            stop writing to disk; the window runs until thaw
 *   thaw              write again
 *   post_snapshot     the shadows exist (ev->set_id); in a backup,
 *                     ev->components again, which may be changed as at
 *                     prepare_backup: vss_bcd_set_backup_metadata() keeps
 *                     what a restore of this backup needs (the requester
 *                     stores it with the backup; pre_restore and
 *                     post_restore get it back in ev->components)
 *   backup_complete   the requester read the shadows (ev->components has
 *                     backup_succeeded per component)
 *   abort             the backup or set was abandoned: undo freeze, forget it
 *   backup_shutdown   the requester's backup is over, completed or aborted
 *                     (OnBackupShutdown): release what it held; a failure is
 *                     only recorded in the writer's state
 *
 * and those of every restore of a backup that holds its components (when
 * its metadata says writer_restore "always" or "if_replace_fails"):
 *
 *   identify          the requester gathers metadata
 *   pre_restore       the files are about to be restored: what, from which
 *                     backup and where (vss_writer_restore_*()); a failure
 *                     stops the restore before anything is written
 *   post_restore      the files were restored, or not: each component's
 *                     status; bring the data back into use
 *   abort             the restore was abandoned after pre_restore (the
 *                     requester went away): vss_writer_restore_info() says it is
 *                     a restore's, whose files may be partly written
 *
 * A handler returns 0 for success or a negative errno for failure; it may
 * first call vss_writer_set_failure() to say what kind of failure it is
 * (default: nonretryable) and why.  A failure at prepare_snapshot, freeze or
 * thaw aborts the set.  The service enforces the deadlines: a handler that
 * takes longer than its deadline (the writer's timeout_ms) leaves it failed with
 * a timeout, and a freeze held past the window aborts the set.  A missing
 * handler means success.
 *
 * Threads: the handlers run on the thread that calls vss_writer_dispatch()
 * or vss_writer_run(), one at a time.
 *
 * Losing vssd.  A writer is never left holding a freeze for a daemon that
 * is gone or stuck:
 *   - when the connection closes while a set or backup is in flight (from
 *     prepare_backup or prepare_snapshot until backup_complete or abort,
 *     or post_snapshot for a set outside a backup) the library calls the
 *     abort handler itself, with reason "vssd went away: ...";
 *   - vss_writer_run() gives up a freeze that no thaw or abort ended
 *     within its window (ev->timeout_ms) and VSS_WRITER_THAW_GRACE_MS more:
 *     it calls abort (reason "no thaw within ..."), answers a late thaw with
 *     a timeout failure (which aborts the set) and a late abort without
 *     calling the handler again.
 * With the reconnect option, vss_writer_run() then connects and registers
 * again (after 0.1 s, doubling to 5 s between tries) until it succeeds or
 * is stopped: a writer outlives a restart of vssd.  With it, a writer may
 * also start before vssd: vss_writer_open() succeeds when vssd cannot be
 * reached (no socket, or nobody listening), vss_writer_fd() is -1, and
 * vss_writer_run() registers once vssd is up (on_connection: down, then
 * up with "registered").  A refusal (bad metadata, the same instance
 * twice) still fails vss_writer_open().
 *
 * Example:
 *
 *	static int on_freeze(struct vss_writer *w, const struct vss_writer_event *ev,
 *			     void *data) { return flush_and_lock(data); }
 *	static int on_thaw(struct vss_writer *w, const struct vss_writer_event *ev,
 *			   void *data) { return unlock(data); }
 *	...
 *	struct vss_writer_handlers h = { .size = sizeof(h), .freeze = on_freeze,
 *					 .thaw = on_thaw, .abort = on_thaw };
 *	struct vss_writer_options o = VSS_WRITER_OPTIONS_INIT;
 *	vss_writer_open(&o, wmd, &h, state, &w, &err);
 *	vss_writer_run(w, &stop, &err);    // until the daemon goes or stop is set
 *	vss_writer_close(w);
 */
#ifndef VSS_WRITER_H
#define VSS_WRITER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <vss/error.h>
#include <vss/writer_doc.h>
#include <vss/writer_state.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct vss_writer;

enum vss_writer_event_type {
	VSS_WE_IDENTIFY = 1,
	VSS_WE_PREPARE_BACKUP,
	VSS_WE_PREPARE_SNAPSHOT,
	VSS_WE_FREEZE,
	VSS_WE_THAW,
	VSS_WE_POST_SNAPSHOT,
	VSS_WE_BACKUP_COMPLETE,
	VSS_WE_ABORT,
	VSS_WE_BACKUP_SHUTDOWN,
	VSS_WE_PRE_RESTORE,
	VSS_WE_POST_RESTORE,
};

struct vss_writer_event {
	enum vss_writer_event_type type;
	const char *name;              /* "freeze", ... */
	const char *set_id;            /* thaw, post_snapshot, backup_complete, abort,
					* backup_shutdown (once a set was taken); else NULL */
	enum vss_backup_type backup_type; /* 0 when the set is not part of a backup */
	/* prepare_backup, post_snapshot (in a backup) and backup_complete: this
	 * writer's part of the backup components document (NULL if none).
	 * Changes made in prepare_backup and post_snapshot (stamps, partial
	 * and differenced files, backup metadata) go back to the requester.
	 * pre_restore and post_restore: its part of the document the backup
	 * being restored kept (stamps and all; read only). */
	struct vss_bcd *components;
	unsigned int timeout_ms;       /* freeze, thaw: the freeze-to-thaw window; else 0 */
	const char *reason;            /* abort: why; else NULL */
};

typedef int (*vss_writer_handler)(struct vss_writer *w,
				  const struct vss_writer_event *ev, void *data);

/* The handlers, each may be NULL.  Handlers for more events may be added
 * at the end: @size tells the library which the caller has. */
struct vss_writer_handlers {
	size_t size;                   /* sizeof(struct vss_writer_handlers) */
	vss_writer_handler identify;
	vss_writer_handler prepare_backup;
	vss_writer_handler prepare_snapshot;
	vss_writer_handler freeze;
	vss_writer_handler thaw;
	vss_writer_handler post_snapshot;
	vss_writer_handler backup_complete;
	vss_writer_handler abort;
	vss_writer_handler backup_shutdown;     /* added later */
	vss_writer_handler pre_restore;
	vss_writer_handler post_restore;
};

/* A frozen writer waits this long past its freeze window for a thaw. */
#define VSS_WRITER_THAW_GRACE_MS 1000u

/* Start from VSS_WRITER_OPTIONS_INIT: members may be added at the end, and
 * @size tells the library which the caller has. */
struct vss_writer_options {
	size_t size;                   /* sizeof(struct vss_writer_options) */
	const char *run_dir;           /* NULL: $VSS_RUN_DIR or /run/vss */
	unsigned int timeout_ms;       /* per event and freeze window; 0: 60000 */
	/* vss_writer_run() registers again when vssd goes away. */
	bool reconnect;
	/* Optional: told when vssd goes away (@connected false, @why says
	 * what happened; again when a try to register again fails for a new
	 * reason) and when the writer is registered again (@connected true).
	 * Called on the thread of vss_writer_run() with the handlers' @data. */
	void (*on_connection)(struct vss_writer *w, bool connected, const char *why,
			      void *data);
};

#define VSS_WRITER_OPTIONS_INIT { .size = sizeof(struct vss_writer_options) }

/*
 * Connects to vssd and registers @wmd (copied; the caller keeps it).  @opt
 * NULL means the defaults, @h NULL no handlers; both are copied, @data is
 * borrowed for the writer's life.  -EINVAL, -EFBIG, -EEXIST with the
 * daemon's reason when it refuses the metadata; -EINVAL if the size of
 * @opt or @h is not set, -E2BIG if a member this library does not know is.
 */
int vss_writer_open(const struct vss_writer_options *opt, const struct vss_wmd *wmd,
		    const struct vss_writer_handlers *h, void *data,
		    struct vss_writer **out, struct vss_error *err);
void vss_writer_close(struct vss_writer *w);

/* The socket, to poll for readability (an event is waiting). */
int vss_writer_fd(const struct vss_writer *w);
/* Reads one event, runs its handler, answers.  0, or -ECONNRESET when the
 * daemon closed the connection (the abort handler has run if a set was in
 * flight).  A caller that polls by itself does without the freeze watchdog
 * and reconnecting: those are vss_writer_run()'s. */
int vss_writer_dispatch(struct vss_writer *w, struct vss_error *err);
/* Dispatches until *@stop is set (0), or the daemon goes away
 * (-ECONNRESET) unless the writer reconnects. */
int vss_writer_run(struct vss_writer *w, volatile sig_atomic_t *stop,
		   struct vss_error *err);

/*
 * Replaces the writer's metadata document with @wmd (copied; the same class
 * and instance IDs, else -EINVAL): vssd gets it with the reply to the next
 * identify, so a handler of identify that calls this refreshes what the
 * requester gathers then (a writer's files or components that changed
 * since it registered); it is also what the writer registers with if it
 * connects again.  From the writer's handlers or the thread that runs it.
 */
int vss_writer_set_metadata(struct vss_writer *w, const struct vss_wmd *wmd,
			    struct vss_error *err);

/* Called by a handler before it returns failure. */
void vss_writer_set_failure(struct vss_writer *w, enum vss_writer_failure kind,
			    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * The restore of the event being handled (called from a handler): 0 for
 * pre_restore, post_restore and an abort that ends a restore, -ENOENT for
 * the events of a backup.  What these fill is borrowed from the event and
 * valid while its handler runs.
 */
struct vss_writer_restore_info {
	const char *backup_id;         /* the backup restored (its repository's ID) */
	const char *to;                /* NULL: to the live paths; else every file goes
					* below this directory (vss restore --to) */
	size_t component_count;        /* this writer's components in the restore */
};
int vss_writer_restore_info(const struct vss_writer *w,
			    struct vss_writer_restore_info *out);

/* Component @i of the restore (-ERANGE past the last). */
struct vss_writer_restore_component {
	const char *logical_path;      /* "" at the top level */
	const char *name;
	enum vss_restore_method method; /* of the metadata the backup kept */
	bool original_location;        /* every file goes back to its live path */
	size_t location_count;         /* vss_writer_restore_location() */
	enum vss_file_restore_status status; /* post_restore: what was done;
					      * VSS_RS_UNDEFINED before */
	unsigned long long files;      /* post_restore: files written (or staged) */
	const char *message;           /* post_restore: why not all of them, or NULL */
};
int vss_writer_restore_component(const struct vss_writer *w, size_t i,
				 struct vss_writer_restore_component *out);
/* Where file set @j of component @i goes: its live place (path, file_spec,
 * recursive) and the directory its files are written to instead of path
 * (destination; equal to path when they go back where they were). */
int vss_writer_restore_location(const struct vss_writer *w, size_t i, size_t j,
				struct vss_wmd_file_spec *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
