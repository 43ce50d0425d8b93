/*
 * NAME
 *	test_hc_approve - what approvers type and read
 * DESCRIPTION
 *	Durations, relative due times, display widths of Chinese text, the
 *	held table's alignment, the arguments of held/show/approve/reject
 *	(a rejection without a reason is a usage error) and the sentence
 *	printed after an approval. Confidential messages (POLICY K2): a body
 *	the database redacted reads "[confidential: redacted]", a sealed one
 *	is opened with the caller's key or reads "[confidential: sealed, no
 *	key]" and the sealed text itself never appears; policy findings and
 *	violations show rule, clause, action, severity and reason.
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

#include "hc_approve.h"
#include "hd_mem.h"
#include "hd_seal.h"

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

/* ---- confidential messages (POLICY K2) ------------------------------------- */

static char *print_detail(const json_t *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	hc_approve_print_detail(f, d, 0);
	fclose(f);
	return buf;
}

static void test_show_takes_a_key_file_and_only_show_does(void **state)
{
	(void)state;
	hc_approve_decide_args_t a;
	char err[256];
	char *with_key[] = {"7", "--key-file", "k1:/etc/herald/k1.key", "--json"};
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_SHOW, 4, with_key, &a, err,
	                                              sizeof(err)), 0);
	assert_string_equal(a.key_file, "k1:/etc/herald/k1.key");
	assert_null(a.comment);
	assert_true(a.json);
	char *empty[] = {"7", "--key-file="};
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_SHOW, 2, empty, &a, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	char *on_approve[] = {"7", "--key-file", "/k"};
	assert_int_equal(hc_approve_parse_decide_args(HC_APPROVE_APPROVE, 3, on_approve, &a, err,
	                                              sizeof(err)), HC_EXIT_USAGE);
}

static void test_show_says_redacted_when_the_database_withheld_the_body(void **state)
{
	(void)state;
	json_t *d = json_loads(
		"{\"message\":{\"id\":5,\"class\":\"important\",\"sender\":\"sam@example.com\","
		"\"subject\":\"Salaries\",\"flags\":[\"confidential\"],\"redacted\":true,"
		"\"body\":null,\"html\":null},\"approvals\":[],\"deliveries\":{}}", 0, NULL);
	assert_non_null(d);
	hc_approve_open_detail(d, NULL);
	char *out = print_detail(d);
	assert_non_null(strstr(out, "subject      Salaries\n"));
	assert_non_null(strstr(out, "\n[confidential: redacted]\n"));
	assert_null(strstr(out, "HTML"));
	free(out);
	json_decref(d);
}

static char keydir[64];

static const char *write_key(const char *name, const uint8_t *key, mode_t mode)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", keydir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, key, 32), 32);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

/* A message_detail document whose body and html were sealed under k1. */
static json_t *sealed_detail(const char *k1_path, char **sealed_body)
{
	hd_seal_t *s = hd_seal_keyring_new();
	char err[512];
	assert_int_equal(hd_seal_keyring_add_key_file(s, "k1", k1_path, err, sizeof(err)), 0);
	assert_int_equal(hd_seal_set_current(s, "k1"), 0);
	char *body, *html;
	size_t len;
	const char *plain = "Bonus pool: SECRET-MARKER-91";
	assert_int_equal(hd_seal_text(s, "body", plain, strlen(plain), &body, &len), 0);
	assert_int_equal(hd_seal_text(s, "html", "<b>x</b>", 8, &html, &len), 0);
	hd_seal_keyring_destroy(&s);
	json_t *d = json_pack("{s:{s:i, s:s, s:s, s:[s], s:s, s:s}, s:[], s:{}}", "message", "id", 6,
	                      "sender", "sam@example.com", "subject", "Bonus", "flags",
	                      "confidential", "body", body, "html", html, "approvals",
	                      "deliveries");
	assert_non_null(d);
	*sealed_body = body;
	free(html);
	return d;
}

static void test_show_never_prints_sealed_text_and_opens_it_with_the_callers_key(void **state)
{
	(void)state;
	snprintf(keydir, sizeof(keydir), "/tmp/test-hc-approve-XXXXXX");
	assert_non_null(mkdtemp(keydir));
	uint8_t k1[32], k2[32];
	for (int i = 0; i < 32; i++) {
		k1[i] = (uint8_t)(i + 1);
		k2[i] = (uint8_t)(200 - i);
	}
	char k1_path[128];
	snprintf(k1_path, sizeof(k1_path), "%s", write_key("k1.key", k1, 0600));

	/* no key */
	char *sealed;
	json_t *d = sealed_detail(k1_path, &sealed);
	hc_approve_open_detail(d, NULL);
	char *out = print_detail(d);
	assert_non_null(strstr(out, "\n[confidential: sealed, no key]\n"));
	assert_null(strstr(out, "hdseal:"));
	assert_null(strstr(out, "SECRET-MARKER-91"));
	assert_false(json_is_true(json_object_get(json_object_get(json_object_get(d, "message"),
	                                                            "sealed"), "opened")));
	free(out);
	json_decref(d);
	free(sealed);

	/* the wrong key, given without an id: it cannot open, and says so */
	hd_seal_t *keys = NULL;
	char err[512];
	assert_int_equal(hc_approve_load_keys(write_key("k2.key", k2, 0600), NULL, NULL, &keys, err,
	                                      sizeof(err)), 0);
	d = sealed_detail(k1_path, &sealed);
	hc_approve_open_detail(d, keys);
	out = print_detail(d);
	assert_non_null(strstr(out, "[confidential: sealed, cannot open: authentication failed]"));
	assert_null(strstr(out, "hdseal:"));
	free(out);
	json_decref(d);
	free(sealed);
	hd_seal_keyring_destroy(&keys);

	/* the right key from HERALD_KEYS ("ID:PATH,..."): the text itself */
	char env_keys[300];
	snprintf(env_keys, sizeof(env_keys), "k0:%s, k1:%s,", write_key("k0.key", k2, 0600), k1_path);
	assert_int_equal(hc_approve_load_keys(NULL, "", env_keys, &keys, err, sizeof(err)), 0);
	d = sealed_detail(k1_path, &sealed);
	hc_approve_open_detail(d, keys);
	out = print_detail(d);
	assert_non_null(strstr(out, "at rest      sealed with key k1; opened with your key\n"));
	assert_non_null(strstr(out, "\nBonus pool: SECRET-MARKER-91\n"));
	assert_null(strstr(out, "hdseal:"));
	const json_t *m = json_object_get(d, "message");
	assert_string_equal(json_string_value(json_object_get(m, "html")), "<b>x</b>");
	assert_true(json_is_true(json_object_get(json_object_get(m, "sealed"), "opened")));
	free(out);
	json_decref(d);
	free(sealed);
	hd_seal_keyring_destroy(&keys);

	/* a key file others may read is refused, naming where it came from */
	const char *loose = write_key("loose.key", k1, 0644);
	assert_int_equal(hc_approve_load_keys(NULL, loose, NULL, &keys, err, sizeof(err)) != 0, 1);
	assert_null(keys);
	assert_non_null(strstr(err, "HERALD_KEY_FILE: "));
	assert_non_null(strstr(err, "loose.key: group or others may access it"));
	assert_int_equal(hc_approve_load_keys(NULL, NULL, "/no/id/here", &keys, err, sizeof(err)) != 0,
	                 1);
	assert_non_null(strstr(err, "HERALD_KEYS: "));
	/* nothing given: no keyring, no error */
	assert_int_equal(hc_approve_load_keys(NULL, "", "", &keys, err, sizeof(err)), 0);
	assert_null(keys);

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", keydir);
	assert_int_equal(system(cmd), 0);
}

static void test_a_body_that_merely_looks_sealed_is_shown_when_not_confidential(void **state)
{
	(void)state;
	json_t *d = json_loads("{\"message\":{\"id\":8,\"body\":\"hdseal:1:k1:just text\","
	                       "\"flags\":[]}}", 0, NULL);
	hc_approve_open_detail(d, NULL);
	char *out = print_detail(d);
	assert_non_null(strstr(out, "\nhdseal:1:k1:just text\n"));
	free(out);
	json_decref(d);
}

static void test_show_lists_findings_and_violations_with_their_clause(void **state)
{
	(void)state;
	json_t *d = json_loads(
		"{\"message\":{\"id\":9,\"body\":\"hi\"},"
		"\"findings\":[{\"rule\":\"cc-needs-reason\",\"clause\":\"E3\",\"action\":\"warn\","
		"\"severity\":\"minor\",\"reason\":\"a CC needs a reason\"}],"
		"\"violations\":[{\"rule\":\"blocked-term\",\"clause\":\"C1\",\"action\":\"reject\","
		"\"severity\":\"major\",\"reason\":\"contains a blocked term\",\"id\":17,"
		"\"at\":\"2026-01-02T03:04:05Z\",\"field\":\"msg.body\",\"by\":\"heraldd\"}]}", 0, NULL);
	assert_non_null(d);
	char *out = print_detail(d);
	assert_non_null(strstr(out, "\npolicy findings\n  E3 cc-needs-reason (warn, minor): "
	                            "a CC needs a reason\n"));
	assert_non_null(strstr(out, "\npolicy violations\n  C1 blocked-term (reject, major): "
	                            "contains a blocked term [msg.body] at 2026-01-02T03:04:05Z "
	                            "by=heraldd\n"));
	free(out);
	json_decref(d);
	/* empty lists: no sections */
	d = json_loads("{\"message\":{\"id\":9},\"findings\":[],\"violations\":[]}", 0, NULL);
	out = print_detail(d);
	assert_null(strstr(out, "policy findings"));
	assert_null(strstr(out, "policy violations"));
	free(out);
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
		cmocka_unit_test(test_show_takes_a_key_file_and_only_show_does),
		cmocka_unit_test(test_show_says_redacted_when_the_database_withheld_the_body),
		cmocka_unit_test(test_show_never_prints_sealed_text_and_opens_it_with_the_callers_key),
		cmocka_unit_test(test_a_body_that_merely_looks_sealed_is_shown_when_not_confidential),
		cmocka_unit_test(test_show_lists_findings_and_violations_with_their_clause),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
