/*
 * vss-writer-mariadb - a writer for MariaDB (and MySQL) servers, with the
 * server's own protocol for snapshot backups, on one connection per server
 * (a connection's end ends what it holds):
 *
 *   prepare_backup    a backup stamp per component: the binary log
 *                     position then ("binlog=FILE:POS gtid=..."), or
 *                     "binlog=off"
 *   prepare_snapshot  BACKUP STAGE START, FLUSH, BLOCK_DDL: the slow
 *                     parts (non-transactional tables flushed, DDL waits)
 *                     while InnoDB keeps committing
 *   freeze            BACKUP STAGE BLOCK_COMMIT: commits wait until thaw;
 *                     the binary log position at the instant is logged
 *   thaw              BACKUP STAGE END
 *   post_snapshot     in a backup, that position as each component's
 *                     backup stamp (prepare_backup's was a lower bound)
 *   abort             the connection closed (the server ends the stage)
 *   pre_restore       a server restored in place that runs is stopped with
 *                     its systemd unit; one without a unit is refused
 *   post_restore      the unit started again
 *
 * A server without backup stages (MariaDB before 10.4, MySQL), or one
 * configured with lock=ftwrl, gets FLUSH TABLES at prepare_snapshot,
 * FLUSH TABLES WITH READ LOCK at freeze and UNLOCK TABLES at thaw
 * instead, and the writer says so.  Each server is one database
 * component: its data directory (database files) and the InnoDB log
 * directory (log files).
 * The shadow is crash-consistent for InnoDB with every commit of the
 * instant; a copy started as a server recovers like after a crash.
 *
 * vss-writer-mariadb [--run-dir DIR] [--timeout SECONDS] [--once]
 *                    [--config FILE]
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mysql.h>

#include "writer_cli.h"

#define MARIADB_CLASS_ID "c6a0e1d7-52b4-4f8e-8d39-1b7f4e2a9c05"
#define MARIADB_LOGICAL_PATH "mariadb"
#define MAX_SERVERS 16
#define DEFAULT_CONFIG "/etc/vss/mariadb.conf"
#define WHY (2 * PATH_MAX + 512)

struct server {
	char name[128];
	char socket[PATH_MAX];          /* "" : host and port */
	char host[256];
	unsigned int port;
	char user[128];
	char password[256];
	char defaults_file[PATH_MAX];   /* read for the client's options, "" for none */
	char data_dir[PATH_MAX];        /* real path */
	char log_dir[PATH_MAX];         /* InnoDB's log directory, real path */
	char unit[256];                 /* its systemd unit, "" for none */
	enum { LOCK_AUTO, LOCK_STAGES, LOCK_FTWRL } lock;   /* lock=, configured */
	MYSQL *conn;                    /* from prepare_snapshot to thaw or abort */
	bool stages;                    /* BACKUP STAGE, not FTWRL */
	char frozen_at[1200];           /* the position at freeze, until post_snapshot */
};

struct servers {
	struct server s[MAX_SERVERS];
	int n;
	struct wcli_restore restore;    /* stopped and started around restores */
};

/* The client's error of the last connect_to() that failed. */
static unsigned int connect_errno;

static MYSQL *connect_to(const struct server *s, char *why, size_t len)
{
	MYSQL *m = mysql_init(NULL);
	unsigned int timeout = 10;

	if (!m) {
		snprintf(why, len, "server %s: out of memory", s->name);
		return NULL;
	}
	mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	if (s->defaults_file[0])
		mysql_options(m, MYSQL_READ_DEFAULT_FILE, s->defaults_file);
	if (!mysql_real_connect(m, s->socket[0] ? NULL : s->host, s->user[0] ? s->user : NULL,
				s->password[0] ? s->password : NULL, NULL, s->port,
				s->socket[0] ? s->socket : NULL, 0)) {
		snprintf(why, len, "server %s: cannot connect: %s", s->name, mysql_error(m));
		connect_errno = mysql_errno(m);
		mysql_close(m);
		return NULL;
	}
	return m;
}

/* @sql on @m; -EIO with the server's message in @why, -EACCES when the
 * account lacks a privilege (said which the writer needs). */
static int run(const struct server *s, MYSQL *m, const char *sql, char *why, size_t len)
{
	MYSQL_RES *r;

	if (mysql_query(m, sql) != 0) {
		/* ER_SPECIFIC_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR,
		 * ER_ACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR */
		unsigned int e = mysql_errno(m);
		bool denied = e == 1227 || e == 1044 || e == 1045 || e == 1142;

		snprintf(why, len, "server %s: %s: %s%s", s->name, sql, mysql_error(m),
			 denied ? " (vss-writer-mariadb's account needs the RELOAD privilege: "
			 "GRANT RELOAD ON *.* TO ...)" : "");
		return denied ? -EACCES : -EIO;
	}
	if ((r = mysql_store_result(m)))
		mysql_free_result(r);
	return 0;
}

/* The first row of @sql, its @n columns as strings copied to @out (each
 * @w bytes; NULL as ""); -ENOENT when there is no row. */
static int row(const struct server *s, MYSQL *m, const char *sql, int n, char *out, size_t w,
	       char *why, size_t len)
{
	MYSQL_RES *r;
	MYSQL_ROW v;
	int rc = 0;

	if (mysql_query(m, sql) != 0 || !(r = mysql_store_result(m))) {
		snprintf(why, len, "server %s: %s: %s", s->name, sql, mysql_error(m));
		return -EIO;
	}
	if (!(v = mysql_fetch_row(r)) || mysql_num_fields(r) < (unsigned int)n)
		rc = -ENOENT;
	for (int i = 0; rc == 0 && i < n; i++)
		snprintf(out + i * w, w, "%s", v[i] ? v[i] : "");
	mysql_free_result(r);
	return rc;
}

/* @path (relative to @base if it is) as a real directory owned by someone
 * else than root (mariadbd runs as its own user). */
static int own_dir(const struct server *s, const char *base, const char *path, char *out,
		   char *why, size_t len)
{
	char full[2 * PATH_MAX];
	struct stat st;

	snprintf(full, sizeof(full), "%s%s%s", path[0] == '/' ? "" : base,
		 path[0] == '/' ? "" : "/", path);
	if (!realpath(full, out) || stat(out, &st) < 0) {
		snprintf(why, len, "server %s: %s: %s", s->name, full, strerror(errno));
		return -ENOENT;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid == 0) {
		snprintf(why, len, "server %s: %s is not a directory of the server's", s->name,
			 out);
		return -EPERM;
	}
	return 0;
}

static int describe(struct server *s, char *why, size_t len)
{
	char v[2][PATH_MAX];
	MYSQL *m = connect_to(s, why, len);
	int rc;

	if (!m)
		return -ECONNREFUSED;
	rc = row(s, m, "SELECT @@datadir, coalesce(@@innodb_log_group_home_dir, '')", 2,
		 v[0], sizeof(v[0]), why, len);
	if (rc == 0)
		rc = own_dir(s, "/", v[0], s->data_dir, why, len);
	if (rc == 0)
		rc = own_dir(s, s->data_dir, v[1][0] ? v[1] : ".", s->log_dir, why, len);
	/* BACKUP STAGE came with MariaDB 10.4.1. */
	s->stages = strstr(mysql_get_server_info(m), "MariaDB") &&
		    mysql_get_server_version(m) >= 100401;
	if (rc == 0 && !s->stages && s->lock == LOCK_STAGES) {
		snprintf(why, len, "server %s (%s) has no BACKUP STAGE (lock=stages)", s->name,
			 mysql_get_server_info(m));
		rc = -EOPNOTSUPP;
	}
	if (rc == 0 && (!s->stages || s->lock == LOCK_FTWRL))
		wcli_say("server %s (%s) %s: FLUSH TABLES WITH READ LOCK at freeze instead, "
			 "which blocks every write until thaw", s->name, mysql_get_server_info(m),
			 s->stages ? "is configured with lock=ftwrl" : "has no BACKUP STAGE");
	s->stages &= s->lock != LOCK_FTWRL;
	mysql_close(m);
	return rc;
}

/* "binlog=FILE:POS gtid=G" (MariaDB's gtid_binlog_pos), or "binlog=off". */
static int position(const struct server *s, MYSQL *m, char *out, size_t olen, char *why,
		    size_t len)
{
	char v[2][512];
	int rc = row(s, m, "SHOW MASTER STATUS", 2, v[0], sizeof(v[0]), why, len);

	if (rc == -ENOENT) {
		snprintf(out, olen, "binlog=off");
		return 0;
	}
	if (rc < 0)
		return rc;
	snprintf(out, olen, "binlog=%s:%s", v[0], v[1]);
	if (s->stages && row(s, m, "SELECT @@gtid_binlog_pos", 1, v[0], sizeof(v[0]), why,
			     len) == 0 && v[0][0])
		snprintf(out + strlen(out), olen - strlen(out), " gtid=%s", v[0]);
	return 0;
}

static int stamp_of(void *data, const char *name, const char *prev,
		    enum vss_backup_type type, char *out, size_t olen, char *why, size_t wlen)
{
	struct servers *ss = data;

	for (int i = 0; i < ss->n; i++) {
		MYSQL *m;
		int rc;

		if (strcmp(ss->s[i].name, name) != 0)
			continue;
		if (!(m = connect_to(&ss->s[i], why, wlen)))
			return -ECONNREFUSED;
		rc = position(&ss->s[i], m, out, olen, why, wlen);
		mysql_close(m);
		return rc;
	}
	return -ENOENT;
}

static int on_prepare_backup(struct vss_writer *w, const struct vss_writer_event *ev,
			     void *data)
{
	return wcli_set_stamps(w, ev, MARIADB_LOGICAL_PATH, stamp_of, data);
}

static void end_all(void *data)
{
	struct servers *ss = data;

	for (int i = 0; i < ss->n; i++)
		if (ss->s[i].conn) {
			mysql_close(ss->s[i].conn);
			ss->s[i].conn = NULL;
		}
}

/* @sqls on every server's own connection, in order; on a failure every
 * connection is closed (which ends what the server holds for it). */
static int each(struct vss_writer *w, struct servers *ss, bool open, const char *const *sqls)
{
	char why[WHY];

	for (int i = 0; i < ss->n; i++) {
		struct server *s = &ss->s[i];
		int rc = 0;

		if (open) {
			if (s->conn)
				mysql_close(s->conn);
			if (!(s->conn = connect_to(s, why, sizeof(why))))
				rc = -ECONNREFUSED;
		} else if (!s->conn) {
			snprintf(why, sizeof(why), "server %s: no backup in progress", s->name);
			rc = -EINVAL;
		}
		for (int k = 0; rc == 0 && sqls[2 * k + !s->stages]; k++)
			rc = run(s, s->conn, sqls[2 * k + !s->stages], why, sizeof(why));
		if (rc < 0) {
			end_all(ss);
			vss_writer_set_failure(w, rc == -EACCES ? VSS_WF_NONRETRYABLE :
					       VSS_WF_RETRYABLE, "%s", why);
			return rc;
		}
	}
	return 0;
}

static void forget_positions(struct servers *ss)
{
	for (int i = 0; i < ss->n; i++)
		ss->s[i].frozen_at[0] = '\0';
}

/* The statements of each event as pairs: with backup stages, and
 * without; each column ends at its first NULL. */
static int on_prepare_snapshot(struct vss_writer *w, const struct vss_writer_event *ev,
			       void *data)
{
	static const char *const sqls[] = {
		"BACKUP STAGE START", "FLUSH TABLES", "BACKUP STAGE FLUSH", NULL,
		"BACKUP STAGE BLOCK_DDL", NULL, NULL, NULL,
	};

	forget_positions(data);
	return each(w, data, true, sqls);
}

static int on_freeze(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	static const char *const sqls[] = {
		"BACKUP STAGE BLOCK_COMMIT", "FLUSH TABLES WITH READ LOCK", NULL, NULL,
	};
	struct servers *ss = data;
	int rc = each(w, ss, false, sqls);

	for (int i = 0; rc == 0 && i < ss->n; i++) {
		struct server *s = &ss->s[i];
		char why[WHY];

		if (position(s, s->conn, s->frozen_at, sizeof(s->frozen_at), why,
			     sizeof(why)) == 0)
			wcli_say("server %s: frozen at %s", s->name, s->frozen_at);
		else
			s->frozen_at[0] = '\0';
	}
	return rc;
}

/* In a backup: the position at the instant as the stamp. */
static int on_post_snapshot(struct vss_writer *w, const struct vss_writer_event *ev,
			    void *data)
{
	struct servers *ss = data;

	for (int i = 0; i < ss->n; i++) {
		struct server *s = &ss->s[i];
		struct vss_bcd_component *c = wcli_component(ev->components,
							     MARIADB_LOGICAL_PATH, s->name);
		struct vss_error err = { 0 };

		if (c && s->frozen_at[0] && vss_bcd_set_backup_stamp(c, s->frozen_at, &err) < 0)
			wcli_say("server %s: %s", s->name, err.msg);
	}
	forget_positions(ss);
	return 0;
}

static int on_thaw(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	static const char *const sqls[] = {
		"BACKUP STAGE END", "UNLOCK TABLES", NULL, NULL,
	};
	int rc = each(w, data, false, sqls);

	end_all(data);
	return rc;
}

/* What stops and starts the servers around a restore in place
 * (struct wcli_restore): their units. */
static int served_find(void *data, const char *name)
{
	struct servers *ss = data;

	for (int i = 0; i < ss->n; i++)
		if (strcmp(ss->s[i].name, name) == 0)
			return i;
	return -1;
}

static const char *served_name(void *data, int i)
{
	return ((struct servers *)data)->s[i].name;
}

/* Running unless nothing answers: one that refuses the account (a
 * password changed) still has its files open. */
static bool served_running(void *data, int i)
{
	char why[WHY];
	MYSQL *m = connect_to(&((struct servers *)data)->s[i], why, sizeof(why));

	mysql_close(m);
	/* CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_SERVER_GONE_ERROR,
	 * CR_SERVER_LOST: no server there. */
	return m || (connect_errno != 2002 && connect_errno != 2003 &&
		     connect_errno != 2006 && connect_errno != 2013);
}

static const char *served_manager(void *data, int i)
{
	return ((struct servers *)data)->s[i].unit;
}

static int served_stop(void *data, int i, char *why, size_t len)
{
	return wcli_systemctl("stop", ((struct servers *)data)->s[i].unit, why, len);
}

static int served_start(void *data, int i, char *why, size_t len)
{
	return wcli_systemctl("start", ((struct servers *)data)->s[i].unit, why, len);
}

static int on_pre_restore(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct servers *ss = data;

	end_all(ss);
	return wcli_pre_restore(w, &ss->restore);
}

static int on_post_restore(struct vss_writer *w, const struct vss_writer_event *ev,
			   void *data)
{
	struct servers *ss = data;
	char why[WHY];
	int rc = wcli_start_stopped(&ss->restore, why, sizeof(why));

	if (rc < 0)
		vss_writer_set_failure(w, VSS_WF_RECOVERY_FAILED, "%s", why);
	return rc;
}

static int on_abort(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct servers *ss = data;
	char why[WHY];

	end_all(ss);
	forget_positions(ss);
	if (wcli_start_stopped(&ss->restore, why, sizeof(why)) < 0)
		wcli_say("%s", why);
	return 0;
}

static int add_component(struct vss_wmd *wmd, void *data, int i, struct vss_error *err)
{
	const struct server *s = &((struct servers *)data)->s[i];
	int rc = vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_DATABASE, .logical_path = MARIADB_LOGICAL_PATH, .name = s->name,
		.caption = "MariaDB server", .selectable = true,
		.selectable_for_restore = true }, err);

	if (rc == 0)
		rc = vss_wmd_add_file_set(wmd, MARIADB_LOGICAL_PATH, s->name,
					  &(struct vss_wmd_file_set){
			.kind = VSS_FSK_DATABASE, .path = s->data_dir, .file_spec = "*",
			.recursive = true, .backup_type_mask = VSS_FSBT_DEFAULT }, err);
	if (rc == 0)
		rc = vss_wmd_add_file_set(wmd, MARIADB_LOGICAL_PATH, s->name,
					  &(struct vss_wmd_file_set){
			.kind = VSS_FSK_LOG, .path = s->log_dir, .file_spec = "ib_logfile*",
			.backup_type_mask = VSS_FSBT_DEFAULT }, err);
	return rc;
}

/* One "key=value" of a server's line; false if the key is unknown or the
 * value too long. */
static bool set_key(struct server *s, const char *kv)
{
	static const struct { const char *key; size_t off, size; } keys[] = {
		{ "socket=", offsetof(struct server, socket), sizeof(((struct server *)0)->socket) },
		{ "host=", offsetof(struct server, host), sizeof(((struct server *)0)->host) },
		{ "user=", offsetof(struct server, user), sizeof(((struct server *)0)->user) },
		{ "password=", offsetof(struct server, password),
		  sizeof(((struct server *)0)->password) },
		{ "defaults-file=", offsetof(struct server, defaults_file),
		  sizeof(((struct server *)0)->defaults_file) },
	};

	if (strncmp(kv, "lock=", 5) == 0) {
		s->lock = strcmp(kv + 5, "stages") == 0 ? LOCK_STAGES :
			  strcmp(kv + 5, "ftwrl") == 0 ? LOCK_FTWRL : LOCK_AUTO;
		return s->lock != LOCK_AUTO || strcmp(kv + 5, "auto") == 0;
	}
	if (strncmp(kv, "port=", 5) == 0) {
		char *end;
		long v = strtol(kv + 5, &end, 10);

		s->port = (unsigned int)v;
		return !*end && v > 0 && v < 65536;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t kl = strlen(keys[i].key);

		if (strncmp(kv, keys[i].key, kl) == 0 && strlen(kv + kl) < keys[i].size) {
			strcpy((char *)s + keys[i].off, kv + kl);
			return true;
		}
	}
	return false;
}

/*
 * The configuration: one server a line, "NAME UNIT|- KEY=VALUE...", keys
 * socket, host, port, user, password, defaults-file, lock (auto, stages,
 * ftwrl); '#' starts a comment line.  How many, or -errno with the line said.
 */
static int read_config(const char *path, void *data)
{
	struct servers *ss = data;
	char line[4096];
	int no = 0, rc = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		wcli_say("%s: %s", path, strerror(errno));
		return -errno;
	}
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		char *save = NULL, *name, *unit, *kv;
		struct server *s;

		no++;
		line[strcspn(line, "\n")] = '\0';
		if (!(name = strtok_r(line, " \t", &save)) || name[0] == '#')
			continue;
		unit = strtok_r(NULL, " \t", &save);
		if (ss->n == MAX_SERVERS || !unit || strlen(name) >= sizeof(s->name) ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789._-") != strlen(name) || strlen(unit) >= sizeof(s->unit) ||
		    (strcmp(unit, "-") != 0 && (!strstr(unit, ".service") ||
		     strspn(unit, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789@._:-\\") != strlen(unit)))) {
			rc = -EINVAL;
			break;
		}
		s = &ss->s[ss->n++];
		memset(s, 0, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%s", name);
		snprintf(s->unit, sizeof(s->unit), "%s", strcmp(unit, "-") ? unit : "");
		snprintf(s->host, sizeof(s->host), "localhost");
		while (rc == 0 && (kv = strtok_r(NULL, " \t", &save)))
			if (!set_key(s, kv))
				rc = -EINVAL;
	}
	fclose(f);
	if (rc < 0)
		wcli_say("%s:%d: expected NAME UNIT|- KEY=VALUE... (at most %d servers; NAME of "
			 "letters, digits, '.', '_', '-'; UNIT a .service; keys socket, host, "
			 "port, user, password, defaults-file, lock=auto|stages|ftwrl)", path, no,
			 MAX_SERVERS);
	else if (ss->n == 0)
		wcli_say("%s: no server", path);
	if (rc < 0 || ss->n == 0)
		return rc < 0 ? rc : -EINVAL;
	return ss->n;
}

static int locate(void *data, int i, char *why, size_t len)
{
	return describe(&((struct servers *)data)->s[i], why, len);
}

int main(int argc, char **argv)
{
	static const struct vss_writer_handlers handlers = {
		.size = sizeof(struct vss_writer_handlers),
		.prepare_backup = on_prepare_backup, .prepare_snapshot = on_prepare_snapshot,
		.freeze = on_freeze, .thaw = on_thaw, .post_snapshot = on_post_snapshot,
		.abort = on_abort, .pre_restore = on_pre_restore, .post_restore = on_post_restore,
	};
	static struct servers ss = { .restore = {
		.logical_path = MARIADB_LOGICAL_PATH, .noun = "server", .data = &ss,
		.find = served_find, .name = served_name, .running = served_running,
		.manager = served_manager, .stop = served_stop, .start = served_start } };
	/* Stamps need "timestamped", which needs incremental: an incremental
	 * of the repository is a whole consistent copy too. */
	int rc = wcli_main(argc, argv, &(struct wcli_writer){
		.prog = "vss-writer-mariadb", .name = "mariadb", .class_id = MARIADB_CLASS_ID,
		.schema = VSS_BS_COPY | VSS_BS_INCREMENTAL | VSS_BS_TIMESTAMPED,
		.default_config = DEFAULT_CONFIG, .noun = "server",
		.about = "A vss writer for MariaDB servers: BACKUP STAGE (or FLUSH TABLES WITH READ\n"
			 "LOCK) around every shadow copy set.\n",
		.config_help = "the servers, one a line: NAME UNIT|- KEY=VALUE...",
		.handlers = &handlers, .data = &ss, .load = read_config, .locate = locate,
		.add = add_component,
		/* It takes part in every restore: it stops the server (or refuses)
		 * before its files are written. */
		.restore = &(struct vss_wmd_restore_method){
			.method = VSS_RME_RESTORE_IF_CAN_REPLACE,
			.writer_restore = VSS_WRE_ALWAYS },
		.cleanup = end_all });

	mysql_library_end();
	return rc;
}
