/*
 * NAME
 *	hd_envelope - the producer wire codec (docs/PROTOCOL.md, version 1)
 * DESCRIPTION
 *	The one place where producer bytes become a request and where
 *	replies become bytes, used by heraldd and libherald alike.
 *	Decoding is all or nothing: every count and length is checked
 *	against hd_limits.h before anything is allocated, unknown fields,
 *	wrong types, invalid UTF-8, invalid addresses and trailing bytes are
 *	refused with a code, a field path ("msg.to[3]") and a reason.
 *	Encoding uses msgpack-c. Nothing here logs.
 * OWNERSHIP
 *	Decoded requests and replies own their contents; clear them with
 *	hd_request_clear / hd_reply_clear. Encoded buffers are owned by the
 *	caller (free with free()).
 */
#ifndef HD_ENVELOPE_H
#define HD_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_mpack.h"
#include "hd_msg.h"

struct msgpack_packer;

typedef enum { HD_OP_SUBMIT, HD_OP_PING } hd_op_t;

typedef struct hd_request {
	uint32_t version;  /* always HD_PROTOCOL_VERSION once decoded */
	uint64_t rid;      /* producer's request id, echoed in the reply */
	hd_op_t op;
	char *app;         /* application name; owned */
	hd_msg_t *msg;     /* owned; NULL for HD_OP_PING */
} hd_request_t;

/* Why a decode failed. field is a path into the request, "" for the frame. */
typedef struct hd_decode_error {
	int code;          /* HD_E_* */
	char field[96];
	char reason[192];
} hd_decode_error_t;

/*
 * Ceilings of the ACK's findings list. hd_envelope_encode_reply sends at
 * most HD_MAX_FINDINGS findings and cuts each text to
 * HD_MAX_FINDING_TEXT_BYTES (at a UTF-8 boundary) rather than fail an
 * ACK for a row that is already committed; the decoder refuses more.
 */
#define HD_MAX_FINDINGS           64u
#define HD_MAX_FINDING_TEXT_BYTES 1024u

/*
 * One policy finding carried in an ACK, or in the ERROR of a submission
 * the policy refused (filled by the policy module).
 */
typedef struct hd_finding {
	char *rule;
	char *clause;      /* POLICY.md clause ID, e.g. "E1" */
	char *action;      /* reject | hold | tag | defer | warn */
	char *severity;    /* info | minor | major | critical */
	char *reason;
	char *field;       /* server side only: the request field at fault
			    * (stored with violations); never on the wire, NULL
			    * after decoding */
} hd_finding_t;

typedef struct hd_reply {
	uint64_t rid;
	bool ok;                  /* true: ACK, false: ERROR */
	bool pong;                /* ACK to a ping: only v, rid and ok are encoded */
	/* ACK */
	int64_t id;               /* message id */
	hd_class_t klass;
	char state[16];           /* "queued" | "held" */
	bool duplicate;           /* an idempotent resend answered from the store */
	hd_finding_t *findings;   /* owned; also in an ERROR the policy decided */
	size_t finding_count;
	/* ERROR */
	int code;                 /* HD_E_* */
	char field[96];
	char reason[256];
	bool retryable;
	int64_t retry_after_ms;   /* hint for retryable errors; 0 = none */
} hd_reply_t;

/*
 * Decode one request frame. On success returns 0 and fills *out (caller
 * clears it). On failure returns the HD_E_* code, fills *err, leaves
 * *out empty except out->rid, which holds the request id whenever the
 * frame was a map with a readable "rid", so the error can be matched.
 * max_recipients may tighten HD_MAX_RECIPIENTS (0 = hard limit);
 * frames over HD_MAX_FRAME_BYTES are refused (too_big); a tighter frame
 * limit is ZeroMQ's ZMQ_MAXMSGSIZE on the socket. A "v" other than 1
 * anywhere in a readable top-level map wins over any other error
 * (HD_E_VERSION), so old servers answer new clients clearly.
 */
int hd_envelope_decode_request(const uint8_t *buf, size_t len,
			       size_t max_recipients, hd_request_t *out,
			       hd_decode_error_t *err);

/*
 * The message map of a request (section 1.3), on its own, for other
 * frames that carry a message (the worker protocol's JOB, hd_wire).
 * hd_envelope_decode_msg reads one msg map at r's cursor with exactly
 * the rules of a request's "msg" (limits, channel rules, addresses;
 * max_recipients as for requests, 0 = hard limit); error field paths
 * start with "msg" ("msg.to[3]") and byte offsets in reasons count from
 * base (the start of the frame; NULL = the cursor). On success returns
 * 0, moves r past the map and gives the caller *out; on failure returns
 * the HD_E_* code with err filled, leaves r unchanged and *out NULL.
 */
int hd_envelope_decode_msg(hd_mpack_reader_t *r, const uint8_t *base, size_t max_recipients,
			   hd_msg_t **out, hd_decode_error_t *err);

/*
 * hd_envelope_decode_msg for a message read back from the store (the
 * worker protocol's JOB): body, html and attachment data that are
 * sealed at rest (hd_seal, POLICY K2) may be up to
 * HD_MAX_SEALED_BODY_BYTES, HD_MAX_SEALED_HTML_BYTES and
 * HD_MAX_SEALED_ATTACH_BYTES; everything else as for a producer.
 */
int hd_envelope_decode_stored_msg(hd_mpack_reader_t *r, const uint8_t *base,
				  size_t max_recipients, hd_msg_t **out, hd_decode_error_t *err);

/*
 * Append msg as one msgpack map (section 1.3) to pk, a msgpack-c packer
 * the caller owns, byte for byte as hd_envelope_encode_request encodes
 * its "msg". Returns 0, HD_E_INVALID when msg cannot be represented
 * (NULL strings, unknown enum values; nothing was written), or HD_E_IO
 * when pk's write callback failed (the output is then incomplete).
 */
int hd_envelope_encode_msg(struct msgpack_packer *pk, const hd_msg_t *msg);

/* A buffer size that usually holds msg encoded, for pre-sizing (bytes). */
size_t hd_envelope_msg_size_hint(const hd_msg_t *msg);

/* Free what a decoded request owns; NULL-safe, leaves it zeroed. */
void hd_request_clear(hd_request_t *req);

/* Encode a request. Caller owns *buf (free()). Returns 0 or HD_E_INVALID. */
int hd_envelope_encode_request(const hd_request_t *req, uint8_t **buf, size_t *len);

/*
 * Encode a reply. Caller owns *buf (free()). An ACK with pong set is
 * encoded as {v, rid, ok:true} only; an ERROR whose code is not an
 * HD_E_* code goes out as "internal"; field and reason are sent as
 * valid UTF-8 (bad bytes become '?'). Returns 0, or HD_E_INVALID when
 * a (non-pong) ACK's state is not "queued"/"held" or its class is unknown.
 */
int hd_envelope_encode_reply(const hd_reply_t *reply, uint8_t **buf, size_t *len);

/* Decode a reply (client side), with the same strictness as requests. */
int hd_envelope_decode_reply(const uint8_t *buf, size_t len, hd_reply_t *out,
			     hd_decode_error_t *err);

/* Free what a reply owns (findings); NULL-safe, leaves it zeroed. */
void hd_reply_clear(hd_reply_t *reply);

/*
 * Fill an ERROR reply from a decode error (copies strings, sets retryable).
 * Sets ok=false, code, field (NULL = ""), reason (NULL = hd_strerror(code)),
 * both cut to their buffers at a UTF-8 boundary with bad bytes as '?',
 * retryable = hd_err_is_retryable(code) and retry_after_ms = 0 (set it
 * afterwards). Leaves rid and any findings alone.
 */
void hd_reply_set_error(hd_reply_t *reply, int code, const char *field,
			const char *reason);

#endif
