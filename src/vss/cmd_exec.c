/*
 * vss/cmd_exec.c - vss exec: one backup around a command (vshadow -exec),
 * on the requester API (vss/requester.h): gather, select every component,
 * prepare, take the set with writers, expose each shadow read-only
 * where vssd picks (RUN/exec/SET/ID: RUN/exec/SET is this user's, mode 0700,
 * so the shadow is no more reachable there than at its live path), run COMMAND with the VSS_* variables, then complete
 * (exit 0) or abort, unexpose, delete non-persistent shadows, and exit with
 * COMMAND's status.  With --in-place COMMAND sees each target's shadow at
 * the target's own path (vss_requester_run_in_place), so backup programs
 * record the live paths.  Another host's target (HOST:TARGET) is that
 * host's part of the backup, its writers taking part there; COMMAND gets
 * its host and its shadow device on that host (VSS_SHADOW_HOST_n).  The
 * whole backup runs on one connection: if this process dies, vssd aborts the
 * backup and deletes the set.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vss/client.h>
#include <vss/requester.h>

#include "cli.h"

#define MAX_TARGETS 64

struct target {
	char *given;          /* as typed */
	char *abs;            /* as sent to vssd */
	bool live;            /* no provider can shadow it: read live */
	char *mount;          /* the live path its shadow's root stands for, or NULL */
	char *shadow_id, *device;
	char *host;           /* another host's member: read there, at device */
	size_t index;         /* its shadow in the requester's set */
	char dir[PATH_MAX];   /* where its shadow is exposed, or "" */
};

/* Prints the error of a failed step; the exit code for it. */
static int step_failed(int rc, const struct vss_error *err)
{
	cli_error(EXIT_FAILED, "%s", err->msg);
	return rc == -ECONNRESET || rc == -EPIPE ? EXIT_UNREACHABLE : EXIT_FAILED;
}

static void put_var(FILE *script, const char *name, const char *val)
{
	setenv(name, val, 1);
	if (!script)
		return;
	fprintf(script, "%s='", name);
	for (const char *p = val; *p; p++)
		if (*p == '\'')
			fputs("'\\''", script);
		else
			fputc(*p, script);
	fputs("'\n", script);
}

/* --components FILE: the document a previous run saved, its stamps handed
 * on as the previous ones (none yet: a first run). */
static int load_components(struct vss_requester *r, const char *file, struct vss_error *err)
{
	struct vss_bcd *prev = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(file, "re");
	int rc;

	if (!f)
		return errno == ENOENT ? 0 : vss_error_set(err, -errno, "%s: %s", file,
							   strerror(errno));
	buf = malloc(VSS_DOC_SIZE_DEFAULT + 1);
	if (buf)
		len = fread(buf, 1, VSS_DOC_SIZE_DEFAULT + 1, f);
	fclose(f);
	if (!buf)
		return vss_error_set(err, -ENOMEM, "out of memory");
	rc = vss_bcd_parse(buf, len, 0, &prev, err);
	free(buf);
	if (rc < 0) {
		char msg[VSS_ERROR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", err->msg);
		return vss_error_set(err, rc, "%s is not a backup components document: %s", file,
				     msg);
	}
	rc = vss_requester_set_previous_stamps(r, prev, err);
	vss_bcd_free(prev);
	return rc;
}

/* Saves the document the backup completed with, whole or not at all. */
static int save_components(struct vss_requester *r, const char *file)
{
	char *text = NULL, *tmp = NULL;
	FILE *f;
	int rc = -1;

	if (vss_bcd_serialize(vss_requester_components(r), &text, NULL, NULL) < 0 ||
	    asprintf(&tmp, "%s.tmp", file) < 0) {
		free(text);
		return cli_error(EXIT_FAILED, "exec: cannot save the components document");
	}
	if ((f = fopen(tmp, "we"))) {
		rc = fputs(text, f) < 0 || fputc('\n', f) < 0 || fflush(f) != 0 ||
		     fsync(fileno(f)) < 0 ? -1 : 0;
		if (fclose(f) != 0)
			rc = -1;
	}
	if (rc == 0 && rename(tmp, file) < 0)
		rc = -1;
	if (rc < 0) {
		cli_error(EXIT_FAILED, "exec: cannot save the components document in %s: %s",
			  file, strerror(errno));
		unlink(tmp);
	}
	free(text);
	free(tmp);
	return rc < 0 ? EXIT_FAILED : 0;
}

/* How often vss asks whether the backup is still in progress while COMMAND
 * runs: vssd may end it meanwhile (another host of the set lost, the lease
 * or limit run out, root's abort). */
#define WATCH_MS 1000

/* A signal vss got while COMMAND runs, for COMMAND's process group. */
static volatile sig_atomic_t pass_on;

static void on_signal(int sig)
{
	pass_on = sig;
}

/* The signals vss passes on to COMMAND (and SIGTTOU, ignored: vss hands
 * the terminal back while in the background); their old actions in @old. */
static const int taken[4] = { SIGINT, SIGTERM, SIGHUP, SIGTTOU };

static void signals_take(struct sigaction old[4])
{
	struct sigaction pass = { .sa_handler = on_signal }, ign = { .sa_handler = SIG_IGN };

	for (int i = 0; i < 4; i++)
		sigaction(taken[i], taken[i] == SIGTTOU ? &ign : &pass, &old[i]);
}

static void signals_give_back(const struct sigaction old[4])
{
	for (int i = 0; i < 4; i++)
		sigaction(taken[i], &old[i], NULL);
}

/*
 * Waits for COMMAND (@pid, leader of its own process group), passing on to
 * its group the SIGINT, SIGTERM and SIGHUP that vss gets, and every
 * WATCH_MS asks whether the backup is still in progress: once vssd has
 * ended it, its shadows are gone, so COMMAND's group gets SIGTERM (what a
 * backup program expects when it is to stop) and *@ended is set, the
 * reason in @err.  Returns COMMAND's wait status.
 */
static int wait_command(struct vss_requester *r, pid_t pid, bool *ended, struct vss_error *err)
{
	int status = 0;

	*ended = false;
	for (;;) {
		pid_t got = 0;

		for (int ms = 0; ms < WATCH_MS && got == 0; ms += 50) {
			if (pass_on) {
				kill(-pid, pass_on);
				pass_on = 0;
			}
			got = waitpid(pid, &status, WNOHANG);
			if (got == 0)
				usleep(50000);
			else if (got < 0 && errno == EINTR)
				got = 0;
		}
		if (got == pid || got < 0)
			return status;
		if (!*ended && vss_requester_backup_status(r, err) == -ECANCELED) {
			*ended = true;
			kill(-pid, SIGTERM);
		}
	}
}

/* Runs COMMAND (in place: vss_requester_run_in_place); its exit status as
 * a shell gives it, or -1 if it did not run or the backup ended under it
 * (said already). */
static int run_command(struct vss_requester *r, char **cmd, bool in_place)
{
	struct sigaction old[4];
	struct vss_error err = { 0 };
	bool ended = false, term;
	int status = 0, fork_errno;
	pid_t pid, parent;

	if (in_place) {
		int rc;

		/* The command gets SIGPIPE as usual (vss ignores it). */
		signal(SIGPIPE, SIG_DFL);
		rc = vss_requester_run_in_place(r, cmd, &status, &err);
		signal(SIGPIPE, SIG_IGN);
		if (rc < 0)
			return cli_error(EXIT_FAILED, "exec --in-place: %s", err.msg), -1;
		return status;
	}
	fflush(NULL);
	/* COMMAND leads a process group of its own, which gets SIGTERM if the
	 * backup ends under it; on a terminal it is the foreground group while
	 * it runs, so that ^C and reading the terminal reach it as before. */
	term = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
	pass_on = 0;
	signals_take(old);
	parent = getpid();
	pid = fork();
	fork_errno = errno;
	if (pid == 0) {
		/* Out of vss's process group, COMMAND would outlive a vss killed
		 * with its group: it gets SIGTERM when vss dies. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(128 + SIGTERM);
		setpgid(0, 0);
		if (term)
			tcsetpgrp(STDIN_FILENO, getpid());
		signals_give_back(old);
		signal(SIGPIPE, SIG_DFL);
		execvp(cmd[0], cmd);
		fprintf(stderr, "vss: error: cannot run %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	if (pid > 0) {
		setpgid(pid, pid);
		if (term)
			tcsetpgrp(STDIN_FILENO, pid);
		status = wait_command(r, pid, &ended, &err);
		if (term)
			tcsetpgrp(STDIN_FILENO, getpgrp());
	}
	signals_give_back(old);
	if (pid < 0)
		return cli_error(EXIT_FAILED, "fork: %s", strerror(fork_errno)), -1;
	if (ended)
		return cli_error(EXIT_FAILED, "%s (COMMAND's process group was sent SIGTERM)",
				 err.msg), -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* The targets into @t: --for's; without it the directories of the
 * selected components' files, one a filesystem (the set's volumes are
 * those holding them, as VSS has it), or with no component every mounted
 * volume.  Their number, or minus the exit code (said already). */
static int targets(const struct cli_args *a, struct vss_requester *r, struct target *t)
{
	const char *fors[MAX_TARGETS];
	json_t *vols = NULL;
	char **paths;
	size_t npaths;
	dev_t devs[MAX_TARGETS];
	int n = 0, rc;

	if (!cli_has(a, "for") &&
	    (rc = component_targets("exec", r, MAX_TARGETS, &paths, &npaths)))
		return -rc;
	if (cli_has(a, "for") || npaths == 0) {
		if ((n = cli_targets(a, fors, MAX_TARGETS, &vols)) < 0)
			return n;
		/* --in-place shows shadows at their targets' paths, here. */
		for (int k = 0; cli_has(a, "in-place") && k < n; k++)
			if (cli_remote_target(fors[k])) {
				json_decref(vols);
				return -cli_error(EXIT_USAGE, "exec --in-place: %s is another host's "
						  "target: --in-place shows this host's shadows at "
						  "their own paths (without it, COMMAND gets another "
						  "host's shadow as its device there: doc/peers.md)",
						  fors[k]);
			}
		for (int k = 0; k < n; k++) {
			t[k].given = strdup(fors[k]);
			t[k].abs = cli_target(fors[k]);
		}
		json_decref(vols);
		return n;
	}
	for (size_t i = 0; i < npaths; i++) {
		struct stat st;
		bool have = false;

		if (stat(paths[i], &st) < 0) {
			rc = cli_error(EXIT_FAILED, "exec: %s: %s", cli_line(paths[i]),
				       strerror(errno));
			n = -rc;
			break;
		}
		for (int k = 0; k < n; k++)
			have |= devs[k] == st.st_dev;
		if (have)
			continue;
		devs[n] = st.st_dev;
		t[n].given = strdup(paths[i]);
		t[n++].abs = strdup(paths[i]);
	}
	for (size_t i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	return n;
}

int cmd_exec(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "for", 0, true }, { "type", 0, true }, { "persistent", 0, false },
		{ "no-writers", 0, false }, { "script", 0, true },
		{ "exclude-writer", 0, true }, { "allow-live", 0, false },
		{ "provider", 0, true }, { "freeze-timeout", 0, true },
		{ "in-place", 0, false }, { "components", 0, true }, { NULL, 0, false },
	};
	static const char *const types[] = { "", "full", "incremental", "differential",
					      "log", "copy" };
	const char *excl[MAX_TARGETS];
	struct target t[MAX_TARGETS];
	struct vss_requester *r = NULL;
	struct vss_error err = { 0 };
	struct cli_args a;
	char **cmd, var[64];
	const char *run_dir, *type, *set = "";
	enum vss_backup_type bt = 0;
	unsigned int window_ms = 60000;
	FILE *script = NULL;
	int rc, n, nex, status = EXIT_FAILED, split = argc;
	bool ok = false;

	for (int k = 0; k < argc; k++)
		if (strcmp(argv[k], "--") == 0) {
			split = k;
			break;
		}
	if (split >= argc - 1)
		return cli_error(EXIT_USAGE, "exec: say which command to run: vss exec "
				 "[OPTIONS] -- COMMAND [ARGS...]");
	cmd = argv + split + 1;
	if ((rc = cli_parse(&a, "exec", split, argv, opts, 0, 0)))
		return rc;
	type = cli_get(&a, "type") ? cli_get(&a, "type") : "full";
	for (int k = VSS_BT_FULL; k <= VSS_BT_COPY; k++)
		if (strcmp(type, types[k]) == 0)
			bt = k;
	if (!bt)
		return cli_error(EXIT_USAGE, "exec: unknown backup type \"%s\" (full, "
				 "incremental, differential, log, copy)", type);
	if (cli_has(&a, "freeze-timeout")) {
		char *end;
		long v = strtol(cli_get(&a, "freeze-timeout"), &end, 10);

		if (*end || v < 1 || v > 3600)
			return cli_error(EXIT_USAGE, "exec: --freeze-timeout takes 1 to 3600 "
					 "seconds");
		window_ms = (unsigned int)v * 1000u;
	}
	nex = cli_get_all(&a, "exclude-writer", excl, MAX_TARGETS);
	memset(t, 0, sizeof(t));
	run_dir = vss_client_run_dir(a.run_dir);
	n = 0;
	/* The backup: the requester API's sequence (vss/requester.h). */
	if ((rc = vss_requester_open(run_dir, &r, &err)) < 0) {
		status = cli_error(EXIT_UNREACHABLE, "%s (is vssd running?)", err.msg);
		goto out;
	}
	vss_requester_set_persistent(r, cli_has(&a, "persistent"));
	vss_requester_set_no_writers(r, cli_has(&a, "no-writers"));
	vss_requester_set_allow_live(r, cli_has(&a, "allow-live"));
	vss_requester_set_timeouts(r, window_ms, 60000);
	rc = vss_requester_set_backup_state(r, bt, false, &err);
	for (int k = 0; rc == 0 && k < nex; k++)
		rc = vss_requester_exclude_writer(r, excl[k], &err);
	if (rc == 0 && cli_has(&a, "provider"))
		rc = vss_requester_set_provider(r, cli_get(&a, "provider"), &err);
	if (rc == 0)
		rc = vss_requester_gather_writer_metadata(r, &err);
	if (rc == 0)
		rc = vss_requester_select_all_components(r, &err);
	if (rc == 0 && cli_has(&a, "components"))
		rc = load_components(r, cli_get(&a, "components"), &err);
	if (rc < 0) {
		status = step_failed(rc, &err);
		goto out;
	}
	if ((n = targets(&a, r, t)) < 0) {
		status = -n;
		n = 0;
		goto out;
	}
	if (rc == 0)
		rc = vss_requester_start_snapshot_set(r, &err);
	for (int k = 0; rc == 0 && k < n; k++)
		rc = vss_requester_add_to_snapshot_set(r, t[k].abs, &err);
	if (rc == 0)
		rc = vss_requester_prepare_for_backup(r, &err);
	if (rc == 0)
		rc = vss_requester_do_snapshot_set(r, &err);
	if (rc < 0) {
		status = step_failed(rc, &err);
		goto out;
	}
	set = vss_requester_set_id(r);
	/* The shadows come in the order of their targets. */
	for (int j = 0; j < n; j++) {
		struct vss_requester_shadow sh;

		if (vss_requester_shadow(r, (size_t)j, &sh) < 0) {
			cli_error(EXIT_FAILED, "exec: vssd returned fewer shadows than targets");
			goto out;
		}
		t[j].index = (size_t)j;
		t[j].shadow_id = strdup(sh.id);
		t[j].device = strdup(sh.device);
		t[j].live = sh.live;
		if (sh.host)
			t[j].host = strdup(sh.host);
		if (vss_requester_shadow_fallback(r, (size_t)j))
			fprintf(stderr, "vss: warning: %s\n",
				cli_line(vss_requester_shadow_fallback(r, (size_t)j)));
		if (sh.mount)
			t[j].mount = strdup(sh.mount);
		if (t[j].live || !t[j].mount)
			continue;   /* read live; a raw volume or another host's member:
				     * the device is the shadow */
		/* vssd picks the directory: RUN/exec/SET/ID, under a directory of
		 * this user's, mode 0700, removed with the exposure. */
		if ((rc = vss_requester_expose(r, t[j].index, NULL, &err)) < 0 ||
		    (rc = vss_requester_shadow(r, t[j].index, &sh)) < 0) {
			status = step_failed(rc, &err);
			goto out;
		}
		snprintf(t[j].dir, sizeof(t[j].dir), "%s", sh.exposed);
	}
	if (cli_has(&a, "script") && !(script = fopen(cli_get(&a, "script"), "we"))) {
		cli_error(EXIT_FAILED, "exec: cannot write %s: %s", cli_get(&a, "script"),
			  strerror(errno));
		goto out;
	}
	if (script)
		fputs("# vss exec: the shadow copy set, for sh's \".\"\n", script);
	put_var(script, "VSS_SHADOW_SET_ID", set);
	for (int j = 0; j < n; j++) {
		char inside[2 * PATH_MAX];

		if (t[j].live) {
			snprintf(inside, sizeof(inside), "%s", t[j].abs);
		} else if (!t[j].mount) {
			snprintf(inside, sizeof(inside), "%s", t[j].device);
		} else {
			const char *rest = t[j].abs[0] != '/' ? ""
					   : strcmp(t[j].mount, "/") == 0 ? t[j].abs
					   : t[j].abs + strlen(t[j].mount);

			snprintf(inside, sizeof(inside), "%s%s", t[j].dir, rest);
		}
#define VAR(fmt) (snprintf(var, sizeof(var), fmt, j + 1), var)
		put_var(script, VAR("VSS_SHADOW_ID_%d"), t[j].shadow_id ? t[j].shadow_id : "");
		put_var(script, VAR("VSS_SHADOW_DEVICE_%d"), t[j].device ? t[j].device : "");
		put_var(script, VAR("VSS_SHADOW_PATH_%d"), t[j].live ? t[j].abs : t[j].dir);
		put_var(script, VAR("VSS_ORIGIN_PATH_%d"), t[j].given);
		put_var(script, VAR("VSS_SHADOW_TARGET_%d"), inside);
		if (t[j].live)
			put_var(script, VAR("VSS_SHADOW_LIVE_%d"), "1");
		if (t[j].host)
			put_var(script, VAR("VSS_SHADOW_HOST_%d"), t[j].host);
#undef VAR
	}
	if (cli_has(&a, "in-place"))
		put_var(script, "VSS_IN_PLACE", "1");
	if (script) {
		rc = fclose(script);
		script = NULL;
		if (rc != 0) {
			cli_error(EXIT_FAILED, "exec: cannot write %s", cli_get(&a, "script"));
			goto out;
		}
	}
	status = run_command(r, cmd, cli_has(&a, "in-place"));
	if (status < 0) {
		status = EXIT_FAILED;
		goto out;
	}
	ok = true;
out:
	if (script)
		fclose(script);
	if (r && ok && status == 0 && (rc = vss_requester_backup_complete(r, true, &err)) < 0)
		status = step_failed(rc, &err);
	else if (r && !(ok && status == 0))
		vss_requester_abort(r, NULL);
	/* The stamps for the next run; a copy is no part of the history. */
	else if (r && cli_has(&a, "components") && bt != VSS_BT_COPY)
		status = save_components(r, cli_get(&a, "components"));
	/* Unexposes (vssd removes its directories), and deletes the set unless
	 * it is persistent. */
	vss_requester_close(r);
	for (int j = 0; j < n; j++) {
		free(t[j].given);
		free(t[j].abs);
		free(t[j].mount);
		free(t[j].shadow_id);
		free(t[j].device);
		free(t[j].host);
	}
	return status;
}
