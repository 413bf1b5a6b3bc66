/*
 * service/service_i.h - the service's private state, shared by its files:
 * service.c (start, stop, recovery, events), volume.c (volume manager),
 * shadowset.c (shadow set coordinator and shadows), storage.c (diff area
 * settings), restore.c (mounts brought back at start), server.c (control
 * socket and dispatch), caller.c (paths and mount points as the caller sees
 * them).
 *
 * Locking:
 * - svc->lock (a mutex) serialises every control operation and protects
 *   the volume and shadow lists, the catalog, and every field below marked
 *   "svc->lock".  It is held across slow work (mkfs, freeze), never taken
 *   on the I/O path.
 * - vol->gate (a writer-preferring rwlock) is taken for reading by every
 *   read and write of the volume's device, and for writing by the
 *   coordinator while it takes a shadow set (all the set's volumes at once:
 *   the set's single instant) and while a diff area is moved.
 * - vol->refs counts the service's list and every device (the volume's and
 *   its shadows') that may still call into vol->cow; the last put closes
 *   the engine, from whatever thread drops it.
 * The transport never takes svc->lock, so holding it while the devices are
 * used (mkfs, mount, freeze) cannot deadlock.
 */
#ifndef VSS_SERVICE_SERVICE_I_H
#define VSS_SERVICE_SERVICE_I_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include <vss/cow.h>
#include <vss/error.h>

#include "service/catalog.h"
#include "service/fs.h"
#include "service/loop.h"
#include "service/provider.h"
#include "service/service.h"
#include "transport/transport.h"

#define VSS_PROVIDER_NAME    "vss-cow"
#define VSS_PROVIDER_ID      "5e1f0c9a-3b0d-4c6e-9a51-7d2c8b4f0e11"
#define VSS_NAME_MAX         64

struct conn;

/*
 * Who may do what (doc/security.md).  Every request is checked against the
 * role its operation needs before it runs (server.c):
 *  - user: any local user who can reach the socket: status and listings;
 *  - operator: members of the group "vss": take, complete, expose and
 *    delete shadow copy sets, run backups, register writers;
 *  - root: everything, including what chooses files, devices, mount
 *    points or options for vssd to use as root (volumes, shadow storage).
 */
enum svc_role { SVC_ROLE_USER, SVC_ROLE_OPERATOR, SVC_ROLE_ROOT };

#define SVC_CALLER_GROUPS_MAX 64

/* The peer of a request: its credentials as the kernel gave them when it
 * connected (SO_PEERCRED) and its supplementary groups read then. */
struct svc_caller {
	struct conn *conn;              /* the connection; NULL for vssd itself */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t groups[SVC_CALLER_GROUPS_MAX];
	int ngroups;
	enum svc_role role;
};

struct svc_volume {
	struct svc_volume *next;                /* svc->lock */
	struct vss_service *svc;
	struct vss_catalog_volume rec;          /* svc->lock; strings owned */
	struct vss_cow_volume *cow;             /* replaced only under gate (write); NULL offline */
	pthread_rwlock_t gate;
	int refs;                               /* atomic */
	bool deleted;                           /* unlink the files on the last put */
	/* The service's own open of the origin, as long as the volume lives:
	 * exclusive for a block device (nobody mounts it behind vss's back),
	 * and what the backing checks compare with; -1 if none. */
	int origin_fd;
	uint64_t diff_dev, diff_ino;            /* svc->lock: the diff area file the engine has open */
	bool detached;                          /* svc->lock: that file is no longer at rec.diff_path */
	char *offline_why;                      /* offline volumes (svc->offline): why not served */
	char *mount_dir;                        /* svc->lock: where mounted, or NULL */
	uint64_t mount_id;                      /* svc->lock: that mount's ID (fs.h) */
	char mount_loop[VSS_LOOP_NAME_MAX];
	char fstype[16];
};

struct svc_shadow {
	struct svc_shadow *next;                /* svc->lock, for all fields */
	const struct vss_provider_ops *prov;    /* who made it (provider.h) */
	struct svc_volume *vol;                 /* built-in only (else NULL); outlives the shadow in the list */
	char *path;                             /* other providers: the snapshot or live directory; owned */
	char *origin;                           /* other providers: what it is of (btrfs: the subvolume's
	                                         * root; live: the mount point); owned */
	char *target_path;                      /* other providers: the target inside the shadow, or NULL; owned */
	struct vss_catalog_shadow rec;          /* rec.target owned */
	char *expose_dir;                       /* where exposed, or NULL */
	uint64_t expose_id;                     /* that mount's ID (fs.h) */
	char expose_loop[VSS_LOOP_NAME_MAX];    /* its loop device, or "" (a bind mount) */
	bool expose_own;                        /* expose_dir is vssd's RUN/exec/SET/ID: it goes
						 * with the exposure */
	struct conn *owner;                     /* set in progress: its requester */
};

struct svc_event {
	struct svc_event *next;
	enum vss_cow_event_type type;
	char volume[VSS_NAME_MAX + 1];
	char shadow[37];
};

struct vss_service {
	char *state_dir;
	char *run_dir;
	char *dev_dir;                          /* RUN/dev */
	char *operator_group;                   /* its members are operators (server.c) */
	unsigned int test_freeze_hold_ms;
	unsigned int freeze_limit_ms;           /* the guardian's bound (guardian.h) */
	unsigned int hold_lease_ms;             /* holds: the default lease (backup.c) */
	uint64_t hold_max_ms;                   /* holds: the longest one may last */
	int state_lock_fd;
	int run_lock_fd;
	pthread_mutex_t lock;
	struct vss_catalog *cat;
	struct vss_transport *tr;
	struct svc_volume *volumes;
	struct svc_volume *offline;             /* svc->lock: in the catalog, not served (cow NULL) */
	struct svc_shadow *shadows;             /* oldest first */
	unsigned int check_ms;                  /* the housekeeper looks at the diff areas this often */

	pthread_mutex_t ev_lock;                /* the engine's events, for the housekeeper */
	pthread_cond_t ev_cond;
	struct svc_event *ev_head;
	bool ev_stop;
	pthread_t ev_thread;
	bool ev_running;

	struct svc_server *server;
	struct svc_writer_registry *wreg;       /* writers.h (issue 4) */
};

/* ---- service.c ---- */
void svc_id_str(const vss_cow_id id, char out[37]);
int svc_id_parse(const char *s, vss_cow_id id);
uint64_t svc_now_ns(void);
/* 8 random hex digits, to keep file names of successive volumes apart. */
const char *svc_short_tag(void);
void svc_time_str(uint64_t ns, char out[40]);
int svc_same_fs_as_state(struct vss_service *svc, dev_t dev, const char **what);
/* Room for one more in the array @items of @count elements of @size bytes
 * and capacity *@cap: @items, or a bigger copy (*@cap updated), or NULL
 * (out of memory; @items untouched). */
void *svc_grow(void *items, size_t *cap, size_t count, size_t size);

/* ---- volume.c ---- */
extern const struct vss_device_ops svc_volume_device_ops;
extern const struct vss_device_ops svc_shadow_device_ops;
struct svc_volume *svc_volume_find(struct vss_service *svc, const char *name);
void svc_volume_get(struct svc_volume *v);
void svc_volume_put(struct svc_volume *v);
/* A volume (one reference) for a catalog record, copied; not open yet.  NULL: no memory. */
struct svc_volume *svc_volume_new(struct vss_service *svc, const struct vss_catalog_volume *rec);
/* Opens the origin for the service (struct svc_volume, origin_fd). */
int svc_volume_open_origin(struct svc_volume *v, struct vss_error *err);
/* Adds the device of @v (open) and appends it to the served volumes. */
int svc_volume_serve(struct vss_service *svc, struct svc_volume *v, struct vss_error *err);
/* The origin, the engine and the device of a new volume (svc_volume_new,
 * svc_volume_open_origin, svc_volume_cow_open, svc_volume_serve). */
int svc_volume_load(struct vss_service *svc, const struct vss_catalog_volume *rec,
		    unsigned int cow_flags, struct svc_volume **out, struct vss_error *err);
/*
 * vss_cow_open() on the volume's origin and @diff_path, with its settings,
 * events and the guard of engine design note 9: unless @flags creates it,
 * the diff area (or a copy of it) must be the one the catalog knows
 * (rec.diff_id, if known), and a failure is recorded in the marks of
 * svc_diff_marks() too.
 */
int svc_volume_cow_open(struct svc_volume *v, const char *diff_path, unsigned int flags,
			struct vss_cow_volume **out, struct vss_error *err);
/* Takes the identity of the diff area v->cow has open (diff_dev, diff_ino,
 * rec.diff_id); true if rec.diff_id changed (the catalog must be told). */
bool svc_volume_learn_diff(struct svc_volume *v);
/* Replaces rec.note with @note (NULL: none). */
void svc_volume_set_note(struct svc_volume *v, const char *note);
void svc_volume_device_path(struct vss_service *svc, const char *name, char *out, size_t len);
int svc_volume_open_count(struct vss_service *svc, struct svc_volume *v);
/* Waits up to 2 s for the volume's device to be closed (a loop device
 * detaches a moment after the unmount that released it). */
bool svc_volume_wait_closed(struct vss_service *svc, struct svc_volume *v);
/* Resolves a target: a volume name, or an absolute path inside a mounted volume. */
int svc_resolve_target(struct vss_service *svc, const char *target,
		       struct svc_volume **out, struct vss_error *err);
/* Forgets mounts and exposures that were unmounted behind vss's back, so
 * that nothing ever acts (freezes!) on a directory vss no longer owns, and
 * looks at the diff areas (svc_check_diff_areas).  Called before every
 * operation. */
void svc_refresh_mounts(struct vss_service *svc);
/*
 * Attaches @file to a loop device (read-only with VSS_FS_SHADOW in @flags),
 * makes a @mkfs filesystem on it unless NULL, and mounts what it holds on
 * the directory @dirfd (svc_mountpoint_open()) with @options and @flags
 * (fs.h: a shadow is read-only, nosuid, nodev, noexec unless VSS_FS_EXEC),
 * refusing anything but ext4, xfs or btrfs, or but @fstype if not NULL.
 * @what names it in messages.  The loop device goes away with the mount.
 */
int svc_mount_device(const char *file, unsigned int flags, int dirfd, const char *mkfs,
		     const char *fstype, const char *options, const char *what,
		     char loop[VSS_LOOP_NAME_MAX], const char **found,
		     struct vss_fs_mounted *mounted, struct vss_error *err);
/* Mounts @v at @dir (made first with SVC_MOUNT_MKDIR in @how, else it must
 * exist; svc_mountpoint_open()): a loop device on its device, mkfs.@mkfs
 * first unless NULL, refused unless the filesystem found is @fstype (NULL:
 * any), mounted with @options (may be NULL).  v->mount_dir is where the
 * mount landed.  Records nothing in the catalog. */
int svc_volume_mount(struct vss_service *svc, struct svc_volume *v, const char *dir,
		     unsigned int how, const char *mkfs, const char *fstype,
		     const char *options, struct vss_error *err);
/* Unmounts @v (lazily if @force and busy); keeps the catalog's record. */
int svc_volume_umount(struct vss_service *svc, struct svc_volume *v, bool force,
		      struct vss_error *err);
int svc_op_volume_create(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_volume_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_volume_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_volume_mount(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_volume_umount(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);

/* ---- shadowset.c ---- */
int svc_shadow_add_device(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err);
/* Removes a shadow everywhere (exposure, device, engine, catalog, list); logs @why. */
void svc_shadow_remove(struct vss_service *svc, struct svc_shadow *sh, const char *why);
struct svc_shadow *svc_shadow_find(struct vss_service *svc, const char *id);
int svc_shadow_count(struct vss_service *svc, struct svc_volume *v);
/* Mounts @sh read-only, nosuid, nodev (and noexec unless VSS_FS_EXEC in
 * @flags) on the directory @dirfd (svc_mountpoint_open()): the provider's
 * expose, or a read-only loop device and the filesystem's options for an
 * image of a live filesystem (fs.h).  Records nothing in the catalog. */
int svc_shadow_expose(struct vss_service *svc, struct svc_shadow *sh, int dirfd,
		      unsigned int flags, json_t **res, struct vss_error *err);
/* Forgets where @sh is exposed; with @force, unmounts it first (lazily if
 * busy) and removes the directory if it was vssd's own (sh->expose_own).
 * Keeps the catalog's record. */
void svc_shadow_unexpose(struct svc_shadow *sh, bool force);
/* Whether @c holds a set taken with "hold" (the server does not close such
 * a connection for being idle). */
bool svc_conn_holds_set(struct vss_service *svc, struct conn *c);
void svc_conn_gone(struct vss_service *svc, struct conn *c);
int svc_op_shadow_create(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_set_complete(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_shadow_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_shadow_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_shadow_expose(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_shadow_unexpose(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);

/* ---- caller.c: what a caller names, as the caller sees it ---- */
/* @who's credentials in @buf for fs.h, or NULL for root (and for @who NULL:
 * vssd itself). */
const struct vss_fs_cred *svc_caller_cred(const struct svc_caller *who,
					  struct vss_fs_cred *buf);
/* A path a caller named (a target, a --for; *@out malloc'd): root's and
 * what is not an absolute path (a volume name) as they are; anyone else's
 * resolved as that caller (fs.h: in a child with the caller's
 * credentials), "does not exist" and "may not reach it" alike. */
int svc_caller_path(const struct svc_caller *who, const char *path, char **out,
		    struct vss_error *err);
/* 0 if @who can reach @path (the live side of a shadow, named @what in the
 * message), else -EACCES. */
int svc_caller_reaches(const struct svc_caller *who, const char *path, const char *what,
		       struct vss_error *err);
#define SVC_MOUNT_MKDIR 0x1u    /* create the directory if missing */
#define SVC_MOUNT_OWN   0x2u    /* vssd's own RUN/exec/SET/ID, at start (restore.c) */
/*
 * Opens @dir to mount on, as @who (NULL: vssd) sees it, never through a
 * symlink: an existing directory (SVC_MOUNT_MKDIR: made, as @who), that
 * is @who's own unless @who is root, is none of the system's (fs.h), nor in
 * the state or run directory (but SVC_MOUNT_OWN's), and has nothing mounted
 * on it.  *@fd (O_PATH) is what to mount on; @real its path.
 */
int svc_mountpoint_open(struct vss_service *svc, const struct svc_caller *who,
			const char *dir, unsigned int how, int *fd, char real[PATH_MAX],
			struct vss_error *err);

/* ---- restore.c: mounts and exposures brought back at start ---- */
struct svc_restore;
/* Reads the catalog's mounts and exposures, before start changes anything. */
int svc_restore_read(struct vss_service *svc, struct svc_restore **out, struct vss_error *err);
/* Mounts and exposes them again; logs and drops (or keeps) what fails. */
void svc_restore_run(struct vss_service *svc, struct svc_restore *r);
void svc_restore_free(struct svc_restore *r);

/* ---- storage.c ---- */
/* The marks that record a failure of the diff area at @diff besides
 * DIFF.failed (engine design note 9): STATE/failed/BASE and RUN/failed/BASE. */
void svc_diff_marks(struct vss_service *svc, const char *diff, char marks[2][PATH_MAX]);
/* Removes what records a failure of the diff area @diff (DIFF.failed and
 * its marks), and the file itself if @file. */
void svc_diff_unlink(struct vss_service *svc, const char *diff, bool file);
/* "tmpfs" or "ramfs" if @path (or the directory it would be in) is on
 * one, where nothing survives a restart of the machine; else NULL. */
const char *svc_volatile_fs(const char *path);
/*
 * The diff area of @v (origin open, engine not) could not be opened:
 * @rc, @why.  Copies one that is only unusable where it is to the state
 * directory and goes on there; else keeps a damaged one aside (renamed),
 * makes a fresh one and records the persistent shadows the catalog knew
 * in it as invalid.  Sets v->cow, rec.diff_path and rec.note; 0 or -errno
 * (then the volume cannot be served).
 */
int svc_diff_recover(struct vss_service *svc, struct svc_volume *v, int rc, const char *why,
		     struct vss_error *err);
/* Notices diff areas whose path no longer leads to the file the engine
 * has open (deleted, replaced): detaches them (engine design note 9), and
 * gives a detached volume a fresh diff area once it has no shadows.  Called
 * before every operation and by the housekeeper, with svc->lock held. */
void svc_check_diff_areas(struct vss_service *svc);
/* Logs a warning when @v's diff area is on a tmpfs or ramfs, and returns
 * it as an array of lines for a reply (empty if none). */
json_t *svc_volatile_warning(struct svc_volume *v);
int svc_op_storage_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_storage_add(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_storage_resize(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_storage_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);

/* ---- service.c: operations about the service itself ---- */
int svc_op_status(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_providers_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_writers_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);

/* ---- server.c ---- */
/* Listens on RUN/vssd.sock with @cfg's limits. */
int svc_server_start(struct vss_service *svc, const struct vss_service_config *cfg,
		     struct vss_error *err);
void svc_server_stop(struct vss_service *svc);

/* ---- args.c: reading request arguments ---- */
int svc_arg_str(json_t *args, const char *key, bool required, const char **out,
		struct vss_error *err);
int svc_arg_bool(json_t *args, const char *key, bool *out, struct vss_error *err);
int svc_arg_u64(json_t *args, const char *key, bool required, uint64_t *out,
		struct vss_error *err);

#endif
