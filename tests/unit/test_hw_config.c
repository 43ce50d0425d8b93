/*
 * NAME
 *	test_hw_config - herald-worker's configuration file, as an operator writes it
 * DESCRIPTION
 *	Real files in a temporary directory, loaded with a driver table
 *	chosen by the test (so "not compiled in" is testable whatever the
 *	build holds). Covered: defaults, every setting, file:line errors
 *	for unknown keys, wrong types and ranges, driver groups (unknown,
 *	not compiled in, not a group, none at all), command-line overrides,
 *	--print-config output that loads back and hides secrets, and the
 *	security group (POLICY K2 keys: "ID:PATH" syntax and unique ids).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hd_err.h"
#include "hd_fake.h"
#include "hw_config.h"
#include "hw_drivers.h"

/* "email" stands in for a real driver: loading never opens drivers. */
static const hw_driver_t only_fake[] = {{"fake", &hd_fake_ops, hd_fake_channel}};
static const hw_driver_t fake_and_email[] = {
	{"fake", &hd_fake_ops, hd_fake_channel},
	{"email", &hd_fake_ops, NULL},
};

typedef struct fixture {
	char dir[64];
	char path[128];
	hw_config_t *cfg;
	char err[512];
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/test_hw_config.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/worker.conf", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	hw_config_destroy(&f->cfg);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void write_file(const fixture_t *f, const char *text)
{
	FILE *out = fopen(f->path, "w");
	assert_non_null(out);
	fputs(text, out);
	fclose(out);
}

static int load(fixture_t *f, const hw_driver_t *table, size_t n, const char *text)
{
	write_file(f, text);
	hw_config_destroy(&f->cfg);
	f->err[0] = '\0';
	return hw_config_load(f->path, table, n, &f->cfg, f->err, sizeof f->err);
}

/* Expect text to fail with "<path>:<line>: <want>...". */
static void expect_error(fixture_t *f, const char *text, int line, const char *want)
{
	assert_int_equal(load(f, only_fake, 1, text), HD_E_CONFIG);
	assert_null(f->cfg);
	char prefix[256];
	snprintf(prefix, sizeof prefix, "%s:%d: %s", f->path, line, want);
	if (strncmp(f->err, prefix, strlen(prefix)) != 0)
		fail_msg("for \"%s\": got \"%s\", want \"%s...\"", text, f->err, prefix);
}

static void test_defaults_apply_when_only_a_driver_group_is_given(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(load(f, only_fake, 1, "fake = {};\n"), HD_OK);
	assert_string_equal(f->cfg->broker, "tcp://127.0.0.1:7712");
	assert_int_equal(f->cfg->credit, 64);
	assert_int_equal(f->cfg->heartbeat_ms, 1000);
	assert_int_equal(f->cfg->shutdown_grace_ms, 10000);
	assert_string_equal(f->cfg->log_level, "info");
	/* name defaults to hostname-pid */
	char suffix[32];
	snprintf(suffix, sizeof suffix, "-%ld", (long)getpid());
	size_t n = strlen(f->cfg->name), s = strlen(suffix);
	assert_true(n > s && n <= 64);
	assert_string_equal(f->cfg->name + n - s, suffix);
	assert_int_equal(f->cfg->driver_count, 1);
	assert_string_equal(f->cfg->drivers[0].driver->name, "fake");
	assert_non_null(f->cfg->drivers[0].group);
}

static void test_every_setting_is_read(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(load(f, fake_and_email, 2,
			      "broker = \"tcp://10.0.0.1:9000\";\nname = \"mail-1\";\n"
			      "credit = 10000;\nheartbeat_ms = 10;\nshutdown_grace_ms = 0;\n"
			      "log_level = \"debug\";\nemail = { host = \"x\"; };\n"
			      "fake = { channel = \"sms\"; };\n"), HD_OK);
	assert_string_equal(f->cfg->broker, "tcp://10.0.0.1:9000");
	assert_string_equal(f->cfg->name, "mail-1");
	assert_int_equal(f->cfg->credit, 10000);
	assert_int_equal(f->cfg->heartbeat_ms, 10);
	assert_int_equal(f->cfg->shutdown_grace_ms, 0);
	assert_string_equal(f->cfg->log_level, "debug");
	/* Driver groups in file order, their content untouched for the driver. */
	assert_int_equal(f->cfg->driver_count, 2);
	assert_string_equal(f->cfg->drivers[0].driver->name, "email");
	assert_string_equal(f->cfg->drivers[1].driver->name, "fake");
	const char *ch = NULL;
	assert_true(config_setting_lookup_string(f->cfg->drivers[1].group, "channel", &ch));
	assert_string_equal(ch, "sms");
}

static void test_bad_worker_settings_fail_with_file_and_line(void **state)
{
	fixture_t *f = *state;
	expect_error(f, "fake = {};\ncredit = 0;\n", 2, "credit: 0 is outside [1, 10000]");
	expect_error(f, "fake = {};\ncredit = 10001;\n", 2, "credit: 10001 is outside");
	expect_error(f, "fake = {};\n\nheartbeat_ms = 9;\n", 3, "heartbeat_ms: 9 is outside [10, 60000]");
	expect_error(f, "fake = {};\nshutdown_grace_ms = -1;\n", 2, "shutdown_grace_ms: -1 is outside");
	expect_error(f, "fake = {};\ncredit = \"64\";\n", 2, "credit: expected an integer");
	expect_error(f, "broker = 7712;\nfake = {};\n", 1, "broker: expected a string");
	expect_error(f, "fake = {};\nbrokers = \"x\";\n", 2, "brokers: unknown setting");
	expect_error(f, "fake = {};\npager = { };\n", 2, "pager: unknown setting");
	expect_error(f, "fake = {};\ncredit = = 1;\n", 2, "syntax error");
	/* Whole-file checks name the file. */
	assert_int_equal(load(f, only_fake, 1, "fake = {};\nlog_level = \"loud\";\n"), HD_E_CONFIG);
	assert_non_null(strstr(f->err, "log_level: expected debug, info, warn or error"));
	assert_int_equal(load(f, only_fake, 1, "fake = {};\nname = \"a b\";\n"), HD_E_CONFIG);
	assert_non_null(strstr(f->err, "name: expected 1..64 of A-Z a-z 0-9 . _ -"));
	assert_int_equal(load(f, only_fake, 1, "fake = {};\nbroker = \"\";\n"), HD_E_CONFIG);
	assert_non_null(strstr(f->err, "broker: must not be empty"));
}

static void test_driver_groups_must_be_groups_of_drivers_compiled_in(void **state)
{
	fixture_t *f = *state;
	expect_error(f, "fake = {};\nemail = { host = \"smtp\"; };\n", 2,
		     "email: channel driver not compiled into this herald-worker");
	expect_error(f, "fake = 1;\n", 1, "fake: a channel driver's settings must be a group");
	assert_int_equal(load(f, only_fake, 1, "credit = 4;\n"), HD_E_CONFIG);
	assert_non_null(strstr(f->err, "no channel driver enabled"));
	assert_int_equal(load(f, only_fake, 1, "fake = {};\nfake = {};\n"), HD_E_CONFIG);
	assert_null(f->cfg);
}

static void test_missing_files_are_reported(void **state)
{
	fixture_t *f = *state;
	char path[160];
	snprintf(path, sizeof path, "%s/nope.conf", f->dir);
	assert_int_equal(hw_config_load(path, only_fake, 1, &f->cfg, f->err, sizeof f->err),
			 HD_E_CONFIG);
	assert_non_null(strstr(f->err, "cannot read file"));
	/* Without a file: defaults, and no driver, which is refused. */
	assert_int_equal(hw_config_load(NULL, only_fake, 1, &f->cfg, f->err, sizeof f->err),
			 HD_E_CONFIG);
	assert_non_null(strstr(f->err, "(defaults): no channel driver enabled"));
}

static void test_command_line_overrides_replace_broker_and_name_and_are_checked(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(load(f, only_fake, 1, "name = \"a\";\nfake = {};\n"), HD_OK);
	assert_int_equal(hw_config_override(f->cfg, "tcp://127.0.0.1:1", "w-2", f->err,
					    sizeof f->err), HD_OK);
	assert_string_equal(f->cfg->broker, "tcp://127.0.0.1:1");
	assert_string_equal(f->cfg->name, "w-2");
	assert_int_equal(hw_config_override(f->cfg, NULL, "w/2", f->err, sizeof f->err),
			 HD_E_CONFIG);
	assert_non_null(strstr(f->err, "--name"));
	assert_int_equal(hw_config_override(f->cfg, "", NULL, f->err, sizeof f->err), HD_E_CONFIG);
	assert_non_null(strstr(f->err, "--broker"));
	char long_name[80];
	memset(long_name, 'n', 65);
	long_name[65] = '\0';
	assert_int_equal(hw_config_override(f->cfg, NULL, long_name, f->err, sizeof f->err),
			 HD_E_CONFIG);
	/* Refused overrides change nothing. */
	assert_string_equal(f->cfg->name, "w-2");
	assert_int_equal(hw_config_override(f->cfg, NULL, NULL, f->err, sizeof f->err), HD_OK);
}

static void test_printed_configuration_loads_back_and_hides_secrets(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(load(f, fake_and_email, 2,
			      "credit = 7;\nname = \"p1\";\n"
			      "email = { host = \"smtp.corp\"; port = 587; tls = true; password = \"hunter2\";"
			      " password_file = \"/etc/herald/smtp.pw\"; hosts = [\"a\", \"b\"];"
			      " limits = { per_minute = 5; }; };\n"
			      "fake = { channel = \"im\"; delay_ms = 3; };\n"), HD_OK);
	char *text = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&text, &size);
	hw_config_print(f->cfg, out);
	fclose(out);
	assert_null(strstr(text, "hunter2"));
	assert_non_null(strstr(text, "password = \"(set; not shown)\";"));
	assert_non_null(strstr(text, "password_file = \"/etc/herald/smtp.pw\";"));
	assert_non_null(strstr(text, "credit = 7;"));

	hw_config_t *first = f->cfg;
	f->cfg = NULL;
	assert_int_equal(load(f, fake_and_email, 2, text), HD_OK);
	assert_int_equal(f->cfg->credit, 7);
	assert_string_equal(f->cfg->name, "p1");
	assert_string_equal(f->cfg->broker, first->broker);
	assert_int_equal(f->cfg->heartbeat_ms, first->heartbeat_ms);
	assert_int_equal(f->cfg->driver_count, 2);
	int per_minute = 0, delay = 0, port = 0;
	/* libconfig's lookups take non-const settings; nothing is modified. */
	config_setting_t *email = (config_setting_t *)f->cfg->drivers[0].group;
	assert_true(config_setting_lookup_int(email, "port", &port));
	assert_int_equal(port, 587);
	assert_true(config_setting_lookup_int(config_setting_lookup(email, "limits"), "per_minute",
					      &per_minute));
	assert_int_equal(per_minute, 5);
	assert_int_equal(config_setting_length(config_setting_lookup(email, "hosts")), 2);
	assert_true(config_setting_lookup_int(f->cfg->drivers[1].group, "delay_ms", &delay));
	assert_int_equal(delay, 3);
	hw_config_destroy(&first);
	free(text);
}

static void test_security_keys_are_id_path_pairs_with_unique_ids(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(load(f, only_fake, 1,
			      "security = { keys = [\"k1:/etc/herald/k1.key\", \"k2:/etc/herald/k2.key\"]; };\n"
			      "fake = {};\n"), HD_OK);
	assert_int_equal(f->cfg->seal_key_count, 2);
	assert_string_equal(f->cfg->seal_keys[0], "k1:/etc/herald/k1.key");
	assert_string_equal(f->cfg->seal_keys[1], "k2:/etc/herald/k2.key");
	char *text = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&text, &size);
	hw_config_print(f->cfg, out);
	fclose(out);
	assert_non_null(strstr(text, "security = {\n  keys = [\"k1:/etc/herald/k1.key\", "
				     "\"k2:/etc/herald/k2.key\"];\n};\n"));
	hw_config_t *first = f->cfg;
	f->cfg = NULL;
	assert_int_equal(load(f, only_fake, 1, text), HD_OK); /* it loads back */
	assert_int_equal(f->cfg->seal_key_count, 2);
	hw_config_destroy(&first);
	free(text);
	/* none by default */
	assert_int_equal(load(f, only_fake, 1, "fake = {};\n"), HD_OK);
	assert_int_equal(f->cfg->seal_key_count, 0);

	expect_error(f, "fake = {};\nsecurity = { keys = [\"/etc/herald/k1.key\"]; };\n", 2,
		     "keys: \"/etc/herald/k1.key\": expected \"ID:PATH\"");
	expect_error(f, "fake = {};\nsecurity = { keys = [\"k1:/a\", \"k1:/b\"]; };\n", 2,
		     "keys: key id \"k1\" given twice");
	expect_error(f, "fake = {};\nsecurity = {\n  seal_key = \"k1\"; };\n", 3,
		     "seal_key: unknown setting in security (only keys)");
	expect_error(f, "fake = {};\nsecurity = { keys = \"k1:/a\"; };\n", 2,
		     "keys: expected a list");
	expect_error(f, "fake = {};\nsecurity = [\"k1:/a\"];\n", 2, "security: expected a group");
}

static void test_the_program_knows_its_drivers(void **state)
{
	(void)state;
	size_t n = 0;
	const hw_driver_t *t = hw_drivers(&n);
	bool fake = false;
	for (size_t i = 0; i < n; i++) {
		assert_true(hw_driver_is_known(t[i].name));
		assert_non_null(t[i].ops->open);
		fake |= strcmp(t[i].name, "fake") == 0;
	}
	assert_true(fake);
	assert_true(hw_driver_is_known("email"));
	assert_true(hw_driver_is_known("im"));
	assert_true(hw_driver_is_known("sms"));
	assert_false(hw_driver_is_known("pager"));
	hw_config_destroy(NULL);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_defaults_apply_when_only_a_driver_group_is_given),
		T(test_every_setting_is_read),
		T(test_bad_worker_settings_fail_with_file_and_line),
		T(test_driver_groups_must_be_groups_of_drivers_compiled_in),
		T(test_missing_files_are_reported),
		T(test_command_line_overrides_replace_broker_and_name_and_are_checked),
		T(test_printed_configuration_loads_back_and_hides_secrets),
		T(test_the_program_knows_its_drivers),
		T(test_security_keys_are_id_path_pairs_with_unique_ids),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
