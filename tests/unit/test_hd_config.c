/*
 * NAME
 *	test_hd_config - configuration table, bounds and file:line errors
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hd_config.h"
#include "hd_err.h"

static char *write_temp(const char *text)
{
	char *path = strdup("/tmp/hd_config_test_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static int load_text(const char *text, hd_config_t **cfg, char *err, size_t errlen)
{
	char *path = write_temp(text);
	int rc = hd_config_load(path, cfg, err, errlen);
	unlink(path);
	free(path);
	return rc;
}

static void test_defaults_load_without_a_file(void **state)
{
	(void)state;
	hd_config_t *cfg = NULL;
	char err[256];
	assert_int_equal(hd_config_load(NULL, &cfg, err, sizeof(err)), HD_OK);
	assert_string_equal(cfg->listen, "tcp://127.0.0.1:7711");
	assert_int_equal(cfg->intake.batch_max_messages, 256);
	assert_int_equal(cfg->classify.bulk_threshold, 50);
	assert_string_equal(cfg->classify.important_tag, "[重要]");
	hd_config_destroy(&cfg);
	assert_null(cfg);
}

static void test_values_from_file_override_defaults(void **state)
{
	(void)state;
	hd_config_t *cfg = NULL;
	char err[256];
	assert_int_equal(load_text("listen = \"tcp://127.0.0.1:9999\";\n"
				   "intake = { batch_max_messages = 10; };\n"
				   "dispatch = { rate_limits = [\"im=20/60\", \"sms=1/1\"]; };\n"
				   "policy = { rules = ( { id = \"x\"; } ); };\n",
				   &cfg, err, sizeof(err)), HD_OK);
	assert_string_equal(cfg->listen, "tcp://127.0.0.1:9999");
	assert_int_equal(cfg->intake.batch_max_messages, 10);
	assert_int_equal(cfg->intake.batch_max_wait_ms, 0); /* untouched default */
	assert_int_equal(cfg->dispatch.rate_limit_count, 2);
	assert_string_equal(cfg->dispatch.rate_limits[1], "sms=1/1");
	/* The policy group belongs to hd_policy, which checks it. */
	hd_config_destroy(&cfg);
}

static void test_unknown_setting_fails_with_file_and_line(void **state)
{
	(void)state;
	hd_config_t *cfg = NULL;
	char err[256];
	assert_int_equal(load_text("listen = \"tcp://127.0.0.1:1\";\nintake = {\n  batch_size = 3;\n};\n",
				   &cfg, err, sizeof(err)), HD_E_CONFIG);
	assert_null(cfg);
	assert_non_null(strstr(err, ":3: intake.batch_size: unknown setting"));
}

static void test_out_of_range_value_fails_naming_the_bounds(void **state)
{
	(void)state;
	hd_config_t *cfg = NULL;
	char err[256];
	assert_int_equal(load_text("classify = { bulk_threshold = 1; };\n", &cfg, err, sizeof(err)),
			 HD_E_CONFIG);
	assert_non_null(strstr(err, ":1: classify.bulk_threshold: 1 is outside [2, 10000]"));
}

static void test_wrong_type_fails(void **state)
{
	(void)state;
	hd_config_t *cfg = NULL;
	char err[256];
	assert_int_equal(load_text("log_level = 3;\n", &cfg, err, sizeof(err)), HD_E_CONFIG);
	assert_non_null(strstr(err, "log_level: expected a string"));
	assert_int_equal(load_text("dispatch = { rate_limits = [1, 2]; };\n", &cfg, err,
				   sizeof(err)), HD_E_CONFIG);
	assert_non_null(strstr(err, "every item must be a non-empty string"));
}

static void test_syntax_error_and_missing_file_are_reported(void **state)
{
	(void)state;
	hd_config_t *cfg = NULL;
	char err[256];
	assert_int_equal(load_text("listen = ;\n", &cfg, err, sizeof(err)), HD_E_CONFIG);
	assert_non_null(strstr(err, ":1: "));
	assert_int_equal(hd_config_load("/nonexistent/heraldd.conf", &cfg, err, sizeof(err)),
			 HD_E_CONFIG);
	assert_non_null(strstr(err, "cannot read file"));
}

static void test_bad_log_level_and_inverted_backoff_are_refused(void **state)
{
	(void)state;
	hd_config_t *cfg = NULL;
	char err[256];
	assert_int_equal(load_text("log_level = \"loud\";\n", &cfg, err, sizeof(err)), HD_E_CONFIG);
	assert_int_equal(load_text("database = { reconnect_min_ms = 500; reconnect_max_ms = 100; };\n",
				   &cfg, err, sizeof(err)), HD_E_CONFIG);
	assert_non_null(strstr(err, "reconnect_min_ms exceeds"));
}

static void test_printed_config_loads_back_to_the_same_values_and_hides_the_database_url(void **state)
{
	(void)state;
	hd_config_t *cfg = NULL, *again = NULL;
	char err[256];
	assert_int_equal(load_text("database_url = \"postgresql://u:secret@h/db\";\n"
				   "intake = { max_pending = 77; };\n", &cfg, err, sizeof(err)), HD_OK);
	char *out = NULL;
	size_t out_len = 0;
	FILE *f = open_memstream(&out, &out_len);
	hd_config_print(cfg, f);
	fclose(f);
	assert_null(strstr(out, "secret"));
	assert_int_equal(load_text(out, &again, err, sizeof(err)), HD_OK);
	assert_int_equal(again->intake.max_pending, 77);
	assert_string_equal(again->classify.important_tag, cfg->classify.important_tag);
	free(out);
	hd_config_destroy(&cfg);
	hd_config_destroy(&again);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_load_without_a_file),
		cmocka_unit_test(test_values_from_file_override_defaults),
		cmocka_unit_test(test_unknown_setting_fails_with_file_and_line),
		cmocka_unit_test(test_out_of_range_value_fails_naming_the_bounds),
		cmocka_unit_test(test_wrong_type_fails),
		cmocka_unit_test(test_syntax_error_and_missing_file_are_reported),
		cmocka_unit_test(test_bad_log_level_and_inverted_backoff_are_refused),
		cmocka_unit_test(test_printed_config_loads_back_to_the_same_values_and_hides_the_database_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
