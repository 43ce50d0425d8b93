/*
 * NAME
 *	hd_config - heraldd configuration: a table of typed, bounded parameters
 * DESCRIPTION
 *	The configuration file is libconfig syntax. Every parameter is one
 *	row of a table (path, type, default, bounds, help); loading walks
 *	the file and refuses unknown keys, wrong types and out-of-range
 *	values with "file:line: reason". The result is an immutable struct;
 *	hd_config_print shows the effective values (--print-config). The
 *	top-level group `policy` is skipped here: the policy module
 *	(broker/hd_policy) reads and checks it from the same file.
 * OWNERSHIP
 *	hd_config_t owns all its strings; free it with hd_config_destroy.
 */
#ifndef HD_CONFIG_H
#define HD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hd_msg.h"

typedef struct hd_config {
	char *listen;                 /* ROUTER endpoint for producers */
	char *database_url;           /* libpq conninfo; "" = libpq defaults */
	char *log_level;
	struct {
		int64_t batch_max_messages;   /* flush a transaction at N messages */
		int64_t batch_max_bytes;      /* ... or at about this much data */
		int64_t batch_max_wait_ms;    /* ... or when the oldest waited T ms */
		int64_t max_frame_bytes;      /* ZMQ_MAXMSGSIZE */
		int64_t max_recipients;       /* to + cc per message */
		int64_t max_pending;          /* decoded but uncommitted; beyond: busy */
	} intake;
	struct {
		int64_t bulk_threshold;       /* recipients at or above this are bulk */
		char *important_tag;          /* subject tag that marks important mail */
	} classify;
	struct {
		int64_t due_s;                /* an approval request expires after this */
		int64_t reminder_s;           /* remind the approvers after this; 0 = never */
		int64_t tick_ms;              /* how often expiries and reminders are run */
	} approval;
	struct {
		char *listen;                 /* ROUTER endpoint for workers */
		int64_t window;               /* claimed deliveries held in memory */
		int64_t claim_batch;          /* deliveries per claim */
		int64_t poll_ms;              /* claim interval when nothing was due */
		int64_t lease_ms;             /* a claimed delivery returns to the queue after this */
		int64_t heartbeat_ms;         /* beats to workers; dead after 3 missed */
		int64_t outcome_batch_max;    /* outcomes recorded per transaction */
		int64_t coalesce_ms;          /* wake-ups and outcomes wait this long to share a transaction */
		char **rate_limits;           /* "channel=N/S": N per S seconds per recipient */
		size_t rate_limit_count;
	} dispatch;
	struct {
		int64_t min_backoff_ms;       /* first retry delay */
		int64_t max_backoff_ms;       /* retry delay cap */
		int64_t max_lifetime_s;       /* give up this long after submission */
	} retry;
	struct {
		int64_t connections;          /* batches committing at once */
		int64_t reconnect_min_ms;
		int64_t reconnect_max_ms;
		int64_t statement_timeout_ms;
	} database;
	struct {
		char **keys;                  /* "ID:PATH" of each key file (hd_seal) */
		size_t key_count;
		char *seal_key;               /* id of the key new content is sealed with */
	} security;
} hd_config_t;

/* A per-recipient rate limit: at most count deliveries per per_seconds. */
typedef struct hd_rate_limit {
	hd_channel_t channel;
	int64_t count;
	int64_t per_seconds;
} hd_rate_limit_t;

/* Parse "im=20/60". 0 or HD_E_INVALID. */
int hd_config_parse_rate_limit(const char *spec, hd_rate_limit_t *out);

/*
 * Load path (NULL: defaults only). On success *out is owned by the
 * caller. On failure returns HD_E_CONFIG with "file:line: reason" in err.
 */
int hd_config_load(const char *path, hd_config_t **out, char *err, size_t errlen);

/*
 * Resolve @include directives of the file at path relative to its
 * directory (libconfig's default is the working directory). hd_policy
 * reads the same file and uses it too.
 */
struct config_t;
void hd_config_set_include_dir(struct config_t *lc, const char *path);

/* Write the effective configuration in libconfig syntax. */
void hd_config_print(const hd_config_t *self, FILE *out);

/* Print s as a libconfig string literal ("..." with \" and \\ escaped):
 * shared by every --print-config. */
void hd_config_print_string(FILE *out, const char *s);

/* NULL-safe; sets *self_p to NULL. */
void hd_config_destroy(hd_config_t **self_p);

#endif
