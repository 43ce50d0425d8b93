/*
 * NAME
 *	fuzz_envelope_seeds - write a seed corpus of valid frames
 * DESCRIPTION
 *	Usage: fuzz_envelope_seeds DIR. Writes requests for every channel
 *	and every optional field, a ping, and each kind of reply, encoded
 *	by hd_envelope itself, one file per frame, so the fuzzer starts from
 *	inputs that reach deep into the decoder.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_envelope.h"
#include "hd_err.h"

static int write_frame(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

static int write_request(const char *dir, const char *name, hd_request_t *req)
{
	uint8_t *buf;
	size_t len;
	if (hd_envelope_encode_request(req, &buf, &len) != HD_OK) {
		fprintf(stderr, "%s: cannot encode\n", name);
		return -1;
	}
	int rc = write_frame(dir, name, buf, len);
	free(buf);
	hd_request_clear(req);
	return rc;
}

static int write_reply(const char *dir, const char *name, const hd_reply_t *reply)
{
	uint8_t *buf;
	size_t len;
	if (hd_envelope_encode_reply(reply, &buf, &len) != HD_OK)
		return -1;
	int rc = write_frame(dir, name, buf, len);
	free(buf);
	return rc;
}

static hd_request_t submit(hd_channel_t ch, const char *to)
{
	hd_request_t r = {.rid = 1000, .op = HD_OP_SUBMIT};
	r.app = strdup("seed-app");
	r.msg = hd_msg_new(ch);
	r.msg->sender = strdup("sender@corp.example");
	hd_msg_add_to(r.msg, to);
	r.msg->body = strdup("body");
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	int rc = 0;

	hd_request_t r = submit(HD_CHANNEL_EMAIL, "a@corp.example");
	hd_msg_t *m = r.msg;
	hd_msg_add_to(m, "\"b c\"@[10.1.2.3]");
	hd_msg_add_cc(m, "c@corp.example");
	m->cc_reason = strdup("reason");
	m->subject = strdup("[\xe9\x87\x8d\xe8\xa6\x81] subject");
	m->html = strdup("<p>x</p>");
	hd_msg_add_attachment(m, "a.pdf", "application/pdf", "%PDF\0\1", 6);
	m->flags = 0x1f;
	m->reply_by = 1767225600;
	hd_msg_set_bulk(m, "purpose", "audience", 100, "summary");
	m->idempotency_key = strdup("key-1");
	hd_msg_add_tag(m, "k", "v");
	rc |= write_request(dir, "email-full", &r);

	r = submit(HD_CHANNEL_EMAIL, "x@y.example");
	rc |= write_request(dir, "email-min", &r);
	r = submit(HD_CHANNEL_SMS, "+8613800138000");
	r.msg->purpose = HD_PURPOSE_MARKETING;
	rc |= write_request(dir, "sms", &r);
	r = submit(HD_CHANNEL_IM, "ops-alerts");
	r.msg->flags = HD_FLAG_IMPORTANT;
	rc |= write_request(dir, "im", &r);
	r = (hd_request_t){.rid = 7, .op = HD_OP_PING};
	rc |= write_request(dir, "ping", &r);
	r = (hd_request_t){.rid = 8, .op = HD_OP_PING, .app = strdup("monitor")};
	rc |= write_request(dir, "ping-app", &r);

	hd_finding_t f = {"rule", "E1", "tag", "minor", "reason"};
	hd_reply_t ack = {.rid = 1, .ok = true, .id = 42, .klass = HD_CLASS_IMPORTANT,
			  .duplicate = true, .findings = &f, .finding_count = 1};
	strcpy(ack.state, "held");
	rc |= write_reply(dir, "reply-ack", &ack);
	hd_reply_t pong = {.rid = 2, .ok = true, .pong = true};
	rc |= write_reply(dir, "reply-pong", &pong);
	hd_reply_t error = {.rid = 3};
	hd_reply_set_error(&error, HD_E_BUSY, "msg.to[0]", "busy");
	error.retry_after_ms = 50;
	rc |= write_reply(dir, "reply-error", &error);
	return rc ? 1 : 0;
}
