/*
 * requester/image.c - image backups (include/vss/backup.h): a volume's
 * blocks, read from its shadow's device, kept in the repository as plain
 * files a person can use: data/IMAGE, a sparse file of the volume's size
 * holding the extents this backup read, and a manifest listing those
 * extents with their checksums (doc/backup-format.md, "Image backups").
 * A full reads every block; an incremental or differential only what the
 * tracker (vssd's changed-block tracking) says was written since its base.
 * A restore lays the chain, newest first, writing each byte once.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "requester/image_i.h"
#include "requester/repo_i.h"

#define PIECE     (1u << 20)    /* a manifest line holds at most this, aligned to it */
#define PAGE      4096u         /* zeros this long are left as holes in data/IMAGE */
#define NAME_MAX_ 64            /* a volume name */
#define HINT_AHEAD 64           /* changed extents hinted to the device ahead of the read */

struct lines {
	struct image_line *v;
	size_t n, cap;
};

static int lines_add(struct lines *l, const struct image_line *x)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		struct image_line *nv = realloc(l->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = *x;
	return 0;
}

/* ---- plain I/O ---- */

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;        /* shorter than it said */
		done += (size_t)n;
	}
	return 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	static const unsigned char zero[PAGE];

	for (size_t i = 0; i < len; i += PAGE)
		if (memcmp(p + i, zero, len - i < PAGE ? len - i : PAGE))
			return false;
	return true;
}

/* The size of a regular file or block device. */
static int fd_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* Writes the non-zero pages of @len bytes of @buf at @off of @fd: zeros
 * stay holes. */
static int write_sparse(int fd, const unsigned char *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len;) {
		size_t j = i, n = len - i < PAGE ? len - i : PAGE;
		int rc;

		if (all_zero(buf + i, n)) {
			i += n;
			continue;
		}
		while (j < len && !all_zero(buf + j, len - j < PAGE ? len - j : PAGE))
			j += PAGE;
		if (j > len)
			j = len;
		if ((rc = pwrite_all(fd, buf + i, j - i, off + i)) < 0)
			return rc;
		i = j;
	}
	return 0;
}

/* ---- backup.json and manifests ---- */

bool image_is(json_t *info)
{
	return json_is_object(json_object_get(info, "image"));
}

static const char *img_str(json_t *info, const char *key)
{
	return json_string_value(json_object_get(json_object_get(info, "image"), key));
}

static uint64_t img_u64(json_t *info, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(json_object_get(info, "image"), key));
}

static void info_fill(json_t *info, struct vss_image_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->volume, sizeof(out->volume), "%s", img_str(info, "volume") ?: "");
	snprintf(out->shadow, sizeof(out->shadow), "%s", img_str(info, "shadow") ?: "");
	snprintf(out->why_full, sizeof(out->why_full), "%s", img_str(info, "why_full") ?: "");
	out->size = img_u64(info, "size");
	out->bytes_read = img_u64(info, "bytes_read");
	out->extents = img_u64(info, "extents");
}

static bool is_hex64(const char *s)
{
	if (!s || strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int image_line_parse(const char *text, uint64_t size, uint64_t *end, struct image_line *out)
{
	json_t *j = json_loads(text, 0, NULL), *o = json_object_get(j, "o"),
	       *n = json_object_get(j, "n");
	const char *h = json_string_value(json_object_get(j, "sha256"));
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!json_is_integer(o) || !json_is_integer(n) || json_integer_value(o) < 0 ||
	    json_integer_value(n) <= 0) {
		rc = -EBADMSG;
	} else {
		out->off = (uint64_t)json_integer_value(o);
		out->len = (uint64_t)json_integer_value(n);
		out->zero = json_is_true(json_object_get(j, "zero"));
		if (!out->zero && is_hex64(h))
			memcpy(out->sha, h, SHA256_HEX);
		if ((!out->zero && !is_hex64(h)) || out->off < *end || out->len > size ||
		    out->off > size - out->len || (!out->zero && out->len > PIECE))
			rc = -EBADMSG;
		else
			*end = out->off + out->len;
	}
	json_decref(j);
	return rc;
}

/*
 * Reads the manifest of image backup @id, checked against @sha first, into
 * @out: lines sorted, disjoint, inside @size.  Nothing in it is trusted
 * before it passed; -EBADMSG (with why) if it does not.
 */
static int manifest_read(struct vss_repo *r, const char *id, const char *sha, uint64_t size,
			 struct lines *out, struct vss_error *err)
{
	char path[128], hex[SHA256_HEX];
	uint64_t end = 0;
	size_t cap = 0;
	char *text = NULL;
	FILE *f;
	int fd, rc;

	snprintf(path, sizeof(path), "backups/%s/manifest.jsonl", id);
	fd = openat(r->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return vss_error_set(err, -errno, "backup %s: its manifest: %s", id, strerror(errno));
	if ((rc = repo_hash_fd(fd, hex)) < 0 || !sha || strcmp(hex, sha) != 0) {
		close(fd);
		return vss_error_set(err, rc < 0 ? rc : -EBADMSG, "backup %s: its manifest does "
				     "not match its checksum", id);
	}
	if (lseek(fd, 0, SEEK_SET) < 0 || !(f = fdopen(fd, "re"))) {
		close(fd);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	rc = 0;
	while (rc == 0 && getline(&text, &cap, f) > 0) {
		struct image_line x;

		if ((rc = image_line_parse(text, size, &end, &x)) == 0)
			rc = lines_add(out, &x);
	}
	free(text);
	fclose(f);
	if (rc == -ENOMEM)
		return vss_error_set(err, rc, "out of memory");
	if (rc < 0)
		return vss_error_set(err, rc, "backup %s: its manifest is damaged", id);
	return 0;
}

/* ---- making one ---- */

struct imaging {
	struct vss_repo *r;
	const struct vss_image_params *p;
	struct vss_backup_info *out;
	struct vss_image_info *img;
	struct vss_error *err;
	char id[VSS_BACKUP_ID_MAX];
	int dev_fd, tmp_fd, image_fd;
	FILE *manifest;
	unsigned char *buf;
	struct image_line pending;            /* a run of zeros not written yet (len 0: none) */
	struct repo_progress pr;
	uint64_t size;
};

static int emit(struct imaging *w, const struct image_line *x)
{
	json_t *j = x->zero ? json_pack("{s:I, s:I, s:b}", "o", (json_int_t)x->off,
					"n", (json_int_t)x->len, "zero", 1)
			    : json_pack("{s:I, s:I, s:s}", "o", (json_int_t)x->off,
					"n", (json_int_t)x->len, "sha256", x->sha);
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	int rc = 0;

	json_decref(j);
	if (!text || fprintf(w->manifest, "%s\n", text) < 0)
		rc = vss_error_set(w->err, text ? -EIO : -ENOMEM, "cannot write the manifest");
	free(text);
	w->img->extents++;
	return rc;
}

/* Zeros at [off, off+len): joined to the run before them if they follow it. */
static int add_zeros(struct imaging *w, uint64_t off, uint64_t len)
{
	int rc = 0;

	if (w->pending.len && w->pending.off + w->pending.len == off) {
		w->pending.len += len;
		return 0;
	}
	if (w->pending.len)
		rc = emit(w, &w->pending);
	w->pending = (struct image_line){ .off = off, .len = len, .zero = true };
	return rc;
}

/* Reads [off, off+len) of the shadow (at most a piece) and stores it. */
static int store_piece(struct imaging *w, uint64_t off, size_t len)
{
	struct image_line x = { .off = off, .len = len };
	struct repo_hash *h;
	int rc = pread_all(w->dev_fd, w->buf, len, off);

	if (rc < 0)
		return vss_error_set(w->err, rc, "cannot read %s at %llu: %s", w->p->device,
				     (unsigned long long)off, strerror(-rc));
	w->img->bytes_read += len;
	w->pr.p.bytes += len;
	repo_progress_tick(&w->pr, false);
	if (all_zero(w->buf, len))
		return add_zeros(w, off, len);
	if (w->pending.len) {
		if ((rc = emit(w, &w->pending)) < 0)
			return rc;
		w->pending.len = 0;
	}
	if (!(h = repo_hash_new()))
		return vss_error_set(w->err, -ENOMEM, "out of memory");
	repo_hash_update(h, w->buf, len);
	repo_hash_final(h, x.sha);
	if ((rc = write_sparse(w->image_fd, w->buf, len, off)) < 0)
		return vss_error_set(w->err, rc, "cannot write the image: %s", strerror(-rc));
	w->out->files_stored++;
	w->out->bytes_stored += len;
	return emit(w, &x);
}

/* Stores [off, off+len), in pieces aligned to PIECE. */
static int store_range(struct imaging *w, uint64_t off, uint64_t len)
{
	int rc = 0;

	while (rc == 0 && len) {
		uint64_t n = PIECE - off % PIECE;

		if (n > len)
			n = len;
		rc = store_piece(w, off, (size_t)n);
		off += n;
		len -= n;
	}
	return rc;
}

/* The base of a backup of @type of this volume (newest first), into
 * @base, its backup.json into *@binfo; "" if none. */
static int find_base(struct imaging *w, enum vss_backup_type type, char base[VSS_BACKUP_ID_MAX],
		     json_t **binfo)
{
	char **ids;
	size_t n;
	int rc;

	base[0] = '\0';
	*binfo = NULL;
	if (type != VSS_BT_INCREMENTAL && type != VSS_BT_DIFFERENTIAL)
		return 0;
	if ((rc = repo_ids(w->r, &ids, &n, w->err)) < 0)
		return rc;
	for (size_t i = n; i-- > 0 && !base[0];) {
		json_t *j = repo_read_info(w->r, ids[i], NULL);
		const char *t = json_string_value(json_object_get(j, "type"));

		if (j && t && image_is(j) && strcmp(img_str(j, "volume") ?: "", w->p->volume) == 0 &&
		    img_u64(j, "size") == w->size && strcmp(t, "copy") != 0 &&
		    (type == VSS_BT_INCREMENTAL || strcmp(t, "full") == 0) && img_str(j, "shadow")) {
			snprintf(base, VSS_BACKUP_ID_MAX, "%s", ids[i]);
			*binfo = json_incref(j);
		}
		json_decref(j);
	}
	repo_ids_free(ids, n);
	return 0;
}

/* The shadows whose tracking this repository keeps for the volume: its
 * newest image backup's and its newest full's. */
static void tracked(struct imaging *w, char a[40], char b[40])
{
	char **ids;
	size_t n;

	a[0] = b[0] = '\0';
	if (repo_ids(w->r, &ids, &n, NULL) < 0)
		return;
	for (size_t i = n; i-- > 0 && (!a[0] || !b[0]);) {
		json_t *j = repo_read_info(w->r, ids[i], NULL);
		const char *t = json_string_value(json_object_get(j, "type"));

		if (j && t && image_is(j) && strcmp(t, "copy") != 0 && img_str(j, "shadow") &&
		    strcmp(img_str(j, "volume") ?: "", w->p->volume) == 0) {
			if (!a[0])
				snprintf(a, 40, "%s", img_str(j, "shadow"));
			if (!b[0] && strcmp(t, "full") == 0)
				snprintf(b, 40, "%s", img_str(j, "shadow"));
		}
		json_decref(j);
	}
	repo_ids_free(ids, n);
}

static int cmp_ext(const void *a, const void *b)
{
	const struct vss_backup_extent *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Reads what the backup stores: everything, or the changed extents. */
static int read_volume(struct imaging *w, struct vss_backup_extent *ext, size_t n)
{
	uint64_t done = 0;
	int rc = 0;

	if (!ext)
		rc = store_range(w, 0, w->size);
	else if (n > 1)
		qsort(ext, n, sizeof(*ext), cmp_ext);
	for (size_t i = 0, hinted = 0; rc == 0 && ext && i < n; i++) {
		uint64_t off = ext[i].offset, end = off + ext[i].length;

		/* Changed blocks lie anywhere: ask for the next ones ahead, so
		 * that the device reads them while these are stored. */
		for (; hinted < n && hinted < i + HINT_AHEAD; hinted++)
			posix_fadvise(w->dev_fd, (off_t)ext[hinted].offset,
				      (off_t)ext[hinted].length, POSIX_FADV_WILLNEED);

		if (end > w->size || end < off)
			return vss_error_set(w->err, -EINVAL, "the tracker names bytes past the "
					     "volume's end (%llu of %llu)", (unsigned long long)end,
					     (unsigned long long)w->size);
		if (off < done)         /* overlapping: the rest of it */
			off = done;
		if (end > off)
			rc = store_range(w, off, end - off);
		if (end > done)
			done = end;
	}
	if (rc == 0 && w->pending.len) {
		rc = emit(w, &w->pending);
		w->pending.len = 0;
	}
	return rc;
}

static const char *type_name(enum vss_backup_type t)
{
	return t == VSS_BT_INCREMENTAL ? "incremental" : t == VSS_BT_DIFFERENTIAL ? "differential"
	     : t == VSS_BT_COPY ? "copy" : "full";
}

/* backup.json, then what publishes it (repo_publish). */
static int publish(struct imaging *w, enum vss_backup_type type, const char *base,
		   json_t *binfo, struct vss_error *err)
{
	const struct vss_image_params *p = w->p;
	json_t *info, *dep = json_array(), *v;
	struct timespec ts;
	size_t i;
	int rc;

	/* A restore needs the whole chain: the base's layers, then the base. */
	json_array_foreach(json_object_get(binfo, "depends"), i, v)
		json_array_append(dep, v);
	if (*base)
		json_array_append_new(dep, json_string(base));
	clock_gettime(CLOCK_REALTIME, &ts);
	w->out->created_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	info = json_pack("{s:s, s:i, s:s, s:s, s:s?, s:s, s:I, s:I, s:s?, s:[s], s:I, s:I, s:I, "
			 "s:I, s:o, s:{s:s, s:s, s:I, s:I, s:I, s:s?}}",
			 "format", "vss-backup", "version", 1, "id", w->id,
			 "type", type_name(type), "base", *base ? base : NULL,
			 "full", binfo ? json_string_value(json_object_get(binfo, "full")) ?: base
				       : w->id,
			 "created_ns", (json_int_t)w->out->created_ns,
			 "instant_ns", (json_int_t)p->instant_ns, "set", p->set_id,
			 "sources", p->live, "files", (json_int_t)w->img->extents,
			 "files_stored", (json_int_t)w->out->files_stored,
			 "bytes_stored", (json_int_t)w->out->bytes_stored, "deleted", (json_int_t)0,
			 "depends", dep,
			 "image", "volume", p->volume, "shadow", p->shadow,
			 "size", (json_int_t)w->size, "bytes_read", (json_int_t)w->img->bytes_read,
			 "extents", (json_int_t)w->img->extents,
			 "why_full", w->img->why_full[0] ? w->img->why_full : NULL);
	if (!info)
		return vss_error_set(err, -ENOMEM, "out of memory");
	rc = repo_publish(w->r, w->tmp_fd, w->id, info, p->components, p->writer_metadata,
			  p->nwriters, err);
	json_decref(info);
	return rc;
}

static bool volume_name_ok(const char *s)
{
	return s && *s && strlen(s) <= NAME_MAX_ && !strchr(s, '/');
}

int vss_repo_backup_image(struct vss_repo *r, const struct vss_image_params *p,
			  struct vss_backup_info *out, struct vss_image_info *image,
			  struct vss_error *err)
{
	struct vss_image_info own;
	struct imaging w = { .r = r, .p = p, .out = out, .err = err, .dev_fd = -1, .tmp_fd = -1,
			     .image_fd = -1 };
	struct vss_backup_extent *ext = NULL;
	enum vss_backup_type type;
	char base[VSS_BACKUP_ID_MAX] = "", path[80], keep_a[40], keep_b[40];
	json_t *binfo = NULL;
	size_t next = 0;
	bool published = false;
	int rc, fd;

	memset(out, 0, sizeof(*out));
	w.img = image ? image : &own;
	memset(w.img, 0, sizeof(*w.img));
	if (!p || p->size < sizeof(*p))
		return vss_error_set(err, -EINVAL, "struct vss_image_params: set .size");
	type = p->type;
	if (type != VSS_BT_FULL && type != VSS_BT_INCREMENTAL && type != VSS_BT_DIFFERENTIAL &&
	    type != VSS_BT_COPY)
		return vss_error_set(err, -EINVAL, "an image backup is full, incremental, "
				     "differential or copy");
	if (!volume_name_ok(p->volume) || !p->live || !repo_live_path_ok(p->live) || !p->device ||
	    !p->shadow || strlen(p->shadow) >= sizeof(w.img->shadow))
		return vss_error_set(err, -EINVAL, "an image backup needs a volume name, its live "
				     "path (absolute), the device to read and its shadow's ID");
	w.dev_fd = open(p->device, O_RDONLY | O_CLOEXEC);
	if (w.dev_fd < 0)
		return vss_error_set(err, -errno, "%s: %s", p->device, strerror(errno));
	if ((rc = fd_size(w.dev_fd, &w.size)) < 0 || w.size == 0) {
		close(w.dev_fd);
		return vss_error_set(err, rc < 0 ? rc : -EINVAL, "%s: not a volume's device or "
				     "image", p->device);
	}
	if (!(w.buf = malloc(PIECE))) {
		close(w.dev_fd);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	w.pr.fn = p->progress;
	w.pr.arg = p->progress_arg;
	w.pr.p.total_bytes = w.size;
	snprintf(w.img->volume, sizeof(w.img->volume), "%s", p->volume);
	snprintf(w.img->shadow, sizeof(w.img->shadow), "%s", p->shadow);
	w.img->size = w.size;
	if ((rc = repo_lock(r, LOCK_EX, err)) < 0)
		goto out;
	repo_clean_tmp(r);
	tracked(&w, keep_a, keep_b);
	if ((rc = find_base(&w, type, base, &binfo)) < 0)
		goto out;
	if (!base[0] && (type == VSS_BT_INCREMENTAL || type == VSS_BT_DIFFERENTIAL)) {
		snprintf(w.img->why_full, sizeof(w.img->why_full), "no earlier image backup of "
			 "volume %s (%llu bytes) to be %s to", p->volume,
			 (unsigned long long)w.size, type_name(type));
		type = VSS_BT_FULL;
	}
	if (base[0]) {
		struct vss_error e = { 0 };

		rc = p->tracker && p->tracker->changed ?
		     p->tracker->changed(p->tracker->arg, img_str(binfo, "shadow"), &ext, &next, &e)
		     : vss_error_set(&e, -ENOSYS, "nothing tracks the volume's changes");
		if (rc < 0) {
			snprintf(w.img->why_full, sizeof(w.img->why_full), "the changes since "
				 "backup %s are unknown: %.190s", base, e.msg);
			type = VSS_BT_FULL;
			base[0] = '\0';
			json_decref(binfo);
			binfo = NULL;
			free(ext);
			ext = NULL;
		}
	}
	out->type = type;
	snprintf(out->base, sizeof(out->base), "%s", base);
	out->instant_ns = p->instant_ns;
	out->nsources = 1;
	if ((rc = repo_next_id(r, w.id, err)) < 0)
		goto out;
	snprintf(out->id, sizeof(out->id), "%s", w.id);
	snprintf(path, sizeof(path), "tmp/%s", w.id);
	if (mkdirat(r->dir_fd, path, 0755) < 0 ||
	    (w.tmp_fd = openat(r->dir_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    mkdirat(w.tmp_fd, "data", 0755) < 0 ||
	    (w.image_fd = openat(w.tmp_fd, "data/IMAGE", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
				 0644)) < 0 ||
	    ftruncate(w.image_fd, (off_t)w.size) < 0) {
		rc = vss_error_set(err, -errno, "%s/%s: %s", r->dir, path, strerror(errno));
		goto fail;
	}
	fd = openat(w.tmp_fd, "manifest.jsonl", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || !(w.manifest = fdopen(fd, "we"))) {
		rc = vss_error_set(err, -errno, "cannot write the manifest: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	if (base[0] && !ext && !(ext = calloc(1, sizeof(*ext))))        /* nothing changed */
		rc = vss_error_set(err, -ENOMEM, "out of memory");
	if (rc == 0)
		rc = read_volume(&w, base[0] ? ext : NULL, base[0] ? next : 0);
	if (fclose(w.manifest) != 0 && rc == 0)
		rc = vss_error_set(err, -errno, "cannot write the manifest: %s", strerror(errno));
	w.manifest = NULL;
	if (rc == 0 && fsync(w.image_fd) < 0)
		rc = vss_error_set(err, -errno, "cannot write the image: %s", strerror(errno));
	if (rc < 0)
		goto fail;
	/* The next backup starts where this one read, whatever becomes of
	 * the shadow (a copy starts no chain). */
	if (type != VSS_BT_COPY && p->tracker && p->tracker->keep &&
	    (rc = p->tracker->keep(p->tracker->arg, p->shadow, err)) < 0)
		goto fail;
	if ((rc = publish(&w, type, base, binfo, err)) < 0)
		goto fail;
	published = true;
	repo_progress_tick(&w.pr, true);
	goto out;
fail:
	snprintf(path, sizeof(path), "tmp/%s", w.id);
	if (w.id[0])
		repo_rmtree(r->dir_fd, path);
	rc = repo_full_error(r, rc, err);
out:
	if (published && type != VSS_BT_COPY && p->tracker && p->tracker->drop) {
		/* What this repository no longer needs: its newest backup's and
		 * newest full's tracking are what the next ones start from. */
		char now_a[40], now_b[40];

		tracked(&w, now_a, now_b);
		if (keep_a[0] && strcmp(keep_a, now_a) && strcmp(keep_a, now_b))
			p->tracker->drop(p->tracker->arg, keep_a);
		if (keep_b[0] && strcmp(keep_b, keep_a) && strcmp(keep_b, now_a) &&
		    strcmp(keep_b, now_b))
			p->tracker->drop(p->tracker->arg, keep_b);
	} else if (!published && rc < 0 && type != VSS_BT_COPY && p->tracker &&
		   p->tracker->drop && w.id[0]) {
		/* A tracking point kept for a backup that did not happen. */
		if (strcmp(p->shadow, keep_a) && strcmp(p->shadow, keep_b))
			p->tracker->drop(p->tracker->arg, p->shadow);
	}
	if (w.manifest)
		fclose(w.manifest);
	if (w.image_fd >= 0)
		close(w.image_fd);
	if (w.tmp_fd >= 0)
		close(w.tmp_fd);
	close(w.dev_fd);
	json_decref(binfo);
	free(ext);
	free(w.buf);
	repo_unlock(r);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int vss_repo_image_info(struct vss_repo *r, const char *id, struct vss_image_info *out,
			struct vss_error *err)
{
	char full[VSS_BACKUP_ID_MAX];
	json_t *info;
	int rc;

	if ((rc = repo_lock(r, LOCK_SH, err)) < 0)
		return rc;
	if ((rc = repo_resolve(r, id, full, err)) == 0) {
		if (!(info = repo_read_info(r, full, err))) {
			rc = err ? err->code : -EBADMSG;
		} else {
			rc = image_is(info);
			if (rc && out)
				info_fill(info, out);
			json_decref(info);
		}
	}
	repo_unlock(r);
	return rc;
}

/* ---- verify ---- */

/* Reads the data extent @x of @fd (data/IMAGE of a backup) into @buf and
 * checks it: 0, or a reason. */
static const char *check_line(int fd, const struct image_line *x, unsigned char *buf)
{
	struct repo_hash *h;
	char hex[SHA256_HEX];
	int rc = pread_all(fd, buf, (size_t)x->len, x->off);

	if (rc < 0)
		return rc == -ENODATA ? "it is shorter than the volume" : strerror(-rc);
	if (!(h = repo_hash_new()))
		return strerror(ENOMEM);
	repo_hash_update(h, buf, (size_t)x->len);
	repo_hash_final(h, hex);
	return strcmp(hex, x->sha) ? "its bytes do not match their checksum" : NULL;
}

static int open_image(struct vss_repo *r, const char *id)
{
	char path[128];

	snprintf(path, sizeof(path), "backups/%s/data/IMAGE", id);
	return openat(r->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

unsigned long image_verify(struct vss_repo *r, const char *id, json_t *info,
			   void (*bad)(void *arg, const char *path, const char *why), void *arg)
{
	struct lines l = { 0 };
	struct vss_error e = { 0 };
	unsigned char *buf = malloc(PIECE);
	unsigned long nbad = 0;
	char where[128];
	int fd = -1;

	snprintf(where, sizeof(where), "backups/%s/data/IMAGE", id);
	if (!buf) {
		if (bad)
			bad(arg, where, strerror(ENOMEM));
		return 1;
	}
	if (manifest_read(r, id, json_string_value(json_object_get(info, "manifest_sha256")),
			  img_u64(info, "size"), &l, &e) < 0) {
		snprintf(where, sizeof(where), "backups/%s/manifest.jsonl", id);
		if (bad)
			bad(arg, where, e.msg);
		nbad++;
	} else if ((fd = open_image(r, id)) < 0) {
		if (bad)
			bad(arg, where, strerror(errno));
		nbad++;
	}
	for (size_t i = 0; fd >= 0 && i < l.n; i++) {
		const char *why;
		char at[160];

		if (l.v[i].zero || !(why = check_line(fd, &l.v[i], buf)))
			continue;
		snprintf(at, sizeof(at), "%s (bytes %llu to %llu)", where,
			 (unsigned long long)l.v[i].off,
			 (unsigned long long)(l.v[i].off + l.v[i].len));
		if (bad)
			bad(arg, at, why);
		nbad++;
	}
	if (fd >= 0)
		close(fd);
	free(l.v);
	free(buf);
	return nbad;
}

/* ---- restore ---- */

/* Bytes of the volume already laid by a newer layer: disjoint, sorted. */
struct cover {
	uint64_t (*v)[2];
	size_t n, cap;
};

/* Calls @fn for each part of [off, off+len) @c does not cover, then covers it. */
static int cover_take(struct cover *c, uint64_t off, uint64_t len,
		      int (*fn)(void *arg, uint64_t off, uint64_t len), void *arg)
{
	uint64_t end = off + len, at = off;
	size_t lo = 0, hi = c->n, i, j;
	int rc = 0;

	while (lo < hi) {       /* the first interval ending after off */
		size_t mid = (lo + hi) / 2;

		if (c->v[mid][1] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; rc == 0 && i < c->n && c->v[i][0] < end; i++) {
		if (c->v[i][0] > at)
			rc = fn(arg, at, c->v[i][0] - at);
		at = c->v[i][1];
	}
	if (rc == 0 && at < end)
		rc = fn(arg, at, end - at);
	if (rc < 0)
		return rc;
	/* Merge [off, end) with what it overlaps or touches. */
	i = lo > 0 && c->v[lo - 1][1] == off ? lo - 1 : lo;
	for (j = i; j < c->n && c->v[j][0] <= end; j++)
		;
	if (j > i) {
		if (c->v[i][0] < off)
			off = c->v[i][0];
		if (c->v[j - 1][1] > end)
			end = c->v[j - 1][1];
		c->v[i][0] = off;
		c->v[i][1] = end;
		memmove(&c->v[i + 1], &c->v[j], (c->n - j) * sizeof(c->v[0]));
		c->n -= j - i - 1;
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		uint64_t (*nv)[2] = realloc(c->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		c->v = nv;
		c->cap = cap;
	}
	memmove(&c->v[i + 1], &c->v[i], (c->n - i) * sizeof(c->v[0]));
	c->v[i][0] = off;
	c->v[i][1] = end;
	c->n++;
	return 0;
}

struct layer {
	char id[VSS_BACKUP_ID_MAX];
	struct lines l;
	int fd;
};

struct laying {
	int out_fd;
	bool fresh;                     /* a new file: its holes are zeros already */
	bool is_dev;
	const unsigned char *data;      /* the piece being laid */
	uint64_t data_off;
	unsigned char *zeros;
	struct vss_restore_result *res;
	struct repo_progress pr;
};

static int lay_data(void *arg, uint64_t off, uint64_t len)
{
	struct laying *L = arg;
	int rc = pwrite_all(L->out_fd, L->data + (off - L->data_off), (size_t)len, off);

	L->res->bytes += len;
	L->pr.p.bytes += len;
	repo_progress_tick(&L->pr, false);
	return rc;
}

static int lay_zeros(void *arg, uint64_t off, uint64_t len)
{
	struct laying *L = arg;
	int rc = 0;

	if (L->fresh)
		return 0;
	if (L->is_dev) {
		uint64_t range[2] = { off, len };

		if (off % 512 == 0 && len % 512 == 0 && ioctl(L->out_fd, BLKZEROOUT, range) == 0)
			return 0;
	} else if (fallocate(L->out_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			     (off_t)len) == 0) {
		return 0;
	}
	while (rc == 0 && len) {
		size_t n = len < PIECE ? (size_t)len : PIECE;

		rc = pwrite_all(L->out_fd, L->zeros, n, off);
		off += n;
		len -= n;
	}
	return rc;
}

/*
 * The layers of the chain @id ends, oldest first, each an image of the same
 * volume and size with its manifest read and checked.
 */
static int chain_read(struct vss_repo *r, const char *id, json_t *info, struct layer **out,
		      size_t *count, struct vss_error *err)
{
	json_t *dep = json_object_get(info, "depends");
	size_t n = json_array_size(dep) + 1;
	struct layer *L = calloc(n, sizeof(*L));
	uint64_t size = img_u64(info, "size");
	int rc = 0;

	*out = L;
	*count = 0;
	if (!L)
		return vss_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *lid = i + 1 < n ? json_string_value(json_array_get(dep, i)) : id;
		json_t *li;

		L[i].fd = -1;
		(*count)++;
		/* Only IDs that list: nothing else is ever opened. */
		if (!lid || repo_resolve(r, lid, L[i].id, NULL) < 0 || strcmp(L[i].id, lid)) {
			rc = vss_error_set(err, -ENOENT, "backup %s needs backup %s, which is not in "
					   "the repository", id, lid ? lid : "?");
			break;
		}
		if (!(li = repo_read_info(r, L[i].id, err))) {
			rc = err ? err->code : -EBADMSG;
			break;
		}
		if (!image_is(li) || img_u64(li, "size") != size ||
		    strcmp(img_str(li, "volume") ?: "", img_str(info, "volume") ?: "-"))
			rc = vss_error_set(err, -EBADMSG, "backup %s needs backup %s, which is not an "
					   "image of the same volume", id, L[i].id);
		if (rc == 0)
			rc = manifest_read(r, L[i].id,
					   json_string_value(json_object_get(li, "manifest_sha256")),
					   size, &L[i].l, err);
		if (rc == 0 && (L[i].fd = open_image(r, L[i].id)) < 0)
			rc = vss_error_set(err, -errno, "backup %s: data/IMAGE: %s", L[i].id,
					   strerror(errno));
		json_decref(li);
	}
	return rc;
}

/* Opens where the image goes: a new file (beside it, *@tmp names it), or
 * an existing file of the volume's size or device at least that big. */
static int target_open(const char *to, uint64_t size, struct laying *L, char *tmp, size_t tmplen,
		       struct vss_error *err)
{
	struct stat st;
	uint64_t have;
	int fd;

	tmp[0] = '\0';
	if (stat(to, &st) < 0 && errno == ENOENT) {
		snprintf(tmp, tmplen, "%s.vss-restore-XXXXXX", to);
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0)
			return vss_error_set(err, -errno, "%s: %s", to, strerror(errno));
		if (ftruncate(fd, (off_t)size) < 0) {
			int e = errno;

			close(fd);
			unlink(tmp);
			tmp[0] = '\0';
			return vss_error_set(err, -e, "%s: %s", to, strerror(e));
		}
		L->fresh = true;
		return fd;
	}
	fd = open(to, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return vss_error_set(err, -errno, "%s: %s", to, strerror(errno));
	if (fstat(fd, &st) < 0 || fd_size(fd, &have) < 0 ||
	    (S_ISREG(st.st_mode) ? have != size : have < size)) {
		close(fd);
		return vss_error_set(err, -EINVAL, "%s is not a file of %llu bytes nor a device "
				     "that large: an image is restored to one of these, or to a "
				     "file that does not exist yet", to, (unsigned long long)size);
	}
	L->is_dev = S_ISBLK(st.st_mode);
	return fd;
}

int image_restore(struct vss_repo *r, const char *id, const struct vss_restore_params *p,
		  struct vss_restore_result *out, struct vss_error *err)
{
	struct laying L = { .out_fd = -1, .res = out };
	struct cover c = { 0 };
	struct layer *layers = NULL;
	size_t nl = 0;
	unsigned char *buf = malloc(PIECE);
	char tmp[PATH_MAX];
	json_t *info = repo_read_info(r, id, err);
	uint64_t size;
	int rc;

	tmp[0] = '\0';
	L.zeros = calloc(1, PIECE);
	L.pr.fn = p->progress;
	L.pr.arg = p->progress_arg;
	if (!info) {
		rc = err ? err->code : -EBADMSG;
		goto out;
	}
	if (!buf || !L.zeros) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (!p->to || p->npaths) {
		rc = vss_error_set(err, -EINVAL, "backup %s is an image of volume %s: restore it "
				   "whole, to a file or device (--to)", id, img_str(info, "volume") ?: "?");
		goto out;
	}
	size = img_u64(info, "size");
	L.pr.p.total_bytes = size;
	if ((rc = chain_read(r, id, info, &layers, &nl, err)) < 0)
		goto out;
	if ((L.out_fd = target_open(p->to, size, &L, tmp, sizeof(tmp), err)) < 0) {
		rc = L.out_fd;
		goto out;
	}
	/* In place, nothing is written before every extent checked. */
	for (size_t i = 0; !L.fresh && i < nl; i++)
		for (size_t k = 0; k < layers[i].l.n; k++) {
			const char *why;

			if (layers[i].l.v[k].zero || !(why = check_line(layers[i].fd,
								       &layers[i].l.v[k], buf)))
				continue;
			rc = vss_error_set(err, -EBADMSG, "backups/%s/data/IMAGE, bytes %llu to "
					   "%llu: %s; nothing was written", layers[i].id,
					   (unsigned long long)layers[i].l.v[k].off,
					   (unsigned long long)(layers[i].l.v[k].off +
								layers[i].l.v[k].len), why);
			goto out;
		}
	/* Newest first: each byte is written once, from the newest layer that
	 * holds it. */
	for (size_t i = nl; rc == 0 && i-- > 0;) {
		for (size_t k = 0; rc == 0 && k < layers[i].l.n; k++) {
			const struct image_line *x = &layers[i].l.v[k];
			const char *why;

			if (x->zero) {
				rc = cover_take(&c, x->off, x->len, lay_zeros, &L);
				continue;
			}
			if ((why = check_line(layers[i].fd, x, buf))) {
				rc = vss_error_set(err, -EBADMSG, "backups/%s/data/IMAGE, bytes %llu "
						   "to %llu: %s", layers[i].id,
						   (unsigned long long)x->off,
						   (unsigned long long)(x->off + x->len), why);
				break;
			}
			L.data = buf;
			L.data_off = x->off;
			rc = cover_take(&c, x->off, x->len, lay_data, &L);
		}
	}
	if (rc == -ENOMEM)
		rc = vss_error_set(err, rc, "out of memory");
	else if (rc < 0 && (!err || err->code != rc))
		rc = vss_error_set(err, rc, "cannot write %s: %s", p->to, strerror(-rc));
	if (rc == 0 && !(c.n == 1 && c.v[0][0] == 0 && c.v[0][1] == size) && size)
		rc = vss_error_set(err, -EBADMSG, "backup %s: its chain does not hold every byte "
				   "of the volume", id);
	if (rc == 0 && fsync(L.out_fd) < 0)
		rc = vss_error_set(err, -errno, "cannot write %s: %s", p->to, strerror(errno));
	if (rc == 0 && tmp[0] && rename(tmp, p->to) < 0)
		rc = vss_error_set(err, -errno, "cannot put %s in place: %s", p->to,
				   strerror(errno));
	if (rc == 0) {
		tmp[0] = '\0';
		out->files = 1;
		repo_progress_tick(&L.pr, true);
	}
out:
	if (L.out_fd >= 0)
		close(L.out_fd);
	if (tmp[0])
		unlink(tmp);
	for (size_t i = 0; i < nl; i++) {
		if (layers[i].fd >= 0)
			close(layers[i].fd);
		free(layers[i].l.v);
	}
	free(layers);
	free(c.v);
	free(buf);
	free(L.zeros);
	json_decref(info);
	return rc;
}
