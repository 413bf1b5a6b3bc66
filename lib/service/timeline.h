/*
 * service/timeline.h - the pure logic of scheduled shadows (timeline.c):
 * when a schedule is due, and which of the shadows it made its retention
 * keeps.  No clock is read and nothing is stored here: the scheduler
 * (schedule.c) passes the time in and keeps the state in the catalog, and
 * tests/service/test_timeline.c drives a fake clock through a year.
 *
 * Time: intervals (--every) are measured on CLOCK_BOOTTIME, which neither
 * wall-clock changes nor DST move and which counts suspend; across a
 * reboot (another boot ID) the time elapsed is the larger of the wall
 * clock's difference and the time since this boot.  Calendar slots (--at)
 * are wall time in local time: each chosen day has exactly one slot, at
 * HH:MM as mktime() reads it (a time in a spring-forward gap is moved on
 * by the gap, a time that occurs twice in the autumn is taken once).
 * Missed runs, however many, are made up by one run.
 */
#ifndef VSS_SERVICE_TIMELINE_H
#define VSS_SERVICE_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vss/error.h>

enum svc_keep_class {
	SVC_KEEP_HOURLY, SVC_KEEP_DAILY, SVC_KEEP_WEEKLY, SVC_KEEP_MONTHLY, SVC_KEEP_YEARLY,
	SVC_KEEP_CLASSES
};

#define SVC_TIMELINE_EVERY_MIN_NS (60ull * 1000000000ull)          /* a minute */
#define SVC_TIMELINE_EVERY_MAX_NS (366ull * 86400ull * 1000000000ull)
#define SVC_TIMELINE_KEEP_MAX     4096u                            /* shadows of a volume */
#define SVC_TIMELINE_ALL_DAYS     0x7fu

/* When a schedule runs and what it keeps. */
struct svc_timeline_rule {
	uint64_t every_ns;                      /* > 0: every so long; 0: calendar */
	int at_min;                             /* calendar: minute of the day, local (0-1439) */
	unsigned int days;                      /* calendar: bit d = weekday d (0 Sunday) */
	unsigned int keep[SVC_KEEP_CLASSES];    /* newest periods kept, per class */
};

/* One reading of the clocks. */
struct svc_timeline_clock {
	int64_t wall_ns;                        /* CLOCK_REALTIME */
	int64_t boot_ns;                        /* CLOCK_BOOTTIME */
	char boot_id[37];                       /* /proc/sys/kernel/random/boot_id */
};

/* What a schedule remembers (in the catalog): the clocks at its last run,
 * or at its creation before it ran, and the calendar slot last run for. */
struct svc_timeline_state {
	int64_t wall_ns;
	int64_t boot_ns;
	char boot_id[37];
	int64_t slot_ns;                        /* calendar: wall time of the slot, 0 none */
};

/* The state of a schedule made at @now. */
void svc_timeline_start(struct svc_timeline_state *st, const struct svc_timeline_clock *now);
/* How long until the schedule is due, in ns (<= 0: due now).  Interval:
 * boot time (wall time only across a reboot); calendar: wall time to the
 * next slot, so the caller should look again within a minute or so. */
int64_t svc_timeline_due_in(const struct svc_timeline_rule *r, const struct svc_timeline_state *st,
			    const struct svc_timeline_clock *now);
/* Records a run at @now: the next interval counts from here, and every
 * calendar slot up to @now is done (missed ones are made up by this one). */
void svc_timeline_ran(const struct svc_timeline_rule *r, struct svc_timeline_state *st,
		      const struct svc_timeline_clock *now);
/* The first calendar slot of @r strictly after @after_ns (wall), in local
 * time; 0 if @r has no days. */
int64_t svc_timeline_next_slot(const struct svc_timeline_rule *r, int64_t after_ns);

/*
 * Retention, as snapper's timeline cleanup: per class (hour, day, ISO
 * week, month, year of the local time), a period's first shadow (the
 * oldest, in the order made) is kept if its period is one of the newest
 * keep[class] periods that have one; the newest shadow is always kept (it
 * was just taken).  @wall_ns: the runs' times in the order they were made
 * (oldest first); sets @keep[i] for each; returns how many are kept.
 */
size_t svc_timeline_retain(const struct svc_timeline_rule *r, const int64_t *wall_ns, size_t n,
			   bool *keep);

/* Parsers for the request's strings: "90s", "15m", "1h", "2d", "1w" or
 * seconds, from @min_ns (0: SVC_TIMELINE_EVERY_MIN_NS) to 366 days;
 * "HH:MM"; "mon,wed-fri" ("daily", "weekdays", "weekends" too);
 * "hourly=N,daily=N,weekly=N,monthly=N,yearly=N" (any of them). */
int svc_timeline_parse_every(const char *s, uint64_t min_ns, uint64_t *ns,
			     struct vss_error *err);
int svc_timeline_parse_at(const char *s, int *minute, struct vss_error *err);
int svc_timeline_parse_days(const char *s, unsigned int *days, struct vss_error *err);
int svc_timeline_parse_keep(const char *s, unsigned int keep[SVC_KEEP_CLASSES],
			    struct vss_error *err);
/* "mon,tue" for @days; @buf of at least 32 bytes. */
const char *svc_timeline_days_str(unsigned int days, char *buf);
extern const char *const svc_keep_class_names[SVC_KEEP_CLASSES];

#endif
