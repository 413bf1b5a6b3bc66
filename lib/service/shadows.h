/*
 * service/shadows.h - the shadows the service lists (shadows.c): every
 * provider's, their catalog rows, their exposures (mounted read-only where
 * a requester reads them), and the operations on them: list, delete,
 * expose, unexpose.  The set coordinator (set.h) makes them.
 */
#ifndef VSS_SERVICE_SHADOWS_H
#define VSS_SERVICE_SHADOWS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include <vss/error.h>

#include "service/catalog.h"
#include "service/fs.h"
#include "service/loop.h"

struct conn;
struct svc_caller;
struct svc_peer_backup;
struct svc_set_sync;
struct svc_volume;
struct vss_provider_ops;
struct vss_service;

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
	char expose_loop[VSS_LOOP_NAME_MAX];    /* its loop device, or "" (a bind mount of
						 * path, or path's block device mounted) */
	bool expose_own;                        /* expose_dir is vssd's RUN/exec/SET/ID (or its
						 * @GMT directory): it goes with the exposure */
	bool expose_gmt;                        /* exposed for Samba (gmt.h) */
	bool expose_reading;                    /* exposed for vssd's own reading (versions.c) */
	bool gmt_failed;                        /* could not be exposed for Samba: not again */
	bool retiring;                          /* its mount detached, deleted by retire.c:
						 * not exposed or deleted again, not listed */
	bool retire_held;                       /* ... until found still in use: listed,
						 * "deleting" */
	struct vss_fs_holder retire_by[4];      /* then what uses it (fs.h), as last looked */
	int retire_by_n;                        /* how many found (can be more than 4) */
	struct conn *owner;                     /* set in progress: its requester */
};

/* Removes a shadow everywhere (exposure, device, engine, catalog, list); logs @why. */
void svc_shadow_remove(struct vss_service *svc, struct svc_shadow *sh, const char *why);
struct svc_shadow *svc_shadow_find(struct vss_service *svc, const char *id);
/* The full ID of the shadow a prefix of at least 8 characters names, or
 * -ENOENT/-EINVAL with why. */
int svc_shadow_resolve(struct vss_service *svc, const char *prefix, char out[37],
		       struct vss_error *err);
/* 0 if @who may read @sh's data (root, or it reaches what @sh is of, as
 * for expose), else -EACCES with why. */
int svc_shadow_check_reach(const struct svc_caller *who, const struct svc_shadow *sh,
			   struct vss_error *err);
int svc_shadow_count(struct vss_service *svc, struct svc_volume *v);
/* "" or, when some of svc_shadow_count()'s are being deleted in the
 * background (retire.h), a clause that says so, for a refusal. */
const char *svc_shadow_count_why(struct vss_service *svc, struct svc_volume *v);
/* Whether @sh is a shadow of the volume @v (the built-in's, or another
 * provider's whose catalog row names @v). */
bool svc_shadow_of(const struct svc_shadow *sh, const struct svc_volume *v);
/* Mounts @sh read-only, nosuid, nodev (and noexec unless VSS_FS_EXEC in
 * @flags) on the directory @dirfd (svc_mountpoint_open()): the provider's
 * expose, or a read-only loop device and the filesystem's options for an
 * image of a live filesystem (fs.h).  Records nothing in the catalog. */
int svc_shadow_expose(struct vss_service *svc, struct svc_shadow *sh, int dirfd,
		      unsigned int flags, json_t **res, struct vss_error *err);
/* Exposes @sh where vssd picks (RUN/exec/SET/ID, root's, 0700), unless it
 * is exposed already: for vssd's own reading (versions.c).  Not recorded in
 * the catalog: a restart does not bring it back.  svc->lock held. */
int svc_shadow_expose_own(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err);
/* Forgets where @sh is exposed; with @force, unmounts it first (lazily if
 * busy) and removes the directory if it was vssd's own (sh->expose_own).
 * Keeps the catalog's record. */
void svc_shadow_unexpose(struct svc_shadow *sh, bool force);
/* Whether @c holds a set taken with "hold" (the server does not close such
 * a connection for being idle). */
bool svc_conn_holds_set(struct vss_service *svc, struct conn *c);
void svc_conn_gone(struct vss_service *svc, struct conn *c);
/*
 * shadow.create's set (svc->lock held): reads @args (targets, persistent,
 * no_writers, allow_live, provider) with the targets as @who sees them,
 * takes the set (set.h), held by @owner until it completes it (NULL:
 * complete at once), and replies in *@res.  Targets HOST:TARGET are other
 * hosts' (peer.h: root's only); with @sync this host is itself another
 * host's part of a set (peer.set), which takes none.  @bk (or NULL): the set
 * is a requester's backup, which every other host takes part in as a
 * backup of its own (peer.h, struct svc_peer_backup: bk->ps begun by
 * svc_peer_backup_begin, still the caller's; bk->links set).
 */
int svc_shadow_create(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		      struct conn *owner, const struct svc_set_sync *sync,
		      struct svc_peer_backup *bk, json_t **res, struct vss_error *err);
int svc_op_set_complete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err);
int svc_op_shadow_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		       json_t **res, struct vss_error *err);
int svc_op_shadow_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);
int svc_op_shadow_expose(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);
int svc_op_shadow_unexpose(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err);

#endif
