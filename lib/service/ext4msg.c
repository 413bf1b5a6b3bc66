/*
 * service/ext4msg.c - the ext4 reader's answer on the wire, and a
 * directory's signature (ext4read.h).  Pure functions over bytes: vssd
 * parses what a child that read hostile bytes sends it, so nothing here
 * trusts a field before checking it (fuzz target
 * tests/service/fuzz_ext4msg.c).
 */
#include <errno.h>
#include <stdbool.h>
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

/* ---- the frames of a version copied back (ext4read.h) ---- */

#define FRAME_MAGIC 0x46345856u         /* "VX4F" */

size_t svc_ext4_frame_encode(const struct svc_ext4_frame *f, uint32_t seq, unsigned char *out)
{
	size_t msg = f->kind == SVC_EXT4_END ? strnlen(f->msg, SVC_EXT4_TEXT_MAX - 1) + 1 : 0;
	size_t len = SVC_EXT4_FRAME_HEAD + f->name_len + f->data_len + msg;

	if (len > SVC_EXT4_FRAME_MAX)
		return 0;
	memset(out, 0, SVC_EXT4_FRAME_HEAD);
	put32(out, FRAME_MAGIC);
	put32(out + 4, seq);
	put32(out + 8, f->kind);
	put32(out + 12, (uint32_t)f->status);
	put32(out + 16, f->mode);
	put32(out + 20, f->uid);
	put32(out + 24, f->gid);
	put32(out + 28, (uint32_t)f->name_len);
	put64(out + 32, f->size);
	put64(out + 40, (uint64_t)f->atime_sec);
	put64(out + 48, (uint64_t)f->mtime_sec);
	put32(out + 56, f->atime_nsec);
	put32(out + 60, f->mtime_nsec);
	if (f->name_len)
		memcpy(out + SVC_EXT4_FRAME_HEAD, f->name, f->name_len);
	if (f->data_len)
		memcpy(out + SVC_EXT4_FRAME_HEAD + f->name_len, f->data, f->data_len);
	if (msg) {
		memcpy(out + SVC_EXT4_FRAME_HEAD, f->msg, msg - 1);
		out[SVC_EXT4_FRAME_HEAD + msg - 1] = '\0';
	}
	return len;
}

static bool has_byte(const unsigned char *p, size_t n, unsigned char c)
{
	return n && memchr(p, c, n) != NULL;
}

int svc_ext4_frame_parse(const unsigned char *buf, size_t len, uint32_t seq,
			 struct svc_ext4_frame *out)
{
	const unsigned char *pay = buf + SVC_EXT4_FRAME_HEAD;
	size_t left, n;
	uint32_t type;

	memset(out, 0, sizeof(*out));
	if (len < SVC_EXT4_FRAME_HEAD || len > SVC_EXT4_FRAME_MAX || get32(buf) != FRAME_MAGIC ||
	    get32(buf + 4) != seq)
		return -EPROTO;
	left = len - SVC_EXT4_FRAME_HEAD;
	out->kind = get32(buf + 8);
	out->status = (int)get32(buf + 12);
	out->mode = get32(buf + 16);
	out->uid = get32(buf + 20);
	out->gid = get32(buf + 24);
	out->name_len = get32(buf + 28);
	out->size = get64(buf + 32);
	out->atime_sec = (int64_t)get64(buf + 40);
	out->mtime_sec = (int64_t)get64(buf + 48);
	out->atime_nsec = get32(buf + 56);
	out->mtime_nsec = get32(buf + 60);
	switch (out->kind) {
	case SVC_EXT4_ENTRY:
		type = out->mode & S_IFMT;
		if ((out->mode & ~(uint32_t)(S_IFMT | 07777)) ||
		    (type != S_IFREG && type != S_IFDIR && type != S_IFLNK) ||
		    out->atime_nsec >= 1000000000u || out->mtime_nsec >= 1000000000u ||
		    out->size > (uint64_t)INT64_MAX || out->name_len > 255 || out->name_len > left)
			return -EPROTO;
		out->name = pay;
		if (has_byte(pay, out->name_len, '/') || has_byte(pay, out->name_len, '\0') ||
		    (out->name_len == 1 && pay[0] == '.') ||
		    (out->name_len == 2 && pay[0] == '.' && pay[1] == '.'))
			return -EPROTO;
		out->data_len = left - out->name_len;
		out->data = pay + out->name_len;
		if (type == S_IFLNK ? out->size != out->data_len || !out->size ||
				      out->size > SVC_EXT4_LINK_MAX ||
				      has_byte(out->data, out->data_len, '\0')
				    : out->data_len != 0)
			return -EPROTO;
		return 0;
	case SVC_EXT4_XATTR:
		if (!out->name_len || out->name_len > SVC_EXT4_XATTR_NAME_MAX ||
		    out->name_len > left || out->size != left - out->name_len ||
		    out->size > SVC_EXT4_XATTR_VALUE_MAX)
			return -EPROTO;
		out->name = pay;
		out->data = pay + out->name_len;
		out->data_len = (size_t)out->size;
		return has_byte(out->name, out->name_len, '\0') ? -EPROTO : 0;
	case SVC_EXT4_DATA:
		if (out->name_len || !left || left > SVC_EXT4_DATA_MAX || out->size != left)
			return -EPROTO;
		out->data = pay;
		out->data_len = left;
		return 0;
	case SVC_EXT4_POP:
		return out->name_len || left ? -EPROTO : 0;
	case SVC_EXT4_END:
		if (out->status < SVC_EXT4_FOUND || out->status > SVC_EXT4_BAD || out->name_len ||
		    !left || left > SVC_EXT4_TEXT_MAX || pay[left - 1] != '\0')
			return -EPROTO;
		n = strnlen((const char *)pay, left);
		for (size_t i = 0; i < n; i++)
			out->msg[i] = pay[i] >= 0x20 && pay[i] < 0x7f ? (char)pay[i] : '?';
		return 0;
	default:
		return -EPROTO;
	}
}
