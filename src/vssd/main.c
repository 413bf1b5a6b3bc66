/*
 * vssd - the vss service.  Parses its arguments, starts the service
 * (lib/service), waits for SIGTERM or SIGINT, stops it cleanly.  Stays in
 * the foreground; logs to standard error.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/client.h>

#include "service/service.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: vssd [--state-dir DIR] [--run-dir DIR] [--operator-group GROUP]\n"
		"  --state-dir DIR         catalog, volume backing files, diff areas "
		"(default $VSS_STATE_DIR or %s)\n"
		"  --run-dir DIR           socket, devices (default $VSS_RUN_DIR or %s)\n"
		"  --operator-group GROUP  members may take and delete shadow copies and "
		"run backups (default vss)\n",
		VSS_DEFAULT_STATE_DIR, VSS_DEFAULT_RUN_DIR);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "operator-group", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct vss_service_config cfg = { 0 };
	struct vss_service *svc;
	struct vss_error err = { 0 };
	sigset_t set;
	int c, sig;

	cfg.state_dir = getenv("VSS_STATE_DIR");
	cfg.run_dir = getenv("VSS_RUN_DIR");
	if (getenv("VSS_TEST_FREEZE_HOLD_MS"))
		cfg.test_freeze_hold_ms = (unsigned int)atoi(getenv("VSS_TEST_FREEZE_HOLD_MS"));
	if (getenv("VSS_TEST_FREEZE_LIMIT_MS"))
		cfg.test_freeze_limit_ms = (unsigned int)atoi(getenv("VSS_TEST_FREEZE_LIMIT_MS"));
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			cfg.state_dir = optarg;
			break;
		case 'r':
			cfg.run_dir = optarg;
			break;
		case 'g':
			cfg.operator_group = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vssd %s\n", VSS_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (!cfg.state_dir || !*cfg.state_dir)
		cfg.state_dir = VSS_DEFAULT_STATE_DIR;
	if (!cfg.run_dir || !*cfg.run_dir)
		cfg.run_dir = VSS_DEFAULT_RUN_DIR;

	/* Every thread inherits this mask; only sigwait() below sees the signals. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (vss_service_open(&cfg, &svc, &err) < 0) {
		fprintf(stderr, "vssd: error: %s\n", err.msg);
		return 1;
	}
	do
		sigwait(&set, &sig);
	while (sig == SIGHUP);
	vss_service_close(svc);
	return 0;
}
