/*
 * provider/provider.h - snapshot providers as the service sees them: one
 * struct of operations per provider, and the registry that picks one per
 * target.  The coordinator (shadowset.c) drives a set through them:
 * select (supports) -> prepare -> [freeze] -> commit -> [thaw] -> adopt,
 * or abort from any point; a shadow later ends with delete.  At start each
 * provider's recover finds what an earlier run of this instance left.
 * doc/providers.md is the user's side of the same story.
 */
#ifndef VSS_PROVIDER_PROVIDER_H
#define VSS_PROVIDER_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include <vss/cow.h>
#include <vss/error.h>

#include "service/catalog.h"

struct vss_service;
struct svc_caller;
struct svc_volume;
struct svc_shadow;

/*
 * One target of a set while it is being taken.  Lives on the coordinator's
 * stack from selection until the shadow is adopted or the set aborted.
 */
struct svc_member {
	const struct vss_provider_ops *prov;
	const char *target;            /* as the requester gave it; not owned */
	vss_cow_id id;                 /* the new shadow's ID */
	const unsigned char *set_id;   /* the set's ID (16 bytes); not owned */
	bool persistent;
	bool no_writers;
	struct svc_volume *vol;        /* built-in only: its gate is closed around commit */
	void *priv;                    /* the provider's, from prepare until adopt or abort */
	bool prepared;                 /* prepare succeeded: abort or adopt must follow */
	bool taken;                    /* commit succeeded: a shadow exists */
	bool frozen;                   /* the coordinator FIFREEZE'd vol->mount_dir */
	char *warning;                 /* owned: one line for the requester and the log, or NULL */
};

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
	unsigned int catalog_attr;     /* VSS_CATALOG_ATTR_* that marks its rows (0: built-in) */

	/* 0 if it can shadow @target (a volume name or a path); else a negative
	 * errno and why in @err.  Quick, no side effects. */
	int (*supports)(struct vss_service *svc, const char *target, struct vss_error *err);
	/* Before the freeze: resolves m->target and gets ready (may be slow, may
	 * do I/O); makes no shadow.  On failure nothing is left to undo. */
	int (*prepare)(struct vss_service *svc, struct svc_member *m, struct vss_error *err);
	/* Inside the freeze window: makes the shadow.  Fast; no I/O to the
	 * frozen filesystems.  On failure no shadow exists. */
	int (*commit)(struct vss_service *svc, struct svc_member *m, struct vss_error *err);
	/* The set is aborted: deletes the shadow if m->taken, undoes prepare. */
	void (*abort)(struct vss_service *svc, struct svc_member *m);
	/* After the thaw: fills @sh from @m (sh->path, sh->origin, sh->target_path) and serves
	 * it; m->priv is released whatever the outcome. */
	int (*adopt)(struct vss_service *svc, struct svc_member *m, struct svc_shadow *sh,
		     struct vss_error *err);
	/* The shadow's read-only device or directory. */
	void (*location)(struct vss_service *svc, const struct svc_shadow *sh, char *out,
			 size_t len);
	/* Deletes what the provider made for @sh (not its catalog row, not its
	 * place in the service's list). */
	int (*remove)(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err);
	/* Optional: mounts @sh read-only, nosuid, nodev (and noexec unless
	 * VSS_FS_EXEC in @flags) on the directory @dirfd (checked, nothing
	 * mounted there: svc_mountpoint_open()), and sets sh->expose_*; NULL
	 * means the coordinator mounts the device's filesystem. */
	int (*expose)(struct vss_service *svc, struct svc_shadow *sh, int dirfd,
		      unsigned int flags, json_t **res, struct vss_error *err);
	/* Optional: at start, deletes what an earlier run of this instance made
	 * and did not keep (not persistent, or never recorded as done), lists
	 * the persistent shadows again, and never touches what other instances
	 * made. */
	int (*recover)(struct vss_service *svc, struct vss_error *err);
	/* What it would take now (mount points, volumes), for "list providers". */
	json_t *(*paths)(struct vss_service *svc);
};

extern const struct vss_provider_ops svc_provider_builtin;
extern const struct vss_provider_ops svc_provider_btrfs;
extern const struct vss_provider_ops svc_provider_live;

/* Every provider, highest priority first, NULL-terminated ("live" last). */
extern const struct vss_provider_ops *const svc_providers[];

const struct vss_provider_ops *svc_provider_find(const char *name);

/*
 * Picks the provider for @target: @forced (a name, or NULL), else the
 * highest-priority one that supports it.  A path no provider can shadow is
 * refused with a line naming its filesystem type and what would work
 * instead, unless @allow_live: then "live" takes it and *@warning (owned by
 * the caller) says why.
 */
int svc_provider_select(struct vss_service *svc, const char *target, const char *forced,
			bool allow_live, const struct vss_provider_ops **out, char **warning,
			struct vss_error *err);

/*
 * Refuses a set in which a member of another provider (which is not frozen
 * and writes while it commits) lives on a loop device whose image is on a
 * filesystem the set freezes (its commit would wait for the thaw), or is a
 * volume of the same set (its commit would wait for the volume's gate,
 * which the coordinator holds until every commit returned).
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

/* The mount point of the filesystem @path is on (malloc'd), or NULL. */
char *svc_provider_mount_of(const char *path);

/* What svc_shadow.origin of a shadow of @path is (malloc'd), or NULL:
 * on btrfs the root of its subvolume, elsewhere its mount point. */
char *svc_provider_origin_of(const char *path);
char *svc_provider_btrfs_origin_of(const char *path);

#endif
