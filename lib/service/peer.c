/*
 * service/peer.c - shadow copy sets that span hosts (peer.h): the peers
 * file, the coordinator's side of a set (hooks of set.c's steps over one
 * connection per peer), a peer's side (peer.set), and the records of the
 * other hosts' members.  What a peer sends is parsed by peer_msg.c; here
 * every wait has a deadline and every failure names the host.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "provider/rbd/provider.h"
#include "service/backup.h"
#include "service/caller.h"
#include "service/log.h"
#include "service/peer.h"
#include "service/server.h"
#include "service/service_i.h"
#include "service/set.h"
#include "service/shadows.h"
#include "service/clock.h"

#define SEND_MS 2000            /* a step message to a peer: it is small */

/* ---- the peers file ---- */

/* Reads svc->peers_path: root's, written by root only, a regular file. */
static int conf_load(struct vss_service *svc, struct svc_peer_conf *conf, struct vss_error *err)
{
	int fd = open(svc->peers_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int rc = 0;

	if (fd < 0)
		return vss_error_set(err, -errno, "cannot read the peers file %s: %s (it names "
				     "the other hosts and the sockets that reach them: "
				     "doc/peers.md)", svc->peers_path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = vss_error_set(err, -errno, "%s: %s", svc->peers_path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
		rc = vss_error_set(err, -EPERM, "the peers file %s must be a regular file of "
				   "root's that no one else may write", svc->peers_path);
		goto out;
	}
	if (st.st_size > SVC_PEER_FILE_MAX) {
		rc = vss_error_set(err, -EFBIG, "the peers file %s is larger than %u bytes",
				   svc->peers_path, SVC_PEER_FILE_MAX);
		goto out;
	}
	if (!(buf = malloc(SVC_PEER_FILE_MAX + 1))) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, SVC_PEER_FILE_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = vss_error_set(err, -errno, "%s: %s", svc->peers_path, strerror(errno));
			goto out;
		}
		if (n == 0 || (len += (size_t)n) > SVC_PEER_FILE_MAX)
			break;
	}
	if ((rc = svc_peer_conf_parse(buf, len, conf, err)) < 0) {
		char why[VSS_ERROR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		vss_error_set(err, rc, "the peers file %s: %s", svc->peers_path, why);
	}
out:
	free(buf);
	close(fd);
	return rc;
}

/* ---- one connection to a peer ---- */

/*
 * A peer's connection that failed is -EIO for the requester, never
 * -EPIPE or -ECONNRESET: those say that vssd itself went away (the command
 * line's exit code 3), while here only another host did.
 */
static int lost(int rc)
{
	return rc == -EPIPE || rc == -ECONNRESET ? -EIO : rc;
}

static int link_open(const struct svc_peer *peer, int *out, struct vss_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	*out = -1;
	if (fd < 0)
		return vss_error_set(err, -errno, "socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", peer->socket);
	/* Non-blocking: a listener whose backlog is full says so at once. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		int rc = -errno;

		close(fd);
		return vss_error_set(err, lost(rc), "cannot reach host %s through %s: %s",
				     peer->name, peer->socket, strerror(-rc));
	}
	*out = fd;
	return 0;
}

static int link_send(int fd, json_t *msg, const char *host, struct vss_error *err)
{
	struct vss_proto_opts o = { .timeout_ms = SEND_MS };
	int rc = msg ? vss_proto_send_opts(fd, msg, &o) : -ENOMEM;

	json_decref(msg);
	if (rc < 0)
		return vss_error_set(err, lost(rc), "cannot send to host %s: %s", host,
				     rc == -EPIPE ? "it closed the connection" : strerror(-rc));
	return 0;
}

/* The next message from @host by @deadline (mono_ms): 0 and *@msg, or a
 * failure naming the host (-ETIMEDOUT when nothing came in time, -EIO
 * when it closed the connection). */
static int link_recv(int fd, int64_t deadline, const char *host, json_t **msg,
		     struct vss_error *err)
{
	struct vss_proto_opts o = { .max_message = SVC_PEER_MSG_MAX };
	struct pollfd p = { fd, POLLIN, 0 };
	struct vss_error e = { 0 };
	int rc;

	*msg = NULL;
	for (;;) {
		int64_t left = deadline - svc_mono_ms();
		int n;

		if (left <= 0)
			return vss_error_set(err, -ETIMEDOUT, "host %s did not answer in time",
					     host);
		n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			break;
		if (n < 0 && errno != EINTR)
			return vss_error_set(err, -errno, "host %s: %s", host, strerror(errno));
	}
	o.timeout_ms = (int)(deadline - svc_mono_ms() > 1 ? deadline - svc_mono_ms() : 1);
	if ((rc = vss_proto_recv_opts(fd, &o, msg, &e)) < 0)
		return vss_error_set(err, rc == -EBADMSG ? -EPROTO : lost(rc), "host %s: %s",
				     host, e.msg);
	if (!*msg)
		return vss_error_set(err, -EIO, "host %s closed the connection", host);
	return 0;
}

/* One request to host @name and its reply: 0 and *@reply (owned) with
 * *@result borrowed from it; the peer's failure (*@theirs true) or ours. */
static int peer_call(struct vss_service *svc, const char *name, const char *op, json_t *args,
		     json_t **reply, json_t **result, bool *theirs, struct vss_error *err)
{
	struct svc_peer_conf conf;
	const struct svc_peer *peer;
	enum svc_peer_step step;
	struct vss_error e = { 0 };
	int fd, rc;

	*reply = *result = NULL;
	*theirs = false;
	if ((rc = conf_load(svc, &conf, err)) < 0) {
		json_decref(args);
		return rc;
	}
	if (!(peer = svc_peer_conf_find(&conf, name))) {
		json_decref(args);
		return vss_error_set(err, -ENOENT, "host %s is not in the peers file %s", name,
				     svc->peers_path);
	}
	if ((rc = link_open(peer, &fd, err)) < 0) {
		json_decref(args);
		return rc;
	}
	if ((rc = link_send(fd, vss_proto_request(1, op, args), name, err)) == 0 &&
	    (rc = link_recv(fd, svc_mono_ms() + svc->peer_timeout_ms, name, reply, err)) == 0) {
		rc = svc_peer_msg_parse(*reply, &step, result, &e);
		if (rc == 1)
			rc = -EPROTO;
		*theirs = rc < 0 && rc != -EPROTO;
		if (rc < 0)
			vss_error_set(err, rc, "host %s: %s", name, rc == -EPROTO
				      ? "it sent something that is not a reply" : e.msg);
	}
	close(fd);
	if (rc < 0) {
		json_decref(*reply);
		*reply = *result = NULL;
	}
	return rc;
}

/* One request on a set's connection to @host and its reply by @deadline:
 * 0 and *@reply (owned) with *@result borrowed from it, or why not. */
static int link_call(int fd, const char *host, const char *op, json_t *args, int64_t deadline,
		     json_t **reply, json_t **result, struct vss_error *err)
{
	enum svc_peer_step step;
	struct vss_error e = { 0 };
	int rc;

	*reply = *result = NULL;
	if ((rc = link_send(fd, vss_proto_request(1, op, args), host, err)) < 0 ||
	    (rc = link_recv(fd, deadline, host, reply, err)) < 0)
		return rc;
	rc = svc_peer_msg_parse(*reply, &step, result, &e);
	if (rc == 0)
		return 0;
	json_decref(*reply);
	*reply = *result = NULL;
	if (rc == 1 || rc == -EPROTO)
		return vss_error_set(err, -EPROTO, "host %s did not reply to %s: %s", host, op,
				     rc == 1 ? "a step came instead" : e.msg);
	return vss_error_set(err, rc, "host %s: %s: %s", host, op, e.msg);
}

/* ---- the coordinator ---- */

struct peer_host {
	const struct svc_peer *peer;          /* in ps->conf */
	char *targets[SVC_PEER_TARGETS_MAX];  /* owned: as that host takes them */
	size_t n;
	int fd;                               /* the connection of this set, or -1 */
	bool completed;                       /* set.complete went through there */
};

struct svc_peer_set {
	struct vss_service *svc;
	struct svc_peer_conf conf;
	struct peer_host h[SVC_PEERS_MAX];
	size_t nh, ntargets;
	bool persistent, no_writers;
	struct svc_peer_backup *bk;           /* a requester's backup, or NULL */
	struct svc_set_sync sync;
};

/*
 * The connections of a backup across hosts, after its set was taken, and
 * the thread that watches them (svc_peer_links_watch) while the backup
 * holds its set: between requests a peer sends nothing, so a connection
 * that becomes readable was closed (the peer's vssd died, the forwarding
 * was cut) or is out of step; either way that host is lost.  A request on
 * the connections (renew, the end) first marks them busy, so that the
 * watcher does not take its reply for a loss.
 */
struct svc_peer_links {
	size_t n;
	struct {
		char host[SVC_PEER_NAME_MAX + 1];
		int fd;                       /* -1 once lost (mu) */
	} h[SVC_PEERS_MAX];
	pthread_mutex_t mu;
	pthread_cond_t cond;                  /* busy went false */
	bool busy, stop;                      /* mu */
	bool watching;
	int wake[2];                          /* wakes the watcher's poll */
	pthread_t thread;
	char lost[VSS_ERROR_MSG_MAX];         /* mu: why a host was lost, or "" */
	void (*on_lost)(void *ctx);
	void *ctx;
};

int svc_peer_set_new(struct vss_service *svc, struct svc_peer_set **out, struct vss_error *err)
{
	struct svc_peer_set *ps = calloc(1, sizeof(*ps));
	int rc;

	*out = NULL;
	if (!ps)
		return vss_error_set(err, -ENOMEM, "out of memory");
	ps->svc = svc;
	if ((rc = conf_load(svc, &ps->conf, err)) < 0) {
		free(ps);
		return rc;
	}
	*out = ps;
	return 0;
}

int svc_peer_set_add(struct svc_peer_set *ps, const char *target, struct vss_error *err)
{
	char host[SVC_PEER_NAME_MAX + 1];
	const char *rest;
	struct peer_host *h = NULL;
	const struct svc_peer *peer;

	if (!svc_peer_target_split(target, host, &rest))
		return vss_error_set(err, -EINVAL, "\"%s\" is not HOST:TARGET", target);
	if (strcmp(host, ps->svc->host_name) == 0)
		return vss_error_set(err, -EINVAL, "%s names this host (%s): name its target "
				     "without the host", target, host);
	if (!(peer = svc_peer_conf_find(&ps->conf, host)))
		return vss_error_set(err, -ENOENT, "host %s is not in the peers file %s (%s)",
				     host, ps->svc->peers_path, target);
	if (rest[0] != '/' && strlen(rest) > VSS_NAME_MAX)
		return vss_error_set(err, -EINVAL, "%s: a volume name is at most %d bytes",
				     target, VSS_NAME_MAX);
	if (strlen(rest) > SVC_PEER_STR_MAX)
		return vss_error_set(err, -ENAMETOOLONG, "%s: too long", target);
	for (size_t i = 0; i < ps->nh && !h; i++)
		if (ps->h[i].peer == peer)
			h = &ps->h[i];
	if (!h) {
		h = &ps->h[ps->nh++];
		h->peer = peer;
		h->fd = -1;
	}
	if (h->n == SVC_PEER_TARGETS_MAX)
		return vss_error_set(err, -E2BIG, "more than %d targets on host %s",
				     SVC_PEER_TARGETS_MAX, host);
	if (!(h->targets[h->n] = strdup(rest)))
		return vss_error_set(err, -ENOMEM, "out of memory");
	h->n++;
	ps->ntargets++;
	return 0;
}

size_t svc_peer_set_count(const struct svc_peer_set *ps)
{
	return ps ? ps->ntargets : 0;
}

static void host_close(struct peer_host *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

/* The next message of @h must be the step @want: 0, or why not; with
 * @keep, the message is the caller's (*@keep) on success. */
static int expect(struct peer_host *h, enum svc_peer_step want, int64_t deadline,
		  json_t **keep, struct vss_error *err)
{
	const char *name = h->peer->name;
	enum svc_peer_step got;
	json_t *msg, *result;
	struct vss_error e = { 0 };
	int rc;

	if ((rc = link_recv(h->fd, deadline, name, &msg, &e)) < 0) {
		if (rc == -ETIMEDOUT)
			return vss_error_set(err, rc, "host %s did not say it was %s in time (%s)",
					     name, svc_peer_step_name(want), want == SVC_PEER_PREPARED
					     ? "vssd --peer-timeout" : "the freeze bound");
		return vss_error_set(err, rc, "%s before it was %s", e.msg,
				     svc_peer_step_name(want));
	}
	rc = svc_peer_msg_parse(msg, &got, &result, &e);
	if (rc == 1 && got == want)
		rc = 0;
	else if (rc == 1)
		rc = vss_error_set(err, -EPROTO, "host %s said \"%s\" where \"%s\" was due", name,
				   svc_peer_step_name(got), svc_peer_step_name(want));
	else if (rc == 0 || rc == -EPROTO)
		rc = vss_error_set(err, -EPROTO, "host %s did not say it was %s: %s", name,
				   svc_peer_step_name(want), rc ? e.msg : "it replied early");
	else
		rc = vss_error_set(err, rc, "host %s: %s", name, e.msg);
	if (rc == 0 && keep)
		*keep = msg;
	else
		json_decref(msg);
	return rc;
}

/* @h's RBD images in its "prepared" @msg (on this host's cluster, which it
 * checked): each joins the set's one group here, before anyone freezes. */
static int add_rbd(struct svc_peer_set *ps, struct peer_host *h, const struct svc_set *set,
		   json_t *msg, struct vss_error *err)
{
	struct svc_peer_rbd imgs[SVC_PEER_TARGETS_MAX];
	struct vss_error e = { 0 };
	size_t n;
	int rc;

	if ((rc = svc_peer_rbd_parse(msg, false, imgs, h->n, &n, &e)) < 0)
		return vss_error_set(err, rc, "host %s said it was prepared, but: %s",
				     h->peer->name, e.msg);
	for (size_t i = 0; i < n; i++)
		if ((rc = svc_rbd_remote_add(ps->svc, set->uuid, h->peer->name, &imgs[i],
					     err)) < 0)
			return rc;
	return 0;
}

/* The reply to @op on @host's connection by @deadline: 0, or why not. */
static int link_reply(int fd, const char *host, const char *op, int64_t deadline,
		      struct vss_error *err)
{
	enum svc_peer_step step;
	struct vss_error e = { 0 };
	json_t *reply, *result;
	int rc;

	if ((rc = link_recv(fd, deadline, host, &reply, err)) < 0)
		return rc;
	rc = svc_peer_msg_parse(reply, &step, &result, &e);
	json_decref(reply);
	if (rc == 0)
		return 0;
	if (rc == 1 || rc == -EPROTO)
		return vss_error_set(err, -EPROTO, "host %s did not reply to %s: %s", host, op,
				     rc == 1 ? "a step came instead" : e.msg);
	return vss_error_set(err, rc, "host %s: %s: %s", host, op, e.msg);
}

/*
 * A requester's backup: each host's own backup on the set's connection,
 * its writers identified (backup.begin) and prepared for backup (every
 * component, backup.prepare), before peer.set takes its part of the set in
 * it.  Each step goes to every host at once, then their replies are read:
 * the hosts' writers work side by side.
 */
static int begin_backups(struct svc_peer_set *ps, struct vss_error *err)
{
	struct vss_service *svc = ps->svc;
	const struct svc_peer_backup *bk = ps->bk;
	static const char *const ops[] = { "backup.begin", "backup.prepare" };
	int64_t deadline;
	int rc;

	for (size_t i = 0; i < ps->nh; i++)
		if ((rc = link_open(ps->h[i].peer, &ps->h[i].fd, err)) < 0)
			return rc;
	for (size_t k = 0; k < 2; k++) {
		for (size_t i = 0; i < ps->nh; i++) {
			struct peer_host *h = &ps->h[i];
			json_t *args = k ? NULL : json_pack(
				"{s:s, s:b, s:I, s:I, s:I, s:I}", "type", bk->type, "no_writers",
				ps->no_writers, "timeout_ms", (json_int_t)bk->timeout_ms, "wait_ms",
				(json_int_t)(svc->peer_timeout_ms / 2), "lease_ms",
				(json_int_t)bk->lease_ms, "hold_ms", (json_int_t)bk->hold_ms);

			if ((rc = link_send(h->fd, vss_proto_request(1, ops[k], args), h->peer->name,
					    err)) < 0)
				return rc;
		}
		deadline = svc_mono_ms() + svc->peer_timeout_ms;
		for (size_t i = 0; i < ps->nh; i++)
			if ((rc = link_reply(ps->h[i].fd, ps->h[i].peer->name, ops[k], deadline,
					     err)) < 0)
				return rc;
	}
	return 0;
}

int svc_peer_backup_begin(struct vss_service *svc, const struct svc_caller *who,
			  json_t *targets, bool no_writers, struct svc_peer_backup *bk,
			  struct vss_error *err)
{
	struct svc_peer_set *ps = NULL;
	json_t *t;
	size_t i;
	int rc = 0;

	bk->ps = NULL;
	bk->links = NULL;
	json_array_foreach(targets, i, t) {
		char host[SVC_PEER_NAME_MAX + 1];
		const char *rest, *s = json_string_value(t);

		/* Anything else is refused with the set's other arguments. */
		if (!s || !svc_peer_target_split(s, host, &rest))
			continue;
		if (!who || who->role < SVC_ROLE_ROOT) {
			rc = vss_error_set(err, -EACCES, "permission denied: only root may take "
					   "a set with another host's targets (%s)", s);
			goto fail;
		}
		if ((!ps && (rc = svc_peer_set_new(svc, &ps, err)) < 0) ||
		    (rc = svc_peer_set_add(ps, s, err)) < 0)
			goto fail;
	}
	if (!ps)
		return 0;
	ps->bk = bk;
	ps->no_writers = no_writers;
	if ((rc = begin_backups(ps, err)) < 0)
		goto fail;
	vss_log("backup across hosts: begun and prepared on %zu other host%s", ps->nh,
		ps->nh == 1 ? "" : "s");
	bk->ps = ps;
	return 0;
fail:
	/* Their connections closing abort what was begun there. */
	svc_peer_set_free(ps);
	return rc;
}

/* Sends peer.set to every host, then waits for each to be prepared. */
static int start_peers(struct svc_peer_set *ps, const struct svc_set *set, struct vss_error *err)
{
	struct vss_service *svc = ps->svc;
	int64_t deadline;
	int rc;

	char fsid[37];
	struct vss_error e;
	bool rbd = svc_rbd_fsid(svc, fsid, &e) == 0;

	for (size_t i = 0; i < ps->nh; i++) {
		struct peer_host *h = &ps->h[i];
		json_t *targets = json_array();

		for (size_t k = 0; k < h->n; k++)
			json_array_append_new(targets, json_string(h->targets[k]));
		/* A requester's backup was begun there already (begin_backups). */
		if ((h->fd < 0 && (rc = link_open(h->peer, &h->fd, err)) < 0) ||
		    (rc = link_send(h->fd, vss_proto_request(1, "peer.set", json_pack(
				"{s:s, s:s, s:o, s:b, s:b, s:I, s:s*}", "set", set->id,
				"coordinator", svc->host_name, "targets", targets,
				"persistent", ps->persistent, "no_writers", ps->no_writers,
				"wait_ms", (json_int_t)svc->peer_timeout_ms,
				"rbd_fsid", rbd ? fsid : NULL)),
				h->peer->name, err)) < 0) {
			if (h->fd < 0)
				json_decref(targets);
			return rc;
		}
	}
	deadline = svc_mono_ms() + svc->peer_timeout_ms;
	for (size_t i = 0; i < ps->nh; i++) {
		json_t *msg = NULL;

		rc = expect(&ps->h[i], SVC_PEER_PREPARED, deadline, &msg, err);
		if (rc == 0)
			rc = add_rbd(ps, &ps->h[i], set, msg, err);
		json_decref(msg);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Tells every peer @step; "thaw" names each host's RBD snapshots taken in
 * the set's one group snapshot here. */
static int tell_all(struct svc_peer_set *ps, enum svc_peer_step step, struct vss_error *err)
{
	int rc;

	for (size_t i = 0; i < ps->nh; i++) {
		json_t *msg = svc_peer_step_msg(step), *rbd;

		if (step == SVC_PEER_THAW &&
		    (rbd = svc_rbd_remote_taken(ps->svc, ps->h[i].peer->name)))
			json_object_set_new(msg, "rbd", rbd);
		if ((rc = link_send(ps->h[i].fd, msg, ps->h[i].peer->name, err)) < 0)
			return rc;
	}
	return 0;
}

static int expect_all(struct svc_peer_set *ps, enum svc_peer_step want, int64_t deadline,
		      struct vss_error *err)
{
	int rc;

	for (size_t i = 0; i < ps->nh; i++)
		if ((rc = expect(&ps->h[i], want, deadline, NULL, err)) < 0)
			return rc;
	return 0;
}

static int coord_step(void *ctx, const struct svc_set *set, enum svc_set_step step,
		      int64_t deadline, struct vss_error *err)
{
	struct svc_peer_set *ps = ctx;

	switch (step) {
	case SVC_SET_PREPARED:
		return start_peers(ps, set, err);
	case SVC_SET_FREEZE:
		return tell_all(ps, SVC_PEER_FREEZE, err);
	case SVC_SET_FROZEN:
		return expect_all(ps, SVC_PEER_FROZEN, deadline, err);
	case SVC_SET_COMMIT:
		return tell_all(ps, SVC_PEER_COMMIT, err);
	case SVC_SET_COMMITTED: {
		/* Other hosts' RBD images: the one group snapshot, if this host's
		 * own RBD members did not take it with their commit. */
		int rc = svc_rbd_remote_commit(ps->svc, err);

		return rc < 0 ? rc : expect_all(ps, SVC_PEER_COMMITTED, deadline, err);
	}
	case SVC_SET_THAW:
		return tell_all(ps, SVC_PEER_THAW, err);
	}
	return 0;
}

/* Tells every peer still connected to abort (without waiting), and closes:
 * a peer deletes what it made when its connection closes anyway. */
static void coord_abort(void *ctx, const struct svc_set *set, const char *why)
{
	struct svc_peer_set *ps = ctx;
	size_t told = 0;

	svc_rbd_remote_end(ps->svc, true);
	for (size_t i = 0; i < ps->nh; i++) {
		struct peer_host *h = &ps->h[i];
		json_t *msg = svc_peer_step_msg(SVC_PEER_ABORT);

		if (h->fd >= 0 && vss_proto_send_opts(h->fd, msg, &(struct vss_proto_opts){
							      .timeout_ms = 100 }) == 0)
			told++;
		json_decref(msg);
		host_close(h);
	}
	if (told)
		vss_log("set %s: told %zu other host%s to abort: %s", set->id, told,
			told == 1 ? "" : "s", why);
}

const struct svc_set_sync *svc_peer_set_sync(struct svc_peer_set *ps, bool persistent,
					     bool no_writers)
{
	ps->persistent = persistent;
	ps->no_writers = no_writers;
	ps->sync = (struct svc_set_sync){ .step = coord_step, .abort = coord_abort, .ctx = ps };
	return &ps->sync;
}

void svc_peer_set_backup(struct svc_peer_set *ps, struct svc_peer_backup *bk)
{
	ps->bk = bk;
	bk->links = NULL;
}

static void remote_free(struct svc_remote *r)
{
	if (!r)
		return;
	free(r->rec.target);
	free(r->rec.volume);
	free(r);
}

static void remote_unlink(struct vss_service *svc, struct svc_remote *r)
{
	for (struct svc_remote **pp = &svc->remotes; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
}

/* Forgets @r here only: the record, the list. */
static void remote_forget(struct vss_service *svc, struct svc_remote *r)
{
	struct vss_error e;

	if (vss_catalog_remote_delete(svc->cat, r->rec.host, r->rec.id, &e) < 0)
		vss_log("shadow %s on host %s: %s", r->rec.id, r->rec.host, e.msg);
	remote_unlink(svc, r);
	remote_free(r);
}

/* Records the members @m (@n of them) that host @h made for @set. */
static int record(struct svc_peer_set *ps, struct peer_host *h, const struct svc_set *set,
		  const struct svc_peer_member *m, struct conn *owner, json_t *shadows,
		  struct vss_error *err)
{
	struct vss_service *svc = ps->svc;
	int rc;

	for (size_t k = 0; k < h->n; k++) {
		struct svc_remote *r = calloc(1, sizeof(*r));
		char given[SVC_PEER_NAME_MAX + SVC_PEER_STR_MAX + 2];

		if (!r || !(r->rec.target = strdup(m[k].target)) ||
		    !(r->rec.volume = strdup(m[k].volume))) {
			remote_free(r);
			return vss_error_set(err, -ENOMEM, "out of memory");
		}
		memcpy(r->rec.id, m[k].id, sizeof(r->rec.id));
		memcpy(r->rec.set_id, set->id, sizeof(r->rec.set_id));
		snprintf(r->rec.host, sizeof(r->rec.host), "%s", h->peer->name);
		r->rec.created_ns = svc_now_ns();
		r->rec.attrs = (ps->persistent ? VSS_CATALOG_ATTR_PERSISTENT : 0) |
			       (ps->no_writers ? VSS_CATALOG_ATTR_NO_WRITERS : 0);
		r->owner = owner;
		if (svc_remote_find(svc, r->rec.id)) {
			remote_free(r);
			return vss_error_set(err, -EPROTO, "host %s reported shadow %s, which is "
					     "known here already", h->peer->name, m[k].id);
		}
		r->next = svc->remotes;
		svc->remotes = r;
		if ((rc = vss_catalog_remote_put(svc->cat, &r->rec, err)) < 0)
			return rc;
		snprintf(given, sizeof(given), "%s:%s", r->rec.host, r->rec.target);
		json_array_append_new(shadows, json_pack(
			"{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:n, s:n}", "id", r->rec.id,
			"target", given, "host", r->rec.host, "volume", r->rec.volume,
			"device", m[k].device, "provider", m[k].provider, "live", 0,
			"target_path", "fallback"));
	}
	return 0;
}

/* Undoes what finish made of @set: the members of the hosts that completed
 * the set are deleted there; the others delete their own as their
 * connection closes. */
static void finish_undo(struct svc_peer_set *ps, const struct svc_set *set, const char *why)
{
	struct vss_service *svc = ps->svc;

	for (size_t i = 0; i < ps->nh; i++)
		host_close(&ps->h[i]);
	for (struct svc_remote *r = svc->remotes, *next; r; r = next) {
		bool completed = false;
		struct vss_error e;

		next = r->next;
		if (strcmp(r->rec.set_id, set->id) != 0)
			continue;
		for (size_t i = 0; i < ps->nh; i++)
			if (ps->h[i].completed && strcmp(ps->h[i].peer->name, r->rec.host) == 0)
				completed = true;
		if (!completed)
			remote_forget(svc, r);
		else if (svc_remote_delete(svc, r, why, &e) < 0)
			vss_log("set %s: %s", set->id, e.msg);
	}
}

int svc_peer_set_finish(struct svc_peer_set *ps, const struct svc_set *set, struct conn *owner,
			json_t *shadows, struct vss_error *err)
{
	struct svc_peer_member m[SVC_PEER_TARGETS_MAX];
	int64_t deadline = svc_mono_ms() + ps->svc->peer_timeout_ms;
	int rc = 0;

	svc_assert_locked(ps->svc);
	/* Other hosts' RBD images leave the set's group (which keeps the
	 * snapshot's record). */
	svc_rbd_remote_end(ps->svc, false);
	for (size_t i = 0; i < ps->nh && rc == 0; i++) {
		struct peer_host *h = &ps->h[i];
		enum svc_peer_step step;
		struct vss_error e = { 0 };
		json_t *msg, *result;

		if ((rc = link_recv(h->fd, deadline, h->peer->name, &msg, err)) < 0)
			break;
		rc = svc_peer_msg_parse(msg, &step, &result, &e);
		if (rc == 1 || rc == -EPROTO)
			rc = vss_error_set(err, -EPROTO, "host %s did not reply to peer.set: %s",
					   h->peer->name, rc == 1 ? "a step came instead" : e.msg);
		else if (rc < 0)
			vss_error_set(err, rc, "host %s: %s", h->peer->name, e.msg);
		else if ((rc = svc_peer_result_parse(result, set->id,
						     (const char *const *)h->targets, h->n, m,
						     &e)) < 0)
			vss_error_set(err, rc, "host %s: %s", h->peer->name, e.msg);
		else
			rc = record(ps, h, set, m, owner, shadows, err);
		json_decref(msg);
	}
	/* A backup: each host keeps its part, held by its backup there, until
	 * backup.complete or backup.abort (svc_peer_links_end). */
	if (rc == 0 && ps->bk) {
		struct svc_peer_links *l = calloc(1, sizeof(*l));

		if (!l) {
			rc = vss_error_set(err, -ENOMEM, "out of memory");
		} else {
			pthread_mutex_init(&l->mu, NULL);
			pthread_cond_init(&l->cond, NULL);
			l->wake[0] = l->wake[1] = -1;
		}
		for (size_t i = 0; l && i < ps->nh; i++) {
			snprintf(l->h[i].host, sizeof(l->h[i].host), "%s", ps->h[i].peer->name);
			l->h[i].fd = ps->h[i].fd;
			ps->h[i].fd = -1;
			l->n++;
		}
		ps->bk->links = l;
	}
	for (size_t i = 0; i < ps->nh && rc == 0 && !ps->bk; i++) {
		struct peer_host *h = &ps->h[i];
		enum svc_peer_step step;
		struct vss_error e = { 0 };
		json_t *msg, *result;

		if ((rc = link_send(h->fd, vss_proto_request(2, "set.complete",
							     json_pack("{s:s}", "set", set->id)),
				    h->peer->name, err)) < 0 ||
		    (rc = link_recv(h->fd, deadline, h->peer->name, &msg, err)) < 0)
			break;
		rc = svc_peer_msg_parse(msg, &step, &result, &e);
		if (rc == 0)
			h->completed = true;
		else
			rc = vss_error_set(err, rc == 1 ? -EPROTO : rc, "host %s did not complete "
					   "the set: %s", h->peer->name, rc == 1
					   ? "a step came instead" : e.msg);
		json_decref(msg);
		host_close(h);
	}
	if (rc < 0) {
		char why[VSS_ERROR_MSG_MAX + 32];

		snprintf(why, sizeof(why), "the set failed: %s", err->msg);
		finish_undo(ps, set, why);
		return rc;
	}
	vss_log("shadow set %s: %zu shadow%s on %zu other host%s", set->id, ps->ntargets,
		ps->ntargets == 1 ? "" : "s", ps->nh, ps->nh == 1 ? "" : "s");
	return 0;
}

void svc_peer_set_free(struct svc_peer_set *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->nh; i++) {
		host_close(&ps->h[i]);
		for (size_t k = 0; k < ps->h[i].n; k++)
			free(ps->h[i].targets[k]);
	}
	free(ps);
}

/* ---- watching a backup's other hosts ---- */

static void wake_watcher(struct svc_peer_links *l)
{
	if (l->wake[1] >= 0)
		(void)!write(l->wake[1], "", 1);
}

/* A request on @l's connections begins (@busy) or ends. */
static void links_busy(struct svc_peer_links *l, bool busy)
{
	pthread_mutex_lock(&l->mu);
	l->busy = busy;
	if (busy)
		wake_watcher(l);
	else
		pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
}

/* Whether the connection @fd, readable while no request is out, was lost:
 * why, or NULL (nothing after all). */
static const char *gone_why(int fd, short revents)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n > 0)
		return "it sent what it was not asked for";
	if (n == 0 || (revents & (POLLHUP | POLLRDHUP)))
		return "it closed the connection";
	if (errno == EAGAIN || errno == EINTR)
		return NULL;
	return strerror(errno);
}

static void *watch_main(void *arg)
{
	struct svc_peer_links *l = arg;
	bool lost;

	pthread_mutex_lock(&l->mu);
	while (!l->stop && !l->lost[0]) {
		struct pollfd p[SVC_PEERS_MAX + 1];
		char drain[16];

		while (l->busy && !l->stop)
			pthread_cond_wait(&l->cond, &l->mu);
		if (l->stop)
			break;
		p[0] = (struct pollfd){ l->wake[0], POLLIN, 0 };
		for (size_t i = 0; i < l->n; i++)
			p[i + 1] = (struct pollfd){ l->h[i].fd, POLLIN | POLLRDHUP, 0 };
		pthread_mutex_unlock(&l->mu);
		if (poll(p, l->n + 1, -1) < 0 && errno != EINTR)
			vss_log("backup across hosts: poll: %s", strerror(errno));
		while (read(l->wake[0], drain, sizeof(drain)) > 0)
			;
		pthread_mutex_lock(&l->mu);
		if (l->busy || l->stop)
			continue;
		for (size_t i = 0; i < l->n && !l->lost[0]; i++) {
			const char *why;

			if (l->h[i].fd < 0 || !p[i + 1].revents ||
			    !(why = gone_why(l->h[i].fd, p[i + 1].revents)))
				continue;
			snprintf(l->lost, sizeof(l->lost), "host %s was lost while the backup held "
				 "its shadows: %s", l->h[i].host, why);
			vss_log("backup across hosts: %s", l->lost);
			close(l->h[i].fd);
			l->h[i].fd = -1;
		}
	}
	lost = l->lost[0] && !l->stop;
	pthread_mutex_unlock(&l->mu);
	if (lost && l->on_lost)
		l->on_lost(l->ctx);
	return NULL;
}

int svc_peer_links_watch(struct svc_peer_links *l, void (*on_lost)(void *ctx), void *ctx,
			 struct vss_error *err)
{
	sigset_t all, old;
	int rc;

	if (!l)
		return 0;
	if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		l->wake[0] = l->wake[1] = -1;
		return vss_error_set(err, -errno, "cannot watch the other hosts' connections: "
				     "pipe: %s", strerror(errno));
	}
	l->on_lost = on_lost;
	l->ctx = ctx;
	/* Signals are the main thread's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&l->thread, NULL, watch_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return vss_error_set(err, -rc, "cannot watch the other hosts' connections: %s",
				     strerror(rc));
	l->watching = true;
	return 0;
}

static void watch_stop(struct svc_peer_links *l)
{
	if (!l->watching)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	wake_watcher(l);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	l->watching = false;
}

static void links_free(struct svc_peer_links *l)
{
	watch_stop(l);
	for (size_t k = 0; k < 2; k++)
		if (l->wake[k] >= 0)
			close(l->wake[k]);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cond);
	free(l);
}

/* ---- the end of a backup across hosts ---- */

int svc_peer_links_end(struct vss_service *svc, struct svc_peer_links **links, const char *set,
		       bool complete, bool succeeded, const char *why, struct vss_error *err)
{
	struct svc_peer_links *l = *links;
	int rc = 0;

	svc_assert_locked(svc);
	if (!l)
		return 0;
	watch_stop(l);
	for (size_t i = 0; i < l->n; i++) {
		const char *host = l->h[i].host;
		bool completing = complete && rc == 0;
		struct vss_error e = { 0 };
		json_t *reply, *result;
		int r;

		if (l->h[i].fd < 0) {
			reply = NULL;
			r = vss_error_set(&e, -EIO, "host %s: its connection was lost while the "
					  "backup held its shadows", host);
		} else {
			r = link_call(l->h[i].fd, host, completing ? "backup.complete"
				      : "backup.abort", completing ? json_pack("{s:b}", "succeeded",
									succeeded) : NULL,
				      svc_mono_ms() + svc->peer_timeout_ms, &reply, &result, &e);
			close(l->h[i].fd);
		}
		json_decref(reply);
		if (completing && r == 0)
			continue;       /* its members stay, as this host's do */
		if (completing) {
			rc = vss_error_set(err, r, "the backup could not be completed on host %s: "
					   "%s", host, e.msg);
			why = err->msg;
		} else if (r < 0) {
			vss_log("set %s: host %s was not told to abort its backup (%s); its "
				"connection closed, which aborts it there", set, host, e.msg);
		}
		/* Aborted there, or its connection closed (which aborts it there),
		 * or its vssd is gone (a set not completed does not outlive it). */
		for (struct svc_remote *m = svc->remotes, *next; m; m = next) {
			next = m->next;
			if (strcmp(m->rec.set_id, set) != 0 || strcmp(m->rec.host, host) != 0)
				continue;
			vss_log("shadow %s on host %s (set %s) deleted there with its backup: %s",
				m->rec.id, host, set, why ? why : "aborted");
			remote_forget(svc, m);
		}
	}
	links_free(l);
	*links = NULL;
	return rc;
}

int svc_peer_links_renew(struct vss_service *svc, struct svc_peer_links *l,
			 struct vss_error *err)
{
	char why[VSS_ERROR_MSG_MAX + 128] = "";

	if (!l)
		return 0;
	links_busy(l, true);
	for (size_t i = 0; i < l->n; i++) {
		struct vss_error e = { 0 };
		json_t *reply, *result;

		if (l->h[i].fd < 0)
			continue;
		/* A connection that failed may be half read: closed (which aborts
		 * the backup there), and the host is lost. */
		if (link_call(l->h[i].fd, l->h[i].host, "backup.status", NULL,
			      svc_mono_ms() + svc->peer_timeout_ms, &reply, &result, &e) < 0) {
			vss_log("backup across hosts: %s", e.msg);
			if (!why[0])
				snprintf(why, sizeof(why), "host %s was lost while the backup held "
					 "its shadows: backup.status: %s", l->h[i].host, e.msg);
			close(l->h[i].fd);
			l->h[i].fd = -1;
		}
		json_decref(reply);
	}
	pthread_mutex_lock(&l->mu);
	if (why[0] && !l->lost[0])
		snprintf(l->lost, sizeof(l->lost), "%.*s", (int)sizeof(l->lost) - 1, why);
	pthread_mutex_unlock(&l->mu);
	links_busy(l, false);
	return svc_peer_links_lost(l, err) ? -EIO : 0;
}

bool svc_peer_links_lost(struct svc_peer_links *l, struct vss_error *err)
{
	bool lost;

	if (!l)
		return false;
	pthread_mutex_lock(&l->mu);
	lost = l->lost[0] != 0;
	if (lost)
		vss_error_set(err, -EIO, "%s", l->lost);
	pthread_mutex_unlock(&l->mu);
	return lost;
}

/* ---- a peer ---- */

struct peer_side {
	struct vss_service *svc;
	int fd;
	const char *coordinator;
	unsigned int wait_ms;
	bool rbd;                       /* its RBD members in the coordinator's group */
};

/* Says what this host has done, then waits for the coordinator's word. */
static int side_step(void *ctx, const struct svc_set *set, enum svc_set_step step,
		     int64_t deadline, struct vss_error *err)
{
	struct peer_side *side = ctx;
	enum svc_peer_step say, want, got;
	json_t *msg = NULL, *result;
	struct vss_error e = { 0 };
	char who[SVC_PEER_NAME_MAX + 32];
	int rc;

	switch (step) {
	case SVC_SET_PREPARED:
		say = SVC_PEER_PREPARED;
		want = SVC_PEER_FREEZE;
		deadline = svc_mono_ms() + side->wait_ms;
		break;
	case SVC_SET_FROZEN:
		say = SVC_PEER_FROZEN;
		want = SVC_PEER_COMMIT;
		break;
	case SVC_SET_COMMITTED:
		say = SVC_PEER_COMMITTED;
		want = SVC_PEER_THAW;
		break;
	default:
		return 0;
	}
	snprintf(who, sizeof(who), "the coordinator (%s)", side->coordinator);
	msg = svc_peer_step_msg(say);
	/* Its RBD images for the coordinator's one group snapshot. */
	if (step == SVC_SET_PREPARED && side->rbd)
		json_object_set_new(msg, "rbd", svc_rbd_cross_members(side->svc));
	if ((rc = link_send(side->fd, msg, side->coordinator, err)) < 0)
		return vss_error_set(err, rc, "%s went away before this host was %s", who,
				     svc_peer_step_name(say));
	rc = link_recv(side->fd, deadline, side->coordinator, &msg, &e);
	if (rc == -ETIMEDOUT)
		return vss_error_set(err, rc, "%s did not say \"%s\" in time (set %s); this host "
				     "aborted its part", who, svc_peer_step_name(want), set->id);
	if (rc < 0)
		return vss_error_set(err, rc, "%s went away before it said \"%s\" (set %s): %s",
				     who, svc_peer_step_name(want), set->id, e.msg);
	rc = svc_peer_msg_parse(msg, &got, &result, &e);
	if (rc == 1 && got == want && want == SVC_PEER_THAW) {
		struct svc_peer_rbd taken[SVC_PEER_TARGETS_MAX];
		size_t n;

		/* The snapshots of its RBD images in the coordinator's group
		 * snapshot. */
		if ((rc = svc_peer_rbd_parse(msg, true, taken, SVC_PEER_TARGETS_MAX, &n,
					     &e)) < 0 ||
		    (rc = svc_rbd_cross_taken(side->svc, taken, n, &e)) < 0) {
			json_decref(msg);
			return vss_error_set(err, rc, "%s: %s", who, e.msg);
		}
		rc = 1;
	}
	json_decref(msg);
	if (rc == 1 && got == want)
		return 0;
	if (rc == 1 && got == SVC_PEER_ABORT)
		return vss_error_set(err, -ECANCELED, "%s aborted the set %s", who, set->id);
	return vss_error_set(err, -EPROTO, "%s sent something else than \"%s\"", who,
			     svc_peer_step_name(want));
}

int svc_op_peer_set(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		    json_t **res, struct vss_error *err)
{
	struct svc_peer_set_req req;
	struct peer_side side;
	struct svc_set_sync sync = { .step = side_step, .ctx = &side };
	json_t *sargs, *targets;
	bool known = false;
	int rc;

	if ((rc = svc_peer_set_req_parse(args, &req, err)) < 0)
		return rc;
	if (!who->conn)
		return vss_error_set(err, -EINVAL, "peer.set needs a connection");
	svc_lock(svc);
	for (struct svc_shadow *sh = svc->shadows; sh && !known; sh = sh->next)
		known = strcmp(sh->rec.set_id, req.set) == 0;
	for (struct svc_remote *r = svc->remotes; r && !known; r = r->next)
		known = strcmp(r->rec.set_id, req.set) == 0;
	svc_unlock(svc);
	if (known)
		return vss_error_set(err, -EEXIST, "set %s exists here already", req.set);
	side = (struct peer_side){ .svc = svc, .fd = svc_conn_fd(who->conn),
				   .coordinator = req.coordinator, .wait_ms = req.wait_ms };
	/* The same Ceph cluster (by its fsid, never by names): this host's RBD
	 * members go into the coordinator's one group snapshot. */
	if (req.rbd_fsid[0]) {
		char fsid[37];
		struct vss_error e;

		svc_lock(svc);
		side.rbd = svc_rbd_fsid(svc, fsid, &e) == 0 && strcmp(fsid, req.rbd_fsid) == 0;
		if (side.rbd)
			svc_rbd_cross(svc, req.set);
		svc_unlock(svc);
	}
	sync.set_id = req.set;
	sync.coordinator = req.coordinator;
	targets = json_array();
	for (size_t i = 0; i < req.n; i++)
		json_array_append_new(targets, json_string(req.targets[i]));
	sargs = json_pack("{s:o, s:b, s:b, s:b, s:I}", "targets", targets, "persistent",
			  req.persistent, "no_writers", req.no_writers, "hold", 1,
			  "wait_ms", (json_int_t)req.wait_ms);
	vss_log("set %s: coordinated by host %s, %zu target%s here", req.set, req.coordinator,
		req.n, req.n == 1 ? "" : "s");
	rc = svc_backup_shadow_create_sync(svc, who, sargs, &sync, res, err);
	json_decref(sargs);
	if (side.rbd) {
		svc_lock(svc);
		svc_rbd_cross(svc, NULL);
		svc_unlock(svc);
	}
	return rc;
}

/* ---- other hosts' members of this host's sets ---- */

static int load_one(void *arg, const struct vss_catalog_remote *rec)
{
	struct vss_service *svc = arg;
	struct svc_remote *r = calloc(1, sizeof(*r)), **pp = &svc->remotes;

	if (!r)
		return -ENOMEM;
	r->rec = *rec;
	r->rec.target = strdup(rec->target);
	r->rec.volume = strdup(rec->volume);
	if (!r->rec.target || !r->rec.volume) {
		remote_free(r);
		return -ENOMEM;
	}
	while (*pp)
		pp = &(*pp)->next;
	*pp = r;
	return 0;
}

int svc_remotes_load(struct vss_service *svc, struct vss_error *err)
{
	int rc = vss_catalog_remote_each(svc->cat, load_one, svc, err);

	if (rc == -ENOMEM)
		return vss_error_set(err, rc, "out of memory");
	return rc;
}

void svc_remotes_close(struct vss_service *svc)
{
	for (struct svc_remote *r = svc->remotes, *next; r; r = next) {
		struct vss_error e;

		next = r->next;
		if (!(r->rec.attrs & VSS_CATALOG_ATTR_PERSISTENT) &&
		    svc_remote_delete(svc, r, "the service is stopping and its set is not "
				      "persistent", &e) < 0)
			vss_log("%s", e.msg);
	}
	while (svc->remotes) {
		struct svc_remote *r = svc->remotes;

		svc->remotes = r->next;
		remote_free(r);
	}
}

struct svc_remote *svc_remote_find(struct vss_service *svc, const char *id)
{
	for (struct svc_remote *r = svc->remotes; r; r = r->next)
		if (strcmp(r->rec.id, id) == 0)
			return r;
	return NULL;
}

json_t *svc_remote_json(const struct svc_remote *r)
{
	char created[40], given[SVC_PEER_NAME_MAX + SVC_PEER_STR_MAX + 2];
	json_t *attrs = json_array();

	svc_time_str(r->rec.created_ns, created);
	snprintf(given, sizeof(given), "%s:%s", r->rec.host, r->rec.target);
	json_array_append_new(attrs, json_string(r->rec.attrs & VSS_CATALOG_ATTR_PERSISTENT
						 ? "persistent" : "auto-release"));
	if (r->rec.attrs & VSS_CATALOG_ATTR_NO_WRITERS)
		json_array_append_new(attrs, json_string("no-writers"));
	json_array_append_new(attrs, json_string("remote"));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:n, s:s, s:n, s:n, s:o, s:s,"
			 " s:i, s:i, s:n, s:n, s:n}",
			 "id", r->rec.id, "set", r->rec.set_id, "host", r->rec.host,
			 "volume", r->rec.volume, "target", given, "created", created,
			 "created_ns", (json_int_t)r->rec.created_ns, "device",
			 "provider", "remote", "path", "target_path", "attributes", attrs,
			 "state", r->owner ? "in-progress" : "remote", "diff_bytes", 0,
			 "seq", 0, "exposed", "schedule", "coordinator");
}

int svc_remote_delete(struct vss_service *svc, struct svc_remote *r, const char *why,
		      struct vss_error *err)
{
	json_t *reply, *result;
	bool theirs;
	int rc;

	svc_assert_locked(svc);
	rc = peer_call(svc, r->rec.host, "shadow.delete", json_pack("{s:s}", "shadow", r->rec.id),
		       &reply, &result, &theirs, err);
	json_decref(reply);
	/* Already gone there (deleted on that host, or not persistent and that
	 * vssd restarted): what was asked is done. */
	if (rc == 0 || (rc == -ENOENT && theirs)) {
		char set[37];

		vss_log("shadow %s on host %s (set %s) deleted: %s", r->rec.id, r->rec.host,
			r->rec.set_id, why);
		memcpy(set, r->rec.set_id, sizeof(set));
		remote_forget(svc, r);
		/* The set's one RBD group, once no member of it is left. */
		svc_rbd_set_released(svc, set);
		return 0;
	}
	r->owner = NULL;
	{
		char msg[VSS_ERROR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", err->msg);
		return vss_error_set(err, rc, "shadow %s on host %s could not be deleted (%s); "
				     "it stays listed here", r->rec.id, r->rec.host, msg);
	}
}

void svc_remotes_drop(struct vss_service *svc, struct conn *c, const char *set, const char *why)
{
	svc_assert_locked(svc);
	for (struct svc_remote *r = svc->remotes, *next; r; r = next) {
		struct vss_error e;

		next = r->next;
		if ((c && r->owner != c) || (set && strcmp(r->rec.set_id, set) != 0))
			continue;
		if (svc_remote_delete(svc, r, why, &e) < 0)
			vss_log("%s", e.msg);
	}
}

int svc_remotes_complete(struct vss_service *svc, struct conn *c, const char *set)
{
	int n = 0;

	for (struct svc_remote *r = svc->remotes; r; r = r->next)
		if (r->owner == c && strcmp(r->rec.set_id, set) == 0) {
			r->owner = NULL;
			n++;
		}
	return n;
}

bool svc_remotes_held_by(struct vss_service *svc, struct conn *c)
{
	for (struct svc_remote *r = svc->remotes; r; r = r->next)
		if (r->owner == c)
			return true;
	return false;
}
