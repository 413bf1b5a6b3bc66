/*
 * service/gmt.h - Samba's Previous Versions (gmt.c): a volume with its gmt
 * setting on has each of its persistent, valid shadows mounted read-only
 * (nosuid, nodev, noexec) at MOUNT/.snapshots/@GMT-YYYY.MM.DD-HH.MM.SS
 * (the shadow's instant, UTC), so that vfs_shadow_copy2 offers them;
 * mounted and unmounted as shadows come and go, as the volume is mounted
 * and unmounted, and again at start.  The share section that works is in
 * doc/cli.md.
 */
#ifndef VSS_SERVICE_GMT_H
#define VSS_SERVICE_GMT_H

#include <jansson.h>

#include <vss/error.h>

struct svc_caller;
struct svc_volume;
struct vss_service;

#define SVC_GMT_SNAPDIR ".snapshots"

/* Makes every volume's snapshot directory what its setting and shadows
 * say (svc->lock held): cheap when nothing changed. */
void svc_gmt_sync(struct vss_service *svc);
/* Unmounts what is exposed under @v's snapshot directory (before @v is
 * unmounted; svc->lock held). */
void svc_gmt_release(struct vss_service *svc, struct svc_volume *v);
/* volume.gmt (root): name, on -> volume, on, dir, shadows (exposed). */
int svc_op_volume_gmt(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		      json_t **res, struct vss_error *err);

#endif
