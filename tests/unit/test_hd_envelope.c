/*
 * NAME
 *	test_hd_envelope - the producer wire codec, as a client sees it
 * DESCRIPTION
 *	Frames are written in a small msgpack notation (tf_mp() of
 *	hd_test_frames) and packed with msgpack-c, independently of the
 *	encoder under test. Covered: round trips of requests and replies,
 *	every field's wrong type, unknown and duplicate keys at every level,
 *	trailing bytes, truncation at every offset, counts larger than the
 *	frame, every limit at the limit and one past it, rid recovery from
 *	bad requests, version precedence, UTF-8, per-channel address and
 *	field rules.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_envelope.h"
#include "hd_err.h"
#include "hd_limits.h"
#include "hd_test_frames.h"

/* ---- frames used throughout ---------------------------------------------- */

#define HDR "'v':1,'rid':7,'op':'submit','app':'billing'"
#define EMAIL "'channel':'email','from':'a@example.com','to':['x@example.org']"
#define SMS "'channel':'sms','from':'a@example.com','to':['+8613800138000'],'purpose':'service'"
#define IM "'channel':'im','from':'a@example.com','to':['ops-alerts']"

/* Decode with the hard limits; expect code at field; check *out is empty. */
static void expect_error_max(int code, const char *field, size_t max_recipients,
			     const uint8_t *buf, size_t len, const char *what)
{
	hd_request_t req;
	hd_decode_error_t err;
	int rc = hd_envelope_decode_request(buf, len, max_recipients, &req, &err);
	if (rc != code || strcmp(err.field, field) != 0)
		fail_msg("%s: got %s field=\"%s\" reason=\"%s\", want %s field=\"%s\"", what,
			 hd_err_name(rc), err.field, err.reason, hd_err_name(code), field);
	assert_int_equal(err.code, code);
	assert_true(strlen(err.reason) > 0);
	assert_null(req.msg);
	assert_null(req.app);
}

#define EXPECT_ERR(code, field, ...)                                              \
	do {                                                                      \
		size_t len_;                                                      \
		uint8_t *buf_ = tf_mp(&len_, __VA_ARGS__);                        \
		expect_error_max((code), (field), 0, buf_, len_, #__VA_ARGS__);   \
		free(buf_);                                                       \
	} while (0)

/* Decode and expect success; caller clears *req. */
static void expect_ok_buf(const uint8_t *buf, size_t len, hd_request_t *req, const char *what)
{
	hd_decode_error_t err;
	int rc = hd_envelope_decode_request(buf, len, 0, req, &err);
	if (rc != HD_OK)
		fail_msg("%s: got %s field=\"%s\" reason=\"%s\"", what, hd_err_name(rc), err.field,
			 err.reason);
}

#define EXPECT_OK(...)                                                            \
	do {                                                                      \
		size_t len_;                                                      \
		hd_request_t req_;                                                \
		uint8_t *buf_ = tf_mp(&len_, __VA_ARGS__);                        \
		expect_ok_buf(buf_, len_, &req_, #__VA_ARGS__);                   \
		hd_request_clear(&req_);                                          \
		free(buf_);                                                       \
	} while (0)

/* A message using every field, as a producer would build it. */
static hd_request_t full_request(void)
{
	hd_request_t req = {.rid = 0x1122334455667788ull, .op = HD_OP_SUBMIT};
	req.app = strdup("billing-batch_1.0");
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
	hd_msg_add_attachment(m, "empty.txt", "text/plain", NULL, 0);
	m->flags = HD_FLAG_IMPORTANT | HD_FLAG_CONFIDENTIAL | HD_FLAG_NEEDS_REPLY;
	m->reply_by = 1767225600;
	hd_msg_set_bulk(m, "quarterly statement", "all customers", 1200, "the Q2 statement");
	m->idempotency_key = strdup("k-0001");
	hd_msg_add_tag(m, "batch", "2024-07");
	hd_msg_add_tag(m, "empty", "");
	req.msg = m;
	return req;
}

static void test_a_full_request_survives_encode_then_decode(void **state)
{
	(void)state;
	hd_request_t in = full_request();
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_request(&in, &buf, &len), HD_OK);
	hd_request_t out;
	expect_ok_buf(buf, len, &out, "full request");
	assert_int_equal(out.version, HD_PROTOCOL_VERSION);
	assert_true(out.rid == in.rid);
	assert_int_equal(out.op, HD_OP_SUBMIT);
	assert_string_equal(out.app, in.app);
	tf_assert_msg_equal(in.msg, out.msg);

	/* Re-encoding the decoded request gives the same bytes. */
	uint8_t *buf2;
	size_t len2;
	assert_int_equal(hd_envelope_encode_request(&out, &buf2, &len2), HD_OK);
	assert_int_equal(len2, len);
	assert_memory_equal(buf2, buf, len);
	free(buf);
	free(buf2);
	hd_request_clear(&in);
	hd_request_clear(&out);
	assert_null(out.msg);
	hd_request_clear(NULL);
}

static void test_sms_and_im_requests_survive_encode_then_decode(void **state)
{
	(void)state;
	for (int ch = HD_CHANNEL_IM; ch <= HD_CHANNEL_SMS; ch++) {
		hd_request_t in = {.rid = 3, .op = HD_OP_SUBMIT, .app = strdup("ops")};
		in.msg = hd_msg_new((hd_channel_t)ch);
		in.msg->sender = strdup("ops@corp.example");
		hd_msg_add_to(in.msg, ch == HD_CHANNEL_SMS ? "+8613800138000" : "ops-alerts");
		in.msg->body = strdup("disk full on db1");
		if (ch == HD_CHANNEL_SMS)
			in.msg->purpose = HD_PURPOSE_URGENT;
		uint8_t *buf;
		size_t len;
		assert_int_equal(hd_envelope_encode_request(&in, &buf, &len), HD_OK);
		hd_request_t out;
		expect_ok_buf(buf, len, &out, "sms/im");
		tf_assert_msg_equal(in.msg, out.msg);
		free(buf);
		hd_request_clear(&in);
		hd_request_clear(&out);
	}
}

static void test_a_ping_encodes_to_the_documented_bytes(void **state)
{
	(void)state;
	hd_request_t ping = {.rid = 5, .op = HD_OP_PING};
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_request(&ping, &buf, &len), HD_OK);
	/* {"v":1,"rid":5,"op":"ping"}, as in docs/PROTOCOL.md */
	static const uint8_t expect[] = {0x83, 0xa1, 'v', 0x01, 0xa3, 'r', 'i', 'd', 0x05,
					 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g'};
	assert_int_equal(len, sizeof expect);
	assert_memory_equal(buf, expect, len);
	hd_request_t out;
	expect_ok_buf(buf, len, &out, "ping");
	assert_int_equal(out.op, HD_OP_PING);
	assert_null(out.msg);
	assert_null(out.app);
	assert_int_equal(out.rid, 5);
	free(buf);
}

static void test_encode_refuses_requests_it_cannot_represent(void **state)
{
	(void)state;
	uint8_t *buf = NULL;
	size_t len = 0;
	hd_request_t r = full_request();
	char *app = r.app;
	r.app = NULL;
	assert_int_equal(hd_envelope_encode_request(&r, &buf, &len), HD_E_INVALID);
	r.app = app;
	char *sender = r.msg->sender;
	r.msg->sender = NULL;
	assert_int_equal(hd_envelope_encode_request(&r, &buf, &len), HD_E_INVALID);
	r.msg->sender = sender;
	r.msg->flags |= 1u << 9;
	assert_int_equal(hd_envelope_encode_request(&r, &buf, &len), HD_E_INVALID);
	r.msg->flags &= ~(1u << 9);
	char *t0 = r.msg->to[0];
	r.msg->to[0] = NULL;
	assert_int_equal(hd_envelope_encode_request(&r, &buf, &len), HD_E_INVALID);
	r.msg->to[0] = t0;
	r.op = HD_OP_PING;
	assert_int_equal(hd_envelope_encode_request(&r, &buf, &len), HD_E_INVALID);
	r.op = (hd_op_t)9;
	assert_int_equal(hd_envelope_encode_request(&r, &buf, &len), HD_E_INVALID);
	assert_null(buf);
	r.op = HD_OP_SUBMIT;
	assert_int_equal(hd_envelope_encode_request(&r, &buf, &len), HD_OK);
	free(buf);
	hd_request_clear(&r);
}

/* ---- frame-level errors -------------------------------------------------- */

static void test_a_frame_that_is_not_one_map_is_malformed(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_MALFORMED, "", "[1,2]");
	EXPECT_ERR(HD_E_MALFORMED, "", "'submit'");
	EXPECT_ERR(HD_E_MALFORMED, "", "x'c1'");
	hd_request_t req;
	hd_decode_error_t err;
	assert_int_equal(hd_envelope_decode_request((const uint8_t *)"", 0, 0, &req, &err),
			 HD_E_MALFORMED);
	assert_string_equal(err.field, "");
}

static void test_trailing_bytes_after_the_map_are_malformed(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_MALFORMED, "", "{" HDR ",'msg':{" EMAIL "}} nil");
	EXPECT_ERR(HD_E_MALFORMED, "", "{'v':1,'rid':1,'op':'ping'} {'v':1,'rid':2,'op':'ping'}");
	EXPECT_ERR(HD_E_MALFORMED, "", "{'v':1,'rid':1,'op':'ping'} x'00'");
}

static void test_a_request_truncated_at_any_byte_is_malformed_and_keeps_its_rid(void **state)
{
	(void)state;
	hd_request_t in = full_request();
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_request(&in, &buf, &len), HD_OK);
	/* rid is the second key: its value ends 9 bytes after "rid" (uint64). */
	const uint8_t *rid_key = tf_find_bytes(buf, len, "\xa3rid", 4);
	assert_non_null(rid_key);
	size_t rid_end = (size_t)(rid_key - buf) + 4 + 9;
	for (size_t cut = 0; cut < len; cut++) {
		hd_request_t out;
		hd_decode_error_t err;
		int rc = hd_envelope_decode_request(buf, cut, 0, &out, &err);
		if (rc != HD_E_MALFORMED)
			fail_msg("cut at %zu of %zu: %s %s %s", cut, len, hd_err_name(rc), err.field,
				 err.reason);
		assert_string_equal(err.field, "");
		assert_null(out.msg);
		assert_true(out.rid == (cut >= rid_end ? in.rid : 0));
	}
	free(buf);
	hd_request_clear(&in);
}

static void test_container_counts_larger_than_the_frame_are_refused_before_allocation(void **state)
{
	(void)state;
	/* 4 billion elements declared, none present: must fail fast, allocate nothing. */
	EXPECT_ERR(HD_E_MALFORMED, "", "x'dd ffffffff'");
	EXPECT_ERR(HD_E_MALFORMED, "", "x'df ffffffff'");
	EXPECT_ERR(HD_E_MALFORMED, "", "{" HDR ",'msg':{'to':x'dd ffffffff'}}");
	EXPECT_ERR(HD_E_MALFORMED, "", "{" HDR ",'msg':{" EMAIL ",'tags':x'df ffffffff'}}");
	EXPECT_ERR(HD_E_MALFORMED, "", "{" HDR ",'msg':{" EMAIL ",'attachments':x'dd 7fffffff'}}");
	EXPECT_ERR(HD_E_MALFORMED, "", "{" HDR ",'msg':{" EMAIL ",'body':x'db ffffffff'}}");
	EXPECT_ERR(HD_E_MALFORMED, "",
		   "{" HDR ",'msg':{" EMAIL ",'attachments':[{'data':x'c6 ffffffff'}]}}");
}

static void test_a_frame_over_the_hard_limit_is_too_big(void **state)
{
	(void)state;
	size_t len = HD_MAX_FRAME_BYTES + 1u;
	uint8_t *buf = calloc(1, len);
	hd_request_t req;
	hd_decode_error_t err;
	assert_int_equal(hd_envelope_decode_request(buf, len, 0, &req, &err), HD_E_TOOBIG);
	assert_string_equal(err.field, "");
	free(buf);
}

/* ---- top-level fields ---------------------------------------------------- */

static void test_top_level_fields_are_required_and_typed(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_MISSING, "v", "{'rid':7,'op':'ping'}");
	EXPECT_ERR(HD_E_MISSING, "rid", "{'v':1,'op':'ping'}");
	EXPECT_ERR(HD_E_MISSING, "op", "{'v':1,'rid':7}");
	EXPECT_ERR(HD_E_MISSING, "app", "{'v':1,'rid':7,'op':'submit','msg':{" EMAIL "}}");
	EXPECT_ERR(HD_E_MISSING, "msg", "{" HDR "}");
	EXPECT_ERR(HD_E_TYPE, "v", "{'v':'1','rid':7,'op':'ping'}");
	EXPECT_ERR(HD_E_TYPE, "v", "{'v':1.0,'rid':7,'op':'ping'}");
	EXPECT_ERR(HD_E_TYPE, "rid", "{'v':1,'rid':'7','op':'ping'}");
	EXPECT_ERR(HD_E_TYPE, "rid", "{'v':1,'rid':-7,'op':'ping'}");
	EXPECT_ERR(HD_E_TYPE, "rid", "{'v':1,'rid':nil,'op':'ping'}");
	EXPECT_ERR(HD_E_TYPE, "op", "{'v':1,'rid':7,'op':1}");
	EXPECT_ERR(HD_E_TYPE, "op", "{'v':1,'rid':7,'op':b'ping'}");
	EXPECT_ERR(HD_E_INVALID, "op", "{'v':1,'rid':7,'op':'send'}");
	EXPECT_ERR(HD_E_TYPE, "app", "{'v':1,'rid':7,'op':'ping','app':1}");
	EXPECT_ERR(HD_E_INVALID, "app", "{'v':1,'rid':7,'op':'ping','app':''}");
	EXPECT_ERR(HD_E_INVALID, "app", "{'v':1,'rid':7,'op':'ping','app':'bill ing'}");
	EXPECT_ERR(HD_E_INVALID, "app", "{'v':1,'rid':7,'op':'ping','app':'a/b'}");
	EXPECT_ERR(HD_E_TYPE, "msg", "{" HDR ",'msg':[]}");
	EXPECT_ERR(HD_E_TYPE, "", "{1:1,'v':1,'rid':7,'op':'ping'}");
	EXPECT_ERR(HD_E_INVALID, "msg", "{'v':1,'rid':7,'op':'ping','msg':{" EMAIL "}}");
	/* uint64 rid at its maximum, any key order */
	EXPECT_OK("{'op':'ping','rid':18446744073709551615,'v':1}");
	EXPECT_OK("{'v':1,'rid':0,'op':'ping','app':'monitor'}");
}

static void test_a_different_version_is_reported_as_version_whatever_else_is_wrong(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_VERSION, "v", "{'v':2,'rid':7,'op':'ping'}");
	EXPECT_ERR(HD_E_VERSION, "v", "{'v':0,'rid':7,'op':'ping'}");
	/* A v2 client may send fields v1 does not know, before or after "v". */
	EXPECT_ERR(HD_E_VERSION, "v", "{'rid':7,'op':'ping','newfield':1,'v':2}");
	EXPECT_ERR(HD_E_VERSION, "v", "{'rid':7,'op':'teleport','v':2}");
	EXPECT_ERR(HD_E_VERSION, "v", "{'rid':7,'msg':{'x':1},'v':2}");
}

static void test_unknown_fields_are_refused_at_every_level(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "priority", "{" HDR ",'priority':1,'msg':{" EMAIL "}}");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "msg.priority", "{" HDR ",'msg':{" EMAIL ",'priority':1}}");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "msg.Subject", "{" HDR ",'msg':{" EMAIL ",'Subject':'x'}}");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "msg.attachments[0].size",
		   "{" HDR ",'msg':{" EMAIL ",'attachments':[{'name':'a','type':'text/plain',"
		   "'data':b'','size':0}]}}");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "msg.bulk.owner",
		   "{" HDR ",'msg':{" EMAIL ",'bulk':{'purpose':'p','audience':'a',"
		   "'recipient_count':1,'summary':'s','owner':'me'}}}");
	/* A hostile key is shown printable and cut. */
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, "msg.a?b", "{" HDR ",'msg':{" EMAIL ",'a\\x01b':1}}");
	char cut[64] = "msg.";
	memset(cut + 4, 'z', 44);
	strcpy(cut + 48, "...");
	EXPECT_ERR(HD_E_UNKNOWN_FIELD, cut, "{" HDR ",'msg':{" EMAIL ",'z'*500:1}}");
}

static void test_duplicate_keys_are_refused_at_every_level(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_INVALID, "rid", "{'v':1,'rid':7,'rid':8,'op':'ping'}");
	EXPECT_ERR(HD_E_INVALID, "msg.subject",
		   "{" HDR ",'msg':{" EMAIL ",'subject':'a','subject':'b'}}");
	EXPECT_ERR(HD_E_INVALID, "msg.attachments[0].name",
		   "{" HDR ",'msg':{" EMAIL ",'attachments':[{'name':'a','name':'b'}]}}");
	EXPECT_ERR(HD_E_INVALID, "msg.bulk.summary",
		   "{" HDR ",'msg':{" EMAIL ",'bulk':{'summary':'a','summary':'b'}}}");
	EXPECT_ERR(HD_E_INVALID, "msg.tags[1]", "{" HDR ",'msg':{" EMAIL ",'tags':{'k':'1','k':'2'}}}");
	EXPECT_ERR(HD_E_INVALID, "msg.flags[1]",
		   "{" HDR ",'msg':{" EMAIL ",'flags':['bulk','bulk']}}");
}

/* ---- message fields ------------------------------------------------------ */

static void test_every_message_field_checks_its_type(void **state)
{
	(void)state;
	static const struct {
		const char *field;
		const char *value;
	} cases[] = {
		{"msg.channel", "'channel':1"},
		{"msg.from", "'from':['a@example.com']"},
		{"msg.to", "'to':'x@example.org'"},
		{"msg.to[1]", "'to':['x@example.org',5]"},
		{"msg.to[0]", "'to':[b'x@example.org']"},
		{"msg.cc", "'cc':{}"},
		{"msg.cc[0]", "'cc':[nil]"},
		{"msg.cc_reason", "'cc_reason':nil"},
		{"msg.subject", "'subject':5"},
		{"msg.body", "'body':true"},
		{"msg.body", "'body':b'bytes'"},
		{"msg.html", "'html':3"},
		{"msg.attachments", "'attachments':{}"},
		{"msg.attachments[0]", "'attachments':['a.txt']"},
		{"msg.attachments[0].name", "'attachments':[{'name':1}]"},
		{"msg.attachments[0].type", "'attachments':[{'type':['text/plain']}]"},
		{"msg.attachments[0].data", "'attachments':[{'data':'text is not bin'}]"},
		{"msg.flags", "'flags':'important'"},
		{"msg.flags[0]", "'flags':[1]"},
		{"msg.purpose", "'purpose':2"},
		{"msg.reply_by", "'reply_by':'1767225600'"},
		{"msg.reply_by", "'reply_by':1767225600.0"},
		{"msg.bulk", "'bulk':[]"},
		{"msg.bulk.purpose", "'bulk':{'purpose':1}"},
		{"msg.bulk.recipient_count", "'bulk':{'recipient_count':'10'}"},
		{"msg.bulk.recipient_count", "'bulk':{'recipient_count':-1}"},
		{"msg.idempotency_key", "'idempotency_key':42"},
		{"msg.tags", "'tags':[]"},
		{"msg.tags[0]", "'tags':{1:'v'}"},
		{"msg.tags[0]", "'tags':{'k':1}"},
		{"msg.tags[0]", "'tags':{'k':{'nested':'map'}}"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		/* The base fields come after the case so it is the first error met. */
		size_t len;
		uint8_t *buf = tf_mp(&len, "{" HDR ",'msg':{%s,%s}}", cases[i].value,
				  "'channel':'email','from':'a@example.com','to':['x@example.org']");
		/* The case's key comes first, so its error wins over the later duplicate. */
		hd_request_t req;
		hd_decode_error_t err;
		int rc = hd_envelope_decode_request(buf, len, 0, &req, &err);
		if (rc != HD_E_TYPE || strcmp(err.field, cases[i].field) != 0)
			fail_msg("%s: got %s field=\"%s\" (%s)", cases[i].value, hd_err_name(rc),
				 err.field, err.reason);
		free(buf);
	}
	EXPECT_ERR(HD_E_TYPE, "msg", "{" HDR ",'msg':{1:'x'," EMAIL "}}");
}

static void test_required_message_fields_are_reported_missing(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_MISSING, "msg.channel",
		   "{" HDR ",'msg':{'from':'a@example.com','to':['x@example.org']}}");
	EXPECT_ERR(HD_E_MISSING, "msg.from", "{" HDR ",'msg':{'channel':'email','to':['x@example.org']}}");
	EXPECT_ERR(HD_E_MISSING, "msg.to", "{" HDR ",'msg':{'channel':'email','from':'a@example.com'}}");
	EXPECT_ERR(HD_E_INVALID, "msg.to",
		   "{" HDR ",'msg':{'channel':'email','from':'a@example.com','to':[]}}");
	EXPECT_ERR(HD_E_MISSING, "msg.attachments[0].data",
		   "{" HDR ",'msg':{" EMAIL ",'attachments':[{'name':'a','type':'text/plain'}]}}");
	EXPECT_ERR(HD_E_MISSING, "msg.bulk.audience",
		   "{" HDR ",'msg':{" EMAIL ",'bulk':{'purpose':'p','recipient_count':1,'summary':'s'}}}");
	/* The smallest valid submission. */
	EXPECT_OK("{" HDR ",'msg':{" EMAIL "}}");
}

static void test_enumerated_values_must_be_known(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_INVALID, "msg.channel",
		   "{" HDR ",'msg':{'channel':'fax','from':'a@example.com','to':['x@example.org']}}");
	EXPECT_ERR(HD_E_INVALID, "msg.channel",
		   "{" HDR ",'msg':{'channel':'EMAIL','from':'a@example.com','to':['x@example.org']}}");
	EXPECT_ERR(HD_E_INVALID, "msg.flags[0]", "{" HDR ",'msg':{" EMAIL ",'flags':['urgent']}}");
	EXPECT_ERR(HD_E_INVALID, "msg.purpose",
		   "{" HDR ",'msg':{'channel':'sms','from':'a@example.com','to':['+8613800138000'],"
		   "'purpose':'none'}}");
	EXPECT_ERR(HD_E_INVALID, "msg.reply_by", "{" HDR ",'msg':{" EMAIL ",'reply_by':0}}");
	EXPECT_ERR(HD_E_INVALID, "msg.reply_by", "{" HDR ",'msg':{" EMAIL ",'reply_by':-5}}");
	EXPECT_ERR(HD_E_INVALID, "msg.reply_by",
		   "{" HDR ",'msg':{" EMAIL ",'reply_by':18446744073709551615}}");
	EXPECT_OK("{" HDR ",'msg':{" EMAIL ",'flags':['important','major','confidential','bulk',"
		  "'needs_reply']}}");
}

static void test_text_must_be_utf8_without_nul(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_INVALID, "msg.subject", "{" HDR ",'msg':{" EMAIL ",'subject':'\\xc0\\xaf'}}");
	EXPECT_ERR(HD_E_INVALID, "msg.body", "{" HDR ",'msg':{" EMAIL ",'body':'a\\x00b'}}");
	EXPECT_ERR(HD_E_INVALID, "msg.body", "{" HDR ",'msg':{" EMAIL ",'body':'\\xed\\xa0\\x80'}}");
	EXPECT_ERR(HD_E_INVALID, "msg.tags[0]", "{" HDR ",'msg':{" EMAIL ",'tags':{'k':'\\xff'}}}");
	EXPECT_ERR(HD_E_INVALID, "msg.tags[0]", "{" HDR ",'msg':{" EMAIL ",'tags':{'\\xff':'v'}}}");
	EXPECT_ERR(HD_E_INVALID, "msg.attachments[0].name",
		   "{" HDR ",'msg':{" EMAIL ",'attachments':[{'name':'\\xf4\\x90\\x80\\x80'}]}}");
	/* A NUL inside an address must not shorten it into a valid one. */
	EXPECT_ERR(HD_E_INVALID, "msg.to[0]",
		   "{" HDR ",'msg':{'channel':'email','from':'a@example.com','to':['x@example.org\\x00evil']}}");
	EXPECT_ERR(HD_E_INVALID, "msg.subject", "{" HDR ",'msg':{" EMAIL ",'subject':'a\\x0d\\x0aBcc: x'}}");
	EXPECT_OK("{" HDR ",'msg':{" EMAIL ",'subject':'[\\xe9\\x87\\x8d\\xe8\\xa6\\x81] ok',"
		  "'body':'\\xf0\\x9f\\x98\\x80\\x0a\\x09tabs and newlines are fine'}}");
}

static void test_attachment_names_and_types_are_checked(void **state)
{
	(void)state;
	static const char *const bad_names[] = {"'../etc/passwd'", "'a/b'", "'a\\\\b'", "'.'", "'..'",
						"'a\\x0ab'", "'a\\x7fb'", "'a\\xc2\\x85b'", "''"};
	for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
		EXPECT_ERR(HD_E_INVALID, "msg.attachments[0].name",
			   "{" HDR ",'msg':{" EMAIL ",'attachments':[{'name':%s,'type':'text/plain',"
			   "'data':b''}]}}", bad_names[i]);
	static const char *const bad_types[] = {"'text'", "'text/'", "'/plain'", "'text/plain; charset=utf-8'",
						"'text plain/x'", "'text/pl/ain'", "'-x/y'", "''"};
	for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++)
		EXPECT_ERR(HD_E_INVALID, "msg.attachments[0].type",
			   "{" HDR ",'msg':{" EMAIL ",'attachments':[{'name':'a','type':%s,"
			   "'data':b''}]}}", bad_types[i]);
	EXPECT_OK("{" HDR ",'msg':{" EMAIL ",'attachments':[{'data':b'\\x00','type':"
		  "'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',"
		  "'name':'\\xe6\\x8a\\xa5\\xe5\\x91\\x8a 2024.xlsx'}]}}");
}

/* ---- channel rules ------------------------------------------------------- */

static void test_addresses_are_checked_with_the_syntax_of_the_channel(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_INVALID, "msg.to[0]",
		   "{" HDR ",'msg':{'channel':'sms','from':'a@example.com','to':['x@example.org'],"
		   "'purpose':'service'}}");
	EXPECT_ERR(HD_E_INVALID, "msg.to[1]",
		   "{" HDR ",'msg':{'channel':'sms','from':'a@example.com','to':['+8613800138000',"
		   "'13800138000'],'purpose':'service'}}");
	EXPECT_ERR(HD_E_INVALID, "msg.to[0]",
		   "{" HDR ",'msg':{'channel':'im','from':'a@example.com','to':['+8613800138000']}}");
	EXPECT_ERR(HD_E_INVALID, "msg.to[0]",
		   "{" HDR ",'msg':{'channel':'email','from':'a@example.com','to':['ops-alerts']}}");
	EXPECT_ERR(HD_E_INVALID, "msg.cc[0]", "{" HDR ",'msg':{" EMAIL ",'cc':['nobody']}}");
	/* The sender is a staff mailbox on every channel. */
	EXPECT_ERR(HD_E_INVALID, "msg.from",
		   "{" HDR ",'msg':{'channel':'im','from':'ops-alerts','to':['ops-alerts']}}");
	EXPECT_ERR(HD_E_INVALID, "msg.from",
		   "{" HDR ",'msg':{'channel':'email','from':'','to':['x@example.org']}}");
	/* The channel may come after the addresses. */
	EXPECT_OK("{" HDR ",'msg':{'to':['+8613800138000'],'purpose':'urgent','from':'a@example.com',"
		  "'channel':'sms'}}");
	EXPECT_OK("{" HDR ",'msg':{" IM ",'body':'hi'}}");
	EXPECT_OK("{" HDR ",'msg':{" SMS ",'body':'hi'}}");
}

static void test_email_only_and_sms_only_fields_are_refused_elsewhere(void **state)
{
	(void)state;
	EXPECT_ERR(HD_E_INVALID, "msg.cc", "{" HDR ",'msg':{" SMS ",'cc':['c@example.com']}}");
	EXPECT_ERR(HD_E_INVALID, "msg.cc", "{" HDR ",'msg':{" IM ",'cc':[]}}");
	EXPECT_ERR(HD_E_INVALID, "msg.cc_reason", "{" HDR ",'msg':{" IM ",'cc_reason':'x'}}");
	EXPECT_ERR(HD_E_INVALID, "msg.html", "{" HDR ",'msg':{" IM ",'html':'<p>'}}");
	EXPECT_ERR(HD_E_INVALID, "msg.attachments",
		   "{" HDR ",'msg':{" SMS ",'attachments':[{'name':'a','type':'text/plain','data':b''}]}}");
	EXPECT_ERR(HD_E_INVALID, "msg.purpose", "{" HDR ",'msg':{" EMAIL ",'purpose':'service'}}");
	EXPECT_ERR(HD_E_INVALID, "msg.purpose", "{" HDR ",'msg':{" IM ",'purpose':'urgent'}}");
	EXPECT_ERR(HD_E_MISSING, "msg.purpose",
		   "{" HDR ",'msg':{'channel':'sms','from':'a@example.com','to':['+8613800138000']}}");
	EXPECT_OK("{" HDR ",'msg':{" EMAIL ",'cc':['c@example.com'],'cc_reason':'r','html':'<p>',"
		  "'attachments':[]}}");
}

/* ---- limits: at the limit accepted, one past it too_big ------------------ */

/* The frame at the limit decodes; the frame one past it is too_big at field. */
static void check_limit(const char *field, uint8_t *at, size_t at_len, uint8_t *over,
			size_t over_len)
{
	hd_request_t req;
	expect_ok_buf(at, at_len, &req, field);
	hd_request_clear(&req);
	expect_error_max(HD_E_TOOBIG, field, 0, over, over_len, field);
	free(at);
	free(over);
}

#define CHECK_TEXT_LIMIT(field, fmt, limit)                                       \
	do {                                                                      \
		size_t la_, lb_;                                                  \
		uint8_t *a_ = tf_mp(&la_, fmt, (int)(limit));                     \
		uint8_t *b_ = tf_mp(&lb_, fmt, (int)(limit) + 1);                 \
		check_limit((field), a_, la_, b_, lb_);                           \
	} while (0)

static void test_every_text_limit_accepts_the_limit_and_refuses_one_more_byte(void **state)
{
	(void)state;
	CHECK_TEXT_LIMIT("app", "{'v':1,'rid':7,'op':'submit','app':'a'*%d,'msg':{" EMAIL "}}",
			 HD_MAX_APP_BYTES);
	CHECK_TEXT_LIMIT("msg.subject", "{" HDR ",'msg':{" EMAIL ",'subject':'s'*%d}}",
			 HD_MAX_SUBJECT_BYTES);
	CHECK_TEXT_LIMIT("msg.body", "{" HDR ",'msg':{" EMAIL ",'body':'b'*%d}}", HD_MAX_BODY_BYTES);
	CHECK_TEXT_LIMIT("msg.html", "{" HDR ",'msg':{" EMAIL ",'html':'h'*%d}}", HD_MAX_HTML_BYTES);
	CHECK_TEXT_LIMIT("msg.cc_reason", "{" HDR ",'msg':{" EMAIL ",'cc_reason':'r'*%d}}",
			 HD_MAX_REASON_BYTES);
	CHECK_TEXT_LIMIT("msg.idempotency_key", "{" HDR ",'msg':{" EMAIL ",'idempotency_key':'k'*%d}}",
			 HD_MAX_IDEM_KEY_BYTES);
	CHECK_TEXT_LIMIT("msg.attachments[0].name",
			 "{" HDR ",'msg':{" EMAIL ",'attachments':[{'name':'n'*%d,'type':'text/plain',"
			 "'data':b''}]}}", HD_MAX_ATTACH_NAME_BYTES);
	/* type "x/" + subtype: the whole string counts. */
	CHECK_TEXT_LIMIT("msg.attachments[0].type",
			 "{" HDR ",'msg':{" EMAIL ",'attachments':[{'name':'n','type':'x/'+'y'*%d,"
			 "'data':b''}]}}", HD_MAX_MIME_BYTES - 2);
	CHECK_TEXT_LIMIT("msg.bulk.purpose",
			 "{" HDR ",'msg':{" EMAIL ",'bulk':{'purpose':'p'*%d,'audience':'a',"
			 "'recipient_count':1,'summary':'s'}}}", HD_MAX_BULK_TEXT_BYTES);
	CHECK_TEXT_LIMIT("msg.bulk.audience",
			 "{" HDR ",'msg':{" EMAIL ",'bulk':{'purpose':'p','audience':'a'*%d,"
			 "'recipient_count':1,'summary':'s'}}}", HD_MAX_BULK_TEXT_BYTES);
	CHECK_TEXT_LIMIT("msg.bulk.summary",
			 "{" HDR ",'msg':{" EMAIL ",'bulk':{'purpose':'p','audience':'a',"
			 "'recipient_count':1,'summary':'s'*%d}}}", HD_MAX_BULK_TEXT_BYTES);
	CHECK_TEXT_LIMIT("msg.tags[0]", "{" HDR ",'msg':{" EMAIL ",'tags':{'k'*%d:'v'}}}",
			 HD_MAX_TAG_KEY_BYTES);
	CHECK_TEXT_LIMIT("msg.tags[0]", "{" HDR ",'msg':{" EMAIL ",'tags':{'k':'v'*%d}}}",
			 HD_MAX_TAG_VALUE_BYTES);
	/* 64 + 1 + 189 = 254 bytes of valid address. */
	CHECK_TEXT_LIMIT("msg.from",
			 "{" HDR ",'msg':{'channel':'email','from':'l'*64+'@'+'d'*63+'.'+'e'*63+'.'+"
			 "'f'*%d,'to':['x@example.org']}}", HD_MAX_ADDR_BYTES - 64 - 1 - 64 - 64);
	CHECK_TEXT_LIMIT("msg.to[0]",
			 "{" HDR ",'msg':{'channel':'email','from':'a@example.com','to':['l'*64+'@'+"
			 "'d'*63+'.'+'e'*63+'.'+'f'*%d]}}", HD_MAX_ADDR_BYTES - 64 - 1 - 64 - 64);
	/* Texts that must not be empty. */
	EXPECT_ERR(HD_E_INVALID, "msg.idempotency_key", "{" HDR ",'msg':{" EMAIL ",'idempotency_key':''}}");
	EXPECT_ERR(HD_E_INVALID, "msg.tags[0]", "{" HDR ",'msg':{" EMAIL ",'tags':{'':'v'}}}");
	EXPECT_ERR(HD_E_INVALID, "msg.bulk.summary",
		   "{" HDR ",'msg':{" EMAIL ",'bulk':{'purpose':'p','audience':'a','recipient_count':1,"
		   "'summary':''}}}");
}

static void test_attachment_data_accepts_25_mib_and_refuses_one_byte_more(void **state)
{
	(void)state;
	CHECK_TEXT_LIMIT("msg.attachments[0].data",
			 "{" HDR ",'msg':{" EMAIL ",'attachments':[{'name':'n','type':'a/b',"
			 "'data':b'z'*%d}]}}", HD_MAX_ATTACH_BYTES);
}

static void test_array_and_map_counts_accept_the_limit_and_refuse_one_more(void **state)
{
	(void)state;
	for (int extra = 0; extra <= 1; extra++) {
		hd_request_t r = {.rid = 1, .op = HD_OP_SUBMIT, .app = strdup("a")};
		r.msg = hd_msg_new(HD_CHANNEL_EMAIL);
		r.msg->sender = strdup("a@example.com");
		hd_msg_add_to(r.msg, "x@example.org");
		for (unsigned i = 0; i < HD_MAX_ATTACHMENTS + (unsigned)extra; i++)
			hd_msg_add_attachment(r.msg, "f", "a/b", "x", 1);
		for (unsigned i = 0; i < HD_MAX_TAGS + (unsigned)extra; i++) {
			char k[16];
			snprintf(k, sizeof k, "k%u", i);
			hd_msg_add_tag(r.msg, k, "v");
		}
		uint8_t *buf;
		size_t len;
		assert_int_equal(hd_envelope_encode_request(&r, &buf, &len), HD_OK);
		if (!extra) {
			hd_request_t out;
			expect_ok_buf(buf, len, &out, "32 attachments, 32 tags");
			assert_int_equal(out.msg->attachment_count, HD_MAX_ATTACHMENTS);
			assert_int_equal(out.msg->tag_count, HD_MAX_TAGS);
			hd_request_clear(&out);
		} else {
			expect_error_max(HD_E_TOOBIG, "msg.attachments", 0, buf, len, "33 attachments");
		}
		free(buf);
		hd_request_clear(&r);
	}
	EXPECT_ERR(HD_E_TOOBIG, "msg.tags",
		   "{" HDR ",'msg':{" EMAIL ",'tags':{'a':'','b':'','c':'','d':'','e':'','f':'','g':'',"
		   "'h':'','i':'','j':'','k':'','l':'','m':'','n':'','o':'','p':'','q':'','r':'','s':'',"
		   "'t':'','u':'','v':'','w':'','x':'','y':'','z':'','A':'','B':'','C':'','D':'','E':'',"
		   "'F':'','G':''}}}");
	EXPECT_ERR(HD_E_TOOBIG, "msg.flags",
		   "{" HDR ",'msg':{" EMAIL ",'flags':['bulk','bulk','bulk','bulk','bulk','bulk','bulk',"
		   "'bulk','bulk']}}");
	EXPECT_OK("{" HDR ",'msg':{" EMAIL ",'bulk':{'purpose':'p','audience':'a',"
		  "'recipient_count':4294967295,'summary':'s'}}}");
	EXPECT_ERR(HD_E_TOOBIG, "msg.bulk.recipient_count",
		   "{" HDR ",'msg':{" EMAIL ",'bulk':{'purpose':'p','audience':'a',"
		   "'recipient_count':4294967296,'summary':'s'}}}");
}

static uint8_t *request_with_recipients(size_t to, size_t cc, size_t *len)
{
	hd_request_t r = {.rid = 77, .op = HD_OP_SUBMIT, .app = strdup("a")};
	r.msg = hd_msg_new(HD_CHANNEL_EMAIL);
	r.msg->sender = strdup("a@example.com");
	for (size_t i = 0; i < to; i++)
		hd_msg_add_to(r.msg, "x@example.org");
	for (size_t i = 0; i < cc; i++)
		hd_msg_add_cc(r.msg, "c@example.org");
	uint8_t *buf;
	assert_int_equal(hd_envelope_encode_request(&r, &buf, len), HD_OK);
	hd_request_clear(&r);
	return buf;
}

static void test_recipients_are_limited_by_to_plus_cc(void **state)
{
	(void)state;
	size_t len;
	hd_request_t out;
	uint8_t *buf = request_with_recipients(HD_MAX_RECIPIENTS, 0, &len);
	expect_ok_buf(buf, len, &out, "10000 recipients");
	assert_int_equal(hd_msg_recipient_count(out.msg), HD_MAX_RECIPIENTS);
	hd_request_clear(&out);
	free(buf);
	buf = request_with_recipients(HD_MAX_RECIPIENTS + 1, 0, &len);
	expect_error_max(HD_E_TOOBIG, "msg.to", 0, buf, len, "10001 recipients");
	free(buf);
	buf = request_with_recipients(HD_MAX_RECIPIENTS - 1, 2, &len);
	expect_error_max(HD_E_TOOBIG, "msg.cc", 0, buf, len, "9999 + 2 recipients");
	free(buf);

	/* A configured limit tightens the hard one; 0 means the hard one. */
	buf = request_with_recipients(2, 1, &len);
	hd_decode_error_t err;
	assert_int_equal(hd_envelope_decode_request(buf, len, 3, &out, &err), HD_OK);
	hd_request_clear(&out);
	expect_error_max(HD_E_TOOBIG, "msg.cc", 2, buf, len, "2 + 1 over 2");
	free(buf);
	/* cc before to: the second array is the one reported. */
	EXPECT_OK("{" HDR ",'msg':{'channel':'email','from':'a@example.com','cc':['c@example.com'],"
		  "'to':['x@example.org']}}");
	size_t l2;
	uint8_t *b2 = tf_mp(&l2, "{" HDR ",'msg':{'channel':'email','from':'a@example.com',"
			 "'cc':['c@example.com','d@example.com'],'to':['x@example.org']}}");
	expect_error_max(HD_E_TOOBIG, "msg.to", 2, b2, l2, "cc then to");
	free(b2);
	/* A larger configured limit cannot lift the hard one. */
	buf = request_with_recipients(HD_MAX_RECIPIENTS + 1, 0, &len);
	expect_error_max(HD_E_TOOBIG, "msg.to", 1000000, buf, len, "config above hard limit");
	free(buf);
}

/* ---- rid recovery -------------------------------------------------------- */

static uint64_t rid_of_bad(const char *notation)
{
	size_t len;
	uint8_t *buf = tf_mp(&len, "%s", notation);
	hd_request_t req;
	hd_decode_error_t err;
	int rc = hd_envelope_decode_request(buf, len, 0, &req, &err);
	assert_int_not_equal(rc, HD_OK);
	free(buf);
	return req.rid;
}

static void test_the_rid_is_recovered_from_otherwise_bad_requests(void **state)
{
	(void)state;
	assert_int_equal(rid_of_bad("{'v':1,'rid':9,'op':'nope'}"), 9);
	assert_int_equal(rid_of_bad("{'v':1,'op':'nope','rid':9}"), 9);
	assert_int_equal(rid_of_bad("{'bogus':[1,2,{'a':'b'}],'rid':9}"), 9);
	assert_int_equal(rid_of_bad("{1:2,'rid':9}"), 9);
	assert_int_equal(rid_of_bad("{" HDR ",'msg':{'channel':'fax'}}"), 7);
	assert_int_equal(rid_of_bad("{'msg':{'to':[1,2,3],'x':{'y':[4]}},'rid':12345678901}"),
			 12345678901ull);
	assert_int_equal(rid_of_bad("{'v':3,'rid':9}"), 9);
	assert_int_equal(rid_of_bad("{'v':1,'rid':9,'op':'ping'} nil"), 9);
	/* Unreadable rid: 0. */
	assert_int_equal(rid_of_bad("{'v':1,'rid':'9','op':'ping'}"), 0);
	assert_int_equal(rid_of_bad("{'v':1,'rid':-9,'op':'ping'}"), 0);
	assert_int_equal(rid_of_bad("[9]"), 0);
	assert_int_equal(rid_of_bad("{'v':1,'op':x'c1','rid':9}"), 0);
	/* Nesting deeper than the protocol allows stops the search. */
	assert_int_equal(rid_of_bad("{'x':[[[[[1]]]]],'rid':9}"), 0);
}

/* ---- replies ------------------------------------------------------------- */

static void test_an_ack_with_findings_survives_encode_then_decode(void **state)
{
	(void)state;
	hd_finding_t f[2] = {
		{"subject_tag", "E1", "tag", "minor", "prefixed [\xe9\x87\x8d\xe8\xa6\x81]", NULL},
		{"attachment_mention", "E3", "warn", "info", "body never names invoice.pdf", NULL},
	};
	hd_reply_t in = {.rid = UINT64_MAX, .ok = true, .id = 9007199254740993LL,
			 .klass = HD_CLASS_IMPORTANT, .duplicate = true, .findings = f,
			 .finding_count = 2};
	strcpy(in.state, "held");
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_reply(&in, &buf, &len), HD_OK);
	hd_reply_t out;
	hd_decode_error_t err;
	assert_int_equal(hd_envelope_decode_reply(buf, len, &out, &err), HD_OK);
	assert_true(out.ok);
	assert_false(out.pong);
	assert_true(out.rid == UINT64_MAX);
	assert_true(out.id == in.id);
	assert_int_equal(out.klass, HD_CLASS_IMPORTANT);
	assert_string_equal(out.state, "held");
	assert_true(out.duplicate);
	assert_int_equal(out.finding_count, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(out.findings[i].rule, f[i].rule);
		assert_string_equal(out.findings[i].clause, f[i].clause);
		assert_string_equal(out.findings[i].action, f[i].action);
		assert_string_equal(out.findings[i].severity, f[i].severity);
		assert_string_equal(out.findings[i].reason, f[i].reason);
	}
	/* Truncated replies are malformed too. */
	for (size_t cut = 0; cut < len; cut++) {
		hd_reply_t t;
		assert_int_equal(hd_envelope_decode_reply(buf, cut, &t, &err), HD_E_MALFORMED);
		assert_null(t.findings);
	}
	free(buf);
	hd_reply_clear(&out);
	assert_null(out.findings);
	hd_reply_clear(NULL);
}

static void test_a_policy_error_carries_the_findings_that_refused_it(void **state)
{
	(void)state;
	hd_finding_t f[1] = {
		{"prohibited-content", "G3.1", "reject", "major", "the body contains \"x\"", "msg.body"},
	};
	hd_reply_t in = {.rid = 7};
	hd_reply_set_error(&in, HD_E_POLICY, "msg.body", "the body contains \"x\"");
	in.findings = f;
	in.finding_count = 1;
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_reply(&in, &buf, &len), HD_OK);
	hd_reply_t out;
	hd_decode_error_t err;
	assert_int_equal(hd_envelope_decode_reply(buf, len, &out, &err), HD_OK);
	assert_false(out.ok);
	assert_int_equal(out.code, HD_E_POLICY);
	assert_string_equal(out.field, "msg.body");
	assert_false(out.retryable);
	assert_int_equal(out.finding_count, 1);
	assert_string_equal(out.findings[0].rule, "prohibited-content");
	assert_string_equal(out.findings[0].clause, "G3.1");
	assert_null(out.findings[0].field);  /* server side only: never encoded */
	hd_reply_clear(&out);
	free(buf);
	/* Without findings an ERROR has none, as before. */
	in.finding_count = 0;
	in.findings = NULL;
	assert_int_equal(hd_envelope_encode_reply(&in, &buf, &len), HD_OK);
	assert_int_equal(hd_envelope_decode_reply(buf, len, &out, &err), HD_OK);
	assert_int_equal(out.finding_count, 0);
	hd_reply_clear(&out);
	free(buf);
}

static void test_a_ping_ack_carries_only_v_rid_and_ok(void **state)
{
	(void)state;
	hd_reply_t in = {.rid = 5, .ok = true, .pong = true, .id = 99};
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_reply(&in, &buf, &len), HD_OK);
	static const uint8_t expect[] = {0x83, 0xa1, 'v', 0x01, 0xa3, 'r', 'i', 'd', 0x05,
					 0xa2, 'o', 'k', 0xc3};
	assert_int_equal(len, sizeof expect);
	assert_memory_equal(buf, expect, len);
	hd_reply_t out;
	assert_int_equal(hd_envelope_decode_reply(buf, len, &out, NULL), HD_OK);
	assert_true(out.ok);
	assert_true(out.pong);
	assert_int_equal(out.rid, 5);
	free(buf);
}

static void test_an_error_reply_survives_encode_then_decode(void **state)
{
	(void)state;
	hd_reply_t in = {.rid = 42};
	hd_reply_set_error(&in, HD_E_BUSY, "", "too many submissions waiting");
	in.retry_after_ms = 50;
	assert_false(in.ok);
	assert_true(in.retryable);
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_reply(&in, &buf, &len), HD_OK);
	hd_reply_t out;
	assert_int_equal(hd_envelope_decode_reply(buf, len, &out, NULL), HD_OK);
	assert_false(out.ok);
	assert_int_equal(out.rid, 42);
	assert_int_equal(out.code, HD_E_BUSY);
	assert_string_equal(out.field, "");
	assert_string_equal(out.reason, "too many submissions waiting");
	assert_true(out.retryable);
	assert_int_equal(out.retry_after_ms, 50);
	free(buf);

	hd_reply_set_error(&in, HD_E_INVALID, "msg.to[3]", NULL);
	assert_false(in.retryable);
	assert_int_equal(in.retry_after_ms, 0);
	assert_string_equal(in.reason, hd_strerror(HD_E_INVALID));
	assert_int_equal(hd_envelope_encode_reply(&in, &buf, &len), HD_OK);
	assert_int_equal(hd_envelope_decode_reply(buf, len, &out, NULL), HD_OK);
	assert_int_equal(out.code, HD_E_INVALID);
	assert_string_equal(out.field, "msg.to[3]");
	assert_false(out.retryable);
	assert_int_equal(out.retry_after_ms, 0);
	assert_null(tf_find_bytes(buf, len, "retry_after_ms", 14));
	free(buf);
}

static void test_set_error_cuts_and_cleans_text_to_valid_utf8(void **state)
{
	(void)state;
	hd_reply_t r = {0};
	char reason[600];
	memset(reason, 'a', sizeof reason);
	/* A 3-byte character straddling the 255-byte cut is dropped whole. */
	memcpy(reason + 254, "\xe9\x87\x8d", 3);
	reason[sizeof reason - 1] = '\0';
	hd_reply_set_error(&r, HD_E_POLICY, "bad\xff" "field", reason);
	assert_string_equal(r.field, "bad?field");
	assert_int_equal(strlen(r.reason), 254);
	assert_true(hd_msg_is_utf8(r.reason, strlen(r.reason)));
	/* Writing invalid bytes straight into the struct still encodes valid UTF-8. */
	strcpy(r.reason, "caf\xc3");
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_reply(&r, &buf, &len), HD_OK);
	hd_reply_t out;
	assert_int_equal(hd_envelope_decode_reply(buf, len, &out, NULL), HD_OK);
	assert_string_equal(out.reason, "caf?");
	free(buf);
}

static void test_encode_reply_caps_findings_and_unknown_codes(void **state)
{
	(void)state;
	size_t n = HD_MAX_FINDINGS + 6;
	hd_finding_t *f = calloc(n, sizeof *f);
	char *longtext = malloc(HD_MAX_FINDING_TEXT_BYTES + 10);
	memset(longtext, 'r', HD_MAX_FINDING_TEXT_BYTES + 9);
	longtext[HD_MAX_FINDING_TEXT_BYTES + 9] = '\0';
	for (size_t i = 0; i < n; i++)
		f[i] = (hd_finding_t){"rule", "G3.2", "warn", "info", longtext, NULL};
	f[1].clause = NULL; /* sent as "" */
	hd_reply_t in = {.rid = 1, .ok = true, .klass = HD_CLASS_GENERAL, .findings = f,
			 .finding_count = n};
	strcpy(in.state, "queued");
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_reply(&in, &buf, &len), HD_OK);
	hd_reply_t out;
	assert_int_equal(hd_envelope_decode_reply(buf, len, &out, NULL), HD_OK);
	assert_int_equal(out.finding_count, HD_MAX_FINDINGS);
	assert_int_equal(strlen(out.findings[0].reason), HD_MAX_FINDING_TEXT_BYTES);
	assert_string_equal(out.findings[1].clause, "");
	hd_reply_clear(&out);
	free(buf);
	free(f);
	free(longtext);

	hd_reply_t e = {.rid = 2, .ok = false, .code = 12345};
	assert_int_equal(hd_envelope_encode_reply(&e, &buf, &len), HD_OK);
	assert_int_equal(hd_envelope_decode_reply(buf, len, &out, NULL), HD_OK);
	assert_int_equal(out.code, HD_E_INTERNAL);
	free(buf);

	hd_reply_t bad = {.rid = 3, .ok = true};
	strcpy(bad.state, "sent");
	assert_int_equal(hd_envelope_encode_reply(&bad, &buf, &len), HD_E_INVALID);
}

static void expect_reply_error(int code, const char *field, const char *notation)
{
	size_t len;
	uint8_t *buf = tf_mp(&len, "%s", notation);
	hd_reply_t out;
	hd_decode_error_t err;
	int rc = hd_envelope_decode_reply(buf, len, &out, &err);
	if (rc != code || strcmp(err.field, field) != 0)
		fail_msg("%s: got %s field=\"%s\" (%s)", notation, hd_err_name(rc), err.field,
			 err.reason);
	assert_null(out.findings);
	free(buf);
}

static void test_reply_decoding_is_as_strict_as_request_decoding(void **state)
{
	(void)state;
#define ACK "'v':1,'rid':1,'ok':true,'id':5,'class':'general','state':'queued','duplicate':false"
#define ERR "'v':1,'rid':1,'ok':false,'code':'busy','field':'','reason':'r','retryable':true"
	expect_reply_error(HD_E_MISSING, "findings", "{" ACK "}");
	expect_reply_error(HD_E_MISSING, "retryable",
			   "{'v':1,'rid':1,'ok':false,'code':'busy','field':'','reason':'r'}");
	expect_reply_error(HD_E_INVALID, "code", "{" ACK ",'findings':[],'code':'busy'}");
	expect_reply_error(HD_E_INVALID, "state", "{" ERR ",'state':'held'}");
	expect_reply_error(HD_E_UNKNOWN_FIELD, "extra", "{" ERR ",'extra':1}");
	expect_reply_error(HD_E_UNKNOWN_FIELD, "findings[0].link",
			   "{" ACK ",'findings':[{'rule':'r','clause':'c','action':'a','severity':'s',"
			   "'reason':'x','link':'y'}]}");
	expect_reply_error(HD_E_MISSING, "findings[0].severity",
			   "{" ACK ",'findings':[{'rule':'r','clause':'c','action':'a','reason':'x'}]}");
	expect_reply_error(HD_E_INVALID, "state",
			   "{'v':1,'rid':1,'ok':true,'id':5,'class':'general','state':'sent',"
			   "'duplicate':false,'findings':[]}");
	expect_reply_error(HD_E_INVALID, "class",
			   "{'v':1,'rid':1,'ok':true,'id':5,'class':'urgent','state':'held',"
			   "'duplicate':false,'findings':[]}");
	expect_reply_error(HD_E_TYPE, "ok", "{'v':1,'rid':1,'ok':1}");
	expect_reply_error(HD_E_VERSION, "v", "{'v':2,'rid':1,'ok':true}");
	expect_reply_error(HD_E_MALFORMED, "", "{'v':1,'rid':1,'ok':true} nil");
	expect_reply_error(HD_E_TOOBIG, "field", "{'v':1,'rid':1,'ok':false,'code':'busy',"
			   "'field':'f'*96,'reason':'r','retryable':true}");
	expect_reply_error(HD_E_TOOBIG, "reason", "{'v':1,'rid':1,'ok':false,'code':'busy',"
			   "'field':'','reason':'r'*256,'retryable':true}");
	expect_reply_error(HD_E_INVALID, "duplicate", "{'v':1,'rid':1,'ok':false,'duplicate':true}");
	/* An unknown code name from a newer server still decodes, as internal. */
	size_t len;
	uint8_t *buf = tf_mp(&len, "{'v':1,'rid':1,'ok':false,'code':'quota','field':'',"
			  "'reason':'r','retryable':false}");
	hd_reply_t out;
	assert_int_equal(hd_envelope_decode_reply(buf, len, &out, NULL), HD_OK);
	assert_int_equal(out.code, HD_E_INTERNAL);
	free(buf);
	/* 65 findings are refused. */
	char *many = malloc(65 * 80 + 200);
	strcpy(many, "{" ACK ",'findings':[");
	for (int i = 0; i < 65; i++)
		strcat(many, i ? ",{'rule':'r','clause':'c','action':'a','severity':'s','reason':'x'}"
			       : "{'rule':'r','clause':'c','action':'a','severity':'s','reason':'x'}");
	strcat(many, "]}");
	expect_reply_error(HD_E_TOOBIG, "findings", many);
	free(many);
#undef ACK
#undef ERR
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_full_request_survives_encode_then_decode),
		cmocka_unit_test(test_sms_and_im_requests_survive_encode_then_decode),
		cmocka_unit_test(test_a_ping_encodes_to_the_documented_bytes),
		cmocka_unit_test(test_encode_refuses_requests_it_cannot_represent),
		cmocka_unit_test(test_a_frame_that_is_not_one_map_is_malformed),
		cmocka_unit_test(test_trailing_bytes_after_the_map_are_malformed),
		cmocka_unit_test(test_a_request_truncated_at_any_byte_is_malformed_and_keeps_its_rid),
		cmocka_unit_test(test_container_counts_larger_than_the_frame_are_refused_before_allocation),
		cmocka_unit_test(test_a_frame_over_the_hard_limit_is_too_big),
		cmocka_unit_test(test_top_level_fields_are_required_and_typed),
		cmocka_unit_test(test_a_different_version_is_reported_as_version_whatever_else_is_wrong),
		cmocka_unit_test(test_unknown_fields_are_refused_at_every_level),
		cmocka_unit_test(test_duplicate_keys_are_refused_at_every_level),
		cmocka_unit_test(test_every_message_field_checks_its_type),
		cmocka_unit_test(test_required_message_fields_are_reported_missing),
		cmocka_unit_test(test_enumerated_values_must_be_known),
		cmocka_unit_test(test_text_must_be_utf8_without_nul),
		cmocka_unit_test(test_attachment_names_and_types_are_checked),
		cmocka_unit_test(test_addresses_are_checked_with_the_syntax_of_the_channel),
		cmocka_unit_test(test_email_only_and_sms_only_fields_are_refused_elsewhere),
		cmocka_unit_test(test_every_text_limit_accepts_the_limit_and_refuses_one_more_byte),
		cmocka_unit_test(test_attachment_data_accepts_25_mib_and_refuses_one_byte_more),
		cmocka_unit_test(test_array_and_map_counts_accept_the_limit_and_refuse_one_more),
		cmocka_unit_test(test_recipients_are_limited_by_to_plus_cc),
		cmocka_unit_test(test_the_rid_is_recovered_from_otherwise_bad_requests),
		cmocka_unit_test(test_an_ack_with_findings_survives_encode_then_decode),
		cmocka_unit_test(test_a_policy_error_carries_the_findings_that_refused_it),
		cmocka_unit_test(test_a_ping_ack_carries_only_v_rid_and_ok),
		cmocka_unit_test(test_an_error_reply_survives_encode_then_decode),
		cmocka_unit_test(test_set_error_cuts_and_cleans_text_to_valid_utf8),
		cmocka_unit_test(test_encode_reply_caps_findings_and_unknown_codes),
		cmocka_unit_test(test_reply_decoding_is_as_strict_as_request_decoding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
