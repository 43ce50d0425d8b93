/*
 * NAME
 *	hd_store - durable intake into PostgreSQL with group commit
 * DESCRIPTION
 *	The only broker module that talks to the database. Submissions are
 *	queued here and written in batches: one call of the SQL function
 *	herald.intake_batch per transaction, flushed when batch_max items
 *	wait or the oldest waited batch_wait_ms, on whichever of the store's
 *	connections is idle (one batch in flight per connection, so while
 *	one commits the next batch fills and goes out on another). A
 *	completion is reported only
 *	after the server's ReadyForQuery, i.e. after COMMIT is durable
 *	(synchronous_commit=on), so an ACK never precedes durability.
 *	Connections are asynchronous (PQconnectStart, PQsendQueryParams)
 *	and driven by the caller's event loop through hd_store_poll_items and
 *	hd_store_handle; nothing here blocks. When a connection fails, its
 *	in-flight items complete with HD_E_UNAVAILABLE (retryable), queued
 *	ones too once no connection is left, and each connection reconnects
 *	with exponential backoff. A batch that fails
 *	for a data reason is retried one item per transaction so that only
 *	the offending submission fails. It never logs except connection
 *	state changes, which are decisions made here.
 * OWNERSHIP
 *	hd_store_submit takes ownership of an item; the completion callback
 *	hands it back to the caller, who destroys it.
 */
#ifndef HD_STORE_H
#define HD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "hd_envelope.h"
#include "hd_msg.h"
#include "hd_policy.h"

#define HD_STORE_ROUTE_MAX 256

typedef struct hd_store hd_store_t;

/* One submission on its way to the database. */
typedef struct hd_store_item {
	struct hd_store_item *next;       /* queue link; store-private */
	struct hd_store_item *followers;  /* same (app, key) in one batch; store-private */
	bool isolate;                     /* retry alone after a batch error; store-private */
	char *app;                        /* owned */
	hd_msg_t *msg;                    /* owned */
	hd_class_t klass;
	bool important;                   /* for the approval rules (hd_classify_explain) */
	bool major;
	/* The policy's verdict (hd_policy), written with the message. */
	hd_finding_t *findings;           /* owned; the database's are appended */
	size_t finding_count;
	const hd_policy_db_rule_t *const *db_rules;  /* borrowed from the policy */
	size_t db_rule_count;
	int64_t not_before_s;             /* quiet hours: deliveries wait until then; 0 = no */
	bool rejected;                    /* refused by the policy: record the violations only */
	char reject_field[96];
	char reject_reason[256];
	int64_t enqueued_ms;              /* monotonic, set by hd_store_submit */
	/* Reply routing, owned by the caller and opaque to the store. */
	uint64_t rid;
	unsigned char route[HD_STORE_ROUTE_MAX];
	size_t route_len;
	bool req_delimiter;
} hd_store_item_t;

typedef struct hd_store_result {
	int code;                /* HD_OK, HD_E_INVALID (refused by the database's rules,
				  * e.g. an unknown sender), HD_E_POLICY (refused by the
				  * policy, here or by the database's policy checks; the
				  * violations are committed), HD_E_UNAVAILABLE, HD_E_INTERNAL */
	char field[96];          /* for HD_E_INVALID: the request field at fault */
	int64_t id;              /* message id */
	hd_class_t klass;        /* the class stored (the original one for duplicates) */
	char state[16];          /* "queued" | "held" */
	bool duplicate;          /* answered from an earlier submission */
	char reason[256];        /* why, when code != HD_OK */
} hd_store_result_t;

/* Called once per item; the callee takes ownership of item. */
typedef void (*hd_store_done_fn)(void *arg, hd_store_item_t *item,
				 const hd_store_result_t *result);

typedef struct hd_store_options {
	const char *conninfo;            /* libpq conninfo or URL; borrowed */
	int64_t connections;             /* batches in flight at once */
	int64_t batch_max;
	int64_t batch_max_bytes;         /* estimated JSON size of one batch */
	int64_t batch_wait_ms;
	int64_t max_pending;
	int64_t reconnect_min_ms;
	int64_t reconnect_max_ms;
	int64_t statement_timeout_ms;
	int64_t approval_due_s;          /* passed to intake_batch for held messages */
	int64_t approval_reminder_s;     /* 0 = no reminder */
} hd_store_options_t;

/* Caller owns the result. Starts connecting at the first hd_store_handle. */
hd_store_t *hd_store_new(const hd_store_options_t *opts, hd_store_done_fn done, void *arg);

/* NULL-safe; completes outstanding items with HD_E_UNAVAILABLE first. */
void hd_store_destroy(hd_store_t **self_p);

/*
 * Queue item for the next batch; takes ownership on HD_OK. Returns
 * HD_E_UNAVAILABLE while disconnected and HD_E_BUSY when max_pending
 * items wait; the caller keeps the item then.
 */
int hd_store_submit(hd_store_t *self, hd_store_item_t *item);

/*
 * Fill up to max poll items with the sockets to watch and the events
 * wanted; returns how many. Pass the same items, after zmq_poll, to
 * hd_store_handle.
 */
size_t hd_store_poll_items(hd_store_t *self, zmq_pollitem_t *items, size_t max);

/* Drive connections, flushing and completions; call every loop turn. */
void hd_store_handle(hd_store_t *self, int64_t now_ms, const zmq_pollitem_t *items,
		     size_t count);

/* Milliseconds until hd_store_handle has timed work to do, -1 for none. */
int64_t hd_store_timeout_ms(const hd_store_t *self, int64_t now_ms);

/* True when at least one connection can take submissions. */
bool hd_store_is_ready(const hd_store_t *self);

/* True when nothing is queued or in flight. */
bool hd_store_is_idle(const hd_store_t *self);

/*
 * Append one finding to item->findings (every string copied; NULL as
 * ""): the policy's, at intake, and the database's, on completion.
 */
void hd_store_item_add_finding(hd_store_item_t *item, const char *rule, const char *clause,
			       const char *action, const char *severity, const char *reason,
			       const char *field);

/* Free an item and what it owns; NULL-safe. */
void hd_store_item_destroy(hd_store_item_t **item_p);

#endif
