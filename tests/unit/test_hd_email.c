/*
 * NAME
 *	test_hd_email - email driver configuration and outcome mapping
 * DESCRIPTION
 *	The parts of the driver that decide without a network: the config
 *	group (defaults, every refusal with file:line, the password
 *	sources, secrets kept out of messages) and the mapping of SMTP
 *	replies and session faults to delivered / retry / failed. The SMTP
 *	conversation itself is tested against Postfix's smtp-sink in
 *	tests/integration/30-email-smtp-sink.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hd_email.h"
#include "hd_err.h"

/* ---- config helpers ---- */

typedef struct parsed {
	config_t lc;
	char path[64];
	hd_email_config_t cfg;
	char err[512];
	int rc;
} parsed_t;

/* Write text to a temp file, read it with libconfig, parse its "email" group. */
static parsed_t *parse_text(const char *text)
{
	parsed_t *p = calloc(1, sizeof *p);
	snprintf(p->path, sizeof p->path, "/tmp/test_hd_email_XXXXXX");
	int fd = mkstemp(p->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	config_init(&p->lc);
	assert_true(config_read_file(&p->lc, p->path));
	p->rc = hd_email_config_parse(config_lookup(&p->lc, "email"), &p->cfg, p->err, sizeof p->err);
	return p;
}

static void parsed_free(parsed_t *p)
{
	hd_email_config_clear(&p->cfg);
	config_destroy(&p->lc);
	unlink(p->path);
	free(p);
}

/* Assert a refusal at line of the temp file whose message contains needle. */
static void assert_refused(const char *text, unsigned line, const char *needle)
{
	parsed_t *p = parse_text(text);
	assert_int_equal(p->rc, HD_E_CONFIG);
	char where[96];
	snprintf(where, sizeof where, "%s:%u: ", p->path, line);
	assert_memory_equal(p->err, where, strlen(where));
	if (!strstr(p->err, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", p->err, needle);
	assert_null(p->cfg.relay);  /* cleared on failure */
	parsed_free(p);
}

/* ---- config tests ---- */

static void test_config_defaults_when_there_is_no_group(void **state)
{
	(void)state;
	hd_email_config_t c;
	char err[128] = "";
	assert_int_equal(hd_email_config_parse(NULL, &c, err, sizeof err), 0);
	assert_string_equal(c.relay, "127.0.0.1:25");
	assert_string_equal(c.helo, "");
	assert_int_equal(c.starttls, HD_EMAIL_TLS_OPPORTUNISTIC);
	assert_true(c.tls_verify);
	assert_string_equal(c.auth_user, "");
	assert_null(c.auth_password);
	assert_int_equal(c.sessions, 2);
	assert_int_equal(c.connect_timeout_ms, 10000);
	assert_int_equal(c.timeout_ms, 60000);
	assert_int_equal(c.idle_ms, 2000);
	assert_int_equal(c.max_messages_per_session, 100);
	assert_int_equal(c.max_jobs, 1000);
	assert_string_equal(c.message_id_domain, "");
	assert_string_equal(c.tls_ca_file, "");
	hd_email_config_clear(&c);
	assert_null(c.relay);
	hd_email_config_clear(NULL);
}

static void test_config_reads_every_key(void **state)
{
	(void)state;
	parsed_t *p = parse_text("email = {\n"
				 "  relay = \"mail.corp.example:2525\";\n"
				 "  helo = \"herald.corp.example\";\n"
				 "  starttls = \"required\";\n"
				 "  tls_verify = false;\n"
				 "  connect_timeout_ms = 1500;\n"
				 "  timeout_ms = 20000;\n"
				 "  idle_ms = 0;\n"
				 "  sessions = 4;\n"
				 "  max_messages_per_session = 10;\n"
				 "  max_jobs = 50;\n"
				 "  message_id_domain = \"herald.corp.example\";\n"
				 "};\n");
	assert_int_equal(p->rc, 0);
	assert_string_equal(p->cfg.relay, "mail.corp.example:2525");
	assert_string_equal(p->cfg.helo, "herald.corp.example");
	assert_int_equal(p->cfg.starttls, HD_EMAIL_TLS_REQUIRED);
	assert_false(p->cfg.tls_verify);
	assert_int_equal(p->cfg.connect_timeout_ms, 1500);
	assert_int_equal(p->cfg.timeout_ms, 20000);
	assert_int_equal(p->cfg.idle_ms, 0);
	assert_int_equal(p->cfg.sessions, 4);
	assert_int_equal(p->cfg.max_messages_per_session, 10);
	assert_int_equal(p->cfg.max_jobs, 50);
	assert_string_equal(p->cfg.message_id_domain, "herald.corp.example");
	parsed_free(p);
}

static void test_config_relay_without_port_means_port_25(void **state)
{
	(void)state;
	parsed_t *p = parse_text("email = { relay = \"smtp.corp.example\"; starttls = \"off\"; };\n");
	assert_int_equal(p->rc, 0);
	assert_string_equal(p->cfg.relay, "smtp.corp.example:25");
	assert_int_equal(p->cfg.starttls, HD_EMAIL_TLS_OFF);
	parsed_free(p);
}

static void test_config_refusals_name_file_line_and_reason(void **state)
{
	(void)state;
	assert_refused("email = {\n  relay = \"a:25\";\n  relai = \"b\";\n};\n", 3, "relai: unknown key");
	assert_refused("email = {\n  sessions = \"2\";\n};\n", 2, "sessions: must be an integer");
	assert_refused("email = {\n\n  sessions = 0;\n};\n", 3, "sessions: must be 1..32");
	assert_refused("email = {\n  timeout_ms = 999;\n};\n", 2, "timeout_ms: must be 1000..");
	assert_refused("email = {\n  starttls = \"yes\";\n};\n", 2, "starttls: must be");
	assert_refused("email = {\n  tls_verify = 1;\n};\n", 2, "tls_verify: must be true or false");
	assert_refused("email = {\n  relay = \"[::1]:25\";\n};\n", 2, "no IPv6 literal");
	assert_refused("email = {\n  relay = \"mx.example:0\";\n};\n", 2, "port must be 1..65535");
	assert_refused("email = {\n  relay = \":25\";\n};\n", 2, "relay needs a host");
	assert_refused("email = {\n  helo = \"two words\";\n};\n", 2, "helo");
	assert_refused("email = {\n  message_id_domain = \"a b\";\n};\n", 2, "message_id_domain");
	assert_refused("email = 3;\n", 1, "must be a group");
	assert_refused("email = {\n  tls_ca_file = \"/nonexistent/ca.pem\";\n};\n", 2,
		       "tls_ca_file: cannot read /nonexistent/ca.pem");
}

static void test_config_auth_needs_a_password(void **state)
{
	(void)state;
	unsetenv("HERALD_SMTP_PASSWORD");
	assert_refused("email = {\n  auth_user = \"herald\";\n};\n", 1, "no password");
}

static void test_config_auth_password_comes_from_the_environment(void **state)
{
	(void)state;
	setenv("HERALD_SMTP_PASSWORD", "s3cret-env", 1);
	parsed_t *p = parse_text("email = { auth_user = \"herald\"; };\n");
	unsetenv("HERALD_SMTP_PASSWORD");
	assert_int_equal(p->rc, 0);
	assert_string_equal(p->cfg.auth_user, "herald");
	assert_string_equal(p->cfg.auth_password, "s3cret-env");
	parsed_free(p);
}

static void test_config_auth_password_file_wins_and_loses_its_newline(void **state)
{
	(void)state;
	char pw[] = "/tmp/test_hd_email_pw_XXXXXX";
	int fd = mkstemp(pw);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "from-file\nsecond line\n", 22), 22);
	close(fd);
	setenv("HERALD_SMTP_PASSWORD", "from-env", 1);
	char text[256];
	snprintf(text, sizeof text,
		 "email = { auth_user = \"herald\"; auth_password_file = \"%s\"; };\n", pw);
	parsed_t *p = parse_text(text);
	unsetenv("HERALD_SMTP_PASSWORD");
	assert_int_equal(p->rc, 0);
	assert_string_equal(p->cfg.auth_password, "from-file");
	parsed_free(p);

	/* an unreadable file is refused, naming the key and never any secret */
	unlink(pw);
	setenv("HERALD_SMTP_PASSWORD", "from-env", 1);
	p = parse_text(text);
	unsetenv("HERALD_SMTP_PASSWORD");
	assert_int_equal(p->rc, HD_E_CONFIG);
	assert_non_null(strstr(p->err, "auth_password_file"));
	assert_non_null(strstr(p->err, ":1: "));
	assert_null(strstr(p->err, "from-env"));
	assert_null(strstr(p->err, "from-file"));
	parsed_free(p);
}

/* ---- outcome mapping ---- */

static hd_email_reply_t reply(int code, const char *text, int c, int s, int d)
{
	hd_email_reply_t r = {.code = code, .text = text, .enh_class = c, .enh_subject = s,
			      .enh_detail = d};
	return r;
}

static const hd_email_reply_t ok250 = {.code = 250, .text = "Ok", .enh_class = 2};

static void test_accepted_data_is_delivered_with_the_queue_id(void **state)
{
	(void)state;
	hd_email_reply_t data = reply(250, "Ok: queued as 4XyZ12abc", 2, 0, 0);
	hd_wire_result_t r = {.delivery_id = 7, .attempt = 3};
	hd_email_map_outcome(&ok250, &ok250, &data, HD_EMAIL_FAULT_NONE, NULL, false, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_DELIVERED);
	assert_string_equal(r.provider, "smtp");
	assert_string_equal(r.provider_code, "250");
	assert_string_equal(r.detail, "2.0.0 Ok: queued as 4XyZ12abc");
	assert_string_equal(r.provider_id, "4XyZ12abc");
	assert_int_equal(r.delivery_id, 7);  /* left alone */
	assert_int_equal(r.attempt, 3);
}

static void test_rcpt_4xx_is_retry_and_5xx_is_failed(void **state)
{
	(void)state;
	hd_wire_result_t r;
	hd_email_reply_t rcpt = reply(450, "<a@x.example>: Recipient address rejected: try later", 4, 2,
				      1);
	/* the DATA that follows a refused RCPT fails too; the RCPT reply decides */
	hd_email_reply_t data = reply(554, "Error: no valid recipients", 5, 5, 1);
	hd_email_map_outcome(&ok250, &rcpt, &data, HD_EMAIL_FAULT_NONE, NULL, false, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(r.provider_code, "450");
	assert_string_equal(r.detail, "4.2.1 <a@x.example>: Recipient address rejected: try later");

	rcpt = reply(550, "User unknown", 5, 1, 1);
	hd_email_map_outcome(&ok250, &rcpt, &data, HD_EMAIL_FAULT_NONE, NULL, false, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_FAILED);
	assert_string_equal(r.provider_code, "550");
	assert_string_equal(r.detail, "5.1.1 User unknown");
	assert_string_equal(r.provider_id, "");
}

static void test_mail_and_data_replies_decide_when_they_refuse(void **state)
{
	(void)state;
	hd_wire_result_t r;
	hd_email_reply_t mail = reply(421, "Service not available", 0, 0, 0);
	hd_email_map_outcome(&mail, NULL, NULL, HD_EMAIL_FAULT_DROPPED, "x", false, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(r.provider_code, "421");
	assert_string_equal(r.detail, "Service not available");

	hd_email_reply_t data = reply(554, "Message rejected: spam", 5, 7, 1);
	hd_email_map_outcome(&ok250, &ok250, &data, HD_EMAIL_FAULT_NONE, NULL, false, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_FAILED);
	assert_string_equal(r.provider_code, "554");

	data = reply(452, "Insufficient system storage", 4, 3, 1);
	hd_email_map_outcome(&ok250, &ok250, &data, HD_EMAIL_FAULT_NONE, NULL, false, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(r.provider_code, "452");
}

static void test_session_faults_are_retries_with_a_code_and_detail(void **state)
{
	(void)state;
	hd_wire_result_t r;
	hd_email_map_outcome(NULL, NULL, NULL, HD_EMAIL_FAULT_CONNECT,
			     "cannot connect to 127.0.0.1:1: Connection refused", false, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(r.provider_code, "connect");
	assert_string_equal(r.detail, "cannot connect to 127.0.0.1:1: Connection refused");

	/* 354 then the connection dropped: not delivered, not refused */
	hd_email_reply_t data = reply(354, "End data with <CR><LF>.<CR><LF>", 0, 0, 0);
	hd_email_map_outcome(&ok250, &ok250, &data, HD_EMAIL_FAULT_DROPPED, NULL, false, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(r.provider_code, "dropped");
	assert_true(strlen(r.detail) > 0);

	hd_email_map_outcome(&ok250, NULL, NULL, HD_EMAIL_FAULT_PROTOCOL, "bad reply", false, &r);
	assert_string_equal(r.provider_code, "protocol");
	hd_email_map_outcome(NULL, NULL, NULL, HD_EMAIL_FAULT_TLS_FAILED, "x", true, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(r.provider_code, "tls-failed");
	hd_email_map_outcome(NULL, NULL, NULL, HD_EMAIL_FAULT_STOPPING, "worker stopping", false, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(r.provider_code, "stopping");
}

static void test_missing_starttls_fails_confidential_and_retries_the_rest(void **state)
{
	(void)state;
	hd_wire_result_t r;
	hd_email_map_outcome(NULL, NULL, NULL, HD_EMAIL_FAULT_TLS_MISSING,
			     "server does not offer STARTTLS", true, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_FAILED);
	assert_string_equal(r.provider_code, "tls-required");
	assert_string_equal(r.detail, "server does not offer STARTTLS");
	hd_email_map_outcome(NULL, NULL, NULL, HD_EMAIL_FAULT_TLS_MISSING,
			     "server does not offer STARTTLS", false, &r);
	assert_int_equal(r.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(r.provider_code, "tls-unavailable");
}

static void test_server_text_loses_control_characters(void **state)
{
	(void)state;
	hd_wire_result_t r;
	hd_email_reply_t rcpt = reply(550, "bad\r\nX-Injected: yes\tend\r\n", 0, 0, 0);
	hd_email_map_outcome(&ok250, &rcpt, NULL, HD_EMAIL_FAULT_NONE, NULL, false, &r);
	assert_null(strchr(r.detail, '\r'));
	assert_null(strchr(r.detail, '\n'));
	assert_string_equal(r.detail, "bad  X-Injected: yes end");
}

static void test_queue_id_is_found_in_common_server_replies(void **state)
{
	(void)state;
	char id[64];
	assert_true(hd_email_queue_id("Ok: queued as 4Xy7Zq1mNbz", id, sizeof id));
	assert_string_equal(id, "4Xy7Zq1mNbz");
	assert_true(hd_email_queue_id("OK id=1tA2bC-0003De-Fg", id, sizeof id));
	assert_string_equal(id, "1tA2bC-0003De-Fg");
	assert_true(hd_email_queue_id("2.0.0 Ok: Queued As ABC; thanks", id, sizeof id));
	assert_string_equal(id, "ABC");
	assert_false(hd_email_queue_id("Ok", id, sizeof id));
	assert_false(hd_email_queue_id("queued as ", id, sizeof id));
	assert_false(hd_email_queue_id(NULL, id, sizeof id));
	char small[4];
	assert_true(hd_email_queue_id("queued as ABCDEFG", small, sizeof small));
	assert_string_equal(small, "ABC");
}

static void never_done(void *arg, hd_channel_job_t *job, const hd_wire_result_t *result)
{
	(void)arg;
	(void)job;
	(void)result;
	fail_msg("done called");
}

static void test_driver_table_names_the_email_channel(void **state)
{
	(void)state;
	assert_string_equal(hd_email_ops.name, "email");
	assert_int_equal(hd_email_ops.channel, HD_CHANNEL_EMAIL);
	assert_non_null(hd_email_ops.open);
	assert_non_null(hd_email_ops.close);
	/* open refuses bad configuration with the parser's message */
	char err[256] = "";
	config_t lc;
	config_init(&lc);
	assert_true(config_read_string(&lc, "email = { sessions = 99; };"));
	void *zctx = (void *)&lc; /* never used: open fails before touching it */
	assert_null(hd_email_ops.open(config_lookup(&lc, "email"), zctx,
				      never_done, NULL, err, sizeof err));
	assert_non_null(strstr(err, "sessions: must be 1..32"));
	config_destroy(&lc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults_when_there_is_no_group),
		cmocka_unit_test(test_config_reads_every_key),
		cmocka_unit_test(test_config_relay_without_port_means_port_25),
		cmocka_unit_test(test_config_refusals_name_file_line_and_reason),
		cmocka_unit_test(test_config_auth_needs_a_password),
		cmocka_unit_test(test_config_auth_password_comes_from_the_environment),
		cmocka_unit_test(test_config_auth_password_file_wins_and_loses_its_newline),
		cmocka_unit_test(test_accepted_data_is_delivered_with_the_queue_id),
		cmocka_unit_test(test_rcpt_4xx_is_retry_and_5xx_is_failed),
		cmocka_unit_test(test_mail_and_data_replies_decide_when_they_refuse),
		cmocka_unit_test(test_session_faults_are_retries_with_a_code_and_detail),
		cmocka_unit_test(test_missing_starttls_fails_confidential_and_retries_the_rest),
		cmocka_unit_test(test_server_text_loses_control_characters),
		cmocka_unit_test(test_queue_id_is_found_in_common_server_replies),
		cmocka_unit_test(test_driver_table_names_the_email_channel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
