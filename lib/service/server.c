/*
 * service/server.c - the control socket: RUN/vssd.sock, one thread per
 * connection, the peer's role (struct svc_caller) checked against the one
 * each operation needs, and dispatch to the service's operations (table
 * below; the wire format is proto/proto.h and doc/protocol.md; who may do
 * what is doc/security.md).
 *
 * Robustness: a request over the size limit gets an error reply and the
 * connection is closed (it cannot be resynchronised); malformed JSON or a
 * malformed request gets an error reply and the connection goes on.  A
 * client that stalls holds only its own thread, and not for long: a
 * request must arrive whole within the frame timeout of its first byte,
 * each frame of a reply must be taken within it too, and a connection on
 * which no request starts for the idle timeout is closed, unless it holds
 * a backup session or a set taken with "hold" (a requester reading its
 * shadows for hours).  No one can lock root or the operator group out
 * (admit()): every uid but root has a cap of connections, users together
 * cannot take the connections reserved for root and operators, and a
 * refusal is a readable error reply, not a closed socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "provider/provider.h"
#include "service/backup.h"
#include "service/caller.h"
#include "service/export.h"
#include "service/gmt.h"
#include "service/log.h"
#include "service/peer.h"
#include "service/schedule.h"
#include "service/server.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/storage.h"
#include "service/tracking.h"
#include "service/versions.h"
#include "service/volumes.h"
#include "service/writers.h"

#define NOTE_INTERVAL_MS 10000  /* at most one line about refusals and timeouts */
#define SVC_ROOT_EXTRA_CONNS 8  /* root's, past max_conns (admit) */

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
	/* Limits, fixed at start (vss_service_config). */
	unsigned int max_conns, per_user, reserved;
	int idle_ms;
	struct vss_proto_opts rx;       /* requests: 1 MiB, within the frame timeout */
	struct vss_proto_opts tx;       /* replies: each frame within the frame timeout */
	pthread_mutex_t lock;           /* conns, nconns */
	struct conn *conns;
	unsigned int nconns;
	pthread_mutex_t note_lock;      /* last_note_ms, notes_held */
	int64_t last_note_ms;
	unsigned int notes_held;
};

typedef int (*op_fn)(struct vss_service *, const struct svc_caller *, json_t *, json_t **,
		     struct vss_error *);

static const struct op {
	const char *name;
	op_fn fn;
	enum svc_role need;             /* the least role that may call it */
	bool unlocked;                  /* takes its own locks (writers.h) */
	const char *operator_arg;       /* this argument, when true, needs an operator */
} ops[] = {
	{ "status", svc_op_status, SVC_ROLE_USER, false, NULL },
	{ "volume.create", svc_op_volume_create, SVC_ROLE_ROOT, false, NULL },
	{ "volume.list", svc_op_volume_list, SVC_ROLE_USER, false, NULL },
	{ "volume.delete", svc_op_volume_delete, SVC_ROLE_ROOT, false, NULL },
	{ "volume.mount", svc_op_volume_mount, SVC_ROLE_ROOT, false, NULL },
	{ "volume.umount", svc_op_volume_umount, SVC_ROLE_ROOT, false, NULL },
	/* Samba's Previous Versions: vssd mounts in the volume (gmt.h). */
	{ "volume.gmt", svc_op_volume_gmt, SVC_ROLE_ROOT, false, NULL },
	{ "shadow.create", svc_op_backup_shadow_create, SVC_ROLE_OPERATOR, true, NULL },
	{ "set.complete", svc_op_set_complete, SVC_ROLE_OPERATOR, false, NULL },
	{ "shadow.list", svc_op_shadow_list, SVC_ROLE_USER, false, NULL },
	{ "shadow.delete", svc_op_shadow_delete, SVC_ROLE_OPERATOR, false, NULL },
	{ "shadow.expose", svc_op_shadow_expose, SVC_ROLE_OPERATOR, false, NULL },
	{ "shadow.unexpose", svc_op_shadow_unexpose, SVC_ROLE_OPERATOR, false, NULL },
	/* Over NBD (export.h): the caller must reach the shadow's origin. */
	{ "shadow.export", svc_op_shadow_export, SVC_ROLE_OPERATOR, false, NULL },
	{ "shadow.unexport", svc_op_shadow_unexport, SVC_ROLE_OPERATOR, false, NULL },
	{ "export.list", svc_op_export_list, SVC_ROLE_USER, false, NULL },
	/* A file's versions: versions.h (as the caller: who cannot read it
	 * live sees none; a copy back is made with the caller's rights). */
	{ "shadow.versions", svc_op_shadow_versions, SVC_ROLE_USER, true, NULL },
	{ "shadow.restore_version", svc_op_shadow_restore_version, SVC_ROLE_USER, true, NULL },
	/* Changed blocks and revert: tracking.h. */
	{ "shadow.diff", svc_op_shadow_diff, SVC_ROLE_OPERATOR, false, NULL },
	{ "bookmark.create", svc_op_bookmark_create, SVC_ROLE_OPERATOR, false, NULL },
	{ "bookmark.delete", svc_op_bookmark_delete, SVC_ROLE_OPERATOR, false, NULL },
	{ "bookmark.list", svc_op_bookmark_list, SVC_ROLE_USER, false, NULL },
	{ "volume.revert", svc_op_volume_revert, SVC_ROLE_ROOT, false, NULL },
	{ "storage.list", svc_op_storage_list, SVC_ROLE_USER, false, NULL },
	{ "storage.add", svc_op_storage_add, SVC_ROLE_ROOT, false, NULL },
	{ "storage.resize", svc_op_storage_resize, SVC_ROLE_ROOT, false, NULL },
	{ "storage.delete", svc_op_storage_delete, SVC_ROLE_ROOT, false, NULL },
	{ "providers.list", svc_op_providers_list, SVC_ROLE_USER, false, NULL },
	/* Scheduled shadows: schedule.h.  Adding one makes vssd take sets as
	 * root later, of targets it resolves then: root's. */
	{ "schedule.add", svc_op_schedule_add, SVC_ROLE_ROOT, false, NULL },
	{ "schedule.list", svc_op_schedule_list, SVC_ROLE_USER, false, NULL },
	{ "schedule.delete", svc_op_schedule_delete, SVC_ROLE_ROOT, false, NULL },
	{ "schedule.run", svc_op_schedule_run, SVC_ROLE_OPERATOR, true, NULL },
	/* Writers' metadata names their files: not for every user. */
	{ "writers.list", svc_op_writers_list, SVC_ROLE_USER, true, "metadata" },
	/* Writers and requesters: writers.h. */
	{ "writer.register", svc_op_writer_register, SVC_ROLE_OPERATOR, true, NULL },
	{ "backup.begin", svc_op_backup_begin, SVC_ROLE_OPERATOR, true, NULL },
	{ "backup.prepare", svc_op_backup_prepare, SVC_ROLE_OPERATOR, true, NULL },
	{ "backup.complete", svc_op_backup_complete, SVC_ROLE_OPERATOR, true, NULL },
	{ "backup.abort", svc_op_backup_abort, SVC_ROLE_OPERATOR, true, NULL },
	{ "backup.status", svc_op_backup_status, SVC_ROLE_USER, true, NULL },
	/* A restore with the writers of the backup (the same slot and session). */
	{ "restore.begin", svc_op_restore_begin, SVC_ROLE_OPERATOR, true, NULL },
	{ "restore.prepare", svc_op_restore_prepare, SVC_ROLE_OPERATOR, true, NULL },
	{ "restore.complete", svc_op_restore_complete, SVC_ROLE_OPERATOR, true, NULL },
	{ "restore.abort", svc_op_backup_abort, SVC_ROLE_OPERATOR, true, NULL },
	/* Another host's vssd coordinating a set across hosts (peer.h): it
	 * reaches this socket through SSH, logged in as root. */
	{ "peer.set", svc_op_peer_set, SVC_ROLE_ROOT, true, NULL },
};

void svc_conn_hand_off(struct conn *c, void *writer)
{
	c->writer = writer;
}

int svc_conn_fd(const struct conn *c)
{
	return c->fd;
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

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Logs a refused or closed connection: one line per NOTE_INTERVAL_MS at
 * most, so that a user who connects in a loop cannot flood the log. */
static void note(struct svc_server *srv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note(struct svc_server *srv, const char *fmt, ...)
{
	char line[VSS_ERROR_MSG_MAX];
	int64_t now = mono_ms();
	unsigned int held;
	va_list ap;

	pthread_mutex_lock(&srv->note_lock);
	if (srv->last_note_ms && now - srv->last_note_ms < NOTE_INTERVAL_MS) {
		srv->notes_held++;
		pthread_mutex_unlock(&srv->note_lock);
		return;
	}
	srv->last_note_ms = now;
	held = srv->notes_held;
	srv->notes_held = 0;
	pthread_mutex_unlock(&srv->note_lock);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (held)
		vss_log("%s (%u more refused or closed connections not logged before it)",
			line, held);
	else
		vss_log("%s", line);
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
	if (c->who.role < op->need) {
		if (strncmp(op->name, "peer.", 5) == 0)
			snprintf(err.msg, sizeof(err.msg), "permission denied: peer requests are "
				 "taken only from root (another host's vssd, through an SSH login "
				 "as root on this host: doc/peers.md)");
		else if (op->need == SVC_ROLE_ROOT)
			snprintf(err.msg, sizeof(err.msg), "permission denied: only root may do "
				 "this (it chooses files, devices, mount points or options for vssd)");
		else
			snprintf(err.msg, sizeof(err.msg), "permission denied: only root or "
				 "members of the group %s may do this", svc->operator_group);
		return vss_proto_reply_error(id, -EACCES, err.msg);
	}
	if (op->operator_arg && c->who.role < SVC_ROLE_OPERATOR &&
	    json_is_true(json_object_get(args, op->operator_arg))) {
		snprintf(err.msg, sizeof(err.msg), "permission denied: only root or members of "
			 "the group %s may ask for \"%s\"", svc->operator_group, op->operator_arg);
		return vss_proto_reply_error(id, -EACCES, err.msg);
	}
	if (!args)
		args = json_object();
	else
		json_incref(args);
	if (op->unlocked) {
		rc = op->fn(svc, &c->who, args, &res, &err);
	} else {
		svc_lock(svc);
		svc_refresh_mounts(svc);
		rc = op->fn(svc, &c->who, args, &res, &err);
		svc_unlock(svc);
	}
	json_decref(args);
	if (rc < 0) {
		json_decref(res);
		return vss_proto_reply_error(id, rc, err.msg);
	}
	return vss_proto_reply_ok(id, res);
}

static void reply_and_drop(int fd, const struct vss_proto_opts *o, json_t *reply)
{
	vss_proto_send_opts(fd, reply, o);
	json_decref(reply);
}

/*
 * Waits for the first byte of the next request on @c.  False when the
 * connection is over: the peer closed it, or no request started within the
 * idle timeout while it holds no backup session and no held set (the
 * client is told why: it reads that as the reply to its next request).
 */
static bool wait_request(struct conn *c)
{
	struct svc_server *srv = c->svc->server;

	for (;;) {
		struct pollfd p = { c->fd, POLLIN, 0 };
		int n = poll(&p, 1, srv->idle_ms);
		char msg[128];

		if (n > 0)
			return true;            /* a byte, or the end: the read says which */
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return false;
		/* Only operators hold sets and backups: users never wait for svc->lock here. */
		if (c->who.role >= SVC_ROLE_OPERATOR &&
		    (svc_backup_conn_active(c->svc, c) || svc_conn_holds_set(c->svc, c)))
			continue;
		snprintf(msg, sizeof(msg), "vssd closed this connection: no request for %d ms",
			 srv->idle_ms);
		reply_and_drop(c->fd, &srv->tx, vss_proto_reply_error(NULL, -ETIMEDOUT, msg));
		return false;
	}
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct svc_server *srv = c->svc->server;

	while (wait_request(c)) {
		struct vss_error err = { 0 };
		json_t *msg = NULL;
		int rc = vss_proto_recv_opts(c->fd, &srv->rx, &msg, &err);

		if (rc == -EBADMSG) {
			reply_and_drop(c->fd, &srv->tx, vss_proto_reply_error(NULL, rc, err.msg));
			continue;
		}
		if (rc == -EMSGSIZE || rc == -EPROTO || rc == -ETIMEDOUT) {
			/* Out of step with the client: say why, and close. */
			if (rc == -ETIMEDOUT)
				note(srv, "closed a connection of uid %u (pid %d): %s",
				     (unsigned int)c->who.uid, (int)c->who.pid, err.msg);
			reply_and_drop(c->fd, &srv->tx, vss_proto_reply_error(NULL, rc, err.msg));
			break;
		}
		if (rc < 0 || !msg)
			break;
		json_t *reply = handle(c, msg);

		json_decref(msg);
		rc = vss_proto_send_opts(c->fd, reply, &srv->tx);
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

/*
 * Whether @who may have one more connection (srv->lock held, finished ones
 * reaped): 0, or -EAGAIN with the reason in @why.  Every uid but root has
 * at most srv->per_user; users (neither root nor operators) together at
 * most max_conns - reserved, so the reserved ones are always there for root
 * and the operator group.  Operators of several uids could still fill all
 * max_conns: root then has SVC_ROOT_EXTRA_CONNS more of its own.
 */
static int admit(struct svc_server *srv, const struct svc_caller *who, char *why, size_t len)
{
	unsigned int mine = 0, users = 0, roots = 0;

	for (struct conn *c = srv->conns; c; c = c->next) {
		mine += c->who.uid == who->uid;
		users += c->who.role == SVC_ROLE_USER;
		roots += c->who.uid == 0;
	}
	/* Root's own: past the limit, so that no mix of operators and users
	 * holding every connection can shut root out. */
	if (who->uid == 0 && srv->nconns >= srv->max_conns && roots < SVC_ROOT_EXTRA_CONNS)
		return 0;
	if (srv->nconns >= srv->max_conns)
		snprintf(why, len, "too many connections: vssd serves at most %u at once",
			 srv->max_conns);
	else if (who->uid != 0 && mine >= srv->per_user)
		snprintf(why, len, "too many connections from uid %u (at most %u at once)",
			 (unsigned int)who->uid, srv->per_user);
	else if (who->role == SVC_ROLE_USER && users >= srv->max_conns - srv->reserved)
		snprintf(why, len, "too many connections from users (at most %u at once; the "
			 "other %u are kept for root and the operator group)",
			 srv->max_conns - srv->reserved, srv->reserved);
	else
		return 0;
	return -EAGAIN;
}

/* Tells a connection that it was not admitted, without ever blocking the
 * accept thread (a new socket's buffer is empty: the reply fits), and
 * closes it. */
static void refuse(struct svc_server *srv, int fd, const struct svc_caller *who,
		   const char *why)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	reply_and_drop(fd, NULL, vss_proto_reply_error(NULL, -EAGAIN, why));
	close(fd);
	note(srv, "refused a connection of uid %u (pid %d): %s", (unsigned int)who->uid,
	     (int)who->pid, why);
}

static void *accept_main(void *arg)
{
	struct vss_service *svc = arg;
	struct svc_server *srv = svc->server;

	for (;;) {
		struct pollfd p[2] = { { srv->listen_fd, POLLIN, 0 }, { srv->wake[0], POLLIN, 0 } };
		struct conn *c;
		char why[200];
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors: the pending connection stays; do not spin. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				usleep(100000);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c || caller_init(svc, fd, &c->who) < 0) {
			free(c);
			close(fd);
			continue;
		}
		pthread_mutex_lock(&srv->lock);
		reap(srv);
		if (admit(srv, &c->who, why, sizeof(why)) < 0) {
			pthread_mutex_unlock(&srv->lock);
			refuse(srv, fd, &c->who, why);
			free(c);
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

static unsigned int or_default(unsigned int v, unsigned int def)
{
	return v ? v : def;
}

int svc_server_start(struct vss_service *svc, const struct vss_service_config *cfg,
		     struct vss_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct svc_server *srv = calloc(1, sizeof(*srv));
	unsigned int frame_ms;
	int rc;

	if (!srv)
		return vss_error_set(err, -ENOMEM, "out of memory");
	srv->listen_fd = srv->wake[0] = srv->wake[1] = -1;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->note_lock, NULL);
	svc->server = srv;
	srv->max_conns = or_default(cfg->max_conns, VSS_SERVICE_MAX_CONNS);
	srv->per_user = or_default(cfg->max_conns_per_user, VSS_SERVICE_MAX_CONNS_PER_USER);
	srv->reserved = or_default(cfg->reserved_conns, VSS_SERVICE_RESERVED_CONNS);
	if (srv->reserved >= srv->max_conns)
		return vss_error_set(err, -EINVAL, "the connections reserved for root and "
				     "operators (%u) must be fewer than all connections (%u)",
				     srv->reserved, srv->max_conns);
	srv->idle_ms = (int)or_default(cfg->idle_timeout_ms, VSS_SERVICE_IDLE_TIMEOUT_MS);
	frame_ms = or_default(cfg->frame_timeout_ms, VSS_SERVICE_FRAME_TIMEOUT_MS);
	if (srv->idle_ms < 0 || frame_ms > INT_MAX)
		return vss_error_set(err, -EINVAL, "a timeout of the control socket is too long");
	srv->rx = (struct vss_proto_opts){ .max_message = VSS_PROTO_MAX_FRAME,
					   .timeout_ms = (int)frame_ms };
	srv->tx = (struct vss_proto_opts){ .frame = cfg->test_frame_max,
					   .timeout_ms = (int)frame_ms };
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
	if (listen(srv->listen_fd, 128) < 0)
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
	pthread_mutex_destroy(&srv->lock);
	pthread_mutex_destroy(&srv->note_lock);
	free(srv);
	svc->server = NULL;
}
