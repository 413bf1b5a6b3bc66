/*
 * service/qcow2.c - writes the qcow2 image whose one persistent bitmap is an
 * export's changed-block map (qcow2.h): qemu-storage-daemon opens it
 * read-only over the exported device and offers the bitmap to NBD clients
 * as qemu:dirty-bitmap:NAME (export.c).  Only written here, never read: the
 * reader is qemu, and vssd writes a new one at every export start.
 *
 * The format is qcow2 version 3 as qemu's docs/interop/qcow2.txt defines
 * it, every integer big-endian, clusters of 64 KiB (cluster_bits 16),
 * refcounts of 16 bits (refcount_order 4).  Cluster by cluster:
 *
 *   0            header (112 bytes: v3 fields, compression type 0), then
 *                header extensions: backing file format "raw" (0xe2792aca),
 *                bitmaps (0x23852875: nb_bitmaps 1, reserved 0, directory
 *                size and offset), end (0); then the backing file's name
 *   1            refcount table: one entry per refcount block
 *   2 ..         refcount blocks: 1 for every cluster below, 0 past the end
 *   then         L1 table: l1_size = ceil(size / 512 MiB) entries, all 0
 *                (no L2 table, no data cluster: every read falls through
 *                to the backing device)
 *   then         bitmap table: one entry per 64 KiB of bitmap, the offset
 *                of its data cluster, or 0 for a cluster of zero bits
 *   then         bitmap directory: one entry (table offset and size,
 *                flags 0: neither in use nor auto, so qemu loads it
 *                disabled and read-only; type 1, granularity bits, name)
 *   then         bitmap data clusters: bit b of byte i (least significant
 *                first) is granule i * 8 + b, set if a changed extent
 *                touches it
 *
 * The autoclear feature bit 0 says the bitmaps extension is consistent;
 * no incompatible or compatible feature is set.  A torn write leaves an
 * image qemu may refuse (qemu-img check reports it), never one it reads
 * as other bits: vssd never reuses a file, it writes a new one (O_EXCL) at
 * each start, in a directory only root writes, and removes it on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/qcow2.h"

#define CLUSTER_BITS 16
#define CLUSTER ((uint64_t)1 << CLUSTER_BITS)
#define REFS_PER_BLOCK (CLUSTER / 2)            /* 16-bit refcounts */
#define REFBLOCKS_MAX (CLUSTER / 8)             /* entries of a one-cluster table */
#define L2_COVERS (CLUSTER * (CLUSTER / 8))     /* bytes one L1 entry maps */
#define HEADER_LEN 112
#define BITMAP_MAX_BYTES ((uint64_t)1 << 29)    /* qemu's BME_MAX_PHYS_SIZE */
#define BACKING_MAX 1023                        /* qemu reads no longer name */
#define NAME_MAX_LEN 1023                       /* qemu's BME_MAX_NAME_SIZE */

static void be16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void be32(unsigned char *p, uint32_t v)
{
	be16(p, (uint16_t)(v >> 16));
	be16(p + 2, (uint16_t)v);
}

static void be64(unsigned char *p, uint64_t v)
{
	be32(p, (uint32_t)(v >> 32));
	be32(p + 4, (uint32_t)v);
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* Where each part starts, in clusters, and how many there are. */
struct layout {
	uint64_t refblocks, l1, l1_clusters, table, table_clusters, dir, data, data_clusters;
	uint64_t total;                 /* clusters in the file */
	uint64_t l1_size;               /* entries */
	uint64_t table_size;            /* entries: one per cluster of bitmap */
};

static int plan(struct layout *l, uint64_t size, uint64_t bitmap_bytes, uint64_t data_clusters,
		struct vss_error *err)
{
	uint64_t nrb = 1;

	l->l1_size = div_up(size, L2_COVERS);
	l->l1_clusters = div_up(l->l1_size * 8, CLUSTER);
	l->table_size = div_up(bitmap_bytes, CLUSTER);
	l->table_clusters = div_up(l->table_size * 8, CLUSTER);
	l->data_clusters = data_clusters;
	for (;;) {
		uint64_t total = 2 + nrb + l->l1_clusters + l->table_clusters + 1 + data_clusters;

		if (div_up(total, REFS_PER_BLOCK) <= nrb) {
			l->total = total;
			break;
		}
		nrb = div_up(total, REFS_PER_BLOCK);
	}
	if (nrb > REFBLOCKS_MAX)
		return vss_error_set(err, -EFBIG, "a changed-block map of %" PRIu64 " bytes "
				     "needs more refcount blocks than one table holds",
				     bitmap_bytes);
	l->refblocks = 2;
	l->l1 = l->refblocks + nrb;
	l->table = l->l1 + l->l1_clusters;
	l->dir = l->table + l->table_clusters;
	l->data = l->dir + 1;
	return 0;
}

static int put(int fd, const void *buf, size_t len, uint64_t off, const char *path,
	       struct vss_error *err)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return vss_error_set(err, w < 0 ? -errno : -EIO, "%s: write: %s", path,
					     w < 0 ? strerror(errno) : "nothing written");
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static void header(unsigned char *c, uint64_t size, const struct layout *l, const char *backing,
		   size_t dir_size)
{
	size_t blen = strlen(backing), at = HEADER_LEN;

	be32(c + 0, 0x514649fb);                        /* "QFI\xfb" */
	be32(c + 4, 3);                                 /* version */
	be32(c + 20, CLUSTER_BITS);
	be64(c + 24, size);
	be32(c + 32, 0);                                /* no encryption */
	be32(c + 36, (uint32_t)l->l1_size);
	be64(c + 40, l->l1 * CLUSTER);
	be64(c + 48, 1 * CLUSTER);                      /* refcount table */
	be32(c + 56, 1);                                /* its clusters */
	be64(c + 88, 1);                                /* autoclear: bitmaps valid */
	be32(c + 96, 4);                                /* refcount_order */
	be32(c + 100, HEADER_LEN);
	/* byte 104: compression type 0 (zlib); 105..111 padding */
	be32(c + at, 0xe2792aca);                       /* backing file format */
	be32(c + at + 4, 3);
	memcpy(c + at + 8, "raw", 3);
	at += 16;
	be32(c + at, 0x23852875);                       /* bitmaps */
	be32(c + at + 4, 24);
	be32(c + at + 8, 1);                            /* nb_bitmaps */
	be64(c + at + 16, dir_size);
	be64(c + at + 24, l->dir * CLUSTER);
	at += 32;
	at += 8;                                        /* end of extensions: zeros */
	be64(c + 8, at);                                /* backing file name */
	be32(c + 16, (uint32_t)blen);
	memcpy(c + at, backing, blen);
}

int svc_qcow2_bitmap_write(const char *path, uint64_t size, const char *backing,
			   const char *name, uint32_t *granularity,
			   const struct vss_cow_extent *ext, size_t n, struct vss_error *err)
{
	uint64_t g = *granularity, bits, bytes, ndata = 0, at = 0, *where = NULL;
	size_t name_len = strlen(name), dir_size;
	unsigned char *map = NULL, *c = NULL;
	struct layout l = { 0 };
	int fd = -1, rc;
	unsigned int gbits = 0;

	if (size == 0 || size > ((uint64_t)1 << 56))
		return vss_error_set(err, -EINVAL, "a changed-block map of %" PRIu64 " bytes: "
				     "qcow2 holds 1 byte to 64 PiB", size);
	if (name_len == 0 || name_len > NAME_MAX_LEN || strlen(backing) > BACKING_MAX ||
	    strlen(backing) == 0)
		return vss_error_set(err, -ENAMETOOLONG, "a bitmap name of 1-%d bytes and a "
				     "backing path of 1-%d bytes: not %zu and %zu",
				     NAME_MAX_LEN, BACKING_MAX, name_len, strlen(backing));
	/* A block of another size (a thin pool's chunk of 192 KiB, say): the
	 * largest power of two dividing it, so its extents stay exact. */
	g &= -g;
	if (g < 512 || g > ((uint64_t)1 << 31))
		g = 512;
	for (;;) {
		bits = div_up(size, g);
		bytes = div_up(bits, 64) * 8;           /* qemu serialises whole longs */
		if (bytes <= BITMAP_MAX_BYTES || g == (uint64_t)1 << 31)
			break;
		g <<= 1;
	}
	while (((uint64_t)1 << gbits) < g)
		gbits++;
	for (size_t i = 0; i < n; i++) {
		if (ext[i].length == 0 || ext[i].offset < at || ext[i].offset > size ||
		    ext[i].length > size - ext[i].offset)
			return vss_error_set(err, -EINVAL, "changed extent %" PRIu64 "+%" PRIu64
					     " is outside %" PRIu64 " bytes or out of order",
					     ext[i].offset, ext[i].length, size);
		at = ext[i].offset + ext[i].length;
	}
	if (!(map = calloc(1, div_up(bytes, CLUSTER) * CLUSTER)) || !(c = calloc(1, CLUSTER))) {
		rc = vss_error_set(err, -ENOMEM, "out of memory for a %" PRIu64 "-byte "
				   "changed-block map", bytes);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t first = ext[i].offset / g, last = (ext[i].offset + ext[i].length - 1) / g;

		for (uint64_t b = first; b <= last; b++)
			map[b / 8] |= (unsigned char)(1u << (b % 8));
	}
	/* Which clusters of the map hold a set bit: those are written. */
	if (!(where = calloc(div_up(bytes, CLUSTER), sizeof(*where)))) {
		rc = vss_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint64_t k = 0; k < div_up(bytes, CLUSTER); k++)
		for (uint64_t j = 0; j < CLUSTER; j += 8) {
			uint64_t w;

			memcpy(&w, map + k * CLUSTER + j, 8);
			if (w) {
				where[k] = ++ndata;     /* 1-based: 0 = all zero */
				break;
			}
		}
	if ((rc = plan(&l, size, bytes, ndata, err)) < 0)
		goto out;
	dir_size = 24 + div_up(name_len, 8) * 8;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = vss_error_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	/* Sized first: every cluster not written below reads as zeros. */
	if (ftruncate(fd, (off_t)(l.total * CLUSTER)) < 0) {
		rc = vss_error_set(err, -errno, "%s: %s", path, strerror(errno));
		goto fail;
	}
	header(c, size, &l, backing, dir_size);
	if ((rc = put(fd, c, CLUSTER, 0, path, err)) < 0)
		goto fail;
	/* Refcount table, then its blocks: every cluster of the file once. */
	memset(c, 0, CLUSTER);
	for (uint64_t b = 0; b < l.l1 - l.refblocks; b++)
		be64(c + b * 8, (l.refblocks + b) * CLUSTER);
	if ((rc = put(fd, c, CLUSTER, CLUSTER, path, err)) < 0)
		goto fail;
	for (uint64_t b = 0; b < l.l1 - l.refblocks; b++) {
		memset(c, 0, CLUSTER);
		for (uint64_t k = 0; k < REFS_PER_BLOCK; k++)
			if (b * REFS_PER_BLOCK + k < l.total)
				be16(c + k * 2, 1);
		if ((rc = put(fd, c, CLUSTER, (l.refblocks + b) * CLUSTER, path, err)) < 0)
			goto fail;
	}
	/* The L1 table stays zero (ftruncate).  The bitmap table: */
	for (uint64_t t = 0; t < l.table_clusters; t++) {
		memset(c, 0, CLUSTER);
		for (uint64_t k = 0; k < CLUSTER / 8 && t * (CLUSTER / 8) + k < l.table_size; k++) {
			uint64_t e = where[t * (CLUSTER / 8) + k];

			if (e)
				be64(c + k * 8, (l.data + e - 1) * CLUSTER);
		}
		if ((rc = put(fd, c, CLUSTER, (l.table + t) * CLUSTER, path, err)) < 0)
			goto fail;
	}
	/* The directory's one entry. */
	memset(c, 0, CLUSTER);
	be64(c + 0, l.table * CLUSTER);
	be32(c + 8, (uint32_t)l.table_size);
	be32(c + 12, 0);                                /* flags: not in use, not auto */
	c[16] = 1;                                      /* type: dirty tracking */
	c[17] = (unsigned char)gbits;
	be16(c + 18, (uint16_t)name_len);
	be32(c + 20, 0);                                /* no extra data */
	memcpy(c + 24, name, name_len);
	if ((rc = put(fd, c, CLUSTER, l.dir * CLUSTER, path, err)) < 0)
		goto fail;
	for (uint64_t k = 0; k < div_up(bytes, CLUSTER); k++)
		if (where[k] &&
		    (rc = put(fd, map + k * CLUSTER, CLUSTER, (l.data + where[k] - 1) * CLUSTER,
			      path, err)) < 0)
			goto fail;
	if (close(fd) < 0) {
		fd = -1;
		rc = vss_error_set(err, -errno, "%s: %s", path, strerror(errno));
		goto fail;
	}
	*granularity = (uint32_t)g;
	rc = 0;
	goto out;
fail:
	if (fd >= 0)
		close(fd);
	unlink(path);
out:
	free(where);
	free(map);
	free(c);
	return rc;
}
