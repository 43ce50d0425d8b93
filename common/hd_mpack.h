/*
 * NAME
 *	hd_mpack - a bounded, zero-copy msgpack reader
 * DESCRIPTION
 *	A cursor over a byte buffer that reads one msgpack item at a time.
 *	It never allocates: strings and binaries are returned as pointers
 *	into the buffer. Every length and container count is checked
 *	against the bytes that remain before it is returned, so a caller
 *	that allocates "count" elements allocates at most what the input
 *	actually carries (a map of n entries needs >= 2n bytes, an array of
 *	n elements >= n bytes). It exists because msgpack-c's unpacker
 *	allocates from declared counts before validating them. Encoding is
 *	done with msgpack-c. Nothing here logs.
 * ERRORS
 *	HD_OK; HD_E_MALFORMED when the bytes are truncated or not msgpack
 *	(0xc1, counts beyond the buffer); HD_E_TYPE when the next item is
 *	of another type (the cursor is then left where it was, so the
 *	caller may peek and try another reader); HD_E_TOOBIG when an
 *	integer does not fit the requested C type or skip() meets nesting
 *	deeper than allowed. After HD_E_MALFORMED the cursor is undefined.
 */
#ifndef HD_MPACK_H
#define HD_MPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hd_mpack_reader {
	const uint8_t *p;    /* next byte to read */
	const uint8_t *end;  /* one past the last byte */
} hd_mpack_reader_t;

typedef enum {
	HD_MPACK_EOF,        /* no bytes left */
	HD_MPACK_INVALID,    /* 0xc1, never used by msgpack */
	HD_MPACK_NIL,
	HD_MPACK_BOOL,
	HD_MPACK_UINT,       /* positive fixint, uint 8/16/32/64 */
	HD_MPACK_INT,        /* negative fixint, int 8/16/32/64 (any sign) */
	HD_MPACK_FLOAT,
	HD_MPACK_STR,
	HD_MPACK_BIN,
	HD_MPACK_ARRAY,
	HD_MPACK_MAP,
	HD_MPACK_EXT
} hd_mpack_type_t;

/* Start reading buf[0..len). The buffer is borrowed; it must outlive r. */
void hd_mpack_reader_init(hd_mpack_reader_t *r, const void *buf, size_t len);

/* Bytes not yet consumed. */
size_t hd_mpack_remaining(const hd_mpack_reader_t *r);

/* Type of the next item without consuming it. */
hd_mpack_type_t hd_mpack_peek(const hd_mpack_reader_t *r);

/* A map header; *n is the number of key/value pairs (<= remaining/2). */
int hd_mpack_read_map(hd_mpack_reader_t *r, uint32_t *n);

/* An array header; *n is the number of elements (<= remaining). */
int hd_mpack_read_array(hd_mpack_reader_t *r, uint32_t *n);

/*
 * A str item. *s points into the buffer (borrowed, NOT NUL-terminated,
 * not checked for UTF-8), *len is its length in bytes.
 */
int hd_mpack_read_str(hd_mpack_reader_t *r, const char **s, uint32_t *len);

/* A bin item; *d points into the buffer (borrowed). */
int hd_mpack_read_bin(hd_mpack_reader_t *r, const uint8_t **d, uint32_t *len);

/*
 * An unsigned integer: positive fixint, uint 8..64, or an int 8..64
 * whose value is not negative. A negative value is HD_E_TYPE.
 */
int hd_mpack_read_uint(hd_mpack_reader_t *r, uint64_t *v);

/* A signed integer of any msgpack int/uint type; > INT64_MAX is HD_E_TOOBIG. */
int hd_mpack_read_int(hd_mpack_reader_t *r, int64_t *v);

int hd_mpack_read_bool(hd_mpack_reader_t *r, bool *v);

int hd_mpack_read_nil(hd_mpack_reader_t *r);

/*
 * Skip one complete item, containers included. Containers may nest at
 * most max_depth levels (the item itself being level 1 when it is a
 * container); deeper is HD_E_TOOBIG. Work is bounded by the bytes left.
 */
int hd_mpack_skip(hd_mpack_reader_t *r, unsigned max_depth);

#endif
