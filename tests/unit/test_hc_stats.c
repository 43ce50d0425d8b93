/*
 * NAME
 *	test_hc_stats - how "heraldctl stats" presents what the views say
 * DESCRIPTION
 *	From a hand-built snapshot: the JSON a monitoring script reads has
 *	the documented keys, totals per state, the oldest ages as maxima
 *	(null when nothing waits), outcomes per window split into all /
 *	channels / providers, and workers' channels as a list; the text
 *	report shows every section and says so when there are no workers.
 *	Loading from a real database is tested in 03-dispatch-sql.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hc_stats.h"
#include "hd_mem.h"

static void add_count(hc_stats_t *st, const char *state, const char *channel, const char *klass,
                      long long n)
{
	st->counts = hd_realloc(st->counts, (st->ncounts + 1) * sizeof(*st->counts));
	hc_stats_count_t *c = &st->counts[st->ncounts++];
	c->state = hd_strdup(state);
	c->channel = hd_strdup(channel);
	c->klass = hd_strdup(klass);
	c->count = n;
}

static void add_queue(hc_stats_t *st, const char *channel, double q, double h)
{
	st->queues = hd_realloc(st->queues, (st->nqueues + 1) * sizeof(*st->queues));
	hc_stats_queue_t *x = &st->queues[st->nqueues++];
	x->channel = hd_strdup(channel);
	x->queued_age_s = q;
	x->held_age_s = h;
}

static void add_rate(hc_stats_t *st, int window_s, const char *scope, const char *name,
                     long long d, long long r, long long f, double rate)
{
	st->rates = hd_realloc(st->rates, (st->nrates + 1) * sizeof(*st->rates));
	hc_stats_rate_t *x = &st->rates[st->nrates++];
	x->window_s = window_s;
	x->scope = hd_strdup(scope);
	x->name = hd_strdup(name);
	x->delivered = d;
	x->retried = r;
	x->failed = f;
	x->failure_rate = rate;
}

static void add_worker(hc_stats_t *st, const char *name, const char *channels, long long credit)
{
	st->workers = hd_realloc(st->workers, (st->nworkers + 1) * sizeof(*st->workers));
	hc_stats_worker_t *w = &st->workers[st->nworkers++];
	w->name = hd_strdup(name);
	w->broker = hd_strdup("heraldd@host");
	w->channels = hd_strdup(channels);
	w->credit = credit;
	w->connected_at = hd_strdup("2024-07-01T12:00:00Z");
	w->last_seen_at = hd_strdup("2024-07-01T12:05:00Z");
	w->connected_age_s = 300;
	w->last_seen_age_s = 2;
}

static void sample(hc_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	st->generated_at = hd_strdup("2024-07-01T12:05:02Z");
	add_count(st, "queued", "email", "general", 10);
	add_count(st, "queued", "sms", "general", 5);
	add_count(st, "held", "email", "bulk", 2);
	add_count(st, "failed", "sms", "general", 1);
	add_queue(st, "email", 12.5, 3600);
	add_queue(st, "im", -1, -1);
	add_queue(st, "sms", 40, -1);
	add_rate(st, 300, "all", "", 8, 1, 1, 0.2);
	add_rate(st, 300, "channel", "email", 8, 0, 0, 0);
	add_rate(st, 300, "channel", "sms", 0, 1, 1, 1);
	add_rate(st, 300, "provider", "smtp", 8, 0, 0, 0);
	add_rate(st, 3600, "all", "", 0, 0, 0, -1);
	add_worker(st, "w1", "email,sms", 20);
}

static char *capture(void (*print)(FILE *, const hc_stats_t *), const hc_stats_t *st)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	print(f, st);
	fclose(f);
	return buf;
}

static void test_json_has_counts_totals_per_state_and_the_oldest_ages(void **state)
{
	(void)state;
	hc_stats_t st;
	sample(&st);
	char *text = capture(hc_stats_print_json, &st);
	json_error_t jerr;
	json_t *root = json_loads(text, 0, &jerr);
	assert_non_null(root);
	assert_string_equal(json_string_value(json_object_get(root, "generated_at")),
	                    "2024-07-01T12:05:02Z");
	assert_int_equal(json_array_size(json_object_get(root, "deliveries")), 4);
	json_t *first = json_array_get(json_object_get(root, "deliveries"), 0);
	assert_string_equal(json_string_value(json_object_get(first, "class")), "general");
	json_t *by_state = json_object_get(root, "by_state");
	assert_int_equal(json_integer_value(json_object_get(by_state, "queued")), 15);
	assert_int_equal(json_integer_value(json_object_get(by_state, "held")), 2);
	assert_int_equal(json_integer_value(json_object_get(by_state, "failed")), 1);
	assert_int_equal(json_integer_value(json_object_get(root, "total")), 18);
	assert_true(json_real_value(json_object_get(root, "oldest_queued_age_s")) == 40.0);
	assert_true(json_real_value(json_object_get(root, "oldest_held_age_s")) == 3600.0);
	json_t *im = json_array_get(json_object_get(root, "queues"), 1);
	assert_string_equal(json_string_value(json_object_get(im, "channel")), "im");
	assert_true(json_is_null(json_object_get(im, "oldest_queued_age_s")));
	assert_true(json_is_null(json_object_get(im, "oldest_held_age_s")));
	json_decref(root);
	free(text);
	hc_stats_clear(&st);
}

static void test_json_outcomes_split_windows_into_all_channels_and_providers(void **state)
{
	(void)state;
	hc_stats_t st;
	sample(&st);
	char *text = capture(hc_stats_print_json, &st);
	json_t *root = json_loads(text, 0, NULL);
	assert_non_null(root);
	json_t *w5 = json_object_get(json_object_get(root, "outcomes"), "last_5m");
	assert_int_equal(json_integer_value(json_object_get(w5, "window_s")), 300);
	json_t *all = json_object_get(w5, "all");
	assert_int_equal(json_integer_value(json_object_get(all, "delivered")), 8);
	assert_int_equal(json_integer_value(json_object_get(all, "retried")), 1);
	assert_int_equal(json_integer_value(json_object_get(all, "failed")), 1);
	assert_true(json_real_value(json_object_get(all, "failure_rate")) == 0.2);
	json_t *sms = json_object_get(json_object_get(w5, "channels"), "sms");
	assert_int_equal(json_integer_value(json_object_get(sms, "failed")), 1);
	assert_non_null(json_object_get(json_object_get(w5, "providers"), "smtp"));
	assert_int_equal(json_object_size(json_object_get(w5, "channels")), 2);
	json_t *w1h = json_object_get(json_object_get(root, "outcomes"), "last_1h");
	assert_true(json_is_null(json_object_get(json_object_get(w1h, "all"), "failure_rate")));
	assert_int_equal(json_object_size(json_object_get(w1h, "providers")), 0);
	json_decref(root);
	free(text);
	hc_stats_clear(&st);
}

static void test_json_lists_workers_with_their_channels_as_an_array(void **state)
{
	(void)state;
	hc_stats_t st;
	sample(&st);
	char *text = capture(hc_stats_print_json, &st);
	json_t *root = json_loads(text, 0, NULL);
	json_t *w = json_array_get(json_object_get(root, "workers"), 0);
	assert_string_equal(json_string_value(json_object_get(w, "name")), "w1");
	assert_string_equal(json_string_value(json_object_get(w, "broker")), "heraldd@host");
	json_t *ch = json_object_get(w, "channels");
	assert_int_equal(json_array_size(ch), 2);
	assert_string_equal(json_string_value(json_array_get(ch, 0)), "email");
	assert_string_equal(json_string_value(json_array_get(ch, 1)), "sms");
	assert_int_equal(json_integer_value(json_object_get(w, "credit")), 20);
	json_decref(root);
	free(text);
	hc_stats_clear(&st);
}

static void test_json_of_an_empty_snapshot_has_every_key_with_nulls(void **state)
{
	(void)state;
	hc_stats_t st;
	memset(&st, 0, sizeof(st));
	char *text = capture(hc_stats_print_json, &st);
	json_t *root = json_loads(text, 0, NULL);
	assert_non_null(root);
	assert_int_equal(json_integer_value(json_object_get(root, "total")), 0);
	assert_true(json_is_null(json_object_get(root, "oldest_queued_age_s")));
	assert_true(json_is_array(json_object_get(root, "workers")));
	json_t *all = json_object_get(json_object_get(json_object_get(root, "outcomes"), "last_1h"), "all");
	assert_int_equal(json_integer_value(json_object_get(all, "delivered")), 0);
	json_decref(root);
	free(text);
}

static void test_text_shows_every_section_aligned(void **state)
{
	(void)state;
	hc_stats_t st;
	sample(&st);
	char *text = capture(hc_stats_print_text, &st);
	assert_non_null(strstr(text, "deliveries by state, channel and class\n"));
	assert_non_null(strstr(text, "  STATE   CHANNEL  CLASS    COUNT\n"));
	assert_non_null(strstr(text, "  queued  email    general     10\n"));
	assert_non_null(strstr(text, "  total                        18\n"));
	assert_non_null(strstr(text, "  email              12s       1h 00m\n"));
	assert_non_null(strstr(text, "  im                   -            -\n"));
	assert_non_null(strstr(text, "outcomes in the last 5 minutes\n"));
	assert_non_null(strstr(text, "  channel   sms            0        1       1        100.0%\n"));
	assert_non_null(strstr(text, "outcomes in the last hour\n"));
	assert_non_null(strstr(text, "  all                  0        0       0             -\n"));
	assert_non_null(strstr(text, "workers seen in the last 10 s: 1\n"));
	assert_non_null(strstr(text, "  w1    heraldd@host  email,sms      20         5m 00s     2s ago\n"));
	free(text);
	hc_stats_clear(&st);
}

static void test_text_says_when_no_worker_is_connected(void **state)
{
	(void)state;
	hc_stats_t st;
	memset(&st, 0, sizeof(st));
	char *text = capture(hc_stats_print_text, &st);
	assert_non_null(strstr(text, "(no deliveries)"));
	assert_non_null(strstr(text, "workers seen in the last 10 s: none\n"));
	free(text);
}

static void test_clear_is_null_safe_and_idempotent(void **state)
{
	(void)state;
	hc_stats_t st;
	sample(&st);
	hc_stats_clear(&st);
	hc_stats_clear(&st);
	hc_stats_clear(NULL);
	assert_null(st.counts);
	assert_int_equal(st.nworkers, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_has_counts_totals_per_state_and_the_oldest_ages),
		cmocka_unit_test(test_json_outcomes_split_windows_into_all_channels_and_providers),
		cmocka_unit_test(test_json_lists_workers_with_their_channels_as_an_array),
		cmocka_unit_test(test_json_of_an_empty_snapshot_has_every_key_with_nulls),
		cmocka_unit_test(test_text_shows_every_section_aligned),
		cmocka_unit_test(test_text_says_when_no_worker_is_connected),
		cmocka_unit_test(test_clear_is_null_safe_and_idempotent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
