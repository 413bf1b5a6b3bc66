/*
 * tests/service/test_catalog.c - the catalog keeps what it was told, across
 * closing and reopening; mounts go with the volume or shadow they are of;
 * version 1, 2, 3 and 4 catalogs are brought up to date and a schema from
 * the future is refused; other hosts' members of a set are kept.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <vss/cow.h>

#include "service/catalog.h"

static char dir[] = "/tmp/vss-catalog-XXXXXX";
static char path[64];

static int setup(void **state)
{
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/catalog.db", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static int count_volumes(void *arg, const struct vss_catalog_volume *v)
{
	int *n = arg;

	if (strcmp(v->name, "data") == 0) {
		assert_true(v->size == 1u << 30);
		assert_true(v->max_diff == VSS_COW_UNBOUNDED);
		assert_string_equal(v->backing, "/srv/data.img");
	} else {
		assert_string_equal(v->name, "logs");
		assert_true(v->max_diff == 123456);
		assert_true(v->storage_explicit);
	}
	(*n)++;
	return 0;
}

static int collect_shadow(void *arg, const struct vss_catalog_shadow *s)
{
	char *ids = arg;

	strcat(ids, s->id);
	strcat(ids, s->attrs & VSS_CATALOG_ATTR_PERSISTENT ? "+" : "-");
	return 0;
}

static void persists(void **state)
{
	struct vss_catalog *c;
	struct vss_error err;
	struct vss_catalog_volume v = { "data", 1u << 30, 16384, "/srv/data.img", false,
					"/srv/data.diff", false, VSS_COW_UNBOUNDED, 1, "", NULL,
					true };
	struct vss_catalog_shadow s = { "a", "set1", "data", "data", 10,
					VSS_CATALOG_ATTR_PERSISTENT, "", "" };
	char ids[64] = "";
	int n = 0;

	assert_int_equal(vss_catalog_open(path, &c, &err), 0);
	assert_int_equal(vss_catalog_volume_put(c, &v, &err), 0);
	snprintf(v.name, sizeof(v.name), "logs");
	v.max_diff = 123456;
	v.storage_explicit = true;
	assert_int_equal(vss_catalog_volume_put(c, &v, &err), 0);
	assert_int_equal(vss_catalog_shadow_put(c, &s, &err), 0);
	snprintf(s.id, sizeof(s.id), "b");
	s.attrs = 0;
	s.created_ns = 20;
	assert_int_equal(vss_catalog_shadow_put(c, &s, &err), 0);
	snprintf(s.id, sizeof(s.id), "c");
	snprintf(s.volume, sizeof(s.volume), "logs");
	s.created_ns = 30;
	assert_int_equal(vss_catalog_shadow_put(c, &s, &err), 0);
	vss_catalog_close(c);

	assert_int_equal(vss_catalog_open(path, &c, &err), 0);
	assert_int_equal(vss_catalog_volume_each(c, count_volumes, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(vss_catalog_shadow_each(c, collect_shadow, ids, &err), 0);
	assert_string_equal(ids, "a+b-c-");
	/* Deleting a volume deletes its shadows' rows. */
	assert_int_equal(vss_catalog_volume_delete(c, "data", &err), 0);
	ids[0] = '\0';
	assert_int_equal(vss_catalog_shadow_each(c, collect_shadow, ids, &err), 0);
	assert_string_equal(ids, "c-");
	assert_int_equal(vss_catalog_shadow_delete(c, "c", &err), 0);
	vss_catalog_close(c);
}

static int collect_mount(void *arg, const struct vss_catalog_mount *m)
{
	char *out = arg;

	strcat(out, m->shadow ? "s:" : "v:");
	strcat(out, m->name);
	strcat(out, "@");
	strcat(out, m->dir);
	if (m->options[0] || m->fstype[0]) {
		strcat(out, "[");
		strcat(out, m->options);
		strcat(out, ",");
		strcat(out, m->fstype);
		strcat(out, "]");
	}
	strcat(out, " ");
	return 0;
}

static void mounts_follow_their_owners(void **state)
{
	struct vss_catalog *c;
	struct vss_error err;
	struct vss_catalog_volume v = { "vol", 1u << 30, 16384, "/srv/v.img", false,
					"/srv/v.diff", false, VSS_COW_UNBOUNDED, 1, "", NULL, false };
	struct vss_catalog_shadow s = { "s1", "set1", "vol", "vol", 10,
					VSS_CATALOG_ATTR_PERSISTENT, "", "" };
	struct vss_catalog_mount m = { false, "vol", "/mnt/v", "noatime", "ext4" };
	char out[512] = "";

	assert_int_equal(vss_catalog_open(path, &c, &err), 0);
	assert_int_equal(vss_catalog_volume_put(c, &v, &err), 0);
	assert_int_equal(vss_catalog_shadow_put(c, &s, &err), 0);
	snprintf(s.id, sizeof(s.id), "s2");
	assert_int_equal(vss_catalog_shadow_put(c, &s, &err), 0);
	assert_int_equal(vss_catalog_mount_put(c, &m, &err), 0);
	/* A shadow and a volume of the same name are two mounts. */
	m = (struct vss_catalog_mount){ true, "vol", "/exp/z", "", "" };
	assert_int_equal(vss_catalog_mount_put(c, &m, &err), 0);
	m = (struct vss_catalog_mount){ true, "s1", "/mnt/v/inside", "", "" };
	assert_int_equal(vss_catalog_mount_put(c, &m, &err), 0);
	m = (struct vss_catalog_mount){ true, "s2", "/exp/a", "", "" };
	assert_int_equal(vss_catalog_mount_put(c, &m, &err), 0);
	vss_catalog_close(c);

	assert_int_equal(vss_catalog_open(path, &c, &err), 0);
	assert_int_equal(vss_catalog_mount_each(c, collect_mount, out, &err), 0);
	assert_string_equal(out, "s:s2@/exp/a s:vol@/exp/z v:vol@/mnt/v[noatime,ext4] "
			    "s:s1@/mnt/v/inside ");
	/* Deleting a shadow deletes its exposure; deleting a mount, only it. */
	assert_int_equal(vss_catalog_shadow_delete(c, "s2", &err), 0);
	assert_int_equal(vss_catalog_mount_delete(c, true, "vol", &err), 0);
	assert_int_equal(vss_catalog_mount_delete(c, true, "nothing", &err), 0);
	out[0] = '\0';
	assert_int_equal(vss_catalog_mount_each(c, collect_mount, out, &err), 0);
	assert_string_equal(out, "v:vol@/mnt/v[noatime,ext4] s:s1@/mnt/v/inside ");
	/* Deleting a volume deletes its mount and its shadows' exposures. */
	assert_int_equal(vss_catalog_volume_delete(c, "vol", &err), 0);
	out[0] = '\0';
	assert_int_equal(vss_catalog_mount_each(c, collect_mount, out, &err), 0);
	assert_string_equal(out, "");
	vss_catalog_close(c);
}

/* A catalog as an older vssd left it: @sql run on a new database. */
static void make_db(const char *at, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(at, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* The tables of schema version 1 (version 2 added mounts). */
#define V1_TABLES \
	"CREATE TABLE volumes(name TEXT PRIMARY KEY, size INTEGER NOT NULL," \
	" block_size INTEGER NOT NULL, backing TEXT NOT NULL," \
	" owns_backing INTEGER NOT NULL, diff_path TEXT NOT NULL," \
	" storage_explicit INTEGER NOT NULL, max_diff INTEGER NOT NULL," \
	" created_ns INTEGER NOT NULL);" \
	"CREATE TABLE shadows(id TEXT PRIMARY KEY, set_id TEXT NOT NULL," \
	" volume TEXT NOT NULL, target TEXT NOT NULL, created_ns INTEGER NOT NULL," \
	" attrs INTEGER NOT NULL);"

static void migrates_version_1(void **state)
{
	static const char *v1 =
		V1_TABLES
		"INSERT INTO volumes VALUES('old', 1073741824, 16384, '/srv/data.img', 0,"
		" '/srv/data.diff', 1, 123456, 5);"
		"INSERT INTO shadows VALUES('x', 'set', 'old', 'old', 7, 1);"
		"PRAGMA user_version=1;";
	struct vss_catalog_mount m = { false, "old", "/mnt/old", "", "xfs" };
	struct vss_catalog *c;
	struct vss_error err;
	char v1_path[80], ids[64] = "", out[256] = "";
	sqlite3 *db;
	sqlite3_stmt *st;

	snprintf(v1_path, sizeof(v1_path), "%s/v1.db", dir);
	make_db(v1_path, v1);

	assert_int_equal(vss_catalog_open(v1_path, &c, &err), 0);
	assert_int_equal(vss_catalog_shadow_each(c, collect_shadow, ids, &err), 0);
	assert_string_equal(ids, "x+");
	assert_int_equal(vss_catalog_mount_each(c, collect_mount, out, &err), 0);
	assert_string_equal(out, "");
	assert_int_equal(vss_catalog_mount_put(c, &m, &err), 0);
	vss_catalog_close(c);

	assert_int_equal(sqlite3_open(v1_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 7);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(vss_catalog_open(v1_path, &c, &err), 0);
	assert_int_equal(vss_catalog_mount_each(c, collect_mount, out, &err), 0);
	assert_string_equal(out, "v:old@/mnt/old[,xfs] ");
	vss_catalog_close(c);
}

struct identity {
	const char *diff_id, *note;
};

static int check_identity(void *arg, const struct vss_catalog_volume *v)
{
	const struct identity *want = arg;

	if (strcmp(v->name, "old") != 0)
		return 0;
	assert_string_equal(v->diff_path, "/srv/data.diff");
	assert_true(v->max_diff == 123456 && v->storage_explicit);
	assert_string_equal(v->diff_id, want->diff_id);
	if (want->note) {
		assert_non_null(v->note);
		assert_string_equal(v->note, want->note);
	} else {
		assert_null(v->note);
	}
	return 1;
}

/* Version 2 gains the diff area's identity and the volume's note, empty;
 * both are kept from then on. */
static void migrates_version_2(void **state)
{
	static const char *v2 =
		V1_TABLES
		"CREATE TABLE mounts(kind TEXT NOT NULL, name TEXT NOT NULL, dir TEXT NOT NULL,"
		" options TEXT NOT NULL, fstype TEXT NOT NULL, PRIMARY KEY(kind, name));"
		"INSERT INTO volumes VALUES('old', 1073741824, 16384, '/srv/data.img', 0,"
		" '/srv/data.diff', 1, 123456, 5);"
		"INSERT INTO mounts VALUES('volume', 'old', '/mnt/old', '', 'ext4');"
		"PRAGMA user_version=2;";
	struct vss_catalog *c;
	struct vss_error err;
	char v2_path[80], out[256] = "";
	struct vss_catalog_volume v = { "old", 1u << 30, 16384, "/srv/data.img", false,
					"/srv/data.diff", true, 123456, 5,
					"00112233445566778899aabbccddeeff",
					"its diff area was lost", false };

	snprintf(v2_path, sizeof(v2_path), "%s/v2.db", dir);
	make_db(v2_path, v2);

	assert_int_equal(vss_catalog_open(v2_path, &c, &err), 0);
	/* The identity is learnt at the diff area's next open. */
	assert_int_equal(vss_catalog_volume_each(c, check_identity,
						 &(struct identity){ "", NULL }, &err), 1);
	assert_int_equal(vss_catalog_mount_each(c, collect_mount, out, &err), 0);
	assert_string_equal(out, "v:old@/mnt/old[,ext4] ");
	assert_int_equal(vss_catalog_volume_put(c, &v, &err), 0);
	vss_catalog_close(c);
	assert_int_equal(vss_catalog_open(v2_path, &c, &err), 0);
	assert_int_equal(vss_catalog_volume_each(c, check_identity,
						 &(struct identity){ v.diff_id, v.note }, &err), 1);
	/* No note is stored as none. */
	v.note = NULL;
	assert_int_equal(vss_catalog_volume_put(c, &v, &err), 0);
	assert_int_equal(vss_catalog_volume_each(c, check_identity,
						 &(struct identity){ v.diff_id, NULL }, &err), 1);
	vss_catalog_close(c);
}

static int collect_schedule(void *arg, const struct vss_catalog_schedule *s)
{
	char *out = arg;
	size_t len = strlen(out);

	snprintf(out + len, 256 - len, "%s:%s:%llu:%u:%u:%s:%lld:%s ", s->id, s->targets,
		 (unsigned long long)s->every_ns, s->keep[0], s->keep[4], s->boot_id,
		 (long long)s->slot_ns, s->last_error);
	return 0;
}

static int schedule_of(void *arg, const struct vss_catalog_shadow *s)
{
	char *out = arg;
	size_t len = strlen(out);

	snprintf(out + len, 256 - len, "%s=%s ", s->id, s->schedule);
	return 0;
}

/* Version 3 gains the schedules and the shadows' schedule, empty: every
 * shadow taken before was made by hand or a backup, and no schedule may
 * delete it. */
static void migrates_version_3(void **state)
{
	static const char *v3 =
		"CREATE TABLE volumes(name TEXT PRIMARY KEY, size INTEGER NOT NULL,"
		" block_size INTEGER NOT NULL, backing TEXT NOT NULL,"
		" owns_backing INTEGER NOT NULL, diff_path TEXT NOT NULL,"
		" storage_explicit INTEGER NOT NULL, max_diff INTEGER NOT NULL,"
		" created_ns INTEGER NOT NULL, diff_id TEXT NOT NULL DEFAULT '',"
		" note TEXT NOT NULL DEFAULT '');"
		"CREATE TABLE shadows(id TEXT PRIMARY KEY, set_id TEXT NOT NULL,"
		" volume TEXT NOT NULL, target TEXT NOT NULL, created_ns INTEGER NOT NULL,"
		" attrs INTEGER NOT NULL);"
		"INSERT INTO shadows VALUES('x', 'set', 'old', 'old', 7, 1);"
		"PRAGMA user_version=3;";
	struct vss_catalog_schedule sc = { "s1", "[\"/srv\"]", 3600000000000ull, 0, 0,
					   { 24, 0, 0, 0, 2 }, 1, 9, 10, 11, 12, "boot",
					   0, ""  };
	struct vss_catalog_shadow sh = { "y", "set2", "old", "old", 8, 1, "s1", "" };
	struct vss_catalog *c;
	struct vss_error err;
	char path3[80], out[256] = "";

	snprintf(path3, sizeof(path3), "%s/v3.db", dir);
	make_db(path3, v3);
	assert_int_equal(vss_catalog_open(path3, &c, &err), 0);
	assert_int_equal(vss_catalog_shadow_each(c, schedule_of, out, &err), 0);
	assert_string_equal(out, "x= ");
	assert_int_equal(vss_catalog_schedule_put(c, &sc, &err), 0);
	assert_int_equal(vss_catalog_shadow_put(c, &sh, &err), 0);
	vss_catalog_close(c);
	assert_int_equal(vss_catalog_open(path3, &c, &err), 0);
	out[0] = '\0';
	assert_int_equal(vss_catalog_schedule_each(c, collect_schedule, out, &err), 0);
	assert_string_equal(out, "s1:[\"/srv\"]:3600000000000:24:2:boot:12: ");
	out[0] = '\0';
	assert_int_equal(vss_catalog_shadow_each(c, schedule_of, out, &err), 0);
	assert_string_equal(out, "x= y=s1 ");
	/* Deleting the schedule leaves its shadows, no longer its. */
	assert_int_equal(vss_catalog_schedule_delete(c, "s1", &err), 0);
	out[0] = '\0';
	assert_int_equal(vss_catalog_schedule_each(c, collect_schedule, out, &err), 0);
	assert_string_equal(out, "");
	assert_int_equal(vss_catalog_shadow_each(c, schedule_of, out, &err), 0);
	assert_string_equal(out, "x= y= ");
	vss_catalog_close(c);
}

static int collect_export(void *arg, const struct vss_catalog_export *x)
{
	char *out = arg;

	snprintf(out + strlen(out), 256 - strlen(out), "%s:%s:%s:%s:%u:%u:%s@%s ",
		 x->volume ? "v" : "s", x->name, x->since, x->socket, x->port,
		 (unsigned int)x->owner, x->tls, x->address);
	return 0;
}

/* A version 4 catalog gets the empty exports table; exports go with their
 * shadow or volume. */
static void exports_follow_their_owners(void **state)
{
	struct vss_catalog_volume v = { .name = "vol", .size = 1, .block_size = 16384,
					.backing = "/b", .diff_path = "/d" };
	struct vss_catalog_shadow sh = { "s1", "set", "vol", "vol", 8, 1, "", "" };
	struct vss_catalog_export xs = { false, "s1", "s0", "/run/x.sock", 0, 1000, "", "" };
	struct vss_catalog_export xv = { true, "vol", "", "", 10809, 0, "/etc/pki/nbd", "::1" };
	struct vss_catalog *c;
	struct vss_error err;
	char db[80], out[256] = "";

	snprintf(db, sizeof(db), "%s/exports.db", dir);
	assert_int_equal(vss_catalog_open(db, &c, &err), 0);
	assert_int_equal(vss_catalog_volume_put(c, &v, &err), 0);
	assert_int_equal(vss_catalog_shadow_put(c, &sh, &err), 0);
	assert_int_equal(vss_catalog_export_put(c, &xs, &err), 0);
	assert_int_equal(vss_catalog_export_put(c, &xv, &err), 0);
	vss_catalog_close(c);
	assert_int_equal(vss_catalog_open(db, &c, &err), 0);
	assert_int_equal(vss_catalog_export_each(c, collect_export, out, &err), 0);
	assert_string_equal(out, "s:s1:s0:/run/x.sock:0:1000:@ v:vol:::10809:0:/etc/pki/nbd@::1 ");
	assert_int_equal(vss_catalog_shadow_delete(c, "s1", &err), 0);
	out[0] = '\0';
	assert_int_equal(vss_catalog_export_each(c, collect_export, out, &err), 0);
	assert_string_equal(out, "v:vol:::10809:0:/etc/pki/nbd@::1 ");
	assert_int_equal(vss_catalog_export_delete(c, true, "vol", &err), 0);
	out[0] = '\0';
	assert_int_equal(vss_catalog_export_each(c, collect_export, out, &err), 0);
	assert_string_equal(out, "");
	vss_catalog_close(c);
}

static int coordinator_of(void *arg, const struct vss_catalog_shadow *s)
{
	char *out = arg;

	strcat(out, s->id);
	strcat(out, "@");
	strcat(out, s->coordinator);
	strcat(out, " ");
	return 0;
}

static int collect_remote(void *arg, const struct vss_catalog_remote *r)
{
	char *out = arg;
	char line[256];

	snprintf(line, sizeof(line), "%s:%s[%s,%s,%s,%llu,%u] ", r->host, r->id, r->set_id,
		 r->target, r->volume, (unsigned long long)r->created_ns, r->attrs);
	strcat(out, line);
	return 0;
}

/* A version 4 catalog gains the exports table and (version 6) the
 * shadows' coordinator, empty (every shadow so far was of this host's own
 * sets), and the records of other hosts' members of this host's sets, kept
 * across reopening, each deleted alone. */
static void migrates_version_4(void **state)
{
	static const char *v4 =
		"CREATE TABLE shadows(id TEXT PRIMARY KEY, set_id TEXT NOT NULL,"
		" volume TEXT NOT NULL, target TEXT NOT NULL, created_ns INTEGER NOT NULL,"
		" attrs INTEGER NOT NULL, schedule TEXT NOT NULL DEFAULT '');"
		"CREATE TABLE volumes(name TEXT PRIMARY KEY, size INTEGER NOT NULL,"
		" block_size INTEGER NOT NULL, backing TEXT NOT NULL,"
		" owns_backing INTEGER NOT NULL, diff_path TEXT NOT NULL,"
		" storage_explicit INTEGER NOT NULL, max_diff INTEGER NOT NULL,"
		" created_ns INTEGER NOT NULL, diff_id TEXT NOT NULL DEFAULT '',"
		" note TEXT NOT NULL DEFAULT '', gmt INTEGER NOT NULL DEFAULT 0);"
		"INSERT INTO shadows VALUES('x', 'set', 'old', 'old', 7, 1, '');"
		"PRAGMA user_version=4;";
	struct vss_catalog_shadow sh = { "y", "set2", "old", "old", 8, 1, "", "hosta" };
	struct vss_catalog_remote r = { "r1", "set3", "hostb", "data", "data", 9,
					VSS_CATALOG_ATTR_PERSISTENT };
	struct vss_catalog *c;
	struct vss_error err;
	char path4[80], out[512] = "";

	snprintf(path4, sizeof(path4), "%s/v4.db", dir);
	make_db(path4, v4);
	assert_int_equal(vss_catalog_open(path4, &c, &err), 0);
	assert_int_equal(vss_catalog_export_each(c, collect_export, out, &err), 0);
	assert_string_equal(out, "");
	assert_int_equal(vss_catalog_shadow_each(c, coordinator_of, out, &err), 0);
	assert_string_equal(out, "x@ ");
	assert_int_equal(vss_catalog_shadow_put(c, &sh, &err), 0);
	assert_int_equal(vss_catalog_remote_put(c, &r, &err), 0);
	snprintf(r.id, sizeof(r.id), "r2");
	r.target = "/srv/x";
	r.volume = "/srv";
	r.created_ns = 10;
	r.attrs = 0;
	assert_int_equal(vss_catalog_remote_put(c, &r, &err), 0);
	/* The same ID on another host is another member. */
	snprintf(r.host, sizeof(r.host), "hostc");
	r.created_ns = 11;
	assert_int_equal(vss_catalog_remote_put(c, &r, &err), 0);
	vss_catalog_close(c);
	assert_int_equal(vss_catalog_open(path4, &c, &err), 0);
	out[0] = '\0';
	assert_int_equal(vss_catalog_shadow_each(c, coordinator_of, out, &err), 0);
	assert_string_equal(out, "x@ y@hosta ");
	out[0] = '\0';
	assert_int_equal(vss_catalog_remote_each(c, collect_remote, out, &err), 0);
	assert_string_equal(out, "hostb:r1[set3,data,data,9,1] hostb:r2[set3,/srv/x,/srv,10,0] "
			    "hostc:r2[set3,/srv/x,/srv,11,0] ");
	assert_int_equal(vss_catalog_remote_delete(c, "hostb", "r2", &err), 0);
	out[0] = '\0';
	assert_int_equal(vss_catalog_remote_each(c, collect_remote, out, &err), 0);
	assert_string_equal(out, "hostb:r1[set3,data,data,9,1] hostc:r2[set3,/srv/x,/srv,11,0] ");
	vss_catalog_close(c);
}

/* A version 6 catalog's exports gain the address they listened on then:
 * a port without TLS 127.0.0.1, one with TLS every address (""), a socket
 * none. */
static void migrates_version_6(void **state)
{
	static const char *v6 =
		"CREATE TABLE exports(kind TEXT NOT NULL, name TEXT NOT NULL,"
		" since TEXT NOT NULL, socket TEXT NOT NULL, port INTEGER NOT NULL,"
		" owner INTEGER NOT NULL, tls TEXT NOT NULL, PRIMARY KEY(kind, name));"
		"INSERT INTO exports VALUES('shadow', 'a', '', '', 10809, 0, '');"
		"INSERT INTO exports VALUES('shadow', 'b', '', '', 10810, 0, '/pki');"
		"INSERT INTO exports VALUES('volume', 'c', '', '/run/c.sock', 0, 0, '');"
		"PRAGMA user_version=6;";
	struct vss_catalog *c;
	struct vss_error err;
	char path6[80], out[256] = "";

	snprintf(path6, sizeof(path6), "%s/v6.db", dir);
	make_db(path6, v6);
	assert_int_equal(vss_catalog_open(path6, &c, &err), 0);
	assert_int_equal(vss_catalog_export_each(c, collect_export, out, &err), 0);
	assert_string_equal(out, "s:a:::10809:0:@127.0.0.1 s:b:::10810:0:/pki@ "
			    "v:c::/run/c.sock:0:0:@ ");
	vss_catalog_close(c);
}

static void refuses_future_schema(void **state)
{
	struct vss_catalog *c;
	struct vss_error err;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(vss_catalog_open(path, &c, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "schema version 99"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(persists),
		cmocka_unit_test(mounts_follow_their_owners),
		cmocka_unit_test(migrates_version_1),
		cmocka_unit_test(migrates_version_2),
		cmocka_unit_test(migrates_version_3),
		cmocka_unit_test(exports_follow_their_owners),
		cmocka_unit_test(migrates_version_4),
		cmocka_unit_test(migrates_version_6),
		cmocka_unit_test(refuses_future_schema),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
