/*
 * service/set.h - the shadow set coordinator (set.c): takes one set of
 * shadows of several targets, of any providers, at one instant, or nothing.
 * No JSON and no requester here: the handlers (backup.c, shadows.c) parse
 * requests into struct svc_set_params and reply from struct svc_set, and
 * the writers' events around the set are backup.c's.
 */
#ifndef VSS_SERVICE_SET_H
#define VSS_SERVICE_SET_H

#include <stdbool.h>
#include <stddef.h>

#include <vss/cow.h>
#include <vss/error.h>

#include "provider/provider.h"

struct conn;
struct svc_shadow;
struct vss_service;

#define SVC_SET_MAX 64                   /* targets in one set */

/*
 * How the coordinator freezes filesystems: svc->freezer, svc_freezer_fs
 * (the guardian and FIFREEZE) unless a test gave its own.
 */
struct svc_freezer_ops {
	/* Before the guardian starts and again once it holds @dirs, with @on:
	 * makes each of their loop devices @loops (NULL: none) write through,
	 * so that nothing new is cached above the engine for them (the switch
	 * writes back what was; @switched[i] records that this set switched
	 * @loops[i]), and syncs @dirs, so that the freeze has little left to
	 * write.  After the thaw, without @on: gives the switched ones their
	 * cache back.  Failing only costs freeze time: returns nothing.  May
	 * be NULL. */
	void (*settle)(struct vss_service *svc, const char *const *dirs,
		       const char *const *loops, bool *switched, size_t n, bool on);
	/* Before the first freeze or hold: starts what thaws @dirs and resumes
	 * the held device-mapper devices @held on its own if vssd dies or the
	 * freeze lasts past svc->freeze_limit_ms (the guardian), and waits
	 * until it holds them.  *@guard is for release. */
	int (*guard)(struct vss_service *svc, const char *const *dirs, size_t n,
		     const dev_t *held, size_t nheld, void **guard, struct vss_error *err);
	/* FIFREEZE of the mount point @dir, refused unless it is still
	 * mounted from the loop device @loop (the volume @volume's), then a
	 * flush of @loop, so that nothing the filesystem wrote is left in a
	 * cache above the engine (whatever its barrier options). */
	int (*freeze)(const char *dir, const char *loop, const char *volume,
		      struct vss_error *err);
	/* FITHAW of @dir. */
	int (*thaw)(const char *dir, struct vss_error *err);
	/* Everything is thawed: ends @guard.  0, or -ETIMEDOUT if it had
	 * thawed on its own (the bound passed: what was taken under the freeze
	 * cannot be trusted). */
	int (*release)(void *guard);
};

extern const struct svc_freezer_ops svc_freezer_fs;

/*
 * A set that spans hosts (peer.h): the steps at which the coordinator and
 * each peer meet.  The coordinator's hook tells the peers to do what it is
 * about to do itself (freeze, commit, thaw) and waits for them to have done
 * it (prepared, frozen, committed); a peer's hook says what it has done and
 * waits for the coordinator's word to go on.  So every host is frozen
 * before any commits, and every host has committed before any thaws: each
 * host's shadows lie inside one window in which all are frozen.
 */
enum svc_set_step {
	SVC_SET_PREPARED,       /* every local member prepared; nothing frozen yet */
	SVC_SET_FREEZE,         /* the guardian holds what is to freeze; about to freeze */
	SVC_SET_FROZEN,         /* every local filesystem frozen, every hold held */
	SVC_SET_COMMIT,         /* about to commit */
	SVC_SET_COMMITTED,      /* every local member committed; still frozen */
	SVC_SET_THAW,           /* about to thaw */
};

struct svc_set;

struct svc_set_sync {
	/* At @step of @set: 0 to go on, or a negative errno and why (the set
	 * is aborted).  @deadline_ms (CLOCK_MONOTONIC, ms) is when this host's
	 * freeze bound runs out, from SVC_SET_FREEZE on (0 before). */
	int (*step)(void *ctx, const struct svc_set *set, enum svc_set_step step,
		    int64_t deadline_ms, struct vss_error *err);
	/* The set is being aborted (after a failed step or a local failure):
	 * tells the other hosts, without waiting for them.  Optional. */
	void (*abort)(void *ctx, const struct svc_set *set, const char *why);
	void *ctx;
	const char *set_id;             /* the set's ID (a peer: the coordinator's), or NULL */
	const char *coordinator;        /* a peer: the coordinator's host name, recorded with
	                                 * each shadow (catalog.h); else NULL */
};

/* What a set is asked for, as the handler read it. */
struct svc_set_params {
	const char *const *targets;      /* as the requester sees them (svc_caller_path) */
	size_t n;                        /* 1 to SVC_SET_MAX (0 with @sync: every target
	                                  * is another host's) */
	const char *provider;            /* forced for every target, or NULL */
	bool persistent, no_writers, allow_live;
	struct conn *owner;              /* held by this connection (shadows in progress
	                                  * until it completes the set), or NULL */
	const struct svc_set_sync *sync; /* a set that spans hosts (above), or NULL */
};

/* A set that was taken: its shadows are in the service's list. */
struct svc_set {
	vss_cow_id uuid;
	char id[37];                     /* uuid, as text */
	size_t n;                        /* members, in the order of the targets */
	struct svc_member m[SVC_SET_MAX];
	struct svc_shadow *shadows[SVC_SET_MAX];  /* m[i]'s shadow (in svc->shadows) */
	size_t nfreeze;                  /* filesystems frozen */
	double frozen_ms;                /* from the first freeze to the last thaw */
	double held_ms;                  /* how long the gates were closed */
};

/*
 * Takes a set of @p->n shadows (svc->lock held):
 *   1. select a provider per target (provider.h) and prepare it;
 *   2. start the guardian for the filesystems to freeze, then FIFREEZE
 *      each (svc->freezer);
 *   3. close every gate of the set (writes in flight finish, new ones wait);
 *   4. every member's provider commits: the set's single instant;
 *   5. open the gates, FITHAW in reverse order, release the guardian;
 *   6. adopt: each member becomes a listed shadow with its catalog row.
 * With p->sync, its step is called at each step of svc_set_step (a set
 * across hosts: peer.h); a step that fails aborts the set like any failure.
 * Any failure, before 6 or in it, aborts the set: every member prepared is
 * aborted (its shadow, if taken, deleted), every shadow adopted removed,
 * and nothing is left frozen or gated.  A freeze that lasted past
 * svc->freeze_limit_ms aborts it too.  On success *@out (svc_set_free)
 * says what was taken.
 */
int svc_set_take(struct vss_service *svc, const struct svc_set_params *p,
		 struct svc_set **out, struct vss_error *err);
void svc_set_free(struct svc_set *set);

#endif
