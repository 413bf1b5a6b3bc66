/*
 * service/writers.h - the writer registry.
 *
 * writers.c keeps the registered writers (one connection each, handed over by
 * server.c after "writer.register"), their VSS states and last errors, and
 * sends them events with a deadline.  backup.c (backup.h) holds the single
 * backup slot, whose fields live in the registry under its lock, and drives
 * the writers through a backup.  The story is doc/writers.md; the wire is
 * doc/protocol.md.
 */
#ifndef VSS_SERVICE_WRITERS_H
#define VSS_SERVICE_WRITERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include <vss/error.h>
#include <vss/writer_doc.h>

#include "service/lock.h"

struct vss_service;
struct svc_caller;
struct conn;

/* VSS_WRITER_STATE, same numbers. */
enum svc_writer_state {
	WS_UNKNOWN = 0,
	WS_STABLE = 1,
	WS_WAITING_FOR_FREEZE = 2,
	WS_WAITING_FOR_THAW = 3,
	WS_WAITING_FOR_POST_SNAPSHOT = 4,
	WS_WAITING_FOR_BACKUP_COMPLETE = 5,
	WS_FAILED_AT_IDENTIFY = 6,
	WS_FAILED_AT_PREPARE_BACKUP = 7,
	WS_FAILED_AT_PREPARE_SNAPSHOT = 8,
	WS_FAILED_AT_FREEZE = 9,
	WS_FAILED_AT_THAW = 10,
	WS_FAILED_AT_POST_SNAPSHOT = 11,
	WS_FAILED_AT_BACKUP_COMPLETE = 12,
	WS_FAILED_AT_PRE_RESTORE = 13,
	WS_FAILED_AT_POST_RESTORE = 14,
	WS_FAILED_AT_BACKUP_SHUTDOWN = 15,
};

/* The events, in the order of a backup, then a restore's; each has the
 * state a failure at it leaves the writer in. */
enum svc_wevent {
	EV_IDENTIFY,
	EV_PREPARE_BACKUP,
	EV_PREPARE_SNAPSHOT,
	EV_FREEZE,
	EV_THAW,
	EV_POST_SNAPSHOT,
	EV_BACKUP_COMPLETE,
	EV_ABORT,
	EV_BACKUP_SHUTDOWN,
	EV_PRE_RESTORE,
	EV_POST_RESTORE,
};

/* Freeze order classes: front-end (applications) first, then back-end
 * (databases), then system services. */
enum svc_writer_class { WC_FRONT_END, WC_BACK_END, WC_SYSTEM };

#define SVC_WRITER_METADATA_MAX (256u << 10)  /* bytes of one metadata document */
#define SVC_WRITER_TIMEOUT_MS   60000u        /* default event and freeze window */
#define SVC_WRITER_STUCK_MS     100u          /* an unresponsive writer's deadline */
#define SVC_WRITERS_MAX         64

struct svc_writer {
	struct svc_writer *next;          /* reg->lock */
	int fd;                           /* owned; -1 until the register reply went out */
	bool gone;                        /* reg->lock: the connection failed */
	bool busy;                        /* reg->lock: an event is outstanding */
	struct vss_wmd *wmd;              /* owned, never changed */
	char *metadata;                   /* the document as registered (owned) */
	char name[VSS_DOC_NAME_MAX + 1];
	char class_id[37], instance_id[37];
	enum svc_writer_class wclass;
	unsigned int timeout_ms;
	int state;                        /* reg->lock */
	char error_kind[32];              /* reg->lock: "" or retryable, nonretryable, ... */
	char last_error[VSS_ERROR_MSG_MAX]; /* reg->lock */
	uint64_t next_id;                 /* the slot holder's */
	uint64_t seq;                     /* registration order */
	/* reg->lock: an event timed out and no answer came since (not even a
	 * late one): left out of backups until one does (writers.c). */
	bool unresponsive;
	bool enlisted;                    /* reg->lock: in the slot holder's backup */
};

struct svc_backup;
struct svc_set_hold;
struct svc_hold_notice;

/* svc->wreg: the registry, the backup slot and the holds (backup.c). */
struct svc_writer_registry {
	struct svc_mutex lock;            /* the list and every writer's reg->lock fields */
	struct svc_writer *list;          /* in registration order */
	uint64_t seq;
	pthread_cond_t slot_cond;         /* with lock: the slot was released */
	bool slot_busy;                   /* lock: one set (backup) at a time */
	struct svc_backup *cur;           /* lock: the session of the slot holder, or NULL */
	uint64_t sessions;                /* lock: the last session's number */
	struct svc_set_hold *sets;        /* lock (and svc->lock to remove): held sets
	                                   * outside a session */
	struct svc_hold_notice *notices;  /* lock: holds that ended without their requester */
	pthread_cond_t hold_cond;         /* with lock: a session's request or ending is over */
	pthread_cond_t reaper_cond;       /* with lock: a deadline may have moved */
	pthread_t reaper;                 /* ends holds past their deadline */
	bool reaper_running, reaper_stop; /* lock */
};

/* Replaces @w's metadata with @doc, which it gave in its reply to identify
 * (same class and instance IDs, checked as at registration). */
int svc_writer_refresh(struct vss_service *svc, struct svc_writer *w, const char *doc,
		       struct vss_error *err);

/* One event to one writer, for svc_writers_call. */
struct svc_wcall {
	struct svc_writer *w;
	json_t *args;                     /* stolen */
	unsigned int timeout_ms;
	json_t *result;                   /* out: a new reference, or NULL */
	int rc;                           /* out: as svc_writer_call returns */
	struct vss_error err;             /* out, if rc < 0 */
};

/* ---- writers.c ---- */
int svc_writers_init(struct vss_service *svc, struct vss_error *err);
/* Shuts every writer connection (at stop, so no event waits its deadline). */
void svc_writers_shutdown(struct vss_service *svc);
void svc_writers_free(struct vss_service *svc);
int svc_writers_count(struct vss_service *svc);
/* After the reply to writer.register went out: the writer takes @fd. */
void svc_writer_activate(struct vss_service *svc, void *writer, int fd);
/* Takes a snapshot of the registered, connected writers (the slot holder's
 * list); returns how many, at most @max. */
size_t svc_writers_snapshot(struct vss_service *svc, struct svc_writer **out, size_t max);
/* Frees writers that went away; only by the slot holder. */
void svc_writers_prune(struct vss_service *svc);
void svc_writer_set_state(struct vss_service *svc, struct svc_writer *w, int state,
			  const char *kind, const char *msg);
int svc_writer_state(struct vss_service *svc, struct svc_writer *w);
/*
 * Sends @ev to @w with @args (stolen) and waits up to @timeout_ms for its
 * answer.  0 with *@result (new reference, may be NULL) on success; on
 * failure the writer is left failed at @ev (state, kind, message) and the
 * error is in @err: -ETIMEDOUT (no answer in time), -ENOTCONN (the writer
 * went away), or what the writer answered.
 */
int svc_writer_call(struct vss_service *svc, struct svc_writer *w, enum svc_wevent ev,
		    json_t *args, unsigned int timeout_ms, json_t **result,
		    struct vss_error *err);
/*
 * svc_writer_call to @n writers at once: @ev goes to all of them, then the
 * answers are read as they come, each within its own call's deadline, so
 * that writers that do not answer cost one deadline together, not one each.
 * A writer that is unresponsive (it has not answered an earlier event) gets
 * the event but only SVC_WRITER_STUCK_MS to answer it.
 */
void svc_writers_call(struct vss_service *svc, enum svc_wevent ev, struct svc_wcall *calls,
		      size_t n);
/* Is @w unresponsive?  If so @why (of @len bytes) says since when and why. */
bool svc_writer_unresponsive(struct vss_service *svc, struct svc_writer *w, char *why,
			     size_t len);
/* Marks @w as taking part (or no longer) in the slot holder's backup. */
void svc_writer_enlist(struct vss_service *svc, struct svc_writer *w, bool enlisted);
const char *svc_event_name(enum svc_wevent ev);
const char *svc_writer_state_name(int state);
json_t *svc_writer_json(struct vss_service *svc, struct svc_writer *w, bool metadata);

int svc_op_writer_register(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err);
int svc_op_writers_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err);

#endif
