/*
 * service/peer_msg.h - what hosts say to each other when one set spans
 * them (peer.h), and the peers file, parsed and checked (peer_msg.c).
 * Pure functions over bytes and JSON: no socket, no service, so that
 * tests/service/test_peer_msg.c checks them and fuzz_peer.c feeds them
 * hostile input.  Everything a peer sends is hostile: sizes are bounded,
 * every field is checked, and nothing a peer says is used as a path.
 */
#ifndef VSS_SERVICE_PEER_MSG_H
#define VSS_SERVICE_PEER_MSG_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include <vss/error.h>

#include "service/catalog.h"

#define SVC_PEER_NAME_MAX    VSS_CATALOG_HOST_MAX  /* bytes of a host's name */
#define SVC_PEERS_MAX        16                    /* hosts in the peers file */
#define SVC_PEER_SOCKET_MAX  107                   /* bytes of a socket path (sun_path) */
#define SVC_PEER_FILE_MAX    (64u << 10)           /* bytes of the peers file */
#define SVC_PEER_MSG_MAX     (256u << 10)          /* bytes of one message from a peer */
#define SVC_PEER_STR_MAX     4096                  /* bytes of a target or a string a
						    * peer reports (volume, device) */
#define SVC_PEER_TARGETS_MAX 64                    /* targets on one host (SVC_SET_MAX) */
#define SVC_PEER_WAIT_MAX_MS 600000u               /* the longest a peer waits for the
						    * coordinator's word to freeze */

/* One line of the peers file: a host's name and the Unix socket that
 * reaches its vssd (an SSH-forwarded one, in practice). */
struct svc_peer {
	char name[SVC_PEER_NAME_MAX + 1];
	char socket[SVC_PEER_SOCKET_MAX + 1];
};

struct svc_peer_conf {
	struct svc_peer peer[SVC_PEERS_MAX];
	size_t n;
};

/*
 * A host's name: 1 to SVC_PEER_NAME_MAX letters, digits, '.', '_' or '-',
 * beginning with a letter or a digit.  So it never begins with '/' nor holds
 * one, and HOST:TARGET cannot be read as a local path.
 */
bool svc_peer_name_ok(const char *s, size_t len);

/*
 * Whether the target @t names another host's target: HOST:TARGET, HOST a
 * name as above and TARGET not empty.  Then @host gets HOST and *@rest
 * points at TARGET in @t.  A local path holding ':' is written with a '/'
 * before it ("./a:b"); a volume name never holds one.
 */
bool svc_peer_target_split(const char *t, char host[SVC_PEER_NAME_MAX + 1], const char **rest);

/*
 * The peers file: lines "NAME SOCKET" (blanks between, '#' comments, blank
 * lines), at most SVC_PEERS_MAX, names unique, SOCKET an absolute path that
 * fits a sockaddr_un.  -EINVAL with the line's number and why.
 */
int svc_peer_conf_parse(const char *text, size_t len, struct svc_peer_conf *conf,
			struct vss_error *err);
const struct svc_peer *svc_peer_conf_find(const struct svc_peer_conf *conf, const char *name);

/* The arguments of peer.set, as a peer checks them (strings borrowed from
 * the JSON they came in). */
struct svc_peer_set_req {
	char set[37];                                  /* the set's ID, from the coordinator */
	char coordinator[SVC_PEER_NAME_MAX + 1];
	const char *targets[SVC_PEER_TARGETS_MAX];     /* volume names or absolute paths */
	size_t n;
	bool persistent, no_writers;
	unsigned int wait_ms;                          /* 1 to SVC_PEER_WAIT_MAX_MS */
	char rbd_fsid[37];                             /* the coordinator's Ceph cluster, or "" */
};

int svc_peer_set_req_parse(json_t *args, struct svc_peer_set_req *req, struct vss_error *err);

/* The steps of the exchange (peer.h): what a peer says it has done, and
 * what the coordinator tells it to do. */
enum svc_peer_step {
	SVC_PEER_PREPARED, SVC_PEER_FROZEN, SVC_PEER_COMMITTED,   /* peer -> coordinator */
	SVC_PEER_FREEZE, SVC_PEER_COMMIT, SVC_PEER_THAW,          /* coordinator -> peer */
	SVC_PEER_ABORT,
};

const char *svc_peer_step_name(enum svc_peer_step s);
/* {"version":1,"step":NAME}: a new reference. */
json_t *svc_peer_step_msg(enum svc_peer_step s);

/*
 * One message of the exchange: 1 with *@step for a step message; 0 with
 * *@result (borrowed from @msg) for a reply that reports success; the
 * reply's negative errno (its message, made one line, in @err) for a reply
 * that reports a failure; -EPROTO for anything else.
 */
int svc_peer_msg_parse(json_t *msg, enum svc_peer_step *step, json_t **result,
		       struct vss_error *err);

/* A member of the set as its host reported it (strings borrowed). */
struct svc_peer_member {
	char id[37];
	const char *target;     /* one of those asked for, in their order */
	const char *volume;     /* what it is of there */
	const char *device;     /* its device or directory there */
	const char *provider;
};

/*
 * peer.set's result: the set @set, one member per target of @targets (@n
 * of them, in that order), each with a shadow ID no other member has.
 * -EPROTO with why for anything else.
 */
int svc_peer_result_parse(json_t *result, const char *set, const char *const *targets,
			  size_t n, struct svc_peer_member *out, struct vss_error *err);

/*
 * One RBD image of a set that spans hosts on one Ceph cluster (doc/peers.md,
 * "One RBD group snapshot across hosts"): a peer's member in its "prepared"
 * (pool, image, image_id), or that image's snapshot in the coordinator's
 * "thaw" (pool, image, snap_id).
 */
#define SVC_PEER_RBD_NAME_MAX 96
#define SVC_PEER_RBD_ID_MAX   32
struct svc_peer_rbd {
	char pool[SVC_PEER_RBD_NAME_MAX + 1];
	char image[SVC_PEER_RBD_NAME_MAX + 1];
	char image_id[SVC_PEER_RBD_ID_MAX + 1];      /* "prepared" */
	uint64_t snap_id;                            /* "thaw": at least 1 */
};

/*
 * @msg's "rbd" (absent: *@n is 0): an array of at most @max objects, each
 * with "pool" and "image" (1 to 96 letters, digits, '.', '_' or '-', not
 * beginning with '.' or '-', as vss takes RBD names), and with @snaps an
 * integer "snap_id" of at least 1, else an "image_id" of 1 to 32 lower-case
 * letters and digits; no image twice.  -EPROTO with why for anything else.
 */
int svc_peer_rbd_parse(json_t *msg, bool snaps, struct svc_peer_rbd *out, size_t max,
		       size_t *n, struct vss_error *err);

/* Whether @s is a shadow or set ID as vssd writes them (a UUID, lower case). */
bool svc_peer_id_ok(const char *s);

#endif
