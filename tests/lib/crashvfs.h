/*
 * tests/lib/crashvfs.h - an in-memory struct vss_vfs for tests, after SQLite's
 * crash-simulating VFS: power loss keeps, drops or tears (at 512-byte sectors)
 * every write not yet synced, and chosen calls on chosen files fail on cue.
 */
#ifndef VSS_TESTS_CRASHVFS_H
#define VSS_TESTS_CRASHVFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/vfs.h"

#define CRASHVFS_SECTOR 512u

/*
 * Each file has two images: the volatile one (what reads see) and the durable
 * one (what survives a crash).  pwrite, punch and truncate change the
 * volatile image at once and queue the change as unsynced; sync applies the
 * file's queue to its durable image.  Files are named by path string only;
 * creating and unlinking a name is durable at once.  One mutex serialises
 * every call, so each call is atomic with respect to a crash.
 */
struct crashvfs;

/* A new, empty file system in *@out; 0 or -ENOMEM. */
int crashvfs_new(struct crashvfs **out);
/* Frees @cv and every file; handles must all have been closed. */
void crashvfs_free(struct crashvfs *cv);

/* A vfs to pass to vss_cow_open_vfs(), valid as long as @cv, for a
 * "process" that lives until the next crash: after it, opens and unlinks
 * through this vfs fail with -EIO.  Ask for a new one after each crash. */
struct vss_vfs *crashvfs_vfs(struct crashvfs *cv);

/*
 * Power loss.  For each file, the new durable image is the old one plus a
 * subset, chosen from @seed, of its unsynced changes applied in their order:
 * each change whole, not at all, or (pwrite and punch) torn, only some of its
 * sectors.  The volatile image becomes that durable image.  Every handle
 * opened before the crash is dead from then on: its calls fail with -EIO and
 * change nothing (close still works).  Returns 0.
 */
int crashvfs_crash(struct crashvfs *cv, uint64_t seed);

/*
 * Arms a crash inside the @n-th (n >= 1) changing call from now (pwrite,
 * punch, truncate or sync, on any live handle): a pwrite, punch or truncate
 * is queued first (so it may survive whole or torn), then the crash happens
 * and the call fails with -EIO.  @n == 0 disarms.
 */
void crashvfs_crash_after(struct crashvfs *cv, uint64_t n, uint64_t seed);

/* How many crashes have happened (crashvfs_crash or armed). */
uint64_t crashvfs_crashes(struct crashvfs *cv);

enum crashvfs_op {
	CRASHVFS_PREAD,
	CRASHVFS_PWRITE,
	CRASHVFS_SYNC,
	CRASHVFS_PUNCH,
	CRASHVFS_TRUNCATE,
	CRASHVFS_RESERVE,
	CRASHVFS_NOPS
};

#define CRASHVFS_STICKY 0x1u  /* keep failing after the first failure */

/*
 * Makes call @op on file @path fail with @error (negative errno) after
 * @after further calls of it succeed; one-shot unless CRASHVFS_STICKY.  A
 * failing call changes nothing.  Replaces an earlier fault for the same
 * (path, op).  0, or -EINVAL / -ENOMEM.
 */
int crashvfs_fail(struct crashvfs *cv, const char *path, enum crashvfs_op op,
		  uint64_t after, int error, unsigned int flags);
/* Removes every armed fault. */
void crashvfs_clear_faults(struct crashvfs *cv);
/* How many calls failed because of an injected fault, on any file. */
uint64_t crashvfs_faults_hit(struct crashvfs *cv);

struct crashvfs_stats {
	uint64_t calls[CRASHVFS_NOPS];  /* calls made on live handles, failed ones included */
	uint64_t unsynced;              /* changes waiting for a sync */
	uint64_t size;                  /* volatile size */
	uint64_t durable_size;
};

/* Counters and sizes of @path; 0 or -ENOENT. */
int crashvfs_stats(struct crashvfs *cv, const char *path, struct crashvfs_stats *out);

/* Creates or replaces @path with @len bytes of @data (NULL: zeros), durable. */
int crashvfs_put(struct crashvfs *cv, const char *path, const void *data, size_t len);

/* A malloc'd copy of @path's volatile (or durable) image in *@out, its size
 * in *@len; the caller frees.  0, -ENOENT or -ENOMEM. */
int crashvfs_get(struct crashvfs *cv, const char *path, bool durable,
		 void **out, size_t *len);

/*
 * A full filesystem: @path may occupy at most @bytes (rounded up to 4 KiB
 * pages; 0: no limit).  A page is occupied once written or reserved
 * (vss_file_reserve), and given back by a punch covering it or a truncate
 * below it.  A pwrite or reserve needing pages past the budget fails with
 * -ENOSPC and changes nothing.  After a crash the pages holding anything
 * are occupied, whatever the budget.  0 or -ENOENT.
 */
int crashvfs_set_budget(struct crashvfs *cv, const char *path, uint64_t bytes);
/* Bytes @path occupies in that count (0 if it does not exist). */
uint64_t crashvfs_allocated(struct crashvfs *cv, const char *path);

/* Whether @path exists. */
bool crashvfs_exists(struct crashvfs *cv, const char *path);

#endif
