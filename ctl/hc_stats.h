/*
 * NAME
 *	hc_stats - "heraldctl stats": what the dispatcher is doing
 * DESCRIPTION
 *	Reads, in one read-only snapshot, the operators' views of
 *	sql/002_dispatch.sql: deliveries by state, channel and class
 *	(herald.delivery_stats), how long the oldest queued and held
 *	deliveries have waited (herald.queue_ages), delivered / retried /
 *	failed counts and the failure rate over the last 5 minutes and hour,
 *	overall, per channel and per provider (herald.outcome_rates), and
 *	the workers a broker reported in the last 10 seconds
 *	(herald.live_workers). Prints them as aligned tables or one JSON
 *	object. Computes nothing the views do not: the numbers are the
 *	database's.
 * OWNERSHIP
 *	hc_stats_t owns every string and array in it (hc_stats_clear).
 * LIMITS
 *	At most HC_STATS_MAX_ROWS rows of each kind are read.
 */
#ifndef HC_STATS_H
#define HC_STATS_H

#include <stddef.h>
#include <stdio.h>

#include "hc_cli.h"
#include "hc_db.h"

#define HC_STATS_MAX_ROWS 10000

typedef struct hc_stats_count {
	char *state;
	char *channel;
	char *klass;
	long long count;
} hc_stats_count_t;

typedef struct hc_stats_queue {
	char *channel;
	double queued_age_s;  /* oldest queued delivery's wait; < 0 when none */
	double held_age_s;    /* oldest held delivery's age; < 0 when none */
} hc_stats_queue_t;

typedef struct hc_stats_rate {
	int window_s;         /* 300 or 3600 */
	char *scope;          /* "all", "channel" or "provider" */
	char *name;           /* channel or provider name; "" for "all" */
	long long delivered;
	long long retried;
	long long failed;
	double failure_rate;  /* (retried + failed) / attempts; < 0 without attempts */
} hc_stats_rate_t;

typedef struct hc_stats_worker {
	char *name;
	char *broker;
	char *channels;       /* comma-separated */
	long long credit;
	char *connected_at;   /* ISO 8601 UTC */
	char *last_seen_at;   /* ISO 8601 UTC */
	double connected_age_s;
	double last_seen_age_s;
} hc_stats_worker_t;

typedef struct hc_stats {
	char *generated_at;   /* ISO 8601 UTC, the snapshot's now() */
	hc_stats_count_t *counts;
	size_t ncounts;
	hc_stats_queue_t *queues;
	size_t nqueues;
	hc_stats_rate_t *rates;
	size_t nrates;
	hc_stats_worker_t *workers;
	size_t nworkers;
} hc_stats_t;

/*
 * Read everything into *st (zeroed first; hc_stats_clear it even on
 * failure). Returns 0, HD_E_NOTFOUND when the database lacks migration
 * 002 (message says to migrate), or an hc_db error; message in err.
 */
int hc_stats_load(hc_db_t *db, hc_stats_t *st, char *err, size_t errlen);

/* Free what st owns and zero it; NULL-safe. */
void hc_stats_clear(hc_stats_t *st);

/* The human report: one titled, aligned table per section. */
void hc_stats_print_text(FILE *out, const hc_stats_t *st);

/*
 * One JSON object: generated_at, deliveries [{state, channel, class,
 * count}], by_state {state: count}, total, queues [{channel,
 * oldest_queued_age_s, oldest_held_age_s}], oldest_queued_age_s,
 * oldest_held_age_s (the maxima; null when none), outcomes {last_5m,
 * last_1h: {window_s, all, channels {name: ...}, providers {name: ...}}
 * with {delivered, retried, failed, failure_rate | null}}, workers
 * [{name, broker, channels [..], credit, connected_at, last_seen_at,
 * last_seen_age_s}].
 */
void hc_stats_print_json(FILE *out, const hc_stats_t *st);

/* "heraldctl stats [--json]". */
int hc_stats_cmd(hc_ctx_t *ctx, int argc, char **argv);

#endif
