/*
 * service/schedule.h - scheduled shadows (schedule.c): schedules kept in
 * the catalog, run by vssd itself on one thread (one timer for all of
 * them, no process per schedule), each run a set taken as a bare
 * shadow.create would (writers taking part unless no_writers), followed
 * by the schedule's retention, which deletes only shadows that schedule
 * made.  When and what is kept is timeline.h; the wire doc/protocol.md.
 */
#ifndef VSS_SERVICE_SCHEDULE_H
#define VSS_SERVICE_SCHEDULE_H

#include <jansson.h>

#include <vss/error.h>

struct svc_caller;
struct vss_service;

/* Starts the scheduler's thread; stops it (waiting for a run in progress);
 * frees it, once no request can reach it (after the server stopped). */
int svc_schedules_start(struct vss_service *svc, struct vss_error *err);
void svc_schedules_stop(struct vss_service *svc);
void svc_schedules_free(struct vss_service *svc);

/* schedule.add (root): targets, every | at [+ on], keep, persistent,
 * no_writers; refused without a retention (it would only grow). */
int svc_op_schedule_add(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err);
int svc_op_schedule_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err);
/* schedule.delete (root): its shadows stay, no longer its. */
int svc_op_schedule_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err);
/* schedule.run (operator): runs it now, as the timer would; takes its own
 * locks (the set waits for the backup slot). */
int svc_op_schedule_run(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err);

#endif
