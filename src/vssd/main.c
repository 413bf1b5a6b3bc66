/*
 * vssd - the vss service.  Parses its arguments, starts the service
 * (lib/service), waits for SIGTERM or SIGINT, stops it cleanly.  Stays in
 * the foreground; logs to standard error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <vss/client.h>
#include <vss/version.h>

#include "service/peer.h"
#include "service/service.h"

/*
 * Tells the service manager how vssd is doing (sd_notify(3)'s protocol:
 * one datagram of "KEY=VALUE" lines to the socket in $NOTIFY_SOCKET, a
 * path or "@" for the abstract namespace), so that vssd.service, of
 * Type=notify, is started only once the volumes are served and mounted
 * again, and units ordered after it (a volume's fstab line, a database on
 * a vss volume) find them.  Nothing to do without $NOTIFY_SOCKET; a
 * failure is logged, never fatal.
 */
static char notify_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

/* Reads $NOTIFY_SOCKET and removes it, first thing: no child vssd starts
 * (nbdkit, a writer) inherits it and speaks for vssd. */
static void notify_setup(void)
{
	const char *env = getenv("NOTIFY_SOCKET");

	if (!env)
		return;
	if (strlen(env) >= sizeof(notify_path) || (env[0] != '/' && env[0] != '@'))
		fprintf(stderr, "vssd: NOTIFY_SOCKET \"%s\" is not a socket path; "
			"not telling the service manager\n", env);
	else
		snprintf(notify_path, sizeof(notify_path), "%s", env);
	unsetenv("NOTIFY_SOCKET");
}

static void notify(const char *state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(notify_path);
	int fd;

	if (!n)
		return;
	memcpy(sa.sun_path, notify_path, n);
	if (notify_path[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		fprintf(stderr, "vssd: cannot tell the service manager \"%s\": %s\n", state,
			strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vssd [--state-dir DIR] [--run-dir DIR] [--operator-group GROUP]\n"
		"            [--max-connections N] [--max-connections-per-user N]\n"
		"            [--reserved-connections N] [--idle-timeout SECONDS]\n"
		"            [--frame-timeout SECONDS] [--hold-lease SECONDS] [--hold-max SECONDS]\n"
		"            [--ceph-conf FILE] [--ceph-id ID]\n"
		"            [--peers FILE] [--host-name NAME] [--peer-timeout SECONDS]\n"
		"  --state-dir DIR         catalog, volume backing files, diff areas "
		"(default $VSS_STATE_DIR or %s)\n"
		"  --run-dir DIR           socket, devices (default $VSS_RUN_DIR or %s)\n"
		"  --operator-group GROUP  members may take and delete shadow copies and "
		"run backups (default vss)\n"
		"The control socket (doc/protocol.md, \"Limits\"):\n"
		"  --max-connections N     connections served at once (default %u)\n"
		"  --max-connections-per-user N\n"
		"                          connections at once from one uid other than root "
		"(default %u)\n"
		"  --reserved-connections N\n"
		"                          of --max-connections, kept for root and the operator "
		"group:\n"
		"                          other users never take them (default %u)\n"
		"  --idle-timeout SECONDS  close a connection on which no request starts for "
		"this long,\n"
		"                          unless it holds a backup or a held set (default %g)\n"
		"  --frame-timeout SECONDS a request must arrive whole within this of its first "
		"byte,\n"
		"                          and each frame of a reply be taken within it "
		"(default %g)\n"
		"Backups and held sets (doc/writers.md, \"Holds and their deadlines\"):\n"
		"  --hold-lease SECONDS    a backup or held set whose requester is not heard "
		"from\n"
		"                          this long is aborted, unless it asked for another "
		"lease\n"
		"                          (default %u)\n"
		"  --hold-max SECONDS      no backup, held set or shadow still read once deleted\n"
		"                          lasts longer (default %llu)\n"
		"RBD volumes (doc/providers.md, \"RBD\"):\n"
		"  --ceph-conf FILE        the Ceph cluster's config, an absolute path "
		"(default: Ceph's)\n"
		"  --ceph-id ID            the Ceph client ID (default admin)\n"
		"Sets across hosts (doc/peers.md):\n"
		"  --peers FILE            the other hosts and the sockets that reach their vssd\n"
		"                          (default %s)\n"
		"  --host-name NAME        this host's name as its peers know it (default: the\n"
		"                          first label of the system's host name)\n"
		"  --peer-timeout SECONDS  how long another host may take to answer, but inside\n"
		"                          a freeze, where the freeze bound counts (default %g)\n"
		"  -h, --help              print this and exit\n"
		"  --version               print the version and exit\n"
		"Stays in the foreground and logs to standard error; SIGTERM or SIGINT stops\n"
		"it (SIGHUP is ignored).  Exit codes: 0 stopped, 1 could not start, 2 usage\n"
		"error.  Who may do what, and every limit: doc/security.md; man 8 vssd.\n",
		VSS_DEFAULT_STATE_DIR, VSS_DEFAULT_RUN_DIR, VSS_SERVICE_MAX_CONNS,
		VSS_SERVICE_MAX_CONNS_PER_USER, VSS_SERVICE_RESERVED_CONNS,
		VSS_SERVICE_IDLE_TIMEOUT_MS / 1000.0, VSS_SERVICE_FRAME_TIMEOUT_MS / 1000.0,
		VSS_HOLD_LEASE_MS / 1000u, VSS_HOLD_MAX_MS / 1000ull, SVC_PEERS_PATH,
		SVC_PEER_TIMEOUT_MS / 1000.0);
}

/* A count from 1 to 65536: 0 if @s is not one. */
static unsigned int parse_count(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 65536)
		return 0;
	return (unsigned int)v;
}

/* Seconds (decimals allowed) from 0.001 to 86400, in milliseconds: 0 if not. */
static unsigned int parse_seconds(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0.001 && v <= 86400))
		return 0;
	return (unsigned int)(v * 1000 + 0.5);
}

/* SECONDS (a decimal number, at least 0.1) in milliseconds, or 0 if it is not one. */
static unsigned long long seconds_ms(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v >= 0.1 && v <= 1e9))
		return 0;
	return (unsigned long long)(v * 1000.0 + 0.5);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "operator-group", required_argument, NULL, 'g' },
		{ "max-connections", required_argument, NULL, 'C' },
		{ "max-connections-per-user", required_argument, NULL, 'U' },
		{ "reserved-connections", required_argument, NULL, 'R' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "frame-timeout", required_argument, NULL, 'F' },
		{ "hold-lease", required_argument, NULL, 'l' },
		{ "hold-max", required_argument, NULL, 'm' },
		{ "ceph-conf", required_argument, NULL, 'c' },
		{ "ceph-id", required_argument, NULL, 'i' },
		{ "peers", required_argument, NULL, 'P' },
		{ "host-name", required_argument, NULL, 'H' },
		{ "peer-timeout", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct vss_service_config cfg = { 0 };
	struct vss_service *svc;
	struct vss_error err = { 0 };
	sigset_t set;
	unsigned int *count = NULL, *ms = NULL;
	unsigned long long hold;
	int c, sig, opt = 0;

	notify_setup();
	cfg.state_dir = getenv("VSS_STATE_DIR");
	cfg.run_dir = getenv("VSS_RUN_DIR");
	if (getenv("VSS_TEST_FREEZE_HOLD_MS"))
		cfg.test_freeze_hold_ms = (unsigned int)atoi(getenv("VSS_TEST_FREEZE_HOLD_MS"));
	if (getenv("VSS_TEST_PROTO_FRAME"))
		cfg.test_frame_max = (unsigned int)atoi(getenv("VSS_TEST_PROTO_FRAME"));
	if (getenv("VSS_TEST_FREEZE_LIMIT_MS"))
		cfg.test_freeze_limit_ms = (unsigned int)atoi(getenv("VSS_TEST_FREEZE_LIMIT_MS"));
	while ((c = getopt_long(argc, argv, "h", opts, &opt)) != -1) {
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
		case 'C':
			count = &cfg.max_conns;
			break;
		case 'U':
			count = &cfg.max_conns_per_user;
			break;
		case 'R':
			count = &cfg.reserved_conns;
			break;
		case 'I':
			ms = &cfg.idle_timeout_ms;
			break;
		case 'F':
			ms = &cfg.frame_timeout_ms;
			break;
		case 'l':
		case 'm':
			hold = seconds_ms(optarg);
			if (!hold || (c == 'l' && hold > UINT_MAX)) {
				fprintf(stderr, "vssd: error: --hold-%s takes a number of seconds "
					"from 0.1\n", c == 'l' ? "lease" : "max");
				return 2;
			}
			if (c == 'l')
				cfg.hold_lease_ms = (unsigned int)hold;
			else
				cfg.hold_max_ms = hold;
			break;
		case 'c':
			cfg.ceph_conf = optarg;
			break;
		case 'i':
			cfg.ceph_id = optarg;
			break;
		case 'P':
			cfg.peers_path = optarg;
			break;
		case 'H':
			cfg.host_name = optarg;
			break;
		case 'T':
			ms = &cfg.peer_timeout_ms;
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
		if (count && !(*count = parse_count(optarg))) {
			fprintf(stderr, "vssd: error: --%s takes a count from 1 to 65536\n",
				opts[opt].name);
			return 2;
		}
		if (ms && !(*ms = parse_seconds(optarg))) {
			fprintf(stderr, "vssd: error: --%s takes seconds, from 0.001 to 86400\n",
				opts[opt].name);
			return 2;
		}
		count = ms = NULL;
	}
	if ((cfg.reserved_conns ? cfg.reserved_conns : VSS_SERVICE_RESERVED_CONNS) >=
	    (cfg.max_conns ? cfg.max_conns : VSS_SERVICE_MAX_CONNS)) {
		fprintf(stderr, "vssd: error: --reserved-connections must be less than "
			"--max-connections\n");
		return 2;
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
		notify("ERRNO=5\nSTATUS=failed to start (see the log)");
		return 1;
	}
	notify("READY=1\nSTATUS=serving");
	do
		sigwait(&set, &sig);
	while (sig == SIGHUP);
	notify("STOPPING=1\nSTATUS=stopping: thawing, unmounting");
	vss_service_close(svc);
	return 0;
}
