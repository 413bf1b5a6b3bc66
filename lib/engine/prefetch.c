/*
 * engine/prefetch.c - the diff-area readahead thread (prefetch.h).
 *
 * One thread per volume, started by the first request and stopped when the
 * volume closes.  Requests wait in a small ring under one mutex; posting
 * takes the mutex for a few instructions and signals only a thread that
 * sleeps.  The thread runs the engine's callback with the mutex released.
 */
#include <assert.h>
#include <signal.h>

#include "engine/prefetch.h"

void vss_prefetch_init(struct vss_prefetch *pf, vss_prefetch_fn *fn, void *ctx)
{
	*pf = (struct vss_prefetch){ .fn = fn, .ctx = ctx };
	cow_mutex_init(&pf->lock);
	pthread_cond_init(&pf->wake, NULL);
}

static void *prefetch_main(void *arg)
{
	struct vss_prefetch *pf = arg;

	cow_mutex_lock(&pf->lock);
	for (;;) {
		struct vss_prefetch_req rq;

		while (!pf->n && !pf->stop)
			cow_cond_wait(&pf->wake, &pf->lock);
		if (pf->stop)
			break;
		rq = pf->q[pf->head];
		cow_mutex_unlock(&pf->lock);
		pf->fn(pf->ctx, &rq);
		cow_mutex_lock(&pf->lock);
		/* Taken off only now: drain() waits for the work, not the queue. */
		assert(pf->n > 0 && pf->n <= VSS_PREFETCH_QUEUE);
		pf->head = (pf->head + 1) % VSS_PREFETCH_QUEUE;
		pf->n--;
		pf->done++;
		pthread_cond_broadcast(&pf->wake);
	}
	cow_mutex_unlock(&pf->lock);
	return NULL;
}

/* With pf->lock held. */
static void start(struct vss_prefetch *pf)
{
	sigset_t all, old;

	assert(cow_mutex_held(&pf->lock) && !pf->started);

	/* The thread takes no signals: the process's handlers stay where
	 * they were meant to run. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pf->started = pthread_create(&pf->thread, NULL, prefetch_main, pf) ? -1 : 1;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void vss_prefetch_post(struct vss_prefetch *pf, const struct vss_prefetch_req *rq)
{
	cow_mutex_lock(&pf->lock);
	if (!pf->started)
		start(pf);
	/* Full (or no thread): dropped, it is only a hint. */
	if (pf->started > 0 && !pf->stop && pf->n < VSS_PREFETCH_QUEUE) {
		pf->q[(pf->head + pf->n) % VSS_PREFETCH_QUEUE] = *rq;
		if (!pf->n++)
			pthread_cond_broadcast(&pf->wake);
	}
	cow_mutex_unlock(&pf->lock);
}

void vss_prefetch_drain(struct vss_prefetch *pf)
{
	cow_mutex_lock(&pf->lock);
	while (pf->n && pf->started > 0 && !pf->stop)
		cow_cond_wait(&pf->wake, &pf->lock);
	cow_mutex_unlock(&pf->lock);
}

void vss_prefetch_stop(struct vss_prefetch *pf)
{
	int started;

	cow_mutex_lock(&pf->lock);
	pf->stop = 1;
	started = pf->started > 0;
	pthread_cond_broadcast(&pf->wake);
	cow_mutex_unlock(&pf->lock);
	if (started)
		pthread_join(pf->thread, NULL);
	pthread_cond_destroy(&pf->wake);
	cow_mutex_destroy(&pf->lock);
}
