/*
 * writer_cli.c - the database writers' shared program parts (writer_cli.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "writer_cli.h"

struct wcli {
	const char *run_dir;            /* NULL: the library's default */
	unsigned int timeout_s;         /* 60 unless --timeout */
	bool once;
	const char *config;             /* --config FILE, or the default */
};

static const char *prog_name = "vss-writer";
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

void wcli_say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Takes argv[*i] (and its value) if it is a common option: 1; 0 if it is
 * not one; 2 after a usage error (said). */
static int option(struct wcli *c, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	char *end;
	long v;

	if (strcmp(a, "--once") == 0) {
		c->once = true;
		return 1;
	}
	if (strcmp(a, "--run-dir") != 0 && strcmp(a, "--timeout") != 0 &&
	    strcmp(a, "--config") != 0)
		return 0;
	if (*i + 1 >= argc) {
		wcli_say("%s needs a value", a);
		return 2;
	}
	if (strcmp(a, "--run-dir") == 0 || strcmp(a, "--config") == 0) {
		*(strcmp(a, "--config") == 0 ? &c->config : &c->run_dir) = argv[++*i];
		return 1;
	}
	v = strtol(argv[++*i], &end, 10);
	if (*end || v < 1 || v > 3600) {
		wcli_say("--timeout takes 1 to 3600 seconds");
		return 2;
	}
	c->timeout_s = (unsigned int)v;
	return 1;
}

static int usage(const struct wcli_writer *w, FILE *f)
{
	fprintf(f, "usage: %s [--run-dir DIR] [--timeout SECONDS] [--once] [--config FILE]\n"
		"%s"
		"  --config FILE      %s\n"
		"                     (default %s)\n"
		"  --run-dir DIR      vssd's run directory (default $VSS_RUN_DIR or /run/vss)\n"
		"  --timeout SECONDS  the time each event may take, 1 to 3600 (default 60)\n"
		"  --once             exit when vssd goes away\n"
		"  -h, --help         print this and exit\n"
		"Exit codes: 0 stopped, 1 failed, 2 usage error.  More: man 8 %s.\n",
		w->prog, w->about, w->config_help, w->default_config, w->prog);
	return 2;
}

static int args(struct wcli *c, int argc, char **argv, const struct wcli_writer *w)
{
	for (int i = 1; i < argc; i++) {
		int rc;

		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(w, stdout);
			return 0;
		}
		if ((rc = option(c, argc, argv, &i)) == 2)
			return 2;
		if (rc == 0)
			return usage(w, stderr);
	}
	return -1;
}

static int wmd_new(const char *name, const char *class_id, uint32_t schema,
		   struct vss_wmd **out, struct vss_error *err)
{
	char inst[37];
	uuid_t u;
	int rc;

	uuid_generate_random(u);
	uuid_unparse_lower(u, inst);
	rc = vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = name, .class_id = class_id, .instance_id = inst,
		.usage = VSS_UT_USER_DATA, .source = VSS_ST_TRANSACTED_DB }, out, err);
	if (rc == 0 && (rc = vss_wmd_set_backup_schema(*out, schema, err)) < 0) {
		vss_wmd_free(*out);
		*out = NULL;
	}
	return rc;
}

int wcli_set_stamps(struct vss_writer *w, const struct vss_writer_event *ev,
		    const char *logical_path, wcli_stamp_fn stamp, void *data)
{
	size_t n = ev->components ? vss_bcd_component_count(ev->components) : 0;

	for (size_t i = 0; i < n; i++) {
		struct vss_bcd_component *bc = vss_bcd_component_at(ev->components, i);
		static char text[WCLI_STAMP_MAX], why[WCLI_WHY_MAX];
		struct vss_bcd_component_info ci;
		struct vss_error err = { 0 };
		int rc;

		vss_bcd_component_info(bc, &ci);
		if (!ci.logical_path || strcmp(ci.logical_path, logical_path) != 0)
			continue;
		rc = stamp(data, ci.name, vss_bcd_previous_backup_stamp(bc),
			   vss_bcd_backup_type(ev->components), text, sizeof(text), why,
			   sizeof(why));
		if (rc == -ENOENT)
			continue;
		if (rc == 0 && vss_bcd_previous_backup_stamp(bc))
			wcli_say("%s: backup since %s, now %s", ci.name,
				 vss_bcd_previous_backup_stamp(bc), text);
		if (rc == 0 && (rc = vss_bcd_set_backup_stamp(bc, text, &err)) < 0)
			snprintf(why, sizeof(why), "%s", err.msg);
		if (rc < 0) {
			vss_writer_set_failure(w, VSS_WF_RETRYABLE, "%s", why);
			return rc;
		}
	}
	return 0;
}

struct vss_bcd_component *wcli_component(const struct vss_bcd *bcd, const char *logical_path,
					 const char *name)
{
	for (size_t i = 0; bcd && i < vss_bcd_component_count(bcd); i++) {
		struct vss_bcd_component *comp = vss_bcd_component_at(bcd, i);
		struct vss_bcd_component_info ci;

		vss_bcd_component_info(comp, &ci);
		if (ci.logical_path && strcmp(ci.logical_path, logical_path) == 0 &&
		    strcmp(ci.name, name) == 0)
			return comp;
	}
	return NULL;
}

int wcli_systemctl(const char *verb, const char *unit, char *why, size_t len)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execlp("systemctl", "systemctl", verb, "--", unit, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		snprintf(why, len, "systemctl %s %s failed", verb, unit);
		return -EIO;
	}
	return 0;
}

int wcli_pre_restore(struct vss_writer *w, struct wcli_restore *r)
{
	struct vss_writer_restore_info ri;
	static char why[WCLI_WHY_MAX];

	if (vss_writer_restore_info(w, &ri) < 0 || ri.to)
		return 0;   /* elsewhere: the live ones are not touched */
	for (size_t i = 0; i < ri.component_count; i++) {
		struct vss_writer_restore_component rc;
		int k;

		if (vss_writer_restore_component(w, i, &rc) < 0 ||
		    strcmp(rc.logical_path, r->logical_path) != 0 || !rc.original_location ||
		    (k = r->find(r->data, rc.name)) < 0 || k >= WCLI_SERVED_MAX ||
		    !r->running(r->data, k))
			continue;
		if (!r->manager(r->data, k)[0]) {
			vss_writer_set_failure(w, VSS_WF_NONRETRYABLE, "%s %s is running and has "
					       "no systemd unit to stop it with: stop it before "
					       "restoring it in place", r->noun, rc.name);
			return -EBUSY;
		}
		why[0] = '\0';
		if (r->stop(r->data, k, why, sizeof(why)) < 0 || r->running(r->data, k)) {
			vss_writer_set_failure(w, VSS_WF_RETRYABLE, "%s %s: %s", r->noun, rc.name,
					       why[0] ? why : "still running after it was stopped");
			return -EBUSY;
		}
		r->stopped[k] = true;
		wcli_say("%s %s: stopped (%s) for the restore", r->noun, rc.name,
			 r->manager(r->data, k));
	}
	return 0;
}

int wcli_start_stopped(struct wcli_restore *r, char *why, size_t len)
{
	int rc = 0;

	for (int k = 0; k < WCLI_SERVED_MAX; k++) {
		static char one[WCLI_WHY_MAX];

		if (!r->stopped[k])
			continue;
		r->stopped[k] = false;
		if (r->start(r->data, k, one, sizeof(one)) == 0) {
			wcli_say("%s %s: started again (%s)", r->noun, r->name(r->data, k),
				 r->manager(r->data, k));
		} else if (rc == 0) {
			snprintf(why, len, "%s", one);
			rc = -EIO;
		}
	}
	return rc;
}

static void on_connection(struct vss_writer *w, bool up, const char *why, void *data)
{
	if (up)
		wcli_say("%s", why);
	else
		wcli_say("%s; registering when vssd is up", why);
}

/* Registers @wmd (freed), runs; the exit status. */
static int run(const struct wcli *c, struct vss_wmd *wmd, int rc, const struct vss_error *made,
	       const struct vss_writer_handlers *h, void *data, int n, const char *noun,
	       void (*cleanup)(void *data))
{
	struct vss_error err = { 0 };
	struct vss_writer *w;

	if (rc < 0) {
		wcli_say("%s", made->msg);
		vss_wmd_free(wmd);
		return 1;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	rc = vss_writer_open(&(struct vss_writer_options){
		.size = sizeof(struct vss_writer_options), .run_dir = c->run_dir,
		.timeout_ms = c->timeout_s * 1000u, .reconnect = !c->once,
		.on_connection = on_connection }, wmd, h, data, &w, &err);
	vss_wmd_free(wmd);
	if (rc < 0) {
		wcli_say("%s", err.msg);
		return 1;
	}
	wcli_say("%s (%d %s%s)", vss_writer_fd(w) >= 0 ? "registered" :
		 "started, vssd not up yet", n, noun, n == 1 ? "" : "s");
	rc = vss_writer_run(w, &stop, &err);
	cleanup(data);
	vss_writer_close(w);
	if (rc < 0) {
		wcli_say("%s", err.msg);
		return 1;
	}
	return 0;
}

int wcli_main(int argc, char **argv, const struct wcli_writer *w)
{
	struct wcli c = { .timeout_s = 60, .config = w->default_config };
	struct vss_error err = { 0 };
	struct vss_wmd *wmd = NULL;
	int rc, n;

	prog_name = w->prog;
	if ((rc = args(&c, argc, argv, w)) >= 0)
		return rc;
	if ((n = w->load(c.config, w->data)) < 0)
		return 1;
	for (int i = 0; i < n; i++) {
		static char why[WCLI_WHY_MAX];

		if (w->locate(w->data, i, why, sizeof(why)) < 0) {
			wcli_say("%s", why);
			return 1;
		}
	}
	rc = wmd_new(w->name, w->class_id, w->schema, &wmd, &err);
	if (rc == 0 && w->restore)
		rc = vss_wmd_set_restore_method(wmd, w->restore, &err);
	for (int i = 0; rc == 0 && i < n; i++)
		rc = w->add(wmd, w->data, i, &err);
	return run(&c, wmd, rc, &err, w->handlers, w->data, n, w->noun, w->cleanup);
}
