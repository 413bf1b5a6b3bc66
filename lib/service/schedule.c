/*
 * service/schedule.c - scheduled shadows (schedule.h): the catalog's
 * schedules, the one thread that runs them when timeline.c says they are
 * due, and their retention.
 *
 * One at a time: every run (the timer's and schedule.run's) holds
 * sched->run_lock, so two schedules, on one volume or not, never run at
 * once; a run's set then waits for the backup slot like any other.  A
 * run's state is recorded whether its set was taken or not (the reason
 * goes into last_error), so a failing schedule is tried at its next time,
 * not in a loop.  The thread wakes at the earliest due time and at least
 * every minute (calendar slots are wall time, which may jump), and when a
 * schedule is added or deleted.
 *
 * Retention: after each run, the sets this schedule made (shadows whose
 * catalog row names it; a set of several volumes is one entry) are passed
 * to svc_timeline_retain() oldest first, and every shadow of a set it does
 * not keep is deleted.  Shadows made by hand, by backups or by another
 * schedule are never looked at; one the shadow storage limit deleted is
 * simply not in the list any more.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "provider/provider.h"
#include "service/args.h"
#include "service/backup.h"
#include "service/caller.h"
#include "service/log.h"
#include "service/schedule.h"
#include "service/service_i.h"
#include "service/shadows.h"
#include "service/timeline.h"

#define SCHEDULES_MAX   256
#define LOOK_AGAIN_NS   (60ll * 1000000000ll)

struct svc_scheduler {
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;           /* stop, kick */
	pthread_cond_t cond;            /* on CLOCK_MONOTONIC */
	bool stop, kick;
	pthread_mutex_t run_lock;       /* held for the whole of a run */
	char boot_id[37];
	uint64_t every_min_ns;          /* the shortest --every: a minute (tests: less) */
};

/* The connection scheduled sets are taken on: vssd's own, which no
 * requester's session or hold can be (backup.c tells them apart by it). */
static char own_conn;

static struct svc_scheduler *sched_of(struct vss_service *svc)
{
	return svc->sched;
}

static void read_clock(struct svc_scheduler *s, struct svc_timeline_clock *c)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	c->wall_ns = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	c->boot_ns = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
	memcpy(c->boot_id, s->boot_id, sizeof(c->boot_id));
}

static void rule_of(const struct vss_catalog_schedule *rec, struct svc_timeline_rule *r)
{
	memset(r, 0, sizeof(*r));
	r->every_ns = rec->every_ns;
	r->at_min = rec->at_min;
	r->days = rec->days;
	for (int i = 0; i < SVC_KEEP_CLASSES; i++)
		r->keep[i] = rec->keep[i];
}

static void state_of(const struct vss_catalog_schedule *rec, struct svc_timeline_state *st)
{
	memset(st, 0, sizeof(*st));
	st->wall_ns = rec->wall_ns;
	st->boot_ns = rec->boot_ns;
	st->slot_ns = rec->slot_ns;
	memcpy(st->boot_id, rec->boot_id, sizeof(st->boot_id));
}

static void state_to(struct vss_catalog_schedule *rec, const struct svc_timeline_state *st)
{
	rec->wall_ns = st->wall_ns;
	rec->boot_ns = st->boot_ns;
	rec->slot_ns = st->slot_ns;
	memcpy(rec->boot_id, st->boot_id, sizeof(rec->boot_id));
}

/* ---- the catalog's schedules, copied ---- */

struct sched_list {
	struct vss_catalog_schedule *s;
	size_t n, cap;
};

static void rec_free(struct vss_catalog_schedule *rec)
{
	free(rec->targets);
	free(rec->last_error);
}

static void list_free(struct sched_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		rec_free(&l->s[i]);
	free(l->s);
	memset(l, 0, sizeof(*l));
}

static int collect(void *arg, const struct vss_catalog_schedule *rec)
{
	struct sched_list *l = arg;
	struct vss_catalog_schedule *grown = svc_grow(l->s, &l->cap, l->n, sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	l->s = grown;
	l->s[l->n] = *rec;
	l->s[l->n].targets = strdup(rec->targets);
	l->s[l->n].last_error = strdup(rec->last_error ? rec->last_error : "");
	if (!l->s[l->n].targets || !l->s[l->n].last_error) {
		rec_free(&l->s[l->n]);
		return -ENOMEM;
	}
	l->n++;
	return 0;
}

/* Every schedule (svc->lock held). */
static int load(struct vss_service *svc, struct sched_list *l, struct vss_error *err)
{
	int rc;

	svc_assert_locked(svc);
	memset(l, 0, sizeof(*l));
	rc = vss_catalog_schedule_each(svc->cat, collect, l, err);
	if (rc < 0) {
		list_free(l);
		return rc == -ENOMEM ? vss_error_set(err, rc, "out of memory") : rc;
	}
	return 0;
}

/* The schedule @id names (a unique prefix of 8 or more), copied into
 * @out (svc->lock held). */
static int find(struct vss_service *svc, const char *id, struct vss_catalog_schedule *out,
		struct vss_error *err)
{
	struct sched_list l;
	size_t len = strlen(id), hit = 0, hits = 0;
	int rc;

	if (len < 8 || len > 36)
		return vss_error_set(err, -EINVAL, "a schedule ID, or a unique prefix of at least "
				     "8 characters of one");
	if ((rc = load(svc, &l, err)) < 0)
		return rc;
	for (size_t i = 0; i < l.n; i++)
		if (strncmp(l.s[i].id, id, len) == 0) {
			hit = i;
			hits++;
		}
	if (hits != 1) {
		list_free(&l);
		return vss_error_set(err, hits ? -EINVAL : -ENOENT, hits ?
				     "%.36s names more than one schedule" : "no schedule %.36s", id);
	}
	*out = l.s[hit];
	l.s[hit].targets = l.s[hit].last_error = NULL;
	list_free(&l);
	return 0;
}

/* ---- retention ---- */

/* Deletes the shadows of @rec's sets its retention does not keep (svc->lock
 * held); returns how many. */
static int retain(struct vss_service *svc, const struct vss_catalog_schedule *rec)
{
	struct svc_timeline_rule rule;
	char (*sets)[37] = NULL;
	int64_t *times = NULL;
	bool *keep = NULL;
	size_t n = 0, cap = 0;
	int deleted = 0;

	svc_assert_locked(svc);
	rule_of(rec, &rule);
	/* The schedule's sets, oldest first (svc->shadows is). */
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next) {
		size_t i;

		if (strcmp(sh->rec.schedule, rec->id) != 0 || sh->owner)
			continue;
		for (i = 0; i < n && strcmp(sets[i], sh->rec.set_id) != 0; i++)
			;
		if (i < n)
			continue;
		if (n == cap) {
			size_t c2 = cap ? cap * 2 : 32;
			char (*s2)[37] = realloc(sets, c2 * sizeof(*s2));
			int64_t *t2;

			if (!s2)
				goto out;
			sets = s2;
			if (!(t2 = realloc(times, c2 * sizeof(*t2))))
				goto out;
			times = t2;
			cap = c2;
		}
		memcpy(sets[n], sh->rec.set_id, sizeof(sets[n]));
		times[n++] = (int64_t)sh->rec.created_ns;
	}
	if (!n || !(keep = calloc(n, sizeof(*keep))))
		goto out;
	svc_timeline_retain(&rule, times, n, keep);
	for (size_t i = 0; i < n; i++) {
		char why[128];

		if (keep[i])
			continue;
		snprintf(why, sizeof(why), "the retention of schedule %s", rec->id);
		for (struct svc_shadow *sh = svc->shadows, *next; sh; sh = next) {
			next = sh->next;
			if (strcmp(sh->rec.set_id, sets[i]) == 0 &&
			    strcmp(sh->rec.schedule, rec->id) == 0) {
				svc_shadow_remove(svc, sh, why);
				deleted++;
			}
		}
	}
out:
	free(sets);
	free(times);
	free(keep);
	return deleted;
}

/* ---- one run ---- */

/*
 * Runs schedule @id now: takes its set (writers unless no_writers), marks
 * its shadows as the schedule's, records the run and applies the
 * retention.  *@res (may be NULL): schedule, set, shadows, deleted.
 */
static int run_one(struct vss_service *svc, const char *id, json_t **res, struct vss_error *err)
{
	struct svc_scheduler *s = sched_of(svc);
	struct svc_caller self = { .conn = (struct conn *)(void *)&own_conn, .pid = getpid(),
				   .uid = 0, .gid = 0, .role = SVC_ROLE_ROOT };
	struct vss_catalog_schedule rec = { 0 }, now_rec = { 0 };
	struct svc_timeline_rule rule;
	struct svc_timeline_state st;
	struct svc_timeline_clock clk;
	struct vss_error e = { 0 };
	json_t *args, *out = NULL, *shadows, *one;
	size_t i;
	int rc, taken, deleted = 0;

	pthread_mutex_lock(&s->run_lock);
	svc_lock(svc);
	rc = find(svc, id, &rec, err);
	svc_unlock(svc);
	if (rc < 0)
		goto unlock;
	/* With the line that ends it ("taken" or "no set taken"), what shows
	 * that runs never overlap (tests/system/test_schedule.py). */
	vss_log("schedule %s: run begins", rec.id);
	args = json_pack("{s:o, s:b, s:b}", "targets", json_loads(rec.targets, 0, NULL),
			 "persistent", (rec.attrs & VSS_CATALOG_ATTR_PERSISTENT) != 0,
			 "no_writers", (rec.attrs & VSS_CATALOG_ATTR_NO_WRITERS) != 0);
	if (!args) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto unlock;
	}
	taken = svc_op_backup_shadow_create(svc, &self, args, &out, &e);
	json_decref(args);
	read_clock(s, &clk);
	svc_lock(svc);
	shadows = json_object_get(out, "shadows");
	/* Deleted meanwhile: its set stays, an ordinary one. */
	if (find(svc, rec.id, &now_rec, NULL) == 0) {
		json_array_foreach(shadows, i, one) {
			struct svc_shadow *sh = svc_shadow_find(svc, json_string_value(
								 json_object_get(one, "id")));
			struct vss_error ce;

			if (!sh)
				continue;
			memcpy(sh->rec.schedule, rec.id, sizeof(sh->rec.schedule));
			if (vss_catalog_shadow_put(svc->cat, &sh->rec, &ce) < 0)
				vss_log("schedule %s: shadow %s: %s", rec.id, sh->rec.id, ce.msg);
		}
		rule_of(&now_rec, &rule);
		state_of(&now_rec, &st);
		svc_timeline_ran(&rule, &st, &clk);
		state_to(&now_rec, &st);
		now_rec.last_run_ns = (uint64_t)clk.wall_ns;
		free(now_rec.last_error);
		now_rec.last_error = strdup(taken < 0 ? e.msg : "");
		if (vss_catalog_schedule_put(svc->cat, &now_rec, err) < 0)
			vss_log("schedule %s: %s", rec.id, err->msg);
		if (taken == 0)
			deleted = retain(svc, &now_rec);
		rec_free(&now_rec);
	}
	svc_unlock(svc);
	if (taken < 0) {
		vss_log("schedule %s: no set taken: %s", rec.id, e.msg);
		rc = vss_error_set(err, taken, "%s", e.msg);
	} else {
		vss_log("schedule %s: set %s taken; %d shadow%s deleted by its retention", rec.id,
			json_string_value(json_object_get(out, "set")), deleted,
			deleted == 1 ? "" : "s");
		if (res)
			*res = json_pack("{s:s, s:O, s:O, s:i, s:O}", "schedule", rec.id,
					 "set", json_object_get(out, "set"), "shadows", shadows,
					 "deleted", deleted, "warnings",
					 json_object_get(out, "warnings") ?
					 json_object_get(out, "warnings") : json_null());
	}
	json_decref(out);
unlock:
	rec_free(&rec);
	pthread_mutex_unlock(&s->run_lock);
	return rc;
}

/* ---- the thread ---- */

static void *scheduler_main(void *arg)
{
	struct vss_service *svc = arg;
	struct svc_scheduler *s = sched_of(svc);

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct svc_timeline_clock clk;
		struct sched_list l = { 0 };
		int64_t wait = LOOK_AGAIN_NS;
		struct timespec dl;
		bool ran = false;

		s->kick = false;
		pthread_mutex_unlock(&s->lock);
		svc_lock(svc);
		if (load(svc, &l, NULL) < 0)
			memset(&l, 0, sizeof(l));
		svc_unlock(svc);
		read_clock(s, &clk);
		for (size_t i = 0; i < l.n; i++) {
			struct svc_timeline_rule rule;
			struct svc_timeline_state st;
			int64_t due;

			rule_of(&l.s[i], &rule);
			state_of(&l.s[i], &st);
			due = svc_timeline_due_in(&rule, &st, &clk);
			if (due > 0) {
				if (due < wait)
					wait = due;
				continue;
			}
			pthread_mutex_lock(&s->lock);
			ran = !s->stop;
			pthread_mutex_unlock(&s->lock);
			if (!ran)
				break;
			run_one(svc, l.s[i].id, NULL, &(struct vss_error){ 0 });
		}
		list_free(&l);
		pthread_mutex_lock(&s->lock);
		/* After a run, look again at once: the clocks moved on. */
		if (ran || s->kick || s->stop)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += (time_t)(wait / 1000000000ll);
		dl.tv_nsec += (long)(wait % 1000000000ll);
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		while (!s->stop && !s->kick &&
		       pthread_cond_timedwait(&s->cond, &s->lock, &dl) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void kick(struct vss_service *svc)
{
	struct svc_scheduler *s = sched_of(svc);

	pthread_mutex_lock(&s->lock);
	s->kick = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void read_boot_id(char out[37])
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, out, 36) : -1;

	if (fd >= 0)
		close(fd);
	out[n == 36 ? 36 : 0] = '\0';
}

int svc_schedules_start(struct vss_service *svc, struct vss_error *err)
{
	struct svc_scheduler *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	const char *min = getenv("VSS_TEST_EVERY_MIN_S");
	int rc;

	if (!s)
		return vss_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->run_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	read_boot_id(s->boot_id);
	/* Tests only: intervals shorter than a minute. */
	s->every_min_ns = min && atoi(min) > 0 ? (uint64_t)atoi(min) * 1000000000ull : 0;
	svc->sched = s;
	if ((rc = pthread_create(&s->thread, NULL, scheduler_main, svc)) != 0)
		return vss_error_set(err, -rc, "cannot start a thread: %s", strerror(rc));
	s->running = true;
	return 0;
}

void svc_schedules_stop(struct vss_service *svc)
{
	struct svc_scheduler *s = sched_of(svc);

	if (!s || !s->running)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	s->running = false;
}

void svc_schedules_free(struct vss_service *svc)
{
	struct svc_scheduler *s = sched_of(svc);

	if (!s)
		return;
	svc_schedules_stop(svc);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->run_lock);
	free(s);
	svc->sched = NULL;
}

/* ---- operations ---- */

static json_t *schedule_json(struct vss_service *svc, const struct vss_catalog_schedule *rec,
			     const struct svc_timeline_clock *clk)
{
	struct svc_timeline_rule rule;
	struct svc_timeline_state st;
	json_t *keep = json_object(), *on = json_array();
	char created[40], last[40], next[40], at[32];
	int64_t due;
	int shadows = 0;

	rule_of(rec, &rule);
	state_of(rec, &st);
	for (int i = 0; i < SVC_KEEP_CLASSES; i++)
		json_object_set_new(keep, svc_keep_class_names[i], json_integer(rec->keep[i]));
	for (int i = 1; i <= 7; i++)
		if (!rec->every_ns && (rec->days & (1u << (i % 7)))) {
			char buf[32];

			svc_timeline_days_str(1u << (i % 7), buf);
			json_array_append_new(on, json_string(buf));
		}
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		shadows += strcmp(sh->rec.schedule, rec->id) == 0;
	svc_time_str(rec->created_ns, created);
	if (rec->last_run_ns)
		svc_time_str(rec->last_run_ns, last);
	due = svc_timeline_due_in(&rule, &st, clk);
	svc_time_str((uint64_t)(clk->wall_ns + (due > 0 ? due : 0)), next);
	snprintf(at, sizeof(at), "%02d:%02d", rec->at_min / 60, rec->at_min % 60);
	if (rec->every_ns) {
		json_decref(on);
		on = json_null();
	}
	return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:s, s:o, s:o, s:s, s:i}",
			 "id", rec->id, "targets", json_loads(rec->targets, 0, NULL),
			 "every_s", rec->every_ns ? json_integer((json_int_t)(rec->every_ns /
									 1000000000ull))
						  : json_null(),
			 "at", rec->every_ns ? json_null() : json_string(at),
			 "on", on,
			 "keep", keep,
			 "persistent", (rec->attrs & VSS_CATALOG_ATTR_PERSISTENT) != 0,
			 "no_writers", (rec->attrs & VSS_CATALOG_ATTR_NO_WRITERS) != 0,
			 "created", created,
			 "last_run", rec->last_run_ns ? json_string(last) : json_null(),
			 "last_error", rec->last_error && *rec->last_error
					? json_string(rec->last_error) : json_null(),
			 "next_run", next, "shadows", shadows);
}

int svc_op_schedule_add(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err)
{
	struct svc_scheduler *s = sched_of(svc);
	struct vss_catalog_schedule rec = { 0 };
	struct svc_timeline_clock clk;
	struct svc_timeline_state st;
	const char *every, *at, *on, *keep;
	json_t *targets = json_object_get(args, "targets"), *t;
	struct sched_list l;
	bool persistent, no_writers;
	unsigned int any = 0;
	uuid_t u;
	size_t i;
	int rc;

	if ((rc = svc_arg_str(args, "every", false, &every, err)) < 0 ||
	    (rc = svc_arg_str(args, "at", false, &at, err)) < 0 ||
	    (rc = svc_arg_str(args, "on", false, &on, err)) < 0 ||
	    (rc = svc_arg_str(args, "keep", false, &keep, err)) < 0 ||
	    (rc = svc_arg_bool(args, "persistent", &persistent, err)) < 0 ||
	    (rc = svc_arg_bool(args, "no_writers", &no_writers, err)) < 0)
		return rc;
	if (!json_is_array(targets) || json_array_size(targets) == 0 ||
	    json_array_size(targets) > 64)
		return vss_error_set(err, -EINVAL, "argument \"targets\" must be an array of 1 to "
				     "64 targets");
	json_array_foreach(targets, i, t)
		if (!json_is_string(t) || !*json_string_value(t) ||
		    strlen(json_string_value(t)) >= PATH_MAX)
			return vss_error_set(err, -EINVAL, "argument \"targets\" must hold "
					     "volume names or paths");
	if (!every == !at)
		return vss_error_set(err, -EINVAL, "a schedule runs either \"every\" so long or "
				     "\"at\" a time of day");
	if (on && !at)
		return vss_error_set(err, -EINVAL, "\"on\" goes with \"at\"");
	if (every && (rc = svc_timeline_parse_every(every, s->every_min_ns, &rec.every_ns,
						    err)) < 0)
		return rc;
	rec.days = SVC_TIMELINE_ALL_DAYS;
	if ((at && (rc = svc_timeline_parse_at(at, &rec.at_min, err)) < 0) ||
	    (on && (rc = svc_timeline_parse_days(on, &rec.days, err)) < 0))
		return rc;
	if (keep && (rc = svc_timeline_parse_keep(keep, rec.keep, err)) < 0)
		return rc;
	for (int c = 0; c < SVC_KEEP_CLASSES; c++)
		any |= rec.keep[c];
	if (!any)
		return vss_error_set(err, -EINVAL, "refusing a schedule with no retention: its "
				     "shadows would only grow (--keep hourly=N,daily=N,...)");
	/* Each target must be one a provider can shadow now (live: refused). */
	json_array_foreach(targets, i, t) {
		const struct vss_provider_ops *prov;
		char *path = NULL, *warning = NULL;

		if ((rc = svc_caller_path(who, json_string_value(t), &path, err)) < 0)
			return rc;
		rc = svc_provider_select(svc, path, NULL, false, &prov, &warning, err);
		free(path);
		free(warning);
		if (rc < 0)
			return rc;
	}
	if ((rc = load(svc, &l, err)) < 0)
		return rc;
	i = l.n;
	list_free(&l);
	if (i >= SCHEDULES_MAX)
		return vss_error_set(err, -ENOSPC, "vssd keeps at most %d schedules",
				     SCHEDULES_MAX);
	uuid_generate_random(u);
	uuid_unparse_lower(u, rec.id);
	rec.attrs = (persistent ? VSS_CATALOG_ATTR_PERSISTENT : 0) |
		    (no_writers ? VSS_CATALOG_ATTR_NO_WRITERS : 0);
	rec.created_ns = svc_now_ns();
	read_clock(s, &clk);
	svc_timeline_start(&st, &clk);
	state_to(&rec, &st);
	rec.targets = json_dumps(targets, JSON_COMPACT);
	rec.last_error = NULL;
	if (!rec.targets)
		return vss_error_set(err, -ENOMEM, "out of memory");
	rc = vss_catalog_schedule_put(svc->cat, &rec, err);
	if (rc == 0) {
		vss_log("schedule %s added (uid %u)", rec.id, (unsigned int)who->uid);
		*res = schedule_json(svc, &rec, &clk);
		kick(svc);
	}
	free(rec.targets);
	return rc;
}

int svc_op_schedule_list(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			 json_t **res, struct vss_error *err)
{
	struct svc_timeline_clock clk;
	struct sched_list l;
	json_t *arr = json_array();
	int rc;

	if ((rc = load(svc, &l, err)) < 0) {
		json_decref(arr);
		return rc;
	}
	read_clock(sched_of(svc), &clk);
	for (size_t i = 0; i < l.n; i++)
		json_array_append_new(arr, schedule_json(svc, &l.s[i], &clk));
	list_free(&l);
	*res = json_pack("{s:o}", "schedules", arr);
	return 0;
}

int svc_op_schedule_delete(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err)
{
	struct vss_catalog_schedule rec;
	const char *id;
	int rc;

	if ((rc = svc_arg_str(args, "schedule", true, &id, err)) < 0 ||
	    (rc = find(svc, id, &rec, err)) < 0)
		return rc;
	rc = vss_catalog_schedule_delete(svc->cat, rec.id, err);
	if (rc == 0) {
		/* Its shadows are ordinary ones from now on. */
		for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
			if (strcmp(sh->rec.schedule, rec.id) == 0)
				sh->rec.schedule[0] = '\0';
		vss_log("schedule %s deleted (uid %u)", rec.id, (unsigned int)who->uid);
		*res = json_pack("{s:s}", "deleted", rec.id);
		kick(svc);
	}
	rec_free(&rec);
	return rc;
}

int svc_op_schedule_run(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			json_t **res, struct vss_error *err)
{
	const char *id;
	int rc;

	if ((rc = svc_arg_str(args, "schedule", true, &id, err)) < 0)
		return rc;
	vss_log("schedule %.36s: run now (uid %u)", id, (unsigned int)who->uid);
	return run_one(svc, id, res, err);
}
