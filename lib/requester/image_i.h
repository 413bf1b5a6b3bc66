/*
 * requester/image_i.h - what the rest of the repository code calls of
 * image backups (image.c; the format is doc/backup-format.md, "Image
 * backups"): telling them from backups of files, verifying and restoring
 * them.
 */
#ifndef VSS_REQUESTER_IMAGE_I_H
#define VSS_REQUESTER_IMAGE_I_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include <vss/backup.h>

struct vss_repo;

/* One line of an image manifest: an extent, its bytes (checksummed) or zeros. */
struct image_line {
	uint64_t off, len;
	bool zero;
	char sha[65];                   /* hex, for bytes */
};

/* Parses the manifest line @text (NUL-terminated) of an image of a volume
 * of @size bytes, following lines that end at *@end: into @out, and *@end
 * moved to its end.  -EBADMSG if it is not a line, or out of order, or
 * outside the volume, or holds bytes past the 1 MiB a line may hold. */
int image_line_parse(const char *text, uint64_t size, uint64_t *end, struct image_line *out);

/* Whether the parsed backup.json @info is an image backup's. */
bool image_is(json_t *info);

/* vss_repo_verify for image backup @id (@info its backup.json): its
 * manifest, and every extent it stores against its checksum; @bad is
 * called for each damaged one.  Returns how many were. */
unsigned long image_verify(struct vss_repo *r, const char *id, json_t *info,
			   void (*bad)(void *arg, const char *path, const char *why), void *arg);

/* vss_repo_restore for image backup @id (resolved; the shared lock held). */
int image_restore(struct vss_repo *r, const char *id, const struct vss_restore_params *p,
		  struct vss_restore_result *out, struct vss_error *err);

#endif
