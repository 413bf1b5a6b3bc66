/*
 * service/export.c - a shadow served read-only over NBD (export.h) by
 * Debian's nbdkit: its file plugin on the shadow's device, --readonly, as
 * the child of a keeper process of vssd's, which ends it when vssd closes
 * a pipe (unexport, or vssd died, even by kill -9: start_nbdkit), run with a fixed argv, a clean environment, stdin from
 * /dev/null and no other descriptor.  The Unix socket is in a directory of
 * vssd's (RUN/exports/ID, 0755 root) and belongs to the caller, 0600: only
 * the caller and root connect.  A TCP port is bound to 127.0.0.1 only, and
 * only for root (every local user can connect to it).
 *
 * Changed blocks: nbdkit 1.32 lets a plugin or filter answer block status
 * for base:allocation only, not a metadata context of its own (qemu's
 * qemu:dirty-bitmap:NAME), so with a base shadow the export's
 * base:allocation *is* the map: its extentlist filter reads a list, written
 * here, that covers the whole device: the changed blocks as data, every
 * other range as a hole without the zero flag (their bytes are still read
 * as they are, never promised to be zero).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "provider/provider.h"
#include "service/args.h"
#include "service/caller.h"
#include "service/export.h"
#include "service/log.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/tracking.h"

#define NBDKIT_BIN "/usr/bin/nbdkit"
#define EXPORT_READY_MS 10000          /* nbdkit's start, until its pidfile */

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static bool alive(struct svc_export *x)
{
	if (x->pid > 0 && waitpid(x->pid, NULL, WNOHANG) == x->pid)
		x->pid = 0;
	return x->pid > 0;
}

/* nbdkit ends (TERM, then KILL after 2 s), its files and directory go. */
static void end_one(struct svc_export *x)
{
	char p[PATH_MAX + 16];
	struct stat st;

	/* The keeper sees its pipe close, ends nbdkit and waits for it. */
	if (x->life >= 0)
		close(x->life);
	x->life = -1;
	if (x->pid > 0) {
		for (int i = 0; i < 300 && alive(x); i++)
			sleep_ms(10);
		if (alive(x)) {   /* its nbdkit gets SIGTERM as it dies (PDEATHSIG) */
			kill(x->pid, SIGKILL);
			waitpid(x->pid, NULL, 0);
		}
		x->pid = 0;
	}
	if (x->socket[0] && lstat(x->socket, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(x->socket);
	for (const char *const *f = (const char *const[]){ "pid", "log", "changed", "nbd.sock",
							      NULL }; *f; f++) {
		snprintf(p, sizeof(p), "%s/%s", x->dir, *f);
		unlink(p);
	}
	rmdir(x->dir);
}

static void unlink_export(struct vss_service *svc, struct svc_export *x)
{
	for (struct svc_export **pp = &svc->exports; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
}

void svc_exports_end_of(struct vss_service *svc, const char *id)
{
	struct svc_export *x, *next;

	svc_assert_locked(svc);
	for (x = svc->exports; x; x = next) {
		next = x->next;
		if (strcmp(x->shadow, id) != 0)
			continue;
		unlink_export(svc, x);
		end_one(x);
		vss_log("shadow %s: no longer exported (it is deleted)", id);
		free(x);
	}
}

void svc_exports_end_all(struct vss_service *svc)
{
	svc_assert_locked(svc);
	while (svc->exports) {
		struct svc_export *x = svc->exports;

		svc->exports = x->next;
		end_one(x);
		vss_log("shadow %s: no longer exported (vssd stops)", x->shadow);
		free(x);
	}
}

/* The map for the extentlist filter: every byte of the device, changed
 * extents as data (type 0), the ranges between as holes (type 1, not zero). */
static int write_map(const char *path, json_t *extents, uint64_t size, uint64_t *changed,
		     struct vss_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	uint64_t at = 0;
	size_t i;
	json_t *e;
	FILE *f;

	*changed = 0;
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		int e2 = errno;

		if (fd >= 0)
			close(fd);
		return vss_error_set(err, -e2, "%s: %s", path, strerror(e2));
	}
	json_array_foreach(extents, i, e) {
		uint64_t off = (uint64_t)json_integer_value(json_array_get(e, 0));
		uint64_t len = (uint64_t)json_integer_value(json_array_get(e, 1));

		if (off < at || len == 0 || off > size || len > size - off) {
			fclose(f);
			return vss_error_set(err, -EIO, "changed extent %" PRIu64 "+%" PRIu64
					     " is outside the shadow or out of order", off, len);
		}
		if (off > at)
			fprintf(f, "%" PRIu64 " %" PRIu64 " 1\n", at, off - at);
		fprintf(f, "%" PRIu64 " %" PRIu64 " 0\n", off, len);
		*changed += len;
		at = off + len;
	}
	if (at < size)
		fprintf(f, "%" PRIu64 " %" PRIu64 " 1\n", at, size - at);
	if (fclose(f) != 0)
		return vss_error_set(err, -EIO, "%s: %s", path, strerror(errno));
	return 0;
}

/* The changed blocks from @since to @id, as "vss diff" lists them. */
static int changed_map(struct vss_service *svc, struct svc_export *x, const char *path,
		       struct vss_error *err)
{
	json_t *args = json_pack("{s:s, s:s}", "from", x->since, "to", x->shadow), *res = NULL;
	int rc;

	if (!args)
		return vss_error_set(err, -ENOMEM, "out of memory");
	rc = svc_op_shadow_diff(svc, NULL, args, &res, err);
	json_decref(args);
	if (rc < 0)
		return rc;
	rc = write_map(path, json_object_get(res, "extents"),
		       (uint64_t)json_integer_value(json_object_get(res, "size")),
		       &x->changed_bytes, err);
	json_decref(res);
	return rc;
}

/* What nbdkit wrote on its stderr, for an error message. */
static void read_log(const struct svc_export *x, char *out, size_t size)
{
	char p[PATH_MAX + 16];
	ssize_t n = -1;
	int fd;

	snprintf(p, sizeof(p), "%s/log", x->dir);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
		n = read(fd, out, size - 1);
		close(fd);
	}
	out[n > 0 ? n : 0] = '\0';
	for (char *c = out; *c; c++)
		if (*c == '\n' || (unsigned char)*c < ' ')
			*c = ' ';
}

static int start_nbdkit(struct svc_export *x, bool map, struct vss_error *err)
{
	char pidf[PATH_MAX + 16], logf[PATH_MAX + 16], mapf[PATH_MAX + 32];
	char file[PATH_MAX + 16], port[16], why[512];
	const char *argv[24];
	char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL };
	size_t n = 0;
	pid_t pid;
	int logfd, life[2];

	snprintf(pidf, sizeof(pidf), "%s/pid", x->dir);
	snprintf(logf, sizeof(logf), "%s/log", x->dir);
	snprintf(mapf, sizeof(mapf), "extentlist=%s/changed", x->dir);
	snprintf(file, sizeof(file), "file=%s", x->device);
	snprintf(port, sizeof(port), "%u", x->port);
	argv[n++] = NBDKIT_BIN;
	argv[n++] = "--foreground";
	argv[n++] = "--readonly";
	argv[n++] = "--log=stderr";
	argv[n++] = "--pidfile";
	argv[n++] = pidf;
	if (x->port) {
		argv[n++] = "--ipaddr";
		argv[n++] = "127.0.0.1";
		argv[n++] = "--port";
		argv[n++] = port;
	} else {
		argv[n++] = "--unix";
		argv[n++] = x->socket;
	}
	if (map)
		argv[n++] = "--filter=extentlist";
	argv[n++] = "file";
	argv[n++] = file;
	if (map)
		argv[n++] = mapf;
	argv[n] = NULL;
	if (pipe2(life, O_CLOEXEC) < 0)
		return vss_error_set(err, -errno, "pipe: %s", strerror(errno));
	logfd = open(logf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (logfd < 0 || (pid = fork()) < 0) {
		int e = errno;

		if (logfd >= 0)
			close(logfd);
		close(life[0]);
		close(life[1]);
		return vss_error_set(err, -e, "%s: %s", logfd < 0 ? logf : "fork", strerror(e));
	}
	if (pid == 0) {
		/* The keeper (async-signal-safe calls only: forked from threads).
		 * nbdkit sets PR_SET_PDEATHSIG on itself, which fires when the
		 * thread that forked it ends: its parent is this process instead,
		 * which lives until vssd closes its end of @life (unexport, or
		 * vssd died), then ends nbdkit and waits for it. */
		struct pollfd pl = { 3, POLLIN, 0 };
		int nul = open("/dev/null", O_RDWR);
		sigset_t none;
		pid_t srv;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(logfd, 2) < 0 ||
		    dup2(life[0], 3) < 0)
			_exit(127);
		/* Nothing else of vssd's stays open here (a volume's origin held
		 * O_EXCL, the FUSE device, vssd's socket, @life's other end). */
		close_range(4, ~0u, 0);
		if ((srv = fork()) < 0)
			_exit(127);
		if (srv == 0) {
			close_range(3, ~0u, 0);
			umask(077);
			execve(NBDKIT_BIN, (char *const *)argv, envp);
			_exit(127);
		}
		for (;;) {
			int st;

			if (waitpid(srv, &st, WNOHANG) == srv)
				_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128);
			if (poll(&pl, 1, 100) > 0 && (pl.revents & (POLLHUP | POLLERR)))
				break;
		}
		kill(srv, SIGTERM);
		waitpid(srv, NULL, 0);
		_exit(0);
	}
	close(logfd);
	close(life[0]);
	x->life = life[1];
	x->pid = pid;
	for (unsigned int ms = 0; ms < EXPORT_READY_MS; ms += 20) {
		if (access(pidf, F_OK) == 0)
			return 0;
		if (!alive(x))
			break;
		sleep_ms(20);
	}
	read_log(x, why, sizeof(why));
	return vss_error_set(err, -EIO, "nbdkit did not start serving shadow %s%s%s",
			     x->shadow, why[0] ? ": " : "", why);
}

/* Where to listen: a socket vssd makes for the caller, a path root names,
 * or a port of 127.0.0.1 (root). */
static int where(const struct svc_caller *who, struct svc_export *x, const char *socket,
		 uint64_t port, struct vss_error *err)
{
	bool root = !who || who->uid == 0;
	struct stat st;

	if (socket && port)
		return vss_error_set(err, -EINVAL, "an export listens on a socket or on a port, "
				     "not both");
	if (port) {
		if (!root)
			return vss_error_set(err, -EACCES, "permission denied: only root may "
					     "export on a TCP port (every local user can "
					     "connect to 127.0.0.1)");
		if (port > 65535)
			return vss_error_set(err, -EINVAL, "port %" PRIu64 " is not 1-65535", port);
		x->port = (unsigned int)port;
		return 0;
	}
	if (!socket) {
		if ((size_t)snprintf(x->socket, sizeof(x->socket), "%.4000s/nbd.sock", x->dir) >=
		    108)
			return vss_error_set(err, -ENAMETOOLONG, "%s/nbd.sock is too long for a "
					     "socket: pass --socket", x->dir);
		return 0;
	}
	if (!root)
		return vss_error_set(err, -EACCES, "permission denied: only root may name the "
				     "socket (an operator's is made under vssd's run directory)");
	if (socket[0] != '/' || strlen(socket) >= 108)
		return vss_error_set(err, -EINVAL, "the socket must be an absolute path shorter "
				     "than 108 bytes: %s", socket);
	if (lstat(socket, &st) == 0)
		return vss_error_set(err, -EEXIST, "%s exists", socket);
	snprintf(x->socket, sizeof(x->socket), "%s", socket);
	return 0;
}

static json_t *export_json(struct svc_export *x)
{
	json_t *o = json_pack("{s:s, s:s?, s:s?, s:I, s:s, s:b, s:I}",
			      "shadow", x->shadow, "changed_since", x->since[0] ? x->since : NULL,
			      "socket", x->socket[0] ? x->socket : NULL,
			      "pid", (json_int_t)x->pid, "device", x->device, "running", alive(x),
			      "changed_bytes", (json_int_t)x->changed_bytes);

	if (o && x->port) {
		json_object_set_new(o, "address", json_string("127.0.0.1"));
		json_object_set_new(o, "port", json_integer((json_int_t)x->port));
	}
	return o;
}

int svc_op_shadow_export(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err)
{
	const char *id, *socket, *since;
	uint64_t port = 0;
	char full[37], base[37];
	struct svc_export *x;
	struct svc_shadow *sh;
	struct stat st;
	char exports[PATH_MAX];
	int rc;

	if ((rc = svc_arg_str(args, "shadow", true, &id, err)) < 0 ||
	    (rc = svc_arg_str(args, "socket", false, &socket, err)) < 0 ||
	    (rc = svc_arg_str(args, "since", false, &since, err)) < 0 ||
	    (rc = svc_arg_u64(args, "port", false, &port, err)) < 0)
		return rc;
	if ((rc = svc_shadow_resolve(svc, id, full, err)) < 0)
		return rc;
	if (access(NBDKIT_BIN, X_OK) < 0)
		return vss_error_set(err, -ENOENT, "%s is not there: install nbdkit (Debian: "
				     "nbdkit) to export shadows over NBD", NBDKIT_BIN);
	sh = svc_shadow_find(svc, full);
	if ((rc = svc_shadow_check_reach(who, sh, err)) < 0)
		return rc;
	for (x = svc->exports; x; x = x->next)
		if (strcmp(x->shadow, full) == 0)
			return vss_error_set(err, -EBUSY, "shadow %s is exported already (%s)",
					     full, x->socket[0] ? x->socket : "a TCP port");
	if (since && (rc = svc_shadow_resolve(svc, since, base, err)) < 0)
		return rc;
	if (since && strcmp(base, full) == 0)
		return vss_error_set(err, -EINVAL, "--changed-since names the shadow itself");
	if (!(x = calloc(1, sizeof(*x))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	x->life = -1;
	snprintf(x->shadow, sizeof(x->shadow), "%s", full);
	if (since)
		snprintf(x->since, sizeof(x->since), "%s", base);
	x->owner = who ? who->uid : 0;
	sh->prov->location(svc, sh, x->device, sizeof(x->device));
	if (stat(x->device, &st) < 0 || !(S_ISBLK(st.st_mode) || S_ISREG(st.st_mode))) {
		rc = vss_error_set(err, -EOPNOTSUPP, "shadow %s is %s, not a device: only a "
				   "shadow with a device (vss volumes, LVM) can be exported",
				   full, x->device);
		free(x);
		return rc;
	}
	snprintf(exports, sizeof(exports), "%.4000s/exports", svc->run_dir);
	snprintf(x->dir, sizeof(x->dir), "%.4000s/%s", exports, full);
	if (mkdir(exports, 0755) < 0 && errno != EEXIST) {
		rc = vss_error_set(err, -errno, "%s: %s", exports, strerror(errno));
		free(x);
		return rc;
	}
	/* What a vssd that died left there goes (its nbdkit died with it). */
	{
		struct svc_export old = { .pid = 0, .life = -1 };

		memcpy(old.dir, x->dir, sizeof(old.dir));
		end_one(&old);
	}
	if (mkdir(x->dir, 0755) < 0) {
		rc = vss_error_set(err, -errno, "%s: %s", x->dir, strerror(errno));
		free(x);
		return rc;
	}
	if ((rc = where(who, x, socket, port, err)) < 0)
		goto fail;
	if (since) {
		char map[PATH_MAX + 16];

		snprintf(map, sizeof(map), "%s/changed", x->dir);
		if ((rc = changed_map(svc, x, map, err)) < 0)
			goto fail;
	}
	if ((rc = start_nbdkit(x, since != NULL, err)) < 0)
		goto fail;
	/* nbdkit makes it 0755 (no one else may connect: that needs write), then
	 * it is the caller's alone. */
	if (x->socket[0] &&
	    (chown(x->socket, x->owner, (gid_t)-1) < 0 || chmod(x->socket, 0600) < 0)) {
		rc = vss_error_set(err, -errno, "%s: %s", x->socket, strerror(errno));
		goto fail;
	}
	x->next = svc->exports;
	svc->exports = x;
	vss_log("shadow %s exported read-only over NBD on %s%s (nbdkit %d)%s%s", full,
		x->port ? "127.0.0.1 port " : "", x->port ? "" : x->socket, (int)x->pid,
		since ? ", block status: changed since " : "", since ? x->since : "");
	if (!(*res = export_json(x))) {
		unlink_export(svc, x);
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (x->port)
		json_object_set_new(*res, "warning", json_string("bound to 127.0.0.1 without "
								 "TLS: every local user can "
								 "read this shadow"));
	return 0;
fail:
	end_one(x);
	free(x);
	return rc;
}

int svc_op_shadow_unexport(struct vss_service *svc, const struct svc_caller *who,
			   json_t *args, json_t **res, struct vss_error *err)
{
	const char *id;
	char full[37];
	struct svc_export *x;
	int rc;

	if ((rc = svc_arg_str(args, "shadow", true, &id, err)) < 0 ||
	    (rc = svc_shadow_resolve(svc, id, full, err)) < 0)
		return rc;
	for (x = svc->exports; x; x = x->next)
		if (strcmp(x->shadow, full) == 0)
			break;
	if (!x)
		return vss_error_set(err, -ENOENT, "shadow %s is not exported", full);
	if (who && who->uid != 0 && who->uid != x->owner)
		return vss_error_set(err, -EACCES, "permission denied: shadow %s was exported "
				     "by another user", full);
	unlink_export(svc, x);
	end_one(x);
	vss_log("shadow %s: no longer exported", full);
	*res = json_pack("{s:s}", "shadow", full);
	free(x);
	return 0;
}

int svc_op_export_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		       json_t **res, struct vss_error *err)
{
	json_t *arr = json_array();

	for (struct svc_export *x = svc->exports; arr && x; x = x->next)
		json_array_append_new(arr, export_json(x));
	*res = arr ? json_pack("{s:o}", "exports", arr) : NULL;
	return *res ? 0 : vss_error_set(err, -ENOMEM, "out of memory");
}
