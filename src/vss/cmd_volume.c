/*
 * vss/cmd_volume.c - vss volume create|list|delete|mount|umount.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/client.h>
#include <vss/cow.h>

#include "cli.h"

/* --@name SIZE into @args' @key and *@out (left alone if not given). */
static int parse_size_opt(const struct cli_args *a, const char *name, json_t *args,
			  const char *key, uint64_t *out)
{
	const char *s = cli_get(a, name);

	if (!s)
		return 0;
	if (vss_parse_size(s, out) < 0)
		return cli_error(EXIT_USAGE, "%s: --%s: \"%s\" is not a size (bytes, or a "
				 "number with K, M, G or T)", a->cmd, name, s);
	json_object_set_new(args, key, json_integer((json_int_t)*out));
	return 0;
}

/*
 * A size vssd would refuse as such is a usage error (exit 2), as one that
 * does not parse is: a block size that is not a power of two from 4K to
 * 1M, and without --backing or --rbd a size that is 0 or not a multiple
 * of 4K (with --backing the backing's size wins; with --rbd a size creates
 * the image if it does not exist).
 */
static int check_sizes(const struct cli_args *a, uint64_t size, uint64_t block_size)
{
	if (block_size < VSS_COW_BLOCK_MIN || block_size > VSS_COW_BLOCK_MAX ||
	    (block_size & (block_size - 1)))
		return cli_error(EXIT_USAGE, "%s: --block-size: \"%s\" is not a power of two "
				 "from 4K to 1M", a->cmd, cli_get(a, "block-size"));
	if (!cli_has(a, "backing") && (size % 4096 || (size == 0 && !cli_has(a, "rbd"))))
		return cli_error(EXIT_USAGE, "%s: --size: \"%s\" is not a positive multiple "
				 "of 4K", a->cmd, cli_get(a, "size"));
	return 0;
}

static int volume_create(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "size", 0, true }, { "backing", 0, true }, { "block-size", 0, true },
		{ "rbd", 0, true }, { NULL, 0, false },
	};
	struct cli_args a;
	json_t *args, *res;
	uint64_t size = 0, block_size = VSS_COW_BLOCK_DEFAULT;
	char b1[32];
	int rc;

	if ((rc = cli_parse(&a, "volume create", argc, argv, opts, 1, 1)))
		return rc;
	if (cli_has(&a, "rbd") && (cli_has(&a, "backing") || cli_has(&a, "block-size")))
		return cli_error(EXIT_USAGE, "volume create: --rbd takes neither --backing nor "
				 "--block-size");
	if (!cli_has(&a, "size") && !cli_has(&a, "backing") && !cli_has(&a, "rbd"))
		return cli_error(EXIT_USAGE, "volume create: --size is needed without --backing "
				 "or --rbd");
	args = json_pack("{s:s}", "name", a.pos[0]);
	if ((rc = parse_size_opt(&a, "size", args, "size", &size)) ||
	    (rc = parse_size_opt(&a, "block-size", args, "block_size", &block_size)) ||
	    (rc = check_sizes(&a, size, block_size))) {
		json_decref(args);
		return rc;
	}
	if (cli_has(&a, "rbd"))
		json_object_set_new(args, "rbd", json_string(cli_get(&a, "rbd")));
	if (cli_has(&a, "backing")) {
		char *p = cli_abs_path(cli_get(&a, "backing"));

		json_object_set_new(args, "backing", json_string(p));
		free(p);
	}
	if ((rc = cli_call(&a, "volume.create", args, &res)))
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("Volume %s created: %s, block size %lld, device %s\n", a.pos[0],
		       cli_bytes((uint64_t)json_integer_value(json_object_get(res, "size")), b1),
		       json_integer_value(json_object_get(res, "block_size")),
		       json_string_value(json_object_get(res, "device")));
	json_decref(res);
	return 0;
}

int cmd_volume_list(int argc, char **argv)
{
	static const char *const hdr[] = { "NAME", "SIZE", "BLOCK", "BACKING", "DEVICE",
					   "MOUNT", "SHADOWS" };
	struct cli_args a;
	json_t *res, *v;
	size_t i;
	int rc;

	if ((rc = cli_parse(&a, "volume list", argc, argv, NULL, 0, 0)) ||
	    (rc = cli_call(&a, "volume.list", NULL, &res)))
		return rc;
	if (a.json) {
		cli_print_json(res);
	} else if (json_array_size(json_object_get(res, "volumes")) == 0) {
		puts(CLI_NOTHING_FOUND);
	} else {
		struct cli_table *t = cli_table_new(7, hdr);

		json_array_foreach(json_object_get(res, "volumes"), i, v) {
			char size[32], block[32], shadows[24];
			const char *row[7];

			cli_bytes((uint64_t)json_integer_value(json_object_get(v, "size")), size);
			cli_bytes((uint64_t)json_integer_value(json_object_get(v, "block_size")),
				  block);
			snprintf(shadows, sizeof(shadows), "%lld",
				 json_integer_value(json_object_get(v, "shadows")));
			row[0] = json_string_value(json_object_get(v, "name"));
			row[1] = size;
			row[2] = block;
			row[3] = json_string_value(json_object_get(v, "backing"));
			row[4] = json_string_value(json_object_get(v, "device"));
			row[5] = json_string_value(json_object_get(v, "mount"));
			row[6] = shadows;
			cli_table_add(t, row);
		}
		cli_table_print(t);
	}
	json_decref(res);
	return 0;
}

static int volume_delete(int argc, char **argv)
{
	static const struct cli_opt opts[] = { { "force", 0, false }, { NULL, 0, false } };
	struct cli_args a;
	json_t *res;
	int rc;

	if ((rc = cli_parse(&a, "volume delete", argc, argv, opts, 1, 1)) ||
	    (rc = cli_call(&a, "volume.delete", json_pack("{s:s, s:b}", "name", a.pos[0],
							  "force", cli_has(&a, "force")),
			   &res)))
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("Volume %s deleted\n", a.pos[0]);
	json_decref(res);
	return 0;
}

static int volume_mount(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{ "mkfs", 0, true }, { "options", 'o', true }, { NULL, 0, false },
	};
	struct cli_args a;
	json_t *args, *res;
	const char *mkfs;
	char *dir;
	int rc;

	if ((rc = cli_parse(&a, "volume mount", argc, argv, opts, 2, 2)))
		return rc;
	mkfs = cli_get(&a, "mkfs");
	if (mkfs && strcmp(mkfs, "ext4") && strcmp(mkfs, "xfs") && strcmp(mkfs, "btrfs"))
		return cli_error(EXIT_USAGE, "volume mount: --mkfs takes ext4, xfs or btrfs");
	dir = cli_mount_point(a.pos[1]);
	args = json_pack("{s:s, s:s}", "name", a.pos[0], "dir", dir);
	free(dir);
	if (mkfs)
		json_object_set_new(args, "mkfs", json_string(mkfs));
	if (cli_has(&a, "options"))
		json_object_set_new(args, "options", json_string(cli_get(&a, "options")));
	if ((rc = cli_call(&a, "volume.mount", args, &res)))
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("Volume %s mounted at %s (%s on %s)\n", a.pos[0],
		       json_string_value(json_object_get(res, "mount")),
		       json_string_value(json_object_get(res, "fstype")),
		       json_string_value(json_object_get(res, "loop")));
	json_decref(res);
	return 0;
}

static int volume_umount(int argc, char **argv)
{
	struct cli_args a;
	json_t *res;
	int rc;

	if ((rc = cli_parse(&a, "volume umount", argc, argv, NULL, 1, 1)) ||
	    (rc = cli_call(&a, "volume.umount", json_pack("{s:s}", "name", a.pos[0]), &res)))
		return rc;
	if (a.json)
		cli_print_json(res);
	else
		printf("Volume %s unmounted from %s\n", a.pos[0],
		       json_string_value(json_object_get(res, "mount")));
	json_decref(res);
	return 0;
}

int cmd_volume(int argc, char **argv)
{
	if (argc < 1)
		return cli_error(EXIT_USAGE, "volume what? (create, list, delete, mount, umount)");
	if (strcmp(argv[0], "create") == 0)
		return volume_create(argc - 1, argv + 1);
	if (strcmp(argv[0], "list") == 0)
		return cmd_volume_list(argc - 1, argv + 1);
	if (strcmp(argv[0], "delete") == 0)
		return volume_delete(argc - 1, argv + 1);
	if (strcmp(argv[0], "mount") == 0)
		return volume_mount(argc - 1, argv + 1);
	if (strcmp(argv[0], "umount") == 0 || strcmp(argv[0], "unmount") == 0)
		return volume_umount(argc - 1, argv + 1);
	return cli_error(EXIT_USAGE, "unknown command \"volume %s\" (see vss --help)", argv[0]);
}
