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
 * Only versions that differ are listed.  On a volume with more than
 * MOUNT_FEW shadows (or asked: "read"), the engine's ext4 shadows not
 * exposed yet are read from their devices without a mount, by a child
 * without privileges (ext4read.h; direct_open() says which, and what is
 * mounted instead: a journal that needs recovery, xfs, ...); what neither
 * way can read is said in "unreadable", never compared as if it matched.
 *
 * Copying back: a child process takes the caller's groups, gid and uid
 * (root stays root), opens the version beneath the shadow's root as the
 * caller, and writes the copy as the caller: a file beside its target,
 * then renamed over it; a directory entry by entry, descriptors only, no
 * symlink followed on either side.  Modes, owners (as far as the caller
 * may give them), times and extended attributes go with each entry.  An
 * existing target is replaced only with force.  For root, a version a
 * listing would read directly (direct_open(), the reader's probe) is
 * read from the direct reader instead of a mount: the same child copies
 * it from the reader's frames (ext4read.h), checked one by one and in
 * their order (stream_*()), with the same rules and result.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <vss/cow.h>

#include "provider/provider.h"
#include "service/args.h"
#include "service/caller.h"
#include "service/ext4read.h"
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

/* How a listing reads the engine's shadows (the request's "read"). */
enum read_how {
	READ_AUTO,              /* directly when the volume has more than MOUNT_FEW */
	READ_MOUNT,             /* every shadow through a mount, as before */
	READ_DIRECT,            /* every ext4 shadow not mounted yet directly */
};

/* The request's "read" (absent: auto). */
static int read_how_of(const char *read, enum read_how *how, struct vss_error *err)
{
	*how = READ_AUTO;
	if (!read || strcmp(read, "auto") == 0)
		return 0;
	if (strcmp(read, "mount") == 0)
		*how = READ_MOUNT;
	else if (strcmp(read, "direct") == 0)
		*how = READ_DIRECT;
	else
		return vss_error_set(err, -EINVAL, "argument \"read\" must be auto, mount or "
				     "direct");
	return 0;
}

#define MOUNT_FEW 8             /* shadows a listing mounts rather than reads */
#define DIGEST_EAGER (1u << 20) /* a file's digest taken with its inode up to this
				 * size, a few blocks more: not asked again */

/* One shadow to look in, made while svc->lock is held. */
struct place {
	char id[37], set[37];
	const char *provider;
	uint64_t created_ns;
	int root;                       /* O_PATH of the shadow's root, or -1 */
	int dev;                        /* its device, read directly (ext4read.h), or -1 */
	struct svc_ext4_info info;      /* what the reader found there (dev >= 0) */
	bool same;                      /* reads as a newer place does (same_device()) */
};

/*
 * The shadows of the volume or subvolume that holds @real, newest first
 * (svc->lock held): their IDs, roots not open yet (only those whose ID
 * begins with @only, if given; *@total: how many there are in all);
 * *@rel: @real below it, @vol its name.  -ENOENT if no volume or shadowed subvolume holds it.
 */
static int places_find(struct vss_service *svc, const char *real, const char *only,
		       struct place **out, size_t *n, size_t *total, const char **rel,
		       char vol[PATH_MAX], struct vss_error *err)
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
	*total = count;
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
		p[k].dev = -1;
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

static void places_free(struct place *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i].root >= 0)
			close(p[i].root);
		if (p[i].dev >= 0)
			close(p[i].dev);
	}
	free(p);
}

/*
 * Whether the listing reads @p's shadow directly (ext4read.h) rather than
 * through a mount: only the engine's shadows (a device vssd serves), not
 * one exposed already (its mount costs nothing more), and, unless asked
 * for, only on a volume with more than MOUNT_FEW shadows (fewer cost
 * little to mount, and stay mounted for later listings and copies back).
 * If so, *@dev: its device, open for reading.  svc->lock held.
 */
static bool direct_open(struct vss_service *svc, const struct place *p, enum read_how how,
			size_t count, int *dev)
{
	struct svc_shadow *sh = svc_shadow_find(svc, p->id);
	char path[PATH_MAX];

	svc_assert_locked(svc);
	*dev = -1;
	if (!sh || !sh->vol || sh->expose_dir || how == READ_MOUNT ||
	    (how == READ_AUTO && count <= MOUNT_FEW))
		return false;
	sh->prov->location(svc, sh, path, sizeof(path));
	*dev = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (*dev < 0)
		vss_log("versions: shadow %s: %s: %s; read through a mount", sh->rec.id, path,
			strerror(errno));
	return *dev >= 0;
}

static void unreadable(json_t *errs, const char *id, const char *why)
{
	vss_log("versions: shadow %s cannot be read: %s", id, why);
	if (errs)
		json_array_append_new(errs, json_pack("{s:s, s:s}", "shadow", id, "error", why));
}

/* Reads @p directly: 1 if done (p->dev, p->info), 0 if it is to be
 * mounted instead, -1 if it cannot be read (in @errs). */
static int direct_read(struct svc_ext4_reader *rd, struct place *p, int dev, json_t *errs)
{
	struct vss_error e;
	char why[700];

	if (svc_ext4_reader_read(rd, dev, DIGEST_EAGER, &p->info, &e) < 0) {
		snprintf(why, sizeof(why), "reading its ext4 filesystem failed: %s", e.msg);
		unreadable(errs, p->id, why);
		close(dev);
		return -1;
	}
	if (p->info.status == SVC_EXT4_MOUNT) {
		vss_log("versions: shadow %s read through a mount: %s", p->id, p->info.msg);
		close(dev);
		return 0;
	}
	if (p->info.status == SVC_EXT4_BAD) {
		snprintf(why, sizeof(why), "its ext4 filesystem is damaged: %s", p->info.msg);
		unreadable(errs, p->id, why);
		close(dev);
		return -1;
	}
	p->dev = dev;
	return 1;
}

/* places_find(), then each place read, taking svc->lock for each, newest
 * first: a shadow the same as the newest one read so far is passed over;
 * else read directly (direct_open()) or its root opened (mounted).  With
 * @rd, what cannot be read goes into @errs. */
static int places_of(struct vss_service *svc, const char *real, const char *only,
		     enum read_how how, struct svc_ext4_reader **rd, json_t *errs,
		     struct place **out, size_t *n, const char **rel, char vol[PATH_MAX],
		     struct vss_error *err)
{
	size_t k = 0, ref = 0, count = 0, total = 0;
	bool have_ref = false;
	int rc;

	*out = NULL;
	*n = 0;
	svc_lock(svc);
	rc = places_find(svc, real, only, out, n, &total, rel, vol, err);
	svc_unlock(svc);
	if (rc < 0)
		return rc;
	count = *n;
	for (size_t i = 0; i < count; i++) {
		struct place *p = &(*out)[i];
		bool direct;
		int dev = -1, got = 0;

		svc_lock(svc);
		p->same = have_ref && same_device(svc, (*out)[ref].id, p->id);
		direct = !p->same && rd && direct_open(svc, p, how, total, &dev);
		svc_unlock(svc);
		if (direct) {
			if (!*rd && svc_ext4_reader_new(*rel, rd, err) < 0) {
				close(dev);
				places_free(*out, k);
				*out = NULL;
				*n = 0;
				return -ENOMEM;
			}
			got = direct_read(*rd, p, dev, errs);
		}
		if (!p->same && got == 0) {
			svc_lock(svc);
			p->root = place_open(svc, p);
			svc_unlock(svc);
		}
		if (p->root >= 0 || p->dev >= 0) {
			ref = k;
			have_ref = true;
		}
		if (p->root >= 0 || p->dev >= 0 || p->same)
			(*out)[k++] = *p;
	}
	*n = k;
	return 0;
}

/* ---- comparing ---- */

/* A directory's entries (names, types, sizes, modification times) in one
 * number (svc_dirsig(), as the direct reader computes it); 0 if it
 * cannot be read. */
static uint64_t dir_sig(int fd)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct svc_dirent_sig *e = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	uint64_t h;

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
			struct svc_dirent_sig *g = realloc(e, (cap = cap ? cap * 2 : 64) *
							   sizeof(*g));

			if (!g)
				break;
			e = g;
		}
		e[n] = (struct svc_dirent_sig){ strdup(de->d_name), st.st_mode & S_IFMT,
						S_ISDIR(st.st_mode) ? 0 : st.st_size,
						st.st_mtim.tv_sec, st.st_mtim.tv_nsec };
		if (!e[n].name)
			break;
		n++;
	}
	closedir(d);
	h = svc_dirsig(e, n);
	for (size_t i = 0; i < n; i++)
		free(e[i].name);
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

/* SHA-256 of the @size bytes of @fd (as the direct reader digests). */
static int fd_digest(int fd, off_t size, unsigned char out[SVC_EXT4_DIGEST_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char *buf = malloc(CHUNK);
	unsigned int len = 0;
	off_t off = 0;
	int rc = -ENOMEM;

	if (md && buf && EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		rc = 0;
		while (off < size) {
			ssize_t n = pread(fd, buf, (size_t)(size - off < (off_t)CHUNK ? size - off
							    : (off_t)CHUNK), off);

			if (n <= 0) {
				rc = n < 0 ? -errno : -EIO;
				break;
			}
			EVP_DigestUpdate(md, buf, (size_t)n);
			off += n;
		}
		if (!rc && (!EVP_DigestFinal_ex(md, out, &len) || len != SVC_EXT4_DIGEST_LEN))
			rc = -EIO;
	}
	free(buf);
	EVP_MD_CTX_free(md);
	return rc;
}

/*
 * One version as the comparison sees it: open (the live file, or the file
 * in a mounted shadow: fd), or read directly (p, its device p->dev).  A
 * digest is taken only when sizes match and times do not.
 */
struct ver {
	struct stat st;
	int fd;                         /* or -1 */
	struct place *p;                /* read directly (fd < 0), or NULL */
	bool have_digest;
	unsigned char digest[SVC_EXT4_DIGEST_LEN];
};

static void ver_of_info(struct ver *v, struct place *p)
{
	memset(v, 0, sizeof(*v));
	v->fd = -1;
	v->p = p;
	v->st.st_mode = p->info.mode;
	v->st.st_uid = p->info.uid;
	v->st.st_gid = p->info.gid;
	v->st.st_size = (off_t)p->info.size;
	v->st.st_mtim.tv_sec = (time_t)p->info.mtime_sec;
	v->st.st_mtim.tv_nsec = p->info.mtime_nsec;
	v->have_digest = p->info.has_digest;
	memcpy(v->digest, p->info.digest, sizeof(v->digest));
}

/* Turns @v, read directly, into one open through a mount of its shadow
 * (the reader failed it): 0, or -1 if that cannot be either. */
static int ver_mount(struct vss_service *svc, struct ver *v, const char *rel)
{
	struct stat st;
	int fd;

	if (v->p->root < 0) {
		svc_lock(svc);
		v->p->root = place_open(svc, v->p);
		svc_unlock(svc);
	}
	if (v->p->root < 0)
		return -1;
	fd = open_beneath(v->p->root, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0 || (st.st_mode & S_IFMT) != (v->st.st_mode & S_IFMT) ||
	    st.st_size != v->st.st_size) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	v->fd = fd;
	return 0;
}

static int ver_digest(struct vss_service *svc, struct svc_ext4_reader *rd, struct ver *v,
		      const char *rel, json_t *errs)
{
	struct svc_ext4_info info;
	struct vss_error e;

	if (v->have_digest)
		return 0;
	if (v->fd < 0 && rd) {
		if (svc_ext4_reader_read(rd, v->p->dev, SVC_EXT4_DIGEST_ALL, &info, &e) == 0 &&
		    info.status == SVC_EXT4_FOUND && info.has_digest && info.mode == v->p->info.mode &&
		    info.size == v->p->info.size) {
			memcpy(v->digest, info.digest, sizeof(v->digest));
			v->have_digest = true;
			return 0;
		}
		if (errs)
			vss_log("versions: shadow %s: its file's bytes cannot be read directly (%s); "
				"read through a mount", v->p->id, info.status == SVC_EXT4_FOUND ?
				e.msg : info.msg);
	}
	if (v->fd < 0 && ver_mount(svc, v, rel) < 0)
		return -1;
	if (fd_digest(v->fd, v->st.st_size, v->digest) < 0)
		return -1;
	v->have_digest = true;
	return 0;
}

/* Whether the versions @a and @b hold the same content; -1 if that cannot
 * be told (the older, @a, cannot be read). */
static int same_content(struct vss_service *svc, struct svc_ext4_reader *rd, const char *rel,
			struct ver *a, struct ver *b, json_t *errs)
{
	const struct stat *sa = &a->st, *sb = &b->st;

	if ((sa->st_mode & S_IFMT) != (sb->st_mode & S_IFMT))
		return 0;
	if (S_ISDIR(sa->st_mode))
		return (a->fd >= 0 ? dir_sig(a->fd) : a->p->info.dirsig) ==
		       (b->fd >= 0 ? dir_sig(b->fd) : b->p->info.dirsig);
	if (sa->st_size != sb->st_size)
		return 0;
	if (sa->st_mtim.tv_sec == sb->st_mtim.tv_sec && sa->st_mtim.tv_nsec == sb->st_mtim.tv_nsec)
		return 1;
	if (!S_ISREG(sa->st_mode))
		return 0;
	if (a->fd >= 0 && b->fd >= 0)
		return same_bytes(a->fd, b->fd, sa->st_size);
	if (ver_digest(svc, rd, b, rel, errs) < 0)
		return 0;       /* the newer cannot be read again: the older stands */
	if (ver_digest(svc, rd, a, rel, errs) < 0)
		return -1;
	return memcmp(a->digest, b->digest, sizeof(a->digest)) == 0;
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
	struct svc_ext4_reader *rd = NULL;
	struct place *p = NULL;
	struct ver newer = { .fd = -1 };
	const char *path, *rel, *read = NULL;
	enum read_how how = READ_AUTO;
	struct vss_error first;
	json_t *arr, *errs;
	size_t n = 0;
	int rc, live = -1;

	if ((rc = svc_arg_str(args, "path", true, &path, err)) < 0 ||
	    (rc = svc_arg_str(args, "read", false, &read, err)) < 0)
		return rc;
	if (strlen(path) >= PATH_MAX)
		return vss_error_set(err, -ENAMETOOLONG, "the path is too long");
	if ((rc = read_how_of(read, &how, err)) < 0)
		return rc;
	if ((rc = open_live(who, path, &live, real, &first)) < 0) {
		/* Gone now: compared with nothing, its newest version is one. */
		if (rc != -ENOENT || gone(who, path, real, err) < 0) {
			*err = first;
			return rc;
		}
	}
	errs = json_array();
	rc = places_of(svc, real, NULL, how, &rd, errs, &p, &n, &rel, vol, err);
	if (rc < 0 || (live >= 0 && fstat(live, &newer.st) < 0)) {
		if (live >= 0)
			close(live);
		json_decref(errs);
		svc_ext4_reader_free(rd);
		places_free(p, n);
		return rc < 0 ? rc : vss_error_set(err, -errno, "%s: %s", real, strerror(errno));
	}
	arr = json_array();
	newer.fd = live;
	for (size_t i = 0; i < n; i++) {
		struct ver v = { .fd = -1 };
		int same;

		if (p[i].same)
			continue;       /* what a newer one holds, compared already */
		if (p[i].dev >= 0) {
			if (p[i].info.status != SVC_EXT4_FOUND)
				continue;       /* not there then */
			ver_of_info(&v, &p[i]);
		} else {
			v.fd = open_beneath(p[i].root, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
			if (v.fd < 0)
				continue;       /* not there then */
			if (fstat(v.fd, &v.st) < 0) {
				close(v.fd);
				continue;
			}
		}
		same = newer.fd >= 0 || newer.p ? same_content(svc, rd, rel, &v, &newer, errs) : 0;
		if (same) {
			/* The same content: the newer one stands for both. */
			if (same < 0)
				unreadable(errs, p[i].id, "its file's bytes could be read neither "
					   "directly nor through a mount");
			if (v.fd >= 0)
				close(v.fd);
			continue;
		}
		json_array_append_new(arr, version_json(&p[i], &v.st));
		if (newer.fd >= 0)
			close(newer.fd);
		newer = v;
	}
	if (newer.fd >= 0)
		close(newer.fd);
	svc_ext4_reader_free(rd);
	places_free(p, n);
	*res = json_pack("{s:s, s:s, s:o, s:b, s:o}", "path", real, "volume", vol,
			 "versions", arr, "exists", live >= 0, "unreadable", errs);
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

/* A file beside @name in @pfd to write the copy into: its descriptor
 * (its name in @tmp), or fail(). */
static int temp_create(struct copy *c, int pfd, const char *name, char tmp[64])
{
	int out;

	snprintf(tmp, 64, ".vss-restore.%d.%llu", (int)getpid(), (unsigned long long)c->files);
	out = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	return out < 0 ? fail(c, -errno, "cannot create beside", name) : out;
}

/* @out, written, closed and renamed from @tmp over @name. */
static int temp_put(struct copy *c, int pfd, const char *tmp, const char *name, int out)
{
	int rc;

	if (close(out) < 0 || renameat(pfd, tmp, pfd, name) < 0) {
		rc = -errno;
		unlinkat(pfd, tmp, 0);
		return fail(c, rc, "cannot put in place", name);
	}
	c->files++;
	return 0;
}

static int copy_file(struct copy *c, int src, const struct stat *st, int pfd, const char *name)
{
	char tmp[64];
	int out, rc;

	if ((out = temp_create(c, pfd, name, tmp)) < 0)
		return out;
	if ((rc = copy_bytes(src, out, st->st_size, &c->bytes)) < 0) {
		close(out);
		unlinkat(pfd, tmp, 0);
		return fail(c, rc, "cannot copy", name);
	}
	copy_meta(src, out, st);
	return temp_put(c, pfd, tmp, name, out);
}

/* The directory @name in @pfd, made (mode 0700 until its own is set) if
 * it is not there, open; or fail(). */
static int dir_make(struct copy *c, int pfd, const char *name, int depth)
{
	int dfd;

	if (depth > 256)
		return fail(c, -ELOOP, "too deep at", name);
	if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
		return fail(c, -errno, "cannot make", name);
	dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return dfd < 0 ? fail(c, -errno, "cannot open", name) : dfd;
}

static int copy_dir(struct copy *c, int src, const struct stat *st, int pfd, const char *name,
		    bool force, int depth)
{
	int dfd, sdup;
	DIR *d;
	struct dirent *de;

	if ((dfd = dir_make(c, pfd, name, depth)) < 0)
		return dfd;
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

/* ---- copying back from the direct reader's frames (ext4read.h) ---- */

#define XATTRS_MAX 1024                 /* on one entry */
#define XATTR_BYTES_MAX (4u << 20)      /* their names and values, on one entry */

/* The frames of one version as they come, checked: the current one in f
 * (its name and data in buf, until the next). */
struct stream {
	int sock;
	uint32_t seq;
	int limit_ms;
	unsigned char *buf;             /* SVC_EXT4_FRAME_MAX + 1 */
	struct svc_ext4_frame f;
	int depth;
};

static int stream_fail(struct copy *c, int rc, const char *why)
{
	if (!c->rc) {
		c->rc = rc;
		snprintf(c->msg, sizeof(c->msg), "reading the version directly: %.400s", why);
	}
	return c->rc;
}

/* The next frame into s->f: 0, or the copy's failure.  An END that says
 * the reader failed is the copy's failure too, with what it said. */
static int stream_next(struct copy *c, struct stream *s)
{
	struct pollfd pfd = { .fd = s->sock, .events = POLLIN };
	ssize_t n;
	int rc;

	while ((rc = poll(&pfd, 1, s->limit_ms)) < 0 && errno == EINTR)
		;
	if (rc == 0)
		return stream_fail(c, -ETIMEDOUT, "its reader took too long");
	n = rc < 0 ? -1 : recv(s->sock, s->buf, SVC_EXT4_FRAME_MAX + 1, MSG_DONTWAIT | MSG_TRUNC);
	if (n <= 0)
		return stream_fail(c, -EIO, "its reader died");
	if (svc_ext4_frame_parse(s->buf, (size_t)n, s->seq, &s->f) < 0)
		return stream_fail(c, -EPROTO, "its reader sent what does not parse");
	if (s->f.kind == SVC_EXT4_END && s->f.status != SVC_EXT4_FOUND) {
		char why[400];

		snprintf(why, sizeof(why), "%s: %s", s->f.status == SVC_EXT4_BAD
			 ? "its ext4 filesystem is damaged" : "it cannot be read here",
			 s->f.msg);
		return stream_fail(c, s->f.status == SVC_EXT4_BAD ? -EIO : -EAGAIN, why);
	}
	return 0;
}

/* An entry's extended attributes, kept until they are set. */
struct xattr_list {
	size_t n, bytes;
	char *name[XATTRS_MAX];
	unsigned char *value[XATTRS_MAX];
	size_t len[XATTRS_MAX];
};

static void xattrs_free(struct xattr_list *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->name[i]);
		free(x->value[i]);
	}
	x->n = 0;
}

/* The XATTR frames after an entry, into @x; s->f: the frame after them. */
static int stream_xattrs(struct copy *c, struct stream *s, struct xattr_list *x)
{
	int rc;

	while (!(rc = stream_next(c, s)) && s->f.kind == SVC_EXT4_XATTR) {
		size_t i = x->n;

		x->bytes += s->f.name_len + s->f.data_len;
		if (i == XATTRS_MAX || x->bytes > XATTR_BYTES_MAX)
			return stream_fail(c, -E2BIG, "too many extended attributes on one entry");
		x->name[i] = strndup((const char *)s->f.name, s->f.name_len);
		x->value[i] = malloc(s->f.data_len ? s->f.data_len : 1);
		if (!x->name[i] || !x->value[i]) {
			free(x->name[i]);
			free(x->value[i]);
			return stream_fail(c, -ENOMEM, "out of memory");
		}
		memcpy(x->value[i], s->f.data, s->f.data_len);
		x->len[i] = s->f.data_len;
		x->n++;
	}
	return rc;
}

/* What copy_meta() does from an open version, from the frames. */
static void stream_meta(int fd, const struct svc_ext4_frame *e, const struct xattr_list *x)
{
	(void)!fchown(fd, e->uid, e->gid);
	(void)!fchmod(fd, e->mode & 07777);
	/* What the caller may not set (trusted., security.) is left out. */
	for (size_t i = 0; i < x->n; i++)
		(void)!fsetxattr(fd, x->name[i], x->value[i], x->len[i], 0);
	futimens(fd, (struct timespec[]){ { e->atime_sec, e->atime_nsec },
					  { e->mtime_sec, e->mtime_nsec } });
}

static int stream_entry(struct copy *c, struct stream *s, int pfd, const char *name, bool force);

/* A file's DATA into a file beside @name, renamed over it (copy_file()). */
static int stream_file(struct copy *c, struct stream *s, const struct svc_ext4_frame *e,
		       const struct xattr_list *x, int pfd, const char *name)
{
	uint64_t off = 0;
	char tmp[64];
	int out, rc = 0;

	if ((out = temp_create(c, pfd, name, tmp)) < 0)
		return out;
	/* s->f: the frame after the xattrs: DATA until the size is reached. */
	while (off < e->size) {
		if (s->f.kind != SVC_EXT4_DATA || s->f.data_len > e->size - off) {
			rc = stream_fail(c, -EPROTO, "its reader sent a file's bytes wrong");
			break;
		}
		for (size_t put = 0; put < s->f.data_len;) {
			ssize_t w = pwrite(out, s->f.data + put, s->f.data_len - put,
					   (off_t)(off + put));

			if (w <= 0) {
				rc = fail(c, w < 0 ? -errno : -EIO, "cannot copy", name);
				break;
			}
			put += (size_t)w;
		}
		if (rc < 0)
			break;
		off += s->f.data_len;
		c->bytes += s->f.data_len;
		if ((rc = stream_next(c, s)) < 0)
			break;
	}
	if (rc < 0) {
		close(out);
		unlinkat(pfd, tmp, 0);
		return rc;
	}
	stream_meta(out, e, x);
	return temp_put(c, pfd, tmp, name, out);
}

/* A directory's entries until its POP (copy_dir()); s->f: after the POP. */
static int stream_dir(struct copy *c, struct stream *s, const struct svc_ext4_frame *e,
		      const struct xattr_list *x, int pfd, const char *name, bool force)
{
	int dfd, rc = 0;

	if ((dfd = dir_make(c, pfd, name, s->depth)) < 0)
		return dfd;
	s->depth++;
	while (!rc && s->f.kind == SVC_EXT4_ENTRY) {
		char child[256];

		if (!s->f.name_len) {
			rc = stream_fail(c, -EPROTO, "its reader sent an entry without a name");
			break;
		}
		memcpy(child, s->f.name, s->f.name_len);
		child[s->f.name_len] = '\0';
		rc = stream_entry(c, s, dfd, child, force);
	}
	if (!rc && s->f.kind != SVC_EXT4_POP)
		rc = stream_fail(c, -EPROTO, "its reader sent a directory wrong");
	if (!rc) {
		stream_meta(dfd, e, x);
		c->files++;
		rc = stream_next(c, s);
	}
	close(dfd);
	s->depth--;
	return rc;
}

/* The entry in s->f, with all its frames, as @name in @pfd: s->f is the
 * frame after them on return. */
static int stream_entry(struct copy *c, struct stream *s, int pfd, const char *name, bool force)
{
	struct svc_ext4_frame e = s->f;
	struct xattr_list *x = calloc(1, sizeof(*x));
	char target[SVC_EXT4_LINK_MAX + 1];
	int rc;

	if (!x)
		return stream_fail(c, -ENOMEM, "out of memory");
	if (S_ISLNK(e.mode)) {
		memcpy(target, e.data, e.data_len);
		target[e.data_len] = '\0';
	}
	e.name = e.data = NULL;
	if ((rc = stream_xattrs(c, s, x)) < 0)
		goto out;
	if (S_ISREG(e.mode)) {
		rc = stream_file(c, s, &e, x, pfd, name);
	} else if (S_ISDIR(e.mode)) {
		rc = stream_dir(c, s, &e, x, pfd, name, force);
	} else {
		/* A symlink, as copy_dir() makes one. */
		if (force)
			unlinkat(pfd, name, 0);
		if (symlinkat(target, pfd, name) < 0) {
			rc = fail(c, -errno, "cannot make the symlink", name);
			goto out;
		}
		(void)!fchownat(pfd, name, e.uid, e.gid, AT_SYMLINK_NOFOLLOW);
		utimensat(pfd, name, (struct timespec[]){ { e.atime_sec, e.atime_nsec },
							  { e.mtime_sec, e.mtime_nsec } },
			  AT_SYMLINK_NOFOLLOW);
		c->files++;
	}
out:
	xattrs_free(x);
	free(x);
	return rc;
}

/* Where the copy goes: @dest's parent open in *@pfd, its last name in
 * *@base; -EEXIST (said) if it exists and @force is not given. */
static int dest_open(struct copy *c, const char *dest, const struct stat *st, bool force,
		     int *pfd, char base[NAME_MAX + 1])
{
	char parent[PATH_MAX];
	struct stat dst;
	char *slash;

	snprintf(parent, sizeof(parent), "%s", dest);
	slash = strrchr(parent, '/');
	snprintf(base, NAME_MAX + 1, "%s", slash + 1);
	*slash = '\0';
	*pfd = open(parent[0] ? parent : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*pfd < 0)
		return fail(c, -errno, "cannot reach", parent[0] ? parent : "/");
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return fail(c, -EINVAL, "not a place to restore to:", dest);
	if (fstatat(*pfd, base, &dst, AT_SYMLINK_NOFOLLOW) == 0 && !force) {
		bool newer = dst.st_mtim.tv_sec > st->st_mtim.tv_sec ||
			     (dst.st_mtim.tv_sec == st->st_mtim.tv_sec &&
			      dst.st_mtim.tv_nsec > st->st_mtim.tv_nsec);

		c->rc = -EEXIST;
		snprintf(c->msg, sizeof(c->msg), "%.400s exists%s: not replaced without --force",
			 dest, newer ? " and is newer than that version" : "");
		return c->rc;
	}
	return 0;
}

/* The child's work: as the caller from here on.  The version is read
 * beneath @root (a mount) or, with @s, from the direct reader's frames. */
static void restore_as(struct copy *c, const struct vss_fs_cred *cred, int root, const char *rel,
		       const char *live, const char *dest, bool force, struct stream *s)
{
	char base[NAME_MAX + 1];
	struct stat st = { 0 };
	int src = -1, pfd = -1, lfd;

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
	if (s) {
		/* The path's own ENTRY first (its name empty), or why not. */
		if (stream_next(c, s) < 0)
			return;
		if (s->f.kind == SVC_EXT4_END || s->f.kind != SVC_EXT4_ENTRY || s->f.name_len ||
		    S_ISLNK(s->f.mode)) {
			stream_fail(c, -EPROTO, "its reader did not send the version");
			return;
		}
		st.st_mtim = (struct timespec){ s->f.mtime_sec, s->f.mtime_nsec };
	} else {
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
	}
	if (dest_open(c, dest, &st, force, &pfd, base) == 0) {
		if (!s)
			copy_entry(c, src, &st, pfd, base, force, 0);
		else if (stream_entry(c, s, pfd, base, force) == 0 &&
			 (s->f.kind != SVC_EXT4_END || s->f.status != SVC_EXT4_FOUND))
			stream_fail(c, -EPROTO, "its reader sent more than the version");
	}
	if (pfd >= 0)
		close(pfd);
	if (src >= 0)
		close(src);
}

/* Closes every descriptor from 3 but @a and @b. */
static void close_all_but(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

	if (lo > 3)
		close_range(3, (unsigned int)lo - 1, 0);
	if (hi > lo + 1)
		close_range((unsigned int)lo + 1, (unsigned int)hi - 1, 0);
	close_range((unsigned int)hi + 1, ~0u, 0);
}

int svc_op_shadow_restore_version(struct vss_service *svc, const struct svc_caller *who,
				  json_t *args, json_t **res, struct vss_error *err)
{
	const char *path, *id, *to, *rel, *read_arg = NULL;
	char real[PATH_MAX], vol[PATH_MAX], dest[PATH_MAX];
	struct vss_fs_cred buf;
	const struct vss_fs_cred *cred = svc_caller_cred(who, &buf);
	struct svc_ext4_reader *rd = NULL;
	struct stream st = { .sock = -1 };
	struct place *p = NULL;
	struct copy c = { 0 };
	enum read_how how = READ_AUTO;
	json_t *errs = NULL;
	size_t n = 0;
	bool force, direct;
	int rc, pipefd[2];
	pid_t pid;

	if ((rc = svc_arg_str(args, "path", true, &path, err)) < 0 ||
	    (rc = svc_arg_str(args, "shadow", true, &id, err)) < 0 ||
	    (rc = svc_arg_str(args, "to", false, &to, err)) < 0 ||
	    (rc = svc_arg_bool(args, "force", &force, err)) < 0 ||
	    (rc = svc_arg_str(args, "read", false, &read_arg, err)) < 0 ||
	    (rc = read_how_of(read_arg, &how, err)) < 0)
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
	/* Read directly as a listing would, but only for root: another
	 * caller's rights on the version are checked by the kernel, through
	 * a mount. */
	if (cred)
		how = READ_MOUNT;
	errs = json_array();
	rc = places_of(svc, real, id, how, how == READ_MOUNT ? NULL : &rd, errs, &p, &n, &rel,
		       vol, err);
	if (rc < 0)
		goto out;
	if (n == 1 && p[0].dev >= 0 && p[0].info.status == SVC_EXT4_FOUND &&
	    !S_ISREG(p[0].info.mode) && !S_ISDIR(p[0].info.mode)) {
		/* A fifo: the mount path says what it is not. */
		close(p[0].dev);
		p[0].dev = -1;
		svc_lock(svc);
		p[0].root = place_open(svc, &p[0]);
		svc_unlock(svc);
	}
	if (n == 1 && p[0].dev < 0 && p[0].root < 0) {
		rc = vss_error_set(err, -EIO, "shadow copy %s cannot be read", p[0].id);
		goto out;
	}
	if (n != 1) {
		json_t *u = json_array_get(errs, 0);

		if (u)
			rc = vss_error_set(err, -EIO, "shadow copy %s cannot be read: %s",
					   json_string_value(json_object_get(u, "shadow")),
					   json_string_value(json_object_get(u, "error")));
		else
			rc = vss_error_set(err, n ? -EINVAL : -ENOENT, n ? "%s names more than one "
					   "shadow copy" : "no shadow copy %s of the volume that "
					   "holds %s", id, real);
		goto out;
	}
	direct = p[0].dev >= 0;
	if (direct && p[0].info.status != SVC_EXT4_FOUND) {
		rc = vss_error_set(err, -ENOENT, "%s is not in that shadow copy", real);
		goto out;
	}
	if (direct && ((rc = svc_ext4_reader_tree(rd, p[0].dev, &st.sock, &st.seq, &st.limit_ms,
						  err)) < 0 ||
		       !(st.buf = malloc(SVC_EXT4_FRAME_MAX + 1)))) {
		rc = rc < 0 ? rc : vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	snprintf(dest, sizeof(dest), "%s", to ? to : real);
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		rc = vss_error_set(err, -errno, "pipe: %s", strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid == 0) {
		/* Nothing of vssd's but the shadow's root (or the reader's
		 * socket) and the answer. */
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		close_all_but(direct ? st.sock : p[0].root, pipefd[1]);
		restore_as(&c, cred, p[0].root, rel, real, dest, force, direct ? &st : NULL);
		(void)!write(pipefd[1], &c, sizeof(c));
		_exit(0);
	}
	close(pipefd[1]);
	if (pid < 0) {
		rc = vss_error_set(err, -errno, "fork: %s", strerror(errno));
		close(pipefd[0]);
		goto out;
	}
	if (read(pipefd[0], &c, sizeof(c)) != (ssize_t)sizeof(c))
		c = (struct copy){ .rc = -EIO, .msg = "the copy ended without a word" };
	close(pipefd[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	c.msg[sizeof(c.msg) - 1] = '\0';
	if (c.rc < 0) {
		rc = vss_error_set(err, c.rc, "%s", c.msg);
		goto out;
	}
	vss_log("shadow %s: %s restored to %s for uid %u (%llu entries, read %s)", id, real, dest,
		(unsigned int)(who ? who->uid : 0), (unsigned long long)c.files,
		direct ? "directly" : "through a mount");
	*res = json_pack("{s:s, s:s, s:I, s:I, s:s}", "path", real, "to", dest,
			 "files", (json_int_t)c.files, "bytes", (json_int_t)c.bytes,
			 "read", direct ? "direct" : "mount");
	rc = 0;
out:
	free(st.buf);
	svc_ext4_reader_free(rd);
	places_free(p, n);
	json_decref(errs);
	return rc;
}
