/*
 * proto/proto.c - framing and the request/reply envelope of the control
 * protocol (see proto.h and doc/protocol.md).  Nothing here trusts the bytes
 * it reads: lengths are checked against the receiver's limit before any
 * allocation, a deadline bounds a message once its first byte is in, JSON
 * is parsed with jansson's limits, and every failure has a readable line.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until @fd is ready for @events, or until @deadline (mono_ms; 0:
 * none, return at once) has passed: 0, -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	while (deadline) {
		struct pollfd p = { fd, events, 0 };
		int64_t left = deadline - mono_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return 0;       /* POLLHUP and POLLERR too: the read or write says what */
		if (n < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Writes all of @buf by @deadline (0: none).  On a socket without SIGPIPE:
 * a peer that went away is -EPIPE for the caller, not the end of a process
 * that did not ignore the signal (a writer holding a freeze, say). */
static int write_all(int fd, const void *buf, size_t len, int64_t deadline)
{
	const char *p = buf;
	bool sock = true;

	while (len > 0) {
		int rc = wait_fd(fd, POLLOUT, deadline);
		ssize_t n;

		if (rc < 0)
			return rc;
		n = sock ? send(fd, p, len, MSG_NOSIGNAL | (deadline ? MSG_DONTWAIT : 0))
			 : write(fd, p, len);
		if (n < 0 && sock && errno == ENOTSOCK) {
			sock = false;
			continue;
		}
		if (n < 0) {
			if (errno == EINTR || (errno == EAGAIN && deadline))
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly @len bytes; returns @len, the short count at end of stream,
 * or -errno (-ETIMEDOUT once *@deadline has passed).  *@deadline 0 means
 * none yet: it is set @timeout_ms (if > 0) after the first byte read. */
static ssize_t read_full(int fd, void *buf, size_t len, int64_t *deadline, int timeout_ms)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		int rc = wait_fd(fd, POLLIN, *deadline);
		ssize_t n;

		if (rc < 0)
			return rc;
		n = read(fd, p + got, len - got);
		if (n < 0) {
			if (errno == EINTR || (errno == EAGAIN && *deadline))
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		if (!*deadline && timeout_ms > 0)
			*deadline = mono_ms() + timeout_ms;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int vss_proto_send_opts(int fd, const json_t *msg, const struct vss_proto_opts *o)
{
	size_t frame = o && o->frame && o->frame < VSS_PROTO_MAX_FRAME ? o->frame
								       : VSS_PROTO_MAX_FRAME;
	int timeout_ms = o ? o->timeout_ms : 0;
	char *text = json_dumps(msg, JSON_COMPACT);
	size_t len, off = 0;
	int rc;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	do {
		size_t n = len - off < frame ? len - off : frame;
		uint32_t word = (uint32_t)n | (off + n < len ? VSS_PROTO_FRAME_MORE : 0);
		unsigned char hdr[4] = { (unsigned char)(word >> 24), (unsigned char)(word >> 16),
					 (unsigned char)(word >> 8), (unsigned char)word };
		int64_t deadline = timeout_ms > 0 ? mono_ms() + timeout_ms : 0;

		rc = write_all(fd, hdr, sizeof(hdr), deadline);
		if (rc == 0)
			rc = write_all(fd, text + off, n, deadline);
		off += n;
	} while (rc == 0 && off < len);
	free(text);
	return rc;
}

int vss_proto_send(int fd, const json_t *msg)
{
	return vss_proto_send_opts(fd, msg, NULL);
}

static int read_failed(ssize_t n, int timeout_ms, struct vss_error *err)
{
	if (n == -ETIMEDOUT)
		return vss_error_set(err, -ETIMEDOUT, "no complete message within %d ms of its "
				     "first byte", timeout_ms);
	return vss_error_set(err, (int)n, "cannot read from the socket: %s", strerror((int)-n));
}

int vss_proto_recv_opts(int fd, const struct vss_proto_opts *o, json_t **out,
			struct vss_error *err)
{
	size_t max = o && o->max_message ? o->max_message : VSS_PROTO_MAX_FRAME;
	int timeout_ms = o ? o->timeout_ms : 0;
	int64_t deadline = 0;
	char *buf = NULL;
	size_t total = 0, cap = 0;
	bool more = true;
	json_t *msg;
	json_error_t jerr;
	int rc;

	*out = NULL;
	while (more) {
		unsigned char hdr[4];
		uint32_t word, len;
		ssize_t n = read_full(fd, hdr, sizeof(hdr), &deadline, timeout_ms);

		if (n < 0) {
			rc = read_failed(n, timeout_ms, err);
			goto fail;
		}
		if (n == 0 && !buf)
			return 0;
		if (n < (ssize_t)sizeof(hdr)) {
			rc = vss_error_set(err, -ECONNRESET, "connection closed inside a frame "
					   "header");
			goto fail;
		}
		word = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
		       (uint32_t)hdr[2] << 8 | hdr[3];
		more = word & VSS_PROTO_FRAME_MORE;
		len = word & ~VSS_PROTO_FRAME_MORE;
		if (len > max - total || len > VSS_PROTO_MAX_FRAME) {
			if (!more && total == 0)
				rc = vss_error_set(err, -EMSGSIZE, "message of %u bytes exceeds the "
						   "limit of %zu bytes", len,
						   max < VSS_PROTO_MAX_FRAME ? max
									     : VSS_PROTO_MAX_FRAME);
			else if (len > VSS_PROTO_MAX_FRAME)
				rc = vss_error_set(err, -EMSGSIZE, "frame of %u bytes exceeds the "
						   "limit of %u bytes", len, VSS_PROTO_MAX_FRAME);
			else
				rc = vss_error_set(err, -EMSGSIZE, "message of at least %zu bytes "
						   "exceeds the limit of %zu bytes",
						   total + len, max);
			goto fail;
		}
		if (more && len == 0) {
			rc = vss_error_set(err, -EPROTO, "an empty frame with more to follow");
			goto fail;
		}
		if (total + len + 1 > cap) {
			size_t want = cap ? 2 * cap : 4096;
			char *bigger;

			while (want < total + len + 1)
				want *= 2;
			if (!(bigger = realloc(buf, want))) {
				rc = vss_error_set(err, -ENOMEM, "out of memory");
				goto fail;
			}
			buf = bigger;
			cap = want;
		}
		n = read_full(fd, buf + total, len, &deadline, timeout_ms);
		if (n < 0) {
			rc = read_failed(n, timeout_ms, err);
			goto fail;
		}
		if ((size_t)n < len) {
			rc = vss_error_set(err, -ECONNRESET, "connection closed inside a frame");
			goto fail;
		}
		total += len;
	}
	msg = json_loadb(buf, total, JSON_REJECT_DUPLICATES, &jerr);
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
fail:
	free(buf);
	return rc;
}

int vss_proto_recv(int fd, json_t **out, struct vss_error *err)
{
	return vss_proto_recv_opts(fd, NULL, out, err);
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
	char *line = NULL;

	if (code >= 0)
		code = -EIO;
	if (msg && *msg && (line = malloc(4 * strlen(msg) + 1)))
		vss_proto_line(line, 4 * strlen(msg) + 1, msg);
	json_object_set_new(e, "code", json_string(vss_proto_errno_name(code)));
	json_object_set_new(e, "errno", json_integer(-code));
	json_object_set_new(e, "message", json_string(line ? line : strerror(-code)));
	free(line);
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
	if (!err)
		return code;
	err->code = code;
	vss_proto_line(err->msg, sizeof(err->msg), msg ? msg : strerror(-code));
	return code;
}

/* The length of the UTF-8 character at @s, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	/* No overlong forms, no surrogates, nothing past U+10FFFF. */
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

char *vss_proto_line(char *dst, size_t size, const char *src)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0;

	while (*s) {
		size_t k = utf8_len(s), n;
		char esc[8];
		const char *put = esc;

		if (*s < 0x20 || *s == 0x7f) {
			k = 1;
			if (*s == '\n' || *s == '\r' || *s == '\t')
				snprintf(esc, sizeof(esc), "\\%c", *s == '\n' ? 'n' : *s == '\r' ? 'r' : 't');
			else
				snprintf(esc, sizeof(esc), "\\x%02x", *s);
		} else if (k == 0) {
			k = 1;
			snprintf(esc, sizeof(esc), "\\x%02x", *s);
		} else if (k == 2 && s[0] == 0xc2 && s[1] < 0xa0) {
			snprintf(esc, sizeof(esc), "\\u%04x", s[1]);
		} else if (k == 3 && s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9)) {
			snprintf(esc, sizeof(esc), "\\u%04x", 0x2000 | (s[2] & 0x3f));
		} else {
			put = (const char *)s;
		}
		n = put == esc ? strlen(esc) : k;
		if (o + n >= size)
			break;
		memcpy(dst + o, put, n);
		o += n;
		s += k;
	}
	if (size)
		dst[o] = '\0';
	return dst;
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
