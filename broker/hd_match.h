/*
 * NAME
 *	hd_match - many literal terms found in one pass (Hyperscan)
 * DESCRIPTION
 *	The policy's word lists (prohibited content, civility, sensitive
 *	and major keywords) can hold tens of thousands of terms in Chinese
 *	and English. They are compiled once into one Hyperscan literal
 *	database, so a scan costs about the same with 10 or 10,000 terms.
 *	Every term belongs to one list (0..63); a scan reports which lists
 *	matched and, per list, the first term that did.
 *	Terms and text are expected already folded (hd_fold). A term whose
 *	first or last byte is an ASCII letter only matches where the text
 *	has no ASCII letter next to that end, so "ass" is not found in
 *	"class" while "counterfeit" is found in "counterfeit2024"; CJK terms
 *	match anywhere.
 *	Pure: no I/O, no logging.
 * OWNERSHIP
 *	hd_match_t copies the terms. It keeps one Hyperscan scratch space,
 *	so one matcher serves one thread.
 */
#ifndef HD_MATCH_H
#define HD_MATCH_H

#include <stddef.h>
#include <stdint.h>

#define HD_MATCH_MAX_LISTS 64u

typedef struct hd_match hd_match_t;

/* What one or more scans found. Zero it before the first scan. */
typedef struct hd_match_hits {
	uint64_t lists;                           /* bit l set: list l matched */
	uint32_t first_term[HD_MATCH_MAX_LISTS];  /* valid where the bit is set */
} hd_match_hits_t;

/*
 * Compile n terms (terms[i] of lens[i] bytes, in list lists[i] <
 * HD_MATCH_MAX_LISTS). Empty terms are ignored. On success *out is the
 * caller's; on failure returns HD_E_CONFIG with Hyperscan's reason in err.
 */
int hd_match_new(const char *const *terms, const size_t *lens, const unsigned *lists, size_t n,
		 hd_match_t **out, char *err, size_t errlen);

/* NULL-safe; sets *self_p to NULL. */
void hd_match_destroy(hd_match_t **self_p);

/* Scan len bytes of text, adding what matched to *hits. 0 or HD_E_INTERNAL. */
int hd_match_scan(hd_match_t *self, const char *text, size_t len, hd_match_hits_t *hits);

/* Term i as compiled (NUL-terminated), for reasons shown to people. */
const char *hd_match_term(const hd_match_t *self, uint32_t i);

/* Number of terms compiled. */
size_t hd_match_count(const hd_match_t *self);

#endif
