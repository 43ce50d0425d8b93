/*
 * NAME
 *	hd_envelope - the producer wire codec (docs/PROTOCOL.md, version 1)
 * DESCRIPTION
 *	Decodes request frames into hd_request_t and reply frames into
 *	hd_reply_t with hd_mpack (bounded, zero-copy), and encodes both with
 *	msgpack-c. The decoder is the trust boundary: whatever it returns
 *	satisfies every syntactic and channel rule of the protocol, so code
 *	past it never re-checks. Policy (required subject, CC reasons...) is
 *	not its business. The message map alone is also exposed
 *	(hd_envelope_decode_msg / hd_envelope_encode_msg) so the worker
 *	protocol's JOB (hd_wire) carries it with the very same rules. It
 *	never logs.
 * LIMITS
 *	Every count and length is compared with hd_limits.h before anything
 *	is allocated; map keys are matched against small tables and
 *	duplicates caught with a bitmask, so decoding is linear in the frame.
 */
#include "hd_envelope.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_err.h"
#include "hd_limits.h"
#include "hd_mem.h"
#include "hd_mpack.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Longest error code name on the wire ("unknown_field" and friends). */
#define HD_MAX_CODE_NAME_BYTES 32u

/* ---- keys ---------------------------------------------------------------- */

typedef struct key {
	const char *name;
	uint32_t len;
} wire_key_t;

#define KEY(s) {s, (uint32_t)(sizeof(s) - 1)}
#define BIT(k) (1u << (k))

enum { RQ_V, RQ_RID, RQ_OP, RQ_APP, RQ_MSG };
static const wire_key_t request_keys[] = {KEY("v"), KEY("rid"), KEY("op"), KEY("app"), KEY("msg")};

enum {
	MK_CHANNEL, MK_FROM, MK_TO, MK_CC, MK_CC_REASON, MK_SUBJECT, MK_BODY, MK_HTML,
	MK_ATTACHMENTS, MK_FLAGS, MK_PURPOSE, MK_REPLY_BY, MK_BULK, MK_IDEM, MK_TAGS
};
static const wire_key_t msg_keys[] = {
	KEY("channel"), KEY("from"), KEY("to"), KEY("cc"), KEY("cc_reason"),
	KEY("subject"), KEY("body"), KEY("html"), KEY("attachments"), KEY("flags"),
	KEY("purpose"), KEY("reply_by"), KEY("bulk"), KEY("idempotency_key"), KEY("tags"),
};

enum { AK_NAME, AK_TYPE, AK_DATA };
static const wire_key_t attachment_keys[] = {KEY("name"), KEY("type"), KEY("data")};

enum { BK_PURPOSE, BK_AUDIENCE, BK_COUNT, BK_SUMMARY };
static const wire_key_t bulk_keys[] = {
	KEY("purpose"), KEY("audience"), KEY("recipient_count"), KEY("summary"),
};

enum { FK_RULE, FK_CLAUSE, FK_ACTION, FK_SEVERITY, FK_REASON };
static const wire_key_t finding_keys[] = {
	KEY("rule"), KEY("clause"), KEY("action"), KEY("severity"), KEY("reason"),
};

enum {
	PK_V, PK_RID, PK_OK, PK_ID, PK_CLASS, PK_STATE, PK_DUPLICATE, PK_FINDINGS,
	PK_CODE, PK_FIELD, PK_REASON, PK_RETRYABLE, PK_RETRY_AFTER
};
static const wire_key_t reply_keys[] = {
	KEY("v"), KEY("rid"), KEY("ok"), KEY("id"), KEY("class"), KEY("state"),
	KEY("duplicate"), KEY("findings"), KEY("code"), KEY("field"), KEY("reason"),
	KEY("retryable"), KEY("retry_after_ms"),
};

static int find_key(const wire_key_t *keys, size_t n, const char *k, uint32_t len)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i].len == len && memcmp(keys[i].name, k, len) == 0)
			return (int)i;
	return -1;
}

static bool str_is(const char *s, uint32_t len, const char *lit)
{
	size_t n = strlen(lit);
	return len == n && memcmp(s, lit, n) == 0;
}

/* ---- text helpers -------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (<= avail bytes), 0 if invalid. */
static size_t utf8_seq_len(const char *p, size_t avail_bytes)
{
	unsigned char c = (unsigned char)p[0];
	size_t n = c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
	if (n == 0 || n > avail_bytes || !hd_msg_is_utf8(p, n))
		return 0;
	return n;
}

/*
 * Copy src (NUL-terminated, or at most src_max bytes) into dst[cap] as
 * valid UTF-8: bad bytes become '?', a sequence that does not fit is
 * dropped whole. Returns the length written (dst is NUL-terminated).
 */
static size_t copy_utf8(char *dst, size_t cap, const char *src, size_t src_max)
{
	size_t len = strnlen(src, src_max);
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(src + i, len - i);
		if (n == 0) {
			if (o + 1 >= cap)
				break;
			dst[o++] = '?';
			i++;
			continue;
		}
		if (o + n >= cap)
			break;
		memcpy(dst + o, src + i, n);
		o += n;
		i += n;
	}
	dst[o] = '\0';
	return o;
}

/* ---- decoding context and errors ----------------------------------------- */

typedef struct dctx {
	hd_mpack_reader_t r;
	const uint8_t *base;
	hd_decode_error_t *err;
	size_t max_recipients;
	bool sealed_ok;    /* a stored message: sealed parts may exceed the producer limits */
} dctx_t;

/* A field path, formatted only when an error is reported. */
typedef struct path {
	const char *base;
	long idx;          /* < 0: no index */
	const char *suffix;
} path_t;

static path_t path(const char *base)
{
	return (path_t){base, -1, ""};
}

static path_t path_i(const char *base, size_t idx, const char *suffix)
{
	return (path_t){base, (long)idx, suffix};
}

static void format_path(char *buf, size_t cap, path_t p)
{
	if (p.idx >= 0)
		snprintf(buf, cap, "%s[%ld]%s", p.base, p.idx, p.suffix);
	else
		snprintf(buf, cap, "%s%s", p.base, p.suffix);
}

__attribute__((format(printf, 4, 5)))
static int fail(dctx_t *c, int code, path_t p, const char *fmt, ...)
{
	c->err->code = code;
	format_path(c->err->field, sizeof c->err->field, p);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err->reason, sizeof c->err->reason, fmt, ap);
	va_end(ap);
	return code;
}

static int fail_malformed(dctx_t *c, const char *what)
{
	return fail(c, HD_E_MALFORMED, path(""), "%s at byte %zu", what,
		    (size_t)(c->r.p - c->base));
}

/*
 * An error about a map key: the field is prefix + the key, shown only
 * as far as it is printable ASCII (keys come from outside).
 */
static int fail_key(dctx_t *c, int code, path_t prefix, const char *k, uint32_t klen,
		    const char *reason)
{
	char shown[48];
	size_t n = 0;
	for (uint32_t i = 0; i < klen && n + 4 < sizeof shown; i++) {
		unsigned char ch = (unsigned char)k[i];
		shown[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	if (klen > 0 && n < klen) {
		memcpy(shown + n, "...", 3);
		n += 3;
	}
	shown[n] = '\0';
	char pre[48];
	format_path(pre, sizeof pre, prefix);
	c->err->code = code;
	snprintf(c->err->field, sizeof c->err->field, "%s%s", pre, shown);
	snprintf(c->err->reason, sizeof c->err->reason, "%s", reason);
	return code;
}

/* Turn a reader failure on a value into an error report. */
static int value_err(dctx_t *c, int rc, path_t p, const char *expected)
{
	if (rc == HD_E_TYPE)
		return fail(c, HD_E_TYPE, p, "expected %s", expected);
	if (rc == HD_E_TOOBIG)
		return fail(c, HD_E_INVALID, p, "integer out of range");
	return fail_malformed(c, "truncated or invalid msgpack");
}

/*
 * Read the next key of a map whose keys are listed in keys. *seen
 * collects the keys met so far (duplicates are refused); prefix is the
 * path of the map with its trailing "." ("msg.").
 */
static int next_key(dctx_t *c, const wire_key_t *keys, size_t n, uint32_t *seen,
		    path_t prefix, int *idx)
{
	const char *k;
	uint32_t klen;
	int rc = hd_mpack_read_str(&c->r, &k, &klen);
	if (rc == HD_E_TYPE) {
		char pre[64];
		format_path(pre, sizeof pre, prefix);
		size_t l = strlen(pre);
		if (l > 0 && pre[l - 1] == '.')
			pre[l - 1] = '\0';
		return fail(c, HD_E_TYPE, path(pre), "map keys must be strings");
	}
	if (rc != HD_OK)
		return fail_malformed(c, "truncated or invalid msgpack");
	int i = find_key(keys, n, k, klen);
	if (i < 0)
		return fail_key(c, HD_E_UNKNOWN_FIELD, prefix, k, klen, "unknown field");
	if (*seen & BIT(i))
		return fail_key(c, HD_E_INVALID, prefix, k, klen, "duplicate key");
	*seen |= BIT(i);
	*idx = i;
	return HD_OK;
}

/*
 * Read a str of min_len..max_len bytes of valid UTF-8 without NUL. The
 * result points into the frame (not NUL-terminated).
 */
static int get_text(dctx_t *c, path_t p, size_t min_len, size_t max_len,
		    const char **s, uint32_t *len)
{
	int rc = hd_mpack_read_str(&c->r, s, len);
	if (rc != HD_OK)
		return value_err(c, rc, p, "a string");
	if (*len > max_len)
		return fail(c, HD_E_TOOBIG, p, "longer than %zu bytes", max_len);
	if (*len < min_len)
		return fail(c, HD_E_INVALID, p, "must not be empty");
	if (!hd_msg_is_utf8(*s, *len))
		return fail(c, HD_E_INVALID, p, "not valid UTF-8 or contains NUL");
	return HD_OK;
}

/* get_text, then a NUL-terminated copy owned by the caller. */
static int dup_text(dctx_t *c, path_t p, size_t min_len, size_t max_len, char **out)
{
	const char *s;
	uint32_t len;
	int rc = get_text(c, p, min_len, max_len, &s, &len);
	if (rc != HD_OK)
		return rc;
	*out = hd_strndup(s, len);
	return HD_OK;
}

/*
 * Starts like a value sealed at rest (hd_seal; the magic is in
 * hd_limits.h so that this codec needs nothing else): only such values
 * get the sealed allowance. Whether it opens is the worker's business.
 */
static bool looks_sealed(const void *p, size_t len, const char *magic)
{
	size_t n = strlen(magic);
	return len > n && memcmp(p, magic, n) == 0;
}

/*
 * body and html: a producer's text up to max_len; in a stored message
 * (sealed_ok) sealed text (hd_seal) up to sealed_max, which is longer.
 */
static int dup_sealable_text(dctx_t *c, path_t p, size_t max_len, size_t sealed_max, char **out)
{
	const char *s;
	uint32_t len;
	int rc = get_text(c, p, 0, c->sealed_ok ? sealed_max : max_len, &s, &len);
	if (rc != HD_OK)
		return rc;
	if (len > max_len && !looks_sealed(s, len, HD_SEAL_TEXT_MAGIC))
		return fail(c, HD_E_TOOBIG, p, "longer than %zu bytes", max_len);
	*out = hd_strndup(s, len);
	return HD_OK;
}

/* Copy a short str into buf (NUL-terminated) for enum lookups; "" if too long. */
static void short_copy(char *buf, size_t cap, const char *s, uint32_t len)
{
	if (len >= cap)
		len = 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
}

static bool is_name_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

/* RFC 6838 restricted-name: 1..127 of ALPHA DIGIT ! # $ & - ^ _ . +, first ALPHA/DIGIT. */
static bool is_restricted_name(const char *s, size_t len)
{
	if (len == 0 || len > 127)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9');
		if (alnum)
			continue;
		if (i == 0 || !strchr("!#$&-^_.+", ch) || ch == '\0')
			return false;
	}
	return true;
}

static bool is_mime_type(const char *s, size_t len)
{
	const char *slash = memchr(s, '/', len);
	if (!slash)
		return false;
	size_t tlen = (size_t)(slash - s);
	return is_restricted_name(s, tlen) && is_restricted_name(slash + 1, len - tlen - 1);
}

/* A file name: no '/', '\\' or control characters (C0, DEL, C1), not "." or "..". */
static const char *attachment_name_problem(const char *s, size_t len)
{
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return "must not be . or ..";
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '/' || ch == '\\')
			return "must not contain / or \\";
		if (ch < 0x20 || ch == 0x7f)
			return "must not contain control characters";
		/* U+0080..U+009F are C2 80..C2 9F in UTF-8 (already validated). */
		if (ch == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] < 0xa0)
			return "must not contain control characters";
	}
	return NULL;
}

/* ---- request decoding ---------------------------------------------------- */

static int decode_addr_list(dctx_t *c, const char *base, bool is_to, char ***v, size_t *count,
			    size_t other_count)
{
	uint32_t n;
	int rc = hd_mpack_read_array(&c->r, &n);
	if (rc != HD_OK)
		return value_err(c, rc, path(base), "an array of strings");
	if (n == 0 && is_to)
		return fail(c, HD_E_INVALID, path(base), "needs at least one recipient");
	if ((size_t)n + other_count > c->max_recipients)
		return fail(c, HD_E_TOOBIG, path(base), "more than %zu recipients (to + cc)",
			    c->max_recipients);
	*v = hd_calloc(n, sizeof **v);
	for (uint32_t i = 0; i < n; i++) {
		rc = dup_text(c, path_i(base, i, ""), 1, HD_MAX_ADDR_BYTES, &(*v)[i]);
		if (rc != HD_OK)
			return rc;
		*count = i + 1u;
	}
	return HD_OK;
}

static int decode_attachment(dctx_t *c, size_t i, hd_attachment_t *a)
{
	const char *base = "msg.attachments";
	uint32_t n, seen = 0;
	int rc = hd_mpack_read_map(&c->r, &n);
	if (rc != HD_OK)
		return value_err(c, rc, path_i(base, i, ""), "a map");
	for (uint32_t j = 0; j < n; j++) {
		int k;
		if ((rc = next_key(c, attachment_keys, COUNT_OF(attachment_keys), &seen,
				   path_i(base, i, "."), &k)) != HD_OK)
			return rc;
		const char *s;
		uint32_t len;
		switch (k) {
		case AK_NAME: {
			path_t p = path_i(base, i, ".name");
			if ((rc = get_text(c, p, 1, HD_MAX_ATTACH_NAME_BYTES, &s, &len)) != HD_OK)
				return rc;
			const char *why = attachment_name_problem(s, len);
			if (why)
				return fail(c, HD_E_INVALID, p, "%s", why);
			a->name = hd_strndup(s, len);
			break;
		}
		case AK_TYPE: {
			path_t p = path_i(base, i, ".type");
			if ((rc = get_text(c, p, 1, HD_MAX_MIME_BYTES, &s, &len)) != HD_OK)
				return rc;
			if (!is_mime_type(s, len))
				return fail(c, HD_E_INVALID, p, "not a MIME type of the form type/subtype");
			a->mime_type = hd_strndup(s, len);
			break;
		}
		default: { /* AK_DATA */
			path_t p = path_i(base, i, ".data");
			const uint8_t *d;
			if ((rc = hd_mpack_read_bin(&c->r, &d, &len)) != HD_OK)
				return value_err(c, rc, p, "bin");
			if (len > HD_MAX_ATTACH_BYTES &&
			    !(c->sealed_ok && len <= HD_MAX_SEALED_ATTACH_BYTES &&
			      looks_sealed(d, len, HD_SEAL_BYTES_MAGIC)))
				return fail(c, HD_E_TOOBIG, p, "longer than %u bytes", HD_MAX_ATTACH_BYTES);
			a->data = hd_malloc(len);
			memcpy(a->data, d, len);
			a->size = len;
			break;
		}
		}
	}
	if (!(seen & BIT(AK_NAME)))
		return fail(c, HD_E_MISSING, path_i(base, i, ".name"), "required");
	if (!(seen & BIT(AK_TYPE)))
		return fail(c, HD_E_MISSING, path_i(base, i, ".type"), "required");
	if (!(seen & BIT(AK_DATA)))
		return fail(c, HD_E_MISSING, path_i(base, i, ".data"), "required");
	return HD_OK;
}

static int decode_attachments(dctx_t *c, hd_msg_t *m)
{
	uint32_t n;
	int rc = hd_mpack_read_array(&c->r, &n);
	if (rc != HD_OK)
		return value_err(c, rc, path("msg.attachments"), "an array of maps");
	if (n > HD_MAX_ATTACHMENTS)
		return fail(c, HD_E_TOOBIG, path("msg.attachments"), "more than %u attachments",
			    HD_MAX_ATTACHMENTS);
	m->attachments = hd_calloc(n, sizeof *m->attachments);
	for (uint32_t i = 0; i < n; i++) {
		m->attachment_count = i + 1u;
		if ((rc = decode_attachment(c, i, &m->attachments[i])) != HD_OK)
			return rc;
	}
	return HD_OK;
}

static int decode_flags(dctx_t *c, hd_msg_t *m)
{
	uint32_t n;
	int rc = hd_mpack_read_array(&c->r, &n);
	if (rc != HD_OK)
		return value_err(c, rc, path("msg.flags"), "an array of strings");
	if (n > HD_MAX_FLAGS)
		return fail(c, HD_E_TOOBIG, path("msg.flags"), "more than %u flags", HD_MAX_FLAGS);
	for (uint32_t i = 0; i < n; i++) {
		const char *s;
		uint32_t len;
		path_t p = path_i("msg.flags", i, "");
		if ((rc = hd_mpack_read_str(&c->r, &s, &len)) != HD_OK)
			return value_err(c, rc, p, "a string");
		char name[16];
		hd_flag_t f;
		short_copy(name, sizeof name, s, len);
		if (hd_flag_parse(name, &f) != HD_OK)
			return fail(c, HD_E_INVALID, p,
				    "unknown flag (important, major, confidential, bulk, needs_reply)");
		if (m->flags & (unsigned)f)
			return fail(c, HD_E_INVALID, p, "duplicate flag");
		m->flags |= (unsigned)f;
	}
	return HD_OK;
}

static int decode_bulk(dctx_t *c, hd_msg_t *m)
{
	uint32_t n, seen = 0;
	int rc = hd_mpack_read_map(&c->r, &n);
	if (rc != HD_OK)
		return value_err(c, rc, path("msg.bulk"), "a map");
	hd_bulk_application_t *b = hd_calloc(1, sizeof *b);
	m->bulk = b;
	for (uint32_t j = 0; j < n; j++) {
		int k;
		if ((rc = next_key(c, bulk_keys, COUNT_OF(bulk_keys), &seen, path("msg.bulk."),
				   &k)) != HD_OK)
			return rc;
		switch (k) {
		case BK_PURPOSE:
			rc = dup_text(c, path("msg.bulk.purpose"), 1, HD_MAX_BULK_TEXT_BYTES, &b->purpose);
			break;
		case BK_AUDIENCE:
			rc = dup_text(c, path("msg.bulk.audience"), 1, HD_MAX_BULK_TEXT_BYTES,
				      &b->audience);
			break;
		case BK_SUMMARY:
			rc = dup_text(c, path("msg.bulk.summary"), 1, HD_MAX_BULK_TEXT_BYTES, &b->summary);
			break;
		default: { /* BK_COUNT */
			uint64_t v;
			if ((rc = hd_mpack_read_uint(&c->r, &v)) != HD_OK)
				return value_err(c, rc, path("msg.bulk.recipient_count"),
						 "an unsigned integer");
			if (v > UINT32_MAX)
				return fail(c, HD_E_TOOBIG, path("msg.bulk.recipient_count"),
					    "larger than %u", UINT32_MAX);
			b->recipient_count = (uint32_t)v;
			break;
		}
		}
		if (rc != HD_OK)
			return rc;
	}
	static const char *const required[] = {
		"msg.bulk.purpose", "msg.bulk.audience", "msg.bulk.recipient_count", "msg.bulk.summary",
	};
	for (int k = 0; k < (int)COUNT_OF(required); k++)
		if (!(seen & BIT(k)))
			return fail(c, HD_E_MISSING, path(required[k]), "required");
	return HD_OK;
}

static int decode_tags(dctx_t *c, hd_msg_t *m)
{
	uint32_t n;
	int rc = hd_mpack_read_map(&c->r, &n);
	if (rc != HD_OK)
		return value_err(c, rc, path("msg.tags"), "a map of strings");
	if (n > HD_MAX_TAGS)
		return fail(c, HD_E_TOOBIG, path("msg.tags"), "more than %u tags", HD_MAX_TAGS);
	m->tags = hd_calloc(n, sizeof *m->tags);
	for (uint32_t i = 0; i < n; i++) {
		const char *k, *v;
		uint32_t klen, vlen;
		path_t p = path_i("msg.tags", i, "");
		int r1 = hd_mpack_read_str(&c->r, &k, &klen);
		if (r1 == HD_E_TYPE)
			return fail(c, HD_E_TYPE, p, "tag keys must be strings");
		if (r1 != HD_OK)
			return value_err(c, r1, p, "a string");
		if (klen > HD_MAX_TAG_KEY_BYTES)
			return fail(c, HD_E_TOOBIG, p, "tag key longer than %u bytes",
				    HD_MAX_TAG_KEY_BYTES);
		if (klen == 0)
			return fail(c, HD_E_INVALID, p, "tag key must not be empty");
		if (!hd_msg_is_utf8(k, klen))
			return fail(c, HD_E_INVALID, p, "tag key not valid UTF-8 or contains NUL");
		/* At most HD_MAX_TAGS keys: a pairwise check is bounded and cheap. */
		for (uint32_t j = 0; j < i; j++)
			if (strlen(m->tags[j].key) == klen && memcmp(m->tags[j].key, k, klen) == 0)
				return fail(c, HD_E_INVALID, p, "duplicate tag key");
		if ((rc = get_text(c, p, 0, HD_MAX_TAG_VALUE_BYTES, &v, &vlen)) != HD_OK)
			return rc;
		m->tags[i].key = hd_strndup(k, klen);
		m->tags[i].value = hd_strndup(v, vlen);
		m->tag_count = i + 1u;
	}
	return HD_OK;
}

static int decode_msg_field(dctx_t *c, hd_msg_t *m, int k)
{
	const char *s;
	uint32_t len;
	int rc;
	char name[16];
	switch (k) {
	case MK_CHANNEL:
		if ((rc = hd_mpack_read_str(&c->r, &s, &len)) != HD_OK)
			return value_err(c, rc, path("msg.channel"), "a string");
		short_copy(name, sizeof name, s, len);
		if (hd_channel_parse(name, &m->channel) != HD_OK)
			return fail(c, HD_E_INVALID, path("msg.channel"), "must be email, im or sms");
		return HD_OK;
	case MK_FROM: {
		const char *why = NULL;
		if ((rc = dup_text(c, path("msg.from"), 1, HD_MAX_ADDR_BYTES, &m->sender)) != HD_OK)
			return rc;
		if (hd_msg_check_address(HD_CHANNEL_EMAIL, m->sender, &why) != HD_OK)
			return fail(c, HD_E_INVALID, path("msg.from"), "%s", why);
		return HD_OK;
	}
	case MK_TO:
		return decode_addr_list(c, "msg.to", true, &m->to, &m->to_count, m->cc_count);
	case MK_CC:
		return decode_addr_list(c, "msg.cc", false, &m->cc, &m->cc_count, m->to_count);
	case MK_CC_REASON:
		return dup_text(c, path("msg.cc_reason"), 0, HD_MAX_REASON_BYTES, &m->cc_reason);
	case MK_SUBJECT:
		if ((rc = get_text(c, path("msg.subject"), 0, HD_MAX_SUBJECT_BYTES, &s, &len)) != HD_OK)
			return rc;
		if (memchr(s, '\r', len) || memchr(s, '\n', len))
			return fail(c, HD_E_INVALID, path("msg.subject"), "must not contain CR or LF");
		m->subject = hd_strndup(s, len);
		return HD_OK;
	case MK_BODY:
		return dup_sealable_text(c, path("msg.body"), HD_MAX_BODY_BYTES,
					 HD_MAX_SEALED_BODY_BYTES, &m->body);
	case MK_HTML:
		return dup_sealable_text(c, path("msg.html"), HD_MAX_HTML_BYTES,
					 HD_MAX_SEALED_HTML_BYTES, &m->html);
	case MK_ATTACHMENTS:
		return decode_attachments(c, m);
	case MK_FLAGS:
		return decode_flags(c, m);
	case MK_PURPOSE:
		if ((rc = hd_mpack_read_str(&c->r, &s, &len)) != HD_OK)
			return value_err(c, rc, path("msg.purpose"), "a string");
		short_copy(name, sizeof name, s, len);
		if (hd_purpose_parse(name, &m->purpose) != HD_OK)
			return fail(c, HD_E_INVALID, path("msg.purpose"),
				    "must be service, urgent or marketing");
		return HD_OK;
	case MK_REPLY_BY:
		if ((rc = hd_mpack_read_int(&c->r, &m->reply_by)) != HD_OK)
			return value_err(c, rc, path("msg.reply_by"), "an integer");
		if (m->reply_by <= 0)
			return fail(c, HD_E_INVALID, path("msg.reply_by"),
				    "must be a positive Unix time in seconds");
		return HD_OK;
	case MK_BULK:
		return decode_bulk(c, m);
	case MK_IDEM:
		return dup_text(c, path("msg.idempotency_key"), 1, HD_MAX_IDEM_KEY_BYTES,
				&m->idempotency_key);
	default: /* MK_TAGS */
		return decode_tags(c, m);
	}
}

static int decode_msg(dctx_t *c, hd_msg_t **msg_p)
{
	uint32_t n, seen = 0;
	int rc = hd_mpack_read_map(&c->r, &n);
	if (rc != HD_OK)
		return value_err(c, rc, path("msg"), "a map");
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	*msg_p = m;
	for (uint32_t i = 0; i < n; i++) {
		int k;
		if ((rc = next_key(c, msg_keys, COUNT_OF(msg_keys), &seen, path("msg."), &k)) != HD_OK)
			return rc;
		if ((rc = decode_msg_field(c, m, k)) != HD_OK)
			return rc;
	}
	if (!(seen & BIT(MK_CHANNEL)))
		return fail(c, HD_E_MISSING, path("msg.channel"), "required");
	if (!(seen & BIT(MK_FROM)))
		return fail(c, HD_E_MISSING, path("msg.from"), "required");
	if (!(seen & BIT(MK_TO)))
		return fail(c, HD_E_MISSING, path("msg.to"), "required");

	/* Channel rules live here, not in policy: past the decoder the struct is trusted. */
	if (m->channel != HD_CHANNEL_EMAIL) {
		static const struct {
			int key;
			const char *field;
		} email_only[] = {
			{MK_CC, "msg.cc"}, {MK_CC_REASON, "msg.cc_reason"},
			{MK_HTML, "msg.html"}, {MK_ATTACHMENTS, "msg.attachments"},
		};
		for (size_t i = 0; i < COUNT_OF(email_only); i++)
			if (seen & BIT(email_only[i].key))
				return fail(c, HD_E_INVALID, path(email_only[i].field),
					    "only allowed for channel email");
	}
	if (m->channel == HD_CHANNEL_SMS && !(seen & BIT(MK_PURPOSE)))
		return fail(c, HD_E_MISSING, path("msg.purpose"), "required for channel sms");
	if (m->channel != HD_CHANNEL_SMS && (seen & BIT(MK_PURPOSE)))
		return fail(c, HD_E_INVALID, path("msg.purpose"), "only allowed for channel sms");

	const char *why = NULL;
	for (size_t i = 0; i < m->to_count; i++)
		if (hd_msg_check_address(m->channel, m->to[i], &why) != HD_OK)
			return fail(c, HD_E_INVALID, path_i("msg.to", i, ""), "%s", why);
	for (size_t i = 0; i < m->cc_count; i++)
		if (hd_msg_check_address(HD_CHANNEL_EMAIL, m->cc[i], &why) != HD_OK)
			return fail(c, HD_E_INVALID, path_i("msg.cc", i, ""), "%s", why);
	return HD_OK;
}

static int decode_msg_at(hd_mpack_reader_t *r, const uint8_t *base, size_t max_recipients,
			 bool sealed_ok, hd_msg_t **out, hd_decode_error_t *err)
{
	hd_decode_error_t scratch;
	if (!err)
		err = &scratch;
	memset(err, 0, sizeof *err);
	*out = NULL;
	dctx_t c = {.r = *r, .base = base ? base : r->p, .err = err, .sealed_ok = sealed_ok};
	c.max_recipients = max_recipients == 0 || max_recipients > HD_MAX_RECIPIENTS
				   ? HD_MAX_RECIPIENTS
				   : max_recipients;
	hd_msg_t *m = NULL;
	int rc = decode_msg(&c, &m);
	if (rc != HD_OK) {
		hd_msg_destroy(&m);
		return rc;
	}
	*r = c.r;
	*out = m;
	return HD_OK;
}

int hd_envelope_decode_msg(hd_mpack_reader_t *r, const uint8_t *base, size_t max_recipients,
			   hd_msg_t **out, hd_decode_error_t *err)
{
	return decode_msg_at(r, base, max_recipients, false, out, err);
}

int hd_envelope_decode_stored_msg(hd_mpack_reader_t *r, const uint8_t *base,
				  size_t max_recipients, hd_msg_t **out, hd_decode_error_t *err)
{
	return decode_msg_at(r, base, max_recipients, true, out, err);
}

static int decode_request_map(dctx_t *c, hd_request_t *out)
{
	uint32_t n, seen = 0;
	int rc = hd_mpack_read_map(&c->r, &n);
	if (rc == HD_E_TYPE)
		return fail(c, HD_E_MALFORMED, path(""), "a request must be one msgpack map");
	if (rc != HD_OK)
		return fail_malformed(c, "truncated or invalid msgpack");
	for (uint32_t i = 0; i < n; i++) {
		int k;
		if ((rc = next_key(c, request_keys, COUNT_OF(request_keys), &seen, path(""), &k)) !=
		    HD_OK)
			return rc;
		const char *s;
		uint32_t len;
		uint64_t u;
		switch (k) {
		case RQ_V:
			if ((rc = hd_mpack_read_uint(&c->r, &u)) != HD_OK)
				return value_err(c, rc, path("v"), "an unsigned integer");
			if (u != HD_PROTOCOL_VERSION)
				return fail(c, HD_E_VERSION, path("v"),
					    "unsupported protocol version %llu; this server speaks %u",
					    (unsigned long long)u, HD_PROTOCOL_VERSION);
			break;
		case RQ_RID:
			if ((rc = hd_mpack_read_uint(&c->r, &out->rid)) != HD_OK)
				return value_err(c, rc, path("rid"), "an unsigned integer");
			break;
		case RQ_OP:
			if ((rc = hd_mpack_read_str(&c->r, &s, &len)) != HD_OK)
				return value_err(c, rc, path("op"), "a string");
			if (str_is(s, len, "submit"))
				out->op = HD_OP_SUBMIT;
			else if (str_is(s, len, "ping"))
				out->op = HD_OP_PING;
			else
				return fail(c, HD_E_INVALID, path("op"), "must be submit or ping");
			break;
		case RQ_APP:
			if ((rc = get_text(c, path("app"), 1, HD_MAX_APP_BYTES, &s, &len)) != HD_OK)
				return rc;
			for (uint32_t j = 0; j < len; j++)
				if (!is_name_char((unsigned char)s[j]))
					return fail(c, HD_E_INVALID, path("app"),
						    "may only contain A-Z a-z 0-9 . _ -");
			out->app = hd_strndup(s, len);
			break;
		default: /* RQ_MSG */
			if ((rc = decode_msg(c, &out->msg)) != HD_OK)
				return rc;
			break;
		}
	}
	if (c->r.p != c->r.end)
		return fail_malformed(c, "trailing bytes after the request map");
	if (!(seen & BIT(RQ_V)))
		return fail(c, HD_E_MISSING, path("v"), "required");
	if (!(seen & BIT(RQ_RID)))
		return fail(c, HD_E_MISSING, path("rid"), "required");
	if (!(seen & BIT(RQ_OP)))
		return fail(c, HD_E_MISSING, path("op"), "required");
	if (out->op == HD_OP_SUBMIT) {
		if (!(seen & BIT(RQ_APP)))
			return fail(c, HD_E_MISSING, path("app"), "required for submit");
		if (!(seen & BIT(RQ_MSG)))
			return fail(c, HD_E_MISSING, path("msg"), "required for submit");
	} else if (seen & BIT(RQ_MSG)) {
		return fail(c, HD_E_INVALID, path("msg"), "not allowed for ping");
	}
	out->version = HD_PROTOCOL_VERSION;
	return HD_OK;
}

/*
 * After a failed decode: walk the top-level map as far as it is
 * well-formed, picking the first "rid" and "v" that read as unsigned
 * integers, so the ERROR can carry the rid and a version mismatch is
 * reported as such whatever else is wrong.
 */
static void rescue_scan(const uint8_t *buf, size_t len, bool *have_rid, uint64_t *rid,
			bool *have_v, uint64_t *v)
{
	hd_mpack_reader_t r;
	uint32_t n;
	hd_mpack_reader_init(&r, buf, len);
	if (hd_mpack_read_map(&r, &n) != HD_OK)
		return;
	for (uint32_t i = 0; i < n && !(*have_rid && *have_v); i++) {
		const char *k;
		uint32_t klen;
		int rc = hd_mpack_read_str(&r, &k, &klen);
		if (rc == HD_E_TYPE) {
			/* Not a string key: skip it and its value. */
			if (hd_mpack_skip(&r, HD_MAX_DEPTH - 1) != HD_OK ||
			    hd_mpack_skip(&r, HD_MAX_DEPTH - 1) != HD_OK)
				return;
			continue;
		}
		if (rc != HD_OK)
			return;
		bool want_rid = !*have_rid && str_is(k, klen, "rid");
		bool want_v = !*have_v && str_is(k, klen, "v");
		if (want_rid && hd_mpack_read_uint(&r, rid) == HD_OK) {
			*have_rid = true;
			continue;
		}
		if (want_v && hd_mpack_read_uint(&r, v) == HD_OK) {
			*have_v = true;
			continue;
		}
		if (hd_mpack_skip(&r, HD_MAX_DEPTH - 1) != HD_OK)
			return;
	}
}

int hd_envelope_decode_request(const uint8_t *buf, size_t len, size_t max_recipients,
			       hd_request_t *out, hd_decode_error_t *err)
{
	hd_decode_error_t scratch;
	if (!err)
		err = &scratch;
	memset(out, 0, sizeof *out);
	memset(err, 0, sizeof *err);
	dctx_t c = {.base = buf, .err = err};
	hd_mpack_reader_init(&c.r, buf, len);
	c.max_recipients = max_recipients == 0 || max_recipients > HD_MAX_RECIPIENTS
				   ? HD_MAX_RECIPIENTS
				   : max_recipients;
	int rc;
	if (len > HD_MAX_FRAME_BYTES)
		rc = fail(&c, HD_E_TOOBIG, path(""), "frame longer than %u bytes",
			  HD_MAX_FRAME_BYTES);
	else
		rc = decode_request_map(&c, out);
	if (rc == HD_OK)
		return HD_OK;

	hd_request_clear(out);
	bool have_rid = false, have_v = false;
	uint64_t rid = 0, v = 0;
	rescue_scan(buf, len, &have_rid, &rid, &have_v, &v);
	out->rid = have_rid ? rid : 0;
	if (have_v && v != HD_PROTOCOL_VERSION && rc != HD_E_VERSION)
		rc = fail(&c, HD_E_VERSION, path("v"),
			  "unsupported protocol version %llu; this server speaks %u",
			  (unsigned long long)v, HD_PROTOCOL_VERSION);
	return rc;
}

void hd_request_clear(hd_request_t *req)
{
	if (!req)
		return;
	free(req->app);
	hd_msg_destroy(&req->msg);
	memset(req, 0, sizeof *req);
}

/* ---- encoding ------------------------------------------------------------ */

typedef struct enc {
	msgpack_sbuffer sbuf;
	msgpack_packer own;    /* the packer over sbuf, when this enc owns the buffer */
	msgpack_packer *pk;    /* where items go: &own, or a caller's (hd_envelope_encode_msg) */
	int rc;  /* msgpack-c failures (only out of memory) accumulate here */
} enc_t;

static void enc_init(enc_t *e, size_t size_hint)
{
	msgpack_sbuffer_init(&e->sbuf);
	/* Pre-size so a large body is copied once, not through a chain of reallocs. */
	e->sbuf.data = hd_malloc(size_hint);
	e->sbuf.alloc = size_hint;
	msgpack_packer_init(&e->own, &e->sbuf, msgpack_sbuffer_write);
	e->pk = &e->own;
	e->rc = 0;
}

static void enc_finish(enc_t *e, uint8_t **buf, size_t *len)
{
	if (e->rc != 0)
		hd_panic("msgpack encoding failed: out of memory");
	*len = e->sbuf.size;
	*buf = (uint8_t *)msgpack_sbuffer_release(&e->sbuf);
}

static void enc_str_n(enc_t *e, const char *s, size_t len)
{
	e->rc |= msgpack_pack_str_with_body(e->pk, s, len);
}

static void enc_str(enc_t *e, const char *s)
{
	enc_str_n(e, s, strlen(s));
}

#define ENC_KEY(e, lit) enc_str_n((e), (lit), sizeof(lit) - 1)

static void enc_uint(enc_t *e, uint64_t v)
{
	e->rc |= msgpack_pack_uint64(e->pk, v);
}

static void enc_int(enc_t *e, int64_t v)
{
	e->rc |= msgpack_pack_int64(e->pk, v);
}

static void enc_bool(enc_t *e, bool v)
{
	e->rc |= v ? msgpack_pack_true(e->pk) : msgpack_pack_false(e->pk);
}

static void enc_map(enc_t *e, size_t n)
{
	e->rc |= msgpack_pack_map(e->pk, n);
}

static void enc_array(enc_t *e, size_t n)
{
	e->rc |= msgpack_pack_array(e->pk, n);
}

static bool strv_ok(char *const *v, size_t n)
{
	if (n > 0 && !v)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!v[i])
			return false;
	return true;
}

static bool fits_u32(const char *s)
{
	return !s || strnlen(s, (size_t)UINT32_MAX + 1) <= UINT32_MAX;
}

/* What encode_msg needs to refuse: what msgpack or the struct cannot represent. */
static bool msg_encodable(const hd_msg_t *m)
{
	if ((unsigned)m->channel > HD_CHANNEL_SMS || !m->sender)
		return false;
	if (!strv_ok(m->to, m->to_count) || !strv_ok(m->cc, m->cc_count))
		return false;
	if (m->to_count > UINT32_MAX || m->cc_count > UINT32_MAX)
		return false;
	if (m->attachment_count > 0 && !m->attachments)
		return false;
	if (m->attachment_count > UINT32_MAX || m->tag_count > UINT32_MAX)
		return false;
	for (size_t i = 0; i < m->attachment_count; i++) {
		const hd_attachment_t *a = &m->attachments[i];
		if (!a->name || !a->mime_type || (a->size > 0 && !a->data) || a->size > UINT32_MAX)
			return false;
	}
	if (m->tag_count > 0 && !m->tags)
		return false;
	for (size_t i = 0; i < m->tag_count; i++)
		if (!m->tags[i].key || !m->tags[i].value)
			return false;
	if (m->bulk && (!m->bulk->purpose || !m->bulk->audience || !m->bulk->summary))
		return false;
	unsigned known = HD_FLAG_IMPORTANT | HD_FLAG_MAJOR | HD_FLAG_CONFIDENTIAL | HD_FLAG_BULK |
			 HD_FLAG_NEEDS_REPLY;
	if (m->flags & ~known)
		return false;
	if ((unsigned)m->purpose > HD_PURPOSE_MARKETING)
		return false;
	return fits_u32(m->subject) && fits_u32(m->body) && fits_u32(m->html) &&
	       fits_u32(m->cc_reason);
}

static void encode_msg(enc_t *e, const hd_msg_t *m)
{
	size_t n = 3; /* channel, from, to */
	n += m->cc_count > 0;
	n += m->cc_reason != NULL;
	n += m->subject != NULL;
	n += m->body != NULL;
	n += m->html != NULL;
	n += m->attachment_count > 0;
	n += m->flags != 0;
	n += m->purpose != HD_PURPOSE_NONE;
	n += m->reply_by != 0;
	n += m->bulk != NULL;
	n += m->idempotency_key != NULL;
	n += m->tag_count > 0;
	enc_map(e, n);

	ENC_KEY(e, "channel");
	enc_str(e, hd_channel_name(m->channel));
	ENC_KEY(e, "from");
	enc_str(e, m->sender);
	ENC_KEY(e, "to");
	enc_array(e, m->to_count);
	for (size_t i = 0; i < m->to_count; i++)
		enc_str(e, m->to[i]);
	if (m->cc_count > 0) {
		ENC_KEY(e, "cc");
		enc_array(e, m->cc_count);
		for (size_t i = 0; i < m->cc_count; i++)
			enc_str(e, m->cc[i]);
	}
	if (m->cc_reason) {
		ENC_KEY(e, "cc_reason");
		enc_str(e, m->cc_reason);
	}
	if (m->subject) {
		ENC_KEY(e, "subject");
		enc_str(e, m->subject);
	}
	if (m->body) {
		ENC_KEY(e, "body");
		enc_str(e, m->body);
	}
	if (m->html) {
		ENC_KEY(e, "html");
		enc_str(e, m->html);
	}
	if (m->attachment_count > 0) {
		ENC_KEY(e, "attachments");
		enc_array(e, m->attachment_count);
		for (size_t i = 0; i < m->attachment_count; i++) {
			const hd_attachment_t *a = &m->attachments[i];
			enc_map(e, 3);
			ENC_KEY(e, "name");
			enc_str(e, a->name);
			ENC_KEY(e, "type");
			enc_str(e, a->mime_type);
			ENC_KEY(e, "data");
			e->rc |= msgpack_pack_bin_with_body(e->pk, a->size ? a->data : (const void *)"",
							    a->size);
		}
	}
	if (m->flags != 0) {
		static const hd_flag_t order[] = {HD_FLAG_IMPORTANT, HD_FLAG_MAJOR,
						  HD_FLAG_CONFIDENTIAL, HD_FLAG_BULK,
						  HD_FLAG_NEEDS_REPLY};
		size_t nf = 0;
		for (size_t i = 0; i < COUNT_OF(order); i++)
			nf += (m->flags & (unsigned)order[i]) != 0;
		ENC_KEY(e, "flags");
		enc_array(e, nf);
		for (size_t i = 0; i < COUNT_OF(order); i++)
			if (m->flags & (unsigned)order[i])
				enc_str(e, hd_flag_name(order[i]));
	}
	if (m->purpose != HD_PURPOSE_NONE) {
		ENC_KEY(e, "purpose");
		enc_str(e, hd_purpose_name(m->purpose));
	}
	if (m->reply_by != 0) {
		ENC_KEY(e, "reply_by");
		enc_int(e, m->reply_by);
	}
	if (m->bulk) {
		ENC_KEY(e, "bulk");
		enc_map(e, 4);
		ENC_KEY(e, "purpose");
		enc_str(e, m->bulk->purpose);
		ENC_KEY(e, "audience");
		enc_str(e, m->bulk->audience);
		ENC_KEY(e, "recipient_count");
		enc_uint(e, m->bulk->recipient_count);
		ENC_KEY(e, "summary");
		enc_str(e, m->bulk->summary);
	}
	if (m->idempotency_key) {
		ENC_KEY(e, "idempotency_key");
		enc_str(e, m->idempotency_key);
	}
	if (m->tag_count > 0) {
		ENC_KEY(e, "tags");
		enc_map(e, m->tag_count);
		for (size_t i = 0; i < m->tag_count; i++) {
			enc_str(e, m->tags[i].key);
			enc_str(e, m->tags[i].value);
		}
	}
}

static size_t msg_size_hint(const hd_msg_t *m)
{
	size_t n = 1024;
	if (m->body)
		n += strlen(m->body);
	if (m->html)
		n += strlen(m->html);
	for (size_t i = 0; i < m->attachment_count; i++)
		n += m->attachments[i].size + 16;
	return n + 64 * (m->to_count + m->cc_count);
}

size_t hd_envelope_msg_size_hint(const hd_msg_t *msg)
{
	return msg ? msg_size_hint(msg) : 64;
}

int hd_envelope_encode_msg(struct msgpack_packer *pk, const hd_msg_t *msg)
{
	if (!pk || !msg || !msg_encodable(msg))
		return HD_E_INVALID;
	enc_t e;
	memset(&e, 0, sizeof e);
	e.pk = pk;
	encode_msg(&e, msg);
	return e.rc != 0 ? HD_E_IO : HD_OK;
}

int hd_envelope_encode_request(const hd_request_t *req, uint8_t **buf, size_t *len)
{
	if (!req || !buf || !len)
		return HD_E_INVALID;
	if (req->op == HD_OP_SUBMIT) {
		if (!req->app || !req->msg || !msg_encodable(req->msg))
			return HD_E_INVALID;
	} else if (req->op == HD_OP_PING) {
		if (req->msg)
			return HD_E_INVALID;
	} else {
		return HD_E_INVALID;
	}
	enc_t e;
	enc_init(&e, req->msg ? msg_size_hint(req->msg) : 64);
	enc_map(&e, 3u + (req->app != NULL) + (req->msg != NULL));
	ENC_KEY(&e, "v");
	enc_uint(&e, req->version ? req->version : HD_PROTOCOL_VERSION);
	ENC_KEY(&e, "rid");
	enc_uint(&e, req->rid);
	ENC_KEY(&e, "op");
	enc_str(&e, req->op == HD_OP_SUBMIT ? "submit" : "ping");
	if (req->app) {
		ENC_KEY(&e, "app");
		enc_str(&e, req->app);
	}
	if (req->msg) {
		ENC_KEY(&e, "msg");
		encode_msg(&e, req->msg);
	}
	enc_finish(&e, buf, len);
	return HD_OK;
}

static void enc_text_capped(enc_t *e, const char *s, size_t max_bytes)
{
	char tmp[HD_MAX_FINDING_TEXT_BYTES + 1];
	size_t cap = max_bytes + 1 < sizeof tmp ? max_bytes + 1 : sizeof tmp;
	size_t n = copy_utf8(tmp, cap, s ? s : "", SIZE_MAX);
	enc_str_n(e, tmp, n);
}

static void enc_findings(enc_t *e, const hd_reply_t *reply)
{
	size_t nf = reply->finding_count < HD_MAX_FINDINGS ? reply->finding_count : HD_MAX_FINDINGS;
	ENC_KEY(e, "findings");
	enc_array(e, nf);
	for (size_t i = 0; i < nf; i++) {
		const hd_finding_t *f = &reply->findings[i];
		enc_map(e, 5);
		ENC_KEY(e, "rule");
		enc_text_capped(e, f->rule, HD_MAX_FINDING_TEXT_BYTES);
		ENC_KEY(e, "clause");
		enc_text_capped(e, f->clause, HD_MAX_FINDING_TEXT_BYTES);
		ENC_KEY(e, "action");
		enc_text_capped(e, f->action, HD_MAX_FINDING_TEXT_BYTES);
		ENC_KEY(e, "severity");
		enc_text_capped(e, f->severity, HD_MAX_FINDING_TEXT_BYTES);
		ENC_KEY(e, "reason");
		enc_text_capped(e, f->reason, HD_MAX_FINDING_TEXT_BYTES);
	}
}

int hd_envelope_encode_reply(const hd_reply_t *reply, uint8_t **buf, size_t *len)
{
	if (!reply || !buf || !len)
		return HD_E_INVALID;
	if (reply->ok && !reply->pong) {
		if ((unsigned)reply->klass > HD_CLASS_BULK)
			return HD_E_INVALID;
		if (strcmp(reply->state, "queued") != 0 && strcmp(reply->state, "held") != 0)
			return HD_E_INVALID;
	}
	if (!reply->pong && reply->finding_count > 0 && !reply->findings)
		return HD_E_INVALID;
	enc_t e;
	enc_init(&e, 512);
	if (reply->ok && reply->pong) {
		enc_map(&e, 3);
	} else if (reply->ok) {
		enc_map(&e, 8);
	} else {
		/* An ERROR carries the policy findings that refused it, if any. */
		enc_map(&e, 7u + (reply->retry_after_ms > 0) + (reply->finding_count > 0));
	}
	ENC_KEY(&e, "v");
	enc_uint(&e, HD_PROTOCOL_VERSION);
	ENC_KEY(&e, "rid");
	enc_uint(&e, reply->rid);
	ENC_KEY(&e, "ok");
	enc_bool(&e, reply->ok);
	if (reply->ok && !reply->pong) {
		ENC_KEY(&e, "id");
		enc_int(&e, reply->id);
		ENC_KEY(&e, "class");
		enc_str(&e, hd_class_name(reply->klass));
		ENC_KEY(&e, "state");
		enc_str(&e, reply->state);
		ENC_KEY(&e, "duplicate");
		enc_bool(&e, reply->duplicate);
		enc_findings(&e, reply);
	} else if (!reply->ok) {
		int code = reply->code;
		if (code >= 0 || hd_err_from_name(hd_err_name(code)) != code)
			code = HD_E_INTERNAL;
		ENC_KEY(&e, "code");
		enc_str(&e, hd_err_name(code));
		char tmp[sizeof reply->reason];
		ENC_KEY(&e, "field");
		enc_str_n(&e, tmp, copy_utf8(tmp, sizeof reply->field, reply->field,
					     sizeof reply->field));
		ENC_KEY(&e, "reason");
		enc_str_n(&e, tmp, copy_utf8(tmp, sizeof reply->reason, reply->reason,
					     sizeof reply->reason));
		ENC_KEY(&e, "retryable");
		enc_bool(&e, reply->retryable);
		if (reply->retry_after_ms > 0) {
			ENC_KEY(&e, "retry_after_ms");
			enc_uint(&e, (uint64_t)reply->retry_after_ms);
		}
		if (reply->finding_count > 0)
			enc_findings(&e, reply);
	}
	enc_finish(&e, buf, len);
	return HD_OK;
}

/* ---- reply decoding ------------------------------------------------------ */

static int decode_finding(dctx_t *c, size_t i, hd_finding_t *f)
{
	uint32_t n, seen = 0;
	int rc = hd_mpack_read_map(&c->r, &n);
	if (rc != HD_OK)
		return value_err(c, rc, path_i("findings", i, ""), "a map");
	static const char *const suffix[] = {".rule", ".clause", ".action", ".severity", ".reason"};
	for (uint32_t j = 0; j < n; j++) {
		int k;
		if ((rc = next_key(c, finding_keys, COUNT_OF(finding_keys), &seen,
				   path_i("findings", i, "."), &k)) != HD_OK)
			return rc;
		char **slot = k == FK_RULE ? &f->rule : k == FK_CLAUSE ? &f->clause
			    : k == FK_ACTION ? &f->action : k == FK_SEVERITY ? &f->severity
			    : &f->reason;
		if ((rc = dup_text(c, path_i("findings", i, suffix[k]), 0, HD_MAX_FINDING_TEXT_BYTES,
				   slot)) != HD_OK)
			return rc;
	}
	for (int k = 0; k < (int)COUNT_OF(suffix); k++)
		if (!(seen & BIT(k)))
			return fail(c, HD_E_MISSING, path_i("findings", i, suffix[k]), "required");
	return HD_OK;
}

static int decode_reply_map(dctx_t *c, hd_reply_t *out)
{
	uint32_t n, seen = 0;
	int rc = hd_mpack_read_map(&c->r, &n);
	if (rc == HD_E_TYPE)
		return fail(c, HD_E_MALFORMED, path(""), "a reply must be one msgpack map");
	if (rc != HD_OK)
		return fail_malformed(c, "truncated or invalid msgpack");
	for (uint32_t i = 0; i < n; i++) {
		int k;
		if ((rc = next_key(c, reply_keys, COUNT_OF(reply_keys), &seen, path(""), &k)) != HD_OK)
			return rc;
		const char *s;
		uint32_t len;
		uint64_t u;
		char name[HD_MAX_CODE_NAME_BYTES + 1];
		switch (k) {
		case PK_V:
			if ((rc = hd_mpack_read_uint(&c->r, &u)) != HD_OK)
				return value_err(c, rc, path("v"), "an unsigned integer");
			if (u != HD_PROTOCOL_VERSION)
				return fail(c, HD_E_VERSION, path("v"), "unsupported protocol version %llu",
					    (unsigned long long)u);
			break;
		case PK_RID:
			if ((rc = hd_mpack_read_uint(&c->r, &out->rid)) != HD_OK)
				return value_err(c, rc, path("rid"), "an unsigned integer");
			break;
		case PK_OK:
			if ((rc = hd_mpack_read_bool(&c->r, &out->ok)) != HD_OK)
				return value_err(c, rc, path("ok"), "a boolean");
			break;
		case PK_ID:
			if ((rc = hd_mpack_read_int(&c->r, &out->id)) != HD_OK)
				return value_err(c, rc, path("id"), "an integer");
			break;
		case PK_CLASS:
			if ((rc = get_text(c, path("class"), 1, 16, &s, &len)) != HD_OK)
				return rc;
			short_copy(name, sizeof name, s, len);
			if (hd_class_parse(name, &out->klass) != HD_OK)
				return fail(c, HD_E_INVALID, path("class"),
					    "must be general, important or bulk");
			break;
		case PK_STATE:
			if ((rc = hd_mpack_read_str(&c->r, &s, &len)) != HD_OK)
				return value_err(c, rc, path("state"), "a string");
			if (!str_is(s, len, "queued") && !str_is(s, len, "held"))
				return fail(c, HD_E_INVALID, path("state"), "must be queued or held");
			short_copy(out->state, sizeof out->state, s, len);
			break;
		case PK_DUPLICATE:
			if ((rc = hd_mpack_read_bool(&c->r, &out->duplicate)) != HD_OK)
				return value_err(c, rc, path("duplicate"), "a boolean");
			break;
		case PK_FINDINGS: {
			uint32_t nf;
			if ((rc = hd_mpack_read_array(&c->r, &nf)) != HD_OK)
				return value_err(c, rc, path("findings"), "an array of maps");
			if (nf > HD_MAX_FINDINGS)
				return fail(c, HD_E_TOOBIG, path("findings"), "more than %u findings",
					    HD_MAX_FINDINGS);
			out->findings = hd_calloc(nf, sizeof *out->findings);
			for (uint32_t j = 0; j < nf; j++) {
				out->finding_count = j + 1u;
				if ((rc = decode_finding(c, j, &out->findings[j])) != HD_OK)
					return rc;
			}
			break;
		}
		case PK_CODE:
			if ((rc = get_text(c, path("code"), 1, HD_MAX_CODE_NAME_BYTES, &s, &len)) != HD_OK)
				return rc;
			short_copy(name, sizeof name, s, len);
			/* An unknown name (a newer server's) still is an error: say internal. */
			out->code = hd_err_from_name(name);
			break;
		case PK_FIELD:
			if ((rc = get_text(c, path("field"), 0, sizeof out->field - 1, &s, &len)) != HD_OK)
				return rc;
			short_copy(out->field, sizeof out->field, s, len);
			break;
		case PK_REASON:
			if ((rc = get_text(c, path("reason"), 0, sizeof out->reason - 1, &s, &len)) !=
			    HD_OK)
				return rc;
			short_copy(out->reason, sizeof out->reason, s, len);
			break;
		case PK_RETRYABLE:
			if ((rc = hd_mpack_read_bool(&c->r, &out->retryable)) != HD_OK)
				return value_err(c, rc, path("retryable"), "a boolean");
			break;
		default: /* PK_RETRY_AFTER */
			if ((rc = hd_mpack_read_uint(&c->r, &u)) != HD_OK)
				return value_err(c, rc, path("retry_after_ms"), "an unsigned integer");
			if (u > INT64_MAX)
				return fail(c, HD_E_INVALID, path("retry_after_ms"), "out of range");
			out->retry_after_ms = (int64_t)u;
			break;
		}
	}
	if (c->r.p != c->r.end)
		return fail_malformed(c, "trailing bytes after the reply map");
	if (!(seen & BIT(PK_V)))
		return fail(c, HD_E_MISSING, path("v"), "required");
	if (!(seen & BIT(PK_RID)))
		return fail(c, HD_E_MISSING, path("rid"), "required");
	if (!(seen & BIT(PK_OK)))
		return fail(c, HD_E_MISSING, path("ok"), "required");

	const uint32_t ack_keys = BIT(PK_ID) | BIT(PK_CLASS) | BIT(PK_STATE) | BIT(PK_DUPLICATE) |
				  BIT(PK_FINDINGS);
	const uint32_t err_keys = BIT(PK_CODE) | BIT(PK_FIELD) | BIT(PK_REASON) |
				  BIT(PK_RETRYABLE) | BIT(PK_RETRY_AFTER);
	/* findings: always in an ACK, optional in an ERROR (what refused it). */
	const uint32_t forbidden = out->ok ? err_keys : ack_keys & ~BIT(PK_FINDINGS);
	const uint32_t required = out->ok ? ack_keys : err_keys & ~BIT(PK_RETRY_AFTER);
	for (int k = 0; k < (int)COUNT_OF(reply_keys); k++)
		if (seen & forbidden & BIT(k))
			return fail(c, HD_E_INVALID, path(reply_keys[k].name),
				    out->ok ? "not allowed in an ACK" : "not allowed in an ERROR");
	if (out->ok && !(seen & ack_keys)) {
		out->pong = true;
		return HD_OK;
	}
	for (int k = 0; k < (int)COUNT_OF(reply_keys); k++)
		if ((required & BIT(k)) && !(seen & BIT(k)))
			return fail(c, HD_E_MISSING, path(reply_keys[k].name), "required");
	return HD_OK;
}

int hd_envelope_decode_reply(const uint8_t *buf, size_t len, hd_reply_t *out,
			     hd_decode_error_t *err)
{
	hd_decode_error_t scratch;
	if (!err)
		err = &scratch;
	memset(out, 0, sizeof *out);
	memset(err, 0, sizeof *err);
	dctx_t c = {.base = buf, .err = err, .max_recipients = 0};
	hd_mpack_reader_init(&c.r, buf, len);
	int rc;
	if (len > HD_MAX_FRAME_BYTES)
		rc = fail(&c, HD_E_TOOBIG, path(""), "frame longer than %u bytes",
			  HD_MAX_FRAME_BYTES);
	else
		rc = decode_reply_map(&c, out);
	if (rc == HD_OK)
		return HD_OK;
	uint64_t rid = out->rid;
	hd_reply_clear(out);
	out->rid = rid;
	return rc;
}

void hd_reply_clear(hd_reply_t *reply)
{
	if (!reply)
		return;
	for (size_t i = 0; reply->findings && i < reply->finding_count; i++) {
		hd_finding_t *f = &reply->findings[i];
		free(f->rule);
		free(f->clause);
		free(f->action);
		free(f->severity);
		free(f->reason);
		free(f->field);
	}
	free(reply->findings);
	memset(reply, 0, sizeof *reply);
}

void hd_reply_set_error(hd_reply_t *reply, int code, const char *field, const char *reason)
{
	if (!reply)
		return;
	reply->ok = false;
	reply->pong = false;
	reply->code = code;
	copy_utf8(reply->field, sizeof reply->field, field ? field : "", SIZE_MAX);
	copy_utf8(reply->reason, sizeof reply->reason, reason ? reason : hd_strerror(code),
		  SIZE_MAX);
	reply->retryable = hd_err_is_retryable(code);
	reply->retry_after_ms = 0;
}
