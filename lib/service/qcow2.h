/*
 * service/qcow2.h - a qcow2 image holding nothing but a persistent dirty
 * bitmap (qcow2.c), so that qemu's NBD server offers a changed-block map as
 * the metadata context qemu:dirty-bitmap:NAME (export.c).
 */
#ifndef VSS_SERVICE_QCOW2_H
#define VSS_SERVICE_QCOW2_H

#include <stddef.h>
#include <stdint.h>

#include <vss/cow.h>
#include <vss/error.h>

/*
 * Writes @path (created: it must not exist; 0600) as a qcow2 image of
 * @size bytes with no data clusters, backed by @backing (raw) and carrying
 * one disabled persistent bitmap @name whose set bits are the granules that
 * @ext[0..@n) touch: of *@granularity bytes (the largest power of two that
 * divides it, at least 512, doubled until the bitmap fits qemu's limits;
 * the granularity used is returned there).  Extents must be in order, inside @size, not overlapping.  0 or
 * -errno with why in @err (a partial file is removed).
 */
int svc_qcow2_bitmap_write(const char *path, uint64_t size, const char *backing,
			   const char *name, uint32_t *granularity,
			   const struct vss_cow_extent *ext, size_t n, struct vss_error *err);

#endif
