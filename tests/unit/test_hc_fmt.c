/*
 * NAME
 *	test_hc_fmt - what operators type (times, ids) and read (ages, rates)
 * DESCRIPTION
 *	--since accepts the forms the help promises and nothing else,
 *	relative ages count back from now, ISO 8601 offsets are honoured and
 *	a time without one is local; id lists are positive, deduplicated and
 *	bounded; durations and rates print the way the tables show them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hc_fmt.h"
#include "hd_err.h"

#define NOW_MS 1719835200000LL /* 2024-07-01T12:00:00Z */

static int64_t parse_ok(const char *text)
{
	int64_t ms = -1;
	char err[256] = "";
	int rc = hc_fmt_parse_time(text, NOW_MS, &ms, err, sizeof(err));
	if (rc != 0)
		fail_msg("'%s' was refused: %s", text, err);
	return ms;
}

static void set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static void test_parse_time_counts_relative_ages_back_from_now(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("90s"), NOW_MS - 90 * 1000LL);
	assert_int_equal(parse_ok("30m"), NOW_MS - 30 * 60 * 1000LL);
	assert_int_equal(parse_ok("1h"), NOW_MS - 3600 * 1000LL);
	assert_int_equal(parse_ok("2d"), NOW_MS - 2 * 86400 * 1000LL);
	assert_int_equal(parse_ok("1w"), NOW_MS - 7 * 86400 * 1000LL);
	assert_int_equal(parse_ok("1h30m"), NOW_MS - 5400 * 1000LL);
	assert_int_equal(parse_ok("0s"), NOW_MS);
}

static void test_parse_time_reads_iso_8601_in_utc_and_with_offsets(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("2024-07-01T12:00:00Z"), NOW_MS);
	assert_int_equal(parse_ok("2024-07-01t12:00:00z"), NOW_MS);
	assert_int_equal(parse_ok("2024-07-01 12:00Z"), NOW_MS);
	assert_int_equal(parse_ok("2024-07-01T14:00:00+02:00"), NOW_MS);
	assert_int_equal(parse_ok("2024-07-01T14:00:00+0200"), NOW_MS);
	assert_int_equal(parse_ok("2024-07-01T14:00+02"), NOW_MS);
	assert_int_equal(parse_ok("2024-07-01T06:30:00-05:30"), NOW_MS);
	assert_int_equal(parse_ok("2024-07-01T12:00:00.250Z"), NOW_MS + 250);
	assert_int_equal(parse_ok("2024-07-01T12:00:00,5Z"), NOW_MS + 500);
	assert_int_equal(parse_ok("2024-02-29T00:00:00Z"), 1709164800000LL);
	assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
}

static void test_parse_time_without_offset_is_local_time(void **state)
{
	(void)state;
	char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	set_tz("UTC0");
	assert_int_equal(parse_ok("2024-07-01"), NOW_MS - 12 * 3600 * 1000LL);
	assert_int_equal(parse_ok("2024-07-01T12:00"), NOW_MS);
	set_tz("XYZ-2"); /* two hours east of UTC, no daylight saving */
	assert_int_equal(parse_ok("2024-07-01T14:00:00"), NOW_MS);
	assert_int_equal(parse_ok("2024-07-01"), NOW_MS - 14 * 3600 * 1000LL);
	if (old != NULL) {
		set_tz(old);
		free(old);
	} else {
		unsetenv("TZ");
		tzset();
	}
}

static void test_parse_time_rejects_what_it_cannot_read_and_names_the_forms(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "yesterday", "30", "m", "1x", "1h 30m", "-1h", "1.5h", "2024-13-01",
		"2024-02-30", "2023-02-29", "2024-07-01T25:00Z", "2024-07-01T12:60Z",
		"2024-07-01T12:00:00Zjunk", "2024-07-01T12", "2024-7-1", "1969-12-31",
		"2024-07-01T12:00:00+25:00", "2024-07-01T12:00:00.Z", "1234567890123s",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms = 42;
		char err[256] = "";
		if (hc_fmt_parse_time(bad[i], NOW_MS, &ms, err, sizeof(err)) != HD_E_INVALID)
			fail_msg("'%s' was accepted as %lld", bad[i], (long long)ms);
		assert_non_null(strstr(err, "30m"));
		assert_non_null(strstr(err, "ISO 8601"));
		assert_int_equal(ms, 42);
	}
	int64_t ms = 0;
	char err[256] = "";
	assert_int_equal(hc_fmt_parse_time(NULL, NOW_MS, &ms, err, sizeof(err)), HD_E_INVALID);
}

static void test_parse_time_refuses_ages_beyond_a_century(void **state)
{
	(void)state;
	int64_t ms = 0;
	char err[256] = "";
	assert_int_equal(hc_fmt_parse_time("99999999d", NOW_MS, &ms, err, sizeof(err)),
	                 HD_E_INVALID);
	assert_non_null(strstr(err, "too far back"));
	assert_int_equal(hc_fmt_parse_time("36000d36000d", NOW_MS, &ms, err, sizeof(err)),
	                 HD_E_INVALID);
	assert_int_equal(hc_fmt_parse_time("5200w", NOW_MS, &ms, err, sizeof(err)), 0);
}

static void test_days_from_civil_matches_known_dates(void **state)
{
	(void)state;
	assert_int_equal(hc_fmt_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(hc_fmt_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(hc_fmt_days_from_civil(2000, 3, 1), 11017);
	assert_int_equal(hc_fmt_days_from_civil(2024, 2, 29), 19782);
	assert_int_equal(hc_fmt_days_from_civil(2024, 7, 1), NOW_MS / 86400000LL);
}

static void test_parse_ids_takes_separate_and_comma_separated_ids_once_each(void **state)
{
	(void)state;
	char *argv[] = {"12", "13,14", "12", "9000000000000000000"};
	int64_t ids[8];
	size_t n = 0;
	char err[256];
	assert_int_equal(hc_fmt_parse_ids(4, argv, ids, 8, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 4);
	assert_int_equal(ids[0], 12);
	assert_int_equal(ids[1], 13);
	assert_int_equal(ids[2], 14);
	assert_int_equal(ids[3], 9000000000000000000LL);
}

static void test_parse_ids_rejects_what_is_not_a_positive_id_and_names_it(void **state)
{
	(void)state;
	static const char *const bad[] = {"0", "-1", "1,,2", "12a", "", "1,", ",1", "+3",
	                                  "99999999999999999999", "1 2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = {"5", (char *)bad[i]};
		int64_t ids[8];
		size_t n = 0;
		char err[256] = "";
		if (hc_fmt_parse_ids(2, argv, ids, 8, &n, err, sizeof(err)) != HD_E_INVALID)
			fail_msg("'%s' was accepted", bad[i]);
		assert_non_null(strstr(err, "is not a delivery id"));
	}
	char *argv[] = {"12a"};
	int64_t ids[2];
	size_t n = 0;
	char err[256] = "";
	hc_fmt_parse_ids(1, argv, ids, 2, &n, err, sizeof(err));
	assert_non_null(strstr(err, "'12a'"));
}

static void test_parse_ids_refuses_more_than_max(void **state)
{
	(void)state;
	char *argv[] = {"1,2,3", "4"};
	int64_t ids[3];
	size_t n = 0;
	char err[256] = "";
	assert_int_equal(hc_fmt_parse_ids(2, argv, ids, 3, &n, err, sizeof(err)), HD_E_TOOBIG);
	assert_non_null(strstr(err, "at most 3"));
	/* duplicates do not count against the limit */
	char *dup[] = {"1,2,3", "3,2,1"};
	assert_int_equal(hc_fmt_parse_ids(2, dup, ids, 3, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
}

static void test_age_shows_the_two_largest_units(void **state)
{
	(void)state;
	char buf[32];
	assert_string_equal(hc_fmt_age(0, buf, sizeof(buf)), "0s");
	assert_string_equal(hc_fmt_age(45.9, buf, sizeof(buf)), "45s");
	assert_string_equal(hc_fmt_age(187, buf, sizeof(buf)), "3m 07s");
	assert_string_equal(hc_fmt_age(7500, buf, sizeof(buf)), "2h 05m");
	assert_string_equal(hc_fmt_age(273600, buf, sizeof(buf)), "3d 04h");
	assert_string_equal(hc_fmt_age(-5, buf, sizeof(buf)), "0s");
}

static void test_rate_is_a_percentage_or_a_dash(void **state)
{
	(void)state;
	char buf[16];
	assert_string_equal(hc_fmt_rate(0.125, buf, sizeof(buf)), "12.5%");
	assert_string_equal(hc_fmt_rate(1, buf, sizeof(buf)), "100.0%");
	assert_string_equal(hc_fmt_rate(0, buf, sizeof(buf)), "0.0%");
	assert_string_equal(hc_fmt_rate(-1, buf, sizeof(buf)), "-");
}

static void test_iso_ms_is_utc_with_milliseconds(void **state)
{
	(void)state;
	char buf[40];
	assert_string_equal(hc_fmt_iso_ms(NOW_MS + 7, buf, sizeof(buf)), "2024-07-01T12:00:00.007Z");
	assert_string_equal(hc_fmt_iso_ms(0, buf, sizeof(buf)), "1970-01-01T00:00:00.000Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_time_counts_relative_ages_back_from_now),
		cmocka_unit_test(test_parse_time_reads_iso_8601_in_utc_and_with_offsets),
		cmocka_unit_test(test_parse_time_without_offset_is_local_time),
		cmocka_unit_test(test_parse_time_rejects_what_it_cannot_read_and_names_the_forms),
		cmocka_unit_test(test_parse_time_refuses_ages_beyond_a_century),
		cmocka_unit_test(test_days_from_civil_matches_known_dates),
		cmocka_unit_test(test_parse_ids_takes_separate_and_comma_separated_ids_once_each),
		cmocka_unit_test(test_parse_ids_rejects_what_is_not_a_positive_id_and_names_it),
		cmocka_unit_test(test_parse_ids_refuses_more_than_max),
		cmocka_unit_test(test_age_shows_the_two_largest_units),
		cmocka_unit_test(test_rate_is_a_percentage_or_a_dash),
		cmocka_unit_test(test_iso_ms_is_utc_with_milliseconds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
