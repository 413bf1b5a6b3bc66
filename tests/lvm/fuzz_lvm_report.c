/*
 * tests/lvm/fuzz_lvm_report.c - libFuzzer target for the LVM report parser
 * and the thin_delta parser (provider/lvm/lvm.h): whatever lvm or
 * thin_delta prints, vssd must neither crash nor keep a name it would not
 * pass to lvm, nor an extent out of order.  Built a second time with
 * -DVSS_LVM_SEEDS as a program that writes real reports into a corpus.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seeds.h"

#ifndef VSS_LVM_SEEDS
#include "provider/lvm/lvm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vss_error err = { 0 };
	struct vss_lvm_lv *lv;
	size_t n;

	if (vss_lvm_report_parse((const char *)data, size, &lv, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++)
			if (!vss_lvm_name_ok(lv[i].vg) || !vss_lvm_name_ok(lv[i].name) ||
			    (lv[i].origin[0] && !vss_lvm_name_ok(lv[i].origin)) ||
			    (!lv[i].ours && lv[i].persistent))
				abort();
		free(lv);
	}
	/* The same bytes as thin_delta's output: extents sorted, merged, in chunks. */
	{
		struct vss_lvm_extent *e;
		uint64_t chunk;

		if (vss_lvm_thin_delta_parse((const char *)data, size, &e, &n, &chunk, &err) == 0) {
			for (size_t i = 0; i < n; i++)
				if (e[i].length == 0 || e[i].offset % chunk || e[i].length % chunk ||
				    (i && e[i].offset <= e[i - 1].offset + e[i - 1].length))
					abort();
			free(e);
		}
	}
	return 0;
}
#else
int main(int argc, char **argv)
{
	char path[4096];
	FILE *f;

	if (argc != 2)
		return 2;
	snprintf(path, sizeof(path), "%s/real.json", argv[1]);
	if (!(f = fopen(path, "w")) || fwrite(lvm_seed_real, 1, strlen(lvm_seed_real), f) == 0)
		return 1;
	if (fclose(f) != 0)
		return 1;
	snprintf(path, sizeof(path), "%s/thin_delta.xml", argv[1]);
	if (!(f = fopen(path, "w")) ||
	    fwrite(thin_delta_seed, 1, strlen(thin_delta_seed), f) == 0)
		return 1;
	return fclose(f) == 0 ? 0 : 1;
}
#endif
