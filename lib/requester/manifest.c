/*
 * requester/manifest.c - the pieces a backup and a restore share: manifest
 * entries and their JSON lines (doc/backup-format.md, "manifest.jsonl"),
 * reading a manifest after checking its checksum, an index of entries by
 * path (a backup's base), SHA-256 of file bytes, copies that keep holes,
 * base64 and progress.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "requester/repo_i.h"

/* ---- SHA-256 ---- */

struct repo_hash {
	EVP_MD_CTX *ctx;
};

struct repo_hash *repo_hash_new(void)
{
	struct repo_hash *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(h->ctx);
		free(h);
		return NULL;
	}
	return h;
}

void repo_hash_update(struct repo_hash *h, const void *buf, size_t len)
{
	EVP_DigestUpdate(h->ctx, buf, len);
}

void repo_hash_zeros(struct repo_hash *h, uint64_t len)
{
	static const char zeros[65536];

	while (len > 0) {
		size_t k = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);

		EVP_DigestUpdate(h->ctx, zeros, k);
		len -= k;
	}
}

void repo_hash_final(struct repo_hash *h, char out[SHA256_HEX])
{
	unsigned char md[32];
	unsigned int n = 0;

	EVP_DigestFinal_ex(h->ctx, md, &n);
	for (unsigned int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

#define COPY_BUF (1u << 20)

/* Reads [@off, @off + @len) of @in, hashing it and writing it to @out at
 * the same offset (@out < 0: hash only). */
static int copy_range(int in, int out, uint64_t off, uint64_t len, struct repo_hash *h,
		      char *buf)
{
	while (len > 0) {
		size_t want = len < COPY_BUF ? (size_t)len : COPY_BUF;
		ssize_t n = pread(in, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;    /* shorter than it said: it changed under us */
		repo_hash_update(h, buf, (size_t)n);
		for (ssize_t done = 0; out >= 0 && done < n;) {
			ssize_t w = pwrite(out, buf + done, (size_t)(n - done),
					   (off_t)(off + (uint64_t)done));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -errno;
			done += w;
		}
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int repo_extents(int fd, uint64_t size, uint64_t **out, size_t *n)
{
	uint64_t *ext = NULL;
	size_t count = 0, cap = 0;
	off_t pos = 0;

	*out = NULL;
	*n = 0;
	while ((uint64_t)pos < size) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO)     /* a hole to the end */
				break;
			free(ext);
			if (errno == EINVAL)    /* no SEEK_DATA here: all data */
				return 0;
			return -errno;
		}
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0) {
			free(ext);
			return -errno;
		}
		if ((uint64_t)hole > size)
			hole = (off_t)size;
		if (count + 2 > cap) {
			uint64_t *bigger = realloc(ext, (cap = cap ? 2 * cap : 16) * sizeof(*ext));

			if (!bigger) {
				free(ext);
				return -ENOMEM;
			}
			ext = bigger;
		}
		ext[count++] = (uint64_t)data;
		ext[count++] = (uint64_t)(hole - data);
		pos = hole;
	}
	/* One extent over the whole file: no holes, nothing to say. */
	if (count == 2 && ext[0] == 0 && ext[1] == size) {
		free(ext);
		return 0;
	}
	if (count == 0 && size > 0) {   /* all hole */
		*out = NULL;
		*n = 0;
		return 1;
	}
	*out = ext;
	*n = count / 2;
	return count ? 1 : 0;
}

/* Hashes (and copies, if @out >= 0) @size bytes of @in keeping holes. */
static int copy_sparse(int in, int out, uint64_t size, char hex[SHA256_HEX])
{
	struct repo_hash *h = repo_hash_new();
	uint64_t *ext = NULL, pos = 0;
	size_t n = 0;
	char *buf = malloc(COPY_BUF);
	int rc;

	if (!h || !buf) {
		free(buf);
		if (h)
			repo_hash_final(h, hex);
		return -ENOMEM;
	}
	rc = repo_extents(in, size, &ext, &n);
	if (rc < 0)
		goto out;
	if (rc == 0) {
		rc = copy_range(in, out, 0, size, h, buf);
		pos = size;
	} else {
		rc = 0;
		for (size_t i = 0; i < n && rc == 0; i++) {
			repo_hash_zeros(h, ext[2 * i] - pos);
			rc = copy_range(in, out, ext[2 * i], ext[2 * i + 1], h, buf);
			pos = ext[2 * i] + ext[2 * i + 1];
		}
	}
	if (rc == 0 && pos < size)
		repo_hash_zeros(h, size - pos);
	if (rc == 0 && out >= 0 && ftruncate(out, (off_t)size) < 0)
		rc = -errno;
out:
	repo_hash_final(h, hex);
	free(ext);
	free(buf);
	return rc;
}

int repo_copy(int in, int out, uint64_t size, char hex[SHA256_HEX])
{
	return copy_sparse(in, out, size, hex);
}

int repo_copy_ranges(int in, int out, uint64_t size, const struct vss_bcd_range *r,
		     size_t n, json_t **done, uint64_t *bytes)
{
	struct repo_hash *h = repo_hash_new();
	char *buf = malloc(COPY_BUF), hex[SHA256_HEX];
	int rc = 0;

	*done = json_array();
	*bytes = 0;
	if (!h || !buf || !*done) {
		free(buf);
		if (h)
			repo_hash_final(h, hex);
		json_decref(*done);
		*done = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint64_t off = (uint64_t)r[i].offset, len = (uint64_t)r[i].length;

		if (off >= size)
			break;          /* sorted: the rest is past the end too */
		if (len > size - off)
			len = size - off;
		rc = copy_range(in, out, off, len, h, buf);
		json_array_append_new(*done, json_pack("[I, I]", (json_int_t)off, (json_int_t)len));
		*bytes += len;
	}
	if (rc == 0 && ftruncate(out, (off_t)size) < 0)
		rc = -errno;
	repo_hash_final(h, hex);
	free(buf);
	if (rc < 0) {
		json_decref(*done);
		*done = NULL;
	}
	return rc;
}

int repo_hash_fd(int fd, char out[SHA256_HEX])
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	return copy_sparse(fd, -1, (uint64_t)st.st_size, out);
}

/* ---- base64 ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < len ? p[i + 2] : 0);

		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? b64[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

void *b64_decode(const char *s, size_t *len)
{
	size_t n = strlen(s), k = 0;
	unsigned char *out;
	uint32_t v = 0;
	int bits = 0;

	if (n % 4)
		return NULL;
	if (!(out = malloc(n / 4 * 3 + 1)))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *c = strchr(b64, s[i]);

		if (s[i] == '=') {
			if (i < n - 2 || (i == n - 2 && s[n - 1] != '='))
				goto bad;
			continue;
		}
		if (!c || !s[i])
			goto bad;
		v = v << 6 | (uint32_t)(c - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (unsigned char)(v >> bits);
		}
	}
	out[k] = '\0';
	if (len)
		*len = k;
	return out;
bad:
	free(out);
	return NULL;
}

/* ---- entries ---- */

void entry_release(struct entry *e)
{
	if (!e->borrowed) {
		free(e->path);
		free(e->link);
	}
	json_decref(e->xattrs);
	json_decref(e->data);
	json_decref(e->layers);
	memset(e, 0, sizeof(*e));
}

/* @key, or @key64 in base64 when @s is not UTF-8. */
static void set_name(json_t *o, const char *key, const char *s)
{
	json_t *v = json_string(s);

	if (v) {
		json_object_set_new(o, key, v);
	} else {
		char k64[8], *enc = b64_encode(s, strlen(s));

		snprintf(k64, sizeof(k64), "%s64", key);
		json_object_set_new(o, k64, json_string(enc ? enc : ""));
		free(enc);
	}
}

json_t *entry_to_json(const struct entry *e)
{
	json_t *o = json_object();
	char kind[2] = { e->kind, '\0' };

	json_object_set_new(o, "s", json_integer(e->src));
	set_name(o, "p", e->path);
	json_object_set_new(o, "k", json_string(kind));
	if (e->kind == EK_GONE)
		return o;
	if (e->kind == EK_HARD) {
		set_name(o, "h", e->link);
		return o;
	}
	json_object_set_new(o, "mode", json_integer(e->mode));
	json_object_set_new(o, "uid", json_integer(e->uid));
	json_object_set_new(o, "gid", json_integer(e->gid));
	json_object_set_new(o, "mtime", json_integer(e->mtime));
	json_object_set_new(o, "atime", json_integer(e->atime));
	json_object_set_new(o, "ctime", json_integer(e->ctime));
	json_object_set_new(o, "ino", json_integer((json_int_t)e->ino));
	if (e->kind == EK_FILE) {
		json_object_set_new(o, "size", json_integer((json_int_t)e->size));
		json_object_set_new(o, "in", json_string(e->in));
		json_object_set_new(o, "sha256", json_string(e->sha256));
		if (e->data)
			json_object_set(o, "data", e->data);
		if (e->layers)
			json_object_set(o, "layers", e->layers);
	}
	if (e->comp)
		json_object_set_new(o, "c", json_integer(e->comp));
	if (e->kind == EK_CHR || e->kind == EK_BLK)
		json_object_set_new(o, "rdev", json_integer((json_int_t)e->rdev));
	if (e->kind == EK_LINK)
		set_name(o, "l", e->link);
	if (e->xattrs && json_object_size(e->xattrs))
		json_object_set(o, "x", e->xattrs);
	return o;
}

static bool valid_id(const char *s)
{
	return s && strlen(s) < VSS_BACKUP_ID_MAX && strlen(s) > 0 && !strchr(s, '/') &&
	       s[0] != '.';
}

static bool valid_sha(const char *sha)
{
	return sha && strlen(sha) == 64 && strspn(sha, "0123456789abcdef") == 64;
}

/* [[offset, length], ...]: sorted, not overlapping, inside @size. */
static bool valid_extents(json_t *d, uint64_t size)
{
	uint64_t end = 0;
	json_t *ext;
	size_t i;

	if (!json_is_array(d))
		return false;
	json_array_foreach(d, i, ext) {
		json_int_t off = json_integer_value(json_array_get(ext, 0));
		json_int_t len = json_integer_value(json_array_get(ext, 1));

		if (json_array_size(ext) != 2 || off < 0 || len <= 0 || (uint64_t)off < end ||
		    (uint64_t)len > size || (uint64_t)off > size - (uint64_t)len)
			return false;
		end = (uint64_t)(off + len);
	}
	return true;
}

/* A partial file's layers: the first stored whole, every next one ranges;
 * the last one of the entry's own size. */
static bool valid_layers(json_t *layers, uint64_t size)
{
	json_t *l;
	size_t i;

	if (!json_is_array(layers) || json_array_size(layers) < 2 ||
	    json_array_size(layers) > 1000000)
		return false;
	json_array_foreach(layers, i, l) {
		json_t *sz = json_object_get(l, "size"), *d = json_object_get(l, "data");
		json_t *ranges = json_object_get(l, "ranges");

		if (!json_is_object(l) || !valid_id(json_string_value(json_object_get(l, "in"))) ||
		    !valid_sha(json_string_value(json_object_get(l, "sha256"))) ||
		    !json_is_integer(sz) || json_integer_value(sz) < 0 ||
		    (i == 0) != !ranges ||
		    (ranges && !valid_extents(ranges, (uint64_t)json_integer_value(sz))) ||
		    (d && (i > 0 || !valid_extents(d, (uint64_t)json_integer_value(sz)))))
			return false;
	}
	return (uint64_t)json_integer_value(json_object_get(json_array_get(layers, i - 1),
							    "size")) == size;
}

/* A path inside a source: relative, no "." or ".." component, no "//". */
static bool valid_path(const char *p)
{
	if (p[0] == '/')
		return false;
	for (const char *c = p; *c;) {
		const char *end = strchrnul(c, '/');
		size_t n = (size_t)(end - c);

		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		c = *end ? end + 1 : end;
	}
	return true;
}

/* The values of one manifest line, however it was parsed: what entry_fill
 * checks and takes.  Strings and JSON values are borrowed. */
struct num {
	bool is;                        /* an integer */
	json_int_t v;                   /* 0 unless it is */
};

struct fields {
	const char *k, *p, *p64, *h, *h64, *l, *l64, *in, *sha256;
	struct num s, mode, uid, gid, mtime, atime, ctime, ino, size, rdev, c;
	bool has_c;                     /* "c" is there, integer or not */
	json_t *data, *layers, *x;      /* NULL when not there */
};

/* @s (borrowed if @borrow, else a copy), or @s64 decoded (always a copy:
 * only lines read through jansson have those, and never borrow). */
static char *field_name(const char *s, const char *s64, bool borrow)
{
	size_t n;

	if (s)
		return borrow ? (char *)s : strdup(s);
	return s64 ? b64_decode(s64, &n) : NULL;
}

/* @borrow: the strings of @f outlive @e (a line read in place, kept by an
 * index); its path and link point at them instead of copies. */
static int entry_fill(const struct fields *f, struct entry *e, bool borrow)
{
	size_t n;

	memset(e, 0, sizeof(*e));
	e->borrowed = borrow;
	if (!f->k || strlen(f->k) != 1 || !strchr("fdlhcbps-", f->k[0]))
		return -EBADMSG;
	e->kind = f->k[0];
	if (!f->s.is || f->s.v < 1 || f->s.v > 65536)
		return -EBADMSG;
	e->src = (unsigned int)f->s.v;
	if (!(e->path = field_name(f->p, f->p64, borrow)) || !valid_path(e->path))
		goto bad;
	if (e->kind == EK_GONE)
		return 0;
	if (e->kind == EK_HARD) {
		if (!(e->link = field_name(f->h, f->h64, borrow)) || !valid_path(e->link) || !*e->link)
			goto bad;
		return 0;
	}
	e->mode = (uint32_t)f->mode.v & 07777;
	e->uid = (uint32_t)f->uid.v;
	e->gid = (uint32_t)f->gid.v;
	e->mtime = f->mtime.v;
	e->atime = f->atime.v;
	e->ctime = f->ctime.v;
	e->ino = (uint64_t)f->ino.v;
	if (e->kind == EK_FILE) {
		if (!f->size.is || f->size.v < 0 || !valid_id(f->in) || !valid_sha(f->sha256))
			goto bad;
		e->size = (uint64_t)f->size.v;
		n = strlen(f->in);      /* below VSS_BACKUP_ID_MAX: valid_id */
		memcpy(e->in, f->in, n + 1);
		memcpy(e->sha256, f->sha256, SHA256_HEX);
		if (f->data) {
			if (!valid_extents(f->data, e->size))
				goto bad;
			e->data = json_incref(f->data);
		}
		if (f->layers) {
			if (f->data || !valid_layers(f->layers, e->size))
				goto bad;
			e->layers = json_incref(f->layers);
		}
	}
	if (f->has_c) {
		if (!f->c.is || f->c.v < 1 || f->c.v > 1000000)
			goto bad;
		e->comp = (unsigned int)f->c.v;
	}
	if (e->kind == EK_CHR || e->kind == EK_BLK)
		e->rdev = (uint64_t)f->rdev.v;
	if (e->kind == EK_LINK && !(e->link = field_name(f->l, f->l64, borrow)))
		goto bad;
	if (f->x) {
		const char *name;
		json_t *val;

		if (!json_is_object(f->x))
			goto bad;
		json_object_foreach(f->x, name, val)
			if (!json_is_string(val))
				goto bad;
		e->xattrs = json_incref(f->x);
	}
	return 0;
bad:
	entry_release(e);
	return -EBADMSG;
}

static struct num num_of(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);

	return (struct num){ json_is_integer(v), json_integer_value(v) };
}

int entry_from_json(json_t *j, struct entry *e)
{
	struct fields f = {
		.k = json_string_value(json_object_get(j, "k")),
		.p = json_string_value(json_object_get(j, "p")),
		.p64 = json_string_value(json_object_get(j, "p64")),
		.h = json_string_value(json_object_get(j, "h")),
		.h64 = json_string_value(json_object_get(j, "h64")),
		.l = json_string_value(json_object_get(j, "l")),
		.l64 = json_string_value(json_object_get(j, "l64")),
		.in = json_string_value(json_object_get(j, "in")),
		.sha256 = json_string_value(json_object_get(j, "sha256")),
		.s = num_of(j, "s"), .mode = num_of(j, "mode"), .uid = num_of(j, "uid"),
		.gid = num_of(j, "gid"), .mtime = num_of(j, "mtime"),
		.atime = num_of(j, "atime"), .ctime = num_of(j, "ctime"),
		.ino = num_of(j, "ino"), .size = num_of(j, "size"), .rdev = num_of(j, "rdev"),
		.c = num_of(j, "c"), .has_c = json_object_get(j, "c") != NULL,
		.data = json_object_get(j, "data"), .layers = json_object_get(j, "layers"),
		.x = json_object_get(j, "x"),
	};

	memset(e, 0, sizeof(*e));
	if (!json_is_object(j))
		return -EBADMSG;
	return entry_fill(&f, e, false);
}

/* ---- manifest lines without jansson ----
 *
 * Nearly every line a backup writes is one flat object of integers and
 * strings of printable ASCII: those are written and read here directly
 * (a manifest of 100,000 files is read and written in a fraction of the
 * time jansson takes, allocating nothing per value).  Anything else (an
 * escape, a byte outside printable ASCII, an array or object, a key met
 * twice or not known, a number jansson would read otherwise) is left to
 * jansson, so both read every line the same: fuzz_manifest checks it. */

enum fast_key {
	FK_S, FK_P, FK_K, FK_MODE, FK_UID, FK_GID, FK_MTIME, FK_ATIME, FK_CTIME, FK_INO,
	FK_SIZE, FK_IN, FK_SHA, FK_C, FK_RDEV, FK_L, FK_H, FK_COUNT
};

/* Each key with its length: a key of a line is compared only with the
 * names as long as it. */
#define FAST_KEY(name) { name, sizeof(name) - 1 }
static const struct {
	const char *name;
	long len;
} fast_keys[FK_COUNT] = {
	FAST_KEY("s"), FAST_KEY("p"), FAST_KEY("k"), FAST_KEY("mode"), FAST_KEY("uid"),
	FAST_KEY("gid"), FAST_KEY("mtime"), FAST_KEY("atime"), FAST_KEY("ctime"),
	FAST_KEY("ino"), FAST_KEY("size"), FAST_KEY("in"), FAST_KEY("sha256"), FAST_KEY("c"),
	FAST_KEY("rdev"), FAST_KEY("l"), FAST_KEY("h"),
};

static const char *skip_ws(const char *c, const char *end)
{
	while (c < end && (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r'))
		c++;
	return c;
}

/* A string of printable ASCII without escapes at @c (its opening quote):
 * its length, and @c moved past the closing quote; -1 if it is not one. */
static long fast_string(const char **c, const char *end)
{
	const char *from = *c + 1, *q = from;

	while (q < end && *q != '"') {
		if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e || *q == '\\')
			return -1;
		q++;
	}
	if (q >= end)
		return -1;
	*c = q + 1;
	return q - from;
}

/* An integer as jansson reads one (no leading zero, no fraction or
 * exponent, within a json_int_t); -1 if not one. */
static int fast_int(const char **c, const char *end, json_int_t *out)
{
	const char *q = *c;
	bool neg = q < end && *q == '-';
	uint64_t v = 0;
	int digits = 0;

	q += neg;
	if (q < end && *q == '0' && q + 1 < end && q[1] >= '0' && q[1] <= '9')
		return -1;
	/* 19 digits cannot overflow a uint64_t. */
	while (q < end && *q >= '0' && *q <= '9' && digits < 20) {
		v = v * 10 + (uint64_t)(*q++ - '0');
		digits++;
	}
	if (digits == 0 || digits > 19 || v > (uint64_t)INT64_MAX + neg ||
	    (q < end && (*q == '.' || *q == 'e' || *q == 'E' || (*q >= '0' && *q <= '9'))))
		return -1;
	*out = neg ? (json_int_t)(0 - v) : (json_int_t)v;
	*c = q;
	return 0;
}

/* Reads @line (@n bytes) into @e if it is of the common shape: 1; 0 if it
 * is not (jansson reads it then, @line untouched); -EBADMSG if it is, but
 * no entry.  Once the line is known to be of the shape, its strings are
 * cut out in place (their closing quotes become NULs). */
static int fast_line(char *line, size_t n, struct entry *e, bool borrow)
{
	char *c = line, *end = line + n;
	char *str[FK_COUNT] = { 0 };
	size_t len[FK_COUNT] = { 0 };
	struct num num[FK_COUNT] = { 0 };
	unsigned int seen = 0;
	struct fields f = { 0 };

	c = (char *)skip_ws(c, end);
	if (c >= end || *c++ != '{')
		return 0;
	c = (char *)skip_ws(c, end);
	if (c < end && *c == '}')
		return 0;
	for (;;) {
		const char *key, *q = c;
		long klen, vlen;
		int k;

		if (c >= end || *c != '"' || (klen = fast_string(&q, end)) < 0)
			return 0;
		key = q - klen - 1;
		for (k = 0; k < FK_COUNT; k++)
			if (fast_keys[k].len == klen && memcmp(fast_keys[k].name, key, (size_t)klen) == 0)
				break;
		if (k == FK_COUNT || (seen & (1u << k)))
			return 0;
		seen |= 1u << k;
		q = skip_ws(q, end);
		if (q >= end || *q++ != ':')
			return 0;
		q = skip_ws(q, end);
		if (q < end && *q == '"') {
			if ((vlen = fast_string(&q, end)) < 0)
				return 0;
			str[k] = (char *)q - vlen - 1;
			len[k] = (size_t)vlen;
		} else if (fast_int(&q, end, &num[k].v) == 0) {
			num[k].is = true;
		} else {
			return 0;
		}
		c = (char *)skip_ws(q, end);
		if (c < end && *c == ',') {
			c = (char *)skip_ws(c + 1, end);
			continue;
		}
		if (c < end && *c == '}')
			break;
		return 0;
	}
	if (skip_ws(c + 1, end) != end)
		return 0;
	for (int k = 0; k < FK_COUNT; k++)
		if (str[k])
			str[k][len[k]] = '\0';
	f.k = str[FK_K];
	f.p = str[FK_P];
	f.h = str[FK_H];
	f.l = str[FK_L];
	f.in = str[FK_IN];
	f.sha256 = str[FK_SHA];
	f.s = num[FK_S];
	f.mode = num[FK_MODE];
	f.uid = num[FK_UID];
	f.gid = num[FK_GID];
	f.mtime = num[FK_MTIME];
	f.atime = num[FK_ATIME];
	f.ctime = num[FK_CTIME];
	f.ino = num[FK_INO];
	f.size = num[FK_SIZE];
	f.rdev = num[FK_RDEV];
	f.c = num[FK_C];
	f.has_c = seen & (1u << FK_C);
	return entry_fill(&f, e, borrow) < 0 ? -EBADMSG : 1;
}

/* entry_from_line; @borrow: a line of the common shape is read in place
 * (its entry's strings point into @line, which must outlive it). */
static int from_line(char *line, size_t n, struct entry *e, bool borrow)
{
	json_error_t jerr;
	json_t *j;
	int rc = fast_line(line, n, e, borrow);

	if (rc != 0)
		return rc < 0 ? rc : 0;
	if (!(j = json_loadb(line, n, 0, &jerr)))
		return -EBADMSG;
	rc = entry_from_json(j, e);
	json_decref(j);
	return rc;
}

int entry_from_line(char *line, size_t n, struct entry *e)
{
	return from_line(line, n, e, false);
}

/* Whether @s goes into a line as it is: printable ASCII, no escape. */
static bool plain(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e || *s == '"' ||
		    *s == '\\')
			return false;
	return true;
}

static void put(struct repo_line *l, const char *s, size_t n)
{
	if (l->len + n + 1 > l->cap) {
		size_t cap = l->cap ? l->cap : 512;
		char *bigger;

		while (l->len + n + 1 > cap)
			cap *= 2;
		if (!(bigger = realloc(l->buf, cap))) {
			l->oom = true;
			return;
		}
		l->buf = bigger;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	l->buf[l->len] = '\0';
}

static void put_str(struct repo_line *l, const char *key, const char *v)
{
	put(l, ",\"", 2);
	put(l, key, strlen(key));
	put(l, "\":\"", 3);
	put(l, v, strlen(v));
	put(l, "\"", 1);
}

static void put_int(struct repo_line *l, const char *key, long long v)
{
	char buf[24], *d = buf + sizeof(buf);
	unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;

	do
		*--d = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--d = '-';
	put(l, ",\"", 2);
	put(l, key, strlen(key));
	put(l, "\":", 2);
	put(l, d, (size_t)(buf + sizeof(buf) - d));
}

int entry_line(const struct entry *e, struct repo_line *l)
{
	char kind[2] = { e->kind, '\0' };

	l->len = 0;
	l->oom = false;
	if (plain(e->path) && (!e->link || plain(e->link)) && !e->data && !e->layers &&
	    !(e->xattrs && json_object_size(e->xattrs))) {
		char head[32];

		put(l, head, (size_t)snprintf(head, sizeof(head), "{\"s\":%u", e->src));
		put_str(l, "p", e->path);
		put_str(l, "k", kind);
		if (e->kind == EK_HARD) {
			put_str(l, "h", e->link);
		} else if (e->kind != EK_GONE) {
			put_int(l, "mode", e->mode);
			put_int(l, "uid", e->uid);
			put_int(l, "gid", e->gid);
			put_int(l, "mtime", e->mtime);
			put_int(l, "atime", e->atime);
			put_int(l, "ctime", e->ctime);
			put_int(l, "ino", (long long)e->ino);
			if (e->kind == EK_FILE) {
				put_int(l, "size", (long long)e->size);
				put_str(l, "in", e->in);
				put_str(l, "sha256", e->sha256);
			}
			if (e->comp)
				put_int(l, "c", e->comp);
			if (e->kind == EK_CHR || e->kind == EK_BLK)
				put_int(l, "rdev", (long long)e->rdev);
			if (e->kind == EK_LINK)
				put_str(l, "l", e->link);
		}
		put(l, "}\n", 2);
	} else {
		json_t *j = entry_to_json(e);
		char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

		json_decref(j);
		if (!text)
			return -ENOMEM;
		put(l, text, strlen(text));
		put(l, "\n", 1);
		free(text);
	}
	return l->oom ? -ENOMEM : 0;
}

void repo_data_path(const char *in, unsigned int src, const char *path, char *out,
		    size_t len)
{
	snprintf(out, len, "backups/%s/data/%u/%s", in, src, *path ? path : "@source");
}

/* ---- restoring a file's bytes ---- */

/* The file backup @in stores for entry @e, opened, if it is @size bytes. */
static int open_stored(struct vss_repo *r, const char *in, const struct entry *e,
		       uint64_t size, bool *damaged, struct vss_error *err)
{
	char path[PATH_MAX];
	struct stat st;
	int fd;

	repo_data_path(in, e->src, e->path, path, sizeof(path));
	fd = openat(r->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	*damaged = true;
	if (fd < 0)
		return vss_error_set(err, -errno, "backup %s: %s/%s: %s", in, r->dir, path,
				     strerror(errno));
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
		close(fd);
		return vss_error_set(err, -EBADMSG, "backup %s: %s/%s is damaged (its size is "
				     "not the one recorded)", in, r->dir, path);
	}
	*damaged = false;
	return fd;
}

static int not_matching(struct vss_repo *r, const char *in, const struct entry *e,
			const char *why, bool *damaged, struct vss_error *err)
{
	char path[PATH_MAX];

	repo_data_path(in, e->src, e->path, path, sizeof(path));
	*damaged = true;
	return vss_error_set(err, -EBADMSG, "backup %s: %s/%s is damaged (%s); nothing was "
			     "written in its place", in, r->dir, path, why);
}

/* Lays layer @l (ranges) of @e over @out. */
static int lay(struct vss_repo *r, const struct entry *e, json_t *l, int out, bool *damaged,
	       struct vss_error *err)
{
	const char *in = json_string_value(json_object_get(l, "in"));
	uint64_t size = (uint64_t)json_integer_value(json_object_get(l, "size")), bytes;
	json_t *ranges = json_object_get(l, "ranges"), *done = NULL, *x;
	struct vss_bcd_range *v = calloc(json_array_size(ranges) + 1, sizeof(*v));
	char hex[SHA256_HEX];
	size_t i;
	int fd, rc;

	if (!v)
		return -ENOMEM;
	json_array_foreach(ranges, i, x) {
		v[i].offset = json_integer_value(json_array_get(x, 0));
		v[i].length = json_integer_value(json_array_get(x, 1));
	}
	if ((fd = open_stored(r, in, e, size, damaged, err)) < 0) {
		free(v);
		return fd;
	}
	if ((rc = repo_hash_fd(fd, hex)) < 0)
		*damaged = true;
	else if (strcmp(hex, json_string_value(json_object_get(l, "sha256"))) != 0)
		rc = not_matching(r, in, e, "its ranges do not match their checksum", damaged, err);
	else
		rc = repo_copy_ranges(fd, out, size, v, i, &done, &bytes);
	json_decref(done);
	close(fd);
	free(v);
	return rc;
}

int repo_file_restore(struct vss_repo *r, const struct entry *e, int out, bool *damaged,
		      struct vss_error *err)
{
	json_t *first = json_array_get(e->layers, 0), *l;
	const char *in = first ? json_string_value(json_object_get(first, "in")) : e->in;
	const char *sha = first ? json_string_value(json_object_get(first, "sha256")) : e->sha256;
	uint64_t size = first ? (uint64_t)json_integer_value(json_object_get(first, "size"))
			: e->size;
	char hex[SHA256_HEX];
	size_t i;
	int fd, rc;

	if ((fd = open_stored(r, in, e, size, damaged, err)) < 0)
		return fd;
	rc = repo_copy(fd, out, size, hex);
	close(fd);
	if (rc < 0)
		return rc;
	if (strcmp(hex, sha) != 0)
		return not_matching(r, in, e, "its bytes do not match their checksum", damaged, err);
	json_array_foreach(e->layers, i, l)
		if (i > 0 && (rc = lay(r, e, l, out, damaged, err)) < 0)
			return rc;
	if (!e->layers)
		return 0;
	/* The layers laid must give the bytes the backup read. */
	if ((rc = repo_hash_fd(out, hex)) < 0)
		return rc;
	if (strcmp(hex, e->sha256) != 0)
		return not_matching(r, e->in, e, "its layers do not give the bytes backed up: "
				    "the writer named too few ranges, or the repository is "
				    "damaged", damaged, err);
	return 0;
}

/* ---- reading a manifest ---- */

int manifest_each(struct vss_repo *r, const char *id, const char *manifest_sha256,
		  int (*fn)(void *arg, struct entry *e), void *arg, struct vss_error *err)
{
	char path[256], hex[SHA256_HEX];
	char *line = NULL, *buf;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0;
	int fd, rc = 0;
	FILE *f;

	snprintf(path, sizeof(path), "backups/%s/manifest.jsonl", id);
	fd = openat(r->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return vss_error_set(err, -errno, "backup %s: %s: %s", id, path, strerror(errno));
	if ((rc = repo_hash_fd(fd, hex)) < 0) {
		close(fd);
		return vss_error_set(err, rc, "backup %s: reading %s: %s", id, path,
				     strerror(-rc));
	}
	if (strcmp(hex, manifest_sha256) != 0) {
		close(fd);
		return vss_error_set(err, -EBADMSG, "backup %s: %s does not match its checksum "
				     "(damaged)", id, path);
	}
	lseek(fd, 0, SEEK_SET);
	if (!(f = fdopen(fd, "re"))) {
		close(fd);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	if ((buf = malloc(MANIFEST_BUF)))
		setvbuf(f, buf, _IOFBF, MANIFEST_BUF);
	while ((n = getline(&line, &cap, f)) > 0) {
		struct entry e;

		lineno++;
		if ((rc = entry_from_line(line, (size_t)n, &e)) < 0) {
			rc = rc == -ENOMEM ? vss_error_set(err, rc, "out of memory")
			     : vss_error_set(err, -EBADMSG, "backup %s: line %lu of its manifest "
					     "is not an entry", id, lineno);
			break;
		}
		rc = fn(arg, &e);
		entry_release(&e);
		if (rc)
			break;
	}
	free(line);
	fclose(f);
	free(buf);
	return rc;
}

/* ---- an index of entries by (source, path) ----
 *
 * The base of an incremental: its whole manifest (28 MB for 100,000 files)
 * is read into one buffer and its lines parsed in place, the entries kept
 * in one array with their paths pointing into the buffer, so that loading
 * it allocates nothing per line.  Open addressing over indices into that
 * array, with each key's hash kept beside it: a probe compares hashes and
 * touches an entry only when they match. */
struct slot {
	uint64_t hash;
	uint32_t at;                    /* 1 + the entry's index in v; 0: empty */
};

struct entry_index {
	char *text;                     /* the manifest, whole: borrowed entries point into it */
	size_t text_size;               /* of its region; 0: malloc'd (entry_index_parse's) */
	struct entry *v;                /* the entries, in the manifest's order (a region) */
	size_t n, vcap;
	struct slot *slots;             /* a region */
	size_t cap, count;              /* cap: a power of two, at least twice count */
	bool *seen;                     /* per entry of v: entry_index_find_seen's (n) */
	size_t next;                    /* after the entry entry_index_find_seen found last */
};

/* Memory an index fills at once (some 55 MiB for 100,000 files): mapped
 * with its pages populated in one system call, where malloc's would be
 * faulted in one by one (on this project's paravirtualized VMs a fault is
 * a trip through the hypervisor: a fifth of the load's time, measured,
 * before).  Zeroed; NULL if there is no memory. */
static void *region_new(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* @p (@old bytes) as @n bytes, moved if need be; the new pages are not
 * populated (an index rarely grows past its first guess). */
static void *region_grow(void *p, size_t old, size_t n)
{
	void *q = p ? mremap(p, old, n, MREMAP_MAYMOVE) : region_new(n);

	return q == MAP_FAILED ? NULL : q;
}

static void region_free(void *p, size_t n)
{
	if (p)
		munmap(p, n);
}

static uint64_t hash_of(unsigned int src, const char *path)
{
	uint64_t h = 1469598103934665603ull ^ src;

	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	/* FNV-1a's low bits, which pick the slot, barely differ between
	 * paths that differ in their last characters ("d0000/f000001"): mix
	 * (splitmix64's finalizer), or the probes run long. */
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static struct slot *find_slot(const struct entry_index *x, uint64_t h, unsigned int src,
			      const char *path)
{
	size_t i = (size_t)h & (x->cap - 1);

	for (;; i = (i + 1) & (x->cap - 1)) {
		struct slot *s = &x->slots[i];
		const struct entry *e;

		if (!s->at)
			return s;
		e = &x->v[s->at - 1];
		if (s->hash == h && e->src == src && strcmp(e->path, path) == 0)
			return s;
	}
}

/* Room for @want entries: slots at most half full. */
static int index_reserve(struct entry_index *x, size_t want)
{
	struct slot *big;
	size_t cap = x->cap ? x->cap : 1024;

	if (want > UINT32_MAX - 1)
		return -ENOMEM;
	if (want > x->vcap) {
		size_t vcap = x->vcap ? 2 * x->vcap : want;
		struct entry *bigger;

		if (vcap < want)
			vcap = want;
		if (vcap > SIZE_MAX / sizeof(*bigger) ||
		    !(bigger = region_grow(x->v, x->vcap * sizeof(*bigger),
					   vcap * sizeof(*bigger))))
			return -ENOMEM;
		x->v = bigger;
		x->vcap = vcap;
	}
	while (2 * want > cap)
		cap *= 2;
	if (cap == x->cap)
		return 0;
	if (!(big = region_new(cap * sizeof(*big))))
		return -ENOMEM;
	for (size_t i = 0; i < x->cap; i++)
		if (x->slots[i].at) {
			size_t k = (size_t)x->slots[i].hash & (cap - 1);

			while (big[k].at)
				k = (k + 1) & (cap - 1);
			big[k] = x->slots[i];
		}
	region_free(x->slots, x->cap * sizeof(*x->slots));
	x->slots = big;
	x->cap = cap;
	return 0;
}

/* Takes @e's contents (the caller's struct is cleared); an entry met again
 * replaces the first. */
static int index_add(struct entry_index *x, struct entry *e)
{
	uint64_t h = hash_of(e->src, e->path);
	struct slot *s;
	int rc;

	if ((rc = index_reserve(x, x->count + 1)) < 0)
		return rc;
	s = find_slot(x, h, e->src, e->path);
	if (s->at) {
		entry_release(&x->v[s->at - 1]);
		x->v[s->at - 1] = *e;
	} else {
		x->v[x->n] = *e;
		s->at = (uint32_t)++x->n;
		s->hash = h;
		x->count++;
	}
	memset(e, 0, sizeof(*e));
	return 0;
}

/* Reads the manifest of backup @id whole into *@text (malloc'd, *@len
 * bytes), checked against @manifest_sha256. */
static int manifest_read(struct vss_repo *r, const char *id, const char *manifest_sha256,
			 char **text, size_t *len, size_t *size, struct vss_error *err)
{
	char path[256], hex[SHA256_HEX];
	struct repo_hash *h = NULL;
	size_t cap, n = 0;
	struct stat st;
	char *buf;
	int fd, rc = 0;

	*text = NULL;
	*len = 0;
	snprintf(path, sizeof(path), "backups/%s/manifest.jsonl", id);
	fd = openat(r->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return vss_error_set(err, -errno, "backup %s: %s: %s", id, path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	/* Its size, a hint: read to the end, whatever it says. */
	cap = st.st_size > 0 && (uint64_t)st.st_size < SIZE_MAX / 4 ? (size_t)st.st_size + 1
	      : 65536;
	if (!(buf = region_new(cap))) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t k;

		if (n == cap) {
			char *bigger = cap < SIZE_MAX / 4 ? region_grow(buf, cap, 2 * cap) : NULL;

			if (!bigger) {
				rc = -ENOMEM;
				break;
			}
			buf = bigger;
			cap *= 2;
		}
		k = read(fd, buf + n, cap - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			break;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (rc == 0 && !(h = repo_hash_new()))
		rc = -ENOMEM;
	if (rc < 0) {
		region_free(buf, cap);
		goto out;
	}
	repo_hash_update(h, buf, n);
	repo_hash_final(h, hex);
	if (strcmp(hex, manifest_sha256) != 0) {
		region_free(buf, cap);
		close(fd);
		return vss_error_set(err, -EBADMSG, "backup %s: %s does not match its checksum "
				     "(damaged)", id, path);
	}
	*text = buf;
	*len = n;
	*size = cap;
out:
	close(fd);
	if (rc < 0)
		return rc == -ENOMEM ? vss_error_set(err, rc, "out of memory")
		       : vss_error_set(err, rc, "backup %s: reading %s: %s", id, path,
				       strerror(-rc));
	return 0;
}

/* Parses the @len bytes of x->text into @x (which the caller frees). */
static int index_parse(struct entry_index *x, size_t len, unsigned long *bad_line)
{
	char *text = x->text;
	unsigned long lineno = 0;
	size_t lines = 1;
	int rc;

	*bad_line = 0;
	/* Room for every line at once, but never for more than a line of 100
	 * bytes each (the tables of a crafted manifest of newlines stay small
	 * until it fails); grown if need be. */
	for (const char *c = text, *end = text + len;
	     (c = memchr(c, '\n', (size_t)(end - c))) != NULL; c++)
		lines++;
	if ((rc = index_reserve(x, lines < len / 100 + 16 ? lines : len / 100 + 16)) < 0)
		return rc;
	for (char *c = text, *end = text + len; c < end;) {
		char *nl = memchr(c, '\n', (size_t)(end - c));
		size_t n = nl ? (size_t)(nl - c) + 1 : (size_t)(end - c);
		struct entry e;

		lineno++;
		if ((rc = from_line(c, n, &e, true)) < 0) {
			if (rc == -EBADMSG)
				*bad_line = lineno;
			return rc;
		}
		if ((rc = index_add(x, &e)) < 0) {
			entry_release(&e);
			return rc;
		}
		c += n;
	}
	if (!(x->seen = calloc(x->n ? x->n : 1, sizeof(*x->seen))))
		return -ENOMEM;
	return 0;
}

int entry_index_parse(char *text, size_t len, struct entry_index **out,
		      unsigned long *bad_line)
{
	struct entry_index *x = calloc(1, sizeof(*x));
	int rc;

	*out = NULL;
	if (!x) {
		*bad_line = 0;
		free(text);
		return -ENOMEM;
	}
	x->text = text;
	if ((rc = index_parse(x, len, bad_line)) < 0)
		entry_index_free(x);
	else
		*out = x;
	return rc;
}

int manifest_index(struct vss_repo *r, const char *id, const char *manifest_sha256,
		   struct entry_index **out, struct vss_error *err)
{
	struct entry_index *x = calloc(1, sizeof(*x));
	unsigned long bad_line;
	size_t len;
	int rc;

	*out = NULL;
	if (!x)
		return vss_error_set(err, -ENOMEM, "out of memory");
	if ((rc = manifest_read(r, id, manifest_sha256, &x->text, &len, &x->text_size,
				err)) < 0)
		goto fail;
	if ((rc = index_parse(x, len, &bad_line)) == -EBADMSG) {
		rc = vss_error_set(err, rc, "backup %s: line %lu of its manifest is not an "
				   "entry", id, bad_line);
		goto fail;
	}
	if (rc < 0) {
		rc = vss_error_set(err, rc, "out of memory");
		goto fail;
	}
	*out = x;
	return 0;
fail:
	entry_index_free(x);
	return rc;
}

struct entry *entry_index_find(struct entry_index *x, unsigned int src, const char *path)
{
	struct slot *s = find_slot(x, hash_of(src, path), src, path);

	return s->at ? &x->v[s->at - 1] : NULL;
}

/*
 * A walk meets the base's entries mostly in the base's own order (both
 * depth first, names sorted), so the entry after the one found last is
 * tried before the table: v holds each (src, path) once, so either way
 * finds the same entry, and the hash and the probes (cache misses in a
 * table of megabytes) are mostly saved.  x->next is this function's alone:
 * entry_index_find, which other threads call, does not touch it.
 */
struct entry *entry_index_find_seen(struct entry_index *x, unsigned int src, const char *path)
{
	size_t k = x->next;
	struct slot *s;

	if (k >= x->n || x->v[k].src != src || strcmp(x->v[k].path, path) != 0) {
		s = find_slot(x, hash_of(src, path), src, path);
		if (!s->at)
			return NULL;
		k = s->at - 1;
	}
	x->next = k + 1;
	x->seen[k] = true;
	return &x->v[k];
}

void entry_index_unseen(struct entry_index *x, void (*fn)(void *arg, struct entry *e),
			void *arg)
{
	for (size_t i = 0; i < x->cap; i++)
		if (x->slots[i].at && !x->seen[x->slots[i].at - 1])
			fn(arg, &x->v[x->slots[i].at - 1]);
}

void entry_index_free(struct entry_index *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->n; i++)
		entry_release(&x->v[i]);
	region_free(x->v, x->vcap * sizeof(*x->v));
	region_free(x->slots, x->cap * sizeof(*x->slots));
	free(x->seen);
	if (x->text_size)
		region_free(x->text, x->text_size);
	else
		free(x->text);
	free(x);
}

/* ---- progress ---- */

void repo_progress_tick(struct repo_progress *pr, bool force)
{
	struct timespec ts;
	uint64_t now;

	if (!pr->fn)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	if (!force && now - pr->last_ms < 1000)
		return;
	pr->last_ms = now;
	pr->p.done = force;
	pr->fn(pr->arg, &pr->p);
}
