/*
 * provider/rbd/rbd.c - Ceph RBD images through librbd's C API (rbd.h).
 * Synchronous calls throughout: the callers are the transport's worker
 * threads (one request each, any number at once, which librbd allows on one
 * handle) and the service under its lock.  A volume's I/O waits as long as
 * the cluster makes it (an OSD down or stopped: librbd waits for it, as the
 * config's rados_osd_op_timeout says), and says so: each read, write and
 * flush is librbd's asynchronous call waited for in slices of
 * RBD_WAIT_SAY_MS, so that a wait that long is logged (at most once a slice
 * per image, naming it), and so is the end of the wait.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "provider/rbd/rbd.h"
#include "service/log.h"

#define RBD_WAIT_SAY_MS 5000   /* an I/O waiting this long for the cluster is logged */

struct vss_rbd_cluster {
	rados_t rados;
};

struct vss_rbd_image {
	struct vss_rbd_cluster *c;
	rados_ioctx_t io;
	rbd_image_t img;
	uint64_t size;
	char pool[VSS_RBD_NAME_MAX + 1];
	char name[VSS_RBD_NAME_MAX + 1];
	atomic_llong said_ms;       /* when a wait was last logged; 0: none since the last end */
};

int vss_rbd_connect(const char *conf, const char *id, unsigned int timeout_s,
		    struct vss_rbd_cluster **out, struct vss_error *err)
{
	struct vss_rbd_cluster *c = calloc(1, sizeof(*c));
	char name[128], t[16];
	int rc;

	*out = NULL;
	if (!c)
		return vss_error_set(err, -ENOMEM, "out of memory");
	snprintf(name, sizeof(name), "client.%s", id ? id : "admin");
	if ((rc = rados_create2(&c->rados, "ceph", name, 0)) < 0) {
		free(c);
		return vss_error_set(err, rc, "cannot make a Ceph client %s: %s", name,
				     strerror(-rc));
	}
	if ((rc = rados_conf_read_file(c->rados, conf)) < 0) {
		vss_error_set(err, rc, "Ceph config %s: %s", conf ? conf : "(default)",
			      strerror(-rc));
		goto fail;
	}
	/* Bounded: a cluster that does not answer is an error to retry later,
	 * not a hang of vssd's start.  Operations on data wait as the cluster
	 * says (rados_osd_op_timeout stays what the config file says). */
	snprintf(t, sizeof(t), "%u", timeout_s);
	rados_conf_set(c->rados, "client_mount_timeout", t);
	rados_conf_set(c->rados, "rados_mon_op_timeout", t);
	/* vssd runs as root: no admin socket of its own in the cluster's
	 * run directory, no log lines of librados on its standard error. */
	rados_conf_set(c->rados, "admin_socket", "");
	rados_conf_set(c->rados, "log_to_stderr", "false");
	rados_conf_set(c->rados, "err_to_stderr", "false");
	if ((rc = rados_connect(c->rados)) < 0) {
		vss_error_set(err, rc, "cannot reach the Ceph cluster of %s as %s: %s",
			      conf ? conf : "the default config", name, strerror(-rc));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	vss_rbd_disconnect(c);
	return rc;
}

void vss_rbd_disconnect(struct vss_rbd_cluster *c)
{
	if (!c)
		return;
	rados_shutdown(c->rados);
	free(c);
}

/* An image whose librbd handle is closed (or was never opened). */
static void image_free(struct vss_rbd_image *img)
{
	rados_ioctx_destroy(img->io);
	free(img);
}

static bool good_name(const char *s, size_t n)
{
	if (n == 0 || n > VSS_RBD_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

int vss_rbd_parse_spec(const char *spec, char pool[VSS_RBD_NAME_MAX + 1],
		       char image[VSS_RBD_NAME_MAX + 1], struct vss_error *err)
{
	const char *slash = strchr(spec, '/');

	if (!slash || !good_name(spec, (size_t)(slash - spec)) ||
	    !good_name(slash + 1, strlen(slash + 1)))
		return vss_error_set(err, -EINVAL, "invalid RBD image \"%s\": say POOL/IMAGE, "
				     "each 1 to %d letters, digits, '.', '_' or '-', not "
				     "starting with '.' or '-'", spec, VSS_RBD_NAME_MAX);
	memcpy(pool, spec, (size_t)(slash - spec));
	pool[slash - spec] = '\0';
	snprintf(image, VSS_RBD_NAME_MAX + 1, "%s", slash + 1);
	return 0;
}

static int image_new(struct vss_rbd_cluster *c, const char *pool, const char *image,
		     struct vss_rbd_image **out, struct vss_error *err)
{
	struct vss_rbd_image *img = calloc(1, sizeof(*img));
	int rc;

	if (!img)
		return vss_error_set(err, -ENOMEM, "out of memory");
	img->c = c;
	snprintf(img->pool, sizeof(img->pool), "%s", pool);
	snprintf(img->name, sizeof(img->name), "%s", image);
	if ((rc = rados_ioctx_create(c->rados, pool, &img->io)) < 0) {
		free(img);
		return vss_error_set(err, rc, "RBD pool %s: %s", pool, strerror(-rc));
	}
	*out = img;
	return 0;
}

int vss_rbd_image_open(struct vss_rbd_cluster *c, const char *pool, const char *image,
		       uint64_t create_size, bool *created, struct vss_rbd_image **out,
		       struct vss_error *err)
{
	struct vss_rbd_image *img;
	int rc, order = 0;

	*out = NULL;
	*created = false;
	if ((rc = image_new(c, pool, image, &img, err)) < 0)
		return rc;
	rc = rbd_open(img->io, image, &img->img, NULL);
	if (rc == -ENOENT && create_size) {
		if ((rc = rbd_create(img->io, image, create_size, &order)) < 0) {
			vss_error_set(err, rc, "cannot create RBD image %s/%s: %s", pool, image,
				      strerror(-rc));
			goto fail;
		}
		*created = true;
		rc = rbd_open(img->io, image, &img->img, NULL);
	}
	if (rc < 0) {
		vss_error_set(err, rc, "RBD image %s/%s: %s%s", pool, image, strerror(-rc),
			      rc == -ENOENT ? " (give --size to create it)" : "");
		goto fail;
	}
	if ((rc = rbd_get_size(img->img, &img->size)) < 0 || img->size == 0) {
		vss_error_set(err, rc < 0 ? rc : -EINVAL, "RBD image %s/%s: %s", pool, image,
			      rc < 0 ? strerror(-rc) : "empty");
		rbd_close(img->img);
		rc = rc < 0 ? rc : -EINVAL;
		goto fail;
	}
	*out = img;
	return 0;
fail:
	image_free(img);
	return rc;
}

int vss_rbd_snap_open(struct vss_rbd_image *src, uint64_t snap_id, struct vss_rbd_image **out,
		      struct vss_error *err)
{
	struct vss_rbd_image *img;
	int rc;

	*out = NULL;
	if ((rc = image_new(src->c, src->pool, src->name, &img, err)) < 0)
		return rc;
	if ((rc = rbd_open_read_only(img->io, src->name, &img->img, NULL)) < 0) {
		vss_error_set(err, rc, "RBD image %s/%s: %s", src->pool, src->name, strerror(-rc));
		goto fail;
	}
	if ((rc = rbd_snap_set_by_id(img->img, snap_id)) < 0 ||
	    (rc = rbd_get_size(img->img, &img->size)) < 0) {
		vss_error_set(err, rc, "RBD image %s/%s, snapshot %" PRIu64 ": %s", src->pool,
			      src->name, snap_id, strerror(-rc));
		rbd_close(img->img);
		goto fail;
	}
	*out = img;
	return 0;
fail:
	image_free(img);
	return rc;
}

void vss_rbd_image_close(struct vss_rbd_image *img)
{
	if (!img)
		return;
	rbd_close(img->img);
	image_free(img);
}

uint64_t vss_rbd_image_size(const struct vss_rbd_image *img)
{
	return img->size;
}

const char *vss_rbd_image_pool(const struct vss_rbd_image *img)
{
	return img->pool;
}

const char *vss_rbd_image_name(const struct vss_rbd_image *img)
{
	return img->name;
}

/* ---- I/O: librbd's asynchronous calls, waited for in slices ---- */

enum io_op { IO_READ, IO_WRITE, IO_FLUSH };

static const char *const io_names[] = { "a read", "a write", "a flush" };

struct io_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* CLOCK_MONOTONIC */
	bool done;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* librbd's thread: the I/O is over. */
static void io_done(rbd_completion_t c, void *arg)
{
	struct io_wait *w = arg;

	(void)c;
	pthread_mutex_lock(&w->lock);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* @img's I/O @op, waited for as long as it takes; logs a wait of
 * RBD_WAIT_SAY_MS (once a slice per image) and its end.  Its result. */
static ssize_t io(struct vss_rbd_image *img, enum io_op op, void *buf, size_t len, uint64_t off)
{
	struct io_wait w = { .done = false };
	pthread_condattr_t ca;
	rbd_completion_t c;
	int64_t t0 = now_ms();
	bool said = false;
	ssize_t rc;

	pthread_mutex_init(&w.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = rbd_aio_create_completion(&w, io_done, &c)) < 0)
		goto out;
	rc = op == IO_READ ? rbd_aio_read(img->img, off, len, buf, c)
	     : op == IO_WRITE ? rbd_aio_write(img->img, off, len, buf, c)
	     : rbd_aio_flush(img->img, c);
	if (rc < 0) {
		rbd_aio_release(c);
		goto out;
	}
	pthread_mutex_lock(&w.lock);
	while (!w.done) {
		int64_t due = now_ms() + RBD_WAIT_SAY_MS, last;
		struct timespec ts = { .tv_sec = due / 1000, .tv_nsec = (due % 1000) * 1000000 };

		if (pthread_cond_timedwait(&w.cond, &w.lock, &ts) != ETIMEDOUT || w.done)
			continue;
		last = atomic_load(&img->said_ms);
		if (now_ms() - last >= RBD_WAIT_SAY_MS &&
		    atomic_compare_exchange_strong(&img->said_ms, &last, now_ms())) {
			vss_log("RBD image %s/%s: %s at %" PRIu64 " has waited %lld s for the "
				"cluster (an OSD down or stopped?); it waits until the cluster "
				"answers", img->pool, img->name, io_names[op], off,
				(long long)((now_ms() - t0) / 1000));
		}
		said = true;
	}
	pthread_mutex_unlock(&w.lock);
	rc = rbd_aio_get_return_value(c);
	rbd_aio_release(c);
	if (op == IO_WRITE && rc >= 0)
		rc = (ssize_t)len;      /* librbd's completion of a write says 0 */
	if (said && atomic_exchange(&img->said_ms, 0) != 0)
		vss_log("RBD image %s/%s: the cluster answers again: %s waited %lld s (%s)",
			img->pool, img->name, io_names[op], (long long)((now_ms() - t0) / 1000),
			rc < 0 ? strerror((int)-rc) : "done");
out:
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return rc;
}

ssize_t vss_rbd_read(struct vss_rbd_image *img, void *buf, size_t len, uint64_t off)
{
	if (off >= img->size)
		return 0;
	if (len > img->size - off)
		len = (size_t)(img->size - off);
	return io(img, IO_READ, buf, len, off);
}

ssize_t vss_rbd_write(struct vss_rbd_image *img, const void *buf, size_t len, uint64_t off)
{
	if (off >= img->size || len > img->size - off)
		return -ENOSPC;
	return io(img, IO_WRITE, (void *)buf, len, off);
}

int vss_rbd_flush(struct vss_rbd_image *img)
{
	return (int)io(img, IO_FLUSH, NULL, 0, 0);
}

struct vss_rbd_cluster *vss_rbd_image_cluster(const struct vss_rbd_image *img)
{
	return img->c;
}

int vss_rbd_cluster_fsid(struct vss_rbd_cluster *c, char fsid[37], struct vss_error *err)
{
	int rc = rados_cluster_fsid(c->rados, fsid, 37);

	if (rc < 0)
		return vss_error_set(err, rc, "cannot read the Ceph cluster's fsid: %s",
				     strerror(-rc));
	fsid[36] = 0;
	return 0;
}

int vss_rbd_image_id(struct vss_rbd_image *img, char *out, size_t len, struct vss_error *err)
{
	int rc = rbd_get_id(img->img, out, len);

	if (rc < 0)
		return vss_error_set(err, rc, "RBD image %s/%s: cannot read its ID: %s", img->pool,
				     img->name, strerror(-rc));
	return 0;
}

int vss_rbd_group_create(struct vss_rbd_image *home, const char *group, struct vss_error *err)
{
	int rc = rbd_group_create(home->io, group);

	if (rc < 0)
		return vss_error_set(err, rc, "cannot create RBD group %s/%s: %s", home->pool,
				     group, strerror(-rc));
	return 0;
}

int vss_rbd_group_add(struct vss_rbd_image *home, const char *group, struct vss_rbd_image *img,
		      struct vss_error *err)
{
	int rc = rbd_group_image_add(home->io, group, img->io, img->name);

	if (rc < 0)
		return vss_error_set(err, rc, "cannot add RBD image %s/%s to group %s/%s: %s%s",
				     img->pool, img->name, home->pool, group, strerror(-rc),
				     rc == -EEXIST ? " (it is in another group)" : "");
	return 0;
}

void vss_rbd_group_del(struct vss_rbd_cluster *c, const char *pool, const char *group,
		       struct vss_rbd_image *img)
{
	rados_ioctx_t io;

	if (rados_ioctx_create(c->rados, pool, &io) < 0)
		return;
	rbd_group_image_remove(io, group, img->io, img->name);
	rados_ioctx_destroy(io);
}

int vss_rbd_group_remove(struct vss_rbd_cluster *c, const char *pool, const char *group)
{
	rados_ioctx_t io;
	int rc = rados_ioctx_create(c->rados, pool, &io);

	if (rc < 0)
		return rc;
	rc = rbd_group_remove(io, group);
	rados_ioctx_destroy(io);
	return rc == -ENOENT ? 0 : rc;
}

int vss_rbd_group_remove_anywhere(struct vss_rbd_cluster *c, const char *group,
				  char pool[VSS_RBD_NAME_MAX + 1])
{
	char *buf = NULL;
	int len = 4096, rc;

	pool[0] = '\0';
	/* rados_pool_list: NUL-separated names, an empty one last; -ERANGE-free,
	 * it returns the length it needs when @len is short. */
	for (;;) {
		char *nb = realloc(buf, (size_t)len);

		if (!nb) {
			free(buf);
			return -ENOMEM;
		}
		buf = nb;
		rc = rados_pool_list(c->rados, buf, (size_t)len);
		if (rc < 0) {
			free(buf);
			return rc;
		}
		if (rc <= len) {
			len = rc;       /* what it wrote */
			break;
		}
		len = rc;
	}
	rc = 0;
	for (const char *p = buf, *end = buf + len; p < end && *p;) {
		size_t n = strnlen(p, (size_t)(end - p));
		rados_ioctx_t io;
		int r;

		if (n == (size_t)(end - p))
			break;          /* not terminated: not a name */
		if (n > VSS_RBD_NAME_MAX || rados_ioctx_create(c->rados, p, &io) < 0) {
			p += n + 1;
			continue;
		}
		r = rbd_group_remove(io, group);
		rados_ioctx_destroy(io);
		if (r == 0) {
			snprintf(pool, VSS_RBD_NAME_MAX + 1, "%s", p);
			break;
		}
		if (r != -ENOENT && rc == 0)
			rc = r;
		p += n + 1;
	}
	free(buf);
	return rc;
}

/* The ID of @img's snapshot of group snapshot @gsnap of @group. */
static int find_group_snap(struct vss_rbd_image *img, const char *group, const char *gsnap,
			   uint64_t *id, struct vss_error *err)
{
	struct vss_rbd_snap *s;
	size_t n;
	int rc = vss_rbd_snap_list(img, &s, &n, err);

	if (rc < 0)
		return rc;
	rc = vss_error_set(err, -ENOENT, "RBD image %s/%s has no snapshot of group snapshot "
			   "%s@%s", img->pool, img->name, group, gsnap);
	for (size_t i = 0; i < n; i++)
		if (s[i].group && strcmp(s[i].group_name, group) == 0 &&
		    strcmp(s[i].group_snap, gsnap) == 0) {
			*id = s[i].id;
			rc = 0;
		}
	free(s);
	return rc;
}

int vss_rbd_group_snap(struct vss_rbd_image *const *imgs, size_t n, const char *group,
		       const char *snap, uint64_t *snap_ids, struct vss_error *err)
{
	int rc = rbd_group_snap_create(imgs[0]->io, group, snap);

	if (rc < 0)
		return vss_error_set(err, rc, "RBD group snapshot %s/%s@%s: %s", imgs[0]->pool,
				     group, snap, strerror(-rc));
	for (size_t i = 0; i < n; i++)
		if ((rc = find_group_snap(imgs[i], group, snap, &snap_ids[i], err)) < 0) {
			rbd_group_snap_remove(imgs[0]->io, group, snap);
			return rc;
		}
	return 0;
}

int vss_rbd_snap_create(struct vss_rbd_image *img, const char *snap, uint64_t *snap_id,
			struct vss_error *err)
{
	int rc = rbd_snap_create(img->img, snap);

	if (rc == 0)
		rc = rbd_snap_get_id(img->img, snap, snap_id);
	if (rc < 0)
		return vss_error_set(err, rc, "RBD snapshot %s/%s@%s: %s", img->pool, img->name,
				     snap, strerror(-rc));
	return 0;
}

int vss_rbd_snap_room(struct vss_rbd_image *img, struct vss_error *err)
{
	struct vss_rbd_snap *s;
	uint64_t limit = UINT64_MAX;
	size_t n;
	int rc;

	if ((rc = rbd_snap_get_limit(img->img, &limit)) < 0)
		return vss_error_set(err, rc, "snapshot limit of RBD image %s/%s: %s", img->pool,
				     img->name, strerror(-rc));
	if ((rc = vss_rbd_snap_list(img, &s, &n, err)) < 0)
		return rc;
	free(s);
	if ((uint64_t)n >= limit)
		return vss_error_set(err, -EDQUOT, "RBD image %s/%s has %zu snapshots, as many as "
				     "its limit allows (rbd snap limit): delete some first",
				     img->pool, img->name, n);
	return 0;
}

int vss_rbd_snap_remove(struct vss_rbd_image *img, uint64_t snap_id, struct vss_error *err)
{
	int rc = rbd_snap_remove_by_id(img->img, snap_id);

	if (rc < 0 && rc != -ENOENT)
		return vss_error_set(err, rc, "cannot remove snapshot %" PRIu64 " of RBD image "
				     "%s/%s: %s", snap_id, img->pool, img->name, strerror(-rc));
	return rc;
}

int vss_rbd_snap_list(struct vss_rbd_image *img, struct vss_rbd_snap **out, size_t *n,
		      struct vss_error *err)
{
	int max = 16, rc;
	rbd_snap_info_t *info = NULL;
	struct vss_rbd_snap *s;

	*out = NULL;
	*n = 0;
	for (;;) {
		free(info);
		if (!(info = calloc((size_t)max, sizeof(*info))))
			return vss_error_set(err, -ENOMEM, "out of memory");
		rc = rbd_snap_list(img->img, info, &max);
		if (rc != -ERANGE)
			break;
	}
	if (rc < 0) {
		free(info);
		return vss_error_set(err, rc, "snapshots of RBD image %s/%s: %s", img->pool,
				     img->name, strerror(-rc));
	}
	if (!(s = calloc((size_t)rc + 1, sizeof(*s)))) {
		rbd_snap_list_end(info);
		free(info);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	for (int i = 0; i < rc; i++) {
		rbd_snap_namespace_type_t t;
		rbd_snap_group_namespace_t g;

		s[i].id = info[i].id;
		s[i].size = info[i].size;
		snprintf(s[i].name, sizeof(s[i].name), "%s", info[i].name);
		if (rbd_snap_get_namespace_type(img->img, info[i].id, &t) == 0 &&
		    t == RBD_SNAP_NAMESPACE_TYPE_GROUP &&
		    rbd_snap_get_group_namespace(img->img, info[i].id, &g, sizeof(g)) == 0) {
			s[i].group = true;
			snprintf(s[i].group_name, sizeof(s[i].group_name), "%s", g.group_name);
			snprintf(s[i].group_snap, sizeof(s[i].group_snap), "%s",
				 g.group_snap_name);
			rbd_snap_group_namespace_cleanup(&g, sizeof(g));
		}
	}
	*n = (size_t)rc;
	rbd_snap_list_end(info);
	free(info);
	*out = s;
	return 0;
}

int vss_rbd_meta_set(struct vss_rbd_image *img, const char *key, const char *val,
		     struct vss_error *err)
{
	int rc = rbd_metadata_set(img->img, key, val);

	if (rc < 0)
		return vss_error_set(err, rc, "cannot set metadata %s of RBD image %s/%s: %s", key,
				     img->pool, img->name, strerror(-rc));
	return 0;
}

int vss_rbd_meta_get(struct vss_rbd_image *img, const char *key, char *val, size_t len)
{
	size_t n = len;

	return rbd_metadata_get(img->img, key, val, &n);
}

int vss_rbd_meta_remove(struct vss_rbd_image *img, const char *key)
{
	int rc = rbd_metadata_remove(img->img, key);

	return rc == -ENOENT ? 0 : rc;
}

int vss_rbd_meta_each(struct vss_rbd_image *img, const char *prefix,
		      void (*fn)(void *arg, const char *key, const char *val), void *arg,
		      struct vss_error *err)
{
	size_t klen = 4096, vlen = 4096;
	char *keys = NULL, *vals = NULL;
	int rc;

	for (;;) {
		free(keys);
		free(vals);
		keys = malloc(klen);
		vals = malloc(vlen);
		if (!keys || !vals) {
			rc = vss_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		rc = rbd_metadata_list(img->img, "", 0, keys, &klen, vals, &vlen);
		if (rc != -ERANGE)
			break;
	}
	if (rc < 0) {
		vss_error_set(err, rc, "metadata of RBD image %s/%s: %s", img->pool, img->name,
			      strerror(-rc));
		goto out;
	}
	/* Both lists are NUL-separated, in the same order. */
	for (const char *k = keys, *v = vals; k < keys + klen && *k;
	     k += strlen(k) + 1, v += strlen(v) + 1)
		if (strncmp(k, prefix, strlen(prefix)) == 0)
			fn(arg, k, v);
	rc = 0;
out:
	free(keys);
	free(vals);
	return rc;
}

struct diff_cb {
	int (*fn)(void *arg, uint64_t off, uint64_t len, bool exists);
	void *arg;
};

static int diff_one(uint64_t off, size_t len, int exists, void *arg)
{
	struct diff_cb *d = arg;

	return d->fn(d->arg, off, (uint64_t)len, exists != 0);
}

int vss_rbd_diff(struct vss_rbd_image *img, const char *from_snap,
		 int (*fn)(void *arg, uint64_t off, uint64_t len, bool exists), void *arg,
		 struct vss_error *err)
{
	struct diff_cb d = { fn, arg };
	int rc = rbd_diff_iterate2(img->img, from_snap, 0, img->size, 1, 0, diff_one, &d);

	if (rc < 0)
		return vss_error_set(err, rc, "changed extents of RBD image %s/%s: %s", img->pool,
				     img->name, strerror(-rc));
	return 0;
}
