/*
 * NAME
 *	test_hw_worker - the worker's protocol loop against a broker played by the test
 * DESCRIPTION
 *	The test binds a real ZeroMQ ROUTER on a free TCP port and plays
 *	heraldd; the worker under test runs the fake channel and is driven
 *	one turn at a time in the same thread (hw_worker_run_once), so no
 *	test depends on thread scheduling. Heartbeats are short (30 ms) to
 *	keep the suite fast. Covered: READY content, one RESULT per JOB
 *	with the driver's outcome, credit respected, credit announced no
 *	larger than the drivers' capacities, jobs for channels not
 *	served, a full driver, heartbeats when idle (and not when busy
 *	talking), reconnection with a new identity after 3 silent beats with
 *	jobs in flight reporting on the new connection, BYE on stop, jobs
 *	refused after BYE, the grace period, jobs given back on destroy,
 *	undecodable jobs answered and garbage ignored, and confidential
 *	content sealed at rest (POLICY K2): opened before the driver sees it,
 *	or failed with code "seal" when this worker has no key for it or it
 *	was tampered with.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "hd_err.h"
#include "hd_mem.h"
#include "hd_seal.h"
#include "hd_fake.h"
#include "hd_log.h"
#include "hd_time.h"
#include "hd_wire.h"
#include "hw_worker.h"

#define HEARTBEAT_MS 30
#define WAIT_MS 3000   /* for frames that must come; generous for loaded machines */

static const hw_driver_t fake_driver = {"fake", &hd_fake_ops, hd_fake_channel};
static const hd_channel_ops_t many_ops;   /* a driver with many poll items, below */

typedef struct fixture {
	void *ctx;
	void *router;
	char endpoint[64];
	config_t cfg;
	hw_worker_t *w;
	uint8_t peer[256];      /* identity of the worker's last frame */
	size_t peer_len;
	bool beat;              /* play a live broker: send HB every beat */
	int64_t last_beat_ms;
} fixture_t;

static int setup(void **state)
{
	hd_log_init("test_hw_worker", HD_LOG_ERROR);
	fixture_t *f = calloc(1, sizeof *f);
	f->ctx = zmq_ctx_new();
	f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
	int linger = 0;
	zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof linger);
	assert_int_equal(zmq_bind(f->router, "tcp://127.0.0.1:*"), 0);
	size_t len = sizeof f->endpoint;
	assert_int_equal(zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, f->endpoint, &len), 0);
	config_init(&f->cfg);
	f->beat = true;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	hw_worker_destroy(&f->w);
	zmq_close(f->router);
	zmq_ctx_term(f->ctx);
	config_destroy(&f->cfg);
	free(f);
	return 0;
}

/* Start a worker running the fake driver configured with fake_settings. */
static void start_worker(fixture_t *f, uint32_t credit, int64_t grace_ms,
			 const char *fake_settings)
{
	char text[512];
	snprintf(text, sizeof text, "fake = { %s };", fake_settings);
	assert_int_equal(config_read_string(&f->cfg, text), CONFIG_TRUE);
	hw_worker_options_t opts = {
		.broker = f->endpoint,
		.name = "test-worker",
		.credit = credit,
		.heartbeat_ms = HEARTBEAT_MS,
		.shutdown_grace_ms = grace_ms,
	};
	f->w = hw_worker_new(f->ctx, &opts);
	char err[256];
	assert_int_equal(hw_worker_add_driver(f->w, &fake_driver, config_lookup(&f->cfg, "fake"),
					      err, sizeof err), HD_OK);
	assert_int_equal(hw_worker_start(f->w, err, sizeof err), HD_OK);
}

static void broker_send(fixture_t *f, const uint8_t *buf, size_t len)
{
	assert_true(f->peer_len > 0);
	assert_true(zmq_send(f->router, f->peer, f->peer_len, ZMQ_SNDMORE) >= 0);
	assert_true(zmq_send(f->router, buf, len, 0) >= 0);
}

static void broker_send_frame(fixture_t *f, const hd_wire_frame_t *frame)
{
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_wire_encode(frame, &buf, &len), HD_OK);
	broker_send(f, buf, len);
	free(buf);
}

/*
 * Turn the worker and watch the ROUTER until a frame arrives (true, *out
 * filled, f->peer set) or timeout_ms passes (false). While f->beat, the
 * broker sends HB every beat, as heraldd does.
 */
static bool next_frame(fixture_t *f, hd_wire_frame_t *out, int64_t timeout_ms)
{
	int64_t deadline = hd_time_mono_ms() + timeout_ms;
	for (;;) {
		int64_t now = hd_time_mono_ms();
		if (f->beat && f->peer_len > 0 && now - f->last_beat_ms >= HEARTBEAT_MS) {
			hd_wire_frame_t hb = {.type = HD_WIRE_HEARTBEAT};
			broker_send_frame(f, &hb);
			f->last_beat_ms = now;
		}
		zmq_pollitem_t item = {f->router, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&item, 1, 0) == 1) {
			zmq_msg_t id, body;
			zmq_msg_init(&id);
			zmq_msg_init(&body);
			assert_true(zmq_msg_recv(&id, f->router, 0) >= 0);
			assert_true(zmq_msg_more(&id));
			assert_true(zmq_msg_recv(&body, f->router, 0) >= 0);
			assert_false(zmq_msg_more(&body)); /* single-part frames */
			f->peer_len = zmq_msg_size(&id);
			memcpy(f->peer, zmq_msg_data(&id), f->peer_len);
			hd_decode_error_t err;
			int rc = hd_wire_decode(zmq_msg_data(&body), zmq_msg_size(&body), out, &err);
			if (rc != HD_OK)
				fail_msg("worker sent a bad frame: %s %s %s", hd_err_name(rc), err.field,
					 err.reason);
			zmq_msg_close(&id);
			zmq_msg_close(&body);
			return true;
		}
		if (now >= deadline)
			return false;
		assert_int_equal(hw_worker_run_once(f->w, -1, 2), HD_OK);
	}
}

/* The next frame that is not a heartbeat; fails the test after WAIT_MS. */
static void expect_frame(fixture_t *f, hd_wire_type_t type, hd_wire_frame_t *out)
{
	int64_t deadline = hd_time_mono_ms() + WAIT_MS;
	for (;;) {
		int64_t left = deadline - hd_time_mono_ms();
		if (left < 0 || !next_frame(f, out, left))
			fail_msg("no %s frame within %d ms", hd_wire_type_name(type), WAIT_MS);
		if (out->type == HD_WIRE_HEARTBEAT && type != HD_WIRE_HEARTBEAT)
			continue;
		if (out->type != type)
			fail_msg("got %s, want %s", hd_wire_type_name(out->type),
				 hd_wire_type_name(type));
		return;
	}
}

/* Nothing but heartbeats for ms milliseconds. */
static void expect_quiet(fixture_t *f, int64_t ms)
{
	int64_t deadline = hd_time_mono_ms() + ms;
	hd_wire_frame_t fr;
	for (;;) {
		int64_t left = deadline - hd_time_mono_ms();
		if (left <= 0 || !next_frame(f, &fr, left))
			return;
		if (fr.type != HD_WIRE_HEARTBEAT)
			fail_msg("unexpected %s frame", hd_wire_type_name(fr.type));
	}
}

static void send_job(fixture_t *f, int64_t id, hd_channel_t ch, const char *to)
{
	hd_wire_frame_t j = {.type = HD_WIRE_JOB};
	j.u.job.delivery_id = id;
	j.u.job.message_id = 1000 + id;
	j.u.job.attempt = 2;
	j.u.job.lease_ms = 60000;
	j.u.job.recipient = (char *)to;
	j.u.job.kind = (char *)"to";
	j.u.job.klass = HD_CLASS_GENERAL;
	hd_msg_t *m = hd_msg_new(ch);
	m->sender = strdup("sender@example.com");
	hd_msg_add_to(m, to);
	m->body = strdup("hello");
	if (ch == HD_CHANNEL_SMS)
		m->purpose = HD_PURPOSE_SERVICE;
	j.u.job.msg = m;
	broker_send_frame(f, &j);
	hd_msg_destroy(&m);
}

static void expect_ready(fixture_t *f)
{
	hd_wire_frame_t fr;
	expect_frame(f, HD_WIRE_READY, &fr);
}

static void test_ready_announces_name_channels_credit_and_heartbeat(void **state)
{
	fixture_t *f = *state;
	start_worker(f, 7, 1000, "channel = \"sms\";");
	assert_int_equal(hw_worker_channels(f->w), 1u << HD_CHANNEL_SMS);
	hd_wire_frame_t fr;
	/* READY is the first frame of the connection. */
	assert_true(next_frame(f, &fr, WAIT_MS));
	assert_int_equal(fr.type, HD_WIRE_READY);
	assert_string_equal(fr.u.ready.name, "test-worker");
	assert_int_equal(fr.u.ready.channels, 1u << HD_CHANNEL_SMS);
	assert_int_equal(fr.u.ready.credit, 7);
	assert_int_equal(fr.u.ready.heartbeat_ms, HEARTBEAT_MS);
}

static void test_every_job_gets_one_result_with_the_drivers_outcome(void **state)
{
	fixture_t *f = *state;
	start_worker(f, 8, 1000, "retry_after_ms = 900;");
	expect_ready(f);
	send_job(f, 11, HD_CHANNEL_EMAIL, "alice@example.com");
	send_job(f, 12, HD_CHANNEL_EMAIL, "erin+fail@example.com");
	send_job(f, 13, HD_CHANNEL_EMAIL, "dave+retry@example.com");
	bool seen[3] = {false, false, false};
	for (int i = 0; i < 3; i++) {
		hd_wire_frame_t fr;
		expect_frame(f, HD_WIRE_RESULT, &fr);
		const hd_wire_result_t *r = &fr.u.result;
		assert_true(r->delivery_id >= 11 && r->delivery_id <= 13);
		assert_false(seen[r->delivery_id - 11]);
		seen[r->delivery_id - 11] = true;
		assert_int_equal(r->attempt, 2);
		assert_string_equal(r->provider, "fake");
		switch (r->delivery_id) {
		case 11:
			assert_int_equal(r->outcome, HD_OUTCOME_DELIVERED);
			assert_string_equal(r->provider_code, "250");
			break;
		case 12:
			assert_int_equal(r->outcome, HD_OUTCOME_FAILED);
			assert_string_equal(r->provider_code, "550");
			break;
		default:
			assert_int_equal(r->outcome, HD_OUTCOME_RETRY);
			assert_int_equal(r->retry_after_ms, 900);
			break;
		}
	}
	expect_quiet(f, 3 * HEARTBEAT_MS);
	hw_worker_stats_t s = hw_worker_stats(f->w);
	assert_int_equal(s.jobs, 3);
	assert_int_equal(s.delivered, 1);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.retried, 1);
	assert_int_equal(s.in_flight, 0);
}

static void test_a_job_beyond_the_announced_credit_is_answered_retry_at_once(void **state)
{
	fixture_t *f = *state;
	start_worker(f, 2, 1000, "delay_ms = 400;");
	expect_ready(f);
	send_job(f, 1, HD_CHANNEL_EMAIL, "a@example.com");
	send_job(f, 2, HD_CHANNEL_EMAIL, "b@example.com");
	send_job(f, 3, HD_CHANNEL_EMAIL, "c@example.com");
	hd_wire_frame_t fr;
	int64_t t0 = hd_time_mono_ms();
	expect_frame(f, HD_WIRE_RESULT, &fr);
	/* The third job, answered long before the driver's 400 ms. */
	assert_true(hd_time_mono_ms() - t0 < 300);
	assert_int_equal(fr.u.result.delivery_id, 3);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(fr.u.result.provider_code, "over_credit");
	assert_int_equal(hw_worker_stats(f->w).in_flight, 2);
	/* Credit comes back with each RESULT: a new job is taken again. */
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_DELIVERED);
	send_job(f, 4, HD_CHANNEL_EMAIL, "d@example.com");
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_DELIVERED);
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 4);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_DELIVERED);
}

static void test_a_job_for_a_channel_not_served_is_failed(void **state)
{
	fixture_t *f = *state;
	start_worker(f, 4, 1000, "channel = \"email\";");
	expect_ready(f);
	send_job(f, 5, HD_CHANNEL_SMS, "+8613800138000");
	hd_wire_frame_t fr;
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 5);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_FAILED);
	assert_string_equal(fr.u.result.provider, "herald-worker");
	assert_string_equal(fr.u.result.provider_code, "no_channel");
	assert_non_null(strstr(fr.u.result.detail, "channel not served"));
}

/* Start a worker with one fake driver per group of text (groups a, b, ...). */
static void start_worker_groups(fixture_t *f, uint32_t credit, const char *text, size_t groups)
{
	assert_int_equal(config_read_string(&f->cfg, text), CONFIG_TRUE);
	hw_worker_options_t opts = {f->endpoint, "test-worker", credit, HEARTBEAT_MS, 1000};
	f->w = hw_worker_new(f->ctx, &opts);
	char err[256];
	for (size_t i = 0; i < groups; i++) {
		char name[2] = {(char)('a' + i), '\0'};
		assert_int_equal(hw_worker_add_driver(f->w, &fake_driver, config_lookup(&f->cfg, name),
						      err, sizeof err), HD_OK);
	}
	assert_int_equal(hw_worker_start(f->w, err, sizeof err), HD_OK);
}

static uint32_t announced_credit(fixture_t *f)
{
	hd_wire_frame_t fr;
	expect_frame(f, HD_WIRE_READY, &fr);
	return fr.u.ready.credit;
}

static void test_ready_announces_no_more_credit_than_the_driver_holds(void **state)
{
	fixture_t *f = *state;
	start_worker(f, 64, 1000, "max_in_flight = 3; delay_ms = 300;");
	assert_int_equal(announced_credit(f), 3);
	/* heraldd keeps to it, so every job it sends is taken, none is "busy". */
	for (int64_t id = 1; id <= 3; id++)
		send_job(f, id, HD_CHANNEL_EMAIL, "a@example.com");
	expect_quiet(f, 100);
	assert_int_equal(hw_worker_stats(f->w).in_flight, 3);
	assert_int_equal(hw_worker_stats(f->w).refused, 0);
	/* A fourth is beyond the announced credit, not a driver refusal. */
	send_job(f, 4, HD_CHANNEL_EMAIL, "d@example.com");
	hd_wire_frame_t fr;
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 4);
	assert_string_equal(fr.u.result.provider_code, "over_credit");
}

static void test_ready_announces_the_configured_credit_when_the_drivers_hold_more(void **state)
{
	fixture_t *f = *state;
	start_worker(f, 5, 1000, "max_in_flight = 100;");
	assert_int_equal(announced_credit(f), 5);
}

static void test_ready_announces_at_most_the_sum_of_the_drivers_capacities(void **state)
{
	fixture_t *f = *state;
	start_worker_groups(f, 1000, "a = { channel = \"email\"; max_in_flight = 2; };\n"
				     "b = { channel = \"sms\"; max_in_flight = 5; };\n", 2);
	assert_int_equal(announced_credit(f), 7);
}

static void test_a_driver_without_a_capacity_leaves_the_configured_credit(void **state)
{
	fixture_t *f = *state;
	hw_worker_options_t opts = {f->endpoint, "w", 9, HEARTBEAT_MS, 0};
	f->w = hw_worker_new(f->ctx, &opts);
	char err[256];
	/* many_ops (below) has no capacity member: no limit of its own. */
	static const hw_driver_t many = {"many", &many_ops, NULL};
	assert_int_equal(hw_worker_add_driver(f->w, &many, NULL, err, sizeof err), HD_OK);
	assert_int_equal(hw_worker_start(f->w, err, sizeof err), HD_OK);
	assert_int_equal(announced_credit(f), 9);
}

static void test_a_full_driver_makes_the_job_retry_busy(void **state)
{
	fixture_t *f = *state;
	/* One credit for both channels (1 + 4): the email driver alone can be full. */
	start_worker_groups(f, 5, "a = { channel = \"email\"; max_in_flight = 1; delay_ms = 300; };\n"
				  "b = { channel = \"sms\"; max_in_flight = 4; };\n", 2);
	assert_int_equal(announced_credit(f), 5);
	send_job(f, 1, HD_CHANNEL_EMAIL, "a@example.com");
	send_job(f, 2, HD_CHANNEL_EMAIL, "b@example.com");
	hd_wire_frame_t fr;
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 2);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(fr.u.result.provider_code, "busy");
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 1);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_DELIVERED);
}

static void test_a_heartbeat_is_sent_when_idle_and_only_then(void **state)
{
	fixture_t *f = *state;
	start_worker(f, 4, 1000, "");
	expect_ready(f);
	/* Idle for 10 beats: about one HB per beat, never a burst. */
	int beats = 0;
	int64_t t0 = hd_time_mono_ms();
	hd_wire_frame_t fr;
	while (hd_time_mono_ms() - t0 < 10 * HEARTBEAT_MS) {
		if (next_frame(f, &fr, 10 * HEARTBEAT_MS - (hd_time_mono_ms() - t0)) &&
		    fr.type == HD_WIRE_HEARTBEAT)
			beats++;
	}
	assert_true(beats >= 5 && beats <= 11);
	/* A steady flow of RESULTs counts as sending: no HB in between. */
	int hbs = 0;
	for (int i = 0; i < 8; i++) {
		send_job(f, 100 + i, HD_CHANNEL_EMAIL, "a@example.com");
		do
			assert_true(next_frame(f, &fr, WAIT_MS));
		while (fr.type == HD_WIRE_HEARTBEAT && ++hbs);
		assert_int_equal(fr.type, HD_WIRE_RESULT);
	}
	assert_true(hbs <= 2);
	assert_int_equal(hw_worker_stats(f->w).reconnects, 0);
}

static void test_silence_from_the_broker_makes_the_worker_reconnect_and_report_there(void **state)
{
	fixture_t *f = *state;
	start_worker(f, 4, 1000, "delay_ms = 250;");
	hd_wire_frame_t fr;
	expect_frame(f, HD_WIRE_READY, &fr);
	uint8_t first_peer[256];
	size_t first_len = f->peer_len;
	memcpy(first_peer, f->peer, first_len);
	send_job(f, 21, HD_CHANNEL_EMAIL, "a@example.com");
	/* The broker falls silent: after 3 beats the worker gives up on it. */
	f->beat = false;
	int64_t t0 = hd_time_mono_ms();
	expect_frame(f, HD_WIRE_READY, &fr);
	int64_t silent = hd_time_mono_ms() - t0;
	assert_true(silent >= 2 * HEARTBEAT_MS);
	assert_int_equal(fr.u.ready.credit, 4);
	/* A new connection, so a new identity at the ROUTER. */
	assert_false(f->peer_len == first_len && memcmp(f->peer, first_peer, first_len) == 0);
	assert_int_equal(hw_worker_stats(f->w).reconnects, 1);
	/* The job taken before keeps going and reports on the new connection. */
	f->beat = true;
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 21);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_DELIVERED);
	assert_false(f->peer_len == first_len && memcmp(f->peer, first_peer, first_len) == 0);
	/* With the broker beating again there is no further reconnect. */
	expect_quiet(f, 6 * HEARTBEAT_MS);
	assert_int_equal(hw_worker_stats(f->w).reconnects, 1);
}

static void test_stop_sends_bye_refuses_new_jobs_and_waits_for_jobs_in_flight(void **state)
{
	fixture_t *f = *state;
	start_worker(f, 4, 5000, "delay_ms = 200;");
	expect_ready(f);
	send_job(f, 31, HD_CHANNEL_EMAIL, "a@example.com");
	hd_wire_frame_t fr;
	/* Let the job reach the driver. */
	while (hw_worker_stats(f->w).in_flight == 0)
		assert_int_equal(hw_worker_run_once(f->w, -1, 5), HD_OK);
	hw_worker_stop(f->w);
	hw_worker_stop(f->w); /* idempotent: one BYE */
	assert_false(hw_worker_is_done(f->w));
	expect_frame(f, HD_WIRE_BYE, &fr);
	send_job(f, 32, HD_CHANNEL_EMAIL, "b@example.com");
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 32);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(fr.u.result.provider_code, "stopping");
	assert_false(hw_worker_is_done(f->w));
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 31);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_DELIVERED);
	assert_true(hw_worker_is_done(f->w));
}

static void test_after_the_grace_period_destroy_gives_back_jobs_as_retry(void **state)
{
	fixture_t *f = *state;
	start_worker(f, 4, 50, "delay_ms = 60000;");
	expect_ready(f);
	send_job(f, 41, HD_CHANNEL_EMAIL, "a@example.com");
	send_job(f, 42, HD_CHANNEL_EMAIL, "b+slow@example.com");
	while (hw_worker_stats(f->w).in_flight < 2)
		assert_int_equal(hw_worker_run_once(f->w, -1, 5), HD_OK);
	hw_worker_stop(f->w);
	int64_t t0 = hd_time_mono_ms();
	while (!hw_worker_is_done(f->w))
		assert_int_equal(hw_worker_run_once(f->w, -1, -1), HD_OK);
	int64_t waited = hd_time_mono_ms() - t0;
	assert_true(waited >= 45 && waited < 1000);
	hw_worker_destroy(&f->w);
	assert_null(f->w);
	f->beat = false;
	hd_wire_frame_t fr;
	bool got[2] = {false, false};
	for (int i = 0; i < 3; i++) { /* BYE and two RESULTs, in that order */
		int64_t deadline = hd_time_mono_ms() + WAIT_MS;
		zmq_pollitem_t item = {f->router, 0, ZMQ_POLLIN, 0};
		do
			assert_true(hd_time_mono_ms() < deadline);
		while (zmq_poll(&item, 1, 10) != 1);
		zmq_msg_t id, body;
		zmq_msg_init(&id);
		zmq_msg_init(&body);
		zmq_msg_recv(&id, f->router, 0);
		zmq_msg_recv(&body, f->router, 0);
		assert_int_equal(hd_wire_decode(zmq_msg_data(&body), zmq_msg_size(&body), &fr, NULL),
				 HD_OK);
		zmq_msg_close(&id);
		zmq_msg_close(&body);
		if (fr.type == HD_WIRE_HEARTBEAT) {
			i--;
			continue;
		}
		if (i == 0) {
			assert_int_equal(fr.type, HD_WIRE_BYE);
			continue;
		}
		assert_int_equal(fr.type, HD_WIRE_RESULT);
		assert_int_equal(fr.u.result.outcome, HD_OUTCOME_RETRY);
		assert_string_equal(fr.u.result.detail, "worker stopping");
		got[fr.u.result.delivery_id - 41] = true;
	}
	assert_true(got[0] && got[1]);
}

static void test_an_undecodable_job_is_answered_failed_and_garbage_is_ignored(void **state)
{
	fixture_t *f = *state;
	start_worker(f, 4, 1000, "");
	expect_ready(f);
	/* Garbage and a multipart message: logged, counted, not answered. */
	broker_send(f, (const uint8_t *)"\xc1garbage", 8);
	assert_true(zmq_send(f->router, f->peer, f->peer_len, ZMQ_SNDMORE) >= 0);
	assert_true(zmq_send(f->router, "a", 1, ZMQ_SNDMORE) >= 0);
	assert_true(zmq_send(f->router, "b", 1, 0) >= 0);
	/* A READY from the broker makes no sense either. */
	hd_wire_frame_t ready = {.type = HD_WIRE_READY};
	strcpy(ready.u.ready.name, "broker");
	ready.u.ready.channels = 1;
	ready.u.ready.credit = 1;
	ready.u.ready.heartbeat_ms = 100;
	broker_send_frame(f, &ready);
	expect_quiet(f, 4 * HEARTBEAT_MS);
	assert_int_equal(hw_worker_stats(f->w).bad_frames, 3);

	/* A job whose message breaks the rules can never succeed: failed, with the reason. */
	send_job(f, 0x33, HD_CHANNEL_EMAIL, "bad"); /* not an email address */
	hd_wire_frame_t fr;
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 0x33);
	assert_int_equal(fr.u.result.attempt, 2);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_FAILED);
	assert_string_equal(fr.u.result.provider_code, "invalid");
	assert_non_null(strstr(fr.u.result.detail, "msg.to[0]"));
	assert_int_equal(hw_worker_stats(f->w).bad_frames, 4);
}

static void test_a_second_driver_for_a_served_channel_is_refused(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(config_read_string(&f->cfg, "a = { channel = \"im\"; };\n"
					    "b = { channel = \"im\"; };\n"
					    "c = { colour = 1; };\n"), CONFIG_TRUE);
	hw_worker_options_t opts = {f->endpoint, "w", 1, 100, 0};
	f->w = hw_worker_new(f->ctx, &opts);
	char err[256];
	assert_int_equal(hw_worker_add_driver(f->w, &fake_driver, config_lookup(&f->cfg, "a"), err,
					      sizeof err), HD_OK);
	assert_int_equal(hw_worker_add_driver(f->w, &fake_driver, config_lookup(&f->cfg, "b"), err,
					      sizeof err), HD_E_CONFIG);
	assert_non_null(strstr(err, "serves channel im, already served by fake"));
	assert_int_equal(hw_worker_channels(f->w), 1u << HD_CHANNEL_IM);
	/* A driver refusing its group makes add_driver fail with the driver's reason. */
	assert_int_equal(hw_worker_add_driver(f->w, &fake_driver, config_lookup(&f->cfg, "c"), err,
					      sizeof err), HD_E_CONFIG);
	assert_non_null(strstr(err, "colour: unknown setting"));
	/* Without a driver there is nothing to start. */
	hw_worker_t *empty = hw_worker_new(f->ctx, &opts);
	assert_int_equal(hw_worker_start(empty, err, sizeof err), HD_E_CONFIG);
	hw_worker_destroy(&empty);
	/* Nor with what READY cannot announce. */
	hw_worker_options_t bad = {f->endpoint, "no spaces", 1, 100, 0};
	hw_worker_t *w = hw_worker_new(f->ctx, &bad);
	assert_int_equal(hw_worker_add_driver(w, &fake_driver, NULL, err, sizeof err), HD_OK);
	assert_int_equal(hw_worker_start(w, err, sizeof err), HD_E_CONFIG);
	assert_non_null(strstr(err, "cannot announce name \"no spaces\""));
	hw_worker_destroy(&w);
	hw_worker_destroy(NULL);
}

/* ---- a driver with more poll items than the worker starts with ------------- */

#define MANY_ITEMS 150

typedef struct many {
	int fds[2];
	size_t handled_items;   /* count passed to handle() last time */
	bool last_ready;        /* the last item came back readable */
} many_t;

static many_t *many_instance;

static void *many_open(const config_setting_t *cfg, void *ctx, hd_channel_done_fn done,
		       void *arg, char *err, size_t errlen)
{
	(void)cfg, (void)ctx, (void)done, (void)arg, (void)err, (void)errlen;
	many_t *m = calloc(1, sizeof *m);
	assert_int_equal(pipe(m->fds), 0);
	many_instance = m;
	return m;
}

static size_t many_poll_items(void *self, zmq_pollitem_t *items, size_t max)
{
	many_t *m = self;
	size_t n = max < MANY_ITEMS ? max : MANY_ITEMS;
	for (size_t i = 0; i < n; i++)
		items[i] = (zmq_pollitem_t){NULL, m->fds[0], ZMQ_POLLIN, 0};
	return n;
}

static void many_handle(void *self, int64_t now, const zmq_pollitem_t *items, size_t count)
{
	(void)now;
	many_t *m = self;
	m->handled_items = count;
	m->last_ready = count == MANY_ITEMS && (items[count - 1].revents & ZMQ_POLLIN);
}

static int many_submit(void *self, hd_channel_job_t *job)
{
	(void)self, (void)job;
	return HD_E_BUSY;
}

static int64_t many_timeout(void *self, int64_t now)
{
	(void)self, (void)now;
	return -1;
}

static size_t many_in_flight(void *self)
{
	(void)self;
	return 0;
}

static void many_close(void **self_p)
{
	many_t *m = *self_p;
	close(m->fds[0]);
	close(m->fds[1]);
	free(m);
	*self_p = NULL;
}

static const hd_channel_ops_t many_ops = {
	"many", HD_CHANNEL_IM, many_open, many_submit, many_poll_items, many_handle,
	many_timeout, many_in_flight, many_close, NULL,
};

static void test_every_poll_item_of_every_driver_is_watched(void **state)
{
	fixture_t *f = *state;
	hw_worker_options_t opts = {f->endpoint, "w", 4, HEARTBEAT_MS, 0};
	f->w = hw_worker_new(f->ctx, &opts);
	char err[256];
	static const hw_driver_t many = {"many", &many_ops, NULL};
	assert_int_equal(hw_worker_add_driver(f->w, &many, NULL, err, sizeof err), HD_OK);
	assert_int_equal(hw_worker_start(f->w, err, sizeof err), HD_OK);
	assert_int_equal(write(many_instance->fds[1], "x", 1), 1);
	assert_int_equal(hw_worker_run_once(f->w, -1, 100), HD_OK);
	assert_int_equal(many_instance->handled_items, MANY_ITEMS);
	assert_true(many_instance->last_ready);
}

/* ---- sealed confidential content (POLICY K2) -------------------------------- */

/* A JOB for a confidential message whose body (with the fake driver's "+fail") is sealed. */
static void send_sealed_job(fixture_t *f, int64_t id, const hd_seal_t *seal, bool tamper)
{
	hd_wire_frame_t j = {.type = HD_WIRE_JOB};
	j.u.job.delivery_id = id;
	j.u.job.message_id = 1000 + id;
	j.u.job.attempt = 1;
	j.u.job.lease_ms = 60000;
	j.u.job.recipient = (char *)"bob@example.com";
	j.u.job.kind = (char *)"to";
	j.u.job.klass = HD_CLASS_GENERAL;
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = hd_strdup("sender@example.com");
	hd_msg_add_to(m, "bob@example.com");
	m->body = hd_strdup("the driver sees +fail only once opened");
	m->flags = HD_FLAG_CONFIDENTIAL;
	assert_int_equal(hd_seal_msg(seal, m), HD_OK);
	assert_null(strstr(m->body, "+fail"));
	if (tamper)
		m->body[strlen(m->body) - 6] = m->body[strlen(m->body) - 6] == 'A' ? 'B' : 'A';
	j.u.job.msg = m;
	broker_send_frame(f, &j);
	hd_msg_destroy(&m);
}

static void test_sealed_content_is_opened_for_the_driver_or_the_job_fails_seal(void **state)
{
	fixture_t *f = *state;
	char dir[] = "/tmp/test-hw-worker-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/k1.key", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789abcdef0123456789ABCDEF", 32), 32);
	close(fd);
	hd_seal_t *seal = hd_seal_keyring_new();
	char err[512];
	assert_int_equal(hd_seal_keyring_add_key_file(seal, "k1", path, err, sizeof err), HD_OK);
	assert_int_equal(hd_seal_set_current(seal, "k1"), HD_OK);

	start_worker(f, 8, 1000, "");
	expect_ready(f);
	/* no keys: failed at once, the driver never sees the job */
	send_sealed_job(f, 31, seal, false);
	hd_wire_frame_t fr;
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 31);
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_FAILED);
	assert_string_equal(fr.u.result.provider, "herald-worker");
	assert_string_equal(fr.u.result.provider_code, "seal");
	assert_non_null(strstr(fr.u.result.detail, "body: unknown key id k1"));
	assert_non_null(strstr(fr.u.result.detail, "no keys"));

	/* with the key: the fake driver reads the plaintext body and obeys its "+fail" */
	hw_worker_attach_seal(f->w, seal);
	send_sealed_job(f, 32, seal, false);
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 32);
	assert_string_equal(fr.u.result.provider, "fake");
	assert_int_equal(fr.u.result.outcome, HD_OUTCOME_FAILED);
	assert_string_equal(fr.u.result.provider_code, "550");

	/* tampered: failed "seal", never sent */
	send_sealed_job(f, 33, seal, true);
	expect_frame(f, HD_WIRE_RESULT, &fr);
	assert_int_equal(fr.u.result.delivery_id, 33);
	assert_string_equal(fr.u.result.provider_code, "seal");
	assert_non_null(strstr(fr.u.result.detail, "authentication failed"));
	hw_worker_stats_t st = hw_worker_stats(f->w);
	assert_int_equal(st.refused, 2);
	assert_int_equal(st.failed, 3);

	hw_worker_destroy(&f->w);
	hd_seal_keyring_destroy(&seal);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_ready_announces_name_channels_credit_and_heartbeat),
		T(test_every_job_gets_one_result_with_the_drivers_outcome),
		T(test_a_job_beyond_the_announced_credit_is_answered_retry_at_once),
		T(test_a_job_for_a_channel_not_served_is_failed),
		T(test_ready_announces_no_more_credit_than_the_driver_holds),
		T(test_ready_announces_the_configured_credit_when_the_drivers_hold_more),
		T(test_ready_announces_at_most_the_sum_of_the_drivers_capacities),
		T(test_a_driver_without_a_capacity_leaves_the_configured_credit),
		T(test_a_full_driver_makes_the_job_retry_busy),
		T(test_a_heartbeat_is_sent_when_idle_and_only_then),
		T(test_silence_from_the_broker_makes_the_worker_reconnect_and_report_there),
		T(test_stop_sends_bye_refuses_new_jobs_and_waits_for_jobs_in_flight),
		T(test_after_the_grace_period_destroy_gives_back_jobs_as_retry),
		T(test_an_undecodable_job_is_answered_failed_and_garbage_is_ignored),
		T(test_a_second_driver_for_a_served_channel_is_refused),
		T(test_every_poll_item_of_every_driver_is_watched),
		T(test_sealed_content_is_opened_for_the_driver_or_the_job_fails_seal),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
