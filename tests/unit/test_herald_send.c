/*
 * NAME
 *	test_herald_send - the herald-send command line, run as a process
 * DESCRIPTION
 *	Spawns the built herald-send (found next to this test in the build
 *	tree: ../client/herald-send, or $HERALD_SEND) against a ZeroMQ
 *	ROUTER played by a thread of this test, and checks what a user
 *	sees: exit status, the human lines, the --json object, and what
 *	arrived on the wire (decoded with hd_envelope).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "hd_envelope.h"
#include "hd_err.h"

extern char **environ;

/* ---- a minimal fake heraldd ------------------------------------------ */

typedef struct fake_server {
	void *ctx;
	void *sock;
	char endpoint[64];
	pthread_t thread;
	atomic_bool stop;
	bool reject;       /* ERROR invalid msg.to[0] instead of an ACK */
	size_t nreq;
	hd_msg_t *first_msg;
} fake_server_t;

static void fs_reply(fake_server_t *fs, const uint8_t *ident, size_t ident_len, uint64_t rid)
{
	hd_finding_t finding = {
		.rule = "cc_needs_reason", .clause = "E1", .action = "hold",
		.severity = "major", .reason = "cc without a reason",
	};
	hd_reply_t r = {
		.rid = rid, .ok = true, .id = 42, .klass = HD_CLASS_IMPORTANT,
		.findings = &finding, .finding_count = 1,
	};
	snprintf(r.state, sizeof(r.state), "held");
	if (fs->reject) {
		r.findings = NULL;
		r.finding_count = 0;
		hd_reply_set_error(&r, HD_E_INVALID, "msg.to[0]", "not an RFC 5321 mailbox");
	}
	uint8_t *buf = NULL;
	size_t len = 0;
	if (hd_envelope_encode_reply(&r, &buf, &len) != 0)
		return;
	zmq_send(fs->sock, ident, ident_len, ZMQ_SNDMORE);
	zmq_send(fs->sock, buf, len, 0);
	free(buf);
}

static void *fs_main(void *arg)
{
	fake_server_t *fs = arg;
	while (!atomic_load(&fs->stop)) {
		zmq_pollitem_t item = {.socket = fs->sock, .events = ZMQ_POLLIN};
		if (zmq_poll(&item, 1, 10) <= 0)
			continue;
		uint8_t ident[256];
		int ident_len = zmq_recv(fs->sock, ident, sizeof(ident), 0);
		zmq_msg_t frame;
		zmq_msg_init(&frame);
		if (ident_len < 0 || zmq_msg_recv(&frame, fs->sock, 0) < 0) {
			zmq_msg_close(&frame);
			continue;
		}
		hd_request_t req;
		if (hd_envelope_decode_request(zmq_msg_data(&frame), zmq_msg_size(&frame), 0, &req,
					       NULL) == 0) {
			fs->nreq++;
			if (!fs->first_msg) {
				fs->first_msg = req.msg;
				req.msg = NULL;
			}
			fs_reply(fs, ident, (size_t)ident_len, req.rid);
		}
		hd_request_clear(&req);
		zmq_msg_close(&frame);
	}
	return NULL;
}

static fake_server_t *fs_start(bool reject)
{
	fake_server_t *fs = calloc(1, sizeof(*fs));
	assert_non_null(fs);
	fs->reject = reject;
	fs->ctx = zmq_ctx_new();
	fs->sock = zmq_socket(fs->ctx, ZMQ_ROUTER);
	int linger = 0;
	zmq_setsockopt(fs->sock, ZMQ_LINGER, &linger, sizeof(linger));
	assert_int_equal(zmq_bind(fs->sock, "tcp://127.0.0.1:*"), 0);
	size_t len = sizeof(fs->endpoint);
	zmq_getsockopt(fs->sock, ZMQ_LAST_ENDPOINT, fs->endpoint, &len);
	atomic_init(&fs->stop, false);
	assert_int_equal(pthread_create(&fs->thread, NULL, fs_main, fs), 0);
	return fs;
}

/* Stop the thread; what it recorded may be read afterwards. */
static void fs_join(fake_server_t *fs)
{
	atomic_store(&fs->stop, true);
	pthread_join(fs->thread, NULL);
}

static void fs_free(fake_server_t **fs_p)
{
	fake_server_t *fs = *fs_p;
	zmq_close(fs->sock);
	zmq_ctx_term(fs->ctx);
	hd_msg_destroy(&fs->first_msg);
	free(fs);
	*fs_p = NULL;
}

/* ---- running the command --------------------------------------------- */

typedef struct run {
	int status;         /* exit status, -1 if it did not exit normally */
	char out[8192];
	char err[8192];
} run_t;

static const char *herald_send_path(void)
{
	static char path[PATH_MAX + 32];
	const char *env = getenv("HERALD_SEND");
	if (env && *env)
		return env;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	assert_non_null(slash);
	*slash = '\0';
	/* tests/ and client/ are siblings in the build tree. */
	static const char *const candidates[] = {"/../client/herald-send", "/client/herald-send"};
	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", exe, candidates[i]);
		if (access(path, X_OK) == 0)
			return path;
	}
	fail_msg("herald-send not found near %s (set HERALD_SEND)", exe);
	return NULL;
}

static void slurp(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
}

/* Run herald-send with args (NULL-terminated), stdin from stdin_text. */
static void run_cli(run_t *r, const char *stdin_text, ...)
{
	const char *argv[64];
	int argc = 0;
	argv[argc++] = herald_send_path();
	va_list ap;
	va_start(ap, stdin_text);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && argc < 63)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	char in_path[] = "/tmp/test_herald_send_in_XXXXXX";
	char out_path[] = "/tmp/test_herald_send_out_XXXXXX";
	char err_path[] = "/tmp/test_herald_send_err_XXXXXX";
	int in_fd = mkstemp(in_path), out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
	assert_true(in_fd >= 0 && out_fd >= 0 && err_fd >= 0);
	if (stdin_text)
		assert_int_equal(write(in_fd, stdin_text, strlen(stdin_text)),
				 (ssize_t)strlen(stdin_text));
	close(in_fd);
	close(out_fd);
	close(err_fd);

	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, in_path, O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_TRUNC, 0);
	posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_TRUNC, 0);
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	int ws = 0;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
	slurp(out_path, r->out, sizeof(r->out));
	slurp(err_path, r->err, sizeof(r->err));
	unlink(in_path);
}

/* Write content to dir/name; returns the path (caller frees). */
static char *write_temp(const char *dir, const char *name, const char *content)
{
	size_t cap = strlen(dir) + strlen(name) + 2;
	char *path = malloc(cap);
	assert_non_null(path);
	snprintf(path, cap, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	return path;
}

/* ---- tests ----------------------------------------------------------- */

static void test_cli_without_channel_or_sender_is_a_usage_error(void **state)
{
	(void)state;
	run_t r;
	run_cli(&r, NULL, "--from", "a@example.com", "--to", "b@example.com", NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--channel is required"));
	run_cli(&r, NULL, "--channel", "email", "--to", "b@example.com", NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--from is required"));
	run_cli(&r, NULL, "--channel", "fax", "--from", "a@example.com", NULL);
	assert_int_equal(r.status, 2);
	run_cli(&r, NULL, "--channel", "email", "--no-such-flag", NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--no-such-flag"));
	assert_string_equal(r.out, "");
}

static void test_cli_refuses_bad_values_with_exit_2(void **state)
{
	(void)state;
	run_t r;
	run_cli(&r, NULL, "--channel", "email", "--from", "a@example.com", "--reply-by",
		"2023-02-29T10:00:00Z", NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--reply-by"));
	run_cli(&r, NULL, "--channel", "email", "--from", "a@example.com", "--tag", "novalue",
		NULL);
	assert_int_equal(r.status, 2);
	run_cli(&r, NULL, "--channel", "email", "--from", "a@example.com", "--attach",
		"/nonexistent/file.pdf", NULL);
	assert_int_equal(r.status, 2);
	run_cli(&r, NULL, "--channel", "email", "--from", "a@example.com", "--retries", "x",
		NULL);
	assert_int_equal(r.status, 2);
}

static void test_cli_help_documents_the_exit_codes(void **state)
{
	(void)state;
	run_t r;
	run_cli(&r, NULL, "--help", NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "Exit status"));
	assert_non_null(strstr(r.out, "3  rejected"));
	assert_non_null(strstr(r.out, "4  heraldd unreachable"));
	run_cli(&r, NULL, "--version", NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "herald-send 0."));
}

static void test_cli_prints_the_accepted_line_and_exits_0(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(false);
	run_t r;
	run_cli(&r, NULL, "--endpoint", fs->endpoint, "--channel", "email", "--from",
		"a@example.com", "--to", "b@example.com", "--body", "hi", NULL);
	fs_join(fs);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out,
			    "accepted id=42 class=important state=held\n"
			    "finding rule=cc_needs_reason clause=E1 action=hold severity=major "
			    "reason=cc without a reason\n");
	assert_int_equal(fs->nreq, 1);
	fs_free(&fs);
}

static void test_cli_json_reports_the_ack_on_stdout(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(false);
	run_t r;
	run_cli(&r, NULL, "--endpoint", fs->endpoint, "--channel", "email", "--from",
		"a@example.com", "--to", "b@example.com", "--json", "--idempotency-key", "k-1",
		NULL);
	fs_join(fs);
	assert_int_equal(r.status, 0);
	json_error_t jerr;
	json_t *j = json_loads(r.out, 0, &jerr);
	assert_non_null(j);
	assert_true(json_is_true(json_object_get(j, "ok")));
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 42);
	assert_string_equal(json_string_value(json_object_get(j, "class")), "important");
	assert_string_equal(json_string_value(json_object_get(j, "state")), "held");
	assert_true(json_is_false(json_object_get(j, "duplicate")));
	assert_string_equal(json_string_value(json_object_get(j, "idempotency_key")), "k-1");
	json_t *findings = json_object_get(j, "findings");
	assert_int_equal(json_array_size(findings), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(findings, 0),
							       "clause")), "E1");
	json_decref(j);
	fs_free(&fs);
}

static void test_cli_rejection_exits_3_with_code_field_and_reason(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(true);
	run_t r;
	run_cli(&r, NULL, "--endpoint", fs->endpoint, "--channel", "email", "--from",
		"a@example.com", "--to", "b@example.com", NULL);
	assert_int_equal(r.status, 3);
	assert_string_equal(r.err,
			    "rejected code=invalid field=msg.to[0] reason=not an RFC 5321 mailbox\n");
	assert_string_equal(r.out, "");

	run_cli(&r, NULL, "--endpoint", fs->endpoint, "--channel", "email", "--from",
		"a@example.com", "--to", "b@example.com", "--json", NULL);
	fs_join(fs);
	assert_int_equal(r.status, 3);
	json_t *j = json_loads(r.out, 0, NULL);
	assert_non_null(j);
	assert_true(json_is_false(json_object_get(j, "ok")));
	assert_string_equal(json_string_value(json_object_get(j, "code")), "invalid");
	assert_string_equal(json_string_value(json_object_get(j, "field")), "msg.to[0]");
	assert_string_equal(json_string_value(json_object_get(j, "reason")),
			    "not an RFC 5321 mailbox");
	assert_true(json_is_false(json_object_get(j, "retryable")));
	json_decref(j);
	assert_int_equal(fs->nreq, 2);
	fs_free(&fs);
}

static void test_cli_unreachable_server_exits_4_and_prints_the_key(void **state)
{
	(void)state;
	/* A port that was free a moment ago: nothing listens there. */
	fake_server_t *probe = fs_start(false);
	char endpoint[64];
	snprintf(endpoint, sizeof(endpoint), "%s", probe->endpoint);
	fs_join(probe);
	fs_free(&probe);

	run_t r;
	run_cli(&r, NULL, "--endpoint", endpoint, "--channel", "email", "--from",
		"a@example.com", "--to", "b@example.com", "--timeout-ms", "100", "--retries", "1",
		"--idempotency-key", "order-77", NULL);
	assert_int_equal(r.status, 4);
	assert_non_null(strstr(r.err, "unavailable code=timeout"));
	assert_non_null(strstr(r.err, "--idempotency-key order-77"));
	run_cli(&r, NULL, "--endpoint", endpoint, "--channel", "email", "--from",
		"a@example.com", "--to", "b@example.com", "--timeout-ms", "100", "--retries", "0",
		"--json", NULL);
	assert_int_equal(r.status, 4);
	json_t *j = json_loads(r.out, 0, NULL);
	assert_non_null(j);
	assert_true(json_is_false(json_object_get(j, "ok")));
	assert_true(json_is_true(json_object_get(j, "retryable")));
	json_decref(j);
}

static void test_cli_sends_addresses_files_tags_and_times_as_given(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_herald_send_XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *pdf = write_temp(dir, "report.PDF", "%PDF-1.4");
	char *dat = write_temp(dir, "raw.dat", "a,b\n");
	char *html = write_temp(dir, "body.html", "<p>hi</p>");
	char attach_csv[80];
	snprintf(attach_csv, sizeof(attach_csv), "%s:text/csv", dat);
	fake_server_t *fs = fs_start(false);
	run_t r;
	run_cli(&r, "body from stdin\n", "--endpoint", fs->endpoint, "--app", "crm",
		"--channel", "email", "--from", "a@example.com", "--to",
		"b@example.com, c@example.com", "--to", "d@example.com", "--cc", "e@example.com",
		"--cc-reason", "audit", "--subject", "Report", "--body-file", "-", "--html-file",
		html, "--attach", pdf, "--attach", attach_csv, "--attach", dat, "--important",
		"--needs-reply", "--reply-by", "2026-12-01T19:00:00+02:00", "--bulk-purpose",
		"news", "--bulk-audience", "customers", "--bulk-summary", "monthly", "--tag",
		"k=v=w", "--quiet", NULL);
	fs_join(fs);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, ""); /* --quiet */
	const hd_msg_t *m = fs->first_msg;
	assert_non_null(m);
	assert_int_equal(m->to_count, 3);
	assert_string_equal(m->to[1], "c@example.com");
	assert_string_equal(m->to[2], "d@example.com");
	assert_int_equal(m->cc_count, 1);
	assert_string_equal(m->body, "body from stdin\n");
	assert_string_equal(m->html, "<p>hi</p>");
	assert_int_equal(m->attachment_count, 3);
	assert_string_equal(m->attachments[0].mime_type, "application/pdf");
	assert_int_equal(m->attachments[0].size, 8);
	assert_string_equal(m->attachments[1].mime_type, "text/csv");
	assert_string_equal(m->attachments[2].mime_type, "application/octet-stream");
	assert_string_equal(m->attachments[0].name, "report.PDF");
	assert_string_equal(m->attachments[2].name, "raw.dat");
	assert_int_equal(m->flags, HD_FLAG_IMPORTANT | HD_FLAG_NEEDS_REPLY);
	assert_int_equal(m->reply_by, 1796144400); /* 2026-12-01T17:00:00Z */
	assert_non_null(m->bulk);
	assert_int_equal(m->bulk->recipient_count, 4); /* defaults to to + cc */
	assert_int_equal(m->tag_count, 1);
	assert_string_equal(m->tags[0].value, "v=w");
	assert_int_equal(strlen(m->idempotency_key), 32);
	fs_free(&fs);
	unlink(pdf);
	unlink(dat);
	unlink(html);
	free(pdf);
	free(dat);
	free(html);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_without_channel_or_sender_is_a_usage_error),
		cmocka_unit_test(test_cli_refuses_bad_values_with_exit_2),
		cmocka_unit_test(test_cli_help_documents_the_exit_codes),
		cmocka_unit_test(test_cli_prints_the_accepted_line_and_exits_0),
		cmocka_unit_test(test_cli_json_reports_the_ack_on_stdout),
		cmocka_unit_test(test_cli_rejection_exits_3_with_code_field_and_reason),
		cmocka_unit_test(test_cli_unreachable_server_exits_4_and_prints_the_key),
		cmocka_unit_test(test_cli_sends_addresses_files_tags_and_times_as_given),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
