/*
 * tests/service/test_size.c - sizes as the command line reads them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <vss/client.h>

static void good(void **state)
{
	static const struct { const char *s; uint64_t v; } cases[] = {
		{ "0", 0 }, { "4096", 4096 }, { "4K", 4096 }, { "4k", 4096 },
		{ "16M", 16u << 20 }, { "2G", 2ull << 30 }, { "1T", 1ull << 40 },
		{ "3KiB", 3072 }, { "5MB", 5u << 20 },
		{ "18446744073709551615", UINT64_MAX }, { "16777215T", 16777215ull << 40 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 1;

		assert_int_equal(vss_parse_size(cases[i].s, &v), 0);
		assert_true(v == cases[i].v);
	}
}

static void bad(void **state)
{
	static const char *cases[] = { "", "K", "-1", "1.5G", "12Q", "1 G", "1GG", "abc",
				       "10%", "0x10", NULL };
	uint64_t v;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(vss_parse_size(cases[i], &v), -EINVAL);
	assert_int_equal(vss_parse_size("18446744073709551616", &v), -ERANGE);
	assert_int_equal(vss_parse_size("16777216T", &v), -ERANGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good),
		cmocka_unit_test(bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
