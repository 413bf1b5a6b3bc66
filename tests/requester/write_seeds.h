/*
 * tests/requester/write_seeds.h - what the seed makers of the fuzz targets
 * here share: each seed written as DIR/seed-N (tests/fuzz/run-fuzz.sh
 * runs the maker, then the fuzzer on DIR).
 */
#ifndef VSS_TESTS_WRITE_SEEDS_H
#define VSS_TESTS_WRITE_SEEDS_H

#include <stdio.h>

/* main(): argv[1] is the directory; 0, 1 if a seed cannot be written, 2 on
 * a usage error. */
static inline int write_seeds(int argc, char **argv, const char *const *seeds, size_t n)
{
	if (argc != 2)
		return 2;
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		FILE *f;

		snprintf(path, sizeof(path), "%s/seed-%zu", argv[1], i);
		if (!(f = fopen(path, "w")))
			return 1;
		fputs(seeds[i], f);
		fclose(f);
	}
	return 0;
}

#endif
