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
#include "hd_seal.h"
#include "hd_time.h"

struct hd_intake {
	void *router;
	const hd_config_t *cfg;
	const hd_classify_t *classify;
	hd_store_t *store;
	const hd_seal_t *seal;          /* POLICY K2 sealing key; NULL: confidential is refused */
	hd_policy_t *policy;            /* NULL: no policy checks (unit tests) */
	hd_policy_verdict_t verdict;    /* scratch for one evaluation */
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

void hd_intake_attach_seal(hd_intake_t *self, const hd_seal_t *seal)
{
	self->seal = seal;
}

void hd_intake_attach_policy(hd_intake_t *self, hd_policy_t *policy)
{
	self->policy = policy;
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
	if (result->code == HD_E_INVALID || result->code == HD_E_POLICY) {
		self->stats.rejected++;
		hd_warn("intake.reject", "rid=%llu app=%s sender=%s code=%s field=%s reason=\"%s\"",
			(unsigned long long)item->rid, item->app, item->msg->sender,
			hd_err_name(result->code), result->field, result->reason);
		hd_reply_t reply;
		memset(&reply, 0, sizeof(reply));
		reply.rid = item->rid;
		hd_reply_set_error(&reply, result->code, result->field, result->reason);
		reply.findings = item->findings;
		reply.finding_count = item->finding_count;
		hd_intake_send(self, item->route, item->route_len, item->req_delimiter, &reply);
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
	/* A duplicate answers for the stored message, not for this resend's
	 * own verdict: no findings (PROTOCOL 1.5). Borrowed until the item
	 * is destroyed. */
	reply.findings = result->duplicate ? NULL : item->findings;
	reply.finding_count = result->duplicate ? 0 : item->finding_count;
	self->stats.accepted++;
	if (result->duplicate)
		self->stats.duplicates++;
	hd_intake_send(self, item->route, item->route_len, item->req_delimiter, &reply);
	hd_store_item_destroy(&item);
}

/* ---- policy -------------------------------------------------------------- */

/*
 * Evaluate the policy, classify with its verdict, tag the subject of
 * important mail (E1), check the bulk application (A3), and put the
 * findings, the database's rules and any deferral on the item. A
 * refused item still goes to the store, which records the violations
 * and answers with the error.
 */
static int hd_intake_apply_policy(hd_intake_t *self, hd_store_item_t *item)
{
	hd_policy_verdict_t *v = &self->verdict;
	hd_policy_verdict_reset(v);
	if (self->policy &&
	    hd_policy_evaluate(self->policy, item->msg, hd_time_now_us() / 1000000, v) != HD_OK)
		return HD_E_INTERNAL;

	hd_classify_result_t cls = hd_classify_explain(self->classify, item->msg, v->important,
							v->major);
	item->klass = cls.klass;
	item->important = cls.important;
	item->major = cls.major;
	if (cls.important && v->reject < 0 &&
	    hd_classify_tag_subject(self->classify, item->msg, HD_MAX_SUBJECT_BYTES)) {
		hd_policy_finding_t *f = hd_policy_verdict_add(v, "important-tag", "E1", HD_POLICY_TAG,
							       HD_POLICY_INFO, "msg.subject");
		if (f)
			snprintf(f->reason, sizeof(f->reason), "important email: the subject now "
				 "starts with %s (POLICY E1)", self->cfg->classify.important_tag);
	}

	/* POLICY A3: a bulk send needs its application form, and the form's
	 * recipient count must be the message's. */
	size_t recipients = hd_msg_recipient_count(item->msg);
	hd_policy_finding_t *bulk = NULL;
	if (item->klass == HD_CLASS_BULK && !item->msg->bulk) {
		bulk = hd_policy_verdict_add(v, "bulk-application", "A3", HD_POLICY_REJECT,
					     HD_POLICY_MINOR, "msg.bulk");
		if (bulk)
			snprintf(bulk->reason, sizeof(bulk->reason), "a bulk message (%zu recipients) "
				 "needs a bulk application: purpose, audience, recipient_count, "
				 "summary (POLICY A3)", recipients);
	} else if (item->msg->bulk && item->msg->bulk->recipient_count != recipients) {
		bulk = hd_policy_verdict_add(v, "bulk-application", "A3", HD_POLICY_REJECT,
					     HD_POLICY_MINOR, "msg.bulk.recipient_count");
		if (bulk)
			snprintf(bulk->reason, sizeof(bulk->reason), "the bulk application says %u "
				 "recipients, the message has %zu (POLICY A3)",
				 item->msg->bulk->recipient_count, recipients);
	}

	for (size_t i = 0; i < v->count; i++)
		hd_store_item_add_finding(item, v->findings[i].rule, v->findings[i].clause,
					  hd_policy_action_name(v->findings[i].action),
					  hd_policy_severity_name(v->findings[i].severity),
					  v->findings[i].reason, v->findings[i].field);
	if (v->reject >= 0) {
		const hd_policy_finding_t *f = &v->findings[v->reject];
		item->rejected = true;
		snprintf(item->reject_field, sizeof(item->reject_field), "%s", f->field);
		snprintf(item->reject_reason, sizeof(item->reject_reason), "%s", f->reason);
		return HD_OK;
	}
	if (self->policy)
		item->db_rule_count = hd_policy_db_rules(self->policy, item->msg->channel,
							 &item->db_rules);
	item->not_before_s = v->not_before_s;
	return HD_OK;
}

/*
 * POLICY K2: a confidential message's body, html and attachments are
 * sealed (hd_seal) before they leave for the database, so the plain
 * text never reaches it. Without a sealing key the submission is
 * refused (answered, item destroyed: true) rather than stored in plain
 * text: code policy, not unavailable, because resending cannot help
 * until an operator configures security.seal_key.
 */
static bool hd_intake_seal_refused(hd_intake_t *self, hd_store_item_t *item)
{
	if (hd_seal_msg(self->seal, item->msg) == HD_OK)
		return false;
	static const char reason[] = "POLICY K2: confidential messages are stored encrypted and "
				     "this heraldd has no sealing key (security.seal_key); ask an "
				     "operator";
	self->stats.rejected++;
	self->stats.policy_rejected++;
	hd_warn("intake.reject", "rid=%llu app=%s code=policy field=msg.flags reason=\"%s\"",
		(unsigned long long)item->rid, item->app, reason);
	hd_intake_send_error(self, item->route, item->route_len, item->req_delimiter, item->rid,
			     HD_E_POLICY, "msg.flags", reason);
	hd_store_item_destroy(&item);
	return true;
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
	if (hd_intake_apply_policy(self, item) != HD_OK) {
		hd_intake_send_error(self, route, route_len, req_delimiter, item->rid, HD_E_INTERNAL,
				     "", "the policy could not be evaluated");
		hd_store_item_destroy(&item);
		return;
	}
	if (item->rejected)
		self->stats.policy_rejected++;
	/* A refused message is never stored (its content does not even go to
	 * the database), so only an accepted one needs sealing; a refused one
	 * keeps its real reason and its violation. */
	else if (hd_intake_seal_refused(self, item))
		return;
	rc = self->store ? hd_store_submit(self->store, item) : HD_E_UNAVAILABLE;
	if (rc != HD_OK && item->rejected) {
		/* Refused whatever the database's state: say so now; the
		 * violation cannot be recorded, so this log line is its record. */
		hd_warn("intake.reject", "rid=%llu app=%s sender=%s code=policy field=%s "
			"reason=\"%s\" violation=unrecorded", (unsigned long long)item->rid,
			item->app, item->msg->sender, item->reject_field, item->reject_reason);
		hd_reply_t reply;
		memset(&reply, 0, sizeof(reply));
		reply.rid = item->rid;
		hd_reply_set_error(&reply, HD_E_POLICY, item->reject_field, item->reject_reason);
		reply.findings = item->findings;
		reply.finding_count = item->finding_count;
		hd_intake_send(self, route, route_len, req_delimiter, &reply);
		self->stats.rejected++;
		hd_store_item_destroy(&item);
		return;
	}
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
