/*
 * NAME
 *	hd_pgconn - one asynchronous PostgreSQL connection running a queue of queries
 * DESCRIPTION
 *	Connects without blocking (PQconnectStartParams), reconnects with
 *	jittered exponential backoff, and runs queued queries one at a time
 *	(PQsendQueryParams), each completing through its callback after the
 *	server's ReadyForQuery, i.e. after the implicit transaction of that
 *	one statement has committed. Driven by the caller's zmq_poll loop
 *	through hd_pgconn_poll_item / hd_pgconn_handle. When the connection
 *	fails, the query in flight and every queued query complete with
 *	HD_E_UNAVAILABLE (their effect is unknown for the one in flight:
 *	callers design statements to be safe to repeat). LISTEN
 *	notifications are handed to an optional callback.
 *	Logs connection state changes only (a decision made here).
 * OWNERSHIP
 *	hd_pgconn_t owns its PGconn and copies of queued parameters. A
 *	result passed to a callback is borrowed for the callback's duration.
 */
#ifndef HD_PGCONN_H
#define HD_PGCONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct hd_pgconn hd_pgconn_t;

/* code: HD_OK with res (PGRES_TUPLES_OK or COMMAND_OK), or HD_E_UNAVAILABLE /
 * HD_E_INTERNAL with res possibly NULL and why set. */
typedef void (*hd_pgconn_done_fn)(void *arg, int code, const PGresult *res, const char *why);
typedef void (*hd_pgconn_notify_fn)(void *arg, const char *channel, const char *payload);
/* Called after every successful (re)connect, before queued queries run. */
typedef void (*hd_pgconn_up_fn)(void *arg);

typedef struct hd_pgconn_options {
	const char *name;                /* for log lines, e.g. "dispatch" */
	const char *conninfo;            /* borrowed */
	int64_t reconnect_min_ms;
	int64_t reconnect_max_ms;
	int64_t statement_timeout_ms;
} hd_pgconn_options_t;

/* Caller owns the result. Connects at the first hd_pgconn_handle. */
hd_pgconn_t *hd_pgconn_new(const hd_pgconn_options_t *opts);

/* NULL-safe; completes queued queries with HD_E_UNAVAILABLE first. */
void hd_pgconn_destroy(hd_pgconn_t **self_p);

/* Optional hooks; arg is passed back. */
void hd_pgconn_set_hooks(hd_pgconn_t *self, hd_pgconn_up_fn up, hd_pgconn_notify_fn notify,
			 void *arg);

/*
 * Queue a statement with text parameters (copied). Returns HD_OK, or
 * HD_E_UNAVAILABLE while disconnected (the callback is then not called).
 */
int hd_pgconn_query(hd_pgconn_t *self, const char *sql, int nparams, const char *const *params,
		    hd_pgconn_done_fn done, void *arg);

/* True when connected. */
bool hd_pgconn_is_up(const hd_pgconn_t *self);

/* Queries queued or in flight. */
size_t hd_pgconn_pending(const hd_pgconn_t *self);

/* Fill *item with the socket to poll; false when there is none. */
bool hd_pgconn_poll_item(const hd_pgconn_t *self, zmq_pollitem_t *item);

/* Drive the connection; item is the one filled above (after zmq_poll) or NULL. */
void hd_pgconn_handle(hd_pgconn_t *self, int64_t now_ms, const zmq_pollitem_t *item);

/* Milliseconds until handle has timed work (reconnect), -1 for none. */
int64_t hd_pgconn_timeout_ms(const hd_pgconn_t *self, int64_t now_ms);

#endif
