/*
 * NAME
 *	hw_worker - the worker side of the broker <-> worker protocol
 * DESCRIPTION
 *	See hw_worker.h. Frames to heraldd go through an outbox (FIFO of
 *	encoded frames) that is flushed with ZMQ_DONTWAIT, so a full send
 *	queue never blocks the loop: the socket is then polled for POLLOUT.
 *	Credit is counted per connection: jobs received on the current
 *	connection and not yet answered. A job that arrived on an earlier
 *	connection still reports (on the current one) but no longer counts,
 *	because heraldd counts credit per connection too.
 * LIMITS
 *	At most HW_OUTBOX_MAX frames wait in the outbox; beyond that (heraldd
 *	not reading at all) RESULTs are dropped with an error line and the
 *	deliveries come back when their leases expire.
 */
#include "hw_worker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "hd_err.h"
#include "hd_log.h"
#include "hd_mem.h"
#include "hd_time.h"
#include "hd_wire.h"

#define HW_MAX_SLOTS        8
#define HW_ITEMS_START      64     /* poll items: grown when the drivers need more */
#define HW_ITEMS_MAX        65536
#define HW_READ_BURST       256    /* frames read per turn before drivers get a go */
#define HW_OUTBOX_MAX       100000
#define HW_CLOSE_LINGER_MS  1000
#define HW_DEAD_BEATS       3
#define HW_PROVIDER         "herald-worker"  /* provider of the RESULTs the worker makes itself */

typedef struct hw_slot {
	const hw_driver_t *driver;
	void *inst;
	hd_channel_t channel;
	size_t item_off, item_count;   /* this turn's poll items */
} hw_slot_t;

/* One job in a driver. cj comes first: hd_channel_job_destroy frees the whole. */
typedef struct hw_job {
	hd_channel_job_t cj;
	uint64_t gen;          /* connection it arrived on */
	int64_t start_ms;
	hw_slot_t *slot;
} hw_job_t;

typedef struct hw_out {
	struct hw_out *next;
	uint8_t *buf;
	size_t len;
} hw_out_t;

struct hw_worker {
	void *ctx;
	void *sock;
	char *endpoint;
	char name[HD_WIRE_MAX_NAME_BYTES + 1];
	uint32_t credit;            /* announced: min(configured, drivers' capacity) */
	uint32_t credit_configured;
	uint32_t heartbeat_ms;
	int64_t grace_ms;
	const hd_seal_t *seal;

	hw_slot_t slots[HW_MAX_SLOTS];
	size_t slot_count;
	unsigned channels;

	bool started;
	uint64_t gen;               /* connection number, 1 for the first */
	uint32_t conn_in_flight;    /* jobs received on this connection, unanswered */
	bool broker_lost;           /* reconnected and heard nothing yet */
	int64_t last_send_ms, last_recv_ms;

	hw_out_t *out_head, *out_tail;
	size_t out_count;

	zmq_pollitem_t *items;      /* this turn's poll items */
	size_t item_cap;

	bool stopping;
	int64_t stop_deadline_ms;
	hw_worker_stats_t stats;
};

/* ---- sending --------------------------------------------------------------- */

static void hw_flush(hw_worker_t *self, int64_t now_ms)
{
	while (self->out_head) {
		hw_out_t *o = self->out_head;
		if (zmq_send(self->sock, o->buf, o->len, ZMQ_DONTWAIT) < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			/* Not retryable on this socket: drop the frame, keep the loop alive. */
			hd_error("worker.send_failed", "reason=\"%s\"", zmq_strerror(errno));
		}
		self->last_send_ms = now_ms;
		self->out_head = o->next;
		if (!self->out_head)
			self->out_tail = NULL;
		self->out_count--;
		free(o->buf);
		free(o);
	}
}

static void hw_queue(hw_worker_t *self, const hd_wire_frame_t *frame, bool front, int64_t now_ms)
{
	if (self->out_count >= HW_OUTBOX_MAX) {
		hd_error("worker.outbox_full", "frames=%zu dropped=%s", self->out_count,
			 hd_wire_type_name(frame->type));
		return;
	}
	hw_out_t *o = hd_calloc(1, sizeof *o);
	if (hd_wire_encode(frame, &o->buf, &o->len) != HD_OK)
		hd_panic("cannot encode a %s frame", hd_wire_type_name(frame->type));
	if (front) {
		o->next = self->out_head;
		self->out_head = o;
		if (!self->out_tail)
			self->out_tail = o;
	} else {
		if (self->out_tail)
			self->out_tail->next = o;
		else
			self->out_head = o;
		self->out_tail = o;
	}
	self->out_count++;
	if (self->sock)
		hw_flush(self, now_ms);
}

static void hw_send_simple(hw_worker_t *self, hd_wire_type_t type, int64_t now_ms)
{
	hd_wire_frame_t f = {.type = type};
	hw_queue(self, &f, false, now_ms);
}

static hd_wire_frame_t hw_ready_frame(const hw_worker_t *self)
{
	hd_wire_frame_t f = {.type = HD_WIRE_READY};
	snprintf(f.u.ready.name, sizeof f.u.ready.name, "%s", self->name);
	f.u.ready.channels = self->channels;
	f.u.ready.credit = self->credit;
	f.u.ready.heartbeat_ms = self->heartbeat_ms;
	return f;
}

static void hw_send_ready(hw_worker_t *self, int64_t now_ms)
{
	hd_wire_frame_t f = hw_ready_frame(self);
	/* READY opens the conversation: it goes before RESULTs still waiting. */
	hw_queue(self, &f, true, now_ms);
}

static void hw_count_outcome(hw_worker_t *self, hd_outcome_kind_t outcome)
{
	if (outcome == HD_OUTCOME_DELIVERED)
		self->stats.delivered++;
	else if (outcome == HD_OUTCOME_RETRY)
		self->stats.retried++;
	else
		self->stats.failed++;
}

/* A RESULT the worker decides itself, without a driver. */
/* Retry-After for jobs this worker itself refuses. */
#define HW_LOCAL_RETRY_MS 1000

static void hw_answer(hw_worker_t *self, int64_t delivery_id, uint32_t attempt,
		      hd_outcome_kind_t outcome, const char *code, const char *detail,
		      const char *channel, int64_t now_ms)
{
	hd_wire_frame_t f = {.type = HD_WIRE_RESULT};
	hd_wire_result_t *r = &f.u.result;
	r->delivery_id = delivery_id;
	r->attempt = attempt;
	r->outcome = outcome;
	snprintf(r->provider, sizeof r->provider, "%s", HW_PROVIDER);
	snprintf(r->provider_code, sizeof r->provider_code, "%s", code);
	snprintf(r->detail, sizeof r->detail, "%s", detail);
	/* A refusal by this worker (busy, stopping, over credit) says nothing
	 * about the provider: ask for a quick retry instead of the broker's
	 * provider backoff (minutes). */
	if (outcome == HD_OUTCOME_RETRY)
		r->retry_after_ms = HW_LOCAL_RETRY_MS;
	self->stats.refused++;
	hw_count_outcome(self, outcome);
	hd_info("job.done", "delivery_id=%" PRId64 " attempt=%" PRIu32 " channel=%s provider=%s "
		"code=\"%s\" outcome=%s ms=0", delivery_id, attempt, channel, HW_PROVIDER, code,
		hd_outcome_name(outcome));
	hw_queue(self, &f, false, now_ms);
}

/* ---- driver reports -------------------------------------------------------- */

static void hw_on_done(void *arg, hd_channel_job_t *cj, const hd_wire_result_t *result)
{
	hw_worker_t *self = arg;
	hw_job_t *job = (hw_job_t *)cj;
	int64_t now = hd_time_mono_ms();
	if (job->gen == self->gen && self->conn_in_flight > 0)
		self->conn_in_flight--;
	if (self->stats.in_flight > 0)
		self->stats.in_flight--;

	hd_wire_frame_t f = {.type = HD_WIRE_RESULT};
	hd_wire_result_t *r = &f.u.result;
	*r = *result;
	/* The job, not the driver, says which delivery this is. */
	r->delivery_id = cj->job.delivery_id;
	r->attempt = cj->job.attempt;
	if ((unsigned)r->outcome > HD_OUTCOME_FAILED) {
		hd_error("worker.driver_bug", "driver=%s delivery_id=%" PRId64 " reason=\"%s\"",
			 job->slot->driver->name, r->delivery_id, "unknown outcome; sent as retry");
		r->outcome = HD_OUTCOME_RETRY;
	}
	if (!memchr(r->provider, '\0', sizeof r->provider) || !r->provider[0])
		snprintf(r->provider, sizeof r->provider, "%s", job->slot->driver->name);
	r->provider_code[sizeof r->provider_code - 1] = '\0';
	r->detail[sizeof r->detail - 1] = '\0';
	r->provider_id[sizeof r->provider_id - 1] = '\0';
	hw_count_outcome(self, r->outcome);
	hd_info("job.done", "delivery_id=%" PRId64 " attempt=%" PRIu32 " channel=%s provider=%s "
		"code=\"%s\" outcome=%s ms=%" PRId64, r->delivery_id, r->attempt,
		hd_channel_name(job->slot->channel), r->provider, r->provider_code,
		hd_outcome_name(r->outcome), now - job->start_ms);
	hw_queue(self, &f, false, now);
	hd_seal_wipe_msg(cj->job.msg);
	hd_channel_job_destroy(&cj);
}

/* ---- receiving ------------------------------------------------------------- */

static hw_slot_t *hw_slot_for(hw_worker_t *self, hd_channel_t ch)
{
	for (size_t i = 0; i < self->slot_count; i++)
		if (self->slots[i].channel == ch)
			return &self->slots[i];
	return NULL;
}

/* Takes what frame->u.job owns. */
static void hw_on_job(hw_worker_t *self, hd_wire_frame_t *frame, int64_t now_ms)
{
	hd_wire_job_t *wj = &frame->u.job;
	const char *chname = hd_channel_name(wj->msg->channel);
	self->stats.jobs++;
	if (self->stopping) {
		hw_answer(self, wj->delivery_id, wj->attempt, HD_OUTCOME_RETRY, "stopping",
			  "worker stopping", chname, now_ms);
		return;
	}
	hw_slot_t *slot = hw_slot_for(self, wj->msg->channel);
	if (!slot) {
		hw_answer(self, wj->delivery_id, wj->attempt, HD_OUTCOME_FAILED, "no_channel",
			  "channel not served by this worker", chname, now_ms);
		return;
	}
	if (self->conn_in_flight >= self->credit) {
		hd_error("worker.over_credit", "delivery_id=%" PRId64 " credit=%" PRIu32
			 " reason=\"%s\"", wj->delivery_id, self->credit,
			 "heraldd sent a job beyond the announced credit");
		hw_answer(self, wj->delivery_id, wj->attempt, HD_OUTCOME_RETRY, "over_credit",
			  "job beyond the credit announced in READY", chname, now_ms);
		return;
	}
	if (hd_seal_msg_is_sealed(wj->msg)) {
		char why[256];
		if (hd_seal_open_msg(self->seal, wj->msg, why, sizeof why) != HD_OK) {
			/* The same bytes never open with these keys: a retry would loop.
			 * An operator requeues it once the key is configured. */
			char detail[HD_WIRE_MAX_DETAIL_BYTES];
			snprintf(detail, sizeof detail, "confidential content cannot be opened: %s%s",
				 why, hd_seal_key_count(self->seal) ? ""
				 : " (this worker has no keys: security.keys)");
			hd_warn("worker.seal_failed", "delivery_id=%" PRId64 " message_id=%" PRId64
				" reason=\"%s\"", wj->delivery_id, wj->message_id, why);
			hw_answer(self, wj->delivery_id, wj->attempt, HD_OUTCOME_FAILED, "seal", detail,
				  chname, now_ms);
			return;
		}
	}
	hw_job_t *job = hd_calloc(1, sizeof *job);
	job->cj.job = *wj;
	job->cj.user = job;
	job->gen = self->gen;
	job->start_ms = now_ms;
	job->slot = slot;
	memset(wj, 0, sizeof *wj);  /* the job owns recipient, kind and msg now */
	int64_t delivery_id = job->cj.job.delivery_id;
	uint32_t attempt = job->cj.job.attempt;
	self->conn_in_flight++;
	self->stats.in_flight++;
	if (slot->driver->ops->submit(slot->inst, &job->cj) != HD_OK) {
		/* Refused: the driver did not take the job, it is still ours. */
		self->conn_in_flight--;
		self->stats.in_flight--;
		hd_channel_job_t *cj = &job->cj;
		hd_seal_wipe_msg(cj->job.msg);
		hd_channel_job_destroy(&cj);
		hw_answer(self, delivery_id, attempt, HD_OUTCOME_RETRY, "busy",
			  "channel driver full", chname, now_ms);
	}
}

static void hw_on_frame(hw_worker_t *self, const uint8_t *data, size_t len, int64_t now_ms)
{
	hd_wire_frame_t f;
	hd_decode_error_t err;
	int rc = hd_wire_decode(data, len, &f, &err);
	if (rc != HD_OK) {
		self->stats.bad_frames++;
		int64_t delivery_id;
		uint32_t attempt;
		bool job = rc != HD_E_VERSION && hd_wire_peek_job(data, len, &delivery_id, &attempt);
		hd_warn("worker.bad_frame", "code=%s field=%s reason=\"%s\" answered=%s",
			hd_err_name(rc), err.field, err.reason, job ? "failed" : "no");
		if (job) {
			/* The same bytes can never decode: a retry would only loop. */
			char detail[HD_WIRE_MAX_DETAIL_BYTES];
			snprintf(detail, sizeof detail, "undecodable job: %s: %s", err.field,
				 err.reason);
			hw_answer(self, delivery_id, attempt, HD_OUTCOME_FAILED, hd_err_name(rc),
				  detail, "unknown", now_ms);
		}
		return;
	}
	switch (f.type) {
	case HD_WIRE_JOB:
		hw_on_job(self, &f, now_ms);
		break;
	case HD_WIRE_HEARTBEAT:
		break;
	case HD_WIRE_BYE:
		/* heraldd is going away; its silence will make us reconnect. */
		hd_info("worker.broker_bye", "endpoint=%s in_flight=%zu", self->endpoint,
			self->stats.in_flight);
		break;
	default:
		self->stats.bad_frames++;
		hd_warn("worker.bad_frame", "code=invalid field=t reason=\"%s frames go to heraldd, "
			"not from it\" answered=no", hd_wire_type_name(f.type));
		break;
	}
	hd_wire_frame_clear(&f);
}

static void hw_read(hw_worker_t *self, int64_t now_ms)
{
	for (int n = 0; n < HW_READ_BURST; n++) {
		zmq_msg_t msg;
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, self->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&msg);
			return;
		}
		self->last_recv_ms = now_ms;
		if (self->broker_lost) {
			self->broker_lost = false;
			hd_info("worker.broker_back", "endpoint=%s", self->endpoint);
		}
		if (zmq_msg_more(&msg)) {
			self->stats.bad_frames++;
			hd_warn("worker.bad_frame", "code=malformed field= reason=\"%s\" answered=no",
				"multipart message");
			while (zmq_msg_more(&msg)) {
				zmq_msg_close(&msg);
				zmq_msg_init(&msg);
				if (zmq_msg_recv(&msg, self->sock, ZMQ_DONTWAIT) < 0)
					break;
			}
		} else {
			hw_on_frame(self, zmq_msg_data(&msg), zmq_msg_size(&msg), now_ms);
		}
		zmq_msg_close(&msg);
	}
}

/* ---- connection ------------------------------------------------------------ */

static int hw_open_socket(hw_worker_t *self, char *err, size_t errlen)
{
	self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
	if (!self->sock) {
		snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
		return HD_E_IO;
	}
	int linger = 0;
	int64_t max_bytes = HD_WIRE_MAX_FRAME_BYTES;
	zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &max_bytes, sizeof max_bytes);
	if (zmq_connect(self->sock, self->endpoint) != 0) {
		snprintf(err, errlen, "cannot connect to %s: %s", self->endpoint,
			 zmq_strerror(errno));
		zmq_close(self->sock);
		self->sock = NULL;
		return HD_E_CONFIG;
	}
	self->gen++;
	self->conn_in_flight = 0;
	return HD_OK;
}

static void hw_reconnect(hw_worker_t *self, int64_t now_ms)
{
	int64_t silent = now_ms - self->last_recv_ms;
	if (!self->broker_lost)
		hd_warn("worker.broker_lost", "endpoint=%s silent_ms=%" PRId64 " in_flight=%zu "
			"action=reconnect", self->endpoint, silent, self->stats.in_flight);
	else
		hd_debug("worker.reconnect", "endpoint=%s silent_ms=%" PRId64, self->endpoint, silent);
	self->broker_lost = true;
	self->stats.reconnects++;
	/* Frames queued in the old socket go with it (linger 0); the outbox stays. */
	zmq_close(self->sock);
	self->sock = NULL;
	char err[256];
	if (hw_open_socket(self, err, sizeof err) != HD_OK)
		hd_panic("worker: %s", err); /* the same endpoint connected before */
	self->last_recv_ms = now_ms;
	hw_send_ready(self, now_ms);
}

/* ---- the loop -------------------------------------------------------------- */

static int64_t hw_timeout(const hw_worker_t *self, int64_t now_ms)
{
	/* With frames waiting, POLLOUT wakes the loop; no heartbeat is due then. */
	int64_t t = self->out_head ? (int64_t)self->heartbeat_ms
				   : self->last_send_ms + self->heartbeat_ms - now_ms;
	if (!self->stopping) {
		int64_t dead = self->last_recv_ms + (int64_t)HW_DEAD_BEATS * self->heartbeat_ms - now_ms;
		if (dead < t)
			t = dead;
	} else {
		int64_t grace = self->stop_deadline_ms - now_ms;
		if (grace < t)
			t = grace;
	}
	for (size_t i = 0; i < self->slot_count; i++) {
		const hw_slot_t *s = &self->slots[i];
		int64_t d = s->driver->ops->timeout_ms(s->inst, now_ms);
		if (d >= 0 && d < t)
			t = d;
	}
	return t > 0 ? t : 0;
}

static void hw_timers(hw_worker_t *self, int64_t now_ms)
{
	if (!self->stopping &&
	    now_ms - self->last_recv_ms >= (int64_t)HW_DEAD_BEATS * self->heartbeat_ms) {
		hw_reconnect(self, now_ms);
		return;
	}
	if (!self->out_head && now_ms - self->last_send_ms >= self->heartbeat_ms)
		hw_send_simple(self, HD_WIRE_HEARTBEAT, now_ms);
}

int hw_worker_run_once(hw_worker_t *self, int wake_fd, int64_t max_wait_ms)
{
	int64_t now = hd_time_mono_ms();
	if (!self->items) {
		self->item_cap = HW_ITEMS_START;
		self->items = hd_calloc(self->item_cap, sizeof *self->items);
	}
	zmq_pollitem_t *items = self->items;
	size_t n = 0;
	items[n++] = (zmq_pollitem_t){self->sock, 0,
				      (short)(ZMQ_POLLIN | (self->out_head ? ZMQ_POLLOUT : 0)), 0};
	size_t wake_item = 0;
	if (wake_fd >= 0) {
		wake_item = n;
		items[n++] = (zmq_pollitem_t){NULL, wake_fd, ZMQ_POLLIN, 0};
	}
	for (size_t i = 0; i < self->slot_count; i++) {
		hw_slot_t *s = &self->slots[i];
		s->item_off = n;
		for (;;) {
			s->item_count = s->driver->ops->poll_items(s->inst, items + n,
								   self->item_cap - n);
			/* A full array may have cut the driver's list short: grow, ask again. */
			if (n + s->item_count < self->item_cap || self->item_cap >= HW_ITEMS_MAX)
				break;
			self->item_cap *= 2;
			self->items = hd_realloc(self->items, self->item_cap * sizeof *self->items);
			items = self->items;
		}
		n += s->item_count;
	}
	int64_t timeout = hw_timeout(self, now);
	if (max_wait_ms >= 0 && max_wait_ms < timeout)
		timeout = max_wait_ms;
	if (zmq_poll(items, (int)n, (long)timeout) < 0 && errno != EINTR) {
		hd_error("worker.poll_failed", "reason=\"%s\"", zmq_strerror(errno));
		return HD_E_IO;
	}
	now = hd_time_mono_ms();
	if (items[0].revents & ZMQ_POLLIN)
		hw_read(self, now);
	if (wake_fd >= 0 && (items[wake_item].revents & ZMQ_POLLIN)) {
		char drain[16];
		while (read(wake_fd, drain, sizeof drain) > 0)
			;
	}
	for (size_t i = 0; i < self->slot_count; i++) {
		hw_slot_t *s = &self->slots[i];
		s->driver->ops->handle(s->inst, now, items + s->item_off, s->item_count);
	}
	hw_flush(self, now);
	hw_timers(self, now);
	return HD_OK;
}

/* ---- lifecycle ------------------------------------------------------------- */

hw_worker_t *hw_worker_new(void *zmq_ctx, const hw_worker_options_t *opts)
{
	hw_worker_t *self = hd_calloc(1, sizeof *self);
	self->ctx = zmq_ctx;
	self->endpoint = hd_strdup(opts->broker);
	snprintf(self->name, sizeof self->name, "%s", opts->name);
	self->credit = opts->credit;
	self->credit_configured = opts->credit;
	self->heartbeat_ms = opts->heartbeat_ms;
	self->grace_ms = opts->shutdown_grace_ms;
	return self;
}

void hw_worker_attach_seal(hw_worker_t *self, const hd_seal_t *seal)
{
	self->seal = seal;
}

int hw_worker_add_driver(hw_worker_t *self, const hw_driver_t *driver,
			 const config_setting_t *group, char *err, size_t errlen)
{
	if (self->started || self->slot_count == HW_MAX_SLOTS) {
		snprintf(err, errlen, "%s: too many drivers", driver->name);
		return HD_E_CONFIG;
	}
	void *inst = driver->ops->open(group, self->ctx, hw_on_done, self, err, errlen);
	if (!inst)
		return HD_E_CONFIG;
	hd_channel_t ch = hw_driver_channel(driver, inst);
	hw_slot_t *other = hw_slot_for(self, ch);
	if (other) {
		const char *file = group ? config_setting_source_file(group) : NULL;
		snprintf(err, errlen, "%s:%u: %s: serves channel %s, already served by %s",
			 file ? file : "(config)", group ? config_setting_source_line(group) : 0,
			 driver->name, hd_channel_name(ch), other->driver->name);
		driver->ops->close(&inst);
		return HD_E_CONFIG;
	}
	self->slots[self->slot_count++] = (hw_slot_t){.driver = driver, .inst = inst, .channel = ch};
	self->channels |= 1u << ch;
	return HD_OK;
}

unsigned hw_worker_channels(const hw_worker_t *self)
{
	return self->channels;
}

/*
 * What the drivers hold at once, together: the sum of their capacities,
 * or UINT32_MAX when one of them has no limit of its own. READY carries
 * one credit for every channel, so per-channel limits cannot be told to
 * heraldd; the sum is the most that is never refused as a whole.
 */
static uint32_t hw_drivers_capacity(const hw_worker_t *self)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < self->slot_count; i++) {
		const hw_slot_t *s = &self->slots[i];
		size_t cap = s->driver->ops->capacity ? s->driver->ops->capacity(s->inst) : 0;
		if (cap == 0)
			return UINT32_MAX;
		sum += cap;
		if (sum >= UINT32_MAX)
			return UINT32_MAX;
	}
	return (uint32_t)sum;
}

int hw_worker_start(hw_worker_t *self, char *err, size_t errlen)
{
	if (self->slot_count == 0) {
		snprintf(err, errlen, "no channel driver");
		return HD_E_CONFIG;
	}
	/* Credit beyond what the drivers hold would only come back as "busy"
	 * retries (a round trip to PostgreSQL and a delay for each). */
	uint32_t capacity = hw_drivers_capacity(self);
	self->credit = self->credit_configured < capacity ? self->credit_configured : capacity;
	hd_wire_frame_t ready = hw_ready_frame(self);
	uint8_t *buf;
	size_t len;
	if (hd_wire_encode(&ready, &buf, &len) != HD_OK) {
		snprintf(err, errlen, "cannot announce name \"%s\", credit %" PRIu32
			 ", heartbeat_ms %" PRIu32 " (docs/PROTOCOL.md section 2.2)", self->name,
			 self->credit, self->heartbeat_ms);
		return HD_E_CONFIG;
	}
	free(buf);
	int rc = hw_open_socket(self, err, errlen);
	if (rc != HD_OK)
		return rc;
	int64_t now = hd_time_mono_ms();
	self->started = true;
	self->last_recv_ms = now;
	hw_send_ready(self, now);
	char chans[32] = "";
	for (size_t i = 0; i < self->slot_count; i++)
		snprintf(chans + strlen(chans), sizeof chans - strlen(chans), "%s%s", i ? "," : "",
			 hd_channel_name(self->slots[i].channel));
	hd_info("worker.start", "name=%s endpoint=%s channels=%s credit=%" PRIu32
		" configured_credit=%" PRIu32 " heartbeat_ms=%" PRIu32 " seal_keys=%zu", self->name,
		self->endpoint, chans, self->credit, self->credit_configured, self->heartbeat_ms,
		hd_seal_key_count(self->seal));
	return HD_OK;
}

void hw_worker_stop(hw_worker_t *self)
{
	if (self->stopping)
		return;
	int64_t now = hd_time_mono_ms();
	self->stopping = true;
	self->stop_deadline_ms = now + self->grace_ms;
	hd_info("worker.stopping", "in_flight=%zu grace_ms=%" PRId64, self->stats.in_flight,
		self->grace_ms);
	if (self->sock)
		hw_send_simple(self, HD_WIRE_BYE, now);
}

bool hw_worker_is_done(const hw_worker_t *self)
{
	if (!self->stopping)
		return false;
	if (self->stats.in_flight == 0 && !self->out_head)
		return true;
	return hd_time_mono_ms() >= self->stop_deadline_ms;
}

hw_worker_stats_t hw_worker_stats(const hw_worker_t *self)
{
	return self->stats;
}

void hw_worker_destroy(hw_worker_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hw_worker_t *self = *self_p;
	size_t given_back = self->stats.in_flight;
	for (size_t i = 0; i < self->slot_count; i++)
		self->slots[i].driver->ops->close(&self->slots[i].inst);
	if (self->sock) {
		hw_flush(self, hd_time_mono_ms());
		int linger = HW_CLOSE_LINGER_MS;
		zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
		zmq_close(self->sock);
	}
	if (self->started)
		hd_info("worker.stop", "given_back=%zu unsent=%zu delivered=%" PRIu64 " retried=%"
			PRIu64 " failed=%" PRIu64 " reconnects=%" PRIu64, given_back,
			self->out_count, self->stats.delivered, self->stats.retried,
			self->stats.failed, self->stats.reconnects);
	while (self->out_head) {
		hw_out_t *o = self->out_head;
		self->out_head = o->next;
		free(o->buf);
		free(o);
	}
	free(self->items);
	free(self->endpoint);
	free(self);
	*self_p = NULL;
}
