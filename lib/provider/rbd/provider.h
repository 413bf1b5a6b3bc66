/*
 * provider/rbd/provider.h - what the service asks of the RBD provider
 * beyond its struct of operations (provider.h): the connection to the
 * cluster (vssd's --ceph-conf, --ceph-id), volumes on RBD images (a
 * volume with no engine: its device reads and writes the image), and
 * bringing up, on a timer, the RBD volumes the cluster was not there for.
 * Built with librbd (rbd/provider.c) or without it (rbd/none.c: every RBD
 * volume is refused, every catalog one listed offline, saying why).
 */
#ifndef VSS_PROVIDER_RBD_PROVIDER_H
#define VSS_PROVIDER_RBD_PROVIDER_H

#include <stdbool.h>
#include <stdint.h>

#include <vss/error.h>

struct vss_service;
struct svc_volume;
struct vss_catalog_volume;

/* A catalog backing naming an RBD image: "rbd:POOL/IMAGE". */
#define SVC_RBD_BACKING_PREFIX "rbd:"

/* Keeps the cluster's config (@conf: a ceph.conf, NULL: Ceph's default;
 * @id: the client ID, NULL: "admin"); connects on first use.  Checks that
 * @conf is an absolute path to a regular file. */
int svc_rbd_init(struct vss_service *svc, const char *conf, const char *id,
		 struct vss_error *err);
/* After every volume and shadow is closed. */
void svc_rbd_release(struct vss_service *svc);

/* Whether the catalog record @rec is a volume on an RBD image. */
bool svc_rbd_is_backing(const char *backing);

/* "volume create NAME --rbd POOL/IMAGE [--size SIZE]": attaches the image,
 * creating it with @size bytes first if it does not exist and @size is
 * not 0; serves it; *@out is the served volume. */
int svc_rbd_volume_create(struct vss_service *svc, const char *name, const char *spec,
			  uint64_t size, struct svc_volume **out, struct vss_error *err);
/* Opens and serves @v (an RBD volume of the catalog, not served yet). */
int svc_rbd_volume_open(struct vss_service *svc, struct svc_volume *v, struct vss_error *err);
/* Retries the offline RBD volumes (the housekeeper, every few seconds):
 * those the cluster now answers for are served and their shadows found. */
void svc_rbd_retry(struct vss_service *svc);

#endif
