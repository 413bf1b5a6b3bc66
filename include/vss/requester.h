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
 *                                      (the writers may change the document
 *                                      again: backup metadata)
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

#include <vss/backup.h>
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
	const char *host;          /* another host's member (a target HOST:TARGET,
				    * doc/peers.md): that host, where @device is;
				    * NULL for this host's */
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
 * PrepareForBackup and reads after it and after DoSnapshotSet, which
 * replaces it with the writers' last word (NULL before gathering): a
 * pointer taken before either is stale after it. */
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
/* Why shadow @i is read live although a provider was picked for its target
 * (that provider failed at prepare or commit and live reads were allowed:
 * vss_requester_set_allow_live), one line naming the target, the provider
 * and its error; NULL if it was not.  Valid until vss_requester_close. */
const char *vss_requester_shadow_fallback(const struct vss_requester *r, size_t i);
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
/* Whether the backup is still in progress on vssd (one backup.status, which
 * also renews its lease): 0, or -ECANCELED and why vssd ended it (its lease
 * or limit ran out, root aborted it, another host of the set was lost while
 * it held its shadows); vss_requester_abort then only cleans up here. */
int vss_requester_backup_status(struct vss_requester *r, struct vss_error *err);
/* Keep the set at close (for a persistent set nothing needs keeping). */
void vss_requester_keep_set(struct vss_requester *r);

/* ------------------------------------------------------------------------
 * Restores, with the writers of the backup (InitializeForRestore,
 * PreRestore, PostRestore).  A backup keeps its components document and
 * each writer's metadata as taken (doc/backup-format.md); a restore
 * involves the writers whose components it restores, whose metadata asks
 * for it (writer_restore "always" or "if_replace_fails") and that are
 * registered now (the same instance, or one of the same class with those
 * components: a writer that started again).  The sequence:
 *
 *   restore.begin     the backup slot, the writers matched, identify
 *   pre_restore       each writer is told what is restored, from which
 *                     backup and where; one failing stops the restore
 *                     with its message before anything is written
 *   services stopped  stop_restore_start (systemctl stop UNIT)
 *   the files         by each component's restore method (below), every
 *                     byte checked before it replaces anything
 *   services started  stop_restore_start; restore_stop_start restarts it
 *   post_restore      each writer is told each component's status; a
 *                     failure (recovery_failed, ...) is reported
 *
 * Restore methods, per component, from the metadata the backup kept:
 * restore_if_not_there (none of its files is written if one is there),
 * restore_if_can_replace (the default), stop_restore_start and
 * restore_stop_start (the service named, through systemctl: only when the
 * files go back to their live paths), restore_to_alternate_location (its
 * files go to the writer's alternate location mappings), restore_at_reboot
 * (written and checked beside their places now, put in place at the next
 * boot by vss_requester_restore_at_boot), restore_at_reboot_if_cannot_replace
 * (likewise, for the files that cannot replace what is there now), custom
 * (nothing written: the writer's user procedure is reported).  With .to
 * every file goes below that directory, the alternate location mappings
 * applying within it, and nothing is stopped or staged.  A backup without
 * components restores as vss_repo_restore does, without vssd.
 * ------------------------------------------------------------------------ */

/* One file: what was done with it. */
struct vss_requester_restored_file {
	const char *live;               /* its path when it was backed up */
	const char *path;               /* where it was written (or waits for the next
					 * boot), or NULL if it was not */
	enum vss_file_restore_status status;   /* ALL written, NONE left as it was,
						* STAGED, FAILED */
	const char *why;                /* NONE, FAILED: why; else NULL */
};

/* One component of the backup the restore selected, once it is over. */
struct vss_requester_restored_component {
	const char *writer;             /* the writer's name, as the backup recorded it */
	const char *logical_path;       /* "" at the top level */
	const char *name;
	enum vss_restore_method method;
	enum vss_file_restore_status status;
	unsigned long long files;       /* written or staged */
	const char *taken_by;           /* the instance ID of the writer that took part,
					 * or NULL (none did: message says why) */
	const char *message;            /* why not all, a writer's failure, or NULL */
};

/* Start from VSS_REQUESTER_RESTORE_PARAMS_INIT: members may be added at the
 * end, and @size tells the library which the caller has. */
struct vss_requester_restore_params {
	size_t size;                    /* sizeof(struct vss_requester_restore_params) */
	const char *run_dir;            /* vssd's; NULL: $VSS_RUN_DIR or /run/vss */
	const char *to;                 /* as struct vss_restore_params */
	const char *const *paths;
	size_t npaths;
	/* Only these components (and their files): "[WRITER:]PATH", PATH a
	 * component's logical path and name ("srv/app/app.db"), or a logical
	 * path, for every component below it; WRITER a name, class or
	 * instance ID.  NULL: everything the backup holds. */
	const char *const *components;
	size_t ncomponents;
	bool no_writers;                /* restore the files alone: no vssd, no events */
	unsigned int timeout_ms;        /* each writer event's deadline; 0: 60000 */
	/* Where restores at reboot wait: NULL: $VSS_STATE_DIR or /var/lib/vss. */
	const char *state_dir;
	vss_backup_progress_fn progress;        /* may be NULL */
	void *progress_arg;
	/* Told of each file written, staged, left or failed, and at the end of
	 * each component; called on the caller's thread with @arg. */
	void (*file)(void *arg, const struct vss_requester_restored_file *f);
	void (*component)(void *arg, const struct vss_requester_restored_component *c);
	void *arg;
};

#define VSS_REQUESTER_RESTORE_PARAMS_INIT \
	{ .size = sizeof(struct vss_requester_restore_params) }

struct vss_requester_restore_result {
	unsigned long long files;       /* entries restored (staged ones included) */
	unsigned long long bytes;       /* file bytes written */
	unsigned long long staged;      /* files that wait for the next boot */
	unsigned long long left;        /* files a restore method left as they were */
	size_t writers;                 /* writers that took part */
};

/*
 * Restores backup @id (NULL: the newest) of @repo with its writers.  An
 * error when a writer failed pre_restore (nothing was written), when a file
 * could not be restored (post_restore still went out), or when a writer
 * failed post_restore (the files are restored); -ENOTCONN when writers
 * take part and vssd cannot be reached (nothing was written); *@out says
 * what was done in every case.
 */
int vss_requester_restore(struct vss_repo *repo, const char *id,
			  const struct vss_requester_restore_params *p,
			  struct vss_requester_restore_result *out, struct vss_error *err);

/*
 * Puts in place what restores staged for the next boot (restore methods
 * restore_at_reboot*) under @state_dir (NULL: $VSS_STATE_DIR or
 * /var/lib/vss), in the order they were staged; run at boot by
 * vss-restore-at-boot.service (vss restore --at-boot).  @file (may be
 * NULL) is told of each; *@count (may be NULL) counts those put in place.
 * An error if any could not be (it stays beside its place).
 */
int vss_requester_restore_at_boot(const char *state_dir,
				  void (*file)(void *arg,
					       const struct vss_requester_restored_file *f),
				  void *arg, unsigned long long *count, struct vss_error *err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
