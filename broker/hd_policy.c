/*
 * NAME
 *	hd_policy - the sending policy, evaluated once per submission
 *	(see hd_policy.h)
 * LIMITS
 *	HD_POLICY_MAX_RULES rules (hd_policy.h), HD_MATCH_MAX_LISTS lists, terms of at most
 *	HD_POLICY_MAX_TERM_BYTES bytes, list files of at most
 *	HD_POLICY_MAX_LIST_TERMS terms.
 */
#define _GNU_SOURCE /* memmem */
#include "hd_policy.h"

#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#include "hd_config.h"
#include "hd_err.h"
#include "hd_fold.h"
#include "hd_match.h"
#include "hd_mem.h"
#include "hd_sms_segments.h"

#define HD_POLICY_MAX_TERM_BYTES 256u
#define HD_POLICY_MAX_LIST_TERMS 1000000u

/*
 * The built-in policy: every clause on, with the defaults documented in
 * deploy/heraldd.conf (a unit test checks that the example file and
 * this text give the same policy).
 */
static const char hd_policy_default_text[] =
	"policy = {\n"
	"  enabled = true;\n"
	"  lists = {\n"
	"    prohibited = { terms = [\"违禁品\", \"赌博网站\", \"假发票\", \"fake invoice\",\n"
	"                            \"counterfeit\", \"money laundering\", \"洗钱\"]; };\n"
	"    civility = { terms = [\"idiot\", \"stupid\", \"moron\", \"shut up\", \"傻逼\", \"白痴\",\n"
	"                          \"蠢货\", \"滚蛋\", \"他妈的\"]; };\n"
	"    sensitive = { terms = [\"机密\", \"绝密\", \"confidential\", \"salary\", \"薪酬\"]; };\n"
	"    major = { terms = [\"重大决策\", \"董事会\", \"merger\", \"acquisition\"]; };\n"
	"    meaningless_subjects = { terms = [\"test\", \"testing\", \"测试\", \"无\", \"无主题\", \"hi\",\n"
	"                                      \"hello\", \"你好\", \"subject\", \"no subject\",\n"
	"                                      \"(no subject)\", \"fyi\", \"re\", \"fw\", \"fwd\"]; };\n"
	"  };\n"
	"  rules = (\n"
	"    { id = \"prohibited-content\"; clause = \"G3.1\"; check = \"terms\"; list = \"prohibited\";\n"
	"      fields = [\"subject\", \"body\", \"html\"]; action = \"reject\"; severity = \"major\"; },\n"
	"    { id = \"civility\"; clause = \"I2\"; check = \"terms\"; list = \"civility\";\n"
	"      fields = [\"body\"]; channels = [\"im\"]; action = \"reject\"; severity = \"minor\"; },\n"
	"    { id = \"sensitive-content\"; clause = \"A2.1\"; check = \"terms\"; list = \"sensitive\";\n"
	"      fields = [\"subject\", \"body\", \"html\"]; action = \"hold\"; marks = \"important\";\n"
	"      severity = \"info\"; },\n"
	"    { id = \"major-content\"; clause = \"A2.1\"; check = \"terms\"; list = \"major\";\n"
	"      fields = [\"subject\", \"body\", \"html\"]; action = \"hold\"; marks = \"major\";\n"
	"      severity = \"info\"; },\n"
	"    { id = \"subject-required\"; clause = \"G3.2\"; check = \"subject_required\";\n"
	"      channels = [\"email\"]; action = \"reject\"; severity = \"minor\"; },\n"
	"    { id = \"subject-meaningless\"; clause = \"G3.2\"; check = \"subject_meaningless\";\n"
	"      list = \"meaningless_subjects\"; channels = [\"email\"]; action = \"reject\";\n"
	"      severity = \"minor\"; },\n"
	"    { id = \"body-required\"; clause = \"G3.2\"; check = \"body_required\"; action = \"reject\";\n"
	"      severity = \"minor\"; },\n"
	"    { id = \"subject-length\"; clause = \"E1\"; check = \"subject_max_chars\"; limit = 120;\n"
	"      channels = [\"email\"]; action = \"reject\"; severity = \"info\"; },\n"
	"    { id = \"reply-by-required\"; clause = \"E2\"; check = \"reply_by_required\";\n"
	"      action = \"reject\"; severity = \"minor\"; },\n"
	"    { id = \"attachment-size\"; clause = \"E3\"; check = \"attachment_max_bytes\";\n"
	"      limit = 10485760; channels = [\"email\"]; action = \"reject\"; severity = \"info\"; },\n"
	"    { id = \"attachments-total-size\"; clause = \"E3\"; check = \"attachments_max_total_bytes\";\n"
	"      limit = 10485760; channels = [\"email\"]; action = \"reject\"; severity = \"info\"; },\n"
	"    { id = \"attachment-count\"; clause = \"E3\"; check = \"attachment_max_count\"; limit = 10;\n"
	"      channels = [\"email\"]; action = \"reject\"; severity = \"info\"; },\n"
	"    { id = \"attachment-unmentioned\"; clause = \"E3\"; check = \"attachment_mentioned\";\n"
	"      channels = [\"email\"]; action = \"warn\"; severity = \"info\"; },\n"
	"    { id = \"cc-reason\"; clause = \"E4\"; check = \"cc_reason_required\";\n"
	"      channels = [\"email\"]; action = \"reject\"; severity = \"minor\"; },\n"
	"    { id = \"max-recipients\"; clause = \"E4\"; check = \"max_recipients\"; limit = 500;\n"
	"      action = \"reject\"; severity = \"minor\"; },\n"
	"    { id = \"im-body-length\"; clause = \"I2\"; check = \"body_max_chars\"; limit = 2000;\n"
	"      channels = [\"im\"]; action = \"reject\"; severity = \"info\";\n"
	"      hint = \"put the details in a document and send its link instead\"; },\n"
	"    { id = \"im-registered-group\"; clause = \"I3\"; check = \"im_group\"; channels = [\"im\"];\n"
	"      action = \"reject\"; severity = \"minor\"; },\n"
	"    { id = \"sms-marketing-consent\"; clause = \"S1\"; check = \"sms_consent\";\n"
	"      channels = [\"sms\"]; action = \"reject\"; severity = \"major\"; },\n"
	"    { id = \"sms-length\"; clause = \"S2\"; check = \"sms_max_segments\"; limit = 3;\n"
	"      channels = [\"sms\"]; action = \"reject\"; severity = \"info\"; },\n"
	"    { id = \"sms-hourly-cap\"; clause = \"S3\"; check = \"sms_cap\"; count = 3; per_s = 3600;\n"
	"      channels = [\"sms\"]; action = \"defer\"; severity = \"info\"; },\n"
	"    { id = \"sms-daily-cap\"; clause = \"S3\"; check = \"sms_cap\"; count = 10; per_s = 86400;\n"
	"      channels = [\"sms\"]; action = \"defer\"; severity = \"info\"; },\n"
	"    { id = \"sms-quiet-hours\"; clause = \"S3\"; check = \"quiet_hours\"; enabled = false;\n"
	"      start = \"21:00\"; end = \"08:00\"; utc_offset_minutes = 480;\n"
	"      exempt_purposes = [\"urgent\"]; channels = [\"sms\"]; action = \"defer\";\n"
	"      severity = \"info\"; }\n"
	"  );\n"
	"};\n";

/* ---- rule kinds ---------------------------------------------------------- */

typedef enum {
	CHK_TERMS,
	CHK_SUBJECT_REQUIRED,
	CHK_SUBJECT_MEANINGLESS,
	CHK_BODY_REQUIRED,
	CHK_SUBJECT_MAX_CHARS,
	CHK_REPLY_BY_REQUIRED,
	CHK_ATTACHMENT_MAX_BYTES,
	CHK_ATTACHMENTS_MAX_TOTAL_BYTES,
	CHK_ATTACHMENT_MAX_COUNT,
	CHK_ATTACHMENT_MENTIONED,
	CHK_CC_REASON_REQUIRED,
	CHK_MAX_RECIPIENTS,
	CHK_BODY_MAX_CHARS,
	CHK_SMS_MAX_SEGMENTS,
	CHK_QUIET_HOURS,
	CHK_IM_GROUP,
	CHK_SMS_CONSENT,
	CHK_SMS_CAP,
	CHK_COUNT
} hd_policy_check_t;

#define A(x) (1u << HD_POLICY_##x)
enum { NEED_LIST = 1, NEED_LIMIT = 2, NEED_CAP = 4, NEED_HOURS = 8 };

static const struct {
	const char *name;
	unsigned actions;  /* allowed actions */
	unsigned needs;
	bool db;           /* checked by the database in the intake transaction */
} hd_policy_checks[CHK_COUNT] = {
	[CHK_TERMS] = {"terms", A(REJECT) | A(HOLD) | A(WARN), NEED_LIST, false},
	[CHK_SUBJECT_REQUIRED] = {"subject_required", A(REJECT) | A(WARN), 0, false},
	[CHK_SUBJECT_MEANINGLESS] = {"subject_meaningless", A(REJECT) | A(WARN), NEED_LIST, false},
	[CHK_BODY_REQUIRED] = {"body_required", A(REJECT) | A(WARN), 0, false},
	[CHK_SUBJECT_MAX_CHARS] = {"subject_max_chars", A(REJECT) | A(WARN), NEED_LIMIT, false},
	[CHK_REPLY_BY_REQUIRED] = {"reply_by_required", A(REJECT) | A(WARN), 0, false},
	[CHK_ATTACHMENT_MAX_BYTES] = {"attachment_max_bytes", A(REJECT) | A(WARN), NEED_LIMIT,
				      false},
	[CHK_ATTACHMENTS_MAX_TOTAL_BYTES] = {"attachments_max_total_bytes", A(REJECT) | A(WARN),
					     NEED_LIMIT, false},
	[CHK_ATTACHMENT_MAX_COUNT] = {"attachment_max_count", A(REJECT) | A(WARN), NEED_LIMIT,
				      false},
	[CHK_ATTACHMENT_MENTIONED] = {"attachment_mentioned", A(REJECT) | A(WARN), 0, false},
	[CHK_CC_REASON_REQUIRED] = {"cc_reason_required", A(REJECT) | A(WARN), 0, false},
	[CHK_MAX_RECIPIENTS] = {"max_recipients", A(REJECT) | A(WARN), NEED_LIMIT, false},
	[CHK_BODY_MAX_CHARS] = {"body_max_chars", A(REJECT) | A(WARN), NEED_LIMIT, false},
	[CHK_SMS_MAX_SEGMENTS] = {"sms_max_segments", A(REJECT) | A(WARN), NEED_LIMIT, false},
	[CHK_QUIET_HOURS] = {"quiet_hours", A(DEFER), NEED_HOURS, false},
	[CHK_IM_GROUP] = {"im_group", A(REJECT), 0, true},
	[CHK_SMS_CONSENT] = {"sms_consent", A(REJECT), 0, true},
	[CHK_SMS_CAP] = {"sms_cap", A(DEFER), NEED_CAP, true},
};
#undef A

static const char *const hd_policy_action_names[] = {"reject", "hold", "tag", "defer", "warn"};
static const char *const hd_policy_severity_names[] = {"info", "minor", "major", "critical"};

enum { FIELD_SUBJECT = 1, FIELD_BODY = 2, FIELD_HTML = 4 };
enum { MARK_NONE, MARK_IMPORTANT, MARK_MAJOR };

typedef struct hd_policy_list {
	char *name;
	char **terms;       /* folded */
	size_t *lens;
	size_t count;
	/* Each term without leading and trailing spaces and punctuation
	 * (term + trim_start, up to trim_end), for whole-subject compares. */
	size_t *trim_start;
	size_t *trim_end;
} hd_policy_list_t;

typedef struct hd_policy_rule {
	char *id;
	char *clause;
	int check;          /* hd_policy_check_t, -1 until given */
	int action;         /* hd_policy_action_t, -1 until given */
	int severity;       /* -1 until given */
	unsigned channels;  /* bit per hd_channel_t */
	bool enabled;
	char *list_name;
	int list;           /* index into lists once resolved */
	unsigned fields;
	int64_t limit;
	int64_t count;
	int64_t per_s;
	int marks;
	int start_min;      /* quiet hours, minutes after local midnight; -1 unset */
	int end_min;
	int64_t utc_offset_min;
	unsigned exempt_purposes;  /* bit per hd_purpose_t */
	char *hint;
	char where[160];    /* "file:line" of the rule, for errors found after merging */
	hd_policy_db_rule_t db;
} hd_policy_rule_t;

struct hd_policy {
	bool enabled;
	hd_policy_rule_t rules[HD_POLICY_MAX_RULES];
	size_t rule_count;
	hd_policy_list_t lists[HD_MATCH_MAX_LISTS];
	size_t list_count;
	hd_match_t *match;
	size_t term_count;
	/* Per channel: the database rules, and what evaluation must fold. */
	const hd_policy_db_rule_t *db_rules[3][HD_POLICY_MAX_RULES];
	size_t db_rule_count[3];
	unsigned fold_fields[3];
	/* Scratch reused by every evaluation. */
	hd_fold_buf_t fold[3];   /* subject, body, html */
	hd_fold_buf_t fold_tmp;
	hd_fold_buf_t html_text; /* the HTML body as text, before folding */
};

/* ---- loading ------------------------------------------------------------- */

typedef struct hd_policy_loader {
	hd_policy_t *self;
	const char *dir;     /* directory of the file, for list files; NULL = cwd */
	char *err;
	size_t errlen;
} hd_policy_loader_t;

static int hd_policy_fail(hd_policy_loader_t *ld, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int hd_policy_fail(hd_policy_loader_t *ld, const config_setting_t *s, const char *fmt, ...)
{
	char what[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	const char *file = s ? config_setting_source_file(s) : NULL;
	snprintf(ld->err, ld->errlen, "%s:%d: %s", file ? file : "(built-in policy)",
		 s ? (int)config_setting_source_line(s) : 0, what);
	return HD_E_CONFIG;
}

static void hd_policy_list_clear(hd_policy_list_t *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->terms[i]);
	free(l->terms);
	free(l->lens);
	free(l->trim_start);
	free(l->trim_end);
	l->terms = NULL;
	l->lens = NULL;
	l->trim_start = NULL;
	l->trim_end = NULL;
	l->count = 0;
}

static void hd_policy_list_add(hd_policy_list_t *l, const char *folded, size_t len)
{
	if ((l->count & (l->count - 1)) == 0) {
		size_t cap = l->count ? l->count * 2 : 8;
		l->terms = hd_realloc(l->terms, cap * sizeof(*l->terms));
		l->lens = hd_realloc(l->lens, cap * sizeof(*l->lens));
	}
	l->terms[l->count] = hd_strndup(folded, len);
	l->lens[l->count] = len;
	l->count++;
}

/* Fold one term into l; where names it in errors. */
static int hd_policy_add_term(hd_policy_loader_t *ld, hd_policy_list_t *l, const char *term,
			      size_t len, const config_setting_t *s, const char *where)
{
	if (len > HD_POLICY_MAX_TERM_BYTES)
		return hd_policy_fail(ld, s, "%s: a term is longer than %u bytes", where,
				      HD_POLICY_MAX_TERM_BYTES);
	if (l->count >= HD_POLICY_MAX_LIST_TERMS)
		return hd_policy_fail(ld, s, "%s: more than %u terms", where,
				      HD_POLICY_MAX_LIST_TERMS);
	if (hd_fold(&ld->self->fold_tmp, term, len) != HD_OK)
		return hd_policy_fail(ld, s, "%s: a term is not valid UTF-8", where);
	if (ld->self->fold_tmp.len > 0)
		hd_policy_list_add(l, ld->self->fold_tmp.data, ld->self->fold_tmp.len);
	return HD_OK;
}

static int hd_policy_read_list_file(hd_policy_loader_t *ld, hd_policy_list_t *l,
				    const char *name, const config_setting_t *s)
{
	char path[4096];
	if (name[0] == '/' || !ld->dir)
		snprintf(path, sizeof(path), "%s", name);
	else
		snprintf(path, sizeof(path), "%s/%s", ld->dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return hd_policy_fail(ld, s, "list file %s: %s", path, strerror(errno));
	/* A term is at most HD_POLICY_MAX_TERM_BYTES; with indentation, CR
	 * and LF a line fits in twice that, and a longer one is refused
	 * before anything is allocated for it. */
	char line[2 * HD_POLICY_MAX_TERM_BYTES + 3];
	int lineno = 0;
	int rc = HD_OK;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n' && !feof(f)) {
			rc = hd_policy_fail(ld, s, "%s line %d: longer than %u bytes", path, lineno,
					    2 * HD_POLICY_MAX_TERM_BYTES);
			break;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		size_t start = 0;
		while (start < len && (line[start] == ' ' || line[start] == '\t'))
			start++;
		if (start == len || line[start] == '#')
			continue;
		char where[4200];
		snprintf(where, sizeof(where), "%s line %d", path, lineno);
		if ((rc = hd_policy_add_term(ld, l, line + start, len - start, s, where)) != HD_OK)
			break;
	}
	fclose(f);
	return rc;
}

static int hd_policy_find_list(const hd_policy_t *self, const char *name)
{
	for (size_t i = 0; i < self->list_count; i++)
		if (strcmp(self->lists[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int hd_policy_load_lists(hd_policy_loader_t *ld, const config_setting_t *lists)
{
	if (config_setting_type(lists) != CONFIG_TYPE_GROUP)
		return hd_policy_fail(ld, lists, "policy.lists: expected a group of lists");
	hd_policy_t *self = ld->self;
	int n = config_setting_length(lists);
	for (int i = 0; i < n; i++) {
		const config_setting_t *ls = config_setting_get_elem(lists, (unsigned)i);
		const char *name = config_setting_name(ls);
		if (config_setting_type(ls) != CONFIG_TYPE_GROUP)
			return hd_policy_fail(ld, ls, "policy.lists.%s: expected { terms = [...]; "
					      "files = [...]; }", name);
		int idx = hd_policy_find_list(self, name);
		if (idx < 0) {
			if (self->list_count >= HD_MATCH_MAX_LISTS)
				return hd_policy_fail(ld, ls, "policy.lists: more than %u lists",
						      HD_MATCH_MAX_LISTS);
			idx = (int)self->list_count++;
			self->lists[idx].name = hd_strdup(name);
		}
		hd_policy_list_t *l = &self->lists[idx];
		hd_policy_list_clear(l);  /* a list given replaces the built-in one */
		int m = config_setting_length(ls);
		for (int k = 0; k < m; k++) {
			const config_setting_t *e = config_setting_get_elem(ls, (unsigned)k);
			const char *key = config_setting_name(e);
			bool is_terms = strcmp(key, "terms") == 0, is_files = strcmp(key, "files") == 0;
			if (!is_terms && !is_files)
				return hd_policy_fail(ld, e, "policy.lists.%s.%s: unknown setting "
						      "(terms, files)", name, key);
			if (config_setting_is_array(e) != CONFIG_TRUE &&
			    config_setting_is_list(e) != CONFIG_TRUE)
				return hd_policy_fail(ld, e, "policy.lists.%s.%s: expected an array "
						      "of strings", name, key);
			int count = config_setting_length(e);
			for (int j = 0; j < count; j++) {
				const config_setting_t *t = config_setting_get_elem(e, (unsigned)j);
				const char *str = config_setting_get_string(t);
				if (!str)
					return hd_policy_fail(ld, t, "policy.lists.%s.%s[%d]: expected "
							      "a string", name, key, j);
				char where[160];
				snprintf(where, sizeof(where), "policy.lists.%s.%s[%d]", name, key, j);
				int rc = is_terms ? hd_policy_add_term(ld, l, str, strlen(str), t, where)
						  : hd_policy_read_list_file(ld, l, str, t);
				if (rc != HD_OK)
					return rc;
			}
		}
	}
	return HD_OK;
}

static int hd_policy_lookup(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

static int hd_policy_get_string(hd_policy_loader_t *ld, const config_setting_t *s,
				const char *what, const char **out)
{
	*out = config_setting_get_string(s);
	if (!*out)
		return hd_policy_fail(ld, s, "%s: expected a string", what);
	return HD_OK;
}

static int hd_policy_get_int(hd_policy_loader_t *ld, const config_setting_t *s, const char *what,
			     int64_t min, int64_t max, int64_t *out)
{
	int type = config_setting_type(s);
	if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
		return hd_policy_fail(ld, s, "%s: expected an integer", what);
	long long v = config_setting_get_int64(s);
	if (v < min || v > max)
		return hd_policy_fail(ld, s, "%s: %lld is out of range %lld..%lld", what, v,
				      (long long)min, (long long)max);
	*out = v;
	return HD_OK;
}

/* "HH:MM" into minutes after midnight. */
static int hd_policy_parse_hhmm(const char *s)
{
	unsigned h, m;
	char extra;
	if (sscanf(s, "%2u:%2u%c", &h, &m, &extra) != 2 || h > 23 || m > 59)
		return -1;
	return (int)(h * 60 + m);
}

/* Iterate an array of strings, calling fn for each with its index. */
typedef int (*hd_policy_string_fn)(hd_policy_loader_t *ld, const config_setting_t *e,
				   const char *str, hd_policy_rule_t *r, const char *what);

static int hd_policy_each_string(hd_policy_loader_t *ld, const config_setting_t *s,
				 hd_policy_rule_t *r, const char *what, hd_policy_string_fn fn)
{
	if (config_setting_is_array(s) != CONFIG_TRUE && config_setting_is_list(s) != CONFIG_TRUE)
		return hd_policy_fail(ld, s, "%s: expected an array of strings", what);
	int n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *str = config_setting_get_string(e);
		if (!str)
			return hd_policy_fail(ld, e, "%s[%d]: expected a string", what, i);
		int rc = fn(ld, e, str, r, what);
		if (rc != HD_OK)
			return rc;
	}
	return HD_OK;
}

static int hd_policy_add_channel(hd_policy_loader_t *ld, const config_setting_t *e,
				 const char *str, hd_policy_rule_t *r, const char *what)
{
	hd_channel_t ch;
	if (hd_channel_parse(str, &ch) != HD_OK)
		return hd_policy_fail(ld, e, "%s: unknown channel \"%s\" (email, im, sms)", what, str);
	r->channels |= 1u << ch;
	return HD_OK;
}

static int hd_policy_add_field(hd_policy_loader_t *ld, const config_setting_t *e,
			       const char *str, hd_policy_rule_t *r, const char *what)
{
	static const char *const names[] = {"subject", "body", "html"};
	int i = hd_policy_lookup(names, 3, str);
	if (i < 0)
		return hd_policy_fail(ld, e, "%s: unknown field \"%s\" (subject, body, html)", what,
				      str);
	r->fields |= 1u << i;
	return HD_OK;
}

static int hd_policy_add_purpose(hd_policy_loader_t *ld, const config_setting_t *e,
				 const char *str, hd_policy_rule_t *r, const char *what)
{
	hd_purpose_t p;
	if (hd_purpose_parse(str, &p) != HD_OK)
		return hd_policy_fail(ld, e, "%s: unknown purpose \"%s\" (service, urgent, "
				      "marketing)", what, str);
	r->exempt_purposes |= 1u << p;
	return HD_OK;
}

static void hd_policy_set_string(char **slot, const char *value)
{
	free(*slot);
	*slot = hd_strdup(value);
}

/* Apply the keys of one rule group onto r (a new or a built-in rule). */
static int hd_policy_apply_rule(hd_policy_loader_t *ld, const config_setting_t *g,
				hd_policy_rule_t *r, const char *what)
{
	int n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *key = config_setting_name(s);
		char kw[224];
		snprintf(kw, sizeof(kw), "%s.%s", what, key);
		const char *str = NULL;
		int64_t v;
		int rc = HD_OK;
		if (strcmp(key, "id") == 0) {
			/* matched by the caller */
		} else if (strcmp(key, "clause") == 0) {
			if ((rc = hd_policy_get_string(ld, s, kw, &str)) == HD_OK) {
				if (!*str || strlen(str) > 16)
					return hd_policy_fail(ld, s, "%s: 1 to 16 characters, e.g. "
							      "\"G3.1\"", kw);
				hd_policy_set_string(&r->clause, str);
			}
		} else if (strcmp(key, "check") == 0) {
			if ((rc = hd_policy_get_string(ld, s, kw, &str)) == HD_OK) {
				int c = -1;
				for (int k = 0; k < CHK_COUNT; k++)
					if (strcmp(hd_policy_checks[k].name, str) == 0)
						c = k;
				if (c < 0)
					return hd_policy_fail(ld, s, "%s: unknown check \"%s\"", kw, str);
				r->check = c;
			}
		} else if (strcmp(key, "action") == 0) {
			if ((rc = hd_policy_get_string(ld, s, kw, &str)) == HD_OK) {
				r->action = hd_policy_lookup(hd_policy_action_names, 5, str);
				if (r->action < 0)
					return hd_policy_fail(ld, s, "%s: unknown action \"%s\" (reject, "
							      "hold, tag, defer, warn)", kw, str);
			}
		} else if (strcmp(key, "severity") == 0) {
			if ((rc = hd_policy_get_string(ld, s, kw, &str)) == HD_OK) {
				r->severity = hd_policy_lookup(hd_policy_severity_names, 4, str);
				if (r->severity < 0)
					return hd_policy_fail(ld, s, "%s: unknown severity \"%s\" (info, "
							      "minor, major, critical)", kw, str);
			}
		} else if (strcmp(key, "enabled") == 0) {
			if (config_setting_type(s) != CONFIG_TYPE_BOOL)
				return hd_policy_fail(ld, s, "%s: expected true or false", kw);
			r->enabled = config_setting_get_bool(s) != 0;
		} else if (strcmp(key, "channels") == 0) {
			r->channels = 0;
			rc = hd_policy_each_string(ld, s, r, kw, hd_policy_add_channel);
		} else if (strcmp(key, "fields") == 0) {
			r->fields = 0;
			rc = hd_policy_each_string(ld, s, r, kw, hd_policy_add_field);
		} else if (strcmp(key, "exempt_purposes") == 0) {
			r->exempt_purposes = 0;
			rc = hd_policy_each_string(ld, s, r, kw, hd_policy_add_purpose);
		} else if (strcmp(key, "list") == 0) {
			if ((rc = hd_policy_get_string(ld, s, kw, &str)) == HD_OK)
				hd_policy_set_string(&r->list_name, str);
		} else if (strcmp(key, "hint") == 0) {
			if ((rc = hd_policy_get_string(ld, s, kw, &str)) == HD_OK)
				hd_policy_set_string(&r->hint, str);
		} else if (strcmp(key, "marks") == 0) {
			if ((rc = hd_policy_get_string(ld, s, kw, &str)) == HD_OK) {
				if (strcmp(str, "important") == 0)
					r->marks = MARK_IMPORTANT;
				else if (strcmp(str, "major") == 0)
					r->marks = MARK_MAJOR;
				else
					return hd_policy_fail(ld, s, "%s: expected \"important\" or "
							      "\"major\"", kw);
			}
		} else if (strcmp(key, "limit") == 0) {
			if ((rc = hd_policy_get_int(ld, s, kw, 1, INT64_C(1) << 40, &v)) == HD_OK)
				r->limit = v;
		} else if (strcmp(key, "count") == 0) {
			if ((rc = hd_policy_get_int(ld, s, kw, 1, 100000, &v)) == HD_OK)
				r->count = v;
		} else if (strcmp(key, "per_s") == 0) {
			if ((rc = hd_policy_get_int(ld, s, kw, 1, 31 * 86400, &v)) == HD_OK)
				r->per_s = v;
		} else if (strcmp(key, "utc_offset_minutes") == 0) {
			if ((rc = hd_policy_get_int(ld, s, kw, -14 * 60, 14 * 60, &v)) == HD_OK)
				r->utc_offset_min = v;
		} else if (strcmp(key, "start") == 0 || strcmp(key, "end") == 0) {
			if ((rc = hd_policy_get_string(ld, s, kw, &str)) == HD_OK) {
				int m = hd_policy_parse_hhmm(str);
				if (m < 0)
					return hd_policy_fail(ld, s, "%s: expected \"HH:MM\"", kw);
				*(key[0] == 's' ? &r->start_min : &r->end_min) = m;
			}
		} else {
			return hd_policy_fail(ld, s, "%s: unknown setting", kw);
		}
		if (rc != HD_OK)
			return rc;
	}
	return HD_OK;
}

static int hd_policy_load_rules(hd_policy_loader_t *ld, const config_setting_t *rules)
{
	if (config_setting_is_list(rules) != CONFIG_TRUE)
		return hd_policy_fail(ld, rules, "policy.rules: expected a list ( {...}, {...} )");
	hd_policy_t *self = ld->self;
	int n = config_setting_length(rules);
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(rules, (unsigned)i);
		char what[64];
		snprintf(what, sizeof(what), "policy.rules[%d]", i);
		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			return hd_policy_fail(ld, g, "%s: expected a group { id = ...; }", what);
		const char *id = NULL;
		if (config_setting_lookup_string(g, "id", &id) != CONFIG_TRUE || !*id)
			return hd_policy_fail(ld, g, "%s: every rule needs a string id", what);
		if (strlen(id) > 64)
			return hd_policy_fail(ld, g, "%s.id: at most 64 characters", what);
		hd_policy_rule_t *r = NULL;
		for (size_t k = 0; k < self->rule_count; k++)
			if (strcmp(self->rules[k].id, id) == 0)
				r = &self->rules[k];
		if (!r) {
			if (self->rule_count >= HD_POLICY_MAX_RULES)
				return hd_policy_fail(ld, g, "policy.rules: more than %u rules",
						      HD_POLICY_MAX_RULES);
			r = &self->rules[self->rule_count++];
			memset(r, 0, sizeof(*r));
			r->id = hd_strdup(id);
			r->check = r->action = r->severity = -1;
			r->channels = 7;
			r->fields = FIELD_SUBJECT | FIELD_BODY | FIELD_HTML;
			r->enabled = true;
			r->list = -1;
			r->start_min = r->end_min = -1;
		}
		const char *file = config_setting_source_file(g);
		snprintf(r->where, sizeof(r->where), "%s:%u: %s (id \"%s\")",
			 file ? file : "(built-in policy)", config_setting_source_line(g), what, id);
		int rc = hd_policy_apply_rule(ld, g, r, what);
		if (rc != HD_OK)
			return rc;
	}
	return HD_OK;
}

static int hd_policy_apply_group(hd_policy_loader_t *ld, const config_setting_t *policy)
{
	if (config_setting_type(policy) != CONFIG_TYPE_GROUP)
		return hd_policy_fail(ld, policy, "policy: expected a group");
	int n = config_setting_length(policy);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(policy, (unsigned)i);
		const char *key = config_setting_name(s);
		int rc;
		if (strcmp(key, "enabled") == 0) {
			if (config_setting_type(s) != CONFIG_TYPE_BOOL)
				return hd_policy_fail(ld, s, "policy.enabled: expected true or false");
			ld->self->enabled = config_setting_get_bool(s) != 0;
			rc = HD_OK;
		} else if (strcmp(key, "lists") == 0) {
			rc = hd_policy_load_lists(ld, s);
		} else if (strcmp(key, "rules") == 0) {
			rc = hd_policy_load_rules(ld, s);
		} else {
			rc = hd_policy_fail(ld, s, "policy.%s: unknown setting (enabled, lists, rules)",
					    key);
		}
		if (rc != HD_OK)
			return rc;
	}
	return HD_OK;
}

/* After merging: every rule complete and consistent. */
static int hd_policy_validate(hd_policy_loader_t *ld)
{
	hd_policy_t *self = ld->self;
	for (size_t i = 0; i < self->rule_count; i++) {
		hd_policy_rule_t *r = &self->rules[i];
		const char *missing = !r->clause ? "clause" : r->check < 0 ? "check"
				    : r->action < 0 ? "action" : r->severity < 0 ? "severity" : NULL;
		if (missing) {
			snprintf(ld->err, ld->errlen, "%s: missing %s", r->where, missing);
			return HD_E_CONFIG;
		}
		unsigned needs = hd_policy_checks[r->check].needs;
		const char *why = NULL;
		if (!(hd_policy_checks[r->check].actions & (1u << r->action)))
			why = "this check cannot take that action";
		else if ((needs & NEED_LIST) && !r->list_name)
			why = "missing list";
		else if ((needs & NEED_LIMIT) && r->limit <= 0)
			why = "missing limit";
		else if ((needs & NEED_CAP) && (r->count <= 0 || r->per_s <= 0))
			why = "missing count or per_s";
		else if ((needs & NEED_HOURS) && (r->start_min < 0 || r->end_min < 0))
			why = "missing start or end";
		else if ((needs & NEED_HOURS) && r->start_min == r->end_min)
			why = "start and end are the same time";
		else if (r->action == HD_POLICY_HOLD && r->marks == MARK_NONE)
			why = "a hold rule needs marks = \"important\" or \"major\"";
		else if (r->channels == 0)
			why = "channels is empty";
		else if (r->check == CHK_TERMS && r->fields == 0)
			why = "fields is empty";
		if (why) {
			snprintf(ld->err, ld->errlen, "%s: %s", r->where, why);
			return HD_E_CONFIG;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(self->rules[k].id, r->id) == 0) {
				snprintf(ld->err, ld->errlen, "%s: duplicate id", r->where);
				return HD_E_CONFIG;
			}
		if (needs & NEED_LIST) {
			r->list = hd_policy_find_list(self, r->list_name);
			if (r->list < 0) {
				snprintf(ld->err, ld->errlen, "%s: no list named \"%s\" in policy.lists",
					 r->where, r->list_name);
				return HD_E_CONFIG;
			}
		}
		if (hd_policy_checks[r->check].db) {
			r->db.rule = r->id;
			r->db.clause = r->clause;
			r->db.check = hd_policy_checks[r->check].name;
			r->db.action = (hd_policy_action_t)r->action;
			r->db.severity = (hd_policy_severity_t)r->severity;
			r->db.count = r->count;
			r->db.per_s = r->per_s;
		}
	}
	return HD_OK;
}

/* Trim spaces and punctuation from both ends of folded text. */
static void hd_policy_trim_punct(const char *s, size_t len, size_t *start, size_t *end)
{
	const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
	size_t a = 0, b = len;
	while (a < b) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t n = utf8proc_iterate(p + a, (utf8proc_ssize_t)(b - a), &cp);
		if (n <= 0)
			break;
		utf8proc_category_t c = utf8proc_category(cp);
		if (cp != ' ' && (c < UTF8PROC_CATEGORY_PC || c > UTF8PROC_CATEGORY_SO))
			break;
		a += (size_t)n;
	}
	while (b > a) {
		size_t k = b - 1;
		while (k > a && (p[k] & 0xc0) == 0x80)
			k--;
		utf8proc_int32_t cp;
		if (utf8proc_iterate(p + k, (utf8proc_ssize_t)(b - k), &cp) <= 0)
			break;
		utf8proc_category_t c = utf8proc_category(cp);
		if (cp != ' ' && (c < UTF8PROC_CATEGORY_PC || c > UTF8PROC_CATEGORY_SO))
			break;
		b = k;
	}
	*start = a;
	*end = b;
}

/* Compile the lists that enabled terms rules use; index the rest. */
static int hd_policy_compile(hd_policy_loader_t *ld)
{
	hd_policy_t *self = ld->self;
	uint64_t used = 0;
	for (size_t i = 0; i < self->rule_count; i++) {
		const hd_policy_rule_t *r = &self->rules[i];
		if (!r->enabled)
			continue;
		for (unsigned ch = 0; ch < 3; ch++) {
			if (!(r->channels & (1u << ch)))
				continue;
			if (hd_policy_checks[r->check].db)
				self->db_rules[ch][self->db_rule_count[ch]++] = &r->db;
			if (r->check == CHK_TERMS)
				self->fold_fields[ch] |= r->fields;
			if (r->check == CHK_SUBJECT_MEANINGLESS || r->check == CHK_SUBJECT_REQUIRED)
				self->fold_fields[ch] |= FIELD_SUBJECT;
			if (r->check == CHK_ATTACHMENT_MENTIONED || r->check == CHK_BODY_REQUIRED)
				self->fold_fields[ch] |= FIELD_BODY | FIELD_HTML;
		}
		if (r->check == CHK_TERMS)
			used |= UINT64_C(1) << r->list;
	}
	size_t total = 0;
	for (size_t l = 0; l < self->list_count; l++) {
		hd_policy_list_t *list = &self->lists[l];
		list->trim_start = hd_calloc(list->count ? list->count : 1, sizeof(size_t));
		list->trim_end = hd_calloc(list->count ? list->count : 1, sizeof(size_t));
		for (size_t k = 0; k < list->count; k++)
			hd_policy_trim_punct(list->terms[k], list->lens[k], &list->trim_start[k],
					     &list->trim_end[k]);
		if (used & (UINT64_C(1) << l))
			total += list->count;
	}
	const char **terms = hd_calloc(total ? total : 1, sizeof(*terms));
	size_t *lens = hd_calloc(total ? total : 1, sizeof(*lens));
	unsigned *lists = hd_calloc(total ? total : 1, sizeof(*lists));
	size_t n = 0;
	for (size_t l = 0; l < self->list_count; l++) {
		if (!(used & (UINT64_C(1) << l)))
			continue;
		for (size_t k = 0; k < self->lists[l].count; k++) {
			terms[n] = self->lists[l].terms[k];
			lens[n] = self->lists[l].lens[k];
			lists[n] = (unsigned)l;
			n++;
		}
	}
	char why[256];
	int rc = hd_match_new(terms, lens, lists, n, &self->match, why, sizeof(why));
	free(terms);
	free(lens);
	free(lists);
	if (rc != HD_OK) {
		snprintf(ld->err, ld->errlen, "policy lists: %s", why);
		return rc;
	}
	self->term_count = n;
	return HD_OK;
}

static int hd_policy_read_config(hd_policy_loader_t *ld, config_t *lc, const char *path)
{
	int ok = path ? config_read_file(lc, path) : config_read_string(lc, hd_policy_default_text);
	if (ok != CONFIG_TRUE) {
		if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
			snprintf(ld->err, ld->errlen, "%s: cannot read file", path);
		else
			snprintf(ld->err, ld->errlen, "%s:%d: %s",
				 config_error_file(lc) ? config_error_file(lc)
						       : path ? path : "(built-in policy)",
				 config_error_line(lc), config_error_text(lc));
		return HD_E_CONFIG;
	}
	const config_setting_t *policy = config_lookup(lc, "policy");
	return policy ? hd_policy_apply_group(ld, policy) : HD_OK;
}

int hd_policy_load(const char *path, hd_policy_t **out, char *err, size_t errlen)
{
	hd_policy_t *self = hd_calloc(1, sizeof(*self));
	self->enabled = true;
	hd_policy_loader_t ld = {self, NULL, err, errlen};
	hd_fold_init();  /* at start-up, not in the first submission */
	*out = NULL;

	config_t lc;
	config_init(&lc);
	int rc = hd_policy_read_config(&ld, &lc, NULL);
	config_destroy(&lc);
	if (rc != HD_OK)
		hd_panic("the built-in policy does not load: %s", err);

	if (path) {
		config_init(&lc);
		/* List files, like @include, are relative to the file's directory. */
		hd_config_set_include_dir(&lc, path);
		ld.dir = config_get_include_dir(&lc);
		rc = hd_policy_read_config(&ld, &lc, path);
		config_destroy(&lc);
		ld.dir = NULL;
	}
	if (rc == HD_OK)
		rc = hd_policy_validate(&ld);
	if (rc == HD_OK)
		rc = hd_policy_compile(&ld);
	if (rc != HD_OK) {
		hd_policy_destroy(&self);
		return rc;
	}
	*out = self;
	return HD_OK;
}

void hd_policy_destroy(hd_policy_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_policy_t *self = *self_p;
	for (size_t i = 0; i < self->rule_count; i++) {
		hd_policy_rule_t *r = &self->rules[i];
		free(r->id);
		free(r->clause);
		free(r->list_name);
		free(r->hint);
	}
	for (size_t i = 0; i < self->list_count; i++) {
		hd_policy_list_clear(&self->lists[i]);
		free(self->lists[i].name);
	}
	hd_match_destroy(&self->match);
	for (int i = 0; i < 3; i++)
		hd_fold_buf_release(&self->fold[i]);
	hd_fold_buf_release(&self->fold_tmp);
	hd_fold_buf_release(&self->html_text);
	free(self);
	*self_p = NULL;
}

bool hd_policy_is_enabled(const hd_policy_t *self)
{
	return self->enabled;
}

size_t hd_policy_db_rules(const hd_policy_t *self, hd_channel_t channel,
			  const hd_policy_db_rule_t *const **rules)
{
	if (!self->enabled || (unsigned)channel > HD_CHANNEL_SMS) {
		*rules = NULL;
		return 0;
	}
	*rules = self->db_rules[channel];
	return self->db_rule_count[channel];
}

const char *hd_policy_action_name(hd_policy_action_t action)
{
	return (unsigned)action < 5 ? hd_policy_action_names[action] : "warn";
}

const char *hd_policy_severity_name(hd_policy_severity_t severity)
{
	return (unsigned)severity < 4 ? hd_policy_severity_names[severity] : "info";
}

size_t hd_policy_rule_count(const hd_policy_t *self)
{
	return self->rule_count;
}

size_t hd_policy_term_count(const hd_policy_t *self)
{
	return self->term_count;
}

static void hd_policy_print_names(FILE *out, const char *key, unsigned bits,
				  const char *const *names, unsigned n)
{
	fprintf(out, " %s = [", key);
	const char *sep = "";
	for (unsigned i = 0; i < n; i++)
		if (bits & (1u << i)) {
			fprintf(out, "%s\"%s\"", sep, names[i]);
			sep = ", ";
		}
	fputs("];", out);
}

void hd_policy_print(const hd_policy_t *self, FILE *out)
{
	static const char *const channels[] = {"email", "im", "sms"};
	static const char *const fields[] = {"subject", "body", "html"};
	static const char *const purposes[] = {"none", "service", "urgent", "marketing"};
	fprintf(out, "policy = {\n  enabled = %s;\n  # terms as matched: folded (NFKD, case, "
		"marks and zero-width removed)\n  lists = {\n", self->enabled ? "true" : "false");
	for (size_t i = 0; i < self->list_count; i++) {
		const hd_policy_list_t *l = &self->lists[i];
		fprintf(out, "    %s = { terms = [", l->name);
		for (size_t k = 0; k < l->count; k++) {
			fputs(k ? ", " : "", out);
			hd_config_print_string(out, l->terms[k]);
		}
		fputs("]; };\n", out);
	}
	fputs("  };\n  rules = (\n", out);
	for (size_t i = 0; i < self->rule_count; i++) {
		const hd_policy_rule_t *r = &self->rules[i];
		fprintf(out, "    { id = \"%s\"; clause = \"%s\"; check = \"%s\"; enabled = %s;"
			" action = \"%s\"; severity = \"%s\";", r->id, r->clause,
			hd_policy_checks[r->check].name, r->enabled ? "true" : "false",
			hd_policy_action_names[r->action], hd_policy_severity_names[r->severity]);
		hd_policy_print_names(out, "channels", r->channels, channels, 3);
		unsigned needs = hd_policy_checks[r->check].needs;
		if (r->check == CHK_TERMS)
			hd_policy_print_names(out, "fields", r->fields, fields, 3);
		if (needs & NEED_LIST)
			fprintf(out, " list = \"%s\";", r->list_name);
		if (r->marks)
			fprintf(out, " marks = \"%s\";", r->marks == MARK_MAJOR ? "major" : "important");
		if (needs & NEED_LIMIT)
			fprintf(out, " limit = %lld;", (long long)r->limit);
		if (needs & NEED_CAP)
			fprintf(out, " count = %lld; per_s = %lld;", (long long)r->count,
				(long long)r->per_s);
		if (needs & NEED_HOURS) {
			fprintf(out, " start = \"%02d:%02d\"; end = \"%02d:%02d\"; "
				"utc_offset_minutes = %lld;", r->start_min / 60, r->start_min % 60,
				r->end_min / 60, r->end_min % 60, (long long)r->utc_offset_min);
			hd_policy_print_names(out, "exempt_purposes", r->exempt_purposes, purposes, 4);
		}
		if (r->hint) {
			fputs(" hint = ", out);
			hd_config_print_string(out, r->hint);
			fputc(';', out);
		}
		fprintf(out, " }%s\n", i + 1 < self->rule_count ? "," : "");
	}
	fputs("  );\n};\n", out);
}

/* ---- evaluation ---------------------------------------------------------- */

void hd_policy_verdict_reset(hd_policy_verdict_t *verdict)
{
	verdict->count = 0;
	verdict->dropped = 0;
	verdict->reject = -1;
	verdict->important = false;
	verdict->major = false;
	verdict->not_before_s = 0;
}

hd_policy_finding_t *hd_policy_verdict_add(hd_policy_verdict_t *verdict, const char *rule,
					   const char *clause, hd_policy_action_t action,
					   hd_policy_severity_t severity, const char *field)
{
	if (verdict->count >= HD_POLICY_MAX_FINDINGS) {
		/* Cannot happen with the policy's own rules (one finding each, the
		 * array holds them all); if it does, a refusal must never be the
		 * one lost: it takes the place of the last finding. */
		verdict->dropped++;
		if (action != HD_POLICY_REJECT || verdict->reject >= 0)
			return NULL;
		verdict->count--;
	}
	hd_policy_finding_t *f = &verdict->findings[verdict->count];
	f->rule = rule;
	f->clause = clause;
	f->action = action;
	f->severity = severity;
	snprintf(f->field, sizeof(f->field), "%s", field);
	f->reason[0] = '\0';
	if (action == HD_POLICY_REJECT && verdict->reject < 0)
		verdict->reject = (int)verdict->count;
	verdict->count++;
	return f;
}

static void hd_policy_report(hd_policy_verdict_t *v, const hd_policy_rule_t *r, const char *field,
			     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void hd_policy_report(hd_policy_verdict_t *v, const hd_policy_rule_t *r, const char *field,
			     const char *fmt, ...)
{
	hd_policy_finding_t *f = hd_policy_verdict_add(v, r->id, r->clause,
						       (hd_policy_action_t)r->action,
						       (hd_policy_severity_t)r->severity, field);
	if (!f)
		return;
	/* The reason, cut (at a character boundary) to leave room for the
	 * " (POLICY X)" suffix people and tests look for. */
	char suffix[32];
	snprintf(suffix, sizeof(suffix), " (POLICY %s)", r->clause);
	size_t room = sizeof(f->reason) - strlen(suffix);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(f->reason, room, fmt, ap);
	va_end(ap);
	size_t len = n < 0 ? 0 : (size_t)n >= room ? room - 1 : (size_t)n;
	while (len > 0 && !hd_msg_is_utf8(f->reason, len))
		len--;
	memcpy(f->reason + len, suffix, strlen(suffix) + 1);
}

static size_t hd_policy_chars(const char *s)
{
	size_t n = 0;
	for (; s && *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static const char *const hd_policy_field_paths[] = {"msg.subject", "msg.body", "msg.html"};
static const char *const hd_policy_field_names[] = {"subject", "body", "HTML body"};

static void hd_policy_check_terms(hd_policy_t *self, const hd_policy_rule_t *r,
				  const hd_match_hits_t *hits, hd_policy_verdict_t *v)
{
	uint64_t bit = UINT64_C(1) << r->list;
	for (int f = 0; f < 3; f++) {
		if (!(r->fields & (1u << f)) || !(hits[f].lists & bit))
			continue;
		const char *term = hd_match_term(self->match, hits[f].first_term[r->list]);
		const char *list = self->lists[r->list].name;
		switch (r->action) {
		case HD_POLICY_REJECT:
			hd_policy_report(v, r, hd_policy_field_paths[f],
					 "the %s contains \"%s\", which the %s list does not allow",
					 hd_policy_field_names[f], term, list);
			break;
		case HD_POLICY_HOLD:
			hd_policy_report(v, r, hd_policy_field_paths[f],
					 "the %s contains \"%s\" (%s list): %s", hd_policy_field_names[f],
					 term, list, r->marks == MARK_MAJOR
					 ? "senior leadership approves too"
					 : "the department head approves before it is sent");
			if (r->marks == MARK_MAJOR)
				v->major = true;
			v->important = true;
			break;
		default:
			hd_policy_report(v, r, hd_policy_field_paths[f], "the %s contains \"%s\" (%s list)",
					 hd_policy_field_names[f], term, list);
			break;
		}
		return;  /* one finding per rule: the first field that matched */
	}
}

static void hd_policy_check_meaningless(hd_policy_t *self, const hd_policy_rule_t *r,
					const hd_msg_t *msg, hd_policy_verdict_t *v)
{
	if (!msg->subject)
		return;
	size_t a, b;
	hd_policy_trim_punct(self->fold[0].data, self->fold[0].len, &a, &b);
	const hd_policy_list_t *l = &self->lists[r->list];
	for (size_t i = 0; i < l->count; i++) {
		size_t ta = l->trim_start[i], tb = l->trim_end[i];
		if (b - a == tb - ta && memcmp(self->fold[0].data + a, l->terms[i] + ta, b - a) == 0) {
			hd_policy_report(v, r, "msg.subject", "the subject \"%s\" says nothing about "
					 "the message: describe its purpose", msg->subject);
			return;
		}
	}
}

static bool hd_policy_body_names(hd_policy_t *self, const char *name)
{
	if (hd_fold(&self->fold_tmp, name, strlen(name)) != HD_OK || self->fold_tmp.len == 0)
		return true;
	const char *n = self->fold_tmp.data;
	size_t len = self->fold_tmp.len;
	const char *dot = memchr(n, '.', len) ? strrchr(n, '.') : NULL;
	size_t stem = dot && dot > n ? (size_t)(dot - n) : len;
	for (int f = 1; f < 3; f++) {
		const hd_fold_buf_t *t = &self->fold[f];
		if (t->len == 0)
			continue;
		if (memmem(t->data, t->len, n, len) || (stem >= 3 && memmem(t->data, t->len, n, stem)))
			return true;
	}
	return false;
}

static void hd_policy_check_mentioned(hd_policy_t *self, const hd_policy_rule_t *r,
				      const hd_msg_t *msg, hd_policy_verdict_t *v)
{
	char names[160] = "";
	size_t missing = 0, used = 0;
	for (size_t i = 0; i < msg->attachment_count; i++) {
		if (hd_policy_body_names(self, msg->attachments[i].name))
			continue;
		if (missing++ < 3) {
			int n = snprintf(names + used, sizeof(names) - used, "%s\"%s\"",
					 used ? ", " : "", msg->attachments[i].name);
			if (n > 0)
				used = (size_t)n < sizeof(names) - used ? used + (size_t)n
									: sizeof(names) - 1;
			/* Cut at a character boundary, never inside one. */
			while (used > 0 && ((unsigned char)names[used] & 0xc0) == 0x80)
				used--;
			names[used] = '\0';
		}
	}
	if (missing > 0)
		hd_policy_report(v, r, "msg.attachments",
				 "the body never mentions %zu attached file%s (%s%s): say what "
				 "is attached and why", missing, missing == 1 ? "" : "s", names,
				 missing > 3 ? ", ..." : "");
}

/* "10 MB", or the exact count as well when rounding would hide a difference. */
static void hd_policy_format_size(char *buf, size_t len, int64_t bytes)
{
	if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0)
		snprintf(buf, len, "%lld MB", (long long)(bytes / (1024 * 1024)));
	else if (bytes >= 1024 * 1024)
		snprintf(buf, len, "%.1f MB (%lld bytes)", (double)bytes / (1024.0 * 1024.0),
			 (long long)bytes);
	else
		snprintf(buf, len, "%lld bytes", (long long)bytes);
}

static void hd_policy_check_quiet_hours(const hd_policy_rule_t *r, const hd_msg_t *msg,
					int64_t now_s, hd_policy_verdict_t *v)
{
	if (msg->purpose != HD_PURPOSE_NONE && (r->exempt_purposes & (1u << msg->purpose)))
		return;
	int64_t local = now_s + r->utc_offset_min * 60;
	int64_t day = local >= 0 ? local / 86400 : (local - 86399) / 86400;
	int64_t minute = (local - day * 86400) / 60;
	bool quiet = r->start_min < r->end_min
		     ? minute >= r->start_min && minute < r->end_min
		     : minute >= r->start_min || minute < r->end_min;
	if (!quiet)
		return;
	/* The next local end time, in Unix seconds. */
	int64_t end_local = day * 86400 + (int64_t)r->end_min * 60;
	if (end_local <= local)
		end_local += 86400;
	int64_t until = end_local - r->utc_offset_min * 60;
	if (until > v->not_before_s)
		v->not_before_s = until;
	hd_policy_report(v, r, "msg", "quiet hours %02d:%02d-%02d:%02d (UTC%+lld min): "
			 "deferred to %02d:%02d local time", r->start_min / 60, r->start_min % 60,
			 r->end_min / 60, r->end_min % 60, (long long)r->utc_offset_min,
			 r->end_min / 60, r->end_min % 60);
}

static void hd_policy_check(hd_policy_t *self, const hd_policy_rule_t *r, const hd_msg_t *msg,
			    const hd_match_hits_t *hits, int64_t now_s, hd_policy_verdict_t *v)
{
	char a[64], b[64];
	switch ((hd_policy_check_t)r->check) {
	case CHK_TERMS:
		hd_policy_check_terms(self, r, hits, v);
		break;
	case CHK_SUBJECT_REQUIRED: {
		size_t from = 0, to = 0;
		if (msg->subject)
			hd_policy_trim_punct(self->fold[0].data, self->fold[0].len, &from, &to);
		/* Missing, blank, or nothing but punctuation ("...", "!!!"). */
		if (from == to)
			hd_policy_report(v, r, "msg.subject", "an email needs a subject that "
					 "says what it is about");
		break;
	}
	case CHK_SUBJECT_MEANINGLESS:
		hd_policy_check_meaningless(self, r, msg, v);
		break;
	case CHK_BODY_REQUIRED:
		if (self->fold[1].len == 0 && self->fold[2].len == 0)
			hd_policy_report(v, r, "msg.body", "the message has no content");
		break;
	case CHK_SUBJECT_MAX_CHARS: {
		size_t n = hd_policy_chars(msg->subject);
		if ((int64_t)n > r->limit)
			hd_policy_report(v, r, "msg.subject", "the subject has %zu characters; "
					 "keep it to %lld", n, (long long)r->limit);
		break;
	}
	case CHK_REPLY_BY_REQUIRED:
		if ((msg->flags & HD_FLAG_NEEDS_REPLY) && msg->reply_by == 0)
			hd_policy_report(v, r, "msg.reply_by", "a message that needs a reply "
					 "must say by when (reply_by)");
		else if (msg->reply_by != 0 && msg->reply_by < now_s)
			hd_policy_report(v, r, "msg.reply_by", "reply_by is in the past");
		break;
	case CHK_ATTACHMENT_MAX_BYTES:
		for (size_t i = 0; i < msg->attachment_count; i++) {
			if ((int64_t)msg->attachments[i].size <= r->limit)
				continue;
			char field[48];
			snprintf(field, sizeof(field), "msg.attachments[%zu]", i);
			hd_policy_format_size(a, sizeof(a), (int64_t)msg->attachments[i].size);
			hd_policy_format_size(b, sizeof(b), r->limit);
			hd_policy_report(v, r, field, "attachment \"%s\" is %s, over the %s limit "
					 "per file: share it by link instead", msg->attachments[i].name,
					 a, b);
			break;
		}
		break;
	case CHK_ATTACHMENTS_MAX_TOTAL_BYTES: {
		int64_t total = 0;
		for (size_t i = 0; i < msg->attachment_count; i++)
			total += (int64_t)msg->attachments[i].size;
		if (total > r->limit) {
			hd_policy_format_size(a, sizeof(a), total);
			hd_policy_format_size(b, sizeof(b), r->limit);
			hd_policy_report(v, r, "msg.attachments", "the attachments total %s, over "
					 "the %s limit: share large files by link instead", a, b);
		}
		break;
	}
	case CHK_ATTACHMENT_MAX_COUNT:
		if ((int64_t)msg->attachment_count > r->limit)
			hd_policy_report(v, r, "msg.attachments", "%zu attachments; at most %lld: "
					 "share them by link instead", msg->attachment_count,
					 (long long)r->limit);
		break;
	case CHK_ATTACHMENT_MENTIONED:
		hd_policy_check_mentioned(self, r, msg, v);
		break;
	case CHK_CC_REASON_REQUIRED: {
		/* Blank after folding: white space of any kind, zero-width... */
		if (msg->cc_count == 0)
			break;
		bool blank = !msg->cc_reason ||
			     hd_fold(&self->fold_tmp, msg->cc_reason, strlen(msg->cc_reason)) != HD_OK ||
			     self->fold_tmp.len == 0;
		if (blank)
			hd_policy_report(v, r, "msg.cc_reason", "every CC needs a stated reason "
					 "(cc_reason)");
		break;
	}
	case CHK_MAX_RECIPIENTS: {
		size_t n = hd_msg_recipient_count(msg);
		if ((int64_t)n > r->limit)
			hd_policy_report(v, r, "msg.to", "%zu recipients; at most %lld per message",
					 n, (long long)r->limit);
		break;
	}
	case CHK_BODY_MAX_CHARS: {
		size_t n = hd_policy_chars(msg->body);
		if ((int64_t)n > r->limit)
			hd_policy_report(v, r, "msg.body", "the body has %zu characters, over the "
					 "limit of %lld%s%s", n, (long long)r->limit,
					 r->hint ? ": " : "", r->hint ? r->hint : "");
		break;
	}
	case CHK_SMS_MAX_SEGMENTS: {
		hd_sms_segments_t seg;
		const char *body = msg->body ? msg->body : "";
		if (hd_sms_segments_count(body, strlen(body), &seg) == HD_OK &&
		    (int64_t)seg.segments > r->limit)
			hd_policy_report(v, r, "msg.body", "the text needs %zu SMS parts (%zu "
					 "characters, %s); at most %lld: keep it to the key "
					 "information", seg.segments, seg.chars,
					 hd_sms_segments_encoding_name(seg.encoding),
					 (long long)r->limit);
		break;
	}
	case CHK_QUIET_HOURS:
		hd_policy_check_quiet_hours(r, msg, now_s, v);
		break;
	case CHK_IM_GROUP:
	case CHK_SMS_CONSENT:
	case CHK_SMS_CAP:
	case CHK_COUNT:
		break;  /* the database checks these (hd_policy_db_rules) */
	}
}

static bool hd_policy_html_is_inline(const char *name, size_t len)
{
	static const char *const inline_tags[] = {
		"a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "del", "dfn", "em", "font",
		"i", "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong",
		"sub", "sup", "tt", "u", "var", "wbr"};
	for (size_t i = 0; i < sizeof(inline_tags) / sizeof(inline_tags[0]); i++)
		if (strlen(inline_tags[i]) == len && strncasecmp(inline_tags[i], name, len) == 0)
			return true;
	return false;
}

/* A character reference at p ("&...;"): its UTF-8 in out, bytes used, 0 if none. */
static size_t hd_policy_html_entity(const char *p, const char *end, char out[4], size_t *out_len)
{
	static const struct {
		const char *name;
		const char *text;
	} named[] = {{"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"},
		     {"nbsp", " "}, {"shy", ""}, {"zwj", ""}, {"zwnj", ""}};
	const char *semi = memchr(p, ';', (size_t)(end - p) < 12 ? (size_t)(end - p) : 12);
	if (!semi)
		return 0;
	size_t n = (size_t)(semi - p) - 1;  /* between '&' and ';' */
	if (n >= 2 && p[1] == '#') {
		bool hex = p[2] == 'x' || p[2] == 'X';
		uint32_t cp = 0;
		size_t digits = 0;
		for (const char *q = p + (hex ? 3 : 2); q < semi; q++, digits++) {
			int d = *q >= '0' && *q <= '9' ? *q - '0'
			      : hex && *q >= 'a' && *q <= 'f' ? *q - 'a' + 10
			      : hex && *q >= 'A' && *q <= 'F' ? *q - 'A' + 10 : -1;
			if (d < 0 || cp > 0x10ffff)
				return 0;
			cp = cp * (hex ? 16u : 10u) + (uint32_t)d;
		}
		if (digits == 0 || cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		*out_len = (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)out);
		return (size_t)(semi - p) + 1;
	}
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strlen(named[i].name) == n && strncmp(p + 1, named[i].name, n) == 0) {
			*out_len = strlen(named[i].text);
			memcpy(out, named[i].text, *out_len);
			return (size_t)(semi - p) + 1;
		}
	return 0;
}

/*
 * The HTML body as a reader sees it, for matching: tags removed (inline
 * ones such as <b> join the text around them, the others separate it),
 * comments and the content of <script> and <style> dropped, character
 * references (&#111; &#x6f; &amp; &nbsp; ...) decoded. So
 * "c&#111;unter<b></b>feit" is found like "counterfeit".
 */
static void hd_policy_html_text(hd_fold_buf_t *b, const char *html)
{
	const char *p = html, *end = html + strlen(html);
	b->len = 0;
	hd_fold_buf_append(b, "", 0);
	while (p < end) {
		if (*p == '&') {
			char u[4];
			size_t ulen = 0, used = hd_policy_html_entity(p, end, u, &ulen);
			if (used) {
				hd_fold_buf_append(b, u, ulen);
				p += used;
				continue;
			}
		} else if (*p == '<') {
			if (end - p >= 4 && strncmp(p, "<!--", 4) == 0) {
				const char *close = strstr(p + 4, "-->");
				p = close ? close + 3 : end;
				hd_fold_buf_append(b, " ", 1);
				continue;
			}
			const char *name = p + 1 + (p + 1 < end && p[1] == '/');
			size_t nlen = 0;
			while (name + nlen < end && ((name[nlen] >= 'a' && name[nlen] <= 'z') ||
						     (name[nlen] >= 'A' && name[nlen] <= 'Z') ||
						     (name[nlen] >= '0' && name[nlen] <= '9')))
				nlen++;
			if (nlen > 0) {
				const char *close = memchr(p, '>', (size_t)(end - p));
				bool opening = p[1] != '/';
				p = close ? close + 1 : end;
				if (opening && ((nlen == 6 && strncasecmp(name, "script", 6) == 0) ||
						(nlen == 5 && strncasecmp(name, "style", 5) == 0))) {
					const char *stop = strcasestr(p, nlen == 6 ? "</script" : "</style");
					p = stop ? stop : end;
				}
				if (!hd_policy_html_is_inline(name, nlen))
					hd_fold_buf_append(b, " ", 1);
				continue;
			}
		}
		hd_fold_buf_append(b, p, 1);
		p++;
	}
}

int hd_policy_evaluate(hd_policy_t *self, const hd_msg_t *msg, int64_t now_s,
		       hd_policy_verdict_t *out)
{
	hd_policy_verdict_reset(out);
	if (!self->enabled)
		return HD_OK;

	unsigned ch = (unsigned)msg->channel;
	unsigned want = self->fold_fields[ch];
	const char *text[3] = {msg->subject, msg->body, msg->html};
	hd_match_hits_t hits[3];
	for (int f = 0; f < 3; f++) {
		self->fold[f].len = 0;
		hits[f].lists = 0;
		if (!(want & (1u << f)) || !text[f])
			continue;
		const char *t = text[f];
		if (f == 2) {
			hd_policy_html_text(&self->html_text, t);
			t = self->html_text.data;
		}
		/* Decoded text is valid UTF-8, and so is the HTML's text (tags
		 * are ASCII, references are encoded whole); a failure here is a
		 * bug upstream. */
		if (hd_fold(&self->fold[f], t, strlen(t)) != HD_OK)
			return HD_E_INTERNAL;
		if (hd_match_scan(self->match, self->fold[f].data, self->fold[f].len, &hits[f]) != HD_OK)
			return HD_E_INTERNAL;
	}
	for (size_t i = 0; i < self->rule_count; i++) {
		const hd_policy_rule_t *r = &self->rules[i];
		if (r->enabled && (r->channels & (1u << ch)))
			hd_policy_check(self, r, msg, hits, now_s, out);
	}
	return HD_OK;
}
