/*
 * service/peer_msg.c - the messages of a set across hosts and the peers
 * file, parsed and checked (peer_msg.h).  Nothing here trusts what it
 * reads: every string is bounded and checked for what it may hold, IDs
 * must be UUIDs, a peer's members must be the targets it was asked for.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"
#include "service/args.h"
#include "service/peer_msg.h"

static const char *const step_names[] = {
	[SVC_PEER_PREPARED] = "prepared", [SVC_PEER_FROZEN] = "frozen",
	[SVC_PEER_COMMITTED] = "committed", [SVC_PEER_FREEZE] = "freeze",
	[SVC_PEER_COMMIT] = "commit", [SVC_PEER_THAW] = "thaw", [SVC_PEER_ABORT] = "abort",
};

bool svc_peer_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > SVC_PEER_NAME_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

bool svc_peer_target_split(const char *t, char host[SVC_PEER_NAME_MAX + 1], const char **rest)
{
	const char *colon = strchr(t, ':');
	size_t n;

	if (!colon || !colon[1])
		return false;
	n = (size_t)(colon - t);
	if (!svc_peer_name_ok(t, n))
		return false;
	memcpy(host, t, n);
	host[n] = '\0';
	*rest = colon + 1;
	return true;
}

bool svc_peer_id_ok(const char *s)
{
	if (!s || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !(isdigit((unsigned char)s[i]) ||
					   (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

/* Whether @s (@len bytes) holds no control character, no NUL included. */
static bool printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* The next field of @line (blanks before it skipped): its start and
 * length, or NULL at the end. */
static const char *field(const char **line, const char *end, size_t *len)
{
	const char *p = *line, *start;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end)
		return NULL;
	start = p;
	while (p < end && *p != ' ' && *p != '\t')
		p++;
	*len = (size_t)(p - start);
	*line = p;
	return start;
}

int svc_peer_conf_parse(const char *text, size_t len, struct svc_peer_conf *conf,
			struct vss_error *err)
{
	const char *p = text, *end = text + len;
	unsigned int lineno = 0;

	memset(conf, 0, sizeof(*conf));
	if (len > SVC_PEER_FILE_MAX)
		return vss_error_set(err, -EFBIG, "larger than %u bytes", SVC_PEER_FILE_MAX);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line = p, *lend = eol ? eol : end, *name, *sock, *more;
		size_t nlen, slen, extra;
		struct svc_peer *peer;

		p = eol ? eol + 1 : end;
		lineno++;
		if (lend > line && lend[-1] == '\r')
			lend--;
		for (const char *c = line; c < lend; c++)
			if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
				return vss_error_set(err, -EINVAL, "line %u: a control character",
						     lineno);
		name = field(&line, lend, &nlen);
		if (!name || name[0] == '#')
			continue;
		sock = field(&line, lend, &slen);
		if (!sock)
			return vss_error_set(err, -EINVAL, "line %u: \"NAME SOCKET\" expected", lineno);
		if ((more = field(&line, lend, &extra)) && more[0] != '#')
			return vss_error_set(err, -EINVAL, "line %u: more than \"NAME SOCKET\"",
					     lineno);
		if (!svc_peer_name_ok(name, nlen))
			return vss_error_set(err, -EINVAL, "line %u: \"%.*s\" is not a host name "
					     "(1 to %d letters, digits, '.', '_' or '-', beginning "
					     "with a letter or a digit)", lineno,
					     (int)(nlen > 80 ? 80 : nlen), name, SVC_PEER_NAME_MAX);
		if (sock[0] != '/' || slen > SVC_PEER_SOCKET_MAX)
			return vss_error_set(err, -EINVAL, "line %u: the socket must be an absolute "
					     "path of at most %d bytes", lineno,
					     SVC_PEER_SOCKET_MAX);
		for (size_t i = 0; i < conf->n; i++)
			if (strlen(conf->peer[i].name) == nlen &&
			    memcmp(conf->peer[i].name, name, nlen) == 0)
				return vss_error_set(err, -EINVAL, "line %u: host %.*s is named "
						     "twice", lineno, (int)nlen, name);
		if (conf->n == SVC_PEERS_MAX)
			return vss_error_set(err, -E2BIG, "line %u: more than %d hosts", lineno,
					     SVC_PEERS_MAX);
		peer = &conf->peer[conf->n++];
		memcpy(peer->name, name, nlen);
		peer->name[nlen] = '\0';
		memcpy(peer->socket, sock, slen);
		peer->socket[slen] = '\0';
	}
	return 0;
}

const struct svc_peer *svc_peer_conf_find(const struct svc_peer_conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->n; i++)
		if (strcmp(conf->peer[i].name, name) == 0)
			return &conf->peer[i];
	return NULL;
}

/* A JSON string of 1 to SVC_PEER_STR_MAX bytes, no NUL, no control
 * character: its text, or NULL. */
static const char *str_ok(json_t *v)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);

	if (!s || len == 0 || len > SVC_PEER_STR_MAX || strlen(s) != len || !printable(s, len))
		return NULL;
	return s;
}

/* What a peer takes as a target: a volume name, or an absolute path (it
 * resolves both itself, as root); never another host's target. */
static bool target_ok(const char *t)
{
	size_t n = strlen(t);

	return t[0] == '/' || (n <= VSS_CATALOG_HOST_MAX + 1 &&
			       strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				      "0123456789._-") == n);
}

int svc_peer_set_req_parse(json_t *args, struct svc_peer_set_req *req, struct vss_error *err)
{
	json_t *targets = json_object_get(args, "targets"), *wait = json_object_get(args, "wait_ms");
	const char *set, *coord;
	int rc;

	memset(req, 0, sizeof(*req));
	req->wait_ms = 60000;
	if (!json_is_object(args))
		return vss_error_set(err, -EINVAL, "the arguments must be an object");
	if ((rc = svc_arg_str(args, "set", true, &set, err)) < 0 ||
	    (rc = svc_arg_str(args, "coordinator", true, &coord, err)) < 0 ||
	    (rc = svc_arg_bool(args, "persistent", &req->persistent, err)) < 0 ||
	    (rc = svc_arg_bool(args, "no_writers", &req->no_writers, err)) < 0)
		return rc;
	if (!svc_peer_id_ok(set))
		return vss_error_set(err, -EINVAL, "argument \"set\" must be a set ID");
	if (!svc_peer_name_ok(coord, strlen(coord)))
		return vss_error_set(err, -EINVAL, "argument \"coordinator\" must be a host name");
	memcpy(req->set, set, sizeof(req->set));
	snprintf(req->coordinator, sizeof(req->coordinator), "%s", coord);
	if (!json_is_array(targets) || json_array_size(targets) == 0 ||
	    json_array_size(targets) > SVC_PEER_TARGETS_MAX)
		return vss_error_set(err, -EINVAL, "argument \"targets\" must be an array of 1 to "
				     "%d targets", SVC_PEER_TARGETS_MAX);
	req->n = json_array_size(targets);
	for (size_t i = 0; i < req->n; i++) {
		const char *t = str_ok(json_array_get(targets, i));

		if (!t || !target_ok(t))
			return vss_error_set(err, -EINVAL, "target %zu must be a volume name or an "
					     "absolute path (of this host)", i + 1);
		req->targets[i] = t;
	}
	if (json_object_get(args, "rbd_fsid")) {
		const char *fsid = json_string_value(json_object_get(args, "rbd_fsid"));

		if (!svc_peer_id_ok(fsid))
			return vss_error_set(err, -EINVAL, "argument \"rbd_fsid\" must be a Ceph "
					     "cluster's fsid");
		memcpy(req->rbd_fsid, fsid, sizeof(req->rbd_fsid));
	}
	if (wait) {
		if (!json_is_integer(wait) || json_integer_value(wait) < 1 ||
		    json_integer_value(wait) > SVC_PEER_WAIT_MAX_MS)
			return vss_error_set(err, -EINVAL, "argument \"wait_ms\" must be 1 to %u",
					     SVC_PEER_WAIT_MAX_MS);
		req->wait_ms = (unsigned int)json_integer_value(wait);
	}
	return 0;
}

const char *svc_peer_step_name(enum svc_peer_step s)
{
	return (size_t)s < sizeof(step_names) / sizeof(step_names[0]) ? step_names[s] : "?";
}

json_t *svc_peer_step_msg(enum svc_peer_step s)
{
	return json_pack("{s:i, s:s}", "version", VSS_PROTO_VERSION, "step",
			 svc_peer_step_name(s));
}

int svc_peer_msg_parse(json_t *msg, enum svc_peer_step *step, json_t **result,
		       struct vss_error *err)
{
	json_t *ver = json_object_get(msg, "version"), *st = json_object_get(msg, "step");

	*result = NULL;
	if (!json_is_object(msg) || !json_is_integer(ver) ||
	    json_integer_value(ver) != VSS_PROTO_VERSION)
		return vss_error_set(err, -EPROTO, "a message without protocol version 1");
	if (st) {
		const char *name = json_string_value(st);

		for (size_t i = 0; name && i < sizeof(step_names) / sizeof(step_names[0]); i++)
			if (strcmp(name, step_names[i]) == 0) {
				*step = (enum svc_peer_step)i;
				return 1;
			}
		return vss_error_set(err, -EPROTO, "a message with an unknown step");
	}
	if (!json_is_boolean(json_object_get(msg, "ok")))
		return vss_error_set(err, -EPROTO, "a message that is neither a step nor a reply");
	if (json_is_true(json_object_get(msg, "ok")) &&
	    !json_is_object(json_object_get(msg, "result")))
		return vss_error_set(err, -EPROTO, "a reply without a result");
	if (json_is_false(json_object_get(msg, "ok")) &&
	    !json_is_object(json_object_get(msg, "error")))
		return vss_error_set(err, -EPROTO, "a failure without an error");
	return vss_proto_reply_parse(msg, result, err);
}

int svc_peer_result_parse(json_t *result, const char *set, const char *const *targets,
			  size_t n, struct svc_peer_member *out, struct vss_error *err)
{
	json_t *shadows = json_object_get(result, "shadows");
	const char *got = json_string_value(json_object_get(result, "set"));

	if (!json_is_object(result) || !got || strcmp(got, set) != 0)
		return vss_error_set(err, -EPROTO, "it reported another set than %s", set);
	if (!json_is_array(shadows) || json_array_size(shadows) != n)
		return vss_error_set(err, -EPROTO, "it reported %zu shadows for %zu targets",
				     json_array_size(shadows), n);
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_array_get(shadows, i);
		const char *id = json_string_value(json_object_get(o, "id"));
		struct svc_peer_member *m = &out[i];

		if (!json_is_object(o) || !svc_peer_id_ok(id))
			return vss_error_set(err, -EPROTO, "shadow %zu has no valid ID", i + 1);
		for (size_t j = 0; j < i; j++)
			if (strcmp(out[j].id, id) == 0)
				return vss_error_set(err, -EPROTO, "shadow %s is reported twice",
						     id);
		memcpy(m->id, id, sizeof(m->id));
		m->target = str_ok(json_object_get(o, "target"));
		m->volume = str_ok(json_object_get(o, "volume"));
		m->device = str_ok(json_object_get(o, "device"));
		m->provider = str_ok(json_object_get(o, "provider"));
		if (!m->target || strcmp(m->target, targets[i]) != 0)
			return vss_error_set(err, -EPROTO, "shadow %s is not of target %zu as asked",
					     id, i + 1);
		if (!m->volume || !m->device || !m->provider)
			return vss_error_set(err, -EPROTO, "shadow %s lacks its volume, device or "
					     "provider", id);
	}
	return 0;
}

/* An RBD pool or image name as vss takes them (rbd.c's rule). */
static bool rbd_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > SVC_PEER_RBD_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

static bool rbd_id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > SVC_PEER_RBD_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]))
			return false;
	return true;
}

int svc_peer_rbd_parse(json_t *msg, bool snaps, struct svc_peer_rbd *out, size_t max,
		       size_t *n, struct vss_error *err)
{
	json_t *arr = json_object_get(msg, "rbd"), *e;
	size_t i;

	*n = 0;
	if (!arr)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > max)
		return vss_error_set(err, -EPROTO, "\"rbd\" must be an array of at most %zu "
				     "images", max);
	json_array_foreach(arr, i, e) {
		struct svc_peer_rbd *r = &out[i];
		const char *pool = json_string_value(json_object_get(e, "pool"));
		const char *image = json_string_value(json_object_get(e, "image"));
		const char *id = json_string_value(json_object_get(e, "image_id"));
		json_t *snap = json_object_get(e, "snap_id");

		if (!json_is_object(e) || !rbd_name_ok(pool) || !rbd_name_ok(image))
			return vss_error_set(err, -EPROTO, "RBD image %zu: no pool and image that "
					     "vss would take", i + 1);
		if (snaps && (!json_is_integer(snap) || json_integer_value(snap) < 1))
			return vss_error_set(err, -EPROTO, "RBD image %zu: no snapshot ID", i + 1);
		if (!snaps && !rbd_id_ok(id))
			return vss_error_set(err, -EPROTO, "RBD image %zu: no image ID", i + 1);
		memset(r, 0, sizeof(*r));
		snprintf(r->pool, sizeof(r->pool), "%s", pool);
		snprintf(r->image, sizeof(r->image), "%s", image);
		if (snaps)
			r->snap_id = (uint64_t)json_integer_value(snap);
		else
			snprintf(r->image_id, sizeof(r->image_id), "%s", id);
		for (size_t k = 0; k < i; k++)
			if (strcmp(out[k].pool, r->pool) == 0 && strcmp(out[k].image, r->image) == 0)
				return vss_error_set(err, -EPROTO, "RBD image %s/%s twice", pool,
						     image);
	}
	*n = i;
	return 0;
}
