/*
 * service/guardian.h - the guarantee that nothing stays frozen.  Before vssd
 * freezes filesystems it starts a guardian: a small process of its own
 * (forked, in its own session, holding none of vssd's descriptors) that
 * opens the same mount points and thaws them (FITHAW) if vssd dies - its
 * end of a pipe closes - or if the hold passes its bound.  Thawing a
 * filesystem that is not frozen is harmless (EINVAL), so the guardian needs
 * no knowledge of how far vssd got.
 *
 * Protocol on the pipes: vssd → guardian "D" when it has thawed everything
 * (the guardian exits); guardian → vssd "R" once it holds every mount point,
 * then "T" if it had to thaw on timeout.
 */
#ifndef VSS_SERVICE_GUARDIAN_H
#define VSS_SERVICE_GUARDIAN_H

#include <stddef.h>

#include <vss/error.h>

#define VSS_GUARDIAN_MAX_DIRS 64
#define VSS_FREEZE_LIMIT_MS   10000   /* the longest a filesystem stays frozen */

struct vss_guardian;

/* Starts a guardian for @dirs (mount points about to be frozen) and waits
 * until it holds them.  The bound starts now. */
int vss_guardian_start(const char *const *dirs, size_t n, unsigned int limit_ms,
		       struct vss_guardian **out, struct vss_error *err);

/*
 * Tells the guardian everything is thawed and reaps it.  Returns 0, or
 * -ETIMEDOUT if the guardian had already thawed on its own (the hold passed
 * its bound, so what was taken under the freeze cannot be trusted).
 */
int vss_guardian_finish(struct vss_guardian *g);

#endif
