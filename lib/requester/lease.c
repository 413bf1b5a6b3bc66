/*
 * requester/lease.c - a session's lease kept by a thread of its own
 * (lease_i.h): backup.status every third of the lease until the session
 * ends, or until vssd says there is none any more (the caller's next call
 * then says why).
 */
#include <errno.h>
#include <signal.h>
#include <time.h>

#include <jansson.h>

#include "client/client_json.h"
#include "requester/lease_i.h"

void req_lease_init(struct req_lease *l, struct vss_client *c, pthread_mutex_t *call_lock)
{
	pthread_condattr_t attr;

	l->c = c;
	l->call_lock = call_lock;
	l->running = l->stop = false;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &attr);
	pthread_condattr_destroy(&attr);
}

static void *lease_main(void *arg)
{
	struct req_lease *l = arg;

	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		struct timespec ts;
		json_t *res = NULL;
		bool active;
		int rc;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += l->every_ms / 1000;
		ts.tv_nsec += (long)(l->every_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!l->stop && pthread_cond_timedwait(&l->cond, &l->lock, &ts) != ETIMEDOUT)
			;
		if (l->stop)
			break;
		pthread_mutex_unlock(&l->lock);
		pthread_mutex_lock(l->call_lock);
		rc = vss_client_call_json(l->c, "backup.status", NULL, &res, NULL);
		pthread_mutex_unlock(l->call_lock);
		active = rc == 0 && json_is_true(json_object_get(res, "active"));
		json_decref(res);
		pthread_mutex_lock(&l->lock);
		if (!active)
			break;
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

void req_lease_start(struct req_lease *l, unsigned long long lease_ms)
{
	sigset_t all, old;

	if (!lease_ms || l->running)
		return;
	l->every_ms = lease_ms / 3 < 50 ? 50 : (unsigned int)(lease_ms / 3);
	l->stop = false;
	/* Signals are the caller's business, not the renewer's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	l->running = pthread_create(&l->thread, NULL, lease_main, l) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void req_lease_stop(struct req_lease *l)
{
	if (!l->running)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	l->running = false;
}

void req_lease_release(struct req_lease *l)
{
	req_lease_stop(l);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
}
