/*
 * requester/backup_tree.c - making one backup (vss_repo_backup): find the
 * base, walk each source, store what changed since the base, write the
 * manifest of the whole tree and the entries the base had that are gone,
 * then publish (doc/backup-format.md, "Making a backup").  With a plan
 * (plan.c) each entry is first put to the writers' rules: left out, stored
 * whole, stored as a partial file's ranges, or kept as the base's
 * (decide()).  With a progress callback a first walk counts what the
 * second will store.
 *
 * The walk never follows a symlink and never leaves a source's filesystem
 * (a directory with another filesystem mounted on it is recorded, its
 * content is not read).  Directories are read through descriptors, one
 * level at a time, with their entries sorted by name, so a manifest is the
 * same for the same tree and any depth of tree works.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "requester/prefetch_i.h"
#include "requester/repo_i.h"
#include "util/struct_in.h"

#define MAX_SOURCES 64

struct hardlink {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct walk {
	struct vss_repo *r;
	const struct vss_backup_params *p;
	char id[VSS_BACKUP_ID_MAX];
	int tmp_fd;                     /* REPO/tmp/ID */
	FILE *manifest;
	char *manifest_buf;             /* its buffer: few large writes */
	struct repo_hash *manifest_hash;        /* of what was written to it */
	struct repo_line line;
	char manifest_sha[SHA256_HEX];
	struct entry_index *base;       /* NULL for a full */
	unsigned int src;               /* the source being walked */
	dev_t src_dev;
	struct hardlink *links;         /* of this source */
	size_t nlinks, links_cap;
	char **depends;                 /* backups this one names in "in" */
	size_t ndepends;
	struct vss_backup_info *out;
	struct repo_progress pr;
	struct vss_error *err;
	/* Writers' components (NULL: none): what the walk asks of each entry. */
	struct rules *rules;
	bool only;                      /* only the components' files */
	bool src_live;                  /* the source being walked is read live */
	bool v2;                        /* the manifest needs format 2 */
	bool log;                       /* a log backup: only log files are taken */
	/* The first pass only counts what the second will store. */
	bool counting;
	/* Reading ahead of the first source, started before the base is
	 * loaded (start_ahead); walk_source takes it. */
	struct prefetch *ahead;
	dev_t ahead_dev;
	/* The source's prefetch, whose listings walk_dir takes: NULL when it
	 * is read live (a listing could be older than what the walk reads). */
	struct prefetch *listed;
	uint64_t count_files, count_bytes;
};

/* A directory of the source being walked, and its place under data/S. */
struct dir {
	struct dir *parent;
	int fd;                         /* the directory in the source */
	const char *name;               /* in its parent */
	const char *rel;                /* its path in the source */
	int data_fd;                    /* its directory under tmp/ID/data/S, -1 until needed */
};

static int64_t ns_of(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static char *join(const char *rel, const char *name)
{
	size_t a = strlen(rel), b = strlen(name);
	char *out;

	if (!a)
		return strdup(name);
	if (!(out = malloc(a + b + 2)))
		return NULL;
	memcpy(out, rel, a);
	out[a] = '/';
	memcpy(out + a + 1, name, b + 1);
	return out;
}

/* The directory under data/S that mirrors @d, made on first need. */
static int data_dir(struct walk *w, struct dir *d)
{
	int parent;

	if (d->data_fd >= 0)
		return d->data_fd;
	if (!d->parent) {
		char name[32];

		snprintf(name, sizeof(name), "data/%u", w->src);
		if (mkdirat(w->tmp_fd, "data", 0755) < 0 && errno != EEXIST)
			return -errno;
		if (mkdirat(w->tmp_fd, name, 0755) < 0 && errno != EEXIST)
			return -errno;
		d->data_fd = openat(w->tmp_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		if ((parent = data_dir(w, d->parent)) < 0)
			return parent;
		if (mkdirat(parent, d->name, 0755) < 0 && errno != EEXIST)
			return -errno;
		d->data_fd = openat(parent, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				    O_CLOEXEC);
	}
	return d->data_fd < 0 ? -errno : d->data_fd;
}

/* Extended attributes of @name in @dir_fd (not followed), base64 values. */
static int read_xattrs(int dir_fd, const char *name, json_t **out)
{
	char path[64 + NAME_MAX], *names = NULL, *val = NULL;
	ssize_t n, vn;
	int rc = 0;

	*out = NULL;
	/* The entry @name of @dir_fd, not followed; "" is @dir_fd itself. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dir_fd, *name ? name : ".");
	for (;;) {
		n = llistxattr(path, NULL, 0);
		if (n <= 0)
			return n < 0 && errno != ENOTSUP && errno != EOPNOTSUPP ? -errno : 0;
		free(names);
		if (!(names = malloc((size_t)n)))
			return -ENOMEM;
		n = llistxattr(path, names, (size_t)n);
		if (n >= 0)
			break;
		if (errno != ERANGE) {
			free(names);
			return -errno;
		}
	}
	*out = json_object();
	for (char *k = names; k < names + n; k += strlen(k) + 1) {
		char *enc;

		vn = lgetxattr(path, k, NULL, 0);
		if (vn < 0) {
			if (errno == ENODATA)
				continue;
			rc = -errno;
			break;
		}
		free(val);
		if (!(val = malloc((size_t)vn + 1))) {
			rc = -ENOMEM;
			break;
		}
		vn = lgetxattr(path, k, val, (size_t)vn);
		if (vn < 0) {
			rc = errno == ERANGE ? -EAGAIN : -errno;
			break;
		}
		if (!(enc = b64_encode(val, (size_t)vn))) {
			rc = -ENOMEM;
			break;
		}
		json_object_set_new(*out, k, json_string(enc));
		free(enc);
	}
	free(names);
	free(val);
	if (rc < 0) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

static void add_depend(struct walk *w, const char *in)
{
	char **bigger;

	if (strcmp(in, w->id) == 0)
		return;
	for (size_t i = 0; i < w->ndepends; i++)
		if (strcmp(w->depends[i], in) == 0)
			return;
	if (!(bigger = realloc(w->depends, (w->ndepends + 1) * sizeof(*bigger))))
		return;
	w->depends = bigger;
	w->depends[w->ndepends] = strdup(in);
	if (w->depends[w->ndepends])
		w->ndepends++;
}

static int emit(struct walk *w, const struct entry *e)
{
	int rc;

	if (w->counting)
		return 0;
	if ((rc = entry_line(e, &w->line)) < 0)
		return rc;
	errno = 0;
	if (fwrite(w->line.buf, 1, w->line.len, w->manifest) != w->line.len)
		return errno ? -errno : -EIO;   /* ENOSPC: the repository is full */
	repo_hash_update(w->manifest_hash, w->line.buf, w->line.len);
	w->out->files += e->kind != EK_GONE;
	return 0;
}

/* Opens the file @name of @d (described by @e: e->path is its path in the
 * source) to read, and its place under data/S to write. */
static int open_store(struct walk *w, struct dir *d, const char *name, const struct entry *e,
		      int *in, int *out)
{
	int ddir = data_dir(w, d), rc;

	if (ddir < 0)
		return ddir;
	*in = openat(d->fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
	if (*in < 0 && errno == EPERM)
		*in = openat(d->fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (*in < 0)
		return -errno;
	*out = openat(ddir, *e->path ? name : "@source",
		      O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*out < 0) {
		rc = -errno;
		close(*in);
		return rc;
	}
	return 0;
}

/* Stores the bytes of the file @name of @d under data/S. */
static int store_file(struct walk *w, struct dir *d, const char *name, struct entry *e)
{
	uint64_t *ext = NULL;
	size_t n = 0;
	int in, out, rc;

	if ((rc = open_store(w, d, name, e, &in, &out)) < 0)
		return rc;
	rc = repo_copy(in, out, e->size, e->sha256);
	if (rc == 0 && repo_extents(out, e->size, &ext, &n) > 0) {
		e->data = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(e->data, json_pack("[I, I]", (json_int_t)ext[2 * i],
								 (json_int_t)ext[2 * i + 1]));
	}
	free(ext);
	close(in);
	if (close(out) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0) {
		snprintf(e->in, sizeof(e->in), "%s", w->id);
		w->out->files_stored++;
		w->out->bytes_stored += e->size;
		w->pr.p.bytes += e->size;
	}
	return rc;
}

static int fail_at(struct walk *w, const char *rel, int rc, const char *what)
{
	const char *live = w->p->sources[w->src - 1].live;

	return vss_error_set(w->err, rc, "%s %s%s%s: %s", what, live, *rel ? "/" : "", rel,
			     strerror(-rc));
}

static int walk_dir(struct walk *w, struct dir *d);

/* ---- what the writers say ---- */

/* The live path of entry @rel of the source being walked (malloc'd). */
static char *live_of(struct walk *w, const char *rel)
{
	const char *live = w->p->sources[w->src - 1].live;
	char *out;

	if (!*rel)
		return strdup(live);
	if (asprintf(&out, "%s%s%s", live, strcmp(live, "/") ? "/" : "", rel) < 0)
		return NULL;
	return out;
}

/* What the writers say about entry @rel, which is not a directory: 1 to
 * leave it out, 0 to take it (@m says how), or an error. */
static int ask_writers(struct walk *w, const char *rel, struct match *m)
{
	char *live;
	int rc = 0;

	memset(m, 0, sizeof(*m));
	if (!w->rules)
		return 0;
	if (!(live = live_of(w, rel)))
		return vss_error_set(w->err, -ENOMEM, "out of memory");
	rules_match(w->rules, live, m);
	if (m->excluded || (w->only && !m->comp && !m->ranges) ||
	    (m->comp && m->sel == VSS_SEL_NONE && !m->ranges))
		rc = 1;
	else if (m->snapshot && w->src_live)
		rc = vss_error_set(w->err, -EINVAL, "writer %s needs %s read from a shadow (its "
				   "file set requires a snapshot for this type of backup), but "
				   "this backup reads %s live", m->writer, live,
				   w->p->sources[w->src - 1].live);
	free(live);
	return rc;
}

/* Whether the ranges of @m cover [@from, @to). */
static bool ranges_cover(const struct match *m, uint64_t from, uint64_t to)
{
	for (size_t i = 0; i < m->nranges && from < to; i++) {
		uint64_t off = (uint64_t)m->ranges[i].offset;

		if (off > from)
			return false;
		if (off + (uint64_t)m->ranges[i].length > from)
			from = off + (uint64_t)m->ranges[i].length;
	}
	return from >= to;
}

static uint64_t ranges_bytes(const struct match *m, uint64_t size)
{
	uint64_t n = 0;

	for (size_t i = 0; i < m->nranges; i++) {
		uint64_t off = (uint64_t)m->ranges[i].offset, len = (uint64_t)m->ranges[i].length;

		if (off < size)
			n += len < size - off ? len : size - off;
	}
	return n;
}

/* How a regular file is backed up. */
enum how {
	KEEP,           /* unchanged: the base's bytes */
	STORE,          /* stored whole */
	RANGES,         /* a partial file: its ranges over the base's bytes */
};

static enum how decide(const struct entry *e, const struct entry *base, const struct match *m)
{
	bool in_base = base && base->kind == EK_FILE;

	/* A partial file is its ranges over the base's bytes, whatever its
	 * file set's mask; with nothing to lay them over, or a file grown
	 * past the base where the ranges do not reach, it is stored whole. */
	if (m->ranges)
		return in_base && (e->size <= base->size ||
				   ranges_cover(m, base->size, e->size)) ? RANGES : STORE;
	if ((m->comp && m->sel == VSS_SEL_ALL) || !in_base)
		return STORE;
	/* The writer's last-modify time says what changed; a size that is not
	 * the base's is a change whatever the time says. */
	if (m->differenced && m->has_time)
		return e->mtime <= m->since_ns && base->size == e->size ? KEEP : STORE;
	return base->size == e->size && base->mtime == e->mtime && base->ctime == e->ctime &&
	       base->ino == e->ino ? KEEP : STORE;
}

/* Stores the ranges of the partial file @name of @d over @base's bytes:
 * the stored file holds them at their offsets (holes elsewhere), and the
 * entry's layers say how a restore lays the chain. */
static int store_ranges(struct walk *w, struct dir *d, const char *name, struct entry *e,
			const struct entry *base, const struct match *m)
{
	char stored[SHA256_HEX];
	json_t *done = NULL, *layers;
	uint64_t bytes = 0;
	int in, out, rc;

	if ((rc = open_store(w, d, name, e, &in, &out)) < 0)
		return rc;
	rc = repo_copy_ranges(in, out, e->size, m->ranges, m->nranges, &done, &bytes);
	if (rc == 0)
		rc = repo_hash_fd(out, stored);
	/* The whole file's checksum: what a restore must give. */
	if (rc == 0)
		rc = repo_hash_fd(in, e->sha256);
	close(in);
	if (close(out) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0) {
		json_decref(done);
		return rc;
	}
	layers = base->layers ? json_deep_copy(base->layers)
		 : json_pack("[{s:s, s:I, s:s, s:O*}]", "in", base->in, "size",
			     (json_int_t)base->size, "sha256", base->sha256, "data", base->data);
	if (!layers || json_array_append_new(layers, json_pack(
		"{s:s, s:I, s:s, s:o}", "in", w->id, "size", (json_int_t)e->size,
		"sha256", stored, "ranges", done)) < 0) {
		json_decref(layers);
		return -ENOMEM;
	}
	e->layers = layers;
	snprintf(e->in, sizeof(e->in), "%s", w->id);
	w->v2 = true;
	w->out->files_stored++;
	w->out->bytes_stored += bytes;
	w->pr.p.bytes += bytes;
	return 0;
}

/* Every backup whose bytes entry @e needs. */
static void add_depends(struct walk *w, const struct entry *e)
{
	json_t *l;
	size_t i;

	add_depend(w, e->in);
	json_array_foreach(e->layers, i, l)
		add_depend(w, json_string_value(json_object_get(l, "in")));
}

/* The base's entry @b, as it is, in this backup's manifest: a log backup
 * keeps everything but the log files as the base had it. */
static int emit_carried(struct walk *w, const struct entry *b)
{
	struct entry c = *b;
	int rc;

	if (w->counting)
		return 0;
	c.comp = 0;     /* numbered in the base's components, not this backup's */
	if (c.kind == EK_FILE)
		add_depends(w, b);
	w->v2 |= c.layers != NULL;
	if ((rc = emit(w, &c)) < 0)
		return vss_error_set(w->err, rc, "cannot write the manifest: %s", strerror(-rc));
	return 0;
}

/*
 * A log backup (doc/backup-format.md, "Log backups"): what becomes of the
 * entry @rel (@st now, @base in the base).  A file of a log file set of a
 * component backed up as a log backup is taken as an incremental takes it
 * (0, @m filled); so is a file of a component made full (its writer has
 * no log backups).  Anything else (a file no component holds, a component's
 * other file sets) is the base's entry, carried as it is (1), or nothing
 * if the base had none.  A directory is the base's (carried, *@emit_it
 * false), else its own only on the way to a file set (the walk goes in
 * either way).  A negative errno on error.
 */
static int log_entry(struct walk *w, const char *rel, const struct stat *st,
		     const struct entry *base, struct match *m, bool *emit_it)
{
	int rc;

	if (S_ISDIR(st->st_mode)) {
		char *live;

		if (base && base->kind == EK_DIR) {
			*emit_it = false;
			return emit_carried(w, base);
		}
		if (!*rel || !w->rules)
			return 0;
		if (!(live = live_of(w, rel)))
			return vss_error_set(w->err, -ENOMEM, "out of memory");
		*emit_it = rules_dir_wanted(w->rules, live);
		free(live);
		return 0;
	}
	if ((rc = ask_writers(w, rel, m)) < 0)
		return rc;
	if (m->excluded)
		return 1;
	if (!m->comp || (m->log && m->sel == VSS_SEL_NONE)) {
		rc = base ? emit_carried(w, base) : 0;
		return rc < 0 ? rc : 1;
	}
	return rc;
}

/* Whether the base's entry @e is a log file of this log backup. */
static bool log_file(struct walk *w, const struct entry *e)
{
	const char *live = w->p->sources[e->src - 1].live;
	struct match m;
	char *path;

	if (!*e->path)
		path = strdup(live);
	else if (asprintf(&path, "%s%s%s", live, strcmp(live, "/") ? "/" : "", e->path) < 0)
		path = NULL;
	if (!path)
		return false;
	rules_match(w->rules, path, &m);
	free(path);
	return !m.excluded && m.comp && (!m.log || m.sel != VSS_SEL_NONE);
}

/* One entry: @name in @d (or the source itself: @name "" and @d its
 * directory, or for a file source the file's own descriptor in d->fd). */
static int visit(struct walk *w, struct dir *d, const char *name, const char *rel,
		 const struct stat *st)
{
	struct entry e = { .src = w->src, .path = (char *)rel };
	/* The counting pass looks without marking: only the real walk says
	 * what is still there. */
	struct entry *base = !w->base ? NULL
			   : w->counting ? entry_index_find(w->base, w->src, rel)
			   : entry_index_find_seen(w->base, w->src, rel);
	struct match m = { 0 };
	bool emit_it = true, asked = false;
	int rc = 0;

	if (w->log) {
		/* A log backup: the base's tree, with only the log files as they
		 * are now (log_entry). */
		if ((rc = log_entry(w, rel, st, base, &m, &emit_it)) != 0)
			return rc < 0 ? rc : 0;
		asked = true;
	}
	if (!S_ISDIR(st->st_mode)) {
		if (!asked && (rc = ask_writers(w, rel, &m)) != 0)
			return rc < 0 ? rc : 0;         /* left out: gone, if the base had it */
	} else if (w->only && *rel && !w->log) {
		char *live = live_of(w, rel);
		bool wanted = live && rules_dir_wanted(w->rules, live);

		free(live);
		if (!wanted)
			return 0;
	}
	e.mode = st->st_mode & 07777;
	e.uid = st->st_uid;
	e.gid = st->st_gid;
	e.mtime = ns_of(&st->st_mtim);
	e.atime = ns_of(&st->st_atim);
	e.ctime = ns_of(&st->st_ctim);
	e.ino = st->st_ino;
	e.comp = m.comp;
	w->v2 |= m.comp != 0;
	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
		e.kind = EK_FILE;
		e.size = (uint64_t)st->st_size;
		if (st->st_nlink > 1) {
			for (size_t i = 0; i < w->nlinks; i++)
				if (w->links[i].dev == st->st_dev && w->links[i].ino == st->st_ino) {
					struct entry h = { .src = w->src, .path = (char *)rel,
							   .kind = EK_HARD,
							   .link = w->links[i].path };
					return emit(w, &h);
				}
			if (w->nlinks == w->links_cap) {
				struct hardlink *bigger = realloc(w->links, (w->links_cap =
					w->links_cap ? 2 * w->links_cap : 64) * sizeof(*bigger));

				if (!bigger)
					return vss_error_set(w->err, -ENOMEM, "out of memory");
				w->links = bigger;
			}
			w->links[w->nlinks].dev = st->st_dev;
			w->links[w->nlinks].ino = st->st_ino;
			if (!(w->links[w->nlinks].path = strdup(rel)))
				return vss_error_set(w->err, -ENOMEM, "out of memory");
			w->nlinks++;
		}
		break;
	case S_IFDIR:
		e.kind = EK_DIR;
		break;
	case S_IFLNK: {
		char target[PATH_MAX + 1];
		ssize_t n = readlinkat(d->fd, name, target, sizeof(target) - 1);

		if (n < 0)
			return fail_at(w, rel, -errno, "cannot read the symlink");
		target[n] = '\0';
		e.kind = EK_LINK;
		if (!(e.link = strdup(target)))
			return vss_error_set(w->err, -ENOMEM, "out of memory");
		break;
	}
	case S_IFCHR:
	case S_IFBLK:
		e.kind = S_ISCHR(st->st_mode) ? EK_CHR : EK_BLK;
		e.rdev = st->st_rdev;
		break;
	case S_IFIFO:
		e.kind = EK_FIFO;
		break;
	default:
		e.kind = EK_SOCK;
		break;
	}
	/* Extended attributes change ctime: an inode whose ctime is the
	 * base's has the base's (two system calls a file saved). */
	if (base && base->kind == e.kind && base->ino == e.ino && base->ctime == e.ctime &&
	    base->mtime == e.mtime)
		e.xattrs = json_incref(base->xattrs);
	else if (e.kind != EK_SOCK && !w->counting &&
		 (rc = read_xattrs(d->fd, name, &e.xattrs)) < 0) {
		rc = fail_at(w, rel, rc, "cannot read the extended attributes of");
		goto out;
	}
	if (e.kind == EK_FILE) {
		enum how how = decide(&e, base, &m);

		if (w->counting) {
			w->count_files++;
			w->count_bytes += how == STORE ? e.size
					  : how == RANGES ? ranges_bytes(&m, e.size) : 0;
			goto out;
		}
		if (how == KEEP) {
			snprintf(e.in, sizeof(e.in), "%s", base->in);
			memcpy(e.sha256, base->sha256, SHA256_HEX);
			e.data = json_incref(base->data);
			e.layers = json_incref(base->layers);
			w->v2 |= e.layers != NULL;
		} else if ((rc = how == RANGES ? store_ranges(w, d, name, &e, base, &m)
					       : store_file(w, d, name, &e)) < 0) {
			rc = fail_at(w, rel, rc, "cannot back up");
			goto out;
		}
		add_depends(w, &e);
		w->pr.p.files++;
		repo_progress_tick(&w->pr, false);
	}
	if (emit_it && (rc = emit(w, &e)) < 0) {
		rc = vss_error_set(w->err, rc, "cannot write the manifest: %s", strerror(-rc));
		goto out;
	}
	if (e.kind == EK_DIR) {
		struct dir sub = { .parent = d, .name = name, .rel = rel, .data_fd = -1 };

		if (st->st_dev != w->src_dev)
			goto out;       /* another filesystem mounted here: not ours */
		sub.fd = *name ? openat(d->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					O_CLOEXEC)
			       : dup(d->fd);
		if (sub.fd < 0) {
			rc = fail_at(w, rel, -errno, "cannot open");
			goto out;
		}
		if (!*name)
			sub = (struct dir){ .parent = NULL, .fd = sub.fd, .name = "", .rel = "",
					    .data_fd = -1 };
		rc = walk_dir(w, &sub);
		close(sub.fd);
		if (sub.data_fd >= 0)
			close(sub.data_fd);
	}
out:
	e.path = NULL;
	if (e.kind == EK_HARD)
		e.link = NULL;
	entry_release(&e);
	return rc;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A full reads every file of directory @d in turn, each a round trip
 * through the shadow's device when it is not cached: the kernel is asked
 * for them all first (up to AHEAD_BYTES), so that it reads them side by
 * side while the walk takes them one by one.  A hint: failures are
 * ignored. */
#define AHEAD_BYTES (64u << 20)

static void ask_ahead(struct dir *d, char **names, size_t n)
{
	uint64_t asked = 0;

	for (size_t i = 0; i < n && asked < AHEAD_BYTES; i++) {
		struct stat st;
		int fd;

		if (fstatat(d->fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || st.st_size == 0)
			continue;
		fd = openat(d->fd, names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME |
			    O_NONBLOCK);
		if (fd < 0)
			continue;
		posix_fadvise(fd, 0, st.st_size, POSIX_FADV_WILLNEED);
		close(fd);
		asked += (uint64_t)st.st_size;
	}
}

/* The names in directory @d, unsorted, into *@out (malloc'd, each too). */
static int list_dir(struct walk *w, struct dir *d, char ***out, size_t *count)
{
	int fd = dup(d->fd), rc = 0;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *dir;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return fail_at(w, d->rel, -errno, "cannot read");
	}
	rewinddir(dir);
	while ((de = readdir(dir))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			char **bigger = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof(*names));

			if (!bigger) {
				rc = -ENOMEM;
				break;
			}
			names = bigger;
		}
		if (!(names[n] = strdup(de->d_name))) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(dir);
	*out = names;
	*count = n;
	return rc < 0 ? vss_error_set(w->err, rc, "out of memory") : 0;
}

static int cmp_dirent(const void *a, const void *b)
{
	return strcmp(((const struct prefetch_dirent *)a)->name,
		      ((const struct prefetch_dirent *)b)->name);
}

static int walk_dir(struct walk *w, struct dir *d)
{
	struct prefetch_dirent *kept;
	char **names = NULL;
	size_t n = 0;
	int rc = 0;

	/* A shadow's directory a prefetch thread has read whole: its names
	 * and lstat, which cannot have changed since, spare the walk listing
	 * it and looking at each entry again. */
	if ((kept = prefetch_take_dir(w->listed, d->rel, &n))) {
		if (n > 1)
			qsort(kept, n, sizeof(*kept), cmp_dirent);
		if (!(names = malloc((n ? n : 1) * sizeof(*names))))
			rc = vss_error_set(w->err, -ENOMEM, "out of memory");
		for (size_t i = 0; names && i < n; i++)
			names[i] = kept[i].name;
	} else {
		rc = list_dir(w, d, &names, &n);
		if (n > 1)
			qsort(names, n, sizeof(*names), cmp_name);
	}
	if (rc == 0 && !w->base && !w->counting)
		ask_ahead(d, names, n);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct stat st;
		char *rel = join(d->rel, names[i]);

		if (!rel) {
			rc = vss_error_set(w->err, -ENOMEM, "out of memory");
			break;
		}
		if (kept) {
			rc = visit(w, d, names[i], rel, &kept[i].st);
		} else if (fstatat(d->fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			/* Gone since it was listed: only when reading live. */
			if (errno != ENOENT)
				rc = fail_at(w, rel, -errno, "cannot look at");
		} else {
			rc = visit(w, d, names[i], rel, &st);
		}
		free(rel);
	}
	if (kept) {
		prefetch_dirents_free(kept, n);
	} else {
		for (size_t i = 0; names && i < n; i++)
			free(names[i]);
	}
	free(names);
	return rc;
}

/* Whether the walk will read the bytes of the file at @rel (prefetch.c
 * asks, from its threads: the base is only looked at).  A full reads
 * every file, far more than is worth asking for ahead. */
static bool will_read(void *arg, const char *rel, const struct stat *st)
{
	const struct walk *w = arg;
	const struct entry *b;

	if (!w->base)
		return false;
	b = entry_index_find(w->base, w->src, rel);
	return !b || b->kind != EK_FILE || b->size != (uint64_t)st->st_size ||
	       b->mtime != ns_of(&st->st_mtim) || b->ctime != ns_of(&st->st_ctim) ||
	       b->ino != st->st_ino;
}

static int walk_source(struct walk *w, unsigned int src, const char *read)
{
	struct dir root = { .name = "", .rel = "", .data_fd = -1 };
	struct stat st;
	int rc;

	w->src = src;
	w->src_live = strcmp(read, w->p->sources[src - 1].live) == 0;
	for (size_t i = 0; i < w->nlinks; i++)
		free(w->links[i].path);
	w->nlinks = 0;
	if (lstat(read, &st) < 0)
		return vss_error_set(w->err, -errno, "cannot back up %s: %s (read at %s)",
				     w->p->sources[src - 1].live, strerror(errno), read);
	w->src_dev = st.st_dev;
	if (S_ISDIR(st.st_mode)) {
		struct prefetch *ahead = NULL;

		root.fd = open(read, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (root.fd < 0)
			return fail_at(w, "", -errno, "cannot open");
		/* On the first of the passes: the second finds it all cached. */
		if (w->ahead && src == 1 && w->ahead_dev == st.st_dev) {
			ahead = w->ahead;
			w->ahead = NULL;
			prefetch_set_changed(ahead, will_read, w);
		} else if (w->counting || !w->pr.fn) {
			prefetch_start(root.fd, st.st_dev, !w->src_live, will_read, w, &ahead);
		}
		w->listed = w->src_live ? NULL : ahead;
		rc = visit(w, &root, "", "", &st);
		w->listed = NULL;
		prefetch_stop(ahead);
	} else {
		/* A file (or a symlink...) as the source: its directory is the
		 * parent, looked at by name. */
		char *copy = strdup(read), *slash;

		if (!copy)
			return vss_error_set(w->err, -ENOMEM, "out of memory");
		slash = strrchr(copy, '/');
		if (slash == copy)
			root.fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		else {
			*slash = '\0';
			root.fd = open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		}
		if (root.fd < 0) {
			free(copy);
			return fail_at(w, "", -errno, "cannot open the directory of");
		}
		rc = visit(w, &root, slash + 1, "", &st);
		free(copy);
	}
	close(root.fd);
	if (root.data_fd >= 0)
		close(root.data_fd);
	return rc;
}

/* Starts reading ahead of the first source, a directory, so that its
 * tree comes into the caches while the base is loaded: which files the
 * walk reads is said once it is (walk_source).  A hint: failures are
 * ignored. */
static void start_ahead(struct walk *w)
{
	struct stat st;
	int fd = open(w->p->sources[0].read, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	/* A source read live keeps no listings: the walk looks for itself. */
	if (fstat(fd, &st) == 0 &&
	    prefetch_start(fd, st.st_dev, strcmp(w->p->sources[0].read, w->p->sources[0].live) != 0,
			   NULL, NULL, &w->ahead) == 0)
		w->ahead_dev = st.st_dev;
	close(fd);
}

/* ---- what is gone ---- */

struct gone {
	struct entry **v;
	size_t n, cap;
};

static void collect_gone(void *arg, struct entry *e)
{
	struct gone *g = arg;

	if (g->n == g->cap) {
		struct entry **bigger = realloc(g->v, (g->cap = g->cap ? 2 * g->cap : 64) *
						sizeof(*bigger));

		if (!bigger)
			return;
		g->v = bigger;
	}
	g->v[g->n++] = e;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;

	if (x->src != y->src)
		return x->src < y->src ? -1 : 1;
	return strcmp(x->path, y->path);
}

static int emit_gone(struct walk *w)
{
	struct gone g = { 0 };
	int rc = 0;

	entry_index_unseen(w->base, collect_gone, &g);
	if (g.n > 1)
		qsort(g.v, g.n, sizeof(*g.v), cmp_entry);
	for (size_t i = 0; i < g.n && rc == 0; i++) {
		struct entry e = { .src = g.v[i]->src, .path = g.v[i]->path, .kind = EK_GONE };

		if (g.v[i]->kind == EK_GONE)
			continue;       /* gone already before the base */
		if (w->log && (g.v[i]->src > w->p->nsources || !log_file(w, g.v[i]))) {
			rc = emit_carried(w, g.v[i]);
			continue;       /* not a log file: as the base had it */
		}
		rc = emit(w, &e);
		w->out->deleted++;
	}
	free(g.v);
	return rc;
}

/* ---- publishing ---- */

static const char *type_name(enum vss_backup_type t)
{
	switch (t) {
	case VSS_BT_INCREMENTAL: return "incremental";
	case VSS_BT_DIFFERENTIAL: return "differential";
	case VSS_BT_COPY: return "copy";
	case VSS_BT_LOG: return "log";
	default: return "full";
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* backup.json, then what publishes it (repo_publish). */
static int publish(struct walk *w, enum vss_backup_type type, const char *base,
		   const char *full, struct vss_error *err)
{
	const struct vss_backup_params *p = w->p;
	json_t *info, *src = json_array(), *dep = json_array();
	int rc;

	for (size_t i = 0; i < p->nsources; i++)
		json_array_append_new(src, json_string(p->sources[i].live));
	for (size_t i = 0; i < w->ndepends; i++)
		json_array_append_new(dep, json_string(w->depends[i]));
	w->out->created_ns = now_ns();
	info = json_pack("{s:s, s:i, s:s, s:s, s:s?, s:s, s:I, s:I, s:s?, s:o, s:I, s:I, s:I, "
			 "s:I, s:o, s:s}",
			 "format", "vss-backup", "version", w->v2 ? 2 : 1, "id", w->id,
			 "type", type_name(type), "base", *base ? base : NULL,
			 "full", *full ? full : w->id,
			 "created_ns", (json_int_t)w->out->created_ns,
			 "instant_ns", (json_int_t)p->instant_ns, "set", p->set_id,
			 "sources", src, "files", (json_int_t)w->out->files,
			 "files_stored", (json_int_t)w->out->files_stored,
			 "bytes_stored", (json_int_t)w->out->bytes_stored,
			 "deleted", (json_int_t)w->out->deleted, "depends", dep,
			 "manifest_sha256", w->manifest_sha);
	if (!info)
		return vss_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; p->live && i < p->nsources; i++)
		if (p->live[i]) {
			json_t *live = json_array();

			for (size_t k = 0; k < p->nsources; k++)
				json_array_append_new(live, p->live[k] ? json_string(p->live[k])
									: json_null());
			json_object_set_new(info, "live", live);
			break;
		}
	if (w->v2)
		json_object_set_new(info, "components", w->rules ? rules_components_json(w->rules)
							    : json_array());
	if (w->v2 && (rc = repo_raise_version(w->r, 2)) < 0) {
		json_decref(info);
		return vss_error_set(err, rc, "cannot raise the repository's format to version 2: "
				     "%s", strerror(-rc));
	}
	rc = repo_publish(w->r, w->tmp_fd, w->id, info, p->components, p->writer_metadata,
			  p->nwriters, err);
	json_decref(info);
	return rc;
}

int repo_params_in(const struct vss_backup_params *p, struct vss_backup_params *out,
		   struct vss_error *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (!p)
		return vss_error_set(err, -EINVAL, "no struct vss_backup_params");
	if ((rc = vss_struct_in(out, sizeof(*out), p, p->size,
				VSS_SIZE_TO(struct vss_backup_params, progress_arg),
				"struct vss_backup_params", err)) < 0)
		return rc;
	if (out->type != VSS_BT_FULL && out->type != VSS_BT_INCREMENTAL &&
	    out->type != VSS_BT_DIFFERENTIAL && out->type != VSS_BT_COPY &&
	    out->type != VSS_BT_LOG)
		return vss_error_set(err, -EINVAL, "a file-level backup is full, incremental, "
				     "differential, log or copy");
	if (out->nsources == 0 || out->nsources > MAX_SOURCES)
		return vss_error_set(err, -EINVAL, "a backup has 1 to %d sources", MAX_SOURCES);
	for (size_t i = 0; i < out->nsources; i++) {
		if (!out->sources[i].live || !repo_live_path_ok(out->sources[i].live) ||
		    !out->sources[i].read)
			return vss_error_set(err, -EINVAL, "source %zu: its live path must be "
					     "absolute, with no \".\" or \"..\"", i + 1);
		for (size_t k = 0; k < i; k++)
			if (strcmp(out->sources[k].live, out->sources[i].live) == 0)
				return vss_error_set(err, -EINVAL, "%s is a source twice",
						     out->sources[i].live);
	}
	if (out->components_only && !out->plan)
		return vss_error_set(err, -EINVAL, "a backup of components only needs their plan "
				     "(vss_repo_plan)");
	return 0;
}

/* The writers' rules for @w's backup (none without a plan); checks that the
 * partial and differenced files are inside the sources. */
static int writers_rules(struct walk *w, struct vss_error *err)
{
	const struct vss_backup_params *p = w->p;
	struct vss_bcd *bcd = NULL;
	json_t *comps;
	int rc;

	if (!p->plan)
		return 0;
	if (p->plan->nsources != p->nsources)
		return vss_error_set(err, -EINVAL, "the plan is for other sources");
	for (size_t i = 0; i < p->nsources; i++)
		if (strcmp(p->plan->sources[i], p->sources[i].live) != 0)
			return vss_error_set(err, -EINVAL, "the plan is for other sources (%s, "
					     "not %s)", p->plan->sources[i], p->sources[i].live);
	if (p->components &&
	    (rc = vss_bcd_parse(p->components, strlen(p->components), 0, &bcd, err)) < 0)
		return rc;
	rc = vss_backup_plan_check(p->plan, bcd, err);
	if (rc == 0)
		rc = rules_new(p->plan, bcd, p->writer_metadata, p->nwriters, &w->rules, err);
	vss_bcd_free(bcd);
	if (rc < 0)
		return rc;
	comps = rules_components_json(w->rules);
	w->v2 = json_array_size(comps) > 0;
	json_decref(comps);
	w->only = p->components_only;
	return 0;
}

/* The first pass: what the backup will store, for the progress's totals. */
static int count(struct walk *w)
{
	int rc = 0;

	w->counting = true;
	for (size_t i = 0; i < w->p->nsources && rc == 0; i++)
		rc = walk_source(w, (unsigned int)i + 1, w->p->sources[i].read);
	w->counting = false;
	w->pr.p.total_files = w->count_files;
	w->pr.p.total_bytes = w->count_bytes;
	return rc;
}

int vss_repo_backup(struct vss_repo *r, const struct vss_backup_params *params,
		    struct vss_backup_info *out, struct vss_error *err)
{
	struct vss_backup_params pp;
	struct walk w = { .r = r, .p = &pp, .tmp_fd = -1, .out = out, .err = err };
	enum vss_backup_type type;
	char base[VSS_BACKUP_ID_MAX], full[VSS_BACKUP_ID_MAX] = "", sha[SHA256_HEX] = "";
	char path[64];
	const char **live = NULL;
	int rc, fd;

	memset(out, 0, sizeof(*out));
	if ((rc = repo_params_in(params, &pp, err)) < 0)
		return rc;
	if (pp.type == VSS_BT_LOG && !pp.plan)
		return vss_error_set(err, -EINVAL, "a log backup takes only the writers' log "
				     "file sets: it needs their plan (vss_repo_plan)");
	type = pp.type;
	if ((rc = writers_rules(&w, err)) < 0)
		return rc;
	if (!(live = calloc(pp.nsources, sizeof(*live)))) {
		rules_free(w.rules);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < pp.nsources; i++)
		live[i] = pp.sources[i].live;
	w.pr.fn = pp.progress;
	w.pr.arg = pp.progress_arg;
	if ((rc = repo_lock(r, LOCK_EX, err)) < 0) {
		rules_free(w.rules);
		free(live);
		return rc;
	}
	repo_clean_tmp(r);
	if (pp.plan) {
		/* The base the writers were told about (their previous stamps). */
		type = pp.plan->type;
		snprintf(base, sizeof(base), "%s", pp.plan->base);
	} else if ((rc = repo_find_base(r, live, pp.nsources, type, base, sha, err)) < 0) {
		goto out;
	}
	if (!base[0] && (type == VSS_BT_INCREMENTAL || type == VSS_BT_DIFFERENTIAL ||
			 type == VSS_BT_LOG))
		type = VSS_BT_FULL;     /* nothing to be relative to */
	w.log = type == VSS_BT_LOG;
	start_ahead(&w);
	if (base[0]) {
		json_t *j = repo_read_info(r, base, err);

		if (!j) {
			if (pp.plan)
				vss_error_set(err, err ? err->code : -ENOENT, "the base of this backup, "
					      "%s, was deleted while it was being made: make it again",
					      base);
			rc = err ? err->code : -EBADMSG;
			goto out;
		}
		snprintf(full, sizeof(full), "%s", json_string_value(json_object_get(j, "full")) ?: "");
		snprintf(sha, sizeof(sha), "%s",
			 json_string_value(json_object_get(j, "manifest_sha256")));
		json_decref(j);
		if ((rc = manifest_index(r, base, sha, &w.base, err)) < 0) {
			char msg[VSS_ERROR_MSG_MAX];

			snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
			rc = vss_error_set(err, rc, "the base of this backup is damaged (%s); "
					   "verify the repository, or make a full backup", msg);
			goto out;
		}
	}
	if (w.pr.fn && (rc = count(&w)) < 0)
		goto out;
	out->type = type;
	snprintf(out->base, sizeof(out->base), "%s", base);
	out->instant_ns = pp.instant_ns;
	out->nsources = pp.nsources;
	if ((rc = repo_next_id(r, w.id, err)) < 0)
		goto out;
	snprintf(out->id, sizeof(out->id), "%s", w.id);
	snprintf(path, sizeof(path), "tmp/%s", w.id);
	if (mkdirat(r->dir_fd, path, 0755) < 0 ||
	    (w.tmp_fd = openat(r->dir_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = vss_error_set(err, -errno, "%s/%s: %s", r->dir, path, strerror(errno));
		goto out;
	}
	fd = openat(w.tmp_fd, "manifest.jsonl", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd >= 0 && !(w.manifest_hash = repo_hash_new())) {
		close(fd);
		fd = -1;
		errno = ENOMEM;
	}
	if (fd < 0 || !(w.manifest = fdopen(fd, "we"))) {
		rc = vss_error_set(err, fd < 0 ? -errno : -ENOMEM, "cannot write the manifest: %s",
				   strerror(fd < 0 ? errno : ENOMEM));
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	if ((w.manifest_buf = malloc(MANIFEST_BUF)))
		setvbuf(w.manifest, w.manifest_buf, _IOFBF, MANIFEST_BUF);
	for (size_t i = 0; i < pp.nsources && rc == 0; i++)
		rc = walk_source(&w, (unsigned int)i + 1, pp.sources[i].read);
	if (rc == 0 && w.base)
		rc = emit_gone(&w);
	if (fclose(w.manifest) != 0 && rc == 0)
		rc = vss_error_set(err, -errno, "cannot write the manifest: %s", strerror(errno));
	w.manifest = NULL;
	repo_hash_final(w.manifest_hash, w.manifest_sha);
	w.manifest_hash = NULL;
	if (rc < 0)
		goto fail;
	if ((rc = publish(&w, type, base, full, err)) < 0)
		goto fail;
	repo_progress_tick(&w.pr, true);
	goto out;
fail:
	snprintf(path, sizeof(path), "tmp/%s", w.id);
	repo_rmtree(r->dir_fd, path);
	rc = repo_full_error(r, rc, err);
out:
	if (w.manifest)
		fclose(w.manifest);
	free(w.manifest_buf);
	if (w.manifest_hash)
		repo_hash_final(w.manifest_hash, w.manifest_sha);
	free(w.line.buf);
	if (w.tmp_fd >= 0)
		close(w.tmp_fd);
	prefetch_stop(w.ahead);
	entry_index_free(w.base);
	for (size_t i = 0; i < w.nlinks; i++)
		free(w.links[i].path);
	free(w.links);
	for (size_t i = 0; i < w.ndepends; i++)
		free(w.depends[i]);
	free(w.depends);
	rules_free(w.rules);
	free(live);
	repo_unlock(r);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}
