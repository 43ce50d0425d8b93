/*
 * NAME
 *	test_hd_mpack - the bounded msgpack reader
 * DESCRIPTION
 *	Every reader on every encoding width, the type/malformed contract,
 *	counts that exceed the input, truncation at every offset, and skip
 *	with its depth bound. Values are produced with msgpack-c so the
 *	reader is checked against an independent encoder.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "hd_err.h"
#include "hd_mpack.h"

static hd_mpack_reader_t reader(const void *buf, size_t len)
{
	hd_mpack_reader_t r;
	hd_mpack_reader_init(&r, buf, len);
	return r;
}

static void test_read_map_returns_count_of_fixmap_map16_and_map32(void **state)
{
	(void)state;
	uint32_t n;
	uint8_t fix[] = {0x81, 0xc0, 0xc0};
	hd_mpack_reader_t r = reader(fix, sizeof fix);
	assert_int_equal(hd_mpack_read_map(&r, &n), HD_OK);
	assert_int_equal(n, 1);
	assert_int_equal(hd_mpack_remaining(&r), 2);

	uint8_t m16[3 + 4] = {0xde, 0x00, 0x02, 0xc0, 0xc0, 0xc0, 0xc0};
	r = reader(m16, sizeof m16);
	assert_int_equal(hd_mpack_read_map(&r, &n), HD_OK);
	assert_int_equal(n, 2);

	uint8_t m32[5 + 2] = {0xdf, 0x00, 0x00, 0x00, 0x01, 0xc0, 0xc0};
	r = reader(m32, sizeof m32);
	assert_int_equal(hd_mpack_read_map(&r, &n), HD_OK);
	assert_int_equal(n, 1);
}

static void test_read_array_refuses_count_larger_than_remaining_bytes(void **state)
{
	(void)state;
	uint32_t n = 12345;
	uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
	hd_mpack_reader_t r = reader(huge, sizeof huge);
	assert_int_equal(hd_mpack_read_array(&r, &n), HD_E_MALFORMED);
	assert_int_equal(n, 12345); /* nothing returned */

	/* Three elements declared, two bytes follow. */
	uint8_t short3[] = {0x93, 0x01, 0x02};
	r = reader(short3, sizeof short3);
	assert_int_equal(hd_mpack_read_array(&r, &n), HD_E_MALFORMED);

	uint8_t exact3[] = {0x93, 0x01, 0x02, 0x03};
	r = reader(exact3, sizeof exact3);
	assert_int_equal(hd_mpack_read_array(&r, &n), HD_OK);
	assert_int_equal(n, 3);
}

static void test_read_map_refuses_count_needing_two_bytes_per_pair(void **state)
{
	(void)state;
	uint32_t n;
	uint8_t huge[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0};
	hd_mpack_reader_t r = reader(huge, sizeof huge);
	assert_int_equal(hd_mpack_read_map(&r, &n), HD_E_MALFORMED);

	/* Two pairs need at least four bytes; three are left. */
	uint8_t short2[] = {0x82, 0xc0, 0xc0, 0xc0};
	r = reader(short2, sizeof short2);
	assert_int_equal(hd_mpack_read_map(&r, &n), HD_E_MALFORMED);
}

static void test_read_str_returns_a_pointer_into_the_buffer(void **state)
{
	(void)state;
	uint8_t buf[] = {0xa3, 'a', 'b', 'c', 0xc0};
	hd_mpack_reader_t r = reader(buf, sizeof buf);
	const char *s;
	uint32_t len;
	assert_int_equal(hd_mpack_read_str(&r, &s, &len), HD_OK);
	assert_ptr_equal(s, (const char *)buf + 1);
	assert_int_equal(len, 3);
	assert_int_equal(hd_mpack_peek(&r), HD_MPACK_NIL);
}

static void pack_str_len(msgpack_packer *pk, size_t len)
{
	char *s = malloc(len + 1);
	memset(s, 'x', len);
	msgpack_pack_str_with_body(pk, s, len);
	free(s);
}

static void test_read_str_accepts_every_width(void **state)
{
	(void)state;
	static const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		pack_str_len(&pk, lens[i]);
		hd_mpack_reader_t r = reader(sb.data, sb.size);
		const char *s;
		uint32_t len;
		assert_int_equal(hd_mpack_read_str(&r, &s, &len), HD_OK);
		assert_int_equal(len, lens[i]);
		assert_int_equal(hd_mpack_remaining(&r), 0);
		/* Cut one byte off: the body no longer fits. */
		r = reader(sb.data, sb.size - 1);
		assert_int_equal(hd_mpack_read_str(&r, &s, &len), HD_E_MALFORMED);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void test_read_str_reports_type_for_bin_and_leaves_the_cursor(void **state)
{
	(void)state;
	uint8_t buf[] = {0xc4, 0x02, 'h', 'i'};
	hd_mpack_reader_t r = reader(buf, sizeof buf);
	const char *s;
	uint32_t len;
	assert_int_equal(hd_mpack_read_str(&r, &s, &len), HD_E_TYPE);
	assert_ptr_equal(r.p, buf);
	const uint8_t *d;
	assert_int_equal(hd_mpack_read_bin(&r, &d, &len), HD_OK);
	assert_ptr_equal(d, buf + 2);
	assert_int_equal(len, 2);
}

static void test_read_bin_refuses_declared_length_beyond_the_buffer(void **state)
{
	(void)state;
	uint8_t buf[] = {0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00};
	hd_mpack_reader_t r = reader(buf, sizeof buf);
	const uint8_t *d;
	uint32_t len;
	assert_int_equal(hd_mpack_read_bin(&r, &d, &len), HD_E_MALFORMED);
}

static void test_read_uint_accepts_every_unsigned_width_and_nonnegative_ints(void **state)
{
	(void)state;
	static const uint64_t values[] = {0, 1, 127, 128, 255, 256, 65535, 65536,
					  UINT32_MAX, (uint64_t)UINT32_MAX + 1, UINT64_MAX};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_uint64(&pk, values[i]);
		hd_mpack_reader_t r = reader(sb.data, sb.size);
		uint64_t v;
		assert_int_equal(hd_mpack_read_uint(&r, &v), HD_OK);
		assert_true(v == values[i]);
		assert_int_equal(hd_mpack_remaining(&r), 0);
		for (size_t cut = 0; cut < sb.size; cut++) {
			r = reader(sb.data, cut);
			assert_int_equal(hd_mpack_read_uint(&r, &v), HD_E_MALFORMED);
		}
		msgpack_sbuffer_destroy(&sb);
	}
	/* int8 0x05 and int64 holding 7 are non-negative: accepted. */
	uint8_t i8[] = {0xd0, 0x05};
	hd_mpack_reader_t r = reader(i8, sizeof i8);
	uint64_t v;
	assert_int_equal(hd_mpack_read_uint(&r, &v), HD_OK);
	assert_int_equal(v, 5);
	uint8_t i64[] = {0xd3, 0, 0, 0, 0, 0, 0, 0, 7};
	r = reader(i64, sizeof i64);
	assert_int_equal(hd_mpack_read_uint(&r, &v), HD_OK);
	assert_int_equal(v, 7);
}

static void test_read_uint_refuses_negative_values_as_wrong_type(void **state)
{
	(void)state;
	uint8_t negfix[] = {0xff};
	uint8_t i16[] = {0xd1, 0xff, 0xfe};
	uint64_t v;
	hd_mpack_reader_t r = reader(negfix, sizeof negfix);
	assert_int_equal(hd_mpack_read_uint(&r, &v), HD_E_TYPE);
	assert_ptr_equal(r.p, negfix);
	r = reader(i16, sizeof i16);
	assert_int_equal(hd_mpack_read_uint(&r, &v), HD_E_TYPE);
	uint8_t str[] = {0xa1, '1'};
	r = reader(str, sizeof str);
	assert_int_equal(hd_mpack_read_uint(&r, &v), HD_E_TYPE);
	uint8_t flt[] = {0xca, 0x3f, 0x80, 0x00, 0x00};
	r = reader(flt, sizeof flt);
	assert_int_equal(hd_mpack_read_uint(&r, &v), HD_E_TYPE);
}

static void test_read_int_accepts_every_signed_width(void **state)
{
	(void)state;
	static const int64_t values[] = {0, -1, -32, -33, -128, -129, -32768, -32769,
					 INT32_MIN, (int64_t)INT32_MIN - 1, INT64_MIN,
					 127, 40000, INT64_MAX};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_int64(&pk, values[i]);
		hd_mpack_reader_t r = reader(sb.data, sb.size);
		int64_t v;
		assert_int_equal(hd_mpack_read_int(&r, &v), HD_OK);
		assert_true(v == values[i]);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void test_read_int_reports_toobig_above_int64_max(void **state)
{
	(void)state;
	uint8_t u64[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
	hd_mpack_reader_t r = reader(u64, sizeof u64);
	int64_t v;
	assert_int_equal(hd_mpack_read_int(&r, &v), HD_E_TOOBIG);
	assert_ptr_equal(r.p, u64);
}

static void test_read_bool_and_nil(void **state)
{
	(void)state;
	uint8_t buf[] = {0xc3, 0xc2, 0xc0, 0x01};
	hd_mpack_reader_t r = reader(buf, sizeof buf);
	bool b;
	assert_int_equal(hd_mpack_read_bool(&r, &b), HD_OK);
	assert_true(b);
	assert_int_equal(hd_mpack_read_bool(&r, &b), HD_OK);
	assert_false(b);
	assert_int_equal(hd_mpack_read_bool(&r, &b), HD_E_TYPE);
	assert_int_equal(hd_mpack_read_nil(&r), HD_OK);
	assert_int_equal(hd_mpack_read_nil(&r), HD_E_TYPE);
}

static void test_an_empty_buffer_and_0xc1_are_malformed_for_every_reader(void **state)
{
	(void)state;
	uint8_t c1[] = {0xc1};
	for (size_t len = 0; len < 2; len++) {
		hd_mpack_reader_t r = reader(c1, len);
		uint32_t n;
		const char *s;
		const uint8_t *d;
		uint64_t u;
		int64_t i;
		bool b;
		assert_int_equal(hd_mpack_read_map(&r, &n), HD_E_MALFORMED);
		assert_int_equal(hd_mpack_read_array(&r, &n), HD_E_MALFORMED);
		assert_int_equal(hd_mpack_read_str(&r, &s, &n), HD_E_MALFORMED);
		assert_int_equal(hd_mpack_read_bin(&r, &d, &n), HD_E_MALFORMED);
		assert_int_equal(hd_mpack_read_uint(&r, &u), HD_E_MALFORMED);
		assert_int_equal(hd_mpack_read_int(&r, &i), HD_E_MALFORMED);
		assert_int_equal(hd_mpack_read_bool(&r, &b), HD_E_MALFORMED);
		assert_int_equal(hd_mpack_read_nil(&r), HD_E_MALFORMED);
		assert_int_equal(hd_mpack_skip(&r, 4), HD_E_MALFORMED);
	}
}

/* Reference classification straight from the msgpack spec table. */
static hd_mpack_type_t spec_type(unsigned b)
{
	if (b <= 0x7f) return HD_MPACK_UINT;
	if (b <= 0x8f) return HD_MPACK_MAP;
	if (b <= 0x9f) return HD_MPACK_ARRAY;
	if (b <= 0xbf) return HD_MPACK_STR;
	if (b == 0xc0) return HD_MPACK_NIL;
	if (b == 0xc1) return HD_MPACK_INVALID;
	if (b <= 0xc3) return HD_MPACK_BOOL;
	if (b <= 0xc6) return HD_MPACK_BIN;
	if (b <= 0xc9) return HD_MPACK_EXT;
	if (b <= 0xcb) return HD_MPACK_FLOAT;
	if (b <= 0xcf) return HD_MPACK_UINT;
	if (b <= 0xd3) return HD_MPACK_INT;
	if (b <= 0xd8) return HD_MPACK_EXT;
	if (b <= 0xdb) return HD_MPACK_STR;
	if (b <= 0xdd) return HD_MPACK_ARRAY;
	if (b <= 0xdf) return HD_MPACK_MAP;
	return HD_MPACK_INT;
}

static void test_peek_classifies_every_lead_byte_as_the_spec_does(void **state)
{
	(void)state;
	for (unsigned b = 0; b < 256; b++) {
		uint8_t buf[1] = {(uint8_t)b};
		hd_mpack_reader_t r = reader(buf, 1);
		assert_int_equal(hd_mpack_peek(&r), spec_type(b));
	}
	hd_mpack_reader_t r = reader("", 0);
	assert_int_equal(hd_mpack_peek(&r), HD_MPACK_EOF);
	r = reader(NULL, 0);
	assert_int_equal(hd_mpack_peek(&r), HD_MPACK_EOF);
	assert_int_equal(hd_mpack_remaining(&r), 0);
}

/* A nested value of every kind, packed by msgpack-c. */
static void pack_everything(msgpack_sbuffer *sb)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "a", 1);
	msgpack_pack_array(&pk, 7);
	msgpack_pack_nil(&pk);
	msgpack_pack_true(&pk);
	msgpack_pack_int64(&pk, -70000);
	msgpack_pack_double(&pk, 1.5);
	msgpack_pack_float(&pk, 2.5f);
	msgpack_pack_bin_with_body(&pk, "\0\1\2", 3);
	msgpack_pack_ext_with_body(&pk, "abcd", 4, 7);   /* fixext 4 */
	msgpack_pack_str_with_body(&pk, "b", 1);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	msgpack_pack_ext_with_body(&pk, "abcdefghijk", 11, 1); /* ext 8 */
	msgpack_pack_str_with_body(&pk, "c", 1);
	msgpack_pack_str_with_body(&pk, "d", 1);
}

static void test_skip_skips_one_complete_item_of_every_kind(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	pack_everything(&sb);
	msgpack_sbuffer_write(&sb, "\xc0", 1);
	hd_mpack_reader_t r = reader(sb.data, sb.size);
	assert_int_equal(hd_mpack_skip(&r, 3), HD_OK);
	assert_int_equal(hd_mpack_remaining(&r), 1);
	assert_int_equal(hd_mpack_read_nil(&r), HD_OK);
	/* The same item is two levels deep: a budget of 1 is too little. */
	r = reader(sb.data, sb.size);
	assert_int_equal(hd_mpack_skip(&r, 1), HD_E_TOOBIG);
	msgpack_sbuffer_destroy(&sb);
}

static void test_skip_is_malformed_when_truncated_at_every_offset(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	pack_everything(&sb);
	for (size_t cut = 0; cut < sb.size; cut++) {
		hd_mpack_reader_t r = reader(sb.data, cut);
		assert_int_equal(hd_mpack_skip(&r, 8), HD_E_MALFORMED);
	}
	msgpack_sbuffer_destroy(&sb);
}

static void test_skip_stops_at_the_depth_bound_on_deeply_nested_input(void **state)
{
	(void)state;
	size_t n = 1000000;
	uint8_t *buf = malloc(n);
	memset(buf, 0x91, n - 1);  /* [[[[...[nil]...]]]] */
	buf[n - 1] = 0xc0;
	hd_mpack_reader_t r = reader(buf, n);
	assert_int_equal(hd_mpack_skip(&r, 4), HD_E_TOOBIG);
	/* Even a huge budget is capped, so the stack stays small. */
	r = reader(buf, n);
	assert_int_equal(hd_mpack_skip(&r, 1u << 30), HD_E_TOOBIG);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_map_returns_count_of_fixmap_map16_and_map32),
		cmocka_unit_test(test_read_array_refuses_count_larger_than_remaining_bytes),
		cmocka_unit_test(test_read_map_refuses_count_needing_two_bytes_per_pair),
		cmocka_unit_test(test_read_str_returns_a_pointer_into_the_buffer),
		cmocka_unit_test(test_read_str_accepts_every_width),
		cmocka_unit_test(test_read_str_reports_type_for_bin_and_leaves_the_cursor),
		cmocka_unit_test(test_read_bin_refuses_declared_length_beyond_the_buffer),
		cmocka_unit_test(test_read_uint_accepts_every_unsigned_width_and_nonnegative_ints),
		cmocka_unit_test(test_read_uint_refuses_negative_values_as_wrong_type),
		cmocka_unit_test(test_read_int_accepts_every_signed_width),
		cmocka_unit_test(test_read_int_reports_toobig_above_int64_max),
		cmocka_unit_test(test_read_bool_and_nil),
		cmocka_unit_test(test_an_empty_buffer_and_0xc1_are_malformed_for_every_reader),
		cmocka_unit_test(test_peek_classifies_every_lead_byte_as_the_spec_does),
		cmocka_unit_test(test_skip_skips_one_complete_item_of_every_kind),
		cmocka_unit_test(test_skip_is_malformed_when_truncated_at_every_offset),
		cmocka_unit_test(test_skip_stops_at_the_depth_bound_on_deeply_nested_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
