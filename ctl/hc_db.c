/*
 * NAME
 *	hc_db - heraldctl's database connection
 * DESCRIPTION
 *	See hc_db.h. Server NOTICEs ("already exists, skipping") are
 *	dropped; WARNINGs and worse are passed on to stderr as they arrive,
 *	because only the server knows about them.
 */
#include "hc_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_err.h"
#include "hd_mem.h"

struct hc_db {
	PGconn *conn;
};

const char *hc_db_conninfo(const char *cli_value, const char **source_p)
{
	if (cli_value != NULL) {
		*source_p = "--db";
		return cli_value;
	}
	const char *env = getenv(HC_DB_ENV);
	if (env != NULL && env[0] != '\0') {
		*source_p = "$" HC_DB_ENV;
		return env;
	}
	*source_p = "libpq defaults";
	return NULL;
}

/* Copy a libpq message without its trailing newline. */
static void hc_db_copy_msg(char *err, size_t errlen, const char *msg)
{
	if (errlen == 0)
		return;
	snprintf(err, errlen, "%s", msg && msg[0] ? msg : "unknown error");
	size_t len = strlen(err);
	while (len > 0 && (err[len - 1] == '\n' || err[len - 1] == ' '))
		err[--len] = '\0';
}

static void hc_db_notice(void *arg, const PGresult *res)
{
	(void)arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (sev == NULL || strcmp(sev, "NOTICE") == 0 || strcmp(sev, "INFO") == 0 ||
	    strcmp(sev, "DEBUG") == 0 || strcmp(sev, "LOG") == 0)
		return;
	fprintf(stderr, "heraldctl: server: %s", PQresultErrorMessage(res));
}

int hc_db_open(hc_db_t **self_p, const char *conninfo, char *err, size_t errlen)
{
	*self_p = NULL;
	if (conninfo != NULL) {
		/* Parse first so a typo is a configuration error, not "unreachable". */
		char *perr = NULL;
		PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
		if (opts == NULL) {
			/* libpq's parse error quotes pieces of the string, which
			 * may be a password: do not pass it on. */
			snprintf(err, errlen, "not a valid conninfo string or postgresql:// URL");
			PQfreemem(perr);
			return HD_E_CONFIG;
		}
		PQconninfoFree(opts);
	}

	/* Keywords before "dbname" are overridden by what conninfo itself says. */
	const char *keys[4];
	const char *vals[4];
	int n = 0;
	if (getenv("PGCONNECT_TIMEOUT") == NULL) {
		keys[n] = "connect_timeout";
		vals[n++] = "10";
	}
	keys[n] = "fallback_application_name";
	vals[n++] = "heraldctl";
	keys[n] = "dbname";
	vals[n++] = conninfo;
	keys[n] = NULL;
	vals[n] = NULL;

	PGconn *conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL) {
		snprintf(err, errlen, "out of memory");
		return HD_E_UNAVAILABLE;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		hc_db_copy_msg(err, errlen, PQerrorMessage(conn));
		PQfinish(conn);
		return HD_E_UNAVAILABLE;
	}
	PQsetNoticeReceiver(conn, hc_db_notice, NULL);
	hc_db_t *self = hd_calloc(1, sizeof(*self));
	self->conn = conn;
	*self_p = self;
	return 0;
}

void hc_db_close(hc_db_t **self_p)
{
	if (self_p == NULL || *self_p == NULL)
		return;
	PQfinish((*self_p)->conn);
	hd_free(self_p);
}

PGconn *hc_db_conn(hc_db_t *self)
{
	return self->conn;
}

/* Fill err from a failed result (or the connection) and classify it. */
static int hc_db_failure(hc_db_t *self, PGresult *res, char *sqlstate, char *err, size_t errlen)
{
	const char *msg = res ? PQresultErrorMessage(res) : NULL;
	if (msg == NULL || msg[0] == '\0')
		msg = PQerrorMessage(self->conn);
	hc_db_copy_msg(err, errlen, msg);
	if (sqlstate != NULL) {
		const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		snprintf(sqlstate, 6, "%s", st ? st : "");
	}
	if (PQstatus(self->conn) != CONNECTION_OK)
		return HD_E_UNAVAILABLE;
	return HD_E_IO;
}

int hc_db_exec(hc_db_t *self, const char *sql, int nparams, const char *const *params,
               PGresult **res_p, char *sqlstate, char *err, size_t errlen)
{
	if (res_p != NULL)
		*res_p = NULL;
	PGresult *res = PQexecParams(self->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		int rc = hc_db_failure(self, res, sqlstate, err, errlen);
		PQclear(res);
		return rc;
	}
	if (res_p != NULL)
		*res_p = res;
	else
		PQclear(res);
	return 0;
}

int hc_db_exec_script(hc_db_t *self, const char *script, long *error_offset_p,
                      char *err, size_t errlen)
{
	*error_offset_p = -1;
	/* PQexec returns the last result; an error stops the script there. */
	PGresult *res = PQexec(self->conn, script);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
		PQclear(res);
		return 0;
	}
	const char *pos = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
	if (pos != NULL)
		*error_offset_p = strtol(pos, NULL, 10) - 1;
	int rc = hc_db_failure(self, res, NULL, err, errlen);
	PQclear(res);
	return rc;
}
