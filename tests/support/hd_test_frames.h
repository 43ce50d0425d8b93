/*
 * NAME
 *	hd_test_frames - msgpack frames from a compact notation, for codec tests
 * DESCRIPTION
 *	The helpers test_hd_envelope and test_hd_wire share (prefix tf_):
 *	tf_mp() packs a frame written in a small notation with msgpack-c,
 *	independently of the encoders under test, so broken and borderline
 *	frames are easy to write; plus a byte search and a deep comparison
 *	of two messages. Test support only: linked into the cmocka unit
 *	tests, never into the product. Every helper fails the running cmocka
 *	test on bad input instead of returning an error.
 *
 *	The notation (printf-formatted first, so "%d" etc. work):
 *	  value   := map | array | text | 'b' text | 'x' '\'' hex '\'' | number
 *	           | nil | true | false
 *	  map     := '{' [value ':' value {',' value ':' value}] '}'
 *	  array   := '[' [value {',' value}] ']'
 *	  text    := piece {'+' piece}        (concatenation)
 *	  piece   := '\'' chars '\'' ['*' N]  (\\ \' \xNN escapes; *N repeats)
 *	  number  := ['-'] digits ['.' digits]   (a '.' makes it a float64)
 *	  x'..'   := raw bytes, copied as they are (to build broken frames)
 *	Values after the first are appended (a frame with trailing items).
 * OWNERSHIP
 *	tf_mp's result is malloc'ed: the caller frees it with free().
 */
#ifndef HD_TEST_FRAMES_H
#define HD_TEST_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "hd_msg.h"

/*
 * Pack the notation fmt (after printf formatting) into a new buffer of
 * *len bytes; the caller frees it. Unparsable notation fails the test.
 */
uint8_t *tf_mp(size_t *len, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The value of one hex digit; anything else fails the test. */
unsigned tf_hexval(char c);

/* First place of needle (m bytes) in hay (n bytes), or NULL; borrowed from hay. */
const uint8_t *tf_find_bytes(const uint8_t *hay, size_t n, const char *needle, size_t m);

/*
 * Assert that a and b (both borrowed) are the same message: every field,
 * recipients, attachments (name, type, bytes), bulk declaration and tags.
 */
void tf_assert_msg_equal(const hd_msg_t *a, const hd_msg_t *b);

#endif
