/*
 * NAME
 *	herald_msg - the message builder of libherald
 * DESCRIPTION
 *	Wraps an hd_msg_t (the wire form shared with heraldd) and refuses,
 *	field by field, whatever the protocol would refuse for size or
 *	encoding, so local misuse surfaces as HERALD_E_INVAL at the call
 *	that caused it. Address syntax and channel rules (what only email
 *	or only SMS may carry) are left to heraldd, whose error names the
 *	offending field. Never touches the network.
 * OWNERSHIP
 *	Every setter copies; the hd_msg_t owns all copies.
 * LIMITS
 *	hd_limits.h, mirrored publicly as HERALD_MAX_* (checked below).
 */
#include "herald_msg_priv.h"

#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "hd_limits.h"
#include "hd_mem.h"

_Static_assert(HERALD_MAX_APP_BYTES == HD_MAX_APP_BYTES, "limit drift");
_Static_assert(HERALD_MAX_ADDR_BYTES == HD_MAX_ADDR_BYTES, "limit drift");
_Static_assert(HERALD_MAX_RECIPIENTS == HD_MAX_RECIPIENTS, "limit drift");
_Static_assert(HERALD_MAX_SUBJECT_BYTES == HD_MAX_SUBJECT_BYTES, "limit drift");
_Static_assert(HERALD_MAX_BODY_BYTES == HD_MAX_BODY_BYTES, "limit drift");
_Static_assert(HERALD_MAX_HTML_BYTES == HD_MAX_HTML_BYTES, "limit drift");
_Static_assert(HERALD_MAX_REASON_BYTES == HD_MAX_REASON_BYTES, "limit drift");
_Static_assert(HERALD_MAX_ATTACHMENTS == HD_MAX_ATTACHMENTS, "limit drift");
_Static_assert(HERALD_MAX_ATTACH_NAME_BYTES == HD_MAX_ATTACH_NAME_BYTES, "limit drift");
_Static_assert(HERALD_MAX_MIME_BYTES == HD_MAX_MIME_BYTES, "limit drift");
_Static_assert(HERALD_MAX_ATTACH_BYTES == HD_MAX_ATTACH_BYTES, "limit drift");
_Static_assert(HERALD_MAX_IDEM_KEY_BYTES == HD_MAX_IDEM_KEY_BYTES, "limit drift");
_Static_assert(HERALD_MAX_TAGS == HD_MAX_TAGS, "limit drift");
_Static_assert(HERALD_MAX_TAG_KEY_BYTES == HD_MAX_TAG_KEY_BYTES, "limit drift");
_Static_assert(HERALD_MAX_TAG_VALUE_BYTES == HD_MAX_TAG_VALUE_BYTES, "limit drift");
_Static_assert(HERALD_MAX_BULK_TEXT_BYTES == HD_MAX_BULK_TEXT_BYTES, "limit drift");

#define HM_KEY_RANDOM_BYTES 16u

struct herald_msg {
	hd_msg_t *wire;
	size_t to_cap;
	size_t cc_cap;
	size_t attach_bytes;  /* sum of attachment sizes */
};

/* True when s is 1..max_bytes (or 0.. when allow_empty) of UTF-8. */
static bool hm_text_ok(const char *s, size_t max_bytes, bool allow_empty)
{
	if (!s)
		return false;
	size_t len = strnlen(s, (size_t)max_bytes + 1);
	if (len > max_bytes || (len == 0 && !allow_empty))
		return false;
	return hd_msg_is_utf8(s, len);
}

/* Replace *dst by a copy of s after checking it. */
static int hm_set_text(char **dst, const char *s, size_t max_bytes, bool allow_empty)
{
	if (!hm_text_ok(s, max_bytes, allow_empty))
		return HERALD_E_INVAL;
	char *copy = hd_strdup(s);
	hd_free(dst);
	*dst = copy;
	return HERALD_OK;
}

static int hm_add_addr(herald_msg_t *self, char ***list, size_t *count, size_t *cap,
		       const char *addr)
{
	if (!self || !hm_text_ok(addr, HD_MAX_ADDR_BYTES, false))
		return HERALD_E_INVAL;
	if (hd_msg_recipient_count(self->wire) >= HD_MAX_RECIPIENTS)
		return HERALD_E_INVAL;
	if (*count == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		*list = hd_realloc(*list, *cap * sizeof(**list));
	}
	(*list)[(*count)++] = hd_strdup(addr);
	return HERALD_OK;
}

herald_msg_t *herald_msg_new(herald_channel_t channel)
{
	hd_channel_t ch;
	switch (channel) {
	case HERALD_EMAIL: ch = HD_CHANNEL_EMAIL; break;
	case HERALD_IM:    ch = HD_CHANNEL_IM; break;
	case HERALD_SMS:   ch = HD_CHANNEL_SMS; break;
	default:           return NULL;
	}
	herald_msg_t *self = hd_calloc(1, sizeof(*self));
	self->wire = hd_msg_new(ch);
	self->wire->channel = ch;
	return self;
}

void herald_msg_destroy(herald_msg_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	herald_msg_t *self = *self_p;
	hd_msg_destroy(&self->wire);
	hd_free(self_p);
}

int herald_msg_set_from(herald_msg_t *self, const char *from)
{
	if (!self)
		return HERALD_E_INVAL;
	return hm_set_text(&self->wire->sender, from, HD_MAX_ADDR_BYTES, false);
}

int herald_msg_add_to(herald_msg_t *self, const char *addr)
{
	if (!self)
		return HERALD_E_INVAL;
	return hm_add_addr(self, &self->wire->to, &self->wire->to_count, &self->to_cap, addr);
}

int herald_msg_add_cc(herald_msg_t *self, const char *addr)
{
	if (!self)
		return HERALD_E_INVAL;
	return hm_add_addr(self, &self->wire->cc, &self->wire->cc_count, &self->cc_cap, addr);
}

int herald_msg_set_cc_reason(herald_msg_t *self, const char *reason)
{
	if (!self)
		return HERALD_E_INVAL;
	return hm_set_text(&self->wire->cc_reason, reason, HD_MAX_REASON_BYTES, false);
}

int herald_msg_set_subject(herald_msg_t *self, const char *subject)
{
	if (!self)
		return HERALD_E_INVAL;
	return hm_set_text(&self->wire->subject, subject, HD_MAX_SUBJECT_BYTES, true);
}

int herald_msg_set_body(herald_msg_t *self, const char *body)
{
	if (!self)
		return HERALD_E_INVAL;
	return hm_set_text(&self->wire->body, body, HD_MAX_BODY_BYTES, true);
}

int herald_msg_set_html(herald_msg_t *self, const char *html)
{
	if (!self)
		return HERALD_E_INVAL;
	return hm_set_text(&self->wire->html, html, HD_MAX_HTML_BYTES, true);
}

int herald_msg_add_attachment(herald_msg_t *self, const char *name, const char *mime_type,
			      const void *data, size_t size)
{
	if (!self || !hm_text_ok(name, HD_MAX_ATTACH_NAME_BYTES, false))
		return HERALD_E_INVAL;
	if (!mime_type)
		mime_type = "application/octet-stream";
	if (!hm_text_ok(mime_type, HD_MAX_MIME_BYTES, false))
		return HERALD_E_INVAL;
	if ((!data && size > 0) || size > HD_MAX_ATTACH_BYTES)
		return HERALD_E_INVAL;
	hd_msg_t *w = self->wire;
	if (w->attachment_count >= HD_MAX_ATTACHMENTS)
		return HERALD_E_INVAL;
	/* All attachments travel in one frame: refuse early what can never fit. */
	if (self->attach_bytes + size > HD_MAX_FRAME_BYTES)
		return HERALD_E_INVAL;
	w->attachments = hd_realloc(w->attachments,
				    (w->attachment_count + 1) * sizeof(*w->attachments));
	hd_attachment_t *a = &w->attachments[w->attachment_count++];
	a->name = hd_strdup(name);
	a->mime_type = hd_strdup(mime_type);
	a->data = hd_malloc(size ? size : 1);
	if (size)
		memcpy(a->data, data, size);
	a->size = size;
	self->attach_bytes += size;
	return HERALD_OK;
}

int herald_msg_set_flag(herald_msg_t *self, unsigned flags)
{
	static const struct { unsigned pub; unsigned wire; } map[] = {
		{HERALD_FLAG_IMPORTANT, HD_FLAG_IMPORTANT},
		{HERALD_FLAG_MAJOR, HD_FLAG_MAJOR},
		{HERALD_FLAG_CONFIDENTIAL, HD_FLAG_CONFIDENTIAL},
		{HERALD_FLAG_BULK, HD_FLAG_BULK},
		{HERALD_FLAG_NEEDS_REPLY, HD_FLAG_NEEDS_REPLY},
	};
	if (!self || flags == 0)
		return HERALD_E_INVAL;
	unsigned known = 0, wire = 0;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		known |= map[i].pub;
		if (flags & map[i].pub)
			wire |= map[i].wire;
	}
	if (flags & ~known)
		return HERALD_E_INVAL;
	self->wire->flags |= wire;
	return HERALD_OK;
}

int herald_msg_set_purpose(herald_msg_t *self, herald_purpose_t purpose)
{
	if (!self)
		return HERALD_E_INVAL;
	switch (purpose) {
	case HERALD_PURPOSE_NONE:      self->wire->purpose = HD_PURPOSE_NONE; break;
	case HERALD_PURPOSE_SERVICE:   self->wire->purpose = HD_PURPOSE_SERVICE; break;
	case HERALD_PURPOSE_URGENT:    self->wire->purpose = HD_PURPOSE_URGENT; break;
	case HERALD_PURPOSE_MARKETING: self->wire->purpose = HD_PURPOSE_MARKETING; break;
	default:                       return HERALD_E_INVAL;
	}
	return HERALD_OK;
}

int herald_msg_set_reply_by(herald_msg_t *self, int64_t unix_s)
{
	if (!self || unix_s < 0)
		return HERALD_E_INVAL;
	self->wire->reply_by = unix_s;
	return HERALD_OK;
}

int herald_msg_set_bulk(herald_msg_t *self, const char *purpose, const char *audience,
			uint32_t recipient_count, const char *summary)
{
	if (!self || !hm_text_ok(purpose, HD_MAX_BULK_TEXT_BYTES, false) ||
	    !hm_text_ok(audience, HD_MAX_BULK_TEXT_BYTES, false) ||
	    !hm_text_ok(summary, HD_MAX_BULK_TEXT_BYTES, false))
		return HERALD_E_INVAL;
	hd_msg_t *w = self->wire;
	if (!w->bulk)
		w->bulk = hd_calloc(1, sizeof(*w->bulk));
	hd_free(&w->bulk->purpose);
	hd_free(&w->bulk->audience);
	hd_free(&w->bulk->summary);
	w->bulk->purpose = hd_strdup(purpose);
	w->bulk->audience = hd_strdup(audience);
	w->bulk->summary = hd_strdup(summary);
	w->bulk->recipient_count = recipient_count;
	return HERALD_OK;
}

int herald_msg_set_idempotency_key(herald_msg_t *self, const char *key)
{
	if (!self)
		return HERALD_E_INVAL;
	return hm_set_text(&self->wire->idempotency_key, key, HD_MAX_IDEM_KEY_BYTES, false);
}

int herald_msg_add_tag(herald_msg_t *self, const char *key, const char *value)
{
	if (!self || !hm_text_ok(key, HD_MAX_TAG_KEY_BYTES, false) ||
	    !hm_text_ok(value, HD_MAX_TAG_VALUE_BYTES, true))
		return HERALD_E_INVAL;
	hd_msg_t *w = self->wire;
	for (size_t i = 0; i < w->tag_count; i++) {
		if (strcmp(w->tags[i].key, key) == 0) {
			char *copy = hd_strdup(value);
			hd_free(&w->tags[i].value);
			w->tags[i].value = copy;
			return HERALD_OK;
		}
	}
	if (w->tag_count >= HD_MAX_TAGS)
		return HERALD_E_INVAL;
	w->tags = hd_realloc(w->tags, (w->tag_count + 1) * sizeof(*w->tags));
	w->tags[w->tag_count].key = hd_strdup(key);
	w->tags[w->tag_count].value = hd_strdup(value);
	w->tag_count++;
	return HERALD_OK;
}

const char *herald_msg_idempotency_key(const herald_msg_t *self)
{
	return self ? self->wire->idempotency_key : NULL;
}

hd_msg_t *herald_msg_wire(herald_msg_t *self)
{
	return self ? self->wire : NULL;
}

void herald_msg_ensure_key(herald_msg_t *self)
{
	if (self->wire->idempotency_key)
		return;
	if (sodium_init() < 0)
		hd_panic("sodium_init failed");
	unsigned char raw[HM_KEY_RANDOM_BYTES];
	char hex[2 * HM_KEY_RANDOM_BYTES + 1];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	self->wire->idempotency_key = hd_strdup(hex);
}
