/*
 * NAME
 *	hc_db - heraldctl's database connection
 * DESCRIPTION
 *	Opens one libpq connection from the standard settings (--db, else
 *	$HERALD_DATABASE_URL, else libpq's defaults: PGHOST, PGSERVICE,
 *	~/.pgpass, ...) and runs statements with error text kept for the
 *	caller. It prints nothing but server WARNINGs (to stderr) and never
 *	echoes the conninfo: it may hold a password. Connection failures are HD_E_UNAVAILABLE (heraldctl's
 *	exit 4); SQL errors are HD_E_IO with the server's message.
 * OWNERSHIP
 *	hc_db_t owns its PGconn. Results returned to the caller are the
 *	caller's to PQclear().
 */
#ifndef HC_DB_H
#define HC_DB_H

#include <stddef.h>

#include <libpq-fe.h>

typedef struct hc_db hc_db_t;

/* Environment variable consulted when no --db is given. */
#define HC_DB_ENV "HERALD_DATABASE_URL"

/*
 * The conninfo to use: cli_value when not NULL, else $HERALD_DATABASE_URL
 * when set and non-empty, else NULL (libpq defaults). *source_p receives
 * a printable description of where it came from ("--db", ...), never the
 * value. Borrowed; valid while argv and the environment are.
 */
const char *hc_db_conninfo(const char *cli_value, const char **source_p);

/*
 * Connect. conninfo may be NULL (libpq defaults). Returns 0 and *self_p,
 * or HD_E_UNAVAILABLE (cannot connect) / HD_E_CONFIG (unparsable conninfo)
 * with a message in err. Caller owns *self_p (hc_db_close).
 */
int hc_db_open(hc_db_t **self_p, const char *conninfo, char *err, size_t errlen);

/* Disconnect and free; NULL-safe; sets *self_p to NULL. */
void hc_db_close(hc_db_t **self_p);

/* The underlying connection. Borrowed; valid until hc_db_close. */
PGconn *hc_db_conn(hc_db_t *self);

/*
 * Run sql with nparams text parameters (may be 0/NULL). On success returns
 * 0 and, when res_p is not NULL, the result (caller owns; PQclear it).
 * On failure returns HD_E_UNAVAILABLE when the connection is gone, else
 * HD_E_IO, with the server's message (and SQLSTATE, when sqlstate is not
 * NULL: 6 bytes) in err.
 */
int hc_db_exec(hc_db_t *self, const char *sql, int nparams, const char *const *params,
               PGresult **res_p, char *sqlstate, char *err, size_t errlen);

/*
 * Run a multi-statement script (simple query protocol). Same results as
 * hc_db_exec; on error *error_offset_p receives the 0-based character
 * (not byte) offset of the error in script when the server reports one,
 * else -1.
 */
int hc_db_exec_script(hc_db_t *self, const char *script, long *error_offset_p,
                      char *err, size_t errlen);

#endif
