/*
 * service/guardian.c - see guardian.h.
 *
 * The child is forked from a multi-threaded process, so between fork() and
 * _exit() it uses only system calls and memory prepared before the fork:
 * no malloc, no stdio, no locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "service/guardian.h"

struct vss_guardian {
	pid_t pid;
	int cmd_fd;     /* vssd → guardian */
	int ack_fd;     /* guardian → vssd */
};

static void say(const char *msg)
{
	(void)!write(STDERR_FILENO, msg, strlen(msg));
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static volatile sig_atomic_t told_to_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	told_to_stop = 1;
}

static __attribute__((noreturn)) void guardian_main(int cmd_fd, int ack_fd,
						     const char *const *dirs, size_t n,
						     unsigned int limit_ms)
{
	int fds[VSS_GUARDIAN_MAX_DIRS];
	int64_t deadline = now_ms() + limit_ms;
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
	(void)!write(ack_fd, "R", 1);
	for (;;) {
		int64_t left = deadline - now_ms();
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
	for (size_t i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		if (ioctl(fds[i], FITHAW, 0) == 0) {
			say(timed_out ? "vss-guardian: freeze hold exceeded its bound; thawed "
			    : told_to_stop ? "vss-guardian: told to stop during a freeze; thawed "
				      : "vss-guardian: vssd went away during a freeze; thawed ");
			say(dirs[i]);
			say("\n");
		}
	}
	if (timed_out)
		(void)!write(ack_fd, "T", 1);
	_exit(timed_out ? 2 : 1);
}

int vss_guardian_start(const char *const *dirs, size_t n, unsigned int limit_ms,
		       struct vss_guardian **out, struct vss_error *err)
{
	struct vss_guardian *g;
	int cmd[2], ack[2];
	char c;
	ssize_t r;

	*out = NULL;
	if (n > VSS_GUARDIAN_MAX_DIRS)
		return vss_error_set(err, -E2BIG, "at most %d filesystems can be frozen at once",
				     VSS_GUARDIAN_MAX_DIRS);
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
		guardian_main(3, 4, dirs, n, limit_ms);
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
