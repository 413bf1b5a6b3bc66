/*
 * vss/cmd_backup.c - vss backup create|list|show|verify|delete and vss
 * restore: a shadow copy set taken through the requester API, its shadows
 * exposed and handed to the backup repository (vss/backup.h) as the
 * sources, recorded under their live paths.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vss/backup.h>
#include <vss/client.h>
#include <vss/requester.h>

#include "cli.h"

#define MAX_TARGETS 64

static const char *const type_names[] = { "", "full", "incremental", "differential", "log",
					  "copy" };

static void time_str(uint64_t ns, char out[40])
{
	time_t s = (time_t)(ns / 1000000000u);
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(out, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void backup_show_progress(void *arg, const struct vss_backup_progress *p)
{
	struct progress *pr = arg;
	struct timespec now;
	double secs, rate;
	char b[32], t[32], r[32], left[48] = "";

	if (!pr->on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	secs = (double)(now.tv_sec - pr->start.tv_sec) +
	       (double)(now.tv_nsec - pr->start.tv_nsec) / 1e9;
	rate = secs > 0 ? (double)p->bytes / secs : 0;
	cli_bytes((uint64_t)rate, r);
	if (!p->done && p->total_bytes > p->bytes && rate > 0)
		snprintf(left, sizeof(left), ", about %.0f s left",
			 (double)(p->total_bytes - p->bytes) / rate);
	if (!p->files && !p->total_files && p->total_bytes)     /* an image: bytes only */
		fprintf(stderr, "\r%s/%s, %s/s, %.0f s%s%s", cli_bytes(p->bytes, b),
			cli_bytes(p->total_bytes, t), r, secs, left, p->done ? "\n" : "   ");
	else if (p->total_files || p->total_bytes)
		fprintf(stderr, "\r%llu/%llu files, %s/%s, %s/s, %.0f s%s%s",
			(unsigned long long)p->files, (unsigned long long)p->total_files,
			cli_bytes(p->bytes, b), cli_bytes(p->total_bytes, t), r, secs, left,
			p->done ? "\n" : "   ");
	else
		fprintf(stderr, "\r%llu files, %s, %s/s, %.0f s%s",
			(unsigned long long)p->files, cli_bytes(p->bytes, b), r, secs,
			p->done ? "\n" : "   ");
	fflush(stderr);
}

void backup_progress_init(struct progress *pr, const struct cli_args *a)
{
	clock_gettime(CLOCK_MONOTONIC, &pr->start);
	pr->on = !cli_has(a, "quiet") && isatty(2);
}

static json_t *info_json(const struct vss_backup_info *b)
{
	char created[40];
	json_t *src = json_array();

	time_str(b->created_ns, created);
	for (size_t i = 0; b->sources && i < b->nsources; i++)
		json_array_append_new(src, json_string(b->sources[i]));
	return json_pack("{s:s, s:s, s:s?, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
			 "id", b->id, "type", type_names[b->type], "base",
			 b->base[0] ? b->base : NULL, "created", created,
			 "created_ns", (json_int_t)b->created_ns,
			 "instant_ns", (json_int_t)b->instant_ns, "files", (json_int_t)b->files,
			 "files_stored", (json_int_t)b->files_stored,
			 "bytes_stored", (json_int_t)b->bytes_stored,
			 "deleted", (json_int_t)b->deleted, "sources", src);
}

static int repo_open(const char *dir, unsigned int flags, struct vss_repo **r)
{
	struct vss_error err = { 0 };

	if (!dir)
		return cli_error(EXIT_USAGE, "say which repository (--to, --in or --from DIR)");
	if (vss_repo_open(dir, flags, r, &err) < 0)
		return cli_error(EXIT_FAILED, "%s", err.msg);
	return 0;
}

/* ---- vss backup create ---- */

struct source {
	char *live;             /* the path recorded */
	char *read;             /* the same in the exposed shadow */
};

/* The writers' documents, serialized, for the backup to keep. */
static void documents(struct vss_requester *r, char **bcd, char ***wmds, size_t *n)
{
	struct vss_bcd *c = vss_requester_components(r);
	size_t len;

	*bcd = NULL;
	if (c)
		vss_bcd_serialize(c, bcd, &len, NULL);
	*n = vss_requester_writer_count(r);
	*wmds = calloc(*n ? *n : 1, sizeof(char *));
	for (size_t i = 0; *wmds && i < *n; i++) {
		const struct vss_wmd *w = vss_requester_writer_metadata(r, i);

		if (w)
			vss_wmd_serialize(w, &(*wmds)[i], &len, NULL);
	}
}

/* --component WRITER[:PATH] ..., or every component. */
static int select_components(struct vss_requester *r, const struct cli_args *a,
			     struct vss_error *err)
{
	const char *given[MAX_TARGETS];
	int n = cli_get_all(a, "component", given, MAX_TARGETS), rc = 0;

	if (n == 0)
		return vss_requester_select_all_components(r, err);
	for (int k = 0; rc == 0 && k < n; k++) {
		char *writer = strdup(given[k]), *path = writer ? strchr(writer, ':') : NULL;

		if (!writer)
			return vss_error_set(err, -ENOMEM, "out of memory");
		if (path)
			*path++ = '\0';
		rc = vss_requester_select_component(r, writer, path, err);
		free(writer);
	}
	return rc;
}

/* The writers of components asked for by name (--component WRITER[:PATH])
 * are required: one that fails fails the backup instead of being left out
 * with its components. */
static int require_named_writers(struct vss_requester *r, const struct cli_args *a,
				 struct vss_error *err)
{
	const char *given[MAX_TARGETS];
	int n = cli_get_all(a, "component", given, MAX_TARGETS), rc = 0;

	for (int k = 0; rc == 0 && k < n; k++) {
		char *writer = strndup(given[k], strcspn(given[k], ":"));

		rc = writer ? vss_requester_require_writer(r, writer, err)
			    : vss_error_set(err, -ENOMEM, "out of memory");
		free(writer);
	}
	return rc;
}

/* After PrepareForBackup: each writer left out of the backup (failed at
 * identify or prepare_backup, not required) said on standard error; a log
 * backup that has no component left fails (it would store nothing). */
static int report_dropped(struct vss_requester *req, struct vss_error *err)
{
	const struct vss_bcd *bcd = vss_requester_components(req);
	size_t dropped = 0;

	for (size_t i = 0; i < vss_requester_writer_count(req); i++) {
		struct vss_requester_writer w;

		if (vss_requester_writer_status(req, i, &w) < 0 ||
		    (w.state != VSS_WS_FAILED_AT_IDENTIFY &&
		     w.state != VSS_WS_FAILED_AT_PREPARE_BACKUP))
			continue;
		dropped++;
		fprintf(stderr, "vss: warning: writer %s %s: %s; its components are not in this "
			"backup\n", w.name ? w.name : "?", w.state_name ? w.state_name : "failed",
			w.last_error && *w.last_error ? w.last_error : "no reason given");
	}
	if (dropped && bcd && vss_bcd_backup_type(bcd) == VSS_BT_LOG &&
	    vss_bcd_component_count(bcd) == 0)
		return vss_error_set(err, -ENODATA, "a log backup with no component left: every "
				     "writer that had one failed (said above)");
	return 0;
}

int backup_type_arg(const struct cli_args *a, const char *what, bool log_ok,
		    enum vss_backup_type *bt)
{
	const char *type = cli_has(a, "type") ? cli_get(a, "type") : "full";

	*bt = 0;
	for (int k = VSS_BT_FULL; k <= VSS_BT_COPY; k++)
		if (strcmp(type, type_names[k]) == 0)
			*bt = k;
	if (!*bt || (*bt == VSS_BT_LOG && !log_ok))
		return cli_error(EXIT_USAGE, "backup create: %s is full, incremental, "
				 "differential%s or copy, not \"%s\"", what, log_ok ? ", log" : "",
				 type);
	if (!cli_has(a, "to"))
		return cli_error(EXIT_USAGE, "backup create: say where with --to REPO");
	return 0;
}

int backup_begin(const struct cli_args *a, enum vss_backup_type bt, bool partial,
		 const char *provider, struct vss_requester **req)
{
	struct vss_error err = { 0 };
	int rc;

	*req = NULL;
	if (vss_requester_open(vss_client_run_dir(a->run_dir), req, &err) < 0)
		return cli_error(EXIT_UNREACHABLE, "%s (is vssd running?)", err.msg);
	vss_requester_set_no_writers(*req, cli_has(a, "no-writers"));
	vss_requester_set_allow_live(*req, cli_has(a, "allow-live"));
	rc = provider ? vss_requester_set_provider(*req, provider, &err) : 0;
	if (rc == 0)
		rc = vss_requester_set_backup_state(*req, bt, partial, &err);
	if (rc == 0)
		rc = require_named_writers(*req, a, &err);
	if (rc == 0)
		rc = vss_requester_gather_writer_metadata(*req, &err);
	if (rc == 0)
		rc = select_components(*req, a, &err);
	return rc < 0 ? cli_error(EXIT_FAILED, "backup create: %s", err.msg) : 0;
}

void backup_end(struct vss_requester *req, bool ok)
{
	if (req && !ok)
		vss_requester_abort(req, NULL);
	vss_requester_close(req);
}

int backup_take(struct vss_requester *req, const char *const *fors, int n,
		const char *const *paths, size_t npaths, const struct vss_backup_plan *plan)
{
	struct vss_error err = { 0 };
	int rc = vss_requester_start_snapshot_set(req, &err);

	if (rc == 0 && paths)
		rc = vss_requester_add_paths_to_snapshot_set(req, paths, npaths, &err);
	for (int k = 0; rc == 0 && !paths && k < n; k++) {
		char *t = cli_target(fors[k]);

		rc = t ? vss_requester_add_to_snapshot_set(req, t, &err)
		       : vss_error_set(&err, -ENOMEM, "out of memory");
		free(t);
	}
	if (rc == 0)
		rc = vss_requester_prepare_for_backup(req, &err);
	if (rc == 0)
		rc = report_dropped(req, &err);
	if (rc == 0 && plan)
		rc = vss_backup_plan_check(plan, vss_requester_components(req), &err);
	if (rc == 0)
		rc = vss_requester_do_snapshot_set(req, &err);
	return rc < 0 ? cli_error(EXIT_FAILED, "backup create: %s", err.msg) : 0;
}

/* The live path of each target: a volume's name becomes its mount point. */
static int live_paths(const struct cli_args *a, const char **fors, int n, struct source *src)
{
	json_t *vols = NULL;
	int rc = 0;

	for (int k = 0; k < n && rc == 0; k++) {
		json_t *v;
		size_t i;

		src[k].live = cli_target(fors[k]);
		if (src[k].live[0] == '/')
			continue;
		if (!vols && (rc = cli_call(a, "volume.list", NULL, &vols)))
			break;
		json_array_foreach(json_object_get(vols, "volumes"), i, v)
			if (strcmp(json_string_value(json_object_get(v, "name")), src[k].live) == 0 &&
			    json_is_string(json_object_get(v, "mount"))) {
				free(src[k].live);
				src[k].live = strdup(json_string_value(json_object_get(v, "mount")));
				break;
			}
		if (src[k].live[0] != '/')
			rc = cli_error(EXIT_FAILED, "backup create: %s is a volume with no "
				       "filesystem mounted: a backup of files needs one", fors[k]);
	}
	json_decref(vols);
	return rc;
}

/* The components and the type each was backed up as, for --json. */
static json_t *components_json(const struct vss_backup_plan *plan, const struct vss_bcd *bcd)
{
	json_t *out = json_array();

	for (size_t i = 0; bcd && i < vss_bcd_component_count(bcd); i++) {
		struct vss_bcd_component_info ci;

		vss_bcd_component_info(vss_bcd_component_at(bcd, i), &ci);
		enum vss_backup_type t = vss_backup_plan_component_type(plan, &ci);

		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s?}", "writer_class_id",
						     ci.class_id, "logical_path",
						     ci.logical_path ? ci.logical_path : "", "name",
						     ci.name, "type", t ? type_names[t] : NULL));
	}
	return out;
}

/* Components asked for by name are backed up whole or the backup fails. */
static int all_covered(const struct vss_backup_plan *plan, const struct vss_bcd *bcd)
{
	for (size_t i = 0; i < vss_bcd_component_count(bcd); i++) {
		struct vss_bcd_component_info ci;

		vss_bcd_component_info(vss_bcd_component_at(bcd, i), &ci);
		if (!vss_backup_plan_component_type(plan, &ci))
			return cli_error(EXIT_FAILED, "backup create: component %s%s%s has files "
					 "outside the targets: add them with --for, or leave "
					 "--for out", ci.logical_path ? ci.logical_path : "",
					 ci.logical_path && *ci.logical_path ? "/" : "", ci.name);
	}
	return 0;
}

#define NO_PROVIDER "no provider can shadow it: read live instead (--allow-live)"

/* Why the source at @path is read live: the provider's failure for the set
 * member that holds it, or no provider could shadow it (--allow-live). */
static const char *live_why(struct vss_requester *req, const char *path)
{
	for (size_t k = 0; k < vss_requester_shadow_count(req); k++) {
		struct vss_requester_shadow sh;
		size_t n;

		if (vss_requester_shadow(req, k, &sh) < 0 || !sh.live)
			continue;
		n = strlen(sh.target);
		if (strncmp(path, sh.target, n) == 0 && (path[n] == '\0' || path[n] == '/'))
			return vss_requester_shadow_fallback(req, k)
			       ? vss_requester_shadow_fallback(req, k)
			       : NO_PROVIDER;
	}
	return "read live (--allow-live)";
}

/* --json's "live": per source, null or why it was read live. */
static json_t *live_json(const char *const *live, size_t n)
{
	json_t *out = json_array();

	for (size_t k = 0; k < n; k++)
		json_array_append_new(out, live[k] ? json_string(live[k]) : json_null());
	return out;
}

static int backup_create(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "to", 0, true }, { "for", 0, true }, { "type", 0, true },
		{ "component", 0, true }, { "quiet", 'q', false }, { "no-writers", 0, false },
		{ "allow-live", 0, false }, { NULL, 0, false },
	};
	const char *fors[MAX_TARGETS], *live[MAX_TARGETS] = { NULL };
	const struct vss_wmd **w = NULL;
	struct source src[MAX_TARGETS];
	struct vss_backup_source bs[MAX_TARGETS];
	struct vss_requester *req = NULL;
	struct vss_repo *repo = NULL;
	struct vss_backup_plan *plan = NULL;
	struct vss_backup_params p = { .size = sizeof(p) };
	struct vss_backup_info info;
	struct vss_error err = { 0 };
	struct progress pr;
	struct cli_args a;
	struct timespec taken;
	json_t *vols = NULL;
	char *bcd = NULL, **wmds = NULL, **paths = NULL;
	size_t nw = 0, npaths = 0;
	enum vss_backup_type bt = 0;
	int rc, n = 0, status = EXIT_FAILED;
	bool ok = false, only = false;

	if ((rc = cli_parse(&a, "backup create", argc, argv, opts, 0, 0)))
		return rc;
	if ((rc = backup_type_arg(&a, "a backup of files", true, &bt)))
		return rc;
	if (cli_has(&a, "component") && cli_has(&a, "no-writers"))
		return cli_error(EXIT_USAGE, "backup create: --component needs the writers "
				 "(not --no-writers)");
	if (bt == VSS_BT_LOG && cli_has(&a, "no-writers"))
		return cli_error(EXIT_USAGE, "backup create: a log backup takes only the "
				 "writers' log file sets: not with --no-writers (make an "
				 "incremental instead)");
	memset(src, 0, sizeof(src));
	if ((rc = repo_open(cli_get(&a, "to"), VSS_REPO_CREATE, &repo)))
		return rc;
	if ((rc = backup_begin(&a, bt, true, NULL, &req))) {
		status = rc;
		goto out;
	}
	nw = vss_requester_writer_count(req);
	if (!(w = calloc(nw ? nw : 1, sizeof(*w)))) {
		cli_error(EXIT_FAILED, "backup create: out of memory");
		goto out;
	}
	for (size_t i = 0; i < nw; i++)
		w[i] = vss_requester_writer_metadata(req, i);
	{
		/* No target: the volumes holding the selected components' files
		 * (or, with no component, every mounted volume). */
		if (!cli_has(&a, "for") && (rc = component_targets("backup create", req, MAX_TARGETS,
								   &paths, &npaths))) {
			status = rc;
			goto out;
		}
		if (npaths) {
			only = true;
			n = (int)npaths;
			for (int k = 0; k < n; k++)
				src[k].live = strdup(paths[k]);
		} else {
			if ((n = cli_targets(&a, fors, MAX_TARGETS, &vols)) < 0) {
				status = -n;
				n = 0;
				goto out;
			}
			if ((rc = cli_local_only(&a, fors, n))) {
				status = rc;
				n = 0;
				goto out;
			}
			if ((rc = live_paths(&a, fors, n, src))) {
				status = rc;
				goto out;
			}
		}
		for (int k = 0; k < n; k++)
			bs[k] = (struct vss_backup_source){ .live = src[k].live, .read = src[k].live };
		p.type = bt;
		p.sources = bs;
		p.nsources = (size_t)n;
		/* The base, each component's type, the previous stamps. */
		rc = vss_repo_plan(repo, &p, w, nw, vss_requester_components(req), &plan, &err);
	}
	if (rc == 0 && cli_has(&a, "component") && (rc = all_covered(plan,
			vss_requester_components(req))) != 0) {
		status = rc;
		goto out;
	}
	if (rc < 0) {
		status = cli_error(rc == -ENOMSG ? EXIT_USAGE : EXIT_FAILED, "backup create: %s",
				   err.msg);
		goto out;
	}
	if ((rc = backup_take(req, fors, n, only ? (const char *const *)paths : NULL, npaths,
			      plan))) {
		status = rc;
		goto out;
	}
	clock_gettime(CLOCK_REALTIME, &taken);
	for (size_t k = 0; rc == 0 && k < vss_requester_shadow_count(req); k++) {
		struct vss_requester_shadow sh;

		if ((rc = vss_requester_shadow(req, k, &sh)) < 0)
			break;
		if (vss_requester_shadow_fallback(req, k))
			fprintf(stderr, "vss: warning: %s\n",
				cli_line(vss_requester_shadow_fallback(req, k)));
		else if (sh.live)
			fprintf(stderr, "vss: warning: %s: %s\n", cli_line(sh.target), NO_PROVIDER);
		if (!sh.live && !sh.mount) {
			cli_error(EXIT_FAILED, "backup create: %s is a volume with no filesystem "
				  "mounted: a backup of files needs one", sh.target);
			goto out;
		}
		if (!sh.live)
			rc = vss_requester_expose(req, k, NULL, &err);
	}
	for (int k = 0; rc == 0 && k < n; k++) {
		char read[PATH_MAX];

		if ((rc = vss_requester_translate_path(req, src[k].live, read, sizeof(read),
						       &err)) < 0)
			break;
		src[k].read = strdup(read);
		bs[k].read = src[k].read;
		if (strcmp(read, src[k].live) == 0)
			live[k] = live_why(req, src[k].live);
	}
	if (rc < 0) {
		cli_error(EXIT_FAILED, "backup create: %s", err.msg);
		goto out;
	}
	/* What the backup keeps says which components it backed up: not one
	 * with files outside the targets. */
	for (size_t i = 0; i < vss_bcd_component_count(vss_requester_components(req)); i++) {
		struct vss_bcd_component *c = vss_bcd_component_at(vss_requester_components(req), i);
		struct vss_bcd_component_info ci;

		vss_bcd_component_info(c, &ci);
		vss_bcd_set_backup_succeeded(c, vss_backup_plan_component_type(plan, &ci) != 0);
	}
	documents(req, &bcd, &wmds, &nw);
	backup_progress_init(&pr, &a);
	p.set_id = vss_requester_set_id(req);
	p.instant_ns = (uint64_t)taken.tv_sec * 1000000000u + (uint64_t)taken.tv_nsec;
	p.components = bcd;
	p.writer_metadata = (const char *const *)wmds;
	p.nwriters = nw;
	p.progress = pr.on ? backup_show_progress : NULL;
	p.progress_arg = &pr;
	p.plan = plan;
	p.components_only = only;
	p.live = live;
	if (vss_repo_backup(repo, &p, &info, &err) < 0) {
		cli_error(EXIT_FAILED, "backup create: %s", err.msg);
		goto out;
	}
	ok = true;
	if ((rc = vss_requester_backup_complete(req, true, &err)) < 0) {
		/* The backup is in the repository; the writers were not told. */
		cli_error(EXIT_FAILED, "backup create: backup %s is complete, but telling the "
			  "writers failed: %s", info.id, err.msg);
		goto out;
	}
	if (a.json) {
		json_t *j = info_json(&info), *sources = json_array();

		/* info_json lists no sources: the backup's are these. */
		for (int k = 0; k < n; k++)
			json_array_append_new(sources, json_string(src[k].live));
		json_object_set_new(j, "sources", sources);
		json_object_set_new(j, "live", live_json(live, (size_t)n));
		json_object_set_new(j, "components",
				    components_json(plan, vss_requester_components(req)));
		cli_print_json(j);
		json_decref(j);
	} else {
		char b[32];

		printf("Backup %s (%s%s%s): %llu entries, %llu files stored (%s), %llu deleted\n",
		       info.id, type_names[info.type], info.base[0] ? ", base " : "", info.base,
		       (unsigned long long)info.files, (unsigned long long)info.files_stored,
		       cli_bytes(info.bytes_stored, b), (unsigned long long)info.deleted);
		if (info.type != bt)
			printf("(no earlier backup of the same sources to be %s to: made full)\n",
			       type_names[bt]);
	}
	status = 0;
out:
	backup_end(req, ok);
	vss_repo_close(repo);
	vss_backup_plan_free(plan);
	for (int k = 0; k < n; k++) {
		free(src[k].live);
		free(src[k].read);
	}
	for (size_t i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	for (size_t i = 0; wmds && i < nw; i++)
		free(wmds[i]);
	free(wmds);
	free(w);
	free(bcd);
	json_decref(vols);
	return status;
}

int component_targets(const char *cmd, struct vss_requester *req, size_t max, char ***paths,
		      size_t *n)
{
	struct vss_bcd *bcd = vss_requester_components(req);
	size_t nw = vss_requester_writer_count(req);
	const struct vss_wmd **w;
	struct vss_error err = { 0 };
	int rc;

	*paths = NULL;
	*n = 0;
	if (!vss_bcd_component_count(bcd))
		return 0;
	if (!(w = calloc(nw ? nw : 1, sizeof(*w))))
		return cli_error(EXIT_FAILED, "%s: out of memory", cmd);
	for (size_t i = 0; i < nw; i++)
		w[i] = vss_requester_writer_metadata(req, i);
	rc = vss_backup_component_paths(bcd, w, nw, paths, n, &err);
	free(w);
	if (rc < 0)
		return cli_error(EXIT_FAILED, "%s: %s", cmd, err.msg);
	if (*n == 0 || *n > max) {
		rc = cli_error(EXIT_FAILED, "%s: %s", cmd, *n ? "the components' files are in too "
			       "many places: say where with --for" : "none of the selected "
			       "components' files exist");
		for (size_t i = 0; i < *n; i++)
			free((*paths)[i]);
		free(*paths);
		*paths = NULL;
		*n = 0;
	}
	return rc;
}

/* ---- vss backup list, show ---- */

/* The backup vss_repo_show filled last in @info, as JSON: its fields, and
 * per source null or why it was read live (--allow-live). */
static json_t *shown_json(const struct vss_repo *repo, const struct vss_backup_info *info)
{
	const char *live[MAX_TARGETS];
	size_t n = info->nsources < MAX_TARGETS ? info->nsources : MAX_TARGETS;
	json_t *j = info_json(info);

	for (size_t i = 0; i < n; i++)
		live[i] = vss_repo_show_live(repo, i);
	json_object_set_new(j, "live", live_json(live, n));
	return j;
}

static int backup_list(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { "in", 0, true }, { NULL, 0, false } };
	static const char *const hdr[] = { "ID", "TYPE", "BASE", "CREATED", "ENTRIES",
					   "STORED", "SIZE" };
	struct vss_backup_info *infos;
	struct vss_repo *repo;
	struct vss_error err = { 0 };
	struct cli_args a;
	size_t n;
	int rc;

	if ((rc = cli_parse(&a, "backup list", argc, argv, opts, 0, 0)) ||
	    (rc = repo_open(cli_get(&a, "in"), 0, &repo)))
		return rc;
	if ((rc = vss_repo_list(repo, &infos, &n, &err)) < 0) {
		vss_repo_close(repo);
		return cli_error(EXIT_FAILED, "%s", err.msg);
	}
	if (a.json) {
		json_t *arr = json_array(), *doc;

		/* Each as vss backup show has it: its sources, and which were
		 * read live. */
		for (size_t i = 0; i < n; i++) {
			struct vss_backup_info one;

			if (vss_repo_show(repo, infos[i].id, &one, &err) < 0) {
				json_decref(arr);
				free(infos);
				vss_repo_close(repo);
				return cli_error(EXIT_FAILED, "%s", err.msg);
			}
			json_array_append_new(arr, shown_json(repo, &one));
		}
		doc = json_pack("{s:o}", "backups", arr);
		cli_print_json(doc);
		json_decref(doc);
	} else if (n == 0) {
		puts(CLI_NOTHING_FOUND);
	} else {
		struct cli_table *t = cli_table_new(7, hdr);

		for (size_t i = 0; i < n; i++) {
			char created[40], files[24], stored[24], size[32];
			const char *row[7];

			time_str(infos[i].created_ns, created);
			snprintf(files, sizeof(files), "%llu", (unsigned long long)infos[i].files);
			snprintf(stored, sizeof(stored), "%llu",
				 (unsigned long long)infos[i].files_stored);
			row[0] = infos[i].id;
			row[1] = type_names[infos[i].type];
			row[2] = infos[i].base[0] ? infos[i].base : "-";
			row[3] = created;
			row[4] = files;
			row[5] = stored;
			row[6] = cli_bytes(infos[i].bytes_stored, size);
			cli_table_add(t, row);
		}
		cli_table_print(t);
	}
	free(infos);
	vss_repo_close(repo);
	return 0;
}

static int backup_show(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { "in", 0, true }, { NULL, 0, false } };
	struct vss_backup_info info;
	struct vss_repo *repo;
	struct vss_error err = { 0 };
	struct cli_args a;
	json_t *j;
	int rc;

	if ((rc = cli_parse(&a, "backup show", argc, argv, opts, 1, 1)) ||
	    (rc = repo_open(cli_get(&a, "in"), 0, &repo)))
		return rc;
	if ((rc = vss_repo_show(repo, a.pos[0], &info, &err)) < 0) {
		vss_repo_close(repo);
		return cli_error(EXIT_FAILED, "%s", err.msg);
	}
	j = shown_json(repo, &info);
	if (a.json) {
		cli_print_json(j);
	} else {
		char b[32];

		printf("backup:   %s\ntype:     %s\nbase:     %s\ncreated:  %s\n"
		       "entries:  %llu\nstored:   %llu files, %s\ndeleted:  %llu\n", info.id,
		       type_names[info.type], info.base[0] ? info.base : "-",
		       json_string_value(json_object_get(j, "created")),
		       (unsigned long long)info.files, (unsigned long long)info.files_stored,
		       cli_bytes(info.bytes_stored, b), (unsigned long long)info.deleted);
		for (size_t i = 0; i < info.nsources; i++) {
			printf("source %zu: %s\n", i + 1, cli_line(info.sources[i]));
			if (vss_repo_show_live(repo, i))
				printf("  read live, not from a shadow: %s\n",
				       cli_line(vss_repo_show_live(repo, i)));
		}
	}
	json_decref(j);
	vss_repo_close(repo);
	return 0;
}

/* ---- vss backup verify, delete ---- */

static void print_bad(void *arg, const char *path, const char *why)
{
	fprintf(stderr, "vss: damaged: %s: %s\n", cli_line(path), why);
}

static int backup_verify(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { "in", 0, true }, { NULL, 0, false } };
	struct vss_repo *repo;
	struct vss_error err = { 0 };
	struct cli_args a;
	int rc;

	if ((rc = cli_parse(&a, "backup verify", argc, argv, opts, 0, 1)) ||
	    (rc = repo_open(cli_get(&a, "in"), 0, &repo)))
		return rc;
	rc = vss_repo_verify(repo, a.npos ? a.pos[0] : NULL, print_bad, NULL, &err);
	vss_repo_close(repo);
	if (rc < 0)
		return cli_error(EXIT_FAILED, "%s", err.msg);
	printf("Every stored byte matches its checksum.\n");
	return 0;
}

static int backup_delete(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "in", 0, true }, { "with-dependents", 0, false }, { NULL, 0, false },
	};
	struct vss_repo *repo;
	struct vss_error err = { 0 };
	struct cli_args a;
	size_t n;
	int rc;

	if ((rc = cli_parse(&a, "backup delete", argc, argv, opts, 1, 1)) ||
	    (rc = repo_open(cli_get(&a, "in"), 0, &repo)))
		return rc;
	rc = vss_repo_delete(repo, a.pos[0], cli_has(&a, "with-dependents"), &n, &err);
	vss_repo_close(repo);
	if (rc < 0)
		return cli_error(EXIT_FAILED, "%s", err.msg);
	printf("Deleted %zu backup%s.\n", n, n == 1 ? "" : "s");
	return 0;
}

int cmd_backup(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} subs[] = {
		{ "create", backup_create }, { "list", backup_list }, { "show", backup_show },
		{ "verify", backup_verify }, { "delete", backup_delete },
	};

	if (argc < 1)
		return cli_error(EXIT_USAGE, "backup what? (create, list, show, verify, "
				 "delete; see vss --help)");
	if (strcmp(argv[0], "create") == 0 && cmd_image_wanted(argc - 1, argv + 1))
		return cmd_image_create(argc - 1, argv + 1);    /* cmd_image.c */
	for (size_t k = 0; k < sizeof(subs) / sizeof(subs[0]); k++)
		if (strcmp(argv[0], subs[k].name) == 0)
			return subs[k].fn(argc - 1, argv + 1);
	return cli_error(EXIT_USAGE, "unknown command \"backup %s\" (see vss --help)", argv[0]);
}

/* ---- vss restore ---- */

static const char *const method_names[] = {
	"", "restore_if_not_there", "restore_if_can_replace", "stop_restore_start",
	"restore_to_alternate_location", "restore_at_reboot",
	"restore_at_reboot_if_cannot_replace", "custom", "restore_stop_start",
};

/* What vss restore prints besides its count: each component, and each
 * file a restore method left, staged or failed on. */
struct restore_report {
	bool json;
	json_t *components, *files;
};

static void restored_file(void *arg, const struct vss_requester_restored_file *f)
{
	struct restore_report *rr = arg;

	if (f->status == VSS_RS_ALL)
		return;
	if (rr->json)
		json_array_append_new(rr->files, json_pack(
			"{s:s, s:s?, s:s, s:s?}", "live", f->live, "path", f->path, "status",
			vss_file_restore_status_name(f->status), "why", f->why));
	else if (f->status == VSS_RS_STAGED)
		printf("%s: staged for the next boot\n", cli_line(f->path));
}

static void restored_component(void *arg, const struct vss_requester_restored_component *c)
{
	struct restore_report *rr = arg;
	const char *st = vss_file_restore_status_name(c->status);

	if (rr->json) {
		json_array_append_new(rr->components, json_pack(
			"{s:s, s:s, s:s, s:s, s:s, s:I, s:s?, s:s?}", "writer", c->writer,
			"logical_path", c->logical_path, "name", c->name,
			"method", method_names[c->method], "status", st,
			"files", (json_int_t)c->files, "taken_by", c->taken_by,
			"message", c->message));
		return;
	}
	printf("Component %s:%s%s%s (%s): %s, %llu file%s%s%s\n", cli_line(c->writer),
	       cli_line(c->logical_path), *c->logical_path ? "/" : "", cli_line(c->name),
	       method_names[c->method], st, c->files, c->files == 1 ? "" : "s",
	       c->message ? ": " : "", c->message ? cli_line(c->message) : "");
}

/* vss restore --at-boot: what restores staged for the next boot. */
static int restore_at_boot(const struct cli_args *a)
{
	struct restore_report rr = { .json = a->json, .components = json_array(),
				     .files = json_array() };
	struct vss_error err = { 0 };
	unsigned long long n = 0;
	int rc = vss_requester_restore_at_boot(NULL, restored_file, &rr, &n, &err);

	if (a->json) {
		json_t *j = json_pack("{s:I, s:O}", "files", (json_int_t)n, "failed", rr.files);

		cli_print_json(j);
		json_decref(j);
	} else {
		printf("Put %llu staged file%s in place.\n", n, n == 1 ? "" : "s");
	}
	json_decref(rr.components);
	json_decref(rr.files);
	return rc < 0 ? cli_error(EXIT_FAILED, "restore --at-boot: %s", err.msg) : 0;
}

int cmd_restore(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "from", 0, true }, { "to", 0, true }, { "path", 0, true },
		{ "component", 0, true }, { "no-writers", 0, false },
		{ "at-boot", 0, false }, { "quiet", 'q', false }, { NULL, 0, false },
	};
	const char *paths[MAX_TARGETS], *comps[MAX_TARGETS];
	char *abs_paths[MAX_TARGETS], *to = NULL;
	struct vss_requester_restore_params p = VSS_REQUESTER_RESTORE_PARAMS_INIT;
	struct vss_requester_restore_result res;
	struct restore_report rr = { 0 };
	struct vss_repo *repo;
	struct vss_error err = { 0 };
	struct progress pr;
	struct cli_args a;
	int rc, n, nc;

	if ((rc = cli_parse(&a, "restore", argc, argv, opts, 0, 1)))
		return rc;
	if (cli_has(&a, "at-boot")) {
		if (cli_has(&a, "from") || a.npos)
			return cli_error(EXIT_USAGE, "restore --at-boot takes no repository");
		return restore_at_boot(&a);
	}
	if ((rc = repo_open(cli_get(&a, "from"), 0, &repo)))
		return rc;
	n = cli_get_all(&a, "path", paths, MAX_TARGETS);
	nc = cli_get_all(&a, "component", comps, MAX_TARGETS);
	for (int k = 0; k < n; k++)
		abs_paths[k] = cli_mount_point(paths[k]);
	if (cli_has(&a, "to"))
		to = cli_mount_point(cli_get(&a, "to"));
	backup_progress_init(&pr, &a);
	rr.json = a.json;
	rr.components = json_array();
	rr.files = json_array();
	p.run_dir = a.run_dir;
	p.to = to;
	p.paths = (const char *const *)abs_paths;
	p.npaths = (size_t)n;
	p.components = comps;
	p.ncomponents = (size_t)nc;
	p.no_writers = cli_has(&a, "no-writers");
	p.progress = backup_show_progress;
	p.progress_arg = &pr;
	p.file = restored_file;
	p.component = restored_component;
	p.arg = &rr;
	rc = vss_requester_restore(repo, a.npos ? a.pos[0] : NULL, &p, &res, &err);
	vss_repo_close(repo);
	for (int k = 0; k < n; k++)
		free(abs_paths[k]);
	free(to);
	if (a.json) {
		json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:O, s:O}",
				      "files", (json_int_t)res.files, "bytes", (json_int_t)res.bytes,
				      "staged", (json_int_t)res.staged, "left", (json_int_t)res.left,
				      "writers", (json_int_t)res.writers,
				      "components", rr.components, "not_restored", rr.files);

		if (rc < 0)
			json_object_set_new(j, "error", json_string(err.msg));
		cli_print_json(j);
		json_decref(j);
	} else if (rc == 0 || res.files) {
		char b[32];

		printf("Restored %llu entries (%s).\n", res.files, cli_bytes(res.bytes, b));
		if (res.left)
			printf("%llu file%s left as %s by %s restore method.\n", res.left,
			       res.left == 1 ? "" : "s", res.left == 1 ? "it was" : "they were",
			       res.left == 1 ? "its" : "their");
		if (res.staged)
			printf("%llu file%s staged for the next boot (vss restore --at-boot).\n",
			       res.staged, res.staged == 1 ? "" : "s");
	}
	json_decref(rr.components);
	json_decref(rr.files);
	if (rc < 0)
		return cli_error(rc == -ENOTCONN || rc == -ECONNRESET || rc == -EPIPE ?
				 EXIT_UNREACHABLE : EXIT_FAILED, "restore: %s", err.msg);
	return 0;
}
