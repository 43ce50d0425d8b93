/*
 * NAME
 *	test_hd_mime - the email builder, checked by parsing its output back
 * DESCRIPTION
 *	A small reader (header unfolding, RFC 2047 "B" words, RFC 2231
 *	parameters, quoted-printable, base64, multipart splitting) decodes
 *	what hd_mime_build wrote, so each test asserts what a mail reader
 *	would see, plus the wire rules: CRLF only, line lengths, base64 and
 *	QP line limits, boundaries absent from content.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hd_err.h"
#include "hd_mime.h"
#include "hd_msg.h"

/* ---- a small reader ---- */

typedef struct buf {
	char *p;
	size_t len;
} buf_t;

static void buf_add(buf_t *b, const void *s, size_t n)
{
	b->p = realloc(b->p, b->len + n + 1);
	assert_non_null(b->p);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode base64, skipping CRLF; fails the test on any other stray byte. */
static buf_t b64_decode(const char *s, size_t len)
{
	buf_t out = {0};
	unsigned acc = 0;
	int bits = 0;
	buf_add(&out, "", 0);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\r' || c == '\n')
			continue;
		if (c == '=')
			break;
		int v = b64_val(c);
		assert_true(v >= 0);
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			char byte = (char)((acc >> bits) & 0xFFu);
			buf_add(&out, &byte, 1);
		}
	}
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode quoted-printable (soft breaks removed, CRLF kept as "\r\n"). */
static buf_t qp_decode(const char *s, size_t len)
{
	buf_t out = {0};
	buf_add(&out, "", 0);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '=') {
			if (i + 2 < len + 1 && s[i + 1] == '\r' && s[i + 2] == '\n') {
				i += 2;
				continue;
			}
			assert_true(i + 2 < len);
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			assert_true(hi >= 0 && lo >= 0);
			char byte = (char)(hi * 16 + lo);
			buf_add(&out, &byte, 1);
			i += 2;
		} else {
			buf_add(&out, &s[i], 1);
		}
	}
	return out;
}

typedef struct entity {
	const char *head;  /* header block, without the blank line */
	size_t head_len;
	const char *body;
	size_t body_len;
} entity_t;

static entity_t split_entity(const char *s, size_t len)
{
	entity_t e = {0};
	const char *sep = NULL;
	for (size_t i = 0; i + 4 <= len; i++)
		if (memcmp(s + i, "\r\n\r\n", 4) == 0) {
			sep = s + i;
			break;
		}
	assert_non_null(sep);
	e.head = s;
	e.head_len = (size_t)(sep - s) + 2;
	e.body = sep + 4;
	e.body_len = len - (size_t)(e.body - s);
	return e;
}

/* The unfolded value of header name (first occurrence), or NULL. Caller frees. */
static char *header(const entity_t *e, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = e->head, *end = e->head + e->head_len;
	while (p < end) {
		const char *eol = strstr(p, "\r\n");
		assert_non_null(eol);
		if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
			buf_t v = {0};
			const char *q = p + nlen + 1;
			while (*q == ' ')
				q++;
			buf_add(&v, q, (size_t)(eol - q));
			/* continuation lines: unfolding removes only the CRLF */
			while (eol + 2 < end && (eol[2] == ' ' || eol[2] == '\t')) {
				const char *start = eol + 2;
				eol = strstr(start, "\r\n");
				buf_add(&v, start, (size_t)(eol - start));
			}
			return v.p;
		}
		p = eol + 2;
	}
	return NULL;
}

static int header_count(const entity_t *e, const char *name)
{
	size_t nlen = strlen(name);
	int n = 0;
	const char *p = e->head, *end = e->head + e->head_len;
	while (p < end) {
		if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':')
			n++;
		p = strstr(p, "\r\n") + 2;
	}
	return n;
}

/* RFC 2047: decode a run of "=?UTF-8?B?...?=" words separated by whitespace. */
static char *decode_2047(const char *v)
{
	buf_t out = {0};
	buf_add(&out, "", 0);
	const char *p = v;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		assert_memory_equal(p, "=?UTF-8?B?", 10);
		const char *end = strstr(p + 10, "?=");
		assert_non_null(end);
		assert_true(end + 2 - p <= 75); /* encoded-word length limit */
		buf_t w = b64_decode(p + 10, (size_t)(end - (p + 10)));
		buf_add(&out, w.p, w.len);
		free(w.p);
		p = end + 2;
	}
	return out.p;
}

/* The value of a Content-Type/Disposition parameter, RFC 2231 aware. Caller frees. */
static char *param(const char *value, const char *name)
{
	char key[64];
	const char *p;
	snprintf(key, sizeof key, "%s=\"", name);
	if ((p = strstr(value, key))) {
		p += strlen(key);
		const char *end = strchr(p, '"');
		buf_t b = {0};
		buf_add(&b, p, (size_t)(end - p));
		return b.p;
	}
	buf_t raw = {0};
	buf_add(&raw, "", 0);
	snprintf(key, sizeof key, "%s*=UTF-8''", name);
	if ((p = strstr(value, key))) {
		p += strlen(key);
		buf_add(&raw, p, strcspn(p, ";"));
	} else {
		for (unsigned seg = 0;; seg++) {
			snprintf(key, sizeof key, "%s*%u*=%s", name, seg, seg ? "" : "UTF-8''");
			if (!(p = strstr(value, key)))
				break;
			p += strlen(key);
			buf_add(&raw, p, strcspn(p, "; \t"));
		}
		if (raw.len == 0) {
			free(raw.p);
			return NULL;
		}
	}
	buf_t out = {0};
	buf_add(&out, "", 0);
	for (size_t i = 0; i < raw.len; i++) {
		if (raw.p[i] == '%') {
			char byte = (char)(hexval(raw.p[i + 1]) * 16 + hexval(raw.p[i + 2]));
			buf_add(&out, &byte, 1);
			i += 2;
		} else {
			buf_add(&out, &raw.p[i], 1);
		}
	}
	free(raw.p);
	return out.p;
}

/* Split a multipart body into its parts (max 16). Returns the count. */
static size_t split_parts(const entity_t *e, entity_t *parts, size_t max)
{
	char *ct = header(e, "Content-Type");
	assert_non_null(ct);
	char *boundary = param(ct, "boundary");
	assert_non_null(boundary);
	char delim[128];
	snprintf(delim, sizeof delim, "\r\n--%s", boundary);
	size_t dlen = strlen(delim);
	/* The first delimiter may start the body (no preamble CRLF before it). */
	buf_t body = {0};
	buf_add(&body, "\r\n", 2);
	buf_add(&body, e->body, e->body_len);
	size_t n = 0;
	const char *p = strstr(body.p, delim);
	assert_non_null(p);
	for (;;) {
		p += dlen;
		if (p[0] == '-' && p[1] == '-')
			break;
		assert_memory_equal(p, "\r\n", 2);
		p += 2;
		const char *next = strstr(p, delim);
		assert_non_null(next);
		assert_true(n < max);
		size_t off = (size_t)(p - body.p) - 2;
		size_t plen = (size_t)(next - p);
		parts[n++] = split_entity(e->body + off, plen);
		p = next;
	}
	free(body.p);
	free(boundary);
	free(ct);
	return n;
}

/* The decoded content of a leaf part, per its Content-Transfer-Encoding. */
static buf_t part_content(const entity_t *e)
{
	char *cte = header(e, "Content-Transfer-Encoding");
	assert_non_null(cte);
	buf_t out;
	if (strcmp(cte, "base64") == 0) {
		/* base64 lines are at most 76 chars */
		const char *p = e->body, *end = e->body + e->body_len;
		while (p < end) {
			const char *eol = strstr(p, "\r\n");
			if (!eol || eol > end)
				eol = end;
			assert_true(eol - p <= 76);
			p = eol + 2;
		}
		out = b64_decode(e->body, e->body_len);
	} else {
		assert_string_equal(cte, "quoted-printable");
		out = qp_decode(e->body, e->body_len);
	}
	free(cte);
	return out;
}

/* CRLF only, no line over 998, and return the longest header-section line. */
static size_t check_wire_rules(const char *s, size_t len)
{
	assert_int_equal(strlen(s), len);
	size_t col = 0, header_max = 0;
	bool in_headers = true;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r') {
			assert_true(i + 1 < len && s[i + 1] == '\n');
			if (in_headers && col == 0)
				in_headers = false;
			if (in_headers && col > header_max)
				header_max = col;
			col = 0;
			i++;
			continue;
		}
		assert_true(s[i] != '\n');
		assert_true(s[i] != '\0');
		col++;
		assert_true(col <= 998);
	}
	assert_memory_equal(s + len - 2, "\r\n", 2);
	return header_max;
}

static hd_msg_t *simple_msg(void)
{
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = strdup("finance@corp.example");
	hd_msg_add_to(m, "alice@corp.example");
	m->subject = strdup("Invoice 7");
	m->body = strdup("Hello Alice,\nplease pay.\n");
	return m;
}

static hd_mime_params_t params(void)
{
	hd_mime_params_t p = {.delivery_id = 4242, .message_id = 77,
			      .klass = HD_CLASS_GENERAL, .date_s = 1767225600,
			      .id_domain = NULL, .nonce = 0x0123456789abcdefull};
	return p;
}

static char *build(const hd_msg_t *m, const hd_mime_params_t *p, size_t *len)
{
	char *out = NULL;
	assert_int_equal(hd_mime_build(m, p, &out, len), 0);
	assert_non_null(out);
	return out;
}

/* ---- tests ---- */

static void test_simple_message_has_the_headers_a_reader_expects(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	assert_true(check_wire_rules(s, len) <= 78);
	entity_t e = split_entity(s, len);
	char *v;
	assert_string_equal(v = header(&e, "From"), "finance@corp.example"); free(v);
	assert_string_equal(v = header(&e, "To"), "alice@corp.example"); free(v);
	assert_string_equal(v = header(&e, "Subject"), "Invoice 7"); free(v);
	assert_string_equal(v = header(&e, "Date"), "Thu, 01 Jan 2026 00:00:00 +0000"); free(v);
	assert_string_equal(v = header(&e, "Message-ID"), "<d4242.m77@corp.example>"); free(v);
	assert_string_equal(v = header(&e, "MIME-Version"), "1.0"); free(v);
	assert_string_equal(v = header(&e, "X-Herald-Delivery"), "4242"); free(v);
	assert_string_equal(v = header(&e, "Content-Type"), "text/plain; charset=UTF-8"); free(v);
	assert_null(header(&e, "Cc"));
	assert_null(header(&e, "Importance"));
	assert_null(header(&e, "X-Priority"));
	assert_null(header(&e, "Reply-By"));
	assert_int_equal(header_count(&e, "Date"), 1);
	buf_t body = part_content(&e);
	assert_string_equal(body.p, "Hello Alice,\r\nplease pay.\r\n");
	free(body.p);
	free(s);
	hd_msg_destroy(&m);
}

static void test_message_id_uses_the_configured_domain_when_given(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	hd_mime_params_t p = params();
	p.id_domain = "mail.herald.example";
	p.delivery_id = 9000000000123;
	size_t len;
	char *s = build(m, &p, &len);
	entity_t e = split_entity(s, len);
	char *v = header(&e, "Message-ID");
	assert_string_equal(v, "<d9000000000123.m77@mail.herald.example>");
	free(v);
	free(s);
	hd_msg_destroy(&m);
}

static void test_utf8_subject_becomes_encoded_words_within_limits_and_decodes_back(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	free(m->subject);
	/* 3-byte characters, long enough for several words, plus ASCII and spaces */
	m->subject = strdup("[重要] 第三季度薪酬调整通知 — please read 请在周五前确认所有部门的预算和人员安排，"
			    "谢谢大家的配合与支持 end");
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	size_t header_max = check_wire_rules(s, len);
	assert_true(header_max <= 78);
	entity_t e = split_entity(s, len);
	char *v = header(&e, "Subject");
	assert_non_null(v);
	char *decoded = decode_2047(v);
	assert_string_equal(decoded, m->subject);
	free(decoded);
	free(v);
	free(s);
	hd_msg_destroy(&m);
}

static void test_long_ascii_subject_folds_at_spaces_within_78_columns(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	free(m->subject);
	m->subject = strdup("Quarterly report for the payments team: numbers, charts, commentary and "
			    "the action items we agreed on during the review meeting last Thursday");
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	assert_true(check_wire_rules(s, len) <= 78);
	assert_null(strstr(s, "=?UTF-8?"));  /* stays readable */
	entity_t e = split_entity(s, len);
	char *v = header(&e, "Subject");
	assert_string_equal(v, m->subject);
	free(v);
	free(s);
	hd_msg_destroy(&m);
}

static void test_ascii_subject_that_looks_like_an_encoded_word_is_encoded(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	free(m->subject);
	m->subject = strdup("literal =?UTF-8?B?QQ==?= text");
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	entity_t e = split_entity(s, len);
	char *v = header(&e, "Subject");
	char *decoded = decode_2047(v);
	assert_string_equal(decoded, m->subject);
	free(decoded);
	free(v);
	free(s);
	hd_msg_destroy(&m);
}

static void test_many_recipients_fold_between_addresses(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	char addr[64];
	for (int i = 0; i < 40; i++) {
		snprintf(addr, sizeof addr, "user.number.%02d@corp.example", i);
		hd_msg_add_to(m, addr);
		snprintf(addr, sizeof addr, "cc.%02d@corp.example", i);
		hd_msg_add_cc(m, addr);
	}
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	assert_true(check_wire_rules(s, len) <= 78);
	entity_t e = split_entity(s, len);
	char *to = header(&e, "To");
	char *cc = header(&e, "Cc");
	assert_non_null(strstr(to, "alice@corp.example, user.number.00@corp.example,"));
	assert_non_null(strstr(to, "user.number.39@corp.example"));
	assert_non_null(strstr(cc, "cc.00@corp.example, cc.01@corp.example"));
	assert_non_null(strstr(cc, "cc.39@corp.example"));
	/* every address appears exactly once */
	size_t commas = 0;
	for (const char *c = to; *c; c++)
		commas += *c == ',';
	assert_int_equal(commas, 40);
	free(to);
	free(cc);
	free(s);
	hd_msg_destroy(&m);
}

static void test_important_class_adds_importance_and_priority(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	hd_mime_params_t p = params();
	p.klass = HD_CLASS_IMPORTANT;
	size_t len;
	char *s = build(m, &p, &len);
	entity_t e = split_entity(s, len);
	char *v;
	assert_string_equal(v = header(&e, "Importance"), "high"); free(v);
	assert_string_equal(v = header(&e, "X-Priority"), "1"); free(v);
	free(s);
	hd_msg_destroy(&m);
}

static void test_reply_by_adds_the_header_and_a_first_body_line(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	m->reply_by = 1767312000; /* 2026-01-02 00:00:00 UTC, a Friday */
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	entity_t e = split_entity(s, len);
	char *v = header(&e, "Reply-By");
	assert_string_equal(v, "Fri, 02 Jan 2026 00:00:00 +0000");
	free(v);
	buf_t body = part_content(&e);
	assert_string_equal(body.p, "Please reply by Fri, 02 Jan 2026 00:00:00 +0000.\r\n\r\n"
				    "Hello Alice,\r\nplease pay.\r\n");
	free(body.p);
	free(s);
	hd_msg_destroy(&m);
}

static void test_ascii_body_is_quoted_printable_in_76_char_lines_and_round_trips(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	free(m->body);
	buf_t text = {0};
	buf_add(&text, "a=b and trailing spaces   \n", 27);
	buf_add(&text, ".\n.hidden line starting with a dot\n", 35);
	for (int i = 0; i < 300; i++)
		buf_add(&text, "0123456789", 10);      /* one 3000-byte line */
	buf_add(&text, "\ntab\tend\t\nCafé crème\n", strlen("\ntab\tend\t\nCafé crème\n"));
	m->body = text.p;
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	check_wire_rules(s, len);
	entity_t e = split_entity(s, len);
	char *cte = header(&e, "Content-Transfer-Encoding");
	assert_string_equal(cte, "quoted-printable");
	free(cte);
	/* every encoded line fits in 76 chars, no trailing whitespace */
	const char *q = e.body, *end = e.body + e.body_len;
	while (q < end) {
		const char *eol = strstr(q, "\r\n");
		assert_true(eol - q <= 76);
		if (eol > q)
			assert_true(eol[-1] != ' ' && eol[-1] != '\t');
		q = eol + 2;
	}
	buf_t body = part_content(&e);
	/* the reader sees the text with CRLF line ends (one trailing CRLF ends the message) */
	buf_t want = {0};
	for (size_t i = 0; i < text.len; i++) {
		if (text.p[i] == '\n')
			buf_add(&want, "\r", 1);
		buf_add(&want, &text.p[i], 1);
	}
	assert_int_equal(body.len, want.len);
	assert_memory_equal(body.p, want.p, want.len);
	free(want.p);
	free(body.p);
	free(s);
	hd_msg_destroy(&m);
}

static void test_cjk_body_is_base64_and_round_trips(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	free(m->body);
	m->body = strdup("各位同事：\n本季度的薪酬调整方案已经确定，请查收附件。\r\n谢谢！");
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	check_wire_rules(s, len);
	entity_t e = split_entity(s, len);
	char *cte = header(&e, "Content-Transfer-Encoding");
	assert_string_equal(cte, "base64");
	free(cte);
	buf_t body = part_content(&e);
	assert_string_equal(body.p, "各位同事：\r\n本季度的薪酬调整方案已经确定，请查收附件。\r\n谢谢！");
	free(body.p);
	free(s);
	hd_msg_destroy(&m);
}

static void test_bare_cr_and_lf_become_crlf(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	free(m->body);
	m->body = strdup("one\rtwo\nthree\r\nfour");
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	check_wire_rules(s, len);
	entity_t e = split_entity(s, len);
	buf_t body = part_content(&e);
	assert_string_equal(body.p, "one\r\ntwo\r\nthree\r\nfour\r\n");
	free(body.p);
	free(s);
	hd_msg_destroy(&m);
}

static void test_html_makes_multipart_alternative_with_text_first(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	m->html = strdup("<p>Hello <b>Alice</b>, please pay.</p>");
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	assert_true(check_wire_rules(s, len) <= 78);
	entity_t e = split_entity(s, len);
	char *ct = header(&e, "Content-Type");
	assert_non_null(strstr(ct, "multipart/alternative;"));
	free(ct);
	entity_t parts[4];
	assert_int_equal(split_parts(&e, parts, 4), 2);
	char *v;
	assert_string_equal(v = header(&parts[0], "Content-Type"), "text/plain; charset=UTF-8"); free(v);
	assert_string_equal(v = header(&parts[1], "Content-Type"), "text/html; charset=UTF-8"); free(v);
	buf_t text = part_content(&parts[0]);
	buf_t html = part_content(&parts[1]);
	assert_string_equal(text.p, "Hello Alice,\r\nplease pay.\r\n");
	assert_string_equal(html.p, m->html);
	free(text.p);
	free(html.p);
	free(s);
	hd_msg_destroy(&m);
}

static void test_attachments_make_multipart_mixed_and_bytes_round_trip(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	m->html = strdup("<p>see attached</p>");
	size_t big = 100000;
	uint8_t *data = malloc(big);
	uint32_t x = 12345;
	for (size_t i = 0; i < big; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (uint8_t)(x >> 16);
	}
	hd_msg_add_attachment(m, "report.bin", "application/octet-stream", data, big);
	hd_msg_add_attachment(m, "empty.txt", "text/plain", "", 0);
	uint8_t all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	hd_msg_add_attachment(m, "all bytes.dat", "application/x-test", all, sizeof all);
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	assert_true(check_wire_rules(s, len) <= 78);
	entity_t e = split_entity(s, len);
	char *ct = header(&e, "Content-Type");
	assert_non_null(strstr(ct, "multipart/mixed;"));
	free(ct);
	entity_t parts[8];
	assert_int_equal(split_parts(&e, parts, 8), 4);

	/* the first part is the alternative body */
	entity_t alt[4];
	assert_int_equal(split_parts(&parts[0], alt, 4), 2);
	buf_t html = part_content(&alt[1]);
	assert_string_equal(html.p, "<p>see attached</p>");
	free(html.p);

	const char *names[] = {"report.bin", "empty.txt", "all bytes.dat"};
	const char *types[] = {"application/octet-stream", "text/plain", "application/x-test"};
	const uint8_t *want[] = {data, (const uint8_t *)"", all};
	size_t want_len[] = {big, 0, sizeof all};
	for (int i = 0; i < 3; i++) {
		entity_t *a = &parts[i + 1];
		char *v = header(a, "Content-Type");
		assert_memory_equal(v, types[i], strlen(types[i]));
		free(v);
		char *cd = header(a, "Content-Disposition");
		assert_memory_equal(cd, "attachment;", 11);
		char *fn = param(cd, "filename");
		assert_string_equal(fn, names[i]);
		free(fn);
		free(cd);
		buf_t got = part_content(a);
		assert_int_equal(got.len, want_len[i]);
		assert_memory_equal(got.p, want[i], want_len[i]);
		free(got.p);
	}
	free(data);
	free(s);
	hd_msg_destroy(&m);
}

static void test_non_ascii_attachment_name_uses_rfc2231(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	const char *short_name = "报告.pdf";
	const char *long_name = "第三季度薪酬调整方案与各部门预算明细表（最终版本，请勿外传）.xlsx";
	hd_msg_add_attachment(m, short_name, "application/pdf", "%PDF", 4);
	hd_msg_add_attachment(m, long_name, "application/vnd.ms-excel", "xx", 2);
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	assert_true(check_wire_rules(s, len) <= 78);
	entity_t e = split_entity(s, len);
	entity_t parts[4];
	assert_int_equal(split_parts(&e, parts, 4), 3);
	char *cd = header(&parts[1], "Content-Disposition");
	assert_non_null(strstr(cd, "filename*=UTF-8''"));
	char *fn = param(cd, "filename");
	assert_string_equal(fn, short_name);
	free(fn);
	free(cd);
	cd = header(&parts[2], "Content-Disposition");
	assert_non_null(strstr(cd, "filename*0*=UTF-8''"));
	assert_non_null(strstr(cd, "filename*1*="));
	fn = param(cd, "filename");
	assert_string_equal(fn, long_name);
	free(fn);
	free(cd);
	free(s);
	hd_msg_destroy(&m);
}

static void test_boundary_never_appears_in_content(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	hd_mime_params_t p = params();
	/* content that quotes our boundary syntax verbatim */
	free(m->body);
	m->body = strdup("--=_hd_0123456789abcdef_mixed\n--=_hd_0123456789abcdef_alt--\n");
	m->html = strdup("--=_hd_0123456789abcdef_alt\n");
	hd_msg_add_attachment(m, "b.txt", "text/plain", "--=_hd_0123456789abcdef_mixed\r\n", 31);
	size_t len;
	char *s = build(m, &p, &len);
	/* each delimiter line appears only where the structure puts it */
	int mixed = 0, alt = 0;
	for (const char *q = s; (q = strstr(q, "\r\n--=_hd_0123456789abcdef_")); q += 2) {
		if (strncmp(q + 26, "mixed", 5) == 0)
			mixed++;
		else if (strncmp(q + 26, "alt", 3) == 0)
			alt++;
	}
	assert_int_equal(mixed, 3);  /* body part, attachment, close */
	assert_int_equal(alt, 3);    /* text part, html part, close */
	entity_t e = split_entity(s, len);
	entity_t parts[4];
	assert_int_equal(split_parts(&e, parts, 4), 2);
	buf_t got = part_content(&parts[1]);
	assert_int_equal(got.len, 31);
	assert_memory_equal(got.p, "--=_hd_0123456789abcdef_mixed\r\n", 31);
	free(got.p);
	free(s);
	hd_msg_destroy(&m);
}

static void test_missing_subject_and_body_still_make_a_valid_message(void **state)
{
	(void)state;
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = strdup("ops@[192.0.2.1]");
	hd_msg_add_to(m, "a@corp.example");
	hd_mime_params_t p = params();
	size_t len;
	char *s = build(m, &p, &len);
	check_wire_rules(s, len);
	entity_t e = split_entity(s, len);
	assert_null(header(&e, "Subject"));
	char *v = header(&e, "Message-ID");
	assert_string_equal(v, "<d4242.m77@[192.0.2.1]>");
	free(v);
	free(s);
	hd_msg_destroy(&m);
}

static void test_build_refuses_oversized_output_before_touching_data(void **state)
{
	(void)state;
	hd_msg_t *m = simple_msg();
	hd_msg_add_attachment(m, "x", "application/octet-stream", "x", 1);
	/* pretend to be huge: the size check must fire before the data is read */
	m->attachments[0].size = (size_t)HD_MIME_MAX_BYTES;
	hd_mime_params_t p = params();
	char *out = (char *)1;
	size_t len = 99;
	assert_int_equal(hd_mime_build(m, &p, &out, &len), HD_E_TOOBIG);
	assert_null(out);
	assert_int_equal(len, 0);
	m->attachments[0].size = 1;
	hd_msg_destroy(&m);
}

static void test_build_refuses_a_message_without_sender(void **state)
{
	(void)state;
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	hd_msg_add_to(m, "a@corp.example");
	hd_mime_params_t p = params();
	char *out;
	size_t len;
	assert_int_equal(hd_mime_build(m, &p, &out, &len), HD_E_INVALID);
	assert_null(out);
	hd_msg_destroy(&m);
}

static void test_format_date_is_rfc5322_utc(void **state)
{
	(void)state;
	char buf[HD_MIME_DATE_BYTES];
	assert_string_equal(hd_mime_format_date(0, buf, sizeof buf), "Thu, 01 Jan 1970 00:00:00 +0000");
	assert_string_equal(hd_mime_format_date(1709251199, buf, sizeof buf),
			    "Thu, 29 Feb 2024 23:59:59 +0000");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_message_has_the_headers_a_reader_expects),
		cmocka_unit_test(test_message_id_uses_the_configured_domain_when_given),
		cmocka_unit_test(test_utf8_subject_becomes_encoded_words_within_limits_and_decodes_back),
		cmocka_unit_test(test_long_ascii_subject_folds_at_spaces_within_78_columns),
		cmocka_unit_test(test_ascii_subject_that_looks_like_an_encoded_word_is_encoded),
		cmocka_unit_test(test_many_recipients_fold_between_addresses),
		cmocka_unit_test(test_important_class_adds_importance_and_priority),
		cmocka_unit_test(test_reply_by_adds_the_header_and_a_first_body_line),
		cmocka_unit_test(test_ascii_body_is_quoted_printable_in_76_char_lines_and_round_trips),
		cmocka_unit_test(test_cjk_body_is_base64_and_round_trips),
		cmocka_unit_test(test_bare_cr_and_lf_become_crlf),
		cmocka_unit_test(test_html_makes_multipart_alternative_with_text_first),
		cmocka_unit_test(test_attachments_make_multipart_mixed_and_bytes_round_trip),
		cmocka_unit_test(test_non_ascii_attachment_name_uses_rfc2231),
		cmocka_unit_test(test_boundary_never_appears_in_content),
		cmocka_unit_test(test_missing_subject_and_body_still_make_a_valid_message),
		cmocka_unit_test(test_build_refuses_oversized_output_before_touching_data),
		cmocka_unit_test(test_build_refuses_a_message_without_sender),
		cmocka_unit_test(test_format_date_is_rfc5322_utc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
