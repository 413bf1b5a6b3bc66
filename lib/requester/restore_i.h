/*
 * requester/restore_i.h - what restore.c (a restore with the writers of the
 * backup: which entries, where, by which restore method) asks of
 * restore_tree.c (writing one backup's entries safely).  Private to
 * lib/requester; vss_repo_restore is restore_tree() without hooks.
 */
#ifndef VSS_REQUESTER_RESTORE_I_H
#define VSS_REQUESTER_RESTORE_I_H

#include <stdbool.h>

#include <vss/backup.h>
#include <vss/writer_state.h>

#include "requester/repo_i.h"

/* What to do with one entry. */
enum restore_action {
	RA_RESTORE,                     /* write it, replacing what is there */
	RA_SKIP,                        /* leave what is there (the caller reports why) */
	RA_STAGE,                       /* write it beside its place, for the next boot */
	RA_STAGE_IF_CANNOT_REPLACE,     /* write it; if it cannot replace what is there,
					 * leave it beside its place for the next boot */
	RA_ENSURE,                      /* a directory on the way to what is restored:
					 * made (with its metadata) if it is missing */
};

struct restore_choice {
	enum restore_action action;
	/* Where it goes instead of its live path (absolute, before --to), or
	 * NULL; for a hard link also where the entry it links to went. */
	char *dest;                     /* malloc'd, freed by restore_tree */
	char *link_dest;                /* likewise */
};

/* Told of each entry restore_tree wrote, staged or failed on: @where is
 * its path as written (under --to), @rc 0 or why it failed. */
struct restore_done {
	const struct entry *e;
	const char *live;
	const char *where;
	enum vss_file_restore_status status;    /* ALL, STAGED or FAILED */
	int rc;
	const char *why;                        /* FAILED: the message */
};

struct restore_hooks {
	/* Decides for entry @e (live path @live, already wanted by the
	 * params' paths); 0 or an error that stops the restore. */
	int (*choose)(void *arg, const struct entry *e, const char *live,
		      struct restore_choice *c);
	void (*done)(void *arg, const struct restore_done *d);
	/* A file staged for the next boot: its directory (absolute, as
	 * written), the name it waits under and the name it takes. */
	int (*staged)(void *arg, const char *dir, const char *tmp, const char *name,
		      struct vss_error *err);
	void *arg;
};

/* Restores backup @id (resolved) of @r, the repository locked shared by
 * the caller, as vss_repo_restore does; @h may be NULL. */
int restore_tree(struct vss_repo *r, const char *id, const struct vss_restore_params *p,
		 const struct restore_hooks *h, struct vss_restore_result *out,
		 struct vss_error *err);

/* Whether live path @live is @paths or below one of them (or @npaths is 0). */
bool restore_wanted(const char *const *paths, size_t npaths, const char *live);
/* Opens directory @rel beneath @base, making what is missing (0755), never
 * through a symlink (restore_tree.c). */
int restore_open_dirs(int base, const char *rel);
/* openat2 beneath @dir_fd with no symlink followed. */
int restore_openat2(int dir_fd, const char *path, int flags);

#endif
