/*
 * NAME
 *	hd_wire - the broker <-> worker protocol (docs/PROTOCOL.md section 2)
 * DESCRIPTION
 *	One versioned codec shared by heraldd and herald-worker. Workers
 *	connect a DEALER socket to heraldd's dispatch ROUTER; every frame is
 *	one single-part msgpack map with "v" (HD_WIRE_VERSION) and "t" (the
 *	frame type). Like the producer codec, decoding checks every count
 *	and size before allocating, refuses unknown fields, wrong types and
 *	trailing bytes, and is all or nothing. The message content inside a
 *	JOB is the producer's msg map, encoded and decoded by hd_envelope.
 *	Nothing here logs.
 * OWNERSHIP
 *	Decoded frames own their contents; release them with
 *	hd_wire_frame_clear. Encoded buffers are owned by the caller (free()).
 */
#ifndef HD_WIRE_H
#define HD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_envelope.h"
#include "hd_limits.h"
#include "hd_msg.h"

#define HD_WIRE_VERSION          1
#define HD_WIRE_MAX_CHANNELS     3
#define HD_WIRE_MAX_CREDIT       10000u
#define HD_WIRE_MAX_NAME_BYTES   64u     /* worker name, provider name */
#define HD_WIRE_MAX_CODE_BYTES   64u     /* provider code, e.g. "550" or "errcode=45009" */
#define HD_WIRE_MAX_DETAIL_BYTES 1024u   /* provider text */
#define HD_WIRE_MAX_ID_BYTES     256u    /* provider message id */
/* Added by the worker side (docs/PROTOCOL.md section 2.8): */
/* A JOB: a producer-sized msg, its confidential parts sealed (hd_limits.h), + delivery fields. */
#define HD_WIRE_MAX_FRAME_BYTES  (HD_MAX_FRAME_BYTES + HD_MAX_SEAL_GROWTH_BYTES + 65536u)
#define HD_WIRE_MIN_HEARTBEAT_MS 10u
#define HD_WIRE_MAX_HEARTBEAT_MS 60000u
#define HD_WIRE_MAX_LEASE_MS     86400000u   /* one day */
#define HD_WIRE_MAX_RETRY_AFTER_MS 604800000 /* one week; the encoder clamps longer hints */

typedef enum {
	HD_WIRE_READY,      /* worker -> broker: channels served, credit */
	HD_WIRE_JOB,        /* broker -> worker: one delivery to attempt */
	HD_WIRE_RESULT,     /* worker -> broker: the outcome of one job */
	HD_WIRE_HEARTBEAT,  /* both ways */
	HD_WIRE_BYE         /* either side is going away */
} hd_wire_type_t;

typedef enum {
	HD_OUTCOME_DELIVERED,  /* accepted by the provider */
	HD_OUTCOME_RETRY,      /* temporary failure: try again later */
	HD_OUTCOME_FAILED      /* permanent failure: dead letter */
} hd_outcome_kind_t;

typedef struct hd_wire_ready {
	char name[HD_WIRE_MAX_NAME_BYTES + 1];  /* worker name, for logs and stats */
	unsigned channels;                      /* bit (1u << hd_channel_t) per channel */
	uint32_t credit;                        /* jobs it may hold at once, 1..HD_WIRE_MAX_CREDIT */
	uint32_t heartbeat_ms;                  /* the worker's beat; dead after 3 missed */
} hd_wire_ready_t;

typedef struct hd_wire_job {
	int64_t delivery_id;
	int64_t message_id;
	uint32_t attempt;             /* 1 for the first attempt */
	uint32_t lease_ms;            /* the broker reclaims the job after this */
	char *recipient;              /* the one address of this delivery; owned */
	char *kind;                   /* "to" | "cc"; owned */
	char *endpoint;               /* IM: the worker's endpoint entry for the recipient's
	                               * registered group; NULL = look the recipient up; owned */
	hd_class_t klass;
	hd_msg_t *msg;                /* the whole message (all to/cc for headers); owned */
} hd_wire_job_t;

typedef struct hd_wire_result {
	int64_t delivery_id;
	uint32_t attempt;             /* echoed from the JOB */
	hd_outcome_kind_t outcome;
	int64_t retry_after_ms;       /* RETRY: provider's Retry-After; 0 = none */
	char provider[HD_WIRE_MAX_NAME_BYTES + 1];        /* e.g. "smtp", "slack", "kannel" */
	char provider_code[HD_WIRE_MAX_CODE_BYTES + 1];   /* e.g. "250", "451", "429" */
	char detail[HD_WIRE_MAX_DETAIL_BYTES + 1];        /* provider text, UTF-8 */
	char provider_id[HD_WIRE_MAX_ID_BYTES + 1];       /* provider's message id if any */
} hd_wire_result_t;

typedef struct hd_wire_frame {
	hd_wire_type_t type;
	union {
		hd_wire_ready_t ready;
		hd_wire_job_t job;
		hd_wire_result_t result;
	} u;
} hd_wire_frame_t;

/* Static names: "ready", "job", ...; "delivered", "retry", "failed". */
const char *hd_wire_type_name(hd_wire_type_t type);
const char *hd_outcome_name(hd_outcome_kind_t outcome);

/*
 * Decode one frame. Returns 0 and fills *out (caller clears it), or an
 * HD_E_* code with err filled and *out left empty.
 */
int hd_wire_decode(const uint8_t *buf, size_t len, hd_wire_frame_t *out, hd_decode_error_t *err);

/* Encode a frame. Caller owns *buf (free()). Returns 0 or HD_E_INVALID. */
int hd_wire_encode(const hd_wire_frame_t *frame, uint8_t **buf, size_t *len);

/* Free what a decoded JOB owns; NULL-safe; leaves the frame zeroed. */
void hd_wire_frame_clear(hd_wire_frame_t *frame);

/*
 * After hd_wire_decode failed: when buf is a map whose readable top-level
 * entries include t:"job", a delivery_id > 0 and an attempt 1..2^32-1,
 * return true with both, so a worker can answer a JOB it cannot decode
 * (e.g. an invalid address inside msg) with RESULT failed instead of
 * letting its lease expire and the broker send it again forever.
 */
bool hd_wire_peek_job(const uint8_t *buf, size_t len, int64_t *delivery_id, uint32_t *attempt);

#endif
