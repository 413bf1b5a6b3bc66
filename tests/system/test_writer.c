/*
 * test_writer.c - a writer for the system tests, built on vss/writer.h: it
 * logs every event it gets ("NAME EVENT") to a file, and can be told to
 * fail, hang or crash at one event, and to set a backup stamp and partial
 * and differenced files at prepare_backup.  A writer hanging at an event
 * answers it once it gets SIGUSR1 (and hangs no more; with --hang-again,
 * it hangs at each such event, answering each at a SIGUSR1).
 *
 * vss-test-writer --name N --log FILE [--run-dir DIR] [--class back|front|system]
 *     [--fail-at EV [--kind K]] [--hang-at EV [--hang-again]] [--crash-at EV] [--timeout MS]
 *     [--slow-at EV[,EV...] [--slow-ms MS]] [--stamp S|auto] [--partial] [--reconnect]
 *     [--schema HEX] [--set PATH:SPEC:MASK[:r|-][:log] ...] [--exclude PATH:SPEC ...]
 *     [--partial-from FILE] [--differenced-from FILE] [--detail] [--shutdown]
 *     [--path DIR] [--method M] [--service UNIT] [--alt DIR=DEST]
 *     [--writer-restore W] [--refresh-from FILE]
 * With --refresh-from, at each identify it adds to "data" the file sets
 * FILE lists (PATH:SPEC:MASK[:r], one a line), if it exists, and gives
 * vssd its metadata again (vss_writer_set_metadata).
 * Prints "ready" on stdout once registered; logs backup_shutdown only with
 * --shutdown (without, the library answers it).
 *
 * For restores: its one component, "data", is the files below --path
 * (default /data); restore events log what the restore says ("NAME
 * pre_restore backup=ID to=DIR data:METHOD:original|alternate:STATUS:FILES
 * [:MESSAGE] ..."), the restore method and alternate location mappings are
 * --method, --service and --alt.
 *
 * For backups of its components (one, "data"): --schema replaces its backup
 * schema (VSS_BS_* bits), each --set adds a file set (MASK: VSS_FSBT_* bits,
 * r: recursive; log: a log file set, which makes "data" a database
 * component and its other sets database files; without any, /data *
 * recursive with the default mask),
 * --stamp auto sets "NAME-N" at the Nth prepare_backup, and at
 * prepare_backup it reads the partial files to name from FILE, one a line,
 * "DIR NAME OFFSET LENGTH [OFFSET LENGTH ...]", and the differenced files
 * from FILE, "DIR SPEC RECURSIVE(0|1) TIME|-" (- for none).  --detail adds
 * to the prepare_backup line the backup type, whether the requester
 * supports partial files, and each stamp set.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include <vss/writer.h>

#define MAX_SETS 16

struct opts {
	const char *name, *log, *run_dir, *fail_at, *kind, *hang_at, *crash_at, *stamp;
	char slow_at[256];            /* ",EV,EV,": answer each slow_ms late, once */
	unsigned int slow_ms;         /* default 2500 */
	const char *cls;
	const char *path, *method, *service, *alt, *writer_restore;
	unsigned int timeout_ms;
	bool partial, hang_again;
	bool reconnect;             /* register again when vssd comes back */
	bool detail;
	uint32_t schema, schema_now;  /* asked for; the one registered */
	const char *sets[MAX_SETS], *excludes[MAX_SETS];
	int nsets, nexcludes;
	const char *partial_from, *differenced_from;
	const char *refresh_from;
	char *doc;                  /* the metadata registered */
	unsigned int backups;       /* prepare_backup events so far */
};

/* The partial files named in o->partial_from. */
static void add_partials(const struct opts *o, struct vss_bcd_component *c)
{
	FILE *f = o->partial_from ? fopen(o->partial_from, "re") : NULL;
	char line[4096];

	while (f && fgets(line, sizeof(line), f)) {
		struct vss_bcd_range r[64];
		char *save, *dir = strtok_r(line, " \n", &save), *name = strtok_r(NULL, " \n", &save);
		char *off, *len;
		size_t n = 0;

		while (n < 64 && (off = strtok_r(NULL, " \n", &save)) &&
		       (len = strtok_r(NULL, " \n", &save)))
			r[n++] = (struct vss_bcd_range){ atoll(off), atoll(len) };
		if (dir && name && n)
			vss_bcd_add_partial_file(c, &(struct vss_bcd_partial_file){
				.path = dir, .filename = name, .ranges = r, .range_count = n },
				NULL);
	}
	if (f)
		fclose(f);
}

/* The differenced files named in o->differenced_from. */
static void add_differenced(const struct opts *o, struct vss_bcd_component *c)
{
	FILE *f = o->differenced_from ? fopen(o->differenced_from, "re") : NULL;
	char line[4096];

	while (f && fgets(line, sizeof(line), f)) {
		char *save, *dir = strtok_r(line, " \n", &save), *spec = strtok_r(NULL, " \n", &save);
		char *rec = strtok_r(NULL, " \n", &save), *t = strtok_r(NULL, " \n", &save);
		struct timespec since = { 0, 0 };

		if (!dir || !spec || !rec || !t || (strcmp(t, "-") != 0 &&
						    vss_bcd_time_parse(t, &since) < 0))
			continue;
		vss_bcd_add_differenced_files(c, &(struct vss_bcd_differenced_files){
			.path = dir, .file_spec = spec, .recursive = strcmp(rec, "1") == 0,
			.last_modify = since }, NULL);
	}
	if (f)
		fclose(f);
}

static volatile sig_atomic_t stop, resume;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	resume = 1;
}

/* The metadata registered, with the file sets o->refresh_from lists. */
static int refresh(struct vss_writer *w, const struct opts *o)
{
	FILE *f = fopen(o->refresh_from, "re");
	struct vss_error err = { 0 };
	struct vss_wmd *wmd;
	char line[4096];
	int rc;

	if (!f)
		return -ENOENT;
	rc = vss_wmd_parse(o->doc, strlen(o->doc), 0, &wmd, &err);
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		char *save, *path = strtok_r(line, ":\n", &save), *spec = strtok_r(NULL, ":\n", &save);
		char *mask = strtok_r(NULL, ":\n", &save), *rec = strtok_r(NULL, ":\n", &save);

		if (path && spec)
			rc = vss_wmd_add_file_set(wmd, NULL, "data", &(struct vss_wmd_file_set){
				.kind = VSS_FSK_FILES, .path = path, .file_spec = spec,
				.recursive = rec && strcmp(rec, "r") == 0,
				.backup_type_mask = mask ? (uint32_t)strtoul(mask, NULL, 0) : 0 },
				&err);
	}
	fclose(f);
	if (rc == 0)
		rc = vss_writer_set_metadata(w, wmd, &err);
	vss_wmd_free(wmd);
	if (rc < 0)
		fprintf(stderr, "vss-test-writer: refresh: %s\n", err.msg);
	return rc;
}

static int handle(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct opts *o = data;
	char line[2048];
	int fd, n;

	n = snprintf(line, sizeof(line), "%s %s", o->name, ev->name);
	if (ev->type == VSS_WE_IDENTIFY && o->refresh_from && refresh(w, o) == 0)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " refreshed");
	if (ev->type == VSS_WE_PRE_RESTORE || ev->type == VSS_WE_POST_RESTORE ||
	    ev->type == VSS_WE_ABORT) {
		struct vss_writer_restore_info ri;

		if (vss_writer_restore_info(w, &ri) == 0) {
			n += snprintf(line + n, sizeof(line) - (size_t)n, " backup=%s to=%s",
				      ri.backup_id, ri.to ? ri.to : "-");
			for (size_t i = 0; i < ri.component_count; i++) {
				struct vss_writer_restore_component rc;
				struct vss_wmd_file_spec loc;

				vss_writer_restore_component(w, i, &rc);
				n += snprintf(line + n, sizeof(line) - (size_t)n, " %s:%d:%s:%s:%llu%s%s",
					      rc.name, (int)rc.method,
					      rc.original_location ? "original" : "alternate",
					      vss_file_restore_status_name(rc.status), rc.files,
					      rc.message ? ":" : "", rc.message ? rc.message : "");
				for (size_t j = 0; j < rc.location_count &&
				     vss_writer_restore_location(w, i, j, &loc) == 0; j++)
					n += snprintf(line + n, sizeof(line) - (size_t)n, " %s->%s",
						      loc.path, loc.destination);
			}
		}
	}
	if (ev->type == VSS_WE_PREPARE_BACKUP && ev->components) {
		size_t k = vss_bcd_component_count(ev->components);
		char stamp[64];

		o->backups++;
		snprintf(stamp, sizeof(stamp), "%s-%u", o->name, o->backups);
		/* A writer may ask with no component selected, too. */
		if (o->detail)
			n += snprintf(line + n, sizeof(line) - (size_t)n, " type=%d partial=%d",
				      (int)ev->backup_type,
				      vss_bcd_partial_file_support(ev->components));
		for (size_t i = 0; i < k; i++) {
			struct vss_bcd_component *c = vss_bcd_component_at(ev->components, i);
			const char *prev = vss_bcd_previous_backup_stamp(c);

			n += snprintf(line + n, sizeof(line) - (size_t)n, " previous=%s",
				      prev ? prev : "-");
			/* auto: only when the schema says the writer keeps stamps. */
			if (o->stamp && (strcmp(o->stamp, "auto") != 0 ||
					 (o->schema_now & VSS_BS_TIMESTAMPED)))
				vss_bcd_set_backup_stamp(c, strcmp(o->stamp, "auto") == 0 ? stamp
							 : o->stamp, NULL);
			if (o->stamp && o->detail && vss_bcd_backup_stamp(c))
				n += snprintf(line + n, sizeof(line) - (size_t)n, " stamp=%s",
					      vss_bcd_backup_stamp(c));
			if (vss_bcd_partial_file_support(ev->components))
				add_partials(o, c);
			add_differenced(o, c);
			if (o->partial) {
				struct vss_bcd_range r = { 0, 4096 };

				vss_bcd_add_partial_file(c, &(struct vss_bcd_partial_file){
					.path = "/data", .filename = "big.db", .ranges = &r,
					.range_count = 1, .metadata = "page 0" }, NULL);
				vss_bcd_add_differenced_files(c, &(struct vss_bcd_differenced_files){
					.path = "/data", .file_spec = "*.log", .recursive = true,
					.last_modify = { 1700000000, 0 } }, NULL);
			}
		}
	}
	if (ev->type == VSS_WE_BACKUP_COMPLETE && ev->components) {
		size_t k = vss_bcd_component_count(ev->components);

		for (size_t i = 0; i < k; i++)
			n += snprintf(line + n, sizeof(line) - (size_t)n, " succeeded=%d",
				      vss_bcd_backup_succeeded(vss_bcd_component_at(ev->components,
										    i)));
	}
	n += snprintf(line + n, sizeof(line) - (size_t)n, "\n");
	fd = open(o->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		(void)!write(fd, line, (size_t)n);
		close(fd);
	}
	if (o->crash_at && strcmp(o->crash_at, ev->name) == 0)
		kill(getpid(), SIGKILL);
	if (o->slow_at[0]) {
		char key[64], *at;

		snprintf(key, sizeof(key), ",%s,", ev->name);
		if ((at = strstr(o->slow_at, key))) {
			/* Once: the event's name is blanked out of the list. */
			memset(at + 1, ' ', strlen(key) - 2);
			usleep(o->slow_ms * 1000u);
		}
	}
	if (o->hang_at && strcmp(o->hang_at, ev->name) == 0) {
		while (!stop && !resume)
			usleep(20000);
		if (resume && !o->hang_again)
			o->hang_at = NULL;
		resume = 0;
	}
	if (o->fail_at && strcmp(o->fail_at, ev->name) == 0) {
		enum vss_writer_failure kind = VSS_WF_NONRETRYABLE;

		if (o->kind && vss_writer_failure_from_name(o->kind) > 0)
			kind = (enum vss_writer_failure)vss_writer_failure_from_name(o->kind);
		vss_writer_set_failure(w, kind, "%s was told to fail at %s", o->name, ev->name);
		return -EIO;
	}
	return 0;
}

/* Logged as events are: "NAME connection up|down". */
static void on_connection(struct vss_writer *w, bool up, const char *why, void *data)
{
	struct opts *o = data;
	char line[256];
	int fd, n;

	(void)w;
	(void)why;
	n = snprintf(line, sizeof(line), "%s connection %s\n", o->name, up ? "up" : "down");
	fd = open(o->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		(void)!write(fd, line, (size_t)n);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	struct vss_writer_handlers h = {
		.size = sizeof(struct vss_writer_handlers),
		.identify = handle, .prepare_backup = handle, .prepare_snapshot = handle,
		.freeze = handle, .thaw = handle, .post_snapshot = handle,
		.backup_complete = handle, .abort = handle,
		.pre_restore = handle, .post_restore = handle,
	};
	struct opts o = { .name = "test", .log = "/dev/null", .cls = "back", .path = "/data",
			  .method = "restore_if_can_replace", .writer_restore = "always",
			  .slow_ms = 2500 };
	bool database = false;
	static const char *const methods[] = {
		"", "restore_if_not_there", "restore_if_can_replace", "stop_restore_start",
		"restore_to_alternate_location", "restore_at_reboot",
		"restore_at_reboot_if_cannot_replace", "custom", "restore_stop_start",
	};
	enum vss_restore_method method = 0;
	struct vss_error err = { 0 };
	struct vss_writer *w;
	struct vss_wmd *wmd;
	uuid_t u;
	char inst[37], cls[37];
	int rc;

	for (int i = 1; i + 1 < argc + 1; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--partial") == 0) {
			o.partial = true;
			continue;
		}
		if (strcmp(a, "--reconnect") == 0) {
			o.reconnect = true;
			continue;
		}
		if (strcmp(a, "--detail") == 0) {
			o.detail = true;
			continue;
		}
		if (strcmp(a, "--hang-again") == 0) {
			o.hang_again = true;
			continue;
		}
		if (strcmp(a, "--shutdown") == 0) {
			h.backup_shutdown = handle;
			continue;
		}
		if (!v) {
			fprintf(stderr, "%s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--name") == 0) o.name = v;
		else if (strcmp(a, "--log") == 0) o.log = v;
		else if (strcmp(a, "--run-dir") == 0) o.run_dir = v;
		else if (strcmp(a, "--fail-at") == 0) o.fail_at = v;
		else if (strcmp(a, "--kind") == 0) o.kind = v;
		else if (strcmp(a, "--hang-at") == 0) o.hang_at = v;
		else if (strcmp(a, "--crash-at") == 0) o.crash_at = v;
		else if (strcmp(a, "--slow-at") == 0)
			snprintf(o.slow_at, sizeof(o.slow_at), ",%s,", v);
		else if (strcmp(a, "--slow-ms") == 0) o.slow_ms = (unsigned)atoi(v);
		else if (strcmp(a, "--stamp") == 0) o.stamp = v;
		else if (strcmp(a, "--class") == 0) o.cls = v;
		else if (strcmp(a, "--timeout") == 0) o.timeout_ms = (unsigned)atoi(v);
		else if (strcmp(a, "--schema") == 0) o.schema = (uint32_t)strtoul(v, NULL, 0);
		else if (strcmp(a, "--set") == 0 && o.nsets < MAX_SETS) o.sets[o.nsets++] = v;
		else if (strcmp(a, "--exclude") == 0 && o.nexcludes < MAX_SETS)
			o.excludes[o.nexcludes++] = v;
		else if (strcmp(a, "--partial-from") == 0) o.partial_from = v;
		else if (strcmp(a, "--refresh-from") == 0) o.refresh_from = v;
		else if (strcmp(a, "--differenced-from") == 0) o.differenced_from = v;
		else if (strcmp(a, "--path") == 0) o.path = v;
		else if (strcmp(a, "--method") == 0) o.method = v;
		else if (strcmp(a, "--service") == 0) o.service = v;
		else if (strcmp(a, "--alt") == 0) o.alt = v;
		else if (strcmp(a, "--writer-restore") == 0) o.writer_restore = v;
		else {
			fprintf(stderr, "unknown option %s\n", a);
			return 2;
		}
	}
	signal(SIGTERM, on_term);
	signal(SIGUSR1, on_usr1);
	signal(SIGPIPE, SIG_IGN);
	uuid_generate_random(u);
	uuid_unparse_lower(u, inst);
	/* One class ID per name, so that a name is a writer kind. */
	uuid_generate_sha1(u, (unsigned char[16]){ 0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11,
						  0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4,
						  0x30, 0xc8 }, o.name, strlen(o.name));
	uuid_unparse_lower(u, cls);
	rc = vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = o.name, .class_id = cls, .instance_id = inst,
		.usage = strcmp(o.cls, "system") == 0 ? VSS_UT_SYSTEM_SERVICE : VSS_UT_USER_DATA,
		.source = strcmp(o.cls, "back") == 0 ? VSS_ST_TRANSACTED_DB : VSS_ST_OTHER },
		&wmd, &err);
	o.schema_now = o.schema ? o.schema : VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL |
		       VSS_BS_TIMESTAMPED | VSS_BS_LAST_MODIFY;
	if (rc == 0)
		rc = vss_wmd_set_backup_schema(wmd, o.schema_now, &err);
	for (int i = 0; i < o.nsets; i++)
		database |= strstr(o.sets[i], ":log") != NULL;
	if (rc == 0)
		rc = vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
			.type = database ? VSS_CT_DATABASE : VSS_CT_FILE_GROUP, .name = "data",
			.selectable = true }, &err);
	if (rc == 0 && !o.nsets)
		rc = vss_wmd_add_file_set(wmd, NULL, "data", &(struct vss_wmd_file_set){
			.kind = VSS_FSK_FILES, .path = o.path, .file_spec = "*",
			.recursive = true, .backup_type_mask = VSS_FSBT_DEFAULT }, &err);
	/* PATH:SPEC:MASK[:r] and PATH:SPEC. */
	for (int i = 0; rc == 0 && i < o.nsets + o.nexcludes; i++) {
		char *copy = strdup(i < o.nsets ? o.sets[i] : o.excludes[i - o.nsets]), *save;
		char *path = strtok_r(copy, ":", &save), *spec = strtok_r(NULL, ":", &save);
		char *mask = strtok_r(NULL, ":", &save), *rec = strtok_r(NULL, ":", &save);
		char *kind = strtok_r(NULL, ":", &save);

		if (i < o.nsets)
			rc = vss_wmd_add_file_set(wmd, NULL, "data", &(struct vss_wmd_file_set){
				.kind = !database ? VSS_FSK_FILES
					: kind && strcmp(kind, "log") == 0 ? VSS_FSK_LOG
					: VSS_FSK_DATABASE, .path = path, .file_spec = spec,
				.recursive = rec && strcmp(rec, "r") == 0,
				.backup_type_mask = mask ? (uint32_t)strtoul(mask, NULL, 0) : 0 },
				&err);
		else
			rc = vss_wmd_add_exclude_files(wmd, &(struct vss_wmd_file_spec){
				.path = path, .file_spec = spec, .recursive = true }, &err);
		free(copy);
	}
	for (int k = 1; k < (int)(sizeof(methods) / sizeof(methods[0])); k++)
		if (strcmp(o.method, methods[k]) == 0)
			method = k;
	if (rc == 0 && o.alt) {
		char from[4096];
		const char *eq = strchr(o.alt, '=');

		snprintf(from, sizeof(from), "%.*s", eq ? (int)(eq - o.alt) : 0, o.alt);
		rc = vss_wmd_add_alternate_location_mapping(wmd, &(struct vss_wmd_file_spec){
			.path = from, .file_spec = "*", .recursive = true,
			.destination = eq ? eq + 1 : "" }, &err);
	}
	if (rc == 0)
		rc = vss_wmd_set_restore_method(wmd, &(struct vss_wmd_restore_method){
			.method = method, .service = o.service,
			.user_procedure = method == VSS_RME_CUSTOM ? "copy the files by hand" : NULL,
			.writer_restore = strcmp(o.writer_restore, "never") == 0 ? VSS_WRE_NEVER :
					  strcmp(o.writer_restore, "if_replace_fails") == 0 ?
					  VSS_WRE_IF_REPLACE_FAILS : VSS_WRE_ALWAYS }, &err);
	if (rc == 0)
		rc = vss_wmd_serialize(wmd, &o.doc, NULL, &err);
	if (rc == 0)
		rc = vss_writer_open(&(struct vss_writer_options){
			.size = sizeof(struct vss_writer_options), .run_dir = o.run_dir,
			.timeout_ms = o.timeout_ms, .reconnect = o.reconnect,
			.on_connection = on_connection }, wmd, &h, &o, &w, &err);
	vss_wmd_free(wmd);
	if (rc < 0) {
		fprintf(stderr, "vss-test-writer: %s\n", err.msg);
		free(o.doc);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	rc = vss_writer_run(w, &stop, &err);
	vss_writer_close(w);
	free(o.doc);
	return rc < 0 && rc != -ECONNRESET ? 1 : 0;
}
