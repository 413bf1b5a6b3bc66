/*
 * requester/repo_i.h - what the files of the backup repository share
 * (include/vss/backup.h is the API, doc/backup-format.md the format):
 * repo.c (the repository), manifest.c (entries and manifests),
 * backup_tree.c (making a backup), restore_tree.c (restoring one).
 */
#ifndef VSS_REQUESTER_REPO_I_H
#define VSS_REQUESTER_REPO_I_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include <vss/backup.h>

#define REPO_MARKER  "vss-backup-repository"
/* The newest format this code reads and writes; a repository stays at 1
 * until it holds a backup that needs 2 (writers' components, partial
 * files), so that older code reads what it can. */
#define REPO_VERSION 2

struct vss_repo {
	char *dir;
	int dir_fd;                     /* the repository's directory */
	int lock_fd;                    /* REPO/lock */
	int version;                    /* of the format, as its marker says */
	char *sources_buf[64];          /* vss_repo_show's .sources, owned */
	char *live_buf[64];             /* vss_repo_show_live's, owned (NULL: from a shadow) */
};

/* ---- repo.c ---- */
/* flock()s REPO/lock (LOCK_SH or LOCK_EX), waiting. */
int repo_lock(struct vss_repo *r, int how, struct vss_error *err);
void repo_unlock(struct vss_repo *r);
/* backup.json of @id, parsed (new reference), or NULL with @err filled. */
json_t *repo_read_info(struct vss_repo *r, const char *id, struct vss_error *err);
/* Whether @p is an absolute path with no ".", ".." or empty component: what
 * a source's live path must be (it decides where a restore writes). */
bool repo_live_path_ok(const char *p);
/* Fills @out from a parsed backup.json. */
void repo_info_from_json(json_t *j, struct vss_backup_info *out);
/* The IDs of the complete backups, oldest first (malloc'd array of
 * malloc'd strings). */
int repo_ids(struct vss_repo *r, char ***ids, size_t *count, struct vss_error *err);
void repo_ids_free(char **ids, size_t count);
/* Resolves @id (a unique prefix; NULL: the newest) into @out. */
int repo_resolve(struct vss_repo *r, const char *id, char out[VSS_BACKUP_ID_MAX],
		 struct vss_error *err);
/* Raises the repository's format version to @version if it is below (the
 * exclusive lock is held). */
int repo_raise_version(struct vss_repo *r, int version);
/* The base of a backup of @type of the sources @live (@n of them), into
 * @base ("" if none) and its manifest's checksum into @sha (the lock is
 * held).  Incremental and log: the newest backup of the same sources but a
 * copy; differential: their newest full. */
int repo_find_base(struct vss_repo *r, const char *const *live, size_t n,
		   enum vss_backup_type type, char base[VSS_BACKUP_ID_MAX], char sha[65],
		   struct vss_error *err);
/* Whether backup.json @info has the sources @live, in that order. */
bool repo_same_sources(json_t *info, const char *const *live, size_t n);
/* A new backup ID: the time now (to the millisecond) and 8 random hex
 * digits; see vss_repo_backup for how IDs keep the order backups were made. */
void repo_new_id(char out[VSS_BACKUP_ID_MAX]);
/* Writes @text to @name under @dir_fd, whole and synced, through a
 * temporary name (never a half-written file under @name). */
int repo_write_file(int dir_fd, const char *name, const char *text);
/* Writes @text to the new file @name under @dir_fd, neither synced nor
 * renamed: for a backup's own files in REPO/tmp/ID, which the syncfs before
 * its publication makes durable (doc/backup-format.md, "Making a backup"). */
int repo_write_new(int dir_fd, const char *name, const char *text);
/* Removes a directory tree under @dir_fd (no symlink followed). */
int repo_rmtree(int dir_fd, const char *name);
/* A backup that failed with @rc: a full repository (ENOSPC, EDQUOT) is
 * said to be one, naming it, with what @err said after it; returns @rc. */
int repo_full_error(struct vss_repo *r, int rc, struct vss_error *err);
/* Removes what killed backups and interrupted deletes left in tmp/ (the
 * exclusive lock held: nothing else is writing there). */
void repo_clean_tmp(struct vss_repo *r);
/* A new backup's ID, under the exclusive lock: it sorts after the newest
 * backup's, even if the clock stepped back (waits for it, up to 2 s). */
int repo_next_id(struct vss_repo *r, char out[VSS_BACKUP_ID_MAX], struct vss_error *err);
/* Publishes the backup @id written under tmp/@id (@tmp_fd): the documents
 * (@components, @nwriters writer metadata documents, each may be NULL),
 * backup.json from @info with "manifest_sha256" of its manifest.jsonl
 * (read back unless @info has it: the hash of what the writer wrote), the
 * filesystem synced, then tmp/@id renamed to backups/@id. */
int repo_publish(struct vss_repo *r, int tmp_fd, const char *id, json_t *info,
		 const char *components, const char *const *writer_metadata, size_t nwriters,
		 struct vss_error *err);

/* ---- backup_tree.c ---- */
/* Reads the caller's struct vss_backup_params (it grows, as
 * util/struct_in.h reads them) into @out and checks its type and sources. */
int repo_params_in(const struct vss_backup_params *p, struct vss_backup_params *out,
		   struct vss_error *err);

/* ---- checksums and copies (manifest.c) ---- */
#define SHA256_HEX 65
/* The stdio buffer of a manifest read or written: a few large system calls
 * for its many short lines. */
#define MANIFEST_BUF (1u << 20)
/* A stream of bytes into a SHA-256 (OpenSSL's). */
struct repo_hash;
struct repo_hash *repo_hash_new(void);
void repo_hash_update(struct repo_hash *h, const void *buf, size_t len);
/* Feeds @len zero bytes (a hole). */
void repo_hash_zeros(struct repo_hash *h, uint64_t len);
void repo_hash_final(struct repo_hash *h, char out[SHA256_HEX]);
/* SHA-256 of the whole file @fd (holes as zeros), from its start. */
int repo_hash_fd(int fd, char out[SHA256_HEX]);
/* The extents of data of @fd (SEEK_DATA/SEEK_HOLE): a malloc'd array of
 * offset, length pairs; *@n 0 and *@out NULL for a file with no holes. */
int repo_extents(int fd, uint64_t size, uint64_t **out, size_t *n);
/* Copies @size bytes of @in to @out (both at offset 0) keeping holes, and
 * hashes them into @hex. */
int repo_copy(int in, int out, uint64_t size, char hex[SHA256_HEX]);
/* Copies the ranges @r (sorted, not overlapping; clipped to @size) of @in
 * to @out at their offsets and makes @out @size bytes long (holes
 * elsewhere); *@done (new reference) lists them as [[offset, length],
 * ...], *@bytes counts them. */
int repo_copy_ranges(int in, int out, uint64_t size, const struct vss_bcd_range *r,
		     size_t n, json_t **done, uint64_t *bytes);

/* ---- entries (manifest.c) ---- */
enum entry_kind {
	EK_FILE = 'f', EK_DIR = 'd', EK_LINK = 'l', EK_HARD = 'h', EK_CHR = 'c',
	EK_BLK = 'b', EK_FIFO = 'p', EK_SOCK = 's', EK_GONE = '-',
};

/* One line of a manifest.  Strings are owned by the entry, but for path
 * and link when it is borrowed. */
struct entry {
	unsigned int src;               /* 1-based */
	char *path;                     /* inside the source; "" for the source itself */
	char kind;
	uint32_t mode;
	uint32_t uid, gid;
	int64_t mtime, atime, ctime;    /* ns */
	uint64_t ino, size, rdev;
	char *link;                     /* symlink target, or a hard link's entry path */
	json_t *xattrs;                 /* name -> base64, or NULL */
	char in[VSS_BACKUP_ID_MAX];     /* files: the backup storing the bytes */
	char sha256[SHA256_HEX];
	json_t *data;                   /* extents [[off, len], ...] or NULL */
	/* Format 2.  The component whose file set holds it: 1-based, in
	 * backup.json's "components"; 0 for none. */
	unsigned int comp;
	/* A partial file: its layers, the first a whole file, each next one
	 * ranges laid over it: [{"in", "size", "sha256", "data"?}, {"in",
	 * "size", "sha256", "ranges"}, ...]; NULL for a file stored whole. */
	json_t *layers;
	/* path and link point into a buffer that outlives the entry (the
	 * manifest an entry_index keeps): entry_release leaves them. */
	bool borrowed;
};

void entry_release(struct entry *e);
/* The manifest line of @e (new reference). */
json_t *entry_to_json(const struct entry *e);
/* Parses one manifest line into @e; -EBADMSG if it is not one. */
int entry_from_json(json_t *j, struct entry *e);
/* The same from the line's text (@n bytes, which it may change): the
 * common shape read directly, anything else through jansson, with the
 * same result; -EBADMSG or -ENOMEM. */
int entry_from_line(char *line, size_t n, struct entry *e);
/* A manifest line being made: reused from one entry to the next. */
struct repo_line {
	char *buf;                      /* NUL-terminated, malloc'd */
	size_t len, cap;
	bool oom;
};
/* The manifest line of @e, with its newline, into @l (what entry_to_json
 * gives, written directly when it can be); 0 or -ENOMEM. */
int entry_line(const struct entry *e, struct repo_line *l);

/* Reads the manifest of backup @id (after checking it against
 * @manifest_sha256), calling @fn for each entry; stops at @fn's first
 * nonzero return and returns it. */
int manifest_each(struct vss_repo *r, const char *id, const char *manifest_sha256,
		  int (*fn)(void *arg, struct entry *e), void *arg, struct vss_error *err);

/* Writes the bytes of file entry @e into @out (empty, opened for reading
 * and writing): the file @e->in stores, or a partial file's layers laid in
 * order; checks them against their checksums.  A damaged repository is
 * -EBADMSG (or the error opening it) with *@damaged set and @err naming the
 * file in the repository; any other error leaves *@damaged false and @err
 * alone. */
int repo_file_restore(struct vss_repo *r, const struct entry *e, int out, bool *damaged,
		      struct vss_error *err);

/* Where backup @in stores the bytes of source @src's @path, relative to
 * the repository: "backups/IN/data/S/PATH" ("@source" for the source
 * itself). */
void repo_data_path(const char *in, unsigned int src, const char *path, char *out,
		    size_t len);

/* A lookup of entries by (source, path): the base of a backup. */
struct entry_index;
/* Reads the manifest of backup @id (after checking it against
 * @manifest_sha256) into a new index *@out; a line met again replaces the
 * first.  The entries found in it live until entry_index_free; any number
 * of threads may look them up at once (entry_index_find). */
int manifest_index(struct vss_repo *r, const char *id, const char *manifest_sha256,
		   struct entry_index **out, struct vss_error *err);
/* The same from the manifest's bytes @text (@len of them, malloc'd: the
 * index takes them, also on failure): -EBADMSG with *@bad_line the first
 * line (1-based) that is not an entry, or -ENOMEM. */
int entry_index_parse(char *text, size_t len, struct entry_index **out,
		      unsigned long *bad_line);
struct entry *entry_index_find(struct entry_index *x, unsigned int src, const char *path);
/* Calls @fn for every entry not marked as seen (entry_index_find_seen). */
void entry_index_unseen(struct entry_index *x, void (*fn)(void *arg, struct entry *e),
			void *arg);
/* entry_index_find, and the entry found is marked as seen: one thread
 * at a time (it also keeps its place, to try the next entry first). */
struct entry *entry_index_find_seen(struct entry_index *x, unsigned int src, const char *path);
void entry_index_free(struct entry_index *x);

/* Base64 (RFC 4648, with padding). */
char *b64_encode(const void *buf, size_t len);
/* Decoded bytes (malloc'd, NUL-terminated past *@len), or NULL if bad. */
void *b64_decode(const char *s, size_t *len);

/* A progress reporter: calls the callback at most once a second. */
struct repo_progress {
	vss_backup_progress_fn fn;
	void *arg;
	struct vss_backup_progress p;
	uint64_t last_ms;
};
void repo_progress_tick(struct repo_progress *pr, bool force);

/* ---- writers' components (plan.c) ---- */

/* One component a plan covers, and the type it is backed up as. */
struct plan_comp {
	char *writer;                   /* the writer's name */
	char *class_id, *instance_id, *logical_path, *name;
	enum vss_backup_type type;
};

struct vss_backup_plan {
	enum vss_backup_type type;      /* the backup's (full if nothing to be relative to) */
	char base[VSS_BACKUP_ID_MAX];   /* "" for none */
	char **sources;                 /* live paths */
	size_t nsources;
	struct plan_comp *c;
	size_t n;
};

/* What the writers say about one entry of a backup (rules_match). */
struct match {
	bool excluded;                  /* a writer excludes it from every backup */
	unsigned int comp;              /* the component holding it (1-based), or 0 */
	enum vss_selection sel;         /* with comp: as vss_wmd_plan says */
	bool log;                       /* with comp: its component is backed up as a log
					 * backup (sel then says whether it is a log file) */
	bool snapshot;                  /* with comp: must be read from a shadow */
	const char *writer;             /* of comp, or of the partial file */
	/* A partial file: the ranges its writer names (sorted, not touching). */
	const struct vss_bcd_range *ranges;
	size_t nranges;
	/* A differenced file: changed if modified after @since; without a
	 * time, changed by the repository's own record. */
	bool differenced, has_time;
	int64_t since_ns;
};

/* The rules of one backup, from its plan, its components document (as
 * PrepareForBackup returned it) and its writers' metadata documents. */
struct rules;
int rules_new(const struct vss_backup_plan *plan, const struct vss_bcd *bcd,
	      const char *const *wmds, size_t nwmds, struct rules **out, struct vss_error *err);
void rules_free(struct rules *x);
/* What applies to the entry at live path @path (not a directory). */
void rules_match(const struct rules *x, const char *path, struct match *out);
/* Whether directory @path may hold a selected component's file: inside a
 * recursive file set, or on the way to a file set. */
bool rules_dir_wanted(const struct rules *x, const char *path);
/* backup.json's "components" (new reference). */
json_t *rules_components_json(const struct rules *x);
/* The component (@class_id, @instance_id, @lp, @name) in @bcd: the same
 * instance if it is there, else the same class (a writer restarted is a
 * new instance of the same class).  NULL if none. */
struct vss_bcd_component *plan_find_comp(const struct vss_bcd *bcd, const char *class_id,
					 const char *instance_id, const char *lp,
					 const char *name);
/* The effective type of component (@class_id, @instance_id, @logical_path,
 * @name) in backup.json @info, 0 if it does not list it. */
enum vss_backup_type repo_component_type(json_t *info, const char *class_id,
					 const char *instance_id, const char *logical_path,
					 const char *name);

#endif
