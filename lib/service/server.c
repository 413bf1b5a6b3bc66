/*
 * service/server.c - the control socket: RUN/vssd.sock, one thread per
 * connection, the peer's role (struct svc_caller) checked against the one
 * each operation needs, and dispatch to the service's operations (table
 * below; the wire format is proto/proto.h and doc/protocol.md; who may do
 * what is doc/security.md).
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
	struct svc_caller who;
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

typedef int (*op_fn)(struct vss_service *, const struct svc_caller *, json_t *, json_t **,
		     struct vss_error *);

static const struct op {
	const char *name;
	op_fn fn;
	enum svc_role need;             /* the least role that may call it */
	bool unlocked;                  /* takes its own locks (writers.h) */
} ops[] = {
	{ "status", svc_op_status, SVC_ROLE_USER, false },
	{ "volume.create", svc_op_volume_create, SVC_ROLE_ROOT, false },
	{ "volume.list", svc_op_volume_list, SVC_ROLE_USER, false },
	{ "volume.delete", svc_op_volume_delete, SVC_ROLE_ROOT, false },
	{ "volume.mount", svc_op_volume_mount, SVC_ROLE_ROOT, false },
	{ "volume.umount", svc_op_volume_umount, SVC_ROLE_ROOT, false },
	{ "shadow.create", svc_op_backup_shadow_create, SVC_ROLE_OPERATOR, true },
	{ "set.complete", svc_op_set_complete, SVC_ROLE_OPERATOR, false },
	{ "shadow.list", svc_op_shadow_list, SVC_ROLE_USER, false },
	{ "shadow.delete", svc_op_shadow_delete, SVC_ROLE_OPERATOR, false },
	{ "shadow.expose", svc_op_shadow_expose, SVC_ROLE_OPERATOR, false },
	{ "shadow.unexpose", svc_op_shadow_unexpose, SVC_ROLE_OPERATOR, false },
	{ "storage.list", svc_op_storage_list, SVC_ROLE_USER, false },
	{ "storage.add", svc_op_storage_add, SVC_ROLE_ROOT, false },
	{ "storage.resize", svc_op_storage_resize, SVC_ROLE_ROOT, false },
	{ "storage.delete", svc_op_storage_delete, SVC_ROLE_ROOT, false },
	{ "providers.list", svc_op_providers_list, SVC_ROLE_USER, false },
	{ "writers.list", svc_op_writers_list, SVC_ROLE_USER, true },
	/* Writers and requesters: writers.h. */
	{ "writer.register", svc_op_writer_register, SVC_ROLE_OPERATOR, true },
	{ "backup.begin", svc_op_backup_begin, SVC_ROLE_OPERATOR, true },
	{ "backup.prepare", svc_op_backup_prepare, SVC_ROLE_OPERATOR, true },
	{ "backup.complete", svc_op_backup_complete, SVC_ROLE_OPERATOR, true },
	{ "backup.abort", svc_op_backup_abort, SVC_ROLE_OPERATOR, true },
	{ "backup.status", svc_op_backup_status, SVC_ROLE_USER, true },
};

void svc_conn_hand_off(struct conn *c, void *writer)
{
	c->writer = writer;
}

/*
 * Fills @who from the peer of @fd: its credentials and supplementary
 * groups as they were when it connected (SO_PEERCRED, SO_PEERGROUPS: no
 * look at /proc, whose PID may be another process by now), and its role:
 * root, a member of the operator group (svc->operator_group, "vss" unless
 * vssd was told otherwise; primary or supplementary), or a user.
 * who->groups keeps the first SVC_CALLER_GROUPS_MAX groups; the role is
 * decided on all of them.
 */
static int caller_init(struct vss_service *svc, int fd, struct svc_caller *who)
{
	struct group grbuf, *gr = NULL;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t *groups = NULL;
	char buf[4096];
	int n = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	who->pid = cred.pid;
	who->uid = cred.uid;
	who->gid = cred.gid;
	/* Asked with no room first: the kernel says how much it needs (ERANGE). */
	len = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &len) < 0 && errno != ERANGE)
		return -errno;
	if (len > 0) {
		if (!(groups = malloc(len)))
			return -ENOMEM;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
			free(groups);
			return -errno;
		}
		n = (int)(len / sizeof(gid_t));
	}
	who->ngroups = n < SVC_CALLER_GROUPS_MAX ? n : SVC_CALLER_GROUPS_MAX;
	if (who->ngroups)
		memcpy(who->groups, groups, (size_t)who->ngroups * sizeof(gid_t));
	who->role = SVC_ROLE_USER;
	if (cred.uid == 0)
		who->role = SVC_ROLE_ROOT;
	else if (getgrnam_r(svc->operator_group, &grbuf, buf, sizeof(buf), &gr) == 0 && gr) {
		if (cred.gid == gr->gr_gid)
			who->role = SVC_ROLE_OPERATOR;
		for (int i = 0; i < n; i++)
			if (groups[i] == gr->gr_gid)
				who->role = SVC_ROLE_OPERATOR;
	}
	free(groups);
	return 0;
}

static const char *const role_refusal[] = {
	[SVC_ROLE_OPERATOR] = "permission denied: only root or members of the group vss "
			      "may do this",
	[SVC_ROLE_ROOT] = "permission denied: only root may do this (it chooses files, "
			  "devices, mount points or options for vssd)",
};

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
	if (c->who.role < op->need)
		return vss_proto_reply_error(id, -EACCES, role_refusal[op->need]);
	if (!args)
		args = json_object();
	else
		json_incref(args);
	if (op->unlocked) {
		rc = op->fn(svc, &c->who, args, &res, &err);
	} else {
		pthread_mutex_lock(&svc->lock);
		svc_refresh_mounts(svc);
		rc = op->fn(svc, &c->who, args, &res, &err);
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
		if (!c || caller_init(svc, fd, &c->who) < 0) {
			pthread_mutex_unlock(&srv->lock);
			free(c);
			close(fd);
			continue;
		}
		c->svc = svc;
		c->fd = fd;
		c->who.conn = c;
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
