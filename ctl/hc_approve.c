/*
 * NAME
 *	hc_approve - approvers' commands: held, show, approve, reject
 * DESCRIPTION
 *	See hc_approve.h. The "held" table is printed here rather than with
 *	hc_table because subjects and names are often Chinese or Japanese:
 *	hc_table counts code points, and a column of wide characters would
 *	push every column after it out of line.
 */
#include "hc_approve.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hc_fmt.h"
#include "hd_err.h"
#include "hd_mem.h"
#include "hd_time.h"

/* ------------------------------------------------------------------ */
/* database calls                                                      */
/* ------------------------------------------------------------------ */

int hc_approve_exec(hc_db_t *db, const char *sql, int nparams, const char *const *params,
                    PGresult **res_p, char sqlstate[6], char *msg, size_t msglen)
{
	if (res_p != NULL)
		*res_p = NULL;
	sqlstate[0] = '\0';
	PGconn *conn = hc_db_conn(db);
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (res_p != NULL)
			*res_p = res;
		else
			PQclear(res);
		return 0;
	}
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (primary == NULL || primary[0] == '\0')
		primary = PQerrorMessage(conn);
	snprintf(msg, msglen, "%s", primary && primary[0] ? primary : "unknown error");
	size_t len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	snprintf(sqlstate, 6, "%s", state ? state : "");
	PQclear(res);
	return PQstatus(conn) != CONNECTION_OK ? HD_E_UNAVAILABLE : HD_E_IO;
}

/* A function, table or schema the migration adds is not there yet. */
static bool hc_approve_is_missing(const char *sqlstate)
{
	return strcmp(sqlstate, "42883") == 0 || strcmp(sqlstate, "42P01") == 0 ||
	       strcmp(sqlstate, "3F000") == 0;
}

int hc_approve_call(hc_ctx_t *ctx, hc_db_t *db, const char *what, const char *sql, int nparams,
                    const char *const *params, PGresult **res_p)
{
	char state[6], msg[2048];
	int rc = hc_approve_exec(db, sql, nparams, params, res_p, state, msg, sizeof(msg));
	if (rc == 0)
		return HC_EXIT_OK;
	if (hc_approve_is_missing(state))
		fprintf(ctx->err, "heraldctl: %s: %s (is the database migrated? run 'heraldctl db migrate')\n",
		        what, msg);
	else
		fprintf(ctx->err, "heraldctl: %s: %s\n", what, msg);
	return hc_cli_exit_code(rc);
}

/* ------------------------------------------------------------------ */
/* pure helpers                                                        */
/* ------------------------------------------------------------------ */

int hc_approve_parse_duration(const char *text, int64_t *seconds_p, char *err, size_t errlen)
{
	const char *p = text;
	int64_t total = 0;
	if (text == NULL || *text == '\0')
		goto bad;
	while (*p != '\0') {
		if (!isdigit((unsigned char)*p))
			goto bad;
		int64_t n = 0;
		while (isdigit((unsigned char)*p)) {
			n = n * 10 + (*p - '0');
			if (n > HC_APPROVE_MAX_DURATION_S)
				goto too_long;
			p++;
		}
		int64_t unit;
		switch (*p) {
		case 's': unit = 1; break;
		case 'm': unit = 60; break;
		case 'h': unit = 3600; break;
		case 'd': unit = 86400; break;
		case 'w': unit = 7 * 86400; break;
		default: goto bad;
		}
		p++;
		total += n * unit;
		if (total > HC_APPROVE_MAX_DURATION_S)
			goto too_long;
	}
	*seconds_p = total;
	return 0;
bad:
	snprintf(err, errlen,
	         "'%.32s' is not a duration (NUMBER and unit s, m, h, d or w: 90s, 2h, 1h30m, 2d)",
	         text ? text : "");
	return HD_E_INVALID;
too_long:
	snprintf(err, errlen, "'%.32s' is longer than a year", text);
	return HD_E_INVALID;
}

/* "5h", "5h 30m", "2d 3h", "12m", "45s" for a non-negative count of seconds. */
static void hc_approve_span(int64_t s, char *buf, size_t len)
{
	int64_t d = s / 86400, h = (s % 86400) / 3600, m = (s % 3600) / 60;
	if (d > 0 && h > 0)
		snprintf(buf, len, "%" PRId64 "d %" PRId64 "h", d, h);
	else if (d > 0)
		snprintf(buf, len, "%" PRId64 "d", d);
	else if (h > 0 && m > 0)
		snprintf(buf, len, "%" PRId64 "h %" PRId64 "m", h, m);
	else if (h > 0)
		snprintf(buf, len, "%" PRId64 "h", h);
	else if (m > 0)
		snprintf(buf, len, "%" PRId64 "m", m);
	else
		snprintf(buf, len, "%" PRId64 "s", s);
}

char *hc_approve_fmt_due(double seconds_left, char *buf, size_t len)
{
	if (seconds_left != seconds_left) { /* NaN */
		snprintf(buf, len, "-");
		return buf;
	}
	double a = seconds_left < 0 ? -seconds_left : seconds_left;
	if (a < 1.0) {
		snprintf(buf, len, "due now");
		return buf;
	}
	if (a > 1e12)
		a = 1e12;
	char span[48];
	hc_approve_span((int64_t)a, span, sizeof(span)); /* truncation floors: a >= 1 */
	snprintf(buf, len, "%s %s", seconds_left > 0 ? "in" : "overdue", span);
	return buf;
}

/* Decode one UTF-8 sequence at p (NUL-terminated); *n its length (1 for a stray byte). */
static uint32_t hc_approve_decode(const unsigned char *p, size_t *n)
{
	unsigned char c = p[0];
	size_t need = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 :
	              (c & 0xF8) == 0xF0 ? 3 : 0;
	uint32_t cp = need == 0 ? c : need == 1 ? (c & 0x1Fu) : need == 2 ? (c & 0x0Fu) : (c & 0x07u);
	for (size_t i = 1; i <= need; i++) {
		if ((p[i] & 0xC0) != 0x80) {
			*n = 1;
			return 0xFFFD;
		}
		cp = (cp << 6) | (p[i] & 0x3Fu);
	}
	*n = need + 1;
	return cp;
}

/* Columns of one code point (East Asian Width W/F as 2; the common ranges). */
static size_t hc_approve_cp_width(uint32_t cp)
{
	if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x200B && cp <= 0x200F) ||
	    (cp >= 0xFE00 && cp <= 0xFE0F))
		return 0;
	if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0x303E) ||
	    (cp >= 0x3041 && cp <= 0x33FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
	    (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xA000 && cp <= 0xA4CF) ||
	    (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
	    (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
	    (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1F64F) ||
	    (cp >= 0x1F900 && cp <= 0x1F9FF) || (cp >= 0x20000 && cp <= 0x3FFFD))
		return 2;
	return 1;
}

size_t hc_approve_display_width(const char *s)
{
	size_t w = 0, n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p += n)
		w += hc_approve_cp_width(hc_approve_decode(p, &n));
	return w;
}

char *hc_approve_fit(const char *s, size_t max_cols, char *buf, size_t len)
{
	size_t total = hc_approve_display_width(s);
	bool cut = max_cols > 3 && total > max_cols;
	size_t room = cut ? max_cols - 3 : (size_t)-1;
	size_t out = 0, cols = 0, n = 0;
	const unsigned char *p = (const unsigned char *)s;
	for (; *p != '\0'; p += n) {
		uint32_t cp = hc_approve_decode(p, &n);
		size_t w = hc_approve_cp_width(cp);
		if (cols + w > room || out + n + 4 >= len) {
			cut = true;
			break;
		}
		if (n == 1 && (*p < 0x20 || *p == 0x7F))
			buf[out++] = ' ';
		else {
			memcpy(buf + out, p, n);
			out += n;
		}
		cols += w;
	}
	if (cut && *p != '\0' && out + 3 < len) {
		memcpy(buf + out, "...", 3);
		out += 3;
	}
	buf[out] = '\0';
	return buf;
}

/* ------------------------------------------------------------------ */
/* arguments                                                           */
/* ------------------------------------------------------------------ */

int hc_approve_parse_held_args(int argc, char **argv, hc_approve_held_args_t *a, char *err,
                               size_t errlen)
{
	static const hc_opt_t spec[] = {
		{"department", true}, {"class", true}, {"older-than", true}, {"json", false}};
	const char *v[4];
	size_t npos = 0;
	memset(a, 0, sizeof(*a));
	a->older_than_s = -1;
	if (hc_cli_parse_opts(argc, argv, spec, 4, v, NULL, 0, &npos, err, errlen) != 0)
		return HC_EXIT_USAGE;
	if (v[0] != NULL && v[0][0] == '\0') {
		snprintf(err, errlen, "--department needs a department name");
		return HC_EXIT_USAGE;
	}
	a->department = v[0];
	if (v[1] != NULL) {
		if (strcmp(v[1], "important") != 0 && strcmp(v[1], "bulk") != 0) {
			snprintf(err, errlen, "--class must be important or bulk, not '%.32s'", v[1]);
			return HC_EXIT_USAGE;
		}
		a->klass = v[1];
	}
	if (v[2] != NULL) {
		char why[256];
		if (hc_approve_parse_duration(v[2], &a->older_than_s, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "--older-than: %s", why);
			return HC_EXIT_USAGE;
		}
	}
	a->json = v[3] != NULL;
	return 0;
}

static bool hc_approve_is_blank(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

int hc_approve_parse_decide_args(hc_approve_verb_t verb, int argc, char **argv,
                                 hc_approve_decide_args_t *a, char *err, size_t errlen)
{
	static const hc_opt_t show_spec[] = {{"json", false}, {"key-file", true}};
	static const hc_opt_t approve_spec[] = {{"json", false}, {"comment", true}};
	static const hc_opt_t reject_spec[] = {{"json", false}, {"reason", true}};
	const hc_opt_t *spec = verb == HC_APPROVE_SHOW ? show_spec
	                     : verb == HC_APPROVE_APPROVE ? approve_spec : reject_spec;
	size_t nspec = 2;
	const char *v[2] = {NULL, NULL};
	char *pos[2];
	size_t npos = 0;
	memset(a, 0, sizeof(*a));
	if (hc_cli_parse_opts(argc, argv, spec, nspec, v, pos, 2, &npos, err, errlen) != 0)
		return HC_EXIT_USAGE;
	if (npos != 1) {
		snprintf(err, errlen, npos == 0 ? "which message? give its id" : "give one message id");
		return HC_EXIT_USAGE;
	}
	char *end = NULL;
	errno = 0;
	long long id = strtoll(pos[0], &end, 10);
	if (!isdigit((unsigned char)pos[0][0]) || *end != '\0' || id <= 0 || errno != 0) {
		snprintf(err, errlen, "'%.32s' is not a message id (a positive number)", pos[0]);
		return HC_EXIT_USAGE;
	}
	a->message_id = id;
	a->json = v[0] != NULL;
	a->comment = verb != HC_APPROVE_SHOW ? v[1] : NULL;
	a->key_file = verb == HC_APPROVE_SHOW ? v[1] : NULL;
	if (a->key_file != NULL && a->key_file[0] == '\0') {
		snprintf(err, errlen, "--key-file needs a file name ([ID:]PATH)");
		return HC_EXIT_USAGE;
	}
	if (verb == HC_APPROVE_REJECT && (a->comment == NULL || hc_approve_is_blank(a->comment))) {
		snprintf(err, errlen, "a rejection needs a reason: --reason TEXT");
		return HC_EXIT_USAGE;
	}
	if (a->comment != NULL && strlen(a->comment) > HC_APPROVE_MAX_TEXT_BYTES) {
		snprintf(err, errlen, "--%s is longer than %d bytes",
		         verb == HC_APPROVE_REJECT ? "reason" : "comment", HC_APPROVE_MAX_TEXT_BYTES);
		return HC_EXIT_USAGE;
	}
	if (verb == HC_APPROVE_APPROVE && a->comment != NULL && hc_approve_is_blank(a->comment))
		a->comment = NULL;
	return 0;
}

/* ------------------------------------------------------------------ */
/* held                                                                */
/* ------------------------------------------------------------------ */

#define HC_HELD_NCOLS 7

/* One cell padded to width columns (left or right aligned); the last cell is not padded. */
static void hc_approve_cell(FILE *out, const char *s, size_t width, bool right, bool last)
{
	size_t w = hc_approve_display_width(s);
	size_t pad = width > w ? width - w : 0;
	if (right)
		fprintf(out, "%*s", (int)pad, "");
	fputs(s, out);
	if (!right && !last)
		fprintf(out, "%*s", (int)pad, "");
}

void hc_approve_print_held(FILE *out, const hc_approve_held_row_t *rows, size_t n)
{
	static const char *const head[HC_HELD_NCOLS] = {"ID",   "CLASS", "FROM", "DEPT",
	                                                "SUBJECT", "LEVEL", "DUE"};
	static const size_t max_cols[HC_HELD_NCOLS] = {0, 0, 32, 20, HC_APPROVE_SUBJECT_COLS, 0, 0};
	static const bool right[HC_HELD_NCOLS] = {true, false, false, false, false, false, false};
	char **cells = hd_calloc((n + 1) * HC_HELD_NCOLS, sizeof(char *));
	size_t width[HC_HELD_NCOLS];
	for (size_t c = 0; c < HC_HELD_NCOLS; c++) {
		cells[c] = hd_strdup(head[c]);
		width[c] = hc_approve_display_width(head[c]);
	}
	for (size_t r = 0; r < n; r++) {
		const hc_approve_held_row_t *h = &rows[r];
		char id[32], level[64], due[64];
		snprintf(id, sizeof(id), "%" PRId64, h->message_id);
		snprintf(level, sizeof(level), "%d %s", h->level, h->kind ? h->kind : "");
		hc_approve_fmt_due(h->due_in_s, due, sizeof(due));
		const char *raw[HC_HELD_NCOLS] = {id, h->klass, h->sender, h->department,
		                                  h->subject, level, due};
		for (size_t c = 0; c < HC_HELD_NCOLS; c++) {
			char buf[1024];
			const char *v = raw[c] && raw[c][0] ? raw[c] : "-";
			char *cell = hd_strdup(hc_approve_fit(v, max_cols[c], buf, sizeof(buf)));
			cells[(r + 1) * HC_HELD_NCOLS + c] = cell;
			size_t w = hc_approve_display_width(cell);
			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t r = 0; r <= n; r++) {
		for (size_t c = 0; c < HC_HELD_NCOLS; c++) {
			if (c > 0)
				fputs("  ", out);
			hc_approve_cell(out, cells[r * HC_HELD_NCOLS + c], width[c], right[c],
			                c == HC_HELD_NCOLS - 1);
		}
		fputc('\n', out);
	}
	for (size_t i = 0; i < (n + 1) * HC_HELD_NCOLS; i++)
		hd_free(&cells[i]);
	hd_free(&cells);
}

/* floor() without libm. */
static json_int_t hc_approve_floor(double x)
{
	json_int_t i = (json_int_t)x;
	return (double)i > x ? i - 1 : i;
}

static const char *hc_approve_cellv(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static json_t *hc_approve_jstr(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

int hc_approve_cmd_held(hc_ctx_t *ctx, int argc, char **argv)
{
	char err[1024];
	hc_approve_held_args_t a;
	if (hc_approve_parse_held_args(argc, argv, &a, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: held: %s\n", err);
		return HC_EXIT_USAGE;
	}
	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	char older[48];
	snprintf(older, sizeof(older), "%" PRId64 " seconds", a.older_than_s);
	const char *params[3] = {a.department, a.klass, a.older_than_s >= 0 ? older : NULL};
	PGresult *res = NULL;
	exit_code = hc_approve_call(
		ctx, db, "held",
		"SELECT message_id, class, channel, sender, department, subject, recipients, kind,"
		" level, to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		" extract(epoch FROM due_at - now())::float8,"
		" to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
		" FROM herald.held_for_me($1::text, $2::text, $3::interval)"
		" ORDER BY due_at, message_id, kind, level",
		3, params, &res);
	hc_db_close(&db);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	int n = PQntuples(res);
	if (a.json) {
		json_t *root = json_object(), *arr = json_array();
		for (int i = 0; i < n; i++) {
			json_t *o = json_object();
			json_object_set_new(o, "message_id",
			                    json_integer(strtoll(PQgetvalue(res, i, 0), NULL, 10)));
			json_object_set_new(o, "class", hc_approve_jstr(hc_approve_cellv(res, i, 1)));
			json_object_set_new(o, "channel", hc_approve_jstr(hc_approve_cellv(res, i, 2)));
			json_object_set_new(o, "sender", hc_approve_jstr(hc_approve_cellv(res, i, 3)));
			json_object_set_new(o, "department", hc_approve_jstr(hc_approve_cellv(res, i, 4)));
			json_object_set_new(o, "subject", hc_approve_jstr(hc_approve_cellv(res, i, 5)));
			json_object_set_new(o, "recipients",
			                    json_integer(strtoll(PQgetvalue(res, i, 6), NULL, 10)));
			json_object_set_new(o, "kind", hc_approve_jstr(hc_approve_cellv(res, i, 7)));
			json_object_set_new(o, "level", json_integer(strtoll(PQgetvalue(res, i, 8), NULL, 10)));
			json_object_set_new(o, "due_at", hc_approve_jstr(hc_approve_cellv(res, i, 9)));
			json_object_set_new(o, "due_in_s", json_integer(hc_approve_floor(
				                                   strtod(PQgetvalue(res, i, 10), NULL))));
			json_object_set_new(o, "created_at", hc_approve_jstr(hc_approve_cellv(res, i, 11)));
			json_array_append_new(arr, o);
		}
		json_object_set_new(root, "count", json_integer(n));
		json_object_set_new(root, "held", arr);
		json_dumpf(root, ctx->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', ctx->out);
		json_decref(root);
	} else if (n == 0) {
		fprintf(ctx->out, "nothing awaits your approval\n");
	} else {
		hc_approve_held_row_t *rows = hd_calloc((size_t)n, sizeof(*rows));
		for (int i = 0; i < n; i++) {
			rows[i].message_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
			rows[i].klass = hc_approve_cellv(res, i, 1);
			rows[i].sender = hc_approve_cellv(res, i, 3);
			rows[i].department = hc_approve_cellv(res, i, 4);
			rows[i].subject = hc_approve_cellv(res, i, 5);
			rows[i].kind = hc_approve_cellv(res, i, 7);
			rows[i].level = (int)strtol(PQgetvalue(res, i, 8), NULL, 10);
			rows[i].due_in_s = strtod(PQgetvalue(res, i, 10), NULL);
		}
		hc_approve_print_held(ctx->out, rows, (size_t)n);
		fprintf(ctx->out, "%d request%s await%s you; 'heraldctl show ID' for the details\n", n,
		        n == 1 ? "" : "s", n == 1 ? "s" : "");
		hd_free(&rows);
	}
	PQclear(res);
	return HC_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* show                                                                */
/* ------------------------------------------------------------------ */

/* The first of keys that obj has (NULL-safe); NULL when none. */
static json_t *hc_approve_get(const json_t *obj, const char *const *keys)
{
	if (!json_is_object(obj))
		return NULL;
	for (; *keys != NULL; keys++) {
		json_t *v = json_object_get(obj, *keys);
		if (v != NULL && !json_is_null(v))
			return v;
	}
	return NULL;
}

#define HC_GET(obj, ...) hc_approve_get((obj), (const char *const[]){__VA_ARGS__, NULL})

/* A JSON scalar as text into buf; "" for absent/null. */
static const char *hc_approve_text(const json_t *v, char *buf, size_t len)
{
	if (v == NULL || json_is_null(v))
		snprintf(buf, len, "%s", "");
	else if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, len, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, len, "%s", json_is_true(v) ? "yes" : "no");
	else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(buf, len, "%s", s ? s : "");
		free(s);
	}
	return buf;
}

static void hc_approve_line(FILE *out, const char *label, const json_t *v)
{
	char buf[2048];
	hc_approve_text(v, buf, sizeof(buf));
	if (buf[0] != '\0')
		fprintf(out, "%-12s %s\n", label, buf);
}

/* " (in 5h)" for an ISO time when now_s is known; "" otherwise. */
static void hc_approve_relative(const char *iso, double now_s, char *buf, size_t len)
{
	int64_t ms = 0;
	char why[128], due[64];
	buf[0] = '\0';
	if (iso == NULL || iso[0] == '\0' || now_s <= 0 ||
	    hc_fmt_parse_time(iso, (int64_t)(now_s * 1000), &ms, why, sizeof(why)) != 0)
		return;
	snprintf(buf, len, " (%s)", hc_approve_fmt_due((double)ms / 1000.0 - now_s, due, sizeof(due)));
}

static void hc_approve_print_chain(FILE *out, const json_t *chain, double now_s)
{
	fprintf(out, "\napproval chain\n");
	if (!json_is_array(chain) || json_array_size(chain) == 0) {
		fprintf(out, "  (no approval needed)\n");
		return;
	}
	size_t i;
	json_t *r;
	json_array_foreach(chain, i, r) {
		char kind[64], level[16], role[64], state[32], by[256], at[64], due[64], comment[2048],
			rel[80];
		hc_approve_text(HC_GET(r, "kind"), kind, sizeof(kind));
		hc_approve_text(HC_GET(r, "level"), level, sizeof(level));
		hc_approve_text(HC_GET(r, "approver_role"), role, sizeof(role));
		hc_approve_text(HC_GET(r, "state"), state, sizeof(state));
		hc_approve_text(HC_GET(r, "decided_by"), by, sizeof(by));
		hc_approve_text(HC_GET(r, "decided_at"), at, sizeof(at));
		hc_approve_text(HC_GET(r, "due_at"), due, sizeof(due));
		hc_approve_text(HC_GET(r, "comment"), comment, sizeof(comment));
		const char *who = strcmp(role, "senior") == 0 ? "senior leadership" : NULL;
		char whobuf[320], escalated[256];
		hc_approve_text(HC_GET(r, "escalated"), escalated, sizeof(escalated));
		if (who != NULL && escalated[0] != '\0') {
			/* 009: a level-1 request its department could not decide. */
			snprintf(whobuf, sizeof(whobuf), "senior leadership (escalated: %s)", escalated);
			who = whobuf;
		}
		if (who == NULL) {
			char dept[128];
			hc_approve_text(HC_GET(r, "department"), dept, sizeof(dept));
			snprintf(whobuf, sizeof(whobuf), "head of %s", dept[0] ? dept : "the department");
			who = whobuf;
		}
		fprintf(out, "  level %s %-9s %-9s %s", level, kind, state, who);
		if (by[0] != '\0')
			fprintf(out, "; by %s at %s", by, at[0] ? at : "?");
		if (strcmp(state, "pending") == 0 && due[0] != '\0') {
			hc_approve_relative(due, now_s, rel, sizeof(rel));
			fprintf(out, "; due %s%s", due, rel);
		}
		fputc('\n', out);
		if (comment[0] != '\0')
			fprintf(out, "      \"%s\"\n", comment);
	}
}

static void hc_approve_print_deliveries(FILE *out, const json_t *d)
{
	fprintf(out, "\ndeliveries\n");
	if (json_is_object(d)) {
		const char *k;
		json_t *v;
		if (json_object_size(d) == 0)
			fprintf(out, "  none\n");
		json_object_foreach((json_t *)d, k, v) {
			char buf[64];
			fprintf(out, "  %-22s %s\n", k, hc_approve_text(v, buf, sizeof(buf)));
		}
	} else if (json_is_array(d)) {
		size_t i;
		json_t *v;
		if (json_array_size(d) == 0)
			fprintf(out, "  none\n");
		json_array_foreach(d, i, v) {
			char st[64], n[64];
			hc_approve_text(HC_GET(v, "state"), st, sizeof(st));
			hc_approve_text(HC_GET(v, "count", "n"), n, sizeof(n));
			fprintf(out, "  %-22s %s\n", st, n);
		}
	} else {
		fprintf(out, "  none\n");
	}
}

static bool hc_approve_is_true(const json_t *v)
{
	return json_is_true(v);
}

/* flags of the message include "confidential". */
static bool hc_approve_is_confidential(const json_t *m)
{
	const json_t *flags = HC_GET(m, "flags");
	size_t i;
	json_t *f;
	json_array_foreach(flags, i, f)
		if (json_is_string(f) && strcmp(json_string_value(f), "confidential") == 0)
			return true;
	return false;
}

/* A sealed part of a confidential message: what to print instead of it. */
static const char *hc_approve_sealed_note(const json_t *m, char *buf, size_t len)
{
	const json_t *sealed = HC_GET(m, "sealed");
	const char *reason = json_string_value(HC_GET(sealed, "reason"));
	if (reason != NULL && strncmp(reason, "unknown key id", 14) != 0)
		snprintf(buf, len, "[confidential: sealed, cannot open: %s]", reason);
	else
		snprintf(buf, len, "[confidential: sealed, no key]");
	return buf;
}

/*
 * The body: redacted by the database for this caller, sealed without a
 * key, or the text itself (opened by hc_approve_open_detail when the
 * caller holds the key). Sealed text is never printed.
 */
static void hc_approve_print_body(FILE *out, const json_t *detail, const json_t *m)
{
	char note[256];
	bool confidential = hc_approve_is_confidential(m);
	if (hc_approve_is_true(HC_GET(m, "redacted")) || hc_approve_is_true(HC_GET(detail, "redacted"))) {
		fprintf(out, "\n[confidential: redacted]\n");
		return;
	}
	const json_t *sealed = HC_GET(m, "sealed");
	if (json_is_object(sealed) && hc_approve_is_true(HC_GET(sealed, "opened"))) {
		char id[64];
		hc_approve_text(HC_GET(sealed, "key_id"), id, sizeof(id));
		fprintf(out, "%-12s sealed with key %s; opened with your key\n", "at rest", id);
	}
	const char *body = json_string_value(HC_GET(m, "body"));
	const char *html = json_string_value(HC_GET(m, "html"));
	if (body != NULL) {
		fprintf(out, "\n%s\n", confidential && hd_seal_is_sealed(body)
		                              ? hc_approve_sealed_note(m, note, sizeof(note)) : body);
	} else if (html != NULL) {
		if (confidential && hd_seal_is_sealed(html))
			fprintf(out, "\n(HTML body only) %s\n", hc_approve_sealed_note(m, note, sizeof(note)));
		else
			fprintf(out, "\n(HTML body only, %zu bytes)\n", strlen(html));
	}
}

/*
 * One finding or violation from the keys present:
 * "E3 rule (action, severity): reason [field] at TIME", then any other
 * key as key=value (the violation's row id is left out).
 */
static void hc_approve_print_finding(FILE *out, const json_t *f)
{
	char buf[1024];
	if (!json_is_object(f)) {
		fprintf(out, "  %s\n", hc_approve_text(f, buf, sizeof(buf)));
		return;
	}
	char clause[64], rule[256], action[64], severity[64], reason[1100];
	hc_approve_text(HC_GET(f, "clause"), clause, sizeof(clause));
	hc_approve_text(HC_GET(f, "rule"), rule, sizeof(rule));
	hc_approve_text(HC_GET(f, "action"), action, sizeof(action));
	hc_approve_text(HC_GET(f, "severity"), severity, sizeof(severity));
	hc_approve_text(HC_GET(f, "reason"), reason, sizeof(reason));
	fprintf(out, "  %s%s%s", clause, clause[0] && rule[0] ? " " : "", rule);
	if (action[0] || severity[0])
		fprintf(out, " (%s%s%s)", action, action[0] && severity[0] ? ", " : "", severity);
	if (reason[0])
		fprintf(out, ": %s", reason);
	char field[128], at[64];
	hc_approve_text(HC_GET(f, "field"), field, sizeof(field));
	hc_approve_text(HC_GET(f, "at"), at, sizeof(at));
	if (field[0])
		fprintf(out, " [%s]", field);
	if (at[0])
		fprintf(out, " at %s", at);
	static const char *const known[] = {"clause", "rule", "action", "severity", "reason",
	                                    "field", "at", "id"};
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)f, k, v) {
		bool seen = false;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]) && !seen; i++)
			seen = strcmp(k, known[i]) == 0;
		if (!seen && !json_is_null(v))
			fprintf(out, " %s=%s", k, hc_approve_text(v, buf, sizeof(buf)));
	}
	fputc('\n', out);
}

/* A titled list of findings; nothing at all when absent or empty. */
static void hc_approve_print_findings(FILE *out, const char *title, const json_t *list)
{
	if (list == NULL || (json_is_array(list) && json_array_size(list) == 0) ||
	    (json_is_object(list) && json_object_size(list) == 0))
		return;
	fprintf(out, "\n%s\n", title);
	if (!json_is_array(list)) {
		hc_approve_print_finding(out, list);
		return;
	}
	size_t i;
	json_t *f;
	json_array_foreach(list, i, f)
		hc_approve_print_finding(out, f);
}

void hc_approve_print_detail(FILE *out, const json_t *detail, double now_s)
{
	const json_t *m = HC_GET(detail, "message");
	if (m == NULL)
		m = detail;
	char id[32];
	hc_approve_text(HC_GET(m, "id", "message_id"), id, sizeof(id));
	fprintf(out, "message %s\n", id);
	hc_approve_line(out, "class", HC_GET(m, "class"));
	hc_approve_line(out, "state", HC_GET(m, "state", "approval_state"));
	hc_approve_line(out, "channel", HC_GET(m, "channel"));
	char from[600], sname[256];
	hc_approve_text(HC_GET(m, "sender"), from, sizeof(from));
	hc_approve_text(HC_GET(m, "sender_name"), sname, sizeof(sname));
	if (sname[0] != '\0')
		fprintf(out, "%-12s %s <%s>\n", "from", sname, from);
	else if (from[0] != '\0')
		fprintf(out, "%-12s %s\n", "from", from);
	hc_approve_line(out, "department", HC_GET(m, "department", "sender_department"));
	hc_approve_line(out, "app", HC_GET(m, "app"));
	hc_approve_line(out, "created", HC_GET(m, "created_at"));
	const json_t *due = HC_GET(detail, "due_at");
	if (due == NULL)
		due = HC_GET(m, "due_at");
	if (json_is_string(due)) {
		char rel[80];
		hc_approve_relative(json_string_value(due), now_s, rel, sizeof(rel));
		fprintf(out, "%-12s %s%s\n", "due", json_string_value(due), rel);
	}
	/* message_detail: "recipients": {"to": [..], "cc": [..], "to_count", "cc_count"}
	 * (the lists cut at 100). */
	const json_t *rcpt = HC_GET(detail, "recipients");
	static const char *const kinds[] = {"to", "cc"};
	for (size_t k = 0; k < 2 && json_is_object(rcpt); k++) {
		const json_t *list = json_object_get(rcpt, kinds[k]);
		char countkey[16];
		snprintf(countkey, sizeof(countkey), "%s_count", kinds[k]);
		json_int_t total = json_integer_value(json_object_get(rcpt, countkey));
		if (!json_is_array(list) || json_array_size(list) == 0)
			continue;
		fprintf(out, "%-12s", kinds[k]);
		size_t i;
		json_t *v;
		json_array_foreach(list, i, v) {
			if (i == 10)
				break;
			char buf[512];
			fprintf(out, "%s%s", i ? ", " : " ", hc_approve_text(v, buf, sizeof(buf)));
		}
		if ((json_int_t)json_array_size(list) > 10 || total > (json_int_t)json_array_size(list))
			fprintf(out, " ... (%" JSON_INTEGER_FORMAT " in all)",
			        total > 0 ? total : (json_int_t)json_array_size(list));
		fputc('\n', out);
	}
	hc_approve_line(out, "cc reason", HC_GET(m, "cc_reason"));
	hc_approve_line(out, "purpose", HC_GET(m, "purpose"));
	hc_approve_line(out, "flags", HC_GET(m, "flags"));
	hc_approve_line(out, "subject", HC_GET(m, "subject"));
	hc_approve_print_body(out, detail, m);

	const json_t *att = HC_GET(detail, "attachments");
	if (att == NULL)
		att = HC_GET(m, "attachments");
	fprintf(out, "\nattachments\n");
	if (!json_is_array(att) || json_array_size(att) == 0) {
		fprintf(out, "  none\n");
	} else {
		size_t i;
		json_t *a;
		json_array_foreach(att, i, a) {
			char name[512], type[128], size[32];
			hc_approve_text(HC_GET(a, "name"), name, sizeof(name));
			hc_approve_text(HC_GET(a, "type", "mime_type"), type, sizeof(type));
			hc_approve_text(HC_GET(a, "size"), size, sizeof(size));
			fprintf(out, "  %s  %s  %s bytes\n", name, type, size);
		}
	}

	const json_t *findings = HC_GET(detail, "findings", "policy_findings");
	if (findings == NULL)
		findings = HC_GET(m, "findings");
	hc_approve_print_findings(out, "policy findings", findings);
	const json_t *violations = HC_GET(detail, "violations", "policy_violations");
	if (violations == NULL)
		violations = HC_GET(m, "violations");
	hc_approve_print_findings(out, "policy violations", violations);

	const json_t *bulk = HC_GET(detail, "bulk", "bulk_application");
	if (json_is_object(bulk)) {
		fprintf(out, "\nbulk application\n");
		char buf[2048];
		static const char *const keys[][2] = {{"purpose", "purpose"}, {"audience", "audience"},
		                                      {"recipient_count", "recipients"},
		                                      {"summary", "summary"}, {"applicant", "applicant"}};
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			hc_approve_text(json_object_get(bulk, keys[i][0]), buf, sizeof(buf));
			fprintf(out, "  %-11s %s\n", keys[i][1], buf[0] ? buf : "-");
		}
	}

	hc_approve_print_chain(out, HC_GET(detail, "approvals", "chain", "approval_chain"), now_s);
	hc_approve_print_deliveries(out, HC_GET(detail, "deliveries", "deliveries_by_state"));
}

/* The database's clock, for relative times; 0 when it cannot be read. */
static double hc_approve_db_now(hc_db_t *db)
{
	char state[6], msg[256];
	PGresult *res = NULL;
	double now = 0;
	if (hc_approve_exec(db, "SELECT extract(epoch FROM now())::float8", 0, NULL, &res, state, msg,
	                    sizeof(msg)) == 0) {
		now = strtod(PQgetvalue(res, 0, 0), NULL);
		PQclear(res);
	}
	return now;
}

/* herald.message_detail(id) parsed; NULL (message printed) on failure. */
static json_t *hc_approve_detail(hc_ctx_t *ctx, hc_db_t *db, const char *what, int64_t id,
                                 int *exit_p)
{
	char idtext[32];
	snprintf(idtext, sizeof(idtext), "%" PRId64, id);
	const char *params[1] = {idtext};
	PGresult *res = NULL;
	*exit_p = hc_approve_call(ctx, db, what, "SELECT herald.message_detail($1::bigint)", 1, params,
	                          &res);
	if (*exit_p != HC_EXIT_OK)
		return NULL;
	json_t *doc = NULL;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
		json_error_t jerr;
		doc = json_loads(PQgetvalue(res, 0, 0), JSON_DECODE_ANY, &jerr);
	}
	PQclear(res);
	if (doc == NULL) {
		fprintf(ctx->err, "heraldctl: %s: no message %s\n", what, idtext);
		*exit_p = HC_EXIT_FAIL;
	}
	return doc;
}

int hc_approve_load_keys(const char *key_file, const char *env_key_file, const char *env_keys,
                         hd_seal_t **out, char *err, size_t errlen)
{
	*out = NULL;
	bool any = (key_file && *key_file) || (env_key_file && *env_key_file) ||
	           (env_keys && *env_keys);
	if (!any)
		return 0;
	hd_seal_t *keys = hd_seal_keyring_new();
	char why[768];
	int rc = 0;
	if (key_file && *key_file &&
	    (rc = hd_seal_keyring_add_key_spec(keys, key_file, true, why, sizeof(why))) != 0)
		snprintf(err, errlen, "--key-file: %s", why);
	if (rc == 0 && env_key_file && *env_key_file &&
	    (rc = hd_seal_keyring_add_key_spec(keys, env_key_file, true, why, sizeof(why))) != 0)
		snprintf(err, errlen, "HERALD_KEY_FILE: %s", why);
	if (rc == 0 && env_keys && *env_keys) {
		char *copy = hd_strdup(env_keys), *save = NULL;
		for (char *spec = strtok_r(copy, ",", &save); spec != NULL && rc == 0;
		     spec = strtok_r(NULL, ",", &save)) {
			while (*spec == ' ')
				spec++;
			if (*spec == '\0')
				continue;
			if ((rc = hd_seal_keyring_add_key_spec(keys, spec, false, why, sizeof(why))) != 0)
				snprintf(err, errlen, "HERALD_KEYS: %s", why);
		}
		hd_free(&copy);
	}
	if (rc != 0) {
		hd_seal_keyring_destroy(&keys);
		return rc;
	}
	*out = keys;
	return 0;
}

/* Open one sealed text member of m in place; the reason in why on failure. */
static bool hc_approve_open_member(json_t *m, const char *key, const hd_seal_t *keys, char *id,
                                   char *why, size_t whylen, bool *sealed)
{
	const char *s = json_string_value(json_object_get(m, key));
	if (s == NULL || !hd_seal_is_sealed(s))
		return true;
	*sealed = true;
	if (id[0] == '\0')
		hd_seal_key_id_of((const uint8_t *)s, strlen(s), id);
	char *plain = NULL;
	size_t len = 0;
	if (hd_seal_open_text(keys, key, s, strlen(s), &plain, &len, why, whylen) != 0)
		return false;
	json_object_set_new(m, key, json_stringn(plain, len));
	sodium_memzero(plain, len);
	hd_free(&plain);
	return true;
}

void hc_approve_open_detail(json_t *detail, const hd_seal_t *keys)
{
	json_t *m = json_object_get(detail, "message");
	if (!json_is_object(m))
		m = detail;
	if (!json_is_object(m) || !hc_approve_is_confidential(m))
		return;
	char id[HD_SEAL_MAX_ID_BYTES + 1] = "", why[256] = "";
	bool sealed = false;
	bool ok = hc_approve_open_member(m, "body", keys, id, why, sizeof(why), &sealed);
	if (ok)
		ok = hc_approve_open_member(m, "html", keys, id, why, sizeof(why), &sealed);
	if (!sealed)
		return;
	json_t *info = json_object();
	json_object_set_new(info, "key_id", json_string(id));
	json_object_set_new(info, "opened", json_boolean(ok));
	if (!ok)
		json_object_set_new(info, "reason", json_string(why));
	json_object_set_new(m, "sealed", info);
}

int hc_approve_cmd_show(hc_ctx_t *ctx, int argc, char **argv)
{
	char err[1024];
	hc_approve_decide_args_t a;
	if (hc_approve_parse_decide_args(HC_APPROVE_SHOW, argc, argv, &a, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: show: %s\n", err);
		return HC_EXIT_USAGE;
	}
	hd_seal_t *keys = NULL;
	if (hc_approve_load_keys(a.key_file, getenv("HERALD_KEY_FILE"), getenv("HERALD_KEYS"), &keys,
	                         err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: show: %s\n", err);
		return HC_EXIT_FAIL;
	}
	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK) {
		hd_seal_keyring_destroy(&keys);
		return exit_code;
	}
	json_t *doc = hc_approve_detail(ctx, db, "show", a.message_id, &exit_code);
	double now = doc != NULL ? hc_approve_db_now(db) : 0;
	hc_db_close(&db);
	if (doc != NULL)
		hc_approve_open_detail(doc, keys);
	hd_seal_keyring_destroy(&keys);
	if (doc == NULL)
		return exit_code;
	if (a.json) {
		json_dumpf(doc, ctx->out, JSON_INDENT(2) | JSON_ENCODE_ANY);
		fputc('\n', ctx->out);
	} else {
		hc_approve_print_detail(ctx->out, doc, now);
	}
	json_decref(doc);
	return HC_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* approve / reject                                                    */
/* ------------------------------------------------------------------ */

/* Append to buf at *used, never past len. */
static void hc_approve_cat(char *buf, size_t len, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void hc_approve_cat(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
	if (*used >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (w > 0)
		*used = *used + (size_t)w < len ? *used + (size_t)w : len - 1;
}

/* Number of deliveries in state according to detail's deliveries section. */
static long long hc_approve_count_state(const json_t *detail, const char *state)
{
	const json_t *d = HC_GET(detail, "deliveries", "deliveries_by_state");
	if (json_is_object(d))
		return json_integer_value(json_object_get(d, state));
	size_t i;
	json_t *v;
	if (json_is_array(d))
		json_array_foreach(d, i, v)
			if (json_is_string(json_object_get(v, "state")) &&
			    strcmp(json_string_value(json_object_get(v, "state")), state) == 0)
				return json_integer_value(HC_GET(v, "count", "n"));
	return -1;
}

char *hc_approve_outcome_text(int64_t message_id, const json_t *approved, bool released,
                              const json_t *detail, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	hc_approve_cat(buf, len, &used, "message %" PRId64 ": approved", message_id);
	size_t i;
	json_t *r;
	json_int_t last_level = -1;
	json_array_foreach(approved, i, r) {
		json_int_t level = json_integer_value(json_object_get(r, "level"));
		const char *kind = json_string_value(json_object_get(r, "kind"));
		if (level != last_level)
			hc_approve_cat(buf, len, &used, "%s level %" JSON_INTEGER_FORMAT " (%s",
			               i ? ")," : "", level, kind ? kind : "?");
		else
			hc_approve_cat(buf, len, &used, ", %s", kind ? kind : "?");
		last_level = level;
	}
	if (json_array_size(approved) > 0)
		hc_approve_cat(buf, len, &used, ")");
	if (released) {
		long long q = hc_approve_count_state(detail, "queued");
		if (q >= 0)
			hc_approve_cat(buf, len, &used, "; released: %lld deliver%s queued", q,
			               q == 1 ? "y" : "ies");
		else
			hc_approve_cat(buf, len, &used, "; released");
		return buf;
	}
	/* Still pending: who is next. */
	const json_t *chain = HC_GET(detail, "approvals", "chain", "approval_chain");
	bool any = false;
	json_array_foreach(chain, i, r) {
		const char *st = json_string_value(json_object_get(r, "state"));
		if (st == NULL || strcmp(st, "pending") != 0)
			continue;
		const char *role = json_string_value(json_object_get(r, "approver_role"));
		const char *dept = json_string_value(json_object_get(r, "department"));
		const char *kind = json_string_value(json_object_get(r, "kind"));
		json_int_t level = json_integer_value(json_object_get(r, "level"));
		char who[256];
		if (role != NULL && strcmp(role, "senior") == 0)
			snprintf(who, sizeof(who), "senior leadership");
		else
			snprintf(who, sizeof(who), "the head of %s", dept ? dept : "the department");
		hc_approve_cat(buf, len, &used, "%s %s (level %" JSON_INTEGER_FORMAT " %s)",
		               any ? "," : "; waiting for", who, level, kind ? kind : "?");
		any = true;
	}
	if (!any)
		hc_approve_cat(buf, len, &used, "; still held");
	return buf;
}

/* Refusal: the database's words on stderr (and in JSON when asked); exit 1 or 4. */
static int hc_approve_refused(hc_ctx_t *ctx, const char *verb, bool json, int rc,
                              const char *state, const char *msg)
{
	if (hc_approve_is_missing(state))
		fprintf(ctx->err, "heraldctl: %s: %s (is the database migrated? run 'heraldctl db migrate')\n",
		        verb, msg);
	else
		fprintf(ctx->err, "heraldctl: %s: %s\n", verb, msg);
	if (json) {
		json_t *o = json_object();
		json_object_set_new(o, "ok", json_false());
		json_object_set_new(o, "error", json_string(msg));
		json_object_set_new(o, "sqlstate", json_string(state));
		json_dumpf(o, ctx->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', ctx->out);
		json_decref(o);
	}
	return hc_cli_exit_code(rc);
}

static int hc_approve_decide(hc_ctx_t *ctx, hc_approve_verb_t verb, int argc, char **argv)
{
	const char *name = verb == HC_APPROVE_APPROVE ? "approve" : "reject";
	char err[1024];
	hc_approve_decide_args_t a;
	if (hc_approve_parse_decide_args(verb, argc, argv, &a, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: %s: %s\n", name, err);
		return HC_EXIT_USAGE;
	}
	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	char idtext[32], state[6], msg[2048];
	snprintf(idtext, sizeof(idtext), "%" PRId64, a.message_id);
	const char *params[2] = {idtext, a.comment};
	PGresult *res = NULL;
	int rc = hc_approve_exec(db,
	                         verb == HC_APPROVE_APPROVE
	                             ? "SELECT request_id, kind, level, released"
	                               " FROM herald.approve($1::bigint, $2::text)"
	                             : "SELECT request_id FROM herald.reject($1::bigint, $2::text)",
	                         2, params, &res, state, msg, sizeof(msg));
	if (rc != 0) {
		hc_db_close(&db);
		return hc_approve_refused(ctx, name, a.json, rc, state, msg);
	}
	int n = PQntuples(res);
	json_t *rows = json_array();
	bool released = false;
	for (int i = 0; i < n; i++) {
		json_t *o = json_object();
		json_object_set_new(o, "request_id", json_integer(strtoll(PQgetvalue(res, i, 0), NULL, 10)));
		if (verb == HC_APPROVE_APPROVE) {
			json_object_set_new(o, "kind", json_string(PQgetvalue(res, i, 1)));
			json_object_set_new(o, "level", json_integer(strtoll(PQgetvalue(res, i, 2), NULL, 10)));
			if (strcmp(PQgetvalue(res, i, 3), "t") == 0)
				released = true;
		}
		json_array_append_new(rows, o);
	}
	PQclear(res);
	/* What the message looks like now (for "waiting for ..." / "3 deliveries queued"). */
	int dexit = HC_EXIT_OK;
	hc_ctx_t quiet = *ctx;
	FILE *devnull = fopen("/dev/null", "w");
	if (devnull != NULL)
		quiet.err = devnull;
	json_t *detail = hc_approve_detail(&quiet, db, name, a.message_id, &dexit);
	if (devnull != NULL)
		fclose(devnull);
	hc_db_close(&db);

	char text[2048];
	if (verb == HC_APPROVE_APPROVE) {
		hc_approve_outcome_text(a.message_id, rows, released, detail, text, sizeof(text));
	} else {
		long long r = hc_approve_count_state(detail, "rejected_by_approver");
		if (r >= 0)
			snprintf(text, sizeof(text),
			         "message %" PRId64 ": rejected (%d request%s); %lld deliver%s will not be sent;"
			         " the sender is told why",
			         a.message_id, n, n == 1 ? "" : "s", r, r == 1 ? "y" : "ies");
		else
			snprintf(text, sizeof(text), "message %" PRId64 ": rejected (%d request%s)",
			         a.message_id, n, n == 1 ? "" : "s");
	}
	if (a.json) {
		json_t *o = json_object();
		json_object_set_new(o, "ok", json_true());
		json_object_set_new(o, "message_id", json_integer(a.message_id));
		json_object_set_new(o, verb == HC_APPROVE_APPROVE ? "approved" : "rejected", rows);
		if (verb == HC_APPROVE_APPROVE)
			json_object_set_new(o, "released", json_boolean(released));
		json_object_set_new(o, "summary", json_string(text));
		json_object_set_new(o, "deliveries",
		                    json_incref(HC_GET(detail, "deliveries", "deliveries_by_state")));
		json_dumpf(o, ctx->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', ctx->out);
		json_decref(o);
	} else {
		fprintf(ctx->out, "%s\n", text);
		json_decref(rows);
	}
	json_decref(detail);
	return HC_EXIT_OK;
}

int hc_approve_cmd_approve(hc_ctx_t *ctx, int argc, char **argv)
{
	return hc_approve_decide(ctx, HC_APPROVE_APPROVE, argc, argv);
}

int hc_approve_cmd_reject(hc_ctx_t *ctx, int argc, char **argv)
{
	return hc_approve_decide(ctx, HC_APPROVE_REJECT, argc, argv);
}
