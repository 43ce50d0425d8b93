/*
 * NAME
 *	test_hc_cli - heraldctl's command lookup and option parsing
 * DESCRIPTION
 *	What a user of heraldctl relies on: multi-word commands are found,
 *	global options work anywhere on the line, and every malformed
 *	command line is a usage error (exit 2) rather than a guess.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "hc_cli.h"
#include "hd_err.h"

static int dummy(hc_ctx_t *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	return 0;
}

static const hc_command_t table[] = {
	{"db migrate", dummy, "m", "", ""},
	{"db status", dummy, "s", "[--json]", ""},
	{"stats", dummy, "st", "", ""},
	{"org import", dummy, "oi", "FILE", ""},
	{"org", dummy, "o", "", ""},
};
#define NTABLE (sizeof(table) / sizeof(table[0]))

static void test_find_matches_a_two_word_command_and_counts_its_words(void **state)
{
	(void)state;
	char *argv[] = {"db", "status", "--json"};
	int nwords = 0;
	const hc_command_t *c = hc_cli_find(table, NTABLE, 3, argv, &nwords);
	assert_ptr_equal(c, &table[1]);
	assert_int_equal(nwords, 2);
}

static void test_find_prefers_the_longest_matching_name(void **state)
{
	(void)state;
	char *a1[] = {"org", "import", "x.csv"};
	int nwords = 0;
	assert_ptr_equal(hc_cli_find(table, NTABLE, 3, a1, &nwords), &table[3]);
	assert_int_equal(nwords, 2);
	char *a2[] = {"org", "x.csv"};
	assert_ptr_equal(hc_cli_find(table, NTABLE, 2, a2, &nwords), &table[4]);
	assert_int_equal(nwords, 1);
}

static void test_find_returns_null_for_unknown_or_incomplete_commands(void **state)
{
	(void)state;
	int nwords = 7;
	char *a1[] = {"bogus"};
	assert_null(hc_cli_find(table, NTABLE, 1, a1, &nwords));
	assert_int_equal(nwords, 0);
	char *a2[] = {"db"};
	assert_null(hc_cli_find(table, NTABLE, 1, a2, &nwords));
	char *a3[] = {"db", "migrat"};
	assert_null(hc_cli_find(table, NTABLE, 2, a3, &nwords));
	char *a4[] = {"dbmigrate"};
	assert_null(hc_cli_find(table, NTABLE, 1, a4, &nwords));
}

static void test_find_group_lists_the_subcommands_of_a_word(void **state)
{
	(void)state;
	char *argv[] = {"db"};
	const hc_command_t *out[NTABLE];
	assert_int_equal(hc_cli_find_group(table, NTABLE, 1, argv, out, NTABLE), 2);
	assert_ptr_equal(out[0], &table[0]);
	assert_ptr_equal(out[1], &table[1]);
	char *none[] = {"stats"};
	assert_int_equal(hc_cli_find_group(table, NTABLE, 1, none, out, NTABLE), 0);
}

static void test_split_globals_takes_db_and_help_from_anywhere(void **state)
{
	(void)state;
	char *argv[] = {"heraldctl", "db", "--db", "host=x", "migrate", "-h", "--json"};
	hc_globals_t g;
	char *rest[8];
	size_t nrest = 0;
	char err[128];
	assert_int_equal(hc_cli_split_globals(7, argv, &g, rest, 8, &nrest, err, sizeof(err)), 0);
	assert_string_equal(g.conninfo, "host=x");
	assert_true(g.help);
	assert_false(g.version);
	assert_int_equal(nrest, 3);
	assert_string_equal(rest[0], "db");
	assert_string_equal(rest[1], "migrate");
	assert_string_equal(rest[2], "--json");
}

static void test_split_globals_accepts_db_equals_and_stops_at_double_dash(void **state)
{
	(void)state;
	char *argv[] = {"heraldctl", "--db=postgresql://u@h/d", "org", "import", "--", "--db"};
	hc_globals_t g;
	char *rest[8];
	size_t nrest = 0;
	char err[128];
	assert_int_equal(hc_cli_split_globals(6, argv, &g, rest, 8, &nrest, err, sizeof(err)), 0);
	assert_string_equal(g.conninfo, "postgresql://u@h/d");
	assert_int_equal(nrest, 4);
	assert_string_equal(rest[2], "--");
	assert_string_equal(rest[3], "--db");
}

static void test_split_globals_rejects_db_without_a_value(void **state)
{
	(void)state;
	char *argv[] = {"heraldctl", "db", "status", "--db"};
	hc_globals_t g;
	char *rest[8];
	size_t nrest = 0;
	char err[128];
	assert_int_equal(hc_cli_split_globals(4, argv, &g, rest, 8, &nrest, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_non_null(strstr(err, "--db"));
}

static void test_split_globals_rejects_more_arguments_than_fit(void **state)
{
	(void)state;
	char *argv[] = {"heraldctl", "a", "b", "c"};
	hc_globals_t g;
	char *rest[2];
	size_t nrest = 0;
	char err[128];
	assert_int_equal(hc_cli_split_globals(4, argv, &g, rest, 2, &nrest, err, sizeof(err)),
	                 HC_EXIT_USAGE);
}

static const hc_opt_t spec[] = {{"json", false}, {"limit", true}};

static void test_parse_opts_reads_flags_and_both_value_forms(void **state)
{
	(void)state;
	const char *values[2];
	char *pos[2];
	size_t npos = 0;
	char err[128];
	char *a1[] = {"--json", "--limit", "5", "file"};
	assert_int_equal(hc_cli_parse_opts(4, a1, spec, 2, values, pos, 2, &npos, err, sizeof(err)), 0);
	assert_string_equal(values[0], "");
	assert_string_equal(values[1], "5");
	assert_int_equal(npos, 1);
	assert_string_equal(pos[0], "file");
	char *a2[] = {"--limit=7"};
	assert_int_equal(hc_cli_parse_opts(1, a2, spec, 2, values, pos, 2, &npos, err, sizeof(err)), 0);
	assert_null(values[0]);
	assert_string_equal(values[1], "7");
	assert_int_equal(npos, 0);
}

static void test_parse_opts_treats_everything_after_double_dash_as_positional(void **state)
{
	(void)state;
	const char *values[2];
	char *pos[2];
	size_t npos = 0;
	char err[128];
	char *argv[] = {"--", "--json"};
	assert_int_equal(hc_cli_parse_opts(2, argv, spec, 2, values, pos, 2, &npos, err, sizeof(err)), 0);
	assert_null(values[0]);
	assert_int_equal(npos, 1);
	assert_string_equal(pos[0], "--json");
}

static void test_parse_opts_rejects_every_malformed_form_as_usage_error(void **state)
{
	(void)state;
	const char *values[2];
	char *pos[1];
	size_t npos = 0;
	char err[128];
	char *unknown[] = {"--jsonx"};
	assert_int_equal(hc_cli_parse_opts(1, unknown, spec, 2, values, pos, 1, &npos, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_non_null(strstr(err, "--jsonx"));
	char *shortopt[] = {"-j"};
	assert_int_equal(hc_cli_parse_opts(1, shortopt, spec, 2, values, pos, 1, &npos, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	char *flag_value[] = {"--json=yes"};
	assert_int_equal(hc_cli_parse_opts(1, flag_value, spec, 2, values, pos, 1, &npos, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	char *missing[] = {"--limit"};
	assert_int_equal(hc_cli_parse_opts(1, missing, spec, 2, values, pos, 1, &npos, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	char *too_many[] = {"a", "b"};
	assert_int_equal(hc_cli_parse_opts(2, too_many, spec, 2, values, pos, 1, &npos, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	char *unexpected[] = {"a"};
	assert_int_equal(hc_cli_parse_opts(1, unexpected, spec, 2, values, NULL, 0, &npos, err, sizeof(err)),
	                 HC_EXIT_USAGE);
	assert_non_null(strstr(err, "'a'"));
}

static void test_exit_code_is_4_only_for_an_unreachable_database(void **state)
{
	(void)state;
	assert_int_equal(hc_cli_exit_code(0), HC_EXIT_OK);
	assert_int_equal(hc_cli_exit_code(HD_E_UNAVAILABLE), HC_EXIT_UNREACHABLE);
	assert_int_equal(hc_cli_exit_code(HD_E_IO), HC_EXIT_FAIL);
	assert_int_equal(hc_cli_exit_code(HD_E_INVALID), HC_EXIT_FAIL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find_matches_a_two_word_command_and_counts_its_words),
		cmocka_unit_test(test_find_prefers_the_longest_matching_name),
		cmocka_unit_test(test_find_returns_null_for_unknown_or_incomplete_commands),
		cmocka_unit_test(test_find_group_lists_the_subcommands_of_a_word),
		cmocka_unit_test(test_split_globals_takes_db_and_help_from_anywhere),
		cmocka_unit_test(test_split_globals_accepts_db_equals_and_stops_at_double_dash),
		cmocka_unit_test(test_split_globals_rejects_db_without_a_value),
		cmocka_unit_test(test_split_globals_rejects_more_arguments_than_fit),
		cmocka_unit_test(test_parse_opts_reads_flags_and_both_value_forms),
		cmocka_unit_test(test_parse_opts_treats_everything_after_double_dash_as_positional),
		cmocka_unit_test(test_parse_opts_rejects_every_malformed_form_as_usage_error),
		cmocka_unit_test(test_exit_code_is_4_only_for_an_unreachable_database),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
