/*
 * engine/lock.h - the engine's locks, with their holders known to assert():
 * where a comment says "X held", the code says assert(cow_held(&X)).
 *
 * Without NDEBUG (the test and sanitizer builds) an rwlock records the
 * thread holding it exclusively, each thread the rwlocks it holds shared,
 * and a mutex its owner; with NDEBUG (release builds: meson's
 * b_ndebug=if-release) these are the bare pthread calls, and the asserts
 * and the functions they call are compiled out.
 */
#ifndef VSS_ENGINE_LOCK_H
#define VSS_ENGINE_LOCK_H

#include <pthread.h>

struct cow_rwlock {
	pthread_rwlock_t rw;
#ifndef NDEBUG
	_Atomic(const void *) excl;     /* the thread holding it exclusively */
#endif
};

struct cow_mutex {
	pthread_mutex_t m;
#ifndef NDEBUG
	_Atomic(const void *) owner;
#endif
};

/* @prefer_writer: new readers queue behind a waiting writer (then no
 * thread may take it shared twice: cow_rdlock() asserts it does not). */
void cow_rwlock_init(struct cow_rwlock *l, int prefer_writer);
void cow_rwlock_destroy(struct cow_rwlock *l);
void cow_mutex_init(struct cow_mutex *m);
void cow_mutex_destroy(struct cow_mutex *m);

#ifndef NDEBUG
void cow_rdlock(struct cow_rwlock *l);
void cow_wrlock(struct cow_rwlock *l);
void cow_unlock(struct cow_rwlock *l);
void cow_mutex_lock(struct cow_mutex *m);
void cow_mutex_unlock(struct cow_mutex *m);
void cow_cond_wait(pthread_cond_t *c, struct cow_mutex *m);
#else
static inline void cow_rdlock(struct cow_rwlock *l) { pthread_rwlock_rdlock(&l->rw); }
static inline void cow_wrlock(struct cow_rwlock *l) { pthread_rwlock_wrlock(&l->rw); }
static inline void cow_unlock(struct cow_rwlock *l) { pthread_rwlock_unlock(&l->rw); }
static inline void cow_mutex_lock(struct cow_mutex *m) { pthread_mutex_lock(&m->m); }
static inline void cow_mutex_unlock(struct cow_mutex *m) { pthread_mutex_unlock(&m->m); }
static inline void cow_cond_wait(pthread_cond_t *c, struct cow_mutex *m)
{
	pthread_cond_wait(c, &m->m);
}
#endif

/* For assert() only: whether the calling thread holds @l (shared or
 * exclusively), holds it exclusively, holds @m. */
int cow_held(const struct cow_rwlock *l);
int cow_held_excl(const struct cow_rwlock *l);
int cow_mutex_held(const struct cow_mutex *m);

#endif
