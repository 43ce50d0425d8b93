/*
 * NAME
 *	hd_num - whole numbers from command-line text
 * DESCRIPTION
 *	One strict parser for the counts and limits programs take as
 *	options (--limit, --messages, ...): decimal digits with an optional
 *	sign, nothing before or after, within bounds the caller names. Owns
 *	nothing; never logs: the caller says what was wrong in its words.
 */
#ifndef HD_NUM_H
#define HD_NUM_H

#include <stdbool.h>

/*
 * true with *out = the value of s when s is a whole decimal number in
 * lo..hi; false (out untouched) for NULL, empty text, other characters,
 * overflow or a value outside the bounds.
 */
bool hd_num_parse_long(const char *s, long lo, long hi, long *out);

#endif
