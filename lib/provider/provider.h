/*
 * provider/provider.h - snapshot providers as the service sees them: one
 * struct of operations per provider, capabilities for what differs between
 * them (the service never asks which provider it is), and the registry that
 * picks one per target (registry.c).  The providers: built-in (builtin.c,
 * the copy-on-write engine), btrfs (btrfs/provider.c over the mechanism in
 * btrfs/btrfs.c), LVM (lvm/provider.c over lvm/lvm.c), live (live.c), rbd
 * (rbd/provider.c over rbd/rbd.c, when built with librbd).
 *
 * The set coordinator (service/set.h) drives each member of a set through
 * them, under svc->lock:
 *
 *	select (supports) -> prepare -> [gates closed, filesystems frozen]
 *	-> hold (every member that has it) -> commit -> unhold
 *	-> [thawed, gates open] -> adopt
 *
 * and abort, from prepare on, for every member of a set that fails; a
 * shadow later ends with remove.  At start each provider's recover finds
 * what an earlier run of this instance left.  doc/providers.md is the
 * user's side of the same story.
 */
#ifndef VSS_PROVIDER_PROVIDER_H
#define VSS_PROVIDER_PROVIDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include <vss/cow.h>
#include <vss/error.h>

#include "service/catalog.h"

struct vss_service;
struct svc_caller;
struct svc_shadow;

/*
 * One target of a set while it is being taken.  Lives in the coordinator's
 * struct svc_set from selection until the shadow is adopted or the set
 * aborted.  prepare fills in what the coordinator must do around commit
 * (gate, freeze_dir); the strings it sets there point into the provider's
 * own objects, which live as long as svc->lock is held.
 */
struct svc_member {
	const struct vss_provider_ops *prov;
	const char *target;            /* as the requester gave it; not owned */
	vss_cow_id id;                 /* the new shadow's ID */
	const unsigned char *set_id;   /* the set's ID (16 bytes); not owned */
	bool persistent;
	bool no_writers;
	/* Set by prepare: */
	const char *volume;            /* the volume it is of (messages, the catalog row), or NULL */
	pthread_rwlock_t *gate;        /* closed for writing from before the first commit of the
	                                * set until after its last (all writes to the volume are
	                                * then in it), or NULL; one member per gate */
	char *device;                  /* owned: the device whose writes the gate holds, or NULL */
	const char *freeze_dir;        /* a mount point the coordinator FIFREEZEs around commit,
	                                * or NULL */
	const char *freeze_loop;       /* the loop device freeze_dir must still be mounted from */
	dev_t hold_dev;                /* set by prepare if hold will suspend this
	                                * device-mapper device (the guardian resumes it
	                                * if vssd dies), else 0 */
	const char *own_instant;       /* set by prepare if nothing can hold the target still
	                                * while the set is taken, so its commit is an instant
	                                * of its own (an LVM thin LV: "thin LV VG/LV"), else
	                                * NULL; points into priv.
	                                * A set takes at most one, committed first, while every
	                                * other member is still frozen, gated or held */
	void *priv;                    /* the provider's, from prepare until adopt or abort */
	/* The coordinator's: */
	bool prepared;                 /* prepare succeeded: abort or adopt must follow */
	bool taken;                    /* commit succeeded: a shadow exists */
	bool frozen;                   /* the coordinator FIFREEZE'd freeze_dir */
	bool held;                     /* the provider's hold succeeded: unhold must follow */
	char *warning;                 /* owned: one line for the requester and the log, or NULL */
	char *fallback;                /* owned: why it is read live although a provider was
	                                * picked for it (that provider failed at prepare or
	                                * commit; allow_live), or NULL */
};

/* Capabilities (vss_provider_ops.caps): what differs between providers. */
/* Makes nothing: a member reads its target live.  Taken only when the
 * requester allows it (allow_live): named, or as the last resort for a path
 * no other provider can shadow; never picked by priority, and the reply and
 * the log say so. */
#define SVC_PROVIDER_LIVE          0x1u
/* Its commit writes through the target's own filesystem, which the set
 * does not freeze (btrfs): refused where that filesystem lives on something
 * the same set freezes or gates (svc_provider_check_freeze). */
#define SVC_PROVIDER_COMMIT_WRITES 0x2u
/* A shadow that is not persistent is deleted when the provider next opens
 * its store (the engine, its diff area): a clean stop drops only its row,
 * instead of calling remove, which may be slow. */
#define SVC_PROVIDER_DROP_AT_OPEN  0x4u

/*
 * A provider.  Every member must be set except those marked optional.
 * All are called under svc->lock.
 */
struct vss_provider_ops {
	const char *name;              /* "vss-cow", "btrfs", "live": what --provider takes */
	const char *id;                /* a fixed UUID */
	const char *version;
	const char *kind;              /* "software", "filesystem", "none" */
	int priority;                  /* the highest that supports a target takes it */
	unsigned int caps;             /* SVC_PROVIDER_* */
	unsigned int catalog_attr;     /* VSS_CATALOG_ATTR_* that marks its rows (0: built-in) */
	const char *shadow_attr;       /* what "list shadows" says its shadows are:
	                                * "differential", "plex", "live" */

	/* 0 if it can shadow @target (a volume name or a path); else a negative
	 * errno and why in @err.  Quick, no side effects. */
	int (*supports)(struct vss_service *svc, const char *target, struct vss_error *err);
	/* Before the freeze: resolves m->target and gets ready (may be slow, may
	 * do I/O); says what to gate and freeze around commit; makes no shadow.
	 * On failure nothing is left to undo (m->device and m->warning are the
	 * coordinator's to free). */
	int (*prepare)(struct vss_service *svc, struct svc_member *m, struct vss_error *err);
	/* Optional: inside the freeze window, before any member of the set
	 * commits: stops writes to m's target below its filesystem, freezing it
	 * (LVM: a device-mapper suspend), for providers whose commit cannot run
	 * on a filesystem the coordinator froze.  commit may end the hold. */
	int (*hold)(struct vss_service *svc, struct svc_member *m, struct vss_error *err);
	/* Inside the freeze window: makes the shadow.  Fast; no I/O to the
	 * frozen filesystems.  On failure no shadow exists. */
	int (*commit)(struct vss_service *svc, struct svc_member *m, struct vss_error *err);
	/* Optional, with hold: after every commit of the set, whatever they did:
	 * ends the hold if commit did not. */
	void (*unhold)(struct vss_service *svc, struct svc_member *m);
	/* The set is aborted: deletes the shadow if m->taken, undoes prepare. */
	void (*abort)(struct vss_service *svc, struct svc_member *m);
	/* After the thaw: fills @sh from @m (sh->vol, sh->path, sh->origin,
	 * sh->target_path) and serves it; m->priv is released whatever the
	 * outcome (then @sh is removed like any other shadow). */
	int (*adopt)(struct vss_service *svc, struct svc_member *m, struct svc_shadow *sh,
		     struct vss_error *err);
	/* The shadow's read-only device or directory. */
	void (*location)(struct vss_service *svc, const struct svc_shadow *sh, char *out,
			 size_t len);
	/* Deletes what the provider made for @sh (not its catalog row, not its
	 * place in the service's list). */
	int (*remove)(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err);
	/* Optional: what the provider knows now of @sh for "list shadows": sets
	 * @info->state to VSS_COW_SHADOW_INVALID if it could not be kept exact,
	 * and @info->diff_bytes to the shadow storage it uses. */
	void (*info)(struct vss_service *svc, const struct svc_shadow *sh,
		     struct vss_cow_shadow_info *info);
	/* Optional: the shadow storage @sh holds of its own (LVM: a classic
	 * snapshot's copy-on-write space) as a row of "list shadowstorage"
	 * (volume, location, used, allocated, max, explicit, shadows), or NULL. */
	json_t *(*storage)(struct vss_service *svc, const struct svc_shadow *sh);
	/* Optional, with storage: grows it to @size bytes. */
	int (*storage_resize)(struct vss_service *svc, struct svc_shadow *sh, uint64_t size,
			      struct vss_error *err);
	/* Optional: mounts @sh read-only, nosuid, nodev (and noexec unless
	 * VSS_FS_EXEC in @flags) on the directory @dirfd (checked, nothing
	 * mounted there: svc_mountpoint_open()), and sets sh->expose_*; NULL
	 * means the service mounts the device's filesystem (shadows.c). */
	int (*expose)(struct vss_service *svc, struct svc_shadow *sh, int dirfd,
		      unsigned int flags, json_t **res, struct vss_error *err);
	/* Optional: at start, deletes what an earlier run of this instance made
	 * and did not keep (not persistent, or never recorded as done), lists
	 * the persistent shadows again, and never touches what other instances
	 * made. */
	int (*recover)(struct vss_service *svc, struct vss_error *err);
	/* Optional: what a shadow of @path (not a volume name) made by this
	 * provider would be of (malloc'd: btrfs, the root of its subvolume), or
	 * NULL if it would not take @path. */
	char *(*origin_of)(const char *path);
	/* Optional: the extents of the volume written between @from (the full
	 * ID of one of its shadows, or of a bookmark keep left) and shadow @to
	 * (NULL: now), of the same volume, in bytes, in *@ext (malloc'd, *@n of
	 * them, sorted and merged); *@size is the volume's size, *@unit the
	 * unit of tracking.  A superset is allowed (never less than what
	 * changed).  -ENOENT if @from is none of its own; -EOPNOTSUPP for a
	 * pair it cannot compare (LVM: not two thin snapshots of one LV). */
	int (*changed)(struct vss_service *svc, const char *from, const struct svc_shadow *to,
		       struct vss_cow_extent **ext, size_t *n, uint64_t *size, uint64_t *unit,
		       struct vss_error *err);
	/* Optional, with changed: keeps @sh's instant as a bookmark that
	 * changed can start from after @sh is removed (0 if kept already). */
	int (*keep)(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err);
	/* Optional, with keep: deletes the bookmark @id (a full ID); -ENOENT
	 * if it has none of that ID. */
	int (*forget)(struct vss_service *svc, const char *id, struct vss_error *err);
	/* What it would take now (mount points, volumes), for "list providers". */
	json_t *(*paths)(struct vss_service *svc);
};

extern const struct vss_provider_ops svc_provider_builtin;
extern const struct vss_provider_ops svc_provider_btrfs;
extern const struct vss_provider_ops svc_provider_live;
extern const struct vss_provider_ops svc_provider_lvm;
#ifdef VSS_HAVE_RBD
extern const struct vss_provider_ops svc_provider_rbd;
#endif

/* vssd's providers, highest priority first, NULL-terminated: what
 * svc->providers is unless a test gives its own (service.h). */
extern const struct vss_provider_ops *const svc_providers[];

/* The provider of @svc named @name, or NULL. */
const struct vss_provider_ops *svc_provider_find(struct vss_service *svc, const char *name);

/*
 * Picks the provider for @target: @forced (a name, or NULL), else the
 * highest-priority one that supports it, live ones left out.  A path no
 * provider can shadow is refused with a line naming its filesystem type and
 * what would work instead, unless @allow_live: then a live provider takes
 * it and *@warning (owned by the caller) says why.  A live provider named
 * in @forced needs @allow_live too.
 */
int svc_provider_select(struct vss_service *svc, const char *target, const char *forced,
			bool allow_live, const struct vss_provider_ops **out, char **warning,
			struct vss_error *err);

/*
 * Refuses a set in which a member whose commit writes through its own
 * filesystem (SVC_PROVIDER_COMMIT_WRITES) lives on a loop device whose
 * image is on a filesystem the set freezes (its commit would wait for the
 * thaw), or is the device a member of the same set gates (its commit
 * would wait for the gate, which the coordinator holds until every commit
 * returned).
 */
int svc_provider_check_freeze(struct vss_service *svc, const struct svc_member *m, size_t n,
			      const char *const *freeze_dirs, size_t nfreeze,
			      struct vss_error *err);

/* "list providers": every provider, and with "for" which takes it (registry.c). */
int svc_op_providers_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			  json_t **res, struct vss_error *err);

/* Runs every provider's recover; logs what fails and goes on. */
void svc_providers_recover(struct vss_service *svc);

/* Catalog rows with any of the attributes @attr, copied (targets owned). */
struct svc_rows {
	struct vss_catalog_shadow *rows;
	size_t count, cap;
	unsigned int attr;
};
int svc_provider_rows(struct vss_service *svc, unsigned int attr, struct svc_rows *r,
		      struct vss_error *err);
void svc_provider_rows_release(struct svc_rows *r);

/* Appends @sh (made by a provider's recover) to the service's list. */
void svc_provider_list_add(struct vss_service *svc, struct svc_shadow *sh);

/* A location (provider ops) that is sh->path: the snapshot's device or
 * directory. */
void svc_provider_location_path(struct vss_service *svc, const struct svc_shadow *sh,
				char *out, size_t len);

/* The catalog row of @m as a provider writes it in prepare, before it makes
 * anything (target not owned: @m's). */
void svc_provider_row(const struct svc_member *m, struct vss_catalog_shadow *row);

/* The mount points of every mount @want says yes to, as a JSON array: what
 * a provider's paths returns. */
struct vss_fsinfo;
json_t *svc_provider_mounts(bool (*want)(const struct vss_fsinfo *fi));

/* The mount point of the filesystem @path is on (malloc'd), or NULL. */
char *svc_provider_mount_of(const char *path);

/* What svc_shadow.origin of a shadow of @path is (malloc'd), or NULL: what
 * the first provider with origin_of says (on btrfs the root of its
 * subvolume), else its mount point. */
char *svc_provider_origin_of(struct vss_service *svc, const char *path);

#endif
