/*
 * tests/service/test_client.c - the client library (vss/client.h) against
 * a fake vssd on a Unix socket in a private directory: a refusal vssd sent
 * before it read anything is what the caller gets (not EPIPE), a reply
 * in many frames, larger than one frame, is reassembled, and a call with
 * JSON as text goes and comes back as the protocol's object.  And the
 * requester over it (vss/requester.h): what it says of writers' states.
 */
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include <vss/requester.h>

#include "client/client_json.h"
#include "proto/proto.h"

struct fake {
	char dir[32];
	char path[64];
	int listen_fd;
	pthread_t thread;
	bool joined;
	void (*serve)(int fd);
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->listen_fd, NULL, NULL);

	if (fd >= 0) {
		f->serve(fd);
		close(fd);
	}
	return NULL;
}

static void fake_start(struct fake *f, void (*serve)(int fd))
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(f->dir, sizeof(f->dir), "/tmp/vss-client-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/vssd.sock", f->dir);
	memcpy(sa.sun_path, f->path, sizeof(f->path));
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->listen_fd >= 0);
	assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->listen_fd, 4), 0);
	f->serve = serve;
	f->joined = false;
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_join(struct fake *f)
{
	if (!f->joined)
		pthread_join(f->thread, NULL);
	f->joined = true;
}

static void fake_stop(struct fake *f)
{
	fake_join(f);
	close(f->listen_fd);
	unlink(f->path);
	rmdir(f->dir);
}

/* What vssd does with a connection over its caps: a reply, then close,
 * without reading the request. */
static void serve_refusal(int fd)
{
	json_t *r = vss_proto_reply_error(NULL, -EAGAIN, "too many connections from uid 1000 "
					  "(at most 32 at once)");

	assert_int_equal(vss_proto_send(fd, r), 0);
	json_decref(r);
}

static void a_refusal_is_read_when_the_send_fails(void **state)
{
	struct fake f;
	struct vss_client *c;
	struct vss_error err = { 0 };
	json_t *res;

	fake_start(&f, serve_refusal);
	assert_int_equal(vss_client_open(f.dir, &c, &err), 0);
	/* The fake has refused and closed before the request is sent. */
	fake_join(&f);
	assert_int_equal(vss_client_call_json(c, "status", NULL, &res, &err), -EAGAIN);
	assert_null(res);
	assert_string_equal(err.msg, "too many connections from uid 1000 (at most 32 at once)");
	vss_client_close(c);
	fake_stop(&f);
}

#define BIG (3u << 20)

/* A reply of 3 MiB in frames of 64 KiB. */
static void serve_big(int fd)
{
	struct vss_proto_opts o = { .frame = 64u << 10 };
	struct vss_error err;
	json_t *req, *r;
	char *pad = malloc(BIG + 1);

	assert_non_null(pad);
	assert_int_equal(vss_proto_recv(fd, &req, &err), 0);
	memset(pad, 'z', BIG);
	pad[BIG] = '\0';
	r = vss_proto_reply_ok(json_object_get(req, "id"), json_pack("{s:s}", "pad", pad));
	free(pad);
	assert_int_equal(vss_proto_send_opts(fd, r, &o), 0);
	json_decref(r);
	json_decref(req);
}

static void a_reply_larger_than_a_frame(void **state)
{
	struct fake f;
	struct vss_client *c;
	struct vss_error err = { 0 };
	json_t *res;

	fake_start(&f, serve_big);
	assert_int_equal(vss_client_open(f.dir, &c, &err), 0);
	assert_int_equal(vss_client_call_json(c, "shadow.list", NULL, &res, &err), 0);
	assert_int_equal(strlen(json_string_value(json_object_get(res, "pad"))), BIG);
	json_decref(res);
	vss_client_close(c);
	fake_stop(&f);
}

/* Answers each request with its own arguments as the result. */
static void serve_echo(int fd)
{
	struct vss_error err;
	json_t *req, *r;

	while (vss_proto_recv(fd, &req, &err) == 0 && req) {
		r = vss_proto_reply_ok(json_object_get(req, "id"),
				       json_incref(json_object_get(req, "args")));
		assert_int_equal(vss_proto_send(fd, r), 0);
		json_decref(r);
		json_decref(req);
	}
}

static void a_call_with_json_as_text(void **state)
{
	struct fake f;
	struct vss_client *c;
	struct vss_error err = { 0 };
	char *res = (char *)"untouched";
	size_t len = 99;

	fake_start(&f, serve_echo);
	assert_int_equal(vss_client_open(f.dir, &c, &err), 0);
	/* Arguments that are not an object never leave. */
	assert_int_equal(vss_client_call(c, "echo", "[1, 2]", &res, &len, &err), -EINVAL);
	assert_null(res);
	assert_int_equal(len, 0);
	assert_int_equal(vss_client_call(c, "echo", "{\"a\": ", &res, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not JSON"));
	assert_int_equal(vss_client_call(c, "echo", "{ \"a\": [1, \"x\"], \"b\": null }",
					 &res, &len, &err), 0);
	assert_string_equal(res, "{\"a\":[1,\"x\"],\"b\":null}");
	assert_int_equal(len, strlen(res));
	free(res);
	/* No arguments: the protocol's empty object. */
	assert_int_equal(vss_client_call(c, "echo", NULL, &res, NULL, &err), 0);
	assert_string_equal(res, "{}");
	free(res);
	vss_client_close(c);
	fake_stop(&f);
}

#define CLS  "6f1a2b3c-0000-4000-8000-000000000001"
#define INST "6f1a2b3c-0000-4000-8000-000000000002"

/* A backup whose one writer failed at freeze with a timeout, as vssd
 * reports it in backup.begin; any other request gets an empty result. */
static void serve_failed_writer(int fd)
{
	struct vss_error err;
	struct vss_wmd *wmd;
	json_t *req, *r, *meta;
	char *text;

	assert_int_equal(vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = "w", .class_id = CLS, .instance_id = INST,
		.usage = VSS_UT_USER_DATA, .source = VSS_ST_OTHER }, &wmd, &err), 0);
	assert_int_equal(vss_wmd_serialize(wmd, &text, NULL, &err), 0);
	vss_wmd_free(wmd);
	meta = json_loads(text, 0, NULL);
	free(text);
	while (vss_proto_recv(fd, &req, &err) == 0 && req) {
		json_t *res = NULL;

		if (strcmp(json_string_value(json_object_get(req, "op")), "backup.begin") == 0)
			res = json_pack("{s:[{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:O}]}",
					"writers", "name", "w", "id", CLS, "instance", INST,
					"state", 9, "state_name", "failed_at_freeze",
					"error_kind", "timeout", "last_error", "too slow",
					"metadata", meta);
		r = vss_proto_reply_ok(json_object_get(req, "id"), res);
		assert_int_equal(vss_proto_send(fd, r), 0);
		json_decref(r);
		json_decref(req);
	}
	json_decref(meta);
}

static void the_requester_names_writer_states(void **state)
{
	struct fake f;
	struct vss_requester *r;
	struct vss_requester_writer w;
	struct vss_error err = { 0 };

	fake_start(&f, serve_failed_writer);
	assert_int_equal(vss_requester_open(f.dir, &r, &err), 0);
	assert_int_equal(vss_requester_gather_writer_metadata(r, &err), 0);
	assert_int_equal(vss_requester_writer_count(r), 1);
	assert_int_equal(vss_requester_writer_status(r, 0, &w), 0);
	assert_string_equal(w.name, "w");
	assert_int_equal(w.state, VSS_WS_FAILED_AT_FREEZE);
	assert_string_equal(w.state_name, "failed_at_freeze");
	assert_int_equal(w.failure, VSS_WF_TIMEOUT);
	assert_string_equal(w.error_kind, "timeout");
	assert_string_equal(w.last_error, "too slow");
	vss_requester_close(r);     /* backup.abort */
	fake_stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_refusal_is_read_when_the_send_fails),
		cmocka_unit_test(a_reply_larger_than_a_frame),
		cmocka_unit_test(a_call_with_json_as_text),
		cmocka_unit_test(the_requester_names_writer_states),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
