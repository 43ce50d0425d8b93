/*
 * NAME
 *	hc_csv - the CSV reader of heraldctl's import files
 * DESCRIPTION
 *	Reads records from a text in memory, RFC 4180 style: fields are
 *	separated by ',' and records by LF or CRLF; a field in double quotes
 *	may hold commas, line breaks and doubled quotes ("say ""hi"""), and
 *	only blanks may stand between its closing quote and the next ',' or
 *	line end. Unquoted fields lose the spaces and tabs around them and
 *	every carriage return; a quote inside one is an error. Between
 *	records, blank lines and lines whose first non-blank character is
 *	'#' are skipped (not RFC 4180, but every heraldctl file allows
 *	comments). Errors name the line they are on; an unclosed quote, the
 *	line it opened on. Also maps a header record onto known column
 *	names. Pure: no I/O, no logging; what a record means is the caller's.
 *	Used by hc_org (organisation files) and hc_policy (consent files).
 * OWNERSHIP
 *	The reader borrows the text (it must outlive the reader) and owns
 *	the current record: the fields hc_csv_next returns are valid until
 *	the next call or hc_csv_destroy.
 * LIMITS
 *	The caller sets max_fields per record (at most HC_CSV_MAX_FIELDS) and
 *	max_field_bytes per field (at most HC_CSV_MAX_FIELD_BYTES); a longer
 *	record or field is an error, as is a NUL byte in a field.
 */
#ifndef HC_CSV_H
#define HC_CSV_H

#include <stddef.h>

#define HC_CSV_MAX_FIELDS 1024
#define HC_CSV_MAX_FIELD_BYTES (1024 * 1024)

typedef struct hc_csv hc_csv_t;

/*
 * A reader over text[0..len) (borrowed), starting at line 1.
 * max_fields in 1..HC_CSV_MAX_FIELDS and max_field_bytes in
 * 1..HC_CSV_MAX_FIELD_BYTES (anything else is a bug and panics).
 * Caller owns the result (hc_csv_destroy).
 */
hc_csv_t *hc_csv_new(const char *text, size_t len, size_t max_fields, size_t max_field_bytes);

/* Free the reader and its current record; NULL-safe; sets *self_p to NULL. */
void hc_csv_destroy(hc_csv_t **self_p);

/*
 * Read the next record. Returns 1 with *fields_p (*n_p NUL-terminated
 * fields, at least one, owned by the reader) and *line_p the line the
 * record starts on; 0 at the end of the text; or HD_E_INVALID with the
 * reason in hc_csv_error() and *line_p the line of the mistake (no
 * record is returned, and reading on is not meaningful).
 */
int hc_csv_next(hc_csv_t *self, const char *const **fields_p, size_t *n_p, int *line_p);

/* The reason of the last HD_E_INVALID, without file or line ("" when none); owned by the reader. */
const char *hc_csv_error(const hc_csv_t *self);

/*
 * Map a header record of n fields onto the nnames known column names
 * (compared without case): col_of[k] (nnames entries, written) becomes
 * the index of names[k] among the fields, or -1 when the header lacks
 * it. 0; HD_E_NOTFOUND when fields[*field_p] is no known name; or
 * HD_E_INVALID when fields[*field_p] names names[*name_p] a second time.
 * The first such field decides.
 */
int hc_csv_columns(const char *const *fields, size_t n, const char *const *names, size_t nnames,
                   int *col_of, size_t *field_p, size_t *name_p);

#endif
