/*
 * NAME
 *	hc_table - aligned text tables for heraldctl's human output
 * DESCRIPTION
 *	See hc_table.h.
 */
#include "hc_table.h"

#include <string.h>

#include "hd_mem.h"

struct hc_table {
	hc_table_col_t cols[HC_TABLE_MAX_COLS];
	size_t ncols;
	char **cells;   /* rows * ncols, row-major */
	size_t nrows;
	size_t cap_rows;
};

/* A continuation byte of a multi-byte UTF-8 sequence. */
static bool hc_table_is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

size_t hc_table_width(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (!hc_table_is_cont(*p))
			n++;
	return n;
}

char *hc_table_clean(const char *s, size_t max_chars, char *buf, size_t len)
{
	size_t total = hc_table_width(s);
	bool cut = max_chars > 3 && total > max_chars;
	size_t keep = cut ? max_chars - 3 : total;
	size_t out = 0, chars = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p != '\0') {
		/* The length of the sequence starting here (1 for stray bytes). */
		size_t seq = 1;
		while (p[seq] != '\0' && hc_table_is_cont(p[seq]))
			seq++;
		if (chars == keep || out + seq + (cut ? 3 : 0) >= len) {
			cut = true;
			break;
		}
		if (seq == 1 && (*p < 0x20 || *p == 0x7F)) {
			buf[out++] = ' ';
		} else {
			memcpy(buf + out, p, seq);
			out += seq;
		}
		chars++;
		p += seq;
	}
	if (cut && *p != '\0') {
		/* Make room for "..." when the buffer, not max_chars, was the limit. */
		while (out + 3 >= len && out > 0) {
			out--;
			while (out > 0 && hc_table_is_cont((unsigned char)buf[out]))
				out--;
		}
		if (out + 3 < len) {
			memcpy(buf + out, "...", 3);
			out += 3;
		}
	}
	buf[out] = '\0';
	return buf;
}

hc_table_t *hc_table_new(const hc_table_col_t *cols, size_t ncols)
{
	if (ncols == 0 || ncols > HC_TABLE_MAX_COLS)
		hd_panic("hc_table_new: %zu columns (1..%d)", ncols, HC_TABLE_MAX_COLS);
	hc_table_t *self = hd_calloc(1, sizeof(*self));
	memcpy(self->cols, cols, ncols * sizeof(*cols));
	self->ncols = ncols;
	return self;
}

void hc_table_destroy(hc_table_t **self_p)
{
	if (self_p == NULL || *self_p == NULL)
		return;
	hc_table_t *self = *self_p;
	for (size_t i = 0; i < self->nrows * self->ncols; i++)
		hd_free(&self->cells[i]);
	hd_free(&self->cells);
	hd_free(self_p);
}

void hc_table_add(hc_table_t *self, const char *const *cells)
{
	if (self->nrows == self->cap_rows) {
		self->cap_rows = self->cap_rows ? self->cap_rows * 2 : 16;
		self->cells = hd_realloc(self->cells, self->cap_rows * self->ncols * sizeof(char *));
	}
	char buf[4096];
	for (size_t c = 0; c < self->ncols; c++) {
		const char *v = cells[c] ? cells[c] : "-";
		self->cells[self->nrows * self->ncols + c] =
			hd_strdup(hc_table_clean(v, self->cols[c].max_chars, buf, sizeof(buf)));
	}
	self->nrows++;
}

size_t hc_table_rows(const hc_table_t *self)
{
	return self->nrows;
}

static void hc_table_line(const hc_table_t *self, FILE *out, int indent, const size_t *widths,
                          const char *const *cells)
{
	/* Pad only up to the last non-empty cell: no trailing spaces. */
	size_t last = 0;
	for (size_t c = 0; c < self->ncols; c++)
		if (cells[c][0] != '\0')
			last = c;
	fprintf(out, "%*s", indent, "");
	for (size_t c = 0; c <= last; c++) {
		size_t w = hc_table_width(cells[c]);
		size_t pad = widths[c] > w ? widths[c] - w : 0;
		if (c > 0)
			fputs("  ", out);
		if (self->cols[c].right)
			fprintf(out, "%*s%s", (int)pad, "", cells[c]);
		else if (c == last)
			fputs(cells[c], out);
		else
			fprintf(out, "%s%*s", cells[c], (int)pad, "");
	}
	fputc('\n', out);
}

void hc_table_print(const hc_table_t *self, FILE *out, int indent)
{
	size_t widths[HC_TABLE_MAX_COLS];
	const char *header[HC_TABLE_MAX_COLS];
	for (size_t c = 0; c < self->ncols; c++) {
		header[c] = self->cols[c].header ? self->cols[c].header : "";
		widths[c] = hc_table_width(header[c]);
	}
	for (size_t r = 0; r < self->nrows; r++) {
		for (size_t c = 0; c < self->ncols; c++) {
			size_t w = hc_table_width(self->cells[r * self->ncols + c]);
			if (w > widths[c])
				widths[c] = w;
		}
	}
	hc_table_line(self, out, indent, widths, header);
	for (size_t r = 0; r < self->nrows; r++)
		hc_table_line(self, out, indent, widths,
		              (const char *const *)&self->cells[r * self->ncols]);
}
