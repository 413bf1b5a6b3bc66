/*
 * writer/metadata.c - the writer metadata document (doc/writer-metadata.md):
 * built by writers, parsed and examined by requesters, and which file sets a
 * backup of each type takes.  The helpers it shares with components.c are
 * in doc.c.
 *
 * Parsing refuses anything the format does not allow, with a message naming
 * the JSON path; serializing what it accepted and parsing that again gives
 * the same document.  Builder and parser share one set of checks: the parser
 * calls the same internal setters, at the paths the builder would use.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "writer/writer_doc_i.h"

/* ------------------------------------------------------------------------
 * The writer metadata document
 * ------------------------------------------------------------------------ */

static const struct doc_name usage_names[] = {
	{ "user_data", VSS_UT_USER_DATA },
	{ "bootable_system_state", VSS_UT_BOOTABLE_SYSTEM_STATE },
	{ "system_service", VSS_UT_SYSTEM_SERVICE },
	{ "other", VSS_UT_OTHER },
	{ NULL, 0 },
};

static const struct doc_name source_names[] = {
	{ "transacted_db", VSS_ST_TRANSACTED_DB },
	{ "nontransacted_db", VSS_ST_NONTRANSACTED_DB },
	{ "other", VSS_ST_OTHER },
	{ NULL, 0 },
};

const struct doc_name doc_restore_method_names[] = {
	{ "restore_if_not_there", VSS_RME_RESTORE_IF_NOT_THERE },
	{ "restore_if_can_replace", VSS_RME_RESTORE_IF_CAN_REPLACE },
	{ "stop_restore_start", VSS_RME_STOP_RESTORE_START },
	{ "restore_to_alternate_location", VSS_RME_RESTORE_TO_ALTERNATE_LOCATION },
	{ "restore_at_reboot", VSS_RME_RESTORE_AT_REBOOT },
	{ "restore_at_reboot_if_cannot_replace", VSS_RME_RESTORE_AT_REBOOT_IF_CANNOT_REPLACE },
	{ "custom", VSS_RME_CUSTOM },
	{ "restore_stop_start", VSS_RME_RESTORE_STOP_START },
	{ NULL, 0 },
};

static const struct doc_name writer_restore_names[] = {
	{ "never", VSS_WRE_NEVER },
	{ "if_replace_fails", VSS_WRE_IF_REPLACE_FAILS },
	{ "always", VSS_WRE_ALWAYS },
	{ NULL, 0 },
};

static const struct doc_name component_type_names[] = {
	{ "database", VSS_CT_DATABASE },
	{ "file_group", VSS_CT_FILE_GROUP },
	{ NULL, 0 },
};

static const struct doc_name kind_names[] = {
	{ "files", VSS_FSK_FILES },
	{ "database", VSS_FSK_DATABASE },
	{ "log", VSS_FSK_LOG },
	{ NULL, 0 },
};

static const struct doc_name schema_names[] = {
	{ "differential", VSS_BS_DIFFERENTIAL },
	{ "incremental", VSS_BS_INCREMENTAL },
	{ "exclusive_incremental_differential", VSS_BS_EXCLUSIVE_INCREMENTAL_DIFFERENTIAL },
	{ "log", VSS_BS_LOG },
	{ "copy", VSS_BS_COPY },
	{ "timestamped", VSS_BS_TIMESTAMPED },
	{ "last_modify", VSS_BS_LAST_MODIFY },
	{ "lsn", VSS_BS_LSN },
	{ "writer_supports_new_target", VSS_BS_WRITER_SUPPORTS_NEW_TARGET },
	{ "writer_supports_restore_with_move", VSS_BS_WRITER_SUPPORTS_RESTORE_WITH_MOVE },
	{ "independent_system_state", VSS_BS_INDEPENDENT_SYSTEM_STATE },
	{ "rollforward_restore", VSS_BS_ROLLFORWARD_RESTORE },
	{ "restore_rename", VSS_BS_RESTORE_RENAME },
	{ "authoritative_restore", VSS_BS_AUTHORITATIVE_RESTORE },
	{ "writer_supports_parallel_restores", VSS_BS_WRITER_SUPPORTS_PARALLEL_RESTORES },
	{ NULL, 0 },
};

/* The backup-required bits; the snapshot-required bits are these << 8. */
static const struct doc_name fsbt_names[] = {
	{ "full", VSS_FSBT_FULL_BACKUP_REQUIRED },
	{ "differential", VSS_FSBT_DIFFERENTIAL_BACKUP_REQUIRED },
	{ "incremental", VSS_FSBT_INCREMENTAL_BACKUP_REQUIRED },
	{ "log", VSS_FSBT_LOG_BACKUP_REQUIRED },
	{ NULL, 0 },
};

struct wmd_file_set {
	enum vss_file_set_kind kind;
	char *path, *file_spec, *alternate_path;
	bool recursive;
	uint32_t mask;
};

struct wmd_dep {
	char *class_id;  /* NULL: this writer */
	char *logical_path, *name;
};

struct wmd_spec {
	char *path, *file_spec, *destination;
	bool recursive;
};

struct wmd_component {
	enum vss_component_type type;
	char *logical_path, *name, *caption;
	bool selectable, selectable_for_restore;
	struct wmd_file_set *sets;
	size_t nsets, capsets;
	struct wmd_dep *deps;
	size_t ndeps, capdeps;
};

struct vss_wmd {
	char *writer_name, *instance_name;
	char class_id[DOC_UUID_LEN + 1], instance_id[DOC_UUID_LEN + 1];
	enum vss_usage_type usage;
	enum vss_source_type source;

	enum vss_restore_method method;
	char *service, *user_procedure;
	enum vss_writer_restore writer_restore;
	bool reboot_required;

	uint32_t schema;
	struct wmd_component **comps;
	size_t ncomps, capcomps;
	struct wmd_spec *excludes, *maps;
	size_t nexcludes, capexcludes, nmaps, capmaps;
};

static const char *nz(const char *s)
{
	return s ? s : "";
}

static void spec_release(struct wmd_spec *s)
{
	free(s->path);
	free(s->file_spec);
	free(s->destination);
}

static void component_free(struct wmd_component *cp)
{
	if (!cp)
		return;
	for (size_t i = 0; i < cp->nsets; i++) {
		free(cp->sets[i].path);
		free(cp->sets[i].file_spec);
		free(cp->sets[i].alternate_path);
	}
	for (size_t i = 0; i < cp->ndeps; i++) {
		free(cp->deps[i].class_id);
		free(cp->deps[i].logical_path);
		free(cp->deps[i].name);
	}
	free(cp->sets);
	free(cp->deps);
	free(cp->logical_path);
	free(cp->name);
	free(cp->caption);
	free(cp);
}

void vss_wmd_free(struct vss_wmd *wmd)
{
	if (!wmd)
		return;
	for (size_t i = 0; i < wmd->ncomps; i++)
		component_free(wmd->comps[i]);
	for (size_t i = 0; i < wmd->nexcludes; i++)
		spec_release(&wmd->excludes[i]);
	for (size_t i = 0; i < wmd->nmaps; i++)
		spec_release(&wmd->maps[i]);
	free(wmd->comps);
	free(wmd->excludes);
	free(wmd->maps);
	free(wmd->writer_name);
	free(wmd->instance_name);
	free(wmd->service);
	free(wmd->user_procedure);
	free(wmd);
}

static int check_enum(struct doc_ctx *c, const char *member,
		      const struct doc_name *t, unsigned v)
{
	char list[320];

	if (doc_name_of(t, v))
		return 0;
	return doc_fail_at(c, member, -EINVAL, "invalid value %u (one of: %s)", v,
			   doc_name_list(list, sizeof(list), t));
}

/* Contradictions within the schema itself (the rest: wmd_validate). */
static int check_schema(struct doc_ctx *c, uint32_t schema)
{
	const uint32_t needs_id = VSS_BS_EXCLUSIVE_INCREMENTAL_DIFFERENTIAL |
				  VSS_BS_TIMESTAMPED | VSS_BS_LAST_MODIFY;
	uint32_t bad = schema & needs_id;

	if (schema & ~VSS_BS_ALL)
		return doc_fail_at(c, "backup_schema", -EINVAL, "unknown bits 0x%x",
				   schema & ~VSS_BS_ALL);
	if (bad && !(schema & (VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL))) {
		bad &= ~(bad - 1);  /* the first in table order */
		return doc_fail_at(c, "backup_schema", -EINVAL,
				   "\"%s\" needs \"incremental\" or \"differential\"",
				   doc_name_of(schema_names, bad));
	}
	return 0;
}

static int wmd_set_identity(struct doc_ctx *c, struct vss_wmd *wmd,
			    const struct vss_wmd_identity *id)
{
	int r;

	if (!id->writer_name)
		return doc_fail_at(c, "writer_name", -EINVAL, "missing required member");
	if ((r = doc_check_text(c, "writer_name", id->writer_name, VSS_DOC_NAME_MAX, 0)) < 0)
		return r;
	if (!id->class_id)
		return doc_fail_at(c, "writer_class_id", -EINVAL, "missing required member");
	if ((r = doc_check_uuid(c, "writer_class_id", id->class_id, wmd->class_id)) < 0)
		return r;
	if (!id->instance_id)
		return doc_fail_at(c, "writer_instance_id", -EINVAL, "missing required member");
	if ((r = doc_check_uuid(c, "writer_instance_id", id->instance_id, wmd->instance_id)) < 0)
		return r;
	if ((r = doc_check_text(c, "instance_name", nz(id->instance_name),
				VSS_DOC_NAME_MAX, DOC_EMPTY_OK)) < 0)
		return r;
	if ((r = check_enum(c, "usage_type", usage_names, id->usage)) < 0 ||
	    (r = check_enum(c, "source_type", source_names, id->source)) < 0)
		return r;
	wmd->usage = id->usage;
	wmd->source = id->source;
	if ((r = doc_strdup(c, id->writer_name, &wmd->writer_name)) < 0)
		return r;
	return doc_strdup(c, nz(id->instance_name), &wmd->instance_name);
}

static struct vss_wmd *wmd_alloc(void)
{
	struct vss_wmd *wmd = calloc(1, sizeof(*wmd));

	if (wmd) {
		wmd->method = VSS_RME_RESTORE_IF_CAN_REPLACE;
		wmd->writer_restore = VSS_WRE_NEVER;
	}
	return wmd;
}

int vss_wmd_new(const struct vss_wmd_identity *id, struct vss_wmd **out,
		struct vss_error *err)
{
	struct doc_ctx c;
	struct vss_wmd *wmd;
	int r;

	doc_ctx_init(&c, err);
	*out = NULL;
	if (!(wmd = wmd_alloc()))
		return doc_nomem(&c);
	if ((r = wmd_set_identity(&c, wmd, id)) < 0) {
		vss_wmd_free(wmd);
		return r;
	}
	*out = wmd;
	return 0;
}

int vss_wmd_set_backup_schema(struct vss_wmd *wmd, uint32_t schema,
			      struct vss_error *err)
{
	struct doc_ctx c;
	int r;

	doc_ctx_init(&c, err);
	if ((r = check_schema(&c, schema)) < 0)
		return r;
	wmd->schema = schema;
	return 0;
}

/* @c is at "$.restore_method". */
static int wmd_set_restore(struct doc_ctx *c, struct vss_wmd *wmd,
			   const struct vss_wmd_restore_method *rm)
{
	bool wants_service = rm->method == VSS_RME_STOP_RESTORE_START ||
			     rm->method == VSS_RME_RESTORE_STOP_START;
	char *service, *proc;
	int r;

	if ((r = check_enum(c, "method", doc_restore_method_names, rm->method)) < 0 ||
	    (r = check_enum(c, "writer_restore", writer_restore_names, rm->writer_restore)) < 0)
		return r;
	if (wants_service && !rm->service)
		return doc_fail_at(c, "service", -EINVAL,
				   "required with method \"%s\"",
				   doc_name_of(doc_restore_method_names, rm->method));
	if (!wants_service && rm->service)
		return doc_fail_at(c, "service", -EINVAL,
				   "only allowed with methods \"stop_restore_start\" and \"restore_stop_start\"");
	if (rm->service &&
	    (r = doc_check_text(c, "service", rm->service, VSS_DOC_NAME_MAX, 0)) < 0)
		return r;
	if (rm->method == VSS_RME_CUSTOM && !rm->user_procedure)
		return doc_fail_at(c, "user_procedure", -EINVAL,
				   "required with method \"custom\"");
	if (rm->user_procedure &&
	    (r = doc_check_text(c, "user_procedure", rm->user_procedure,
				VSS_DOC_TEXT_MAX, DOC_CTL_OK)) < 0)
		return r;
	if ((r = doc_strdup(c, rm->service, &service)) < 0)
		return r;
	if ((r = doc_strdup(c, rm->user_procedure, &proc)) < 0) {
		free(service);
		return r;
	}
	free(wmd->service);
	free(wmd->user_procedure);
	wmd->service = service;
	wmd->user_procedure = proc;
	wmd->method = rm->method;
	wmd->writer_restore = rm->writer_restore;
	wmd->reboot_required = rm->reboot_required;
	return 0;
}

int vss_wmd_set_restore_method(struct vss_wmd *wmd,
			       const struct vss_wmd_restore_method *rm,
			       struct vss_error *err)
{
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	doc_enter(&c, "restore_method");
	return wmd_set_restore(&c, wmd, rm);
}

static int component_cmp(const void *ctx, size_t a, size_t b)
{
	struct wmd_component *const *comps = ctx;
	int r = strcmp(comps[a]->logical_path, comps[b]->logical_path);

	return r ? r : strcmp(comps[a]->name, comps[b]->name);
}

static int find_component(const struct vss_wmd *wmd, const char *lp,
			  const char *name)
{
	for (size_t i = 0; i < wmd->ncomps; i++)
		if (!strcmp(wmd->comps[i]->logical_path, nz(lp)) &&
		    !strcmp(wmd->comps[i]->name, name))
			return (int)i;
	return -ENOENT;
}

/* @c is at "$.components[n]"; @check_dup: builders check here, the parser
 * all at once in wmd_validate. */
static int wmd_add_component(struct doc_ctx *c, struct vss_wmd *wmd,
			     const struct vss_wmd_component_info *ci, bool check_dup)
{
	char q1[DOC_QUOTE_BUF], q2[DOC_QUOTE_BUF];
	struct wmd_component *cp;
	int r;

	if ((r = check_enum(c, "type", component_type_names, ci->type)) < 0 ||
	    (r = doc_check_logical_path(c, "logical_path", nz(ci->logical_path))) < 0)
		return r;
	if (!ci->name)
		return doc_fail_at(c, "name", -EINVAL, "missing required member");
	if ((r = doc_check_name(c, "name", ci->name)) < 0 ||
	    (r = doc_check_text(c, "caption", nz(ci->caption), VSS_DOC_NAME_MAX,
				DOC_EMPTY_OK)) < 0)
		return r;
	if (check_dup && (r = find_component(wmd, ci->logical_path, ci->name)) >= 0)
		return doc_fail(c, -EEXIST,
				"duplicate of $.components[%d] (logical path %s, name %s)",
				r, doc_quote(q1, nz(ci->logical_path)),
				doc_quote(q2, ci->name));
	if ((r = doc_grow(c, &wmd->comps, &wmd->capcomps, wmd->ncomps,
			  sizeof(*wmd->comps))) < 0)
		return r;
	if (!(cp = calloc(1, sizeof(*cp))))
		return doc_nomem(c);
	cp->type = ci->type;
	cp->selectable = ci->selectable;
	cp->selectable_for_restore = ci->selectable_for_restore;
	if ((r = doc_strdup(c, nz(ci->logical_path), &cp->logical_path)) < 0 ||
	    (r = doc_strdup(c, ci->name, &cp->name)) < 0 ||
	    (r = doc_strdup(c, nz(ci->caption), &cp->caption)) < 0) {
		component_free(cp);
		return r;
	}
	wmd->comps[wmd->ncomps++] = cp;
	return 0;
}

int vss_wmd_add_component(struct vss_wmd *wmd,
			  const struct vss_wmd_component_info *ci,
			  struct vss_error *err)
{
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	doc_enter(&c, "components");
	doc_enter_index(&c, wmd->ncomps);
	return wmd_add_component(&c, wmd, ci, true);
}

/* @c is at "...file_sets[n]". */
static int wmd_add_file_set(struct doc_ctx *c, struct wmd_component *cp,
			    const struct vss_wmd_file_set *fs)
{
	struct wmd_file_set *s;
	int r;

	if ((r = check_enum(c, "kind", kind_names, fs->kind)) < 0)
		return r;
	if ((fs->kind == VSS_FSK_FILES) != (cp->type == VSS_CT_FILE_GROUP))
		return doc_fail_at(c, "kind", -EINVAL,
				   "\"%s\" file sets belong to %s components, this one is a %s",
				   doc_name_of(kind_names, fs->kind),
				   fs->kind == VSS_FSK_FILES ? "file_group" : "database",
				   doc_name_of(component_type_names, cp->type));
	if (!fs->path)
		return doc_fail_at(c, "path", -EINVAL, "missing required member");
	if ((r = doc_check_abs_path(c, "path", fs->path)) < 0)
		return r;
	if (!fs->file_spec)
		return doc_fail_at(c, "file_spec", -EINVAL, "missing required member");
	if ((r = doc_check_spec(c, "file_spec", fs->file_spec)) < 0)
		return r;
	if (fs->alternate_path &&
	    (r = doc_check_abs_path(c, "alternate_path", fs->alternate_path)) < 0)
		return r;
	if (fs->backup_type_mask & ~VSS_FSBT_DEFAULT)
		return doc_fail(c, -EINVAL, "backup type mask has unknown bits 0x%x",
				fs->backup_type_mask & ~VSS_FSBT_DEFAULT);
	if ((r = doc_grow(c, &cp->sets, &cp->capsets, cp->nsets, sizeof(*cp->sets))) < 0)
		return r;
	s = &cp->sets[cp->nsets];
	memset(s, 0, sizeof(*s));
	s->kind = fs->kind;
	s->recursive = fs->recursive;
	s->mask = fs->backup_type_mask;
	if ((r = doc_strdup(c, fs->path, &s->path)) < 0 ||
	    (r = doc_strdup(c, fs->file_spec, &s->file_spec)) < 0 ||
	    (r = doc_strdup(c, fs->alternate_path, &s->alternate_path)) < 0) {
		free(s->path);
		free(s->file_spec);
		return r;
	}
	cp->nsets++;
	return 0;
}

/* Finds the component a builder adds to, and sets @c to its path. */
static int builder_component(struct doc_ctx *c, struct vss_wmd *wmd,
			     const char *lp, const char *name, const char *what)
{
	char q1[DOC_QUOTE_BUF], q2[DOC_QUOTE_BUF];
	int i;

	doc_enter(c, "components");
	i = name ? find_component(wmd, lp, name) : -ENOENT;
	if (i < 0)
		return doc_fail(c, -ENOENT,
				"no component with logical path %s and name %s to add %s to",
				doc_quote(q1, nz(lp)), doc_quote(q2, nz(name)), what);
	doc_enter_index(c, (size_t)i);
	return i;
}

int vss_wmd_add_file_set(struct vss_wmd *wmd, const char *logical_path,
			 const char *name, const struct vss_wmd_file_set *fs,
			 struct vss_error *err)
{
	struct doc_ctx c;
	struct wmd_component *cp;
	int i;

	doc_ctx_init(&c, err);
	if ((i = builder_component(&c, wmd, logical_path, name, "a file set")) < 0)
		return i;
	cp = wmd->comps[i];
	doc_enter(&c, "file_sets");
	doc_enter_index(&c, cp->nsets);
	return wmd_add_file_set(&c, cp, fs);
}

/* @c is at "...dependencies[n]". */
static int wmd_add_dep(struct doc_ctx *c, const struct vss_wmd *wmd,
		       struct wmd_component *cp, const struct vss_wmd_dependency *dep)
{
	char id[DOC_UUID_LEN + 1];
	struct wmd_dep *d;
	int r;

	if (dep->writer_class_id &&
	    (r = doc_check_uuid(c, "writer_class_id", dep->writer_class_id, id)) < 0)
		return r;
	if ((r = doc_check_logical_path(c, "logical_path", nz(dep->logical_path))) < 0)
		return r;
	if (!dep->name)
		return doc_fail_at(c, "name", -EINVAL, "missing required member");
	if ((r = doc_check_name(c, "name", dep->name)) < 0)
		return r;
	if ((!dep->writer_class_id || !strcmp(id, wmd->class_id)) &&
	    !strcmp(nz(dep->logical_path), cp->logical_path) &&
	    !strcmp(dep->name, cp->name))
		return doc_fail(c, -EINVAL, "a component must not depend on itself");
	if ((r = doc_grow(c, &cp->deps, &cp->capdeps, cp->ndeps, sizeof(*cp->deps))) < 0)
		return r;
	d = &cp->deps[cp->ndeps];
	memset(d, 0, sizeof(*d));
	if ((r = doc_strdup(c, dep->writer_class_id ? id : NULL, &d->class_id)) < 0 ||
	    (r = doc_strdup(c, nz(dep->logical_path), &d->logical_path)) < 0 ||
	    (r = doc_strdup(c, dep->name, &d->name)) < 0) {
		free(d->class_id);
		free(d->logical_path);
		return r;
	}
	cp->ndeps++;
	return 0;
}

int vss_wmd_add_dependency(struct vss_wmd *wmd, const char *logical_path,
			   const char *name, const struct vss_wmd_dependency *dep,
			   struct vss_error *err)
{
	struct doc_ctx c;
	struct wmd_component *cp;
	int i;

	doc_ctx_init(&c, err);
	if ((i = builder_component(&c, wmd, logical_path, name, "a dependency")) < 0)
		return i;
	cp = wmd->comps[i];
	doc_enter(&c, "dependencies");
	doc_enter_index(&c, cp->ndeps);
	return wmd_add_dep(&c, wmd, cp, dep);
}

/* @c is at "$.exclude_files[n]" or "$.alternate_location_mappings[n]". */
static int wmd_add_spec(struct doc_ctx *c, struct wmd_spec **arr, size_t *n,
			size_t *cap, const struct vss_wmd_file_spec *spec,
			bool mapping)
{
	struct wmd_spec *s;
	int r;

	if (!spec->path)
		return doc_fail_at(c, "path", -EINVAL, "missing required member");
	if ((r = doc_check_abs_path(c, "path", spec->path)) < 0)
		return r;
	if (!spec->file_spec)
		return doc_fail_at(c, "file_spec", -EINVAL, "missing required member");
	if ((r = doc_check_spec(c, "file_spec", spec->file_spec)) < 0)
		return r;
	if (mapping && !spec->destination)
		return doc_fail_at(c, "destination", -EINVAL, "missing required member");
	if (!mapping && spec->destination)
		return doc_fail_at(c, "destination", -EINVAL,
				   "only allowed in alternate location mappings");
	if (mapping && (r = doc_check_abs_path(c, "destination", spec->destination)) < 0)
		return r;
	if ((r = doc_grow(c, arr, cap, *n, sizeof(**arr))) < 0)
		return r;
	s = &(*arr)[*n];
	memset(s, 0, sizeof(*s));
	s->recursive = spec->recursive;
	if ((r = doc_strdup(c, spec->path, &s->path)) < 0 ||
	    (r = doc_strdup(c, spec->file_spec, &s->file_spec)) < 0 ||
	    (r = doc_strdup(c, spec->destination, &s->destination)) < 0) {
		spec_release(s);
		return r;
	}
	(*n)++;
	return 0;
}

int vss_wmd_add_exclude_files(struct vss_wmd *wmd,
			      const struct vss_wmd_file_spec *spec,
			      struct vss_error *err)
{
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	doc_enter(&c, "exclude_files");
	doc_enter_index(&c, wmd->nexcludes);
	return wmd_add_spec(&c, &wmd->excludes, &wmd->nexcludes, &wmd->capexcludes,
			    spec, false);
}

int vss_wmd_add_alternate_location_mapping(struct vss_wmd *wmd,
					   const struct vss_wmd_file_spec *map,
					   struct vss_error *err)
{
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	doc_enter(&c, "alternate_location_mappings");
	doc_enter_index(&c, wmd->nmaps);
	return wmd_add_spec(&c, &wmd->maps, &wmd->nmaps, &wmd->capmaps, map, true);
}

/* Components sorted by (logical path, name), for lookups by identity. */
struct comp_index {
	const struct vss_wmd *wmd;
	size_t *order;
};

static int comp_order(const void *a, const void *b, void *arg)
{
	const struct vss_wmd *wmd = arg;
	return component_cmp(wmd->comps, *(const size_t *)a, *(const size_t *)b);
}

static long comp_lookup(const struct comp_index *ix, const char *lp, const char *name)
{
	size_t lo = 0, hi = ix->wmd->ncomps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct wmd_component *cp = ix->wmd->comps[ix->order[mid]];
		int r = strcmp(lp, cp->logical_path);
		if (!r)
			r = strcmp(name, cp->name);
		if (!r)
			return (long)ix->order[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

static void dep_path(struct doc_ctx *c, size_t comp, size_t dep)
{
	doc_enter(c, "components");
	doc_enter_index(c, comp);
	doc_enter(c, "dependencies");
	doc_enter_index(c, dep);
}

/*
 * Dependencies within this writer must resolve and must not go round in a
 * circle.  Depth-first over the components, iteratively (a long chain must
 * not exhaust the stack): 0 unvisited, 1 on the current path, 2 done.
 */
static int check_dependencies(struct doc_ctx *c, const struct vss_wmd *wmd)
{
	char q1[DOC_QUOTE_BUF], q2[DOC_QUOTE_BUF];
	struct comp_index ix = { wmd, NULL };
	size_t n = wmd->ncomps, *stack = NULL, *next = NULL;
	long *target = NULL;
	size_t *first = NULL;  /* first[i]: where component i's targets start */
	unsigned char *state = NULL;
	size_t ndeps = 0;
	int r = 0;

	for (size_t i = 0; i < n; i++)
		ndeps += wmd->comps[i]->ndeps;
	if (!ndeps)
		return 0;
	ix.order = malloc(n * sizeof(size_t));
	first = malloc((n + 1) * sizeof(size_t));
	target = malloc(ndeps * sizeof(long));
	stack = malloc(n * sizeof(size_t));
	next = calloc(n, sizeof(size_t));
	state = calloc(n, 1);
	if (!ix.order || !first || !target || !stack || !next || !state) {
		r = doc_nomem(c);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ix.order[i] = i;
	qsort_r(ix.order, n, sizeof(size_t), comp_order, (void *)wmd);

	/* Resolve, in document order. */
	for (size_t i = 0, k = 0; i < n; i++) {
		const struct wmd_component *cp = wmd->comps[i];
		first[i] = k;
		for (size_t j = 0; j < cp->ndeps; j++, k++) {
			const struct wmd_dep *d = &cp->deps[j];
			target[k] = -1;
			if (d->class_id && strcmp(d->class_id, wmd->class_id))
				continue;  /* another writer's: not ours to check */
			target[k] = comp_lookup(&ix, d->logical_path, d->name);
			if (target[k] < 0) {
				dep_path(c, i, j);
				r = doc_fail(c, -EINVAL,
					     "this writer has no component with logical path %s and name %s",
					     doc_quote(q1, d->logical_path),
					     doc_quote(q2, d->name));
				goto out;
			}
		}
	}
	first[n] = ndeps;

	for (size_t root = 0; root < n; root++) {
		size_t sp = 0;
		if (state[root])
			continue;
		stack[sp++] = root;
		state[root] = 1;
		while (sp) {
			size_t u = stack[sp - 1];
			if (first[u] + next[u] == first[u + 1]) {
				state[u] = 2;
				sp--;
				continue;
			}
			size_t j = next[u]++;
			long v = target[first[u] + j];
			if (v < 0 || state[v] == 2)
				continue;
			if (state[v] == 1) {
				dep_path(c, u, j);
				r = doc_fail(c, -EINVAL,
					     "dependency cycle back to $.components[%ld]", v);
				goto out;
			}
			state[v] = 1;
			stack[sp++] = (size_t)v;
		}
	}
out:
	free(ix.order);
	free(first);
	free(target);
	free(stack);
	free(next);
	free(state);
	return r;
}

static int wmd_validate(struct doc_ctx *c, const struct vss_wmd *wmd)
{
	char q1[DOC_QUOTE_BUF], q2[DOC_QUOTE_BUF];
	size_t first, dup;
	size_t mark;
	int r;

	if ((r = check_schema(c, wmd->schema)) < 0)
		return r;
	if (wmd->schema & VSS_BS_LOG) {
		bool has_log = false;
		for (size_t i = 0; i < wmd->ncomps && !has_log; i++)
			for (size_t j = 0; j < wmd->comps[i]->nsets; j++)
				has_log = has_log || wmd->comps[i]->sets[j].kind == VSS_FSK_LOG;
		if (!has_log)
			return doc_fail_at(c, "backup_schema", -EINVAL,
					   "\"log\" needs a file set of kind \"log\"");
	}
	if (wmd->method == VSS_RME_RESTORE_TO_ALTERNATE_LOCATION && !wmd->nmaps)
		return doc_fail_at(c, "restore_method", -EINVAL,
				   "method \"restore_to_alternate_location\" needs alternate_location_mappings");

	r = doc_first_duplicate(wmd->ncomps, component_cmp, wmd->comps, &first, &dup);
	if (r < 0)
		return doc_nomem(c);
	mark = doc_enter(c, "components");
	if (r > 0) {
		doc_enter_index(c, dup);
		return doc_fail(c, -EINVAL,
				"duplicate of $.components[%zu] (logical path %s, name %s)",
				first, doc_quote(q1, wmd->comps[dup]->logical_path),
				doc_quote(q2, wmd->comps[dup]->name));
	}
	doc_leave(c, mark);
	return check_dependencies(c, wmd);
}

int vss_wmd_validate(const struct vss_wmd *wmd, struct vss_error *err)
{
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	return wmd_validate(&c, wmd);
}

/* ---- serializing ---- */

static json_t *spec_json(const struct wmd_spec *s)
{
	json_t *o = json_object();

	if (o && doc_put_str(o, "path", s->path) &&
	    doc_put_str(o, "file_spec", s->file_spec) &&
	    doc_put(o, "recursive", json_boolean(s->recursive)) &&
	    doc_put_str(o, "destination", s->destination))
		return o;
	json_decref(o);
	return NULL;
}

static json_t *file_set_json(const struct wmd_file_set *s)
{
	json_t *o = json_object();

	if (o && doc_put_str(o, "kind", doc_name_of(kind_names, s->kind)) &&
	    doc_put_str(o, "path", s->path) &&
	    doc_put_str(o, "file_spec", s->file_spec) &&
	    doc_put(o, "recursive", json_boolean(s->recursive)) &&
	    doc_put_str(o, "alternate_path", s->alternate_path) &&
	    doc_put(o, "backup_required", doc_flag_array(fsbt_names, s->mask)) &&
	    doc_put(o, "snapshot_required", doc_flag_array(fsbt_names, s->mask >> 8)))
		return o;
	json_decref(o);
	return NULL;
}

static json_t *dep_json(const struct wmd_dep *d)
{
	json_t *o = json_object();

	if (o && doc_put_str(o, "writer_class_id", d->class_id) &&
	    doc_put_str(o, "logical_path", d->logical_path) &&
	    doc_put_str(o, "name", d->name))
		return o;
	json_decref(o);
	return NULL;
}

static json_t *component_json(const struct wmd_component *cp)
{
	json_t *o = json_object(), *sets = json_array(), *deps = json_array();
	bool ok = o && sets && deps;

	for (size_t i = 0; ok && i < cp->ndeps; i++)
		ok = doc_append(deps, dep_json(&cp->deps[i]));
	for (size_t i = 0; ok && i < cp->nsets; i++)
		ok = doc_append(sets, file_set_json(&cp->sets[i]));
	if (ok && doc_put_str(o, "type", doc_name_of(component_type_names, cp->type)) &&
	    doc_put_str(o, "logical_path", cp->logical_path) &&
	    doc_put_str(o, "name", cp->name) &&
	    doc_put_str(o, "caption", cp->caption) &&
	    doc_put(o, "selectable", json_boolean(cp->selectable)) &&
	    doc_put(o, "selectable_for_restore", json_boolean(cp->selectable_for_restore)) &&
	    doc_put(o, "dependencies", json_incref(deps)) &&
	    doc_put(o, "file_sets", json_incref(sets))) {
		json_decref(sets);
		json_decref(deps);
		return o;
	}
	json_decref(o);
	json_decref(sets);
	json_decref(deps);
	return NULL;
}

static json_t *wmd_json(const struct vss_wmd *wmd)
{
	json_t *o = json_object(), *rm = json_object(), *comps = json_array(),
	       *ex = json_array(), *maps = json_array();
	bool ok = o && rm && comps && ex && maps;

	ok = ok && doc_put_str(rm, "method", doc_name_of(doc_restore_method_names, wmd->method)) &&
	     doc_put_str(rm, "service", wmd->service) &&
	     doc_put_str(rm, "user_procedure", wmd->user_procedure) &&
	     doc_put_str(rm, "writer_restore",
			 doc_name_of(writer_restore_names, wmd->writer_restore)) &&
	     doc_put(rm, "reboot_required", json_boolean(wmd->reboot_required));
	for (size_t i = 0; ok && i < wmd->nexcludes; i++)
		ok = doc_append(ex, spec_json(&wmd->excludes[i]));
	for (size_t i = 0; ok && i < wmd->nmaps; i++)
		ok = doc_append(maps, spec_json(&wmd->maps[i]));
	for (size_t i = 0; ok && i < wmd->ncomps; i++)
		ok = doc_append(comps, component_json(wmd->comps[i]));
	ok = ok && doc_put_str(o, "format", "vss-writer-metadata") &&
	     doc_put(o, "version", json_integer(DOC_VERSION)) &&
	     doc_put_str(o, "writer_name", wmd->writer_name) &&
	     doc_put_str(o, "writer_class_id", wmd->class_id) &&
	     doc_put_str(o, "writer_instance_id", wmd->instance_id) &&
	     doc_put_str(o, "instance_name", wmd->instance_name) &&
	     doc_put_str(o, "usage_type", doc_name_of(usage_names, wmd->usage)) &&
	     doc_put_str(o, "source_type", doc_name_of(source_names, wmd->source)) &&
	     doc_put(o, "restore_method", json_incref(rm)) &&
	     doc_put(o, "backup_schema", doc_flag_array(schema_names, wmd->schema)) &&
	     doc_put(o, "exclude_files", json_incref(ex)) &&
	     doc_put(o, "alternate_location_mappings", json_incref(maps)) &&
	     doc_put(o, "components", json_incref(comps));
	json_decref(rm);
	json_decref(comps);
	json_decref(ex);
	json_decref(maps);
	if (ok)
		return o;
	json_decref(o);
	return NULL;
}

int vss_wmd_serialize(const struct vss_wmd *wmd, char **json, size_t *len,
		      struct vss_error *err)
{
	struct doc_ctx c;
	json_t *root;
	int r;

	doc_ctx_init(&c, err);
	*json = NULL;
	if ((r = wmd_validate(&c, wmd)) < 0)
		return r;
	if (!(root = wmd_json(wmd)))
		return doc_nomem(&c);
	r = doc_dump(&c, root, json, len);
	json_decref(root);
	return r;
}

/* ---- parsing ---- */

static const char *const root_members[] = {
	"format", "version", "writer_name", "writer_class_id", "writer_instance_id",
	"instance_name", "usage_type", "source_type", "restore_method",
	"backup_schema", "exclude_files", "alternate_location_mappings",
	"components", NULL,
};
static const char *const restore_members[] = {
	"method", "service", "user_procedure", "writer_restore", "reboot_required", NULL,
};
static const char *const component_members[] = {
	"type", "logical_path", "name", "caption", "selectable",
	"selectable_for_restore", "dependencies", "file_sets", NULL,
};
static const char *const file_set_members[] = {
	"kind", "path", "file_spec", "recursive", "alternate_path",
	"backup_required", "snapshot_required", NULL,
};
static const char *const dep_members[] = {
	"writer_class_id", "logical_path", "name", NULL,
};
static const char *const exclude_members[] = {
	"path", "file_spec", "recursive", NULL,
};
static const char *const map_members[] = {
	"path", "file_spec", "recursive", "destination", NULL,
};

static int parse_identity(struct doc_ctx *c, json_t *root, struct vss_wmd *wmd)
{
	struct vss_wmd_identity id = { 0 };
	unsigned usage, source;
	int r;

	if ((r = doc_string(c, root, "writer_name", true, &id.writer_name)) < 0 ||
	    (r = doc_string(c, root, "writer_class_id", true, &id.class_id)) < 0 ||
	    (r = doc_string(c, root, "writer_instance_id", true, &id.instance_id)) < 0 ||
	    (r = doc_string(c, root, "instance_name", false, &id.instance_name)) < 0 ||
	    (r = doc_enum(c, root, "usage_type", usage_names, true, 0, &usage)) < 0 ||
	    (r = doc_enum(c, root, "source_type", source_names, true, 0, &source)) < 0)
		return r;
	id.usage = usage;
	id.source = source;
	return wmd_set_identity(c, wmd, &id);
}

static int parse_restore(struct doc_ctx *c, json_t *root, struct vss_wmd *wmd)
{
	struct vss_wmd_restore_method rm = { 0 };
	unsigned method, wr;
	json_t *o;
	size_t mark;
	int r;

	if ((r = doc_object(c, root, "restore_method", false, &o)) < 0 || !o)
		return r;
	mark = doc_enter(c, "restore_method");
	if ((r = doc_members(c, o, restore_members)) < 0 ||
	    (r = doc_enum(c, o, "method", doc_restore_method_names, true, 0, &method)) < 0 ||
	    (r = doc_string(c, o, "service", false, &rm.service)) < 0 ||
	    (r = doc_string(c, o, "user_procedure", false, &rm.user_procedure)) < 0 ||
	    (r = doc_enum(c, o, "writer_restore", writer_restore_names, false,
			  VSS_WRE_NEVER, &wr)) < 0 ||
	    (r = doc_bool(c, o, "reboot_required", false, &rm.reboot_required)) < 0)
		return r;
	rm.method = method;
	rm.writer_restore = wr;
	if ((r = wmd_set_restore(c, wmd, &rm)) < 0)
		return r;
	doc_leave(c, mark);
	return 0;
}

/* Each element of the array member @key is an object; @fn reads it with
 * @c at "<key>[i]". */
static int parse_each(struct doc_ctx *c, json_t *obj, const char *key,
		      bool required,
		      int (*fn)(struct doc_ctx *c, json_t *elem, void *arg), void *arg)
{
	json_t *a, *v;
	size_t i, mark;
	int r;

	if ((r = doc_array(c, obj, key, required, &a)) < 0 || !a)
		return r;
	mark = doc_enter(c, key);
	json_array_foreach(a, i, v) {
		size_t m = doc_enter_index(c, i);
		if ((r = fn(c, v, arg)) < 0)
			return r;
		doc_leave(c, m);
	}
	doc_leave(c, mark);
	return 0;
}

struct spec_arg {
	struct vss_wmd *wmd;
	bool mapping;
};

static int parse_spec(struct doc_ctx *c, json_t *o, void *arg)
{
	struct spec_arg *a = arg;
	struct vss_wmd_file_spec s = { 0 };
	int r;

	if ((r = doc_members(c, o, a->mapping ? map_members : exclude_members)) < 0 ||
	    (r = doc_string(c, o, "path", true, &s.path)) < 0 ||
	    (r = doc_string(c, o, "file_spec", true, &s.file_spec)) < 0 ||
	    (r = doc_bool(c, o, "recursive", false, &s.recursive)) < 0 ||
	    (a->mapping &&
	     (r = doc_string(c, o, "destination", true, &s.destination)) < 0))
		return r;
	if (a->mapping)
		return wmd_add_spec(c, &a->wmd->maps, &a->wmd->nmaps,
				    &a->wmd->capmaps, &s, true);
	return wmd_add_spec(c, &a->wmd->excludes, &a->wmd->nexcludes,
			    &a->wmd->capexcludes, &s, false);
}

struct comp_arg {
	struct vss_wmd *wmd;
	struct wmd_component *cp;
};

static int parse_file_set(struct doc_ctx *c, json_t *o, void *arg)
{
	struct comp_arg *a = arg;
	struct vss_wmd_file_set fs = { 0 };
	uint32_t backup, snapshot;
	unsigned kind;
	int r;

	if ((r = doc_members(c, o, file_set_members)) < 0 ||
	    (r = doc_enum(c, o, "kind", kind_names, true, 0, &kind)) < 0 ||
	    (r = doc_string(c, o, "path", true, &fs.path)) < 0 ||
	    (r = doc_string(c, o, "file_spec", true, &fs.file_spec)) < 0 ||
	    (r = doc_bool(c, o, "recursive", false, &fs.recursive)) < 0 ||
	    (r = doc_string(c, o, "alternate_path", false, &fs.alternate_path)) < 0 ||
	    (r = doc_flags(c, o, "backup_required", fsbt_names,
			   VSS_FSBT_ALL_BACKUP_REQUIRED, &backup)) < 0 ||
	    (r = doc_flags(c, o, "snapshot_required", fsbt_names,
			   VSS_FSBT_ALL_BACKUP_REQUIRED, &snapshot)) < 0)
		return r;
	fs.kind = kind;
	fs.backup_type_mask = backup | snapshot << 8;
	return wmd_add_file_set(c, a->cp, &fs);
}

static int parse_dep(struct doc_ctx *c, json_t *o, void *arg)
{
	struct comp_arg *a = arg;
	struct vss_wmd_dependency d = { 0 };
	int r;

	if ((r = doc_members(c, o, dep_members)) < 0 ||
	    (r = doc_string(c, o, "writer_class_id", false, &d.writer_class_id)) < 0 ||
	    (r = doc_string(c, o, "logical_path", false, &d.logical_path)) < 0 ||
	    (r = doc_string(c, o, "name", true, &d.name)) < 0)
		return r;
	return wmd_add_dep(c, a->wmd, a->cp, &d);
}

static int parse_component(struct doc_ctx *c, json_t *o, void *arg)
{
	struct vss_wmd *wmd = arg;
	struct vss_wmd_component_info ci = { 0 };
	struct comp_arg a = { wmd, NULL };
	unsigned type;
	int r;

	if ((r = doc_members(c, o, component_members)) < 0 ||
	    (r = doc_enum(c, o, "type", component_type_names, true, 0, &type)) < 0 ||
	    (r = doc_string(c, o, "logical_path", false, &ci.logical_path)) < 0 ||
	    (r = doc_string(c, o, "name", true, &ci.name)) < 0 ||
	    (r = doc_string(c, o, "caption", false, &ci.caption)) < 0 ||
	    (r = doc_bool(c, o, "selectable", false, &ci.selectable)) < 0 ||
	    (r = doc_bool(c, o, "selectable_for_restore", false,
			  &ci.selectable_for_restore)) < 0)
		return r;
	ci.type = type;
	if ((r = wmd_add_component(c, wmd, &ci, false)) < 0)
		return r;
	a.cp = wmd->comps[wmd->ncomps - 1];
	if ((r = parse_each(c, o, "dependencies", false, parse_dep, &a)) < 0)
		return r;
	return parse_each(c, o, "file_sets", false, parse_file_set, &a);
}

int vss_wmd_parse(const char *buf, size_t len, size_t max_size,
		  struct vss_wmd **out, struct vss_error *err)
{
	struct doc_ctx c;
	struct spec_arg ex, maps;
	struct vss_wmd *wmd = NULL;
	json_t *root;
	uint32_t schema;
	int r;

	doc_ctx_init(&c, err);
	*out = NULL;
	if ((r = doc_root(&c, buf, len, max_size, "vss-writer-metadata", &root)) < 0)
		return r;
	if (!(wmd = wmd_alloc())) {
		r = doc_nomem(&c);
		goto fail;
	}
	ex = (struct spec_arg){ wmd, false };
	maps = (struct spec_arg){ wmd, true };
	if ((r = doc_members(&c, root, root_members)) < 0 ||
	    (r = parse_identity(&c, root, wmd)) < 0 ||
	    (r = parse_restore(&c, root, wmd)) < 0 ||
	    (r = doc_flags(&c, root, "backup_schema", schema_names, 0, &schema)) < 0 ||
	    (r = check_schema(&c, schema)) < 0 ||
	    (r = parse_each(&c, root, "exclude_files", false, parse_spec, &ex)) < 0 ||
	    (r = parse_each(&c, root, "alternate_location_mappings", false,
			    parse_spec, &maps)) < 0 ||
	    (r = parse_each(&c, root, "components", true, parse_component, wmd)) < 0)
		goto fail;
	wmd->schema = schema;
	if ((r = wmd_validate(&c, wmd)) < 0)
		goto fail;
	json_decref(root);
	*out = wmd;
	return 0;
fail:
	vss_wmd_free(wmd);
	json_decref(root);
	return r;
}

/* ---- examining ---- */

void vss_wmd_identity(const struct vss_wmd *wmd, struct vss_wmd_identity *out)
{
	out->writer_name = wmd->writer_name;
	out->class_id = wmd->class_id;
	out->instance_id = wmd->instance_id;
	out->instance_name = wmd->instance_name;
	out->usage = wmd->usage;
	out->source = wmd->source;
}

uint32_t vss_wmd_backup_schema(const struct vss_wmd *wmd)
{
	return wmd->schema;
}

void vss_wmd_restore_method(const struct vss_wmd *wmd,
			    struct vss_wmd_restore_method *out)
{
	out->method = wmd->method;
	out->service = wmd->service;
	out->user_procedure = wmd->user_procedure;
	out->writer_restore = wmd->writer_restore;
	out->reboot_required = wmd->reboot_required;
}

size_t vss_wmd_component_count(const struct vss_wmd *wmd)
{
	return wmd->ncomps;
}

int vss_wmd_component(const struct vss_wmd *wmd, size_t comp,
		      struct vss_wmd_component_info *out)
{
	const struct wmd_component *cp;

	if (comp >= wmd->ncomps)
		return -ERANGE;
	cp = wmd->comps[comp];
	out->type = cp->type;
	out->logical_path = cp->logical_path;
	out->name = cp->name;
	out->caption = cp->caption;
	out->selectable = cp->selectable;
	out->selectable_for_restore = cp->selectable_for_restore;
	return 0;
}

int vss_wmd_find_component(const struct vss_wmd *wmd, const char *logical_path,
			   const char *name)
{
	return name ? find_component(wmd, logical_path, name) : -ENOENT;
}

size_t vss_wmd_file_set_count(const struct vss_wmd *wmd, size_t comp)
{
	return comp < wmd->ncomps ? wmd->comps[comp]->nsets : 0;
}

int vss_wmd_file_set(const struct vss_wmd *wmd, size_t comp, size_t i,
		     struct vss_wmd_file_set *out)
{
	const struct wmd_file_set *s;

	if (comp >= wmd->ncomps || i >= wmd->comps[comp]->nsets)
		return -ERANGE;
	s = &wmd->comps[comp]->sets[i];
	out->kind = s->kind;
	out->path = s->path;
	out->file_spec = s->file_spec;
	out->recursive = s->recursive;
	out->alternate_path = s->alternate_path;
	out->backup_type_mask = s->mask;
	return 0;
}

size_t vss_wmd_dependency_count(const struct vss_wmd *wmd, size_t comp)
{
	return comp < wmd->ncomps ? wmd->comps[comp]->ndeps : 0;
}

int vss_wmd_dependency(const struct vss_wmd *wmd, size_t comp, size_t i,
		       struct vss_wmd_dependency *out)
{
	const struct wmd_dep *d;

	if (comp >= wmd->ncomps || i >= wmd->comps[comp]->ndeps)
		return -ERANGE;
	d = &wmd->comps[comp]->deps[i];
	out->writer_class_id = d->class_id;
	out->logical_path = d->logical_path;
	out->name = d->name;
	return 0;
}

static int spec_at(const struct wmd_spec *arr, size_t n, size_t i,
		   struct vss_wmd_file_spec *out)
{
	if (i >= n)
		return -ERANGE;
	out->path = arr[i].path;
	out->file_spec = arr[i].file_spec;
	out->recursive = arr[i].recursive;
	out->destination = arr[i].destination;
	return 0;
}

size_t vss_wmd_exclude_count(const struct vss_wmd *wmd)
{
	return wmd->nexcludes;
}

int vss_wmd_exclude(const struct vss_wmd *wmd, size_t i,
		    struct vss_wmd_file_spec *out)
{
	return spec_at(wmd->excludes, wmd->nexcludes, i, out);
}

size_t vss_wmd_alternate_location_count(const struct vss_wmd *wmd)
{
	return wmd->nmaps;
}

int vss_wmd_alternate_location(const struct vss_wmd *wmd, size_t i,
			       struct vss_wmd_file_spec *out)
{
	return spec_at(wmd->maps, wmd->nmaps, i, out);
}

/* ---- what a backup of a given type takes (see writer_doc.h) ---- */

int vss_wmd_plan_values(uint32_t schema, enum vss_file_set_kind kind,
			uint32_t mask, enum vss_backup_type type,
			struct vss_wmd_plan *out, struct vss_error *err)
{
	enum vss_backup_type t = type;
	uint32_t backup_bit;

	vss_error_clear(err);
	if (!doc_name_of(doc_backup_type_names, type))
		return vss_error_set(err, -EINVAL, "invalid backup type %d", (int)type);
	if (!doc_name_of(kind_names, kind))
		return vss_error_set(err, -EINVAL, "invalid file set kind %d", (int)kind);
	if (mask & ~VSS_FSBT_DEFAULT)
		return vss_error_set(err, -EINVAL, "backup type mask has unknown bits 0x%x",
				     mask & ~VSS_FSBT_DEFAULT);

	if ((t == VSS_BT_INCREMENTAL && !(schema & VSS_BS_INCREMENTAL)) ||
	    (t == VSS_BT_DIFFERENTIAL && !(schema & VSS_BS_DIFFERENTIAL)) ||
	    (t == VSS_BT_LOG && !(schema & VSS_BS_LOG)) ||
	    (t == VSS_BT_COPY && !(schema & VSS_BS_COPY)))
		t = VSS_BT_FULL;
	switch (t) {
	case VSS_BT_INCREMENTAL: backup_bit = VSS_FSBT_INCREMENTAL_BACKUP_REQUIRED; break;
	case VSS_BT_DIFFERENTIAL: backup_bit = VSS_FSBT_DIFFERENTIAL_BACKUP_REQUIRED; break;
	case VSS_BT_LOG: backup_bit = VSS_FSBT_LOG_BACKUP_REQUIRED; break;
	default: backup_bit = VSS_FSBT_FULL_BACKUP_REQUIRED; break;
	}

	out->effective_type = t;
	if (t == VSS_BT_LOG && kind != VSS_FSK_LOG)
		out->selection = VSS_SEL_NONE;
	else if (mask & backup_bit)
		out->selection = VSS_SEL_ALL;
	else if (t == VSS_BT_FULL || t == VSS_BT_COPY)
		out->selection = VSS_SEL_NONE;
	else
		out->selection = VSS_SEL_CHANGED;
	out->snapshot_required = out->selection != VSS_SEL_NONE &&
				 (mask & (backup_bit << 8));
	return 0;
}

int vss_wmd_plan(const struct vss_wmd *wmd, enum vss_backup_type type,
		 size_t comp, size_t i, struct vss_wmd_plan *out,
		 struct vss_error *err)
{
	const struct wmd_file_set *s;

	if (comp >= wmd->ncomps || i >= wmd->comps[comp]->nsets)
		return vss_error_set(err, -ERANGE,
				     "$.components[%zu].file_sets[%zu]: no such file set",
				     comp, i);
	s = &wmd->comps[comp]->sets[i];
	return vss_wmd_plan_values(wmd->schema, s->kind, s->mask, type, out, err);
}
