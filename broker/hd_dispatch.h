/*
 * NAME
 *	hd_dispatch - the scheduler and the worker-facing ROUTER socket of heraldd
 * DESCRIPTION
 *	Claims due deliveries from PostgreSQL with a lease (herald.
 *	claim_deliveries, FOR UPDATE SKIP LOCKED, so brokers can run side by
 *	side), keeps them in a bounded in-memory window, hands each to a
 *	live worker that serves its channel and has credit, and records every
 *	outcome with its audit event in batches (herald.record_outcomes).
 *	Retries are scheduled with exponential backoff and jitter (Postfix's
 *	defaults), a provider's Retry-After wins, and per-recipient token
 *	buckets enforce provider rate limits here, not by sleeping in
 *	workers. Workers announce themselves with READY, beat with HB and are
 *	dead after three silent beats; their unfinished deliveries return to
 *	the queue when the lease expires. Nothing here blocks: the database
 *	connection is an hd_pgconn driven by the broker's loop.
 * OWNERSHIP
 *	hd_dispatch_t owns its socket, its database connection and every
 *	job and message in its window. The context is borrowed.
 */
#ifndef HD_DISPATCH_H
#define HD_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "hd_config.h"

typedef struct hd_dispatch hd_dispatch_t;

typedef struct hd_dispatch_stats {
	uint64_t claimed;
	uint64_t sent_to_workers;
	uint64_t delivered;
	uint64_t retried;
	uint64_t failed;
	uint64_t stale_results;      /* results for jobs no longer in the window */
	size_t workers;
	size_t window;               /* jobs held now */
} hd_dispatch_stats_t;

/* Bind cfg->dispatch.listen. Caller owns the result; NULL with err on failure. */
hd_dispatch_t *hd_dispatch_new(void *zmq_ctx, const hd_config_t *cfg, const char *conninfo,
			       char *err, size_t errlen);

/* NULL-safe. Unrecorded outcomes are lost; their leases expire and the
 * deliveries are sent again (at-least-once). */
void hd_dispatch_destroy(hd_dispatch_t **self_p);

/* Fill up to max poll items; returns how many. */
size_t hd_dispatch_poll_items(hd_dispatch_t *self, zmq_pollitem_t *items, size_t max);

/* After zmq_poll, with the same items; also runs timers. */
void hd_dispatch_handle(hd_dispatch_t *self, int64_t now_ms, const zmq_pollitem_t *items,
			size_t count);

/* Milliseconds until handle has timed work, -1 for none. */
int64_t hd_dispatch_timeout_ms(const hd_dispatch_t *self, int64_t now_ms);

/* Stop claiming; outcomes still arriving are recorded. */
void hd_dispatch_stop(hd_dispatch_t *self);

/* True when no job is with a worker and no outcome waits to be recorded. */
bool hd_dispatch_is_idle(const hd_dispatch_t *self);

/* Wake the claimer now (e.g. on NOTIFY). */
void hd_dispatch_wake(hd_dispatch_t *self);

hd_dispatch_stats_t hd_dispatch_stats(const hd_dispatch_t *self);

#endif
