/*
 * NAME
 *	test_hd_sms_segments - GSM-7 / UCS-2 choice and SMS part counting
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hd_err.h"
#include "hd_sms_segments.h"

static hd_sms_segments_t count(const char *text)
{
	hd_sms_segments_t s;
	memset(&s, 0xa5, sizeof s);
	assert_int_equal(hd_sms_segments_count(text, strlen(text), &s), 0);
	return s;
}

/* n copies of piece, concatenated; caller frees. */
static char *rep(const char *piece, size_t n)
{
	size_t len = strlen(piece);
	char *out = malloc(len * n + 1);
	for (size_t i = 0; i < n; i++)
		memcpy(out + i * len, piece, len);
	out[len * n] = '\0';
	return out;
}

static char *cat3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *out = malloc(la + lb + lc + 1);
	memcpy(out, a, la);
	memcpy(out + la, b, lb);
	memcpy(out + la + lb, c, lc + 1);
	return out;
}

static void test_empty_text_is_one_gsm7_part(void **state)
{
	(void)state;
	hd_sms_segments_t s = count("");
	assert_int_equal(s.encoding, HD_SMS_GSM7);
	assert_int_equal(s.units, 0);
	assert_int_equal(s.chars, 0);
	assert_int_equal(s.segments, 1);
}

static void test_plain_ascii_is_gsm7_one_septet_per_character(void **state)
{
	(void)state;
	hd_sms_segments_t s = count("Your code is 4821. Do not share it!\r\n@$_");
	assert_int_equal(s.encoding, HD_SMS_GSM7);
	assert_int_equal(s.units, 40);
	assert_int_equal(s.chars, 40);
	assert_int_equal(s.segments, 1);
}

static void test_gsm7_boundaries_160_single_then_153_per_part(void **state)
{
	(void)state;
	static const struct { size_t n, parts; } rows[] = {
		{159, 1}, {160, 1}, {161, 2}, {306, 2}, {307, 3}, {459, 3}, {460, 4},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char *t = rep("a", rows[i].n);
		hd_sms_segments_t s = count(t);
		assert_int_equal(s.encoding, HD_SMS_GSM7);
		assert_int_equal(s.units, rows[i].n);
		assert_int_equal(s.segments, rows[i].parts);
		free(t);
	}
}

static void test_extension_table_characters_take_two_septets(void **state)
{
	(void)state;
	hd_sms_segments_t s = count("{}[]~\\|^\xe2\x82\xac"); /* ... and the euro sign */
	assert_int_equal(s.encoding, HD_SMS_GSM7);
	assert_int_equal(s.chars, 9);
	assert_int_equal(s.units, 18);
	s = count("\f");   /* form feed is in the extension table too */
	assert_int_equal(s.units, 2);
	/* 159 septets + one euro = 161: no longer fits one part */
	char *t = rep("a", 159);
	char *u = cat3(t, "\xe2\x82\xac", "");
	s = count(u);
	assert_int_equal(s.units, 161);
	assert_int_equal(s.segments, 2);
	free(t);
	free(u);
}

static void test_extension_character_is_never_split_across_parts(void **state)
{
	(void)state;
	/* 152 + 2 + 152 = 306 septets: 2 parts by arithmetic, 3 on the air */
	char *a = rep("a", 152);
	char *t = cat3(a, "\xe2\x82\xac", a);
	hd_sms_segments_t s = count(t);
	assert_int_equal(s.encoding, HD_SMS_GSM7);
	assert_int_equal(s.units, 306);
	assert_int_equal(s.segments, 3);
	free(a);
	free(t);
}

static void test_gsm7_national_letters_and_greek_stay_gsm7(void **state)
{
	(void)state;
	hd_sms_segments_t s = count("\xc3\xa9\xc3\xa8\xc3\xb1\xc3\xbc\xc3\x85\xc3\x9f\xce\x94\xce\xa6\xc2\xa3\xc2\xa5\xc2\xa7\xc2\xbf"); /* éèñüÅßΔΦ£¥§¿ */
	assert_int_equal(s.encoding, HD_SMS_GSM7);
	assert_int_equal(s.units, 12);
}

static void test_any_character_outside_gsm7_switches_the_whole_text_to_ucs2(void **state)
{
	(void)state;
	hd_sms_segments_t s = count("price `5`");   /* the backquote is not in GSM 03.38 */
	assert_int_equal(s.encoding, HD_SMS_UCS2);
	assert_int_equal(s.units, 9);
	s = count("cr\xc3\xaape");              /* ê is not either */
	assert_int_equal(s.encoding, HD_SMS_UCS2);
	s = count("tab\there");                 /* nor are control characters but CR/LF */
	assert_int_equal(s.encoding, HD_SMS_UCS2);
}

static void test_chinese_verification_code_is_one_ucs2_part(void **state)
{
	(void)state;
	hd_sms_segments_t s = count("验证码 4821，请勿泄露");
	assert_int_equal(s.encoding, HD_SMS_UCS2);
	assert_int_equal(s.chars, 13);
	assert_int_equal(s.units, 13);
	assert_int_equal(s.segments, 1);
	assert_string_equal(hd_sms_segments_encoding_name(s.encoding), "ucs2");
}

static void test_ucs2_boundaries_70_single_then_67_per_part(void **state)
{
	(void)state;
	static const struct { size_t n, parts; } rows[] = {
		{70, 1}, {71, 2}, {134, 2}, {135, 3}, {201, 3}, {202, 4},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char *t = rep("中", rows[i].n);
		hd_sms_segments_t s = count(t);
		assert_int_equal(s.encoding, HD_SMS_UCS2);
		assert_int_equal(s.units, rows[i].n);
		assert_int_equal(s.segments, rows[i].parts);
		free(t);
	}
}

static void test_characters_beyond_the_bmp_count_two_utf16_units(void **state)
{
	(void)state;
	hd_sms_segments_t s = count("ok \xf0\x9f\x98\x80");   /* U+1F600 */
	assert_int_equal(s.encoding, HD_SMS_UCS2);
	assert_int_equal(s.chars, 4);
	assert_int_equal(s.units, 5);
	char *a = rep("中", 69);
	char *t = cat3(a, "\xf0\x9f\x98\x80", "");   /* 69 + 2 = 71 units */
	s = count(t);
	assert_int_equal(s.units, 71);
	assert_int_equal(s.segments, 2);
	free(a);
	free(t);
}

static void test_surrogate_pair_is_never_split_across_parts(void **state)
{
	(void)state;
	/* 66 + 2 + 66 = 134 units: 2 parts by arithmetic, 3 on the air */
	char *a = rep("中", 66);
	char *t = cat3(a, "\xf0\x9f\x98\x80", a);
	hd_sms_segments_t s = count(t);
	assert_int_equal(s.units, 134);
	assert_int_equal(s.segments, 3);
	free(a);
	free(t);
}

static void test_invalid_utf8_is_refused_and_out_untouched(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"\xff", "ab\xc0\xaf", "\xed\xa0\x80", "\xe4\xb8", "\xf4\x90\x80\x80", "\x80",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		hd_sms_segments_t s = {.segments = 77};
		assert_int_equal(hd_sms_segments_count(bad[i], strlen(bad[i]), &s), HD_E_INVALID);
		assert_int_equal(s.segments, 77);
	}
	hd_sms_segments_t s;
	assert_int_equal(hd_sms_segments_count("a\0b", 3, &s), HD_E_INVALID);
}

static void test_membership_predicates_agree_with_the_tables(void **state)
{
	(void)state;
	assert_true(hd_sms_segments_is_gsm7_basic('@'));
	assert_true(hd_sms_segments_is_gsm7_basic(0x00E0));   /* à */
	assert_false(hd_sms_segments_is_gsm7_basic('{'));
	assert_true(hd_sms_segments_is_gsm7_extension('{'));
	assert_true(hd_sms_segments_is_gsm7_extension(0x20AC));
	assert_false(hd_sms_segments_is_gsm7_extension('a'));
	assert_false(hd_sms_segments_is_gsm7_basic(0x4E2D)); /* 中 */
	assert_false(hd_sms_segments_is_gsm7_extension(0x4E2D));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_text_is_one_gsm7_part),
		cmocka_unit_test(test_plain_ascii_is_gsm7_one_septet_per_character),
		cmocka_unit_test(test_gsm7_boundaries_160_single_then_153_per_part),
		cmocka_unit_test(test_extension_table_characters_take_two_septets),
		cmocka_unit_test(test_extension_character_is_never_split_across_parts),
		cmocka_unit_test(test_gsm7_national_letters_and_greek_stay_gsm7),
		cmocka_unit_test(test_any_character_outside_gsm7_switches_the_whole_text_to_ucs2),
		cmocka_unit_test(test_chinese_verification_code_is_one_ucs2_part),
		cmocka_unit_test(test_ucs2_boundaries_70_single_then_67_per_part),
		cmocka_unit_test(test_characters_beyond_the_bmp_count_two_utf16_units),
		cmocka_unit_test(test_surrogate_pair_is_never_split_across_parts),
		cmocka_unit_test(test_invalid_utf8_is_refused_and_out_untouched),
		cmocka_unit_test(test_membership_predicates_agree_with_the_tables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
