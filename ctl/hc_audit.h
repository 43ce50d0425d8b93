/*
 * NAME
 *	hc_audit - checking the hash-chained audit trail
 * DESCRIPTION
 *	Runs herald.audit_verify() (sql/001_intake.sql), which recomputes
 *	every link's digest from the current event rows and every link's
 *	hash from its predecessor, in one read-only snapshot together with
 *	the counts it reports. The verdict is the database's; this module
 *	only fetches, explains and prints it.
 * LIMITS
 *	At most HC_AUDIT_MAX_PROBLEMS problems are fetched; the total is
 *	still counted.
 */
#ifndef HC_AUDIT_H
#define HC_AUDIT_H

#include <stddef.h>

#include "hc_cli.h"
#include "hc_db.h"

#define HC_AUDIT_MAX_PROBLEMS 10000

typedef struct hc_audit_problem {
	char code[32];      /* "digest_mismatch", ... (see audit_verify) */
	long long chain_id; /* -1 when not about a chain */
	long long seq;      /* -1 when not about a link */
	long long event_id; /* -1 when not about one event */
} hc_audit_problem_t;

typedef struct hc_audit_report {
	long long events;   /* rows in audit_events */
	long long links;    /* rows in audit_links */
	long long chains;   /* chains with at least one link */
	long long nproblems_total;
	size_t nproblems;   /* fetched, <= HC_AUDIT_MAX_PROBLEMS */
	hc_audit_problem_t *problems; /* owned by the report */
} hc_audit_report_t;

/*
 * Verify the audit trail into *report (zeroed first; release it with
 * hc_audit_report_clear). Returns 0, HD_E_NOTFOUND when the database has
 * no audit trail (not migrated), or an hc_db error; message in err.
 */
int hc_audit_verify(hc_db_t *db, hc_audit_report_t *report, char *err, size_t errlen);

/* Free what report owns and zero it; NULL-safe. */
void hc_audit_report_clear(hc_audit_report_t *report);

/* A sentence explaining a problem code; never NULL; static storage. */
const char *hc_audit_problem_text(const char *code);

/* "heraldctl audit verify [--json]": exit 0 intact, 1 problems found. */
int hc_audit_cmd_verify(hc_ctx_t *ctx, int argc, char **argv);

#endif
