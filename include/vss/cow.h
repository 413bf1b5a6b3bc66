/*
 * vss/cow.h - the copy-on-write engine: a live volume (the origin) plus a
 * diff area give any number of frozen, read-only, point-in-time shadows.
 *
 * The model is VOLSNAP's.  The origin is an array of fixed-size blocks.
 * Taking a shadow copies nothing.  The first write to a block after the
 * newest shadow was taken copies the block's old content into the diff area
 * once, recorded for the newest shadow only; older shadows read through newer
 * ones, so the cost of a write does not depend on how many shadows exist.
 *
 * Threads: every function may be called from any number of threads at once,
 * on the same volume, except vss_cow_close(), which must be the last call.
 *
 * Errors: functions return 0 (or a byte count) on success and a negative
 * errno on failure; those that take a struct vss_error fill it with a
 * readable line.  Reads of an invalid shadow fail with -EIO.  Writes to the
 * origin never fail because of the diff area (full, limited, or failing):
 * the shadows that can no longer be kept exact are deleted or invalidated
 * instead, and an event says so.
 *
 * Example:
 *
 *	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
 *	struct vss_cow_volume *vol;
 *	struct vss_error err;
 *	if (vss_cow_open("/srv/disk.img", "/srv/disk.diff", &cfg,
 *			 VSS_COW_CREATE, &vol, &err) < 0)
 *		die(err.msg);
 *	vss_cow_shadow_create(vol, &(struct vss_cow_shadow_params){ ... }, &err);
 */
#ifndef VSS_COW_H
#define VSS_COW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vss/error.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define VSS_COW_BLOCK_MIN     4096u
#define VSS_COW_BLOCK_MAX     (1u << 20)
#define VSS_COW_BLOCK_DEFAULT 16384u
#define VSS_COW_UNBOUNDED     UINT64_MAX

/* A shadow's identity: a UUID in binary (uuid_t compatible). */
typedef unsigned char vss_cow_id[16];

struct vss_cow_volume;
struct vss_cow_shadow;

/* Something the operator should hear about, reported as it happens. */
enum vss_cow_event_type {
	VSS_COW_EV_SHADOW_DELETED = 1,  /* deleted to make room (diff area limit) */
	VSS_COW_EV_SHADOW_INVALID,      /* can no longer be kept exact: reads fail */
	VSS_COW_EV_DIFF_NEAR_FULL,      /* diff area passed 90% of its maximum */
	VSS_COW_EV_METADATA_ERROR,      /* the diff area's log cannot be written */
	VSS_COW_EV_WRITE_ERROR,         /* an acknowledged write could not reach the
					 * origin (the next flush fails) */
	VSS_COW_EV_BOOKMARK_LOST,       /* a bookmark could not record a change (no
					 * room, no memory): the next changes since it
					 * are unknown; .shadow names it */
};

struct vss_cow_event {
	enum vss_cow_event_type type;
	vss_cow_id shadow;          /* the shadow concerned, zero if none */
	int error;                  /* negative errno behind it, or 0 */
	const char *msg;            /* one readable line, valid during the call */
};

/*
 * Called from inside the engine: on the thread that caused the event, or on
 * the volume's flusher thread (METADATA_ERROR, WRITE_ERROR).  It must not
 * call back into the same volume.
 */
typedef void (*vss_cow_event_fn)(void *arg, const struct vss_cow_event *ev);

/* Options of vss_cow_open(); start from VSS_COW_CONFIG_INIT.  Members
 * may be added at the end: @size tells the library which it has. */
struct vss_cow_config {
	size_t size;                /* sizeof(struct vss_cow_config) */
	uint32_t block_size;        /* only when creating: power of two, 4K..1M */
	uint64_t max_diff_bytes;    /* only when creating: diff area maximum (VSS_COW_UNBOUNDED: none);
	                             * an existing diff area keeps its own, see vss_cow_set_max_diff() */
	vss_cow_event_fn event;     /* may be NULL */
	void *event_arg;
};

#define VSS_COW_CONFIG_INIT { .size = sizeof(struct vss_cow_config), \
	.block_size = VSS_COW_BLOCK_DEFAULT, .max_diff_bytes = VSS_COW_UNBOUNDED }

/* Flags for vss_cow_open(). */
#define VSS_COW_CREATE  0x1u    /* make a new diff area if @diff_path does not exist */

/*
 * Opens the origin (a file or block device, read-write) and its diff area (a
 * file).  With VSS_COW_CREATE a missing diff area is created with
 * @cfg->block_size; an existing one keeps the block size it was made with.
 * The diff area is replayed: persistent shadows come back exactly as they
 * were at the last durable point; non-persistent ones are deleted.  A diff
 * area that is corrupt, truncated or made for an origin of another size is
 * refused with -EUCLEAN or -EINVAL and a message, and is not modified.
 * @cfg NULL means VSS_COW_CONFIG_INIT; a @cfg->size that is not set is
 * refused with -EINVAL, a member this library does not know with -E2BIG.
 * On success *@out owns both files until vss_cow_close().
 */
int vss_cow_open(const char *origin_path, const char *diff_path,
		 const struct vss_cow_config *cfg, unsigned int flags,
		 struct vss_cow_volume **out, struct vss_error *err);

/* Makes everything durable (origin and diff area) and frees @vol.
 * Open shadow handles must have been closed.  Returns the first error met
 * while making things durable (the volume is freed regardless). */
int vss_cow_close(struct vss_cow_volume *vol);

uint64_t vss_cow_size(const struct vss_cow_volume *vol);
uint32_t vss_cow_block_size(const struct vss_cow_volume *vol);

/* Changes the diff area maximum; shrinking below what is used deletes the
 * oldest shadows until it fits.  Persisted in the diff area. */
int vss_cow_set_max_diff(struct vss_cow_volume *vol, uint64_t max_bytes,
			 struct vss_error *err);

/*
 * Reads or writes the live volume: any offset and length, partial and
 * unaligned blocks included.  Return the number of bytes transferred, short
 * only at the end of the volume (0 at or past it), or a negative errno.
 */
ssize_t vss_cow_read(struct vss_cow_volume *vol, void *buf, size_t len, uint64_t off);
ssize_t vss_cow_write(struct vss_cow_volume *vol, const void *buf, size_t len, uint64_t off);

/* Makes every write acknowledged so far durable on the origin.  A write
 * acknowledged before its copy was durable (redo queue) and that could not
 * be written to the origin later is reported here, once, as its error. */
int vss_cow_flush(struct vss_cow_volume *vol);

/* ---- shadows ---- */

#define VSS_COW_SHADOW_PERSISTENT 0x1u  /* survives close and crashes */

struct vss_cow_shadow_params {
	vss_cow_id id;          /* chosen by the caller, unique in the volume */
	vss_cow_id set_id;      /* the shadow set it belongs to (opaque here) */
	uint32_t flags;         /* VSS_COW_SHADOW_* */
};

/*
 * Takes a shadow of the volume as it is now: every write that returned
 * before this call is in it, none that starts after it returns is.  O(1):
 * nothing is copied or scanned.  A persistent shadow is durable (origin and
 * diff area flushed) when this returns.  -EEXIST if the id is taken,
 * -EMLINK past the per-volume limit (VSS_COW_MAX_SHADOWS).
 */
#define VSS_COW_MAX_SHADOWS 4096
int vss_cow_shadow_create(struct vss_cow_volume *vol,
			  const struct vss_cow_shadow_params *params,
			  struct vss_error *err);

/* Deletes one shadow (oldest, newest or in the middle); every other shadow
 * stays exact.  Open handles to it fail with -ESTALE from then on. */
int vss_cow_shadow_delete(struct vss_cow_volume *vol, const vss_cow_id id,
			  struct vss_error *err);

enum vss_cow_shadow_state {
	VSS_COW_SHADOW_VALID = 1,
	VSS_COW_SHADOW_INVALID,     /* could not be kept exact; reads fail with -EIO */
};

struct vss_cow_shadow_info {
	vss_cow_id id;
	vss_cow_id set_id;
	uint32_t flags;             /* VSS_COW_SHADOW_* */
	enum vss_cow_shadow_state state;
	uint64_t created_ns;        /* CLOCK_REALTIME at creation */
	uint64_t diff_bytes;        /* diff area bytes this shadow owns */
	uint32_t seq;               /* creation order in this volume, 1 = first ever */
};

/* Lists the shadows, oldest first, into a malloc'd array the caller frees. */
int vss_cow_shadow_list(struct vss_cow_volume *vol,
			struct vss_cow_shadow_info **out, size_t *count);

/* A handle for reading one shadow; holds no lock.  Released with
 * vss_cow_shadow_close() before vss_cow_close(). -ENOENT if no such shadow. */
int vss_cow_shadow_open(struct vss_cow_volume *vol, const vss_cow_id id,
			struct vss_cow_shadow **out);
void vss_cow_shadow_close(struct vss_cow_shadow *sh);

/* Reads what the volume held at the shadow's instant.  Same contract as
 * vss_cow_read(); -EIO if the shadow is invalid, -ESTALE if deleted. */
ssize_t vss_cow_shadow_read(struct vss_cow_shadow *sh, void *buf, size_t len,
			    uint64_t off);

/* ---- changed-block tracking ---- */

struct vss_cow_extent {
	uint64_t offset;            /* bytes, block aligned */
	uint64_t length;            /* bytes; the last extent may end at the volume end */
};

/*
 * Lists, as sorted, merged extents, the blocks written between @from and
 * shadow @to (@to NULL: between @from and now).  @from is a shadow, or a
 * bookmark (below): the shadow it was made from may be deleted since.
 * @from must be older than @to.  A block may be listed although its
 * content came back to what it was; no written block is left out.
 * -ENOENT if either is unknown, -EIO if @from is an invalid shadow with no
 * bookmark, -ESTALE if @from's bookmark was lost (the message says why: read
 * everything instead).  The array is malloc'd; caller frees.
 */
int vss_cow_changed_extents(struct vss_cow_volume *vol, const vss_cow_id from,
			    const vss_cow_id to, struct vss_cow_extent **out,
			    size_t *count, struct vss_error *err);

/*
 * Bookmarks: changed-block tracking that outlives a shadow.  A bookmark is
 * made from a valid shadow and named by its id; it keeps which blocks were
 * written since that shadow's instant after the shadow is deleted, through
 * closes and reopens, for vss_cow_changed_extents().  While a shadow at or
 * after it exists the COPY records say it, at no cost; with none, a write
 * marks the block in the bookmark's map, which the log keeps without a sync.
 * After a crash a bookmark that may have missed writes is lost (so it is
 * when the diff area fails, or has no room to record a change): it is
 * never wrong, only gone, and vss_cow_changed_extents() says why.
 */
#define VSS_COW_MAX_BOOKMARKS 64

/* Makes a bookmark of shadow @id (valid); durable on return.  A volume has
 * at most VSS_COW_MAX_BOOKMARKS: past it the oldest lost one goes, else the
 * oldest whose shadow is gone (an event says so), else -EMLINK.  -ENOENT,
 * -EIO (the shadow is invalid), -EEXIST (it has one). */
int vss_cow_bookmark_create(struct vss_cow_volume *vol, const vss_cow_id id,
			    struct vss_error *err);
/* Deletes the bookmark named @id; durable on return.  -ENOENT if none. */
int vss_cow_bookmark_delete(struct vss_cow_volume *vol, const vss_cow_id id,
			    struct vss_error *err);

enum vss_cow_bookmark_state {
	VSS_COW_BOOKMARK_TRACKING = 1,
	VSS_COW_BOOKMARK_LOST,      /* changes since it are unknown: read everything */
};

struct vss_cow_bookmark_info {
	vss_cow_id id;              /* its shadow's */
	uint32_t seq;               /* its shadow's */
	enum vss_cow_bookmark_state state;
	uint64_t created_ns;        /* its shadow's instant */
	uint64_t marked_blocks;     /* blocks in its map (changes the COPY records keep are not) */
	int shadow_exists;          /* its shadow is still there */
	char why[96];               /* LOST: why, one line; else "" */
};

/* Lists the bookmarks, oldest first, into a malloc'd array the caller frees. */
int vss_cow_bookmark_list(struct vss_cow_volume *vol, struct vss_cow_bookmark_info **out,
			  size_t *count);

/* ---- revert ---- */

/*
 * Rolls the volume back to shadow @id in place: the blocks written since
 * its instant get their old content back from the diff area, in time
 * proportional to their number.  Shadows newer than it are deleted; it and
 * older ones stay exact; bookmarks see the blocks rewritten as written.
 * Nothing may use the volume meanwhile (the caller unmounts it): writes and
 * reads wait.  A crash in the middle finishes the revert at the next open.
 * -ENOENT, -EIO if the shadow is invalid or the diff area failed.
 */
int vss_cow_revert(struct vss_cow_volume *vol, const vss_cow_id id, struct vss_error *err);

/* ---- accounting ---- */

struct vss_cow_usage {
	uint64_t used_bytes;        /* diff area bytes in use: copied blocks, log, header */
	uint64_t allocated_bytes;   /* bytes the diff area file occupies on disk */
	uint64_t max_bytes;         /* VSS_COW_UNBOUNDED if none */
	uint64_t copied_blocks;     /* blocks held in the diff area */
	uint64_t index_bytes;       /* memory of the in-memory block index */
	uint32_t shadows;
};

int vss_cow_usage(struct vss_cow_volume *vol, struct vss_cow_usage *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
