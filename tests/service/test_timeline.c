/*
 * tests/service/test_timeline.c - scheduled shadows' timing and retention
 * (service/timeline.c) on a fake clock: a year of hourly runs in Berlin
 * time (two DST changes) with vssd restarts, a reboot, a suspend and wall
 * clock jumps both ways; the survivors are checked against the retention
 * rule computed here on every run ever made, independently (own period
 * arithmetic, own selection), and each run against the interval.  Calendar
 * slots across both DST changes and jumps; the parsers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "service/timeline.h"

#define S  1000000000ll
#define MIN (60 * S)
#define HOUR (3600 * S)
#define DAY (86400 * S)
#define MAXRUNS 20000

struct sim {
	struct svc_timeline_rule r;
	struct svc_timeline_state st;
	struct svc_timeline_clock clk;
	/* Every run made, in order. */
	int64_t wall[MAXRUNS], boot[MAXRUNS];
	bool after_gap[MAXRUNS];        /* vssd was not looking just before it */
	size_t nruns;
	/* The shadows left, as indices into the runs, oldest first. */
	size_t live[MAXRUNS];
	size_t nlive;
	bool gap;
};

static void sim_init(struct sim *s, const struct svc_timeline_rule *r, int64_t wall)
{
	memset(s, 0, sizeof(*s));
	s->r = *r;
	s->clk.wall_ns = wall;
	s->clk.boot_ns = 1000 * S;
	snprintf(s->clk.boot_id, sizeof(s->clk.boot_id), "boot-1");
	svc_timeline_start(&s->st, &s->clk);
}

/* What the scheduler does when it wakes: run if due, then the retention. */
static int wake(struct sim *s)
{
	int64_t times[MAXRUNS];
	bool keep[MAXRUNS];
	size_t n = 0;

	if (svc_timeline_due_in(&s->r, &s->st, &s->clk) > 0)
		return 0;
	assert_true(s->nruns < MAXRUNS);
	s->wall[s->nruns] = s->clk.wall_ns;
	s->boot[s->nruns] = s->clk.boot_ns;
	s->after_gap[s->nruns] = s->gap;
	s->gap = false;
	s->live[s->nlive++] = s->nruns++;
	svc_timeline_ran(&s->r, &s->st, &s->clk);
	/* Never due twice in a row: missed runs are made up by one. */
	assert_true(svc_timeline_due_in(&s->r, &s->st, &s->clk) > 0);
	for (size_t i = 0; i < s->nlive; i++)
		times[i] = s->wall[s->live[i]];
	svc_timeline_retain(&s->r, times, s->nlive, keep);
	for (size_t i = 0; i < s->nlive; i++)
		if (keep[i])
			s->live[n++] = s->live[i];
	s->nlive = n;
	return 1;
}

/* vssd running for @span of boot time: it sleeps until due, a minute at most. */
static void run_for(struct sim *s, int64_t span)
{
	int64_t end = s->clk.boot_ns + span;

	while (s->clk.boot_ns < end) {
		int64_t due, step;

		wake(s);
		due = svc_timeline_due_in(&s->r, &s->st, &s->clk);
		step = due < MIN ? due : MIN;
		if (step < S)
			step = S;
		if (step > end - s->clk.boot_ns)
			step = end - s->clk.boot_ns;
		s->clk.boot_ns += step;
		s->clk.wall_ns += step;
	}
}

/* vssd not running (stopped, or the machine asleep) for @span. */
static void away(struct sim *s, int64_t span)
{
	s->clk.boot_ns += span;
	s->clk.wall_ns += span;
	s->gap = true;
}

static void reboot(struct sim *s, int64_t down, int64_t uptime)
{
	s->clk.wall_ns += down + uptime;
	s->clk.boot_ns = uptime;
	snprintf(s->clk.boot_id, sizeof(s->clk.boot_id), "boot-%zu", s->nruns + 2);
	s->gap = true;
}

/* ---- the rule, computed independently ---- */

static long long iso_week(const struct tm *tm)
{
	/* ISO 8601 by hand: the week of the Thursday of this date's week. */
	int wd = (tm->tm_wday + 6) % 7;                 /* Monday 0 */
	struct tm thu = *tm;
	time_t t;

	thu.tm_mday += 3 - wd;
	thu.tm_hour = 12;
	thu.tm_isdst = -1;
	t = mktime(&thu);
	localtime_r(&t, &thu);
	return (long long)(thu.tm_year + 1900) * 100 + thu.tm_yday / 7 + 1;
}

static long long period(int c, int64_t wall)
{
	time_t t = (time_t)(wall / S);
	struct tm tm;

	localtime_r(&t, &tm);
	switch (c) {
	case 0: return (long long)(tm.tm_year + 1900) * 1000000 + (tm.tm_mon + 1) * 10000 +
		       tm.tm_mday * 100 + tm.tm_hour;
	case 1: return (long long)(tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
	case 2: return iso_week(&tm);
	case 3: return (long long)(tm.tm_year + 1900) * 100 + tm.tm_mon + 1;
	default: return tm.tm_year + 1900;
	}
}

/* Every run's expected fate: the oldest run of each of the newest N
 * periods of each class, and the newest run. */
static void expected(const struct sim *s, bool *want)
{
	static long long per[MAXRUNS];

	memset(want, 0, s->nruns * sizeof(*want));
	for (int c = 0; c < SVC_KEEP_CLASSES; c++) {
		unsigned int taken = 0;

		for (size_t i = 0; i < s->nruns; i++)
			per[i] = period(c, s->wall[i]);
		/* Runs that start a period (no earlier run in it), newest first. */
		for (size_t i = s->nruns; i-- > 0 && taken < s->r.keep[c];) {
			bool starts = true;

			for (size_t j = 0; j < i && starts; j++)
				starts = per[j] != per[i];
			if (starts) {
				want[i] = true;
				taken++;
			}
		}
	}
	if (s->nruns)
		want[s->nruns - 1] = true;
}

static void check_survivors(const struct sim *s)
{
	static bool want[MAXRUNS], have[MAXRUNS];
	size_t nwant = 0;

	memset(have, 0, sizeof(have));
	for (size_t i = 0; i < s->nlive; i++)
		have[s->live[i]] = true;
	expected(s, want);
	for (size_t i = 0; i < s->nruns; i++) {
		if (want[i] != have[i]) {
			time_t t = (time_t)(s->wall[i] / S);
			char buf[64];

			strftime(buf, sizeof(buf), "%F %T %Z", localtime(&t));
			fail_msg("run %zu at %s: expected %s, found %s", i, buf,
				 want[i] ? "kept" : "deleted", have[i] ? "kept" : "deleted");
		}
		nwant += want[i];
	}
	assert_int_equal(nwant, s->nlive);
}

static int64_t local_ns(int y, int mon, int d, int h, int m)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h,
			 .tm_min = m, .tm_isdst = -1 };

	return (int64_t)mktime(&tm) * S;
}

static int berlin(void **state)
{
	(void)state;
	setenv("TZ", "Europe/Berlin", 1);
	tzset();
	return 0;
}

/* Runs that came exactly @every apart in boot time, unless vssd was away
 * (then the first one after is the one make-up run, due by then). */
static void check_intervals(const struct sim *s, int64_t every, size_t from)
{
	for (size_t i = from + 1; i < s->nruns; i++) {
		if (s->after_gap[i])
			continue;
		assert_int_equal(s->boot[i] - s->boot[i - 1], every);
	}
}

static void a_year_of_hourly_runs(void **state)
{
	static struct sim s;
	struct svc_timeline_rule r = { .every_ns = HOUR,
		.keep = { 24, 7, 4, 12, 2 } };
	size_t before;

	(void)state;
	sim_init(&s, &r, local_ns(2026, 1, 1, 0, 20));
	for (int week = 0; week < 53; week++) {
		run_for(&s, 3 * DAY);
		check_survivors(&s);
		switch (week % 6) {
		case 0:                 /* vssd stopped for 7 h: one make-up run */
			before = s.nruns;
			away(&s, 7 * HOUR);
			run_for(&s, S);
			assert_int_equal(s.nruns, before + 1);
			break;
		case 1:                 /* the wall clock jumps a day ahead */
			s.clk.wall_ns += DAY;
			before = s.nruns;
			run_for(&s, 59 * MIN);
			assert_int_equal(s.nruns, before);     /* not due: boot time rules */
			break;
		case 2:                 /* back by 40 minutes */
			s.clk.wall_ns -= 40 * MIN;
			break;
		case 3:                 /* a reboot: 2 days down, 5 minutes up */
			before = s.nruns;
			reboot(&s, 2 * DAY, 5 * MIN);
			run_for(&s, S);
			assert_int_equal(s.nruns, before + 1);
			break;
		case 4:                 /* a reboot of 10 minutes: not due yet */
			before = s.nruns;
			reboot(&s, 10 * MIN, 2 * MIN);
			run_for(&s, 20 * MIN);
			/* The last run was at most an hour before: due within 48 min. */
			assert_int_equal(s.nruns, before);
			run_for(&s, HOUR);
			assert_int_equal(s.nruns, before + 1);
			break;
		default:                /* suspended for 3 days */
			before = s.nruns;
			away(&s, 3 * DAY);
			run_for(&s, S);
			assert_int_equal(s.nruns, before + 1);
			break;
		}
		run_for(&s, 3 * DAY + 7 * HOUR);
		check_survivors(&s);
	}
	check_intervals(&s, HOUR, 0);
	/* A year and more of it: about 24 + 7 + 4 + 12 + 2, fewer where they meet. */
	assert_true(s.nruns > 7000);
	assert_true(s.nlive >= 24 && s.nlive <= 24 + 7 + 4 + 12 + 2);
}

static void runs_after_a_reboot_count_this_boot(void **state)
{
	static struct sim s;
	struct svc_timeline_rule r = { .every_ns = 6 * HOUR, .keep = { 1 } };

	(void)state;
	sim_init(&s, &r, local_ns(2026, 5, 1, 8, 0));
	run_for(&s, 6 * HOUR + S);
	assert_int_equal(s.nruns, 1);
	/* Rebooted with the wall clock set back a week: the 7 h up since the
	 * boot still count. */
	s.clk.wall_ns -= 7 * DAY;
	reboot(&s, 0, 7 * HOUR);
	run_for(&s, S);
	assert_int_equal(s.nruns, 2);
}

static void calendar_slots_across_dst(void **state)
{
	static struct sim s;
	struct svc_timeline_rule r = { .at_min = 2 * 60 + 30, .days = SVC_TIMELINE_ALL_DAYS,
		.keep = { 0, 400 } };
	size_t before;

	(void)state;
	/* 2026-03-29 has no 02:30 in Berlin, 2026-10-25 has it twice. */
	sim_init(&s, &r, local_ns(2026, 3, 20, 12, 0));
	run_for(&s, 230 * DAY);
	for (size_t i = 1; i < s.nruns; i++)
		assert_int_equal(period(1, s.wall[i]) != period(1, s.wall[i - 1]), 1);
	/* One run a day, each on its own date, from 03-21 to 11-05. */
	assert_int_equal(s.nruns, 230);
	for (size_t i = 0; i < s.nruns; i++) {
		time_t t = (time_t)(s.wall[i] / S);
		struct tm tm;

		localtime_r(&t, &tm);
		/* 02:30, or 03:30 on the day 02:30 does not exist. */
		assert_true((tm.tm_hour == 2 || (tm.tm_hour == 3 && tm.tm_mon == 2 &&
						 tm.tm_mday == 29)) && tm.tm_min == 30);
	}
	/* Clock 3 days ahead: one make-up run, not three. */
	before = s.nruns;
	s.clk.wall_ns += 3 * DAY;
	run_for(&s, 2 * MIN);
	assert_int_equal(s.nruns, before + 1);
	/* Back by 2 days: slots already done are not run again. */
	before = s.nruns;
	s.clk.wall_ns -= 2 * DAY;
	run_for(&s, 2 * DAY - HOUR);
	assert_int_equal(s.nruns, before);
	check_survivors(&s);
}

static void calendar_days_of_the_week(void **state)
{
	struct svc_timeline_rule r = { .at_min = 23 * 60, .keep = { 1 } };
	int64_t fri = local_ns(2026, 12, 4, 23, 0);     /* a Friday */
	unsigned int days;

	(void)state;
	assert_int_equal(svc_timeline_parse_days("mon-fri", &days, NULL), 0);
	r.days = days;
	/* From Friday 23:00 itself: the next is Monday. */
	assert_int_equal(svc_timeline_next_slot(&r, fri), local_ns(2026, 12, 7, 23, 0));
	assert_int_equal(svc_timeline_next_slot(&r, fri - S), fri);
	assert_int_equal(svc_timeline_parse_days("sun", &days, NULL), 0);
	r.days = days;
	assert_int_equal(svc_timeline_next_slot(&r, fri), local_ns(2026, 12, 6, 23, 0));
	r.days = 0;
	assert_int_equal(svc_timeline_next_slot(&r, fri), 0);
}

static void retention_of_nothing_and_one(void **state)
{
	struct svc_timeline_rule r = { .every_ns = HOUR, .keep = { 0, 0, 0, 0, 1 } };
	int64_t t[3] = { local_ns(2026, 1, 1, 0, 0), local_ns(2026, 1, 1, 1, 0),
			 local_ns(2026, 1, 1, 2, 0) };
	bool keep[3];

	(void)state;
	assert_int_equal(svc_timeline_retain(&r, t, 0, keep), 0);
	/* The year's first and the newest. */
	assert_int_equal(svc_timeline_retain(&r, t, 3, keep), 2);
	assert_true(keep[0] && !keep[1] && keep[2]);
}

static void parsers(void **state)
{
	unsigned int keep[SVC_KEEP_CLASSES], days;
	uint64_t ns;
	int m;

	(void)state;
	assert_int_equal(svc_timeline_parse_every("1h", 0, &ns, NULL), 0);
	assert_int_equal(ns, (uint64_t)HOUR);
	assert_int_equal(svc_timeline_parse_every("90", 0, &ns, NULL), 0);
	assert_int_equal(ns, 90ull * S);
	assert_int_equal(svc_timeline_parse_every("2w", 0, &ns, NULL), 0);
	for (const char *const *bad = (const char *const[]){ "", "h", "1x", "-1h", "59s",
			"367d", "1hh", "99999999999999999999w", NULL }; *bad; bad++)
		assert_int_equal(svc_timeline_parse_every(*bad, 0, &ns, NULL), -EINVAL);
	assert_int_equal(svc_timeline_parse_every("2s", 1000000000ull, &ns, NULL), 0);
	assert_int_equal(svc_timeline_parse_at("07:05", &m, NULL), 0);
	assert_int_equal(m, 7 * 60 + 5);
	assert_int_equal(svc_timeline_parse_at("7:05", &m, NULL), 0);
	for (const char *const *bad = (const char *const[]){ "24:00", "12:60", "12", "12:5",
			"-1:00", "12:00x", " 1:00", "1:2:3", NULL }; *bad; bad++)
		assert_int_equal(svc_timeline_parse_at(*bad, &m, NULL), -EINVAL);
	assert_int_equal(svc_timeline_parse_days("mon,wed-fri", &days, NULL), 0);
	assert_int_equal(days, 0x3au);
	assert_int_equal(svc_timeline_parse_days("fri-mon", &days, NULL), 0);
	assert_int_equal(days, 0x63u);
	for (const char *const *bad = (const char *const[]){ "", "monday", "mon,", ",mon",
			"mon-", "xyz", NULL }; *bad; bad++)
		assert_int_equal(svc_timeline_parse_days(*bad, &days, NULL), -EINVAL);
	assert_int_equal(svc_timeline_parse_keep("hourly=24,yearly=2", keep, NULL), 0);
	assert_true(keep[0] == 24 && keep[1] == 0 && keep[4] == 2);
	for (const char *const *bad = (const char *const[]){ "", "hourly", "hourly=",
			"hourly=1,hourly=2", "daily=-1", "weekly=5000", "minutely=3",
			"daily=1,", "daily=1x", NULL }; *bad; bad++)
		assert_int_equal(svc_timeline_parse_keep(*bad, keep, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_year_of_hourly_runs),
		cmocka_unit_test(runs_after_a_reboot_count_this_boot),
		cmocka_unit_test(calendar_slots_across_dst),
		cmocka_unit_test(calendar_days_of_the_week),
		cmocka_unit_test(retention_of_nothing_and_one),
		cmocka_unit_test(parsers),
	};

	return cmocka_run_group_tests(tests, berlin, NULL);
}
