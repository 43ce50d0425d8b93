/*
 * NAME
 *	test_hd_err - the one error space
 * DESCRIPTION
 *	The properties producers rely on (docs/PROTOCOL.md): every code has
 *	a distinct stable wire name that maps back to it, the retryable set
 *	is exactly the documented one, and no lookup ever returns NULL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "hd_err.h"

static const int all_codes[] = {
#define CODE_(sym, wire, retry, text) HD_E_##sym,
	HD_ERRNO_MAP(CODE_)
#undef CODE_
};
#define NCODES (sizeof all_codes / sizeof all_codes[0])

static void test_every_code_is_negative_and_distinct(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++) {
		assert_true(all_codes[i] < 0);
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(all_codes[i], all_codes[j]);
	}
}

static void test_every_wire_name_is_distinct_and_maps_back_to_its_code(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++) {
		const char *name = hd_err_name(all_codes[i]);
		assert_non_null(name);
		assert_true(strlen(name) > 0);
		assert_int_equal(hd_err_from_name(name), all_codes[i]);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(name, hd_err_name(all_codes[j]));
	}
}

static void test_documented_wire_names_are_stable(void **state)
{
	(void)state;
	/* Producers match on these strings: changing one breaks clients. */
	assert_string_equal(hd_err_name(HD_E_MALFORMED), "malformed");
	assert_string_equal(hd_err_name(HD_E_VERSION), "version");
	assert_string_equal(hd_err_name(HD_E_UNKNOWN_FIELD), "unknown_field");
	assert_string_equal(hd_err_name(HD_E_TYPE), "wrong_type");
	assert_string_equal(hd_err_name(HD_E_MISSING), "missing");
	assert_string_equal(hd_err_name(HD_E_TOOBIG), "too_big");
	assert_string_equal(hd_err_name(HD_E_INVALID), "invalid");
	assert_string_equal(hd_err_name(HD_E_POLICY), "policy");
	assert_string_equal(hd_err_name(HD_E_UNAVAILABLE), "unavailable");
	assert_string_equal(hd_err_name(HD_E_BUSY), "busy");
	assert_string_equal(hd_err_name(HD_E_TIMEOUT), "timeout");
	assert_string_equal(hd_err_name(HD_E_INTERNAL), "internal");
}

static void test_only_environment_failures_are_retryable(void **state)
{
	(void)state;
	for (size_t i = 0; i < NCODES; i++) {
		int c = all_codes[i];
		bool expect = c == HD_E_UNAVAILABLE || c == HD_E_BUSY || c == HD_E_TIMEOUT ||
			      c == HD_E_IO;
		assert_int_equal(hd_err_is_retryable(c), expect);
	}
	assert_false(hd_err_is_retryable(HD_OK));
	assert_false(hd_err_is_retryable(12345));
}

static void test_lookups_never_return_null(void **state)
{
	(void)state;
	assert_string_equal(hd_strerror(HD_OK), "success");
	assert_string_equal(hd_err_name(HD_OK), "ok");
	assert_non_null(hd_strerror(-1));
	assert_non_null(hd_strerror(999));
	assert_string_equal(hd_err_name(999), "internal");
	for (size_t i = 0; i < NCODES; i++)
		assert_true(strlen(hd_strerror(all_codes[i])) > 0);
}

static void test_an_unknown_wire_name_maps_to_internal(void **state)
{
	(void)state;
	assert_int_equal(hd_err_from_name("no_such_code"), HD_E_INTERNAL);
	assert_int_equal(hd_err_from_name(""), HD_E_INTERNAL);
	assert_int_equal(hd_err_from_name("Malformed"), HD_E_INTERNAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_code_is_negative_and_distinct),
		cmocka_unit_test(test_every_wire_name_is_distinct_and_maps_back_to_its_code),
		cmocka_unit_test(test_documented_wire_names_are_stable),
		cmocka_unit_test(test_only_environment_failures_are_retryable),
		cmocka_unit_test(test_lookups_never_return_null),
		cmocka_unit_test(test_an_unknown_wire_name_maps_to_internal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
