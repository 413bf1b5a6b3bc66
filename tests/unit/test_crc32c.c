/*
 * tests/unit/test_crc32c.c - CRC-32C against its published check value and
 * against a bit-at-a-time reference, hardware and software paths alike.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "util/crc32c.h"

static uint32_t crc_bitwise(const unsigned char *p, size_t n)
{
	uint32_t c = ~0u;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
	}
	return ~c;
}

static void check_value(void **state)
{
	assert_int_equal(vss_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(vss_crc32c(0, "", 0), 0);
}

static void matches_reference_and_continues(void **state)
{
	unsigned char buf[1000];
	srand(7);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)rand();
	for (size_t n = 0; n < sizeof(buf); n += 37) {
		uint32_t whole = vss_crc32c(0, buf, n);
		assert_int_equal(whole, crc_bitwise(buf, n));
		size_t cut = n / 3;
		assert_int_equal(vss_crc32c(vss_crc32c(0, buf, cut), buf + cut, n - cut), whole);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(check_value),
		cmocka_unit_test(matches_reference_and_continues),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
