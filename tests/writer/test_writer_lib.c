/*
 * tests/writer/test_writer_lib.c - the writer library (vss/writer.h) against
 * a fake vssd on a socket in a private directory: registration carries the
 * metadata document; each event reaches its handler with its arguments; a
 * failure goes back with its kind and reason; prepare_backup's and
 * post_snapshot's changes to the components document go back; a closed daemon ends vss_writer_run.
 * Losing vssd: the abort handler runs when the connection closes with a set
 * in flight, the watchdog gives up a freeze never thawed, and a writer
 * that reconnects registers again with the same document.  Restores:
 * pre_restore and post_restore reach their handlers with what is restored
 * and where (vss_writer_restore_*), an abort that ends a restore says it
 * is one, also when vssd goes away after pre_restore, and the restore-side
 * failure kinds go back.
 */
#include <errno.h>
#include <poll.h>
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
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include <vss/writer.h>

#include "proto/proto.h"

#define CLS "11111111-2222-3333-4444-555555555555"
#define INST "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

static const char bcd_doc[] =
	"{\"format\":\"vss-backup-components\",\"version\":1,\"backup_type\":\"incremental\","
	"\"partial_file_support\":true,\"writers\":[{\"writer_class_id\":\"" CLS "\","
	"\"writer_instance_id\":\"" INST "\",\"components\":[{\"name\":\"db\","
	"\"previous_backup_stamp\":\"old\"}]}]}";

struct fake {
	char dir[64];
	int listen_fd;
	json_t *replies[8];      /* the writer's answers, in order */
	int nreplies;
	char registered[4096];
};

static char seen[256];

static int handler(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	strncat(seen, ev->name, sizeof(seen) - strlen(seen) - 2);
	strcat(seen, " ");
	if (ev->type == VSS_WE_PREPARE_BACKUP) {
		struct vss_bcd_component *c;

		assert_non_null(ev->components);
		assert_int_equal(ev->backup_type, VSS_BT_INCREMENTAL);
		c = vss_bcd_component_at(ev->components, 0);
		assert_string_equal(vss_bcd_previous_backup_stamp(c), "old");
		assert_int_equal(vss_bcd_set_backup_stamp(c, "new", NULL), 0);
	}
	if (ev->type == VSS_WE_POST_SNAPSHOT) {
		assert_non_null(ev->components);
		assert_int_equal(vss_bcd_set_backup_metadata(vss_bcd_component_at(ev->components,
										 0),
							     "label at the instant", NULL), 0);
	}
	if (ev->type == VSS_WE_THAW)
		assert_string_equal(ev->set_id, "set-1");
	if (ev->type == VSS_WE_FREEZE) {
		assert_int_equal(ev->timeout_ms, 1234);
		vss_writer_set_failure(w, VSS_WF_RETRYABLE, "busy %d", 7);
		return -EBUSY;
	}
	return 0;
}

static void *serve(void *arg)
{
	struct fake *f = arg;
	struct vss_error err;
	json_t *msg = NULL;
	int fd = accept(f->listen_fd, NULL, NULL);
	const char *events[][2] = {
		{ "identify", NULL },
		{ "prepare_backup", bcd_doc },
		{ "freeze", NULL },
		{ "thaw", NULL },
		{ "post_snapshot", bcd_doc },
		{ "no_such_event", NULL },
	};

	assert_true(fd >= 0);
	assert_int_equal(vss_proto_recv(fd, &msg, &err), 0);
	assert_string_equal(json_string_value(json_object_get(msg, "op")), "writer.register");
	snprintf(f->registered, sizeof(f->registered), "%s",
		 json_string_value(json_object_get(json_object_get(msg, "args"), "metadata")));
	json_t *reply = vss_proto_reply_ok(json_object_get(msg, "id"), NULL);
	vss_proto_send(fd, reply);
	json_decref(reply);
	json_decref(msg);
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		json_t *args = json_object();

		if (events[i][1])
			json_object_set_new(args, "components", json_string(events[i][1]));
		json_object_set_new(args, "backup_type", json_string("incremental"));
		json_object_set_new(args, "window_ms", json_integer(1234));
		json_object_set_new(args, "set", json_string("set-1"));
		msg = json_pack("{s:i, s:i, s:s, s:o}", "version", 1, "id", (int)i + 10,
				"event", events[i][0], "args", args);
		vss_proto_send(fd, msg);
		json_decref(msg);
		msg = NULL;
		assert_int_equal(vss_proto_recv(fd, &msg, &err), 0);
		f->replies[f->nreplies++] = msg;
	}
	close(fd);
	return NULL;
}

static void test_events_round_trip(void **state)
{
	static const struct vss_writer_handlers h = {
		.size = sizeof(struct vss_writer_handlers),
		.identify = handler, .prepare_backup = handler, .prepare_snapshot = handler,
		.freeze = handler, .thaw = handler, .post_snapshot = handler,
		.backup_complete = handler, .abort = handler,
		.pre_restore = handler, .post_restore = handler,
	};
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct fake f = { 0 };
	struct vss_error err = { 0 };
	struct vss_writer *w;
	struct vss_wmd *wmd;
	pthread_t th;
	json_t *e;

	snprintf(f.dir, sizeof(f.dir), "/tmp/vss-writer-lib-XXXXXX");
	assert_non_null(mkdtemp(f.dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vssd.sock", f.dir);
	f.listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(f.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f.listen_fd, 1), 0);
	pthread_create(&th, NULL, serve, &f);

	assert_int_equal(vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = "t", .class_id = CLS, .instance_id = INST,
		.usage = VSS_UT_USER_DATA, .source = VSS_ST_OTHER }, &wmd, &err), 0);
	assert_int_equal(vss_wmd_set_backup_schema(wmd, VSS_BS_INCREMENTAL |
						   VSS_BS_TIMESTAMPED, &err), 0);
	assert_int_equal(vss_wmd_add_component(wmd, &(struct vss_wmd_component_info){
		.type = VSS_CT_FILE_GROUP, .name = "db" }, &err), 0);
	assert_int_equal(vss_writer_open(&(struct vss_writer_options){
		.size = sizeof(struct vss_writer_options), .run_dir = f.dir },
		wmd, &h, NULL, &w, &err), 0);
	vss_wmd_free(wmd);
	assert_int_equal(vss_writer_run(w, NULL, &err), -ECONNRESET);
	vss_writer_close(w);
	pthread_join(th, NULL);

	assert_non_null(strstr(f.registered, "\"writer_name\": \"t\""));
	/* The backup was in flight when the fake closed: abort ran. */
	assert_string_equal(seen, "identify prepare_backup freeze thaw post_snapshot abort ");
	assert_int_equal(f.nreplies, 6);
	assert_true(json_is_true(json_object_get(f.replies[0], "ok")));
	assert_int_equal(json_integer_value(json_object_get(f.replies[0], "id")), 10);
	/* prepare_backup: the stamp went back in the document. */
	{
		const char *doc = json_string_value(json_object_get(
			json_object_get(f.replies[1], "result"), "components"));

		assert_non_null(doc);
		assert_non_null(strstr(doc, "\"backup_stamp\": \"new\""));
		assert_non_null(strstr(doc, "\"previous_backup_stamp\": \"old\""));
	}
	/* freeze: failure with kind and reason. */
	e = json_object_get(f.replies[2], "error");
	assert_false(json_is_true(json_object_get(f.replies[2], "ok")));
	assert_string_equal(json_string_value(json_object_get(e, "kind")), "retryable");
	assert_string_equal(json_string_value(json_object_get(e, "message")), "busy 7");
	assert_string_equal(json_string_value(json_object_get(e, "code")), "EBUSY");
	assert_true(json_is_true(json_object_get(f.replies[3], "ok")));
	/* post_snapshot: the backup metadata went back in the document. */
	{
		const char *doc = json_string_value(json_object_get(
			json_object_get(f.replies[4], "result"), "components"));

		assert_non_null(doc);
		assert_non_null(strstr(doc, "\"backup_metadata\": \"label at the instant\""));
	}
	/* An event the library does not know is answered, not fatal. */
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(f.replies[5], "error"), "code")), "ENOSYS");
	for (int i = 0; i < f.nreplies; i++)
		json_decref(f.replies[i]);
	close(f.listen_fd);
	unlink(sa.sun_path);
	rmdir(f.dir);
}

/* ---- losing vssd ---- */

struct loss {
	char dir[64];
	char sock[96];
	int listen_fd;
	char log[512];             /* the handler's events, "name[:reason] " */
	pthread_mutex_t lock;
	int aborts;
	char conn[256];            /* on_connection: "up " / "down " */
	char first_doc[4096], second_doc[4096];
	json_t *thaw_reply, *late_abort_reply;
	json_t *restore_replies[4];
	bool fail_pre_restore;
	uint64_t abort_after_ms;   /* watchdog: from the freeze answer to abort */
};

static volatile sig_atomic_t loss_stop;

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int loss_handler(struct vss_writer *w, const struct vss_writer_event *ev, void *data)
{
	struct loss *l = data;
	struct vss_writer_restore_info ri;

	pthread_mutex_lock(&l->lock);
	strncat(l->log, ev->name, sizeof(l->log) - strlen(l->log) - 1);
	if (vss_writer_restore_info(w, &ri) == 0) {
		char extra[256];
		size_t n = (size_t)snprintf(extra, sizeof(extra), "{%s|%s", ri.backup_id,
					    ri.to ? ri.to : "-");

		for (size_t i = 0; i < ri.component_count; i++) {
			struct vss_writer_restore_component c;
			struct vss_wmd_file_spec loc = { 0 };

			assert_int_equal(vss_writer_restore_component(w, i, &c), 0);
			vss_writer_restore_location(w, i, 0, &loc);
			n += (size_t)snprintf(extra + n, sizeof(extra) - n, "|%s/%s:%d:%s:%s:%llu:%s:%s>%s",
					      c.logical_path, c.name, (int)c.method,
					      c.original_location ? "orig" : "alt",
					      vss_file_restore_status_name(c.status), c.files,
					      c.message ? c.message : "-", loc.path ? loc.path : "-",
					      loc.destination ? loc.destination : "-");
		}
		assert_int_equal(vss_writer_restore_component(w, ri.component_count, &(struct
				 vss_writer_restore_component){ 0 }), -ERANGE);
		snprintf(extra + n, sizeof(extra) - n, "}");
		strncat(l->log, extra, sizeof(l->log) - strlen(l->log) - 1);
	}
	if (ev->type == VSS_WE_PRE_RESTORE && l->fail_pre_restore) {
		vss_writer_set_failure(w, VSS_WF_RECOVERY_FAILED, "cannot close the database");
		pthread_mutex_unlock(&l->lock);
		strncat(l->log, " ", sizeof(l->log) - strlen(l->log) - 1);
		return -EBUSY;
	}
	if (ev->type == VSS_WE_ABORT) {
		char extra[160];

		snprintf(extra, sizeof(extra), "[%s|%s]", ev->set_id ? ev->set_id : "-",
			 ev->reason ? ev->reason : "-");
		strncat(l->log, extra, sizeof(l->log) - strlen(l->log) - 1);
		l->aborts++;
	}
	strncat(l->log, " ", sizeof(l->log) - strlen(l->log) - 1);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static void loss_conn(struct vss_writer *w, bool up, const char *why, void *data)
{
	struct loss *l = data;

	(void)w;
	assert_non_null(why);
	pthread_mutex_lock(&l->lock);
	strncat(l->conn, up ? "up " : "down ", sizeof(l->conn) - strlen(l->conn) - 1);
	pthread_mutex_unlock(&l->lock);
}

static int loss_aborts(struct loss *l)
{
	int n;

	pthread_mutex_lock(&l->lock);
	n = l->aborts;
	pthread_mutex_unlock(&l->lock);
	return n;
}

/* Accepts a connection and answers its registration; returns the socket. */
static int accept_register(struct loss *l, char *doc, size_t doclen)
{
	struct vss_error err;
	json_t *msg = NULL, *reply;
	int fd = accept(l->listen_fd, NULL, NULL);

	assert_true(fd >= 0);
	assert_int_equal(vss_proto_recv(fd, &msg, &err), 0);
	assert_string_equal(json_string_value(json_object_get(msg, "op")), "writer.register");
	snprintf(doc, doclen, "%s",
		 json_string_value(json_object_get(json_object_get(msg, "args"), "metadata")));
	reply = vss_proto_reply_ok(json_object_get(msg, "id"), NULL);
	vss_proto_send(fd, reply);
	json_decref(reply);
	json_decref(msg);
	return fd;
}

/* Sends event @name (with set "s1" and @window_ms) and returns the answer. */
static json_t *event(int fd, const char *name, int window_ms)
{
	static int id = 100;
	struct vss_error err;
	json_t *msg = json_pack("{s:i, s:i, s:s, s:{s:s, s:i}}", "version", 1, "id", id++,
				"event", name, "args", "set", "s1", "window_ms", window_ms);
	json_t *reply = NULL;

	assert_int_equal(vss_proto_send(fd, msg), 0);
	json_decref(msg);
	assert_int_equal(vss_proto_recv(fd, &reply, &err), 0);
	assert_non_null(reply);
	return reply;
}

/* The fake vssd's socket, as vssd makes it at start. */
static void loss_listen(struct loss *l)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", l->sock);
	l->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(l->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l->listen_fd, 4), 0);
}

static void loss_setup(struct loss *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	snprintf(l->dir, sizeof(l->dir), "/tmp/vss-writer-lib-XXXXXX");
	assert_non_null(mkdtemp(l->dir));
	snprintf(l->sock, sizeof(l->sock), "%s/vssd.sock", l->dir);
	loss_listen(l);
	loss_stop = 0;
}

static void loss_teardown(struct loss *l)
{
	close(l->listen_fd);
	unlink(l->sock);
	rmdir(l->dir);
	json_decref(l->thaw_reply);
	json_decref(l->late_abort_reply);
	for (size_t i = 0; i < 4; i++)
		json_decref(l->restore_replies[i]);
	pthread_mutex_destroy(&l->lock);
}

static struct vss_writer *loss_writer(struct loss *l, bool reconnect)
{
	static const struct vss_writer_handlers h = {
		.size = sizeof(struct vss_writer_handlers),
		.identify = loss_handler, .prepare_backup = loss_handler,
		.prepare_snapshot = loss_handler, .freeze = loss_handler,
		.thaw = loss_handler, .post_snapshot = loss_handler,
		.backup_complete = loss_handler, .abort = loss_handler,
		.pre_restore = loss_handler, .post_restore = loss_handler,
	};
	struct vss_error err = { 0 };
	struct vss_writer *w;
	struct vss_wmd *wmd;

	assert_int_equal(vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = "t", .class_id = CLS, .instance_id = INST,
		.usage = VSS_UT_USER_DATA, .source = VSS_ST_OTHER }, &wmd, &err), 0);
	assert_int_equal(vss_writer_open(&(struct vss_writer_options){
		.size = sizeof(struct vss_writer_options), .run_dir = l->dir,
		.reconnect = reconnect, .on_connection = loss_conn },
		wmd, &h, l, &w, &err), 0);
	vss_wmd_free(wmd);
	return w;
}

/* Runs a writer (with @reconnect) against @serve until vss_writer_run
 * returns; returns what it returned. */
static int run_against(struct loss *l, void *(*fake)(void *), bool reconnect)
{
	struct vss_error err = { 0 };
	struct vss_writer *w;
	pthread_t th;
	int rc;

	pthread_create(&th, NULL, fake, l);
	w = loss_writer(l, reconnect);
	rc = vss_writer_run(w, reconnect ? &loss_stop : NULL, &err);
	vss_writer_close(w);
	pthread_join(th, NULL);
	return rc;
}

/* vssd goes away while the writer is frozen: the library runs abort; after
 * only an identify it does not. */
static void *serve_gone_frozen(void *arg)
{
	struct loss *l = arg;
	int fd = accept_register(l, l->first_doc, sizeof(l->first_doc));

	json_decref(event(fd, "prepare_snapshot", 0));
	json_decref(event(fd, "freeze", 60000));
	close(fd);
	return NULL;
}

static void *serve_identify_only(void *arg)
{
	struct loss *l = arg;
	int fd = accept_register(l, l->first_doc, sizeof(l->first_doc));

	json_decref(event(fd, "identify", 0));
	close(fd);
	return NULL;
}

static void test_abort_when_vssd_goes_away(void **state)
{
	struct loss l;

	(void)state;
	loss_setup(&l);
	assert_int_equal(run_against(&l, serve_gone_frozen, false), -ECONNRESET);
	assert_string_equal(l.log, "prepare_snapshot freeze "
			    "abort[s1|vssd went away: the connection closed] ");
	/* Identify alone is no sequence in flight. */
	l.log[0] = '\0';
	assert_int_equal(run_against(&l, serve_identify_only, false), -ECONNRESET);
	assert_string_equal(l.log, "identify ");
	assert_string_equal(l.conn, "");    /* no reconnecting: not told */
	loss_teardown(&l);
}

/* Waits for the writer to close @fd (it sees stop within its poll
 * interval; the test gives up after 10 s), then closes it. */
static void wait_closed(int fd)
{
	for (int i = 0; i < 100; i++) {
		char b;
		struct pollfd p = { fd, POLLIN, 0 };

		if (poll(&p, 1, 100) > 0 && read(fd, &b, 1) <= 0)
			break;
	}
	close(fd);
}

/* Takes a registration (its document into @doc), sends identify, stops the
 * writer and waits for it to go. */
static void identify_then_stop(struct loss *l, char *doc, size_t doclen)
{
	int fd = accept_register(l, doc, doclen);

	json_decref(event(fd, "identify", 0));
	loss_stop = 1;
	wait_closed(fd);
}

/* With reconnect the writer registers again, with the same document, and
 * goes on answering; stop ends it. */
static void *serve_restart(void *arg)
{
	struct loss *l = arg;
	int fd = accept_register(l, l->first_doc, sizeof(l->first_doc));

	json_decref(event(fd, "freeze", 60000));
	close(fd);
	identify_then_stop(l, l->second_doc, sizeof(l->second_doc));
	return NULL;
}

static void test_reconnect_after_vssd_restart(void **state)
{
	struct loss l;

	(void)state;
	loss_setup(&l);
	assert_int_equal(run_against(&l, serve_restart, true), 0);
	assert_string_equal(l.log, "freeze abort[s1|vssd went away: the connection closed] "
			    "identify ");
	assert_string_equal(l.conn, "down up ");
	assert_true(l.first_doc[0]);
	assert_string_equal(l.first_doc, l.second_doc);
	loss_teardown(&l);
}

/* A writer started before vssd: with reconnect, open succeeds unregistered
 * and vss_writer_run registers once vssd is up; without, open fails. */
static void *serve_late(void *arg)
{
	struct loss *l = arg;

	poll(NULL, 0, 300);
	loss_listen(l);
	identify_then_stop(l, l->first_doc, sizeof(l->first_doc));
	return NULL;
}

static void test_open_before_vssd(void **state)
{
	struct vss_error err = { 0 };
	struct vss_writer *w, *none = NULL;
	struct vss_wmd *wmd;
	struct loss l;
	pthread_t th;

	(void)state;
	loss_setup(&l);
	close(l.listen_fd);
	unlink(l.sock);
	assert_int_equal(vss_wmd_new(&(struct vss_wmd_identity){
		.writer_name = "t", .class_id = CLS, .instance_id = INST,
		.usage = VSS_UT_USER_DATA, .source = VSS_ST_OTHER }, &wmd, &err), 0);
	assert_int_equal(vss_writer_open(&(struct vss_writer_options){
		.size = sizeof(struct vss_writer_options), .run_dir = l.dir },
		wmd, NULL, NULL, &none, &err), -ENOENT);
	assert_null(none);
	assert_non_null(strstr(err.msg, "cannot reach vssd"));
	vss_wmd_free(wmd);
	w = loss_writer(&l, true);
	assert_int_equal(vss_writer_fd(w), -1);
	assert_string_equal(l.conn, "");      /* told on the run's thread */
	pthread_create(&th, NULL, serve_late, &l);
	assert_int_equal(vss_writer_run(w, &loss_stop, &err), 0);
	vss_writer_close(w);
	pthread_join(th, NULL);
	assert_string_equal(l.conn, "down up ");
	assert_string_equal(l.log, "identify ");
	assert_non_null(strstr(l.first_doc, "\"writer_name\": \"t\""));
	loss_teardown(&l);
}

/* A vssd that never thaws: the watchdog gives the freeze up after its
 * window and the grace; a late thaw is answered with a timeout failure, a
 * late abort without running the handler twice. */
static void *serve_stuck(void *arg)
{
	struct loss *l = arg;
	int fd = accept_register(l, l->first_doc, sizeof(l->first_doc));
	uint64_t t0;

	json_decref(event(fd, "freeze", 100));
	t0 = ms_now();
	while (loss_aborts(l) == 0 && ms_now() - t0 < 20000)
		poll(NULL, 0, 10);
	l->abort_after_ms = ms_now() - t0;
	l->thaw_reply = event(fd, "thaw", 0);
	l->late_abort_reply = event(fd, "abort", 0);
	json_decref(event(fd, "identify", 0));
	close(fd);
	return NULL;
}

static void test_watchdog_gives_up_a_freeze_never_thawed(void **state)
{
	struct loss l;
	json_t *e;

	(void)state;
	loss_setup(&l);
	assert_int_equal(run_against(&l, serve_stuck, false), -ECONNRESET);
	assert_string_equal(l.log, "freeze abort[s1|no thaw within the freeze window of 100 ms; "
			    "vssd may be stuck] identify ");
	/* Not before the window and the grace (poll slices may end early by
	 * a millisecond), and not much later. */
	assert_true(l.abort_after_ms + 5 >= 100 + VSS_WRITER_THAW_GRACE_MS);
	assert_true(l.abort_after_ms < 100 + VSS_WRITER_THAW_GRACE_MS + 5000);
	e = json_object_get(l.thaw_reply, "error");
	assert_false(json_is_true(json_object_get(l.thaw_reply, "ok")));
	assert_string_equal(json_string_value(json_object_get(e, "kind")), "timeout");
	assert_string_equal(json_string_value(json_object_get(e, "code")), "ETIMEDOUT");
	assert_true(json_is_true(json_object_get(l.late_abort_reply, "ok")));
	loss_teardown(&l);
}

/* ---- restores ---- */

/* A restore event with its "restore" argument; returns the answer. */
static json_t *restore_event(int fd, const char *name, bool post)
{
	static int id = 500;
	struct vss_error err;
	json_t *comp = json_pack("{s:s, s:s, s:s, s:b, s:[{s:s, s:s, s:b, s:s}]}",
				 "logical_path", "dbs", "name", "db", "method",
				 "restore_to_alternate_location", "original_location", 0,
				 "locations", "path", "/srv/db", "file_spec", "*", "recursive", 1,
				 "destination", "/srv/elsewhere");
	json_t *msg, *reply = NULL;

	if (post)
		json_object_update_new(comp, json_pack("{s:s, s:i, s:s}", "status", "failed",
						       "files", 3, "message", "disk full"));
	msg = json_pack("{s:i, s:i, s:s, s:{s:s, s:{s:s, s:s, s:[o]}}}", "version", 1,
			"id", id++, "event", name, "args", "backup_type", "full", "restore",
			"backup", "B1", "to", "/mnt/to", "components", comp);
	assert_int_equal(vss_proto_send(fd, msg), 0);
	json_decref(msg);
	assert_int_equal(vss_proto_recv(fd, &reply, &err), 0);
	return reply;
}

/* pre_restore, post_restore (a whole restore), then pre_restore and vssd
 * going away: abort, and it knows the restore it ends. */
static void *serve_restore(void *arg)
{
	struct loss *l = arg;
	int fd = accept_register(l, l->first_doc, sizeof(l->first_doc));

	l->restore_replies[0] = restore_event(fd, "pre_restore", false);
	l->restore_replies[1] = restore_event(fd, "post_restore", true);
	json_decref(event(fd, "identify", 0));
	l->restore_replies[2] = restore_event(fd, "pre_restore", false);
	close(fd);
	return NULL;
}

static void test_restore_events(void **state)
{
	struct loss l;

	(void)state;
	loss_setup(&l);
	assert_int_equal(run_against(&l, serve_restore, false), -ECONNRESET);
	assert_string_equal(l.log,
		"pre_restore{B1|/mnt/to|dbs/db:4:alt:undefined:0:-:/srv/db>/srv/elsewhere} "
		"post_restore{B1|/mnt/to|dbs/db:4:alt:failed:3:disk full:/srv/db>/srv/elsewhere} "
		"identify "
		"pre_restore{B1|/mnt/to|dbs/db:4:alt:undefined:0:-:/srv/db>/srv/elsewhere} "
		"abort{B1|/mnt/to|dbs/db:4:alt:undefined:0:-:/srv/db>/srv/elsewhere}"
		"[-|vssd went away: the connection closed] ");
	for (int i = 0; i < 3; i++)
		assert_true(json_is_true(json_object_get(l.restore_replies[i], "ok")));
	loss_teardown(&l);
}

/* A writer failing pre_restore: its kind and reason go back, and the abort
 * that follows is a restore's. */
static void *serve_restore_refused(void *arg)
{
	struct loss *l = arg;
	int fd = accept_register(l, l->first_doc, sizeof(l->first_doc));

	l->restore_replies[0] = restore_event(fd, "pre_restore", false);
	l->thaw_reply = event(fd, "abort", 0);
	json_decref(event(fd, "abort", 0));     /* a backup's: no restore */
	close(fd);
	return NULL;
}

static void test_restore_refused(void **state)
{
	struct loss l;
	json_t *e;

	(void)state;
	loss_setup(&l);
	l.fail_pre_restore = true;
	assert_int_equal(run_against(&l, serve_restore_refused, false), -ECONNRESET);
	e = json_object_get(l.restore_replies[0], "error");
	assert_false(json_is_true(json_object_get(l.restore_replies[0], "ok")));
	assert_string_equal(json_string_value(json_object_get(e, "kind")), "recovery_failed");
	assert_string_equal(json_string_value(json_object_get(e, "message")),
			    "cannot close the database");
	assert_string_equal(l.log,
		"pre_restore{B1|/mnt/to|dbs/db:4:alt:undefined:0:-:/srv/db>/srv/elsewhere} "
		"abort{B1|/mnt/to|dbs/db:4:alt:undefined:0:-:/srv/db>/srv/elsewhere}[s1|-] "
		"abort[s1|-] ");
	loss_teardown(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_round_trip),
		cmocka_unit_test(test_abort_when_vssd_goes_away),
		cmocka_unit_test(test_reconnect_after_vssd_restart),
		cmocka_unit_test(test_open_before_vssd),
		cmocka_unit_test(test_watchdog_gives_up_a_freeze_never_thawed),
		cmocka_unit_test(test_restore_events),
		cmocka_unit_test(test_restore_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
