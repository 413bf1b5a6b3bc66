/*
 * tests/fuzz/make_seeds.c - writes a few real diff areas (persistent shadows,
 * deletions, several block sizes, one left as a killed process leaves it,
 * with REDO records no DONE record covers, and ones with bookmarks, their
 * MARK and BMAP records, and reverts, done and cut by a power loss) into
 * DIR, as the fuzzer's seed corpus.  Usage: make-fuzz-seeds DIR
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cow_i.h"
#include "crashvfs.h"

static int save(const char *dir, int n, const void *img, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-%d", dir, n);
	f = fopen(path, "wb");
	if (!f || fwrite(img, 1, len, f) != len || fclose(f))
		return 1;
	return 0;
}

static int make(const char *dir, int n, uint32_t bs, int shadows, int deletes)
{
	struct crashvfs *cv;
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_cow_volume *vol;
	struct vss_error err;
	unsigned char buf[8192];
	void *img;
	size_t len;

	if (crashvfs_new(&cv))
		return 1;
	crashvfs_put(cv, "origin", NULL, 256u << 10);
	cfg.block_size = bs;
	if (vss_cow_open_vfs(crashvfs_vfs(cv), "origin", "diff", &cfg, VSS_COW_CREATE, &vol, &err)) {
		fprintf(stderr, "make-fuzz-seeds: %s\n", err.msg);
		return 1;
	}
	for (int s = 0; s < shadows; s++) {
		struct vss_cow_shadow_params p = { .flags = VSS_COW_SHADOW_PERSISTENT };
		p.id[0] = (unsigned char)(s + 1);
		vss_cow_shadow_create(vol, &p, NULL);
		memset(buf, s, sizeof(buf));
		for (int w = 0; w < 8; w++)
			vss_cow_write(vol, buf, sizeof(buf), (uint64_t)((s * 5 + w * 3) % 30) * 8192);
	}
	for (int d = 0; d < deletes; d++) {
		vss_cow_id id = { (unsigned char)(d * 2 + 1) };
		vss_cow_shadow_delete(vol, id, NULL);
	}
	vss_cow_close(vol);
	if (crashvfs_get(cv, "diff", true, &img, &len) || save(dir, n, img, len))
		return 1;
	free(img);
	crashvfs_free(cv);
	return 0;
}

/*
 * A vfs over crashvfs that, once armed, copies the volatile image of the
 * diff area (every write, synced or not: what a killed process leaves) at
 * the diff area's next sync.  After a queued write, that sync is the
 * flusher's commit: the write's COPY and REDO records are in the file, no
 * DONE record is, and no SYNC record vouches for them.
 */
struct snapvfs {
	struct vss_vfs vfs;
	struct vss_vfs *inner;
	struct crashvfs *cv;
	atomic_int armed;
	void *img;
	size_t len;
};

struct snapfile {
	struct vss_file base;
	struct vss_file *inner;
	struct snapvfs *sv;     /* NULL: not the diff area */
};

#define SF(f) ((struct snapfile *)(f))

static int sf_pread(struct vss_file *f, void *b, size_t n, uint64_t o)
{ return vss_file_pread(SF(f)->inner, b, n, o); }
static int sf_pwrite(struct vss_file *f, const void *b, size_t n, uint64_t o)
{ return vss_file_pwrite(SF(f)->inner, b, n, o); }
static int sf_punch(struct vss_file *f, uint64_t o, uint64_t n)
{ return vss_file_punch(SF(f)->inner, o, n); }
static int sf_truncate(struct vss_file *f, uint64_t s) { return vss_file_truncate(SF(f)->inner, s); }
static int sf_size(struct vss_file *f, uint64_t *s) { return vss_file_size(SF(f)->inner, s); }
static int sf_allocated(struct vss_file *f, uint64_t *b)
{ return vss_file_allocated(SF(f)->inner, b); }

static int sf_sync(struct vss_file *f)
{
	struct snapvfs *sv = SF(f)->sv;

	if (sv && atomic_exchange(&sv->armed, 0) &&
	    crashvfs_get(sv->cv, "diff", false, &sv->img, &sv->len))
		sv->img = NULL;
	return vss_file_sync(SF(f)->inner);
}

static void sf_close(struct vss_file *f)
{
	vss_file_close(SF(f)->inner);
	free(f);
}

static int sf_reserve(struct vss_file *f, uint64_t o, uint64_t n)
{ return vss_file_reserve(SF(f)->inner, o, n); }

static const struct vss_file_ops sf_ops = {
	.pread = sf_pread, .pwrite = sf_pwrite, .sync = sf_sync, .punch = sf_punch,
	.reserve = sf_reserve, .truncate = sf_truncate, .size = sf_size,
	.allocated = sf_allocated, .close = sf_close,
};

static int sv_open(struct vss_vfs *vfs, const char *path, int flags, struct vss_file **out)
{
	struct snapvfs *sv = (struct snapvfs *)vfs;
	struct snapfile *sf = calloc(1, sizeof(*sf));
	int r;

	if (!sf)
		return -ENOMEM;
	r = sv->inner->open(sv->inner, path, flags, &sf->inner);
	if (r) {
		free(sf);
		return r;
	}
	sf->base.ops = &sf_ops;
	sf->sv = strcmp(path, "diff") ? NULL : sv;
	*out = &sf->base;
	return 0;
}

static int sv_unlink(struct vss_vfs *vfs, const char *path)
{
	struct snapvfs *sv = (struct snapvfs *)vfs;
	return sv->inner->unlink(sv->inner, path);
}

/* Whether @img, opened as the fuzz target opens it (on an origin of zeros),
 * has the @len bytes of @want at @off: its REDO records were replayed. */
static int replays_write(const void *img, size_t img_len, const unsigned char *want,
			 size_t len, uint64_t off)
{
	struct crashvfs *cv;
	struct vss_cow_volume *vol;
	struct vss_error err;
	unsigned char got[8192];
	int ok = 0;

	if (len > sizeof(got) || crashvfs_new(&cv))
		return 0;
	crashvfs_put(cv, "origin", NULL, 256u << 10);
	crashvfs_put(cv, "diff", img, img_len);
	if (vss_cow_open_vfs(crashvfs_vfs(cv), "origin", "diff", NULL, 0, &vol, &err) == 0) {
		ok = vss_cow_read(vol, got, len, off) == (ssize_t)len && !memcmp(got, want, len);
		vss_cow_close(vol);
	} else {
		fprintf(stderr, "make-fuzz-seeds: %s\n", err.msg);
	}
	crashvfs_free(cv);
	return ok;
}

static int make_killed(const char *dir, int n)
{
	struct crashvfs *cv;
	struct snapvfs sv = { .vfs = { sv_open, sv_unlink, NULL } };
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_cow_volume *vol;
	struct vss_error err;
	unsigned char buf[8192];
	/* parts of two blocks nothing wrote before */
	const uint64_t off = 40 * 4096 + 1000;
	const size_t len = 6000;
	int r = 1;

	if (crashvfs_new(&cv))
		return 1;
	sv.inner = crashvfs_vfs(cv);
	sv.cv = cv;
	crashvfs_put(cv, "origin", NULL, 256u << 10);
	cfg.block_size = 4096;
	if (vss_cow_open_vfs(&sv.vfs, "origin", "diff", &cfg, VSS_COW_CREATE, &vol, &err)) {
		fprintf(stderr, "make-fuzz-seeds: %s\n", err.msg);
		return 1;
	}
	for (int s = 0; s < 2; s++) {
		struct vss_cow_shadow_params p = { .flags = VSS_COW_SHADOW_PERSISTENT };
		p.id[0] = (unsigned char)(s + 1);
		vss_cow_shadow_create(vol, &p, NULL);
		memset(buf, 0x40 + s, sizeof(buf));
		for (int w = 0; w < 4; w++)     /* queued, applied, DONE */
			vss_cow_write(vol, buf, sizeof(buf), (uint64_t)(w * 5 + s) * 4096);
		vss_cow_quiesce(vol);
	}
	/* A first write under the newest shadow: queued, and the image taken
	 * before the flusher's commit. */
	memset(buf, 0x7b, sizeof(buf));
	atomic_store(&sv.armed, 1);
	if (vss_cow_write(vol, buf, len, off) == (ssize_t)len)
		vss_cow_quiesce(vol);
	vss_cow_close(vol);
	if (!sv.img || atomic_load(&sv.armed))
		fprintf(stderr, "make-fuzz-seeds: no image of the killed diff area\n");
	else if (!replays_write(sv.img, sv.len, buf, len, off))
		fprintf(stderr, "make-fuzz-seeds: the killed diff area does not replay its write\n");
	else
		r = save(dir, n, sv.img, sv.len);
	free(sv.img);
	crashvfs_free(cv);
	return r;
}

/*
 * Bookmarks and revert: seed @n holds their records as a run appends them
 * (BOOKMARK, MARK, BOOKMARK_LOST, BOOKMARK_DROP, REVERT, CLOSE), seed @n+1
 * the same after a checkpoint (BMAP), seeds @n+2.. as power lost inside a
 * revert left them (REVERT begun, not done).
 */
static int make_tracking(const char *dir, int n)
{
	struct crashvfs *cv;
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_cow_volume *vol;
	struct vss_error err;
	unsigned char buf[8192];
	void *img;
	size_t len;

	for (int cut = 0; cut < 4; cut++) {
		if (crashvfs_new(&cv))
			return 1;
		crashvfs_put(cv, "origin", NULL, 256u << 10);
		cfg.block_size = 4096;
		if (vss_cow_open_vfs(crashvfs_vfs(cv), "origin", "diff", &cfg, VSS_COW_CREATE,
				     &vol, &err)) {
			fprintf(stderr, "make-fuzz-seeds: %s\n", err.msg);
			return 1;
		}
		for (int s = 0; s < 4; s++) {
			struct vss_cow_shadow_params p = { .flags = s == 1 ? VSS_COW_SHADOW_PERSISTENT : 0 };
			p.id[0] = (unsigned char)(s + 1);
			vss_cow_shadow_create(vol, &p, NULL);
			vss_cow_bookmark_create(vol, p.id, NULL);
			memset(buf, 0x20 + s, sizeof(buf));
			for (int w = 0; w < 6; w++)
				vss_cow_write(vol, buf, sizeof(buf), (uint64_t)((s * 7 + w * 5) % 60) * 4096);
		}
		for (int d = 4; d >= 3; d--) {     /* uncovered: MARK records */
			vss_cow_id id = { (unsigned char)d };
			vss_cow_shadow_delete(vol, id, NULL);
		}
		memset(buf, 0x5e, sizeof(buf));
		for (int w = 0; w < 8; w++)
			vss_cow_write(vol, buf, 4096, (uint64_t)(w * 3) * 4096);
		vss_cow_id drop = { 1 }, back = { 2 };
		vss_cow_bookmark_delete(vol, drop, NULL);
		if (cut)
			crashvfs_crash_after(cv, (uint64_t)cut * 3, (uint64_t)cut);
		vss_cow_revert(vol, back, NULL);
		vss_cow_close(vol);
		if (!cut) {     /* once more: the checkpoint's BMAP records */
			if (crashvfs_get(cv, "diff", true, &img, &len) || save(dir, n, img, len))
				return 1;
			free(img);
			if (vss_cow_open_vfs(crashvfs_vfs(cv), "origin", "diff", &cfg, 0, &vol, &err))
				return 1;
			vss_cow_write(vol, buf, 4096, 200 * 4096);
			vss_cow_close(vol);
		}
		if (crashvfs_get(cv, "diff", true, &img, &len) || save(dir, n + 1 + cut, img, len))
			return 1;
		free(img);
		crashvfs_free(cv);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make-fuzz-seeds DIR\n");
		return 2;
	}
	return make(argv[1], 0, 4096, 0, 0) || make(argv[1], 1, 4096, 3, 1) ||
	       make(argv[1], 2, 4096, 6, 2) || make(argv[1], 3, 16384, 2, 0) ||
	       make_killed(argv[1], 4) || make_tracking(argv[1], 5);
}
