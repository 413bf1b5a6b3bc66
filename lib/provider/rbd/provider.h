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

#include <jansson.h>

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

/*
 * One group snapshot across hosts (doc/peers.md, service/peer.c), svc->lock
 * held.  The coordinator sends its cluster's fsid (svc_rbd_fsid); a peer
 * on the same cluster takes its next set's RBD members in cross-host mode
 * (svc_rbd_cross: no group of its own, marks "-"), says them in its
 * "prepared" (svc_rbd_cross_members), and takes as each member's
 * snapshot the one the coordinator names in its "thaw", once it has checked
 * it is the set's group snapshot's (svc_rbd_cross_taken).  The coordinator
 * adds each such image to the set's one group (svc_rbd_remote_add), takes
 * the group snapshot (with its own RBD members' commit, or
 * svc_rbd_remote_commit), names each host's snapshots
 * (svc_rbd_remote_taken), and takes the images out of the group after the
 * thaw, or removes the group on a failure (svc_rbd_remote_end); the group
 * goes once the set's last member on any host was deleted from here
 * (svc_rbd_set_released).
 */
struct svc_peer_rbd;
int svc_rbd_fsid(struct vss_service *svc, char fsid[37], struct vss_error *err);
void svc_rbd_cross(struct vss_service *svc, const char *set_id);
json_t *svc_rbd_cross_members(struct vss_service *svc);
int svc_rbd_cross_taken(struct vss_service *svc, const struct svc_peer_rbd *taken, size_t n,
			struct vss_error *err);
int svc_rbd_remote_add(struct vss_service *svc, const unsigned char set_id[16], const char *host,
		       const struct svc_peer_rbd *img, struct vss_error *err);
int svc_rbd_remote_commit(struct vss_service *svc, struct vss_error *err);
/* @host's images and their snapshot IDs ([{pool, image, snap_id}]), or NULL. */
json_t *svc_rbd_remote_taken(struct vss_service *svc, const char *host);
void svc_rbd_remote_end(struct vss_service *svc, bool failed);
void svc_rbd_set_released(struct vss_service *svc, const char *set_id);

#endif
