/*
 * NAME
 *	hc_approve - approvers' commands: held, show, approve, reject
 * DESCRIPTION
 *	What an approver does from a terminal, logged in to PostgreSQL as
 *	their own role: list what awaits them (herald.held_for_me), read one
 *	message with its approval chain (herald.message_detail), and approve
 *	or reject it (herald.approve / herald.reject). Every rule (who may
 *	approve what, levels, due times, separation of duties) is enforced
 *	by those SECURITY DEFINER functions; this module never decides, it
 *	prints the database's refusal word for word and exits 1. It also
 *	holds the pure helpers the commands share: durations ("2h30m"),
 *	relative due times ("in 5h", "overdue 2m"), display widths that count
 *	East Asian wide characters as two columns, and the call wrapper that
 *	turns a server error into its primary message.
 *	Confidential messages (POLICY K2) are sealed at rest (hd_seal):
 *	show opens a sealed body or HTML part when the caller holds the key
 *	(--key-file, HERALD_KEY_FILE, HERALD_KEYS) and otherwise says
 *	"[confidential: sealed, no key]"; a message the database redacted
 *	for this caller reads "[confidential: redacted]". The sealed text
 *	itself is never printed in the readable view.
 * OWNERSHIP
 *	Results returned through PGresult ** are the caller's to PQclear.
 * LIMITS
 *	--comment and --reason up to HC_APPROVE_MAX_TEXT_BYTES.
 */
#ifndef HC_APPROVE_H
#define HC_APPROVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "hc_cli.h"
#include "hc_db.h"
#include "hd_seal.h"

#define HC_APPROVE_MAX_TEXT_BYTES 4000
#define HC_APPROVE_MAX_DURATION_S (366LL * 86400)
#define HC_APPROVE_SUBJECT_COLS 40

/*
 * Run sql like hc_db_exec; on failure writes the server's primary message
 * (no "ERROR:" prefix, no DETAIL) to msg and the SQLSTATE to sqlstate
 * (6 bytes). Returns 0 or HD_E_UNAVAILABLE / HD_E_IO.
 */
int hc_approve_exec(hc_db_t *db, const char *sql, int nparams, const char *const *params,
                    PGresult **res_p, char sqlstate[6], char *msg, size_t msglen);

/*
 * hc_approve_exec, printing "heraldctl: WHAT: MESSAGE" to ctx->err on
 * failure (a missing function or table says to run 'heraldctl db
 * migrate'). Returns an HC_EXIT_* code: 0, 1, or 4 when the connection
 * is gone.
 */
int hc_approve_call(hc_ctx_t *ctx, hc_db_t *db, const char *what, const char *sql, int nparams,
                    const char *const *params, PGresult **res_p);

/*
 * Parse a duration: one or more NUMBER UNIT pairs, units s, m, h, d, w
 * ("90s", "2h", "1h30m"), at most HC_APPROVE_MAX_DURATION_S. Returns 0
 * and *seconds_p, or HD_E_INVALID with a message in err.
 */
int hc_approve_parse_duration(const char *text, int64_t *seconds_p, char *err, size_t errlen);

/*
 * A due time relative to now, seconds_left = due - now: "in 45s", "in
 * 12m", "in 5h", "in 5h 30m", "in 2d 3h"; past it "overdue 2m"; under a
 * second either way "due now". Units are floored. Returns buf.
 */
char *hc_approve_fmt_due(double seconds_left, char *buf, size_t len);

/* Terminal columns s takes: East Asian wide and fullwidth characters 2, combining marks 0. */
size_t hc_approve_display_width(const char *s);

/*
 * s cut to at most max_cols columns (ending in "..." when cut, never
 * splitting a character), control characters as spaces. Returns buf.
 */
char *hc_approve_fit(const char *s, size_t max_cols, char *buf, size_t len);

/* "heraldctl held" options. */
typedef struct hc_approve_held_args {
	const char *department; /* NULL = all; borrowed from argv */
	const char *klass;      /* "important", "bulk" or NULL */
	int64_t older_than_s;   /* -1 = no filter */
	bool json;
} hc_approve_held_args_t;

/* Parse "held" options into *a. Returns 0, or HC_EXIT_USAGE with a message in err. */
int hc_approve_parse_held_args(int argc, char **argv, hc_approve_held_args_t *a, char *err,
                               size_t errlen);

/* "approve ID [--comment TEXT]" / "reject ID --reason TEXT" / "show ID". */
typedef struct hc_approve_decide_args {
	int64_t message_id;
	const char *comment;    /* approve: --comment, may be NULL; reject: --reason */
	const char *key_file;   /* show: --key-file [ID:]PATH, may be NULL */
	bool json;
} hc_approve_decide_args_t;

typedef enum hc_approve_verb {
	HC_APPROVE_SHOW,
	HC_APPROVE_APPROVE,
	HC_APPROVE_REJECT
} hc_approve_verb_t;

/*
 * Parse the arguments of show, approve or reject: exactly one message id
 * (a positive integer); approve takes --comment, reject needs a
 * non-blank --reason. Returns 0, or HC_EXIT_USAGE with a message in err.
 */
int hc_approve_parse_decide_args(hc_approve_verb_t verb, int argc, char **argv,
                                 hc_approve_decide_args_t *a, char *err, size_t errlen);

/* One row of "held". Strings borrowed. */
typedef struct hc_approve_held_row {
	int64_t message_id;
	const char *klass, *sender, *department, *subject, *kind;
	int level;
	double due_in_s;        /* due_at - now */
} hc_approve_held_row_t;

/* The "held" table: ID, CLASS, FROM, DEPT, SUBJECT, LEVEL, DUE, aligned by display width. */
void hc_approve_print_held(FILE *out, const hc_approve_held_row_t *rows, size_t n);

/*
 * The readable form of herald.message_detail()'s document: headers,
 * body (or "[confidential: redacted]" / "[confidential: sealed, no
 * key]", never sealed text), attachments, policy findings and
 * violations (each only when present: rule, clause, action, severity,
 * reason), bulk application, approval chain, deliveries by state.
 * now_s is the database's clock (Unix seconds) for relative due times.
 */
void hc_approve_print_detail(FILE *out, const json_t *detail, double now_s);

/*
 * The sentence after a successful approve: the requests approved
 * (approved, n rows of {kind, level}), released or not, and what still
 * waits according to detail (may be NULL): "message 7: approved level 1
 * (important); waiting for senior leadership" or "message 7: approved
 * level 1 (bulk); released: 3 deliveries queued". Returns buf.
 */
char *hc_approve_outcome_text(int64_t message_id, const json_t *approved, bool released,
                              const json_t *detail, char *buf, size_t len);

/*
 * The keys show may open sealed content with: key_file ("[ID:]PATH",
 * --key-file), env_key_file (the same, $HERALD_KEY_FILE) and env_keys
 * ("ID:PATH,ID:PATH", $HERALD_KEYS), each NULL or "" for none; a key
 * without an id opens content sealed under any id. Key files must be
 * mode 0600 or stricter. Returns 0 with *out (NULL when no key is
 * given; the caller destroys it), or HD_E_CONFIG / HD_E_INVALID with
 * "WHERE: path: reason" in err.
 */
int hc_approve_load_keys(const char *key_file, const char *env_key_file, const char *env_keys,
                         hd_seal_t **out, char *err, size_t errlen);

/*
 * For a confidential message in detail (herald.message_detail()'s
 * document): open its sealed body and html with keys (may be NULL) in
 * place, and record what happened in message.sealed = {"key_id",
 * "opened", "reason" (when not opened)}. A part that cannot be opened
 * keeps its sealed text (the JSON view shows it; the readable view
 * never does). Other documents are left alone.
 */
void hc_approve_open_detail(json_t *detail, const hd_seal_t *keys);

/* "heraldctl held [--department D] [--class C] [--older-than AGE] [--json]". */
int hc_approve_cmd_held(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl show ID [--key-file [ID:]PATH] [--json]". */
int hc_approve_cmd_show(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl approve ID [--comment TEXT] [--json]". */
int hc_approve_cmd_approve(hc_ctx_t *ctx, int argc, char **argv);

/* "heraldctl reject ID --reason TEXT [--json]". */
int hc_approve_cmd_reject(hc_ctx_t *ctx, int argc, char **argv);

#endif
