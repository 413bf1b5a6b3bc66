/*
 * tests/service/fuzz_peer.c - libFuzzer target for what another host may
 * send in a set across hosts, and the peers file (service/peer_msg.h): the
 * input is read as a peers file, and, parsed as JSON the way vssd takes a
 * message (duplicate names refused), as a step or reply, as peer.set's
 * arguments and as its result for a set of up to four targets, and for the
 * RBD images of a "prepared" or a "thaw"; each string of it is tried as a
 * HOST:TARGET.
 *
 * Built a second time with -DVSS_PEER_SEEDS as a program that writes a
 * seed corpus (what two vssd really say to each other, a peers file) into
 * the directory it is given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/peer_msg.h"

#define SET "0b8f0d5e-8c2e-4a51-9d0e-1f2a3b4c5d6e"

#ifndef VSS_PEER_SEEDS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void strings(json_t *v, int depth)
{
	char host[SVC_PEER_NAME_MAX + 1];
	const char *rest, *key;
	json_t *x;
	size_t i;

	if (depth > 8)
		return;
	if (json_is_string(v))
		(void)svc_peer_target_split(json_string_value(v), host, &rest);
	json_array_foreach(v, i, x)
		strings(x, depth + 1);
	json_object_foreach(v, key, x)
		strings(x, depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const targets[] = { "data", "/srv/pg", "logs", "/" };
	struct svc_peer_member m[SVC_PEER_TARGETS_MAX];
	struct svc_peer_set_req req;
	struct svc_peer_conf conf;
	enum svc_peer_step step;
	struct vss_error err;
	json_t *msg, *result;

	(void)svc_peer_conf_parse((const char *)data, size, &conf, &err);
	if (!(msg = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL)))
		return 0;
	if (svc_peer_msg_parse(msg, &step, &result, &err) == 0)
		for (size_t n = 0; n <= 4; n++)
			(void)svc_peer_result_parse(result, SET, targets, n, m, &err);
	{
		struct svc_peer_rbd rbd[SVC_PEER_TARGETS_MAX];
		size_t nr;

		(void)svc_peer_rbd_parse(msg, false, rbd, SVC_PEER_TARGETS_MAX, &nr, &err);
		(void)svc_peer_rbd_parse(msg, true, rbd, SVC_PEER_TARGETS_MAX, &nr, &err);
	}
	(void)svc_peer_set_req_parse(json_object_get(msg, "args"), &req, &err);
	(void)svc_peer_set_req_parse(msg, &req, &err);
	for (size_t n = 0; n <= 4; n++)
		(void)svc_peer_result_parse(msg, SET, targets, n, m, &err);
	strings(msg, 0);
	json_decref(msg);
	return 0;
}
#else
static void seed(const char *dir, int n, const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-%02d", dir, n);
	f = fopen(path, "wb");
	if (!f || fwrite(text, 1, strlen(text), f) != strlen(text))
		exit(1);
	fclose(f);
}

int main(int argc, char **argv)
{
	static const char *const seeds[] = {
		"# the other hosts\nhostb /run/vss/peers/hostb.sock\nhostc /run/c.sock # c\n",
		"{\"version\":1,\"id\":1,\"op\":\"peer.set\",\"args\":{\"set\":\"" SET "\","
		"\"coordinator\":\"hosta\",\"targets\":[\"data\",\"/srv/pg\"],\"persistent\":true,"
		"\"no_writers\":false,\"wait_ms\":30000}}",
		"{\"version\":1,\"step\":\"prepared\"}",
		"{\"version\":1,\"step\":\"freeze\"}",
		"{\"version\":1,\"step\":\"prepared\",\"rbd\":[{\"pool\":\"rbd\",\"image\":"
		"\"db\",\"image_id\":\"10a26b8b4567\"}]}",
		"{\"version\":1,\"step\":\"thaw\",\"rbd\":[{\"pool\":\"rbd\",\"image\":\"db\","
		"\"snap_id\":4}]}",
		"{\"version\":1,\"step\":\"abort\"}",
		"{\"version\":1,\"id\":1,\"ok\":true,\"result\":{\"set\":\"" SET "\",\"frozen_ms\":3.5,"
		"\"held_ms\":0.1,\"shadows\":[{\"id\":\"11111111-2222-4333-8444-555555555555\","
		"\"target\":\"data\",\"volume\":\"data\",\"device\":\"/run/vss/dev/shadows/"
		"11111111-2222-4333-8444-555555555555\",\"provider\":\"vss-cow\",\"live\":false},"
		"{\"id\":\"11111111-2222-4333-8444-666666666666\",\"target\":\"/srv/pg\","
		"\"volume\":\"/srv\",\"device\":\"/srv/.snap\",\"provider\":\"btrfs\"}],"
		"\"warnings\":[],\"complete\":false}}",
		"{\"version\":1,\"id\":1,\"ok\":false,\"error\":{\"code\":\"EBUSY\",\"errno\":16,"
		"\"message\":\"a backup holds the slot\"}}",
		"{\"version\":1,\"id\":2,\"ok\":true,\"result\":{\"set\":\"" SET "\",\"shadows\":2}}",
		"{\"targets\":[\"b:data\",\"db.example:/srv/x\"]}",
	};

	if (argc != 2)
		return 2;
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		seed(argv[1], (int)i, seeds[i]);
	return 0;
}
#endif
