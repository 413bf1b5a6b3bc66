/*
 * provider/btrfs/btrfs.h - the btrfs snapshot provider: a shadow of a path on
 * btrfs is a read-only snapshot of the subvolume that holds it, made with
 * libbtrfsutil.  The service reaches this through its provider operations;
 * doc/btrfs-provider.md is the user's side of the same story.
 *
 * Life of one shadow:
 *
 *	vss_btrfs_snapshot_prepare()   before the freeze: resolve, create the
 *	                               snapshot directory, flush dirty data
 *	(the service freezes the other members of the set; NOT this filesystem:
 *	 a snapshot of a FIFREEZE'd btrfs blocks until it is thawed)
 *	vss_btrfs_snapshot_commit()    inside the freeze window: flushoncommit
 *	                               on, read-only snapshot, flushoncommit back
 *	(thaw)
 *	vss_btrfs_snapshot_path()      where to read it
 *	vss_btrfs_snapshot_free()      the handle only; the snapshot stays
 *	vss_btrfs_delete()             with its set
 *
 * Where snapshots live: <mount point>/.vss-snapshots/ (a subvolume, mode
 * 0700, owned by root) at the root of the btrfs mount that holds the target,
 * one entry per shadow named
 *
 *	vss.<set id>.<shadow id>.persistent    or    vss.<set id>.<shadow id>.temporary
 *
 * (IDs as lower-case UUIDs).  Only read-only subvolumes named so, in a
 * directory named so, are ever listed or deleted.
 *
 * Nested subvolumes: a btrfs snapshot does not descend into subvolumes below
 * the snapshotted one; they appear in it as empty directories.  The probe
 * lists them (vss_btrfs_info.nested) so the caller can warn, or take one more
 * shadow of each.
 *
 * Point in time: a plain snapshot under buffered writes is not exact (files
 * renamed into place show up empty or stale).  Commit therefore switches the
 * filesystem's flushoncommit option on around the snapshot, through
 * fspick()/fsconfig(), which touches that one superblock option and nothing
 * else, and switches it back off unless it was on before.  A process that
 * dies in between leaves a note in /run/lock/vss-btrfs-<fs uuid>.lock; the
 * next commit or vss_btrfs_cleanup() on that filesystem switches it back off.
 *
 * Errors: 0 or a negative errno, with one readable line in @err.
 * Threads: any function from any thread; commits on one filesystem are
 * serialised (across processes too) by a lock on that file.
 * Requires CAP_SYS_ADMIN.
 */
#ifndef VSS_PROVIDER_BTRFS_H
#define VSS_PROVIDER_BTRFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <vss/error.h>

#include "provider/fsinfo.h"

#define VSS_BTRFS_SNAPSHOT_DIR ".vss-snapshots"
#define VSS_BTRFS_LOCK_DIR     "/run/lock"

/* What vss_btrfs_probe() found.  The struct owns every pointer in it. */
struct vss_btrfs_info {
	struct vss_fsinfo fs;      /* the btrfs mount that holds the target */
	char *subvol_root;         /* absolute path of the root of the subvolume holding the target */
	char *subvol_path;         /* that subvolume from the top level: "" (top level), "@home", "vol/nested" */
	char *rel_path;            /* the target relative to subvol_root: "" for the root itself */
	uint64_t subvol_id;
	unsigned char fs_uuid[16];
	char **nested;             /* subvolumes below the target (which the snapshot will show as
	                            * empty directories), relative to the target; n_nested of them */
	size_t n_nested;
};

/*
 * Resolves @path (any existing path on btrfs).  Refuses a path on any other
 * filesystem with vss_fsinfo_check()'s message (or, for a local one that
 * another provider may take, "... is not on btrfs").  Release @info with
 * vss_btrfs_info_release().
 */
int vss_btrfs_probe(const char *path, struct vss_btrfs_info *info, struct vss_error *err);
void vss_btrfs_info_release(struct vss_btrfs_info *info);

struct vss_btrfs_snapshot_params {
	unsigned char set_id[16];
	unsigned char shadow_id[16];
	bool persistent;           /* survives a restart of the service (see vss_btrfs_cleanup()) */
};

/* Timings of the last commit, for logs and the measurements in the doc. */
struct vss_btrfs_commit_stats {
	bool switched;             /* flushoncommit was off and was switched on and back off */
	uint64_t lock_us;          /* waiting for other commits on the same filesystem */
	uint64_t enable_us;        /* switching flushoncommit on */
	uint64_t snapshot_us;      /* the snapshot ioctl */
	uint64_t restore_us;       /* switching it back off */
};

struct vss_btrfs_snapshot;

/*
 * Before the freeze: probes @path, creates <mount>/.vss-snapshots if needed,
 * opens what commit needs, and syncs the filesystem so that commit has
 * little left to flush.  Makes no snapshot.  On success *@snapp is a new
 * handle, freed with vss_btrfs_snapshot_free().
 */
int vss_btrfs_snapshot_prepare(const char *path, const struct vss_btrfs_snapshot_params *params,
			       struct vss_btrfs_snapshot **snapp, struct vss_error *err);

/*
 * Inside the freeze window: takes the read-only snapshot, with flushoncommit
 * in force.  The mount options are the same afterwards as before, on success
 * and on every error.  Once per handle.  On failure no snapshot exists.
 */
int vss_btrfs_snapshot_commit(struct vss_btrfs_snapshot *snap, struct vss_error *err);

/* The snapshot's root (<mount>/.vss-snapshots/vss.SET.SHADOW.KIND); valid
 * from prepare on, exists after commit.  Lives as long as the handle. */
const char *vss_btrfs_snapshot_path(const struct vss_btrfs_snapshot *snap);

/* The target inside the snapshot (the snapshot's path + info.rel_path). */
const char *vss_btrfs_snapshot_target(const struct vss_btrfs_snapshot *snap);

/* What prepare found.  Lives as long as the handle. */
const struct vss_btrfs_info *vss_btrfs_snapshot_info(const struct vss_btrfs_snapshot *snap);

const struct vss_btrfs_commit_stats *vss_btrfs_snapshot_stats(const struct vss_btrfs_snapshot *snap);

/* Frees the handle; never deletes the snapshot.  NULL is fine. */
void vss_btrfs_snapshot_free(struct vss_btrfs_snapshot *snap);

/*
 * Deletes the snapshot at @snapshot_path, which must be one of ours (a
 * read-only subvolume named vss.* in a .vss-snapshots directory); anything
 * else is refused with -EINVAL.
 */
int vss_btrfs_delete(const char *snapshot_path, struct vss_error *err);

/* One snapshot found by vss_btrfs_list(); valid during the callback. */
struct vss_btrfs_entry {
	const char *path;          /* the snapshot */
	const char *mount_point;   /* the mount it was found under */
	const char *origin;        /* the snapshotted subvolume from the top level ("" for the top
	                            * level), or NULL if it no longer exists */
	unsigned char set_id[16];
	unsigned char shadow_id[16];
	unsigned char origin_uuid[16];
	uint64_t subvol_id;
	struct timespec created;
	bool persistent;
	bool read_only;            /* false: not made by vss (never deleted by cleanup) */
};

/*
 * Calls @fn for every vss snapshot under @mount_point (a btrfs mount point),
 * or, when it is NULL, under every btrfs mount (each .vss-snapshots
 * directory once, however many mounts show it).  @fn returns 0 to go on;
 * anything else stops the listing and is returned.
 */
int vss_btrfs_list(const char *mount_point,
		   int (*fn)(void *arg, const struct vss_btrfs_entry *e), void *arg,
		   struct vss_error *err);

/*
 * Start-up recovery for @mount_point (NULL: every btrfs mount): switches
 * flushoncommit back off where a dead process left it on, then deletes each
 * snapshot for which @keep returns false.  @keep NULL keeps exactly the
 * persistent ones.  Snapshots that are not read-only are never deleted.
 * *@deleted (may be NULL) receives how many were deleted.  Goes on past a
 * failed deletion and returns the first error.
 */
int vss_btrfs_cleanup(const char *mount_point,
		      bool (*keep)(void *arg, const struct vss_btrfs_entry *e), void *arg,
		      unsigned *deleted, struct vss_error *err);

/* Formats a 16-byte ID as a lower-case UUID (37 bytes with the NUL). */
void vss_btrfs_format_id(const unsigned char id[16], char out[37]);

#endif
