/*
 * io/uring.c - many reads in one system call: io_uring through liburing,
 * for the posix vfs's read batches.
 *
 * A batch takes an idle ring from a pool (or makes one), queues its reads,
 * submits them and waits for every one in the same io_uring_enter(), and
 * gives the ring back: a ring serves one thread at a time, and no read
 * outlives the call that queued it, so the kernel never writes into a
 * buffer after its caller has moved on.  Reads the page cache can serve
 * complete inside that one system call; the others wait on their pages
 * there, issued together.
 *
 * Where io_uring is missing or forbidden (an old kernel, seccomp, the
 * kernel.io_uring_disabled sysctl: the ring's setup fails, or the kernel
 * lacks the read operations) the first attempt finds out, and from then
 * on vss_uring_read() answers -ENOSYS at once: the posix vfs then reads
 * with one pread() each, as it always could.
 *
 * The pool is process-wide (pool_lock).  A forked child starts with an
 * empty pool: the parent's rings (close-on-exec) are not its to use.
 */
#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "io/uring.h"

static atomic_int unavailable;      /* io_uring cannot be used in this process */
static atomic_int probed;           /* the kernel has the read operations */
static atomic_int disabled_by_test;

void vss_uring_enable(int on)
{
	atomic_store(&disabled_by_test, !on);
}

struct ring {
	struct io_uring ring;
	struct ring *next;              /* in the pool */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ring *pool;           /* idle rings */
static unsigned long holders;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void ring_free(struct ring *rg)
{
	io_uring_queue_exit(&rg->ring);
	free(rg);
}

/* Whether the kernel of @ring reads (IORING_OP_READ and READV, 5.6 on);
 * asked once a process. */
static int ring_reads(struct io_uring *ring)
{
	struct io_uring_probe *p;
	int ok;

	if (atomic_load_explicit(&probed, memory_order_relaxed))
		return 1;
	p = io_uring_get_probe_ring(ring);
	ok = p && io_uring_opcode_supported(p, IORING_OP_READ) &&
	     io_uring_opcode_supported(p, IORING_OP_READV);
	io_uring_free_probe(p);
	if (ok)
		atomic_store(&probed, 1);
	return ok;
}

/* A new ring; -ENOSYS when the kernel has one but it cannot read. */
static int ring_new(struct ring **out)
{
	struct ring *rg = calloc(1, sizeof(*rg));
	int r;

	if (!rg)
		return -ENOMEM;
	r = io_uring_queue_init(VSS_URING_ENTRIES, &rg->ring, 0);
	if (r) {
		free(rg);
		return r;
	}
	if (!ring_reads(&rg->ring)) {
		ring_free(rg);
		return -ENOSYS;
	}
	*out = rg;
	return 0;
}

/* Moves completions into @rd; returns how many. */
static unsigned int reap(struct io_uring *ring, struct vss_uring_read *rd, unsigned int n)
{
	struct io_uring_cqe *c;
	unsigned int head, got = 0;

	io_uring_for_each_cqe(ring, head, c) {
		uint64_t i = io_uring_cqe_get_data64(c);

		if (i < n)
			rd[i].res = c->res;
		got++;
	}
	io_uring_cq_advance(ring, got);
	return got;
}

/*
 * Queues @n reads and waits for all of them.  0, or -errno when the ring
 * took only some (the rest keep -ECANCELED) and must not be used again;
 * every read it took has completed by then all the same.
 */
static int ring_run(struct ring *rg, struct vss_uring_read *rd, unsigned int n)
{
	struct io_uring *ring = &rg->ring;
	unsigned int done = 0, taken;
	int err = 0;

	/* An idle ring holds nothing: @n entries are free. */
	assert(io_uring_sq_ready(ring) == 0 && io_uring_cq_ready(ring) == 0);
	for (unsigned int i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

		assert(sqe);
		if (rd[i].iovcnt)
			io_uring_prep_readv(sqe, rd[i].fd, rd[i].iov, rd[i].iovcnt, rd[i].off);
		else
			io_uring_prep_read(sqe, rd[i].fd, rd[i].buf, rd[i].len, rd[i].off);
		sqe->rw_flags = rd[i].nowait ? RWF_NOWAIT : 0;
		io_uring_sqe_set_data64(sqe, i);
		rd[i].res = -ECANCELED;
	}
	for (;;) {
		struct io_uring_cqe *c;
		int r;

		done += reap(ring, rd, n);
		taken = n - io_uring_sq_ready(ring);
		if (done == taken && (taken == n || err))
			break;
		if (!err && taken < n) {
			/* Submits what is left and waits for every read in
			 * flight (the kernel does not wait while it could not
			 * take them all). */
			r = io_uring_submit_and_wait(ring, n - done);
			if (r == 0)
				r = -EAGAIN;    /* took none of what was left */
		} else {
			r = io_uring_wait_cqe_nr(ring, &c, taken - done);
		}
		if (r >= 0 || r == -EINTR)
			continue;
		if (r == -EAGAIN || r == -EBUSY) {
			/* Out of kernel memory for now: let what was taken
			 * finish, leave the rest to the caller. */
			if (!err)
				err = r;
			continue;
		}
		/* Only a ring in a state it cannot be in gets here; returning
		 * would let the kernel write into buffers given back. */
		if (n - io_uring_sq_ready(ring) != done)
			abort();
		err = r;
		break;
	}
	return err;
}

static void atfork_prepare(void) { pthread_mutex_lock(&pool_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&pool_lock); }
static void atfork_child(void)
{
	pool = NULL;    /* the parent's; left to close-on-exec */
	pthread_mutex_unlock(&pool_lock);
}

static void atfork_init(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

void vss_uring_hold(void)
{
	pthread_once(&atfork_once, atfork_init);
	pthread_mutex_lock(&pool_lock);
	holders++;
	pthread_mutex_unlock(&pool_lock);
}

void vss_uring_release(void)
{
	struct ring *idle = NULL;

	pthread_mutex_lock(&pool_lock);
	assert(holders > 0);    /* one release per hold */
	if (holders && !--holders) {
		idle = pool;
		pool = NULL;
	}
	pthread_mutex_unlock(&pool_lock);
	while (idle) {
		struct ring *next = idle->next;
		ring_free(idle);
		idle = next;
	}
}

int vss_uring_read(struct vss_uring_read *rd, unsigned int n)
{
	struct ring *rg;
	int r;

	if (n > VSS_URING_ENTRIES)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++)
		rd[i].res = -ECANCELED;
	if (atomic_load_explicit(&unavailable, memory_order_relaxed) ||
	    atomic_load_explicit(&disabled_by_test, memory_order_relaxed))
		return -ENOSYS;
	if (!n)
		return 0;

	pthread_mutex_lock(&pool_lock);
	rg = pool;
	if (rg)
		pool = rg->next;
	pthread_mutex_unlock(&pool_lock);
	if (!rg) {
		r = ring_new(&rg);
		if (r == -ENOSYS || r == -EPERM || r == -EINVAL || r == -EACCES) {
			atomic_store(&unavailable, 1);
			return -ENOSYS;
		}
		if (r)
			return r;
	}

	r = ring_run(rg, rd, n);

	pthread_mutex_lock(&pool_lock);
	if (!r && holders) {
		rg->next = pool;
		pool = rg;
		rg = NULL;
	}
	pthread_mutex_unlock(&pool_lock);
	if (rg)
		ring_free(rg);
	return r;
}
