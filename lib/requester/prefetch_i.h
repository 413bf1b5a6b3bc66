/*
 * requester/prefetch_i.h - threads that read ahead of a backup's walk
 * (prefetch.c): what the walk will look at is in the caches when it gets
 * there.  A hint only: it changes no result.
 */
#ifndef VSS_REQUESTER_PREFETCH_I_H
#define VSS_REQUESTER_PREFETCH_I_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Whether the walk will read the bytes of the regular file at @rel (its
 * path under the directory read ahead), as @st describes it.  Called from
 * the prefetch threads, at the same time as the walk runs. */
typedef bool (*prefetch_changed_fn)(void *arg, const char *rel, const struct stat *st);

struct prefetch;

/* Starts reading ahead of a walk of the directory @dir_fd (not taken) on
 * the filesystem @dev: every directory listed, every entry looked at, the
 * bytes of each file @changed says will be read asked for.  With @changed
 * NULL the files met are kept until prefetch_set_changed says.  With
 * @keep_dirs (only for a tree that cannot change: a shadow's), each
 * directory's listing is kept for prefetch_take_dir.  0 or -errno (then
 * there is nothing to stop). */
int prefetch_start(int dir_fd, dev_t dev, bool keep_dirs, prefetch_changed_fn changed,
		   void *arg, struct prefetch **out);

/* An entry of a directory as a prefetch thread found it. */
struct prefetch_dirent {
	char *name;
	struct stat st;                 /* lstat: not followed */
};

/* The entries of directory @rel (its path under the directory read ahead,
 * "" for that one) when a thread has listed and looked at all of them,
 * in readdir's order, as a malloc'd array of *@n the caller frees (each
 * name, then the array); else NULL, and the walk reads it itself.  Each
 * listing is given once.  @p NULL: NULL. */
struct prefetch_dirent *prefetch_take_dir(struct prefetch *p, const char *rel, size_t *n);
void prefetch_dirents_free(struct prefetch_dirent *v, size_t n);
/* Says, once, which files the walk will read (@changed NULL: none), for
 * those met so far and those to come; nothing if prefetch_start had a
 * @changed.  @p NULL: nothing. */
void prefetch_set_changed(struct prefetch *p, prefetch_changed_fn changed, void *arg);
/* Stops the threads and frees @p (NULL: nothing). */
void prefetch_stop(struct prefetch *p);

#endif
