/*
 * service/catalog.h - what vssd must remember across restarts and crashes:
 * the managed volumes, their shadow storage settings, and what the service
 * knows about each shadow beyond the engine's own record (the target it was
 * taken for, its attributes).  The engine's diff area stays the truth about
 * which shadows exist; the catalog is reconciled with it on start.  It also
 * records what the administrator mounted (volume mounts, exposed shadows),
 * so that a restart brings them back (service.c, restore_mounts()), and
 * what it serves over NBD (export.c).
 *
 * Stored in an SQLite database (STATE/catalog.db, WAL, synchronous=FULL):
 * every call below is one transaction, durable when it returns.
 * Not thread-safe: the service calls it under its lock.
 */
#ifndef VSS_SERVICE_CATALOG_H
#define VSS_SERVICE_CATALOG_H

#include <stdbool.h>
#include <stdint.h>

#include <vss/error.h>

struct vss_catalog;

struct vss_catalog_volume {
	char name[65];
	uint64_t size;
	uint32_t block_size;
	char *backing;          /* the origin: a file or block device */
	bool owns_backing;      /* made by vssd in the state directory: deleted with the volume */
	char *diff_path;        /* the diff area file */
	bool storage_explicit;  /* set by "add shadowstorage" */
	uint64_t max_diff;      /* VSS_COW_UNBOUNDED if none */
	uint64_t created_ns;
	char diff_id[33];       /* the diff area's identity (its uuid, in hex), "" if not known yet */
	char *note;             /* why the volume is degraded (its diff area was lost...), or NULL */
	bool gmt;               /* its persistent shadows exposed under MOUNT/.snapshots (gmt.h) */
};

#define VSS_CATALOG_ATTR_PERSISTENT 0x1u
#define VSS_CATALOG_ATTR_NO_WRITERS 0x2u
#define VSS_CATALOG_ATTR_BTRFS      0x4u   /* made by the btrfs provider (volume "") */
#define VSS_CATALOG_ATTR_LIVE       0x8u   /* the live filesystem, read as is (volume "") */
#define VSS_CATALOG_ATTR_LVM        0x10u  /* made by the LVM provider (volume "") */
#define VSS_CATALOG_ATTR_RBD        0x20u  /* an RBD snapshot of an RBD volume (rbd/provider.c) */

#define VSS_CATALOG_HOST_MAX 63   /* a host's name in a set that spans hosts */

struct vss_catalog_shadow {
	char id[37];
	char set_id[37];
	char volume[65];
	char *target;           /* as the requester gave it */
	uint64_t created_ns;
	uint32_t attrs;         /* VSS_CATALOG_ATTR_* */
	char schedule[37];      /* the schedule that made it (its retention may delete it), or "" */
	/* Its set spans hosts and was coordinated by this host (peer.h), or "". */
	char coordinator[VSS_CATALOG_HOST_MAX + 1];
};

/*
 * A member of a set this host coordinated that lives on another host (a
 * peer, peer.h): what the coordinator knows of it, so that "list shadows"
 * shows it and deleting the set deletes it there too.
 */
struct vss_catalog_remote {
	char id[37];            /* its ID on that host */
	char set_id[37];
	char host[VSS_CATALOG_HOST_MAX + 1];   /* the peer's name (the peers file) */
	char *target;           /* as the requester gave it, without the host */
	char *volume;           /* what the peer said it is of (its volume or origin) */
	uint64_t created_ns;
	uint32_t attrs;         /* VSS_CATALOG_ATTR_PERSISTENT, _NO_WRITERS */
};

/* What vss mounted on the administrator's request: a volume ("vss volume
 * mount", read-write) or a shadow ("vss expose", read-only). */
struct vss_catalog_mount {
	bool shadow;            /* name is a shadow's ID, else a volume's name */
	char name[65];
	char *dir;              /* absolute, resolved */
	char *options;          /* volumes: as given (mount(8) syntax), "" for none; shadows: "" */
	char fstype[16];        /* volumes: what it held when it was mounted; shadows: "" */
};

/* A scheduled shadow (schedule.h): what it takes, when, what it keeps, and
 * where its timeline stands (timeline.h). */
struct vss_catalog_schedule {
	char id[37];
	char *targets;          /* a JSON array of strings */
	uint64_t every_ns;      /* > 0: every so long; 0: at at_min on days */
	int at_min;
	unsigned int days;
	unsigned int keep[5];   /* hourly, daily, weekly, monthly, yearly */
	uint32_t attrs;         /* VSS_CATALOG_ATTR_PERSISTENT, _NO_WRITERS */
	uint64_t created_ns;
	int64_t wall_ns, boot_ns, slot_ns;      /* struct svc_timeline_state */
	char boot_id[37];
	uint64_t last_run_ns;   /* wall time of the last run, 0 never */
	char *last_error;       /* why the last run failed, "" if it did not */
};

/* What vssd serves over NBD (export.h), so that a restart serves it again. */
struct vss_catalog_export {
	bool volume;            /* name is a volume's, else a shadow's ID */
	char name[65];
	char since[37];         /* the base of its changed-block map, or "" */
	char *socket;           /* the Unix socket, "" for a port */
	unsigned int port;      /* TCP, or 0 */
	uint32_t owner;         /* the uid that asked */
	char *tls;              /* the certificate directory, "" without TLS */
	char address[46];       /* with a port: the address it listens on, "" every one */
};

int vss_catalog_open(const char *path, struct vss_catalog **out, struct vss_error *err);
void vss_catalog_close(struct vss_catalog *c);

/* Inserts or replaces a volume's row. */
int vss_catalog_volume_put(struct vss_catalog *c, const struct vss_catalog_volume *v,
			   struct vss_error *err);
/* Deletes a volume's row, its shadows' rows and every mount of them. */
int vss_catalog_volume_delete(struct vss_catalog *c, const char *name,
			      struct vss_error *err);
/* Calls @fn for every volume, in name order; the record is valid during the call. */
int vss_catalog_volume_each(struct vss_catalog *c,
			    int (*fn)(void *arg, const struct vss_catalog_volume *v),
			    void *arg, struct vss_error *err);

int vss_catalog_shadow_put(struct vss_catalog *c, const struct vss_catalog_shadow *s,
			   struct vss_error *err);
/* Deletes a shadow's row and its mount (exposure). */
int vss_catalog_shadow_delete(struct vss_catalog *c, const char *id,
			      struct vss_error *err);
int vss_catalog_shadow_each(struct vss_catalog *c,
			    int (*fn)(void *arg, const struct vss_catalog_shadow *s),
			    void *arg, struct vss_error *err);

/* Inserts or replaces the record of another host's member @r. */
int vss_catalog_remote_put(struct vss_catalog *c, const struct vss_catalog_remote *r,
			   struct vss_error *err);
/* Deletes the record of member @id of host @host. */
int vss_catalog_remote_delete(struct vss_catalog *c, const char *host, const char *id,
			      struct vss_error *err);
/* Calls @fn for every record of another host's member, oldest first; the
 * record is valid during the call. */
int vss_catalog_remote_each(struct vss_catalog *c,
			    int (*fn)(void *arg, const struct vss_catalog_remote *r),
			    void *arg, struct vss_error *err);

/* Inserts or replaces the mount of @m's volume or shadow (one each). */
int vss_catalog_mount_put(struct vss_catalog *c, const struct vss_catalog_mount *m,
			  struct vss_error *err);
/* Deletes the mount of a volume (or, if @shadow, a shadow) @name, if any. */
int vss_catalog_mount_delete(struct vss_catalog *c, bool shadow, const char *name,
			     struct vss_error *err);
/* Calls @fn for every mount, in order of their directories (a mount inside
 * another's directory comes after it); the record is valid during the call. */
int vss_catalog_mount_each(struct vss_catalog *c,
			   int (*fn)(void *arg, const struct vss_catalog_mount *m),
			   void *arg, struct vss_error *err);

/* Inserts or replaces a schedule's row. */
int vss_catalog_schedule_put(struct vss_catalog *c, const struct vss_catalog_schedule *s,
			     struct vss_error *err);
/* Deletes a schedule's row; the shadows it made stay, no longer its. */
int vss_catalog_schedule_delete(struct vss_catalog *c, const char *id, struct vss_error *err);
/* Calls @fn for every schedule, oldest first; the record is valid during the call. */
int vss_catalog_schedule_each(struct vss_catalog *c,
			      int (*fn)(void *arg, const struct vss_catalog_schedule *s),
			      void *arg, struct vss_error *err);

/* Inserts or replaces the export of @x's volume or shadow (one each). */
int vss_catalog_export_put(struct vss_catalog *c, const struct vss_catalog_export *x,
			   struct vss_error *err);
/* Deletes the export of a shadow (or, if @volume, a volume) @name, if any. */
int vss_catalog_export_delete(struct vss_catalog *c, bool volume, const char *name,
			      struct vss_error *err);
/* Calls @fn for every export; the record is valid during the call. */
int vss_catalog_export_each(struct vss_catalog *c,
			    int (*fn)(void *arg, const struct vss_catalog_export *x),
			    void *arg, struct vss_error *err);

#endif
