/*
 * service/tracking.c - changed-block tracking and revert (tracking.h): the
 * operations shadow.diff, bookmark.create, bookmark.delete, bookmark.list
 * and volume.revert over the engine's vss_cow_changed_extents(), bookmarks
 * and vss_cow_revert() (include/vss/cow.h; design notes 10 and 11 in
 * lib/engine).  A shadow or bookmark is named by its ID or a prefix of at
 * least 8 characters, as everywhere; a bookmark is named by the shadow it
 * was made from, which may be deleted since.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "provider/provider.h"
#include "service/args.h"
#include "service/caller.h"
#include "service/log.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/tracking.h"
#include "service/volumes.h"

/* What an ID or prefix names: a built-in shadow and/or a volume's bookmark. */
struct named {
	char id[37];
	struct svc_volume *vol;
	struct svc_shadow *sh;          /* the live shadow, or NULL */
	bool bookmark;                  /* the volume has a bookmark of that ID */
	struct vss_cow_bookmark_info bm;
};

/* One candidate ID: the first, the same again, or another (ambiguous). */
static int candidate(struct named *out, const char *id, const char *prefix,
		     struct vss_error *err)
{
	if (out->id[0] && strcmp(out->id, id) != 0)
		return vss_error_set(err, -EINVAL, "ID prefix %s is ambiguous", prefix);
	memcpy(out->id, id, 37);
	return 0;
}

/*
 * Resolves @prefix among the shadows and, unless @shadows_only, the
 * bookmarks of every volume served.  A shadow another provider made is
 * refused: only the built-in one tracks changed blocks.
 */
static int resolve(struct vss_service *svc, const char *prefix, bool shadows_only,
		   struct named *out, struct vss_error *err)
{
	size_t n = strlen(prefix);
	int rc;

	memset(out, 0, sizeof(*out));
	if (n < 8 || n > 36)
		return vss_error_set(err, -EINVAL, "\"%s\" is not a shadow copy ID or a prefix "
				     "of at least 8 characters", prefix);
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next) {
		if (strncasecmp(sh->rec.id, prefix, n) != 0)
			continue;
		if ((rc = candidate(out, sh->rec.id, prefix, err)) < 0)
			return rc;
		out->sh = sh;
		out->vol = sh->vol;
	}
	for (struct svc_volume *v = svc->volumes; !shadows_only && v; v = v->next) {
		struct vss_cow_bookmark_info *info;
		size_t count;

		if (!v->cow || vss_cow_bookmark_list(v->cow, &info, &count) < 0)
			continue;
		for (size_t i = 0; i < count; i++) {
			char id[37];

			svc_id_str(info[i].id, id);
			if (strncasecmp(id, prefix, n) != 0)
				continue;
			if ((rc = candidate(out, id, prefix, err)) < 0) {
				free(info);
				return rc;
			}
			out->vol = v;
			out->bookmark = true;
			out->bm = info[i];
		}
		free(info);
	}
	if (!out->id[0])
		return vss_error_set(err, -ENOENT, "no shadow copy%s %s",
				     shadows_only ? "" : " or bookmark", prefix);
	if (!out->vol)
		return vss_error_set(err, -EOPNOTSUPP, "shadow copy %s was made by the %s "
				     "provider: only vss-cow shadows track changed blocks", out->id,
				     out->sh->prov->name);
	if (!out->vol->cow)
		return vss_error_set(err, -EIO, "volume %s is not served: %s", out->vol->rec.name,
				     out->vol->offline_why ? out->vol->offline_why : "offline");
	return 0;
}

/* shadow.diff's extents, freed: [[offset, length], ...]; their sum in *@total. */
static json_t *extents_json(struct vss_cow_extent *ext, size_t n, uint64_t *total)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++) {
		json_array_append_new(arr, json_pack("[I, I]", (json_int_t)ext[i].offset,
						     (json_int_t)ext[i].length));
		*total += ext[i].length;
	}
	free(ext);
	return arr;
}

/* The live shadow a prefix of at least 8 characters names, if exactly one
 * does and its provider tells changed blocks itself (provider.h, changed). */
static struct svc_shadow *provider_shadow(struct vss_service *svc, const char *prefix)
{
	size_t n = strlen(prefix);
	struct svc_shadow *found = NULL;

	if (n < 8 || n > 36)
		return NULL;
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		if (strncasecmp(sh->rec.id, prefix, n) == 0) {
			if (found)
				return NULL;
			found = sh;
		}
	return found && found->prov->changed ? found : NULL;
}

/* shadow.diff from @from (a full ID: @sh, a live shadow of @prov, or one of
 * its bookmarks) by a provider that tells changed blocks itself; -ENOENT
 * if @from is not @prov's. */
static int provider_diff(struct vss_service *svc, const struct vss_provider_ops *prov,
			 const char *from, const struct svc_shadow *sh, const char *b,
			 json_t **res, struct vss_error *err)
{
	struct svc_shadow *to = NULL;
	struct vss_cow_extent *ext;
	uint64_t size = 0, unit = 0, total = 0;
	json_t *arr;
	size_t n;
	int rc;

	if (b && strcmp(b, "now") != 0 &&
	    (!(to = provider_shadow(svc, b)) || to->prov != prov)) {
		if (!sh)
			return -ENOENT;     /* a bookmark of @prov's is diffed to @prov's shadows */
		return vss_error_set(err, -EINVAL, "\"%s\" is not a shadow copy of the %s "
				     "provider, as %s is", b, prov->name, from);
	}
	if ((rc = prov->changed(svc, from, to, &ext, &n, &size, &unit, err)) < 0)
		return rc;
	arr = extents_json(ext, n, &total);
	*res = json_pack("{s:s, s:s?, s:s, s:I, s:I, s:b, s:I, s:o}", "from", from,
			 "to", to ? to->rec.id : NULL,
			 "volume", to ? to->rec.volume : sh ? sh->rec.volume : "",
			 "size", (json_int_t)size, "block_size", (json_int_t)unit,
			 "bookmark", sh == NULL, "changed_bytes", (json_int_t)total, "extents", arr);
	return *res ? 0 : vss_error_set(err, -ENOMEM, "out of memory");
}

/* A provider's bookmark of the full ID @id, for shadow.diff: that
 * provider, or NULL. */
static const struct vss_provider_ops *bookmark_provider(struct vss_service *svc, const char *id,
							const char *b, json_t **res, int *rc,
							struct vss_error *err)
{
	if (strlen(id) != 36)
		return NULL;
	for (size_t i = 0; svc->providers[i]; i++) {
		const struct vss_provider_ops *p = svc->providers[i];

		if (!p->changed || !p->keep)
			continue;
		*rc = provider_diff(svc, p, id, NULL, b, res, err);
		if (*rc != -ENOENT)
			return p;
	}
	return NULL;
}

int svc_op_shadow_diff(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		       json_t **res, struct vss_error *err)
{
	struct vss_cow_extent *ext = NULL;
	struct named from, to = { .id = "" };
	const char *a, *b;
	vss_cow_id fid, tid;
	uint64_t total = 0;
	json_t *arr;
	size_t n = 0;
	int rc;

	if ((rc = svc_arg_str(args, "from", true, &a, err)) < 0 ||
	    (rc = svc_arg_str(args, "to", false, &b, err)) < 0)
		return rc;
	if (provider_shadow(svc, a)) {
		struct svc_shadow *sh = provider_shadow(svc, a);

		return provider_diff(svc, sh->prov, sh->rec.id, sh, b, res, err);
	}
	if (bookmark_provider(svc, a, b, res, &rc, err))
		return rc;
	if ((rc = resolve(svc, a, false, &from, err)) < 0)
		return rc;
	if (b && strcmp(b, "now") != 0) {
		if ((rc = resolve(svc, b, true, &to, err)) < 0)
			return rc;
		if (to.vol != from.vol)
			return vss_error_set(err, -EINVAL, "shadow copies %s and %s are of "
					     "different volumes", from.id, to.id);
	}
	svc_id_parse(from.id, fid);
	if (to.id[0])
		svc_id_parse(to.id, tid);
	rc = vss_cow_changed_extents(from.vol->cow, fid, to.id[0] ? tid : NULL, &ext, &n, err);
	if (rc < 0) {
		char why[sizeof(err->msg)];

		memcpy(why, err->msg, sizeof(why));
		return vss_error_set(err, rc, "shadow copy %s: %s", from.id, why);
	}
	arr = extents_json(ext, n, &total);
	*res = json_pack("{s:s, s:s?, s:s, s:I, s:I, s:b, s:I, s:o}", "from", from.id,
			 "to", to.id[0] ? to.id : NULL, "volume", from.vol->rec.name,
			 "size", (json_int_t)vss_cow_size(from.vol->cow),
			 "block_size", (json_int_t)vss_cow_block_size(from.vol->cow),
			 "bookmark", from.bookmark, "changed_bytes", (json_int_t)total,
			 "extents", arr);
	return *res ? 0 : vss_error_set(err, -ENOMEM, "out of memory");
}

int svc_op_bookmark_create(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err)
{
	struct named s;
	const char *a;
	vss_cow_id id;
	int rc;

	if ((rc = svc_arg_str(args, "shadow", true, &a, err)) < 0)
		return rc;
	if (provider_shadow(svc, a) && provider_shadow(svc, a)->prov->keep) {
		struct svc_shadow *sh = provider_shadow(svc, a);

		if ((rc = sh->prov->keep(svc, sh, err)) < 0)
			return rc;
		vss_log("bookmark %s of volume %s made: its snapshot is kept after the shadow",
			sh->rec.id, sh->rec.volume);
		*res = json_pack("{s:s, s:s}", "bookmark", sh->rec.id, "volume", sh->rec.volume);
		return 0;
	}
	if ((rc = resolve(svc, a, true, &s, err)) < 0)
		return rc;
	/* A shadow of a held set is one already: a requester keeps tracking
	 * from the shadow it is reading, before its backup completes. */
	svc_id_parse(s.id, id);
	if ((rc = vss_cow_bookmark_create(s.vol->cow, id, err)) < 0)
		return rc;
	vss_log("bookmark %s of volume %s made: its changed blocks are kept after the shadow",
		s.id, s.vol->rec.name);
	*res = json_pack("{s:s, s:s}", "bookmark", s.id, "volume", s.vol->rec.name);
	return 0;
}

int svc_op_bookmark_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err)
{
	struct named b;
	const char *a;
	vss_cow_id id;
	int rc;

	if ((rc = svc_arg_str(args, "bookmark", true, &a, err)) < 0)
		return rc;
	for (size_t i = 0; strlen(a) == 36 && svc->providers[i]; i++)
		if (svc->providers[i]->forget &&
		    (rc = svc->providers[i]->forget(svc, a, err)) != -ENOENT) {
			if (rc == 0) {
				vss_log("bookmark %s deleted", a);
				*res = json_pack("{s:s}", "deleted", a);
			}
			return rc;
		}
	if ((rc = resolve(svc, a, false, &b, err)) < 0)
		return rc;
	if (!b.bookmark)
		return vss_error_set(err, -ENOENT, "shadow copy %s has no bookmark", b.id);
	svc_id_parse(b.id, id);
	if ((rc = vss_cow_bookmark_delete(b.vol->cow, id, err)) < 0)
		return rc;
	vss_log("bookmark %s of volume %s deleted", b.id, b.vol->rec.name);
	*res = json_pack("{s:s, s:s}", "deleted", b.id, "volume", b.vol->rec.name);
	return 0;
}

int svc_op_bookmark_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err)
{
	struct svc_volume *only = NULL;
	const char *target;
	json_t *arr = json_array();
	int rc;

	if ((rc = svc_arg_str(args, "for", false, &target, err)) < 0)
		goto fail;
	if (target) {
		char *seen;

		if ((rc = svc_caller_path(who, target, &seen, err)) < 0)
			goto fail;
		rc = svc_resolve_target(svc, seen, &only, err);
		free(seen);
		if (rc < 0)
			goto fail;
	}
	for (struct svc_volume *v = svc->volumes; v; v = v->next) {
		struct vss_cow_bookmark_info *info;
		size_t count;

		if ((only && v != only) || !v->cow || vss_cow_bookmark_list(v->cow, &info, &count) < 0)
			continue;
		for (size_t i = 0; i < count; i++) {
			char id[37], created[40];
			bool lost = info[i].state == VSS_COW_BOOKMARK_LOST;

			svc_id_str(info[i].id, id);
			svc_time_str(info[i].created_ns, created);
			json_array_append_new(arr, json_pack(
				"{s:s, s:s, s:s, s:I, s:s, s:s?, s:b, s:I}", "id", id,
				"volume", v->rec.name, "created", created,
				"created_ns", (json_int_t)info[i].created_ns,
				"state", lost ? "lost" : "tracking", "why", lost ? info[i].why : NULL,
				"shadow", info[i].shadow_exists,
				"marked_bytes", (json_int_t)(info[i].marked_blocks *
							     vss_cow_block_size(v->cow))));
		}
		free(info);
	}
	*res = json_pack("{s:o}", "bookmarks", arr);
	return 0;
fail:
	json_decref(arr);
	return rc;
}

int svc_op_volume_revert(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err)
{
	struct svc_shadow *newer[VSS_COW_MAX_SHADOWS];
	struct vss_cow_shadow_info *infos = NULL;
	uint64_t rewritten = 0;
	size_t nnewer = 0, k = 0;
	struct svc_volume *v;
	struct named s;
	const char *a;
	vss_cow_id id;
	char why[160];
	int rc;

	if ((rc = svc_arg_str(args, "shadow", true, &a, err)) < 0 ||
	    (rc = resolve(svc, a, true, &s, err)) < 0)
		return rc;
	v = s.vol;
	if (v->mount_dir)
		return vss_error_set(err, -EBUSY, "volume %s is mounted at %s: unmount it first "
				     "(vss volume umount %s)", v->rec.name, v->mount_dir,
				     v->rec.name);
	/* A loop device lets go of the device a moment after its unmount. */
	if (!svc_volume_wait_closed(svc, v))
		return vss_error_set(err, -EBUSY, "the device of volume %s is open: close it "
				     "first", v->rec.name);
	if (s.sh->owner)
		return vss_error_set(err, -EBUSY, "shadow copy %s is in a set still being taken",
				     s.id);
	/* The newer shadows go (the engine's list is in creation order, and
	 * so is the service's for one volume). */
	for (struct svc_shadow *sh = s.sh->next; sh; sh = sh->next) {
		if (sh->vol != v)
			continue;
		if (sh->owner)
			return vss_error_set(err, -EBUSY, "shadow copy %s, newer than %s, is in a "
					     "set still being taken", sh->rec.id, s.id);
		newer[nnewer++] = sh;
	}
	snprintf(why, sizeof(why), "volume %s reverted to shadow copy %s", v->rec.name, s.id);
	for (size_t i = nnewer; i-- > 0;)
		svc_shadow_remove(svc, newer[i], why);
	svc_id_parse(s.id, id);
	/* What the revert writes back: the shadow's own blocks, every block
	 * written since its instant now that the newer ones handed theirs
	 * down (design note 11), so its time is proportional to this. */
	if (vss_cow_shadow_list(v->cow, &infos, &k) == 0)
		for (size_t i = 0; i < k; i++)
			if (memcmp(infos[i].id, id, sizeof(vss_cow_id)) == 0)
				rewritten = infos[i].diff_bytes;
	free(infos);
	/* Whatever opens the device meanwhile waits (its I/O takes the gate). */
	pthread_rwlock_wrlock(&v->gate);
	rc = vss_cow_revert(v->cow, id, err);
	pthread_rwlock_unlock(&v->gate);
	if (rc < 0) {
		vss_log("volume %s: revert to shadow copy %s failed: %s", v->rec.name, s.id,
			err->msg);
		return rc;
	}
	vss_log("%s (%llu bytes written back, %zu newer deleted)", why,
		(unsigned long long)rewritten, nnewer);
	*res = json_pack("{s:s, s:s, s:I, s:I}", "volume", v->rec.name, "shadow", s.id,
			 "deleted", (json_int_t)nnewer, "rewritten", (json_int_t)rewritten);
	return 0;
}
