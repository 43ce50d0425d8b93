/*
 * NAME
 *	test_hd_fold - one spelling for every way to write a word
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hd_err.h"
#include "hd_fold.h"

static hd_fold_buf_t buf;

static const char *fold(const char *s)
{
	assert_int_equal(hd_fold(&buf, s, strlen(s)), HD_OK);
	assert_int_equal(strlen(buf.data), buf.len);
	return buf.data;
}

static void test_ascii_is_lower_cased(void **state)
{
	(void)state;
	assert_string_equal(fold("Salary REVIEW 2026"), "salary review 2026");
}

static void test_full_width_letters_and_digits_become_ascii(void **state)
{
	(void)state;
	/* ＳＡＬＡＲＹ１２ */
	assert_string_equal(fold("\xef\xbc\xb3\xef\xbc\xa1\xef\xbc\xac\xef\xbc\xa1\xef\xbc\xb2"
				 "\xef\xbc\xb9\xef\xbc\x91\xef\xbc\x92"), "salary12");
}

static void test_zero_width_and_soft_hyphen_are_removed(void **state)
{
	(void)state;
	assert_string_equal(fold("sa\xe2\x80\x8bla\xe2\x80\x8cry\xc2\xad!"), "salary!");
	assert_string_equal(fold("\xef\xbb\xbf\xe6\x9c\xba\xe2\x81\xa0\xe5\xaf\x86"), "\xe6\x9c\xba\xe5\xaf\x86");
}

static void test_accents_and_ligatures_fold_away(void **state)
{
	(void)state;
	assert_string_equal(fold("Sal\xc3\xa1ry"), "salary");          /* precomposed á */
	assert_string_equal(fold("Sala\xcc\x81ry"), "salary");         /* a + combining acute */
	assert_string_equal(fold("\xef\xac\x81nance"), "finance");     /* ﬁ ligature */
	assert_string_equal(fold("STRASSE stra\xc3\x9f" "e"), "strasse strasse");  /* ß case-folds */
}

static void test_white_space_runs_become_one_space_and_ends_are_trimmed(void **state)
{
	(void)state;
	assert_string_equal(fold("  fake\t\n invoice\xe3\x80\x80 "), "fake invoice");
	assert_string_equal(fold(" \t\n"), "");
	assert_string_equal(fold(""), "");
}

static void test_cjk_passes_through_and_compatibility_ideographs_fold(void **state)
{
	(void)state;
	assert_string_equal(fold("\xe8\x91\xa3\xe4\xba\x8b\xe4\xbc\x9a"), "\xe8\x91\xa3\xe4\xba\x8b\xe4\xbc\x9a");
	/* U+F900 (CJK compatibility) is U+8C48 */
	assert_string_equal(fold("\xef\xa4\x80"), "\xe8\xb1\x88");
}

static void test_invalid_utf8_is_refused_and_leaves_the_buffer_empty(void **state)
{
	(void)state;
	assert_int_equal(hd_fold(&buf, "ab\xff", 3), HD_E_INVALID);
	assert_int_equal(buf.len, 0);
	assert_string_equal(buf.data, "");
	assert_int_equal(hd_fold(&buf, "\xe6\x9c", 2), HD_E_INVALID);
}

static void test_long_text_grows_the_buffer(void **state)
{
	(void)state;
	static char text[100001];
	for (size_t i = 0; i + 3 <= 99999; i += 3)
		memcpy(text + i, "\xef\xb7\xba", 3);  /* U+FDFA: 18 code points each */
	text[99999] = '\0';
	assert_int_equal(hd_fold(&buf, text, strlen(text)), HD_OK);
	assert_true(buf.len > 300000);
}

static int teardown(void **state)
{
	(void)state;
	hd_fold_buf_release(&buf);
	hd_fold_buf_release(NULL);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ascii_is_lower_cased),
		cmocka_unit_test(test_full_width_letters_and_digits_become_ascii),
		cmocka_unit_test(test_zero_width_and_soft_hyphen_are_removed),
		cmocka_unit_test(test_accents_and_ligatures_fold_away),
		cmocka_unit_test(test_white_space_runs_become_one_space_and_ends_are_trimmed),
		cmocka_unit_test(test_cjk_passes_through_and_compatibility_ideographs_fold),
		cmocka_unit_test(test_invalid_utf8_is_refused_and_leaves_the_buffer_empty),
		cmocka_unit_test(test_long_text_grows_the_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
