/*
 * vss/requester.h - driving one backup through vssd (IVssBackupComponents,
 * in C).  The sequence, each call one step:
 *
 *   vss_requester_open                 InitializeForBackup (one connection)
 *   vss_requester_set_backup_state     SetBackupState: type, partial files
 *   vss_requester_exclude_writer       (optional, before gathering)
 *   vss_requester_gather_writer_metadata  GatherWriterMetadata: takes the
 *                                      backup slot (waits while another
 *                                      backup runs), Identify to writers
 *   vss_requester_components + vss_bcd_add_component ...  select components,
 *       or vss_requester_select_component / _select_all_components; set
 *       previous backup stamps (vss_repo_plan, vss/backup.h, does it for a
 *       backup into a repository)
 *   vss_requester_start_snapshot_set   StartSnapshotSet
 *   vss_requester_add_to_snapshot_set  AddToSnapshotSet (volume name or path)
 *   vss_requester_prepare_for_backup   PrepareForBackup: the writers fill
 *                                      the components document (stamps,
 *                                      partial and differenced files)
 *   vss_requester_do_snapshot_set      DoSnapshotSet: prepare-for-snapshot,
 *                                      freeze, shadows, thaw, post-snapshot
 *   vss_requester_expose + vss_requester_translate_path: read the files
 *                                      from the shadows (path redirection)
 *   vss_bcd_set_backup_succeeded per component, then
 *   vss_requester_backup_complete      BackupComplete
 *   (or vss_requester_abort at any step: AbortBackup)
 *   vss_requester_close                unexposes; deletes the set unless
 *                                      persistent or kept
 *
 * If the process dies or closes the connection before BackupComplete, vssd
 * aborts the backup: writers get Abort, the set is deleted.  It does the
 * same if it does not hear from the requester within the backup's lease
 * (a stopped or hung process), or when the backup has lasted its limit
 * (vss_requester_set_hold; doc/writers.md "Holds"): the next call says
 * why.  The library keeps the lease by itself: from gathering until the
 * backup ends, a thread of its own asks vssd for the backup's status every
 * third of the lease, so a program may read its shadows for hours without
 * calling anything.
 *
 * Errors as everywhere in libvss: 0 or a negative errno, and one readable
 * line in the optional struct vss_error.  After every step the writers'
 * states are available (vss_requester_writer_status).  A requester handle is
 * used by one thread at a time (the library's own thread shares only the
 * connection, under a lock of its own); everything it returns is owned by
 * it and valid until the next call that changes it, or vss_requester_close.
 *
 * Example (examples/requester_demo.c, run by the system tests):
 *
 *	vss_requester_open(NULL, &r, &err);
 *	vss_requester_set_backup_state(r, VSS_BT_FULL, false, &err);
 *	vss_requester_gather_writer_metadata(r, &err);
 *	vss_requester_select_all_components(r, &err);
 *	vss_requester_start_snapshot_set(r, &err);
 *	vss_requester_add_to_snapshot_set(r, "/srv/data", &err);
 *	vss_requester_prepare_for_backup(r, &err);
 *	vss_requester_do_snapshot_set(r, &err);
 *	vss_requester_expose(r, 0, "/run/backup/1", &err);
 *	vss_requester_translate_path(r, "/srv/data/db.sqlite", path, sizeof(path), &err);
 *	... copy path ...
 *	vss_requester_backup_complete(r, true, &err);
 *	vss_requester_close(r);
 */
#ifndef VSS_REQUESTER_H
#define VSS_REQUESTER_H

#include <stdbool.h>
#include <stddef.h>

#include <vss/error.h>
#include <vss/writer_doc.h>
#include <vss/writer_state.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct vss_requester;

/* One writer as the service sees it (vss list writers). */
struct vss_requester_writer {
	const char *name;
	const char *class_id;
	const char *instance_id;
	enum vss_writer_state state;
	const char *state_name;    /* "stable", "failed_at_freeze", ... */
	enum vss_writer_failure failure; /* of the last failure; VSS_WF_NONE if none */
	const char *error_kind;    /* its name: "" or retryable, nonretryable, timeout, ... */
	const char *last_error;    /* "" or one line */
};

struct vss_requester_shadow {
	const char *id;
	const char *target;        /* as added */
	const char *volume;
	const char *device;        /* the read-only shadow device */
	const char *exposed;       /* where its filesystem is mounted, or NULL */
	const char *mount;         /* the live path its shadow's root stands for: the
				    * volume's mount point, a btrfs subvolume's root;
				    * NULL for a raw volume and a live member */
	const char *provider;      /* "vss-cow", "btrfs", "live" */
	const char *target_path;   /* btrfs, live: the target inside the shadow; else NULL */
	bool live;                 /* read live: no shadow was made (allow live) */
};

/* @run_dir NULL: $VSS_RUN_DIR or /run/vss. */
int vss_requester_open(const char *run_dir, struct vss_requester **out,
		       struct vss_error *err);
/* Unexposes what it exposed; aborts a backup not completed; deletes the set
 * unless it is persistent or vss_requester_keep_set() was called. */
void vss_requester_close(struct vss_requester *r);

int vss_requester_set_backup_state(struct vss_requester *r, enum vss_backup_type type,
				   bool partial_file_support, struct vss_error *err);
/* Writers by name, class ID or instance ID. */
int vss_requester_exclude_writer(struct vss_requester *r, const char *writer,
				 struct vss_error *err);
int vss_requester_require_writer(struct vss_requester *r, const char *writer,
				 struct vss_error *err);
/* The freeze-to-thaw window and per-event deadline (default 60000 ms), and
 * how long to wait for another backup to finish (default 60000 ms). */
void vss_requester_set_timeouts(struct vss_requester *r, unsigned int window_ms,
				unsigned int wait_ms);
/* The backup's hold (before gathering): vssd aborts it if it hears nothing
 * from this requester for @lease_ms (the library renews it by itself every
 * third of it), or once it has lasted @hold_ms.  0: vssd's defaults
 * (vssd --hold-lease, --hold-max, which also bounds both). */
void vss_requester_set_hold(struct vss_requester *r, unsigned int lease_ms,
			    unsigned long long hold_ms);
void vss_requester_set_persistent(struct vss_requester *r, bool persistent);
/* Take the set without writers (no events; a crash-consistent set). */
void vss_requester_set_no_writers(struct vss_requester *r, bool no_writers);
/* A target no provider can shadow is read live instead of refused. */
void vss_requester_set_allow_live(struct vss_requester *r, bool allow_live);
/* Force a provider by name (copied; NULL: the service chooses). */
int vss_requester_set_provider(struct vss_requester *r, const char *provider,
			       struct vss_error *err);

int vss_requester_gather_writer_metadata(struct vss_requester *r, struct vss_error *err);
size_t vss_requester_writer_count(const struct vss_requester *r);
/* The writer's metadata document (NULL if @i is out of range). */
const struct vss_wmd *vss_requester_writer_metadata(const struct vss_requester *r,
						    size_t i);
int vss_requester_writer_status(const struct vss_requester *r, size_t i,
				struct vss_requester_writer *out);

/* The backup components document the requester fills before
 * PrepareForBackup and reads after it (NULL before gathering). */
struct vss_bcd *vss_requester_components(struct vss_requester *r);
int vss_requester_select_all_components(struct vss_requester *r, struct vss_error *err);

/* ---- writers' components in a backup (vss/backup.h has the rest) ---- */

/*
 * Selects components of writer @writer (by name, class ID or instance ID;
 * every instance that matches): the one whose logical path and name,
 * "LOGICAL/PATH/NAME", is @path, and every component below it (its
 * component set); with @path NULL or "", all of the writer's.  With each
 * come the components it depends on, and the writer's non-selectable
 * components that no selectable one holds (the writer needs them whenever
 * it takes part).  -ENOENT naming what is not there.
 */
int vss_requester_select_component(struct vss_requester *r, const char *writer,
				   const char *path, struct vss_error *err);
/* Adds to the set the volume of each of @paths whose filesystem no target
 * added so far is on (the service refuses a volume twice): the set for a
 * backup of the components' files (vss_backup_component_paths). */
int vss_requester_add_paths_to_snapshot_set(struct vss_requester *r,
					    const char *const *paths, size_t n,
					    struct vss_error *err);
/*
 * Before prepare_for_backup, for a requester that keeps no repository of
 * its own (vss exec --components): each selected component's previous
 * backup stamp from @previous, the document a previous backup of it
 * completed with (same writer class, logical path and name).  A stamp is
 * given only to a timestamped writer whose schema has this backup's type,
 * for a component @previous backed up successfully, and never across a
 * mix the chain cannot express: a differential after an incremental, or
 * for a writer that declares them exclusive, an incremental after a
 * differential; a differential after a differential gets the stamp of
 * their full.  A copy's document gives none.
 */
int vss_requester_set_previous_stamps(struct vss_requester *r, const struct vss_bcd *previous,
				      struct vss_error *err);

int vss_requester_start_snapshot_set(struct vss_requester *r, struct vss_error *err);
int vss_requester_add_to_snapshot_set(struct vss_requester *r, const char *target,
				      struct vss_error *err);
int vss_requester_prepare_for_backup(struct vss_requester *r, struct vss_error *err);
int vss_requester_do_snapshot_set(struct vss_requester *r, struct vss_error *err);

const char *vss_requester_set_id(const struct vss_requester *r);
size_t vss_requester_shadow_count(const struct vss_requester *r);
int vss_requester_shadow(const struct vss_requester *r, size_t i,
			 struct vss_requester_shadow *out);
/* Mounts shadow @i's filesystem read-only, nosuid, nodev, noexec at @dir
 * (created if missing; for a caller other than root it must be the
 * caller's own), or with @dir NULL where vssd picks: RUN/exec/SET/ID, in a
 * directory of the caller's with mode 0700, removed when it is unexposed.
 * vss_requester_shadow() then says where (.exposed). */
int vss_requester_expose(struct vss_requester *r, size_t i, const char *dir,
			 struct vss_error *err);
/* Path redirection: the same file as @live_path (absolute), inside the
 * exposed shadow of its volume (a live member: the path itself).  -ENOENT if
 * no shadow of the set covers it, -ENXIO if that shadow is not exposed. */
int vss_requester_translate_path(const struct vss_requester *r, const char *live_path,
				 char *out, size_t len, struct vss_error *err);

/*
 * Runs @argv (PATH searched) while the set is in place: in a mount namespace
 * of its own, every target that has a live path shows the same path inside
 * its exposed shadow, bind-mounted read-only (a target given as a volume
 * name: the volume's mount point).  Backup programs then record the live
 * paths while reading the instant of the set.  Expose the shadows first
 * (-ENXIO otherwise).  Live members of the set stay live; a raw volume has no
 * path (read its shadow device); a target of "/" is refused (-EINVAL).
 * Inside, the shadows' filesystems are read-only, so point a backup
 * program's cache outside them.  Processes the command leaves running are
 * killed when it exits (its orphans come to a subreaper): they would hold
 * the shadows.  Needs root (CAP_SYS_ADMIN).  On success *@status
 * is the command's exit status as a shell gives it (128 + n for signal n,
 * 127 if it could not be run); an error means the command did not run.
 * While the command runs the caller ignores SIGINT and SIGTERM (as a shell
 * does with a foreground job: ^C ends the command, the caller cleans up);
 * the command gets the dispositions the caller had.
 */
int vss_requester_run_in_place(struct vss_requester *r, char *const argv[], int *status,
			       struct vss_error *err);

/* BackupComplete.  @succeeded marks every selected component unless the
 * requester set backup_succeeded per component itself (then pass true and
 * leave those it cleared). */
int vss_requester_backup_complete(struct vss_requester *r, bool succeeded,
				  struct vss_error *err);
int vss_requester_abort(struct vss_requester *r, struct vss_error *err);
/* Keep the set at close (for a persistent set nothing needs keeping). */
void vss_requester_keep_set(struct vss_requester *r);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
