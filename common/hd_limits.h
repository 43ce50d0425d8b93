/*
 * NAME
 *	hd_limits - named hard limits on everything that comes from outside
 * DESCRIPTION
 *	Decoders check these before allocating anything. They are ceilings
 *	of the wire protocol (docs/PROTOCOL.md lists the same numbers);
 *	configuration may set lower operational limits, never higher ones.
 */
#ifndef HD_LIMITS_H
#define HD_LIMITS_H

#define HD_PROTOCOL_VERSION      1

#define HD_MAX_FRAME_BYTES       (32u * 1024u * 1024u) /* one request frame */
#define HD_MAX_APP_BYTES         64u    /* application name */
#define HD_MAX_ADDR_BYTES        254u   /* RFC 5321 path limit */
#define HD_MAX_RECIPIENTS        10000u /* to + cc */
#define HD_MAX_SUBJECT_BYTES     998u   /* RFC 5322 line limit */
#define HD_MAX_BODY_BYTES        (4u * 1024u * 1024u)
#define HD_MAX_HTML_BYTES        (4u * 1024u * 1024u)
#define HD_MAX_REASON_BYTES      1024u  /* cc_reason */
#define HD_MAX_ATTACHMENTS       32u
#define HD_MAX_ATTACH_NAME_BYTES 255u
#define HD_MAX_MIME_BYTES        127u
#define HD_MAX_ATTACH_BYTES      (25u * 1024u * 1024u) /* one attachment */
#define HD_MAX_IDEM_KEY_BYTES    128u
#define HD_MAX_TAGS              32u
#define HD_MAX_TAG_KEY_BYTES     64u
#define HD_MAX_TAG_VALUE_BYTES   256u
#define HD_MAX_FLAGS             8u
#define HD_MAX_BULK_TEXT_BYTES   2048u  /* each bulk application text */
#define HD_MAX_DEPTH             4u     /* nesting of maps and arrays */

/*
 * Confidential content sealed at rest (common/hd_seal.h, POLICY K2)
 * travels sealed from the database to the worker, so the worker
 * protocol's JOB accepts it larger than a producer may send it. A
 * sealed text is "hdseal:1:<key id>:" + base64(nonce || ciphertext ||
 * tag); sealed bytes are "hdseal:1b:<key id>:" + the same raw bytes.
 */
#define HD_SEAL_TEXT_MAGIC       "hdseal:1:"
#define HD_SEAL_BYTES_MAGIC      "hdseal:1b:"
#define HD_SEAL_HEADER_MAX_BYTES 28u    /* "hdseal:1b:" + 16-byte key id + ":" (27), rounded */
#define HD_SEAL_CRYPTO_BYTES     40u    /* XChaCha20 nonce 24 + Poly1305 tag 16 */
#define HD_SEALED_TEXT_BYTES(n)  (HD_SEAL_HEADER_MAX_BYTES + \
				  ((n) + HD_SEAL_CRYPTO_BYTES + 2u) / 3u * 4u)
#define HD_SEALED_BIN_BYTES(n)   (HD_SEAL_HEADER_MAX_BYTES + (n) + HD_SEAL_CRYPTO_BYTES)
#define HD_MAX_SEALED_BODY_BYTES   HD_SEALED_TEXT_BYTES(HD_MAX_BODY_BYTES)
#define HD_MAX_SEALED_HTML_BYTES   HD_SEALED_TEXT_BYTES(HD_MAX_HTML_BYTES)
#define HD_MAX_SEALED_ATTACH_BYTES HD_SEALED_BIN_BYTES(HD_MAX_ATTACH_BYTES)
/* What sealing adds to a whole message at most: body, html, every attachment. */
#define HD_MAX_SEAL_GROWTH_BYTES ((HD_MAX_SEALED_BODY_BYTES - HD_MAX_BODY_BYTES) + \
				  (HD_MAX_SEALED_HTML_BYTES - HD_MAX_HTML_BYTES) + \
				  HD_MAX_ATTACHMENTS * HD_SEALED_BIN_BYTES(0u))

#endif
