/*
 * tests/writer/test_writer_lib.c - the writer library (vss/writer.h) against
 * a fake vssd on a socket in a private directory: registration carries the
 * metadata document; each event reaches its handler with its arguments; a
 * failure goes back with its kind and reason; prepare_backup's changes to
 * the components document go back; a closed daemon ends vss_writer_run.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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
		handler, handler, handler, handler, handler, handler, handler, handler,
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
	assert_int_equal(vss_writer_open(&(struct vss_writer_options){ .run_dir = f.dir },
					 wmd, &h, NULL, &w, &err), 0);
	vss_wmd_free(wmd);
	assert_int_equal(vss_writer_run(w, NULL, &err), -ECONNRESET);
	vss_writer_close(w);
	pthread_join(th, NULL);

	assert_non_null(strstr(f.registered, "\"writer_name\": \"t\""));
	assert_string_equal(seen, "identify prepare_backup freeze thaw ");
	assert_int_equal(f.nreplies, 5);
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
	/* An event the library does not know is answered, not fatal. */
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(f.replies[4], "error"), "code")), "ENOSYS");
	for (int i = 0; i < f.nreplies; i++)
		json_decref(f.replies[i]);
	close(f.listen_fd);
	unlink(sa.sun_path);
	rmdir(f.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
