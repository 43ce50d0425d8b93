/*
 * NAME
 *	hd_mpack - a bounded, zero-copy msgpack reader
 * DESCRIPTION
 *	Reads msgpack items from a cursor, checking every length against
 *	the bytes that remain before returning it. See hd_mpack.h for the
 *	error contract. No allocation, no logging, no recursion deeper
 *	than the caller's max_depth.
 */
#include "hd_mpack.h"

#include "hd_err.h"

/* skip() never recurses deeper than this, whatever the caller asks. */
#define HD_MPACK_SKIP_DEPTH_CEILING 64u

static inline uint16_t load16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

static inline uint32_t load32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t load64(const uint8_t *p)
{
	return (uint64_t)load32(p) << 32 | (uint64_t)load32(p + 4);
}

static inline size_t avail(const hd_mpack_reader_t *r)
{
	return (size_t)(r->end - r->p);
}

void hd_mpack_reader_init(hd_mpack_reader_t *r, const void *buf, size_t len)
{
	/* NULL + 0 is undefined in C: give an empty input a real address. */
	static const uint8_t empty[1];
	r->p = buf ? buf : empty;
	r->end = r->p + (buf ? len : 0);
}

size_t hd_mpack_remaining(const hd_mpack_reader_t *r)
{
	return avail(r);
}

hd_mpack_type_t hd_mpack_peek(const hd_mpack_reader_t *r)
{
	if (r->p >= r->end)
		return HD_MPACK_EOF;
	uint8_t b = *r->p;
	if (b <= 0x7f)
		return HD_MPACK_UINT;
	if (b <= 0x8f)
		return HD_MPACK_MAP;
	if (b <= 0x9f)
		return HD_MPACK_ARRAY;
	if (b <= 0xbf)
		return HD_MPACK_STR;
	if (b >= 0xe0)
		return HD_MPACK_INT;
	switch (b) {
	case 0xc0: return HD_MPACK_NIL;
	case 0xc1: return HD_MPACK_INVALID;
	case 0xc2: case 0xc3: return HD_MPACK_BOOL;
	case 0xc4: case 0xc5: case 0xc6: return HD_MPACK_BIN;
	case 0xc7: case 0xc8: case 0xc9: return HD_MPACK_EXT;
	case 0xca: case 0xcb: return HD_MPACK_FLOAT;
	case 0xcc: case 0xcd: case 0xce: case 0xcf: return HD_MPACK_UINT;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: return HD_MPACK_INT;
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return HD_MPACK_EXT;
	case 0xd9: case 0xda: case 0xdb: return HD_MPACK_STR;
	case 0xdc: case 0xdd: return HD_MPACK_ARRAY;
	default: return HD_MPACK_MAP; /* 0xde, 0xdf */
	}
}

/* The error for "the next item is not what was asked for". */
static int wrong(const hd_mpack_reader_t *r)
{
	hd_mpack_type_t t = hd_mpack_peek(r);
	return t == HD_MPACK_EOF || t == HD_MPACK_INVALID ? HD_E_MALFORMED : HD_E_TYPE;
}

/*
 * Read a length field of width bytes after the type byte; on success
 * consume header and return the length through *n.
 */
static int read_len(hd_mpack_reader_t *r, size_t width, uint32_t *n)
{
	if (avail(r) < 1 + width)
		return HD_E_MALFORMED;
	switch (width) {
	case 1: *n = r->p[1]; break;
	case 2: *n = load16(r->p + 1); break;
	default: *n = load32(r->p + 1); break;
	}
	r->p += 1 + width;
	return HD_OK;
}

static int read_container(hd_mpack_reader_t *r, uint32_t *n, uint8_t fix_tag,
			  uint8_t tag16, unsigned bytes_per_item)
{
	if (r->p >= r->end)
		return HD_E_MALFORMED;
	const uint8_t *start = r->p;
	uint8_t b = *r->p;
	uint32_t count;
	int rc;
	if ((b & 0xf0) == fix_tag) {
		count = b & 0x0fu;
		r->p++;
	} else if (b == tag16) {
		if ((rc = read_len(r, 2, &count)) != HD_OK)
			return rc;
	} else if (b == (uint8_t)(tag16 + 1)) {
		if ((rc = read_len(r, 4, &count)) != HD_OK)
			return rc;
	} else {
		return wrong(r);
	}
	/* Each element needs at least one byte: refuse counts the input cannot hold. */
	if ((uint64_t)count * bytes_per_item > avail(r)) {
		r->p = start;
		return HD_E_MALFORMED;
	}
	*n = count;
	return HD_OK;
}

int hd_mpack_read_map(hd_mpack_reader_t *r, uint32_t *n)
{
	return read_container(r, n, 0x80, 0xde, 2);
}

int hd_mpack_read_array(hd_mpack_reader_t *r, uint32_t *n)
{
	return read_container(r, n, 0x90, 0xdc, 1);
}

static int read_raw(hd_mpack_reader_t *r, uint32_t *len, uint8_t tag8, bool fixstr)
{
	if (r->p >= r->end)
		return HD_E_MALFORMED;
	uint8_t b = *r->p;
	uint32_t n;
	int rc = HD_OK;
	if (fixstr && (b & 0xe0) == 0xa0) {
		n = b & 0x1fu;
		r->p++;
	} else if (b == tag8) {
		rc = read_len(r, 1, &n);
	} else if (b == tag8 + 1) {
		rc = read_len(r, 2, &n);
	} else if (b == tag8 + 2) {
		rc = read_len(r, 4, &n);
	} else {
		return wrong(r);
	}
	if (rc != HD_OK)
		return rc;
	if (n > avail(r))
		return HD_E_MALFORMED;
	*len = n;
	return HD_OK;
}

int hd_mpack_read_str(hd_mpack_reader_t *r, const char **s, uint32_t *len)
{
	uint32_t n;
	int rc = read_raw(r, &n, 0xd9, true);
	if (rc != HD_OK)
		return rc;
	*s = (const char *)r->p;
	*len = n;
	r->p += n;
	return HD_OK;
}

int hd_mpack_read_bin(hd_mpack_reader_t *r, const uint8_t **d, uint32_t *len)
{
	uint32_t n;
	int rc = read_raw(r, &n, 0xc4, false);
	if (rc != HD_OK)
		return rc;
	*d = r->p;
	*len = n;
	r->p += n;
	return HD_OK;
}

/*
 * Decode any integer item. *neg tells whether the value is negative;
 * *bits is the value itself when not negative, or its two's-complement
 * bit pattern when negative.
 */
static int read_integer(hd_mpack_reader_t *r, bool *neg, uint64_t *bits)
{
	if (r->p >= r->end)
		return HD_E_MALFORMED;
	uint8_t b = *r->p;
	size_t need;
	if (b <= 0x7f) {
		*neg = false;
		*bits = b;
		r->p++;
		return HD_OK;
	}
	if (b >= 0xe0) {
		*neg = true;
		*bits = (uint64_t)(int64_t)(int8_t)b;
		r->p++;
		return HD_OK;
	}
	switch (b) {
	case 0xcc: case 0xd0: need = 1; break;
	case 0xcd: case 0xd1: need = 2; break;
	case 0xce: case 0xd2: need = 4; break;
	case 0xcf: case 0xd3: need = 8; break;
	default: return wrong(r);
	}
	if (avail(r) < 1 + need)
		return HD_E_MALFORMED;
	const uint8_t *q = r->p + 1;
	uint64_t u;
	switch (need) {
	case 1: u = q[0]; break;
	case 2: u = load16(q); break;
	case 4: u = load32(q); break;
	default: u = load64(q); break;
	}
	if (b >= 0xd0) {
		/* Sign-extend the big-endian two's-complement value. */
		int64_t s;
		switch (need) {
		case 1: s = (int8_t)(uint8_t)u; break;
		case 2: s = (int16_t)(uint16_t)u; break;
		case 4: s = (int32_t)(uint32_t)u; break;
		default: s = (int64_t)u; break;
		}
		*neg = s < 0;
		*bits = (uint64_t)s;
	} else {
		*neg = false;
		*bits = u;
	}
	r->p += 1 + need;
	return HD_OK;
}

int hd_mpack_read_uint(hd_mpack_reader_t *r, uint64_t *v)
{
	const uint8_t *start = r->p;
	bool neg;
	uint64_t bits;
	int rc = read_integer(r, &neg, &bits);
	if (rc != HD_OK)
		return rc;
	if (neg) {
		r->p = start;
		return HD_E_TYPE;
	}
	*v = bits;
	return HD_OK;
}

int hd_mpack_read_int(hd_mpack_reader_t *r, int64_t *v)
{
	const uint8_t *start = r->p;
	bool neg;
	uint64_t bits;
	int rc = read_integer(r, &neg, &bits);
	if (rc != HD_OK)
		return rc;
	if (!neg && bits > (uint64_t)INT64_MAX) {
		r->p = start;
		return HD_E_TOOBIG;
	}
	*v = (int64_t)bits;
	return HD_OK;
}

int hd_mpack_read_bool(hd_mpack_reader_t *r, bool *v)
{
	if (r->p < r->end && (*r->p == 0xc2 || *r->p == 0xc3)) {
		*v = *r->p == 0xc3;
		r->p++;
		return HD_OK;
	}
	return wrong(r);
}

int hd_mpack_read_nil(hd_mpack_reader_t *r)
{
	if (r->p < r->end && *r->p == 0xc0) {
		r->p++;
		return HD_OK;
	}
	return wrong(r);
}

static int skip_bytes(hd_mpack_reader_t *r, size_t n)
{
	if (n > avail(r))
		return HD_E_MALFORMED;
	r->p += n;
	return HD_OK;
}

static int skip_item(hd_mpack_reader_t *r, unsigned depth_left)
{
	uint32_t n;
	int rc;
	switch (hd_mpack_peek(r)) {
	case HD_MPACK_EOF:
	case HD_MPACK_INVALID:
		return HD_E_MALFORMED;
	case HD_MPACK_NIL:
	case HD_MPACK_BOOL:
		r->p++;
		return HD_OK;
	case HD_MPACK_UINT:
	case HD_MPACK_INT: {
		bool neg;
		uint64_t bits;
		return read_integer(r, &neg, &bits);
	}
	case HD_MPACK_FLOAT:
		return skip_bytes(r, *r->p == 0xca ? 5u : 9u);
	case HD_MPACK_STR: {
		const char *s;
		return hd_mpack_read_str(r, &s, &n);
	}
	case HD_MPACK_BIN: {
		const uint8_t *d;
		return hd_mpack_read_bin(r, &d, &n);
	}
	case HD_MPACK_EXT: {
		uint8_t b = *r->p;
		if (b >= 0xd4 && b <= 0xd8) /* fixext 1,2,4,8,16 + type byte */
			return skip_bytes(r, 2u + (1u << (b - 0xd4)));
		size_t width = b == 0xc7 ? 1u : b == 0xc8 ? 2u : 4u;
		if ((rc = read_len(r, width, &n)) != HD_OK)
			return rc;
		return skip_bytes(r, 1u + (size_t)n);
	}
	case HD_MPACK_ARRAY:
		if (depth_left == 0)
			return HD_E_TOOBIG;
		if ((rc = hd_mpack_read_array(r, &n)) != HD_OK)
			return rc;
		for (uint32_t i = 0; i < n; i++)
			if ((rc = skip_item(r, depth_left - 1)) != HD_OK)
				return rc;
		return HD_OK;
	case HD_MPACK_MAP:
		if (depth_left == 0)
			return HD_E_TOOBIG;
		if ((rc = hd_mpack_read_map(r, &n)) != HD_OK)
			return rc;
		for (uint32_t i = 0; i < n; i++) {
			if ((rc = skip_item(r, depth_left - 1)) != HD_OK)
				return rc;
			if ((rc = skip_item(r, depth_left - 1)) != HD_OK)
				return rc;
		}
		return HD_OK;
	}
	return HD_E_MALFORMED;
}

int hd_mpack_skip(hd_mpack_reader_t *r, unsigned max_depth)
{
	if (max_depth > HD_MPACK_SKIP_DEPTH_CEILING)
		max_depth = HD_MPACK_SKIP_DEPTH_CEILING;
	return skip_item(r, max_depth);
}
