/*
 * NAME
 *	test_hd_fake - the scriptable fake channel, as an integration test uses it
 * DESCRIPTION
 *	Drives the driver through its ops table only, with configuration
 *	read from real files (so errors carry file:line) and time passed to
 *	handle() explicitly. Covered: each marker's outcome, code and
 *	timing, markers in the body, the record file, the channel setting,
 *	due order, capacity, close giving jobs back, bad settings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hd_err.h"
#include "hd_fake.h"
#include "hd_time.h"

#define MAX_SEEN 32

typedef struct seen {
	size_t n;
	hd_wire_result_t r[MAX_SEEN];
	char recipient[MAX_SEEN][64];
} seen_t;

static void on_done(void *arg, hd_channel_job_t *job, const hd_wire_result_t *result)
{
	seen_t *s = arg;
	assert_true(s->n < MAX_SEEN);
	s->r[s->n] = *result;
	snprintf(s->recipient[s->n], sizeof s->recipient[s->n], "%s", job->job.recipient);
	s->n++;
	hd_channel_job_destroy(&job);
}

typedef struct fixture {
	char dir[64];
	char conf[128];
	char record[128];
	config_t cfg;
	bool have_cfg;
	void *fake;
	seen_t seen;
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/test_hd_fake.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->conf, sizeof f->conf, "%s/worker.conf", f->dir);
	snprintf(f->record, sizeof f->record, "%s/sent.txt", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	if (f->fake)
		hd_fake_ops.close(&f->fake);
	if (f->have_cfg)
		config_destroy(&f->cfg);
	unlink(f->conf);
	unlink(f->record);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Write "fake = { body };" to the fixture's file and open the driver from it. */
__attribute__((format(printf, 3, 4)))
static void *open_fake(fixture_t *f, char *err, const char *fmt, ...)
{
	FILE *out = fopen(f->conf, "w");
	assert_non_null(out);
	fputs("# a worker configuration\nfake = {\n", out);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputs("\n};\n", out);
	fclose(out);
	if (f->have_cfg)
		config_destroy(&f->cfg);
	config_init(&f->cfg);
	f->have_cfg = true;
	assert_int_equal(config_read_file(&f->cfg, f->conf), CONFIG_TRUE);
	err[0] = '\0';
	return hd_fake_ops.open(config_lookup(&f->cfg, "fake"), NULL, on_done, &f->seen, err, 256);
}

static void submit(fixture_t *f, int64_t id, const char *recipient, const char *body)
{
	hd_channel_job_t *job = calloc(1, sizeof *job);
	job->job.delivery_id = id;
	job->job.message_id = 1;
	job->job.attempt = 1;
	job->job.lease_ms = 60000;
	job->job.recipient = strdup(recipient);
	job->job.kind = strdup("to");
	job->job.msg = hd_msg_new(hd_fake_channel(f->fake));
	if (body)
		job->job.msg->body = strdup(body);
	assert_int_equal(hd_fake_ops.submit(f->fake, job), HD_OK);
}

static void run_until(fixture_t *f, int64_t now_ms)
{
	hd_fake_ops.handle(f->fake, now_ms, NULL, 0);
}

static size_t count_lines(const char *path, char *first, size_t cap)
{
	FILE *in = fopen(path, "r");
	if (!in)
		return 0;
	char line[512];
	size_t n = 0;
	while (fgets(line, sizeof line, in)) {
		if (n == 0 && first)
			snprintf(first, cap, "%s", line);
		n++;
	}
	fclose(in);
	return n;
}

static void test_a_plain_recipient_is_delivered_after_delay_ms_and_recorded(void **state)
{
	fixture_t *f = *state;
	char err[256];
	f->fake = open_fake(f, err, "delay_ms = 50; record_file = \"%s\";", f->record);
	assert_non_null(f->fake);
	int64_t t0 = hd_time_mono_ms();
	submit(f, 41, "alice@example.com", NULL);
	assert_int_equal(hd_fake_ops.in_flight(f->fake), 1);
	/* Nothing is reported from submit itself, nor before the delay. */
	assert_int_equal(f->seen.n, 0);
	/* The driver reads the clock itself at submit: allow for ticks since t0. */
	int64_t slack = hd_time_mono_ms() - t0;
	int64_t wait = hd_fake_ops.timeout_ms(f->fake, t0);
	assert_true(wait > 0 && wait <= 50 + slack);
	run_until(f, t0);
	assert_int_equal(f->seen.n, 0);
	run_until(f, t0 + 60 + slack);
	assert_int_equal(f->seen.n, 1);
	assert_int_equal(f->seen.r[0].outcome, HD_OUTCOME_DELIVERED);
	assert_int_equal(f->seen.r[0].delivery_id, 41);
	assert_int_equal(f->seen.r[0].attempt, 1);
	assert_string_equal(f->seen.r[0].provider, "fake");
	assert_string_equal(f->seen.r[0].provider_code, "250");
	assert_string_equal(f->seen.r[0].provider_id, "fake-41-1");
	assert_int_equal(hd_fake_ops.in_flight(f->fake), 0);
	assert_int_equal(hd_fake_ops.timeout_ms(f->fake, t0), -1);
	char line[512];
	assert_int_equal(count_lines(f->record, line, sizeof line), 1);
	assert_string_equal(line, "41 alice@example.com 1\n");
}

static void test_fail_marker_fails_with_550_and_records_nothing(void **state)
{
	fixture_t *f = *state;
	char err[256];
	f->fake = open_fake(f, err, "record_file = \"%s\";", f->record);
	assert_non_null(f->fake);
	submit(f, 7, "erin+fail@example.com", NULL);
	assert_int_equal(hd_fake_ops.timeout_ms(f->fake, hd_time_mono_ms()), 0);
	run_until(f, hd_time_mono_ms());
	assert_int_equal(f->seen.n, 1);
	assert_int_equal(f->seen.r[0].outcome, HD_OUTCOME_FAILED);
	assert_string_equal(f->seen.r[0].provider_code, "550");
	assert_string_equal(f->seen.r[0].provider_id, "");
	assert_int_equal(count_lines(f->record, NULL, 0), 0);
}

static void test_retry_marker_retries_with_451_and_the_configured_retry_after(void **state)
{
	fixture_t *f = *state;
	char err[256];
	f->fake = open_fake(f, err, "retry_after_ms = 1500;");
	assert_non_null(f->fake);
	submit(f, 8, "dave+retry@example.com", NULL);
	run_until(f, hd_time_mono_ms());
	assert_int_equal(f->seen.n, 1);
	assert_int_equal(f->seen.r[0].outcome, HD_OUTCOME_RETRY);
	assert_string_equal(f->seen.r[0].provider_code, "451");
	assert_int_equal(f->seen.r[0].retry_after_ms, 1500);
}

static void test_slow_marker_waits_slow_ms_without_blocking(void **state)
{
	fixture_t *f = *state;
	char err[256];
	f->fake = open_fake(f, err, "slow_ms = 4000; delay_ms = 10;");
	assert_non_null(f->fake);
	int64_t t0 = hd_time_mono_ms();
	submit(f, 1, "frank+slow@example.com", NULL);
	submit(f, 2, "grace@example.com", NULL);
	/* The fast one, submitted second, is reported first. */
	run_until(f, t0 + 100);
	assert_int_equal(f->seen.n, 1);
	assert_int_equal(f->seen.r[0].delivery_id, 2);
	int64_t wait = hd_fake_ops.timeout_ms(f->fake, t0 + 100);
	assert_true(wait > 3800 && wait <= 3900);
	run_until(f, t0 + 3000);
	assert_int_equal(f->seen.n, 1);
	run_until(f, t0 + 4100);
	assert_int_equal(f->seen.n, 2);
	assert_int_equal(f->seen.r[1].delivery_id, 1);
	assert_int_equal(f->seen.r[1].outcome, HD_OUTCOME_DELIVERED);
}

static void test_equal_delays_report_in_submission_order(void **state)
{
	fixture_t *f = *state;
	char err[256];
	f->fake = open_fake(f, err, "delay_ms = 0;");
	assert_non_null(f->fake);
	for (int64_t id = 1; id <= 20; id++)
		submit(f, id, "x@example.com", NULL);
	run_until(f, hd_time_mono_ms() + 1);
	assert_int_equal(f->seen.n, 20);
	for (size_t i = 0; i < 20; i++)
		assert_int_equal(f->seen.r[i].delivery_id, (int64_t)i + 1);
}

static void test_markers_in_the_body_script_channels_whose_addresses_have_no_plus(void **state)
{
	fixture_t *f = *state;
	char err[256];
	f->fake = open_fake(f, err, "channel = \"im\";");
	assert_non_null(f->fake);
	assert_int_equal(hd_fake_channel(f->fake), HD_CHANNEL_IM);
	submit(f, 1, "ops-alerts", "deploy failed +fail");
	submit(f, 2, "ops-alerts", "all good");
	run_until(f, hd_time_mono_ms() + 1);
	assert_int_equal(f->seen.n, 2);
	assert_int_equal(f->seen.r[0].outcome, HD_OUTCOME_FAILED);
	assert_int_equal(f->seen.r[1].outcome, HD_OUTCOME_DELIVERED);
	/* A marker in the recipient wins over one in the body. */
	submit(f, 3, "a+retry@example.com", "+fail");
	run_until(f, hd_time_mono_ms() + 1);
	assert_int_equal(f->seen.r[2].outcome, HD_OUTCOME_RETRY);
}

static void test_the_channel_setting_chooses_the_served_channel(void **state)
{
	fixture_t *f = *state;
	char err[256];
	void *sms = open_fake(f, err, "channel = \"sms\";");
	assert_non_null(sms);
	assert_int_equal(hd_fake_channel(sms), HD_CHANNEL_SMS);
	hd_fake_ops.close(&sms);
	assert_null(sms);
	/* No group at all: defaults, email. */
	void *def = hd_fake_ops.open(NULL, NULL, on_done, &f->seen, err, sizeof err);
	assert_non_null(def);
	assert_int_equal(hd_fake_channel(def), HD_CHANNEL_EMAIL);
	assert_string_equal(hd_fake_ops.name, "fake");
	hd_fake_ops.close(&def);
	hd_fake_ops.close(NULL);
}

static void test_submit_beyond_max_in_flight_is_busy(void **state)
{
	fixture_t *f = *state;
	char err[256];
	f->fake = open_fake(f, err, "max_in_flight = 2; delay_ms = 1000;");
	assert_non_null(f->fake);
	submit(f, 1, "a@example.com", NULL);
	submit(f, 2, "b@example.com", NULL);
	hd_channel_job_t job = {.job = {.delivery_id = 3, .attempt = 1,
					.recipient = (char *)"c@example.com"}};
	assert_int_equal(hd_fake_ops.submit(f->fake, &job), HD_E_BUSY);
	assert_int_equal(hd_fake_ops.in_flight(f->fake), 2);
	assert_int_equal(f->seen.n, 0);
}

static void test_close_gives_back_every_held_job_as_retry(void **state)
{
	fixture_t *f = *state;
	char err[256];
	f->fake = open_fake(f, err, "delay_ms = 60000; record_file = \"%s\";", f->record);
	assert_non_null(f->fake);
	submit(f, 1, "a@example.com", NULL);
	submit(f, 2, "b+slow@example.com", NULL);
	hd_fake_ops.close(&f->fake);
	assert_null(f->fake);
	assert_int_equal(f->seen.n, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(f->seen.r[i].outcome, HD_OUTCOME_RETRY);
		assert_string_equal(f->seen.r[i].detail, "worker stopping");
	}
	assert_int_equal(count_lines(f->record, NULL, 0), 0);
}

static void expect_bad(fixture_t *f, const char *body, const char *want)
{
	char err[256];
	void *fake = open_fake(f, err, "%s", body);
	if (fake)
		hd_fake_ops.close(&fake);
	assert_null(fake);
	char prefix[200];
	/* The setting is on line 3 of the file: comment, "fake = {", setting. */
	snprintf(prefix, sizeof prefix, "%s:3: fake.", f->conf);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, want))
		fail_msg("for \"%s\": got \"%s\", want \"%s...%s\"", body, err, prefix, want);
}

static void test_bad_settings_are_refused_with_file_and_line(void **state)
{
	fixture_t *f = *state;
	expect_bad(f, "delay = 5;", "delay: unknown setting");
	expect_bad(f, "delay_ms = \"5\";", "delay_ms: expected an integer");
	expect_bad(f, "delay_ms = -1;", "delay_ms: -1 is outside [0, 3600000]");
	expect_bad(f, "slow_ms = 3600001;", "slow_ms: 3600001 is outside");
	expect_bad(f, "max_in_flight = 0;", "max_in_flight: 0 is outside");
	expect_bad(f, "channel = \"fax\";", "channel: expected \"email\", \"im\" or \"sms\"");
	expect_bad(f, "channel = 1;", "channel: expected");
	expect_bad(f, "record_file = \"/nonexistent-dir/x\";", "record_file: cannot open");
	expect_bad(f, "record_file = 3;", "record_file: expected a string");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_a_plain_recipient_is_delivered_after_delay_ms_and_recorded),
		T(test_fail_marker_fails_with_550_and_records_nothing),
		T(test_retry_marker_retries_with_451_and_the_configured_retry_after),
		T(test_slow_marker_waits_slow_ms_without_blocking),
		T(test_equal_delays_report_in_submission_order),
		T(test_markers_in_the_body_script_channels_whose_addresses_have_no_plus),
		T(test_the_channel_setting_chooses_the_served_channel),
		T(test_submit_beyond_max_in_flight_is_busy),
		T(test_close_gives_back_every_held_job_as_retry),
		T(test_bad_settings_are_refused_with_file_and_line),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
