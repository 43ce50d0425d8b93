/*
 * NAME
 *	hd_match - many literal terms found in one pass (see hd_match.h)
 */
#include "hd_match.h"

#include <hs/hs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_err.h"
#include "hd_mem.h"

typedef struct hd_match_term {
	char *text;
	size_t len;
	unsigned list;
	bool word_start;  /* first byte is ASCII alphanumeric: needs a boundary before */
	bool word_end;
} hd_match_term_t;

struct hd_match {
	hd_match_term_t *terms;
	size_t count;
	hs_database_t *db;      /* NULL when there is no term */
	hs_scratch_t *scratch;
};

typedef struct hd_match_scan_ctx {
	const hd_match_t *self;
	const unsigned char *text;
	size_t len;
	hd_match_hits_t *hits;
} hd_match_scan_ctx_t;

/* Letters only: "counterfeit2024" and "counterfeit_goods" still contain the word. */
static bool hd_match_is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int hd_match_new(const char *const *terms, const size_t *lens, const unsigned *lists, size_t n,
		 hd_match_t **out, char *err, size_t errlen)
{
	hd_match_t *self = hd_calloc(1, sizeof(*self));
	self->terms = hd_calloc(n ? n : 1, sizeof(*self->terms));
	for (size_t i = 0; i < n; i++) {
		if (lens[i] == 0)
			continue;
		if (lists[i] >= HD_MATCH_MAX_LISTS) {
			snprintf(err, errlen, "list number %u out of range", lists[i]);
			hd_match_destroy(&self);
			return HD_E_CONFIG;
		}
		hd_match_term_t *t = &self->terms[self->count++];
		t->text = hd_strndup(terms[i], lens[i]);
		t->len = lens[i];
		t->list = lists[i];
		t->word_start = hd_match_is_word_byte((unsigned char)t->text[0]);
		t->word_end = hd_match_is_word_byte((unsigned char)t->text[t->len - 1]);
	}
	if (self->count > 0) {
		const char **exprs = hd_calloc(self->count, sizeof(*exprs));
		size_t *elens = hd_calloc(self->count, sizeof(*elens));
		unsigned *ids = hd_calloc(self->count, sizeof(*ids));
		unsigned *flags = hd_calloc(self->count, sizeof(*flags));
		for (size_t i = 0; i < self->count; i++) {
			exprs[i] = self->terms[i].text;
			elens[i] = self->terms[i].len;
			ids[i] = (unsigned)i;
		}
		hs_compile_error_t *cerr = NULL;
		hs_error_t rc = hs_compile_lit_multi(exprs, flags, ids, elens, (unsigned)self->count,
						     HS_MODE_BLOCK, NULL, &self->db, &cerr);
		free(exprs);
		free(elens);
		free(ids);
		free(flags);
		if (rc != HS_SUCCESS) {
			snprintf(err, errlen, "cannot compile %zu terms: %s", self->count,
				 cerr && cerr->message ? cerr->message : "hyperscan error");
			hs_free_compile_error(cerr);
			hd_match_destroy(&self);
			return HD_E_CONFIG;
		}
		if (hs_alloc_scratch(self->db, &self->scratch) != HS_SUCCESS) {
			snprintf(err, errlen, "cannot allocate hyperscan scratch space");
			hd_match_destroy(&self);
			return HD_E_CONFIG;
		}
	}
	*out = self;
	return HD_OK;
}

void hd_match_destroy(hd_match_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_match_t *self = *self_p;
	for (size_t i = 0; i < self->count; i++)
		free(self->terms[i].text);
	free(self->terms);
	hs_free_scratch(self->scratch);
	hs_free_database(self->db);
	free(self);
	*self_p = NULL;
}

static int hd_match_on_hit(unsigned int id, unsigned long long from, unsigned long long to,
			   unsigned int flags, void *arg)
{
	(void)from;
	(void)flags;
	hd_match_scan_ctx_t *ctx = arg;
	const hd_match_term_t *t = &ctx->self->terms[id];
	size_t end = (size_t)to;
	size_t start = end - t->len;
	if (t->word_start && start > 0 && hd_match_is_word_byte(ctx->text[start - 1]))
		return 0;
	if (t->word_end && end < ctx->len && hd_match_is_word_byte(ctx->text[end]))
		return 0;
	uint64_t bit = UINT64_C(1) << t->list;
	if (!(ctx->hits->lists & bit)) {
		ctx->hits->lists |= bit;
		ctx->hits->first_term[t->list] = id;
	}
	return 0;
}

int hd_match_scan(hd_match_t *self, const char *text, size_t len, hd_match_hits_t *hits)
{
	if (!self->db || len == 0)
		return HD_OK;
	hd_match_scan_ctx_t ctx = {self, (const unsigned char *)text, len, hits};
	if (len > UINT32_MAX)
		return HD_E_INTERNAL;
	hs_error_t rc = hs_scan(self->db, text, (unsigned)len, 0, self->scratch, hd_match_on_hit,
				&ctx);
	return rc == HS_SUCCESS ? HD_OK : HD_E_INTERNAL;
}

const char *hd_match_term(const hd_match_t *self, uint32_t i)
{
	return i < self->count ? self->terms[i].text : "";
}

size_t hd_match_count(const hd_match_t *self)
{
	return self->count;
}
