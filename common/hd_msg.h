/*
 * NAME
 *	hd_msg - a message submitted by a producer
 * DESCRIPTION
 *	The decoded, validated form of a submission, shared by the producer
 *	codec (hd_envelope), the client library and the broker. Past the
 *	decoder code trusts this struct: every string is NUL-terminated
 *	valid UTF-8 within its limit (hd_limits.h) and every address has
 *	passed hd_msg_check_address for its channel.
 * OWNERSHIP
 *	hd_msg_t owns every string and buffer it points to; hd_msg_destroy
 *	frees them all.
 */
#ifndef HD_MSG_H
#define HD_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { HD_CHANNEL_EMAIL, HD_CHANNEL_IM, HD_CHANNEL_SMS } hd_channel_t;

typedef enum {
	HD_CLASS_GENERAL,
	HD_CLASS_IMPORTANT,
	HD_CLASS_BULK
} hd_class_t;

typedef enum {
	HD_FLAG_IMPORTANT    = 1u << 0,
	HD_FLAG_MAJOR        = 1u << 1,
	HD_FLAG_CONFIDENTIAL = 1u << 2,
	HD_FLAG_BULK         = 1u << 3,
	HD_FLAG_NEEDS_REPLY  = 1u << 4
} hd_flag_t;

typedef enum {
	HD_PURPOSE_NONE,
	HD_PURPOSE_SERVICE,
	HD_PURPOSE_URGENT,
	HD_PURPOSE_MARKETING
} hd_purpose_t;

typedef struct hd_attachment {
	char *name;
	char *mime_type;
	uint8_t *data;
	size_t size;
} hd_attachment_t;

typedef struct hd_tag {
	char *key;
	char *value;
} hd_tag_t;

typedef struct hd_bulk_application {
	char *purpose;
	char *audience;
	uint32_t recipient_count;
	char *summary;
} hd_bulk_application_t;

typedef struct hd_msg {
	hd_channel_t channel;
	char *sender;
	char **to;
	size_t to_count;
	char **cc;
	size_t cc_count;
	char *cc_reason;              /* NULL when absent */
	char *subject;                /* NULL when absent */
	char *body;                   /* NULL when absent */
	char *html;                   /* email only; NULL when absent */
	hd_attachment_t *attachments;
	size_t attachment_count;
	unsigned flags;               /* HD_FLAG_* */
	hd_purpose_t purpose;
	int64_t reply_by;             /* Unix seconds; 0 when absent */
	hd_bulk_application_t *bulk;  /* NULL when absent */
	char *idempotency_key;        /* NULL when absent */
	hd_tag_t *tags;
	size_t tag_count;
} hd_msg_t;

/* Caller owns the result: an empty email message. */
hd_msg_t *hd_msg_new(hd_channel_t channel);

/* NULL-safe; frees everything and sets *self_p to NULL. */
void hd_msg_destroy(hd_msg_t **self_p);

/* Names on the wire and in the database. Static storage. */
const char *hd_channel_name(hd_channel_t channel);
const char *hd_class_name(hd_class_t klass);
const char *hd_purpose_name(hd_purpose_t purpose);
const char *hd_flag_name(hd_flag_t flag);

/* Parse wire names; 0 on success, HD_E_INVALID otherwise. */
int hd_channel_parse(const char *name, hd_channel_t *out);
int hd_purpose_parse(const char *name, hd_purpose_t *out);
int hd_flag_parse(const char *name, hd_flag_t *out);

/* hd_class_name in reverse; 0 on success, HD_E_INVALID otherwise. */
int hd_class_parse(const char *name, hd_class_t *out);

/*
 * Builders for producers and tests. Each copies its arguments (the
 * message owns the copies) and grows the array by one; they check
 * nothing: the decoder (or encoding then decoding) validates.
 */
void hd_msg_add_to(hd_msg_t *self, const char *addr);
void hd_msg_add_cc(hd_msg_t *self, const char *addr);
void hd_msg_add_attachment(hd_msg_t *self, const char *name, const char *mime_type,
			   const void *data, size_t size);
void hd_msg_add_tag(hd_msg_t *self, const char *key, const char *value);
/* Replaces any bulk application already set. */
void hd_msg_set_bulk(hd_msg_t *self, const char *purpose, const char *audience,
		     uint32_t recipient_count, const char *summary);

/* Total recipients (to + cc). */
size_t hd_msg_recipient_count(const hd_msg_t *self);

/*
 * Check one address for channel: email = RFC 5321 mailbox (dot-atom
 * local part or quoted string, domain of LDH labels or an address
 * literal); sms = E.164 ("+" then 8..15 digits, no leading zero);
 * im = registered-group name syntax (1..64 of [A-Za-z0-9._-], starting
 * alphanumeric). Returns 0 or HD_E_INVALID with a reason in why
 * (static storage).
 */
int hd_msg_check_address(hd_channel_t channel, const char *addr, const char **why);

/* True when s (len bytes) is valid UTF-8 without NUL bytes. */
bool hd_msg_is_utf8(const char *s, size_t len);

#endif
