/*
 * requester/plan.c - writers' components in a file-level backup
 * (vss/backup.h, doc/backup-format.md "Components"): the plan made before
 * PrepareForBackup (the base, the type each component is backed up as, the
 * previous backup stamps), and the rules the walk of backup_tree.c asks
 * about each entry (file sets and their masks, excluded files, partial and
 * differenced files).
 *
 * A component is backed up as the backup's type unless one of these makes
 * it a full: its writer's schema lacks the type; the base does not hold it
 * (not listed, or not backed up successfully); its writer declares
 * incremental and differential exclusive and its history since its last
 * full (the backups of the same sources but copies, oldest first) holds the
 * other type, or for a differential its last full is not the base.  Its
 * previous stamp is the one the base stored for it.  A component a file
 * set of which is outside the sources is not backed up at all (type 0).
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "requester/repo_i.h"

static const char *const type_names[] = {
	[VSS_BT_FULL] = "full", [VSS_BT_INCREMENTAL] = "incremental",
	[VSS_BT_DIFFERENTIAL] = "differential", [VSS_BT_LOG] = "log", [VSS_BT_COPY] = "copy",
};

static enum vss_backup_type type_of(const char *name)
{
	for (int t = VSS_BT_FULL; name && t <= VSS_BT_COPY; t++)
		if (strcmp(name, type_names[t]) == 0)
			return (enum vss_backup_type)t;
	return 0;
}

/* Whether @path is @dir or inside it ("/" holds everything). */
static bool path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return path[0] == '/';
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* @path without trailing slashes (but "/"), malloc'd. */
static char *path_dup(const char *path)
{
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	return strndup(path, n);
}

static bool same_text(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

struct vss_bcd_component *plan_find_comp(const struct vss_bcd *bcd, const char *class_id,
					 const char *instance_id, const char *lp, const char *name)
{
	struct vss_bcd_component *by_class = NULL;

	for (size_t i = 0; bcd && i < vss_bcd_component_count(bcd); i++) {
		struct vss_bcd_component *c = vss_bcd_component_at(bcd, i);
		struct vss_bcd_component_info ci;

		vss_bcd_component_info(c, &ci);
		if (strcasecmp(ci.class_id, class_id) != 0 || !same_text(ci.logical_path, lp) ||
		    strcmp(ci.name, name) != 0)
			continue;
		if (strcasecmp(ci.instance_id, instance_id) == 0)
			return c;
		if (!by_class)
			by_class = c;
	}
	return by_class;
}

/* The writer @instance_id in @wmds, else one of class @class_id. */
static const struct vss_wmd *find_wmd(const struct vss_wmd *const *wmds, size_t n,
				      const char *class_id, const char *instance_id)
{
	const struct vss_wmd *by_class = NULL;

	for (size_t i = 0; i < n; i++) {
		struct vss_wmd_identity id;

		if (!wmds[i])
			continue;
		vss_wmd_identity(wmds[i], &id);
		if (strcasecmp(id.instance_id, instance_id) == 0)
			return wmds[i];
		if (!by_class && strcasecmp(id.class_id, class_id) == 0)
			by_class = wmds[i];
	}
	return by_class;
}

enum vss_backup_type repo_component_type(json_t *info, const char *class_id,
					 const char *instance_id, const char *logical_path,
					 const char *name)
{
	enum vss_backup_type by_class = 0;
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(info, "components"), i, c) {
		const char *cls = json_string_value(json_object_get(c, "writer_class_id"));
		const char *inst = json_string_value(json_object_get(c, "writer_instance_id"));
		const char *lp = json_string_value(json_object_get(c, "logical_path"));
		const char *nm = json_string_value(json_object_get(c, "name"));
		enum vss_backup_type t = type_of(json_string_value(json_object_get(c, "type")));

		if (!cls || !nm || strcasecmp(cls, class_id) != 0 || !same_text(lp, logical_path) ||
		    strcmp(nm, name) != 0)
			continue;
		if (inst && strcasecmp(inst, instance_id) == 0)
			return t;
		if (!by_class)
			by_class = t;
	}
	return by_class;
}

/* backups/ID/components.json, parsed; NULL if there is none or it does not
 * parse (then no component of that backup counts as backed up). */
static struct vss_bcd *read_bcd(struct vss_repo *r, const char *id)
{
	char path[128], *buf;
	struct vss_bcd *bcd = NULL;
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "backups/%s/components.json", id);
	fd = openat(r->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > VSS_DOC_SIZE_DEFAULT ||
	    !(buf = malloc((size_t)st.st_size + 1))) {
		close(fd);
		return NULL;
	}
	n = pread(fd, buf, (size_t)st.st_size, 0);
	close(fd);
	if (n == st.st_size)
		vss_bcd_parse(buf, (size_t)n, 0, &bcd, NULL);
	free(buf);
	return bcd;
}

/* ---- the plan ---- */

/* backup.json of every backup of @p's sources but copies, oldest first. */
static json_t *history(struct vss_repo *r, const struct vss_backup_plan *plan)
{
	json_t *out = json_array();
	char **ids;
	size_t n;

	if (repo_ids(r, &ids, &n, NULL) < 0)
		return out;
	for (size_t i = 0; i < n; i++) {
		json_t *j = repo_read_info(r, ids[i], NULL);

		if (j && repo_same_sources(j, (const char *const *)plan->sources, plan->nsources) &&
		    strcmp(json_string_value(json_object_get(j, "type")) ?: "", "copy") != 0)
			json_array_append(out, j);
		json_decref(j);
	}
	repo_ids_free(ids, n);
	return out;
}

/* For a writer that does not mix incrementals and differentials: whether
 * the component's history since its last full allows @type. */
static bool exclusive_allows(json_t *hist, const struct plan_comp *c,
			     enum vss_backup_type type, const char *base)
{
	enum vss_backup_type other = type == VSS_BT_INCREMENTAL ? VSS_BT_DIFFERENTIAL
				     : VSS_BT_INCREMENTAL;
	ssize_t last_full = -1;
	json_t *j;
	size_t i;

	json_array_foreach(hist, i, j)
		if (repo_component_type(j, c->class_id, c->instance_id, c->logical_path,
					c->name) == VSS_BT_FULL)
			last_full = (ssize_t)i;
	if (last_full < 0)
		return false;
	if (type == VSS_BT_DIFFERENTIAL &&
	    strcmp(json_string_value(json_object_get(json_array_get(hist, (size_t)last_full),
						     "id")) ?: "", base) != 0)
		return false;
	for (i = (size_t)last_full + 1; i < json_array_size(hist); i++)
		if (repo_component_type(json_array_get(hist, i), c->class_id, c->instance_id,
					c->logical_path, c->name) == other)
			return false;
	return true;
}

void vss_backup_plan_free(struct vss_backup_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->nsources; i++)
		free(plan->sources[i]);
	free(plan->sources);
	for (size_t i = 0; i < plan->n; i++) {
		free(plan->c[i].writer);
		free(plan->c[i].class_id);
		free(plan->c[i].instance_id);
		free(plan->c[i].logical_path);
		free(plan->c[i].name);
	}
	free(plan->c);
	free(plan);
}

const char *vss_backup_plan_base(const struct vss_backup_plan *plan)
{
	return plan->base;
}

enum vss_backup_type vss_backup_plan_type(const struct vss_backup_plan *plan)
{
	return plan->type;
}

enum vss_backup_type vss_backup_plan_component_type(const struct vss_backup_plan *plan,
						    const struct vss_bcd_component_info *ci)
{
	for (size_t i = 0; i < plan->n; i++)
		if (strcasecmp(plan->c[i].instance_id, ci->instance_id) == 0 &&
		    same_text(plan->c[i].logical_path, ci->logical_path) &&
		    strcmp(plan->c[i].name, ci->name) == 0)
			return plan->c[i].type;
	return 0;
}

static bool in_sources(const struct vss_backup_plan *plan, const char *path, bool overlap);

/* Whether every file set of component @ci that exists is inside the
 * plan's sources (a component backed up in part is not backed up). */
static bool covered(const struct vss_backup_plan *plan, const struct vss_wmd *wmd,
		    const struct vss_bcd_component_info *ci)
{
	int comp = wmd ? vss_wmd_find_component(wmd, ci->logical_path, ci->name) : -ENOENT;

	for (size_t i = 0; comp >= 0 && i < vss_wmd_file_set_count(wmd, (size_t)comp); i++) {
		struct vss_wmd_file_set fs;
		struct stat st;

		vss_wmd_file_set(wmd, (size_t)comp, i, &fs);
		if (lstat(fs.path, &st) == 0 && !in_sources(plan, fs.path, false))
			return false;
	}
	return true;
}

/* Whether component @ci of @wmd has a log file set: what a log backup takes. */
static bool has_log_set(const struct vss_wmd *wmd, const struct vss_bcd_component_info *ci)
{
	int comp = wmd ? vss_wmd_find_component(wmd, ci->logical_path, ci->name) : -ENOENT;

	for (size_t i = 0; comp >= 0 && i < vss_wmd_file_set_count(wmd, (size_t)comp); i++) {
		struct vss_wmd_file_set fs;

		vss_wmd_file_set(wmd, (size_t)comp, i, &fs);
		if (fs.kind == VSS_FSK_LOG)
			return true;
	}
	return false;
}

/* Decides one component's type and previous stamp. */
static int plan_component(struct vss_backup_plan *plan, struct vss_bcd_component *c,
			  const struct vss_wmd *wmd, json_t *base_info,
			  const struct vss_bcd *base_bcd, json_t **hist, struct vss_repo *r,
			  struct vss_error *err)
{
	struct plan_comp *pc = &plan->c[plan->n];
	struct vss_bcd_component_info ci;
	struct vss_wmd_identity id = { 0 };
	enum vss_backup_type t = plan->type;
	struct vss_bcd_component *bc = NULL;
	uint32_t schema = wmd ? vss_wmd_backup_schema(wmd) : 0;

	vss_bcd_component_info(c, &ci);
	if (wmd)
		vss_wmd_identity(wmd, &id);
	if (!(pc->writer = strdup(id.writer_name ? id.writer_name : ci.class_id)) ||
	    !(pc->class_id = strdup(ci.class_id)) || !(pc->instance_id = strdup(ci.instance_id)) ||
	    !(pc->logical_path = strdup(ci.logical_path ? ci.logical_path : "")) ||
	    !(pc->name = strdup(ci.name)))
		return vss_error_set(err, -ENOMEM, "out of memory");
	plan->n++;
	if (!covered(plan, wmd, &ci)) {
		pc->type = 0;   /* not backed up: its files are not all in the sources */
		return vss_bcd_set_previous_backup_stamp(c, NULL, err);
	}
	if ((t == VSS_BT_INCREMENTAL && !(schema & VSS_BS_INCREMENTAL)) ||
	    (t == VSS_BT_DIFFERENTIAL && !(schema & VSS_BS_DIFFERENTIAL)) ||
	    (t == VSS_BT_LOG && !(schema & VSS_BS_LOG)))
		t = VSS_BT_FULL;
	if (t == VSS_BT_INCREMENTAL || t == VSS_BT_DIFFERENTIAL || t == VSS_BT_LOG) {
		enum vss_backup_type bt = repo_component_type(base_info, ci.class_id, ci.instance_id,
							      ci.logical_path, ci.name);

		bc = plan_find_comp(base_bcd, ci.class_id, ci.instance_id, ci.logical_path, ci.name);
		if (!bt || !bc || !vss_bcd_backup_succeeded(bc) ||
		    (t == VSS_BT_DIFFERENTIAL && bt != VSS_BT_FULL)) {
			t = VSS_BT_FULL;
		} else if (schema & VSS_BS_EXCLUSIVE_INCREMENTAL_DIFFERENTIAL) {
			if (!*hist)
				*hist = history(r, plan);
			if (!exclusive_allows(*hist, pc, t, plan->base))
				t = VSS_BT_FULL;
		}
	}
	pc->type = t;
	/* The stamp the base stored; none for a component backed up in full. */
	return vss_bcd_set_previous_backup_stamp(c, (t == VSS_BT_INCREMENTAL ||
						     t == VSS_BT_DIFFERENTIAL || t == VSS_BT_LOG) &&
						 (schema & VSS_BS_TIMESTAMPED)
						 ? vss_bcd_backup_stamp(bc) : NULL, err);
}

int vss_repo_plan(struct vss_repo *r, const struct vss_backup_params *p,
		  const struct vss_wmd *const *wmds, size_t nwmds, struct vss_bcd *bcd,
		  struct vss_backup_plan **out, struct vss_error *err)
{
	struct vss_backup_plan *plan;
	struct vss_backup_params pp;
	struct vss_bcd *base_bcd = NULL;
	json_t *base_info = NULL, *hist = NULL;
	char sha[SHA256_HEX];
	size_t n = bcd ? vss_bcd_component_count(bcd) : 0;
	int rc;

	*out = NULL;
	if ((rc = repo_params_in(p, &pp, err)) < 0)
		return rc;
	/* A log backup with no log file set to take would be its base again. */
	if (pp.type == VSS_BT_LOG) {
		bool any = false;

		for (size_t i = 0; i < n && !any; i++) {
			struct vss_bcd_component_info ci;

			vss_bcd_component_info(vss_bcd_component_at(bcd, i), &ci);
			any = has_log_set(find_wmd(wmds, nwmds, ci.class_id, ci.instance_id), &ci);
		}
		if (!any)
			return vss_error_set(err, -ENOMSG, "a log backup takes only the writers' "
					     "log file sets, and none of the selected components "
					     "has one: it would be its base again (make an "
					     "incremental instead)");
	}
	if (!(plan = calloc(1, sizeof(*plan))) ||
	    !(plan->sources = calloc(pp.nsources, sizeof(char *))) ||
	    !(plan->c = calloc(n ? n : 1, sizeof(*plan->c)))) {
		vss_backup_plan_free(plan);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < pp.nsources; i++) {
		if (!(plan->sources[plan->nsources] = strdup(pp.sources[i].live))) {
			vss_backup_plan_free(plan);
			return vss_error_set(err, -ENOMEM, "out of memory");
		}
		plan->nsources++;
	}
	plan->type = pp.type;
	if ((rc = repo_lock(r, LOCK_SH, err)) < 0)
		goto out;
	rc = repo_find_base(r, (const char *const *)plan->sources, plan->nsources, pp.type,
			    plan->base, sha, err);
	if (rc == 0 && !plan->base[0] && (pp.type == VSS_BT_INCREMENTAL ||
					  pp.type == VSS_BT_DIFFERENTIAL || pp.type == VSS_BT_LOG))
		plan->type = VSS_BT_FULL;
	if (rc == 0 && plan->base[0]) {
		base_info = repo_read_info(r, plan->base, NULL);
		base_bcd = read_bcd(r, plan->base);
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct vss_bcd_component *c = vss_bcd_component_at(bcd, i);
		struct vss_bcd_component_info ci;

		vss_bcd_component_info(c, &ci);
		rc = plan_component(plan, c, find_wmd(wmds, nwmds, ci.class_id, ci.instance_id),
				    base_info, base_bcd, &hist, r, err);
	}
	repo_unlock(r);
out:
	json_decref(base_info);
	json_decref(hist);
	vss_bcd_free(base_bcd);
	if (rc < 0) {
		vss_backup_plan_free(plan);
		return rc;
	}
	*out = plan;
	return 0;
}

static const char *writer_of(const struct vss_backup_plan *plan,
			     const struct vss_bcd_component_info *ci)
{
	for (size_t i = 0; i < plan->n; i++)
		if (strcasecmp(plan->c[i].instance_id, ci->instance_id) == 0)
			return plan->c[i].writer;
	return ci->class_id;
}

static bool in_sources(const struct vss_backup_plan *plan, const char *path, bool overlap)
{
	for (size_t i = 0; i < plan->nsources; i++)
		if (path_under(path, plan->sources[i]) ||
		    (overlap && path_under(plan->sources[i], path)))
			return true;
	return false;
}

int vss_backup_plan_check(const struct vss_backup_plan *plan, const struct vss_bcd *bcd,
			  struct vss_error *err)
{
	for (size_t i = 0; bcd && i < vss_bcd_component_count(bcd); i++) {
		const struct vss_bcd_component *c = vss_bcd_component_at(bcd, i);
		struct vss_bcd_component_info ci;

		vss_bcd_component_info(c, &ci);
		for (size_t k = 0; k < vss_bcd_partial_file_count(c); k++) {
			struct vss_bcd_partial_file pf;
			char *full;
			bool ok;

			vss_bcd_partial_file(c, k, &pf);
			if (asprintf(&full, "%s%s%s", pf.path, strcmp(pf.path, "/") ? "/" : "",
				     pf.filename) < 0)
				return vss_error_set(err, -ENOMEM, "out of memory");
			ok = in_sources(plan, full, false);
			if (!ok)
				vss_error_set(err, -EINVAL, "writer %s named the partial file %s, "
					      "which is outside this backup's sources (%s%s)",
					      writer_of(plan, &ci), full, plan->sources[0],
					      plan->nsources > 1 ? ", ..." : "");
			free(full);
			if (!ok)
				return -EINVAL;
		}
		for (size_t k = 0; k < vss_bcd_differenced_files_count(c); k++) {
			struct vss_bcd_differenced_files df;

			vss_bcd_differenced_files(c, k, &df);
			if (!in_sources(plan, df.path, df.recursive))
				return vss_error_set(err, -EINVAL, "writer %s named differenced "
						     "files in %s, which is outside this "
						     "backup's sources (%s%s)",
						     writer_of(plan, &ci), df.path,
						     plan->sources[0],
						     plan->nsources > 1 ? ", ..." : "");
		}
	}
	return 0;
}

/* ---- the sources of a backup with no target ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vss_backup_component_paths(const struct vss_bcd *bcd, const struct vss_wmd *const *wmds,
			       size_t nwmds, char ***paths, size_t *count,
			       struct vss_error *err)
{
	char **v = NULL;
	size_t n = 0, cap = 0, k = 0;

	*paths = NULL;
	*count = 0;
	for (size_t i = 0; bcd && i < vss_bcd_component_count(bcd); i++) {
		struct vss_bcd_component_info ci;
		const struct vss_wmd *wmd;
		int comp;

		vss_bcd_component_info(vss_bcd_component_at(bcd, i), &ci);
		wmd = find_wmd(wmds, nwmds, ci.class_id, ci.instance_id);
		if (!wmd || (comp = vss_wmd_find_component(wmd, ci.logical_path, ci.name)) < 0)
			continue;
		for (size_t s = 0; s < vss_wmd_file_set_count(wmd, (size_t)comp); s++) {
			struct vss_wmd_file_set fs;
			struct stat st;

			vss_wmd_file_set(wmd, (size_t)comp, s, &fs);
			if (lstat(fs.path, &st) < 0)
				continue;       /* nothing there to back up */
			if (n == cap) {
				char **bigger = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));

				if (!bigger)
					goto oom;
				v = bigger;
			}
			if (!(v[n] = path_dup(fs.path)))
				goto oom;
			n++;
		}
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_str);
	/* Sorted, a directory comes before what is inside it. */
	for (size_t i = 0; i < n; i++) {
		if (k && path_under(v[i], v[k - 1])) {
			free(v[i]);
			continue;
		}
		v[k++] = v[i];
	}
	*paths = v;
	*count = k;
	return 0;
oom:
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return vss_error_set(err, -ENOMEM, "out of memory");
}

/* ---- the rules the walk asks ---- */

struct rule_spec {                      /* a file set, an exclude, differenced files */
	char *path, *spec;
	bool recursive;
	unsigned int comp;              /* file sets: 1-based */
	enum vss_selection sel;
	bool snapshot;
	bool log;                       /* file sets: of a component backed up as a log backup */
	bool has_time;                  /* differenced files */
	int64_t since_ns;
	const char *writer;
};

struct rule_partial {
	char *path;
	struct vss_bcd_range *ranges;
	size_t n;
	const char *writer;
};

struct rules {
	struct rule_spec *sets, *excl, *diffs;
	size_t nsets, nexcl, ndiffs;
	struct rule_partial *partials;
	size_t npartials;
	json_t *components;             /* backup.json's */
	char **writers;                 /* names, owned */
	size_t nwriters;
};

static void spec_release(struct rule_spec *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].spec);
	}
	free(v);
}

void rules_free(struct rules *x)
{
	if (!x)
		return;
	spec_release(x->sets, x->nsets);
	spec_release(x->excl, x->nexcl);
	spec_release(x->diffs, x->ndiffs);
	for (size_t i = 0; i < x->npartials; i++) {
		free(x->partials[i].path);
		free(x->partials[i].ranges);
	}
	free(x->partials);
	json_decref(x->components);
	for (size_t i = 0; i < x->nwriters; i++)
		free(x->writers[i]);
	free(x->writers);
	free(x);
}

static int add_spec(struct rule_spec **v, size_t *n, const struct rule_spec *s,
		    const char *path, const char *spec)
{
	struct rule_spec *bigger = realloc(*v, (*n + 1) * sizeof(**v));

	if (!bigger)
		return -ENOMEM;
	*v = bigger;
	bigger[*n] = *s;
	bigger[*n].path = path_dup(path);
	bigger[*n].spec = strdup(spec);
	if (!bigger[*n].path || !bigger[*n].spec) {
		free(bigger[*n].path);
		free(bigger[*n].spec);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct vss_bcd_range *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int add_partial(struct rules *x, const struct vss_bcd_partial_file *pf,
		       const char *writer)
{
	struct rule_partial *bigger = realloc(x->partials, (x->npartials + 1) * sizeof(*bigger));
	struct rule_partial *p;
	size_t k = 0;

	if (!bigger)
		return -ENOMEM;
	x->partials = bigger;
	p = &bigger[x->npartials];
	memset(p, 0, sizeof(*p));
	if (asprintf(&p->path, "%s%s%s", pf->path, strcmp(pf->path, "/") ? "/" : "",
		     pf->filename) < 0)
		return -ENOMEM;
	if (!(p->ranges = malloc(pf->range_count * sizeof(*p->ranges)))) {
		free(p->path);
		return -ENOMEM;
	}
	memcpy(p->ranges, pf->ranges, pf->range_count * sizeof(*p->ranges));
	qsort(p->ranges, pf->range_count, sizeof(*p->ranges), cmp_range);
	/* Touching ranges become one (the document refuses overlapping ones). */
	for (size_t i = 0; i < pf->range_count; i++) {
		if (k && p->ranges[k - 1].offset + p->ranges[k - 1].length >= p->ranges[i].offset) {
			int64_t end = p->ranges[i].offset + p->ranges[i].length;

			if (end > p->ranges[k - 1].offset + p->ranges[k - 1].length)
				p->ranges[k - 1].length = end - p->ranges[k - 1].offset;
			continue;
		}
		p->ranges[k++] = p->ranges[i];
	}
	p->n = k;
	p->writer = writer;
	x->npartials++;
	return 0;
}

static const char *keep_writer(struct rules *x, const char *name)
{
	char **bigger;

	for (size_t i = 0; i < x->nwriters; i++)
		if (strcmp(x->writers[i], name) == 0)
			return x->writers[i];
	if (!(bigger = realloc(x->writers, (x->nwriters + 1) * sizeof(*bigger))))
		return NULL;
	x->writers = bigger;
	if (!(bigger[x->nwriters] = strdup(name)))
		return NULL;
	return bigger[x->nwriters++];
}

/* The file sets of component @pc (number @k) of @wmd, and what its writer
 * told in @c. */
static int add_component(struct rules *x, const struct plan_comp *pc, unsigned int k,
			 const struct vss_wmd *wmd, const struct vss_bcd_component *c,
			 struct vss_error *err)
{
	const char *writer = keep_writer(x, pc->writer);
	int comp = wmd ? vss_wmd_find_component(wmd, pc->logical_path, pc->name) : -ENOENT;
	int rc = 0;

	if (!writer)
		return vss_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; comp >= 0 && i < vss_wmd_file_set_count(wmd, (size_t)comp); i++) {
		struct vss_wmd_file_set fs;
		struct vss_wmd_plan wp;

		vss_wmd_file_set(wmd, (size_t)comp, i, &fs);
		if ((rc = vss_wmd_plan(wmd, pc->type, (size_t)comp, i, &wp, err)) < 0)
			return rc;
		if ((rc = add_spec(&x->sets, &x->nsets, &(struct rule_spec){
			.recursive = fs.recursive, .comp = k, .sel = wp.selection,
			.snapshot = wp.snapshot_required, .log = pc->type == VSS_BT_LOG,
			.writer = writer },
			fs.path, fs.file_spec)) < 0)
			return vss_error_set(err, rc, "out of memory");
	}
	for (size_t i = 0; i < vss_bcd_partial_file_count(c); i++) {
		struct vss_bcd_partial_file pf;

		vss_bcd_partial_file(c, i, &pf);
		if ((rc = add_partial(x, &pf, writer)) < 0)
			return vss_error_set(err, rc, "out of memory");
	}
	for (size_t i = 0; i < vss_bcd_differenced_files_count(c); i++) {
		struct vss_bcd_differenced_files df;

		vss_bcd_differenced_files(c, i, &df);
		if ((rc = add_spec(&x->diffs, &x->ndiffs, &(struct rule_spec){
			.recursive = df.recursive, .writer = writer,
			.has_time = df.last_modify.tv_sec || df.last_modify.tv_nsec,
			.since_ns = (int64_t)df.last_modify.tv_sec * 1000000000 +
				    df.last_modify.tv_nsec }, df.path, df.file_spec)) < 0)
			return vss_error_set(err, rc, "out of memory");
	}
	return 0;
}

int rules_new(const struct vss_backup_plan *plan, const struct vss_bcd *bcd,
	      const char *const *texts, size_t nwmds, struct rules **out, struct vss_error *err)
{
	struct rules *x = calloc(1, sizeof(*x));
	struct vss_wmd **wmds = calloc(nwmds ? nwmds : 1, sizeof(*wmds));
	unsigned int k = 0;
	int rc = 0;

	*out = NULL;
	if (!x || !wmds || !(x->components = json_array())) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nwmds; i++) {
		if (texts[i] && (rc = vss_wmd_parse(texts[i], strlen(texts[i]), 0, &wmds[i],
						    err)) < 0)
			goto out;
		if (wmds[i]) {
			struct vss_wmd_identity id;

			vss_wmd_identity(wmds[i], &id);
			for (size_t e = 0; e < vss_wmd_exclude_count(wmds[i]); e++) {
				struct vss_wmd_file_spec fs;

				vss_wmd_exclude(wmds[i], e, &fs);
				if ((rc = add_spec(&x->excl, &x->nexcl, &(struct rule_spec){
					.recursive = fs.recursive, .writer = keep_writer(x,
					id.writer_name) }, fs.path, fs.file_spec)) < 0) {
					rc = vss_error_set(err, rc, "out of memory");
					goto out;
				}
			}
		}
	}
	/* The plan's components that are still in the document (a writer that
	 * failed at PrepareForBackup left with its components). */
	for (size_t i = 0; i < plan->n; i++) {
		const struct plan_comp *pc = &plan->c[i];
		struct vss_bcd_component *c = plan_find_comp(bcd, pc->class_id, pc->instance_id,
							pc->logical_path, pc->name);

		if (!c || !pc->type)
			continue;
		if ((rc = add_component(x, pc, ++k,
					find_wmd((const struct vss_wmd *const *)wmds, nwmds,
						 pc->class_id, pc->instance_id), c, err)) < 0)
			goto out;
		json_array_append_new(x->components, json_pack(
			"{s:s, s:s, s:s, s:s, s:s, s:s}", "writer", pc->writer,
			"writer_class_id", pc->class_id, "writer_instance_id", pc->instance_id,
			"logical_path", pc->logical_path, "name", pc->name,
			"type", type_names[pc->type]));
	}
out:
	for (size_t i = 0; wmds && i < nwmds; i++)
		vss_wmd_free(wmds[i]);
	free(wmds);
	if (rc < 0) {
		rules_free(x);
		return rc;
	}
	*out = x;
	return 0;
}

/* Whether @spec covers the entry @name in directory @dir. */
static bool spec_covers(const struct rule_spec *s, const char *dir, const char *name)
{
	if (s->recursive ? !path_under(dir, s->path) : strcmp(dir, s->path) != 0)
		return false;
	return fnmatch(s->spec, name, 0) == 0;
}

void rules_match(const struct rules *x, const char *path, struct match *m)
{
	const char *slash = strrchr(path, '/'), *name = slash + 1;
	char dir[PATH_MAX];

	memset(m, 0, sizeof(*m));
	if (!x || !slash)
		return;
	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	for (size_t i = 0; i < x->nexcl && !m->excluded; i++)
		m->excluded = spec_covers(&x->excl[i], dir, name);
	for (size_t i = 0; i < x->nsets; i++) {
		const struct rule_spec *s = &x->sets[i];

		if (!spec_covers(s, dir, name))
			continue;
		/* The strongest of the sets that cover it; any that takes it may
		 * need the shadow. */
		if (!m->comp || s->sel > m->sel) {
			m->comp = s->comp;
			m->sel = s->sel;
			m->log = s->log;
			m->writer = s->writer;
		}
		m->snapshot |= s->sel != VSS_SEL_NONE && s->snapshot;
	}
	for (size_t i = 0; i < x->npartials; i++)
		if (strcmp(x->partials[i].path, path) == 0) {
			m->ranges = x->partials[i].ranges;
			m->nranges = x->partials[i].n;
			m->writer = x->partials[i].writer;
			break;
		}
	for (size_t i = 0; i < x->ndiffs; i++)
		if (spec_covers(&x->diffs[i], dir, name)) {
			m->differenced = true;
			m->has_time = x->diffs[i].has_time;
			m->since_ns = x->diffs[i].since_ns;
			if (!m->writer)
				m->writer = x->diffs[i].writer;
			break;
		}
}

bool rules_dir_wanted(const struct rules *x, const char *path)
{
	for (size_t i = 0; i < x->nsets; i++)
		if (x->sets[i].sel != VSS_SEL_NONE &&
		    (path_under(x->sets[i].path, path) ||
		     (x->sets[i].recursive && path_under(path, x->sets[i].path))))
			return true;
	for (size_t i = 0; i < x->npartials; i++)
		if (path_under(x->partials[i].path, path))
			return true;
	return false;
}

json_t *rules_components_json(const struct rules *x)
{
	return json_incref(x->components);
}
