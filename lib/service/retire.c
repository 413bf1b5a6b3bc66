/*
 * service/retire.c - the end of a shadow its requester no longer waits for
 * (retire.h).  Unmounting a shadow's ext4 that a backup walked means
 * evicting every inode the walk brought in: half a second for 100,000
 * files, which the requester used to wait for.  shadow.delete with
 * "detach" (shadows.c) detaches the mount at once (nothing can reach it by
 * its path from then on) and queues the shadow here, marked retiring (not
 * listed, not exposed again, not deleted twice); this thread then:
 *
 *   1. closes the descriptor that kept the filesystem alive: the kernel
 *      tears it down in this thread and releases the loop device under it
 *      (LO_FLAGS_AUTOCLEAR), unless something else still uses the
 *      filesystem (a file opened in it before the detach);
 *   2. waits until the loop device no longer reads the shadow, up to
 *      RELEASE_WAIT_MS; then
 *   3. deletes the shadow (svc->lock): device, engine, catalog, list.
 *
 * A shadow whose filesystem is still in use after that is held: listed
 * again (state "deleting", sh->retire_held), looked at every
 * RECHECK_MS and deleted once its loop device lets it go.  So no shadow is
 * deleted while something still reads it.
 *
 * The queue is under retire_lock, which this thread never holds while it
 * waits or takes svc->lock.  vssd's stop (svc_retire_stop) finishes what
 * is queued first, and deletes the shadows still held then (the stop
 * takes their devices away in any case).  A vssd that dies with shadows queued
 * loses its descriptors (the kernel lets the filesystems go) and drops the
 * shadows at its next start, as any non-persistent shadow it left.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "service/clock.h"
#include "service/log.h"
#include "service/loop.h"
#include "service/retire.h"
#include "service/service_i.h"
#include "service/shadows.h"

#define RELEASE_WAIT_MS 2000
#define RECHECK_MS      1000

struct svc_retiring {
	struct svc_retiring *next;
	char id[37];
	char loop[VSS_LOOP_NAME_MAX];
	char backing[4096];
	int hold;                       /* -1 once closed */
};

/* Whether @r's loop device still reads its shadow. */
static bool still_reads(const struct svc_retiring *r)
{
	char now[4096];

	return vss_loop_backing(r->loop, now, sizeof(now)) == 0 && strcmp(now, r->backing) == 0;
}

/*
 * Lets @r's filesystem go and deletes its shadow: true if done (or the
 * shadow went another way), false if the filesystem is still in use (the
 * shadow is held).  With @first, closes the descriptor and waits up to
 * RELEASE_WAIT_MS; else only looks.
 */
static bool retire_one(struct vss_service *svc, struct svc_retiring *r, bool first)
{
	int64_t t0 = svc_mono_ms(), closed = t0;
	struct svc_shadow *sh;
	bool busy;

	if (first) {
		close(r->hold);         /* the filesystem's teardown happens here */
		r->hold = -1;
		closed = svc_mono_ms();
		while ((busy = still_reads(r)) && svc_mono_ms() < closed + RELEASE_WAIT_MS)
			usleep(10000);
	} else {
		busy = still_reads(r);
	}
	svc_lock(svc);
	sh = svc_shadow_find(svc, r->id);
	if (sh && sh->retiring && busy) {
		if (!sh->retire_held)
			vss_log("shadow %s: its filesystem is still in use after its mount was "
				"detached (through %s): deleted once nothing uses it", r->id,
				r->loop);
		sh->retire_held = true;
	} else if (sh && sh->retiring) {
		char why[128];

		if (first)
			snprintf(why, sizeof(why), "deleted on request (its set), once unmounted "
				 "(%llu ms, released %llu ms later)",
				 (unsigned long long)(closed - t0),
				 (unsigned long long)(svc_mono_ms() - closed));
		else
			snprintf(why, sizeof(why), "deleted on request (its set), once its "
				 "filesystem was no longer in use");
		svc_shadow_remove(svc, sh, why);
	}
	svc_unlock(svc);
	return !(sh && busy);
}

static void *retire_main(void *arg)
{
	struct vss_service *svc = arg;
	struct svc_retiring *held = NULL;

	pthread_mutex_lock(&svc->retire_lock);
	for (;;) {
		struct svc_retiring *list, **pp;

		if (!svc->retire_head && !svc->retire_stop) {
			if (held) {
				struct timespec dl;

				clock_gettime(CLOCK_REALTIME, &dl);
				dl.tv_sec += RECHECK_MS / 1000;
				pthread_cond_timedwait(&svc->retire_cond, &svc->retire_lock, &dl);
			} else {
				pthread_cond_wait(&svc->retire_cond, &svc->retire_lock);
			}
		}
		if (!svc->retire_head && svc->retire_stop)
			break;
		list = svc->retire_head;
		svc->retire_head = NULL;
		pthread_mutex_unlock(&svc->retire_lock);
		while (list) {
			struct svc_retiring *r = list;

			list = r->next;
			if (retire_one(svc, r, true)) {
				free(r);
			} else {
				r->next = held;
				held = r;
			}
		}
		for (pp = &held; *pp;) {
			struct svc_retiring *r = *pp;

			if (retire_one(svc, r, false)) {
				*pp = r->next;
				free(r);
			} else {
				pp = &r->next;
			}
		}
		pthread_mutex_lock(&svc->retire_lock);
	}
	pthread_mutex_unlock(&svc->retire_lock);
	/* vssd stops: its devices go with it, so these go now too. */
	while (held) {
		struct svc_retiring *r = held;
		struct svc_shadow *sh;

		held = r->next;
		svc_lock(svc);
		if ((sh = svc_shadow_find(svc, r->id)) && sh->retiring)
			svc_shadow_remove(svc, sh, "deleted on request (its set): vssd is stopping, "
					  "though its filesystem is still in use");
		svc_unlock(svc);
		free(r);
	}
	return NULL;
}

int svc_retire_start(struct vss_service *svc, struct vss_error *err)
{
	int rc = pthread_create(&svc->retire_thread, NULL, retire_main, svc);

	if (rc)
		return vss_error_set(err, -rc, "cannot start a thread: %s", strerror(rc));
	svc->retire_running = true;
	return 0;
}

void svc_retire_stop(struct vss_service *svc)
{
	if (!svc->retire_running)
		return;
	pthread_mutex_lock(&svc->retire_lock);
	svc->retire_stop = true;
	pthread_cond_signal(&svc->retire_cond);
	pthread_mutex_unlock(&svc->retire_lock);
	pthread_join(svc->retire_thread, NULL);
	svc->retire_running = false;
}

int svc_retire_queue(struct vss_service *svc, const char *id, const char *loop,
		     const char *backing, int hold, struct vss_error *err)
{
	struct svc_retiring *r = calloc(1, sizeof(*r)), **pp;

	svc_assert_locked(svc);
	if (!r)
		return vss_error_set(err, -ENOMEM, "out of memory");
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->loop, sizeof(r->loop), "%s", loop);
	snprintf(r->backing, sizeof(r->backing), "%s", backing);
	r->hold = hold;
	pthread_mutex_lock(&svc->retire_lock);
	for (pp = &svc->retire_head; *pp; pp = &(*pp)->next)
		;
	*pp = r;
	pthread_cond_signal(&svc->retire_cond);
	pthread_mutex_unlock(&svc->retire_lock);
	return 0;
}
