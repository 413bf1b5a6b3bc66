/*
 * provider/rbd/provider.c - the RBD provider: volumes on Ceph RBD images
 * (no engine under them: the volume's device reads and writes the image
 * through librbd) and their shadows, which are RBD snapshots taken by the
 * cluster.  Every set's RBD members are one group snapshot (one instant,
 * by construction), taken with their gates closed and filesystems frozen
 * like any other member's.
 *
 * What vss made is marked, so that it never touches anything else: the
 * group is "vss.SET", its snapshot "vss-SET"; before the instant each image
 * gets the metadata key "vss.set.SET" (value: the group's pool), replaced
 * after it by "vss.shadow.ID" (value: "SNAPID SET POOL").  At start (and
 * when a volume comes back) a snapshot is vss's only if such a key names
 * it and its group snapshot has vss's name; the persistent ones the catalog
 * knows are served again, the others deleted as orphans.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <vss/version.h>

#include "provider/provider.h"
#include "provider/rbd/provider.h"
#include "provider/rbd/rbd.h"
#include "service/log.h"
#include "service/peer.h"
#include "service/peer_msg.h"
#include "service/service_i.h"
#include "service/set.h"
#include "service/shadows.h"
#include "service/volumes.h"

#define RBD_NAME "rbd"
#define RBD_ID   "0c3b7a52-8f1e-4d2a-b6e9-3a5d7c1f9e24"
#define CONNECT_TIMEOUT_S 3
#define RETRY_MS 5000

struct rbd_member {
	struct svc_volume *v;                   /* NULL: another host's image (remote) */
	struct vss_rbd_image *img;              /* remote: opened here, owned */
	uint64_t snap_id;
	char host[SVC_PEER_NAME_MAX + 1];       /* remote: its host */
	char image_id[SVC_PEER_RBD_ID_MAX + 1]; /* a peer's cross-host member: its image's ID */
};

/* A group this coordinator made for a set across hosts, kept while other
 * hosts' members of the set are recorded here (its pool; svc->lock). */
#define CROSS_GROUPS 16
struct cross_group {
	char set[37];
	char pool[VSS_RBD_NAME_MAX + 1];
};

struct svc_rbd {
	char *conf, *id;
	struct vss_rbd_cluster *c;              /* NULL until it first answers */
	uint64_t next_retry_ms;
	/* The last failed connect and why: calls within RETRY_MS of it fail at
	 * once (at start, N offline volumes cost one timeout, not N). */
	uint64_t failed_ms;
	struct vss_error failed;
	/* The set being taken (svc->lock: one at a time). */
	unsigned char set_id[16];
	char home[VSS_RBD_NAME_MAX + 1];        /* the pool of the set's group */
	struct rbd_member *pend[SVC_SET_MAX];
	size_t npend;
	bool snapped;
	bool single;                            /* one member: a user snapshot, no group one */
	int snap_rc;
	char snap_msg[VSS_ERROR_MSG_MAX];
	/* A peer: the set whose RBD members are in another host's group
	 * ("cross-host mode"), or "". */
	char cross[37];
	struct cross_group groups[CROSS_GROUPS];
	size_t next_group;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the volume's device: straight to the image ---- */

static ssize_t origin_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	return vss_rbd_read(ctx, buf, len, off);
}

static ssize_t origin_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	return vss_rbd_write(ctx, buf, len, off);
}

static int origin_flush(void *ctx)
{
	return vss_rbd_flush(ctx);
}

static void origin_release(void *ctx)
{
	vss_rbd_image_close(ctx);
}

static const struct vss_device_ops rbd_origin_ops = {
	.read = origin_read,
	.write = origin_write,
	.flush = origin_flush,
	.release = origin_release,
};

static struct vss_rbd_image *volume_image(const struct svc_volume *v)
{
	return v && v->direct == &rbd_origin_ops ? v->direct_ctx : NULL;
}

/* The shadows' devices: a read-only handle at the snapshot each. */
static ssize_t snap_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	return vss_rbd_read(ctx, buf, len, off);
}

static const struct vss_device_ops rbd_snap_ops = {
	.read = snap_read,
	.release = origin_release,
};

/* ---- the cluster ---- */

int svc_rbd_init(struct vss_service *svc, const char *conf, const char *id,
		 struct vss_error *err)
{
	struct svc_rbd *r;
	struct stat st;

	if (conf && (conf[0] != '/' || stat(conf, &st) < 0 || !S_ISREG(st.st_mode)))
		return vss_error_set(err, -EINVAL, "--ceph-conf %s: not an absolute path to a "
				     "file", conf);
	if (id) {
		size_t n = strlen(id);

		if (n == 0 || n > 64 || strspn(id, "abcdefghijklmnopqrstuvwxyz"
					       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
			return vss_error_set(err, -EINVAL, "--ceph-id %s: use 1 to 64 letters, "
					     "digits, '.', '_' or '-'", id);
	}
	if (!(r = calloc(1, sizeof(*r))) || (conf && !(r->conf = strdup(conf))) ||
	    (id && !(r->id = strdup(id)))) {
		if (r)
			free(r->conf);
		free(r);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	svc->rbd = r;
	return 0;
}

void svc_rbd_release(struct vss_service *svc)
{
	struct svc_rbd *r = svc->rbd;

	if (!r)
		return;
	vss_rbd_disconnect(r->c);
	free(r->conf);
	free(r->id);
	free(r);
	svc->rbd = NULL;
}

static int cluster(struct vss_service *svc, struct vss_rbd_cluster **out, struct vss_error *err)
{
	struct svc_rbd *r = svc->rbd;
	int rc;

	if (!r)
		return vss_error_set(err, -ENOTSUP, "RBD is not set up in this vssd");
	if (!r->c && r->failed_ms && mono_ms() < r->failed_ms + RETRY_MS)
		return vss_error_set(err, r->failed.code, "%s", r->failed.msg);
	if (!r->c && (rc = vss_rbd_connect(r->conf, r->id, CONNECT_TIMEOUT_S, &r->c, err)) < 0) {
		r->failed_ms = mono_ms();
		r->failed = *err;
		return rc;
	}
	*out = r->c;
	return 0;
}

bool svc_rbd_is_backing(const char *backing)
{
	return strncmp(backing, SVC_RBD_BACKING_PREFIX, strlen(SVC_RBD_BACKING_PREFIX)) == 0;
}

/* ---- volumes ---- */

static int open_image(struct vss_service *svc, const char *spec, uint64_t size, bool *created,
		      struct vss_rbd_image **out, struct vss_error *err)
{
	char pool[VSS_RBD_NAME_MAX + 1], image[VSS_RBD_NAME_MAX + 1];
	struct vss_rbd_cluster *c = NULL;
	int rc;

	if ((rc = vss_rbd_parse_spec(spec, pool, image, err)) < 0 ||
	    (rc = cluster(svc, &c, err)) < 0)
		return rc;
	return vss_rbd_image_open(c, pool, image, size, created, out, err);
}

int svc_rbd_volume_open(struct vss_service *svc, struct svc_volume *v, struct vss_error *err)
{
	struct vss_rbd_image *img;
	bool created;
	int rc;

	if (!svc_rbd_is_backing(v->rec.backing))
		return vss_error_set(err, -EINVAL, "volume %s is not on RBD", v->rec.name);
	if ((rc = open_image(svc, v->rec.backing + strlen(SVC_RBD_BACKING_PREFIX), 0, &created,
			     &img, err)) < 0)
		return rc;
	v->direct = &rbd_origin_ops;
	v->direct_ctx = img;
	v->rec.size = vss_rbd_image_size(img);
	return svc_volume_serve(svc, v, err);
}

int svc_rbd_volume_create(struct vss_service *svc, const char *name, const char *spec,
			  uint64_t size, struct svc_volume **out, struct vss_error *err)
{
	struct vss_catalog_volume rec = { 0 };
	char backing[8 + 2 * VSS_RBD_NAME_MAX];
	struct svc_volume *v;
	int rc;

	*out = NULL;
	if (size % 4096)
		return vss_error_set(err, -EINVAL, "size %llu is not a multiple of 4K",
				     (unsigned long long)size);
	snprintf(backing, sizeof(backing), "%s%s", SVC_RBD_BACKING_PREFIX, spec);
	for (int l = 0; l < 2; l++)
		for (v = l ? svc->offline : svc->volumes; v; v = v->next)
			if (strcmp(v->rec.backing, backing) == 0)
				return vss_error_set(err, -EBUSY, "RBD image %s already backs "
						     "volume %s", spec, v->rec.name);
	snprintf(rec.name, sizeof(rec.name), "%s", name);
	rec.block_size = 4096;
	rec.backing = backing;
	rec.diff_path = "";
	rec.max_diff = VSS_COW_UNBOUNDED;
	rec.created_ns = svc_now_ns();
	if (!(v = svc_volume_new(svc, &rec)))
		return vss_error_set(err, -ENOMEM, "out of memory");
	if (size) {
		struct vss_rbd_image *img;
		bool created;

		/* Created here (if missing) so that the size is the caller's. */
		if ((rc = open_image(svc, spec, size, &created, &img, err)) < 0) {
			svc_volume_put(v);
			return rc;
		}
		if (created)
			vss_log("RBD image %s created: %llu bytes", spec, (unsigned long long)size);
		vss_rbd_image_close(img);
	}
	if ((rc = svc_rbd_volume_open(svc, v, err)) < 0) {
		svc_volume_put(v);
		return rc;
	}
	*out = v;
	return 0;
}

/* ---- shadows: the set's members ---- */

static int rbd_supports(struct vss_service *svc, const char *target, struct vss_error *err)
{
	struct svc_volume *v;
	int rc;

	if ((rc = svc_resolve_target(svc, target, &v, err)) < 0)
		return rc;
	if (!volume_image(v))
		return vss_error_set(err, -ENOTSUP, "volume %s is not on RBD", v->rec.name);
	return 0;
}

static void set_names(const unsigned char set_id[16], char group[48], char gsnap[48],
		      char sid[37])
{
	svc_id_str(set_id, sid);
	snprintf(group, 48, "%s%s", VSS_RBD_GROUP_PREFIX, sid);
	snprintf(gsnap, 48, "%s%s", VSS_RBD_SNAP_PREFIX, sid);
}

/* Before the freeze: the image joins the set's group (made by the set's
 * first RBD member, in its pool), marked as vss's for the instant. */
static int rbd_prepare(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	struct svc_rbd *r = svc->rbd;
	char group[48], gsnap[48], sid[37], key[64], dev[PATH_MAX];
	struct rbd_member *rm;
	struct svc_volume *v;
	int rc;

	if ((rc = rbd_supports(svc, m->target, err)) < 0)
		return rc;
	svc_resolve_target(svc, m->target, &v, err);
	if (memcmp(r->set_id, m->set_id, 16) != 0) {
		memcpy(r->set_id, m->set_id, 16);
		r->npend = 0;
		r->snapped = false;
	}
	if (!(rm = calloc(1, sizeof(*rm))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	rm->v = v;
	rm->img = volume_image(v);
	if ((rc = vss_rbd_snap_room(rm->img, err)) < 0)
		goto fail;
	set_names(m->set_id, group, gsnap, sid);
	snprintf(key, sizeof(key), "vss.set.%s", sid);
	if (strcmp(r->cross, sid) == 0) {
		/* Another host's group takes it (svc_rbd_cross): no group here;
		 * the mark says so ("-": the group is not this host's). */
		snprintf(r->home, sizeof(r->home), "-");
		if ((rc = vss_rbd_image_id(rm->img, rm->image_id, sizeof(rm->image_id),
					   err)) < 0 ||
		    (rc = vss_rbd_meta_set(rm->img, key, "-", err)) < 0)
			goto fail;
	} else if (r->npend == 0) {
		if ((rc = vss_rbd_group_create(rm->img, group, err)) < 0)
			goto fail;
		snprintf(r->home, sizeof(r->home), "%s", vss_rbd_image_pool(rm->img));
	}
	if (strcmp(r->cross, sid) != 0 &&
	    ((rc = vss_rbd_meta_set(rm->img, key, r->home, err)) < 0 ||
	     (rc = vss_rbd_group_add(r->npend ? r->pend[0]->img : rm->img, group, rm->img,
				     err)) < 0)) {
		vss_rbd_meta_remove(rm->img, key);
		if (r->npend == 0)
			vss_rbd_group_remove(vss_rbd_image_cluster(rm->img), r->home, group);
		goto fail;
	}
	svc_volume_device_path(svc, v->rec.name, dev, sizeof(dev));
	if (!(m->device = strdup(dev))) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r->pend[r->npend++] = rm;
	m->priv = rm;
	m->volume = v->rec.name;
	m->gate = &v->wgate;
	m->freeze_dir = v->mount_dir;
	m->freeze_loop = v->mount_loop;
	return 0;
fail:
	free(rm);
	return rc;
}

/* The one group snapshot of every image of the set, this host's and (a
 * coordinator) other hosts'; once. */
static int take_snap(struct svc_rbd *r, const unsigned char set_id[16])
{
	if (!r->snapped) {
		struct vss_rbd_image *imgs[SVC_SET_MAX];
		uint64_t ids[SVC_SET_MAX];
		char group[48], gsnap[48], sid[37];
		struct vss_error e = { 0 };

		set_names(set_id, group, gsnap, sid);
		for (size_t i = 0; i < r->npend; i++)
			imgs[i] = r->pend[i]->img;
		r->snapped = true;
		/* One image: a snapshot of its own, which rbd_diff_iterate2 can
		 * start from (Ceph 16 diffs only from user snapshots). */
		r->single = r->npend == 1 && r->pend[0]->v;
		r->snap_rc = r->single ? vss_rbd_snap_create(imgs[0], gsnap, &ids[0], &e)
				       : vss_rbd_group_snap(imgs, r->npend, group, gsnap, ids, &e);
		memcpy(r->snap_msg, e.msg, sizeof(r->snap_msg));
		for (size_t i = 0; r->snap_rc == 0 && i < r->npend; i++)
			r->pend[i]->snap_id = ids[i];
	}
	return r->snap_rc;
}

/* Inside the window: the set's first RBD member takes the one group
 * snapshot of them all; the others find theirs taken.  A peer's members in
 * cross-host mode are taken by the coordinator's (their IDs come with its
 * "thaw": svc_rbd_cross_taken). */
static int rbd_commit(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	struct svc_rbd *r = svc->rbd;
	char sid[37];

	svc_id_str(m->set_id, sid);
	if (strcmp(r->cross, sid) == 0)
		return 0;
	if (take_snap(r, m->set_id) < 0)
		return vss_error_set(err, r->snap_rc, "%s", r->snap_msg);
	return 0;
}

static void forget_pending(struct svc_rbd *r, struct rbd_member *rm)
{
	for (size_t i = 0; i < r->npend; i++)
		if (r->pend[i] == rm)
			r->pend[i] = NULL;
}

static void rbd_abort(struct vss_service *svc, struct svc_member *m)
{
	struct svc_rbd *r = svc->rbd;
	struct rbd_member *rm = m->priv;
	char group[48], gsnap[48], sid[37], key[64];

	if (!rm)
		return;
	set_names(m->set_id, group, gsnap, sid);
	snprintf(key, sizeof(key), "vss.set.%s", sid);
	if (m->taken && rm->snap_id)
		vss_rbd_snap_remove(rm->img, rm->snap_id, NULL);
	/* The group, its snapshot and every image's membership go at once
	 * (another host's group: that host removes it). */
	if (strcmp(r->home, "-") != 0)
		vss_rbd_group_remove(vss_rbd_image_cluster(rm->img), r->home, group);
	vss_rbd_meta_remove(rm->img, key);
	forget_pending(r, rm);
	m->taken = false;
	m->priv = NULL;
	free(rm);
}

static void snap_path(const struct vss_rbd_image *img, uint64_t snap_id, char *out, size_t len)
{
	snprintf(out, len, "%s%s/%s@%" PRIu64, SVC_RBD_BACKING_PREFIX, vss_rbd_image_pool(img),
		 vss_rbd_image_name(img), snap_id);
}

static int serve_snap(struct vss_service *svc, struct svc_shadow *sh, struct vss_rbd_image *img,
		      uint64_t snap_id, struct vss_error *err)
{
	struct vss_rbd_image *snap;
	int rc;

	if ((rc = vss_rbd_snap_open(img, snap_id, &snap, err)) < 0)
		return rc;
	rc = svc->tr->ops->add(svc->tr, VSS_DEVICE_SHADOW, sh->rec.id, vss_rbd_image_size(snap),
			       &rbd_snap_ops, snap, err);
	if (rc < 0)
		vss_rbd_image_close(snap);
	return rc;
}

/* After the thaw: the image leaves the group (which keeps the snapshot),
 * its mark names the shadow, and the snapshot is served. */
static int rbd_adopt(struct vss_service *svc, struct svc_member *m, struct svc_shadow *sh,
		     struct vss_error *err)
{
	struct svc_rbd *r = svc->rbd;
	struct rbd_member *rm = m->priv;
	char group[48], gsnap[48], sid[37], key[64], val[160], path[PATH_MAX];
	const char *home = r->home;
	int rc;

	m->priv = NULL;
	set_names(m->set_id, group, gsnap, sid);
	if (!rm->snap_id) {
		rc = vss_error_set(err, -EPROTO, "RBD image %s/%s: the coordinator did not say "
				   "which snapshot of group %s it is", vss_rbd_image_pool(rm->img),
				   vss_rbd_image_name(rm->img), group);
		goto out;
	}
	snap_path(rm->img, rm->snap_id, path, sizeof(path));
	if (!(sh->path = strdup(path))) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	snprintf(key, sizeof(key), "%s%s", VSS_RBD_META_PREFIX, sh->rec.id);
	snprintf(val, sizeof(val), "%" PRIu64 " %s %s", rm->snap_id, sid, home);
	if ((rc = vss_rbd_meta_set(rm->img, key, val, err)) < 0)
		goto out;
	snprintf(key, sizeof(key), "vss.set.%s", sid);
	vss_rbd_meta_remove(rm->img, key);
	if (strcmp(home, "-") == 0)
		;       /* another host's group: it takes the image out */
	else if (r->single)
		vss_rbd_group_remove(vss_rbd_image_cluster(rm->img), home, group);
	else
		vss_rbd_group_del(vss_rbd_image_cluster(rm->img), home, group, rm->img);
	rc = serve_snap(svc, sh, rm->img, rm->snap_id, err);
out:
	if (rc < 0 && !sh->path)
		vss_rbd_snap_remove(rm->img, rm->snap_id, NULL);
	forget_pending(r, rm);
	free(rm);
	return rc;
}

static void rbd_location(struct vss_service *svc, const struct svc_shadow *sh, char *out,
			 size_t len)
{
	snprintf(out, len, "%s/shadows/%s", svc->dev_dir, sh->rec.id);
}

/* The snapshot ID in sh->path ("rbd:POOL/IMAGE@ID"). */
static bool path_snap_id(const char *path, uint64_t *id)
{
	const char *at = path ? strrchr(path, '@') : NULL;
	char *end;

	if (!at)
		return false;
	*id = strtoull(at + 1, &end, 10);
	return *end == '\0';
}

#define BOOKMARK_PREFIX "vss.bookmark."

static bool find_bookmark(struct vss_service *svc, const char *id, struct svc_volume **vol,
			  uint64_t *snap_id, char val[160]);

struct set_use {
	const char *set_id, *skip;
	bool used;
};

static void bookmark_of_set(void *arg, const char *key, const char *val)
{
	struct set_use *u = arg;

	if (strcmp(key + strlen(BOOKMARK_PREFIX), u->skip) != 0 && strstr(val, u->set_id))
		u->used = true;
}

/* Whether a bookmark other than @skip keeps a snapshot of set @set_id. */
static bool set_bookmarked(struct vss_service *svc, const char *set_id, const char *skip)
{
	struct set_use u = { set_id, skip, false };

	for (struct svc_volume *v = svc->volumes; v && !u.used; v = v->next)
		if (volume_image(v))
			vss_rbd_meta_each(volume_image(v), BOOKMARK_PREFIX, bookmark_of_set, &u, NULL);
	return u.used;
}

/* Deletes an image's snapshot and its mark; the group once no other
 * shadow or bookmark of the set needs it. */
static int drop_snap(struct vss_service *svc, struct vss_rbd_image *img, const char *shadow_id,
		     uint64_t snap_id, const char *set_id, const char *pool, const char *skip,
		     struct vss_error *err)
{
	char key[64], group[48];
	int rc = vss_rbd_snap_remove(img, snap_id, err);

	if (rc < 0 && rc != -ENOENT)
		return rc;
	snprintf(key, sizeof(key), "%s%s", VSS_RBD_META_PREFIX, shadow_id);
	vss_rbd_meta_remove(img, key);
	/* Another host's group ("-") is that host's to remove. */
	if (strcmp(pool, "-") == 0)
		return 0;
	for (struct svc_shadow *o = svc->shadows; o; o = o->next)
		if (o->prov == &svc_provider_rbd && strcmp(o->rec.id, skip) != 0 &&
		    strcmp(o->rec.set_id, set_id) == 0)
			return 0;
	if (set_bookmarked(svc, set_id, skip))
		return 0;
	/* Other hosts' members in the group: removing it would remove their
	 * snapshots (svc_rbd_set_released removes it after them). */
	for (struct svc_remote *o = svc->remotes; o; o = o->next)
		if (strcmp(o->rec.set_id, set_id) == 0)
			return 0;
	snprintf(group, sizeof(group), "%s%s", VSS_RBD_GROUP_PREFIX, set_id);
	if ((rc = vss_rbd_group_remove(vss_rbd_image_cluster(img), pool, group)) < 0)
		vss_log("RBD group %s/%s: cannot remove it: %s", pool, group, strerror(-rc));
	return 0;
}

/* bookmark.delete: the mark goes, and the snapshot unless its shadow lives. */
static int rbd_forget(struct vss_service *svc, const char *id, struct vss_error *err)
{
	char key[64], val[160], sid[37] = "", pool[VSS_RBD_NAME_MAX + 1] = "";
	struct svc_volume *v;
	uint64_t snap_id;

	if (!find_bookmark(svc, id, &v, &snap_id, val))
		return -ENOENT;
	snprintf(key, sizeof(key), "%s%s", BOOKMARK_PREFIX, id);
	vss_rbd_meta_remove(volume_image(v), key);
	if (svc_shadow_find(svc, id))
		return 0;
	sscanf(val, "%*s %36s %96s", sid, pool);
	return drop_snap(svc, volume_image(v), id, snap_id, sid, pool, id, err);
}

static int rbd_remove(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err)
{
	struct svc_volume *v = svc_volume_find(svc, sh->rec.volume);
	struct vss_rbd_image *img = volume_image(v);
	char key[64], val[160], sid[37], pool[VSS_RBD_NAME_MAX + 1];
	uint64_t snap_id, meta_id;

	svc->tr->ops->remove(svc->tr, VSS_DEVICE_SHADOW, sh->rec.id);
	if (!img)
		return vss_error_set(err, -EIO, "volume %s is not served: its snapshot for shadow "
				     "%s stays in the cluster", sh->rec.volume, sh->rec.id);
	if (!path_snap_id(sh->path, &snap_id))
		return 0;
	snprintf(key, sizeof(key), "%s%s", BOOKMARK_PREFIX, sh->rec.id);
	if (vss_rbd_meta_get(img, key, val, sizeof(val)) >= 0) {
		/* A bookmark keeps the snapshot: only the shadow's mark goes. */
		snprintf(key, sizeof(key), "%s%s", VSS_RBD_META_PREFIX, sh->rec.id);
		vss_rbd_meta_remove(img, key);
		return 0;
	}
	snprintf(key, sizeof(key), "%s%s", VSS_RBD_META_PREFIX, sh->rec.id);
	snprintf(pool, sizeof(pool), "%s", vss_rbd_image_pool(img));
	if (vss_rbd_meta_get(img, key, val, sizeof(val)) >= 0)
		sscanf(val, "%" SCNu64 " %36s %96s", &meta_id, sid, pool);
	return drop_snap(svc, img, sh->rec.id, snap_id, sh->rec.set_id, pool, sh->rec.id, err);
}

/* The RBD volume holding bookmark @id (its mark "vss.bookmark.ID", value
 * as a shadow's), its snapshot's ID, and the mark's value. */
static bool find_bookmark(struct vss_service *svc, const char *id, struct svc_volume **vol,
			  uint64_t *snap_id, char val[160])
{
	char key[64], buf[160];

	snprintf(key, sizeof(key), "%s%s", BOOKMARK_PREFIX, id);
	for (struct svc_volume *v = svc->volumes; v; v = v->next)
		if (volume_image(v) && vss_rbd_meta_get(volume_image(v), key, buf, sizeof(buf)) >= 0 &&
		    sscanf(buf, "%" SCNu64, snap_id) == 1) {
			*vol = v;
			if (val)
				memcpy(val, buf, sizeof(buf));
			return true;
		}
	return false;
}

/* bookmark.create: the shadow's mark is copied as a bookmark's, which
 * keeps its snapshot when the shadow goes (rbd_remove). */
static int rbd_keep(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err)
{
	struct vss_rbd_image *img = volume_image(svc_volume_find(svc, sh->rec.volume));
	char key[64], val[160];
	int rc;

	if (!img)
		return vss_error_set(err, -EIO, "volume %s is not served", sh->rec.volume);
	snprintf(key, sizeof(key), "%s%s", VSS_RBD_META_PREFIX, sh->rec.id);
	if ((rc = vss_rbd_meta_get(img, key, val, sizeof(val))) < 0)
		return vss_error_set(err, rc, "shadow copy %s: its mark is gone: %s", sh->rec.id,
				     strerror(-rc));
	snprintf(key, sizeof(key), "%s%s", BOOKMARK_PREFIX, sh->rec.id);
	return vss_rbd_meta_set(img, key, val, err);
}

struct extents {
	struct vss_cow_extent *v;
	size_t n, cap;
};

/* Every extent the cluster reports, written or discarded (then zeros). */
static int add_extent(void *arg, uint64_t off, uint64_t len, bool exists)
{
	struct extents *x = arg;
	struct vss_cow_extent *bigger = svc_grow(x->v, &x->cap, x->n, sizeof(*x->v));

	if (!bigger)
		return -ENOMEM;
	x->v = bigger;
	x->v[x->n].offset = off;
	x->v[x->n++].length = len;
	return 0;
}

/*
 * From the cluster: rbd_diff_iterate2 from @from's snapshot to @to's (a
 * handle at it) or the image now, with the object map's fast diff where
 * the image has one.  Ceph 16 diffs only from user snapshots, which a
 * single-volume set takes; from a group snapshot the answer is the whole
 * volume (a superset, never less).
 */
static int rbd_changed(struct vss_service *svc, const char *from_id,
		       const struct svc_shadow *to, struct vss_cow_extent **ext, size_t *n,
		       uint64_t *size, uint64_t *unit, struct vss_error *err)
{
	const struct svc_shadow *from = svc_shadow_find(svc, from_id);
	struct svc_volume *v = NULL;
	struct vss_rbd_image *img, *at = NULL;
	struct extents x = { 0 };
	struct vss_rbd_snap *snaps = NULL;
	const char *from_name = NULL;
	uint64_t fid = 0, tid = 0;
	size_t ns;
	int rc;

	*ext = NULL;
	*n = 0;
	*unit = 4096;       /* rbd_diff_iterate2's extents are in bytes; say pages */
	if (from && from->prov == &svc_provider_rbd) {
		v = svc_volume_find(svc, from->rec.volume);
		if (!path_snap_id(from->path, &fid))
			return vss_error_set(err, -EINVAL, "shadow copy %s: no RBD snapshot", from_id);
	} else if (!find_bookmark(svc, from_id, &v, &fid, NULL)) {
		return -ENOENT;
	}
	if (!(img = volume_image(v)))
		return vss_error_set(err, -EIO, "the volume of %s is not served", from_id);
	if (to && strcmp(to->rec.volume, v->rec.name) != 0)
		return vss_error_set(err, -EINVAL, "%s and shadow copy %s are of different "
				     "volumes", from_id, to->rec.id);
	if (to && !path_snap_id(to->path, &tid))
		return vss_error_set(err, -EINVAL, "shadow copy %s: no RBD snapshot", to->rec.id);
	if ((rc = vss_rbd_snap_list(img, &snaps, &ns, err)) < 0)
		return rc;
	for (size_t i = 0; i < ns; i++)
		if (snaps[i].id == fid && !snaps[i].group)
			from_name = snaps[i].name;
	if (to && (rc = vss_rbd_snap_open(img, tid, &at, err)) < 0)
		goto out;
	*size = vss_rbd_image_size(at ? at : img);
	if (!from_name) {
		vss_log("shadow %s is part of an RBD group snapshot, which Ceph cannot diff "
			"from: every block counts as changed", from_id);
		rc = add_extent(&x, 0, *size, true);
	} else {
		rc = vss_rbd_diff(at ? at : img, from_name, add_extent, &x, err);
	}
	if (rc < 0) {
		free(x.v);
		if (rc == -ENOMEM)
			vss_error_set(err, rc, "out of memory");
		goto out;
	}
	*ext = x.v;
	*n = x.n;
out:
	vss_rbd_image_close(at);
	free(snaps);
	return rc;
}

static json_t *rbd_paths(struct vss_service *svc)
{
	json_t *arr = json_array();

	for (struct svc_volume *v = svc->volumes; v; v = v->next)
		if (volume_image(v))
			json_array_append_new(arr, json_string(v->mount_dir ? v->mount_dir
									    : v->rec.name));
	return arr;
}

/* ---- finding shadows again ---- */

struct mark {
	char key[128], val[160];
};

struct marks {
	struct mark *m;
	size_t n, cap;
};

static void collect_mark(void *arg, const char *key, const char *val)
{
	struct marks *ms = arg;
	struct mark *bigger = svc_grow(ms->m, &ms->cap, ms->n, sizeof(*ms->m));

	if (!bigger)
		return;
	ms->m = bigger;
	snprintf(ms->m[ms->n].key, sizeof(ms->m[ms->n].key), "%s", key);
	snprintf(ms->m[ms->n].val, sizeof(ms->m[ms->n].val), "%s", val);
	ms->n++;
}

static const struct vss_rbd_snap *find_snap(const struct vss_rbd_snap *s, size_t n, uint64_t id,
					    const char *gsnap)
{
	for (size_t i = 0; i < n; i++)
		if ((id == UINT64_MAX || s[i].id == id) &&
		    strcmp(s[i].group ? s[i].group_snap : s[i].name, gsnap) == 0)
			return &s[i];
	return NULL;
}

/*
 * Reconciles one served RBD volume with the catalog: each snapshot vss
 * marked is served again if the catalog keeps it as persistent, else
 * deleted (an orphan: not persistent, or the catalog never heard of it);
 * sets cut short before their marks were final lose their snapshots;
 * catalog rows whose snapshot is gone are deleted.  Nothing unmarked is
 * touched.
 */
static void recover_volume(struct vss_service *svc, struct svc_volume *v, struct svc_rows *rows)
{
	struct vss_rbd_image *img = volume_image(v);
	struct marks ms = { 0 };
	struct vss_rbd_snap *snaps = NULL;
	size_t nsnaps = 0;
	struct vss_error e;

	if (vss_rbd_meta_each(img, "vss.", collect_mark, &ms, &e) < 0 ||
	    vss_rbd_snap_list(img, &snaps, &nsnaps, &e) < 0) {
		vss_log("volume %s: cannot look for its shadows: %s", v->rec.name, e.msg);
		goto out;
	}
	for (size_t i = 0; i < ms.n; i++) {
		const char *key = ms.m[i].key;
		char sid[37] = "", pool[VSS_RBD_NAME_MAX + 1] = "", gsnap[48];
		struct vss_catalog_shadow *row = NULL;
		const struct vss_rbd_snap *s;
		uint64_t snap_id = 0;

		if (strncmp(key, "vss.set.", 8) == 0) {
			/* A set that never reached adopt: its snapshots are orphans. */
			snprintf(sid, sizeof(sid), "%.36s", key + 8);
			snprintf(pool, sizeof(pool), "%.96s", ms.m[i].val);
			snprintf(gsnap, sizeof(gsnap), "%s%s", VSS_RBD_SNAP_PREFIX, sid);
			while ((s = find_snap(snaps, nsnaps, UINT64_MAX, gsnap))) {
				vss_log("volume %s: deleting snapshot %s of a set cut short (%s)",
					v->rec.name, s->name, sid);
				if (vss_rbd_snap_remove(img, s->id, &e) < 0 && e.code != -ENOENT)
					break;
				((struct vss_rbd_snap *)s)->id = UINT64_MAX - 1;
				((struct vss_rbd_snap *)s)->name[0] = '\0';
				((struct vss_rbd_snap *)s)->group = false;
			}
			/* Its group too, which may still hold the image: left, it
			 * would refuse the image to every later set. */
			snprintf(gsnap, sizeof(gsnap), "%s%s", VSS_RBD_GROUP_PREFIX, sid);
			if (strcmp(pool, "-") != 0)
				vss_rbd_group_remove(vss_rbd_image_cluster(img), pool, gsnap);
			vss_rbd_meta_remove(img, key);
			continue;
		}
		if (strncmp(key, BOOKMARK_PREFIX, strlen(BOOKMARK_PREFIX)) == 0) {
			/* A bookmark keeps its snapshot; gone with it, it goes too. */
			if (sscanf(ms.m[i].val, "%" SCNu64 " %36s", &snap_id, sid) == 2 &&
			    (snprintf(gsnap, sizeof(gsnap), "%s%s", VSS_RBD_SNAP_PREFIX, sid), 1) &&
			    !find_snap(snaps, nsnaps, snap_id, gsnap))
				vss_rbd_meta_remove(img, key);
			continue;
		}
		if (strncmp(key, VSS_RBD_META_PREFIX, strlen(VSS_RBD_META_PREFIX)) != 0)
			continue;
		const char *id = key + strlen(VSS_RBD_META_PREFIX);

		if (strlen(id) != 36 ||
		    sscanf(ms.m[i].val, "%" SCNu64 " %36s %96s", &snap_id, sid, pool) != 3)
			continue;   /* not a mark vss would write: not vss's */
		snprintf(gsnap, sizeof(gsnap), "%s%s", VSS_RBD_SNAP_PREFIX, sid);
		s = find_snap(snaps, nsnaps, snap_id, gsnap);
		if (!s) {
			vss_rbd_meta_remove(img, key);
			continue;
		}
		for (size_t j = 0; j < rows->count; j++)
			if (strcmp(rows->rows[j].id, id) == 0)
				row = &rows->rows[j];
		if (svc_shadow_find(svc, id)) {
			if (row)
				row->id[0] = '\0';
			continue;
		}
		if ((!row || !(row->attrs & VSS_CATALOG_ATTR_PERSISTENT)) &&
		    find_bookmark(svc, id, &(struct svc_volume *){ NULL }, &(uint64_t){ 0 }, NULL)) {
			/* Its bookmark keeps the snapshot: only the shadow goes. */
			vss_rbd_meta_remove(img, key);
			if (row) {
				vss_catalog_shadow_delete(svc->cat, id, NULL);
				row->id[0] = '\0';
			}
			continue;
		}
		if (!row || !(row->attrs & VSS_CATALOG_ATTR_PERSISTENT)) {
			vss_log("volume %s: deleting snapshot %s, an orphan of shadow %s (%s)",
				v->rec.name, s->name, id, row ? "not persistent" : "not in the catalog");
			drop_snap(svc, img, id, snap_id, sid, pool, "", &e);
			if (row) {
				vss_catalog_shadow_delete(svc->cat, id, NULL);
				row->id[0] = '\0';
			}
			continue;
		}
		struct svc_shadow *sh = calloc(1, sizeof(*sh));
		char path[PATH_MAX];

		snap_path(img, snap_id, path, sizeof(path));
		if (!sh || !(sh->path = strdup(path))) {
			free(sh);
			continue;
		}
		sh->prov = &svc_provider_rbd;
		sh->rec = *row;
		sh->rec.target = row->target;
		row->target = NULL;
		row->id[0] = '\0';
		svc_provider_list_add(svc, sh);
		if (serve_snap(svc, sh, img, snap_id, &e) < 0)
			vss_log("shadow %s: no device: %s", sh->rec.id, e.msg);
	}
	for (size_t j = 0; j < rows->count; j++) {
		struct vss_catalog_shadow *row = &rows->rows[j];

		if (!row->id[0] || strcmp(row->volume, v->rec.name) != 0)
			continue;
		vss_log("shadow %s of volume %s deleted: its RBD snapshot is gone", row->id,
			row->volume);
		vss_catalog_shadow_delete(svc->cat, row->id, NULL);
		row->id[0] = '\0';
	}
out:
	free(snaps);
	free(ms.m);
}

static void recover_volumes(struct vss_service *svc, struct svc_volume *only)
{
	struct svc_rows rows = { 0 };
	struct vss_error e;

	if (svc_provider_rows(svc, VSS_CATALOG_ATTR_RBD, &rows, &e) < 0) {
		vss_log("RBD shadows: %s", e.msg);
		return;
	}
	for (struct svc_volume *v = svc->volumes; v; v = v->next)
		if (volume_image(v) && (!only || v == only))
			recover_volume(svc, v, &rows);
	svc_provider_rows_release(&rows);
}

static int rbd_recover(struct vss_service *svc, struct vss_error *err)
{
	recover_volumes(svc, NULL);
	return 0;
}

void svc_rbd_retry(struct vss_service *svc)
{
	struct svc_rbd *r = svc->rbd;
	struct svc_volume **pp;
	bool any = false;

	svc_assert_locked(svc);
	for (struct svc_volume *v = svc->offline; v; v = v->next)
		any |= svc_rbd_is_backing(v->rec.backing);
	if (!r || !any || mono_ms() < r->next_retry_ms)
		return;
	r->next_retry_ms = mono_ms() + RETRY_MS;
	if (!r->c) {
		/* Outside svc->lock: waiting for monitors that do not answer must
		 * not hold up every control operation. */
		struct vss_rbd_cluster *c;
		struct vss_error e;
		int rc;

		svc_unlock(svc);
		rc = vss_rbd_connect(r->conf, r->id, CONNECT_TIMEOUT_S, &c, &e);
		svc_lock(svc);
		if (rc < 0) {
			r->failed_ms = mono_ms();
			r->failed = e;
			return;
		}
		if (r->c)
			vss_rbd_disconnect(c);      /* another connected meanwhile */
		else
			r->c = c;
	}
	for (pp = &svc->offline; *pp;) {
		struct svc_volume *v = *pp;
		struct vss_error e;

		if (!svc_rbd_is_backing(v->rec.backing)) {
			pp = &v->next;
			continue;
		}
		*pp = v->next;
		v->next = NULL;
		if (svc_rbd_volume_open(svc, v, &e) < 0) {
			v->next = *pp;
			*pp = v;
			pp = &v->next;
			free(v->offline_why);
			v->offline_why = strdup(e.msg);
			continue;
		}
		free(v->offline_why);
		v->offline_why = NULL;
		vss_log("volume %s: its RBD image answers again; served", v->rec.name);
		recover_volumes(svc, v);
	}
}

const struct vss_provider_ops svc_provider_rbd = {
	.name = RBD_NAME,
	.id = RBD_ID,
	.version = VSS_VERSION,
	.kind = "hardware",
	.priority = 110,
	.caps = 0,
	.catalog_attr = VSS_CATALOG_ATTR_RBD,
	.shadow_attr = "plex",
	.supports = rbd_supports,
	.prepare = rbd_prepare,
	.commit = rbd_commit,
	.abort = rbd_abort,
	.adopt = rbd_adopt,
	.location = rbd_location,
	.remove = rbd_remove,
	.expose = NULL,
	.recover = rbd_recover,
	.changed = rbd_changed,
	.keep = rbd_keep,
	.forget = rbd_forget,
	.origin_of = NULL,
	.paths = rbd_paths,
};

/* ---- one group snapshot across hosts (doc/peers.md) ---- */

int svc_rbd_fsid(struct vss_service *svc, char fsid[37], struct vss_error *err)
{
	struct svc_rbd *r = svc->rbd;

	/* Only a cluster already reached: a set never waits for monitors here. */
	if (!r || !r->c)
		return vss_error_set(err, -ENOTCONN, "no Ceph cluster reached by this vssd");
	return vss_rbd_cluster_fsid(r->c, fsid, err);
}

void svc_rbd_cross(struct vss_service *svc, const char *set_id)
{
	struct svc_rbd *r = svc->rbd;

	if (r)
		snprintf(r->cross, sizeof(r->cross), "%s", set_id ? set_id : "");
}

json_t *svc_rbd_cross_members(struct vss_service *svc)
{
	struct svc_rbd *r = svc->rbd;
	json_t *arr = json_array();

	for (size_t i = 0; r && r->cross[0] && i < r->npend; i++) {
		const struct rbd_member *rm = r->pend[i];

		if (rm && rm->v)
			json_array_append_new(arr, json_pack(
				"{s:s, s:s, s:s}", "pool", vss_rbd_image_pool(rm->img), "image",
				vss_rbd_image_name(rm->img), "image_id", rm->image_id));
	}
	return arr;
}

int svc_rbd_cross_taken(struct vss_service *svc, const struct svc_peer_rbd *taken, size_t n,
			struct vss_error *err)
{
	struct svc_rbd *r = svc->rbd;
	char group[48], gsnap[48], sid[37];

	if (!r || !r->cross[0])
		return n ? vss_error_set(err, -EPROTO, "the coordinator named RBD snapshots in a "
					 "set whose RBD members are this host's own") : 0;
	set_names(r->set_id, group, gsnap, sid);
	for (size_t k = 0; k < n; k++) {
		struct rbd_member *rm = NULL;
		struct vss_rbd_snap *s;
		size_t ns;
		bool found = false;
		int rc;

		for (size_t i = 0; i < r->npend && !rm; i++)
			if (r->pend[i] && r->pend[i]->v &&
			    strcmp(vss_rbd_image_pool(r->pend[i]->img), taken[k].pool) == 0 &&
			    strcmp(vss_rbd_image_name(r->pend[i]->img), taken[k].image) == 0)
				rm = r->pend[i];
		if (!rm)
			return vss_error_set(err, -EPROTO, "the coordinator named RBD image %s/%s, "
					     "which is no member of set %s here", taken[k].pool,
					     taken[k].image, sid);
		/* Only a snapshot of the set's own group snapshot is taken as the
		 * member: never one the coordinator merely named. */
		if ((rc = vss_rbd_snap_list(rm->img, &s, &ns, err)) < 0)
			return rc;
		for (size_t i = 0; i < ns; i++)
			found |= s[i].id == taken[k].snap_id && s[i].group &&
				 strcmp(s[i].group_name, group) == 0 &&
				 strcmp(s[i].group_snap, gsnap) == 0;
		free(s);
		if (!found)
			return vss_error_set(err, -EPROTO, "RBD image %s/%s has no snapshot %" PRIu64
					     " of group snapshot %s@%s", taken[k].pool,
					     taken[k].image, taken[k].snap_id, group, gsnap);
		rm->snap_id = taken[k].snap_id;
	}
	return 0;
}

int svc_rbd_remote_add(struct vss_service *svc, const unsigned char set_id[16], const char *host,
		       const struct svc_peer_rbd *img, struct vss_error *err)
{
	struct svc_rbd *r = svc->rbd;
	char group[48], gsnap[48], sid[37], id[SVC_PEER_RBD_ID_MAX + 1];
	struct vss_rbd_cluster *c;
	struct rbd_member *rm;
	bool created;
	int rc;

	if ((rc = cluster(svc, &c, err)) < 0)
		return rc;
	if (memcmp(r->set_id, set_id, 16) != 0) {
		memcpy(r->set_id, set_id, 16);
		r->npend = 0;
		r->snapped = false;
	}
	if (r->npend == SVC_SET_MAX)
		return vss_error_set(err, -E2BIG, "more than %d RBD images in one set", SVC_SET_MAX);
	if (!(rm = calloc(1, sizeof(*rm))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	snprintf(rm->host, sizeof(rm->host), "%s", host);
	set_names(set_id, group, gsnap, sid);
	if ((rc = vss_rbd_image_open(c, img->pool, img->image, 0, &created, &rm->img, err)) < 0)
		goto fail;
	if ((rc = vss_rbd_image_id(rm->img, id, sizeof(id), err)) < 0)
		goto fail;
	if (strcmp(id, img->image_id) != 0) {
		rc = vss_error_set(err, -ESTALE, "host %s's RBD image %s/%s is not the one it "
				   "prepared (ID %s, here %s)", host, img->pool, img->image,
				   img->image_id, id);
		goto fail;
	}
	if (r->npend == 0) {
		if ((rc = vss_rbd_group_create(rm->img, group, err)) < 0)
			goto fail;
		snprintf(r->home, sizeof(r->home), "%s", img->pool);
	}
	/* An image is in at most one group: one in another fails here, before
	 * anyone freezes. */
	if ((rc = vss_rbd_group_add(r->npend ? r->pend[0]->img : rm->img, group, rm->img,
				    err)) < 0) {
		if (r->npend == 0)
			vss_rbd_group_remove(c, r->home, group);
		goto fail;
	}
	r->pend[r->npend++] = rm;
	for (size_t i = 0; i < CROSS_GROUPS; i++)
		if (strcmp(r->groups[i].set, sid) == 0)
			return 0;
	snprintf(r->groups[r->next_group].set, sizeof(r->groups[0].set), "%s", sid);
	snprintf(r->groups[r->next_group].pool, sizeof(r->groups[0].pool), "%s", r->home);
	r->next_group = (r->next_group + 1) % CROSS_GROUPS;
	return 0;
fail:
	if (rm->img)
		vss_rbd_image_close(rm->img);
	free(rm);
	return rc;
}

static bool any_remote(const struct svc_rbd *r)
{
	for (size_t i = 0; r && i < r->npend; i++)
		if (r->pend[i] && !r->pend[i]->v)
			return true;
	return false;
}

int svc_rbd_remote_commit(struct vss_service *svc, struct vss_error *err)
{
	struct svc_rbd *r = svc->rbd;

	if (!any_remote(r))
		return 0;
	if (take_snap(r, r->set_id) < 0)
		return vss_error_set(err, r->snap_rc, "%s", r->snap_msg);
	return 0;
}

json_t *svc_rbd_remote_taken(struct vss_service *svc, const char *host)
{
	struct svc_rbd *r = svc->rbd;
	json_t *arr = NULL;

	for (size_t i = 0; r && r->snapped && r->snap_rc == 0 && i < r->npend; i++) {
		const struct rbd_member *rm = r->pend[i];

		if (!rm || rm->v || strcmp(rm->host, host) != 0)
			continue;
		if (!arr)
			arr = json_array();
		json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "pool",
						     vss_rbd_image_pool(rm->img), "image",
						     vss_rbd_image_name(rm->img), "snap_id",
						     (json_int_t)rm->snap_id));
	}
	return arr;
}

void svc_rbd_remote_end(struct vss_service *svc, bool failed)
{
	struct svc_rbd *r = svc->rbd;
	char group[48], gsnap[48], sid[37];

	if (!any_remote(r))
		return;
	set_names(r->set_id, group, gsnap, sid);
	if (failed)
		vss_rbd_group_remove(r->c, r->home, group);
	for (size_t i = 0; i < r->npend; i++) {
		struct rbd_member *rm = r->pend[i];

		if (!rm || rm->v)
			continue;
		/* The group keeps its snapshot's record; the image leaves it. */
		if (!failed)
			vss_rbd_group_del(r->c, r->home, group, rm->img);
		vss_rbd_image_close(rm->img);
		free(rm);
		r->pend[i] = NULL;
	}
}

void svc_rbd_set_released(struct vss_service *svc, const char *set_id)
{
	struct svc_rbd *r = svc->rbd;
	char group[48];

	if (!r || !r->c)
		return;
	for (struct svc_shadow *o = svc->shadows; o; o = o->next)
		if (strcmp(o->rec.set_id, set_id) == 0)
			return;
	for (struct svc_remote *o = svc->remotes; o; o = o->next)
		if (strcmp(o->rec.set_id, set_id) == 0)
			return;
	if (set_bookmarked(svc, set_id, ""))
		return;
	snprintf(group, sizeof(group), "%s%s", VSS_RBD_GROUP_PREFIX, set_id);
	for (size_t i = 0; i < CROSS_GROUPS; i++) {
		struct cross_group *g = &r->groups[i];
		int rc;

		if (strcmp(g->set, set_id) != 0)
			continue;
		if ((rc = vss_rbd_group_remove(r->c, g->pool, group)) < 0)
			vss_log("RBD group %s/%s: cannot remove it: %s", g->pool, group,
				strerror(-rc));
		g->set[0] = '\0';
		return;
	}
	/*
	 * Not remembered: made before a restart, or pushed out of the 16 kept.
	 * The set's ID names it, and nothing of the set is left here, so
	 * wherever a group of that name is, it is this set's, and no member
	 * needs it any more.
	 */
	char pool[VSS_RBD_NAME_MAX + 1];
	int rc = vss_rbd_group_remove_anywhere(r->c, group, pool);

	if (rc < 0)
		vss_log("RBD group %s: cannot remove it: %s", group, strerror(-rc));
	else if (pool[0])
		vss_log("RBD group %s/%s of set %s removed after its last member", pool, group,
			set_id);
}
