/*
 * service/export.h - shadows served read-only over NBD (export.c): one
 * nbdkit per export, a child of vssd, ended by unexport, by the shadow's
 * deletion and by vssd's exit.  doc/cli.md ("vss export") is the user's
 * side, doc/security.md who may.
 */
#ifndef VSS_SERVICE_EXPORT_H
#define VSS_SERVICE_EXPORT_H

#include <jansson.h>

#include <vss/error.h>

struct svc_caller;
struct vss_service;

/* One export; in svc->exports, under svc->lock. */
struct svc_export {
	struct svc_export *next;
	char shadow[37];                /* the shadow served */
	char since[37];                 /* the base of its changed-block map, or "" */
	pid_t pid;                      /* nbdkit's keeper (start_nbdkit); 0 once reaped */
	int life;                       /* vssd's end of the pipe whose closing ends the
	                                 * keeper and nbdkit, or -1 */
	uid_t owner;                    /* who asked: the socket is theirs */
	unsigned int port;              /* TCP on 127.0.0.1, or 0 */
	char dir[4096];                 /* RUN/exports/ID: pidfile, log, map (vssd's) */
	char socket[4096];              /* the Unix socket, or "" */
	char device[4096];              /* what nbdkit reads */
	uint64_t changed_bytes;         /* in the map */
};

/* shadow.export: {shadow, socket?, port?, since?} -> where it is served. */
int svc_op_shadow_export(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);
/* shadow.unexport: {shadow}: ends its export (root or whoever started it). */
int svc_op_shadow_unexport(struct vss_service *svc, const struct svc_caller *who,
			   json_t *args, json_t **res, struct vss_error *err);
/* export.list: every export, whether its nbdkit still runs. */
int svc_op_export_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		       json_t **res, struct vss_error *err);
/* Ends the exports of shadow @id (it is being deleted); svc->lock held. */
void svc_exports_end_of(struct vss_service *svc, const char *id);
/* Ends every export (vssd stops); svc->lock held. */
void svc_exports_end_all(struct vss_service *svc);

#endif
