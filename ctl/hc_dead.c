/*
 * NAME
 *	hc_dead - dead letters: "heraldctl dead" and "heraldctl requeue"
 * DESCRIPTION
 *	See hc_dead.h.
 */
#include "hc_dead.h"

#include <inttypes.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "hc_fmt.h"
#include "hc_table.h"
#include "hd_err.h"
#include "hd_num.h"
#include "hd_mem.h"
#include "hd_time.h"

#define HC_DEAD_ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* How many requeued ids the text output lists before it only counts. */
#define HC_DEAD_LIST_IDS 20

static bool hc_dead_is_channel(const char *c)
{
	return strcmp(c, "email") == 0 || strcmp(c, "im") == 0 || strcmp(c, "sms") == 0;
}

int hc_dead_parse_list_args(int argc, char **argv, int64_t now_ms, hc_dead_filter_t *f,
                            int *json_p, char *err, size_t errlen)
{
	static const hc_opt_t spec[] = {
		{"channel", true}, {"since", true}, {"limit", true}, {"json", false}};
	const char *v[4];
	size_t npos = 0;
	memset(f, 0, sizeof(*f));
	f->limit = HC_DEAD_DEFAULT_LIMIT;
	*json_p = 0;
	if (hc_cli_parse_opts(argc, argv, spec, 4, v, NULL, 0, &npos, err, errlen) != 0)
		return HC_EXIT_USAGE;
	if (v[0] != NULL) {
		if (!hc_dead_is_channel(v[0])) {
			snprintf(err, errlen, "--channel must be email, im or sms, not '%.32s'", v[0]);
			return HC_EXIT_USAGE;
		}
		f->channel = v[0];
	}
	if (v[1] != NULL) {
		char why[256];
		if (hc_fmt_parse_time(v[1], now_ms, &f->since_ms, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "--since: %s", why);
			return HC_EXIT_USAGE;
		}
	}
	if (v[2] != NULL) {
		long n;
		if (!hd_num_parse_long(v[2], 1, HC_DEAD_MAX_LIMIT, &n)) {
			snprintf(err, errlen, "--limit must be a number from 1 to %d, not '%.32s'",
			         HC_DEAD_MAX_LIMIT, v[2]);
			return HC_EXIT_USAGE;
		}
		f->limit = n;
	}
	*json_p = v[3] != NULL;
	return 0;
}

void hc_dead_requeue_args_clear(hc_dead_requeue_args_t *a)
{
	if (a == NULL)
		return;
	hd_free(&a->ids);
	memset(a, 0, sizeof(*a));
}

int hc_dead_parse_requeue_args(int argc, char **argv, int64_t now_ms, hc_dead_requeue_args_t *a,
                               char *err, size_t errlen)
{
	static const hc_opt_t spec[] = {{"all-failed", false}, {"since", true}, {"json", false}};
	const char *v[3];
	size_t npos = 0;
	memset(a, 0, sizeof(*a));
	char **pos = hd_calloc(argc > 0 ? (size_t)argc : 1, sizeof(char *));
	int rc = hc_cli_parse_opts(argc, argv, spec, 3, v, pos, (size_t)argc, &npos, err, errlen);
	if (rc != 0)
		goto out;
	rc = HC_EXIT_USAGE;
	a->all_failed = v[0] != NULL;
	a->json = v[2] != NULL;
	if (a->all_failed && npos > 0) {
		snprintf(err, errlen, "give delivery ids or --all-failed, not both");
		goto out;
	}
	if (!a->all_failed && npos == 0) {
		snprintf(err, errlen, "which deliveries? give their ids, or --all-failed --since T");
		goto out;
	}
	if (a->all_failed && v[1] == NULL) {
		snprintf(err, errlen, "--all-failed needs --since T (for example --since 1h)");
		goto out;
	}
	if (!a->all_failed && v[1] != NULL) {
		snprintf(err, errlen, "--since only goes with --all-failed");
		goto out;
	}
	if (v[1] != NULL) {
		char why[256];
		if (hc_fmt_parse_time(v[1], now_ms, &a->since_ms, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "--since: %s", why);
			goto out;
		}
	}
	if (npos > 0) {
		a->ids = hd_calloc(HC_FMT_MAX_IDS, sizeof(*a->ids));
		if (hc_fmt_parse_ids((int)npos, pos, a->ids, HC_FMT_MAX_IDS, &a->nids, err, errlen) != 0)
			goto out;
	}
	rc = 0;
out:
	hd_free(&pos);
	return rc;
}

/* ------------------------------------------------------------------ */
/* dead                                                                */
/* ------------------------------------------------------------------ */

static char *hc_dead_str(const PGresult *res, int row, int col)
{
	return hd_strdup(PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static long long hc_dead_ll(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

int hc_dead_load(hc_db_t *db, const hc_dead_filter_t *f, hc_dead_list_t *list, char *err,
                 size_t errlen)
{
	memset(list, 0, sizeof(*list));
	char since[32], limit[32];
	snprintf(since, sizeof(since), "%" PRId64, f->since_ms);
	snprintf(limit, sizeof(limit), "%ld", f->limit);
	const char *params[3] = {f->channel, f->since_ms != 0 ? since : NULL, limit};
	char state[6] = "";
	PGresult *res = NULL;
	int rc = hc_db_exec(db,
	                    "SELECT delivery_id, message_id, channel, recipient, kind, attempts,"
	                    " last_error, last_provider, " HC_DEAD_ISO("failed_at") ", class,"
	                    " subject, count(*) OVER ()"
	                    " FROM herald.dead_letters"
	                    " WHERE ($1::text IS NULL OR channel = $1)"
	                    "   AND ($2::float8 IS NULL OR failed_at >= to_timestamp($2::float8 / 1000))"
	                    " ORDER BY failed_at DESC NULLS LAST, delivery_id DESC"
	                    " LIMIT $3::int",
	                    3, params, &res, state, err, errlen);
	if (rc != 0) {
		if (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0) {
			snprintf(err, errlen, "the database has no dead-letter view yet (run 'heraldctl db migrate')");
			return HD_E_NOTFOUND;
		}
		return rc;
	}
	int n = PQntuples(res);
	list->rows = hd_calloc((size_t)n + 1, sizeof(*list->rows));
	for (int i = 0; i < n; i++) {
		hc_dead_row_t *r = &list->rows[i];
		r->delivery_id = hc_dead_ll(res, i, 0);
		r->message_id = hc_dead_ll(res, i, 1);
		r->channel = hc_dead_str(res, i, 2);
		r->recipient = hc_dead_str(res, i, 3);
		r->kind = hc_dead_str(res, i, 4);
		r->attempts = hc_dead_ll(res, i, 5);
		r->last_error = hc_dead_str(res, i, 6);
		r->last_provider = hc_dead_str(res, i, 7);
		r->failed_at = hc_dead_str(res, i, 8);
		r->klass = hc_dead_str(res, i, 9);
		r->subject = hc_dead_str(res, i, 10);
		list->total = hc_dead_ll(res, i, 11);
	}
	list->nrows = (size_t)n;
	PQclear(res);
	return 0;
}

void hc_dead_list_clear(hc_dead_list_t *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->nrows; i++) {
		hc_dead_row_t *r = &list->rows[i];
		hd_free(&r->channel);
		hd_free(&r->recipient);
		hd_free(&r->kind);
		hd_free(&r->last_error);
		hd_free(&r->last_provider);
		hd_free(&r->failed_at);
		hd_free(&r->klass);
		hd_free(&r->subject);
	}
	hd_free(&list->rows);
	memset(list, 0, sizeof(*list));
}

void hc_dead_print_text(FILE *out, const hc_dead_list_t *list)
{
	if (list->nrows == 0) {
		fprintf(out, "no failed deliveries\n");
		return;
	}
	static const hc_table_col_t cols[] = {
		{"DELIVERY", true, 0}, {"MESSAGE", true, 0}, {"CHANNEL", false, 0},
		{"RECIPIENT", false, 40}, {"ATTEMPTS", true, 0}, {"FAILED AT", false, 0},
		{"LAST ERROR", false, 60}, {"SUBJECT", false, 40}};
	hc_table_t *t = hc_table_new(cols, 8);
	for (size_t i = 0; i < list->nrows; i++) {
		const hc_dead_row_t *r = &list->rows[i];
		char did[32], mid[32], att[32];
		snprintf(did, sizeof(did), "%lld", r->delivery_id);
		snprintf(mid, sizeof(mid), "%lld", r->message_id);
		snprintf(att, sizeof(att), "%lld", r->attempts);
		const char *cells[] = {did, mid, r->channel, r->recipient, att,
		                       r->failed_at[0] ? r->failed_at : NULL,
		                       r->last_error[0] ? r->last_error : NULL,
		                       r->subject[0] ? r->subject : NULL};
		hc_table_add(t, cells);
	}
	hc_table_print(t, out, 0);
	hc_table_destroy(&t);
	if ((long long)list->nrows < list->total)
		fprintf(out, "%zu of %lld failed deliveries shown (newest first; see --limit)\n",
		        list->nrows, list->total);
	else
		fprintf(out, "%zu failed deliver%s\n", list->nrows, list->nrows == 1 ? "y" : "ies");
}

static json_t *hc_dead_json_str(const char *s)
{
	return s[0] != '\0' ? json_string(s) : json_null();
}

void hc_dead_print_json(FILE *out, const hc_dead_list_t *list)
{
	json_t *root = json_object();
	json_object_set_new(root, "total", json_integer(list->total));
	json_object_set_new(root, "shown", json_integer((json_int_t)list->nrows));
	json_t *arr = json_array();
	for (size_t i = 0; i < list->nrows; i++) {
		const hc_dead_row_t *r = &list->rows[i];
		json_t *o = json_object();
		json_object_set_new(o, "delivery_id", json_integer(r->delivery_id));
		json_object_set_new(o, "message_id", json_integer(r->message_id));
		json_object_set_new(o, "channel", json_string(r->channel));
		json_object_set_new(o, "recipient", json_string(r->recipient));
		json_object_set_new(o, "kind", json_string(r->kind));
		json_object_set_new(o, "attempts", json_integer(r->attempts));
		json_object_set_new(o, "last_error", hc_dead_json_str(r->last_error));
		json_object_set_new(o, "last_provider", hc_dead_json_str(r->last_provider));
		json_object_set_new(o, "failed_at", hc_dead_json_str(r->failed_at));
		json_object_set_new(o, "class", json_string(r->klass));
		json_object_set_new(o, "subject", hc_dead_json_str(r->subject));
		json_array_append_new(arr, o);
	}
	json_object_set_new(root, "deliveries", arr);
	json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
	json_decref(root);
}

int hc_dead_cmd_list(hc_ctx_t *ctx, int argc, char **argv)
{
	char err[2048];
	hc_dead_filter_t f;
	int json = 0;
	if (hc_dead_parse_list_args(argc, argv, hd_time_now_us() / 1000, &f, &json, err,
	                            sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: dead: %s\n", err);
		return HC_EXIT_USAGE;
	}
	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	hc_dead_list_t list;
	int rc = hc_dead_load(db, &f, &list, err, sizeof(err));
	hc_db_close(&db);
	if (rc != 0) {
		fprintf(ctx->err, "heraldctl: dead: %s\n", err);
		hc_dead_list_clear(&list);
		return hc_cli_exit_code(rc);
	}
	if (json)
		hc_dead_print_json(ctx->out, &list);
	else
		hc_dead_print_text(ctx->out, &list);
	hc_dead_list_clear(&list);
	return HC_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* requeue                                                             */
/* ------------------------------------------------------------------ */

char *hc_dead_refusal_text(const hc_dead_refusal_t *r, size_t n, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++) {
		int w;
		if (r[i].state[0] == '\0')
			w = snprintf(buf + used, len - used, "%sdelivery %" PRId64 " does not exist",
			             i ? "; " : "", r[i].delivery_id);
		else
			w = snprintf(buf + used, len - used, "%sdelivery %" PRId64 " is %s, not failed",
			             i ? "; " : "", r[i].delivery_id, r[i].state);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	return buf;
}

/* "{1,2,3}": a bigint[] literal. Caller frees. */
static char *hc_dead_array_literal(const int64_t *ids, size_t n)
{
	size_t cap = n * 21 + 3;
	char *s = hd_malloc(cap);
	size_t used = 0;
	s[used++] = '{';
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(s + used, cap - used, "%s%" PRId64, i ? "," : "", ids[i]);
	s[used++] = '}';
	s[used] = '\0';
	return s;
}

/* The operating-system user running heraldctl, for "requested_by". */
static const char *hc_dead_os_user(void)
{
	struct passwd *pw = getpwuid(geteuid());
	if (pw != NULL && pw->pw_name != NULL)
		return pw->pw_name;
	const char *u = getenv("USER");
	return u != NULL ? u : "";
}

static void hc_dead_print_requeued(hc_ctx_t *ctx, const PGresult *res, bool json,
                                   const hc_dead_refusal_t *refused, size_t nrefused)
{
	int n = res != NULL && nrefused == 0 ? PQntuples(res) : 0;
	if (json) {
		json_t *root = json_object();
		json_t *ids = json_array();
		for (int i = 0; i < n; i++)
			json_array_append_new(ids, json_integer(strtoll(PQgetvalue(res, i, 0), NULL, 10)));
		json_object_set_new(root, "requeued", json_integer(n));
		json_object_set_new(root, "delivery_ids", ids);
		json_t *ref = json_array();
		for (size_t i = 0; i < nrefused; i++) {
			json_t *o = json_object();
			json_object_set_new(o, "delivery_id", json_integer(refused[i].delivery_id));
			json_object_set_new(o, "state", refused[i].state[0] ? json_string(refused[i].state)
			                                                  : json_null());
			json_array_append_new(ref, o);
		}
		json_object_set_new(root, "refused", ref);
		json_dumpf(root, ctx->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', ctx->out);
		json_decref(root);
		return;
	}
	if (nrefused > 0)
		return;
	fprintf(ctx->out, "requeued %d deliver%s", n, n == 1 ? "y" : "ies");
	if (n > 0 && n <= HC_DEAD_LIST_IDS) {
		fputs(":", ctx->out);
		for (int i = 0; i < n; i++)
			fprintf(ctx->out, " %s", PQgetvalue(res, i, 0));
	}
	fputc('\n', ctx->out);
}

/*
 * The ids of a that res (the requeued ids) lacks, with their state, into
 * refused (room for a->nids). Returns how many.
 */
static size_t hc_dead_find_refused(hc_db_t *db, const hc_dead_requeue_args_t *a,
                                   const PGresult *res, hc_dead_refusal_t *refused)
{
	size_t n = 0;
	int got = PQntuples(res);
	for (size_t i = 0; i < a->nids; i++) {
		bool found = false;
		for (int j = 0; j < got && !found; j++)
			found = strtoll(PQgetvalue(res, j, 0), NULL, 10) == a->ids[i];
		if (!found) {
			refused[n].delivery_id = a->ids[i];
			snprintf(refused[n].state, sizeof(refused[n].state), "?");
			n++;
		}
	}
	if (n == 0)
		return 0;
	int64_t *missing = hd_calloc(n, sizeof(*missing));
	for (size_t i = 0; i < n; i++)
		missing[i] = refused[i].delivery_id;
	char *lit = hc_dead_array_literal(missing, n);
	const char *params[1] = {lit};
	PGresult *st = NULL;
	char err[512];
	/* Same transaction: the states are the ones requeue just saw. */
	if (hc_db_exec(db, "SELECT u.id, d.state FROM unnest($1::bigint[]) AS u(id)"
	                   " LEFT JOIN herald.deliveries AS d ON d.id = u.id",
	               1, params, &st, NULL, err, sizeof(err)) == 0) {
		for (int j = 0; j < PQntuples(st); j++) {
			int64_t id = strtoll(PQgetvalue(st, j, 0), NULL, 10);
			for (size_t i = 0; i < n; i++)
				if (refused[i].delivery_id == id)
					snprintf(refused[i].state, sizeof(refused[i].state), "%s",
					         PQgetisnull(st, j, 1) ? "" : PQgetvalue(st, j, 1));
		}
		PQclear(st);
	}
	hd_free(&lit);
	hd_free(&missing);
	return n;
}

int hc_dead_cmd_requeue(hc_ctx_t *ctx, int argc, char **argv)
{
	char err[2048];
	hc_dead_requeue_args_t a;
	if (hc_dead_parse_requeue_args(argc, argv, hd_time_now_us() / 1000, &a, err,
	                               sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: requeue: %s\n", err);
		hc_dead_requeue_args_clear(&a);
		return HC_EXIT_USAGE;
	}
	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK) {
		hc_dead_requeue_args_clear(&a);
		return exit_code;
	}

	char *lit = a.all_failed ? NULL : hc_dead_array_literal(a.ids, a.nids);
	char since[32];
	snprintf(since, sizeof(since), "%" PRId64, a.since_ms);
	const char *params[3] = {lit, a.all_failed ? since : NULL, hc_dead_os_user()};
	hc_dead_refusal_t *refused = hd_calloc(a.nids + 1, sizeof(*refused));
	size_t nrefused = 0;
	PGresult *res = NULL;
	char state[6] = "";
	int rc = hc_db_exec(db, "BEGIN", 0, NULL, NULL, NULL, err, sizeof(err));
	if (rc == 0)
		rc = hc_db_exec(db,
		                "SELECT delivery_id FROM herald.requeue($1::bigint[],"
		                " to_timestamp($2::float8 / 1000), $3)",
		                3, params, &res, state, err, sizeof(err));
	if (rc != 0) {
		if (strcmp(state, "42883") == 0 || strcmp(state, "3F000") == 0)
			snprintf(err, sizeof(err),
			         "the database has no herald.requeue() yet (run 'heraldctl db migrate')");
		fprintf(ctx->err, "heraldctl: requeue: %s\n", err);
		exit_code = hc_cli_exit_code(rc);
		goto rollback;
	}
	if (!a.all_failed)
		nrefused = hc_dead_find_refused(db, &a, res, refused);
	if (nrefused > 0) {
		char text[4096];
		fprintf(ctx->err, "heraldctl: requeue: nothing requeued: %s\n",
		        hc_dead_refusal_text(refused, nrefused, text, sizeof(text)));
		hc_dead_print_requeued(ctx, res, a.json, refused, nrefused);
		exit_code = HC_EXIT_FAIL;
		goto rollback;
	}
	rc = hc_db_exec(db, "COMMIT", 0, NULL, NULL, NULL, err, sizeof(err));
	if (rc != 0) {
		fprintf(ctx->err, "heraldctl: requeue: %s\n", err);
		exit_code = hc_cli_exit_code(rc);
		goto out;
	}
	hc_dead_print_requeued(ctx, res, a.json, NULL, 0);
	exit_code = HC_EXIT_OK;
	goto out;

rollback:
	if (PQstatus(hc_db_conn(db)) == CONNECTION_OK)
		PQclear(PQexec(hc_db_conn(db), "ROLLBACK"));
out:
	PQclear(res);
	hd_free(&refused);
	hd_free(&lit);
	hc_db_close(&db);
	hc_dead_requeue_args_clear(&a);
	return exit_code;
}
