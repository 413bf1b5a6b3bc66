/*
 * service/catalog.c - the catalog in SQLite (see catalog.h).
 *
 * Schema, version 1 (PRAGMA user_version):
 *   volumes(name PK, size, block_size, backing, owns_backing, diff_path,
 *           storage_explicit, max_diff [-1 = unbounded], created_ns)
 *   shadows(id PK, set_id, volume, target, created_ns, attrs)
 * Durability: WAL journal with synchronous=FULL, so a committed change
 * survives a crash of vssd or of the machine.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include <vss/cow.h>

#include "service/catalog.h"

#define SCHEMA_VERSION 1

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

int vss_catalog_open(const char *path, struct vss_catalog **out, struct vss_error *err)
{
	static const char *schema =
		"CREATE TABLE IF NOT EXISTS volumes("
		" name TEXT PRIMARY KEY, size INTEGER NOT NULL,"
		" block_size INTEGER NOT NULL, backing TEXT NOT NULL,"
		" owns_backing INTEGER NOT NULL, diff_path TEXT NOT NULL,"
		" storage_explicit INTEGER NOT NULL, max_diff INTEGER NOT NULL,"
		" created_ns INTEGER NOT NULL);"
		"CREATE TABLE IF NOT EXISTS shadows("
		" id TEXT PRIMARY KEY, set_id TEXT NOT NULL, volume TEXT NOT NULL,"
		" target TEXT NOT NULL, created_ns INTEGER NOT NULL,"
		" attrs INTEGER NOT NULL);";
	struct vss_catalog *c = calloc(1, sizeof(*c));
	sqlite3_stmt *st;
	int version = 0, rc;

	*out = NULL;
	if (!c)
		return vss_error_set(err, -ENOMEM, "out of memory");
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
	if ((rc = exec(c, schema, err)) < 0 ||
	    (rc = exec(c, "PRAGMA user_version=1", err)) < 0)
		goto fail;
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

static int64_t max_to_db(uint64_t max)
{
	return max == VSS_COW_UNBOUNDED ? -1 : (int64_t)max;
}

int vss_catalog_volume_put(struct vss_catalog *c, const struct vss_catalog_volume *v,
			   struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "INSERT OR REPLACE INTO volumes VALUES(?,?,?,?,?,?,?,?,?)", err);

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
	return step_done(c, st, err, "saving a volume");
}

int vss_catalog_volume_delete(struct vss_catalog *c, const char *name,
			      struct vss_error *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = exec(c, "BEGIN IMMEDIATE", err)) < 0)
		return rc;
	st = prepare(c, "DELETE FROM shadows WHERE volume = ?", err);
	if (!st)
		goto fail;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (step_done(c, st, err, "deleting a volume's shadows") < 0)
		goto fail;
	st = prepare(c, "DELETE FROM volumes WHERE name = ?", err);
	if (!st)
		goto fail;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (step_done(c, st, err, "deleting a volume") < 0)
		goto fail;
	return exec(c, "COMMIT", err);
fail:
	exec(c, "ROLLBACK", NULL);
	return -EIO;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}

int vss_catalog_volume_each(struct vss_catalog *c,
			    int (*fn)(void *arg, const struct vss_catalog_volume *v),
			    void *arg, struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "SELECT name, size, block_size, backing, owns_backing,"
				   " diff_path, storage_explicit, max_diff, created_ns"
				   " FROM volumes ORDER BY name", err);
	int rc = 0, s;

	if (!st)
		return -EIO;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
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
		if ((rc = fn(arg, &v)) != 0)
			break;
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = db_error(c, err, "reading the volumes");
	sqlite3_finalize(st);
	return rc;
}

int vss_catalog_shadow_put(struct vss_catalog *c, const struct vss_catalog_shadow *s,
			   struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "INSERT OR REPLACE INTO shadows VALUES(?,?,?,?,?,?)", err);

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, s->set_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, s->volume, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, s->target ? s->target : s->volume, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)s->created_ns);
	sqlite3_bind_int64(st, 6, s->attrs);
	return step_done(c, st, err, "saving a shadow");
}

int vss_catalog_shadow_delete(struct vss_catalog *c, const char *id,
			      struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "DELETE FROM shadows WHERE id = ?", err);

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	return step_done(c, st, err, "deleting a shadow");
}

int vss_catalog_shadow_each(struct vss_catalog *c,
			    int (*fn)(void *arg, const struct vss_catalog_shadow *s),
			    void *arg, struct vss_error *err)
{
	sqlite3_stmt *st = prepare(c, "SELECT id, set_id, volume, target, created_ns, attrs"
				   " FROM shadows ORDER BY created_ns", err);
	int rc = 0, s;

	if (!st)
		return -EIO;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct vss_catalog_shadow sh = { 0 };

		snprintf(sh.id, sizeof(sh.id), "%s", col_text(st, 0));
		snprintf(sh.set_id, sizeof(sh.set_id), "%s", col_text(st, 1));
		snprintf(sh.volume, sizeof(sh.volume), "%s", col_text(st, 2));
		sh.target = (char *)col_text(st, 3);
		sh.created_ns = (uint64_t)sqlite3_column_int64(st, 4);
		sh.attrs = (uint32_t)sqlite3_column_int64(st, 5);
		if ((rc = fn(arg, &sh)) != 0)
			break;
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = db_error(c, err, "reading the shadows");
	sqlite3_finalize(st);
	return rc;
}
