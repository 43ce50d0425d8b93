/*
 * NAME
 *	hd_seal - confidential content sealed at rest (POLICY K2)
 * DESCRIPTION
 *	A keyring of 32-byte secret keys, each with a short key id
 *	([A-Za-z0-9_-]{1,16}), and the one format of sealed content:
 *	libsodium crypto_aead_xchacha20poly1305_ietf with a random 24-byte
 *	nonce, the associated data binding the format version, the key id
 *	and the kind of field ("body", "html", "attachment"), so a sealed
 *	part cannot be moved to another field or relabelled with another key.
 *	  text  (body, html; PostgreSQL text, msgpack str):
 *	        "hdseal:1:<key id>:" base64(nonce || ciphertext || tag)
 *	  bytes (attachment data; PostgreSQL bytea, msgpack bin):
 *	        "hdseal:1b:<key id>:" nonce || ciphertext || tag
 *	Attachments stay raw so that a 25 MiB file grows by 68 bytes, not a
 *	third. The key id stays in the sealed value, so old content opens
 *	after the sealing key is rotated as long as the old key is loaded.
 *	heraldd seals a confidential message just before storing it; only
 *	the worker that sends it (and heraldctl show, for a caller holding
 *	the key) opens it. Nothing here logs, and no key material ever
 *	reaches an error message.
 * OWNERSHIP
 *	hd_seal_t owns its keys in sodium_malloc'd memory (guarded, locked
 *	where the system allows, wiped when freed). Functions that replace a
 *	message's parts wipe the old buffers before freeing them.
 * LIMITS
 *	At most HD_SEAL_MAX_KEYS keys. A key file is at most 32 raw bytes or
 *	64 hex digits and an optional line end; it must be a regular file
 *	that neither group nor others may access (mode & 077 == 0).
 */
#ifndef HD_SEAL_H
#define HD_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_msg.h"

#define HD_SEAL_MAX_KEYS      16
#define HD_SEAL_KEY_BYTES     32u
#define HD_SEAL_MAX_ID_BYTES  16u

typedef struct hd_seal hd_seal_t;

/* Caller owns the result (empty: no key, nothing current). Never NULL. */
hd_seal_t *hd_seal_keyring_new(void);

/* NULL-safe; wipes and frees every key and sets *self_p to NULL. */
void hd_seal_keyring_destroy(hd_seal_t **self_p);

/*
 * Load the key in path under key_id. key_id NULL means "any id": the
 * key is tried for content sealed under an id no other key has (for
 * heraldctl --key-file PATH); it can never seal. Returns 0, or
 * HD_E_CONFIG with "path: reason" in err when the file is missing, not
 * a regular file, accessible by group or others, not 32 raw bytes or 64
 * hex digits, or all zeros; HD_E_INVALID for a bad or duplicate key id
 * or a full keyring. err never contains key material.
 */
int hd_seal_keyring_add_key_file(hd_seal_t *self, const char *key_id, const char *path,
				 char *err, size_t errlen);

/*
 * "ID:PATH" (or, when allow_any_id, a bare PATH: a key for any id, see
 * hd_seal_keyring_add_key_file) loaded as above. A spec whose text
 * before the first ':' is not a key id is a bare path.
 */
int hd_seal_keyring_add_key_spec(hd_seal_t *self, const char *spec, bool allow_any_id,
				 char *err, size_t errlen);

/*
 * Check the syntax of "ID:PATH" without reading the file; on success
 * copies the id into id (HD_SEAL_MAX_ID_BYTES + 1 bytes; may be NULL).
 * Returns 0 or HD_E_INVALID with the reason in err.
 */
int hd_seal_parse_key_spec(const char *spec, char *id, char *err, size_t errlen);

/* True when s is 1..HD_SEAL_MAX_ID_BYTES of A-Z a-z 0-9 _ -. */
bool hd_seal_is_key_id(const char *s, size_t len);

/* Seal with key_id from now on. 0, or HD_E_NOTFOUND when it is not loaded. */
int hd_seal_set_current(hd_seal_t *self, const char *key_id);

/* The id new content is sealed with; NULL when none is set. Borrowed. */
const char *hd_seal_current(const hd_seal_t *self);

/* Keys loaded. */
size_t hd_seal_key_count(const hd_seal_t *self);

/* True when s (len bytes) starts like sealed text / sealed bytes (header only). */
bool hd_seal_is_sealed(const char *s);
bool hd_seal_is_sealed_text(const char *s, size_t len);
bool hd_seal_is_sealed_bytes(const uint8_t *data, size_t len);

/*
 * The key id named by sealed text or bytes, copied into id
 * (HD_SEAL_MAX_ID_BYTES + 1 bytes). Returns 0 or HD_E_INVALID.
 */
int hd_seal_key_id_of(const uint8_t *sealed, size_t len, char *id);

/*
 * Seal plain (len bytes) as text for field kind with the current key.
 * *out (NUL-terminated, *out_len bytes without the NUL) is the caller's.
 * Returns 0, or HD_E_CONFIG when no key is current.
 */
int hd_seal_text(const hd_seal_t *self, const char *kind, const void *plain, size_t len,
		 char **out, size_t *out_len);

/* The same as raw bytes (the attachment format). *out is the caller's. */
int hd_seal_bytes(const hd_seal_t *self, const char *kind, const void *plain, size_t len,
		  uint8_t **out, size_t *out_len);

/*
 * Open sealed text (len bytes) of field kind. On success *out is the
 * caller's (NUL-terminated plaintext, *out_len bytes without the NUL).
 * Errors, with the reason in why: HD_E_INVALID "not sealed text" /
 * "malformed sealed text" / "authentication failed" (wrong key, wrong
 * field, or tampered), HD_E_NOTFOUND "unknown key id k0".
 */
int hd_seal_open_text(const hd_seal_t *self, const char *kind, const char *sealed, size_t len,
		      char **out, size_t *out_len, char *why, size_t whylen);

/* The same for sealed bytes; *out (no NUL added) is the caller's. */
int hd_seal_open_bytes(const hd_seal_t *self, const char *kind, const uint8_t *sealed,
		       size_t len, uint8_t **out, size_t *out_len, char *why, size_t whylen);

/*
 * For a message flagged confidential: replace body, html and every
 * attachment's data by their sealed form (current key), wiping the
 * plaintext; anything else about the message stays. A message not
 * flagged confidential is left alone. Returns 0, or HD_E_CONFIG when
 * no key is current (msg unchanged).
 */
int hd_seal_msg(const hd_seal_t *self, hd_msg_t *msg);

/* True when msg is confidential and at least one part is sealed. */
bool hd_seal_msg_is_sealed(const hd_msg_t *msg);

/*
 * The reverse of hd_seal_msg: every sealed part of a confidential
 * message is opened in place (parts that are not sealed are left as
 * they are). self may be NULL (no keys). All or nothing: on failure msg
 * is unchanged and why says which part and why ("body: unknown key id
 * k0", "attachments[1]: authentication failed"); the code is that of
 * hd_seal_open_text/_bytes.
 */
int hd_seal_open_msg(const hd_seal_t *self, hd_msg_t *msg, char *why, size_t whylen);

/* Wipe (sodium_memzero) body, html and attachment data of a confidential msg. */
void hd_seal_wipe_msg(hd_msg_t *msg);

#endif
