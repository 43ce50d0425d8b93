/*
 * NAME
 *	hd_wire - the broker <-> worker protocol (docs/PROTOCOL.md section 2)
 * DESCRIPTION
 *	Decodes frames with hd_mpack (bounded, zero-copy) and encodes them
 *	with msgpack-c. The frame type "t" decides which keys a frame may
 *	carry, so a pre-scan of the top-level map finds "t" (and "v", whose
 *	mismatch wins over any other error) before the one decoding pass,
 *	which then refuses a key foreign to the type where it meets it. The
 *	JOB's "msg" is decoded and encoded by hd_envelope (same rules as a
 *	producer's msg). It never logs.
 * LIMITS
 *	Frames over HD_WIRE_MAX_FRAME_BYTES are refused before reading;
 *	every text is bounded by hd_wire.h before it is copied; the only
 *	allocations are the JOB's recipient, kind and msg.
 */
#include "hd_wire.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_err.h"
#include "hd_mem.h"
#include "hd_mpack.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#define BIT(k) (1u << (k))

/* ---- keys and which frame may carry them ---------------------------------- */

typedef struct wire_key {
	const char *name;
	uint32_t len;
} wire_key_t;

#define KEY(s) {s, (uint32_t)(sizeof(s) - 1)}

enum {
	WK_V, WK_T, WK_NAME, WK_CHANNELS, WK_CREDIT, WK_HEARTBEAT, WK_DELIVERY_ID,
	WK_MESSAGE_ID, WK_ATTEMPT, WK_LEASE, WK_RECIPIENT, WK_KIND, WK_CLASS, WK_MSG,
	WK_OUTCOME, WK_RETRY_AFTER, WK_PROVIDER, WK_CODE, WK_DETAIL, WK_PROVIDER_ID,
	WK_ENDPOINT, WK_COUNT_
};
static const wire_key_t wire_keys[] = {
	KEY("v"), KEY("t"), KEY("name"), KEY("channels"), KEY("credit"), KEY("heartbeat_ms"),
	KEY("delivery_id"), KEY("message_id"), KEY("attempt"), KEY("lease_ms"),
	KEY("recipient"), KEY("kind"), KEY("class"), KEY("msg"), KEY("outcome"),
	KEY("retry_after_ms"), KEY("provider"), KEY("code"), KEY("detail"), KEY("provider_id"),
	KEY("endpoint"),
};

/* Indexed by hd_wire_type_t. */
static const char *const type_names[] = {"ready", "job", "result", "hb", "bye"};
static const char *const outcome_names[] = {"delivered", "retry", "failed"};

#define BASE_KEYS (BIT(WK_V) | BIT(WK_T))
static const uint32_t required_keys[] = {
	[HD_WIRE_READY] = BASE_KEYS | BIT(WK_NAME) | BIT(WK_CHANNELS) | BIT(WK_CREDIT) |
			  BIT(WK_HEARTBEAT),
	[HD_WIRE_JOB] = BASE_KEYS | BIT(WK_DELIVERY_ID) | BIT(WK_MESSAGE_ID) | BIT(WK_ATTEMPT) |
			BIT(WK_LEASE) | BIT(WK_RECIPIENT) | BIT(WK_KIND) | BIT(WK_CLASS) |
			BIT(WK_MSG),
	[HD_WIRE_RESULT] = BASE_KEYS | BIT(WK_DELIVERY_ID) | BIT(WK_ATTEMPT) | BIT(WK_OUTCOME) |
			   BIT(WK_PROVIDER) | BIT(WK_CODE) | BIT(WK_DETAIL),
	[HD_WIRE_HEARTBEAT] = BASE_KEYS,
	[HD_WIRE_BYE] = BASE_KEYS,
};
static const uint32_t optional_keys[] = {
	[HD_WIRE_READY] = 0,
	[HD_WIRE_JOB] = BIT(WK_ENDPOINT),
	[HD_WIRE_RESULT] = BIT(WK_RETRY_AFTER) | BIT(WK_PROVIDER_ID),
	[HD_WIRE_HEARTBEAT] = 0,
	[HD_WIRE_BYE] = 0,
};

const char *hd_wire_type_name(hd_wire_type_t type)
{
	return (unsigned)type < COUNT_OF(type_names) ? type_names[type] : "unknown";
}

const char *hd_outcome_name(hd_outcome_kind_t outcome)
{
	return (unsigned)outcome < COUNT_OF(outcome_names) ? outcome_names[outcome] : "unknown";
}

static bool str_is(const char *s, uint32_t len, const char *lit)
{
	size_t n = strlen(lit);
	return len == n && memcmp(s, lit, n) == 0;
}

static int find_name(const char *const *names, size_t n, const char *s, uint32_t len)
{
	for (size_t i = 0; i < n; i++)
		if (str_is(s, len, names[i]))
			return (int)i;
	return -1;
}

/* Worker names: 1..HD_WIRE_MAX_NAME_BYTES of A-Z a-z 0-9 . _ - */
static bool is_worker_name(const char *s, size_t len)
{
	if (len == 0 || len > HD_WIRE_MAX_NAME_BYTES)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
		if (!ok)
			return false;
	}
	return true;
}

/* ---- decoding context and errors ----------------------------------------- */

typedef struct wctx {
	hd_mpack_reader_t r;
	const uint8_t *base;
	hd_decode_error_t *err;
} wctx_t;

__attribute__((format(printf, 4, 5)))
static int fail(wctx_t *c, int code, const char *field, const char *fmt, ...)
{
	c->err->code = code;
	snprintf(c->err->field, sizeof c->err->field, "%s", field);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err->reason, sizeof c->err->reason, fmt, ap);
	va_end(ap);
	return code;
}

static int fail_malformed(wctx_t *c, const char *what)
{
	return fail(c, HD_E_MALFORMED, "", "%s at byte %zu", what, (size_t)(c->r.p - c->base));
}

/* An error about a key as sent: printable ASCII only, long keys cut. */
static int fail_key(wctx_t *c, int code, const char *k, uint32_t klen, const char *reason)
{
	char shown[48];
	size_t n = 0;
	for (uint32_t i = 0; i < klen && n + 4 < sizeof shown; i++) {
		unsigned char ch = (unsigned char)k[i];
		shown[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	if (n < klen) {
		memcpy(shown + n, "...", 3);
		n += 3;
	}
	shown[n] = '\0';
	return fail(c, code, shown, "%s", reason);
}

static int value_err(wctx_t *c, int rc, const char *field, const char *expected)
{
	if (rc == HD_E_TYPE)
		return fail(c, HD_E_TYPE, field, "expected %s", expected);
	if (rc == HD_E_TOOBIG)
		return fail(c, HD_E_INVALID, field, "integer out of range");
	return fail_malformed(c, "truncated or invalid msgpack");
}

/* A registry name (herald.is_plain_name): a worker-name string that
 * starts with a letter or digit. */
static bool plain_name(const char *s, size_t len)
{
	return is_worker_name(s, len) && s[0] != '.' && s[0] != '_' && s[0] != '-';
}

/* A str of min_len..max_len bytes of UTF-8 without NUL, borrowed from the frame. */
static int get_text(wctx_t *c, const char *field, size_t min_len, size_t max_len,
		    const char **s, uint32_t *len)
{
	int rc = hd_mpack_read_str(&c->r, s, len);
	if (rc != HD_OK)
		return value_err(c, rc, field, "a string");
	if (*len > max_len)
		return fail(c, HD_E_TOOBIG, field, "longer than %zu bytes", max_len);
	if (*len < min_len)
		return fail(c, HD_E_INVALID, field, "must not be empty");
	if (!hd_msg_is_utf8(*s, *len))
		return fail(c, HD_E_INVALID, field, "not valid UTF-8 or contains NUL");
	return HD_OK;
}

/* get_text into a fixed buffer of cap bytes (max_len < cap). */
static int copy_text(wctx_t *c, const char *field, size_t min_len, size_t max_len, char *dst)
{
	const char *s;
	uint32_t len;
	int rc = get_text(c, field, min_len, max_len, &s, &len);
	if (rc != HD_OK)
		return rc;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return HD_OK;
}

/* An unsigned integer in [lo, hi]: below is invalid, above too_big. */
static int get_uint_in(wctx_t *c, const char *field, uint64_t lo, uint64_t hi, uint64_t *v)
{
	int rc = hd_mpack_read_uint(&c->r, v);
	if (rc != HD_OK)
		return value_err(c, rc, field, "an unsigned integer");
	if (*v < lo)
		return fail(c, HD_E_INVALID, field, "must be at least %llu", (unsigned long long)lo);
	if (*v > hi)
		return fail(c, HD_E_TOOBIG, field, "larger than %llu", (unsigned long long)hi);
	return HD_OK;
}

static int get_id(wctx_t *c, const char *field, int64_t *v)
{
	int rc = hd_mpack_read_int(&c->r, v);
	if (rc != HD_OK)
		return value_err(c, rc, field, "an integer");
	if (*v <= 0)
		return fail(c, HD_E_INVALID, field, "must be positive");
	return HD_OK;
}

/* ---- pre-scan ------------------------------------------------------------ */

typedef struct prescan {
	bool have_v, have_t, have_id, have_attempt;
	uint64_t v;
	const char *t;
	uint32_t tlen;
	int64_t delivery_id;
	uint64_t attempt;
} prescan_t;

/*
 * Walk the top-level map as far as it is well-formed and note the first
 * "v" that is a uint, "t" that is a str, "delivery_id" that is an int
 * and "attempt" that is a uint. Values of other types are skipped.
 */
static void prescan(const uint8_t *buf, size_t len, prescan_t *ps)
{
	memset(ps, 0, sizeof *ps);
	hd_mpack_reader_t r;
	uint32_t n;
	hd_mpack_reader_init(&r, buf, len);
	if (hd_mpack_read_map(&r, &n) != HD_OK)
		return;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t klen;
		int rc = hd_mpack_read_str(&r, &k, &klen);
		if (rc == HD_E_TYPE) {
			if (hd_mpack_skip(&r, HD_MAX_DEPTH - 1) != HD_OK ||
			    hd_mpack_skip(&r, HD_MAX_DEPTH - 1) != HD_OK)
				return;
			continue;
		}
		if (rc != HD_OK)
			return;
		if (!ps->have_v && str_is(k, klen, "v") && hd_mpack_read_uint(&r, &ps->v) == HD_OK) {
			ps->have_v = true;
			continue;
		}
		if (!ps->have_t && str_is(k, klen, "t") &&
		    hd_mpack_read_str(&r, &ps->t, &ps->tlen) == HD_OK) {
			ps->have_t = true;
			continue;
		}
		if (!ps->have_id && str_is(k, klen, "delivery_id") &&
		    hd_mpack_read_int(&r, &ps->delivery_id) == HD_OK) {
			ps->have_id = true;
			continue;
		}
		if (!ps->have_attempt && str_is(k, klen, "attempt") &&
		    hd_mpack_read_uint(&r, &ps->attempt) == HD_OK) {
			ps->have_attempt = true;
			continue;
		}
		if (hd_mpack_skip(&r, HD_MAX_DEPTH - 1) != HD_OK)
			return;
	}
}

/* ---- decoding ------------------------------------------------------------ */

/* Everything any frame type may carry, kept apart so nothing overlaps. */
typedef struct scratch {
	hd_wire_type_t type;
	hd_wire_ready_t ready;
	hd_wire_job_t job;
	hd_wire_result_t result;
} scratch_t;

static void scratch_clear(scratch_t *s)
{
	free(s->job.recipient);
	free(s->job.kind);
	free(s->job.endpoint);
	hd_msg_destroy(&s->job.msg);
	memset(s, 0, sizeof *s);
}

static int decode_channels(wctx_t *c, unsigned *mask)
{
	uint32_t n;
	int rc = hd_mpack_read_array(&c->r, &n);
	if (rc != HD_OK)
		return value_err(c, rc, "channels", "an array of strings");
	if (n == 0)
		return fail(c, HD_E_INVALID, "channels", "needs at least one channel");
	if (n > HD_WIRE_MAX_CHANNELS)
		return fail(c, HD_E_TOOBIG, "channels", "more than %u channels",
			    HD_WIRE_MAX_CHANNELS);
	for (uint32_t i = 0; i < n; i++) {
		char field[32], name[8];
		snprintf(field, sizeof field, "channels[%u]", i);
		const char *s;
		uint32_t len;
		if ((rc = hd_mpack_read_str(&c->r, &s, &len)) != HD_OK)
			return value_err(c, rc, field, "a string");
		hd_channel_t ch;
		if (len >= sizeof name)
			len = 0;
		memcpy(name, s, len);
		name[len] = '\0';
		if (hd_channel_parse(name, &ch) != HD_OK)
			return fail(c, HD_E_INVALID, field, "must be email, im or sms");
		if (*mask & (1u << ch))
			return fail(c, HD_E_INVALID, field, "duplicate channel");
		*mask |= 1u << ch;
	}
	return HD_OK;
}

static int decode_value(wctx_t *c, int k, scratch_t *s)
{
	const char *str;
	uint32_t len;
	uint64_t u;
	int rc;
	switch (k) {
	case WK_V:
		if ((rc = hd_mpack_read_uint(&c->r, &u)) != HD_OK)
			return value_err(c, rc, "v", "an unsigned integer");
		if (u != HD_WIRE_VERSION)
			return fail(c, HD_E_VERSION, "v", "unsupported protocol version %llu; this side speaks %u",
				    (unsigned long long)u, HD_WIRE_VERSION);
		return HD_OK;
	case WK_T: {
		if ((rc = hd_mpack_read_str(&c->r, &str, &len)) != HD_OK)
			return value_err(c, rc, "t", "a string");
		int t = find_name(type_names, COUNT_OF(type_names), str, len);
		if (t < 0)
			return fail(c, HD_E_INVALID, "t", "must be ready, job, result, hb or bye");
		s->type = (hd_wire_type_t)t;
		return HD_OK;
	}
	case WK_NAME:
		if ((rc = get_text(c, "name", 1, HD_WIRE_MAX_NAME_BYTES, &str, &len)) != HD_OK)
			return rc;
		if (!is_worker_name(str, len))
			return fail(c, HD_E_INVALID, "name", "may only contain A-Z a-z 0-9 . _ -");
		memcpy(s->ready.name, str, len);
		s->ready.name[len] = '\0';
		return HD_OK;
	case WK_CHANNELS:
		return decode_channels(c, &s->ready.channels);
	case WK_CREDIT:
		if ((rc = get_uint_in(c, "credit", 1, HD_WIRE_MAX_CREDIT, &u)) != HD_OK)
			return rc;
		s->ready.credit = (uint32_t)u;
		return HD_OK;
	case WK_HEARTBEAT:
		if ((rc = get_uint_in(c, "heartbeat_ms", HD_WIRE_MIN_HEARTBEAT_MS,
				      HD_WIRE_MAX_HEARTBEAT_MS, &u)) != HD_OK)
			return rc;
		s->ready.heartbeat_ms = (uint32_t)u;
		return HD_OK;
	case WK_DELIVERY_ID:
		if ((rc = get_id(c, "delivery_id", &s->job.delivery_id)) != HD_OK)
			return rc;
		s->result.delivery_id = s->job.delivery_id;
		return HD_OK;
	case WK_MESSAGE_ID:
		return get_id(c, "message_id", &s->job.message_id);
	case WK_ATTEMPT:
		if ((rc = get_uint_in(c, "attempt", 1, UINT32_MAX, &u)) != HD_OK)
			return rc;
		s->job.attempt = s->result.attempt = (uint32_t)u;
		return HD_OK;
	case WK_LEASE:
		if ((rc = get_uint_in(c, "lease_ms", 1, HD_WIRE_MAX_LEASE_MS, &u)) != HD_OK)
			return rc;
		s->job.lease_ms = (uint32_t)u;
		return HD_OK;
	case WK_RECIPIENT:
		if ((rc = get_text(c, "recipient", 1, HD_MAX_ADDR_BYTES, &str, &len)) != HD_OK)
			return rc;
		s->job.recipient = hd_strndup(str, len);
		return HD_OK;
	case WK_ENDPOINT:
		if ((rc = get_text(c, "endpoint", 1, HD_WIRE_MAX_NAME_BYTES, &str, &len)) != HD_OK)
			return rc;
		if (!plain_name(str, len))
			return fail(c, HD_E_INVALID, "endpoint",
				    "must be letters, digits, '.', '_' or '-', not starting with a punctuation mark");
		s->job.endpoint = hd_strndup(str, len);
		return HD_OK;
	case WK_KIND:
		if ((rc = hd_mpack_read_str(&c->r, &str, &len)) != HD_OK)
			return value_err(c, rc, "kind", "a string");
		if (!str_is(str, len, "to") && !str_is(str, len, "cc"))
			return fail(c, HD_E_INVALID, "kind", "must be to or cc");
		s->job.kind = hd_strndup(str, len);
		return HD_OK;
	case WK_CLASS: {
		char name[16];
		if ((rc = hd_mpack_read_str(&c->r, &str, &len)) != HD_OK)
			return value_err(c, rc, "class", "a string");
		if (len >= sizeof name)
			len = 0;
		memcpy(name, str, len);
		name[len] = '\0';
		if (hd_class_parse(name, &s->job.klass) != HD_OK)
			return fail(c, HD_E_INVALID, "class", "must be general, important or bulk");
		return HD_OK;
	}
	case WK_MSG:
		return hd_envelope_decode_stored_msg(&c->r, c->base, 0, &s->job.msg, c->err);
	case WK_OUTCOME: {
		if ((rc = hd_mpack_read_str(&c->r, &str, &len)) != HD_OK)
			return value_err(c, rc, "outcome", "a string");
		int o = find_name(outcome_names, COUNT_OF(outcome_names), str, len);
		if (o < 0)
			return fail(c, HD_E_INVALID, "outcome", "must be delivered, retry or failed");
		s->result.outcome = (hd_outcome_kind_t)o;
		return HD_OK;
	}
	case WK_RETRY_AFTER:
		if ((rc = get_uint_in(c, "retry_after_ms", 1, HD_WIRE_MAX_RETRY_AFTER_MS, &u)) !=
		    HD_OK)
			return rc;
		s->result.retry_after_ms = (int64_t)u;
		return HD_OK;
	case WK_PROVIDER:
		return copy_text(c, "provider", 1, HD_WIRE_MAX_NAME_BYTES, s->result.provider);
	case WK_CODE:
		return copy_text(c, "code", 0, HD_WIRE_MAX_CODE_BYTES, s->result.provider_code);
	case WK_DETAIL:
		return copy_text(c, "detail", 0, HD_WIRE_MAX_DETAIL_BYTES, s->result.detail);
	default: /* WK_PROVIDER_ID */
		return copy_text(c, "provider_id", 1, HD_WIRE_MAX_ID_BYTES, s->result.provider_id);
	}
}

static bool in_list(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* What the table of keys cannot say. */
static int check_frame(wctx_t *c, const scratch_t *s, uint32_t seen)
{
	if (s->type == HD_WIRE_JOB) {
		const hd_msg_t *m = s->job.msg;
		bool to = strcmp(s->job.kind, "to") == 0;
		if (to ? !in_list(m->to, m->to_count, s->job.recipient)
		       : !in_list(m->cc, m->cc_count, s->job.recipient))
			return fail(c, HD_E_INVALID, "recipient", "not among msg.%s",
				    to ? "to" : "cc");
	}
	if (s->type == HD_WIRE_RESULT && (seen & BIT(WK_RETRY_AFTER)) &&
	    s->result.outcome != HD_OUTCOME_RETRY)
		return fail(c, HD_E_INVALID, "retry_after_ms", "only allowed with outcome retry");
	return HD_OK;
}

static int decode_frame(wctx_t *c, const prescan_t *ps, scratch_t *s)
{
	uint32_t n, seen = 0;
	int rc = hd_mpack_read_map(&c->r, &n);
	if (rc == HD_E_TYPE)
		return fail(c, HD_E_MALFORMED, "", "a frame must be one msgpack map");
	if (rc != HD_OK)
		return fail_malformed(c, "truncated or invalid msgpack");

	/* Known up front when the pre-scan found a valid "t"; -1 otherwise. */
	int type = ps->have_t ? find_name(type_names, COUNT_OF(type_names), ps->t, ps->tlen) : -1;
	uint32_t allowed = type >= 0 ? required_keys[type] | optional_keys[type] : ~0u;

	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t klen;
		rc = hd_mpack_read_str(&c->r, &k, &klen);
		if (rc == HD_E_TYPE)
			return fail(c, HD_E_TYPE, "", "map keys must be strings");
		if (rc != HD_OK)
			return fail_malformed(c, "truncated or invalid msgpack");
		int key = -1;
		for (size_t j = 0; j < COUNT_OF(wire_keys); j++)
			if (str_is(k, klen, wire_keys[j].name))
				key = (int)j;
		if (key < 0 || !(allowed & BIT(key))) {
			char reason[64];
			if (key < 0)
				snprintf(reason, sizeof reason, "unknown field");
			else
				snprintf(reason, sizeof reason, "unknown field for a %s frame",
					 type_names[type]);
			return fail_key(c, HD_E_UNKNOWN_FIELD, k, klen, reason);
		}
		if (seen & BIT(key))
			return fail_key(c, HD_E_INVALID, k, klen, "duplicate key");
		seen |= BIT(key);
		if ((rc = decode_value(c, key, s)) != HD_OK)
			return rc;
	}
	if (c->r.p != c->r.end)
		return fail_malformed(c, "trailing bytes after the frame map");
	if (!(seen & BIT(WK_V)))
		return fail(c, HD_E_MISSING, "v", "required");
	if (!(seen & BIT(WK_T)))
		return fail(c, HD_E_MISSING, "t", "required");
	/* Every key read was allowed for s->type: the pre-scan saw the same "t". */
	uint32_t missing = required_keys[s->type] & ~seen;
	for (int k = 0; k < WK_COUNT_; k++)
		if (missing & BIT(k))
			return fail(c, HD_E_MISSING, wire_keys[k].name, "required in a %s frame",
				    type_names[s->type]);
	return check_frame(c, s, seen);
}

int hd_wire_decode(const uint8_t *buf, size_t len, hd_wire_frame_t *out, hd_decode_error_t *err)
{
	hd_decode_error_t scratch_err;
	if (!err)
		err = &scratch_err;
	memset(out, 0, sizeof *out);
	memset(err, 0, sizeof *err);
	wctx_t c = {.base = buf, .err = err};
	hd_mpack_reader_init(&c.r, buf, len);
	if (len > HD_WIRE_MAX_FRAME_BYTES)
		return fail(&c, HD_E_TOOBIG, "", "frame longer than %u bytes", HD_WIRE_MAX_FRAME_BYTES);

	prescan_t ps;
	prescan(buf, len, &ps);
	/* A peer of another version is told so whatever else is wrong. */
	if (ps.have_v && ps.v != HD_WIRE_VERSION)
		return fail(&c, HD_E_VERSION, "v", "unsupported protocol version %llu; this side speaks %u",
			    (unsigned long long)ps.v, HD_WIRE_VERSION);

	scratch_t s;
	memset(&s, 0, sizeof s);
	int rc = decode_frame(&c, &ps, &s);
	if (rc != HD_OK) {
		scratch_clear(&s);
		return rc;
	}
	out->type = s.type;
	switch (s.type) {
	case HD_WIRE_READY:
		out->u.ready = s.ready;
		break;
	case HD_WIRE_JOB:
		out->u.job = s.job;
		break;
	case HD_WIRE_RESULT:
		out->u.result = s.result;
		break;
	default:
		break;
	}
	return HD_OK;
}

bool hd_wire_peek_job(const uint8_t *buf, size_t len, int64_t *delivery_id, uint32_t *attempt)
{
	if (!buf || len > HD_WIRE_MAX_FRAME_BYTES)
		return false;
	prescan_t ps;
	prescan(buf, len, &ps);
	if (!ps.have_t || !str_is(ps.t, ps.tlen, "job") || !ps.have_id || ps.delivery_id <= 0 ||
	    !ps.have_attempt || ps.attempt < 1 || ps.attempt > UINT32_MAX)
		return false;
	*delivery_id = ps.delivery_id;
	*attempt = (uint32_t)ps.attempt;
	return true;
}

void hd_wire_frame_clear(hd_wire_frame_t *frame)
{
	if (!frame)
		return;
	if (frame->type == HD_WIRE_JOB) {
		free(frame->u.job.recipient);
		free(frame->u.job.kind);
		free(frame->u.job.endpoint);
		hd_msg_destroy(&frame->u.job.msg);
	}
	memset(frame, 0, sizeof *frame);
}

/* ---- encoding ------------------------------------------------------------ */

typedef struct enc {
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	int rc;  /* msgpack-c failures (only out of memory) accumulate here */
} enc_t;

static void enc_init(enc_t *e, size_t size_hint)
{
	msgpack_sbuffer_init(&e->sbuf);
	e->sbuf.data = hd_malloc(size_hint);
	e->sbuf.alloc = size_hint;
	msgpack_packer_init(&e->pk, &e->sbuf, msgpack_sbuffer_write);
	e->rc = 0;
}

static void enc_str_n(enc_t *e, const char *s, size_t len)
{
	e->rc |= msgpack_pack_str_with_body(&e->pk, s, len);
}

static void enc_str(enc_t *e, const char *s)
{
	enc_str_n(e, s, strlen(s));
}

#define ENC_KEY(e, lit) enc_str_n((e), (lit), sizeof(lit) - 1)

static void enc_header(enc_t *e, size_t n, hd_wire_type_t type)
{
	e->rc |= msgpack_pack_map(&e->pk, n);
	ENC_KEY(e, "v");
	e->rc |= msgpack_pack_uint64(&e->pk, HD_WIRE_VERSION);
	ENC_KEY(e, "t");
	enc_str(e, type_names[type]);
}

static void enc_uint(enc_t *e, uint64_t v)
{
	e->rc |= msgpack_pack_uint64(&e->pk, v);
}

static void enc_int(enc_t *e, int64_t v)
{
	e->rc |= msgpack_pack_int64(&e->pk, v);
}

/* Length of the valid UTF-8 sequence at p (<= avail bytes), 0 if invalid. */
static size_t utf8_seq_len(const char *p, size_t avail_bytes)
{
	unsigned char ch = (unsigned char)p[0];
	size_t n = ch < 0x80 ? 1 : ch < 0xc2 ? 0 : ch < 0xe0 ? 2 : ch < 0xf0 ? 3 : ch < 0xf5 ? 4 : 0;
	if (n == 0 || n > avail_bytes || !hd_msg_is_utf8(p, n))
		return 0;
	return n;
}

/*
 * Provider text comes from outside: send it as valid UTF-8 of at most
 * max_bytes (bad bytes become '?', a sequence that does not fit is
 * dropped whole). src is read up to its NUL or src_cap bytes.
 */
static void enc_text_clean(enc_t *e, const char *src, size_t src_cap, size_t max_bytes)
{
	char tmp[HD_WIRE_MAX_DETAIL_BYTES];
	size_t len = strnlen(src, src_cap), o = 0;
	if (max_bytes > sizeof tmp)
		max_bytes = sizeof tmp;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(src + i, len - i);
		if (o + (n ? n : 1) > max_bytes)
			break;
		if (n == 0) {
			tmp[o++] = '?';
			i++;
			continue;
		}
		memcpy(tmp + o, src + i, n);
		o += n;
		i += n;
	}
	enc_str_n(e, tmp, o);
}

static bool ready_encodable(const hd_wire_ready_t *r)
{
	return is_worker_name(r->name, strnlen(r->name, sizeof r->name)) && r->channels != 0 &&
	       (r->channels & ~7u) == 0 && r->credit >= 1 && r->credit <= HD_WIRE_MAX_CREDIT &&
	       r->heartbeat_ms >= HD_WIRE_MIN_HEARTBEAT_MS &&
	       r->heartbeat_ms <= HD_WIRE_MAX_HEARTBEAT_MS;
}

static bool job_encodable(const hd_wire_job_t *j)
{
	if (j->delivery_id <= 0 || j->message_id <= 0 || j->attempt < 1 || j->lease_ms < 1 ||
	    j->lease_ms > HD_WIRE_MAX_LEASE_MS || !j->recipient || !j->kind || !j->msg ||
	    (unsigned)j->klass > HD_CLASS_BULK)
		return false;
	if (j->endpoint && !plain_name(j->endpoint, strlen(j->endpoint)))
		return false;
	const hd_msg_t *m = j->msg;
	if (strcmp(j->kind, "to") == 0)
		return m->to && in_list(m->to, m->to_count, j->recipient);
	if (strcmp(j->kind, "cc") == 0)
		return m->cc && in_list(m->cc, m->cc_count, j->recipient);
	return false;
}

static int encode_ready(enc_t *e, const hd_wire_ready_t *r)
{
	enc_header(e, 6, HD_WIRE_READY);
	ENC_KEY(e, "name");
	enc_str(e, r->name);
	ENC_KEY(e, "channels");
	unsigned n = 0;
	for (unsigned ch = 0; ch < HD_WIRE_MAX_CHANNELS; ch++)
		n += (r->channels >> ch) & 1u;
	e->rc |= msgpack_pack_array(&e->pk, n);
	for (unsigned ch = 0; ch < HD_WIRE_MAX_CHANNELS; ch++)
		if (r->channels & (1u << ch))
			enc_str(e, hd_channel_name((hd_channel_t)ch));
	ENC_KEY(e, "credit");
	enc_uint(e, r->credit);
	ENC_KEY(e, "heartbeat_ms");
	enc_uint(e, r->heartbeat_ms);
	return HD_OK;
}

static int encode_job(enc_t *e, const hd_wire_job_t *j)
{
	enc_header(e, j->endpoint ? 11 : 10, HD_WIRE_JOB);
	ENC_KEY(e, "delivery_id");
	enc_int(e, j->delivery_id);
	ENC_KEY(e, "message_id");
	enc_int(e, j->message_id);
	ENC_KEY(e, "attempt");
	enc_uint(e, j->attempt);
	ENC_KEY(e, "lease_ms");
	enc_uint(e, j->lease_ms);
	ENC_KEY(e, "recipient");
	enc_str(e, j->recipient);
	ENC_KEY(e, "kind");
	enc_str(e, j->kind);
	if (j->endpoint) {
		ENC_KEY(e, "endpoint");
		enc_str(e, j->endpoint);
	}
	ENC_KEY(e, "class");
	enc_str(e, hd_class_name(j->klass));
	ENC_KEY(e, "msg");
	int rc = hd_envelope_encode_msg(&e->pk, j->msg);
	if (rc == HD_E_IO)
		e->rc |= -1;
	return rc == HD_E_INVALID ? HD_E_INVALID : HD_OK;
}

static int encode_result(enc_t *e, const hd_wire_result_t *r)
{
	size_t plen = strnlen(r->provider, sizeof r->provider);
	if (r->delivery_id <= 0 || r->attempt < 1 || (unsigned)r->outcome > HD_OUTCOME_FAILED ||
	    plen == 0)
		return HD_E_INVALID;
	bool retry_after = r->outcome == HD_OUTCOME_RETRY && r->retry_after_ms > 0;
	bool provider_id = r->provider_id[0] != '\0';
	enc_header(e, 8u + retry_after + provider_id, HD_WIRE_RESULT);
	ENC_KEY(e, "delivery_id");
	enc_int(e, r->delivery_id);
	ENC_KEY(e, "attempt");
	enc_uint(e, r->attempt);
	ENC_KEY(e, "outcome");
	enc_str(e, outcome_names[r->outcome]);
	if (retry_after) {
		ENC_KEY(e, "retry_after_ms");
		enc_uint(e, r->retry_after_ms > HD_WIRE_MAX_RETRY_AFTER_MS
				    ? (uint64_t)HD_WIRE_MAX_RETRY_AFTER_MS
				    : (uint64_t)r->retry_after_ms);
	}
	ENC_KEY(e, "provider");
	enc_text_clean(e, r->provider, sizeof r->provider, HD_WIRE_MAX_NAME_BYTES);
	ENC_KEY(e, "code");
	enc_text_clean(e, r->provider_code, sizeof r->provider_code, HD_WIRE_MAX_CODE_BYTES);
	ENC_KEY(e, "detail");
	enc_text_clean(e, r->detail, sizeof r->detail, HD_WIRE_MAX_DETAIL_BYTES);
	if (provider_id) {
		ENC_KEY(e, "provider_id");
		enc_text_clean(e, r->provider_id, sizeof r->provider_id, HD_WIRE_MAX_ID_BYTES);
	}
	return HD_OK;
}

int hd_wire_encode(const hd_wire_frame_t *frame, uint8_t **buf, size_t *len)
{
	if (!frame || !buf || !len)
		return HD_E_INVALID;
	size_t hint = 128;
	switch (frame->type) {
	case HD_WIRE_READY:
		if (!ready_encodable(&frame->u.ready))
			return HD_E_INVALID;
		break;
	case HD_WIRE_JOB:
		if (!job_encodable(&frame->u.job))
			return HD_E_INVALID;
		hint = 512 + hd_envelope_msg_size_hint(frame->u.job.msg);
		break;
	case HD_WIRE_RESULT:
		hint = 1536;
		break;
	case HD_WIRE_HEARTBEAT:
	case HD_WIRE_BYE:
		break;
	default:
		return HD_E_INVALID;
	}
	enc_t e;
	enc_init(&e, hint);
	int rc = HD_OK;
	switch (frame->type) {
	case HD_WIRE_READY:
		rc = encode_ready(&e, &frame->u.ready);
		break;
	case HD_WIRE_JOB:
		rc = encode_job(&e, &frame->u.job);
		break;
	case HD_WIRE_RESULT:
		rc = encode_result(&e, &frame->u.result);
		break;
	default:
		enc_header(&e, 2, frame->type);
		break;
	}
	if (rc != HD_OK) {
		msgpack_sbuffer_destroy(&e.sbuf);
		return rc;
	}
	if (e.rc != 0)
		hd_panic("msgpack encoding failed: out of memory");
	*len = e.sbuf.size;
	*buf = (uint8_t *)msgpack_sbuffer_release(&e.sbuf);
	return HD_OK;
}
