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
struct vss_service;

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
/* set.complete of @set by @c (svc->lock held): its hold is over. */
void svc_backup_set_released(struct vss_service *svc, struct conn *c, const char *set);
/* @c holds no set @set (svc->lock held): if vssd ended its hold, fills
 * @err with why (once) and returns its code; else 0. */
int svc_backup_set_ended(struct vss_service *svc, struct conn *c, const char *set,
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
/* shadow.create with writers: wraps svc_op_shadow_create (taken under svc->lock). */
int svc_op_backup_shadow_create(struct vss_service *svc, const struct svc_caller *who, json_t *args,
				json_t **res, struct vss_error *err);

#endif
