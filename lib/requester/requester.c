/*
 * requester/requester.c - the requester API (vss/requester.h) over the
 * control protocol's backup.* operations and shadow.create/expose/delete
 * (doc/protocol.md, doc/writers.md).  One connection carries the whole
 * backup: vssd aborts it if the connection goes away, or if it does not
 * hear from the requester within the backup's lease.  So from
 * backup.begin until the backup ends a thread of the library's own (the
 * renewer, lease.c) sends backup.status every third of the lease; the
 * connection is shared with the caller's thread under r->call_lock.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include <vss/requester.h>

#include "client/client_json.h"
#include "requester/repo_i.h"
#include "requester/lease_i.h"

#define MAX_TARGETS 64

struct req_writer {
	struct vss_wmd *wmd;
	json_t *status;                  /* the latest {name, id, instance, state, ...} */
};

struct req_shadow {
	char *id, *target, *volume, *device;
	char *mount;                     /* the live path its root stands for, or NULL */
	char *exposed;
	char *provider, *target_path;
	char *fallback;                  /* why it is read live after its provider failed */
	char *host;                      /* another host's member: that host; else NULL */
	bool live;
};

struct vss_requester {
	struct vss_client *c;
	pthread_mutex_t call_lock;       /* c: the caller's thread and the renewer */
	enum vss_backup_type type;
	bool partial, persistent, no_writers, keep, allow_live;
	unsigned int window_ms, wait_ms;
	unsigned int lease_ms;           /* asked for (0: vssd's default) */
	unsigned long long hold_ms;      /* asked for (0: vssd's default) */
	struct req_lease lease;          /* the renewer */
	json_t *exclude, *require;
	char *provider;
	bool begun, completed;
	struct req_writer *w;
	size_t nw;
	struct vss_bcd *bcd;
	char *targets[MAX_TARGETS];
	dev_t target_dev[MAX_TARGETS];   /* the filesystem of a path target, or 0 */
	size_t ntargets;
	char set_id[37];
	struct req_shadow sh[MAX_TARGETS];
	size_t nsh;
};

static const char *const type_names[] = {
	"", "full", "incremental", "differential", "log", "copy",
};

int vss_requester_open(const char *run_dir, struct vss_requester **out,
		       struct vss_error *err)
{
	struct vss_requester *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (!r)
		return vss_error_set(err, -ENOMEM, "out of memory");
	if ((rc = vss_client_open(vss_client_run_dir(run_dir), &r->c, err)) < 0) {
		free(r);
		return rc;
	}
	pthread_mutex_init(&r->call_lock, NULL);
	req_lease_init(&r->lease, r->c, &r->call_lock);
	r->type = VSS_BT_FULL;
	r->window_ms = 60000;
	r->wait_ms = 60000;
	r->exclude = json_array();
	r->require = json_array();
	*out = r;
	return 0;
}

static int call(struct vss_requester *r, const char *op, json_t *args, json_t **res,
		struct vss_error *err)
{
	json_t *out = NULL;
	int rc;

	pthread_mutex_lock(&r->call_lock);
	rc = vss_client_call_json(r->c, op, args, &out, err);
	pthread_mutex_unlock(&r->call_lock);
	if (res)
		*res = out;
	else
		json_decref(out);
	return rc;
}

static void renew_start(struct vss_requester *r, unsigned long long lease_ms)
{
	req_lease_start(&r->lease, lease_ms);
}

static void renew_stop(struct vss_requester *r)
{
	req_lease_stop(&r->lease);
}

/* Keeps the writers' latest states from a reply's "writers". */
static void update_states_of(struct vss_requester *r, json_t *writers);

/* The writers still in the backup and those a step dropped (failed at
 * identify or prepare_backup, not required: "dropped"). */
static void update_states(struct vss_requester *r, json_t *res)
{
	update_states_of(r, json_object_get(res, "writers"));
	update_states_of(r, json_object_get(res, "dropped"));
}

static void update_states_of(struct vss_requester *r, json_t *writers)
{
	json_t *w;
	size_t i;

	json_array_foreach(writers, i, w) {
		const char *inst = json_string_value(json_object_get(w, "instance"));

		for (size_t k = 0; k < r->nw; k++) {
			struct vss_wmd_identity id;

			vss_wmd_identity(r->w[k].wmd, &id);
			if (inst && strcmp(id.instance_id, inst) == 0) {
				json_decref(r->w[k].status);
				json_object_del(w, "metadata");
				r->w[k].status = json_incref(w);
			}
		}
	}
}

static void free_shadows(struct vss_requester *r)
{
	for (size_t i = 0; i < r->nsh; i++) {
		free(r->sh[i].id);
		free(r->sh[i].target);
		free(r->sh[i].volume);
		free(r->sh[i].device);
		free(r->sh[i].mount);
		free(r->sh[i].exposed);
		free(r->sh[i].provider);
		free(r->sh[i].target_path);
		free(r->sh[i].fallback);
		free(r->sh[i].host);
	}
	memset(r->sh, 0, sizeof(r->sh));
	r->nsh = 0;
}

void vss_requester_close(struct vss_requester *r)
{
	if (!r)
		return;
	renew_stop(r);
	/*
	 * A complete set that goes: its exposures are detached and its
	 * shadows deleted by vssd after it replies (shadow.delete's "detach"):
	 * the filesystems' teardown (every inode a backup's walk read) is not
	 * the requester's wait.  Else, or if that fails, unexposed first.
	 */
	if (!(r->begun && !r->completed) && r->set_id[0] && !r->persistent && !r->keep &&
	    call(r, "shadow.delete", json_pack("{s:s, s:b}", "set", r->set_id, "detach", 1),
		 NULL, NULL) == 0)
		r->set_id[0] = '\0';
	for (size_t i = 0; r->set_id[0] && i < r->nsh; i++)
		if (r->sh[i].exposed)
			call(r, "shadow.unexpose", json_pack("{s:s}", "dir", r->sh[i].exposed),
			     NULL, NULL);
	if (r->begun && !r->completed)
		call(r, "backup.abort", NULL, NULL, NULL);
	else if (r->set_id[0] && !r->persistent && !r->keep)
		call(r, "shadow.delete", json_pack("{s:s}", "set", r->set_id), NULL, NULL);
	vss_client_close(r->c);
	free_shadows(r);
	for (size_t i = 0; i < r->nw; i++) {
		vss_wmd_free(r->w[i].wmd);
		json_decref(r->w[i].status);
	}
	free(r->w);
	for (size_t i = 0; i < r->ntargets; i++)
		free(r->targets[i]);
	vss_bcd_free(r->bcd);
	json_decref(r->exclude);
	json_decref(r->require);
	free(r->provider);
	req_lease_release(&r->lease);
	pthread_mutex_destroy(&r->call_lock);
	free(r);
}

int vss_requester_set_backup_state(struct vss_requester *r, enum vss_backup_type type,
				   bool partial_file_support, struct vss_error *err)
{
	if (r->begun)
		return vss_error_set(err, -EBUSY, "the backup state is set before gathering "
				     "writer metadata");
	if (type < VSS_BT_FULL || type > VSS_BT_COPY)
		return vss_error_set(err, -EINVAL, "unknown backup type %d", (int)type);
	r->type = type;
	r->partial = partial_file_support;
	return 0;
}

int vss_requester_exclude_writer(struct vss_requester *r, const char *writer,
				 struct vss_error *err)
{
	if (r->begun)
		return vss_error_set(err, -EBUSY, "writers are excluded before gathering");
	json_array_append_new(r->exclude, json_string(writer));
	return 0;
}

int vss_requester_require_writer(struct vss_requester *r, const char *writer,
				 struct vss_error *err)
{
	if (r->begun)
		return vss_error_set(err, -EBUSY, "writers are required before gathering");
	json_array_append_new(r->require, json_string(writer));
	return 0;
}

void vss_requester_set_timeouts(struct vss_requester *r, unsigned int window_ms,
				unsigned int wait_ms)
{
	if (window_ms)
		r->window_ms = window_ms;
	r->wait_ms = wait_ms;
}

void vss_requester_set_hold(struct vss_requester *r, unsigned int lease_ms,
			    unsigned long long hold_ms)
{
	r->lease_ms = lease_ms;
	r->hold_ms = hold_ms;
}

void vss_requester_set_persistent(struct vss_requester *r, bool persistent)
{
	r->persistent = persistent;
}

void vss_requester_set_no_writers(struct vss_requester *r, bool no_writers)
{
	r->no_writers = no_writers;
}

int vss_requester_set_provider(struct vss_requester *r, const char *provider,
			       struct vss_error *err)
{
	char *p = provider ? strdup(provider) : NULL;

	if (provider && !p)
		return vss_error_set(err, -ENOMEM, "out of memory");
	free(r->provider);
	r->provider = p;
	return 0;
}

void vss_requester_set_allow_live(struct vss_requester *r, bool allow_live)
{
	r->allow_live = allow_live;
}

void vss_requester_keep_set(struct vss_requester *r)
{
	r->keep = true;
}

int vss_requester_gather_writer_metadata(struct vss_requester *r, struct vss_error *err)
{
	json_t *args, *res, *w;
	size_t i;
	int rc;

	if (r->begun)
		return vss_error_set(err, -EBUSY, "writer metadata was already gathered");
	args = json_pack("{s:s, s:b, s:b, s:O, s:O, s:I, s:I}", "type", type_names[r->type],
			 "partial_file_support", r->partial, "no_writers", r->no_writers,
			 "exclude_writers", r->exclude, "require_writers", r->require,
			 "timeout_ms", (json_int_t)r->window_ms,
			 "wait_ms", (json_int_t)r->wait_ms);
	if (r->lease_ms)
		json_object_set_new(args, "lease_ms", json_integer((json_int_t)r->lease_ms));
	if (r->hold_ms)
		json_object_set_new(args, "hold_ms", json_integer((json_int_t)r->hold_ms));
	rc = call(r, "backup.begin", args, &res, err);
	if (rc < 0)
		return rc;
	r->begun = true;
	renew_start(r, (unsigned long long)json_integer_value(json_object_get(res, "lease_ms")));
	r->w = calloc(json_array_size(json_object_get(res, "writers")) + 1, sizeof(*r->w));
	json_array_foreach(json_object_get(res, "writers"), i, w) {
		char *text = json_dumps(json_object_get(w, "metadata"), JSON_COMPACT);

		if (text && vss_wmd_parse(text, strlen(text), 0, &r->w[r->nw].wmd, NULL) == 0) {
			json_object_del(w, "metadata");
			r->w[r->nw++].status = json_incref(w);
		}
		free(text);
	}
	json_decref(res);
	return vss_bcd_new(r->type, r->partial, &r->bcd, err);
}

size_t vss_requester_writer_count(const struct vss_requester *r)
{
	return r->nw;
}

const struct vss_wmd *vss_requester_writer_metadata(const struct vss_requester *r,
						    size_t i)
{
	return i < r->nw ? r->w[i].wmd : NULL;
}

int vss_requester_writer_status(const struct vss_requester *r, size_t i,
				struct vss_requester_writer *out)
{
	json_int_t state;
	json_t *s;
	int failure;

	if (i >= r->nw)
		return -ERANGE;
	s = r->w[i].status;
	out->name = json_string_value(json_object_get(s, "name"));
	out->class_id = json_string_value(json_object_get(s, "id"));
	out->instance_id = json_string_value(json_object_get(s, "instance"));
	state = json_integer_value(json_object_get(s, "state"));
	out->state = state >= 0 && state <= VSS_WS_MAX ? (enum vss_writer_state)state
		     : VSS_WS_UNKNOWN;
	out->state_name = json_string_value(json_object_get(s, "state_name"));
	out->error_kind = json_string_value(json_object_get(s, "error_kind"));
	/* A kind a newer vssd knows and this library does not: the default. */
	failure = vss_writer_failure_from_name(out->error_kind);
	out->failure = failure >= 0 ? (enum vss_writer_failure)failure : VSS_WF_NONRETRYABLE;
	out->last_error = json_string_value(json_object_get(s, "last_error"));
	return 0;
}

struct vss_bcd *vss_requester_components(struct vss_requester *r)
{
	return r->bcd;
}

int vss_requester_select_all_components(struct vss_requester *r, struct vss_error *err)
{
	if (!r->bcd)
		return vss_error_set(err, -EINVAL, "gather writer metadata first");
	for (size_t k = 0; k < r->nw; k++) {
		struct vss_wmd_identity id;

		vss_wmd_identity(r->w[k].wmd, &id);
		for (size_t i = 0; i < vss_wmd_component_count(r->w[k].wmd); i++) {
			struct vss_wmd_component_info ci;
			int rc;

			vss_wmd_component(r->w[k].wmd, i, &ci);
			rc = vss_bcd_add_component(r->bcd, &(struct vss_bcd_component_info){
				.class_id = id.class_id, .instance_id = id.instance_id,
				.logical_path = ci.logical_path, .name = ci.name }, NULL, err);
			if (rc < 0 && rc != -EEXIST)
				return rc;
		}
	}
	return 0;
}

/* Whether @path is @dir or below it. */
static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !n || (strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/'));
}

/* "LOGICAL/PATH/NAME" of component @ci. */
static void full_path(const struct vss_wmd_component_info *ci, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s", ci->logical_path ? ci->logical_path : "",
		 ci->logical_path && *ci->logical_path ? "/" : "", ci->name);
}

static int select_one(struct vss_requester *r, size_t k, size_t comp, struct vss_error *err);

/* The component (@lp, @name) in the writers of class @class_id. */
static int select_in_class(struct vss_requester *r, const char *class_id, const char *lp,
			   const char *name, struct vss_error *err)
{
	for (size_t k = 0; k < r->nw; k++) {
		struct vss_wmd_identity id;
		int comp, rc;

		vss_wmd_identity(r->w[k].wmd, &id);
		if (strcasecmp(id.class_id, class_id) != 0 ||
		    (comp = vss_wmd_find_component(r->w[k].wmd, lp, name)) < 0)
			continue;
		if ((rc = select_one(r, k, (size_t)comp, err)) < 0)
			return rc;
	}
	return 0;
}

/* Selects component @comp of writer @k and what it depends on. */
static int select_one(struct vss_requester *r, size_t k, size_t comp, struct vss_error *err)
{
	const struct vss_wmd *wmd = r->w[k].wmd;
	struct vss_wmd_component_info ci;
	struct vss_wmd_identity id;
	int rc;

	vss_wmd_identity(wmd, &id);
	vss_wmd_component(wmd, comp, &ci);
	rc = vss_bcd_add_component(r->bcd, &(struct vss_bcd_component_info){
		.class_id = id.class_id, .instance_id = id.instance_id,
		.logical_path = ci.logical_path, .name = ci.name }, NULL, err);
	if (rc == -EEXIST)
		return 0;       /* and so are its dependencies */
	for (size_t i = 0; rc == 0 && i < vss_wmd_dependency_count(wmd, comp); i++) {
		struct vss_wmd_dependency dep;

		vss_wmd_dependency(wmd, comp, i, &dep);
		rc = select_in_class(r, dep.writer_class_id ? dep.writer_class_id : id.class_id,
				     dep.logical_path, dep.name, err);
	}
	return rc;
}

/* The writer's non-selectable components that no selectable one holds. */
static int select_required(struct vss_requester *r, size_t k, struct vss_error *err)
{
	const struct vss_wmd *wmd = r->w[k].wmd;
	size_t n = vss_wmd_component_count(wmd);

	for (size_t i = 0; i < n; i++) {
		struct vss_wmd_component_info ci;
		bool held = false;
		int rc;

		vss_wmd_component(wmd, i, &ci);
		for (size_t j = 0; !ci.selectable && !held && j < n; j++) {
			struct vss_wmd_component_info cj;
			char full[2 * VSS_DOC_NAME_MAX + 2];

			vss_wmd_component(wmd, j, &cj);
			full_path(&cj, full, sizeof(full));
			held = j != i && cj.selectable && ci.logical_path &&
			       under(ci.logical_path, full);
		}
		if (!ci.selectable && !held && (rc = select_one(r, k, i, err)) < 0)
			return rc;
	}
	return 0;
}

int vss_requester_select_component(struct vss_requester *r, const char *writer,
				   const char *path, struct vss_error *err)
{
	bool writer_found = false, found = false;

	if (!r->bcd)
		return vss_error_set(err, -EINVAL, "gather writer metadata first");
	while (path && *path == '/')
		path++;
	for (size_t k = 0; k < r->nw; k++) {
		const struct vss_wmd *wmd = r->w[k].wmd;
		struct vss_wmd_identity id;
		bool here = false;
		int rc;

		vss_wmd_identity(wmd, &id);
		if (strcmp(id.writer_name, writer) != 0 && strcasecmp(id.class_id, writer) != 0 &&
		    strcasecmp(id.instance_id, writer) != 0)
			continue;
		writer_found = true;
		for (size_t i = 0; i < vss_wmd_component_count(wmd); i++) {
			struct vss_wmd_component_info ci;
			char full[2 * VSS_DOC_NAME_MAX + 2];

			vss_wmd_component(wmd, i, &ci);
			full_path(&ci, full, sizeof(full));
			if (path && *path && !under(full, path))
				continue;
			if ((rc = select_one(r, k, i, err)) < 0)
				return rc;
			here = true;
		}
		if (here && (rc = select_required(r, k, err)) < 0)
			return rc;
		found |= here;
	}
	if (!writer_found)
		return vss_error_set(err, -ENOENT, "no writer %s takes part in this backup",
				     writer);
	if (!found)
		return vss_error_set(err, -ENOENT, "writer %s has no component %s", writer,
				     path && *path ? path : "at all");
	return 0;
}

int vss_requester_set_previous_stamps(struct vss_requester *r, const struct vss_bcd *previous,
				      struct vss_error *err)
{
	enum vss_backup_type prev = vss_bcd_backup_type(previous), t = r->type;

	if (!r->bcd)
		return vss_error_set(err, -EINVAL, "gather writer metadata first");
	for (size_t i = 0; i < vss_bcd_component_count(r->bcd); i++) {
		struct vss_bcd_component *c = vss_bcd_component_at(r->bcd, i), *pc;
		struct vss_bcd_component_info ci;
		const char *stamp = NULL;
		uint32_t schema = 0;
		int rc;

		vss_bcd_component_info(c, &ci);
		for (size_t k = 0; k < r->nw; k++) {
			struct vss_wmd_identity id;

			vss_wmd_identity(r->w[k].wmd, &id);
			if (strcasecmp(id.instance_id, ci.instance_id) == 0)
				schema = vss_wmd_backup_schema(r->w[k].wmd);
		}
		pc = plan_find_comp(previous, ci.class_id, ci.instance_id, ci.logical_path,
				    ci.name);
		if (pc && vss_bcd_backup_succeeded(pc) && (schema & VSS_BS_TIMESTAMPED) &&
		    ((t == VSS_BT_INCREMENTAL && (schema & VSS_BS_INCREMENTAL)) ||
		     (t == VSS_BT_DIFFERENTIAL && (schema & VSS_BS_DIFFERENTIAL)))) {
			bool excl = schema & VSS_BS_EXCLUSIVE_INCREMENTAL_DIFFERENTIAL;

			if (prev == VSS_BT_FULL || (prev == VSS_BT_INCREMENTAL &&
						    t == VSS_BT_INCREMENTAL))
				stamp = vss_bcd_backup_stamp(pc);
			else if (prev == VSS_BT_DIFFERENTIAL && t == VSS_BT_DIFFERENTIAL)
				stamp = vss_bcd_previous_backup_stamp(pc) ?: vss_bcd_backup_stamp(pc);
			else if (prev == VSS_BT_DIFFERENTIAL && !excl)
				stamp = vss_bcd_backup_stamp(pc);
		}
		if ((rc = vss_bcd_set_previous_backup_stamp(c, stamp, err)) < 0)
			return rc;
	}
	return 0;
}

int vss_requester_start_snapshot_set(struct vss_requester *r, struct vss_error *err)
{
	if (r->set_id[0])
		return vss_error_set(err, -EBUSY, "the set %s was already taken", r->set_id);
	for (size_t i = 0; i < r->ntargets; i++)
		free(r->targets[i]);
	r->ntargets = 0;
	return 0;
}

int vss_requester_add_to_snapshot_set(struct vss_requester *r, const char *target,
				      struct vss_error *err)
{
	if (r->ntargets >= MAX_TARGETS)
		return vss_error_set(err, -E2BIG, "a set holds at most %d targets", MAX_TARGETS);
	if (!*target)
		return vss_error_set(err, -EINVAL, "empty target");
	if (!(r->targets[r->ntargets] = strdup(target)))
		return vss_error_set(err, -ENOMEM, "out of memory");
	r->target_dev[r->ntargets] = 0;
	if (target[0] == '/') {
		struct stat st;

		if (stat(target, &st) == 0)
			r->target_dev[r->ntargets] = st.st_dev;
	}
	r->ntargets++;
	return 0;
}

int vss_requester_add_paths_to_snapshot_set(struct vss_requester *r,
					    const char *const *paths, size_t n,
					    struct vss_error *err)
{
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		bool have = false;
		int rc;

		if (stat(paths[i], &st) < 0)
			return vss_error_set(err, -errno, "%s: %s", paths[i], strerror(errno));
		for (size_t k = 0; k < r->ntargets; k++)
			have |= r->target_dev[k] == st.st_dev;
		if (!have && (rc = vss_requester_add_to_snapshot_set(r, paths[i], err)) < 0)
			return rc;
	}
	return 0;
}

int vss_requester_prepare_for_backup(struct vss_requester *r, struct vss_error *err)
{
	struct vss_bcd *back = NULL;
	const char *text;
	json_t *res;
	char *doc;
	int rc;

	if (!r->bcd)
		return vss_error_set(err, -EINVAL, "gather writer metadata first");
	if ((rc = vss_bcd_serialize(r->bcd, &doc, NULL, err)) < 0)
		return rc;
	rc = call(r, "backup.prepare", json_pack("{s:s}", "components", doc), &res, err);
	free(doc);
	if (rc < 0)
		return rc;
	update_states(r, res);
	text = json_string_value(json_object_get(res, "components"));
	if (text && (rc = vss_bcd_parse(text, strlen(text), 0, &back, err)) == 0) {
		vss_bcd_free(r->bcd);
		r->bcd = back;
	}
	json_decref(res);
	return rc;
}

/* The mount point of the volume a target is on, from volume.list. */
static char *mount_of(json_t *vols, const char *volume)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(vols, "volumes"), i, v)
		if (strcmp(json_string_value(json_object_get(v, "name")), volume) == 0 &&
		    json_is_string(json_object_get(v, "mount")))
			return strdup(json_string_value(json_object_get(v, "mount")));
	return NULL;
}

int vss_requester_do_snapshot_set(struct vss_requester *r, struct vss_error *err)
{
	json_t *targets = json_array(), *res, *vols = NULL, *s;
	struct vss_bcd *back = NULL;
	const char *text;
	size_t i;
	int rc;

	if (r->ntargets == 0) {
		json_decref(targets);
		return vss_error_set(err, -EINVAL, "the snapshot set is empty "
				     "(vss_requester_add_to_snapshot_set)");
	}
	if (r->set_id[0]) {
		json_decref(targets);
		return vss_error_set(err, -EBUSY, "the set %s was already taken", r->set_id);
	}
	for (i = 0; i < r->ntargets; i++)
		json_array_append_new(targets, json_string(r->targets[i]));
	rc = call(r, "shadow.create", json_pack("{s:o, s:b, s:b, s:I, s:s?, s:b}", "targets",
						targets, "persistent", r->persistent,
						"no_writers", r->no_writers, "timeout_ms",
						(json_int_t)r->window_ms, "provider",
						r->provider, "allow_live", r->allow_live),
		  &res, err);
	if (rc < 0) {
		/* The service ended the backup with the set. */
		r->completed = true;
		renew_stop(r);
		return rc;
	}
	update_states(r, res);
	snprintf(r->set_id, sizeof(r->set_id), "%s",
		 json_string_value(json_object_get(res, "set")));
	/* The document as the writers left it at PostSnapshot (backup
	 * metadata); one that does not parse leaves ours. */
	text = json_string_value(json_object_get(res, "components"));
	if (text && vss_bcd_parse(text, strlen(text), 0, &back, NULL) == 0) {
		vss_bcd_free(r->bcd);
		r->bcd = back;
	}
	call(r, "volume.list", NULL, &vols, NULL);
	json_array_foreach(json_object_get(res, "shadows"), i, s) {
		struct req_shadow *sh = &r->sh[r->nsh++];

		sh->id = strdup(json_string_value(json_object_get(s, "id")));
		sh->target = strdup(json_string_value(json_object_get(s, "target")));
		sh->volume = strdup(json_string_value(json_object_get(s, "volume")));
		sh->device = strdup(json_string_value(json_object_get(s, "device")));
		sh->live = json_is_true(json_object_get(s, "live"));
		if (json_is_string(json_object_get(s, "fallback")))
			sh->fallback = strdup(json_string_value(json_object_get(s, "fallback")));
		if (json_is_string(json_object_get(s, "provider")))
			sh->provider = strdup(json_string_value(json_object_get(s, "provider")));
		if (json_is_string(json_object_get(s, "target_path")))
			sh->target_path = strdup(json_string_value(json_object_get(s,
										 "target_path")));
		if (json_is_string(json_object_get(s, "host")))
			sh->host = strdup(json_string_value(json_object_get(s, "host")));
		/* Another host's member is read on its host, never mounted here. */
		if (sh->live || sh->host)
			sh->mount = NULL;
		else if (sh->volume[0] == '/')
			sh->mount = strdup(sh->volume);     /* a btrfs subvolume's root */
		else
			sh->mount = mount_of(vols, sh->volume);
	}
	json_decref(vols);
	json_decref(res);
	return 0;
}

const char *vss_requester_set_id(const struct vss_requester *r)
{
	return r->set_id[0] ? r->set_id : NULL;
}

size_t vss_requester_shadow_count(const struct vss_requester *r)
{
	return r->nsh;
}

int vss_requester_shadow(const struct vss_requester *r, size_t i,
			 struct vss_requester_shadow *out)
{
	if (i >= r->nsh)
		return -ERANGE;
	out->id = r->sh[i].id;
	out->target = r->sh[i].target;
	out->volume = r->sh[i].volume;
	out->device = r->sh[i].device;
	out->exposed = r->sh[i].exposed;
	out->mount = r->sh[i].mount;
	out->provider = r->sh[i].provider ? r->sh[i].provider : "vss-cow";
	out->target_path = r->sh[i].target_path;
	out->live = r->sh[i].live;
	out->host = r->sh[i].host;
	return 0;
}

const char *vss_requester_shadow_fallback(const struct vss_requester *r, size_t i)
{
	return i < r->nsh ? r->sh[i].fallback : NULL;
}

int vss_requester_expose(struct vss_requester *r, size_t i, const char *dir,
			 struct vss_error *err)
{
	json_t *res;
	int rc;

	if (i >= r->nsh)
		return vss_error_set(err, -ERANGE, "no shadow %zu in the set", i);
	if (r->sh[i].exposed)
		return vss_error_set(err, -EBUSY, "shadow %s is already exposed at %s",
				     r->sh[i].id, r->sh[i].exposed);
	if (r->sh[i].host)
		return vss_error_set(err, -EINVAL, "shadow %s is on host %s: it is exposed "
				     "there, not here", r->sh[i].id, r->sh[i].host);
	rc = call(r, "shadow.expose", json_pack("{s:s, s:s?}", "shadow", r->sh[i].id,
						"dir", dir), &res, err);
	if (rc < 0)
		return rc;
	r->sh[i].exposed = strdup(json_string_value(json_object_get(res, "dir")));
	json_decref(res);
	return 0;
}

int vss_requester_translate_path(const struct vss_requester *r, const char *live_path,
				 char *out, size_t len, struct vss_error *err)
{
	const struct req_shadow *best = NULL;
	size_t best_len = 0;

	if (live_path[0] != '/')
		return vss_error_set(err, -EINVAL, "%s is not an absolute path", live_path);
	for (size_t i = 0; i < r->nsh; i++) {
		const char *t = r->sh[i].target;
		size_t n = strlen(t);

		/* A live member is read where it is. */
		if (r->sh[i].live && strncmp(live_path, t, n) == 0 &&
		    (live_path[n] == '\0' || live_path[n] == '/')) {
			if ((size_t)snprintf(out, len, "%s", live_path) >= len)
				return vss_error_set(err, -ENAMETOOLONG, "path too long");
			return 0;
		}
	}
	for (size_t i = 0; i < r->nsh; i++) {
		const char *m = r->sh[i].mount;
		size_t n = m ? strlen(m) : 0;

		if (m && n >= best_len && strncmp(live_path, m, n) == 0 &&
		    (live_path[n] == '\0' || live_path[n] == '/' || n == 1)) {
			best = &r->sh[i];
			best_len = n;
		}
	}
	if (!best)
		return vss_error_set(err, -ENOENT, "no shadow of set %s holds %s",
				     r->set_id[0] ? r->set_id : "(none)", live_path);
	if (!best->exposed)
		return vss_error_set(err, -ENXIO, "the shadow %s that holds %s is not "
				     "exposed (vss_requester_expose)", best->id, live_path);
	if ((size_t)snprintf(out, len, "%s%s", best->exposed,
			     best_len == 1 ? live_path : live_path + best_len) >= len)
		return vss_error_set(err, -ENAMETOOLONG, "the translated path is too long");
	return 0;
}

int vss_requester_backup_complete(struct vss_requester *r, bool succeeded,
				  struct vss_error *err)
{
	size_t n = r->bcd ? vss_bcd_component_count(r->bcd) : 0;
	bool any = false;
	json_t *res;
	char *doc = NULL;
	int rc;

	if (!r->begun || r->completed)
		return vss_error_set(err, -EINVAL, "no backup in progress");
	for (size_t i = 0; i < n; i++)
		any |= vss_bcd_backup_succeeded(vss_bcd_component_at(r->bcd, i));
	for (size_t i = 0; i < n; i++)
		if (!succeeded || !any)
			vss_bcd_set_backup_succeeded(vss_bcd_component_at(r->bcd, i), succeeded);
	if (r->bcd && (rc = vss_bcd_serialize(r->bcd, &doc, NULL, err)) < 0)
		return rc;
	rc = call(r, "backup.complete", json_pack("{s:s?}", "components", doc), &res, err);
	free(doc);
	if (rc < 0)
		return rc;
	r->completed = true;
	renew_stop(r);
	update_states(r, res);
	json_decref(res);
	return 0;
}

int vss_requester_backup_status(struct vss_requester *r, struct vss_error *err)
{
	const char *ended;
	json_t *res;
	int rc;

	if (!r->begun || r->completed)
		return vss_error_set(err, -EINVAL, "no backup in progress");
	if ((rc = call(r, "backup.status", NULL, &res, err)) < 0)
		return rc;
	if (json_is_true(json_object_get(res, "active"))) {
		json_decref(res);
		return 0;
	}
	ended = json_string_value(json_object_get(res, "ended"));
	rc = vss_error_set(err, -ECANCELED, "%s", ended ? ended : "the backup is no longer in "
			   "progress on vssd");
	json_decref(res);
	return rc;
}

int vss_requester_abort(struct vss_requester *r, struct vss_error *err)
{
	json_t *res;
	int rc;

	for (size_t i = 0; i < r->nsh; i++)
		if (r->sh[i].exposed) {
			call(r, "shadow.unexpose", json_pack("{s:s}", "dir", r->sh[i].exposed),
			     NULL, NULL);
			free(r->sh[i].exposed);
			r->sh[i].exposed = NULL;
		}
	rc = call(r, "backup.abort", NULL, &res, err);
	if (rc < 0)
		return rc;
	r->completed = true;
	renew_stop(r);
	r->set_id[0] = '\0';          /* the service deleted it */
	update_states(r, res);
	json_decref(res);
	return 0;
}
