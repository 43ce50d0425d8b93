/*
 * NAME
 *	test_hc_approve - what approvers type and read
 * DESCRIPTION
 *	Durations, relative due times, display widths of Chinese text, the
 *	held table's alignment, the arguments of held/show/approve/reject
 *	(a rejection without a reason is a usage error) and the sentence
 *	printed after an approval.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc_approve.h"

static void test_durations_accept_units_and_combinations_and_refuse_the_rest(void **state)
{
	(void)state;
	int64_t s = 0;
	char err[256];
	assert_int_equal(hc_approve_parse_duration("2h", &s, err, sizeof(err)), 0);
	assert_int_equal(s, 7200);
	assert_int_equal(hc_approve_parse_duration("1h30m", &s, err, sizeof(err)), 0);
	assert_int_equal(s, 5400);
	assert_int_equal(hc_approve_parse_duration("90s", &s, err, sizeof(err)), 0);
	assert_int_equal(s, 90);
	assert_int_equal(hc_approve_parse_duration("1w2d", &s, err, sizeof(err)), 0);
	assert_int_equal(s, 9 * 86400);
	assert_int_not_equal(hc_approve_parse_duration("2", &s, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "'2' is not a duration"));
	assert_int_not_equal(hc_approve_parse_duration("h", &s, err, sizeof(err)), 0);
	assert_int_not_equal(hc_approve_parse_duration("", &s, err, sizeof(err)), 0);
	assert_int_not_equal(hc_approve_parse_duration("-1h", &s, err, sizeof(err)), 0);
	assert_int_not_equal(hc_approve_parse_duration("99999999999999999999h", &s, err, sizeof(err)), 0);
	assert_int_not_equal(hc_approve_parse_duration("400d", &s, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "longer than a year"));
}

static void test_due_times_read_in_and_overdue_with_two_units_at_most(void **state)
{
	(void)state;
	char b[64];
	assert_string_equal(hc_approve_fmt_due(5 * 3600, b, sizeof(b)), "in 5h");
	assert_string_equal(hc_approve_fmt_due(5 * 3600 + 30 * 60 + 59, b, sizeof(b)), "in 5h 30m");
	assert_string_equal(hc_approve_fmt_due(47 * 3600 + 59 * 60, b, sizeof(b)), "in 1d 23h");
	assert_string_equal(hc_approve_fmt_due(2 * 86400, b, sizeof(b)), "in 2d");
	assert_string_equal(hc_approve_fmt_due(12 * 60 + 5, b, sizeof(b)), "in 12m");
	assert_string_equal(hc_approve_fmt_due(45.9, b, sizeof(b)), "in 45s");
	assert_string_equal(hc_approve_fmt_due(-125, b, sizeof(b)), "overdue 2m");
	assert_string_equal(hc_approve_fmt_due(-3 * 86400 - 3600, b, sizeof(b)), "overdue 3d 1h");
	assert_string_equal(hc_approve_fmt_due(0.4, b, sizeof(b)), "due now");
	assert_string_equal(hc_approve_fmt_due(-0.4, b, sizeof(b)), "due now");
}

static void test_chinese_characters_take_two_columns_and_are_never_cut_in_half(void **state)
{
	(void)state;
	char b[128];
	assert_int_equal(hc_approve_display_width("abc"), 3);
	assert_int_equal(hc_approve_display_width("重要"), 4);
	assert_int_equal(hc_approve_display_width("[重要] ok"), 9);
	assert_int_equal(hc_approve_display_width("ü"), 1);
	assert_int_equal(hc_approve_display_width("u\xCC\x88"), 1); /* u + combining diaeresis */
	assert_string_equal(hc_approve_fit("季度销售报告", 8, b, sizeof(b)), "季度...");
	assert_int_equal(hc_approve_display_width(b), 7);
	assert_string_equal(hc_approve_fit("季度销售", 8, b, sizeof(b)), "季度销售");
	assert_string_equal(hc_approve_fit("abcdefghij", 8, b, sizeof(b)), "abcde...");
	assert_string_equal(hc_approve_fit("a\nb\tc", 0, b, sizeof(b)), "a b c");
}

static void test_the_held_table_lines_up_after_chinese_subjects(void **state)
{
	(void)state;
	hc_approve_held_row_t rows[] = {
		{7, "important", "sam@example.com", "销售部", "[重要] 季度销售报告", "important", 1, 5 * 3600},
		{12, "bulk", "ann@example.com", "Eng", "Newsletter", "bulk", 1, -120},
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	hc_approve_print_held(f, rows, 2);
	fclose(f);
	assert_string_equal(buf,
	                    "ID  CLASS      FROM             DEPT    SUBJECT              LEVEL        DUE\n"
	                    " 7  important  sam@example.com  销售部  [重要] 季度销售报告  1 important  in 5h\n"
	                    "12  bulk       ann@example.com  Eng     Newsletter           1 bulk       overdue 2m\n");
	free(buf);
}

static void test_reject_without_a_reason_is_a_usage_error(void **state)
{
	(void)state;
	hc_approve_decide_args_t a;
	char err[256];
	char *none[] = {"12"};
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_REJECT, 1, none, &a, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_string_equal(err, "a rejection needs a reason: --reason TEXT");
	char *blank[] = {"12", "--reason", " \t"};
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_REJECT, 3, blank, &a, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	char *good[] = {"--reason=too many", "12", "--json"};
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_REJECT, 3, good, &a, err, sizeof(err)), 0);
	assert_int_equal(a.message_id, 12);
	assert_string_equal(a.comment, "too many");
	assert_true(a.json);
}

static void test_approve_and_show_take_exactly_one_positive_id(void **state)
{
	(void)state;
	hc_approve_decide_args_t a;
	char err[256];
	char *ok[] = {"42", "--comment", "fine"};
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_APPROVE, 3, ok, &a, err, sizeof(err)), 0);
	assert_int_equal(a.message_id, 42);
	assert_string_equal(a.comment, "fine");
	assert_false(a.json);
	char *two[] = {"1", "2"};
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_APPROVE, 2, two, &a, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	char *bad[] = {"12x"};
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_SHOW, 1, bad, &a, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_string_equal(err, "'12x' is not a message id (a positive number)");
	char *zero[] = {"0"};
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_SHOW, 1, zero, &a, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	char *comment_on_show[] = {"5", "--comment", "x"};
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_SHOW, 3, comment_on_show, &a, err,
	                                              sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_APPROVE, 0, NULL, &a, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_string_equal(err, "which message? give its id");
}

static void test_held_options_are_checked(void **state)
{
	(void)state;
	hc_approve_held_args_t a;
	char err[256];
	assert_int_equal(hc_approve_parse_held_args(0, NULL, &a, err, sizeof(err)), 0);
	assert_null(a.department);
	assert_null(a.klass);
	assert_int_equal(a.older_than_s, -1);
	char *all[] = {"--department", "Sales", "--class=bulk", "--older-than", "2h", "--json"};
	assert_int_equal(hc_approve_parse_held_args(6, all, &a, err, sizeof(err)), 0);
	assert_string_equal(a.department, "Sales");
	assert_string_equal(a.klass, "bulk");
	assert_int_equal(a.older_than_s, 7200);
	assert_true(a.json);
	char *klass[] = {"--class", "general"};
	assert_int_equal(hc_approve_parse_held_args(2, klass, &a, err, sizeof(err)), HC_EXIT_USAGE);
	assert_string_equal(err, "--class must be important or bulk, not 'general'");
	char *age[] = {"--older-than", "soon"};
	assert_int_equal(hc_approve_parse_held_args(2, age, &a, err, sizeof(err)), HC_EXIT_USAGE);
	char *extra[] = {"7"};
	assert_int_equal(hc_approve_parse_held_args(1, extra, &a, err, sizeof(err)), HC_EXIT_USAGE);
}

static void test_after_an_approval_the_sentence_says_what_happens_next(void **state)
{
	(void)state;
	char b[512];
	json_t *approved = json_loads("[{\"request_id\":3,\"kind\":\"important\",\"level\":1}]", 0, NULL);
	json_t *waiting = json_loads(
		"{\"approvals\":[{\"kind\":\"important\",\"level\":1,\"approver_role\":\"dept_head\","
		"\"department\":\"Sales\",\"state\":\"approved\"},{\"kind\":\"important\",\"level\":2,"
		"\"approver_role\":\"senior\",\"department\":\"Sales\",\"state\":\"pending\"}],"
		"\"deliveries\":{\"held\":3}}", 0, NULL);
	assert_string_equal(hc_approve_outcome_text(7, approved, false, waiting, b, sizeof(b)),
	                    "message 7: approved level 1 (important); waiting for senior leadership "
	                    "(level 2 important)");
	json_t *done = json_loads("{\"approvals\":[],\"deliveries\":{\"queued\":3}}", 0, NULL);
	assert_string_equal(hc_approve_outcome_text(7, approved, true, done, b, sizeof(b)),
	                    "message 7: approved level 1 (important); released: 3 deliveries queued");
	json_t *two = json_loads("[{\"request_id\":3,\"kind\":\"bulk\",\"level\":1},"
	                         "{\"request_id\":4,\"kind\":\"important\",\"level\":1}]", 0, NULL);
	assert_string_equal(hc_approve_outcome_text(8, two, false, waiting, b, sizeof(b)),
	                    "message 8: approved level 1 (bulk, important); waiting for senior "
	                    "leadership (level 2 important)");
	json_decref(approved);
	json_decref(waiting);
	json_decref(done);
	json_decref(two);
}

static void test_show_prints_the_chain_and_findings_only_when_present(void **state)
{
	(void)state;
	json_t *d = json_loads(
		"{\"message\":{\"id\":9,\"class\":\"important\",\"channel\":\"email\","
		"\"sender\":\"sam@example.com\",\"sender_name\":\"Sam\",\"subject\":\"Hi\",\"body\":\"Text\"},"
		"\"recipients\":{\"to\":[\"a@x\",\"b@x\"],\"cc\":[],\"to_count\":2,\"cc_count\":0},"
		"\"attachments\":[{\"name\":\"q.pdf\",\"type\":\"application/pdf\",\"size\":1234}],"
		"\"bulk_application\":null,"
		"\"approvals\":[{\"kind\":\"important\",\"level\":1,\"approver_role\":\"dept_head\","
		"\"department\":\"Sales\",\"state\":\"approved\",\"decided_by\":\"carol@example.com\","
		"\"decided_at\":\"2024-07-01T10:00:00+00:00\",\"comment\":\"ok\"}],"
		"\"deliveries\":{\"queued\":2}}", 0, NULL);
	assert_non_null(d);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	hc_approve_print_detail(f, d, 0);
	fclose(f);
	assert_non_null(strstr(buf, "message 9\n"));
	assert_non_null(strstr(buf, "from         Sam <sam@example.com>\n"));
	assert_non_null(strstr(buf, "to           a@x, b@x\n"));
	assert_non_null(strstr(buf, "attachments\n  q.pdf  application/pdf  1234 bytes\n"));
	assert_non_null(strstr(buf, "level 1 important approved  head of Sales; by carol@example.com "
	                            "at 2024-07-01T10:00:00+00:00\n      \"ok\"\n"));
	assert_non_null(strstr(buf, "deliveries\n  queued"));
	assert_null(strstr(buf, "policy findings"));
	assert_null(strstr(buf, "bulk application"));
	free(buf);
	json_decref(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations_accept_units_and_combinations_and_refuse_the_rest),
		cmocka_unit_test(test_due_times_read_in_and_overdue_with_two_units_at_most),
		cmocka_unit_test(test_chinese_characters_take_two_columns_and_are_never_cut_in_half),
		cmocka_unit_test(test_the_held_table_lines_up_after_chinese_subjects),
		cmocka_unit_test(test_reject_without_a_reason_is_a_usage_error),
		cmocka_unit_test(test_approve_and_show_take_exactly_one_positive_id),
		cmocka_unit_test(test_held_options_are_checked),
		cmocka_unit_test(test_after_an_approval_the_sentence_says_what_happens_next),
		cmocka_unit_test(test_show_prints_the_chain_and_findings_only_when_present),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
