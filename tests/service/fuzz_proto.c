/*
 * tests/service/fuzz_proto.c - libFuzzer target for what vssd reads from
 * any local user: frames (vss_proto_recv) and the envelope checks applied
 * to each message, fed from a memfd as if from the socket.
 *
 * Built a second time with -DVSS_PROTO_SEEDS as a program that writes a
 * seed corpus (well-formed requests, an oversized header, garbage) into
 * the directory it is given.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("frames", MFD_CLOEXEC);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	for (;;) {
		struct vss_error err = { 0 };
		json_t *msg = NULL, *res;
		int rc = vss_proto_recv(fd, &msg, &err);

		if (rc == -EBADMSG)
			continue;
		if (rc < 0 || !msg)
			break;
		/* What the server and the client look at in a message. */
		(void)json_string_value(json_object_get(msg, "op"));
		(void)json_integer_value(json_object_get(msg, "version"));
		vss_proto_reply_parse(msg, &res, &err);
		json_t *reply = vss_proto_reply_error(json_object_get(msg, "id"), -EINVAL, err.msg);
		json_decref(reply);
		json_decref(msg);
	}
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

static size_t frame(unsigned char *out, const char *json)
{
	size_t n = strlen(json);

	out[0] = (unsigned char)(n >> 24);
	out[1] = (unsigned char)(n >> 16);
	out[2] = (unsigned char)(n >> 8);
	out[3] = (unsigned char)n;
	memcpy(out + 4, json, n);
	return n + 4;
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
	return 0;
}
#endif
