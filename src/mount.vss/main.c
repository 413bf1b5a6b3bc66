/*
 * mount.vss - the mount(8) helper of vss volumes, so that a volume can be
 * an /etc/fstab line and a systemd mount unit:
 *
 *     data  /srv/data  vss  nofail,x-systemd.requires=vssd.service  0 0
 *
 * mount(8) runs it as "mount.vss SPEC DIR [-sfnv] [-N NS] [-o OPTIONS]"
 * (the helper convention of mount(8), "External helpers").  SPEC is a
 * volume's name; the helper asks vssd for volume.mount, exactly as `vss
 * volume mount NAME DIR -o OPTIONS` does, after dropping the options that
 * are mount(8)'s and systemd's rather than the filesystem's (libmount's
 * userspace options: nofail, _netdev, noauto, x-*, comment=...).
 *
 * vssd mounts its volumes again when it starts (the catalog), so at boot
 * the volume is usually mounted already when systemd gets to its mount
 * unit: a volume mounted at DIR is success, a volume mounted elsewhere is
 * a failure naming where.  Exit codes are mount(8)'s: 0, 1 (usage or
 * permissions), 32 (the mount failed).  doc/service.md, "Moving an
 * existing filesystem under vss"; mount.vss(8).
 */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <libmount.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client_json.h"

enum { EX_OK = 0, EX_USAGE = 1, EX_FAIL = 32 };

static bool verbose;

static int fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("mount.vss: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

static void usage(FILE *f)
{
	fputs("usage: mount.vss VOLUME DIR [-f] [-v] [-s] [-n] [-o OPTIONS] [-t TYPE]\n"
	      "       mount.vss -h|--help\n"
	      "mount(8)'s helper for fstab lines of type vss: mounts the vss volume VOLUME\n"
	      "at DIR through vssd, as `vss volume mount VOLUME DIR -o OPTIONS` (root).\n"
	      "  -o OPTIONS  mount options; mount(8)'s and systemd's own (nofail, _netdev,\n"
	      "              x-systemd.*, comment=...) are left out\n"
	      "  -f          do nothing but check the arguments\n"
	      "  -v          say what is done\n"
	      "  -s, -n, -t TYPE\n"
	      "              taken and ignored (mount(8) passes them)\n"
	      "  -N NS       refused: vssd mounts in its own mount namespace\n"
	      "Exit: 0 mounted (or mounted at DIR already), 1 usage or permission, 32 failed.\n",
	      f);
}

/*
 * @opts without the options that are not the filesystem's: what libmount
 * calls userspace options (fstab's nofail, noauto, _netdev, user, x-*...)
 * and "defaults".  *@out is NULL when nothing is left.
 */
static int fs_options(const char *opts, char **out)
{
	char *vfs = NULL, *fs = NULL, *user = NULL;
	int rc;

	*out = NULL;
	if (!opts || !*opts)
		return 0;
	if (mnt_split_optstr(opts, &user, &vfs, &fs, 0, 0) != 0)
		return -EINVAL;
	rc = 0;
	if (vfs)
		mnt_optstr_remove_option(&vfs, "defaults");
	if (vfs && *vfs && mnt_optstr_append_option(out, vfs, NULL) != 0)
		rc = -ENOMEM;
	if (rc == 0 && fs && *fs && mnt_optstr_append_option(out, fs, NULL) != 0)
		rc = -ENOMEM;
	free(vfs);
	free(fs);
	free(user);
	if (rc < 0) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

/* The mount of volume @name vssd knows (NULL: none) into @mount; -ENOENT: no such volume. */
static int volume_mount_now(struct vss_client *c, const char *name, char *mount, size_t size,
			    struct vss_error *err)
{
	json_t *res = NULL, *v;
	size_t i;
	int rc;

	mount[0] = '\0';
	if ((rc = vss_client_call_json(c, "volume.list", NULL, &res, err)) < 0)
		return rc;
	rc = -ENOENT;
	json_array_foreach(json_object_get(res, "volumes"), i, v) {
		const char *n = json_string_value(json_object_get(v, "name"));
		const char *m = json_string_value(json_object_get(v, "mount"));

		if (!n || strcmp(n, name) != 0)
			continue;
		if (m)
			snprintf(mount, size, "%s", m);
		rc = 0;
		break;
	}
	json_decref(res);
	if (rc == -ENOENT)
		vss_error_set(err, rc, "no volume named \"%s\" (vss volume list)", name);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *options = NULL, *name, *dir_arg;
	char dir[PATH_MAX], now[PATH_MAX], nowreal[PATH_MAX], *fsopts = NULL;
	struct vss_error err = { 0 };
	struct vss_client *c = NULL;
	bool fake = false;
	json_t *args, *res = NULL;
	int opt, rc;

	if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return EX_OK;
	}
	if (argc < 3) {
		usage(stderr);
		return EX_USAGE;
	}
	name = argv[1];
	dir_arg = argv[2];
	/* The options come after SPEC and DIR: getopt from there. */
	optind = 3;
	while ((opt = getopt_long(argc, argv, "sfnvN:o:t:", opts, NULL)) != -1) {
		switch (opt) {
		case 's':       /* sloppy: every option is passed on anyway */
		case 'n':       /* no mtab: there is none */
		case 't':       /* vss (or vss.SUBTYPE): nothing to choose */
			break;
		case 'f':
			fake = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'N':
			return fail(EX_USAGE, "-N: vssd mounts in its own mount namespace; "
				    "run mount there instead");
		case 'o':
			options = optarg;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return EX_USAGE;
	}
	if (dir_arg[0] != '/')
		return fail(EX_USAGE, "%s: the mount point must be an absolute path", dir_arg);
	/* vssd refuses symlinks in the path itself; what is compared below is this. */
	snprintf(dir, sizeof(dir), "%s", dir_arg);
	if (fs_options(options, &fsopts) < 0)
		return fail(EX_USAGE, "cannot parse the mount options \"%s\"", options);
	if (verbose)
		fprintf(stderr, "mount.vss: volume %s at %s, options \"%s\"\n", name, dir,
			fsopts ? fsopts : "");
	if (fake) {
		free(fsopts);
		return EX_OK;
	}
	if ((rc = vss_client_open(vss_client_run_dir(NULL), &c, &err)) < 0) {
		free(fsopts);
		return fail(EX_FAIL, "%s (is vssd running? an fstab line of a vss volume needs "
			    "x-systemd.requires=vssd.service)", err.msg);
	}
	if ((rc = volume_mount_now(c, name, now, sizeof(now), &err)) < 0)
		goto failed;
	if (now[0]) {
		/* vssd mounted it again at its start, or someone did by hand. */
		if (strcmp(now, dir) == 0 || (realpath(dir, nowreal) && strcmp(now, nowreal) == 0)) {
			if (verbose)
				fprintf(stderr, "mount.vss: volume %s is mounted at %s already\n",
					name, now);
			rc = 0;
			goto out;
		}
		rc = vss_error_set(&err, -EBUSY, "volume %s is already mounted at %s, not %s", name,
				   now, dir);
		goto failed;
	}
	args = json_pack("{s:s, s:s}", "name", name, "dir", dir);
	if (args && fsopts)
		json_object_set_new(args, "options", json_string(fsopts));
	if ((rc = vss_client_call_json(c, "volume.mount", args, &res, &err)) < 0)
		goto failed;
	if (verbose)
		fprintf(stderr, "mount.vss: volume %s mounted at %s (%s on %s)\n", name,
			json_string_value(json_object_get(res, "mount")),
			json_string_value(json_object_get(res, "fstype")),
			json_string_value(json_object_get(res, "loop")));
	json_decref(res);
	goto out;
failed:
	fail(rc == -EACCES ? EX_USAGE : EX_FAIL, "%s", err.msg);
out:
	vss_client_close(c);
	free(fsopts);
	return rc == 0 ? EX_OK : rc == -EACCES ? EX_USAGE : EX_FAIL;
}
