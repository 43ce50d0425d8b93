/*
 * NAME
 *	test_hc_db - where heraldctl's connection settings come from
 * DESCRIPTION
 *	--db wins over $HERALD_DATABASE_URL, which wins over libpq's
 *	defaults; a bad connection string is a configuration error that
 *	never echoes the string (it may hold a password); a server that is
 *	not there is HD_E_UNAVAILABLE (heraldctl's exit 4). No server is
 *	needed: the unreachable case connects to a closed loopback port.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hc_db.h"
#include "hd_err.h"

static void test_conninfo_prefers_the_command_line_over_the_environment(void **state)
{
	(void)state;
	const char *source = NULL;
	assert_int_equal(setenv(HC_DB_ENV, "postgresql://env@h/d", 1), 0);
	assert_string_equal(hc_db_conninfo("host=cli", &source), "host=cli");
	assert_string_equal(source, "--db");
	assert_string_equal(hc_db_conninfo(NULL, &source), "postgresql://env@h/d");
	assert_non_null(strstr(source, HC_DB_ENV));
	assert_null(strstr(source, "env@h")); /* the source never shows the value */
}

static void test_conninfo_falls_back_to_libpq_defaults(void **state)
{
	(void)state;
	const char *source = NULL;
	assert_int_equal(unsetenv(HC_DB_ENV), 0);
	assert_null(hc_db_conninfo(NULL, &source));
	assert_string_equal(source, "libpq defaults");
	assert_int_equal(setenv(HC_DB_ENV, "", 1), 0);
	assert_null(hc_db_conninfo(NULL, &source));
	unsetenv(HC_DB_ENV);
}

static void test_open_rejects_a_malformed_conninfo_without_echoing_it(void **state)
{
	(void)state;
	hc_db_t *db = (hc_db_t *)1;
	char err[256];
	assert_int_equal(hc_db_open(&db, "host=x password topsecret port", err, sizeof(err)),
	                 HD_E_CONFIG);
	assert_null(db);
	assert_null(strstr(err, "topsecret"));
}

/* A loopback port nobody listens on: bind, read the port, close. */
static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void test_open_reports_an_unreachable_server_as_unavailable(void **state)
{
	(void)state;
	char conninfo[128];
	snprintf(conninfo, sizeof(conninfo),
	         "postgresql://nobody:pw123secret@127.0.0.1:%d/x?connect_timeout=5", closed_port());
	hc_db_t *db = NULL;
	char err[512];
	assert_int_equal(hc_db_open(&db, conninfo, err, sizeof(err)), HD_E_UNAVAILABLE);
	assert_null(db);
	assert_true(strlen(err) > 0);
	assert_null(strstr(err, "pw123secret"));
}

static void test_close_is_null_safe(void **state)
{
	(void)state;
	hc_db_t *db = NULL;
	hc_db_close(&db);
	hc_db_close(NULL);
	assert_null(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conninfo_prefers_the_command_line_over_the_environment),
		cmocka_unit_test(test_conninfo_falls_back_to_libpq_defaults),
		cmocka_unit_test(test_open_rejects_a_malformed_conninfo_without_echoing_it),
		cmocka_unit_test(test_open_reports_an_unreachable_server_as_unavailable),
		cmocka_unit_test(test_close_is_null_safe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
