/*
 * NAME
 *	test_hd_http - the curl multi engine in a poll loop, and its helpers
 * DESCRIPTION
 *	The engine is driven exactly as herald-worker drives it (poll_items,
 *	zmq_poll, handle, timeout_ms) against a tiny forked HTTP/1.1 server
 *	on loopback that numbers its connections, so keep-alive reuse,
 *	concurrency, timeouts and aborts are observable.
 */
#define _GNU_SOURCE   /* memmem, strcasestr in the test server */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hd_channel.h"
#include "hd_err.h"
#include "hd_http.h"
#include "hd_mem.h"
#include "hd_msg.h"
#include "hd_time.h"

/* ---- a tiny HTTP server in a child process ------------------------------ */

static pid_t server_pid;
static int server_port;

static void serve_connection(int fd, int conn)
{
	char buf[65536];
	size_t have = 0;
	for (;;) {
		char *end;
		while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
			ssize_t n = read(fd, buf + have, sizeof buf - have);
			if (n <= 0)
				return;
			have += (size_t)n;
		}
		size_t head = (size_t)(end - buf) + 4;
		size_t clen = 0;
		char *cl = strcasestr(buf, "content-length:");
		if (cl && cl < end)
			clen = (size_t)strtoul(cl + 15, NULL, 10);
		while (have < head + clen) {
			ssize_t n = read(fd, buf + have, sizeof buf - have);
			if (n <= 0)
				return;
			have += (size_t)n;
		}
		char path[256] = "";
		sscanf(buf, "%*s %255s", path);
		char body[65536];
		const char *status = "200 OK", *extra = "";
		int blen;
		if (strcmp(path, "/retry") == 0) {
			status = "429 Too Many Requests";
			extra = "Retry-After: 7\r\n";
			blen = snprintf(body, sizeof body, "slow down");
		} else if (strcmp(path, "/slow") == 0) {
			sleep(3);
			blen = snprintf(body, sizeof body, "late");
		} else if (strcmp(path, "/pause") == 0) {
			usleep(700 * 1000);
			blen = snprintf(body, sizeof body, "conn=%d", conn);
		} else if (strcmp(path, "/echo") == 0) {
			blen = snprintf(body, sizeof body, "%.*s", (int)clen, buf + head);
		} else if (strcmp(path, "/ok") == 0) {
			blen = snprintf(body, sizeof body, "conn=%d", conn);
		} else {
			status = "404 Not Found";
			blen = snprintf(body, sizeof body, "nope");
		}
		char out[70000];
		int olen = snprintf(out, sizeof out,
				    "HTTP/1.1 %s\r\nContent-Length: %d\r\n%sContent-Type: text/plain\r\n\r\n%s",
				    status, blen, extra, body);
		if (write(fd, out, (size_t)olen) != olen)
			return;
		memmove(buf, buf + head + clen, have - head - clen);
		have -= head + clen;
	}
}

static int start_server(void **state)
{
	(void)state;
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 64))
		return -1;
	socklen_t al = sizeof a;
	getsockname(ls, (struct sockaddr *)&a, &al);
	server_port = ntohs(a.sin_port);
	server_pid = fork();
	if (server_pid == 0) {
		setpgid(0, 0);
		signal(SIGCHLD, SIG_IGN);
		for (int conn = 1;; conn++) {
			int fd = accept(ls, NULL, NULL);
			if (fd < 0)
				continue;
			if (fork() == 0) {
				close(ls);
				serve_connection(fd, conn);
				_exit(0);
			}
			close(fd);
		}
	}
	close(ls);
	return server_pid > 0 ? 0 : -1;
}

static int stop_server(void **state)
{
	(void)state;
	if (server_pid > 0) {
		kill(-server_pid, SIGKILL);
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
	}
	return 0;
}

/* ---- driving the engine like the worker does ----------------------------- */

typedef struct seen {
	int calls;
	long status;
	int transport_error;
	bool timed_out, aborted;
	int64_t retry_after_ms;
	char body[256];
} seen_t;

static void on_done(void *arg, const hd_http_response_t *r)
{
	seen_t *s = arg;
	s->calls++;
	s->status = r->status;
	s->transport_error = r->transport_error;
	s->timed_out = r->timed_out;
	s->aborted = r->aborted;
	s->retry_after_ms = r->retry_after_ms;
	snprintf(s->body, sizeof s->body, "%s", r->body);
}

static void run(hd_http_t *http, int64_t max_ms)
{
	int64_t end = hd_time_mono_ms() + max_ms;
	while (hd_http_active(http) && hd_time_mono_ms() < end) {
		zmq_pollitem_t items[32];
		size_t n = hd_http_poll_items(http, items, 32);
		int64_t t = hd_http_timeout_ms(http);
		if (t < 0 || t > 100)
			t = 100;
		zmq_poll(items, (int)n, (long)t);
		hd_http_handle(http, items, n);
	}
}

static char *url(const char *path)
{
	static char buf[128];
	snprintf(buf, sizeof buf, "http://127.0.0.1:%d%s", server_port, path);
	return buf;
}

static void get(hd_http_t *http, const char *path, seen_t *s)
{
	hd_http_request_t r = {.method = "GET", .url = url(path)};
	assert_int_equal(hd_http_start(http, &r, on_done, s), 0);
}

static void test_get_completes_through_the_poll_loop_with_status_and_body(void **state)
{
	(void)state;
	hd_http_t *http = hd_http_new(1000, 5000, 0, 0);
	seen_t s = {0};
	get(http, "/ok", &s);
	assert_int_equal(s.calls, 0);       /* never completes inside start */
	run(http, 5000);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.status, 200);
	assert_int_equal(s.transport_error, 0);
	assert_int_equal(strncmp(s.body, "conn=", 5), 0);
	assert_int_equal(s.retry_after_ms, -1);
	hd_http_destroy(&http);
	assert_null(http);
}

static void test_sequential_requests_reuse_one_kept_alive_connection(void **state)
{
	(void)state;
	hd_http_t *http = hd_http_new(1000, 5000, 0, 0);
	seen_t a = {0}, b = {0}, c = {0};
	get(http, "/ok", &a);
	run(http, 5000);
	get(http, "/ok", &b);
	run(http, 5000);
	get(http, "/ok", &c);
	run(http, 5000);
	assert_int_equal(a.status, 200);
	assert_string_equal(a.body, b.body);
	assert_string_equal(b.body, c.body);
	hd_http_destroy(&http);
}

static void test_concurrent_requests_all_complete(void **state)
{
	(void)state;
	hd_http_t *http = hd_http_new(1000, 5000, 0, 0);
	seen_t s[8] = {{0}};
	for (int i = 0; i < 8; i++)
		get(http, "/ok", &s[i]);
	assert_int_equal(hd_http_active(http), 8);
	run(http, 5000);
	assert_int_equal(hd_http_active(http), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(s[i].calls, 1);
		assert_int_equal(s[i].status, 200);
	}
	hd_http_destroy(&http);
}

static void test_post_sends_the_body_and_content_type(void **state)
{
	(void)state;
	hd_http_t *http = hd_http_new(1000, 5000, 0, 0);
	seen_t s = {0};
	const char *doc = "{\"text\":\"验证码\"}";
	hd_http_request_t r = {.method = "POST", .url = url("/echo"),
			       .content_type = "application/json", .body = doc, .body_len = strlen(doc)};
	assert_int_equal(hd_http_start(http, &r, on_done, &s), 0);
	run(http, 5000);
	assert_int_equal(s.status, 200);
	assert_string_equal(s.body, doc);
	hd_http_destroy(&http);
}

static void test_retry_after_header_is_parsed_from_the_response(void **state)
{
	(void)state;
	hd_http_t *http = hd_http_new(1000, 5000, 0, 0);
	seen_t s = {0};
	get(http, "/retry", &s);
	run(http, 5000);
	assert_int_equal(s.status, 429);
	assert_int_equal(s.retry_after_ms, 7000);
	hd_http_destroy(&http);
}

static void test_a_silent_server_times_out_as_a_transport_error(void **state)
{
	(void)state;
	hd_http_t *http = hd_http_new(1000, 300, 0, 0);
	seen_t s = {0};
	int64_t t0 = hd_time_mono_ms();
	get(http, "/slow", &s);
	run(http, 5000);
	assert_int_equal(s.calls, 1);
	assert_true(s.timed_out);
	assert_int_not_equal(s.transport_error, 0);
	assert_int_equal(s.status, 0);
	assert_true(hd_time_mono_ms() - t0 < 2500);
	hd_http_destroy(&http);
}

static void test_connection_refused_is_a_transport_error_not_a_timeout(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bind(fd, (struct sockaddr *)&a, sizeof a);
	socklen_t al = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &al);
	close(fd);   /* nobody listens there now */
	char u[64];
	snprintf(u, sizeof u, "http://127.0.0.1:%d/", ntohs(a.sin_port));
	hd_http_t *http = hd_http_new(1000, 5000, 0, 0);
	seen_t s = {0};
	hd_http_request_t r = {.method = "GET", .url = u};
	assert_int_equal(hd_http_start(http, &r, on_done, &s), 0);
	run(http, 5000);
	assert_int_equal(s.calls, 1);
	assert_int_not_equal(s.transport_error, 0);
	assert_false(s.timed_out);
	hd_http_destroy(&http);
}

static void test_destroy_completes_requests_in_flight_as_aborted(void **state)
{
	(void)state;
	hd_http_t *http = hd_http_new(1000, 10000, 0, 0);
	seen_t s = {0};
	get(http, "/slow", &s);
	run(http, 200);   /* sent, not answered */
	assert_int_equal(s.calls, 0);
	hd_http_destroy(&http);
	assert_int_equal(s.calls, 1);
	assert_true(s.aborted);
	hd_http_destroy(&http);   /* NULL-safe */
}

static void test_requests_beyond_the_host_limit_wait_without_burning_their_timeout(void **state)
{
	(void)state;
	/* One connection per host and a 1.2 s timeout; each answer takes 0.7 s.
	 * Queued inside curl, the third request's clock would run for 2.1 s. */
	hd_http_t *http = hd_http_new(1000, 1200, 1, 0);
	seen_t s[3] = {{0}};
	int64_t t0 = hd_time_mono_ms();
	for (int i = 0; i < 3; i++)
		get(http, "/pause", &s[i]);
	assert_int_equal(hd_http_active(http), 3);
	assert_int_equal(hd_http_waiting(http), 2);
	run(http, 6000);
	assert_int_equal(hd_http_active(http), 0);
	assert_int_equal(hd_http_waiting(http), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(s[i].calls, 1);
		assert_false(s[i].timed_out);
		assert_int_equal(s[i].status, 200);
	}
	/* one after the other, over the one kept-alive connection */
	assert_true(hd_time_mono_ms() - t0 >= 2000);
	assert_string_equal(s[0].body, s[2].body);
	hd_http_destroy(&http);
}

static void test_destroy_aborts_waiting_requests_too(void **state)
{
	(void)state;
	hd_http_t *http = hd_http_new(1000, 10000, 1, 0);
	seen_t a = {0}, b = {0};
	get(http, "/slow", &a);
	hd_http_request_t r = {.method = "POST", .url = url("/echo"), .content_type = "text/plain",
			       .body = "x", .body_len = 1};
	assert_int_equal(hd_http_start(http, &r, on_done, &b), 0);
	assert_int_equal(hd_http_waiting(http), 1);
	run(http, 200);
	assert_int_equal(a.calls + b.calls, 0);
	hd_http_destroy(&http);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_true(a.aborted);
	assert_true(b.aborted);
}

static void test_hosts_have_separate_connection_limits(void **state)
{
	(void)state;
	hd_http_t *http = hd_http_new(1000, 5000, 1, 0);
	seen_t a = {0}, b = {0};
	char other[128];
	/* the same server under another name: a host of its own */
	snprintf(other, sizeof other, "http://localhost:%d/ok", server_port);
	get(http, "/ok", &a);
	hd_http_request_t r = {.method = "GET", .url = other};
	assert_int_equal(hd_http_start(http, &r, on_done, &b), 0);
	assert_int_equal(hd_http_waiting(http), 0);
	run(http, 5000);
	assert_int_equal(a.status, 200);
	assert_int_equal(b.status, 200);
	hd_http_destroy(&http);
}

static void test_https_only_refuses_a_plain_http_url(void **state)
{
	(void)state;
	hd_http_t *http = hd_http_new(1000, 5000, 0, 0);
	seen_t s = {0};
	hd_http_request_t r = {.method = "POST", .url = url("/ok"), .https_only = true};
	assert_int_equal(hd_http_start(http, &r, on_done, &s), HD_E_INVALID);
	hd_http_request_t bad = {.method = "DELETE", .url = url("/ok")};
	assert_int_equal(hd_http_start(http, &bad, on_done, &s), HD_E_INVALID);
	assert_int_equal(hd_http_active(http), 0);
	assert_int_equal(s.calls, 0);
	assert_int_equal(hd_http_timeout_ms(http) >= -1, 1);
	hd_http_destroy(&http);
}

/* ---- pure helpers -------------------------------------------------------- */

#define OCT_21_2015_07_28_00 1445412480LL

static void test_retry_after_accepts_delay_seconds(void **state)
{
	(void)state;
	assert_int_equal(hd_http_parse_retry_after("120", 0), 120000);
	assert_int_equal(hd_http_parse_retry_after(" 5 ", 0), 5000);
	assert_int_equal(hd_http_parse_retry_after("0", 0), 0);
	assert_int_equal(hd_http_parse_retry_after("99999999999", 0), HD_HTTP_MAX_RETRY_AFTER_MS);
	assert_int_equal(hd_http_parse_retry_after("172800", 0), HD_HTTP_MAX_RETRY_AFTER_MS);
}

static void test_retry_after_accepts_the_three_http_date_forms(void **state)
{
	(void)state;
	int64_t now = OCT_21_2015_07_28_00 - 60;
	assert_int_equal(hd_http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), 60000);
	assert_int_equal(hd_http_parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now), 60000);
	assert_int_equal(hd_http_parse_retry_after("Wed Oct 21 07:28:00 2015", now), 60000);
}

static void test_retry_after_date_in_the_past_means_now(void **state)
{
	(void)state;
	assert_int_equal(hd_http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT",
						   OCT_21_2015_07_28_00 + 3600), 0);
}

static void test_retry_after_garbage_is_absent(void **state)
{
	(void)state;
	static const char *const bad[] = {"", "soon", "-5", "1.5", "5s", "12:00", NULL};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(hd_http_parse_retry_after(bad[i], 0), -1);
}

static void test_redacted_urls_keep_only_scheme_and_host(void **state)
{
	(void)state;
	static const char *const rows[][2] = {
		{"https://hooks.slack.com/services/T0/B0/XXXXSECRET", "https://hooks.slack.com/..."},
		{"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6", "https://qyapi.weixin.qq.com/..."},
		{"http://127.0.0.1:8080?access_token=abc", "http://127.0.0.1:8080/..."},
		{"https://AC1:token@api.twilio.com:8443/x", "https://api.twilio.com:8443/..."},
		{"http://host", "http://host"},
		{"no scheme here", "(url)"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char out[128];
		hd_http_redact_url(rows[i][0], out, sizeof out);
		assert_string_equal(out, rows[i][1]);
	}
	char tiny[8];
	hd_http_redact_url("https://example.com/secret", tiny, sizeof tiny);
	assert_int_equal(strlen(tiny), 7);
	assert_null(strstr(tiny, "secret"));
}

static void test_urlencode_keeps_only_unreserved_bytes(void **state)
{
	(void)state;
	char *e = hd_http_urlencode("a b+c/=~-._", 11);
	assert_string_equal(e, "a%20b%2Bc%2F%3D~-._");
	free(e);
	e = hd_http_urlencode("验", strlen("验"));
	assert_string_equal(e, "%E9%AA%8C");
	free(e);
}

static void test_hmac_sha256_base64_matches_rfc4231_case_2(void **state)
{
	(void)state;
	char out[64];
	const char *data = "what do ya want for nothing?";
	assert_int_equal(hd_http_hmac_sha256_base64("Jefe", 4, data, strlen(data), out, sizeof out), 0);
	/* hex 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843 */
	assert_string_equal(out, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
	assert_int_equal(hd_http_hmac_sha256_base64("k", 1, "m", 1, out, 44), HD_E_INVALID);
}

static void test_secret_loads_from_a_file_without_the_trailing_newline(void **state)
{
	(void)state;
	char path[] = "/tmp/hd_http_secret_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "SECabc123\n", 10), 10);
	close(fd);
	char *s = NULL, err[256] = "";
	assert_int_equal(hd_http_secret_load(path, NULL, &s, err, sizeof err), 0);
	assert_string_equal(s, "SECabc123");
	hd_http_secret_free(&s);
	assert_null(s);
	unlink(path);
	assert_int_equal(hd_http_secret_load(path, NULL, &s, err, sizeof err), HD_E_CONFIG);
	assert_non_null(strstr(err, path));
}

static void test_secret_loads_from_the_environment_and_errors_name_the_variable(void **state)
{
	(void)state;
	char *s = NULL, err[256] = "";
	setenv("HD_TEST_SECRET", "tok-xyz", 1);
	assert_int_equal(hd_http_secret_load(NULL, "HD_TEST_SECRET", &s, err, sizeof err), 0);
	assert_string_equal(s, "tok-xyz");
	hd_http_secret_free(&s);
	setenv("HD_TEST_SECRET", "   \n", 1);
	assert_int_equal(hd_http_secret_load(NULL, "HD_TEST_SECRET", &s, err, sizeof err), HD_E_CONFIG);
	unsetenv("HD_TEST_SECRET");
	assert_int_equal(hd_http_secret_load(NULL, "HD_TEST_SECRET", &s, err, sizeof err), HD_E_CONFIG);
	assert_non_null(strstr(err, "HD_TEST_SECRET"));
	assert_null(s);
}

static void test_secret_file_larger_than_the_limit_is_refused(void **state)
{
	(void)state;
	char path[] = "/tmp/hd_http_secret_XXXXXX";
	int fd = mkstemp(path);
	char big[HD_HTTP_MAX_SECRET_BYTES + 10];
	memset(big, 'k', sizeof big);
	assert_int_equal(write(fd, big, sizeof big), (ssize_t)sizeof big);
	close(fd);
	char *s = NULL, err[256] = "";
	assert_int_equal(hd_http_secret_load(path, NULL, &s, err, sizeof err), HD_E_CONFIG);
	assert_null(strstr(err, "kkkk"));
	unlink(path);
}

static void test_copy_text_sanitizes_and_never_splits_a_character(void **state)
{
	(void)state;
	char out[16];
	hd_http_copy_text(out, sizeof out, "a\nb\tc\xff" "d\n", 8);
	assert_string_equal(out, "a b c?d");
	char five[5];
	hd_http_copy_text(five, sizeof five, "ab验证", strlen("ab验证"));
	assert_string_equal(five, "ab");
	hd_http_copy_text(out, sizeof out, NULL, 3);
	assert_string_equal(out, "");
}

static void test_transport_result_is_retry_and_http_answers_are_not_transport(void **state)
{
	(void)state;
	hd_wire_result_t res = {0};
	hd_http_response_t r = {.status = 0, .transport_error = 28, .timed_out = true,
				.error = "Operation timed out after 300 milliseconds", .body = ""};
	assert_true(hd_http_transport_result(&r, &res));
	assert_int_equal(res.outcome, HD_OUTCOME_RETRY);
	assert_string_equal(res.provider_code, "timeout");
	assert_non_null(strstr(res.detail, "timed out"));
	hd_http_response_t gone = {.aborted = true, .body = ""};
	assert_true(hd_http_transport_result(&gone, &res));
	assert_string_equal(res.provider_code, "worker-stopping");
	hd_http_response_t ok = {.status = 500, .body = ""};
	assert_false(hd_http_transport_result(&ok, &res));
}

/* ---- hd_http_jobs: the job table the IM and SMS drivers share ------------- */

/* A driver object as hd_http_jobs_op_* expect: its jobs table first. */
typedef struct test_driver {
	hd_http_jobs_t *jobs;
	int maps, reports, dones;
	char trace[64];              /* 'm' map, 'r' report, 'd' done, in order */
	int64_t done_ids[8];
	hd_wire_result_t done_results[8];
} test_driver_t;

static void td_trace(test_driver_t *d, char c)
{
	size_t n = strlen(d->trace);
	if (n + 1 < sizeof d->trace)
		d->trace[n] = c;
}

static void td_map(void *self, hd_http_job_t *job, const hd_http_response_t *r)
{
	test_driver_t *d = self;
	d->maps++;
	td_trace(d, 'm');
	char code[16];
	snprintf(code, sizeof code, "%ld", r->status);
	hd_http_result_set(&job->result, r->status == 200 ? HD_OUTCOME_DELIVERED : HD_OUTCOME_FAILED,
			   code, r->body, strlen(r->body));
}

static void td_report(void *self, const hd_http_job_t *job)
{
	test_driver_t *d = self;
	(void)job;
	d->reports++;
	td_trace(d, 'r');
}

static void td_done(void *arg, hd_channel_job_t *job, const hd_wire_result_t *r)
{
	test_driver_t *d = arg;
	if (d->dones < 8) {
		d->done_ids[d->dones] = job->job.delivery_id;
		d->done_results[d->dones] = *r;
	}
	d->dones++;
	td_trace(d, 'd');
	hd_channel_job_destroy(&job);
}

static void td_open(test_driver_t *d, int64_t max_in_flight)
{
	memset(d, 0, sizeof *d);
	hd_http_settings_t st = {.timeout_ms = 2000, .connect_timeout_ms = 1000,
				 .max_in_flight = max_in_flight, .max_host_connections = 4,
				 .max_connections = 8};
	hd_http_driver_t drv = {.self = d, .map = td_map, .report = td_report,
				.done = td_done, .done_arg = d};
	d->jobs = hd_http_jobs_new(&st, &drv);
	assert_non_null(d->jobs);
}

static hd_channel_job_t *td_job(int64_t id)
{
	hd_channel_job_t *j = hd_calloc(1, sizeof *j);
	j->job.delivery_id = id;
	j->job.message_id = id * 10;
	j->job.attempt = 2;
	j->job.recipient = hd_strdup("ops");
	j->job.kind = hd_strdup("to");
	j->job.msg = hd_msg_new(HD_CHANNEL_IM);
	return j;
}

/* Drive the table like the worker's loop until want jobs were done. */
static void td_run(test_driver_t *d, int want, int64_t max_ms)
{
	int64_t end = hd_time_mono_ms() + max_ms;
	while (d->dones < want && hd_time_mono_ms() < end) {
		zmq_pollitem_t items[32];
		size_t n = hd_http_jobs_op_poll_items(d, items, 32);
		int64_t t = hd_http_jobs_op_timeout_ms(d, 0);
		if (t < 0 || t > 100)
			t = 100;
		zmq_poll(items, (int)n, (long)t);
		hd_http_jobs_op_handle(d, 0, items, n);
	}
}

static void test_jobs_take_at_most_max_in_flight_and_a_parked_job_is_reported_at_the_next_handle(void **state)
{
	(void)state;
	test_driver_t d;
	td_open(&d, 2);
	assert_int_equal(hd_http_jobs_op_capacity(&d), 2);
	hd_http_job_t *a, *b, *c = NULL;
	assert_int_equal(hd_http_jobs_take(d.jobs, td_job(1), &a), 0);
	assert_int_equal(hd_http_jobs_take(d.jobs, td_job(2), &b), 0);
	assert_null(a->ctx);
	hd_channel_job_t *third = td_job(3);
	assert_int_equal(hd_http_jobs_take(d.jobs, third, &c), HD_E_BUSY);
	assert_null(c);
	hd_channel_job_destroy(&third);
	assert_int_equal(hd_http_jobs_op_in_flight(&d), 2);

	hd_http_jobs_park(d.jobs, a, HD_OUTCOME_FAILED, "unknown-group", "no such group");
	assert_int_equal(d.dones, 0);     /* never from inside the driver's submit */
	assert_int_equal(hd_http_jobs_op_timeout_ms(&d, 0), 0);
	hd_http_jobs_op_handle(&d, 0, NULL, 0);
	assert_int_equal(d.dones, 1);
	assert_string_equal(d.trace, "rd");  /* the driver's log line, then done */
	assert_int_equal(d.done_ids[0], 1);
	assert_int_equal(d.done_results[0].delivery_id, 1);
	assert_int_equal(d.done_results[0].attempt, 2);
	assert_int_equal(d.done_results[0].outcome, HD_OUTCOME_FAILED);
	assert_string_equal(d.done_results[0].provider_code, "unknown-group");
	assert_string_equal(d.done_results[0].detail, "no such group");
	assert_int_equal(hd_http_jobs_op_in_flight(&d), 1);
	/* Room again: one more may be taken. */
	assert_int_equal(hd_http_jobs_take(d.jobs, td_job(4), &c), 0);
	hd_http_jobs_park(d.jobs, c, HD_OUTCOME_RETRY, "later", "x");
	hd_http_jobs_park(d.jobs, b, HD_OUTCOME_RETRY, "later", "y");
	hd_http_jobs_destroy(&d.jobs);    /* parked jobs are reported, in order */
	assert_null(d.jobs);
	assert_int_equal(d.dones, 3);
	assert_int_equal(d.done_ids[1], 4);
	assert_int_equal(d.done_ids[2], 2);
}

static void test_jobs_answers_are_mapped_transport_errors_are_not_and_destroy_reports_the_rest(void **state)
{
	(void)state;
	test_driver_t d;
	td_open(&d, 8);
	hd_http_job_t *ok, *refused, *slow;
	assert_int_equal(hd_http_jobs_take(d.jobs, td_job(10), &ok), 0);
	hd_http_request_t r = {.method = "GET", .url = url("/ok")};
	assert_int_equal(hd_http_jobs_start(d.jobs, ok, &r), 0);
	td_run(&d, 1, 5000);
	assert_int_equal(d.dones, 1);
	assert_int_equal(d.maps, 1);
	assert_string_equal(d.trace, "mrd");
	assert_int_equal(d.done_results[0].outcome, HD_OUTCOME_DELIVERED);
	assert_string_equal(d.done_results[0].provider_code, "200");

	/* Nobody listens on port 9 of loopback: a transport error, decided
	 * by the table (RETRY), without asking the driver to map an answer. */
	assert_int_equal(hd_http_jobs_take(d.jobs, td_job(11), &refused), 0);
	hd_http_request_t rr = {.method = "GET", .url = "http://127.0.0.1:9/x"};
	assert_int_equal(hd_http_jobs_start(d.jobs, refused, &rr), 0);
	td_run(&d, 2, 5000);
	assert_int_equal(d.dones, 2);
	assert_int_equal(d.maps, 1);
	assert_int_equal(d.done_results[1].outcome, HD_OUTCOME_RETRY);

	/* A request still in the engine when the driver closes: RETRY, so
	 * the broker sends it again rather than losing it. */
	assert_int_equal(hd_http_jobs_take(d.jobs, td_job(12), &slow), 0);
	hd_http_request_t rs = {.method = "GET", .url = url("/slow")};
	assert_int_equal(hd_http_jobs_start(d.jobs, slow, &rs), 0);
	assert_int_equal(hd_http_jobs_op_in_flight(&d), 1);
	hd_http_jobs_destroy(&d.jobs);
	assert_int_equal(d.dones, 3);
	assert_int_equal(d.done_ids[2], 12);
	assert_int_equal(d.done_results[2].outcome, HD_OUTCOME_RETRY);
	assert_string_equal(d.done_results[2].provider_code, "worker-stopping");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_completes_through_the_poll_loop_with_status_and_body),
		cmocka_unit_test(test_sequential_requests_reuse_one_kept_alive_connection),
		cmocka_unit_test(test_concurrent_requests_all_complete),
		cmocka_unit_test(test_post_sends_the_body_and_content_type),
		cmocka_unit_test(test_retry_after_header_is_parsed_from_the_response),
		cmocka_unit_test(test_a_silent_server_times_out_as_a_transport_error),
		cmocka_unit_test(test_connection_refused_is_a_transport_error_not_a_timeout),
		cmocka_unit_test(test_destroy_completes_requests_in_flight_as_aborted),
		cmocka_unit_test(test_requests_beyond_the_host_limit_wait_without_burning_their_timeout),
		cmocka_unit_test(test_destroy_aborts_waiting_requests_too),
		cmocka_unit_test(test_hosts_have_separate_connection_limits),
		cmocka_unit_test(test_https_only_refuses_a_plain_http_url),
		cmocka_unit_test(test_retry_after_accepts_delay_seconds),
		cmocka_unit_test(test_retry_after_accepts_the_three_http_date_forms),
		cmocka_unit_test(test_retry_after_date_in_the_past_means_now),
		cmocka_unit_test(test_retry_after_garbage_is_absent),
		cmocka_unit_test(test_redacted_urls_keep_only_scheme_and_host),
		cmocka_unit_test(test_urlencode_keeps_only_unreserved_bytes),
		cmocka_unit_test(test_hmac_sha256_base64_matches_rfc4231_case_2),
		cmocka_unit_test(test_secret_loads_from_a_file_without_the_trailing_newline),
		cmocka_unit_test(test_secret_loads_from_the_environment_and_errors_name_the_variable),
		cmocka_unit_test(test_secret_file_larger_than_the_limit_is_refused),
		cmocka_unit_test(test_copy_text_sanitizes_and_never_splits_a_character),
		cmocka_unit_test(test_transport_result_is_retry_and_http_answers_are_not_transport),
		cmocka_unit_test(test_jobs_take_at_most_max_in_flight_and_a_parked_job_is_reported_at_the_next_handle),
		cmocka_unit_test(test_jobs_answers_are_mapped_transport_errors_are_not_and_destroy_reports_the_rest),
	};
	return cmocka_run_group_tests(tests, start_server, stop_server);
}
