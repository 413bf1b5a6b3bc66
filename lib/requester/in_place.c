/*
 * requester/in_place.c - vss_requester_run_in_place(): a command that reads
 * its backup at the live paths while every byte comes from the shadows.
 *
 * Backup programs record the paths they read: restic, borg, tar and rsync
 * run on a shadow's mount point would store RUN/exec/SET/ID/... instead of
 * /srv/data/...  So the command runs in a mount namespace of its own in
 * which each target of the set is the matching path inside its exposed
 * shadow, bind-mounted read-only, nosuid and nodev (noexec as the
 * exposure) over the live path, which is opened without following
 * symlinks.  Nothing changes for
 * any other process, and nothing is left behind: the namespace ends with
 * the last process in it.
 *
 * The command runs in a child (A) of the caller: A makes the mount
 * namespace and the binds (a setup error comes back on a pipe, and the
 * command never runs), becomes a child subreaper, forks and waits for the
 * command, then kills and reaps whatever the command left behind: every
 * orphan of its process tree is reparented to A, daemons that detached
 * included.  Such a process would keep the shadows' filesystems busy after
 * the backup, and go on reading shadows that are about to be deleted.  No
 * pid namespace: the command sees and signals the system's processes by
 * their usual pids (a backup script may signal an application).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vss/requester.h>

#include "requester/in_place.h"

/* ---- the plan ---- */

static size_t depth(const char *p)
{
	size_t d = 0;

	for (; *p; p++)
		d += *p == '/';
	return d;
}

static int by_depth(const void *x, const void *y)
{
	const struct vss_in_place_bind *a = x, *b = y;
	size_t da = depth(a->path), db = depth(b->path);

	return da < db ? -1 : da > db;
}

int vss_in_place_order(struct vss_in_place_bind *b, size_t *n, struct vss_error *err)
{
	size_t k = 0;

	for (size_t i = 0; i < *n; i++) {
		char *p = b[i].path;
		size_t len = strlen(p);

		if (p[0] != '/')
			return vss_error_set(err, -EINVAL, "%s is not an absolute path", p);
		while (len > 1 && p[len - 1] == '/')
			p[--len] = '\0';
		if (strcmp(p, "/") == 0)
			return vss_error_set(err, -EINVAL, "the shadow of / cannot be shown in "
					     "place (a process's root cannot be mounted over): "
					     "name the directories to back up, or read "
					     "VSS_SHADOW_TARGET_n");
	}
	/* Stable: of the same path the first stays first. */
	for (size_t i = 1; i < *n; i++)
		for (size_t j = i; j > 0 && by_depth(&b[j - 1], &b[j]) > 0; j--) {
			struct vss_in_place_bind t = b[j];

			b[j] = b[j - 1];
			b[j - 1] = t;
		}
	for (size_t i = 0; i < *n; i++) {
		bool dup = false;

		for (size_t j = 0; j < k && !dup; j++)
			dup = strcmp(b[j].path, b[i].path) == 0;
		if (dup) {
			free(b[i].path);
			free(b[i].source);
		} else {
			b[k++] = b[i];
		}
	}
	*n = k;
	return 0;
}

static void plan_free(struct vss_in_place_bind *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(b[i].path);
		free(b[i].source);
	}
	free(b);
}

/* Every shadow of the set with a live path: that path, and the same inside
 * its exposed shadow.  Live members are their own; raw volumes have no
 * path (their readers use the shadow device). */
static int plan(struct vss_requester *r, struct vss_in_place_bind **out, size_t *nout,
		struct vss_error *err)
{
	struct vss_in_place_bind *b = NULL;
	struct vss_requester_shadow sh;
	size_t n = 0, cap = 0;
	int rc = 0;

	for (size_t i = 0; vss_requester_shadow(r, i, &sh) == 0; i++) {
		char real[PATH_MAX], src[PATH_MAX];
		const char *live = sh.target && sh.target[0] == '/' ? sh.target : sh.mount;

		if (sh.live || !live)
			continue;
		if (!realpath(live, real)) {
			rc = vss_error_set(err, -errno, "%s: %s", live, strerror(errno));
			break;
		}
		if ((rc = vss_requester_translate_path(r, real, src, sizeof(src), err)) < 0)
			break;
		if (n == cap) {
			size_t c = cap ? 2 * cap : 8;
			struct vss_in_place_bind *nb = realloc(b, c * sizeof(*nb));

			if (!nb) {
				rc = vss_error_set(err, -ENOMEM, "out of memory");
				break;
			}
			b = nb;
			cap = c;
		}
		b[n].path = strdup(real);
		b[n].source = strdup(src);
		n++;
		if (!b[n - 1].path || !b[n - 1].source) {
			rc = vss_error_set(err, -ENOMEM, "out of memory");
			break;
		}
	}
	if (rc == 0)
		rc = vss_in_place_order(b, &n, err);
	if (rc < 0) {
		plan_free(b, n);
		return rc;
	}
	*out = b;
	*nout = n;
	return 0;
}

/* ---- the processes ---- */

struct setup_error {
	int code;              /* a negative errno */
	char msg[VSS_ERROR_MSG_MAX];
};

static void report(int fd, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(int fd, int code, const char *fmt, ...)
{
	struct setup_error e = { .code = code };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
	va_end(ap);
	if (write(fd, &e, sizeof(e)) != (ssize_t)sizeof(e))
		_exit(127);
}

static int open_dir(const char *path)
{
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_NO_SYMLINKS };
	long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

/*
 * Shows @src at @path: a bind mount of @src, read-only, nosuid and nodev,
 * and noexec if @src's mount is (a shadow is, unless root exposed it with
 * exec), set before it is attached; both paths opened without following
 * symlinks, and the bind attached to the directory opened.  0, or
 * reported on @fd.
 */
static int show(const char *src, const char *path, int fd)
{
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					       MOUNT_ATTR_NODEV };
	struct statvfs sv;
	int sfd, tfd = -1, dfd = -1, rc = -1;

	if (statvfs(src, &sv) == 0 && (sv.f_flag & ST_NOEXEC))
		attr.attr_set |= MOUNT_ATTR_NOEXEC;
	if ((sfd = open_dir(src)) < 0) {
		report(fd, sfd, "cannot show %s at %s: %s", src, path, strerror(-sfd));
		return -1;
	}
	tfd = open_tree(sfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	close(sfd);
	if (tfd < 0) {
		report(fd, -errno, "cannot show %s at %s: %s", src, path, strerror(errno));
		return -1;
	}
	if (mount_setattr(tfd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
		report(fd, -errno, "cannot make %s read-only: %s", path, strerror(errno));
	else if ((dfd = open_dir(path)) < 0)
		report(fd, dfd, "cannot show %s at %s: %s%s", src, path, strerror(-dfd),
		       dfd == -ELOOP ? " (a symlink on the way: not followed)" : "");
	else if (move_mount(tfd, "", dfd, "", MOVE_MOUNT_F_EMPTY_PATH |
						MOVE_MOUNT_T_EMPTY_PATH) < 0)
		report(fd, -errno, "cannot show %s at %s: %s", src, path, strerror(errno));
	else
		rc = 0;
	if (dfd >= 0)
		close(dfd);
	close(tfd);
	return rc;
}

/* In A: the namespaces and the binds.  0, or reported on @fd. */
static int enter(const struct vss_in_place_bind *b, size_t n, int fd)
{
	if (unshare(CLONE_NEWNS) < 0) {
		int e = errno;

		report(fd, -e, "cannot make a mount namespace for the command: %s%s",
		       strerror(e), e == EPERM ? " (in place needs root: CAP_SYS_ADMIN)" : "");
		return -1;
	}
	/* Nothing mounted here propagates to the rest of the system. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		report(fd, -errno, "cannot make the command's mounts private: %s",
		       strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (show(b[i].source, b[i].path, fd) < 0)
			return -1;
	return 0;
}

/* Exit status as a shell reports it. */
static int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 127;
}

/* Kills the children A has (the command's orphans) until none is left. */
static void kill_leftovers(void)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	for (;;) {
		FILE *f = fopen(path, "re");
		long pid;

		if (!f) {
			/* No CONFIG_PROC_CHILDREN: cannot name them; do not wait. */
			fprintf(stderr, "vss: warning: cannot list what the command left "
				"running (%s): %s\n", path, strerror(errno));
			return;
		}
		while (fscanf(f, "%ld", &pid) == 1)
			kill((pid_t)pid, SIGKILL);
		fclose(f);
		/* Orphans of a dying process may still be on their way to us:
		 * wait() returns once each is gone, ECHILD when none is. */
		if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
			return;
	}
}

/* The signals the terminal sends: A ignores them (it stays until the
 * command is done); the command gets them as the caller had them. */
static const int term_sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define NTERM (sizeof(term_sigs) / sizeof(term_sigs[0]))

/* In A: the command, its status, and nothing left running. */
static void run_and_reap(char *const argv[], const struct sigaction *old)
{
	pid_t pid, w;
	int st = 0;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		fprintf(stderr, "vss: error: cannot become a subreaper: %s\n", strerror(errno));
		_exit(127);
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "vss: error: fork: %s\n", strerror(errno));
		_exit(127);
	}
	if (pid == 0) {
		for (size_t i = 0; i < NTERM; i++)
			sigaction(term_sigs[i], &old[i], NULL);
		execvp(argv[0], argv);
		fprintf(stderr, "vss: error: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	/* Orphans come to us too: reap them until the command is done. */
	while ((w = wait(&st)) != pid)
		if (w < 0 && errno != EINTR)
			_exit(127);
	kill_leftovers();
	_exit(status_code(st));
}

int vss_requester_run_in_place(struct vss_requester *r, char *const argv[], int *status,
			       struct vss_error *err)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old[NTERM];
	struct vss_in_place_bind *b = NULL;
	struct setup_error e;
	size_t n = 0;
	int fds[2], st, rc;
	ssize_t got;
	pid_t a;

	if (!argv || !argv[0])
		return vss_error_set(err, -EINVAL, "no command to run");
	if ((rc = plan(r, &b, &n, err)) < 0)
		return rc;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		rc = vss_error_set(err, -errno, "pipe: %s", strerror(errno));
		plan_free(b, n);
		return rc;
	}
	fflush(NULL);
	for (size_t i = 0; i < NTERM; i++)
		sigaction(term_sigs[i], NULL, &old[i]);
	a = fork();
	if (a < 0) {
		rc = vss_error_set(err, -errno, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		plan_free(b, n);
		return rc;
	}
	if (a == 0) {
		for (size_t i = 0; i < NTERM; i++)
			sigaction(term_sigs[i], &ign, NULL);
		close(fds[0]);
		if (enter(b, n, fds[1]) < 0)
			_exit(127);
		close(fds[1]);
		run_and_reap(argv, old);
	}
	/* As a shell with a foreground job: the command gets ^C, we stay to
	 * clean up. */
	sigaction(SIGINT, &ign, NULL);
	sigaction(SIGTERM, &ign, NULL);
	close(fds[1]);
	plan_free(b, n);
	do
		got = read(fds[0], &e, sizeof(e));
	while (got < 0 && errno == EINTR);
	close(fds[0]);
	while ((rc = waitpid(a, &st, 0)) < 0 && errno == EINTR)
		;
	if (rc < 0)
		rc = -errno;
	sigaction(SIGINT, &old[0], NULL);
	sigaction(SIGTERM, &old[1], NULL);
	if (rc < 0)
		return vss_error_set(err, rc, "waitpid: %s", strerror(-rc));
	if (got == (ssize_t)sizeof(e)) {
		e.msg[sizeof(e.msg) - 1] = '\0';
		return vss_error_set(err, e.code < 0 ? e.code : -EIO, "%s", e.msg);
	}
	*status = status_code(st);
	return 0;
}
