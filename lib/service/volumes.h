/*
 * service/volumes.h - the volume manager (volumes.c): managed volumes (an
 * origin and its diff area, open in the engine), their devices (the only
 * code of the service on the I/O path), the devices of built-in shadows,
 * and the filesystems mounted on volumes through loop devices.
 */
#ifndef VSS_SERVICE_VOLUMES_H
#define VSS_SERVICE_VOLUMES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <vss/cow.h>
#include <vss/error.h>

#include "service/catalog.h"
#include "service/fs.h"
#include "service/loop.h"
#include "transport/transport.h"

struct svc_caller;
struct svc_shadow;
struct vss_service;

/*
 * What a volume's device did since it was served, counted on its I/O path
 * (relaxed atomics, no lock) for the log line of a set (set.c): how much
 * the kernel wrote back and how long the engine's flushes took, step by
 * step of the set (doc/service.md, "Freeze time").
 */
struct svc_volume_io {
	atomic_uint_least64_t write_bytes;      /* bytes of writes that succeeded */
	atomic_uint_least64_t flushes;          /* flushes (fsync of the device) */
	atomic_uint_least64_t flush_ns;         /* their time, summed */
	atomic_uint_least64_t flush_max_ns;     /* the longest one */
};

struct svc_volume {
	struct svc_volume *next;                /* svc->lock */
	struct vss_service *svc;
	struct vss_catalog_volume rec;          /* svc->lock; strings owned */
	struct vss_cow_volume *cow;             /* replaced only under gate (write); NULL offline */
	pthread_rwlock_t gate;
	/* Taken for reading by every write and flush of the device (inside
	 * gate), for writing by a set around its commit: writes wait, reads
	 * go on (a thin LV's lvcreate, which a set runs with its volumes'
	 * writes held, reads every loop device's label). */
	pthread_rwlock_t wgate;
	/* The service's list and every device that may still call into cow
	 * (svc_volume_get, svc_volume_put); never back from 0. */
	atomic_int refs;
	bool deleted;                           /* unlink the files on the last put */
	/* The service's own open of the origin, as long as the volume lives:
	 * exclusive for a block device (nobody mounts it behind vss's back),
	 * and what the backing checks compare with; -1 if none. */
	int origin_fd;
	/* A volume without an engine (cow NULL: its storage makes its shadows,
	 * provider/rbd): its device's I/O goes straight to these, under the
	 * gate; released with the volume.  NULL otherwise.  Set before the
	 * volume is served, never changed. */
	const struct vss_device_ops *direct;
	void *direct_ctx;
	uint64_t diff_dev, diff_ino;            /* svc->lock: the diff area file the engine has open */
	bool detached;                          /* svc->lock: that file is no longer at rec.diff_path */
	char *offline_why;                      /* offline volumes (svc->offline): why not served */
	char *mount_dir;                        /* svc->lock: where mounted, or NULL */
	uint64_t mount_id;                      /* svc->lock: that mount's ID (fs.h) */
	char mount_loop[VSS_LOOP_NAME_MAX];
	char fstype[16];
	struct svc_volume_io io;                /* what its device did (relaxed atomics) */
};

extern const struct vss_device_ops svc_volume_device_ops;
extern const struct vss_device_ops svc_shadow_device_ops;
/* Serves the read-only device RUN/dev/shadows/ID of the built-in shadow @sh. */
int svc_shadow_add_device(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err);
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
 * Attaches @file, a device in svc->tr's tree, opened through the page cache
 * (open_cached), to a loop device (read-only with VSS_FS_SHADOW in @flags),
 * makes a @mkfs filesystem on it unless NULL, and mounts what it holds on
 * the directory @dirfd (svc_mountpoint_open()) with @options and @flags
 * (fs.h: a shadow is read-only, nosuid, nodev, noexec unless VSS_FS_EXEC),
 * refusing anything but ext4, xfs or btrfs, or but @fstype if not NULL.
 * SVC_DEVICE_ZEROED in @flags: @file reads all zeros (vss_fs_mkfs's
 * @zeroed).  @what names it in messages.  The loop device goes away with
 * the mount.
 */
#define SVC_DEVICE_ZEROED 0x100u
int svc_mount_device(struct vss_service *svc, const char *file, unsigned int flags,
		     int dirfd, const char *mkfs, const char *fstype, const char *options,
		     const char *what, char loop[VSS_LOOP_NAME_MAX], const char **found,
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
int svc_op_volume_create(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);
int svc_op_volume_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		       json_t **res, struct vss_error *err);
int svc_op_volume_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);
int svc_op_volume_mount(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err);
int svc_op_volume_umount(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);

#endif
