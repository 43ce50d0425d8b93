/*
 * NAME
 *	hc_stats - "heraldctl stats": what the dispatcher is doing
 * DESCRIPTION
 *	See hc_stats.h.
 */
#include "hc_stats.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hc_fmt.h"
#include "hc_table.h"
#include "hd_err.h"
#include "hd_mem.h"

#define HC_STATS_STR_(x) #x
#define HC_STATS_STR(x) HC_STATS_STR_(x)
#define HC_STATS_LIMIT " LIMIT " HC_STATS_STR(HC_STATS_MAX_ROWS)
#define HC_STATS_ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const char hc_stats_sql_counts[] =
	"SELECT state, channel, class, count FROM herald.delivery_stats"
	" ORDER BY array_position(ARRAY['held', 'queued', 'dispatched', 'retry_wait', 'sent',"
	" 'failed', 'rejected_by_approver', 'expired', 'cancelled'], state), channel, class"
	HC_STATS_LIMIT;

static const char hc_stats_sql_queues[] =
	"SELECT channel, oldest_queued_age_s, oldest_held_age_s FROM herald.queue_ages"
	" ORDER BY channel" HC_STATS_LIMIT;

static const char hc_stats_sql_rates[] =
	"SELECT window_s, scope, name, delivered, retried, failed, failure_rate"
	" FROM herald.outcome_rates"
	" ORDER BY window_s, array_position(ARRAY['all', 'channel', 'provider'], scope), name"
	HC_STATS_LIMIT;

static const char hc_stats_sql_workers[] =
	"SELECT name, broker, array_to_string(channels, ','), credit, "
	HC_STATS_ISO("connected_at") ", " HC_STATS_ISO("last_seen_at") ","
	" extract(epoch FROM now() - connected_at)::float8,"
	" extract(epoch FROM now() - last_seen_at)::float8"
	" FROM herald.live_workers ORDER BY broker, name" HC_STATS_LIMIT;

static char *hc_stats_str(const PGresult *res, int row, int col)
{
	return hd_strdup(PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static long long hc_stats_ll(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* A non-negative number, or -1 for NULL. */
static double hc_stats_num(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return -1;
	double v = strtod(PQgetvalue(res, row, col), NULL);
	return v < 0 ? 0 : v;
}

static int hc_stats_query(hc_db_t *db, const char *sql, PGresult **res, char *err, size_t errlen)
{
	char state[6] = "";
	int rc = hc_db_exec(db, sql, 0, NULL, res, state, err, errlen);
	if (rc != 0 && (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0)) {
		snprintf(err, errlen, "the database has no dispatch views yet (run 'heraldctl db migrate')");
		return HD_E_NOTFOUND;
	}
	return rc;
}

int hc_stats_load(hc_db_t *db, hc_stats_t *st, char *err, size_t errlen)
{
	memset(st, 0, sizeof(*st));
	PGresult *res = NULL;
	/* One snapshot: the sections agree with each other. */
	int rc = hc_db_exec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL,
	                    NULL, err, errlen);
	if (rc != 0)
		return rc;

	rc = hc_stats_query(db, "SELECT " HC_STATS_ISO("now()"), &res, err, errlen);
	if (rc != 0)
		goto rollback;
	st->generated_at = hc_stats_str(res, 0, 0);
	PQclear(res);

	rc = hc_stats_query(db, hc_stats_sql_counts, &res, err, errlen);
	if (rc != 0)
		goto rollback;
	int n = PQntuples(res);
	st->counts = hd_calloc((size_t)n + 1, sizeof(*st->counts));
	for (int i = 0; i < n; i++) {
		hc_stats_count_t *c = &st->counts[i];
		c->state = hc_stats_str(res, i, 0);
		c->channel = hc_stats_str(res, i, 1);
		c->klass = hc_stats_str(res, i, 2);
		c->count = hc_stats_ll(res, i, 3);
	}
	st->ncounts = (size_t)n;
	PQclear(res);

	rc = hc_stats_query(db, hc_stats_sql_queues, &res, err, errlen);
	if (rc != 0)
		goto rollback;
	n = PQntuples(res);
	st->queues = hd_calloc((size_t)n + 1, sizeof(*st->queues));
	for (int i = 0; i < n; i++) {
		hc_stats_queue_t *q = &st->queues[i];
		q->channel = hc_stats_str(res, i, 0);
		q->queued_age_s = hc_stats_num(res, i, 1);
		q->held_age_s = hc_stats_num(res, i, 2);
	}
	st->nqueues = (size_t)n;
	PQclear(res);

	rc = hc_stats_query(db, hc_stats_sql_rates, &res, err, errlen);
	if (rc != 0)
		goto rollback;
	n = PQntuples(res);
	st->rates = hd_calloc((size_t)n + 1, sizeof(*st->rates));
	for (int i = 0; i < n; i++) {
		hc_stats_rate_t *r = &st->rates[i];
		r->window_s = (int)hc_stats_ll(res, i, 0);
		r->scope = hc_stats_str(res, i, 1);
		r->name = hc_stats_str(res, i, 2);
		r->delivered = hc_stats_ll(res, i, 3);
		r->retried = hc_stats_ll(res, i, 4);
		r->failed = hc_stats_ll(res, i, 5);
		r->failure_rate = hc_stats_num(res, i, 6);
	}
	st->nrates = (size_t)n;
	PQclear(res);

	rc = hc_stats_query(db, hc_stats_sql_workers, &res, err, errlen);
	if (rc != 0)
		goto rollback;
	n = PQntuples(res);
	st->workers = hd_calloc((size_t)n + 1, sizeof(*st->workers));
	for (int i = 0; i < n; i++) {
		hc_stats_worker_t *w = &st->workers[i];
		w->name = hc_stats_str(res, i, 0);
		w->broker = hc_stats_str(res, i, 1);
		w->channels = hc_stats_str(res, i, 2);
		w->credit = hc_stats_ll(res, i, 3);
		w->connected_at = hc_stats_str(res, i, 4);
		w->last_seen_at = hc_stats_str(res, i, 5);
		w->connected_age_s = hc_stats_num(res, i, 6);
		w->last_seen_age_s = hc_stats_num(res, i, 7);
	}
	st->nworkers = (size_t)n;
	PQclear(res);
	return hc_db_exec(db, "COMMIT", 0, NULL, NULL, NULL, err, errlen);

rollback:
	if (PQstatus(hc_db_conn(db)) == CONNECTION_OK)
		PQclear(PQexec(hc_db_conn(db), "ROLLBACK"));
	return rc;
}

void hc_stats_clear(hc_stats_t *st)
{
	if (st == NULL)
		return;
	hd_free(&st->generated_at);
	for (size_t i = 0; i < st->ncounts; i++) {
		hd_free(&st->counts[i].state);
		hd_free(&st->counts[i].channel);
		hd_free(&st->counts[i].klass);
	}
	hd_free(&st->counts);
	for (size_t i = 0; i < st->nqueues; i++)
		hd_free(&st->queues[i].channel);
	hd_free(&st->queues);
	for (size_t i = 0; i < st->nrates; i++) {
		hd_free(&st->rates[i].scope);
		hd_free(&st->rates[i].name);
	}
	hd_free(&st->rates);
	for (size_t i = 0; i < st->nworkers; i++) {
		hc_stats_worker_t *w = &st->workers[i];
		hd_free(&w->name);
		hd_free(&w->broker);
		hd_free(&w->channels);
		hd_free(&w->connected_at);
		hd_free(&w->last_seen_at);
	}
	hd_free(&st->workers);
	memset(st, 0, sizeof(*st));
}

/* ------------------------------------------------------------------ */
/* Text                                                                */
/* ------------------------------------------------------------------ */

static void hc_stats_text_counts(FILE *out, const hc_stats_t *st)
{
	fprintf(out, "deliveries by state, channel and class\n");
	if (st->ncounts == 0) {
		fprintf(out, "  (no deliveries)\n");
		return;
	}
	static const hc_table_col_t cols[] = {
		{"STATE", false, 0}, {"CHANNEL", false, 0}, {"CLASS", false, 0}, {"COUNT", true, 0}};
	hc_table_t *t = hc_table_new(cols, 4);
	long long total = 0;
	char num[32];
	for (size_t i = 0; i < st->ncounts; i++) {
		const hc_stats_count_t *c = &st->counts[i];
		snprintf(num, sizeof(num), "%lld", c->count);
		const char *cells[] = {c->state, c->channel, c->klass, num};
		hc_table_add(t, cells);
		total += c->count;
	}
	snprintf(num, sizeof(num), "%lld", total);
	const char *cells[] = {"total", "", "", num};
	hc_table_add(t, cells);
	hc_table_print(t, out, 2);
	hc_table_destroy(&t);
}

static void hc_stats_text_queues(FILE *out, const hc_stats_t *st)
{
	fprintf(out, "\nwaiting (oldest queued: due and not yet claimed; oldest held: awaiting approval)\n");
	static const hc_table_col_t cols[] = {
		{"CHANNEL", false, 0}, {"OLDEST QUEUED", true, 0}, {"OLDEST HELD", true, 0}};
	hc_table_t *t = hc_table_new(cols, 3);
	for (size_t i = 0; i < st->nqueues; i++) {
		const hc_stats_queue_t *q = &st->queues[i];
		char qa[32] = "-", ha[32] = "-";
		if (q->queued_age_s >= 0)
			hc_fmt_age(q->queued_age_s, qa, sizeof(qa));
		if (q->held_age_s >= 0)
			hc_fmt_age(q->held_age_s, ha, sizeof(ha));
		const char *cells[] = {q->channel, qa, ha};
		hc_table_add(t, cells);
	}
	hc_table_print(t, out, 2);
	hc_table_destroy(&t);
}

static void hc_stats_text_rates(FILE *out, const hc_stats_t *st, int window_s, const char *title)
{
	fprintf(out, "\noutcomes in the %s\n", title);
	static const hc_table_col_t cols[] = {
		{"SCOPE", false, 0}, {"NAME", false, 40}, {"DELIVERED", true, 0},
		{"RETRIED", true, 0}, {"FAILED", true, 0}, {"FAILURE RATE", true, 0}};
	hc_table_t *t = hc_table_new(cols, 6);
	for (size_t i = 0; i < st->nrates; i++) {
		const hc_stats_rate_t *r = &st->rates[i];
		if (r->window_s != window_s)
			continue;
		char d[32], re[32], f[32], rate[32];
		snprintf(d, sizeof(d), "%lld", r->delivered);
		snprintf(re, sizeof(re), "%lld", r->retried);
		snprintf(f, sizeof(f), "%lld", r->failed);
		hc_fmt_rate(r->failure_rate, rate, sizeof(rate));
		const char *cells[] = {r->scope, r->name, d, re, f, rate};
		hc_table_add(t, cells);
	}
	hc_table_print(t, out, 2);
	hc_table_destroy(&t);
}

static void hc_stats_text_workers(FILE *out, const hc_stats_t *st)
{
	if (st->nworkers == 0) {
		fprintf(out, "\nworkers seen in the last 10 s: none\n");
		return;
	}
	fprintf(out, "\nworkers seen in the last 10 s: %zu\n", st->nworkers);
	static const hc_table_col_t cols[] = {
		{"NAME", false, 40}, {"BROKER", false, 40}, {"CHANNELS", false, 0},
		{"CREDIT", true, 0}, {"CONNECTED FOR", true, 0}, {"LAST SEEN", true, 0}};
	hc_table_t *t = hc_table_new(cols, 6);
	for (size_t i = 0; i < st->nworkers; i++) {
		const hc_stats_worker_t *w = &st->workers[i];
		char credit[32], conn[32], seen[48], age[32];
		snprintf(credit, sizeof(credit), "%lld", w->credit);
		hc_fmt_age(w->connected_age_s, conn, sizeof(conn));
		snprintf(seen, sizeof(seen), "%s ago", hc_fmt_age(w->last_seen_age_s, age, sizeof(age)));
		const char *cells[] = {w->name, w->broker, w->channels, credit, conn, seen};
		hc_table_add(t, cells);
	}
	hc_table_print(t, out, 2);
	hc_table_destroy(&t);
}

void hc_stats_print_text(FILE *out, const hc_stats_t *st)
{
	hc_stats_text_counts(out, st);
	hc_stats_text_queues(out, st);
	hc_stats_text_rates(out, st, 300, "last 5 minutes");
	hc_stats_text_rates(out, st, 3600, "last hour");
	fprintf(out, "  (failure rate: attempts that did not deliver, retried or failed, of all"
	             " attempts)\n");
	hc_stats_text_workers(out, st);
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

static json_t *hc_stats_json_age(double age_s)
{
	return age_s >= 0 ? json_real(age_s) : json_null();
}

static json_t *hc_stats_json_rate(const hc_stats_rate_t *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "delivered", json_integer(r->delivered));
	json_object_set_new(o, "retried", json_integer(r->retried));
	json_object_set_new(o, "failed", json_integer(r->failed));
	json_object_set_new(o, "failure_rate",
	                    r->failure_rate >= 0 ? json_real(r->failure_rate) : json_null());
	return o;
}

static json_t *hc_stats_json_window(const hc_stats_t *st, int window_s)
{
	json_t *w = json_object();
	json_t *channels = json_object();
	json_t *providers = json_object();
	json_object_set_new(w, "window_s", json_integer(window_s));
	for (size_t i = 0; i < st->nrates; i++) {
		const hc_stats_rate_t *r = &st->rates[i];
		if (r->window_s != window_s)
			continue;
		if (strcmp(r->scope, "all") == 0)
			json_object_set_new(w, "all", hc_stats_json_rate(r));
		else if (strcmp(r->scope, "channel") == 0)
			json_object_set_new(channels, r->name, hc_stats_json_rate(r));
		else if (strcmp(r->scope, "provider") == 0)
			json_object_set_new(providers, r->name, hc_stats_json_rate(r));
	}
	if (json_object_get(w, "all") == NULL) {
		hc_stats_rate_t zero = {window_s, NULL, NULL, 0, 0, 0, -1};
		json_object_set_new(w, "all", hc_stats_json_rate(&zero));
	}
	json_object_set_new(w, "channels", channels);
	json_object_set_new(w, "providers", providers);
	return w;
}

void hc_stats_print_json(FILE *out, const hc_stats_t *st)
{
	json_t *root = json_object();
	json_object_set_new(root, "generated_at",
	                    st->generated_at ? json_string(st->generated_at) : json_null());

	json_t *list = json_array();
	json_t *by_state = json_object();
	long long total = 0;
	for (size_t i = 0; i < st->ncounts; i++) {
		const hc_stats_count_t *c = &st->counts[i];
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I}", "state", c->state,
		                                      "channel", c->channel, "class", c->klass,
		                                      "count", (json_int_t)c->count));
		json_t *prev = json_object_get(by_state, c->state);
		json_int_t sum = (prev ? json_integer_value(prev) : 0) + (json_int_t)c->count;
		json_object_set_new(by_state, c->state, json_integer(sum));
		total += c->count;
	}
	json_object_set_new(root, "deliveries", list);
	json_object_set_new(root, "by_state", by_state);
	json_object_set_new(root, "total", json_integer(total));

	json_t *queues = json_array();
	double max_q = -1, max_h = -1;
	for (size_t i = 0; i < st->nqueues; i++) {
		const hc_stats_queue_t *q = &st->queues[i];
		json_t *o = json_pack("{s:s}", "channel", q->channel);
		json_object_set_new(o, "oldest_queued_age_s", hc_stats_json_age(q->queued_age_s));
		json_object_set_new(o, "oldest_held_age_s", hc_stats_json_age(q->held_age_s));
		json_array_append_new(queues, o);
		if (q->queued_age_s > max_q)
			max_q = q->queued_age_s;
		if (q->held_age_s > max_h)
			max_h = q->held_age_s;
	}
	json_object_set_new(root, "queues", queues);
	json_object_set_new(root, "oldest_queued_age_s", hc_stats_json_age(max_q));
	json_object_set_new(root, "oldest_held_age_s", hc_stats_json_age(max_h));

	json_t *outcomes = json_object();
	json_object_set_new(outcomes, "last_5m", hc_stats_json_window(st, 300));
	json_object_set_new(outcomes, "last_1h", hc_stats_json_window(st, 3600));
	json_object_set_new(root, "outcomes", outcomes);

	json_t *workers = json_array();
	for (size_t i = 0; i < st->nworkers; i++) {
		const hc_stats_worker_t *w = &st->workers[i];
		json_t *chans = json_array();
		const char *p = w->channels;
		while (*p != '\0') {
			size_t len = strcspn(p, ",");
			if (len > 0)
				json_array_append_new(chans, json_stringn(p, len));
			p += len;
			if (*p == ',')
				p++;
		}
		json_t *o = json_pack("{s:s, s:s}", "name", w->name, "broker", w->broker);
		json_object_set_new(o, "channels", chans);
		json_object_set_new(o, "credit", json_integer(w->credit));
		json_object_set_new(o, "connected_at", json_string(w->connected_at));
		json_object_set_new(o, "last_seen_at", json_string(w->last_seen_at));
		json_object_set_new(o, "last_seen_age_s", hc_stats_json_age(w->last_seen_age_s));
		json_array_append_new(workers, o);
	}
	json_object_set_new(root, "workers", workers);

	json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
	json_decref(root);
}

/* ------------------------------------------------------------------ */
/* Command                                                             */
/* ------------------------------------------------------------------ */

int hc_stats_cmd(hc_ctx_t *ctx, int argc, char **argv)
{
	static const hc_opt_t spec[] = {{"json", false}};
	const char *values[1];
	char err[2048];
	size_t npos = 0;
	if (hc_cli_parse_opts(argc, argv, spec, 1, values, NULL, 0, &npos, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: stats: %s\n", err);
		return HC_EXIT_USAGE;
	}
	bool json = values[0] != NULL;

	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	hc_stats_t st;
	int rc = hc_stats_load(db, &st, err, sizeof(err));
	hc_db_close(&db);
	if (rc != 0) {
		fprintf(ctx->err, "heraldctl: stats: %s\n", err);
		hc_stats_clear(&st);
		return hc_cli_exit_code(rc);
	}
	if (json)
		hc_stats_print_json(ctx->out, &st);
	else
		hc_stats_print_text(ctx->out, &st);
	hc_stats_clear(&st);
	return HC_EXIT_OK;
}
