/*
 * NAME
 *	hd_policy - the sending policy, evaluated once per submission
 * DESCRIPTION
 *	Every clause of the sending policy that can be decided from the
 *	message itself is a rule here; the clauses that need the database
 *	(registered IM groups I3, marketing consent S1, frequency caps S3)
 *	are rules too, handed to the store to check in the intake
 *	transaction (hd_policy_db_rules).
 *
 *	Rules are declarative: the `policy` group of heraldd's libconfig
 *	file, merged over the built-in defaults (the same text as the
 *	example in deploy/heraldd.conf):
 *	    policy = {
 *	      enabled = true;
 *	      lists = { prohibited = { terms = ["..."]; files = ["prohibited.txt"]; }; };
 *	      rules = ( { id = "prohibited-content"; clause = "G3.1"; check = "terms";
 *	                  list = "prohibited"; fields = ["subject", "body", "html"];
 *	                  action = "reject"; severity = "major"; } );
 *	    };
 *	A list given replaces the built-in list of that name; a rule whose
 *	id is built in changes only the keys it gives (so
 *	`{ id = "sms-quiet-hours"; enabled = true; }` switches one rule on);
 *	a new id adds a rule. Every error names file:line.
 *
 *	Text is matched after hd_fold (NFKD + case fold, zero-width and
 *	combining marks removed, spaces collapsed) with one Hyperscan scan
 *	per field over every list (hd_match).
 *
 *	Evaluation returns findings: rule id, POLICY clause, action
 *	(reject, hold, tag, defer, warn), severity and a reason a person
 *	can act on. Every rule runs, so a refused message reports all its
 *	problems; the first reject decides the error sent back.
 *	Pure apart from reading list files at load: no logging.
 * OWNERSHIP
 *	hd_policy_t owns its rules, lists and matcher; findings borrow the
 *	rule id and clause strings from it. One policy serves one thread.
 */
#ifndef HD_POLICY_H
#define HD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hd_msg.h"

typedef struct hd_policy hd_policy_t;

typedef enum {
	HD_POLICY_REJECT,
	HD_POLICY_HOLD,
	HD_POLICY_TAG,
	HD_POLICY_DEFER,
	HD_POLICY_WARN
} hd_policy_action_t;

typedef enum {
	HD_POLICY_INFO,
	HD_POLICY_MINOR,
	HD_POLICY_MAJOR,
	HD_POLICY_CRITICAL
} hd_policy_severity_t;

/*
 * Findings per evaluation: every rule gives at most one, the broker adds
 * two (E1 tag, A3 bulk application), so none is ever dropped; should
 * one be, it is counted in dropped and a refusal is never the one lost.
 */
#define HD_POLICY_MAX_RULES    128u
#define HD_POLICY_MAX_FINDINGS (HD_POLICY_MAX_RULES + 4u)

typedef struct hd_policy_finding {
	const char *rule;                /* borrowed from the policy */
	const char *clause;              /* POLICY.md clause ID, e.g. "E3" */
	hd_policy_action_t action;
	hd_policy_severity_t severity;
	char field[64];                  /* request field at fault, e.g. "msg.subject" */
	char reason[256];
} hd_policy_finding_t;

typedef struct hd_policy_verdict {
	hd_policy_finding_t findings[HD_POLICY_MAX_FINDINGS];
	size_t count;
	size_t dropped;         /* findings beyond HD_POLICY_MAX_FINDINGS */
	int reject;             /* index of the first reject finding; -1 when none */
	bool important;         /* a hold rule marking "important" matched (A2.1) */
	bool major;             /* a hold rule marking "major" matched (A2.1) */
	int64_t not_before_s;   /* deferred (quiet hours) until this Unix time; 0 = not */
} hd_policy_verdict_t;

/* A rule the database checks in the intake transaction. */
typedef struct hd_policy_db_rule {
	const char *rule;
	const char *clause;
	const char *check;          /* "im_group" | "sms_consent" | "sms_cap" */
	hd_policy_action_t action;
	hd_policy_severity_t severity;
	int64_t count;              /* sms_cap: at most count ... */
	int64_t per_s;              /* ... per this many seconds */
} hd_policy_db_rule_t;

/*
 * Load the built-in defaults merged with the `policy` group of the
 * libconfig file at path (NULL: defaults only). On success *out is the
 * caller's. On failure returns HD_E_CONFIG with "file:line: reason" in err.
 */
int hd_policy_load(const char *path, hd_policy_t **out, char *err, size_t errlen);

/* NULL-safe; sets *self_p to NULL. */
void hd_policy_destroy(hd_policy_t **self_p);

/* False when the file said `enabled = false`: evaluate then finds nothing. */
bool hd_policy_is_enabled(const hd_policy_t *self);

/*
 * Evaluate msg (decoded and valid) at now_s (Unix seconds). Fills *out
 * completely. Returns 0, or HD_E_INTERNAL when the matcher failed
 * (the caller refuses the submission rather than let it pass unchecked).
 */
int hd_policy_evaluate(hd_policy_t *self, const hd_msg_t *msg, int64_t now_s,
		       hd_policy_verdict_t *out);

/* Empty verdict: no findings, no refusal, nothing marked or deferred. */
void hd_policy_verdict_reset(hd_policy_verdict_t *verdict);

/*
 * Append a finding the caller decided (e.g. the E1 subject tag, set
 * after classification); rule and clause must outlive the verdict.
 * Returns the finding, or NULL when the verdict is full (counted in
 * dropped).
 */
hd_policy_finding_t *hd_policy_verdict_add(hd_policy_verdict_t *verdict, const char *rule,
					   const char *clause, hd_policy_action_t action,
					   hd_policy_severity_t severity, const char *field);

/* The enabled database rules for channel; *rules borrows from the policy. */
size_t hd_policy_db_rules(const hd_policy_t *self, hd_channel_t channel,
			  const hd_policy_db_rule_t *const **rules);

/*
 * Write the effective policy as a libconfig `policy` group (terms as
 * matched, i.e. folded), for --print-config and for comparing policies.
 */
void hd_policy_print(const hd_policy_t *self, FILE *out);

/* Wire names (static storage). */
const char *hd_policy_action_name(hd_policy_action_t action);
const char *hd_policy_severity_name(hd_policy_severity_t severity);

/* Rules and terms loaded, for the start-up log line. */
size_t hd_policy_rule_count(const hd_policy_t *self);
size_t hd_policy_term_count(const hd_policy_t *self);

#endif
