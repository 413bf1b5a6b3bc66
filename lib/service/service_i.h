/*
 * service/service_i.h - the service's private state, shared by its files:
 * service.c (start, stop, recovery, events), volume.c (volume manager),
 * shadowset.c (shadow set coordinator and shadows), storage.c (diff area
 * settings), restore.c (mounts brought back at start), server.c (control
 * socket and dispatch).
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
	struct vss_cow_volume *cow;             /* replaced only under gate (write) */
	pthread_rwlock_t gate;
	int refs;                               /* atomic */
	bool deleted;                           /* unlink the files on the last put */
	char *mount_dir;                        /* svc->lock: where mounted, or NULL */
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
	struct svc_shadow *shadows;             /* oldest first */

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
/* Opens the engine on a catalog record and adds the volume's device. */
int svc_volume_load(struct vss_service *svc, const struct vss_catalog_volume *rec,
		    unsigned int cow_flags, struct svc_volume **out, struct vss_error *err);
/* vss_cow_open() on the volume's origin and @diff_path, with its settings and events. */
int svc_volume_cow_open(struct svc_volume *v, const char *diff_path, unsigned int flags,
			struct vss_cow_volume **out, struct vss_error *err);
void svc_volume_device_path(struct vss_service *svc, const char *name, char *out, size_t len);
int svc_volume_open_count(struct vss_service *svc, struct svc_volume *v);
/* Waits up to 2 s for the volume's device to be closed (a loop device
 * detaches a moment after the unmount that released it). */
bool svc_volume_wait_closed(struct vss_service *svc, struct svc_volume *v);
/* Resolves a target: a volume name, or an absolute path inside a mounted volume. */
int svc_resolve_target(struct vss_service *svc, const char *target,
		       struct svc_volume **out, struct vss_error *err);
/* Forgets mounts and exposures that were unmounted behind vss's back, so
 * that nothing ever acts (freezes!) on a directory vss no longer owns.
 * Called before every operation. */
void svc_refresh_mounts(struct vss_service *svc);
/*
 * Attaches @file to a loop device (read-only if @shadow), makes a @mkfs
 * filesystem on it unless NULL, and mounts what it holds at @dir with
 * @options (and, if @shadow, the read-only options of fs.h), refusing
 * anything but ext4, xfs or btrfs, or but @fstype if not NULL.  @what names
 * it in messages.  The loop device goes away with the mount.
 */
int svc_mount_device(const char *file, bool shadow, const char *dir, const char *mkfs,
		     const char *fstype, const char *options, const char *what,
		     char loop[VSS_LOOP_NAME_MAX], const char **found, struct vss_error *err);
/* Mounts @v at @dir (must exist): a loop device on its device, mkfs.@mkfs
 * first unless NULL, refused unless the filesystem found is @fstype (NULL:
 * any), mounted with @options (may be NULL).  Records nothing in the catalog. */
int svc_volume_mount(struct vss_service *svc, struct svc_volume *v, const char *dir,
		     const char *mkfs, const char *fstype, const char *options,
		     struct vss_error *err);
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
/* Mounts @sh read-only at @dir (must exist, nothing mounted there): the
 * provider's expose, or a read-only loop device and the filesystem's
 * options for an image of a live filesystem (fs.h).  Records nothing in the
 * catalog. */
int svc_shadow_expose(struct vss_service *svc, struct svc_shadow *sh, const char *dir,
		      json_t **res, struct vss_error *err);
/* Forgets where @sh is exposed (unmounting it, lazily if busy, if @force);
 * keeps the catalog's record. */
void svc_shadow_unexpose(struct svc_shadow *sh, bool force);
void svc_conn_gone(struct vss_service *svc, struct conn *c);
int svc_op_shadow_create(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_set_complete(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_shadow_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_shadow_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_shadow_expose(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_shadow_unexpose(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);

/* ---- restore.c: mounts and exposures brought back at start ---- */
struct svc_restore;
/* Reads the catalog's mounts and exposures, before start changes anything. */
int svc_restore_read(struct vss_service *svc, struct svc_restore **out, struct vss_error *err);
/* Mounts and exposes them again; logs and drops (or keeps) what fails. */
void svc_restore_run(struct vss_service *svc, struct svc_restore *r);
void svc_restore_free(struct svc_restore *r);

/* ---- storage.c ---- */
int svc_op_storage_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_storage_add(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_storage_resize(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_storage_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);

/* ---- service.c: operations about the service itself ---- */
int svc_op_status(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_providers_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);
int svc_op_writers_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res, struct vss_error *err);

/* ---- server.c ---- */
int svc_server_start(struct vss_service *svc, struct vss_error *err);
void svc_server_stop(struct vss_service *svc);

/* ---- args.c: reading request arguments ---- */
int svc_arg_str(json_t *args, const char *key, bool required, const char **out,
		struct vss_error *err);
int svc_arg_bool(json_t *args, const char *key, bool *out, struct vss_error *err);
int svc_arg_u64(json_t *args, const char *key, bool required, uint64_t *out,
		struct vss_error *err);

#endif
