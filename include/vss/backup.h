/*
 * vss/backup.h - backups of directory trees into a repository, and their
 * restores: the file-level half of a requester's job.  A repository is a
 * directory whose format (doc/backup-format.md, lib/requester/repo.c) keeps
 * every stored file as a plain file beside a manifest of the whole tree,
 * so that a person can browse and copy a backup with ordinary tools.
 *
 * What is read is up to the caller: `vss backup create` takes a shadow copy
 * set, exposes it and hands the shadows' paths here as the sources, with
 * the live paths to record.  A backup is full, incremental (what changed
 * since the newest backup of the same sources) or differential (since
 * their newest full); every backup's manifest lists the whole tree as it
 * was, so a restore needs that one manifest and the stored files it names,
 * and a file deleted between two backups never comes back.
 *
 * Errors as everywhere in libvss: 0 or a negative errno, one readable line
 * in the optional struct vss_error.  A repository handle is used by one
 * thread at a time.  Several processes may use one repository: a backup or
 * a delete waits for the one in progress (flock), listing, verifying and
 * restoring run beside each other.
 */
#ifndef VSS_BACKUP_H
#define VSS_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vss/error.h>
#include <vss/writer_doc.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct vss_repo;

#define VSS_REPO_CREATE 0x1u    /* make the repository if the directory has none */

/* Opens the repository in @dir.  -ENOENT if there is none (and no
 * VSS_REPO_CREATE), -EMEDIUMTYPE if @dir holds something else, -EPROTO if
 * its format is newer than this library knows. */
int vss_repo_open(const char *dir, unsigned int flags, struct vss_repo **out,
		  struct vss_error *err);
void vss_repo_close(struct vss_repo *r);

/* One tree to back up: recorded as @live, read from @read (the same tree
 * in a shadow; may equal @live to read it live).  A directory or a file. */
struct vss_backup_source {
	const char *live;
	const char *read;
};

/* Called about once a second while a backup or restore runs, and once at
 * the end with @done set. */
struct vss_backup_progress {
	uint64_t files, bytes;          /* done so far */
	uint64_t total_files, total_bytes;  /* to do in all (0: not known) */
	bool done;
};
typedef void (*vss_backup_progress_fn)(void *arg, const struct vss_backup_progress *p);

struct vss_backup_plan;

struct vss_backup_params {
	size_t size;                    /* sizeof(struct vss_backup_params) */
	enum vss_backup_type type;      /* FULL, INCREMENTAL, DIFFERENTIAL, LOG (with a plan:
					 * only its log files are taken) or COPY */
	const struct vss_backup_source *sources;
	size_t nsources;
	const char *set_id;             /* the shadow copy set read, or NULL */
	uint64_t instant_ns;            /* when it was taken (CLOCK_REALTIME), or 0 */
	/* The documents of the backup as they ended, kept with it (may be
	 * NULL): the backup components document, and each writer's metadata. */
	const char *components;
	const char *const *writer_metadata;
	size_t nwriters;
	vss_backup_progress_fn progress;        /* may be NULL */
	void *progress_arg;
	/* Added later (0 or NULL: as before).  With @plan (vss_repo_plan's),
	 * each file of a selected component is handled as its writer says:
	 * @components is then the document PrepareForBackup returned and
	 * @writer_metadata the metadata of every writer taking part. */
	const struct vss_backup_plan *plan;
	/* Only the selected components' files are backed up: the sources are
	 * the directories that hold them (vss_backup_component_paths). */
	bool components_only;
	/* Added later.  Why each source (in the order of @sources) is read
	 * live instead of from a shadow (its provider failed and live reads
	 * were allowed: vss_requester_shadow_fallback), or NULL for a source
	 * read from a shadow; NULL: every one is.  Kept with the backup
	 * ("live" in backup.json), so that whoever reads it later knows. */
	const char *const *live;
};

#define VSS_BACKUP_ID_MAX 32            /* "YYYYMMDDTHHMMSS.mmmZ-xxxxxxxx" and its NUL */

struct vss_backup_info {
	char id[VSS_BACKUP_ID_MAX];
	enum vss_backup_type type;
	char base[VSS_BACKUP_ID_MAX];   /* the backup it is relative to, "" for a full */
	uint64_t created_ns;
	uint64_t instant_ns;
	uint64_t files;                 /* entries in the tree (all kinds) */
	uint64_t files_stored;          /* regular files whose bytes this backup stores */
	uint64_t bytes_stored;
	uint64_t deleted;               /* entries of the base no longer there */
	size_t nsources;
	const char *const *sources;     /* the live paths, valid until the next call */
};

/*
 * Makes one backup of @p->sources.  Incremental and differential find their
 * base among the backups of the same sources (same live paths, same order);
 * with none, the backup is made full and *@out says so.  Only a complete
 * backup ever lists: it is written under the repository's tmp/, synced,
 * then renamed into place.
 */
int vss_repo_backup(struct vss_repo *r, const struct vss_backup_params *p,
		    struct vss_backup_info *out, struct vss_error *err);

/*
 * Writers' components in a backup (doc/backup-format.md, "Components").
 * The order, with the requester API (vss/requester.h):
 *
 *   select components (vss_requester_select_component, or all of them)
 *   vss_backup_component_paths   without targets: the directories holding
 *                                the components' files, the sources
 *   vss_repo_plan                the base, each component's type, and the
 *                                previous backup stamps set in the document
 *   vss_requester_prepare_for_backup  the writers set their new stamps,
 *                                partial and differenced files
 *   vss_backup_plan_check        those files are inside the sources
 *   take and expose the set, then vss_repo_backup with .plan
 *
 * A component is backed up as the backup's type, or in full when its
 * writer's schema lacks that type, when the base does not hold it, or
 * when its writer declares incremental and differential exclusive and the
 * chain since its last full holds the other type; it is not backed up at
 * all when a file set of it is outside the sources.  Its file sets follow
 * vss_wmd_plan; a partial file is stored as its ranges over the base's bytes
 * and a differenced file with a time is changed when modified after it.
 */

/*
 * Before PrepareForBackup: the plan of a backup of @p's type and sources
 * (live paths; .read is not used yet) for the components @bcd selects
 * from the writers @wmds: its base, the type each component is backed up
 * as, and in @bcd each component's previous backup stamp (the stamp the
 * base stored for it; cleared where the component is backed up in full).
 * *@out goes into vss_backup_params.plan, and is freed by the caller.
 * -ENOMSG for a log backup when no component @bcd selects has a log file
 * set: it would hold nothing its base does not (a log backup without a
 * plan is -EINVAL in vss_repo_backup).
 */
int vss_repo_plan(struct vss_repo *r, const struct vss_backup_params *p,
		  const struct vss_wmd *const *wmds, size_t nwmds, struct vss_bcd *bcd,
		  struct vss_backup_plan **out, struct vss_error *err);
void vss_backup_plan_free(struct vss_backup_plan *plan);
/* The backup the plan is relative to, or "" (a full or copy: then
 * vss_backup_plan_type says full if an incremental, differential or log was
 * asked for with nothing to be relative to). */
const char *vss_backup_plan_base(const struct vss_backup_plan *plan);
enum vss_backup_type vss_backup_plan_type(const struct vss_backup_plan *plan);
/* The type component @ci is backed up as; 0 if it is not backed up: the
 * plan does not cover it, or a file set of it that exists is outside the
 * sources (then it is left out whole: mark it not succeeded). */
enum vss_backup_type vss_backup_plan_component_type(const struct vss_backup_plan *plan,
						    const struct vss_bcd_component_info *ci);
/* After PrepareForBackup: -EINVAL, naming the writer and the path, if a
 * partial or differenced file in @bcd is outside the plan's sources
 * (vss_repo_backup checks it again). */
int vss_backup_plan_check(const struct vss_backup_plan *plan, const struct vss_bcd *bcd,
			  struct vss_error *err);

/* The directories that hold the files of the components @bcd selects
 * (their file sets' paths that exist, none inside another), for a backup
 * with no target given: a malloc'd array of malloc'd strings (free each,
 * then the array); *@n 0 if no file set exists. */
int vss_backup_component_paths(const struct vss_bcd *bcd, const struct vss_wmd *const *wmds,
			       size_t nwmds, char ***paths, size_t *n, struct vss_error *err);

/* The backups, oldest first, into a malloc'd array the caller frees
 * (their .sources are not filled). */
int vss_repo_list(struct vss_repo *r, struct vss_backup_info **out, size_t *count,
		  struct vss_error *err);

/* One backup (@id may be a unique prefix; NULL: the newest). */
int vss_repo_show(struct vss_repo *r, const char *id, struct vss_backup_info *out,
		  struct vss_error *err);
/* Why source @i of the backup vss_repo_show filled last was read live, not
 * from a shadow (vss_backup_params.live), or NULL if it was read from one.
 * Valid until the next call on @r. */
const char *vss_repo_show_live(const struct vss_repo *r, size_t i);

/*
 * Re-reads every byte the backup @id (NULL: every backup) stores and its
 * manifest against their checksums.  @bad, if not NULL, is called for each
 * file that does not match (a path inside the repository, and why).
 * -EBADMSG if anything did not match.
 */
int vss_repo_verify(struct vss_repo *r, const char *id,
		    void (*bad)(void *arg, const char *path, const char *why), void *arg,
		    struct vss_error *err);

/* Deletes backup @id.  -EBUSY if later backups need it, unless
 * @with_dependents: then they go too. *@deleted (may be NULL) counts them. */
int vss_repo_delete(struct vss_repo *r, const char *id, bool with_dependents,
		    size_t *deleted, struct vss_error *err);

struct vss_restore_params {
	size_t size;                    /* sizeof(struct vss_restore_params) */
	/* Where: NULL restores each file to its live path; otherwise under
	 * this directory, at the live path with the leading '/' dropped. */
	const char *to;
	/* Only these live paths and what is below them (NULL: everything). */
	const char *const *paths;
	size_t npaths;
	vss_backup_progress_fn progress;
	void *progress_arg;
};

struct vss_restore_result {
	uint64_t files;                 /* entries restored */
	uint64_t bytes;                 /* file bytes written */
};

/*
 * Restores backup @id (NULL: the newest) as it was at its instant: files,
 * directories, symlinks, hard links, device nodes and fifos, with modes,
 * owners, times, extended attributes (ACLs with them) and holes.  Every
 * byte is checked against its checksum before it replaces anything; a file
 * that does not match fails the restore, naming it.  A file is replaced
 * whole (written beside it, then renamed over it); what is not in the
 * backup is left as it is.
 *
 * An image backup (vss_repo_image_info) is restored to @p->to, a file or a
 * block device: the chain it ends is laid from its full on, each extent
 * checked against its checksum; a file that does not exist is made (written
 * beside it, then renamed), one that exists must have the volume's size
 * and a device at least that, and are written in place only once every
 * extent of the chain checked.  @p->paths must be empty.
 */
int vss_repo_restore(struct vss_repo *r, const char *id, const struct vss_restore_params *p,
		     struct vss_restore_result *out, struct vss_error *err);

/* ---- image backups: a volume's blocks (doc/backup-format.md, "Image backups") ---- */

struct vss_backup_extent {
	uint64_t offset;                /* bytes */
	uint64_t length;
};

/*
 * How an image backup learns which blocks changed since its base, and keeps
 * what the next one will need: a requester answers from vssd (shadow.diff,
 * bookmark.create, bookmark.delete; vss backup create --image does).  A
 * shadow is named by its ID; its tracking outlives it (a bookmark).
 */
struct vss_image_tracker {
	/* The extents written since shadow @since (the base's, maybe deleted
	 * since) up to the shadow being read, into a malloc'd *@out; 0, or a
	 * negative errno and why in @err: then every block is read, and the
	 * backup is made full and says why. */
	int (*changed)(void *arg, const char *since, struct vss_backup_extent **out,
		       size_t *count, struct vss_error *err);
	/* Keep tracking from the shadow being read after it is deleted
	 * (called before the backup is published); 0 or -errno: the backup
	 * fails. */
	int (*keep)(void *arg, const char *shadow, struct vss_error *err);
	/* This repository no longer needs tracking from @shadow (called after
	 * the backup is published; may be NULL). */
	void (*drop)(void *arg, const char *shadow);
	void *arg;
};

struct vss_image_params {
	size_t size;                    /* sizeof(struct vss_image_params) */
	enum vss_backup_type type;      /* FULL, INCREMENTAL, DIFFERENTIAL or COPY */
	const char *volume;             /* the volume's name: the backups of one volume chain */
	const char *live;               /* recorded as its source: an absolute path (its device) */
	const char *device;             /* what is read: the shadow's device, or any file */
	const char *shadow;             /* the shadow's ID */
	const char *set_id;             /* as in struct vss_backup_params */
	uint64_t instant_ns;
	const char *components;
	const char *const *writer_metadata;
	size_t nwriters;
	const struct vss_image_tracker *tracker;        /* NULL: every block is read */
	vss_backup_progress_fn progress;        /* bytes read so far */
	void *progress_arg;
};

/* What an image backup holds beyond struct vss_backup_info. */
struct vss_image_info {
	char volume[68];
	char shadow[40];                /* the shadow it was read from */
	uint64_t size;                  /* the volume's bytes */
	uint64_t bytes_read;            /* read from the shadow */
	uint64_t extents;               /* lines of its manifest */
	char why_full[256];             /* why an incremental or differential was made
					 * full, or "" */
};

/*
 * Makes an image backup of @p->device: a full reads every block; an
 * incremental (differential) reads only the extents the tracker says were
 * written since the newest image backup (full) of the same volume and size,
 * and is made full, saying why in @image->why_full, when there is none or
 * the tracker cannot tell.  @image may be NULL.
 */
int vss_repo_backup_image(struct vss_repo *r, const struct vss_image_params *p,
			  struct vss_backup_info *out, struct vss_image_info *image,
			  struct vss_error *err);

/* Whether backup @id (a unique prefix; NULL: the newest) is an image
 * backup: 1 (with *@out filled, if not NULL), 0 if it is a backup of files. */
int vss_repo_image_info(struct vss_repo *r, const char *id, struct vss_image_info *out,
			struct vss_error *err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
