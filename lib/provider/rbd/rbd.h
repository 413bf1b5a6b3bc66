/*
 * provider/rbd/rbd.h - Ceph RBD images through librbd's C API: the
 * mechanism under the RBD provider (rbd/provider.c).  A connection to one
 * cluster, images opened read-write (a volume's origin) or read-only at a
 * snapshot (a shadow), group snapshots over several images (one instant,
 * made by the cluster), the snapshots and image metadata vss marks as its
 * own, and changed extents between snapshots.  Knows nothing of the
 * service; every function returns 0 or -errno with a message in @err.
 *
 * Names are checked before they reach librbd (vss_rbd_parse_spec): vssd
 * runs as root and takes them from any operator.
 */
#ifndef VSS_PROVIDER_RBD_RBD_H
#define VSS_PROVIDER_RBD_RBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vss/error.h>

#define VSS_RBD_NAME_MAX 96           /* a pool or image name vss accepts */
/* What marks vss's own: the group snapshot name of every set it takes, and
 * the image metadata key naming each of its shadows (value: the image
 * snapshot's ID, then the set's ID). */
#define VSS_RBD_SNAP_PREFIX "vss-"
#define VSS_RBD_META_PREFIX "vss.shadow."
#define VSS_RBD_GROUP_PREFIX "vss."

struct vss_rbd_cluster;
struct vss_rbd_image;

/* Connects as client @id ("admin" if NULL) with the config file @conf
 * (Ceph's default search if NULL), waiting at most @timeout_s for the
 * monitors. */
int vss_rbd_connect(const char *conf, const char *id, unsigned int timeout_s,
		    struct vss_rbd_cluster **out, struct vss_error *err);
void vss_rbd_disconnect(struct vss_rbd_cluster *c);

/* Splits "POOL/IMAGE" into @pool and @image, refusing anything but 1 to
 * VSS_RBD_NAME_MAX letters, digits, '.', '_' and '-' each, not starting
 * with '.' or '-'. */
int vss_rbd_parse_spec(const char *spec, char pool[VSS_RBD_NAME_MAX + 1],
		       char image[VSS_RBD_NAME_MAX + 1], struct vss_error *err);

/* Opens @pool/@image read-write; creates it first with @create_size bytes
 * if it does not exist and @create_size is not 0.  *@created says which. */
int vss_rbd_image_open(struct vss_rbd_cluster *c, const char *pool, const char *image,
		       uint64_t create_size, bool *created, struct vss_rbd_image **out,
		       struct vss_error *err);
/* Opens @img's snapshot @snap_id read-only (a new handle). */
int vss_rbd_snap_open(struct vss_rbd_image *img, uint64_t snap_id,
		      struct vss_rbd_image **out, struct vss_error *err);
void vss_rbd_image_close(struct vss_rbd_image *img);
uint64_t vss_rbd_image_size(const struct vss_rbd_image *img);
const char *vss_rbd_image_pool(const struct vss_rbd_image *img);
const char *vss_rbd_image_name(const struct vss_rbd_image *img);

/* I/O, from any thread: counts (short only at the end) or -errno; flush
 * makes every acknowledged write durable in the cluster. */
ssize_t vss_rbd_read(struct vss_rbd_image *img, void *buf, size_t len, uint64_t off);
ssize_t vss_rbd_write(struct vss_rbd_image *img, const void *buf, size_t len, uint64_t off);
int vss_rbd_flush(struct vss_rbd_image *img);

/* The cluster's identity (its fsid: a UUID as text): images of different
 * clusters may have the same pool and image names. */
int vss_rbd_cluster_fsid(struct vss_rbd_cluster *c, char fsid[37], struct vss_error *err);
/* @img's image ID (rbd info's "id", which a rename keeps). */
int vss_rbd_image_id(struct vss_rbd_image *img, char *out, size_t len, struct vss_error *err);

/*
 * Group snapshots: the group @group lives in @home's pool; images are added
 * before the set's instant, one group snapshot @snap taken at it (one
 * instant, by the cluster; the images' snapshot IDs go into @snap_ids),
 * and the images taken out again after it.  The group stays while any of
 * its snapshots is kept: removing it removes them.
 */
int vss_rbd_group_create(struct vss_rbd_image *home, const char *group, struct vss_error *err);
int vss_rbd_group_add(struct vss_rbd_image *home, const char *group, struct vss_rbd_image *img,
		      struct vss_error *err);
void vss_rbd_group_del(struct vss_rbd_cluster *c, const char *pool, const char *group,
		       struct vss_rbd_image *img);
int vss_rbd_group_snap(struct vss_rbd_image *const *imgs, size_t n, const char *group,
		       const char *snap, uint64_t *snap_ids, struct vss_error *err);
/* Removes @group of pool @pool, and what is left of its snapshots; 0 if gone. */
int vss_rbd_group_remove(struct vss_rbd_cluster *c, const char *pool, const char *group);
/*
 * Removes @group from whichever pool of the cluster holds it (for a group
 * whose pool was not recorded); the pool it was in goes to @pool (""
 * when none held it).  Returns 0 or the first error of a removal.
 */
int vss_rbd_group_remove_anywhere(struct vss_rbd_cluster *c, const char *group,
				  char pool[VSS_RBD_NAME_MAX + 1]);
struct vss_rbd_cluster *vss_rbd_image_cluster(const struct vss_rbd_image *img);

/* A snapshot @snap of @img alone (user namespace); its ID in *@snap_id. */
int vss_rbd_snap_create(struct vss_rbd_image *img, const char *snap, uint64_t *snap_id,
			struct vss_error *err);
/* -EDQUOT, saying so, if @img has as many snapshots as its limit allows
 * (rbd snap limit): the cluster would refuse one more. */
int vss_rbd_snap_room(struct vss_rbd_image *img, struct vss_error *err);
/* Removes snapshot @snap_id of @img (-ENOENT if gone). */
int vss_rbd_snap_remove(struct vss_rbd_image *img, uint64_t snap_id, struct vss_error *err);

/* A snapshot of an image as vss sees it. */
struct vss_rbd_snap {
	uint64_t id;
	char name[256];                 /* the image snapshot's name */
	bool group;                     /* in the group namespace */
	char group_name[256];           /* then: its group and group snapshot */
	char group_snap[256];
	uint64_t size;
};
/* Every snapshot of @img, user and group namespace (malloc'd array). */
int vss_rbd_snap_list(struct vss_rbd_image *img, struct vss_rbd_snap **out, size_t *n,
		      struct vss_error *err);

/* Image metadata. get: -ENOENT if the key is not set. */
int vss_rbd_meta_set(struct vss_rbd_image *img, const char *key, const char *val,
		     struct vss_error *err);
int vss_rbd_meta_get(struct vss_rbd_image *img, const char *key, char *val, size_t len);
int vss_rbd_meta_remove(struct vss_rbd_image *img, const char *key);
/* Calls @fn for every key starting with @prefix (its value). */
int vss_rbd_meta_each(struct vss_rbd_image *img, const char *prefix,
		      void (*fn)(void *arg, const char *key, const char *val), void *arg,
		      struct vss_error *err);

/* The extents written between snapshot @from_snap (by name; NULL: the
 * image's creation) and what @img is open at, from the cluster (the object
 * map's fast diff where the image has one). */
int vss_rbd_diff(struct vss_rbd_image *img, const char *from_snap,
		 int (*fn)(void *arg, uint64_t off, uint64_t len, bool exists), void *arg,
		 struct vss_error *err);

#endif
