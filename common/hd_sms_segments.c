/*
 * NAME
 *	hd_sms_segments - how many SMS parts a text needs
 * DESCRIPTION
 *	GSM 03.38 (3GPP TS 23.038) default alphabet and extension table,
 *	UTF-8 decoding and greedy part packing that never splits an escape
 *	sequence or a surrogate pair, as gateways do when they concatenate.
 */
#include "hd_sms_segments.h"

#include "hd_err.h"

/* The default alphabet above ASCII, and the ASCII characters it lacks. */
static const uint32_t gsm7_basic_non_ascii[] = {
	0x00A3, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, 0x00F2, 0x00C7, /* £¥èéùìòÇ */
	0x00D8, 0x00F8, 0x00C5, 0x00E5, 0x0394, 0x03A6, 0x0393, 0x039B, /* ØøÅåΔΦΓΛ */
	0x03A9, 0x03A0, 0x03A8, 0x03A3, 0x0398, 0x039E, 0x00C6, 0x00E6, /* ΩΠΨΣΘΞÆæ */
	0x00DF, 0x00C9, 0x00A4, 0x00A1, 0x00C4, 0x00D6, 0x00D1, 0x00DC, /* ßÉ¤¡ÄÖÑÜ */
	0x00A7, 0x00BF, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0,         /* §¿äöñüà */
};

static const uint32_t gsm7_extension[] = {
	0x000C, '^', '{', '}', '\\', '[', '~', ']', '|', 0x20AC, /* FF ^{}\[~]| € */
};

int hd_sms_segments_is_gsm7_basic(uint32_t cp)
{
	if (cp == '\n' || cp == '\r')
		return 1;
	if (cp >= 0x20 && cp < 0x7f) {
		/* ASCII printable except the backquote and the extension characters */
		if (cp == '`')
			return 0;
		for (size_t i = 0; i < sizeof gsm7_extension / sizeof gsm7_extension[0]; i++)
			if (gsm7_extension[i] == cp)
				return 0;
		return 1;
	}
	for (size_t i = 0; i < sizeof gsm7_basic_non_ascii / sizeof gsm7_basic_non_ascii[0]; i++)
		if (gsm7_basic_non_ascii[i] == cp)
			return 1;
	return 0;
}

int hd_sms_segments_is_gsm7_extension(uint32_t cp)
{
	for (size_t i = 0; i < sizeof gsm7_extension / sizeof gsm7_extension[0]; i++)
		if (gsm7_extension[i] == cp)
			return 1;
	return 0;
}

const char *hd_sms_segments_encoding_name(hd_sms_encoding_t encoding)
{
	return encoding == HD_SMS_GSM7 ? "gsm7" : "ucs2";
}

/*
 * Decode one code point at *p (strict: no overlongs, no surrogates, at
 * most U+10FFFF, no NUL). Returns bytes consumed, 0 on invalid input.
 */
static size_t decode_utf8(const unsigned char *p, size_t left, uint32_t *cp)
{
	unsigned char c = p[0];
	size_t need;
	uint32_t v, min;

	if (c == 0)
		return 0;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1; v = c & 0x1fu; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2; v = c & 0x0fu; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3; v = c & 0x07u; min = 0x10000;
	} else {
		return 0;
	}
	if (left < need + 1)
		return 0;
	for (size_t i = 1; i <= need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3fu);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return need + 1;
}

int hd_sms_segments_count(const char *text, size_t len, hd_sms_segments_t *out)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t chars = 0, septets = 0, utf16 = 0;
	int gsm = 1;

	/* Pass 1: validate, and decide the encoding. */
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = decode_utf8(p + i, len - i, &cp);
		if (n == 0)
			return HD_E_INVALID;
		i += n;
		chars++;
		utf16 += cp > 0xffff ? 2u : 1u;
		if (gsm) {
			if (hd_sms_segments_is_gsm7_basic(cp))
				septets += 1;
			else if (hd_sms_segments_is_gsm7_extension(cp))
				septets += 2;
			else
				gsm = 0;
		}
	}

	hd_sms_encoding_t enc = gsm ? HD_SMS_GSM7 : HD_SMS_UCS2;
	size_t units = gsm ? septets : utf16;
	size_t single = gsm ? HD_SMS_GSM7_SINGLE_UNITS : HD_SMS_UCS2_SINGLE_UNITS;
	size_t part = gsm ? HD_SMS_GSM7_PART_UNITS : HD_SMS_UCS2_PART_UNITS;
	size_t segments = 1;

	/* Pass 2: pack parts greedily; a 2-unit character never straddles two parts. */
	if (units > single) {
		size_t used = 0;
		for (size_t i = 0; i < len;) {
			uint32_t cp = 0;
			i += decode_utf8(p + i, len - i, &cp);
			size_t cost = gsm ? (hd_sms_segments_is_gsm7_extension(cp) ? 2u : 1u)
					  : (cp > 0xffff ? 2u : 1u);
			if (used + cost > part) {
				segments++;
				used = 0;
			}
			used += cost;
		}
	}

	out->encoding = enc;
	out->chars = chars;
	out->units = units;
	out->segments = segments;
	return 0;
}
