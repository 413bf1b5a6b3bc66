/*
 * io/uring.c - many reads in one system call: io_uring driven by raw
 * system calls (no liburing), for the posix vfs's read batches.
 *
 * A batch takes an idle ring from a pool (or makes one), queues its reads,
 * waits in io_uring_enter() until every one has completed, and gives the
 * ring back: a ring serves one thread at a time, and no read outlives the
 * call that queued it, so the kernel never writes into a buffer after its
 * caller has moved on.  Reads the page cache can serve complete inside that
 * one system call; the others wait on their pages there, issued together.
 *
 * Where io_uring is missing or forbidden (an old kernel, seccomp, the
 * kernel.io_uring_disabled sysctl) the first attempt finds out, and from
 * then on vss_uring_read() answers -ENOSYS at once: the posix vfs then
 * reads with one pread() each, as it always could.
 *
 * The pool is process-wide (pool_lock).  A forked child starts with an
 * empty pool: the parent's rings (close-on-exec) are not its to use.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io/uring.h"

static atomic_int unavailable;      /* io_uring cannot be used in this process */
static atomic_int disabled_by_test;

void vss_uring_enable(int on)
{
	atomic_store(&disabled_by_test, !on);
}

#ifdef VSS_HAVE_IO_URING
#include <linux/io_uring.h>

struct ring {
	int fd;
	unsigned int sq_mask, cq_mask;
	unsigned int *sq_head, *sq_tail, *cq_head, *cq_tail;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	void *sq_map, *cq_map;          /* the same with IORING_FEAT_SINGLE_MMAP */
	size_t sq_len, cq_len, sqes_len;
	struct ring *next;              /* in the pool */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ring *pool;           /* idle rings */
static unsigned long holders;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void ring_free(struct ring *rg)
{
	if (rg->sqes && rg->sqes != MAP_FAILED)
		munmap(rg->sqes, rg->sqes_len);
	if (rg->cq_map && rg->cq_map != MAP_FAILED && rg->cq_map != rg->sq_map)
		munmap(rg->cq_map, rg->cq_len);
	if (rg->sq_map && rg->sq_map != MAP_FAILED)
		munmap(rg->sq_map, rg->sq_len);
	close(rg->fd);
	free(rg);
}

static int ring_new(struct ring **out)
{
	struct io_uring_params p;
	struct ring *rg;
	unsigned int *array;
	int fd;

	memset(&p, 0, sizeof(p));
	fd = (int)syscall(__NR_io_uring_setup, VSS_URING_ENTRIES, &p);
	if (fd < 0)
		return -errno;
	rg = calloc(1, sizeof(*rg));
	if (!rg) {
		close(fd);
		return -ENOMEM;
	}
	rg->fd = fd;
	rg->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	rg->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (rg->cq_len > rg->sq_len)
			rg->sq_len = rg->cq_len;
		rg->cq_len = rg->sq_len;
	}
	rg->sq_map = mmap(NULL, rg->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			  fd, IORING_OFF_SQ_RING);
	if (rg->sq_map == MAP_FAILED)
		goto fail;
	rg->cq_map = (p.features & IORING_FEAT_SINGLE_MMAP)
		? rg->sq_map
		: mmap(NULL, rg->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       fd, IORING_OFF_CQ_RING);
	if (rg->cq_map == MAP_FAILED)
		goto fail;
	rg->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	rg->sqes = mmap(NULL, rg->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			fd, IORING_OFF_SQES);
	if (rg->sqes == MAP_FAILED)
		goto fail;
	rg->sq_head = (unsigned int *)((char *)rg->sq_map + p.sq_off.head);
	rg->sq_tail = (unsigned int *)((char *)rg->sq_map + p.sq_off.tail);
	rg->sq_mask = *(unsigned int *)((char *)rg->sq_map + p.sq_off.ring_mask);
	rg->cq_head = (unsigned int *)((char *)rg->cq_map + p.cq_off.head);
	rg->cq_tail = (unsigned int *)((char *)rg->cq_map + p.cq_off.tail);
	rg->cq_mask = *(unsigned int *)((char *)rg->cq_map + p.cq_off.ring_mask);
	rg->cqes = (struct io_uring_cqe *)((char *)rg->cq_map + p.cq_off.cqes);
	/* Entries are queued in ring order: the index array never changes. */
	array = (unsigned int *)((char *)rg->sq_map + p.sq_off.array);
	for (unsigned int i = 0; i < p.sq_entries; i++)
		array[i] = i;
	*out = rg;
	return 0;
fail:
	ring_free(rg);
	return -ENOMEM;
}

/* Moves completions into @rd; returns how many. */
static unsigned int reap(struct ring *rg, struct vss_uring_read *rd, unsigned int n)
{
	unsigned int head = *rg->cq_head, got = 0;
	unsigned int tail = __atomic_load_n(rg->cq_tail, __ATOMIC_ACQUIRE);

	for (; head != tail; head++, got++) {
		const struct io_uring_cqe *c = &rg->cqes[head & rg->cq_mask];
		if (c->user_data < n)
			rd[c->user_data].res = c->res;
	}
	__atomic_store_n(rg->cq_head, head, __ATOMIC_RELEASE);
	return got;
}

/*
 * Queues @n reads and waits for all of them.  0, or -errno when the ring
 * took only some (the rest keep -ECANCELED) and must not be used again;
 * every read it took has completed by then all the same.
 */
static int ring_run(struct ring *rg, struct vss_uring_read *rd, unsigned int n)
{
	unsigned int start = *rg->sq_tail, tail = start, done = 0;
	int err = 0;

	for (unsigned int i = 0; i < n; i++, tail++) {
		struct io_uring_sqe *sqe = &rg->sqes[tail & rg->sq_mask];
		memset(sqe, 0, sizeof(*sqe));
		sqe->opcode = rd[i].iovcnt ? IORING_OP_READV : IORING_OP_READ;
		sqe->fd = rd[i].fd;
		sqe->addr = rd[i].iovcnt ? (uint64_t)(uintptr_t)rd[i].iov
					 : (uint64_t)(uintptr_t)rd[i].buf;
		sqe->len = rd[i].iovcnt ? rd[i].iovcnt : rd[i].len;
		sqe->off = rd[i].off;
		sqe->rw_flags = rd[i].nowait ? RWF_NOWAIT : 0;
		sqe->user_data = i;
		rd[i].res = -ECANCELED;
	}
	__atomic_store_n(rg->sq_tail, tail, __ATOMIC_RELEASE);
	for (;;) {
		unsigned int taken;
		long r;

		done += reap(rg, rd, n);
		taken = __atomic_load_n(rg->sq_head, __ATOMIC_ACQUIRE) - start;
		if (done == taken && (taken == n || err))
			break;
		/* Submits what is left and, once all are taken, waits for
		 * every completion (the kernel does not wait while it could
		 * not take them all). */
		r = syscall(__NR_io_uring_enter, rg->fd, err ? 0 : n - taken, taken - done,
			    IORING_ENTER_GETEVENTS, NULL, 0);
		if (r > 0 || (r == 0 && (err || taken == n)) || (r < 0 && errno == EINTR))
			continue;
		if (r == 0)
			errno = EAGAIN;     /* took none of what was left */
		if (errno == EAGAIN || errno == EBUSY) {
			/* Out of kernel memory for now: let what was taken
			 * finish, leave the rest to the caller. */
			if (!err)
				err = -errno;
			continue;
		}
		/* Only a ring in a state it cannot be in gets here; returning
		 * would let the kernel write into buffers given back. */
		if (taken != done)
			abort();
		err = -errno;
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
	/* A kernel that does not know IORING_OP_READ (before 5.6) says
	 * -EINVAL to each: no use trying again. */
	if (!r && rd[0].res == -EINVAL) {
		atomic_store(&unavailable, 1);
		r = -ENOSYS;
	}

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

#else /* !VSS_HAVE_IO_URING */

void vss_uring_hold(void) {}
void vss_uring_release(void) {}

int vss_uring_read(struct vss_uring_read *rd, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		rd[i].res = -ECANCELED;
	(void)unavailable;
	return -ENOSYS;
}

#endif
