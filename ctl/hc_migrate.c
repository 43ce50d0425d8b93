/*
 * NAME
 *	hc_migrate - schema migrations embedded in heraldctl
 * DESCRIPTION
 *	See hc_migrate.h. The pure part (file names, comparison, checks) is
 *	separate from the part that talks to the database so unit tests
 *	can cover the decisions without a server.
 */
#include "hc_migrate.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hd_err.h"
#include "hd_mem.h"
#include "hd_time.h"

/* "HERALDMG": one key for every heraldctl that migrates this database. */
#define HC_MIGRATE_LOCK_KEY "5207674209813597511"

/* Created outside migration 001 so that 001 itself can be recorded. */
static const char hc_migrate_bootstrap_sql[] =
	"CREATE SCHEMA IF NOT EXISTS herald;\n"
	"CREATE TABLE IF NOT EXISTS herald.schema_migrations (\n"
	"  version    int PRIMARY KEY CHECK (version BETWEEN 1 AND 999),\n"
	"  name       text NOT NULL,\n"
	"  sha256     text NOT NULL,\n"
	"  applied_at timestamptz NOT NULL DEFAULT now()\n"
	");\n";

/* ------------------------------------------------------------------ */
/* Pure logic                                                          */
/* ------------------------------------------------------------------ */

int hc_migrate_parse_filename(const char *filename, int *version_p, char *name, size_t name_size)
{
	size_t len = strlen(filename);
	if (len < 3 + 1 + 1 + 4 || strcmp(filename + len - 4, ".sql") != 0)
		return HD_E_INVALID;
	int version = 0;
	for (int i = 0; i < 3; i++) {
		if (filename[i] < '0' || filename[i] > '9')
			return HD_E_INVALID;
		version = version * 10 + (filename[i] - '0');
	}
	if (version == 0 || filename[3] != '_')
		return HD_E_INVALID;
	const char *start = filename + 4;
	size_t name_len = len - 4 - 4;
	if (name_len == 0 || name_len >= name_size)
		return HD_E_INVALID;
	for (size_t i = 0; i < name_len; i++) {
		char c = start[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return HD_E_INVALID;
	}
	memcpy(name, start, name_len);
	name[name_len] = '\0';
	*version_p = version;
	return 0;
}

bool hc_migrate_is_sha256_hex(const char *s)
{
	if (s == NULL || strlen(s) != HC_SHA256_HEX_LEN)
		return false;
	for (size_t i = 0; i < HC_SHA256_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int hc_migrate_load(const hc_sql_file_t *files, size_t n, hc_migration_t *out,
                    char *err, size_t errlen)
{
	if (n > HC_MAX_MIGRATIONS) {
		snprintf(err, errlen, "%zu migrations, at most %d", n, HC_MAX_MIGRATIONS);
		return HD_E_INVALID;
	}
	for (size_t i = 0; i < n; i++) {
		hc_migration_t *m = &out[i];
		if (hc_migrate_parse_filename(files[i].filename, &m->version, m->name,
		                              sizeof(m->name)) != 0) {
			snprintf(err, errlen, "migration file name '%s' is not NNN_name.sql",
			         files[i].filename);
			return HD_E_INVALID;
		}
		if (!hc_migrate_is_sha256_hex(files[i].sha256)) {
			snprintf(err, errlen, "migration %s has a malformed checksum", files[i].filename);
			return HD_E_INVALID;
		}
		if (files[i].sql == NULL || strlen(files[i].sql) != files[i].sql_len) {
			snprintf(err, errlen, "migration %s is empty or contains a NUL byte",
			         files[i].filename);
			return HD_E_INVALID;
		}
		if (i > 0 && m->version <= out[i - 1].version) {
			snprintf(err, errlen, "migration %s does not come after %s: versions must be unique and increasing",
			         files[i].filename, files[i - 1].filename);
			return HD_E_INVALID;
		}
		m->file = &files[i];
	}
	return 0;
}

const hc_migration_t *hc_migrate_embedded(size_t *count_p)
{
	static hc_migration_t list[HC_MAX_MIGRATIONS];
	static bool loaded;
	if (!loaded) {
		char err[256];
		if (hc_migrate_load(hc_migrate_embedded_files, hc_migrate_embedded_count, list, err,
		                    sizeof(err)) != 0)
			hd_panic("embedded migrations are broken (build bug): %s", err);
		loaded = true;
	}
	*count_p = hc_migrate_embedded_count;
	return list;
}

size_t hc_migrate_compare(const hc_migration_t *known, size_t nknown,
                          const hc_applied_t *applied, size_t napplied, hc_mig_row_t *rows)
{
	size_t i = 0, j = 0, n = 0;
	int max_applied = napplied > 0 ? applied[napplied - 1].version : 0;
	while (i < nknown || j < napplied) {
		hc_mig_row_t *r = &rows[n++];
		memset(r, 0, sizeof(*r));
		if (j >= napplied || (i < nknown && known[i].version < applied[j].version)) {
			r->version = known[i].version;
			r->name = known[i].name;
			r->known = &known[i++];
			r->state = HC_MIG_PENDING;
			r->out_of_order = r->version < max_applied;
		} else if (i >= nknown || applied[j].version < known[i].version) {
			r->version = applied[j].version;
			r->name = applied[j].name;
			r->applied = &applied[j++];
			r->state = HC_MIG_UNKNOWN;
		} else {
			r->version = known[i].version;
			r->name = known[i].name;
			r->known = &known[i++];
			r->applied = &applied[j++];
			r->state = strcmp(r->known->file->sha256, r->applied->sha256) == 0
			               ? HC_MIG_APPLIED
			               : HC_MIG_MODIFIED;
		}
	}
	return n;
}

int hc_migrate_check(const hc_mig_row_t *rows, size_t nrows, char *err, size_t errlen)
{
	for (size_t i = 0; i < nrows; i++) {
		const hc_mig_row_t *r = &rows[i];
		switch (r->state) {
		case HC_MIG_MODIFIED:
			snprintf(err, errlen,
			         "migration %03d_%s was applied with sha256 %.12s... but this heraldctl "
			         "embeds %.12s...: an applied migration must never change; put the "
			         "change in a new migration",
			         r->version, r->name, r->applied->sha256, r->known->file->sha256);
			return HD_E_INVALID;
		case HC_MIG_UNKNOWN:
			snprintf(err, errlen,
			         "migration %03d_%s is applied but unknown to this heraldctl: the "
			         "database is newer than this binary",
			         r->version, r->name);
			return HD_E_INVALID;
		case HC_MIG_PENDING:
			if (r->out_of_order) {
				snprintf(err, errlen,
				         "migration %03d_%s is pending but a later version is already "
				         "applied: migrations must be applied in order",
				         r->version, r->name);
				return HD_E_INVALID;
			}
			break;
		case HC_MIG_APPLIED:
			break;
		}
	}
	return 0;
}

long hc_migrate_line_of(const char *text, long offset_chars)
{
	long line = 1, chars = 0;
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		if ((*p & 0xC0) == 0x80)
			continue; /* continuation byte: same character */
		if (chars++ >= offset_chars)
			break;
		if (*p == '\n')
			line++;
	}
	return line;
}

/* ------------------------------------------------------------------ */
/* Database                                                            */
/* ------------------------------------------------------------------ */

int hc_migrate_read_applied(hc_db_t *db, hc_applied_t **applied_p, size_t *n_p,
                            bool *has_table_p, char *err, size_t errlen)
{
	*applied_p = NULL;
	*n_p = 0;
	*has_table_p = false;
	PGresult *res = NULL;
	int rc = hc_db_exec(db, "SELECT to_regclass('herald.schema_migrations') IS NOT NULL", 0,
	                    NULL, &res, NULL, err, errlen);
	if (rc != 0)
		return rc;
	*has_table_p = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!*has_table_p)
		return 0;

	rc = hc_db_exec(db,
	                "SELECT version, name, sha256,"
	                " to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	                " FROM herald.schema_migrations ORDER BY version LIMIT 1000",
	                0, NULL, &res, NULL, err, errlen);
	if (rc != 0)
		return rc;
	int n = PQntuples(res);
	hc_applied_t *a = hd_calloc(n > 0 ? (size_t)n : 1, sizeof(*a));
	for (int i = 0; i < n; i++) {
		a[i].version = atoi(PQgetvalue(res, i, 0));
		/* Over-long values are truncated: they then simply never match. */
		snprintf(a[i].name, sizeof(a[i].name), "%s", PQgetvalue(res, i, 1));
		snprintf(a[i].sha256, sizeof(a[i].sha256), "%s", PQgetvalue(res, i, 2));
		snprintf(a[i].applied_at, sizeof(a[i].applied_at), "%s", PQgetvalue(res, i, 3));
	}
	PQclear(res);
	*applied_p = a;
	*n_p = (size_t)n;
	return 0;
}

int hc_migrate_apply(hc_db_t *db, const hc_migration_t *m, char *err, size_t errlen)
{
	char msg[2048];
	int rc = hc_db_exec(db, "BEGIN", 0, NULL, NULL, NULL, msg, sizeof(msg));
	if (rc == 0)
		rc = hc_db_exec(db, "SET LOCAL search_path = herald, pg_catalog", 0, NULL, NULL, NULL,
		                msg, sizeof(msg));
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", m->file->filename, msg);
		return rc;
	}

	long offset = -1;
	rc = hc_db_exec_script(db, m->file->sql, &offset, msg, sizeof(msg));
	if (rc != 0) {
		if (offset >= 0)
			snprintf(err, errlen, "%s:%ld: %s", m->file->filename,
			         hc_migrate_line_of(m->file->sql, offset), msg);
		else
			snprintf(err, errlen, "%s: %s", m->file->filename, msg);
		goto rollback;
	}
	if (PQtransactionStatus(hc_db_conn(db)) != PQTRANS_INTRANS) {
		/* Too late to undo: say so loudly. */
		snprintf(err, errlen,
		         "%s ended heraldctl's transaction (it must not contain BEGIN, COMMIT or "
		         "ROLLBACK); the database may hold part of it: check by hand",
		         m->file->filename);
		return HD_E_INTERNAL;
	}

	char version[16];
	snprintf(version, sizeof(version), "%d", m->version);
	const char *params[3] = {version, m->name, m->file->sha256};
	rc = hc_db_exec(db, "INSERT INTO herald.schema_migrations (version, name, sha256)"
	                    " VALUES ($1, $2, $3)",
	                3, params, NULL, NULL, msg, sizeof(msg));
	if (rc == 0)
		rc = hc_db_exec(db, "COMMIT", 0, NULL, NULL, NULL, msg, sizeof(msg));
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", m->file->filename, msg);
		goto rollback;
	}
	return 0;

rollback:
	if (PQstatus(hc_db_conn(db)) == CONNECTION_OK)
		PQclear(PQexec(hc_db_conn(db), "ROLLBACK"));
	return rc;
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

static const char *hc_migrate_state_name(const hc_mig_row_t *r)
{
	switch (r->state) {
	case HC_MIG_APPLIED:
		return "applied";
	case HC_MIG_PENDING:
		return r->out_of_order ? "pending (out of order)" : "pending";
	case HC_MIG_MODIFIED:
		return "MODIFIED";
	case HC_MIG_UNKNOWN:
		return "UNKNOWN";
	}
	return "?";
}

/* Highest applied version, 0 when none. */
static int hc_migrate_current(const hc_applied_t *applied, size_t napplied)
{
	return napplied > 0 ? applied[napplied - 1].version : 0;
}

static int hc_migrate_lock(hc_ctx_t *ctx, hc_db_t *db, char *err, size_t errlen)
{
	PGresult *res = NULL;
	int rc = hc_db_exec(db, "SELECT pg_try_advisory_lock(" HC_MIGRATE_LOCK_KEY ")", 0, NULL,
	                    &res, NULL, err, errlen);
	if (rc != 0)
		return rc;
	bool got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (got)
		return 0;
	fprintf(ctx->err, "heraldctl: waiting for another 'heraldctl db migrate' to finish...\n");
	return hc_db_exec(db, "SELECT pg_advisory_lock(" HC_MIGRATE_LOCK_KEY ")", 0, NULL, NULL,
	                  NULL, err, errlen);
}

int hc_migrate_cmd_migrate(hc_ctx_t *ctx, int argc, char **argv)
{
	char err[2048];
	size_t npos = 0;
	if (hc_cli_parse_opts(argc, argv, NULL, 0, NULL, NULL, 0, &npos, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: db migrate: %s\n", err);
		return HC_EXIT_USAGE;
	}
	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK)
		return exit_code;

	size_t nknown = 0;
	const hc_migration_t *known = hc_migrate_embedded(&nknown);
	hc_applied_t *applied = NULL;
	hc_mig_row_t *rows = NULL;
	size_t napplied = 0, napplied_now = 0;
	bool has_table = false;

	int rc = hc_migrate_lock(ctx, db, err, sizeof(err));
	long offset = -1;
	if (rc == 0)
		rc = hc_db_exec_script(db, hc_migrate_bootstrap_sql, &offset, err, sizeof(err));
	if (rc == 0)
		rc = hc_migrate_read_applied(db, &applied, &napplied, &has_table, err, sizeof(err));
	if (rc != 0) {
		fprintf(ctx->err, "heraldctl: db migrate: %s\n", err);
		exit_code = hc_cli_exit_code(rc);
		goto out;
	}

	rows = hd_calloc(nknown + napplied + 1, sizeof(*rows));
	size_t nrows = hc_migrate_compare(known, nknown, applied, napplied, rows);
	if (hc_migrate_check(rows, nrows, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: db migrate: refusing to migrate: %s\n", err);
		exit_code = HC_EXIT_FAIL;
		goto out;
	}

	int version = hc_migrate_current(applied, napplied);
	for (size_t i = 0; i < nrows; i++) {
		if (rows[i].state != HC_MIG_PENDING)
			continue;
		int64_t t0 = hd_time_mono_ms();
		rc = hc_migrate_apply(db, rows[i].known, err, sizeof(err));
		if (rc != 0) {
			fprintf(ctx->err, "heraldctl: db migrate: %s\n", err);
			fprintf(ctx->err, "heraldctl: db migrate: %s was rolled back; the database "
			                  "stays at version %d\n",
			        rows[i].known->file->filename, version);
			exit_code = hc_cli_exit_code(rc);
			goto out;
		}
		version = rows[i].version;
		napplied_now++;
		fprintf(ctx->out, "applied %03d_%s (sha256 %.12s) in %lld ms\n", rows[i].version,
		        rows[i].name, rows[i].known->file->sha256,
		        (long long)(hd_time_mono_ms() - t0));
		fflush(ctx->out);
	}
	if (napplied_now == 0)
		fprintf(ctx->out, "database is up to date (version %d)\n", version);
	else
		fprintf(ctx->out, "database is now at version %d (%zu migration%s applied)\n", version,
		        napplied_now, napplied_now == 1 ? "" : "s");

out:
	hd_free(&rows);
	hd_free(&applied);
	hc_db_close(&db);
	return exit_code;
}

static int hc_migrate_status_json(hc_ctx_t *ctx, const hc_mig_row_t *rows, size_t nrows,
                                  int version, bool has_table, const char *problem)
{
	json_t *root = json_object();
	json_t *list = json_array();
	json_t *pending = json_array();
	for (size_t i = 0; i < nrows; i++) {
		const hc_mig_row_t *r = &rows[i];
		const char *state = r->state == HC_MIG_APPLIED   ? "applied"
		                    : r->state == HC_MIG_PENDING ? "pending"
		                    : r->state == HC_MIG_MODIFIED ? "modified"
		                                                  : "unknown";
		json_t *o = json_pack("{s:i, s:s, s:s}", "version", r->version, "name", r->name,
		                      "state", state);
		if (r->known)
			json_object_set_new(o, "sha256", json_string(r->known->file->sha256));
		if (r->applied) {
			json_object_set_new(o, "applied_sha256", json_string(r->applied->sha256));
			json_object_set_new(o, "applied_at", json_string(r->applied->applied_at));
		}
		if (r->state == HC_MIG_PENDING) {
			json_object_set_new(o, "out_of_order", json_boolean(r->out_of_order));
			json_array_append_new(pending, json_integer(r->version));
		}
		json_array_append_new(list, o);
	}
	json_object_set_new(root, "version", json_integer(version));
	json_object_set_new(root, "initialized", json_boolean(has_table));
	json_object_set_new(root, "up_to_date",
	                    json_boolean(problem == NULL && json_array_size(pending) == 0));
	json_object_set_new(root, "pending", pending);
	json_object_set_new(root, "migrations", list);
	json_object_set_new(root, "problem", problem ? json_string(problem) : json_null());
	json_dumpf(root, ctx->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', ctx->out);
	json_decref(root);
	return problem ? HC_EXIT_FAIL : HC_EXIT_OK;
}

int hc_migrate_cmd_status(hc_ctx_t *ctx, int argc, char **argv)
{
	static const hc_opt_t spec[] = {{"json", false}};
	const char *values[1];
	char err[2048];
	size_t npos = 0;
	if (hc_cli_parse_opts(argc, argv, spec, 1, values, NULL, 0, &npos, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: db status: %s\n", err);
		return HC_EXIT_USAGE;
	}
	bool json = values[0] != NULL;

	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK)
		return exit_code;

	size_t nknown = 0;
	const hc_migration_t *known = hc_migrate_embedded(&nknown);
	hc_applied_t *applied = NULL;
	size_t napplied = 0;
	bool has_table = false;
	int rc = hc_migrate_read_applied(db, &applied, &napplied, &has_table, err, sizeof(err));
	hc_db_close(&db);
	if (rc != 0) {
		fprintf(ctx->err, "heraldctl: db status: %s\n", err);
		return hc_cli_exit_code(rc);
	}

	hc_mig_row_t *rows = hd_calloc(nknown + napplied + 1, sizeof(*rows));
	size_t nrows = hc_migrate_compare(known, nknown, applied, napplied, rows);
	char problem[1024];
	bool bad = hc_migrate_check(rows, nrows, problem, sizeof(problem)) != 0;
	int version = hc_migrate_current(applied, napplied);
	size_t npending = 0;
	for (size_t i = 0; i < nrows; i++)
		npending += rows[i].state == HC_MIG_PENDING;

	if (json) {
		exit_code = hc_migrate_status_json(ctx, rows, nrows, version, has_table,
		                                   bad ? problem : NULL);
	} else {
		fprintf(ctx->out, "%-8s %-24s %-22s %s\n", "VERSION", "NAME", "STATE", "APPLIED AT");
		for (size_t i = 0; i < nrows; i++)
			fprintf(ctx->out, "%03d      %-24s %-22s %s\n", rows[i].version, rows[i].name,
			        hc_migrate_state_name(&rows[i]),
			        rows[i].applied ? rows[i].applied->applied_at : "-");
		if (!has_table)
			fprintf(ctx->out, "database has no herald schema yet: %zu pending\n", npending);
		else if (npending == 0)
			fprintf(ctx->out, "database is up to date (version %d)\n", version);
		else
			fprintf(ctx->out, "database is at version %d: %zu pending\n", version, npending);
		if (bad) {
			fprintf(ctx->out, "problem: %s\n", problem);
			exit_code = HC_EXIT_FAIL;
		}
	}
	hd_free(&rows);
	hd_free(&applied);
	return exit_code;
}
