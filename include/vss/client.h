/*
 * vss/client.h - talking to vssd: one connection to its control socket and
 * one call per operation.  The operations, their arguments and results are
 * the control protocol's (doc/protocol.md); this layer adds the connection,
 * the framing and the error mapping, so that front ends only build arguments
 * and print results.
 *
 * Threads: a connection is used by one thread at a time.
 */
#ifndef VSS_CLIENT_H
#define VSS_CLIENT_H

#include <stdint.h>

#include <jansson.h>

#include <vss/error.h>

#ifdef __cplusplus
extern "C" {
#endif

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

/* The connection's socket (the writer library reads events from it). */
int vss_client_fd(const struct vss_client *c);

/*
 * Sends one request and waits for its reply.  Steals @args (NULL: no
 * arguments).  On success *@result is a new reference the caller releases
 * with json_decref().  On failure returns the daemon's negative errno with
 * its message in @err, or -EPIPE/-ECONNRESET/-EPROTO when the connection
 * itself failed.
 */
int vss_client_call(struct vss_client *c, const char *op, json_t *args,
		    json_t **result, struct vss_error *err);

/*
 * Parses a size as the command line takes it: plain bytes, or a number
 * followed by K, M, G or T (powers of 1024; "KiB" and "KB" are read the
 * same).  Returns 0, or -EINVAL (not a size) or -ERANGE (too large).
 */
int vss_parse_size(const char *s, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
