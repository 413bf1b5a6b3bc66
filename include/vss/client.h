/*
 * vss/client.h - talking to vssd: one connection to its control socket and
 * one call per operation.  The operations, their arguments and results are
 * the control protocol's (doc/protocol.md): JSON objects, which this API
 * takes and gives as text, so that a program uses the JSON library it
 * likes.  This layer adds the connection, the framing and the error
 * mapping.  Backup programs want vss/requester.h, writers vss/writer.h.
 *
 * Threads: a connection is used by one thread at a time.
 */
#ifndef VSS_CLIENT_H
#define VSS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <vss/error.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define VSS_DEFAULT_RUN_DIR   "/run/vss"
#define VSS_DEFAULT_STATE_DIR "/var/lib/vss"

struct vss_client;

/* The run directory to use: @explicit_dir if not NULL, else $VSS_RUN_DIR, else the default. */
const char *vss_client_run_dir(const char *explicit_dir);

/*
 * Connects to RUN/vssd.sock.  On failure returns a negative errno and fills
 * @err; -ENOENT, -ECONNREFUSED and -EACCES mean the daemon is not reachable.
 * On success *@out is owned by the caller until vss_client_close().
 */
int vss_client_open(const char *run_dir, struct vss_client **out,
		    struct vss_error *err);
void vss_client_close(struct vss_client *c);

/*
 * Sends one request and waits for its reply.  @args_json is the request's
 * arguments, a JSON object as text (NULL or "": none).  On success
 * *@result_json is the result as NUL-terminated JSON text (an object for
 * every operation of doc/protocol.md), which the caller frees with
 * free(); *@len (if not NULL) is its length.
 * On failure *@result_json is NULL and the call returns the daemon's
 * negative errno with its message in @err, -EINVAL if @args_json is not a
 * JSON object, or -EPIPE/-ECONNRESET/-EPROTO when the connection itself
 * failed.
 */
int vss_client_call(struct vss_client *c, const char *op, const char *args_json,
		    char **result_json, size_t *len, struct vss_error *err);

/*
 * Parses a size as the command line takes it: plain bytes, or a number
 * followed by K, M, G or T (powers of 1024; "KiB" and "KB" are read the
 * same).  Returns 0, or -EINVAL (not a size) or -ERANGE (too large).
 */
int vss_parse_size(const char *s, uint64_t *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
