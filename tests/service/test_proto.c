/*
 * tests/service/test_proto.c - the control protocol's framing against
 * hostile input: oversized lengths, malformed JSON, non-objects, ends of
 * stream inside a frame; and the reply envelope both ways.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto/proto.h"

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void send_raw(int fd, uint32_t len, const char *body, size_t n)
{
	unsigned char hdr[4] = { len >> 24, len >> 16, len >> 8, len };

	assert_int_equal(write(fd, hdr, 4), 4);
	if (n)
		assert_int_equal(write(fd, body, n), (ssize_t)n);
}

static void roundtrip(void **state)
{
	int sv[2];
	json_t *req = vss_proto_request(42, "status", NULL), *got;
	struct vss_error err;

	pair(sv);
	assert_int_equal(vss_proto_send(sv[0], req), 0);
	assert_int_equal(vss_proto_recv(sv[1], &got, &err), 0);
	assert_non_null(got);
	assert_true(json_equal(req, got));
	json_decref(got);
	close(sv[0]);
	assert_int_equal(vss_proto_recv(sv[1], &got, &err), 0);   /* clean end */
	assert_null(got);
	json_decref(req);
	close(sv[1]);
}

static void oversized_is_refused_before_reading(void **state)
{
	int sv[2];
	json_t *got;
	struct vss_error err;

	pair(sv);
	send_raw(sv[0], VSS_PROTO_MAX_FRAME + 1, NULL, 0);
	assert_int_equal(vss_proto_recv(sv[1], &got, &err), -EMSGSIZE);
	assert_null(got);
	assert_non_null(strstr(err.msg, "exceeds"));
	close(sv[0]);
	close(sv[1]);
}

static void malformed_frames_are_consumed(void **state)
{
	static const char *bad[] = { "{nope", "[1,2]", "\"str\"", "", "{\"a\":1,\"a\":2}" };
	int sv[2];
	json_t *got;
	struct vss_error err;

	pair(sv);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		send_raw(sv[0], (uint32_t)strlen(bad[i]), bad[i], strlen(bad[i]));
		assert_int_equal(vss_proto_recv(sv[1], &got, &err), -EBADMSG);
		assert_null(got);
	}
	/* ...and the stream is still in step. */
	send_raw(sv[0], 2, "{}", 2);
	assert_int_equal(vss_proto_recv(sv[1], &got, &err), 0);
	assert_true(json_is_object(got));
	json_decref(got);
	close(sv[0]);
	close(sv[1]);
}

static void truncated_frames(void **state)
{
	int sv[2];
	json_t *got;
	struct vss_error err;

	pair(sv);
	assert_int_equal(write(sv[0], "\0\0", 2), 2);
	close(sv[0]);
	assert_int_equal(vss_proto_recv(sv[1], &got, &err), -ECONNRESET);
	close(sv[1]);
	pair(sv);
	send_raw(sv[0], 10, "{\"a\"", 4);
	close(sv[0]);
	assert_int_equal(vss_proto_recv(sv[1], &got, &err), -ECONNRESET);
	close(sv[1]);
}

static void reply_envelope(void **state)
{
	json_t *id = json_integer(3), *res;
	json_t *ok = vss_proto_reply_ok(id, json_pack("{s:i}", "n", 1));
	json_t *bad = vss_proto_reply_error(id, -EEXIST, "already there");
	struct vss_error err;

	assert_int_equal(vss_proto_reply_parse(ok, &res, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(res, "n")), 1);
	assert_int_equal(vss_proto_reply_parse(bad, &res, &err), -EEXIST);
	assert_string_equal(err.msg, "already there");
	assert_string_equal(json_string_value(json_object_get(json_object_get(bad, "error"),
							      "code")), "EEXIST");
	json_decref(ok);
	json_decref(bad);
	ok = json_pack("{s:s}", "what", "ever");
	assert_int_equal(vss_proto_reply_parse(ok, &res, &err), -EPROTO);
	json_decref(ok);
	json_decref(id);
	assert_int_equal(vss_proto_errno_value("ENOSYS"), -ENOSYS);
	assert_int_equal(vss_proto_errno_value("EWHATEVER"), -EIO);
	assert_int_equal(vss_proto_errno_value(NULL), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(roundtrip),
		cmocka_unit_test(oversized_is_refused_before_reading),
		cmocka_unit_test(malformed_frames_are_consumed),
		cmocka_unit_test(truncated_frames),
		cmocka_unit_test(reply_envelope),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
