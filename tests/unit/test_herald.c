/*
 * NAME
 *	test_herald - libherald: message builder, submit, retries, pipelining
 * DESCRIPTION
 *	The network tests talk to a real ZeroMQ ROUTER on a loopback TCP
 *	port, played by a thread of this test (not heraldd): it decodes
 *	each request with hd_envelope, records it, and answers as the
 *	scenario says (ACK, ERROR, silence, out of order, late). Timeouts
 *	are short so every test finishes well under two seconds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "hd_envelope.h"
#include "hd_err.h"
#include "hd_time.h"
#include "herald/herald.h"

/* ---- the fake server ------------------------------------------------- */

#define FS_MAX_REQS  128
#define FS_IDENT_MAX 256

typedef enum {
	FS_ACK_ALL,         /* ACK every request */
	FS_REJECT,          /* ERROR invalid msg.to[0] */
	FS_SILENT,          /* never answer */
	FS_BUSY_THEN_ACK,   /* ERROR busy to the first request, ACK after */
	FS_ALWAYS_BUSY,     /* ERROR busy with retry_after_ms to every request */
	FS_WINDOW,          /* hold requests, answer a batch in reverse order */
	FS_LATE,            /* ignore the first, answer it late before the second */
	FS_OLD_ATTEMPT,     /* ignore the first, ACK the first rid on the second */
	FS_PONG             /* answer pings */
} fs_mode_t;

typedef struct fs_pending {
	uint8_t ident[FS_IDENT_MAX];
	size_t ident_len;
	uint64_t rid;
	int n;              /* tag "n" of the message */
} fs_pending_t;

typedef struct fs_req {
	uint64_t rid;
	hd_op_t op;
	char app[80];
	char key[HERALD_MAX_IDEM_KEY_BYTES + 1];
} fs_req_t;

typedef struct fake_server {
	void *ctx;
	void *sock;
	char endpoint[64];
	pthread_t thread;
	atomic_bool stop;
	bool joined;
	fs_mode_t mode;
	size_t window;
	/* written by the thread, read after join */
	fs_req_t reqs[FS_MAX_REQS];
	size_t nreq;
	size_t undecodable;
	char last_decode_error[320];
	hd_msg_t *first_msg;      /* the first decoded message, kept */
	fs_pending_t pending[FS_MAX_REQS];
	size_t npending;
	size_t max_pending;
} fake_server_t;

static void fs_send(fake_server_t *fs, const uint8_t *ident, size_t ident_len,
		    const hd_reply_t *reply)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(hd_envelope_encode_reply(reply, &buf, &len), 0);
	zmq_send(fs->sock, ident, ident_len, ZMQ_SNDMORE);
	zmq_send(fs->sock, buf, len, 0);
	free(buf);
}

static void fs_ack(fake_server_t *fs, const uint8_t *ident, size_t ident_len, uint64_t rid,
		   int64_t id, bool duplicate)
{
	hd_finding_t finding = {
		.rule = "cc_needs_reason", .clause = "E1", .action = "hold",
		.severity = "major", .reason = "cc without a reason",
	};
	hd_reply_t r = {
		.rid = rid, .ok = true, .id = id, .klass = HD_CLASS_IMPORTANT,
		.duplicate = duplicate, .findings = &finding, .finding_count = 1,
	};
	snprintf(r.state, sizeof(r.state), "held");
	fs_send(fs, ident, ident_len, &r);
}

static void fs_error(fake_server_t *fs, const uint8_t *ident, size_t ident_len, uint64_t rid,
		     int code, const char *field, const char *reason, int64_t retry_after_ms)
{
	hd_reply_t r = {.rid = rid};
	hd_reply_set_error(&r, code, field, reason);
	r.retry_after_ms = retry_after_ms;
	fs_send(fs, ident, ident_len, &r);
}

static int fs_tag_n(const hd_msg_t *m)
{
	for (size_t i = 0; m && i < m->tag_count; i++)
		if (strcmp(m->tags[i].key, "n") == 0)
			return atoi(m->tags[i].value);
	return -1;
}

static void fs_flush_pending_reversed(fake_server_t *fs)
{
	while (fs->npending > 0) {
		fs_pending_t *p = &fs->pending[--fs->npending];
		fs_ack(fs, p->ident, p->ident_len, p->rid, 1000 + p->n, false);
	}
}

static void fs_on_request(fake_server_t *fs, const uint8_t *ident, size_t ident_len,
			  hd_request_t *req)
{
	size_t nth = fs->nreq; /* 0-based index of this request */
	if (fs->nreq < FS_MAX_REQS) {
		fs_req_t *r = &fs->reqs[fs->nreq++];
		r->rid = req->rid;
		r->op = req->op;
		snprintf(r->app, sizeof(r->app), "%s", req->app ? req->app : "");
		snprintf(r->key, sizeof(r->key), "%s",
			 req->msg && req->msg->idempotency_key ? req->msg->idempotency_key : "");
	}
	if (!fs->first_msg && req->msg) {
		fs->first_msg = req->msg;
		req->msg = NULL;
	}
	const hd_msg_t *m = req->msg ? req->msg : fs->first_msg;

	switch (fs->mode) {
	case FS_ACK_ALL:
		fs_ack(fs, ident, ident_len, req->rid, 42, false);
		break;
	case FS_REJECT:
		fs_error(fs, ident, ident_len, req->rid, HD_E_INVALID, "msg.to[0]",
			 "not an RFC 5321 mailbox", 0);
		break;
	case FS_SILENT:
		break;
	case FS_BUSY_THEN_ACK:
		if (nth == 0)
			fs_error(fs, ident, ident_len, req->rid, HD_E_BUSY, "", "queue full", 0);
		else
			fs_ack(fs, ident, ident_len, req->rid, 43, true);
		break;
	case FS_ALWAYS_BUSY:
		fs_error(fs, ident, ident_len, req->rid, HD_E_BUSY, "", "queue full", 30);
		break;
	case FS_WINDOW: {
		fs_pending_t *p = &fs->pending[fs->npending++];
		memcpy(p->ident, ident, ident_len);
		p->ident_len = ident_len;
		p->rid = req->rid;
		p->n = fs_tag_n(m);
		if (fs->npending > fs->max_pending)
			fs->max_pending = fs->npending;
		if (fs->npending >= fs->window)
			fs_flush_pending_reversed(fs);
		break;
	}
	case FS_LATE:
	case FS_OLD_ATTEMPT:
		if (nth == 0) {
			fs_pending_t *p = &fs->pending[fs->npending++];
			memcpy(p->ident, ident, ident_len);
			p->ident_len = ident_len;
			p->rid = req->rid;
		} else if (fs->mode == FS_LATE) {
			fs_ack(fs, ident, ident_len, fs->pending[0].rid, 999, false);
			fs_ack(fs, ident, ident_len, req->rid, 2, false);
		} else {
			fs_ack(fs, ident, ident_len, fs->pending[0].rid, 7, true);
		}
		break;
	case FS_PONG: {
		hd_reply_t r = {.rid = req->rid, .ok = true, .pong = true};
		fs_send(fs, ident, ident_len, &r);
		break;
	}
	}
}

static void *fs_main(void *arg)
{
	fake_server_t *fs = arg;
	while (!atomic_load(&fs->stop)) {
		zmq_pollitem_t item = {.socket = fs->sock, .events = ZMQ_POLLIN};
		if (zmq_poll(&item, 1, 10) <= 0) {
			if (fs->mode == FS_WINDOW)
				fs_flush_pending_reversed(fs); /* the client went quiet */
			continue;
		}
		uint8_t ident[FS_IDENT_MAX];
		int ident_len = zmq_recv(fs->sock, ident, sizeof(ident), 0);
		zmq_msg_t frame;
		zmq_msg_init(&frame);
		if (ident_len < 0 || zmq_msg_recv(&frame, fs->sock, 0) < 0) {
			zmq_msg_close(&frame);
			continue;
		}
		hd_request_t req;
		hd_decode_error_t err;
		if (hd_envelope_decode_request(zmq_msg_data(&frame), zmq_msg_size(&frame), 0, &req,
					       &err) == 0)
			fs_on_request(fs, ident, (size_t)ident_len, &req);
		else {
			fs->undecodable++;
			snprintf(fs->last_decode_error, sizeof(fs->last_decode_error), "%s %s: %s",
				 hd_err_name(err.code), err.field, err.reason);
		}
		hd_request_clear(&req);
		zmq_msg_close(&frame);
	}
	return NULL;
}

/* Bind on a free loopback port (or on port when not 0) and start the thread. */
static fake_server_t *fs_start_on(fs_mode_t mode, int port)
{
	fake_server_t *fs = calloc(1, sizeof(*fs));
	assert_non_null(fs);
	fs->mode = mode;
	fs->window = 4;
	fs->ctx = zmq_ctx_new();
	fs->sock = zmq_socket(fs->ctx, ZMQ_ROUTER);
	int linger = 0;
	zmq_setsockopt(fs->sock, ZMQ_LINGER, &linger, sizeof(linger));
	char bind_to[64];
	if (port)
		snprintf(bind_to, sizeof(bind_to), "tcp://127.0.0.1:%d", port);
	else
		snprintf(bind_to, sizeof(bind_to), "tcp://127.0.0.1:*");
	assert_int_equal(zmq_bind(fs->sock, bind_to), 0);
	size_t len = sizeof(fs->endpoint);
	zmq_getsockopt(fs->sock, ZMQ_LAST_ENDPOINT, fs->endpoint, &len);
	atomic_init(&fs->stop, false);
	assert_int_equal(pthread_create(&fs->thread, NULL, fs_main, fs), 0);
	return fs;
}

static fake_server_t *fs_start(fs_mode_t mode)
{
	return fs_start_on(mode, 0);
}

/* Stop the thread; what it recorded may be read afterwards. Idempotent. */
static void fs_join(fake_server_t *fs)
{
	if (fs->joined)
		return;
	atomic_store(&fs->stop, true);
	pthread_join(fs->thread, NULL);
	fs->joined = true;
}

static void fs_stop(fake_server_t **fs_p)
{
	fake_server_t *fs = *fs_p;
	fs_join(fs);
	zmq_close(fs->sock);
	zmq_ctx_term(fs->ctx);
	hd_msg_destroy(&fs->first_msg);
	free(fs);
	*fs_p = NULL;
}

static int fs_port(const fake_server_t *fs)
{
	const char *colon = strrchr(fs->endpoint, ':');
	return colon ? atoi(colon + 1) : 0;
}

/* ---- helpers --------------------------------------------------------- */

static herald_client_t *client_for(const fake_server_t *fs, int timeout_ms, int retries)
{
	char err[256] = "";
	herald_client_t *c = herald_client_new(fs->endpoint, "billing", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(herald_client_set_timeout_ms(c, timeout_ms), HERALD_OK);
	assert_int_equal(herald_client_set_retries(c, retries), HERALD_OK);
	assert_int_equal(herald_client_set_backoff_ms(c, 10, 20), HERALD_OK);
	return c;
}

static herald_msg_t *simple_email(int n)
{
	herald_msg_t *m = herald_msg_new(HERALD_EMAIL);
	assert_non_null(m);
	assert_int_equal(herald_msg_set_from(m, "billing@example.com"), HERALD_OK);
	assert_int_equal(herald_msg_add_to(m, "alice@example.com"), HERALD_OK);
	assert_int_equal(herald_msg_set_subject(m, "Your invoice"), HERALD_OK);
	assert_int_equal(herald_msg_set_body(m, "Attached."), HERALD_OK);
	char num[16];
	snprintf(num, sizeof(num), "%d", n);
	assert_int_equal(herald_msg_add_tag(m, "n", num), HERALD_OK);
	return m;
}

static bool is_hex32(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* ---- message builder ------------------------------------------------- */

static void test_msg_new_refuses_unknown_channel(void **state)
{
	(void)state;
	assert_null(herald_msg_new((herald_channel_t)7));
	herald_msg_t *m = herald_msg_new(HERALD_SMS);
	assert_non_null(m);
	herald_msg_destroy(&m);
	assert_null(m);
	herald_msg_destroy(&m); /* NULL-safe */
	herald_msg_destroy(NULL);
}

static void test_msg_setters_refuse_null_and_empty(void **state)
{
	(void)state;
	herald_msg_t *m = herald_msg_new(HERALD_EMAIL);
	assert_int_equal(herald_msg_set_from(NULL, "a@example.com"), HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_from(m, NULL), HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_from(m, ""), HERALD_E_INVAL);
	assert_int_equal(herald_msg_add_to(m, NULL), HERALD_E_INVAL);
	assert_int_equal(herald_msg_add_to(m, ""), HERALD_E_INVAL);
	assert_int_equal(herald_msg_add_cc(m, NULL), HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_cc_reason(m, ""), HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_subject(m, NULL), HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_subject(m, ""), HERALD_OK);
	assert_int_equal(herald_msg_set_idempotency_key(m, ""), HERALD_E_INVAL);
	assert_int_equal(herald_msg_add_tag(m, "", "v"), HERALD_E_INVAL);
	assert_int_equal(herald_msg_add_tag(m, "k", NULL), HERALD_E_INVAL);
	assert_int_equal(herald_msg_add_attachment(m, "a.pdf", "application/pdf", NULL, 3),
			 HERALD_E_INVAL);
	assert_int_equal(herald_msg_add_attachment(m, "", "application/pdf", "abc", 3),
			 HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_bulk(m, "newsletter", NULL, 10, "s"), HERALD_E_INVAL);
	assert_null(herald_msg_idempotency_key(m));
	herald_msg_destroy(&m);
}

static void test_msg_setters_refuse_values_over_the_limits(void **state)
{
	(void)state;
	herald_msg_t *m = herald_msg_new(HERALD_EMAIL);
	char *big = malloc(HERALD_MAX_BODY_BYTES + 2);
	memset(big, 'x', HERALD_MAX_BODY_BYTES + 1);
	big[HERALD_MAX_BODY_BYTES + 1] = '\0';

	big[HERALD_MAX_SUBJECT_BYTES] = '\0';
	assert_int_equal(herald_msg_set_subject(m, big), HERALD_OK);
	big[HERALD_MAX_SUBJECT_BYTES] = 'x';
	big[HERALD_MAX_SUBJECT_BYTES + 1] = '\0';
	assert_int_equal(herald_msg_set_subject(m, big), HERALD_E_INVAL);
	big[HERALD_MAX_SUBJECT_BYTES + 1] = 'x';

	big[HERALD_MAX_ADDR_BYTES + 1] = '\0';
	assert_int_equal(herald_msg_add_to(m, big), HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_from(m, big), HERALD_E_INVAL);
	big[HERALD_MAX_ADDR_BYTES + 1] = 'x';

	big[HERALD_MAX_IDEM_KEY_BYTES + 1] = '\0';
	assert_int_equal(herald_msg_set_idempotency_key(m, big), HERALD_E_INVAL);
	big[HERALD_MAX_IDEM_KEY_BYTES] = '\0';
	assert_int_equal(herald_msg_set_idempotency_key(m, big), HERALD_OK);
	big[HERALD_MAX_IDEM_KEY_BYTES] = 'x';
	big[HERALD_MAX_IDEM_KEY_BYTES + 1] = 'x';

	big[HERALD_MAX_BULK_TEXT_BYTES + 1] = '\0';
	assert_int_equal(herald_msg_set_bulk(m, "p", "a", 1, big), HERALD_E_INVAL);
	big[HERALD_MAX_BULK_TEXT_BYTES + 1] = 'x';

	assert_int_equal(herald_msg_set_body(m, big), HERALD_E_INVAL); /* 4 MiB + 1 */
	big[HERALD_MAX_BODY_BYTES] = '\0';
	assert_int_equal(herald_msg_set_body(m, big), HERALD_OK);
	free(big);

	assert_int_equal(herald_msg_add_attachment(m, "big.bin", NULL, "",
						   (size_t)HERALD_MAX_ATTACH_BYTES + 1),
			 HERALD_E_INVAL);
	herald_msg_destroy(&m);
}

static void test_msg_setters_refuse_invalid_utf8(void **state)
{
	(void)state;
	herald_msg_t *m = herald_msg_new(HERALD_EMAIL);
	assert_int_equal(herald_msg_set_subject(m, "caf\xc3"), HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_body(m, "\xff\xfe"), HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_subject(m, "caf\xc3\xa9"), HERALD_OK);
	herald_msg_destroy(&m);
}

static void test_msg_counts_are_capped(void **state)
{
	(void)state;
	herald_msg_t *m = herald_msg_new(HERALD_EMAIL);
	for (unsigned i = 0; i < HERALD_MAX_ATTACHMENTS; i++)
		assert_int_equal(herald_msg_add_attachment(m, "a.txt", "text/plain", "x", 1),
				 HERALD_OK);
	assert_int_equal(herald_msg_add_attachment(m, "a.txt", "text/plain", "x", 1),
			 HERALD_E_INVAL);

	char key[16];
	for (unsigned i = 0; i < HERALD_MAX_TAGS; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		assert_int_equal(herald_msg_add_tag(m, key, "v"), HERALD_OK);
	}
	assert_int_equal(herald_msg_add_tag(m, "one-too-many", "v"), HERALD_E_INVAL);
	/* An existing key is replaced, not added, even when full. */
	assert_int_equal(herald_msg_add_tag(m, "k3", "new"), HERALD_OK);

	for (unsigned i = 0; i < HERALD_MAX_RECIPIENTS - 1; i++)
		assert_int_equal(herald_msg_add_to(m, "a@example.com"), HERALD_OK);
	assert_int_equal(herald_msg_add_cc(m, "b@example.com"), HERALD_OK);
	assert_int_equal(herald_msg_add_cc(m, "c@example.com"), HERALD_E_INVAL);
	assert_int_equal(herald_msg_add_to(m, "c@example.com"), HERALD_E_INVAL);
	herald_msg_destroy(&m);
}

static void test_msg_refuses_unknown_flags_purposes_and_negative_times(void **state)
{
	(void)state;
	herald_msg_t *m = herald_msg_new(HERALD_SMS);
	assert_int_equal(herald_msg_set_flag(m, 1u << 9), HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_flag(m, 0), HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_flag(m, HERALD_FLAG_CONFIDENTIAL | HERALD_FLAG_BULK),
			 HERALD_OK);
	assert_int_equal(herald_msg_set_purpose(m, (herald_purpose_t)9), HERALD_E_INVAL);
	assert_int_equal(herald_msg_set_reply_by(m, -1), HERALD_E_INVAL);
	herald_msg_destroy(&m);
}

static void test_client_new_refuses_bad_app_and_endpoint(void **state)
{
	(void)state;
	char err[256] = "";
	assert_null(herald_client_new("tcp://127.0.0.1:7711", "", err, sizeof(err)));
	assert_true(strstr(err, "application name") != NULL);
	assert_null(herald_client_new("tcp://127.0.0.1:7711", NULL, NULL, 0));
	char app[HERALD_MAX_APP_BYTES + 2];
	memset(app, 'a', sizeof(app) - 1);
	app[sizeof(app) - 1] = '\0';
	assert_null(herald_client_new("tcp://127.0.0.1:7711", app, err, sizeof(err)));
	err[0] = '\0';
	assert_null(herald_client_new("no-such-transport", "billing", err, sizeof(err)));
	assert_true(strstr(err, "cannot connect") != NULL);

	herald_client_t *c = herald_client_new(NULL, "billing", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(herald_client_set_window(c, 0), HERALD_E_INVAL);
	assert_int_equal(herald_client_set_window(c, 65537), HERALD_E_INVAL);
	assert_int_equal(herald_client_set_retries(c, -1), HERALD_E_INVAL);
	assert_int_equal(herald_client_set_retries(c, 101), HERALD_E_INVAL);
	assert_int_equal(herald_client_set_timeout_ms(c, 0), HERALD_E_INVAL);
	assert_int_equal(herald_client_set_backoff_ms(c, 100, 50), HERALD_E_INVAL);
	herald_client_destroy(&c);
	assert_null(c);
	herald_client_destroy(&c);
}

/* ---- synchronous submit ---------------------------------------------- */

static void test_submit_returns_the_ack_with_its_findings(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_ACK_ALL);
	herald_client_t *c = client_for(fs, 1000, 0);
	herald_msg_t *m = simple_email(1);

	herald_result_t res;
	assert_int_equal(herald_submit(c, m, &res), HERALD_OK);
	assert_int_equal(res.status, HERALD_OK);
	assert_int_equal(res.id, 42);
	assert_string_equal(res.klass, "important");
	assert_string_equal(res.state, "held");
	assert_int_equal(res.duplicate, 0);
	assert_int_equal(res.attempts, 1);
	assert_int_equal(res.finding_count, 1);
	assert_int_equal(res.findings_total, 1);
	assert_string_equal(res.findings[0].rule, "cc_needs_reason");
	assert_string_equal(res.findings[0].clause, "E1");
	assert_string_equal(res.findings[0].action, "hold");
	assert_string_equal(res.findings[0].severity, "major");
	assert_string_equal(res.findings[0].reason, "cc without a reason");
	assert_string_equal(res.code, "");
	assert_int_equal(herald_client_outstanding(c), 0);

	herald_client_destroy(&c);
	fs_stop(&fs);
	herald_msg_destroy(&m);
}

static void test_submit_generates_one_key_and_keeps_it_for_resubmits(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_ACK_ALL);
	herald_client_t *c = client_for(fs, 1000, 0);
	herald_msg_t *m = simple_email(1);
	assert_null(herald_msg_idempotency_key(m));

	herald_result_t res;
	assert_int_equal(herald_submit(c, m, &res), HERALD_OK);
	assert_true(is_hex32(res.idempotency_key));
	assert_string_equal(herald_msg_idempotency_key(m), res.idempotency_key);
	assert_int_equal(herald_submit(c, m, &res), HERALD_OK);

	herald_msg_t *other = simple_email(2);
	herald_result_t res2;
	assert_int_equal(herald_submit(c, other, &res2), HERALD_OK);
	herald_client_destroy(&c);
	fs_join(fs);

	assert_int_equal(fs->nreq, 3);
	assert_string_equal(fs->reqs[0].key, res.idempotency_key);
	assert_string_equal(fs->reqs[1].key, res.idempotency_key);
	assert_true(is_hex32(fs->reqs[2].key));
	assert_string_not_equal(fs->reqs[2].key, res.idempotency_key);
	assert_true(fs->reqs[0].rid != fs->reqs[1].rid);
	fs_stop(&fs);
	herald_msg_destroy(&m);
	herald_msg_destroy(&other);
}

static void test_submit_sends_every_field_so_the_server_decodes_it(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_ACK_ALL);
	herald_client_t *c = client_for(fs, 1000, 0);
	herald_msg_t *m = herald_msg_new(HERALD_EMAIL);
	herald_msg_set_from(m, "billing@example.com");
	herald_msg_add_to(m, "alice@example.com");
	herald_msg_add_cc(m, "audit@example.com");
	herald_msg_set_cc_reason(m, "audit trail");
	herald_msg_set_subject(m, "Invoice 7");
	herald_msg_set_body(m, "Dear Alice");
	herald_msg_set_html(m, "<p>Dear Alice</p>");
	herald_msg_add_attachment(m, "inv.pdf", "application/pdf", "%PDF\0x", 6);
	herald_msg_set_flag(m, HERALD_FLAG_MAJOR);
	herald_msg_set_flag(m, HERALD_FLAG_NEEDS_REPLY);
	herald_msg_set_reply_by(m, 1796144400);
	herald_msg_set_bulk(m, "newsletter", "customers", 5000, "monthly news");
	herald_msg_set_idempotency_key(m, "invoice-7");
	herald_msg_add_tag(m, "tenant", "acme");

	herald_result_t res;
	int status = herald_submit(c, m, &res);
	herald_client_destroy(&c);
	fs_join(fs);
	assert_string_equal(fs->last_decode_error, "");
	assert_int_equal(status, HERALD_OK);
	assert_string_equal(res.idempotency_key, "invoice-7");

	assert_int_equal(fs->nreq, 1);
	assert_string_equal(fs->reqs[0].app, "billing");
	assert_int_equal(fs->reqs[0].op, HD_OP_SUBMIT);
	const hd_msg_t *w = fs->first_msg;
	assert_non_null(w);
	assert_int_equal(w->channel, HD_CHANNEL_EMAIL);
	assert_string_equal(w->sender, "billing@example.com");
	assert_int_equal(w->to_count, 1);
	assert_string_equal(w->to[0], "alice@example.com");
	assert_int_equal(w->cc_count, 1);
	assert_string_equal(w->cc[0], "audit@example.com");
	assert_string_equal(w->cc_reason, "audit trail");
	assert_string_equal(w->subject, "Invoice 7");
	assert_string_equal(w->body, "Dear Alice");
	assert_string_equal(w->html, "<p>Dear Alice</p>");
	assert_int_equal(w->attachment_count, 1);
	assert_string_equal(w->attachments[0].name, "inv.pdf");
	assert_string_equal(w->attachments[0].mime_type, "application/pdf");
	assert_int_equal(w->attachments[0].size, 6);
	assert_memory_equal(w->attachments[0].data, "%PDF\0x", 6);
	assert_int_equal(w->flags, HD_FLAG_MAJOR | HD_FLAG_NEEDS_REPLY);
	assert_int_equal(w->purpose, HD_PURPOSE_NONE);
	assert_int_equal(w->reply_by, 1796144400);
	assert_non_null(w->bulk);
	assert_string_equal(w->bulk->purpose, "newsletter");
	assert_string_equal(w->bulk->audience, "customers");
	assert_int_equal(w->bulk->recipient_count, 5000);
	assert_string_equal(w->bulk->summary, "monthly news");
	assert_string_equal(w->idempotency_key, "invoice-7");
	assert_int_equal(w->tag_count, 1);
	assert_string_equal(w->tags[0].key, "tenant");
	assert_string_equal(w->tags[0].value, "acme");
	fs_stop(&fs);
	herald_msg_destroy(&m);
}

static void test_submit_sends_an_sms_with_its_purpose(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_ACK_ALL);
	herald_client_t *c = client_for(fs, 1000, 0);
	herald_msg_t *m = herald_msg_new(HERALD_SMS);
	herald_msg_set_from(m, "alerts@example.com");
	herald_msg_add_to(m, "+4915112345678");
	herald_msg_set_body(m, "Your code is 1234");
	assert_int_equal(herald_msg_set_purpose(m, HERALD_PURPOSE_URGENT), HERALD_OK);
	herald_result_t res;
	int status = herald_submit(c, m, &res);
	herald_client_destroy(&c);
	fs_join(fs);
	assert_string_equal(fs->last_decode_error, "");
	assert_int_equal(status, HERALD_OK);
	assert_non_null(fs->first_msg);
	assert_int_equal(fs->first_msg->channel, HD_CHANNEL_SMS);
	assert_int_equal(fs->first_msg->purpose, HD_PURPOSE_URGENT);
	assert_string_equal(fs->first_msg->to[0], "+4915112345678");
	fs_stop(&fs);
	herald_msg_destroy(&m);
}

static void test_submit_without_sender_is_local_misuse_and_sends_nothing(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_ACK_ALL);
	herald_client_t *c = client_for(fs, 200, 0);
	herald_msg_t *m = herald_msg_new(HERALD_EMAIL);
	herald_msg_add_to(m, "alice@example.com");
	herald_result_t res;
	assert_int_equal(herald_submit(c, m, &res), HERALD_E_INVAL);
	assert_int_equal(res.status, HERALD_E_INVAL);
	assert_string_equal(res.field, "msg.from");
	assert_int_equal(res.attempts, 0);
	assert_int_equal(herald_client_outstanding(c), 0);
	assert_int_equal(herald_submit(NULL, m, &res), HERALD_E_INVAL);
	assert_int_equal(herald_submit(c, NULL, &res), HERALD_E_INVAL);
	assert_int_equal(herald_submit(c, m, NULL), HERALD_E_INVAL);
	herald_client_destroy(&c);
	fs_join(fs);
	assert_int_equal(fs->nreq, 0);
	fs_stop(&fs);
	herald_msg_destroy(&m);
}

static void test_submit_reports_a_non_retryable_error_as_rejected_without_resending(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_REJECT);
	herald_client_t *c = client_for(fs, 300, 3);
	herald_msg_t *m = simple_email(1);
	herald_result_t res;
	assert_int_equal(herald_submit(c, m, &res), HERALD_E_REJECTED);
	assert_int_equal(res.status, HERALD_E_REJECTED);
	assert_string_equal(res.code, "invalid");
	assert_string_equal(res.field, "msg.to[0]");
	assert_string_equal(res.reason, "not an RFC 5321 mailbox");
	assert_int_equal(res.retryable, 0);
	assert_int_equal(res.attempts, 1);
	herald_client_destroy(&c);
	fs_join(fs);
	assert_int_equal(fs->nreq, 1);
	fs_stop(&fs);
	herald_msg_destroy(&m);
}

static void test_submit_resends_with_the_same_key_then_gives_up_unavailable(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_SILENT);
	herald_client_t *c = client_for(fs, 100, 2);
	herald_msg_t *m = simple_email(1);
	herald_result_t res;
	int64_t t0 = hd_time_mono_ms();
	assert_int_equal(herald_submit(c, m, &res), HERALD_E_UNAVAILABLE);
	int64_t elapsed = hd_time_mono_ms() - t0;
	assert_string_equal(res.code, "timeout");
	assert_int_equal(res.retryable, 1);
	assert_int_equal(res.attempts, 3);
	/* 3 attempts of 100 ms plus two short backoffs. */
	assert_true(elapsed >= 300);
	assert_true(elapsed < 1000);
	herald_client_destroy(&c);
	fs_join(fs);

	assert_int_equal(fs->nreq, 3);
	assert_true(is_hex32(fs->reqs[0].key));
	assert_string_equal(fs->reqs[1].key, fs->reqs[0].key);
	assert_string_equal(fs->reqs[2].key, fs->reqs[0].key);
	assert_string_equal(res.idempotency_key, fs->reqs[0].key);
	assert_true(fs->reqs[0].rid != fs->reqs[1].rid);
	assert_true(fs->reqs[1].rid != fs->reqs[2].rid);
	fs_stop(&fs);
	herald_msg_destroy(&m);
}

static void test_submit_retries_after_a_retryable_error_and_returns_the_ack(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_BUSY_THEN_ACK);
	herald_client_t *c = client_for(fs, 500, 3);
	herald_msg_t *m = simple_email(1);
	herald_result_t res;
	assert_int_equal(herald_submit(c, m, &res), HERALD_OK);
	assert_int_equal(res.id, 43);
	assert_int_equal(res.duplicate, 1);
	assert_int_equal(res.attempts, 2);
	herald_client_destroy(&c);
	fs_join(fs);
	assert_int_equal(fs->nreq, 2);
	assert_string_equal(fs->reqs[1].key, fs->reqs[0].key);
	fs_stop(&fs);
	herald_msg_destroy(&m);
}

static void test_submit_gives_up_when_every_attempt_is_busy(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_ALWAYS_BUSY);
	herald_client_t *c = client_for(fs, 500, 2);
	herald_msg_t *m = simple_email(1);
	herald_result_t res;
	int64_t t0 = hd_time_mono_ms();
	assert_int_equal(herald_submit(c, m, &res), HERALD_E_UNAVAILABLE);
	int64_t elapsed = hd_time_mono_ms() - t0;
	assert_string_equal(res.code, "busy");
	assert_true(strstr(res.reason, "queue full") != NULL);
	assert_int_equal(res.attempts, 3);
	/* The server's retry_after_ms (30) beats the 10..20 ms backoff. */
	assert_true(elapsed >= 60);
	herald_client_destroy(&c);
	fs_join(fs);
	assert_int_equal(fs->nreq, 3);
	fs_stop(&fs);
	herald_msg_destroy(&m);
}

static void test_submit_accepts_an_ack_to_an_earlier_attempt(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_OLD_ATTEMPT);
	herald_client_t *c = client_for(fs, 100, 2);
	herald_msg_t *m = simple_email(1);
	herald_result_t res;
	assert_int_equal(herald_submit(c, m, &res), HERALD_OK);
	assert_int_equal(res.id, 7);
	assert_int_equal(res.attempts, 2);
	herald_client_destroy(&c);
	fs_stop(&fs);
	herald_msg_destroy(&m);
}

static void test_submit_waits_for_a_server_that_starts_late(void **state)
{
	(void)state;
	/* Learn a free port, release it, and start the server there later. */
	fake_server_t *probe = fs_start(FS_SILENT);
	int port = fs_port(probe);
	char endpoint[64];
	snprintf(endpoint, sizeof(endpoint), "%s", probe->endpoint);
	fs_stop(&probe);

	herald_client_t *c = herald_client_new(endpoint, "billing", NULL, 0);
	assert_non_null(c);
	herald_client_set_timeout_ms(c, 200);
	herald_client_set_retries(c, 5);
	herald_client_set_backoff_ms(c, 10, 20);
	/* Nothing listens: a ping gets no answer. */
	assert_int_equal(herald_client_ping(c, 100), HERALD_E_UNAVAILABLE);

	herald_msg_t *m = simple_email(1);
	assert_int_equal(herald_submit_async(c, &m, NULL), HERALD_OK);
	assert_null(m);
	assert_int_equal(herald_client_outstanding(c), 1);
	/* The request waits (unsent) while heraldd is down ... */
	assert_int_equal(herald_client_flush(c, 150), HERALD_E_TIMEOUT);
	assert_int_equal(herald_client_outstanding(c), 1);
	/* ... and goes out once it is back. */
	fake_server_t *fs = fs_start_on(FS_ACK_ALL, port);
	assert_int_equal(herald_client_flush(c, 1500), HERALD_OK);
	assert_int_equal(herald_client_outstanding(c), 0);
	herald_client_destroy(&c);
	fs_join(fs);
	assert_true(fs->nreq >= 1);
	fs_stop(&fs);
}

static void test_ping_gets_a_pong(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_PONG);
	herald_client_t *c = client_for(fs, 1000, 0);
	assert_int_equal(herald_client_ping(c, 1000), HERALD_OK);
	assert_int_equal(herald_client_ping(c, 0), HERALD_E_INVAL);
	herald_client_destroy(&c);
	fs_join(fs);
	assert_int_equal(fs->nreq, 1);
	assert_int_equal(fs->reqs[0].op, HD_OP_PING);
	fs_stop(&fs);
}

/* ---- pipelined submit ------------------------------------------------ */

#define PIPE_N 20

typedef struct pipe_seen {
	int calls[PIPE_N];
	int total;
	int wrong_id;
	int not_ok;
	int last_status;
	int64_t last_id;
} pipe_seen_t;

static void pipe_cb(const herald_result_t *res, void *arg)
{
	pipe_seen_t *seen = arg;
	seen->total++;
	seen->last_status = res->status;
	seen->last_id = res->id;
	if (res->status != HERALD_OK) {
		seen->not_ok++;
		return;
	}
	const int *n = res->user;
	if (!n || *n < 0 || *n >= PIPE_N)
		return;
	seen->calls[*n]++;
	if (res->id != 1000 + *n)
		seen->wrong_id++;
}

static void test_pipelined_submit_never_exceeds_the_window_and_matches_replies(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_WINDOW);
	fs->window = 100; /* the server answers only when the client goes quiet */
	herald_client_t *c = client_for(fs, 1000, 0);
	assert_int_equal(herald_client_set_window(c, 4), HERALD_OK);
	pipe_seen_t seen;
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(herald_client_set_callback(c, pipe_cb, &seen), HERALD_OK);

	int nums[PIPE_N];
	for (int i = 0; i < PIPE_N; i++) {
		nums[i] = i;
		herald_msg_t *m = simple_email(i);
		assert_int_equal(herald_submit_async(c, &m, &nums[i]), HERALD_OK);
		assert_null(m);
		assert_true(herald_client_outstanding(c) <= 4);
	}
	assert_int_equal(herald_client_set_window(c, 8), HERALD_E_INVAL); /* busy */
	assert_int_equal(herald_client_flush(c, 1500), HERALD_OK);
	herald_client_destroy(&c);
	fs_join(fs);

	assert_int_equal(fs->nreq, PIPE_N);
	assert_int_equal(fs->max_pending, 4); /* pipelined up to, never past, the window */
	assert_int_equal(seen.total, PIPE_N);
	assert_int_equal(seen.wrong_id, 0);
	assert_int_equal(seen.not_ok, 0);
	for (int i = 0; i < PIPE_N; i++)
		assert_int_equal(seen.calls[i], 1);
	fs_stop(&fs);
}

static void test_pipelined_results_ignore_a_late_reply_to_an_abandoned_request(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_LATE);
	herald_client_t *c = client_for(fs, 100, 0);
	pipe_seen_t seen;
	memset(&seen, 0, sizeof(seen));
	herald_client_set_callback(c, pipe_cb, &seen);

	int first = 0, second = 1;
	herald_msg_t *m = simple_email(0);
	assert_int_equal(herald_submit_async(c, &m, &first), HERALD_OK);
	assert_int_equal(herald_client_flush(c, 1000), HERALD_OK);
	assert_int_equal(seen.total, 1);
	assert_int_equal(seen.last_status, HERALD_E_UNAVAILABLE);

	/* The server now answers the abandoned rid (id 999) before this one (id 2). */
	m = simple_email(1);
	assert_int_equal(herald_submit_async(c, &m, &second), HERALD_OK);
	assert_int_equal(herald_client_flush(c, 1000), HERALD_OK);
	assert_int_equal(seen.total, 2);
	assert_int_equal(seen.last_status, HERALD_OK);
	assert_int_equal(seen.last_id, 2);
	herald_client_destroy(&c);
	assert_int_equal(seen.total, 2);
	fs_stop(&fs);
}

static void test_destroy_reports_pending_requests_as_unavailable(void **state)
{
	(void)state;
	fake_server_t *fs = fs_start(FS_SILENT);
	herald_client_t *c = client_for(fs, 1000, 3);
	pipe_seen_t seen;
	memset(&seen, 0, sizeof(seen));
	herald_client_set_callback(c, pipe_cb, &seen);
	for (int i = 0; i < 3; i++) {
		herald_msg_t *m = simple_email(i);
		assert_int_equal(herald_submit_async(c, &m, NULL), HERALD_OK);
	}
	assert_int_equal(herald_client_outstanding(c), 3);
	assert_int_equal(herald_client_flush(c, 50), HERALD_E_TIMEOUT);
	herald_client_destroy(&c);
	assert_int_equal(seen.total, 3);
	assert_int_equal(seen.not_ok, 3);
	assert_int_equal(seen.last_status, HERALD_E_UNAVAILABLE);
	fs_stop(&fs);
}

static void test_submit_async_takes_ownership_even_when_it_refuses(void **state)
{
	(void)state;
	char err[128];
	herald_client_t *c = herald_client_new("tcp://127.0.0.1:1", "billing", err, sizeof(err));
	assert_non_null(c);
	herald_msg_t *m = herald_msg_new(HERALD_EMAIL); /* no sender: cannot be encoded */
	assert_int_equal(herald_submit_async(c, &m, NULL), HERALD_E_INVAL);
	assert_null(m);
	assert_int_equal(herald_client_outstanding(c), 0);
	m = simple_email(0);
	assert_int_equal(herald_submit_async(NULL, &m, NULL), HERALD_E_INVAL);
	assert_null(m);
	assert_int_equal(herald_submit_async(c, NULL, NULL), HERALD_E_INVAL);
	herald_client_destroy(&c);
}

static void test_strerror_names_every_status(void **state)
{
	(void)state;
	assert_string_equal(herald_strerror(HERALD_OK), "accepted");
	assert_true(strstr(herald_strerror(HERALD_E_REJECTED), "rejected") != NULL);
	assert_true(strstr(herald_strerror(HERALD_E_UNAVAILABLE), "unavailable") != NULL);
	assert_true(strstr(herald_strerror(HERALD_E_INVAL), "invalid") != NULL);
	assert_true(strstr(herald_strerror(HERALD_E_TIMEOUT), "pending") != NULL);
	assert_string_equal(herald_strerror(12345), "unknown status");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_new_refuses_unknown_channel),
		cmocka_unit_test(test_msg_setters_refuse_null_and_empty),
		cmocka_unit_test(test_msg_setters_refuse_values_over_the_limits),
		cmocka_unit_test(test_msg_setters_refuse_invalid_utf8),
		cmocka_unit_test(test_msg_counts_are_capped),
		cmocka_unit_test(test_msg_refuses_unknown_flags_purposes_and_negative_times),
		cmocka_unit_test(test_client_new_refuses_bad_app_and_endpoint),
		cmocka_unit_test(test_submit_returns_the_ack_with_its_findings),
		cmocka_unit_test(test_submit_generates_one_key_and_keeps_it_for_resubmits),
		cmocka_unit_test(test_submit_sends_every_field_so_the_server_decodes_it),
		cmocka_unit_test(test_submit_sends_an_sms_with_its_purpose),
		cmocka_unit_test(test_submit_without_sender_is_local_misuse_and_sends_nothing),
		cmocka_unit_test(test_submit_reports_a_non_retryable_error_as_rejected_without_resending),
		cmocka_unit_test(test_submit_resends_with_the_same_key_then_gives_up_unavailable),
		cmocka_unit_test(test_submit_retries_after_a_retryable_error_and_returns_the_ack),
		cmocka_unit_test(test_submit_gives_up_when_every_attempt_is_busy),
		cmocka_unit_test(test_submit_accepts_an_ack_to_an_earlier_attempt),
		cmocka_unit_test(test_submit_waits_for_a_server_that_starts_late),
		cmocka_unit_test(test_ping_gets_a_pong),
		cmocka_unit_test(test_pipelined_submit_never_exceeds_the_window_and_matches_replies),
		cmocka_unit_test(test_pipelined_results_ignore_a_late_reply_to_an_abandoned_request),
		cmocka_unit_test(test_destroy_reports_pending_requests_as_unavailable),
		cmocka_unit_test(test_submit_async_takes_ownership_even_when_it_refuses),
		cmocka_unit_test(test_strerror_names_every_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
