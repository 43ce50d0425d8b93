/*
 * NAME
 *	test_hd_log - one key=value line per call, forged lines impossible
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hd_log.h"

/* Run fn with stderr redirected into a pipe; return what it wrote. */
static size_t capture(void (*fn)(void), char *out, size_t cap)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	int saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fds[1]);
	ssize_t n = read(fds[0], out, cap - 1);
	close(fds[0]);
	out[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

static void log_injection(void)
{
	hd_log_init("test", HD_LOG_INFO);
	hd_warn("intake.reject", "reason=\"%s\"", "bad\nts=fake level=error event=forged");
}

static void log_below_threshold(void)
{
	hd_log_init("test", HD_LOG_WARN);
	hd_info("ignored", "%s", "x=1");
}

static void test_line_has_level_program_event_and_fields(void **state)
{
	(void)state;
	char out[4096];
	capture(log_injection, out, sizeof(out));
	assert_non_null(strstr(out, "level=warn prog=test event=intake.reject reason=\"bad"));
	assert_non_null(strstr(out, "ts="));
}

static void test_newlines_in_fields_cannot_forge_a_second_line(void **state)
{
	(void)state;
	char out[4096];
	size_t n = capture(log_injection, out, sizeof(out));
	size_t lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += out[i] == '\n';
	assert_int_equal(lines, 1);
}

static void test_messages_below_the_threshold_are_dropped(void **state)
{
	(void)state;
	char out[256];
	assert_int_equal(capture(log_below_threshold, out, sizeof(out)), 0);
}

static void test_level_names_parse(void **state)
{
	(void)state;
	assert_int_equal(hd_log_level_parse("debug"), HD_LOG_DEBUG);
	assert_int_equal(hd_log_level_parse("error"), HD_LOG_ERROR);
	assert_int_equal(hd_log_level_parse("loud"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_has_level_program_event_and_fields),
		cmocka_unit_test(test_newlines_in_fields_cannot_forge_a_second_line),
		cmocka_unit_test(test_messages_below_the_threshold_are_dropped),
		cmocka_unit_test(test_level_names_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
