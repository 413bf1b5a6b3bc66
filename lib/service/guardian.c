/*
 * service/guardian.c - see guardian.h.
 *
 * The child is forked from a multi-threaded process, so between fork() and
 * _exit() it uses only system calls and memory prepared before the fork:
 * no malloc, no stdio, no locks.  Every path and message it may need is
 * made before the fork (struct plan).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <linux/fs.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "service/clock.h"
#include "service/guardian.h"

#define FUSECTL_DIR "/sys/fs/fuse/connections"

struct vss_guardian {
	pid_t pid;
	int cmd_fd;     /* vssd → guardian */
	int ack_fd;     /* guardian → vssd */
};

/* What the guardian does if a thaw blocks: made before the fork. */
struct plan {
	pid_t server;
	char stat_path[64];             /* /proc/PID/stat of vssd */
	char abort_path[128];           /* FUSECTL_DIR/N/abort, or "" */
	char msg_cont[160];
	char msg_abort[PATH_MAX + 256];
	/* Device-mapper devices held suspended (LVM): resumed with the thaw. */
	struct dm_ioctl resume[VSS_GUARDIAN_MAX_DIRS];
	size_t n_resume;
	int dm_fd;                      /* /dev/mapper/control, opened in the guardian */
};

static void say(const char *msg)
{
	(void)!write(STDERR_FILENO, msg, strlen(msg));
}

static volatile sig_atomic_t told_to_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	told_to_stop = 1;
}

static void thaw_each(const int *fds, const char *const *dirs, size_t n, const char *why,
		      struct plan *p)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		if (ioctl(fds[i], FITHAW, 0) == 0) {
			say(why);
			say(dirs[i]);
			say("\n");
		}
	}
	/* A resume of a device not suspended does nothing: no need to know
	 * how far vssd got. */
	for (size_t i = 0; p->dm_fd >= 0 && i < p->n_resume; i++)
		if (ioctl(p->dm_fd, DM_DEV_SUSPEND, &p->resume[i]) == 0 &&
		    (p->resume[i].flags & DM_SUSPEND_FLAG) == 0) {
			say(why);
			say("a device-mapper device it held (resumed)\n");
		}
}

/* Waits up to @ms for end of file on @fd (the thawer exited); true if so. */
static bool wait_eof(int fd, int ms)
{
	int64_t deadline = svc_mono_ms() + ms;
	char c;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - svc_mono_ms();
		int r;

		if (left < 0)
			left = 0;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		r = (int)read(fd, &c, 1);
		if (r == 0)
			return true;
		if (r < 0 && errno != EINTR && errno != EAGAIN)
			return true;
	}
}

/* Is vssd stopped by a signal (state T in /proc/PID/stat)? */
static bool server_stopped(const struct plan *p)
{
	char buf[512];
	char *close_paren = NULL;
	ssize_t r;
	int fd = open(p->stat_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return false;
	buf[r] = '\0';
	for (char *s = buf; *s; s++)
		if (*s == ')')
			close_paren = s;
	return close_paren && close_paren[1] == ' ' && close_paren[2] == 'T';
}

/* Writes to the connection's abort file; mounts fusectl in a mount
 * namespace of the guardian's own if it is not mounted.  True if done. */
static bool abort_fuse(const struct plan *p)
{
	int fd;

	if (!p->abort_path[0])
		return false;
	fd = open(p->abort_path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && unshare(CLONE_NEWNS) == 0 &&
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
	    mount("fusectl", FUSECTL_DIR, "fusectl", 0, NULL) == 0)
		fd = open(p->abort_path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (write(fd, "1", 1) != 1) {
		close(fd);
		return false;
	}
	close(fd);
	return true;
}

/*
 * Thaws every filesystem in a child (the thawer) and escalates while it
 * has not finished (guardian.h).  The thawer keeps only the mount points'
 * descriptors: a thawer still blocked after the guardian is gone must not
 * hold vssd's end of the pipes open.
 */
static void thaw_all(const int *fds, const char *const *dirs, size_t n, const char *why,
		     struct plan *p, int cmd_fd, int ack_fd)
{
	int done[2];
	pid_t t;

	if (pipe2(done, O_CLOEXEC) < 0) {
		thaw_each(fds, dirs, n, why, p);
		return;
	}
	t = fork();
	if (t == 0) {
		close(done[0]);
		close(cmd_fd);
		close(ack_fd);
		thaw_each(fds, dirs, n, why, p);
		_exit(0);
	}
	close(done[1]);
	if (t < 0) {
		close(done[0]);
		thaw_each(fds, dirs, n, why, p);
		return;
	}
	if (wait_eof(done[0], VSS_GUARDIAN_THAW_WAIT_MS))
		goto reap;
	if (getppid() == p->server && server_stopped(p)) {
		say(p->msg_cont);
		kill(p->server, SIGCONT);
	}
	if (wait_eof(done[0], VSS_GUARDIAN_THAW_ESCALATE_MS - VSS_GUARDIAN_THAW_WAIT_MS))
		goto reap;
	say(p->msg_abort);
	if (!abort_fuse(p))
		say("vss-guardian: could not abort the FUSE connection\n");
	if (getppid() == p->server)
		kill(p->server, SIGKILL);
	if (!wait_eof(done[0], VSS_GUARDIAN_THAW_LAST_MS)) {
		say("vss-guardian: the thaw still does not return; giving up\n");
		close(done[0]);
		return;
	}
reap:
	close(done[0]);
	waitpid(t, NULL, 0);
}

static __attribute__((noreturn)) void guardian_main(int cmd_fd, int ack_fd,
						     const char *const *dirs, size_t n,
						     unsigned int limit_ms,
						     struct plan *plan)
{
	int fds[VSS_GUARDIAN_MAX_DIRS];
	int64_t deadline = svc_mono_ms() + limit_ms;
	struct pollfd pfd = { .fd = cmd_fd, .events = POLLIN };
	sigset_t none;
	char c = 0;
	int timed_out = 0;

	/* Told to stop (a service manager ending vssd's whole group, say):
	 * thaw first, never leave a filesystem frozen behind. */
	struct sigaction sa = { .sa_handler = on_stop_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* They are let in only while waiting in ppoll(), so none is missed
	 * between the check of told_to_stop and the wait. */
	sigset_t stops;
	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGHUP);
	sigprocmask(SIG_SETMASK, &stops, NULL);
	sigemptyset(&none);
	setsid();   /* a signal to vssd's process group must not reach us */
	prctl(PR_SET_NAME, "vss-guardian", 0, 0, 0);
	for (size_t i = 0; i < n; i++)
		fds[i] = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	plan->dm_fd = plan->n_resume ? open("/dev/mapper/control", O_RDWR | O_CLOEXEC) : -1;
	(void)!write(ack_fd, "R", 1);
	for (;;) {
		int64_t left = deadline - svc_mono_ms();
		int r;

		if (left <= 0) {
			timed_out = 1;
			break;
		}
		if (told_to_stop)
			break;
		struct timespec ts = { .tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000 };
		r = ppoll(&pfd, 1, &ts, &none);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			timed_out = 1;
			break;
		}
		r = (int)read(cmd_fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		break;  /* "D", or end of file: vssd is gone */
	}
	if (told_to_stop)
		c = 0;  /* thaw, whatever vssd said */
	if (c == 'D' && !timed_out)
		_exit(0);
	thaw_all(fds, dirs, n,
		 timed_out ? "vss-guardian: freeze hold exceeded its bound; thawed "
		 : told_to_stop ? "vss-guardian: told to stop during a freeze; thawed "
				: "vss-guardian: vssd went away during a freeze; thawed ",
		 plan, cmd_fd, ack_fd);
	if (timed_out)
		(void)!write(ack_fd, "T", 1);
	_exit(timed_out ? 2 : 1);
}

/* The escalation's paths and messages (guardian.h), made before the fork. */
static void make_plan(const struct vss_guardian_config *cfg, struct plan *p)
{
	struct stat st;
	unsigned int conn;

	memset(p, 0, sizeof(*p));
	p->server = cfg->server;
	snprintf(p->stat_path, sizeof(p->stat_path), "/proc/%d/stat", (int)cfg->server);
	snprintf(p->msg_cont, sizeof(p->msg_cont), "vss-guardian: a thaw is blocked and vssd "
		 "(pid %d) is stopped; sent it SIGCONT\n", (int)cfg->server);
	/* The name of a connection in fusectl is its superblock's dev_t as
	 * the kernel encodes it (MKDEV: major << 20 | minor). */
	if (cfg->device_tree && stat(cfg->device_tree, &st) == 0) {
		conn = (major(st.st_dev) << 20) | minor(st.st_dev);
		snprintf(p->abort_path, sizeof(p->abort_path), FUSECTL_DIR "/%u/abort", conn);
	}
	for (size_t i = 0; i < cfg->n_resume && i < VSS_GUARDIAN_MAX_DIRS; i++) {
		struct dm_ioctl *io = &p->resume[p->n_resume++];

		io->version[0] = DM_VERSION_MAJOR;
		io->data_size = sizeof(*io);
		io->data_start = sizeof(*io);
		io->dev = makedev(major(cfg->resume[i]), minor(cfg->resume[i]));
	}
	snprintf(p->msg_abort, sizeof(p->msg_abort), "vss-guardian: a thaw is still blocked "
		 "after %d ms; aborting the FUSE connection of %s (%s) and killing vssd "
		 "(pid %d) so that its service manager starts it again\n",
		 VSS_GUARDIAN_THAW_ESCALATE_MS, cfg->device_tree ? cfg->device_tree : "-",
		 p->abort_path[0] ? p->abort_path : "unknown", (int)cfg->server);
}

int vss_guardian_start(const char *const *dirs, size_t n,
		       const struct vss_guardian_config *cfg, struct vss_guardian **out,
		       struct vss_error *err)
{
	struct vss_guardian *g;
	struct plan plan;
	int cmd[2], ack[2];
	char c;
	ssize_t r;

	*out = NULL;
	if (n > VSS_GUARDIAN_MAX_DIRS || cfg->n_resume > VSS_GUARDIAN_MAX_DIRS)
		return vss_error_set(err, -E2BIG, "at most %d filesystems can be frozen at once",
				     VSS_GUARDIAN_MAX_DIRS);
	make_plan(cfg, &plan);
	g = calloc(1, sizeof(*g));
	if (!g)
		return vss_error_set(err, -ENOMEM, "out of memory");
	if (pipe2(cmd, O_CLOEXEC) < 0) {
		free(g);
		return vss_error_set(err, -errno, "pipe: %s", strerror(errno));
	}
	if (pipe2(ack, O_CLOEXEC) < 0) {
		close(cmd[0]);
		close(cmd[1]);
		free(g);
		return vss_error_set(err, -errno, "pipe: %s", strerror(errno));
	}
	g->pid = fork();
	if (g->pid == 0) {
		/* Keep stderr (for the log line) and the two pipe ends only:
		 * holding vssd's FUSE descriptor would keep a dead vssd's
		 * devices hanging instead of failing. */
		if (dup2(cmd[0], 3) < 0 || dup2(ack[1], 4) < 0)
			_exit(1);
		close_range(5, ~0u, 0);
		guardian_main(3, 4, dirs, n, cfg->limit_ms, &plan);
	}
	close(cmd[0]);
	close(ack[1]);
	if (g->pid < 0) {
		int rc = -errno;

		close(cmd[1]);
		close(ack[0]);
		free(g);
		return vss_error_set(err, rc, "cannot start the freeze guardian: %s", strerror(-rc));
	}
	g->cmd_fd = cmd[1];
	g->ack_fd = ack[0];
	do
		r = read(g->ack_fd, &c, 1);
	while (r < 0 && errno == EINTR);
	if (r != 1 || c != 'R') {
		vss_guardian_finish(g);
		return vss_error_set(err, -ECHILD, "the freeze guardian did not start");
	}
	*out = g;
	return 0;
}

int vss_guardian_finish(struct vss_guardian *g)
{
	int status = 0, rc = 0;
	char c;

	if (!g)
		return 0;
	(void)!write(g->cmd_fd, "D", 1);
	close(g->cmd_fd);
	while (waitpid(g->pid, &status, 0) < 0 && errno == EINTR)
		;
	if (read(g->ack_fd, &c, 1) == 1 && c == 'T')
		rc = -ETIMEDOUT;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
		rc = -ETIMEDOUT;
	close(g->ack_fd);
	free(g);
	return rc;
}
