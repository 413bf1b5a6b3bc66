/*
 * tests/btrfs/test_busy.c - is a btrfs shadow a true point in time?
 *
 * A writer process works without pause in TOP/busy: step s writes
 * generation s/K+1 of file s%K to a temporary name (in 8 KiB writes,
 * fsync'd only now and then), renames it into place, appends "GEN IDX" to
 * a log, then publishes s+1 in shared memory.  Every state the tree passes
 * through is therefore known in advance: after the rename of step F-1 the
 * files are those of F steps and the log holds F-1 or F lines.
 *
 * Shadows are taken while it runs, and each is checked against that
 * independent model: every file present has complete contents of one
 * generation, the generations match one step F, the log matches F, the
 * in-flight temporary file (if any) is a prefix of what was being written,
 * and F lies between the steps done before commit started and those begun
 * before it returned.  Interleaved with them, plain read-only snapshots
 * (no flushoncommit) are taken and checked the same way, as a measurement
 * only: they are what the doc reports as "not a point in time".
 *
 * VSS_BUSY_SNAPSHOTS (default 10) sets how many of each kind;
 * VSS_BUSY_CONTROL_SYNC=1 syncs before each plain snapshot, as prepare does.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrfsutil.h>
#include <cmocka.h>

#include "provider/btrfs/btrfs.h"

#define K      24              /* files */
#define NDIRS  3
#define CHUNK  8192
#define MAXLEN (200 + 70000)

struct shared {
	_Atomic uint64_t done;  /* steps whose log line is written */
	_Atomic int stop;
};

static struct shared *sh;
static const char *TOP;
static char busy[4096];

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static size_t content_len(uint32_t gen, uint32_t idx)
{
	return 200 + (size_t)(mix((uint64_t)gen << 32 | idx) % 70000);
}

/* The bytes of generation @gen of file @idx: a header, then noise. */
static size_t content(uint32_t gen, uint32_t idx, unsigned char *buf)
{
	size_t len = content_len(gen, idx);
	int h = snprintf((char *)buf, len, "vss-busy gen=%u idx=%u len=%zu\n", gen, idx, len);
	uint64_t x = mix(gen * 1000003ull + idx);

	for (size_t i = (size_t)h; i < len; i++) {
		if ((i & 7) == 0 || i == (size_t)h)
			x = mix(x);
		buf[i] = (unsigned char)(x >> ((i & 7) * 8));
	}
	return len;
}

static void file_path(char *out, size_t n, const char *root, uint32_t idx, bool tmp)
{
	snprintf(out, n, "%s/d%u/%sf%02u", root, idx % NDIRS, tmp ? ".tmp-" : "", idx);
}

static void log_line(char *out, size_t n, uint64_t step)
{
	snprintf(out, n, "%u %u\n", (unsigned)(step / K + 1), (unsigned)(step % K));
}

static void writer(void)
{
	static unsigned char buf[MAXLEN];
	char tmp[4200], fin[4200], line[64];
	int logfd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	snprintf(tmp, sizeof(tmp), "%s/log", busy);
	logfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (logfd < 0)
		_exit(2);
	for (uint64_t s = 0; !atomic_load(&sh->stop); s++) {
		uint32_t gen = (uint32_t)(s / K + 1), idx = (uint32_t)(s % K);
		size_t len = content(gen, idx, buf);
		int fd;

		file_path(tmp, sizeof(tmp), busy, idx, true);
		file_path(fin, sizeof(fin), busy, idx, false);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			_exit(3);
		for (size_t off = 0; off < len; off += CHUNK) {
			size_t n = len - off < CHUNK ? len - off : CHUNK;
			if (write(fd, buf + off, n) != (ssize_t)n)
				_exit(4);
		}
		if (s % 16 == 5 && fsync(fd) < 0)
			_exit(5);
		close(fd);
		if (rename(tmp, fin) < 0)
			_exit(6);
		log_line(line, sizeof(line), s);
		if (write(logfd, line, strlen(line)) != (ssize_t)strlen(line))
			_exit(7);
		atomic_store(&sh->done, s + 1);
	}
	_exit(0);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *b;
	int fd = open(path, O_RDONLY);
	size_t n = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return NULL;
	}
	b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*len = n;
	return b;
}

struct verdict {
	uint64_t files_step;    /* F */
	uint64_t log_lines;     /* Lg */
	int problems;
	char first[512];
};

static void problem(struct verdict *v, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct verdict *v, const char *f, ...)
{
	va_list ap;

	if (v->problems++ == 0) {
		va_start(ap, f);
		vsnprintf(v->first, sizeof(v->first), f, ap);
		va_end(ap);
	}
}

/* Checks the snapshot at @root against the model and the window [before, after]. */
static void verify(const char *root, uint64_t before, uint64_t after, struct verdict *v)
{
	static unsigned char want[MAXLEN];
	uint32_t gens[K] = { 0 };
	char path[4200], line[64];
	unsigned char *b;
	size_t len, off = 0;
	uint64_t F = 0;

	memset(v, 0, sizeof(*v));

	/* The log: complete lines, each the expected one. */
	snprintf(path, sizeof(path), "%s/log", root);
	b = slurp(path, &len);
	if (!b) {
		problem(v, "no log");
		return;
	}
	while (off < len) {
		unsigned char *nl = memchr(b + off, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - (b + off)) + 1 : len - off;

		log_line(line, sizeof(line), v->log_lines);
		if (!nl) {
			problem(v, "log ends in a partial line (%zu bytes)", ll);
			break;
		}
		if (ll != strlen(line) || memcmp(b + off, line, ll) != 0) {
			problem(v, "log line %llu is not \"%.*s\"", (unsigned long long)v->log_lines,
				(int)strlen(line) - 1, line);
			break;
		}
		v->log_lines++;
		off += ll;
	}
	free(b);

	/* The files: complete, and which step they add up to. */
	for (uint32_t idx = 0; idx < K; idx++) {
		unsigned g;
		size_t wl;

		file_path(path, sizeof(path), root, idx, false);
		b = slurp(path, &len);
		if (!b)
			continue;
		if (len == 0 || sscanf((char *)b, "vss-busy gen=%u", &g) != 1 || g == 0) {
			problem(v, "f%02u: %s (%zu bytes)", idx, len ? "garbled" : "empty", len);
			free(b);
			continue;
		}
		wl = content(g, idx, want);
		if (len != wl || memcmp(b, want, wl) != 0)
			problem(v, "f%02u gen %u: %zu of %zu bytes, or wrong bytes", idx, g, len, wl);
		gens[idx] = g;
		if ((uint64_t)(g - 1) * K + idx + 1 > F)
			F = (uint64_t)(g - 1) * K + idx + 1;
		free(b);
	}
	v->files_step = F;
	for (uint32_t idx = 0; idx < K; idx++) {
		uint32_t expect = F > idx ? (uint32_t)((F - 1 - idx) / K + 1) : 0;
		if (gens[idx] != expect)
			problem(v, "f%02u is generation %u, but the newest file says generation %u "
				"(stale)", idx, gens[idx], expect);
	}

	/* The file in flight: only step F's, and a prefix of it. */
	for (uint32_t idx = 0; idx < K; idx++) {
		file_path(path, sizeof(path), root, idx, true);
		b = slurp(path, &len);
		if (!b)
			continue;
		if (idx != F % K || F != v->log_lines) {
			problem(v, "temporary file of f%02u present at step %llu", idx,
				(unsigned long long)F);
		} else {
			size_t wl = content((uint32_t)(F / K + 1), idx, want);
			if (len > wl || memcmp(b, want, len) != 0)
				problem(v, "temporary f%02u: %zu bytes that are not a prefix", idx, len);
		}
		free(b);
	}

	/* The tree and the log tell the same instant, inside the window. */
	if (F != v->log_lines && F != v->log_lines + 1)
		problem(v, "files are at step %llu but the log at %llu", (unsigned long long)F,
			(unsigned long long)v->log_lines);
	if (v->log_lines < before)
		problem(v, "log at %llu, but %llu steps were done before the snapshot",
			(unsigned long long)v->log_lines, (unsigned long long)before);
	if (F > after + 1)
		problem(v, "files at step %llu, but only %llu steps had begun after it",
			(unsigned long long)F, (unsigned long long)after + 1);
}

static char *mountinfo_lines(const char *mp)
{
	char *cmd, *out = NULL;
	size_t cap = 0;
	FILE *f;

	/* The lines of every mount of this filesystem (same major:minor). */
	if (asprintf(&cmd, "awk -v mp='%s' 'FNR==NR { if ($5 == mp) d = $3; next } $3 == d' "
		     "/proc/self/mountinfo /proc/self/mountinfo", mp) < 0)
		return NULL;
	f = popen(cmd, "r");
	free(cmd);
	if (!f)
		return NULL;
	if (getdelim(&out, &cap, '\0', f) < 0) {
		free(out);
		out = NULL;
	}
	pclose(f);
	return out;
}

static double secs(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void busy_tree(void **state)
{
	const char *env = getenv("VSS_BUSY_SNAPSHOTS");
	int n = env ? atoi(env) : 10, vss_bad = 0, plain_bad = 0;
	bool sync_control = getenv("VSS_BUSY_CONTROL_SYNC") != NULL;
	char *mi_before, *mi_after, ctl[4200], plain_first[512] = "";
	unsigned seed = (unsigned)time(NULL);
	struct timespec t0, t1;
	pid_t pid;
	int status;

	snprintf(busy, sizeof(busy), "%s/busy", TOP);
	for (int d = 0; d < NDIRS; d++) {
		snprintf(ctl, sizeof(ctl), "%s/d%d", busy, d);
		assert_int_equal(mkdir(ctl, 0755), 0);
	}
	snprintf(ctl, sizeof(ctl), "%s/control", TOP);
	assert_int_equal(mkdir(ctl, 0700), 0);
	mi_before = mountinfo_lines(TOP);
	assert_non_null(mi_before);

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		writer();
	usleep(500 * 1000);
	print_message("seed %u; writer at step %llu after 0.5 s\n", seed,
		      (unsigned long long)atomic_load(&sh->done));
	srand(seed);
	clock_gettime(CLOCK_MONOTONIC, &t0);

	for (int i = 0; i < n; i++) {
		struct vss_btrfs_snapshot_params p;
		struct vss_btrfs_snapshot *s;
		const struct vss_btrfs_commit_stats *cs;
		struct vss_error err;
		struct verdict v;
		uint64_t before, after;
		char snap[4300];

		/* A shadow through the provider. */
		usleep((useconds_t)(50 + rand() % 200) * 1000);
		memset(&p, 0, sizeof(p));
		memset(p.set_id, 0xb5, 16);
		p.shadow_id[15] = (unsigned char)(i + 1);
		if (vss_btrfs_snapshot_prepare(busy, &p, &s, &err) < 0)
			fail_msg("prepare: %s", err.msg);
		before = atomic_load(&sh->done);
		if (vss_btrfs_snapshot_commit(s, &err) < 0)
			fail_msg("commit: %s", err.msg);
		after = atomic_load(&sh->done);
		verify(vss_btrfs_snapshot_target(s), before, after, &v);
		cs = vss_btrfs_snapshot_stats(s);
		print_message("vss   %2d: steps %llu..%llu, snapshot at files %llu log %llu: %s%s "
			      "(on %.1f ms, snapshot %.1f ms, off %.1f ms)\n", i,
			      (unsigned long long)before, (unsigned long long)after,
			      (unsigned long long)v.files_step, (unsigned long long)v.log_lines,
			      v.problems ? "NOT EXACT: " : "exact", v.first,
			      cs->enable_us / 1000.0, cs->snapshot_us / 1000.0,
			      cs->restore_us / 1000.0);
		if (!cs->switched)
			fail_msg("flushoncommit was not switched on for the commit");
		vss_bad += v.problems > 0;
		if (vss_btrfs_delete(vss_btrfs_snapshot_path(s), &err) < 0)
			fail_msg("delete: %s", err.msg);
		vss_btrfs_snapshot_free(s);

		/* A plain read-only snapshot, as btrfs makes it: the control. */
		usleep((useconds_t)(50 + rand() % 200) * 1000);
		snprintf(snap, sizeof(snap), "%s/control/plain-%d", TOP, i);
		if (sync_control)
			assert_int_equal(btrfs_util_sync(busy), BTRFS_UTIL_OK);
		before = atomic_load(&sh->done);
		assert_int_equal(btrfs_util_create_snapshot(busy, snap,
				 BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY, NULL, NULL), BTRFS_UTIL_OK);
		after = atomic_load(&sh->done);
		verify(snap, before, after, &v);
		print_message("plain %2d: steps %llu..%llu, snapshot at files %llu log %llu: %s%s\n",
			      i, (unsigned long long)before, (unsigned long long)after,
			      (unsigned long long)v.files_step, (unsigned long long)v.log_lines,
			      v.problems ? "NOT EXACT: " : "exact", v.first);
		if (v.problems && !plain_first[0])
			snprintf(plain_first, sizeof(plain_first), "%s", v.first);
		plain_bad += v.problems > 0;
		assert_int_equal(btrfs_util_delete_subvolume(snap, 0), BTRFS_UTIL_OK);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	atomic_store(&sh->stop, 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	print_message("writer: %llu steps in %.1f s\n", (unsigned long long)atomic_load(&sh->done),
		      secs(&t0, &t1) + 0.5);
	print_message("RESULT vss shadows (flushoncommit): %d of %d exact\n", n - vss_bad, n);
	print_message("RESULT plain snapshots (control%s):   %d of %d exact%s%s\n",
		      sync_control ? ", synced first" : "", n - plain_bad, n,
		      plain_first[0] ? "; e.g. " : "", plain_first);

	mi_after = mountinfo_lines(TOP);
	assert_non_null(mi_after);
	assert_string_equal(mi_before, mi_after);
	free(mi_before);
	free(mi_after);
	assert_int_equal(vss_bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(busy_tree),
	};

	TOP = getenv("VSS_TEST_BTRFS_TOP");
	if (!TOP) {
		printf("SKIP: run through tests/btrfs/run.sh, which makes the filesystem\n");
		return 77;
	}
	return cmocka_run_group_tests_name("busy", tests, NULL, NULL);
}
