/*
 * service/backup.c - one backup through vssd: the requester's session and
 * the writers' side of taking a set.
 *
 * The backup slot (svc->wreg: slot_busy, cur) admits one set at a time; a
 * second requester waits for it up to its deadline (wait_ms).  A session is
 * owned by the requester's connection and only that connection's thread
 * touches it, so its fields need no lock.  The sequence (doc/writers.md):
 *
 *   backup.begin    take the slot, pick the writers (exclude, require),
 *                   Identify each: their metadata goes to the requester
 *   backup.prepare  the backup components document (given, or every
 *                   component selected); PrepareForBackup to each writer,
 *                   which may set stamps, partial and differenced files
 *   shadow.create   PrepareForSnapshot; Freeze (front-end, back-end,
 *                   system); the coordinator's set (shadowset.c, under
 *                   svc->lock); Thaw (reverse order); PostSnapshot
 *   backup.complete BackupComplete to each writer; the set becomes complete
 *   backup.abort    Abort to each writer; the set is deleted
 *
 * Invariants: a writer that fails or does not answer at PrepareForSnapshot,
 * Freeze or Thaw, or a freeze-to-thaw window that runs out, aborts the set:
 * every writer gets Abort and the set's shadows are deleted (the coordinator
 * has already thawed every filesystem it froze).  A requester whose
 * connection closes is aborted the same way (svc_backup_conn_gone).  The
 * session ends, and the slot is free, after complete, abort, or a failed
 * shadow.create.  shadow.create without a session makes a session of its
 * own for the length of the call (writers get the snapshot events only).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "service/log.h"
#include "service/service_i.h"
#include "service/writers.h"

#define SLOT_WAIT_MS 60000u

struct svc_backup {
	struct conn *owner;               /* NULL: shadow.create's own session */
	enum vss_backup_type type;
	bool partial;
	unsigned int timeout_ms;          /* the set's window and event deadline */
	struct svc_writer *w[SVC_WRITERS_MAX];   /* taking part, in freeze order */
	bool required[SVC_WRITERS_MAX];
	size_t nw;
	json_t *bcd;                      /* the backup components document, once prepared */
	char set_id[37];                  /* "" until the set is taken */
};

static const char *const type_names[] = {
	[VSS_BT_FULL] = "full", [VSS_BT_INCREMENTAL] = "incremental",
	[VSS_BT_DIFFERENTIAL] = "differential", [VSS_BT_LOG] = "log",
	[VSS_BT_COPY] = "copy",
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the slot ---- */

static int slot_acquire(struct vss_service *svc, struct svc_backup *b, uint64_t wait_ms,
			struct vss_error *err)
{
	struct svc_writer_registry *reg = svc->wreg;
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (time_t)(wait_ms / 1000);
	dl.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&reg->lock);
	while (reg->slot_busy) {
		if (pthread_cond_timedwait(&reg->slot_cond, &reg->lock, &dl) == ETIMEDOUT &&
		    reg->slot_busy) {
			pthread_mutex_unlock(&reg->lock);
			return vss_error_set(err, -EBUSY, "another backup is in progress; "
					     "gave up waiting after %llu ms",
					     (unsigned long long)wait_ms);
		}
	}
	reg->slot_busy = true;
	reg->cur = b;
	pthread_mutex_unlock(&reg->lock);
	svc_writers_prune(svc);
	return 0;
}

static void slot_release(struct vss_service *svc)
{
	struct svc_writer_registry *reg = svc->wreg;

	pthread_mutex_lock(&reg->lock);
	reg->slot_busy = false;
	reg->cur = NULL;
	pthread_cond_broadcast(&reg->slot_cond);
	pthread_mutex_unlock(&reg->lock);
}

static struct svc_backup *session_of(struct vss_service *svc, struct conn *c)
{
	struct svc_backup *b = NULL;

	pthread_mutex_lock(&svc->wreg->lock);
	if (svc->wreg->cur && svc->wreg->cur->owner == c)
		b = svc->wreg->cur;
	pthread_mutex_unlock(&svc->wreg->lock);
	return b;
}

static void session_end(struct vss_service *svc, struct svc_backup *b)
{
	slot_release(svc);
	json_decref(b->bcd);
	free(b);
}

/* ---- picking writers ---- */

static bool writer_named(const struct svc_writer *w, const char *s)
{
	return strcmp(w->name, s) == 0 || strcasecmp(w->class_id, s) == 0 ||
	       strcasecmp(w->instance_id, s) == 0;
}

static int str_array(json_t *args, const char *key, json_t **out, struct vss_error *err)
{
	json_t *v = json_object_get(args, key), *e;
	size_t i;

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return vss_error_set(err, -EINVAL, "argument \"%s\" must be an array of "
				     "strings", key);
	json_array_foreach(v, i, e)
		if (!json_is_string(e))
			return vss_error_set(err, -EINVAL, "argument \"%s\" must be an array "
					     "of strings", key);
	*out = v;
	return 0;
}

static int cmp_order(const void *a, const void *b)
{
	const struct svc_writer *x = *(struct svc_writer *const *)a;
	const struct svc_writer *y = *(struct svc_writer *const *)b;

	if (x->wclass != y->wclass)
		return x->wclass < y->wclass ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Fills b->w with the writers taking part: every connected one but the
 * excluded, in freeze order; a required writer must be among them. */
static int pick_writers(struct vss_service *svc, struct svc_backup *b, json_t *args,
			bool no_writers, struct vss_error *err)
{
	struct svc_writer *all[SVC_WRITERS_MAX];
	json_t *exclude, *require, *e;
	size_t n, i;
	int rc;

	if ((rc = str_array(args, "exclude_writers", &exclude, err)) < 0 ||
	    (rc = str_array(args, "require_writers", &require, err)) < 0)
		return rc;
	b->nw = 0;
	n = no_writers ? 0 : svc_writers_snapshot(svc, all, SVC_WRITERS_MAX);
	for (size_t k = 0; k < n; k++) {
		bool out = false;

		json_array_foreach(exclude, i, e)
			out |= writer_named(all[k], json_string_value(e));
		if (!out)
			b->w[b->nw++] = all[k];
	}
	qsort(b->w, b->nw, sizeof(b->w[0]), cmp_order);
	json_array_foreach(require, i, e) {
		const char *name = json_string_value(e);
		bool found = false;

		for (size_t k = 0; k < b->nw; k++)
			if (writer_named(b->w[k], name))
				found = b->required[k] = true;
		if (!found)
			return vss_error_set(err, -ENOENT, "required writer \"%s\" is not "
					     "registered%s", name, no_writers ?
					     " (or writers were turned off)" : "");
	}
	return 0;
}

static void drop_writer(struct svc_backup *b, size_t k)
{
	memmove(&b->w[k], &b->w[k + 1], (b->nw - k - 1) * sizeof(b->w[0]));
	memmove(&b->required[k], &b->required[k + 1], (b->nw - k - 1) * sizeof(b->required[0]));
	b->nw--;
}

static unsigned int deadline_for(const struct svc_backup *b, const struct svc_writer *w)
{
	return b->timeout_ms < w->timeout_ms ? b->timeout_ms : w->timeout_ms;
}

static json_t *writers_json(struct vss_service *svc, struct svc_backup *b, bool metadata)
{
	json_t *arr = json_array();

	for (size_t k = 0; k < b->nw; k++)
		json_array_append_new(arr, svc_writer_json(svc, b->w[k], metadata));
	return arr;
}

static bool failed_state(int s)
{
	return s >= WS_FAILED_AT_IDENTIFY;
}

/*
 * Abort to every writer still connected; those not failed are stable again.
 * A writer that just timed out is still busy with the event it missed: it
 * gets the Abort too (it will find it when it is done, and undo its freeze),
 * but we do not wait another full deadline for its answer.
 */
static void abort_writers(struct vss_service *svc, struct svc_backup *b, const char *why)
{
	for (size_t k = 0; k < b->nw; k++) {
		struct svc_writer *w = b->w[k];
		struct vss_error e;
		bool stuck;

		if (w->gone)
			continue;
		pthread_mutex_lock(&svc->wreg->lock);
		stuck = failed_state(w->state) && strcmp(w->error_kind, "timeout") == 0;
		pthread_mutex_unlock(&svc->wreg->lock);
		svc_writer_call(svc, w, EV_ABORT,
				json_pack("{s:s, s:s}", "set", b->set_id, "reason", why),
				stuck ? 100 : deadline_for(b, w), NULL, &e);
		if (!failed_state(svc_writer_state(svc, w)))
			svc_writer_set_state(svc, w, WS_STABLE, NULL, NULL);
	}
}

static void delete_set(struct vss_service *svc, const char *set, const char *why)
{
	if (!*set)
		return;
	pthread_mutex_lock(&svc->lock);
	for (struct svc_shadow *sh = svc->shadows, *next; sh; sh = next) {
		next = sh->next;
		if (strcmp(sh->rec.set_id, set) == 0)
			svc_shadow_remove(svc, sh, why);
	}
	pthread_mutex_unlock(&svc->lock);
}

static void abort_session(struct vss_service *svc, struct svc_backup *b, const char *why)
{
	vss_log("backup aborted: %s", why);
	abort_writers(svc, b, why);
	delete_set(svc, b->set_id, why);
	session_end(svc, b);
}

static int session_args(json_t *args, struct svc_backup *b, uint64_t *wait_ms,
			struct vss_error *err)
{
	uint64_t timeout_ms = SVC_WRITER_TIMEOUT_MS;
	int rc;

	*wait_ms = SLOT_WAIT_MS;
	if ((rc = svc_arg_u64(args, "timeout_ms", false, &timeout_ms, err)) < 0 ||
	    (rc = svc_arg_u64(args, "wait_ms", false, wait_ms, err)) < 0)
		return rc;
	if (timeout_ms < 100 || timeout_ms > 3600000)
		return vss_error_set(err, -EINVAL, "argument \"timeout_ms\" must be between "
				     "100 and 3600000");
	if (*wait_ms > 3600000)
		return vss_error_set(err, -EINVAL, "argument \"wait_ms\" is at most 3600000");
	b->timeout_ms = (unsigned int)timeout_ms;
	return 0;
}

/* ---- backup.begin ---- */

int svc_op_backup_begin(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err)
{
	struct conn *c = who->conn;
	struct svc_backup *b;
	const char *type;
	bool no_writers;
	uint64_t wait_ms;
	int rc;

	if (session_of(svc, c))
		return vss_error_set(err, -EBUSY, "this connection already has a backup in "
				     "progress");
	if (!(b = calloc(1, sizeof(*b))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	b->owner = c;
	b->type = VSS_BT_FULL;
	if ((rc = svc_arg_str(args, "type", false, &type, err)) < 0 ||
	    (rc = svc_arg_bool(args, "partial_file_support", &b->partial, err)) < 0 ||
	    (rc = svc_arg_bool(args, "no_writers", &no_writers, err)) < 0 ||
	    (rc = session_args(args, b, &wait_ms, err)) < 0)
		goto fail_free;
	if (type) {
		b->type = 0;
		for (int t = VSS_BT_FULL; t <= VSS_BT_COPY; t++)
			if (strcmp(type, type_names[t]) == 0)
				b->type = t;
		if (!b->type) {
			rc = vss_error_set(err, -EINVAL, "unknown backup type \"%s\" (full, "
					   "incremental, differential, log, copy)", type);
			goto fail_free;
		}
	}
	if ((rc = slot_acquire(svc, b, wait_ms, err)) < 0)
		goto fail_free;
	if ((rc = pick_writers(svc, b, args, no_writers, err)) < 0) {
		session_end(svc, b);
		return rc;
	}
	/* Identify (GatherWriterMetadata). */
	for (size_t k = 0; k < b->nw;) {
		struct vss_error e;

		if (svc_writer_call(svc, b->w[k], EV_IDENTIFY,
				    json_pack("{s:s}", "backup_type", type_names[b->type]),
				    deadline_for(b, b->w[k]), NULL, &e) == 0) {
			k++;
			continue;
		}
		if (b->required[k]) {
			rc = vss_error_set(err, e.code, "%s", e.msg);
			abort_session(svc, b, e.msg);
			return rc;
		}
		drop_writer(b, k);
	}
	vss_log("backup started (%s, %zu writer%s)", type_names[b->type], b->nw,
		b->nw == 1 ? "" : "s");
	*res = json_pack("{s:s, s:b, s:o}", "type", type_names[b->type],
			 "partial_file_support", b->partial, "writers",
			 writers_json(svc, b, true));
	return 0;
fail_free:
	free(b);
	return rc;
}

/* ---- backup.prepare ---- */

/* The default selection: every component of every writer taking part. */
static int default_bcd(struct svc_backup *b, struct vss_bcd **out, struct vss_error *err)
{
	struct vss_bcd *bcd;
	int rc;

	if ((rc = vss_bcd_new(b->type, b->partial, &bcd, err)) < 0)
		return rc;
	for (size_t k = 0; k < b->nw; k++)
		for (size_t i = 0; i < vss_wmd_component_count(b->w[k]->wmd); i++) {
			struct vss_wmd_component_info ci;

			vss_wmd_component(b->w[k]->wmd, i, &ci);
			rc = vss_bcd_add_component(bcd, &(struct vss_bcd_component_info){
				.class_id = b->w[k]->class_id,
				.instance_id = b->w[k]->instance_id,
				.logical_path = ci.logical_path, .name = ci.name }, NULL, err);
			if (rc < 0) {
				vss_bcd_free(bcd);
				return rc;
			}
		}
	*out = bcd;
	return 0;
}

static json_t *bcd_json(const struct vss_bcd *bcd, struct vss_error *err)
{
	char *text;
	json_t *j;

	if (vss_bcd_serialize(bcd, &text, NULL, err) < 0)
		return NULL;
	j = json_loads(text, 0, NULL);
	free(text);
	return j;
}

/* The index of @w's entry in the document's writers[], or -1. */
static int bcd_entry(json_t *bcd, const struct svc_writer *w)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(bcd, "writers"), i, e)
		if (strcasecmp(json_string_value(json_object_get(e, "writer_class_id")),
			       w->class_id) == 0 &&
		    strcasecmp(json_string_value(json_object_get(e, "writer_instance_id")),
			       w->instance_id) == 0)
			return (int)i;
	return -1;
}

/* The document with only @w's entry (none if it has no component selected). */
static char *bcd_for_writer(json_t *bcd, const struct svc_writer *w)
{
	json_t *sub = json_copy(bcd), *arr = json_array();
	int i = bcd_entry(bcd, w);
	char *text;

	if (i >= 0)
		json_array_append(arr, json_array_get(json_object_get(bcd, "writers"),
						      (size_t)i));
	json_object_set_new(sub, "writers", arr);
	text = json_dumps(sub, JSON_COMPACT);
	json_decref(sub);
	return text;
}

static int check_bcd(const char *text, struct vss_bcd **out, struct vss_error *err)
{
	return vss_bcd_parse(text, strlen(text), 0, out, err);
}

/* What the writer returned: its own entry only, the same components. */
static int accept_writer_bcd(struct svc_backup *b, struct svc_writer *w, const char *text,
			     struct vss_error *err)
{
	struct vss_bcd *got = NULL;
	json_t *j, *mine, *arr = json_object_get(b->bcd, "writers");
	int i = bcd_entry(b->bcd, w), rc;

	if ((rc = check_bcd(text, &got, err)) < 0)
		return rc;
	rc = vss_bcd_check_writer(got, w->wmd, err);
	vss_bcd_free(got);
	if (rc < 0)
		return rc;
	j = json_loads(text, 0, NULL);
	if (json_array_size(json_object_get(j, "writers")) != (i >= 0 ? 1u : 0u) ||
	    strcmp(json_string_value(json_object_get(j, "backup_type")),
		   type_names[b->type]) != 0) {
		json_decref(j);
		return vss_error_set(err, -EINVAL, "the writer changed the backup type or "
				     "the writers of the backup components document");
	}
	if (i < 0) {
		json_decref(j);
		return 0;
	}
	mine = json_array_get(json_object_get(j, "writers"), 0);
	if (bcd_entry(j, w) != 0 ||
	    json_array_size(json_object_get(mine, "components")) !=
	    json_array_size(json_object_get(json_array_get(arr, (size_t)i), "components"))) {
		json_decref(j);
		return vss_error_set(err, -EINVAL, "the writer changed which components are "
				     "selected");
	}
	json_array_set(arr, (size_t)i, mine);
	json_decref(j);
	return 0;
}

int svc_op_backup_prepare(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			  json_t **res, struct vss_error *err)
{
	struct conn *c = who->conn;
	struct svc_backup *b = session_of(svc, c);
	struct vss_bcd *bcd = NULL;
	const char *given;
	char *text;
	int rc;

	if (!b)
		return vss_error_set(err, -ENOENT, "no backup in progress on this connection "
				     "(backup.begin first)");
	if (*b->set_id)
		return vss_error_set(err, -EBUSY, "the set is already taken");
	if ((rc = svc_arg_str(args, "components", false, &given, err)) < 0)
		return rc;
	if (given) {
		struct vss_error e;
		json_t *j, *entry;
		size_t i;

		if ((rc = check_bcd(given, &bcd, &e)) < 0)
			return vss_error_set(err, rc, "backup components document refused: %s",
					     e.msg);
		if (vss_bcd_backup_type(bcd) != b->type) {
			vss_bcd_free(bcd);
			return vss_error_set(err, -EINVAL, "backup components document refused: "
					     "its backup type is not the one of backup.begin");
		}
		b->partial = vss_bcd_partial_file_support(bcd);
		j = json_loads(given, 0, NULL);
		json_array_foreach(json_object_get(j, "writers"), i, entry) {
			const char *id = json_string_value(json_object_get(entry,
									   "writer_instance_id"));
			bool known = false;

			for (size_t k = 0; k < b->nw; k++)
				known |= strcasecmp(b->w[k]->instance_id, id) == 0;
			if (!known) {
				json_decref(j);
				vss_bcd_free(bcd);
				return vss_error_set(err, -EINVAL, "backup components document "
						     "refused: writer instance %s is not in this "
						     "backup", id);
			}
		}
		json_decref(j);
	} else if ((rc = default_bcd(b, &bcd, err)) < 0) {
		return rc;
	}
	for (size_t k = 0; k < b->nw; k++) {
		struct vss_error e;

		if ((rc = vss_bcd_check_writer(bcd, b->w[k]->wmd, &e)) < 0) {
			vss_bcd_free(bcd);
			return vss_error_set(err, rc, "backup components document refused for "
					     "writer %s: %s", b->w[k]->name, e.msg);
		}
	}
	json_decref(b->bcd);
	b->bcd = bcd_json(bcd, err);
	vss_bcd_free(bcd);
	if (!b->bcd)
		return err->code ? err->code : -ENOMEM;
	/* PrepareForBackup, one writer at a time. */
	for (size_t k = 0; k < b->nw;) {
		struct svc_writer *w = b->w[k];
		char *sub = bcd_for_writer(b->bcd, w);
		json_t *out = NULL;
		struct vss_error e;
		const char *back;

		rc = svc_writer_call(svc, w, EV_PREPARE_BACKUP,
				     json_pack("{s:s, s:b, s:s%}", "backup_type",
					       type_names[b->type], "partial_file_support",
					       b->partial, "components", sub, strlen(sub)),
				     deadline_for(b, w), &out, &e);
		free(sub);
		back = json_string_value(json_object_get(out, "components"));
		if (rc == 0 && back && (rc = accept_writer_bcd(b, w, back, &e)) < 0) {
			char msg[VSS_ERROR_MSG_MAX];

			snprintf(msg, sizeof(msg), "it returned a backup components document "
				 "that was refused: %.400s", e.msg);
			svc_writer_set_state(svc, w, WS_FAILED_AT_PREPARE_BACKUP, "nonretryable",
					     msg);
			vss_error_set(&e, rc, "writer %s failed at prepare_backup: %s", w->name,
				      msg);
		}
		json_decref(out);
		if (rc == 0) {
			k++;
			continue;
		}
		if (b->required[k])
			return vss_error_set(err, rc, "%s", e.msg);
		/* An optional writer that failed leaves the backup with its components. */
		{
			int i = bcd_entry(b->bcd, w);

			if (i >= 0)
				json_array_remove(json_object_get(b->bcd, "writers"), (size_t)i);
		}
		drop_writer(b, k);
	}
	text = json_dumps(b->bcd, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	*res = json_pack("{s:s, s:o}", "components", text, "writers", writers_json(svc, b, false));
	free(text);
	return 0;
}

/* ---- shadow.create with writers ---- */

/* Ends a backup whose set failed: Abort to the writers, the set deleted,
 * the session over (nothing stays held for a requester whose set failed). */
static int snapshot_fail(struct vss_service *svc, struct svc_backup *b, int rc,
			 struct vss_error *err)
{
	char why[VSS_ERROR_MSG_MAX + 32];

	snprintf(why, sizeof(why), "%s; the set was aborted", err->msg);
	abort_writers(svc, b, err->msg);
	delete_set(svc, b->set_id, why);
	vss_log("set aborted: %s", err->msg);
	vss_error_set(err, rc, "%s", why);
	session_end(svc, b);
	return rc;
}

int svc_op_backup_shadow_create(struct vss_service *svc, const struct svc_caller *who, json_t *args,
				json_t **res, struct vss_error *err)
{
	struct conn *c = who->conn;
	struct svc_backup *b = session_of(svc, c);
	bool own = !b, no_writers;
	json_t *set_args, *out = NULL, *post;
	int64_t deadline;
	unsigned int window;
	uint64_t wait_ms;
	int rc;

	if ((rc = svc_arg_bool(args, "no_writers", &no_writers, err)) < 0)
		return rc;
	if (b && *b->set_id)
		return vss_error_set(err, -EBUSY, "this backup already took its set %s",
				     b->set_id);
	if (own) {
		if (!(b = calloc(1, sizeof(*b))))
			return vss_error_set(err, -ENOMEM, "out of memory");
		if ((rc = session_args(args, b, &wait_ms, err)) < 0 ||
		    (rc = slot_acquire(svc, b, wait_ms, err)) < 0) {
			free(b);
			return rc;
		}
		if ((rc = pick_writers(svc, b, args, no_writers, err)) < 0) {
			session_end(svc, b);
			return rc;
		}
	} else if (no_writers) {
		b->nw = 0;
	}
	/* PrepareForSnapshot */
	for (size_t k = 0; k < b->nw; k++) {
		struct svc_writer *w = b->w[k];

		if ((rc = svc_writer_call(svc, w, EV_PREPARE_SNAPSHOT,
					  json_pack("{s:s?}", "backup_type",
						    b->type ? type_names[b->type] : NULL),
					  deadline_for(b, w), NULL, err)) < 0)
			return snapshot_fail(svc, b, rc, err);
		svc_writer_set_state(svc, w, WS_WAITING_FOR_FREEZE, NULL, NULL);
	}
	/* Freeze, in order; the window runs from the first Freeze to the last Thaw. */
	window = b->timeout_ms;
	for (size_t k = 0; k < b->nw; k++)
		if (b->w[k]->timeout_ms < window)
			window = b->w[k]->timeout_ms;
	deadline = now_ms() + window;
	for (size_t k = 0; k < b->nw; k++) {
		struct svc_writer *w = b->w[k];
		int64_t left = deadline - now_ms();

		if (left <= 0)
			left = 1;
		if ((rc = svc_writer_call(svc, w, EV_FREEZE, json_pack("{s:i}", "window_ms",
								       (int)window),
					  (unsigned int)left, NULL, err)) < 0)
			return snapshot_fail(svc, b, rc, err);
		svc_writer_set_state(svc, w, WS_WAITING_FOR_THAW, NULL, NULL);
	}
	/* The set itself: freeze, commit, thaw (shadowset.c). */
	set_args = json_deep_copy(args);
	if (!own)
		json_object_set_new(set_args, "hold", json_true());
	pthread_mutex_lock(&svc->lock);
	svc_refresh_mounts(svc);
	rc = svc_op_shadow_create(svc, who, set_args, &out, err);
	pthread_mutex_unlock(&svc->lock);
	json_decref(set_args);
	if (rc < 0)
		return snapshot_fail(svc, b, rc, err);
	snprintf(b->set_id, sizeof(b->set_id), "%s",
		 json_string_value(json_object_get(out, "set")));
	/* Thaw, in reverse order: every writer, then abort if any failed. */
	rc = 0;
	for (size_t k = b->nw; k-- > 0;) {
		struct svc_writer *w = b->w[k];
		int64_t left = deadline - now_ms();
		struct vss_error e;
		int r;

		if (left <= 0) {
			char msg[128];

			snprintf(msg, sizeof(msg), "the freeze-to-thaw window of %u ms ran out",
				 window);
			svc_writer_set_state(svc, w, WS_FAILED_AT_THAW, "timeout", msg);
			r = vss_error_set(&e, -ETIMEDOUT, "writer %s failed at thaw: %s",
					  w->name, msg);
		} else {
			r = svc_writer_call(svc, w, EV_THAW, json_pack("{s:s, s:i}", "set",
								       b->set_id, "window_ms",
								       (int)window),
					    (unsigned int)left, NULL, &e);
		}
		if (r < 0 && rc == 0) {
			rc = r;
			*err = e;
		} else if (r == 0) {
			svc_writer_set_state(svc, w, WS_WAITING_FOR_POST_SNAPSHOT, NULL, NULL);
		}
	}
	if (rc < 0) {
		json_decref(out);
		return snapshot_fail(svc, b, rc, err);
	}
	/* PostSnapshot: a failure is reported, the set stays. */
	post = json_pack("{s:s, s:O}", "set", b->set_id, "shadows",
			 json_object_get(out, "shadows"));
	for (size_t k = 0; k < b->nw; k++) {
		struct svc_writer *w = b->w[k];
		struct vss_error e;

		if (svc_writer_call(svc, w, EV_POST_SNAPSHOT, json_incref(post),
				    deadline_for(b, w), NULL, &e) == 0)
			svc_writer_set_state(svc, w, own ? WS_STABLE
							 : WS_WAITING_FOR_BACKUP_COMPLETE, NULL, NULL);
	}
	json_decref(post);
	json_object_set_new(out, "writers", writers_json(svc, b, false));
	if (own)
		session_end(svc, b);
	*res = out;
	return 0;
}

/* ---- backup.complete, backup.abort ---- */

static void set_all_succeeded(json_t *bcd, bool ok)
{
	json_t *wr, *comp;
	size_t i, j;

	json_array_foreach(json_object_get(bcd, "writers"), i, wr)
		json_array_foreach(json_object_get(wr, "components"), j, comp)
			json_object_set_new(comp, "backup_succeeded", json_boolean(ok));
}

int svc_op_backup_complete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err)
{
	struct conn *c = who->conn;
	struct svc_backup *b = session_of(svc, c);
	const char *given;
	bool succeeded = true;
	json_t *v, *writers;
	char *text;
	int rc;

	if (!b)
		return vss_error_set(err, -ENOENT, "no backup in progress on this connection");
	if ((rc = svc_arg_str(args, "components", false, &given, err)) < 0)
		return rc;
	v = json_object_get(args, "succeeded");
	if (v && !json_is_boolean(v))
		return vss_error_set(err, -EINVAL, "argument \"succeeded\" must be true or false");
	succeeded = !v || json_is_true(v);
	if (given) {
		struct vss_bcd *bcd;
		struct vss_error e;

		if ((rc = check_bcd(given, &bcd, &e)) < 0)
			return vss_error_set(err, rc, "backup components document refused: %s",
					     e.msg);
		vss_bcd_free(bcd);
		json_decref(b->bcd);
		b->bcd = json_loads(given, 0, NULL);
	} else if (b->bcd) {
		set_all_succeeded(b->bcd, succeeded);
	}
	for (size_t k = 0; k < b->nw; k++) {
		struct svc_writer *w = b->w[k];
		char *sub = b->bcd ? bcd_for_writer(b->bcd, w) : NULL;
		struct vss_error e;

		if (svc_writer_call(svc, w, EV_BACKUP_COMPLETE,
				    json_pack("{s:s, s:s?}", "set", b->set_id,
					      "components", sub),
				    deadline_for(b, w), NULL, &e) == 0 &&
		    !failed_state(svc_writer_state(svc, w)))
			svc_writer_set_state(svc, w, WS_STABLE, NULL, NULL);
		free(sub);
	}
	if (*b->set_id) {
		pthread_mutex_lock(&svc->lock);
		for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
			if (sh->owner == c && strcmp(sh->rec.set_id, b->set_id) == 0)
				sh->owner = NULL;
		pthread_mutex_unlock(&svc->lock);
	}
	writers = writers_json(svc, b, false);
	text = b->bcd ? json_dumps(b->bcd, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	*res = json_pack("{s:s, s:s?, s:o}", "set", b->set_id, "components", text,
			 "writers", writers);
	free(text);
	vss_log("backup complete (set %s)", *b->set_id ? b->set_id : "none");
	session_end(svc, b);
	return 0;
}

int svc_op_backup_abort(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err)
{
	struct conn *c = who->conn;
	struct svc_backup *b = session_of(svc, c);
	json_t *writers;
	char set[37];

	if (!b) {
		*res = json_pack("{s:b}", "aborted", 0);
		return 0;
	}
	writers = writers_json(svc, b, false);
	snprintf(set, sizeof(set), "%s", b->set_id);
	abort_session(svc, b, "the requester aborted the backup");
	*res = json_pack("{s:b, s:s, s:o}", "aborted", 1, "set", set, "writers", writers);
	return 0;
}

int svc_op_backup_status(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err)
{
	struct conn *c = who->conn;
	struct svc_backup *b = session_of(svc, c);

	if (!b) {
		*res = json_pack("{s:b}", "active", 0);
		return 0;
	}
	*res = json_pack("{s:b, s:s, s:s, s:o}", "active", 1, "type", type_names[b->type],
			 "set", b->set_id, "writers", writers_json(svc, b, false));
	return 0;
}

bool svc_backup_conn_active(struct vss_service *svc, struct conn *c)
{
	return session_of(svc, c) != NULL;
}

void svc_backup_conn_gone(struct vss_service *svc, struct conn *c)
{
	struct svc_backup *b = session_of(svc, c);

	if (b)
		abort_session(svc, b, "its requester went away before the backup was "
			      "complete");
}
