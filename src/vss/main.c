/*
 * vss - the command line of the vss service: parses a command, asks vssd
 * through the client library, prints the answer.  The commands and exit
 * codes are the contract in doc/cli.md and vss(8).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/client.h>
#include <vss/version.h>

#include "cli.h"

static void usage(FILE *f)
{
	fputs("usage: vss [--run-dir DIR] COMMAND [ARGS]\n"
	      "       vss -h|--help | --version | help\n"
	      "\n"
	      "Volumes (root; list: anyone):\n"
	      "  volume create NAME --size SIZE [--backing PATH] [--block-size SIZE]\n"
	      "                | NAME --rbd POOL/IMAGE [--size SIZE]\n"
	      "  volume list [--json]                 (or: list volumes)\n"
	      "  volume delete NAME [--force]\n"
	      "  volume mount NAME DIR [--mkfs ext4|xfs|btrfs] [-o|--options OPTIONS]\n"
	      "  volume umount NAME                   (or: volume unmount)\n"
	      "Shadow copies (operator; list: anyone):\n"
	      "  create shadow --for TARGET [--for TARGET ...] [--persistent] [--no-writers]\n"
	      "                [--provider NAME] [--allow-live] [--freeze-timeout SECONDS]\n"
	      "                [--json]\n"
	      "  list shadows [--for TARGET] [--set SET_ID] [--json]\n"
	      "  delete shadows (--shadow ID | --set SET_ID | --for TARGET --oldest |\n"
	      "                  --for TARGET --all | --all) [-q|--quiet]\n"
	      "  expose (SHADOW_ID DIR | --gmt VOLUME)  (--gmt: root)\n"
	      "  unexpose (DIR | --gmt VOLUME)\n"
	      "  export SHADOW_ID|VOLUME [--socket PATH | --port N [--listen ADDR]]\n"
	      "         [--changed-since SHADOW_ID] [--tls-certificates DIR]\n"
	      "         (read-only over NBD; --socket PATH, --port, --listen,\n"
	      "          --tls-certificates: root)\n"
	      "  unexport SHADOW_ID|VOLUME\n"
	      "  list exports [--json]\n"
	      "  diff SHADOW_ID [SHADOW_ID|now] [--json]\n"
	      "  list bookmarks [--for TARGET] [--json]\n"
	      "  delete bookmark SHADOW_ID\n"
	      "  revert SHADOW_ID                     (root)\n"
	      "A file's earlier versions (anyone, as far as it may read them):\n"
	      "  versions PATH [--read auto|mount|direct] [--json]\n"
	      "  restore-version PATH --shadow ID [--to DEST] [--force] [--read auto|mount|direct]\n"
	      "                  [--json]\n"
	      "Scheduled shadows (add, delete: root; run: operator; list: anyone):\n"
	      "  schedule add --for TARGET [--for TARGET ...] (--every DURATION |\n"
	      "               --at TIME [--on DAYS]) --keep hourly=N,daily=N,weekly=N,...\n"
	      "               [--persistent] [--no-writers] [--json]\n"
	      "  schedule list [--json]\n"
	      "  schedule delete ID\n"
	      "  schedule run ID [--json]\n"
	      "Shadow storage (root; list: anyone):\n"
	      "  list shadowstorage [--for VOLUME] [--json]\n"
	      "  add shadowstorage --for VOLUME [--on DIR] [--maxsize SIZE]\n"
	      "  resize shadowstorage --for VOLUME --maxsize SIZE\n"
	      "  delete shadowstorage --for VOLUME\n"
	      "Requesters and writers (operator; --in-place: root):\n"
	      "  exec [--for TARGET ...] [--type full|incremental|differential|log|copy]\n"
	      "       [--persistent] [--no-writers] [--script FILE]\n"
	      "       [--exclude-writer NAME ...] [--allow-live] [--provider NAME]\n"
	      "       [--freeze-timeout SECONDS] [--in-place] [--components FILE]\n"
	      "       -- COMMAND [ARGS...]\n"
	      "Backups (operators; doc/backup-format.md):\n"
	      "  backup create --to REPO [--for TARGET ...] [--image]\n"
	      "                [--type full|incremental|differential|log|copy]\n"
	      "                [--component WRITER[:PATH] ...] [--no-writers]\n"
	      "                [--allow-live] [-q|--quiet] [--json]\n"
	      "  backup list --in REPO [--json]\n"
	      "  backup show --in REPO ID [--json]\n"
	      "  backup verify --in REPO [ID]\n"
	      "  backup delete --in REPO ID [--with-dependents]\n"
	      "  restore --from REPO [ID] [--to DIR] [--component [WRITER:]PATH ...]\n"
	      "          [--path PATH ...] [--no-writers] [-q|--quiet] [--json]\n"
	      "          (staged restores, at boot: --at-boot [--json])\n"
	      "Service (anyone; abort: root):\n"
	      "  status [--json]\n"
	      "  abort backup [SESSION]\n"
	      "  list writers [--json]\n"
	      "  list providers [--for TARGET] [--json]\n"
	      "\n"
	      "Every command takes --run-dir DIR (default $VSS_RUN_DIR or " VSS_DEFAULT_RUN_DIR ")\n"
	      "and --json (vssd's answer as one JSON document; exec ignores it).\n"
	      "Sizes: bytes or K, M, G, T (powers of 1024); shadow storage also takes\n"
	      "UNBOUNDED and N% of the volume.  IDs: a unique prefix of 8 or more.\n"
	      "create shadow also takes HOST:TARGET, another host's (root; doc/peers.md).\n"
	      "Roles: root; operator (a member of vssd's operator group, by default\n"
	      "vss); anyone (any user who can reach the socket).\n"
	      "Exit codes: 0 success, 1 failed, 2 usage error, 3 vssd not reachable;\n"
	      "exec exits with COMMAND's status.  More: man 8 vss.\n", f);
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "status", cmd_status },
	{ "abort", cmd_abort },
	{ "volume", cmd_volume },
	{ "create", cmd_create },
	{ "list", cmd_list },
	{ "delete", cmd_delete },
	{ "expose", cmd_expose },
	{ "unexpose", cmd_unexpose },
	{ "export", cmd_export },
	{ "unexport", cmd_unexport },
	{ "add", cmd_add },
	{ "resize", cmd_resize },
	{ "exec", cmd_exec },
	{ "backup", cmd_backup },
	{ "restore", cmd_restore },
	{ "diff", cmd_diff },
	{ "revert", cmd_revert },
	{ "schedule", cmd_schedule },
	{ "versions", cmd_versions },
	{ "restore-version", cmd_restore_version },
};

int main(int argc, char **argv)
{
	int i = 1;

	signal(SIGPIPE, SIG_IGN);
	/* Options before the command: --run-dir, --help, --version. */
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("vss %s\n", VSS_VERSION);
			return 0;
		}
		if (strcmp(argv[i], "--run-dir") == 0 && i + 1 < argc) {
			setenv("VSS_RUN_DIR", argv[i + 1], 1);
			i += 2;
			continue;
		}
		if (strncmp(argv[i], "--run-dir=", 10) == 0) {
			setenv("VSS_RUN_DIR", argv[i] + 10, 1);
			i++;
			continue;
		}
		return cli_error(EXIT_USAGE, "unknown option %s (see vss --help)", argv[i]);
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[i], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (strcmp(argv[i], commands[k].name) == 0)
			return commands[k].fn(argc - i - 1, argv + i + 1);
	return cli_error(EXIT_USAGE, "unknown command \"%s\" (see vss --help)", argv[i]);
}

/* "create", "list", "delete", "add", "resize" name what they act on. */
static int sub(int argc, char **argv, const char *verb,
	       const char *const *names, int (*const *fns)(int, char **), int n)
{
	if (argc < 1)
		return cli_error(EXIT_USAGE, "%s what? (see vss --help)", verb);
	for (int k = 0; k < n; k++)
		if (strcmp(argv[0], names[k]) == 0)
			return fns[k](argc - 1, argv + 1);
	return cli_error(EXIT_USAGE, "unknown command \"%s %s\" (see vss --help)", verb,
			 argv[0]);
}

int cmd_create(int argc, char **argv)
{
	static const char *const names[] = { "shadow" };
	static int (*const fns[])(int, char **) = { cmd_shadow_create };

	return sub(argc, argv, "create", names, fns, 1);
}

int cmd_list(int argc, char **argv)
{
	static const char *const names[] = { "shadows", "shadowstorage", "writers",
					     "providers", "volumes", "bookmarks", "exports" };
	static int (*const fns[])(int, char **) = { cmd_shadow_list, cmd_storage_list,
		cmd_writers_list, cmd_providers_list, cmd_volume_list, cmd_bookmark_list,
		cmd_export_list };

	return sub(argc, argv, "list", names, fns, 7);
}

int cmd_delete(int argc, char **argv)
{
	static const char *const names[] = { "shadows", "shadowstorage", "bookmark" };
	static int (*const fns[])(int, char **) = { cmd_shadow_delete, cmd_storage_delete,
		cmd_bookmark_delete };

	return sub(argc, argv, "delete", names, fns, 3);
}

int cmd_add(int argc, char **argv)
{
	static const char *const names[] = { "shadowstorage" };
	static int (*const fns[])(int, char **) = { cmd_storage_add };

	return sub(argc, argv, "add", names, fns, 1);
}

int cmd_resize(int argc, char **argv)
{
	static const char *const names[] = { "shadowstorage" };
	static int (*const fns[])(int, char **) = { cmd_storage_resize };

	return sub(argc, argv, "resize", names, fns, 1);
}
