/*
 * NAME
 *	hc_table - aligned text tables for heraldctl's human output
 * DESCRIPTION
 *	Collects rows of text cells and prints them with every column as
 *	wide as its widest cell, a header row first, two spaces between
 *	columns. Widths count UTF-8 code points, not bytes, so accented
 *	names line up (East Asian wide characters count as one). Cells are
 *	made printable when added: control characters (a newline in a
 *	provider's error text) become spaces, and a cell longer than the
 *	column's max_chars is cut at a code point boundary with "...".
 *	Right-aligned columns are for numbers. No I/O except printing.
 * OWNERSHIP
 *	The table owns copies of every cell; callers keep their strings.
 * LIMITS
 *	At most HC_TABLE_MAX_COLS columns.
 */
#ifndef HC_TABLE_H
#define HC_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define HC_TABLE_MAX_COLS 16

typedef struct hc_table hc_table_t;

/* One column: its header, alignment and the longest cell shown (0 = no limit). */
typedef struct hc_table_col {
	const char *header;
	bool right;
	size_t max_chars;
} hc_table_col_t;

/*
 * A table with ncols columns (1..HC_TABLE_MAX_COLS; more is a bug and
 * panics). cols is copied. Caller owns the result (hc_table_destroy).
 */
hc_table_t *hc_table_new(const hc_table_col_t *cols, size_t ncols);

/* Free the table and its cells; NULL-safe; sets *self_p to NULL. */
void hc_table_destroy(hc_table_t **self_p);

/*
 * Append a row of ncols cells (NULL prints as "-"); the cells are
 * copied, sanitized and cut as described above.
 */
void hc_table_add(hc_table_t *self, const char *const *cells);

/* Rows added so far. */
size_t hc_table_rows(const hc_table_t *self);

/*
 * Print the header and the rows, each line starting with indent spaces;
 * trailing spaces are not printed.
 */
void hc_table_print(const hc_table_t *self, FILE *out, int indent);

/* Number of UTF-8 code points in s (bytes that start one). */
size_t hc_table_width(const char *s);

/*
 * A printable copy of s in buf (size len > 0): control characters as
 * spaces, at most max_chars code points (0 = no limit), cut text ending
 * in "...". Never splits a UTF-8 sequence. Returns buf.
 */
char *hc_table_clean(const char *s, size_t max_chars, char *buf, size_t len);

#endif
