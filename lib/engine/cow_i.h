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

#endif
