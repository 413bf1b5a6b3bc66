/*
 * service/service.h - vssd as a library: the catalog, the volume manager,
 * the shadow set coordinator and the control socket, wired together.
 * src/vssd/main.c only parses arguments, calls vss_service_open(), waits
 * for SIGTERM and calls vss_service_close().
 */
#ifndef VSS_SERVICE_SERVICE_H
#define VSS_SERVICE_SERVICE_H

#include <vss/error.h>

struct vss_service;
struct vss_provider_ops;
struct svc_freezer_ops;
struct vss_transport;

/* The control socket's defaults (server.c; doc/protocol.md, "Limits"). */
#define VSS_SERVICE_MAX_CONNS          256     /* connections at once */
#define VSS_SERVICE_MAX_CONNS_PER_USER 32      /* from one uid other than root */
#define VSS_SERVICE_RESERVED_CONNS     64      /* of those, for root and operators only */
#define VSS_SERVICE_IDLE_TIMEOUT_MS    120000  /* no request started: closed */
#define VSS_SERVICE_FRAME_TIMEOUT_MS   10000   /* a request whole; each frame of a reply taken */
#define VSS_HOLD_LEASE_MS 120000u       /* holds: the default lease */
#define VSS_HOLD_MAX_MS   86400000ull   /* holds: the default longest */

struct vss_service_config {
	const char *state_dir;  /* catalog, volume backing files, diff areas */
	const char *run_dir;    /* socket, device tree, locks */
	/* The group whose members are operators (doc/security.md); NULL: "vss". */
	const char *operator_group;
	/* Tests only: keep the filesystems of a set frozen this long before
	 * taking it, to exercise the guardian and the hold bound.  0: off. */
	unsigned int test_freeze_hold_ms;
	/* The control socket's limits; 0: the default above.  reserved_conns
	 * must be less than max_conns. */
	unsigned int max_conns;
	unsigned int max_conns_per_user;
	unsigned int reserved_conns;
	unsigned int idle_timeout_ms;
	unsigned int frame_timeout_ms;
	/* Tests only: vssd sends frames of at most this many bytes (a reply
	 * over it takes several, as one over VSS_PROTO_MAX_FRAME does).  0: off. */
	unsigned int test_frame_max;
	/* Tests only: the freeze bound (guardian.h) instead of
	 * VSS_FREEZE_LIMIT_MS.  0: the default. */
	unsigned int test_freeze_limit_ms;
	/* Holds of backup sessions and held sets (doc/writers.md): the lease a
	 * requester gets unless it asks for another, and the longest any hold
	 * may last.  0: the defaults (writers.h). */
	unsigned int hold_lease_ms;
	unsigned long long hold_max_ms;
	/* Sets that span hosts (peer.h): the peers file (NULL: /etc/vss/peers.conf),
	 * this host's name as its peers know it (NULL: the first label of
	 * gethostname's), how long a peer may take to answer outside a freeze
	 * (0: 30 s). */
	const char *peers_path;
	const char *host_name;
	unsigned int peer_timeout_ms;
	/* RBD volumes (provider/rbd): the cluster's ceph.conf (NULL: Ceph's
	 * default search) and the client ID (NULL: "admin"). */
	const char *ceph_conf;
	const char *ceph_id;
	/* Tests only (tests/service/test_set.c: the coordinator and backups
	 * without root): the providers instead of vssd's (provider.h: highest
	 * priority first, NULL-terminated), the freezer instead of the guardian
	 * and FIFREEZE (set.h), the transport instead of FUSE (vssd starts and
	 * stops it, and its stop frees it).  NULL: the real ones. */
	const struct vss_provider_ops *const *test_providers;
	const struct svc_freezer_ops *test_freezer;
	struct vss_transport *test_transport;
};

/*
 * Starts the service: takes the state and run directories (one vssd each),
 * cleans up what a dead vssd left there (mounts, loop devices, the FUSE
 * tree, the socket), opens the catalog and every volume, serves their
 * devices and the persistent shadows', mounts again what the catalog says
 * was mounted (restore.c), and listens on RUN/vssd.sock.
 * On success *@out runs until vss_service_close().
 */
int vss_service_open(const struct vss_service_config *cfg, struct vss_service **out,
		     struct vss_error *err);

/* Clean shutdown: stops listening, unmounts what it mounted (keeping the
 * catalog's records of it, for the next start), deletes the non-persistent
 * shadows (and the records of their exposures), stops serving devices,
 * closes every volume. */
void vss_service_close(struct vss_service *svc);

#endif
