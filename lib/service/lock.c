/*
 * service/lock.c - see lock.h.  A thread is known by the address of a
 * thread-local of its own: unique among the live threads, free to compute.
 */
#include "service/lock.h"

static const void *this_thread(void)
{
	static _Thread_local char me;

	return &me;
}

void svc_mutex_init(struct svc_mutex *l)
{
	pthread_mutex_init(&l->m, NULL);
	l->holder = NULL;
}

void svc_mutex_destroy(struct svc_mutex *l)
{
	assert(!l->holder);
	pthread_mutex_destroy(&l->m);
}

void svc_mutex_lock(struct svc_mutex *l)
{
	pthread_mutex_lock(&l->m);
	assert(!l->holder);
	l->holder = this_thread();
}

void svc_mutex_unlock(struct svc_mutex *l)
{
	assert(svc_mutex_held(l));
	l->holder = NULL;
	pthread_mutex_unlock(&l->m);
}

bool svc_mutex_held(struct svc_mutex *l)
{
	return l->holder == this_thread();
}

int svc_cond_wait(pthread_cond_t *c, struct svc_mutex *l)
{
	int rc;

	assert(svc_mutex_held(l));
	l->holder = NULL;
	rc = pthread_cond_wait(c, &l->m);
	l->holder = this_thread();
	return rc;
}

int svc_cond_timedwait(pthread_cond_t *c, struct svc_mutex *l, const struct timespec *abstime)
{
	int rc;

	assert(svc_mutex_held(l));
	l->holder = NULL;
	rc = pthread_cond_timedwait(c, &l->m, abstime);
	l->holder = this_thread();
	return rc;
}
