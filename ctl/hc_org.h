/*
 * NAME
 *	hc_org - the organisation: "heraldctl org import" and "org show"
 * DESCRIPTION
 *	Reads an organisation file (departments with their heads, staff with
 *	their roles, database login role and notification channel) in CSV or
 *	YAML, checks it completely before anything is sent (every mistake is
 *	reported as FILE:LINE: what), builds the JSON document of
 *	herald.org_import() and calls it; the database upserts, deactivates
 *	staff missing from the file and audits. "org show" prints what the
 *	database holds. The parsers are pure (text in, JSON out) and unit
 *	tested; YAML is parsed with libyaml, never by hand.
 *
 *	CSV layout: one file, one header row naming the columns (any order,
 *	"kind" required; unused columns may be left out), then one row per
 *	department or person, told apart by the "kind" column:
 *	  kind,name,address,department,roles,db_role,notify_channel,notify_address,head
 *	  department,Sales,,,,,,,carol@example.com
 *	  staff,Carol Chen,carol@example.com,Sales,employee;dept_head,carol,im,sales-heads,
 *	Department rows use name and head only; staff rows everything but
 *	head. roles are separated by ';', '|' or spaces (default employee).
 *	Blank lines and lines starting with '#' are ignored; fields follow
 *	RFC 4180 quoting ("a, b", "say ""hi""").
 *	YAML layout: {departments: [{name, head}], staff: [{address, name,
 *	department, roles: [..], db_role, notify: {channel, address}}]}.
 * OWNERSHIP
 *	Parsers return a new JSON document the caller owns (json_decref).
 * LIMITS
 *	Files up to HC_ORG_MAX_FILE_BYTES, HC_ORG_MAX_ENTRIES departments
 *	plus staff, fields up to HC_ORG_MAX_FIELD_BYTES.
 */
#ifndef HC_ORG_H
#define HC_ORG_H

#include <stddef.h>

#include <jansson.h>

#include "hc_cli.h"

#define HC_ORG_MAX_FILE_BYTES (16u * 1024 * 1024)
#define HC_ORG_MAX_ENTRIES 100000
#define HC_ORG_MAX_FIELD_BYTES 1024

typedef enum hc_org_format {
	HC_ORG_CSV,
	HC_ORG_YAML
} hc_org_format_t;

/*
 * The format of path: fmt_opt ("csv" or "yaml", from --format) when not
 * NULL, else by extension (.csv; .yaml or .yml). Returns 0 and *fmt_p, or
 * HD_E_INVALID with a message in err.
 */
int hc_org_format_of(const char *path, const char *fmt_opt, hc_org_format_t *fmt_p, char *err,
                     size_t errlen);

/*
 * Parse an organisation file held in text[0..len-1] (need not be NUL
 * terminated); name is used in messages ("org.csv:12: ..."). On success
 * returns 0 and *doc_p = {"departments": [{name, head}], "staff":
 * [{address, name, department, roles, db_role, notify_channel,
 * notify_address}]} (absent values as null; caller owns). On failure
 * returns HD_E_INVALID (or HD_E_TOOBIG) with "name:LINE: what" in err and
 * *doc_p NULL. Checks: known columns/keys, required fields, known roles
 * and channels, no duplicate department, address or db_role, every
 * staff department declared, every head a person in the file.
 */
int hc_org_parse(hc_org_format_t fmt, const char *name, const char *text, size_t len,
                 json_t **doc_p, char *err, size_t errlen);

/*
 * Read a whole file (at most HC_ORG_MAX_FILE_BYTES) into *text_p (caller
 * frees with hd_free, NUL terminated) and *len_p. Returns 0, HD_E_IO or
 * HD_E_TOOBIG with a message in err.
 */
int hc_org_read_file(const char *path, char **text_p, size_t *len_p, char *err, size_t errlen);

/* "heraldctl org import FILE [--format csv|yaml] [--json]". */
int hc_org_cmd_import(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl org show [--json]". */
int hc_org_cmd_show(hc_ctx_t *ctx, int argc, char **argv);

#endif
