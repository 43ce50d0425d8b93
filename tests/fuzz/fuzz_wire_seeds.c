/*
 * NAME
 *	fuzz_wire_seeds - write a seed corpus of valid broker <-> worker frames
 * DESCRIPTION
 *	Usage: fuzz_wire_seeds DIR. Writes one frame of every type (JOBs for
 *	every channel, one with a message using every field; RESULTs with
 *	and without their optional keys), encoded by hd_wire itself, one
 *	file per frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_err.h"
#include "hd_wire.h"

static int write_frame(const char *dir, const char *name, const hd_wire_frame_t *f)
{
	uint8_t *buf;
	size_t len;
	if (hd_wire_encode(f, &buf, &len) != HD_OK) {
		fprintf(stderr, "%s: cannot encode\n", name);
		return -1;
	}
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *out = fopen(path, "wb");
	int rc = 0;
	if (!out || fwrite(buf, 1, len, out) != len || fclose(out) != 0) {
		perror(path);
		rc = -1;
	}
	free(buf);
	return rc;
}

static hd_wire_frame_t job(hd_channel_t ch, const char *to)
{
	hd_wire_frame_t f = {.type = HD_WIRE_JOB};
	f.u.job.delivery_id = 17;
	f.u.job.message_id = 9;
	f.u.job.attempt = 1;
	f.u.job.lease_ms = 60000;
	f.u.job.recipient = strdup(to);
	f.u.job.kind = strdup("to");
	f.u.job.klass = HD_CLASS_GENERAL;
	hd_msg_t *m = hd_msg_new(ch);
	m->sender = strdup("sender@corp.example");
	hd_msg_add_to(m, to);
	m->body = strdup("body");
	if (ch == HD_CHANNEL_SMS)
		m->purpose = HD_PURPOSE_URGENT;
	f.u.job.msg = m;
	return f;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	int rc = 0;

	hd_wire_frame_t f = {.type = HD_WIRE_READY};
	strcpy(f.u.ready.name, "seed-worker");
	f.u.ready.channels = 7;
	f.u.ready.credit = 64;
	f.u.ready.heartbeat_ms = 1000;
	rc |= write_frame(dir, "ready", &f);

	f = job(HD_CHANNEL_EMAIL, "a@corp.example");
	hd_msg_t *m = f.u.job.msg;
	hd_msg_add_to(m, "\"b c\"@[10.1.2.3]");
	hd_msg_add_cc(m, "c@corp.example");
	m->cc_reason = strdup("reason");
	m->subject = strdup("subject");
	m->html = strdup("<p>x</p>");
	hd_msg_add_attachment(m, "a.pdf", "application/pdf", "%PDF\0\1", 6);
	m->flags = 0x1f;
	m->reply_by = 1767225600;
	hd_msg_set_bulk(m, "purpose", "audience", 100, "summary");
	m->idempotency_key = strdup("key-1");
	hd_msg_add_tag(m, "k", "v");
	free(f.u.job.kind);
	f.u.job.kind = strdup("cc");
	free(f.u.job.recipient);
	f.u.job.recipient = strdup("c@corp.example");
	rc |= write_frame(dir, "job-email-full", &f);
	hd_wire_frame_clear(&f);
	f = job(HD_CHANNEL_SMS, "+8613800138000");
	rc |= write_frame(dir, "job-sms", &f);
	hd_wire_frame_clear(&f);
	f = job(HD_CHANNEL_IM, "ops-alerts");
	rc |= write_frame(dir, "job-im", &f);
	f.u.job.endpoint = strdup("ops-hook");
	rc |= write_frame(dir, "job-im-endpoint", &f);
	hd_wire_frame_clear(&f);

	f = (hd_wire_frame_t){.type = HD_WIRE_RESULT};
	f.u.result.delivery_id = 17;
	f.u.result.attempt = 2;
	f.u.result.outcome = HD_OUTCOME_RETRY;
	f.u.result.retry_after_ms = 30000;
	strcpy(f.u.result.provider, "smtp");
	strcpy(f.u.result.provider_code, "451");
	strcpy(f.u.result.detail, "try later");
	strcpy(f.u.result.provider_id, "id-1");
	rc |= write_frame(dir, "result-retry", &f);
	f.u.result.outcome = HD_OUTCOME_DELIVERED;
	f.u.result.provider_id[0] = '\0';
	rc |= write_frame(dir, "result-delivered", &f);

	f = (hd_wire_frame_t){.type = HD_WIRE_HEARTBEAT};
	rc |= write_frame(dir, "hb", &f);
	f.type = HD_WIRE_BYE;
	rc |= write_frame(dir, "bye", &f);
	return rc ? 1 : 0;
}
