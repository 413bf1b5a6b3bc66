/*
 * tests/service/fuzz_proto.c - libFuzzer target for what vssd reads from
 * any local user: messages in one or several frames, as vssd takes them
 * (1 MiB in all) and as a client does (larger), the envelope checks applied
 * to each message, and the one-line form of its error message; fed from a
 * memfd as if from the socket.
 *
 * Built a second time with -DVSS_PROTO_SEEDS as a program that writes a
 * seed corpus (well-formed requests, messages in several frames, an
 * oversized header, an empty continuation, garbage) into the directory it
 * is given.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proto/proto.h"

#ifndef VSS_PROTO_SEEDS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all_messages(int fd, const struct vss_proto_opts *o)
{
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	for (;;) {
		struct vss_error err = { 0 };
		json_t *msg = NULL, *res;
		char line[256];
		int rc = vss_proto_recv_opts(fd, o, &msg, &err);

		if (rc == -EBADMSG)
			continue;
		if (rc < 0 || !msg)
			break;
		/* What the server and the client look at in a message. */
		(void)json_string_value(json_object_get(msg, "op"));
		(void)json_integer_value(json_object_get(msg, "version"));
		vss_proto_reply_parse(msg, &res, &err);
		json_t *reply = vss_proto_reply_error(json_object_get(msg, "id"), -EINVAL, err.msg);
		const char *text = json_string_value(json_object_get(msg, "op"));

		if (text)
			vss_proto_line(line, sizeof(line), text);
		json_decref(reply);
		json_decref(msg);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct vss_proto_opts client = { .max_message = 8u << 20 };
	int fd = memfd_create("frames", MFD_CLOEXEC);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	read_all_messages(fd, NULL);            /* as vssd reads requests */
	read_all_messages(fd, &client);         /* as a client reads replies */
	close(fd);
	return 0;
}
#else
static void seed(const char *dir, int n, const void *buf, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-%02d", dir, n);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len)
		exit(1);
	fclose(f);
}

static size_t header(unsigned char *out, uint32_t word)
{
	out[0] = (unsigned char)(word >> 24);
	out[1] = (unsigned char)(word >> 16);
	out[2] = (unsigned char)(word >> 8);
	out[3] = (unsigned char)word;
	return 4;
}

static size_t frame(unsigned char *out, const char *json)
{
	size_t n = strlen(json);

	header(out, (uint32_t)n);
	memcpy(out + 4, json, n);
	return n + 4;
}

/* @json in frames of at most @piece bytes, each but the last with the "more" bit. */
static size_t frames(unsigned char *out, const char *json, size_t piece)
{
	size_t n = strlen(json), len = 0;

	for (size_t off = 0; off < n; off += piece) {
		size_t k = n - off < piece ? n - off : piece;

		len += header(out + len, (uint32_t)k | (off + k < n ? VSS_PROTO_FRAME_MORE : 0));
		memcpy(out + len, json + off, k);
		len += k;
	}
	return len;
}

int main(int argc, char **argv)
{
	static const char *msgs[] = {
		"{\"version\":1,\"id\":1,\"op\":\"status\",\"args\":{}}",
		"{\"version\":1,\"id\":2,\"op\":\"shadow.create\",\"args\":{\"targets\":[\"a\",\"/mnt/b\"],\"persistent\":true,\"hold\":true}}",
		"{\"version\":1,\"id\":\"x\",\"ok\":false,\"error\":{\"code\":\"EEXIST\",\"errno\":17,\"message\":\"m\"}}",
		"{\"version\":1,\"id\":3,\"ok\":true,\"result\":{\"shadows\":[]}}",
		"{\"a\":1,\"a\":2}",
		"[1,2,3]",
		"{not json",
	};
	unsigned char buf[1024];
	size_t len = 0;

	if (argc != 2)
		return 2;
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		size_t n = frame(buf, msgs[i]);

		seed(argv[1], (int)i, buf, n);
		if (len + n <= sizeof(buf) / 2)
			len += n;
	}
	len = 0;
	for (size_t i = 0; i < 4; i++)
		len += frame(buf + len, msgs[i]);
	seed(argv[1], 20, buf, len);     /* several frames in one stream */
	memcpy(buf, "\xff\xff\xff\xff{}", 6);
	seed(argv[1], 21, buf, 6);       /* oversized */
	seed(argv[1], 22, "\0\0\0\x10{\"ver", 10);   /* cut short */
	len = frames(buf, msgs[1], 16);
	seed(argv[1], 23, buf, len);     /* one message in many frames */
	len = frames(buf, msgs[0], 7);
	len += frame(buf + len, msgs[3]);
	seed(argv[1], 24, buf, len);     /* several frames, then one */
	memcpy(buf, "\x80\0\0\0\0\0\0\x02{}", 10);
	seed(argv[1], 25, buf, 10);      /* an empty continuation */
	memcpy(buf, "\x80\x10\0\0{}", 6);
	seed(argv[1], 26, buf, 6);       /* a continuation over the frame limit */
	len = frame(buf, "{\"version\":1,\"id\":1,\"op\":\"a\\nb\\u0085\\u2028\\u001b\"}");
	seed(argv[1], 27, buf, len);     /* control characters to make one line */
	return 0;
}
#endif
