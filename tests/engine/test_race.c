/*
 * tests/engine/test_race.c - the race design note 4 in engine/read.c is
 * about: a shadow read and the first write to the same block after the
 * shadow was taken, at the same time.  Round after round, one thread
 * overwrites a few hot blocks while others read the newest shadow over
 * them; every read must return exactly the bytes of the shadow's instant.
 * Then the same with older shadows and long reads, whose pieces go to the
 * kernel in batches (io_uring), and again with one pread per piece.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include <vss/cow.h>
#include "io/uring.h"
#include "../lib/testutil.h"

#define BS     4096u
#define HOT    8u          /* blocks fought over */
#define SIZE   (HOT * BS)
#define ROUNDS 400

static struct vss_cow_volume *vol;
static struct vss_cow_shadow *_Atomic cur;  /* the shadow being read */
static unsigned char expect[SIZE];          /* its instant */
static atomic_int round_no, readers_done, bad, stop;

static void *reader(void *arg)
{
	unsigned char buf[SIZE];
	int seen = 0;   /* round 0 has no shadow yet */

	while (!atomic_load(&stop)) {
		int r = atomic_load(&round_no);
		if (r == seen) {
			sched_yield();
			continue;
		}
		struct vss_cow_shadow *sh = atomic_load(&cur);
		/* read the hot blocks many times, in two shapes, while the
		 * writer copies them */
		for (int i = 0; i < 20; i++) {
			size_t off = (size_t)((i * 1237) % SIZE) & ~(size_t)511;
			size_t len = i % 2 ? SIZE - off : 512;
			if (vss_cow_shadow_read(sh, buf, len, off) != (ssize_t)len ||
			    memcmp(buf, expect + off, len))
				atomic_fetch_add(&bad, 1);
		}
		seen = r;
		atomic_fetch_add(&readers_done, 1);
	}
	return NULL;
}

static void first_write_vs_shadow_read(void **state)
{
	char dir[] = "/tmp/vss-test-race-XXXXXX", origin[64], diff[64];
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_error err;
	pthread_t th[2];
	unsigned char buf[SIZE];

	assert_non_null(mkdtemp(dir));
	snprintf(origin, sizeof(origin), "%s/o", dir);
	snprintf(diff, sizeof(diff), "%s/d", dir);
	int fd = open(origin, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0 && ftruncate(fd, SIZE) == 0);
	close(fd);
	cfg.block_size = BS;
	if (vss_cow_open(origin, diff, &cfg, VSS_COW_CREATE, &vol, &err))
		fail_msg("%s", err.msg);

	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, reader, NULL);
	for (int r = 1; r <= ROUNDS; r++) {
		struct vss_cow_shadow_params p = { 0 };
		struct vss_cow_shadow *sh, *old = atomic_load(&cur);
		memset(buf, r, sizeof(buf));
		for (unsigned b = 0; b < HOT; b++)
			buf[b * BS] = (unsigned char)b;
		assert_int_equal(vss_cow_write(vol, buf, SIZE, 0), SIZE);
		memcpy(expect, buf, SIZE);
		memcpy(p.id, &r, sizeof(r));
		p.id[15] = 1;
		assert_int_equal(vss_cow_shadow_create(vol, &p, NULL), 0);
		assert_int_equal(vss_cow_shadow_open(vol, p.id, &sh), 0);
		atomic_store(&cur, sh);
		atomic_store(&readers_done, 0);
		atomic_store(&round_no, r);
		/* first writes to the hot blocks, one small write each, while the
		 * readers read them through the shadow */
		for (unsigned b = 0; b < HOT; b++) {
			unsigned char x[100];
			memset(x, 0xEE, sizeof(x));
			assert_int_equal(vss_cow_write(vol, x, sizeof(x), b * BS + 7), (ssize_t)sizeof(x));
		}
		while (atomic_load(&readers_done) < 2)
			sched_yield();
		if (old) {
			vss_cow_id oid;
			int orr = r - 1;
			memset(oid, 0, 16);
			memcpy(oid, &orr, sizeof(orr));
			oid[15] = 1;
			vss_cow_shadow_close(old);
			assert_int_equal(vss_cow_shadow_delete(vol, oid, NULL), 0);
		}
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	vss_cow_shadow_close(atomic_load(&cur));
	assert_int_equal(atomic_load(&bad), 0);
	assert_int_equal(vss_cow_close(vol), 0);
	unlink(origin);
	unlink(diff);
	rmdir(dir);
}

/*
 * KEEP shadows stay open; after each new one the writer first-writes a
 * random third of the blocks (a few bytes each) while readers read any of
 * the open shadows, whole or in long random pieces: more blocks than a
 * read keeps on the stack and more pieces than one io_uring turn takes.
 */
#define NB2     400u
#define SIZE2   (NB2 * BS)
#define KEEP    3u
#define ROUNDS2 60

static struct vss_cow_shadow *_Atomic live[KEEP];  /* round r's in [r % KEEP] */
static unsigned char *instant[KEEP];                /* its content */

static void *old_reader(void *arg)
{
	unsigned char *buf = malloc(SIZE2);
	uint64_t rng = (uint64_t)(uintptr_t)arg;
	int seen = 0;

	while (!atomic_load(&stop)) {
		int r = atomic_load(&round_no);
		if (r == seen) {
			sched_yield();
			continue;
		}
		for (int i = 0; i < 8; i++) {
			unsigned k = (unsigned)rng_below(&rng, KEEP);
			size_t off = 0, len = SIZE2;
			if (r - (int)k < 1)
				k = 0;
			if (i % 4) {
				off = (size_t)rng_below(&rng, SIZE2);
				len = 1 + (size_t)rng_below(&rng, SIZE2 - off);
			}
			unsigned at = (unsigned)(r - (int)k) % KEEP;
			if (vss_cow_shadow_read(atomic_load(&live[at]), buf, len, off) != (ssize_t)len ||
			    memcmp(buf, instant[at] + off, len))
				atomic_fetch_add(&bad, 1);
		}
		seen = r;
		atomic_fetch_add(&readers_done, 1);
	}
	free(buf);
	return NULL;
}

static void shadow_id(vss_cow_id id, int r)
{
	memset(id, 0, 16);
	memcpy(id, &r, sizeof(r));
	id[15] = 2;
}

static void older_shadows_long_reads(int with_uring)
{
	char dir[] = "/tmp/vss-test-race-XXXXXX", origin[64], diff[64];
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	unsigned char *now = calloc(1, SIZE2);
	uint64_t rng = base_seed();
	struct vss_error err;
	pthread_t th[2];

	vss_uring_enable(with_uring);
	atomic_store(&stop, 0);
	atomic_store(&round_no, 0);
	atomic_store(&bad, 0);
	assert_non_null(mkdtemp(dir));
	snprintf(origin, sizeof(origin), "%s/o", dir);
	snprintf(diff, sizeof(diff), "%s/d", dir);
	int fd = open(origin, O_CREAT | O_RDWR, 0600);
	rng_fill(&rng, now, SIZE2);
	assert_true(fd >= 0 && write(fd, now, SIZE2) == SIZE2);
	close(fd);
	cfg.block_size = BS;
	if (vss_cow_open(origin, diff, &cfg, VSS_COW_CREATE, &vol, &err))
		fail_msg("%s", err.msg);
	for (unsigned k = 0; k < KEEP; k++)
		instant[k] = malloc(SIZE2);

	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, old_reader, (void *)(uintptr_t)(rng + (uint64_t)i));
	for (int r = 1; r <= ROUNDS2; r++) {
		struct vss_cow_shadow_params p = { 0 };
		struct vss_cow_shadow *sh;
		unsigned at = (unsigned)r % KEEP;

		if (r > (int)KEEP) {
			vss_cow_id oid;
			vss_cow_shadow_close(atomic_load(&live[at]));
			shadow_id(oid, r - (int)KEEP);
			assert_int_equal(vss_cow_shadow_delete(vol, oid, NULL), 0);
		}
		memcpy(instant[at], now, SIZE2);
		shadow_id(p.id, r);
		assert_int_equal(vss_cow_shadow_create(vol, &p, NULL), 0);
		assert_int_equal(vss_cow_shadow_open(vol, p.id, &sh), 0);
		atomic_store(&live[at], sh);
		atomic_store(&readers_done, 0);
		atomic_store(&round_no, r);
		for (unsigned b = 0; b < NB2; b++) {
			uint32_t x = (uint32_t)rng_next(&rng);
			size_t off = b * BS + (size_t)rng_below(&rng, BS - sizeof(x));
			if (rng_below(&rng, 3))
				continue;
			assert_int_equal(vss_cow_write(vol, &x, sizeof(x), off), (ssize_t)sizeof(x));
			memcpy(now + off, &x, sizeof(x));
		}
		while (atomic_load(&readers_done) < 2)
			sched_yield();
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (unsigned k = 0; k < KEEP; k++) {
		vss_cow_shadow_close(atomic_load(&live[k]));
		atomic_store(&live[k], NULL);
		free(instant[k]);
	}
	assert_int_equal(atomic_load(&bad), 0);
	assert_int_equal(vss_cow_close(vol), 0);
	vss_uring_enable(1);
	free(now);
	unlink(origin);
	unlink(diff);
	rmdir(dir);
}

static void older_shadows_batched(void **state)
{
	older_shadows_long_reads(1);
}

static void older_shadows_one_pread_each(void **state)
{
	older_shadows_long_reads(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(first_write_vs_shadow_read),
		cmocka_unit_test(older_shadows_batched),
		cmocka_unit_test(older_shadows_one_pread_each),
	};
	fprintf(stderr, "seed %llu (VSS_TEST_SEED)\n", (unsigned long long)base_seed());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
