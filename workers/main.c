/*
 * NAME
 *	herald-worker - runs channel drivers for heraldd
 * DESCRIPTION
 *	Loads the configuration, opens the enabled channel drivers, connects
 *	to heraldd's dispatch socket and runs hw_worker's loop until SIGTERM
 *	or SIGINT. Then it sends BYE, takes no more jobs, waits up to
 *	shutdown_grace_ms for the jobs in flight to report, closes the
 *	drivers (which give back the rest as retry) and exits 0. The keys of
 *	security.keys (confidential content sealed at rest, POLICY K2) are
 *	loaded before anything connects; a key file that cannot be used
 *	stops the worker (and fails --check-config).
 *	Exit status: 0 clean stop or valid configuration, 1 bad configuration
 *	or runtime failure, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "hd_err.h"
#include "hd_log.h"
#include "hd_seal.h"
#include "hw_config.h"
#include "hw_drivers.h"
#include "hw_worker.h"

static volatile sig_atomic_t hw_stop_requested;
/* Self-pipe: a signal landing between the flag check and zmq_poll still wakes the loop. */
static int hw_wake_fds[2] = {-1, -1};

static void hw_on_signal(int sig)
{
	(void)sig;
	hw_stop_requested = 1;
	int saved = errno;
	ssize_t w = write(hw_wake_fds[1], "", 1);
	(void)w;
	errno = saved;
}

static void hw_usage(FILE *out)
{
	fputs("usage: herald-worker -c FILE [--broker ENDPOINT] [--name NAME]\n"
	      "                     [--check-config] [--print-config]\n"
	      "  -c, --config FILE   configuration file (libconfig syntax), required\n"
	      "      --broker EP     override 'broker' (heraldd's dispatch endpoint,\n"
	      "                      e.g. tcp://127.0.0.1:7712)\n"
	      "      --name NAME     override 'name' (1..64 of A-Z a-z 0-9 . _ -)\n"
	      "      --check-config  validate the configuration, drivers included, and exit\n"
	      "                      (0 valid, 1 not); connects to nothing\n"
	      "      --print-config  print the effective configuration and exit\n", out);
}

/* The keys of security.keys; NULL (err filled) when one cannot be used, or none configured. */
static hd_seal_t *hw_load_keys(const hw_config_t *cfg, char *err, size_t errlen, bool *failed)
{
	*failed = false;
	if (cfg->seal_key_count == 0)
		return NULL;
	hd_seal_t *seal = hd_seal_keyring_new();
	for (size_t i = 0; i < cfg->seal_key_count; i++) {
		char why[512];
		if (hd_seal_keyring_add_key_spec(seal, cfg->seal_keys[i], false, why,
						 sizeof why) != 0) {
			snprintf(err, errlen, "security.keys: %s", why);
			hd_seal_keyring_destroy(&seal);
			*failed = true;
			return NULL;
		}
	}
	return seal;
}

/* Open every configured driver; on failure err says which and why. */
static hw_worker_t *hw_build(void *ctx, const hw_config_t *cfg, const hd_seal_t *seal, char *err,
			     size_t errlen)
{
	hw_worker_options_t opts = {
		.broker = cfg->broker,
		.name = cfg->name,
		.credit = (uint32_t)cfg->credit,
		.heartbeat_ms = (uint32_t)cfg->heartbeat_ms,
		.shutdown_grace_ms = cfg->shutdown_grace_ms,
	};
	hw_worker_t *w = hw_worker_new(ctx, &opts);
	hw_worker_attach_seal(w, seal);
	for (size_t i = 0; i < cfg->driver_count; i++) {
		if (hw_worker_add_driver(w, cfg->drivers[i].driver, cfg->drivers[i].group, err,
					 errlen) != HD_OK) {
			hw_worker_destroy(&w);
			return NULL;
		}
	}
	return w;
}

static int hw_run(const hw_config_t *cfg, bool check_only)
{
	/* ZeroMQ (and drivers' threads) start with the first socket and inherit
	 * this mask, so SIGINT/SIGTERM always reach the main thread's poll. */
	sigset_t stop_signals, old_mask;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
	void *ctx = zmq_ctx_new();
	char err[768];
	bool keys_failed;
	hd_seal_t *seal = hw_load_keys(cfg, err, sizeof err, &keys_failed);
	hw_worker_t *w = keys_failed ? NULL : hw_build(ctx, cfg, seal, err, sizeof err);
	int rc = w ? HD_OK : HD_E_CONFIG;
	if (w && !check_only)
		rc = hw_worker_start(w, err, sizeof err);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	if (rc != HD_OK) {
		if (check_only)
			fprintf(stderr, "herald-worker: %s\n", err);
		else
			hd_error("worker.fatal", "reason=\"%s\"", err);
		hw_worker_destroy(&w);
		zmq_ctx_term(ctx);
		hd_seal_keyring_destroy(&seal);
		return 1;
	}
	if (check_only) {
		hw_worker_destroy(&w);
		zmq_ctx_term(ctx);
		hd_seal_keyring_destroy(&seal);
		return 0;
	}

	int status = 0;
	for (;;) {
		if (hw_stop_requested)
			hw_worker_stop(w);
		if (hw_worker_is_done(w))
			break;
		if (hw_worker_run_once(w, hw_wake_fds[0], -1) != HD_OK) {
			status = 1;
			break;
		}
	}
	hw_worker_destroy(&w);
	zmq_ctx_term(ctx);
	hd_seal_keyring_destroy(&seal);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"broker", required_argument, NULL, 'b'},
		{"name", required_argument, NULL, 'n'},
		{"check-config", no_argument, NULL, 'C'},
		{"print-config", no_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *broker = NULL, *name = NULL;
	bool check = false, print = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'b': broker = optarg; break;
		case 'n': name = optarg; break;
		case 'C': check = true; break;
		case 'P': print = true; break;
		case 'h': hw_usage(stdout); return 0;
		case 'V': puts("herald-worker " HERALD_VERSION); return 0;
		default: hw_usage(stderr); return 2;
		}
	}
	if (optind != argc || !config_path) {
		hw_usage(stderr);
		return 2;
	}

	hd_log_init("herald-worker", HD_LOG_INFO);
	char err[512];
	size_t ndrivers;
	const hw_driver_t *drivers = hw_drivers(&ndrivers);
	hw_config_t *cfg = NULL;
	if (hw_config_load(config_path, drivers, ndrivers, &cfg, err, sizeof err) != HD_OK ||
	    hw_config_override(cfg, broker, name, err, sizeof err) != HD_OK) {
		fprintf(stderr, "herald-worker: %s\n", err);
		hw_config_destroy(&cfg);
		return 1;
	}
	if (print) {
		hw_config_print(cfg, stdout);
		hw_config_destroy(&cfg);
		return 0;
	}
	hd_log_init("herald-worker", (hd_log_level_t)hd_log_level_parse(cfg->log_level));
	if (check) {
		int rc = hw_run(cfg, true);
		if (rc == 0)
			printf("%s: configuration valid\n", config_path);
		hw_config_destroy(&cfg);
		return rc;
	}

	if (pipe(hw_wake_fds) != 0) {
		fprintf(stderr, "herald-worker: pipe: %s\n", strerror(errno));
		hw_config_destroy(&cfg);
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		fcntl(hw_wake_fds[i], F_SETFL, fcntl(hw_wake_fds[i], F_GETFL) | O_NONBLOCK);
		fcntl(hw_wake_fds[i], F_SETFD, FD_CLOEXEC);
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = hw_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int rc = hw_run(cfg, false);
	hw_config_destroy(&cfg);
	return rc;
}
