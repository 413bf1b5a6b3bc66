/*
 * service/guardian.h - the guarantee that nothing stays frozen.  Before vssd
 * freezes filesystems it starts a guardian: a small process of its own
 * (forked, in its own session, holding none of vssd's descriptors) that
 * opens the same mount points and thaws them (FITHAW) if vssd dies - its
 * end of a pipe closes - or if the hold passes its bound.  Thawing a
 * filesystem that is not frozen is harmless (EINVAL), so the guardian needs
 * no knowledge of how far vssd got.
 *
 * A thaw can block.  The frozen filesystems live on loop devices whose
 * backing files are vssd's own FUSE devices, and ext4's thaw writes its
 * superblock synchronously (ext4_unfreeze -> ext4_commit_super, waiting in
 * D state on the buffer): that write goes through the loop device to the
 * FUSE server, vssd.  A vssd that is stopped (SIGSTOP, a debugger) or stuck
 * never answers it, so a FITHAW made by the guardian itself would wait as
 * long as vssd does, and no signal can end it.  So the guardian thaws in a
 * child of its own and escalates while that child has not finished:
 *
 *   bound reached (or vssd gone, or told to stop): fork the thawer
 *   + VSS_GUARDIAN_THAW_WAIT_MS     vssd stopped (state T)?  SIGCONT: a
 *                                   stopped vssd serves the write at once
 *   + VSS_GUARDIAN_THAW_ESCALATE_MS abort vssd's FUSE connection
 *                                   (/sys/fs/fuse/connections/N/abort, N from
 *                                   the device tree's st_dev; fusectl is
 *                                   mounted in a private mount namespace if
 *                                   it is not mounted): the pending write
 *                                   fails with EIO, which ext4's thaw
 *                                   ignores, so the thaw returns; then
 *                                   SIGKILL to vssd, whose devices are dead
 *                                   now: its service manager restarts it and
 *                                   start's cleanup of a killed vssd runs
 *   + VSS_GUARDIAN_THAW_LAST_MS     give up (logged): nothing else can help
 *
 * So a filesystem stays frozen at most the bound plus about
 * VSS_GUARDIAN_THAW_ESCALATE_MS, whether vssd is alive, stopped or dead.
 * vssd is only signalled while it is still the guardian's parent (no other
 * process that reused its PID).
 *
 * Device-mapper devices a set holds suspended (an LVM provider's hold, which
 * also freezes their filesystems) are resumed the same way, after the
 * thaws: a resume of a device that is not suspended does nothing.
 *
 * Protocol on the pipes: vssd → guardian "D" when it has thawed everything
 * (the guardian exits); guardian → vssd "R" once it holds every mount point,
 * then "T" if it had to thaw on timeout.
 */
#ifndef VSS_SERVICE_GUARDIAN_H
#define VSS_SERVICE_GUARDIAN_H

#include <stddef.h>
#include <sys/types.h>

#include <vss/error.h>

#define VSS_GUARDIAN_MAX_DIRS 64
#define VSS_FREEZE_LIMIT_MS   10000   /* the longest a filesystem stays frozen */
#define VSS_GUARDIAN_THAW_WAIT_MS     1000   /* a thaw that takes longer: SIGCONT */
#define VSS_GUARDIAN_THAW_ESCALATE_MS 4000   /* still blocked: abort FUSE, kill vssd */
#define VSS_GUARDIAN_THAW_LAST_MS     3000   /* then give up */

struct vss_guardian;

struct vss_guardian_config {
	unsigned int limit_ms;          /* the bound, from vss_guardian_start() */
	pid_t server;                   /* vssd: continued or killed if a thaw blocks */
	const char *device_tree;        /* the FUSE mount behind the frozen filesystems
	                                 * (RUN/dev), or NULL: no connection to abort */
	const dev_t *resume;            /* device-mapper devices the set holds suspended
	                                 * (LVM): resumed with the thaw; n_resume of them */
	size_t n_resume;
};

/* Starts a guardian for @dirs (mount points about to be frozen) and waits
 * until it holds them.  The bound starts now. */
int vss_guardian_start(const char *const *dirs, size_t n,
		       const struct vss_guardian_config *cfg, struct vss_guardian **out,
		       struct vss_error *err);

/*
 * Tells the guardian everything is thawed and reaps it.  Returns 0, or
 * -ETIMEDOUT if the guardian had already thawed on its own (the hold passed
 * its bound, so what was taken under the freeze cannot be trusted).
 */
int vss_guardian_finish(struct vss_guardian *g);

#endif
