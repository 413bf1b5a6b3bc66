/*
 * writer/writer.c - the writer side of the control protocol (vss/writer.h):
 * register with the metadata document, then answer events.  The wire is
 * doc/protocol.md ("Writers"); the service side is service/writers.c.
 *
 * The library follows the sequence in flight (in_backup, in_set, frozen,
 * in_restore) so that losing vssd, or a vssd that never thaws, ends in the
 * abort handler rather than in a writer frozen for good (vss/writer.h,
 * "Losing vssd"), and a writer that let go of its data for a restore gets
 * it back.  What a restore event carries ("restore" of its arguments:
 * doc/protocol.md) is read by vss_writer_restore_*() while its handler
 * runs; pre_restore's is kept for an abort that ends the restore.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <vss/writer.h>

#include "client/client_json.h"
#include "proto/proto.h"
#include "util/struct_in.h"
#include "writer/writer_doc_i.h"

#define RETRY_FIRST_MS 100u
#define RETRY_MAX_MS   5000u

struct vss_writer {
	struct vss_client *client;      /* NULL while disconnected */
	int fd;                         /* -1 while disconnected */
	struct vss_writer_handlers h;   /* the caller's, copied */
	void *data;
	char *doc;                      /* the metadata document, to register again */
	bool doc_new;                   /* doc changed: sent with the next identify's reply */
	char *run_dir;
	unsigned int timeout_ms;
	bool reconnect;
	char waiting[VSS_ERROR_MSG_MAX]; /* opened before vssd was up: why; "" once run */
	void (*on_connection)(struct vss_writer *w, bool connected, const char *why,
			      void *data);
	/* The sequence in flight. */
	bool in_backup;                 /* prepare_backup answered, no backup_complete/abort */
	bool in_set;                    /* prepare_snapshot seen, the set not ended */
	bool frozen;                    /* freeze answered with success, no thaw/abort */
	bool gave_up;                   /* the watchdog ended a freeze vssd never thawed */
	bool in_restore;                /* pre_restore seen, no post_restore/abort yet */
	json_t *restore;                /* in_restore: pre_restore's "restore" (owned) */
	json_t *cur_restore;            /* the handler's event's, borrowed; else NULL */
	uint64_t thaw_by_ms;            /* frozen: when the watchdog gives up */
	unsigned int window_ms;         /* of that freeze */
	char set_id[64];                /* the last set named by an event */
	enum vss_writer_failure fail_kind;
	char fail_msg[VSS_ERROR_MSG_MAX];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

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
	{ "backup_shutdown", VSS_WE_BACKUP_SHUTDOWN },
	{ "pre_restore", VSS_WE_PRE_RESTORE },
	{ "post_restore", VSS_WE_POST_RESTORE },
};

static const char *const type_names[] = {
	"", "full", "incremental", "differential", "log", "copy",
};

/* Connects and registers w->doc; 0 or -errno with @err filled. */
static int connect_and_register(struct vss_writer *w, struct vss_error *err)
{
	struct vss_client *c;
	json_t *res = NULL;
	int rc = vss_client_open(w->run_dir, &c, err);

	if (rc < 0)
		return rc;
	rc = vss_client_call_json(c, "writer.register",
			     json_pack("{s:s, s:I}", "metadata", w->doc, "timeout_ms",
				       (json_int_t)w->timeout_ms),
			     &res, err);
	if (rc < 0) {
		vss_client_close(c);
		return rc;
	}
	json_decref(res);
	w->client = c;
	w->fd = vss_client_fd(c);
	return 0;
}

/* vssd is not there (yet, or any more), as opposed to refusing the writer. */
static bool unreachable(int rc)
{
	return rc == -ENOENT || rc == -ECONNREFUSED || rc == -ECONNRESET || rc == -EPIPE;
}

static void disconnect(struct vss_writer *w)
{
	vss_client_close(w->client);
	w->client = NULL;
	w->fd = -1;
}

int vss_writer_open(const struct vss_writer_options *opt, const struct vss_wmd *wmd,
		    const struct vss_writer_handlers *h, void *data,
		    struct vss_writer **out, struct vss_error *err)
{
	struct vss_writer_options o = VSS_WRITER_OPTIONS_INIT;
	struct vss_writer *w;
	int rc;

	*out = NULL;
	/* The caller's structs may be older or newer than ours. */
	if (opt && (rc = vss_struct_in(&o, sizeof(o), opt, opt->size,
				       VSS_SIZE_TO(struct vss_writer_options, on_connection),
				       "struct vss_writer_options", err)) < 0)
		return rc;
	if (!(w = calloc(1, sizeof(*w))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	w->fd = -1;
	if (h && (rc = vss_struct_in(&w->h, sizeof(w->h), h, h->size,
				     VSS_SIZE_TO(struct vss_writer_handlers, abort),
				     "struct vss_writer_handlers", err)) < 0)
		goto fail;
	if ((rc = vss_wmd_serialize(wmd, &w->doc, NULL, err)) < 0)
		goto fail;
	w->run_dir = strdup(vss_client_run_dir(o.run_dir));
	if (!w->run_dir) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	w->data = data;
	w->timeout_ms = o.timeout_ms ? o.timeout_ms : 60000;
	w->reconnect = o.reconnect;
	w->on_connection = o.on_connection;
	if ((rc = connect_and_register(w, err)) < 0) {
		if (!w->reconnect || !unreachable(rc))
			goto fail;
		/* Started before vssd: vss_writer_run() registers once it is up. */
		snprintf(w->waiting, sizeof(w->waiting), "%s", err ? err->msg : strerror(-rc));
		if (err)
			vss_error_clear(err);
	}
	*out = w;
	return 0;
fail:
	free(w->doc);
	free(w->run_dir);
	free(w);
	return rc;
}

void vss_writer_close(struct vss_writer *w)
{
	if (!w)
		return;
	vss_client_close(w->client);
	json_decref(w->restore);
	free(w->doc);
	free(w->run_dir);
	free(w);
}

int vss_writer_fd(const struct vss_writer *w)
{
	return w->fd;
}

int vss_writer_set_metadata(struct vss_writer *w, const struct vss_wmd *wmd,
			    struct vss_error *err)
{
	struct vss_wmd *old = NULL;
	struct vss_wmd_identity a, b;
	char *doc;
	int rc;

	if ((rc = vss_wmd_serialize(wmd, &doc, NULL, err)) < 0)
		return rc;
	if ((rc = vss_wmd_parse(w->doc, strlen(w->doc), 0, &old, err)) < 0) {
		free(doc);
		return rc;
	}
	vss_wmd_identity(old, &a);
	vss_wmd_identity(wmd, &b);
	if (strcasecmp(a.class_id, b.class_id) || strcasecmp(a.instance_id, b.instance_id))
		rc = vss_error_set(err, -EINVAL, "the metadata of a writer keeps its class and "
				   "instance IDs");
	vss_wmd_free(old);
	if (rc < 0) {
		free(doc);
		return rc;
	}
	free(w->doc);
	w->doc = doc;
	w->doc_new = true;
	return 0;
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

static void sequence_clear(struct vss_writer *w)
{
	w->in_backup = w->in_set = w->frozen = w->in_restore = false;
	json_decref(w->restore);
	w->restore = NULL;
}

/* Runs the abort handler for the sequence in flight, as vssd would have
 * sent it, and forgets the sequence. */
static void abort_in_flight(struct vss_writer *w, const char *reason)
{
	struct vss_writer_event ev = {
		.type = VSS_WE_ABORT, .name = "abort",
		.set_id = w->set_id[0] ? w->set_id : NULL, .reason = reason,
	};
	json_t *restore = w->in_restore ? json_incref(w->restore) : NULL;

	sequence_clear(w);
	w->cur_restore = restore;
	if (w->h.abort)
		w->h.abort(w, &ev, w->data);
	w->cur_restore = NULL;
	json_decref(restore);
}

/* The connection is gone: a sequence in flight is abandoned. */
static int lost(struct vss_writer *w, struct vss_error *err)
{
	if (w->in_backup || w->in_set || w->frozen || w->in_restore)
		abort_in_flight(w, "vssd went away: the connection closed");
	w->gave_up = false;
	return vss_error_set(err, -ECONNRESET, "vssd closed the connection");
}

/* After the handler of @ev answered @rc: what is in flight now. */
static void sequence_after(struct vss_writer *w, const struct vss_writer_event *ev, int rc)
{
	switch (ev->type) {
	case VSS_WE_IDENTIFY:
		break;
	case VSS_WE_PREPARE_BACKUP:
		w->in_backup = rc == 0;
		break;
	case VSS_WE_PREPARE_SNAPSHOT:
		w->in_set = true;     /* a failure here is followed by abort */
		break;
	case VSS_WE_FREEZE:
		w->in_set = true;
		w->frozen = rc == 0;
		w->window_ms = ev->timeout_ms ? ev->timeout_ms : w->timeout_ms;
		w->thaw_by_ms = now_ms() + w->window_ms + VSS_WRITER_THAW_GRACE_MS;
		break;
	case VSS_WE_THAW:
		w->frozen = false;
		break;
	case VSS_WE_POST_SNAPSHOT:
		if (!w->in_backup)
			w->in_set = false;
		break;
	case VSS_WE_BACKUP_COMPLETE:
	case VSS_WE_ABORT:
	case VSS_WE_BACKUP_SHUTDOWN:
	case VSS_WE_POST_RESTORE:
		sequence_clear(w);
		break;
	case VSS_WE_PRE_RESTORE:
		/* A failure here is followed by abort too: the writer may have
		 * let go of part of its data before it failed. */
		w->in_restore = true;
		break;
	}
}

/* The watchdog: a freeze nobody thawed within its window is given up. */
static void watchdog(struct vss_writer *w)
{
	char why[128];

	if (!w->frozen || now_ms() < w->thaw_by_ms)
		return;
	snprintf(why, sizeof(why), "no thaw within the freeze window of %u ms; "
		 "vssd may be stuck", w->window_ms);
	abort_in_flight(w, why);
	w->gave_up = true;
}

int vss_writer_dispatch(struct vss_writer *w, struct vss_error *err)
{
	struct vss_writer_event ev = { 0 };
	json_t *msg = NULL, *args, *id, *result = NULL;
	vss_writer_handler fn = NULL;
	const char *name, *type, *comps;
	int rc;

	if (w->fd < 0)
		return vss_error_set(err, -ECONNRESET, "not connected to vssd");
	rc = vss_proto_recv(w->fd, &msg, err);
	if (rc == -EBADMSG)
		return 0;
	if (rc < 0 || !msg)
		return lost(w, err);
	id = json_object_get(msg, "id");
	args = json_object_get(msg, "args");
	name = json_string_value(json_object_get(msg, "event"));
	for (size_t i = 0; name && i < sizeof(event_names) / sizeof(event_names[0]); i++)
		if (strcmp(name, event_names[i].name) == 0)
			ev.type = event_names[i].type;
	if (!ev.type) {
		rc = send_reply(w, vss_proto_reply_error(id, -ENOSYS, "unknown event"));
		json_decref(msg);
		return rc < 0 ? lost(w, err) : 0;
	}
	ev.name = name;
	ev.set_id = json_string_value(json_object_get(args, "set"));
	if (ev.set_id && !*ev.set_id)
		ev.set_id = NULL;
	if (ev.set_id)
		snprintf(w->set_id, sizeof(w->set_id), "%s", ev.set_id);
	else if (ev.type == VSS_WE_IDENTIFY || ev.type == VSS_WE_PREPARE_BACKUP ||
		 ev.type == VSS_WE_PREPARE_SNAPSHOT || ev.type == VSS_WE_PRE_RESTORE)
		w->set_id[0] = '\0';      /* a new sequence, its set not named yet */
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
	case VSS_WE_IDENTIFY: fn = w->h.identify; break;
	case VSS_WE_PREPARE_BACKUP: fn = w->h.prepare_backup; break;
	case VSS_WE_PREPARE_SNAPSHOT: fn = w->h.prepare_snapshot; break;
	case VSS_WE_FREEZE: fn = w->h.freeze; break;
	case VSS_WE_THAW: fn = w->h.thaw; break;
	case VSS_WE_POST_SNAPSHOT: fn = w->h.post_snapshot; break;
	case VSS_WE_BACKUP_COMPLETE: fn = w->h.backup_complete; break;
	case VSS_WE_ABORT: fn = w->h.abort; break;
	case VSS_WE_BACKUP_SHUTDOWN: fn = w->h.backup_shutdown; break;
	case VSS_WE_PRE_RESTORE: fn = w->h.pre_restore; break;
	case VSS_WE_POST_RESTORE: fn = w->h.post_restore; break;
	}
	/* What vss_writer_restore_*() read: the event's own, or for an abort
	 * that ends a restore, what its pre_restore said. */
	if (ev.type == VSS_WE_PRE_RESTORE || ev.type == VSS_WE_POST_RESTORE)
		w->cur_restore = json_object_get(args, "restore");
	else if (ev.type == VSS_WE_ABORT && w->in_restore)
		w->cur_restore = w->restore;
	if (ev.type == VSS_WE_PRE_RESTORE && w->cur_restore) {
		json_decref(w->restore);
		w->restore = json_incref(w->cur_restore);
	}
	w->fail_kind = 0;
	w->fail_msg[0] = '\0';
	if (w->gave_up && ev.type == VSS_WE_THAW) {
		/* The abort handler ran already: the freeze is not held. */
		vss_writer_set_failure(w, VSS_WF_TIMEOUT, "the writer gave up its freeze: no "
				       "thaw within the freeze window of %u ms", w->window_ms);
		rc = -ETIMEDOUT;
	} else if (w->gave_up && ev.type == VSS_WE_ABORT) {
		rc = 0;         /* nor run twice */
	} else {
		rc = fn ? fn(w, &ev, w->data) : 0;
	}
	w->cur_restore = NULL;
	if (ev.type != VSS_WE_THAW && ev.type != VSS_WE_POST_SNAPSHOT)
		w->gave_up = false;
	sequence_after(w, &ev, rc);
	if (rc < 0) {
		json_t *reply = vss_proto_reply_error(id, rc, w->fail_msg[0] ? w->fail_msg
						      : strerror(-rc));
		/* VSS_WF_NONE, or a kind this library does not know. */
		const char *kind = w->fail_kind ? vss_writer_failure_name(w->fail_kind) : NULL;

		json_object_set_new(json_object_get(reply, "error"), "kind",
				    json_string(kind ? kind : "nonretryable"));
		rc = send_reply(w, reply);
	} else {
		result = json_object();
		/* A metadata document set since the last identify refreshes the
		 * one vssd has (vss_writer_set_metadata). */
		if (ev.type == VSS_WE_IDENTIFY && w->doc_new) {
			json_object_set_new(result, "metadata", json_string(w->doc));
			w->doc_new = false;
		}
		if ((ev.type == VSS_WE_PREPARE_BACKUP || ev.type == VSS_WE_POST_SNAPSHOT) &&
		    ev.components) {
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
		return lost(w, err);
	return 0;
}

static void notify(struct vss_writer *w, bool up, const char *why)
{
	if (w->on_connection)
		w->on_connection(w, up, why, w->data);
}

/* Sleeps @ms in slices, returning early once *@stop is set; true if set. */
static bool nap(unsigned int ms, volatile sig_atomic_t *stop)
{
	while (ms && (!stop || !*stop)) {
		unsigned int step = ms < 100 ? ms : 100;

		poll(NULL, 0, (int)step);
		ms -= step;
	}
	return stop && *stop;
}

/* Registers again after a lost connection: 0 once registered, 1 if
 * stopped first.  Says so through on_connection. */
static int register_again(struct vss_writer *w, volatile sig_atomic_t *stop,
			  const char *why, const char *done)
{
	char last[VSS_ERROR_MSG_MAX];
	unsigned int delay = RETRY_FIRST_MS;

	disconnect(w);
	snprintf(last, sizeof(last), "%s", why);
	notify(w, false, last);
	while (!nap(delay, stop)) {
		struct vss_error e = { 0 };

		if (connect_and_register(w, &e) == 0) {
			notify(w, true, done);
			return 0;
		}
		if (strcmp(e.msg, last) != 0) {
			snprintf(last, sizeof(last), "%s", e.msg);
			notify(w, false, last);
		}
		delay = delay * 2 < RETRY_MAX_MS ? delay * 2 : RETRY_MAX_MS;
	}
	return 1;
}

int vss_writer_run(struct vss_writer *w, volatile sig_atomic_t *stop,
		   struct vss_error *err)
{
	if (w->waiting[0]) {
		int stopped = register_again(w, stop, w->waiting, "registered");

		w->waiting[0] = '\0';
		if (stopped)
			return 0;
	}
	while (!stop || !*stop) {
		struct pollfd p = { w->fd, POLLIN, 0 };
		int timeout = 200, rc;

		if (w->frozen) {
			uint64_t now = now_ms();

			if (w->thaw_by_ms <= now)
				timeout = 0;
			else if (w->thaw_by_ms - now < (uint64_t)timeout)
				timeout = (int)(w->thaw_by_ms - now);
		}
		rc = poll(&p, 1, timeout);
		if (rc < 0 && errno != EINTR)
			return vss_error_set(err, -errno, "poll: %s", strerror(errno));
		/* An event that arrived in time is answered before the
		 * watchdog looks. */
		if (rc > 0 && (rc = vss_writer_dispatch(w, err)) < 0) {
			if (rc != -ECONNRESET || !w->reconnect)
				return rc;
			if (register_again(w, stop, err->msg, "registered again"))
				break;
			vss_error_clear(err);
		}
		watchdog(w);
	}
	return 0;
}

/* ---- what a restore event says (vss_writer_restore_*) ---- */

int vss_writer_restore_info(const struct vss_writer *w,
			    struct vss_writer_restore_info *out)
{
	json_t *r = w->cur_restore, *to;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(r))
		return -ENOENT;
	to = json_object_get(r, "to");
	out->backup_id = json_string_value(json_object_get(r, "backup"));
	out->to = json_is_string(to) ? json_string_value(to) : NULL;
	out->component_count = json_array_size(json_object_get(r, "components"));
	return 0;
}

static json_t *restore_component(const struct vss_writer *w, size_t i)
{
	return json_array_get(json_object_get(w->cur_restore, "components"), i);
}

int vss_writer_restore_component(const struct vss_writer *w, size_t i,
				 struct vss_writer_restore_component *out)
{
	json_t *c = restore_component(w, i), *msg;
	int status;

	memset(out, 0, sizeof(*out));
	if (!w->cur_restore)
		return -ENOENT;
	if (!json_is_object(c))
		return -ERANGE;
	out->logical_path = json_string_value(json_object_get(c, "logical_path"));
	if (!out->logical_path)
		out->logical_path = "";
	out->name = json_string_value(json_object_get(c, "name"));
	out->method = (enum vss_restore_method)doc_value_of(
		doc_restore_method_names, json_string_value(json_object_get(c, "method")));
	out->original_location = json_is_true(json_object_get(c, "original_location"));
	out->location_count = json_array_size(json_object_get(c, "locations"));
	status = vss_file_restore_status_from_name(json_string_value(json_object_get(c,
										      "status")));
	out->status = status > 0 ? (enum vss_file_restore_status)status : VSS_RS_UNDEFINED;
	out->files = (unsigned long long)json_integer_value(json_object_get(c, "files"));
	msg = json_object_get(c, "message");
	out->message = json_is_string(msg) ? json_string_value(msg) : NULL;
	return 0;
}

int vss_writer_restore_location(const struct vss_writer *w, size_t i, size_t j,
				struct vss_wmd_file_spec *out)
{
	json_t *c = restore_component(w, i), *l;

	memset(out, 0, sizeof(*out));
	if (!w->cur_restore)
		return -ENOENT;
	l = json_array_get(json_object_get(c, "locations"), j);
	if (!json_is_object(l))
		return -ERANGE;
	out->path = json_string_value(json_object_get(l, "path"));
	out->file_spec = json_string_value(json_object_get(l, "file_spec"));
	out->recursive = json_is_true(json_object_get(l, "recursive"));
	out->destination = json_string_value(json_object_get(l, "destination"));
	return 0;
}
