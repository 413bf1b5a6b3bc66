/*
 * provider/rbd/none.c - vssd built without librbd: RBD volumes are refused,
 * and those the catalog has are listed offline saying why (rbd/provider.h).
 */
#include <errno.h>
#include <string.h>

#include "provider/rbd/provider.h"
#include "service/service_i.h"

#define WHY "this vssd was built without librbd (Debian: librbd-dev)"

int svc_rbd_init(struct vss_service *svc, const char *conf, const char *id,
		 struct vss_error *err)
{
	if (conf || id)
		return vss_error_set(err, -ENOTSUP, "--ceph-conf, --ceph-id: %s", WHY);
	return 0;
}

void svc_rbd_release(struct vss_service *svc)
{
}

bool svc_rbd_is_backing(const char *backing)
{
	return strncmp(backing, SVC_RBD_BACKING_PREFIX, strlen(SVC_RBD_BACKING_PREFIX)) == 0;
}

int svc_rbd_volume_create(struct vss_service *svc, const char *name, const char *spec,
			  uint64_t size, struct svc_volume **out, struct vss_error *err)
{
	*out = NULL;
	return vss_error_set(err, -ENOTSUP, "RBD volumes: %s", WHY);
}

int svc_rbd_volume_open(struct vss_service *svc, struct svc_volume *v, struct vss_error *err)
{
	return vss_error_set(err, -ENOTSUP, "RBD volumes: %s", WHY);
}

void svc_rbd_retry(struct vss_service *svc)
{
}
