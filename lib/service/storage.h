/*
 * service/storage.h - shadow storage (storage.c): where each volume's diff
 * area lives and how large it may grow, and what happens when one is lost,
 * damaged or replaced (doc/service.md, "When a diff area is lost").
 */
#ifndef VSS_SERVICE_STORAGE_H
#define VSS_SERVICE_STORAGE_H

#include <limits.h>
#include <stdbool.h>

#include <jansson.h>

#include <vss/error.h>

struct svc_caller;
struct svc_volume;
struct vss_service;

/* The marks that record a failure of the diff area at @diff besides
 * DIFF.failed (engine design note 9): STATE/failed/BASE and RUN/failed/BASE. */
void svc_diff_marks(struct vss_service *svc, const char *diff, char marks[2][PATH_MAX]);
/* Removes what records a failure of the diff area @diff (DIFF.failed and
 * its marks), and the file itself if @file. */
void svc_diff_unlink(struct vss_service *svc, const char *diff, bool file);
/* "tmpfs" or "ramfs" if @path (or the directory it would be in) is on
 * one, where nothing survives a restart of the machine; else NULL. */
const char *svc_volatile_fs(const char *path);
/*
 * The diff area of @v (origin open, engine not) could not be opened:
 * @rc, @why.  Copies one that is only unusable where it is to the state
 * directory and goes on there; else keeps a damaged one aside (renamed),
 * makes a fresh one and records the persistent shadows the catalog knew
 * in it as invalid.  Sets v->cow, rec.diff_path and rec.note; 0 or -errno
 * (then the volume cannot be served).
 */
int svc_diff_recover(struct vss_service *svc, struct svc_volume *v, int rc, const char *why,
		     struct vss_error *err);
/* Notices diff areas whose path no longer leads to the file the engine
 * has open (deleted, replaced): detaches them (engine design note 9), and
 * gives a detached volume a fresh diff area once it has no shadows.  Called
 * before every operation and by the housekeeper, with svc->lock held. */
void svc_check_diff_areas(struct vss_service *svc);
/* Logs a warning when @v's diff area is on a tmpfs or ramfs, and returns
 * it as an array of lines for a reply (empty if none). */
json_t *svc_volatile_warning(struct svc_volume *v);
int svc_op_storage_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err);
int svc_op_storage_add(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		       json_t **res, struct vss_error *err);
int svc_op_storage_resize(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			  json_t **res, struct vss_error *err);
int svc_op_storage_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			  json_t **res, struct vss_error *err);

#endif
