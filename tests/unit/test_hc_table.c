/*
 * NAME
 *	test_hc_table - the aligned tables of heraldctl's human output
 * DESCRIPTION
 *	Columns line up (also with accented text), numbers are right
 *	aligned, lines carry no trailing spaces, and whatever a provider
 *	wrote into an error (newlines, tabs, a very long text, multi-byte
 *	characters) cannot break the layout or cut a character in half.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc_table.h"

/* Print t into a string (caller frees). */
static char *render(const hc_table_t *t, int indent)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	hc_table_print(t, f, indent);
	fclose(f);
	return buf;
}

static void test_columns_are_as_wide_as_their_widest_cell_and_numbers_align_right(void **state)
{
	(void)state;
	static const hc_table_col_t cols[] = {{"NAME", false, 0}, {"COUNT", true, 0}, {"NOTE", false, 0}};
	hc_table_t *t = hc_table_new(cols, 3);
	const char *r1[] = {"email", "5", "ok"};
	const char *r2[] = {"sms", "12345", "slow"};
	hc_table_add(t, r1);
	hc_table_add(t, r2);
	assert_int_equal(hc_table_rows(t), 2);
	char *s = render(t, 2);
	assert_string_equal(s,
	                    "  NAME   COUNT  NOTE\n"
	                    "  email      5  ok\n"
	                    "  sms    12345  slow\n");
	free(s);
	hc_table_destroy(&t);
	assert_null(t);
}

static void test_lines_have_no_trailing_spaces_when_last_cells_are_empty(void **state)
{
	(void)state;
	static const hc_table_col_t cols[] = {{"A", false, 0}, {"B", false, 0}, {"C", false, 0}};
	hc_table_t *t = hc_table_new(cols, 3);
	const char *r1[] = {"total", "", ""};
	const char *r2[] = {"x", "longer", "y"};
	hc_table_add(t, r1);
	hc_table_add(t, r2);
	char *s = render(t, 0);
	assert_string_equal(s,
	                    "A      B       C\n"
	                    "total\n"
	                    "x      longer  y\n");
	free(s);
	hc_table_destroy(&t);
}

static void test_width_counts_characters_not_bytes(void **state)
{
	(void)state;
	assert_int_equal(hc_table_width("abc"), 3);
	assert_int_equal(hc_table_width("ünï"), 3);
	assert_int_equal(hc_table_width("重要"), 2);
	assert_int_equal(hc_table_width(""), 0);
	static const hc_table_col_t cols[] = {{"N", false, 0}, {"V", true, 0}};
	hc_table_t *t = hc_table_new(cols, 2);
	const char *r1[] = {"Zoë", "1"};
	const char *r2[] = {"Bob", "22"};
	hc_table_add(t, r1);
	hc_table_add(t, r2);
	char *s = render(t, 0);
	assert_string_equal(s, "N     V\nZoë   1\nBob  22\n");
	free(s);
	hc_table_destroy(&t);
}

static void test_control_characters_become_spaces_and_null_cells_a_dash(void **state)
{
	(void)state;
	static const hc_table_col_t cols[] = {{"ERROR", false, 0}, {"X", false, 0}};
	hc_table_t *t = hc_table_new(cols, 2);
	const char *r1[] = {"550 no\r\nsuch\tuser\x1b[31m", NULL};
	hc_table_add(t, r1);
	char *s = render(t, 0);
	assert_non_null(strstr(s, "550 no  such user [31m  -\n"));
	assert_null(strchr(s, '\r'));
	free(s);
	hc_table_destroy(&t);
}

static void test_long_cells_are_cut_with_an_ellipsis_at_a_character_boundary(void **state)
{
	(void)state;
	char buf[64];
	assert_string_equal(hc_table_clean("abcdefghij", 8, buf, sizeof(buf)), "abcde...");
	assert_string_equal(hc_table_clean("abcdefgh", 8, buf, sizeof(buf)), "abcdefgh");
	assert_string_equal(hc_table_clean("ééééééééé", 6, buf, sizeof(buf)), "ééé...");
	assert_int_equal(hc_table_width(buf), 6);
	/* a buffer too small for the text: still whole characters, still marked */
	char small[8];
	hc_table_clean("ééééééééé", 0, small, sizeof(small));
	assert_string_equal(small, "éé...");
	hc_table_clean("abcdefghijkl", 0, small, sizeof(small));
	assert_string_equal(small, "abcd...");
	assert_string_equal(hc_table_clean("", 5, buf, sizeof(buf)), "");
}

static void test_a_column_limit_applies_to_every_row(void **state)
{
	(void)state;
	static const hc_table_col_t cols[] = {{"SUBJECT", false, 10}, {"N", true, 0}};
	hc_table_t *t = hc_table_new(cols, 2);
	const char *r1[] = {"A very long subject line indeed", "1"};
	hc_table_add(t, r1);
	char *s = render(t, 0);
	assert_string_equal(s, "SUBJECT     N\nA very ...  1\n");
	free(s);
	hc_table_destroy(&t);
}

static void test_destroy_is_null_safe(void **state)
{
	(void)state;
	hc_table_t *t = NULL;
	hc_table_destroy(&t);
	hc_table_destroy(NULL);
	assert_null(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_columns_are_as_wide_as_their_widest_cell_and_numbers_align_right),
		cmocka_unit_test(test_lines_have_no_trailing_spaces_when_last_cells_are_empty),
		cmocka_unit_test(test_width_counts_characters_not_bytes),
		cmocka_unit_test(test_control_characters_become_spaces_and_null_cells_a_dash),
		cmocka_unit_test(test_long_cells_are_cut_with_an_ellipsis_at_a_character_boundary),
		cmocka_unit_test(test_a_column_limit_applies_to_every_row),
		cmocka_unit_test(test_destroy_is_null_safe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
