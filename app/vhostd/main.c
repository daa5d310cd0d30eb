/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhostd: EAL, the data-plane workers, and a control loop that serves JSON-RPC on a Unix socket.
 * Everything else is in lib/; this file only wires it together.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_version.h>

#include "config.h"
#include "device.h"
#include "dp.h"
#include "rpc.h"

#define DEFAULT_RPC_SOCKET "./run/vhostd.sock"
/* Enough mbufs for every eth rx ring plus bursts in flight; about 70 MB with the default size. */
#define MBUF_COUNT   32767
#define MBUF_CACHE   256
#define EAL_ARGS_MAX 64

struct options {
	const char *rpc_socket;
	const char *config;
	mode_t socket_mode;
	int eal_argc;
	char *eal_argv[EAL_ARGS_MAX];
};

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: vhostd [-s RPC_SOCKET] [-c CONFIG] [-m MODE] [-- EAL options]\n"
		"  -s, --rpc-socket PATH   JSON-RPC socket (default %s)\n"
		"  -c, --config FILE       replay FILE's calls at start; config_save writes it\n"
		"  -m, --socket-mode MODE  octal permissions of the RPC socket (default 0660)\n"
		"  -V, --version           print the version\n"
		"Without EAL options: --no-huge -m 512 --no-pci -l 0-1 --main-lcore 0\n"
		"--file-prefix vhostd-<pid> (lcore 0 control, lcore 1 worker).\n",
		DEFAULT_RPC_SOCKET);
}

static int
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"rpc-socket", required_argument, NULL, 's'},
		{"config", required_argument, NULL, 'c'},
		{"socket-mode", required_argument, NULL, 'm'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static char prefix[64];
	int c, i;

	o->rpc_socket = DEFAULT_RPC_SOCKET;
	o->socket_mode = 0660;
	while ((c = getopt_long(argc, argv, "s:c:m:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->rpc_socket = optarg;
			break;
		case 'c':
			o->config = optarg;
			break;
		case 'm':
			o->socket_mode = (mode_t)strtoul(optarg, NULL, 8);
			break;
		case 'V':
			printf("vhostd %s (%s)\n", VHOSTD_VERSION, rte_version());
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	o->eal_argv[o->eal_argc++] = argv[0];
	if (optind < argc) {
		for (i = optind; i < argc && o->eal_argc < EAL_ARGS_MAX - 1; i++)
			o->eal_argv[o->eal_argc++] = argv[i];
		return 0;
	}
	/* The embedded default: no hugepages, no PCI, one control and one worker lcore. */
	snprintf(prefix, sizeof(prefix), "vhostd-%d", (int)getpid());
	static char *defaults[] = {"--no-huge", "-m", "512", "--no-pci", "-l", "0-1",
		"--main-lcore", "0", "--file-prefix", NULL};
	for (i = 0; defaults[i] != NULL; i++)
		o->eal_argv[o->eal_argc++] = defaults[i];
	o->eal_argv[o->eal_argc++] = prefix;
	return 0;
}

static int
rpc_version(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	(void)ctx;
	if (json_object_size(params) != 0)
		return base_error_set(err, EINVAL, json_object_iter_key(json_object_iter(params)),
			"version takes no params");
	*result = json_pack("{s:s, s:s}", "version", VHOSTD_VERSION, "dpdk", rte_version());
	return 0;
}

static int
rpc_get_methods(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	if (json_object_size(params) != 0)
		return base_error_set(err, EINVAL, json_object_iter_key(json_object_iter(params)),
			"rpc_get_methods takes no params");
	*result = rpc_method_names(ctx);
	return 0;
}

/* Each device holds a listening socket and a connection: 1024 devices need more than the
 * usual soft limit of 1024 descriptors. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int
start_workers(struct rte_mempool *pool)
{
	unsigned int lcores[RTE_MAX_LCORE], n = 0, lcore;

	RTE_LCORE_FOREACH_WORKER(lcore)
	lcores[n++] = lcore;
	if (n == 0) {
		fprintf(stderr, "vhostd: no worker lcore: give EAL at least two (-l 0-1)\n");
		return -EINVAL;
	}
	if (dp_init(pool, lcores, n) < 0 || dp_start() < 0)
		return -ENOMEM;
	return 0;
}

/* Serve until SIGINT or SIGTERM. */
static void
control_loop(struct rpc_server *srv, int sig_fd)
{
	struct epoll_event ev, evs[4];
	struct signalfd_siginfo si;
	int ep, n, i;

	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.fd = rpc_server_fd(srv);
	epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
	ev.data.fd = sig_fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sig_fd, &ev);
	ev.data.fd = device_event_fd();
	epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
	for (;;) {
		n = epoll_wait(ep, evs, 4, -1);
		for (i = 0; i < n; i++) {
			if (evs[i].data.fd == sig_fd) {
				if (read(sig_fd, &si, sizeof(si)) == sizeof(si))
					fprintf(stderr, "vhostd: signal %u, shutting down\n",
						si.ssi_signo);
				close(ep);
				return;
			}
			if (evs[i].data.fd == device_event_fd())
				device_handle_events();
			else
				rpc_server_poll(srv);
		}
	}
}

int
main(int argc, char **argv)
{
	struct options opts = {0};
	struct rpc_server_opts sopts;
	struct rpc_registry *reg;
	struct rpc_server *srv;
	struct rte_mempool *pool;
	struct base_error err = {0};
	sigset_t sigs;
	int sig_fd, rc = 1;

	if (parse_options(argc, argv, &opts) < 0)
		return 2;
	raise_fd_limit();
	/* Block the signals before EAL makes its threads, so only the signalfd sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);

	if (rte_eal_init(opts.eal_argc, opts.eal_argv) < 0) {
		fprintf(stderr, "vhostd: EAL init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	pool = rte_pktmbuf_pool_create("vhostd_mbufs", MBUF_COUNT, MBUF_CACHE, 0,
		RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	reg = rpc_registry_create();
	if (pool == NULL || reg == NULL || device_module_init(pool) < 0) {
		fprintf(stderr, "vhostd: out of memory at start (try a larger EAL -m)\n");
		goto out_eal;
	}
	if (device_rpc_register(reg) < 0 ||
		config_rpc_register(reg, opts.config, device_config_calls) < 0 ||
		rpc_register(reg, "version", rpc_version, NULL) < 0 ||
		rpc_register(reg, "rpc_get_methods", rpc_get_methods, reg) < 0)
		goto out_eal;

	if (strcmp(opts.rpc_socket, DEFAULT_RPC_SOCKET) == 0)
		mkdir("./run", 0755);
	sopts = (struct rpc_server_opts){.path = opts.rpc_socket,
		.mode = opts.socket_mode,
		.owner = (uid_t)-1,
		.group = (gid_t)-1};
	srv = rpc_server_create(&sopts, reg, &err);
	if (srv == NULL) {
		fprintf(stderr, "vhostd: %s\n", err.reason);
		goto out_eal;
	}
	if (start_workers(pool) < 0)
		goto out_server;
	if (opts.config != NULL && access(opts.config, F_OK) == 0 &&
		config_load(opts.config, reg, &err) < 0) {
		fprintf(stderr, "vhostd: %s [%s]\n", err.reason, err.field);
		goto out_devices;
	}
	fprintf(stderr, "vhostd: serving JSON-RPC on %s with %u worker(s)\n", opts.rpc_socket,
		dp_worker_count());
	control_loop(srv, sig_fd);
	rc = 0;

out_devices:
	device_detach_all();
	dp_stop();
	dp_fini();
out_server:
	rpc_server_destroy(srv);
out_eal:
	rpc_registry_destroy(reg);
	rte_eal_cleanup();
	return rc;
}
