/*
 * NAME
 *	test_hd_num - the strict whole-number parser behind program options
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>

#include "hd_num.h"

static void test_a_number_within_bounds_is_parsed_including_both_bounds(void **state)
{
	(void)state;
	long v = 0;
	assert_true(hd_num_parse_long("1", 1, 100, &v));
	assert_int_equal(v, 1);
	assert_true(hd_num_parse_long("100", 1, 100, &v));
	assert_int_equal(v, 100);
	assert_true(hd_num_parse_long("-5", -10, 10, &v));
	assert_int_equal(v, -5);
}

static void test_out_of_bounds_or_overflow_is_refused_and_out_untouched(void **state)
{
	(void)state;
	long v = 42;
	assert_false(hd_num_parse_long("0", 1, 100, &v));
	assert_false(hd_num_parse_long("101", 1, 100, &v));
	assert_false(hd_num_parse_long("99999999999999999999999", 1, LONG_MAX, &v));
	assert_int_equal(v, 42);
}

static void test_anything_but_digits_is_refused(void **state)
{
	(void)state;
	long v = 42;
	const char *bad[] = {"", "abc", "12x", "x12", "1.5", "1e3", " "};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_false(hd_num_parse_long(bad[i], 0, 1000, &v));
	assert_false(hd_num_parse_long(NULL, 0, 1000, &v));
	assert_int_equal(v, 42);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_number_within_bounds_is_parsed_including_both_bounds),
		cmocka_unit_test(test_out_of_bounds_or_overflow_is_refused_and_out_untouched),
		cmocka_unit_test(test_anything_but_digits_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
