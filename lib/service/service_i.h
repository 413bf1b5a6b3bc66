/*
 * service/service_i.h - the service's shared state (struct vss_service) and
 * service.c's helpers.  Each module of lib/service declares its own
 * functions in its own header (volumes.h, shadows.h, set.h, backup.h, ...);
 * this one holds only what they all reach through svc.
 *
 * Locking:
 * - svc->lock (a mutex) serialises every control operation and protects
 *   the volume and shadow lists, the catalog, and every field below marked
 *   "svc->lock".  It is held across slow work (mkfs, freeze), never taken
 *   on the I/O path.
 * - vol->gate (a writer-preferring rwlock) is taken for reading by every
 *   read, write and flush of the volume's device, and for writing while a
 *   diff area is moved or tracking starts (everything waits).
 * - vol->wgate (the same kind) is taken for reading inside vol->gate by
 *   every write and flush, and for writing by the coordinator while it
 *   takes a shadow set (all the set's volumes at once: the set's single
 *   instant): writes wait, reads go on.  Lock order: gate, then wgate.
 * - vol->refs counts the service's list and every device (the volume's and
 *   its shadows') that may still call into vol->cow; the last put closes
 *   the engine, from whatever thread drops it (volumes.h).
 * - svc->wreg->lock (writers.h) protects the writers, the backup slot and
 *   the holds; lock order: svc->lock, then svc->wreg->lock.
 * The transport never takes svc->lock, so holding it while the devices are
 * used (mkfs, mount, freeze) cannot deadlock.
 */
#ifndef VSS_SERVICE_SERVICE_I_H
#define VSS_SERVICE_SERVICE_I_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include <vss/cow.h>
#include <vss/error.h>

#include "service/catalog.h"
#include "service/lock.h"
#include "service/service.h"
#include "transport/transport.h"

#define VSS_NAME_MAX         64

struct svc_caller;
struct svc_volume;
struct svc_shadow;
struct svc_export;
struct svc_server;
struct svc_writer_registry;
struct svc_scheduler;
struct vss_provider_ops;
struct svc_freezer_ops;
struct svc_rbd;
struct svc_remote;
struct svc_retiring;

/* An event of the engine, queued for the housekeeper (service.c). */
struct svc_event {
	struct svc_event *next;
	enum vss_cow_event_type type;
	char volume[VSS_NAME_MAX + 1];
	char shadow[37];
};

struct vss_service {
	char *state_dir;
	char *run_dir;
	char *dev_dir;                          /* RUN/dev */
	char *operator_group;                   /* its members are operators (server.c) */
	unsigned int test_freeze_hold_ms;
	unsigned int freeze_limit_ms;           /* the guardian's bound (guardian.h) */
	unsigned int hold_lease_ms;             /* holds: the default lease (backup.c) */
	uint64_t hold_max_ms;                   /* holds: the longest one may last */
	int state_lock_fd;
	int run_lock_fd;
	struct svc_mutex lock;                  /* svc_lock(), svc_unlock() */
	struct vss_catalog *cat;
	struct vss_transport *tr;
	struct svc_volume *volumes;
	struct svc_volume *offline;             /* svc->lock: in the catalog, not served (cow NULL) */
	struct svc_shadow *shadows;             /* oldest first */
	struct svc_export *exports;             /* served over NBD (export.h) */
	unsigned int check_ms;                  /* the housekeeper looks at the diff areas this often */
	/* The providers, highest priority first, NULL-terminated: svc_providers
	 * (provider.h) unless a test gave its own; never changed. */
	const struct vss_provider_ops *const *providers;
	const struct svc_freezer_ops *freezer;  /* how sets freeze filesystems (set.h) */

	pthread_mutex_t ev_lock;                /* the engine's events, for the housekeeper */
	pthread_cond_t ev_cond;
	struct svc_event *ev_head;
	bool ev_stop;
	pthread_t ev_thread;
	bool ev_running;

	pthread_mutex_t retire_lock;            /* the shadows retire.c deletes */
	pthread_cond_t retire_cond;
	struct svc_retiring *retire_head;       /* retire_lock */
	bool retire_stop;                       /* retire_lock */
	pthread_t retire_thread;
	bool retire_running;

	struct svc_server *server;
	struct svc_writer_registry *wreg;       /* writers.h */
	struct svc_scheduler *sched;            /* schedule.h */
	struct svc_rbd *rbd;                    /* provider/rbd/provider.h, or NULL */
	/* Sets that span hosts (peer.h): */
	char *peers_path;                       /* the peers file */
	char host_name[64];                     /* this host's name, as its peers know it */
	unsigned int peer_timeout_ms;           /* a peer's answer, before and after a freeze */
	struct svc_remote *remotes;             /* svc->lock: other hosts' members of this
	                                         * host's sets */
};

/* ---- service.c ---- */
/* svc->lock (lock.h: it knows its holder, so what needs it held asserts so). */
static inline void svc_lock(struct vss_service *svc)
{
	svc_mutex_lock(&svc->lock);
}

static inline void svc_unlock(struct vss_service *svc)
{
	svc_mutex_unlock(&svc->lock);
}

#define svc_assert_locked(svc) assert(svc_mutex_held(&(svc)->lock))
void svc_id_str(const vss_cow_id id, char out[37]);
int svc_id_parse(const char *s, vss_cow_id id);
uint64_t svc_now_ns(void);
/* 8 random hex digits, to keep file names of successive volumes apart. */
const char *svc_short_tag(void);
void svc_time_str(uint64_t ns, char out[40]);
int svc_same_fs_as_state(struct vss_service *svc, dev_t dev, const char **what);
/* Room for one more in the array @items of @count elements of @size bytes
 * and capacity *@cap: @items, or a bigger copy (*@cap updated), or NULL
 * (out of memory; @items untouched). */
void *svc_grow(void *items, size_t *cap, size_t count, size_t size);
/* Operations about the service itself. */
int svc_op_status(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		  json_t **res, struct vss_error *err);

#endif
