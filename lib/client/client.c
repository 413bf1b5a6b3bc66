/*
 * client/client.c - a connection to vssd (vss/client.h, and with jansson
 * values client/client_json.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/client_json.h"
#include "proto/proto.h"

struct vss_client {
	int fd;
	uint64_t next_id;
};

const char *vss_client_run_dir(const char *explicit_dir)
{
	const char *env;

	if (explicit_dir && *explicit_dir)
		return explicit_dir;
	env = getenv("VSS_RUN_DIR");
	if (env && *env)
		return env;
	return VSS_DEFAULT_RUN_DIR;
}

int vss_client_open(const char *run_dir, struct vss_client **out,
		    struct vss_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vss_client *c;
	int fd, rc;

	*out = NULL;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vssd.sock",
			     run_dir) >= sizeof(sa.sun_path))
		return vss_error_set(err, -ENAMETOOLONG,
				     "socket path %s/vssd.sock is too long", run_dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vss_error_set(err, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		close(fd);
		return vss_error_set(err, rc, "cannot reach vssd at %s: %s",
				     sa.sun_path, strerror(-rc));
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	c->fd = fd;
	c->next_id = 1;
	*out = c;
	return 0;
}

void vss_client_close(struct vss_client *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

int vss_client_fd(const struct vss_client *c)
{
	return c->fd;
}

/* Replies take up to VSS_PROTO_MAX_REPLY bytes, in as many frames as they need. */
static const struct vss_proto_opts reply_opts = { .max_message = VSS_PROTO_MAX_REPLY };

int vss_client_call_json(struct vss_client *c, const char *op, json_t *args,
			 json_t **result, struct vss_error *err)
{
	uint64_t id = c->next_id++;
	json_t *req = vss_proto_request(id, op, args);
	json_t *reply = NULL, *res;
	int rc;

	*result = NULL;
	rc = vss_proto_send(c->fd, req);
	json_decref(req);
	if (rc < 0) {
		/*
		 * vssd may have refused this connection (too many from this
		 * user) or closed it (idle, or a request too large) before
		 * reading our request; its reason is waiting to be read.
		 */
		struct vss_error rerr = { 0 };

		if (vss_proto_recv_opts(c->fd, &reply_opts, &reply, &rerr) < 0 || !reply)
			return vss_error_set(err, rc, "cannot send to vssd: %s", strerror(-rc));
	} else {
		rc = vss_proto_recv_opts(c->fd, &reply_opts, &reply, err);
		if (rc < 0)
			return rc;
		if (!reply)
			return vss_error_set(err, -ECONNRESET, "vssd closed the connection");
	}
	rc = vss_proto_reply_parse(reply, &res, err);
	if (rc == 0)
		*result = json_incref(res);
	json_decref(reply);
	return rc;
}

int vss_client_call(struct vss_client *c, const char *op, const char *args_json,
		    char **result_json, size_t *len, struct vss_error *err)
{
	json_t *args = NULL, *res;
	json_error_t jerr;
	int rc;

	*result_json = NULL;
	if (len)
		*len = 0;
	if (args_json && *args_json) {
		args = json_loads(args_json, JSON_REJECT_DUPLICATES, &jerr);
		if (!args)
			return vss_error_set(err, -EINVAL, "%s: the arguments are not JSON: %s",
					     op, jerr.text);
		if (!json_is_object(args)) {
			json_decref(args);
			return vss_error_set(err, -EINVAL, "%s: the arguments are not a JSON "
					     "object", op);
		}
	}
	rc = vss_client_call_json(c, op, args, &res, err);
	if (rc < 0)
		return rc;
	*result_json = json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(res);
	if (!*result_json)
		return vss_error_set(err, -ENOMEM, "out of memory");
	if (len)
		*len = strlen(*result_json);
	return 0;
}
