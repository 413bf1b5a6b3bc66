/*
 * service/catalog.c - the catalog in SQLite (see catalog.h).
 *
 * Schema, version 7 (PRAGMA user_version):
 *   volumes(name PK, size, block_size, backing, owns_backing, diff_path,
 *           storage_explicit, max_diff [-1 = unbounded], created_ns,
 *           diff_id [hex uuid, "" unknown], note ["" none],   these two since 3
 *           gmt [0 or 1: shadows exposed for Samba])       since 4
 *   shadows(id PK, set_id, volume, target, created_ns, attrs,
 *           schedule [its schedule's ID, "" none],       schedule since 4
 *           coordinator [the host that coordinated its set, "" this one])
 *                                                       coordinator since 6
 *   remote_shadows(host, id, set_id, target, volume, created_ns, attrs,
 *                  PK(host, id))   another host's members of sets this
 *                                  host coordinated (peer.h); since 6
 *   mounts(kind ["volume" | "shadow"], name [volume name | shadow ID],
 *          dir, options, fstype, PK(kind, name))      since version 2
 *   schedules(id PK, targets [JSON array], every_ns, at_min, days,
 *             keep_hourly, keep_daily, keep_weekly, keep_monthly,
 *             keep_yearly, attrs, created_ns, wall_ns, boot_ns, boot_id,
 *             slot_ns, last_run_ns, last_error)          since version 4
 *   exports(kind ["volume" | "shadow"], name, since [base shadow ID, ""],
 *           socket [path, "" for a port], port [0 for a socket], owner
 *           [uid], tls [certificate directory, ""], PK(kind, name),
 *           address [with a port: where it listens, "" every address])
 *                                                        since version 5;
 *                                                        address since 7
 * Migration: open brings an older catalog up to this version in one
 * transaction (1 -> 2 adds the empty mounts table: nothing was mounted as
 * far as the catalog knows; 2 -> 3 adds the two columns, empty: the diff
 * area's identity is learnt at its next open; 3 -> 4 adds the empty
 * schedules table, the shadows' schedule column, "": no shadow was
 * made by a schedule, and the volumes' gmt column, 0; 4 -> 5 adds the
 * empty exports table: nothing was exported as far as it knows; 5 -> 6
 * adds the shadows' coordinator, "": every shadow so far was of this
 * host's own sets, and the empty remote_shadows table; 6 -> 7 adds the
 * exports' address: 127.0.0.1 for a port without TLS, "" (every address)
 * for one with TLS, where those listened before --listen).  A newer catalog
 * is refused, so that an older vssd never leaves rows it does not know
 * about stale.
 * Durability: WAL journal with synchronous=FULL, so a committed change
 * survives a crash of vssd or of the machine.
 * Permissions: the catalog names every backing file, diff area and mount
 * point: it is 0600 whatever the umask and whatever the state directory
 * allows (the directory may exist, readable, before vssd first runs).
 * SQLite gives its -wal and -shm files the database file's mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include <vss/cow.h>

#include "service/catalog.h"

#define SCHEMA_VERSION 7

struct vss_catalog {
	sqlite3 *db;
};

static int db_error(struct vss_catalog *c, struct vss_error *err, const char *what)
{
	return vss_error_set(err, -EIO, "catalog: %s: %s", what, sqlite3_errmsg(c->db));
}

static int exec(struct vss_catalog *c, const char *sql, struct vss_error *err)
{
	char *msg = NULL;

	if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		vss_error_set(err, -EIO, "catalog: %s", msg ? msg : "error");
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

/* Makes @path (created if missing) and the -wal and -shm files an older
 * vssd may have left readable, 0600. */
static int make_private(const char *path, struct vss_error *err)
{
	static const char *const sidecars[] = { "-wal", "-shm" };
	char side[4096];
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return vss_error_set(err, -errno, "cannot open the catalog %s: %s", path,
				     strerror(errno));
	if (fchmod(fd, 0600) < 0) {
		int rc = -errno;

		close(fd);
		return vss_error_set(err, rc, "cannot make the catalog %s private: %s", path,
				     strerror(-rc));
	}
	close(fd);
	for (size_t i = 0; i < sizeof(sidecars) / sizeof(sidecars[0]); i++) {
		snprintf(side, sizeof(side), "%s%s", path, sidecars[i]);
		if (chmod(side, 0600) < 0 && errno != ENOENT)
			return vss_error_set(err, -errno, "cannot make %s private: %s", side,
					     strerror(errno));
	}
	return 0;
}

int vss_catalog_open(const char *path, struct vss_catalog **out, struct vss_error *err)
{
	static const char *schema =
		"CREATE TABLE IF NOT EXISTS volumes("
		" name TEXT PRIMARY KEY, size INTEGER NOT NULL,"
		" block_size INTEGER NOT NULL, backing TEXT NOT NULL,"
		" owns_backing INTEGER NOT NULL, diff_path TEXT NOT NULL,"
		" storage_explicit INTEGER NOT NULL, max_diff INTEGER NOT NULL,"
		" created_ns INTEGER NOT NULL, diff_id TEXT NOT NULL DEFAULT '',"
		" note TEXT NOT NULL DEFAULT '', gmt INTEGER NOT NULL DEFAULT 0);"
		"CREATE TABLE IF NOT EXISTS shadows("
		" id TEXT PRIMARY KEY, set_id TEXT NOT NULL, volume TEXT NOT NULL,"
		" target TEXT NOT NULL, created_ns INTEGER NOT NULL,"
		" attrs INTEGER NOT NULL, schedule TEXT NOT NULL DEFAULT '',"
		" coordinator TEXT NOT NULL DEFAULT '');"
		"CREATE TABLE IF NOT EXISTS remote_shadows("
		" host TEXT NOT NULL, id TEXT NOT NULL, set_id TEXT NOT NULL,"
		" target TEXT NOT NULL, volume TEXT NOT NULL, created_ns INTEGER NOT NULL,"
		" attrs INTEGER NOT NULL, PRIMARY KEY(host, id));"
		"CREATE TABLE IF NOT EXISTS mounts("
		" kind TEXT NOT NULL, name TEXT NOT NULL, dir TEXT NOT NULL,"
		" options TEXT NOT NULL, fstype TEXT NOT NULL, PRIMARY KEY(kind, name));"
		"CREATE TABLE IF NOT EXISTS schedules("
		" id TEXT PRIMARY KEY, targets TEXT NOT NULL, every_ns INTEGER NOT NULL,"
		" at_min INTEGER NOT NULL, days INTEGER NOT NULL,"
		" keep_hourly INTEGER NOT NULL, keep_daily INTEGER NOT NULL,"
		" keep_weekly INTEGER NOT NULL, keep_monthly INTEGER NOT NULL,"
		" keep_yearly INTEGER NOT NULL, attrs INTEGER NOT NULL,"
		" created_ns INTEGER NOT NULL, wall_ns INTEGER NOT NULL,"
		" boot_ns INTEGER NOT NULL, boot_id TEXT NOT NULL, slot_ns INTEGER NOT NULL,"
		" last_run_ns INTEGER NOT NULL, last_error TEXT NOT NULL);"
		"CREATE TABLE IF NOT EXISTS exports("
		" kind TEXT NOT NULL, name TEXT NOT NULL, since TEXT NOT NULL,"
		" socket TEXT NOT NULL, port INTEGER NOT NULL, owner INTEGER NOT NULL,"
		" tls TEXT NOT NULL, address TEXT NOT NULL DEFAULT '',"
		" PRIMARY KEY(kind, name));"
		"PRAGMA user_version=7;";
	/* Version 1 and 2 volumes tables lack the columns of version 3. */
	static const char *to3 =
		"ALTER TABLE volumes ADD COLUMN diff_id TEXT NOT NULL DEFAULT '';"
		"ALTER TABLE volumes ADD COLUMN note TEXT NOT NULL DEFAULT '';";
	/* Shadows tables before version 4 lack the schedule. */
	static const char *to4 =
		"ALTER TABLE shadows ADD COLUMN schedule TEXT NOT NULL DEFAULT '';"
		"ALTER TABLE volumes ADD COLUMN gmt INTEGER NOT NULL DEFAULT 0;";
	/* Shadows tables before version 6 lack the coordinator. */
	static const char *to6 =
		"ALTER TABLE shadows ADD COLUMN coordinator TEXT NOT NULL DEFAULT '';";
	/* Exports tables of versions 5 and 6 lack the address: where each
	 * listened then (a port without TLS: 127.0.0.1; with TLS: every one). */
	static const char *to7 =
		"ALTER TABLE exports ADD COLUMN address TEXT NOT NULL DEFAULT '';"
		"UPDATE exports SET address = '127.0.0.1' WHERE port != 0 AND tls = '';";
	struct vss_catalog *c = calloc(1, sizeof(*c));
	sqlite3_stmt *st;
	int version = 0, rc;

	*out = NULL;
	if (!c)
		return vss_error_set(err, -ENOMEM, "out of memory");
	if ((rc = make_private(path, err)) < 0) {
		free(c);
		return rc;
	}
	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		rc = vss_error_set(err, -EIO, "cannot open the catalog %s: %s", path,
				   c->db ? sqlite3_errmsg(c->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(c->db, 5000);
	if ((rc = exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err)) < 0)
		goto fail;
	if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) {
		rc = db_error(c, err, "reading the schema version");
		goto fail;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > SCHEMA_VERSION) {
		rc = vss_error_set(err, -EPROTO, "the catalog %s has schema version %d; "
				   "this vssd knows up to %d", path, version, SCHEMA_VERSION);
		goto fail;
	}
	if (version < SCHEMA_VERSION) {
		if ((rc = exec(c, "BEGIN IMMEDIATE", err)) < 0)
			goto fail;
		if ((version >= 1 && version < 3 && (rc = exec(c, to3, err)) < 0) ||
		    (version >= 1 && version < 4 && (rc = exec(c, to4, err)) < 0) ||
		    (version >= 1 && version < 6 && (rc = exec(c, to6, err)) < 0) ||
		    (version >= 5 && version < 7 && (rc = exec(c, to7, err)) < 0) ||
		    (rc = exec(c, schema, err)) < 0 || (rc = exec(c, "COMMIT", err)) < 0) {
			exec(c, "ROLLBACK", NULL);
			goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	sqlite3_close(c->db);
	free(c);
	return rc;
}

void vss_catalog_close(struct vss_catalog *c)
{
	if (!c)
		return;
	sqlite3_close(c->db);
	free(c);
}

static sqlite3_stmt *prepare(struct vss_catalog *c, const char *sql, struct vss_error *err)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		db_error(c, err, "preparing a statement");
		return NULL;
	}
	return st;
}

static int step_done(struct vss_catalog *c, sqlite3_stmt *st, struct vss_error *err,
		     const char *what)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_error(c, err, what);

	sqlite3_finalize(st);
	return rc;
}

/* Runs each of @sql (one '?' each, bound to @key) in one transaction. */
static int delete_by_key(struct vss_catalog *c, const char *const *sql, size_t n,
			 const char *key, struct vss_error *err)
{
	int rc;

	if ((rc = exec(c, "BEGIN IMMEDIATE", err)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *st = prepare(c, sql[i], err);

		if (!st)
			goto fail;
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (step_done(c, st, err, "deleting") < 0)
			goto fail;
	}
	return exec(c, "COMMIT", err);
fail:
	exec(c, "ROLLBACK", NULL);
	return -EIO;
}

static int64_t max_to_db(uint64_t max)
{
	return max == VSS_COW_UNBOUNDED ? -1 : (int64_t)max;
}

int vss_catalog_volume_put(struct vss_catalog *c, const struct vss_catalog_volume *v,
			   struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "INSERT OR REPLACE INTO volumes(name, size, block_size,"
				   " backing, owns_backing, diff_path, storage_explicit, max_diff,"
				   " created_ns, diff_id, note, gmt) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
				   err);

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, v->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)v->size);
	sqlite3_bind_int64(st, 3, v->block_size);
	sqlite3_bind_text(st, 4, v->backing, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, v->owns_backing);
	sqlite3_bind_text(st, 6, v->diff_path, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, v->storage_explicit);
	sqlite3_bind_int64(st, 8, max_to_db(v->max_diff));
	sqlite3_bind_int64(st, 9, (int64_t)v->created_ns);
	sqlite3_bind_text(st, 10, v->diff_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, v->note ? v->note : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 12, v->gmt);
	return step_done(c, st, err, "saving a volume");
}

int vss_catalog_volume_delete(struct vss_catalog *c, const char *name,
			      struct vss_error *err)
{
	static const char *const sql[] = {
		("DELETE FROM mounts WHERE kind = 'shadow'"
		 " AND name IN (SELECT id FROM shadows WHERE volume = ?)"),
		("DELETE FROM exports WHERE kind = 'shadow'"
		 " AND name IN (SELECT id FROM shadows WHERE volume = ?)"),
		"DELETE FROM exports WHERE kind = 'volume' AND name = ?",
		"DELETE FROM shadows WHERE volume = ?",
		"DELETE FROM mounts WHERE kind = 'volume' AND name = ?",
		"DELETE FROM volumes WHERE name = ?",
	};

	return delete_by_key(c, sql, sizeof(sql) / sizeof(sql[0]), name, err);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}

/* Steps through @sql's rows, calling @row for each until it returns nonzero. */
static int each_row(struct vss_catalog *c, const char *sql,
		    int (*row)(sqlite3_stmt *st, void *ctx), void *ctx, const char *what,
		    struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, sql, err);
	int rc = 0, s;

	if (!st)
		return -EIO;
	while ((s = sqlite3_step(st)) == SQLITE_ROW)
		if ((rc = row(st, ctx)) != 0)
			break;
	if (rc == 0 && s != SQLITE_DONE)
		rc = db_error(c, err, what);
	sqlite3_finalize(st);
	return rc;
}

struct volume_each {
	int (*fn)(void *arg, const struct vss_catalog_volume *v);
	void *arg;
};

static int volume_row(sqlite3_stmt *st, void *ctx)
{
	struct volume_each *e = ctx;
	struct vss_catalog_volume v = { 0 };
	int64_t max = sqlite3_column_int64(st, 7);

	snprintf(v.name, sizeof(v.name), "%s", col_text(st, 0));
	v.size = (uint64_t)sqlite3_column_int64(st, 1);
	v.block_size = (uint32_t)sqlite3_column_int64(st, 2);
	v.backing = (char *)col_text(st, 3);
	v.owns_backing = sqlite3_column_int(st, 4) != 0;
	v.diff_path = (char *)col_text(st, 5);
	v.storage_explicit = sqlite3_column_int(st, 6) != 0;
	v.max_diff = max < 0 ? VSS_COW_UNBOUNDED : (uint64_t)max;
	v.created_ns = (uint64_t)sqlite3_column_int64(st, 8);
	snprintf(v.diff_id, sizeof(v.diff_id), "%s", col_text(st, 9));
	v.note = *col_text(st, 10) ? (char *)col_text(st, 10) : NULL;
	v.gmt = sqlite3_column_int(st, 11) != 0;
	return e->fn(e->arg, &v);
}

int vss_catalog_volume_each(struct vss_catalog *c,
			    int (*fn)(void *arg, const struct vss_catalog_volume *v),
			    void *arg, struct vss_error *err)
{
	struct volume_each e = { fn, arg };

	return each_row(c, "SELECT name, size, block_size, backing, owns_backing, diff_path,"
			" storage_explicit, max_diff, created_ns, diff_id, note, gmt FROM volumes"
			" ORDER BY name",
			volume_row, &e, "reading the volumes", err);
}

int vss_catalog_shadow_put(struct vss_catalog *c, const struct vss_catalog_shadow *s,
			   struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "INSERT OR REPLACE INTO shadows(id, set_id, volume, target,"
				   " created_ns, attrs, schedule, coordinator)"
				   " VALUES(?,?,?,?,?,?,?,?)", err);

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, s->set_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, s->volume, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, s->target ? s->target : s->volume, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)s->created_ns);
	sqlite3_bind_int64(st, 6, s->attrs);
	sqlite3_bind_text(st, 7, s->schedule, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, s->coordinator, -1, SQLITE_STATIC);
	return step_done(c, st, err, "saving a shadow");
}

int vss_catalog_shadow_delete(struct vss_catalog *c, const char *id,
			      struct vss_error *err)
{
	static const char *const sql[] = {
		"DELETE FROM mounts WHERE kind = 'shadow' AND name = ?",
		"DELETE FROM exports WHERE kind = 'shadow' AND name = ?",
		"DELETE FROM shadows WHERE id = ?",
	};

	return delete_by_key(c, sql, sizeof(sql) / sizeof(sql[0]), id, err);
}

struct shadow_each {
	int (*fn)(void *arg, const struct vss_catalog_shadow *s);
	void *arg;
};

static int shadow_row(sqlite3_stmt *st, void *ctx)
{
	struct shadow_each *e = ctx;
	struct vss_catalog_shadow sh = { 0 };

	snprintf(sh.id, sizeof(sh.id), "%s", col_text(st, 0));
	snprintf(sh.set_id, sizeof(sh.set_id), "%s", col_text(st, 1));
	snprintf(sh.volume, sizeof(sh.volume), "%s", col_text(st, 2));
	sh.target = (char *)col_text(st, 3);
	sh.created_ns = (uint64_t)sqlite3_column_int64(st, 4);
	sh.attrs = (uint32_t)sqlite3_column_int64(st, 5);
	snprintf(sh.schedule, sizeof(sh.schedule), "%s", col_text(st, 6));
	snprintf(sh.coordinator, sizeof(sh.coordinator), "%s", col_text(st, 7));
	return e->fn(e->arg, &sh);
}

int vss_catalog_shadow_each(struct vss_catalog *c,
			    int (*fn)(void *arg, const struct vss_catalog_shadow *s),
			    void *arg, struct vss_error *err)
{
	struct shadow_each e = { fn, arg };

	return each_row(c, "SELECT id, set_id, volume, target, created_ns, attrs, schedule,"
			" coordinator FROM shadows ORDER BY created_ns", shadow_row, &e,
			"reading the shadows", err);
}

int vss_catalog_remote_put(struct vss_catalog *c, const struct vss_catalog_remote *r,
			   struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "INSERT OR REPLACE INTO remote_shadows(host, id, set_id,"
				   " target, volume, created_ns, attrs) VALUES(?,?,?,?,?,?,?)", err);

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, r->host, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->set_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, r->target ? r->target : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, r->volume ? r->volume : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (int64_t)r->created_ns);
	sqlite3_bind_int64(st, 7, r->attrs);
	return step_done(c, st, err, "saving another host's shadow");
}

int vss_catalog_remote_delete(struct vss_catalog *c, const char *host, const char *id,
			      struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "DELETE FROM remote_shadows WHERE host = ? AND id = ?",
				   err);

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	return step_done(c, st, err, "deleting another host's shadow");
}

struct remote_each {
	int (*fn)(void *arg, const struct vss_catalog_remote *r);
	void *arg;
};

static int remote_row(sqlite3_stmt *st, void *ctx)
{
	struct remote_each *e = ctx;
	struct vss_catalog_remote r = { 0 };

	snprintf(r.host, sizeof(r.host), "%s", col_text(st, 0));
	snprintf(r.id, sizeof(r.id), "%s", col_text(st, 1));
	snprintf(r.set_id, sizeof(r.set_id), "%s", col_text(st, 2));
	r.target = (char *)col_text(st, 3);
	r.volume = (char *)col_text(st, 4);
	r.created_ns = (uint64_t)sqlite3_column_int64(st, 5);
	r.attrs = (uint32_t)sqlite3_column_int64(st, 6);
	return e->fn(e->arg, &r);
}

int vss_catalog_remote_each(struct vss_catalog *c,
			    int (*fn)(void *arg, const struct vss_catalog_remote *r),
			    void *arg, struct vss_error *err)
{
	struct remote_each e = { fn, arg };

	return each_row(c, "SELECT host, id, set_id, target, volume, created_ns, attrs"
			" FROM remote_shadows ORDER BY created_ns, host, id", remote_row, &e,
			"reading other hosts' shadows", err);
}

int vss_catalog_mount_put(struct vss_catalog *c, const struct vss_catalog_mount *m,
			  struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "INSERT OR REPLACE INTO mounts VALUES(?,?,?,?,?)", err);

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, m->shadow ? "shadow" : "volume", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, m->dir, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, m->options ? m->options : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, m->fstype, -1, SQLITE_STATIC);
	return step_done(c, st, err, "saving a mount");
}

int vss_catalog_mount_delete(struct vss_catalog *c, bool shadow, const char *name,
			     struct vss_error *err)
{
	static const char *const sql[2][1] = {
		{ "DELETE FROM mounts WHERE kind = 'volume' AND name = ?" },
		{ "DELETE FROM mounts WHERE kind = 'shadow' AND name = ?" },
	};

	return delete_by_key(c, sql[shadow], 1, name, err);
}

struct mount_each {
	int (*fn)(void *arg, const struct vss_catalog_mount *m);
	void *arg;
};

static int mount_row(sqlite3_stmt *st, void *ctx)
{
	struct mount_each *e = ctx;
	struct vss_catalog_mount m = { 0 };

	m.shadow = strcmp(col_text(st, 0), "shadow") == 0;
	snprintf(m.name, sizeof(m.name), "%s", col_text(st, 1));
	m.dir = (char *)col_text(st, 2);
	m.options = (char *)col_text(st, 3);
	snprintf(m.fstype, sizeof(m.fstype), "%s", col_text(st, 4));
	return e->fn(e->arg, &m);
}

int vss_catalog_mount_each(struct vss_catalog *c,
			   int (*fn)(void *arg, const struct vss_catalog_mount *m),
			   void *arg, struct vss_error *err)
{
	struct mount_each e = { fn, arg };

	return each_row(c, "SELECT kind, name, dir, options, fstype FROM mounts"
			" ORDER BY dir, kind DESC", mount_row, &e, "reading the mounts", err);
}

int vss_catalog_schedule_put(struct vss_catalog *c, const struct vss_catalog_schedule *s,
			     struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "INSERT OR REPLACE INTO schedules(id, targets, every_ns,"
				   " at_min, days, keep_hourly, keep_daily, keep_weekly,"
				   " keep_monthly, keep_yearly, attrs, created_ns, wall_ns, boot_ns,"
				   " boot_id, slot_ns, last_run_ns, last_error)"
				   " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", err);

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, s->targets, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)s->every_ns);
	sqlite3_bind_int(st, 4, s->at_min);
	sqlite3_bind_int(st, 5, (int)s->days);
	for (int i = 0; i < 5; i++)
		sqlite3_bind_int(st, 6 + i, (int)s->keep[i]);
	sqlite3_bind_int64(st, 11, s->attrs);
	sqlite3_bind_int64(st, 12, (int64_t)s->created_ns);
	sqlite3_bind_int64(st, 13, s->wall_ns);
	sqlite3_bind_int64(st, 14, s->boot_ns);
	sqlite3_bind_text(st, 15, s->boot_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 16, s->slot_ns);
	sqlite3_bind_int64(st, 17, (int64_t)s->last_run_ns);
	sqlite3_bind_text(st, 18, s->last_error ? s->last_error : "", -1, SQLITE_STATIC);
	return step_done(c, st, err, "saving a schedule");
}

int vss_catalog_schedule_delete(struct vss_catalog *c, const char *id, struct vss_error *err)
{
	static const char *const sql[] = {
		"UPDATE shadows SET schedule = '' WHERE schedule = ?",
		"DELETE FROM schedules WHERE id = ?",
	};

	return delete_by_key(c, sql, sizeof(sql) / sizeof(sql[0]), id, err);
}

struct schedule_each {
	int (*fn)(void *arg, const struct vss_catalog_schedule *s);
	void *arg;
};

static int schedule_row(sqlite3_stmt *st, void *ctx)
{
	struct schedule_each *e = ctx;
	struct vss_catalog_schedule s = { 0 };

	snprintf(s.id, sizeof(s.id), "%s", col_text(st, 0));
	s.targets = (char *)col_text(st, 1);
	s.every_ns = (uint64_t)sqlite3_column_int64(st, 2);
	s.at_min = sqlite3_column_int(st, 3);
	s.days = (unsigned int)sqlite3_column_int(st, 4);
	for (int i = 0; i < 5; i++)
		s.keep[i] = (unsigned int)sqlite3_column_int(st, 5 + i);
	s.attrs = (uint32_t)sqlite3_column_int64(st, 10);
	s.created_ns = (uint64_t)sqlite3_column_int64(st, 11);
	s.wall_ns = sqlite3_column_int64(st, 12);
	s.boot_ns = sqlite3_column_int64(st, 13);
	snprintf(s.boot_id, sizeof(s.boot_id), "%s", col_text(st, 14));
	s.slot_ns = sqlite3_column_int64(st, 15);
	s.last_run_ns = (uint64_t)sqlite3_column_int64(st, 16);
	s.last_error = (char *)col_text(st, 17);
	return e->fn(e->arg, &s);
}

int vss_catalog_schedule_each(struct vss_catalog *c,
			      int (*fn)(void *arg, const struct vss_catalog_schedule *s),
			      void *arg, struct vss_error *err)
{
	struct schedule_each e = { fn, arg };

	return each_row(c, "SELECT id, targets, every_ns, at_min, days, keep_hourly, keep_daily,"
			" keep_weekly, keep_monthly, keep_yearly, attrs, created_ns, wall_ns,"
			" boot_ns, boot_id, slot_ns, last_run_ns, last_error FROM schedules"
			" ORDER BY created_ns, id", schedule_row, &e, "reading the schedules", err);
}

int vss_catalog_export_put(struct vss_catalog *c, const struct vss_catalog_export *x,
			   struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "INSERT OR REPLACE INTO exports VALUES(?,?,?,?,?,?,?,?)",
				   err);

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, x->volume ? "volume" : "shadow", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, x->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, x->since, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, x->socket ? x->socket : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, x->port);
	sqlite3_bind_int64(st, 6, x->owner);
	sqlite3_bind_text(st, 7, x->tls ? x->tls : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, x->address, -1, SQLITE_STATIC);
	return step_done(c, st, err, "saving an export");
}

int vss_catalog_export_delete(struct vss_catalog *c, bool volume, const char *name,
			      struct vss_error *err)
{
	static const char *const sql[2][1] = {
		{ "DELETE FROM exports WHERE kind = 'shadow' AND name = ?" },
		{ "DELETE FROM exports WHERE kind = 'volume' AND name = ?" },
	};

	return delete_by_key(c, sql[volume], 1, name, err);
}

struct export_each {
	int (*fn)(void *arg, const struct vss_catalog_export *x);
	void *arg;
};

static int export_row(sqlite3_stmt *st, void *ctx)
{
	struct export_each *e = ctx;
	struct vss_catalog_export x = { 0 };

	x.volume = strcmp(col_text(st, 0), "volume") == 0;
	snprintf(x.name, sizeof(x.name), "%s", col_text(st, 1));
	snprintf(x.since, sizeof(x.since), "%s", col_text(st, 2));
	x.socket = (char *)col_text(st, 3);
	x.port = (unsigned int)sqlite3_column_int64(st, 4);
	x.owner = (uint32_t)sqlite3_column_int64(st, 5);
	x.tls = (char *)col_text(st, 6);
	snprintf(x.address, sizeof(x.address), "%s", col_text(st, 7));
	return e->fn(e->arg, &x);
}

int vss_catalog_export_each(struct vss_catalog *c,
			    int (*fn)(void *arg, const struct vss_catalog_export *x),
			    void *arg, struct vss_error *err)
{
	struct export_each e = { fn, arg };

	return each_row(c, "SELECT kind, name, since, socket, port, owner, tls, address"
			" FROM exports"
			" ORDER BY kind, name", export_row, &e, "reading the exports", err);
}
