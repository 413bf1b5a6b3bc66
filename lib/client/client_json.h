/*
 * client/client_json.h - the client's calls with jansson values, for the
 * libraries above it (writer, requester) and the command line; not
 * installed.  vss/client.h is the same connection with JSON as text.
 */
#ifndef VSS_CLIENT_JSON_H
#define VSS_CLIENT_JSON_H

#include <jansson.h>

#include <vss/client.h>

/*
 * vss_client_call() with values: steals @args (NULL: no arguments).  On
 * success *@result is a new reference the caller releases with
 * json_decref(); on failure NULL, with the errors of vss_client_call().
 */
int vss_client_call_json(struct vss_client *c, const char *op, json_t *args,
			 json_t **result, struct vss_error *err);

/* The connection's socket (the writer library reads events from it). */
int vss_client_fd(const struct vss_client *c);

#endif
