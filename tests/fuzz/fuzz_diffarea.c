/*
 * tests/fuzz/fuzz_diffarea.c - libFuzzer target for everything that parses a
 * diff area: superblocks, the segment chain, records and their meaning.  The
 * input is the diff-area file; the origin is 256 KiB of zeros.  An open that
 * succeeds is exercised (every shadow read, every bookmark's changed extents,
 * a write, a revert to the oldest shadow, close); nothing may
 * crash, hang, leak or read out of bounds.  Built with checksums accepted
 * (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION) so mutations get past them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cow_i.h"
#include "crashvfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crashvfs *cv;
	struct vss_cow_volume *vol;
	struct vss_error err;
	static unsigned char buf[65536];

	if (size > (8u << 20) || crashvfs_new(&cv))
		return 0;
	crashvfs_put(cv, "origin", NULL, 256u << 10);
	crashvfs_put(cv, "diff", data, size);
	if (vss_cow_open_vfs(crashvfs_vfs(cv), "origin", "diff", NULL, 0, &vol, &err) == 0) {
		struct vss_cow_shadow_info *info;
		size_t n;
		if (vss_cow_shadow_list(vol, &info, &n) == 0) {
			for (size_t i = 0; i < n; i++) {
				struct vss_cow_shadow *sh;
				if (vss_cow_shadow_open(vol, info[i].id, &sh))
					continue;
				for (uint64_t off = 0; off < (256u << 10); off += sizeof(buf))
					vss_cow_shadow_read(sh, buf, sizeof(buf), off);
				vss_cow_shadow_close(sh);
			}
			if (n > 1) {
				struct vss_cow_extent *e;
				size_t ne;
				if (vss_cow_changed_extents(vol, info[0].id, NULL, &e, &ne, NULL) == 0)
					free(e);
			}
			free(info);
		}
		struct vss_cow_bookmark_info *bm;
		if (vss_cow_bookmark_list(vol, &bm, &n) == 0) {
			for (size_t i = 0; i < n; i++) {
				struct vss_cow_extent *e;
				size_t ne;
				if (vss_cow_changed_extents(vol, bm[i].id, NULL, &e, &ne, NULL) == 0)
					free(e);
			}
			free(bm);
		}
		memset(buf, 0x5a, 4096);
		vss_cow_write(vol, buf, 4096, 8192);
		if (vss_cow_shadow_list(vol, &info, &n) == 0) {
			if (n)
				vss_cow_revert(vol, info[0].id, NULL);
			free(info);
		}
		vss_cow_close(vol);
	}
	crashvfs_free(cv);
	return 0;
}
