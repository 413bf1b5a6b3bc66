/*
 * tests/service/test_set.c - the set coordinator (service/set.h) and the
 * life of a backup (service/backup.h) without root: a real vssd in a
 * private directory, with fake providers behind the provider operations, a
 * fake freezer instead of the guardian and FIFREEZE, a fake transport
 * instead of FUSE, writers on the writer library (vss/writer.h) and a
 * requester on the client library, through the control socket.
 *
 * Every test ends with the same check (nothing_left): no filesystem
 * frozen, no guardian running, every gate open, no member prepared and
 * not aborted, no snapshot of a fake provider but the shadows listed, no
 * catalog row but theirs, no writer frozen.  The abort paths: a provider
 * failing at prepare, at commit, at adopt; a filesystem refusing its
 * freeze; the guardian thawing on its own and a freeze past its bound; a
 * writer failing at freeze; a writer's thaw running out of the window; the
 * requester going away after each step and in the middle of one, or
 * falling silent past its lease.  And the transitions the state machine
 * refuses (backup.complete without a set among them), against a table
 * written here from doc/service.md.  The components document a writer
 * hands back at post_snapshot: its backup metadata reaches the requester,
 * one that selects more components is refused and fails that writer.
 *
 * Restores (restore.begin, restore.prepare, restore.complete): the writers
 * of the backup matched with those registered (by instance, by class for
 * a new instance, none), pre_restore and post_restore in order; a writer
 * failing pre_restore stops the restore and every writer gets abort; a
 * post_restore failure is reported and the restore ends; a requester going
 * away after pre_restore leaves every writer aborted; and the requests out
 * of turn are refused, changing nothing.
 */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>
#include <uuid/uuid.h>

#include <vss/client.h>
#include <vss/writer.h>

#include "client/client_json.h"

#include "proto/proto.h"
#include "provider/provider.h"
#include "service/backup.h"
#include "service/service.h"
#include "service/service_i.h"
#include "service/set.h"
#include "service/shadows.h"
#include "transport/transport.h"

/* ---- what happened, in order: providers, freezer and writers log here ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char events[16384];

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
	char line[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&log_lock);
	strncat(events, line, sizeof(events) - strlen(events) - 2);
	strcat(events, ";");
	pthread_mutex_unlock(&log_lock);
}

static bool logged(const char *what)
{
	bool yes;

	pthread_mutex_lock(&log_lock);
	yes = strstr(events, what) != NULL;
	pthread_mutex_unlock(&log_lock);
	return yes;
}

/* Whether @a was logged before @b (both logged). */
static bool before(const char *a, const char *b)
{
	const char *x, *y;

	pthread_mutex_lock(&log_lock);
	x = strstr(events, a);
	y = strstr(events, b);
	pthread_mutex_unlock(&log_lock);
	return x && y && x < y;
}

static void forget(void)
{
	pthread_mutex_lock(&log_lock);
	events[0] = '\0';
	pthread_mutex_unlock(&log_lock);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a fake provider: targets "a", "b", "c" are volumes with a gate and
 * a filesystem to freeze; "plain" has neither (as btrfs) ---- */

struct fake_vol {
	const char *name;
	pthread_rwlock_t gate;
	char dir[16];
	char loop[16];
};

static struct fake_vol vols[] = { { .name = "a" }, { .name = "b" }, { .name = "c" } };

static struct {
	const char *fail_prepare, *fail_commit, *fail_adopt, *fail_freeze, *fail_hold;
	int suspended;                 /* held members not resumed yet (their device) */
	int holds_wanted, holds_done;  /* of the set being taken */
	bool fail_guard, guard_times_out;
	unsigned int freeze_sleep_ms;
	unsigned int settle_sleep_ms;  /* each settle that switches the loops */
	int prepared;                  /* prepared, not yet adopted or aborted */
	int made;                      /* snapshots that exist */
	int frozen;                    /* filesystems frozen now */
	int guards;                    /* guardians running */
} fk;

static struct fake_vol *vol_of(const char *target)
{
	for (size_t i = 0; i < sizeof(vols) / sizeof(vols[0]); i++)
		if (strcmp(vols[i].name, target) == 0)
			return &vols[i];
	return NULL;
}

static bool is(const char *knob, const char *target)
{
	return knob && strcmp(knob, target) == 0;
}

static int fake_supports(struct vss_service *svc, const char *target, struct vss_error *err)
{
	if (vol_of(target) || strcmp(target, "plain") == 0 || strcmp(target, "/") == 0 ||
	    strcmp(target, "u1") == 0 || strcmp(target, "u2") == 0)
		return 0;
	return vss_error_set(err, -ENOENT, "no fake target \"%s\"", target);
}

static int fake_prepare(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	struct fake_vol *v = vol_of(m->target);

	note("prepare %s", m->target);
	if (is(fk.fail_prepare, m->target))
		return vss_error_set(err, -EIO, "fake prepare of %s failed", m->target);
	if (v) {
		m->volume = v->name;
		m->gate = &v->gate;
		m->freeze_dir = v->dir;
		m->freeze_loop = v->loop;
	}
	/* "u1", "u2": nothing holds them still (as a thin LV) */
	if (m->target[0] == 'u')
		m->own_instant = strcmp(m->target, "u1") == 0 ? "own u1" : "own u2";
	fk.prepared++;
	return 0;
}

/* What went against the coordinator's contract, seen on vssd's threads
 * (where the test cannot fail at once): nothing_left() fails on it. */
static const char *violation;

static void expect(bool ok, const char *what)
{
	if (!ok && !violation)
		violation = what;
}

static int fake_commit(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	/* The set's instant: its gate closed, its filesystem frozen. */
	if (m->gate)
		expect(pthread_rwlock_tryrdlock(m->gate) == EBUSY, "commit with its gate open");
	if (m->freeze_dir)
		expect(fk.frozen > 0, "commit with its filesystem thawed");
	expect(m->prepared && !m->taken, "commit of a member not prepared");
	expect(fk.holds_done == fk.holds_wanted, "commit before every member was held");
	/* Its instant is the set's only while nothing else was made or resumed. */
	if (m->own_instant)
		expect(fk.made == 0 && fk.suspended == fk.holds_wanted,
		       "a member with its own instant committed after another");
	note("commit %s", m->target);
	if (is(fk.fail_commit, m->target))
		return vss_error_set(err, -EIO, "fake commit of %s failed", m->target);
	fk.made++;
	return 0;
}

static void fake_abort(struct vss_service *svc, struct svc_member *m)
{
	note("abort %s%s", m->target, m->taken ? " taken" : "");
	if (m->taken)
		fk.made--;
	m->taken = false;
	fk.prepared--;
}

static int fake_adopt(struct vss_service *svc, struct svc_member *m, struct svc_shadow *sh,
		      struct vss_error *err)
{
	note("adopt %s", m->target);
	fk.prepared--;
	sh->origin = strdup(m->target);
	if (is(fk.fail_adopt, m->target))
		return vss_error_set(err, -EIO, "fake adopt of %s failed", m->target);
	return 0;
}

static void fake_location(struct vss_service *svc, const struct svc_shadow *sh, char *out,
			  size_t len)
{
	snprintf(out, len, "fake:%s", sh->rec.id);
}

static int fake_remove(struct vss_service *svc, struct svc_shadow *sh, struct vss_error *err)
{
	note("remove %s", sh->rec.target);
	fk.made--;
	return 0;
}

static json_t *fake_paths(struct vss_service *svc)
{
	return json_array();
}

static const struct vss_provider_ops fake_provider = {
	.name = "fake", .id = "00000000-0000-4000-8000-000000000001", .version = "1",
	.kind = "software", .priority = 100, .caps = 0, .catalog_attr = 0,
	.shadow_attr = "differential",
	.supports = fake_supports, .prepare = fake_prepare, .commit = fake_commit,
	.abort = fake_abort, .adopt = fake_adopt, .location = fake_location,
	.remove = fake_remove, .paths = fake_paths,
};

/* A provider that holds its targets itself ("h1", "h2"), as LVM's suspends
 * an LV: every hold after the freezes and before the first commit, commit
 * resuming its own, unhold resuming what a failed commit left. */
static int held_supports(struct vss_service *svc, const char *target, struct vss_error *err)
{
	if (target[0] == 'h' && (target[1] == '1' || target[1] == '2') && !target[2])
		return 0;
	return vss_error_set(err, -ENOENT, "no held target \"%s\"", target);
}

static int held_prepare(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	int rc = fake_prepare(svc, m, err);

	if (rc == 0) {
		m->hold_dev = makedev(250, (unsigned int)(m->target[1] - '0'));
		fk.holds_wanted++;
	}
	return rc;
}

static int held_hold(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	note("hold %s", m->target);
	expect(fk.guards > 0, "hold without a guardian");
	if (is(fk.fail_hold, m->target))
		return vss_error_set(err, -EBUSY, "fake hold of %s failed", m->target);
	fk.suspended++;
	fk.holds_done++;
	return 0;
}

static int held_commit(struct vss_service *svc, struct svc_member *m, struct vss_error *err)
{
	int rc = fake_commit(svc, m, err);

	/* lvcreate resumes the LV it snapshots, whether or not it succeeds. */
	fk.suspended--;
	m->priv = (void *)1;
	return rc;
}

static void held_unhold(struct vss_service *svc, struct svc_member *m)
{
	bool resumed = m->priv == NULL;

	note("unhold %s%s", m->target, resumed ? " resumed" : "");
	if (resumed)
		fk.suspended--;
	m->priv = NULL;
}

static const struct vss_provider_ops held_provider = {
	.name = "held", .id = "00000000-0000-4000-8000-000000000002", .version = "1",
	.kind = "software", .priority = 50, .caps = 0, .catalog_attr = 0,
	.shadow_attr = "plex",
	.supports = held_supports, .prepare = held_prepare, .hold = held_hold,
	.commit = held_commit, .unhold = held_unhold,
	.abort = fake_abort, .adopt = fake_adopt, .location = fake_location,
	.remove = fake_remove, .paths = fake_paths,
};

/* The live provider is only ever taken with allow_live. */
static const struct vss_provider_ops *const fake_providers[] = {
	&fake_provider, &held_provider, &svc_provider_live, NULL
};

/* ---- a fake freezer ---- */

static const char *dir_name(const char *dir)
{
	return strrchr(dir, '/') + 1;
}

static int fz_guard(struct vss_service *svc, const char *const *dirs, size_t n,
		    const dev_t *held, size_t nheld, void **guard,
		    struct vss_error *err)
{
	note(nheld ? "guard %zu held %zu" : "guard %zu", n, nheld);
	expect(nheld == (size_t)fk.holds_wanted, "a held device the guardian does not know");
	if (fk.fail_guard)
		return vss_error_set(err, -EIO, "fake guardian did not start");
	fk.guards++;
	*guard = &fk;
	return 0;
}

static int fz_freeze(const char *dir, const char *loop, const char *volume,
		     struct vss_error *err)
{
	note("freeze %s", dir_name(dir));
	expect(strstr(loop, volume) != NULL, "frozen without its volume's loop device");
	if (is(fk.fail_freeze, dir_name(dir)))
		return vss_error_set(err, -ESTALE, "%s is no longer mounted from volume %s", dir,
				     volume);
	fk.frozen++;
	if (fk.freeze_sleep_ms)
		usleep(fk.freeze_sleep_ms * 1000u);
	return 0;
}

static int fz_thaw(const char *dir, struct vss_error *err)
{
	note("thaw %s", dir_name(dir));
	fk.frozen--;
	return 0;
}

static int fz_release(void *guard)
{
	expect(guard == &fk, "released another guard");
	note("release");
	fk.guards--;
	return fk.guard_times_out ? -ETIMEDOUT : 0;
}

static const struct svc_freezer_ops fake_freezer = {
	.guard = fz_guard, .freeze = fz_freeze, .thaw = fz_thaw, .release = fz_release,
};

static void fz_settle(struct vss_service *svc, const char *const *dirs,
		      const char *const *loops, bool *switched, size_t n, bool on)
{
	(void)svc;
	(void)dirs;
	/* Each loop device is switched once by the first settle and given
	 * back once after the thaw, and only if this set switched it. */
	for (size_t i = 0; i < n; i++) {
		expect(loops[i] && strncmp(loops[i], "loop-", 5) == 0,
		       "settled without the member's loop device");
		if (on && !switched[i]) {
			note("direct %s", loops[i]);
			switched[i] = true;
		} else if (!on && switched[i]) {
			note("cached %s", loops[i]);
			switched[i] = false;
		}
	}
	note("settle %s", on ? "on" : "off");
	if (on && fk.settle_sleep_ms)
		usleep(fk.settle_sleep_ms * 1000u);
}

/* The same, settling too (the real one's steps around the guardian). */
static const struct svc_freezer_ops settling_freezer = {
	.settle = fz_settle, .guard = fz_guard, .freeze = fz_freeze, .thaw = fz_thaw,
	.release = fz_release,
};

/* ---- a fake transport: no devices are served ---- */

static int tr_start(struct vss_transport *t, const char *root, struct vss_error *err)
{
	mkdir(root, 0755);
	return 0;
}

static int tr_add(struct vss_transport *t, enum vss_device_kind kind, const char *name,
		  uint64_t size, const struct vss_device_ops *ops, void *ctx,
		  struct vss_error *err)
{
	return vss_error_set(err, -EOPNOTSUPP, "no devices here");
}

static int tr_remove(struct vss_transport *t, enum vss_device_kind kind, const char *name)
{
	return -ENOENT;
}

static unsigned int tr_open_count(struct vss_transport *t, enum vss_device_kind kind,
				  const char *name)
{
	return 0;
}

static void tr_stop(struct vss_transport *t)
{
	free(t);
}

static const struct vss_transport_ops fake_transport_ops = {
	.name = "fake", .start = tr_start, .add = tr_add, .remove = tr_remove,
	.open_count = tr_open_count, .stop = tr_stop,
};

/* ---- fake writers, on the writer library ---- */

struct fake_writer {
	char name[8];
	char class_id[37];
	char instance[37];
	bool back_end;                       /* freezes after the front-end ones */
	enum vss_writer_event_type fail_at;  /* 0: none */
	enum vss_writer_event_type sleep_at;
	unsigned int sleep_ms;
	/* post_snapshot in a backup: 1 sets its backup metadata, 2 also
	 * selects a component of its own (which vssd refuses) */
	int post_meta;
	volatile bool frozen;
	struct vss_writer *w;
	pthread_t thread;
	volatile sig_atomic_t stop;
};

static struct fake_writer writers[2];
static char dir[] = "/tmp/vss-test-set-XXXXXX";
static char run_dir[64];
static struct vss_service *svc;

static int on_event(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct fake_writer *fw = data;

	struct vss_writer_restore_info ri;

	if (vss_writer_restore_info(w, &ri) == 0)
		note("%s %s %s:%zu", fw->name, ev->name, ri.backup_id, ri.component_count);
	else
		note("%s %s", fw->name, ev->name);
	if (ev->type == fw->sleep_at)
		usleep(fw->sleep_ms * 1000u);
	if (ev->type == VSS_WE_FREEZE)
		fw->frozen = true;
	if (ev->type == VSS_WE_THAW || ev->type == VSS_WE_ABORT)
		fw->frozen = false;
	if (ev->type == fw->fail_at) {
		vss_writer_set_failure(w, VSS_WF_RETRYABLE, "%s fails at %s", fw->name, ev->name);
		return -EIO;
	}
	if (ev->type == VSS_WE_POST_SNAPSHOT && fw->post_meta && ev->components) {
		char meta[32];

		snprintf(meta, sizeof(meta), "meta of %s", fw->name);
		assert_int_equal(vss_bcd_set_backup_metadata(vss_bcd_component_at(
			ev->components, 0), meta, NULL), 0);
		if (fw->post_meta == 2)
			assert_int_equal(vss_bcd_add_component(ev->components,
				&(struct vss_bcd_component_info){ .class_id = fw->class_id,
				.instance_id = fw->instance, .name = "extra" }, NULL, NULL), 0);
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct fake_writer *fw = arg;
	struct vss_error err;

	vss_writer_run(fw->w, &fw->stop, &err);
	return NULL;
}

static void writer_start(struct fake_writer *fw)
{
	static const struct vss_writer_handlers h = {
		.size = sizeof(h),
		.identify = on_event, .prepare_backup = on_event, .prepare_snapshot = on_event,
		.freeze = on_event, .thaw = on_event, .post_snapshot = on_event,
		.backup_complete = on_event, .abort = on_event,
		.pre_restore = on_event, .post_restore = on_event,
	};
	struct vss_wmd *wmd;
	struct vss_error err;
	uuid_t u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, fw->class_id);
	uuid_generate_random(u);
	uuid_unparse_lower(u, fw->instance);
	assert_int_equal(vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = fw->name, .class_id = fw->class_id, .instance_id = fw->instance,
		.usage = VSS_UT_USER_DATA,
		.source = fw->back_end ? VSS_ST_TRANSACTED_DB : VSS_ST_OTHER }, &wmd, &err), 0);
	assert_int_equal(vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_FILE_GROUP, .name = "data", .selectable = true }, &err), 0);
	assert_int_equal(vss_wmd_add_file_set(wmd, NULL, "data", &(struct vss_wmd_file_set){
		.kind = VSS_FSK_FILES, .path = "/data", .file_spec = "*", .recursive = true,
		.backup_type_mask = VSS_FSBT_DEFAULT }, &err), 0);
	fw->stop = 0;
	fw->frozen = false;
	if (vss_writer_open(&(struct vss_writer_options){ .size = sizeof(struct vss_writer_options),
						       .run_dir = run_dir }, wmd, &h, fw,
			    &fw->w, &err) < 0)
		fail_msg("writer %s: %s", fw->name, err.msg);
	vss_wmd_free(wmd);
	assert_int_equal(pthread_create(&fw->thread, NULL, writer_main, fw), 0);
}

static void writer_stop(struct fake_writer *fw)
{
	fw->stop = 1;
	pthread_join(fw->thread, NULL);
	vss_writer_close(fw->w);
	fw->w = NULL;
}

/* ---- the requester ---- */

static struct vss_client *connect_requester(void)
{
	struct vss_client *c;
	struct vss_error err;

	if (vss_client_open(run_dir, &c, &err) < 0)
		fail_msg("connect: %s", err.msg);
	return c;
}

/* The test's requester: closed by the teardown if a test failed first. */
static struct vss_client *req;

static struct vss_client *requester(void)
{
	return req = connect_requester();
}

static void requester_close(void)
{
	vss_client_close(req);
	req = NULL;
}

/* One request: its rc; the reply in *@res if asked (else dropped), the
 * error in *@err. */
static int call(struct vss_client *c, const char *op, json_t *args, json_t **res,
		struct vss_error *err)
{
	json_t *r = NULL;
	int rc = vss_client_call_json(c, op, args, &r, err);

	if (res)
		*res = r;
	else
		json_decref(r);
	return rc;
}

static void call_ok(struct vss_client *c, const char *op, json_t *args, json_t **res)
{
	struct vss_error err = { 0 };

	if (call(c, op, args, res, &err) < 0)
		fail_msg("%s: %s", op, err.msg);
}

/* Waits up to 5 s for the backup slot to be free (an abort on a closed
 * connection runs on vssd's side after the close). */
static void wait_slot_free(void)
{
	struct vss_client *c = connect_requester();
	int64_t until = mono_ms() + 5000;

	for (;;) {
		json_t *st = NULL;
		bool busy;

		call_ok(c, "status", NULL, &st);
		busy = !json_is_null(json_object_get(st, "backup")) ||
		       json_array_size(json_object_get(st, "held_sets")) > 0;
		json_decref(st);
		if (!busy)
			break;
		if (mono_ms() > until)
			fail_msg("the backup slot is still busy");
		usleep(20000);
	}
	vss_client_close(c);
}

/* Starts the two writers and waits until vssd lists both (it takes a
 * writer's connection once the reply to its registration went out). */
static void writers_up(void)
{
	struct vss_client *c = connect_requester();
	int64_t until = mono_ms() + 5000;

	for (size_t i = 0; i < 2; i++)
		writer_start(&writers[i]);
	for (;;) {
		json_t *r = NULL, *w;
		size_t i, n = 0;

		call_ok(c, "writers.list", NULL, &r);
		json_array_foreach(json_object_get(r, "writers"), i, w)
			for (size_t k = 0; k < 2; k++)
				n += strcmp(json_string_value(json_object_get(w, "instance")),
					    writers[k].instance) == 0;
		json_decref(r);
		if (n == 2)
			break;
		if (mono_ms() > until)
			fail_msg("the writers did not register");
		usleep(10000);
	}
	vss_client_close(c);
}

/* ---- what every test leaves ---- */

static int count_row(void *arg, const struct vss_catalog_shadow *s)
{
	(*(int *)arg)++;
	return 0;
}

static int listed(void)
{
	int n = 0;

	svc_lock(svc);
	for (struct svc_shadow *sh = svc->shadows; sh; sh = sh->next)
		n++;
	svc_unlock(svc);
	return n;
}

static void delete_shadows(void)
{
	svc_lock(svc);
	while (svc->shadows)
		svc_shadow_remove(svc, svc->shadows, NULL);
	svc_unlock(svc);
}

/* Nothing frozen, gated or half made; the only snapshots and catalog rows
 * are those of the @shadows listed; no writer frozen. */
/* @made of the @shadows listed are the fake provider's (the others read
 * live). */
static void nothing_left_of(int shadows, int made)
{
	int rows = 0;
	int64_t until = mono_ms() + 3000;

	if (violation)
		fail_msg("%s", violation);
	assert_int_equal(fk.frozen, 0);
	assert_int_equal(fk.suspended, 0);
	assert_int_equal(fk.guards, 0);
	assert_int_equal(fk.prepared, 0);
	for (size_t i = 0; i < sizeof(vols) / sizeof(vols[0]); i++) {
		assert_int_equal(pthread_rwlock_trywrlock(&vols[i].gate), 0);
		pthread_rwlock_unlock(&vols[i].gate);
	}
	assert_int_equal(listed(), shadows);
	assert_int_equal(fk.made, made);
	svc_lock(svc);
	assert_int_equal(vss_catalog_shadow_each(svc->cat, count_row, &rows, NULL), 0);
	svc_unlock(svc);
	assert_int_equal(rows, shadows);
	/* A writer that timed out finds its abort once it is done. */
	for (size_t i = 0; i < 2; i++)
		while (writers[i].w && writers[i].frozen) {
			if (mono_ms() > until)
				fail_msg("writer %s is still frozen", writers[i].name);
			usleep(10000);
		}
}

static void nothing_left(int shadows)
{
	nothing_left_of(shadows, shadows);
}

static int per_test_setup(void **state)
{
	memset(&fk, 0, sizeof(fk));
	violation = NULL;
	for (size_t i = 0; i < 2; i++) {
		writers[i].fail_at = writers[i].sleep_at = 0;
		writers[i].sleep_ms = 0;
		writers[i].post_meta = 0;
	}
	svc->freeze_limit_ms = 10000;
	svc->freezer = &fake_freezer;   /* whatever a failed test left */
	forget();
	return 0;
}

static int per_test_teardown(void **state)
{
	if (req)
		requester_close();
	for (size_t i = 0; i < 2; i++)
		if (writers[i].w)
			writer_stop(&writers[i]);
	wait_slot_free();
	delete_shadows();
	return 0;
}

/* ---- the coordinator alone ---- */

static int take(const char *const *targets, size_t n, struct vss_error *err)
{
	struct svc_set_params p = { .targets = targets, .n = n };
	struct svc_set *set = NULL;
	int rc;

	svc_lock(svc);
	rc = svc_set_take(svc, &p, &set, err);
	if (rc == 0) {
		assert_int_equal(set->n, n);
		for (size_t i = 0; i < n; i++)
			assert_ptr_equal(svc_shadow_find(svc, set->shadows[i]->rec.id),
					 set->shadows[i]);
	}
	svc_set_free(set);
	svc_unlock(svc);
	return rc;
}

static void set_of_two_at_one_instant(void **state)
{
	const char *t[] = { "a", "b" };
	struct vss_error err = { 0 };

	assert_int_equal(take(t, 2, &err), 0);
	assert_string_equal(events, "prepare a;prepare b;guard 2;freeze a;freeze b;commit a;"
			    "commit b;thaw b;thaw a;release;adopt a;adopt b;");
	nothing_left(2);
}

static void held_members_one_instant(void **state)
{
	const char *t[] = { "a", "h1", "h2" };
	struct vss_error err = { 0 };

	assert_int_equal(take(t, 3, &err), 0);
	/* Frozen, then held, all before the first commit; thawed after. */
	assert_string_equal(events, "prepare a;prepare h1;prepare h2;guard 1 held 2;freeze a;"
			    "hold h1;hold h2;commit a;commit h1;commit h2;unhold h2;unhold h1;"
			    "thaw a;release;adopt a;adopt h1;adopt h2;");
	nothing_left(3);
}

/* A member nothing holds commits first, while the others are still held,
 * frozen and gated: one instant. */
static void own_instant_commits_first(void **state)
{
	const char *t[] = { "h1", "a", "u1", "plain" };
	struct vss_error err = { 0 };

	assert_int_equal(take(t, 4, &err), 0);
	assert_string_equal(events, "prepare h1;prepare a;prepare u1;prepare plain;"
			    "guard 1 held 1;freeze a;hold h1;commit u1;commit a;commit plain;"
			    "commit h1;unhold h1;thaw a;release;adopt h1;adopt a;adopt u1;"
			    "adopt plain;");
	nothing_left(4);
}

/* Two would be two instants: refused before anything is frozen. */
static void two_own_instants_refused(void **state)
{
	const char *t[] = { "u1", "a", "u2" };
	struct vss_error err = { 0 };

	assert_int_equal(take(t, 3, &err), -EINVAL);
	assert_string_equal(err.msg, "u1 (own u1) and u2 (own u2) cannot be in one set: "
			    "neither can be held still while the other is snapshotted, so the "
			    "set would be two instants, not one; take them in separate sets (a "
			    "set takes at most one thin LV)");
	assert_string_equal(events, "prepare u1;prepare a;prepare u2;abort u1;abort a;abort u2;");
	nothing_left(0);
}

static void held_member_fails_at_commit(void **state)
{
	const char *t[] = { "h1", "h2" };
	struct vss_error err = { 0 };

	fk.fail_commit = "h1";
	assert_int_equal(take(t, 2, &err), -EIO);
	/* h2 never committed: still held, resumed by unhold. */
	assert_string_equal(events, "prepare h1;prepare h2;guard 0 held 2;hold h1;hold h2;"
			    "commit h1;unhold h2 resumed;unhold h1;release;abort h1;abort h2;");
	nothing_left(0);
}

static void hold_fails(void **state)
{
	const char *t[] = { "a", "h1", "h2" };
	struct vss_error err = { 0 };

	fk.fail_hold = "h2";
	assert_int_equal(take(t, 3, &err), -EBUSY);
	assert_string_equal(events, "prepare a;prepare h1;prepare h2;guard 1 held 2;freeze a;"
			    "hold h1;hold h2;unhold h1 resumed;thaw a;release;abort a;abort h1;"
			    "abort h2;");
	nothing_left(0);
}

static void provider_fails_at_prepare(void **state)
{
	const char *t[] = { "a", "b" };
	struct vss_error err = { 0 };

	fk.fail_prepare = "b";
	assert_int_equal(take(t, 2, &err), -EIO);
	assert_string_equal(err.msg, "fake prepare of b failed");
	/* Nothing was frozen: the freeze comes after every prepare. */
	assert_string_equal(events, "prepare a;prepare b;abort a;");
	nothing_left(0);
}

static void provider_fails_at_commit(void **state)
{
	const char *t[] = { "a", "b", "plain" };
	struct vss_error err = { 0 };

	fk.fail_commit = "b";
	assert_int_equal(take(t, 3, &err), -EIO);
	assert_string_equal(events, "prepare a;prepare b;prepare plain;guard 2;freeze a;"
			    "freeze b;commit a;commit b;thaw b;thaw a;release;abort a taken;"
			    "abort b;abort plain;");
	nothing_left(0);
}

/* With allow_live a member whose provider fails is read live, the others
 * go on, and the member says why; "/" is a path, which live takes. */
static void provider_fails_read_live(const char *step)
{
	const char *t[] = { "a", "/" };
	struct svc_set_params p = { .targets = t, .n = 2, .allow_live = true };
	struct svc_set *set = NULL;
	struct vss_error err = { 0 };
	char why[160];

	svc_lock(svc);
	assert_int_equal(svc_set_take(svc, &p, &set, &err), 0);
	assert_string_equal(set->shadows[0]->prov->name, "fake");
	assert_null(set->m[0].fallback);
	assert_string_equal(set->shadows[1]->prov->name, "live");
	snprintf(why, sizeof(why), "/: provider fake failed at %s (fake %s of / failed): read "
		 "live instead (--allow-live)", step, step);
	assert_string_equal(set->m[1].fallback, why);
	svc_set_free(set);
	svc_unlock(svc);
	nothing_left_of(2, 1);
}

static void provider_fails_at_prepare_read_live(void **state)
{
	fk.fail_prepare = "/";
	provider_fails_read_live("prepare");
	assert_string_equal(events, "prepare a;prepare /;guard 1;freeze a;commit a;thaw a;"
			    "release;adopt a;");
}

static void provider_fails_at_commit_read_live(void **state)
{
	fk.fail_commit = "/";
	provider_fails_read_live("commit");
	/* Its failed commit is aborted after the thaw, nothing of it made. */
	assert_string_equal(events, "prepare a;prepare /;guard 1;freeze a;commit a;commit /;"
			    "thaw a;release;abort /;adopt a;");
}

/* Without allow_live the same failure fails the set (above); a failure
 * that live cannot take over (not a path) fails it too. */
static void provider_fails_live_cannot_take_it(void **state)
{
	const char *t[] = { "a", "b" };
	struct svc_set_params p = { .targets = t, .n = 2, .allow_live = true };
	struct svc_set *set = NULL;
	struct vss_error err = { 0 };

	fk.fail_commit = "b";
	svc_lock(svc);
	assert_int_equal(svc_set_take(svc, &p, &set, &err), -EIO);
	svc_unlock(svc);
	assert_string_equal(err.msg, "fake commit of b failed");
	nothing_left(0);
}

static void filesystem_refuses_its_freeze(void **state)
{
	const char *t[] = { "a", "b" };
	struct vss_error err = { 0 };

	fk.fail_freeze = "b";
	assert_int_equal(take(t, 2, &err), -ESTALE);
	assert_string_equal(events, "prepare a;prepare b;guard 2;freeze a;freeze b;thaw a;"
			    "release;abort a;abort b;");
	nothing_left(0);
}

static void guardian_does_not_start(void **state)
{
	const char *t[] = { "a" };
	struct vss_error err = { 0 };

	fk.fail_guard = true;
	assert_int_equal(take(t, 1, &err), -EIO);
	assert_string_equal(events, "prepare a;guard 1;abort a;");
	nothing_left(0);
}

/* The guardian thawed on its own: what was taken cannot be trusted. */
static void guardian_thawed_first(void **state)
{
	const char *t[] = { "a", "b" };
	struct vss_error err = { 0 };

	fk.guard_times_out = true;
	assert_int_equal(take(t, 2, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "stayed frozen longer than"));
	assert_true(before("release", "abort a taken"));
	assert_true(logged("abort b taken"));
	nothing_left(0);
}

static void freeze_past_its_bound(void **state)
{
	const char *t[] = { "a" };
	struct vss_error err = { 0 };

	svc->freeze_limit_ms = 50;
	fk.freeze_sleep_ms = 120;
	assert_int_equal(take(t, 1, &err), -ETIMEDOUT);
	assert_string_equal(events, "prepare a;guard 1;freeze a;commit a;thaw a;release;"
			    "abort a taken;");
	nothing_left(0);
}

static void settled_before_and_after_the_guardian(void **state)
{
	const char *t[] = { "a" };
	struct vss_error err = { 0 };
	svc->freezer = &settling_freezer;
	assert_int_equal(take(t, 1, &err), 0);
	assert_string_equal(events, "prepare a;direct loop-a;settle on;guard 1;settle on;"
			    "freeze a;commit a;thaw a;release;cached loop-a;settle off;adopt a;");
	/* A settle past half the guardian's bound: nothing is frozen after
	 * the bound may have passed. */
	forget();
	svc->freeze_limit_ms = 100;
	fk.settle_sleep_ms = 60;
	assert_int_equal(take(t, 1, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "aborted before freezing"));
	assert_false(logged("freeze a"));
	assert_true(before("release", "settle off"));
	assert_true(logged("cached loop-a"));
	nothing_left(1);            /* the first set's shadow */
}

static void provider_fails_at_adopt(void **state)
{
	const char *t[] = { "a", "b", "c" };
	struct vss_error err = { 0 };

	fk.fail_adopt = "b";
	assert_int_equal(take(t, 3, &err), -EIO);
	/* a's shadow was listed: removed; b's too; c never adopted: aborted. */
	assert_true(before("adopt b", "remove a"));
	assert_true(before("remove a", "remove b"));
	assert_true(before("remove b", "abort c taken"));
	assert_false(logged("adopt c"));
	nothing_left(0);
}

static void volume_twice_in_a_set(void **state)
{
	const char *t[] = { "a", "a" };
	struct vss_error err = { 0 };

	assert_int_equal(take(t, 2, &err), -EINVAL);
	assert_string_equal(err.msg, "volume a is in the set twice (a and a)");
	assert_string_equal(events, "prepare a;prepare a;abort a;abort a;");
	nothing_left(0);
}

static void nothing_to_freeze(void **state)
{
	const char *t[] = { "plain" };
	struct vss_error err = { 0 };

	assert_int_equal(take(t, 1, &err), 0);
	assert_string_equal(events, "prepare plain;commit plain;adopt plain;");
	nothing_left(1);
}

/* ---- a set across hosts: the steps it meets the other hosts at (set.h) ---- */

static struct {
	int fail_at;                   /* the step that fails, or -1 */
	int aborted;                   /* how often the other hosts were told to abort */
	int64_t deadline;              /* the deadline the freeze steps got */
} sy;

static int sync_step(void *ctx, const struct svc_set *set, enum svc_set_step step,
		     int64_t deadline_ms, struct vss_error *err)
{
	static const char *const names[] = { "prepared", "freeze", "frozen", "commit",
					     "committed", "thaw" };

	note("step %s", names[step]);
	/* Every host frozen before any commits: the freeze steps are bounded. */
	expect(step == SVC_SET_PREPARED ? deadline_ms == 0 : deadline_ms > mono_ms(),
	       "a step past the freeze bound, or without it");
	if (step != SVC_SET_PREPARED)
		sy.deadline = deadline_ms;
	if ((int)step == sy.fail_at)
		return vss_error_set(err, -EIO, "host b failed at %s", names[step]);
	return 0;
}

static void sync_abort(void *ctx, const struct svc_set *set, const char *why)
{
	note("others abort");
	sy.aborted++;
}

#define OTHER_SET "0b8f0d5e-8c2e-4a51-9d0e-1f2a3b4c5d6e"

/* Takes a set of @targets meeting the other hosts; its ID is OTHER_SET. */
static int take_across(const char *const *targets, size_t n, struct vss_error *err)
{
	struct svc_set_sync sync = { .step = sync_step, .abort = sync_abort,
				     .set_id = OTHER_SET, .coordinator = "hosta" };
	struct svc_set_params p = { .targets = targets, .n = n, .sync = &sync };
	struct svc_set *set = NULL;
	int rc;

	svc_lock(svc);
	rc = svc_set_take(svc, &p, &set, err);
	if (rc == 0) {
		assert_string_equal(set->id, OTHER_SET);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(set->shadows[i]->rec.coordinator, "hosta");
	}
	svc_set_free(set);
	svc_unlock(svc);
	return rc;
}

static void set_across_hosts_meets_them_at_each_step(void **state)
{
	const char *t[] = { "a", "b" };
	struct vss_error err = { 0 };

	sy.fail_at = -1;
	sy.aborted = 0;
	assert_int_equal(take_across(t, 2, &err), 0);
	/* The others freeze with this host, commit once all are frozen, thaw
	 * once all have committed. */
	assert_string_equal(events, "prepare a;prepare b;step prepared;guard 2;step freeze;"
			    "freeze a;freeze b;step frozen;step commit;commit a;commit b;"
			    "step committed;step thaw;thaw b;thaw a;release;adopt a;adopt b;");
	assert_true(sy.deadline <= mono_ms() + (int64_t)svc->freeze_limit_ms);
	assert_int_equal(sy.aborted, 0);
	nothing_left(2);
}

/* Another host failing at any step aborts the set here (nothing of it
 * commits once a step before the commit failed), tells the others once
 * this host is thawed, and leaves nothing frozen, gated or made. */
static void another_host_fails_at_each_step(void **state)
{
	static const char *const want[] = {
		"prepare a;step prepared;others abort;abort a;",
		"prepare a;step prepared;guard 1;step freeze;release;others abort;abort a;",
		"prepare a;step prepared;guard 1;step freeze;freeze a;step frozen;thaw a;"
		"release;others abort;abort a;",
		"prepare a;step prepared;guard 1;step freeze;freeze a;step frozen;step commit;"
		"thaw a;release;others abort;abort a;",
		"prepare a;step prepared;guard 1;step freeze;freeze a;step frozen;step commit;"
		"commit a;step committed;thaw a;release;others abort;abort a taken;",
		"prepare a;step prepared;guard 1;step freeze;freeze a;step frozen;step commit;"
		"commit a;step committed;step thaw;thaw a;release;others abort;abort a taken;",
	};
	const char *t[] = { "a" };

	for (int step = SVC_SET_PREPARED; step <= SVC_SET_THAW; step++) {
		struct vss_error err = { 0 };

		forget();
		sy.fail_at = step;
		sy.aborted = 0;
		assert_int_equal(take_across(t, 1, &err), -EIO);
		assert_non_null(strstr(err.msg, "host b failed"));
		assert_string_equal(events, want[step]);
		assert_int_equal(sy.aborted, 1);
		nothing_left(0);
	}
}

/* Every target on other hosts: nothing here to prepare, freeze or adopt,
 * the steps all the same. */
static void only_other_hosts_targets(void **state)
{
	struct vss_error err = { 0 };

	sy.fail_at = -1;
	assert_int_equal(take_across(NULL, 0, &err), 0);
	assert_string_equal(events, "step prepared;step freeze;step frozen;step commit;"
			    "step committed;step thaw;");
	nothing_left(0);
}

/* ---- a backup through vssd, with writers ---- */

static json_t *targets(const char *t)
{
	return json_pack("{s:[s]}", "targets", t);
}

static void whole_backup(void **state)
{
	struct vss_client *c;
	json_t *r = NULL;

	writers_up();
	c = requester();
	call_ok(c, "backup.begin", NULL, NULL);
	call_ok(c, "backup.prepare", NULL, NULL);
	call_ok(c, "shadow.create", targets("a"), &r);
	assert_false(json_is_true(json_object_get(r, "complete")));
	json_decref(r);
	call_ok(c, "backup.complete", NULL, NULL);
	requester_close();
	/* Writers: front-end freezes first, thaws last; the set inside. */
	assert_true(before("w1 prepare_snapshot", "w1 freeze"));
	assert_true(before("w1 freeze", "w2 freeze"));
	assert_true(before("w2 freeze", "freeze a"));
	assert_true(before("freeze a", "commit a"));
	assert_true(before("commit a", "thaw a"));
	assert_true(before("thaw a", "w2 thaw"));
	assert_true(before("w2 thaw", "w1 thaw"));
	assert_true(before("w1 thaw", "w1 post_snapshot"));
	assert_true(before("w1 post_snapshot", "w1 backup_complete"));
	assert_false(logged("abort"));
	nothing_left(1);
}

/* At post_snapshot a writer sets its backup metadata: the requester gets
 * it with the set and at backup.complete; one that changes which
 * components are selected is refused and failed, its entry as it was,
 * the set kept. */
static void post_snapshot_metadata(void **state)
{
	struct vss_client *c;
	json_t *r = NULL, *w;
	bool found = false;
	const char *doc;
	size_t i;

	writers[0].post_meta = 1;
	writers[1].post_meta = 2;
	writers_up();
	c = requester();
	call_ok(c, "backup.begin", NULL, NULL);
	call_ok(c, "backup.prepare", NULL, NULL);
	call_ok(c, "shadow.create", targets("a"), &r);
	doc = json_string_value(json_object_get(r, "components"));
	assert_non_null(doc);
	assert_non_null(strstr(doc, "\"backup_metadata\": \"meta of w1\""));
	assert_null(strstr(doc, "meta of w2"));
	assert_null(strstr(doc, "extra"));
	json_array_foreach(json_object_get(r, "writers"), i, w)
		if (strcmp(json_string_value(json_object_get(w, "name")), "w2") == 0) {
			found = true;
			assert_string_equal(json_string_value(json_object_get(w, "state_name")),
					    "failed_at_post_snapshot");
			assert_non_null(strstr(json_string_value(json_object_get(
				w, "last_error")), "returned a backup components document that was "
					   "refused"));
		}
	assert_true(found);
	json_decref(r);
	assert_int_equal(listed(), 1);
	call_ok(c, "backup.complete", NULL, &r);
	assert_non_null(strstr(json_string_value(json_object_get(r, "components")),
			       "\"backup_metadata\": \"meta of w1\""));
	json_decref(r);
	requester_close();
	nothing_left(1);
}

/* The refused transitions: nothing happens, the backup goes on. */
static void refused_transitions(void **state)
{
	struct vss_error err = { 0 };
	struct vss_client *c;
	json_t *r = NULL;
	char set[37];

	writers_up();
	c = requester();
	call_ok(c, "backup.begin", NULL, NULL);
	/* backup_complete only for a set taken. */
	assert_int_equal(call(c, "backup.complete", NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no set was taken in this backup"));
	assert_false(logged("backup_complete"));
	call_ok(c, "backup.prepare", NULL, NULL);
	assert_int_equal(call(c, "backup.complete", json_pack("{s:b}", "succeeded", 0), NULL,
			      &err), -EINVAL);
	assert_false(logged("backup_complete"));
	call_ok(c, "shadow.create", targets("a"), &r);
	snprintf(set, sizeof(set), "%s", json_string_value(json_object_get(r, "set")));
	json_decref(r);
	/* One set per backup; no preparing again once it is taken. */
	assert_int_equal(call(c, "shadow.create", targets("b"), NULL, &err), -EBUSY);
	assert_false(logged("prepare b"));
	assert_int_equal(call(c, "backup.prepare", NULL, NULL, &err), -EBUSY);
	/* A backup's set is completed with the backup, not with set.complete. */
	assert_int_equal(call(c, "set.complete", json_pack("{s:s}", "set", set), NULL, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "backup.complete"));
	assert_int_equal(listed(), 1);
	call_ok(c, "backup.complete", NULL, NULL);
	assert_true(logged("w1 backup_complete"));
	requester_close();
	nothing_left(1);
}

static void writer_fails_at_freeze(void **state)
{
	struct vss_error err = { 0 };
	struct vss_client *c;

	writers[1].fail_at = VSS_WE_FREEZE;
	writers_up();
	c = requester();
	call_ok(c, "backup.begin", NULL, NULL);
	assert_int_equal(call(c, "shadow.create", targets("a"), NULL, &err), -EIO);
	assert_non_null(strstr(err.msg, "writer w2 failed at freeze"));
	assert_non_null(strstr(err.msg, "the set was aborted"));
	/* The set was never taken; every writer got abort; the backup is over. */
	assert_false(logged("prepare a"));
	assert_true(before("w2 freeze", "w1 abort"));
	assert_true(logged("w2 abort"));
	assert_int_equal(call(c, "backup.complete", NULL, NULL, &err), -ENOENT);
	requester_close();
	nothing_left(0);
}

static void provider_fails_inside_a_backup(void **state)
{
	struct vss_error err = { 0 };
	struct vss_client *c;

	fk.fail_commit = "a";
	writers_up();
	c = requester();
	call_ok(c, "backup.begin", NULL, NULL);
	assert_int_equal(call(c, "shadow.create", targets("a"), NULL, &err), -EIO);
	assert_true(before("commit a", "thaw a"));
	assert_true(before("thaw a", "w1 abort"));
	assert_false(logged("w1 thaw"));
	requester_close();
	nothing_left(0);
}

/*
 * A writer's thaw outlasts the freeze-to-thaw window: the set is deleted.
 * The window is 1 s, not less: on a loaded 2-core machine the freezes and
 * commits before the thaw must fit in it, or the set fails at another step.
 */
static void thaw_runs_out_of_the_window(void **state)
{
	struct vss_error err = { 0 };
	struct vss_client *c;

	writers[1].sleep_at = VSS_WE_THAW;
	writers[1].sleep_ms = 2000;
	writers_up();
	c = requester();
	call_ok(c, "backup.begin", json_pack("{s:i}", "timeout_ms", 1000), NULL);
	assert_int_equal(call(c, "shadow.create", targets("a"), NULL, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "failed at thaw"));
	assert_true(before("commit a", "w2 thaw"));
	assert_true(before("w2 thaw", "remove a"));
	assert_true(logged("w1 abort"));
	assert_false(logged("w1 thaw"));
	requester_close();
	nothing_left(0);
}

/* The requester goes away after @steps requests: its backup is aborted. */
static void goes_away_after(int steps)
{
	struct vss_client *c;

	writers_up();
	c = requester();
	call_ok(c, "backup.begin", NULL, NULL);
	if (steps > 1)
		call_ok(c, "backup.prepare", NULL, NULL);
	if (steps > 2)
		call_ok(c, "shadow.create", targets("a"), NULL);
	requester_close();
	wait_slot_free();
	assert_true(logged("w1 abort"));
	assert_true(logged("w2 abort"));
	assert_int_equal(logged("remove a"), steps > 2);
	nothing_left(0);
}

static void requester_goes_away_after_begin(void **state)
{
	goes_away_after(1);
}

static void requester_goes_away_after_prepare(void **state)
{
	goes_away_after(2);
}

static void requester_goes_away_with_its_shadows(void **state)
{
	goes_away_after(3);
}

/* ... and in the middle of shadow.create, while a writer freezes. */
static void requester_goes_away_while_frozen(void **state)
{
	struct vss_client *c;
	json_t *msg;
	int64_t until = mono_ms() + 5000;

	writers[0].sleep_at = VSS_WE_FREEZE;
	writers[0].sleep_ms = 300;
	writers_up();
	c = requester();
	call_ok(c, "backup.begin", NULL, NULL);
	msg = json_pack("{s:i, s:i, s:s, s:o}", "version", 1, "id", 99, "op", "shadow.create",
			"args", targets("a"));
	assert_int_equal(vss_proto_send(vss_client_fd(c), msg), 0);
	json_decref(msg);
	while (!logged("w1 freeze")) {
		if (mono_ms() > until)
			fail_msg("no freeze");
		usleep(5000);
	}
	requester_close();
	wait_slot_free();
	/* The request ran to its end, then the backup went with its requester. */
	assert_true(before("commit a", "w1 thaw"));
	assert_true(before("w1 post_snapshot", "w1 abort"));
	assert_true(logged("remove a"));
	nothing_left(0);
}

static void requester_silent_past_its_lease(void **state)
{
	struct vss_error err = { 0 };
	struct vss_client *c;

	writers_up();
	c = requester();
	call_ok(c, "backup.begin", json_pack("{s:i}", "lease_ms", 200), NULL);
	call_ok(c, "shadow.create", targets("a"), NULL);
	wait_slot_free();
	assert_true(before("w1 post_snapshot", "w1 abort"));
	assert_true(logged("remove a"));
	assert_int_equal(call(c, "backup.complete", NULL, NULL, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "lease"));
	requester_close();
	nothing_left(0);
}

/* shadow.create without a backup: a set of its own, complete at once or
 * held until set.complete, and deleted if its requester goes first. */
static void sets_outside_a_backup(void **state)
{
	struct vss_error err = { 0 };
	struct vss_client *c = requester();
	json_t *r = NULL;
	char set[37];

	call_ok(c, "shadow.create", targets("a"), &r);
	assert_true(json_is_true(json_object_get(r, "complete")));
	json_decref(r);
	call_ok(c, "shadow.create", json_pack("{s:[s], s:b}", "targets", "b", "hold", 1), &r);
	assert_false(json_is_true(json_object_get(r, "complete")));
	snprintf(set, sizeof(set), "%s", json_string_value(json_object_get(r, "set")));
	json_decref(r);
	call_ok(c, "set.complete", json_pack("{s:s}", "set", set), NULL);
	assert_int_equal(call(c, "set.complete", json_pack("{s:s}", "set", set), NULL, &err),
			 -ENOENT);
	call_ok(c, "shadow.create", json_pack("{s:[s], s:b}", "targets", "c", "hold", 1), NULL);
	requester_close();
	wait_slot_free();
	assert_true(logged("remove c"));
	nothing_left(2);
}

/* ---- restores ---- */

/* The components document of a backup: w1 under its own instance, w2
 * under another (it started again since), and a writer gone for good. */
static json_t *restore_begin_args(void)
{
	char *doc = NULL;
	json_t *args;

	assert_true(asprintf(&doc,
		"{\"format\": \"vss-backup-components\", \"version\": 1, \"backup_type\": "
		"\"full\", \"writers\": ["
		"{\"writer_class_id\": \"%s\", \"writer_instance_id\": \"%s\", "
		" \"components\": [{\"name\": \"data\", \"backup_succeeded\": true}]},"
		"{\"writer_class_id\": \"%s\", \"writer_instance_id\": "
		" \"0badc0de-0000-4000-8000-000000000002\", \"components\": [{\"name\": \"data\"}]},"
		"{\"writer_class_id\": \"0badc0de-0000-4000-8000-000000000003\", "
		" \"writer_instance_id\": \"0badc0de-0000-4000-8000-000000000004\", "
		" \"components\": [{\"name\": \"gone\"}]}]}",
		writers[0].class_id, writers[0].instance, writers[1].class_id) > 0);
	args = json_pack("{s:s}", "components", doc);
	free(doc);
	return args;
}

/* The "restore" argument: both writers' component "data" (@post: done). */
static json_t *restore_arg_of(bool post, const char *status)
{
	json_t *comps = json_array();

	for (size_t i = 0; i < 2; i++) {
		json_t *c = json_pack("{s:s, s:s, s:s, s:b, s:[{s:s, s:s, s:b, s:s}]}",
				      "writer_instance_id", writers[i].instance, "name", "data",
				      "method", "restore_if_can_replace", "original_location", 1,
				      "locations", "path", "/data", "file_spec", "*", "recursive", 1,
				      "destination", "/data");

		if (post)
			json_object_update_new(c, json_pack("{s:s, s:i}", "status", status,
							    "files", 2));
		json_array_append_new(comps, c);
	}
	return json_pack("{s:{s:s, s:o}}", "restore", "backup", "B1", "components", comps);
}

static void whole_restore(void **state)
{
	struct vss_client *c;
	json_t *r = NULL, *w, *lo;

	writers_up();
	c = requester();
	call_ok(c, "restore.begin", restore_begin_args(), &r);
	/* w1 by its instance, w2 by its class; the third has no writer now. */
	w = json_object_get(r, "writers");
	assert_int_equal(json_array_size(w), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(w, 1),
							      "backup_instance")),
			    "0badc0de-0000-4000-8000-000000000002");
	assert_string_equal(json_string_value(json_object_get(json_array_get(w, 1), "instance")),
			    writers[1].instance);
	lo = json_object_get(r, "left_out");
	assert_int_equal(json_array_size(lo), 1);
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(lo, 0), "why")),
			       "no writer of class 0badc0de-0000-4000-8000-000000000003"));
	json_decref(r);
	assert_true(logged("w1 identify") && logged("w2 identify"));
	assert_false(logged("pre_restore"));
	call_ok(c, "restore.prepare", restore_arg_of(false, NULL), NULL);
	assert_true(logged("w1 pre_restore B1:1") && logged("w2 pre_restore B1:1"));
	assert_false(logged("post_restore"));
	call_ok(c, "restore.complete", restore_arg_of(true, "all"), &r);
	assert_int_equal(json_array_size(json_object_get(r, "failures")), 0);
	json_decref(r);
	assert_true(before("w1 pre_restore", "w1 post_restore B1:1"));
	assert_true(logged("w2 post_restore B1:1"));
	assert_false(logged("abort"));
	requester_close();
	wait_slot_free();
	nothing_left(0);
}

static void writer_fails_at_pre_restore(void **state)
{
	struct vss_error err = { 0 };
	struct vss_client *c;

	writers[1].fail_at = VSS_WE_PRE_RESTORE;
	writers_up();
	c = requester();
	call_ok(c, "restore.begin", restore_begin_args(), NULL);
	assert_int_equal(call(c, "restore.prepare", restore_arg_of(false, NULL), NULL, &err),
			 -EIO);
	assert_non_null(strstr(err.msg, "writer w2 failed at pre_restore: w2 fails at "
			       "pre_restore"));
	assert_non_null(strstr(err.msg, "the restore was stopped before anything was restored"));
	/* Every writer gets abort (w1 may have let go of its data); the
	 * restore is over. */
	assert_true(before("w1 pre_restore", "w1 abort B1:1"));
	assert_true(logged("w2 abort B1:1"));
	assert_false(logged("post_restore"));
	assert_int_equal(call(c, "restore.complete", restore_arg_of(true, "all"), NULL, &err),
			 -ENOENT);
	requester_close();
	wait_slot_free();
	nothing_left(0);
}

static void writer_fails_at_post_restore(void **state)
{
	struct vss_client *c;
	json_t *r = NULL, *f, *w;
	size_t i;

	writers[1].fail_at = VSS_WE_POST_RESTORE;
	writers_up();
	c = requester();
	call_ok(c, "restore.begin", restore_begin_args(), NULL);
	call_ok(c, "restore.prepare", restore_arg_of(false, NULL), NULL);
	call_ok(c, "restore.complete", restore_arg_of(true, "failed"), &r);
	f = json_object_get(r, "failures");
	assert_int_equal(json_array_size(f), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(f, 0), "name")),
			    "w2");
	json_array_foreach(json_object_get(r, "writers"), i, w)
		if (strcmp(json_string_value(json_object_get(w, "name")), "w2") == 0) {
			assert_int_equal(json_integer_value(json_object_get(w, "state")),
					 VSS_WS_FAILED_AT_POST_RESTORE);
			assert_string_equal(json_string_value(json_object_get(w, "error_kind")),
					    "retryable");
		}
	json_decref(r);
	assert_true(logged("w1 post_restore"));
	assert_false(logged("abort"));
	requester_close();
	wait_slot_free();
	nothing_left(0);
}

static void requester_goes_away_during_a_restore(void **state)
{
	struct vss_client *c;

	writers_up();
	c = requester();
	call_ok(c, "restore.begin", restore_begin_args(), NULL);
	call_ok(c, "restore.prepare", restore_arg_of(false, NULL), NULL);
	requester_close();
	wait_slot_free();
	assert_true(before("w1 pre_restore", "w1 abort B1:1"));
	assert_true(before("w2 pre_restore", "w2 abort B1:1"));
	assert_false(logged("post_restore"));
	nothing_left(0);
}

/* Out of turn: refused, nothing reaches a writer, the session goes on. */
static void restore_refused_transitions(void **state)
{
	struct vss_error err = { 0 };
	struct vss_client *c;
	json_t *bad;

	writers_up();
	c = requester();
	assert_int_equal(call(c, "restore.prepare", restore_arg_of(false, NULL), NULL, &err),
			 -ENOENT);
	/* A backup's session is not a restore's. */
	call_ok(c, "backup.begin", NULL, NULL);
	assert_int_equal(call(c, "restore.prepare", restore_arg_of(false, NULL), NULL, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "is a backup, not a restore"));
	assert_int_equal(call(c, "restore.begin", restore_begin_args(), NULL, &err), -EBUSY);
	call_ok(c, "backup.abort", NULL, NULL);
	forget();
	call_ok(c, "restore.begin", restore_begin_args(), NULL);
	/* No post_restore without pre_restore. */
	assert_int_equal(call(c, "restore.complete", restore_arg_of(true, "all"), NULL, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "no pre_restore went out"));
	/* Nothing of a backup in a restore. */
	assert_true(call(c, "backup.prepare", NULL, NULL, &err) < 0);
	assert_true(call(c, "shadow.create", targets("a"), NULL, &err) < 0);
	assert_true(call(c, "backup.complete", NULL, NULL, &err) < 0);
	assert_false(logged("prepare a"));
	/* A component the session does not have, a path that is not one. */
	bad = restore_arg_of(false, NULL);
	json_object_set_new(json_array_get(json_object_get(json_object_get(bad, "restore"),
							   "components"), 0),
			    "name", json_string("other"));
	assert_int_equal(call(c, "restore.prepare", bad, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no component \"other\""));
	bad = restore_arg_of(false, NULL);
	json_object_set_new(json_object_get(bad, "restore"), "to", json_string("rel/dir"));
	assert_int_equal(call(c, "restore.prepare", bad, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "absolute path"));
	assert_false(logged("pre_restore"));
	assert_false(logged("backup_complete"));
	/* The restore went on all along. */
	call_ok(c, "restore.prepare", restore_arg_of(false, NULL), NULL);
	assert_int_equal(call(c, "restore.prepare", restore_arg_of(false, NULL), NULL, &err),
			 -EBUSY);
	call_ok(c, "restore.complete", restore_arg_of(true, "all"), NULL);
	assert_true(logged("w1 post_restore"));
	requester_close();
	wait_slot_free();
	nothing_left(0);
}

/* ---- the table itself, against the one in doc/service.md ---- */

static void transition_table(void **state)
{
	enum svc_backup_state CR = SVC_BACKUP_CREATED, GA = SVC_BACKUP_GATHERED,
		PR = SVC_BACKUP_PREPARED, SP = SVC_BACKUP_SNAP_PREPARE,
		SF = SVC_BACKUP_SNAP_FREEZE, SC = SVC_BACKUP_SNAP_COMMIT,
		ST = SVC_BACKUP_SNAP_THAW, SO = SVC_BACKUP_SNAP_POST, RE = SVC_BACKUP_READY,
		CO = SVC_BACKUP_COMPLETE, AB = SVC_BACKUP_ABORTED, RL = SVC_BACKUP_RELEASED,
		RG = SVC_RESTORE_GATHERED, RP = SVC_RESTORE_PRE, RF = SVC_RESTORE_FILES,
		RO = SVC_RESTORE_POST, RC = SVC_RESTORE_COMPLETE, N = SVC_BACKUP_STATES;
	const enum svc_backup_state allowed[][2] = {
		{ CR, GA }, { CR, SP }, { CR, AB }, { CR, RL },
		{ GA, PR }, { GA, SP }, { GA, AB },
		{ PR, PR }, { PR, SP }, { PR, AB },
		{ SP, SF }, { SP, AB }, { SF, SC }, { SF, AB }, { SC, ST }, { SC, AB },
		{ ST, SO }, { ST, AB }, { SO, RE }, { SO, AB },
		{ RE, CO }, { RE, AB }, { RE, RL },
		{ CO, RL }, { AB, RL },
		/* a restore */
		{ CR, RG }, { RG, RP }, { RG, AB }, { RP, RF }, { RP, AB }, { RF, RO },
		{ RF, AB }, { RO, RC }, { RO, AB }, { RC, RL },
	};

	assert_int_equal(RL + 1, N);
	for (enum svc_backup_state from = 0; from < N; from++)
		for (enum svc_backup_state to = 0; to < N; to++) {
			bool want = false;

			for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
				want |= allowed[i][0] == from && allowed[i][1] == to;
			if (svc_backup_may(from, to) != want)
				fail_msg("%s -> %s: %s", svc_backup_state_name(from),
					 svc_backup_state_name(to), want ? "refused" : "allowed");
		}
	/* Every state but the completes and the last two has a way to abort. */
	for (enum svc_backup_state s = 0; s < N; s++)
		assert_int_equal(svc_backup_may(s, AB), s != CO && s != RC && s != AB && s != RL);
	assert_false(svc_backup_may(N, CR));
}

/* ---- one vssd for them all ---- */

static int group_setup(void **state)
{
	struct vss_service_config cfg = { 0 };
	struct vss_transport *tr = calloc(1, sizeof(*tr));
	struct group *g = getgrgid(getgid());
	char state_dir[64];
	struct vss_error err;

	signal(SIGPIPE, SIG_IGN);
	assert_non_null(mkdtemp(dir));
	snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
	snprintf(run_dir, sizeof(run_dir), "%s/run", dir);
	for (size_t i = 0; i < sizeof(vols) / sizeof(vols[0]); i++) {
		pthread_rwlock_init(&vols[i].gate, NULL);
		snprintf(vols[i].dir, sizeof(vols[i].dir), "/mnt/%s", vols[i].name);
		snprintf(vols[i].loop, sizeof(vols[i].loop), "loop-%s", vols[i].name);
	}
	snprintf(writers[0].name, sizeof(writers[0].name), "w1");
	snprintf(writers[1].name, sizeof(writers[1].name), "w2");
	writers[1].back_end = true;
	tr->ops = &fake_transport_ops;
	cfg.state_dir = state_dir;
	cfg.run_dir = run_dir;
	cfg.operator_group = g ? g->gr_name : NULL;  /* we may take backups, root or not */
	cfg.test_providers = fake_providers;
	cfg.test_freezer = &fake_freezer;
	cfg.test_transport = tr;
	if (vss_service_open(&cfg, &svc, &err) < 0)
		fail_msg("vssd: %s", err.msg);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	vss_service_close(svc);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

#define T(f) cmocka_unit_test_setup_teardown(f, per_test_setup, per_test_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(transition_table),
		T(set_of_two_at_one_instant),
		T(held_members_one_instant),
		T(own_instant_commits_first),
		T(two_own_instants_refused),
		T(held_member_fails_at_commit),
		T(hold_fails),
		T(provider_fails_at_prepare),
		T(provider_fails_at_commit),
		T(provider_fails_at_prepare_read_live),
		T(provider_fails_at_commit_read_live),
		T(provider_fails_live_cannot_take_it),
		T(filesystem_refuses_its_freeze),
		T(guardian_does_not_start),
		T(guardian_thawed_first),
		T(freeze_past_its_bound),
		T(settled_before_and_after_the_guardian),
		T(provider_fails_at_adopt),
		T(volume_twice_in_a_set),
		T(set_across_hosts_meets_them_at_each_step),
		T(another_host_fails_at_each_step),
		T(only_other_hosts_targets),
		T(nothing_to_freeze),
		T(whole_backup),
		T(refused_transitions),
		T(post_snapshot_metadata),
		T(writer_fails_at_freeze),
		T(provider_fails_inside_a_backup),
		T(thaw_runs_out_of_the_window),
		T(requester_goes_away_after_begin),
		T(requester_goes_away_after_prepare),
		T(requester_goes_away_with_its_shadows),
		T(requester_goes_away_while_frozen),
		T(requester_silent_past_its_lease),
		T(sets_outside_a_backup),
		T(whole_restore),
		T(writer_fails_at_pre_restore),
		T(writer_fails_at_post_restore),
		T(requester_goes_away_during_a_restore),
		T(restore_refused_transitions),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
