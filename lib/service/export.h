/*
 * service/export.h - shadows and live volumes served read-only over NBD
 * (export.c): one nbdkit per export (and a qemu-storage-daemon in front of
 * it for a changed-block map), a child of vssd, ended by unexport,
 * by the shadow's deletion and by vssd's exit; recorded in the catalog, so
 * that the next start serves root's again.  doc/cli.md ("vss export") is
 * the user's side, doc/security.md who may.
 */
#ifndef VSS_SERVICE_EXPORT_H
#define VSS_SERVICE_EXPORT_H

#include <stdbool.h>

#include <jansson.h>

#include <vss/error.h>

struct svc_caller;
struct vss_service;

/* One export; in svc->exports, under svc->lock. */
struct svc_export {
	struct svc_export *next;
	char shadow[37];                /* the shadow served, or "" */
	char volume[65];                /* or the live volume served, or "" */
	char since[37];                 /* the base of its changed-block map, or "" */
	pid_t pid;                      /* nbdkit's keeper (start_nbdkit); 0 once reaped */
	int life;                       /* vssd's end of the pipe whose closing ends the
	                                 * keeper and nbdkit, or -1 */
	uid_t owner;                    /* who asked: the socket is theirs */
	unsigned int port;              /* TCP, or 0 */
	char address[46];               /* with a port: where it listens (numeric;
	                                 * a loopback one without TLS), "" every address */
	char tls[4096];                 /* certificate directory (TLS required), or "" */
	char dir[4096];                 /* RUN/exports/ID: pidfile, log, map (vssd's) */
	char socket[4096];              /* the Unix socket, or "" */
	char device[4096];              /* what nbdkit reads */
	uint64_t changed_bytes;         /* in the map */
	uint32_t granularity;           /* of the qcow2 bitmap (bytes), with @since */
};

/* shadow.export: {shadow | volume | target, socket?, port?, listen?, since?, tls?}
 * -> where it is served (target: a volume's name or a shadow's ID). */
int svc_op_shadow_export(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);
/* shadow.unexport: {shadow | volume | target}: ends its export (root or
 * whoever started it). */
int svc_op_shadow_unexport(struct vss_service *svc, const struct svc_caller *who,
			   json_t *args, json_t **res, struct vss_error *err);
/* export.list: every export, whether its nbdkit still runs. */
int svc_op_export_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		       json_t **res, struct vss_error *err);
/* Ends the export of shadow (or, with @volume, volume) @name, which is
 * being deleted; svc->lock held. */
void svc_exports_end_of(struct vss_service *svc, bool volume, const char *name);
/* Whether volume @name is exported; svc->lock held. */
bool svc_exports_has_volume(struct vss_service *svc, const char *name);
/* Ends every export (vssd stops; their catalog rows stay); svc->lock held. */
void svc_exports_end_all(struct vss_service *svc);
/* Serves again what the catalog says was exported (vssd starts, after its
 * volumes and shadows): root's exports; another user's, or one that cannot
 * start, is logged as gone and forgotten.  svc->lock held. */
void svc_exports_restore(struct vss_service *svc);

#endif
