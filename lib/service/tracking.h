/*
 * service/tracking.h - changed-block tracking and revert as vssd offers them
 * (tracking.c): the changed extents since a shadow or bookmark, bookmarks
 * (the engine's, include/vss/cow.h: tracking that outlives a shadow), and
 * a volume rolled back to one of its shadows.  Built-in shadows only.
 */
#ifndef VSS_SERVICE_TRACKING_H
#define VSS_SERVICE_TRACKING_H

#include <jansson.h>

#include <vss/error.h>

struct svc_caller;
struct vss_service;

int svc_op_shadow_diff(struct vss_service *svc, const struct svc_caller *who, json_t *args,
		       json_t **res, struct vss_error *err);
int svc_op_bookmark_create(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err);
int svc_op_bookmark_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err);
int svc_op_bookmark_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);
int svc_op_volume_revert(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);

#endif
