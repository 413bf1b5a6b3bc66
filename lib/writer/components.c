/*
 * writer/components.c - the backup components document (doc/backup-components.md):
 * the components one backup selected, and what writers and requesters told
 * each other about them (stamps, success, partial and differenced files).
 *
 * Checked to the same standard as the writer metadata document, with the
 * helpers of doc.c (writer_doc_i.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "writer/writer_doc_i.h"

struct bcd_partial {
	char *path, *filename, *metadata;
	struct vss_bcd_range *ranges;
	size_t nranges;
};

struct bcd_diff {
	char *path, *file_spec;
	bool recursive;
	struct timespec t;
};

struct bcd_writer;

struct vss_bcd_component {
	struct vss_bcd *bcd;
	size_t wi, ci;  /* $.writers[wi].components[ci] */
	char *logical_path, *name;
	char *stamp, *prev_stamp, *options, *metadata, *pre_msg, *post_msg;
	bool succeeded;
	struct bcd_partial *partials;
	size_t npartials, cappartials;
	struct bcd_diff *diffs;
	size_t ndiffs, capdiffs;
};

struct bcd_writer {
	char class_id[DOC_UUID_LEN + 1], instance_id[DOC_UUID_LEN + 1];
	struct vss_bcd_component **comps;
	size_t ncomps, capcomps;
};

struct vss_bcd {
	enum vss_backup_type type;
	bool partial_file_support;
	struct bcd_writer **writers;
	size_t nwriters, capwriters;
	size_t ncomps;  /* over all writers */
};

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* ---- times: RFC 3339, UTC only ---- */

#define TIME_MAX_SEC 253402300799LL  /* 9999-12-31T23:59:59Z */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *s, size_t n, unsigned *out)
{
	*out = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*out = *out * 10 + (unsigned)(s[i] - '0');
	}
	return true;
}

int vss_bcd_time_parse(const char *s, struct timespec *out)
{
	static const unsigned mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned y, mo, d, h, mi, sec, nsec = 0, dim;
	size_t i = 19;

	if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' ||
	    !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d) ||
	    s[10] != 'T' || !digits(s + 11, 2, &h) || s[13] != ':' ||
	    !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
		return -EINVAL;
	if (s[i] == '.') {
		unsigned scale = 100000000, k = 0;
		for (i++; s[i] >= '0' && s[i] <= '9'; i++, k++) {
			if (k == 9)
				return -EINVAL;
			nsec += (unsigned)(s[i] - '0') * scale;
			scale /= 10;
		}
		if (k == 0)
			return -EINVAL;
	}
	if (s[i] != 'Z' || s[i + 1] != '\0')
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 59)
		return -EINVAL;
	dim = mdays[mo - 1] + (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
	if (d < 1 || d > dim)
		return -EINVAL;
	out->tv_sec = (time_t)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec);
	out->tv_nsec = (long)nsec;
	return 0;
}

int vss_bcd_time_format(const struct timespec *t, char buf[VSS_BCD_TIME_BUF])
{
	int64_t s = (int64_t)t->tv_sec, y;
	unsigned mo, d, rem;
	int n;

	if (s < 0 || s > TIME_MAX_SEC || t->tv_nsec < 0 || t->tv_nsec >= 1000000000L)
		return -EINVAL;
	civil_from_days(s / 86400, &y, &mo, &d);
	rem = (unsigned)(s % 86400);
	n = snprintf(buf, VSS_BCD_TIME_BUF, "%04d-%02u-%02uT%02u:%02u:%02u", (int)y,
		     mo, d, rem / 3600, rem / 60 % 60, rem % 60);
	if (t->tv_nsec) {
		char frac[10];
		int k = 9;
		snprintf(frac, sizeof(frac), "%09ld", t->tv_nsec);
		while (frac[k - 1] == '0')
			k--;
		n += snprintf(buf + n, (size_t)(VSS_BCD_TIME_BUF - n), ".%.*s", k, frac);
	}
	snprintf(buf + n, (size_t)(VSS_BCD_TIME_BUF - n), "Z");
	return 0;
}

/* ---- building ---- */

static void component_free(struct vss_bcd_component *cp)
{
	if (!cp)
		return;
	for (size_t i = 0; i < cp->npartials; i++) {
		free(cp->partials[i].path);
		free(cp->partials[i].filename);
		free(cp->partials[i].metadata);
		free(cp->partials[i].ranges);
	}
	for (size_t i = 0; i < cp->ndiffs; i++) {
		free(cp->diffs[i].path);
		free(cp->diffs[i].file_spec);
	}
	free(cp->partials);
	free(cp->diffs);
	free(cp->logical_path);
	free(cp->name);
	free(cp->stamp);
	free(cp->prev_stamp);
	free(cp->options);
	free(cp->metadata);
	free(cp->pre_msg);
	free(cp->post_msg);
	free(cp);
}

static void writer_free(struct bcd_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->ncomps; i++)
		component_free(w->comps[i]);
	free(w->comps);
	free(w);
}

void vss_bcd_free(struct vss_bcd *bcd)
{
	if (!bcd)
		return;
	for (size_t i = 0; i < bcd->nwriters; i++)
		writer_free(bcd->writers[i]);
	free(bcd->writers);
	free(bcd);
}

static int check_type(struct doc_ctx *c, enum vss_backup_type type)
{
	if (doc_name_of(doc_backup_type_names, type))
		return 0;
	return doc_fail_at(c, "backup_type", -EINVAL,
			   "invalid value %d (one of: full, incremental, differential, log, copy)",
			   (int)type);
}

static struct vss_bcd *bcd_alloc(enum vss_backup_type type, bool pfs)
{
	struct vss_bcd *bcd = calloc(1, sizeof(*bcd));

	if (bcd) {
		bcd->type = type;
		bcd->partial_file_support = pfs;
	}
	return bcd;
}

int vss_bcd_new(enum vss_backup_type type, bool partial_file_support,
		struct vss_bcd **out, struct vss_error *err)
{
	struct doc_ctx c;
	int r;

	doc_ctx_init(&c, err);
	*out = NULL;
	if ((r = check_type(&c, type)) < 0)
		return r;
	if (!(*out = bcd_alloc(type, partial_file_support)))
		return doc_nomem(&c);
	return 0;
}

enum vss_backup_type vss_bcd_backup_type(const struct vss_bcd *bcd)
{
	return bcd->type;
}

bool vss_bcd_partial_file_support(const struct vss_bcd *bcd)
{
	return bcd->partial_file_support;
}

/* @c is at "$.writers[n]": checks the ids into @class_id and @instance_id. */
static int check_writer_ids(struct doc_ctx *c, const char *class_id,
			    const char *instance_id,
			    char cls[DOC_UUID_LEN + 1], char inst[DOC_UUID_LEN + 1])
{
	int r;

	if (!class_id)
		return doc_fail_at(c, "writer_class_id", -EINVAL, "missing required member");
	if ((r = doc_check_uuid(c, "writer_class_id", class_id, cls)) < 0)
		return r;
	if (!instance_id)
		return doc_fail_at(c, "writer_instance_id", -EINVAL, "missing required member");
	return doc_check_uuid(c, "writer_instance_id", instance_id, inst);
}

static int add_writer(struct doc_ctx *c, struct vss_bcd *bcd,
		      const char *cls, const char *inst, struct bcd_writer **out)
{
	struct bcd_writer *w;
	int r;

	if ((r = doc_grow(c, &bcd->writers, &bcd->capwriters, bcd->nwriters,
			  sizeof(*bcd->writers))) < 0)
		return r;
	if (!(w = calloc(1, sizeof(*w))))
		return doc_nomem(c);
	memcpy(w->class_id, cls, sizeof(w->class_id));
	memcpy(w->instance_id, inst, sizeof(w->instance_id));
	bcd->writers[bcd->nwriters++] = w;
	*out = w;
	return 0;
}

static int find_in_writer(const struct bcd_writer *w, const char *lp, const char *name)
{
	for (size_t i = 0; i < w->ncomps; i++)
		if (!strcmp(w->comps[i]->logical_path, nz(lp)) &&
		    !strcmp(w->comps[i]->name, name))
			return (int)i;
	return -ENOENT;
}

/* @c is at "$.writers[wi].components[n]". */
static int add_component(struct doc_ctx *c, struct vss_bcd *bcd, size_t wi,
			 const char *lp, const char *name, bool check_dup,
			 struct vss_bcd_component **out)
{
	char q1[DOC_QUOTE_BUF], q2[DOC_QUOTE_BUF];
	struct bcd_writer *w = bcd->writers[wi];
	struct vss_bcd_component *cp;
	int r;

	if ((r = doc_check_logical_path(c, "logical_path", nz(lp))) < 0)
		return r;
	if (!name)
		return doc_fail_at(c, "name", -EINVAL, "missing required member");
	if ((r = doc_check_name(c, "name", name)) < 0)
		return r;
	if (check_dup && (r = find_in_writer(w, lp, name)) >= 0)
		return doc_fail(c, -EEXIST,
				"duplicate of $.writers[%zu].components[%d] (logical path %s, name %s)",
				wi, r, doc_quote(q1, nz(lp)), doc_quote(q2, name));
	if ((r = doc_grow(c, &w->comps, &w->capcomps, w->ncomps, sizeof(*w->comps))) < 0)
		return r;
	if (!(cp = calloc(1, sizeof(*cp))))
		return doc_nomem(c);
	cp->bcd = bcd;
	cp->wi = wi;
	cp->ci = w->ncomps;
	if ((r = doc_strdup(c, nz(lp), &cp->logical_path)) < 0 ||
	    (r = doc_strdup(c, name, &cp->name)) < 0) {
		component_free(cp);
		return r;
	}
	w->comps[w->ncomps++] = cp;
	bcd->ncomps++;
	if (out)
		*out = cp;
	return 0;
}

int vss_bcd_add_component(struct vss_bcd *bcd,
			  const struct vss_bcd_component_info *ci,
			  struct vss_bcd_component **out, struct vss_error *err)
{
	char cls[DOC_UUID_LEN + 1], inst[DOC_UUID_LEN + 1];
	struct doc_ctx c;
	struct bcd_writer *w = NULL;
	size_t wi, mark;
	int r;

	doc_ctx_init(&c, err);
	doc_enter(&c, "writers");
	/* Ids that do not parse cannot be those of a writer already here. */
	mark = doc_enter_index(&c, bcd->nwriters);
	if ((r = check_writer_ids(&c, ci->class_id, ci->instance_id, cls, inst)) < 0)
		return r;
	for (wi = 0; wi < bcd->nwriters; wi++)
		if (!strcmp(bcd->writers[wi]->class_id, cls) &&
		    !strcmp(bcd->writers[wi]->instance_id, inst))
			break;
	if (wi == bcd->nwriters && (r = add_writer(&c, bcd, cls, inst, &w)) < 0)
		return r;
	doc_leave(&c, mark);
	doc_enter_index(&c, wi);
	doc_enter(&c, "components");
	doc_enter_index(&c, bcd->writers[wi]->ncomps);
	r = add_component(&c, bcd, wi, ci->logical_path, ci->name, true, out);
	if (r < 0 && w) {
		/* The writer was made for this component only. */
		writer_free(w);
		bcd->nwriters--;
	}
	return r;
}

struct vss_bcd_component *vss_bcd_find_component(const struct vss_bcd *bcd,
						 const struct vss_bcd_component_info *ci)
{
	char cls[DOC_UUID_LEN + 1], inst[DOC_UUID_LEN + 1];
	struct doc_ctx c;

	doc_ctx_init(&c, NULL);
	if (!ci->name || check_writer_ids(&c, ci->class_id, ci->instance_id, cls, inst) < 0)
		return NULL;
	for (size_t wi = 0; wi < bcd->nwriters; wi++) {
		const struct bcd_writer *w = bcd->writers[wi];
		int i;
		if (strcmp(w->class_id, cls) || strcmp(w->instance_id, inst))
			continue;
		i = find_in_writer(w, ci->logical_path, ci->name);
		return i < 0 ? NULL : w->comps[i];
	}
	return NULL;
}

size_t vss_bcd_component_count(const struct vss_bcd *bcd)
{
	return bcd->ncomps;
}

struct vss_bcd_component *vss_bcd_component_at(const struct vss_bcd *bcd, size_t i)
{
	for (size_t wi = 0; wi < bcd->nwriters; wi++) {
		const struct bcd_writer *w = bcd->writers[wi];
		if (i < w->ncomps)
			return w->comps[i];
		i -= w->ncomps;
	}
	return NULL;
}

void vss_bcd_component_info(const struct vss_bcd_component *c,
			    struct vss_bcd_component_info *out)
{
	const struct bcd_writer *w = c->bcd->writers[c->wi];

	out->class_id = w->class_id;
	out->instance_id = w->instance_id;
	out->logical_path = c->logical_path;
	out->name = c->name;
}

/* Sets @c to the component's path. */
static void component_ctx(struct doc_ctx *c, const struct vss_bcd_component *cp,
			  struct vss_error *err)
{
	doc_ctx_init(c, err);
	doc_enter(c, "writers");
	doc_enter_index(c, cp->wi);
	doc_enter(c, "components");
	doc_enter_index(c, cp->ci);
}

static int set_text(struct doc_ctx *c, const char *member, char **field,
		    const char *value, size_t max, unsigned flags)
{
	char *copy;
	int r;

	if (value && (r = doc_check_text(c, member, value, max, flags)) < 0)
		return r;
	if ((r = doc_strdup(c, value, &copy)) < 0)
		return r;
	free(*field);
	*field = copy;
	return 0;
}

#define COMPONENT_SETTER(fn, member, field, max, flags)                        \
	int fn(struct vss_bcd_component *cp, const char *value,                \
	       struct vss_error *err)                                          \
	{                                                                      \
		struct doc_ctx c;                                              \
		component_ctx(&c, cp, err);                                    \
		return set_text(&c, member, &cp->field, value, max, flags);    \
	}

COMPONENT_SETTER(vss_bcd_set_backup_stamp, "backup_stamp", stamp,
		 VSS_DOC_STAMP_MAX, 0)
COMPONENT_SETTER(vss_bcd_set_previous_backup_stamp, "previous_backup_stamp",
		 prev_stamp, VSS_DOC_STAMP_MAX, 0)
COMPONENT_SETTER(vss_bcd_set_backup_options, "backup_options", options,
		 VSS_DOC_TEXT_MAX, DOC_CTL_OK)
COMPONENT_SETTER(vss_bcd_set_backup_metadata, "backup_metadata", metadata,
		 VSS_DOC_TEXT_MAX, DOC_CTL_OK)
COMPONENT_SETTER(vss_bcd_set_pre_restore_failure_msg,
		 "pre_restore_failure_message", pre_msg, VSS_DOC_TEXT_MAX, DOC_CTL_OK)
COMPONENT_SETTER(vss_bcd_set_post_restore_failure_msg,
		 "post_restore_failure_message", post_msg, VSS_DOC_TEXT_MAX, DOC_CTL_OK)

void vss_bcd_set_backup_succeeded(struct vss_bcd_component *cp, bool succeeded)
{
	cp->succeeded = succeeded;
}

static int range_order(const void *a, const void *b, void *arg)
{
	const struct vss_bcd_range *r = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	if (r[x].offset != r[y].offset)
		return r[x].offset < r[y].offset ? -1 : 1;
	return (x > y) - (x < y);
}

/* @c is at "...partial_files[n]". */
static int check_ranges(struct doc_ctx *c, const struct vss_bcd_range *r, size_t n)
{
	size_t mark = doc_enter(c, "ranges"), *idx;
	int ret = 0;

	if (n == 0)
		return doc_fail(c, -EINVAL, "must not be empty");
	for (size_t i = 0; i < n; i++) {
		size_t m = doc_enter_index(c, i);
		if (r[i].offset < 0)
			return doc_fail_at(c, "offset", -EINVAL,
					   "must not be negative, got %lld",
					   (long long)r[i].offset);
		if (r[i].length <= 0)
			return doc_fail_at(c, "length", -EINVAL,
					   "must be positive, got %lld",
					   (long long)r[i].length);
		if (r[i].length > INT64_MAX - r[i].offset)
			return doc_fail(c, -EINVAL,
					"offset + length is past the largest file offset (2^63 - 1)");
		doc_leave(c, m);
	}
	if (n == 1)
		goto out;
	if (!(idx = malloc(n * sizeof(*idx))))
		return doc_nomem(c);
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	qsort_r(idx, n, sizeof(*idx), range_order, (void *)r);
	for (size_t k = 1; k < n; k++) {
		const struct vss_bcd_range *a = &r[idx[k - 1]], *b = &r[idx[k]];
		size_t lo = idx[k - 1] < idx[k] ? idx[k - 1] : idx[k];
		size_t hi = idx[k - 1] ^ idx[k] ^ lo;
		if (a->offset + a->length <= b->offset)
			continue;
		doc_enter_index(c, hi);
		ret = doc_fail(c, -EINVAL,
			       "bytes [%lld, %lld) overlap ranges[%zu], bytes [%lld, %lld)",
			       (long long)r[hi].offset,
			       (long long)(r[hi].offset + r[hi].length), lo,
			       (long long)r[lo].offset,
			       (long long)(r[lo].offset + r[lo].length));
		break;
	}
	free(idx);
	if (ret < 0)
		return ret;
out:
	doc_leave(c, mark);
	return 0;
}

static int find_partial(const struct vss_bcd_component *cp, const char *path,
			const char *filename)
{
	for (size_t i = 0; i < cp->npartials; i++)
		if (!strcmp(cp->partials[i].path, path) &&
		    !strcmp(cp->partials[i].filename, filename))
			return (int)i;
	return -ENOENT;
}

/* @c is at "...partial_files[n]". */
static int add_partial(struct doc_ctx *c, struct vss_bcd_component *cp,
		       const struct vss_bcd_partial_file *pf, bool check_dup)
{
	struct bcd_partial *p;
	int r;

	if (!cp->bcd->partial_file_support)
		return doc_fail(c, -EINVAL,
				"partial files need \"partial_file_support\": true");
	if (!pf->path)
		return doc_fail_at(c, "path", -EINVAL, "missing required member");
	if ((r = doc_check_abs_path(c, "path", pf->path)) < 0)
		return r;
	if (!pf->filename)
		return doc_fail_at(c, "filename", -EINVAL, "missing required member");
	if ((r = doc_check_spec(c, "filename", pf->filename)) < 0 ||
	    (r = check_ranges(c, pf->ranges, pf->range_count)) < 0)
		return r;
	if (pf->metadata &&
	    (r = doc_check_text(c, "metadata", pf->metadata, VSS_DOC_TEXT_MAX,
				DOC_CTL_OK)) < 0)
		return r;
	if (check_dup && (r = find_partial(cp, pf->path, pf->filename)) >= 0)
		return doc_fail(c, -EEXIST,
				"duplicate of partial_files[%d] (same path and filename)", r);
	if ((r = doc_grow(c, &cp->partials, &cp->cappartials, cp->npartials,
			  sizeof(*cp->partials))) < 0)
		return r;
	p = &cp->partials[cp->npartials];
	memset(p, 0, sizeof(*p));
	if (!(p->ranges = malloc(pf->range_count * sizeof(*p->ranges))))
		return doc_nomem(c);
	memcpy(p->ranges, pf->ranges, pf->range_count * sizeof(*p->ranges));
	p->nranges = pf->range_count;
	if ((r = doc_strdup(c, pf->path, &p->path)) < 0 ||
	    (r = doc_strdup(c, pf->filename, &p->filename)) < 0 ||
	    (r = doc_strdup(c, pf->metadata, &p->metadata)) < 0) {
		free(p->ranges);
		free(p->path);
		free(p->filename);
		return r;
	}
	cp->npartials++;
	return 0;
}

int vss_bcd_add_partial_file(struct vss_bcd_component *cp,
			     const struct vss_bcd_partial_file *pf,
			     struct vss_error *err)
{
	struct doc_ctx c;

	component_ctx(&c, cp, err);
	doc_enter(&c, "partial_files");
	doc_enter_index(&c, cp->npartials);
	return add_partial(&c, cp, pf, true);
}

/* @c is at "...differenced_files[n]". */
static int add_diff(struct doc_ctx *c, struct vss_bcd_component *cp,
		    const struct vss_bcd_differenced_files *df)
{
	char buf[VSS_BCD_TIME_BUF];
	struct bcd_diff *d;
	int r;

	if (!df->path)
		return doc_fail_at(c, "path", -EINVAL, "missing required member");
	if ((r = doc_check_abs_path(c, "path", df->path)) < 0)
		return r;
	if (!df->file_spec)
		return doc_fail_at(c, "file_spec", -EINVAL, "missing required member");
	if ((r = doc_check_spec(c, "file_spec", df->file_spec)) < 0)
		return r;
	if (vss_bcd_time_format(&df->last_modify, buf) < 0)
		return doc_fail_at(c, "last_modify_time", -EINVAL,
				   "out of range (1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z)");
	if ((r = doc_grow(c, &cp->diffs, &cp->capdiffs, cp->ndiffs, sizeof(*cp->diffs))) < 0)
		return r;
	d = &cp->diffs[cp->ndiffs];
	memset(d, 0, sizeof(*d));
	d->recursive = df->recursive;
	d->t = df->last_modify;
	if ((r = doc_strdup(c, df->path, &d->path)) < 0 ||
	    (r = doc_strdup(c, df->file_spec, &d->file_spec)) < 0) {
		free(d->path);
		return r;
	}
	cp->ndiffs++;
	return 0;
}

int vss_bcd_add_differenced_files(struct vss_bcd_component *cp,
				  const struct vss_bcd_differenced_files *df,
				  struct vss_error *err)
{
	struct doc_ctx c;

	component_ctx(&c, cp, err);
	doc_enter(&c, "differenced_files");
	doc_enter_index(&c, cp->ndiffs);
	return add_diff(&c, cp, df);
}

/* ---- getters ---- */

const char *vss_bcd_backup_stamp(const struct vss_bcd_component *c)
{
	return c->stamp;
}

const char *vss_bcd_previous_backup_stamp(const struct vss_bcd_component *c)
{
	return c->prev_stamp;
}

bool vss_bcd_backup_succeeded(const struct vss_bcd_component *c)
{
	return c->succeeded;
}

const char *vss_bcd_backup_options(const struct vss_bcd_component *c)
{
	return c->options;
}

const char *vss_bcd_backup_metadata(const struct vss_bcd_component *c)
{
	return c->metadata;
}

const char *vss_bcd_pre_restore_failure_msg(const struct vss_bcd_component *c)
{
	return c->pre_msg;
}

const char *vss_bcd_post_restore_failure_msg(const struct vss_bcd_component *c)
{
	return c->post_msg;
}

size_t vss_bcd_partial_file_count(const struct vss_bcd_component *c)
{
	return c->npartials;
}

int vss_bcd_partial_file(const struct vss_bcd_component *c, size_t i,
			 struct vss_bcd_partial_file *out)
{
	const struct bcd_partial *p;

	if (i >= c->npartials)
		return -ERANGE;
	p = &c->partials[i];
	out->path = p->path;
	out->filename = p->filename;
	out->ranges = p->ranges;
	out->range_count = p->nranges;
	out->metadata = p->metadata;
	return 0;
}

size_t vss_bcd_differenced_files_count(const struct vss_bcd_component *c)
{
	return c->ndiffs;
}

int vss_bcd_differenced_files(const struct vss_bcd_component *c, size_t i,
			      struct vss_bcd_differenced_files *out)
{
	const struct bcd_diff *d;

	if (i >= c->ndiffs)
		return -ERANGE;
	d = &c->diffs[i];
	out->path = d->path;
	out->file_spec = d->file_spec;
	out->recursive = d->recursive;
	out->last_modify = d->t;
	return 0;
}

/* ---- validating ---- */

static int writer_cmp(const void *ctx, size_t a, size_t b)
{
	struct bcd_writer *const *w = ctx;
	int r = strcmp(w[a]->class_id, w[b]->class_id);

	return r ? r : strcmp(w[a]->instance_id, w[b]->instance_id);
}

static int component_cmp(const void *ctx, size_t a, size_t b)
{
	struct vss_bcd_component *const *cp = ctx;
	int r = strcmp(cp[a]->logical_path, cp[b]->logical_path);

	return r ? r : strcmp(cp[a]->name, cp[b]->name);
}

static int partial_cmp(const void *ctx, size_t a, size_t b)
{
	const struct bcd_partial *p = ctx;
	int r = strcmp(p[a].path, p[b].path);

	return r ? r : strcmp(p[a].filename, p[b].filename);
}

static int bcd_validate(struct doc_ctx *c, const struct vss_bcd *bcd)
{
	char q1[DOC_QUOTE_BUF], q2[DOC_QUOTE_BUF];
	size_t first, dup;
	int r;

	if ((r = check_type(c, bcd->type)) < 0)
		return r;
	doc_enter(c, "writers");
	r = doc_first_duplicate(bcd->nwriters, writer_cmp, bcd->writers, &first, &dup);
	if (r < 0)
		return doc_nomem(c);
	if (r > 0) {
		doc_enter_index(c, dup);
		return doc_fail(c, -EINVAL,
				"duplicate of $.writers[%zu] (writer class id %s, instance id %s)",
				first, bcd->writers[dup]->class_id,
				bcd->writers[dup]->instance_id);
	}
	for (size_t wi = 0; wi < bcd->nwriters; wi++) {
		const struct bcd_writer *w = bcd->writers[wi];
		size_t mw = doc_enter_index(c, wi);
		doc_enter(c, "components");
		if (!w->ncomps)
			return doc_fail(c, -EINVAL, "must not be empty");
		r = doc_first_duplicate(w->ncomps, component_cmp, w->comps, &first, &dup);
		if (r < 0)
			return doc_nomem(c);
		if (r > 0) {
			doc_enter_index(c, dup);
			return doc_fail(c, -EINVAL,
					"duplicate of $.writers[%zu].components[%zu] (logical path %s, name %s)",
					wi, first, doc_quote(q1, w->comps[dup]->logical_path),
					doc_quote(q2, w->comps[dup]->name));
		}
		for (size_t ci = 0; ci < w->ncomps; ci++) {
			const struct vss_bcd_component *cp = w->comps[ci];
			size_t mc = doc_enter_index(c, ci);
			doc_enter(c, "partial_files");
			r = doc_first_duplicate(cp->npartials, partial_cmp, cp->partials,
						&first, &dup);
			if (r < 0)
				return doc_nomem(c);
			if (r > 0) {
				doc_enter_index(c, dup);
				return doc_fail(c, -EINVAL,
						"duplicate of partial_files[%zu] (same path and filename)",
						first);
			}
			doc_leave(c, mc);
		}
		doc_leave(c, mw);
	}
	return 0;
}

int vss_bcd_validate(const struct vss_bcd *bcd, struct vss_error *err)
{
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	return bcd_validate(&c, bcd);
}

int vss_bcd_check_writer(const struct vss_bcd *bcd, const struct vss_wmd *wmd,
			 struct vss_error *err)
{
	char q1[DOC_QUOTE_BUF], q2[DOC_QUOTE_BUF], q3[DOC_QUOTE_BUF];
	struct vss_wmd_identity id;
	uint32_t schema = vss_wmd_backup_schema(wmd);
	struct doc_ctx c;

	doc_ctx_init(&c, err);
	vss_wmd_identity(wmd, &id);
	doc_enter(&c, "writers");
	for (size_t wi = 0; wi < bcd->nwriters; wi++) {
		const struct bcd_writer *w = bcd->writers[wi];
		size_t mw;
		if (strcmp(w->class_id, id.class_id) || strcmp(w->instance_id, id.instance_id))
			continue;
		mw = doc_enter_index(&c, wi);
		doc_enter(&c, "components");
		for (size_t ci = 0; ci < w->ncomps; ci++) {
			const struct vss_bcd_component *cp = w->comps[ci];
			size_t mc = doc_enter_index(&c, ci);
			if (vss_wmd_find_component(wmd, cp->logical_path, cp->name) < 0)
				return doc_fail(&c, -EINVAL,
						"writer %s has no component with logical path %s and name %s",
						doc_quote(q1, id.writer_name),
						doc_quote(q2, cp->logical_path),
						doc_quote(q3, cp->name));
			if ((cp->stamp || cp->prev_stamp) && !(schema & VSS_BS_TIMESTAMPED))
				return doc_fail_at(&c, cp->stamp ? "backup_stamp" : "previous_backup_stamp",
						   -EINVAL,
						   "writer %s does not declare \"timestamped\" in its backup schema",
						   doc_quote(q1, id.writer_name));
			if (cp->ndiffs && !(schema & VSS_BS_LAST_MODIFY))
				return doc_fail_at(&c, "differenced_files", -EINVAL,
						   "writer %s does not declare \"last_modify\" in its backup schema",
						   doc_quote(q1, id.writer_name));
			doc_leave(&c, mc);
		}
		doc_leave(&c, mw);
	}
	return 0;
}

/* ---- serializing ---- */

static json_t *partial_json(const struct bcd_partial *p)
{
	json_t *o = json_object(), *ranges = json_array();
	bool ok = o && ranges;

	for (size_t i = 0; ok && i < p->nranges; i++) {
		json_t *r = json_object();
		ok = r && doc_put(r, "offset", json_integer(p->ranges[i].offset)) &&
		     doc_put(r, "length", json_integer(p->ranges[i].length));
		ok = doc_append(ranges, ok ? r : (json_decref(r), NULL)) && ok;
	}
	ok = ok && doc_put_str(o, "path", p->path) &&
	     doc_put_str(o, "filename", p->filename) &&
	     doc_put(o, "ranges", json_incref(ranges)) &&
	     doc_put_str(o, "metadata", p->metadata);
	json_decref(ranges);
	if (ok)
		return o;
	json_decref(o);
	return NULL;
}

static json_t *diff_json(const struct bcd_diff *d)
{
	char t[VSS_BCD_TIME_BUF];
	json_t *o = json_object();
	/* The epoch is "no time": the requester finds what changed itself. */
	bool none = d->t.tv_sec == 0 && d->t.tv_nsec == 0;

	if (o && vss_bcd_time_format(&d->t, t) == 0 &&
	    doc_put_str(o, "path", d->path) &&
	    doc_put_str(o, "file_spec", d->file_spec) &&
	    doc_put(o, "recursive", json_boolean(d->recursive)) &&
	    (none ? doc_put(o, "last_modify_time", json_null())
		  : doc_put_str(o, "last_modify_time", t)))
		return o;
	json_decref(o);
	return NULL;
}

static json_t *component_json(const struct vss_bcd_component *cp)
{
	json_t *o = json_object(), *pf = json_array(), *df = json_array();
	bool ok = o && pf && df;

	for (size_t i = 0; ok && i < cp->npartials; i++)
		ok = doc_append(pf, partial_json(&cp->partials[i]));
	for (size_t i = 0; ok && i < cp->ndiffs; i++)
		ok = doc_append(df, diff_json(&cp->diffs[i]));
	ok = ok && doc_put_str(o, "logical_path", cp->logical_path) &&
	     doc_put_str(o, "name", cp->name) &&
	     doc_put(o, "backup_succeeded", json_boolean(cp->succeeded)) &&
	     doc_put_str(o, "backup_stamp", cp->stamp) &&
	     doc_put_str(o, "previous_backup_stamp", cp->prev_stamp) &&
	     doc_put_str(o, "backup_options", cp->options) &&
	     doc_put_str(o, "backup_metadata", cp->metadata) &&
	     doc_put_str(o, "pre_restore_failure_message", cp->pre_msg) &&
	     doc_put_str(o, "post_restore_failure_message", cp->post_msg) &&
	     doc_put(o, "partial_files", json_incref(pf)) &&
	     doc_put(o, "differenced_files", json_incref(df));
	json_decref(pf);
	json_decref(df);
	if (ok)
		return o;
	json_decref(o);
	return NULL;
}

static json_t *bcd_json(const struct vss_bcd *bcd)
{
	json_t *o = json_object(), *writers = json_array();
	bool ok = o && writers;

	for (size_t wi = 0; ok && wi < bcd->nwriters; wi++) {
		const struct bcd_writer *w = bcd->writers[wi];
		json_t *wo = json_object(), *comps = json_array();
		ok = wo && comps;
		for (size_t ci = 0; ok && ci < w->ncomps; ci++)
			ok = doc_append(comps, component_json(w->comps[ci]));
		ok = ok && doc_put_str(wo, "writer_class_id", w->class_id) &&
		     doc_put_str(wo, "writer_instance_id", w->instance_id) &&
		     doc_put(wo, "components", json_incref(comps));
		json_decref(comps);
		if (ok)
			ok = doc_append(writers, wo);
		else
			json_decref(wo);
	}
	ok = ok && doc_put_str(o, "format", "vss-backup-components") &&
	     doc_put(o, "version", json_integer(DOC_VERSION)) &&
	     doc_put_str(o, "backup_type", doc_name_of(doc_backup_type_names, bcd->type)) &&
	     doc_put(o, "partial_file_support", json_boolean(bcd->partial_file_support)) &&
	     doc_put(o, "writers", json_incref(writers));
	json_decref(writers);
	if (ok)
		return o;
	json_decref(o);
	return NULL;
}

int vss_bcd_serialize(const struct vss_bcd *bcd, char **json, size_t *len,
		      struct vss_error *err)
{
	struct doc_ctx c;
	json_t *root;
	int r;

	doc_ctx_init(&c, err);
	*json = NULL;
	if ((r = bcd_validate(&c, bcd)) < 0)
		return r;
	if (!(root = bcd_json(bcd)))
		return doc_nomem(&c);
	r = doc_dump(&c, root, json, len);
	json_decref(root);
	return r;
}

/* ---- parsing ---- */

static const char *const root_members[] = {
	"format", "version", "backup_type", "partial_file_support", "writers", NULL,
};
static const char *const writer_members[] = {
	"writer_class_id", "writer_instance_id", "components", NULL,
};
static const char *const component_members[] = {
	"logical_path", "name", "backup_succeeded", "backup_stamp",
	"previous_backup_stamp", "backup_options", "backup_metadata",
	"pre_restore_failure_message", "post_restore_failure_message", "partial_files",
	"differenced_files", NULL,
};
static const char *const partial_members[] = {
	"path", "filename", "ranges", "metadata", NULL,
};
static const char *const range_members[] = { "offset", "length", NULL };
static const char *const diff_members[] = {
	"path", "file_spec", "recursive", "last_modify_time", NULL,
};

/* Each element of the array member @key; @fn reads it with @c at "key[i]". */
static int parse_each(struct doc_ctx *c, json_t *obj, const char *key, bool required,
		      int (*fn)(struct doc_ctx *c, json_t *elem, void *arg), void *arg)
{
	json_t *a, *v;
	size_t i, mark;
	int r;

	if ((r = doc_array(c, obj, key, required, &a)) < 0 || !a)
		return r;
	mark = doc_enter(c, key);
	json_array_foreach(a, i, v) {
		size_t m = doc_enter_index(c, i);
		if ((r = fn(c, v, arg)) < 0)
			return r;
		doc_leave(c, m);
	}
	doc_leave(c, mark);
	return 0;
}

static int parse_partial(struct doc_ctx *c, json_t *o, void *arg)
{
	struct vss_bcd_component *cp = arg;
	struct vss_bcd_partial_file pf = { 0 };
	struct vss_bcd_range *ranges = NULL;
	json_t *a, *v;
	size_t i, mark;
	int r;

	if ((r = doc_members(c, o, partial_members)) < 0 ||
	    (r = doc_string(c, o, "path", true, &pf.path)) < 0 ||
	    (r = doc_string(c, o, "filename", true, &pf.filename)) < 0 ||
	    (r = doc_array(c, o, "ranges", true, &a)) < 0 ||
	    (r = doc_string(c, o, "metadata", false, &pf.metadata)) < 0)
		return r;
	pf.range_count = json_array_size(a);
	if (pf.range_count && !(ranges = calloc(pf.range_count, sizeof(*ranges))))
		return doc_nomem(c);
	mark = doc_enter(c, "ranges");
	json_array_foreach(a, i, v) {
		json_int_t off, len;
		size_t m = doc_enter_index(c, i);
		if ((r = doc_members(c, v, range_members)) < 0 ||
		    (r = doc_int(c, v, "offset", &off)) < 0 ||
		    (r = doc_int(c, v, "length", &len)) < 0) {
			free(ranges);
			return r;
		}
		ranges[i].offset = off;
		ranges[i].length = len;
		doc_leave(c, m);
	}
	doc_leave(c, mark);
	pf.ranges = ranges;
	r = add_partial(c, cp, &pf, false);
	free(ranges);
	return r;
}

static int parse_diff(struct doc_ctx *c, json_t *o, void *arg)
{
	char q[DOC_QUOTE_BUF];
	struct vss_bcd_component *cp = arg;
	struct vss_bcd_differenced_files df = { 0 };
	const char *t;
	int r;

	if ((r = doc_members(c, o, diff_members)) < 0 ||
	    (r = doc_string(c, o, "path", true, &df.path)) < 0 ||
	    (r = doc_string(c, o, "file_spec", true, &df.file_spec)) < 0 ||
	    (r = doc_bool(c, o, "recursive", false, &df.recursive)) < 0)
		return r;
	/* null: no time (the epoch in C). */
	if (json_is_null(json_object_get(o, "last_modify_time")))
		return add_diff(c, cp, &df);
	if ((r = doc_string(c, o, "last_modify_time", true, &t)) < 0)
		return r;
	if (vss_bcd_time_parse(t, &df.last_modify) < 0)
		return doc_fail_at(c, "last_modify_time", -EINVAL,
				   "not an RFC 3339 UTC time (YYYY-MM-DDThh:mm:ss[.fraction]Z, 1970 to 9999): %s",
				   doc_quote(q, t));
	return add_diff(c, cp, &df);
}

struct text_member {
	const char *key;
	int (*set)(struct vss_bcd_component *, const char *, struct vss_error *);
};

static const struct text_member text_members[] = {
	{ "backup_stamp", vss_bcd_set_backup_stamp },
	{ "previous_backup_stamp", vss_bcd_set_previous_backup_stamp },
	{ "backup_options", vss_bcd_set_backup_options },
	{ "backup_metadata", vss_bcd_set_backup_metadata },
	{ "pre_restore_failure_message", vss_bcd_set_pre_restore_failure_msg },
	{ "post_restore_failure_message", vss_bcd_set_post_restore_failure_msg },
};

static int parse_component(struct doc_ctx *c, json_t *o, void *arg)
{
	struct vss_bcd *bcd = arg;
	struct vss_bcd_component *cp;
	const char *lp, *name;
	bool ok;
	int r;

	if ((r = doc_members(c, o, component_members)) < 0 ||
	    (r = doc_string(c, o, "logical_path", false, &lp)) < 0 ||
	    (r = doc_string(c, o, "name", true, &name)) < 0 ||
	    (r = doc_bool(c, o, "backup_succeeded", false, &ok)) < 0)
		return r;
	if ((r = add_component(c, bcd, bcd->nwriters - 1, lp, name, false, &cp)) < 0)
		return r;
	cp->succeeded = ok;
	for (size_t i = 0; i < sizeof(text_members) / sizeof(text_members[0]); i++) {
		const char *s;
		if ((r = doc_string(c, o, text_members[i].key, false, &s)) < 0)
			return r;
		/* The setters report at the component's path, as here. */
		if (s && (r = text_members[i].set(cp, s, c->err)) < 0)
			return r;
	}
	if ((r = parse_each(c, o, "partial_files", false, parse_partial, cp)) < 0)
		return r;
	return parse_each(c, o, "differenced_files", false, parse_diff, cp);
}

static int parse_writer(struct doc_ctx *c, json_t *o, void *arg)
{
	char cls[DOC_UUID_LEN + 1], inst[DOC_UUID_LEN + 1];
	struct vss_bcd *bcd = arg;
	struct bcd_writer *w;
	const char *class_id, *instance_id;
	int r;

	if ((r = doc_members(c, o, writer_members)) < 0 ||
	    (r = doc_string(c, o, "writer_class_id", true, &class_id)) < 0 ||
	    (r = doc_string(c, o, "writer_instance_id", true, &instance_id)) < 0 ||
	    (r = check_writer_ids(c, class_id, instance_id, cls, inst)) < 0 ||
	    (r = add_writer(c, bcd, cls, inst, &w)) < 0)
		return r;
	return parse_each(c, o, "components", true, parse_component, bcd);
}

int vss_bcd_parse(const char *buf, size_t len, size_t max_size,
		  struct vss_bcd **out, struct vss_error *err)
{
	struct doc_ctx c;
	struct vss_bcd *bcd = NULL;
	unsigned type;
	bool pfs;
	json_t *root;
	int r;

	doc_ctx_init(&c, err);
	*out = NULL;
	if ((r = doc_root(&c, buf, len, max_size, "vss-backup-components", &root)) < 0)
		return r;
	if ((r = doc_members(&c, root, root_members)) < 0 ||
	    (r = doc_enum(&c, root, "backup_type", doc_backup_type_names, true, 0,
			  &type)) < 0 ||
	    (r = doc_bool(&c, root, "partial_file_support", false, &pfs)) < 0)
		goto fail;
	if (!(bcd = bcd_alloc(type, pfs))) {
		r = doc_nomem(&c);
		goto fail;
	}
	if ((r = parse_each(&c, root, "writers", true, parse_writer, bcd)) < 0 ||
	    (r = bcd_validate(&c, bcd)) < 0)
		goto fail;
	json_decref(root);
	*out = bcd;
	return 0;
fail:
	vss_bcd_free(bcd);
	json_decref(root);
	return r;
}
