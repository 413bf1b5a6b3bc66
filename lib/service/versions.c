/*
 * service/versions.c - a file's earlier versions (versions.h).
 *
 * Listing: the path is opened for reading as the caller (vss_fs_open with
 * VSS_FS_OPEN_READ: proof that the caller may read it now), the shadows
 * whose live side holds it are found (a volume's mount point, a btrfs
 * subvolume), each is made readable (the engine's exposed where vssd
 * picks, btrfs snapshots as they are) and its root opened, unless it is
 * the same device as a newer one already open (same_device(): then it
 * holds the same version, and is passed over unmounted); then, without
 * svc->lock, the version in each shadow is opened beneath that root (no
 * symlink followed, no other mount crossed) and compared with the next
 * newer one, the newest with the live file: size and type first, equal
 * size and modification time count as the same, else the bytes decide; a
 * directory by its entries' names, types, sizes and modification times.
 * Only versions that differ are listed.
 *
 * Copying back: a child process takes the caller's groups, gid and uid
 * (root stays root), opens the version beneath the shadow's root as the
 * caller, and writes the copy as the caller: a file beside its target,
 * then renamed over it; a directory entry by entry, descriptors only, no
 * symlink followed on either side.  Modes, owners (as far as the caller
 * may give them), times and extended attributes go with each entry.  An
 * existing target is replaced only with force.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <vss/cow.h>

#include "provider/provider.h"
#include "service/args.h"
#include "service/caller.h"
#include "service/fs.h"
#include "service/log.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/versions.h"
#include "service/volumes.h"

#define VERSIONS_MAX 4096
#define CHUNK (1u << 20)

static int openat2_fd(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = { .flags = flags, .resolve = resolve };
	long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

/* @rel beneath the directory @root: no symlink, no other mount, never out. */
static int open_beneath(int root, const char *rel, int flags)
{
	return openat2_fd(root, *rel ? rel : ".", (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
			  RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV |
			  RESOLVE_NO_MAGICLINKS);
}

/* What a shadow is of, on the live side: its volume's mount point, its
 * btrfs subvolume; NULL for a live "shadow" or an unmounted volume. */
static const char *live_root(const struct svc_shadow *sh)
{
	if (sh->rec.attrs & VSS_CATALOG_ATTR_LIVE)
		return NULL;
	if (sh->vol)
		return sh->vol->mount_dir;
	return sh->path ? sh->origin : NULL;
}

static bool is_mount(int fd, uint64_t id)
{
	struct statx sx;

	return statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) == 0 &&
	       (sx.stx_mask & STATX_MNT_ID) && sx.stx_mnt_id == id;
}

static size_t within(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (n > 1 && strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0'))
		return n;
	return 0;
}

/* One shadow to look in, made while svc->lock is held. */
struct place {
	char id[37], set[37];
	const char *provider;
	uint64_t created_ns;
	int root;                       /* O_PATH of the shadow's root, or -1 */
	bool same;                      /* reads as a newer place does (same_device()) */
};

/*
 * The shadows of the volume or subvolume that holds @real, newest first
 * (svc->lock held): their IDs, roots not open yet; *@rel: @real below it,
 * @vol its name.  -ENOENT if no volume or shadowed subvolume holds it.
 */
static int places_find(struct vss_service *svc, const char *real, const char *only,
		       struct place **out, size_t *n, const char **rel, char vol[PATH_MAX],
		       struct vss_error *err)
{
	const char *best = NULL;
	struct place *p;
	size_t len = 0, k = 0, count = 0;

	svc_assert_locked(svc);
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next) {
		const char *r = live_root(sh);
		size_t l = r ? within(real, r) : 0;

		if (l > len) {
			len = l;
			best = r;
		}
	}
	for (struct svc_volume *v = svc->volumes; v && !best; v = v->next)
		if (v->mount_dir && within(real, v->mount_dir)) {
			/* A volume without shadows: no versions. */
			*rel = real + strlen(v->mount_dir);
			snprintf(vol, PATH_MAX, "%s", v->rec.name);
			return 0;
		}
	if (!best)
		return vss_error_set(err, -ENOENT, "%s is not on a volume or subvolume vss has "
				     "shadow copies of", real);
	snprintf(vol, PATH_MAX, "%s", best);
	*rel = real + len + (real[len] == '/');
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		count += live_root(sh) && strcmp(live_root(sh), best) == 0 && !sh->owner &&
			 !sh->retiring;
	if (count > VERSIONS_MAX)
		count = VERSIONS_MAX;
	if (!count)
		return 0;
	if (!(p = calloc(count, sizeof(*p))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	for (struct svc_shadow *sh = svc->shadows; sh && k < count; sh = sh->next) {
		if (!live_root(sh) || strcmp(live_root(sh), best) != 0 || sh->owner ||
		    sh->retiring)
			continue;
		if (only && strncmp(sh->rec.id, only, strlen(only)) != 0)
			continue;
		if (sh->vol)
			snprintf(vol, PATH_MAX, "%s", sh->vol->rec.name);
		memcpy(p[k].id, sh->rec.id, sizeof(p[k].id));
		memcpy(p[k].set, sh->rec.set_id, sizeof(p[k].set));
		p[k].provider = sh->prov->name;
		p[k].created_ns = sh->rec.created_ns;
		p[k++].root = -1;
	}
	/* Newest first. */
	for (size_t i = 0; i < k / 2; i++) {
		struct place t = p[i];

		p[i] = p[k - 1 - i];
		p[k - 1 - i] = t;
	}
	*out = p;
	*n = k;
	return 0;
}

/* Opens @p's root: the engine's shadow exposed first if it is not yet
 * (svc->lock held; one at a time, so that other requests are not held
 * up behind hundreds of mounts).  -1 if it is gone or cannot be read. */
static int place_open(struct vss_service *svc, const struct place *p)
{
	struct svc_shadow *sh = svc_shadow_find(svc, p->id);
	const char *dir;
	struct vss_error e;
	int fd;

	svc_assert_locked(svc);
	if (!sh)
		return -1;
	if (sh->vol) {
		if (svc_shadow_expose_own(svc, sh, &e) < 0) {
			vss_log("versions: shadow %s cannot be read: %s", sh->rec.id, e.msg);
			return -1;
		}
		dir = sh->expose_dir;
	} else {
		dir = sh->path;
	}
	fd = openat2_fd(AT_FDCWD, dir, O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_SYMLINKS);
	/* Still vssd's mount (by its ID), not a directory left behind by an
	 * unmount outside vss. */
	if (fd >= 0 && sh->vol && !is_mount(fd, sh->expose_id)) {
		vss_log("versions: shadow %s: %s is no longer its mount; skipped", sh->rec.id,
			dir);
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * ext4's superblock fields that a filesystem frozen for a shadow rewrites
 * each time and that no lookup, stat or read depends on: free counts,
 * mount and write times, the mount count, kbytes written, and the
 * checksum over them (offsets in the superblock, at byte 1024 of the
 * device; e2fsprogs' struct ext2_super_block).
 */
static const struct { uint16_t off, len; } ext4_volatile[] = {
	{ 0x0c, 4 }, { 0x10, 4 }, { 0x2c, 4 }, { 0x30, 4 }, { 0x34, 2 }, { 0x40, 4 },
	{ 0x158, 4 }, { 0x178, 8 }, { 0x3fc, 4 },
};

#define SAME_DEVICE_MAX (1u << 20)      /* bytes compared at most, else mounted */

/* Blanks, in @buf (the bytes at @off of a device), ext4's volatile
 * superblock fields. */
static void mask_ext4(unsigned char *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < sizeof(ext4_volatile) / sizeof(ext4_volatile[0]); i++) {
		uint64_t a = 1024 + ext4_volatile[i].off;

		for (uint64_t b = a; b < a + ext4_volatile[i].len; b++)
			if (b >= off && b < off + len)
				buf[b - off] = 0;
	}
}

bool svc_versions_same_bytes(unsigned char *x, unsigned char *y, uint64_t off, size_t len)
{
	/* Only an ext4 superblock, in both (its magic at 1080), has fields to
	 * pass over. */
	if (off <= 1080 && off + len >= 1082 && x[1080 - off] == 0x53 &&
	    x[1081 - off] == 0xef && y[1080 - off] == 0x53 && y[1081 - off] == 0xef) {
		mask_ext4(x, off, len);
		mask_ext4(y, off, len);
	}
	return memcmp(x, y, len) == 0;
}

/*
 * Whether the engine's shadow @older reads exactly as @newer of the same
 * volume, or differs only in ext4's volatile superblock fields: then a
 * mount of it would show every file as @newer's does, and its version of
 * any path is @newer's.  The blocks written between them are the only
 * places they may differ (vss_cow_changed_extents: none left out); each is
 * read from both and compared.  An ext4 volume frozen for shadows taken
 * with nothing written between them differs in its first block only, its
 * superblock's write time and checksum (bench/RESULTS.md), so a file's
 * unchanged versions cost no mount each.  False whenever in doubt: not
 * ext4, too much written, anything unreadable.  svc->lock held.
 */
static bool same_device(struct vss_service *svc, const char *newer, const char *older)
{
	struct svc_shadow *a = svc_shadow_find(svc, newer), *b = svc_shadow_find(svc, older);
	struct vss_cow_shadow *ra = NULL, *rb = NULL;
	struct vss_cow_extent *ext = NULL;
	unsigned char *x = NULL, *y = NULL;
	vss_cow_id ia, ib;
	struct vss_error e;
	uint64_t total = 0;
	bool same = false;
	size_t n = 0;

	svc_assert_locked(svc);
	if (!a || !b || !a->vol || a->vol != b->vol || !a->vol->cow)
		return false;
	svc_id_parse(newer, ia);
	svc_id_parse(older, ib);
	if (vss_cow_changed_extents(a->vol->cow, ib, ia, &ext, &n, &e) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		total += ext[i].length;
	if (total > SAME_DEVICE_MAX || !(x = malloc(SAME_DEVICE_MAX)) ||
	    !(y = malloc(SAME_DEVICE_MAX)) || vss_cow_shadow_open(a->vol->cow, ia, &ra) < 0 ||
	    vss_cow_shadow_open(a->vol->cow, ib, &rb) < 0)
		goto out;
	same = true;
	for (size_t i = 0; same && i < n; i++) {
		uint64_t off = ext[i].offset, len = ext[i].length;

		if (vss_cow_shadow_read(ra, x, len, off) != (ssize_t)len ||
		    vss_cow_shadow_read(rb, y, len, off) != (ssize_t)len) {
			same = false;
			break;
		}
		same = svc_versions_same_bytes(x, y, off, len);
	}
out:
	if (rb)
		vss_cow_shadow_close(rb);
	if (ra)
		vss_cow_shadow_close(ra);
	free(x);
	free(y);
	free(ext);
	return same;
}

/* places_find(), then each root opened, taking svc->lock for each, newest
 * first: a shadow the same as the newest one open so far is passed over. */
static int places_of(struct vss_service *svc, const char *real, const char *only,
		     struct place **out, size_t *n, const char **rel, char vol[PATH_MAX],
		     struct vss_error *err)
{
	size_t k = 0, ref = 0;
	bool have_ref = false;
	int rc;

	*out = NULL;
	*n = 0;
	svc_lock(svc);
	rc = places_find(svc, real, only, out, n, rel, vol, err);
	svc_unlock(svc);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < *n; i++) {
		struct place *p = &(*out)[i];

		svc_lock(svc);
		p->same = have_ref && same_device(svc, (*out)[ref].id, p->id);
		p->root = p->same ? -1 : place_open(svc, p);
		svc_unlock(svc);
		if (p->root >= 0) {
			ref = k;
			have_ref = true;
		}
		if (p->root >= 0 || p->same)
			(*out)[k++] = *p;
	}
	*n = k;
	return 0;
}

static void places_free(struct place *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].root >= 0)
			close(p[i].root);
	free(p);
}

/* ---- comparing ---- */

struct entry_sig {
	char *name;
	mode_t type;
	off_t size;
	struct timespec mtime;
};

static int cmp_sig(const void *a, const void *b)
{
	return strcmp(((const struct entry_sig *)a)->name, ((const struct entry_sig *)b)->name);
}

/* A directory's entries (names, types, sizes, modification times) in one
 * number: FNV-1a over them in name order; 0 if it cannot be read. */
static uint64_t dir_sig(int fd)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct entry_sig *e = NULL;
	size_t n = 0, cap = 0;
	uint64_t h = 1469598103934665603ull;
	struct dirent *de;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	while ((de = readdir(d))) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (n == cap) {
			struct entry_sig *g = realloc(e, (cap = cap ? cap * 2 : 64) * sizeof(*g));

			if (!g)
				break;
			e = g;
		}
		e[n] = (struct entry_sig){ strdup(de->d_name), st.st_mode & S_IFMT,
					   S_ISDIR(st.st_mode) ? 0 : st.st_size, st.st_mtim };
		if (!e[n].name)
			break;
		n++;
	}
	closedir(d);
	qsort(e, n, sizeof(*e), cmp_sig);
	for (size_t i = 0; i < n; i++) {
		const unsigned char *s = (const unsigned char *)e[i].name;
		uint64_t v[4] = { (uint64_t)e[i].type, (uint64_t)e[i].size,
				  (uint64_t)e[i].mtime.tv_sec, (uint64_t)e[i].mtime.tv_nsec };

		for (; *s; s++)
			h = (h ^ *s) * 1099511628211ull;
		h = (h ^ 0xff) * 1099511628211ull;
		for (int j = 0; j < 4; j++)
			for (int b = 0; b < 8; b++)
				h = (h ^ ((v[j] >> (8 * b)) & 0xff)) * 1099511628211ull;
		free(e[i].name);
	}
	free(e);
	return h;
}

static bool same_bytes(int a, int b, off_t size)
{
	char *x = malloc(CHUNK), *y = malloc(CHUNK);
	bool same = x && y;

	for (off_t off = 0; same && off < size;) {
		size_t want = (size_t)(size - off < (off_t)CHUNK ? size - off : (off_t)CHUNK);
		ssize_t n = pread(a, x, want, off), m = pread(b, y, want, off);

		if (n <= 0 || n != m || memcmp(x, y, (size_t)n) != 0)
			same = false;
		off += n > 0 ? n : 1;
	}
	free(x);
	free(y);
	return same;
}

/* Whether the versions @a and @b hold the same content. */
static bool same_content(int a, const struct stat *sa, int b, const struct stat *sb)
{
	if ((sa->st_mode & S_IFMT) != (sb->st_mode & S_IFMT))
		return false;
	if (S_ISDIR(sa->st_mode))
		return dir_sig(a) == dir_sig(b);
	if (sa->st_size != sb->st_size)
		return false;
	if (sa->st_mtim.tv_sec == sb->st_mtim.tv_sec && sa->st_mtim.tv_nsec == sb->st_mtim.tv_nsec)
		return true;
	return S_ISREG(sa->st_mode) && same_bytes(a, b, sa->st_size);
}

static const char *type_name(mode_t m)
{
	return S_ISREG(m) ? "file" : S_ISDIR(m) ? "directory" : "other";
}

static json_t *version_json(const struct place *p, const struct stat *st)
{
	char created[40], mtime[40];
	uint64_t mns = (uint64_t)st->st_mtim.tv_sec * 1000000000ull +
		       (uint64_t)st->st_mtim.tv_nsec;

	svc_time_str(p->created_ns, created);
	svc_time_str(mns, mtime);
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:I, s:i, s:i, s:i}",
			 "shadow", p->id, "set", p->set, "created", created,
			 "created_ns", (json_int_t)p->created_ns, "provider", p->provider,
			 "type", type_name(st->st_mode), "size", (json_int_t)st->st_size,
			 "mtime", mtime, "mtime_ns", (json_int_t)mns,
			 "mode", (int)(st->st_mode & 07777), "uid", (int)st->st_uid,
			 "gid", (int)st->st_gid);
}

/* The path @who names, opened for reading as @who: its real path. */
static int open_live(const struct svc_caller *who, const char *path, int *fd,
		     char real[PATH_MAX], struct vss_error *err)
{
	struct vss_fs_cred buf;
	int rc = vss_fs_open(path, svc_caller_cred(who, &buf), VSS_FS_OPEN_READ, fd, real, err);

	if (rc == -EACCES || rc == -EPERM)
		return vss_error_set(err, -EACCES, "permission denied: you may not read %s, "
				     "so not its versions either", path);
	return rc;
}

/*
 * A path that is gone now: its versions are listed if the caller may read
 * the directory that held it (which lists its name anyway) and the path
 * really does not exist (root looks: one the caller may not read is not
 * gone).  *@real: the path as the caller reaches its directory.
 */
static int gone(const struct svc_caller *who, const char *path, char real[PATH_MAX],
		struct vss_error *err)
{
	char parent[PATH_MAX], dir[PATH_MAX];
	const char *base;
	struct stat st;
	char *slash;
	int fd, rc;

	snprintf(parent, sizeof(parent), "%s", path);
	slash = strrchr(parent, '/');
	if (!slash || !slash[1] || strcmp(slash + 1, ".") == 0 || strcmp(slash + 1, "..") == 0)
		return -ENOENT;
	base = path + (slash - parent) + 1;
	*slash = '\0';
	if ((rc = open_live(who, parent[0] ? parent : "/", &fd, dir, err)) < 0)
		return rc;
	close(fd);
	if ((size_t)snprintf(real, PATH_MAX, "%s/%s", strcmp(dir, "/") ? dir : "", base) >=
	    PATH_MAX)
		return vss_error_set(err, -ENAMETOOLONG, "%s: too long", path);
	if (lstat(real, &st) == 0 || errno != ENOENT)
		return -ENOENT;
	return 0;
}

int svc_op_shadow_versions(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err)
{
	char real[PATH_MAX], vol[PATH_MAX];
	struct place *p = NULL;
	struct stat newer_st = { 0 };
	const char *path, *rel;
	struct vss_error first;
	json_t *arr;
	size_t n = 0;
	int rc, live = -1, newer;

	if ((rc = svc_arg_str(args, "path", true, &path, err)) < 0)
		return rc;
	if (strlen(path) >= PATH_MAX)
		return vss_error_set(err, -ENAMETOOLONG, "the path is too long");
	if ((rc = open_live(who, path, &live, real, &first)) < 0) {
		/* Gone now: compared with nothing, its newest version is one. */
		if (rc != -ENOENT || gone(who, path, real, err) < 0) {
			*err = first;
			return rc;
		}
	}
	rc = places_of(svc, real, NULL, &p, &n, &rel, vol, err);
	if (rc < 0 || (live >= 0 && fstat(live, &newer_st) < 0)) {
		if (live >= 0)
			close(live);
		return rc < 0 ? rc : vss_error_set(err, -errno, "%s: %s", real, strerror(errno));
	}
	arr = json_array();
	newer = live;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		int fd;

		if (p[i].same)
			continue;       /* what a newer one holds, compared already */
		fd = open_beneath(p[i].root, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
		if (fd < 0)
			continue;       /* not there then */
		if (fstat(fd, &st) < 0 ||
		    (newer >= 0 && same_content(fd, &st, newer, &newer_st))) {
			/* The same content: the newer one stands for both. */
			close(fd);
			continue;
		}
		json_array_append_new(arr, version_json(&p[i], &st));
		if (newer >= 0)
			close(newer);
		newer = fd;
		newer_st = st;
	}
	if (newer >= 0)
		close(newer);
	places_free(p, n);
	*res = json_pack("{s:s, s:s, s:o, s:b}", "path", real, "volume", vol, "versions", arr,
			 "exists", live >= 0);
	return 0;
}

/* ---- copying back, in a child that is the caller ---- */

struct copy {
	uint64_t files, bytes;
	int rc;
	char msg[512];
};

static int fail(struct copy *c, int rc, const char *what, const char *name)
{
	if (!c->rc) {
		c->rc = rc;
		snprintf(c->msg, sizeof(c->msg), "%.100s %.300s: %.60s", what, name, strerror(-rc));
	}
	return rc;
}

static void copy_xattrs(int from, int to)
{
	char names[16384], value[65536];
	ssize_t n = flistxattr(from, names, sizeof(names));

	for (ssize_t off = 0; n > 0 && off < n; off += (ssize_t)strlen(names + off) + 1) {
		ssize_t v = fgetxattr(from, names + off, value, sizeof(value));

		/* What the caller may not set (trusted., security.) is left out. */
		if (v >= 0)
			(void)!fsetxattr(to, names + off, value, (size_t)v, 0);
	}
}

/* Owner, mode, xattrs, times of @st onto @fd (owners only as far as the
 * caller may: a user keeps its own). */
static void copy_meta(int from, int fd, const struct stat *st)
{
	(void)!fchown(fd, st->st_uid, st->st_gid);
	(void)!fchmod(fd, st->st_mode & 07777);
	copy_xattrs(from, fd);
	futimens(fd, (struct timespec[]){ st->st_atim, st->st_mtim });
}

static int copy_entry(struct copy *c, int src, const struct stat *st, int pfd, const char *name,
		      bool force, int depth);

/* @size bytes of @src into @out: copy_file_range, or read and write
 * between filesystems that do not share it. */
static int copy_bytes(int src, int out, off_t size, uint64_t *done)
{
	char *buf = NULL;
	off_t off = 0;
	int rc = 0;

	while (off < size) {
		ssize_t n = copy_file_range(src, &off, out, NULL, (size_t)(size - off), 0);

		if (n > 0) {
			*done += (uint64_t)n;
			continue;
		}
		if (n == 0)
			return -EIO;       /* shorter than it said */
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return -errno;
		break;
	}
	if (off < size && !(buf = malloc(CHUNK)))
		return -ENOMEM;
	while (off < size) {
		ssize_t n = pread(src, buf, CHUNK, off), w;

		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		for (ssize_t put = 0; put < n; put += w)
			if ((w = pwrite(out, buf + put, (size_t)(n - put), off + put)) <= 0) {
				free(buf);
				return w < 0 ? -errno : -EIO;
			}
		off += n;
		*done += (uint64_t)n;
	}
	free(buf);
	return rc;
}

static int copy_file(struct copy *c, int src, const struct stat *st, int pfd, const char *name)
{
	char tmp[64];
	int out, rc;

	snprintf(tmp, sizeof(tmp), ".vss-restore.%d.%llu", (int)getpid(),
		 (unsigned long long)c->files);
	out = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return fail(c, -errno, "cannot create beside", name);
	if ((rc = copy_bytes(src, out, st->st_size, &c->bytes)) < 0) {
		close(out);
		unlinkat(pfd, tmp, 0);
		return fail(c, rc, "cannot copy", name);
	}
	copy_meta(src, out, st);
	if (close(out) < 0 || renameat(pfd, tmp, pfd, name) < 0) {
		rc = -errno;
		unlinkat(pfd, tmp, 0);
		return fail(c, rc, "cannot put in place", name);
	}
	c->files++;
	return 0;
}

static int copy_dir(struct copy *c, int src, const struct stat *st, int pfd, const char *name,
		    bool force, int depth)
{
	int dfd, sdup;
	DIR *d;
	struct dirent *de;

	if (depth > 256)
		return fail(c, -ELOOP, "too deep at", name);
	if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
		return fail(c, -errno, "cannot make", name);
	dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return fail(c, -errno, "cannot open", name);
	sdup = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sdup < 0 || !(d = fdopendir(sdup))) {
		if (sdup >= 0)
			close(sdup);
		close(dfd);
		return fail(c, -errno, "cannot read", name);
	}
	while (!c->rc && (de = readdir(d))) {
		struct stat cst;
		int cfd;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &cst, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISLNK(cst.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);

			if (n < 0)
				continue;
			target[n] = '\0';
			if (force)
				unlinkat(dfd, de->d_name, 0);
			if (symlinkat(target, dfd, de->d_name) < 0) {
				fail(c, -errno, "cannot make the symlink", de->d_name);
				break;
			}
			(void)!fchownat(dfd, de->d_name, cst.st_uid, cst.st_gid,
					AT_SYMLINK_NOFOLLOW);
			utimensat(dfd, de->d_name, (struct timespec[]){ cst.st_atim, cst.st_mtim },
				  AT_SYMLINK_NOFOLLOW);
			c->files++;
			continue;
		}
		if (!S_ISREG(cst.st_mode) && !S_ISDIR(cst.st_mode))
			continue;       /* devices, fifos, sockets: not files to restore */
		cfd = open_beneath(dirfd(d), de->d_name, O_RDONLY | O_NONBLOCK | O_NOCTTY);
		if (cfd < 0) {
			fail(c, cfd, "cannot read the version of", de->d_name);
			break;
		}
		copy_entry(c, cfd, &cst, dfd, de->d_name, force, depth + 1);
		close(cfd);
	}
	closedir(d);
	if (!c->rc) {
		copy_meta(src, dfd, st);
		c->files++;
	}
	close(dfd);
	return c->rc;
}

static int copy_entry(struct copy *c, int src, const struct stat *st, int pfd, const char *name,
		      bool force, int depth)
{
	if (S_ISDIR(st->st_mode))
		return copy_dir(c, src, st, pfd, name, force, depth);
	if (S_ISREG(st->st_mode))
		return copy_file(c, src, st, pfd, name);
	return fail(c, -EINVAL, "not a file or directory:", name);
}

/* The child's work: as the caller from here on. */
static void restore_as(struct copy *c, const struct vss_fs_cred *cred, int root, const char *rel,
		       const char *live, const char *dest, bool force)
{
	char parent[PATH_MAX];
	struct stat st, dst;
	const char *base;
	char *slash;
	int src, pfd, lfd;

	if (cred && (setgroups((size_t)cred->ngroups, cred->groups) < 0 ||
		     setresgid(cred->gid, cred->gid, cred->gid) < 0 ||
		     setresuid(cred->uid, cred->uid, cred->uid) < 0)) {
		fail(c, -EPERM, "cannot take the caller's credentials for", dest);
		return;
	}
	/* Now readable as the caller, if it still exists: else no versions. */
	lfd = open(live, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (lfd < 0 && errno != ENOENT) {
		c->rc = -EACCES;
		snprintf(c->msg, sizeof(c->msg), "permission denied: you may not read %.400s, so "
			 "not its versions either", live);
		return;
	}
	if (lfd >= 0)
		close(lfd);
	src = open_beneath(root, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (src < 0) {
		c->rc = src == -EACCES ? -EACCES : -ENOENT;
		snprintf(c->msg, sizeof(c->msg), src == -EACCES
			 ? "permission denied: you could not read %.400s in that shadow copy"
			 : "%.400s is not in that shadow copy", live);
		return;
	}
	if (fstat(src, &st) < 0) {
		fail(c, -errno, "cannot read", live);
		close(src);
		return;
	}
	snprintf(parent, sizeof(parent), "%s", dest);
	slash = strrchr(parent, '/');
	base = slash + 1;
	*slash = '\0';
	pfd = open(parent[0] ? parent : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0) {
		fail(c, -errno, "cannot reach", parent[0] ? parent : "/");
		close(src);
		return;
	}
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		fail(c, -EINVAL, "not a place to restore to:", dest);
	} else if (fstatat(pfd, base, &dst, AT_SYMLINK_NOFOLLOW) == 0 && !force) {
		bool newer = dst.st_mtim.tv_sec > st.st_mtim.tv_sec ||
			     (dst.st_mtim.tv_sec == st.st_mtim.tv_sec &&
			      dst.st_mtim.tv_nsec > st.st_mtim.tv_nsec);

		c->rc = -EEXIST;
		snprintf(c->msg, sizeof(c->msg), "%.400s exists%s: not replaced without --force",
			 dest, newer ? " and is newer than that version" : "");
	} else {
		copy_entry(c, src, &st, pfd, base, force, 0);
	}
	close(pfd);
	close(src);
}

int svc_op_shadow_restore_version(struct vss_service *svc, const struct svc_caller *who,
				  json_t *args, json_t **res, struct vss_error *err)
{
	const char *path, *id, *to, *rel;
	char real[PATH_MAX], vol[PATH_MAX], dest[PATH_MAX];
	struct vss_fs_cred buf;
	const struct vss_fs_cred *cred = svc_caller_cred(who, &buf);
	struct place *p = NULL;
	struct copy c = { 0 };
	size_t n = 0;
	bool force;
	int rc, pipefd[2];
	pid_t pid;

	if ((rc = svc_arg_str(args, "path", true, &path, err)) < 0 ||
	    (rc = svc_arg_str(args, "shadow", true, &id, err)) < 0 ||
	    (rc = svc_arg_str(args, "to", false, &to, err)) < 0 ||
	    (rc = svc_arg_bool(args, "force", &force, err)) < 0)
		return rc;
	if (path[0] != '/' || (to && to[0] != '/'))
		return vss_error_set(err, -EINVAL, "paths must be absolute");
	if (strlen(path) >= PATH_MAX || (to && strlen(to) >= PATH_MAX))
		return vss_error_set(err, -ENAMETOOLONG, "a path is too long");
	if (strlen(id) < 8 || strlen(id) > 36)
		return vss_error_set(err, -EINVAL, "a shadow ID, or a unique prefix of at least 8 "
				     "characters of one");
	/* The live path as the caller sees it; its parent if it is gone. */
	{
		char *seen = NULL, parent[PATH_MAX], *slash;

		if ((rc = svc_caller_path(who, path, &seen, NULL)) == 0) {
			snprintf(real, sizeof(real), "%s", seen);
		} else {
			snprintf(parent, sizeof(parent), "%s", path);
			slash = strrchr(parent, '/');
			*slash = '\0';
			if ((rc = svc_caller_path(who, parent[0] ? parent : "/", &seen, err)) < 0)
				return rc;
			snprintf(real, sizeof(real), "%s/%s", strcmp(seen, "/") ? seen : "",
				 slash + 1);
		}
		free(seen);
	}
	rc = places_of(svc, real, id, &p, &n, &rel, vol, err);
	if (rc < 0)
		return rc;
	if (n != 1) {
		places_free(p, n);
		return vss_error_set(err, n ? -EINVAL : -ENOENT, n ? "%s names more than one "
				     "shadow copy" : "no shadow copy %s of the volume that holds %s",
				     id, real);
	}
	snprintf(dest, sizeof(dest), "%s", to ? to : real);
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		places_free(p, n);
		return vss_error_set(err, -errno, "pipe: %s", strerror(errno));
	}
	pid = fork();
	if (pid == 0) {
		int lo = p[0].root < pipefd[1] ? p[0].root : pipefd[1];
		int hi = p[0].root < pipefd[1] ? pipefd[1] : p[0].root;

		/* Nothing of vssd's but the shadow's root and the answer. */
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		if (lo > 3)
			close_range(3, (unsigned int)lo - 1, 0);
		if (hi > lo + 1)
			close_range((unsigned int)lo + 1, (unsigned int)hi - 1, 0);
		close_range((unsigned int)hi + 1, ~0u, 0);
		restore_as(&c, cred, p[0].root, rel, real, dest, force);
		(void)!write(pipefd[1], &c, sizeof(c));
		_exit(0);
	}
	close(pipefd[1]);
	if (pid < 0) {
		rc = -errno;
		close(pipefd[0]);
		places_free(p, n);
		return vss_error_set(err, rc, "fork: %s", strerror(-rc));
	}
	if (read(pipefd[0], &c, sizeof(c)) != (ssize_t)sizeof(c))
		c = (struct copy){ .rc = -EIO, .msg = "the copy ended without a word" };
	close(pipefd[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	places_free(p, n);
	c.msg[sizeof(c.msg) - 1] = '\0';
	if (c.rc < 0)
		return vss_error_set(err, c.rc, "%s", c.msg);
	vss_log("shadow %s: %s restored to %s for uid %u (%llu entries)", id, real, dest,
		(unsigned int)(who ? who->uid : 0), (unsigned long long)c.files);
	*res = json_pack("{s:s, s:s, s:I, s:I}", "path", real, "to", dest,
			 "files", (json_int_t)c.files, "bytes", (json_int_t)c.bytes);
	return 0;
}
