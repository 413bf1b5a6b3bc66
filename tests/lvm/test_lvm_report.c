/*
 * tests/lvm/test_lvm_report.c - the LVM report parser (provider/lvm/lvm.h)
 * on a real report and on crafted, hostile ones: names vss must never pass
 * to lvm are left out, what is not the report's shape is refused, tags say
 * what is vss's, and nothing is read past what was given; and the parser
 * of thin_delta's output the same way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "provider/lvm/lvm.h"
#include "seeds.h"

static int parse(const char *s, struct vss_lvm_lv **out, size_t *n)
{
	struct vss_error err = { 0 };

	return vss_lvm_report_parse(s, strlen(s), out, n, &err);
}

static void real_report(void **state)
{
	struct vss_lvm_lv *lv;
	size_t n;

	assert_int_equal(parse(lvm_seed_real, &lv, &n), 0);
	/* "[pool_tdata]" is a hidden part: its name is not one vss passes on. */
	assert_int_equal(n, 4);
	assert_string_equal(lv[0].name, "pool");
	assert_string_equal(lv[0].segtype, "thin-pool");
	assert_false(lv[0].ours);
	assert_true(lv[1].ours);
	assert_true(lv[1].persistent);
	assert_true(lv[1].thin);
	assert_string_equal(lv[1].origin, "thin1");
	assert_int_equal(lv[1].major, 254);
	assert_int_equal(lv[1].minor, 9);
	assert_int_equal(lv[1].size, 104857600);
	assert_int_equal(lv[1].shadow_id[0], 0x0e);
	assert_int_equal(lv[1].set_id[0], 0x3b);
	assert_int_equal(lv[1].vg_free, 281018368);
	/* An overflowed classic snapshot not vss's. */
	assert_true(lv[2].snap_invalid);
	assert_false(lv[2].ours);
	assert_true(lv[2].snap_percent > 99.9);
	assert_false(lv[3].ours);
	assert_true(lv[3].snap_percent > 11.0 && lv[3].snap_percent < 11.1);
	free(lv);
}

#define ROW(name, vg, tags) \
	"{\"report\":[{\"lv\":[{\"lv_name\":\"" name "\",\"vg_name\":\"" vg "\"," \
	"\"lv_uuid\":\"u\",\"lv_attr\":\"-wi-a-----\",\"lv_tags\":\"" tags "\"," \
	"\"origin\":\"\",\"pool_lv\":\"\",\"segtype\":\"linear\",\"lv_size\":\"4096\"}]}]}"

static void hostile_names_left_out(void **state)
{
	static const char *const bad[] = {
		ROW("-rf", "vg", ""), ROW("a/b", "vg", ""), ROW("..", "vg", ""),
		ROW("a b", "vg", ""), ROW("lv", "vg;rm", ""), ROW("", "vg", ""),
		ROW("lv", "$(x)", ""), ROW("l\\nv", "vg", ""),
	};
	struct vss_lvm_lv *lv;
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &lv, &n), 0);
		assert_int_equal(n, 0);
		free(lv);
	}
	assert_int_equal(parse(ROW("lv_1.+-", "vg-0", ""), &lv, &n), 0);
	assert_int_equal(n, 1);
	free(lv);
}

static void long_name_left_out(void **state)
{
	char name[200], buf[1024];
	struct vss_lvm_lv *lv;
	size_t n;

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(buf, sizeof(buf), ROW("%s", "vg", ""), name);
	assert_int_equal(parse(buf, &lv, &n), 0);
	assert_int_equal(n, 0);
	free(lv);
}

static void ours_needs_tag_and_name(void **state)
{
	struct vss_lvm_lv *lv;
	size_t n;

	/* Named like ours but not tagged: not ours. */
	assert_int_equal(parse(ROW("vss-0e1100ed-b190-441a-9407-e0c55c676dfa", "vg", "x"), &lv,
			       &n), 0);
	assert_int_equal(n, 1);
	assert_false(lv[0].ours);
	free(lv);
	/* Tagged but not named so: not ours, and never persistent. */
	assert_int_equal(parse(ROW("data", "vg", "vss,vss.persistent"), &lv, &n), 0);
	assert_false(lv[0].ours);
	assert_false(lv[0].persistent);
	free(lv);
	/* A tag that only starts like ours. */
	assert_int_equal(parse(ROW("vss-0e1100ed-b190-441a-9407-e0c55c676dfa", "vg", "vssx"),
			       &lv, &n), 0);
	assert_false(lv[0].ours);
	free(lv);
	assert_int_equal(parse(ROW("vss-0e1100ed-b190-441a-9407-e0c55c676dfa", "vg",
				   "a,vss,b"), &lv, &n), 0);
	assert_true(lv[0].ours);
	free(lv);
	/* Not a UUID after the prefix. */
	assert_int_equal(parse(ROW("vss-0e1100ed-b190-441a-9407-e0c55c676dfz", "vg", "vss"),
			       &lv, &n), 0);
	assert_false(lv[0].ours);
	free(lv);
}

static void wrong_shapes_refused(void **state)
{
	static const char *const bad[] = {
		"", "{", "[]", "null", "{\"report\":{}}", "{\"report\":[{}]}",
		"{\"report\":[{\"lv\":{}}]}", "{\"report\":[{\"lv\":[1]}]}",
		"{\"report\":[{\"lv\":[{\"lv_name\":\"a\"}]}]}",
		"{\"report\":[{\"lv\":[{\"lv_name\":1,\"vg_name\":\"v\"}]}]}",
		/* sizes that are not numbers, or out of range */
		"{\"report\":[{\"lv\":[{\"lv_name\":\"a\",\"vg_name\":\"v\",\"lv_uuid\":\"u\","
		"\"lv_attr\":\"x\",\"segtype\":\"linear\",\"lv_size\":\"-1\"}]}]}",
		"{\"report\":[{\"lv\":[{\"lv_name\":\"a\",\"vg_name\":\"v\",\"lv_uuid\":\"u\","
		"\"lv_attr\":\"x\",\"segtype\":\"linear\",\"lv_size\":\"12k\"}]}]}",
		"{\"report\":[{\"lv\":[{\"lv_name\":\"a\",\"vg_name\":\"v\",\"lv_uuid\":\"u\","
		"\"lv_attr\":\"x\",\"segtype\":\"linear\",\"lv_size\":\"99999999999999999999\"}]}]}",
		/* a field longer than vss keeps */
		"{\"report\":[{\"lv\":[{\"lv_name\":\"a\",\"vg_name\":\"v\",\"lv_uuid\":\"u\","
		"\"lv_attr\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\"segtype\":\"linear\","
		"\"lv_size\":\"1\"}]}]}",
		/* a NUL inside a name (jansson refuses it: never cut short) */
		ROW("lv\\u0000x", "vg", ""),
		/* the same key twice */
		"{\"report\":[{\"lv\":[{\"lv_name\":\"a\",\"lv_name\":\"b\"}]}]}",
	};
	struct vss_lvm_lv *lv = (void *)1;
	size_t n = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_true(parse(bad[i], &lv, &n) < 0);
		assert_null(lv);
		assert_int_equal(n, 0);
	}
}

static void not_nul_terminated(void **state)
{
	struct vss_error err = { 0 };
	struct vss_lvm_lv *lv;
	size_t n, len = strlen(lvm_seed_real);
	char *copy = malloc(len);

	/* Exactly the bytes given, no terminator: ASan sees any read past them. */
	memcpy(copy, lvm_seed_real, len);
	assert_int_equal(vss_lvm_report_parse(copy, len, &lv, &n, &err), 0);
	assert_int_equal(n, 4);
	free(lv);
	assert_true(vss_lvm_report_parse(copy, len - 3, &lv, &n, &err) < 0);
	free(copy);
}

static void percents_and_missing_fields(void **state)
{
	struct vss_lvm_lv *lv;
	size_t n;

	assert_int_equal(parse("{\"report\":[{\"lv\":[{\"lv_name\":\"a\",\"vg_name\":\"v\","
			       "\"lv_uuid\":\"u\",\"lv_attr\":\"x\",\"segtype\":\"linear\","
			       "\"lv_size\":\"1\",\"snap_percent\":\"250\",\"data_percent\":\"nan\","
			       "\"lv_kernel_major\":\"x\"}]}]}", &lv, &n), 0);
	assert_int_equal(n, 1);
	assert_true(lv[0].snap_percent < 0);
	assert_true(lv[0].data_percent < 0);
	assert_int_equal(lv[0].major, -1);
	assert_false(lv[0].snap_invalid);
	free(lv);
}

static void thin_delta_output(void **state)
{
	/* thin_delta 0.9's output for a 64 KiB-chunk pool (data_block_size in sectors). */
	static const char xml[] =
		"<superblock uuid=\"\" time=\"1\" transaction=\"4\" data_block_size=\"128\" "
		"nr_data_blocks=\"3200\">\n  <diff left=\"1\" right=\"2\">\n"
		"    <different begin=\"14\" length=\"2\"/>\n"
		"    <right_only begin=\"16\" length=\"1\"/>\n"
		"    <left_only begin=\"3\" length=\"1\"/>\n"
		"    <right_only begin=\"40\" length=\"48\"/>\n  </diff>\n</superblock>\n";
	struct vss_error err = { 0 };
	struct vss_lvm_extent *e;
	uint64_t chunk;
	size_t n;

	assert_int_equal(vss_lvm_thin_delta_parse(xml, strlen(xml), &e, &n, &chunk, &err), 0);
	assert_int_equal(chunk, 65536);
	/* Sorted, and 14+2 and 16+1 merged. */
	assert_int_equal(n, 3);
	assert_int_equal(e[0].offset, 3 * 65536);
	assert_int_equal(e[0].length, 65536);
	assert_int_equal(e[1].offset, 14 * 65536);
	assert_int_equal(e[1].length, 3 * 65536);
	assert_int_equal(e[2].offset, 40 * 65536);
	assert_int_equal(e[2].length, 48 * 65536);
	free(e);
}

static void thin_delta_hostile(void **state)
{
	static const char *const bad[] = {
		"", "<diff>", "<superblock data_block_size=\"0\">",
		"<different begin=\"1\" length=\"1\"/>",   /* before any superblock */
		"<superblock data_block_size=\"128\"><different begin=\"1\"/>",
		"<superblock data_block_size=\"128\"><different begin=\"x\" length=\"1\"/>",
		"<superblock data_block_size=\"128\"><different begin=\"1\" length=\"0\"/>",
		"<superblock data_block_size=\"128\"><different begin=\"-1\" length=\"1\"/>",
		"<superblock data_block_size=\"128\"><different begin=\"99999999999999999999\" "
		"length=\"1\"/>",
		"<superblock data_block_size=\"128\"><right_only begin=\"1\" "
		"length=\"18446744073709551615\"/>",
		"<superblock data_block_size=\"128\"><different begin=\"1\" length=\"1\"",
		"<superblock data_block_size=\"4294967296\">",
		/* a second superblock with another unit (found by the fuzz target) */
		"<superblock data_block_size=\"128\"><different begin=\"1\" length=\"1\"/>"
		"<superblock data_block_size=\"205\"><different begin=\"3\" length=\"1\"/>",
	};
	struct vss_error err = { 0 };
	struct vss_lvm_extent *e = (void *)1;
	uint64_t chunk;
	size_t n = 3;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_true(vss_lvm_thin_delta_parse(bad[i], strlen(bad[i]), &e, &n, &chunk,
						     &err) < 0);
		assert_null(e);
		assert_int_equal(n, 0);
	}
	/* A NUL inside: refused, not cut short. */
	static const char nul[] = "<superblock data_block_size=\"8\">\0<x>";

	assert_true(vss_lvm_thin_delta_parse(nul, sizeof(nul) - 1, &e, &n, &chunk, &err) < 0);
}

static void names(void **state)
{
	assert_true(vss_lvm_name_ok("vg0"));
	assert_true(vss_lvm_name_ok("a+b_c.d-e"));
	assert_false(vss_lvm_name_ok("-a"));
	assert_false(vss_lvm_name_ok("."));
	assert_false(vss_lvm_name_ok(".."));
	assert_false(vss_lvm_name_ok("a/b"));
	assert_false(vss_lvm_name_ok(""));
	assert_false(vss_lvm_name_ok("a\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_report),
		cmocka_unit_test(hostile_names_left_out),
		cmocka_unit_test(long_name_left_out),
		cmocka_unit_test(ours_needs_tag_and_name),
		cmocka_unit_test(wrong_shapes_refused),
		cmocka_unit_test(not_nul_terminated),
		cmocka_unit_test(percents_and_missing_fields),
		cmocka_unit_test(thin_delta_output),
		cmocka_unit_test(thin_delta_hostile),
		cmocka_unit_test(names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
