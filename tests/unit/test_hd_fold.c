/*
 * NAME
 *	test_hd_fold - one spelling for every way to write a word
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <utf8proc.h>

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

/*
 * The fold of "a" + cp + "b" straight from utf8proc, as hd_fold defines
 * it: white space between the letters becomes one space.
 */
static void reference_fold(utf8proc_int32_t cp, char *out, size_t cap)
{
	utf8proc_int32_t dec[32];
	int bound = UTF8PROC_BOUNDCLASS_START;
	utf8proc_ssize_t m = utf8proc_decompose_char(
		cp, dec, 32, UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE | UTF8PROC_CASEFOLD |
		UTF8PROC_IGNORE | UTF8PROC_STRIPMARK, &bound);
	size_t len = 0;
	bool space = false;
	out[len++] = 'a';
	for (utf8proc_ssize_t k = 0; k < m; k++) {
		utf8proc_category_t cat = utf8proc_category(dec[k]);
		if (dec[k] == ' ' || (dec[k] >= 9 && dec[k] <= 13) || dec[k] == 0x85 ||
		    cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
		    cat == UTF8PROC_CATEGORY_ZP) {
			space = true;
			continue;
		}
		if (space)
			out[len++] = ' ';
		space = false;
		len += (size_t)utf8proc_encode_char(dec[k], (utf8proc_uint8_t *)out + len);
		assert_true(len + 8 < cap);
	}
	if (space)
		out[len++] = ' ';
	out[len++] = 'b';
	out[len] = '\0';
}

static void test_every_bmp_character_folds_as_utf8proc_says(void **state)
{
	(void)state;
	for (utf8proc_int32_t cp = 1; cp < 0x10000; cp++) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		unsigned char in[8];
		in[0] = 'a';
		size_t n = 1 + (size_t)utf8proc_encode_char(cp, in + 1);
		in[n++] = 'b';
		char want[256];
		reference_fold(cp, want, sizeof(want));
		assert_int_equal(hd_fold(&buf, (const char *)in, n), HD_OK);
		if (strcmp(buf.data, want) != 0)
			fail_msg("U+%04X: got \"%s\", want \"%s\"", (unsigned)cp, buf.data, want);
	}
}

static void test_characters_beyond_the_bmp_fold_too(void **state)
{
	(void)state;
	/* U+1D400 MATHEMATICAL BOLD CAPITAL A, U+1F600 an emoji (kept). */
	assert_string_equal(fold("\xf0\x9d\x90\x80pple \xf0\x9f\x98\x80"), "apple \xf0\x9f\x98\x80");
	assert_int_equal(hd_fold(&buf, "\xf4\x90\x80\x80", 4), HD_E_INVALID);  /* > U+10FFFF */
	assert_int_equal(hd_fold(&buf, "\xed\xa0\x80", 3), HD_E_INVALID);       /* surrogate */
	assert_int_equal(hd_fold(&buf, "\xc0\xaf", 2), HD_E_INVALID);            /* overlong */
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
		cmocka_unit_test(test_every_bmp_character_folds_as_utf8proc_says),
		cmocka_unit_test(test_characters_beyond_the_bmp_fold_too),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
