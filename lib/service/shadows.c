/*
 * service/shadows.c - the shadows the service lists, of every provider, and
 * the requests about them: shadow.create's set (read as the caller sees its
 * targets, taken by the coordinator, set.c, and replied), set.complete,
 * shadow.list, shadow.delete, shadow.expose, shadow.unexpose.
 *
 * A set taken with "hold" belongs to the connection that asked for it
 * (sh->owner) until that connection sends "set.complete"; if it goes away
 * first, or does not complete it within its hold's deadlines (backup.c:
 * the lease and the limit, ended by the reaper), the set is deleted
 * (svc_conn_gone, expire_set).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provider/provider.h"
#include "service/args.h"
#include "service/backup.h"
#include "service/caller.h"
#include "service/export.h"
#include "service/gmt.h"
#include "service/log.h"
#include "service/peer.h"
#include "service/retire.h"
#include "service/service_i.h"
#include "service/set.h"
#include "service/shadows.h"
#include "service/volumes.h"

/* What the shadow was taken of, for the log: its volume, or its origin's mount. */
static const char *shadow_origin(const struct svc_shadow *sh)
{
	if (sh->vol)
		return sh->vol->rec.name;
	return sh->origin ? sh->origin : sh->rec.target;
}

/* Whether @sh is of @vol (a volume) or, for other providers, of @mount
 * (svc_provider_origin_of()). */
static bool shadow_matches(const struct svc_shadow *sh, const struct svc_volume *vol,
			   const char *mount)
{
	if (sh->vol || (vol && sh->rec.volume[0]))
		return svc_shadow_of(sh, vol);
	return mount && sh->origin && strcmp(sh->origin, mount) == 0;
}

/* Resolves a --for TARGET of list/delete, as @who sees it: a volume (*vol),
 * or for other providers their origin (*mount, malloc'd: a btrfs
 * subvolume's root, a mount). */
static int resolve_for(struct vss_service *svc, const struct svc_caller *who,
		       const char *target, struct svc_volume **vol, char **mount,
		       struct vss_error *err)
{
	char *seen;
	int rc;

	*vol = NULL;
	*mount = NULL;
	if ((rc = svc_caller_path(who, target, &seen, err)) < 0)
		return rc;
	rc = svc_resolve_target(svc, seen, vol, err);
	if (rc != 0 && seen[0] == '/' && (*mount = svc_provider_origin_of(svc, seen)))
		rc = 0;
	free(seen);
	return rc;
}

struct svc_shadow *svc_shadow_find(struct vss_service *svc, const char *id)
{
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		if (strcmp(sh->rec.id, id) == 0)
			return sh;
	return NULL;
}

bool svc_shadow_of(const struct svc_shadow *sh, const struct svc_volume *v)
{
	if (sh->vol)
		return sh->vol == v;
	return v && sh->rec.volume[0] && strcmp(sh->rec.volume, v->rec.name) == 0;
}

int svc_shadow_count(struct vss_service *svc, struct svc_volume *v)
{
	int n = 0;

	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		if (svc_shadow_of(sh, v))
			n++;
	return n;
}

const char *svc_shadow_count_why(struct vss_service *svc, struct svc_volume *v)
{
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		if (svc_shadow_of(sh, v) && sh->retiring && !sh->retire_held)
			return " (being deleted after a backup: try again in a moment)";
	return "";
}

/* Removes vssd's own exposure directory RUN/exec/SET/ID, and SET if empty. */
static void own_dir_remove(const char *dir)
{
	char set[PATH_MAX];
	char *slash;

	if (vss_fs_rmdir(dir) < 0)
		return;
	snprintf(set, sizeof(set), "%s", dir);
	if ((slash = strrchr(set, '/')) && slash != set) {
		*slash = '\0';
		vss_fs_rmdir(set);
	}
}

void svc_shadow_unexpose(struct svc_shadow *sh, bool force)
{
	if (!sh->expose_dir)
		return;
	if (force) {
		vss_fs_umount_force(sh->expose_dir);
		if (sh->expose_own)
			own_dir_remove(sh->expose_dir);
	}
	free(sh->expose_dir);
	sh->expose_dir = NULL;
	sh->expose_id = 0;
	sh->expose_loop[0] = '\0';
	sh->expose_own = false;
	sh->expose_gmt = false;
	sh->expose_reading = false;
}

void svc_shadow_remove(struct vss_service *svc, struct svc_shadow *sh, const char *why)
{
	struct vss_error err;
	int rc;

	svc_assert_locked(svc);
	svc_exports_end_of(svc, false, sh->rec.id);
	svc_shadow_unexpose(sh, true);
	rc = sh->prov->remove(svc, sh, &err);
	if (rc < 0)
		vss_log("shadow %s: provider %s could not delete it: %s", sh->rec.id,
			sh->prov->name, err.msg);
	if (vss_catalog_shadow_delete(svc->cat, sh->rec.id, &err) < 0)
		vss_log("shadow %s: %s", sh->rec.id, err.msg);
	for (struct svc_shadow **pp = &svc->shadows; *pp; pp = &(*pp)->next)
		if (*pp == sh) {
			*pp = sh->next;
			break;
		}
	if (why)
		vss_log("shadow %s of %s deleted: %s", sh->rec.id, shadow_origin(sh), why);
	free(sh->rec.target);
	free(sh->path);
	free(sh->origin);
	free(sh->target_path);
	free(sh);
}

/* @cand counts for the prefix @prefix (@n bytes): *@found is the one it
 * names, or -EINVAL if it names two. */
static int match_prefix(const char *cand, const char *prefix, size_t n, const char **found,
			const char *what, struct vss_error *err)
{
	if (strncasecmp(cand, prefix, n) != 0)
		return 0;
	if (*found && strcmp(*found, cand) != 0)
		return vss_error_set(err, -EINVAL, "%s ID prefix %s is ambiguous", what, prefix);
	*found = cand;
	return 0;
}

/* Finds the shadow (or, with @set, the set) a prefix of at least 8
 * characters names; with @remote, other hosts' members of this host's sets
 * count too. */
static int resolve_prefix(struct vss_service *svc, const char *prefix, bool set, bool remote,
			  char out[37], struct vss_error *err)
{
	const char *what = set ? "shadow copy set" : "shadow copy";
	const char *found = NULL;
	size_t n = strlen(prefix);
	int rc = 0;

	if (n < 8 || n > 36)
		return vss_error_set(err, -EINVAL, "\"%s\" is not a %s ID or a prefix of at "
				     "least 8 characters", prefix, what);
	/* A retiring shadow (retire.h) is deleted as far as requests go. */
	for (struct svc_shadow *sh = svc->shadows; sh && rc == 0; sh = sh->next)
		if (!sh->retiring)
			rc = match_prefix(set ? sh->rec.set_id : sh->rec.id, prefix, n, &found,
					  what, err);
	/* Other hosts' members: a set of remote ones only, or one to delete. */
	for (struct svc_remote *r = remote ? svc->remotes : NULL; r && rc == 0; r = r->next)
		rc = match_prefix(set ? r->rec.set_id : r->rec.id, prefix, n, &found, what, err);
	if (rc < 0)
		return rc;
	if (!found)
		return vss_error_set(err, -ENOENT, "no %s %s", what, prefix);
	memcpy(out, found, 37);
	return 0;
}

/*
 * The targets of shadow.create: this host's as @who sees them (@seen, also
 * in @list, *@n of them), other hosts' (HOST:TARGET) into *@ps, made when
 * there is one: root's only, and never on a host that is itself another's
 * part of a set (@peer); with @begun, *@ps holds them already.
 */
static int read_targets(struct vss_service *svc, const struct svc_caller *who, json_t *targets,
			bool peer, bool begun, char **seen, const char **list, size_t *n_local,
			struct svc_peer_set **ps, struct vss_error *err)
{
	size_t n = json_array_size(targets);
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *t = json_string_value(json_array_get(targets, i)), *rest;
		char host[SVC_PEER_NAME_MAX + 1];

		if (!t || !*t)
			return vss_error_set(err, -EINVAL, "argument \"targets\" must be a "
					     "non-empty array of strings");
		if (!svc_peer_target_split(t, host, &rest)) {
			rc = svc_caller_path(who, t, &seen[*n_local], err);
			list[*n_local] = seen[*n_local];
			(*n_local)++;
			continue;
		}
		if (peer)
			return vss_error_set(err, -EINVAL, "%s: another host's target in a set "
					     "this host takes for a coordinator", t);
		if (begun)
			continue;       /* in *@ps already (svc_peer_backup_begin) */
		if (!who || who->role < SVC_ROLE_ROOT)
			return vss_error_set(err, -EACCES, "permission denied: only root may take "
					     "a set with another host's targets (%s)", t);
		if (!*ps && (rc = svc_peer_set_new(svc, ps, err)) < 0)
			return rc;
		rc = svc_peer_set_add(*ps, t, err);
	}
	return rc;
}

/* The reply's shadows in the order of @targets: this host's from @set,
 * the others' from @remote (each matched by its "target", as given). */
static json_t *in_order(json_t *targets, json_t *local, json_t *remote)
{
	json_t *out = json_array();
	size_t next = 0;
	char host[SVC_PEER_NAME_MAX + 1];
	const char *rest;

	for (size_t i = 0; i < json_array_size(targets); i++) {
		const char *t = json_string_value(json_array_get(targets, i));

		if (!svc_peer_target_split(t, host, &rest)) {
			json_array_append(out, json_array_get(local, next++));
			continue;
		}
		for (size_t k = 0; k < json_array_size(remote); k++) {
			json_t *sh = json_array_get(remote, k);

			if (strcmp(json_string_value(json_object_get(sh, "target")), t) == 0) {
				json_array_append(out, sh);
				json_array_remove(remote, k);
				break;
			}
		}
	}
	json_decref(local);
	json_decref(remote);
	return out;
}

int svc_shadow_create(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		      struct conn *owner, const struct svc_set_sync *sync,
		      struct svc_peer_backup *bk, json_t **res, struct vss_error *err)
{
	json_t *targets = json_object_get(args, "targets"), *out, *warnings, *remote;
	const char *seen_targets[SVC_SET_MAX];
	char *seen[SVC_SET_MAX] = { NULL };     /* the targets as the caller sees them */
	struct svc_set_params p = { .targets = seen_targets, .owner = owner, .sync = sync };
	/* Other hosts' targets; a requester's backup began them already. */
	struct svc_peer_set *ps = bk ? bk->ps : NULL;
	struct svc_set *set = NULL;
	int rc;

	svc_assert_locked(svc);
	if ((rc = svc_arg_bool(args, "persistent", &p.persistent, err)) < 0 ||
	    (rc = svc_arg_bool(args, "no_writers", &p.no_writers, err)) < 0 ||
	    (rc = svc_arg_bool(args, "allow_live", &p.allow_live, err)) < 0 ||
	    (rc = svc_arg_str(args, "provider", false, &p.provider, err)) < 0)
		return rc;
	if (p.provider && !svc_provider_find(svc, p.provider))
		return vss_error_set(err, -ENOENT, "no provider named \"%s\" (vss list "
				     "providers shows them)", p.provider);
	if (!json_is_array(targets) || json_array_size(targets) == 0)
		return vss_error_set(err, -EINVAL, "argument \"targets\" must be a non-empty "
				     "array of strings");
	if (json_array_size(targets) > SVC_SET_MAX)
		return vss_error_set(err, -E2BIG, "a set holds at most %d targets", SVC_SET_MAX);
	rc = read_targets(svc, who, targets, sync != NULL, ps != NULL, seen, seen_targets, &p.n,
			  &ps, err);
	if (rc == 0 && ps)
		p.sync = svc_peer_set_sync(ps, p.persistent, p.no_writers);
	if (rc == 0 && ps && bk)
		svc_peer_set_backup(ps, bk);
	if (rc == 0)
		rc = svc_set_take(svc, &p, &set, err);
	if (rc < 0)
		goto out;
	remote = json_array();
	if (ps && (rc = svc_peer_set_finish(ps, set, owner, remote, err)) < 0) {
		for (size_t i = 0; i < set->n; i++)
			svc_shadow_remove(svc, set->shadows[i], "its set failed on another host");
		vss_log("set %s aborted: %s", set->id, err->msg);
		json_decref(remote);
		svc_set_free(set);
		goto out;
	}
	out = json_array();
	warnings = json_array();
	for (size_t i = 0; i < set->n; i++) {
		const struct svc_member *m = &set->m[i];
		const struct svc_shadow *sh = set->shadows[i];
		char dev[PATH_MAX];

		sh->prov->location(svc, sh, dev, sizeof(dev));
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o, s:s?}",
						     "id", sh->rec.id,
						     "target", m->target,
						     "volume", shadow_origin(sh),
						     "device", dev,
						     "provider", sh->prov->name,
						     "live", (sh->prov->caps & SVC_PROVIDER_LIVE) != 0,
						     "target_path", sh->target_path
						     ? json_string(sh->target_path) : json_null(),
						     "fallback", m->fallback));
		if (m->warning)
			json_array_append_new(warnings, json_string(m->warning));
		if (m->fallback)
			json_array_append_new(warnings, json_string(m->fallback));
	}
	*res = json_pack("{s:s, s:f, s:f, s:o, s:o, s:b}", "set", set->id,
			 "frozen_ms", set->frozen_ms, "held_ms", set->held_ms,
			 "shadows", in_order(targets, out, remote), "warnings", warnings,
			 "complete", !owner);
	svc_set_free(set);
	if (!owner)
		svc_gmt_sync(svc);
out:
	if (!bk || ps != bk->ps)
		svc_peer_set_free(ps);
	for (size_t i = 0; i < p.n && i < SVC_SET_MAX; i++)
		free(seen[i]);
	return rc;
}

int svc_op_set_complete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err)
{
	const char *set;
	int rc, n;

	if ((rc = svc_arg_str(args, "set", true, &set, err)) < 0 ||
	    (rc = svc_backup_set_complete(svc, who->conn, set, &n, err)) < 0)
		return rc;
	svc_gmt_sync(svc);
	*res = json_pack("{s:s, s:i}", "set", set, "shadows", n);
	return 0;
}

bool svc_conn_holds_set(struct vss_service *svc, struct conn *c)
{
	bool held = false;

	svc_lock(svc);
	for (struct svc_shadow *sh = svc->shadows; sh && !held; sh = sh->next)
		held = sh->owner == c;
	held = held || svc_remotes_held_by(svc, c);
	svc_unlock(svc);
	return held;
}

void svc_conn_gone(struct vss_service *svc, struct conn *c)
{
	svc_lock(svc);
	for (struct svc_shadow *sh = svc->shadows, *next; sh; sh = next) {
		next = sh->next;
		if (sh->owner == c)
			svc_shadow_remove(svc, sh, "its requester went away before the set "
					  "was complete");
	}
	svc_remotes_drop(svc, c, NULL, "its requester went away before the set was complete");
	svc_unlock(svc);
}

struct listed {
	uint64_t created_ns;
	uint32_t seq;
	json_t *obj;
};

static int cmp_listed(const void *a, const void *b)
{
	const struct listed *x = a, *y = b;

	if (x->created_ns != y->created_ns)
		return x->created_ns < y->created_ns ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static json_t *shadow_json(struct vss_service *svc, struct svc_shadow *sh,
			   const struct vss_cow_shadow_info *info)
{
	char dev[PATH_MAX], created[40];
	json_t *attrs = json_array(), *held_by;
	const char *state;

	sh->prov->location(svc, sh, dev, sizeof(dev));
	svc_time_str(info->created_ns, created);
	json_array_append_new(attrs, json_string(sh->rec.attrs & VSS_CATALOG_ATTR_PERSISTENT
						 ? "persistent" : "auto-release"));
	if (sh->rec.attrs & VSS_CATALOG_ATTR_NO_WRITERS)
		json_array_append_new(attrs, json_string("no-writers"));
	json_array_append_new(attrs, json_string("client-accessible"));
	json_array_append_new(attrs, json_string(sh->prov->shadow_attr));
	if (sh->expose_dir)
		json_array_append_new(attrs, json_string("exposed"));
	if (info->state == VSS_COW_SHADOW_INVALID)
		state = "invalid";
	else if (sh->owner)
		state = "in-progress";
	else if (sh->retiring)
		state = "deleting";     /* its filesystem still in use (retire.h) */
	else
		state = "valid";
	/* A shadow being deleted: what still uses it (retire.c), as last looked. */
	held_by = json_array();
	for (int i = 0; sh->retiring && i < sh->retire_by_n && i < 4; i++)
		json_array_append_new(held_by, json_pack("{s:i, s:s}", "pid", (int)sh->retire_by[i].pid,
							 "command", sh->retire_by[i].comm));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:o, s:o, s:s, s:I, s:i, s:o,"
			 " s:o, s:n, s:o, s:o}",
			 "id", sh->rec.id, "set", sh->rec.set_id,
			 "volume", shadow_origin(sh), "target", sh->rec.target,
			 "created", created, "created_ns", (json_int_t)info->created_ns,
			 "device", dev, "provider", sh->prov->name,
			 "path", sh->path ? json_string(sh->path) : json_null(),
			 "target_path", sh->target_path ? json_string(sh->target_path)
							: json_null(),
			 "attributes", attrs, "state", state,
			 "diff_bytes", (json_int_t)info->diff_bytes,
			 "seq", (int)info->seq,
			 "exposed", sh->expose_dir ? json_string(sh->expose_dir) : json_null(),
			 "schedule", *sh->rec.schedule ? json_string(sh->rec.schedule)
							: json_null(),
			 "host", "coordinator", *sh->rec.coordinator
			 ? json_string(sh->rec.coordinator) : json_null(), "held_by", held_by);
}

int svc_op_shadow_list(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
		       struct vss_error *err)
{
	const char *target, *set;
	struct svc_volume *only = NULL;
	struct listed *items = NULL, *bigger;
	size_t count = 0, cap = 0;
	char *only_mount = NULL;
	json_t *arr;
	int rc;

	if ((rc = svc_arg_str(args, "for", false, &target, err)) < 0 ||
	    (rc = svc_arg_str(args, "set", false, &set, err)) < 0)
		return rc;
	if (target && (rc = resolve_for(svc, who, target, &only, &only_mount, err)) < 0)
		return rc;
	for (struct svc_volume *v = svc->volumes; v; v = v->next) {
		struct vss_cow_shadow_info *infos = NULL;
		size_t k = 0;

		if ((target && v != only) || !v->cow)
			continue;
		if ((rc = vss_cow_shadow_list(v->cow, &infos, &k)) < 0) {
			rc = vss_error_set(err, rc, "cannot list the shadows of %s: %s",
					   v->rec.name, strerror(-rc));
			goto fail;
		}
		for (size_t i = 0; i < k; i++) {
			struct svc_shadow *sh;
			char id[37];

			svc_id_str(infos[i].id, id);
			sh = svc_shadow_find(svc, id);
			if (!sh || (sh->retiring && !sh->retire_held))
				continue;   /* being taken or deleted right now */
			if (set && strncasecmp(sh->rec.set_id, set, strlen(set)) != 0)
				continue;
			if (!(bigger = svc_grow(items, &cap, count, sizeof(*items)))) {
				free(infos);
				rc = vss_error_set(err, -ENOMEM, "out of memory");
				goto fail;
			}
			items = bigger;
			items[count].created_ns = infos[i].created_ns;
			items[count].seq = infos[i].seq;
			items[count++].obj = shadow_json(svc, sh, &infos[i]);
		}
		free(infos);
	}
	/* Shadows of the other providers: the service's own record is all there is. */
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next) {
		struct vss_cow_shadow_info info = { .created_ns = sh->rec.created_ns };

		if (sh->vol || (sh->retiring && !sh->retire_held) ||
		    (target && !shadow_matches(sh, only, only_mount)))
			continue;
		if (set && strncasecmp(sh->rec.set_id, set, strlen(set)) != 0)
			continue;
		if (sh->prov->info)
			sh->prov->info(svc, sh, &info);
		if (!(bigger = svc_grow(items, &cap, count, sizeof(*items)))) {
			rc = vss_error_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
		items = bigger;
		items[count].created_ns = info.created_ns;
		items[count].seq = 0;
		items[count++].obj = shadow_json(svc, sh, &info);
	}
	/* Other hosts' members of this host's sets: as recorded here. */
	for (struct svc_remote *r = svc->remotes; r && !target; r = r->next) {
		if (set && strncasecmp(r->rec.set_id, set, strlen(set)) != 0)
			continue;
		if (!(bigger = svc_grow(items, &cap, count, sizeof(*items)))) {
			rc = vss_error_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
		items = bigger;
		items[count].created_ns = r->rec.created_ns;
		items[count].seq = 0;
		items[count++].obj = svc_remote_json(r);
	}
	free(only_mount);
	if (count > 1)
		qsort(items, count, sizeof(*items), cmp_listed);
	arr = json_array();
	for (size_t i = 0; i < count; i++)
		json_array_append_new(arr, items[i].obj);
	free(items);
	*res = json_pack("{s:o}", "shadows", arr);
	return 0;
fail:
	for (size_t i = 0; i < count; i++)
		json_decref(items[i].obj);
	free(items);
	free(only_mount);
	return rc;
}

/* Deletes another host's member @r there: 1, or 0 with why in @kept. */
static int delete_remote(struct vss_service *svc, struct svc_remote *r, const char *why,
			 json_t *kept)
{
	struct vss_error e;
	char id[37], host[SVC_PEER_NAME_MAX + 1];

	memcpy(id, r->rec.id, sizeof(id));
	snprintf(host, sizeof(host), "%s", r->rec.host);
	if (svc_remote_delete(svc, r, why, &e) == 0)
		return 1;
	vss_log("%s", e.msg);
	json_array_append_new(kept, json_pack("{s:s, s:s, s:s, s:s}", "id", id, "host", host,
					      "set", r->rec.set_id, "why", e.msg));
	return 0;
}

/*
 * shadow.delete's "detach": @sh's mount is detached at once, its filesystem
 * kept alive by a descriptor that retire.c closes, and the shadow marked
 * retiring and queued there: deleted once the filesystem is gone.  0 if
 * queued; 1 if it could not be queued (its filesystem let go here: delete
 * it now); -errno if it cannot be detached (not exposed through a loop
 * device: delete it now, as without "detach").
 */
static int detach_exposed(struct vss_service *svc, struct svc_shadow *sh)
{
	char backing[4096], loop[VSS_LOOP_NAME_MAX];
	struct vss_error e;
	int hold, rc;

	if (!sh->expose_dir || !sh->expose_loop[0] || sh->expose_gmt || sh->expose_reading)
		return -EINVAL;
	snprintf(loop, sizeof(loop), "%s", sh->expose_loop);
	if ((rc = vss_loop_backing(loop, backing, sizeof(backing))) < 0)
		return rc;
	if ((rc = vss_fs_umount_detach(sh->expose_dir, sh->expose_id, &hold, &e)) < 0) {
		vss_log("shadow %s: %s: unmounted and deleted now instead", sh->rec.id, e.msg);
		return rc;
	}
	vss_log("shadow %s unexposed from %s (detached: deleted once its filesystem is "
		"released)", sh->rec.id, sh->expose_dir);
	if (vss_catalog_mount_delete(svc->cat, true, sh->rec.id, &e) < 0)
		vss_log("shadow %s: %s", sh->rec.id, e.msg);
	if (sh->expose_own)
		own_dir_remove(sh->expose_dir);
	svc_shadow_unexpose(sh, false);
	if ((rc = svc_retire_queue(svc, sh->rec.id, loop, backing, hold, &e)) < 0) {
		close(hold);            /* the filesystem goes now */
		return 1;
	}
	sh->retiring = true;
	return 0;
}

/* Deletes the shadows of the set @full: with @detach, those exposed are
 * detached and deleted later (detach_exposed); *@later counts them. */
static int delete_set(struct vss_service *svc, const char *full, bool detach, int *later)
{
	int n = 0;

	for (struct svc_shadow *sh = svc->shadows, *next; sh; sh = next) {
		next = sh->next;
		if (sh->retiring || strcmp(sh->rec.set_id, full) != 0)
			continue;
		n++;
		if (detach && sh->expose_dir) {
			int rc = detach_exposed(svc, sh);

			if (rc == 0) {
				(*later)++;
				continue;
			}
			/* As shadow.unexpose, then delete: a moment to let go. */
			if (sh->expose_dir && vss_fs_umount(sh->expose_dir, NULL) == 0) {
				vss_log("shadow %s unexposed from %s", sh->rec.id, sh->expose_dir);
				vss_catalog_mount_delete(svc->cat, true, sh->rec.id, NULL);
				if (sh->expose_own)
					own_dir_remove(sh->expose_dir);
				svc_shadow_unexpose(sh, false);
			}
		}
		svc_shadow_remove(svc, sh, "deleted on request (its set)");
	}
	return n;
}

int svc_op_shadow_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			 struct vss_error *err)
{
	const char *id, *set, *target;
	bool oldest, all, detach;
	int later = 0;
	struct svc_volume *vol = NULL;
	char full[37], *mount = NULL;
	json_t *kept, *warnings, *k;
	size_t i;
	int rc, modes, n = 0;

	if ((rc = svc_arg_str(args, "shadow", false, &id, err)) < 0 ||
	    (rc = svc_arg_str(args, "set", false, &set, err)) < 0 ||
	    (rc = svc_arg_str(args, "for", false, &target, err)) < 0 ||
	    (rc = svc_arg_bool(args, "oldest", &oldest, err)) < 0 ||
	    (rc = svc_arg_bool(args, "all", &all, err)) < 0 ||
	    (rc = svc_arg_bool(args, "detach", &detach, err)) < 0)
		return rc;
	modes = !!id + !!set + (target ? 1 : all);
	if (modes != 1 || (target && oldest == all))
		return vss_error_set(err, -EINVAL, "say which shadows to delete: shadow, set, "
				     "for with oldest or all, or all");
	if (detach && !set)
		return vss_error_set(err, -EINVAL, "\"detach\" is for a set's shadows (set)");
	if (target && (rc = resolve_for(svc, who, target, &vol, &mount, err)) < 0)
		return rc;
	kept = json_array();
	if (id) {
		if ((rc = resolve_prefix(svc, id, false, true, full, err)) < 0) {
			json_decref(kept);
			return rc;
		}
		if (svc_shadow_find(svc, full)) {
			svc_shadow_remove(svc, svc_shadow_find(svc, full), "deleted on request");
			n = 1;
		} else {
			n = delete_remote(svc, svc_remote_find(svc, full), "deleted on request",
					  kept);
		}
	} else if (set) {
		if ((rc = resolve_prefix(svc, set, true, true, full, err)) < 0) {
			json_decref(kept);
			return rc;
		}
		n = delete_set(svc, full, detach, &later);
		for (struct svc_remote *r = svc->remotes, *next; r; r = next) {
			next = r->next;
			if (strcmp(r->rec.set_id, full) == 0)
				n += delete_remote(svc, r, "deleted on request (its set)", kept);
		}
	} else {
		for (struct svc_shadow *sh = svc->shadows, *next; sh; sh = next) {
			next = sh->next;
			if (sh->retiring || (target && !shadow_matches(sh, vol, mount)))
				continue;
			svc_shadow_remove(svc, sh, oldest ? "deleted on request (oldest)"
							  : "deleted on request");
			n++;
			if (oldest)
				break;
		}
		/* --all: what "list shadows" shows, other hosts' members too. */
		for (struct svc_remote *r = svc->remotes, *next; r && !target; r = next) {
			next = r->next;
			n += delete_remote(svc, r, "deleted on request", kept);
		}
	}
	free(mount);
	warnings = json_array();
	json_array_foreach(kept, i, k)
		json_array_append(warnings, json_object_get(k, "why"));
	*res = json_pack("{s:i, s:i, s:o, s:o}", "deleted", n, "later", later, "kept", kept,
			 "warnings", warnings);
	return 0;
}

int svc_shadow_expose(struct vss_service *svc, struct svc_shadow *sh, int dirfd,
		      unsigned int flags, json_t **res, struct vss_error *err)
{
	char dev[PATH_MAX], loop[VSS_LOOP_NAME_MAX], what[80];
	struct vss_fs_mounted m;
	const char *fstype;
	int rc;

	if (sh->retiring)
		return vss_error_set(err, -ENOENT, "shadow %s is being deleted", sh->rec.id);
	if (sh->expose_dir)
		return vss_error_set(err, -EBUSY, "shadow %s is already exposed at %s",
				     sh->rec.id, sh->expose_dir);
	if (sh->prov->expose)
		return sh->prov->expose(svc, sh, dirfd, flags, res, err);
	sh->prov->location(svc, sh, dev, sizeof(dev));
	snprintf(what, sizeof(what), "shadow %s", sh->rec.id);
	if ((rc = svc_mount_device(svc, dev, flags | VSS_FS_SHADOW, dirfd, NULL, NULL, NULL, what,
				   loop, &fstype, &m, err)) < 0)
		return rc;
	if (!(sh->expose_dir = strdup(m.dir))) {
		vss_fs_umount_force(m.dir);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	sh->expose_id = m.id;
	snprintf(sh->expose_loop, sizeof(sh->expose_loop), "%s", loop);
	vss_log("shadow %s exposed at %s (%s on %s)", sh->rec.id, m.dir, fstype, loop);
	*res = json_pack("{s:s, s:s, s:s, s:s}", "shadow", sh->rec.id, "dir", m.dir,
			 "loop", loop, "fstype", fstype);
	return 0;
}

/*
 * The directory vssd picks when shadow.expose names none: RUN/exec/SET/ID,
 * where RUN/exec/SET is the caller's own, mode 0700.  Through it the shadow
 * is no more reachable than its live side: only the caller (who could reach
 * that) and root get in, whatever the directories above the live mount
 * allow.  It is removed with the exposure.
 */
static int own_dir_open(struct vss_service *svc, const struct svc_caller *who,
			const struct svc_shadow *sh, int *fd, char real[PATH_MAX],
			struct vss_error *err)
{
	uid_t uid = who ? who->uid : 0;
	gid_t gid = who ? who->gid : 0;
	int run = -1, exec = -1, set = -1, rc;

	*fd = -1;
	if ((rc = vss_fs_open(svc->run_dir, NULL, VSS_FS_OPEN_NOFOLLOW, &run, real, err)) < 0)
		return rc;
	if ((rc = vss_fs_private_dir(run, "exec", 0755, 0, 0, &exec)) < 0) {
		rc = vss_error_set(err, rc, "%s/exec: %s", svc->run_dir, rc == -EPERM
				   ? "not root's" : strerror(-rc));
		goto out;
	}
	if ((rc = vss_fs_private_dir(exec, sh->rec.set_id, 0700, uid, gid, &set)) < 0) {
		rc = vss_error_set(err, rc == -EPERM ? -EBUSY : rc, "%s/exec/%s: %s",
				   svc->run_dir, sh->rec.set_id, rc == -EPERM
				   ? "another user's (name a directory to expose in)"
				   : strerror(-rc));
		goto out;
	}
	if ((rc = vss_fs_private_dir(set, sh->rec.id, 0700, (uid_t)-1, 0, fd)) < 0) {
		rc = vss_error_set(err, rc, "%s/exec/%s/%s: %s", svc->run_dir, sh->rec.set_id,
				   sh->rec.id, strerror(-rc));
		goto out;
	}
	snprintf(real, PATH_MAX, "%s/exec/%s/%s", svc->run_dir, sh->rec.set_id, sh->rec.id);
	if ((rc = vss_fs_check_free(*fd, real, err)) < 0) {
		close(*fd);
		*fd = -1;
	}
out:
	if (set >= 0)
		close(set);
	if (exec >= 0)
		close(exec);
	close(run);
	return rc;
}

/* A user or operator may expose a shadow only if it can reach what the
 * shadow is of: the mount point of its volume, its subvolume. */
static int check_reach(const struct svc_caller *who, const struct svc_shadow *sh,
		       struct vss_error *err)
{
	if (!who || who->uid == 0)
		return 0;
	if (sh->vol) {
		if (!sh->vol->mount_dir)
			return vss_error_set(err, -EACCES, "permission denied: volume %s is not "
					     "mounted, so only root may expose its shadows",
					     sh->vol->rec.name);
		return svc_caller_reaches(who, sh->vol->mount_dir, sh->vol->rec.name, err);
	}
	if (!sh->origin)
		return vss_error_set(err, -EACCES, "permission denied: only root may expose "
				     "shadow %s", sh->rec.id);
	return svc_caller_reaches(who, sh->origin, "the shadow's origin", err);
}

int svc_op_shadow_expose(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			 struct vss_error *err)
{
	struct vss_catalog_mount x = { .shadow = true };
	const char *id, *dir;
	char full[37], real[PATH_MAX];
	struct svc_shadow *sh;
	bool exec;
	int rc, fd;

	if ((rc = svc_arg_str(args, "shadow", true, &id, err)) < 0 ||
	    (rc = svc_arg_str(args, "dir", false, &dir, err)) < 0 ||
	    (rc = svc_arg_bool(args, "exec", &exec, err)) < 0)
		return rc;
	if (dir && !*dir)
		return vss_error_set(err, -EINVAL, "argument \"dir\" must not be empty");
	if (exec && who && who->uid != 0)
		return vss_error_set(err, -EACCES, "permission denied: only root may expose "
				     "a shadow with its programs allowed to run (exec)");
	if ((rc = resolve_prefix(svc, id, false, false, full, err)) < 0)
		return rc;
	sh = svc_shadow_find(svc, full);
	/* vssd's own, for reading versions: the request takes its place. */
	if (sh->expose_reading)
		svc_shadow_unexpose(sh, true);
	if (sh->expose_dir)
		return vss_error_set(err, -EBUSY, "shadow %s is already exposed at %s", full,
				     sh->expose_dir);
	if ((rc = check_reach(who, sh, err)) < 0)
		return rc;
	if (dir)
		rc = svc_mountpoint_open(svc, who, dir, SVC_MOUNT_MKDIR, &fd, real, err);
	else
		rc = own_dir_open(svc, who, sh, &fd, real, err);
	if (rc < 0)
		return rc;
	rc = svc_shadow_expose(svc, sh, fd, exec ? VSS_FS_EXEC : 0, res, err);
	close(fd);
	if (rc < 0) {
		if (!dir)
			own_dir_remove(real);
		return rc;
	}
	sh->expose_own = !dir;
	/* Recorded, so that a restart exposes it again (restore.c). */
	snprintf(x.name, sizeof(x.name), "%s", sh->rec.id);
	x.dir = sh->expose_dir;
	x.options = exec ? "exec" : "";
	if ((rc = vss_catalog_mount_put(svc->cat, &x, err)) < 0) {
		svc_shadow_unexpose(sh, true);
		json_decref(*res);
		*res = NULL;
	}
	return rc;
}

int svc_shadow_expose_own(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err)
{
	char real[PATH_MAX];
	json_t *res = NULL;
	int rc, fd;

	svc_assert_locked(svc);
	if (sh->expose_dir)
		return 0;
	if ((rc = own_dir_open(svc, NULL, sh, &fd, real, err)) < 0)
		return rc;
	rc = svc_shadow_expose(svc, sh, fd, 0, &res, err);
	close(fd);
	json_decref(res);
	if (rc < 0) {
		own_dir_remove(real);
		return rc;
	}
	sh->expose_own = true;
	sh->expose_reading = true;
	return 0;
}

int svc_op_shadow_unexpose(struct vss_service *svc, const struct svc_caller *who, json_t *args, json_t **res,
			   struct vss_error *err)
{
	const char *dir;
	char real[PATH_MAX], *seen = NULL;
	struct svc_shadow *sh;
	struct vss_error e;
	int rc;

	if ((rc = svc_arg_str(args, "dir", true, &dir, err)) < 0)
		return rc;
	/* As the caller sees it; else as given (vssd looks no further). */
	if (who && who->uid != 0) {
		if (svc_caller_path(who, dir, &seen, NULL) < 0)
			seen = NULL;
		snprintf(real, sizeof(real), "%s", seen ? seen : dir);
		free(seen);
	} else if (!realpath(dir, real)) {
		snprintf(real, sizeof(real), "%s", dir);
	}
	for (sh = svc->shadows; sh; sh = sh->next)
		if (sh->expose_dir && strcmp(sh->expose_dir, real) == 0)
			break;
	if (!sh)
		return vss_error_set(err, -ENOENT, "no shadow copy is exposed at %s", dir);
	if ((rc = vss_fs_umount(sh->expose_dir, err)) < 0)
		return rc;
	vss_log("shadow %s unexposed from %s", sh->rec.id, sh->expose_dir);
	if (vss_catalog_mount_delete(svc->cat, true, sh->rec.id, &e) < 0)
		vss_log("shadow %s: %s", sh->rec.id, e.msg);
	if (sh->expose_own)
		own_dir_remove(sh->expose_dir);
	*res = json_pack("{s:s, s:s}", "shadow", sh->rec.id, "dir", real);
	svc_shadow_unexpose(sh, false);
	return 0;
}

int svc_shadow_resolve(struct vss_service *svc, const char *prefix, char out[37],
		       struct vss_error *err)
{
	return resolve_prefix(svc, prefix, false, false, out, err);
}

int svc_shadow_check_reach(const struct svc_caller *who, const struct svc_shadow *sh,
			   struct vss_error *err)
{
	return check_reach(who, sh, err);
}
