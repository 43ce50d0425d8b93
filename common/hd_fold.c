/*
 * NAME
 *	hd_fold - text folded for matching (see hd_fold.h)
 */
#include "hd_fold.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "hd_err.h"
#include "hd_mem.h"

/* The longest full decomposition of one code point is 18 (U+FDFA). */
#define HD_FOLD_MAX_DECOMPOSITION 32

static const utf8proc_option_t hd_fold_options =
	UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE |
	UTF8PROC_STRIPMARK;

static void hd_fold_reserve(hd_fold_buf_t *out, size_t more)
{
	if (out->len + more + 1 <= out->cap)
		return;
	size_t cap = out->cap ? out->cap : 256;
	while (cap < out->len + more + 1)
		cap *= 2;
	out->data = hd_realloc(out->data, cap);
	out->cap = cap;
}

static bool hd_fold_is_space(utf8proc_int32_t cp)
{
	if (cp == ' ' || (cp >= 0x09 && cp <= 0x0d))
		return true;
	if (cp < 0x80)
		return false;
	utf8proc_category_t cat = utf8proc_category(cp);
	return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
	       cat == UTF8PROC_CATEGORY_ZP || cp == 0x85;
}

/* Appends one folded code point; pending_space carries a white-space run. */
static void hd_fold_put(hd_fold_buf_t *out, utf8proc_int32_t cp, bool *pending_space)
{
	if (hd_fold_is_space(cp)) {
		*pending_space = out->len > 0;
		return;
	}
	if (*pending_space) {
		out->data[out->len++] = ' ';
		*pending_space = false;
	}
	out->len += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out->data + out->len);
}

int hd_fold(hd_fold_buf_t *out, const char *text, size_t len)
{
	const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
	size_t i = 0;
	bool pending_space = false;

	out->len = 0;
	/* Worst case per input byte: a 4-byte sequence becomes 18 code points
	 * of 4 bytes, i.e. 18 bytes out per input byte, plus a space. */
	hd_fold_reserve(out, len + 1);
	while (i < len) {
		uint8_t c = p[i];
		if (c < 0x80) {
			hd_fold_reserve(out, 2);
			if (c >= 'A' && c <= 'Z')
				c = (uint8_t)(c + ('a' - 'A'));
			hd_fold_put(out, c, &pending_space);
			i++;
			continue;
		}
		utf8proc_int32_t cp;
		utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
		if (n <= 0 || cp < 0)
			goto invalid;
		i += (size_t)n;
		if (cp >= 0x4e00 && cp <= 0x9fff) {
			/* CJK Unified Ideographs: no decomposition, no case. */
			hd_fold_reserve(out, 5);
			hd_fold_put(out, cp, &pending_space);
			continue;
		}
		utf8proc_int32_t dec[HD_FOLD_MAX_DECOMPOSITION];
		int boundclass = UTF8PROC_BOUNDCLASS_START;
		utf8proc_ssize_t m = utf8proc_decompose_char(cp, dec, HD_FOLD_MAX_DECOMPOSITION,
							     hd_fold_options, &boundclass);
		if (m < 0 || m > HD_FOLD_MAX_DECOMPOSITION)
			goto invalid;
		hd_fold_reserve(out, (size_t)m * 4 + 1);
		for (utf8proc_ssize_t k = 0; k < m; k++)
			hd_fold_put(out, dec[k], &pending_space);
	}
	out->data[out->len] = '\0';
	return HD_OK;
invalid:
	out->len = 0;
	out->data[0] = '\0';
	return HD_E_INVALID;
}

void hd_fold_buf_release(hd_fold_buf_t *out)
{
	if (!out)
		return;
	free(out->data);
	memset(out, 0, sizeof(*out));
}
