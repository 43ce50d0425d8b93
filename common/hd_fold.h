/*
 * NAME
 *	hd_fold - text folded for matching: one form for every way to write it
 * DESCRIPTION
 *	Policy lists must match however a sender spells a word: full-width
 *	letters (ＳＡＬＡＲＹ), mixed case, ligatures, accents, zero-width
 *	characters slipped between letters, ideographic spaces. hd_fold maps
 *	text to one canonical form, built with utf8proc:
 *	  - Unicode compatibility decomposition (NFKD; two strings have the
 *	    same NFKD form exactly when they have the same NFKC form, so
 *	    matching in the decomposed form is matching under NFKC, without
 *	    the composition pass);
 *	  - full Unicode case folding;
 *	  - default-ignorable code points removed (zero-width space and
 *	    joiners, soft hyphen, word joiner, BOM ...);
 *	  - combining marks removed (salári → salari);
 *	  - every run of white space (any Unicode space, tab, newline) made
 *	    one ASCII space, and none at the ends.
 *	The fold of every Basic Multilingual Plane character is computed
 *	once with utf8proc into a 128 KB table (hd_fold_init, or the first
 *	hd_fold), so folding is one look-up per character; characters that
 *	decompose into several, and those beyond the BMP, go through
 *	utf8proc at run time. Pure apart from that table: no I/O, no logging.
 * OWNERSHIP
 *	The caller owns the buffer; hd_fold grows it as needed and
 *	hd_fold_buf_release frees it.
 */
#ifndef HD_FOLD_H
#define HD_FOLD_H

#include <stddef.h>

/* A reusable output buffer; zero-initialise before first use. */
typedef struct hd_fold_buf {
	char *data;   /* NUL-terminated folded text */
	size_t len;   /* bytes, without the NUL */
	size_t cap;
} hd_fold_buf_t;

/* Build the look-up table now (thread-safe, once); hd_fold calls it too. */
void hd_fold_init(void);

/*
 * Fold len bytes of UTF-8 text into out (replacing its contents).
 * Returns 0, or HD_E_INVALID when text is not valid UTF-8 (out is then
 * empty).
 */
int hd_fold(hd_fold_buf_t *out, const char *text, size_t len);

/*
 * Append len bytes to out as they are (no folding), keeping it
 * NUL-terminated: for callers that prepare text before folding it.
 */
void hd_fold_buf_append(hd_fold_buf_t *out, const char *bytes, size_t len);

/* Free out's memory and zero it; NULL-safe. */
void hd_fold_buf_release(hd_fold_buf_t *out);

#endif
