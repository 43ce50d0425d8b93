/*
 * NAME
 *	test_hd_msg - the message model, names and syntax checks
 * DESCRIPTION
 *	Construction and destruction, wire names in both directions, the
 *	address syntax of each channel (tables of valid and invalid
 *	addresses, limits at and past the edge) and UTF-8 validation,
 *	including an exhaustive comparison with a reference decoder.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_err.h"
#include "hd_limits.h"
#include "hd_msg.h"

static void test_new_message_is_an_empty_message_of_the_channel(void **state)
{
	(void)state;
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_SMS);
	assert_non_null(m);
	assert_int_equal(m->channel, HD_CHANNEL_SMS);
	assert_null(m->sender);
	assert_int_equal(m->to_count, 0);
	assert_int_equal(m->cc_count, 0);
	assert_null(m->subject);
	assert_null(m->body);
	assert_null(m->bulk);
	assert_int_equal(m->purpose, HD_PURPOSE_NONE);
	assert_int_equal(m->flags, 0);
	assert_int_equal(m->reply_by, 0);
	hd_msg_destroy(&m);
	assert_null(m);
}

static void test_destroy_accepts_null_and_a_null_pointer(void **state)
{
	(void)state;
	hd_msg_t *m = NULL;
	hd_msg_destroy(&m);
	hd_msg_destroy(NULL);
	assert_null(m);
}

static void test_builders_copy_their_arguments(void **state)
{
	(void)state;
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	char addr[32] = "a@example.com";
	char data[4] = {1, 0, 2, 3};
	hd_msg_add_to(m, addr);
	hd_msg_add_to(m, "b@example.com");
	hd_msg_add_cc(m, addr);
	hd_msg_add_attachment(m, "x.bin", "application/octet-stream", data, sizeof data);
	hd_msg_add_attachment(m, "empty.txt", "text/plain", NULL, 0);
	hd_msg_add_tag(m, "k", "v");
	hd_msg_set_bulk(m, "p", "a", 3, "s");
	hd_msg_set_bulk(m, "p2", "a2", 4, "s2");
	addr[0] = 'z';
	data[0] = 9;
	assert_int_equal(m->to_count, 2);
	assert_string_equal(m->to[0], "a@example.com");
	assert_string_equal(m->to[1], "b@example.com");
	assert_string_equal(m->cc[0], "a@example.com");
	assert_int_equal(m->attachment_count, 2);
	assert_int_equal(m->attachments[0].size, 4);
	assert_int_equal(m->attachments[0].data[0], 1);
	assert_int_equal(m->attachments[1].size, 0);
	assert_string_equal(m->tags[0].key, "k");
	assert_string_equal(m->bulk->purpose, "p2");
	assert_int_equal(m->bulk->recipient_count, 4);
	hd_msg_destroy(&m);
}

static void test_recipient_count_adds_to_and_cc(void **state)
{
	(void)state;
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	assert_int_equal(hd_msg_recipient_count(m), 0);
	hd_msg_add_to(m, "a@example.com");
	hd_msg_add_to(m, "b@example.com");
	hd_msg_add_cc(m, "c@example.com");
	assert_int_equal(hd_msg_recipient_count(m), 3);
	assert_int_equal(hd_msg_recipient_count(NULL), 0);
	hd_msg_destroy(&m);
}

static void test_channel_class_purpose_and_flag_names_round_trip(void **state)
{
	(void)state;
	hd_channel_t ch;
	const char *channels[] = {"email", "im", "sms"};
	for (int i = 0; i < 3; i++) {
		assert_string_equal(hd_channel_name((hd_channel_t)i), channels[i]);
		assert_int_equal(hd_channel_parse(channels[i], &ch), HD_OK);
		assert_int_equal(ch, i);
	}
	hd_class_t k;
	const char *classes[] = {"general", "important", "bulk"};
	for (int i = 0; i < 3; i++) {
		assert_string_equal(hd_class_name((hd_class_t)i), classes[i]);
		assert_int_equal(hd_class_parse(classes[i], &k), HD_OK);
		assert_int_equal(k, i);
	}
	hd_purpose_t p;
	const char *purposes[] = {"service", "urgent", "marketing"};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(hd_purpose_parse(purposes[i], &p), HD_OK);
		assert_string_equal(hd_purpose_name(p), purposes[i]);
	}
	hd_flag_t f;
	const char *flags[] = {"important", "major", "confidential", "bulk", "needs_reply"};
	unsigned all = 0;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(hd_flag_parse(flags[i], &f), HD_OK);
		assert_string_equal(hd_flag_name(f), flags[i]);
		all |= (unsigned)f;
	}
	assert_int_equal(all, 0x1f); /* five distinct bits */
}

static void test_parse_rejects_unknown_names_wrong_case_and_none(void **state)
{
	(void)state;
	hd_channel_t ch;
	hd_class_t k;
	hd_purpose_t p;
	hd_flag_t f;
	assert_int_equal(hd_channel_parse("Email", &ch), HD_E_INVALID);
	assert_int_equal(hd_channel_parse("fax", &ch), HD_E_INVALID);
	assert_int_equal(hd_channel_parse("", &ch), HD_E_INVALID);
	assert_int_equal(hd_channel_parse(NULL, &ch), HD_E_INVALID);
	assert_int_equal(hd_class_parse("urgent", &k), HD_E_INVALID);
	/* "none" is the absence of a purpose, never a value on the wire. */
	assert_int_equal(hd_purpose_parse("none", &p), HD_E_INVALID);
	assert_int_equal(hd_purpose_parse("SERVICE", &p), HD_E_INVALID);
	assert_int_equal(hd_flag_parse("needs-reply", &f), HD_E_INVALID);
	assert_string_equal(hd_channel_name((hd_channel_t)7), "unknown");
	assert_string_equal(hd_flag_name((hd_flag_t)3), "unknown");
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_valid_email_addresses_are_accepted(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"a@example.com",
		"first.last@example.co.uk",
		"user+tag@example.com",
		"x@a-b.example",
		"!#$%&'*+-/=?^_`{|}~@example.com",
		"\"quoted local\"@example.com",
		"\"a\\\"b\"@example.com",
		"\"a@b\"@example.com",
		"u@[192.168.0.1]",
		"u@[IPv6:2001:db8::1]",
		"u@[ipv6:::1]",
		"u@xn--fiqs8s.example",
		"u@1a.example",
		"u@example.c0m",
		"UPPER@EXAMPLE.COM",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		const char *why = "untouched";
		int rc = hd_msg_check_address(HD_CHANNEL_EMAIL, ok[i], &why);
		if (rc != HD_OK)
			print_error("rejected %s: %s\n", ok[i], why);
		assert_int_equal(rc, HD_OK);
	}
}

static void test_invalid_email_addresses_are_rejected_with_a_reason(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"plain",
		"@example.com",
		"a@",
		"a@example",             /* single label */
		"a@localhost",
		".a@example.com",
		"a.@example.com",
		"a..b@example.com",
		"a b@example.com",
		"a(b)@example.com",
		"a,b@example.com",
		"a@b@example.com",
		"\"unterminated@example.com",
		"\"\"@example.com",
		"\"a\"b@example.com",
		"\"tab\there\"@example.com",
		"a@-example.com",
		"a@example-.com",
		"a@exa_mple.com",
		"a@example..com",
		"a@.example.com",
		"a@example.com.",
		"a@1.2.3.4",             /* numeric TLD: must be a literal */
		"a@[1.2.3]",
		"a@[1.2.3.256]",
		"a@[1.2.3.4",
		"a@[IPv6:zz::1]",
		"a@[example.com]",
		"a@example.com ",
		" a@example.com",
		"\xc3\xa9@example.com",  /* SMTPUTF8 is not accepted in v1 */
		"a@\xc3\xa9xample.com",
		"a@example.com\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *why = NULL;
		int rc = hd_msg_check_address(HD_CHANNEL_EMAIL, bad[i], &why);
		if (rc != HD_E_INVALID)
			print_error("accepted %s\n", bad[i]);
		assert_int_equal(rc, HD_E_INVALID);
		assert_non_null(why);
		assert_true(strlen(why) > 0);
	}
	assert_int_equal(hd_msg_check_address(HD_CHANNEL_EMAIL, NULL, NULL), HD_E_INVALID);
}

static void test_email_limits_are_enforced_at_the_edge(void **state)
{
	(void)state;
	char buf[400];
	char *l64 = repeat('a', 64), *l65 = repeat('a', 65);
	char *d63 = repeat('b', 63), *d64 = repeat('b', 64);
	char *c63 = repeat('c', 63), *e61 = repeat('e', 61), *e62 = repeat('e', 62);

	snprintf(buf, sizeof buf, "%s@example.com", l64);
	assert_int_equal(hd_msg_check_address(HD_CHANNEL_EMAIL, buf, NULL), HD_OK);
	snprintf(buf, sizeof buf, "%s@example.com", l65);
	assert_int_equal(hd_msg_check_address(HD_CHANNEL_EMAIL, buf, NULL), HD_E_INVALID);

	snprintf(buf, sizeof buf, "a@%s.com", d63);
	assert_int_equal(hd_msg_check_address(HD_CHANNEL_EMAIL, buf, NULL), HD_OK);
	snprintf(buf, sizeof buf, "a@%s.com", d64);
	assert_int_equal(hd_msg_check_address(HD_CHANNEL_EMAIL, buf, NULL), HD_E_INVALID);

	/* 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254 bytes: the RFC 5321 path limit. */
	snprintf(buf, sizeof buf, "%s@%s.%s.%s", l64, d63, c63, e61);
	assert_int_equal(strlen(buf), HD_MAX_ADDR_BYTES);
	assert_int_equal(hd_msg_check_address(HD_CHANNEL_EMAIL, buf, NULL), HD_OK);
	snprintf(buf, sizeof buf, "%s@%s.%s.%s", l64, d63, c63, e62);
	assert_int_equal(strlen(buf), HD_MAX_ADDR_BYTES + 1);
	assert_int_equal(hd_msg_check_address(HD_CHANNEL_EMAIL, buf, NULL), HD_E_INVALID);

	free(l64); free(l65); free(d63); free(d64); free(c63); free(e61); free(e62);
}

static void test_phone_numbers_must_be_e164(void **state)
{
	(void)state;
	static const char *const ok[] = {"+8613800138000", "+12025550123", "+44123456",
					 "+123456789012345"};
	static const char *const bad[] = {"8613800138000", "+0123456789", "+1234567",
					  "+1234567890123456", "+86 138 0013 8000",
					  "+86-13800138000", "+", "++8613800138000",
					  "+861380013800a", "a@example.com"};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		assert_int_equal(hd_msg_check_address(HD_CHANNEL_SMS, ok[i], NULL), HD_OK);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *why = NULL;
		if (hd_msg_check_address(HD_CHANNEL_SMS, bad[i], &why) != HD_E_INVALID)
			print_error("accepted %s\n", bad[i]);
		assert_int_equal(hd_msg_check_address(HD_CHANNEL_SMS, bad[i], &why), HD_E_INVALID);
		assert_non_null(why);
	}
}

static void test_group_names_follow_the_registry_syntax(void **state)
{
	(void)state;
	char *g64 = repeat('g', 64), *g65 = repeat('g', 65);
	static const char *const ok[] = {"ops", "ops-alerts", "team.payments_2", "9lives", "A"};
	static const char *const bad[] = {"-ops", ".ops", "_ops", "ops alerts", "ops/alerts",
					  "ops@corp", "#ops", "\xe8\xbf\x90\xe7\xbb\xb4"};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		assert_int_equal(hd_msg_check_address(HD_CHANNEL_IM, ok[i], NULL), HD_OK);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(hd_msg_check_address(HD_CHANNEL_IM, bad[i], NULL), HD_E_INVALID);
	assert_int_equal(hd_msg_check_address(HD_CHANNEL_IM, g64, NULL), HD_OK);
	assert_int_equal(hd_msg_check_address(HD_CHANNEL_IM, g65, NULL), HD_E_INVALID);
	free(g64);
	free(g65);
}

static void test_utf8_accepts_valid_text(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"",
		"plain ascii that is longer than eight bytes",
		"\xc3\xa9",                       /* U+00E9 */
		"[\xe9\x87\x8d\xe8\xa6\x81] subject", /* [重要] */
		"\xef\xbf\xbf",                   /* U+FFFF */
		"\xf0\x9f\x98\x80",               /* U+1F600 */
		"\xf4\x8f\xbf\xbf",               /* U+10FFFF */
		"\xed\x9f\xbf",                   /* U+D7FF, just below surrogates */
		"\xee\x80\x80",                   /* U+E000, just above */
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		assert_true(hd_msg_is_utf8(ok[i], strlen(ok[i])));
}

static void test_utf8_rejects_overlong_surrogates_out_of_range_nul_and_truncation(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t len;
	} bad[] = {
		{"\xc0\xaf", 2},             /* overlong '/' */
		{"\xc1\xbf", 2},
		{"\xe0\x80\xaf", 3},         /* overlong 3-byte */
		{"\xe0\x9f\xbf", 3},
		{"\xf0\x80\x80\xaf", 4},     /* overlong 4-byte */
		{"\xf0\x8f\xbf\xbf", 4},
		{"\xed\xa0\x80", 3},         /* U+D800 */
		{"\xed\xbf\xbf", 3},         /* U+DFFF */
		{"\xf4\x90\x80\x80", 4},     /* U+110000 */
		{"\xf5\x80\x80\x80", 4},
		{"\xff", 1},
		{"\x80", 1},                 /* lone continuation */
		{"\xc3", 1},                 /* truncated */
		{"\xe9\x87", 2},
		{"\xf0\x9f\x98", 3},
		{"\xc3\x28", 2},             /* bad continuation */
		{"a\0b", 3},                 /* NUL */
		{"\0", 1},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (hd_msg_is_utf8(bad[i].s, bad[i].len))
			print_error("accepted case %zu\n", i);
		assert_false(hd_msg_is_utf8(bad[i].s, bad[i].len));
	}
}

static void test_utf8_fast_path_finds_a_bad_byte_at_every_position(void **state)
{
	(void)state;
	char buf[40];
	for (size_t pos = 0; pos < 33; pos++) {
		for (int kind = 0; kind < 3; kind++) {
			memset(buf, 'a', sizeof buf);
			buf[pos] = kind == 0 ? '\0' : kind == 1 ? '\x80' : '\xff';
			assert_false(hd_msg_is_utf8(buf, 33));
		}
		memset(buf, 'a', sizeof buf);
		assert_true(hd_msg_is_utf8(buf, pos));
	}
}

/* Reference: decode one sequence by arithmetic, then apply Unicode's rules. */
static bool ref_is_utf8_seq(const uint8_t *p, size_t n)
{
	uint32_t cp;
	size_t need;
	if (p[0] < 0x80) { cp = p[0]; need = 1; }
	else if ((p[0] & 0xe0) == 0xc0) { cp = p[0] & 0x1fu; need = 2; }
	else if ((p[0] & 0xf0) == 0xe0) { cp = p[0] & 0x0fu; need = 3; }
	else if ((p[0] & 0xf8) == 0xf0) { cp = p[0] & 0x07u; need = 4; }
	else return false;
	if (n != need)
		return false;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return false;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
	return cp != 0 && cp >= min_cp[n] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
}

static void test_utf8_agrees_with_a_reference_decoder_on_all_short_sequences(void **state)
{
	(void)state;
	uint8_t b[4];
	for (unsigned a = 0; a < 256; a++) {
		b[0] = (uint8_t)a;
		assert_int_equal(hd_msg_is_utf8((char *)b, 1), ref_is_utf8_seq(b, 1));
		for (unsigned c = 0; c < 256; c++) {
			b[1] = (uint8_t)c;
			assert_int_equal(hd_msg_is_utf8((char *)b, 2),
					 ref_is_utf8_seq(b, 2) ||
					 (ref_is_utf8_seq(b, 1) && ref_is_utf8_seq(b + 1, 1)));
		}
	}
	/* Every 3-byte sequence led by E0..EF, every 4-byte led by F0..F7 with x 80 80. */
	for (unsigned a = 0xe0; a < 0xf0; a++)
		for (unsigned c = 0; c < 256; c++)
			for (unsigned d = 0; d < 256; d++) {
				b[0] = (uint8_t)a; b[1] = (uint8_t)c; b[2] = (uint8_t)d;
				bool ref = ref_is_utf8_seq(b, 3);
				if (hd_msg_is_utf8((char *)b, 3) != ref)
					fail_msg("mismatch %02x %02x %02x", a, c, d);
			}
	for (unsigned a = 0xf0; a < 0xf8; a++)
		for (unsigned c = 0; c < 256; c++) {
			b[0] = (uint8_t)a; b[1] = (uint8_t)c; b[2] = 0x80; b[3] = 0x80;
			assert_int_equal(hd_msg_is_utf8((char *)b, 4), ref_is_utf8_seq(b, 4));
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_message_is_an_empty_message_of_the_channel),
		cmocka_unit_test(test_destroy_accepts_null_and_a_null_pointer),
		cmocka_unit_test(test_builders_copy_their_arguments),
		cmocka_unit_test(test_recipient_count_adds_to_and_cc),
		cmocka_unit_test(test_channel_class_purpose_and_flag_names_round_trip),
		cmocka_unit_test(test_parse_rejects_unknown_names_wrong_case_and_none),
		cmocka_unit_test(test_valid_email_addresses_are_accepted),
		cmocka_unit_test(test_invalid_email_addresses_are_rejected_with_a_reason),
		cmocka_unit_test(test_email_limits_are_enforced_at_the_edge),
		cmocka_unit_test(test_phone_numbers_must_be_e164),
		cmocka_unit_test(test_group_names_follow_the_registry_syntax),
		cmocka_unit_test(test_utf8_accepts_valid_text),
		cmocka_unit_test(test_utf8_rejects_overlong_surrogates_out_of_range_nul_and_truncation),
		cmocka_unit_test(test_utf8_fast_path_finds_a_bad_byte_at_every_position),
		cmocka_unit_test(test_utf8_agrees_with_a_reference_decoder_on_all_short_sequences),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
