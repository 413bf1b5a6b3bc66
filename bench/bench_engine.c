/*
 * bench/bench_engine.c - figures for the copy-on-write engine, in process, on
 * a file-backed volume: write rates by shadow count and persistence, shadow
 * reads, shadow creation time, diff-area cost per block.  Prints; never a test.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <vss/cow.h>

#include "engine/cow_i.h"
#include "io/vfs.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define TiB (1024 * GiB)

#define IO_SIZE      4096u          /* the random writes */
#define READ_SIZE    (1u << 20)     /* the sequential reads */
#define READ_SHADOWS  8u            /* shadows on the volume read through */
#define MAX_READ_PASSES 64u

static const unsigned matrix_threads[] = { 1, 2 };
static const unsigned matrix_shadows[] = { 0, 1, 8, 64 };
static const unsigned persist_threads[] = { 1, 2, 8 };
#define N_MT (sizeof(matrix_threads) / sizeof(matrix_threads[0]))
#define N_MS (sizeof(matrix_shadows) / sizeof(matrix_shadows[0]))
#define N_PT (sizeof(persist_threads) / sizeof(persist_threads[0]))
#define MAX_ROUNDS 9
#define MAX_GROUP  4                /* volumes measured side by side */
#define MAX_SAMPLES 1024            /* slices recorded per volume, all rounds */
#define FIRST_SLICES 16             /* first-write slices that cover a volume */

struct opts {
	double seconds;             /* each timed phase */
	uint64_t volume_bytes;
	unsigned rounds;            /* write measurements, on fresh volumes each */
	unsigned creates;           /* non-persistent shadow creations per size */
	unsigned persistent_creates;
	const char *parent;         /* where the temporary directory goes */
	bool reads_only;            /* --reads: the read figures alone */
};

/* ---- files: everything lives in one directory, removed at exit ---- */

/* One origin and diff area per volume of an interleaved group (MAX_GROUP). */
enum {
	F_ORIGIN, F_DIFF = F_ORIGIN + MAX_GROUP, F_SPARSE = F_DIFF + MAX_GROUP,
	F_SPARSE_DIFF, F_COUNT
};
static const char *const file_names[F_COUNT] = {
	"origin0.img", "origin1.img", "origin2.img", "origin3.img",
	"origin0.diff", "origin1.diff", "origin2.diff", "origin3.diff",
	"sparse.img", "sparse.diff",
};
static char paths[F_COUNT][PATH_MAX];
static char tmpdir[PATH_MAX - 64];   /* room for a file name after it */

/* Async-signal-safe: only unlink() and rmdir(). */
static void cleanup(void)
{
	for (int i = 0; i < F_COUNT; i++)
		if (paths[i][0])
			unlink(paths[i]);
	if (tmpdir[0])
		rmdir(tmpdir);
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void fail(const char *what, long rc, const struct vss_error *err)
{
	fprintf(stderr, "bench-engine: %s: %s%s%s\n", what, strerror((int)-rc),
		err && err->msg[0] ? ": " : "", err ? err->msg : "");
	cleanup();
	exit(1);
}

static void fail_errno(const char *what, const char *path)
{
	fprintf(stderr, "bench-engine: %s %s: %s\n", what, path, strerror(errno));
	cleanup();
	exit(1);
}

static const char *fs_name(const char *dir, bool *memory_backed)
{
	struct statfs st;

	*memory_backed = false;
	if (statfs(dir, &st) < 0)
		return "unknown";
	switch ((unsigned long)st.f_type) {
	case EXT4_SUPER_MAGIC: return "ext2/3/4";
	case XFS_SUPER_MAGIC: return "xfs";
	case BTRFS_SUPER_MAGIC: return "btrfs";
	case TMPFS_MAGIC: *memory_backed = true; return "tmpfs";
	case RAMFS_MAGIC: *memory_backed = true; return "ramfs";
	default: return "other";
	}
}

/* ---- small helpers ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s)       /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

static void fill_random(void *buf, size_t len, uint64_t seed)
{
	uint64_t *p = buf;

	for (size_t i = 0; i < len / 8; i++)
		p[i] = rng_next(&seed);
}

static void *xalloc(size_t align, size_t len)
{
	void *p = aligned_alloc(align, len);

	if (!p)
		fail("memory", -ENOMEM, NULL);
	return p;
}

/* Every block index once, in random order. */
static uint64_t *shuffled_blocks(uint64_t n, uint64_t seed)
{
	uint64_t *perm = xalloc(8, n * sizeof(*perm));

	for (uint64_t i = 0; i < n; i++)
		perm[i] = i;
	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = rng_below(&seed, i + 1), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	return perm;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	for (unsigned i = 1; i < n; i++)     /* n is small: insertion sort */
		for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- the engine ---- */

static atomic_uint events_bad;      /* deleted, invalid, metadata error */

static void on_event(void *arg, const struct vss_cow_event *ev)
{
	(void)arg;
	if (ev->type != VSS_COW_EV_DIFF_NEAR_FULL)
		atomic_fetch_add(&events_bad, 1);
	fprintf(stderr, "bench-engine: engine event %d: %s\n", (int)ev->type,
		ev->msg ? ev->msg : "");
}

static struct vss_cow_volume *volume_open_vfs(struct vss_vfs *vfs, const char *origin,
					      const char *diff, uint64_t *open_ns)
{
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_cow_volume *vol;
	struct vss_error err = { 0 };
	uint64_t t0;
	int rc;

	cfg.event = on_event;
	unlink(diff);
	t0 = now_ns();
	rc = vfs ? vss_cow_open_vfs(vfs, origin, diff, &cfg, VSS_COW_CREATE, &vol, &err)
		 : vss_cow_open(origin, diff, &cfg, VSS_COW_CREATE, &vol, &err);
	if (rc < 0)
		fail("vss_cow_open", rc, &err);
	if (open_ns)
		*open_ns = now_ns() - t0;
	return vol;
}

static struct vss_cow_volume *volume_open(const char *origin, const char *diff,
					  uint64_t *open_ns)
{
	return volume_open_vfs(NULL, origin, diff, open_ns);
}

/*
 * Closes (which makes everything durable) and throws the diff area away,
 * then syncs the filesystem: freeing a large file costs a journal commit
 * (and discards, when mounted so) that would otherwise land in the middle
 * of the next measurement.
 */
static void volume_close(struct vss_cow_volume *vol, const char *diff)
{
	int rc = vss_cow_close(vol), fd;

	if (rc < 0)
		fail("vss_cow_close", rc, NULL);
	unlink(diff);
	fd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
}

static uint64_t next_id;

static uint64_t shadow_create(struct vss_cow_volume *vol, uint32_t flags,
			      vss_cow_id id_out)
{
	struct vss_cow_shadow_params p = { .flags = flags };
	struct vss_error err = { 0 };
	uint64_t n = ++next_id, t0, t1;
	int rc;

	memcpy(p.id, "vss-bench", 9);
	for (int i = 0; i < 7; i++)
		p.id[15 - i] = (unsigned char)(n >> (8 * i));
	memcpy(p.set_id, p.id, sizeof(p.id));
	t0 = now_ns();
	rc = vss_cow_shadow_create(vol, &p, &err);
	t1 = now_ns();
	if (rc < 0)
		fail("vss_cow_shadow_create", rc, &err);
	if (id_out)
		memcpy(id_out, p.id, sizeof(p.id));
	return t1 - t0;
}

static void write_4k(struct vss_cow_volume *vol, uint64_t off, uint64_t seed)
{
	uint64_t buf[IO_SIZE / 8];
	ssize_t n;

	fill_random(buf, sizeof(buf), seed);
	n = vss_cow_write(vol, buf, IO_SIZE, off);
	if (n != IO_SIZE)
		fail("vss_cow_write", n < 0 ? n : -EIO, NULL);
}

/* @count 4 KiB writes, each in a random block. */
static void dirty_random(struct vss_cow_volume *vol, unsigned count, uint64_t *rng)
{
	uint64_t bs = vss_cow_block_size(vol), nblocks = vss_cow_size(vol) / bs;

	for (unsigned i = 0; i < count; i++)
		write_4k(vol, rng_below(rng, nblocks) * bs +
			 rng_below(rng, bs / IO_SIZE) * IO_SIZE, rng_next(rng));
}

static void usage_get(struct vss_cow_volume *vol, struct vss_cow_usage *u)
{
	int rc = vss_cow_usage(vol, u);

	if (rc < 0)
		fail("vss_cow_usage", rc, NULL);
}

/* Blocks written between two shadows: 64 shadows dirty about 6% of the volume. */
static unsigned dirty_between(uint64_t nblocks)
{
	return nblocks / 1024 > 4 ? (unsigned)(nblocks / 1024) : 4;
}

/* ---- timed write phases ---- */

/*
 * First writes: each operation claims the next block of @perm, so every
 * block is written once and each write is the first to its block since the
 * newest shadow.  Already-copied writes: random blocks among
 * perm[0..copied), all written (hence copied) by the first writes before.
 */
struct phase {
	struct vss_cow_volume *vol;
	uint64_t block_size;
	const uint64_t *perm;
	bool first;
	uint64_t end;               /* first: claim perm[next..end) */
	uint64_t copied;            /* already-copied: pick in perm[0..copied) */
	uint64_t seed;
	uint64_t deadline_ns;
	pthread_barrier_t start;
	atomic_uint_fast64_t next;
	atomic_uint_fast64_t ops;
	atomic_bool stop;
	atomic_long error;
};

struct worker {
	struct phase *ph;
	unsigned index;
	pthread_t tid;
};

static void *write_worker(void *arg)
{
	struct worker *w = arg;
	struct phase *ph = w->ph;
	uint64_t rng = ph->seed * 7919 + w->index;
	uint64_t per_block = ph->block_size / IO_SIZE, ops = 0;
	uint64_t *buf = xalloc(IO_SIZE, IO_SIZE);

	fill_random(buf, IO_SIZE, rng);
	pthread_barrier_wait(&ph->start);
	for (;;) {
		uint64_t block, off;
		ssize_t n;

		/* at least one write each, so every slice makes progress */
		if (ops > 0 &&
		    (atomic_load_explicit(&ph->stop, memory_order_relaxed) ||
		     now_ns() >= ph->deadline_ns))
			break;
		if (ph->first) {
			uint64_t i = atomic_fetch_add_explicit(&ph->next, 1,
							       memory_order_relaxed);
			if (i >= ph->end)
				break;
			block = ph->perm[i];
		} else {
			block = ph->perm[rng_below(&rng, ph->copied)];
		}
		off = block * ph->block_size + rng_below(&rng, per_block) * IO_SIZE;
		buf[0] = ops;
		n = vss_cow_write(ph->vol, buf, IO_SIZE, off);
		if (n != IO_SIZE) {
			atomic_store(&ph->error, n < 0 ? (long)n : -EIO);
			atomic_store(&ph->stop, true);
			break;
		}
		ops++;
	}
	atomic_fetch_add(&ph->ops, ops);
	free(buf);
	return NULL;
}

/*
 * One slice on @threads threads: first writes to perm[begin..end), or
 * already-copied writes within perm[0..end), until the blocks run out or
 * @seconds pass.  Returns the nanoseconds taken; *@ops the writes done.
 */
static uint64_t run_slice(struct vss_cow_volume *vol, const uint64_t *perm,
			  bool first, uint64_t begin, uint64_t end,
			  unsigned threads, double seconds, uint64_t seed,
			  uint64_t *ops)
{
	struct phase ph = {
		.vol = vol, .block_size = vss_cow_block_size(vol), .perm = perm,
		.first = first, .end = end, .copied = end, .seed = seed,
	};
	struct worker w[16];
	uint64_t t0;

	assert(threads <= sizeof(w) / sizeof(w[0]));
	atomic_init(&ph.next, begin);
	atomic_init(&ph.ops, 0);
	atomic_init(&ph.stop, false);
	atomic_init(&ph.error, 0);
	pthread_barrier_init(&ph.start, NULL, threads + 1);
	for (unsigned i = 0; i < threads; i++) {
		w[i] = (struct worker){ .ph = &ph, .index = i };
		if (pthread_create(&w[i].tid, NULL, write_worker, &w[i]) != 0)
			fail("pthread_create", -EAGAIN, NULL);
	}
	ph.deadline_ns = now_ns() + (uint64_t)(seconds * 1e9);
	pthread_barrier_wait(&ph.start);
	t0 = now_ns();
	for (unsigned i = 0; i < threads; i++)
		pthread_join(w[i].tid, NULL);
	t0 = now_ns() - t0;
	pthread_barrier_destroy(&ph.start);
	if (atomic_load(&ph.error))
		fail("vss_cow_write", atomic_load(&ph.error), NULL);
	*ops = atomic_load(&ph.ops);
	return t0;
}

/*
 * Rewrites perm[0..count) whole, untimed, before the already-copied writes:
 * otherwise their rate depends mostly on how many of the origin's pages are
 * still clean in the page cache (making a page dirty costs far more than
 * rewriting a dirty one), which varies from run to run more than the engine
 * does.  Every volume, with or without shadows, gets the same.
 */
static void rewrite_blocks(struct vss_cow_volume *vol, const uint64_t *perm,
			   uint64_t count)
{
	uint64_t bs = vss_cow_block_size(vol);
	void *buf = xalloc(4096, bs);

	fill_random(buf, bs, count);
	for (uint64_t i = 0; i < count; i++) {
		ssize_t n = vss_cow_write(vol, buf, bs, perm[i] * bs);

		if (n != (ssize_t)bs)
			fail("vss_cow_write", n < 0 ? n : -EIO, NULL);
	}
	free(buf);
}

/* One volume's figures, summed over the rounds, with the rate of each slice. */
struct cell {
	uint64_t first_ops, first_ns, again_ops, again_ns;
	unsigned nfirst, nagain;
	double first[MAX_SAMPLES], again[MAX_SAMPLES];
	struct vss_cow_usage usage; /* last round, after its first writes */
};

/* A volume being measured in a group. */
struct member {
	struct cell *cell;
	unsigned nshadows;
	uint32_t flags;
	unsigned file;              /* which origin and diff area */
	struct vss_cow_volume *vol;
	uint64_t *perm, nblocks, written, first_ns, again_ns;
};

static void record(struct cell *c, bool first, uint64_t ops, uint64_t ns)
{
	unsigned *n = first ? &c->nfirst : &c->nagain;
	double *v = first ? c->first : c->again;

	if (first) {
		c->first_ops += ops;
		c->first_ns += ns;
	} else {
		c->again_ops += ops;
		c->again_ns += ns;
	}
	if (*n < MAX_SAMPLES && ns)
		v[(*n)++] = (double)ops * 1e9 / (double)ns;
}

/*
 * Measures up to MAX_GROUP volumes side by side, each on its own origin
 * file: they take turns in short slices (the order rotating), so a slow
 * stretch of the machine (another process, writeback) hits every one alike,
 * and the ratio of two volumes is taken slice by slice.  Which file each
 * volume gets rotates with @round, so over MAX_GROUP rounds every volume
 * has used every file.  Each volume gets @nshadows shadows with
 * dirty_between() blocks written between each two (so older shadows own
 * real entries).  First writes go in FIRST_SLICES
 * slices of equal block count, stopping early for all once one volume has
 * spent @o->seconds; already-copied writes, to the blocks all volumes have
 * copied, in slices of equal time until each volume has had @o->seconds.
 */
static void measure_group(const struct opts *o, struct member *m, unsigned n,
			  unsigned threads, unsigned round)
{
	double slice_s = o->seconds / 10;
	uint64_t seed = round * 1000003ull + threads * 101;
	uint64_t per_slice, copied = UINT64_MAX;
	bool go = true, short_of_time = true;

	for (unsigned i = 0; i < n; i++) {
		struct member *x = &m[i];
		uint64_t rng = seed + i;

		x->file = (i + round) % MAX_GROUP;
		x->vol = volume_open(paths[F_ORIGIN + x->file], paths[F_DIFF + x->file],
				     NULL);
		x->nblocks = vss_cow_size(x->vol) / vss_cow_block_size(x->vol);
		for (unsigned k = 0; k < x->nshadows; k++) {
			if (k > 0)
				dirty_random(x->vol, dirty_between(x->nblocks), &rng);
			shadow_create(x->vol, x->flags, NULL);
		}
		x->perm = shuffled_blocks(x->nblocks, rng);
		x->written = x->first_ns = x->again_ns = 0;
	}
	per_slice = m[0].nblocks / FIRST_SLICES ? m[0].nblocks / FIRST_SLICES : 1;
	for (unsigned cycle = 0; go; cycle++) {
		for (unsigned j = 0; j < n; j++) {
			struct member *x = &m[(cycle + j) % n];
			uint64_t ops, ns;

			ns = run_slice(x->vol, x->perm, true, x->written,
				       x->written + per_slice, threads,
				       o->seconds / 4, seed + cycle, &ops);
			x->written += ops;
			x->first_ns += ns;
			record(x->cell, true, ops, ns);
		}
		for (unsigned i = 0; i < n; i++)
			if (m[i].written + per_slice > m[i].nblocks ||
			    m[i].first_ns >= o->seconds * 1e9)
				go = false;
	}
	/* the same working set for all: a slower volume wrote fewer blocks */
	for (unsigned i = 0; i < n; i++)
		copied = m[i].written < copied ? m[i].written : copied;
	assert(copied > 0);
	for (unsigned i = 0; i < n; i++) {
		usage_get(m[i].vol, &m[i].cell->usage);
		rewrite_blocks(m[i].vol, m[i].perm, copied);
	}
	for (unsigned cycle = 0; short_of_time; cycle++) {
		for (unsigned j = 0; j < n; j++) {
			struct member *x = &m[(cycle + j) % n];
			uint64_t ops, ns;

			ns = run_slice(x->vol, x->perm, false, 0, copied, threads,
				       slice_s, seed + cycle, &ops);
			x->again_ns += ns;
			record(x->cell, false, ops, ns);
		}
		short_of_time = false;
		for (unsigned i = 0; i < n; i++)
			short_of_time |= m[i].again_ns < o->seconds * 1e9;
	}
	for (unsigned i = 0; i < n; i++) {
		free(m[i].perm);
		volume_close(m[i].vol, paths[F_DIFF + m[i].file]);
	}
}

/* ---- shadow reads ---- */

/*
 * What is read in each timed pass: the live volume, three shadows with more
 * and more of their blocks in the diff area, and the "floor": the reads the
 * oldest shadow's read makes (a run of unchanged blocks is one read, a
 * changed block one read of its own) made without the engine, each from
 * the origin file at the block's own offset, one vfs batch per 1 MiB.  It
 * is what those reads would cost if the diff area held the shadow's blocks
 * in block order, next to each other in memory: the price of the pieces
 * alone.  The engine reads the changed blocks from slots scattered over
 * the diff area in the order they were copied, which costs more again.
 */
enum {
	RD_VOLUME, RD_FRESH, RD_NEWEST, RD_OLDEST, RD_FLOOR,
	RD_NEWEST_IO, RD_OLDEST_IO,     /* warm only: the replays */
	RD_COUNT
};

static const char *const read_names[RD_COUNT] = {
	"volume", "shadow just taken", "newest of 8", "oldest of 8",
	"oldest's pieces, block order", "newest's reads, no engine",
	"oldest's reads, no engine",
};

struct read_result {
	bool cold;                  /* caches of both files dropped before each pass */
	double mibs[RD_COUNT];
	double ratio[RD_COUNT];     /* median over passes of speed / volume speed */
	double changed[RD_COUNT];   /* share of the blocks read from the diff area */
	double vs_block_order;      /* median over passes of oldest / floor speed */
	double vs_own_reads[2];     /* the same for newest, oldest / their replays */
	unsigned passes;
};

struct floor_plan {
	struct vss_vfs *vfs;
	struct vss_file *origin;
	const bool *changed;        /* per block, of the oldest shadow */
	uint64_t bs;
	struct vss_read *rd;        /* room for one read per block of READ_SIZE */
};

/* The floor's reads of [@off, @off + @len) into @buf. */
static void floor_read(const struct floor_plan *f, void *buf, size_t len, uint64_t off)
{
	size_t n = 0;

	for (uint64_t pos = off; pos < off + len;) {
		uint64_t b = pos / f->bs, e = (b + 1) * f->bs;

		if (!f->changed[b])
			while (e < off + len && !f->changed[e / f->bs])
				e += f->bs;
		if (e > off + len)
			e = off + len;
		f->rd[n++] = (struct vss_read){ .file = f->origin, .buf = (char *)buf + (pos - off),
						.len = e - pos, .off = pos };
		pos = e;
	}
	if (vss_vfs_read_batch(f->vfs, f->rd, n) < 0)
		fail("vss_vfs_read_batch", -EIO, NULL);
}

/* Drops the page cache of the file at @path (written back first). */
static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fail_errno("open", path);
	if (fdatasync(fd) < 0)
		fail_errno("fdatasync", path);
	errno = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (errno)
		fail_errno("posix_fadvise", path);
	close(fd);
}

/*
 * A shadow's reads made without the engine.  While a pass of the shadow is
 * recorded, the volume's vfs keeps every read batch the engine asks of it
 * (file, offset, length, vectors, probe), with each buffer pointed into
 * @buf at the same place as in the caller's 1 MiB buffer, or into
 * @scratch for the engine's own scratch block.  A replay makes the same
 * batches through the posix vfs: the cost of the reads themselves, so that
 * shadow / replay is what the engine adds (index lookups, planning, locks).
 */
struct replay {
	struct vss_read *rd;
	size_t nrd, caprd;
	size_t *iov_at, capat;      /* per read: its first vector in @iov */
	struct iovec *iov;
	size_t niov, capiov;
	size_t *batch_end;          /* batch i is rd[batch_end[i-1], batch_end[i]) */
	size_t nbatch, capbatch;
	char *buf, *scratch;        /* READ_SIZE each */
};

struct rec_vfs {
	struct vss_vfs base;        /* first: the engine's vfs */
	struct vss_vfs *inner;      /* posix */
	struct replay *rec;         /* recording into, or NULL */
	const char *user;           /* the caller's buffer of the pass recorded */
};

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	*cap = need > 2 * *cap ? need : 2 * *cap;
	p = realloc(p, *cap * size);
	if (!p)
		fail("realloc", -ENOMEM, NULL);
	return p;
}

static void *replay_ptr(const struct rec_vfs *v, const void *p, size_t len)
{
	const char *c = p;

	if (c >= v->user && c + len <= v->user + READ_SIZE)
		return v->rec->buf + (c - v->user);
	if (len > READ_SIZE)
		fail("replay", -E2BIG, NULL);
	return v->rec->scratch;
}

static int rec_open(struct vss_vfs *vfs, const char *path, int flags, struct vss_file **out)
{
	struct rec_vfs *v = (struct rec_vfs *)vfs;

	return v->inner->open(v->inner, path, flags, out);
}

static int rec_unlink(struct vss_vfs *vfs, const char *path)
{
	struct rec_vfs *v = (struct rec_vfs *)vfs;

	return v->inner->unlink(v->inner, path);
}

static int rec_read_batch(struct vss_vfs *vfs, const struct vss_read *rd, size_t n)
{
	struct rec_vfs *v = (struct rec_vfs *)vfs;
	struct replay *r = v->rec;

	if (r && n) {
		r->rd = grow(r->rd, &r->caprd, r->nrd + n, sizeof(*r->rd));
		r->iov_at = grow(r->iov_at, &r->capat, r->nrd + n, sizeof(*r->iov_at));
		for (size_t i = 0; i < n; i++) {
			struct vss_read *c = &r->rd[r->nrd];

			*c = rd[i];
			r->iov_at[r->nrd++] = r->niov;
			if (!rd[i].iovcnt) {
				c->buf = replay_ptr(v, rd[i].buf, rd[i].len);
				continue;
			}
			r->iov = grow(r->iov, &r->capiov, r->niov + (size_t)rd[i].iovcnt,
				      sizeof(*r->iov));
			for (int j = 0; j < rd[i].iovcnt; j++)
				r->iov[r->niov++] = (struct iovec){
					.iov_base = replay_ptr(v, rd[i].iov[j].iov_base,
							       rd[i].iov[j].iov_len),
					.iov_len = rd[i].iov[j].iov_len };
		}
		r->batch_end = grow(r->batch_end, &r->capbatch, r->nbatch + 1,
				    sizeof(*r->batch_end));
		r->batch_end[r->nbatch++] = r->nrd;
	}
	return vss_vfs_read_batch(v->inner, rd, n);
}

/* Once recorded: the vectors are where they will stay. */
static void replay_seal(struct replay *r)
{
	for (size_t i = 0; i < r->nrd; i++)
		if (r->rd[i].iovcnt)
			r->rd[i].iov = &r->iov[r->iov_at[i]];
}

static void replay_run(const struct replay *r, struct vss_vfs *vfs)
{
	for (size_t b = 0, at = 0; b < r->nbatch; at = r->batch_end[b++])
		if (vss_vfs_read_batch(vfs, &r->rd[at], r->batch_end[b] - at) < 0)
			fail("replay: vss_vfs_read_batch", -EIO, NULL);
}

static void replay_free(struct replay *r)
{
	free(r->rd);
	free(r->iov_at);
	free(r->iov);
	free(r->batch_end);
	free(r->buf);
	free(r->scratch);
}

/* Reads the whole of one of RD_COUNT once; returns the nanoseconds taken. */
static uint64_t read_pass(struct vss_cow_volume *vol, struct vss_cow_shadow *sh,
			  const struct floor_plan *f, void *buf, uint64_t size)
{
	uint64_t t0 = now_ns();

	for (uint64_t off = 0; off < size; off += READ_SIZE) {
		size_t want = size - off < READ_SIZE ? size - off : READ_SIZE;
		ssize_t n;

		if (f) {
			floor_read(f, buf, want, off);
			continue;
		}
		n = sh ? vss_cow_shadow_read(sh, buf, want, off) : vss_cow_read(vol, buf, want, off);
		if (n != (ssize_t)want)
			fail(sh ? "vss_cow_shadow_read" : "vss_cow_read",
			     n < 0 ? n : -EIO, NULL);
	}
	return now_ns() - t0;
}

/* Marks in @changed (may be NULL) the blocks written since shadow @id;
 * returns their share of the volume. */
static double changed_blocks(struct vss_cow_volume *vol, const vss_cow_id id, bool *changed)
{
	struct vss_cow_extent *ext;
	struct vss_error err = { 0 };
	uint64_t bytes = 0, bs = vss_cow_block_size(vol);
	size_t n;
	int rc = vss_cow_changed_extents(vol, id, NULL, &ext, &n, &err);

	if (rc < 0)
		fail("vss_cow_changed_extents", rc, &err);
	for (size_t i = 0; i < n; i++) {
		bytes += ext[i].length;
		for (uint64_t o = ext[i].offset; changed && o < ext[i].offset + ext[i].length; o += bs)
			changed[o / bs] = true;
	}
	free(ext);
	return (double)bytes / (double)vss_cow_size(vol);
}

static struct vss_cow_shadow *shadow_open(struct vss_cow_volume *vol, const vss_cow_id id)
{
	struct vss_cow_shadow *sh;
	int rc = vss_cow_shadow_open(vol, id, &sh);

	if (rc < 0)
		fail("vss_cow_shadow_open", rc, NULL);
	return sh;
}

/*
 * The oldest of READ_SHADOWS shadows has a quarter of the blocks written
 * after it, and 2% more after each later shadow; the newest has 2%; a shadow
 * taken last has none.  Each is read once untimed to warm the page cache,
 * then timed passes go round all of them, the volume first.
 */
static void measure_reads(const struct opts *o, struct read_result *res, bool cold)
{
	struct rec_vfs rv = {
		.base = { .open = rec_open, .unlink = rec_unlink, .read_batch = rec_read_batch },
		.inner = vss_vfs_posix(),
	};
	struct vss_cow_volume *vol = volume_open_vfs(&rv.base, paths[F_ORIGIN], paths[F_DIFF],
						     NULL);
	struct replay rp[2] = { { 0 } };    /* newest, oldest */
	uint64_t bs = vss_cow_block_size(vol), size = vss_cow_size(vol);
	uint64_t nblocks = size / bs, rng = 0x7ead, copied = nblocks / 4;
	uint64_t *perm = shuffled_blocks(nblocks, rng), ns[RD_COUNT] = { 0 };
	double ratios[RD_COUNT][MAX_READ_PASSES], vs_order[MAX_READ_PASSES];
	double vs_own[2][MAX_READ_PASSES];
	struct vss_cow_shadow *sh[RD_COUNT] = { NULL };
	vss_cow_id ids[RD_COUNT];
	struct floor_plan f = { .vfs = vss_vfs_posix(), .bs = bs };
	bool *changed = xalloc(8, nblocks * sizeof(bool));
	unsigned passes = 0;
	void *buf;
	int rc;

	shadow_create(vol, 0, ids[RD_OLDEST]);
	for (uint64_t i = 0; i < copied; i++)
		write_4k(vol, perm[i] * bs + rng_below(&rng, bs / IO_SIZE) * IO_SIZE, i);
	for (unsigned i = 1; i < READ_SHADOWS; i++) {
		shadow_create(vol, 0, i == READ_SHADOWS - 1 ? ids[RD_NEWEST] : NULL);
		dirty_random(vol, (unsigned)(nblocks / 50), &rng);
	}
	shadow_create(vol, 0, ids[RD_FRESH]);
	free(perm);
	memset(changed, 0, nblocks * sizeof(bool));
	for (int k = RD_FRESH; k <= RD_OLDEST; k++) {
		res->changed[k] = changed_blocks(vol, ids[k], k == RD_OLDEST ? changed : NULL);
		sh[k] = shadow_open(vol, ids[k]);
	}
	res->changed[RD_VOLUME] = 0;       /* the live volume: no diff area */
	res->changed[RD_FLOOR] = res->changed[RD_OLDEST];
	res->changed[RD_NEWEST_IO] = res->changed[RD_NEWEST];
	res->changed[RD_OLDEST_IO] = res->changed[RD_OLDEST];
	rc = f.vfs->open(f.vfs, paths[F_ORIGIN], 0, &f.origin);
	if (rc < 0)
		fail("open", rc, NULL);
	f.changed = changed;
	f.rd = xalloc(8, (READ_SIZE / bs + 1) * sizeof(*f.rd));

	buf = xalloc(4096, READ_SIZE);
	res->cold = cold;
	rc = vss_cow_flush(vol);
	if (rc < 0)
		fail("vss_cow_flush", rc, NULL);
	for (int k = 0; k < RD_COUNT && !cold; k++)
		if (k != RD_NEWEST_IO && k != RD_OLDEST_IO)
			read_pass(vol, sh[k], k == RD_FLOOR ? &f : NULL, buf, size);
	/* Warm: record one more pass of newest and oldest for their replays
	 * (cold, the engine's readahead would make the replays unfair). */
	for (int i = 0; i < 2 && !cold; i++) {
		rp[i].buf = xalloc(4096, READ_SIZE);
		rp[i].scratch = xalloc(4096, READ_SIZE);
		rv.rec = &rp[i];
		rv.user = buf;
		read_pass(vol, sh[i ? RD_OLDEST : RD_NEWEST], NULL, buf, size);
		rv.rec = NULL;
		replay_seal(&rp[i]);
		replay_run(&rp[i], rv.inner);
	}
	/* Cold passes vary more (the disk): at least 8. */
	while (passes < MAX_READ_PASSES &&
	       (passes < (cold ? 8u : 3u) || ns[RD_VOLUME] + ns[RD_OLDEST] < 2 * o->seconds * 1e9)) {
		uint64_t t[RD_COUNT];

		for (int k = 0; k < RD_COUNT; k++) {
			bool io = k == RD_NEWEST_IO || k == RD_OLDEST_IO;
			uint64_t t0;

			if (io && cold)
				continue;
			if (cold) {
				drop_cache(paths[F_ORIGIN]);
				drop_cache(paths[F_DIFF]);
			}
			if (io) {
				t0 = now_ns();
				replay_run(&rp[k == RD_OLDEST_IO], rv.inner);
				t[k] = now_ns() - t0;
			} else {
				t[k] = read_pass(vol, sh[k], k == RD_FLOOR ? &f : NULL, buf, size);
			}
			ns[k] += t[k];
			ratios[k][passes] = (double)t[RD_VOLUME] / (double)t[k];
		}
		vs_order[passes] = (double)t[RD_FLOOR] / (double)t[RD_OLDEST];
		if (!cold) {
			vs_own[0][passes] = (double)t[RD_NEWEST_IO] / (double)t[RD_NEWEST];
			vs_own[1][passes] = (double)t[RD_OLDEST_IO] / (double)t[RD_OLDEST];
		}
		passes++;
	}
	for (int k = 0; k < RD_COUNT; k++) {
		bool io = k == RD_NEWEST_IO || k == RD_OLDEST_IO;

		res->mibs[k] = cold && io ? 0 : (double)passes * size / MiB / (ns[k] / 1e9);
		res->ratio[k] = cold && io ? 0 : median(ratios[k], passes);
		if (sh[k])
			vss_cow_shadow_close(sh[k]);
	}
	res->vs_block_order = median(vs_order, passes);
	for (int i = 0; i < 2; i++) {
		res->vs_own_reads[i] = cold ? 0 : median(vs_own[i], passes);
		replay_free(&rp[i]);
	}
	res->passes = passes;
	free(buf);
	free(f.rd);
	free(changed);
	vss_file_close(f.origin);
	volume_close(vol, paths[F_DIFF]);
}

static void print_reads(const struct read_result *rr)
{
	if (rr->cold)
		printf("\nsequential 1 MiB reads, 1 thread, %u timed passes of each, the page "
		       "cache of origin and diff area dropped before each (cold)\n", rr->passes);
	else
		printf("\nsequential 1 MiB reads, 1 thread, %u timed passes of each after an "
		       "untimed one (warm cache)\n", rr->passes);
	printf("  %-28s %8s %12s %10s\n", "what", "changed", "MiB/s", "vs volume");
	for (int k = 0; k < RD_COUNT; k++)
		if (!rr->cold || (k != RD_NEWEST_IO && k != RD_OLDEST_IO))
			printf("  %-28s %7.0f%% %12.1f %9.3fx\n", read_names[k],
			       rr->changed[k] * 100, rr->mibs[k], rr->ratio[k]);
	printf("  oldest of 8 vs its pieces in block order (no engine, no scattered slots) "
	       "%.3fx\n", rr->vs_block_order);
	if (!rr->cold)
		printf("  shadow vs its own reads made without the engine (what the engine adds): "
		       "newest %.3fx, oldest %.3fx\n", rr->vs_own_reads[0], rr->vs_own_reads[1]);
}

/* ---- shadow creation ---- */

struct create_result {
	bool skipped;
	double open_us;             /* vss_cow_open() with a new diff area */
	double np_median_us, np_p99_us, np_max_us;
	double p_median_us, p_max_us;
};

static void create_series(uint64_t size, unsigned count, uint32_t flags,
			  double *med, double *p99, double *max, double *open_us)
{
	struct vss_cow_volume *vol;
	uint64_t *t = xalloc(8, count * sizeof(*t)), rng = size + flags, open_ns;

	vol = volume_open(paths[F_SPARSE], paths[F_SPARSE_DIFF], &open_ns);
	for (unsigned i = 0; i < count; i++) {
		/* one block written between shadows, untimed: each shadow owns an entry */
		dirty_random(vol, 1, &rng);
		t[i] = shadow_create(vol, flags, NULL);
	}
	volume_close(vol, paths[F_SPARSE_DIFF]);
	qsort(t, count, sizeof(*t), cmp_u64);
	*med = t[count / 2] / 1e3;
	if (p99)
		*p99 = t[(count * 99 + 99) / 100 - 1] / 1e3;
	*max = t[count - 1] / 1e3;
	if (open_us)
		*open_us = open_ns / 1e3;
	free(t);
}

static void measure_create(const struct opts *o, uint64_t size,
			   struct create_result *res)
{
	int fd = open(paths[F_SPARSE], O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		fail_errno("create", paths[F_SPARSE]);
	if (ftruncate(fd, (off_t)size) < 0) {
		if (errno != EFBIG && errno != EINVAL)
			fail_errno("truncate", paths[F_SPARSE]);
		close(fd);
		unlink(paths[F_SPARSE]);
		res->skipped = true;
		return;
	}
	close(fd);
	create_series(size, o->creates, 0, &res->np_median_us, &res->np_p99_us,
		      &res->np_max_us, &res->open_us);
	create_series(size, o->persistent_creates, VSS_COW_SHADOW_PERSISTENT,
		      &res->p_median_us, NULL, &res->p_max_us, NULL);
	unlink(paths[F_SPARSE]);
}

/* ---- setup ---- */

/*
 * Fully written origins, so no measured write pays for file allocation.
 * Written a MiB of each in turn: in a VM, files written one after the other
 * come out measurably faster or slower to rewrite by creation order (where
 * their pages landed), which would pass for a difference between volumes.
 */
static void make_origins(uint64_t size)
{
	uint64_t *buf = xalloc(4096, MiB);
	int fd[MAX_GROUP];

	fill_random(buf, MiB, 42);
	for (int i = 0; i < MAX_GROUP; i++) {
		fd[i] = open(paths[F_ORIGIN + i], O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd[i] < 0)
			fail_errno("create", paths[F_ORIGIN + i]);
	}
	for (uint64_t off = 0; off < size; off += MiB)
		for (int i = 0; i < MAX_GROUP; i++) {
			buf[0] = off + i;
			if (pwrite(fd[i], buf, MiB, (off_t)off) != (ssize_t)MiB)
				fail_errno("write", paths[F_ORIGIN + i]);
		}
	for (int i = 0; i < MAX_GROUP; i++) {
		if (fdatasync(fd[i]) < 0)
			fail_errno("sync", paths[F_ORIGIN + i]);
		close(fd[i]);
	}
	free(buf);
}

static void setup_dir(const char *parent)
{
	struct sigaction sa = { .sa_handler = on_signal };

	if (snprintf(tmpdir, sizeof(tmpdir), "%s/vss-bench.XXXXXX", parent) >=
	    (int)sizeof(tmpdir)) {
		fprintf(stderr, "bench-engine: --dir too long\n");
		exit(1);
	}
	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "bench-engine: mkdtemp %s: %s\n", tmpdir, strerror(errno));
		tmpdir[0] = 0;
		exit(1);
	}
	for (int i = 0; i < F_COUNT; i++)
		snprintf(paths[i], sizeof(paths[i]), "%s/%s", tmpdir, file_names[i]);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	atexit(cleanup);
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: bench-engine [--quick] [--seconds N] [--dir DIR] [--size MiB] [--rounds N]\n"
"  --quick       smaller volume, shorter phases, one round (~15 s)\n"
"  --seconds N   each volume's time in each timed phase (default 0.5, quick 0.2)\n"
"  --dir DIR     make the temporary directory in DIR (default /var/tmp);\n"
"                it must be on a disk filesystem, not tmpfs\n"
"  --size MiB    volume size for writes and reads (default 256, quick 128)\n"
"  --reads       measure reads only (no writes, no creation, no summary)\n"
"  --rounds N    repeat the write measurements on fresh volumes, each time\n"
"                on another origin file (default 4, quick 1; at most 9)\n"
"Prints figures and a summary of targets; exits 0 unless the engine fails.\n");
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "seconds", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 'S' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "reads", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double seconds = 0;
	long size_mib = 0, rounds = 0;
	bool quick = false;
	char *end;
	int c;

	o->parent = "/var/tmp";
	while ((c = getopt_long(argc, argv, "qs:d:S:r:Rh", longopts, NULL)) != -1) {
		switch (c) {
		case 'q': quick = true; break;
		case 's':
			seconds = strtod(optarg, &end);
			if (*end || !(seconds > 0 && seconds <= 600))
				goto bad;
			break;
		case 'd': o->parent = optarg; break;
		case 'S':
			size_mib = strtol(optarg, &end, 10);
			if (*end || size_mib < 16 || size_mib > 1 << 20)
				goto bad;
			break;
		case 'r':
			rounds = strtol(optarg, &end, 10);
			if (*end || rounds < 1 || rounds > MAX_ROUNDS)
				goto bad;
			break;
		case 'R': o->reads_only = true; break;
		case 'h': usage(stdout); exit(0);
		default: goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	o->seconds = seconds ? seconds : quick ? 0.2 : 0.5;
	o->volume_bytes = (uint64_t)(size_mib ? size_mib : quick ? 128 : 256) * MiB;
	o->rounds = rounds ? (unsigned)rounds : quick ? 1 : MAX_GROUP;
	o->creates = quick ? 200 : 1000;
	o->persistent_creates = quick ? 10 : 50;
	return;
bad:
	usage(stderr);
	exit(2);
}

/* ---- report ---- */

static double rate(uint64_t ops, uint64_t ns)
{
	return ns ? (double)ops * 1e9 / (double)ns : 0;
}

/* The median of the slice-by-slice ratios of two volumes measured side by
 * side (same group, so their slices pair up one to one). */
static double slice_ratio(const struct cell *num, const struct cell *den, bool first)
{
	unsigned n = first ? num->nfirst : num->nagain;
	const double *a = first ? num->first : num->again;
	const double *b = first ? den->first : den->again;
	double *t;
	double r;

	assert(n == (first ? den->nfirst : den->nagain));
	if (n == 0)
		return 0;
	t = xalloc(8, n * sizeof(*t));
	for (unsigned i = 0; i < n; i++)
		t[i] = a[i] / b[i];
	r = median(t, n);
	free(t);
	return r;
}

static int summary_misses;

static void target(const char *what, double measured, const char *unit,
		   const char *goal, bool pass)
{
	printf("  %-52s %9.3f%-3s %-9s %s\n", what, measured, unit, goal,
	       pass ? "PASS" : "MISS");
	summary_misses += !pass;
}

static void print_writes(const struct opts *o, struct cell m[N_MT][N_MS])
{
	printf("\nrandom 4 KiB writes per second, non-persistent shadows, %u block(s) "
	       "written between shadows\n",
	       dirty_between(o->volume_bytes / VSS_COW_BLOCK_DEFAULT));
	printf("  %7s %7s %12s %12s %12s %12s %11s %11s\n", "threads", "shadows",
	       "first", "vs 1 shadow", "copied", "vs 0 shadow", "index B/blk",
	       "diff B/blk");
	for (unsigned t = 0; t < N_MT; t++)
		for (unsigned s = 0; s < N_MS; s++) {
			const struct cell *c = &m[t][s];
			const struct vss_cow_usage *u = &c->usage;

			printf("  %7u %7u %12.0f %11.3fx %12.0f %11.3fx", matrix_threads[t],
			       matrix_shadows[s], rate(c->first_ops, c->first_ns),
			       slice_ratio(c, &m[t][1], true),
			       rate(c->again_ops, c->again_ns),
			       slice_ratio(c, &m[t][0], false));
			if (u->copied_blocks)
				printf(" %11.1f %11.1f\n",
				       (double)u->index_bytes / u->copied_blocks,
				       (double)u->used_bytes / u->copied_blocks);
			else
				printf(" %11s %11s\n", "-", "-");
		}
}

static void print_persistence(struct cell p[N_PT][2])
{
	printf("\npersistent vs non-persistent, 1 shadow, writes per second\n");
	printf("  %7s %12s %12s %8s %12s %12s %8s\n", "threads", "first non-p",
	       "first pers", "ratio", "copied non-p", "copied pers", "ratio");
	for (unsigned t = 0; t < N_PT; t++)
		printf("  %7u %12.0f %12.0f %7.3fx %12.0f %12.0f %7.3fx\n",
		       persist_threads[t], rate(p[t][0].first_ops, p[t][0].first_ns),
		       rate(p[t][1].first_ops, p[t][1].first_ns),
		       slice_ratio(&p[t][1], &p[t][0], true),
		       rate(p[t][0].again_ops, p[t][0].again_ns),
		       rate(p[t][1].again_ops, p[t][1].again_ns),
		       slice_ratio(&p[t][1], &p[t][0], false));
}

static void print_creation(const struct opts *o, const struct create_result cr[2])
{
	printf("\nshadow creation, sparse origin, one block written between "
	       "creations (untimed); microseconds\n");
	printf("  %6s %9s %23s %23s\n", "size", "open", "non-persistent",
	       "persistent (flushes)");
	printf("  %6s %9s %7s %7s %7s %11s %11s\n", "", "", "median", "p99", "max",
	       "median", "max");
	for (int i = 0; i < 2; i++) {
		const struct create_result *c = &cr[i];
		const char *name = i ? "1 TiB" : "1 GiB";

		if (c->skipped) {
			printf("  %6s skipped: the filesystem cannot hold a file this large\n",
			       name);
			continue;
		}
		printf("  %6s %9.1f %7.1f %7.1f %7.1f %11.1f %11.1f\n", name, c->open_us,
		       c->np_median_us, c->np_p99_us, c->np_max_us, c->p_median_us,
		       c->p_max_us);
	}
	printf("  %u non-persistent and %u persistent creations per size; open is "
	       "vss_cow_open() with a new diff area\n", o->creates,
	       o->persistent_creates);
}

static void print_summary(const struct opts *o, struct cell m[N_MT][N_MS],
			  struct cell p[N_PT][2], const struct read_result *rr,
			  const struct read_result *cold, const struct create_result cr[2])
{
	const struct vss_cow_usage *u = &m[N_MT - 1][1].usage;
	char what[96];
	double r;

	printf("\nsummary (ratios: median of slice-by-slice ratios; informational)\n");
	printf("  %-52s %12s %-9s %s\n", "target", "measured", "goal", "result");
	for (unsigned t = 0; t < N_MT; t++) {
		unsigned n = matrix_threads[t];

		r = slice_ratio(&m[t][3], &m[t][1], true);
		snprintf(what, sizeof(what), "first writes, 64 vs 1 shadow, %u thr", n);
		target(what, r, "x", ">= 0.90", r >= 0.90);
		r = slice_ratio(&m[t][3], &m[t][1], false);
		snprintf(what, sizeof(what), "already-copied writes, 64 vs 1 shadow, %u thr", n);
		target(what, r, "x", ">= 0.90", r >= 0.90);
		r = slice_ratio(&m[t][1], &m[t][0], false);
		snprintf(what, sizeof(what), "already-copied writes, 1 shadow vs none, %u thr", n);
		target(what, r, "x", ">= 0.95", r >= 0.95);
		r = slice_ratio(&m[t][3], &m[t][0], false);
		snprintf(what, sizeof(what), "already-copied writes, 64 shadows vs none, %u thr", n);
		target(what, r, "x", ">= 0.95", r >= 0.95);
	}
	target("shadow reads vs volume reads, shadow just taken", rr->ratio[RD_FRESH], "x",
	       ">= 0.95", rr->ratio[RD_FRESH] >= 0.95);
	target("shadow reads vs volume reads, newest of 8", rr->ratio[RD_NEWEST], "x",
	       ">= 0.95", rr->ratio[RD_NEWEST] >= 0.95);
	target("shadow reads vs volume reads, oldest of 8", rr->ratio[RD_OLDEST], "x",
	       ">= 0.95", rr->ratio[RD_OLDEST] >= 0.95);
	printf("  %-52s %9.3f%-3s %-9s %s\n", "oldest of 8's pieces in block order vs volume",
	       rr->ratio[RD_FLOOR], "x", "-", "info");
	printf("  %-52s %9.3f%-3s %-9s %s\n", "newest of 8's own reads, no engine, vs volume",
	       rr->ratio[RD_NEWEST_IO], "x", "-", "info");
	printf("  %-52s %9.3f%-3s %-9s %s\n", "oldest of 8's own reads, no engine, vs volume",
	       rr->ratio[RD_OLDEST_IO], "x", "-", "info");
	printf("  %-52s %9.3f%-3s %-9s %s\n", "newest of 8 vs its own reads without the engine",
	       rr->vs_own_reads[0], "x", "-", "info");
	printf("  %-52s %9.3f%-3s %-9s %s\n", "oldest of 8 vs its own reads without the engine",
	       rr->vs_own_reads[1], "x", "-", "info");
	printf("  %-52s %9.3f%-3s %-9s %s\n", "cold cache: newest of 8 vs volume",
	       cold->ratio[RD_NEWEST], "x", "-", "info");
	printf("  %-52s %9.3f%-3s %-9s %s\n", "cold cache: oldest of 8 vs volume",
	       cold->ratio[RD_OLDEST], "x", "-", "info");
	for (int i = 0; i < 2; i++) {
		if (cr[i].skipped)
			continue;
		snprintf(what, sizeof(what), "shadow creation at %s, p99 of %u (max %.0f)",
			 i ? "1 TiB" : "1 GiB", o->creates, cr[i].np_max_us);
		target(what, cr[i].np_p99_us, "us", "< 1000us", cr[i].np_p99_us < 1000);
	}
	for (unsigned t = 0; t < N_PT; t++) {
		if (persist_threads[t] != 2)
			continue;
		r = slice_ratio(&p[t][1], &p[t][0], true);
		snprintf(what, sizeof(what), "first writes, persistent vs not, %u thr",
			 persist_threads[t]);
		target(what, r, "x", ">= 0.50", r >= 0.50);
	}
	if (u->copied_blocks) {
		printf("  %-52s %9.1f%-3s %-9s %s\n", "index memory per copied block",
		       (double)u->index_bytes / u->copied_blocks, "B", "-", "info");
		printf("  %-52s %9.1f%-3s %-9s %s\n", "diff-area bytes per copied block",
		       (double)u->used_bytes / u->copied_blocks, "B", "-", "info");
	}
}

int main(int argc, char **argv)
{
	static struct cell m[N_MT][N_MS], p[N_PT][2];
	static const uint64_t create_sizes[2] = { GiB, TiB };
	struct create_result cr[2] = { { 0 } };
	struct read_result rr, rr_cold;
	uint64_t t_start = now_ns();
	double load[1] = { -1 };
	bool memory_backed;
	struct opts o = { 0 };
	const char *fs;

	parse_opts(argc, argv, &o);
	setup_dir(o.parent);
	fs = fs_name(tmpdir, &memory_backed);
	getloadavg(load, 1);
	printf("vss bench-engine: file-backed volumes of %" PRIu64 " MiB, block %u KiB, "
	       "%.2f s per volume and phase, %u round(s)\n", o.volume_bytes / MiB,
	       VSS_COW_BLOCK_DEFAULT / 1024, o.seconds, o.rounds);
	printf("%ld CPUs, load average %.2f at start; files in %s (%s)\n",
	       sysconf(_SC_NPROCESSORS_ONLN), load[0], tmpdir, fs);
	printf("page cache warm, never dropped (but for the cold reads): origins written "
	       "before, a fresh diff area per measurement\n");
	if (memory_backed)
		printf("WARNING: %s is memory-backed (%s); the figures do not "
		       "reflect a disk. Use --dir on a disk filesystem.\n", tmpdir, fs);
	fflush(stdout);
	make_origins(o.volume_bytes);
	if (o.reads_only) {
		measure_reads(&o, &rr, false);
		print_reads(&rr);
		measure_reads(&o, &rr_cold, true);
		print_reads(&rr_cold);
		return 0;
	}

	for (unsigned r = 0; r < o.rounds; r++) {
		for (unsigned t = 0; t < N_MT; t++) {
			struct member g[N_MS];

			for (unsigned s = 0; s < N_MS; s++)
				g[s] = (struct member){ .cell = &m[t][s],
							.nshadows = matrix_shadows[s] };
			measure_group(&o, g, N_MS, matrix_threads[t], r);
		}
		for (unsigned t = 0; t < N_PT; t++) {
			struct member g[2] = {
				{ .cell = &p[t][0], .nshadows = 1 },
				{ .cell = &p[t][1], .nshadows = 1,
				  .flags = VSS_COW_SHADOW_PERSISTENT },
			};

			measure_group(&o, g, 2, persist_threads[t], r);
		}
	}
	print_writes(&o, m);
	print_persistence(p);
	fflush(stdout);

	measure_reads(&o, &rr, false);
	print_reads(&rr);
	measure_reads(&o, &rr_cold, true);
	print_reads(&rr_cold);
	fflush(stdout);

	for (int i = 0; i < 2; i++)
		measure_create(&o, create_sizes[i], &cr[i]);
	print_creation(&o, cr);

	print_summary(&o, m, p, &rr, &rr_cold, cr);
	printf("  %d target(s) missed; engine events that deleted or invalidated a "
	       "shadow: %u; total %.1f s\n", summary_misses,
	       atomic_load(&events_bad), (now_ns() - t_start) / 1e9);
	return 0;
}
