/*
 * NAME
 *	test_hc_dead - the command lines and output of "dead" and "requeue"
 * DESCRIPTION
 *	A malformed command line is a usage error naming the problem, never
 *	a guess: an unknown channel, a bad --since or --limit, ids mixed
 *	with --all-failed, --all-failed without --since. A refused requeue
 *	names every id with what it is instead. The JSON of the dead-letter
 *	list has null for what is missing; the text says when it is cut.
 *	Against a real database: 03-dispatch-sql.py.
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

#include "hc_dead.h"
#include "hd_mem.h"

#define NOW_MS 1719835200000LL /* 2024-07-01T12:00:00Z */

static int list_args(int argc, char **argv, hc_dead_filter_t *f, int *json, char *err)
{
	return hc_dead_parse_list_args(argc, argv, NOW_MS, f, json, err, 256);
}

static void test_dead_defaults_to_fifty_of_every_channel_at_any_time(void **state)
{
	(void)state;
	hc_dead_filter_t f;
	int json = 1;
	char err[256];
	assert_int_equal(list_args(0, NULL, &f, &json, err), 0);
	assert_null(f.channel);
	assert_int_equal(f.since_ms, 0);
	assert_int_equal(f.limit, 50);
	assert_int_equal(json, 0);
}

static void test_dead_reads_channel_since_limit_and_json(void **state)
{
	(void)state;
	char *argv[] = {"--channel", "sms", "--since=2h", "--limit", "7", "--json"};
	hc_dead_filter_t f;
	int json = 0;
	char err[256];
	assert_int_equal(list_args(6, argv, &f, &json, err), 0);
	assert_string_equal(f.channel, "sms");
	assert_int_equal(f.since_ms, NOW_MS - 7200 * 1000LL);
	assert_int_equal(f.limit, 7);
	assert_int_equal(json, 1);
}

static void test_dead_refuses_bad_channel_since_limit_and_stray_arguments(void **state)
{
	(void)state;
	struct {
		char *argv[2];
		int argc;
		const char *says;
	} cases[] = {
		{{"--channel", "fax"}, 2, "email, im or sms"},
		{{"--since", "soon"}, 2, "--since"},
		{{"--limit", "0"}, 2, "--limit"},
		{{"--limit", "10001"}, 2, "--limit"},
		{{"--limit", "5x"}, 2, "--limit"},
		{{"--color", NULL}, 1, "unknown option"},
		{{"42", NULL}, 1, "unexpected argument"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hc_dead_filter_t f;
		int json = 0;
		char err[256] = "";
		assert_int_equal(list_args(cases[i].argc, cases[i].argv, &f, &json, err), HC_EXIT_USAGE);
		if (strstr(err, cases[i].says) == NULL)
			fail_msg("case %zu: expected '%s' in '%s'", i, cases[i].says, err);
	}
}

static int requeue_args(int argc, char **argv, hc_dead_requeue_args_t *a, char *err)
{
	return hc_dead_parse_requeue_args(argc, argv, NOW_MS, a, err, 256);
}

static void test_requeue_takes_ids_in_any_mix_of_words_and_commas(void **state)
{
	(void)state;
	char *argv[] = {"7", "--json", "8,9", "7"};
	hc_dead_requeue_args_t a;
	char err[256];
	assert_int_equal(requeue_args(4, argv, &a, err), 0);
	assert_int_equal(a.nids, 3);
	assert_int_equal(a.ids[0], 7);
	assert_int_equal(a.ids[2], 9);
	assert_false(a.all_failed);
	assert_true(a.json);
	hc_dead_requeue_args_clear(&a);
	assert_null(a.ids);
}

static void test_requeue_all_failed_needs_since(void **state)
{
	(void)state;
	char *ok[] = {"--all-failed", "--since", "1d"};
	hc_dead_requeue_args_t a;
	char err[256] = "";
	assert_int_equal(requeue_args(3, ok, &a, err), 0);
	assert_true(a.all_failed);
	assert_int_equal(a.nids, 0);
	assert_int_equal(a.since_ms, NOW_MS - 86400 * 1000LL);
	hc_dead_requeue_args_clear(&a);

	char *no_since[] = {"--all-failed"};
	assert_int_equal(requeue_args(1, no_since, &a, err), HC_EXIT_USAGE);
	assert_non_null(strstr(err, "needs --since"));
	hc_dead_requeue_args_clear(&a);
}

static void test_requeue_refuses_ambiguous_or_empty_command_lines(void **state)
{
	(void)state;
	struct {
		char *argv[4];
		int argc;
		const char *says;
	} cases[] = {
		{{NULL}, 0, "which deliveries"},
		{{"5", "--all-failed", "--since", "1h"}, 4, "not both"},
		{{"5", "--since", "1h"}, 3, "only goes with --all-failed"},
		{{"5", "x"}, 2, "'x' is not a delivery id"},
		{{"--all-failed", "--since", "tomorrow"}, 3, "--since"},
		{{"--json"}, 1, "which deliveries"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hc_dead_requeue_args_t a;
		char err[256] = "";
		assert_int_equal(requeue_args(cases[i].argc, cases[i].argv, &a, err), HC_EXIT_USAGE);
		if (strstr(err, cases[i].says) == NULL)
			fail_msg("case %zu: expected '%s' in '%s'", i, cases[i].says, err);
		hc_dead_requeue_args_clear(&a);
	}
}

static void test_refusal_text_names_each_id_and_what_it_is(void **state)
{
	(void)state;
	hc_dead_refusal_t r[3] = {{7, "sent"}, {9, ""}, {12, "queued"}};
	char buf[256];
	assert_string_equal(hc_dead_refusal_text(r, 3, buf, sizeof(buf)),
	                    "delivery 7 is sent, not failed; delivery 9 does not exist; "
	                    "delivery 12 is queued, not failed");
	char tiny[20];
	hc_dead_refusal_text(r, 3, tiny, sizeof(tiny));
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

static void fill(hc_dead_list_t *l, size_t n, long long total)
{
	memset(l, 0, sizeof(*l));
	l->rows = hd_calloc(n, sizeof(*l->rows));
	for (size_t i = 0; i < n; i++) {
		hc_dead_row_t *r = &l->rows[i];
		r->delivery_id = 100 + (long long)i;
		r->message_id = 10;
		r->channel = hd_strdup("email");
		r->recipient = hd_strdup("bob@example.com");
		r->kind = hd_strdup("to");
		r->attempts = 3;
		r->last_error = hd_strdup(i == 0 ? "550 5.1.1\nuser unknown" : "");
		r->last_provider = hd_strdup(i == 0 ? "smtp" : "");
		r->failed_at = hd_strdup("2024-07-01T12:00:00Z");
		r->klass = hd_strdup("general");
		r->subject = hd_strdup("");
	}
	l->nrows = n;
	l->total = total;
}

static char *capture(void (*print)(FILE *, const hc_dead_list_t *), const hc_dead_list_t *l)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	print(f, l);
	fclose(f);
	return buf;
}

static void test_dead_json_has_every_field_and_null_for_what_is_missing(void **state)
{
	(void)state;
	hc_dead_list_t l;
	fill(&l, 2, 5);
	char *text = capture(hc_dead_print_json, &l);
	json_t *root = json_loads(text, 0, NULL);
	assert_non_null(root);
	assert_int_equal(json_integer_value(json_object_get(root, "total")), 5);
	assert_int_equal(json_integer_value(json_object_get(root, "shown")), 2);
	json_t *d0 = json_array_get(json_object_get(root, "deliveries"), 0);
	assert_int_equal(json_integer_value(json_object_get(d0, "delivery_id")), 100);
	assert_string_equal(json_string_value(json_object_get(d0, "last_error")),
	                    "550 5.1.1\nuser unknown");
	assert_string_equal(json_string_value(json_object_get(d0, "recipient")), "bob@example.com");
	assert_true(json_is_null(json_object_get(d0, "subject")));
	json_t *d1 = json_array_get(json_object_get(root, "deliveries"), 1);
	assert_true(json_is_null(json_object_get(d1, "last_error")));
	assert_true(json_is_null(json_object_get(d1, "last_provider")));
	json_decref(root);
	free(text);
	hc_dead_list_clear(&l);
}

static void test_dead_text_is_one_line_per_delivery_and_says_when_cut(void **state)
{
	(void)state;
	hc_dead_list_t l;
	fill(&l, 2, 5);
	char *text = capture(hc_dead_print_text, &l);
	assert_non_null(strstr(text, "DELIVERY  MESSAGE  CHANNEL"));
	assert_non_null(strstr(text, "550 5.1.1 user unknown"));
	assert_non_null(strstr(text, "2 of 5 failed deliveries shown"));
	int lines = 0;
	for (const char *p = text; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 4);
	free(text);
	hc_dead_list_clear(&l);

	hc_dead_list_t empty;
	memset(&empty, 0, sizeof(empty));
	text = capture(hc_dead_print_text, &empty);
	assert_string_equal(text, "no failed deliveries\n");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dead_defaults_to_fifty_of_every_channel_at_any_time),
		cmocka_unit_test(test_dead_reads_channel_since_limit_and_json),
		cmocka_unit_test(test_dead_refuses_bad_channel_since_limit_and_stray_arguments),
		cmocka_unit_test(test_requeue_takes_ids_in_any_mix_of_words_and_commas),
		cmocka_unit_test(test_requeue_all_failed_needs_since),
		cmocka_unit_test(test_requeue_refuses_ambiguous_or_empty_command_lines),
		cmocka_unit_test(test_refusal_text_names_each_id_and_what_it_is),
		cmocka_unit_test(test_dead_json_has_every_field_and_null_for_what_is_missing),
		cmocka_unit_test(test_dead_text_is_one_line_per_delivery_and_says_when_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
