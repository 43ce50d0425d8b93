/*
 * NAME
 *	hd_test_frames - msgpack frames from a compact notation, for codec tests
 * DESCRIPTION
 *	See hd_test_frames.h. Frames are packed with msgpack-c, independently
 *	of the codecs under test (hd_envelope, hd_wire). Test support only:
 *	bad notation fails the running cmocka test, memory comes from plain
 *	malloc so that the tests free it with free().
 */
#include "hd_test_frames.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bytes {
	char *p;
	size_t len, cap;
} bytes_t;

static void bytes_put(bytes_t *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static int bytes_write(void *data, const char *p, size_t n)
{
	bytes_put(data, p, n);
	return 0;
}

typedef struct parser {
	const char *s;
} parser_t;

static void skip_ws(parser_t *ps)
{
	while (*ps->s == ' ' || *ps->s == '\n' || *ps->s == '\t')
		ps->s++;
}

unsigned tf_hexval(char c)
{
	if (c >= '0' && c <= '9') return (unsigned)(c - '0');
	if (c >= 'a' && c <= 'f') return (unsigned)(c - 'a' + 10);
	if (c >= 'A' && c <= 'F') return (unsigned)(c - 'A' + 10);
	fail_msg("bad hex digit %c", c);
	return 0;
}

static void parse_text(parser_t *ps, bytes_t *out)
{
	for (;;) {
		skip_ws(ps);
		assert_true(*ps->s == '\'');
		ps->s++;
		bytes_t piece = {0};
		while (*ps->s != '\'') {
			assert_true(*ps->s != '\0');
			char c = *ps->s++;
			if (c == '\\') {
				char e = *ps->s++;
				if (e == 'x') {
					char v = (char)(tf_hexval(ps->s[0]) << 4 | tf_hexval(ps->s[1]));
					ps->s += 2;
					bytes_put(&piece, &v, 1);
					continue;
				}
				c = e;
			}
			bytes_put(&piece, &c, 1);
		}
		ps->s++;
		unsigned long times = 1;
		if (*ps->s == '*') {
			char *end;
			times = strtoul(ps->s + 1, &end, 10);
			ps->s = end;
		}
		for (unsigned long i = 0; i < times; i++)
			bytes_put(out, piece.p ? piece.p : "", piece.len);
		free(piece.p);
		skip_ws(ps);
		if (*ps->s != '+')
			return;
		ps->s++;
	}
}

static void parse_value(parser_t *ps, msgpack_packer *pk);

static size_t parse_items(parser_t *ps, msgpack_packer *pk, char close, bool pairs)
{
	size_t n = 0;
	skip_ws(ps);
	if (*ps->s == close) {
		ps->s++;
		return 0;
	}
	for (;;) {
		parse_value(ps, pk);
		if (pairs) {
			skip_ws(ps);
			assert_true(*ps->s == ':');
			ps->s++;
			parse_value(ps, pk);
		}
		n++;
		skip_ws(ps);
		if (*ps->s == close) {
			ps->s++;
			return n;
		}
		assert_true(*ps->s == ',');
		ps->s++;
	}
}

static void parse_value(parser_t *ps, msgpack_packer *pk)
{
	skip_ws(ps);
	char c = *ps->s;
	if (c == '{' || c == '[') {
		ps->s++;
		bytes_t inner = {0};
		msgpack_packer ipk;
		msgpack_packer_init(&ipk, &inner, bytes_write);
		size_t n = parse_items(ps, &ipk, c == '{' ? '}' : ']', c == '{');
		if (c == '{')
			msgpack_pack_map(pk, n);
		else
			msgpack_pack_array(pk, n);
		if (inner.len)
			pk->callback(pk->data, inner.p, inner.len);
		free(inner.p);
	} else if (c == '\'') {
		bytes_t t = {0};
		parse_text(ps, &t);
		msgpack_pack_str_with_body(pk, t.p ? t.p : "", t.len);
		free(t.p);
	} else if (c == 'b' && ps->s[1] == '\'') {
		ps->s++;
		bytes_t t = {0};
		parse_text(ps, &t);
		msgpack_pack_bin_with_body(pk, t.p ? t.p : "", t.len);
		free(t.p);
	} else if (c == 'x' && ps->s[1] == '\'') {
		ps->s += 2;
		while (*ps->s != '\'') {
			if (*ps->s == ' ') {
				ps->s++;
				continue;
			}
			char v = (char)(tf_hexval(ps->s[0]) << 4 | tf_hexval(ps->s[1]));
			ps->s += 2;
			pk->callback(pk->data, &v, 1);
		}
		ps->s++;
	} else if (strncmp(ps->s, "nil", 3) == 0) {
		ps->s += 3;
		msgpack_pack_nil(pk);
	} else if (strncmp(ps->s, "true", 4) == 0) {
		ps->s += 4;
		msgpack_pack_true(pk);
	} else if (strncmp(ps->s, "false", 5) == 0) {
		ps->s += 5;
		msgpack_pack_false(pk);
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		const char *start = ps->s;
		ps->s++;
		while ((*ps->s >= '0' && *ps->s <= '9') || *ps->s == '.')
			ps->s++;
		char num[64];
		size_t n = (size_t)(ps->s - start);
		assert_true(n < sizeof num);
		memcpy(num, start, n);
		num[n] = '\0';
		if (strchr(num, '.'))
			msgpack_pack_double(pk, strtod(num, NULL));
		else if (c == '-')
			msgpack_pack_int64(pk, strtoll(num, NULL, 10));
		else
			msgpack_pack_uint64(pk, strtoull(num, NULL, 10));
	} else {
		fail_msg("cannot parse notation at: %.20s", ps->s);
	}
}

uint8_t *tf_mp(size_t *len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	text = malloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(text, (size_t)n + 1, fmt, ap);
	va_end(ap);

	bytes_t out = {0};
	msgpack_packer pk;
	msgpack_packer_init(&pk, &out, bytes_write);
	parser_t ps = {text};
	parse_value(&ps, &pk);
	skip_ws(&ps);
	while (*ps.s) /* more values: a frame with trailing items */
		parse_value(&ps, &pk), skip_ws(&ps);
	free(text);
	*len = out.len;
	return (uint8_t *)out.p;
}

const uint8_t *tf_find_bytes(const uint8_t *hay, size_t n, const char *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return hay + i;
	return NULL;
}

static void assert_str_eq_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

void tf_assert_msg_equal(const hd_msg_t *a, const hd_msg_t *b)
{
	assert_int_equal(a->channel, b->channel);
	assert_string_equal(a->sender, b->sender);
	assert_int_equal(a->to_count, b->to_count);
	for (size_t i = 0; i < a->to_count; i++)
		assert_string_equal(a->to[i], b->to[i]);
	assert_int_equal(a->cc_count, b->cc_count);
	for (size_t i = 0; i < a->cc_count; i++)
		assert_string_equal(a->cc[i], b->cc[i]);
	assert_str_eq_or_null(a->cc_reason, b->cc_reason);
	assert_str_eq_or_null(a->subject, b->subject);
	assert_str_eq_or_null(a->body, b->body);
	assert_str_eq_or_null(a->html, b->html);
	assert_int_equal(a->attachment_count, b->attachment_count);
	for (size_t i = 0; i < a->attachment_count; i++) {
		assert_string_equal(a->attachments[i].name, b->attachments[i].name);
		assert_string_equal(a->attachments[i].mime_type, b->attachments[i].mime_type);
		assert_int_equal(a->attachments[i].size, b->attachments[i].size);
		if (a->attachments[i].size)
			assert_memory_equal(a->attachments[i].data, b->attachments[i].data,
					    a->attachments[i].size);
	}
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->purpose, b->purpose);
	assert_int_equal(a->reply_by, b->reply_by);
	assert_int_equal(a->bulk != NULL, b->bulk != NULL);
	if (a->bulk) {
		assert_string_equal(a->bulk->purpose, b->bulk->purpose);
		assert_string_equal(a->bulk->audience, b->bulk->audience);
		assert_int_equal(a->bulk->recipient_count, b->bulk->recipient_count);
		assert_string_equal(a->bulk->summary, b->bulk->summary);
	}
	assert_str_eq_or_null(a->idempotency_key, b->idempotency_key);
	assert_int_equal(a->tag_count, b->tag_count);
	for (size_t i = 0; i < a->tag_count; i++) {
		assert_string_equal(a->tags[i].key, b->tags[i].key);
		assert_string_equal(a->tags[i].value, b->tags[i].value);
	}
}
