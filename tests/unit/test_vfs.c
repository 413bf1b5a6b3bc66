/*
 * tests/unit/test_vfs.c - the posix vfs's read batches: random batches of
 * reads over two files, some past their ends, some vectored, return what
 * pread would, through io_uring and without it; probed reads count the
 * page-cache misses; io_uring's own answers (short reads, errors); no ring
 * outlives the last open file; where seccomp forbids io_uring, batches
 * read with pread all the same; and writes cut into 256 KiB pieces land
 * whole.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "io/uring.h"
#include "io/vfs.h"
#include "../lib/testutil.h"

#define NFILES 2
#define MAX_READ (64u << 10)

static const size_t file_size[NFILES] = { (1u << 20) + 777, 300u << 10 };

struct fx {
	char dir[64], path[NFILES][96];
	unsigned char *data[NFILES];      /* what each file holds */
	struct vss_file *file[NFILES];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint64_t rng = 99;

	snprintf(f->dir, sizeof(f->dir), "/tmp/vss-vfs-%d-XXXXXX", (int)getpid());
	if (!mkdtemp(f->dir))
		return -1;
	for (int i = 0; i < NFILES; i++) {
		snprintf(f->path[i], sizeof(f->path[i]), "%s/f%d", f->dir, i);
		f->data[i] = malloc(file_size[i]);
		rng_fill(&rng, f->data[i], file_size[i]);
		int fd = open(f->path[i], O_CREAT | O_RDWR | O_TRUNC, 0600);
		if (fd < 0 || write(fd, f->data[i], file_size[i]) != (ssize_t)file_size[i])
			return -1;
		close(fd);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < NFILES; i++) {
		vss_file_close(f->file[i]);
		unlink(f->path[i]);
		free(f->data[i]);
	}
	rmdir(f->dir);
	free(f);
	vss_uring_enable(1);
	return 0;
}

static void open_all(struct fx *f)
{
	struct vss_vfs *vfs = vss_vfs_posix();

	for (int i = 0; i < NFILES; i++)
		assert_int_equal(vfs->open(vfs, f->path[i], 0, &f->file[i]), 0);
}

static void close_all(struct fx *f)
{
	for (int i = 0; i < NFILES; i++) {
		vss_file_close(f->file[i]);
		f->file[i] = NULL;
	}
}

#define GAP 3          /* bytes between the pieces of a vectored read */
#define MAX_PIECES 5
#define SLOT (MAX_READ + GAP * MAX_PIECES)

/* Splits the read @rd into @iov: up to MAX_PIECES pieces, GAP bytes apart
 * in its slot of the buffer, so that preadv's order is seen. */
static void make_vectored(struct vss_read *rd, struct iovec *iov, uint64_t *seed)
{
	int k = 1 + (int)rng_below(seed, MAX_PIECES);
	char *p = rd->buf;
	size_t left = rd->len;

	for (int i = 0; i < k; i++) {
		size_t len = i == k - 1 ? left : (size_t)rng_below(seed, left + 1);
		iov[i] = (struct iovec){ .iov_base = p, .iov_len = len };
		p += len + GAP;
		left -= len;
	}
	rd->iov = iov;
	rd->iovcnt = k;
}

/* Gathers what a (maybe vectored) read put in its buffer. */
static void gather(const struct vss_read *rd, unsigned char *out)
{
	if (!rd->iovcnt) {
		memcpy(out, rd->buf, rd->len);
		return;
	}
	for (int i = 0; i < rd->iovcnt; i++) {
		memcpy(out, rd->iov[i].iov_base, rd->iov[i].iov_len);
		out += rd->iov[i].iov_len;
	}
}

/* Room for @n random reads. */
struct batch {
	size_t n;
	struct vss_read *rd;
	struct iovec *iov;
	unsigned char *buf, *want, *got;
	int *which;                     /* the file each reads */
};

static void batch_init(struct batch *b, size_t n)
{
	size_t m = n ? n : 1;

	*b = (struct batch){ .n = n, .rd = calloc(m, sizeof(*b->rd)),
		.iov = calloc(m * MAX_PIECES, sizeof(*b->iov)), .buf = malloc(m * SLOT),
		.want = malloc(MAX_READ), .got = malloc(MAX_READ), .which = calloc(m, sizeof(int)) };
}

static void batch_release(struct batch *b)
{
	free(b->rd);
	free(b->iov);
	free(b->buf);
	free(b->want);
	free(b->got);
	free(b->which);
}

/* Fills @b with random reads over the files, a third of them vectored, a
 * few starting or running past the end (zeros there); with @probe set on
 * each. */
static void batch_make(struct fx *f, struct batch *b, uint64_t *seed, int probe)
{
	for (size_t i = 0; i < b->n; i++) {
		int k = (int)rng_below(seed, NFILES);
		uint64_t off = rng_below(seed, file_size[k] + 2 * MAX_READ);
		struct vss_read *rd = &b->rd[i];

		b->which[i] = k;
		*rd = (struct vss_read){ .file = f->file[k], .buf = b->buf + i * SLOT,
					 .len = rng_below(seed, MAX_READ + 1), .off = off,
					 .probe = probe };
		memset(rd->buf, 0xA5, SLOT);
		if (rng_below(seed, 3) == 0)
			make_vectored(rd, b->iov + i * MAX_PIECES, seed);
	}
}

/* What is wrong with what the reads of @b put in their buffers (NULL:
 * nothing), against the files' known contents. */
static const char *batch_wrong(struct fx *f, struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct vss_read *rd = &b->rd[i];
		size_t k = (size_t)b->which[i], have = 0;

		memset(b->want, 0, rd->len);
		if (rd->off < file_size[k])
			have = file_size[k] - rd->off;
		if (have > rd->len)
			have = rd->len;
		memcpy(b->want, f->data[k] + (have ? rd->off : 0), have);
		gather(rd, b->got);
		if (memcmp(b->got, b->want, rd->len))
			return "a read returned other bytes than the file holds";
		for (int j = 0; j + 1 < rd->iovcnt; j++)
			for (int g = 0; g < GAP; g++)
				if (((unsigned char *)rd->iov[j].iov_base)[rd->iov[j].iov_len +
									  (size_t)g] != 0xA5)
					return "a vectored read wrote between its pieces";
	}
	return NULL;
}

/* Random batches of @n reads against the files' known contents. */
static void batches(struct fx *f, size_t n, uint64_t seed)
{
	struct batch b;

	batch_init(&b, n);
	for (int round = 0; round < 20; round++) {
		const char *wrong;

		batch_make(f, &b, &seed, 0);
		assert_int_equal(vss_vfs_read_batch(vss_vfs_posix(), b.rd, n), 0);
		if ((wrong = batch_wrong(f, &b)))
			fail_msg("round %d: %s", round, wrong);
	}
	/* More pieces than a vectored read may have: refused. */
	if (n) {
		struct iovec *many = calloc(VSS_READ_IOV_MAX + 1, sizeof(*many));
		for (int i = 0; i <= VSS_READ_IOV_MAX; i++)
			many[i] = (struct iovec){ .iov_base = b.buf, .iov_len = 1 };
		b.rd[0] = (struct vss_read){ .file = f->file[0], .len = VSS_READ_IOV_MAX + 1,
					     .iov = many, .iovcnt = VSS_READ_IOV_MAX + 1 };
		assert_int_equal(vss_vfs_read_batch(vss_vfs_posix(), b.rd, n), -EINVAL);
		free(many);
	}
	batch_release(&b);
}

static void batch_reads_like_pread(void **state)
{
	static const size_t sizes[] = { 0, 1, 2, 37, VSS_URING_ENTRIES, VSS_URING_ENTRIES + 1, 400 };
	struct fx *f = *state;

	open_all(f);
	for (int on = 1; on >= 0; on--) {
		vss_uring_enable(on);
		for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++)
			batches(f, sizes[i], 1000 * i + (uint64_t)on);
	}
	close_all(f);
}

static void uring_answers(void **state)
{
	struct fx *f = *state;
	unsigned char a[4096], b[4096], c[4096], d[3000], e[3000];
	int fd = open(f->path[1], O_RDONLY);
	struct iovec de[2] = { { .iov_base = e, .iov_len = 1000 }, { .iov_base = d, .iov_len = 3000 } };
	struct vss_uring_read rd[4] = {
		{ .fd = fd, .len = sizeof(a), .buf = a, .off = 8192 },
		{ .fd = fd, .len = sizeof(b), .buf = b, .off = file_size[1] - 100 },
		{ .fd = -1, .len = sizeof(c), .buf = c, .off = 0 },
		{ .fd = fd, .iov = de, .iovcnt = 2, .off = 5 },    /* vectored */
	};
	int r;

	assert_true(fd >= 0);
	vss_uring_hold();
	r = vss_uring_read(rd, 4);
	if (r == -ENOSYS) {
		vss_uring_release();
		close(fd);
		skip();     /* io_uring is not available here */
	}
	assert_int_equal(r, 0);
	assert_int_equal(rd[0].res, sizeof(a));
	assert_memory_equal(a, f->data[1] + 8192, sizeof(a));
	assert_int_equal(rd[1].res, 100);          /* short: the end of the file */
	assert_memory_equal(b, f->data[1] + file_size[1] - 100, 100);
	assert_int_equal(rd[2].res, -EBADF);
	assert_int_equal(rd[3].res, 4000);
	assert_memory_equal(e, f->data[1] + 5, 1000);
	assert_memory_equal(d, f->data[1] + 1005, 3000);
	assert_int_equal(vss_uring_read(rd, VSS_URING_ENTRIES + 1), -EINVAL);

	vss_uring_enable(0);
	assert_int_equal(vss_uring_read(rd, 1), -ENOSYS);
	assert_int_equal(rd[0].res, -ECANCELED);
	vss_uring_enable(1);
	vss_uring_release();
	close(fd);
}

/* Probed reads say how many missed the page cache, and still read. */
static void probes_count_misses(void **state)
{
	struct fx *f = *state;
	unsigned char a[4096], b[4096];
	struct vss_read rd[2];
	int fd = open(f->path[0], O_RDONLY), r;

	assert_true(fd >= 0);
	open_all(f);
	rd[0] = (struct vss_read){ .file = f->file[0], .buf = a, .len = sizeof(a), .off = 0,
				   .probe = 1 };
	rd[1] = (struct vss_read){ .file = f->file[0], .buf = b, .len = sizeof(b),
				   .off = 512 << 10, .probe = 1 };
	for (int tries = 1;; tries++) {
		assert_int_equal(fdatasync(fd), 0);
		assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
		r = vss_vfs_read_batch(vss_vfs_posix(), rd, 2);
		assert_true(r >= 0);
		assert_memory_equal(a, f->data[0], sizeof(a));
		assert_memory_equal(b, f->data[0] + (512 << 10), sizeof(b));
		if (r == 0) {
			/* No io_uring, or a filesystem whose cache cannot be dropped. */
			close_all(f);
			close(fd);
			skip();
		}
		/* Under load the kernel may keep a page it is asked to drop
		 * (seen once here under load: one miss of two); ask again. */
		if (r == 2 || tries == 5)
			break;
	}
	assert_int_equal(r, 2);
	/* Warm now. */
	assert_int_equal(vss_vfs_read_batch(vss_vfs_posix(), rd, 2), 0);
	vss_uring_enable(0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	assert_int_equal(vss_vfs_read_batch(vss_vfs_posix(), rd, 2), 0);   /* cannot tell */
	assert_memory_equal(b, f->data[0] + (512 << 10), sizeof(b));
	vss_uring_enable(1);
	close_all(f);
	close(fd);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void rings_go_with_the_last_file(void **state)
{
	struct fx *f = *state;
	int before = count_fds();

	open_all(f);
	batches(f, 50, 7);
	close_all(f);
	assert_int_equal(count_fds(), before);
}

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef NATIVE_ARCH
/* Has io_uring_setup() fail with @error from now on in this process, as a
 * container's seccomp profile does; 0 or -errno. */
static int forbid_io_uring(int error)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)error & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(*f), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -errno;
	return 0;
}

/* In a child (cmocka's checks cannot run there): fails with a line. */
#define CHILD_CHECK(c) do { if (!(c)) { \
	fprintf(stderr, "child, io_uring_setup failing with %d: %s:%d: %s\n", \
		error, __FILE__, __LINE__, #c); \
	_exit(1); } } while (0)

/* The child's part of fallback_when_forbidden(). */
static void forbidden_child(struct fx *f, int error)
{
	struct vss_vfs *vfs = vss_vfs_posix();
	struct vss_uring_read ur;
	uint64_t seed = 5150 + (uint64_t)error;
	struct batch b;
	char params[256] = { 0 };
	int fd, r;

	CHILD_CHECK(forbid_io_uring(error) == 0);
	errno = 0;
	CHILD_CHECK(syscall(__NR_io_uring_setup, 8, params) == -1 && errno == error);
	for (int i = 0; i < NFILES; i++)
		CHILD_CHECK(vfs->open(vfs, f->path[i], 0, &f->file[i]) == 0);
	batch_init(&b, 50);
	for (int round = 0; round < 10; round++) {
		batch_make(f, &b, &seed, round % 2);
		/* Read all the same, and no probe is answered (0 misses). */
		r = vss_vfs_read_batch(vfs, b.rd, b.n);
		CHILD_CHECK(r == 0);
		CHILD_CHECK(batch_wrong(f, &b) == NULL);
	}
	batch_release(&b);
	/* Found out once, for the rest of the process: no new ring is tried. */
	fd = open(f->path[0], O_RDONLY);
	CHILD_CHECK(fd >= 0);
	ur = (struct vss_uring_read){ .fd = fd, .len = 1, .buf = params, .off = 0 };
	CHILD_CHECK(vss_uring_read(&ur, 1) == -ENOSYS && ur.res == -ECANCELED);
	close(fd);
	close_all(f);
	_exit(0);
}
#endif

/*
 * Where io_uring is forbidden (seccomp answering io_uring_setup() with
 * EPERM or ENOSYS; the kernel.io_uring_disabled sysctl answers EPERM too),
 * the posix vfs reads its batches with pread: each in a child process,
 * whose seccomp filter dies with it.
 */
static void fallback_when_forbidden(void **state)
{
#ifdef NATIVE_ARCH
	static const int errors[] = { EPERM, ENOSYS };
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(errors) / sizeof(*errors); i++) {
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0)
			forbidden_child(f, errors[i]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("the child forbidden io_uring_setup (%s) failed: status 0x%x",
				 strerror(errors[i]), status);
	}
#else
	skip();     /* no seccomp filter written for this architecture */
#endif
}

/*
 * posix_pwrite cuts a write at every multiple of 256 KiB (its PIECE): a
 * write from an odd offset across several such boundaries, one from 0
 * over the whole file and one past its end land whole, byte for byte.
 */
static void pwrite_in_pieces_is_whole(void **state)
{
	struct fx *f = *state;
	const size_t len = (700u << 10) + 5, head = (512u << 10) + 1, grow = (600u << 10) + 11;
	const size_t size = file_size[0], end = size - 9;
	const uint64_t at = 100003;
	unsigned char *want = malloc(size + grow), *got = malloc(size + grow + 1);
	uint64_t rng = 7;
	int fd;

	assert_non_null(want);
	assert_non_null(got);
	open_all(f);
	memcpy(want, f->data[0], size);
	rng_fill(&rng, want + at, len);
	assert_int_equal(vss_file_pwrite(f->file[0], want + at, len, at), 0);
	rng_fill(&rng, want, head);
	assert_int_equal(vss_file_pwrite(f->file[0], want, head, 0), 0);
	rng_fill(&rng, want + end, size + grow - end);
	assert_int_equal(vss_file_pwrite(f->file[0], want + end, size + grow - end, end), 0);
	close_all(f);
	fd = open(f->path[0], O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, got, size + grow + 1, 0), (ssize_t)(size + grow));
	close(fd);
	assert_memory_equal(got, want, size + grow);
	free(want);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(batch_reads_like_pread, setup, teardown),
		cmocka_unit_test_setup_teardown(uring_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(probes_count_misses, setup, teardown),
		cmocka_unit_test_setup_teardown(rings_go_with_the_last_file, setup, teardown),
		cmocka_unit_test_setup_teardown(fallback_when_forbidden, setup, teardown),
		cmocka_unit_test_setup_teardown(pwrite_in_pieces_is_whole, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
