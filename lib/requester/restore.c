/*
 * requester/restore.c - a restore with the writers of the backup
 * (vss_requester_restore, vss/requester.h): which components and files,
 * where each goes by its writer's restore method and alternate location
 * mappings, the writers' events through vssd (restore.begin, .prepare,
 * .complete: lib/service/backup.c), services stopped and started, files
 * staged for the next boot; restore_tree.c writes the entries.
 *
 * In order: the backup's components document (components.json) and each
 * writer's metadata as taken (writers/N.json) say which components there
 * are, their files (file sets, matched against the manifest's live paths)
 * and how to restore them.  A first pass over the manifest, which writes
 * nothing, counts each component's files and finds those already there
 * (restore_if_not_there).  Then the writers that take part get
 * pre_restore: one failing ends the restore, nothing written.  Then the
 * entries are restored (a second pass), and the writers get post_restore
 * with each component's status, whatever happened in between.
 *
 * Files staged for the next boot (restore_at_reboot*) are written and
 * checked beside their places under a temporary name, and listed in
 * STATE/restore-at-boot/ID-N.json (a JSON array of {"dir", "staged",
 * "name"}: the directory, absolute, and the two names in it), written
 * whole and synced once the restore succeeded; a restore that fails
 * removes what it staged.  vss_requester_restore_at_boot renames each
 * over its place in list order, the directory reached from "/" without
 * following a symlink, then removes the list.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vss/requester.h>

#include "client/client_json.h"
#include "requester/image_i.h"
#include "requester/lease_i.h"
#include "requester/restore_i.h"
#include "util/struct_in.h"

extern char **environ;

#define MAX_WRITERS 64
#define DEFAULT_STATE_DIR "/var/lib/vss"
#define AT_BOOT_DIR "restore-at-boot"

static const char *const method_names[] = {
	"", "restore_if_not_there", "restore_if_can_replace", "stop_restore_start",
	"restore_to_alternate_location", "restore_at_reboot",
	"restore_at_reboot_if_cannot_replace", "custom", "restore_stop_start",
};

/* A writer of the backup, as it recorded itself. */
struct rwriter {
	const char *name;               /* its metadata's, else its class ID */
	const char *class_id, *instance_id;
	struct vss_wmd *wmd;            /* writers/N.json, or NULL if it kept none */
	struct vss_wmd_restore_method rm;
	bool mapped;                    /* its alternate location mappings apply */
	bool involved;                  /* asked for at restore.begin */
	char taken_by[37];              /* the instance that took part, or "" */
	char *left_out;                 /* why none did, or NULL */
	bool stopped;                   /* its service was stopped */
};

/* A component of the backup's document. */
struct rcomp {
	size_t w;
	const char *lp, *name;          /* borrowed from the document */
	int wmd_index;                  /* in its writer's metadata, or -1 */
	bool selected;
	bool skip;                      /* nothing of it is written (message says why) */
	unsigned long long planned, files, staged;
	bool failed;
	char *message;
};

struct rst {
	struct vss_repo *repo;
	char id[VSS_BACKUP_ID_MAX];
	struct vss_requester_restore_params p;
	struct vss_error *err;
	json_t *sources;                /* backup.json's, borrowed from info */
	json_t *info;
	struct vss_bcd *bcd;            /* components.json, or NULL */
	json_t *doc;                    /* the same as JSON */
	struct rwriter w[MAX_WRITERS];
	size_t nw;
	struct rcomp *c;
	size_t nc;
	bool restricted;                /* components named: only theirs */
	json_t *ancestors;              /* restricted: directories on the way (a set) */
	json_t *staged;                 /* [{dir, staged, name}] */
	struct vss_requester_restore_result *out;
	/* vssd, while writers take part */
	struct vss_client *client;
	pthread_mutex_t call_lock;
	struct req_lease lease;
	bool lease_ready;
	char first_failure[VSS_ERROR_MSG_MAX];  /* of a file, for the components after it */
};

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void set_message(char **m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_message(char **m, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	if (*m)
		return;                 /* the first reason stands */
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	*m = s;
}

/* ---- what the backup kept ---- */

/* backups/ID/NAME, whole, NUL-terminated (malloc'd); NULL with errno. */
static char *read_doc(struct rst *rs, const char *name, size_t *len)
{
	char path[256], *buf = NULL;
	size_t cap = 0, n = 0;
	int fd;

	snprintf(path, sizeof(path), "backups/%s/%s", rs->id, name);
	fd = openat(rs->repo->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	for (;;) {
		ssize_t got;

		if (n + 4096 + 1 > cap) {
			char *bigger = realloc(buf, cap = 2 * cap + 8192);

			if (!bigger || cap > VSS_DOC_SIZE_DEFAULT + 8192) {
				free(bigger ? bigger : buf);
				close(fd);
				errno = bigger ? EFBIG : ENOMEM;
				return NULL;
			}
			buf = bigger;
		}
		got = read(fd, buf + n, cap - n - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;

			free(buf);
			close(fd);
			errno = e;
			return NULL;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* components.json and writers/N.json: the writers and their components. */
static int read_documents(struct rst *rs)
{
	struct vss_wmd *wmds[MAX_WRITERS];
	struct vss_error e;
	size_t nwmd = 0, len;
	char *text;
	int rc;

	if (!(text = read_doc(rs, "components.json", &len)))
		return errno == ENOENT ? 0 : vss_error_set(rs->err, -errno, "backup %s: its "
							   "components.json: %s", rs->id,
							   strerror(errno));
	rc = vss_bcd_parse(text, len, 0, &rs->bcd, &e);
	if (rc == 0)
		rs->doc = json_loads(text, 0, NULL);
	free(text);
	if (rc < 0)
		return vss_error_set(rs->err, -EBADMSG, "backup %s: its components.json is "
				     "damaged: %s", rs->id, e.msg);
	for (size_t i = 1; nwmd < MAX_WRITERS; i++) {
		char name[32];

		snprintf(name, sizeof(name), "writers/%zu.json", i);
		if (!(text = read_doc(rs, name, &len)))
			break;
		rc = vss_wmd_parse(text, len, 0, &wmds[nwmd], &e);
		free(text);
		if (rc < 0) {
			while (nwmd)
				vss_wmd_free(wmds[--nwmd]);
			return vss_error_set(rs->err, -EBADMSG, "backup %s: its %s is damaged: %s",
					     rs->id, name, e.msg);
		}
		nwmd++;
	}
	/* One writer per entry of the document, its metadata the one of the
	 * same instance. */
	for (size_t i = 0; i < vss_bcd_component_count(rs->bcd); i++) {
		struct vss_bcd_component_info ci;
		struct rwriter *w = NULL;
		struct rcomp *c;

		vss_bcd_component_info(vss_bcd_component_at(rs->bcd, i), &ci);
		for (size_t k = 0; k < rs->nw && !w; k++)
			if (strcasecmp(rs->w[k].instance_id, ci.instance_id) == 0)
				w = &rs->w[k];
		if (!w && rs->nw < MAX_WRITERS) {
			w = &rs->w[rs->nw++];
			w->class_id = ci.class_id;
			w->instance_id = ci.instance_id;
			w->name = ci.class_id;
			w->rm.method = VSS_RME_RESTORE_IF_CAN_REPLACE;
			w->rm.writer_restore = VSS_WRE_NEVER;
			for (size_t k = 0; k < nwmd; k++) {
				struct vss_wmd_identity id;

				if (!wmds[k])
					continue;       /* another writer's */
				vss_wmd_identity(wmds[k], &id);
				if (strcasecmp(id.instance_id, ci.instance_id) == 0) {
					w->wmd = wmds[k];
					wmds[k] = NULL;
					w->name = id.writer_name;
					vss_wmd_restore_method(w->wmd, &w->rm);
					break;
				}
			}
		}
		if (!w)
			break;
		if (!(c = realloc(rs->c, (rs->nc + 1) * sizeof(*c)))) {
			rc = vss_error_set(rs->err, -ENOMEM, "out of memory");
			break;
		}
		rs->c = c;
		c = &rs->c[rs->nc++];
		memset(c, 0, sizeof(*c));
		c->w = (size_t)(w - rs->w);
		c->lp = ci.logical_path ? ci.logical_path : "";
		c->name = ci.name;
		c->wmd_index = w->wmd ? vss_wmd_find_component(w->wmd, c->lp, c->name) : -1;
	}
	for (size_t k = 0; k < nwmd; k++)
		vss_wmd_free(wmds[k]);
	return rc < 0 ? rc : 0;
}

static bool writer_is(const struct rwriter *w, const char *s, size_t n)
{
	return (strlen(w->name) == n && strncmp(w->name, s, n) == 0) ||
	       (strlen(w->class_id) == n && strncasecmp(w->class_id, s, n) == 0) ||
	       (strlen(w->instance_id) == n && strncasecmp(w->instance_id, s, n) == 0);
}

/* Whether component @c is "PATH" or below it. */
static bool component_is(const struct rcomp *c, const char *path)
{
	size_t n = strlen(path), l = strlen(c->lp);
	char *full;
	bool yes;

	while (n > 0 && path[n - 1] == '/')
		n--;
	if (n == 0)
		return true;
	if (asprintf(&full, "%s%s%s", c->lp, *c->lp ? "/" : "", c->name) < 0)
		return false;
	yes = (strlen(full) == n && strncmp(full, path, n) == 0) ||
	      (l >= n && strncmp(c->lp, path, n) == 0 && (l == n || c->lp[n] == '/'));
	free(full);
	return yes;
}

/* The components the restore selected: every one, or those named. */
static int select_components(struct rst *rs)
{
	for (size_t i = 0; i < rs->nc; i++)
		rs->c[i].selected = rs->p.ncomponents == 0;
	rs->restricted = rs->p.ncomponents > 0;
	for (size_t s = 0; s < rs->p.ncomponents; s++) {
		const char *spec = rs->p.components[s], *colon = strchr(spec, ':'), *path = spec;
		size_t found = 0;
		bool by_writer = false;

		/* "WRITER:PATH" when the part before ':' names a writer. */
		for (size_t k = 0; colon && k < rs->nw; k++)
			by_writer |= writer_is(&rs->w[k], spec, (size_t)(colon - spec));
		if (by_writer)
			path = colon + 1;
		for (size_t i = 0; i < rs->nc; i++) {
			struct rcomp *c = &rs->c[i];

			if (by_writer && !writer_is(&rs->w[c->w], spec, (size_t)(colon - spec)))
				continue;
			if (component_is(c, path)) {
				c->selected = true;
				found++;
			}
		}
		if (!found)
			return vss_error_set(rs->err, -ENOENT, "backup %s has no component %s%s",
					     rs->id, spec, rs->nc ? "" : " (it has none)");
	}
	return 0;
}

/* ---- which component a file is, and where it goes ---- */

/* Whether @live is a file of (@dir, @spec, @recursive). */
static bool in_file_set(const char *live, const char *dir, const char *spec, bool recursive)
{
	size_t n = strlen(dir);
	const char *base = strrchr(live, '/');

	if (n == 1)
		n = 0;                  /* "/" */
	if (strncmp(live, dir, n) != 0 || live[n] != '/' || !base)
		return false;
	if (fnmatch(spec, base + 1, 0) != 0)
		return false;
	return recursive || base == live + n;
}

/* The selected component @live is a file of, or NULL. */
static struct rcomp *component_of(struct rst *rs, const char *live)
{
	for (size_t i = 0; i < rs->nc; i++) {
		struct rcomp *c = &rs->c[i];
		struct vss_wmd *wmd = rs->w[c->w].wmd;

		if (!c->selected || c->wmd_index < 0)
			continue;
		for (size_t j = 0; j < vss_wmd_file_set_count(wmd, (size_t)c->wmd_index); j++) {
			struct vss_wmd_file_set fs;

			vss_wmd_file_set(wmd, (size_t)c->wmd_index, j, &fs);
			if (in_file_set(live, fs.path, fs.file_spec, fs.recursive))
				return c;
		}
	}
	return NULL;
}

/* Where @live goes by @w's alternate location mappings (malloc'd), or NULL
 * if none covers it: a file (@dir false) matched by a mapping, or a
 * directory at or below a mapping's path. */
static char *mapped(const struct rwriter *w, const char *live, bool dir)
{
	for (size_t i = 0; w->mapped && i < vss_wmd_alternate_location_count(w->wmd); i++) {
		struct vss_wmd_file_spec m;
		size_t n;
		char *out;

		vss_wmd_alternate_location(w->wmd, i, &m);
		n = strcmp(m.path, "/") == 0 ? 0 : strlen(m.path);
		if (!(dir ? strncmp(live, m.path, n) == 0 &&
			    (live[n] == '\0' || live[n] == '/') &&
			    (m.recursive || !strchr(live + n + (live[n] == '/'), '/'))
			  : in_file_set(live, m.path, m.file_spec, m.recursive)))
			continue;
		if (asprintf(&out, "%s%s", strcmp(m.destination, "/") == 0 && live[n] ? "" :
			     m.destination, live + n) < 0)
			return NULL;
		return out;
	}
	return NULL;
}

/* @path under --to (malloc'd). */
static char *under_to(const struct rst *rs, const char *path)
{
	char *out;

	if (asprintf(&out, "%s%s", rs->p.to ? rs->p.to : "",
		     rs->p.to && strcmp(path, "/") == 0 ? "" : path) < 0)
		return NULL;
	return out;
}

/* ---- the first pass: count, and find what is there ---- */

static const char *live_of(struct rst *rs, unsigned int src)
{
	return json_string_value(json_array_get(rs->sources, src - 1));
}

/* Adds the directories above @live (up to its source) to the set. */
static void add_ancestors(struct rst *rs, const char *live)
{
	char *copy = strdup(live), *slash;

	while (copy && (slash = strrchr(copy, '/')) && slash != copy) {
		*slash = '\0';
		json_object_set_new_nocheck(rs->ancestors, copy, json_true());
	}
	if (copy && strcmp(live, "/") != 0)
		json_object_set_new_nocheck(rs->ancestors, "/", json_true());
	free(copy);
}

static int plan_entry(void *arg, struct entry *e)
{
	struct rst *rs = arg;
	const char *src = live_of(rs, e->src);
	struct rcomp *c;
	char *live, *dest, *where;
	struct stat st;

	if (!src || e->kind == EK_GONE || e->kind == EK_SOCK)
		return 0;
	if (asprintf(&live, "%s%s%s", src, *e->path ? "/" : "", e->path) < 0)
		return vss_error_set(rs->err, -ENOMEM, "out of memory");
	if (!restore_wanted(rs->p.paths, rs->p.npaths, live) || !(c = component_of(rs, live))) {
		free(live);
		return 0;
	}
	if (rs->restricted)
		add_ancestors(rs, live);
	if (e->kind != EK_DIR)
		c->planned++;
	/* restore_if_not_there: is a file of it where it would go? */
	if (e->kind != EK_DIR && !c->message &&
	    rs->w[c->w].rm.method == VSS_RME_RESTORE_IF_NOT_THERE) {
		dest = mapped(&rs->w[c->w], live, false);
		where = under_to(rs, dest ? dest : live);
		if (where && lstat(where, &st) == 0)
			set_message(&c->message, "restore_if_not_there: %s is there", where);
		free(where);
		free(dest);
	}
	free(live);
	return 0;
}

/* ---- the second pass: restore_tree's hooks ---- */

static void tell_file(struct rst *rs, const char *live, const char *path,
		      enum vss_file_restore_status st, const char *why)
{
	if (rs->p.file)
		rs->p.file(rs->p.arg, &(struct vss_requester_restored_file){
			.live = live, .path = path, .status = st, .why = why });
}

/* Whether a component of writer @k is selected. */
static bool writer_selected(const struct rst *rs, size_t k)
{
	for (size_t i = 0; i < rs->nc; i++)
		if (rs->c[i].w == k && rs->c[i].selected)
			return true;
	return false;
}

static int choose(void *arg, const struct entry *e, const char *live, struct restore_choice *ch)
{
	struct rst *rs = arg;
	struct rcomp *c = component_of(rs, live);
	struct rwriter *w;

	if (!c) {
		/* A directory a mapping covers goes there, with what is in it. */
		for (size_t k = 0; e->kind == EK_DIR && k < rs->nw; k++)
			if (rs->w[k].mapped && writer_selected(rs, k) &&
			    (ch->dest = mapped(&rs->w[k], live, true)))
				return 0;
		if (rs->restricted)
			ch->action = e->kind == EK_DIR &&
				     json_object_get(rs->ancestors, live) ? RA_ENSURE : RA_SKIP;
		return 0;
	}
	if (c->skip) {
		ch->action = RA_SKIP;
		if (e->kind != EK_DIR) {
			rs->out->left++;
			tell_file(rs, live, NULL, VSS_RS_NONE, c->message);
		}
		return 0;
	}
	w = &rs->w[c->w];
	ch->dest = mapped(w, live, e->kind == EK_DIR);
	if (e->kind == EK_HARD) {
		char *target;
		bool ok;

		if (asprintf(&target, "%s/%s", live_of(rs, e->src), e->link) < 0)
			return vss_error_set(rs->err, -ENOMEM, "out of memory");
		/* Linked to what is restored, never to a file left as it is. */
		ok = !rs->restricted || component_of(rs, target);
		ch->link_dest = ok ? mapped(w, target, false) : NULL;
		free(target);
		if (!ok)
			return vss_error_set(rs->err, -EXDEV, "cannot restore %s: it is a hard "
					     "link to a file of no component being restored", live);
	}
	if (!rs->p.to && e->kind != EK_DIR && w->rm.method == VSS_RME_RESTORE_AT_REBOOT)
		ch->action = RA_STAGE;
	else if (!rs->p.to && e->kind != EK_DIR &&
		 w->rm.method == VSS_RME_RESTORE_AT_REBOOT_IF_CANNOT_REPLACE)
		ch->action = RA_STAGE_IF_CANNOT_REPLACE;
	return 0;
}

static void done(void *arg, const struct restore_done *d)
{
	struct rst *rs = arg;
	struct rcomp *c = component_of(rs, d->live);

	if (d->status == VSS_RS_FAILED && !rs->first_failure[0])
		snprintf(rs->first_failure, sizeof(rs->first_failure), "%s",
			 d->why ? d->why : strerror(-d->rc));
	if (c && d->status == VSS_RS_FAILED) {
		c->failed = true;
		set_message(&c->message, "%s", rs->first_failure);
	} else if (c) {
		c->files++;
		c->staged += d->status == VSS_RS_STAGED;
	}
	rs->out->staged += d->status == VSS_RS_STAGED;
	tell_file(rs, d->live, d->status == VSS_RS_FAILED ? NULL : d->where, d->status,
		  d->status == VSS_RS_FAILED ? rs->first_failure : NULL);
}

static int staged(void *arg, const char *dir, const char *tmp, const char *name,
		  struct vss_error *err)
{
	struct rst *rs = arg;

	if (json_array_append_new(rs->staged, json_pack("{s:s, s:s, s:s}", "dir", dir,
							"staged", tmp, "name", name)) < 0)
		return vss_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* Directory @abs (absolute), reached from "/" without following a
 * symlink. */
static int open_abs_dir(const char *abs)
{
	int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;

	if (root < 0)
		return -errno;
	fd = abs[1] ? restore_openat2(root, abs + 1, O_RDONLY | O_DIRECTORY)
		    : fcntl(root, F_DUPFD_CLOEXEC, 0);
	close(root);
	return fd;
}

/* A restore that failed keeps nothing for the next boot. */
static void unstage(struct rst *rs)
{
	json_t *s;
	size_t i;

	json_array_foreach(rs->staged, i, s) {
		int fd = open_abs_dir(json_string_value(json_object_get(s, "dir")));

		if (fd < 0)
			continue;
		unlinkat(fd, json_string_value(json_object_get(s, "staged")), 0);
		close(fd);
	}
	json_array_clear(rs->staged);
}

static const char *state_dir(const char *given)
{
	const char *env = getenv("VSS_STATE_DIR");

	return given ? given : env && *env ? env : DEFAULT_STATE_DIR;
}

/* Writes the list of what waits for the next boot, whole and synced. */
static int write_staged(struct rst *rs)
{
	const char *st = state_dir(rs->p.state_dir);
	char dir[PATH_MAX], name[128], *text;
	int fd, rc;

	if (json_array_size(rs->staged) == 0)
		return 0;
	snprintf(dir, sizeof(dir), "%s/%s", st, AT_BOOT_DIR);
	if ((mkdir(st, 0700) < 0 && errno != EEXIST) || (mkdir(dir, 0700) < 0 && errno != EEXIST))
		return vss_error_set(rs->err, -errno, "cannot make %s: %s", dir, strerror(errno));
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return vss_error_set(rs->err, -errno, "cannot open %s: %s", dir, strerror(errno));
	snprintf(name, sizeof(name), "%s-%ld-%d.json", rs->id, (long)time(NULL), (int)getpid());
	text = json_dumps(rs->staged, JSON_INDENT(1));
	rc = text ? repo_write_file(fd, name, text) : -ENOMEM;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	free(text);
	close(fd);
	if (rc < 0)
		return vss_error_set(rs->err, rc, "cannot write %s/%s: %s", dir, name,
				     strerror(-rc));
	return 0;
}

/* ---- services: systemctl ---- */

/* A unit name as systemd spells them: nothing a shell or an option could
 * make more of. */
static bool unit_name_ok(const char *s)
{
	if (!s || !*s || *s == '-' || strlen(s) > 255)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && !strchr(":-_.@\\", *s))
			return false;
	return true;
}

/* systemctl @verb @unit (the one in PATH); 0, or why not in @why. */
static int systemctl(const char *verb, const char *unit, char *why, size_t len)
{
	char *argv[] = { "systemctl", (char *)verb, "--", (char *)unit, NULL };
	int status, rc;
	pid_t pid;

	if (!unit_name_ok(unit)) {
		snprintf(why, len, "refusing to run systemctl on \"%s\": not a unit name", unit);
		return -EINVAL;
	}
	if ((rc = posix_spawnp(&pid, "systemctl", NULL, NULL, argv, environ)) != 0) {
		snprintf(why, len, "cannot run systemctl: %s", strerror(rc));
		return -rc;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(why, len, "systemctl %s %s: %s", verb, unit, strerror(errno));
			return -errno;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	snprintf(why, len, "systemctl %s %s failed (%s %d)", verb, unit,
		 WIFEXITED(status) ? "exit status" : "signal",
		 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return -EIO;
}

/* Whether the restore writes files of writer @k at their live places. */
static bool writes_in_place(const struct rst *rs, size_t k)
{
	if (rs->p.to)
		return false;
	for (size_t i = 0; i < rs->nc; i++)
		if (rs->c[i].w == k && rs->c[i].selected && !rs->c[i].skip && rs->c[i].planned)
			return true;
	return false;
}

/* stop_restore_start: the writers' services stop before their files. */
static void stop_services(struct rst *rs)
{
	for (size_t k = 0; k < rs->nw; k++) {
		struct rwriter *w = &rs->w[k];
		char why[512];

		if (w->rm.method != VSS_RME_STOP_RESTORE_START || !writes_in_place(rs, k))
			continue;
		if (systemctl("stop", w->rm.service, why, sizeof(why)) == 0) {
			w->stopped = true;
			continue;
		}
		/* Its files are not written under a running service. */
		for (size_t i = 0; i < rs->nc; i++)
			if (rs->c[i].w == k && rs->c[i].selected) {
				rs->c[i].skip = true;
				set_message(&rs->c[i].message, "%s; its files were left as they "
					    "were", why);
			}
	}
}

/* After the files: the services stopped start again, and restore_stop_start
 * restarts its.  The first failure goes to @err (as the restore's). */
static int start_services(struct rst *rs, int rc)
{
	for (size_t k = 0; k < rs->nw; k++) {
		struct rwriter *w = &rs->w[k];
		char why[512];
		int r = 0;

		if (w->stopped)
			r = systemctl("start", w->rm.service, why, sizeof(why));
		else if (w->rm.method == VSS_RME_RESTORE_STOP_START && writes_in_place(rs, k))
			r = systemctl("restart", w->rm.service, why, sizeof(why));
		if (r == 0)
			continue;
		for (size_t i = 0; i < rs->nc; i++)
			if (rs->c[i].w == k && rs->c[i].selected)
				set_message(&rs->c[i].message, "%s", why);
		if (rc == 0)
			rc = vss_error_set(rs->err, r, "%s", why);
	}
	return rc;
}

/* ---- the writers, through vssd ---- */

static int call(struct rst *rs, const char *op, json_t *args, json_t **res)
{
	json_t *out = NULL;
	int rc;

	pthread_mutex_lock(&rs->call_lock);
	rc = vss_client_call_json(rs->client, op, args, &out, rs->err);
	pthread_mutex_unlock(&rs->call_lock);
	if (res)
		*res = out;
	else
		json_decref(out);
	return rc;
}

/* The document restore.begin gets: the entries of the writers that take
 * part, with their selected components. */
static json_t *begin_doc(struct rst *rs)
{
	json_t *doc = json_deep_copy(rs->doc), *entries = json_array(), *e, *comp;
	size_t i, j;

	json_array_foreach(json_object_get(rs->doc, "writers"), i, e) {
		const char *inst = json_string_value(json_object_get(e, "writer_instance_id"));
		json_t *mine = json_deep_copy(e), *comps = json_array();

		json_array_foreach(json_object_get(e, "components"), j, comp) {
			const char *lp = json_string_value(json_object_get(comp, "logical_path"));
			const char *name = json_string_value(json_object_get(comp, "name"));

			for (size_t k = 0; k < rs->nc; k++)
				if (rs->c[k].selected && rs->w[rs->c[k].w].involved &&
				    strcasecmp(rs->w[rs->c[k].w].instance_id, inst) == 0 &&
				    strcmp(rs->c[k].lp, lp ? lp : "") == 0 &&
				    strcmp(rs->c[k].name, name) == 0)
					json_array_append(comps, comp);
		}
		if (json_array_size(comps)) {
			json_object_set_new(mine, "components", comps);
			json_array_append_new(entries, mine);
		} else {
			json_decref(comps);
			json_decref(mine);
		}
	}
	json_object_set_new(doc, "writers", entries);
	return doc;
}

/* Where each file set of @c goes. */
static json_t *locations(struct rst *rs, const struct rcomp *c, bool *original)
{
	const struct rwriter *w = &rs->w[c->w];
	json_t *arr = json_array();

	*original = !rs->p.to;
	for (size_t j = 0; c->wmd_index >= 0 &&
	     j < vss_wmd_file_set_count(w->wmd, (size_t)c->wmd_index); j++) {
		struct vss_wmd_file_set fs;
		char *m, *dest;

		vss_wmd_file_set(w->wmd, (size_t)c->wmd_index, j, &fs);
		m = mapped(w, fs.path, true);
		dest = under_to(rs, m ? m : fs.path);
		*original &= !m;
		json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:s}", "path", fs.path,
						     "file_spec", fs.file_spec,
						     "recursive", fs.recursive, "destination",
						     dest ? dest : fs.path));
		free(m);
		free(dest);
	}
	return arr;
}

/* What the restore did with the files of @c. */
static enum vss_file_restore_status status_of(const struct rcomp *c)
{
	if (c->failed)
		return VSS_RS_FAILED;
	if (c->skip || c->files < c->planned)
		return c->files ? VSS_RS_FAILED : VSS_RS_NONE;
	return c->staged ? VSS_RS_STAGED : VSS_RS_ALL;
}

/* The "restore" argument of restore.prepare and (@post) restore.complete. */
static json_t *restore_json(struct rst *rs, bool post)
{
	json_t *comps = json_array();

	for (size_t i = 0; i < rs->nc; i++) {
		struct rcomp *c = &rs->c[i];
		struct rwriter *w = &rs->w[c->w];
		json_t *o;
		bool orig;

		if (!c->selected || !w->taken_by[0])
			continue;
		o = json_pack("{s:s, s:s, s:s, s:s, s:o}", "writer_instance_id", w->taken_by,
			      "logical_path", c->lp, "name", c->name, "method",
			      method_names[w->rm.method], "locations", locations(rs, c, &orig));
		json_object_set_new(o, "original_location", json_boolean(orig));
		if (post) {
			json_object_set_new(o, "status", json_string(
				vss_file_restore_status_name(status_of(c))));
			json_object_set_new(o, "files", json_integer((json_int_t)c->files));
			if (c->message)
				json_object_set_new(o, "message", json_string(c->message));
		}
		json_array_append_new(comps, o);
	}
	return json_pack("{s:s, s:s*, s:o}", "backup", rs->id, "to", rs->p.to, "components",
			 comps);
}

/* restore.begin: vssd matches the writers; which took part, which not. */
static int writers_begin(struct rst *rs)
{
	json_t *doc = begin_doc(rs), *res = NULL, *x;
	char *text = json_dumps(doc, JSON_COMPACT);
	size_t i;
	int rc;

	json_decref(doc);
	if (!text)
		return vss_error_set(rs->err, -ENOMEM, "out of memory");
	if (vss_client_open(vss_client_run_dir(rs->p.run_dir), &rs->client, rs->err) < 0) {
		char why[VSS_ERROR_MSG_MAX];

		free(text);
		snprintf(why, sizeof(why), "%s", rs->err ? rs->err->msg : "");
		return vss_error_set(rs->err, -ENOTCONN, "%s: the writers of backup %s take part "
				     "in its restore (without them: no_writers, vss restore "
				     "--no-writers)", why, rs->id);
	}
	pthread_mutex_init(&rs->call_lock, NULL);
	req_lease_init(&rs->lease, rs->client, &rs->call_lock);
	rs->lease_ready = true;
	rc = call(rs, "restore.begin", json_pack("{s:s, s:I}", "components", text,
						 "timeout_ms", (json_int_t)(rs->p.timeout_ms ?
									    rs->p.timeout_ms :
									    60000)), &res);
	free(text);
	if (rc < 0)
		return rc;
	req_lease_start(&rs->lease, (unsigned long long)json_integer_value(
				json_object_get(res, "lease_ms")));
	json_array_foreach(json_object_get(res, "writers"), i, x) {
		const char *was = json_string_value(json_object_get(x, "backup_instance"));

		for (size_t k = 0; was && k < rs->nw; k++)
			if (strcasecmp(rs->w[k].instance_id, was) == 0) {
				snprintf(rs->w[k].taken_by, sizeof(rs->w[k].taken_by), "%s",
					 json_string_value(json_object_get(x, "instance")));
				rs->out->writers++;
			}
	}
	json_array_foreach(json_object_get(res, "left_out"), i, x) {
		const char *was = json_string_value(json_object_get(x, "writer_instance_id"));

		for (size_t k = 0; was && k < rs->nw; k++)
			if (strcasecmp(rs->w[k].instance_id, was) == 0)
				rs->w[k].left_out = xstrdup(json_string_value(json_object_get(x,
											"why")));
	}
	json_decref(res);
	return 0;
}

/* restore.complete: post_restore; a writer's failure is the restore's. */
static int writers_complete(struct rst *rs, int rc)
{
	json_t *res = NULL, *f;
	struct vss_error keep = { 0 };
	size_t i;
	int r;

	if (rs->err && rc < 0)
		keep = *rs->err;
	r = call(rs, "restore.complete", json_pack("{s:o}", "restore", restore_json(rs, true)),
		 &res);
	json_array_foreach(json_object_get(res, "failures"), i, f) {
		const char *inst = json_string_value(json_object_get(f, "instance"));
		const char *msg = json_string_value(json_object_get(f, "message"));

		for (size_t k = 0; k < rs->nc; k++)
			if (strcasecmp(rs->w[rs->c[k].w].taken_by, inst ? inst : "") == 0)
				set_message(&rs->c[k].message, "%s", msg);
		if (r == 0 && rc == 0)
			r = vss_error_set(rs->err, -EIO, "%s", msg);
	}
	json_decref(res);
	if (rc < 0) {
		if (rs->err)
			*rs->err = keep;
		return rc;
	}
	return r;
}

/* ---- the restore ---- */

static void report_components(struct rst *rs)
{
	for (size_t i = 0; i < rs->nc; i++) {
		struct rcomp *c = &rs->c[i];
		struct rwriter *w = &rs->w[c->w];
		enum vss_file_restore_status st;

		if (!c->selected)
			continue;
		st = status_of(c);
		if (st != VSS_RS_ALL && st != VSS_RS_STAGED && rs->first_failure[0])
			set_message(&c->message, "the restore stopped: %s", rs->first_failure);
		if (w->involved && !w->taken_by[0] && w->left_out)
			set_message(&c->message, "restored without its writer: %s", w->left_out);
		if (rs->p.component)
			rs->p.component(rs->p.arg, &(struct vss_requester_restored_component){
				.writer = w->name, .logical_path = c->lp, .name = c->name,
				.method = w->rm.method, .status = st, .files = c->files,
				.taken_by = w->taken_by[0] ? w->taken_by : NULL,
				.message = c->message });
	}
}

/* What each selected component's restore method decides before anything
 * is written. */
static void decide(struct rst *rs)
{
	for (size_t i = 0; i < rs->nc; i++) {
		struct rcomp *c = &rs->c[i];
		struct rwriter *w = &rs->w[c->w];

		if (!c->selected)
			continue;
		if (!w->wmd)
			set_message(&c->message, "the backup kept no metadata of writer %s: its "
				    "files are restored as the others", w->name);
		else if (c->wmd_index < 0)
			set_message(&c->message, "the metadata of writer %s has no such component",
				    w->name);
		if (w->rm.method == VSS_RME_CUSTOM) {
			c->skip = true;
			set_message(&c->message, "restored by hand (custom): %s",
				    w->rm.user_procedure ? w->rm.user_procedure : "");
		}
		if (w->rm.method == VSS_RME_RESTORE_IF_NOT_THERE && c->message &&
		    strncmp(c->message, "restore_if_not_there", 20) == 0)
			c->skip = true;
		w->involved |= !rs->p.no_writers && w->wmd &&
			       w->rm.writer_restore != VSS_WRE_NEVER;
	}
}

static int run(struct rst *rs)
{
	struct vss_restore_params tp = {
		.size = sizeof(tp), .to = rs->p.to, .paths = rs->p.paths, .npaths = rs->p.npaths,
		.progress = rs->p.progress, .progress_arg = rs->p.progress_arg };
	struct restore_hooks h = { .choose = choose, .done = done, .staged = staged,
				   .arg = rs };
	struct vss_restore_result tr = { 0 };
	bool any = false;
	int rc;

	if ((rc = read_documents(rs)) < 0 || (rc = select_components(rs)) < 0)
		return rc;
	rs->sources = json_object_get(rs->info, "sources");
	rc = manifest_each(rs->repo, rs->id, json_string_value(json_object_get(
				   rs->info, "manifest_sha256")), plan_entry, rs, rs->err);
	if (rc < 0)
		return rc;
	for (size_t k = 0; k < rs->nw; k++)
		rs->w[k].mapped = rs->w[k].wmd && (rs->p.to || rs->w[k].rm.method ==
						    VSS_RME_RESTORE_TO_ALTERNATE_LOCATION);
	decide(rs);
	for (size_t k = 0; k < rs->nw; k++)
		any |= rs->w[k].involved;
	/* pre_restore: a writer refusing ends it here, nothing written. */
	if (any && (rc = writers_begin(rs)) == 0 &&
	    (rc = call(rs, "restore.prepare", json_pack("{s:o}", "restore",
							restore_json(rs, false)), NULL)) < 0) {
		for (size_t i = 0; i < rs->nc; i++)
			if (rs->c[i].selected && rs->w[rs->c[i].w].taken_by[0])
				set_message(&rs->c[i].message, "%s", rs->err ? rs->err->msg : "");
		for (size_t i = 0; i < rs->nc; i++)
			rs->c[i].skip = true;
		report_components(rs);
		return rc;
	}
	if (rc < 0)
		return rc;
	stop_services(rs);
	rc = restore_tree(rs->repo, rs->id, &tp, &h, &tr, rs->err);
	rs->out->files = tr.files;
	rs->out->bytes = tr.bytes;
	if (rc == 0)
		rc = write_staged(rs);
	if (rc < 0) {
		unstage(rs);
		rs->out->staged = 0;
		/* Nothing waits for the next boot; a component without files
		 * (a writer's own, as the hooks') shares the restore's end. */
		for (size_t i = 0; i < rs->nc; i++) {
			rs->c[i].staged = 0;
			rs->c[i].failed |= rs->c[i].selected && !rs->c[i].skip &&
					   rs->c[i].planned == 0;
			if (rs->c[i].failed)
				set_message(&rs->c[i].message, "the restore failed: %s",
					    rs->err ? rs->err->msg : "");
		}
	}
	rc = start_services(rs, rc);
	if (rs->client)
		rc = writers_complete(rs, rc);
	report_components(rs);
	return rc;
}

/* An image of a volume: no writer has components in it, nothing to choose
 * in it; written whole (image.c). */
static int restore_image(struct rst *rs)
{
	struct vss_restore_params rp = { .size = sizeof(rp), .to = rs->p.to,
					 .progress = rs->p.progress,
					 .progress_arg = rs->p.progress_arg };
	struct vss_restore_result res;
	int rc;

	if (rs->p.npaths || rs->p.ncomponents)
		return vss_error_set(rs->err, -EINVAL, "backup %s is an image of a volume: it is "
				     "restored whole (no --path, no --component)", rs->id);
	rc = image_restore(rs->repo, rs->id, &rp, &res, rs->err);
	rs->out->files = res.files;
	rs->out->bytes = res.bytes;
	return rc;
}

int vss_requester_restore(struct vss_repo *repo, const char *id,
			  const struct vss_requester_restore_params *p,
			  struct vss_requester_restore_result *out, struct vss_error *err)
{
	struct rst *rs;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!(rs = calloc(1, sizeof(*rs))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	rs->p = (struct vss_requester_restore_params)VSS_REQUESTER_RESTORE_PARAMS_INIT;
	if (!p) {
		free(rs);
		return vss_error_set(err, -EINVAL, "struct vss_requester_restore_params: none");
	}
	if ((rc = vss_struct_in(&rs->p, sizeof(rs->p), p, p->size,
				VSS_SIZE_TO(struct vss_requester_restore_params, arg),
				"struct vss_requester_restore_params", err)) < 0) {
		free(rs);
		return rc;
	}
	if (rs->p.to && rs->p.to[0] != '/') {
		rc = vss_error_set(err, -EINVAL, "the place to restore to must be an absolute "
				   "path (%s)", rs->p.to);
		free(rs);
		return rc;
	}
	rs->repo = repo;
	rs->err = err;
	rs->out = out;
	rs->ancestors = json_object();
	rs->staged = json_array();
	if ((rc = repo_lock(repo, LOCK_SH, err)) < 0)
		goto out;
	if ((rc = repo_resolve(repo, id, rs->id, err)) == 0) {
		if (!(rs->info = repo_read_info(repo, rs->id, err)))
			rc = err ? err->code : -EBADMSG;
		else if (image_is(rs->info))
			rc = restore_image(rs);
		else
			rc = run(rs);
	}
	repo_unlock(repo);
out:
	if (rs->lease_ready)
		req_lease_release(&rs->lease);
	if (rs->client) {
		vss_client_close(rs->client);     /* vssd aborts what is left */
		pthread_mutex_destroy(&rs->call_lock);
	}
	for (size_t k = 0; k < rs->nw; k++) {
		vss_wmd_free(rs->w[k].wmd);
		free(rs->w[k].left_out);
	}
	for (size_t i = 0; i < rs->nc; i++)
		free(rs->c[i].message);
	free(rs->c);
	vss_bcd_free(rs->bcd);
	json_decref(rs->doc);
	json_decref(rs->info);
	json_decref(rs->ancestors);
	json_decref(rs->staged);
	free(rs);
	return rc;
}

/* ---- at boot ---- */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One list: each file renamed over its place, in order. */
static int apply_list(int dir_fd, const char *list,
		      void (*file)(void *, const struct vss_requester_restored_file *),
		      void *arg, unsigned long long *count, struct vss_error *err)
{
	json_error_t jerr;
	json_t *arr, *s;
	size_t i;
	int fd = openat(dir_fd, list, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc = 0;

	if (fd < 0)
		return vss_error_set(err, -errno, "%s: %s", list, strerror(errno));
	arr = json_loadfd(fd, 0, &jerr);
	close(fd);
	if (!json_is_array(arr)) {
		json_decref(arr);
		return vss_error_set(err, -EBADMSG, "%s is damaged: %s", list, jerr.text);
	}
	json_array_foreach(arr, i, s) {
		const char *dir = json_string_value(json_object_get(s, "dir"));
		const char *tmp = json_string_value(json_object_get(s, "staged"));
		const char *name = json_string_value(json_object_get(s, "name"));
		char *path = NULL, why[512] = "";
		int d = -1, r = -EBADMSG;

		if (dir && tmp && name && dir[0] == '/' && !strchr(tmp, '/') && !strchr(name, '/') &&
		    asprintf(&path, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name) >= 0) {
			d = open_abs_dir(dir);
			r = d < 0 ? d : renameat(d, tmp, d, name) < 0 ? -errno : 0;
			if (r == 0)
				fsync(d);
		}
		if (d >= 0)
			close(d);
		if (r < 0) {
			snprintf(why, sizeof(why), "cannot put %s/%s in place: %s", dir ? dir : "?",
				 tmp ? tmp : "?", strerror(-r));
			if (rc == 0)
				rc = vss_error_set(err, r, "%s", why);
		} else {
			(*count)++;
		}
		if (file)
			file(arg, &(struct vss_requester_restored_file){
				.live = path ? path : "?", .path = r == 0 ? path : NULL,
				.status = r == 0 ? VSS_RS_ALL : VSS_RS_FAILED,
				.why = r == 0 ? NULL : why });
		free(path);
	}
	json_decref(arr);
	return rc;
}

int vss_requester_restore_at_boot(const char *state,
				  void (*file)(void *arg,
					       const struct vss_requester_restored_file *f),
				  void *arg, unsigned long long *count, struct vss_error *err)
{
	char dir[PATH_MAX], **names = NULL;
	unsigned long long n = 0;
	size_t nn = 0;
	struct dirent *e;
	DIR *d;
	int rc = 0;

	snprintf(dir, sizeof(dir), "%s/%s", state_dir(state), AT_BOOT_DIR);
	if (count)
		*count = 0;
	if (!(d = opendir(dir)))
		return errno == ENOENT ? 0 : vss_error_set(err, -errno, "%s: %s", dir,
							   strerror(errno));
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		char **more;

		if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		if (!(more = realloc(names, (nn + 1) * sizeof(*names))) ||
		    !(more[nn] = strdup(e->d_name))) {
			names = more ? more : names;
			rc = vss_error_set(err, -ENOMEM, "out of memory");
			break;
		}
		names = more;
		nn++;
	}
	if (nn > 1)
		qsort(names, nn, sizeof(*names), cmp_names);
	for (size_t i = 0; rc == 0 && i < nn; i++) {
		struct vss_error e2 = { 0 };
		int r = apply_list(dirfd(d), names[i], file, arg, &n, &e2);

		/* Done with, whatever could not be put in place (said once). */
		unlinkat(dirfd(d), names[i], 0);
		if (r < 0 && rc == 0) {
			rc = r;
			if (err)
				*err = e2;
		}
	}
	if (rc == 0 || nn)
		fsync(dirfd(d));
	closedir(d);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	if (count)
		*count = n;
	return rc;
}
