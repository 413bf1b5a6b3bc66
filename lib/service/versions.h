/*
 * service/versions.h - a file's earlier versions across the shadows of its
 * volume (versions.c): listed where they differ, and one copied back.
 * Works on any provider whose shadows hold a filesystem: the built-in
 * engine's are exposed where vssd picks (read-only, nosuid, nodev,
 * noexec), btrfs snapshots are read where they are.
 *
 * Who may see what: the caller must be able to read the live file (vssd
 * opens it as the caller) to list its versions; a copy back runs in a
 * child process with the caller's credentials, which opens the version
 * inside the shadow as the caller (so the permissions the file and its
 * directories had at the shadow's instant apply) and writes only what the
 * caller may write.
 */
#ifndef VSS_SERVICE_VERSIONS_H
#define VSS_SERVICE_VERSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <vss/error.h>

struct svc_caller;
struct vss_service;

/* shadow.versions (anyone): path -> path, volume, versions (newest first). */
int svc_op_shadow_versions(struct vss_service *svc, const struct svc_caller *who, json_t *args,
			   json_t **res, struct vss_error *err);
/* shadow.restore_version (anyone): path, shadow, to?, force? -> files, bytes. */
int svc_op_shadow_restore_version(struct vss_service *svc, const struct svc_caller *who,
				  json_t *args, json_t **res, struct vss_error *err);

/* Whether @x and @y, the same @len bytes at @off of two shadows of one
 * volume, are equal but for ext4's superblock fields that each freeze
 * rewrites and no lookup, stat or read uses (free counts, times, mount
 * count, kbytes written, checksum): those are blanked in both when both
 * hold ext4's superblock magic.  What makes a shadow's version of a path
 * the next newer one's without mounting it (versions.c). */
bool svc_versions_same_bytes(unsigned char *x, unsigned char *y, uint64_t off, size_t len);

#endif
