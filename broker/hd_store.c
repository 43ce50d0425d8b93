/*
 * NAME
 *	hd_store - durable intake into PostgreSQL with group commit
 * DESCRIPTION
 *	A small state machine over one asynchronous libpq connection:
 *	DOWN (waiting to reconnect) -> CONNECTING -> READY <-> BUSY. A batch
 *	is encoded as one JSON array (jansson) and passed as the single
 *	parameter of herald.intake_batch, so a batch of any size costs one
 *	round trip and one COMMIT. Two submissions with the same (app,
 *	idempotency key) in one batch travel once; the second completes with
 *	the first's result, marked duplicate.
 */
#include "hd_store.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hd_err.h"
#include "hd_log.h"
#include "hd_mem.h"
#include "hd_time.h"

typedef enum { HD_STORE_DOWN, HD_STORE_CONNECTING, HD_STORE_READY, HD_STORE_BUSY } hd_store_state_t;

/* One libpq connection with at most one batch in flight. */
typedef struct hd_store_conn {
	unsigned index;               /* for log lines */
	hd_store_state_t state;
	PGconn *conn;
	PostgresPollingStatusType connect_poll;
	unsigned reconnect_attempt;
	int64_t reconnect_at_ms;
	bool want_write;              /* PQflush left output behind */
	int64_t deadline_ms;          /* CONNECTING or BUSY for longer than this: give up */

	hd_store_item_t **inflight;   /* index = ord - 1 */
	size_t inflight_count;
	bool inflight_seen_error;
	char inflight_error[192];
	bool inflight_lost;           /* connection failed during the batch */
	PGresult *inflight_result;
} hd_store_conn_t;

struct hd_store {
	hd_store_options_t opts;
	char *conninfo;
	hd_store_done_fn done;
	void *done_arg;

	hd_store_conn_t *conns;
	size_t conn_count;
	hd_store_conn_t **poll_map;   /* conn of each item from hd_store_poll_items */

	hd_store_item_t *pending_head, *pending_tail;
	size_t pending_count;
};

#define HD_STORE_CONNECT_DEADLINE_MS 10000
#define HD_STORE_STATEMENT_SLACK_MS 5000

static const char hd_store_intake_sql[] =
	"SELECT ord, message_id, class, state, duplicate, error, error_field, error_reason, findings "
	"FROM herald.intake_batch($1::jsonb)";

/* ---- items ------------------------------------------------------------ */

void hd_store_item_destroy(hd_store_item_t **item_p)
{
	if (!item_p || !*item_p)
		return;
	hd_store_item_t *item = *item_p;
	free(item->app);
	hd_msg_destroy(&item->msg);
	hd_reply_t findings = {.findings = item->findings, .finding_count = item->finding_count};
	hd_reply_clear(&findings);
	free(item);
	*item_p = NULL;
}

void hd_store_item_add_finding(hd_store_item_t *item, const char *rule, const char *clause,
			       const char *action, const char *severity, const char *reason,
			       const char *field)
{
	/* Findings are rare (most messages have none): grow one at a time. */
	item->findings = hd_realloc(item->findings,
				    (item->finding_count + 1) * sizeof(*item->findings));
	hd_finding_t *f = &item->findings[item->finding_count++];
	f->rule = hd_strdup(rule ? rule : "");
	f->clause = hd_strdup(clause ? clause : "");
	f->action = hd_strdup(action ? action : "");
	f->severity = hd_strdup(severity ? severity : "");
	f->reason = hd_strdup(reason ? reason : "");
	f->field = hd_strdup(field ? field : "");
}

/* Append the findings the database added (JSON array) to the item's. */
static void hd_store_append_findings(hd_store_item_t *item, const char *text)
{
	json_error_t jerr;
	json_t *a = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	size_t n = json_is_array(a) ? json_array_size(a) : 0;
	for (size_t i = 0; i < n; i++) {
		json_t *f = json_array_get(a, i);
		hd_store_item_add_finding(item, json_string_value(json_object_get(f, "rule")),
					  json_string_value(json_object_get(f, "clause")),
					  json_string_value(json_object_get(f, "action")),
					  json_string_value(json_object_get(f, "severity")),
					  json_string_value(json_object_get(f, "reason")),
					  json_string_value(json_object_get(f, "field")));
	}
	json_decref(a);
}

/*
 * The database refused the item by one of its rules (I3 for IM, S1 for
 * SMS: the only database rules that reject): report it as a finding
 * like the broker's own, so the ERROR says which rule refused it.
 */
static void hd_store_add_db_reject(hd_store_item_t *item, const char *field, const char *reason)
{
	for (size_t i = 0; i < item->db_rule_count; i++) {
		const hd_policy_db_rule_t *rule = item->db_rules[i];
		if (rule->action == HD_POLICY_REJECT) {
			hd_store_item_add_finding(item, rule->rule, rule->clause, "reject",
						  hd_policy_severity_name(rule->severity), reason,
						  field);
			return;
		}
	}
}

static void hd_store_complete(hd_store_t *self, hd_store_item_t *item,
			      const hd_store_result_t *res)
{
	hd_store_item_t *f = item->followers;
	item->followers = NULL;
	item->next = NULL;
	self->done(self->done_arg, item, res);
	if (res->code == HD_E_POLICY || res->code == HD_E_INVALID) {
		/* Nothing was stored under the key, so the leader's refusal is
		 * not the followers' answer: each goes again, on its own merits,
		 * at the front of the queue (in order; one of them leads next). */
		hd_store_item_t *rev = NULL;
		while (f) {
			hd_store_item_t *next = f->next;
			f->next = rev;
			rev = f;
			f = next;
		}
		while (rev) {
			hd_store_item_t *next = rev->next;
			rev->next = self->pending_head;
			self->pending_head = rev;
			if (!self->pending_tail)
				self->pending_tail = rev;
			self->pending_count++;
			rev = next;
		}
		return;
	}
	while (f) {
		hd_store_item_t *next = f->next;
		hd_store_result_t copy = *res;
		if (copy.code == HD_OK)
			copy.duplicate = true;
		f->next = NULL;
		self->done(self->done_arg, f, &copy);
		f = next;
	}
}

static void hd_store_fail_item(hd_store_t *self, hd_store_item_t *item, int code,
			       const char *reason)
{
	hd_store_result_t res = {.code = code};
	snprintf(res.reason, sizeof(res.reason), "%s", reason);
	hd_store_complete(self, item, &res);
}

/* ---- lifecycle ---------------------------------------------------------- */

hd_store_t *hd_store_new(const hd_store_options_t *opts, hd_store_done_fn done, void *arg)
{
	hd_store_t *self = hd_calloc(1, sizeof(*self));
	self->opts = *opts;
	self->conninfo = hd_strdup(opts->conninfo ? opts->conninfo : "");
	self->opts.conninfo = self->conninfo;
	self->done = done;
	self->done_arg = arg;
	self->conn_count = opts->connections > 0 ? (size_t)opts->connections : 1;
	self->conns = hd_calloc(self->conn_count, sizeof(hd_store_conn_t));
	self->poll_map = hd_calloc(self->conn_count, sizeof(hd_store_conn_t *));
	for (size_t i = 0; i < self->conn_count; i++) {
		hd_store_conn_t *c = &self->conns[i];
		c->index = (unsigned)i;
		c->state = HD_STORE_DOWN;
		c->inflight = hd_calloc((size_t)opts->batch_max, sizeof(hd_store_item_t *));
	}
	return self;
}

static void hd_store_fail_inflight(hd_store_t *self, hd_store_conn_t *c, const char *reason)
{
	for (size_t i = 0; i < c->inflight_count; i++) {
		hd_store_item_t *item = c->inflight[i];
		c->inflight[i] = NULL;
		if (item)
			hd_store_fail_item(self, item, HD_E_UNAVAILABLE, reason);
	}
	c->inflight_count = 0;
}

static void hd_store_fail_pending(hd_store_t *self, const char *reason)
{
	while (self->pending_head) {
		hd_store_item_t *item = self->pending_head;
		self->pending_head = item->next;
		hd_store_fail_item(self, item, HD_E_UNAVAILABLE, reason);
	}
	self->pending_tail = NULL;
	self->pending_count = 0;
}

static const char hd_store_unavailable[] =
	"database unavailable; resend with the same idempotency_key";

static void hd_store_disconnect(hd_store_t *self, hd_store_conn_t *c, int64_t now_ms,
				const char *why)
{
	if (c->conn) {
		PQfinish(c->conn);
		c->conn = NULL;
	}
	if (c->inflight_result) {
		PQclear(c->inflight_result);
		c->inflight_result = NULL;
	}
	c->want_write = false;
	/* The batch may or may not have committed: the producer's resend with
	 * the same idempotency key finds out without duplicating it. */
	hd_store_fail_inflight(self, c, hd_store_unavailable);
	int64_t delay = hd_time_backoff_ms(c->reconnect_attempt, self->opts.reconnect_min_ms,
					   self->opts.reconnect_max_ms);
	if (c->reconnect_attempt < 30)
		c->reconnect_attempt++;
	c->reconnect_at_ms = now_ms + delay;
	if (c->state != HD_STORE_DOWN || c->reconnect_attempt == 1)
		hd_warn("store.down", "conn=%u reason=\"%s\" retry_in_ms=%lld attempt=%u", c->index,
			why, (long long)delay, c->reconnect_attempt);
	c->state = HD_STORE_DOWN;
	if (!hd_store_is_ready(self))
		hd_store_fail_pending(self, hd_store_unavailable);
}

void hd_store_destroy(hd_store_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_store_t *self = *self_p;
	for (size_t i = 0; i < self->conn_count; i++) {
		hd_store_conn_t *c = &self->conns[i];
		hd_store_fail_inflight(self, c, "broker shutting down");
		if (c->inflight_result)
			PQclear(c->inflight_result);
		if (c->conn)
			PQfinish(c->conn);
		free(c->inflight);
	}
	hd_store_fail_pending(self, "broker shutting down");
	free(self->conns);
	free(self->poll_map);
	free(self->conninfo);
	free(self);
	*self_p = NULL;
}

/* ---- connecting ---------------------------------------------------------- */

static void hd_store_connect_start(hd_store_t *self, hd_store_conn_t *c, int64_t now_ms)
{
	char options[128];
	snprintf(options, sizeof(options), "-c synchronous_commit=on -c statement_timeout=%lld",
		 (long long)self->opts.statement_timeout_ms);
	/* expand_dbname lets conninfo be a URL or key=value string, and the
	 * keywords after it add what the broker insists on. */
	/* TCP keepalives: a database host that vanishes from the network is
	 * noticed in about 25 s instead of never. */
	const char *keys[] = {"dbname", "application_name", "connect_timeout", "options",
			      "keepalives", "keepalives_idle", "keepalives_interval",
			      "keepalives_count", NULL};
	const char *vals[] = {self->conninfo, "heraldd", "5", options, "1", "10", "5", "3", NULL};
	c->conn = PQconnectStartParams(keys, vals, 1);
	if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
		hd_store_disconnect(self, c, now_ms,
				    c->conn ? PQerrorMessage(c->conn) : "out of memory");
		return;
	}
	c->state = HD_STORE_CONNECTING;
	c->connect_poll = PGRES_POLLING_WRITING;
	/* PQconnectPoll ignores connect_timeout: the deadline is ours to keep. */
	c->deadline_ms = now_ms + HD_STORE_CONNECT_DEADLINE_MS;
}

static void hd_store_connect_poll(hd_store_t *self, hd_store_conn_t *c, int64_t now_ms)
{
	c->connect_poll = PQconnectPoll(c->conn);
	if (c->connect_poll == PGRES_POLLING_FAILED) {
		char why[192];
		snprintf(why, sizeof(why), "%s", PQerrorMessage(c->conn));
		why[strcspn(why, "\n")] = '\0';
		hd_store_disconnect(self, c, now_ms, why);
		return;
	}
	if (c->connect_poll != PGRES_POLLING_OK)
		return;
	PQsetnonblocking(c->conn, 1);
	c->state = HD_STORE_READY;
	hd_info("store.connected", "conn=%u server_version=%d after_attempts=%u", c->index,
		PQserverVersion(c->conn), c->reconnect_attempt);
	c->reconnect_attempt = 0;
}

/* ---- batching ------------------------------------------------------------ */

int hd_store_submit(hd_store_t *self, hd_store_item_t *item)
{
	if (!hd_store_is_ready(self))
		return HD_E_UNAVAILABLE;
	if ((int64_t)self->pending_count >= self->opts.max_pending)
		return HD_E_BUSY;
	item->next = NULL;
	item->followers = NULL;
	item->enqueued_ms = hd_time_mono_ms();
	if (self->pending_tail)
		self->pending_tail->next = item;
	else
		self->pending_head = item;
	self->pending_tail = item;
	self->pending_count++;
	return HD_OK;
}

static json_t *hd_store_json_str(const char *s)
{
	return s ? json_stringn_nocheck(s, strlen(s)) : json_null();
}

static json_t *hd_store_json_strings(char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, hd_store_json_str(v[i]));
	return a;
}

/* The policy's keys; absent when it found nothing (the usual case). */
static void hd_store_encode_policy(const hd_store_item_t *item, json_t *o)
{
	if (item->finding_count > 0) {
		json_t *a = json_array();
		for (size_t i = 0; i < item->finding_count; i++) {
			const hd_finding_t *f = &item->findings[i];
			json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
				"rule", f->rule, "clause", f->clause, "action", f->action,
				"severity", f->severity, "reason", f->reason,
				"field", f->field ? f->field : ""));
		}
		json_object_set_new_nocheck(o, "findings", a);
	}
	if (item->rejected) {
		const hd_finding_t *f = NULL;
		for (size_t i = 0; i < item->finding_count && !f; i++)
			if (strcmp(item->findings[i].action, "reject") == 0)
				f = &item->findings[i];
		json_object_set_new_nocheck(o, "reject", json_pack("{s:s, s:s, s:s, s:s, s:s}",
			"rule", f ? f->rule : "", "clause", f ? f->clause : "",
			"severity", f ? f->severity : "minor", "field", item->reject_field,
			"reason", item->reject_reason));
	}
	if (item->db_rule_count > 0) {
		json_t *a = json_array();
		for (size_t i = 0; i < item->db_rule_count; i++) {
			const hd_policy_db_rule_t *r = item->db_rules[i];
			json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "rule", r->rule,
				"clause", r->clause, "check", r->check,
				"action", hd_policy_action_name(r->action),
				"severity", hd_policy_severity_name(r->severity));
			if (r->count > 0) {
				json_object_set_new_nocheck(j, "count", json_integer(r->count));
				json_object_set_new_nocheck(j, "per_s", json_integer(r->per_s));
			}
			json_array_append_new(a, j);
		}
		json_object_set_new_nocheck(o, "db_rules", a);
	}
	if (item->not_before_s > 0)
		json_object_set_new_nocheck(o, "not_before", json_integer(item->not_before_s));
}

static json_t *hd_store_encode_item(const hd_store_t *self, const hd_store_item_t *item,
				    size_t ord)
{
	const hd_msg_t *m = item->msg;
	json_t *o = json_object();
	json_object_set_new_nocheck(o, "ord", json_integer((json_int_t)ord));
	json_object_set_new_nocheck(o, "app", hd_store_json_str(item->app));
	json_object_set_new_nocheck(o, "ikey", hd_store_json_str(m->idempotency_key));
	json_object_set_new_nocheck(o, "channel", json_string(hd_channel_name(m->channel)));
	json_object_set_new_nocheck(o, "sender", hd_store_json_str(m->sender));
	json_object_set_new_nocheck(o, "class", json_string(hd_class_name(item->klass)));
	json_object_set_new_nocheck(o, "important", json_boolean(item->important));
	json_object_set_new_nocheck(o, "major", json_boolean(item->major));
	json_object_set_new_nocheck(o, "approval_due_s",
				    json_integer((json_int_t)self->opts.approval_due_s));
	json_object_set_new_nocheck(o, "reminder_s", self->opts.approval_reminder_s > 0
				    ? json_integer((json_int_t)self->opts.approval_reminder_s)
				    : json_null());
	json_object_set_new_nocheck(o, "state",
				    json_string(item->klass == HD_CLASS_GENERAL ? "queued" : "held"));
	json_object_set_new_nocheck(o, "subject", hd_store_json_str(m->subject));
	/* A refused item is never stored: its content stays here. */
	json_object_set_new_nocheck(o, "body", hd_store_json_str(item->rejected ? NULL : m->body));
	json_object_set_new_nocheck(o, "html", hd_store_json_str(item->rejected ? NULL : m->html));
	json_object_set_new_nocheck(o, "cc_reason", hd_store_json_str(m->cc_reason));
	json_object_set_new_nocheck(o, "purpose", m->purpose == HD_PURPOSE_NONE
				    ? json_null() : json_string(hd_purpose_name(m->purpose)));
	json_object_set_new_nocheck(o, "reply_by", m->reply_by
				    ? json_integer((json_int_t)m->reply_by) : json_null());
	json_t *flags = json_array();
	for (unsigned bit = 1; bit <= HD_FLAG_NEEDS_REPLY; bit <<= 1)
		if (m->flags & bit)
			json_array_append_new(flags, json_string(hd_flag_name((hd_flag_t)bit)));
	json_object_set_new_nocheck(o, "flags", flags);
	json_t *tags = json_object();
	for (size_t i = 0; i < m->tag_count; i++)
		json_object_set_new(tags, m->tags[i].key, hd_store_json_str(m->tags[i].value));
	json_object_set_new_nocheck(o, "tags", tags);
	json_object_set_new_nocheck(o, "to", hd_store_json_strings(m->to, m->to_count));
	json_object_set_new_nocheck(o, "cc", hd_store_json_strings(m->cc, m->cc_count));
	json_t *atts = json_array();
	for (size_t i = 0; !item->rejected && i < m->attachment_count; i++) {
		const hd_attachment_t *a = &m->attachments[i];
		size_t b64_len = sodium_base64_encoded_len(a->size, sodium_base64_VARIANT_ORIGINAL);
		char *b64 = hd_malloc(b64_len);
		sodium_bin2base64(b64, b64_len, a->data, a->size, sodium_base64_VARIANT_ORIGINAL);
		json_array_append_new(atts, json_pack("{s:s, s:s, s:s}", "name", a->name, "type",
						      a->mime_type, "data", b64));
		free(b64);
	}
	json_object_set_new_nocheck(o, "attachments", atts);
	if (m->bulk)
		json_object_set_new_nocheck(o, "bulk", json_pack("{s:s, s:s, s:I, s:s}",
			"purpose", m->bulk->purpose, "audience", m->bulk->audience,
			"recipient_count", (json_int_t)m->bulk->recipient_count,
			"summary", m->bulk->summary));
	else
		json_object_set_new_nocheck(o, "bulk", json_null());
	hd_store_encode_policy(item, o);
	return o;
}

/* Dedup key table for one batch: open addressing over leader indexes. */
static uint64_t hd_store_key_hash(const hd_store_item_t *item)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = item->app; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (const char *p = item->msg->idempotency_key; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h;
}

static bool hd_store_same_key(const hd_store_item_t *a, const hd_store_item_t *b)
{
	return strcmp(a->app, b->app) == 0 &&
	       strcmp(a->msg->idempotency_key, b->msg->idempotency_key) == 0;
}

/* A generous estimate of an item's share of the batch's JSON text. */
static size_t hd_store_item_bytes(const hd_store_item_t *item)
{
	const hd_msg_t *m = item->msg;
	size_t n = 512 + (m->subject ? strlen(m->subject) : 0) + (m->body ? strlen(m->body) : 0) +
		   (m->html ? strlen(m->html) : 0);
	for (size_t i = 0; i < m->to_count; i++)
		n += strlen(m->to[i]) + 4;
	for (size_t i = 0; i < m->cc_count; i++)
		n += strlen(m->cc[i]) + 4;
	for (size_t i = 0; i < m->attachment_count; i++)
		n += m->attachments[i].size / 3 * 4 + 64;
	return n;
}

static bool hd_store_should_flush(const hd_store_t *self, int64_t now_ms)
{
	if (!self->pending_head)
		return false;
	if (self->pending_head->isolate)
		return true;
	if ((int64_t)self->pending_count >= self->opts.batch_max)
		return true;
	return now_ms - self->pending_head->enqueued_ms >= self->opts.batch_wait_ms;
}

static void hd_store_flush(hd_store_t *self, hd_store_conn_t *c, int64_t now_ms)
{
	size_t cap = (size_t)self->opts.batch_max;
	size_t slots = 1;
	while (slots < cap * 2)
		slots <<= 1;
	size_t *table = hd_calloc(slots, sizeof(size_t)); /* leader index + 1 */
	json_t *batch = json_array();

	/* An item that failed inside a batch goes alone, so only it fails. */
	bool alone = self->pending_head->isolate;
	size_t batch_bytes = 0;
	c->inflight_count = 0;
	while (self->pending_head && c->inflight_count < cap) {
		hd_store_item_t *item = self->pending_head;
		if (alone && c->inflight_count == 1)
			break;
		if (!alone && item->isolate)
			break;
		/* Bytes bound a batch too: one JSON parameter must stay far below
		 * PostgreSQL's 1 GB message limit. The first item always goes. */
		size_t item_bytes = hd_store_item_bytes(item);
		if (c->inflight_count > 0 && batch_bytes + item_bytes > (size_t)self->opts.batch_max_bytes)
			break;
		batch_bytes += item_bytes;
		self->pending_head = item->next;
		if (!self->pending_head)
			self->pending_tail = NULL;
		self->pending_count--;
		item->next = NULL;

		if (item->msg->idempotency_key) {
			size_t slot = (size_t)hd_store_key_hash(item) & (slots - 1);
			bool followed = false;
			while (table[slot]) {
				hd_store_item_t *leader = c->inflight[table[slot] - 1];
				if (hd_store_same_key(leader, item)) {
					item->next = leader->followers;
					leader->followers = item;
					followed = true;
					break;
				}
				slot = (slot + 1) & (slots - 1);
			}
			if (followed)
				continue;
			table[slot] = c->inflight_count + 1;
		}
		c->inflight[c->inflight_count++] = item;
		json_array_append_new(batch, hd_store_encode_item(self, item, c->inflight_count));
	}
	free(table);

	char *text = json_dumps(batch, JSON_COMPACT);
	json_decref(batch);
	if (!text)
		hd_panic("json_dumps failed for an intake batch");
	const char *params[1] = {text};
	int ok = PQsendQueryParams(c->conn, hd_store_intake_sql, 1, NULL, params, NULL, NULL, 0);
	free(text);
	c->inflight_seen_error = false;
	c->inflight_lost = false;
	if (!ok) {
		hd_store_disconnect(self, c, now_ms, PQerrorMessage(c->conn));
		return;
	}
	c->state = HD_STORE_BUSY;
	/* statement_timeout is enforced by the server; a server that stops
	 * answering altogether is caught here. */
	c->deadline_ms = now_ms + self->opts.statement_timeout_ms + HD_STORE_STATEMENT_SLACK_MS;
	c->want_write = PQflush(c->conn) == 1;
}

/* ---- completing ---------------------------------------------------------- */

static bool hd_store_is_connection_error(const PGresult *res, const PGconn *conn)
{
	if (PQstatus(conn) == CONNECTION_BAD)
		return true;
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	/* 08: connection exception; 57P: operator intervention (shutdown);
	 * 53: insufficient resources; 40001/40P01: retryable conflicts;
	 * 57014: statement timeout; 55P03: lock not available. None of them
	 * says anything about the messages: answer retryable, reconnect. */
	return !state || strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
	       strncmp(state, "53", 2) == 0 || strcmp(state, "40001") == 0 ||
	       strcmp(state, "40P01") == 0 || strcmp(state, "57014") == 0 ||
	       strcmp(state, "55P03") == 0;
}

/* Put a failed batch back at the front of the queue, each item to go alone. */
static void hd_store_requeue_isolated(hd_store_t *self, hd_store_conn_t *c)
{
	for (size_t i = c->inflight_count; i-- > 0;) {
		hd_store_item_t *item = c->inflight[i];
		c->inflight[i] = NULL;
		hd_store_item_t *f = item->followers;
		item->followers = NULL;
		while (f) { /* followers go back too, right after their leader */
			hd_store_item_t *next = f->next;
			f->isolate = true;
			f->next = self->pending_head;
			self->pending_head = f;
			self->pending_count++;
			f = next;
		}
		item->isolate = true;
		item->next = self->pending_head;
		self->pending_head = item;
		self->pending_count++;
	}
	hd_store_item_t *t = self->pending_head;
	while (t && t->next)
		t = t->next;
	self->pending_tail = t;
	c->inflight_count = 0;
}

static void hd_store_batch_done(hd_store_t *self, hd_store_conn_t *c)
{
	PGresult *res = c->inflight_result;
	c->inflight_result = NULL;
	size_t n = c->inflight_count;

	if (c->inflight_seen_error) {
		if (n == 1) {
			hd_store_item_t *item = c->inflight[0];
			c->inflight[0] = NULL;
			c->inflight_count = 0;
			hd_error("store.reject", "app=%s reason=\"%s\"", item->app, c->inflight_error);
			hd_store_fail_item(self, item, HD_E_INTERNAL, "the database refused this message");
		} else {
			hd_warn("store.batch_error", "conn=%u size=%zu reason=\"%s\" action=isolate",
				c->index, n, c->inflight_error);
			hd_store_requeue_isolated(self, c);
		}
		if (res)
			PQclear(res);
		return;
	}

	int rows = res ? PQntuples(res) : 0;
	for (int r = 0; r < rows; r++) {
		long ord = strtol(PQgetvalue(res, r, 0), NULL, 10);
		if (ord < 1 || (size_t)ord > n || !c->inflight[ord - 1])
			hd_panic("intake_batch returned ord %ld for a batch of %zu", ord, n);
		hd_store_item_t *item = c->inflight[ord - 1];
		c->inflight[ord - 1] = NULL;
		hd_store_result_t out = {.code = HD_OK};
		out.id = strtoll(PQgetvalue(res, r, 1), NULL, 10);
		const char *klass = PQgetvalue(res, r, 2);
		out.klass = strcmp(klass, "bulk") == 0 ? HD_CLASS_BULK
			  : strcmp(klass, "important") == 0 ? HD_CLASS_IMPORTANT : HD_CLASS_GENERAL;
		snprintf(out.state, sizeof(out.state), "%s", PQgetvalue(res, r, 3));
		out.duplicate = PQgetvalue(res, r, 4)[0] == 't';
		if (!PQgetisnull(res, r, 8))
			hd_store_append_findings(item, PQgetvalue(res, r, 8));
		if (!PQgetisnull(res, r, 5)) {
			/* The database refused this entry alone; nothing but the
			 * violations was written for it. */
			const char *error = PQgetvalue(res, r, 5);
			out.code = HD_E_INVALID;
			if (strcmp(error, "policy") == 0) {
				out.code = HD_E_POLICY;
				snprintf(out.field, sizeof(out.field), "%s", PQgetvalue(res, r, 6));
				snprintf(out.reason, sizeof(out.reason), "%s", PQgetvalue(res, r, 7));
				if (!item->rejected)
					hd_store_add_db_reject(item, out.field, out.reason);
			} else if (strcmp(error, "unknown_sender") == 0) {
				snprintf(out.field, sizeof(out.field), "msg.from");
				snprintf(out.reason, sizeof(out.reason), "sender %s is not known staff",
					 item->msg->sender);
			} else {
				snprintf(out.field, sizeof(out.field), "msg");
				snprintf(out.reason, sizeof(out.reason), "refused: %s", error);
			}
		}
		hd_store_complete(self, item, &out);
	}
	for (size_t i = 0; i < n; i++)
		if (c->inflight[i])
			hd_panic("intake_batch returned no row for ord %zu", i + 1);
	c->inflight_count = 0;
	if (res)
		PQclear(res);
}

static void hd_store_read(hd_store_t *self, hd_store_conn_t *c, int64_t now_ms)
{
	if (!PQconsumeInput(c->conn)) {
		char why[192];
		snprintf(why, sizeof(why), "%s", PQerrorMessage(c->conn));
		why[strcspn(why, "\n")] = '\0';
		hd_store_disconnect(self, c, now_ms, why);
		return;
	}
	if (c->state == HD_STORE_READY) {
		/* Idle connection became readable: a notice or the server going away. */
		PGnotify *n;
		while ((n = PQnotifies(c->conn)) != NULL)
			PQfreemem(n);
		if (PQstatus(c->conn) == CONNECTION_BAD)
			hd_store_disconnect(self, c, now_ms, "connection closed by server");
		return;
	}
	while (c->state == HD_STORE_BUSY && !PQisBusy(c->conn)) {
		PGresult *res = PQgetResult(c->conn);
		if (!res) {
			/* ReadyForQuery: the implicit transaction has committed. */
			if (c->inflight_lost) {
				hd_store_disconnect(self, c, now_ms, c->inflight_error);
				return;
			}
			c->state = HD_STORE_READY;
			hd_store_batch_done(self, c);
			return;
		}
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK && !c->inflight_result && !c->inflight_seen_error) {
			c->inflight_result = res;
			continue;
		}
		if (st != PGRES_TUPLES_OK) {
			snprintf(c->inflight_error, sizeof(c->inflight_error), "%s",
				 PQresultErrorMessage(res));
			c->inflight_error[strcspn(c->inflight_error, "\n")] = '\0';
			if (hd_store_is_connection_error(res, c->conn))
				c->inflight_lost = true;
			c->inflight_seen_error = true;
			/* A result before the error means nothing: the transaction rolled back. */
			if (c->inflight_result) {
				PQclear(c->inflight_result);
				c->inflight_result = NULL;
			}
		}
		PQclear(res);
	}
	if (c->state == HD_STORE_BUSY && PQstatus(c->conn) == CONNECTION_BAD)
		hd_store_disconnect(self, c, now_ms, "connection lost during a batch");
}

/* ---- event loop glue ------------------------------------------------------ */

size_t hd_store_poll_items(hd_store_t *self, zmq_pollitem_t *items, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < self->conn_count && n < max; i++) {
		hd_store_conn_t *c = &self->conns[i];
		short events = 0;
		switch (c->state) {
		case HD_STORE_CONNECTING:
			events = c->connect_poll == PGRES_POLLING_READING ? ZMQ_POLLIN : ZMQ_POLLOUT;
			break;
		case HD_STORE_READY:
			events = ZMQ_POLLIN;
			break;
		case HD_STORE_BUSY:
			events = (short)(ZMQ_POLLIN | (c->want_write ? ZMQ_POLLOUT : 0));
			break;
		case HD_STORE_DOWN:
			continue;
		}
		items[n] = (zmq_pollitem_t){NULL, PQsocket(c->conn), events, 0};
		self->poll_map[n++] = c;
	}
	return n;
}

static void hd_store_handle_conn(hd_store_t *self, hd_store_conn_t *c, int64_t now_ms,
				 bool readable, bool writable)
{
	if ((c->state == HD_STORE_CONNECTING || c->state == HD_STORE_BUSY) &&
	    now_ms > c->deadline_ms) {
		hd_store_disconnect(self, c, now_ms, c->state == HD_STORE_CONNECTING
				    ? "connect timed out" : "no answer from the server");
		return;
	}
	switch (c->state) {
	case HD_STORE_DOWN:
		if (now_ms >= c->reconnect_at_ms)
			hd_store_connect_start(self, c, now_ms);
		return;
	case HD_STORE_CONNECTING:
		if (readable || writable)
			hd_store_connect_poll(self, c, now_ms);
		return;
	case HD_STORE_BUSY:
		if (writable && c->want_write) {
			int rc = PQflush(c->conn);
			if (rc < 0) {
				hd_store_disconnect(self, c, now_ms, PQerrorMessage(c->conn));
				return;
			}
			c->want_write = rc == 1;
		}
		if (readable)
			hd_store_read(self, c, now_ms);
		return;
	case HD_STORE_READY:
		if (readable)
			hd_store_read(self, c, now_ms);
		return;
	}
}

void hd_store_handle(hd_store_t *self, int64_t now_ms, const zmq_pollitem_t *items,
		     size_t count)
{
	for (size_t i = 0; i < count; i++)
		hd_store_handle_conn(self, self->poll_map[i], now_ms,
				     (items[i].revents & ZMQ_POLLIN) != 0,
				     (items[i].revents & ZMQ_POLLOUT) != 0);
	for (size_t i = 0; i < self->conn_count; i++)
		if (self->conns[i].state == HD_STORE_DOWN)
			hd_store_handle_conn(self, &self->conns[i], now_ms, false, false);
	for (size_t i = 0; i < self->conn_count; i++) {
		hd_store_conn_t *c = &self->conns[i];
		if (c->state == HD_STORE_READY && hd_store_should_flush(self, now_ms))
			hd_store_flush(self, c, now_ms);
	}
}

int64_t hd_store_timeout_ms(const hd_store_t *self, int64_t now_ms)
{
	int64_t best = -1;
	bool any_ready = false;
	for (size_t i = 0; i < self->conn_count; i++) {
		const hd_store_conn_t *c = &self->conns[i];
		if (c->state == HD_STORE_READY)
			any_ready = true;
		if (c->state == HD_STORE_DOWN) {
			int64_t wait = c->reconnect_at_ms - now_ms;
			wait = wait > 0 ? wait : 0;
			if (best < 0 || wait < best)
				best = wait;
		}
	}
	if (any_ready && self->pending_head) {
		int64_t wait = self->pending_head->enqueued_ms + self->opts.batch_wait_ms - now_ms;
		wait = wait > 0 ? wait : 0;
		if (best < 0 || wait < best)
			best = wait;
	}
	return best;
}

bool hd_store_is_ready(const hd_store_t *self)
{
	for (size_t i = 0; i < self->conn_count; i++)
		if (self->conns[i].state == HD_STORE_READY || self->conns[i].state == HD_STORE_BUSY)
			return true;
	return false;
}

bool hd_store_is_idle(const hd_store_t *self)
{
	if (self->pending_count)
		return false;
	for (size_t i = 0; i < self->conn_count; i++)
		if (self->conns[i].inflight_count)
			return false;
	return true;
}
