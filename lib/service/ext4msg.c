/*
 * service/ext4msg.c - the ext4 reader's answer on the wire, and a
 * directory's signature (ext4read.h).  Pure functions over bytes: vssd
 * parses what a child that read hostile bytes sends it, so nothing here
 * trusts a field before checking it (fuzz target
 * tests/service/fuzz_ext4msg.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "service/ext4read.h"

#define MAGIC 0x52345856u       /* "VX4R" read as a little-endian u32 */
#define F_DIGEST 1u
#define F_DIRSIG 2u

static void put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

void svc_ext4_msg_encode(const struct svc_ext4_info *in, unsigned char out[SVC_EXT4_MSG_LEN])
{
	memset(out, 0, SVC_EXT4_MSG_LEN);
	put32(out, MAGIC);
	put32(out + 4, in->seq);
	put32(out + 8, (uint32_t)in->status);
	put32(out + 12, in->mode);
	put32(out + 16, in->uid);
	put32(out + 20, in->gid);
	put64(out + 24, in->size);
	put64(out + 32, (uint64_t)in->mtime_sec);
	put32(out + 40, in->mtime_nsec);
	put32(out + 44, (in->has_digest ? F_DIGEST : 0) | (in->has_dirsig ? F_DIRSIG : 0));
	put64(out + 48, in->dirsig);
	memcpy(out + 56, in->digest, SVC_EXT4_DIGEST_LEN);
	memcpy(out + 88, in->msg, strnlen(in->msg, SVC_EXT4_TEXT_MAX - 1));
}

int svc_ext4_msg_parse(const unsigned char *buf, size_t len, uint32_t seq,
		       struct svc_ext4_info *out)
{
	const unsigned char *text = buf + 88;
	uint32_t flags, type;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (len != SVC_EXT4_MSG_LEN || get32(buf) != MAGIC || get32(buf + 4) != seq)
		return -EPROTO;
	out->seq = seq;
	out->status = (int)get32(buf + 8);
	if (out->status < SVC_EXT4_FOUND || out->status > SVC_EXT4_BAD)
		return -EPROTO;
	n = strnlen((const char *)text, SVC_EXT4_TEXT_MAX);
	if (n == SVC_EXT4_TEXT_MAX)
		return -EPROTO;
	for (size_t i = 0; i < n; i++)
		out->msg[i] = text[i] >= 0x20 && text[i] < 0x7f ? (char)text[i] : '?';
	if (out->status != SVC_EXT4_FOUND)
		return 0;
	out->mode = get32(buf + 12);
	out->uid = get32(buf + 16);
	out->gid = get32(buf + 20);
	out->size = get64(buf + 24);
	out->mtime_sec = (int64_t)get64(buf + 32);
	out->mtime_nsec = get32(buf + 40);
	flags = get32(buf + 44);
	out->dirsig = get64(buf + 48);
	memcpy(out->digest, buf + 56, SVC_EXT4_DIGEST_LEN);
	type = out->mode & S_IFMT;
	if (out->mode & ~(uint32_t)(S_IFMT | 07777) ||
	    (type != S_IFREG && type != S_IFDIR && type != S_IFIFO) ||
	    out->size > (uint64_t)INT64_MAX || out->mtime_nsec >= 1000000000u ||
	    (flags & ~(F_DIGEST | F_DIRSIG)))
		return -EPROTO;
	out->has_digest = flags & F_DIGEST;
	out->has_dirsig = flags & F_DIRSIG;
	if ((out->has_digest && type != S_IFREG) || (out->has_dirsig != (type == S_IFDIR)))
		return -EPROTO;
	return 0;
}

static int cmp_sig(const void *a, const void *b)
{
	return strcmp(((const struct svc_dirent_sig *)a)->name,
		      ((const struct svc_dirent_sig *)b)->name);
}

uint64_t svc_dirsig(struct svc_dirent_sig *e, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	if (n)
		qsort(e, n, sizeof(*e), cmp_sig);
	for (size_t i = 0; i < n; i++) {
		const unsigned char *s = (const unsigned char *)e[i].name;
		uint64_t v[4] = { (uint64_t)e[i].type, (uint64_t)e[i].size,
				  (uint64_t)e[i].sec, (uint64_t)e[i].nsec };

		for (; *s; s++)
			h = (h ^ *s) * 1099511628211ull;
		h = (h ^ 0xff) * 1099511628211ull;
		for (int j = 0; j < 4; j++)
			for (int b = 0; b < 8; b++)
				h = (h ^ ((v[j] >> (8 * b)) & 0xff)) * 1099511628211ull;
	}
	return h;
}
