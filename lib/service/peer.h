/*
 * service/peer.h - shadow copy sets that span hosts (peer.c; the design is
 * doc/peers.md, the messages peer_msg.h).
 *
 * One vssd per host.  The host a set is asked of (the coordinator) reaches
 * each other host's vssd (a peer) through a local Unix socket that the
 * peers file names (vssd --peers, default /etc/vss/peers.conf): an SSH
 * forwarding of that host's RUN/vssd.sock, made by ssh logged in as root
 * there.  So the peer sees root (SO_PEERCRED of the forwarded connection)
 * and takes the request; sshd authenticated both hosts and the user.
 *
 * A set with targets HOST:TARGET (shadows.c) is taken by the coordinator
 * as one set (set.c) whose steps it meets the peers at (set.h, enum
 * svc_set_step), over one connection per peer, peer.set:
 *
 *   coordinator                         peer (peer.set, as shadow.create
 *                                       with "hold" and writers)
 *   prepare its own members  -- peer.set -->  writers: prepare, freeze;
 *                            <-- prepared --  prepare its members
 *   guardian, then           -- freeze  -->   guardian, FIFREEZE
 *   FIFREEZE its own         <-- frozen  --
 *   commit its own           -- commit  -->   commit
 *                            <-- committed --
 *   thaw its own             -- thaw    -->   thaw; writers: thaw,
 *   writers: thaw...         <-- reply  --    post-snapshot; held set
 *   records the members      -- set.complete --> the set is complete
 *
 * Every host is frozen before any commits, and has committed before any
 * thaws.  Each peer arms its own guardian with its own freeze bound, and
 * waits for each word of the coordinator only until that bound (or, before
 * the freeze, the wait the coordinator asked for): a coordinator that dies
 * or goes silent leaves nothing frozen, and its connection closing deletes
 * what the peer made (a held set).  The coordinator waits for each peer
 * only until its own bound (its peer timeout before the freeze); a peer
 * that fails, goes away or is late aborts the set everywhere.
 *
 * The coordinator records the other hosts' members (struct svc_remote,
 * svc->remotes, the catalog's remote_shadows): "list shadows" shows them,
 * deleting the set or one of them deletes it on its host (shadow.delete
 * there), or says it could not and keeps the record.  A peer records in
 * each of its shadows which host coordinated the set (rec.coordinator).
 *
 * Locking: svc->lock, as the shadows; remote calls are made with it held,
 * each bounded by the peer timeout.
 */
#ifndef VSS_SERVICE_PEER_H
#define VSS_SERVICE_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <vss/error.h>

#include "service/catalog.h"
#include "service/peer_msg.h"

struct conn;
struct svc_caller;
struct svc_set;
struct svc_set_sync;
struct vss_service;

#define SVC_PEERS_PATH       "/etc/vss/peers.conf"
#define SVC_PEER_TIMEOUT_MS  30000u     /* a peer's answer, but inside the freeze */

/* Another host's member of a set this host coordinated (svc->lock). */
struct svc_remote {
	struct svc_remote *next;
	struct vss_catalog_remote rec;  /* rec.target, rec.volume owned */
	struct conn *owner;             /* held with its set by this requester, or NULL */
};

/* ---- the coordinator: a set with other hosts' targets ---- */
struct svc_peer_set;
struct svc_peer_links;

/*
 * A requester's backup whose set has other hosts' targets: each peer runs
 * a backup of its own on the set's connection (backup.begin, so its
 * writers Identify; backup.prepare with every component), begun before
 * this host's writers get PrepareForSnapshot (svc_peer_backup_begin), so
 * that no host's writers freeze before every host's are prepared for
 * backup; then peer.set in that session; each keeps the set and the
 * session until the coordinator says backup.complete or backup.abort there
 * (svc_peer_links_end); the connection closing first aborts it there (its
 * writers get Abort, its part of the set is deleted).
 */
struct svc_peer_backup {
	const char *type;                 /* backup.begin's "type" */
	uint64_t lease_ms, hold_ms;       /* the coordinator's session's */
	unsigned int timeout_ms;          /* each writer event's deadline */
	struct svc_peer_set *ps;          /* begun, until the set takes it; owned: the
					   * caller's to svc_peer_set_free */
	struct svc_peer_links *links;     /* out: owned by the session, until it ends */
};

int svc_peer_set_new(struct vss_service *svc, struct svc_peer_set **out, struct vss_error *err);
/* Adds @target (HOST:TARGET, svc_peer_target_split) to the set: its host
 * must be in the peers file. */
int svc_peer_set_add(struct svc_peer_set *ps, const char *target, struct vss_error *err);
size_t svc_peer_set_count(const struct svc_peer_set *ps);
/* The hooks for svc_set_take (set.h), valid as long as @ps. */
const struct svc_set_sync *svc_peer_set_sync(struct svc_peer_set *ps, bool persistent,
					     bool no_writers);
/* Makes the set a requester's backup on every peer (@bk lives as long as @ps):
 * before svc_set_take. */
void svc_peer_set_backup(struct svc_peer_set *ps, struct svc_peer_backup *bk);
/*
 * A requester's backup with other hosts' targets among @targets (shadow.create's
 * "targets"; root's only): before this host's writers get PrepareForSnapshot,
 * connects to each of their hosts and begins the backup there
 * (backup.begin: its writers Identify; backup.prepare: PrepareForBackup),
 * all hosts at once, each bounded by the peer timeout.  bk->ps is then the
 * set's peers, begun (NULL when every target is this host's).  On failure
 * nothing is left begun anywhere (a closed connection aborts a peer's
 * backup) and the error names the host.  Without svc->lock.
 */
int svc_peer_backup_begin(struct vss_service *svc, const struct svc_caller *who,
			  json_t *targets, bool no_writers, struct svc_peer_backup *bk,
			  struct vss_error *err);
/*
 * After svc_set_take adopted the local members of @set: reads each peer's
 * reply, records its members (owned by @owner while the set is held) and
 * completes the set on each peer; appends a JSON object per member to
 * @shadows (as shadow.create's, with "host").  On failure the set's members
 * on every host are deleted (the local ones are the caller's to delete).
 */
int svc_peer_set_finish(struct svc_peer_set *ps, const struct svc_set *set, struct conn *owner,
			json_t *shadows, struct vss_error *err);
/* Closes what is still open: a peer that was not told to complete deletes
 * what it made. */
void svc_peer_set_free(struct svc_peer_set *ps);

/*
 * The end of a backup across hosts (svc->lock held): backup.complete
 * (@complete, with @succeeded) or backup.abort on each peer's connection,
 * then the connections are closed and *@links freed.  A host that does not
 * complete (gone, refusing, late) fails the call naming it, and the hosts
 * after it are told to abort; the members of @set on a host that aborted or
 * went away are forgotten here (its backup's end deleted them there).
 */
int svc_peer_links_end(struct vss_service *svc, struct svc_peer_links **links, const char *set,
		       bool complete, bool succeeded, const char *why, struct vss_error *err);
/*
 * While the backup holds its set, a thread watches @links: a peer's
 * connection closing (its vssd gone, the forwarding cut) or sending what it
 * was not asked for makes that host lost, and @on_lost(@ctx) is called
 * once, from that thread, with no lock of the service held; the backup is
 * then to be aborted everywhere (svc_peer_links_lost says why).  Stopped by
 * svc_peer_links_end.
 */
int svc_peer_links_watch(struct svc_peer_links *links, void (*on_lost)(void *ctx), void *ctx,
			 struct vss_error *err);
/* backup.status on each peer's connection: their leases run again from now.
 * A host that does not answer in the peer timeout is lost: -EIO and why. */
int svc_peer_links_renew(struct vss_service *svc, struct svc_peer_links *links,
			 struct vss_error *err);
/* Whether a host of @links was lost (the watcher, or a missed backup.status
 * answer), and why in @err. */
bool svc_peer_links_lost(struct svc_peer_links *links, struct vss_error *err);

/* ---- a peer: peer.set (root only) ---- */
int svc_op_peer_set(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		    json_t **res, struct vss_error *err);

/* ---- other hosts' members of this host's sets (svc->lock held) ---- */
/* At start: the records of the catalog (whether or not they still exist there). */
int svc_remotes_load(struct vss_service *svc, struct vss_error *err);
/* At stop: the members of sets that are not persistent are deleted on their
 * hosts (those that cannot be reached stay recorded), then the list is freed. */
void svc_remotes_close(struct vss_service *svc);
struct svc_remote *svc_remote_find(struct vss_service *svc, const char *id);
/* As "list shadows" shows it. */
json_t *svc_remote_json(const struct svc_remote *r);
/* Deletes @r on its host and forgets it; if its host cannot be reached or
 * refuses, keeps it (no longer owned by anyone) and says why. */
int svc_remote_delete(struct vss_service *svc, struct svc_remote *r, const char *why,
		      struct vss_error *err);
/* The members of @set (NULL: any) held by @c (NULL: by anyone or no one)
 * are deleted, as svc_remote_delete, failures logged. */
void svc_remotes_drop(struct vss_service *svc, struct conn *c, const char *set, const char *why);
/* set.complete and backup.complete of @set by @c: its members are no
 * longer held; how many. */
int svc_remotes_complete(struct vss_service *svc, struct conn *c, const char *set);
bool svc_remotes_held_by(struct vss_service *svc, struct conn *c);

#endif
