/*
 * NAME
 *	test_hc_policy - what operators type for the policy registries, the
 *	consent CSV files they import, and the tables they read
 * DESCRIPTION
 *	Group names, numbers and providers are checked the way the database
 *	checks them (so a typo is a usage error before any connection); an
 *	endpoint that is a URL is refused; consent files with or without a
 *	header give the document herald.consent_import() expects and every
 *	mistake names the file and line; violations options refuse
 *	contradictions; the tables show what an operator looks for.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc_cli.h"
#include "hc_policy.h"
#include "hd_err.h"

#define ARGV(...) ((char *[]){__VA_ARGS__})
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))

static char *capture_groups(const hc_policy_group_row_t *rows, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	hc_policy_print_groups(f, rows, n);
	fclose(f);
	return buf;
}

static void test_group_names_numbers_and_providers_are_checked_like_the_wire(void **state)
{
	(void)state;
	assert_true(hc_policy_is_plain_name("ops-alerts"));
	assert_true(hc_policy_is_plain_name("team.payments_2"));
	assert_true(hc_policy_is_plain_name("A"));
	assert_false(hc_policy_is_plain_name(""));
	assert_false(hc_policy_is_plain_name("-ops"));
	assert_false(hc_policy_is_plain_name("ops alerts"));
	assert_false(hc_policy_is_plain_name("https://hooks.slack.com/x"));
	assert_false(hc_policy_is_plain_name("组"));
	char longest[65], too_long[66];
	memset(longest, 'a', 64);
	longest[64] = '\0';
	memset(too_long, 'a', 65);
	too_long[65] = '\0';
	assert_true(hc_policy_is_plain_name(longest));
	assert_false(hc_policy_is_plain_name(too_long));

	assert_true(hc_policy_is_e164("+8613800138000"));
	assert_true(hc_policy_is_e164("+12025550123"));
	assert_true(hc_policy_is_e164("+12345678"));          /* 8 digits */
	assert_true(hc_policy_is_e164("+123456789012345"));   /* 15 digits */
	assert_false(hc_policy_is_e164("+1234567"));          /* 7 */
	assert_false(hc_policy_is_e164("+1234567890123456")); /* 16 */
	assert_false(hc_policy_is_e164("8613800138000"));
	assert_false(hc_policy_is_e164("+0123456789"));
	assert_false(hc_policy_is_e164("+86 138 0013 8000"));
	assert_false(hc_policy_is_e164(NULL));

	assert_true(hc_policy_is_provider("slack"));
	assert_true(hc_policy_is_provider("feishu"));
	assert_true(hc_policy_is_provider("webhook"));
	assert_false(hc_policy_is_provider("Slack"));
	assert_false(hc_policy_is_provider("icq"));
}

static void test_departments_are_split_on_commas_trimmed_and_star_stands_alone(void **state)
{
	(void)state;
	json_t *deps = NULL;
	char err[256] = "";
	assert_int_equal(hc_policy_split_departments(" Sales ,Engineering", &deps, err, sizeof(err)),
	                 0);
	char *s = json_dumps(deps, JSON_COMPACT);
	assert_string_equal(s, "[\"Sales\",\"Engineering\"]");
	free(s);
	json_decref(deps);

	assert_int_equal(hc_policy_split_departments("*", &deps, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(deps), 1);
	assert_string_equal(json_string_value(json_array_get(deps, 0)), "*");
	json_decref(deps);

	static const struct {
		const char *in, *msg;
	} bad[] = {
		{"", "--departments needs department names separated by commas, or * for all"},
		{"Sales,,Ops", "--departments needs department names separated by commas, or * for all"},
		{"Sales,", "--departments needs department names separated by commas, or * for all"},
		{"*,Sales", "--departments: * (every department) cannot be combined with names"},
		{"Sales, Sales", "--departments: Sales is given twice"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		deps = (json_t *)1;
		assert_int_equal(hc_policy_split_departments(bad[i].in, &deps, err, sizeof(err)),
		                 HD_E_INVALID);
		assert_null(deps);
		assert_string_equal(err, bad[i].msg);
	}
}

static void test_group_add_needs_every_option_and_refuses_a_url_as_endpoint(void **state)
{
	(void)state;
	hc_policy_group_args_t a;
	char err[512] = "";
	char **good = ARGV("ops-alerts", "--purpose", "on-call alerts", "--owner", "eve@example.com",
	                   "--provider", "dingtalk", "--endpoint=dingtalk-ops", "--departments",
	                   "Operations,Engineering", "--json");
	assert_int_equal(hc_policy_parse_group_add(11, good, &a, err, sizeof(err)), 0);
	assert_string_equal(a.name, "ops-alerts");
	assert_string_equal(a.purpose, "on-call alerts");
	assert_string_equal(a.owner, "eve@example.com");
	assert_string_equal(a.provider, "dingtalk");
	assert_string_equal(a.endpoint, "dingtalk-ops");
	assert_int_equal(json_array_size(a.departments), 2);
	assert_true(a.json);
	hc_policy_group_args_clear(&a);
	assert_null(a.departments);

	const struct {
		int argc;
		char **argv;
		const char *msg;
	} bad[] = {
		{ARGC("--purpose", "p"), ARGV("--purpose", "p"),
		 "which group? (heraldctl group add NAME --purpose P --owner ADDR --provider P "
		 "--endpoint E --departments D1,D2|*)"},
		{ARGC("ops alerts", "--purpose", "p"), ARGV("ops alerts", "--purpose", "p"),
		 "group name 'ops alerts' must be 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter "
		 "or digit"},
		{ARGC("ops", "--owner", "e@x.com", "--provider", "slack", "--endpoint", "e",
		      "--departments", "*"),
		 ARGV("ops", "--owner", "e@x.com", "--provider", "slack", "--endpoint", "e",
		      "--departments", "*"),
		 "--purpose is required"},
		{ARGC("ops", "--purpose", " ", "--owner", "e@x.com"),
		 ARGV("ops", "--purpose", " ", "--owner", "e@x.com"), "--purpose is required"},
		{ARGC("ops", "--purpose", "p", "--owner", "eve", "--provider", "slack", "--endpoint",
		      "e", "--departments", "*"),
		 ARGV("ops", "--purpose", "p", "--owner", "eve", "--provider", "slack", "--endpoint",
		      "e", "--departments", "*"),
		 "--owner must be a staff address, not 'eve'"},
		{ARGC("ops", "--purpose", "p", "--owner", "e@x.com", "--provider", "icq", "--endpoint",
		      "e", "--departments", "*"),
		 ARGV("ops", "--purpose", "p", "--owner", "e@x.com", "--provider", "icq", "--endpoint",
		      "e", "--departments", "*"),
		 "--provider must be slack, mattermost, teams, wecom, dingtalk, feishu or webhook, not "
		 "'icq'"},
		{ARGC("ops", "--purpose", "p", "--owner", "e@x.com", "--provider", "slack", "--endpoint",
		      "https://hooks.slack.com/services/T0/B0/secret", "--departments", "*"),
		 ARGV("ops", "--purpose", "p", "--owner", "e@x.com", "--provider", "slack", "--endpoint",
		      "https://hooks.slack.com/services/T0/B0/secret", "--departments", "*"),
		 "--endpoint names the worker's endpoint entry (1 to 64 of A-Z a-z 0-9 . _ -); the URL "
		 "and its secret belong in herald-worker.conf, never in the database"},
		{ARGC("ops", "--purpose", "p", "--owner", "e@x.com", "--provider", "slack", "--endpoint",
		      "e", "--departments", "*,Sales"),
		 ARGV("ops", "--purpose", "p", "--owner", "e@x.com", "--provider", "slack", "--endpoint",
		      "e", "--departments", "*,Sales"),
		 "--departments: * (every department) cannot be combined with names"},
		{ARGC("ops", "--colour", "red"), ARGV("ops", "--colour", "red"),
		 "unknown option '--colour'"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(hc_policy_parse_group_add(bad[i].argc, bad[i].argv, &a, err,
		                                           sizeof(err)),
		                 HC_EXIT_USAGE);
		assert_string_equal(err, bad[i].msg);
		hc_policy_group_args_clear(&a);
	}
}

static void test_consent_changes_need_an_e164_number_and_a_source(void **state)
{
	(void)state;
	hc_policy_consent_args_t a;
	char err[512] = "";
	assert_int_equal(hc_policy_parse_consent_args(3, ARGV("+8613800138000", "--source",
	                                                       "replied STOP"),
	                                              &a, err, sizeof(err)),
	                 0);
	assert_string_equal(a.number, "+8613800138000");
	assert_string_equal(a.source, "replied STOP");
	assert_false(a.json);

	assert_int_equal(hc_policy_parse_consent_args(3, ARGV("13800138000", "--source", "x"), &a,
	                                              err, sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_string_equal(err, "'13800138000' is not an E.164 number (+ then 8 to 15 digits, the "
	                         "first not 0, no spaces)");
	assert_int_equal(hc_policy_parse_consent_args(1, ARGV("+8613800138000"), &a, err,
	                                              sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_string_equal(err, "--source is required: where the consent or opt-out came from");
	assert_int_equal(hc_policy_parse_consent_args(2, ARGV("--source", "x"), &a, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_string_equal(err, "which number? give one, in E.164 form (+8613800138000)");
	assert_int_equal(hc_policy_parse_consent_args(4, ARGV("+8613800138000", "+8613800138001",
	                                                       "--source", "x"),
	                                              &a, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_string_equal(err, "too many arguments (at most 1)");
}

static json_t *csv_ok(const char *text)
{
	json_t *doc = NULL;
	char err[512] = "";
	int rc = hc_policy_parse_consent_csv("c.csv", text, strlen(text), &doc, err, sizeof(err));
	if (rc != 0)
		fail_msg("parse failed: %s", err);
	assert_non_null(doc);
	return doc;
}

static void csv_fails(const char *text, const char *want)
{
	json_t *doc = (json_t *)1;
	char err[512] = "";
	int rc = hc_policy_parse_consent_csv("c.csv", text, strlen(text), &doc, err, sizeof(err));
	assert_int_not_equal(rc, 0);
	assert_null(doc);
	assert_string_equal(err, want);
}

static void test_a_consent_csv_with_or_without_header_gives_the_import_document(void **state)
{
	(void)state;
	json_t *plain = csv_ok("# exported from the CRM\n"
	                       "+8613800138000,web form\n"
	                       "\n"
	                       "+12025550123, \"paper form, signed\" ,2024-07-01T12:00:00Z\r\n"
	                       "+4915112345678,shop,\n");
	char *s = json_dumps(plain, JSON_COMPACT);
	assert_string_equal(
		s, "[{\"number\":\"+8613800138000\",\"source\":\"web form\",\"granted_at\":null},"
		   "{\"number\":\"+12025550123\",\"source\":\"paper form, signed\","
		   "\"granted_at\":\"2024-07-01T12:00:00.000Z\"},"
		   "{\"number\":\"+4915112345678\",\"source\":\"shop\",\"granted_at\":null}]");
	free(s);
	json_decref(plain);

	json_t *headed = csv_ok("granted_at,Number,source\n"
	                        "2024-07-01T14:00:00+02:00,+12025550123,\"say \"\"yes\"\"\"\n"
	                        ",+8613800138000,web form\n");
	s = json_dumps(headed, JSON_COMPACT);
	assert_string_equal(
		s, "[{\"number\":\"+12025550123\",\"source\":\"say \\\"yes\\\"\","
		   "\"granted_at\":\"2024-07-01T12:00:00.000Z\"},"
		   "{\"number\":\"+8613800138000\",\"source\":\"web form\",\"granted_at\":null}]");
	free(s);
	json_decref(headed);
}

static void test_consent_csv_mistakes_name_the_file_and_line(void **state)
{
	(void)state;
	csv_fails("+8613800138000,web\n+86 138 0013 8000,web\n",
	          "c.csv:2: '+86 138 0013 8000' is not an E.164 number (+ then 8 to 15 digits, the "
	          "first not 0, no spaces)");
	csv_fails("# c\n\n+8613800138000\n", "c.csv:3: +8613800138000 has no source");
	csv_fails("+8613800138000,web,yesterday\n",
	          "c.csv:1: granted_at 'yesterday' is not an ISO 8601 time (2024-07-01T12:00:00Z)");
	csv_fails("+8613800138000,web,2h\n",
	          "c.csv:1: granted_at '2h' is not an ISO 8601 time (2024-07-01T12:00:00Z)");
	csv_fails("+8613800138000,web,2024-07-01,extra\n",
	          "c.csv:1: 4 fields, expected number,source[,granted_at]");
	csv_fails("number,source,consented\n",
	          "c.csv:1: unknown column 'consented' (columns are number, source, granted_at)");
	csv_fails("number,granted_at\n+8613800138000,2024-07-01\n",
	          "c.csv:1: the header needs the columns number and source");
	csv_fails("number,source\n+8613800138000,\"web\n", "c.csv:2: a quoted field is not closed");
	csv_fails("+8613800138000,we\"b\n",
	          "c.csv:1: a quote inside an unquoted field (quote the whole field and double the "
	          "quote)");
	csv_fails("# nothing\n\nnumber,source\n", "c.csv: no numbers: nothing to import");
	csv_fails("", "c.csv: no numbers: nothing to import");
}

static void test_violations_options_parse_times_and_refuse_contradictions(void **state)
{
	(void)state;
	hc_policy_violations_args_t a;
	char err[512] = "";
	const int64_t now = 1782864000000; /* 2026-07-01T00:00:00Z */
	assert_int_equal(hc_policy_parse_violations_args(0, NULL, now, &a, err, sizeof(err)), 0);
	assert_int_equal(a.since_ms, 0);
	assert_int_equal(a.until_ms, 0);
	assert_int_equal(a.by, HC_POLICY_BY_NONE);
	assert_int_equal(a.limit, HC_POLICY_DEFAULT_LIMIT);

	assert_int_equal(hc_policy_parse_violations_args(
		                 9, ARGV("--since", "7d", "--until", "2026-06-30T12:00:00Z", "--sender",
		                         "sam@example.com", "--limit", "5", "--json"),
		                 now, &a, err, sizeof(err)),
	                 0);
	assert_int_equal(a.since_ms, now - 7 * 86400000LL);
	assert_int_equal(a.until_ms, now - 12 * 3600000LL);
	assert_string_equal(a.sender, "sam@example.com");
	assert_null(a.department);
	assert_int_equal(a.limit, 5);
	assert_true(a.json);

	assert_int_equal(hc_policy_parse_violations_args(2, ARGV("--by", "department"), now, &a, err,
	                                                 sizeof(err)),
	                 0);
	assert_int_equal(a.by, HC_POLICY_BY_DEPARTMENT);

	const struct {
		int argc;
		char **argv;
		const char *msg;
	} bad[] = {
		{2, ARGV("--by", "app"), "--by must be sender or department, not 'app'"},
		{4, ARGV("--by", "sender", "--sender", "a@b.c"),
		 "--by counts every sender or department: it does not go with --sender, --department "
		 "or --limit"},
		{4, ARGV("--since", "1h", "--until", "2h"), "--since must be before --until"},
		{2, ARGV("--limit", "0"), "--limit must be a number from 1 to 100000, not '0'"},
		{2, ARGV("--department", ""), "--department needs a name"},
		{1, ARGV("sam@example.com"), "unexpected argument 'sam@example.com'"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(hc_policy_parse_violations_args(bad[i].argc, bad[i].argv, now, &a, err,
		                                                 sizeof(err)),
		                 HC_EXIT_USAGE);
		assert_string_equal(err, bad[i].msg);
	}
	assert_int_equal(hc_policy_parse_violations_args(2, ARGV("--since", "last week"), now, &a,
	                                                 err, sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_non_null(strstr(err, "--since: "));
}

static void test_the_groups_table_shows_who_may_post_and_counts_removed_groups(void **state)
{
	(void)state;
	hc_policy_group_row_t rows[] = {
		{"eng", "engineering chat", "erin@example.com", "slack", "slack-eng",
		 "Engineering, Sales", true},
		{"all-hands", "announcements", "carol@example.com", "wecom", "wecom-all", "*", true},
		{"old", "retired\nteam", "carol@example.com", "webhook", "hook-old", "Sales", false},
	};
	char *out = capture_groups(rows, 3);
	assert_string_equal(
		out,
		"NAME       PURPOSE           OWNER              PROVIDER  ENDPOINT   DEPARTMENTS"
		"           STATE\n"
		"eng        engineering chat  erin@example.com   slack     slack-eng  Engineering, Sales"
		"    active\n"
		"all-hands  announcements     carol@example.com  wecom     wecom-all  * (every department)"
		"  active\n"
		"old        retired team      carol@example.com  webhook   hook-old   Sales"
		"                 removed\n"
		"2 work groups, 1 removed\n");
	free(out);
	out = capture_groups(NULL, 0);
	assert_string_equal(out, "no work groups registered (heraldctl group add NAME ...)\n");
	free(out);
}

static void test_the_violations_table_says_how_many_of_how_many_were_shown(void **state)
{
	(void)state;
	hc_policy_violation_row_t rows[] = {
		{"2026-07-01 09:00:00", "sam@example.com", "Engineering", "I3", "major", "reject",
		 "im_group", NULL, "msg.to[1]", "group \"ops\" is not a registered work group (POLICY I3)"},
		{"2026-07-01 08:00:00", "mallory@evil.example", NULL, "I2", "critical", "reject",
		 "civility", NULL, "msg.body", "threat"},
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	hc_policy_print_violations(f, rows, 2, 7);
	fclose(f);
	assert_non_null(strstr(buf, "AT (UTC)             SENDER                DEPARTMENT   CLAUSE"));
	assert_non_null(strstr(buf, "sam@example.com       Engineering  I3      major     reject"));
	assert_non_null(strstr(buf, "mallory@evil.example  -            I2      critical"));
	assert_non_null(strstr(buf, "group \"ops\" is not a registered work group (POLICY I3)\n"));
	assert_non_null(strstr(buf, "\n2 of 7 violations shown (newest first; see --limit)\n"));
	free(buf);

	buf = NULL;
	f = open_memstream(&buf, &len);
	hc_policy_print_violations(f, rows, 1, 1);
	hc_policy_print_violations(f, NULL, 0, 0);
	fclose(f);
	assert_non_null(strstr(buf, "\n1 violation\nno violations\n"));
	free(buf);
}

static void test_the_report_counts_per_sender_or_per_department(void **state)
{
	(void)state;
	hc_policy_report_row_t rows[] = {
		{"sam@example.com", "Engineering", 5, 1, 3, 1, 0, "2026-07-01 09:00:00"},
		{NULL, NULL, 2, 2, 0, 0, 0, "2026-06-30 10:00:00"},
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	hc_policy_print_report(f, HC_POLICY_BY_SENDER, rows, 1);
	fclose(f);
	assert_string_equal(buf,
	                    "SENDER           DEPARTMENT   TOTAL  CRITICAL  MAJOR  MINOR  INFO  "
	                    "LAST (UTC)\n"
	                    "sam@example.com  Engineering      5         1      3      1     0  "
	                    "2026-07-01 09:00:00\n"
	                    "5 violations, 1 sender\n");
	free(buf);

	buf = NULL;
	f = open_memstream(&buf, &len);
	rows[0].key = "Engineering";
	hc_policy_print_report(f, HC_POLICY_BY_DEPARTMENT, rows, 2);
	fclose(f);
	assert_string_equal(buf,
	                    "DEPARTMENT       TOTAL  CRITICAL  MAJOR  MINOR  INFO  LAST (UTC)\n"
	                    "Engineering          5         1      3      1     0  "
	                    "2026-07-01 09:00:00\n"
	                    "(no department)      2         2      0      0     0  "
	                    "2026-06-30 10:00:00\n"
	                    "7 violations, 2 departments\n");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_group_names_numbers_and_providers_are_checked_like_the_wire),
		cmocka_unit_test(test_departments_are_split_on_commas_trimmed_and_star_stands_alone),
		cmocka_unit_test(test_group_add_needs_every_option_and_refuses_a_url_as_endpoint),
		cmocka_unit_test(test_consent_changes_need_an_e164_number_and_a_source),
		cmocka_unit_test(test_a_consent_csv_with_or_without_header_gives_the_import_document),
		cmocka_unit_test(test_consent_csv_mistakes_name_the_file_and_line),
		cmocka_unit_test(test_violations_options_parse_times_and_refuse_contradictions),
		cmocka_unit_test(test_the_groups_table_shows_who_may_post_and_counts_removed_groups),
		cmocka_unit_test(test_the_violations_table_says_how_many_of_how_many_were_shown),
		cmocka_unit_test(test_the_report_counts_per_sender_or_per_department),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
