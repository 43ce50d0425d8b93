/*
 * NAME
 *	hd_intake - the producer-facing ROUTER socket of heraldd
 * DESCRIPTION
 *	Framing accepted on the ROUTER: [identity][payload] from a DEALER,
 *	or [identity][empty][payload] from a REQ socket, answered in the
 *	same shape. Anything else is a malformed request.
 */
#include "hd_intake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hd_envelope.h"
#include "hd_err.h"
#include "hd_limits.h"
#include "hd_log.h"
#include "hd_mem.h"

struct hd_intake {
	void *router;
	const hd_config_t *cfg;
	const hd_classify_t *classify;
	hd_store_t *store;
	hd_intake_stats_t stats;
};

hd_intake_t *hd_intake_new(void *zmq_ctx, const hd_config_t *cfg,
			   const hd_classify_t *classify, char *err, size_t errlen)
{
	void *router = zmq_socket(zmq_ctx, ZMQ_ROUTER);
	if (!router) {
		snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
		return NULL;
	}
	int64_t max_size = cfg->intake.max_frame_bytes;
	int linger_ms = 1000;
	/* Producers pipeline; let their requests queue here rather than in
	 * their own buffers. The store's max_pending is the real bound. */
	int hwm = 100000;
	zmq_setsockopt(router, ZMQ_MAXMSGSIZE, &max_size, sizeof(max_size));
	zmq_setsockopt(router, ZMQ_LINGER, &linger_ms, sizeof(linger_ms));
	zmq_setsockopt(router, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(router, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	if (zmq_bind(router, cfg->listen) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, zmq_strerror(errno));
		zmq_close(router);
		return NULL;
	}
	hd_intake_t *self = hd_calloc(1, sizeof(*self));
	self->router = router;
	self->cfg = cfg;
	self->classify = classify;
	return self;
}

void hd_intake_destroy(hd_intake_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	zmq_close((*self_p)->router);
	free(*self_p);
	*self_p = NULL;
}

void hd_intake_attach_store(hd_intake_t *self, hd_store_t *store)
{
	self->store = store;
}

void *hd_intake_socket(hd_intake_t *self)
{
	return self->router;
}

hd_intake_stats_t hd_intake_stats(const hd_intake_t *self)
{
	return self->stats;
}

/* ---- replies ------------------------------------------------------------- */

static void hd_intake_send(hd_intake_t *self, const unsigned char *route, size_t route_len,
			   bool req_delimiter, const hd_reply_t *reply)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	if (hd_envelope_encode_reply(reply, &buf, &len) != HD_OK)
		hd_panic("cannot encode a reply for rid %llu", (unsigned long long)reply->rid);
	/* A gone or saturated peer must not stall the loop: drop the reply,
	 * the producer times out and resends with its idempotency key. */
	int rc = zmq_send(self->router, route, route_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
	if (rc >= 0 && req_delimiter)
		rc = zmq_send(self->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
	if (rc >= 0)
		rc = zmq_send(self->router, buf, len, ZMQ_DONTWAIT);
	if (rc < 0)
		hd_debug("intake.reply_dropped", "rid=%llu errno=%d",
			 (unsigned long long)reply->rid, errno);
	free(buf);
}

static void hd_intake_send_error(hd_intake_t *self, const unsigned char *route,
				 size_t route_len, bool req_delimiter, uint64_t rid, int code,
				 const char *field, const char *reason)
{
	hd_reply_t reply;
	memset(&reply, 0, sizeof(reply));
	reply.rid = rid;
	hd_reply_set_error(&reply, code, field, reason);
	if (code == HD_E_UNAVAILABLE || code == HD_E_BUSY)
		reply.retry_after_ms = code == HD_E_BUSY ? 50 : 500;
	hd_intake_send(self, route, route_len, req_delimiter, &reply);
}

void hd_intake_on_stored(void *arg, hd_store_item_t *item, const hd_store_result_t *result)
{
	hd_intake_t *self = arg;
	if (result->code == HD_E_INVALID) {
		self->stats.rejected++;
		hd_warn("intake.reject", "rid=%llu app=%s code=%s field=%s reason=\"%s\"",
			(unsigned long long)item->rid, item->app, hd_err_name(result->code),
			result->field, result->reason);
		hd_intake_send_error(self, item->route, item->route_len, item->req_delimiter,
				     item->rid, result->code, result->field, result->reason);
		hd_store_item_destroy(&item);
		return;
	}
	if (result->code != HD_OK) {
		self->stats.unavailable++;
		hd_intake_send_error(self, item->route, item->route_len, item->req_delimiter,
				     item->rid, result->code, "", result->reason);
		hd_store_item_destroy(&item);
		return;
	}
	hd_reply_t reply;
	memset(&reply, 0, sizeof(reply));
	reply.rid = item->rid;
	reply.ok = true;
	reply.id = result->id;
	reply.klass = result->klass;
	snprintf(reply.state, sizeof(reply.state), "%s", result->state);
	reply.duplicate = result->duplicate;
	self->stats.accepted++;
	if (result->duplicate)
		self->stats.duplicates++;
	hd_intake_send(self, item->route, item->route_len, item->req_delimiter, &reply);
	hd_store_item_destroy(&item);
}

/* ---- requests ------------------------------------------------------------ */

static void hd_intake_handle_request(hd_intake_t *self, const unsigned char *route,
				     size_t route_len, bool req_delimiter,
				     const uint8_t *data, size_t size)
{
	hd_request_t req;
	hd_decode_error_t derr;
	memset(&req, 0, sizeof(req));
	memset(&derr, 0, sizeof(derr));
	self->stats.received++;

	int rc = hd_envelope_decode_request(data, size, (size_t)self->cfg->intake.max_recipients,
					    &req, &derr);
	if (rc != HD_OK) {
		self->stats.rejected++;
		hd_warn("intake.reject", "rid=%llu code=%s field=%s reason=\"%s\" bytes=%zu",
			(unsigned long long)req.rid, hd_err_name(rc), derr.field, derr.reason, size);
		hd_intake_send_error(self, route, route_len, req_delimiter, req.rid, rc,
				     derr.field, derr.reason);
		hd_request_clear(&req);
		return;
	}
	if (req.op == HD_OP_PING) {
		/* A ping answers "could you take a submission now?". */
		if (!self->store || !hd_store_is_ready(self->store)) {
			hd_intake_send_error(self, route, route_len, req_delimiter, req.rid,
					     HD_E_UNAVAILABLE, "", "database unavailable");
			hd_request_clear(&req);
			return;
		}
		hd_reply_t reply;
		memset(&reply, 0, sizeof(reply));
		reply.rid = req.rid;
		reply.ok = true;
		reply.pong = true;
		hd_intake_send(self, route, route_len, req_delimiter, &reply);
		hd_request_clear(&req);
		return;
	}

	hd_store_item_t *item = hd_calloc(1, sizeof(*item));
	item->rid = req.rid;
	memcpy(item->route, route, route_len);
	item->route_len = route_len;
	item->req_delimiter = req_delimiter;
	item->app = req.app;
	item->msg = req.msg;
	req.app = NULL;
	req.msg = NULL;
	hd_request_clear(&req);
	hd_classify_result_t cls = hd_classify_explain(self->classify, item->msg);
	item->klass = cls.klass;
	item->important = cls.important;
	item->major = cls.major;

	if (cls.important)
		hd_classify_tag_subject(self->classify, item->msg, HD_MAX_SUBJECT_BYTES);

	/* POLICY A3: a bulk send needs its application form, and the form's
	 * recipient count must be the message's. */
	const char *bulk_field = NULL;
	char bulk_reason[160];
	size_t recipients = hd_msg_recipient_count(item->msg);
	if (item->klass == HD_CLASS_BULK && !item->msg->bulk) {
		bulk_field = "msg.bulk";
		snprintf(bulk_reason, sizeof(bulk_reason),
			 "a bulk message (%zu recipients) needs a bulk application: purpose, "
			 "audience, recipient_count, summary (POLICY A3)", recipients);
	} else if (item->msg->bulk && item->msg->bulk->recipient_count != recipients) {
		bulk_field = "msg.bulk.recipient_count";
		snprintf(bulk_reason, sizeof(bulk_reason),
			 "the bulk application says %u recipients, the message has %zu",
			 item->msg->bulk->recipient_count, recipients);
	}
	if (bulk_field) {
		self->stats.rejected++;
		hd_warn("intake.reject", "rid=%llu app=%s code=%s field=%s reason=\"%s\"",
			(unsigned long long)item->rid, item->app, hd_err_name(HD_E_POLICY),
			bulk_field, bulk_reason);
		hd_intake_send_error(self, route, route_len, req_delimiter, item->rid, HD_E_POLICY,
				     bulk_field, bulk_reason);
		hd_store_item_destroy(&item);
		return;
	}

	rc = self->store ? hd_store_submit(self->store, item) : HD_E_UNAVAILABLE;
	if (rc != HD_OK) {
		self->stats.unavailable++;
		hd_intake_send_error(self, route, route_len, req_delimiter, item->rid, rc, "",
				     rc == HD_E_BUSY ? "too many submissions waiting; retry shortly"
						     : "database unavailable; retry shortly");
		hd_store_item_destroy(&item);
	}
}

/* Discard the rest of a multipart message. */
static void hd_intake_drain(hd_intake_t *self)
{
	int more = 1;
	size_t more_len = sizeof(more);
	while (zmq_getsockopt(self->router, ZMQ_RCVMORE, &more, &more_len) == 0 && more) {
		zmq_msg_t part;
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, self->router, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&part);
			return;
		}
		zmq_msg_close(&part);
	}
}

void hd_intake_on_readable(hd_intake_t *self, int max_requests)
{
	for (int n = 0; n < max_requests; n++) {
		zmq_msg_t ident, first, second;
		zmq_msg_init(&ident);
		if (zmq_msg_recv(&ident, self->router, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ident);
			return;
		}
		size_t route_len = zmq_msg_size(&ident);
		if (route_len > HD_STORE_ROUTE_MAX)
			hd_panic("ROUTER identity of %zu bytes", route_len);
		unsigned char route[HD_STORE_ROUTE_MAX];
		memcpy(route, zmq_msg_data(&ident), route_len);
		zmq_msg_close(&ident);

		zmq_msg_init(&first);
		if (zmq_msg_recv(&first, self->router, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&first);
			return;
		}
		bool req_delimiter = false;
		zmq_msg_t *payload = &first;
		zmq_msg_init(&second);
		if (zmq_msg_more(&first) && zmq_msg_size(&first) == 0) {
			/* REQ envelope: the empty delimiter, then the request. */
			req_delimiter = true;
			if (zmq_msg_recv(&second, self->router, ZMQ_DONTWAIT) >= 0)
				payload = &second;
		}
		if (zmq_msg_more(payload)) {
			hd_intake_drain(self);
			self->stats.received++;
			self->stats.rejected++;
			hd_warn("intake.reject", "rid=0 code=malformed field= reason=\"multipart request\"");
			hd_intake_send_error(self, route, route_len, req_delimiter, 0, HD_E_MALFORMED, "",
					     "a request is exactly one frame");
		} else {
			hd_intake_handle_request(self, route, route_len, req_delimiter,
						 zmq_msg_data(payload), zmq_msg_size(payload));
		}
		zmq_msg_close(&first);
		zmq_msg_close(&second);
	}
}
