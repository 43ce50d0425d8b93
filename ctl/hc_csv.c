/*
 * NAME
 *	hc_csv - the CSV reader of heraldctl's import files
 * DESCRIPTION
 *	See hc_csv.h. One pass over the text: each field is collected into
 *	a buffer of max_field_bytes + 1 (allocated once), checked, then
 *	copied into the record.
 */
#include "hc_csv.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hd_err.h"
#include "hd_mem.h"

struct hc_csv {
	const char *p, *end;         /* what is left of the text; borrowed */
	int line;                    /* of *p */
	size_t max_fields;
	size_t max_field_bytes;
	char *buf;                   /* max_field_bytes + 1 */
	char **fields;               /* the current record, max_fields slots */
	size_t nfields;
	char error[160];
};

hc_csv_t *hc_csv_new(const char *text, size_t len, size_t max_fields, size_t max_field_bytes)
{
	if (max_fields < 1 || max_fields > HC_CSV_MAX_FIELDS || max_field_bytes < 1 ||
	    max_field_bytes > HC_CSV_MAX_FIELD_BYTES)
		hd_panic("hc_csv_new: max_fields %zu or max_field_bytes %zu out of range", max_fields,
		         max_field_bytes);
	hc_csv_t *self = hd_calloc(1, sizeof(*self));
	self->p = text;
	self->end = text + len;
	self->line = 1;
	self->max_fields = max_fields;
	self->max_field_bytes = max_field_bytes;
	self->buf = hd_malloc(max_field_bytes + 1);
	self->fields = hd_calloc(max_fields, sizeof(*self->fields));
	return self;
}

static void hc_csv_clear(hc_csv_t *self)
{
	for (size_t i = 0; i < self->nfields; i++)
		hd_free(&self->fields[i]);
	self->nfields = 0;
}

void hc_csv_destroy(hc_csv_t **self_p)
{
	if (self_p == NULL || *self_p == NULL)
		return;
	hc_csv_t *self = *self_p;
	hc_csv_clear(self);
	hd_free(&self->fields);
	hd_free(&self->buf);
	hd_free(self_p);
}

const char *hc_csv_error(const hc_csv_t *self)
{
	return self->error;
}

/* The reason into self->error, the line into *line_p; returns HD_E_INVALID. */
static int hc_csv_fail(hc_csv_t *self, int line, int *line_p, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int hc_csv_fail(hc_csv_t *self, int line, int *line_p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(self->error, sizeof(self->error), fmt, ap);
	va_end(ap);
	*line_p = line;
	hc_csv_clear(self);
	return HD_E_INVALID;
}

/* Strip spaces and tabs around an unquoted field, in place. */
static void hc_csv_trim(char *s)
{
	size_t len = strlen(s);
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		s[--len] = '\0';
	size_t lead = strspn(s, " \t");
	if (lead > 0)
		memmove(s, s + lead, len - lead + 1);
}

/* Skip blank lines and comments; false at the end of the text. */
static bool hc_csv_skip_blank(hc_csv_t *self)
{
	for (;;) {
		if (self->p >= self->end)
			return false;
		const char *eol = memchr(self->p, '\n', (size_t)(self->end - self->p));
		const char *stop = eol != NULL ? eol : self->end;
		const char *q = self->p;
		while (q < stop && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		if (q < stop && *q != '#')
			return true;
		self->p = eol != NULL ? eol + 1 : self->end;
		self->line++;
	}
}

int hc_csv_next(hc_csv_t *self, const char *const **fields_p, size_t *n_p, int *line_p)
{
	hc_csv_clear(self);
	self->error[0] = '\0';
	*fields_p = NULL;
	*n_p = 0;
	if (!hc_csv_skip_blank(self))
		return 0;
	*line_p = self->line;
	char *buf = self->buf;
	const size_t max = self->max_field_bytes;
	for (;;) {
		size_t len = 0;
		const char *p = self->p;
		while (p < self->end && (*p == ' ' || *p == '\t'))
			p++;
		bool quoted = p < self->end && *p == '"';
		if (quoted) {
			int open_line = self->line;
			p++;
			for (;;) {
				if (p >= self->end)
					return hc_csv_fail(self, open_line, line_p,
					                   "a quoted field is not closed");
				if (*p == '"') {
					p++;
					if (p >= self->end || *p != '"')
						break;
				} else if (*p == '\n') {
					self->line++;
				}
				if (len >= max)
					return hc_csv_fail(self, self->line, line_p,
					                   "a field is longer than %zu bytes", max);
				buf[len++] = *p++;
			}
			while (p < self->end && (*p == ' ' || *p == '\t' || *p == '\r'))
				p++;
			if (p < self->end && *p != ',' && *p != '\n')
				return hc_csv_fail(self, self->line, line_p, "text after a closing quote");
		} else {
			p = self->p;
			while (p < self->end && *p != ',' && *p != '\n') {
				if (*p == '"')
					return hc_csv_fail(self, self->line, line_p,
					                   "a quote inside an unquoted field (quote the "
					                   "whole field and double the quote)");
				if (len >= max)
					return hc_csv_fail(self, self->line, line_p,
					                   "a field is longer than %zu bytes", max);
				/* CRLF line ends: the CR is not part of the field */
				if (*p != '\r')
					buf[len++] = *p;
				p++;
			}
		}
		if (memchr(buf, '\0', len) != NULL)
			return hc_csv_fail(self, self->line, line_p, "a field contains a NUL byte");
		if (self->nfields >= self->max_fields)
			return hc_csv_fail(self, self->line, line_p, "more than %zu fields",
			                   self->max_fields);
		buf[len] = '\0';
		self->fields[self->nfields] = hd_strdup(buf);
		if (!quoted)
			hc_csv_trim(self->fields[self->nfields]);
		self->nfields++;
		if (p >= self->end) {
			self->p = self->end;
			break;
		}
		self->p = p + 1;
		if (*p == '\n') {
			self->line++;
			break;
		}
	}
	*fields_p = (const char *const *)self->fields;
	*n_p = self->nfields;
	return 1;
}

int hc_csv_columns(const char *const *fields, size_t n, const char *const *names, size_t nnames,
                   int *col_of, size_t *field_p, size_t *name_p)
{
	for (size_t k = 0; k < nnames; k++)
		col_of[k] = -1;
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		while (k < nnames && strcasecmp(fields[i], names[k]) != 0)
			k++;
		*field_p = i;
		if (k == nnames)
			return HD_E_NOTFOUND;
		if (col_of[k] >= 0) {
			*name_p = k;
			return HD_E_INVALID;
		}
		col_of[k] = (int)i;
	}
	return 0;
}
