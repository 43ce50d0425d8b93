/*
 * NAME
 *	hd_msg - a message submitted by a producer
 * DESCRIPTION
 *	Construction and destruction of hd_msg_t, the wire names of its
 *	enums, and the syntax checks every decoder relies on: addresses per
 *	channel and UTF-8. The checks are pure functions over bytes; they
 *	never allocate and never log.
 * LIMITS
 *	Email addresses are ASCII only (no SMTPUTF8 in protocol v1), at
 *	most HD_MAX_ADDR_BYTES, local part at most 64 bytes (RFC 5321).
 */
#include "hd_msg.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "hd_err.h"
#include "hd_limits.h"
#include "hd_mem.h"

/* RFC 5321 4.5.3.1.1 */
#define HD_MAX_LOCAL_PART_BYTES 64u
/* RFC 1035 2.3.4 */
#define HD_MAX_LABEL_BYTES 63u
#define HD_MAX_GROUP_BYTES 64u
#define HD_E164_MIN_DIGITS 8u
#define HD_E164_MAX_DIGITS 15u

hd_msg_t *hd_msg_new(hd_channel_t channel)
{
	hd_msg_t *self = hd_calloc(1, sizeof *self);
	self->channel = channel;
	self->purpose = HD_PURPOSE_NONE;
	return self;
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void hd_msg_destroy(hd_msg_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_msg_t *self = *self_p;
	free(self->sender);
	free_strv(self->to, self->to_count);
	free_strv(self->cc, self->cc_count);
	free(self->cc_reason);
	free(self->subject);
	free(self->body);
	free(self->html);
	if (self->attachments) {
		for (size_t i = 0; i < self->attachment_count; i++) {
			free(self->attachments[i].name);
			free(self->attachments[i].mime_type);
			free(self->attachments[i].data);
		}
		free(self->attachments);
	}
	if (self->bulk) {
		free(self->bulk->purpose);
		free(self->bulk->audience);
		free(self->bulk->summary);
		free(self->bulk);
	}
	free(self->idempotency_key);
	if (self->tags) {
		for (size_t i = 0; i < self->tag_count; i++) {
			free(self->tags[i].key);
			free(self->tags[i].value);
		}
		free(self->tags);
	}
	free(self);
	*self_p = NULL;
}

/* Names. The tables are indexed by the enum values. */

static const char *const channel_names[] = {"email", "im", "sms"};
static const char *const class_names[] = {"general", "important", "bulk"};
static const char *const purpose_names[] = {"none", "service", "urgent", "marketing"};
static const struct {
	hd_flag_t flag;
	const char *name;
} flag_names[] = {
	{HD_FLAG_IMPORTANT, "important"},
	{HD_FLAG_MAJOR, "major"},
	{HD_FLAG_CONFIDENTIAL, "confidential"},
	{HD_FLAG_BULK, "bulk"},
	{HD_FLAG_NEEDS_REPLY, "needs_reply"},
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

const char *hd_channel_name(hd_channel_t channel)
{
	return (unsigned)channel < COUNT_OF(channel_names) ? channel_names[channel] : "unknown";
}

const char *hd_class_name(hd_class_t klass)
{
	return (unsigned)klass < COUNT_OF(class_names) ? class_names[klass] : "unknown";
}

const char *hd_purpose_name(hd_purpose_t purpose)
{
	return (unsigned)purpose < COUNT_OF(purpose_names) ? purpose_names[purpose] : "unknown";
}

const char *hd_flag_name(hd_flag_t flag)
{
	for (size_t i = 0; i < COUNT_OF(flag_names); i++)
		if (flag_names[i].flag == flag)
			return flag_names[i].name;
	return "unknown";
}

int hd_channel_parse(const char *name, hd_channel_t *out)
{
	for (size_t i = 0; name && i < COUNT_OF(channel_names); i++)
		if (strcmp(name, channel_names[i]) == 0) {
			*out = (hd_channel_t)i;
			return HD_OK;
		}
	return HD_E_INVALID;
}

int hd_class_parse(const char *name, hd_class_t *out)
{
	for (size_t i = 0; name && i < COUNT_OF(class_names); i++)
		if (strcmp(name, class_names[i]) == 0) {
			*out = (hd_class_t)i;
			return HD_OK;
		}
	return HD_E_INVALID;
}

int hd_purpose_parse(const char *name, hd_purpose_t *out)
{
	/* "none" is not a wire value: absence of the field says that. */
	for (size_t i = HD_PURPOSE_SERVICE; name && i < COUNT_OF(purpose_names); i++)
		if (strcmp(name, purpose_names[i]) == 0) {
			*out = (hd_purpose_t)i;
			return HD_OK;
		}
	return HD_E_INVALID;
}

int hd_flag_parse(const char *name, hd_flag_t *out)
{
	for (size_t i = 0; name && i < COUNT_OF(flag_names); i++)
		if (strcmp(name, flag_names[i].name) == 0) {
			*out = flag_names[i].flag;
			return HD_OK;
		}
	return HD_E_INVALID;
}

/* Builders */

static void strv_push(char ***v, size_t *n, const char *s)
{
	*v = hd_realloc(*v, (*n + 1) * sizeof **v);
	(*v)[(*n)++] = hd_strdup(s);
}

void hd_msg_add_to(hd_msg_t *self, const char *addr)
{
	strv_push(&self->to, &self->to_count, addr);
}

void hd_msg_add_cc(hd_msg_t *self, const char *addr)
{
	strv_push(&self->cc, &self->cc_count, addr);
}

void hd_msg_add_attachment(hd_msg_t *self, const char *name, const char *mime_type,
			   const void *data, size_t size)
{
	self->attachments = hd_realloc(self->attachments,
				       (self->attachment_count + 1) * sizeof *self->attachments);
	hd_attachment_t *a = &self->attachments[self->attachment_count++];
	a->name = hd_strdup(name);
	a->mime_type = hd_strdup(mime_type);
	a->data = hd_malloc(size);
	if (size)
		memcpy(a->data, data, size);
	a->size = size;
}

void hd_msg_add_tag(hd_msg_t *self, const char *key, const char *value)
{
	self->tags = hd_realloc(self->tags, (self->tag_count + 1) * sizeof *self->tags);
	hd_tag_t *t = &self->tags[self->tag_count++];
	t->key = hd_strdup(key);
	t->value = hd_strdup(value);
}

void hd_msg_set_bulk(hd_msg_t *self, const char *purpose, const char *audience,
		     uint32_t recipient_count, const char *summary)
{
	if (self->bulk) {
		free(self->bulk->purpose);
		free(self->bulk->audience);
		free(self->bulk->summary);
	} else {
		self->bulk = hd_calloc(1, sizeof *self->bulk);
	}
	self->bulk->purpose = hd_strdup(purpose);
	self->bulk->audience = hd_strdup(audience);
	self->bulk->recipient_count = recipient_count;
	self->bulk->summary = hd_strdup(summary);
}

size_t hd_msg_recipient_count(const hd_msg_t *self)
{
	return self ? self->to_count + self->cc_count : 0;
}

/* UTF-8 */

bool hd_msg_is_utf8(const char *s, size_t len)
{
	const uint8_t *p = (const uint8_t *)s;
	const uint8_t *end = p + len;
	const uint64_t high = 0x8080808080808080ull;
	const uint64_t ones = 0x0101010101010101ull;

	while (p < end) {
		/* Fast path: eight ASCII bytes, none of them NUL. */
		while (end - p >= 8) {
			uint64_t x;
			memcpy(&x, p, sizeof x);
			if ((x & high) || ((x - ones) & ~x & high))
				break;
			p += 8;
		}
		if (p >= end)
			break;
		uint8_t c = *p;
		if (c < 0x80) {
			if (c == 0)
				return false;
			p++;
			continue;
		}
		size_t need;
		uint8_t lo = 0x80, hi = 0xbf;
		if (c < 0xc2) {           /* stray continuation, or overlong 2-byte */
			return false;
		} else if (c < 0xe0) {
			need = 1;
		} else if (c < 0xf0) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0;        /* overlong 3-byte */
			else if (c == 0xed)
				hi = 0x9f;        /* UTF-16 surrogates */
		} else if (c < 0xf5) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90;        /* overlong 4-byte */
			else if (c == 0xf4)
				hi = 0x8f;        /* above U+10FFFF */
		} else {
			return false;
		}
		if ((size_t)(end - p) <= need)
			return false;
		if (p[1] < lo || p[1] > hi)
			return false;
		for (size_t i = 2; i <= need; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += need + 1;
	}
	return true;
}

/* Addresses */

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

/* RFC 5322 atext */
static bool is_atext(unsigned char c)
{
	if (is_alnum(c))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int fail(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return HD_E_INVALID;
}

/* Parse the local part at a[0..len); *at receives the index of the '@'. */
static int check_local_part(const char *a, size_t len, size_t *at, const char **why)
{
	size_t i = 0;
	if (a[0] == '"') {
		for (i = 1; i < len && a[i] != '"'; i++) {
			unsigned char c = (unsigned char)a[i];
			if (c == '\\') {
				i++;
				if (i >= len || (unsigned char)a[i] < 32 || (unsigned char)a[i] > 126)
					return fail(why, "bad quoted pair in quoted local part");
			} else if (c < 32 || c > 126) {
				return fail(why, "bad character in quoted local part");
			}
		}
		if (i >= len)
			return fail(why, "unterminated quoted local part");
		i++; /* closing quote */
		if (i == 2)
			return fail(why, "empty quoted local part");
	} else {
		bool atom_start = true;
		for (; i < len && a[i] != '@'; i++) {
			unsigned char c = (unsigned char)a[i];
			if (c == '.') {
				if (atom_start)
					return fail(why, i == 0 ? "local part starts with a dot"
								: "two dots in a row in local part");
				atom_start = true;
			} else if (is_atext(c)) {
				atom_start = false;
			} else {
				return fail(why, "bad character in local part");
			}
		}
		if (i == 0)
			return fail(why, "empty local part");
		if (atom_start)
			return fail(why, "local part ends with a dot");
	}
	if (i >= len || a[i] != '@')
		return fail(why, "missing @ after local part");
	if (i > HD_MAX_LOCAL_PART_BYTES)
		return fail(why, "local part longer than 64 bytes");
	*at = i;
	return HD_OK;
}

/* One decimal octet 0..255 of 1..3 digits; advances *i. */
static bool parse_octet(const char *s, size_t len, size_t *i)
{
	unsigned v = 0;
	size_t n = 0;
	while (*i < len && is_digit((unsigned char)s[*i]) && n < 3) {
		v = v * 10 + (unsigned)(s[*i] - '0');
		(*i)++;
		n++;
	}
	return n > 0 && v <= 255;
}

static bool is_ipv4_literal(const char *s, size_t len)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
		if (!parse_octet(s, len, &i))
			return false;
	}
	return i == len;
}

/* Case-insensitive ASCII prefix match of n bytes. */
static bool has_prefix_ci(const char *s, const char *prefix, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char a = (unsigned char)s[i], b = (unsigned char)prefix[i];
		if (a >= 'A' && a <= 'Z')
			a = (unsigned char)(a + 32);
		if (b >= 'A' && b <= 'Z')
			b = (unsigned char)(b + 32);
		if (a != b)
			return false;
	}
	return true;
}

static int check_address_literal(const char *d, size_t len, const char **why)
{
	/* d includes the brackets. */
	if (len < 3 || d[len - 1] != ']')
		return fail(why, "unterminated address literal");
	const char *s = d + 1;
	size_t n = len - 2;
	if (n > 5 && has_prefix_ci(s, "IPv6:", 5)) {
		char buf[HD_MAX_ADDR_BYTES + 1];
		struct in6_addr a6;
		memcpy(buf, s + 5, n - 5);
		buf[n - 5] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return fail(why, "bad IPv6 address literal");
		return HD_OK;
	}
	if (!is_ipv4_literal(s, n))
		return fail(why, "bad IPv4 address literal");
	return HD_OK;
}

static int check_domain(const char *d, size_t len, const char **why)
{
	if (len == 0)
		return fail(why, "empty domain");
	if (d[0] == '[')
		return check_address_literal(d, len, why);
	size_t labels = 0;
	size_t start = 0;
	bool all_digits = true;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || d[i] == '.') {
			size_t n = i - start;
			if (n == 0)
				return fail(why, "empty domain label");
			if (n > HD_MAX_LABEL_BYTES)
				return fail(why, "domain label longer than 63 bytes");
			if (d[start] == '-' || d[i - 1] == '-')
				return fail(why, "domain label starts or ends with a hyphen");
			labels++;
			if (i < len) {
				start = i + 1;
				all_digits = true;
			}
			continue;
		}
		unsigned char c = (unsigned char)d[i];
		if (!is_alnum(c) && c != '-')
			return fail(why, "bad character in domain");
		if (!is_digit(c))
			all_digits = false;
	}
	if (labels < 2)
		return fail(why, "domain needs at least two labels");
	if (all_digits)
		return fail(why, "top-level domain is numeric (use an address literal)");
	return HD_OK;
}

static int check_email(const char *a, size_t len, const char **why)
{
	size_t at;
	int rc = check_local_part(a, len, &at, why);
	if (rc != HD_OK)
		return rc;
	return check_domain(a + at + 1, len - at - 1, why);
}

static int check_e164(const char *a, size_t len, const char **why)
{
	if (a[0] != '+')
		return fail(why, "phone number must start with +");
	size_t digits = len - 1;
	for (size_t i = 1; i < len; i++)
		if (!is_digit((unsigned char)a[i]))
			return fail(why, "phone number may only contain digits after +");
	if (digits < HD_E164_MIN_DIGITS || digits > HD_E164_MAX_DIGITS)
		return fail(why, "phone number must have 8 to 15 digits");
	if (a[1] == '0')
		return fail(why, "phone number country code cannot start with 0");
	return HD_OK;
}

static int check_group(const char *a, size_t len, const char **why)
{
	if (len > HD_MAX_GROUP_BYTES)
		return fail(why, "group name longer than 64 bytes");
	if (!is_alnum((unsigned char)a[0]))
		return fail(why, "group name must start with a letter or digit");
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)a[i];
		if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
			return fail(why, "group name may only contain A-Z a-z 0-9 . _ -");
	}
	return HD_OK;
}

int hd_msg_check_address(hd_channel_t channel, const char *addr, const char **why)
{
	if (!addr || !addr[0])
		return fail(why, "empty address");
	size_t len = strnlen(addr, HD_MAX_ADDR_BYTES + 1);
	if (len > HD_MAX_ADDR_BYTES)
		return fail(why, "address longer than 254 bytes");
	switch (channel) {
	case HD_CHANNEL_EMAIL: return check_email(addr, len, why);
	case HD_CHANNEL_SMS: return check_e164(addr, len, why);
	case HD_CHANNEL_IM: return check_group(addr, len, why);
	}
	return fail(why, "unknown channel");
}
