/*
 * tests/service/test_catalog.c - the catalog keeps what it was told, across
 * closing and reopening, and refuses a schema from the future.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <vss/cow.h>

#include "service/catalog.h"

static char dir[] = "/tmp/vss-catalog-XXXXXX";
static char path[64];

static int setup(void **state)
{
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/catalog.db", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static int count_volumes(void *arg, const struct vss_catalog_volume *v)
{
	int *n = arg;

	if (strcmp(v->name, "data") == 0) {
		assert_true(v->size == 1u << 30);
		assert_true(v->max_diff == VSS_COW_UNBOUNDED);
		assert_string_equal(v->backing, "/srv/data.img");
	} else {
		assert_string_equal(v->name, "logs");
		assert_true(v->max_diff == 123456);
		assert_true(v->storage_explicit);
	}
	(*n)++;
	return 0;
}

static int collect_shadow(void *arg, const struct vss_catalog_shadow *s)
{
	char *ids = arg;

	strcat(ids, s->id);
	strcat(ids, s->attrs & VSS_CATALOG_ATTR_PERSISTENT ? "+" : "-");
	return 0;
}

static void persists(void **state)
{
	struct vss_catalog *c;
	struct vss_error err;
	struct vss_catalog_volume v = { "data", 1u << 30, 16384, "/srv/data.img", false,
					"/srv/data.diff", false, VSS_COW_UNBOUNDED, 1 };
	struct vss_catalog_shadow s = { "a", "set1", "data", "data", 10,
					VSS_CATALOG_ATTR_PERSISTENT };
	char ids[64] = "";
	int n = 0;

	assert_int_equal(vss_catalog_open(path, &c, &err), 0);
	assert_int_equal(vss_catalog_volume_put(c, &v, &err), 0);
	snprintf(v.name, sizeof(v.name), "logs");
	v.max_diff = 123456;
	v.storage_explicit = true;
	assert_int_equal(vss_catalog_volume_put(c, &v, &err), 0);
	assert_int_equal(vss_catalog_shadow_put(c, &s, &err), 0);
	snprintf(s.id, sizeof(s.id), "b");
	s.attrs = 0;
	s.created_ns = 20;
	assert_int_equal(vss_catalog_shadow_put(c, &s, &err), 0);
	snprintf(s.id, sizeof(s.id), "c");
	snprintf(s.volume, sizeof(s.volume), "logs");
	s.created_ns = 30;
	assert_int_equal(vss_catalog_shadow_put(c, &s, &err), 0);
	vss_catalog_close(c);

	assert_int_equal(vss_catalog_open(path, &c, &err), 0);
	assert_int_equal(vss_catalog_volume_each(c, count_volumes, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(vss_catalog_shadow_each(c, collect_shadow, ids, &err), 0);
	assert_string_equal(ids, "a+b-c-");
	/* Deleting a volume deletes its shadows' rows. */
	assert_int_equal(vss_catalog_volume_delete(c, "data", &err), 0);
	ids[0] = '\0';
	assert_int_equal(vss_catalog_shadow_each(c, collect_shadow, ids, &err), 0);
	assert_string_equal(ids, "c-");
	assert_int_equal(vss_catalog_shadow_delete(c, "c", &err), 0);
	vss_catalog_close(c);
}

static void refuses_future_schema(void **state)
{
	struct vss_catalog *c;
	struct vss_error err;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(vss_catalog_open(path, &c, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "schema version 99"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(persists),
		cmocka_unit_test(refuses_future_schema),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
