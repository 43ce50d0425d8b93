/*
 * NAME
 *	test_hc_migrate - the embedded migrations and the migrate decisions
 * DESCRIPTION
 *	What a deployer relies on without a server: the migrations built
 *	into heraldctl are complete, ordered and carry the right checksums,
 *	file names parse strictly, and the comparison with
 *	herald.schema_migrations applies exactly the pending ones and
 *	refuses a history that was tampered with or is newer than the
 *	binary. The database side is tests/integration/02-migrate-and-schema.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "hc_migrate.h"
#include "hd_err.h"

static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(digest, (const unsigned char *)data, len);
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static void test_embedded_migrations_exist_and_start_with_001_intake(void **state)
{
	(void)state;
	size_t n = 0;
	const hc_migration_t *m = hc_migrate_embedded(&n);
	assert_true(n >= 1);
	assert_int_equal(m[0].version, 1);
	assert_string_equal(m[0].name, "intake");
	assert_string_equal(m[0].file->filename, "001_intake.sql");
}

static void test_embedded_migrations_have_strictly_increasing_versions(void **state)
{
	(void)state;
	size_t n = 0;
	const hc_migration_t *m = hc_migrate_embedded(&n);
	for (size_t i = 1; i < n; i++)
		assert_true(m[i].version > m[i - 1].version);
}

static void test_embedded_checksums_are_the_sha256_of_the_embedded_sql(void **state)
{
	(void)state;
	assert_true(sodium_init() >= 0);
	size_t n = 0;
	const hc_migration_t *m = hc_migrate_embedded(&n);
	for (size_t i = 0; i < n; i++) {
		char hex[65];
		assert_int_equal(strlen(m[i].file->sql), m[i].file->sql_len);
		sha256_hex(m[i].file->sql, m[i].file->sql_len, hex);
		assert_string_equal(hex, m[i].file->sha256);
	}
}

static void test_embedded_sql_has_no_transaction_control(void **state)
{
	/* heraldctl wraps each migration in its own transaction. */
	(void)state;
	static const char *const forbidden[] = {"COMMIT", "ROLLBACK", "BEGIN;", "BEGIN TRANSACTION",
	                                        "START TRANSACTION"};
	size_t n = 0;
	const hc_migration_t *m = hc_migrate_embedded(&n);
	for (size_t i = 0; i < n; i++) {
		const char *line = m[i].file->sql;
		while (line && *line) {
			const char *p = line;
			while (*p == ' ' || *p == '\t')
				p++;
			for (size_t f = 0; f < sizeof(forbidden) / sizeof(forbidden[0]); f++) {
				if (strncmp(p, forbidden[f], strlen(forbidden[f])) == 0)
					fail_msg("%s contains '%s' at the start of a line",
					         m[i].file->filename, forbidden[f]);
			}
			line = strchr(line, '\n');
			if (line)
				line++;
		}
	}
}

static void test_parse_filename_accepts_three_digits_underscore_name(void **state)
{
	(void)state;
	int v = 0;
	char name[HC_MIGRATION_NAME_MAX];
	assert_int_equal(hc_migrate_parse_filename("001_intake.sql", &v, name, sizeof(name)), 0);
	assert_int_equal(v, 1);
	assert_string_equal(name, "intake");
	assert_int_equal(hc_migrate_parse_filename("042_approvals_v2.sql", &v, name, sizeof(name)), 0);
	assert_int_equal(v, 42);
	assert_string_equal(name, "approvals_v2");
	assert_int_equal(hc_migrate_parse_filename("999_x.sql", &v, name, sizeof(name)), 0);
	assert_int_equal(v, 999);
}

static void test_parse_filename_rejects_anything_else(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"01_intake.sql", "0001_intake.sql", "000_intake.sql", "001intake.sql",
		"001-intake.sql", "001_Intake.sql", "001_in take.sql", "001_.sql",
		"001_intake.SQL", "001_intake.sql.orig", "001_intake", "abc_intake.sql", "",
		"00a_intake.sql",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int v = -7;
		char name[HC_MIGRATION_NAME_MAX] = "untouched";
		assert_int_equal(hc_migrate_parse_filename(bad[i], &v, name, sizeof(name)), HD_E_INVALID);
		assert_int_equal(v, -7);
		assert_string_equal(name, "untouched");
	}
}

static void test_parse_filename_rejects_a_name_that_does_not_fit(void **state)
{
	(void)state;
	int v = 0;
	char name[8];
	assert_int_equal(hc_migrate_parse_filename("001_abcdefg.sql", &v, name, sizeof(name)), 0);
	assert_int_equal(hc_migrate_parse_filename("001_abcdefgh.sql", &v, name, sizeof(name)),
	                 HD_E_INVALID);
}

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void test_load_rejects_duplicate_and_decreasing_versions(void **state)
{
	(void)state;
	hc_migration_t out[3];
	char err[256];
	const hc_sql_file_t dup[] = {{"001_a.sql", "x", 1, SHA_A}, {"001_b.sql", "y", 1, SHA_B}};
	assert_int_equal(hc_migrate_load(dup, 2, out, err, sizeof(err)), HD_E_INVALID);
	assert_non_null(strstr(err, "001_b.sql"));
	const hc_sql_file_t down[] = {{"002_a.sql", "x", 1, SHA_A}, {"001_b.sql", "y", 1, SHA_B}};
	assert_int_equal(hc_migrate_load(down, 2, out, err, sizeof(err)), HD_E_INVALID);
	const hc_sql_file_t ok[] = {{"001_a.sql", "x", 1, SHA_A}, {"005_b.sql", "y", 1, SHA_B}};
	assert_int_equal(hc_migrate_load(ok, 2, out, err, sizeof(err)), 0);
	assert_int_equal(out[1].version, 5);
	assert_ptr_equal(out[1].file, &ok[1]);
}

static void test_load_rejects_malformed_checksum_and_embedded_nul(void **state)
{
	(void)state;
	hc_migration_t out[1];
	char err[256];
	const hc_sql_file_t upper[] = {{"001_a.sql", "x", 1,
	                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}};
	assert_int_equal(hc_migrate_load(upper, 1, out, err, sizeof(err)), HD_E_INVALID);
	const hc_sql_file_t shorter[] = {{"001_a.sql", "x", 1, "abc"}};
	assert_int_equal(hc_migrate_load(shorter, 1, out, err, sizeof(err)), HD_E_INVALID);
	const hc_sql_file_t nul[] = {{"001_a.sql", "x\0y", 3, SHA_A}};
	assert_int_equal(hc_migrate_load(nul, 1, out, err, sizeof(err)), HD_E_INVALID);
}

/* Three known migrations 1, 2, 3 with checksums A, B, A. */
static const hc_sql_file_t known_files[] = {
	{"001_one.sql", "select 1;", 9, SHA_A},
	{"002_two.sql", "select 2;", 9, SHA_B},
	{"003_three.sql", "select 3;", 9, SHA_A},
};

static void load_known(hc_migration_t known[3])
{
	char err[256];
	assert_int_equal(hc_migrate_load(known_files, 3, known, err, sizeof(err)), 0);
}

static void test_compare_marks_unapplied_migrations_pending_in_order(void **state)
{
	(void)state;
	hc_migration_t known[3];
	load_known(known);
	hc_applied_t applied[1] = {{1, "one", SHA_A, "2024-01-01T00:00:00Z"}};
	hc_mig_row_t rows[4];
	size_t n = hc_migrate_compare(known, 3, applied, 1, rows);
	assert_int_equal(n, 3);
	assert_int_equal(rows[0].state, HC_MIG_APPLIED);
	assert_int_equal(rows[1].state, HC_MIG_PENDING);
	assert_int_equal(rows[1].version, 2);
	assert_false(rows[1].out_of_order);
	assert_int_equal(rows[2].state, HC_MIG_PENDING);
	assert_int_equal(rows[2].version, 3);
	char err[256];
	assert_int_equal(hc_migrate_check(rows, n, err, sizeof(err)), 0);
}

static void test_compare_on_an_empty_database_makes_everything_pending(void **state)
{
	(void)state;
	hc_migration_t known[3];
	load_known(known);
	hc_mig_row_t rows[3];
	size_t n = hc_migrate_compare(known, 3, NULL, 0, rows);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(rows[i].state, HC_MIG_PENDING);
	char err[256];
	assert_int_equal(hc_migrate_check(rows, n, err, sizeof(err)), 0);
}

static void test_check_refuses_an_applied_migration_whose_checksum_changed(void **state)
{
	(void)state;
	hc_migration_t known[3];
	load_known(known);
	hc_applied_t applied[2] = {{1, "one", SHA_A, ""}, {2, "two", SHA_A, ""}};
	hc_mig_row_t rows[5];
	size_t n = hc_migrate_compare(known, 3, applied, 2, rows);
	assert_int_equal(rows[1].state, HC_MIG_MODIFIED);
	char err[512];
	assert_int_equal(hc_migrate_check(rows, n, err, sizeof(err)), HD_E_INVALID);
	assert_non_null(strstr(err, "002_two"));
}

static void test_check_refuses_a_database_newer_than_the_binary(void **state)
{
	(void)state;
	hc_migration_t known[3];
	load_known(known);
	hc_applied_t applied[4] = {{1, "one", SHA_A, ""}, {2, "two", SHA_B, ""},
	                           {3, "three", SHA_A, ""}, {4, "four", SHA_B, ""}};
	hc_mig_row_t rows[7];
	size_t n = hc_migrate_compare(known, 3, applied, 4, rows);
	assert_int_equal(n, 4);
	assert_int_equal(rows[3].state, HC_MIG_UNKNOWN);
	assert_null(rows[3].known);
	char err[512];
	assert_int_equal(hc_migrate_check(rows, n, err, sizeof(err)), HD_E_INVALID);
	assert_non_null(strstr(err, "004_four"));
}

static void test_check_refuses_a_pending_migration_older_than_an_applied_one(void **state)
{
	(void)state;
	hc_migration_t known[3];
	load_known(known);
	hc_applied_t applied[2] = {{1, "one", SHA_A, ""}, {3, "three", SHA_A, ""}};
	hc_mig_row_t rows[5];
	size_t n = hc_migrate_compare(known, 3, applied, 2, rows);
	assert_int_equal(n, 3);
	assert_int_equal(rows[1].state, HC_MIG_PENDING);
	assert_true(rows[1].out_of_order);
	char err[512];
	assert_int_equal(hc_migrate_check(rows, n, err, sizeof(err)), HD_E_INVALID);
	assert_non_null(strstr(err, "002_two"));
}

static void test_line_of_counts_lines_by_characters_not_bytes(void **state)
{
	(void)state;
	const char *text = "a\n\xc3\xa9\xc3\xa9\nxyz";  /* "a", "éé", "xyz" */
	assert_int_equal(hc_migrate_line_of(text, 0), 1);
	assert_int_equal(hc_migrate_line_of(text, 1), 1); /* the newline itself */
	assert_int_equal(hc_migrate_line_of(text, 2), 2);
	assert_int_equal(hc_migrate_line_of(text, 4), 2); /* second newline: char 4 */
	assert_int_equal(hc_migrate_line_of(text, 5), 3);
	assert_int_equal(hc_migrate_line_of(text, 1000), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_embedded_migrations_exist_and_start_with_001_intake),
		cmocka_unit_test(test_embedded_migrations_have_strictly_increasing_versions),
		cmocka_unit_test(test_embedded_checksums_are_the_sha256_of_the_embedded_sql),
		cmocka_unit_test(test_embedded_sql_has_no_transaction_control),
		cmocka_unit_test(test_parse_filename_accepts_three_digits_underscore_name),
		cmocka_unit_test(test_parse_filename_rejects_anything_else),
		cmocka_unit_test(test_parse_filename_rejects_a_name_that_does_not_fit),
		cmocka_unit_test(test_load_rejects_duplicate_and_decreasing_versions),
		cmocka_unit_test(test_load_rejects_malformed_checksum_and_embedded_nul),
		cmocka_unit_test(test_compare_marks_unapplied_migrations_pending_in_order),
		cmocka_unit_test(test_compare_on_an_empty_database_makes_everything_pending),
		cmocka_unit_test(test_check_refuses_an_applied_migration_whose_checksum_changed),
		cmocka_unit_test(test_check_refuses_a_database_newer_than_the_binary),
		cmocka_unit_test(test_check_refuses_a_pending_migration_older_than_an_applied_one),
		cmocka_unit_test(test_line_of_counts_lines_by_characters_not_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
