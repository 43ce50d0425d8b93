/*
 * NAME
 *	hd_mime - RFC 5322 / MIME message builder (see hd_mime.h)
 * DESCRIPTION
 *	Owns header folding, RFC 2047 and RFC 2231 encoding, the
 *	quoted-printable and base64 encoders and the multipart layout. Must
 *	not do I/O, read the clock or draw random numbers.
 */
#include "hd_mime.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hd_err.h"
#include "hd_limits.h"
#include "hd_mem.h"

#define LINE_SOFT_MAX 78u   /* RFC 5322 2.1.1 SHOULD */
#define QP_LINE_MAX   76u   /* RFC 2045 6.7 (5) */
#define B64_LINE_MAX  76u

typedef struct out {
	char *p;
	size_t len;
	size_t cap;
} out_t;

static void out_add(out_t *o, const void *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n + 1)
			cap *= 2;
		o->p = hd_realloc(o->p, cap);
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void out_str(out_t *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static void out_ch(out_t *o, char c)
{
	out_add(o, &c, 1);
}

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hex_upper[] = "0123456789ABCDEF";

/* ---- base64 (RFC 2045 6.8), streaming so text can be canonicalised on the fly ---- */

typedef struct b64 {
	out_t *o;
	uint8_t acc[3];
	unsigned n;      /* bytes in acc */
	size_t col;      /* chars on the current output line */
	size_t line_max; /* 0 = no line breaks */
} b64_t;

static void b64_quad(b64_t *b, const uint8_t in[3], unsigned n)
{
	char q[4];
	unsigned v = ((unsigned)in[0] << 16) | ((unsigned)(n > 1 ? in[1] : 0) << 8) |
		     (unsigned)(n > 2 ? in[2] : 0);
	q[0] = b64_alphabet[(v >> 18) & 63u];
	q[1] = b64_alphabet[(v >> 12) & 63u];
	q[2] = n > 1 ? b64_alphabet[(v >> 6) & 63u] : '=';
	q[3] = n > 2 ? b64_alphabet[v & 63u] : '=';
	if (b->line_max && b->col + 4 > b->line_max) {
		out_add(b->o, "\r\n", 2);
		b->col = 0;
	}
	out_add(b->o, q, 4);
	b->col += 4;
}

static void b64_push(b64_t *b, const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		b->acc[b->n++] = data[i];
		if (b->n == 3) {
			b64_quad(b, b->acc, 3);
			b->n = 0;
		}
	}
}

/* Flush the tail; ends with CRLF when line_max is set and anything was written. */
static void b64_finish(b64_t *b)
{
	if (b->n)
		b64_quad(b, b->acc, b->n);
	b->n = 0;
	if (b->line_max && b->col) {
		out_add(b->o, "\r\n", 2);
		b->col = 0;
	}
}

/* ---- text bodies ---- */

/* Length of the line break at s[i], 0 if none: CRLF, LF and a lone CR all count. */
static size_t line_break_at(const char *s, size_t len, size_t i)
{
	if (s[i] == '\n')
		return 1;
	if (s[i] == '\r')
		return (i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
	return 0;
}

/*
 * Quoted-printable with CRLF hard breaks. A token never straddles a
 * soft break, so every encoded line is at most 76 chars with its "=".
 */
static void qp_encode(out_t *o, const char *s, size_t len)
{
	size_t col = 0;
	size_t i = 0;
	while (i < len) {
		size_t brk = line_break_at(s, len, i);
		if (brk) {
			out_add(o, "\r\n", 2);
			col = 0;
			i += brk;
			continue;
		}
		unsigned char c = (unsigned char)s[i];
		bool last_on_line = (i + 1 == len) || line_break_at(s, len, i + 1);
		char tok[3];
		size_t toklen;
		if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last_on_line)) {
			tok[0] = (char)c;
			toklen = 1;
		} else {
			tok[0] = '=';
			tok[1] = hex_upper[c >> 4];
			tok[2] = hex_upper[c & 15u];
			toklen = 3;
		}
		if (col + toklen > QP_LINE_MAX - 1) {
			out_add(o, "=\r\n", 3);
			col = 0;
		}
		out_add(o, tok, toklen);
		col += toklen;
		i++;
	}
}

/* Base64 of the text with every line break made CRLF (RFC 2045 canonical form). */
static void b64_text(out_t *o, const char *s, size_t len)
{
	b64_t b = {.o = o, .line_max = B64_LINE_MAX};
	size_t i = 0, run = 0;
	while (i < len) {
		size_t brk = line_break_at(s, len, i);
		if (!brk) {
			i++;
			run++;
			continue;
		}
		b64_push(&b, (const uint8_t *)s + i - run, run);
		b64_push(&b, (const uint8_t *)"\r\n", 2);
		i += brk;
		run = 0;
	}
	b64_push(&b, (const uint8_t *)s + i - run, run);
	b64_finish(&b);
}

/* QP when mostly ASCII (readable, small); base64 when > 1/6 of the bytes are not. */
static bool text_wants_base64(const char *s, size_t len)
{
	size_t high = 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			high++;
	return high * 6 > len;
}

/* One text/<subtype> part: headers, blank line, encoded content (no trailing delimiter CRLF). */
static void text_part(out_t *o, const char *subtype, const char *s, size_t len)
{
	bool b64 = text_wants_base64(s, len);
	out_str(o, "Content-Type: text/");
	out_str(o, subtype);
	out_str(o, "; charset=UTF-8\r\nContent-Transfer-Encoding: ");
	out_str(o, b64 ? "base64" : "quoted-printable");
	out_str(o, "\r\n\r\n");
	if (b64)
		b64_text(o, s, len);
	else
		qp_encode(o, s, len);
}

/* ---- headers ---- */

static const char *const day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

char *hd_mime_format_date(int64_t t, char *buf, size_t buflen)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm))
		memset(&tm, 0, sizeof tm);
	snprintf(buf, buflen, "%s, %02d %s %04d %02d:%02d:%02d +0000",
		 day_names[tm.tm_wday % 7], tm.tm_mday, month_names[tm.tm_mon % 12],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return buf;
}

/* "Name: a, b, c" folded between addresses; one address is never split. */
static void address_header(out_t *o, const char *name, char *const *addrs, size_t count)
{
	size_t col = strlen(name) + 2;
	out_str(o, name);
	out_str(o, ": ");
	for (size_t i = 0; i < count; i++) {
		size_t len = strlen(addrs[i]) + (i + 1 < count ? 1 : 0);
		if (i > 0) {
			if (col + 1 + len > LINE_SOFT_MAX) {
				out_str(o, "\r\n ");
				col = 1;
			} else {
				out_ch(o, ' ');
				col++;
			}
		}
		out_str(o, addrs[i]);
		if (i + 1 < count)
			out_ch(o, ',');
		col += len;
	}
	out_str(o, "\r\n");
}

/*
 * A subject that is printable ASCII, holds no "=?" (which a reader
 * could take for an encoded-word), and can be folded at single spaces
 * into lines of at most 78 chars is written as is. Returns false
 * (writing nothing) otherwise.
 */
static bool subject_plain(out_t *o, const char *s)
{
	size_t len = strlen(s);
	const size_t prefix = sizeof "Subject: " - 1;
	if (strstr(s, "=?"))
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	if (prefix + len <= LINE_SOFT_MAX) {
		out_str(o, "Subject: ");
		out_str(o, s);
		out_str(o, "\r\n");
		return true;
	}
	/* Folding only at single inner spaces keeps every line non-blank. */
	if (s[0] == ' ' || s[len - 1] == ' ' || strstr(s, "  "))
		return false;
	size_t breaks[HD_MAX_SUBJECT_BYTES / 2 + 1];
	size_t nbreaks = 0;
	size_t line_start = 0, col_base = prefix, last_space = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != ' ')
			continue;
		/* s[line_start .. i) would be the line's text */
		if (col_base + (i - line_start) > LINE_SOFT_MAX) {
			if (last_space <= line_start)
				return false; /* one word longer than a line */
			breaks[nbreaks++] = last_space;
			line_start = last_space;  /* the continuation line starts with the space */
			col_base = 0;
			if (col_base + (i - line_start) > LINE_SOFT_MAX)
				return false;
		}
		last_space = i;
		if (nbreaks >= sizeof breaks / sizeof breaks[0])
			return false;
	}
	out_str(o, "Subject: ");
	size_t pos = 0;
	for (size_t b = 0; b < nbreaks; b++) {
		out_add(o, s + pos, breaks[b] - pos);
		out_str(o, "\r\n");
		pos = breaks[b];
	}
	out_str(o, s + pos);
	out_str(o, "\r\n");
	return true;
}

/*
 * RFC 2047 "B" encoded-words, one per line, each holding whole UTF-8
 * characters: 42 input bytes on the first line (9 + 10 + 56 + 2 = 77
 * columns), 45 on the following ones (1 + 72 columns; the word itself
 * is 72 <= 75 chars).
 */
static void subject_encoded(out_t *o, const char *s)
{
	size_t len = strlen(s);
	size_t pos = 0;
	bool first = true;
	out_str(o, "Subject:");
	do {
		size_t max = first ? 42 : 45;
		size_t n = len - pos < max ? len - pos : max;
		/* Never end a chunk inside a UTF-8 sequence. */
		while (n > 0 && pos + n < len && ((unsigned char)s[pos + n] & 0xC0) == 0x80)
			n--;
		if (n == 0)  /* cannot happen on valid UTF-8; take the bytes anyway */
			n = len - pos < max ? len - pos : max;
		out_str(o, first ? " " : "\r\n ");
		out_str(o, "=?UTF-8?B?");
		b64_t b = {.o = o};
		b64_push(&b, (const uint8_t *)s + pos, n);
		b64_finish(&b);
		out_str(o, "?=");
		pos += n;
		first = false;
	} while (pos < len);
	out_str(o, "\r\n");
}

static void subject_header(out_t *o, const char *s)
{
	if (!subject_plain(o, s))
		subject_encoded(o, s);
}

/* RFC 5987 attr-char: what may stay unencoded in an RFC 2231 value. */
static bool is_attr_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       strchr("!#$&+-.^_`|~", c) != NULL;
}

/* Printable ASCII without '"' and '\\', short enough for one quoted line. */
static bool name_is_simple(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 60)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			return false;
	}
	return true;
}

/*
 * filename parameter: quoted when simple, else RFC 2231 UTF-8
 * percent-encoding, split into continuations (filename*0*, *1*, ...)
 * of at most 60 encoded chars so each line stays within 78 columns.
 */
static void filename_param(out_t *o, const char *name)
{
	if (name_is_simple(name)) {
		out_str(o, ";\r\n\tfilename=\"");
		out_str(o, name);
		out_str(o, "\"");
		return;
	}
	char enc[HD_MAX_ATTACH_NAME_BYTES * 3 + 1];
	size_t elen = 0;
	for (const unsigned char *p = (const unsigned char *)name;
	     *p && elen + 3 < sizeof enc; p++) {
		if (is_attr_char(*p)) {
			enc[elen++] = (char)*p;
		} else {
			enc[elen++] = '%';
			enc[elen++] = hex_upper[*p >> 4];
			enc[elen++] = hex_upper[*p & 15u];
		}
	}
	enc[elen] = '\0';
	const size_t seg_max = 60;
	if (elen <= seg_max) {
		out_str(o, ";\r\n\tfilename*=UTF-8''");
		out_str(o, enc);
		return;
	}
	size_t pos = 0;
	for (unsigned seg = 0; pos < elen; seg++) {
		size_t n = elen - pos < seg_max ? elen - pos : seg_max;
		/* Do not split a %XX triplet, nor a UTF-8 character (some
		 * readers decode each segment on its own). */
		if (pos + n < elen) {
			if (enc[pos + n - 1] == '%')
				n -= 1;
			else if (n >= 2 && enc[pos + n - 2] == '%')
				n -= 2;
			while (n > 3 && enc[pos + n] == '%' && strchr("89AB", enc[pos + n + 1]))
				n -= 3;
		}
		char head[48];
		snprintf(head, sizeof head, ";\r\n\tfilename*%u*=%s", seg, seg == 0 ? "UTF-8''" : "");
		out_str(o, head);
		out_add(o, enc + pos, n);
		pos += n;
	}
}

static void attachment_part(out_t *o, const hd_attachment_t *a)
{
	const char *name = a->name ? a->name : "attachment";
	out_str(o, "Content-Type: ");
	out_str(o, a->mime_type && *a->mime_type ? a->mime_type : "application/octet-stream");
	if (name_is_simple(name)) {
		out_str(o, ";\r\n\tname=\"");
		out_str(o, name);
		out_str(o, "\"");
	}
	out_str(o, "\r\nContent-Disposition: attachment");
	filename_param(o, name);
	out_str(o, "\r\nContent-Transfer-Encoding: base64\r\n\r\n");
	b64_t b = {.o = o, .line_max = B64_LINE_MAX};
	b64_push(&b, a->data, a->size);
	b64_finish(&b);
}

/* ---- size bound, checked before anything is allocated ---- */

static uint64_t text_bound(size_t len)
{
	/* QP: 3 chars per byte plus soft breaks; base64 of CRLF text: < 8/3 per byte. */
	return (uint64_t)len * 4u + 512u;
}

static uint64_t size_bound(const hd_msg_t *m)
{
	uint64_t n = 4096;
	n += strlen(m->sender) * 2u;
	for (size_t i = 0; i < m->to_count; i++)
		n += strlen(m->to[i]) + 4u;
	for (size_t i = 0; i < m->cc_count; i++)
		n += strlen(m->cc[i]) + 4u;
	if (m->subject)
		n += strlen(m->subject) * 2u + 256u;
	n += text_bound(m->body ? strlen(m->body) : 0);
	if (m->html)
		n += text_bound(strlen(m->html));
	for (size_t i = 0; i < m->attachment_count; i++) {
		const hd_attachment_t *a = &m->attachments[i];
		n += (uint64_t)a->size / 3u * 4u + (uint64_t)a->size / 57u * 2u + 16u;
		n += (a->name ? strlen(a->name) * 4u : 0u) +
		     (a->mime_type ? strlen(a->mime_type) : 0u) + 512u;
	}
	return n;
}

/* ---- the message ---- */

static void boundary_for(char *buf, size_t len, uint64_t nonce, const char *level)
{
	snprintf(buf, len, "=_hd_%016llx_%s", (unsigned long long)nonce, level);
}

static void content_type_multipart(out_t *o, const char *subtype, const char *boundary)
{
	out_str(o, "Content-Type: multipart/");
	out_str(o, subtype);
	out_str(o, ";\r\n\tboundary=\"");
	out_str(o, boundary);
	out_str(o, "\"\r\n");
}

static void delimiter(out_t *o, const char *boundary, bool close)
{
	out_str(o, "\r\n--");
	out_str(o, boundary);
	out_str(o, close ? "--\r\n" : "\r\n");
}

/* The text part, or multipart/alternative of text and html. */
static void body_part(out_t *o, const hd_msg_t *m, const char *text, size_t text_len,
		      const char *alt_boundary)
{
	if (!m->html) {
		text_part(o, "plain", text, text_len);
		return;
	}
	content_type_multipart(o, "alternative", alt_boundary);
	out_str(o, "\r\n");
	out_str(o, "--");
	out_str(o, alt_boundary);
	out_str(o, "\r\n");
	text_part(o, "plain", text, text_len);
	delimiter(o, alt_boundary, false);
	text_part(o, "html", m->html, strlen(m->html));
	delimiter(o, alt_boundary, true);
}

static void top_headers(out_t *o, const hd_msg_t *m, const hd_mime_params_t *p,
			const char *domain, const char *reply_date)
{
	char line[HD_MAX_ADDR_BYTES + 128];
	char date[HD_MIME_DATE_BYTES];

	out_str(o, "From: ");
	out_str(o, m->sender);
	out_str(o, "\r\n");
	if (m->to_count)
		address_header(o, "To", m->to, m->to_count);
	if (m->cc_count)
		address_header(o, "Cc", m->cc, m->cc_count);
	if (m->subject && *m->subject)
		subject_header(o, m->subject);
	snprintf(line, sizeof line, "Date: %s\r\n", hd_mime_format_date(p->date_s, date, sizeof date));
	out_str(o, line);
	snprintf(line, sizeof line, "Message-ID: <d%lld.m%lld@%s>\r\n", (long long)p->delivery_id,
		 (long long)p->message_id, domain);
	out_str(o, line);
	if (reply_date) {
		out_str(o, "Reply-By: ");
		out_str(o, reply_date);
		out_str(o, "\r\n");
	}
	if (p->klass == HD_CLASS_IMPORTANT)
		out_str(o, "Importance: high\r\nX-Priority: 1\r\n");
	snprintf(line, sizeof line, "X-Herald-Delivery: %lld\r\n", (long long)p->delivery_id);
	out_str(o, line);
	out_str(o, "MIME-Version: 1.0\r\n");
}

int hd_mime_build(const hd_msg_t *m, const hd_mime_params_t *p, char **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	if (!m || !p || !m->sender || !*m->sender)
		return HD_E_INVALID;
	if (size_bound(m) > HD_MIME_MAX_BYTES)
		return HD_E_TOOBIG;

	const char *domain = p->id_domain && *p->id_domain ? p->id_domain : NULL;
	if (!domain) {
		const char *at = strrchr(m->sender, '@');
		domain = at && at[1] ? at + 1 : "herald.invalid";
	}

	char reply_date[HD_MIME_DATE_BYTES];
	const char *reply = NULL;
	if (m->reply_by > 0)
		reply = hd_mime_format_date(m->reply_by, reply_date, sizeof reply_date);

	/* The text: "Please reply by <date>." first when a reply is wanted. */
	const char *body = m->body ? m->body : "";
	size_t body_len = strlen(body);
	char *text_buf = NULL;
	const char *text = body;
	size_t text_len = body_len;
	if (reply) {
		static const char pre[] = "Please reply by ";
		size_t cap = sizeof pre + strlen(reply) + 8 + body_len;
		text_buf = hd_malloc(cap);
		int n = snprintf(text_buf, cap, "%s%s.\r\n\r\n", pre, reply);
		memcpy(text_buf + n, body, body_len + 1);
		text = text_buf;
		text_len = (size_t)n + body_len;
	}

	out_t o = {0};
	top_headers(&o, m, p, domain, reply);

	char mixed[64], alt[64];
	boundary_for(mixed, sizeof mixed, p->nonce, "mixed");
	boundary_for(alt, sizeof alt, p->nonce, "alt");

	if (m->attachment_count == 0) {
		body_part(&o, m, text, text_len, alt);
		/* libESMTP ends the DATA with CRLF.CRLF; the body should end its last line. */
		if (o.len < 2 || memcmp(o.p + o.len - 2, "\r\n", 2) != 0)
			out_str(&o, "\r\n");
	} else {
		content_type_multipart(&o, "mixed", mixed);
		out_str(&o, "\r\nThis is a multi-part message in MIME format.\r\n");
		out_str(&o, "--");
		out_str(&o, mixed);
		out_str(&o, "\r\n");
		body_part(&o, m, text, text_len, alt);
		for (size_t i = 0; i < m->attachment_count; i++) {
			delimiter(&o, mixed, false);
			attachment_part(&o, &m->attachments[i]);
		}
		delimiter(&o, mixed, true);
	}
	free(text_buf);
	*out = o.p;
	*out_len = o.len;
	return 0;
}
