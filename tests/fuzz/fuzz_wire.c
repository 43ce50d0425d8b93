/*
 * NAME
 *	fuzz_wire - libFuzzer harness for the broker <-> worker codec
 * DESCRIPTION
 *	Feeds arbitrary bytes to hd_wire_decode. Whatever decodes must
 *	satisfy the protocol's invariants (a JOB's recipient is among its
 *	message's recipients of its kind, limits hold), re-encode, decode
 *	again to the same frame and re-encode to the same bytes; whatever
 *	fails must leave the frame empty with a code, a field and a reason,
 *	and hd_wire_peek_job must only ever report usable ids. Any violated
 *	invariant aborts, which libFuzzer reports as a crash. Built and run
 *	by tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_err.h"
#include "hd_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, \
				__FILE__, __LINE__);                             \
			abort();                                                 \
		}                                                                \
	} while (0)

static bool listed(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

static void check_frame(const hd_wire_frame_t *f)
{
	switch (f->type) {
	case HD_WIRE_READY:
		CHECK(f->u.ready.credit >= 1 && f->u.ready.credit <= HD_WIRE_MAX_CREDIT);
		CHECK(f->u.ready.channels != 0 && (f->u.ready.channels & ~7u) == 0);
		CHECK(strlen(f->u.ready.name) >= 1);
		break;
	case HD_WIRE_JOB: {
		const hd_wire_job_t *j = &f->u.job;
		CHECK(j->delivery_id > 0 && j->message_id > 0 && j->attempt >= 1);
		CHECK(j->msg && j->recipient && j->kind);
		bool to = strcmp(j->kind, "to") == 0;
		CHECK(to || strcmp(j->kind, "cc") == 0);
		CHECK(to ? listed(j->msg->to, j->msg->to_count, j->recipient)
			 : listed(j->msg->cc, j->msg->cc_count, j->recipient));
		break;
	}
	case HD_WIRE_RESULT:
		CHECK(f->u.result.delivery_id > 0 && f->u.result.attempt >= 1);
		CHECK(f->u.result.retry_after_ms == 0 || f->u.result.outcome == HD_OUTCOME_RETRY);
		CHECK(strlen(f->u.result.provider) >= 1);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hd_wire_frame_t f;
	hd_decode_error_t err;
	int rc = hd_wire_decode(data, size, &f, &err);
	int64_t id;
	uint32_t attempt;
	if (hd_wire_peek_job(data, size, &id, &attempt))
		CHECK(id > 0 && attempt >= 1);
	if (rc != HD_OK) {
		CHECK(rc < 0 && err.code == rc);
		CHECK(f.type == 0 && f.u.job.msg == NULL && f.u.job.recipient == NULL);
		CHECK(memchr(err.field, '\0', sizeof err.field) != NULL);
		CHECK(memchr(err.reason, '\0', sizeof err.reason) != NULL);
		CHECK(strlen(err.reason) > 0);
		return 0;
	}
	check_frame(&f);
	uint8_t *buf1 = NULL, *buf2 = NULL;
	size_t len1 = 0, len2 = 0;
	CHECK(hd_wire_encode(&f, &buf1, &len1) == HD_OK);
	hd_wire_frame_t again;
	rc = hd_wire_decode(buf1, len1, &again, &err);
	if (rc != HD_OK)
		fprintf(stderr, "re-decode failed: %s %s %s\n", hd_err_name(rc), err.field, err.reason);
	CHECK(rc == HD_OK);
	CHECK(again.type == f.type);
	/* The encoder is canonical: a second trip gives the same bytes. */
	CHECK(hd_wire_encode(&again, &buf2, &len2) == HD_OK);
	CHECK(len2 == len1 && memcmp(buf1, buf2, len1) == 0);
	hd_wire_frame_clear(&again);
	hd_wire_frame_clear(&f);
	free(buf1);
	free(buf2);
	return 0;
}
