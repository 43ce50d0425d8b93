/*
 * NAME
 *	hd_fold - text folded for matching (see hd_fold.h)
 */
#include "hd_fold.h"

#include <pthread.h>
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

/*
 * The fold of every Basic Multilingual Plane code point, computed once
 * with utf8proc: the one BMP code point it folds to (white space as ' '),
 * HD_FOLD_DROP when it folds to nothing (ignorable, combining mark), or
 * HD_FOLD_SLOW when it decomposes into several code points or leaves the
 * BMP. Folding is then a table look-up per character for nearly all real
 * text; 16-bit entries keep the table (128 KB) in the cache. The two
 * sentinels are the noncharacters U+FFFE and U+FFFF, which themselves go
 * the slow way.
 */
#define HD_FOLD_DROP 0xfffeu
#define HD_FOLD_SLOW 0xffffu
#define HD_FOLD_BMP  0x10000u

static uint16_t *hd_fold_bmp;
static pthread_once_t hd_fold_bmp_once = PTHREAD_ONCE_INIT;

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

static void hd_fold_build_bmp(void)
{
	uint16_t *t = hd_malloc(HD_FOLD_BMP * sizeof(*t));
	for (utf8proc_int32_t cp = 0; cp < (utf8proc_int32_t)HD_FOLD_BMP; cp++) {
		if ((cp >= 0xd800 && cp <= 0xdfff) || cp >= 0xfffe) {
			t[cp] = HD_FOLD_SLOW;  /* never reached: not valid UTF-8 */
			continue;
		}
		utf8proc_int32_t dec[HD_FOLD_MAX_DECOMPOSITION];
		int boundclass = UTF8PROC_BOUNDCLASS_START;
		utf8proc_ssize_t m = utf8proc_decompose_char(cp, dec, HD_FOLD_MAX_DECOMPOSITION,
							     hd_fold_options, &boundclass);
		if (m == 0)
			t[cp] = HD_FOLD_DROP;
		else if (m == 1 && hd_fold_is_space(dec[0]))
			t[cp] = ' ';
		else if (m == 1 && dec[0] < 0xfffe)
			t[cp] = (uint16_t)dec[0];
		else
			t[cp] = HD_FOLD_SLOW;
	}
	hd_fold_bmp = t;
}

/*
 * A code point that decomposes into several (or lies beyond the BMP):
 * fold it with utf8proc and append, keeping room for 4 bytes for each of
 * the left input bytes after it.
 */
static int hd_fold_slow(hd_fold_buf_t *out, uint32_t cp, size_t left, bool *pending_space)
{
	utf8proc_int32_t dec[HD_FOLD_MAX_DECOMPOSITION];
	int boundclass = UTF8PROC_BOUNDCLASS_START;
	utf8proc_ssize_t m = utf8proc_decompose_char((utf8proc_int32_t)cp, dec,
						     HD_FOLD_MAX_DECOMPOSITION, hd_fold_options,
						     &boundclass);
	if (m < 0 || m > HD_FOLD_MAX_DECOMPOSITION)
		return HD_E_INVALID;
	hd_fold_reserve(out, (size_t)m * 5 + 4 * left + 1);
	for (utf8proc_ssize_t k = 0; k < m; k++) {
		if (hd_fold_is_space(dec[k])) {
			*pending_space = out->len > 0;
			continue;
		}
		if (*pending_space) {
			out->data[out->len++] = ' ';
			*pending_space = false;
		}
		out->len += (size_t)utf8proc_encode_char(dec[k],
							 (utf8proc_uint8_t *)out->data + out->len);
	}
	return HD_OK;
}

/*
 * Decode one UTF-8 sequence of a lead byte >= 0x80 at p (n bytes left):
 * its length, or 0 when invalid (overlong, surrogate, beyond U+10FFFF,
 * truncated).
 */
static inline size_t hd_fold_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned char c = p[0];
	if (c >= 0xc2 && c <= 0xdf) {
		if (n < 2 || (p[1] & 0xc0) != 0x80)
			return 0;
		*cp = (uint32_t)(c & 0x1f) << 6 | (p[1] & 0x3f);
		return 2;
	}
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		uint32_t v = (uint32_t)(c & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
		if (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))
			return 0;
		*cp = v;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
			return 0;
		uint32_t v = (uint32_t)(c & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
			     (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
		if (v < 0x10000 || v > 0x10ffff)
			return 0;
		*cp = v;
		return 4;
	}
	return 0;
}

void hd_fold_init(void)
{
	pthread_once(&hd_fold_bmp_once, hd_fold_build_bmp);
}

/* Encode cp at d (room for 4 bytes); returns the bytes written. */
static inline size_t hd_fold_encode(unsigned char *d, uint32_t cp)
{
	if (cp < 0x80) {
		d[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (unsigned char)(0xc0 | (cp >> 6));
		d[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (unsigned char)(0xe0 | (cp >> 12));
		d[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		d[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	d[0] = (unsigned char)(0xf0 | (cp >> 18));
	d[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	d[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	d[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

int hd_fold(hd_fold_buf_t *out, const char *text, size_t len)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0;
	bool pending_space = false;

	hd_fold_init();
	out->len = 0;
	/* One input byte gives at most 4 output bytes through the table (a
	 * 1-byte sequence folds to 1, 2 bytes to at most 3, 3 to at most 4,
	 * a pending space is paid for by the white space that made it); the
	 * slow path reserves its own. */
	hd_fold_reserve(out, 4 * len + 1);
	/* Locals, not out->data / out->len: byte stores through a char
	 * pointer would make the compiler reload them at every byte. */
	unsigned char *d = (unsigned char *)out->data;
	size_t o = 0;
	while (i < len) {
		uint32_t c = p[i];
		uint32_t f;
		if (c < 0x80) {
			f = hd_fold_bmp[c];
			i++;
		} else {
			uint32_t cp;
			size_t n = hd_fold_decode(p + i, len - i, &cp);
			if (n == 0)
				goto invalid;
			i += n;
			f = cp < HD_FOLD_BMP ? hd_fold_bmp[cp] : HD_FOLD_SLOW;
			if (f == HD_FOLD_SLOW) {
				out->len = o;
				if (hd_fold_slow(out, cp, len - i, &pending_space) != HD_OK)
					goto invalid;
				d = (unsigned char *)out->data;
				o = out->len;
				continue;
			}
		}
		if (f == ' ') {
			pending_space = o > 0;
		} else if (f != HD_FOLD_DROP) {
			if (pending_space) {
				d[o++] = ' ';
				pending_space = false;
			}
			o += hd_fold_encode(d + o, f);
		}
	}
	d[o] = '\0';
	out->len = o;
	return HD_OK;
invalid:
	out->len = 0;
	out->data[0] = '\0';
	return HD_E_INVALID;
}

void hd_fold_buf_append(hd_fold_buf_t *out, const char *bytes, size_t len)
{
	hd_fold_reserve(out, len);
	memcpy(out->data + out->len, bytes, len);
	out->len += len;
	out->data[out->len] = '\0';
}

void hd_fold_buf_release(hd_fold_buf_t *out)
{
	if (!out)
		return;
	free(out->data);
	memset(out, 0, sizeof(*out));
}
