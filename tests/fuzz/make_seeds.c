/*
 * tests/fuzz/make_seeds.c - writes a few real diff areas (persistent shadows,
 * deletions, several block sizes) into DIR, as the fuzzer's seed corpus.
 * Usage: make-fuzz-seeds DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cow_i.h"
#include "crashvfs.h"

static int make(const char *dir, int n, uint32_t bs, int shadows, int deletes)
{
	struct crashvfs *cv;
	struct vss_cow_config cfg = VSS_COW_CONFIG_INIT;
	struct vss_cow_volume *vol;
	struct vss_error err;
	unsigned char buf[8192];
	char path[512];
	void *img;
	size_t len;
	FILE *f;

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
	if (crashvfs_get(cv, "diff", true, &img, &len))
		return 1;
	snprintf(path, sizeof(path), "%s/seed-%d", dir, n);
	f = fopen(path, "wb");
	if (!f || fwrite(img, 1, len, f) != len || fclose(f))
		return 1;
	free(img);
	crashvfs_free(cv);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make-fuzz-seeds DIR\n");
		return 2;
	}
	return make(argv[1], 0, 4096, 0, 0) || make(argv[1], 1, 4096, 3, 1) ||
	       make(argv[1], 2, 4096, 6, 2) || make(argv[1], 3, 16384, 2, 0);
}
