/*
 * NAME
 *	hd_sms_segments - how many SMS parts a text needs
 * DESCRIPTION
 *	A pure function over UTF-8 text: decide the encoding an SMS gateway
 *	must use (GSM 03.38 7-bit when every character is in the default
 *	alphabet or its extension table, UCS-2 otherwise) and count the
 *	parts the text splits into. GSM-7: 160 septets in a single part,
 *	153 per part of a concatenated message; an extension-table character
 *	(e.g. "{", "€") takes 2 septets and is never split across parts.
 *	UCS-2: 70 UTF-16 code units single, 67 per part; a character outside
 *	the BMP takes a surrogate pair (2 units) that is never split. Used by
 *	the SMS driver (max_segments) and the intake policy. Never allocates,
 *	never logs.
 */
#ifndef HD_SMS_SEGMENTS_H
#define HD_SMS_SEGMENTS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	HD_SMS_GSM7,   /* GSM 03.38 default alphabet + extension table */
	HD_SMS_UCS2    /* UTF-16 code units */
} hd_sms_encoding_t;

#define HD_SMS_GSM7_SINGLE_UNITS 160u
#define HD_SMS_GSM7_PART_UNITS   153u
#define HD_SMS_UCS2_SINGLE_UNITS 70u
#define HD_SMS_UCS2_PART_UNITS   67u

typedef struct hd_sms_segments {
	hd_sms_encoding_t encoding;
	size_t chars;      /* Unicode code points */
	size_t units;      /* septets (GSM7) or UTF-16 code units (UCS2) */
	size_t segments;   /* parts on the air; 1 for the empty text */
} hd_sms_segments_t;

/*
 * Count text (len bytes of UTF-8, no NUL inside). Returns 0 and fills
 * *out, or HD_E_INVALID when text is not valid UTF-8 (out untouched).
 */
int hd_sms_segments_count(const char *text, size_t len, hd_sms_segments_t *out);

/* True when code point cp is in the GSM 03.38 default alphabet (1 septet). */
int hd_sms_segments_is_gsm7_basic(uint32_t cp);

/* True when cp is in the GSM 03.38 extension table (2 septets: ESC + char). */
int hd_sms_segments_is_gsm7_extension(uint32_t cp);

/* "gsm7" | "ucs2"; static storage. */
const char *hd_sms_segments_encoding_name(hd_sms_encoding_t encoding);

#endif
