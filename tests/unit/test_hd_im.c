/*
 * NAME
 *	test_hd_im - IM driver: provider requests, signatures, response
 *	mapping tables, configuration errors and the driver contract
 * DESCRIPTION
 *	Signature vectors were computed independently (Python hmac/hashlib,
 *	the algorithm as DingTalk and Feishu document it). The end-to-end
 *	path against emulated providers is tests/integration/31-im-providers.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hd_err.h"
#include "hd_im.h"
#include "hd_mem.h"
#include "hd_msg.h"
#include "hd_time.h"

/* ---- helpers ------------------------------------------------------------- */

static hd_channel_job_t *make_job(int64_t id, const char *group, const char *subject,
				  const char *body, unsigned flags)
{
	hd_channel_job_t *j = hd_calloc(1, sizeof *j);
	j->job.delivery_id = id;
	j->job.message_id = id * 10;
	j->job.attempt = 1;
	j->job.recipient = hd_strdup(group);
	j->job.kind = hd_strdup("to");
	j->job.msg = hd_msg_new(HD_CHANNEL_IM);
	j->job.msg->sender = hd_strdup("alerts");
	if (subject)
		j->job.msg->subject = hd_strdup(subject);
	if (body)
		j->job.msg->body = hd_strdup(body);
	j->job.msg->flags = flags;
	return j;
}

typedef struct got {
	int count;
	int64_t delivery_id[8];
	hd_wire_result_t result[8];
} got_t;

static void on_done(void *arg, hd_channel_job_t *job, const hd_wire_result_t *r)
{
	got_t *g = arg;
	if (g->count < 8) {
		g->delivery_id[g->count] = job->job.delivery_id;
		g->result[g->count] = *r;
	}
	g->count++;
	hd_channel_job_destroy(&job);
}

static void *open_text(const char *text, got_t *g, char *err, size_t errlen)
{
	config_t cfg;
	config_init(&cfg);
	if (!config_read_string(&cfg, text)) {
		snprintf(err, errlen, "parse: %s", config_error_text(&cfg));
		config_destroy(&cfg);
		return NULL;
	}
	void *im = hd_im_ops.open(config_lookup(&cfg, "im"), NULL, on_done, g, err, errlen);
	config_destroy(&cfg);
	return im;
}

static void run(void *im, int64_t max_ms)
{
	int64_t end = hd_time_mono_ms() + max_ms;
	while (hd_im_ops.in_flight(im) && hd_time_mono_ms() < end) {
		zmq_pollitem_t items[16];
		size_t n = hd_im_ops.poll_items(im, items, 16);
		int64_t t = hd_im_ops.timeout_ms(im, hd_time_mono_ms());
		if (t < 0 || t > 50)
			t = 50;
		zmq_poll(items, (int)n, (long)t);
		hd_im_ops.handle(im, hd_time_mono_ms(), items, n);
	}
}

static json_t *parse(char *s)
{
	json_error_t e;
	json_t *doc = json_loads(s, 0, &e);
	assert_non_null(doc);
	free(s);
	return doc;
}

static const char *jstr(json_t *doc, const char *path)
{
	/* "a.b.c" through objects; "a.0.b" through arrays */
	char buf[128];
	snprintf(buf, sizeof buf, "%s", path);
	json_t *cur = doc;
	for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
		if (json_is_array(cur))
			cur = json_array_get(cur, (size_t)atoi(tok));
		else
			cur = json_object_get(cur, tok);
	}
	return json_is_string(cur) ? json_string_value(cur) : NULL;
}

/* ---- signatures ---------------------------------------------------------- */

static void test_dingtalk_signature_matches_the_documented_algorithm(void **state)
{
	(void)state;
	char sign[64];
	assert_int_equal(hd_im_dingtalk_sign("SEC0123456789abcdef", 1700000000000LL, sign, sizeof sign), 0);
	assert_string_equal(sign, "TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk=");
}

static void test_feishu_signature_keys_hmac_with_timestamp_and_secret_over_nothing(void **state)
{
	(void)state;
	char sign[64];
	assert_int_equal(hd_im_feishu_sign("fs-secret", 1700000000LL, sign, sizeof sign), 0);
	assert_string_equal(sign, "ognpFOmraex6LA29Ao14dsiNmmjE3YO4x5e/SX8n9Bw=");
	assert_int_equal(hd_im_feishu_sign("fs-secret", 1700000000LL, sign, 20), HD_E_INVALID);
}

static void test_dingtalk_url_gets_timestamp_and_urlencoded_sign(void **state)
{
	(void)state;
	char *u = hd_im_build_url(HD_IM_DINGTALK, "https://oapi.dingtalk.com/robot/send?access_token=abc",
				  "SEC0123456789abcdef", 1700000000000LL);
	assert_string_equal(u, "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1700000000000"
			       "&sign=TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D");
	free(u);
	u = hd_im_build_url(HD_IM_DINGTALK, "http://h/robot", "SEC0123456789abcdef", 1700000000000LL);
	assert_int_equal(strncmp(u, "http://h/robot?timestamp=1700000000000&sign=", 44), 0);
	free(u);
	u = hd_im_build_url(HD_IM_DINGTALK, "http://h/robot?access_token=x", NULL, 1);
	assert_string_equal(u, "http://h/robot?access_token=x");
	free(u);
	u = hd_im_build_url(HD_IM_SLACK, "https://hooks.slack.com/services/T/B/X", "ignored", 1);
	assert_string_equal(u, "https://hooks.slack.com/services/T/B/X");
	free(u);
}

/* ---- request bodies ------------------------------------------------------ */

static void test_slack_and_mattermost_post_text_with_subject_then_body(void **state)
{
	(void)state;
	hd_channel_job_t *j = make_job(1, "ops", "Disk full", "db1 at 97%", 0);
	json_t *d = parse(hd_im_build_body(HD_IM_SLACK, "ops", &j->job, NULL, 0));
	assert_string_equal(jstr(d, "text"), "Disk full\n\ndb1 at 97%");
	assert_int_equal(json_object_size(d), 1);
	json_decref(d);
	d = parse(hd_im_build_body(HD_IM_MATTERMOST, "ops", &j->job, NULL, 0));
	assert_string_equal(jstr(d, "text"), "Disk full\n\ndb1 at 97%");
	json_decref(d);
	hd_channel_job_destroy(&j);
	j = make_job(2, "ops", NULL, "only body", 0);
	d = parse(hd_im_build_body(HD_IM_SLACK, "ops", &j->job, NULL, 0));
	assert_string_equal(jstr(d, "text"), "only body");
	json_decref(d);
	hd_channel_job_destroy(&j);
}

static void test_teams_posts_an_adaptive_card_message(void **state)
{
	(void)state;
	hd_channel_job_t *j = make_job(1, "ops", "Disk full", "db1 at 97%", 0);
	json_t *d = parse(hd_im_build_body(HD_IM_TEAMS, "ops", &j->job, NULL, 0));
	assert_string_equal(jstr(d, "type"), "message");
	assert_string_equal(jstr(d, "attachments.0.contentType"), "application/vnd.microsoft.card.adaptive");
	assert_true(json_is_null(json_object_get(json_array_get(json_object_get(d, "attachments"), 0),
						 "contentUrl")));
	assert_string_equal(jstr(d, "attachments.0.content.type"), "AdaptiveCard");
	assert_string_equal(jstr(d, "attachments.0.content.body.0.text"), "Disk full");
	assert_string_equal(jstr(d, "attachments.0.content.body.0.weight"), "Bolder");
	assert_string_equal(jstr(d, "attachments.0.content.body.1.text"), "db1 at 97%");
	json_decref(d);
	hd_channel_job_destroy(&j);
}

static void test_wecom_and_dingtalk_post_msgtype_text_content(void **state)
{
	(void)state;
	hd_channel_job_t *j = make_job(1, "ops", "告警", "磁盘已满", 0);
	for (int p = HD_IM_WECOM; p <= HD_IM_DINGTALK; p++) {
		json_t *d = parse(hd_im_build_body((hd_im_provider_t)p, "ops", &j->job, "s", 0));
		assert_string_equal(jstr(d, "msgtype"), "text");
		assert_string_equal(jstr(d, "text.content"), "告警\n\n磁盘已满");
		assert_int_equal(json_object_size(d), 2);
		json_decref(d);
	}
	hd_channel_job_destroy(&j);
}

static void test_feishu_body_carries_timestamp_and_sign_only_with_a_secret(void **state)
{
	(void)state;
	hd_channel_job_t *j = make_job(1, "ops", NULL, "部署完成", 0);
	json_t *d = parse(hd_im_build_body(HD_IM_FEISHU, "ops", &j->job, "fs-secret", 1700000000123LL));
	assert_string_equal(jstr(d, "msg_type"), "text");
	assert_string_equal(jstr(d, "content.text"), "部署完成");
	assert_string_equal(jstr(d, "timestamp"), "1700000000");
	assert_string_equal(jstr(d, "sign"), "ognpFOmraex6LA29Ao14dsiNmmjE3YO4x5e/SX8n9Bw=");
	json_decref(d);
	d = parse(hd_im_build_body(HD_IM_FEISHU, "ops", &j->job, NULL, 1700000000123LL));
	assert_null(json_object_get(d, "sign"));
	assert_null(json_object_get(d, "timestamp"));
	json_decref(d);
	hd_channel_job_destroy(&j);
}

static void test_generic_posts_group_subject_body_and_ids(void **state)
{
	(void)state;
	hd_channel_job_t *j = make_job(42, "ops-oncall", "Disk", "full", 0);
	json_t *d = parse(hd_im_build_body(HD_IM_GENERIC, "ops-oncall", &j->job, NULL, 0));
	assert_string_equal(jstr(d, "group"), "ops-oncall");
	assert_string_equal(jstr(d, "subject"), "Disk");
	assert_string_equal(jstr(d, "body"), "full");
	assert_int_equal(json_integer_value(json_object_get(d, "delivery_id")), 42);
	assert_int_equal(json_integer_value(json_object_get(d, "message_id")), 420);
	json_decref(d);
	hd_channel_job_destroy(&j);
}

/* ---- response mapping ---------------------------------------------------- */

#define D HD_OUTCOME_DELIVERED
#define R HD_OUTCOME_RETRY
#define F HD_OUTCOME_FAILED

static const struct map_row {
	hd_im_provider_t p;
	long status;
	const char *body;
	int64_t ra;              /* Retry-After header, -1 absent */
	hd_outcome_kind_t want;
	const char *code;
	int64_t want_ra;
} map_rows[] = {
	{HD_IM_SLACK, 200, "ok", -1, D, "200", 0},
	{HD_IM_SLACK, 400, "invalid_payload", -1, F, "400", 0},
	{HD_IM_SLACK, 404, "no_service", -1, F, "404", 0},
	{HD_IM_SLACK, 403, "action_prohibited", -1, F, "403", 0},
	{HD_IM_SLACK, 410, "channel_is_archived", -1, F, "410", 0},
	{HD_IM_SLACK, 429, "", 30000, R, "429", 30000},
	{HD_IM_SLACK, 429, "", -1, R, "429", 0},
	{HD_IM_SLACK, 500, "rollup_error", -1, R, "500", 0},
	{HD_IM_SLACK, 200, "invalid_token", -1, F, "200", 0},
	{HD_IM_MATTERMOST, 200, "ok", -1, D, "200", 0},
	{HD_IM_MATTERMOST, 400, "{\"id\":\"web.incoming_webhook.text.app_error\",\"message\":\"No text specified\",\"status_code\":400}", -1, F, "400", 0},
	{HD_IM_MATTERMOST, 503, "", 4000, R, "503", 4000},
	{HD_IM_TEAMS, 202, "", -1, D, "202", 0},
	{HD_IM_TEAMS, 200, "1", -1, D, "200", 0},
	{HD_IM_TEAMS, 200, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId x", -1, R, "429", 0},
	{HD_IM_TEAMS, 400, "{\"error\":{\"code\":\"InvalidRequestContent\"}}", -1, F, "400", 0},
	{HD_IM_TEAMS, 408, "", -1, R, "408", 0},
	{HD_IM_WECOM, 200, "{\"errcode\":0,\"errmsg\":\"ok\"}", -1, D, "errcode=0", 0},
	{HD_IM_WECOM, 200, "{\"errcode\":45009,\"errmsg\":\"api freq out of limit\"}", -1, R, "errcode=45009", 60000},
	{HD_IM_WECOM, 200, "{\"errcode\":45009,\"errmsg\":\"api freq out of limit\"}", 5000, R, "errcode=45009", 5000},
	{HD_IM_WECOM, 200, "{\"errcode\":93000,\"errmsg\":\"invalid webhook url\"}", -1, F, "errcode=93000", 0},
	{HD_IM_WECOM, 200, "{\"errcode\":44004,\"errmsg\":\"empty content\"}", -1, F, "errcode=44004", 0},
	{HD_IM_WECOM, 200, "{\"errcode\":-1,\"errmsg\":\"system busy\"}", -1, R, "errcode=-1", 0},
	{HD_IM_WECOM, 200, "<html>proxy</html>", -1, R, "bad-response", 0},
	{HD_IM_WECOM, 502, "<html>bad gateway</html>", -1, R, "502", 0},
	{HD_IM_DINGTALK, 200, "{\"errcode\":0,\"errmsg\":\"ok\"}", -1, D, "errcode=0", 0},
	{HD_IM_DINGTALK, 200, "{\"errcode\":130101,\"errmsg\":\"send too fast\"}", -1, R, "errcode=130101", 60000},
	{HD_IM_DINGTALK, 200, "{\"errcode\":310000,\"errmsg\":\"sign not match\"}", -1, F, "errcode=310000", 0},
	{HD_IM_DINGTALK, 200, "{\"errcode\":300001,\"errmsg\":\"token is not exist\"}", -1, F, "errcode=300001", 0},
	{HD_IM_DINGTALK, 200, "{\"errcode\":-1,\"errmsg\":\"系统繁忙\"}", -1, R, "errcode=-1", 0},
	{HD_IM_FEISHU, 200, "{\"code\":0,\"msg\":\"success\",\"data\":{}}", -1, D, "code=0", 0},
	{HD_IM_FEISHU, 200, "{\"StatusCode\":0,\"StatusMessage\":\"success\"}", -1, D, "code=0", 0},
	{HD_IM_FEISHU, 200, "{\"code\":9499,\"msg\":\"too many request\"}", -1, R, "code=9499", 60000},
	{HD_IM_FEISHU, 400, "{\"code\":11232,\"msg\":\"frequency limited\"}", -1, R, "code=11232", 60000},
	{HD_IM_FEISHU, 200, "{\"code\":19021,\"msg\":\"sign match fail\"}", -1, F, "code=19021", 0},
	{HD_IM_FEISHU, 429, "", 2000, R, "429", 2000},
	{HD_IM_GENERIC, 201, "{\"id\":\"abc\"}", -1, D, "201", 0},
	{HD_IM_GENERIC, 204, "", -1, D, "204", 0},
	{HD_IM_GENERIC, 503, "", 5000, R, "503", 5000},
	{HD_IM_GENERIC, 404, "nope", -1, F, "404", 0},
	{HD_IM_GENERIC, 302, "", -1, F, "302", 0},
};

static void test_responses_map_to_one_outcome_per_provider_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof map_rows / sizeof map_rows[0]; i++) {
		const struct map_row *r = &map_rows[i];
		hd_wire_result_t out;
		memset(&out, 0, sizeof out);
		hd_im_map_response(r->p, r->status, r->body, strlen(r->body), r->ra, &out);
		if (out.outcome != r->want || strcmp(out.provider_code, r->code) != 0 ||
		    out.retry_after_ms != r->want_ra)
			fail_msg("row %zu (%s %ld %s): got %s code=%s ra=%lld", i, hd_im_provider_name(r->p),
				 r->status, r->body, hd_outcome_name(out.outcome), out.provider_code,
				 (long long)out.retry_after_ms);
		assert_string_equal(out.provider, hd_im_provider_name(r->p));
	}
}

static void test_provider_text_lands_in_detail_and_generic_id_in_provider_id(void **state)
{
	(void)state;
	hd_wire_result_t out = {0};
	const char *b = "{\"errcode\":93000,\"errmsg\":\"invalid webhook url\"}";
	hd_im_map_response(HD_IM_WECOM, 200, b, strlen(b), -1, &out);
	assert_string_equal(out.detail, "invalid webhook url");
	b = "{\"id\":\"gen-77\"}";
	hd_im_map_response(HD_IM_GENERIC, 200, b, strlen(b), -1, &out);
	assert_string_equal(out.provider_id, "gen-77");
	hd_im_map_response(HD_IM_SLACK, 400, "invalid_payload\n", 16, -1, &out);
	assert_string_equal(out.detail, "invalid_payload");
	assert_string_equal(out.provider_id, "");
}

static void test_provider_names_round_trip(void **state)
{
	(void)state;
	for (int p = HD_IM_SLACK; p <= HD_IM_GENERIC; p++) {
		hd_im_provider_t back;
		assert_int_equal(hd_im_provider_parse(hd_im_provider_name((hd_im_provider_t)p), &back), 0);
		assert_int_equal(back, p);
	}
	hd_im_provider_t x;
	assert_int_equal(hd_im_provider_parse("telegram", &x), HD_E_INVALID);
}

/* ---- configuration ------------------------------------------------------- */

static void test_bad_configurations_are_refused_with_line_and_reason(void **state)
{
	(void)state;
	static const struct { const char *text, *want; } rows[] = {
		{"im = { colour = 1; };", "colour: unknown setting"},
		{"im = { timeout_ms = 5; };", "timeout_ms: 5 is outside"},
		{"im = { groups = ( { name = \"ops\"; provider = \"icq\"; url = \"http://x\"; } ); };", "provider: \"icq\""},
		{"im = { groups = ( { name = \"ops\"; provider = \"slack\"; url = \"ftp://x\"; } ); };", "url: expected"},
		{"im = { groups = ( { name = \"-bad\"; provider = \"slack\"; url = \"http://x\"; } ); };", "name: \"-bad\""},
		{"im = { groups = ( { name = \"ops\"; provider = \"slack\"; url = \"http://x\"; },\n"
		 "  { name = \"ops\"; provider = \"wecom\"; url = \"http://y\"; } ); };", "defined twice"},
		{"im = { groups = ( { name = \"ops\"; provider = \"slack\"; url = \"http://x\"; secret_env = \"X\"; } ); };", "does not sign"},
		{"im = { groups = ( { name = \"ops\"; provider = \"dingtalk\"; url = \"http://x\";\n secret_file = \"/nonexistent/s\"; } ); };", ":2: secret_file: secret_file /nonexistent/s"},
		{"im = { groups = ( { name = \"ops\"; provider = \"slack\"; } ); };", "url: required"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		got_t g = {0};
		char err[512] = "";
		void *im = open_text(rows[i].text, &g, err, sizeof err);
		if (im || !strstr(err, rows[i].want))
			fail_msg("row %zu: want \"%s\", got \"%s\"", i, rows[i].want, err);
		assert_int_equal(strncmp(err, "(config):", 9), 0);
	}
}

static void test_unknown_group_fails_from_handle_not_from_submit(void **state)
{
	(void)state;
	got_t g = {0};
	char err[256];
	void *im = open_text("im = { groups = ( { name = \"ops\"; provider = \"slack\"; url = \"http://127.0.0.1:9/x\"; } ); };",
			     &g, err, sizeof err);
	assert_non_null(im);
	assert_int_equal(hd_im_ops.submit(im, make_job(7, "nobody", "s", "b", 0)), 0);
	assert_int_equal(g.count, 0);
	assert_int_equal(hd_im_ops.in_flight(im), 1);
	assert_int_equal(hd_im_ops.timeout_ms(im, 0), 0);
	run(im, 1000);
	assert_int_equal(g.count, 1);
	assert_int_equal(g.delivery_id[0], 7);
	assert_int_equal(g.result[0].delivery_id, 7);
	assert_int_equal(g.result[0].attempt, 1);
	assert_int_equal(g.result[0].outcome, HD_OUTCOME_FAILED);
	assert_string_equal(g.result[0].provider_code, "unknown-group");
	hd_im_ops.close(&im);
	assert_null(im);
}

static void test_a_job_with_a_registered_endpoint_uses_that_entry_not_the_group_name(void **state)
{
	(void)state;
	got_t g = {0};
	char err[256];
	/* Entry "hook-a" is a wecom webhook over http; the group "sales" has
	 * no entry of its own. A confidential job shows which entry was used:
	 * its provider, refused for plain http before any request. */
	void *im = open_text("im = { groups = ( { name = \"hook-a\"; provider = \"wecom\"; url = \"http://127.0.0.1:9/send?key=k\"; },"
			     " { name = \"ops\"; provider = \"slack\"; url = \"http://127.0.0.1:9/x\"; } ); };",
			     &g, err, sizeof err);
	assert_non_null(im);
	hd_channel_job_t *j = make_job(11, "sales", "s", "b", HD_FLAG_CONFIDENTIAL);
	j->job.endpoint = hd_strdup("hook-a");
	assert_int_equal(hd_im_ops.submit(im, j), 0);
	/* The group "ops" exists as an entry, but its registry says "gone". */
	j = make_job(12, "ops", "s", "b", 0);
	j->job.endpoint = hd_strdup("gone");
	assert_int_equal(hd_im_ops.submit(im, j), 0);
	run(im, 1000);
	assert_int_equal(g.count, 2);
	assert_int_equal(g.delivery_id[0], 11);
	assert_string_equal(g.result[0].provider, "wecom");
	assert_string_equal(g.result[0].provider_code, "tls-required");
	assert_int_equal(g.delivery_id[1], 12);
	assert_int_equal(g.result[1].outcome, HD_OUTCOME_FAILED);
	assert_string_equal(g.result[1].provider_code, "unknown-group");
	assert_non_null(strstr(g.result[1].detail, "registered endpoint"));
	hd_im_ops.close(&im);
}

static void test_confidential_message_to_an_http_endpoint_fails_tls_required(void **state)
{
	(void)state;
	got_t g = {0};
	char err[256];
	void *im = open_text("im = { groups = ( { name = \"ops\"; provider = \"wecom\"; url = \"http://127.0.0.1:9/send?key=k\"; } ); };",
			     &g, err, sizeof err);
	assert_int_equal(hd_im_ops.submit(im, make_job(8, "ops", "s", "b", HD_FLAG_CONFIDENTIAL)), 0);
	run(im, 1000);
	assert_int_equal(g.count, 1);
	assert_int_equal(g.result[0].outcome, HD_OUTCOME_FAILED);
	assert_string_equal(g.result[0].provider_code, "tls-required");
	assert_string_equal(g.result[0].provider, "wecom");
	assert_null(strstr(g.result[0].detail, "key=k"));
	hd_im_ops.close(&im);
}

static void test_text_that_is_not_utf8_fails_instead_of_crashing_the_worker(void **state)
{
	(void)state;
	got_t g = {0};
	char err[256];
	void *im = open_text("im = { groups = ( { name = \"ops\"; provider = \"slack\"; url = \"http://127.0.0.1:9/x\"; } ); };",
			     &g, err, sizeof err);
	assert_int_equal(hd_im_ops.submit(im, make_job(3, "ops", "bad \xff subject", "b", 0)), 0);
	run(im, 1000);
	assert_int_equal(g.count, 1);
	assert_int_equal(g.result[0].outcome, HD_OUTCOME_FAILED);
	assert_string_equal(g.result[0].provider_code, "bad-text");
	hd_im_ops.close(&im);
}

static void test_refused_connection_is_retry_and_detail_has_no_token(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bind(fd, (struct sockaddr *)&a, sizeof a);
	socklen_t al = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &al);
	close(fd);
	char text[512];
	snprintf(text, sizeof text, "im = { groups = ( { name = \"ops\"; provider = \"slack\"; "
		 "url = \"http://127.0.0.1:%d/services/T0/B0/SECRETTOKEN\"; } ); };", ntohs(a.sin_port));
	got_t g = {0};
	char err[256];
	void *im = open_text(text, &g, err, sizeof err);
	assert_int_equal(hd_im_ops.submit(im, make_job(9, "ops", "s", "b", 0)), 0);
	run(im, 3000);
	assert_int_equal(g.count, 1);
	assert_int_equal(g.result[0].outcome, HD_OUTCOME_RETRY);
	assert_string_equal(g.result[0].provider_code, "transport");
	assert_null(strstr(g.result[0].detail, "SECRETTOKEN"));
	hd_im_ops.close(&im);
}

static void test_busy_at_max_in_flight_and_close_reports_the_rest_as_retry(void **state)
{
	(void)state;
	/* a listener that never accepts: requests are sent and never answered */
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bind(ls, (struct sockaddr *)&a, sizeof a);
	listen(ls, 16);
	socklen_t al = sizeof a;
	getsockname(ls, (struct sockaddr *)&a, &al);
	char text[512];
	snprintf(text, sizeof text, "im = { max_in_flight = 2; groups = ( { name = \"ops\"; "
		 "provider = \"generic\"; url = \"http://127.0.0.1:%d/hook\"; } ); };", ntohs(a.sin_port));
	got_t g = {0};
	char err[256];
	void *im = open_text(text, &g, err, sizeof err);
	assert_non_null(im);
	assert_int_equal(hd_im_ops.submit(im, make_job(1, "ops", "s", "b", 0)), 0);
	assert_int_equal(hd_im_ops.submit(im, make_job(2, "ops", "s", "b", 0)), 0);
	hd_channel_job_t *third = make_job(3, "ops", "s", "b", 0);
	assert_int_equal(hd_im_ops.submit(im, third), HD_E_BUSY);
	hd_channel_job_destroy(&third);   /* still ours after BUSY */
	run(im, 300);
	assert_int_equal(g.count, 0);
	assert_int_equal(hd_im_ops.in_flight(im), 2);
	hd_im_ops.close(&im);
	assert_int_equal(g.count, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(g.result[i].outcome, HD_OUTCOME_RETRY);
		assert_string_equal(g.result[i].provider_code, "worker-stopping");
	}
	close(ls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dingtalk_signature_matches_the_documented_algorithm),
		cmocka_unit_test(test_feishu_signature_keys_hmac_with_timestamp_and_secret_over_nothing),
		cmocka_unit_test(test_dingtalk_url_gets_timestamp_and_urlencoded_sign),
		cmocka_unit_test(test_slack_and_mattermost_post_text_with_subject_then_body),
		cmocka_unit_test(test_teams_posts_an_adaptive_card_message),
		cmocka_unit_test(test_wecom_and_dingtalk_post_msgtype_text_content),
		cmocka_unit_test(test_feishu_body_carries_timestamp_and_sign_only_with_a_secret),
		cmocka_unit_test(test_generic_posts_group_subject_body_and_ids),
		cmocka_unit_test(test_responses_map_to_one_outcome_per_provider_table),
		cmocka_unit_test(test_provider_text_lands_in_detail_and_generic_id_in_provider_id),
		cmocka_unit_test(test_provider_names_round_trip),
		cmocka_unit_test(test_bad_configurations_are_refused_with_line_and_reason),
		cmocka_unit_test(test_unknown_group_fails_from_handle_not_from_submit),
		cmocka_unit_test(test_a_job_with_a_registered_endpoint_uses_that_entry_not_the_group_name),
		cmocka_unit_test(test_confidential_message_to_an_http_endpoint_fails_tls_required),
		cmocka_unit_test(test_text_that_is_not_utf8_fails_instead_of_crashing_the_worker),
		cmocka_unit_test(test_refused_connection_is_retry_and_detail_has_no_token),
		cmocka_unit_test(test_busy_at_max_in_flight_and_close_reports_the_rest_as_retry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
