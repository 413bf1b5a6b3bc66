/*
 * tests/unit/test_in_place.c - the plan of vss_requester_run_in_place():
 * mount order (a path before the paths inside it), duplicates, trailing
 * slashes, and what it refuses ("/", relative paths).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "requester/in_place.h"

static size_t make(struct vss_in_place_bind *b, const char *const *paths)
{
	size_t n = 0;

	for (; paths[n]; n++) {
		b[n].path = strdup(paths[n]);
		b[n].source = malloc(32);
		snprintf(b[n].source, 32, "src%zu", n);
	}
	return n;
}

static void release(struct vss_in_place_bind *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(b[i].path);
		free(b[i].source);
	}
}

static void outer_before_inner(void **state)
{
	static const char *const p[] = { "/srv/a/b/c", "/srv/a/", "/srv", "/srv/a/b",
					  "/home", NULL };
	struct vss_in_place_bind b[8];
	size_t n = make(b, p);

	assert_int_equal(vss_in_place_order(b, &n, NULL), 0);
	assert_int_equal(n, 5);
	/* every path comes after each path it lies inside */
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++) {
			size_t l = strlen(b[j].path);

			assert_false(strncmp(b[i].path, b[j].path, l) == 0 &&
				     b[i].path[l] == '/');
		}
	assert_string_equal(b[0].path, "/srv");
	assert_string_equal(b[1].path, "/home");       /* stable among equals */
	assert_string_equal(b[2].path, "/srv/a");      /* slash dropped */
	assert_string_equal(b[2].source, "src1");
	assert_string_equal(b[4].path, "/srv/a/b/c");
	release(b, n);
}

static void same_path_keeps_the_first(void **state)
{
	static const char *const p[] = { "/x/y", "/x", "/x/y/", "/x", NULL };
	struct vss_in_place_bind b[8];
	size_t n = make(b, p);

	assert_int_equal(vss_in_place_order(b, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_string_equal(b[0].path, "/x");
	assert_string_equal(b[0].source, "src1");
	assert_string_equal(b[1].path, "/x/y");
	assert_string_equal(b[1].source, "src0");
	release(b, n);
}

static void refuses_root_and_relative(void **state)
{
	static const char *const root[] = { "/srv", "//", NULL };
	static const char *const rel[] = { "/srv", "srv/data", NULL };
	struct vss_in_place_bind b[8];
	struct vss_error err = { 0 };
	size_t n = make(b, root);

	assert_int_equal(vss_in_place_order(b, &n, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "shadow of /"));
	release(b, n);
	n = make(b, rel);
	assert_int_equal(vss_in_place_order(b, &n, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "srv/data is not an absolute path"));
	release(b, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(outer_before_inner),
		cmocka_unit_test(same_path_keeps_the_first),
		cmocka_unit_test(refuses_root_and_relative),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
