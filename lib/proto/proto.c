/*
 * proto/proto.c - framing and the request/reply envelope of the control
 * protocol (see proto.h and doc/protocol.md).  Nothing here trusts the bytes
 * it reads: lengths are checked before any allocation, JSON is parsed with
 * jansson's limits, and every failure has a readable line.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/proto.h"

/* Writes all of @buf.  On a socket without SIGPIPE: a peer that went away
 * is -EPIPE for the caller, not the end of a process that did not ignore
 * the signal (a writer holding a freeze, say). */
static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	bool sock = true;

	while (len > 0) {
		ssize_t n = sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);

		if (n < 0 && sock && errno == ENOTSOCK) {
			sock = false;
			continue;
		}

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly @len bytes; returns @len, the short count at end of stream, or -errno. */
static ssize_t read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int vss_proto_send(int fd, const json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	size_t len;
	unsigned char hdr[4];
	int rc;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	if (len > VSS_PROTO_MAX_FRAME) {
		free(text);
		return -EMSGSIZE;
	}
	hdr[0] = (unsigned char)(len >> 24);
	hdr[1] = (unsigned char)(len >> 16);
	hdr[2] = (unsigned char)(len >> 8);
	hdr[3] = (unsigned char)len;
	rc = write_all(fd, hdr, sizeof(hdr));
	if (rc == 0)
		rc = write_all(fd, text, len);
	free(text);
	return rc;
}

int vss_proto_recv(int fd, json_t **out, struct vss_error *err)
{
	unsigned char hdr[4];
	uint32_t len;
	char *buf;
	ssize_t n;
	json_t *msg;
	json_error_t jerr;

	*out = NULL;
	n = read_all(fd, hdr, sizeof(hdr));
	if (n < 0)
		return vss_error_set(err, (int)n, "cannot read from the socket: %s",
				     strerror((int)-n));
	if (n == 0)
		return 0;
	if (n < (ssize_t)sizeof(hdr))
		return vss_error_set(err, -ECONNRESET, "connection closed inside a frame header");
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	      (uint32_t)hdr[2] << 8 | hdr[3];
	if (len > VSS_PROTO_MAX_FRAME)
		return vss_error_set(err, -EMSGSIZE,
				     "message of %u bytes exceeds the limit of %u bytes",
				     len, VSS_PROTO_MAX_FRAME);
	buf = malloc(len ? len : 1);
	if (!buf)
		return vss_error_set(err, -ENOMEM, "out of memory");
	n = read_all(fd, buf, len);
	if (n < 0 || (size_t)n < len) {
		free(buf);
		if (n < 0)
			return vss_error_set(err, (int)n, "cannot read from the socket: %s",
					     strerror((int)-n));
		return vss_error_set(err, -ECONNRESET, "connection closed inside a frame");
	}
	msg = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (!msg)
		return vss_error_set(err, -EBADMSG, "malformed JSON: %s (at byte %d)",
				     jerr.text, jerr.position);
	if (!json_is_object(msg)) {
		json_decref(msg);
		return vss_error_set(err, -EBADMSG, "a message must be a JSON object");
	}
	*out = msg;
	return 0;
}

json_t *vss_proto_request(uint64_t id, const char *op, json_t *args)
{
	json_t *msg = json_object();

	json_object_set_new(msg, "version", json_integer(VSS_PROTO_VERSION));
	json_object_set_new(msg, "id", json_integer((json_int_t)id));
	json_object_set_new(msg, "op", json_string(op));
	json_object_set_new(msg, "args", args ? args : json_object());
	return msg;
}

json_t *vss_proto_reply_ok(json_t *id, json_t *result)
{
	json_t *msg = json_object();

	json_object_set_new(msg, "version", json_integer(VSS_PROTO_VERSION));
	json_object_set(msg, "id", id ? id : json_null());
	json_object_set_new(msg, "ok", json_true());
	json_object_set_new(msg, "result", result ? result : json_object());
	return msg;
}

json_t *vss_proto_reply_error(json_t *id, int code, const char *msg)
{
	json_t *reply = json_object();
	json_t *e = json_object();

	if (code >= 0)
		code = -EIO;
	json_object_set_new(e, "code", json_string(vss_proto_errno_name(code)));
	json_object_set_new(e, "errno", json_integer(-code));
	json_object_set_new(e, "message", json_string(msg && *msg ? msg : strerror(-code)));
	json_object_set_new(reply, "version", json_integer(VSS_PROTO_VERSION));
	json_object_set(reply, "id", id ? id : json_null());
	json_object_set_new(reply, "ok", json_false());
	json_object_set_new(reply, "error", e);
	return reply;
}

int vss_proto_reply_parse(json_t *reply, json_t **result, struct vss_error *err)
{
	json_t *ok = json_object_get(reply, "ok");
	json_t *e;
	const char *msg;
	int code;

	*result = NULL;
	if (!json_is_boolean(ok))
		return vss_error_set(err, -EPROTO, "the daemon sent a reply without \"ok\"");
	if (json_is_true(ok)) {
		*result = json_object_get(reply, "result");
		if (!*result)
			return vss_error_set(err, -EPROTO, "the daemon sent a reply without \"result\"");
		return 0;
	}
	e = json_object_get(reply, "error");
	code = vss_proto_errno_value(json_string_value(json_object_get(e, "code")));
	msg = json_string_value(json_object_get(e, "message"));
	return vss_error_set(err, code, "%s", msg ? msg : strerror(-code));
}

static const struct { int code; const char *name; } errno_names[] = {
	{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EIO, "EIO" },
	{ E2BIG, "E2BIG" }, { EBADF, "EBADF" }, { EAGAIN, "EAGAIN" },
	{ ENOMEM, "ENOMEM" }, { EACCES, "EACCES" }, { EBUSY, "EBUSY" },
	{ EEXIST, "EEXIST" }, { EXDEV, "EXDEV" }, { ENODEV, "ENODEV" },
	{ ENOTDIR, "ENOTDIR" }, { EISDIR, "EISDIR" }, { EINVAL, "EINVAL" },
	{ EMFILE, "EMFILE" }, { EFBIG, "EFBIG" }, { ENOSPC, "ENOSPC" },
	{ EROFS, "EROFS" }, { EMLINK, "EMLINK" }, { ERANGE, "ERANGE" },
	{ ENAMETOOLONG, "ENAMETOOLONG" }, { ENOSYS, "ENOSYS" },
	{ ENOTEMPTY, "ENOTEMPTY" }, { EBADMSG, "EBADMSG" },
	{ EOVERFLOW, "EOVERFLOW" }, { EPROTO, "EPROTO" },
	{ EMSGSIZE, "EMSGSIZE" }, { EOPNOTSUPP, "EOPNOTSUPP" },
	{ ECONNRESET, "ECONNRESET" }, { ETIMEDOUT, "ETIMEDOUT" },
	{ EALREADY, "EALREADY" }, { EINPROGRESS, "EINPROGRESS" },
	{ ESTALE, "ESTALE" }, { EUCLEAN, "EUCLEAN" }, { ECANCELED, "ECANCELED" },
	{ EWOULDBLOCK == EAGAIN ? 0 : EWOULDBLOCK, "EWOULDBLOCK" },
};

const char *vss_proto_errno_name(int code)
{
	if (code < 0)
		code = -code;
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (errno_names[i].code == code)
			return errno_names[i].name;
	return "EIO";
}

int vss_proto_errno_value(const char *name)
{
	if (name)
		for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
			if (errno_names[i].code && strcmp(errno_names[i].name, name) == 0)
				return -errno_names[i].code;
	return -EIO;
}
