/*
 * proto/proto.h - the control protocol between vss (and other requesters)
 * and vssd: length-prefixed JSON frames over a Unix stream socket.  This file
 * is the framing and the envelope; the operations are listed in
 * doc/protocol.md and dispatched by service/server.c.
 *
 * A frame is a 4-byte big-endian unsigned length followed by that many bytes
 * of UTF-8 JSON holding one object.  No frame may exceed VSS_PROTO_MAX_FRAME.
 */
#ifndef VSS_PROTO_PROTO_H
#define VSS_PROTO_PROTO_H

#include <stdint.h>

#include <jansson.h>

#include <vss/error.h>

#define VSS_PROTO_VERSION   1
#define VSS_PROTO_MAX_FRAME (1u << 20)   /* bytes of JSON in one frame */

/*
 * Sends @msg as one frame; does not take ownership.  Returns 0, -EMSGSIZE if
 * the encoding is too large, or the -errno of the failed write.
 */
int vss_proto_send(int fd, const json_t *msg);

/*
 * Receives one frame.  Returns 0 with *@out a new reference to a JSON object;
 * 0 with *@out NULL on a clean end of stream (no byte of a new frame read);
 * -EMSGSIZE when the length exceeds the limit (the payload is left unread, so
 * the connection cannot be resynchronised and must be closed); -EBADMSG when
 * the payload is not a JSON object (the frame was consumed: the connection
 * can go on); -ECONNRESET on an end of stream inside a frame; other -errno
 * from read().  @err gets a readable line for every failure.
 */
int vss_proto_recv(int fd, json_t **out, struct vss_error *err);

/* A request {"version":1,"id":ID,"op":OP,"args":ARGS}; steals @args (may be NULL). */
json_t *vss_proto_request(uint64_t id, const char *op, json_t *args);

/* A success reply; steals @result (may be NULL: an empty object). */
json_t *vss_proto_reply_ok(json_t *id, json_t *result);

/* An error reply carrying a negative errno and a readable line. */
json_t *vss_proto_reply_error(json_t *id, int code, const char *msg);

/*
 * Reads a reply: 0 with *@result borrowed from @reply when it reports
 * success, the remote negative errno (message in @err) when it reports an
 * error, -EPROTO when it is not a well-formed reply.
 */
int vss_proto_reply_parse(json_t *reply, json_t **result, struct vss_error *err);

/* errno <-> the symbolic names used on the wire ("ENOENT"); unknown: "EIO"/-EIO. */
const char *vss_proto_errno_name(int code);
int vss_proto_errno_value(const char *name);

#endif
