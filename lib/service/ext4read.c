/*
 * service/ext4read.c - a path's inode in an ext4 shadow, read with
 * libext2fs in a child without privileges (ext4read.h).
 *
 * The child: forked by vssd for one listing; closes every descriptor but
 * its end of a SOCK_SEQPACKET socket pair (standard input, output and
 * error on /dev/null), dies with its parent, sets its limits (address
 * space: what it has plus 256 MiB; CPU 60 s; 8 descriptors; no file
 * written, no core, no process made), drops every group, takes nobody's
 * gid and uid, sets no_new_privs and not dumpable, and a seccomp filter
 * that lets through only the calls reading needs (allow_only_reading())
 * before it reads a byte of a filesystem.  Then, per request (a 12-byte message: magic,
 * sequence number, whether a digest is wanted; the device's descriptor
 * passed with it, SCM_RIGHTS; the digest wanted: none, of a file up to
 * that many bytes, or of any), it opens the filesystem on that
 * descriptor (libext2fs' unixfd manager: it opens nothing by name), looks
 * the path up from the root (no symlink followed: as the mount path's
 * RESOLVE_NO_SYMLINKS, O_NOFOLLOW), closes the descriptor, and answers
 * one SVC_EXT4_MSG_LEN message.
 *
 * vssd: sends, then waits for the answer at most READ_LIMIT_MS (ext4read
 * time limit; VSS_TEST_EXT4_LIMIT_MS for tests), and kills the child if
 * it does not come; anything but one answer that parses is the child's
 * failure, never a listing.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/syscall.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "service/ext4read.h"

#define REQ_MAGIC 0x51345856u           /* "VX4Q": a path's inode */
#define TREE_MAGIC 0x54345856u          /* "VX4T": a path sent whole (frames) */
#define REQ_LEN 12
#define READ_LIMIT_MS 20000             /* one answer, a digest included */
#define CHILDREN_MAX 3                  /* per reader: then it gives up */
#define DIR_ENTRIES_MAX (1u << 20)
#define AS_EXTRA (256ull << 20)

struct svc_ext4_reader {
	char *rel;
	pid_t pid;                      /* the child, or 0 */
	int sock;                       /* vssd's end, or -1 */
	uint32_t seq;
	int started;                    /* children made so far */
	uid_t uid;
	gid_t gid;
	int limit_ms;
	char test[16];                  /* VSS_TEST_EXT4_CHILD: what the child does instead */
};

/* ---- the child ---- */

static void say(struct svc_ext4_info *out, int status, const char *fmt, const char *arg)
{
	out->status = status;
	snprintf(out->msg, sizeof(out->msg), fmt, arg ? arg : "");
}

static int read_inode(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode_large *in)
{
	memset(in, 0, sizeof(*in));
	return ext2fs_read_inode_full(fs, ino, (struct ext2_inode *)in, sizeof(*in)) ? -EIO : 0;
}

/* The kernel's reading of a time and its extra field (ext4_decode_extra_time). */
static void time_of(ext2_filsys fs, const struct ext2_inode_large *in, uint32_t base,
		    uint32_t extra, size_t extra_off, int64_t *sec, uint32_t *nsec)
{
	size_t need = extra_off + 4;

	*sec = (int32_t)base;
	*nsec = 0;
	if (EXT2_INODE_SIZE(fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&
	    (size_t)EXT2_GOOD_OLD_INODE_SIZE + in->i_extra_isize >= need &&
	    (size_t)EXT2_INODE_SIZE(fs->super) >= need) {
		*sec += (int64_t)(extra & 3u) << 32;
		*nsec = extra >> 2;
	}
}

static void mtime_of(ext2_filsys fs, const struct ext2_inode_large *in, int64_t *sec,
		     uint32_t *nsec)
{
	time_of(fs, in, in->i_mtime, in->i_mtime_extra,
		offsetof(struct ext2_inode_large, i_mtime_extra), sec, nsec);
}

struct dir_walk {
	ext2_filsys fs;
	struct svc_dirent_sig *e;
	size_t n, cap;
	int rc;
};

static int dir_entry(struct ext2_dir_entry *d, int offset, int blocksize, char *buf, void *priv)
{
	struct dir_walk *w = priv;
	int len = ext2fs_dirent_name_len(d);
	struct ext2_inode_large in;
	uint32_t nsec;
	int64_t sec;

	(void)offset;
	(void)blocksize;
	(void)buf;
	if ((len == 1 && d->name[0] == '.') || (len == 2 && d->name[0] == '.' && d->name[1] == '.'))
		return 0;
	/* What fstatat could not stat is left out, as the mount path does. */
	if (!d->inode || d->inode > w->fs->super->s_inodes_count ||
	    read_inode(w->fs, d->inode, &in) < 0)
		return 0;
	if (w->n == w->cap) {
		struct svc_dirent_sig *g;

		if (w->cap >= DIR_ENTRIES_MAX) {
			w->rc = -E2BIG;
			return DIRENT_ABORT;
		}
		g = realloc(w->e, (w->cap = w->cap ? w->cap * 2 : 64) * sizeof(*g));
		if (!g) {
			w->rc = -ENOMEM;
			return DIRENT_ABORT;
		}
		w->e = g;
	}
	mtime_of(w->fs, &in, &sec, &nsec);
	w->e[w->n] = (struct svc_dirent_sig){
		.name = strndup(d->name, (size_t)len), .type = in.i_mode & S_IFMT,
		.size = LINUX_S_ISDIR(in.i_mode) ? 0 : (int64_t)EXT2_I_SIZE(&in),
		.sec = sec, .nsec = nsec,
	};
	if (!w->e[w->n].name) {
		w->rc = -ENOMEM;
		return DIRENT_ABORT;
	}
	w->n++;
	return 0;
}

static void dir_signature(ext2_filsys fs, ext2_ino_t ino, struct svc_ext4_info *out)
{
	struct dir_walk w = { .fs = fs };
	errcode_t e = ext2fs_dir_iterate(fs, ino, 0, NULL, dir_entry, &w);

	if (e || w.rc)
		say(out, SVC_EXT4_BAD, "cannot read the directory's entries: %s",
		    w.rc ? strerror(-w.rc) : error_message(e));
	else
		out->dirsig = svc_dirsig(w.e, w.n);
	out->has_dirsig = !e && !w.rc;
	for (size_t i = 0; i < w.n; i++)
		free(w.e[i].name);
	free(w.e);
}

static void file_digest(ext2_filsys fs, ext2_ino_t ino, uint64_t size, struct svc_ext4_info *out)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *buf = malloc(1u << 16);
	ext2_file_t f = NULL;
	uint64_t done = 0;
	unsigned int len = 0;
	errcode_t e = 0;

	if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		say(out, SVC_EXT4_BAD, "out of memory%s", NULL);
		goto out;
	}
	if ((e = ext2fs_file_open(fs, ino, 0, &f))) {
		say(out, SVC_EXT4_BAD, "cannot open the file: %s", error_message(e));
		goto out;
	}
	while (done < size) {
		unsigned int got = 0;

		if ((e = ext2fs_file_read(f, buf, 1u << 16, &got)) || !got)
			break;
		EVP_DigestUpdate(md, buf, got);
		done += got;
	}
	if (e || done != size) {
		say(out, SVC_EXT4_BAD, "cannot read the file's bytes: %s",
		    e ? error_message(e) : "shorter than its size");
		goto out;
	}
	EVP_DigestFinal_ex(md, out->digest, &len);
	out->has_digest = len == SVC_EXT4_DIGEST_LEN;
out:
	if (f)
		ext2fs_file_close(f);
	free(buf);
	EVP_MD_CTX_free(md);
}

/* The filesystem on @fd, or NULL and why in @out (MOUNT or BAD). */
static ext2_filsys open_fs(int fd, struct svc_ext4_info *out)
{
	ext2_filsys fs = NULL;
	char name[16];
	errcode_t e;

	snprintf(name, sizeof(name), "%d", fd);
	e = ext2fs_open(name, EXT2_FLAG_64BITS, 0, 0, unixfd_io_manager, &fs);
	if (e == EXT2_ET_BAD_MAGIC || e == EXT2_ET_UNSUPP_FEATURE ||
	    e == EXT2_ET_RO_UNSUPP_FEATURE || e == EXT2_ET_REV_TOO_HIGH) {
		say(out, SVC_EXT4_MOUNT, "%s", error_message(e));
		return NULL;
	}
	if (e) {
		say(out, SVC_EXT4_BAD, "cannot open its filesystem: %s", error_message(e));
		return NULL;
	}
	if (ext2fs_has_feature_journal_needs_recovery(fs->super)) {
		say(out, SVC_EXT4_MOUNT, "its journal needs recovery%s", NULL);
		goto out;
	}
	/* Inline data: ext2fs_lookup() does not look into an inline directory. */
	if (ext2fs_has_feature_journal_dev(fs->super) || ext2fs_has_feature_encrypt(fs->super) ||
	    ext2fs_has_feature_casefold(fs->super) || ext2fs_has_feature_inline_data(fs->super)) {
		say(out, SVC_EXT4_MOUNT, "an external journal, encryption, casefolded names or "
		    "inline data%s", NULL);
		goto out;
	}
	return fs;
out:
	ext2fs_close_free(&fs);
	return NULL;
}

/* @rel in @fs from its root, no symlink followed: 0 and *@ino, *@in,
 * or -1 and @out's status (ABSENT or BAD) set. */
static int lookup(ext2_filsys fs, const char *rel, ext2_ino_t *ino, struct ext2_inode_large *in,
		  struct svc_ext4_info *out)
{
	char part[256];
	errcode_t e;

	*ino = EXT2_ROOT_INO;
	if (read_inode(fs, *ino, in) < 0 || !LINUX_S_ISDIR(in->i_mode)) {
		say(out, SVC_EXT4_BAD, "its root directory cannot be read%s", NULL);
		return -1;
	}
	for (const char *p = rel; *p;) {
		size_t len = strcspn(p, "/");
		ext2_ino_t next;

		if (!len) {
			p++;
			continue;
		}
		if (!LINUX_S_ISDIR(in->i_mode) || len >= sizeof(part) ||
		    (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
			out->status = SVC_EXT4_ABSENT;
			return -1;
		}
		memcpy(part, p, len);
		part[len] = '\0';
		e = ext2fs_lookup(fs, *ino, part, (int)len, NULL, &next);
		if (e == EXT2_ET_FILE_NOT_FOUND) {
			out->status = SVC_EXT4_ABSENT;
			return -1;
		}
		if (e || !next || next > fs->super->s_inodes_count || read_inode(fs, next, in) < 0) {
			say(out, SVC_EXT4_BAD, "cannot look up a name in it: %s",
			    e ? error_message(e) : "a bad inode number or inode");
			return -1;
		}
		if (!in->i_links_count) {
			say(out, SVC_EXT4_BAD, "a name in it leads to an unused inode%s", NULL);
			return -1;
		}
		*ino = next;
		p += len;
		/* A symlink, on the way or at the end, is not followed. */
		if (LINUX_S_ISLNK(in->i_mode)) {
			out->status = SVC_EXT4_ABSENT;
			return -1;
		}
	}
	return 0;
}

/* @rel in the filesystem on @fd; a file's digest if it has at most
 * @digest bytes. */
static void probe(int fd, const char *rel, uint32_t digest, struct svc_ext4_info *out)
{
	struct ext2_inode_large in;
	ext2_ino_t ino;
	ext2_filsys fs = open_fs(fd, out);
	uint32_t type;

	if (!fs || lookup(fs, rel, &ino, &in, out) < 0)
		goto out;
	type = in.i_mode & S_IFMT;
	if (type != S_IFREG && type != S_IFDIR && type != S_IFIFO) {
		/* Devices and sockets do not open on a nodev mount either. */
		out->status = SVC_EXT4_ABSENT;
		goto out;
	}
	out->status = SVC_EXT4_FOUND;
	out->mode = in.i_mode;
	out->uid = inode_uid(in);
	out->gid = inode_gid(in);
	out->size = EXT2_I_SIZE(&in);
	mtime_of(fs, &in, &out->mtime_sec, &out->mtime_nsec);
	if (out->size > (uint64_t)INT64_MAX || out->mtime_nsec >= 1000000000u) {
		say(out, SVC_EXT4_BAD, "its inode's size or time is out of range%s", NULL);
		goto out;
	}
	if (type == S_IFDIR)
		dir_signature(fs, ino, out);
	else if (type == S_IFREG && digest != SVC_EXT4_DIGEST_NONE &&
		 (digest == SVC_EXT4_DIGEST_ALL || out->size <= digest))
		file_digest(fs, ino, out->size, out);
out:
	if (fs)
		ext2fs_close_free(&fs);
}

/* ---- a version sent whole (ext4read.h: the frames) ---- */

#define TREE_DEPTH_MAX 256              /* as the mount path's copy */

struct tree {
	ext2_filsys fs;
	uint32_t seq;
	unsigned char *buf;             /* SVC_EXT4_FRAME_MAX */
	unsigned char *data;            /* SVC_EXT4_DATA_MAX */
	struct svc_ext4_info why;       /* status and msg of a failure */
	struct ext2_xattr_handle *xattrs;       /* the entry's, while sent */
	int depth;
};

static int tree_fail(struct tree *t, const char *fmt, const char *arg)
{
	if (t->why.status == SVC_EXT4_FOUND)
		say(&t->why, SVC_EXT4_BAD, fmt, arg);
	return -1;
}

static int tree_send(struct tree *t, const struct svc_ext4_frame *f)
{
	size_t n = svc_ext4_frame_encode(f, t->seq, t->buf);

	if (!n)
		return tree_fail(t, "a frame too large%s", NULL);
	if (send(3, t->buf, n, MSG_NOSIGNAL) != (ssize_t)n)
		_exit(124);     /* vssd is gone: nobody to tell */
	return 0;
}

static int xattr_one(char *name, char *value, size_t value_len, void *priv)
{
	struct tree *t = priv;
	size_t n = strlen(name);
	void *acl = NULL;
	size_t acl_len = 0;
	struct svc_ext4_frame f = { .kind = SVC_EXT4_XATTR, .name = (unsigned char *)name,
				    .name_len = n };
	int rc;

	/* Inline data's own attribute is not one the kernel lists. */
	if (strcmp(name, "system.data") == 0)
		return 0;
	/* POSIX ACLs: iterating gives ext4's own form; ext2fs_xattr_get()
	 * converts them to the one the kernel lists and takes. */
	if (strcmp(name, "system.posix_acl_access") == 0 ||
	    strcmp(name, "system.posix_acl_default") == 0) {
		if (ext2fs_xattr_get(t->xattrs, name, &acl, &acl_len)) {
			tree_fail(t, "cannot read a POSIX ACL%s", NULL);
			return XATTR_ABORT;
		}
		value = acl;
		value_len = acl_len;
	}
	f.data = (unsigned char *)value;
	f.data_len = f.size = value_len;
	if (!n || n > SVC_EXT4_XATTR_NAME_MAX || value_len > SVC_EXT4_XATTR_VALUE_MAX)
		rc = tree_fail(t, "an extended attribute out of range%s", NULL);
	else
		rc = tree_send(t, &f);
	if (acl)
		ext2fs_free_mem(&acl);
	return rc < 0 ? XATTR_ABORT : 0;
}

static int send_xattrs(struct tree *t, ext2_ino_t ino)
{
	errcode_t e = ext2fs_xattrs_open(t->fs, ino, &t->xattrs);

	if (!e)
		e = ext2fs_xattrs_read(t->xattrs);
	if (!e)
		e = ext2fs_xattrs_iterate(t->xattrs, xattr_one, t);
	if (t->xattrs)
		ext2fs_xattrs_close(&t->xattrs);
	t->xattrs = NULL;
	if (t->why.status != SVC_EXT4_FOUND)
		return -1;
	return e ? tree_fail(t, "cannot read extended attributes: %s", error_message(e)) : 0;
}

/* @size bytes of @ino: into @out (a symlink's target) or sent as DATA. */
static int send_bytes(struct tree *t, ext2_ino_t ino, uint64_t size, unsigned char *out)
{
	ext2_file_t file = NULL;
	uint64_t done = 0;
	errcode_t e;

	if ((e = ext2fs_file_open(t->fs, ino, 0, &file)))
		return tree_fail(t, "cannot open a file: %s", error_message(e));
	while (!e && done < size) {
		unsigned int want = size - done < SVC_EXT4_DATA_MAX ? (unsigned int)(size - done)
								    : SVC_EXT4_DATA_MAX;
		unsigned int got = 0;
		struct svc_ext4_frame f = { .kind = SVC_EXT4_DATA };

		if ((e = ext2fs_file_read(file, out ? out + done : t->data, want, &got)) || !got)
			break;
		f.data = t->data;
		f.data_len = got;
		f.size = got;
		if (!out && tree_send(t, &f) < 0)
			break;
		done += got;
	}
	ext2fs_file_close(file);
	if (t->why.status != SVC_EXT4_FOUND)
		return -1;
	if (e || done != size)
		return tree_fail(t, "cannot read a file's bytes: %s",
				 e ? error_message(e) : "shorter than its size");
	return 0;
}

static int send_inode(struct tree *t, ext2_ino_t ino, const char *name, size_t len);

struct tree_dir {
	struct tree *t;
	int rc;
};

static int tree_entry(struct ext2_dir_entry *d, int offset, int blocksize, char *buf, void *priv)
{
	struct tree_dir *w = priv;
	int len = ext2fs_dirent_name_len(d);

	(void)offset;
	(void)blocksize;
	(void)buf;
	if ((len == 1 && d->name[0] == '.') || (len == 2 && d->name[0] == '.' && d->name[1] == '.'))
		return 0;
	if (!d->inode || d->inode > w->t->fs->super->s_inodes_count) {
		w->rc = tree_fail(w->t, "a directory entry with a bad inode number%s", NULL);
		return DIRENT_ABORT;
	}
	if (memchr(d->name, '/', (size_t)len) || memchr(d->name, '\0', (size_t)len)) {
		w->rc = tree_fail(w->t, "a name with '/' or NUL in it%s", NULL);
		return DIRENT_ABORT;
	}
	w->rc = send_inode(w->t, d->inode, d->name, (size_t)len);
	return w->rc < 0 ? DIRENT_ABORT : 0;
}

/* ENTRY, XATTRs, then DATA or (a directory) its entries and POP; devices,
 * fifos and sockets are not sent (the mount path leaves them out). */
static int send_inode(struct tree *t, ext2_ino_t ino, const char *name, size_t len)
{
	struct svc_ext4_frame f = { .kind = SVC_EXT4_ENTRY, .name = (const unsigned char *)name,
				    .name_len = len };
	struct ext2_inode_large in;
	unsigned char target[SVC_EXT4_LINK_MAX + 1];
	uint32_t type;

	if (read_inode(t->fs, ino, &in) < 0)
		return tree_fail(t, "cannot read an inode%s", NULL);
	if (!in.i_links_count)
		return tree_fail(t, "a name leads to an unused inode%s", NULL);
	type = in.i_mode & S_IFMT;
	if (type != S_IFREG && type != S_IFDIR && type != S_IFLNK)
		return 0;
	f.mode = in.i_mode;
	f.uid = inode_uid(in);
	f.gid = inode_gid(in);
	f.size = EXT2_I_SIZE(&in);
	time_of(t->fs, &in, in.i_atime, in.i_atime_extra,
		offsetof(struct ext2_inode_large, i_atime_extra), &f.atime_sec, &f.atime_nsec);
	mtime_of(t->fs, &in, &f.mtime_sec, &f.mtime_nsec);
	if (f.size > (uint64_t)INT64_MAX || f.atime_nsec >= 1000000000u ||
	    f.mtime_nsec >= 1000000000u)
		return tree_fail(t, "an inode's size or time is out of range%s", NULL);
	if (type == S_IFLNK) {
		if (!f.size || f.size > SVC_EXT4_LINK_MAX)
			return tree_fail(t, "a symlink's target is out of range%s", NULL);
		if (ext2fs_is_fast_symlink((struct ext2_inode *)&in))
			memcpy(target, in.i_block, (size_t)f.size);
		else if (send_bytes(t, ino, f.size, target) < 0)
			return -1;
		if (memchr(target, '\0', (size_t)f.size))
			return tree_fail(t, "a symlink's target has a NUL in it%s", NULL);
		f.data = target;
		f.data_len = (size_t)f.size;
	}
	if (type == S_IFDIR && t->depth > TREE_DEPTH_MAX)
		return tree_fail(t, "directories nested too deep%s", NULL);
	if (tree_send(t, &f) < 0 || send_xattrs(t, ino) < 0)
		return -1;
	if (type == S_IFREG)
		return send_bytes(t, ino, f.size, NULL);
	if (type == S_IFDIR) {
		struct tree_dir w = { .t = t };
		errcode_t e;

		t->depth++;
		e = ext2fs_dir_iterate(t->fs, ino, 0, NULL, tree_entry, &w);
		t->depth--;
		if (w.rc < 0)
			return -1;
		if (e)
			return tree_fail(t, "cannot read a directory's entries: %s",
					 error_message(e));
		return tree_send(t, &(struct svc_ext4_frame){ .kind = SVC_EXT4_POP });
	}
	return 0;
}

/* Sends @rel in the filesystem on @fd as frames, END last. */
static void tree(int fd, const char *rel, uint32_t seq)
{
	struct tree t = { .seq = seq };
	struct svc_ext4_frame end = { .kind = SVC_EXT4_END };
	struct ext2_inode_large in;
	ext2_ino_t ino;
	uint32_t type;

	t.buf = malloc(SVC_EXT4_FRAME_MAX);
	t.data = malloc(SVC_EXT4_DATA_MAX);
	if (!t.buf || !t.data)
		_exit(123);
	if (!(t.fs = open_fs(fd, &t.why)) || lookup(t.fs, rel, &ino, &in, &t.why) < 0)
		goto out;
	type = in.i_mode & S_IFMT;
	if (type != S_IFREG && type != S_IFDIR)
		/* A fifo or device: the mount path says what it is not. */
		say(&t.why, SVC_EXT4_MOUNT, "not a file or directory%s", NULL);
	else
		send_inode(&t, ino, "", 0);
out:
	if (t.fs)
		ext2fs_close_free(&t.fs);
	end.status = t.why.status;
	memcpy(end.msg, t.why.msg, sizeof(end.msg));
	tree_send(&t, &end);
	free(t.buf);
	free(t.data);
}

static void child_exit_on(bool failed)
{
	if (failed)
		_exit(127);
}

/*
 * The last thing the sandbox does: a seccomp filter that lets through only
 * the system calls the reader makes once it is up (strace -f of the unit
 * and system tests, plain and under ASan; doc/security.md lists them):
 *   its socket: recvmsg, sendto; the device it is handed: pread64, lseek,
 *   newfstatat and fstat, fsync (libext2fs flushes on close; nothing was
 *   written), close; ioctl answered ENOTTY without reaching the device
 *   (libext2fs asks BLKDISCARDZEROES and copes); libext2fs' safe_getenv:
 *   getuid, geteuid, getgid, getegid, prctl(PR_GET_DUMPABLE) only; uname
 *   (its block-device check); fcntl F_GETFD and F_GETFL only; memory: brk,
 *   mmap and mprotect without PROT_EXEC, munmap, mremap, madvise; futex,
 *   clock_gettime, getpid, gettid, rt_sigreturn, restart_syscall,
 *   sched_yield, sigaltstack (malloc, and the sanitizers' runtime); exit,
 *   exit_group.
 * Anything else kills the child (SIGSYS: vssd says so, child_failed()), as
 * does any call of another architecture's ABI (i386, x32).
 */
static int allow_only_reading(void)
{
#define KILL BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)
#define PASS BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define ARG(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), PASS
/* Call @nr only with its argument @i equal to @a or @b. */
#define ARG_ONE_OF(nr, i, a, b) \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 5), ARG(i), \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (a), 2, 0), \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (b), 1, 0), KILL, PASS
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		KILL,
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1),      /* x32 */
		KILL,
		ALLOW(SYS_recvmsg), ALLOW(SYS_sendto), ALLOW(SYS_pread64), ALLOW(SYS_lseek),
		ALLOW(SYS_newfstatat), ALLOW(SYS_fstat), ALLOW(SYS_fsync), ALLOW(SYS_close),
		ALLOW(SYS_getuid), ALLOW(SYS_geteuid), ALLOW(SYS_getgid), ALLOW(SYS_getegid),
		ALLOW(SYS_uname), ALLOW(SYS_brk), ALLOW(SYS_munmap), ALLOW(SYS_mremap),
		ALLOW(SYS_madvise), ALLOW(SYS_futex), ALLOW(SYS_clock_gettime),
		ALLOW(SYS_getpid), ALLOW(SYS_gettid), ALLOW(SYS_rt_sigreturn),
		ALLOW(SYS_restart_syscall), ALLOW(SYS_sched_yield), ALLOW(SYS_sigaltstack),
		ALLOW(SYS_exit),
		ALLOW(SYS_exit_group),
		/* ioctl: refused before it reaches the device. */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOTTY),
		/* mmap, mprotect: never executable memory. */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 0, 4),
		ARG(2),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
		KILL,
		PASS,
		/* fcntl: F_GETFD, F_GETFL; prctl: PR_GET_DUMPABLE. */
		ARG_ONE_OF(SYS_fcntl, 1, F_GETFD, F_GETFL),
		ARG_ONE_OF(SYS_prctl, 0, PR_GET_DUMPABLE, PR_GET_DUMPABLE),
		KILL,
	};
#undef ARG_ONE_OF
#undef ALLOW
#undef ARG
#undef PASS
#undef KILL
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

/* What the child was made, for the tests (VSS_TEST_EXT4_CHILD=whoami). */
static char whoami[SVC_EXT4_TEXT_MAX];

static void child_whoami(void)
{
	struct rlimit nofile = { 0 };

	getrlimit(RLIMIT_NOFILE, &nofile);
	snprintf(whoami, sizeof(whoami), "uid=%u gid=%u groups=%d nnp=%d dumpable=%d nofile=%llu",
		 (unsigned int)getuid(), (unsigned int)getgid(), getgroups(0, NULL),
		 prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), prctl(PR_GET_DUMPABLE, 0, 0, 0, 0),
		 (unsigned long long)nofile.rlim_cur);
}

/* Everything the child gives up before it reads a byte. */
static void sandbox(int sock, uid_t uid, gid_t gid, rlim_t as, const char *test)
{
	int s = fcntl(sock, F_DUPFD_CLOEXEC, 10), null = open("/dev/null", O_RDWR | O_CLOEXEC);
	EVP_MD_CTX *md;

	child_exit_on(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || null < 0 || s < 0);
	child_exit_on(dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 ||
		      dup2(s, 3) < 0);
	close_range(4, ~0u, 0);
	/* What the libraries would load on first use, loaded now: no file of
	 * theirs is opened once the child reads a filesystem. */
	initialize_ext2_error_table();
	OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
	md = EVP_MD_CTX_new();
	child_exit_on(!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL));
	EVP_MD_CTX_free(md);
	child_exit_on(setrlimit(RLIMIT_AS, &(struct rlimit){ as, as }) < 0 ||
		      setrlimit(RLIMIT_CPU, &(struct rlimit){ 60, 60 }) < 0 ||
		      setrlimit(RLIMIT_NOFILE, &(struct rlimit){ 8, 8 }) < 0 ||
		      setrlimit(RLIMIT_FSIZE, &(struct rlimit){ 0, 0 }) < 0 ||
		      setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 }) < 0 ||
		      setrlimit(RLIMIT_MEMLOCK, &(struct rlimit){ 0, 0 }) < 0);
	child_exit_on(setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		      setresuid(uid, uid, uid) < 0);
	child_exit_on(getuid() != uid || geteuid() != uid || getegid() != gid);
	child_exit_on(setrlimit(RLIMIT_NPROC, &(struct rlimit){ 0, 0 }) < 0 ||
		      prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		      prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0);
	if (strcmp(test, "whoami") == 0)
		child_whoami();
	child_exit_on(allow_only_reading() < 0);
}

/* For the tests (VSS_TEST_EXT4_CHILD), after the sandbox is up: a child
 * that hangs, crashes, answers garbage, says what it was made (whoami:
 * taken just before the filter, the last step), or tries a call outside
 * its allow-list (escape-socket, escape-open, escape-getcwd: the last one
 * a deny-list would let through) and says so if it lives. */
static void child_test(const char *test, struct svc_ext4_info *info, unsigned char *ans)
{
	char cwd[64];
	long rc = 0;

	if (strcmp(test, "hang") == 0) {
		unsigned char b;
		struct iovec iov = { &b, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

		for (;;)        /* vssd asks nothing more: blocks */
			(void)!recvmsg(3, &mh, 0);
	}
	if (strcmp(test, "crash") == 0) {
		volatile uintptr_t zero = 0;

		*(volatile int *)zero = 1;      /* SIGSEGV: raise() is refused */
	}
	if (strcmp(test, "escape-socket") == 0)
		rc = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	else if (strcmp(test, "escape-open") == 0)
		rc = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	else if (strcmp(test, "escape-getcwd") == 0)
		rc = getcwd(cwd, sizeof(cwd)) ? 0 : -1;
	info->status = SVC_EXT4_BAD;
	if (strncmp(test, "escape-", 7) == 0)
		snprintf(info->msg, sizeof(info->msg), "%s was let through: %ld", test + 7, rc);
	else
		snprintf(info->msg, sizeof(info->msg), "%s", whoami);
	svc_ext4_msg_encode(info, ans);
	if (strcmp(test, "garbage") == 0)
		ans[8] = 7;     /* no such status */
}

static void child_main(int sock, const char *rel, uid_t uid, gid_t gid, rlim_t as,
		       const char *test)
{
	sandbox(sock, uid, gid, as, test);
	for (;;) {
		unsigned char req[REQ_LEN + 1], ans[SVC_EXT4_MSG_LEN];
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { req, sizeof(req) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct svc_ext4_info info = { 0 };
		struct cmsghdr *c;
		uint32_t magic, want;
		ssize_t n = recvmsg(3, &mh, MSG_CMSG_CLOEXEC);
		int fd = -1;

		if (n <= 0)
			_exit(n < 0 ? 126 : 0);
		c = CMSG_FIRSTHDR(&mh);
		if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
		memcpy(&magic, req, 4);
		memcpy(&info.seq, req + 4, 4);
		memcpy(&want, req + 8, 4);
		if (n != REQ_LEN || (magic != REQ_MAGIC && magic != TREE_MAGIC) || fd < 0 ||
		    (mh.msg_flags & MSG_CTRUNC))
			_exit(125);
		if (magic == TREE_MAGIC && !*test) {
			tree(fd, rel, info.seq);
			close(fd);
			continue;
		}
		if (*test) {
			child_test(test, &info, ans);
		} else {
			probe(fd, rel, want, &info);
			svc_ext4_msg_encode(&info, ans);
		}
		close(fd);
		if (send(3, ans, sizeof(ans), MSG_NOSIGNAL) != (ssize_t)sizeof(ans))
			_exit(124);
	}
}

/* ---- vssd's side ---- */

int svc_ext4_reader_new(const char *rel, struct svc_ext4_reader **out, struct vss_error *err)
{
	struct svc_ext4_reader *r = calloc(1, sizeof(*r));
	struct passwd pw, *found = NULL;
	const char *limit = getenv("VSS_TEST_EXT4_LIMIT_MS");
	char buf[1024];

	if (!r || !(r->rel = strdup(rel))) {
		free(r);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	r->sock = -1;
	r->uid = r->gid = 65534;
	if (getpwnam_r("nobody", &pw, buf, sizeof(buf), &found) == 0 && found && pw.pw_uid) {
		r->uid = pw.pw_uid;
		r->gid = pw.pw_gid;
	}
	r->limit_ms = limit && atoi(limit) > 0 ? atoi(limit) : READ_LIMIT_MS;
	snprintf(r->test, sizeof(r->test), "%s", getenv("VSS_TEST_EXT4_CHILD") ?
		 getenv("VSS_TEST_EXT4_CHILD") : "");
	*out = r;
	return 0;
}

static void stop_child(struct svc_ext4_reader *r, int *status)
{
	if (r->sock >= 0)
		close(r->sock);
	r->sock = -1;
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		while (waitpid(r->pid, status, 0) < 0 && errno == EINTR)
			;
	}
	r->pid = 0;
}

/* The address space the child may use: what vssd maps now, and more. */
static rlim_t as_limit(void)
{
	unsigned long long pages = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f) {
		if (fscanf(f, "%llu", &pages) != 1)
			pages = 0;
		fclose(f);
	}
	return (rlim_t)(pages * (unsigned long long)sysconf(_SC_PAGESIZE) + AS_EXTRA);
}

static int start_child(struct svc_ext4_reader *r, struct vss_error *err)
{
	int sv[2];
	rlim_t as;
	pid_t pid;

	if (r->started >= CHILDREN_MAX)
		return vss_error_set(err, -ECHILD, "its reader failed %d times in this listing: "
				     "not started again", CHILDREN_MAX);
	as = as_limit();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return vss_error_set(err, -errno, "socketpair: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		child_main(sv[1], r->rel, r->uid, r->gid, as, r->test);
		_exit(0);
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return vss_error_set(err, -errno, "fork: %s", strerror(errno));
	}
	r->started++;
	r->pid = pid;
	r->sock = sv[0];
	return 0;
}

/* Why the child is gone, for the error. */
static int child_failed(struct svc_ext4_reader *r, const char *what, struct vss_error *err)
{
	int status = 0;

	stop_child(r, &status);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		return vss_error_set(err, -EPERM, "its reader %s: killed by its sandbox for a "
				     "system call outside its allow-list (SIGSYS)", what);
	if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
		return vss_error_set(err, -EIO, "its reader %s (killed by signal %d)", what,
				     WTERMSIG(status));
	if (WIFEXITED(status) && WEXITSTATUS(status))
		return vss_error_set(err, -EIO, "its reader %s (exit status %d)", what,
				     WEXITSTATUS(status));
	return vss_error_set(err, -EIO, "its reader %s", what);
}

/* Sends request @magic (with @want) and @dev to the child, started if
 * there is none. */
static int ask(struct svc_ext4_reader *r, int dev, uint32_t magic, uint32_t want,
	       struct vss_error *err)
{
	unsigned char req[REQ_LEN];
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { req, sizeof(req) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int rc;

	if (!r->pid && (rc = start_child(r, err)) < 0)
		return rc;
	r->seq++;
	memcpy(req, &magic, 4);
	memcpy(req + 4, &r->seq, 4);
	memcpy(req + 8, &want, 4);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &dev, sizeof(int));
	if (sendmsg(r->sock, &mh, MSG_NOSIGNAL) != REQ_LEN)
		return child_failed(r, "could not be asked", err);
	return 0;
}

int svc_ext4_reader_read(struct svc_ext4_reader *r, int dev, uint32_t digest,
			 struct svc_ext4_info *info, struct vss_error *err)
{
	unsigned char ans[SVC_EXT4_MSG_LEN + 1];
	struct timespec t0, t1;
	struct pollfd pfd;
	ssize_t n;
	int rc, left;

	if ((rc = ask(r, dev, REQ_MAGIC, digest, err)) < 0)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		left = r->limit_ms - (int)((t1.tv_sec - t0.tv_sec) * 1000 +
					   (t1.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0) {
			stop_child(r, NULL);
			return vss_error_set(err, -ETIMEDOUT, "its reader took longer than %d ms: "
					     "killed", r->limit_ms);
		}
		pfd = (struct pollfd){ .fd = r->sock, .events = POLLIN };
		rc = poll(&pfd, 1, left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc > 0)
			break;
		if (rc < 0)
			return child_failed(r, "could not be heard", err);
	}
	n = recv(r->sock, ans, sizeof(ans), MSG_DONTWAIT | MSG_TRUNC);
	if (n <= 0)
		return child_failed(r, "died", err);
	if (svc_ext4_msg_parse(ans, (size_t)n, r->seq, info) < 0)
		return child_failed(r, "answered what does not parse", err);
	return 0;
}

int svc_ext4_reader_tree(struct svc_ext4_reader *r, int dev, int *sock, uint32_t *seq,
			 int *limit_ms, struct vss_error *err)
{
	int rc = ask(r, dev, TREE_MAGIC, 0, err);

	if (rc < 0)
		return rc;
	*sock = r->sock;
	*seq = r->seq;
	*limit_ms = r->limit_ms;
	return 0;
}

void svc_ext4_reader_free(struct svc_ext4_reader *r)
{
	if (!r)
		return;
	stop_child(r, NULL);
	free(r->rel);
	free(r);
}
