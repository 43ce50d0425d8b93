/*
 * NAME
 *	test_hc_audit - heraldctl's reading of herald.audit_verify()
 * DESCRIPTION
 *	Every problem code the SQL function can report (in the embedded
 *	migration) has an explanation in heraldctl, so an operator never
 *	sees a bare code; clearing a report is safe. The verdict itself is
 *	tested against a real database in 02-migrate-and-schema.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "hc_audit.h"
#include "hc_migrate.h"

static const char *const codes[] = {
	"seq_gap", "prev_hash_mismatch", "hash_mismatch", "digest_mismatch", "link_empty",
	"event_missing", "event_sealed_twice", "event_unsealed", "head_mismatch",
};

static const char *intake_sql(void)
{
	size_t n = 0;
	const hc_migration_t *m = hc_migrate_embedded(&n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].name, "intake") == 0)
			return m[i].file->sql;
	fail_msg("migration 001_intake is not embedded");
	return NULL;
}

static void test_every_problem_code_of_audit_verify_has_an_explanation(void **state)
{
	(void)state;
	const char *sql = intake_sql();
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		char quoted[64];
		snprintf(quoted, sizeof(quoted), "SELECT '%s'", codes[i]);
		if (strstr(sql, quoted) == NULL)
			fail_msg("audit_verify() does not report '%s' any more", codes[i]);
		assert_string_not_equal(hc_audit_problem_text(codes[i]), "unrecognised problem");
	}
}

static void test_audit_verify_reports_no_code_heraldctl_cannot_explain(void **state)
{
	/* Every "SELECT 'code'," in the function body is a known code. */
	(void)state;
	const char *sql = strstr(intake_sql(), "FUNCTION herald.audit_verify()");
	assert_non_null(sql);
	const char *end = strstr(sql, "$$;");
	assert_non_null(end);
	for (const char *p = strstr(sql, "SELECT '"); p != NULL && p < end; p = strstr(p + 1, "SELECT '")) {
		char code[40];
		if (sscanf(p, "SELECT '%39[a-z_]'", code) != 1)
			continue;
		assert_string_not_equal(hc_audit_problem_text(code), "unrecognised problem");
	}
}

static void test_unknown_codes_get_a_generic_text(void **state)
{
	(void)state;
	assert_string_equal(hc_audit_problem_text("no_such_code"), "unrecognised problem");
}

static void test_report_clear_is_null_safe_and_idempotent(void **state)
{
	(void)state;
	hc_audit_report_t r;
	memset(&r, 0, sizeof(r));
	hc_audit_report_clear(&r);
	hc_audit_report_clear(&r);
	hc_audit_report_clear(NULL);
	assert_null(r.problems);
	assert_int_equal(r.nproblems, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_problem_code_of_audit_verify_has_an_explanation),
		cmocka_unit_test(test_audit_verify_reports_no_code_heraldctl_cannot_explain),
		cmocka_unit_test(test_unknown_codes_get_a_generic_text),
		cmocka_unit_test(test_report_clear_is_null_safe_and_idempotent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
