/*
 * cluster.c - a PostgreSQL cluster's online backup for vss-writer-postgresql
 * (cluster.h): libpq calls, the checks that make a refusal readable, and
 * the label files written into a data directory, live or restored.
 *
 * Files are written as root into directories the database's owner can
 * write: each is created with O_EXCL|O_NOFOLLOW relative to the directory
 * opened once (a symlink planted under its name is not followed), then
 * given to the directory's owner, who is the one to read it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <grp.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "cluster.h"

#define MAX_CONF (1 << 20)      /* postgresql.auto.conf read at restore */

static PGconn *connect_to(const struct pg_cluster *c, char *why, size_t len)
{
	/* Later values win: the cluster's string may set its own timeout. */
	const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
	const char *const vals[] = { "10", "vss-writer-postgresql", c->conninfo, NULL };
	PGconn *conn = PQconnectdbParams(keys, vals, 1);

	if (conn && PQstatus(conn) == CONNECTION_OK)
		return conn;
	snprintf(why, len, "cluster %s: cannot connect: %s", c->name,
		 conn ? PQerrorMessage(conn) : "out of memory");
	why[strcspn(why, "\n")] = '\0';
	PQfinish(conn);
	return NULL;
}

/* @sql with @n text parameters; the result if it returned rows, else NULL
 * with the server's message in @why. */
static PGresult *query(const struct pg_cluster *c, PGconn *conn, const char *sql, int n,
		       const char *const *params, char *why, size_t len)
{
	PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

	if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
		return r;
	snprintf(why, len, "cluster %s: %s", c->name,
		 r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
	why[strcspn(why, "\n")] = '\0';
	PQclear(r);
	return NULL;
}

/* @path's real path in @out, which must be a directory owned by someone
 * else than root (a server refuses to run as root: a path that is not its
 * own is a lie). */
static int own_dir(const struct pg_cluster *c, const char *what, const char *path, char *out,
		   char *why, size_t len)
{
	struct stat st;

	if (path[0] != '/' || !realpath(path, out) || stat(out, &st) < 0) {
		snprintf(why, len, "cluster %s: its %s %s: %s", c->name, what, path,
			 path[0] != '/' ? "not an absolute path" : strerror(errno));
		return -ENOENT;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid == 0) {
		snprintf(why, len, "cluster %s: its %s %s is not a directory of the server's",
			 c->name, what, out);
		return -EPERM;
	}
	return 0;
}

int pg_cluster_describe(struct pg_cluster *c, char *why, size_t len)
{
	char path[PATH_MAX + 16];
	PGconn *conn = connect_to(c, why, len);
	PGresult *r;
	int rc = 0;

	if (!conn)
		return -ECONNREFUSED;
	r = query(c, conn, "SELECT current_setting('data_directory')", 0, NULL, why, len);
	if (!r) {
		PQfinish(conn);
		return -EACCES;
	}
	rc = own_dir(c, "data directory", PQgetvalue(r, 0, 0), c->data_dir, why, len);
	PQclear(r);
	if (rc == 0) {
		struct stat st;

		if (stat(c->data_dir, &st) < 0)
			rc = -errno;
		c->data_dev = st.st_dev;
		c->data_ino = st.st_ino;
		c->labelled = true;     /* what a writer killed at freeze left */
		pg_cluster_backup_end(c);
	}
	snprintf(path, sizeof(path), "%s/PG_VERSION", c->data_dir);
	if (rc == 0 && access(path, F_OK) < 0) {
		snprintf(why, len, "cluster %s: %s has no PG_VERSION", c->name, c->data_dir);
		rc = -ENOENT;
	}
	snprintf(path, sizeof(path), "%s/pg_wal", c->data_dir);
	if (rc == 0)
		rc = own_dir(c, "pg_wal", path, c->wal_dir, why, len);
	r = rc ? NULL : query(c, conn, "SELECT coalesce(pg_tablespace_location(oid), '') "
			      "FROM pg_tablespace WHERE spcname NOT IN ('pg_default', "
			      "'pg_global') UNION ALL SELECT ''", 0, NULL, why, len);
	if (rc == 0 && !r)
		rc = -EIO;
	c->ntablespaces = 0;
	for (int i = 0; r && rc == 0 && i < PQntuples(r); i++) {
		const char *loc = PQgetvalue(r, i, 0);

		if (!loc[0])
			continue;
		if (c->ntablespaces == PG_MAX_TABLESPACES) {
			snprintf(why, len, "cluster %s: more than %d tablespaces", c->name,
				 PG_MAX_TABLESPACES);
			rc = -E2BIG;
			break;
		}
		rc = own_dir(c, "tablespace", loc, c->tablespace[c->ntablespaces++], why, len);
	}
	PQclear(r);
	PQfinish(conn);
	return rc;
}

int pg_cluster_stamp(struct pg_cluster *c, char *stamp, size_t slen, char *why, size_t len)
{
	PGconn *conn = connect_to(c, why, len);
	PGresult *r;

	if (!conn)
		return -ECONNREFUSED;
	r = query(c, conn, "SELECT pg_current_wal_lsn(), timeline_id FROM "
		  "pg_control_checkpoint()", 0, NULL, why, len);
	if (r)
		snprintf(stamp, slen, "lsn=%s timeline=%s", PQgetvalue(r, 0, 0),
			 PQgetvalue(r, 0, 1));
	PQclear(r);
	PQfinish(conn);
	return r ? 0 : -EIO;
}

int pg_cluster_wal_since(struct pg_cluster *c, const char *prev, char *why, size_t len)
{
	char lsn[64] = "", path[2 * PATH_MAX];
	PGconn *conn;
	PGresult *r;
	int rc = 0;

	if (sscanf(prev, "lsn=%63[0-9A-Fa-f/]", lsn) != 1) {
		snprintf(why, len, "cluster %s: the previous stamp is not one of this writer's: "
			 "%.200s", c->name, prev);
		return -EINVAL;
	}
	if (!(conn = connect_to(c, why, len)))
		return -ECONNREFUSED;
	r = query(c, conn, "SELECT pg_walfile_name($1::pg_lsn)", 1,
		  (const char *const[]){ lsn }, why, len);
	if (!r) {
		rc = -EIO;
	} else {
		snprintf(path, sizeof(path), "%s/%s", c->wal_dir, PQgetvalue(r, 0, 0));
		if (access(path, F_OK) < 0) {
			snprintf(why, len, "cluster %s: a log backup needs the WAL since the previous "
				 "backup (%s, segment %s), which is gone from pg_wal: keep it "
				 "(wal_keep_size, a replication slot) or take a full backup",
				 c->name, lsn, PQgetvalue(r, 0, 0));
			rc = -ENODATA;
		}
	}
	PQclear(r);
	PQfinish(conn);
	return rc;
}

int pg_cluster_backup_start(struct pg_cluster *c, const char *label, char *why, size_t len)
{
	bool v15;
	PGresult *r;
	int rc = 0;

	pg_cluster_backup_end(c);
	pg_cluster_label_forget(c);
	if (!(c->conn = connect_to(c, why, len)))
		return -ECONNREFUSED;
	v15 = PQserverVersion(c->conn) >= 150000;
	r = query(c, c->conn, v15 ?
		  "SELECT pg_is_in_recovery(), current_setting('wal_level'), current_user, "
		  "has_function_privilege('pg_backup_start(text, boolean)', 'EXECUTE') AND "
		  "has_function_privilege('pg_backup_stop(boolean)', 'EXECUTE')" :
		  "SELECT pg_is_in_recovery(), current_setting('wal_level'), current_user, "
		  "has_function_privilege('pg_start_backup(text, boolean, boolean)', 'EXECUTE') "
		  "AND has_function_privilege('pg_stop_backup(boolean, boolean)', 'EXECUTE')",
		  0, NULL, why, len);
	if (!r) {
		rc = -EIO;
	} else if (strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
		snprintf(why, len, "cluster %s is a standby (in recovery): vss-writer-postgresql "
			 "backs up primaries only; back up its primary", c->name);
		rc = -EOPNOTSUPP;
	} else if (strcmp(PQgetvalue(r, 0, 1), "minimal") == 0) {
		snprintf(why, len, "cluster %s: wal_level is minimal, which allows no online "
			 "backup: set wal_level = replica (and restart the server)", c->name);
		rc = -EOPNOTSUPP;
	} else if (strcmp(PQgetvalue(r, 0, 3), "t") != 0) {
		snprintf(why, len, "cluster %s: role %s may not run %s: it needs to be a "
			 "superuser or be granted EXECUTE on both", c->name, PQgetvalue(r, 0, 2),
			 v15 ? "pg_backup_start and pg_backup_stop" :
			 "pg_start_backup and pg_stop_backup");
		rc = -EACCES;
	}
	PQclear(r);
	if (rc == 0) {
		const char *const p[] = { label };

		r = query(c, c->conn, v15 ? "SELECT pg_backup_start($1, true)" :
			  "SELECT pg_start_backup($1, true, false)", 1, p, why, len);
		rc = r ? 0 : -EIO;
		PQclear(r);
	}
	if (rc < 0) {
		PQfinish(c->conn);
		c->conn = NULL;
	}
	return rc;
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, s, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

/* @name in directory @dfd, replaced by @text, owned as the directory. */
static int put_file(int dfd, const char *name, const char *text)
{
	struct stat st;
	int fd, rc;

	if (fstat(dfd, &st) < 0)
		return -errno;
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, text, strlen(text));
	if (rc == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc < 0)
		unlinkat(dfd, name, 0);
	return rc;
}

/* The data directory the writer described, or -ESTALE if its path now
 * leads elsewhere (its owner may rename what is in their directories;
 * the writer, root, writes only where it described). */
static int open_data_dir(const struct pg_cluster *c)
{
	int dfd = open(c->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;

	if (dfd < 0)
		return -errno;
	if (fstat(dfd, &st) < 0 || st.st_dev != c->data_dev || st.st_ino != c->data_ino) {
		close(dfd);
		return -ESTALE;
	}
	return dfd;
}

int pg_cluster_backup_stop(struct pg_cluster *c, char *why, size_t len)
{
	PGresult *r;
	int dfd, rc;

	if (!c->conn) {
		snprintf(why, len, "cluster %s: no backup in progress (prepare_snapshot did not "
			 "start one)", c->name);
		return -EINVAL;
	}
	r = query(c, c->conn, PQserverVersion(c->conn) >= 150000 ?
		  "SELECT lsn, labelfile, spcmapfile FROM pg_backup_stop(false)" :
		  "SELECT lsn, labelfile, spcmapfile FROM pg_stop_backup(false, false)",
		  0, NULL, why, len);
	PQfinish(c->conn);
	c->conn = NULL;
	if (!r)
		return -EIO;
	pg_cluster_label_forget(c);
	c->label = strdup(PQgetvalue(r, 0, 1));
	if (!PQgetisnull(r, 0, 2) && PQgetvalue(r, 0, 2)[0])
		c->map = strdup(PQgetvalue(r, 0, 2));
	dfd = open_data_dir(c);
	rc = dfd < 0 ? dfd : 0;
	if (rc == 0 && !c->label)
		rc = -ENOMEM;
	if (rc == 0) {
		c->labelled = true;
		rc = put_file(dfd, PG_LABEL_FILE, PQgetvalue(r, 0, 1));
		if (rc == 0 && !PQgetisnull(r, 0, 2) && PQgetvalue(r, 0, 2)[0])
			rc = put_file(dfd, PG_MAP_FILE, PQgetvalue(r, 0, 2));
		close(dfd);
	}
	if (rc < 0)
		snprintf(why, len, "cluster %s: cannot write the backup's label into %s: %s",
			 c->name, c->data_dir, strerror(-rc));
	PQclear(r);
	return rc;
}

void pg_cluster_label_forget(struct pg_cluster *c)
{
	free(c->label);
	free(c->map);
	c->label = c->map = NULL;
}

#define PG_METADATA_HEAD "vss-writer-postgresql 1\n"

int pg_metadata_format(const char *label, const char *map, char **out)
{
	int n = map ? asprintf(out, PG_METADATA_HEAD "backup_label %zu\n%stablespace_map %zu\n%s",
			       strlen(label), label, strlen(map), map) :
		asprintf(out, PG_METADATA_HEAD "backup_label %zu\n%s", strlen(label), label);

	if (n < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* "NAME N\n" and N bytes at *@p: a new string, *@p moved past it; NULL if
 * it is not there. */
static char *metadata_part(const char **p, const char *name)
{
	size_t nl = strlen(name), n = 0, avail;
	const char *q = *p;
	char *out;

	if (strncmp(q, name, nl) != 0 || q[nl] != ' ')
		return NULL;
	q += nl + 1;
	if (*q < '0' || *q > '9')
		return NULL;
	for (; *q >= '0' && *q <= '9'; q++) {
		if (n > (SIZE_MAX - 9) / 10)
			return NULL;
		n = n * 10 + (size_t)(*q - '0');
	}
	if (*q++ != '\n')
		return NULL;
	avail = strlen(q);
	if (n > avail || !(out = strndup(q, n)))
		return NULL;
	*p = q + n;
	return out;
}

int pg_metadata_parse(const char *text, char **label, char **map)
{
	const char *p = text;

	*label = *map = NULL;
	if (strncmp(p, PG_METADATA_HEAD, strlen(PG_METADATA_HEAD)) != 0)
		return -EBADMSG;
	p += strlen(PG_METADATA_HEAD);
	if (!(*label = metadata_part(&p, "backup_label")))
		return -EBADMSG;
	if (*p && !(*map = metadata_part(&p, "tablespace_map"))) {
		free(*label);
		*label = NULL;
		return -EBADMSG;
	}
	if (*p) {
		free(*label);
		free(*map);
		*label = *map = NULL;
		return -EBADMSG;
	}
	return 0;
}

void pg_cluster_backup_end(struct pg_cluster *c)
{
	if (c->conn) {
		PQfinish(c->conn);
		c->conn = NULL;
	}
	if (c->labelled) {
		int dfd = open_data_dir(c);

		if (dfd >= 0) {
			unlinkat(dfd, PG_LABEL_FILE, 0);
			unlinkat(dfd, PG_MAP_FILE, 0);
			close(dfd);
		}
		c->labelled = false;
	}
}

bool pg_cluster_running(struct pg_cluster *c)
{
	const char *const keys[] = { "connect_timeout", "dbname", NULL };
	const char *const vals[] = { "5", c->conninfo, NULL };

	return PQpingParams(keys, vals, 1) == PQPING_OK;
}

/* Reads @name of @dfd (at most MAX_CONF bytes) into a string; NULL with
 * errno, ENOENT when there is none. */
static char *read_file(int dfd, const char *name)
{
	char *buf = NULL;
	ssize_t n = 0, k;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (!(buf = malloc(MAX_CONF + 1)))
		goto out;
	while (n < MAX_CONF && (k = read(fd, buf + n, MAX_CONF - n)) > 0)
		n += k;
	buf[n] = '\0';
out:
	close(fd);
	return buf;
}

/* tablespace_map's lines are "OID PATH": a path moved is written anew. */
static int put_map(int dfd, const char *map, const char *const *from, const char *const *to,
		   int n)
{
	size_t cap = strlen(map) + 1;
	char *out, *o;
	int rc;

	for (int i = 0; i < n; i++)
		cap += strlen(to[i]) + 2;
	cap *= 2;
	if (!(o = out = calloc(1, cap)))
		return -ENOMEM;
	for (const char *l = map; *l;) {
		const char *end = strchr(l, '\n'), *sp = strchr(l, ' ');
		size_t ll = end ? (size_t)(end - l) : strlen(l);
		int hit = -1;

		for (int i = 0; sp && sp < l + ll && i < n; i++)
			if (strlen(from[i]) == (size_t)(l + ll - sp - 1) &&
			    memcmp(sp + 1, from[i], strlen(from[i])) == 0)
				hit = i;
		if (hit >= 0)
			o += sprintf(o, "%.*s %s\n", (int)(sp - l), l, to[hit]);
		else
			o += sprintf(o, "%.*s\n", (int)ll, l);
		l += ll + (end ? 1 : 0);
	}
	rc = put_file(dfd, "tablespace_map", out);
	free(out);
	return rc;
}

int pg_restored_prepare(const char *dir, const char *given_label, const char *given_map,
			const char *const *map_from, const char *const *map_to, int nmap,
			char *why, size_t len)
{
	char *label = NULL, *map = NULL, *conf = NULL;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (dfd < 0) {
		snprintf(why, len, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	if (given_label) {
		label = strdup(given_label);
		map = given_map ? strdup(given_map) : NULL;
		if (!label || (given_map && !map)) {
			rc = -ENOMEM;
			goto fail;
		}
	} else if (!(label = read_file(dfd, PG_LABEL_FILE))) {
		rc = errno == ENOENT ? -ENOENT : -EIO;
		snprintf(why, len, "%s has no %s and the backup no metadata: the backup was "
			 "not taken with vss-writer-postgresql's freeze", dir, PG_LABEL_FILE);
		goto out;
	} else {
		map = read_file(dfd, PG_MAP_FILE);
	}
	/* The restore_command PostgreSQL needs for a recovery: the WAL is all in
	 * pg_wal, so one that finds nothing; one the cluster sets is kept. */
	conf = read_file(dfd, "postgresql.auto.conf");
	if ((rc = put_file(dfd, "backup_label", label)) < 0 ||
	    (map && (rc = put_map(dfd, map, map_from, map_to, nmap)) < 0) ||
	    (rc = put_file(dfd, "recovery.signal", "")) < 0)
		goto fail;
	if (!conf || !strstr(conf, "restore_command")) {
		char *text = NULL;

		if (asprintf(&text, "%s%s# vss-writer-postgresql: the backup's WAL is in "
			     "pg_wal\nrestore_command = 'false'\n", conf ? conf : "",
			     conf && conf[0] && conf[strlen(conf) - 1] != '\n' ? "\n" : "") < 0)
			rc = -ENOMEM;
		else
			rc = put_file(dfd, "postgresql.auto.conf", text);
		free(text);
		if (rc < 0)
			goto fail;
	}
	unlinkat(dfd, PG_LABEL_FILE, 0);
	unlinkat(dfd, PG_MAP_FILE, 0);
	goto out;
fail:
	snprintf(why, len, "%s: cannot write backup_label, tablespace_map, recovery.signal: %s",
		 dir, strerror(-rc));
out:
	free(label);
	free(map);
	free(conf);
	close(dfd);
	return rc;
}

/* Runs @argv[0] with @argv as @uid/@gid, no descriptor of the writer's
 * but /dev/null on 0-2; 0 if it exited 0, else -EIO with @why. */
static int run_as(uid_t uid, gid_t gid, char *const *argv, char *why, size_t len)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);

		if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
		    setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0 ||
		    chdir("/") < 0)
			_exit(126);
		closefrom(3);
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		snprintf(why, len, "%s: %s", argv[0], strerror(errno));
		return -EIO;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(why, len, "%s %s failed (%s %d)", argv[0], argv[1],
			 WIFEXITED(status) ? "exit status" : "signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return -EIO;
	}
	return 0;
}

/* From postmaster.opts ("PROGRAM" "ARG"...: what pg_ctl restart reads):
 * its options in c->ctl_opts, the pg_ctl beside PROGRAM in c->ctl_path,
 * which must be root's and written by nobody else (the file is the
 * server's user's to write; the writer runs what it names, but as that
 * user). */
static int read_opts(struct pg_cluster *c, int dfd, char *why, size_t len)
{
	char *text = read_file(dfd, "postmaster.opts"), *args, *slash;
	struct stat st;

	free(c->ctl_opts);
	c->ctl_opts = NULL;
	if (!text) {
		snprintf(why, len, "%s/postmaster.opts: %s", c->data_dir, strerror(errno));
		return -ENOENT;
	}
	text[strcspn(text, "\n")] = '\0';
	args = strstr(text, " \"");
	slash = args ? memrchr(text, '/', (size_t)(args - text)) : NULL;
	if (text[0] != '/' || !args || !slash ||
	    (size_t)(slash - text) + sizeof("/pg_ctl") > sizeof(c->ctl_path)) {
		snprintf(why, len, "%s/postmaster.opts does not name the server's program",
			 c->data_dir);
		free(text);
		return -EINVAL;
	}
	snprintf(c->ctl_path, sizeof(c->ctl_path), "%.*s/pg_ctl", (int)(slash - text), text);
	c->ctl_opts = strdup(args + 1);
	free(text);
	if (!c->ctl_opts)
		return -ENOMEM;
	if (stat(c->ctl_path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 022)) {
		snprintf(why, len, "%s is not a program of root's beside the server's",
			 c->ctl_path);
		return -EPERM;
	}
	return 0;
}

int pg_cluster_ctl_stop(struct pg_cluster *c, char *why, size_t len)
{
	int dfd = open_data_dir(c), rc;
	struct stat st;

	if (dfd < 0) {
		snprintf(why, len, "%s: %s", c->data_dir, strerror(-dfd));
		return dfd;
	}
	rc = fstat(dfd, &st) < 0 ? -errno : read_opts(c, dfd, why, len);
	close(dfd);
	if (rc < 0)
		return rc;
	c->ctl_uid = st.st_uid;
	c->ctl_gid = st.st_gid;
	return run_as(c->ctl_uid, c->ctl_gid, (char *const[]){
		c->ctl_path, "stop", "-D", c->data_dir, "-m", "fast", "-w", "-t", "60", NULL },
		why, len);
}

int pg_cluster_ctl_start(struct pg_cluster *c, char *why, size_t len)
{
	char *argv[] = { c->ctl_path, "start", "-D", c->data_dir, "-w", "-t", "60", "-o",
			 c->ctl_opts, "-l", c->ctl_log, NULL };

	if (!c->ctl_opts) {
		snprintf(why, len, "cluster %s: not stopped by this writer", c->name);
		return -EINVAL;
	}
	if (!c->ctl_log[0])
		argv[9] = NULL;
	return run_as(c->ctl_uid, c->ctl_gid, argv, why, len);
}

/* Closes @d and each of the descriptors that is one (>= 0). */
static void close_dirs(DIR *d, int fd1, int fd2, int fd3)
{
	if (d)
		closedir(d);
	for (int i = 0, fd[3] = { fd1, fd2, fd3 }; i < 3; i++)
		if (fd[i] >= 0)
			close(fd[i]);
}

/*
 * A restore in place replays only the WAL it restores: the live pg_wal's
 * segments, newer than the backup, would roll the cluster on past the
 * backup's instant (to the moment it was stopped, replaying the very change
 * the restore may be undoing).  They are moved, not deleted, into a
 * directory beside pg_wal, PG_WAL.vss-before-restore-YYYYMMDDTHHMMSSZ (on
 * pg_wal's filesystem, so each is a rename), for an administrator who
 * wants to roll forward by hand; an empty archive_status is left for the
 * server.  Earlier such directories are left alone.
 */
int pg_cluster_wal_aside(const struct pg_cluster *c, char *aside, size_t alen, int *moved,
			 char *why, size_t len)
{
	char parent[PATH_MAX], name[NAME_MAX + 1];
	const char *base = strrchr(c->wal_dir, '/');
	int pfd = -1, wfd = -1, afd = -1, rc = 0;
	struct stat st;
	struct tm tm;
	time_t now = time(NULL);
	DIR *d = NULL;
	struct dirent *e;

	*moved = 0;
	aside[0] = '\0';
	if (!base || base == c->wal_dir || (size_t)(base - c->wal_dir) >= sizeof(parent)) {
		snprintf(why, len, "cluster %s: pg_wal at %s", c->name, c->wal_dir);
		return -EINVAL;
	}
	memcpy(parent, c->wal_dir, base - c->wal_dir);
	parent[base - c->wal_dir] = '\0';
	gmtime_r(&now, &tm);
	snprintf(name, sizeof(name), "%s.vss-before-restore-%04d%02d%02dT%02d%02d%02dZ", base + 1,
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if ((pfd = open(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    (wfd = openat(pfd, base + 1, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fstat(wfd, &st) < 0) {
		rc = -errno;
		snprintf(why, len, "cluster %s: %s: %s", c->name, c->wal_dir, strerror(-rc));
		goto out;
	}
	if (st.st_uid == 0) {
		rc = -EPERM;
		snprintf(why, len, "cluster %s: %s is not a directory of the server's", c->name,
			 c->wal_dir);
		goto out;
	}
	if (!(d = fdopendir(dup(wfd)))) {
		rc = -errno;
		snprintf(why, len, "cluster %s: %s: %s", c->name, c->wal_dir, strerror(-rc));
		goto out;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (afd < 0) {
			if (mkdirat(pfd, name, 0700) < 0 ||
			    fchownat(pfd, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
			    (afd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					  O_CLOEXEC)) < 0) {
				rc = -errno;
				snprintf(why, len, "cluster %s: %s/%s: %s", c->name, parent, name,
					 strerror(-rc));
				goto out;
			}
			/* Said as soon as it exists: what a failure below
			 * leaves there is moved back from it (wal_back). */
			snprintf(aside, alen, "%s/%s", parent, name);
		}
		if (renameat(wfd, e->d_name, afd, e->d_name) < 0) {
			rc = -errno;
			snprintf(why, len, "cluster %s: moving %s/%s aside to %s/%s: %s", c->name,
				 c->wal_dir, e->d_name, parent, name, strerror(-rc));
			goto out;
		}
		++*moved;
	}
	if (*moved && (mkdirat(wfd, "archive_status", 0700) < 0 ||
		       fchownat(wfd, "archive_status", st.st_uid, st.st_gid,
				AT_SYMLINK_NOFOLLOW) < 0)) {
		rc = -errno;
		snprintf(why, len, "cluster %s: %s/archive_status: %s", c->name, c->wal_dir,
			 strerror(-rc));
		goto out;
	}
	if (*moved && (fsync(afd) < 0 || fsync(wfd) < 0 || fsync(pfd) < 0)) {
		rc = -errno;
		snprintf(why, len, "cluster %s: syncing %s: %s", c->name, parent, strerror(-rc));
		goto out;
	}
out:
	close_dirs(d, afd, wfd, pfd);
	return rc;
}

/* Whether pg_wal (@wfd) holds nothing but the archive_status wal_aside
 * made, or nothing at all. */
static bool wal_dir_untouched(int wfd)
{
	DIR *d = fdopendir(dup(wfd));
	struct dirent *e;
	bool only = d != NULL;

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    strcmp(e->d_name, "archive_status"))
			only = false;
	if (d)
		closedir(d);
	return only;
}

int pg_cluster_wal_back(const struct pg_cluster *c, const char *aside, char *why, size_t len)
{
	int wfd = open(c->wal_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int afd = open(aside, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), rc = 0;
	DIR *d = NULL;
	struct dirent *e;

	if (wfd < 0 || afd < 0 || !(d = fdopendir(dup(afd)))) {
		rc = -errno;
		snprintf(why, len, "cluster %s: %s: %s", c->name, wfd < 0 ? c->wal_dir : aside,
			 strerror(-rc));
		goto out;
	}
	/* The empty archive_status wal_aside left; anything else there now was
	 * restored, and the WAL set aside stays where it is. */
	if (!wal_dir_untouched(wfd) ||
	    (unlinkat(wfd, "archive_status", AT_REMOVEDIR) < 0 && errno != ENOENT)) {
		rc = -errno;
		snprintf(why, len, "cluster %s: %s/archive_status is not as the restore left it; "
			 "the WAL it had before is in %s", c->name, c->wal_dir, aside);
		goto out;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (renameat2(afd, e->d_name, wfd, e->d_name, RENAME_NOREPLACE) < 0) {
			rc = -errno;
			snprintf(why, len, "cluster %s: moving %s/%s back: %s; the rest is still "
				 "there", c->name, aside, e->d_name, strerror(-rc));
			goto out;
		}
	}
	if (fsync(wfd) < 0 || rmdir(aside) < 0) {
		rc = -errno;
		snprintf(why, len, "cluster %s: %s: %s", c->name, aside, strerror(-rc));
	}
out:
	close_dirs(d, afd, wfd, -1);
	return rc;
}
