/*
 * service/timeline.c - when a schedule is due and what its retention keeps
 * (timeline.h): pure functions of the times they are given.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "service/timeline.h"

#define NS 1000000000ll

const char *const svc_keep_class_names[SVC_KEEP_CLASSES] = {
	"hourly", "daily", "weekly", "monthly", "yearly",
};

static const char *const day_names[7] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

void svc_timeline_start(struct svc_timeline_state *st, const struct svc_timeline_clock *now)
{
	memset(st, 0, sizeof(*st));
	st->wall_ns = now->wall_ns;
	st->boot_ns = now->boot_ns;
	memcpy(st->boot_id, now->boot_id, sizeof(st->boot_id));
	st->boot_id[sizeof(st->boot_id) - 1] = '\0';
}

/* Whole seconds at or below @ns (times before 1970 too). */
static time_t floor_s(int64_t ns)
{
	return (time_t)(ns >= 0 ? ns / NS : -((-ns + NS - 1) / NS));
}

int64_t svc_timeline_next_slot(const struct svc_timeline_rule *r, int64_t after_ns)
{
	time_t t = floor_s(after_ns);
	struct tm from;

	if (!(r->days & SVC_TIMELINE_ALL_DAYS) || !localtime_r(&t, &from))
		return 0;
	/* Day by day from the date of @after_ns: at most a week and a day. */
	for (int i = 0; i <= 8; i++) {
		struct tm d = { .tm_year = from.tm_year, .tm_mon = from.tm_mon,
				.tm_mday = from.tm_mday + i, .tm_hour = 12, .tm_isdst = -1 };
		struct tm s;
		time_t slot;

		/* Noon is never in a DST gap: the date and weekday, normalised. */
		if (mktime(&d) == (time_t)-1 || !(r->days & (1u << d.tm_wday)))
			continue;
		s = (struct tm){ .tm_year = d.tm_year, .tm_mon = d.tm_mon, .tm_mday = d.tm_mday,
				 .tm_hour = r->at_min / 60, .tm_min = r->at_min % 60,
				 .tm_isdst = -1 };
		slot = mktime(&s);
		if (slot == (time_t)-1)
			continue;
		if ((int64_t)slot * NS > after_ns)
			return (int64_t)slot * NS;
	}
	return 0;
}

int64_t svc_timeline_due_in(const struct svc_timeline_rule *r, const struct svc_timeline_state *st,
			    const struct svc_timeline_clock *now)
{
	int64_t elapsed, next;

	if (r->every_ns) {
		if (strcmp(st->boot_id, now->boot_id) == 0) {
			elapsed = now->boot_ns - st->boot_ns;
		} else {
			/* Another boot: the wall clock is all there is, but at least
			 * this boot's own time has passed, whatever it says. */
			elapsed = now->wall_ns - st->wall_ns;
			if (elapsed < now->boot_ns)
				elapsed = now->boot_ns;
		}
		if (elapsed < 0)
			elapsed = 0;
		return (int64_t)r->every_ns - elapsed;
	}
	next = svc_timeline_next_slot(r, st->slot_ns ? st->slot_ns : st->wall_ns);
	return next ? next - now->wall_ns : INT64_MAX;
}

void svc_timeline_ran(const struct svc_timeline_rule *r, struct svc_timeline_state *st,
		      const struct svc_timeline_clock *now)
{
	int64_t after = st->slot_ns ? st->slot_ns : st->wall_ns;

	if (!r->every_ns) {
		/* Slots before a week ago cannot matter: start there. */
		if (after < now->wall_ns - 8 * 86400 * NS)
			after = now->wall_ns - 8 * 86400 * NS;
		for (int64_t s = svc_timeline_next_slot(r, after); s && s <= now->wall_ns;
		     s = svc_timeline_next_slot(r, s))
			st->slot_ns = s;
	}
	st->wall_ns = now->wall_ns;
	st->boot_ns = now->boot_ns;
	memcpy(st->boot_id, now->boot_id, sizeof(st->boot_id));
	st->boot_id[sizeof(st->boot_id) - 1] = '\0';
}

/* The period of @wall_ns in class @c (local time). */
static long long period_of(enum svc_keep_class c, int64_t wall_ns)
{
	time_t t = floor_s(wall_ns);
	struct tm tm;
	char iso[16];

	if (!localtime_r(&t, &tm))
		return 0;
	switch (c) {
	case SVC_KEEP_HOURLY:
		return ((long long)tm.tm_year * 400 + tm.tm_yday) * 24 + tm.tm_hour;
	case SVC_KEEP_DAILY:
		return (long long)tm.tm_year * 400 + tm.tm_yday;
	case SVC_KEEP_WEEKLY:
		/* ISO 8601: the week's year and number. */
		strftime(iso, sizeof(iso), "%G%V", &tm);
		return atoll(iso);
	case SVC_KEEP_MONTHLY:
		return (long long)tm.tm_year * 12 + tm.tm_mon;
	default:
		return tm.tm_year;
	}
}

struct keyed {
	long long period;
	size_t i;
};

static int cmp_keyed(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;

	if (x->period != y->period)
		return x->period < y->period ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

size_t svc_timeline_retain(const struct svc_timeline_rule *r, const int64_t *wall_ns, size_t n,
			   bool *keep)
{
	struct keyed *k;
	bool *first;
	size_t kept = 0;

	if (!n)
		return 0;
	k = calloc(n, sizeof(*k));
	first = calloc(n, sizeof(*first));
	for (size_t i = 0; i < n; i++)
		keep[i] = false;
	if (!k || !first) {
		/* Out of memory: delete nothing. */
		for (size_t i = 0; i < n; i++)
			keep[i] = true;
		free(k);
		free(first);
		return n;
	}
	for (int c = 0; c < SVC_KEEP_CLASSES; c++) {
		unsigned int left = r->keep[c];

		if (!left)
			continue;
		for (size_t i = 0; i < n; i++)
			k[i] = (struct keyed){ period_of((enum svc_keep_class)c, wall_ns[i]), i };
		qsort(k, n, sizeof(*k), cmp_keyed);
		for (size_t i = 0; i < n; i++)
			first[k[i].i] = i == 0 || k[i - 1].period != k[i].period;
		/* Newest first, as snapper: each period's first shadow counts. */
		for (size_t i = n; i-- > 0 && left;)
			if (first[i]) {
				keep[i] = true;
				left--;
			}
	}
	keep[n - 1] = true;
	for (size_t i = 0; i < n; i++)
		kept += keep[i];
	free(k);
	free(first);
	return kept;
}

/* ---- parsers ---- */

int svc_timeline_parse_every(const char *s, uint64_t min_ns, uint64_t *ns,
			     struct vss_error *err)
{
	static const struct { char c; uint64_t s; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 7 * 86400 },
	};
	uint64_t mult = 1;
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		goto bad;
	if (*end) {
		size_t i;

		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (end[0] == units[i].c && end[1] == '\0')
				break;
		if (i == sizeof(units) / sizeof(units[0]))
			goto bad;
		mult = units[i].s;
	}
	if (!min_ns)
		min_ns = SVC_TIMELINE_EVERY_MIN_NS;
	if (v > SVC_TIMELINE_EVERY_MAX_NS / NS / mult || v * mult * NS < min_ns ||
	    v * mult * NS > SVC_TIMELINE_EVERY_MAX_NS)
		return vss_error_set(err, -EINVAL, "an interval of %s is out of range: from %llu "
				     "s to 366 days", s, (unsigned long long)(min_ns / NS));
	*ns = v * mult * NS;
	return 0;
bad:
	return vss_error_set(err, -EINVAL, "\"%.40s\" is not a duration (a number with s, m, h, "
			     "d or w, like 1h)", s ? s : "");
}

int svc_timeline_parse_at(const char *s, int *minute, struct vss_error *err)
{
	int h, m, used = 0;

	if (!s || strlen(s) > 5 || sscanf(s, "%2d:%2d%n", &h, &m, &used) != 2 ||
	    used != (int)strlen(s) || s[0] < '0' || s[0] > '9' || h < 0 || h > 23 || m < 0 ||
	    m > 59 || strchr(s, ':') - s > 2 || strlen(strchr(s, ':') + 1) != 2)
		return vss_error_set(err, -EINVAL, "\"%.40s\" is not a time of day (HH:MM, "
				     "00:00 to 23:59)", s ? s : "");
	*minute = h * 60 + m;
	return 0;
}

static int day_index(const char *s, size_t len)
{
	for (int d = 0; d < 7; d++)
		if (len == 3 && strncmp(s, day_names[d], 3) == 0)
			return d;
	return -1;
}

int svc_timeline_parse_days(const char *s, unsigned int *days, struct vss_error *err)
{
	unsigned int mask = 0;
	const char *p = s;

	if (!s || !*s)
		goto bad;
	if (strcmp(s, "daily") == 0) {
		*days = SVC_TIMELINE_ALL_DAYS;
		return 0;
	}
	if (strcmp(s, "weekdays") == 0) {
		*days = 0x3eu;
		return 0;
	}
	if (strcmp(s, "weekends") == 0) {
		*days = 0x41u;
		return 0;
	}
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *dash = memchr(p, '-', len);
		int a, b;

		if (dash) {
			a = day_index(p, (size_t)(dash - p));
			b = day_index(dash + 1, len - (size_t)(dash - p) - 1);
		} else {
			a = b = day_index(p, len);
		}
		if (a < 0 || b < 0)
			goto bad;
		/* mon-fri; fri-mon wraps over the week's end. */
		for (int d = a;; d = (d + 1) % 7) {
			mask |= 1u << d;
			if (d == b)
				break;
		}
		if (!comma)
			break;
		p = comma + 1;
		if (!*p)
			goto bad;
	}
	*days = mask;
	return 0;
bad:
	return vss_error_set(err, -EINVAL, "\"%.60s\" is not a list of days (mon,tue,...,sun, "
			     "ranges like mon-fri, daily, weekdays, weekends)", s ? s : "");
}

int svc_timeline_parse_keep(const char *s, unsigned int keep[SVC_KEEP_CLASSES],
			    struct vss_error *err)
{
	unsigned int out[SVC_KEEP_CLASSES] = { 0 };
	bool seen[SVC_KEEP_CLASSES] = { false };
	const char *p = s;

	if (!s || !*s)
		goto bad;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		char num[16];
		char *end;
		unsigned long v;
		int c;

		if (!eq || (size_t)(p + len - eq - 1) == 0 || (size_t)(p + len - eq - 1) >= sizeof(num))
			goto bad;
		for (c = 0; c < SVC_KEEP_CLASSES; c++)
			if ((size_t)(eq - p) == strlen(svc_keep_class_names[c]) &&
			    strncmp(p, svc_keep_class_names[c], (size_t)(eq - p)) == 0)
				break;
		if (c == SVC_KEEP_CLASSES || seen[c])
			goto bad;
		memcpy(num, eq + 1, (size_t)(p + len - eq - 1));
		num[p + len - eq - 1] = '\0';
		if (num[0] < '0' || num[0] > '9')
			goto bad;
		errno = 0;
		v = strtoul(num, &end, 10);
		if (errno || *end || v > SVC_TIMELINE_KEEP_MAX)
			return vss_error_set(err, -EINVAL, "--keep %s: %.40s: at most %u", s,
					     svc_keep_class_names[c], SVC_TIMELINE_KEEP_MAX);
		seen[c] = true;
		out[c] = (unsigned int)v;
		if (!comma)
			break;
		p = comma + 1;
		if (!*p)
			goto bad;
	}
	memcpy(keep, out, sizeof(out));
	return 0;
bad:
	return vss_error_set(err, -EINVAL, "\"%.80s\" is not a retention (hourly=N,daily=N,"
			     "weekly=N,monthly=N,yearly=N, each at most once)", s ? s : "");
}

const char *svc_timeline_days_str(unsigned int days, char *buf)
{
	size_t len = 0;

	buf[0] = '\0';
	/* Monday first, as people write weeks. */
	for (int i = 1; i <= 7; i++) {
		int d = i % 7;

		if (days & (1u << d))
			len += (size_t)snprintf(buf + len, 32 - len, "%s%s", len ? "," : "",
						day_names[d]);
	}
	return buf;
}
