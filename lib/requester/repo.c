/*
 * requester/repo.c - the backup repository (include/vss/backup.h): opening
 * and making one, its lock, backup IDs, listing, showing, verifying and
 * deleting backups.  The format, version 2 (1 still read, and kept until a
 * backup needs 2), is doc/backup-format.md; in short:
 *
 *   REPO/vss-backup-repository   {"format": "vss-backup-repository", "version": 1, ...}
 *   REPO/lock                    flock: exclusive for a backup or a delete, shared to read
 *   REPO/tmp/                    backups being written (a crash leaves them: removed
 *                                by the next backup), deletes in progress
 *   REPO/backups/ID/             complete backups: backup.json, manifest.jsonl,
 *                                components.json, writers/N.json, data/S/PATH
 *
 * A backup is visible only once complete: written under tmp/, the
 * filesystem synced, then renamed into backups/ (backup_tree.c).  Nothing
 * read from a repository is trusted: IDs and paths are checked before they
 * are used to open anything, a manifest is checked against the checksum in
 * its backup.json before it is read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "requester/image_i.h"
#include "requester/repo_i.h"

static const char *const type_names[] = {
	[VSS_BT_FULL] = "full", [VSS_BT_INCREMENTAL] = "incremental",
	[VSS_BT_DIFFERENTIAL] = "differential", [VSS_BT_LOG] = "log", [VSS_BT_COPY] = "copy",
};

/* Writes @text whole to @fd: 0 or -errno. */
static int write_all(int fd, const char *text)
{
	size_t len = strlen(text), done = 0;

	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

int repo_write_file(int dir_fd, const char *name, const char *text)
{
	char tmp[256];
	int fd, rc;

	const char *base = strrchr(name, '/');

	/* Beside @name, in the same directory. */
	snprintf(tmp, sizeof(tmp), "%.*s.%s.tmp", base ? (int)(base - name + 1) : 0, name,
		 base ? base + 1 : name);
	fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, text);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(dir_fd, tmp, 0);
	return rc;
}

int repo_write_new(int dir_fd, const char *name, const char *text)
{
	int fd, rc;

	fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, text);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(dir_fd, name, 0);
	return rc;
}

static int make_repo(struct vss_repo *r, struct vss_error *err)
{
	char id[37], created[32], text[256];
	time_t now = time(NULL);
	struct tm tm;
	uuid_t u;
	int rc;

	uuid_generate_random(u);
	uuid_unparse_lower(u, id);
	gmtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if ((mkdirat(r->dir_fd, "backups", 0755) < 0 && errno != EEXIST) ||
	    (mkdirat(r->dir_fd, "tmp", 0700) < 0 && errno != EEXIST))
		return vss_error_set(err, -errno, "cannot make a repository in %s: %s", r->dir,
				     strerror(errno));
	snprintf(text, sizeof(text), "{\"format\": \"%s\", \"version\": %d, \"id\": \"%s\", "
		 "\"created\": \"%s\"}\n", REPO_MARKER, 1, id, created);
	if ((rc = repo_write_file(r->dir_fd, REPO_MARKER, text)) < 0)
		return vss_error_set(err, rc, "cannot make a repository in %s: %s", r->dir,
				     strerror(-rc));
	fsync(r->dir_fd);
	r->version = 1;
	return 0;
}

static bool dir_is_empty(int dir_fd)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	bool empty = true;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while (empty && (de = readdir(d)))
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
	closedir(d);
	return empty;
}

static int check_marker(struct vss_repo *r, struct vss_error *err)
{
	json_error_t jerr;
	json_t *j;
	int fd = openat(r->dir_fd, REPO_MARKER, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc = 0;

	if (fd < 0)
		return -errno;
	j = json_loadfd(fd, 0, &jerr);
	close(fd);
	if (!j || strcmp(json_string_value(json_object_get(j, "format")) ?: "", REPO_MARKER) ||
	    !json_is_integer(json_object_get(j, "version")))
		rc = vss_error_set(err, -EMEDIUMTYPE, "%s: %s is not a vss backup repository's",
				   r->dir, REPO_MARKER);
	else if (json_integer_value(json_object_get(j, "version")) > REPO_VERSION)
		rc = vss_error_set(err, -EPROTO, "%s: repository format version %lld; this vss "
				   "reads up to %d", r->dir,
				   json_integer_value(json_object_get(j, "version")), REPO_VERSION);
	else
		r->version = (int)json_integer_value(json_object_get(j, "version"));
	json_decref(j);
	return rc;
}

int repo_raise_version(struct vss_repo *r, int version)
{
	json_error_t jerr;
	json_t *j;
	char *text;
	int fd, rc;

	if (r->version >= version)
		return 0;
	fd = openat(r->dir_fd, REPO_MARKER, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	j = json_loadfd(fd, 0, &jerr);
	close(fd);
	if (!j)
		return -EBADMSG;
	json_object_set_new(j, "version", json_integer(version));
	text = json_dumps(j, JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!text)
		return -ENOMEM;
	rc = repo_write_file(r->dir_fd, REPO_MARKER, text);
	free(text);
	if (rc == 0)
		r->version = version;
	return rc;
}

int vss_repo_open(const char *dir, unsigned int flags, struct vss_repo **out,
		  struct vss_error *err)
{
	struct vss_repo *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (!r || !(r->dir = strdup(dir))) {
		free(r);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	r->lock_fd = r->dir_fd = -1;
	if ((flags & VSS_REPO_CREATE) && mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = vss_error_set(err, -errno, "cannot make %s: %s", dir, strerror(errno));
		goto fail;
	}
	r->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dir_fd < 0) {
		rc = vss_error_set(err, -errno, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	/* Two processes making the same repository at once: the second waits
	 * until the first is done, then finds a repository, not a directory
	 * half made (where the filesystem has no flock, it goes on without). */
	if (flags & VSS_REPO_CREATE)
		while (flock(r->dir_fd, LOCK_EX) < 0 && errno == EINTR)
			;
	rc = check_marker(r, err);
	if (rc == -ENOENT) {
		if (!(flags & VSS_REPO_CREATE)) {
			rc = vss_error_set(err, -ENOENT, "%s is not a vss backup repository (no %s)",
					   dir, REPO_MARKER);
			goto fail;
		}
		if (!dir_is_empty(r->dir_fd)) {
			rc = vss_error_set(err, -EMEDIUMTYPE, "%s is not empty and not a vss backup "
					   "repository: refusing to mix a repository with its files",
					   dir);
			goto fail;
		}
		if ((rc = make_repo(r, err)) < 0)
			goto fail;
	} else if (rc < 0) {
		if (!err || !err->msg[0] || err->code != rc)
			vss_error_set(err, rc, "%s: %s", dir, strerror(-rc));
		goto fail;
	}
	if ((mkdirat(r->dir_fd, "backups", 0755) < 0 && errno != EEXIST) ||
	    (mkdirat(r->dir_fd, "tmp", 0700) < 0 && errno != EEXIST && errno != EROFS)) {
		if (errno != EROFS && errno != EACCES) {
			rc = vss_error_set(err, -errno, "%s: %s", dir, strerror(errno));
			goto fail;
		}
	}
	r->lock_fd = openat(r->dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (r->lock_fd < 0)
		r->lock_fd = openat(r->dir_fd, "lock", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (flags & VSS_REPO_CREATE)
		flock(r->dir_fd, LOCK_UN);
	*out = r;
	return 0;
fail:
	vss_repo_close(r);
	return rc;
}

void vss_repo_close(struct vss_repo *r)
{
	if (!r)
		return;
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	if (r->dir_fd >= 0)
		close(r->dir_fd);
	for (size_t i = 0; i < sizeof(r->sources_buf) / sizeof(r->sources_buf[0]); i++) {
		free(r->sources_buf[i]);
		free(r->live_buf[i]);
	}
	free(r->dir);
	free(r);
}

int repo_lock(struct vss_repo *r, int how, struct vss_error *err)
{
	if (r->lock_fd < 0)
		return how == LOCK_SH ? 0 : vss_error_set(err, -EROFS, "%s: cannot write the "
							  "repository's lock", r->dir);
	while (flock(r->lock_fd, how) < 0)
		if (errno != EINTR)
			return vss_error_set(err, -errno, "%s: lock: %s", r->dir, strerror(errno));
	return 0;
}

void repo_unlock(struct vss_repo *r)
{
	if (r->lock_fd >= 0)
		flock(r->lock_fd, LOCK_UN);
}

void repo_new_id(char out[VSS_BACKUP_ID_MAX])
{
	struct timespec ts;
	struct tm tm;
	char u[37];
	uuid_t id;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(out, VSS_BACKUP_ID_MAX, "%Y%m%dT%H%M%S", &tm);
	n += (size_t)snprintf(out + n, VSS_BACKUP_ID_MAX - n, ".%03ldZ-",
			      ts.tv_nsec / 1000000);
	uuid_generate_random(id);
	uuid_unparse_lower(id, u);
	snprintf(out + n, VSS_BACKUP_ID_MAX - n, "%.8s", u);
}

int repo_next_id(struct vss_repo *r, char out[VSS_BACKUP_ID_MAX], struct vss_error *err)
{
	for (int tries = 0; tries <= 2000; tries++) {
		char newest[VSS_BACKUP_ID_MAX] = "";

		repo_new_id(out);
		if (repo_resolve(r, NULL, newest, NULL) < 0 || strcmp(out, newest) > 0)
			return 0;
		usleep(1000);
	}
	return vss_error_set(err, -EAGAIN, "the clock is behind the newest backup: cannot make "
			     "an ID that sorts after it");
}

int repo_full_error(struct vss_repo *r, int rc, struct vss_error *err)
{
	char msg[VSS_ERROR_MSG_MAX];

	if ((rc != -ENOSPC && rc != -EDQUOT) || !err)
		return rc;
	snprintf(msg, sizeof(msg), "%s", err->msg);
	return vss_error_set(err, rc, "the repository %s is full (%s): nothing of this backup "
			     "was kept; free space there and back up again (%s)", r->dir,
			     strerror(-rc), msg);
}

void repo_clean_tmp(struct vss_repo *r)
{
	int fd = openat(r->dir_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			repo_rmtree(dirfd(d), de->d_name);
	closedir(d);
}

int repo_publish(struct vss_repo *r, int tmp_fd, const char *id, json_t *info,
		 const char *components, const char *const *writer_metadata, size_t nwriters,
		 struct vss_error *err)
{
	char hex[SHA256_HEX], from[64], to[64], *text;
	int fd, rc;

	if (json_is_string(json_object_get(info, "manifest_sha256"))) {
		snprintf(hex, sizeof(hex), "%s",
			 json_string_value(json_object_get(info, "manifest_sha256")));
	} else {
		fd = openat(tmp_fd, "manifest.jsonl", O_RDONLY | O_CLOEXEC);
		rc = fd < 0 ? -errno : repo_hash_fd(fd, hex);
		if (fd >= 0)
			close(fd);
		if (rc < 0)
			return vss_error_set(err, rc, "cannot read back the manifest: %s",
					     strerror(-rc));
	}
	if (components && (rc = repo_write_new(tmp_fd, "components.json", components)) < 0)
		return vss_error_set(err, rc, "cannot write the components document: %s",
				     strerror(-rc));
	if (nwriters && mkdirat(tmp_fd, "writers", 0755) < 0)
		return vss_error_set(err, -errno, "cannot write the writers' documents: %s",
				     strerror(errno));
	for (size_t i = 0; i < nwriters; i++) {
		char name[48];

		snprintf(name, sizeof(name), "writers/%zu.json", i + 1);
		if (writer_metadata[i] && (rc = repo_write_new(tmp_fd, name, writer_metadata[i])) < 0)
			return vss_error_set(err, rc, "cannot write %s: %s", name, strerror(-rc));
	}
	if (json_object_set_new(info, "manifest_sha256", json_string(hex)) < 0 ||
	    !(text = json_dumps(info, JSON_INDENT(1) | JSON_PRESERVE_ORDER)))
		return vss_error_set(err, -ENOMEM, "out of memory");
	rc = repo_write_new(tmp_fd, "backup.json", text);
	free(text);
	if (rc < 0)
		return vss_error_set(err, rc, "cannot write backup.json: %s", strerror(-rc));
	/* Everything written reaches the disk before the name that lists it. */
	if (syncfs(tmp_fd) < 0)
		return vss_error_set(err, -errno, "cannot sync the repository: %s", strerror(errno));
	snprintf(from, sizeof(from), "tmp/%s", id);
	snprintf(to, sizeof(to), "backups/%s", id);
	if (renameat(r->dir_fd, from, r->dir_fd, to) < 0)
		return vss_error_set(err, -errno, "cannot publish backup %s: %s", id,
				     strerror(errno));
	if ((fd = openat(r->dir_fd, "backups", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

/* A backup ID as this code makes them: nothing else is ever opened. */
static bool is_id(const char *s)
{
	static const char shape[] = "ddddddddTdddddd.dddZ-xxxxxxxx";

	if (strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++) {
		bool ok = shape[i] == 'd' ? s[i] >= '0' && s[i] <= '9'
			: shape[i] == 'x' ? (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')
			: s[i] == shape[i];

		if (!ok)
			return false;
	}
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void repo_ids_free(char **ids, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(ids[i]);
	free(ids);
}

int repo_ids(struct vss_repo *r, char ***out, size_t *count, struct vss_error *err)
{
	int fd = openat(r->dir_fd, "backups", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char **ids = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	*out = NULL;
	*count = 0;
	if (fd < 0)
		return vss_error_set(err, -errno, "%s/backups: %s", r->dir, strerror(errno));
	if (!(d = fdopendir(fd))) {
		close(fd);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	while ((de = readdir(d))) {
		if (!is_id(de->d_name))
			continue;
		if (n == cap) {
			char **bigger = realloc(ids, (cap = cap ? 2 * cap : 16) * sizeof(*ids));

			if (!bigger)
				goto oom;
			ids = bigger;
		}
		if (!(ids[n] = strdup(de->d_name)))
			goto oom;
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(ids, n, sizeof(*ids), cmp_str);
	*out = ids;
	*count = n;
	return 0;
oom:
	closedir(d);
	repo_ids_free(ids, n);
	return vss_error_set(err, -ENOMEM, "out of memory");
}

int repo_resolve(struct vss_repo *r, const char *id, char out[VSS_BACKUP_ID_MAX],
		 struct vss_error *err)
{
	char **ids;
	size_t n, found = 0;
	int rc = repo_ids(r, &ids, &n, err);

	if (rc < 0)
		return rc;
	if (!id) {
		if (n == 0)
			rc = vss_error_set(err, -ENOENT, "%s holds no backup", r->dir);
		else
			snprintf(out, VSS_BACKUP_ID_MAX, "%s", ids[n - 1]);
		repo_ids_free(ids, n);
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(ids[i], id, strlen(id)) == 0) {
			if (found++)
				break;
			snprintf(out, VSS_BACKUP_ID_MAX, "%s", ids[i]);
		}
	repo_ids_free(ids, n);
	if (found == 0 || !*id)
		return vss_error_set(err, -ENOENT, "no backup %s in %s", id, r->dir);
	if (found > 1)
		return vss_error_set(err, -EINVAL, "backup ID prefix %s is ambiguous", id);
	return 0;
}

bool repo_live_path_ok(const char *p)
{
	if (p[0] != '/')
		return false;
	for (const char *c = p + 1; *c;) {
		size_t n = strcspn(c, "/");

		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		c += n + (c[n] == '/');
	}
	return true;
}

json_t *repo_read_info(struct vss_repo *r, const char *id, struct vss_error *err)
{
	char path[128];
	json_error_t jerr;
	json_t *j, *src, *live, *v;
	size_t i;
	int fd;

	snprintf(path, sizeof(path), "backups/%s/backup.json", id);
	fd = openat(r->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		vss_error_set(err, -errno, "backup %s: %s", id, strerror(errno));
		return NULL;
	}
	j = json_loadfd(fd, 0, &jerr);
	close(fd);
	if (!j || strcmp(json_string_value(json_object_get(j, "format")) ?: "", "vss-backup") ||
	    json_integer_value(json_object_get(j, "version")) < 1 ||
	    json_integer_value(json_object_get(j, "version")) > REPO_VERSION ||
	    strcmp(json_string_value(json_object_get(j, "id")) ?: "", id) ||
	    !json_is_string(json_object_get(j, "manifest_sha256")) ||
	    !json_is_array(src = json_object_get(j, "sources"))) {
		json_decref(j);
		vss_error_set(err, -EBADMSG, "backup %s: its backup.json is damaged", id);
		return NULL;
	}
	json_array_foreach(src, i, v)
		if (!json_is_string(v) || !repo_live_path_ok(json_string_value(v))) {
			json_decref(j);
			vss_error_set(err, -EBADMSG, "backup %s: its backup.json is damaged", id);
			return NULL;
		}
	/* "live": one null or reason per source, if there at all. */
	if ((live = json_object_get(j, "live")) &&
	    (!json_is_array(live) || json_array_size(live) != json_array_size(src))) {
		json_decref(j);
		vss_error_set(err, -EBADMSG, "backup %s: its backup.json is damaged", id);
		return NULL;
	}
	json_array_foreach(live, i, v)
		if (!json_is_null(v) && !json_is_string(v)) {
			json_decref(j);
			vss_error_set(err, -EBADMSG, "backup %s: its backup.json is damaged", id);
			return NULL;
		}
	return j;
}

bool repo_same_sources(json_t *info, const char *const *live, size_t n)
{
	json_t *src = json_object_get(info, "sources");

	if (json_array_size(src) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(json_string_value(json_array_get(src, i)), live[i]) != 0)
			return false;
	return true;
}

int repo_find_base(struct vss_repo *r, const char *const *live, size_t n,
		   enum vss_backup_type type, char base[VSS_BACKUP_ID_MAX], char sha[SHA256_HEX],
		   struct vss_error *err)
{
	char **ids;
	size_t count;
	int rc;

	base[0] = '\0';
	if (type != VSS_BT_INCREMENTAL && type != VSS_BT_DIFFERENTIAL && type != VSS_BT_LOG)
		return 0;
	if ((rc = repo_ids(r, &ids, &count, err)) < 0)
		return rc;
	for (size_t i = count; i-- > 0 && !base[0];) {
		json_t *j = repo_read_info(r, ids[i], NULL);
		const char *t = json_string_value(json_object_get(j, "type"));

		/* A damaged backup.json is skipped: never a base. */
		if (j && t && repo_same_sources(j, live, n) && strcmp(t, "copy") != 0 &&
		    (type != VSS_BT_DIFFERENTIAL || strcmp(t, "full") == 0)) {
			snprintf(base, VSS_BACKUP_ID_MAX, "%s", ids[i]);
			snprintf(sha, SHA256_HEX, "%s",
				 json_string_value(json_object_get(j, "manifest_sha256")));
		}
		json_decref(j);
	}
	repo_ids_free(ids, count);
	return 0;
}

void repo_info_from_json(json_t *j, struct vss_backup_info *out)
{
	const char *type = json_string_value(json_object_get(j, "type"));

	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", json_string_value(json_object_get(j, "id")));
	for (int t = VSS_BT_FULL; t <= VSS_BT_COPY; t++)
		if (type && strcmp(type, type_names[t]) == 0)
			out->type = t;
	snprintf(out->base, sizeof(out->base), "%s",
		 json_string_value(json_object_get(j, "base")) ?: "");
	out->created_ns = (uint64_t)json_integer_value(json_object_get(j, "created_ns"));
	out->instant_ns = (uint64_t)json_integer_value(json_object_get(j, "instant_ns"));
	out->files = (uint64_t)json_integer_value(json_object_get(j, "files"));
	out->files_stored = (uint64_t)json_integer_value(json_object_get(j, "files_stored"));
	out->bytes_stored = (uint64_t)json_integer_value(json_object_get(j, "bytes_stored"));
	out->deleted = (uint64_t)json_integer_value(json_object_get(j, "deleted"));
	out->nsources = json_array_size(json_object_get(j, "sources"));
}

int vss_repo_list(struct vss_repo *r, struct vss_backup_info **out, size_t *count,
		  struct vss_error *err)
{
	struct vss_backup_info *infos;
	char **ids;
	size_t n, k = 0;
	int rc;

	*out = NULL;
	*count = 0;
	if ((rc = repo_lock(r, LOCK_SH, err)) < 0)
		return rc;
	rc = repo_ids(r, &ids, &n, err);
	if (rc < 0)
		goto out;
	if (!(infos = calloc(n ? n : 1, sizeof(*infos)))) {
		repo_ids_free(ids, n);
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *j = repo_read_info(r, ids[i], err);

		if (!j) {
			rc = err ? err->code : -EBADMSG;
			free(infos);
			repo_ids_free(ids, n);
			goto out;
		}
		repo_info_from_json(j, &infos[k++]);
		json_decref(j);
	}
	repo_ids_free(ids, n);
	*out = infos;
	*count = k;
out:
	repo_unlock(r);
	return rc;
}

int vss_repo_show(struct vss_repo *r, const char *id, struct vss_backup_info *out,
		  struct vss_error *err)
{
	char full[VSS_BACKUP_ID_MAX];
	json_t *j, *v;
	size_t i, max = sizeof(r->sources_buf) / sizeof(r->sources_buf[0]);
	int rc;

	if ((rc = repo_lock(r, LOCK_SH, err)) < 0)
		return rc;
	if ((rc = repo_resolve(r, id, full, err)) < 0)
		goto out;
	if (!(j = repo_read_info(r, full, err))) {
		rc = err ? err->code : -EBADMSG;
		goto out;
	}
	repo_info_from_json(j, out);
	for (i = 0; i < max; i++) {
		free(r->sources_buf[i]);
		free(r->live_buf[i]);
		r->sources_buf[i] = r->live_buf[i] = NULL;
	}
	json_array_foreach(json_object_get(j, "sources"), i, v)
		if (i < max)
			r->sources_buf[i] = strdup(json_string_value(v) ?: "");
	json_array_foreach(json_object_get(j, "live"), i, v)
		if (i < max && json_is_string(v))
			r->live_buf[i] = strdup(json_string_value(v));
	out->nsources = out->nsources < max ? out->nsources : max;
	out->sources = (const char *const *)r->sources_buf;
	json_decref(j);
out:
	repo_unlock(r);
	return rc;
}

const char *vss_repo_show_live(const struct vss_repo *r, size_t i)
{
	return i < sizeof(r->live_buf) / sizeof(r->live_buf[0]) ? r->live_buf[i] : NULL;
}

/* ---- verify ---- */

struct verify {
	struct vss_repo *r;
	const char *id;
	void (*bad)(void *arg, const char *path, const char *why);
	void *arg;
	unsigned long bad_count;
};

static void report(struct verify *v, const char *path, const char *why)
{
	v->bad_count++;
	if (v->bad)
		v->bad(v->arg, path, why);
}

/* The file this backup stores for @e: @size bytes that hash to @sha. */
static void verify_stored(struct verify *v, const struct entry *e, uint64_t size,
			  const char *sha)
{
	char path[PATH_MAX], hex[SHA256_HEX];
	struct stat st;
	int fd, rc;

	repo_data_path(v->id, e->src, e->path, path, sizeof(path));
	fd = openat(v->r->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		report(v, path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
		report(v, path, "its size is not the one recorded");
		close(fd);
		return;
	}
	rc = repo_hash_fd(fd, hex);
	close(fd);
	if (rc < 0)
		report(v, path, strerror(-rc));
	else if (strcmp(hex, sha) != 0)
		report(v, path, "its bytes do not match their checksum");
}

static int verify_entry(void *arg, struct entry *e)
{
	struct verify *v = arg;
	json_t *l;
	size_t i;

	if (e->kind != EK_FILE)
		return 0;
	if (!e->layers) {
		if (strcmp(e->in, v->id) == 0)
			verify_stored(v, e, e->size, e->sha256);
		return 0;
	}
	/* A partial file: the layers this backup stores. */
	json_array_foreach(e->layers, i, l)
		if (strcmp(json_string_value(json_object_get(l, "in")), v->id) == 0)
			verify_stored(v, e, (uint64_t)json_integer_value(json_object_get(l, "size")),
				      json_string_value(json_object_get(l, "sha256")));
	return 0;
}

int vss_repo_verify(struct vss_repo *r, const char *id,
		    void (*bad)(void *arg, const char *path, const char *why), void *arg,
		    struct vss_error *err)
{
	struct verify v = { .r = r, .bad = bad, .arg = arg };
	char **ids = NULL, full[VSS_BACKUP_ID_MAX];
	size_t n = 0;
	int rc;

	if ((rc = repo_lock(r, LOCK_SH, err)) < 0)
		return rc;
	if (id) {
		if ((rc = repo_resolve(r, id, full, err)) < 0)
			goto out;
		if (!(ids = malloc(sizeof(*ids))) || !(ids[0] = strdup(full))) {
			rc = vss_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		n = 1;
	} else if ((rc = repo_ids(r, &ids, &n, err)) < 0) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct vss_error e = { 0 };
		json_t *j = repo_read_info(r, ids[i], &e);
		char where[128];

		snprintf(where, sizeof(where), "backups/%s", ids[i]);
		if (!j) {
			report(&v, where, e.msg);
			continue;
		}
		v.id = ids[i];
		if (image_is(j)) {
			v.bad_count += image_verify(r, ids[i], j, bad, arg);
			json_decref(j);
			continue;
		}
		rc = manifest_each(r, ids[i],
				   json_string_value(json_object_get(j, "manifest_sha256")),
				   verify_entry, &v, &e);
		json_decref(j);
		if (rc < 0)
			report(&v, where, e.msg);
		rc = 0;
	}
	if (v.bad_count)
		rc = vss_error_set(err, -EBADMSG, "%lu damaged file%s in %s", v.bad_count,
				   v.bad_count == 1 ? "" : "s", r->dir);
out:
	repo_ids_free(ids, n);
	repo_unlock(r);
	return rc;
}

/* ---- delete ---- */

int repo_rmtree(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (fd < 0) {
		if (errno == ENOTDIR || errno == ELOOP)
			return unlinkat(dir_fd, name, 0) < 0 ? -errno : 0;
		return errno == ENOENT ? 0 : -errno;
	}
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -ENOMEM;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) {
			int r2 = repo_rmtree(fd, de->d_name);

			if (r2 < 0 && rc == 0)
				rc = r2;
		} else if (unlinkat(fd, de->d_name, 0) < 0 && rc == 0) {
			rc = -errno;
		}
	}
	closedir(d);
	if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* Whether backup @id's depends names @dep. */
static bool depends_on(struct vss_repo *r, const char *id, const char *dep)
{
	json_t *j = repo_read_info(r, id, NULL), *v;
	bool yes = false;
	size_t i;

	json_array_foreach(json_object_get(j, "depends"), i, v)
		yes |= strcmp(json_string_value(v) ?: "", dep) == 0;
	/* A damaged backup.json says nothing: keep what it might need. */
	if (!j)
		yes = true;
	json_decref(j);
	return yes;
}

static int delete_one(struct vss_repo *r, const char *id, struct vss_error *err)
{
	char from[128], to[128];

	snprintf(from, sizeof(from), "backups/%s", id);
	snprintf(to, sizeof(to), "tmp/deleting-%s", id);
	if (renameat(r->dir_fd, from, r->dir_fd, to) < 0)
		return vss_error_set(err, -errno, "cannot delete backup %s: %s", id,
				     strerror(errno));
	fsync(r->dir_fd);
	repo_rmtree(r->dir_fd, to);
	return 0;
}

int vss_repo_delete(struct vss_repo *r, const char *id, bool with_dependents,
		    size_t *deleted, struct vss_error *err)
{
	char full[VSS_BACKUP_ID_MAX], **ids = NULL;
	size_t n = 0, k = 0;
	int rc;

	if (deleted)
		*deleted = 0;
	if ((rc = repo_lock(r, LOCK_EX, err)) < 0)
		return rc;
	if ((rc = repo_resolve(r, id, full, err)) < 0 || (rc = repo_ids(r, &ids, &n, err)) < 0)
		goto out;
	/* Newest first: a dependent goes before what it depends on. */
	for (size_t i = n; i-- > 0;) {
		if (strcmp(ids[i], full) <= 0 || !depends_on(r, ids[i], full))
			continue;
		if (!with_dependents) {
			rc = vss_error_set(err, -EBUSY, "backup %s is needed by backup %s (and "
					   "maybe others): delete them too with "
					   "--with-dependents", full, ids[i]);
			goto out;
		}
	}
	for (size_t i = n; i-- > 0;) {
		if (strcmp(ids[i], full) < 0 ||
		    (strcmp(ids[i], full) > 0 && !depends_on(r, ids[i], full)))
			continue;
		if ((rc = delete_one(r, ids[i], err)) < 0)
			goto out;
		k++;
	}
out:
	if (deleted)
		*deleted = k;
	repo_ids_free(ids, n);
	repo_unlock(r);
	return rc;
}
