/*
 * tests/lib/testutil.h - what the randomized tests share: a splitmix64
 * generator (one state per thread, so runs repeat from their seed), the
 * environment knobs (VSS_TEST_SEED, round counts), temp-dir cleanup, and
 * (after <cmocka.h>) held buffers, shell commands and VSS_TEST_VERBOSE
 * tracing.
 */
#ifndef VSS_TESTS_TESTUTIL_H
#define VSS_TESTS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline uint64_t rng_next(uint64_t *s)
{
	return mix64(*s += 0x9E3779B97F4A7C15ull);
}

static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return n ? rng_next(s) % n : 0;
}

static inline void rng_fill(uint64_t *s, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len) {
		uint64_t v = rng_next(s);
		size_t n = len < 8 ? len : 8;
		memcpy(p, &v, n);
		p += n;
		len -= n;
	}
}

static inline uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

/* VSS_TEST_SEED, or one made from the clock, the same for the whole run. */
static inline uint64_t base_seed(void)
{
	static uint64_t seed;

	if (!seed)
		seed = env_u64("VSS_TEST_SEED",
			       (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16));
	return seed;
}

/* For nftw(): removes a tree, deepest first. */
static inline int rm_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	return remove(path);
}

/*
 * Temp dirs are named /tmp/vss-TAG-PID-XXXXXX.  A test that failed cleans
 * up in its teardown; one that died (a signal, a sanitizer abort) cannot, so
 * the next run removes the dirs of processes that are gone.
 */
static inline void sweep_stale_dirs(const char *tag)
{
	char prefix[64], path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir("/tmp");

	snprintf(prefix, sizeof(prefix), "vss-%s-", tag);
	while (d && (e = readdir(d))) {
		long pid;
		char *end;

		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		pid = strtol(e->d_name + strlen(prefix), &end, 10);
		if (end == e->d_name + strlen(prefix) || *end != '-' || pid <= 0 ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
		nftw(path, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	}
	if (d)
		closedir(d);
}

#ifdef assert_true     /* after <cmocka.h> */
#include <stdarg.h>
#include <stdbool.h>

#define HELD_MAX 8

/* Buffers held across checks: a failing check jumps out, and teardown frees
 * what is still held (so that a failure leaks nothing). */
static inline void *hold(void **held, void *p)
{
	for (int i = 0; p && i < HELD_MAX; i++) {
		if (!held[i]) {
			held[i] = p;
			return p;
		}
	}
	assert_true(p == NULL);
	return p;
}

/* Stops holding @p; frees it unless @keep. */
static inline void release(void **held, void *p, bool keep)
{
	for (int i = 0; p && i < HELD_MAX; i++)
		if (held[i] == p)
			held[i] = NULL;
	if (!keep)
		free(p);
}

/* Runs the shell command @fmt makes; the check fails unless it exits 0. */
static inline void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void run(const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

/* With VSS_TEST_VERBOSE set, says what each step does, to reproduce a failure. */
static inline void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void trace(const char *fmt, ...)
{
	static int verbose = -1;
	va_list ap;

	if (verbose < 0)
		verbose = getenv("VSS_TEST_VERBOSE") != NULL;
	if (!verbose)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}
#endif

#endif
