/*
 * NAME
 *	herald-send - submit one message to heraldd from the command line
 * DESCRIPTION
 *	Parses flags into a herald_msg_t, submits it synchronously through
 *	libherald (public API only) and reports the outcome as one human
 *	line or, with --json, one JSON object on stdout. Exit codes: 0
 *	accepted, 2 usage error, 3 rejected by heraldd, 4 heraldd
 *	unreachable (no answer after retries).
 * LIMITS
 *	Files are read up to the protocol limit of their field (body and
 *	HTML 4 MiB, each attachment 25 MiB) and refused beyond it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "herald/herald.h"

#define HS_PROG        "herald-send"
#define HS_EXIT_OK     0
#define HS_EXIT_USAGE  2
#define HS_EXIT_REJECT 3
#define HS_EXIT_UNAVAIL 4

typedef struct hs_list {
	const char **items;
	size_t count;
} hs_list_t;

typedef struct hs_opts {
	const char *endpoint;
	const char *app;
	const char *channel;
	const char *from;
	hs_list_t to;
	hs_list_t cc;
	hs_list_t attach;
	hs_list_t tags;
	const char *cc_reason;
	const char *subject;
	const char *body;
	const char *body_file;
	const char *html_file;
	unsigned flags;
	const char *purpose;
	const char *reply_by;
	const char *bulk_purpose;
	const char *bulk_audience;
	const char *bulk_count;
	const char *bulk_summary;
	const char *idempotency_key;
	const char *timeout_ms;
	const char *retries;
	bool json;
	bool quiet;
	bool ping;
} hs_opts_t;

enum {
	OPT_ENDPOINT = 256, OPT_APP, OPT_CHANNEL, OPT_FROM, OPT_TO, OPT_CC, OPT_CC_REASON,
	OPT_SUBJECT, OPT_BODY, OPT_BODY_FILE, OPT_HTML_FILE, OPT_ATTACH, OPT_IMPORTANT,
	OPT_MAJOR, OPT_CONFIDENTIAL, OPT_BULK, OPT_NEEDS_REPLY, OPT_PURPOSE, OPT_REPLY_BY,
	OPT_BULK_PURPOSE, OPT_BULK_AUDIENCE, OPT_BULK_COUNT, OPT_BULK_SUMMARY,
	OPT_IDEM_KEY, OPT_TAG, OPT_TIMEOUT_MS, OPT_RETRIES, OPT_JSON, OPT_QUIET, OPT_PING,
	OPT_HELP, OPT_VERSION
};

static const struct option hs_long_options[] = {
	{"endpoint", required_argument, NULL, OPT_ENDPOINT},
	{"app", required_argument, NULL, OPT_APP},
	{"channel", required_argument, NULL, OPT_CHANNEL},
	{"from", required_argument, NULL, OPT_FROM},
	{"to", required_argument, NULL, OPT_TO},
	{"cc", required_argument, NULL, OPT_CC},
	{"cc-reason", required_argument, NULL, OPT_CC_REASON},
	{"subject", required_argument, NULL, OPT_SUBJECT},
	{"body", required_argument, NULL, OPT_BODY},
	{"body-file", required_argument, NULL, OPT_BODY_FILE},
	{"html-file", required_argument, NULL, OPT_HTML_FILE},
	{"attach", required_argument, NULL, OPT_ATTACH},
	{"important", no_argument, NULL, OPT_IMPORTANT},
	{"major", no_argument, NULL, OPT_MAJOR},
	{"confidential", no_argument, NULL, OPT_CONFIDENTIAL},
	{"bulk", no_argument, NULL, OPT_BULK},
	{"needs-reply", no_argument, NULL, OPT_NEEDS_REPLY},
	{"purpose", required_argument, NULL, OPT_PURPOSE},
	{"reply-by", required_argument, NULL, OPT_REPLY_BY},
	{"bulk-purpose", required_argument, NULL, OPT_BULK_PURPOSE},
	{"bulk-audience", required_argument, NULL, OPT_BULK_AUDIENCE},
	{"bulk-count", required_argument, NULL, OPT_BULK_COUNT},
	{"bulk-summary", required_argument, NULL, OPT_BULK_SUMMARY},
	{"idempotency-key", required_argument, NULL, OPT_IDEM_KEY},
	{"tag", required_argument, NULL, OPT_TAG},
	{"timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS},
	{"retries", required_argument, NULL, OPT_RETRIES},
	{"json", no_argument, NULL, OPT_JSON},
	{"quiet", no_argument, NULL, OPT_QUIET},
	{"ping", no_argument, NULL, OPT_PING},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

static void hs_usage(FILE *out)
{
	fprintf(out,
"Usage: " HS_PROG " --channel email|im|sms --from ADDR --to ADDR [OPTION]...\n"
"Submit one message to heraldd and report what it answered.\n"
"\n"
"Connection:\n"
"  --endpoint URL         heraldd endpoint (env HERALD_ENDPOINT, default\n"
"                         " HERALD_DEFAULT_ENDPOINT ")\n"
"  --app NAME             application name (env HERALD_APP, default herald-send)\n"
"  --timeout-ms N         wait per attempt (default 5000)\n"
"  --retries N            resends after a timeout or retryable error (default 3)\n"
"\n"
"Message:\n"
"  --channel CH           email, im or sms (required)\n"
"  --from ADDR            sender (required)\n"
"  --to ADDR[,ADDR...]    recipient (repeatable)\n"
"  --cc ADDR[,ADDR...]    copy recipient (repeatable)\n"
"  --cc-reason TEXT       why the copies are needed\n"
"  --subject TEXT\n"
"  --body TEXT | --body-file PATH   (PATH \"-\" reads stdin)\n"
"  --html-file PATH       HTML alternative (email)\n"
"  --attach PATH[:TYPE]   attachment (repeatable); TYPE guessed from the\n"
"                         extension, else application/octet-stream\n"
"  --important --major --confidential --bulk --needs-reply   flags\n"
"  --purpose P            service, urgent or marketing\n"
"  --reply-by WHEN        Unix seconds or ISO 8601 (2026-12-01T17:00:00Z)\n"
"  --bulk-purpose TEXT --bulk-audience TEXT --bulk-summary TEXT\n"
"  --bulk-count N         bulk application (count defaults to to+cc)\n"
"  --idempotency-key KEY  deduplication key (default: random)\n"
"  --tag KEY=VALUE        (repeatable)\n"
"\n"
"Output:\n"
"  --json                 one JSON object on stdout, whatever the outcome\n"
"  --quiet                print nothing when accepted\n"
"  --ping                 only ask heraldd whether it can take submissions now\n"
"                         (exit 0 yes, 4 no); no message flags needed\n"
"  --help, --version\n"
"\n"
"Exit status:\n"
"  0  accepted (\"accepted id=... class=... state=...\" on stdout)\n"
"  2  usage error (bad flags or values, unreadable file)\n"
"  3  rejected by heraldd (\"rejected code=... field=... reason=...\" on stderr)\n"
"  4  heraldd unreachable or unavailable after all retries; resending with\n"
"     the printed --idempotency-key cannot create a duplicate\n");
}

__attribute__((format(printf, 1, 2)))
static _Noreturn void hs_die_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, HS_PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" HS_PROG " --help'.\n");
	exit(HS_EXIT_USAGE);
}

static void hs_list_push(hs_list_t *list, const char *item)
{
	const char **items = realloc(list->items, (list->count + 1) * sizeof(*items));
	if (!items) {
		fprintf(stderr, HS_PROG ": out of memory\n");
		exit(1);
	}
	list->items = items;
	list->items[list->count++] = item;
}

static bool hs_parse_long(const char *s, long min, long max, long *out)
{
	if (!s || !*s)
		return false;
	char *end = NULL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* Read a whole file ("-" = stdin) of at most max_bytes; NUL-terminated. */
static char *hs_read_file(const char *path, size_t max_bytes, size_t *len_out)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f)
		hs_die_usage("cannot open %s: %s", path, strerror(errno));
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (!buf) {
			fprintf(stderr, HS_PROG ": out of memory\n");
			exit(1);
		}
		if (len == cap) {
			if (cap > max_bytes)
				break;
			cap *= 2;
			buf = realloc(buf, cap + 1);
			continue;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	bool failed = ferror(f) != 0;
	if (f != stdin)
		fclose(f);
	if (failed)
		hs_die_usage("cannot read %s", path);
	if (len > max_bytes)
		hs_die_usage("%s is larger than %zu bytes", path, max_bytes);
	buf[len] = '\0';
	*len_out = len;
	return buf;
}

/* A text file must not hide a NUL: the library takes C strings. */
static char *hs_read_text(const char *path, size_t max_bytes)
{
	size_t len = 0;
	char *text = hs_read_file(path, max_bytes, &len);
	if (memchr(text, '\0', len))
		hs_die_usage("%s contains NUL bytes", path);
	return text;
}

static const char *hs_guess_mime(const char *name)
{
	static const struct { const char *ext; const char *mime; } types[] = {
		{"txt", "text/plain"}, {"log", "text/plain"}, {"md", "text/markdown"},
		{"csv", "text/csv"}, {"html", "text/html"}, {"htm", "text/html"},
		{"css", "text/css"}, {"ics", "text/calendar"}, {"xml", "application/xml"},
		{"json", "application/json"}, {"pdf", "application/pdf"},
		{"zip", "application/zip"}, {"gz", "application/gzip"},
		{"tar", "application/x-tar"}, {"rtf", "application/rtf"},
		{"doc", "application/msword"},
		{"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
		{"xls", "application/vnd.ms-excel"},
		{"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
		{"ppt", "application/vnd.ms-powerpoint"},
		{"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
		{"odt", "application/vnd.oasis.opendocument.text"},
		{"ods", "application/vnd.oasis.opendocument.spreadsheet"},
		{"png", "image/png"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
		{"gif", "image/gif"}, {"webp", "image/webp"}, {"svg", "image/svg+xml"},
		{"mp3", "audio/mpeg"}, {"wav", "audio/wav"}, {"mp4", "video/mp4"},
	};
	const char *dot = strrchr(name, '.');
	if (dot && dot != name)
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcasecmp(dot + 1, types[i].ext) == 0)
				return types[i].mime;
	return "application/octet-stream";
}

/* True when s looks like type/subtype (so "PATH:TYPE" can be split). */
static bool hs_is_mime(const char *s)
{
	const char *slash = strchr(s, '/');
	if (!slash || slash == s || slash[1] == '\0' || strchr(slash + 1, '/'))
		return false;
	for (const char *p = s; *p; p++)
		if (*p != '/' && *p != '.' && *p != '+' && *p != '-' && *p != '_' &&
		    !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9'))
			return false;
	return true;
}

static int64_t hs_days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Parse n digits at *p into *out, advancing *p. */
static bool hs_digits(const char **p, int n, int64_t *out)
{
	int64_t v = 0;
	for (int i = 0; i < n; i++) {
		char ch = (*p)[i];
		if (ch < '0' || ch > '9')
			return false;
		v = v * 10 + (ch - '0');
	}
	*p += n;
	*out = v;
	return true;
}

/* Unix seconds, or YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static bool hs_parse_time(const char *s, int64_t *out)
{
	long secs;
	if (hs_parse_long(s, 1, 253402300799L, &secs)) {
		*out = secs;
		return true;
	}
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = s;
	int64_t y, mo, d, h, mi, se, oh = 0, om = 0;
	if (!hs_digits(&p, 4, &y) || *p++ != '-' || !hs_digits(&p, 2, &mo) ||
	    *p++ != '-' || !hs_digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
		return false;
	p++;
	if (!hs_digits(&p, 2, &h) || *p++ != ':' || !hs_digits(&p, 2, &mi) ||
	    *p++ != ':' || !hs_digits(&p, 2, &se))
		return false;
	if (*p == '.') /* fractions of a second are dropped */
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	int sign = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (!hs_digits(&p, 2, &oh) || *p++ != ':' || !hs_digits(&p, 2, &om) ||
		    oh > 23 || om > 59)
			return false;
	} else {
		return false;
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60)
		return false;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d > mdays[mo - 1] + (mo == 2 && leap))
		return false;
	int64_t t = hs_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	t -= sign * (oh * 3600 + om * 60);
	if (t <= 0)
		return false;
	*out = t;
	return true;
}

static void hs_parse_args(int argc, char **argv, hs_opts_t *o)
{
	memset(o, 0, sizeof(*o));
	o->endpoint = getenv("HERALD_ENDPOINT");
	if (!o->endpoint || !*o->endpoint)
		o->endpoint = HERALD_DEFAULT_ENDPOINT;
	o->app = getenv("HERALD_APP");
	if (!o->app || !*o->app)
		o->app = "herald-send";

	opterr = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, ":", hs_long_options, NULL)) != -1) {
		switch (ch) {
		case OPT_ENDPOINT: o->endpoint = optarg; break;
		case OPT_APP: o->app = optarg; break;
		case OPT_CHANNEL: o->channel = optarg; break;
		case OPT_FROM: o->from = optarg; break;
		case OPT_TO: hs_list_push(&o->to, optarg); break;
		case OPT_CC: hs_list_push(&o->cc, optarg); break;
		case OPT_CC_REASON: o->cc_reason = optarg; break;
		case OPT_SUBJECT: o->subject = optarg; break;
		case OPT_BODY: o->body = optarg; break;
		case OPT_BODY_FILE: o->body_file = optarg; break;
		case OPT_HTML_FILE: o->html_file = optarg; break;
		case OPT_ATTACH: hs_list_push(&o->attach, optarg); break;
		case OPT_IMPORTANT: o->flags |= HERALD_FLAG_IMPORTANT; break;
		case OPT_MAJOR: o->flags |= HERALD_FLAG_MAJOR; break;
		case OPT_CONFIDENTIAL: o->flags |= HERALD_FLAG_CONFIDENTIAL; break;
		case OPT_BULK: o->flags |= HERALD_FLAG_BULK; break;
		case OPT_NEEDS_REPLY: o->flags |= HERALD_FLAG_NEEDS_REPLY; break;
		case OPT_PURPOSE: o->purpose = optarg; break;
		case OPT_REPLY_BY: o->reply_by = optarg; break;
		case OPT_BULK_PURPOSE: o->bulk_purpose = optarg; break;
		case OPT_BULK_AUDIENCE: o->bulk_audience = optarg; break;
		case OPT_BULK_COUNT: o->bulk_count = optarg; break;
		case OPT_BULK_SUMMARY: o->bulk_summary = optarg; break;
		case OPT_IDEM_KEY: o->idempotency_key = optarg; break;
		case OPT_TAG: hs_list_push(&o->tags, optarg); break;
		case OPT_TIMEOUT_MS: o->timeout_ms = optarg; break;
		case OPT_RETRIES: o->retries = optarg; break;
		case OPT_JSON: o->json = true; break;
		case OPT_QUIET: o->quiet = true; break;
		case OPT_PING: o->ping = true; break;
		case OPT_HELP: hs_usage(stdout); exit(HS_EXIT_OK);
		case OPT_VERSION: printf(HS_PROG " " HERALD_VERSION_STRING "\n"); exit(HS_EXIT_OK);
		case ':': hs_die_usage("option %s needs a value", argv[optind - 1]);
		default: hs_die_usage("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		hs_die_usage("unexpected argument '%s'", argv[optind]);
	if (o->ping)
		return;
	if (!o->channel)
		hs_die_usage("--channel is required");
	if (!o->from)
		hs_die_usage("--from is required");
	if (o->body && o->body_file)
		hs_die_usage("--body and --body-file exclude each other");
}

static herald_channel_t hs_channel(const char *name)
{
	if (strcmp(name, "email") == 0)
		return HERALD_EMAIL;
	if (strcmp(name, "im") == 0)
		return HERALD_IM;
	if (strcmp(name, "sms") == 0)
		return HERALD_SMS;
	hs_die_usage("--channel must be email, im or sms, not '%s'", name);
}

/* Add every comma-separated address of each item. Returns the count. */
static size_t hs_add_addresses(herald_msg_t *m, const hs_list_t *list, bool cc)
{
	size_t added = 0;
	for (size_t i = 0; i < list->count; i++) {
		char *copy = strdup(list->items[i]);
		if (!copy) {
			fprintf(stderr, HS_PROG ": out of memory\n");
			exit(1);
		}
		char *save = NULL;
		for (char *tok = strtok_r(copy, ",", &save); tok;
		     tok = strtok_r(NULL, ",", &save)) {
			while (*tok == ' ' || *tok == '\t')
				tok++;
			size_t n = strlen(tok);
			while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
				tok[--n] = '\0';
			if (n == 0)
				continue;
			int rc = cc ? herald_msg_add_cc(m, tok) : herald_msg_add_to(m, tok);
			if (rc != HERALD_OK)
				hs_die_usage("bad %s address '%s' (too long, not UTF-8 or too many)",
					     cc ? "--cc" : "--to", tok);
			added++;
		}
		free(copy);
	}
	return added;
}

static void hs_add_attachment(herald_msg_t *m, const char *spec)
{
	char *path = strdup(spec);
	if (!path) {
		fprintf(stderr, HS_PROG ": out of memory\n");
		exit(1);
	}
	const char *mime = NULL;
	char *colon = strrchr(path, ':');
	if (colon && hs_is_mime(colon + 1)) {
		*colon = '\0';
		mime = colon + 1;
	}
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	if (!*name)
		hs_die_usage("--attach %s: no file name", spec);
	if (!mime)
		mime = hs_guess_mime(name);
	size_t len = 0;
	char *data = hs_read_file(path, HERALD_MAX_ATTACH_BYTES, &len);
	if (herald_msg_add_attachment(m, name, mime, data, len) != HERALD_OK)
		hs_die_usage("--attach %s refused (name, type, size or count over the limit)",
			     spec);
	free(data);
	free(path);
}

static herald_msg_t *hs_build(const hs_opts_t *o)
{
	herald_msg_t *m = herald_msg_new(hs_channel(o->channel));
	if (o->from && herald_msg_set_from(m, o->from) != HERALD_OK)
		hs_die_usage("bad --from (empty, too long or not UTF-8)");
	size_t recipients = hs_add_addresses(m, &o->to, false);
	recipients += hs_add_addresses(m, &o->cc, true);
	if (o->cc_reason && herald_msg_set_cc_reason(m, o->cc_reason) != HERALD_OK)
		hs_die_usage("bad --cc-reason (empty, too long or not UTF-8)");
	if (o->subject && herald_msg_set_subject(m, o->subject) != HERALD_OK)
		hs_die_usage("bad --subject (over %u bytes or not UTF-8)",
			     HERALD_MAX_SUBJECT_BYTES);
	if (o->body && herald_msg_set_body(m, o->body) != HERALD_OK)
		hs_die_usage("bad --body (too long or not UTF-8)");
	if (o->body_file) {
		char *text = hs_read_text(o->body_file, HERALD_MAX_BODY_BYTES);
		if (herald_msg_set_body(m, text) != HERALD_OK)
			hs_die_usage("--body-file %s is not UTF-8", o->body_file);
		free(text);
	}
	if (o->html_file) {
		char *text = hs_read_text(o->html_file, HERALD_MAX_HTML_BYTES);
		if (herald_msg_set_html(m, text) != HERALD_OK)
			hs_die_usage("--html-file %s is not UTF-8", o->html_file);
		free(text);
	}
	for (size_t i = 0; i < o->attach.count; i++)
		hs_add_attachment(m, o->attach.items[i]);
	if (o->flags)
		herald_msg_set_flag(m, o->flags);
	if (o->purpose) {
		herald_purpose_t p;
		if (strcmp(o->purpose, "service") == 0)
			p = HERALD_PURPOSE_SERVICE;
		else if (strcmp(o->purpose, "urgent") == 0)
			p = HERALD_PURPOSE_URGENT;
		else if (strcmp(o->purpose, "marketing") == 0)
			p = HERALD_PURPOSE_MARKETING;
		else
			hs_die_usage("--purpose must be service, urgent or marketing");
		herald_msg_set_purpose(m, p);
	}
	if (o->reply_by) {
		int64_t t;
		if (!hs_parse_time(o->reply_by, &t))
			hs_die_usage("--reply-by wants Unix seconds or 2026-12-01T17:00:00Z, not '%s'",
				     o->reply_by);
		herald_msg_set_reply_by(m, t);
	}
	if (o->bulk_purpose || o->bulk_audience || o->bulk_summary || o->bulk_count) {
		if (!o->bulk_purpose || !o->bulk_audience || !o->bulk_summary)
			hs_die_usage("--bulk-purpose, --bulk-audience and --bulk-summary go together");
		long count = (long)recipients;
		if (o->bulk_count && !hs_parse_long(o->bulk_count, 0, UINT32_MAX, &count))
			hs_die_usage("--bulk-count must be a number of recipients");
		if (herald_msg_set_bulk(m, o->bulk_purpose, o->bulk_audience, (uint32_t)count,
					o->bulk_summary) != HERALD_OK)
			hs_die_usage("bulk texts must be 1..%u bytes of UTF-8",
				     HERALD_MAX_BULK_TEXT_BYTES);
	}
	if (o->idempotency_key &&
	    herald_msg_set_idempotency_key(m, o->idempotency_key) != HERALD_OK)
		hs_die_usage("--idempotency-key must be 1..%u bytes", HERALD_MAX_IDEM_KEY_BYTES);
	for (size_t i = 0; i < o->tags.count; i++) {
		const char *spec = o->tags.items[i];
		const char *eq = strchr(spec, '=');
		if (!eq || eq == spec)
			hs_die_usage("--tag wants KEY=VALUE, not '%s'", spec);
		char key[HERALD_MAX_TAG_KEY_BYTES + 1];
		size_t klen = (size_t)(eq - spec);
		if (klen > HERALD_MAX_TAG_KEY_BYTES)
			hs_die_usage("--tag key '%.*s' is too long", (int)klen, spec);
		memcpy(key, spec, klen);
		key[klen] = '\0';
		if (herald_msg_add_tag(m, key, eq + 1) != HERALD_OK)
			hs_die_usage("--tag %s refused (too long, not UTF-8 or too many tags)",
				     spec);
	}
	return m;
}

static json_t *hs_json_result(const herald_result_t *r)
{
	json_t *o;
	json_t *findings = json_array();
	for (size_t i = 0; i < r->finding_count; i++) {
		const herald_finding_t *f = &r->findings[i];
		json_array_append_new(findings,
			json_pack("{s:s, s:s, s:s, s:s, s:s}", "rule", f->rule,
				  "clause", f->clause, "action", f->action,
				  "severity", f->severity, "reason", f->reason));
	}
	if (r->status == HERALD_OK) {
		o = json_pack("{s:b, s:I, s:s, s:s, s:b, s:o}", "ok", 1, "id",
			      (json_int_t)r->id, "class", r->klass, "state", r->state,
			      "duplicate", r->duplicate, "findings", findings);
	} else {
		o = json_pack("{s:b, s:s, s:s, s:s, s:b}", "ok", 0, "code", r->code,
			      "field", r->field, "reason", r->reason, "retryable",
			      r->retryable);
		json_object_set_new(o, "unavailable",
				    json_boolean(r->status == HERALD_E_UNAVAILABLE));
		json_object_set_new(o, "findings", findings);
	}
	json_object_set_new(o, "idempotency_key", json_string(r->idempotency_key));
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	return o;
}

static void hs_print(const hs_opts_t *o, const herald_result_t *r)
{
	if (o->json) {
		json_t *j = hs_json_result(r);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(j);
		return;
	}
	switch (r->status) {
	case HERALD_OK:
		if (o->quiet)
			return;
		printf("accepted id=%" PRId64 " class=%s state=%s%s\n", r->id, r->klass,
		       r->state, r->duplicate ? " duplicate" : "");
		for (size_t i = 0; i < r->finding_count; i++)
			printf("finding rule=%s clause=%s action=%s severity=%s reason=%s\n",
			       r->findings[i].rule, r->findings[i].clause,
			       r->findings[i].action, r->findings[i].severity,
			       r->findings[i].reason);
		if (r->findings_total > r->finding_count)
			printf("finding ... %zu more not shown\n",
			       r->findings_total - r->finding_count);
		break;
	case HERALD_E_REJECTED:
		fprintf(stderr, "rejected code=%s%s%s reason=%s\n", r->code,
			r->field[0] ? " field=" : "", r->field, r->reason);
		for (size_t i = 0; i < r->finding_count; i++)
			fprintf(stderr, "finding rule=%s clause=%s action=%s severity=%s reason=%s\n",
				r->findings[i].rule, r->findings[i].clause, r->findings[i].action,
				r->findings[i].severity, r->findings[i].reason);
		break;
	case HERALD_E_UNAVAILABLE:
		fprintf(stderr, "unavailable code=%s reason=%s\n", r->code, r->reason);
		fprintf(stderr, "resend with --idempotency-key %s to avoid a duplicate\n",
			r->idempotency_key);
		break;
	default:
		fprintf(stderr, HS_PROG ": %s: %s\n", herald_strerror(r->status), r->reason);
		break;
	}
}

/* --ping: heraldd answers only while it can reach its database. */
static int hs_ping(const hs_opts_t *o)
{
	char err[256];
	herald_client_t *c = herald_client_new(o->endpoint, o->app, err, sizeof(err));
	if (!c)
		hs_die_usage("%s", err);
	long timeout_ms = 2000;
	if (o->timeout_ms && !hs_parse_long(o->timeout_ms, 1, 3600000, &timeout_ms))
		hs_die_usage("--timeout-ms must be 1..3600000");
	int status = herald_client_ping(c, (int)timeout_ms);
	herald_client_destroy(&c);
	if (o->json)
		printf("{\"ok\":%s}\n", status == HERALD_OK ? "true" : "false");
	else if (status == HERALD_OK && !o->quiet)
		printf("pong %s\n", o->endpoint);
	else if (status != HERALD_OK && !o->quiet)
		fprintf(stderr, HS_PROG ": %s does not answer: %s\n", o->endpoint,
			herald_strerror(status));
	return status == HERALD_OK ? HS_EXIT_OK : HS_EXIT_UNAVAIL;
}

int main(int argc, char **argv)
{
	hs_opts_t o;
	hs_parse_args(argc, argv, &o);
	if (o.ping)
		return hs_ping(&o);
	herald_msg_t *m = hs_build(&o);

	char err[256];
	herald_client_t *c = herald_client_new(o.endpoint, o.app, err, sizeof(err));
	if (!c)
		hs_die_usage("%s", err);
	long v;
	if (o.timeout_ms) {
		if (!hs_parse_long(o.timeout_ms, 1, 3600000, &v))
			hs_die_usage("--timeout-ms must be 1..3600000");
		herald_client_set_timeout_ms(c, (int)v);
	}
	if (o.retries) {
		if (!hs_parse_long(o.retries, 0, 100, &v))
			hs_die_usage("--retries must be 0..100");
		herald_client_set_retries(c, (int)v);
	}

	herald_result_t res;
	int status = herald_submit(c, m, &res);
	hs_print(&o, &res);
	herald_msg_destroy(&m);
	herald_client_destroy(&c);
	free(o.to.items);
	free(o.cc.items);
	free(o.attach.items);
	free(o.tags.items);
	switch (status) {
	case HERALD_OK:            return HS_EXIT_OK;
	case HERALD_E_REJECTED:    return HS_EXIT_REJECT;
	case HERALD_E_UNAVAILABLE: return HS_EXIT_UNAVAIL;
	default:                   return HS_EXIT_USAGE;
	}
}
