/*
 * NAME
 *	hc_audit - checking the hash-chained audit trail
 * DESCRIPTION
 *	See hc_audit.h.
 */
#include "hc_audit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hd_err.h"
#include "hd_mem.h"

#define HC_AUDIT_STR_(x) #x
#define HC_AUDIT_STR(x) HC_AUDIT_STR_(x)

static const struct {
	const char *code;
	const char *text;
} hc_audit_texts[] = {
	{"seq_gap", "the link's sequence number does not follow its predecessor's (a link was removed)"},
	{"prev_hash_mismatch", "the link does not point at its predecessor's hash (a link was removed or altered)"},
	{"hash_mismatch", "the link's hash does not match its own fields (the link was altered)"},
	{"digest_mismatch", "the events this link sealed are not what was sealed (an event was altered or removed)"},
	{"link_empty", "the link seals no event"},
	{"event_missing", "an event this link sealed no longer exists"},
	{"event_sealed_twice", "the event appears in more than one link"},
	{"event_unsealed", "the event is in no link (inserted behind the seal's back)"},
	{"head_mismatch", "the chain head disagrees with the chain's last link (links were removed or altered)"},
};

const char *hc_audit_problem_text(const char *code)
{
	for (size_t i = 0; i < sizeof(hc_audit_texts) / sizeof(hc_audit_texts[0]); i++)
		if (strcmp(hc_audit_texts[i].code, code) == 0)
			return hc_audit_texts[i].text;
	return "unrecognised problem";
}

void hc_audit_report_clear(hc_audit_report_t *report)
{
	if (report == NULL)
		return;
	hd_free(&report->problems);
	memset(report, 0, sizeof(*report));
}

static long long hc_audit_ll(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return -1;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

int hc_audit_verify(hc_db_t *db, hc_audit_report_t *report, char *err, size_t errlen)
{
	memset(report, 0, sizeof(*report));
	char state[6] = "";
	PGresult *res = NULL;
	/* One snapshot for the verdict and the counts printed with it. */
	int rc = hc_db_exec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL,
	                    NULL, err, errlen);
	if (rc != 0)
		return rc;
	rc = hc_db_exec(db,
	                "SELECT problem, chain_id, seq, event_id, count(*) OVER ()"
	                " FROM herald.audit_verify() LIMIT " HC_AUDIT_STR(HC_AUDIT_MAX_PROBLEMS),
	                0, NULL, &res, state, err, errlen);
	if (rc != 0) {
		/* undefined function / schema / table: not migrated yet */
		if (strcmp(state, "42883") == 0 || strcmp(state, "3F000") == 0 ||
		    strcmp(state, "42P01") == 0) {
			snprintf(err, errlen,
			         "the database has no audit trail yet (run 'heraldctl db migrate')");
			rc = HD_E_NOTFOUND;
		}
		goto rollback;
	}
	int n = PQntuples(res);
	report->problems = hd_calloc(n > 0 ? (size_t)n : 1, sizeof(*report->problems));
	for (int i = 0; i < n; i++) {
		hc_audit_problem_t *p = &report->problems[i];
		snprintf(p->code, sizeof(p->code), "%s", PQgetvalue(res, i, 0));
		p->chain_id = hc_audit_ll(res, i, 1);
		p->seq = hc_audit_ll(res, i, 2);
		p->event_id = hc_audit_ll(res, i, 3);
		report->nproblems_total = hc_audit_ll(res, i, 4);
	}
	report->nproblems = (size_t)n;
	PQclear(res);

	rc = hc_db_exec(db,
	                "SELECT (SELECT count(*) FROM herald.audit_events),"
	                " (SELECT count(*) FROM herald.audit_links),"
	                " (SELECT count(*) FROM herald.audit_chains WHERE seq > 0)",
	                0, NULL, &res, NULL, err, errlen);
	if (rc != 0)
		goto rollback;
	report->events = hc_audit_ll(res, 0, 0);
	report->links = hc_audit_ll(res, 0, 1);
	report->chains = hc_audit_ll(res, 0, 2);
	PQclear(res);
	return hc_db_exec(db, "COMMIT", 0, NULL, NULL, NULL, err, errlen);

rollback:
	if (PQstatus(hc_db_conn(db)) == CONNECTION_OK)
		PQclear(PQexec(hc_db_conn(db), "ROLLBACK"));
	return rc;
}

/* "chain 3 link 17 event 42" for the parts that apply. */
static void hc_audit_where(const hc_audit_problem_t *p, char *buf, size_t len)
{
	int used = 0;
	buf[0] = '\0';
	if (p->chain_id >= 0)
		used += snprintf(buf + used, len - (size_t)used, "chain %lld ", p->chain_id);
	if (p->seq >= 0 && (size_t)used < len)
		used += snprintf(buf + used, len - (size_t)used, "link %lld ", p->seq);
	if (p->event_id >= 0 && (size_t)used < len)
		used += snprintf(buf + used, len - (size_t)used, "event %lld ", p->event_id);
	if (used > 0 && (size_t)used <= len)
		buf[used - 1] = '\0';
}

static void hc_audit_print_json(FILE *out, const hc_audit_report_t *r)
{
	json_t *root = json_object();
	json_object_set_new(root, "intact", json_boolean(r->nproblems_total == 0));
	json_object_set_new(root, "events", json_integer(r->events));
	json_object_set_new(root, "links", json_integer(r->links));
	json_object_set_new(root, "chains", json_integer(r->chains));
	json_object_set_new(root, "problem_count", json_integer(r->nproblems_total));
	json_t *list = json_array();
	for (size_t i = 0; i < r->nproblems; i++) {
		const hc_audit_problem_t *p = &r->problems[i];
		json_t *o = json_pack("{s:s, s:s}", "problem", p->code, "description",
		                      hc_audit_problem_text(p->code));
		json_object_set_new(o, "chain_id", p->chain_id >= 0 ? json_integer(p->chain_id) : json_null());
		json_object_set_new(o, "seq", p->seq >= 0 ? json_integer(p->seq) : json_null());
		json_object_set_new(o, "event_id", p->event_id >= 0 ? json_integer(p->event_id) : json_null());
		json_array_append_new(list, o);
	}
	json_object_set_new(root, "problems", list);
	json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
	json_decref(root);
}

int hc_audit_cmd_verify(hc_ctx_t *ctx, int argc, char **argv)
{
	static const hc_opt_t spec[] = {{"json", false}};
	const char *values[1];
	char err[2048];
	size_t npos = 0;
	if (hc_cli_parse_opts(argc, argv, spec, 1, values, NULL, 0, &npos, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: audit verify: %s\n", err);
		return HC_EXIT_USAGE;
	}
	bool json = values[0] != NULL;

	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	hc_audit_report_t r;
	int rc = hc_audit_verify(db, &r, err, sizeof(err));
	hc_db_close(&db);
	if (rc != 0) {
		fprintf(ctx->err, "heraldctl: audit verify: %s\n", err);
		hc_audit_report_clear(&r);
		return hc_cli_exit_code(rc);
	}

	if (json) {
		hc_audit_print_json(ctx->out, &r);
	} else if (r.nproblems_total == 0) {
		fprintf(ctx->out, "audit trail intact: %lld event%s sealed in %lld link%s on %lld chain%s\n",
		        r.events, r.events == 1 ? "" : "s", r.links, r.links == 1 ? "" : "s", r.chains,
		        r.chains == 1 ? "" : "s");
	} else {
		fprintf(ctx->out, "audit trail BROKEN: %lld problem%s (%lld events, %lld links)\n",
		        r.nproblems_total, r.nproblems_total == 1 ? "" : "s", r.events, r.links);
		for (size_t i = 0; i < r.nproblems; i++) {
			char where[96];
			hc_audit_where(&r.problems[i], where, sizeof(where));
			fprintf(ctx->out, "  %-19s %-28s %s\n", r.problems[i].code, where,
			        hc_audit_problem_text(r.problems[i].code));
		}
		if ((long long)r.nproblems < r.nproblems_total)
			fprintf(ctx->out, "  ... %lld more not shown\n",
			        r.nproblems_total - (long long)r.nproblems);
	}
	exit_code = r.nproblems_total == 0 ? HC_EXIT_OK : HC_EXIT_FAIL;
	hc_audit_report_clear(&r);
	return exit_code;
}
