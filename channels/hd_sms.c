/*
 * NAME
 *	hd_sms - the SMS channel driver: HTTP gateways over libcurl multi
 * DESCRIPTION
 *	See hd_sms.h. Request builders and response mapping are pure
 *	functions; the driver object glues them to hd_http. Jobs decided
 *	without the network (too-long, tls-required) are parked with
 *	hd_http_jobs_park and reported from handle(), never from inside
 *	submit().
 * OWNERSHIP
 *	The driver's hd_http_jobs owns submitted jobs until it hands each
 *	one to the done callback; the driver owns the gateway secret (wiped
 *	on close).
 */
#include "hd_sms.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hd_err.h"
#include "hd_http.h"
#include "hd_log.h"
#include "hd_mem.h"
#include "hd_msg.h"

static const char *const provider_names[] = {
	[HD_SMS_KANNEL] = "kannel",
	[HD_SMS_TWILIO] = "twilio",
	[HD_SMS_GENERIC] = "generic",
};

const char *hd_sms_provider_name(hd_sms_provider_t provider)
{
	if ((unsigned)provider < sizeof provider_names / sizeof provider_names[0])
		return provider_names[provider];
	return "unknown";
}

int hd_sms_provider_parse(const char *name, hd_sms_provider_t *out)
{
	for (unsigned i = 0; i < sizeof provider_names / sizeof provider_names[0]; i++) {
		if (name && strcmp(name, provider_names[i]) == 0) {
			*out = (hd_sms_provider_t)i;
			return 0;
		}
	}
	return HD_E_INVALID;
}

/* ---- request building -------------------------------------------------- */

/* Append "&name=<urlencoded value>" (no '&' when *buf is empty). */
static void add_param(char **buf, size_t *len, const char *name, const char *value)
{
	char *enc = hd_http_urlencode(value, strlen(value));
	size_t add = strlen(name) + strlen(enc) + 3;
	*buf = hd_realloc(*buf, *len + add);
	int n = snprintf(*buf + *len, add, "%s%s=%s", *len ? "&" : "", name, enc);
	*len += (size_t)n;
	free(enc);
}

char *hd_sms_kannel_url(const char *base, const char *username, const char *password,
			const char *from, const char *to, const char *text,
			hd_sms_encoding_t encoding)
{
	size_t blen = strlen(base);
	while (blen && base[blen - 1] == '/')
		blen--;
	bool has_path = strstr(base, "/cgi-bin/") != NULL;
	char *q = hd_strdup("");
	size_t qlen = 0;
	add_param(&q, &qlen, "username", username ? username : "");
	add_param(&q, &qlen, "password", password ? password : "");
	add_param(&q, &qlen, "to", to);
	if (from && *from)
		add_param(&q, &qlen, "from", from);
	add_param(&q, &qlen, "text", text);
	add_param(&q, &qlen, "charset", "UTF-8");
	add_param(&q, &qlen, "coding", encoding == HD_SMS_GSM7 ? "0" : "2");
	size_t len = blen + qlen + 32;
	char *url = hd_malloc(len);
	snprintf(url, len, "%.*s%s?%s", (int)blen, base, has_path ? "" : "/cgi-bin/sendsms", q);
	hd_http_secret_free(&q);
	return url;
}

char *hd_sms_twilio_form(const char *to, const char *from, const char *text)
{
	char *q = hd_strdup("");
	size_t qlen = 0;
	add_param(&q, &qlen, "To", to);
	add_param(&q, &qlen, "From", from ? from : "");
	add_param(&q, &qlen, "Body", text);
	return q;
}

static char *generic_body(const char *to, const char *from, const char *text)
{
	json_t *doc = json_pack("{s:s, s:s, s:s}", "to", to, "from", from ? from : "", "text", text);
	if (!doc)
		return NULL;   /* not UTF-8: refused by jansson */
	char *out = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (!out)
		hd_panic("sms: json_dumps failed");
	return out;
}

/* ---- response mapping -------------------------------------------------- */

static void set_status(hd_wire_result_t *out, hd_outcome_kind_t outcome, long status,
		       const char *detail, size_t detail_len)
{
	char code[24];
	snprintf(code, sizeof code, "%ld", status);
	hd_http_result_set(out, outcome, code, detail, detail_len);
}

static bool starts_with(const char *body, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(body, prefix, n) == 0;
}

static void map_kannel(long status, const char *body, size_t len, hd_wire_result_t *out)
{
	if (status >= 200 && status < 300) {
		if (starts_with(body, len, "0:") || starts_with(body, len, "3:")) {
			char code[2] = {body[0], '\0'};
			hd_http_result_set(out, HD_OUTCOME_DELIVERED, code, body, len);
		} else if (starts_with(body, len, "Sent.")) {   /* Kannel before 1.4 */
			set_status(out, HD_OUTCOME_DELIVERED, status, body, len);
		} else {
			/* accepted by HTTP but not in Kannel's words: do not risk a second SMS */
			hd_http_result_set(out, HD_OUTCOME_FAILED, "bad-response", body, len);
		}
		return;
	}
	set_status(out, HD_OUTCOME_FAILED, status, body, len);
}

static void map_twilio(long status, const char *body, size_t len, hd_wire_result_t *out)
{
	json_t *doc = json_loadb(body, len, 0, NULL);
	json_t *sid = json_is_object(doc) ? json_object_get(doc, "sid") : NULL;
	json_t *code = json_is_object(doc) ? json_object_get(doc, "code") : NULL;
	json_t *message = json_is_object(doc) ? json_object_get(doc, "message") : NULL;
	if (status >= 200 && status < 300) {
		if (json_is_string(sid))
			hd_http_copy_text(out->provider_id, sizeof out->provider_id,
					  json_string_value(sid), json_string_length(sid));
		json_t *st = json_is_object(doc) ? json_object_get(doc, "status") : NULL;
		const char *s = json_is_string(st) ? json_string_value(st) : "";
		set_status(out, HD_OUTCOME_DELIVERED, status, s, strlen(s));
	} else if (json_is_integer(code)) {
		char cbuf[32];
		snprintf(cbuf, sizeof cbuf, "%lld", (long long)json_integer_value(code));
		const char *m = json_is_string(message) ? json_string_value(message) : "";
		hd_http_result_set(out, HD_OUTCOME_FAILED, cbuf, m, strlen(m));
	} else {
		set_status(out, HD_OUTCOME_FAILED, status, body, len);
	}
	json_decref(doc);
}

static void map_generic(long status, const char *body, size_t len, hd_wire_result_t *out)
{
	if (status >= 200 && status < 300) {
		json_t *doc = json_loadb(body, len, 0, NULL);
		json_t *id = json_is_object(doc) ? json_object_get(doc, "id") : NULL;
		if (json_is_string(id))
			hd_http_copy_text(out->provider_id, sizeof out->provider_id,
					  json_string_value(id), json_string_length(id));
		json_decref(doc);
		set_status(out, HD_OUTCOME_DELIVERED, status, body, len);
		return;
	}
	set_status(out, HD_OUTCOME_FAILED, status, body, len);
}

void hd_sms_map_response(hd_sms_provider_t provider, long status, const char *body, size_t body_len,
			 int64_t retry_after_ms, hd_wire_result_t *out)
{
	if (!body) {
		body = "";
		body_len = 0;
	}
	out->retry_after_ms = 0;
	out->provider_id[0] = '\0';
	snprintf(out->provider, sizeof out->provider, "%s", hd_sms_provider_name(provider));

	if (status == 429 || status == 408 || status >= 500) {
		out->retry_after_ms = retry_after_ms > 0 ? retry_after_ms : 0;
		json_t *doc = provider == HD_SMS_TWILIO ? json_loadb(body, body_len, 0, NULL) : NULL;
		json_t *code = json_is_object(doc) ? json_object_get(doc, "code") : NULL;
		if (json_is_integer(code)) {
			char cbuf[32];
			json_t *m = json_object_get(doc, "message");
			const char *ms = json_is_string(m) ? json_string_value(m) : "";
			snprintf(cbuf, sizeof cbuf, "%lld", (long long)json_integer_value(code));
			hd_http_result_set(out, HD_OUTCOME_RETRY, cbuf, ms, strlen(ms));
		} else {
			set_status(out, HD_OUTCOME_RETRY, status, body, body_len);
		}
		json_decref(doc);
		return;
	}
	switch (provider) {
	case HD_SMS_KANNEL:
		map_kannel(status, body, body_len, out);
		break;
	case HD_SMS_TWILIO:
		map_twilio(status, body, body_len, out);
		break;
	case HD_SMS_GENERIC:
	default:
		map_generic(status, body, body_len, out);
		break;
	}
}

/* ---- the driver -------------------------------------------------------- */

typedef struct hd_sms {
	hd_http_jobs_t *jobs;        /* first: the ops table uses hd_http_jobs_op_* */
	hd_sms_provider_t provider;
	char *url;
	char *username;
	char *secret;
	char *userpwd;               /* twilio: "sid:token" */
	char *from;
	size_t max_segments;
} hd_sms_t;
_Static_assert(offsetof(hd_sms_t, jobs) == 0, "hd_http_jobs_op_* need jobs first");

static void sms_report(void *self_, const hd_http_job_t *req)
{
	(void)self_;
	hd_debug("sms.result", "delivery=%lld provider=%s outcome=%s code=%s",
		 (long long)req->result.delivery_id, req->result.provider,
		 hd_outcome_name(req->result.outcome), req->result.provider_code);
}

static void sms_map(void *self_, hd_http_job_t *req, const hd_http_response_t *r)
{
	const hd_sms_t *self = self_;
	hd_sms_map_response(self->provider, r->status, r->body, r->body_len, r->retry_after_ms,
			    &req->result);
}

static int sms_submit(void *self_, hd_channel_job_t *job)
{
	hd_sms_t *self = self_;
	hd_http_job_t *req;
	if (hd_http_jobs_take(self->jobs, job, &req))
		return HD_E_BUSY;
	snprintf(req->result.provider, sizeof req->result.provider, "%s",
		 hd_sms_provider_name(self->provider));

	const hd_msg_t *msg = job->job.msg;
	const char *text = msg && msg->body ? msg->body : (msg && msg->subject ? msg->subject : "");
	const char *to = job->job.recipient ? job->job.recipient : "";
	hd_sms_segments_t seg;
	if (hd_sms_segments_count(text, strlen(text), &seg)) {
		hd_http_jobs_park(self->jobs, req, HD_OUTCOME_FAILED, "bad-text",
				  "the text is not valid UTF-8");
		return 0;
	}
	if (seg.segments > self->max_segments) {
		char why[160];
		snprintf(why, sizeof why, "%zu %s segments (%zu units), max_segments is %zu",
			 seg.segments, hd_sms_segments_encoding_name(seg.encoding), seg.units,
			 self->max_segments);
		hd_http_jobs_park(self->jobs, req, HD_OUTCOME_FAILED, "too-long", why);
		return 0;
	}
	bool confidential = msg && (msg->flags & HD_FLAG_CONFIDENTIAL);
	if (confidential && !hd_http_is_https(self->url)) {
		hd_http_jobs_park(self->jobs, req, HD_OUTCOME_FAILED, "tls-required",
				  "confidential message refused: the gateway endpoint is not https");
		return 0;
	}

	hd_http_request_t hr = {.https_only = confidential};
	char *url = NULL, *body = NULL;
	switch (self->provider) {
	case HD_SMS_KANNEL:
		url = hd_sms_kannel_url(self->url, self->username, self->secret, self->from, to, text,
					seg.encoding);
		hr.method = "GET";
		break;
	case HD_SMS_TWILIO: {
		size_t len = strlen(self->url) + strlen(self->username) + 64;
		url = hd_malloc(len);
		size_t blen = strlen(self->url);
		while (blen && self->url[blen - 1] == '/')
			blen--;
		snprintf(url, len, "%.*s/2010-04-01/Accounts/%s/Messages.json", (int)blen, self->url,
			 self->username);
		body = hd_sms_twilio_form(to, self->from, text);
		hr.method = "POST";
		hr.content_type = "application/x-www-form-urlencoded";
		hr.userpwd = self->userpwd;
		break;
	}
	case HD_SMS_GENERIC:
	default:
		body = generic_body(to, self->from, text);
		if (!body) {
			hd_http_jobs_park(self->jobs, req, HD_OUTCOME_FAILED, "bad-text",
					  "recipient or sender is not valid UTF-8");
			return 0;
		}
		url = hd_strdup(self->url);
		hr.method = "POST";
		hr.content_type = "application/json; charset=utf-8";
		hr.userpwd = self->userpwd;
		break;
	}
	hr.url = url;
	hr.body = body;
	hr.body_len = body ? strlen(body) : 0;
	int rc = hd_http_jobs_start(self->jobs, req, &hr);
	hd_http_secret_free(&url);   /* the Kannel URL carries the password */
	free(body);
	if (rc)
		hd_http_jobs_park(self->jobs, req, HD_OUTCOME_FAILED, "bad-url",
				  "the gateway url was refused by libcurl");
	return 0;
}

static void free_fields(hd_sms_t *self)
{
	free(self->url);
	free(self->username);
	free(self->from);
	hd_http_secret_free(&self->secret);
	hd_http_secret_free(&self->userpwd);
}

static void sms_close(void **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_sms_t *self = *self_p;
	hd_http_jobs_destroy(&self->jobs);   /* reports every job held */
	free_fields(self);
	free(self);
	*self_p = NULL;
}

static void *sms_open(const config_setting_t *cfg, void *zmq_ctx, hd_channel_done_fn done,
		      void *done_arg, char *err, size_t errlen)
{
	(void)zmq_ctx;
	static const char *const keys[] = {"provider", "url", "username", "secret_file", "secret_env",
					   "from", "timeout_ms", "connect_timeout_ms", "max_in_flight",
					   "max_segments", "max_host_connections", "max_connections", NULL};
	const char *provider, *url, *username, *from;
	int64_t max_segments;
	hd_http_settings_t st;
	if (!cfg) {
		snprintf(err, errlen, "sms: a configuration group is required (provider, url, ...)");
		return NULL;
	}
	if (hd_http_cfg_check_keys(cfg, keys, err, errlen) ||
	    hd_http_cfg_string(cfg, "provider", true, &provider, err, errlen) ||
	    hd_http_cfg_string(cfg, "url", true, &url, err, errlen) ||
	    hd_http_cfg_string(cfg, "username", false, &username, err, errlen) ||
	    hd_http_cfg_string(cfg, "from", false, &from, err, errlen) ||
	    hd_http_cfg_settings(cfg, &st, err, errlen) ||
	    hd_http_cfg_int(cfg, "max_segments", 10, 1, 255, &max_segments, err, errlen))
		return NULL;

	const char *file = config_setting_source_file(cfg) ? config_setting_source_file(cfg) : "(config)";
	unsigned line = config_setting_source_line(cfg);
	hd_sms_provider_t p;
	if (hd_sms_provider_parse(provider, &p)) {
		snprintf(err, errlen, "%s:%u: provider: \"%s\": expected kannel, twilio or generic", file,
			 line, provider);
		return NULL;
	}
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
		snprintf(err, errlen, "%s:%u: url: expected http:// or https://", file, line);
		return NULL;
	}
	if (p != HD_SMS_GENERIC && (!username || !*username)) {
		snprintf(err, errlen, "%s:%u: username: required for %s", file, line, provider);
		return NULL;
	}
	if (p == HD_SMS_TWILIO && (!from || !*from)) {
		snprintf(err, errlen, "%s:%u: from: required for twilio", file, line);
		return NULL;
	}
	char *secret = NULL;
	if (hd_http_cfg_secret(cfg, p != HD_SMS_GENERIC, &secret, err, errlen))
		return NULL;

	hd_sms_t *self = hd_calloc(1, sizeof *self);
	self->provider = p;
	self->url = hd_strdup(url);
	self->username = username ? hd_strdup(username) : NULL;
	self->from = from ? hd_strdup(from) : NULL;
	self->secret = secret;
	if (secret && username && p != HD_SMS_KANNEL) {
		size_t len = strlen(username) + strlen(secret) + 2;
		self->userpwd = hd_malloc(len);
		snprintf(self->userpwd, len, "%s:%s", username, secret);
	}
	self->max_segments = (size_t)max_segments;
	hd_http_driver_t driver = {.self = self, .map = sms_map, .report = sms_report, .done = done,
				   .done_arg = done_arg};
	self->jobs = hd_http_jobs_new(&st, &driver);
	char redacted[160];
	hd_http_redact_url(url, redacted, sizeof redacted);
	hd_info("sms.open", "provider=%s url=%s timeout_ms=%lld max_in_flight=%lld max_segments=%lld",
		provider, redacted, (long long)st.timeout_ms, (long long)st.max_in_flight,
		(long long)max_segments);
	return self;
}

const hd_channel_ops_t hd_sms_ops = {
	.name = "sms",
	.channel = HD_CHANNEL_SMS,
	.open = sms_open,
	.submit = sms_submit,
	.poll_items = hd_http_jobs_op_poll_items,
	.handle = hd_http_jobs_op_handle,
	.timeout_ms = hd_http_jobs_op_timeout_ms,
	.in_flight = hd_http_jobs_op_in_flight,
	.close = sms_close,
	.capacity = hd_http_jobs_op_capacity,
};
