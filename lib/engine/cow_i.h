/*
 * engine/cow_i.h - private entry points of the copy-on-write engine, for the
 * tests and for other layers of libvss.  Not installed.
 */
#ifndef VSS_ENGINE_COW_I_H
#define VSS_ENGINE_COW_I_H

#include <vss/cow.h>
#include "io/vfs.h"

/* vss_cow_open() with the files reached through @vfs instead of POSIX. */
int vss_cow_open_vfs(struct vss_vfs *vfs, const char *origin_path,
		     const char *diff_path, const struct vss_cow_config *cfg,
		     unsigned int flags, struct vss_cow_volume **out,
		     struct vss_error *err);

/* Waits until the flusher has nothing left to do with what was written so
 * far (design note 7), so that a test sees its effects at once. */
void vss_cow_quiesce(struct vss_cow_volume *vol);

/* Waits until the diff-area readahead queued so far has been asked of the
 * kernel (engine/prefetch.h); returns how many requests it has done in all
 * and, in *@hinted (may be NULL), the diff-area bytes they hinted. */
uint64_t vss_cow_readahead_wait(struct vss_cow_volume *vol, uint64_t *hinted);

/*
 * What the owner of a volume (the service) guards it with, beyond what
 * vss_cow_open() does (design note 9 in engine/open.c).
 */
#define VSS_COW_MARKS 2
struct vss_cow_guard {
	/* 16 bytes, or NULL: the identity the diff area must have (see
	 * vss_cow_diff_identity()); another one is refused with -ESTALE
	 * before anything in it is replayed or written. */
	const unsigned char *expect_id;
	/* Files (or NULL) that record a failure of the diff area like
	 * DIFF.failed beside it: one that exists at open fails the diff
	 * area, and a failure the diff area cannot take writes each. */
	const char *marks[VSS_COW_MARKS];
};

/* vss_cow_open() with @guard (may be NULL). */
int vss_cow_open_guarded(const char *origin_path, const char *diff_path,
			 const struct vss_cow_config *cfg, unsigned int flags,
			 const struct vss_cow_guard *guard, struct vss_cow_volume **out,
			 struct vss_error *err);

/* The diff area's identity (the uuid it was made with: a copy of the file
 * keeps it) and the device and inode of the file the volume has open (0
 * when unknown), to tell whether its path still leads to it. */
void vss_cow_diff_identity(struct vss_cow_volume *vol, unsigned char id[16], uint64_t *dev,
			   uint64_t *ino);

/* How many shadow handles are open (vss_cow_shadow_open() not yet closed):
 * the volume cannot be closed before they are. */
int vss_cow_open_handles(struct vss_cow_volume *vol);

/*
 * The diff area's file is no longer at its path (deleted or replaced while
 * open): nothing in it survives a restart.  Applies the redo queue to the
 * origin, makes every shadow non-persistent (they stay readable while the
 * volume is open) and refuses persistent shadows from then on, saying @why.
 */
void vss_cow_detach(struct vss_cow_volume *vol, const char *why);

/*
 * Records a shadow that a lost diff area held, as invalid from the start
 * (reads fail with -EIO), with @params and its original @created_ns, so
 * that it stays listed, with its id, until it is deleted.  Durable on return.
 */
int vss_cow_shadow_create_lost(struct vss_cow_volume *vol,
			       const struct vss_cow_shadow_params *params, uint64_t created_ns,
			       struct vss_error *err);

#endif
