/*
 * service/retire.h - shadows deleted after their requester has gone on
 * (retire.c): shadow.delete with "detach" detaches an exposed shadow's
 * mount at once and replies; a thread of vssd's own then lets the
 * filesystem go (its slow part) and deletes the shadow once nothing reads
 * it any more.
 */
#ifndef VSS_SERVICE_RETIRE_H
#define VSS_SERVICE_RETIRE_H

#include <vss/error.h>

struct vss_service;

/* Starts the thread (vssd's start); -errno with why if it cannot. */
int svc_retire_start(struct vss_service *svc, struct vss_error *err);
/* Finishes every queued shadow (those still in use deleted too), then
 * stops the thread: nothing queued is left undeleted.  Called without
 * svc->lock, once no request can queue more. */
void svc_retire_stop(struct vss_service *svc);
/*
 * Queues the shadow @id (svc->lock held, sh->retiring set), whose mount was
 * detached with its filesystem held by the descriptor @hold (taken over),
 * read through the loop device @loop whose backing file was @backing: the
 * thread closes @hold, waits until @loop no longer reads @backing, then
 * deletes the shadow; while something else still holds the filesystem,
 * the shadow is kept (listed again, "deleting") and looked at again.
 */
/*
 * Waits (svc->lock held, dropped while waiting) until no shadow of the
 * volume @name is being let go (held or not), up to 5 s; then 0, or
 * -EBUSY with why: still being unmounted, or held (still in use, the
 * processes named).  The
 * caller looks @name up again afterwards: it may have gone meanwhile.
 */
int svc_retire_wait(struct vss_service *svc, const char *name, struct vss_error *err);
int svc_retire_queue(struct vss_service *svc, const char *id, const char *loop,
		     const char *backing, int hold, struct vss_error *err);

#endif
