/*
 * tests/service/test_proto.c - the control protocol's framing against
 * hostile input: oversized lengths, malformed JSON, non-objects, ends of
 * stream inside a frame, messages in several frames and their limits,
 * deadlines; the reply envelope both ways; messages made one line.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
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

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A message of about @bytes: {"pad": "aaaa..."}. */
static json_t *big_message(size_t bytes)
{
	char *pad = malloc(bytes + 1);
	json_t *msg;

	assert_non_null(pad);
	memset(pad, 'a', bytes);
	pad[bytes] = '\0';
	msg = json_pack("{s:s}", "pad", pad);
	free(pad);
	return msg;
}

struct sender {
	int fd;
	const json_t *msg;
	struct vss_proto_opts opts;
	int rc;
	unsigned int delay_ms;          /* before sending */
};

static void *send_main(void *arg)
{
	struct sender *s = arg;

	if (s->delay_ms)
		usleep(s->delay_ms * 1000u);
	s->rc = vss_proto_send_opts(s->fd, s->msg, &s->opts);
	return NULL;
}

/* Reads one frame's header and payload raw: the header word, the payload in @buf. */
static uint32_t raw_frame(int fd, char *buf, size_t cap)
{
	unsigned char hdr[4];
	uint32_t word, len, got = 0;

	assert_int_equal(recv(fd, hdr, 4, MSG_WAITALL), 4);
	word = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	len = word & ~VSS_PROTO_FRAME_MORE;
	assert_true(len <= cap);
	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);

		assert_true(n > 0);
		got += (uint32_t)n;
	}
	return word;
}

static void a_large_message_goes_in_several_frames(void **state)
{
	json_t *msg = big_message(3u << 20), *got;
	struct sender s = { .msg = msg };
	struct vss_proto_opts client = { .max_message = VSS_PROTO_MAX_REPLY };
	struct vss_error err;
	pthread_t t;
	int sv[2];

	pair(sv);
	s.fd = sv[0];
	assert_int_equal(pthread_create(&t, NULL, send_main, &s), 0);
	assert_int_equal(vss_proto_recv_opts(sv[1], &client, &got, &err), 0);
	pthread_join(t, NULL);
	assert_int_equal(s.rc, 0);
	assert_true(json_equal(msg, got));
	json_decref(got);
	/* What vssd takes (1 MiB in all) refuses it. */
	assert_int_equal(pthread_create(&t, NULL, send_main, &s), 0);
	assert_int_equal(vss_proto_recv(sv[1], &got, &err), -EMSGSIZE);
	assert_null(got);
	assert_non_null(strstr(err.msg, "exceeds"));
	close(sv[1]);
	pthread_join(t, NULL);
	assert_int_equal(s.rc, -EPIPE);
	close(sv[0]);
	json_decref(msg);
}

static void frames_on_the_wire(void **state)
{
	json_t *msg = big_message(1000), *got;
	struct vss_proto_opts small = { .frame = 300 };
	char text[2048], buf[512];
	size_t len = 0;
	uint32_t word;
	int sv[2], frames = 0;
	struct vss_error err;

	pair(sv);
	/* A message that fits one frame is one frame, the bit clear: version 1. */
	assert_int_equal(vss_proto_send(sv[0], msg), 0);
	word = raw_frame(sv[1], text, sizeof(text));
	assert_false(word & VSS_PROTO_FRAME_MORE);
	assert_int_equal(word, strlen("{\"pad\":\"\"}") + 1000);
	/* Split: frames of at most 300 bytes, each but the last marked. */
	assert_int_equal(vss_proto_send_opts(sv[0], msg, &small), 0);
	do {
		word = raw_frame(sv[1], buf, sizeof(buf));
		assert_true((word & ~VSS_PROTO_FRAME_MORE) > 0);
		assert_true((word & ~VSS_PROTO_FRAME_MORE) <= 300);
		memcpy(text + len, buf, word & ~VSS_PROTO_FRAME_MORE);
		len += word & ~VSS_PROTO_FRAME_MORE;
		frames++;
	} while (word & VSS_PROTO_FRAME_MORE);
	assert_int_equal(frames, 4);
	got = json_loadb(text, len, 0, NULL);
	assert_true(json_equal(msg, got));
	json_decref(got);
	/* ...and reassembled by the receiver. */
	assert_int_equal(vss_proto_send_opts(sv[0], msg, &small), 0);
	assert_int_equal(vss_proto_recv(sv[1], &got, &err), 0);
	assert_true(json_equal(msg, got));
	json_decref(got);
	json_decref(msg);
	close(sv[0]);
	close(sv[1]);
}

static void bad_continuations(void **state)
{
	int sv[2];
	json_t *got;
	struct vss_error err;

	/* An empty frame with more to follow: refused, not looped on. */
	pair(sv);
	send_raw(sv[0], VSS_PROTO_FRAME_MORE | 0, NULL, 0);
	assert_int_equal(vss_proto_recv(sv[1], &got, &err), -EPROTO);
	close(sv[0]);
	close(sv[1]);
	/* A marked frame over the frame limit, even for a client's larger limit. */
	pair(sv);
	send_raw(sv[0], VSS_PROTO_FRAME_MORE | (VSS_PROTO_MAX_FRAME + 1), NULL, 0);
	assert_int_equal(vss_proto_recv_opts(sv[1], &(struct vss_proto_opts){
		.max_message = VSS_PROTO_MAX_REPLY }, &got, &err), -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);
	/* Frames whose sum passes the receiver's limit: refused at the header. */
	pair(sv);
	send_raw(sv[0], VSS_PROTO_FRAME_MORE | 6, "{\"a\":\"", 6);
	send_raw(sv[0], 100, NULL, 0);
	assert_int_equal(vss_proto_recv_opts(sv[1], &(struct vss_proto_opts){
		.max_message = 64 }, &got, &err), -EMSGSIZE);
	assert_non_null(strstr(err.msg, "exceeds the limit of 64"));
	close(sv[0]);
	close(sv[1]);
	/* The end of the stream between two frames of a message. */
	pair(sv);
	send_raw(sv[0], VSS_PROTO_FRAME_MORE | 6, "{\"a\":\"", 6);
	close(sv[0]);
	assert_int_equal(vss_proto_recv(sv[1], &got, &err), -ECONNRESET);
	close(sv[1]);
}

static void a_message_has_a_deadline_from_its_first_byte(void **state)
{
	struct vss_proto_opts o = { .timeout_ms = 300 };
	json_t *msg = vss_proto_request(1, "status", NULL), *got;
	struct sender s = { .msg = msg, .delay_ms = 600 };
	struct vss_error err;
	pthread_t t;
	int64_t t0;
	int sv[2];

	/* The wait for the first byte is not bounded (600 ms > 300 ms)... */
	pair(sv);
	s.fd = sv[0];
	assert_int_equal(pthread_create(&t, NULL, send_main, &s), 0);
	assert_int_equal(vss_proto_recv_opts(sv[1], &o, &got, &err), 0);
	pthread_join(t, NULL);
	assert_true(json_equal(msg, got));
	json_decref(got);
	/* ...but once a byte is in, the whole message is, even a byte at a time. */
	t0 = now_ms();
	assert_int_equal(write(sv[0], "\0", 1), 1);
	for (int i = 0; i < 2; i++) {
		usleep(100000);
		assert_int_equal(write(sv[0], "\0", 1), 1);
	}
	assert_int_equal(vss_proto_recv_opts(sv[1], &o, &got, &err), -ETIMEDOUT);
	assert_true(now_ms() - t0 < 3000);
	assert_non_null(strstr(err.msg, "300 ms"));
	close(sv[0]);
	close(sv[1]);
	json_decref(msg);
}

static void a_peer_that_does_not_read_times_a_send_out(void **state)
{
	json_t *msg = big_message(4u << 20);
	struct vss_proto_opts o = { .timeout_ms = 300 };
	int64_t t0 = now_ms();
	int sv[2];

	pair(sv);
	assert_int_equal(vss_proto_send_opts(sv[0], msg, &o), -ETIMEDOUT);
	assert_true(now_ms() - t0 < 3000);
	close(sv[0]);
	close(sv[1]);
	json_decref(msg);
}

static void one_line(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "plain text", "plain text" },
		{ "a\nvss: forged", "a\\nvss: forged" },
		{ "cr\r tab\t esc\x1b[2K del\x7f bell\a", "cr\\r tab\\t esc\\x1b[2K del\\x7f bell\\x07" },
		{ "C1 next line \xc2\x85, csi \xc2\x9b", "C1 next line \\u0085, csi \\u009b" },
		{ "separators \xe2\x80\xa8 \xe2\x80\xa9", "separators \\u2028 \\u2029" },
		{ "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 \xc2\xa0", "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 \xc2\xa0" },
		{ "bad \xff \xc0\x80 \xed\xa0\x80 \xf4\x90\x80\x80 \xe6\x97",
		  "bad \\xff \\xc0\\x80 \\xed\\xa0\\x80 \\xf4\\x90\\x80\\x80 \\xe6\\x97" },
	};
	char out[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(vss_proto_line(out, sizeof(out), cases[i].in), cases[i].out);
	/* Cut short at a character or escape, never inside one. */
	assert_string_equal(vss_proto_line(out, 6, "ab\ncd"), "ab\\nc");
	assert_string_equal(vss_proto_line(out, 5, "ab\ncd"), "ab\\n");
	assert_string_equal(vss_proto_line(out, 4, "ab\ncd"), "ab");
	assert_string_equal(vss_proto_line(out, 5, "a\xe6\x97\xa5"), "a\xe6\x97\xa5");
	assert_string_equal(vss_proto_line(out, 4, "a\xe6\x97\xa5"), "a");
	assert_string_equal(vss_proto_line(out, 1, "abc"), "");
}

static void messages_are_one_line_both_ways(void **state)
{
	json_t *bad = vss_proto_reply_error(NULL, -EINVAL, "invalid volume name \"x\nvss: ok\"");
	json_t *raw = json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", "EINVAL",
				"message", "forged\r\nvss: done"), *res;
	struct vss_error err;

	assert_string_equal(json_string_value(json_object_get(json_object_get(bad, "error"),
							      "message")),
			    "invalid volume name \"x\\nvss: ok\"");
	/* A message from an older vssd is made one line by the client. */
	assert_int_equal(vss_proto_reply_parse(raw, &res, &err), -EINVAL);
	assert_string_equal(err.msg, "forged\\r\\nvss: done");
	json_decref(bad);
	json_decref(raw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(roundtrip),
		cmocka_unit_test(oversized_is_refused_before_reading),
		cmocka_unit_test(malformed_frames_are_consumed),
		cmocka_unit_test(truncated_frames),
		cmocka_unit_test(reply_envelope),
		cmocka_unit_test(a_large_message_goes_in_several_frames),
		cmocka_unit_test(frames_on_the_wire),
		cmocka_unit_test(bad_continuations),
		cmocka_unit_test(a_message_has_a_deadline_from_its_first_byte),
		cmocka_unit_test(a_peer_that_does_not_read_times_a_send_out),
		cmocka_unit_test(one_line),
		cmocka_unit_test(messages_are_one_line_both_ways),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
