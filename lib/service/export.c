/*
 * service/export.c - a shadow, or a live volume, served read-only over NBD
 * (export.h) by Debian's nbdkit: its file plugin on the device, --readonly, as
 * the child of a keeper process of vssd's, which ends it when vssd closes
 * a pipe (unexport, or vssd died, even by kill -9: start_servers), run with a fixed argv, a clean environment, stdin from
 * /dev/null and no other descriptor.  The Unix socket is in a directory of
 * vssd's (RUN/exports/ID, 0755 root) and belongs to the caller, 0600: only
 * the caller and root connect.  A TCP port is root's: bound to 127.0.0.1
 * unless root names another address (--listen: a numeric one, or "any"
 * for every address).  Without TLS only a loopback address (every local
 * user can connect to it); with a TLS certificate directory any, TLS
 * required, and only a client whose certificate that directory's CA
 * signed is served (--tls-verify-peer).
 *
 * Restarts: each export is a catalog row from its start to its unexport
 * (or its shadow's or volume's deletion); vssd's stop ends nbdkit but
 * keeps the row, and the next start serves root's exports again
 * (svc_exports_restore).  Another user's is logged as gone and forgotten:
 * whether they may still read it is theirs to show by asking again.
 *
 * Changed blocks (--changed-since BASE): nbdkit 1.32 lets a plugin or
 * filter answer block status for base:allocation only, so nbdkit's
 * extentlist filter makes the changed blocks its base:allocation (a list,
 * written here, covering the whole device: the changed blocks as data,
 * every other range as a hole without the zero flag: their bytes are still
 * read as they are, never promised to be zero), on a socket of its own in
 * the export's directory (DIR/nbdkit.sock, root's alone); and Debian's
 * qemu-storage-daemon, started by the same keeper once nbdkit listens,
 * serves the client: a qcow2 image with no data clusters (DIR/changed.qcow2,
 * root's, 0600, written by qcow2.c at each start) over that socket as its
 * backing, whose persistent bitmap, named after BASE's ID, is the same map,
 * offered as the metadata context qemu:dirty-bitmap:BASE beside the
 * base:allocation that passes through.  Both run as root, read-only, with
 * the same argv discipline; the socket, port, address and TLS are qemu's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "provider/provider.h"
#include "service/args.h"
#include "service/caller.h"
#include "service/catalog.h"
#include "service/export.h"
#include "service/log.h"
#include "service/qcow2.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/tracking.h"
#include "service/volumes.h"

#define NBDKIT_BIN "/usr/bin/nbdkit"
#define QSD_BIN "/usr/bin/qemu-storage-daemon"
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
							      "nbdkit.sock", "changed.qcow2",
							      "qsd.pid", NULL }; *f; f++) {
		snprintf(p, sizeof(p), "%s/%s", x->dir, *f);
		unlink(p);
	}
	rmdir(x->dir);
}

/* What @x serves, for messages and the catalog: a shadow's ID or a volume's name. */
static const char *name_of(const struct svc_export *x)
{
	return x->volume[0] ? x->volume : x->shadow;
}

static const char *kind_of(const struct svc_export *x)
{
	return x->volume[0] ? "volume" : "shadow";
}

static void unlink_export(struct vss_service *svc, struct svc_export *x)
{
	for (struct svc_export **pp = &svc->exports; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
}

void svc_exports_end_of(struct vss_service *svc, bool volume, const char *name)
{
	struct svc_export *x, *next;

	svc_assert_locked(svc);
	for (x = svc->exports; x; x = next) {
		next = x->next;
		if (!!x->volume[0] != volume || strcmp(name_of(x), name) != 0)
			continue;
		unlink_export(svc, x);
		end_one(x);
		vss_catalog_export_delete(svc->cat, volume, name, NULL);
		vss_log("%s %s: no longer exported (it is deleted)", kind_of(x), name);
		free(x);
	}
}

bool svc_exports_has_volume(struct vss_service *svc, const char *name)
{
	svc_assert_locked(svc);
	for (struct svc_export *x = svc->exports; x; x = x->next)
		if (x->volume[0] && strcmp(x->volume, name) == 0)
			return true;
	return false;
}

void svc_exports_end_all(struct vss_service *svc)
{
	svc_assert_locked(svc);
	while (svc->exports) {
		struct svc_export *x = svc->exports;
		struct svc_shadow *sh = x->shadow[0] ? svc_shadow_find(svc, x->shadow) : NULL;

		svc->exports = x->next;
		end_one(x);
		vss_log("%s %s: no longer exported (vssd stops): %s", kind_of(x), name_of(x),
			sh && !(sh->rec.attrs & VSS_CATALOG_ATTR_PERSISTENT)
			? "the shadow copy is not persistent, it goes too"
			: x->owner ? "its owner must export it again after the next start"
				   : "the next start serves it again");
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

/* The changed extents of a shadow.diff answer, for the qcow2 bitmap. */
static int extents_of(json_t *arr, struct vss_cow_extent **out, size_t *n, struct vss_error *err)
{
	size_t i;
	json_t *e;

	*n = json_array_size(arr);
	if (!(*out = calloc(*n ? *n : 1, sizeof(**out))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	json_array_foreach(arr, i, e) {
		(*out)[i].offset = (uint64_t)json_integer_value(json_array_get(e, 0));
		(*out)[i].length = (uint64_t)json_integer_value(json_array_get(e, 1));
	}
	return 0;
}

/* The changed blocks from @since to the shadow (or to now, for a volume),
 * as "vss diff" lists them: nbdkit's extent list at @path, and the qcow2
 * image whose bitmap qemu serves at @qcow2. */
static int changed_map(struct vss_service *svc, struct svc_export *x, const char *path,
		       const char *qcow2, struct vss_error *err)
{
	json_t *args = json_pack("{s:s, s:s?}", "from", x->since,
				 "to", x->volume[0] ? NULL : x->shadow), *res = NULL;
	struct vss_cow_extent *ext = NULL;
	uint64_t size;
	const char *of;
	size_t n;
	int rc;

	if (!args)
		return vss_error_set(err, -ENOMEM, "out of memory");
	rc = svc_op_shadow_diff(svc, NULL, args, &res, err);
	json_decref(args);
	if (rc < 0) {
		char why[sizeof(err->msg)];

		memcpy(why, err->msg, sizeof(why));
		return vss_error_set(err, rc, "--changed-since %s (an older shadow copy of the "
				     "same volume): %s", x->since, why);
	}
	of = json_string_value(json_object_get(res, "volume"));
	if (x->volume[0] && (!of || strcmp(of, x->volume) != 0)) {
		json_decref(res);
		return vss_error_set(err, -EINVAL, "%s is not a shadow copy of volume %s",
				     x->since, x->volume);
	}
	size = (uint64_t)json_integer_value(json_object_get(res, "size"));
	rc = write_map(path, json_object_get(res, "extents"), size, &x->changed_bytes, err);
	if (rc == 0)
		rc = extents_of(json_object_get(res, "extents"), &ext, &n, err);
	if (rc == 0) {
		json_int_t bs = json_integer_value(json_object_get(res, "block_size"));

		x->granularity = bs > 0 && bs <= UINT32_MAX ? (uint32_t)bs : 0;
		rc = svc_qcow2_bitmap_write(qcow2, size, x->device, x->since, &x->granularity,
					    ext, n, err);
	}
	free(ext);
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

/* @in into @out with every comma doubled, as qemu's option syntax wants a
 * value; false if it does not fit. */
static bool qemu_escape(const char *in, char *out, size_t size)
{
	size_t n = 0;

	for (; *in; in++) {
		if (n + 3 > size)
			return false;
		out[n++] = *in;
		if (*in == ',')
			out[n++] = ',';
	}
	out[n] = '\0';
	return true;
}

/* qemu-storage-daemon's argv for @x (with a changed-block map), in @buf
 * (strings) and @argv; -ENAMETOOLONG if a path does not fit. */
struct qsd_args {
	char base[PATH_MAX + 128], top[2 * PATH_MAX + 128], tls[2 * PATH_MAX + 96];
	char server[2 * PATH_MAX + 128], export[256], pidf[PATH_MAX + 16];
	const char *argv[16];
};

static int qsd_argv(const struct svc_export *x, struct qsd_args *q, struct vss_error *err)
{
	char dir[2 * PATH_MAX], sock[2 * PATH_MAX], tls[2 * PATH_MAX];
	size_t n = 0;
	int w = 0;

	if (!qemu_escape(x->dir, dir, sizeof(dir)) ||
	    !qemu_escape(x->socket, sock, sizeof(sock)) || !qemu_escape(x->tls, tls, sizeof(tls)))
		return vss_error_set(err, -ENAMETOOLONG, "%s: path too long", x->dir);
	snprintf(q->pidf, sizeof(q->pidf), "%s/qsd.pid", x->dir);
	w |= snprintf(q->base, sizeof(q->base), "driver=nbd,node-name=map-base,server.type=unix,"
		      "server.path=%s/nbdkit.sock,read-only=on", dir) >= (int)sizeof(q->base);
	w |= snprintf(q->top, sizeof(q->top), "driver=qcow2,node-name=map,read-only=on,"
		      "file.driver=file,file.filename=%s/changed.qcow2,file.read-only=on,"
		      "backing=map-base", dir) >= (int)sizeof(q->top);
	if (x->port)
		w |= snprintf(q->server, sizeof(q->server), "addr.type=inet,addr.host=%s,"
			      "addr.port=%u%s", x->address[0] ? x->address : "::", x->port,
			      x->tls[0] ? ",tls-creds=tls" : "") >= (int)sizeof(q->server);
	else
		w |= snprintf(q->server, sizeof(q->server), "addr.type=unix,addr.path=%s",
			      sock) >= (int)sizeof(q->server);
	if (x->tls[0])
		w |= snprintf(q->tls, sizeof(q->tls), "tls-creds-x509,id=tls,dir=%s,"
			      "endpoint=server,verify-peer=on", tls) >= (int)sizeof(q->tls);
	w |= snprintf(q->export, sizeof(q->export), "type=nbd,id=export,node-name=map,name=,"
		      "writable=off,bitmaps.0=%s", x->since) >= (int)sizeof(q->export);
	if (w)
		return vss_error_set(err, -ENAMETOOLONG, "%s: path too long", x->dir);
	q->argv[n++] = QSD_BIN;
	q->argv[n++] = "--blockdev";
	q->argv[n++] = q->base;
	q->argv[n++] = "--blockdev";
	q->argv[n++] = q->top;
	if (x->tls[0]) {
		q->argv[n++] = "--object";
		q->argv[n++] = q->tls;
	}
	q->argv[n++] = "--nbd-server";
	q->argv[n++] = q->server;
	q->argv[n++] = "--export";
	q->argv[n++] = q->export;
	q->argv[n++] = "--pidfile";
	q->argv[n++] = q->pidf;
	q->argv[n] = NULL;
	return 0;
}

/* In the keeper (async-signal-safe calls only): runs @argv as a child with
 * /dev/null, the log and nothing else open; its pid or -1. */
static pid_t spawn(const char *const *argv, char *const *envp)
{
	pid_t pid = fork();

	if (pid == 0) {
		close_range(3, ~0u, 0);
		umask(077);
		/* If the keeper is killed, its servers end too. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execve(argv[0], (char *const *)argv, envp);
		_exit(127);
	}
	return pid;
}

/*
 * The servers of @x under a keeper process: nbdkit, and with a changed-block
 * map qemu-storage-daemon in front of it (started once nbdkit's pidfile
 * exists).  Ready when the front one's pidfile exists: nbdkit's "pid", or
 * qemu's "qsd.pid", each written once it listens.
 */
static int start_servers(struct svc_export *x, bool map, struct vss_error *err)
{
	char pidf[PATH_MAX + 16], logf[PATH_MAX + 16], mapf[PATH_MAX + 32];
	char file[PATH_MAX + 16], port[16], why[512], inner[PATH_MAX + 16];
	const char *argv[28];
	char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL };
	struct qsd_args *q = NULL;
	size_t n = 0;
	pid_t pid;
	int logfd, life[2], rc;

	snprintf(pidf, sizeof(pidf), "%s/pid", x->dir);
	snprintf(logf, sizeof(logf), "%s/log", x->dir);
	snprintf(mapf, sizeof(mapf), "extentlist=%s/changed", x->dir);
	snprintf(file, sizeof(file), "file=%s", x->device);
	snprintf(port, sizeof(port), "%u", x->port);
	snprintf(inner, sizeof(inner), "%s/nbdkit.sock", x->dir);
	if (map) {
		if (!(q = calloc(1, sizeof(*q))))
			return vss_error_set(err, -ENOMEM, "out of memory");
		if ((rc = qsd_argv(x, q, err)) < 0) {
			free(q);
			return rc;
		}
	}
	argv[n++] = NBDKIT_BIN;
	argv[n++] = "--foreground";
	argv[n++] = "--readonly";
	argv[n++] = "--log=stderr";
	argv[n++] = "--pidfile";
	argv[n++] = pidf;
	if (map) {
		/* Behind qemu: root's socket, no TLS, no port. */
		argv[n++] = "--unix";
		argv[n++] = inner;
		argv[n++] = "--filter=extentlist";
	} else {
		if (x->tls[0]) {
			argv[n++] = "--tls=require";
			argv[n++] = "--tls-certificates";
			argv[n++] = x->tls;
			argv[n++] = "--tls-verify-peer";
		}
		if (x->port) {
			if (x->address[0]) {
				argv[n++] = "--ipaddr";
				argv[n++] = x->address;
			}
			argv[n++] = "--port";
			argv[n++] = port;
		} else {
			argv[n++] = "--unix";
			argv[n++] = x->socket;
		}
	}
	argv[n++] = "file";
	argv[n++] = file;
	if (map)
		argv[n++] = mapf;
	argv[n] = NULL;
	if (pipe2(life, O_CLOEXEC) < 0) {
		rc = vss_error_set(err, -errno, "pipe: %s", strerror(errno));
		free(q);
		return rc;
	}
	logfd = open(logf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (logfd < 0 || (pid = fork()) < 0) {
		int e = errno;

		if (logfd >= 0)
			close(logfd);
		close(life[0]);
		close(life[1]);
		free(q);
		return vss_error_set(err, -e, "%s: %s", logfd < 0 ? logf : "fork", strerror(e));
	}
	if (pid == 0) {
		/* The keeper (async-signal-safe calls only: forked from threads).
		 * nbdkit sets PR_SET_PDEATHSIG on itself, which fires when the
		 * thread that forked it ends: its parent is this process instead,
		 * which lives until vssd closes its end of @life (unexport, or
		 * vssd died), then ends its servers and waits for them. */
		struct pollfd pl = { 3, POLLIN, 0 };
		int nul = open("/dev/null", O_RDWR);
		pid_t srv, front = 0;
		sigset_t none;
		int st;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(logfd, 2) < 0 ||
		    dup2(life[0], 3) < 0)
			_exit(127);
		/* Nothing else of vssd's stays open here (a volume's origin held
		 * O_EXCL, the FUSE device, vssd's socket, @life's other end). */
		close_range(4, ~0u, 0);
		if ((srv = spawn(argv, envp)) < 0)
			_exit(127);
		for (;;) {
			if (waitpid(srv, &st, WNOHANG) == srv) {
				if (front > 0) {
					kill(front, SIGTERM);
					waitpid(front, NULL, 0);
				}
				_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128);
			}
			if (front > 0 && waitpid(front, &st, WNOHANG) == front)
				break;
			if (q && front == 0 && access(pidf, F_OK) == 0 &&
			    (front = spawn(q->argv, envp)) < 0)
				break;
			if (poll(&pl, 1, q && front == 0 ? 10 : 100) > 0 &&
			    (pl.revents & (POLLHUP | POLLERR)))
				break;
		}
		if (front > 0) {
			kill(front, SIGTERM);
			waitpid(front, NULL, 0);
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
		if (access(q ? q->pidf : pidf, F_OK) == 0) {
			free(q);
			return 0;
		}
		if (!alive(x))
			break;
		sleep_ms(20);
	}
	free(q);
	read_log(x, why, sizeof(why));
	return vss_error_set(err, -EIO, "%s did not start serving %s %s%s%s",
			     map ? "qemu-storage-daemon (over nbdkit)" : "nbdkit", kind_of(x),
			     name_of(x), why[0] ? ": " : "", why);
}

/* @listen as nbdkit's --ipaddr in @out (numeric, as inet_ntop writes it; ""
 * for "any": every address), and whether it is a loopback address. */
static int listen_address(const char *listen, char *out, size_t size, bool *loopback,
			  struct vss_error *err)
{
	unsigned char a[16];

	*loopback = false;
	if (strcmp(listen, "any") == 0) {
		out[0] = '\0';
		return 0;
	}
	if (inet_pton(AF_INET, listen, a) == 1) {
		*loopback = a[0] == 127;
		if (inet_ntop(AF_INET, a, out, (socklen_t)size))
			return 0;
	} else if (inet_pton(AF_INET6, listen, a) == 1) {
		static const unsigned char one[16] = { [15] = 1 };
		static const unsigned char v4[12] = { [10] = 0xff, [11] = 0xff };

		*loopback = memcmp(a, one, 16) == 0 || (memcmp(a, v4, 12) == 0 && a[12] == 127);
		if (inet_ntop(AF_INET6, a, out, (socklen_t)size))
			return 0;
	}
	return vss_error_set(err, -EINVAL, "--listen takes a numeric IPv4 or IPv6 address "
			     "of this machine, or \"any\": not \"%.64s\"", listen);
}

/* Where to listen: a socket vssd makes for the caller, a path root names,
 * or a port (root) on an address; with TLS from root's certificate
 * directory, or not. */
static int where(const struct svc_caller *who, struct svc_export *x, const char *socket,
		 uint64_t port, const char *listen, const char *tls, struct vss_error *err)
{
	bool root = !who || who->uid == 0, loopback;
	struct stat st;
	int rc;

	if (socket && port)
		return vss_error_set(err, -EINVAL, "an export listens on a socket or on a port, "
				     "not both");
	if (listen && !port)
		return vss_error_set(err, -EINVAL, "--listen names the address of a TCP port: "
				     "give --port too");
	if (tls) {
		if (!root)
			return vss_error_set(err, -EACCES, "permission denied: only root may "
					     "name a TLS certificate directory");
		if (tls[0] != '/' || strlen(tls) >= sizeof(x->tls) || stat(tls, &st) < 0 ||
		    !S_ISDIR(st.st_mode))
			return vss_error_set(err, -EINVAL, "the TLS certificates must be an "
					     "absolute path of a directory: %s", tls);
		snprintf(x->tls, sizeof(x->tls), "%s", tls);
	}
	if (port) {
		if (!root)
			return vss_error_set(err, -EACCES, "permission denied: only root may "
					     "export on a TCP port (every local user can "
					     "connect to 127.0.0.1)");
		if (port > 65535)
			return vss_error_set(err, -EINVAL, "port %" PRIu64 " is not 1-65535", port);
		if ((rc = listen_address(listen ? listen : "127.0.0.1", x->address,
					 sizeof(x->address), &loopback, err)) < 0)
			return rc;
		if (!loopback && !x->tls[0])
			return vss_error_set(err, -EINVAL, "without TLS an export listens on a "
					     "loopback address only (127.0.0.0/8, ::1), not on "
					     "%s: give --tls-certificates DIR", x->address[0] ?
					     x->address : "every address");
		x->port = (unsigned int)port;
		return 0;
	}
	if (!socket)
		return 0;       /* export_start() makes one in the export's directory */
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
	json_t *o = json_pack("{s:s?, s:s?, s:s?, s:s?, s:I, s:s, s:b, s:I}",
			      "shadow", x->shadow[0] ? x->shadow : NULL,
			      "volume", x->volume[0] ? x->volume : NULL,
			      "changed_since", x->since[0] ? x->since : NULL,
			      "socket", x->socket[0] ? x->socket : NULL,
			      "pid", (json_int_t)x->pid, "device", x->device, "running", alive(x),
			      "changed_bytes", (json_int_t)x->changed_bytes);

	if (o && x->port) {
		json_object_set_new(o, "address", json_string(x->address));
		json_object_set_new(o, "port", json_integer((json_int_t)x->port));
	}
	if (o && x->tls[0])
		json_object_set_new(o, "tls_certificates", json_string(x->tls));
	if (o && x->since[0]) {
		char ctx[64];

		snprintf(ctx, sizeof(ctx), "qemu:dirty-bitmap:%s", x->since);
		json_object_set_new(o, "metadata_context", json_string(ctx));
		json_object_set_new(o, "granularity", json_integer((json_int_t)x->granularity));
	}
	return o;
}

/*
 * What @args names: "shadow" (an ID or a prefix of one), "volume" (a
 * name), or "target" (either; refused if it names both).  Fills @x's
 * shadow or volume.
 */
static int target_of(struct vss_service *svc, json_t *args, struct svc_export *x,
		     struct vss_error *err)
{
	const char *sh, *vol, *t;
	struct vss_error e;
	char full[37];
	int rc;

	if ((rc = svc_arg_str(args, "shadow", false, &sh, err)) < 0 ||
	    (rc = svc_arg_str(args, "volume", false, &vol, err)) < 0 ||
	    (rc = svc_arg_str(args, "target", false, &t, err)) < 0)
		return rc;
	if (!!sh + !!vol + !!t != 1)
		return vss_error_set(err, -EINVAL, "name one shadow copy or volume");
	if (vol || (t && svc_volume_find(svc, t))) {
		const char *name = vol ? vol : t;

		if (!svc_volume_find(svc, name))
			return vss_error_set(err, -ENOENT, "no volume named \"%s\"", name);
		if (t && strlen(t) >= 8 && svc_shadow_resolve(svc, t, full, &e) == 0)
			return vss_error_set(err, -EINVAL, "\"%s\" names volume %s and shadow "
					     "copy %s: name it with --json's \"volume\" or "
					     "\"shadow\"", t, t, full);
		snprintf(x->volume, sizeof(x->volume), "%s", name);
		return 0;
	}
	if (t && svc_shadow_resolve(svc, t, full, &e) < 0)
		return vss_error_set(err, e.code == -EINVAL && strlen(t) >= 8 ? -EINVAL : -ENOENT,
				     "no volume named \"%s\", nor a shadow copy with that ID%s%s",
				     t, strlen(t) >= 8 ? ": " : "", strlen(t) >= 8 ? e.msg : "");
	if (sh && (rc = svc_shadow_resolve(svc, sh, full, err)) < 0)
		return rc;
	snprintf(x->shadow, sizeof(x->shadow), "%s", full);
	return 0;
}

/* 0 if @who may read what @x serves: root, or an operator who reaches the
 * shadow's live side, or the volume's mount point. */
static int check_reach(struct vss_service *svc, const struct svc_caller *who,
		       const struct svc_export *x, struct vss_error *err)
{
	struct svc_volume *v;

	if (x->shadow[0])
		return svc_shadow_check_reach(who, svc_shadow_find(svc, x->shadow), err);
	if (!who || who->uid == 0)
		return 0;
	v = svc_volume_find(svc, x->volume);
	if (!v->mount_dir)
		return vss_error_set(err, -EACCES, "permission denied: volume %s is not mounted, "
				     "so only root may export it", x->volume);
	return svc_caller_reaches(who, v->mount_dir, x->volume, err);
}

/* nbdkit for @x (its target, owner and where to listen set), in @x->dir;
 * @x freed on failure.  In svc->exports and the catalog if it started. */
static int export_start(struct vss_service *svc, struct svc_export *x, struct vss_error *err)
{
	struct vss_catalog_export rec = { 0 };
	char exports[PATH_MAX], port_text[16];
	struct stat st;
	int rc;

	if (x->shadow[0]) {
		struct svc_shadow *sh = svc_shadow_find(svc, x->shadow);

		sh->prov->location(svc, sh, x->device, sizeof(x->device));
	} else {
		svc_volume_device_path(svc, x->volume, x->device, sizeof(x->device));
	}
	if (stat(x->device, &st) < 0 || !(S_ISBLK(st.st_mode) || S_ISREG(st.st_mode))) {
		rc = vss_error_set(err, -EOPNOTSUPP, "%s %s is %s, not a device: only a "
				   "shadow with a device (vss volumes, LVM) can be exported",
				   kind_of(x), name_of(x), x->device);
		free(x);
		return rc;
	}
	snprintf(exports, sizeof(exports), "%.4000s/exports", svc->run_dir);
	if (x->volume[0])
		snprintf(x->dir, sizeof(x->dir), "%.4000s/volume-%s", exports, x->volume);
	else
		snprintf(x->dir, sizeof(x->dir), "%.4000s/%s", exports, x->shadow);
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
	if (!x->port && !x->socket[0] &&
	    (size_t)snprintf(x->socket, sizeof(x->socket), "%.4000s/nbd.sock", x->dir) >= 108) {
		rc = vss_error_set(err, -ENAMETOOLONG, "%s/nbd.sock is too long for a socket: "
				   "pass --socket", x->dir);
		goto fail;
	}
	if (x->since[0]) {
		char map[PATH_MAX + 16];

		char qcow2[PATH_MAX + 16];

		snprintf(map, sizeof(map), "%s/changed", x->dir);
		snprintf(qcow2, sizeof(qcow2), "%s/changed.qcow2", x->dir);
		if ((rc = changed_map(svc, x, map, qcow2, err)) < 0)
			goto fail;
	}
	if ((rc = start_servers(x, x->since[0] != '\0', err)) < 0)
		goto fail;
	/* nbdkit makes it 0755 (no one else may connect: that needs write), then
	 * it is the caller's alone. */
	if (x->socket[0] &&
	    (chown(x->socket, x->owner, (gid_t)-1) < 0 || chmod(x->socket, 0600) < 0)) {
		rc = vss_error_set(err, -errno, "%s: %s", x->socket, strerror(errno));
		goto fail;
	}
	rec.volume = x->volume[0] != '\0';
	snprintf(rec.name, sizeof(rec.name), "%s", name_of(x));
	memcpy(rec.since, x->since, sizeof(rec.since));
	rec.socket = x->socket;
	rec.port = x->port;
	rec.owner = x->owner;
	rec.tls = x->tls;
	memcpy(rec.address, x->address, sizeof(rec.address));
	if ((rc = vss_catalog_export_put(svc->cat, &rec, err)) < 0)
		goto fail;
	x->next = svc->exports;
	svc->exports = x;
	snprintf(port_text, sizeof(port_text), "%u", x->port);
	vss_log("%s %s exported read-only over NBD on %s%s%s%s (nbdkit %d)%s%s%s", kind_of(x),
		name_of(x), !x->port ? "" : x->address[0] ? x->address : "every address",
		x->port ? " port " : "", x->port ? port_text : x->socket, x->tls[0] ? ", TLS" : "",
		(int)x->pid, x->since[0] ? ", block status: changed since " : "", x->since,
		x->volume[0] ? " (live: its bytes change while they are read)" : "");
	return 0;
fail:
	end_one(x);
	free(x);
	return rc;
}

int svc_op_shadow_export(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err)
{
	const char *socket, *since, *tls, *listen;
	uint64_t port = 0;
	struct svc_export *x, *y;
	char base[37];
	int rc;

	if ((rc = svc_arg_str(args, "socket", false, &socket, err)) < 0 ||
	    (rc = svc_arg_str(args, "since", false, &since, err)) < 0 ||
	    (rc = svc_arg_str(args, "tls", false, &tls, err)) < 0 ||
	    (rc = svc_arg_str(args, "listen", false, &listen, err)) < 0 ||
	    (rc = svc_arg_u64(args, "port", false, &port, err)) < 0)
		return rc;
	if (!(x = calloc(1, sizeof(*x))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	x->life = -1;
	x->owner = who ? who->uid : 0;
	if ((rc = target_of(svc, args, x, err)) < 0)
		goto fail;
	if (access(NBDKIT_BIN, X_OK) < 0) {
		rc = vss_error_set(err, -ENOENT, "%s is not there: install nbdkit (Debian: "
				   "nbdkit) to export shadows over NBD", NBDKIT_BIN);
		goto fail;
	}
	if (since && access(QSD_BIN, X_OK) < 0) {
		rc = vss_error_set(err, -ENOENT, "%s is not there: install qemu-system-common "
				   "(Debian) to export a changed-block map (--changed-since)",
				   QSD_BIN);
		goto fail;
	}
	if ((rc = check_reach(svc, who, x, err)) < 0)
		goto fail;
	for (y = svc->exports; y; y = y->next)
		if (strcmp(y->shadow, x->shadow) == 0 && strcmp(y->volume, x->volume) == 0) {
			rc = vss_error_set(err, -EBUSY, "%s %s is exported already (%s)",
					   kind_of(x), name_of(x),
					   y->socket[0] ? y->socket : "a TCP port");
			goto fail;
		}
	if (since && (rc = svc_shadow_resolve(svc, since, base, err)) < 0)
		goto fail;
	if (since && strcmp(base, x->shadow) == 0) {
		rc = vss_error_set(err, -EINVAL, "--changed-since names the shadow itself");
		goto fail;
	}
	if (since)
		snprintf(x->since, sizeof(x->since), "%s", base);
	if ((rc = where(who, x, socket, port, listen, tls, err)) < 0)
		goto fail;
	if ((rc = export_start(svc, x, err)) < 0)
		return rc;
	if (!(*res = export_json(x)))
		return vss_error_set(err, -ENOMEM, "out of memory");
	if (x->port && !x->tls[0]) {
		char w[128];

		snprintf(w, sizeof(w), "bound to %s without TLS: every local user can read "
			 "this %s", x->address, kind_of(x));
		json_object_set_new(*res, "warning", json_string(w));
	}
	return 0;
fail:
	free(x);
	return rc;
}

int svc_op_shadow_unexport(struct vss_service *svc, const struct svc_caller *who,
			   json_t *args, json_t **res, struct vss_error *err)
{
	struct svc_export key = { 0 }, *x;
	int rc;

	if ((rc = target_of(svc, args, &key, err)) < 0)
		return rc;
	for (x = svc->exports; x; x = x->next)
		if (strcmp(x->shadow, key.shadow) == 0 && strcmp(x->volume, key.volume) == 0)
			break;
	if (!x)
		return vss_error_set(err, -ENOENT, "%s %s is not exported", kind_of(&key),
				     name_of(&key));
	if (who && who->uid != 0 && who->uid != x->owner)
		return vss_error_set(err, -EACCES, "permission denied: %s %s was exported "
				     "by another user", kind_of(x), name_of(x));
	unlink_export(svc, x);
	end_one(x);
	vss_catalog_export_delete(svc->cat, x->volume[0] != '\0', name_of(x), NULL);
	vss_log("%s %s: no longer exported", kind_of(x), name_of(x));
	*res = json_pack("{s:s?, s:s?}", "shadow", x->shadow[0] ? x->shadow : NULL,
			 "volume", x->volume[0] ? x->volume : NULL);
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

/* ---- at start ---- */

struct saved {
	struct vss_catalog_export *rec;         /* strings owned */
	size_t n;
};

static int save_one(void *arg, const struct vss_catalog_export *x)
{
	struct saved *s = arg;
	struct vss_catalog_export *g = realloc(s->rec, (s->n + 1) * sizeof(*g));

	if (!g)
		return -ENOMEM;
	s->rec = g;
	g[s->n] = *x;
	g[s->n].socket = strdup(x->socket);
	g[s->n].tls = strdup(x->tls);
	s->n++;
	return 0;
}

/* One row back: -errno and why if it cannot be served again. */
static int restore_one(struct vss_service *svc, const struct vss_catalog_export *r,
		       struct vss_error *err)
{
	json_t *args;
	struct svc_export *x;
	struct stat st;
	int rc;

	if (!r->socket || !r->tls)
		return vss_error_set(err, -ENOMEM, "out of memory");
	if (r->owner != 0)
		return vss_error_set(err, -EACCES, "exported by uid %u, who must ask again "
				     "(vssd does not decide for them whether they still may)",
				     (unsigned int)r->owner);
	if (!(x = calloc(1, sizeof(*x))))
		return vss_error_set(err, -ENOMEM, "out of memory");
	x->life = -1;
	args = json_pack("{s:s}", r->volume ? "volume" : "shadow", r->name);
	rc = args ? target_of(svc, args, x, err) : vss_error_set(err, -ENOMEM, "out of memory");
	json_decref(args);
	if (rc == 0 && r->since[0] && !svc_shadow_find(svc, r->since))
		rc = vss_error_set(err, -ENOENT, "its base, shadow copy %s, is gone", r->since);
	if (rc < 0) {
		free(x);
		return rc;
	}
	memcpy(x->since, r->since, sizeof(x->since));
	x->port = r->port;
	snprintf(x->tls, sizeof(x->tls), "%s", r->tls);
	memcpy(x->address, r->address, sizeof(x->address));
	/* A socket root named, left by the nbdkit that ended with vssd. */
	if (r->socket[0] && lstat(r->socket, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(r->socket);
	snprintf(x->socket, sizeof(x->socket), "%s", r->socket);
	return export_start(svc, x, err);
}

void svc_exports_restore(struct vss_service *svc)
{
	struct saved s = { NULL, 0 };
	struct vss_error e;

	svc_assert_locked(svc);
	if (vss_catalog_export_each(svc->cat, save_one, &s, &e) < 0)
		vss_log("exports: %s", e.msg);
	for (size_t i = 0; i < s.n; i++) {
		const char *kind = s.rec[i].volume ? "volume" : "shadow";

		if (restore_one(svc, &s.rec[i], &e) < 0) {
			vss_log("%s %s: its export is gone after the restart: %s", kind,
				s.rec[i].name, e.msg);
			vss_catalog_export_delete(svc->cat, s.rec[i].volume, s.rec[i].name, NULL);
		}
		free(s.rec[i].socket);
		free(s.rec[i].tls);
	}
	free(s.rec);
}
