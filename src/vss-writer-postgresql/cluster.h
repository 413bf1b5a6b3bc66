/*
 * cluster.h - one PostgreSQL cluster as vss-writer-postgresql sees it: its
 * connection (libpq), its online backup (pg_backup_start and
 * pg_backup_stop on one connection) and the label files the backup leaves
 * in its data directory for a restore.  main.c wires these to the writer
 * events.
 */
#ifndef VSS_WRITER_POSTGRESQL_CLUSTER_H
#define VSS_WRITER_POSTGRESQL_CLUSTER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>

#define PG_MAX_TABLESPACES 64
#define PG_WHY (2 * PATH_MAX + 512)

/* The files a backup leaves in the data directory, in the shadow: what
 * pg_backup_stop returned.  Under these names the live server never reads
 * them; a restore renames them to backup_label and tablespace_map. */
#define PG_LABEL_FILE "vss_backup_label"
#define PG_MAP_FILE "vss_tablespace_map"

struct pg_cluster {
	char name[128];                 /* the component's name */
	char conninfo[1024];            /* libpq connection string or service=... */
	char unit[256];                 /* its systemd unit, "" for none */
	char data_dir[PATH_MAX];        /* real path */
	dev_t data_dev;                 /* and what it was then: a directory */
	ino_t data_ino;                 /* swapped for another is refused */
	char wal_dir[PATH_MAX];         /* real path of data_dir/pg_wal */
	char tablespace[PG_MAX_TABLESPACES][PATH_MAX];
	int ntablespaces;
	PGconn *conn;                   /* from pg_backup_start to pg_backup_stop; else NULL */
	char *label, *map;              /* what pg_backup_stop returned (map NULL if
					 * empty), until the next start or an abort */
	bool labelled;                  /* the label files are in data_dir (until thaw) */
	/* unit "pg_ctl[:LOG]": stopped and started with the cluster's own pg_ctl
	 * (LOG: pg_ctl's -l) instead of a systemd unit */
	bool pg_ctl;
	char ctl_log[PATH_MAX];         /* "" for none */
	char *ctl_opts;                 /* postmaster.opts' options, kept at stop */
	char ctl_path[PATH_MAX];        /* the pg_ctl beside the running postgres */
	uid_t ctl_uid;                  /* the data directory's owner then */
	gid_t ctl_gid;
};

/* Connects and learns the data directory, pg_wal and the tablespaces;
 * -errno with @why. */
int pg_cluster_describe(struct pg_cluster *c, char *why, size_t len);
/* The WAL position now, as a backup stamp ("lsn=X/Y timeline=T"). */
int pg_cluster_stamp(struct pg_cluster *c, char *stamp, size_t slen, char *why, size_t len);
/* Whether the WAL segment holding @prev's position (a stamp) is still in
 * pg_wal: 0, or -ENOENT with @why. */
int pg_cluster_wal_since(struct pg_cluster *c, const char *prev, char *why, size_t len);
/* Before a restore in place of @c (stopped): every entry of its pg_wal
 * moved into a new directory beside it (its path in @aside, "" when there
 * was nothing to move; how many in *@moved), so that recovery replays only
 * the WAL restored.  0 or -errno with @why; after a failure @aside names
 * the directory if it was made (what is in it goes back by wal_back). */
int pg_cluster_wal_aside(const struct pg_cluster *c, char *aside, size_t alen, int *moved,
			 char *why, size_t len);
/* A restore that wrote nothing aborted: what wal_aside moved into @aside
 * moved back.  0 or -errno with @why (what could not be moved stays). */
int pg_cluster_wal_back(const struct pg_cluster *c, const char *aside, char *why, size_t len);
/* Checks what an online backup needs (not a standby, wal_level, the
 * rights), then pg_backup_start(@label, fast) on a connection kept open. */
int pg_cluster_backup_start(struct pg_cluster *c, const char *label, char *why, size_t len);
/* pg_backup_stop on that connection; writes its backup_label and
 * tablespace_map into the data directory as PG_LABEL_FILE and PG_MAP_FILE
 * (owned as the directory) and closes the connection. */
int pg_cluster_backup_stop(struct pg_cluster *c, char *why, size_t len);
/* Ends whatever is in progress: closing the connection ends the server's
 * backup; removes the label files from the live data directory. */
void pg_cluster_backup_end(struct pg_cluster *c);
/* Forgets the label and map the last pg_backup_stop returned. */
void pg_cluster_label_forget(struct pg_cluster *c);

/*
 * The backup metadata of a component (the components document's
 * backup_metadata, kept with the backup and handed back at restore): the
 * label files pg_backup_stop returned, length-prefixed so that any bytes
 * survive:
 *
 *   vss-writer-postgresql 1\n
 *   backup_label N\n  then N bytes
 *   tablespace_map M\n then M bytes      (absent without tablespaces)
 *
 * Format: a new string in *@out (free()).  Parse: 0 with *@label and *@map
 * (NULL if absent) new strings, or -EBADMSG for anything else (the
 * document came back from a repository: hostile).
 */
int pg_metadata_format(const char *label, const char *map, char **out);
int pg_metadata_parse(const char *text, char **label, char **map);
/* Whether the server accepts connections now. */
bool pg_cluster_running(struct pg_cluster *c);
/* pg_ctl stop -m fast, as the data directory's owner, with the pg_ctl of
 * the running server's own installation; its command line (postmaster.opts)
 * is kept for pg_ctl_start.  0 or -errno with @why. */
int pg_cluster_ctl_stop(struct pg_cluster *c, char *why, size_t len);
/* pg_ctl start with that command line (and -l ctl_log), waiting for it to
 * accept connections (a recovery is then under way or done). */
int pg_cluster_ctl_start(struct pg_cluster *c, char *why, size_t len);

/* In a restored data directory @dir: the label files under their own
 * names (tablespace paths in @map_from[i] changed to @map_to[i]),
 * recovery.signal, and a restore_command if none is set, so that the
 * server starts with a recovery from the backup's label.  The label and
 * map are @label and @map (the backup metadata) if @label is not NULL,
 * else the PG_LABEL_FILE and PG_MAP_FILE restored with the data. */
int pg_restored_prepare(const char *dir, const char *label, const char *map,
			const char *const *map_from, const char *const *map_to, int nmap,
			char *why, size_t len);

#endif
