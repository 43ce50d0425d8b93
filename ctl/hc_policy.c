/*
 * NAME
 *	hc_policy - the policy registries and reports: "heraldctl group",
 *	"consent" and "violations"
 * DESCRIPTION
 *	See hc_policy.h. The argument checks repeat the database's own
 *	(sql/004_policy.sql) only so that a typo is a usage error before a
 *	connection is made; the database remains the judge.
 */
#include "hc_policy.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hc_approve.h"
#include "hc_csv.h"
#include "hc_fmt.h"
#include "hc_org.h"
#include "hc_table.h"
#include "hd_err.h"
#include "hd_mem.h"
#include "hd_num.h"
#include "hd_time.h"

#define HC_POLICY_ISO(col) \
	"to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define HC_POLICY_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"

static const char *const hc_policy_providers[] = {"slack",    "mattermost", "teams", "wecom",
                                                  "dingtalk", "feishu",     "webhook"};
#define HC_POLICY_NPROVIDERS (sizeof(hc_policy_providers) / sizeof(hc_policy_providers[0]))

/* ------------------------------------------------------------------ */
/* checks                                                              */
/* ------------------------------------------------------------------ */

bool hc_policy_is_plain_name(const char *s)
{
	if (s == NULL || !isalnum((unsigned char)s[0]))
		return false;
	size_t n = 0;
	for (const char *p = s; *p != '\0'; p++, n++) {
		unsigned char c = (unsigned char)*p;
		if (n >= HC_POLICY_MAX_NAME_BYTES || c >= 0x80 ||
		    !(isalnum(c) || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool hc_policy_is_e164(const char *s)
{
	if (s == NULL || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	size_t n = 0;
	for (const char *p = s + 1; *p != '\0'; p++, n++)
		if (*p < '0' || *p > '9')
			return false;
	return n >= 8 && n <= 15;
}

bool hc_policy_is_provider(const char *s)
{
	for (size_t i = 0; s != NULL && i < HC_POLICY_NPROVIDERS; i++)
		if (strcmp(s, hc_policy_providers[i]) == 0)
			return true;
	return false;
}

static bool hc_policy_is_blank(const char *s)
{
	if (s == NULL)
		return true;
	for (; *s != '\0'; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

/* s without leading and trailing white space, as a new string. */
static char *hc_policy_trimmed(const char *s, size_t len)
{
	while (len > 0 && isspace((unsigned char)s[0])) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	return hd_strndup(s, len);
}

int hc_policy_split_departments(const char *text, json_t **deps_p, char *err, size_t errlen)
{
	*deps_p = NULL;
	json_t *deps = json_array();
	const char *p = text != NULL ? text : "";
	bool star = false;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		char *name = hc_policy_trimmed(p, len);
		int rc = 0;
		if (name[0] == '\0') {
			snprintf(err, errlen,
			         "--departments needs department names separated by commas, or * for all");
			rc = HD_E_INVALID;
		} else if (json_array_size(deps) >= HC_POLICY_MAX_DEPARTMENTS) {
			snprintf(err, errlen, "--departments: more than %d departments",
			         HC_POLICY_MAX_DEPARTMENTS);
			rc = HD_E_INVALID;
		} else {
			size_t i;
			json_t *v;
			json_array_foreach(deps, i, v)
				if (strcmp(json_string_value(v), name) == 0) {
					snprintf(err, errlen, "--departments: %.128s is given twice", name);
					rc = HD_E_INVALID;
				}
		}
		if (rc == 0 && strcmp(name, "*") == 0)
			star = true;
		if (rc == 0)
			json_array_append_new(deps, json_string(name));
		hd_free(&name);
		if (rc != 0) {
			json_decref(deps);
			return rc;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (star && json_array_size(deps) > 1) {
		snprintf(err, errlen, "--departments: * (every department) cannot be combined with names");
		json_decref(deps);
		return HD_E_INVALID;
	}
	*deps_p = deps;
	return 0;
}

/* ------------------------------------------------------------------ */
/* argument parsing                                                    */
/* ------------------------------------------------------------------ */

void hc_policy_group_args_clear(hc_policy_group_args_t *a)
{
	if (a == NULL)
		return;
	json_decref(a->departments);
	memset(a, 0, sizeof(*a));
}

int hc_policy_parse_group_add(int argc, char **argv, hc_policy_group_args_t *a, char *err,
                              size_t errlen)
{
	static const hc_opt_t spec[] = {{"purpose", true},  {"owner", true},
	                                {"provider", true}, {"endpoint", true},
	                                {"departments", true}, {"json", false}};
	const char *v[6];
	char *pos[1];
	size_t npos = 0;
	memset(a, 0, sizeof(*a));
	if (hc_cli_parse_opts(argc, argv, spec, 6, v, pos, 1, &npos, err, errlen) != 0)
		return HC_EXIT_USAGE;
	if (npos != 1) {
		snprintf(err, errlen, "which group? (heraldctl group add NAME --purpose P --owner ADDR "
		                      "--provider P --endpoint E --departments D1,D2|*)");
		return HC_EXIT_USAGE;
	}
	a->name = pos[0];
	a->purpose = v[0];
	a->owner = v[1];
	a->provider = v[2];
	a->endpoint = v[3];
	a->json = v[5] != NULL;
	if (!hc_policy_is_plain_name(a->name)) {
		snprintf(err, errlen,
		         "group name '%.80s' must be 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter "
		         "or digit",
		         a->name);
		return HC_EXIT_USAGE;
	}
	static const char *const required[] = {"--purpose", "--owner", "--provider", "--endpoint",
	                                       "--departments"};
	for (size_t i = 0; i < 5; i++)
		if (hc_policy_is_blank(v[i])) {
			snprintf(err, errlen, "%s is required", required[i]);
			return HC_EXIT_USAGE;
		}
	if (strchr(a->owner, '@') == NULL) {
		snprintf(err, errlen, "--owner must be a staff address, not '%.80s'", a->owner);
		return HC_EXIT_USAGE;
	}
	if (!hc_policy_is_provider(a->provider)) {
		snprintf(err, errlen,
		         "--provider must be slack, mattermost, teams, wecom, dingtalk, feishu or "
		         "webhook, not '%.32s'",
		         a->provider);
		return HC_EXIT_USAGE;
	}
	if (!hc_policy_is_plain_name(a->endpoint)) {
		snprintf(err, errlen,
		         "--endpoint names the worker's endpoint entry (1 to 64 of A-Z a-z 0-9 . _ -); "
		         "the URL and its secret belong in herald-worker.conf, never in the database");
		return HC_EXIT_USAGE;
	}
	char why[256];
	if (hc_policy_split_departments(v[4], &a->departments, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s", why);
		return HC_EXIT_USAGE;
	}
	return 0;
}

int hc_policy_parse_consent_args(int argc, char **argv, hc_policy_consent_args_t *a, char *err,
                                 size_t errlen)
{
	static const hc_opt_t spec[] = {{"source", true}, {"json", false}};
	const char *v[2];
	char *pos[1];
	size_t npos = 0;
	memset(a, 0, sizeof(*a));
	if (hc_cli_parse_opts(argc, argv, spec, 2, v, pos, 1, &npos, err, errlen) != 0)
		return HC_EXIT_USAGE;
	if (npos != 1) {
		snprintf(err, errlen, "which number? give one, in E.164 form (+8613800138000)");
		return HC_EXIT_USAGE;
	}
	a->number = pos[0];
	a->source = v[0];
	a->json = v[1] != NULL;
	if (!hc_policy_is_e164(a->number)) {
		snprintf(err, errlen,
		         "'%.40s' is not an E.164 number (+ then 8 to 15 digits, the first not 0, no "
		         "spaces)",
		         a->number);
		return HC_EXIT_USAGE;
	}
	if (hc_policy_is_blank(a->source)) {
		snprintf(err, errlen, "--source is required: where the consent or opt-out came from");
		return HC_EXIT_USAGE;
	}
	return 0;
}

int hc_policy_parse_violations_args(int argc, char **argv, int64_t now_ms,
                                    hc_policy_violations_args_t *a, char *err, size_t errlen)
{
	static const hc_opt_t spec[] = {{"since", true},      {"until", true}, {"sender", true},
	                                {"department", true}, {"by", true},    {"limit", true},
	                                {"json", false}};
	const char *v[7];
	size_t npos = 0;
	memset(a, 0, sizeof(*a));
	a->limit = HC_POLICY_DEFAULT_LIMIT;
	if (hc_cli_parse_opts(argc, argv, spec, 7, v, NULL, 0, &npos, err, errlen) != 0)
		return HC_EXIT_USAGE;
	static const char *const names[] = {"--since", "--until"};
	int64_t *dst[] = {&a->since_ms, &a->until_ms};
	for (size_t i = 0; i < 2; i++) {
		if (v[i] == NULL)
			continue;
		char why[256];
		if (hc_fmt_parse_time(v[i], now_ms, dst[i], why, sizeof(why)) != 0) {
			snprintf(err, errlen, "%s: %s", names[i], why);
			return HC_EXIT_USAGE;
		}
	}
	if (v[0] != NULL && v[1] != NULL && a->since_ms >= a->until_ms) {
		snprintf(err, errlen, "--since must be before --until");
		return HC_EXIT_USAGE;
	}
	if (v[2] != NULL && hc_policy_is_blank(v[2])) {
		snprintf(err, errlen, "--sender needs an address");
		return HC_EXIT_USAGE;
	}
	if (v[3] != NULL && hc_policy_is_blank(v[3])) {
		snprintf(err, errlen, "--department needs a name");
		return HC_EXIT_USAGE;
	}
	a->sender = v[2];
	a->department = v[3];
	if (v[4] != NULL) {
		if (strcmp(v[4], "sender") == 0) {
			a->by = HC_POLICY_BY_SENDER;
		} else if (strcmp(v[4], "department") == 0) {
			a->by = HC_POLICY_BY_DEPARTMENT;
		} else {
			snprintf(err, errlen, "--by must be sender or department, not '%.32s'", v[4]);
			return HC_EXIT_USAGE;
		}
		if (v[2] != NULL || v[3] != NULL || v[5] != NULL) {
			snprintf(err, errlen,
			         "--by counts every sender or department: it does not go with --sender, "
			         "--department or --limit");
			return HC_EXIT_USAGE;
		}
	}
	if (v[5] != NULL) {
		long n;
		if (!hd_num_parse_long(v[5], 1, HC_POLICY_MAX_LIMIT, &n)) {
			snprintf(err, errlen, "--limit must be a number from 1 to %d, not '%.32s'",
			         HC_POLICY_MAX_LIMIT, v[5]);
			return HC_EXIT_USAGE;
		}
		a->limit = n;
	}
	a->json = v[6] != NULL;
	return 0;
}

/* ------------------------------------------------------------------ */
/* consent CSV                                                         */
/* ------------------------------------------------------------------ */

enum { HC_POLICY_COL_NUMBER, HC_POLICY_COL_SOURCE, HC_POLICY_COL_GRANTED_AT, HC_POLICY_NCOLS };
static const char *const hc_policy_csv_cols[HC_POLICY_NCOLS] = {"number", "source", "granted_at"};
#define HC_POLICY_CSV_MAX_FIELDS 8

typedef struct hc_policy_csv {
	const char *name;  /* for messages; borrowed */
	char *err;
	size_t errlen;
} hc_policy_csv_t;

static int hc_policy_csv_fail(hc_policy_csv_t *c, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int hc_policy_csv_fail(hc_policy_csv_t *c, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(c->err, c->errlen, "%s:%d: %s", c->name, line, msg);
	else
		snprintf(c->err, c->errlen, "%s: %s", c->name, msg);
	return HD_E_INVALID;
}

/* Field col of a record of n fields; "" when col is -1 (no such column) or past the end. */
static const char *hc_policy_field(const char *const *f, size_t n, int col)
{
	return col >= 0 && col < (int)n ? f[col] : "";
}

/* An ISO 8601 time (not an age) as "YYYY-MM-DDTHH:MM:SS.mmmZ" in out. */
static bool hc_policy_iso_time(const char *text, char *out, size_t outlen)
{
	for (int i = 0; i < 4; i++)
		if (!isdigit((unsigned char)text[i]))
			return false;
	if (text[4] != '-')
		return false;
	int64_t ms = 0;
	char why[256];
	if (hc_fmt_parse_time(text, 0, &ms, why, sizeof(why)) != 0)
		return false;
	hc_fmt_iso_ms(ms, out, outlen);
	return true;
}

int hc_policy_parse_consent_csv(const char *name, const char *text, size_t len, json_t **doc_p,
                                char *err, size_t errlen)
{
	*doc_p = NULL;
	hc_policy_csv_t c = {.name = name, .err = err, .errlen = errlen};
	if (len > HC_ORG_MAX_FILE_BYTES) {
		hc_policy_csv_fail(&c, 0, "larger than %u bytes", HC_ORG_MAX_FILE_BYTES);
		return HD_E_TOOBIG;
	}
	hc_csv_t *csv = hc_csv_new(text, len, HC_POLICY_CSV_MAX_FIELDS, HC_POLICY_MAX_FIELD_BYTES);
	/* Without a header: number,source[,granted_at]. */
	int col[HC_POLICY_NCOLS] = {0, 1, 2};
	json_t *doc = json_array();
	const char *const *f = NULL;
	size_t n = 0, bad_field = 0, bad_name = 0;
	int line = 0, rc;
	bool first = true;
	for (;;) {
		rc = hc_csv_next(csv, &f, &n, &line);
		if (rc < 0)
			hc_policy_csv_fail(&c, line, "%s", hc_csv_error(csv));
		if (rc != 1)
			break;
		if (first && n > 0 && f[0][0] != '+' && !isdigit((unsigned char)f[0][0])) {
			/* The header line: it names the columns, in any order. */
			int cr = hc_csv_columns(f, n, hc_policy_csv_cols, HC_POLICY_NCOLS, col, &bad_field,
			                        &bad_name);
			if (cr == HD_E_NOTFOUND)
				rc = hc_policy_csv_fail(&c, line,
				                        "unknown column '%.64s' (columns are number, "
				                        "source, granted_at)",
				                        f[bad_field]);
			else if (cr != 0)
				rc = hc_policy_csv_fail(&c, line, "column '%s' is named twice",
				                        hc_policy_csv_cols[bad_name]);
			else if (col[HC_POLICY_COL_NUMBER] < 0 || col[HC_POLICY_COL_SOURCE] < 0)
				rc = hc_policy_csv_fail(&c, line,
				                        "the header needs the columns number and source");
			first = false;
			if (rc != 1)
				break;
			continue;
		}
		first = false;
		const char *number = hc_policy_field(f, n, col[HC_POLICY_COL_NUMBER]);
		const char *source = hc_policy_field(f, n, col[HC_POLICY_COL_SOURCE]);
		const char *at = hc_policy_field(f, n, col[HC_POLICY_COL_GRANTED_AT]);
		size_t used = 0;
		for (size_t k = 0; k < HC_POLICY_NCOLS; k++)
			if (col[k] >= 0 && col[k] < (int)n)
				used++;
		char iso[40];
		if (n > used && !(n == used + 1 && f[n - 1][0] == '\0'))
			rc = hc_policy_csv_fail(&c, line, "%zu fields, expected number,source[,granted_at]",
			                        n);
		else if (!hc_policy_is_e164(number))
			rc = hc_policy_csv_fail(&c, line,
			                        "'%.40s' is not an E.164 number (+ then 8 to 15 digits, "
			                        "the first not 0, no spaces)",
			                        number);
		else if (source[0] == '\0')
			rc = hc_policy_csv_fail(&c, line, "%s has no source", number);
		else if (at[0] != '\0' && !hc_policy_iso_time(at, iso, sizeof(iso)))
			rc = hc_policy_csv_fail(&c, line,
			                        "granted_at '%.40s' is not an ISO 8601 time "
			                        "(2024-07-01T12:00:00Z)",
			                        at);
		else if (json_array_size(doc) >= HC_POLICY_MAX_CONSENTS) {
			hc_policy_csv_fail(&c, line, "more than %d numbers", HC_POLICY_MAX_CONSENTS);
			rc = HD_E_TOOBIG;
		} else {
			json_t *o = json_object();
			json_object_set_new(o, "number", json_string(number));
			json_object_set_new(o, "source", json_string(source));
			json_object_set_new(o, "granted_at", at[0] != '\0' ? json_string(iso) : json_null());
			json_array_append_new(doc, o);
		}
		if (rc != 1)
			break;
	}
	hc_csv_destroy(&csv);
	if (rc == 0 && json_array_size(doc) == 0)
		rc = hc_policy_csv_fail(&c, 0, "no numbers: nothing to import");
	if (rc != 0) {
		json_decref(doc);
		return rc;
	}
	*doc_p = doc;
	return 0;
}

/* ------------------------------------------------------------------ */
/* printing                                                            */
/* ------------------------------------------------------------------ */

void hc_policy_print_groups(FILE *out, const hc_policy_group_row_t *rows, size_t n)
{
	if (n == 0) {
		fprintf(out, "no work groups registered (heraldctl group add NAME ...)\n");
		return;
	}
	static const hc_table_col_t cols[] = {
		{"NAME", false, 0},     {"PURPOSE", false, 40},     {"OWNER", false, 40},
		{"PROVIDER", false, 0}, {"ENDPOINT", false, 0},     {"DEPARTMENTS", false, 48},
		{"STATE", false, 0}};
	hc_table_t *t = hc_table_new(cols, 7);
	size_t removed = 0;
	for (size_t i = 0; i < n; i++) {
		const hc_policy_group_row_t *r = &rows[i];
		const char *dep = r->departments != NULL && strcmp(r->departments, "*") == 0
		                      ? "* (every department)"
		                      : r->departments;
		const char *cells[] = {r->name,     r->purpose, r->owner,
		                       r->provider, r->endpoint, dep,
		                       r->active ? "active" : "removed"};
		hc_table_add(t, cells);
		if (!r->active)
			removed++;
	}
	hc_table_print(t, out, 0);
	hc_table_destroy(&t);
	fprintf(out, "%zu work group%s", n - removed, n - removed == 1 ? "" : "s");
	if (removed > 0)
		fprintf(out, ", %zu removed", removed);
	fputc('\n', out);
}

void hc_policy_print_violations(FILE *out, const hc_policy_violation_row_t *rows, size_t n,
                                long long total)
{
	if (n == 0) {
		fprintf(out, "no violations\n");
		return;
	}
	static const hc_table_col_t cols[] = {
		{"AT (UTC)", false, 0},  {"SENDER", false, 40},  {"DEPARTMENT", false, 24},
		{"CLAUSE", false, 0},    {"SEVERITY", false, 0}, {"ACTION", false, 0},
		{"RULE", false, 32},     {"MESSAGE", true, 0},   {"FIELD", false, 24},
		{"REASON", false, 80}};
	hc_table_t *t = hc_table_new(cols, 10);
	for (size_t i = 0; i < n; i++) {
		const hc_policy_violation_row_t *r = &rows[i];
		const char *cells[] = {r->at,     r->sender, r->department, r->clause,
		                       r->severity, r->action, r->rule,      r->message_id,
		                       r->field,  r->reason};
		hc_table_add(t, cells);
	}
	hc_table_print(t, out, 0);
	hc_table_destroy(&t);
	if ((long long)n < total)
		fprintf(out, "%zu of %lld violations shown (newest first; see --limit)\n", n, total);
	else
		fprintf(out, "%zu violation%s\n", n, n == 1 ? "" : "s");
}

void hc_policy_print_report(FILE *out, hc_policy_by_t by, const hc_policy_report_row_t *rows,
                            size_t n)
{
	if (n == 0) {
		fprintf(out, "no violations\n");
		return;
	}
	bool per_sender = by == HC_POLICY_BY_SENDER;
	static const hc_table_col_t sender_cols[] = {
		{"SENDER", false, 48},  {"DEPARTMENT", false, 32}, {"TOTAL", true, 0},
		{"CRITICAL", true, 0},  {"MAJOR", true, 0},        {"MINOR", true, 0},
		{"INFO", true, 0},      {"LAST (UTC)", false, 0}};
	static const hc_table_col_t dept_cols[] = {
		{"DEPARTMENT", false, 32}, {"TOTAL", true, 0}, {"CRITICAL", true, 0},
		{"MAJOR", true, 0},        {"MINOR", true, 0}, {"INFO", true, 0},
		{"LAST (UTC)", false, 0}};
	hc_table_t *t = per_sender ? hc_table_new(sender_cols, 8) : hc_table_new(dept_cols, 7);
	long long sum = 0;
	for (size_t i = 0; i < n; i++) {
		const hc_policy_report_row_t *r = &rows[i];
		char num[5][32];
		const long long v[5] = {r->count, r->critical, r->major, r->minor, r->info};
		for (size_t k = 0; k < 5; k++)
			snprintf(num[k], sizeof(num[k]), "%lld", v[k]);
		sum += r->count;
		const char *key = r->key != NULL ? r->key : "(no department)";
		if (per_sender) {
			const char *cells[] = {key,    r->department, num[0], num[1],
			                       num[2], num[3],        num[4], r->last_at};
			hc_table_add(t, cells);
		} else {
			const char *cells[] = {key, num[0], num[1], num[2], num[3], num[4], r->last_at};
			hc_table_add(t, cells);
		}
	}
	hc_table_print(t, out, 0);
	hc_table_destroy(&t);
	fprintf(out, "%lld violation%s, %zu %s%s\n", sum, sum == 1 ? "" : "s", n,
	        per_sender ? "sender" : "department",
	        n == 1 ? "" : "s");
}

/* ------------------------------------------------------------------ */
/* commands                                                            */
/* ------------------------------------------------------------------ */

static const char *hc_policy_cell(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static json_t *hc_policy_jstr(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static long long hc_policy_ll(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* A JSON value the database printed (an array, an object); null when it does not parse. */
static json_t *hc_policy_jparse(const char *text)
{
	if (text == NULL)
		return json_null();
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
	return v != NULL ? v : json_null();
}

static void hc_policy_dump(FILE *out, json_t *root)
{
	json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
	json_decref(root);
}

/* Connect and run one statement; the caller PQclears *res_p. Returns an HC_EXIT_* code. */
static int hc_policy_run(hc_ctx_t *ctx, const char *what, const char *sql, int nparams,
                         const char *const *params, PGresult **res_p)
{
	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	exit_code = hc_approve_call(ctx, db, what, sql, nparams, params, res_p);
	hc_db_close(&db);
	return exit_code;
}

/*
 * "heraldctl WHAT [--json] ARG": HC_EXIT_OK with *json and *arg (borrowed
 * from argv), or HC_EXIT_USAGE after printing to ctx->err the option
 * mistake or, when ARG is missing, "heraldctl: WHAT: <missing>".
 */
static int hc_policy_json_and_arg(hc_ctx_t *ctx, const char *what, const char *missing, int argc,
                                  char **argv, bool *json, char **arg)
{
	static const hc_opt_t spec[] = {{"json", false}};
	const char *v[1];
	char *pos[1];
	size_t npos = 0;
	char err[2048];
	if (hc_cli_parse_opts(argc, argv, spec, 1, v, pos, 1, &npos, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: %s: %s\n", what, err);
		return HC_EXIT_USAGE;
	}
	if (npos != 1) {
		fprintf(ctx->err, "heraldctl: %s: %s\n", what, missing);
		return HC_EXIT_USAGE;
	}
	*json = v[0] != NULL;
	*arg = pos[0];
	return HC_EXIT_OK;
}

int hc_policy_cmd_group_add(hc_ctx_t *ctx, int argc, char **argv)
{
	hc_policy_group_args_t a;
	char err[1024];
	if (hc_policy_parse_group_add(argc, argv, &a, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: group add: %s\n", err);
		hc_policy_group_args_clear(&a);
		return HC_EXIT_USAGE;
	}
	char *deps = json_dumps(a.departments, JSON_COMPACT);
	if (deps == NULL)
		hd_panic("hc_policy: json_dumps failed");
	const char *params[6] = {a.name, a.purpose, a.owner, a.provider, a.endpoint, deps};
	PGresult *res = NULL;
	int exit_code = hc_policy_run(
		ctx, "group add",
		"SELECT herald.group_add($1, $2, $3, $4, $5,"
		" ARRAY(SELECT jsonb_array_elements_text($6::jsonb)))",
		6, params, &res);
	free(deps);
	if (exit_code == HC_EXIT_OK) {
		const char *result = PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "";
		if (a.json) {
			json_t *o = json_object();
			json_object_set_new(o, "ok", json_true());
			json_object_set_new(o, "group", json_string(a.name));
			json_object_set_new(o, "result", json_string(result));
			hc_policy_dump(ctx->out, o);
		} else if (strcmp(result, "unchanged") == 0) {
			fprintf(ctx->out, "group %s: already registered as given, nothing changed\n", a.name);
		} else {
			fprintf(ctx->out, "group %s %s\n", a.name, result);
		}
	}
	PQclear(res);
	hc_policy_group_args_clear(&a);
	return exit_code;
}

int hc_policy_cmd_group_remove(hc_ctx_t *ctx, int argc, char **argv)
{
	bool json;
	char *group;
	int exit_code = hc_policy_json_and_arg(ctx, "group remove",
	                                       "which group? (heraldctl group remove NAME)", argc,
	                                       argv, &json, &group);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	const char *params[1] = {group};
	PGresult *res = NULL;
	exit_code = hc_policy_run(ctx, "group remove", "SELECT herald.group_remove($1)", 1,
	                              params, &res);
	if (exit_code == HC_EXIT_OK) {
		const char *result = PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "";
		if (json) {
			json_t *o = json_object();
			json_object_set_new(o, "ok", json_true());
			json_object_set_new(o, "group", json_string(group));
			json_object_set_new(o, "result", json_string(result));
			hc_policy_dump(ctx->out, o);
		} else if (strcmp(result, "unchanged") == 0) {
			fprintf(ctx->out, "group %s was removed already\n", group);
		} else {
			fprintf(ctx->out,
			        "group %s removed: messages to it are refused from now on (POLICY I3)\n",
			        group);
		}
	}
	PQclear(res);
	return exit_code;
}

int hc_policy_cmd_group_list(hc_ctx_t *ctx, int argc, char **argv)
{
	static const hc_opt_t spec[] = {{"json", false}};
	const char *v[1];
	size_t npos = 0;
	char err[512];
	if (hc_cli_parse_opts(argc, argv, spec, 1, v, NULL, 0, &npos, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: group list: %s\n", err);
		return HC_EXIT_USAGE;
	}
	PGresult *res = NULL;
	int exit_code = hc_policy_run(
		ctx, "group list",
		"SELECT name, purpose, owner, provider, endpoint, array_to_string(departments, ', '),"
		" active, array_to_json(departments)::text, " HC_POLICY_ISO("created_at") ", "
		HC_POLICY_ISO("updated_at") " FROM herald.group_list()",
		0, NULL, &res);
	if (exit_code != HC_EXIT_OK) {
		PQclear(res);
		return exit_code;
	}
	int n = PQntuples(res);
	if (v[0] != NULL) {
		json_t *root = json_object(), *arr = json_array();
		for (int i = 0; i < n; i++) {
			json_t *o = json_object();
			static const char *const keys[] = {"name", "purpose", "owner", "provider",
			                                   "endpoint"};
			for (int k = 0; k < 5; k++)
				json_object_set_new(o, keys[k], hc_policy_jstr(hc_policy_cell(res, i, k)));
			json_object_set_new(o, "departments", hc_policy_jparse(hc_policy_cell(res, i, 7)));
			json_object_set_new(o, "active", json_boolean(strcmp(PQgetvalue(res, i, 6), "t") == 0));
			json_object_set_new(o, "created_at", hc_policy_jstr(hc_policy_cell(res, i, 8)));
			json_object_set_new(o, "updated_at", hc_policy_jstr(hc_policy_cell(res, i, 9)));
			json_array_append_new(arr, o);
		}
		json_object_set_new(root, "count", json_integer(n));
		json_object_set_new(root, "groups", arr);
		hc_policy_dump(ctx->out, root);
	} else {
		hc_policy_group_row_t *rows = hd_calloc((size_t)n + 1, sizeof(*rows));
		for (int i = 0; i < n; i++) {
			rows[i].name = hc_policy_cell(res, i, 0);
			rows[i].purpose = hc_policy_cell(res, i, 1);
			rows[i].owner = hc_policy_cell(res, i, 2);
			rows[i].provider = hc_policy_cell(res, i, 3);
			rows[i].endpoint = hc_policy_cell(res, i, 4);
			rows[i].departments = hc_policy_cell(res, i, 5);
			rows[i].active = strcmp(PQgetvalue(res, i, 6), "t") == 0;
		}
		hc_policy_print_groups(ctx->out, rows, (size_t)n);
		hd_free(&rows);
	}
	PQclear(res);
	return HC_EXIT_OK;
}

/* consent add / revoke: the same arguments, another function and sentence. */
static int hc_policy_consent_change(hc_ctx_t *ctx, int argc, char **argv, bool grant)
{
	const char *what = grant ? "consent add" : "consent revoke";
	hc_policy_consent_args_t a;
	char err[512];
	if (hc_policy_parse_consent_args(argc, argv, &a, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: %s: %s\n", what, err);
		return HC_EXIT_USAGE;
	}
	const char *params[2] = {a.number, a.source};
	PGresult *res = NULL;
	int exit_code = hc_policy_run(ctx, what,
	                              grant ? "SELECT herald.consent_add($1, $2)"
	                                    : "SELECT herald.consent_revoke($1, $2)",
	                              2, params, &res);
	if (exit_code == HC_EXIT_OK) {
		const char *result = PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "";
		bool same = strcmp(result, "unchanged") == 0;
		if (a.json) {
			json_t *o = json_object();
			json_object_set_new(o, "ok", json_true());
			json_object_set_new(o, "number", json_string(a.number));
			json_object_set_new(o, "result", json_string(result));
			hc_policy_dump(ctx->out, o);
		} else if (grant) {
			fprintf(ctx->out, same ? "%s: consent was granted already, nothing changed\n"
			                       : "%s: consent to marketing SMS granted\n",
			        a.number);
		} else {
			fprintf(ctx->out, same ? "%s: opted out already, nothing changed\n"
			                       : "%s: opted out: marketing SMS to it are refused from now on\n",
			        a.number);
		}
	}
	PQclear(res);
	return exit_code;
}

int hc_policy_cmd_consent_add(hc_ctx_t *ctx, int argc, char **argv)
{
	return hc_policy_consent_change(ctx, argc, argv, true);
}

int hc_policy_cmd_consent_revoke(hc_ctx_t *ctx, int argc, char **argv)
{
	return hc_policy_consent_change(ctx, argc, argv, false);
}

int hc_policy_cmd_consent_import(hc_ctx_t *ctx, int argc, char **argv)
{
	bool json;
	char *file;
	int exit_code = hc_policy_json_and_arg(ctx, "consent import",
	                                       "which file? (heraldctl consent import FILE, CSV: "
	                                       "number,source[,granted_at])",
	                                       argc, argv, &json, &file);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	char err[2048];
	char *text = NULL;
	size_t len = 0;
	if (hc_org_read_file(file, &text, &len, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: consent import: %s\n", err);
		return HC_EXIT_FAIL;
	}
	json_t *doc = NULL;
	int rc = hc_policy_parse_consent_csv(file, text, len, &doc, err, sizeof(err));
	hd_free(&text);
	if (rc != 0) {
		fprintf(ctx->err, "heraldctl: consent import: %s\n", err);
		return HC_EXIT_FAIL;
	}
	size_t lines = json_array_size(doc);
	char *doc_text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (doc_text == NULL)
		hd_panic("hc_policy: json_dumps failed");
	const char *params[1] = {doc_text};
	PGresult *res = NULL;
	exit_code = hc_policy_run(
		ctx, "consent import",
		"SELECT granted, unchanged, kept_revoked FROM herald.consent_import($1::jsonb)", 1,
		params, &res);
	free(doc_text);
	if (exit_code == HC_EXIT_OK) {
		long long g = hc_policy_ll(res, 0, 0), u = hc_policy_ll(res, 0, 1),
		          k = hc_policy_ll(res, 0, 2);
		if (json) {
			json_t *o = json_object();
			json_object_set_new(o, "file", json_string(file));
			json_object_set_new(o, "lines", json_integer((json_int_t)lines));
			json_object_set_new(o, "granted", json_integer(g));
			json_object_set_new(o, "unchanged", json_integer(u));
			json_object_set_new(o, "kept_revoked", json_integer(k));
			hc_policy_dump(ctx->out, o);
		} else {
			fprintf(ctx->out, "imported %s: %lld granted, %lld unchanged", file, g, u);
			if (k > 0)
				fprintf(ctx->out, ", %lld kept opted out (the opt-out is later than the consent)",
				        k);
			fputc('\n', ctx->out);
		}
	}
	PQclear(res);
	return exit_code;
}

int hc_policy_cmd_consent_show(hc_ctx_t *ctx, int argc, char **argv)
{
	bool json;
	char *number;
	int exit_code = hc_policy_json_and_arg(ctx, "consent show",
	                                       "which number? (heraldctl consent show "
	                                       "+8613800138000)",
	                                       argc, argv, &json, &number);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	if (!hc_policy_is_e164(number)) {
		fprintf(ctx->err, "heraldctl: consent show: '%.40s' is not an E.164 number (+ then "
		                  "8 to 15 digits, the first not 0, no spaces)\n",
		        number);
		return HC_EXIT_USAGE;
	}
	const char *params[1] = {number};
	PGresult *res = NULL;
	exit_code = hc_policy_run(
		ctx, "consent show",
		"SELECT number, state, " HC_POLICY_ISO("granted_at") ", granted_source, "
		HC_POLICY_ISO("revoked_at") ", revoked_source, " HC_POLICY_ISO("updated_at") ", "
		"history::text, " HC_POLICY_UTC("granted_at") ", " HC_POLICY_UTC("revoked_at")
		" FROM herald.consent_show($1)",
		1, params, &res);
	if (exit_code != HC_EXIT_OK || PQntuples(res) != 1) {
		PQclear(res);
		return exit_code != HC_EXIT_OK ? exit_code : HC_EXIT_FAIL;
	}
	json_t *hist = hc_policy_jparse(hc_policy_cell(res, 0, 7));
	const char *state = PQgetvalue(res, 0, 1);
	if (json) {
		json_t *o = json_object();
		static const char *const keys[] = {"number",     "state",          "granted_at",
		                                   "granted_source", "revoked_at", "revoked_source",
		                                   "updated_at"};
		for (int k = 0; k < 7; k++)
			json_object_set_new(o, keys[k], hc_policy_jstr(hc_policy_cell(res, 0, k)));
		json_object_set_new(o, "history", hist);
		hc_policy_dump(ctx->out, o);
	} else {
		fprintf(ctx->out, "number   %s\n", number);
		if (strcmp(state, "granted") == 0)
			fprintf(ctx->out, "state    granted on %s UTC (source: %s)\n",
			        PQgetvalue(res, 0, 8), PQgetvalue(res, 0, 3));
		else if (strcmp(state, "revoked") == 0)
			fprintf(ctx->out, "state    opted out on %s UTC (source: %s): marketing SMS refused\n",
			        PQgetvalue(res, 0, 9), PQgetvalue(res, 0, 5));
		else
			fprintf(ctx->out, "state    no consent recorded: marketing SMS refused\n");
		if (json_array_size(hist) > 0) {
			static const hc_table_col_t cols[] = {
				{"AT (UTC)", false, 0}, {"EVENT", false, 0}, {"SOURCE", false, 60},
				{"BY", false, 40}};
			hc_table_t *t = hc_table_new(cols, 4);
			size_t i;
			json_t *h;
			json_array_foreach(hist, i, h) {
				char ev[32];
				snprintf(ev, sizeof(ev), "%s%s", json_string_value(json_object_get(h, "event"))
				                                     ? json_string_value(json_object_get(h, "event"))
				                                     : "?",
				         json_is_true(json_object_get(h, "imported")) ? " (import)" : "");
				const char *cells[] = {json_string_value(json_object_get(h, "at")), ev,
				                       json_string_value(json_object_get(h, "source")),
				                       json_string_value(json_object_get(h, "actor"))};
				hc_table_add(t, cells);
			}
			fprintf(ctx->out, "history\n");
			hc_table_print(t, ctx->out, 2);
			hc_table_destroy(&t);
		}
		json_decref(hist);
	}
	PQclear(res);
	return HC_EXIT_OK;
}

int hc_policy_cmd_violations(hc_ctx_t *ctx, int argc, char **argv)
{
	hc_policy_violations_args_t a;
	char err[1024];
	if (hc_policy_parse_violations_args(argc, argv, hd_time_now_us() / 1000, &a, err,
	                                    sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: violations: %s\n", err);
		return HC_EXIT_USAGE;
	}
	char since[32], until[32], limit[32];
	snprintf(since, sizeof(since), "%" PRId64, a.since_ms);
	snprintf(until, sizeof(until), "%" PRId64, a.until_ms);
	snprintf(limit, sizeof(limit), "%ld", a.limit);
	const char *by = a.by == HC_POLICY_BY_DEPARTMENT ? "department" : "sender";
	PGresult *res = NULL;
	int exit_code;
	if (a.by == HC_POLICY_BY_NONE) {
		const char *params[5] = {a.since_ms != 0 ? since : NULL, a.until_ms != 0 ? until : NULL,
		                         a.sender, a.department, limit};
		exit_code = hc_policy_run(
			ctx, "violations",
			"SELECT id, " HC_POLICY_UTC("at") ", " HC_POLICY_ISO("at") ", sender, department,"
			" app, message_id, rule, clause, severity, action, reason, field, count(*) OVER ()"
			" FROM herald.violations_list(to_timestamp($1::float8 / 1000),"
			" to_timestamp($2::float8 / 1000), $3, $4)"
			" ORDER BY at DESC, id DESC LIMIT $5::int",
			5, params, &res);
	} else {
		const char *params[3] = {a.since_ms != 0 ? since : NULL, a.until_ms != 0 ? until : NULL,
		                         by};
		exit_code = hc_policy_run(
			ctx, "violations",
			"SELECT key, department, count, critical, major, minor, info, "
			HC_POLICY_UTC("last_at") ", " HC_POLICY_ISO("last_at")
			" FROM herald.violations_report(to_timestamp($1::float8 / 1000),"
			" to_timestamp($2::float8 / 1000), $3)",
			3, params, &res);
	}
	if (exit_code != HC_EXIT_OK) {
		PQclear(res);
		return exit_code;
	}
	int n = PQntuples(res);
	if (a.by == HC_POLICY_BY_NONE) {
		long long total = n > 0 ? hc_policy_ll(res, 0, 13) : 0;
		if (a.json) {
			json_t *root = json_object(), *arr = json_array();
			for (int i = 0; i < n; i++) {
				json_t *o = json_object();
				json_object_set_new(o, "id", json_integer(hc_policy_ll(res, i, 0)));
				json_object_set_new(o, "at", hc_policy_jstr(hc_policy_cell(res, i, 2)));
				static const char *const keys[] = {"sender", "department", "app"};
				for (int k = 0; k < 3; k++)
					json_object_set_new(o, keys[k], hc_policy_jstr(hc_policy_cell(res, i, 3 + k)));
				json_object_set_new(o, "message_id",
				                    PQgetisnull(res, i, 6) ? json_null()
				                                           : json_integer(hc_policy_ll(res, i, 6)));
				static const char *const more[] = {"rule",   "clause", "severity",
				                                   "action", "reason", "field"};
				for (int k = 0; k < 6; k++)
					json_object_set_new(o, more[k], hc_policy_jstr(hc_policy_cell(res, i, 7 + k)));
				json_array_append_new(arr, o);
			}
			json_object_set_new(root, "total", json_integer(total));
			json_object_set_new(root, "shown", json_integer(n));
			json_object_set_new(root, "violations", arr);
			hc_policy_dump(ctx->out, root);
		} else {
			hc_policy_violation_row_t *rows = hd_calloc((size_t)n + 1, sizeof(*rows));
			for (int i = 0; i < n; i++) {
				hc_policy_violation_row_t *r = &rows[i];
				r->at = hc_policy_cell(res, i, 1);
				r->sender = hc_policy_cell(res, i, 3);
				r->department = hc_policy_cell(res, i, 4);
				r->message_id = hc_policy_cell(res, i, 6);
				r->rule = hc_policy_cell(res, i, 7);
				r->clause = hc_policy_cell(res, i, 8);
				r->severity = hc_policy_cell(res, i, 9);
				r->action = hc_policy_cell(res, i, 10);
				r->reason = hc_policy_cell(res, i, 11);
				r->field = hc_policy_cell(res, i, 12);
			}
			hc_policy_print_violations(ctx->out, rows, (size_t)n, total);
			hd_free(&rows);
		}
	} else if (a.json) {
		json_t *root = json_object(), *arr = json_array();
		for (int i = 0; i < n; i++) {
			json_t *o = json_object();
			json_object_set_new(o, by, hc_policy_jstr(hc_policy_cell(res, i, 0)));
			if (a.by == HC_POLICY_BY_SENDER)
				json_object_set_new(o, "department", hc_policy_jstr(hc_policy_cell(res, i, 1)));
			static const char *const keys[] = {"count", "critical", "major", "minor", "info"};
			for (int k = 0; k < 5; k++)
				json_object_set_new(o, keys[k], json_integer(hc_policy_ll(res, i, 2 + k)));
			json_object_set_new(o, "last_at", hc_policy_jstr(hc_policy_cell(res, i, 8)));
			json_array_append_new(arr, o);
		}
		json_object_set_new(root, "by", json_string(by));
		json_object_set_new(root, "rows", arr);
		hc_policy_dump(ctx->out, root);
	} else {
		hc_policy_report_row_t *rows = hd_calloc((size_t)n + 1, sizeof(*rows));
		for (int i = 0; i < n; i++) {
			hc_policy_report_row_t *r = &rows[i];
			r->key = hc_policy_cell(res, i, 0);
			r->department = hc_policy_cell(res, i, 1);
			r->count = hc_policy_ll(res, i, 2);
			r->critical = hc_policy_ll(res, i, 3);
			r->major = hc_policy_ll(res, i, 4);
			r->minor = hc_policy_ll(res, i, 5);
			r->info = hc_policy_ll(res, i, 6);
			r->last_at = hc_policy_cell(res, i, 7);
		}
		hc_policy_print_report(ctx->out, a.by, rows, (size_t)n);
		hd_free(&rows);
	}
	PQclear(res);
	return HC_EXIT_OK;
}
