/*
 * client/size.c - sizes as people type them (see vss_parse_size()).
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <strings.h>

#include <vss/client.h>

int vss_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		uint64_t d = (uint64_t)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (*p) {
		switch (toupper((unsigned char)*p)) {
		case 'K': mult = 1ull << 10; break;
		case 'M': mult = 1ull << 20; break;
		case 'G': mult = 1ull << 30; break;
		case 'T': mult = 1ull << 40; break;
		default: return -EINVAL;
		}
		p++;
		if (strcasecmp(p, "iB") != 0 && strcasecmp(p, "B") != 0 && *p)
			return -EINVAL;
	}
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}
