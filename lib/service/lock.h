/*
 * service/lock.h - a mutex that knows which thread holds it, so that a
 * function that must be called with it held says so with an assert
 * (svc_mutex_held) instead of a comment alone.  Used for svc->lock and the
 * writer registry's lock; condition waits go through svc_cond_wait and
 * svc_cond_timedwait, which keep the holder right across the wait.
 */
#ifndef VSS_SERVICE_LOCK_H
#define VSS_SERVICE_LOCK_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

struct svc_mutex {
	pthread_mutex_t m;
	_Atomic(const void *) holder;   /* the thread that holds it (svc_mutex_held), or NULL */
};

void svc_mutex_init(struct svc_mutex *l);
void svc_mutex_destroy(struct svc_mutex *l);
void svc_mutex_lock(struct svc_mutex *l);
void svc_mutex_unlock(struct svc_mutex *l);
/* Whether the calling thread holds @l. */
bool svc_mutex_held(struct svc_mutex *l);
/* pthread_cond_wait and pthread_cond_timedwait on @l (held). */
int svc_cond_wait(pthread_cond_t *c, struct svc_mutex *l);
int svc_cond_timedwait(pthread_cond_t *c, struct svc_mutex *l, const struct timespec *abstime);

#endif
