/*
 * provider/lvm/lvm.h - the LVM mechanism under the LVM provider
 * (lvm/provider.c): which logical volume a device is, snapshots of it
 * (thin, or classic copy-on-write with a size), and the device-mapper
 * suspend that holds several of them at one instant.  doc/providers.md
 * ("LVM") is the user's side.
 *
 * Only LVM's supported interface is used: the lvm command, run with a fixed
 * argv (no shell), a clean environment (PATH, LC_ALL=C, and LVM_SYSTEM_DIR
 * if vssd has one), stdin from /dev/null, every other descriptor closed,
 * and a deadline; reports are read with --reportformat json and jansson,
 * never lvm's human-readable output.  Every name that goes into an argv was
 * checked by vss_lvm_name_ok() (vssd runs as root: a VG or LV name is as
 * hostile as any other input).
 *
 * What is ours: a snapshot vss makes is named vss-<shadow id> and carries
 * the tag "vss" (VSS_LVM_TAG), "vss.set=<set id>" and, if persistent,
 * "vss.persistent".  vss_lvm_remove() refuses anything else.
 *
 * Errors: 0 or a negative errno, with one readable line in @err (lvm's own
 * last line of complaint when it failed).  Requires root.
 */
#ifndef VSS_PROVIDER_LVM_H
#define VSS_PROVIDER_LVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vss/error.h>

#define VSS_LVM_TAG         "vss"
#define VSS_LVM_TAG_PERSIST "vss.persistent"
#define VSS_LVM_NAME_PREFIX "vss-"
#define VSS_LVM_NAME_MAX    128      /* LVM's limit on VG and LV names, with the NUL */
/* A classic snapshot's size when nothing else is said: 1/5 of its origin. */
#define VSS_LVM_COW_DIVISOR 5

/* A thin pool fuller than this (data, in %) takes no new thin snapshot:
 * every overwrite of a block the snapshot shares then takes new space. */
#define VSS_LVM_THIN_FULL_PCT 80.0

/* One logical volume as `lvs --reportformat json --units b --binary` shows it. */
struct vss_lvm_lv {
	char vg[VSS_LVM_NAME_MAX];
	char name[VSS_LVM_NAME_MAX];
	char uuid[40];
	char attr[16];
	char origin[VSS_LVM_NAME_MAX];  /* what a snapshot is of, or "" */
	char pool[VSS_LVM_NAME_MAX];    /* a thin LV's pool, or "" */
	char segtype[32];               /* "linear", "thin", "thin-pool", "striped", ... */
	int major, minor;               /* the device while active, else -1 */
	int thin_id;                    /* a thin LV's device ID in its pool, else -1 */
	uint64_t size;                  /* bytes */
	uint64_t vg_free;               /* bytes free in its VG */
	double snap_percent;            /* a classic snapshot's storage used, in %; -1 if none */
	double data_percent;            /* a thin LV's or pool's data used, in %; -1 if none */
	bool snap_invalid;              /* a classic snapshot that overflowed */
	bool thin;                      /* segtype "thin" */
	bool ours;                      /* tagged VSS_LVM_TAG and named vss-<id> */
	bool persistent;                /* tagged VSS_LVM_TAG_PERSIST */
	unsigned char shadow_id[16];    /* ours: from its name */
	unsigned char set_id[16];       /* ours: from its vss.set= tag, zeros if none */
};

/* Whether @s is a VG or LV name lvm accepts and vss passes on: 1 to 127 of
 * [A-Za-z0-9+_.-], not starting with '-', not "." or "..". */
bool vss_lvm_name_ok(const char *s);

/*
 * Parses the JSON of `lvm lvs --reportformat json --units b --nosuffix
 * --binary -o VSS_LVM_FIELDS` (@len bytes, not NUL-terminated) into a new
 * array *@out of *@n entries (free()).  Rows whose names are not
 * vss_lvm_name_ok() are left out; anything else unexpected is -EINVAL.
 */
int vss_lvm_report_parse(const char *json, size_t len, struct vss_lvm_lv **out, size_t *n,
			 struct vss_error *err);
extern const char VSS_LVM_FIELDS[];

/* Every LV (@vg NULL) or those of @vg: a report parsed as above. */
int vss_lvm_list(const char *vg, struct vss_lvm_lv **out, size_t *n, struct vss_error *err);

/*
 * The top-level LV whose device is @dev (an active LV's major:minor), into
 * @lv: -ENODEV with why in @err when @dev is not device-mapper, not an LV
 * (its dm UUID does not start with "LVM-"), or an LV's hidden part.  Asks
 * sysfs first (quick, no lvm run) when @lv is NULL.
 */
int vss_lvm_of_dev(dev_t dev, struct vss_lvm_lv *lv, struct vss_error *err);

/*
 * Makes the snapshot vss-<@shadow_id> of @origin, tagged as ours, active
 * and read-only: thin if @origin is thin (no size), else classic with
 * @cow_size bytes of copy-on-write space (0: 1/VSS_LVM_COW_DIVISOR of the
 * origin), refused with -ENOSPC naming the VG if it has not that room.  If @origin's device is suspended (vss_lvm_hold())
 * lvcreate takes it so and resumes it.  On success @snap describes it.
 */
int vss_lvm_snapshot(const struct vss_lvm_lv *origin, const unsigned char shadow_id[16],
		     const unsigned char set_id[16], bool persistent, uint64_t cow_size,
		     struct vss_lvm_lv *snap, struct vss_error *err);

/* The LV @vg/@name as it is now; -ENOENT if none. */
int vss_lvm_get(const char *vg, const char *name, struct vss_lvm_lv *lv, struct vss_error *err);

/* The snapshot of @vg named vss-<@shadow_id>, as it is now; -ENOENT if none. */
int vss_lvm_find(const char *vg, const unsigned char shadow_id[16], struct vss_lvm_lv *snap,
		 struct vss_error *err);

/* Removes @vg/@name after checking, from a fresh report, that it is ours
 * (VSS_LVM_TAG, named vss-<id>); -EPERM if not, -ENOENT if gone. */
int vss_lvm_remove(const char *vg, const char *name, struct vss_error *err);

/* Extends classic snapshot @vg/@name (ours) to @size bytes (lvextend -L). */
int vss_lvm_extend(const char *vg, const char *name, uint64_t size, struct vss_error *err);

/*
 * Suspends the device-mapper device @dev (DM_DEV_SUSPEND): writes to it
 * wait, and the kernel freezes the filesystem on it (it would refuse the
 * suspend of a filesystem already frozen with FIFREEZE: so the set does not
 * freeze LVs, it holds them).  vss_lvm_unhold() resumes it if it is still
 * suspended; *@was says whether it was.
 */
int vss_lvm_hold(dev_t dev, struct vss_error *err);
int vss_lvm_unhold(dev_t dev, bool *was, struct vss_error *err);

/* The "LVM-..." UUID of device-mapper device @dev from sysfs into @out;
 * -ENODEV if it is not a device-mapper device. */
int vss_lvm_dm_uuid(dev_t dev, char *out, size_t size);

/* One run of changed bytes. */
struct vss_lvm_extent {
	uint64_t offset, length;
};

/*
 * The extents of thin LV @b that differ from thin LV @a (same pool; @a the
 * older snapshot) according to the pool's own metadata: thin_delta over a
 * metadata snapshot of the live pool (reserve_metadata_snap, released
 * again whatever happens).  In bytes, sorted, merged, in units of the
 * pool's chunk (*@chunk bytes).  A chunk written is listed even if its
 * content came back to what it was.  *@out is malloc'd.
 */
int vss_lvm_thin_delta(const struct vss_lvm_lv *a, const struct vss_lvm_lv *b,
		       struct vss_lvm_extent **out, size_t *n, uint64_t *chunk,
		       struct vss_error *err);

/* Parses thin_delta's XML (@len bytes) into sorted, merged byte extents;
 * -EINVAL for anything but its shape. */
int vss_lvm_thin_delta_parse(const char *xml, size_t len, struct vss_lvm_extent **out,
			     size_t *n, uint64_t *chunk, struct vss_error *err);

/* device-mapper's name of @vg/@lv followed by @suffix ("", "-tpool"):
 * dashes in each part doubled, the parts joined by one. */
void vss_lvm_dm_name(const char *vg, const char *lv, const char *suffix, char *out,
		     size_t size);

/* Formats/parses IDs as lower-case UUIDs (37 bytes with the NUL). */
void vss_lvm_format_id(const unsigned char id[16], char out[37]);

#endif
