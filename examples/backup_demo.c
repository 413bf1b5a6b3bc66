/*
 * backup_demo - a backup and its restore with the repository API
 * (vss/backup.h), as a third-party backup program makes them: a full
 * backup of the tree DIR into the repository REPO (made if missing), an
 * incremental of it, then the incremental restored under TO (each file at
 * its path with the leading '/' dropped).  DIR is read live here; a real
 * program reads it from a shadow (vss/requester.h, examples/requester_demo.c)
 * and passes the shadow's path as .read.  Built out of tree against an
 * installed libvss by tests/dist, as any program is:
 *
 *	cc backup_demo.c $(pkg-config --cflags --libs vss)
 *
 * backup_demo REPO DIR TO
 */
#include <stdio.h>

#include <vss/backup.h>

static int backup(struct vss_repo *repo, const char *dir, enum vss_backup_type type,
		  struct vss_backup_info *info)
{
	struct vss_backup_source src = { .live = dir, .read = dir };
	struct vss_backup_params p = { .size = sizeof(p), .type = type, .sources = &src,
				       .nsources = 1 };
	struct vss_error err = { 0 };

	if (vss_repo_backup(repo, &p, info, &err) < 0) {
		fprintf(stderr, "backup_demo: backup of %s: %s\n", dir, err.msg);
		return -1;
	}
	printf("backup %s (%s%s): %llu entries, %llu files stored\n", info->id,
	       info->base[0] ? "on " : "full", info->base,
	       (unsigned long long)info->files, (unsigned long long)info->files_stored);
	return 0;
}

int main(int argc, char **argv)
{
	struct vss_backup_info full, inc;
	struct vss_restore_params rp = { .size = sizeof(rp) };
	struct vss_restore_result res;
	struct vss_error err = { 0 };
	struct vss_repo *repo;

	if (argc != 4) {
		fprintf(stderr, "usage: backup_demo REPO DIR TO\n");
		return 2;
	}
	if (vss_repo_open(argv[1], VSS_REPO_CREATE, &repo, &err) < 0) {
		fprintf(stderr, "backup_demo: %s: %s\n", argv[1], err.msg);
		return 1;
	}
	if (backup(repo, argv[2], VSS_BT_FULL, &full) < 0 ||
	    backup(repo, argv[2], VSS_BT_INCREMENTAL, &inc) < 0) {
		vss_repo_close(repo);
		return 1;
	}
	rp.to = argv[3];
	if (vss_repo_restore(repo, inc.id, &rp, &res, &err) < 0) {
		fprintf(stderr, "backup_demo: restore of %s: %s\n", inc.id, err.msg);
		vss_repo_close(repo);
		return 1;
	}
	printf("restored %s under %s: %llu entries, %llu bytes\n", inc.id, argv[3],
	       (unsigned long long)res.files, (unsigned long long)res.bytes);
	vss_repo_close(repo);
	return 0;
}
