/*
 * requester/restore_tree.c - restoring one backup (vss_repo_restore): its
 * manifest, entry by entry, into the live paths or under another directory.
 *
 * Each source is restored under one directory opened once (its live path,
 * or the same path under --to), and everything inside it is reached from
 * that descriptor with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): a
 * symlink someone made inside a tree being restored cannot send a write
 * elsewhere.  A file is written beside its place under a temporary name,
 * checked against its checksum, given its owner, mode, extended attributes
 * and times, then renamed over what was there: a failed restore never
 * leaves a half-written file under a real name.  Directories get their
 * metadata last, deepest first, so that writing their content does not
 * change their times again.
 *
 * A restore with writers (restore.c, through restore_i.h) decides per
 * entry: restore it, leave it, send it elsewhere (an alternate location:
 * reached from the --to directory or "/" the same way, nothing followed),
 * or stage it for the next boot (written and checked beside its place,
 * under a temporary name that restore.c records), and is told of each
 * file written, staged or failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "requester/image_i.h"
#include "requester/restore_i.h"

struct dirmeta {
	unsigned int src;
	char *rel;                      /* in its source, or (src 0) below the base */
	struct entry meta;              /* mode, owner, times, xattrs */
};

struct restore {
	struct vss_repo *r;
	const char *id;
	const struct vss_restore_params *p;
	json_t *sources;
	int *roots;                     /* per source: the directory restored into */
	char **root_names;              /* per file source: its name in roots[] */
	unsigned int nsrc;
	struct dirmeta *dirs;
	size_t ndirs, dirs_cap;
	struct vss_restore_result *out;
	struct repo_progress pr;
	struct vss_error *err;
	unsigned long tmp_seq;
	const struct restore_hooks *h;  /* NULL: everything to its live path */
	int base;                       /* p->to or "/", once opened; -1 before */
};

static int openat2_beneath(int dir_fd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

static const char *live_of(struct restore *rs, unsigned int src)
{
	return json_string_value(json_array_get(rs->sources, src - 1));
}

bool restore_wanted(const char *const *paths, size_t npaths, const char *live)
{
	if (!npaths)
		return true;
	for (size_t i = 0; i < npaths; i++) {
		const char *want = paths[i];
		size_t n = strlen(want);

		while (n > 1 && want[n - 1] == '/')
			n--;
		if (strncmp(live, want, n) == 0 && (live[n] == '\0' || live[n] == '/' ||
						     (n == 1 && want[0] == '/')))
			return true;
	}
	return false;
}

/* Whether live path @live is one the restore was asked for (or p->paths is
 * empty). */
static bool wanted(struct restore *rs, const char *live)
{
	return restore_wanted(rs->p->paths, rs->p->npaths, live);
}

int restore_openat2(int dir_fd, const char *path, int flags)
{
	return openat2_beneath(dir_fd, path, flags);
}

/* Opens directory @rel beneath @base, making what is missing (0755), never
 * through a symlink: a live path was canonical when it was backed up, so a
 * symlink in it now is someone's doing. */
static int open_dirs_beneath(int base, const char *rel)
{
	char *copy = strdup(rel);
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	if (!*copy) {
		free(copy);
		rc = fcntl(base, F_DUPFD_CLOEXEC, 0);
		return rc < 0 ? -errno : rc;
	}
	for (char *c = copy; rc >= 0; c++) {
		char was = *c;

		if (was != '/' && was != '\0')
			continue;
		*c = '\0';
		if (mkdirat(base, copy, 0755) < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		/* Whatever was there or was made must not be a symlink. */
		rc = openat2_beneath(base, copy, O_RDONLY | O_DIRECTORY);
		if (rc < 0 || !was)
			break;
		close(rc);
		*c = was;
	}
	free(copy);
	return rc;
}

int restore_open_dirs(int base, const char *rel)
{
	return open_dirs_beneath(base, rel);
}

/* The directory everything is restored below: p->to (made if missing) or
 * "/", opened once. */
static int base_of(struct restore *rs)
{
	const char *at = rs->p->to ? rs->p->to : "/";

	if (rs->base >= 0)
		return rs->base;
	/* The place given is the administrator's, symlinks and all; from
	 * there on nothing is followed. */
	rs->base = open(at, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rs->base < 0 && rs->p->to && errno == ENOENT && mkdir(rs->p->to, 0755) == 0)
		rs->base = open(at, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rs->base < 0)
		return vss_error_set(rs->err, -errno, "cannot open %s: %s", at, strerror(errno));
	return rs->base;
}

/* The directory each source is restored into: its live path (a file
 * source: the live path's directory), under p->to if given. */
static int open_roots(struct restore *rs)
{
	rs->nsrc = (unsigned int)json_array_size(rs->sources);
	rs->roots = calloc(rs->nsrc, sizeof(int));
	rs->root_names = calloc(rs->nsrc, sizeof(char *));
	if (!rs->roots || !rs->root_names)
		return vss_error_set(rs->err, -ENOMEM, "out of memory");
	for (unsigned int i = 0; i < rs->nsrc; i++)
		rs->roots[i] = -1;
	return 0;
}

static int root_of(struct restore *rs, unsigned int src, bool is_dir_source)
{
	const char *live = live_of(rs, src);
	char *rel, *slash;
	int base, rc;

	if (rs->roots[src - 1] >= 0)
		return rs->roots[src - 1];
	if (!live || live[0] != '/')
		return vss_error_set(rs->err, -EBADMSG, "backup %s: source %u is damaged",
				     rs->id, src);
	if (!(rel = strdup(live + 1)))
		return vss_error_set(rs->err, -ENOMEM, "out of memory");
	if (!is_dir_source) {
		slash = strrchr(rel, '/');
		if (!(rs->root_names[src - 1] = strdup(slash ? slash + 1 : rel))) {
			free(rel);
			return vss_error_set(rs->err, -ENOMEM, "out of memory");
		}
		if (slash)
			*slash = '\0';
		else
			rel[0] = '\0';
	}
	if ((base = base_of(rs)) < 0) {
		free(rel);
		return base;
	}
	rs->roots[src - 1] = open_dirs_beneath(base, rel);
	if (rs->roots[src - 1] < 0) {
		rc = rs->roots[src - 1];
		rs->roots[src - 1] = -1;
		rc = vss_error_set(rs->err, rc, "cannot restore into %s%s: %s%s",
				   rs->p->to ? rs->p->to : "", live, strerror(-rc),
				   rc == -ELOOP || rc == -EXDEV ? " (a symlink is in the way)" : "");
		free(rel);
		return rc;
	}
	free(rel);
	return rs->roots[src - 1];
}

/* Splits @rel into its directory (opened beneath @root) and its name. */
static int open_parent(int root, const char *rel, const char **name)
{
	const char *slash = strrchr(rel, '/');
	char *dir;
	int fd;

	if (!slash) {
		*name = rel;
		fd = fcntl(root, F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? -errno : fd;
	}
	*name = slash + 1;
	if (!(dir = strndup(rel, (size_t)(slash - rel))))
		return -ENOMEM;
	fd = openat2_beneath(root, dir, O_RDONLY | O_DIRECTORY);
	free(dir);
	return fd;
}

static int set_xattrs(const char *path, json_t *x)
{
	const char *name;
	json_t *v;

	json_object_foreach(x, name, v) {
		size_t n;
		void *val = b64_decode(json_string_value(v), &n);

		if (!val)
			return -EBADMSG;
		if (lsetxattr(path, name, val, n, 0) < 0 && errno != ENOTSUP &&
		    errno != EOPNOTSUPP) {
			int rc = -errno;

			free(val);
			return rc;
		}
		free(val);
	}
	return 0;
}

/* Owner, mode, extended attributes and times of @name in @dir (not
 * followed: a symlink gets its own owner, xattrs and times). */
static int apply_meta(int dir, const char *name, const struct entry *e)
{
	struct timespec ts[2] = {
		{ .tv_sec = e->atime / 1000000000, .tv_nsec = e->atime % 1000000000 },
		{ .tv_sec = e->mtime / 1000000000, .tv_nsec = e->mtime % 1000000000 },
	};
	char path[64 + NAME_MAX];

	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dir, *name ? name : ".");
	if (fchownat(dir, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH)) < 0)
		return -errno;
	/* After chown, which clears the setuid and setgid bits. */
	if (e->kind != EK_LINK && fchmodat(dir, *name ? name : ".", e->mode, 0) < 0)
		return -errno;
	if (e->xattrs) {
		int rc = set_xattrs(path, e->xattrs);

		if (rc < 0)
			return rc;
	}
	if (utimensat(dir, *name ? name : ".", ts, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

static int fail(struct restore *rs, const struct entry *e, int rc, const char *what)
{
	const char *live = live_of(rs, e->src);

	/* A full destination is no fault of this entry's: say where, and
	 * that what was not restored yet is as it was (a file is renamed
	 * into place only once whole). */
	if (rc == -ENOSPC || rc == -EDQUOT)
		return vss_error_set(rs->err, rc, "the destination %s is full (%s): cannot "
				     "restore %s%s%s (%s); the files not restored yet are as they "
				     "were: make room and restore again",
				     rs->p->to ? rs->p->to : live ? live : "?", strerror(-rc),
				     live ? live : "?", *e->path ? "/" : "", e->path, what);
	return vss_error_set(rs->err, rc, "cannot restore %s%s%s: %s%s%s", live ? live : "?",
			     *e->path ? "/" : "", e->path, what, rc ? ": " : "",
			     rc ? strerror(-rc) : "");
}

/* Writes the bytes of file entry @e into @fd (a partial file: its layers),
 * checking them. */
static int write_file(struct restore *rs, const struct entry *e, int fd)
{
	bool damaged;
	int rc = repo_file_restore(rs->r, e, fd, &damaged, rs->err);

	if (rc < 0)
		return damaged ? rc : fail(rs, e, rc, "writing it");
	rs->out->bytes += e->size;
	rs->pr.p.bytes += e->size;
	return 0;
}

/* Makes entry @e as @tmp in @dir, ready to be renamed over its name. */
static int make_entry(struct restore *rs, const struct entry *e, int dir, const char *tmp)
{
	int fd, rc = 0;

	switch (e->kind) {
	case EK_FILE:
		fd = openat(dir, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return fail(rs, e, -errno, "creating it");
		rc = write_file(rs, e, fd);
		if (rc == 0 && fsync(fd) < 0)
			rc = fail(rs, e, -errno, "syncing it");
		close(fd);
		return rc;
	case EK_LINK:
		if (symlinkat(e->link, dir, tmp) < 0)
			return fail(rs, e, -errno, "making the symlink");
		return 0;
	case EK_CHR:
	case EK_BLK:
	case EK_FIFO:
		if (mknodat(dir, tmp, (e->kind == EK_CHR ? S_IFCHR : e->kind == EK_BLK ? S_IFBLK
							    : S_IFIFO) | 0600,
			    (dev_t)e->rdev) < 0)
			return fail(rs, e, -errno, "making the node");
		return 0;
	default:
		return 0;
	}
}

/* The directory that holds absolute path @abs below the base (made if
 * missing), and its last component in *@name (pointing into @abs). */
static int open_dest_parent(struct restore *rs, const char *abs, const char **name)
{
	const char *slash = strrchr(abs, '/');
	char *rel;
	int base = base_of(rs), fd;

	if (base < 0)
		return base;
	*name = slash + 1;
	if (!(rel = strndup(abs + 1, (size_t)(slash - abs) - (slash > abs))))
		return -ENOMEM;
	fd = open_dirs_beneath(base, rel);
	free(rel);
	return fd;
}

/* A hard link: to the entry of the same source it names, restored before
 * it (a manifest lists the first name of a file first), where that entry
 * went (@to: its alternate place, or NULL: its live path). */
static int link_entry(struct restore *rs, const struct entry *e, const char *to, int dir,
		      const char *tmp)
{
	const char *name;
	char *live;
	bool ok;
	int from, rc = 0;

	if (asprintf(&live, "%s/%s", live_of(rs, e->src), e->link) < 0)
		return vss_error_set(rs->err, -ENOMEM, "out of memory");
	ok = wanted(rs, live);
	free(live);
	if (!ok)
		return fail(rs, e, -EXDEV, "it is a hard link to a file not being restored");
	from = to ? open_dest_parent(rs, to, &name)
		  : open_parent(rs->roots[e->src - 1], e->link, &name);
	if (from < 0)
		return fail(rs, e, from, "opening the directory of its first name");
	if (linkat(from, name, dir, tmp, 0) < 0)
		rc = fail(rs, e, -errno, "linking it to its first name");
	close(from);
	return rc;
}

/* Remembers directory @e (at @rel of its source, or @src 0: @rel below the
 * base) for its metadata at the end; takes over @e's strings. */
static int remember_dir(struct restore *rs, struct entry *e, unsigned int src, char *rel)
{
	struct dirmeta *dm;

	if (rs->ndirs == rs->dirs_cap) {
		struct dirmeta *bigger = realloc(rs->dirs, (rs->dirs_cap = rs->dirs_cap ?
				2 * rs->dirs_cap : 64) * sizeof(*bigger));

		if (!bigger) {
			free(rel);
			return vss_error_set(rs->err, -ENOMEM, "out of memory");
		}
		rs->dirs = bigger;
	}
	dm = &rs->dirs[rs->ndirs++];
	dm->src = src;
	dm->rel = rel;
	dm->meta = *e;
	dm->meta.path = NULL;
	if (rel != e->path)
		free(e->path);
	e->path = NULL;
	e->xattrs = NULL;
	e->link = NULL;
	e->data = NULL;
	return 0;
}

/* A directory: made if missing; its metadata at the end (RA_ENSURE: only
 * if it was missing). */
static int restore_dir(struct restore *rs, struct entry *e, int dir, const char *name,
		       const struct restore_choice *c)
{
	struct stat st;
	bool made = false;
	char *rel;

	if (*name) {
		if (mkdirat(dir, name, 0700) == 0)
			made = true;
		else if (errno != EEXIST)
			return fail(rs, e, -errno, "making the directory");
	}
	if (fstatat(dir, *name ? name : ".", &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISDIR(st.st_mode))
		return fail(rs, e, 0, "something that is not a directory is in its place");
	if (c->action == RA_ENSURE && !made)
		return 0;
	rs->out->files++;
	if (!c->dest)
		return remember_dir(rs, e, e->src, e->path);
	if (!(rel = strdup(c->dest + 1)))
		return vss_error_set(rs->err, -ENOMEM, "out of memory");
	return remember_dir(rs, e, 0, rel);
}

/* Tells the hooks what became of entry @e. */
static void report(struct restore *rs, const struct entry *e, const char *live,
		   const char *where, enum vss_file_restore_status st, int rc)
{
	if (rs->h && rs->h->done)
		rs->h->done(rs->h->arg, &(struct restore_done){
			.e = e, .live = live, .where = where, .status = st, .rc = rc,
			.why = rc < 0 && rs->err ? rs->err->msg : NULL });
}

/* @e written as @tmp in @dir: into its place, or left there for the next
 * boot; *@st says which. */
static int put_in_place(struct restore *rs, const struct entry *e, int dir, const char *tmp,
			const char *name, const char *where, enum restore_action action,
			enum vss_file_restore_status *st)
{
	char *at;
	int rc;

	*st = VSS_RS_ALL;
	if (action != RA_STAGE && renameat(dir, tmp, dir, name) == 0)
		return 0;
	/* What cannot be replaced now (immutable, in the way) waits for the
	 * next boot when the restore method says so. */
	if (action == RA_RESTORE || (action == RA_STAGE_IF_CANNOT_REPLACE &&
				     errno != EPERM && errno != EBUSY && errno != ETXTBSY &&
				     errno != EACCES))
		return fail(rs, e, -errno, "putting it in place");
	*st = VSS_RS_STAGED;
	if (!(at = strdup(where)))
		return vss_error_set(rs->err, -ENOMEM, "out of memory");
	*strrchr(at, '/') = '\0';
	rc = rs->h->staged(rs->h->arg, *at ? at : "/", tmp, name, rs->err);
	free(at);
	return rc;
}

static int restore_entry(void *arg, struct entry *e)
{
	struct restore *rs = arg;
	const char *live = live_of(rs, e->src), *name;
	struct restore_choice c = { .action = RA_RESTORE };
	enum vss_file_restore_status st = VSS_RS_FAILED;
	char tmp[NAME_MAX + 1], *full = NULL, *where = NULL;
	struct stat st_in_place;
	int root, dir = -1, rc;

	if (!live)
		return vss_error_set(rs->err, -EBADMSG, "backup %s: an entry names source %u, "
				     "which it does not have", rs->id, e->src);
	if (e->kind == EK_GONE || e->kind == EK_SOCK)
		return 0;
	if (asprintf(&full, "%s%s%s", live, *e->path ? "/" : "", e->path) < 0)
		return vss_error_set(rs->err, -ENOMEM, "out of memory");
	rc = 0;
	if (!wanted(rs, full))
		goto out;
	if (rs->h && (rc = rs->h->choose(rs->h->arg, e, full, &c)) < 0)
		goto out;
	if (c.action == RA_SKIP)
		goto out;
	if (asprintf(&where, "%s%s", rs->p->to ? rs->p->to : "",
		     c.dest ? c.dest : full) < 0) {
		rc = vss_error_set(rs->err, -ENOMEM, "out of memory");
		goto out;
	}
	if (c.dest) {
		dir = open_dest_parent(rs, c.dest, &name);
	} else {
		root = root_of(rs, e->src, !(*e->path == '\0' && e->kind != EK_DIR));
		if (root < 0) {
			rc = root;
			goto out;
		}
		if (*e->path == '\0' && e->kind == EK_DIR) {
			dir = fcntl(root, F_DUPFD_CLOEXEC, 0);
			name = "";
		} else if (*e->path == '\0') {
			dir = fcntl(root, F_DUPFD_CLOEXEC, 0);
			name = rs->root_names[e->src - 1];
		} else {
			dir = open_parent(root, e->path, &name);
		}
	}
	if (dir < 0) {
		rc = fail(rs, e, dir, "opening its directory");
		goto out;
	}
	if (e->kind == EK_DIR) {
		rc = restore_dir(rs, e, dir, name, &c);
		goto out;
	}
	if (c.action == RA_ENSURE)
		goto out;
	if (fstatat(dir, name, &st_in_place, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st_in_place.st_mode)) {
		rc = fail(rs, e, 0, "a directory is in its place");
		goto reported;
	}
	snprintf(tmp, sizeof(tmp), ".vss-restore-%d-%lu", (int)getpid(), ++rs->tmp_seq);
	rc = e->kind == EK_HARD ? link_entry(rs, e, c.link_dest, dir, tmp)
				: make_entry(rs, e, dir, tmp);
	if (rc == 0 && e->kind != EK_HARD && (rc = apply_meta(dir, tmp, e)) < 0)
		rc = fail(rs, e, rc, "setting its owner, mode, attributes or times");
	if (rc == 0)
		rc = put_in_place(rs, e, dir, tmp, name, where, c.action, &st);
	if (rc < 0) {
		unlinkat(dir, tmp, 0);
		st = VSS_RS_FAILED;
	} else {
		rs->out->files++;
	}
	rs->pr.p.files++;
	repo_progress_tick(&rs->pr, false);
reported:
	report(rs, e, full, where, rc < 0 ? VSS_RS_FAILED : st, rc);
out:
	if (dir >= 0)
		close(dir);
	free(c.dest);
	free(c.link_dest);
	free(where);
	free(full);
	return rc;
}

/* Directory metadata, deepest (last listed) first. */
static int finish_dirs(struct restore *rs)
{
	int rc = 0;

	for (size_t i = rs->ndirs; i-- > 0;) {
		struct dirmeta *dm = &rs->dirs[i];
		const char *name = "";
		int dir, r2;

		if (dm->src == 0)
			dir = *dm->rel ? open_parent(rs->base, dm->rel, &name)
				       : fcntl(rs->base, F_DUPFD_CLOEXEC, 0);
		else if (*dm->rel)
			dir = open_parent(rs->roots[dm->src - 1], dm->rel, &name);
		else
			dir = fcntl(rs->roots[dm->src - 1], F_DUPFD_CLOEXEC, 0);
		if (dir < 0) {
			rc = rc ?: dir;
			continue;
		}
		r2 = apply_meta(dir, name, &dm->meta);
		close(dir);
		if (r2 < 0 && rc == 0) {
			dm->meta.path = dm->rel;
			rc = fail(rs, &dm->meta, r2, "setting the directory's owner, mode, "
				  "attributes or times");
			dm->meta.path = NULL;
		}
	}
	return rc;
}

int restore_tree(struct vss_repo *r, const char *id, const struct vss_restore_params *p,
		 const struct restore_hooks *h, struct vss_restore_result *out,
		 struct vss_error *err)
{
	struct restore rs = { .r = r, .id = id, .p = p, .out = out, .err = err, .h = h,
			      .base = -1 };
	json_t *info;
	int rc;

	memset(out, 0, sizeof(*out));
	rs.pr.fn = p->progress;
	rs.pr.arg = p->progress_arg;
	if (!(info = repo_read_info(r, id, err)))
		return err ? err->code : -EBADMSG;
	if (image_is(info)) {           /* a volume's blocks: image.c */
		rc = h ? vss_error_set(err, -EOPNOTSUPP, "backup %s is an image of a volume: it "
				       "is restored without writers (--no-writers)", id)
		       : image_restore(r, id, p, out, err);
		goto out;
	}
	rs.sources = json_object_get(info, "sources");
	if ((rc = open_roots(&rs)) < 0)
		goto out;
	rc = manifest_each(r, id, json_string_value(json_object_get(info, "manifest_sha256")),
			   restore_entry, &rs, err);
	if (rc == 0)
		rc = finish_dirs(&rs);
	if (rc == 0)
		repo_progress_tick(&rs.pr, true);
out:
	for (unsigned int i = 0; i < rs.nsrc; i++) {
		if (rs.roots && rs.roots[i] >= 0)
			close(rs.roots[i]);
		if (rs.root_names)
			free(rs.root_names[i]);
	}
	free(rs.roots);
	free(rs.root_names);
	for (size_t i = 0; i < rs.ndirs; i++) {
		free(rs.dirs[i].rel);
		entry_release(&rs.dirs[i].meta);
	}
	free(rs.dirs);
	if (rs.base >= 0)
		close(rs.base);
	json_decref(info);
	return rc;
}

int vss_repo_restore(struct vss_repo *r, const char *id, const struct vss_restore_params *p,
		     struct vss_restore_result *out, struct vss_error *err)
{
	char full[VSS_BACKUP_ID_MAX];
	int rc;

	memset(out, 0, sizeof(*out));
	if (!p || p->size < sizeof(*p))
		return vss_error_set(err, -EINVAL, "struct vss_restore_params: set .size");
	if (p->to && p->to[0] != '/')
		return vss_error_set(err, -EINVAL, "the place to restore to must be an absolute "
				     "path (%s)", p->to);
	if ((rc = repo_lock(r, LOCK_SH, err)) < 0)
		return rc;
	if ((rc = repo_resolve(r, id, full, err)) == 0)
		rc = restore_tree(r, full, p, NULL, out, err);
	repo_unlock(r);
	return rc;
}
