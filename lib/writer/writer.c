/*
 * writer/writer.c - the writer side of the control protocol (vss/writer.h):
 * register with the metadata document, then answer events.  The wire is
 * doc/protocol.md ("Writers"); the service side is service/writers.c.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vss/client.h>
#include <vss/writer.h>

#include "proto/proto.h"

struct vss_writer {
	struct vss_client *client;
	int fd;
	const struct vss_writer_handlers *h;
	void *data;
	enum vss_writer_failure fail_kind;
	char fail_msg[VSS_ERROR_MSG_MAX];
};

static const struct {
	const char *name;
	enum vss_writer_event_type type;
} event_names[] = {
	{ "identify", VSS_WE_IDENTIFY },
	{ "prepare_backup", VSS_WE_PREPARE_BACKUP },
	{ "prepare_snapshot", VSS_WE_PREPARE_SNAPSHOT },
	{ "freeze", VSS_WE_FREEZE },
	{ "thaw", VSS_WE_THAW },
	{ "post_snapshot", VSS_WE_POST_SNAPSHOT },
	{ "backup_complete", VSS_WE_BACKUP_COMPLETE },
	{ "abort", VSS_WE_ABORT },
};

static const char *const kind_names[] = {
	[VSS_WF_RETRYABLE] = "retryable",
	[VSS_WF_NONRETRYABLE] = "nonretryable",
	[VSS_WF_TIMEOUT] = "timeout",
	[VSS_WF_INCONSISTENT_SNAPSHOT] = "inconsistent_snapshot",
	[VSS_WF_OUT_OF_RESOURCES] = "out_of_resources",
};

static const char *const type_names[] = {
	"", "full", "incremental", "differential", "log", "copy",
};

int vss_writer_open(const struct vss_writer_options *opt, const struct vss_wmd *wmd,
		    const struct vss_writer_handlers *h, void *data,
		    struct vss_writer **out, struct vss_error *err)
{
	static const struct vss_writer_handlers none;
	struct vss_writer *w;
	json_t *res = NULL;
	char *doc;
	int rc;

	*out = NULL;
	if ((rc = vss_wmd_serialize(wmd, &doc, NULL, err)) < 0)
		return rc;
	if (!(w = calloc(1, sizeof(*w)))) {
		free(doc);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	w->h = h ? h : &none;
	w->data = data;
	rc = vss_client_open(vss_client_run_dir(opt ? opt->run_dir : NULL), &w->client, err);
	if (rc < 0)
		goto fail;
	rc = vss_client_call(w->client, "writer.register",
			     json_pack("{s:s, s:I}", "metadata", doc, "timeout_ms",
				       (json_int_t)(opt && opt->timeout_ms ? opt->timeout_ms
							    : 60000)),
			     &res, err);
	if (rc < 0)
		goto fail;
	json_decref(res);
	free(doc);
	w->fd = vss_client_fd(w->client);
	*out = w;
	return 0;
fail:
	free(doc);
	vss_client_close(w->client);
	free(w);
	return rc;
}

void vss_writer_close(struct vss_writer *w)
{
	if (!w)
		return;
	vss_client_close(w->client);
	free(w);
}

int vss_writer_fd(const struct vss_writer *w)
{
	return w->fd;
}

void vss_writer_set_failure(struct vss_writer *w, enum vss_writer_failure kind,
			    const char *fmt, ...)
{
	va_list ap;

	w->fail_kind = kind;
	va_start(ap, fmt);
	vsnprintf(w->fail_msg, sizeof(w->fail_msg), fmt, ap);
	va_end(ap);
}

static int send_reply(struct vss_writer *w, json_t *reply)
{
	int rc = vss_proto_send(w->fd, reply);

	json_decref(reply);
	return rc;
}

int vss_writer_dispatch(struct vss_writer *w, struct vss_error *err)
{
	struct vss_writer_event ev = { 0 };
	json_t *msg = NULL, *args, *id, *result = NULL;
	vss_writer_handler fn = NULL;
	const char *name, *type, *comps;
	int rc;

	rc = vss_proto_recv(w->fd, &msg, err);
	if (rc == -EBADMSG)
		return 0;
	if (rc < 0 || !msg)
		return vss_error_set(err, -ECONNRESET, "vssd closed the connection");
	id = json_object_get(msg, "id");
	args = json_object_get(msg, "args");
	name = json_string_value(json_object_get(msg, "event"));
	for (size_t i = 0; name && i < sizeof(event_names) / sizeof(event_names[0]); i++)
		if (strcmp(name, event_names[i].name) == 0)
			ev.type = event_names[i].type;
	if (!ev.type) {
		rc = send_reply(w, vss_proto_reply_error(id, -ENOSYS, "unknown event"));
		json_decref(msg);
		return rc < 0 ? vss_error_set(err, -ECONNRESET, "vssd closed the connection") : 0;
	}
	ev.name = name;
	ev.set_id = json_string_value(json_object_get(args, "set"));
	if (ev.set_id && !*ev.set_id)
		ev.set_id = NULL;
	ev.reason = json_string_value(json_object_get(args, "reason"));
	type = json_string_value(json_object_get(args, "backup_type"));
	for (int t = 1; type && t <= 5; t++)
		if (strcmp(type, type_names[t]) == 0)
			ev.backup_type = t;
	ev.timeout_ms = (unsigned int)json_integer_value(json_object_get(args, "window_ms"));
	comps = json_string_value(json_object_get(args, "components"));
	if (comps && vss_bcd_parse(comps, strlen(comps), 0, &ev.components, NULL) < 0)
		ev.components = NULL;
	switch (ev.type) {
	case VSS_WE_IDENTIFY: fn = w->h->identify; break;
	case VSS_WE_PREPARE_BACKUP: fn = w->h->prepare_backup; break;
	case VSS_WE_PREPARE_SNAPSHOT: fn = w->h->prepare_snapshot; break;
	case VSS_WE_FREEZE: fn = w->h->freeze; break;
	case VSS_WE_THAW: fn = w->h->thaw; break;
	case VSS_WE_POST_SNAPSHOT: fn = w->h->post_snapshot; break;
	case VSS_WE_BACKUP_COMPLETE: fn = w->h->backup_complete; break;
	case VSS_WE_ABORT: fn = w->h->abort; break;
	}
	w->fail_kind = 0;
	w->fail_msg[0] = '\0';
	rc = fn ? fn(w, &ev, w->data) : 0;
	if (rc < 0) {
		json_t *reply = vss_proto_reply_error(id, rc, w->fail_msg[0] ? w->fail_msg
						      : strerror(-rc));

		json_object_set_new(json_object_get(reply, "error"), "kind",
				    json_string(kind_names[w->fail_kind ? w->fail_kind
							   : VSS_WF_NONRETRYABLE]));
		rc = send_reply(w, reply);
	} else {
		result = json_object();
		if (ev.type == VSS_WE_PREPARE_BACKUP && ev.components) {
			char *text;

			if (vss_bcd_serialize(ev.components, &text, NULL, err) == 0) {
				json_object_set_new(result, "components", json_string(text));
				free(text);
			}
		}
		rc = send_reply(w, vss_proto_reply_ok(id, result));
	}
	vss_bcd_free(ev.components);
	json_decref(msg);
	if (rc < 0)
		return vss_error_set(err, -ECONNRESET, "vssd closed the connection");
	return 0;
}

int vss_writer_run(struct vss_writer *w, volatile sig_atomic_t *stop,
		   struct vss_error *err)
{
	while (!stop || !*stop) {
		struct pollfd p = { w->fd, POLLIN, 0 };
		int rc = poll(&p, 1, 200);

		if (rc < 0 && errno != EINTR)
			return vss_error_set(err, -errno, "poll: %s", strerror(errno));
		if (rc <= 0)
			continue;
		if ((rc = vss_writer_dispatch(w, err)) < 0)
			return rc;
	}
	return 0;
}
