/*
 * NAME
 *	test_hd_wire - the broker <-> worker codec, as heraldd and a worker see it
 * DESCRIPTION
 *	Frames are written in a small msgpack notation (tf_mp() of
 *	hd_test_frames, shared with test_hd_envelope) and packed with
 *	msgpack-c, independently of the encoder under test. Covered: round
 *	trips of every frame type, the documented bytes of HB and BYE, the
 *	JOB's msg encoded byte for byte as a producer's, every error class
 *	(malformed, version, unknown_field, wrong_type, missing, too_big,
 *	invalid) with its field, truncation at every offset, counts larger
 *	than the frame, limits at the limit and one past it, the frame type
 *	deciding its keys, the JOB's recipient belonging to its message,
 *	what the encoder refuses or cleans, and hd_wire_peek_job on
 *	undecodable jobs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_envelope.h"
#include "hd_err.h"
#include "hd_limits.h"
#include "hd_test_frames.h"
#include "hd_wire.h"

/* ---- frames used throughout ---------------------------------------------- */

#define VT(t) "'v':1,'t':'" t "'"
#define READY VT("ready") ",'name':'w-1','channels':['email','sms'],'credit':64,'heartbeat_ms':1000"
#define EMAIL "'channel':'email','from':'a@example.com','to':['x@example.org','y@example.org'],'cc':['c@example.org'],'cc_reason':'r'"
#define JOB_IDS "'delivery_id':17,'message_id':9,'attempt':2,'lease_ms':60000"
#define JOB VT("job") "," JOB_IDS ",'recipient':'y@example.org','kind':'to','class':'general','msg':{" EMAIL "}"
#define RESULT VT("result") ",'delivery_id':17,'attempt':2,'outcome':'delivered','provider':'smtp','code':'250','detail':'2.0.0 Ok'"

static void expect_error_buf(int code, const char *field, const uint8_t *buf, size_t len,
			     const char *what)
{
	hd_wire_frame_t f;
	hd_decode_error_t err;
	int rc = hd_wire_decode(buf, len, &f, &err);
	if (rc != code || strcmp(err.field, field) != 0)
		fail_msg("%s: got %s field=\"%s\" reason=\"%s\", want %s field=\"%s\"", what,
			 hd_err_name(rc), err.field, err.reason, hd_err_name(code), field);
	assert_int_equal(err.code, code);
	assert_true(strlen(err.reason) > 0);
	/* Nothing is handed out on failure. */
	assert_int_equal(f.type, 0);
	assert_null(f.u.job.msg);
	assert_null(f.u.job.recipient);
}

#define EXPECT_ERR(code, field, ...)                                              \
	do {                                                                      \
		size_t len_;                                                      \
		uint8_t *buf_ = tf_mp(&len_, __VA_ARGS__);                        \
		expect_error_buf((code), (field), buf_, len_, #__VA_ARGS__);      \
		free(buf_);                                                       \
	} while (0)

static void expect_ok_buf(const uint8_t *buf, size_t len, hd_wire_frame_t *f, const char *what)
{
	hd_decode_error_t err;
	int rc = hd_wire_decode(buf, len, f, &err);
	if (rc != HD_OK)
		fail_msg("%s: got %s field=\"%s\" reason=\"%s\"", what, hd_err_name(rc), err.field,
			 err.reason);
}

#define EXPECT_OK(type_, ...)                                                     \
	do {                                                                      \
		size_t len_;                                                      \
		hd_wire_frame_t f_;                                               \
		uint8_t *buf_ = tf_mp(&len_, __VA_ARGS__);                        \
		expect_ok_buf(buf_, len_, &f_, #__VA_ARGS__);                     \
		assert_int_equal(f_.type, (type_));                               \
		hd_wire_frame_clear(&f_);                                         \
		free(buf_);                                                       \
	} while (0)

/* A message using every field, as a producer would build it. */
static hd_msg_t *full_msg(void)
{
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = strdup("finance@corp.example");
	hd_msg_add_to(m, "alice@corp.example");
	hd_msg_add_to(m, "\"bob smith\"@corp.example");
	hd_msg_add_cc(m, "carol@[10.0.0.1]");
	m->cc_reason = strdup("Carol approves invoices");
	m->subject = strdup("[\xe9\x87\x8d\xe8\xa6\x81] Invoice 2024-07");
	m->body = strdup("Please approve the attached invoice by Friday.\n");
	m->html = strdup("<p>Please approve</p>");
	static const uint8_t pdf[] = {'%', 'P', 'D', 'F', 0, 1, 2, 0xff};
	hd_msg_add_attachment(m, "invoice 07.pdf", "application/pdf", pdf, sizeof pdf);
	m->flags = HD_FLAG_IMPORTANT | HD_FLAG_NEEDS_REPLY;
	m->reply_by = 1767225600;
	hd_msg_set_bulk(m, "quarterly statement", "all customers", 1200, "the Q2 statement");
	m->idempotency_key = strdup("k-0001");
	hd_msg_add_tag(m, "batch", "2024-07");
	return m;
}

#define HD_TEST_64_CHARS "1234567890123456789012345678901234567890123456789012345678901234"

/* A JOB frame owning its strings (clear it with hd_wire_frame_clear). */
static hd_wire_frame_t full_job(void)
{
	hd_wire_frame_t f = {.type = HD_WIRE_JOB};
	f.u.job.delivery_id = INT64_MAX;
	f.u.job.message_id = 4242;
	f.u.job.attempt = 3;
	f.u.job.lease_ms = 60000;
	f.u.job.recipient = strdup("carol@[10.0.0.1]");
	f.u.job.kind = strdup("cc");
	f.u.job.klass = HD_CLASS_IMPORTANT;
	f.u.job.msg = full_msg();
	return f;
}

static hd_wire_frame_t a_result(void)
{
	hd_wire_frame_t f = {.type = HD_WIRE_RESULT};
	f.u.result.delivery_id = 17;
	f.u.result.attempt = 2;
	f.u.result.outcome = HD_OUTCOME_RETRY;
	f.u.result.retry_after_ms = 30000;
	strcpy(f.u.result.provider, "smtp");
	strcpy(f.u.result.provider_code, "451");
	strcpy(f.u.result.detail, "4.7.1 Try again later");
	strcpy(f.u.result.provider_id, "queue-id 7F3A2");
	return f;
}

static void encode_ok(const hd_wire_frame_t *f, uint8_t **buf, size_t *len)
{
	assert_int_equal(hd_wire_encode(f, buf, len), HD_OK);
}

/* Encode, decode, re-encode: the second encoding must be the same bytes. */
static void round_trip(const hd_wire_frame_t *in, hd_wire_frame_t *out)
{
	uint8_t *buf, *buf2;
	size_t len, len2;
	encode_ok(in, &buf, &len);
	expect_ok_buf(buf, len, out, hd_wire_type_name(in->type));
	assert_int_equal(out->type, in->type);
	encode_ok(out, &buf2, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(buf2, buf, len);
	free(buf);
	free(buf2);
}

/* ---- round trips --------------------------------------------------------- */

static void test_a_ready_frame_survives_encode_then_decode(void **state)
{
	(void)state;
	hd_wire_frame_t in = {.type = HD_WIRE_READY}, out;
	strcpy(in.u.ready.name, "mail-01.corp_example-4711");
	in.u.ready.channels = 1u << HD_CHANNEL_EMAIL | 1u << HD_CHANNEL_SMS;
	in.u.ready.credit = HD_WIRE_MAX_CREDIT;
	in.u.ready.heartbeat_ms = HD_WIRE_MIN_HEARTBEAT_MS;
	round_trip(&in, &out);
	assert_string_equal(out.u.ready.name, in.u.ready.name);
	assert_int_equal(out.u.ready.channels, in.u.ready.channels);
	assert_int_equal(out.u.ready.credit, HD_WIRE_MAX_CREDIT);
	assert_int_equal(out.u.ready.heartbeat_ms, HD_WIRE_MIN_HEARTBEAT_MS);
	hd_wire_frame_clear(&out);
}

static void test_a_job_frame_survives_encode_then_decode_with_its_whole_message(void **state)
{
	(void)state;
	hd_wire_frame_t in = full_job(), out;
	round_trip(&in, &out);
	assert_true(out.u.job.delivery_id == INT64_MAX);
	assert_int_equal(out.u.job.message_id, 4242);
	assert_int_equal(out.u.job.attempt, 3);
	assert_int_equal(out.u.job.lease_ms, 60000);
	assert_string_equal(out.u.job.recipient, "carol@[10.0.0.1]");
	assert_string_equal(out.u.job.kind, "cc");
	assert_int_equal(out.u.job.klass, HD_CLASS_IMPORTANT);
	tf_assert_msg_equal(in.u.job.msg, out.u.job.msg);
	hd_wire_frame_clear(&in);
	hd_wire_frame_clear(&out);
	assert_null(out.u.job.msg);
	hd_wire_frame_clear(NULL);
}

static void test_a_job_endpoint_is_optional_survives_round_trip_and_must_be_a_plain_name(void **state)
{
	(void)state;
	hd_wire_frame_t in = full_job(), out;
	round_trip(&in, &out);
	assert_null(out.u.job.endpoint); /* absent: the worker looks the recipient up */
	hd_wire_frame_clear(&out);

	in.u.job.endpoint = strdup("sales-hook.cn_1");
	round_trip(&in, &out);
	assert_string_equal(out.u.job.endpoint, "sales-hook.cn_1");
	hd_wire_frame_clear(&out);

	uint8_t *buf = NULL;
	size_t len = 0;
	const char *bad[] = {"", "-hook", "sales hook", "hook/1", "x" HD_TEST_64_CHARS /* 65 bytes */};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		free(in.u.job.endpoint);
		in.u.job.endpoint = strdup(bad[i]);
		assert_int_equal(hd_wire_encode(&in, &buf, &len), HD_E_INVALID);
		assert_null(buf);
	}
	hd_wire_frame_clear(&in);
}

static void test_a_result_frame_survives_encode_then_decode_with_and_without_options(void **state)
{
	(void)state;
	hd_wire_frame_t in = a_result(), out;
	round_trip(&in, &out);
	assert_int_equal(out.u.result.delivery_id, 17);
	assert_int_equal(out.u.result.attempt, 2);
	assert_int_equal(out.u.result.outcome, HD_OUTCOME_RETRY);
	assert_int_equal(out.u.result.retry_after_ms, 30000);
	assert_string_equal(out.u.result.provider, "smtp");
	assert_string_equal(out.u.result.provider_code, "451");
	assert_string_equal(out.u.result.detail, "4.7.1 Try again later");
	assert_string_equal(out.u.result.provider_id, "queue-id 7F3A2");

	/* Delivered without provider id, empty code and detail: optional keys are left out. */
	in.u.result.outcome = HD_OUTCOME_DELIVERED;
	in.u.result.provider_id[0] = '\0';
	in.u.result.provider_code[0] = '\0';
	in.u.result.detail[0] = '\0';
	uint8_t *buf;
	size_t len;
	encode_ok(&in, &buf, &len);
	assert_null(tf_find_bytes(buf, len, "retry_after_ms", 14));
	assert_null(tf_find_bytes(buf, len, "provider_id", 11));
	expect_ok_buf(buf, len, &out, "delivered");
	assert_int_equal(out.u.result.outcome, HD_OUTCOME_DELIVERED);
	assert_int_equal(out.u.result.retry_after_ms, 0);
	assert_string_equal(out.u.result.provider_id, "");
	assert_string_equal(out.u.result.detail, "");
	free(buf);

	in.u.result.outcome = HD_OUTCOME_FAILED;
	round_trip(&in, &out);
	assert_int_equal(out.u.result.outcome, HD_OUTCOME_FAILED);
}

static void test_heartbeat_and_bye_encode_to_the_documented_bytes(void **state)
{
	(void)state;
	/* {"v":1,"t":"hb"} and {"v":1,"t":"bye"}, as in docs/PROTOCOL.md section 2 */
	static const uint8_t hb[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 't', 0xa2, 'h', 'b'};
	static const uint8_t bye[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 't', 0xa3, 'b', 'y', 'e'};
	hd_wire_frame_t f = {.type = HD_WIRE_HEARTBEAT};
	uint8_t *buf;
	size_t len;
	encode_ok(&f, &buf, &len);
	assert_int_equal(len, sizeof hb);
	assert_memory_equal(buf, hb, len);
	free(buf);
	f.type = HD_WIRE_BYE;
	encode_ok(&f, &buf, &len);
	assert_int_equal(len, sizeof bye);
	assert_memory_equal(buf, bye, len);
	free(buf);
	EXPECT_OK(HD_WIRE_HEARTBEAT, "{'t':'hb','v':1}");
	EXPECT_OK(HD_WIRE_BYE, "{'v':1,'t':'bye'}");
}

static void test_a_ready_frame_encodes_to_the_documented_bytes(void **state)
{
	(void)state;
	hd_wire_frame_t f = {.type = HD_WIRE_READY};
	strcpy(f.u.ready.name, "w1");
	f.u.ready.channels = 1u << HD_CHANNEL_EMAIL;
	f.u.ready.credit = 64;
	f.u.ready.heartbeat_ms = 1000;
	uint8_t *buf;
	size_t len;
	encode_ok(&f, &buf, &len);
	size_t elen;
	uint8_t *expect = tf_mp(&elen, "{" VT("ready") ",'name':'w1','channels':['email'],"
			     "'credit':64,'heartbeat_ms':1000}");
	assert_int_equal(len, elen);
	assert_memory_equal(buf, expect, len);
	assert_int_equal(len, 60);
	free(buf);
	free(expect);
}

/* Hex (spaces and newlines ignored) to bytes; caller frees. */
static uint8_t *unhex(const char *hex, size_t *len)
{
	uint8_t *out = malloc(strlen(hex) / 2 + 1);
	size_t n = 0;
	for (const char *p = hex; *p;) {
		if (*p == ' ' || *p == '\n') {
			p++;
			continue;
		}
		out[n++] = (uint8_t)(tf_hexval(p[0]) << 4 | tf_hexval(p[1]));
		p += 2;
	}
	*len = n;
	return out;
}

static void test_the_documented_job_and_result_encode_to_their_bytes(void **state)
{
	(void)state;
	/* docs/PROTOCOL.md section 2.9 */
	static const char job_hex[] =
		"8a a1 76 01 a1 74 a3 6a 6f 62 ab 64 65 6c 69 76 65 72 79 5f 69 64 11 aa 6d 65 73 73 61 67 65 5f\n"
		"69 64 09 a7 61 74 74 65 6d 70 74 01 a8 6c 65 61 73 65 5f 6d 73 cd ea 60 a9 72 65 63 69 70 69 65\n"
		"6e 74 b2 61 6c 69 63 65 40 63 6f 72 70 2e 65 78 61 6d 70 6c 65 a4 6b 69 6e 64 a2 74 6f a5 63 6c\n"
		"61 73 73 a7 67 65 6e 65 72 61 6c a3 6d 73 67 86 a7 63 68 61 6e 6e 65 6c a5 65 6d 61 69 6c a4 66\n"
		"72 6f 6d b4 66 69 6e 61 6e 63 65 40 63 6f 72 70 2e 65 78 61 6d 70 6c 65 a2 74 6f 91 b2 61 6c 69\n"
		"63 65 40 63 6f 72 70 2e 65 78 61 6d 70 6c 65 a7 73 75 62 6a 65 63 74 a9 49 6e 76 6f 69 63 65 20\n"
		"37 a4 62 6f 64 79 a5 48 65 6c 6c 6f af 69 64 65 6d 70 6f 74 65 6e 63 79 5f 6b 65 79 a5 69 6e 76\n"
		"2d 37";
	static const char result_hex[] =
		"88 a1 76 01 a1 74 a6 72 65 73 75 6c 74 ab 64 65 6c 69 76 65 72 79 5f 69 64 11 a7 61 74 74 65 6d\n"
		"70 74 01 a7 6f 75 74 63 6f 6d 65 a9 64 65 6c 69 76 65 72 65 64 a8 70 72 6f 76 69 64 65 72 a4 73\n"
		"6d 74 70 a4 63 6f 64 65 a3 32 35 30 a6 64 65 74 61 69 6c b8 32 2e 30 2e 30 20 4f 6b 3a 20 71 75\n"
		"65 75 65 64 20 61 73 20 34 58 6b 51";
	hd_wire_frame_t job = {.type = HD_WIRE_JOB};
	job.u.job.delivery_id = 17;
	job.u.job.message_id = 9;
	job.u.job.attempt = 1;
	job.u.job.lease_ms = 60000;
	job.u.job.recipient = strdup("alice@corp.example");
	job.u.job.kind = strdup("to");
	job.u.job.klass = HD_CLASS_GENERAL;
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = strdup("finance@corp.example");
	hd_msg_add_to(m, "alice@corp.example");
	m->subject = strdup("Invoice 7");
	m->body = strdup("Hello");
	m->idempotency_key = strdup("inv-7");
	job.u.job.msg = m;
	size_t elen, len;
	uint8_t *expect = unhex(job_hex, &elen), *buf;
	encode_ok(&job, &buf, &len);
	assert_int_equal(len, 226);
	assert_int_equal(elen, 226);
	assert_memory_equal(buf, expect, len);
	free(buf);
	free(expect);
	hd_wire_frame_clear(&job);

	hd_wire_frame_t res = {.type = HD_WIRE_RESULT};
	res.u.result.delivery_id = 17;
	res.u.result.attempt = 1;
	res.u.result.outcome = HD_OUTCOME_DELIVERED;
	strcpy(res.u.result.provider, "smtp");
	strcpy(res.u.result.provider_code, "250");
	strcpy(res.u.result.detail, "2.0.0 Ok: queued as 4XkQ");
	expect = unhex(result_hex, &elen);
	encode_ok(&res, &buf, &len);
	assert_int_equal(len, 108);
	assert_int_equal(elen, 108);
	assert_memory_equal(buf, expect, len);
	free(buf);
	free(expect);
}

static int packer_sink(void *data, const char *p, size_t n)
{
	msgpack_sbuffer_write(data, p, n);
	return 0;
}

static void test_the_job_msg_is_encoded_byte_for_byte_as_a_producer_msg(void **state)
{
	(void)state;
	hd_request_t req = {.rid = 1, .op = HD_OP_SUBMIT, .app = strdup("billing")};
	req.msg = full_msg();
	uint8_t *rbuf;
	size_t rlen;
	assert_int_equal(hd_envelope_encode_request(&req, &rbuf, &rlen), HD_OK);

	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, packer_sink);
	assert_int_equal(hd_envelope_encode_msg(&pk, req.msg), HD_OK);
	/* The request ends with its "msg" value. */
	assert_true(sb.size < rlen);
	assert_memory_equal(rbuf + rlen - sb.size, sb.data, sb.size);

	hd_wire_frame_t job = full_job();
	uint8_t *jbuf;
	size_t jlen;
	encode_ok(&job, &jbuf, &jlen);
	assert_memory_equal(jbuf + jlen - sb.size, sb.data, sb.size);

	/* And what the encoder cannot represent writes nothing. */
	size_t before = sb.size;
	char *sender = req.msg->sender;
	req.msg->sender = NULL;
	assert_int_equal(hd_envelope_encode_msg(&pk, req.msg), HD_E_INVALID);
	assert_int_equal(sb.size, before);
	req.msg->sender = sender;

	/* decode_msg reads exactly one map and leaves the cursor after it. */
	hd_mpack_reader_t r;
	hd_mpack_reader_init(&r, sb.data, sb.size);
	hd_msg_t *m = NULL;
	hd_decode_error_t err;
	assert_int_equal(hd_envelope_decode_msg(&r, NULL, 0, &m, &err), HD_OK);
	assert_int_equal(hd_mpack_remaining(&r), 0);
	tf_assert_msg_equal(req.msg, m);
	hd_msg_destroy(&m);
	/* A recipient limit applies as for requests; the reader does not move on failure. */
	hd_mpack_reader_init(&r, sb.data, sb.size);
	assert_int_equal(hd_envelope_decode_msg(&r, NULL, 2, &m, &err), HD_E_TOOBIG);
	assert_string_equal(err.field, "msg.cc");
	assert_null(m);
	assert_int_equal(hd_mpack_remaining(&r), sb.size);

	msgpack_sbuffer_destroy(&sb);
	free(rbuf);
	free(jbuf);
	hd_request_clear(&req);
	hd_wire_frame_clear(&job);
}

static void test_encode_refuses_frames_the_decoder_would_refuse(void **state)
{
	(void)state;
	uint8_t *buf = NULL;
	size_t len = 0;
	hd_wire_frame_t r = {.type = HD_WIRE_READY};
	strcpy(r.u.ready.name, "w1");
	r.u.ready.channels = 1;
	r.u.ready.credit = 1;
	r.u.ready.heartbeat_ms = 1000;
	encode_ok(&r, &buf, &len);
	free(buf);
	buf = NULL;
	strcpy(r.u.ready.name, "w 1");
	assert_int_equal(hd_wire_encode(&r, &buf, &len), HD_E_INVALID);
	strcpy(r.u.ready.name, "");
	assert_int_equal(hd_wire_encode(&r, &buf, &len), HD_E_INVALID);
	strcpy(r.u.ready.name, "w1");
	r.u.ready.channels = 0;
	assert_int_equal(hd_wire_encode(&r, &buf, &len), HD_E_INVALID);
	r.u.ready.channels = 8;
	assert_int_equal(hd_wire_encode(&r, &buf, &len), HD_E_INVALID);
	r.u.ready.channels = 1;
	r.u.ready.credit = 0;
	assert_int_equal(hd_wire_encode(&r, &buf, &len), HD_E_INVALID);
	r.u.ready.credit = HD_WIRE_MAX_CREDIT + 1;
	assert_int_equal(hd_wire_encode(&r, &buf, &len), HD_E_INVALID);
	r.u.ready.credit = 1;
	r.u.ready.heartbeat_ms = HD_WIRE_MIN_HEARTBEAT_MS - 1;
	assert_int_equal(hd_wire_encode(&r, &buf, &len), HD_E_INVALID);

	hd_wire_frame_t j = full_job();
	char *kind = j.u.job.kind;
	j.u.job.kind = (char *)"to"; /* carol is a cc recipient */
	assert_int_equal(hd_wire_encode(&j, &buf, &len), HD_E_INVALID);
	j.u.job.kind = (char *)"bcc";
	assert_int_equal(hd_wire_encode(&j, &buf, &len), HD_E_INVALID);
	j.u.job.kind = kind;
	j.u.job.delivery_id = 0;
	assert_int_equal(hd_wire_encode(&j, &buf, &len), HD_E_INVALID);
	j.u.job.delivery_id = 1;
	j.u.job.attempt = 0;
	assert_int_equal(hd_wire_encode(&j, &buf, &len), HD_E_INVALID);
	j.u.job.attempt = 1;
	j.u.job.lease_ms = 0;
	assert_int_equal(hd_wire_encode(&j, &buf, &len), HD_E_INVALID);
	j.u.job.lease_ms = 1;
	j.u.job.klass = (hd_class_t)7;
	assert_int_equal(hd_wire_encode(&j, &buf, &len), HD_E_INVALID);
	j.u.job.klass = HD_CLASS_BULK;
	char *sender = j.u.job.msg->sender;
	j.u.job.msg->sender = NULL;
	assert_int_equal(hd_wire_encode(&j, &buf, &len), HD_E_INVALID);
	j.u.job.msg->sender = sender;
	assert_null(buf);
	encode_ok(&j, &buf, &len);
	free(buf);
	buf = NULL;
	hd_wire_frame_clear(&j);

	hd_wire_frame_t res = a_result();
	res.u.result.provider[0] = '\0';
	assert_int_equal(hd_wire_encode(&res, &buf, &len), HD_E_INVALID);
	res = a_result();
	res.u.result.delivery_id = -5;
	assert_int_equal(hd_wire_encode(&res, &buf, &len), HD_E_INVALID);
	res = a_result();
	res.u.result.attempt = 0;
	assert_int_equal(hd_wire_encode(&res, &buf, &len), HD_E_INVALID);
	res = a_result();
	res.u.result.outcome = (hd_outcome_kind_t)3;
	assert_int_equal(hd_wire_encode(&res, &buf, &len), HD_E_INVALID);
	hd_wire_frame_t bad = {.type = (hd_wire_type_t)9};
	assert_int_equal(hd_wire_encode(&bad, &buf, &len), HD_E_INVALID);
	assert_int_equal(hd_wire_encode(NULL, &buf, &len), HD_E_INVALID);
	assert_null(buf);
}

static void test_result_text_from_providers_is_sent_as_capped_utf8(void **state)
{
	(void)state;
	hd_wire_frame_t in = a_result(), out;
	/* Latin-1 bytes from a provider; buffers filled to the last byte, no NUL. */
	strcpy(in.u.result.provider, "sm\xe9tp");
	memset(in.u.result.detail, 'a', sizeof in.u.result.detail);
	memset(in.u.result.provider_code, 'c', sizeof in.u.result.provider_code - 2);
	memcpy(in.u.result.provider_code + sizeof in.u.result.provider_code - 2, "\xc3\xa9", 2);
	in.u.result.retry_after_ms = INT64_MAX;
	uint8_t *buf;
	size_t len;
	encode_ok(&in, &buf, &len);
	expect_ok_buf(buf, len, &out, "cleaned");
	assert_string_equal(out.u.result.provider, "sm?tp");
	assert_int_equal(strlen(out.u.result.detail), HD_WIRE_MAX_DETAIL_BYTES);
	/* 63 'c' and a 2-byte sequence that no longer fits in 64 bytes: dropped whole. */
	assert_int_equal(strlen(out.u.result.provider_code), HD_WIRE_MAX_CODE_BYTES - 1);
	assert_int_equal(out.u.result.retry_after_ms, HD_WIRE_MAX_RETRY_AFTER_MS);
	free(buf);

	/* A retry_after_ms on another outcome is not sent. */
	in = a_result();
	in.u.result.outcome = HD_OUTCOME_FAILED;
	encode_ok(&in, &buf, &len);
	expect_ok_buf(buf, len, &out, "failed");
	assert_int_equal(out.u.result.retry_after_ms, 0);
	free(buf);
}

/* ---- frame-level errors -------------------------------------------------- */

static void test_a_frame_that_is_not_one_map_is_malformed(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_MALFORMED, "", "['v',1]");
	EXPECT_ERR(HD_E_MALFORMED, "", "'hb'");
	EXPECT_ERR(HD_E_MALFORMED, "", "x'c1'");
	hd_wire_frame_t f;
	hd_decode_error_t err;
	assert_int_equal(hd_wire_decode((const uint8_t *)"", 0, &f, &err), HD_E_MALFORMED);
	assert_string_equal(err.field, "");
	/* err may be NULL */
	assert_int_equal(hd_wire_decode((const uint8_t *)"\x90", 1, &f, NULL), HD_E_MALFORMED);
}

static void test_trailing_bytes_after_the_map_are_malformed(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_MALFORMED, "", "{" VT("hb") "} nil");
	EXPECT_ERR(HD_E_MALFORMED, "", "{" VT("hb") "} {" VT("hb") "}");
	EXPECT_ERR(HD_E_MALFORMED, "", "{" JOB "} x'00'");
}

static void check_every_truncation(const hd_wire_frame_t *in)
{
	uint8_t *buf;
	size_t len;
	encode_ok(in, &buf, &len);
	for (size_t cut = 0; cut < len; cut++) {
		/* A fresh copy of exactly cut bytes, so ASan sees any read past the end. */
		uint8_t *part = malloc(cut ? cut : 1);
		memcpy(part, buf, cut);
		hd_wire_frame_t out;
		hd_decode_error_t err;
		int rc = hd_wire_decode(part, cut, &out, &err);
		if (rc != HD_E_MALFORMED)
			fail_msg("%s cut at %zu of %zu: %s %s %s", hd_wire_type_name(in->type), cut,
				 len, hd_err_name(rc), err.field, err.reason);
		assert_string_equal(err.field, "");
		assert_null(out.u.job.msg);
		free(part);
	}
	free(buf);
}

static void test_a_frame_truncated_at_any_byte_is_malformed(void **state)
{
	(void)state;
	hd_wire_frame_t ready = {.type = HD_WIRE_READY};
	strcpy(ready.u.ready.name, "w1");
	ready.u.ready.channels = 7;
	ready.u.ready.credit = 5;
	ready.u.ready.heartbeat_ms = 100;
	check_every_truncation(&ready);
	hd_wire_frame_t job = full_job();
	check_every_truncation(&job);
	hd_wire_frame_clear(&job);
	hd_wire_frame_t res = a_result();
	check_every_truncation(&res);
	hd_wire_frame_t hb = {.type = HD_WIRE_HEARTBEAT};
	check_every_truncation(&hb);
	hd_wire_frame_t bye = {.type = HD_WIRE_BYE};
	check_every_truncation(&bye);
}

static void test_container_counts_larger_than_the_frame_are_refused_before_allocation(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_MALFORMED, "", "x'df ffffffff'");
	EXPECT_ERR(HD_E_MALFORMED, "", "{" VT("ready") ",'channels':x'dd ffffffff'}");
	EXPECT_ERR(HD_E_MALFORMED, "", "{" VT("job") ",'msg':x'df ffffffff'}");
	EXPECT_ERR(HD_E_MALFORMED, "", "{" VT("job") ",'msg':{'to':x'dd ffffffff'}}");
	EXPECT_ERR(HD_E_MALFORMED, "", "{" VT("job") ",'recipient':x'db ffffffff'}");
	EXPECT_ERR(HD_E_MALFORMED, "", "{" VT("result") ",'detail':x'db 7fffffff'}");
}

static void test_a_frame_over_the_hard_limit_is_too_big(void **state)
{
	(void)state;
	size_t len = HD_WIRE_MAX_FRAME_BYTES + 1u;
	uint8_t *buf = calloc(1, len);
	hd_wire_frame_t f;
	hd_decode_error_t err;
	assert_int_equal(hd_wire_decode(buf, len, &f, &err), HD_E_TOOBIG);
	assert_string_equal(err.field, "");
	free(buf);
}

static void test_a_different_version_is_reported_as_version_whatever_else_is_wrong(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_VERSION, "v", "{'v':2,'t':'hb'}");
	EXPECT_ERR(HD_E_VERSION, "v", "{'t':'nonsense','zz':nil,'v':2}");
	EXPECT_ERR(HD_E_VERSION, "v", "{'t':'job','msg':{'prio':1},'v':0}");
	EXPECT_ERR(HD_E_VERSION, "v", "{'v':3} x'00'");
	/* v of the wrong type is a type error, not a version error */
	EXPECT_ERR(HD_E_TYPE, "v", "{'v':'1','t':'hb'}");
	EXPECT_ERR(HD_E_TYPE, "v", "{'v':-1,'t':'hb'}");
}

/* ---- keys ------------------------------------------------------------------ */

static void test_the_frame_type_decides_which_fields_are_allowed(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "credit", "{" VT("hb") ",'credit':1}");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "msg", "{" RESULT ",'msg':{}}");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "outcome", "{" JOB ",'outcome':'failed'}");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "retry_after_ms", "{" READY ",'retry_after_ms':5}");
	/* wherever "t" is in the map, and before the foreign value is read */
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "delivery_id", "{'delivery_id':'x','v':1,'t':'bye'}");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "priority", "{" VT("hb") ",'priority':1}");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "priority", "{'priority':1}");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "a?b", "{'a\\x01b':1," VT("hb") "}");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "msg.priority", "{" VT("job") ",'msg':{" EMAIL ",'priority':1}}");
	hd_wire_frame_t f;
	hd_decode_error_t err;
	size_t len;
	uint8_t *buf = tf_mp(&len, "{" VT("hb") ",'credit':1}");
	hd_wire_decode(buf, len, &f, &err);
	assert_string_equal(err.reason, "unknown field for a hb frame");
	free(buf);
	EXPECT_ERR(HD_E_TYPE, "", "{1:2," VT("hb") "}");
}

static void test_duplicate_keys_are_refused(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_INVALID, "v", "{'v':1,'v':1,'t':'hb'}");
	EXPECT_ERR(HD_E_INVALID, "t", "{'v':1,'t':'hb','t':'hb'}");
	EXPECT_ERR(HD_E_INVALID, "credit", "{" READY ",'credit':2}");
	EXPECT_ERR(HD_E_INVALID, "msg.to", "{" VT("job") "," JOB_IDS ",'recipient':'y@example.org',"
		   "'kind':'to','class':'general','msg':{" EMAIL ",'to':['z@example.org']}}");
}

static void test_required_fields_of_every_frame_type_are_reported_missing(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_MISSING, "v", "{'t':'hb'}");
	EXPECT_ERR(HD_E_MISSING, "t", "{'v':1}");
	EXPECT_ERR(HD_E_MISSING, "t", "{'v':1,'credit':3}");
	EXPECT_ERR(HD_E_MISSING, "name", "{" VT("ready") ",'channels':['sms'],'credit':1,'heartbeat_ms':100}");
	EXPECT_ERR(HD_E_MISSING, "channels", "{" VT("ready") ",'name':'w','credit':1,'heartbeat_ms':100}");
	EXPECT_ERR(HD_E_MISSING, "credit", "{" VT("ready") ",'name':'w','channels':['sms'],'heartbeat_ms':100}");
	EXPECT_ERR(HD_E_MISSING, "heartbeat_ms", "{" VT("ready") ",'name':'w','channels':['sms'],'credit':1}");
	static const char *const job_keys[] = {"delivery_id", "message_id", "attempt", "lease_ms",
					       "recipient", "kind", "class", "msg"};
	static const char *const job_vals[] = {"17", "9", "2", "60000", "'y@example.org'", "'to'",
					       "'general'", "{" EMAIL "}"};
	for (size_t skip = 0; skip < 8; skip++) {
		char text[1024] = "{" VT("job");
		for (size_t k = 0; k < 8; k++)
			if (k != skip)
				snprintf(text + strlen(text), sizeof text - strlen(text), ",'%s':%s",
					 job_keys[k], job_vals[k]);
		strcat(text, "}");
		EXPECT_ERR(HD_E_MISSING, job_keys[skip], "%s", text);
	}
	static const char *const res_keys[] = {"delivery_id", "attempt", "outcome", "provider",
					       "code", "detail"};
	static const char *const res_vals[] = {"17", "2", "'failed'", "'smtp'", "'550'", "''"};
	for (size_t skip = 0; skip < 6; skip++) {
		char text[512] = "{" VT("result");
		for (size_t k = 0; k < 6; k++)
			if (k != skip)
				snprintf(text + strlen(text), sizeof text - strlen(text), ",'%s':%s",
					 res_keys[k], res_vals[k]);
		strcat(text, "}");
		EXPECT_ERR(HD_E_MISSING, res_keys[skip], "%s", text);
	}
	EXPECT_ERR(HD_E_MISSING, "msg.from", "{" VT("job") "," JOB_IDS ",'recipient':'y@example.org','kind':'to','class':'general','msg':{'channel':'email','to':['y@example.org']}}");
	EXPECT_OK(HD_WIRE_JOB, "{" JOB "}");
	EXPECT_OK(HD_WIRE_READY, "{" READY "}");
	EXPECT_OK(HD_WIRE_RESULT, "{" RESULT "}");
}

static void test_every_field_checks_its_type(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_TYPE, "t", "{'v':1,'t':1}");
	EXPECT_ERR(HD_E_TYPE, "name", "{" VT("ready") ",'name':b'w'}");
	EXPECT_ERR(HD_E_TYPE, "channels", "{" VT("ready") ",'channels':'email'}");
	EXPECT_ERR(HD_E_TYPE, "channels[1]", "{" VT("ready") ",'channels':['email',1]}");
	EXPECT_ERR(HD_E_TYPE, "credit", "{" VT("ready") ",'credit':-1}");
	EXPECT_ERR(HD_E_TYPE, "credit", "{" VT("ready") ",'credit':1.0}");
	EXPECT_ERR(HD_E_TYPE, "heartbeat_ms", "{" VT("ready") ",'heartbeat_ms':nil}");
	EXPECT_ERR(HD_E_TYPE, "delivery_id", "{" VT("job") ",'delivery_id':'17'}");
	EXPECT_ERR(HD_E_TYPE, "message_id", "{" VT("job") ",'message_id':true}");
	EXPECT_ERR(HD_E_TYPE, "attempt", "{" VT("job") ",'attempt':'1'}");
	EXPECT_ERR(HD_E_TYPE, "lease_ms", "{" VT("job") ",'lease_ms':[]}");
	EXPECT_ERR(HD_E_TYPE, "recipient", "{" VT("job") ",'recipient':['a@b.c']}");
	EXPECT_ERR(HD_E_TYPE, "kind", "{" VT("job") ",'kind':0}");
	EXPECT_ERR(HD_E_TYPE, "class", "{" VT("job") ",'class':0}");
	EXPECT_ERR(HD_E_TYPE, "msg", "{" VT("job") ",'msg':[]}");
	EXPECT_ERR(HD_E_TYPE, "msg.subject", "{" VT("job") ",'msg':{'subject':nil}}");
	EXPECT_ERR(HD_E_TYPE, "outcome", "{" VT("result") ",'outcome':1}");
	EXPECT_ERR(HD_E_TYPE, "retry_after_ms", "{" VT("result") ",'retry_after_ms':'5'}");
	EXPECT_ERR(HD_E_TYPE, "provider", "{" VT("result") ",'provider':nil}");
	EXPECT_ERR(HD_E_TYPE, "code", "{" VT("result") ",'code':250}");
	EXPECT_ERR(HD_E_TYPE, "detail", "{" VT("result") ",'detail':b'x'}");
	EXPECT_ERR(HD_E_TYPE, "provider_id", "{" VT("result") ",'provider_id':1}");
}

/* ---- values ---------------------------------------------------------------- */

static void test_enumerated_values_must_be_known(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_INVALID, "t", "{'v':1,'t':'ping'}");
	EXPECT_ERR(HD_E_INVALID, "t", "{'v':1,'t':'HB'}");
	EXPECT_ERR(HD_E_INVALID, "channels[0]", "{" VT("ready") ",'channels':['fax']}");
	EXPECT_ERR(HD_E_INVALID, "channels[1]", "{" VT("ready") ",'channels':['sms','sms']}");
	EXPECT_ERR(HD_E_INVALID, "channels", "{" VT("ready") ",'channels':[]}");
	EXPECT_ERR(HD_E_TOOBIG, "channels", "{" VT("ready") ",'channels':['sms','im','email','sms']}");
	EXPECT_ERR(HD_E_INVALID, "kind", "{" VT("job") ",'kind':'bcc'}");
	EXPECT_ERR(HD_E_INVALID, "class", "{" VT("job") ",'class':'urgent'}");
	EXPECT_ERR(HD_E_INVALID, "outcome", "{" VT("result") ",'outcome':'sent'}");
	EXPECT_ERR(HD_E_INVALID, "name", "{" VT("ready") ",'name':'w 1'}");
	EXPECT_ERR(HD_E_INVALID, "name", "{" VT("ready") ",'name':''}");
	EXPECT_ERR(HD_E_INVALID, "provider", "{" VT("result") ",'provider':''}");
	EXPECT_ERR(HD_E_INVALID, "provider_id", "{" VT("result") ",'provider_id':''}");
	EXPECT_ERR(HD_E_INVALID, "recipient", "{" VT("job") ",'recipient':''}");
	EXPECT_ERR(HD_E_INVALID, "detail", "{" VT("result") ",'detail':'a\\x00b'}");
	EXPECT_ERR(HD_E_INVALID, "code", "{" VT("result") ",'code':'\\xc3'}");
}

static void test_numbers_accept_their_range_and_refuse_one_past_it(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_INVALID, "credit", "{" VT("ready") ",'credit':0}");
	EXPECT_ERR(HD_E_TOOBIG, "credit", "{" VT("ready") ",'credit':%u}", HD_WIRE_MAX_CREDIT + 1);
	EXPECT_ERR(HD_E_INVALID, "heartbeat_ms", "{" VT("ready") ",'heartbeat_ms':%u}",
		   HD_WIRE_MIN_HEARTBEAT_MS - 1);
	EXPECT_ERR(HD_E_TOOBIG, "heartbeat_ms", "{" VT("ready") ",'heartbeat_ms':%u}",
		   HD_WIRE_MAX_HEARTBEAT_MS + 1);
	EXPECT_OK(HD_WIRE_READY, "{" VT("ready") ",'name':'w','channels':['im'],'credit':1,"
		  "'heartbeat_ms':%u}", HD_WIRE_MAX_HEARTBEAT_MS);
	EXPECT_ERR(HD_E_INVALID, "delivery_id", "{" VT("job") ",'delivery_id':0}");
	EXPECT_ERR(HD_E_INVALID, "delivery_id", "{" VT("result") ",'delivery_id':-3}");
	EXPECT_ERR(HD_E_INVALID, "delivery_id", "{" VT("result") ",'delivery_id':9223372036854775808}");
	EXPECT_ERR(HD_E_INVALID, "message_id", "{" VT("job") ",'message_id':0}");
	EXPECT_ERR(HD_E_INVALID, "attempt", "{" VT("job") ",'attempt':0}");
	EXPECT_ERR(HD_E_TOOBIG, "attempt", "{" VT("result") ",'attempt':4294967296}");
	EXPECT_OK(HD_WIRE_RESULT, "{" VT("result") ",'delivery_id':9223372036854775807,"
		  "'attempt':4294967295,'outcome':'failed','provider':'p','code':'','detail':''}");
	EXPECT_ERR(HD_E_INVALID, "lease_ms", "{" VT("job") ",'lease_ms':0}");
	EXPECT_ERR(HD_E_TOOBIG, "lease_ms", "{" VT("job") ",'lease_ms':%u}", HD_WIRE_MAX_LEASE_MS + 1);
	EXPECT_ERR(HD_E_INVALID, "retry_after_ms", "{" VT("result") ",'retry_after_ms':0}");
	EXPECT_ERR(HD_E_TOOBIG, "retry_after_ms", "{" VT("result") ",'retry_after_ms':%d}",
		   HD_WIRE_MAX_RETRY_AFTER_MS + 1);
	EXPECT_OK(HD_WIRE_RESULT, "{" VT("result") ",'delivery_id':1,'attempt':1,'outcome':'retry',"
		  "'retry_after_ms':%d,'provider':'p','code':'','detail':''}",
		  HD_WIRE_MAX_RETRY_AFTER_MS);
	/* Any integer encoding counts by value. */
	EXPECT_OK(HD_WIRE_READY, "{" VT("ready") ",'name':'w','channels':['im'],'credit':x'd0 05',"
		  "'heartbeat_ms':x'cf 0000000000000064'}");
}

static void test_every_text_limit_accepts_the_limit_and_refuses_one_more_byte(void **state)
{
	(void)state;
	static const struct {
		const char *type, *key;
		unsigned max;
	} limits[] = {
		{"ready", "name", HD_WIRE_MAX_NAME_BYTES},
		{"result", "provider", HD_WIRE_MAX_NAME_BYTES},
		{"result", "code", HD_WIRE_MAX_CODE_BYTES},
		{"result", "detail", HD_WIRE_MAX_DETAIL_BYTES},
		{"result", "provider_id", HD_WIRE_MAX_ID_BYTES},
	};
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		const char *base = strcmp(limits[i].type, "ready") == 0
			? "'v':1,'t':'ready','channels':['im'],'credit':1,'heartbeat_ms':100"
			: "'v':1,'t':'result','delivery_id':1,'attempt':1,'outcome':'delivered'";
		char others[256] = "";
		if (strcmp(limits[i].type, "result") == 0) {
			static const char *const keys[] = {"provider", "code", "detail"};
			for (size_t k = 0; k < 3; k++)
				if (strcmp(keys[k], limits[i].key) != 0)
					snprintf(others + strlen(others), sizeof others - strlen(others),
						 ",'%s':'p'", keys[k]);
		}
		EXPECT_OK(strcmp(limits[i].type, "ready") == 0 ? HD_WIRE_READY : HD_WIRE_RESULT,
			  "{%s%s,'%s':'a'*%u}", base, others, limits[i].key, limits[i].max);
		EXPECT_ERR(HD_E_TOOBIG, limits[i].key, "{%s%s,'%s':'a'*%u}", base, others,
			   limits[i].key, limits[i].max + 1);
	}
	EXPECT_ERR(HD_E_TOOBIG, "recipient", "{" VT("job") ",'recipient':'a'*%u}",
		   HD_MAX_ADDR_BYTES + 1);
	EXPECT_ERR(HD_E_TOOBIG, "endpoint", "{" VT("job") ",'endpoint':'a'*%u}",
		   HD_WIRE_MAX_NAME_BYTES + 1);
	EXPECT_ERR(HD_E_INVALID, "endpoint", "{" VT("job") ",'endpoint':'-hook'}");
	EXPECT_ERR(HD_E_INVALID, "endpoint", "{" VT("job") ",'endpoint':'a b'}");
}

static void test_the_job_message_is_checked_with_the_producer_rules(void **state)
{
	(void)state;
#define JOB_WITH(msg) "{" VT("job") "," JOB_IDS ",'recipient':'+8613800138000','kind':'to','class':'general','msg':{" msg "}}"
	EXPECT_OK(HD_WIRE_JOB, JOB_WITH("'channel':'sms','from':'a@example.com','to':['+8613800138000'],'purpose':'service'"));
	EXPECT_ERR(HD_E_MISSING, "msg.purpose", JOB_WITH("'channel':'sms','from':'a@example.com','to':['+8613800138000']"));
	EXPECT_ERR(HD_E_INVALID, "msg.to[1]", JOB_WITH("'channel':'sms','from':'a@example.com','to':['+8613800138000','12'],'purpose':'service'"));
	EXPECT_ERR(HD_E_INVALID, "msg.html", JOB_WITH("'channel':'sms','from':'a@example.com','to':['+8613800138000'],'purpose':'service','html':'<b>'"));
	EXPECT_ERR(HD_E_INVALID, "msg.to", JOB_WITH("'channel':'sms','from':'a@example.com','to':[],'purpose':'service'"));
	EXPECT_ERR(HD_E_INVALID, "msg.subject", "{" VT("job") ",'msg':{" EMAIL ",'subject':'a\\x0ab'}}");
#undef JOB_WITH
}

static void test_the_job_recipient_must_be_one_of_the_message_recipients_of_its_kind(void **state)
{
	(void)state;
#define JOB_FOR(rcpt, kind) "{" VT("job") "," JOB_IDS ",'recipient':'" rcpt "','kind':'" kind "','class':'bulk','msg':{" EMAIL "}}"
	EXPECT_OK(HD_WIRE_JOB, JOB_FOR("x@example.org", "to"));
	EXPECT_OK(HD_WIRE_JOB, JOB_FOR("c@example.org", "cc"));
	EXPECT_ERR(HD_E_INVALID, "recipient", JOB_FOR("c@example.org", "to"));
	EXPECT_ERR(HD_E_INVALID, "recipient", JOB_FOR("x@example.org", "cc"));
	EXPECT_ERR(HD_E_INVALID, "recipient", JOB_FOR("X@example.org", "to"));
	EXPECT_ERR(HD_E_INVALID, "recipient", JOB_FOR("zz@example.org", "to"));
#undef JOB_FOR
	EXPECT_ERR(HD_E_INVALID, "retry_after_ms", "{" RESULT ",'retry_after_ms':5}");
}

/* ---- helpers ---------------------------------------------------------------- */

static void test_peek_job_finds_the_ids_of_a_job_that_does_not_decode(void **state)
{
	(void)state;
	int64_t id = 0;
	uint32_t attempt = 0;
	size_t len;
	uint8_t *buf = tf_mp(&len, "{" VT("job") "," JOB_IDS ",'recipient':'y@example.org','kind':'to',"
			  "'class':'general','msg':{'channel':'email','from':'a@example.com','to':['bad']}}");
	hd_wire_frame_t f;
	assert_int_equal(hd_wire_decode(buf, len, &f, NULL), HD_E_INVALID);
	assert_true(hd_wire_peek_job(buf, len, &id, &attempt));
	assert_int_equal(id, 17);
	assert_int_equal(attempt, 2);
	free(buf);
	/* Not a job, or ids missing or unusable: nothing to answer. */
	buf = tf_mp(&len, "{" RESULT "}");
	assert_false(hd_wire_peek_job(buf, len, &id, &attempt));
	free(buf);
	buf = tf_mp(&len, "{" VT("job") ",'delivery_id':5}");
	assert_false(hd_wire_peek_job(buf, len, &id, &attempt));
	free(buf);
	buf = tf_mp(&len, "{" VT("job") ",'delivery_id':0,'attempt':1}");
	assert_false(hd_wire_peek_job(buf, len, &id, &attempt));
	free(buf);
	buf = tf_mp(&len, "{'attempt':1,'delivery_id':8,'t':'job','x':x'c1'}");
	assert_true(hd_wire_peek_job(buf, len, &id, &attempt));
	assert_int_equal(id, 8);
	free(buf);
	assert_false(hd_wire_peek_job((const uint8_t *)"\x91", 1, &id, &attempt));
}

static void test_names_of_types_and_outcomes_are_the_wire_names(void **state)
{
	(void)state;
	assert_string_equal(hd_wire_type_name(HD_WIRE_READY), "ready");
	assert_string_equal(hd_wire_type_name(HD_WIRE_JOB), "job");
	assert_string_equal(hd_wire_type_name(HD_WIRE_RESULT), "result");
	assert_string_equal(hd_wire_type_name(HD_WIRE_HEARTBEAT), "hb");
	assert_string_equal(hd_wire_type_name(HD_WIRE_BYE), "bye");
	assert_string_equal(hd_wire_type_name((hd_wire_type_t)42), "unknown");
	assert_string_equal(hd_outcome_name(HD_OUTCOME_DELIVERED), "delivered");
	assert_string_equal(hd_outcome_name(HD_OUTCOME_RETRY), "retry");
	assert_string_equal(hd_outcome_name(HD_OUTCOME_FAILED), "failed");
	assert_string_equal(hd_outcome_name((hd_outcome_kind_t)42), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_ready_frame_survives_encode_then_decode),
		cmocka_unit_test(test_a_job_frame_survives_encode_then_decode_with_its_whole_message),
		cmocka_unit_test(test_a_job_endpoint_is_optional_survives_round_trip_and_must_be_a_plain_name),
		cmocka_unit_test(test_a_result_frame_survives_encode_then_decode_with_and_without_options),
		cmocka_unit_test(test_heartbeat_and_bye_encode_to_the_documented_bytes),
		cmocka_unit_test(test_a_ready_frame_encodes_to_the_documented_bytes),
		cmocka_unit_test(test_the_documented_job_and_result_encode_to_their_bytes),
		cmocka_unit_test(test_the_job_msg_is_encoded_byte_for_byte_as_a_producer_msg),
		cmocka_unit_test(test_encode_refuses_frames_the_decoder_would_refuse),
		cmocka_unit_test(test_result_text_from_providers_is_sent_as_capped_utf8),
		cmocka_unit_test(test_a_frame_that_is_not_one_map_is_malformed),
		cmocka_unit_test(test_trailing_bytes_after_the_map_are_malformed),
		cmocka_unit_test(test_a_frame_truncated_at_any_byte_is_malformed),
		cmocka_unit_test(test_container_counts_larger_than_the_frame_are_refused_before_allocation),
		cmocka_unit_test(test_a_frame_over_the_hard_limit_is_too_big),
		cmocka_unit_test(test_a_different_version_is_reported_as_version_whatever_else_is_wrong),
		cmocka_unit_test(test_the_frame_type_decides_which_fields_are_allowed),
		cmocka_unit_test(test_duplicate_keys_are_refused),
		cmocka_unit_test(test_required_fields_of_every_frame_type_are_reported_missing),
		cmocka_unit_test(test_every_field_checks_its_type),
		cmocka_unit_test(test_enumerated_values_must_be_known),
		cmocka_unit_test(test_numbers_accept_their_range_and_refuse_one_past_it),
		cmocka_unit_test(test_every_text_limit_accepts_the_limit_and_refuses_one_more_byte),
		cmocka_unit_test(test_the_job_message_is_checked_with_the_producer_rules),
		cmocka_unit_test(test_the_job_recipient_must_be_one_of_the_message_recipients_of_its_kind),
		cmocka_unit_test(test_peek_job_finds_the_ids_of_a_job_that_does_not_decode),
		cmocka_unit_test(test_names_of_types_and_outcomes_are_the_wire_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
