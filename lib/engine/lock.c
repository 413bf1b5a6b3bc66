/*
 * engine/lock.c - the engine's locks and, in builds with assertions, who
 * holds them (engine/lock.h).
 *
 * A thread is known by the address of a thread-local byte of its own.  The
 * rwlocks a thread holds shared are in a small thread-local table: the
 * engine never holds more than two at once (a volume's gate and index
 * lock), and a thread that fills the table is a bug assert() reports.
 */
#include <assert.h>

#include "engine/lock.h"

void cow_rwlock_init(struct cow_rwlock *l, int prefer_writer)
{
	pthread_rwlockattr_t a;

	pthread_rwlockattr_init(&a);
	if (prefer_writer)
		pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&l->rw, &a);
	pthread_rwlockattr_destroy(&a);
#ifndef NDEBUG
	l->excl = NULL;
#endif
}

void cow_rwlock_destroy(struct cow_rwlock *l)
{
	assert(!l->excl);
	pthread_rwlock_destroy(&l->rw);
}

void cow_mutex_init(struct cow_mutex *m)
{
	pthread_mutex_init(&m->m, NULL);
#ifndef NDEBUG
	m->owner = NULL;
#endif
}

void cow_mutex_destroy(struct cow_mutex *m)
{
	assert(!m->owner);
	pthread_mutex_destroy(&m->m);
}

#ifndef NDEBUG

#define SHARED_MAX 8

static _Thread_local char self;
static _Thread_local const struct cow_rwlock *shared[SHARED_MAX];
static _Thread_local unsigned int nshared;

static int held_shared(const struct cow_rwlock *l)
{
	for (unsigned int i = 0; i < nshared; i++)
		if (shared[i] == l)
			return 1;
	return 0;
}

int cow_held(const struct cow_rwlock *l)
{
	return l->excl == &self || held_shared(l);
}

int cow_held_excl(const struct cow_rwlock *l)
{
	return l->excl == &self;
}

void cow_rdlock(struct cow_rwlock *l)
{
	/* Not twice: a writer queued in between would wait for us forever. */
	assert(!cow_held(l));
	assert(nshared < SHARED_MAX);
	pthread_rwlock_rdlock(&l->rw);
	shared[nshared++] = l;
}

void cow_wrlock(struct cow_rwlock *l)
{
	assert(!cow_held(l));
	pthread_rwlock_wrlock(&l->rw);
	l->excl = &self;
}

void cow_unlock(struct cow_rwlock *l)
{
	if (l->excl == &self) {
		l->excl = NULL;
	} else {
		unsigned int i = 0;

		while (i < nshared && shared[i] != l)
			i++;
		assert(i < nshared);    /* unlocking what this thread does not hold */
		if (i < nshared)
			shared[i] = shared[--nshared];
	}
	pthread_rwlock_unlock(&l->rw);
}

int cow_mutex_held(const struct cow_mutex *m)
{
	return m->owner == &self;
}

void cow_mutex_lock(struct cow_mutex *m)
{
	assert(!cow_mutex_held(m));
	pthread_mutex_lock(&m->m);
	m->owner = &self;
}

void cow_mutex_unlock(struct cow_mutex *m)
{
	assert(cow_mutex_held(m));
	m->owner = NULL;
	pthread_mutex_unlock(&m->m);
}

void cow_cond_wait(pthread_cond_t *c, struct cow_mutex *m)
{
	assert(cow_mutex_held(m));
	m->owner = NULL;
	pthread_cond_wait(c, &m->m);
	m->owner = &self;
}

#endif
