/*
 * NAME
 *	test_hd_time - clocks and jittered exponential backoff
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hd_time.h"

static void test_backoff_doubles_within_jitter_bounds_and_respects_the_cap(void **state)
{
	(void)state;
	for (int round = 0; round < 200; round++) {
		for (unsigned attempt = 0; attempt < 12; attempt++) {
			int64_t full = 100;
			for (unsigned i = 0; i < attempt && full < 5000; i++)
				full *= 2;
			if (full > 5000)
				full = 5000;
			int64_t d = hd_time_backoff_ms(attempt, 100, 5000);
			assert_true(d >= full - full / 2);
			assert_true(d <= full);
		}
	}
}

static void test_backoff_is_jittered_not_constant(void **state)
{
	(void)state;
	int64_t first = hd_time_backoff_ms(3, 100, 5000);
	int differs = 0;
	for (int i = 0; i < 50 && !differs; i++)
		differs = hd_time_backoff_ms(3, 100, 5000) != first;
	assert_true(differs);
}

static void test_backoff_never_returns_zero(void **state)
{
	(void)state;
	assert_true(hd_time_backoff_ms(0, 0, 0) >= 1);
	assert_true(hd_time_backoff_ms(1000, 1, 1) >= 1);
}

static void test_clocks_move_forward(void **state)
{
	(void)state;
	int64_t a = hd_time_mono_ms(), w = hd_time_now_us();
	assert_true(w > 1700000000LL * 1000000LL); /* after 2023 */
	assert_true(hd_time_mono_ms() >= a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_doubles_within_jitter_bounds_and_respects_the_cap),
		cmocka_unit_test(test_backoff_is_jittered_not_constant),
		cmocka_unit_test(test_backoff_never_returns_zero),
		cmocka_unit_test(test_clocks_move_forward),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
