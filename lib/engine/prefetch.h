/*
 * engine/prefetch.h - reading ahead the diff area for sequential shadow
 * readers.
 *
 * A shadow read needs its copied blocks from slots scattered over the diff
 * area in the order they were copied, not in block order: from a cold
 * cache each is a random read of its own that the kernel's readahead,
 * which follows files, cannot foresee.  When a shadow is read
 * sequentially, the engine posts the blocks ahead of the reader here, and
 * a thread of the volume's own looks up their slots and asks the kernel to
 * start reading them (POSIX_FADV_WILLNEED), so that they are in the page
 * cache when the reader gets there.  Only hints: a request that does not
 * fit the queue is dropped, and a thread that cannot be started means no
 * readahead, never a failed read.
 */
#ifndef VSS_ENGINE_PREFETCH_H
#define VSS_ENGINE_PREFETCH_H

#include <pthread.h>
#include <stdint.h>

#include "engine/lock.h"

#define VSS_PREFETCH_QUEUE 32

struct vss_prefetch_req {
	uint32_t seq;           /* the shadow read */
	uint64_t first, count;  /* its blocks to read ahead */
};

/* Does one request, on the prefetch thread. */
typedef void vss_prefetch_fn(void *ctx, const struct vss_prefetch_req *rq);

struct vss_prefetch {
	struct cow_mutex lock;
	pthread_cond_t wake;
	struct vss_prefetch_req q[VSS_PREFETCH_QUEUE];
	unsigned int head, n;
	int started;            /* 1: the thread runs; -1: could not start */
	int stop;
	pthread_t thread;
	vss_prefetch_fn *fn;
	void *ctx;
	uint64_t done;          /* requests done, for tests */
};

void vss_prefetch_init(struct vss_prefetch *pf, vss_prefetch_fn *fn, void *ctx);

/* Queues @rq (starting the thread on first use); never blocks on I/O. */
void vss_prefetch_post(struct vss_prefetch *pf, const struct vss_prefetch_req *rq);

/* Waits until every queued request is done (tests). */
void vss_prefetch_drain(struct vss_prefetch *pf);

/* Stops and joins the thread, dropping what is queued. */
void vss_prefetch_stop(struct vss_prefetch *pf);

#endif
