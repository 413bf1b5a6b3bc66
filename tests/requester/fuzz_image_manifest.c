/*
 * tests/requester/fuzz_image_manifest.c - libFuzzer target: the input is an
 * image backup's manifest (doc/backup-format.md, "Image backups"), which
 * anyone with write access to a repository may have crafted: its first
 * line is the volume's size, the rest manifest lines.  Every line the
 * parser accepts, in order, is an extent inside the volume, after the one
 * before it, not empty, and one of bytes (at most 1 MiB, with a checksum
 * of 64 hexadecimal digits) or of zeros: what the restore relies on when
 * it lays a chain and writes to a device.
 *
 * Built with -DVSS_IMAGE_SEEDS it is instead the seed maker that
 * tests/fuzz/run-fuzz.sh runs first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "requester/image_i.h"

#ifndef VSS_IMAGE_SEEDS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *line, *save = NULL;
	uint64_t volume, end = 0, prev_end = 0;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	line = strtok_r(text, "\n", &save);
	volume = line ? strtoull(line, NULL, 10) : 0;
	while ((line = strtok_r(NULL, "\n", &save))) {
		struct image_line x;

		if (image_line_parse(line, volume, &end, &x) < 0) {
			if (end != prev_end)
				abort();        /* a refused line moved nothing */
			break;
		}
		if (x.len == 0 || x.off < prev_end || x.len > volume || x.off > volume - x.len ||
		    end != x.off + x.len)
			abort();
		if (!x.zero && (x.len > (1u << 20) || strlen(x.sha) != 64 ||
				strspn(x.sha, "0123456789abcdef") != 64))
			abort();
		prev_end = end;
	}
	free(text);
	return 0;
}
#else
#include "write_seeds.h"

int main(int argc, char **argv)
{
	static const char *const seeds[] = {
		("4194304\n"
		 "{\"o\": 0, \"n\": 1048576, \"sha256\": "
		 "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"}\n"
		 "{\"o\": 1048576, \"n\": 2097152, \"zero\": true}\n"
		 "{\"o\": 3145728, \"n\": 4096, \"sha256\": "
		 "\"47a1bbcd57a6828a80cc1c5f0c6d201f1e3b93e3960bef4e40cab94aaccbdaba\"}\n"),
		("18446744073709551615\n{\"o\": 18446744073709547520, \"n\": 4096, "
		 "\"zero\": true}\n"),
		("8192\n{\"o\": 4096, \"n\": 4096, \"zero\": true}\n{\"o\": 0, \"n\": 4096, "
		 "\"zero\": true}\n"),
	};

	return write_seeds(argc, argv, seeds, sizeof(seeds) / sizeof(seeds[0]));
}
#endif
