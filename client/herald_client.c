/*
 * NAME
 *	herald_client - libherald's connection to heraldd
 * DESCRIPTION
 *	One DEALER socket connected to heraldd's ROUTER, one table of
 *	outstanding requests, one event pump that every blocking call runs:
 *	it receives replies (matched on rid, in any order), resends attempts
 *	that timed out or met a retryable error after a backoff, and
 *	completes requests. Synchronous and pipelined submissions share the
 *	table, so a synchronous call also completes pipelined requests.
 *	Encoding and decoding go through hd_envelope only. Never logs.
 *
 *	A request id (rid) names one attempt: seq << 32 | slot << 8 |
 *	attempt. Every attempt of a message carries the message's
 *	idempotency key, so an ACK to any attempt of a still-pending request
 *	is its answer; a retryable ERROR counts only for the latest attempt,
 *	and replies to finished requests (seq no longer in the slot) are
 *	ignored.
 *
 *	Socket choices: ZMQ_IMMEDIATE=1 so that, while heraldd is down, a
 *	send fails at once (EAGAIN) instead of queueing behind a dead
 *	connection; such an attempt stays "unsent" and goes out as soon as
 *	the socket is writable again (the attempt clock restarts then).
 *	Requests written to a peer that died are lost with it and resent on
 *	timeout. LINGER=0: nothing goes out after destroy, whose pending
 *	requests were reported unavailable. Heartbeats drop silently dead
 *	peers.
 * OWNERSHIP
 *	The client owns its ZeroMQ context and socket, the messages given to
 *	herald_submit_async, and the result passed to the callback.
 * LIMITS
 *	window <= 65536 (16 bits of slot in the rid), retries <= 100 (the
 *	attempt byte of the rid).
 */
#include "herald/herald.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include "hd_envelope.h"
#include "hd_err.h"
#include "hd_limits.h"
#include "hd_mem.h"
#include "hd_time.h"
#include "herald_msg_priv.h"

#define HC_DEFAULT_TIMEOUT_MS 5000
#define HC_DEFAULT_RETRIES    3
#define HC_DEFAULT_WINDOW     64
#define HC_DEFAULT_BACKOFF_MS 100
#define HC_DEFAULT_BACKOFF_MAX_MS 5000
#define HC_MAX_TIMEOUT_MS     3600000
#define HC_MAX_RETRIES        100
#define HC_MAX_WINDOW         65536
#define HC_MAX_RETRY_AFTER_MS 60000  /* cap on a server's hint */
#define HC_DRAIN_BATCH        1024   /* replies per pump before timers run */
#define HC_NEVER              INT64_MAX

typedef enum {
	HC_SENT,     /* handed to ZeroMQ; waiting for a reply until deadline */
	HC_UNSENT,   /* no connected peer or HWM; send when writable */
	HC_BACKOFF   /* waiting until deadline to send the next attempt */
} hc_phase_t;

typedef struct hc_entry {
	bool in_use;
	bool is_ping;
	hc_phase_t phase;
	uint32_t seq;
	unsigned attempt;          /* index of the latest attempt */
	unsigned sent;             /* attempts handed to ZeroMQ */
	bool encoded;              /* the request encoded at least once */
	int attempt_timeout_ms;
	int64_t deadline_ms;
	herald_msg_t *owned;       /* pipelined: the client owns the message */
	herald_msg_t *msg;         /* NULL for ping */
	void *user;
	herald_result_t *res;      /* synchronous: caller's; else NULL */
	bool *done;                /* synchronous: set on completion */
	int last_code;             /* last retryable HD_E_*, 0: only timeouts */
	char last_reason[256];
	const char *local_field;   /* field of a local (encoding) error */
} hc_entry_t;

struct herald_client {
	void *ctx;
	void *sock;
	char *app;
	int timeout_ms;
	unsigned retries;
	int backoff_ms;
	int backoff_max_ms;
	size_t window;
	herald_result_fn *cb;
	void *cb_arg;
	bool in_callback;
	hc_entry_t *entries;       /* window + 1 slots (one spare for ping) */
	size_t capacity;
	size_t *free_slots;        /* stack of free slot indexes */
	size_t free_count;
	size_t outstanding;
	size_t unsent;
	uint32_t next_seq;
	int64_t next_check_ms;     /* no deadline falls before this */
	herald_result_t scratch;   /* result handed to the callback */
};

__attribute__((format(printf, 3, 4)))
static void hc_errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#define HC_COPY(dst, src) snprintf((dst), sizeof(dst), "%s", (src) ? (src) : "")

const char *herald_strerror(int status)
{
	switch (status) {
	case HERALD_OK:            return "accepted";
	case HERALD_E_REJECTED:    return "rejected by heraldd";
	case HERALD_E_UNAVAILABLE: return "heraldd unavailable (no answer after all retries)";
	case HERALD_E_INVAL:       return "invalid argument";
	case HERALD_E_TIMEOUT:     return "deadline passed with requests still pending";
	default:                   return "unknown status";
	}
}

/* ---- slot table ------------------------------------------------------ */

static void hc_table_alloc(herald_client_t *c, size_t window)
{
	hd_free(&c->entries);
	hd_free(&c->free_slots);
	c->window = window;
	c->capacity = window + 1;
	c->entries = hd_calloc(c->capacity, sizeof(*c->entries));
	c->free_slots = hd_malloc(c->capacity * sizeof(*c->free_slots));
	/* Pop order does not matter; lowest slots first keeps tests readable. */
	for (size_t i = 0; i < c->capacity; i++)
		c->free_slots[i] = c->capacity - 1 - i;
	c->free_count = c->capacity;
}

static size_t hc_slot_take(herald_client_t *c)
{
	if (c->free_count == 0)
		hd_panic("herald: no free request slot (outstanding=%zu)", c->outstanding);
	size_t slot = c->free_slots[--c->free_count];
	hc_entry_t *e = &c->entries[slot];
	memset(e, 0, sizeof(*e));
	e->in_use = true;
	if (++c->next_seq == 0)
		c->next_seq = 1;
	e->seq = c->next_seq;
	e->attempt_timeout_ms = c->timeout_ms;
	c->outstanding++;
	return slot;
}

static void hc_slot_release(herald_client_t *c, size_t slot)
{
	hc_entry_t *e = &c->entries[slot];
	if (e->phase == HC_UNSENT)
		c->unsent--;
	herald_msg_destroy(&e->owned);
	memset(e, 0, sizeof(*e));
	c->free_slots[c->free_count++] = slot;
	c->outstanding--;
	if (c->outstanding == 0)
		c->next_check_ms = HC_NEVER;
}

static uint64_t hc_rid(size_t slot, const hc_entry_t *e)
{
	return (uint64_t)e->seq << 32 | (uint64_t)slot << 8 | (uint64_t)e->attempt;
}

static void hc_set_deadline(herald_client_t *c, hc_entry_t *e, int64_t deadline_ms)
{
	e->deadline_ms = deadline_ms;
	if (deadline_ms < c->next_check_ms)
		c->next_check_ms = deadline_ms;
}

/* ---- completion ------------------------------------------------------ */

static void hc_fill_findings(herald_result_t *res, const hd_reply_t *reply);

static void hc_fill_ack(herald_result_t *res, const hd_reply_t *reply)
{
	res->status = HERALD_OK;
	res->id = reply->id;
	HC_COPY(res->klass, hd_class_name(reply->klass));
	HC_COPY(res->state, reply->state);
	res->duplicate = reply->duplicate ? 1 : 0;
	hc_fill_findings(res, reply);
}

/* An ACK's findings, or those of a policy ERROR. */
static void hc_fill_findings(herald_result_t *res, const hd_reply_t *reply)
{
	res->findings_total = reply->finding_count;
	res->finding_count = reply->finding_count < HERALD_MAX_FINDINGS ?
			     reply->finding_count : HERALD_MAX_FINDINGS;
	for (size_t i = 0; i < res->finding_count; i++) {
		const hd_finding_t *f = &reply->findings[i];
		herald_finding_t *o = &res->findings[i];
		HC_COPY(o->rule, f->rule);
		HC_COPY(o->clause, f->clause);
		HC_COPY(o->action, f->action);
		HC_COPY(o->severity, f->severity);
		HC_COPY(o->reason, f->reason);
	}
}

static void hc_fill_error(herald_result_t *res, int status, int code, const char *field,
			  const char *reason)
{
	res->status = status;
	HC_COPY(res->code, hd_err_name(code));
	HC_COPY(res->field, field);
	HC_COPY(res->reason, reason);
	res->retryable = hd_err_is_retryable(code) ? 1 : 0;
}

/*
 * Finish the request in slot: fill its result (from reply when not
 * NULL, else as a give-up or local error with status), free the slot,
 * then wake the synchronous caller or run the callback.
 */
static void hc_finish(herald_client_t *c, size_t slot, int status, const hd_reply_t *reply)
{
	hc_entry_t *e = &c->entries[slot];
	herald_result_t *res = e->res ? e->res : &c->scratch;
	bool *done = e->done;
	void *user = e->user;

	memset(res, 0, sizeof(*res));
	if (reply && reply->ok) {
		hc_fill_ack(res, reply);
	} else if (reply) {
		hc_fill_error(res, status, reply->code, reply->field, reply->reason);
		hc_fill_findings(res, reply);
	} else if (status == HERALD_E_UNAVAILABLE) {
		char why[sizeof(e->last_reason) + 64];
		if (e->last_code)
			snprintf(why, sizeof(why), "%s (after %u attempt%s)", e->last_reason,
				 e->attempt + 1, e->attempt ? "s" : "");
		else if (e->sent == 0)
			snprintf(why, sizeof(why),
				 "heraldd not reachable: no connection during %u attempt%s",
				 e->attempt + 1, e->attempt ? "s" : "");
		else
			snprintf(why, sizeof(why), "no reply from heraldd after %u attempt%s",
				 e->attempt + 1, e->attempt ? "s" : "");
		hc_fill_error(res, status, e->last_code ? e->last_code : HD_E_TIMEOUT, "",
			      why);
	} else {
		hc_fill_error(res, status, e->last_code ? e->last_code : HD_E_INVALID,
			      e->local_field, e->last_reason);
	}
	res->attempts = e->encoded ? e->attempt + 1 : 0;
	res->user = user;
	if (e->msg)
		HC_COPY(res->idempotency_key, herald_msg_idempotency_key(e->msg));

	hc_slot_release(c, slot);
	if (done) {
		*done = true;
	} else if (c->cb) {
		c->in_callback = true;
		c->cb(res, c->cb_arg);
		c->in_callback = false;
	}
}

/* ---- sending --------------------------------------------------------- */

static void hc_free_frame(void *data, void *hint)
{
	(void)hint;
	free(data);
}

/*
 * Encode and hand the current attempt of slot to ZeroMQ. Returns 0
 * (sent or left unsent until the socket is writable) or the HD_E_* code
 * of a request that cannot be encoded.
 */
static int hc_send(herald_client_t *c, size_t slot)
{
	hc_entry_t *e = &c->entries[slot];
	hd_request_t req = {
		.version = HD_PROTOCOL_VERSION,
		.rid = hc_rid(slot, e),
		.op = e->is_ping ? HD_OP_PING : HD_OP_SUBMIT,
		.app = c->app,
		.msg = e->is_ping ? NULL : herald_msg_wire(e->msg),
	};
	if (req.msg && !req.msg->sender) {
		e->last_code = HD_E_MISSING;
		e->local_field = "msg.from";
		snprintf(e->last_reason, sizeof(e->last_reason), "%s",
			 "no sender: call herald_msg_set_from");
		return HD_E_MISSING;
	}
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = hd_envelope_encode_request(&req, &buf, &len);
	if (rc != 0) {
		free(buf);
		e->last_code = rc;
		snprintf(e->last_reason, sizeof(e->last_reason),
			 "request cannot be encoded: %s", hd_strerror(rc));
		return rc;
	}
	if (len > HD_MAX_FRAME_BYTES) {
		free(buf);
		e->last_code = HD_E_TOOBIG;
		snprintf(e->last_reason, sizeof(e->last_reason),
			 "request of %zu bytes exceeds the %u-byte frame limit", len,
			 HD_MAX_FRAME_BYTES);
		return HD_E_TOOBIG;
	}

	e->encoded = true;
	bool was_unsent = e->phase == HC_UNSENT;
	zmq_msg_t frame;
	if (zmq_msg_init_data(&frame, buf, len, hc_free_frame, NULL) != 0) {
		free(buf);
		hd_panic("zmq_msg_init_data: %s", zmq_strerror(errno));
	}
	int64_t now = hd_time_mono_ms();
	if (zmq_msg_send(&frame, c->sock, ZMQ_DONTWAIT) >= 0) {
		e->phase = HC_SENT;
		e->sent++;
		if (was_unsent)
			c->unsent--;
		/* The attempt clock starts when the request really leaves. */
		hc_set_deadline(c, e, now + e->attempt_timeout_ms);
	} else {
		zmq_msg_close(&frame);
		if (!was_unsent) {
			e->phase = HC_UNSENT;
			c->unsent++;
			hc_set_deadline(c, e, now + e->attempt_timeout_ms);
		}
	}
	return 0;
}

static void hc_send_unsent(herald_client_t *c)
{
	for (size_t slot = 0; slot < c->capacity && c->unsent > 0; slot++) {
		hc_entry_t *e = &c->entries[slot];
		if (!e->in_use || e->phase != HC_UNSENT)
			continue;
		size_t before = c->unsent;
		if (hc_send(c, slot) != 0)
			hc_finish(c, slot, HERALD_E_INVAL, NULL);
		else if (c->unsent == before)
			break; /* still not writable: stop trying for now */
	}
}

/* ---- timers ---------------------------------------------------------- */

static int64_t hc_backoff(const herald_client_t *c, unsigned attempt, int64_t hint_ms)
{
	int64_t d = hd_time_backoff_ms(attempt, c->backoff_ms, c->backoff_max_ms);
	if (hint_ms > HC_MAX_RETRY_AFTER_MS)
		hint_ms = HC_MAX_RETRY_AFTER_MS;
	return hint_ms > d ? hint_ms : d;
}

/* The current attempt of slot failed (timeout or retryable error). */
static void hc_attempt_failed(herald_client_t *c, size_t slot, int64_t now, int64_t hint_ms)
{
	hc_entry_t *e = &c->entries[slot];
	if (e->phase == HC_UNSENT) {
		c->unsent--;
		e->phase = HC_SENT;
	}
	if (e->is_ping || e->attempt >= c->retries) {
		hc_finish(c, slot, HERALD_E_UNAVAILABLE, NULL);
		return;
	}
	e->phase = HC_BACKOFF;
	hc_set_deadline(c, e, now + hc_backoff(c, e->attempt, hint_ms));
}

static void hc_expire(herald_client_t *c, int64_t now)
{
	c->next_check_ms = HC_NEVER;
	for (size_t slot = 0; slot < c->capacity; slot++) {
		hc_entry_t *e = &c->entries[slot];
		if (!e->in_use)
			continue;
		if (e->deadline_ms > now) {
			if (e->deadline_ms < c->next_check_ms)
				c->next_check_ms = e->deadline_ms;
			continue;
		}
		if (e->phase == HC_BACKOFF) {
			e->attempt++;
			e->phase = HC_SENT;
			if (hc_send(c, slot) != 0)
				hc_finish(c, slot, HERALD_E_INVAL, NULL);
		} else {
			hc_attempt_failed(c, slot, now, 0);
		}
	}
}

/* ---- receiving ------------------------------------------------------- */

static void hc_on_reply(herald_client_t *c, const hd_reply_t *reply)
{
	uint32_t seq = (uint32_t)(reply->rid >> 32);
	size_t slot = (size_t)((reply->rid >> 8) & 0xffffffu);
	unsigned attempt = (unsigned)(reply->rid & 0xffu);
	if (slot >= c->capacity)
		return;
	hc_entry_t *e = &c->entries[slot];
	if (!e->in_use || e->seq != seq || attempt > e->attempt)
		return; /* a finished request or a rid we never sent */

	if (reply->ok && reply->pong != e->is_ping) {
		return; /* an ACK of the wrong kind: let the attempt time out */
	} else if (reply->ok) {
		hc_finish(c, slot, HERALD_OK, reply);
	} else if (e->is_ping || !hd_err_is_retryable(reply->code)) {
		hc_finish(c, slot, HERALD_E_REJECTED, reply);
	} else if (attempt == e->attempt && e->phase == HC_SENT) {
		e->last_code = reply->code;
		HC_COPY(e->last_reason, reply->reason);
		hc_attempt_failed(c, slot, hd_time_mono_ms(), reply->retry_after_ms);
	}
	/* else: a retryable error for an attempt already superseded */
}

static void hc_drain(herald_client_t *c)
{
	for (int n = 0; n < HC_DRAIN_BATCH; n++) {
		zmq_msg_t frame;
		zmq_msg_init(&frame);
		if (zmq_msg_recv(&frame, c->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&frame);
			return;
		}
		bool multipart = zmq_msg_more(&frame) != 0;
		if (!multipart) {
			hd_reply_t reply;
			hd_decode_error_t derr;
			memset(&reply, 0, sizeof(reply));
			/* Undecodable replies are dropped: the attempt times out and is resent. */
			if (hd_envelope_decode_reply(zmq_msg_data(&frame), zmq_msg_size(&frame),
						     &reply, &derr) == 0)
				hc_on_reply(c, &reply);
			hd_reply_clear(&reply);
		}
		zmq_msg_close(&frame);
		while (multipart) { /* not our protocol: discard every part */
			zmq_msg_init(&frame);
			if (zmq_msg_recv(&frame, c->sock, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&frame);
				return;
			}
			multipart = zmq_msg_more(&frame) != 0;
			zmq_msg_close(&frame);
		}
	}
}

/* ---- the pump -------------------------------------------------------- */

/* Wait for one event (or until_ms, or the next deadline) and process it. */
static void hc_pump(herald_client_t *c, int64_t until_ms)
{
	int64_t now = hd_time_mono_ms();
	int64_t wake = until_ms;
	if (c->outstanding > 0 && c->next_check_ms < wake)
		wake = c->next_check_ms;
	long timeout_ms;
	if (wake == HC_NEVER)
		timeout_ms = -1;
	else
		timeout_ms = wake <= now ? 0 : (long)(wake - now);

	zmq_pollitem_t item = {.socket = c->sock, .events = ZMQ_POLLIN};
	if (c->unsent > 0)
		item.events |= ZMQ_POLLOUT;
	int n = zmq_poll(&item, 1, timeout_ms);
	if (n > 0 && (item.revents & ZMQ_POLLIN))
		hc_drain(c);
	if (n > 0 && (item.revents & ZMQ_POLLOUT) && c->unsent > 0)
		hc_send_unsent(c);
	/* n < 0 is EINTR (or ETERM at exit): the caller's loop re-checks. */
	now = hd_time_mono_ms();
	if (c->outstanding > 0 && now >= c->next_check_ms)
		hc_expire(c, now);
}

static void hc_wait_for_slot(herald_client_t *c)
{
	while (c->outstanding >= c->window)
		hc_pump(c, HC_NEVER);
}

/* ---- public: client -------------------------------------------------- */

static bool hc_setopt(void *sock, int opt, int value)
{
	return zmq_setsockopt(sock, opt, &value, sizeof(value)) == 0;
}

herald_client_t *herald_client_new(const char *endpoint, const char *app, char *err,
				   size_t errlen)
{
	if (!endpoint)
		endpoint = HERALD_DEFAULT_ENDPOINT;
	size_t app_len = app ? strnlen(app, HD_MAX_APP_BYTES + 1) : 0;
	if (app_len == 0 || app_len > HD_MAX_APP_BYTES || !hd_msg_is_utf8(app, app_len)) {
		hc_errf(err, errlen, "application name must be 1..%u bytes of UTF-8",
			HD_MAX_APP_BYTES);
		return NULL;
	}
	if (sodium_init() < 0) {
		hc_errf(err, errlen, "%s", "libsodium failed to initialise");
		return NULL;
	}
	void *ctx = zmq_ctx_new();
	if (!ctx) {
		hc_errf(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
		return NULL;
	}
	void *sock = zmq_socket(ctx, ZMQ_DEALER);
	if (!sock) {
		hc_errf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
		zmq_ctx_term(ctx);
		return NULL;
	}
	bool ok = hc_setopt(sock, ZMQ_LINGER, 0) && hc_setopt(sock, ZMQ_IMMEDIATE, 1) &&
		  hc_setopt(sock, ZMQ_RECONNECT_IVL, 100) &&
		  hc_setopt(sock, ZMQ_RECONNECT_IVL_MAX, 2000) &&
		  hc_setopt(sock, ZMQ_HEARTBEAT_IVL, 2000) &&
		  hc_setopt(sock, ZMQ_HEARTBEAT_TIMEOUT, 6000);
	if (!ok || zmq_connect(sock, endpoint) != 0) {
		hc_errf(err, errlen, "cannot connect to %.100s: %s", endpoint,
			zmq_strerror(errno));
		zmq_close(sock);
		zmq_ctx_term(ctx);
		return NULL;
	}

	herald_client_t *c = hd_calloc(1, sizeof(*c));
	c->ctx = ctx;
	c->sock = sock;
	c->app = hd_strdup(app);
	c->timeout_ms = HC_DEFAULT_TIMEOUT_MS;
	c->retries = HC_DEFAULT_RETRIES;
	c->backoff_ms = HC_DEFAULT_BACKOFF_MS;
	c->backoff_max_ms = HC_DEFAULT_BACKOFF_MAX_MS;
	c->next_check_ms = HC_NEVER;
	hc_table_alloc(c, HC_DEFAULT_WINDOW);
	return c;
}

void herald_client_destroy(herald_client_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	herald_client_t *c = *self_p;
	for (size_t slot = 0; slot < c->capacity; slot++) {
		hc_entry_t *e = &c->entries[slot];
		if (!e->in_use)
			continue;
		snprintf(e->last_reason, sizeof(e->last_reason), "%s",
			 "client destroyed before heraldd answered");
		e->last_code = HD_E_UNAVAILABLE;
		hc_finish(c, slot, HERALD_E_UNAVAILABLE, NULL);
	}
	zmq_close(c->sock);
	zmq_ctx_term(c->ctx);
	hd_free(&c->app);
	hd_free(&c->entries);
	hd_free(&c->free_slots);
	hd_free(self_p);
}

int herald_client_set_timeout_ms(herald_client_t *self, int timeout_ms)
{
	if (!self || self->in_callback || timeout_ms < 1 || timeout_ms > HC_MAX_TIMEOUT_MS)
		return HERALD_E_INVAL;
	self->timeout_ms = timeout_ms;
	return HERALD_OK;
}

int herald_client_set_retries(herald_client_t *self, int retries)
{
	if (!self || self->in_callback || retries < 0 || retries > HC_MAX_RETRIES)
		return HERALD_E_INVAL;
	self->retries = (unsigned)retries;
	return HERALD_OK;
}

int herald_client_set_backoff_ms(herald_client_t *self, int base_ms, int max_ms)
{
	if (!self || self->in_callback || base_ms < 1 || max_ms < base_ms ||
	    max_ms > HC_MAX_TIMEOUT_MS)
		return HERALD_E_INVAL;
	self->backoff_ms = base_ms;
	self->backoff_max_ms = max_ms;
	return HERALD_OK;
}

int herald_client_set_window(herald_client_t *self, int window)
{
	if (!self || self->in_callback || window < 1 || window > HC_MAX_WINDOW ||
	    self->outstanding > 0)
		return HERALD_E_INVAL;
	hc_table_alloc(self, (size_t)window);
	return HERALD_OK;
}

int herald_client_set_callback(herald_client_t *self, herald_result_fn *fn, void *arg)
{
	if (!self || self->in_callback)
		return HERALD_E_INVAL;
	self->cb = fn;
	self->cb_arg = arg;
	return HERALD_OK;
}

size_t herald_client_outstanding(const herald_client_t *self)
{
	return self ? self->outstanding : 0;
}

/* ---- public: submit -------------------------------------------------- */

int herald_submit(herald_client_t *self, herald_msg_t *msg, herald_result_t *res)
{
	if (!res)
		return HERALD_E_INVAL;
	memset(res, 0, sizeof(*res));
	if (!self || !msg || self->in_callback) {
		hc_fill_error(res, HERALD_E_INVAL, HD_E_INVALID, "",
			      "NULL client or message, or called from a callback");
		return res->status;
	}
	herald_msg_ensure_key(msg);
	hc_wait_for_slot(self);
	bool done = false;
	size_t slot = hc_slot_take(self);
	hc_entry_t *e = &self->entries[slot];
	e->msg = msg;
	e->res = res;
	e->done = &done;
	if (hc_send(self, slot) != 0)
		hc_finish(self, slot, HERALD_E_INVAL, NULL);
	while (!done)
		hc_pump(self, HC_NEVER);
	return res->status;
}

int herald_submit_async(herald_client_t *self, herald_msg_t **msg_p, void *user)
{
	if (!msg_p || !*msg_p)
		return HERALD_E_INVAL;
	herald_msg_t *msg = *msg_p;
	*msg_p = NULL;
	if (!self || self->in_callback) {
		herald_msg_destroy(&msg);
		return HERALD_E_INVAL;
	}
	herald_msg_ensure_key(msg);
	hc_wait_for_slot(self);
	size_t slot = hc_slot_take(self);
	hc_entry_t *e = &self->entries[slot];
	e->owned = msg;
	e->msg = msg;
	e->user = user;
	if (hc_send(self, slot) != 0) {
		hc_slot_release(self, slot); /* destroys the message; no callback */
		return HERALD_E_INVAL;
	}
	/* Collect whatever already arrived, without waiting. */
	hc_pump(self, hd_time_mono_ms());
	return HERALD_OK;
}

int herald_client_flush(herald_client_t *self, int timeout_ms)
{
	if (!self || self->in_callback)
		return HERALD_E_INVAL;
	int64_t until = timeout_ms < 0 ? HC_NEVER : hd_time_mono_ms() + timeout_ms;
	while (self->outstanding > 0) {
		if (until != HC_NEVER && hd_time_mono_ms() >= until)
			return HERALD_E_TIMEOUT;
		hc_pump(self, until);
	}
	return HERALD_OK;
}

int herald_client_ping(herald_client_t *self, int timeout_ms)
{
	if (!self || self->in_callback || timeout_ms < 1 || timeout_ms > HC_MAX_TIMEOUT_MS)
		return HERALD_E_INVAL;
	herald_result_t res;
	bool done = false;
	size_t slot = hc_slot_take(self); /* the spare slot guarantees one is free */
	hc_entry_t *e = &self->entries[slot];
	e->is_ping = true;
	e->attempt_timeout_ms = timeout_ms;
	e->res = &res;
	e->done = &done;
	if (hc_send(self, slot) != 0)
		hc_finish(self, slot, HERALD_E_INVAL, NULL);
	while (!done)
		hc_pump(self, HC_NEVER);
	return res.status;
}
