/*
 * requester_demo - one backup with the requester API (vss/requester.h):
 * gather writer metadata, select every component, take a set of TARGET,
 * expose its shadow at DIR, and print each FILE's path inside the shadow
 * and its first line; then BackupComplete.  Run by tests/system; built out
 * of tree against an installed libvss by tests/dist, as any program is:
 *
 *	cc requester_demo.c $(pkg-config --cflags --libs vss)
 *
 * requester_demo [--run-dir RUN] TARGET DIR FILE...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/requester.h>

static int fail(struct vss_requester *r, const char *step, const struct vss_error *err)
{
	fprintf(stderr, "requester_demo: %s: %s\n", step, err->msg);
	vss_requester_close(r);    /* aborts the backup */
	return 1;
}

int main(int argc, char **argv)
{
	struct vss_error err = { 0 };
	struct vss_requester *r = NULL;
	const char *run_dir = NULL;
	int i = 1;

	if (argc > 2 && strcmp(argv[1], "--run-dir") == 0) {
		run_dir = argv[2];
		i = 3;
	}
	if (argc - i < 3) {
		fprintf(stderr, "usage: requester_demo [--run-dir RUN] TARGET DIR FILE...\n");
		return 2;
	}
	if (vss_requester_open(run_dir, &r, &err) < 0) {
		fprintf(stderr, "requester_demo: %s\n", err.msg);
		return 1;
	}
	if (vss_requester_set_backup_state(r, VSS_BT_FULL, false, &err) < 0)
		return fail(r, "set backup state", &err);
	if (vss_requester_gather_writer_metadata(r, &err) < 0)
		return fail(r, "gather writer metadata", &err);
	if (vss_requester_select_all_components(r, &err) < 0)
		return fail(r, "select components", &err);
	if (vss_requester_start_snapshot_set(r, &err) < 0 ||
	    vss_requester_add_to_snapshot_set(r, argv[i], &err) < 0)
		return fail(r, "snapshot set", &err);
	if (vss_requester_prepare_for_backup(r, &err) < 0)
		return fail(r, "prepare for backup", &err);
	if (vss_requester_do_snapshot_set(r, &err) < 0)
		return fail(r, "do snapshot set", &err);
	printf("set %s\n", vss_requester_set_id(r));
	for (size_t k = 0; k < vss_requester_writer_count(r); k++) {
		struct vss_requester_writer w;

		vss_requester_writer_status(r, k, &w);
		printf("writer %s %d %s", w.name, (int)w.state, w.state_name);
		if (w.failure != VSS_WF_NONE)
			printf(" %s: %s", vss_writer_failure_name(w.failure), w.last_error);
		putchar('\n');
	}
	if (vss_requester_expose(r, 0, argv[i + 1], &err) < 0)
		return fail(r, "expose", &err);
	for (int f = i + 2; f < argc; f++) {
		char path[4096], line[256] = "";
		FILE *fp;

		if (vss_requester_translate_path(r, argv[f], path, sizeof(path), &err) < 0)
			return fail(r, "translate path", &err);
		fp = fopen(path, "r");
		if (fp) {
			if (!fgets(line, sizeof(line), fp))
				line[0] = '\0';
			fclose(fp);
		}
		line[strcspn(line, "\n")] = '\0';
		printf("file %s %s %s\n", argv[f], path, fp ? line : "(unreadable)");
	}
	if (vss_requester_backup_complete(r, true, &err) < 0)
		return fail(r, "backup complete", &err);
	vss_requester_close(r);   /* unexposes, deletes the (non-persistent) set */
	return 0;
}
