/*
 * provider/lvm/lvm.c - the LVM mechanism (lvm.h): runs the lvm command
 * safely, parses its JSON reports, and suspends device-mapper devices
 * through the kernel's ioctl.  The provider (provider.c) decides what to
 * make and when.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <linux/dm-ioctl.h>
#include <uuid/uuid.h>

#include "provider/lvm/lvm.h"

#define LVM_BIN        "/sbin/lvm"
#define LVM_OUT_MAX    (16u << 20)   /* a report larger than this is refused */
#define LVM_DEADLINE_S 120
/* Never scan a device vss holds suspended (the scan would wait for it). */
#define LVM_CONFIG     "devices { ignore_suspended_devices = 1 }"

const char VSS_LVM_FIELDS[] = "lv_name,vg_name,lv_uuid,lv_attr,lv_tags,origin,pool_lv,segtype,"
			      "lv_size,vg_free,lv_kernel_major,lv_kernel_minor,snap_percent,"
			      "data_percent,lv_snapshot_invalid,thin_id";

bool vss_lvm_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= VSS_LVM_NAME_MAX || s[0] == '-' || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

void vss_lvm_format_id(const unsigned char id[16], char out[37])
{
	uuid_unparse_lower(id, out);
}

/* ---- the report ---- */

static int copy_field(json_t *row, const char *key, char *out, size_t size, bool required)
{
	const char *s = json_string_value(json_object_get(row, key));

	if (!s)
		return required ? -EINVAL : (out[0] = '\0', 0);
	if (strlen(s) >= size)
		return -ENAMETOOLONG;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static int num_field(json_t *row, const char *key, long long lo, long long hi, long long *out)
{
	const char *s = json_string_value(json_object_get(row, key));
	char *end;

	if (!s)
		return -EINVAL;
	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno || end == s || *end || *out < lo || *out > hi)
		return -EINVAL;
	return 0;
}

static double pct_field(json_t *row, const char *key)
{
	const char *s = json_string_value(json_object_get(row, key));
	char *end;
	double d;

	if (!s || !*s)
		return -1.0;
	d = strtod(s, &end);
	return (*end || !(d >= 0.0 && d <= 100.0)) ? -1.0 : d;
}

/* The tags "vss", "vss.set=<uuid>", "vss.persistent" of a comma-separated list. */
static void read_tags(const char *tags, struct vss_lvm_lv *lv, bool *tagged)
{
	const char *p = tags;

	*tagged = false;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char one[80];

		if (n < sizeof(one)) {
			memcpy(one, p, n);
			one[n] = '\0';
			if (strcmp(one, VSS_LVM_TAG) == 0)
				*tagged = true;
			else if (strcmp(one, VSS_LVM_TAG_PERSIST) == 0)
				lv->persistent = true;
			else if (strncmp(one, "vss.set=", 8) == 0 && strlen(one + 8) == 36)
				uuid_parse(one + 8, lv->set_id);
		}
		p += n;
		if (*p == ',')
			p++;
	}
}

/* One row; 1 if it is left out (a name vss never passes on). */
static int parse_row(json_t *row, struct vss_lvm_lv *lv)
{
	char tags[4096];
	long long v;
	bool tagged;
	int rc;

	memset(lv, 0, sizeof(*lv));
	if (!json_is_object(row))
		return -EINVAL;
	rc = copy_field(row, "lv_name", lv->name, sizeof(lv->name), true);
	if (rc == 0)
		rc = copy_field(row, "vg_name", lv->vg, sizeof(lv->vg), true);
	if (rc == -ENAMETOOLONG || (rc == 0 && (!vss_lvm_name_ok(lv->name) ||
						!vss_lvm_name_ok(lv->vg))))
		return 1;
	if (rc < 0 ||
	    (rc = copy_field(row, "lv_uuid", lv->uuid, sizeof(lv->uuid), true)) < 0 ||
	    (rc = copy_field(row, "lv_attr", lv->attr, sizeof(lv->attr), true)) < 0 ||
	    (rc = copy_field(row, "segtype", lv->segtype, sizeof(lv->segtype), true)) < 0)
		return rc == -ENAMETOOLONG ? -EINVAL : rc;
	/* A hidden part of another LV ([pool_tdata]) or a name vss never passes on. */
	if ((rc = copy_field(row, "origin", lv->origin, sizeof(lv->origin), false)) < 0 ||
	    (lv->origin[0] && !vss_lvm_name_ok(lv->origin)))
		lv->origin[0] = '\0';
	if ((rc = copy_field(row, "pool_lv", lv->pool, sizeof(lv->pool), false)) < 0 ||
	    (lv->pool[0] && !vss_lvm_name_ok(lv->pool)))
		lv->pool[0] = '\0';
	if (copy_field(row, "lv_tags", tags, sizeof(tags), false) < 0)
		tags[0] = '\0';
	if (num_field(row, "lv_size", 0, LLONG_MAX, &v) < 0)
		return -EINVAL;
	lv->size = (uint64_t)v;
	lv->vg_free = num_field(row, "vg_free", 0, LLONG_MAX, &v) == 0 ? (uint64_t)v : 0;
	lv->major = num_field(row, "lv_kernel_major", -1, INT_MAX, &v) == 0 ? (int)v : -1;
	lv->minor = num_field(row, "lv_kernel_minor", -1, INT_MAX, &v) == 0 ? (int)v : -1;
	lv->thin_id = num_field(row, "thin_id", 0, 0xffffff, &v) == 0 ? (int)v : -1;
	lv->snap_percent = pct_field(row, "snap_percent");
	lv->data_percent = pct_field(row, "data_percent");
	lv->snap_invalid = num_field(row, "lv_snapshot_invalid", 0, 1, &v) == 0 && v == 1;
	lv->thin = strcmp(lv->segtype, "thin") == 0;
	read_tags(tags, lv, &tagged);
	lv->ours = tagged && strncmp(lv->name, VSS_LVM_NAME_PREFIX, 4) == 0 &&
		   strlen(lv->name) == 4 + 36 && uuid_parse(lv->name + 4, lv->shadow_id) == 0;
	if (!lv->ours)
		lv->persistent = false;
	return 0;
}

int vss_lvm_report_parse(const char *json, size_t len, struct vss_lvm_lv **out, size_t *n,
			 struct vss_error *err)
{
	struct vss_lvm_lv *lvs = NULL;
	size_t count = 0, cap = 0;
	json_error_t jerr;
	json_t *root, *report, *part;
	size_t i;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!(root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr)))
		return vss_error_set(err, -EINVAL, "lvm's report is not JSON: %s (line %d)",
				     jerr.text, jerr.line);
	report = json_object_get(root, "report");
	if (!json_is_array(report)) {
		rc = vss_error_set(err, -EINVAL, "lvm's report has no \"report\" array");
		goto out;
	}
	json_array_foreach(report, i, part) {
		json_t *rows = json_object_get(part, "lv"), *row;
		size_t k;

		if (!json_is_array(rows)) {
			rc = vss_error_set(err, -EINVAL, "lvm's report has a part without \"lv\"");
			goto out;
		}
		json_array_foreach(rows, k, row) {
			struct vss_lvm_lv lv;
			int r = parse_row(row, &lv);

			if (r == 1)
				continue;
			if (r < 0) {
				rc = vss_error_set(err, r, "lvm's report has a malformed row (%zu)",
						   k);
				goto out;
			}
			if (count == cap) {
				struct vss_lvm_lv *bigger;

				cap = cap ? cap * 2 : 8;
				if (!(bigger = realloc(lvs, cap * sizeof(*lvs)))) {
					rc = vss_error_set(err, -ENOMEM, "out of memory");
					goto out;
				}
				lvs = bigger;
			}
			lvs[count++] = lv;
		}
	}
	*out = lvs;
	*n = count;
	lvs = NULL;
out:
	free(lvs);
	json_decref(root);
	return rc;
}

/* ---- running lvm ---- */

/* lvm's reason: its last line of stderr that is not a warning (else its last). */
static void last_line(const char *buf, char *out, size_t size)
{
	const char *end = buf + strlen(buf), *start;

	out[0] = '\0';
	while (end > buf) {
		while (end > buf && (end[-1] == '\n' || end[-1] == ' '))
			end--;
		start = end;
		while (start > buf && start[-1] != '\n')
			start--;
		while (*start == ' ' && start < end)
			start++;
		if (!out[0] || strncmp(start, "WARNING", 7) != 0)
			snprintf(out, size, "%.*s", (int)(end - start), start);
		if (strncmp(start, "WARNING", 7) != 0)
			return;
		end = start;
	}
}

/* Appends @n bytes to @buf (@cap with the NUL), keeping the end: lvm's reason comes last. */
static void tail_append(char *buf, size_t *len, size_t cap, const char *data, size_t n)
{
	if (n >= cap) {
		data += n - (cap - 1);
		n = cap - 1;
	}
	if (*len + n >= cap) {
		size_t drop = *len + n - (cap - 1);

		memmove(buf, buf + drop, *len - drop);
		*len -= drop;
	}
	memcpy(buf + *len, data, n);
	*len += n;
}

/*
 * Runs lvm with @argv (argv[0] is the lvm command: "lvs", "lvcreate", ...),
 * its stdout into *@out (malloc'd, NUL-terminated; NULL to discard).  A
 * non-zero exit is -EIO (or -ENOSPC when lvm says so) with lvm's last line
 * of stderr in @err.
 */
static int run_tool(const char *bin, const char *const *argv, bool lvm, char **out,
		    size_t *out_len, struct vss_error *err);

static int lvm_run(const char *const *argv, char **out, size_t *out_len,
		   struct vss_error *err)
{
	return run_tool(LVM_BIN, argv, true, out, out_len, err);
}

/* Runs @bin with @argv after it (lvm: its command, then our --config). */
static int run_tool(const char *bin, const char *const *argv, bool lvm, char **out,
		    size_t *out_len, struct vss_error *err)
{
	const char *args[40];
	char *envp[4], sysdir[PATH_MAX + 16];
	char *obuf = NULL, ebuf[4096];
	size_t olen = 0, ocap = 0, elen = 0, nargs = 0;
	int opipe[2] = { -1, -1 }, epipe[2] = { -1, -1 }, status, rc = 0, nenv = 0;
	const char *sd = getenv("LVM_SYSTEM_DIR");
	time_t deadline = time(NULL) + LVM_DEADLINE_S;
	pid_t pid;

	args[nargs++] = bin;
	for (size_t i = 0; argv[i]; i++) {
		if (nargs + 4 >= sizeof(args) / sizeof(args[0]))
			return vss_error_set(err, -E2BIG, "too many arguments for %s", bin);
		args[nargs++] = argv[i];
	}
	if (lvm) {
		args[nargs++] = "--config";
		args[nargs++] = LVM_CONFIG;
	}
	args[nargs] = NULL;
	envp[nenv++] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
	envp[nenv++] = "LC_ALL=C";
	if (sd && sd[0] == '/' && strlen(sd) < PATH_MAX) {
		snprintf(sysdir, sizeof(sysdir), "LVM_SYSTEM_DIR=%s", sd);
		envp[nenv++] = sysdir;
	}
	envp[nenv] = NULL;
	if (pipe2(opipe, O_CLOEXEC) < 0 || pipe2(epipe, O_CLOEXEC) < 0) {
		rc = vss_error_set(err, -errno, "pipe: %s", strerror(errno));
		goto out;
	}
	if ((pid = fork()) < 0) {
		rc = vss_error_set(err, -errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		if (nul < 0 || dup2(nul, 0) < 0 || dup2(opipe[1], 1) < 0 || dup2(epipe[1], 2) < 0)
			_exit(127);
		close_range(3, ~0u, 0);
		execve(bin, (char *const *)args, envp);
		_exit(127);
	}
	close(opipe[1]);
	close(epipe[1]);
	opipe[1] = epipe[1] = -1;
	struct pollfd p[2] = { { opipe[0], POLLIN, 0 }, { epipe[0], POLLIN, 0 } };

	while (p[0].fd >= 0 || p[1].fd >= 0) {
		int left = (int)(deadline - time(NULL)), pr;
		char tmp[4096];
		ssize_t r;

		pr = left > 0 ? poll(p, 2, left * 1000) : 0;
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			kill(pid, SIGKILL);
			rc = vss_error_set(err, -ETIMEDOUT, "%s: no answer after %d s", argv[0],
					   LVM_DEADLINE_S);
			break;
		}
		if (p[0].fd >= 0 && p[0].revents) {
			if (olen + sizeof(tmp) + 1 > ocap) {
				char *bigger;

				if (ocap >= LVM_OUT_MAX) {
					kill(pid, SIGKILL);
					rc = vss_error_set(err, -E2BIG, "lvm %s: report larger "
							   "than %u bytes", argv[0], LVM_OUT_MAX);
					break;
				}
				ocap = ocap ? ocap * 2 : sizeof(tmp) * 16;
				if (!(bigger = realloc(obuf, ocap))) {
					kill(pid, SIGKILL);
					rc = vss_error_set(err, -ENOMEM, "out of memory");
					break;
				}
				obuf = bigger;
			}
			r = read(p[0].fd, obuf + olen, ocap - olen - 1);
			if (r > 0)
				olen += (size_t)r;
			else if (r == 0 || errno != EINTR)
				p[0].fd = -1;
		}
		if (p[1].fd >= 0 && p[1].revents) {
			r = read(p[1].fd, tmp, sizeof(tmp));
			if (r > 0)
				tail_append(ebuf, &elen, sizeof(ebuf), tmp, (size_t)r);
			else if (r == 0 || errno != EINTR)
				p[1].fd = -1;
		}
	}
	ebuf[elen] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		char line[512];

		last_line(ebuf, line, sizeof(line));
		rc = vss_error_set(err, strstr(ebuf, "nsufficient free space") ? -ENOSPC : -EIO,
				   "%s%s failed: %s", lvm ? "lvm " : "", argv[0],
				   line[0] ? line : "no reason given");
	}
	if (rc == 0 && out) {
		if (!obuf && !(obuf = malloc(1)))
			rc = vss_error_set(err, -ENOMEM, "out of memory");
		else {
			obuf[olen] = '\0';
			*out = obuf;
			*out_len = olen;
			obuf = NULL;
		}
	}
out:
	free(obuf);
	for (int i = 0; i < 2; i++) {
		if (opipe[i] >= 0)
			close(opipe[i]);
		if (epipe[i] >= 0)
			close(epipe[i]);
	}
	return rc;
}

static int report(const char *const *select_argv, struct vss_lvm_lv **out, size_t *n,
		  struct vss_error *err)
{
	const char *argv[16] = { "lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
				 "--binary", "-a", "-o", VSS_LVM_FIELDS };
	size_t k = 10;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	for (size_t i = 0; select_argv && select_argv[i] && k < 15; i++)
		argv[k++] = select_argv[i];
	argv[k] = NULL;
	if ((rc = lvm_run(argv, &buf, &len, err)) < 0)
		return rc;
	rc = vss_lvm_report_parse(buf, len, out, n, err);
	free(buf);
	return rc;
}

int vss_lvm_list(const char *vg, struct vss_lvm_lv **out, size_t *n, struct vss_error *err)
{
	const char *sel[] = { vg, NULL };

	if (vg && !vss_lvm_name_ok(vg))
		return vss_error_set(err, -EINVAL, "not a volume group name");
	return report(vg ? sel : NULL, out, n, err);
}

static int find_one(const char *vg, const char *name, struct vss_lvm_lv *lv,
		    struct vss_error *err);

int vss_lvm_get(const char *vg, const char *name, struct vss_lvm_lv *lv, struct vss_error *err)
{
	return find_one(vg, name, lv, err);
}

static int find_one(const char *vg, const char *name, struct vss_lvm_lv *lv,
		    struct vss_error *err)
{
	struct vss_lvm_lv *all;
	size_t n;
	int rc;

	if ((rc = vss_lvm_list(vg, &all, &n, err)) < 0)
		return rc;
	rc = vss_error_set(err, -ENOENT, "no logical volume %s/%s", vg, name);
	for (size_t i = 0; i < n; i++)
		if (strcmp(all[i].name, name) == 0) {
			*lv = all[i];
			rc = 0;
			break;
		}
	free(all);
	return rc;
}

/* ---- device-mapper ---- */

int vss_lvm_dm_uuid(dev_t dev, char *out, size_t size)
{
	char path[96];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/dm/uuid", major(dev), minor(dev));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -ENODEV;
	r = read(fd, out, size - 1);
	close(fd);
	if (r < 0)
		return -ENODEV;
	out[r] = '\0';
	if (r > 0 && out[r - 1] == '\n')
		out[r - 1] = '\0';
	return 0;
}

int vss_lvm_of_dev(dev_t dev, struct vss_lvm_lv *lv, struct vss_error *err)
{
	struct vss_lvm_lv *all;
	char uuid[160];
	size_t n;
	int rc;

	if (vss_lvm_dm_uuid(dev, uuid, sizeof(uuid)) < 0)
		return vss_error_set(err, -ENODEV, "device %u:%u is not a device-mapper device",
				     major(dev), minor(dev));
	/* "LVM-" + VG UUID + LV UUID (32 + 32, no dashes); a hidden part has a suffix. */
	if (strncmp(uuid, "LVM-", 4) != 0)
		return vss_error_set(err, -ENODEV, "device %u:%u is device-mapper but no logical "
				     "volume (%.40s)", major(dev), minor(dev),
				     uuid[0] ? uuid : "no UUID");
	if (strlen(uuid) != 4 + 64)
		return vss_error_set(err, -ENODEV, "device %u:%u is a hidden part of a logical "
				     "volume (%s)", major(dev), minor(dev), uuid + 4 + 64);
	if (!lv)
		return 0;
	if ((rc = vss_lvm_list(NULL, &all, &n, err)) < 0)
		return rc;
	rc = vss_error_set(err, -ENODEV, "device %u:%u is no logical volume lvm reports",
			   major(dev), minor(dev));
	for (size_t i = 0; i < n; i++)
		if (all[i].major == (int)major(dev) && all[i].minor == (int)minor(dev)) {
			*lv = all[i];
			rc = 0;
			break;
		}
	free(all);
	return rc;
}

static int dm_call(dev_t dev, unsigned long cmd, uint32_t flags, uint32_t *out_flags,
		   struct vss_error *err)
{
	struct dm_ioctl io;
	int fd, rc = 0;

	if ((fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC)) < 0)
		return vss_error_set(err, -errno, "/dev/mapper/control: %s", strerror(errno));
	memset(&io, 0, sizeof(io));
	io.version[0] = DM_VERSION_MAJOR;
	io.data_size = sizeof(io);
	io.data_start = sizeof(io);
	io.dev = makedev(major(dev), minor(dev));
	io.flags = flags;
	if (ioctl(fd, cmd, &io) < 0)
		rc = vss_error_set(err, -errno, "device-mapper %u:%u: %s", major(dev), minor(dev),
				   strerror(errno));
	else if (out_flags)
		*out_flags = io.flags;
	close(fd);
	return rc;
}

int vss_lvm_hold(dev_t dev, struct vss_error *err)
{
	return dm_call(dev, DM_DEV_SUSPEND, DM_SUSPEND_FLAG, NULL, err);
}

int vss_lvm_unhold(dev_t dev, bool *was, struct vss_error *err)
{
	uint32_t flags = 0;
	int rc;

	*was = false;
	if ((rc = dm_call(dev, DM_DEV_STATUS, 0, &flags, err)) < 0)
		return rc;
	if (!(flags & DM_SUSPEND_FLAG))
		return 0;
	*was = true;
	return dm_call(dev, DM_DEV_SUSPEND, 0, NULL, err);
}

/* ---- snapshots ---- */

int vss_lvm_snapshot(const struct vss_lvm_lv *origin, const unsigned char shadow_id[16],
		     const unsigned char set_id[16], bool persistent, uint64_t cow_size,
		     struct vss_lvm_lv *snap, struct vss_error *err)
{
	char name[VSS_LVM_NAME_MAX], of[2 * VSS_LVM_NAME_MAX], set_tag[64], id[37], bytes[32];
	const char *argv[24];
	uint64_t want = 0;
	size_t k = 0;
	int rc;

	if (!vss_lvm_name_ok(origin->vg) || !vss_lvm_name_ok(origin->name))
		return vss_error_set(err, -EINVAL, "not a logical volume name");
	vss_lvm_format_id(shadow_id, id);
	snprintf(name, sizeof(name), VSS_LVM_NAME_PREFIX "%s", id);
	snprintf(of, sizeof(of), "%s/%s", origin->vg, origin->name);
	vss_lvm_format_id(set_id, id);
	snprintf(set_tag, sizeof(set_tag), "vss.set=%s", id);
	argv[k++] = "lvcreate";
	argv[k++] = "-qq";
	argv[k++] = "--yes";
	argv[k++] = "--snapshot";
	argv[k++] = "--name";
	argv[k++] = name;
	argv[k++] = "--addtag";
	argv[k++] = VSS_LVM_TAG;
	argv[k++] = "--addtag";
	argv[k++] = set_tag;
	if (persistent) {
		argv[k++] = "--addtag";
		argv[k++] = VSS_LVM_TAG_PERSIST;
	}
	argv[k++] = "--permission";
	argv[k++] = "r";
	if (origin->thin) {
		/* Thin snapshots skip activation unless told otherwise. */
		argv[k++] = "--setactivationskip";
		argv[k++] = "n";
	} else {
		/* In bytes: lvcreate quietly shrinks a percentage to the room left. */
		want = cow_size ? cow_size
			 : (origin->size + VSS_LVM_COW_DIVISOR - 1) / VSS_LVM_COW_DIVISOR;
		want = (want + 511) / 512 * 512;   /* lvm takes whole sectors */
		snprintf(bytes, sizeof(bytes), "%llub", (unsigned long long)want);
		argv[k++] = "--size";
		argv[k++] = bytes;
	}
	argv[k++] = of;
	argv[k] = NULL;
	if ((rc = lvm_run(argv, NULL, NULL, err)) < 0) {
		if (rc == -ENOSPC) {
			char why[VSS_ERROR_MSG_MAX];

			snprintf(why, sizeof(why), "%s", err->msg);
			return vss_error_set(err, -ENOSPC, "volume group %s has no room for a "
					     "snapshot of %s (%llu bytes of shadow storage, %llu "
					     "free): %s", origin->vg, of, (unsigned long long)want,
					     (unsigned long long)origin->vg_free, why);
		}
		return rc;
	}
	return find_one(origin->vg, name, snap, err);
}

int vss_lvm_find(const char *vg, const unsigned char shadow_id[16], struct vss_lvm_lv *snap,
		 struct vss_error *err)
{
	char name[VSS_LVM_NAME_MAX], id[37];

	vss_lvm_format_id(shadow_id, id);
	snprintf(name, sizeof(name), VSS_LVM_NAME_PREFIX "%s", id);
	return find_one(vg, name, snap, err);
}

int vss_lvm_remove(const char *vg, const char *name, struct vss_error *err)
{
	char full[2 * VSS_LVM_NAME_MAX];
	struct vss_lvm_lv lv;
	const char *argv[] = { "lvremove", "-qq", "--yes", full, NULL };
	int rc;

	if (!vss_lvm_name_ok(vg) || !vss_lvm_name_ok(name))
		return vss_error_set(err, -EINVAL, "not a logical volume name");
	if ((rc = find_one(vg, name, &lv, err)) < 0)
		return rc;
	if (!lv.ours)
		return vss_error_set(err, -EPERM, "%s/%s is not a snapshot vss made: left alone",
				     vg, name);
	snprintf(full, sizeof(full), "%s/%s", vg, name);
	return lvm_run(argv, NULL, NULL, err);
}

int vss_lvm_extend(const char *vg, const char *name, uint64_t size, struct vss_error *err)
{
	char full[2 * VSS_LVM_NAME_MAX], bytes[32];
	struct vss_lvm_lv lv;
	const char *argv[] = { "lvextend", "-qq", "--size", bytes, full, NULL };
	int rc;

	if (!vss_lvm_name_ok(vg) || !vss_lvm_name_ok(name))
		return vss_error_set(err, -EINVAL, "not a logical volume name");
	if ((rc = find_one(vg, name, &lv, err)) < 0)
		return rc;
	if (!lv.ours || lv.thin)
		return vss_error_set(err, -EPERM, "%s/%s is not a classic snapshot vss made",
				     vg, name);
	if (size <= lv.size)
		return vss_error_set(err, -EINVAL, "%s/%s already holds %llu bytes: it only grows",
				     vg, name, (unsigned long long)lv.size);
	snprintf(full, sizeof(full), "%s/%s", vg, name);
	snprintf(bytes, sizeof(bytes), "%llub", (unsigned long long)((size + 511) / 512 * 512));
	return lvm_run(argv, NULL, NULL, err);
}

/* ---- changed blocks between thin snapshots ---- */

#define THIN_DELTA_BIN "/usr/sbin/thin_delta"

void vss_lvm_dm_name(const char *vg, const char *lv, const char *suffix, char *out, size_t size)
{
	const char *parts[2] = { vg, lv };
	size_t k = 0;

	for (int p = 0; p < 2; p++) {
		for (const char *c = parts[p]; *c && k + 3 < size; c++) {
			if (*c == '-')
				out[k++] = '-';
			out[k++] = *c;
		}
		if (p == 0 && k + 2 < size)
			out[k++] = '-';
	}
	out[k] = '\0';
	if (strlen(out) + strlen(suffix) < size)
		strcat(out, suffix);
}

/* Sends @msg to sector 0 of the device-mapper device named @name. */
static int dm_message(const char *name, const char *msg, struct vss_error *err)
{
	char buf[sizeof(struct dm_ioctl) + sizeof(struct dm_target_msg) + 64]
		__attribute__((aligned(8)));
	struct dm_ioctl *io = (struct dm_ioctl *)buf;
	struct dm_target_msg *tm = (struct dm_target_msg *)(buf + sizeof(*io));
	int fd, rc = 0;

	if (strlen(name) >= sizeof(io->name) || strlen(msg) >= 64)
		return vss_error_set(err, -ENAMETOOLONG, "device-mapper name too long");
	memset(buf, 0, sizeof(buf));
	io->version[0] = DM_VERSION_MAJOR;
	io->data_size = sizeof(buf);
	io->data_start = sizeof(*io);
	memcpy(io->name, name, strlen(name) + 1);
	tm->sector = 0;
	memcpy(tm->message, msg, strlen(msg) + 1);
	if ((fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC)) < 0)
		return vss_error_set(err, -errno, "/dev/mapper/control: %s", strerror(errno));
	if (ioctl(fd, DM_TARGET_MSG, io) < 0)
		rc = vss_error_set(err, -errno, "%s: message %s: %s", name, msg, strerror(errno));
	close(fd);
	return rc;
}

/* The number after @key=" in @tag (one XML element), or -EINVAL. */
static int xml_num(const char *tag, const char *end, const char *key, uint64_t *out)
{
	char pat[32];
	const char *p;
	char *e;

	snprintf(pat, sizeof(pat), " %s=\"", key);
	if (!(p = strstr(tag, pat)) || p >= end)
		return -EINVAL;
	p += strlen(pat);
	if (*p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(p, &e, 10);
	return (errno || *e != '"' || e >= end) ? -EINVAL : 0;
}

static int cmp_ext(const void *x, const void *y)
{
	const struct vss_lvm_extent *a = x, *b = y;

	return a->offset < b->offset ? -1 : a->offset > b->offset;
}

int vss_lvm_thin_delta_parse(const char *xml, size_t len, struct vss_lvm_extent **out,
			     size_t *n, uint64_t *chunk, struct vss_error *err)
{
	struct vss_lvm_extent *v = NULL;
	size_t count = 0, cap = 0;
	uint64_t sectors = 0;
	char *text;
	const char *p;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!(text = malloc(len + 1)))
		return vss_error_set(err, -ENOMEM, "out of memory");
	memcpy(text, xml, len);
	text[len] = '\0';
	if (strlen(text) != len) {
		rc = vss_error_set(err, -EINVAL, "thin_delta: a NUL in its output");
		goto out;
	}
	for (p = text; (p = strchr(p, '<'));) {
		const char *end = strchr(p, '>');
		uint64_t begin, length, bytes;

		if (!end) {
			rc = vss_error_set(err, -EINVAL, "thin_delta: an element is not closed");
			goto out;
		}
		if (strncmp(p, "<superblock ", 12) == 0) {
			if (sectors) {   /* one unit for every range */
				rc = vss_error_set(err, -EINVAL, "thin_delta: two superblocks");
				goto out;
			}
			if (xml_num(p, end, "data_block_size", &sectors) < 0 || sectors == 0 ||
			    sectors > (1u << 21)) {
				rc = vss_error_set(err, -EINVAL, "thin_delta: no data_block_size");
				goto out;
			}
		} else if (strncmp(p, "<different ", 11) == 0 ||
			   strncmp(p, "<right_only ", 12) == 0 ||
			   strncmp(p, "<left_only ", 11) == 0) {
			/* left_only: mapped in the older one, unmapped now (discarded): changed. */
			if (!sectors || xml_num(p, end, "begin", &begin) < 0 ||
			    xml_num(p, end, "length", &length) < 0 || length == 0 ||
			    begin > UINT64_MAX / (sectors * 512) / 2 ||
			    length > UINT64_MAX / (sectors * 512) / 2) {
				rc = vss_error_set(err, -EINVAL, "thin_delta: a malformed range");
				goto out;
			}
			bytes = sectors * 512;
			if (count == cap) {
				struct vss_lvm_extent *bigger;

				cap = cap ? cap * 2 : 64;
				if (!(bigger = realloc(v, cap * sizeof(*v)))) {
					rc = vss_error_set(err, -ENOMEM, "out of memory");
					goto out;
				}
				v = bigger;
			}
			v[count].offset = begin * bytes;
			v[count++].length = length * bytes;
		}
		p = end + 1;
	}
	if (!sectors) {
		rc = vss_error_set(err, -EINVAL, "thin_delta: no superblock");
		goto out;
	}
	if (count > 1) {
		size_t k = 0;

		qsort(v, count, sizeof(*v), cmp_ext);
		for (size_t i = 1; i < count; i++) {
			if (v[i].offset <= v[k].offset + v[k].length) {
				uint64_t e = v[i].offset + v[i].length;

				if (e > v[k].offset + v[k].length)
					v[k].length = e - v[k].offset;
			} else {
				v[++k] = v[i];
			}
		}
		count = k + 1;
	}
	*chunk = sectors * 512;
	*out = v;
	*n = count;
	v = NULL;
out:
	free(v);
	free(text);
	return rc;
}

int vss_lvm_thin_delta(const struct vss_lvm_lv *a, const struct vss_lvm_lv *b,
		       struct vss_lvm_extent **out, size_t *n, uint64_t *chunk,
		       struct vss_error *err)
{
	char tpool[DM_NAME_LEN], tmeta[DM_NAME_LEN + 16], id1[16], id2[16];
	const char *argv[] = { "--metadata-snap", "--snap1", id1, "--snap2", id2, tmeta, NULL };
	struct vss_error rerr;
	char *xml = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (!a->thin || !b->thin || a->thin_id < 0 || b->thin_id < 0 ||
	    strcmp(a->vg, b->vg) != 0 || strcmp(a->pool, b->pool) != 0 || !a->pool[0])
		return vss_error_set(err, -EINVAL, "%s/%s and %s/%s are not thin volumes of one "
				     "pool", a->vg, a->name, b->vg, b->name);
	if (!vss_lvm_name_ok(a->vg) || !vss_lvm_name_ok(a->pool))
		return vss_error_set(err, -EINVAL, "not a logical volume name");
	vss_lvm_dm_name(a->vg, a->pool, "-tpool", tpool, sizeof(tpool));
	strcpy(tmeta, "/dev/mapper/");
	vss_lvm_dm_name(a->vg, a->pool, "_tmeta", tmeta + 12, sizeof(tmeta) - 12);
	snprintf(id1, sizeof(id1), "%d", a->thin_id);
	snprintf(id2, sizeof(id2), "%d", b->thin_id);
	if ((rc = dm_message(tpool, "reserve_metadata_snap", err)) < 0)
		return rc;
	rc = run_tool(THIN_DELTA_BIN, argv, false, &xml, &len, err);
	if (dm_message(tpool, "release_metadata_snap", &rerr) < 0 && rc == 0)
		rc = vss_error_set(err, rerr.code, "%s", rerr.msg);
	if (rc == 0)
		rc = vss_lvm_thin_delta_parse(xml, len, out, n, chunk, err);
	free(xml);
	return rc;
}
