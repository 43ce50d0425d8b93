/*
 * NAME
 *	test_hc_csv - the CSV reader of heraldctl's import files
 * DESCRIPTION
 *	Texts are read to the end and every record is written as
 *	"LINE:field|field|...;" so one string shows what a caller gets:
 *	fields, trimming, quoting and the line each record starts on.
 *	Mistakes must give HD_E_INVALID, the exact reason and the line of
 *	the mistake. Also the header mapping (hc_csv_columns).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "hc_csv.h"
#include "hd_err.h"

/*
 * Read len bytes of text to the end or the first mistake; the records
 * read go into out as "LINE:f1|f2;". Returns the last hc_csv_next result;
 * on a mistake, *err_line and why get its line and reason.
 */
static int read_all_len(const char *text, size_t len, size_t max_fields, size_t max_bytes,
                        char *out, size_t outlen, int *err_line, char *why, size_t whylen)
{
	hc_csv_t *c = hc_csv_new(text, len, max_fields, max_bytes);
	const char *const *f = NULL;
	size_t n = 0, used = 0;
	int line = 0, rc;
	out[0] = '\0';
	while ((rc = hc_csv_next(c, &f, &n, &line)) == 1) {
		assert_true(n >= 1);
		used += (size_t)snprintf(out + used, outlen - used, "%d:", line);
		for (size_t i = 0; i < n; i++)
			used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? "|" : "", f[i]);
		used += (size_t)snprintf(out + used, outlen - used, ";");
		assert_true(used < outlen);
	}
	if (rc < 0) {
		assert_null(f);   /* no half record */
		assert_int_equal(n, 0);
		*err_line = line;
		snprintf(why, whylen, "%s", hc_csv_error(c));
	}
	hc_csv_destroy(&c);
	assert_null(c);
	return rc;
}

/* Records of a good text, as read_all_len writes them. */
static void expect_records(const char *text, const char *want)
{
	char out[2048], why[256] = "";
	int line = 0;
	int rc = read_all_len(text, strlen(text), 16, 64, out, sizeof(out), &line, why, sizeof(why));
	if (rc != 0)
		fail_msg("line %d: %s", line, why);
	assert_string_equal(out, want);
}

/* A text whose reading fails at line with reason want (records before it are fine). */
static void expect_mistake_len(const char *text, size_t len, size_t max_fields, size_t max_bytes,
                               int want_line, const char *want)
{
	char out[2048], why[256] = "";
	int line = 0;
	int rc = read_all_len(text, len, max_fields, max_bytes, out, sizeof(out), &line, why,
	                      sizeof(why));
	assert_int_equal(rc, HD_E_INVALID);
	assert_string_equal(why, want);
	assert_int_equal(line, want_line);
}

static void expect_mistake(const char *text, int want_line, const char *want)
{
	expect_mistake_len(text, strlen(text), 16, 64, want_line, want);
}

static void test_fields_split_on_commas_and_records_on_lf_or_crlf(void **state)
{
	(void)state;
	expect_records("a,b,c\nd,e\r\nf\n", "1:a|b|c;2:d|e;3:f;");
	expect_records("last,line,without,newline", "1:last|line|without|newline;");
	expect_records("a,,\n,b\n", "1:a||;2:|b;");
	expect_records("", "");
}

static void test_quoted_fields_keep_commas_line_breaks_crs_and_doubled_quotes(void **state)
{
	(void)state;
	expect_records("\"a, b\",\"say \"\"hi\"\"\"\n", "1:a, b|say \"hi\";");
	expect_records("\"two\nlines\",x\nnext\n", "1:two\nlines|x;3:next;");
	expect_records("\"cr\r\nkept\"\r\n", "1:cr\r\nkept;");
	expect_records("\"\",\"\"\"\"\n", "1:|\";");
}

static void test_unquoted_fields_are_trimmed_and_lose_crs_but_quoted_ones_are_kept(void **state)
{
	(void)state;
	expect_records("  a b\t, \tc  \n", "1:a b|c;");
	expect_records("  \"  kept  \"  ,x\n", "1:  kept  |x;");
	expect_records("a\rb,c\r\n", "1:ab|c;");
}

static void test_blank_lines_and_comments_are_skipped_and_lines_still_counted(void **state)
{
	(void)state;
	expect_records("# header comment\n\n  \t\r\na\n   # indented comment\nb\n\n",
	               "4:a;6:b;");
	expect_records("# only a comment", "");
	/* '#' inside a record is data */
	expect_records("a,#b\n", "1:a|#b;");
}

static void test_a_record_with_a_quoted_line_break_moves_the_next_record_down(void **state)
{
	(void)state;
	expect_records("1,\"a\nb\nc\"\n2\n\n3\n", "1:1|a\nb\nc;4:2;6:3;");
}

static void test_an_unclosed_quote_is_reported_on_the_line_it_opened(void **state)
{
	(void)state;
	expect_mistake("ok\n\"never\nclosed\n", 2, "a quoted field is not closed");
	expect_mistake("a,\"", 1, "a quoted field is not closed");
}

static void test_text_after_a_closing_quote_is_refused(void **state)
{
	(void)state;
	expect_mistake("\"a\"b,c\n", 1, "text after a closing quote");
	expect_mistake("x\n\"a\nb\"c\n", 3, "text after a closing quote");
	/* blanks and a CR before the comma or line end are fine */
	expect_records("\"a\" \t,\"b\"\r\n", "1:a|b;");
}

static void test_a_quote_inside_an_unquoted_field_is_refused(void **state)
{
	(void)state;
	expect_mistake("a,\nb,we\"b\n", 2,
	               "a quote inside an unquoted field (quote the whole field and double the "
	               "quote)");
}

static void test_a_field_holds_max_field_bytes_and_not_one_more(void **state)
{
	(void)state;
	char text[64], want[64];
	memset(text, 'x', 8);
	strcpy(text + 8, "\n");
	snprintf(want, sizeof(want), "1:%.8s;", text);
	char out[256], why[128] = "";
	int line = 0;
	assert_int_equal(read_all_len(text, strlen(text), 4, 8, out, sizeof(out), &line, why,
	                              sizeof(why)),
	                 0);
	assert_string_equal(out, want);
	expect_mistake_len("ok\nxxxxxxxxx\n", 13, 4, 8, 2, "a field is longer than 8 bytes");
	/* quoted: the limit counts the field's bytes, not the quotes */
	assert_int_equal(read_all_len("\"x\"\"xxxxxx\"", 11, 4, 8, out, sizeof(out), &line, why,
	                              sizeof(why)),
	                 0);
	assert_string_equal(out, "1:x\"xxxxxx;");
	expect_mistake_len("\"a\nxxxxxxxx\"", 12, 4, 8, 2, "a field is longer than 8 bytes");
}

static void test_a_record_holds_max_fields_and_not_one_more(void **state)
{
	(void)state;
	char out[256], why[128] = "";
	int line = 0;
	assert_int_equal(read_all_len("a,b,c\n", 6, 3, 8, out, sizeof(out), &line, why, sizeof(why)),
	                 0);
	assert_string_equal(out, "1:a|b|c;");
	expect_mistake_len("a\n\na,b,c,\n", 10, 3, 8, 3, "more than 3 fields");
}

static void test_a_nul_byte_in_a_field_is_refused(void **state)
{
	(void)state;
	expect_mistake_len("ok\na\0b,c\n", 9, 4, 8, 2, "a field contains a NUL byte");
	expect_mistake_len("\"a\0\"\n", 5, 4, 8, 1, "a field contains a NUL byte");
}

static void test_header_columns_map_without_case_in_any_order(void **state)
{
	(void)state;
	static const char *const names[] = {"number", "source", "granted_at"};
	const char *const header[] = {"Source", "NUMBER"};
	int col[3] = {7, 7, 7};
	size_t field = 99, name = 99;
	assert_int_equal(hc_csv_columns(header, 2, names, 3, col, &field, &name), 0);
	assert_int_equal(col[0], 1);
	assert_int_equal(col[1], 0);
	assert_int_equal(col[2], -1);
}

static void test_header_columns_report_the_first_unknown_or_repeated_name(void **state)
{
	(void)state;
	static const char *const names[] = {"kind", "name"};
	int col[2];
	size_t field = 99, name = 99;
	const char *const unknown[] = {"kind", "nmae", "name", "kind"};
	assert_int_equal(hc_csv_columns(unknown, 4, names, 2, col, &field, &name), HD_E_NOTFOUND);
	assert_int_equal(field, 1);
	const char *const twice[] = {"name", "kind", "Name", "bogus"};
	assert_int_equal(hc_csv_columns(twice, 4, names, 2, col, &field, &name), HD_E_INVALID);
	assert_int_equal(field, 2);
	assert_int_equal(name, 1);
}

static void test_destroy_is_null_safe_and_clears_the_pointer(void **state)
{
	(void)state;
	hc_csv_destroy(NULL);
	hc_csv_t *c = NULL;
	hc_csv_destroy(&c);
	c = hc_csv_new("a,b\n", 4, 2, 2);
	const char *const *f = NULL;
	size_t n = 0;
	int line = 0;
	assert_int_equal(hc_csv_next(c, &f, &n, &line), 1);
	hc_csv_destroy(&c);   /* with a record still held */
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields_split_on_commas_and_records_on_lf_or_crlf),
		cmocka_unit_test(test_quoted_fields_keep_commas_line_breaks_crs_and_doubled_quotes),
		cmocka_unit_test(test_unquoted_fields_are_trimmed_and_lose_crs_but_quoted_ones_are_kept),
		cmocka_unit_test(test_blank_lines_and_comments_are_skipped_and_lines_still_counted),
		cmocka_unit_test(test_a_record_with_a_quoted_line_break_moves_the_next_record_down),
		cmocka_unit_test(test_an_unclosed_quote_is_reported_on_the_line_it_opened),
		cmocka_unit_test(test_text_after_a_closing_quote_is_refused),
		cmocka_unit_test(test_a_quote_inside_an_unquoted_field_is_refused),
		cmocka_unit_test(test_a_field_holds_max_field_bytes_and_not_one_more),
		cmocka_unit_test(test_a_record_holds_max_fields_and_not_one_more),
		cmocka_unit_test(test_a_nul_byte_in_a_field_is_refused),
		cmocka_unit_test(test_header_columns_map_without_case_in_any_order),
		cmocka_unit_test(test_header_columns_report_the_first_unknown_or_repeated_name),
		cmocka_unit_test(test_destroy_is_null_safe_and_clears_the_pointer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
