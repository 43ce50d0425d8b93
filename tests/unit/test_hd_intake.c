/*
 * NAME
 *	test_hd_intake - one reply per request on a real ROUTER socket
 * DESCRIPTION
 *	The intake is driven over inproc ZeroMQ sockets with a store that
 *	cannot reach its database (the seam): every request gets exactly one
 *	reply of the right kind, REQ and DEALER framing both work, and bad
 *	input is counted as rejected, never passed on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "hd_classify.h"
#include "hd_config.h"
#include "hd_envelope.h"
#include "hd_err.h"
#include "hd_intake.h"
#include "hd_mem.h"
#include "hd_store.h"
#include "hd_time.h"

typedef struct fixture {
	void *ctx;
	hd_config_t *cfg;
	hd_classify_t *classify;
	hd_intake_t *intake;
	hd_store_t *store;
	void *client;
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = hd_calloc(1, sizeof(*f));
	char err[256];
	assert_int_equal(hd_config_load(NULL, &f->cfg, err, sizeof(err)), HD_OK);
	free(f->cfg->listen);
	f->cfg->listen = hd_strdup("inproc://intake-test");
	f->ctx = zmq_ctx_new();
	f->classify = hd_classify_new(50, "[重要]");
	f->intake = hd_intake_new(f->ctx, f->cfg, f->classify, err, sizeof(err));
	assert_non_null(f->intake);
	hd_store_options_t o = {
		.conninfo = "host=127.0.0.1 port=1 dbname=none connect_timeout=1",
		.batch_max = 8, .batch_wait_ms = 1, .max_pending = 4,
		.reconnect_min_ms = 60000, .reconnect_max_ms = 60000, .statement_timeout_ms = 1000,
		.batch_max_bytes = 1 << 20,
	};
	f->store = hd_store_new(&o, hd_intake_on_stored, f->intake);
	hd_intake_attach_store(f->intake, f->store);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	if (f->client)
		zmq_close(f->client);
	hd_store_destroy(&f->store);
	hd_intake_destroy(&f->intake);
	zmq_ctx_term(f->ctx);
	hd_classify_destroy(&f->classify);
	hd_config_destroy(&f->cfg);
	free(f);
	return 0;
}

static void *connect_client(fixture_t *f, int type)
{
	f->client = zmq_socket(f->ctx, type);
	int linger = 0;
	zmq_setsockopt(f->client, ZMQ_LINGER, &linger, sizeof(linger));
	assert_int_equal(zmq_connect(f->client, "inproc://intake-test"), 0);
	return f->client;
}

static void send_request(void *sock, const hd_request_t *req)
{
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_request(req, &buf, &len), HD_OK);
	assert_int_equal(zmq_send(sock, buf, len, 0), (int)len);
	free(buf);
}

/* Let the intake read, then receive exactly one reply. */
static void round_trip(fixture_t *f, hd_reply_t *reply)
{
	hd_intake_on_readable(f->intake, 16);
	zmq_pollitem_t it = {f->client, 0, ZMQ_POLLIN, 0};
	assert_int_equal(zmq_poll(&it, 1, 2000), 1);
	zmq_msg_t m;
	zmq_msg_init(&m);
	assert_true(zmq_msg_recv(&m, f->client, 0) >= 0);
	hd_decode_error_t derr;
	memset(reply, 0, sizeof(*reply));
	assert_int_equal(hd_envelope_decode_reply(zmq_msg_data(&m), zmq_msg_size(&m), reply, &derr), HD_OK);
	zmq_msg_close(&m);
	assert_int_equal(zmq_poll(&it, 1, 0), 0); /* exactly one reply */
}

static hd_msg_t *valid_msg(void)
{
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = hd_strdup("alice@example.com");
	m->to = hd_calloc(1, sizeof(char *));
	m->to[0] = hd_strdup("bob@example.com");
	m->to_count = 1;
	m->subject = hd_strdup("Hello");
	m->body = hd_strdup("Body");
	return m;
}

static void test_submit_while_database_down_gets_retryable_unavailable(void **state)
{
	fixture_t *f = *state;
	void *c = connect_client(f, ZMQ_DEALER);
	hd_request_t req = {.version = 1, .rid = 41, .op = HD_OP_SUBMIT, .app = "t", .msg = valid_msg()};
	send_request(c, &req);
	hd_msg_destroy(&req.msg);
	hd_reply_t reply;
	round_trip(f, &reply);
	assert_false(reply.ok);
	assert_int_equal(reply.rid, 41);
	assert_int_equal(reply.code, HD_E_UNAVAILABLE);
	assert_true(reply.retryable);
	assert_true(reply.retry_after_ms > 0);
	hd_reply_clear(&reply);
	assert_int_equal(hd_intake_stats(f->intake).unavailable, 1);
}

static void test_ping_reports_unavailable_until_the_database_is_reachable(void **state)
{
	fixture_t *f = *state;
	void *c = connect_client(f, ZMQ_DEALER);
	hd_request_t req = {.version = 1, .rid = 5, .op = HD_OP_PING};
	send_request(c, &req);
	hd_reply_t reply;
	round_trip(f, &reply);
	assert_false(reply.ok);
	assert_int_equal(reply.code, HD_E_UNAVAILABLE);
	hd_reply_clear(&reply);
}

static void test_garbage_gets_malformed_and_is_counted_as_rejected(void **state)
{
	fixture_t *f = *state;
	void *c = connect_client(f, ZMQ_DEALER);
	assert_int_equal(zmq_send(c, "\xc1\x00\x01", 3, 0), 3);
	hd_reply_t reply;
	round_trip(f, &reply);
	assert_false(reply.ok);
	assert_int_equal(reply.code, HD_E_MALFORMED);
	assert_false(reply.retryable);
	hd_reply_clear(&reply);
	hd_intake_stats_t s = hd_intake_stats(f->intake);
	assert_int_equal(s.rejected, 1);
	assert_int_equal(s.received, 1);
}

static void test_multipart_request_is_malformed(void **state)
{
	fixture_t *f = *state;
	void *c = connect_client(f, ZMQ_DEALER);
	zmq_send(c, "a", 1, ZMQ_SNDMORE);
	zmq_send(c, "b", 1, 0);
	hd_reply_t reply;
	round_trip(f, &reply);
	assert_int_equal(reply.code, HD_E_MALFORMED);
	assert_non_null(strstr(reply.reason, "one frame"));
	hd_reply_clear(&reply);
}

static void test_req_socket_framing_is_answered_with_its_delimiter(void **state)
{
	fixture_t *f = *state;
	void *c = connect_client(f, ZMQ_REQ);
	assert_int_equal(zmq_send(c, "\x93", 1, 0), 1); /* truncated array */
	hd_reply_t reply; /* a REQ socket only delivers the reply if framed right */
	round_trip(f, &reply);
	assert_int_equal(reply.code, HD_E_MALFORMED);
	hd_reply_clear(&reply);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_submit_while_database_down_gets_retryable_unavailable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_reports_unavailable_until_the_database_is_reachable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_gets_malformed_and_is_counted_as_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multipart_request_is_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_req_socket_framing_is_answered_with_its_delimiter, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
