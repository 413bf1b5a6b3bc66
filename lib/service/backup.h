/*
 * service/backup.h - one backup through vssd (backup.c): the backup slot,
 * the requester's session and its writers' events around the set, and the
 * deadlines of what requesters hold.  The story is doc/writers.md; the wire
 * doc/protocol.md.
 */
#ifndef VSS_SERVICE_BACKUP_H
#define VSS_SERVICE_BACKUP_H

#include <stdbool.h>

#include <jansson.h>

#include <vss/error.h>

struct conn;
struct svc_caller;
struct svc_set_sync;
struct vss_service;

/*
 * The life of a backup and of the set it takes, and of a restore: one state
 * machine, kept in the session, and for a set taken with "hold" outside a
 * backup in its hold once the call that took it is over.  Every state but
 * backup complete, restore complete and released may go to aborted, which
 * leaves nothing frozen and nothing half made, and every writer a restore
 * reached given back its data.  The table, and the one check every change
 * of state passes, are in backup.c (its header says who moves where);
 * doc/service.md draws it.
 */
enum svc_backup_state {
	SVC_BACKUP_CREATED,        /* the slot is its own, its writers picked */
	SVC_BACKUP_GATHERED,       /* identify answered: the writers' metadata went out */
	SVC_BACKUP_PREPARED,       /* prepare_backup answered: the components are agreed */
	SVC_BACKUP_SNAP_PREPARE,   /* snapshotting: prepare_snapshot is with the writers */
	SVC_BACKUP_SNAP_FREEZE,    /*   freeze is with the writers, in order */
	SVC_BACKUP_SNAP_COMMIT,    /*   the coordinator takes the set (set.h) */
	SVC_BACKUP_SNAP_THAW,      /*   thaw is with the writers, in reverse order */
	SVC_BACKUP_SNAP_POST,      /*   post_snapshot is with the writers */
	SVC_BACKUP_READY,          /* the shadows are ready: the requester reads them */
	SVC_BACKUP_COMPLETE,       /* backup_complete went out; the set is complete */
	SVC_RESTORE_GATHERED,      /* restore.begin: the writers matched, identify answered */
	SVC_RESTORE_PRE,           /* pre_restore is with the writers */
	SVC_RESTORE_FILES,         /* pre_restore answered: the requester writes the files */
	SVC_RESTORE_POST,          /* post_restore is with the writers */
	SVC_RESTORE_COMPLETE,      /* post_restore answered (a failure is only reported) */
	SVC_BACKUP_ABORTED,        /* abort went to the writers; the set is deleted */
	SVC_BACKUP_RELEASED,       /* over: the slot is free, nothing is held */
	SVC_BACKUP_STATES
};

/* Whether the table lets a backup go from @from to @to. */
bool svc_backup_may(enum svc_backup_state from, enum svc_backup_state to);
/* "created", "metadata gathered", ... for messages. */
const char *svc_backup_state_name(enum svc_backup_state s);

/* Whether the requester @c has a backup in progress (the server does not
 * close such a connection for being idle). */
bool svc_backup_conn_active(struct vss_service *svc, struct conn *c);
/* Starts and stops the thread that ends holds past their deadline. */
int svc_backup_reaper_start(struct vss_service *svc, struct vss_error *err);
void svc_backup_reaper_stop(struct vss_service *svc);
/* Stops the thread and frees what is left of holds (at stop). */
void svc_backup_free(struct vss_service *svc);
/* The requester @c went away: abort its backup, if it has one, and forget
 * its held sets (svc_conn_gone deletes them) and its notices. */
void svc_backup_conn_gone(struct vss_service *svc, struct conn *c);
/*
 * set.complete of @set by @c (svc->lock held): the set's shadows owned by
 * @c stop being in progress (*@n of them) and its hold is over.  Refused if
 * the set is @c's backup's (backup.complete completes it); -ENOENT if @c
 * holds no such set, or why vssd ended its hold (once).
 */
int svc_backup_set_complete(struct vss_service *svc, struct conn *c, const char *set, int *n,
			    struct vss_error *err);
/* The slot's holder and the held sets, for status (any caller). */
json_t *svc_backup_holds_json(struct vss_service *svc);
int svc_op_backup_begin(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err);
int svc_op_backup_prepare(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			  json_t **res, struct vss_error *err);
int svc_op_backup_complete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err);
int svc_op_backup_abort(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err);
int svc_op_backup_status(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);
/* shadow.create with writers around the set (svc_shadow_create, under svc->lock). */
int svc_op_backup_shadow_create(struct vss_service *svc, const struct svc_caller *who, json_t *args,
				json_t **res, struct vss_error *err);
/* The same, for another host's part of a set (peer.c: peer.set), with the
 * hooks @sync (set.h) that meet the coordinator at each step. */
int svc_backup_shadow_create_sync(struct vss_service *svc, const struct svc_caller *who,
				  json_t *args, const struct svc_set_sync *sync, json_t **res,
				  struct vss_error *err);
/* A restore with the writers of the backup (backup.c, "restores"): the
 * session is a backup's in all but its states; backup.abort, backup.status
 * and the deadlines are the same. */
int svc_op_restore_begin(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);
int svc_op_restore_prepare(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err);
int svc_op_restore_complete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			    json_t **res, struct vss_error *err);

#endif
