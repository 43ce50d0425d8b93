/*
 * NAME
 *	hd_seal - confidential content sealed at rest (POLICY K2)
 * DESCRIPTION
 *	See hd_seal.h. The keyring is one sodium_malloc'd array of
 *	HD_SEAL_MAX_KEYS slots: libsodium puts guard pages around it, locks
 *	it in memory when it can and wipes it on sodium_free. Key files are
 *	read into a stack buffer that is wiped before returning, whatever
 *	happened.
 */
#include "hd_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hd_err.h"
#include "hd_limits.h"
#include "hd_mem.h"

#define SEAL_TEXT_MAGIC  HD_SEAL_TEXT_MAGIC
#define SEAL_BYTES_MAGIC HD_SEAL_BYTES_MAGIC
#define SEAL_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG_BYTES   crypto_aead_xchacha20poly1305_ietf_ABYTES
/* A key file holds 32 raw bytes or 64 hex digits and a line end: read a little more to tell. */
#define SEAL_KEY_FILE_MAX 130

_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == HD_SEAL_KEY_BYTES, "key size");
_Static_assert(SEAL_NONCE_BYTES + SEAL_TAG_BYTES == HD_SEAL_CRYPTO_BYTES,
	       "hd_limits.h HD_SEAL_CRYPTO_BYTES");
_Static_assert(sizeof(SEAL_BYTES_MAGIC) - 1 + HD_SEAL_MAX_ID_BYTES + 1 <= HD_SEAL_HEADER_MAX_BYTES,
	       "hd_limits.h HD_SEAL_HEADER_MAX_BYTES");

typedef struct seal_key {
	char id[HD_SEAL_MAX_ID_BYTES + 1];   /* "" for a key that serves any id */
	unsigned char key[HD_SEAL_KEY_BYTES];
} seal_key_t;

struct hd_seal {
	seal_key_t *keys;     /* sodium_malloc'd, HD_SEAL_MAX_KEYS slots */
	size_t count;
	int current;          /* index of the sealing key, -1 = none */
};

/* A parsed header: magic, key id, and where the payload starts. */
typedef struct seal_header {
	bool bytes;           /* "hdseal:1b:" */
	char id[HD_SEAL_MAX_ID_BYTES + 1];
	size_t header_len;    /* up to and including the ':' after the id */
} seal_header_t;

static void seal_init_sodium(void)
{
	if (sodium_init() < 0)
		hd_panic("sodium_init failed");
}

hd_seal_t *hd_seal_keyring_new(void)
{
	seal_init_sodium();
	hd_seal_t *self = hd_calloc(1, sizeof *self);
	self->keys = sodium_malloc(HD_SEAL_MAX_KEYS * sizeof *self->keys);
	if (!self->keys)
		hd_panic("sodium_malloc: cannot allocate the keyring");
	sodium_memzero(self->keys, HD_SEAL_MAX_KEYS * sizeof *self->keys);
	self->current = -1;
	return self;
}

void hd_seal_keyring_destroy(hd_seal_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_seal_t *self = *self_p;
	sodium_free(self->keys); /* wipes before unmapping */
	free(self);
	*self_p = NULL;
}

bool hd_seal_is_key_id(const char *s, size_t len)
{
	if (!s || len == 0 || len > HD_SEAL_MAX_ID_BYTES)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

static const seal_key_t *seal_find(const hd_seal_t *self, const char *id)
{
	for (size_t i = 0; self && i < self->count; i++)
		if (self->keys[i].id[0] && strcmp(self->keys[i].id, id) == 0)
			return &self->keys[i];
	return NULL;
}

/* Read the key in path into key (wiped on failure). 0 or HD_E_CONFIG with "path: reason". */
static int seal_read_key_file(const char *path, unsigned char key[HD_SEAL_KEY_BYTES], char *err,
			      size_t errlen)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return HD_E_CONFIG;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
		close(fd);
		return HD_E_CONFIG;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return HD_E_CONFIG;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s: group or others may access it (mode %04o); "
			 "a key file must be mode 0600 or stricter (chmod 600)", path,
			 (unsigned)(st.st_mode & 07777));
		close(fd);
		return HD_E_CONFIG;
	}
	unsigned char buf[SEAL_KEY_FILE_MAX + 1];
	size_t n = 0;
	int rc = HD_OK;
	while (n < sizeof buf) {
		ssize_t r = read(fd, buf + n, sizeof buf - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
			rc = HD_E_CONFIG;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (rc == HD_OK) {
		size_t text = n;
		if (text > 0 && buf[text - 1] == '\n')
			text--;
		if (text > 0 && buf[text - 1] == '\r')
			text--;
		size_t bin_len = 0;
		if (n == HD_SEAL_KEY_BYTES) {
			memcpy(key, buf, HD_SEAL_KEY_BYTES);
		} else if (text == 2 * HD_SEAL_KEY_BYTES &&
			   sodium_hex2bin(key, HD_SEAL_KEY_BYTES, (const char *)buf, text, NULL,
					  &bin_len, NULL) == 0 &&
			   bin_len == HD_SEAL_KEY_BYTES) {
			/* 64 hex digits */
		} else {
			snprintf(err, errlen, "%s: expected 32 raw bytes or 64 hex digits and an "
				 "optional line end, found %s%zu bytes", path,
				 n > SEAL_KEY_FILE_MAX ? "more than " : "",
				 n > SEAL_KEY_FILE_MAX ? (size_t)SEAL_KEY_FILE_MAX : n);
			rc = HD_E_CONFIG;
		}
	}
	if (rc == HD_OK && sodium_is_zero(key, HD_SEAL_KEY_BYTES)) {
		snprintf(err, errlen, "%s: the key is all zeros", path);
		rc = HD_E_CONFIG;
	}
	sodium_memzero(buf, sizeof buf);
	if (rc != HD_OK)
		sodium_memzero(key, HD_SEAL_KEY_BYTES);
	return rc;
}

int hd_seal_keyring_add_key_file(hd_seal_t *self, const char *key_id, const char *path,
				 char *err, size_t errlen)
{
	if (key_id && !hd_seal_is_key_id(key_id, strlen(key_id))) {
		snprintf(err, errlen, "key id \"%.40s\": expected 1..%u of A-Z a-z 0-9 _ -", key_id,
			 HD_SEAL_MAX_ID_BYTES);
		return HD_E_INVALID;
	}
	if (key_id && seal_find(self, key_id)) {
		snprintf(err, errlen, "key id \"%s\" is loaded twice", key_id);
		return HD_E_INVALID;
	}
	if (self->count == HD_SEAL_MAX_KEYS) {
		snprintf(err, errlen, "%s: more than %d keys", path, HD_SEAL_MAX_KEYS);
		return HD_E_INVALID;
	}
	seal_key_t *k = &self->keys[self->count];
	int rc = seal_read_key_file(path, k->key, err, errlen);
	if (rc != HD_OK)
		return rc;
	snprintf(k->id, sizeof k->id, "%s", key_id ? key_id : "");
	self->count++;
	return HD_OK;
}

int hd_seal_parse_key_spec(const char *spec, char *id, char *err, size_t errlen)
{
	const char *colon = spec ? strchr(spec, ':') : NULL;
	if (!colon || !hd_seal_is_key_id(spec, (size_t)(colon - spec))) {
		snprintf(err, errlen, "\"%.60s\": expected \"ID:PATH\", ID 1..%u of A-Z a-z 0-9 _ -",
			 spec ? spec : "", HD_SEAL_MAX_ID_BYTES);
		return HD_E_INVALID;
	}
	if (!colon[1]) {
		snprintf(err, errlen, "\"%.60s\": the path is empty", spec);
		return HD_E_INVALID;
	}
	if (id)
		snprintf(id, HD_SEAL_MAX_ID_BYTES + 1, "%.*s", (int)(colon - spec), spec);
	return HD_OK;
}

int hd_seal_keyring_add_key_spec(hd_seal_t *self, const char *spec, bool allow_any_id,
				 char *err, size_t errlen)
{
	char id[HD_SEAL_MAX_ID_BYTES + 1];
	if (hd_seal_parse_key_spec(spec, id, err, errlen) == HD_OK)
		return hd_seal_keyring_add_key_file(self, id, strchr(spec, ':') + 1, err, errlen);
	if (!allow_any_id)
		return HD_E_INVALID;
	if (!spec || !*spec) {
		snprintf(err, errlen, "empty key file name");
		return HD_E_INVALID;
	}
	return hd_seal_keyring_add_key_file(self, NULL, spec, err, errlen);
}

int hd_seal_set_current(hd_seal_t *self, const char *key_id)
{
	const seal_key_t *k = key_id ? seal_find(self, key_id) : NULL;
	if (!k)
		return HD_E_NOTFOUND;
	self->current = (int)(k - self->keys);
	return HD_OK;
}

const char *hd_seal_current(const hd_seal_t *self)
{
	return self && self->current >= 0 ? self->keys[self->current].id : NULL;
}

size_t hd_seal_key_count(const hd_seal_t *self)
{
	return self ? self->count : 0;
}

/* ---- format ---------------------------------------------------------------- */

static bool seal_parse_header(const uint8_t *s, size_t len, seal_header_t *h)
{
	size_t magic;
	if (len >= sizeof(SEAL_BYTES_MAGIC) - 1 &&
	    memcmp(s, SEAL_BYTES_MAGIC, sizeof(SEAL_BYTES_MAGIC) - 1) == 0) {
		h->bytes = true;
		magic = sizeof(SEAL_BYTES_MAGIC) - 1;
	} else if (len >= sizeof(SEAL_TEXT_MAGIC) - 1 &&
		   memcmp(s, SEAL_TEXT_MAGIC, sizeof(SEAL_TEXT_MAGIC) - 1) == 0) {
		h->bytes = false;
		magic = sizeof(SEAL_TEXT_MAGIC) - 1;
	} else {
		return false;
	}
	size_t end = magic;
	while (end < len && end - magic <= HD_SEAL_MAX_ID_BYTES && s[end] != ':')
		end++;
	if (end >= len || s[end] != ':' || !hd_seal_is_key_id((const char *)s + magic, end - magic))
		return false;
	memcpy(h->id, s + magic, end - magic);
	h->id[end - magic] = '\0';
	h->header_len = end + 1;
	return true;
}

bool hd_seal_is_sealed_text(const char *s, size_t len)
{
	seal_header_t h;
	return s && seal_parse_header((const uint8_t *)s, len, &h) && !h.bytes;
}

bool hd_seal_is_sealed(const char *s)
{
	return s && hd_seal_is_sealed_text(s, strnlen(s, HD_SEAL_HEADER_MAX_BYTES));
}

bool hd_seal_is_sealed_bytes(const uint8_t *data, size_t len)
{
	seal_header_t h;
	return data && seal_parse_header(data, len, &h) && h.bytes;
}

int hd_seal_key_id_of(const uint8_t *sealed, size_t len, char *id)
{
	seal_header_t h;
	if (!sealed || !seal_parse_header(sealed, len, &h))
		return HD_E_INVALID;
	memcpy(id, h.id, strlen(h.id) + 1);
	return HD_OK;
}

/* Associated data: the header (version, text or bytes, key id) and the field kind. */
static size_t seal_ad(char *ad, size_t cap, const char *header, size_t header_len, const char *kind)
{
	int n = snprintf(ad, cap, "%.*s%s", (int)header_len, header, kind);
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* nonce || ciphertext || tag of plain into box (len + HD_SEAL_CRYPTO_BYTES bytes). */
static void seal_box(const seal_key_t *k, const char *ad, size_t ad_len, const void *plain,
		     size_t len, uint8_t *box)
{
	randombytes_buf(box, SEAL_NONCE_BYTES);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(box + SEAL_NONCE_BYTES, &clen, plain, len,
						   (const unsigned char *)ad, ad_len, NULL, box,
						   k->key);
}

static int seal_header(const hd_seal_t *self, bool bytes, char *header, size_t cap,
		       const seal_key_t **key_p)
{
	if (!self || self->current < 0)
		return HD_E_CONFIG;
	*key_p = &self->keys[self->current];
	return snprintf(header, cap, "%s%s:", bytes ? SEAL_BYTES_MAGIC : SEAL_TEXT_MAGIC,
			(*key_p)->id) > 0 ? HD_OK : HD_E_INTERNAL;
}

int hd_seal_text(const hd_seal_t *self, const char *kind, const void *plain, size_t len,
		 char **out, size_t *out_len)
{
	char header[HD_SEAL_HEADER_MAX_BYTES + 1], ad[HD_SEAL_HEADER_MAX_BYTES + 32];
	const seal_key_t *k;
	int rc = seal_header(self, false, header, sizeof header, &k);
	if (rc != HD_OK)
		return rc;
	size_t hlen = strlen(header);
	size_t box_len = len + HD_SEAL_CRYPTO_BYTES;
	uint8_t *box = hd_malloc(box_len);
	seal_box(k, ad, seal_ad(ad, sizeof ad, header, hlen, kind), plain, len, box);
	size_t b64_cap = sodium_base64_encoded_len(box_len, sodium_base64_VARIANT_ORIGINAL);
	char *s = hd_malloc(hlen + b64_cap);
	memcpy(s, header, hlen);
	sodium_bin2base64(s + hlen, b64_cap, box, box_len, sodium_base64_VARIANT_ORIGINAL);
	free(box);
	*out = s;
	*out_len = hlen + strlen(s + hlen);
	return HD_OK;
}

int hd_seal_bytes(const hd_seal_t *self, const char *kind, const void *plain, size_t len,
		  uint8_t **out, size_t *out_len)
{
	char header[HD_SEAL_HEADER_MAX_BYTES + 1], ad[HD_SEAL_HEADER_MAX_BYTES + 32];
	const seal_key_t *k;
	int rc = seal_header(self, true, header, sizeof header, &k);
	if (rc != HD_OK)
		return rc;
	size_t hlen = strlen(header);
	uint8_t *b = hd_malloc(hlen + len + HD_SEAL_CRYPTO_BYTES);
	memcpy(b, header, hlen);
	seal_box(k, ad, seal_ad(ad, sizeof ad, header, hlen, kind), plain, len, b + hlen);
	*out = b;
	*out_len = hlen + len + HD_SEAL_CRYPTO_BYTES;
	return HD_OK;
}

/*
 * Open box (nonce || ciphertext || tag) into plain (box_len -
 * HD_SEAL_CRYPTO_BYTES bytes): the key named by the header, else each
 * key for any id in turn.
 */
static int seal_unbox(const hd_seal_t *self, const seal_header_t *h, const char *header,
		      const char *kind, const uint8_t *box, size_t box_len, uint8_t *plain,
		      char *why, size_t whylen)
{
	if (box_len < HD_SEAL_CRYPTO_BYTES) {
		snprintf(why, whylen, "malformed sealed %s: too short", h->bytes ? "bytes" : "text");
		return HD_E_INVALID;
	}
	char ad[HD_SEAL_HEADER_MAX_BYTES + 32];
	size_t ad_len = seal_ad(ad, sizeof ad, header, h->header_len, kind);
	const seal_key_t *named = seal_find(self, h->id);
	bool tried = false;
	for (size_t i = 0; self && i < self->count; i++) {
		const seal_key_t *k = &self->keys[i];
		if (named ? k != named : k->id[0] != '\0')
			continue;
		tried = true;
		unsigned long long plen = 0;
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(
			    plain, &plen, NULL, box + SEAL_NONCE_BYTES, box_len - SEAL_NONCE_BYTES,
			    (const unsigned char *)ad, ad_len, box, k->key) == 0)
			return HD_OK;
	}
	if (!tried) {
		snprintf(why, whylen, "unknown key id %s", h->id);
		return HD_E_NOTFOUND;
	}
	snprintf(why, whylen, "authentication failed");
	return HD_E_INVALID;
}

int hd_seal_open_text(const hd_seal_t *self, const char *kind, const char *sealed, size_t len,
		      char **out, size_t *out_len, char *why, size_t whylen)
{
	seal_header_t h;
	if (!sealed || !seal_parse_header((const uint8_t *)sealed, len, &h) || h.bytes) {
		snprintf(why, whylen, "not sealed text");
		return HD_E_INVALID;
	}
	const char *b64 = sealed + h.header_len;
	size_t b64_len = len - h.header_len;
	size_t box_cap = b64_len / 4 * 3 + 3;
	uint8_t *box = hd_malloc(box_cap);
	size_t box_len = 0;
	if (sodium_base642bin(box, box_cap, b64, b64_len, NULL, &box_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(box);
		snprintf(why, whylen, "malformed sealed text: bad base64");
		return HD_E_INVALID;
	}
	size_t plen = box_len >= HD_SEAL_CRYPTO_BYTES ? box_len - HD_SEAL_CRYPTO_BYTES : 0;
	char *plain = hd_malloc(plen + 1);
	int rc = seal_unbox(self, &h, sealed, kind, box, box_len, (uint8_t *)plain, why, whylen);
	free(box);
	/* Past this point the struct is trusted as valid UTF-8 without NUL (hd_msg.h). */
	if (rc == HD_OK && !hd_msg_is_utf8(plain, plen)) {
		snprintf(why, whylen, "sealed text is not valid UTF-8");
		rc = HD_E_INVALID;
	}
	if (rc != HD_OK) {
		sodium_memzero(plain, plen);
		free(plain);
		return rc;
	}
	plain[plen] = '\0';
	*out = plain;
	*out_len = plen;
	return HD_OK;
}

int hd_seal_open_bytes(const hd_seal_t *self, const char *kind, const uint8_t *sealed,
		       size_t len, uint8_t **out, size_t *out_len, char *why, size_t whylen)
{
	seal_header_t h;
	if (!sealed || !seal_parse_header(sealed, len, &h) || !h.bytes) {
		snprintf(why, whylen, "not sealed bytes");
		return HD_E_INVALID;
	}
	size_t box_len = len - h.header_len;
	size_t plen = box_len >= HD_SEAL_CRYPTO_BYTES ? box_len - HD_SEAL_CRYPTO_BYTES : 0;
	uint8_t *plain = hd_malloc(plen ? plen : 1);
	int rc = seal_unbox(self, &h, (const char *)sealed, kind, sealed + h.header_len, box_len,
			    plain, why, whylen);
	if (rc != HD_OK) {
		free(plain);
		return rc;
	}
	*out = plain;
	*out_len = plen;
	return HD_OK;
}

/* ---- messages -------------------------------------------------------------- */

static void seal_free_text(char **s)
{
	if (*s) {
		sodium_memzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

static void seal_free_bytes(uint8_t **b, size_t len)
{
	if (*b) {
		sodium_memzero(*b, len);
		free(*b);
		*b = NULL;
	}
}

static bool seal_is_confidential(const hd_msg_t *msg)
{
	return msg && (msg->flags & HD_FLAG_CONFIDENTIAL);
}

int hd_seal_msg(const hd_seal_t *self, hd_msg_t *msg)
{
	if (!seal_is_confidential(msg))
		return HD_OK;
	if (!self || self->current < 0)
		return HD_E_CONFIG;
	size_t len;
	char *s;
	/* Sealed unconditionally, even when it already looks sealed: the
	 * worker opens exactly one layer, so a producer's text that happens
	 * to start with "hdseal:" comes out as it went in. */
	if (msg->body) {
		hd_seal_text(self, "body", msg->body, strlen(msg->body), &s, &len);
		seal_free_text(&msg->body);
		msg->body = s;
	}
	if (msg->html) {
		hd_seal_text(self, "html", msg->html, strlen(msg->html), &s, &len);
		seal_free_text(&msg->html);
		msg->html = s;
	}
	for (size_t i = 0; i < msg->attachment_count; i++) {
		hd_attachment_t *a = &msg->attachments[i];
		uint8_t *b;
		hd_seal_bytes(self, "attachment", a->data, a->size, &b, &len);
		seal_free_bytes(&a->data, a->size);
		a->data = b;
		a->size = len;
	}
	return HD_OK;
}

bool hd_seal_msg_is_sealed(const hd_msg_t *msg)
{
	if (!seal_is_confidential(msg))
		return false;
	if (hd_seal_is_sealed(msg->body) || hd_seal_is_sealed(msg->html))
		return true;
	for (size_t i = 0; i < msg->attachment_count; i++)
		if (hd_seal_is_sealed_bytes(msg->attachments[i].data, msg->attachments[i].size))
			return true;
	return false;
}

/* One sealed text field opened into *plain (NULL when the field is not sealed). */
static int seal_open_field(const hd_seal_t *self, const char *kind, const char *sealed,
			   char **plain, char *why, size_t whylen)
{
	*plain = NULL;
	if (!sealed || !hd_seal_is_sealed(sealed))
		return HD_OK;
	char reason[128];
	size_t len;
	int rc = hd_seal_open_text(self, kind, sealed, strlen(sealed), plain, &len, reason,
				   sizeof reason);
	if (rc != HD_OK)
		snprintf(why, whylen, "%s: %s", kind, reason);
	return rc;
}

int hd_seal_open_msg(const hd_seal_t *self, hd_msg_t *msg, char *why, size_t whylen)
{
	if (!seal_is_confidential(msg))
		return HD_OK;
	char *body = NULL, *html = NULL;
	size_t n = msg->attachment_count;
	uint8_t **data = hd_calloc(n ? n : 1, sizeof *data);
	size_t *sizes = hd_calloc(n ? n : 1, sizeof *sizes);
	int rc = seal_open_field(self, "body", msg->body, &body, why, whylen);
	if (rc == HD_OK)
		rc = seal_open_field(self, "html", msg->html, &html, why, whylen);
	for (size_t i = 0; rc == HD_OK && i < n; i++) {
		const hd_attachment_t *a = &msg->attachments[i];
		if (!hd_seal_is_sealed_bytes(a->data, a->size))
			continue;
		char reason[128];
		rc = hd_seal_open_bytes(self, "attachment", a->data, a->size, &data[i], &sizes[i],
					reason, sizeof reason);
		if (rc != HD_OK)
			snprintf(why, whylen, "attachments[%zu]: %s", i, reason);
	}
	if (rc != HD_OK) {
		seal_free_text(&body);
		seal_free_text(&html);
		for (size_t i = 0; i < n; i++)
			seal_free_bytes(&data[i], sizes[i]);
	} else {
		if (body) {
			free(msg->body);
			msg->body = body;
		}
		if (html) {
			free(msg->html);
			msg->html = html;
		}
		for (size_t i = 0; i < n; i++) {
			if (!data[i])
				continue;
			free(msg->attachments[i].data);
			msg->attachments[i].data = data[i];
			msg->attachments[i].size = sizes[i];
		}
	}
	free(data);
	free(sizes);
	return rc;
}

void hd_seal_wipe_msg(hd_msg_t *msg)
{
	if (!seal_is_confidential(msg))
		return;
	if (msg->body)
		sodium_memzero(msg->body, strlen(msg->body));
	if (msg->html)
		sodium_memzero(msg->html, strlen(msg->html));
	for (size_t i = 0; i < msg->attachment_count; i++)
		if (msg->attachments[i].data)
			sodium_memzero(msg->attachments[i].data, msg->attachments[i].size);
}
