/*
 * vss-writer-postgresql - a writer for PostgreSQL clusters, with the
 * server's own online backup (cluster.c).  Each cluster of the
 * configuration is one database component: its data directory and
 * tablespaces as database files, pg_wal as log files.
 *
 *   prepare_backup    a backup stamp per component: the WAL position now
 *   prepare_snapshot  pg_backup_start(label, fast): the checkpoint, the
 *                     slow part, on a connection kept open
 *   freeze            pg_backup_stop on that connection; the backup_label
 *                     and tablespace_map it returns go into the data
 *                     directory as vss_backup_label and vss_tablespace_map,
 *                     which the shadow holds.  Stopping before the shadow
 *                     puts the end-of-backup record in the shadow's own
 *                     pg_wal: the shadow alone recovers, no archive needed
 *                     (the server goes on writing: it is never blocked)
 *   thaw, abort       the connection closed (which ends a backup still in
 *                     progress on the server), the label files removed
 *   post_snapshot     in a backup but a log backup: the label and map as
 *                     each component's backup metadata (cluster.h), kept
 *                     with the backup and handed back at restore
 *   pre_restore       backup metadata that is not this writer's label
 *                     stops the restore; a cluster restored in place is
 *                     stopped with its systemd unit or its own pg_ctl
 *                     (cluster.c); one running with neither is refused;
 *                     the live pg_wal of one restored in place moved aside
 *                     (PG_WAL.vss-before-restore-TIME beside it), so that
 *                     recovery stops at the backup's instant instead of
 *                     replaying what came after it (moved back if the
 *                     restore writes none of its files)
 *   post_restore      backup_label, tablespace_map (from the backup
 *                     metadata; for a log backup, or one without it, from
 *                     the label files restored with the data files; paths
 *                     moved as the restore moved them), recovery.signal
 *                     and, unless the cluster sets one, restore_command =
 *                     'false' (the WAL is in pg_wal) in the restored data
 *                     directory; the cluster started again
 *
 * vss-writer-postgresql [--run-dir DIR] [--timeout SECONDS] [--once]
 *                       [--config FILE]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "writer_cli.h"

#define PG_CLASS_ID "8b1e4f52-3a6d-4c0e-9f27-6d5a0c4b7e13"
#define PG_LOGICAL_PATH "postgresql"
#define MAX_CLUSTERS 16
#define DEFAULT_CONFIG "/etc/vss/postgresql.conf"

struct clusters {
	struct pg_cluster c[MAX_CLUSTERS];
	int n;
	struct wcli_restore restore;    /* stopped and started around restores */
	char wal_aside[MAX_CLUSTERS][PATH_MAX]; /* a restore in place's, or "" */
};

static struct pg_cluster *find(struct clusters *s, const char *lp, const char *name)
{
	if (!lp || strcmp(lp, PG_LOGICAL_PATH) != 0)
		return NULL;
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->c[i].name, name) == 0)
			return &s->c[i];
	return NULL;
}

/* A log backup stores the WAL since the previous stamp: that WAL must
 * still be in pg_wal. */
static int stamp_of(void *data, const char *name, const char *prev,
		    enum vss_backup_type type, char *out, size_t olen, char *why, size_t wlen)
{
	struct pg_cluster *c = find(data, PG_LOGICAL_PATH, name);
	int rc;

	if (!c)
		return -ENOENT;
	if (type != VSS_BT_LOG || !prev || (rc = pg_cluster_wal_since(c, prev, why, wlen)) == 0)
		rc = pg_cluster_stamp(c, out, olen, why, wlen);
	/* -ENOENT tells wcli_set_stamps "not one of ours", which it skips: a
	 * cluster of ours that fails must fail the backup. */
	return rc == -ENOENT ? -ENODATA : rc;
}

static int on_prepare_backup(struct vss_writer *w, const struct vss_writer_event *ev,
			     void *data)
{
	return wcli_set_stamps(w, ev, PG_LOGICAL_PATH, stamp_of, data);
}

static void end_all(struct clusters *s)
{
	for (int i = 0; i < s->n; i++)
		pg_cluster_backup_end(&s->c[i]);
}

static void forget_all(struct clusters *s)
{
	for (int i = 0; i < s->n; i++)
		pg_cluster_label_forget(&s->c[i]);
}

static int on_prepare_snapshot(struct vss_writer *w, const struct vss_writer_event *ev,
			       void *data)
{
	struct clusters *s = data;
	char label[128], why[PG_WHY];

	snprintf(label, sizeof(label), "vss %s", ev->set_id ? ev->set_id : "shadow copy set");
	for (int i = 0; i < s->n; i++) {
		int rc = pg_cluster_backup_start(&s->c[i], label, why, sizeof(why));

		if (rc < 0) {
			end_all(s);
			vss_writer_set_failure(w, rc == -ECONNREFUSED || rc == -EIO ?
					       VSS_WF_RETRYABLE : VSS_WF_NONRETRYABLE, "%s", why);
			return rc;
		}
		wcli_say("cluster %s: backup started", s->c[i].name);
	}
	return 0;
}

static int on_freeze(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct clusters *s = data;
	char why[PG_WHY];

	for (int i = 0; i < s->n; i++) {
		int rc = pg_cluster_backup_stop(&s->c[i], why, sizeof(why));

		if (rc < 0) {
			end_all(s);
			vss_writer_set_failure(w, VSS_WF_RETRYABLE, "%s", why);
			return rc;
		}
	}
	return 0;
}

static int on_thaw(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	end_all(data);
	return 0;
}

static int on_post_snapshot(struct vss_writer *w, const struct vss_writer_event *ev,
			    void *data)
{
	struct clusters *s = data;

	/* A log backup keeps pg_wal only: its restore starts from the label
	 * of the backup whose data files it restores, never from its own. */
	if (ev->components && vss_bcd_backup_type(ev->components) == VSS_BT_LOG)
		return 0;
	for (int i = 0; i < s->n; i++) {
		struct vss_bcd_component *comp = wcli_component(ev->components, PG_LOGICAL_PATH, s->c[i].name);
		struct vss_error err = { 0 };
		char *text;
		int rc;

		if (!comp || !s->c[i].label)
			continue;
		if ((rc = pg_metadata_format(s->c[i].label, s->c[i].map, &text)) == 0) {
			rc = vss_bcd_set_backup_metadata(comp, text, &err);
			free(text);
		}
		/* A restore can still use the label files in the data. */
		if (rc < 0)
			wcli_say("cluster %s: the backup label is not kept as backup metadata: %s",
				 s->c[i].name, err.msg[0] ? err.msg : strerror(-rc));
		pg_cluster_label_forget(&s->c[i]);
	}
	return 0;
}

/* Component @i of the restore, if it is one of ours. */
static struct pg_cluster *restored(struct vss_writer *w, struct clusters *s, size_t i,
				   struct vss_writer_restore_component *rc)
{
	if (vss_writer_restore_component(w, i, rc) < 0)
		return NULL;
	return find(s, rc->logical_path, rc->name);
}

/* What stops and starts the clusters around a restore in place
 * (struct wcli_restore): the unit, or the cluster's own pg_ctl. */
static int served_find(void *data, const char *name)
{
	struct pg_cluster *c = find(data, PG_LOGICAL_PATH, name);

	return c ? (int)(c - ((struct clusters *)data)->c) : -1;
}

static const char *served_name(void *data, int i)
{
	return ((struct clusters *)data)->c[i].name;
}

static bool served_running(void *data, int i)
{
	return pg_cluster_running(&((struct clusters *)data)->c[i]);
}

static const char *served_manager(void *data, int i)
{
	struct pg_cluster *c = &((struct clusters *)data)->c[i];

	return c->pg_ctl ? "pg_ctl" : c->unit;
}

static int served_stop(void *data, int i, char *why, size_t len)
{
	struct pg_cluster *c = &((struct clusters *)data)->c[i];

	return c->pg_ctl ? pg_cluster_ctl_stop(c, why, len) :
		wcli_systemctl("stop", c->unit, why, len);
}

static int served_start(void *data, int i, char *why, size_t len)
{
	struct pg_cluster *c = &((struct clusters *)data)->c[i];

	return c->pg_ctl ? pg_cluster_ctl_start(c, why, len) :
		wcli_systemctl("start", c->unit, why, len);
}

/* The label and map of cluster @c's backup metadata in @bcd: 0 (*@label
 * NULL if the backup kept none), or -EBADMSG with @why. */
static int metadata_of(const struct vss_bcd *bcd, const struct pg_cluster *c, char **label,
		       char **map, char *why, size_t len)
{
	struct vss_bcd_component *comp = wcli_component(bcd, PG_LOGICAL_PATH, c->name);
	const char *meta = comp ? vss_bcd_backup_metadata(comp) : NULL;

	*label = *map = NULL;
	if (meta && pg_metadata_parse(meta, label, map) < 0) {
		snprintf(why, len, "cluster %s: the backup's metadata is not a label this writer "
			 "wrote", c->name);
		return -EBADMSG;
	}
	return 0;
}

static void wal_back_one(struct clusters *s, int i);

/* The clusters restored in place (stopped by now) get only the WAL the
 * restore writes: their live pg_wal moved aside (cluster.c). */
static int set_wal_aside(struct vss_writer *w, struct clusters *s)
{
	struct vss_writer_restore_info ri;

	if (vss_writer_restore_info(w, &ri) < 0 || ri.to)
		return 0;
	for (size_t i = 0; i < ri.component_count; i++) {
		struct vss_writer_restore_component rc;
		struct pg_cluster *c;
		char why[PG_WHY];
		int moved, r;

		if (vss_writer_restore_component(w, i, &rc) < 0 || !rc.original_location ||
		    !(c = find(s, rc.logical_path, rc.name)) || pg_cluster_running(c))
			continue;
		r = pg_cluster_wal_aside(c, s->wal_aside[c - s->c], PATH_MAX, &moved, why,
					 sizeof(why));
		if (r < 0) {
			vss_writer_set_failure(w, VSS_WF_RETRYABLE, "%s", why);
			wal_back_one(s, (int)(c - s->c));     /* what was moved, back */
			return r;
		}
		if (moved)
			wcli_say("cluster %s: the %d entries of its pg_wal moved to %s: the restored "
				 "cluster replays only the backup's WAL", c->name, moved,
				 s->wal_aside[c - s->c]);
	}
	return 0;
}

/* A restore that did not write cluster @i's files (or staged them for the
 * next boot): the WAL set aside goes back. */
static void wal_back_one(struct clusters *s, int i)
{
	char why[PG_WHY];

	if (!s->wal_aside[i][0])
		return;
	if (pg_cluster_wal_back(&s->c[i], s->wal_aside[i], why, sizeof(why)) < 0)
		wcli_say("%s", why);
	else
		wcli_say("cluster %s: its pg_wal moved back from %s", s->c[i].name,
			 s->wal_aside[i]);
	s->wal_aside[i][0] = '\0';
}

static void wal_back(struct clusters *s)
{
	for (int i = 0; i < s->n; i++)
		wal_back_one(s, i);
}

static int on_pre_restore(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct clusters *s = data;
	int rc;

	end_all(s);
	/* A label that cannot be written back stops the restore before it
	 * writes anything. */
	for (int i = 0; i < s->n; i++) {
		char *label, *map, why[PG_WHY];

		if (metadata_of(ev->components, &s->c[i], &label, &map, why, sizeof(why)) < 0) {
			vss_writer_set_failure(w, VSS_WF_NONRETRYABLE, "%s", why);
			return -EBADMSG;
		}
		free(label);
		free(map);
	}
	if ((rc = wcli_pre_restore(w, &s->restore)) < 0)
		return rc;
	return set_wal_aside(w, s);
}

/* Where the restore put @c's files: the data directory's destination, and
 * each tablespace's; the label from the backup metadata in @bcd, if the
 * backup kept it (*@from_metadata). */
static int prepare_restored(struct vss_writer *w, const struct vss_bcd *bcd, size_t i,
			    struct pg_cluster *c, bool *from_metadata, char *why, size_t len)
{
	const char *from[PG_MAX_TABLESPACES], *to[PG_MAX_TABLESPACES];
	char *label = NULL, *map = NULL;
	struct vss_wmd_file_spec loc;
	const char *dir = NULL;
	int n = 0, rc;

	for (size_t j = 0; vss_writer_restore_location(w, i, j, &loc) == 0; j++) {
		if (strcmp(loc.path, c->data_dir) == 0 && !dir)
			dir = loc.destination;
		for (int t = 0; t < c->ntablespaces; t++)
			if (strcmp(loc.path, c->tablespace[t]) == 0 && n < PG_MAX_TABLESPACES) {
				from[n] = loc.path;
				to[n++] = loc.destination;
			}
	}
	if (!dir) {
		snprintf(why, len, "cluster %s: the restore does not say where %s went", c->name,
			 c->data_dir);
		return -EINVAL;
	}
	if ((rc = metadata_of(bcd, c, &label, &map, why, len)) < 0)
		return rc;
	*from_metadata = label != NULL;
	rc = pg_restored_prepare(dir, label, map, from, to, n, why, len);
	free(label);
	free(map);
	return rc;
}

static int on_post_restore(struct vss_writer *w, const struct vss_writer_event *ev,
			   void *data)
{
	struct clusters *s = data;
	struct vss_writer_restore_info ri;
	char why[PG_WHY] = "";
	int rc = 0;

	if (vss_writer_restore_info(w, &ri) < 0)
		return 0;
	for (size_t i = 0; i < ri.component_count; i++) {
		struct vss_writer_restore_component r;
		struct pg_cluster *c = restored(w, s, i, &r);

		if (c && (r.status == VSS_RS_NONE || r.status == VSS_RS_STAGED))
			wal_back_one(s, (int)(c - s->c));
	}
	for (int i = 0; i < s->n; i++)
		s->wal_aside[i][0] = '\0';   /* kept for the administrator */
	for (size_t i = 0; i < ri.component_count && rc == 0; i++) {
		struct vss_writer_restore_component r;
		struct pg_cluster *c = restored(w, s, i, &r);

		/* Staged files are put in place at the next boot, before any
		 * writer runs: the label is left for the administrator. */
		bool meta = false;

		if (!c || r.status != VSS_RS_ALL)
			continue;
		if ((rc = prepare_restored(w, ev->components, i, c, &meta, why, sizeof(why))) == 0)
			wcli_say("cluster %s: restored with its backup label (%s) and "
				 "recovery.signal", c->name, meta ? "from the backup metadata" :
				 "from the files restored");
	}
	if (rc == 0)
		rc = wcli_start_stopped(&s->restore, why, sizeof(why));
	else
		wcli_start_stopped(&s->restore, (char[PG_WHY]){ 0 }, PG_WHY);
	if (rc < 0)
		vss_writer_set_failure(w, VSS_WF_RECOVERY_FAILED, "%s", why);
	return rc;
}

static int on_abort(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct clusters *s = data;
	char why[PG_WHY];

	end_all(s);
	forget_all(s);
	wal_back(s);
	if (wcli_start_stopped(&s->restore, why, sizeof(why)) < 0)
		wcli_say("%s", why);
	return 0;
}

static int add_set(struct vss_wmd *wmd, const char *name, enum vss_file_set_kind kind,
		   const char *path, struct vss_error *err)
{
	return vss_wmd_add_file_set(wmd, PG_LOGICAL_PATH, name, &(struct vss_wmd_file_set){
		.kind = kind, .path = path, .file_spec = "*", .recursive = true,
		.backup_type_mask = VSS_FSBT_DEFAULT }, err);
}

static int add_component(struct vss_wmd *wmd, void *data, int n, struct vss_error *err)
{
	const struct pg_cluster *c = &((struct clusters *)data)->c[n];
	static const char *const skip[] = { "postmaster.pid", "postmaster.opts" };
	int rc = vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_DATABASE, .logical_path = PG_LOGICAL_PATH, .name = c->name,
		.caption = "PostgreSQL cluster", .selectable = true,
		.selectable_for_restore = true }, err);

	if (rc == 0)
		rc = add_set(wmd, c->name, VSS_FSK_DATABASE, c->data_dir, err);
	for (int i = 0; rc == 0 && i < c->ntablespaces; i++)
		rc = add_set(wmd, c->name, VSS_FSK_DATABASE, c->tablespace[i], err);
	if (rc == 0)
		rc = add_set(wmd, c->name, VSS_FSK_LOG, c->wal_dir, err);
	/* What a running server leaves that a restored one must not find. */
	for (size_t i = 0; rc == 0 && i < sizeof(skip) / sizeof(skip[0]); i++)
		rc = vss_wmd_add_exclude_files(wmd, &(struct vss_wmd_file_spec){
			.path = c->data_dir, .file_spec = skip[i] }, err);
	return rc;
}

static bool valid_word(const char *s, const char *extra)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && !strchr(extra, *s))
			return false;
	return true;
}

/* A systemd unit (NAME.service), "pg_ctl", "pg_ctl:/LOG", or "-". */
static bool valid_unit(const char *u)
{
	if (strcmp(u, "-") == 0 || strcmp(u, "pg_ctl") == 0)
		return true;
	if (strncmp(u, "pg_ctl:/", 8) == 0)
		return !strstr(u, "/../") && valid_word(u + 7, "/._-");
	return valid_word(u, "@._:-\\") && strstr(u, ".service");
}

/*
 * The configuration: one cluster a line, "NAME UNIT CONNINFO", UNIT a
 * systemd unit, "pg_ctl" (the cluster's own, as the data directory's
 * owner; ":LOG" its log file) or "-" for none; '#' starts a comment line.  How many, or -errno with the
 * line said.
 */
static int read_config(const char *path, void *data)
{
	struct clusters *s = data;
	char line[2048];
	int no = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		wcli_say("%s: %s", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char name[sizeof(s->c[0].name)], unit[sizeof(s->c[0].unit)];
		struct pg_cluster *c;
		int off = 0;

		no++;
		line[strcspn(line, "\n")] = '\0';
		if (!line[strspn(line, " \t")] || line[strspn(line, " \t")] == '#')
			continue;
		if (sscanf(line, " %127s %255s %n", name, unit, &off) != 2 || !line[off] ||
		    !valid_word(name, "._-") || !valid_unit(unit) ||
		    strlen(line + off) >= sizeof(c->conninfo)) {
			wcli_say("%s:%d: expected NAME UNIT|pg_ctl[:LOG]|- CONNINFO (NAME of "
				 "letters, digits, '.', '_', '-'; UNIT a .service; LOG an absolute "
				 "path)", path, no);
			fclose(f);
			return -EINVAL;
		}
		if (s->n == MAX_CLUSTERS) {
			wcli_say("%s: at most %d clusters", path, MAX_CLUSTERS);
			fclose(f);
			return -EINVAL;
		}
		c = &s->c[s->n++];
		snprintf(c->name, sizeof(c->name), "%s", name);
		c->pg_ctl = strncmp(unit, "pg_ctl", 6) == 0;
		if (c->pg_ctl && unit[6] == ':')
			snprintf(c->ctl_log, sizeof(c->ctl_log), "%s", unit + 7);
		snprintf(c->unit, sizeof(c->unit), "%s", strcmp(unit, "-") && !c->pg_ctl ?
			 unit : "");
		snprintf(c->conninfo, sizeof(c->conninfo), "%s", line + off);
	}
	fclose(f);
	if (s->n == 0) {
		wcli_say("%s: no cluster", path);
		return -EINVAL;
	}
	return s->n;
}

static int locate(void *data, int i, char *why, size_t len)
{
	return pg_cluster_describe(&((struct clusters *)data)->c[i], why, len);
}

static void cleanup(void *data)
{
	struct clusters *s = data;

	end_all(s);
	forget_all(s);
	for (int i = 0; i < s->n; i++)
		free(s->c[i].ctl_opts);
}

int main(int argc, char **argv)
{
	static const struct vss_writer_handlers handlers = {
		.size = sizeof(struct vss_writer_handlers),
		.prepare_backup = on_prepare_backup, .prepare_snapshot = on_prepare_snapshot,
		.freeze = on_freeze, .thaw = on_thaw, .post_snapshot = on_post_snapshot,
		.abort = on_abort,
		.pre_restore = on_pre_restore, .post_restore = on_post_restore,
	};
	static struct clusters s = { .restore = {
		.logical_path = PG_LOGICAL_PATH, .noun = "cluster", .data = &s,
		.find = served_find, .name = served_name, .running = served_running,
		.manager = served_manager, .stop = served_stop, .start = served_start } };

	return wcli_main(argc, argv, &(struct wcli_writer){
		.prog = "vss-writer-postgresql", .name = "postgresql", .class_id = PG_CLASS_ID,
		.schema = VSS_BS_INCREMENTAL | VSS_BS_TIMESTAMPED | VSS_BS_COPY | VSS_BS_LSN |
			  VSS_BS_LOG,
		.default_config = DEFAULT_CONFIG, .noun = "cluster",
		.about = "A vss writer for PostgreSQL clusters: an online backup (pg_backup_start,\n"
			 "pg_backup_stop) around every shadow copy set.\n",
		.config_help = "the clusters, one a line: NAME UNIT|pg_ctl[:LOG]|- CONNINFO",
		.handlers = &handlers, .data = &s, .load = read_config, .locate = locate,
		.add = add_component,
		/* It takes part in every restore: it stops the cluster and
		 * leaves it its backup label. */
		.restore = &(struct vss_wmd_restore_method){
			.method = VSS_RME_RESTORE_IF_CAN_REPLACE,
			.writer_restore = VSS_WRE_ALWAYS },
		.cleanup = cleanup });
}
