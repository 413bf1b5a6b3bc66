/*
 * tests/requester/test_image.c - image backups (vss/backup.h) on plain
 * files, without vssd and without root: a "device" (a file of random
 * blocks, some zero) backed up full, changed, backed up incrementally and
 * differentially with a tracker that says which blocks changed; each
 * backup restored (the chain laid) to a new file and in place over an
 * existing one, and compared with a copy this test kept; the incremental
 * reads only what changed; a tracker that cannot tell makes the backup
 * full and says why; which tracking points the repository keeps and drops;
 * damaged extents are found by verify and refused by restore before
 * anything is written in place.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <vss/backup.h>

#define BS   16384u
#define SIZE (300u * BS + 4096u)  /* a partial last block */

struct fx {
	char dir[64], dev[96], repo[96];
	unsigned char *cur;             /* what the device holds */
	unsigned char changed[SIZE / BS + 1];
	struct vss_repo *r;
	/* the tracker */
	int fail;                       /* changed() says it cannot tell */
	char kept[8][40], dropped[8][40];
	int nkept, ndropped;
	char asked[40];
};

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void put_device(struct fx *f)
{
	int fd = open(f->dev, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, f->cur, SIZE, 0), (ssize_t)SIZE);
	close(fd);
}

/* Writes random bytes (or zeros) over @n random blocks and notes them. */
static void change(struct fx *f, int n, bool zeros)
{
	for (int i = 0; i < n; i++) {
		uint64_t b = next() % (SIZE / BS + 1), off = b * BS;
		uint64_t len = off + BS > SIZE ? SIZE - off : BS;

		for (uint64_t k = 0; k < len; k++)
			f->cur[off + k] = zeros ? 0 : (unsigned char)next();
		f->changed[b] = 1;
	}
	put_device(f);
}

static int tr_changed(void *arg, const char *since, struct vss_backup_extent **out,
		      size_t *count, struct vss_error *err)
{
	struct fx *f = arg;
	size_t n = 0;

	snprintf(f->asked, sizeof(f->asked), "%s", since);
	if (f->fail)
		return vss_error_set(err, -ESTALE, "tracking was lost (test)");
	*out = calloc(SIZE / BS + 1, sizeof(**out));
	for (uint64_t b = 0; b <= SIZE / BS; b++)
		if (f->changed[b]) {
			uint64_t off = b * BS;

			(*out)[n].offset = off;
			(*out)[n++].length = off + BS > SIZE ? SIZE - off : BS;
		}
	*count = n;
	return 0;
}

static int tr_keep(void *arg, const char *shadow, struct vss_error *err)
{
	struct fx *f = arg;

	snprintf(f->kept[f->nkept++ % 8], 40, "%s", shadow);
	return 0;
}

static void tr_drop(void *arg, const char *shadow)
{
	struct fx *f = arg;

	snprintf(f->dropped[f->ndropped++ % 8], 40, "%s", shadow);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/vss-test-image-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->dev, sizeof(f->dev), "%s/dev", f->dir);
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	f->cur = malloc(SIZE);
	for (uint64_t i = 0; i < SIZE; i++)
		f->cur[i] = (unsigned char)next();
	memset(f->cur + 10 * BS, 0, 40 * BS);   /* a hole */
	put_device(f);
	if (vss_repo_open(f->repo, VSS_REPO_CREATE, &f->r, NULL) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[160];

	vss_repo_close(f->r);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f->cur);
	free(f);
	return 0;
}

static const struct vss_image_tracker *tracker(struct fx *f)
{
	static struct vss_image_tracker t;

	t = (struct vss_image_tracker){ tr_changed, tr_keep, tr_drop, f };
	return &t;
}

/* One backup of the device as shadow @shadow; returns its ID in @id. */
static void backup(struct fx *f, enum vss_backup_type type, const char *shadow,
		   struct vss_backup_info *info, struct vss_image_info *img)
{
	struct vss_image_params p = {
		.size = sizeof(p), .type = type, .volume = "data", .live = "/run/vss/dev/volumes/data",
		.device = f->dev, .shadow = shadow, .tracker = tracker(f),
	};
	struct vss_error err = { 0 };

	if (vss_repo_backup_image(f->r, &p, info, img, &err) < 0)
		fail_msg("backup: %s", err.msg);
	memset(f->changed, 0, sizeof(f->changed));
}

/* Restores backup @id to @to and compares it with @want. */
static void restore_check(struct fx *f, const char *id, const char *to, const unsigned char *want)
{
	struct vss_restore_params p = { .size = sizeof(p), .to = to };
	struct vss_restore_result res;
	struct vss_error err = { 0 };
	unsigned char *got = malloc(SIZE);
	struct stat st;
	int fd;

	if (vss_repo_restore(f->r, id, &p, &res, &err) < 0)
		fail_msg("restore %s: %s", id, err.msg);
	fd = open(to, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, SIZE);
	assert_int_equal(pread(fd, got, SIZE, 0), (ssize_t)SIZE);
	close(fd);
	assert_memory_equal(got, want, SIZE);
	free(got);
}

static void chain_restores_each_instant(void **state)
{
	struct fx *f = *state;
	struct vss_backup_info b0, b1, b2, b3;
	struct vss_image_info i0, i1, i2, i3, shown;
	unsigned char *s0 = malloc(SIZE), *s1 = malloc(SIZE), *s2 = malloc(SIZE);
	char to[128];

	memcpy(s0, f->cur, SIZE);
	backup(f, VSS_BT_INCREMENTAL, "shadow-0", &b0, &i0);  /* no base: made full */
	assert_int_equal(b0.type, VSS_BT_FULL);
	assert_non_null(strstr(i0.why_full, "no earlier image backup"));
	assert_int_equal(i0.bytes_read, SIZE);
	assert_int_equal(f->nkept, 1);
	assert_string_equal(f->kept[0], "shadow-0");

	change(f, 5, false);
	change(f, 1, true);
	memcpy(s1, f->cur, SIZE);
	backup(f, VSS_BT_INCREMENTAL, "shadow-1", &b1, &i1);
	assert_int_equal(b1.type, VSS_BT_INCREMENTAL);
	assert_string_equal(b1.base, b0.id);
	assert_string_equal(f->asked, "shadow-0");
	assert_true(i1.bytes_read <= 6 * BS && i1.bytes_read > 0);
	assert_string_equal(i1.why_full, "");
	/* shadow-0 stays: it is the newest full's */
	assert_int_equal(f->ndropped, 0);

	change(f, 3, false);
	memcpy(s2, f->cur, SIZE);
	backup(f, VSS_BT_INCREMENTAL, "shadow-2", &b2, &i2);
	assert_string_equal(b2.base, b1.id);
	/* shadow-1 is neither the newest backup's nor the newest full's now */
	assert_int_equal(f->ndropped, 1);
	assert_string_equal(f->dropped[0], "shadow-1");

	change(f, 2, false);
	for (uint64_t b = 0; b <= SIZE / BS; b++)       /* since the full */
		f->changed[b] |= memcmp(f->cur + b * BS, s0 + b * BS,
					b * BS + BS > SIZE ? SIZE - b * BS : BS) != 0;
	backup(f, VSS_BT_DIFFERENTIAL, "shadow-3", &b3, &i3);
	assert_int_equal(b3.type, VSS_BT_DIFFERENTIAL);
	assert_string_equal(b3.base, b0.id);
	assert_string_equal(f->asked, "shadow-0");

	snprintf(to, sizeof(to), "%s/r0", f->dir);
	restore_check(f, b0.id, to, s0);
	snprintf(to, sizeof(to), "%s/r1", f->dir);
	restore_check(f, b1.id, to, s1);
	snprintf(to, sizeof(to), "%s/r2", f->dir);
	restore_check(f, b2.id, to, s2);
	snprintf(to, sizeof(to), "%s/r3", f->dir);
	restore_check(f, b3.id, to, f->cur);
	/* in place, over what holds another instant */
	snprintf(to, sizeof(to), "%s/r1", f->dir);
	restore_check(f, b2.id, to, s2);
	restore_check(f, b0.id, to, s0);

	assert_int_equal(vss_repo_image_info(f->r, b1.id, &shown, NULL), 1);
	assert_string_equal(shown.volume, "data");
	assert_string_equal(shown.shadow, "shadow-1");
	assert_int_equal(shown.size, SIZE);
	assert_int_equal(shown.bytes_read, i1.bytes_read);
	assert_int_equal(vss_repo_verify(f->r, NULL, NULL, NULL, NULL), 0);
	free(s0);
	free(s1);
	free(s2);
}

static void lost_tracking_reads_everything(void **state)
{
	struct fx *f = *state;
	struct vss_backup_info b0, b1;
	struct vss_image_info i1;
	char to[128];

	backup(f, VSS_BT_FULL, "shadow-0", &b0, NULL);
	change(f, 4, false);
	f->fail = 1;
	backup(f, VSS_BT_INCREMENTAL, "shadow-1", &b1, &i1);
	assert_int_equal(b1.type, VSS_BT_FULL);
	assert_string_equal(b1.base, "");
	assert_non_null(strstr(i1.why_full, "tracking was lost (test)"));
	assert_int_equal(i1.bytes_read, SIZE);
	snprintf(to, sizeof(to), "%s/r", f->dir);
	restore_check(f, b1.id, to, f->cur);
	/* a copy starts no chain and keeps nothing */
	f->nkept = 0;
	backup(f, VSS_BT_COPY, "shadow-2", &b0, NULL);
	assert_int_equal(f->nkept, 0);
}

static void damage_is_found_and_refused(void **state)
{
	struct fx *f = *state;
	struct vss_restore_params p = { .size = sizeof(p) };
	struct vss_restore_result res;
	struct vss_backup_info b0, b1;
	struct vss_error err = { 0 };
	unsigned char *before = malloc(SIZE), *after = malloc(SIZE);
	char path[256], to[128];
	int fd;

	memcpy(before, f->cur, SIZE);
	backup(f, VSS_BT_FULL, "shadow-0", &b0, NULL);
	change(f, 3, false);
	backup(f, VSS_BT_INCREMENTAL, "shadow-1", &b1, NULL);
	snprintf(to, sizeof(to), "%s/r", f->dir);
	restore_check(f, b0.id, to, before);
	/* the bytes of the full, then the incremental restored over r */
	snprintf(path, sizeof(path), "%s/backups/%s/data/IMAGE", f->repo, b0.id);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 2 * BS + 7), 1);
	close(fd);
	assert_int_equal(vss_repo_verify(f->r, b0.id, NULL, NULL, &err), -EBADMSG);
	p.to = to;
	assert_int_equal(vss_repo_restore(f->r, b1.id, &p, &res, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "nothing was written"));
	fd = open(to, O_RDONLY);
	assert_int_equal(pread(fd, after, SIZE, 0), (ssize_t)SIZE);
	close(fd);
	assert_memory_equal(after, before, SIZE);
	/* a file of another size is not written over */
	snprintf(path, sizeof(path), "%s/small", f->dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	close(fd);
	p.to = path;
	assert_int_equal(vss_repo_restore(f->r, b0.id, &p, &res, &err), -EINVAL);
	free(before);
	free(after);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(chain_restores_each_instant, setup, teardown),
		cmocka_unit_test_setup_teardown(lost_tracking_reads_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(damage_is_found_and_refused, setup, teardown),
	};

	return cmocka_run_group_tests_name("image backups", tests, NULL, NULL);
}
