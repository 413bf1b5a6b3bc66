/*
 * service/server.c - the control socket: RUN/vssd.sock, one thread per
 * connection, the peer's credentials (SO_PEERCRED) checked for every
 * operation that changes anything, and dispatch to the service's
 * operations (table below; the wire format is proto/proto.h and
 * doc/protocol.md).
 *
 * Robustness: a frame over the size limit gets an error reply and the
 * connection is closed (it cannot be resynchronised); malformed JSON or a
 * malformed request gets an error reply and the connection goes on.  A
 * client that stalls holds only its own thread; at most MAX_CONNS
 * connections are served at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/proto.h"
#include "service/log.h"
#include "service/service_i.h"
#include "service/writers.h"

#define MAX_CONNS 64

struct conn {
	struct conn *next;
	struct vss_service *svc;
	int fd;
	pthread_t thread;
	struct ucred cred;
	bool may_change;
	bool done;                      /* the thread has finished: join it */
	void *writer;                   /* writer.register: hand the socket over */
};

struct svc_server {
	int listen_fd;
	int wake[2];
	pthread_t thread;
	bool running;                   /* the accept thread */
	pthread_mutex_t lock;           /* conns, nconns */
	struct conn *conns;
	int nconns;
};

typedef int (*op_fn)(struct vss_service *, json_t *, json_t **, struct vss_error *);
typedef int (*op_conn_fn)(struct vss_service *, struct conn *, json_t *, json_t **,
			  struct vss_error *);

static const struct op {
	const char *name;
	op_fn fn;
	op_conn_fn conn_fn;
	bool changes;                   /* needs root or the vss group */
	bool unlocked;                  /* takes its own locks (writers.h) */
} ops[] = {
	{ "status", svc_op_status, NULL, false, false },
	{ "volume.create", svc_op_volume_create, NULL, true, false },
	{ "volume.list", svc_op_volume_list, NULL, false, false },
	{ "volume.delete", svc_op_volume_delete, NULL, true, false },
	{ "volume.mount", svc_op_volume_mount, NULL, true, false },
	{ "volume.umount", svc_op_volume_umount, NULL, true, false },
	{ "shadow.create", NULL, svc_op_backup_shadow_create, true, true },
	{ "set.complete", NULL, svc_op_set_complete, true, false },
	{ "shadow.list", svc_op_shadow_list, NULL, false, false },
	{ "shadow.delete", svc_op_shadow_delete, NULL, true, false },
	{ "shadow.expose", svc_op_shadow_expose, NULL, true, false },
	{ "shadow.unexpose", svc_op_shadow_unexpose, NULL, true, false },
	{ "storage.list", svc_op_storage_list, NULL, false, false },
	{ "storage.add", svc_op_storage_add, NULL, true, false },
	{ "storage.resize", svc_op_storage_resize, NULL, true, false },
	{ "storage.delete", svc_op_storage_delete, NULL, true, false },
	{ "providers.list", svc_op_providers_list, NULL, false, false },
	{ "writers.list", svc_op_writers_list, NULL, false, true },
	/* Writers and requesters (issue 4): writers.h. */
	{ "writer.register", NULL, svc_op_writer_register, true, true },
	{ "backup.begin", NULL, svc_op_backup_begin, true, true },
	{ "backup.prepare", NULL, svc_op_backup_prepare, true, true },
	{ "backup.complete", NULL, svc_op_backup_complete, true, true },
	{ "backup.abort", NULL, svc_op_backup_abort, true, true },
	{ "backup.status", NULL, svc_op_backup_status, false, true },
};

void svc_conn_hand_off(struct conn *c, void *writer)
{
	c->writer = writer;
}

/* Root, or a member (primary or supplementary) of the group "vss" if it exists. */
static bool peer_may_change(const struct ucred *cred)
{
	struct group grbuf, *gr = NULL;
	char buf[4096], path[64], line[4096];
	bool ok = false;
	FILE *f;

	if (cred->uid == 0)
		return true;
	if (getgrnam_r("vss", &grbuf, buf, sizeof(buf), &gr) != 0 || !gr)
		return false;
	if (cred->gid == gr->gr_gid)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)cred->pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!ok && fgets(line, sizeof(line), f)) {
		char *p, *end;

		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (p = line + 7;; p = end) {
			unsigned long g = strtoul(p, &end, 10);

			if (end == p)
				break;
			if (g == gr->gr_gid)
				ok = true;
		}
	}
	fclose(f);
	return ok;
}

static json_t *handle(struct conn *c, json_t *msg)
{
	struct vss_service *svc = c->svc;
	json_t *id = json_object_get(msg, "id");
	json_t *ver = json_object_get(msg, "version");
	json_t *args = json_object_get(msg, "args");
	json_t *res = NULL;
	const char *name = json_string_value(json_object_get(msg, "op"));
	const struct op *op = NULL;
	struct vss_error err = { 0 };
	int rc;

	if (!json_is_integer(ver) || json_integer_value(ver) != VSS_PROTO_VERSION)
		return vss_proto_reply_error(id, -EPROTO, "unsupported or missing protocol "
					     "version (this vssd speaks version 1)");
	if (!name)
		return vss_proto_reply_error(id, -EINVAL, "missing \"op\"");
	if (args && !json_is_object(args))
		return vss_proto_reply_error(id, -EINVAL, "\"args\" must be an object");
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(ops[i].name, name) == 0)
			op = &ops[i];
	if (!op) {
		snprintf(err.msg, sizeof(err.msg), "unknown operation \"%.64s\"", name);
		return vss_proto_reply_error(id, -ENOSYS, err.msg);
	}
	if (op->changes && !c->may_change)
		return vss_proto_reply_error(id, -EACCES, "permission denied: only root or "
					     "members of the group vss may do this");
	if (!args)
		args = json_object();
	else
		json_incref(args);
	if (op->unlocked) {
		rc = op->fn ? op->fn(svc, args, &res, &err)
			    : op->conn_fn(svc, c, args, &res, &err);
	} else {
		pthread_mutex_lock(&svc->lock);
		svc_refresh_mounts(svc);
		rc = op->fn ? op->fn(svc, args, &res, &err)
			    : op->conn_fn(svc, c, args, &res, &err);
		pthread_mutex_unlock(&svc->lock);
	}
	json_decref(args);
	if (rc < 0) {
		json_decref(res);
		return vss_proto_reply_error(id, rc, err.msg);
	}
	return vss_proto_reply_ok(id, res);
}

static void reply_and_drop(int fd, json_t *reply)
{
	vss_proto_send(fd, reply);
	json_decref(reply);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct svc_server *srv = c->svc->server;

	for (;;) {
		struct vss_error err = { 0 };
		json_t *msg = NULL;
		int rc = vss_proto_recv(c->fd, &msg, &err);

		if (rc == -EMSGSIZE) {
			reply_and_drop(c->fd, vss_proto_reply_error(NULL, rc, err.msg));
			break;
		}
		if (rc == -EBADMSG) {
			reply_and_drop(c->fd, vss_proto_reply_error(NULL, rc, err.msg));
			continue;
		}
		if (rc < 0 || !msg)
			break;
		json_t *reply = handle(c, msg);

		json_decref(msg);
		rc = vss_proto_send(c->fd, reply);
		json_decref(reply);
		if (c->writer) {
			/* From now on the daemon speaks first: writers.c owns the socket. */
			svc_writer_activate(c->svc, c->writer, c->fd);
			c->fd = -1;
			break;
		}
		if (rc < 0)
			break;
	}
	svc_backup_conn_gone(c->svc, c);
	svc_conn_gone(c->svc, c);
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_lock(&srv->lock);
	c->done = true;
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* Joins the threads of finished connections.  Called with srv->lock held. */
static void reap(struct svc_server *srv)
{
	for (struct conn **pp = &srv->conns; *pp;) {
		struct conn *c = *pp;

		if (!c->done) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		pthread_join(c->thread, NULL);
		if (c->fd >= 0)
			close(c->fd);
		free(c);
		srv->nconns--;
	}
}

static void *accept_main(void *arg)
{
	struct vss_service *svc = arg;
	struct svc_server *srv = svc->server;

	for (;;) {
		struct pollfd p[2] = { { srv->listen_fd, POLLIN, 0 }, { srv->wake[0], POLLIN, 0 } };
		socklen_t len = sizeof(struct ucred);
		struct conn *c;
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&srv->lock);
		reap(srv);
		if (srv->nconns >= MAX_CONNS) {
			pthread_mutex_unlock(&srv->lock);
			reply_and_drop(fd, vss_proto_reply_error(NULL, -EAGAIN,
								 "too many connections"));
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0) {
			pthread_mutex_unlock(&srv->lock);
			free(c);
			close(fd);
			continue;
		}
		c->svc = svc;
		c->fd = fd;
		c->may_change = peer_may_change(&c->cred);
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			pthread_mutex_unlock(&srv->lock);
			free(c);
			close(fd);
			continue;
		}
		c->next = srv->conns;
		srv->conns = c;
		srv->nconns++;
		pthread_mutex_unlock(&srv->lock);
	}
	return NULL;
}

int svc_server_start(struct vss_service *svc, struct vss_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct svc_server *srv = calloc(1, sizeof(*srv));
	int rc;

	if (!srv)
		return vss_error_set(err, -ENOMEM, "out of memory");
	srv->listen_fd = srv->wake[0] = srv->wake[1] = -1;
	pthread_mutex_init(&srv->lock, NULL);
	svc->server = srv;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vssd.sock",
			     svc->run_dir) >= sizeof(sa.sun_path))
		return vss_error_set(err, -ENAMETOOLONG, "the run directory %s is too long "
				     "for a socket path", svc->run_dir);
	if (pipe2(srv->wake, O_CLOEXEC) < 0)
		return vss_error_set(err, -errno, "pipe: %s", strerror(errno));
	srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv->listen_fd < 0)
		return vss_error_set(err, -errno, "socket: %s", strerror(errno));
	unlink(sa.sun_path);
	if (bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return vss_error_set(err, -errno, "cannot bind %s: %s", sa.sun_path,
				     strerror(errno));
	/* Anyone may connect and read; changes are checked per request. */
	chmod(sa.sun_path, 0666);
	if (listen(srv->listen_fd, 64) < 0)
		return vss_error_set(err, -errno, "cannot listen on %s: %s", sa.sun_path,
				     strerror(errno));
	rc = pthread_create(&srv->thread, NULL, accept_main, svc);
	if (rc)
		return vss_error_set(err, -rc, "cannot start a thread: %s", strerror(rc));
	srv->running = true;
	return 0;
}

void svc_server_stop(struct vss_service *svc)
{
	struct svc_server *srv = svc->server;

	if (!srv)
		return;
	if (srv->running) {
		(void)!write(srv->wake[1], "x", 1);
		pthread_join(srv->thread, NULL);
	}
	pthread_mutex_lock(&srv->lock);
	for (struct conn *c = srv->conns; c; c = c->next)
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&srv->lock);
	for (;;) {
		bool left;

		pthread_mutex_lock(&srv->lock);
		reap(srv);
		left = srv->conns != NULL;
		pthread_mutex_unlock(&srv->lock);
		if (!left)
			break;
		usleep(10000);
	}
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->wake[0] >= 0)
		close(srv->wake[0]);
	if (srv->wake[1] >= 0)
		close(srv->wake[1]);
	free(srv);
	svc->server = NULL;
}
