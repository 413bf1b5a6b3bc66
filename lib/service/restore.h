/*
 * service/restore.h - the mounts and exposures a start brings back from the
 * catalog's records of them (restore.c; doc/service.md, "Mounts come back").
 */
#ifndef VSS_SERVICE_RESTORE_H
#define VSS_SERVICE_RESTORE_H

#include <vss/error.h>

struct vss_service;
struct svc_restore;

/* Reads the catalog's mounts and exposures, before start changes anything. */
int svc_restore_read(struct vss_service *svc, struct svc_restore **out, struct vss_error *err);
/* Mounts and exposes them again; logs and drops (or keeps) what fails. */
void svc_restore_run(struct vss_service *svc, struct svc_restore *r);
void svc_restore_free(struct svc_restore *r);

#endif
