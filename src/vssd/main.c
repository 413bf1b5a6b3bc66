/*
 * vssd - the vss service.  Parses its arguments, starts the service
 * (lib/service), waits for SIGTERM or SIGINT, stops it cleanly.  Stays in
 * the foreground; logs to standard error.
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/client.h>

#include "service/service.h"

/* SECONDS (a decimal number, at least 0.1) in milliseconds, or 0 if it is not one. */
static unsigned long long seconds_ms(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v >= 0.1 && v <= 1e9))
		return 0;
	return (unsigned long long)(v * 1000.0 + 0.5);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vssd [--state-dir DIR] [--run-dir DIR] [--operator-group GROUP]\n"
		"            [--hold-lease SECONDS] [--hold-max SECONDS]\n"
		"  --state-dir DIR         catalog, volume backing files, diff areas "
		"(default $VSS_STATE_DIR or %s)\n"
		"  --run-dir DIR           socket, devices (default $VSS_RUN_DIR or %s)\n"
		"  --operator-group GROUP  members may take and delete shadow copies and "
		"run backups (default vss)\n"
		"  --hold-lease SECONDS    a backup or held set whose requester is not heard "
		"from\n"
		"                          this long is aborted, unless it asked for another "
		"lease\n"
		"                          (default %u)\n"
		"  --hold-max SECONDS      no backup or held set lasts longer (default %llu)\n",
		VSS_DEFAULT_STATE_DIR, VSS_DEFAULT_RUN_DIR, VSS_HOLD_LEASE_MS / 1000u,
		VSS_HOLD_MAX_MS / 1000ull);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "operator-group", required_argument, NULL, 'g' },
		{ "hold-lease", required_argument, NULL, 'l' },
		{ "hold-max", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct vss_service_config cfg = { 0 };
	struct vss_service *svc;
	struct vss_error err = { 0 };
	unsigned long long ms;
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
		case 'l':
		case 'm':
			ms = seconds_ms(optarg);
			if (!ms || (c == 'l' && ms > UINT_MAX)) {
				fprintf(stderr, "vssd: error: --hold-%s takes a number of seconds "
					"from 0.1\n", c == 'l' ? "lease" : "max");
				return 2;
			}
			if (c == 'l')
				cfg.hold_lease_ms = (unsigned int)ms;
			else
				cfg.hold_max_ms = ms;
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
	if (cfg.hold_lease_ms > (cfg.hold_max_ms ? cfg.hold_max_ms : VSS_HOLD_MAX_MS)) {
		fprintf(stderr, "vssd: error: --hold-lease is longer than --hold-max\n");
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
