/*
 * NAME
 *	test_hd_sms - SMS driver: gateway requests, response mapping tables,
 *	configuration errors and the checks made before the network
 * DESCRIPTION
 *	The end-to-end path (real Kannel with fakesmsc, Twilio emulated by
 *	the provider sink) is tests/integration/32-sms-kannel-twilio.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hd_err.h"
#include "hd_mem.h"
#include "hd_msg.h"
#include "hd_sms.h"
#include "hd_time.h"

static hd_channel_job_t *make_job(int64_t id, const char *to, const char *body, unsigned flags)
{
	hd_channel_job_t *j = hd_calloc(1, sizeof *j);
	j->job.delivery_id = id;
	j->job.message_id = id * 10;
	j->job.attempt = 2;
	j->job.recipient = hd_strdup(to);
	j->job.kind = hd_strdup("to");
	j->job.msg = hd_msg_new(HD_CHANNEL_SMS);
	j->job.msg->sender = hd_strdup("otp");
	if (body)
		j->job.msg->body = hd_strdup(body);
	j->job.msg->flags = flags;
	return j;
}

typedef struct got {
	int count;
	hd_wire_result_t result[4];
} got_t;

static void on_done(void *arg, hd_channel_job_t *job, const hd_wire_result_t *r)
{
	got_t *g = arg;
	if (g->count < 4)
		g->result[g->count] = *r;
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
	void *sms = hd_sms_ops.open(config_lookup(&cfg, "sms"), NULL, on_done, g, err, errlen);
	config_destroy(&cfg);
	return sms;
}

static void run(void *sms, int64_t max_ms)
{
	int64_t end = hd_time_mono_ms() + max_ms;
	while (hd_sms_ops.in_flight(sms) && hd_time_mono_ms() < end) {
		zmq_pollitem_t items[16];
		size_t n = hd_sms_ops.poll_items(sms, items, 16);
		int64_t t = hd_sms_ops.timeout_ms(sms, hd_time_mono_ms());
		if (t < 0 || t > 50)
			t = 50;
		zmq_poll(items, (int)n, (long)t);
		hd_sms_ops.handle(sms, hd_time_mono_ms(), items, n);
	}
}

/* ---- requests ------------------------------------------------------------ */

static void test_kannel_url_carries_every_parameter_percent_encoded(void **state)
{
	(void)state;
	char *u = hd_sms_kannel_url("http://127.0.0.1:13013/", "herald", "p w&x", "+100",
				    "+8613800138000", "hi there", HD_SMS_GSM7);
	assert_string_equal(u, "http://127.0.0.1:13013/cgi-bin/sendsms?username=herald&password=p%20w%26x"
			       "&to=%2B8613800138000&from=%2B100&text=hi%20there&charset=UTF-8&coding=0");
	free(u);
}

static void test_kannel_url_uses_coding_2_for_ucs2_and_keeps_a_given_path(void **state)
{
	(void)state;
	char *u = hd_sms_kannel_url("http://gw:13013/cgi-bin/sendsms", "u", "p", NULL,
				    "+8613800138000", "验证码", HD_SMS_UCS2);
	assert_string_equal(u, "http://gw:13013/cgi-bin/sendsms?username=u&password=p&to=%2B8613800138000"
			       "&text=%E9%AA%8C%E8%AF%81%E7%A0%81&charset=UTF-8&coding=2");
	free(u);
}

static void test_twilio_form_has_to_from_and_body(void **state)
{
	(void)state;
	char *f = hd_sms_twilio_form("+15551234567", "+15550001111", "Code: 4821 & go");
	assert_string_equal(f, "To=%2B15551234567&From=%2B15550001111&Body=Code%3A%204821%20%26%20go");
	free(f);
}

/* ---- response mapping ---------------------------------------------------- */

#define D HD_OUTCOME_DELIVERED
#define R HD_OUTCOME_RETRY
#define F HD_OUTCOME_FAILED

static const struct map_row {
	hd_sms_provider_t p;
	long status;
	const char *body;
	int64_t ra;
	hd_outcome_kind_t want;
	const char *code;
	int64_t want_ra;
	const char *id;
} map_rows[] = {
	{HD_SMS_KANNEL, 202, "0: Accepted for delivery", -1, D, "0", 0, ""},
	{HD_SMS_KANNEL, 202, "3: Queued for later delivery", -1, D, "3", 0, ""},
	{HD_SMS_KANNEL, 403, "Authorization failed for sendsms", -1, F, "403", 0, ""},
	{HD_SMS_KANNEL, 400, "Missing receiver number, rejected", -1, F, "400", 0, ""},
	{HD_SMS_KANNEL, 503, "Sending failed.", -1, R, "503", 0, ""},
	{HD_SMS_KANNEL, 202, "something else", -1, F, "bad-response", 0, ""},
	{HD_SMS_TWILIO, 201, "{\"sid\":\"SM0123\",\"status\":\"queued\"}", -1, D, "201", 0, "SM0123"},
	{HD_SMS_TWILIO, 400, "{\"code\":21211,\"message\":\"Invalid 'To' Phone Number\",\"status\":400}", -1, F, "21211", 0, ""},
	{HD_SMS_TWILIO, 401, "{\"code\":20003,\"message\":\"Authentication Error\",\"status\":401}", -1, F, "20003", 0, ""},
	{HD_SMS_TWILIO, 429, "{\"code\":20429,\"message\":\"Too Many Requests\",\"status\":429}", -1, R, "20429", 0, ""},
	{HD_SMS_TWILIO, 429, "", 9000, R, "429", 9000, ""},
	{HD_SMS_TWILIO, 500, "{\"code\":20500,\"message\":\"internal\"}", -1, R, "20500", 0, ""},
	{HD_SMS_TWILIO, 404, "not json", -1, F, "404", 0, ""},
	{HD_SMS_GENERIC, 200, "{\"id\":\"x1\"}", -1, D, "200", 0, "x1"},
	{HD_SMS_GENERIC, 202, "", -1, D, "202", 0, ""},
	{HD_SMS_GENERIC, 429, "", 3000, R, "429", 3000, ""},
	{HD_SMS_GENERIC, 408, "", -1, R, "408", 0, ""},
	{HD_SMS_GENERIC, 422, "{\"error\":\"bad number\"}", -1, F, "422", 0, ""},
};

static void test_responses_map_to_one_outcome_per_gateway_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof map_rows / sizeof map_rows[0]; i++) {
		const struct map_row *r = &map_rows[i];
		hd_wire_result_t out;
		memset(&out, 0x41, sizeof out);
		out.provider_id[sizeof out.provider_id - 1] = '\0';
		hd_sms_map_response(r->p, r->status, r->body, strlen(r->body), r->ra, &out);
		if (out.outcome != r->want || strcmp(out.provider_code, r->code) != 0 ||
		    out.retry_after_ms != r->want_ra || strcmp(out.provider_id, r->id) != 0)
			fail_msg("row %zu (%s %ld %s): got %s code=%s ra=%lld id=%s", i,
				 hd_sms_provider_name(r->p), r->status, r->body, hd_outcome_name(out.outcome),
				 out.provider_code, (long long)out.retry_after_ms, out.provider_id);
		assert_string_equal(out.provider, hd_sms_provider_name(r->p));
	}
}

static void test_twilio_error_message_becomes_the_detail(void **state)
{
	(void)state;
	hd_wire_result_t out = {0};
	const char *b = "{\"code\":21211,\"message\":\"Invalid 'To' Phone Number: +1\",\"status\":400}";
	hd_sms_map_response(HD_SMS_TWILIO, 400, b, strlen(b), -1, &out);
	assert_string_equal(out.detail, "Invalid 'To' Phone Number: +1");
}

/* ---- configuration and the driver ---------------------------------------- */

static void test_bad_configurations_are_refused_with_a_reason(void **state)
{
	(void)state;
	static const struct { const char *text, *want; } rows[] = {
		{"sms = { provider = \"kannel\"; url = \"http://x\"; secret_env = \"HD_SMS_T\"; };", "username: required"},
		{"sms = { provider = \"twilio\"; url = \"https://x\"; username = \"AC1\"; secret_env = \"HD_SMS_T\"; };", "from: required"},
		{"sms = { provider = \"nexmo\"; url = \"http://x\"; };", "provider: \"nexmo\""},
		{"sms = { provider = \"kannel\"; url = \"http://x\"; username = \"u\"; };", "secret_file: required"},
		{"sms = { provider = \"kannel\"; url = \"http://x\"; username = \"u\"; secret_env = \"HD_SMS_UNSET\"; };", "HD_SMS_UNSET: not set"},
		{"sms = { provider = \"generic\"; url = \"http://x\"; max_segments = 0; };", "max_segments: 0 is outside"},
		{"sms = { provider = \"generic\"; url = \"http://x\"; sender = \"x\"; };", "sender: unknown setting"},
		{"sms = { provider = \"generic\"; url = \"http://x\"; secret_env = \"A\"; secret_file = \"B\"; };", "not both"},
	};
	setenv("HD_SMS_T", "token", 1);
	unsetenv("HD_SMS_UNSET");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		got_t g = {0};
		char err[512] = "";
		void *sms = open_text(rows[i].text, &g, err, sizeof err);
		if (sms || !strstr(err, rows[i].want))
			fail_msg("row %zu: want \"%s\", got \"%s\"", i, rows[i].want, err);
		assert_null(strstr(err, "token"));
	}
	got_t g = {0};
	char err[256] = "";
	assert_null(hd_sms_ops.open(NULL, NULL, on_done, &g, err, sizeof err));
}

static void test_text_over_max_segments_fails_too_long_before_any_request(void **state)
{
	(void)state;
	got_t g = {0};
	char err[256] = "";
	setenv("HD_SMS_T", "pw", 1);
	void *sms = open_text("sms = { provider = \"kannel\"; url = \"http://127.0.0.1:9\"; username = \"u\";"
			      " secret_env = \"HD_SMS_T\"; max_segments = 2; };", &g, err, sizeof err);
	assert_non_null(sms);
	char text[400];
	memset(text, 'a', 307);   /* 307 GSM-7 septets: 3 parts */
	text[307] = '\0';
	assert_int_equal(hd_sms_ops.submit(sms, make_job(5, "+15551234567", text, 0)), 0);
	assert_int_equal(g.count, 0);
	run(sms, 1000);
	assert_int_equal(g.count, 1);
	assert_int_equal(g.result[0].outcome, HD_OUTCOME_FAILED);
	assert_string_equal(g.result[0].provider_code, "too-long");
	assert_non_null(strstr(g.result[0].detail, "3 gsm7 segments"));
	assert_int_equal(g.result[0].delivery_id, 5);
	assert_int_equal(g.result[0].attempt, 2);
	hd_sms_ops.close(&sms);
	assert_null(sms);
}

static void test_confidential_sms_over_http_fails_tls_required(void **state)
{
	(void)state;
	got_t g = {0};
	char err[256] = "";
	setenv("HD_SMS_T", "pw", 1);
	void *sms = open_text("sms = { provider = \"kannel\"; url = \"http://127.0.0.1:9\"; username = \"u\";"
			      " secret_env = \"HD_SMS_T\"; };", &g, err, sizeof err);
	assert_int_equal(hd_sms_ops.submit(sms, make_job(6, "+15551234567", "code 1", HD_FLAG_CONFIDENTIAL)), 0);
	run(sms, 1000);
	assert_int_equal(g.count, 1);
	assert_int_equal(g.result[0].outcome, HD_OUTCOME_FAILED);
	assert_string_equal(g.result[0].provider_code, "tls-required");
	assert_string_equal(g.result[0].provider, "kannel");
	hd_sms_ops.close(&sms);
}

static void test_unreachable_gateway_is_retry_without_the_password_in_detail(void **state)
{
	(void)state;
	got_t g = {0};
	char err[256] = "";
	setenv("HD_SMS_T", "hunter2pw", 1);
	void *sms = open_text("sms = { provider = \"kannel\"; url = \"http://127.0.0.1:9\"; username = \"u\";"
			      " secret_env = \"HD_SMS_T\"; connect_timeout_ms = 500; };", &g, err, sizeof err);
	assert_int_equal(hd_sms_ops.submit(sms, make_job(7, "+15551234567", "code 1", 0)), 0);
	run(sms, 3000);
	assert_int_equal(g.count, 1);
	assert_int_equal(g.result[0].outcome, HD_OUTCOME_RETRY);
	assert_null(strstr(g.result[0].detail, "hunter2pw"));
	hd_sms_ops.close(&sms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kannel_url_carries_every_parameter_percent_encoded),
		cmocka_unit_test(test_kannel_url_uses_coding_2_for_ucs2_and_keeps_a_given_path),
		cmocka_unit_test(test_twilio_form_has_to_from_and_body),
		cmocka_unit_test(test_responses_map_to_one_outcome_per_gateway_table),
		cmocka_unit_test(test_twilio_error_message_becomes_the_detail),
		cmocka_unit_test(test_bad_configurations_are_refused_with_a_reason),
		cmocka_unit_test(test_text_over_max_segments_fails_too_long_before_any_request),
		cmocka_unit_test(test_confidential_sms_over_http_fails_tls_required),
		cmocka_unit_test(test_unreachable_gateway_is_retry_without_the_password_in_detail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
