/*
 * tests/service/test_peer_msg.c - what hosts say to each other in a set
 * across hosts, and the peers file (service/peer_msg.h), against hostile
 * input: names that could be read as paths, targets of another host,
 * steps out of the list, replies that report another set, IDs that are
 * paths, members of other targets, strings with control characters or
 * NULs, sizes over their limits.
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

#include "service/peer_msg.h"

static void names(void **state)
{
	static const char *const good[] = { "b", "db-2", "host.example.org", "h_1", "9x" };
	static const char *const bad[] = { "", "-b", ".b", "_b", "/b", "a/b", "a:b", "a b",
					   "a\nb", "ä" };
	char long_name[SVC_PEER_NAME_MAX + 2];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(svc_peer_name_ok(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(svc_peer_name_ok(bad[i], strlen(bad[i])));
	memset(long_name, 'a', sizeof(long_name));
	assert_true(svc_peer_name_ok(long_name, SVC_PEER_NAME_MAX));
	assert_false(svc_peer_name_ok(long_name, SVC_PEER_NAME_MAX + 1));
}

static void targets_of_other_hosts(void **state)
{
	static const struct { const char *t, *host, *rest; } cases[] = {
		{ "b:data", "b", "data" },
		{ "db2:/srv/pg", "db2", "/srv/pg" },
		{ "b:/a:b", "b", "/a:b" },
		/* Never another host's: a path, a volume name, nothing after ':'. */
		{ "/srv/b:x", NULL, NULL },
		{ "./b:x", NULL, NULL },
		{ "dir/b:x", NULL, NULL },
		{ "data", NULL, NULL },
		{ "b:", NULL, NULL },
		{ ":x", NULL, NULL },
		{ "-b:x", NULL, NULL },
		{ "b c:x", NULL, NULL },
	};
	char host[SVC_PEER_NAME_MAX + 1];
	const char *rest;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool remote = svc_peer_target_split(cases[i].t, host, &rest);

		assert_int_equal(remote, cases[i].host != NULL);
		if (!remote)
			continue;
		assert_string_equal(host, cases[i].host);
		assert_string_equal(rest, cases[i].rest);
	}
}

static int conf(const char *text, struct svc_peer_conf *c, struct vss_error *err)
{
	return svc_peer_conf_parse(text, strlen(text), c, err);
}

static void peers_file(void **state)
{
	struct svc_peer_conf c;
	struct vss_error err;
	char *big;

	assert_int_equal(conf("# the other hosts\n\nhostb /run/vss/peers/b.sock\n"
			      "\thostc\t/run/c.sock   # a comment\r\n  \n", &c, &err), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.peer[0].name, "hostb");
	assert_string_equal(c.peer[0].socket, "/run/vss/peers/b.sock");
	assert_string_equal(svc_peer_conf_find(&c, "hostc")->socket, "/run/c.sock");
	assert_null(svc_peer_conf_find(&c, "hostd"));
	assert_int_equal(conf("", &c, &err), 0);
	assert_int_equal(c.n, 0);

	assert_int_equal(conf("hostb\n", &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "line 1"));
	assert_int_equal(conf("\nhostb run/b.sock\n", &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "line 2: the socket must be an absolute path"));
	assert_int_equal(conf("hostb /a b\n", &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "more than"));
	assert_int_equal(conf("-b /a\n", &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "is not a host name"));
	assert_int_equal(conf("b /a\nb /c\n", &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "named twice"));
	assert_int_equal(conf("b /a\x1b[2J\n", &c, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "control character"));
	assert_int_equal(svc_peer_conf_parse("b /a\0\n", 6, &c, &err), -EINVAL);
	/* A socket path that would not fit a sockaddr_un. */
	big = calloc(1, SVC_PEER_FILE_MAX + 2);
	assert_non_null(big);
	memset(big, 'x', SVC_PEER_SOCKET_MAX + 3);
	memcpy(big, "b /", 3);
	assert_int_equal(conf(big, &c, &err), -EINVAL);
	big[SVC_PEER_SOCKET_MAX + 2] = '\0';
	assert_int_equal(conf(big, &c, &err), 0);
	assert_int_equal(strlen(c.peer[0].socket), SVC_PEER_SOCKET_MAX);
	/* At most SVC_PEERS_MAX hosts, and the file at most SVC_PEER_FILE_MAX. */
	big[0] = '\0';
	for (int i = 0; i <= SVC_PEERS_MAX; i++)
		sprintf(big + strlen(big), "h%d /s%d\n", i, i);
	assert_int_equal(conf(big, &c, &err), -E2BIG);
	memset(big, '#', SVC_PEER_FILE_MAX + 1);
	big[SVC_PEER_FILE_MAX + 1] = '\0';
	assert_int_equal(conf(big, &c, &err), -EFBIG);
	free(big);
}

#define SET "0b8f0d5e-8c2e-4a51-9d0e-1f2a3b4c5d6e"

static json_t *args(const char *extra)
{
	char text[1024];
	json_error_t jerr;
	json_t *a;

	snprintf(text, sizeof(text), "{\"set\": \"" SET "\", \"coordinator\": \"hosta\","
		 " \"targets\": [\"data\", \"/srv/pg\"]%s}", extra);
	a = json_loads(text, JSON_ALLOW_NUL, &jerr);
	assert_non_null(a);
	return a;
}

/* @r's strings are borrowed from *@a: free it after. */
static int req(const char *extra, json_t **a, struct svc_peer_set_req *r, struct vss_error *err)
{
	*a = args(extra);
	return svc_peer_set_req_parse(*a, r, err);
}

static void peer_set_arguments(void **state)
{
	static const char *const refused[] = {
		", \"set\": \"../../etc\"",
		", \"set\": \"0B8F0D5E-8C2E-4A51-9D0E-1F2A3B4C5D6E\"",
		", \"set\": 7",
		", \"coordinator\": \"/etc\"",
		", \"coordinator\": \"\"",
		", \"targets\": []",
		", \"targets\": \"data\"",
		", \"targets\": [\"\"]",
		", \"targets\": [\"data/x\"]",
		", \"targets\": [\"b:data\"]",
		", \"targets\": [\"/srv\\u0000/x\"]",
		", \"targets\": [\"/srv\\n/x\"]",
		", \"targets\": [3]",
		", \"persistent\": \"yes\"",
		", \"wait_ms\": 0",
		", \"wait_ms\": 600001",
		", \"wait_ms\": \"1\"",
		", \"rbd_fsid\": \"cluster\"",
		", \"rbd_fsid\": 1",
	};
	struct svc_peer_set_req r;
	struct vss_error err;
	json_t *many, *a;
	char text[64];

	assert_int_equal(req(", \"persistent\": true, \"wait_ms\": 1500, \"later\": 1", &a, &r,
			     &err), 0);
	assert_string_equal(r.set, SET);
	assert_string_equal(r.coordinator, "hosta");
	assert_int_equal(r.n, 2);
	assert_string_equal(r.targets[0], "data");
	assert_string_equal(r.targets[1], "/srv/pg");
	assert_true(r.persistent && !r.no_writers);
	assert_int_equal(r.wait_ms, 1500);
	json_decref(a);
	assert_int_equal(req("", &a, &r, &err), 0);
	assert_int_equal(r.wait_ms, 60000);
	assert_string_equal(r.rbd_fsid, "");
	json_decref(a);
	assert_int_equal(req(", \"rbd_fsid\": \"" SET "\"", &a, &r, &err), 0);
	assert_string_equal(r.rbd_fsid, SET);
	json_decref(a);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		/* The later member wins (jansson keeps the last of a name). */
		assert_int_equal(req(refused[i], &a, &r, &err), -EINVAL);
		json_decref(a);
	}
	assert_int_equal(svc_peer_set_req_parse(json_null(), &r, &err), -EINVAL);
	many = args("");
	for (int i = 2; i <= SVC_PEER_TARGETS_MAX; i++) {
		snprintf(text, sizeof(text), "v%d", i);
		json_array_append_new(json_object_get(many, "targets"), json_string(text));
	}
	assert_int_equal(svc_peer_set_req_parse(many, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "1 to 64 targets"));
	json_decref(many);
}

static json_t *parse(const char *text)
{
	json_t *m = json_loads(text, 0, NULL);

	assert_non_null(m);
	return m;
}

static void steps_and_replies(void **state)
{
	enum svc_peer_step step = SVC_PEER_ABORT;
	struct vss_error err;
	json_t *m, *result;

	for (int s = SVC_PEER_PREPARED; s <= SVC_PEER_ABORT; s++) {
		m = svc_peer_step_msg((enum svc_peer_step)s);
		assert_int_equal(svc_peer_msg_parse(m, &step, &result, &err), 1);
		assert_int_equal(step, s);
		json_decref(m);
	}
	m = parse("{\"version\": 1, \"step\": \"detonate\"}");
	assert_int_equal(svc_peer_msg_parse(m, &step, &result, &err), -EPROTO);
	json_decref(m);
	m = parse("{\"version\": 2, \"step\": \"frozen\"}");
	assert_int_equal(svc_peer_msg_parse(m, &step, &result, &err), -EPROTO);
	json_decref(m);
	m = parse("{\"step\": \"frozen\"}");
	assert_int_equal(svc_peer_msg_parse(m, &step, &result, &err), -EPROTO);
	json_decref(m);
	m = parse("{\"version\": 1, \"step\": 3}");
	assert_int_equal(svc_peer_msg_parse(m, &step, &result, &err), -EPROTO);
	json_decref(m);
	m = parse("{\"version\": 1, \"id\": 1, \"ok\": true, \"result\": {\"set\": \"x\"}}");
	assert_int_equal(svc_peer_msg_parse(m, &step, &result, &err), 0);
	assert_string_equal(json_string_value(json_object_get(result, "set")), "x");
	json_decref(m);
	m = parse("{\"version\": 1, \"id\": 1, \"ok\": true}");
	assert_int_equal(svc_peer_msg_parse(m, &step, &result, &err), -EPROTO);
	json_decref(m);
	m = parse("{\"version\": 1, \"id\": 1, \"ok\": false}");
	assert_int_equal(svc_peer_msg_parse(m, &step, &result, &err), -EPROTO);
	json_decref(m);
	m = parse("{\"version\": 1, \"id\": 1}");
	assert_int_equal(svc_peer_msg_parse(m, &step, &result, &err), -EPROTO);
	json_decref(m);
	/* A failure: its errno, its message made one line. */
	m = parse("{\"version\": 1, \"id\": 1, \"ok\": false, \"error\": {\"code\": \"EBUSY\","
		  " \"errno\": 16, \"message\": \"busy\\n\\u001b[31mforged\"}}");
	assert_int_equal(svc_peer_msg_parse(m, &step, &result, &err), -EBUSY);
	assert_null(strchr(err.msg, '\n'));
	assert_null(strchr(err.msg, '\x1b'));
	json_decref(m);
}

static json_t *last;     /* what result() parsed: @out's strings are borrowed from it */

static int result(const char *shadows, const char *const *targets, size_t n,
		  struct svc_peer_member *out, struct vss_error *err)
{
	char text[4096];

	snprintf(text, sizeof(text), "{\"set\": \"" SET "\", \"shadows\": [%s]}", shadows);
	json_decref(last);
	last = parse(text);
	return svc_peer_result_parse(last, SET, targets, n, out, err);
}

#define M(id, target) "{\"id\": \"" id "\", \"target\": \"" target "\", \"volume\": \"data\"," \
		      " \"device\": \"/run/vss/dev/shadows/x\", \"provider\": \"vss-cow\"}"
#define ID1 "11111111-2222-4333-8444-555555555555"
#define ID2 "11111111-2222-4333-8444-666666666666"

static void results(void **state)
{
	static const char *const two[] = { "data", "/srv/pg" };
	struct svc_peer_member m[2];
	struct vss_error err;
	json_t *r;

	assert_int_equal(result(M(ID1, "data") "," M(ID2, "/srv/pg"), two, 2, m, &err), 0);
	assert_string_equal(m[0].id, ID1);
	assert_string_equal(m[1].target, "/srv/pg");
	assert_string_equal(m[1].provider, "vss-cow");
	/* Another set, too few or too many, an ID that is a path, one ID twice,
	 * another target (or the right ones in another order), a member
	 * without its volume, a string with a control character. */
	r = parse("{\"set\": \"" ID1 "\", \"shadows\": []}");
	assert_int_equal(svc_peer_result_parse(r, SET, two, 0, m, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "another set"));
	json_decref(r);
	assert_int_equal(result(M(ID1, "data"), two, 2, m, &err), -EPROTO);
	assert_int_equal(result(M(ID1, "data") "," M(ID2, "/srv/pg") "," M(ID2, "x"), two, 2, m,
				&err), -EPROTO);
	assert_int_equal(result(M("../../etc/passwd", "data") "," M(ID2, "/srv/pg"), two, 2, m,
				&err), -EPROTO);
	assert_int_equal(result(M(ID1, "data") "," M(ID1, "/srv/pg"), two, 2, m, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "twice"));
	assert_int_equal(result(M(ID1, "data") "," M(ID2, "/etc"), two, 2, m, &err), -EPROTO);
	assert_int_equal(result(M(ID1, "/srv/pg") "," M(ID2, "data"), two, 2, m, &err), -EPROTO);
	assert_int_equal(result("{\"id\": \"" ID1 "\", \"target\": \"data\"}", two, 1, m, &err),
			 -EPROTO);
	assert_int_equal(result("{\"id\": \"" ID1 "\", \"target\": \"data\", \"volume\": "
				"\"a\\u001bb\", \"device\": \"d\", \"provider\": \"p\"}", two, 1,
				m, &err), -EPROTO);
	assert_int_equal(result("7", two, 1, m, &err), -EPROTO);
	json_decref(last);
	last = NULL;
}

/* The RBD images of a "prepared" and of a "thaw". */
static void rbd_images(void **state)
{
	static const char *const refused[] = {
		"\"rbd\": {}",
		"\"rbd\": [1]",
		"\"rbd\": [{\"pool\": \"rbd\"}]",
		"\"rbd\": [{\"pool\": \"../x\", \"image\": \"db\", \"image_id\": \"1a\"}]",
		"\"rbd\": [{\"pool\": \"rbd\", \"image\": \"-db\", \"image_id\": \"1a\"}]",
		"\"rbd\": [{\"pool\": \"rbd\", \"image\": \"db\", \"image_id\": \"1A\"}]",
		"\"rbd\": [{\"pool\": \"rbd\", \"image\": \"db\"}]",
		"\"rbd\": [{\"pool\": \"rbd\", \"image\": \"db\", \"image_id\": \"1a\"}, "
		"{\"pool\": \"rbd\", \"image\": \"db\", \"image_id\": \"2b\"}]",
		"\"rbd\": [{\"pool\": \"a\", \"image\": \"b\", \"image_id\": \"1\"}, "
		"{\"pool\": \"a\", \"image\": \"c\", \"image_id\": \"2\"}, "
		"{\"pool\": \"a\", \"image\": \"d\", \"image_id\": \"3\"}]",
	};
	struct svc_peer_rbd r[2];
	struct vss_error err;
	char text[512];
	size_t n = 9;
	json_t *m;

	(void)state;
	m = parse("{\"version\": 1, \"step\": \"prepared\"}");
	assert_int_equal(svc_peer_rbd_parse(m, false, r, 2, &n, &err), 0);
	assert_int_equal(n, 0);
	json_decref(m);
	m = parse("{\"rbd\": [{\"pool\": \"rbd\", \"image\": \"db.1\", \"image_id\": "
		  "\"10a26b8b4567\"}]}");
	assert_int_equal(svc_peer_rbd_parse(m, false, r, 2, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(r[0].pool, "rbd");
	assert_string_equal(r[0].image, "db.1");
	assert_string_equal(r[0].image_id, "10a26b8b4567");
	/* A "thaw" needs a snapshot ID. */
	assert_int_equal(svc_peer_rbd_parse(m, true, r, 2, &n, &err), -EPROTO);
	json_decref(m);
	m = parse("{\"rbd\": [{\"pool\": \"rbd\", \"image\": \"db\", \"snap_id\": 7}]}");
	assert_int_equal(svc_peer_rbd_parse(m, true, r, 2, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].snap_id, 7);
	json_decref(m);
	m = parse("{\"rbd\": [{\"pool\": \"rbd\", \"image\": \"db\", \"snap_id\": 0}]}");
	assert_int_equal(svc_peer_rbd_parse(m, true, r, 2, &n, &err), -EPROTO);
	json_decref(m);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(text, sizeof(text), "{%s}", refused[i]);
		m = parse(text);
		assert_int_equal(svc_peer_rbd_parse(m, false, r, 2, &n, &err), -EPROTO);
		json_decref(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names),
		cmocka_unit_test(targets_of_other_hosts),
		cmocka_unit_test(peers_file),
		cmocka_unit_test(peer_set_arguments),
		cmocka_unit_test(steps_and_replies),
		cmocka_unit_test(results),
		cmocka_unit_test(rbd_images),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
