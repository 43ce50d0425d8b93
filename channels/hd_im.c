/*
 * NAME
 *	hd_im - the IM channel driver: group webhooks over libcurl multi
 * DESCRIPTION
 *	See hd_im.h. The request builders and the response mapping are pure
 *	functions (unit-tested as tables); the driver object glues them to
 *	hd_http and the worker's ops table. Jobs the driver can decide
 *	without the network (unknown group, tls-required) are parked with
 *	hd_http_jobs_park and reported from handle(), never from inside
 *	submit().
 * OWNERSHIP
 *	The driver's hd_http_jobs owns submitted jobs until it hands each
 *	one to the done callback; the driver owns the group table and the
 *	secrets (wiped on close).
 * LIMITS
 *	At most HD_IM_MAX_GROUPS groups; max_in_flight jobs at once.
 */
#include "hd_im.h"

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
#include "hd_time.h"

#define HD_IM_MAX_GROUPS 10000
#define HD_IM_RATE_LIMIT_DEFAULT_MS 60000   /* WeCom documents 60 s; the others limit per minute */

static const char *const provider_names[] = {
	[HD_IM_SLACK] = "slack",
	[HD_IM_MATTERMOST] = "mattermost",
	[HD_IM_TEAMS] = "teams",
	[HD_IM_WECOM] = "wecom",
	[HD_IM_DINGTALK] = "dingtalk",
	[HD_IM_FEISHU] = "feishu",
	[HD_IM_GENERIC] = "generic",
};

const char *hd_im_provider_name(hd_im_provider_t provider)
{
	if ((unsigned)provider < sizeof provider_names / sizeof provider_names[0])
		return provider_names[provider];
	return "unknown";
}

int hd_im_provider_parse(const char *name, hd_im_provider_t *out)
{
	for (unsigned i = 0; i < sizeof provider_names / sizeof provider_names[0]; i++) {
		if (name && strcmp(name, provider_names[i]) == 0) {
			*out = (hd_im_provider_t)i;
			return 0;
		}
	}
	return HD_E_INVALID;
}

/* ---- signatures -------------------------------------------------------- */

int hd_im_dingtalk_sign(const char *secret, int64_t timestamp_ms, char *out, size_t outlen)
{
	size_t slen = strlen(secret);
	size_t cap = slen + 32;
	char *msg = hd_malloc(cap);
	int n = snprintf(msg, cap, "%lld\n%s", (long long)timestamp_ms, secret);
	int rc = hd_http_hmac_sha256_base64(secret, slen, msg, (size_t)n, out, outlen);
	hd_http_secret_free(&msg);
	return rc;
}

int hd_im_feishu_sign(const char *secret, int64_t timestamp_s, char *out, size_t outlen)
{
	size_t cap = strlen(secret) + 32;
	char *key = hd_malloc(cap);
	int n = snprintf(key, cap, "%lld\n%s", (long long)timestamp_s, secret);
	int rc = hd_http_hmac_sha256_base64(key, (size_t)n, "", 0, out, outlen);
	hd_http_secret_free(&key);
	return rc;
}

/* ---- request building -------------------------------------------------- */

/* "subject\n\nbody", or whichever of the two is present. Caller owns it. */
static char *compose_text(const hd_msg_t *msg)
{
	const char *subject = msg && msg->subject ? msg->subject : "";
	const char *body = msg && msg->body ? msg->body : "";
	size_t len = strlen(subject) + strlen(body) + 3;
	char *text = hd_malloc(len);
	if (*subject && *body)
		snprintf(text, len, "%s\n\n%s", subject, body);
	else
		snprintf(text, len, "%s", *subject ? subject : body);
	return text;
}

static json_t *teams_card(const hd_msg_t *msg)
{
	json_t *blocks = json_array();
	if (msg && msg->subject && *msg->subject)
		json_array_append_new(blocks, json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "TextBlock",
							"text", msg->subject, "weight", "Bolder",
							"size", "Medium", "wrap", 1));
	if (msg && msg->body && *msg->body)
		json_array_append_new(blocks, json_pack("{s:s, s:s, s:b}", "type", "TextBlock",
							"text", msg->body, "wrap", 1));
	json_t *card = json_pack("{s:s, s:s, s:s, s:o}",
				 "$schema", "http://adaptivecards.io/schemas/adaptive-card.json",
				 "type", "AdaptiveCard", "version", "1.4", "body", blocks);
	return json_pack("{s:s, s:[{s:s, s:n, s:o}]}", "type", "message", "attachments",
			 "contentType", "application/vnd.microsoft.card.adaptive",
			 "contentUrl", "content", card);
}

char *hd_im_build_body(hd_im_provider_t provider, const char *group, const hd_wire_job_t *job,
		       const char *secret, int64_t now_ms)
{
	const hd_msg_t *msg = job->msg;
	char *text = compose_text(msg);
	json_t *doc = NULL;

	switch (provider) {
	case HD_IM_SLACK:
	case HD_IM_MATTERMOST:
		doc = json_pack("{s:s}", "text", text);
		break;
	case HD_IM_TEAMS:
		doc = teams_card(msg);
		break;
	case HD_IM_WECOM:
	case HD_IM_DINGTALK:
		doc = json_pack("{s:s, s:{s:s}}", "msgtype", "text", "text", "content", text);
		break;
	case HD_IM_FEISHU:
		doc = json_pack("{s:s, s:{s:s}}", "msg_type", "text", "content", "text", text);
		if (secret) {
			char ts[32], sign[64];
			int64_t now_s = now_ms / 1000;
			snprintf(ts, sizeof ts, "%lld", (long long)now_s);
			hd_im_feishu_sign(secret, now_s, sign, sizeof sign);
			json_object_set_new(doc, "timestamp", json_string(ts));
			json_object_set_new(doc, "sign", json_string(sign));
		}
		break;
	case HD_IM_GENERIC:
	default:
		doc = json_pack("{s:s, s:s?, s:s?, s:I, s:I}", "group", group,
				"subject", msg ? msg->subject : NULL, "body", msg ? msg->body : NULL,
				"delivery_id", (json_int_t)job->delivery_id,
				"message_id", (json_int_t)job->message_id);
		break;
	}
	free(text);
	if (!doc)
		return NULL;   /* jansson refuses strings that are not UTF-8 */
	char *out = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (!out)
		hd_panic("im: json_dumps failed");
	return out;
}

char *hd_im_build_url(hd_im_provider_t provider, const char *url, const char *secret, int64_t now_ms)
{
	if (provider != HD_IM_DINGTALK || !secret)
		return hd_strdup(url);
	char sign[64];
	hd_im_dingtalk_sign(secret, now_ms, sign, sizeof sign);
	char *enc = hd_http_urlencode(sign, strlen(sign));
	size_t len = strlen(url) + strlen(enc) + 64;
	char *out = hd_malloc(len);
	snprintf(out, len, "%s%ctimestamp=%lld&sign=%s", url, strchr(url, '?') ? '&' : '?',
		 (long long)now_ms, enc);
	free(enc);
	return out;
}

/* ---- response mapping -------------------------------------------------- */

static bool is_2xx(long status)
{
	return status >= 200 && status < 300;
}

/* A bare error token such as Slack's "invalid_payload" (not "ok"). */
static bool is_error_token(const char *body, size_t len)
{
	while (len && (body[len - 1] == '\n' || body[len - 1] == '\r' || body[len - 1] == ' '))
		len--;
	if (len == 0 || len > 64 || (len == 2 && memcmp(body, "ok", 2) == 0))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((body[i] >= 'a' && body[i] <= 'z') || body[i] == '_'))
			return false;
	return true;
}

static void set_code(hd_wire_result_t *out, hd_outcome_kind_t outcome, const char *code,
		     const char *detail, size_t detail_len)
{
	hd_http_result_set(out, outcome, code, detail, detail_len);
}

static void set_http(hd_wire_result_t *out, hd_outcome_kind_t outcome, long status,
		     const char *body, size_t body_len)
{
	char code[24];
	snprintf(code, sizeof code, "%ld", status);
	set_code(out, outcome, code, body, body_len);
}

/*
 * Provider codes in a JSON body (wecom/dingtalk "errcode"+"errmsg",
 * feishu "code"+"msg", older feishu "StatusCode"+"StatusMessage").
 * Returns true and fills *code and msg when the body carries one.
 */
static bool body_code(hd_im_provider_t provider, const char *body, size_t len, long long *code,
		      char *msg, size_t msglen)
{
	json_t *doc = json_loadb(body, len, 0, NULL);
	if (!doc || !json_is_object(doc)) {
		json_decref(doc);
		return false;
	}
	const char *ckey = provider == HD_IM_FEISHU ? "code" : "errcode";
	const char *mkey = provider == HD_IM_FEISHU ? "msg" : "errmsg";
	json_t *c = json_object_get(doc, ckey);
	json_t *m = json_object_get(doc, mkey);
	if (!json_is_integer(c) && provider == HD_IM_FEISHU) {
		c = json_object_get(doc, "StatusCode");
		m = json_object_get(doc, "StatusMessage");
	}
	bool ok = json_is_integer(c);
	if (ok) {
		*code = json_integer_value(c);
		const char *s = json_is_string(m) ? json_string_value(m) : "";
		snprintf(msg, msglen, "%s", s);
	}
	json_decref(doc);
	return ok;
}

/* Provider codes that mean "slow down": retry after the provider's window. */
static bool is_rate_limit_code(hd_im_provider_t provider, long long code)
{
	switch (provider) {
	case HD_IM_WECOM:
		return code == 45009;              /* api freq out of limit */
	case HD_IM_DINGTALK:
		return code == 130101;             /* send too fast */
	case HD_IM_FEISHU:
		return code == 9499 || code == 11232;  /* too many request / frequency limited */
	default:
		return false;
	}
}

/* Provider codes that are temporary for another reason (system busy). */
static bool is_temporary_code(hd_im_provider_t provider, long long code)
{
	switch (provider) {
	case HD_IM_WECOM:
		return code == -1 || code == 45033;  /* system busy; concurrency limit */
	case HD_IM_DINGTALK:
		return code == -1;                   /* system busy */
	default:
		return false;
	}
}

static void provider_id_from_json(const char *body, size_t len, hd_wire_result_t *out)
{
	json_t *doc = json_loadb(body, len, 0, NULL);
	json_t *id = json_is_object(doc) ? json_object_get(doc, "id") : NULL;
	if (json_is_string(id))
		hd_http_copy_text(out->provider_id, sizeof out->provider_id, json_string_value(id),
				  json_string_length(id));
	else if (json_is_integer(id))
		snprintf(out->provider_id, sizeof out->provider_id, "%lld",
			 (long long)json_integer_value(id));
	json_decref(doc);
}

/*
 * Decide from a provider code in the body (wecom, dingtalk, feishu).
 * Returns false when the status alone must decide.
 */
static bool map_body_code(hd_im_provider_t provider, long status, const char *body,
			  size_t body_len, int64_t retry_after_ms, hd_wire_result_t *out)
{
	long long code;
	char msg[512], cbuf[48];
	if (!body_code(provider, body, body_len, &code, msg, sizeof msg)) {
		if (!is_2xx(status))
			return false;
		/* 200 without the provider's envelope: we cannot tell it was posted */
		char detail[256];
		int n = snprintf(detail, sizeof detail, "2xx without a provider code: %.*s",
				 (int)(body_len > 200 ? 200 : body_len), body);
		size_t len = n < 0 ? 0 : (size_t)n < sizeof detail ? (size_t)n : sizeof detail - 1;
		set_code(out, HD_OUTCOME_RETRY, "bad-response", detail, len);
		return true;
	}
	snprintf(cbuf, sizeof cbuf, "%s=%lld", provider == HD_IM_FEISHU ? "code" : "errcode", code);
	if (code == 0) {
		if (!is_2xx(status))
			return false;   /* code 0 on an error status: trust the status */
		set_code(out, HD_OUTCOME_DELIVERED, cbuf, msg, strlen(msg));
	} else if (is_rate_limit_code(provider, code)) {
		out->retry_after_ms = retry_after_ms > 0 ? retry_after_ms : HD_IM_RATE_LIMIT_DEFAULT_MS;
		set_code(out, HD_OUTCOME_RETRY, cbuf, msg, strlen(msg));
	} else if (is_temporary_code(provider, code) || status >= 500) {
		out->retry_after_ms = retry_after_ms > 0 ? retry_after_ms : 0;
		set_code(out, HD_OUTCOME_RETRY, cbuf, msg, strlen(msg));
	} else {
		set_code(out, HD_OUTCOME_FAILED, cbuf, msg, strlen(msg));
	}
	return true;
}

void hd_im_map_response(hd_im_provider_t provider, long status, const char *body, size_t body_len,
			int64_t retry_after_ms, hd_wire_result_t *out)
{
	if (!body) {
		body = "";
		body_len = 0;
	}
	out->retry_after_ms = 0;
	out->provider_id[0] = '\0';
	snprintf(out->provider, sizeof out->provider, "%s", hd_im_provider_name(provider));

	if (status == 429) {
		out->retry_after_ms = retry_after_ms > 0 ? retry_after_ms : 0;
		set_http(out, HD_OUTCOME_RETRY, status, body, body_len);
		return;
	}
	if ((provider == HD_IM_WECOM || provider == HD_IM_DINGTALK || provider == HD_IM_FEISHU) &&
	    map_body_code(provider, status, body, body_len, retry_after_ms, out))
		return;

	if (is_2xx(status)) {
		if ((provider == HD_IM_SLACK || provider == HD_IM_MATTERMOST) &&
		    is_error_token(body, body_len)) {
			set_http(out, HD_OUTCOME_FAILED, status, body, body_len);
			return;
		}
		if (provider == HD_IM_TEAMS && body_len && strstr(body, "HTTP error 429")) {
			/* legacy connector: throttled, reported inside a 200 */
			set_code(out, HD_OUTCOME_RETRY, "429", body, body_len);
			return;
		}
		if (provider == HD_IM_GENERIC)
			provider_id_from_json(body, body_len, out);
		set_http(out, HD_OUTCOME_DELIVERED, status, body, body_len);
		return;
	}
	if (status == 408 || status >= 500) {
		out->retry_after_ms = retry_after_ms > 0 ? retry_after_ms : 0;
		set_http(out, HD_OUTCOME_RETRY, status, body, body_len);
		return;
	}
	set_http(out, HD_OUTCOME_FAILED, status, body, body_len);
}

/* ---- the driver -------------------------------------------------------- */

typedef struct im_group {
	char *name;
	hd_im_provider_t provider;
	char *url;
	char *secret;                /* NULL when the provider is not signed */
} im_group_t;

typedef struct hd_im {
	hd_http_jobs_t *jobs;        /* first: the ops table uses hd_http_jobs_op_* */
	im_group_t *groups;
	size_t ngroups;
} hd_im_t;
_Static_assert(offsetof(hd_im_t, jobs) == 0, "hd_http_jobs_op_* need jobs first");

static void im_report(void *self_, const hd_http_job_t *req)
{
	(void)self_;
	const im_group_t *group = req->ctx;
	if (group) {
		char redacted[160];
		hd_http_redact_url(group->url, redacted, sizeof redacted);
		hd_debug("im.result", "delivery=%lld group=%s provider=%s url=%s outcome=%s code=%s",
			 (long long)req->result.delivery_id, group->name, req->result.provider,
			 redacted, hd_outcome_name(req->result.outcome), req->result.provider_code);
	}
}

static void im_map(void *self_, hd_http_job_t *req, const hd_http_response_t *r)
{
	(void)self_;
	const im_group_t *group = req->ctx;
	hd_im_map_response(group->provider, r->status, r->body, r->body_len, r->retry_after_ms,
			   &req->result);
}

static const im_group_t *find_group(const hd_im_t *self, const char *name)
{
	for (size_t i = 0; i < self->ngroups; i++)
		if (name && strcmp(self->groups[i].name, name) == 0)
			return &self->groups[i];
	return NULL;
}

static int im_submit(void *self_, hd_channel_job_t *job)
{
	hd_im_t *self = self_;
	hd_http_job_t *req;
	if (hd_http_jobs_take(self->jobs, job, &req))
		return HD_E_BUSY;
	snprintf(req->result.provider, sizeof req->result.provider, "im");

	/* The registry names the endpoint entry (herald.im_groups.endpoint);
	 * without it, the entry named like the group. */
	const char *entry = job->job.endpoint ? job->job.endpoint : job->job.recipient;
	const im_group_t *g = find_group(self, entry);
	if (!g) {
		char why[160];
		if (job->job.endpoint)
			snprintf(why, sizeof why,
				 "the group's registered endpoint \"%s\" is not configured in this worker",
				 job->job.endpoint);
		else
			snprintf(why, sizeof why, "no im group with this name is configured");
		hd_http_jobs_park(self->jobs, req, HD_OUTCOME_FAILED, "unknown-group", why);
		return 0;
	}
	req->ctx = g;
	snprintf(req->result.provider, sizeof req->result.provider, "%s", hd_im_provider_name(g->provider));
	bool confidential = job->job.msg && (job->job.msg->flags & HD_FLAG_CONFIDENTIAL);
	if (confidential && !hd_http_is_https(g->url)) {
		hd_http_jobs_park(self->jobs, req, HD_OUTCOME_FAILED, "tls-required",
				  "confidential message refused: the group's endpoint is not https");
		return 0;
	}

	int64_t now_ms = hd_time_now_us() / 1000;
	char *body = hd_im_build_body(g->provider, job->job.recipient, &job->job, g->secret, now_ms);
	if (!body) {
		hd_http_jobs_park(self->jobs, req, HD_OUTCOME_FAILED, "bad-text",
				  "subject or body is not valid UTF-8");
		return 0;
	}
	char *url = hd_im_build_url(g->provider, g->url, g->secret, now_ms);
	hd_http_request_t hr = {
		.method = "POST",
		.url = url,
		.content_type = "application/json; charset=utf-8",
		.body = body,
		.body_len = strlen(body),
		.https_only = confidential,
	};
	int rc = hd_http_jobs_start(self->jobs, req, &hr);
	hd_http_secret_free(&url);   /* may carry a signature; wipe like a secret */
	free(body);
	if (rc)
		hd_http_jobs_park(self->jobs, req, HD_OUTCOME_FAILED, "bad-url",
				  "the group's url was refused by libcurl");
	return 0;
}

static void free_groups(hd_im_t *self)
{
	for (size_t i = 0; i < self->ngroups; i++) {
		free(self->groups[i].name);
		hd_http_secret_free(&self->groups[i].url);   /* URLs embed tokens */
		hd_http_secret_free(&self->groups[i].secret);
	}
	free(self->groups);
	self->groups = NULL;
	self->ngroups = 0;
}

static void im_close(void **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_im_t *self = *self_p;
	hd_http_jobs_destroy(&self->jobs);   /* reports every job held; groups still valid */
	free_groups(self);
	free(self);
	*self_p = NULL;
}

static int load_groups(hd_im_t *self, const config_setting_t *list, char *err, size_t errlen)
{
	static const char *const keys[] = {"name", "provider", "url", "secret_file", "secret_env", NULL};
	if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
		snprintf(err, errlen, "%s:%u: groups: expected a list ( { ... }, ... )",
			 config_setting_source_file(list) ? config_setting_source_file(list) : "(config)",
			 config_setting_source_line(list));
		return HD_E_CONFIG;
	}
	int n = config_setting_length(list);
	if (n > HD_IM_MAX_GROUPS) {
		snprintf(err, errlen, "groups: more than %d", HD_IM_MAX_GROUPS);
		return HD_E_CONFIG;
	}
	self->groups = hd_calloc((size_t)n + 1, sizeof *self->groups);
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		const char *name, *provider, *url, *why = NULL;
		if (hd_http_cfg_check_keys(g, keys, err, errlen) ||
		    hd_http_cfg_string(g, "name", true, &name, err, errlen) ||
		    hd_http_cfg_string(g, "provider", true, &provider, err, errlen) ||
		    hd_http_cfg_string(g, "url", true, &url, err, errlen))
			return HD_E_CONFIG;
		const char *file = config_setting_source_file(g) ? config_setting_source_file(g) : "(config)";
		unsigned line = config_setting_source_line(g);
		im_group_t *dst = &self->groups[self->ngroups];
		if (hd_msg_check_address(HD_CHANNEL_IM, name, &why)) {
			snprintf(err, errlen, "%s:%u: name: \"%s\": %s", file, line, name, why);
			return HD_E_CONFIG;
		}
		if (find_group(self, name)) {
			snprintf(err, errlen, "%s:%u: name: \"%s\" is defined twice", file, line, name);
			return HD_E_CONFIG;
		}
		if (hd_im_provider_parse(provider, &dst->provider)) {
			snprintf(err, errlen, "%s:%u: provider: \"%s\": expected slack, mattermost, teams, "
				 "wecom, dingtalk, feishu or generic", file, line, provider);
			return HD_E_CONFIG;
		}
		if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
			snprintf(err, errlen, "%s:%u: url: expected http:// or https://", file, line);
			return HD_E_CONFIG;
		}
		/* only DingTalk and Feishu sign; a secret elsewhere is a mistake worth refusing */
		bool signs = dst->provider == HD_IM_DINGTALK || dst->provider == HD_IM_FEISHU;
		if (!signs && (config_setting_get_member(g, "secret_file") ||
			       config_setting_get_member(g, "secret_env"))) {
			snprintf(err, errlen, "%s:%u: secret: provider %s does not sign requests", file, line,
				 provider);
			return HD_E_CONFIG;
		}
		if (hd_http_cfg_secret(g, false, &dst->secret, err, errlen))
			return HD_E_CONFIG;
		dst->name = hd_strdup(name);
		dst->url = hd_strdup(url);
		self->ngroups++;
	}
	return 0;
}

static void *im_open(const config_setting_t *cfg, void *zmq_ctx, hd_channel_done_fn done,
		     void *done_arg, char *err, size_t errlen)
{
	(void)zmq_ctx;
	static const char *const keys[] = {"timeout_ms", "connect_timeout_ms", "max_in_flight",
					   "max_host_connections", "max_connections", "groups", NULL};
	hd_http_settings_t st;
	if (hd_http_cfg_check_keys(cfg, keys, err, errlen) ||
	    hd_http_cfg_settings(cfg, &st, err, errlen))
		return NULL;

	hd_im_t *self = hd_calloc(1, sizeof *self);
	const config_setting_t *groups = cfg ? config_setting_get_member(cfg, "groups") : NULL;
	if (groups && load_groups(self, groups, err, errlen)) {
		free_groups(self);
		free(self);
		return NULL;
	}
	hd_http_driver_t driver = {.self = self, .map = im_map, .report = im_report, .done = done,
				   .done_arg = done_arg};
	self->jobs = hd_http_jobs_new(&st, &driver);
	hd_info("im.open", "groups=%zu timeout_ms=%lld connect_timeout_ms=%lld max_in_flight=%lld "
		"max_host_connections=%lld max_connections=%lld", self->ngroups, (long long)st.timeout_ms,
		(long long)st.connect_timeout_ms, (long long)st.max_in_flight,
		(long long)st.max_host_connections, (long long)st.max_connections);
	return self;
}

const hd_channel_ops_t hd_im_ops = {
	.name = "im",
	.channel = HD_CHANNEL_IM,
	.open = im_open,
	.submit = im_submit,
	.poll_items = hd_http_jobs_op_poll_items,
	.handle = hd_http_jobs_op_handle,
	.timeout_ms = hd_http_jobs_op_timeout_ms,
	.in_flight = hd_http_jobs_op_in_flight,
	.close = im_close,
	.capacity = hd_http_jobs_op_capacity,
};
