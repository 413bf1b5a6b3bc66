/*
 * service/ext4read.h - a path's inode in an ext4 shadow read straight from
 * the shadow's device with libext2fs (ext4read.c), without mounting it:
 * what `vss versions` needs of each version (type, size, modification
 * time, mode, owner; a file's content digest, a directory's entries).
 *
 * The filesystem is bytes a hostile local user wrote (the volume is
 * theirs), so it is parsed in a child process, never in vssd: forked, it
 * keeps only a socket to vssd, takes nobody's uid and gid with no groups,
 * no new privileges, limits on memory, CPU time and files, and is killed
 * if it takes longer than a bound.  Each request passes it the one
 * device to read (an open descriptor: it opens nothing itself) and it
 * answers in the fixed format below, which vssd checks as untrusted bytes
 * (svc_ext4_msg_parse; fuzz target tests/service/fuzz_ext4msg.c).
 *
 * Which shadows are read here and which through a mount: versions.c.
 * A filesystem whose journal needs recovery (the RECOVER incompat flag:
 * a crash-consistent shadow of a volume that was not frozen), one libext2fs
 * does not know the features of, one with encryption, casefolded names or
 * inline data,
 * and anything not ext2/3/4 are answered SVC_EXT4_MOUNT: read it through
 * a mount, as before.  (That mount is read-only with noload, as every
 * shadow's is, so it does not replay the journal either: such a shadow
 * reads as its home blocks hold it, the same as before this reader.)
 */
#ifndef VSS_SERVICE_EXT4READ_H
#define VSS_SERVICE_EXT4READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <vss/error.h>

/* What the reader found (svc_ext4_info.status). */
enum svc_ext4_status {
	SVC_EXT4_FOUND = 0,     /* the path is there: the fields below hold */
	SVC_EXT4_ABSENT = 1,    /* not there (or not a file, directory or fifo,
				 * or behind a symlink: what a mount would not open) */
	SVC_EXT4_MOUNT = 2,     /* cannot be read here safely: mount it (msg: why) */
	SVC_EXT4_BAD = 3,       /* the filesystem is damaged or crafted (msg: what) */
};

#define SVC_EXT4_MSG_LEN 256            /* an answer, exactly */
#define SVC_EXT4_TEXT_MAX 168           /* msg, with its NUL */
#define SVC_EXT4_DIGEST_LEN 32          /* SHA-256 */

/* One answer, as parsed.  mode is st_mode's (type and permission bits). */
struct svc_ext4_info {
	uint32_t seq;
	int status;
	uint32_t mode, uid, gid;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	bool has_digest, has_dirsig;
	uint64_t dirsig;                /* svc_dirsig() of a directory's entries */
	unsigned char digest[SVC_EXT4_DIGEST_LEN];
	char msg[SVC_EXT4_TEXT_MAX];    /* printable ASCII only once parsed */
};

/*
 * The answer's bytes (host byte order: both ends are one machine):
 *   0 magic "VX4R"    4 seq u32       8 status i32    12 mode u32
 *  16 uid u32        20 gid u32      24 size u64     32 mtime_sec i64
 *  40 mtime_nsec u32 44 flags u32 (1: digest, 2: dirsig)
 *  48 dirsig u64     56 digest[32]   88 msg[168], NUL-terminated
 */
void svc_ext4_msg_encode(const struct svc_ext4_info *in, unsigned char out[SVC_EXT4_MSG_LEN]);
/* Checks and decodes @len bytes that should answer request @seq: -EPROTO
 * unless they are exactly one well-formed answer (known status; for FOUND
 * a file, directory or fifo, a size that fits off_t, nanoseconds under a
 * second, a digest only for a file and entries only for a directory; a
 * text ending in NUL within its field); the text is made printable. */
int svc_ext4_msg_parse(const unsigned char *buf, size_t len, uint32_t seq,
		       struct svc_ext4_info *out);

/* A directory's entries as `vss versions` compares them: one number,
 * FNV-1a over their names, types, sizes (0 for a directory) and
 * modification times in name order.  Sorts @e; frees nothing. */
struct svc_dirent_sig {
	char *name;
	uint32_t type;                  /* S_IFMT bits */
	int64_t size;
	int64_t sec;
	int64_t nsec;
};
uint64_t svc_dirsig(struct svc_dirent_sig *e, size_t n);

/* A reader: one child, started again if it dies, for one listing. */
struct svc_ext4_reader;

/* A reader of the path @rel (relative to the filesystem's root, no dots)
 * in the filesystems it will be handed.  No child yet. */
int svc_ext4_reader_new(const char *rel, struct svc_ext4_reader **out, struct vss_error *err);
/* Digests asked of svc_ext4_reader_read: none, or of a file of any size. */
#define SVC_EXT4_DIGEST_NONE 0u
#define SVC_EXT4_DIGEST_ALL UINT32_MAX

/* Reads @rel in the filesystem on @dev (an open, readable descriptor of
 * a shadow's device; not closed), with the digest of a file of at most
 * @digest bytes (SVC_EXT4_DIGEST_NONE, _ALL):
 * 0 and *@info, or -errno and why in @err if the child died, took longer
 * than its bound or answered what does not parse (it is killed; the next
 * call starts another, up to three per reader). */
int svc_ext4_reader_read(struct svc_ext4_reader *r, int dev, uint32_t digest,
			 struct svc_ext4_info *info, struct vss_error *err);
/* Ends the child (if any) and frees @r. */
void svc_ext4_reader_free(struct svc_ext4_reader *r);

/*
 * A version copied back without a mount (versions.c): the reader walks
 * @rel and sends it as a stream of frames, one SOCK_SEQPACKET message
 * each, in this order: the path's ENTRY (its name empty), its XATTRs,
 * then for a file its DATA (exactly its size), for a directory each
 * entry the same way, recursively, then POP; last one END (status FOUND,
 * or ABSENT, MOUNT, BAD and why, which may also come in place of any
 * frame).  Only files, directories and symlinks are sent (a symlink's
 * target is its ENTRY's payload, after the name).
 *
 * A frame's bytes (host byte order):
 *   0 magic "VX4F"   4 seq u32       8 kind u32      12 status i32 (END)
 *  16 mode u32      20 uid u32      24 gid u32      28 name_len u32
 *  32 size u64 (ENTRY: a file's size, a symlink's target length; XATTR:
 *     the value's length; DATA: the bytes that follow)
 *  40 atime_sec i64 48 mtime_sec i64 56 atime_nsec u32 60 mtime_nsec u32
 *  64 payload: ENTRY name[name_len] (target[size]); XATTR name[name_len]
 *     value[size]; DATA bytes[size]; END msg, NUL-terminated
 */
enum svc_ext4_frame_kind {
	SVC_EXT4_ENTRY = 1,
	SVC_EXT4_XATTR = 2,
	SVC_EXT4_DATA = 3,
	SVC_EXT4_POP = 4,
	SVC_EXT4_END = 5,
};

#define SVC_EXT4_FRAME_HEAD 64
#define SVC_EXT4_DATA_MAX (1u << 16)            /* DATA bytes in one frame */
#define SVC_EXT4_XATTR_NAME_MAX 255
#define SVC_EXT4_XATTR_VALUE_MAX (1u << 16)     /* as the kernel's XATTR_SIZE_MAX */
#define SVC_EXT4_LINK_MAX 4095                  /* a symlink's target */
#define SVC_EXT4_FRAME_MAX (SVC_EXT4_FRAME_HEAD + 256 + SVC_EXT4_XATTR_VALUE_MAX)

/* One frame, as parsed: name and data point into the parsed buffer. */
struct svc_ext4_frame {
	uint32_t kind;
	int status;                     /* END */
	uint32_t mode, uid, gid;        /* ENTRY */
	uint64_t size;
	int64_t atime_sec, mtime_sec;
	uint32_t atime_nsec, mtime_nsec;
	const unsigned char *name;      /* ENTRY, XATTR: name_len bytes, no NUL in them */
	size_t name_len;
	const unsigned char *data;      /* XATTR value, DATA bytes, symlink target */
	size_t data_len;
	char msg[SVC_EXT4_TEXT_MAX];    /* END: printable ASCII */
};

/* Encodes @f (name, data as given) into @out (SVC_EXT4_FRAME_MAX bytes):
 * its length, or 0 if it does not fit a frame. */
size_t svc_ext4_frame_encode(const struct svc_ext4_frame *f, uint32_t seq, unsigned char *out);
/* Checks and decodes @len bytes of one frame for request @seq: -EPROTO
 * unless well formed: a known kind, the length exactly the header and its
 * payload; an ENTRY a file, directory or symlink with permission bits
 * only, its name empty or one component (at most 255 bytes, no '/', no
 * NUL, not "." or ".."), a symlink's target 1 to SVC_EXT4_LINK_MAX bytes
 * without NUL, nanoseconds under a second; an XATTR name 1 to 255 bytes
 * without NUL, a value of at most SVC_EXT4_XATTR_VALUE_MAX; DATA 1 to
 * SVC_EXT4_DATA_MAX bytes; an END a known status and its text within its
 * field, made printable.  Whether the frames come in the right order is
 * the reader's (versions.c) to check. */
int svc_ext4_frame_parse(const unsigned char *buf, size_t len, uint32_t seq,
			 struct svc_ext4_frame *out);

/* Asks @r's child for the tree at its path in the filesystem on @dev
 * (not closed): 0 and the socket to read its frames from (@r's, valid
 * until the next call on @r), the sequence number they carry and how
 * long to wait for each at most; or -errno and why in @err.  Whoever
 * reads the frames checks them (svc_ext4_frame_parse) and their order;
 * the child is ended with @r. */
int svc_ext4_reader_tree(struct svc_ext4_reader *r, int dev, int *sock, uint32_t *seq,
			 int *limit_ms, struct vss_error *err);

#endif
