/*
 * tests/service/test_client.c - the client library (vss/client.h) against
 * a fake vssd on a Unix socket in a private directory: a refusal vssd sent
 * before it read anything is what the caller gets (not EPIPE), and a reply
 * in many frames, larger than one frame, is reassembled.
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

#include <vss/client.h>

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
	assert_int_equal(vss_client_call(c, "status", NULL, &res, &err), -EAGAIN);
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
	assert_int_equal(vss_client_call(c, "shadow.list", NULL, &res, &err), 0);
	assert_int_equal(strlen(json_string_value(json_object_get(res, "pad"))), BIG);
	json_decref(res);
	vss_client_close(c);
	fake_stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_refusal_is_read_when_the_send_fails),
		cmocka_unit_test(a_reply_larger_than_a_frame),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
