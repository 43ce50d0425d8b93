/*
 * NAME
 *	fuzz_envelope - libFuzzer harness for the producer wire codec
 * DESCRIPTION
 *	Feeds arbitrary bytes to hd_envelope_decode_request and
 *	hd_envelope_decode_reply. Whatever decodes must re-encode, decode
 *	again to the same request (rid, op, app, recipient counts) and
 *	re-encode to the same bytes; whatever fails must leave the output
 *	empty and still yield an ERROR reply the client side can decode.
 *	Any violated invariant aborts, which libFuzzer reports as a crash.
 *	Built and run by tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_envelope.h"
#include "hd_err.h"
#include "hd_limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, \
				__FILE__, __LINE__);                             \
			abort();                                                 \
		}                                                                \
	} while (0)

static void check_request_round_trip(const hd_request_t *req)
{
	CHECK(req->version == HD_PROTOCOL_VERSION);
	if (req->op == HD_OP_SUBMIT) {
		CHECK(req->app != NULL && req->msg != NULL);
		CHECK(req->msg->to_count >= 1);
		CHECK(hd_msg_recipient_count(req->msg) <= HD_MAX_RECIPIENTS);
		for (size_t i = 0; i < req->msg->to_count; i++)
			CHECK(hd_msg_check_address(req->msg->channel, req->msg->to[i], NULL) == HD_OK);
	} else {
		CHECK(req->msg == NULL);
	}
	uint8_t *buf1 = NULL, *buf2 = NULL;
	size_t len1 = 0, len2 = 0;
	CHECK(hd_envelope_encode_request(req, &buf1, &len1) == HD_OK);
	hd_request_t again;
	hd_decode_error_t err;
	int rc = hd_envelope_decode_request(buf1, len1, 0, &again, &err);
	if (rc != HD_OK)
		fprintf(stderr, "re-decode failed: %s %s %s\n", hd_err_name(rc), err.field, err.reason);
	CHECK(rc == HD_OK);
	CHECK(again.rid == req->rid);
	CHECK(again.op == req->op);
	CHECK((again.app == NULL) == (req->app == NULL));
	CHECK(!again.app || strcmp(again.app, req->app) == 0);
	if (req->msg) {
		CHECK(again.msg->to_count == req->msg->to_count);
		CHECK(again.msg->cc_count == req->msg->cc_count);
		CHECK(again.msg->attachment_count == req->msg->attachment_count);
		CHECK(again.msg->tag_count == req->msg->tag_count);
		CHECK(again.msg->flags == req->msg->flags);
	}
	/* The encoder is canonical: a second trip gives the same bytes. */
	CHECK(hd_envelope_encode_request(&again, &buf2, &len2) == HD_OK);
	CHECK(len2 == len1 && memcmp(buf1, buf2, len1) == 0);
	hd_request_clear(&again);
	free(buf1);
	free(buf2);
}

static void check_error_is_answerable(int rc, const hd_request_t *req,
				      const hd_decode_error_t *err)
{
	CHECK(rc < 0 && err->code == rc);
	CHECK(req->msg == NULL && req->app == NULL);
	CHECK(memchr(err->field, '\0', sizeof err->field) != NULL);
	CHECK(memchr(err->reason, '\0', sizeof err->reason) != NULL);
	CHECK(strlen(err->reason) > 0);
	/* The server must always be able to send, and the client to read, the ERROR. */
	hd_reply_t reply;
	memset(&reply, 0, sizeof reply);
	reply.rid = req->rid;
	hd_reply_set_error(&reply, rc, err->field, err->reason);
	uint8_t *buf = NULL;
	size_t len = 0;
	CHECK(hd_envelope_encode_reply(&reply, &buf, &len) == HD_OK);
	hd_reply_t back;
	hd_decode_error_t derr;
	CHECK(hd_envelope_decode_reply(buf, len, &back, &derr) == HD_OK);
	CHECK(!back.ok && back.rid == req->rid && back.code == rc);
	CHECK(strcmp(back.field, reply.field) == 0);
	hd_reply_clear(&back);
	free(buf);
}

static void check_reply(const uint8_t *data, size_t size)
{
	hd_reply_t rep;
	hd_decode_error_t err;
	if (hd_envelope_decode_reply(data, size, &rep, &err) != HD_OK) {
		CHECK(rep.findings == NULL);
		return;
	}
	uint8_t *buf = NULL;
	size_t len = 0;
	CHECK(hd_envelope_encode_reply(&rep, &buf, &len) == HD_OK);
	hd_reply_t again;
	CHECK(hd_envelope_decode_reply(buf, len, &again, &err) == HD_OK);
	CHECK(again.rid == rep.rid && again.ok == rep.ok && again.pong == rep.pong);
	CHECK(again.finding_count == rep.finding_count);
	if (!rep.ok)
		CHECK(again.code == rep.code && strcmp(again.reason, rep.reason) == 0);
	hd_reply_clear(&again);
	hd_reply_clear(&rep);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hd_request_t req;
	hd_decode_error_t err;
	int rc = hd_envelope_decode_request(data, size, 0, &req, &err);
	if (rc == HD_OK)
		check_request_round_trip(&req);
	else
		check_error_is_answerable(rc, &req, &err);
	hd_request_clear(&req);
	check_reply(data, size);
	return 0;
}
