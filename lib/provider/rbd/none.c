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

int svc_rbd_fsid(struct vss_service *svc, char fsid[37], struct vss_error *err)
{
	return vss_error_set(err, -ENOTSUP, "RBD: %s", WHY);
}

void svc_rbd_cross(struct vss_service *svc, const char *set_id)
{
}

json_t *svc_rbd_cross_members(struct vss_service *svc)
{
	return json_array();
}

int svc_rbd_cross_taken(struct vss_service *svc, const struct svc_peer_rbd *taken, size_t n,
			struct vss_error *err)
{
	return n ? vss_error_set(err, -EPROTO, "RBD: %s", WHY) : 0;
}

int svc_rbd_remote_add(struct vss_service *svc, const unsigned char set_id[16], const char *host,
		       const struct svc_peer_rbd *img, struct vss_error *err)
{
	return vss_error_set(err, -ENOTSUP, "RBD: %s", WHY);
}

int svc_rbd_remote_commit(struct vss_service *svc, struct vss_error *err)
{
	return 0;
}

json_t *svc_rbd_remote_taken(struct vss_service *svc, const char *host)
{
	return NULL;
}

void svc_rbd_remote_end(struct vss_service *svc, bool failed)
{
}

void svc_rbd_set_released(struct vss_service *svc, const char *set_id)
{
}
