/*
 * requester/lease_i.h - keeping a session's lease (lease.c): vssd aborts a
 * backup or restore it does not hear from within its lease, so from the
 * session's start to its end a thread of the library's own sends
 * backup.status every third of the lease, sharing the caller's connection
 * under the caller's lock.  Used by requester.c (backups) and restore.c.
 */
#ifndef VSS_REQUESTER_LEASE_I_H
#define VSS_REQUESTER_LEASE_I_H

#include <pthread.h>
#include <stdbool.h>

#include <vss/client.h>

struct req_lease {
	struct vss_client *c;            /* the caller's */
	pthread_mutex_t *call_lock;      /* the caller's: held around every call on c */
	pthread_t thread;
	bool running, stop;              /* lock */
	unsigned int every_ms;
	pthread_mutex_t lock;
	pthread_cond_t cond;             /* monotonic clock */
};

void req_lease_init(struct req_lease *l, struct vss_client *c, pthread_mutex_t *call_lock);
/* Starts renewing a lease of @lease_ms (0: vssd did not say, an older
 * vssd has none: nothing to do). */
void req_lease_start(struct req_lease *l, unsigned long long lease_ms);
/* Stops and joins the thread, if it runs. */
void req_lease_stop(struct req_lease *l);
void req_lease_release(struct req_lease *l);

#endif
