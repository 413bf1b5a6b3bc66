/*
 * service/writers.c - the writer registry: who is registered, in which VSS
 * state, and the one way to talk to a writer (svc_writer_call: an event
 * frame, then its answer within a deadline).
 *
 * A writer is a connection that sent "writer.register" with its metadata
 * document.  After the reply, server.c hands the socket over here and stops
 * reading it; from then on the daemon speaks first (events) and the writer
 * answers.  Only the holder of the backup slot (backup.c) sends events, one
 * writer at a time, so a writer's socket has one reader and one writer.
 *
 * Lifetime: a writer is freed only by svc_writers_prune (the slot holder) or
 * at stop, so the slot holder's pointers stay valid while it works.  A writer
 * whose connection fails is marked gone: it is failed if it was in a backup,
 * never waited for, and pruned at the next backup.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "service/log.h"
#include "service/service_i.h"
#include "service/writers.h"

static const char *const state_names[] = {
	"unknown", "stable", "waiting_for_freeze", "waiting_for_thaw",
	"waiting_for_post_snapshot", "waiting_for_backup_complete",
	"failed_at_identify", "failed_at_prepare_backup", "failed_at_prepare_snapshot",
	"failed_at_freeze", "failed_at_thaw", "failed_at_post_snapshot",
	"failed_at_backup_complete", "failed_at_pre_restore", "failed_at_post_restore",
	"failed_at_backup_shutdown",
};

static const struct {
	const char *name;
	int failed_state;
} events[] = {
	[EV_IDENTIFY] = { "identify", WS_FAILED_AT_IDENTIFY },
	[EV_PREPARE_BACKUP] = { "prepare_backup", WS_FAILED_AT_PREPARE_BACKUP },
	[EV_PREPARE_SNAPSHOT] = { "prepare_snapshot", WS_FAILED_AT_PREPARE_SNAPSHOT },
	[EV_FREEZE] = { "freeze", WS_FAILED_AT_FREEZE },
	[EV_THAW] = { "thaw", WS_FAILED_AT_THAW },
	[EV_POST_SNAPSHOT] = { "post_snapshot", WS_FAILED_AT_POST_SNAPSHOT },
	[EV_BACKUP_COMPLETE] = { "backup_complete", WS_FAILED_AT_BACKUP_COMPLETE },
	[EV_ABORT] = { "abort", WS_STABLE },
};

/* The failure kinds a writer may report (VSS_E_WRITERERROR_*). */
static const char *const failure_kinds[] = {
	"retryable", "nonretryable", "timeout", "inconsistent_snapshot",
	"out_of_resources", NULL,
};

const char *svc_event_name(enum svc_wevent ev)
{
	return events[ev].name;
}

const char *svc_writer_state_name(int state)
{
	if (state < 0 || state >= (int)(sizeof(state_names) / sizeof(state_names[0])))
		return "unknown";
	return state_names[state];
}

int svc_writers_init(struct vss_service *svc, struct vss_error *err)
{
	struct svc_writer_registry *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return vss_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&reg->lock, NULL);
	pthread_cond_init(&reg->slot_cond, NULL);
	svc->wreg = reg;
	return 0;
}

static void writer_free(struct svc_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	vss_wmd_free(w->wmd);
	free(w->metadata);
	free(w);
}

void svc_writers_shutdown(struct vss_service *svc)
{
	struct svc_writer_registry *reg = svc->wreg;

	if (!reg)
		return;
	pthread_mutex_lock(&reg->lock);
	for (struct svc_writer *w = reg->list; w; w = w->next)
		if (w->fd >= 0)
			shutdown(w->fd, SHUT_RDWR);
	pthread_mutex_unlock(&reg->lock);
}

void svc_writers_free(struct vss_service *svc)
{
	struct svc_writer_registry *reg = svc->wreg;

	if (!reg)
		return;
	while (reg->list) {
		struct svc_writer *w = reg->list;

		reg->list = w->next;
		writer_free(w);
	}
	pthread_mutex_destroy(&reg->lock);
	pthread_cond_destroy(&reg->slot_cond);
	free(reg);
	svc->wreg = NULL;
}

/* Is an idle writer's connection closed?  Bytes waiting are a late answer to
 * an event that timed out (svc_writer_call skips it), not a disconnection.
 * reg->lock held. */
static void check_idle(struct svc_writer *w)
{
	struct pollfd p = { w->fd, POLLIN | POLLRDHUP, 0 };
	char byte;

	if (w->gone || w->busy || w->fd < 0)
		return;
	if (poll(&p, 1, 0) != 1 || !p.revents)
		return;
	if (!(p.revents & (POLLRDHUP | POLLHUP | POLLERR)) &&
	    recv(w->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
		return;
	w->gone = true;
	vss_log("writer %s (%s) disconnected", w->name, w->instance_id);
}

int svc_writers_count(struct vss_service *svc)
{
	struct svc_writer_registry *reg = svc->wreg;
	int n = 0;

	pthread_mutex_lock(&reg->lock);
	for (struct svc_writer *w = reg->list; w; w = w->next) {
		check_idle(w);
		n += !w->gone;
	}
	pthread_mutex_unlock(&reg->lock);
	return n;
}

void svc_writer_activate(struct vss_service *svc, void *writer, int fd)
{
	struct svc_writer *w = writer;

	pthread_mutex_lock(&svc->wreg->lock);
	w->fd = fd;
	pthread_mutex_unlock(&svc->wreg->lock);
}

size_t svc_writers_snapshot(struct vss_service *svc, struct svc_writer **out, size_t max)
{
	struct svc_writer_registry *reg = svc->wreg;
	size_t n = 0;

	pthread_mutex_lock(&reg->lock);
	for (struct svc_writer *w = reg->list; w && n < max; w = w->next) {
		check_idle(w);
		if (!w->gone && w->fd >= 0)
			out[n++] = w;
	}
	pthread_mutex_unlock(&reg->lock);
	return n;
}

void svc_writers_prune(struct vss_service *svc)
{
	struct svc_writer_registry *reg = svc->wreg;

	pthread_mutex_lock(&reg->lock);
	for (struct svc_writer **pp = &reg->list; *pp;) {
		struct svc_writer *w = *pp;

		check_idle(w);
		if (w->gone) {
			*pp = w->next;
			writer_free(w);
			continue;
		}
		/* A failed writer is stable again for the next backup. */
		if (w->state != WS_STABLE) {
			w->state = WS_STABLE;
			w->error_kind[0] = '\0';
		}
		pp = &w->next;
	}
	pthread_mutex_unlock(&reg->lock);
}

void svc_writer_set_state(struct vss_service *svc, struct svc_writer *w, int state,
			  const char *kind, const char *msg)
{
	pthread_mutex_lock(&svc->wreg->lock);
	w->state = state;
	if (kind) {
		snprintf(w->error_kind, sizeof(w->error_kind), "%s", kind);
		snprintf(w->last_error, sizeof(w->last_error), "%s", msg ? msg : "");
	}
	pthread_mutex_unlock(&svc->wreg->lock);
}

int svc_writer_state(struct vss_service *svc, struct svc_writer *w)
{
	int s;

	pthread_mutex_lock(&svc->wreg->lock);
	s = w->state;
	pthread_mutex_unlock(&svc->wreg->lock);
	return s;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(struct vss_service *svc, struct svc_writer *w, enum svc_wevent ev,
		const char *kind, int code, struct vss_error *err, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

static int fail(struct vss_service *svc, struct svc_writer *w, enum svc_wevent ev,
		const char *kind, int code, struct vss_error *err, const char *fmt, ...)
{
	char msg[VSS_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ev != EV_ABORT)
		svc_writer_set_state(svc, w, events[ev].failed_state, kind, msg);
	vss_log("writer %s (%s) failed at %s: %s", w->name, w->instance_id,
		events[ev].name, msg);
	return vss_error_set(err, code, "writer %s failed at %s: %s", w->name,
			     events[ev].name, msg);
}

int svc_writer_call(struct vss_service *svc, struct svc_writer *w, enum svc_wevent ev,
		    json_t *args, unsigned int timeout_ms, json_t **result,
		    struct vss_error *err)
{
	uint64_t id = ++w->next_id;
	int64_t deadline = mono_ms() + timeout_ms;
	json_int_t window = json_integer_value(json_object_get(args, "window_ms"));
	json_t *msg;
	int rc;

	if (result)
		*result = NULL;
	pthread_mutex_lock(&svc->wreg->lock);
	check_idle(w);
	w->busy = !w->gone;
	pthread_mutex_unlock(&svc->wreg->lock);
	if (!w->busy) {
		json_decref(args);
		return fail(svc, w, ev, "nonretryable", -ENOTCONN, err,
			    "the writer disconnected");
	}
	msg = json_pack("{s:i, s:I, s:s, s:o}", "version", VSS_PROTO_VERSION,
			"id", (json_int_t)id, "event", events[ev].name,
			"args", args ? args : json_object());
	rc = vss_proto_send(w->fd, msg);
	json_decref(msg);
	if (rc < 0)
		goto gone;
	for (;;) {
		int64_t left = deadline - mono_ms();
		struct pollfd p = { w->fd, POLLIN, 0 };
		struct timeval tv;
		struct vss_error perr;
		json_t *reply = NULL, *rid, *error;

		if (left <= 0) {
			if (window > 0)
				rc = fail(svc, w, ev, "timeout", -ETIMEDOUT, err, "no answer "
					  "within the freeze-to-thaw window of %lld ms",
					  (long long)window);
			else
				rc = fail(svc, w, ev, "timeout", -ETIMEDOUT, err,
					  "no answer within %u ms", timeout_ms);
			goto out;
		}
		rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			continue;
		/* A frame that starts must finish before the deadline too. */
		tv.tv_sec = left / 1000;
		tv.tv_usec = (left % 1000) * 1000;
		setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		rc = vss_proto_recv(w->fd, &reply, &perr);
		if (rc == -EBADMSG)
			continue;
		if (rc < 0 || !reply)
			goto gone;
		rid = json_object_get(reply, "id");
		if (!json_is_integer(rid) || (uint64_t)json_integer_value(rid) != id) {
			json_decref(reply);     /* a late answer to an event that timed out */
			continue;
		}
		if (json_is_true(json_object_get(reply, "ok"))) {
			if (result) {
				json_t *r = json_object_get(reply, "result");

				*result = r ? json_incref(r) : NULL;
			}
			json_decref(reply);
			rc = 0;
			goto out;
		}
		error = json_object_get(reply, "error");
		{
			const char *kind = json_string_value(json_object_get(error, "kind"));
			const char *text = json_string_value(json_object_get(error, "message"));
			const char *code = json_string_value(json_object_get(error, "code"));
			bool known = false;

			for (int k = 0; kind && failure_kinds[k]; k++)
				known |= strcmp(kind, failure_kinds[k]) == 0;
			rc = fail(svc, w, ev, known ? kind : "nonretryable",
				  code ? vss_proto_errno_value(code) : -EIO, err, "%s",
				  text && *text ? text : "the writer reported a failure");
			if (rc >= 0)
				rc = -EIO;
		}
		json_decref(reply);
		goto out;
	}
gone:
	pthread_mutex_lock(&svc->wreg->lock);
	w->gone = true;
	pthread_mutex_unlock(&svc->wreg->lock);
	rc = fail(svc, w, ev, "nonretryable", -ENOTCONN, err, "the writer disconnected");
out:
	pthread_mutex_lock(&svc->wreg->lock);
	w->busy = false;
	pthread_mutex_unlock(&svc->wreg->lock);
	return rc;
}

/* reg->lock held. */
static json_t *writer_json_locked(struct svc_writer *w, bool metadata)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "name", w->name,
			      "id", w->class_id, "instance", w->instance_id,
			      "state", w->state, "state_name", svc_writer_state_name(w->state),
			      "last_error", w->last_error, "error_kind", w->error_kind);

	if (metadata)
		json_object_set_new(o, "metadata", json_loads(w->metadata, 0, NULL));
	return o;
}

json_t *svc_writer_json(struct vss_service *svc, struct svc_writer *w, bool metadata)
{
	json_t *o;

	pthread_mutex_lock(&svc->wreg->lock);
	o = writer_json_locked(w, metadata);
	pthread_mutex_unlock(&svc->wreg->lock);
	return o;
}

int svc_op_writers_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			struct vss_error *err)
{
	struct svc_writer_registry *reg = svc->wreg;
	json_t *arr = json_array();
	bool metadata;
	int rc;

	if ((rc = svc_arg_bool(args, "metadata", &metadata, err)) < 0)
		return rc;
	pthread_mutex_lock(&reg->lock);
	for (struct svc_writer *w = reg->list; w; w = w->next) {
		check_idle(w);
		if (w->fd < 0 || (w->gone && w->state == WS_STABLE))
			continue;
		json_array_append_new(arr, writer_json_locked(w, metadata));
	}
	pthread_mutex_unlock(&reg->lock);
	*res = json_pack("{s:o}", "writers", arr);
	return 0;
}

static enum svc_writer_class writer_class(const struct vss_wmd_identity *id)
{
	if (id->usage == VSS_UT_SYSTEM_SERVICE || id->usage == VSS_UT_BOOTABLE_SYSTEM_STATE)
		return WC_SYSTEM;
	if (id->source == VSS_ST_TRANSACTED_DB || id->source == VSS_ST_NONTRANSACTED_DB)
		return WC_BACK_END;
	return WC_FRONT_END;
}

int svc_op_writer_register(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err)
{
	struct conn *c = who->conn;
	struct svc_writer_registry *reg = svc->wreg;
	struct vss_wmd_identity id;
	struct svc_writer *w;
	const char *doc;
	uint64_t timeout_ms = SVC_WRITER_TIMEOUT_MS;
	struct vss_error derr = { 0 };
	int rc, n = 0;

	if ((rc = svc_arg_str(args, "metadata", true, &doc, err)) < 0 ||
	    (rc = svc_arg_u64(args, "timeout_ms", false, &timeout_ms, err)) < 0)
		return rc;
	if (timeout_ms < 100 || timeout_ms > 3600000)
		return vss_error_set(err, -EINVAL, "argument \"timeout_ms\" must be between "
				     "100 and 3600000");
	w = calloc(1, sizeof(*w));
	if (!w)
		return vss_error_set(err, -ENOMEM, "out of memory");
	w->fd = -1;
	w->state = WS_STABLE;
	w->timeout_ms = (unsigned int)timeout_ms;
	rc = vss_wmd_parse(doc, strlen(doc), SVC_WRITER_METADATA_MAX, &w->wmd, &derr);
	if (rc < 0) {
		free(w);
		if (rc == -EFBIG)
			return vss_error_set(err, rc, "writer metadata refused: the document is "
					     "larger than %u bytes", SVC_WRITER_METADATA_MAX);
		return vss_error_set(err, rc, "writer metadata refused: %s", derr.msg);
	}
	vss_wmd_identity(w->wmd, &id);
	snprintf(w->name, sizeof(w->name), "%s", id.writer_name);
	snprintf(w->class_id, sizeof(w->class_id), "%s", id.class_id);
	snprintf(w->instance_id, sizeof(w->instance_id), "%s", id.instance_id);
	w->wclass = writer_class(&id);
	if (!(w->metadata = strdup(doc))) {
		writer_free(w);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	pthread_mutex_lock(&reg->lock);
	for (struct svc_writer *o = reg->list; o; o = o->next) {
		check_idle(o);
		if (o->gone)
			continue;
		n++;
		if (strcasecmp(o->instance_id, w->instance_id) == 0) {
			pthread_mutex_unlock(&reg->lock);
			rc = vss_error_set(err, -EEXIST, "writer metadata refused: a writer "
					   "with instance ID %s is already registered (%s)",
					   w->instance_id, o->name);
			writer_free(w);
			return rc;
		}
	}
	if (n >= SVC_WRITERS_MAX) {
		pthread_mutex_unlock(&reg->lock);
		writer_free(w);
		return vss_error_set(err, -EMLINK, "at most %d writers may be registered",
				     SVC_WRITERS_MAX);
	}
	w->seq = ++reg->seq;
	{
		struct svc_writer **pp = &reg->list;

		while (*pp)
			pp = &(*pp)->next;
		*pp = w;
	}
	pthread_mutex_unlock(&reg->lock);
	svc_conn_hand_off(c, w);
	vss_log("writer %s registered (class %s, instance %s)", w->name, w->class_id,
		w->instance_id);
	*res = json_pack("{s:s, s:s, s:s, s:i}", "name", w->name, "id", w->class_id,
			 "instance", w->instance_id, "timeout_ms", (int)w->timeout_ms);
	return 0;
}
