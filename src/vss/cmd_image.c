/*
 * vss/cmd_image.c - vss backup create --image: one set of the volumes taken
 * through the requester API, each shadow's device read into an image backup
 * (vss/backup.h, vss_repo_backup_image), with vssd's changed-block tracking
 * as the tracker: shadow.diff says what changed since the base, a bookmark
 * keeps the tracking point after the set is deleted.
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

#include "client/client_json.h"
#include "cli.h"

#define MAX_VOLUMES 64

static const char *const type_names[] = { "", "full", "incremental", "differential", "log",
					  "copy" };

/* The tracker of one shadow: vssd, on connections of its own. */
struct tracking {
	const struct cli_args *a;
	const char *shadow;             /* the one being read */
};

/* Calls @op quietly: its failure is the caller's to report. */
static int call(const struct cli_args *a, const char *op, json_t *args, json_t **res,
		struct vss_error *err)
{
	struct vss_client *c;
	int rc;

	*res = NULL;
	rc = vss_client_open(vss_client_run_dir(a->run_dir), &c, err);
	if (rc < 0) {
		json_decref(args);
		return rc;
	}
	rc = vss_client_call_json(c, op, args, res, err);
	vss_client_close(c);
	return rc;
}

static int tr_changed(void *arg, const char *since, struct vss_backup_extent **out,
		      size_t *count, struct vss_error *err)
{
	struct tracking *t = arg;
	json_t *res, *ext, *e;
	size_t i;
	int rc = call(t->a, "shadow.diff", json_pack("{s:s, s:s}", "from", since, "to", t->shadow),
		      &res, err);

	if (rc < 0)
		return rc;
	ext = json_object_get(res, "extents");
	*out = calloc(json_array_size(ext) ? json_array_size(ext) : 1, sizeof(**out));
	if (!*out) {
		json_decref(res);
		return vss_error_set(err, -ENOMEM, "out of memory");
	}
	json_array_foreach(ext, i, e) {
		(*out)[i].offset = (uint64_t)json_integer_value(json_array_get(e, 0));
		(*out)[i].length = (uint64_t)json_integer_value(json_array_get(e, 1));
	}
	*count = json_array_size(ext);
	json_decref(res);
	return 0;
}

static int tr_keep(void *arg, const char *shadow, struct vss_error *err)
{
	struct tracking *t = arg;
	json_t *res;
	int rc = call(t->a, "bookmark.create", json_pack("{s:s}", "shadow", shadow), &res, err);

	json_decref(res);
	/* A shadow whose provider keeps no bookmarks (RBD, for now): nothing
	 * to keep; the next incremental reads everything and says why. */
	return rc == -EEXIST || rc == -EOPNOTSUPP ? 0 : rc;
}

static void tr_drop(void *arg, const char *shadow)
{
	struct tracking *t = arg;
	struct vss_error err = { 0 };
	json_t *res;

	/* Gone already (deleted by hand, the volume recreated): nothing to do. */
	call(t->a, "bookmark.delete", json_pack("{s:s}", "bookmark", shadow), &res, &err);
	json_decref(res);
}

static json_t *image_json(const struct vss_backup_info *b, const struct vss_image_info *img,
			  const char *live)
{
	return json_pack("{s:s, s:s, s:s?, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:s?, s:[s]}",
			 "id", b->id, "type", type_names[b->type], "base", b->base[0] ? b->base : NULL,
			 "instant_ns", (json_int_t)b->instant_ns, "volume", img->volume,
			 "shadow", img->shadow, "size", (json_int_t)img->size,
			 "bytes_read", (json_int_t)img->bytes_read,
			 "bytes_stored", (json_int_t)b->bytes_stored,
			 "extents", (json_int_t)img->extents,
			 "why_full", img->why_full[0] ? img->why_full : NULL, "sources", live);
}

bool cmd_image_wanted(int argc, char **argv)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--image") == 0)
			return true;
	return false;
}

int cmd_image_create(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "to", 0, true }, { "for", 0, true }, { "type", 0, true }, { "image", 0, false },
		{ "quiet", 'q', false }, { "no-writers", 0, false }, { "allow-live", 0, false },
		{ NULL, 0, false },
	};
	const char *fors[MAX_VOLUMES];
	struct vss_requester *req = NULL;
	struct vss_repo *repo = NULL;
	struct vss_error err = { 0 };
	struct timespec taken;
	struct progress pr;
	struct cli_args a;
	json_t *vols = NULL, *done = json_array();
	enum vss_backup_type bt = 0;
	int rc, n = 0, status = EXIT_FAILED;
	bool ok = false;

	if ((rc = cli_parse(&a, "backup create", argc, argv, opts, 0, 0)) ||
	    (rc = backup_type_arg(&a, "an image backup", false, &bt))) {
		json_decref(done);
		return rc;
	}
	/* A member read live is right for files (each file is read whole, at
	 * one moment), not for an image: its blocks would be read at many
	 * moments while the filesystem writes, and no bookmark would say what
	 * the next incremental must read (doc/cli.md). */
	if (cli_has(&a, "allow-live")) {
		json_decref(done);
		return cli_error(EXIT_USAGE, "backup create: --allow-live is for backups of files, "
				 "not --image: a volume's blocks read live, while its filesystem "
				 "writes, are not an image of one instant (it may not even mount), "
				 "and nothing would track what the next incremental must read");
	}
	if ((n = cli_volumes(&a, fors, MAX_VOLUMES, &vols)) < 0) {
		status = -n;
		goto out;
	}
	if (vss_repo_open(cli_get(&a, "to"), VSS_REPO_CREATE, &repo, &err) < 0) {
		cli_error(EXIT_FAILED, "%s", err.msg);
		goto out;
	}
	/* No provider forced: a volume's own takes it (vss-cow, or rbd for a
	 * volume on an RBD image); anything else is refused below. */
	if ((rc = backup_begin(&a, bt, false, NULL, &req)) ||
	    (rc = backup_take(req, fors, n, NULL, 0, NULL))) {
		status = rc;
		goto out;
	}
	clock_gettime(CLOCK_REALTIME, &taken);
	for (int k = 0; k < n; k++) {
		struct vss_requester_shadow sh;
		struct vss_image_info img;
		struct vss_backup_info info;
		struct tracking t = { .a = &a };
		struct vss_image_tracker tracker = { tr_changed, tr_keep, tr_drop, &t };
		struct vss_image_params p = { .size = sizeof(p), .type = bt };
		char live[PATH_MAX];

		if ((rc = vss_requester_shadow(req, (size_t)k, &sh)) < 0) {
			cli_error(EXIT_FAILED, "backup create: no shadow for %s", fors[k]);
			goto out;
		}
		if (!sh.volume || !sh.volume[0] || !sh.device) {
			cli_error(EXIT_FAILED, "backup create: %s is not a vss volume: an image "
				  "backup reads the device of a volume's shadow", fors[k]);
			goto out;
		}
		snprintf(live, sizeof(live), "%s/dev/volumes/%s", vss_client_run_dir(a.run_dir),
			 sh.volume);
		t.shadow = sh.id;
		p.volume = sh.volume;
		p.live = live;
		p.device = sh.device;
		p.shadow = sh.id;
		p.set_id = vss_requester_set_id(req);
		p.instant_ns = (uint64_t)taken.tv_sec * 1000000000u + (uint64_t)taken.tv_nsec;
		p.tracker = &tracker;
		backup_progress_init(&pr, &a);
		if (pr.on) {
			p.progress = backup_show_progress;
			p.progress_arg = &pr;
		}
		if (vss_repo_backup_image(repo, &p, &info, &img, &err) < 0) {
			cli_error(EXIT_FAILED, "backup create: volume %s: %s", cli_line(sh.volume),
				  err.msg);
			goto out;
		}
		json_array_append_new(done, image_json(&info, &img, live));
		if (!a.json) {
			char r[32], s[32], st[32];

			printf("Backup %s (%s%s%s): image of volume %s, %s read of %s, %s stored\n",
			       info.id, type_names[info.type], info.base[0] ? ", base " : "",
			       info.base, cli_line(img.volume), cli_bytes(img.bytes_read, r),
			       cli_bytes(img.size, s), cli_bytes(info.bytes_stored, st));
			if (img.why_full[0])
				printf("(%s: made full)\n", cli_line(img.why_full));
		}
	}
	ok = true;
	if ((rc = vss_requester_backup_complete(req, true, &err)) < 0) {
		cli_error(EXIT_FAILED, "backup create: the backups are complete, but telling the "
			  "writers failed: %s", err.msg);
		goto out;
	}
	if (a.json) {
		json_t *j = json_pack("{s:O}", "backups", done);

		cli_print_json(j);
		json_decref(j);
	}
	status = 0;
out:
	backup_end(req, ok);
	vss_repo_close(repo);
	json_decref(vols);
	json_decref(done);
	return status;
}
