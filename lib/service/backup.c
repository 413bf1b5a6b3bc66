/*
 * service/backup.c - one backup through vssd: the requester's session, the
 * writers' side of taking a set, and the deadlines of what requesters hold.
 *
 * The backup slot (svc->wreg: slot_busy, cur) admits one set at a time; a
 * second requester waits for it up to its deadline (wait_ms).  A session is
 * owned by the requester's connection.  The sequence (doc/writers.md):
 *
 *   backup.begin    take the slot, pick the writers (exclude, require; an
 *                   unresponsive writer is left out), Identify each: their
 *                   metadata goes to the requester
 *   backup.prepare  the backup components document (given, or every
 *                   component selected); PrepareForBackup to each writer,
 *                   which may set stamps, partial and differenced files
 *   shadow.create   PrepareForSnapshot; Freeze (front-end, back-end,
 *                   system); the coordinator's set (set.c, under
 *                   svc->lock); Thaw (reverse order); PostSnapshot
 *   backup.complete BackupComplete to each writer; the set becomes complete
 *   backup.abort    Abort to each writer; the set is deleted
 *   (either, or the requester gone)  BackupShutdown to each writer that
 *                   Identify reached, as the session ends (session_end)
 *
 * A restore takes the same slot, with the writers of the backup restored
 * (the requester reads the repository and writes the files; vssd only runs
 * the events and keeps nothing of the repository):
 *
 *   restore.begin    take the slot, match the writers of the backup's
 *                    components document with those registered now (by
 *                    class and instance ID, else by class and the
 *                    components), Identify each
 *   restore.prepare  PreRestore: what is restored, from which backup, where;
 *                    a writer failing stops the restore (Abort to every
 *                    writer) before the requester writes anything
 *   restore.complete PostRestore with each component's status; a failure is
 *                    only reported; the restore is over
 *   backup.abort     (or restore.abort, the requester going away, a
 *                    deadline) Abort to each writer: those that let go of
 *                    their data at PreRestore take it back
 *
 * The life of a backup and of its set is one state machine (backup.h,
 * enum svc_backup_state; doc/service.md draws it):
 *
 *   created -> metadata gathered -> prepared for backup (-> prepared ...)
 *   created, metadata gathered, prepared for backup -> snapshotting:
 *     prepare-for-snapshot -> freeze -> commit -> thaw -> post-snapshot
 *   -> shadows ready -> backup complete -> released
 *   every state but backup complete and released -> aborted -> released
 *   created -> released: nothing reached a writer yet
 *   shadows ready -> released: a set taken with "hold" outside a backup,
 *     which its hold (struct svc_set_hold) keeps at shadows ready until
 *     set.complete (backup complete) or its end (aborted)
 *   created -> restore: metadata gathered -> pre-restore -> files
 *     -> post-restore -> restore complete -> released; every restore state
 *     but restore complete -> aborted
 *
 * next_states[] is the table; every change of state goes through
 * backup_enter() (enter_locked()), which asserts the table allows it, and
 * every request that asks for one is first checked by backup_check(),
 * which refuses what the table does not allow with a readable error and
 * changes nothing: backup.prepare once the set is taken, shadow.create a
 * second time, backup.complete before a set is taken (no BackupComplete
 * ever goes out without shadows), set.complete of a backup's set; the
 * restore states lead nowhere near a set, and no PostRestore goes out
 * without a PreRestore before it.  What
 * vssd does on its own (the writers failing, the window running out, the
 * coordinator failing, a requester going away, a deadline) goes to aborted,
 * which every state before complete may do; aborted ends with nothing
 * frozen and nothing half made: the coordinator thawed and undid its own
 * part before it returned (set.h), every writer got Abort, and the set's
 * shadows are deleted.
 *
 * Every event but Freeze and Thaw goes to all the writers at once
 * (svc_writers_call), so writers that do not answer cost one deadline
 * together; Freeze and Thaw go one writer at a time, in order, within the
 * freeze-to-thaw window.
 *
 * Invariants: a writer that fails or does not answer at PrepareForSnapshot,
 * Freeze or Thaw, or a freeze-to-thaw window that runs out, aborts the set:
 * every writer gets Abort and the set's shadows are deleted (the coordinator
 * has already thawed every filesystem it froze).  A requester whose
 * connection closes is aborted the same way (svc_backup_conn_gone).  The
 * session ends, and the slot is free, after complete, abort, or a failed
 * shadow.create.  shadow.create without a session makes a session of its
 * own for the length of the call (writers get the snapshot events only).
 *
 * Holds and their deadlines.  A session holds the slot from backup.begin
 * to backup.complete or backup.abort; a set taken with "hold" outside a
 * session is held (in-progress) until set.complete.  Each hold belongs to
 * one connection and has two deadlines:
 *  - its lease: vssd must hear from the requester at least every lease_ms
 *    (the requester asks at backup.begin or shadow.create; default vssd
 *    --hold-lease, 120 s).  Each backup.* request of the owning connection
 *    and shadow.create in a session renews a session's lease when it ends
 *    (a request in progress never expires); backup.status renews the
 *    connection's held sets too.  The requester library sends
 *    backup.status by itself every third of the lease while it holds a
 *    session, so a program that reads its shadows for hours does nothing
 *    special;
 *  - its limit: hold_ms after it started (asked likewise; default and
 *    maximum vssd --hold-max, 24 h), whatever the requester says.
 * A thread (the reaper) ends a hold whose deadline passed as if its
 * requester had gone away: the session's writers get Abort, its set is
 * deleted, the slot is free; a held set is deleted.  The requester's next
 * call on that connection says why (a notice, kept until then or until the
 * connection closes; backup.status shows it without using it up).  root
 * may end any session the same way (backup.abort with "session"); status
 * and backup.status show who holds the slot, since and until when.
 *
 * Threads: a session's own fields (writers, documents, set) are used by
 * one thread at a time: its owner's, during a request (b->in_use, from
 * session_take or slot_acquire to session_put), or the thread that ends it
 * without its owner (b->ending: the reaper, root's backup.abort), which
 * marks it only while it is not in use; the owner waits for that to finish
 * and then finds the notice.  reg->lock protects in_use, ending, the hold
 * times, the held sets and the notices; removing a held set also takes
 * svc->lock first, so that set.complete, the reaper and a closing
 * connection agree on who ends it.  Lock order: svc->lock, then reg->lock.
 *
 * A backup across hosts (peer.h) is also ended by the reaper, as soon as
 * its owner is not in a request, when another host of its set is lost
 * while it holds its shadows (the watcher of its peers' connections wakes
 * the reaper); a backup.status that finds a host lost ends it at once and
 * says so in its reply.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <vss/writer_state.h>

#include "service/args.h"
#include "service/backup.h"
#include "service/caller.h"
#include "service/log.h"
#include "service/peer.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/volumes.h"
#include "service/writers.h"
#include "service/clock.h"
#include "writer/writer_doc_i.h"

#define SLOT_WAIT_MS 60000u
#define HOLD_MIN_MS  100u

/* A requester's hold on a session or a set (reg->lock). */
struct hold {
	uid_t uid;                        /* the requester */
	pid_t pid;
	uint64_t since_ns;                /* wall clock, for status */
	int64_t since_ms;                 /* monotonic, as the rest */
	int64_t heard_ms;                 /* the end of its last request */
	uint64_t lease_ms;
	uint64_t limit_ms;
};

struct restore_match;

struct svc_backup {
	struct conn *owner;               /* NULL: shadow.create's own session */
	uint64_t id;                      /* "session" of status and backup.abort */
	enum svc_backup_state state;      /* written under reg->lock (backup_enter) */
	bool restore;                     /* a restore's session (restore.begin) */
	struct hold hold;                 /* reg->lock */
	bool in_use;                      /* reg->lock: its owner is in a request */
	bool ending;                      /* reg->lock: another thread is ending it */
	json_t *skipped;                  /* the unresponsive writers left out */
	enum vss_backup_type type;
	bool partial;
	unsigned int timeout_ms;          /* the set's window and event deadline */
	struct svc_writer *w[SVC_WRITERS_MAX];   /* taking part, in freeze order */
	bool required[SVC_WRITERS_MAX];
	size_t nw;
	json_t *bcd;                      /* the backup components document, once prepared;
					   * a restore's: the writers taking part */
	struct restore_match *match;      /* restore.begin, while it matches writers */
	char set_id[37];                  /* "" until the set is taken */
	struct svc_peer_links *links;     /* its set's other hosts, each with a backup of
					   * its own until this one ends (peer.h), or NULL */
};

/* A set taken with "hold" outside a session, until set.complete. */
struct svc_set_hold {
	struct svc_set_hold *next;
	struct conn *conn;
	char set_id[37];
	struct hold hold;
	enum svc_backup_state state;      /* reg->lock: shadows ready until it ends */
};

/* Why a hold ended without its requester, for its next call. */
struct svc_hold_notice {
	struct svc_hold_notice *next;
	struct conn *conn;
	char set_id[37];                  /* "": a session */
	int code;
	char why[VSS_ERROR_MSG_MAX];
};

static const char *const type_names[] = {
	[VSS_BT_FULL] = "full", [VSS_BT_INCREMENTAL] = "incremental",
	[VSS_BT_DIFFERENTIAL] = "differential", [VSS_BT_LOG] = "log",
	[VSS_BT_COPY] = "copy",
};

/* ---- the life of a backup (backup.h): the table and its one check ---- */

#define TO(s) (1u << SVC_BACKUP_##s)
#define RTO(s) (1u << SVC_RESTORE_##s)
#define ABORTABLE TO(ABORTED)

/* From each state, the states a backup may go to next. */
static const unsigned int next_states[SVC_BACKUP_STATES] = {
	/* backup.begin's identify; shadow.create's own backup; nothing sent yet */
	[SVC_BACKUP_CREATED] = TO(GATHERED) | TO(SNAP_PREPARE) | TO(RELEASED) |
			       (1u << SVC_RESTORE_GATHERED) | ABORTABLE,
	/* backup.prepare; shadow.create (the components document is optional) */
	[SVC_BACKUP_GATHERED] = TO(PREPARED) | TO(SNAP_PREPARE) | ABORTABLE,
	/* backup.prepare again, with another document; shadow.create */
	[SVC_BACKUP_PREPARED] = TO(PREPARED) | TO(SNAP_PREPARE) | ABORTABLE,
	[SVC_BACKUP_SNAP_PREPARE] = TO(SNAP_FREEZE) | ABORTABLE,
	[SVC_BACKUP_SNAP_FREEZE] = TO(SNAP_COMMIT) | ABORTABLE,
	[SVC_BACKUP_SNAP_COMMIT] = TO(SNAP_THAW) | ABORTABLE,
	[SVC_BACKUP_SNAP_THAW] = TO(SNAP_POST) | ABORTABLE,
	/* post_snapshot failing is only reported: the set stays */
	[SVC_BACKUP_SNAP_POST] = TO(READY) | ABORTABLE,
	/* backup.complete (set.complete for a held set); a bare shadow.create
	 * with "hold" ends its own backup, and its hold keeps the set */
	[SVC_BACKUP_READY] = TO(COMPLETE) | TO(RELEASED) | ABORTABLE,
	[SVC_BACKUP_COMPLETE] = TO(RELEASED),
	/* A restore: restore.prepare, the requester's files, restore.complete;
	 * post_restore failing is only reported */
	[SVC_RESTORE_GATHERED] = RTO(PRE) | ABORTABLE,
	[SVC_RESTORE_PRE] = RTO(FILES) | ABORTABLE,
	[SVC_RESTORE_FILES] = RTO(POST) | ABORTABLE,
	[SVC_RESTORE_POST] = RTO(COMPLETE) | ABORTABLE,
	[SVC_RESTORE_COMPLETE] = TO(RELEASED),
	[SVC_BACKUP_ABORTED] = TO(RELEASED),
	[SVC_BACKUP_RELEASED] = 0,
};

static const char *const state_names[SVC_BACKUP_STATES] = {
	[SVC_BACKUP_CREATED] = "created",
	[SVC_BACKUP_GATHERED] = "metadata gathered",
	[SVC_BACKUP_PREPARED] = "prepared for backup",
	[SVC_BACKUP_SNAP_PREPARE] = "snapshotting: prepare-for-snapshot",
	[SVC_BACKUP_SNAP_FREEZE] = "snapshotting: freeze",
	[SVC_BACKUP_SNAP_COMMIT] = "snapshotting: commit",
	[SVC_BACKUP_SNAP_THAW] = "snapshotting: thaw",
	[SVC_BACKUP_SNAP_POST] = "snapshotting: post-snapshot",
	[SVC_BACKUP_READY] = "shadows ready",
	[SVC_BACKUP_COMPLETE] = "backup complete",
	[SVC_RESTORE_GATHERED] = "restore: metadata gathered",
	[SVC_RESTORE_PRE] = "restore: pre-restore",
	[SVC_RESTORE_FILES] = "restore: files",
	[SVC_RESTORE_POST] = "restore: post-restore",
	[SVC_RESTORE_COMPLETE] = "restore complete",
	[SVC_BACKUP_ABORTED] = "aborted",
	[SVC_BACKUP_RELEASED] = "released",
};

bool svc_backup_may(enum svc_backup_state from, enum svc_backup_state to)
{
	return from < SVC_BACKUP_STATES && to < SVC_BACKUP_STATES &&
	       (next_states[from] & (1u << to));
}

const char *svc_backup_state_name(enum svc_backup_state s)
{
	return s < SVC_BACKUP_STATES ? state_names[s] : "unknown";
}

/*
 * The one check: 0 if a backup at @from may go to @to now, else why the
 * request @op (that asks for it) is refused: -EBUSY for a step it has gone
 * past, -EINVAL for one it is not ready for.
 */
static int backup_check(enum svc_backup_state from, enum svc_backup_state to, const char *op,
			const char *set, struct vss_error *err)
{
	if (svc_backup_may(from, to))
		return 0;
	if (to == SVC_BACKUP_PREPARED && from == SVC_BACKUP_READY)
		return vss_error_set(err, -EBUSY, "the set is already taken");
	if (to == SVC_BACKUP_SNAP_PREPARE && from == SVC_BACKUP_READY)
		return vss_error_set(err, -EBUSY, "this backup already took its set %s", set);
	if (to == SVC_BACKUP_COMPLETE && from < SVC_BACKUP_READY)
		return vss_error_set(err, -EINVAL, "%s refused: no set was taken in this backup "
				     "(it is at \"%s\"): shadow.create takes it, backup.abort ends "
				     "a backup without one", op, svc_backup_state_name(from));
	if (to == SVC_RESTORE_POST && from == SVC_RESTORE_GATHERED)
		return vss_error_set(err, -EINVAL, "%s refused: no pre_restore went out in this "
				     "restore (restore.prepare sends it; backup.abort ends a restore "
				     "without one)", op);
	return vss_error_set(err, to > from ? -EINVAL : -EBUSY, "%s refused: the session is at "
			     "\"%s\"", op, svc_backup_state_name(from));
}

/* Moves *@state to @to, which the check allowed (anything else is a bug).
 * reg->lock held. */
static void enter_locked(struct svc_writer_registry *reg, enum svc_backup_state *state,
			 enum svc_backup_state to)
{
	assert(svc_mutex_held(&reg->lock));
	assert(svc_backup_may(*state, to));
	*state = to;
}

static void backup_enter(struct vss_service *svc, struct svc_backup *b,
			 enum svc_backup_state to)
{
	svc_mutex_lock(&svc->wreg->lock);
	enter_locked(svc->wreg, &b->state, to);
	svc_mutex_unlock(&svc->wreg->lock);
}

/* ---- the slot ---- */

/* Takes the slot for @b (waiting up to @wait_ms), in use by its caller. */
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
	svc_mutex_lock(&reg->lock);
	while (reg->slot_busy) {
		if (svc_cond_timedwait(&reg->slot_cond, &reg->lock, &dl) == ETIMEDOUT &&
		    reg->slot_busy) {
			svc_mutex_unlock(&reg->lock);
			return vss_error_set(err, -EBUSY, "another backup is in progress; "
					     "gave up waiting after %llu ms (vss status shows it)",
					     (unsigned long long)wait_ms);
		}
	}
	reg->slot_busy = true;
	b->id = ++reg->sessions;
	b->in_use = true;
	b->hold.since_ns = svc_now_ns();
	b->hold.since_ms = b->hold.heard_ms = svc_mono_ms();
	reg->cur = b;
	pthread_cond_signal(&reg->reaper_cond);
	svc_mutex_unlock(&reg->lock);
	svc_writers_prune(svc);
	return 0;
}

/* reg->lock held. */
static void slot_release_locked(struct svc_writer_registry *reg)
{
	assert(svc_mutex_held(&reg->lock));
	reg->slot_busy = false;
	reg->cur = NULL;
	pthread_cond_broadcast(&reg->slot_cond);
	pthread_cond_broadcast(&reg->hold_cond);
}

static struct svc_backup *session_of(struct vss_service *svc, struct conn *c)
{
	struct svc_backup *b = NULL;

	svc_mutex_lock(&svc->wreg->lock);
	if (svc->wreg->cur && svc->wreg->cur->owner == c)
		b = svc->wreg->cur;
	svc_mutex_unlock(&svc->wreg->lock);
	return b;
}

/* The session of @c, in use by its caller until session_put (or its end);
 * NULL if it has none.  Waits while another thread ends it. */
static struct svc_backup *session_take(struct vss_service *svc, struct conn *c)
{
	struct svc_writer_registry *reg = svc->wreg;
	struct svc_backup *b;

	svc_mutex_lock(&reg->lock);
	for (;;) {
		b = reg->cur && reg->cur->owner == c ? reg->cur : NULL;
		if (!b || !b->ending)
			break;
		svc_cond_wait(&reg->hold_cond, &reg->lock);
	}
	if (b)
		b->in_use = true;
	svc_mutex_unlock(&reg->lock);
	return b;
}

/* The owner's request is over: its lease runs again from now. */
static void session_put(struct vss_service *svc, struct svc_backup *b)
{
	struct svc_writer_registry *reg = svc->wreg;

	svc_mutex_lock(&reg->lock);
	b->in_use = false;
	b->hold.heard_ms = svc_mono_ms();
	pthread_cond_broadcast(&reg->hold_cond);
	pthread_cond_signal(&reg->reaper_cond);
	svc_mutex_unlock(&reg->lock);
}

static void session_free(struct svc_backup *b)
{
	json_decref(b->bcd);
	json_decref(b->skipped);
	free(b);
}

static unsigned int deadline_for(const struct svc_backup *b, const struct svc_writer *w);

/* BackupShutdown, when the requester's backup is over (completed or
 * aborted, its requester gone or not), to every writer Identify reached,
 * all at once.  A failure is only recorded in the writer's state. */
static void shutdown_writers(struct vss_service *svc, struct svc_backup *b)
{
	struct svc_wcall calls[SVC_WRITERS_MAX];
	size_t n = 0;

	if (!b->owner || b->state == SVC_BACKUP_CREATED)
		return;         /* shadow.create's own session, or nothing was sent */
	for (size_t k = 0; k < b->nw; k++)
		if (!b->w[k]->gone)
			calls[n++] = (struct svc_wcall){
				.w = b->w[k], .timeout_ms = deadline_for(b, b->w[k]),
				.args = json_pack("{s:s?}", "set",
						  b->set_id[0] ? b->set_id : NULL) };
	svc_writers_call(svc, EV_BACKUP_SHUTDOWN, calls, n);
	for (size_t i = 0; i < n; i++)
		json_decref(calls[i].result);
}

/* Ends @b, in use by the caller (complete, aborted, or with nothing sent to
 * a writer yet, or its held set handed to a hold): the slot is free. */
static void session_end(struct vss_service *svc, struct svc_backup *b)
{
	shutdown_writers(svc, b);
	for (size_t k = 0; k < b->nw; k++)
		svc_writer_enlist(svc, b->w[k], false);
	svc_mutex_lock(&svc->wreg->lock);
	enter_locked(svc->wreg, &b->state, SVC_BACKUP_RELEASED);
	slot_release_locked(svc->wreg);
	svc_mutex_unlock(&svc->wreg->lock);
	session_free(b);
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
 * excluded and the unresponsive (b->skipped), in freeze order; a required
 * writer must be among them. */
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
	b->skipped = json_array();
	n = no_writers ? 0 : svc_writers_snapshot(svc, all, SVC_WRITERS_MAX);
	for (size_t k = 0; k < n; k++) {
		char why[VSS_ERROR_MSG_MAX];
		bool out = false;

		json_array_foreach(exclude, i, e)
			out |= writer_named(all[k], json_string_value(e));
		if (out)
			continue;
		if (!svc_writer_unresponsive(svc, all[k], why, sizeof(why))) {
			b->w[b->nw++] = all[k];
			continue;
		}
		json_array_foreach(require, i, e)
			if (writer_named(all[k], json_string_value(e)))
				return vss_error_set(err, -ETIMEDOUT, "required writer %s is not "
						     "answering: %s", all[k]->name, why);
		vss_log("backup: writer %s left out: %s", all[k]->name, why);
		json_array_append_new(b->skipped, json_pack("{s:s, s:s, s:s}", "name",
							    all[k]->name, "instance",
							    all[k]->instance_id, "why", why));
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
	for (size_t k = 0; k < b->nw; k++)
		svc_writer_enlist(svc, b->w[k], true);
	return 0;
}

static void drop_writer(struct vss_service *svc, struct svc_backup *b, size_t k)
{
	svc_writer_enlist(svc, b->w[k], false);
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
 * Abort to every writer still connected, all at once; those not failed are
 * stable again.  A writer that just timed out is still busy with the event
 * it missed: it gets the Abort too (it will find it when it is done, and
 * undo its freeze), but is not waited for (svc_writers_call).
 */
static void abort_writers(struct vss_service *svc, struct svc_backup *b, const char *why)
{
	struct svc_wcall calls[SVC_WRITERS_MAX];
	size_t n = 0;

	for (size_t k = 0; k < b->nw; k++) {
		if (b->w[k]->gone)
			continue;
		calls[n++] = (struct svc_wcall){
			.w = b->w[k], .timeout_ms = deadline_for(b, b->w[k]),
			.args = json_pack("{s:s, s:s}", "set", b->set_id, "reason", why) };
	}
	svc_writers_call(svc, EV_ABORT, calls, n);
	for (size_t i = 0; i < n; i++) {
		json_decref(calls[i].result);
		if (!failed_state(svc_writer_state(svc, calls[i].w)))
			svc_writer_set_state(svc, calls[i].w, WS_STABLE, NULL, NULL);
	}
}

/* Deletes @b's set, after its other hosts' backups were told to abort. */
static void delete_set(struct vss_service *svc, struct svc_backup *b, const char *why)
{
	const char *set = b->set_id;
	struct vss_error e;

	if (!*set)
		return;
	svc_lock(svc);
	svc_peer_links_end(svc, &b->links, set, false, false, why, &e);
	for (struct svc_shadow *sh = svc->shadows, *next; sh; sh = next) {
		next = sh->next;
		if (strcmp(sh->rec.set_id, set) == 0)
			svc_shadow_remove(svc, sh, why);
	}
	svc_remotes_drop(svc, NULL, set, why);
	svc_unlock(svc);
}

static const char *kind_of(const struct svc_backup *b)
{
	return b->restore ? "restore" : "backup";
}

static void abort_session(struct vss_service *svc, struct svc_backup *b, const char *why)
{
	backup_enter(svc, b, SVC_BACKUP_ABORTED);
	vss_log("%s aborted: %s", kind_of(b), why);
	abort_writers(svc, b, why);
	delete_set(svc, b, why);
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

/* ---- holds: leases, limits, the reaper, notices ---- */

/* A new hold of @who: lease_ms and hold_ms as asked (at most vssd's
 * --hold-max; a lease never longer than the limit). */
static int hold_args(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		     struct hold *h, struct vss_error *err)
{
	uint64_t lease = svc->hold_lease_ms, limit = svc->hold_max_ms;
	int rc;

	if ((rc = svc_arg_u64(args, "lease_ms", false, &lease, err)) < 0 ||
	    (rc = svc_arg_u64(args, "hold_ms", false, &limit, err)) < 0)
		return rc;
	if (lease < HOLD_MIN_MS || limit < HOLD_MIN_MS)
		return vss_error_set(err, -EINVAL, "arguments \"lease_ms\" and \"hold_ms\" "
				     "are at least %u", HOLD_MIN_MS);
	if (limit > svc->hold_max_ms)
		limit = svc->hold_max_ms;
	if (lease > limit)
		lease = limit;
	h->uid = who->uid;
	h->pid = who->pid;
	h->since_ns = svc_now_ns();
	h->since_ms = h->heard_ms = svc_mono_ms();
	h->lease_ms = lease;
	h->limit_ms = limit;
	return 0;
}

static int64_t hold_until(const struct hold *h)
{
	int64_t lease = h->heard_ms + (int64_t)h->lease_ms;
	int64_t limit = h->since_ms + (int64_t)h->limit_ms;

	return lease < limit ? lease : limit;
}

/* Why @h ended at @now (its deadline passed). */
static void hold_expired_why(const struct hold *h, int64_t now, char *out, size_t len)
{
	if (h->since_ms + (int64_t)h->limit_ms <= now)
		snprintf(out, len, "it was held for %llu ms, its limit (hold_ms)",
			 (unsigned long long)h->limit_ms);
	else
		snprintf(out, len, "vssd did not hear from its requester (uid %u, pid %d) for "
			 "%llu ms, its lease (lease_ms)", (unsigned)h->uid, (int)h->pid,
			 (unsigned long long)h->lease_ms);
}

/* @h for status: who, since and until when (reg->lock held). */
static json_t *hold_json(const struct hold *h, bool until)
{
	int64_t now = svc_mono_ms(), left = hold_until(h) - now;
	char since[40], at[40];

	svc_time_str(h->since_ns, since);
	if (left < 0)
		left = 0;
	svc_time_str(svc_now_ns() + (uint64_t)left * 1000000u, at);
	return json_pack("{s:i, s:i, s:s, s:s?, s:I, s:I, s:I}", "uid", (int)h->uid,
			 "pid", (int)h->pid, "since", since, "until", until ? at : NULL,
			 "left_ms", (json_int_t)(until ? left : 0),
			 "lease_ms", (json_int_t)h->lease_ms, "hold_ms", (json_int_t)h->limit_ms);
}

/* reg->lock held. */
static void notice_add(struct svc_writer_registry *reg, struct conn *c, const char *set,
		       int code, const char *why)
{
	struct svc_hold_notice *n = calloc(1, sizeof(*n));

	assert(svc_mutex_held(&reg->lock));
	if (!n)
		return;
	n->conn = c;
	snprintf(n->set_id, sizeof(n->set_id), "%s", set);
	n->code = code;
	snprintf(n->why, sizeof(n->why), "%s", why);
	n->next = reg->notices;
	reg->notices = n;
}

/*
 * The notice for @c's session (@set NULL) or held set @set: its code, with
 * the reason in @err; 0 if there is none.  Used up if @take.  reg->lock held.
 */
static int notice_find(struct svc_writer_registry *reg, struct conn *c, const char *set,
		       bool take, struct vss_error *err)
{
	assert(svc_mutex_held(&reg->lock));
	for (struct svc_hold_notice **pp = &reg->notices; *pp; pp = &(*pp)->next) {
		struct svc_hold_notice *n = *pp;
		int code = n->code;

		if (n->conn != c || strcmp(n->set_id, set ? set : "") != 0)
			continue;
		vss_error_set(err, code, "%s", n->why);
		if (take) {
			*pp = n->next;
			free(n);
		}
		return code;
	}
	return 0;
}

/* The notice of @c's session, used up: its code (and @err), or 0. */
static int session_notice(struct vss_service *svc, struct conn *c, struct vss_error *err)
{
	int rc;

	svc_mutex_lock(&svc->wreg->lock);
	rc = notice_find(svc->wreg, c, NULL, true, err);
	svc_mutex_unlock(&svc->wreg->lock);
	return rc;
}

/*
 * Ends @b without its owner, as if it had gone away: Abort to its writers,
 * its set deleted, the slot free, and a notice for the owner's next call.
 * Called with reg->lock held, @b neither in use nor ending; returns with it
 * held, @b freed.
 */
static void end_without_owner(struct vss_service *svc, struct svc_backup *b, int code,
			      const char *why)
{
	struct svc_writer_registry *reg = svc->wreg;
	char msg[VSS_ERROR_MSG_MAX];

	assert(!b->in_use && !b->ending);
	b->ending = true;
	enter_locked(reg, &b->state, SVC_BACKUP_ABORTED);
	svc_mutex_unlock(&reg->lock);
	if (*b->set_id)
		snprintf(msg, sizeof(msg), "the backup was aborted: %s; its writers got abort "
			 "and its set %s was deleted", why, b->set_id);
	else
		snprintf(msg, sizeof(msg), "the %s was aborted: %s; its writers got abort",
			 kind_of(b), why);
	vss_log("%s (session %llu) aborted: %s", kind_of(b), (unsigned long long)b->id, why);
	abort_writers(svc, b, msg);
	delete_set(svc, b, msg);
	for (size_t k = 0; k < b->nw; k++)
		svc_writer_enlist(svc, b->w[k], false);
	svc_mutex_lock(&reg->lock);
	/* The notice first: the owner, woken by the release, finds it. */
	notice_add(reg, b->owner, "", code, msg);
	enter_locked(reg, &b->state, SVC_BACKUP_RELEASED);
	slot_release_locked(reg);
	session_free(b);
}

/* The hold @h (unlinked from reg->sets) ends @how: complete or aborted.
 * reg->lock held; @h is freed. */
static void set_hold_end(struct svc_writer_registry *reg, struct svc_set_hold *h,
			 enum svc_backup_state how)
{
	enter_locked(reg, &h->state, how);
	enter_locked(reg, &h->state, SVC_BACKUP_RELEASED);
	free(h);
}

/* Deletes @c's held set @set if its deadline has passed (it may have been
 * completed or renewed meanwhile). */
static void expire_set(struct vss_service *svc, struct conn *c, const char *set)
{
	struct svc_writer_registry *reg = svc->wreg;
	struct svc_set_hold *h = NULL;
	char why[256], msg[VSS_ERROR_MSG_MAX];

	svc_lock(svc);
	svc_mutex_lock(&reg->lock);
	for (struct svc_set_hold **pp = &reg->sets; *pp; pp = &(*pp)->next)
		if ((*pp)->conn == c && strcmp((*pp)->set_id, set) == 0 &&
		    hold_until(&(*pp)->hold) <= svc_mono_ms()) {
			h = *pp;
			*pp = h->next;
			break;
		}
	if (!h) {
		svc_mutex_unlock(&reg->lock);
		svc_unlock(svc);
		return;
	}
	hold_expired_why(&h->hold, svc_mono_ms(), why, sizeof(why));
	snprintf(msg, sizeof(msg), "set %s was deleted before set.complete: %s", set, why);
	notice_add(reg, c, set, -ETIMEDOUT, msg);
	set_hold_end(reg, h, SVC_BACKUP_ABORTED);
	svc_mutex_unlock(&reg->lock);
	for (struct svc_shadow *sh = svc->shadows, *next; sh; sh = next) {
		next = sh->next;
		if (sh->owner == c && strcmp(sh->rec.set_id, set) == 0)
			svc_shadow_remove(svc, sh, why);
	}
	svc_remotes_drop(svc, c, set, why);
	svc_unlock(svc);
}

/* The watcher of a backup's other hosts lost one (peer.h): the reaper
 * aborts the backup as soon as no request of its owner runs. */
static void peer_lost(void *ctx)
{
	struct vss_service *svc = ctx;

	svc_mutex_lock(&svc->wreg->lock);
	pthread_cond_signal(&svc->wreg->reaper_cond);
	svc_mutex_unlock(&svc->wreg->lock);
}

/* The reaper: ends the holds whose deadline passed, and the backup whose
 * other host was lost, and sleeps until the next deadline (woken when one
 * may have moved, or a host was lost). */
static void *reaper_main(void *arg)
{
	struct vss_service *svc = arg;
	struct svc_writer_registry *reg = svc->wreg;

	svc_mutex_lock(&reg->lock);
	while (!reg->reaper_stop) {
		struct svc_backup *b = reg->cur;
		struct svc_set_hold *h;
		int64_t now = svc_mono_ms(), next = INT64_MAX;

		if (b && b->owner && !b->in_use && !b->ending) {
			struct vss_error lost;

			if (svc_peer_links_lost(b->links, &lost)) {
				end_without_owner(svc, b, -EIO, lost.msg);
				continue;
			}
			if (hold_until(&b->hold) <= now) {
				char why[256];

				hold_expired_why(&b->hold, now, why, sizeof(why));
				end_without_owner(svc, b, -ETIMEDOUT, why);
				continue;
			}
			next = hold_until(&b->hold);
		}
		for (h = reg->sets; h && hold_until(&h->hold) > now; h = h->next)
			if (hold_until(&h->hold) < next)
				next = hold_until(&h->hold);
		if (h) {
			struct conn *c = h->conn;
			char set[37];

			memcpy(set, h->set_id, sizeof(set));
			svc_mutex_unlock(&reg->lock);
			expire_set(svc, c, set);
			svc_mutex_lock(&reg->lock);
			continue;
		}
		if (next == INT64_MAX) {
			svc_cond_wait(&reg->reaper_cond, &reg->lock);
		} else {
			struct timespec ts = { .tv_sec = next / 1000,
					       .tv_nsec = (next % 1000) * 1000000L };

			svc_cond_timedwait(&reg->reaper_cond, &reg->lock, &ts);
		}
	}
	svc_mutex_unlock(&reg->lock);
	return NULL;
}

int svc_backup_reaper_start(struct vss_service *svc, struct vss_error *err)
{
	struct svc_writer_registry *reg = svc->wreg;
	pthread_condattr_t attr;
	int rc;

	/* The reaper's deadlines are monotonic, as svc_mono_ms(). */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&reg->reaper_cond, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&reg->hold_cond, NULL);
	rc = pthread_create(&reg->reaper, NULL, reaper_main, svc);
	if (rc)
		return vss_error_set(err, -rc, "cannot start a thread: %s", strerror(rc));
	reg->reaper_running = true;
	return 0;
}

void svc_backup_reaper_stop(struct vss_service *svc)
{
	struct svc_writer_registry *reg = svc->wreg;

	if (!reg->reaper_running)
		return;
	svc_mutex_lock(&reg->lock);
	reg->reaper_stop = true;
	pthread_cond_signal(&reg->reaper_cond);
	svc_mutex_unlock(&reg->lock);
	pthread_join(reg->reaper, NULL);
	reg->reaper_running = false;
}

void svc_backup_free(struct vss_service *svc)
{
	struct svc_writer_registry *reg = svc->wreg;

	svc_backup_reaper_stop(svc);
	while (reg->sets) {
		struct svc_set_hold *h = reg->sets;

		reg->sets = h->next;
		free(h);
	}
	while (reg->notices) {
		struct svc_hold_notice *n = reg->notices;

		reg->notices = n->next;
		free(n);
	}
	pthread_cond_destroy(&reg->reaper_cond);
	pthread_cond_destroy(&reg->hold_cond);
}

/* A set @c took with "hold" outside a session: @h (allocated beforehand,
 * so that no held set is without its deadlines) takes it over, its shadows
 * ready until set.complete. */
static void set_hold_add(struct vss_service *svc, struct svc_set_hold *h, struct conn *c,
			 const char *set, const struct hold *hold)
{
	h->conn = c;
	snprintf(h->set_id, sizeof(h->set_id), "%s", set);
	h->hold = *hold;
	h->hold.since_ns = svc_now_ns();
	h->hold.since_ms = h->hold.heard_ms = svc_mono_ms();
	h->state = SVC_BACKUP_READY;
	svc_mutex_lock(&svc->wreg->lock);
	h->next = svc->wreg->sets;
	svc->wreg->sets = h;
	pthread_cond_signal(&svc->wreg->reaper_cond);
	svc_mutex_unlock(&svc->wreg->lock);
}

int svc_backup_set_complete(struct vss_service *svc, struct conn *c, const char *set, int *n,
			    struct vss_error *err)
{
	struct svc_writer_registry *reg = svc->wreg;
	struct svc_set_hold *h = NULL, **at = NULL;
	int rc = 0;

	svc_assert_locked(svc);
	*n = 0;
	svc_mutex_lock(&reg->lock);
	/* Not a way to complete a backup: its set goes with backup.complete. */
	if (reg->cur && reg->cur->owner == c && strcmp(reg->cur->set_id, set) == 0)
		rc = vss_error_set(err, -EINVAL, "set.complete refused: set %s is this "
				   "connection's backup's (at \"%s\"), which backup.complete "
				   "completes", set, svc_backup_state_name(reg->cur->state));
	for (struct svc_set_hold *x = reg->sets; rc == 0 && x; x = x->next)
		if (x->conn == c && strcmp(x->set_id, set) == 0) {
			h = x;
			rc = backup_check(h->state, SVC_BACKUP_COMPLETE, "set.complete", set, err);
			break;
		}
	svc_mutex_unlock(&reg->lock);
	if (rc < 0)
		return rc;
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		if (sh->owner == c && strcmp(sh->rec.set_id, set) == 0) {
			sh->owner = NULL;
			(*n)++;
		}
	*n += svc_remotes_complete(svc, c, set);
	svc_mutex_lock(&reg->lock);
	if (*n == 0) {
		/* Held past its deadline, vssd deleted it (and said why once). */
		rc = notice_find(reg, c, set, true, err);
		svc_mutex_unlock(&reg->lock);
		return rc < 0 ? rc : vss_error_set(err, -ENOENT, "this connection holds no set %s",
						   set);
	}
	/* Still listed: the reaper and a closing connection end a hold under
	 * svc->lock too. */
	for (at = &reg->sets; h && *at; at = &(*at)->next)
		if (*at == h) {
			*at = h->next;
			set_hold_end(reg, h, SVC_BACKUP_COMPLETE);
			break;
		}
	svc_mutex_unlock(&reg->lock);
	return 0;
}

/* The slot holder's session for status (reg->lock held), or null. */
static json_t *slot_json(struct svc_writer_registry *reg)
{
	struct svc_backup *b = reg->cur;
	json_t *o;

	assert(svc_mutex_held(&reg->lock));
	if (!b)
		return json_null();
	/* shadow.create's own session lasts one request: it has no lease. */
	o = hold_json(&b->hold, b->owner != NULL);
	json_object_set_new(o, "session", json_integer((json_int_t)b->id));
	json_object_set_new(o, "kind", json_string(b->owner ? kind_of(b) : "shadow.create"));
	json_object_set_new(o, "set", *b->set_id ? json_string(b->set_id) : json_null());
	json_object_set_new(o, "state", json_string(b->ending ? "ending" : b->in_use ?
						    "in a request" : "waiting for its requester"));
	return o;
}

json_t *svc_backup_holds_json(struct vss_service *svc)
{
	struct svc_writer_registry *reg = svc->wreg;
	json_t *sets = json_array(), *o;

	svc_mutex_lock(&reg->lock);
	for (struct svc_set_hold *h = reg->sets; h; h = h->next) {
		json_t *j = hold_json(&h->hold, true);

		json_object_set_new(j, "set", json_string(h->set_id));
		json_array_append_new(sets, j);
	}
	o = json_pack("{s:o, s:o}", "backup", slot_json(reg), "held_sets", sets);
	svc_mutex_unlock(&reg->lock);
	return o;
}

/* ---- backup.begin (and restore.begin) ---- */

/* A new session for @who (not yet in the slot): its type, timeouts and
 * hold from @args; *@wait_ms how long it may wait for the slot. */
static int session_new(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		       struct svc_backup **out, uint64_t *wait_ms, struct vss_error *err)
{
	struct conn *c = who->conn;
	struct svc_backup *b;
	const char *type;
	int rc;

	if (session_of(svc, c))
		return vss_error_set(err, -EBUSY, "this connection already has a backup or "
				     "restore in progress");
	/* A new session: why the last one ended is old news. */
	session_notice(svc, c, NULL);
	if (!(b = calloc(1, sizeof(*b))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	b->owner = c;
	b->type = VSS_BT_FULL;
	if ((rc = svc_arg_str(args, "type", false, &type, err)) < 0 ||
	    (rc = svc_arg_bool(args, "partial_file_support", &b->partial, err)) < 0 ||
	    (rc = session_args(args, b, wait_ms, err)) < 0 ||
	    (rc = hold_args(svc, who, args, &b->hold, err)) < 0)
		goto fail;
	if (type) {
		b->type = 0;
		for (int t = VSS_BT_FULL; t <= VSS_BT_COPY; t++)
			if (strcmp(type, type_names[t]) == 0)
				b->type = t;
		if (!b->type) {
			rc = vss_error_set(err, -EINVAL, "unknown backup type \"%s\" (full, "
					   "incremental, differential, log, copy)", type);
			goto fail;
		}
	}
	*out = b;
	return 0;
fail:
	free(b);
	return rc;
}

/*
 * Identify (GatherWriterMetadata) to every writer of @b at once.  One that
 * fails leaves the session (with its components), unless it is required:
 * then the step fails, and @on_drop (may be NULL) is told of each that left.
 */
static int identify(struct vss_service *svc, struct svc_backup *b,
		    void (*on_drop)(struct svc_backup *b, struct svc_writer *w, const char *why),
		    struct vss_error *err)
{
	struct svc_wcall calls[SVC_WRITERS_MAX];
	size_t n = b->nw;
	int rc = 0;

	for (size_t k = 0; k < n; k++)
		calls[k] = (struct svc_wcall){
			.w = b->w[k], .timeout_ms = deadline_for(b, b->w[k]),
			.args = json_pack("{s:s}", "backup_type", type_names[b->type]) };
	svc_writers_call(svc, EV_IDENTIFY, calls, n);
	for (size_t i = 0, k = 0; i < n; i++) {
		const char *doc = json_string_value(json_object_get(calls[i].result, "metadata"));

		/* A writer may give its metadata again: what it is now. */
		if (calls[i].rc == 0 && doc)
			calls[i].rc = svc_writer_refresh(svc, calls[i].w, doc, &calls[i].err);
		json_decref(calls[i].result);
		if (calls[i].rc < 0 && !b->required[k]) {
			if (on_drop)
				on_drop(b, b->w[k], calls[i].err.msg);
			drop_writer(svc, b, k);
			continue;
		}
		if (calls[i].rc < 0 && rc == 0)
			rc = vss_error_set(err, calls[i].err.code, "%s", calls[i].err.msg);
		k++;
	}
	return rc;
}

int svc_op_backup_begin(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err)
{
	struct svc_backup *b;
	bool no_writers;
	uint64_t wait_ms;
	int rc;

	if ((rc = svc_arg_bool(args, "no_writers", &no_writers, err)) < 0 ||
	    (rc = session_new(svc, who, args, &b, &wait_ms, err)) < 0)
		return rc;
	if ((rc = slot_acquire(svc, b, wait_ms, err)) < 0) {
		free(b);
		return rc;
	}
	if ((rc = pick_writers(svc, b, args, no_writers, err)) < 0) {
		session_end(svc, b);
		return rc;
	}
	if ((rc = identify(svc, b, NULL, err)) < 0) {
		abort_session(svc, b, err->msg);
		return rc;
	}
	backup_enter(svc, b, SVC_BACKUP_GATHERED);
	vss_log("backup started (session %llu, %s, %zu writer%s)", (unsigned long long)b->id,
		type_names[b->type], b->nw, b->nw == 1 ? "" : "s");
	*res = json_pack("{s:s, s:b, s:o, s:O, s:I, s:I, s:I}", "type", type_names[b->type],
			 "partial_file_support", b->partial, "writers",
			 writers_json(svc, b, true), "skipped", b->skipped,
			 "session", (json_int_t)b->id, "lease_ms", (json_int_t)b->hold.lease_ms,
			 "hold_ms", (json_int_t)b->hold.limit_ms);
	session_put(svc, b);
	return 0;
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

/* The document a writer answered @ev with, into b->bcd; one refused fails
 * the writer at @ev (the document keeps what it had), said in @e. */
static int take_back_bcd(struct vss_service *svc, struct svc_backup *b, struct svc_writer *w,
			 enum svc_wevent ev, const char *back, struct vss_error *e)
{
	char msg[VSS_ERROR_MSG_MAX];
	int r = accept_writer_bcd(b, w, back, e);

	if (r == 0)
		return 0;
	snprintf(msg, sizeof(msg), "it returned a backup components document that was "
		 "refused: %.400s", e->msg);
	svc_writer_set_state(svc, w, ev == EV_PREPARE_BACKUP ? WS_FAILED_AT_PREPARE_BACKUP :
			     WS_FAILED_AT_POST_SNAPSHOT, "nonretryable", msg);
	return vss_error_set(e, r, "writer %s failed at %s: %s", w->name, svc_event_name(ev),
			     msg);
}

/* @c has no session: why (once), if vssd ended it, else -ENOENT and @what. */
static int no_session(struct vss_service *svc, struct conn *c, const char *what,
		      struct vss_error *err)
{
	int rc = session_notice(svc, c, err);

	return rc < 0 ? rc : vss_error_set(err, -ENOENT, "%s", what);
}

static int prepare(struct vss_service *svc, struct svc_backup *b, json_t *args, json_t **res,
		   struct vss_error *err)
{
	struct svc_wcall calls[SVC_WRITERS_MAX];
	struct vss_bcd *bcd = NULL;
	json_t *dropped;
	const char *given;
	char *text;
	size_t n;
	int rc;

	if ((rc = backup_check(b->state, SVC_BACKUP_PREPARED, "backup.prepare", b->set_id,
			       err)) < 0 ||
	    (rc = svc_arg_str(args, "components", false, &given, err)) < 0)
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
	/* PrepareForBackup, to every writer at once; then what each returned. */
	n = b->nw;
	for (size_t k = 0; k < n; k++) {
		char *sub = bcd_for_writer(b->bcd, b->w[k]);

		calls[k] = (struct svc_wcall){
			.w = b->w[k], .timeout_ms = deadline_for(b, b->w[k]),
			.args = json_pack("{s:s, s:b, s:s%}", "backup_type", type_names[b->type],
					  "partial_file_support", b->partial, "components", sub,
					  strlen(sub)) };
		free(sub);
	}
	svc_writers_call(svc, EV_PREPARE_BACKUP, calls, n);
	rc = 0;
	dropped = json_array();
	for (size_t i = 0, k = 0; i < n; i++) {
		struct svc_writer *w = calls[i].w;
		const char *back = json_string_value(json_object_get(calls[i].result,
								     "components"));
		struct vss_error *e = &calls[i].err;
		int r = calls[i].rc;

		if (r == 0 && back)
			r = take_back_bcd(svc, b, w, EV_PREPARE_BACKUP, back, e);
		json_decref(calls[i].result);
		if (r == 0) {
			k++;
			continue;
		}
		if (b->required[k]) {
			if (rc == 0)
				rc = vss_error_set(err, r, "%s", e->msg);
			k++;
			continue;
		}
		/* An optional writer that failed leaves the backup with its
		 * components; the requester is told which, and why. */
		{
			int j = bcd_entry(b->bcd, w);

			if (j >= 0)
				json_array_remove(json_object_get(b->bcd, "writers"), (size_t)j);
		}
		json_array_append_new(dropped, svc_writer_json(svc, w, false));
		drop_writer(svc, b, k);
	}
	if (rc < 0) {
		json_decref(dropped);
		return rc;
	}
	backup_enter(svc, b, SVC_BACKUP_PREPARED);
	text = json_dumps(b->bcd, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	*res = json_pack("{s:s, s:o, s:o}", "components", text, "writers",
			 writers_json(svc, b, false), "dropped", dropped);
	free(text);
	return 0;
}

int svc_op_backup_prepare(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			  json_t **res, struct vss_error *err)
{
	struct svc_backup *b = session_take(svc, who->conn);
	int rc;

	if (!b)
		return no_session(svc, who->conn, "no backup in progress on this connection "
				  "(backup.begin first)", err);
	rc = prepare(svc, b, args, res, err);
	session_put(svc, b);
	return rc;
}

/* ---- shadow.create with writers ---- */

/* Ends a backup whose set failed: Abort to the writers, the set deleted,
 * the session over (nothing stays held for a requester whose set failed). */
static int snapshot_fail(struct vss_service *svc, struct svc_backup *b, int rc,
			 struct vss_error *err)
{
	char why[VSS_ERROR_MSG_MAX + 32];

	backup_enter(svc, b, SVC_BACKUP_ABORTED);
	/* The coordinator's own message may say so already. */
	snprintf(why, sizeof(why), "%s%s", err->msg,
		 strstr(err->msg, "the set was aborted") ? "" : "; the set was aborted");
	abort_writers(svc, b, err->msg);
	delete_set(svc, b, why);
	vss_log("set aborted: %s", err->msg);
	vss_error_set(err, rc, "%s", why);
	session_end(svc, b);
	return rc;
}

/* Sends @ev to every writer of @b at once (args: @args, shared); the first
 * failure in freeze order is the result.  Writers that answered get @ok_state. */
static int call_all(struct vss_service *svc, struct svc_backup *b, enum svc_wevent ev,
		    json_t *args, int ok_state, struct vss_error *err)
{
	struct svc_wcall calls[SVC_WRITERS_MAX];
	int rc = 0;

	for (size_t k = 0; k < b->nw; k++)
		calls[k] = (struct svc_wcall){ .w = b->w[k], .args = json_incref(args),
					       .timeout_ms = deadline_for(b, b->w[k]) };
	json_decref(args);
	svc_writers_call(svc, ev, calls, b->nw);
	for (size_t k = 0; k < b->nw; k++) {
		json_decref(calls[k].result);
		if (calls[k].rc == 0)
			svc_writer_set_state(svc, b->w[k], ok_state, NULL, NULL);
		else if (rc == 0 && err)
			rc = vss_error_set(err, calls[k].rc, "%s", calls[k].err.msg);
	}
	return rc;
}

/* PostSnapshot, to every writer at once (a failure is only reported):
 * each gets its entry of the components document, if the backup has one,
 * and may hand it back changed (its backup metadata, known only now).
 * Writers that answered get @ok_state. */
static void post_snapshot(struct vss_service *svc, struct svc_backup *b, json_t *shadows,
			  int ok_state)
{
	struct svc_wcall calls[SVC_WRITERS_MAX];

	for (size_t k = 0; k < b->nw; k++) {
		char *sub = b->bcd ? bcd_for_writer(b->bcd, b->w[k]) : NULL;

		calls[k] = (struct svc_wcall){
			.w = b->w[k], .timeout_ms = deadline_for(b, b->w[k]),
			.args = json_pack("{s:s, s:O, s:s?}", "set", b->set_id, "shadows",
					  shadows, "components", sub) };
		free(sub);
	}
	svc_writers_call(svc, EV_POST_SNAPSHOT, calls, b->nw);
	for (size_t k = 0; k < b->nw; k++) {
		const char *back = json_string_value(json_object_get(calls[k].result,
								     "components"));
		int r = calls[k].rc;

		if (r == 0 && back && b->bcd &&
		    (r = take_back_bcd(svc, b, b->w[k], EV_POST_SNAPSHOT, back,
				       &calls[k].err)) < 0)
			vss_log("%s", calls[k].err.msg);
		json_decref(calls[k].result);
		if (r == 0)
			svc_writer_set_state(svc, b->w[k], ok_state, NULL, NULL);
	}
}

/* shadow.create: with the caller's session (taken with hold, its set), or
 * with a session of its own for the length of the call. */
static int shadow_create(struct vss_service *svc, const struct svc_caller *who,
			 struct svc_backup *b, json_t *args, const struct svc_set_sync *sync,
			 json_t **res, struct vss_error *err)
{
	struct conn *c = who->conn;
	bool own = !b->owner, hold_set = false;
	struct svc_set_hold *held = NULL;     /* own, with "hold": what keeps the set */
	struct hold hold = { 0 };
	/* A requester's backup: other hosts' writers take part in it too. */
	struct svc_peer_backup peers = {
		.type = type_names[b->type], .lease_ms = b->hold.lease_ms,
		.hold_ms = b->hold.limit_ms, .timeout_ms = b->timeout_ms };
	json_t *out = NULL;
	int64_t deadline;
	unsigned int window;
	int rc;

	if (own && ((rc = svc_arg_bool(args, "hold", &hold_set, err)) < 0 ||
		    (hold_set && (rc = hold_args(svc, who, args, &hold, err)) < 0) ||
		    (hold_set && !(held = calloc(1, sizeof(*held))) &&
		     (rc = vss_error_set(err, -ENOMEM, "out of memory")) < 0))) {
		session_end(svc, b);
		return rc;
	}
	/* The other hosts' backups are begun and prepared before any writer
	 * here prepares for the snapshot: every host's writers are prepared
	 * for backup before any freezes, and a host that refuses fails the set
	 * with nothing frozen anywhere. */
	if (!own && !sync) {
		bool no_writers = false;

		if ((rc = svc_arg_bool(args, "no_writers", &no_writers, err)) < 0 ||
		    (rc = svc_peer_backup_begin(svc, who, json_object_get(args, "targets"),
						no_writers, &peers, err)) < 0)
			goto fail;
	}
	/* PrepareForSnapshot */
	backup_enter(svc, b, SVC_BACKUP_SNAP_PREPARE);
	rc = call_all(svc, b, EV_PREPARE_SNAPSHOT,
		      json_pack("{s:s?}", "backup_type", b->type ? type_names[b->type] : NULL),
		      WS_WAITING_FOR_FREEZE, err);
	if (rc < 0)
		goto fail;
	backup_enter(svc, b, SVC_BACKUP_SNAP_FREEZE);
	/* Freeze, in order; the window runs from the first Freeze to the last Thaw. */
	window = b->timeout_ms;
	for (size_t k = 0; k < b->nw; k++)
		if (b->w[k]->timeout_ms < window)
			window = b->w[k]->timeout_ms;
	deadline = svc_mono_ms() + window;
	for (size_t k = 0; k < b->nw; k++) {
		struct svc_writer *w = b->w[k];
		int64_t left = deadline - svc_mono_ms();

		if (left <= 0)
			left = 1;
		if ((rc = svc_writer_call(svc, w, EV_FREEZE, json_pack("{s:i}", "window_ms",
								       (int)window),
					  (unsigned int)left, NULL, err)) < 0)
			goto fail;
		svc_writer_set_state(svc, w, WS_WAITING_FOR_THAW, NULL, NULL);
	}
	/* The set itself: freeze, commit, thaw (set.c); held by the requester
	 * until backup.complete (or set.complete with "hold"). */
	backup_enter(svc, b, SVC_BACKUP_SNAP_COMMIT);
	svc_lock(svc);
	svc_refresh_mounts(svc);
	rc = svc_shadow_create(svc, who, args, !own || hold_set ? c : NULL, sync,
			       !own && !sync ? &peers : NULL, &out, err);
	svc_unlock(svc);
	svc_peer_set_free(peers.ps);     /* its connections are in peers.links now */
	peers.ps = NULL;
	if (rc < 0)
		goto fail;
	b->links = peers.links;
	if (b->links) {
		struct vss_error e;

		/* A host lost from now on aborts the backup at once (the reaper). */
		if (svc_peer_links_watch(b->links, peer_lost, svc, &e) < 0)
			vss_log("backup: %s; a host lost is found at the backup's end", e.msg);
	}
	snprintf(b->set_id, sizeof(b->set_id), "%s",
		 json_string_value(json_object_get(out, "set")));
	/* Thaw, in reverse order: every writer, then abort if any failed. */
	backup_enter(svc, b, SVC_BACKUP_SNAP_THAW);
	rc = 0;
	for (size_t k = b->nw; k-- > 0;) {
		struct svc_writer *w = b->w[k];
		int64_t left = deadline - svc_mono_ms();
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
		goto fail;
	}
	/* PostSnapshot: a failure is reported, the set stays. */
	backup_enter(svc, b, SVC_BACKUP_SNAP_POST);
	post_snapshot(svc, b, json_object_get(out, "shadows"),
		      own ? WS_STABLE : WS_WAITING_FOR_BACKUP_COMPLETE);
	backup_enter(svc, b, SVC_BACKUP_READY);
	json_object_set_new(out, "writers", writers_json(svc, b, false));
	if (b->bcd) {
		char *text = json_dumps(b->bcd, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		json_object_set_new(out, "components", json_string(text ? text : ""));
		free(text);
	}
	if (own) {
		json_object_set(out, "skipped", b->skipped);
		if (held) {
			/* Its hold keeps the set, ready, until set.complete. */
			set_hold_add(svc, held, c, b->set_id, &hold);
			json_object_set_new(out, "lease_ms", json_integer((json_int_t)hold.lease_ms));
			json_object_set_new(out, "hold_ms", json_integer((json_int_t)hold.limit_ms));
		} else {
			backup_enter(svc, b, SVC_BACKUP_COMPLETE);
		}
		session_end(svc, b);
	}
	*res = out;
	return 0;
fail:
	free(held);
	/* Their connections closing abort the other hosts' backups begun. */
	svc_peer_set_free(peers.ps);
	return snapshot_fail(svc, b, rc, err);
}

int svc_op_backup_shadow_create(struct vss_service *svc, const struct svc_caller *who,
				json_t *args, json_t **res, struct vss_error *err)
{
	return svc_backup_shadow_create_sync(svc, who, args, NULL, res, err);
}

int svc_backup_shadow_create_sync(struct vss_service *svc, const struct svc_caller *who,
				  json_t *args, const struct svc_set_sync *sync, json_t **res,
				  struct vss_error *err)
{
	struct conn *c = who->conn;
	struct svc_backup *b = session_take(svc, c);
	bool no_writers;
	uint64_t wait_ms;
	int rc;

	if ((rc = svc_arg_bool(args, "no_writers", &no_writers, err)) < 0)
		goto out;
	if (b && (rc = backup_check(b->state, SVC_BACKUP_SNAP_PREPARE, "shadow.create",
				    b->set_id, err)) < 0)
		goto out;
	if (b) {
		if (no_writers) {
			for (size_t k = 0; k < b->nw; k++)
				svc_writer_enlist(svc, b->w[k], false);
			b->nw = 0;
		}
		/* With @sync: another host's backup, begun on this connection
		 * (peer.h, struct svc_peer_backup). */
		rc = shadow_create(svc, who, b, args, sync, res, err);
		/* A failed set ended the backup (snapshot_fail). */
		if (rc < 0)
			return rc;
		goto out;
	}
	/* Meant for a backup that vssd ended meanwhile: say so, take nothing. */
	if ((rc = session_notice(svc, c, err)) < 0)
		return rc;
	if (!(b = calloc(1, sizeof(*b))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	b->hold.uid = who->uid;
	b->hold.pid = who->pid;
	if ((rc = session_args(args, b, &wait_ms, err)) < 0 ||
	    (rc = slot_acquire(svc, b, wait_ms, err)) < 0) {
		free(b);
		return rc;
	}
	if ((rc = pick_writers(svc, b, args, no_writers, err)) < 0) {
		session_end(svc, b);
		return rc;
	}
	return shadow_create(svc, who, b, args, sync, res, err);
out:
	if (b)
		session_put(svc, b);
	return rc;
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

/* backup.complete; *@ended when a host failed it, which ended @b (aborted). */
static int complete(struct vss_service *svc, struct conn *c, struct svc_backup *b,
		    json_t *args, json_t **res, bool *ended, struct vss_error *err)
{
	struct svc_wcall calls[SVC_WRITERS_MAX];
	const char *given;
	bool succeeded = true;
	json_t *v, *writers;
	char *text;
	int rc;

	/* BackupComplete only for a set taken. */
	if ((rc = backup_check(b->state, SVC_BACKUP_COMPLETE, "backup.complete", b->set_id,
			       err)) < 0 ||
	    (rc = svc_arg_str(args, "components", false, &given, err)) < 0)
		return rc;
	assert(*b->set_id);
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
	/* The other hosts first: one that cannot complete aborts the backup
	 * everywhere (those that completed already keep their members, deleted
	 * with the set). */
	if (b->links) {
		svc_lock(svc);
		rc = svc_peer_links_end(svc, &b->links, b->set_id, true, succeeded, NULL, err);
		svc_unlock(svc);
		if (rc < 0) {
			char why[VSS_ERROR_MSG_MAX];

			snprintf(why, sizeof(why), "%s", err->msg);
			abort_session(svc, b, why);
			*ended = true;
			return vss_error_set(err, rc, "%s; the backup was aborted: its writers got "
					     "abort and its set was deleted", why);
		}
	}
	/* BackupComplete, to every writer at once: a failure is only reported. */
	backup_enter(svc, b, SVC_BACKUP_COMPLETE);
	for (size_t k = 0; k < b->nw; k++) {
		char *sub = b->bcd ? bcd_for_writer(b->bcd, b->w[k]) : NULL;

		calls[k] = (struct svc_wcall){
			.w = b->w[k], .timeout_ms = deadline_for(b, b->w[k]),
			.args = json_pack("{s:s, s:s?}", "set", b->set_id, "components", sub) };
		free(sub);
	}
	svc_writers_call(svc, EV_BACKUP_COMPLETE, calls, b->nw);
	for (size_t k = 0; k < b->nw; k++) {
		json_decref(calls[k].result);
		if (calls[k].rc == 0 && !failed_state(svc_writer_state(svc, b->w[k])))
			svc_writer_set_state(svc, b->w[k], WS_STABLE, NULL, NULL);
	}
	svc_lock(svc);
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		if (sh->owner == c && strcmp(sh->rec.set_id, b->set_id) == 0)
			sh->owner = NULL;
	svc_remotes_complete(svc, c, b->set_id);
	svc_unlock(svc);
	writers = writers_json(svc, b, false);
	text = b->bcd ? json_dumps(b->bcd, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	*res = json_pack("{s:s, s:s?, s:o}", "set", b->set_id, "components", text,
			 "writers", writers);
	free(text);
	vss_log("backup complete (session %llu, set %s)", (unsigned long long)b->id, b->set_id);
	session_end(svc, b);
	return 0;
}

int svc_op_backup_complete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err)
{
	struct svc_backup *b = session_take(svc, who->conn);
	bool ended = false;
	int rc;

	if (!b)
		return no_session(svc, who->conn, "no backup in progress on this connection",
				  err);
	rc = complete(svc, who->conn, b, args, res, &ended, err);
	if (rc < 0 && !ended)
		session_put(svc, b);
	return rc;
}

/*
 * backup.abort with "session": root ends another requester's session, once
 * no request of its own is running (its requests are bounded by their
 * deadlines), as the reaper would.
 */
static int abort_other(struct vss_service *svc, const struct svc_caller *who, uint64_t id,
		       json_t **res, struct vss_error *err)
{
	struct svc_writer_registry *reg = svc->wreg;
	struct svc_backup *b;
	char why[128], set[37];

	svc_mutex_lock(&reg->lock);
	for (;;) {
		b = reg->cur;
		if (!b || b->id != id || !b->owner) {
			svc_mutex_unlock(&reg->lock);
			return vss_error_set(err, -ENOENT, "no backup session %llu is in progress "
					     "(vss status shows the one that is)",
					     (unsigned long long)id);
		}
		if (who->role != SVC_ROLE_ROOT) {
			svc_mutex_unlock(&reg->lock);
			return vss_error_set(err, -EACCES, "permission denied: only root may abort "
					     "another requester's backup");
		}
		if (!b->in_use && !b->ending)
			break;
		svc_cond_wait(&reg->hold_cond, &reg->lock);
	}
	snprintf(why, sizeof(why), "root (pid %d) aborted it", (int)who->pid);
	memcpy(set, b->set_id, sizeof(set));
	end_without_owner(svc, b, -ECANCELED, why);
	svc_mutex_unlock(&reg->lock);
	*res = json_pack("{s:b, s:I, s:s}", "aborted", 1, "session", (json_int_t)id, "set", set);
	return 0;
}

int svc_op_backup_abort(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err)
{
	struct conn *c = who->conn;
	struct svc_backup *b;
	struct vss_error e;
	uint64_t id = 0;
	json_t *writers;
	char set[37];
	int rc;

	if ((rc = svc_arg_u64(args, "session", false, &id, err)) < 0)
		return rc;
	b = session_take(svc, c);
	if (id && (!b || b->id != id)) {
		if (b)
			session_put(svc, b);
		return abort_other(svc, who, id, res, err);
	}
	if (!b) {
		rc = session_notice(svc, c, &e);
		*res = json_pack("{s:b, s:s?}", "aborted", 0, "ended", rc < 0 ? e.msg : NULL);
		return 0;
	}
	writers = writers_json(svc, b, false);
	snprintf(set, sizeof(set), "%s", b->set_id);
	abort_session(svc, b, "the requester aborted the backup");
	*res = json_pack("{s:b, s:s, s:o}", "aborted", 1, "set", set, "writers", writers);
	return 0;
}

/* backup.status: the caller's backup (renewing its lease and those of its
 * held sets), or why vssd ended it; and who holds the slot. */
int svc_op_backup_status(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err)
{
	struct svc_writer_registry *reg = svc->wreg;
	struct conn *c = who->conn;
	struct svc_backup *b = session_take(svc, c);
	struct vss_error e;
	json_t *holds = svc_backup_holds_json(svc), *hold;

	svc_mutex_lock(&reg->lock);
	for (struct svc_set_hold *h = reg->sets; h; h = h->next)
		if (h->conn == c)
			h->hold.heard_ms = svc_mono_ms();
	pthread_cond_signal(&reg->reaper_cond);
	if (!b) {
		int rc = notice_find(reg, c, NULL, false, &e);

		svc_mutex_unlock(&reg->lock);
		*res = json_pack("{s:b, s:s?, s:O}", "active", 0, "ended", rc < 0 ? e.msg : NULL,
				 "holder", json_object_get(holds, "backup"));
		json_decref(holds);
		return 0;
	}
	hold = hold_json(&b->hold, true);
	svc_mutex_unlock(&reg->lock);
	if (svc_peer_links_renew(svc, b->links, &e) < 0) {
		/* A host lost: the backup is aborted everywhere now, and this
		 * reply says so as the next call would. */
		json_decref(hold);
		svc_mutex_lock(&reg->lock);
		b->in_use = false;
		end_without_owner(svc, b, -EIO, e.msg);
		pthread_cond_broadcast(&reg->hold_cond);
		notice_find(reg, c, NULL, false, &e);
		svc_mutex_unlock(&reg->lock);
		json_decref(holds);
		holds = svc_backup_holds_json(svc);
		*res = json_pack("{s:b, s:s, s:O}", "active", 0, "ended", e.msg, "holder",
				 json_object_get(holds, "backup"));
		json_decref(holds);
		return 0;
	}
	json_object_update_new(hold, json_pack("{s:b, s:I, s:s, s:s, s:o, s:O}", "active", 1,
					   "session", (json_int_t)b->id,
					   "type", type_names[b->type], "set", b->set_id,
					   "writers", writers_json(svc, b, false),
					   "holder", json_object_get(holds, "backup")));
	json_decref(holds);
	session_put(svc, b);
	*res = hold;
	return 0;
}

/* ---- restores ---- */

/*
 * Which registered writer takes part for each entry of the backup's
 * components document: the one with its instance ID, else (a writer that
 * started again has a new one) a writer of its class, not taken by another
 * entry, whose metadata has every component of the entry, first registered
 * first.  Entries with none, or with one excluded, unresponsive or failing
 * at identify, are restored without a writer (left_out says why).
 * b->bcd is the document of the writers taking part, each entry under the
 * instance ID of its writer now; b->w[k]'s entry was the backup's
 * backup_instance[k].
 */
struct restore_match {
	json_t *left_out;                 /* [{writer_class_id, writer_instance_id, why}] */
	char backup_instance[SVC_WRITERS_MAX][37];
};

/* Whether the entry @entry of a components document has component @lp/@name. */
static bool component_in(json_t *entry, const char *lp, const char *name)
{
	json_t *comp;
	size_t i;

	json_array_foreach(json_object_get(entry, "components"), i, comp) {
		const char *l = json_string_value(json_object_get(comp, "logical_path"));

		if (strcmp(l ? l : "", lp) == 0 &&
		    strcmp(json_string_value(json_object_get(comp, "name")), name) == 0)
			return true;
	}
	return false;
}

static bool has_components(const struct svc_writer *w, json_t *entry)
{
	json_t *comp;
	size_t i;

	json_array_foreach(json_object_get(entry, "components"), i, comp) {
		const char *lp = json_string_value(json_object_get(comp, "logical_path"));

		if (vss_wmd_find_component(w->wmd, lp ? lp : "",
					   json_string_value(json_object_get(comp, "name"))) < 0)
			return false;
	}
	return true;
}

static void left_out(struct restore_match *m, json_t *entry, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void left_out(struct restore_match *m, json_t *entry, const char *fmt, ...)
{
	char why[VSS_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	json_array_append_new(m->left_out, json_pack(
		"{s:O, s:O, s:s}", "writer_class_id", json_object_get(entry, "writer_class_id"),
		"writer_instance_id", json_object_get(entry, "writer_instance_id"), "why", why));
}

static int match_writers(struct vss_service *svc, struct svc_backup *b, json_t *doc,
			 json_t *exclude, struct restore_match *m)
{
	struct svc_writer *all[SVC_WRITERS_MAX], *of[SVC_WRITERS_MAX] = { 0 };
	json_t *entries = json_object_get(doc, "writers"), *entry, *e, *mine = json_array();
	bool taken[SVC_WRITERS_MAX] = { 0 };
	size_t n = svc_writers_snapshot(svc, all, SVC_WRITERS_MAX), i, x;

	/* By instance first, so that a class match never takes a writer
	 * whose own entry comes later. */
	json_array_foreach(entries, i, entry)
		for (size_t k = 0; i < SVC_WRITERS_MAX && k < n; k++)
			if (!taken[k] && strcasecmp(all[k]->instance_id, json_string_value(
				    json_object_get(entry, "writer_instance_id"))) == 0) {
				of[i] = all[k];
				taken[k] = true;
			}
	json_array_foreach(entries, i, entry)
		for (size_t k = 0; i < SVC_WRITERS_MAX && !of[i] && k < n; k++)
			if (!taken[k] && strcasecmp(all[k]->class_id, json_string_value(
				    json_object_get(entry, "writer_class_id"))) == 0 &&
			    has_components(all[k], entry)) {
				of[i] = all[k];
				taken[k] = true;
			}
	b->nw = 0;
	json_array_foreach(entries, i, entry) {
		struct svc_writer *w = i < SVC_WRITERS_MAX ? of[i] : NULL;
		char why[VSS_ERROR_MSG_MAX];
		bool out = false;

		if (!w) {
			left_out(m, entry, "no writer of class %s with these components is "
				 "registered", json_string_value(json_object_get(
					 entry, "writer_class_id")));
			continue;
		}
		json_array_foreach(exclude, x, e)
			out |= writer_named(w, json_string_value(e));
		if (out) {
			left_out(m, entry, "writer %s was excluded", w->name);
			continue;
		}
		if (svc_writer_unresponsive(svc, w, why, sizeof(why))) {
			vss_log("restore: writer %s left out: %s", w->name, why);
			json_array_append_new(b->skipped, json_pack("{s:s, s:s, s:s}", "name",
								    w->name, "instance",
								    w->instance_id, "why", why));
			left_out(m, entry, "writer %s is not answering: %s", w->name, why);
			continue;
		}
		snprintf(m->backup_instance[b->nw], sizeof(m->backup_instance[0]), "%s",
			 json_string_value(json_object_get(entry, "writer_instance_id")));
		b->w[b->nw++] = w;
		/* From now on the entry is the writer's as it is registered. */
		e = json_deep_copy(entry);
		json_object_set_new(e, "writer_instance_id", json_string(w->instance_id));
		json_array_append_new(mine, e);
	}
	json_object_set_new(doc, "writers", mine);
	for (size_t k = 0; k < b->nw; k++)
		svc_writer_enlist(svc, b->w[k], true);
	return 0;
}

/* A writer that failed identify leaves the restore: its entry goes too. */
static void restore_drop(struct svc_backup *b, struct svc_writer *w, const char *why)
{
	struct restore_match *m = b->match;
	json_t *entries = json_object_get(b->bcd, "writers");
	int i = bcd_entry(b->bcd, w);
	size_t k = 0;

	while (k < b->nw && b->w[k] != w)
		k++;
	if (i >= 0) {
		json_t *entry = json_deep_copy(json_array_get(entries, (size_t)i));

		json_object_set_new(entry, "writer_instance_id",
				    json_string(m->backup_instance[k]));
		left_out(m, entry, "%s", why);
		json_decref(entry);
		json_array_remove(entries, (size_t)i);
	}
	memmove(&m->backup_instance[k], &m->backup_instance[k + 1],
		(b->nw - k - 1) * sizeof(m->backup_instance[0]));
}

int svc_op_restore_begin(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err)
{
	struct restore_match m = { 0 };
	struct vss_bcd *bcd = NULL;
	struct svc_backup *b;
	struct vss_error e;
	const char *given;
	json_t *exclude, *doc, *writers;
	uint64_t wait_ms;
	int rc;

	if ((rc = svc_arg_str(args, "components", true, &given, err)) < 0 ||
	    (rc = str_array(args, "exclude_writers", &exclude, err)) < 0)
		return rc;
	if ((rc = check_bcd(given, &bcd, &e)) < 0)
		return vss_error_set(err, rc, "backup components document refused: %s", e.msg);
	if ((rc = session_new(svc, who, args, &b, &wait_ms, err)) < 0) {
		vss_bcd_free(bcd);
		return rc;
	}
	/* The type of the backup restored, whatever args said. */
	b->type = vss_bcd_backup_type(bcd);
	b->partial = vss_bcd_partial_file_support(bcd);
	b->restore = true;
	doc = bcd_json(bcd, err);
	vss_bcd_free(bcd);
	if (!doc) {
		free(b);
		return err->code ? err->code : -ENOMEM;
	}
	if ((rc = slot_acquire(svc, b, wait_ms, err)) < 0) {
		json_decref(doc);
		free(b);
		return rc;
	}
	m.left_out = json_array();
	b->skipped = json_array();
	b->bcd = doc;
	b->match = &m;
	match_writers(svc, b, doc, exclude, &m);
	identify(svc, b, restore_drop, err);
	b->match = NULL;
	backup_enter(svc, b, SVC_RESTORE_GATHERED);
	vss_log("restore started (session %llu, %zu writer%s, %zu left out)",
		(unsigned long long)b->id, b->nw, b->nw == 1 ? "" : "s",
		json_array_size(m.left_out));
	writers = writers_json(svc, b, true);
	for (size_t k = 0; k < b->nw; k++)
		json_object_set_new(json_array_get(writers, k), "backup_instance",
				    json_string(m.backup_instance[k]));
	*res = json_pack("{s:s, s:o, s:o, s:O, s:I, s:I, s:I}", "type", type_names[b->type],
			 "writers", writers, "left_out", m.left_out, "skipped", b->skipped,
			 "session", (json_int_t)b->id, "lease_ms", (json_int_t)b->hold.lease_ms,
			 "hold_ms", (json_int_t)b->hold.limit_ms);
	session_put(svc, b);
	return 0;
}

/*
 * The "restore" argument of restore.prepare (@post false) and
 * restore.complete (@post true), checked whole before any writer sees it:
 * {"backup": ID, "to"?: DIR, "components": [{"writer_instance_id",
 * "logical_path"?, "name", "method", "original_location", "locations":
 * [{path, file_spec, recursive?, destination}], and for post "status",
 * "files", "message"?}]}, each component one of that writer's in the
 * session's document.  *@per[k] (new) is what writer k gets, made of the
 * checked values only.
 */
static int restore_arg(struct svc_backup *b, json_t *args, bool post, json_t *per[],
		       struct vss_error *err)
{
	static const char *const top[] = { "backup", "to", "components", NULL };
	static const char *const comp_members[] = {
		"writer_instance_id", "logical_path", "name", "method", "original_location",
		"locations", "status", "files", "message", NULL };
	static const char *const loc_members[] = {
		"path", "file_spec", "recursive", "destination", NULL };
	json_t *r = json_object_get(args, "restore"), *comps, *c;
	const char *backup, *to;
	char why[VSS_ERROR_MSG_MAX];
	struct doc_ctx ctx;
	size_t i, mark;
	int rc;

	for (size_t k = 0; k < b->nw; k++)
		per[k] = NULL;
	doc_ctx_init(&ctx, err);
	if (!r)
		return vss_error_set(err, -EINVAL, "missing argument \"restore\"");
	if ((rc = doc_members(&ctx, r, top)) < 0 ||
	    (rc = doc_string(&ctx, r, "backup", true, &backup)) < 0 ||
	    (rc = doc_check_text(&ctx, "backup", backup, VSS_DOC_NAME_MAX, 0)) < 0 ||
	    (rc = doc_string(&ctx, r, "to", false, &to)) < 0 ||
	    (to && (rc = doc_check_abs_path(&ctx, "to", to)) < 0) ||
	    (rc = doc_array(&ctx, r, "components", true, &comps)) < 0)
		goto refused;
	for (size_t k = 0; k < b->nw; k++)
		per[k] = json_pack("{s:s, s:s*, s:[]}", "backup", backup, "to", to, "components");
	mark = doc_enter(&ctx, "components");
	json_array_foreach(comps, i, c) {
		const char *inst, *lp = NULL, *name, *status = NULL, *msg = NULL;
		size_t cm = doc_enter_index(&ctx, i), j, k;
		json_t *locs, *loc, *out, *entry;
		unsigned method;
		json_int_t files = 0;
		bool orig;

		if ((rc = doc_members(&ctx, c, comp_members)) < 0 ||
		    (rc = doc_string(&ctx, c, "writer_instance_id", true, &inst)) < 0 ||
		    (rc = doc_string(&ctx, c, "logical_path", false, &lp)) < 0 ||
		    (lp && (rc = doc_check_logical_path(&ctx, "logical_path", lp)) < 0) ||
		    (rc = doc_string(&ctx, c, "name", true, &name)) < 0 ||
		    (rc = doc_enum(&ctx, c, "method", doc_restore_method_names, true, 0,
				   &method)) < 0 ||
		    (rc = doc_bool(&ctx, c, "original_location", false, &orig)) < 0 ||
		    (rc = doc_array(&ctx, c, "locations", true, &locs)) < 0)
			goto refused;
		if (post && ((rc = doc_string(&ctx, c, "status", true, &status)) < 0 ||
			     (rc = doc_int(&ctx, c, "files", &files)) < 0 ||
			     (rc = doc_string(&ctx, c, "message", false, &msg)) < 0 ||
			     (msg && (rc = doc_check_text(&ctx, "message", msg, VSS_DOC_TEXT_MAX,
							  DOC_CTL_OK)) < 0)))
			goto refused;
		if (post && (vss_file_restore_status_from_name(status) <= VSS_RS_UNDEFINED ||
			     files < 0)) {
			rc = doc_fail(&ctx, -EINVAL, "status must be none, all, failed or staged, "
				      "and files a count");
			goto refused;
		}
		for (k = 0; k < b->nw && strcasecmp(b->w[k]->instance_id, inst) != 0; k++)
			;
		entry = k < b->nw ? json_array_get(json_object_get(b->bcd, "writers"),
						   (size_t)bcd_entry(b->bcd, b->w[k])) : NULL;
		if (!entry || !component_in(entry, lp ? lp : "", name)) {
			rc = doc_fail(&ctx, -EINVAL, "no component \"%s%s%s\" of writer instance "
				      "%s is in this restore", lp ? lp : "", lp && *lp ? "/" : "",
				      name, inst);
			goto refused;
		}
		out = json_pack("{s:s, s:s, s:s, s:b, s:[]}", "logical_path", lp ? lp : "",
				"name", name, "method", doc_name_of(doc_restore_method_names, method),
				"original_location", orig, "locations");
		if (post)
			json_object_update_new(out, json_pack("{s:s, s:I, s:s?}", "status", status,
							      "files", files, "message", msg));
		json_array_append_new(json_object_get(per[k], "components"), out);
		json_array_foreach(locs, j, loc) {
			const char *path, *spec, *dest;
			size_t lm = doc_enter(&ctx, "locations");
			bool rec;

			doc_enter_index(&ctx, j);
			if ((rc = doc_members(&ctx, loc, loc_members)) < 0 ||
			    (rc = doc_string(&ctx, loc, "path", true, &path)) < 0 ||
			    (rc = doc_check_abs_path(&ctx, "path", path)) < 0 ||
			    (rc = doc_string(&ctx, loc, "file_spec", true, &spec)) < 0 ||
			    (rc = doc_check_spec(&ctx, "file_spec", spec)) < 0 ||
			    (rc = doc_bool(&ctx, loc, "recursive", false, &rec)) < 0 ||
			    (rc = doc_string(&ctx, loc, "destination", true, &dest)) < 0 ||
			    (rc = doc_check_abs_path(&ctx, "destination", dest)) < 0)
				goto refused;
			json_array_append_new(json_object_get(out, "locations"), json_pack(
				"{s:s, s:s, s:b, s:s}", "path", path, "file_spec", spec,
				"recursive", rec, "destination", dest));
			doc_leave(&ctx, lm);
		}
		doc_leave(&ctx, cm);
	}
	doc_leave(&ctx, mark);
	return 0;
refused:
	for (size_t k = 0; k < b->nw; k++) {
		json_decref(per[k]);
		per[k] = NULL;
	}
	snprintf(why, sizeof(why), "%s", err ? err->msg : "");
	return vss_error_set(err, rc, "argument \"restore\" refused: %s", why);
}

/* The session of @who for restore request @op, which moves it to @to with
 * event @ev: the "restore" argument checked, the state entered, @ev sent to
 * every writer at once, each with its part of the document and of the
 * restore; NULL (and *@rc, @err) if it is refused, changing nothing. */
static struct svc_backup *restore_step(struct vss_service *svc, const struct svc_caller *who,
				       const char *op, enum svc_backup_state to,
				       enum svc_wevent ev, json_t *args, struct svc_wcall *calls,
				       int *rc, struct vss_error *err)
{
	struct svc_backup *b = session_take(svc, who->conn);
	json_t *per[SVC_WRITERS_MAX];

	if (!b) {
		*rc = no_session(svc, who->conn, "no restore in progress on this connection "
				 "(restore.begin first)", err);
		return NULL;
	}
	if (!b->restore)
		*rc = vss_error_set(err, -EINVAL, "%s refused: this connection's session is a "
				    "backup, not a restore", op);
	else if ((*rc = backup_check(b->state, to, op, b->set_id, err)) == 0)
		*rc = restore_arg(b, args, ev == EV_POST_RESTORE, per, err);
	if (*rc < 0) {
		session_put(svc, b);
		return NULL;
	}
	backup_enter(svc, b, to);
	for (size_t k = 0; k < b->nw; k++) {
		char *sub = bcd_for_writer(b->bcd, b->w[k]);

		calls[k] = (struct svc_wcall){
			.w = b->w[k], .timeout_ms = deadline_for(b, b->w[k]),
			.args = json_pack("{s:s, s:s, s:o}", "backup_type", type_names[b->type],
					  "components", sub, "restore", per[k]) };
		free(sub);
	}
	svc_writers_call(svc, ev, calls, b->nw);
	return b;
}

int svc_op_restore_prepare(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err)
{
	struct svc_wcall calls[SVC_WRITERS_MAX];
	struct svc_backup *b;
	char why[VSS_ERROR_MSG_MAX + 64];
	int rc = 0;

	/* PreRestore, to every writer at once: one failing stops the restore
	 * before the requester writes anything, and every writer gets Abort
	 * (one may have let go of its data before another failed). */
	if (!(b = restore_step(svc, who, "restore.prepare", SVC_RESTORE_PRE, EV_PRE_RESTORE,
			       args, calls, &rc, err)))
		return rc;
	for (size_t k = 0; k < b->nw; k++) {
		json_decref(calls[k].result);
		if (calls[k].rc < 0 && rc == 0)
			rc = vss_error_set(err, calls[k].rc, "%s", calls[k].err.msg);
	}
	if (rc < 0) {
		snprintf(why, sizeof(why), "%s; the restore was stopped before anything was "
			 "restored", err->msg);
		vss_error_set(err, rc, "%s", why);
		abort_session(svc, b, why);
		return rc;
	}
	backup_enter(svc, b, SVC_RESTORE_FILES);
	vss_log("restore (session %llu): pre_restore answered by %zu writer%s",
		(unsigned long long)b->id, b->nw, b->nw == 1 ? "" : "s");
	*res = json_pack("{s:o}", "writers", writers_json(svc, b, false));
	session_put(svc, b);
	return 0;
}

int svc_op_restore_complete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			    json_t **res, struct vss_error *err)
{
	struct svc_wcall calls[SVC_WRITERS_MAX];
	struct svc_backup *b;
	json_t *failures;
	int rc = 0;

	/* PostRestore, to every writer at once: a failure is only reported. */
	if (!(b = restore_step(svc, who, "restore.complete", SVC_RESTORE_POST, EV_POST_RESTORE,
			       args, calls, &rc, err)))
		return rc;
	failures = json_array();
	for (size_t k = 0; k < b->nw; k++) {
		json_decref(calls[k].result);
		if (calls[k].rc < 0)
			json_array_append_new(failures, json_pack(
				"{s:s, s:s, s:s}", "name", b->w[k]->name, "instance",
				b->w[k]->instance_id, "message", calls[k].err.msg));
	}
	backup_enter(svc, b, SVC_RESTORE_COMPLETE);
	*res = json_pack("{s:o, s:o}", "writers", writers_json(svc, b, false), "failures",
			 failures);
	vss_log("restore complete (session %llu, %zu writer%s failed at post_restore)",
		(unsigned long long)b->id, json_array_size(failures),
		json_array_size(failures) == 1 ? "" : "s");
	session_end(svc, b);
	return 0;
}

bool svc_backup_conn_active(struct vss_service *svc, struct conn *c)
{
	return session_of(svc, c) != NULL;
}

void svc_backup_conn_gone(struct vss_service *svc, struct conn *c)
{
	struct svc_writer_registry *reg = svc->wreg;
	struct svc_backup *b = session_take(svc, c);

	if (b)
		abort_session(svc, b, b->restore ? "its requester went away before the "
			      "restore was complete" : "its requester went away before the "
			      "backup was complete");
	/* After the reaper: it removes a held set under svc->lock too. */
	svc_lock(svc);
	svc_mutex_lock(&reg->lock);
	for (struct svc_set_hold **pp = &reg->sets; *pp;) {
		struct svc_set_hold *h = *pp;

		if (h->conn != c) {
			pp = &h->next;
			continue;
		}
		*pp = h->next;
		set_hold_end(reg, h, SVC_BACKUP_ABORTED);
	}
	for (struct svc_hold_notice **pp = &reg->notices; *pp;) {
		struct svc_hold_notice *n = *pp;

		if (n->conn != c) {
			pp = &n->next;
			continue;
		}
		*pp = n->next;
		free(n);
	}
	svc_mutex_unlock(&reg->lock);
	svc_unlock(svc);
}
