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
 *
 * Unresponsive writers: a writer that lets an event's deadline pass is
 * marked unresponsive (w->unresponsive) until any answer comes from it, a
 * late one included.  Until then later events reach it (it finds them when
 * it is done) but nobody waits more than SVC_WRITER_STUCK_MS for it, new
 * backups leave it out (backup.c; a backup that requires it fails at once)
 * and it stays failed in writers.list with its reason.  A late answer is
 * read whenever the registry looks at an idle writer (check_idle: a status,
 * a listing, the next backup), and the writer is stable again unless it is
 * part of the backup in progress.  A writer that registers again (after its
 * old connection closed) starts afresh.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <vss/writer_state.h>

#include "proto/proto.h"
#include "service/args.h"
#include "service/backup.h"
#include "service/caller.h"
#include "service/log.h"
#include "service/server.h"
#include "service/service_i.h"
#include "service/writers.h"

/* The states are the public enumeration's numbers (vss/writer_state.h). */
_Static_assert(WS_UNKNOWN == (int)VSS_WS_UNKNOWN && WS_STABLE == (int)VSS_WS_STABLE &&
	       WS_WAITING_FOR_BACKUP_COMPLETE == (int)VSS_WS_WAITING_FOR_BACKUP_COMPLETE &&
	       WS_FAILED_AT_IDENTIFY == (int)VSS_WS_FAILED_AT_IDENTIFY &&
	       WS_FAILED_AT_BACKUP_SHUTDOWN == (int)VSS_WS_FAILED_AT_BACKUP_SHUTDOWN,
	       "the writer states are VSS_WRITER_STATE's numbers");

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
	[EV_BACKUP_SHUTDOWN] = { "backup_shutdown", WS_FAILED_AT_BACKUP_SHUTDOWN },
	[EV_PRE_RESTORE] = { "pre_restore", WS_FAILED_AT_PRE_RESTORE },
	[EV_POST_RESTORE] = { "post_restore", WS_FAILED_AT_POST_RESTORE },
};

const char *svc_event_name(enum svc_wevent ev)
{
	return events[ev].name;
}

const char *svc_writer_state_name(int state)
{
	const char *name = vss_writer_state_name((enum vss_writer_state)state);

	return name ? name : "unknown";
}

int svc_writers_init(struct vss_service *svc, struct vss_error *err)
{
	struct svc_writer_registry *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return vss_error_set(err, -ENOMEM, "out of memory");
	svc_mutex_init(&reg->lock);
	pthread_cond_init(&reg->slot_cond, NULL);
	svc->wreg = reg;
	return svc_backup_reaper_start(svc, err);
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
	svc_mutex_lock(&reg->lock);
	for (struct svc_writer *w = reg->list; w; w = w->next)
		if (w->fd >= 0)
			shutdown(w->fd, SHUT_RDWR);
	svc_mutex_unlock(&reg->lock);
	svc_backup_reaper_stop(svc);
}

void svc_writers_free(struct vss_service *svc)
{
	struct svc_writer_registry *reg = svc->wreg;

	if (!reg)
		return;
	svc_backup_free(svc);
	while (reg->list) {
		struct svc_writer *w = reg->list;

		reg->list = w->next;
		writer_free(w);
	}
	svc_mutex_destroy(&reg->lock);
	pthread_cond_destroy(&reg->slot_cond);
	free(reg);
	svc->wreg = NULL;
}

/* Any answer from @w, a late one too: it answers again.  reg->lock held. */
static void answered(struct svc_writer *w)
{
	if (!w->unresponsive)
		return;
	w->unresponsive = false;
	if (!w->enlisted && w->state >= WS_FAILED_AT_IDENTIFY) {
		w->state = WS_STABLE;
		w->error_kind[0] = '\0';
	}
	vss_log("writer %s (%s) answers again", w->name, w->instance_id);
}

/*
 * Reads the late answers (to events that timed out) that wait whole on an
 * idle writer's socket.  Only whole frames, without blocking: the header
 * is peeked and the frame read only if all of it is there.  reg->lock held.
 */
static void read_late_answers(struct svc_writer *w)
{
	for (;;) {
		unsigned char hdr[4];
		int avail = 0;
		uint32_t len;
		json_t *msg = NULL;
		struct vss_error e;

		if (recv(w->fd, hdr, sizeof(hdr), MSG_PEEK | MSG_DONTWAIT) != (ssize_t)sizeof(hdr))
			return;
		len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
		      hdr[3];
		if (len > VSS_PROTO_MAX_FRAME || ioctl(w->fd, FIONREAD, &avail) < 0 ||
		    (size_t)avail < sizeof(hdr) + len)
			return;
		if (vss_proto_recv(w->fd, &msg, &e) == -EBADMSG)
			continue;
		if (!msg)
			return;
		json_decref(msg);
		answered(w);
	}
}

/* Is an idle writer's connection closed?  Bytes waiting are a late answer to
 * an event that timed out (read here if it is whole; svc_writers_call skips
 * it otherwise), not a disconnection.  reg->lock held. */
static void check_idle(struct svc_writer *w)
{
	struct pollfd p = { w->fd, POLLIN | POLLRDHUP, 0 };
	char byte;

	if (w->gone || w->busy || w->fd < 0)
		return;
	read_late_answers(w);
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

	svc_mutex_lock(&reg->lock);
	for (struct svc_writer *w = reg->list; w; w = w->next) {
		check_idle(w);
		n += !w->gone;
	}
	svc_mutex_unlock(&reg->lock);
	return n;
}

void svc_writer_activate(struct vss_service *svc, void *writer, int fd)
{
	struct svc_writer *w = writer;

	svc_mutex_lock(&svc->wreg->lock);
	w->fd = fd;
	svc_mutex_unlock(&svc->wreg->lock);
}

size_t svc_writers_snapshot(struct vss_service *svc, struct svc_writer **out, size_t max)
{
	struct svc_writer_registry *reg = svc->wreg;
	size_t n = 0;

	svc_mutex_lock(&reg->lock);
	for (struct svc_writer *w = reg->list; w && n < max; w = w->next) {
		check_idle(w);
		if (!w->gone && w->fd >= 0)
			out[n++] = w;
	}
	svc_mutex_unlock(&reg->lock);
	return n;
}

void svc_writers_prune(struct vss_service *svc)
{
	struct svc_writer_registry *reg = svc->wreg;

	svc_mutex_lock(&reg->lock);
	for (struct svc_writer **pp = &reg->list; *pp;) {
		struct svc_writer *w = *pp;

		check_idle(w);
		if (w->gone) {
			*pp = w->next;
			writer_free(w);
			continue;
		}
		/* A failed writer is stable again for the next backup, unless it
		 * still owes an answer. */
		if (w->state != WS_STABLE && !w->unresponsive) {
			w->state = WS_STABLE;
			w->error_kind[0] = '\0';
		}
		pp = &w->next;
	}
	svc_mutex_unlock(&reg->lock);
}

void svc_writer_set_state(struct vss_service *svc, struct svc_writer *w, int state,
			  const char *kind, const char *msg)
{
	svc_mutex_lock(&svc->wreg->lock);
	w->state = state;
	if (kind) {
		snprintf(w->error_kind, sizeof(w->error_kind), "%s", kind);
		snprintf(w->last_error, sizeof(w->last_error), "%s", msg ? msg : "");
	}
	svc_mutex_unlock(&svc->wreg->lock);
}

int svc_writer_state(struct vss_service *svc, struct svc_writer *w)
{
	int s;

	svc_mutex_lock(&svc->wreg->lock);
	s = w->state;
	svc_mutex_unlock(&svc->wreg->lock);
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

bool svc_writer_unresponsive(struct vss_service *svc, struct svc_writer *w, char *why,
			     size_t len)
{
	bool r;

	svc_mutex_lock(&svc->wreg->lock);
	check_idle(w);
	r = w->unresponsive && !w->gone;
	if (r && why)
		snprintf(why, len, "%s", w->last_error);
	svc_mutex_unlock(&svc->wreg->lock);
	return r;
}

void svc_writer_enlist(struct vss_service *svc, struct svc_writer *w, bool enlisted)
{
	svc_mutex_lock(&svc->wreg->lock);
	w->enlisted = enlisted;
	svc_mutex_unlock(&svc->wreg->lock);
}

/* One call of svc_writers_call while it waits. */
struct pending {
	uint64_t id;
	int64_t deadline;
	json_int_t window;                /* freeze and thaw: the window, for the message */
	bool stuck;                       /* unresponsive when the event was sent */
	bool done;
};

/* The call is over: the writer is free for the next one. */
static void call_done(struct vss_service *svc, struct svc_wcall *c, struct pending *p)
{
	svc_mutex_lock(&svc->wreg->lock);
	c->w->busy = false;
	svc_mutex_unlock(&svc->wreg->lock);
	p->done = true;
}

static void call_gone(struct vss_service *svc, enum svc_wevent ev, struct svc_wcall *c,
		      struct pending *p)
{
	svc_mutex_lock(&svc->wreg->lock);
	c->w->gone = true;
	svc_mutex_unlock(&svc->wreg->lock);
	c->rc = fail(svc, c->w, ev, "nonretryable", -ENOTCONN, &c->err,
		     "the writer disconnected");
	call_done(svc, c, p);
}

/*
 * No answer in time.  A writer that answered until now becomes
 * unresponsive, and its last error says since when; one that already was
 * keeps the reason it had (its state says what it missed first).
 */
static void call_timed_out(struct vss_service *svc, enum svc_wevent ev, struct svc_wcall *c,
			   struct pending *p)
{
	struct svc_writer *w = c->w;
	char now[40], msg[VSS_ERROR_MSG_MAX];

	if (p->stuck) {
		c->rc = vss_error_set(&c->err, -ETIMEDOUT, "writer %s failed at %s: no answer: "
				      "it has not answered an earlier event yet", w->name,
				      events[ev].name);
		call_done(svc, c, p);
		return;
	}
	if (p->window > 0)
		c->rc = fail(svc, w, ev, "timeout", -ETIMEDOUT, &c->err, "no answer within the "
			     "freeze-to-thaw window of %lld ms", (long long)p->window);
	else
		c->rc = fail(svc, w, ev, "timeout", -ETIMEDOUT, &c->err, "no answer within %u ms",
			     c->timeout_ms);
	svc_time_str(svc_now_ns(), now);
	snprintf(msg, sizeof(msg), "no answer to %s within %u ms, at %s; left out of "
		 "backups until it answers", events[ev].name, c->timeout_ms, now);
	svc_mutex_lock(&svc->wreg->lock);
	w->unresponsive = true;
	snprintf(w->error_kind, sizeof(w->error_kind), "timeout");
	snprintf(w->last_error, sizeof(w->last_error), "%s", msg);
	svc_mutex_unlock(&svc->wreg->lock);
	vss_log("writer %s (%s) is unresponsive: %s", w->name, w->instance_id, msg);
	call_done(svc, c, p);
}

/* Sends the call's event; false if it could not (the call is then over). */
static bool call_send(struct vss_service *svc, enum svc_wevent ev, struct svc_wcall *c,
		      struct pending *p)
{
	struct svc_writer *w = c->w;
	json_t *msg;
	bool busy;

	c->result = NULL;
	c->rc = 0;
	p->done = false;
	p->window = json_integer_value(json_object_get(c->args, "window_ms"));
	svc_mutex_lock(&svc->wreg->lock);
	check_idle(w);
	busy = w->busy = !w->gone;
	p->stuck = w->unresponsive;
	svc_mutex_unlock(&svc->wreg->lock);
	if (!busy) {
		json_decref(c->args);
		c->rc = fail(svc, w, ev, "nonretryable", -ENOTCONN, &c->err,
			     "the writer disconnected");
		p->done = true;
		return false;
	}
	if (p->stuck && c->timeout_ms > SVC_WRITER_STUCK_MS)
		c->timeout_ms = SVC_WRITER_STUCK_MS;
	p->deadline = mono_ms() + c->timeout_ms;
	p->id = ++w->next_id;
	msg = json_pack("{s:i, s:I, s:s, s:o}", "version", VSS_PROTO_VERSION,
			"id", (json_int_t)p->id, "event", events[ev].name,
			"args", c->args ? c->args : json_object());
	c->args = NULL;
	if (vss_proto_send(w->fd, msg) < 0) {
		json_decref(msg);
		call_gone(svc, ev, c, p);
		return false;
	}
	json_decref(msg);
	return true;
}

/* Reads one frame from a call's writer (it is readable); the call may end. */
static void call_read(struct vss_service *svc, enum svc_wevent ev, struct svc_wcall *c,
		      struct pending *p)
{
	struct svc_writer *w = c->w;
	int64_t left = p->deadline - mono_ms();
	struct vss_error perr;
	struct timeval tv;
	json_t *reply = NULL, *rid, *error;
	const char *kind, *text, *code;
	bool known = false;
	int rc;

	/* A frame that starts must finish before the deadline too (or soon
	 * after, if it started just before it). */
	if (left < (int64_t)SVC_WRITER_STUCK_MS)
		left = SVC_WRITER_STUCK_MS;
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	rc = vss_proto_recv(w->fd, &reply, &perr);
	if (rc == -EBADMSG)
		return;
	if (rc < 0 || !reply) {
		call_gone(svc, ev, c, p);
		return;
	}
	rid = json_object_get(reply, "id");
	if (!json_is_integer(rid) || (uint64_t)json_integer_value(rid) != p->id) {
		json_decref(reply);     /* a late answer to an event that timed out */
		svc_mutex_lock(&svc->wreg->lock);
		answered(w);
		svc_mutex_unlock(&svc->wreg->lock);
		p->stuck = false;
		return;
	}
	svc_mutex_lock(&svc->wreg->lock);
	answered(w);
	svc_mutex_unlock(&svc->wreg->lock);
	if (json_is_true(json_object_get(reply, "ok"))) {
		json_t *r = json_object_get(reply, "result");

		c->result = r ? json_incref(r) : NULL;
		json_decref(reply);
		call_done(svc, c, p);
		return;
	}
	error = json_object_get(reply, "error");
	kind = json_string_value(json_object_get(error, "kind"));
	text = json_string_value(json_object_get(error, "message"));
	code = json_string_value(json_object_get(error, "code"));
	/* The failure kinds a writer may report (VSS_E_WRITERERROR_*). */
	known = vss_writer_failure_from_name(kind) > 0;
	c->rc = fail(svc, w, ev, known ? kind : "nonretryable",
		     code ? vss_proto_errno_value(code) : -EIO, &c->err, "%s",
		     text && *text ? text : "the writer reported a failure");
	if (c->rc >= 0)
		c->rc = -EIO;
	json_decref(reply);
	call_done(svc, c, p);
}

void svc_writers_call(struct vss_service *svc, enum svc_wevent ev, struct svc_wcall *calls,
		      size_t n)
{
	struct pending p[SVC_WRITERS_MAX];
	size_t waiting = 0;

	assert(n <= SVC_WRITERS_MAX);
	for (size_t i = 0; i < n; i++)
		waiting += call_send(svc, ev, &calls[i], &p[i]);
	while (waiting > 0) {
		struct pollfd pfd[SVC_WRITERS_MAX];
		size_t idx[SVC_WRITERS_MAX], np = 0;
		int64_t now = mono_ms(), wait = INT64_MAX;

		for (size_t i = 0; i < n; i++) {
			if (p[i].done)
				continue;
			pfd[np] = (struct pollfd){ calls[i].w->fd, POLLIN, 0 };
			idx[np++] = i;
			if (p[i].deadline - now < wait)
				wait = p[i].deadline - now;
		}
		if (poll(pfd, np, wait < 0 ? 0 : (int)wait) < 0 && errno != EINTR)
			memset(pfd, 0, sizeof(pfd));
		now = mono_ms();
		for (size_t k = 0; k < np; k++) {
			size_t i = idx[k];

			if (pfd[k].revents)
				call_read(svc, ev, &calls[i], &p[i]);
			else if (now >= p[i].deadline)
				call_timed_out(svc, ev, &calls[i], &p[i]);
			waiting -= p[i].done;
		}
	}
}

int svc_writer_call(struct vss_service *svc, struct svc_writer *w, enum svc_wevent ev,
		    json_t *args, unsigned int timeout_ms, json_t **result,
		    struct vss_error *err)
{
	struct svc_wcall c = { .w = w, .args = args, .timeout_ms = timeout_ms };

	svc_writers_call(svc, ev, &c, 1);
	if (result)
		*result = c.result;
	else
		json_decref(c.result);
	if (c.rc < 0 && err)
		*err = c.err;
	return c.rc;
}

/* reg->lock held. */
static json_t *writer_json_locked(struct svc_writer *w, bool metadata)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:b}", "name", w->name,
			      "id", w->class_id, "instance", w->instance_id,
			      "state", w->state, "state_name", svc_writer_state_name(w->state),
			      "last_error", w->last_error, "error_kind", w->error_kind,
			      "unresponsive", w->unresponsive && !w->gone);

	if (metadata)
		json_object_set_new(o, "metadata", json_loads(w->metadata, 0, NULL));
	return o;
}

json_t *svc_writer_json(struct vss_service *svc, struct svc_writer *w, bool metadata)
{
	json_t *o;

	svc_mutex_lock(&svc->wreg->lock);
	o = writer_json_locked(w, metadata);
	svc_mutex_unlock(&svc->wreg->lock);
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
	svc_mutex_lock(&reg->lock);
	for (struct svc_writer *w = reg->list; w; w = w->next) {
		check_idle(w);
		if (w->fd < 0 || (w->gone && w->state == WS_STABLE))
			continue;
		json_array_append_new(arr, writer_json_locked(w, metadata));
	}
	svc_mutex_unlock(&reg->lock);
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

int svc_writer_refresh(struct vss_service *svc, struct svc_writer *w, const char *doc,
		       struct vss_error *err)
{
	struct svc_writer_registry *reg = svc->wreg;
	struct vss_error derr = { 0 };
	struct vss_wmd_identity id;
	struct vss_wmd *wmd;
	char *copy;
	int rc = vss_wmd_parse(doc, strlen(doc), SVC_WRITER_METADATA_MAX, &wmd, &derr);

	if (rc < 0)
		return vss_error_set(err, rc, "writer %s: the metadata it gave at identify was "
				     "refused: %s", w->name, rc == -EFBIG ? "too large" : derr.msg);
	vss_wmd_identity(wmd, &id);
	if (strcasecmp(id.class_id, w->class_id) || strcasecmp(id.instance_id, w->instance_id)) {
		vss_wmd_free(wmd);
		return vss_error_set(err, -EINVAL, "writer %s: the metadata it gave at identify "
				     "has another class or instance ID", w->name);
	}
	if (!(copy = strdup(doc))) {
		vss_wmd_free(wmd);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	svc_mutex_lock(&reg->lock);
	vss_wmd_free(w->wmd);
	free(w->metadata);
	w->wmd = wmd;
	w->metadata = copy;
	snprintf(w->name, sizeof(w->name), "%s", id.writer_name);
	w->wclass = writer_class(&id);
	svc_mutex_unlock(&reg->lock);
	vss_log("writer %s (instance %s) refreshed its metadata at identify", w->name,
		w->instance_id);
	return 0;
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
	svc_mutex_lock(&reg->lock);
	for (struct svc_writer *o = reg->list; o; o = o->next) {
		check_idle(o);
		if (o->gone)
			continue;
		n++;
		if (strcasecmp(o->instance_id, w->instance_id) == 0) {
			svc_mutex_unlock(&reg->lock);
			rc = vss_error_set(err, -EEXIST, "writer metadata refused: a writer "
					   "with instance ID %s is already registered (%s)",
					   w->instance_id, o->name);
			writer_free(w);
			return rc;
		}
	}
	if (n >= SVC_WRITERS_MAX) {
		svc_mutex_unlock(&reg->lock);
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
	svc_mutex_unlock(&reg->lock);
	svc_conn_hand_off(c, w);
	vss_log("writer %s registered (class %s, instance %s)", w->name, w->class_id,
		w->instance_id);
	*res = json_pack("{s:s, s:s, s:s, s:i}", "name", w->name, "id", w->class_id,
			 "instance", w->instance_id, "timeout_ms", (int)w->timeout_ms);
	return 0;
}
