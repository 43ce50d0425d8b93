/*
 * NAME
 *	heraldd - the Herald broker
 * DESCRIPTION
 *	Builds the object graph (configuration, classifier, store, intake)
 *	and runs the one event loop: zmq_poll over the producer ROUTER
 *	socket and the PostgreSQL socket. SIGINT/SIGTERM stop intake, let
 *	queued and in-flight batches commit and be acknowledged (bounded by
 *	a grace period), then exit 0.
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

#include "hd_classify.h"
#include "hd_config.h"
#include "hd_dispatch.h"
#include "hd_err.h"
#include "hd_intake.h"
#include "hd_log.h"
#include "hd_mem.h"
#include "hd_policy.h"
#include "hd_seal.h"
#include "hd_store.h"
#include "hd_time.h"

#define HERALDD_SHUTDOWN_GRACE_MS 5000
#define HERALDD_READ_BURST 1024
#define HERALDD_STATS_EVERY_MS 60000
#define HERALDD_MAX_STORE_CONNECTIONS 16 /* the bound of database.connections */

static volatile sig_atomic_t heraldd_stop;
/* Self-pipe: the handler writes a byte so a signal that lands between the
 * flag check and zmq_poll still wakes the loop at once. */
static int heraldd_wake_fds[2] = {-1, -1};

static void heraldd_on_signal(int sig)
{
	(void)sig;
	heraldd_stop = 1;
	int saved = errno;
	ssize_t w = write(heraldd_wake_fds[1], "", 1);
	(void)w;
	errno = saved;
}

static void heraldd_usage(FILE *out)
{
	fputs("usage: heraldd [-c FILE] [--check-config] [--print-config] [--listen ENDPOINT]\n"
	      "               [--dispatch-listen ENDPOINT] [--db CONNINFO]\n"
	      "  -c, --config FILE   configuration file (libconfig syntax)\n"
	      "      --check-config  validate the configuration and exit (0 valid, 1 not)\n"
	      "      --print-config  print the effective configuration and exit\n"
	      "      --listen EP     override 'listen' (e.g. tcp://127.0.0.1:7711)\n"
	      "      --dispatch-listen EP  override 'dispatch.listen' (workers connect here)\n"
	      "      --db CONNINFO   override the database (else HERALD_DATABASE_URL, else\n"
	      "                      'database_url', else libpq defaults)\n", out);
}

static void heraldd_log_stats(const hd_intake_t *intake, const hd_dispatch_t *dispatch)
{
	hd_intake_stats_t s = hd_intake_stats(intake);
	hd_info("intake.stats", "received=%llu accepted=%llu duplicates=%llu rejected=%llu unavailable=%llu",
		(unsigned long long)s.received, (unsigned long long)s.accepted,
		(unsigned long long)s.duplicates, (unsigned long long)s.rejected,
		(unsigned long long)s.unavailable);
	hd_dispatch_stats_t d = hd_dispatch_stats(dispatch);
	hd_info("dispatch.stats", "claimed=%llu sent_to_workers=%llu delivered=%llu retried=%llu failed=%llu stale_results=%llu workers=%zu window=%zu",
		(unsigned long long)d.claimed, (unsigned long long)d.sent_to_workers,
		(unsigned long long)d.delivered, (unsigned long long)d.retried,
		(unsigned long long)d.failed, (unsigned long long)d.stale_results, d.workers,
		d.window);
}

/*
 * POLICY K2: the keys of security.keys with security.seal_key current;
 * *out NULL when none are configured (confidential submissions are then
 * refused). HD_E_CONFIG with "security.keys: path: reason" in err when
 * a key file cannot be used.
 */
static int heraldd_load_seal(const hd_config_t *cfg, hd_seal_t **out, char *err, size_t errlen)
{
	*out = NULL;
	if (cfg->security.key_count == 0)
		return HD_OK;
	hd_seal_t *seal = hd_seal_keyring_new();
	char why[400];
	for (size_t i = 0; i < cfg->security.key_count; i++) {
		if (hd_seal_keyring_add_key_spec(seal, cfg->security.keys[i], false, why,
						 sizeof(why)) != HD_OK) {
			snprintf(err, errlen, "security.keys: %s", why);
			hd_seal_keyring_destroy(&seal);
			return HD_E_CONFIG;
		}
	}
	if (hd_seal_set_current(seal, cfg->security.seal_key) != HD_OK) {
		snprintf(err, errlen, "security.seal_key: \"%s\" is not loaded", cfg->security.seal_key);
		hd_seal_keyring_destroy(&seal);
		return HD_E_CONFIG;
	}
	*out = seal;
	return HD_OK;
}

static int heraldd_run(const hd_config_t *cfg, hd_policy_t *policy, const hd_seal_t *seal,
		       const char *conninfo)
{
	hd_classify_t *classify = hd_classify_new(cfg->classify.bulk_threshold,
						  cfg->classify.important_tag);
	/* ZeroMQ starts its I/O threads with the first socket. They inherit
	 * this mask, so SIGINT/SIGTERM always interrupt the main thread's
	 * zmq_poll instead of landing in a thread that never looks. */
	sigset_t stop_signals, old_mask;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
	void *ctx = zmq_ctx_new();
	char err[256];
	hd_intake_t *intake = hd_intake_new(ctx, cfg, classify, err, sizeof(err));
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	if (!intake) {
		hd_error("heraldd.fatal", "reason=\"%s\"", err);
		zmq_ctx_term(ctx);
		hd_classify_destroy(&classify);
		return 1;
	}
	hd_store_options_t sopts = {
		.conninfo = conninfo,
		.connections = cfg->database.connections,
		.batch_max = cfg->intake.batch_max_messages,
		.batch_max_bytes = cfg->intake.batch_max_bytes,
		.batch_wait_ms = cfg->intake.batch_max_wait_ms,
		.max_pending = cfg->intake.max_pending,
		.reconnect_min_ms = cfg->database.reconnect_min_ms,
		.reconnect_max_ms = cfg->database.reconnect_max_ms,
		.statement_timeout_ms = cfg->database.statement_timeout_ms,
		.approval_due_s = cfg->approval.due_s,
		.approval_reminder_s = cfg->approval.reminder_s,
	};
	hd_store_t *store = hd_store_new(&sopts, hd_intake_on_stored, intake);
	hd_intake_attach_store(intake, store);
	hd_intake_attach_seal(intake, seal);
	if (seal)
		hd_info("heraldd.seal", "seal_key=%s keys=%zu", hd_seal_current(seal),
			hd_seal_key_count(seal));
	else
		hd_warn("heraldd.seal", "seal_key=none reason=\"%s\"", "no security.keys: confidential "
			"submissions are refused (POLICY K2)");
	hd_intake_attach_policy(intake, policy);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	hd_dispatch_t *dispatch = hd_dispatch_new(ctx, cfg, conninfo, err, sizeof(err));
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	if (!dispatch) {
		hd_error("heraldd.fatal", "reason=\"%s\"", err);
		hd_store_destroy(&store);
		hd_intake_destroy(&intake);
		zmq_ctx_term(ctx);
		hd_classify_destroy(&classify);
		return 1;
	}
	hd_info("heraldd.start", "listen=%s batch_max=%lld batch_wait_ms=%lld db_connections=%lld "
		"policy=%s policy_rules=%zu policy_terms=%zu",
		cfg->listen, (long long)cfg->intake.batch_max_messages,
		(long long)cfg->intake.batch_max_wait_ms, (long long)cfg->database.connections,
		hd_policy_is_enabled(policy) ? "on" : "off", hd_policy_rule_count(policy),
		hd_policy_term_count(policy));

	int64_t stop_deadline = 0;
	uint64_t last_accepted = 0;
	int64_t next_stats = hd_time_mono_ms() + HERALDD_STATS_EVERY_MS;
	for (;;) {
		int64_t now = hd_time_mono_ms();
		if (heraldd_stop && !stop_deadline) {
			hd_info("heraldd.stopping", "grace_ms=%d", HERALDD_SHUTDOWN_GRACE_MS);
			stop_deadline = now + HERALDD_SHUTDOWN_GRACE_MS;
			hd_dispatch_stop(dispatch);
		}
		if (stop_deadline && ((hd_store_is_idle(store) && hd_dispatch_is_idle(dispatch)) ||
				      now >= stop_deadline))
			break;

		zmq_pollitem_t items[2 + HERALDD_MAX_STORE_CONNECTIONS + 3];
		items[0] = (zmq_pollitem_t){hd_intake_socket(intake), 0,
					    stop_deadline ? 0 : ZMQ_POLLIN, 0};
		items[1] = (zmq_pollitem_t){NULL, heraldd_wake_fds[0], ZMQ_POLLIN, 0};
		size_t store_items = hd_store_poll_items(store, items + 2,
							 HERALDD_MAX_STORE_CONNECTIONS);
		zmq_pollitem_t *dispatch_items = items + 2 + store_items;
		size_t dispatch_count = hd_dispatch_poll_items(dispatch, dispatch_items, 3);
		int64_t timeout = hd_store_timeout_ms(store, now);
		int64_t dispatch_timeout = hd_dispatch_timeout_ms(dispatch, now);
		if (dispatch_timeout >= 0 && (timeout < 0 || dispatch_timeout < timeout))
			timeout = dispatch_timeout;
		int64_t until_stats = next_stats - now;
		if (timeout < 0 || timeout > until_stats)
			timeout = until_stats > 0 ? until_stats : 0;
		if (stop_deadline && (timeout < 0 || timeout > 100))
			timeout = 100;

		if (zmq_poll(items, (int)(2 + store_items + dispatch_count), (long)timeout) < 0 &&
		    errno != EINTR) {
			hd_error("heraldd.fatal", "reason=\"zmq_poll: %s\"", zmq_strerror(errno));
			break;
		}
		now = hd_time_mono_ms();
		if (items[0].revents & ZMQ_POLLIN)
			hd_intake_on_readable(intake, HERALDD_READ_BURST);
		if (items[1].revents & ZMQ_POLLIN) {
			char drain[16];
			while (read(heraldd_wake_fds[0], drain, sizeof(drain)) > 0)
				;
		}
		hd_store_handle(store, now, items + 2, store_items);
		/* Messages just committed may be due now (POLICY G3.3): claim
		 * within dispatch.coalesce_ms instead of at the next poll. */
		uint64_t accepted = hd_intake_stats(intake).accepted;
		if (accepted != last_accepted) {
			last_accepted = accepted;
			hd_dispatch_wake(dispatch);
		}
		hd_dispatch_handle(dispatch, now, dispatch_items, dispatch_count);
		if (now >= next_stats) {
			heraldd_log_stats(intake, dispatch);
			next_stats = now + HERALDD_STATS_EVERY_MS;
		}
	}

	heraldd_log_stats(intake, dispatch);
	hd_dispatch_destroy(&dispatch);
	hd_store_destroy(&store);
	hd_intake_destroy(&intake);
	zmq_ctx_term(ctx);
	hd_classify_destroy(&classify);
	hd_info("heraldd.stop", "%s", "clean=1");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'C'},
		{"print-config", no_argument, NULL, 'P'},
		{"listen", required_argument, NULL, 'l'},
		{"dispatch-listen", required_argument, NULL, 'w'},
		{"db", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *listen = NULL, *dispatch_listen = NULL, *db = NULL;
	int check = 0, print = 0, opt;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'C': check = 1; break;
		case 'P': print = 1; break;
		case 'l': listen = optarg; break;
		case 'w': dispatch_listen = optarg; break;
		case 'd': db = optarg; break;
		case 'h': heraldd_usage(stdout); return 0;
		case 'V': puts("heraldd " HERALD_VERSION); return 0;
		default: heraldd_usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		heraldd_usage(stderr);
		return 2;
	}

	hd_log_init("heraldd", HD_LOG_INFO);
	char err[512];
	hd_config_t *cfg = NULL;
	if (hd_config_load(config_path, &cfg, err, sizeof(err)) != HD_OK) {
		fprintf(stderr, "heraldd: %s\n", err);
		return 1;
	}
	hd_policy_t *policy = NULL;
	if (hd_policy_load(config_path, &policy, err, sizeof(err)) != HD_OK) {
		fprintf(stderr, "heraldd: %s\n", err);
		hd_config_destroy(&cfg);
		return 1;
	}
	hd_seal_t *seal = NULL;
	if (heraldd_load_seal(cfg, &seal, err, sizeof(err)) != HD_OK) {
		fprintf(stderr, "heraldd: %s\n", err);
		hd_policy_destroy(&policy);
		hd_config_destroy(&cfg);
		return 1;
	}
	if (check) {
		hd_seal_keyring_destroy(&seal);
		printf("%s: configuration valid (policy %s: %zu rules, %zu terms)\n",
		       config_path ? config_path : "(defaults)",
		       hd_policy_is_enabled(policy) ? "on" : "off", hd_policy_rule_count(policy),
		       hd_policy_term_count(policy));
		hd_policy_destroy(&policy);
		hd_config_destroy(&cfg);
		return 0;
	}
	if (listen) {
		free(cfg->listen);
		cfg->listen = hd_strdup(listen);
	}
	if (dispatch_listen) {
		free(cfg->dispatch.listen);
		cfg->dispatch.listen = hd_strdup(dispatch_listen);
	}
	if (print) {
		hd_config_print(cfg, stdout);
		hd_seal_keyring_destroy(&seal);
		hd_policy_destroy(&policy);
		hd_config_destroy(&cfg);
		return 0;
	}
	hd_log_init("heraldd", (hd_log_level_t)hd_log_level_parse(cfg->log_level));

	const char *env_db = getenv("HERALD_DATABASE_URL");
	const char *conninfo = db ? db : (env_db && *env_db) ? env_db : cfg->database_url;

	if (pipe(heraldd_wake_fds) != 0) {
		fprintf(stderr, "heraldd: pipe: %s\n", strerror(errno));
		hd_seal_keyring_destroy(&seal);
		hd_policy_destroy(&policy);
		hd_config_destroy(&cfg);
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		fcntl(heraldd_wake_fds[i], F_SETFL, fcntl(heraldd_wake_fds[i], F_GETFL) | O_NONBLOCK);
		fcntl(heraldd_wake_fds[i], F_SETFD, FD_CLOEXEC);
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = heraldd_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int rc = heraldd_run(cfg, policy, seal, conninfo);
	hd_seal_keyring_destroy(&seal);
	hd_policy_destroy(&policy);
	hd_config_destroy(&cfg);
	return rc;
}
