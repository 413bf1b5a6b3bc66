/*
 * proto/proto.h - the control protocol between vss (and other requesters)
 * and vssd: length-prefixed JSON messages over a Unix stream socket.  This
 * file is the framing and the envelope; the operations are listed in
 * doc/protocol.md and dispatched by service/server.c.
 *
 * A message is one JSON object in UTF-8, sent as one or more frames.  A
 * frame is a 4-byte big-endian header and a payload: the header's low 31
 * bits are the payload's length (at most VSS_PROTO_MAX_FRAME), its top bit
 * (VSS_PROTO_FRAME_MORE) says that more frames of the same message follow.
 * The message is the payloads put end to end.  A message that fits one
 * frame is sent as one frame with the bit clear (as protocol version 1
 * always did); a frame with the bit set is never empty.  Each receiver
 * bounds the whole message: vssd takes requests of at most
 * VSS_PROTO_MAX_FRAME bytes, a client replies of at most VSS_PROTO_MAX_REPLY.
 */
#ifndef VSS_PROTO_PROTO_H
#define VSS_PROTO_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <vss/error.h>

#define VSS_PROTO_VERSION    1
#define VSS_PROTO_MAX_FRAME  (1u << 20)     /* bytes of payload in one frame; of one request */
#define VSS_PROTO_FRAME_MORE 0x80000000u    /* header bit: another frame of this message follows */
#define VSS_PROTO_MAX_REPLY  (256u << 20)   /* bytes of one message a client takes */

/* How a message is sent or received.  NULL, or a member 0, means the default. */
struct vss_proto_opts {
	size_t max_message;     /* receive: bytes of one message (VSS_PROTO_MAX_FRAME) */
	size_t frame;           /* send: bytes of payload per frame, at most
	                         * VSS_PROTO_MAX_FRAME (VSS_PROTO_MAX_FRAME) */
	int timeout_ms;         /* receive: the whole message, from its first byte;
	                         * send: each frame (none: wait as long as it takes) */
};

/*
 * Sends @msg, in as many frames as it takes; does not take ownership.
 * Returns 0, -ETIMEDOUT if a frame could not be written within
 * @o->timeout_ms, or the -errno of the failed write (-EPIPE: the peer went
 * away).  After a failure the stream is out of step: close it.
 */
int vss_proto_send_opts(int fd, const json_t *msg, const struct vss_proto_opts *o);
int vss_proto_send(int fd, const json_t *msg);          /* default options */

/*
 * Receives one message.  Returns 0 with *@out a new reference to a JSON
 * object; 0 with *@out NULL on a clean end of stream (no byte of a new
 * message read); -EMSGSIZE when a frame or the message exceeds its limit
 * (the payload is left unread, so the connection cannot be resynchronised
 * and must be closed); -EPROTO for an empty frame with the "more" bit (close
 * too); -ETIMEDOUT when the message was not complete within @o->timeout_ms
 * of its first byte (close too); -EBADMSG when the payload is not a JSON
 * object (the message was consumed: the connection can go on);
 * -ECONNRESET on an end of stream inside a message; other -errno from
 * read().  The wait for the first byte is not bounded (poll first for
 * that).  @err gets a readable line for every failure.
 */
int vss_proto_recv_opts(int fd, const struct vss_proto_opts *o, json_t **out,
			struct vss_error *err);
int vss_proto_recv(int fd, json_t **out, struct vss_error *err);   /* default options */

/* A request {"version":1,"id":ID,"op":OP,"args":ARGS}; steals @args (may be NULL). */
json_t *vss_proto_request(uint64_t id, const char *op, json_t *args);

/* A success reply; steals @result (may be NULL: an empty object). */
json_t *vss_proto_reply_ok(json_t *id, json_t *result);

/* An error reply carrying a negative errno and a readable line (made one
 * line by vss_proto_line: a name in it cannot forge lines on the client's
 * terminal). */
json_t *vss_proto_reply_error(json_t *id, int code, const char *msg);

/*
 * Reads a reply: 0 with *@result borrowed from @reply when it reports
 * success, the remote negative errno (message in @err, made one line) when
 * it reports an error, -EPROTO when it is not a well-formed reply.
 */
int vss_proto_reply_parse(json_t *reply, json_t **result, struct vss_error *err);

/*
 * Copies @src into @dst (@size bytes, at least 1) as one printable line of
 * UTF-8: control characters become \n, \r, \t or \xNN (C0 and DEL),
 * \u0080 to \u009f (C1), \u2028 and \u2029 (line and paragraph separators),
 * and bytes that are not UTF-8 become \xNN.  Cut short, at a character
 * boundary, to fit.  Returns @dst.
 */
char *vss_proto_line(char *dst, size_t size, const char *src);

/* errno <-> the symbolic names used on the wire ("ENOENT"); unknown: "EIO"/-EIO. */
const char *vss_proto_errno_name(int code);
int vss_proto_errno_value(const char *name);

#endif
