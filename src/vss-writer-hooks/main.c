/*
 * vss-writer-hooks - a writer that runs the executables of a directory with
 * "freeze" before a set's freeze and "thaw" after it, in name order (the
 * qemu-guest-agent fsfreeze-hook.d convention).  A hook that fails or
 * outlives --timeout fails the writer at Freeze, which aborts the set; the
 * hooks already frozen then get "thaw".  Hook output goes to our standard
 * error (the log).
 *
 * Restores of a backup it took part in: "pre-restore" before the files are
 * written (a hook failing stops the restore, nothing written; the hooks
 * that had run it get "post-restore" with VSS_RESTORE_STATUS=aborted) and
 * "post-restore" after, to the hooks that ran "pre-restore", with
 * VSS_RESTORE_BACKUP, VSS_RESTORE_TO and VSS_RESTORE_STATUS in their
 * environment.  Its one component, "hooks", is what the backup records so
 * that its restores involve the writer; with --files FILE it also holds the
 * file sets FILE lists, read again at every identify (the metadata given
 * again: vss_writer_set_metadata), so that each backup takes them as they
 * are listed then.
 *
 * When vssd goes away the hooks frozen get "thaw" (abort) and the writer
 * registers again once vssd is back; --once: exit instead.
 *
 * vss-writer-hooks [--run-dir DIR] [--hooks-dir DIR] [--timeout SECONDS] [--once]
 *                  [--files FILE]
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include <vss/writer.h>

#define HOOKS_CLASS_ID "1c3a5e7f-2b4d-4f60-8a9b-0c1d2e3f4a01"
#define MAX_HOOKS 256
#define MAX_FILE_SETS 64

struct hooks {
	const char *dir;
	const char *files;         /* --files FILE, or NULL */
	char instance[37];
	unsigned int timeout_s;
	char *names[MAX_HOOKS];
	int n;
	int frozen;                /* how many hooks ran "freeze" successfully */
	int prepared;              /* how many ran "pre-restore" successfully */
	char env[3][4200];         /* VSS_RESTORE_* for the hooks of a restore */
	int nenv;
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("vss-writer-hooks: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The executables of the directory, in name order (read at each freeze). */
static void scan(struct hooks *h)
{
	DIR *d = opendir(h->dir);
	struct dirent *e;

	for (int i = 0; i < h->n; i++)
		free(h->names[i]);
	h->n = 0;
	if (!d)
		return;
	while ((e = readdir(d)) && h->n < MAX_HOOKS) {
		char path[4096];
		struct stat st;
		size_t len = strlen(e->d_name);

		if (e->d_name[0] == '.' || (len && e->d_name[len - 1] == '~'))
			continue;
		snprintf(path, sizeof(path), "%s/%s", h->dir, e->d_name);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || access(path, X_OK) < 0)
			continue;
		h->names[h->n++] = strdup(e->d_name);
	}
	closedir(d);
	if (h->n > 1)
		qsort(h->names, (size_t)h->n, sizeof(h->names[0]), cmp_str);
}

/* Runs one hook; 0, or -EIO (failed) / -ETIMEDOUT (killed) with @why. */
static int run_hook(struct hooks *h, const char *name, const char *arg, char *why,
		    size_t len)
{
	struct timespec t0, now;
	char path[4096];
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", h->dir, name);
	pid = fork();
	if (pid < 0) {
		snprintf(why, len, "cannot run hook %s: %s", name, strerror(errno));
		return -EIO;
	}
	if (pid == 0) {
		setpgid(0, 0);
		dup2(STDERR_FILENO, STDOUT_FILENO);
		signal(SIGPIPE, SIG_DFL);
		for (int i = 0; i < h->nenv; i++)
			putenv(h->env[i]);
		execl(path, path, arg, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		/* In milliseconds: whole seconds alone would count a hook
		 * started at x.99 s as a second old 10 ms later. */
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >=
		    (long long)h->timeout_s * 1000) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			snprintf(why, len, "hook %s %s timed out after %u s", name, arg,
				 h->timeout_s);
			say("%s", why);
			return -ETIMEDOUT;
		}
		usleep(10000);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		say("hook %s %s: ok", name, arg);
		return 0;
	}
	if (WIFEXITED(status))
		snprintf(why, len, "hook %s %s failed with exit status %d", name, arg,
			 WEXITSTATUS(status));
	else
		snprintf(why, len, "hook %s %s was killed by signal %d", name, arg,
			 WTERMSIG(status));
	say("%s", why);
	return -EIO;
}

static void thaw_frozen(struct hooks *h)
{
	char why[512];

	for (int i = 0; i < h->frozen; i++)
		run_hook(h, h->names[i], "thaw", why, sizeof(why));
	h->frozen = 0;
}

static int on_freeze(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct hooks *h = data;
	char why[512];
	int rc;

	scan(h);
	h->frozen = 0;
	for (int i = 0; i < h->n; i++) {
		if ((rc = run_hook(h, h->names[i], "freeze", why, sizeof(why))) < 0) {
			vss_writer_set_failure(w, rc == -ETIMEDOUT ? VSS_WF_TIMEOUT
					       : VSS_WF_NONRETRYABLE, "%s", why);
			thaw_frozen(h);
			return rc;
		}
		h->frozen = i + 1;
	}
	return 0;
}

static int on_thaw(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct hooks *h = data;
	char why[512], first[512] = "";
	int rc = 0;

	for (int i = 0; i < h->frozen; i++)
		if (run_hook(h, h->names[i], "thaw", why, sizeof(why)) < 0 && rc == 0) {
			rc = -EIO;
			snprintf(first, sizeof(first), "%s", why);
		}
	h->frozen = 0;
	if (rc < 0)
		vss_writer_set_failure(w, VSS_WF_NONRETRYABLE, "%s", first);
	return rc;
}

/* The restore's VSS_RESTORE_* for the hooks; @status NULL: none yet. */
static void restore_env(struct hooks *h, struct vss_writer *w, const char *status)
{
	struct vss_writer_restore_info ri;

	h->nenv = 0;
	if (vss_writer_restore_info(w, &ri) < 0)
		return;
	snprintf(h->env[h->nenv++], sizeof(h->env[0]), "VSS_RESTORE_BACKUP=%s",
		 ri.backup_id ? ri.backup_id : "");
	snprintf(h->env[h->nenv++], sizeof(h->env[0]), "VSS_RESTORE_TO=%s", ri.to ? ri.to : "");
	if (status)
		snprintf(h->env[h->nenv++], sizeof(h->env[0]), "VSS_RESTORE_STATUS=%s", status);
}

/* "post-restore" to the hooks that ran "pre-restore"; the first failure in
 * @first. */
static int post_restore_hooks(struct hooks *h, char *first, size_t len)
{
	char why[512];
	int rc = 0;

	for (int i = 0; i < h->prepared; i++)
		if (run_hook(h, h->names[i], "post-restore", why, sizeof(why)) < 0 && rc == 0) {
			rc = -EIO;
			snprintf(first, len, "%s", why);
		}
	h->prepared = 0;
	h->nenv = 0;
	return rc;
}

static int on_pre_restore(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct hooks *h = data;
	char why[512], ignored[512];
	int rc;

	scan(h);
	h->prepared = 0;
	restore_env(h, w, NULL);
	for (int i = 0; i < h->n; i++) {
		if ((rc = run_hook(h, h->names[i], "pre-restore", why, sizeof(why))) < 0) {
			vss_writer_set_failure(w, rc == -ETIMEDOUT ? VSS_WF_TIMEOUT
					       : VSS_WF_NONRETRYABLE, "%s", why);
			restore_env(h, w, "aborted");
			post_restore_hooks(h, ignored, sizeof(ignored));
			return rc;
		}
		h->prepared = i + 1;
	}
	h->nenv = 0;
	return 0;
}

static int on_post_restore(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct vss_writer_restore_component c;
	const char *status = "all";
	char first[512];

	/* Its own component's status: what the restore did with the files. */
	if (vss_writer_restore_component(w, 0, &c) == 0 && c.status != VSS_RS_UNDEFINED)
		status = vss_file_restore_status_name(c.status);
	restore_env(data, w, status);
	if (post_restore_hooks(data, first, sizeof(first)) == 0)
		return 0;
	vss_writer_set_failure(w, VSS_WF_NONRETRYABLE, "%s", first);
	return -EIO;
}

static int on_abort(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct hooks *h = data;
	char ignored[512];

	thaw_frozen(h);
	if (h->prepared) {
		restore_env(h, w, "aborted");
		post_restore_hooks(h, ignored, sizeof(ignored));
	}
	return 0;
}

/*
 * One line of --files: "DIR [SPEC] [recursive]" (SPEC default "*"), DIR
 * absolute; blank lines and "#" comments skipped.  0, 1 for a line with
 * no file set, or -EINVAL with @why.
 */
static int file_set_line(char *line, struct vss_wmd_file_set *fs, char *why, size_t len)
{
	char *save, *dir = strtok_r(line, " \t\n", &save), *spec, *rec, *more;

	if (!dir || dir[0] == '#')
		return 1;
	spec = strtok_r(NULL, " \t\n", &save);
	rec = strtok_r(NULL, " \t\n", &save);
	more = strtok_r(NULL, " \t\n", &save);
	if (spec && strcmp(spec, "recursive") == 0 && !rec) {
		rec = spec;
		spec = NULL;
	}
	if (dir[0] != '/' || strlen(dir) >= PATH_MAX || (rec && strcmp(rec, "recursive")) ||
	    more) {
		snprintf(why, len, "\"DIR [SPEC] [recursive]\" with DIR absolute");
		return -EINVAL;
	}
	*fs = (struct vss_wmd_file_set){ .kind = VSS_FSK_FILES, .path = dir,
					 .file_spec = spec ? spec : "*", .recursive = rec != NULL,
					 .backup_type_mask = VSS_FSBT_DEFAULT };
	return 0;
}

/* The writer's metadata: its component, with the file sets --files lists
 * now.  0, or a negative errno with @err saying why. */
static int metadata(const struct hooks *h, struct vss_wmd **out, struct vss_error *err)
{
	char line[PATH_MAX + 512], why[128];
	struct vss_wmd *wmd;
	FILE *f = NULL;
	int rc, n = 0, lineno = 0;

	*out = NULL;
	rc = vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = "hooks", .class_id = HOOKS_CLASS_ID, .instance_id = h->instance,
		.instance_name = h->dir, .usage = VSS_UT_OTHER, .source = VSS_ST_OTHER },
		&wmd, err);
	if (rc < 0)
		return rc;
	/* A component, with or without files, so that a backup records the
	 * writer and its restores involve it. */
	rc = vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_FILE_GROUP, .name = "hooks", .caption = "the hooks' "
		"pre-restore and post-restore", .selectable = true,
		.selectable_for_restore = true }, err);
	if (rc == 0)
		rc = vss_wmd_set_restore_method(wmd, &(struct vss_wmd_restore_method){
			.method = VSS_RME_RESTORE_IF_CAN_REPLACE,
			.writer_restore = VSS_WRE_ALWAYS }, err);
	if (rc == 0 && h->files && !(f = fopen(h->files, "re")))
		rc = vss_error_set(err, -errno, "%s: %s", h->files, strerror(errno));
	while (rc == 0 && f && fgets(line, sizeof(line), f)) {
		struct vss_wmd_file_set fs;
		int r;

		lineno++;
		if (!strchr(line, '\n') && !feof(f))
			rc = vss_error_set(err, -EINVAL, "%s:%d: line too long", h->files, lineno);
		else if ((r = file_set_line(line, &fs, why, sizeof(why))) < 0)
			rc = vss_error_set(err, r, "%s:%d: %s", h->files, lineno, why);
		else if (r == 0 && ++n > MAX_FILE_SETS)
			rc = vss_error_set(err, -E2BIG, "%s: more than %d file sets", h->files,
					   MAX_FILE_SETS);
		else if (r == 0)
			rc = vss_wmd_add_file_set(wmd, NULL, "hooks", &fs, err);
	}
	if (f)
		fclose(f);
	if (rc < 0) {
		vss_wmd_free(wmd);
		return rc;
	}
	*out = wmd;
	return 0;
}

/* Identify: --files read again, the metadata given again. */
static int on_identify(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct vss_error err = { 0 };
	struct vss_wmd *wmd;
	int rc;

	if (!((struct hooks *)data)->files)
		return 0;
	if ((rc = metadata(data, &wmd, &err)) == 0) {
		rc = vss_writer_set_metadata(w, wmd, &err);
		vss_wmd_free(wmd);
	}
	if (rc < 0) {
		say("%s", err.msg);
		vss_writer_set_failure(w, VSS_WF_NONRETRYABLE, "%s", err.msg);
	}
	return rc;
}

static void on_connection(struct vss_writer *w, bool up, const char *why, void *data)
{
	(void)w;
	(void)data;
	if (up)
		say("%s", why);     /* "registered", "registered again" */
	else
		say("%s; registering when vssd is up", why);
}

static int usage(FILE *f)
{
	fputs("usage: vss-writer-hooks [--run-dir DIR] [--hooks-dir DIR] [--timeout SECONDS] "
	      "[--once]\n"
	      "                        [--files FILE]\n"
	      "A vss writer: runs every executable in the hooks directory, in name order,\n"
	      "with \"freeze\" before a shadow copy set's freeze and \"thaw\" after it,\n"
	      "and \"pre-restore\" and \"post-restore\" around restores of its backups.\n"
	      "  --run-dir DIR      vssd's run directory (default $VSS_RUN_DIR or /run/vss)\n"
	      "  --hooks-dir DIR    the hooks (default /etc/vss/hooks.d)\n"
	      "  --timeout SECONDS  each hook may run this long, 1 to 3600 (default 30);\n"
	      "                     one that fails or runs longer aborts the set\n"
	      "  --once             exit when vssd goes away (default: register again\n"
	      "                     when it is back)\n"
	      "  --files FILE       file sets of its component, a line each: \"DIR [SPEC]\n"
	      "                     [recursive]\"; read again whenever a backup starts\n"
	      "  -h, --help         print this and exit\n"
	      "Stops on SIGTERM or SIGINT.  Exit codes: 0 stopped, 1 failed (or, with\n"
	      "--once, vssd went away), 2 usage error.  More: man 8 vss-writer-hooks.\n", f);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct vss_writer_handlers handlers = {
		.size = sizeof(struct vss_writer_handlers),
		.identify = on_identify, .freeze = on_freeze, .thaw = on_thaw, .abort = on_abort,
		.pre_restore = on_pre_restore, .post_restore = on_post_restore,
	};
	struct hooks h = { .dir = "/etc/vss/hooks.d", .timeout_s = 30 };
	const char *run_dir = NULL;
	bool once = false;
	struct vss_error err = { 0 };
	struct vss_writer *w;
	struct vss_wmd *wmd;
	uuid_t u;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "--once") == 0) {
			once = true;
			continue;
		}
		if (i + 1 >= argc)
			return usage(stderr);
		if (strcmp(a, "--run-dir") == 0) {
			run_dir = argv[++i];
		} else if (strcmp(a, "--hooks-dir") == 0) {
			h.dir = argv[++i];
		} else if (strcmp(a, "--files") == 0) {
			h.files = argv[++i];
		} else if (strcmp(a, "--timeout") == 0) {
			char *end;
			long v = strtol(argv[++i], &end, 10);

			if (*end || v < 1 || v > 3600) {
				say("--timeout takes 1 to 3600 seconds");
				return 2;
			}
			h.timeout_s = (unsigned int)v;
		} else {
			return usage(stderr);
		}
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	uuid_generate_random(u);
	uuid_unparse_lower(u, h.instance);
	rc = metadata(&h, &wmd, &err);
	if (rc == 0)
		/* The hooks' own freeze is bounded by --timeout; leave room for it. */
		rc = vss_writer_open(&(struct vss_writer_options){
			.size = sizeof(struct vss_writer_options), .run_dir = run_dir,
			.reconnect = !once, .on_connection = on_connection,
			.timeout_ms = (h.timeout_s + 5) * 1000u < 60000u ? 60000u
				      : (h.timeout_s + 5) * 1000u }, wmd, &handlers, &h, &w, &err);
	vss_wmd_free(wmd);
	if (rc < 0) {
		say("%s", err.msg);
		return 1;
	}
	say("%s (hooks in %s, timeout %u s)",
	    vss_writer_fd(w) >= 0 ? "registered" : "started, vssd not up yet", h.dir,
	    h.timeout_s);
	rc = vss_writer_run(w, &stop, &err);
	vss_writer_close(w);
	if (rc < 0) {
		say("%s", err.msg);
		return 1;
	}
	return 0;
}
