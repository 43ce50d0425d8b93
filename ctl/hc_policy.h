/*
 * NAME
 *	hc_policy - the policy registries and reports: "heraldctl group",
 *	"consent" and "violations"
 * DESCRIPTION
 *	The operators' side of the sending policy kept in PostgreSQL
 *	(sql/004_policy.sql): the IM work group registry (POLICY I1/I3:
 *	group add/list/remove), SMS marketing consents (S1: consent
 *	add/revoke/import/show) and the violations report (V2). Every write
 *	is one call of a SECURITY DEFINER function that checks the caller's
 *	own login role and audits the change; this module only checks what
 *	an operator typed (so a typo is a usage error, exit 2, before the
 *	database is asked), reads consent CSV files, and prints. A refusal
 *	by the database is printed as its message, exit 1.
 *
 *	The group registry holds the NAME of the worker's endpoint entry
 *	(herald-worker.conf holds its URL and secret), never a URL: --endpoint
 *	refuses anything but a plain name.
 *
 *	Consent CSV: one number per line, "number,source[,granted_at]", an
 *	optional header line naming those columns (then in any order),
 *	blank lines and lines starting with '#' ignored, RFC 4180 quoting.
 *	granted_at is an ISO 8601 time (2024-07-01T12:00:00Z; without an
 *	offset, local time); empty means now.
 * OWNERSHIP
 *	Parsed argument structs borrow their strings from argv. The CSV
 *	parser returns a JSON document the caller owns (json_decref).
 *	Row structs passed to the printers are borrowed.
 * LIMITS
 *	Consent files up to HC_ORG_MAX_FILE_BYTES with at most
 *	HC_POLICY_MAX_CONSENTS numbers, fields up to HC_POLICY_MAX_FIELD_BYTES;
 *	at most HC_POLICY_MAX_DEPARTMENTS departments per group;
 *	violations lists at most HC_POLICY_MAX_LIMIT rows.
 */
#ifndef HC_POLICY_H
#define HC_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "hc_cli.h"

#define HC_POLICY_MAX_CONSENTS 100000
#define HC_POLICY_MAX_FIELD_BYTES 1024
#define HC_POLICY_MAX_DEPARTMENTS 64
#define HC_POLICY_MAX_NAME_BYTES 64
#define HC_POLICY_DEFAULT_LIMIT 100
#define HC_POLICY_MAX_LIMIT 100000

/* 1..64 of A-Z a-z 0-9 . _ -, starting with a letter or digit (IM groups, endpoints). */
bool hc_policy_is_plain_name(const char *s);

/* E.164 as on the wire: '+', then 8..15 ASCII digits, the first not '0'. */
bool hc_policy_is_e164(const char *s);

/* One of slack, mattermost, teams, wecom, dingtalk, feishu, webhook. */
bool hc_policy_is_provider(const char *s);

/*
 * Split a --departments value ("Sales, Engineering" or "*") into a new
 * JSON array of trimmed names (caller owns *deps_p). Returns 0, or
 * HD_E_INVALID with a message in err: empty, an empty name, '*' mixed
 * with names, a name given twice, more than HC_POLICY_MAX_DEPARTMENTS.
 */
int hc_policy_split_departments(const char *text, json_t **deps_p, char *err, size_t errlen);

/* "group add NAME --purpose P --owner ADDR --provider P --endpoint E --departments D". */
typedef struct hc_policy_group_args {
	const char *name, *purpose, *owner, *provider, *endpoint;
	json_t *departments;  /* owned: hc_policy_group_args_clear */
	bool json;
} hc_policy_group_args_t;

/*
 * Parse "group add" arguments into *a (zeroed first; clear it even on
 * failure). Every option is required. Returns 0, or HC_EXIT_USAGE with a
 * message in err naming the option (a bad name, a provider not in the
 * list, an endpoint that is a URL rather than a name, ...).
 */
int hc_policy_parse_group_add(int argc, char **argv, hc_policy_group_args_t *a, char *err,
                              size_t errlen);

/* Free what a owns and zero it; NULL-safe. */
void hc_policy_group_args_clear(hc_policy_group_args_t *a);

/* "consent add|revoke NUMBER --source S [--json]". */
typedef struct hc_policy_consent_args {
	const char *number;
	const char *source;
	bool json;
} hc_policy_consent_args_t;

/*
 * Parse "consent add" / "consent revoke" arguments: exactly one E.164
 * number and a non-blank --source. Returns 0, or HC_EXIT_USAGE with a
 * message in err.
 */
int hc_policy_parse_consent_args(int argc, char **argv, hc_policy_consent_args_t *a, char *err,
                                 size_t errlen);

/*
 * Parse a consent CSV file held in text[0..len-1] (need not be NUL
 * terminated); name is used in messages. On success returns 0 and *doc_p
 * = [{"number", "source", "granted_at": "YYYY-MM-DDTHH:MM:SS.mmmZ" |
 * null}] in file order (caller owns). On failure returns HD_E_INVALID
 * (HD_E_TOOBIG for too many lines) with "name:LINE: what" in err and
 * *doc_p NULL: a number that is not E.164, no source, a time that does
 * not parse, an unknown or missing header column, a bad quote, nothing
 * to import.
 */
int hc_policy_parse_consent_csv(const char *name, const char *text, size_t len, json_t **doc_p,
                                char *err, size_t errlen);

typedef enum hc_policy_by {
	HC_POLICY_BY_NONE,        /* list the violations */
	HC_POLICY_BY_SENDER,
	HC_POLICY_BY_DEPARTMENT
} hc_policy_by_t;

/* "violations [--since T] [--until T] [--sender A] [--department D] [--by ...] [--limit N]". */
typedef struct hc_policy_violations_args {
	int64_t since_ms;         /* 0 = open */
	int64_t until_ms;         /* 0 = open */
	const char *sender;       /* NULL = any */
	const char *department;   /* NULL = any */
	hc_policy_by_t by;
	long limit;               /* rows listed (not for --by) */
	bool json;
} hc_policy_violations_args_t;

/*
 * Parse "violations" options; T as in "heraldctl dead --since" (an age
 * before now_ms or an ISO 8601 time). Returns 0, or HC_EXIT_USAGE with a
 * message in err: a bad time, since not before until, --by not sender or
 * department, --by with --sender/--department/--limit, a bad --limit.
 */
int hc_policy_parse_violations_args(int argc, char **argv, int64_t now_ms,
                                    hc_policy_violations_args_t *a, char *err, size_t errlen);

/* One registered group as printed. Strings borrowed; departments as "Sales, Engineering". */
typedef struct hc_policy_group_row {
	const char *name, *purpose, *owner, *provider, *endpoint, *departments;
	bool active;
} hc_policy_group_row_t;

/* The "group list" table (NAME, PURPOSE, OWNER, PROVIDER, ENDPOINT, DEPARTMENTS, STATE). */
void hc_policy_print_groups(FILE *out, const hc_policy_group_row_t *rows, size_t n);

/* One violation as printed. Strings borrowed; NULL prints as "-". */
typedef struct hc_policy_violation_row {
	const char *at;           /* "YYYY-MM-DD HH:MM:SS" UTC */
	const char *sender, *department, *clause, *severity, *action, *rule, *message_id, *field,
		*reason;
} hc_policy_violation_row_t;

/*
 * The violations table, then "N of TOTAL violations shown" when cut, or
 * "no violations" when there is none.
 */
void hc_policy_print_violations(FILE *out, const hc_policy_violation_row_t *rows, size_t n,
                                long long total);

/* One line of the per-sender or per-department report. Strings borrowed. */
typedef struct hc_policy_report_row {
	const char *key;          /* sender or department; NULL = no department */
	const char *department;
	long long count, critical, major, minor, info;
	const char *last_at;      /* "YYYY-MM-DD HH:MM:SS" UTC */
} hc_policy_report_row_t;

/* The report table; its first column is SENDER or DEPARTMENT as by says. */
void hc_policy_print_report(FILE *out, hc_policy_by_t by, const hc_policy_report_row_t *rows,
                            size_t n);

/* "heraldctl group add NAME --purpose P --owner ADDR --provider P --endpoint E --departments D". */
int hc_policy_cmd_group_add(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl group list [--json]". */
int hc_policy_cmd_group_list(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl group remove NAME [--json]". */
int hc_policy_cmd_group_remove(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl consent add NUMBER --source S [--json]". */
int hc_policy_cmd_consent_add(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl consent revoke NUMBER --source S [--json]". */
int hc_policy_cmd_consent_revoke(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl consent import FILE [--json]". */
int hc_policy_cmd_consent_import(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl consent show NUMBER [--json]". */
int hc_policy_cmd_consent_show(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl violations [--since T] [--until T] [--sender A] [--department D] [--by B] ...". */
int hc_policy_cmd_violations(hc_ctx_t *ctx, int argc, char **argv);

#endif
