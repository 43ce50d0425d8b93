/*
 * NAME
 *	hd_mime - RFC 5322 / MIME message builder for one email delivery
 * DESCRIPTION
 *	Turns a validated hd_msg_t into the bytes handed to the SMTP client:
 *	headers (From, To, Cc, Subject as RFC 2047 encoded-words when
 *	needed, Date, Message-ID derived from the delivery, MIME-Version,
 *	Reply-By, importance headers, X-Herald-Delivery) and a body that is
 *	text/plain, multipart/alternative (text then html) and/or
 *	multipart/mixed (body then attachments). Pure: no I/O, no clock,
 *	no randomness of its own (the caller passes the date and a nonce),
 *	so the same input always gives the same bytes.
 *
 *	Output rules: CRLF line ends only; header lines fold at 78 columns
 *	where the grammar allows it (a single address longer than a line
 *	stays whole, never past 998); text parts are quoted-printable when
 *	mostly ASCII and base64 when more than 1 byte in 6 is non-ASCII
 *	(CJK text would triple in QP); attachments are base64 in 76-char
 *	lines. Every body is 7-bit, so no 8BITMIME is needed.
 *
 *	Dot-stuffing is NOT done here: libESMTP stuffs every line that
 *	starts with "." while transmitting (protocol.c, cmd_data2), so
 *	doing it here too would corrupt such lines.
 *
 *	Boundaries are "=_hd_<nonce>_<level>": "=_" cannot occur in
 *	quoted-printable or base64 output, and every part body is one of
 *	those, so a boundary never appears in content.
 * LIMITS
 *	The size of the result is bounded (HD_MIME_MAX_BYTES) before any
 *	allocation; a larger message is refused with HD_E_TOOBIG.
 */
#ifndef HD_MIME_H
#define HD_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "hd_msg.h"

#define HD_MIME_MAX_BYTES   (96u * 1024u * 1024u)
#define HD_MIME_DATE_BYTES  32u   /* "Thu, 01 Jan 1970 00:00:00 +0000" + NUL */

typedef struct hd_mime_params {
	int64_t delivery_id;       /* X-Herald-Delivery and Message-ID */
	int64_t message_id;        /* Message-ID */
	hd_class_t klass;          /* important adds Importance/X-Priority */
	int64_t date_s;            /* Date header, Unix seconds */
	const char *id_domain;     /* Message-ID right side; NULL or "" = sender's domain */
	uint64_t nonce;            /* varies the boundaries; any value */
} hd_mime_params_t;

/*
 * Build the message. On success returns 0 and *out (caller frees with
 * free()) holds *out_len bytes, NUL-terminated for convenience (the NUL
 * is not counted). HD_E_INVALID when msg or params is unusable (no
 * sender), HD_E_TOOBIG when the result would exceed HD_MIME_MAX_BYTES;
 * *out is NULL then.
 */
int hd_mime_build(const hd_msg_t *msg, const hd_mime_params_t *params, char **out,
		  size_t *out_len);

/*
 * Format t (Unix seconds) as an RFC 5322 date-time in UTC into buf
 * (at least HD_MIME_DATE_BYTES). Returns buf.
 */
char *hd_mime_format_date(int64_t t, char *buf, size_t buflen);

#endif
