/*
 * NAME
 *	hd_config - heraldd configuration: a table of typed, bounded parameters
 * DESCRIPTION
 *	The configuration file is libconfig syntax. Every parameter is one
 *	row of a table (path, type, default, bounds, help); loading walks
 *	the file and refuses unknown keys, wrong types and out-of-range
 *	values with "file:line: reason". The result is an immutable struct;
 *	hd_config_print shows the effective values (--print-config).
 * OWNERSHIP
 *	hd_config_t owns all its strings; free it with hd_config_destroy.
 */
#ifndef HD_CONFIG_H
#define HD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct hd_config {
	char *listen;                 /* ROUTER endpoint for producers */
	char *database_url;           /* libpq conninfo; "" = libpq defaults */
	char *log_level;
	struct {
		int64_t batch_max_messages;   /* flush a transaction at N messages */
		int64_t batch_max_wait_ms;    /* ... or when the oldest waited T ms */
		int64_t max_frame_bytes;      /* ZMQ_MAXMSGSIZE */
		int64_t max_recipients;       /* to + cc per message */
		int64_t max_pending;          /* decoded but uncommitted; beyond: busy */
	} intake;
	struct {
		int64_t bulk_threshold;       /* recipients at or above this are bulk */
		char *important_tag;          /* subject tag that marks important mail */
		char **sensitive_keywords;    /* any of these makes a message important */
		size_t sensitive_keyword_count;
	} classify;
	struct {
		int64_t connections;          /* batches committing at once */
		int64_t reconnect_min_ms;
		int64_t reconnect_max_ms;
		int64_t statement_timeout_ms;
	} database;
} hd_config_t;

/*
 * Load path (NULL: defaults only). On success *out is owned by the
 * caller. On failure returns HD_E_CONFIG with "file:line: reason" in err.
 */
int hd_config_load(const char *path, hd_config_t **out, char *err, size_t errlen);

/* Write the effective configuration in libconfig syntax. */
void hd_config_print(const hd_config_t *self, FILE *out);

/* NULL-safe; sets *self_p to NULL. */
void hd_config_destroy(hd_config_t **self_p);

#endif
