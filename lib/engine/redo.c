/*
 * engine/redo.c - the redo queue and its flusher (see redo.h, and design
 * note 7 in write.c for why it is safe).
 *
 * Locks: q->lock protects the queue; it is taken with the volume's gate
 * held shared (writers) or exclusive (drains), never the other way round,
 * and the flusher takes nothing else while it holds it.  The store's lock
 * nests inside q->lock (REDO records are appended under it, so that their
 * lsn order is the queue's order).
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/lock.h"
#include "engine/redo.h"
#include "util/crc32c.h"

#define QBUCKETS        4096u           /* queued-block counters, by block hash */
#define QUEUE_MAX_BYTES (32u << 20)     /* writers wait beyond this much queued data */
#define REDO_MAX_WRITE  (4u << 20)      /* larger writes are not queued */
#define ORIGIN_TRIES    4               /* writes of a queued write to the origin */

struct pending {
	struct pending *next;
	uint64_t ticket;                /* queue position, from 1 */
	uint64_t lsn;                   /* of its last REDO record */
	uint64_t off;
	uint32_t len, nslots;
	uint32_t *slots;
	unsigned char *data;
};

struct vss_redo {
	struct vss_redo_env env;
	pthread_t thread;
	struct cow_mutex lock;
	pthread_cond_t work;            /* the flusher waits for writes or stop */
	pthread_cond_t done;            /* a batch was retired */
	/* under lock: */
	struct pending *head, *tail;
	uint64_t bytes;                 /* data queued */
	uint64_t tickets;               /* the last ticket handed out */
	uint64_t applied;               /* every ticket up to this is in the origin */
	uint64_t done_lsn;              /* of the last DONE record */
	int write_err;                  /* first failed origin write, not yet reported */
	int stop;
	/* written under lock, read without: */
	_Atomic uint64_t nqueued;
	_Atomic uint32_t count[QBUCKETS];
};

static unsigned int bucket(uint64_t block)
{
	return (unsigned int)((block * 0x9E3779B97F4A7C15ull) >> 40) % QBUCKETS;
}

/* The bytes of block @b that a write of [@off, @off+@len) covers. */
static void piece(const struct vss_redo_env *e, uint64_t b, uint64_t off, size_t len,
		  uint64_t *ps, uint64_t *pe)
{
	uint64_t bs = (uint64_t)b << e->bs_shift, be = bs + e->bs;

	*ps = off > bs ? off : bs;
	*pe = off + len < be ? off + len : be;
}

/* ---- the flusher ---- */

/* Commits the batch @first..@last, writes it to the origin, logs DONE and
 * frees its slots.  Called without q->lock. */
static void apply_batch(struct vss_redo *q, struct pending *first, struct pending *last)
{
	const struct vss_redo_env *e = &q->env;
	int r = e->sops->commit(e->store, last->lsn);

	if (r)
		e->failed(e->arg, r);   /* acknowledged: they go to the origin all the same */
	for (struct pending *p = first;; p = p->next) {
		int w = vss_file_pwrite(e->origin, p->data, p->len, p->off);
		/* It was acknowledged: a passing error gets more tries. */
		for (int t = 1; w && t < ORIGIN_TRIES; t++) {
			nanosleep(&(struct timespec){ .tv_nsec = 1000000L << t }, NULL);
			w = vss_file_pwrite(e->origin, p->data, p->len, p->off);
		}
		if (w) {
			cow_mutex_lock(&q->lock);
			if (!q->write_err)
				q->write_err = w;
			cow_mutex_unlock(&q->lock);
			e->write_error(e->arg, p->off, p->len, w);
		}
		if (p == last)
			break;
	}
	if (!r) {
		/* Before the batch leaves the queue, so that no later write to
		 * its blocks can reach the origin while a crash of the process
		 * would still replay the batch over it. */
		struct vss_rec done = { .type = VSS_REC_DONE, .block = last->lsn };
		uint64_t lsn;
		r = e->sops->append(e->store, &done, &lsn);
		if (!r)
			r = e->sops->write_out(e->store);
		if (r)
			e->failed(e->arg, r);
		else {
			cow_mutex_lock(&q->lock);
			q->done_lsn = lsn;
			cow_mutex_unlock(&q->lock);
		}
	}
	/* Reused once the DONE record is vouched for; the next writes
	 * will want them, so their space stays. */
	for (struct pending *p = first;; p = p->next) {
		for (uint32_t i = 0; i < p->nslots; i++)
			e->sops->recycle_slot(e->store, p->slots[i]);
		if (p == last)
			break;
	}
}

/* Takes @first..@last off the queue (lock held). */
static void retire(struct vss_redo *q, struct pending *first, struct pending *last)
{
	const struct vss_redo_env *e = &q->env;
	struct pending *p = first, *next;
	uint64_t n = 0, was;

	assert(cow_mutex_held(&q->lock) && first == q->head);
	for (;;) {
		uint64_t b0 = p->off >> e->bs_shift, b1 = (p->off + p->len - 1) >> e->bs_shift;
		int end = p == last;

		next = p->next;
		for (uint64_t b = b0; b <= b1; b++) {
			/* Each block of a queued write was counted once. */
			was = atomic_fetch_sub(&q->count[bucket(b)], 1);
			assert(was > 0);
		}
		assert(q->bytes >= p->len && p->ticket == q->applied + 1);
		q->bytes -= p->len;
		q->applied = p->ticket;
		free(p);
		n++;
		if (end)
			break;
		p = next;
	}
	q->head = next;
	if (!next)
		q->tail = NULL;
	was = atomic_fetch_sub(&q->nqueued, n);
	assert(was >= n);
	(void)was;
	pthread_cond_broadcast(&q->done);
}

static void *flusher_main(void *arg)
{
	struct vss_redo *q = arg;

	cow_mutex_lock(&q->lock);
	for (;;) {
		struct pending *first, *last;

		while (!q->head && !q->stop)
			cow_cond_wait(&q->work, &q->lock);
		if (!q->head)
			break;
		first = q->head;
		last = q->tail;
		cow_mutex_unlock(&q->lock);
		apply_batch(q, first, last);
		cow_mutex_lock(&q->lock);
		retire(q, first, last);
	}
	cow_mutex_unlock(&q->lock);
	return NULL;
}

int vss_redo_start(const struct vss_redo_env *env, struct vss_redo **out)
{
	struct vss_redo *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	q->env = *env;
	cow_mutex_init(&q->lock);
	pthread_cond_init(&q->work, NULL);
	pthread_cond_init(&q->done, NULL);
	r = pthread_create(&q->thread, NULL, flusher_main, q);
	if (r) {
		cow_mutex_destroy(&q->lock);
		pthread_cond_destroy(&q->work);
		pthread_cond_destroy(&q->done);
		free(q);
		return -r;
	}
	*out = q;
	return 0;
}

int vss_redo_stop(struct vss_redo *q)
{
	int r;

	if (!q)
		return 0;
	cow_mutex_lock(&q->lock);
	q->stop = 1;
	pthread_cond_signal(&q->work);
	cow_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	/* The flusher stops only once everything queued is in the origin. */
	assert(!q->head && !q->bytes && q->applied == q->tickets && !atomic_load(&q->nqueued));
	r = q->write_err;
	cow_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->done);
	free(q);
	return r;
}

/* ---- writers and readers ---- */

int vss_redo_write(struct vss_redo *q, const void *buf, size_t len, uint64_t off)
{
	const struct vss_redo_env *e = &q->env;
	uint64_t first = off >> e->bs_shift, last = (off + len - 1) >> e->bs_shift;
	uint32_t n = (uint32_t)(last - first + 1), *crc;
	uint64_t lsn = 0, ticket;
	struct pending *p;
	int r = 0;

	if (!len || len > REDO_MAX_WRITE)
		return -EAGAIN;
	p = malloc(sizeof(*p) + 2 * (size_t)n * sizeof(uint32_t) + len);
	if (!p)
		return -EAGAIN;
	p->slots = (uint32_t *)(p + 1);
	crc = p->slots + n;
	p->data = (unsigned char *)(crc + n);
	p->next = NULL;
	p->off = off;
	p->len = (uint32_t)len;
	p->nslots = 0;
	memcpy(p->data, buf, len);

	/* The new bytes go to slots first: a REDO record may reach the file
	 * before its slot only in a power loss, which replay detects. */
	for (uint32_t i = 0; i < n; i++) {
		uint64_t ps, pe;
		piece(e, first + i, off, len, &ps, &pe);
		r = e->sops->alloc_slot(e->store, &p->slots[i]);
		if (r)
			goto undo;
		p->nslots++;
		r = e->sops->write_slot(e->store, p->slots[i], p->data + (ps - off),
					(uint32_t)(pe - ps));
		if (r)
			goto undo;
		crc[i] = vss_crc32c(0, p->data + (ps - off), pe - ps);
	}

	cow_mutex_lock(&q->lock);
	while (q->head && q->bytes + len > QUEUE_MAX_BYTES)
		cow_cond_wait(&q->done, &q->lock);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t ps, pe;
		piece(e, first + i, off, len, &ps, &pe);
		struct vss_rec rec = { .type = VSS_REC_REDO, .block = first + i,
				       .slot = p->slots[i], .data_crc = crc[i],
				       .off = (uint32_t)(ps & (e->bs - 1)),
				       .len = (uint32_t)(pe - ps) };
		/* Fails only once the log has failed: then no REDO record
		 * is ever replayed, not even those appended already. */
		r = e->sops->append(e->store, &rec, &lsn);
		if (r) {
			cow_mutex_unlock(&q->lock);
			goto undo;
		}
	}
	p->lsn = lsn;
	p->ticket = ticket = ++q->tickets;
	if (q->tail)
		q->tail->next = p;
	else
		q->head = p;
	q->tail = p;
	q->bytes += len;
	for (uint64_t b = first; b <= last; b++)
		atomic_fetch_add(&q->count[bucket(b)], 1);
	atomic_fetch_add(&q->nqueued, 1);
	pthread_cond_signal(&q->work);
	cow_mutex_unlock(&q->lock);

	if (e->sops->write_out(e->store) != 0) {
		/* The records are not in the file: only the origin can keep
		 * the write now.  Wait for the flusher to put it there. */
		cow_mutex_lock(&q->lock);
		while (q->applied < ticket)
			cow_cond_wait(&q->done, &q->lock);
		cow_mutex_unlock(&q->lock);
	}
	return 0;

undo:
	for (uint32_t i = 0; i < p->nslots; i++)
		e->sops->recycle_slot(e->store, p->slots[i]);
	free(p);
	return -EAGAIN;
}

static int queued_locked(struct vss_redo *q, uint64_t first, uint64_t last)
{
	if (!atomic_load(&q->nqueued))
		return 0;
	if (last - first >= QBUCKETS)
		return 1;
	for (uint64_t b = first; b <= last; b++)
		if (atomic_load(&q->count[bucket(b)]))
			return 1;
	return 0;
}

int vss_redo_queued(struct vss_redo *q, uint64_t first, uint64_t last)
{
	return queued_locked(q, first, last);
}

void vss_redo_wait_clear(struct vss_redo *q, uint64_t first, uint64_t last)
{
	cow_mutex_lock(&q->lock);
	while (queued_locked(q, first, last))
		cow_cond_wait(&q->done, &q->lock);
	cow_mutex_unlock(&q->lock);
}

int vss_redo_read(struct vss_redo *q, void *buf, size_t len, uint64_t off)
{
	const struct vss_redo_env *e = &q->env;
	uint64_t end = off + len;
	int r;

	/* A write is counted before it returns and uncounted only once it
	 * is in the origin: with no count, the origin is up to date. */
	if (!vss_redo_queued(q, off >> e->bs_shift, (end - 1) >> e->bs_shift))
		return vss_file_pread(e->origin, buf, len, off);
	cow_mutex_lock(&q->lock);
	r = vss_file_pread(e->origin, buf, len, off);
	for (struct pending *p = q->head; !r && p; p = p->next) {
		uint64_t s = p->off > off ? p->off : off;
		uint64_t t = p->off + p->len < end ? p->off + p->len : end;
		if (s < t)
			memcpy((char *)buf + (s - off), p->data + (s - p->off), t - s);
	}
	cow_mutex_unlock(&q->lock);
	return r;
}

void vss_redo_drain(struct vss_redo *q, uint64_t *done_lsn)
{
	uint64_t target;

	cow_mutex_lock(&q->lock);
	target = q->tickets;
	while (q->applied < target)
		cow_cond_wait(&q->done, &q->lock);
	if (done_lsn)
		*done_lsn = q->done_lsn;
	cow_mutex_unlock(&q->lock);
}

int vss_redo_take_error(struct vss_redo *q)
{
	int r;

	cow_mutex_lock(&q->lock);
	r = q->write_err;
	q->write_err = 0;
	cow_mutex_unlock(&q->lock);
	return r;
}

/* ---- recovery ---- */

int vss_redo_log_add(struct vss_redo_log *l, const struct vss_rec *rec)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct vss_redo_entry *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct vss_redo_entry){ .lsn = rec->lsn, .block = rec->block,
		.off = rec->off, .len = rec->len, .slot = rec->slot, .crc = rec->data_crc };
	return 0;
}

void vss_redo_log_done(struct vss_redo_log *l, uint64_t lsn)
{
	while (l->start < l->n && l->v[l->start].lsn <= lsn)
		l->start++;
}

int vss_redo_log_apply(struct vss_redo_log *l, const struct vss_redo_env *e,
		       struct vss_error *err)
{
	unsigned char *buf;
	int r = 0;

	if (l->start == l->n)
		return 0;
	buf = malloc(e->bs);
	if (!buf)
		return vss_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = l->start; i < l->n; i++) {
		const struct vss_redo_entry *x = &l->v[i];
		uint64_t at = (x->block << e->bs_shift) + x->off;

		r = e->sops->read_slot(e->store, x->slot, buf, 0, x->len);
		if (r) {
			vss_error_set(err, r, "cannot read an acknowledged write from the diff area: %s",
				      strerror(-r));
			break;
		}
		if (vss_crc32c(0, buf, x->len) != x->crc) {
			r = vss_error_set(err, -EUCLEAN,
					  "diff area is corrupt: an acknowledged write to block %llu "
					  "(slot %u) does not match its checksum",
					  (unsigned long long)x->block, x->slot);
			break;
		}
		r = vss_file_pwrite(e->origin, buf, x->len, at);
		if (r) {
			vss_error_set(err, r, "cannot write an acknowledged write to the volume: %s",
				      strerror(-r));
			break;
		}
	}
	free(buf);
	if (!r) {
		r = vss_file_sync(e->origin);
		if (r)
			vss_error_set(err, r, "cannot flush the volume: %s", strerror(-r));
	}
	return r;
}

void vss_redo_log_free(struct vss_redo_log *l)
{
	free(l->v);
	*l = (struct vss_redo_log){ 0 };
}
