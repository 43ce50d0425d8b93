/*
 * NAME
 *	hc_dead - dead letters: "heraldctl dead" and "heraldctl requeue"
 * DESCRIPTION
 *	Lists failed deliveries (herald.dead_letters, newest failure first)
 *	and puts them back in the queue through herald.requeue(), the only
 *	write an operator may make. A requeue by id is all or nothing: when
 *	one of the ids is not a failed delivery, the transaction is rolled
 *	back and every such id is named with what it is instead. The audit
 *	event's actor is the database role heraldctl logged in as; the
 *	operating-system user is passed along as "requested_by".
 * OWNERSHIP
 *	hc_dead_list_t owns its rows and strings (hc_dead_list_clear).
 * LIMITS
 *	dead shows at most HC_DEAD_MAX_LIMIT rows; requeue takes at most
 *	HC_FMT_MAX_IDS ids.
 */
#ifndef HC_DEAD_H
#define HC_DEAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hc_cli.h"
#include "hc_db.h"

#define HC_DEAD_DEFAULT_LIMIT 50
#define HC_DEAD_MAX_LIMIT 10000

typedef struct hc_dead_row {
	long long delivery_id;
	long long message_id;
	char *channel;
	char *recipient;
	char *kind;
	long long attempts;
	char *last_error;     /* "" when none */
	char *last_provider;  /* "" when none */
	char *failed_at;      /* ISO 8601 UTC; "" when unknown */
	char *klass;
	char *subject;        /* "" when none */
} hc_dead_row_t;

typedef struct hc_dead_list {
	hc_dead_row_t *rows;
	size_t nrows;
	long long total;      /* matching rows, including those past the limit */
} hc_dead_list_t;

/* Filters of "heraldctl dead"; NULL / 0 = no filter. */
typedef struct hc_dead_filter {
	const char *channel;  /* "email", "im" or "sms" */
	int64_t since_ms;     /* failed at or after; 0 = any time */
	long limit;           /* 1..HC_DEAD_MAX_LIMIT */
} hc_dead_filter_t;

/* What one id of a refused requeue is instead of failed. */
typedef struct hc_dead_refusal {
	int64_t delivery_id;
	char state[32];       /* "" when there is no such delivery */
} hc_dead_refusal_t;

/*
 * Parse "dead" options into *f. Returns 0, or HC_EXIT_USAGE with a
 * message in err (unknown channel, bad --since, --limit not in
 * 1..HC_DEAD_MAX_LIMIT). *json_p tells whether --json was given.
 */
int hc_dead_parse_list_args(int argc, char **argv, int64_t now_ms, hc_dead_filter_t *f,
                            int *json_p, char *err, size_t errlen);

/* A parsed "requeue" command line. */
typedef struct hc_dead_requeue_args {
	int64_t *ids;         /* owned (hc_dead_requeue_args_clear); NULL with --all-failed */
	size_t nids;
	int all_failed;       /* --all-failed */
	int64_t since_ms;     /* --since, required with --all-failed */
	int json;             /* --json */
} hc_dead_requeue_args_t;

/*
 * Parse "requeue" arguments into *a (zeroed first; clear it even on
 * failure): either ids (see hc_fmt_parse_ids) or --all-failed with
 * --since, never both. Returns 0, or HC_EXIT_USAGE with a message in err.
 */
int hc_dead_parse_requeue_args(int argc, char **argv, int64_t now_ms, hc_dead_requeue_args_t *a,
                               char *err, size_t errlen);

/* Free what a owns and zero it; NULL-safe. */
void hc_dead_requeue_args_clear(hc_dead_requeue_args_t *a);

/* Read the dead letters matching f into *list (zeroed first). Returns 0 or an hc_db error. */
int hc_dead_load(hc_db_t *db, const hc_dead_filter_t *f, hc_dead_list_t *list, char *err,
                 size_t errlen);

/* Free what list owns and zero it; NULL-safe. */
void hc_dead_list_clear(hc_dead_list_t *list);

/* Aligned table, then "N of M failed deliveries shown" when cut. */
void hc_dead_print_text(FILE *out, const hc_dead_list_t *list);

/* {"total", "shown", "deliveries": [{delivery_id, message_id, channel, recipient, kind,
 *  attempts, last_error, last_provider, failed_at, class, subject}]}; "" fields as null. */
void hc_dead_print_json(FILE *out, const hc_dead_list_t *list);

/*
 * The sentence for a refused requeue: "delivery 7 is sent, not failed;
 * delivery 9 does not exist" (n >= 1). Writes into buf; returns buf.
 */
char *hc_dead_refusal_text(const hc_dead_refusal_t *r, size_t n, char *buf, size_t len);

/* "heraldctl dead [--channel C] [--since T] [--limit N] [--json]". */
int hc_dead_cmd_list(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl requeue ID... | --all-failed --since T [--json]". */
int hc_dead_cmd_requeue(hc_ctx_t *ctx, int argc, char **argv);

#endif
