/*
 * NAME
 *	test_hd_match - many literal terms found in one pass
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hd_err.h"
#include "hd_match.h"

static hd_match_t *build(const char *const *terms, const unsigned *lists, size_t n)
{
	size_t lens[16];
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(terms[i]);
	hd_match_t *m = NULL;
	char err[256];
	assert_int_equal(hd_match_new(terms, lens, lists, n, &m, err, sizeof(err)), HD_OK);
	return m;
}

static hd_match_hits_t scan(hd_match_t *m, const char *text)
{
	hd_match_hits_t hits = {0};
	assert_int_equal(hd_match_scan(m, text, strlen(text), &hits), HD_OK);
	return hits;
}

static void test_reports_each_list_and_its_first_term(void **state)
{
	(void)state;
	const char *terms[] = {"salary", "bonus", "\xe6\x9c\xba\xe5\xaf\x86", "merger"};
	const unsigned lists[] = {0, 0, 0, 5};
	hd_match_t *m = build(terms, lists, 4);
	assert_int_equal(hd_match_count(m), 4);
	hd_match_hits_t h = scan(m, "the bonus and the salary");
	assert_int_equal(h.lists, 1u);
	assert_string_equal(hd_match_term(m, h.first_term[0]), "bonus");
	h = scan(m, "merger talks \xe6\x9c\xba\xe5\xaf\x86");
	assert_int_equal(h.lists, (1u << 0) | (1u << 5));
	assert_string_equal(hd_match_term(m, h.first_term[5]), "merger");
	assert_int_equal(scan(m, "nothing here").lists, 0);
	hd_match_destroy(&m);
	assert_null(m);
}

static void test_ascii_edges_need_word_boundaries_cjk_do_not(void **state)
{
	(void)state;
	const char *terms[] = {"ass", "\xe8\xb5\x8c", "c++"};
	const unsigned lists[] = {0, 1, 2};
	hd_match_t *m = build(terms, lists, 3);
	assert_int_equal(scan(m, "class assignment pass").lists, 0);
	assert_int_equal(scan(m, "you ass.").lists, 1u);
	assert_int_equal(scan(m, "ass").lists, 1u);
	assert_int_equal(scan(m, "\xe4\xb8\x8d\xe8\xb5\x8c\xe5\x8d\x9a").lists, 2u);
	/* "+" is not a word byte: c++ matches before "x" too. */
	assert_int_equal(scan(m, "abc++x").lists, 0);
	assert_int_equal(scan(m, "c++x").lists, 4u);
	hd_match_destroy(&m);
}

static void test_a_later_occurrence_counts_when_the_first_is_inside_a_word(void **state)
{
	(void)state;
	const char *terms[] = {"ass"};
	const unsigned lists[] = {3};
	hd_match_t *m = build(terms, lists, 1);
	assert_int_equal(scan(m, "classy ass").lists, 1u << 3);
	hd_match_destroy(&m);
}

static void test_no_terms_matches_nothing_and_empty_terms_are_ignored(void **state)
{
	(void)state;
	const char *terms[] = {""};
	const unsigned lists[] = {0};
	hd_match_t *m = build(terms, lists, 1);
	assert_int_equal(hd_match_count(m), 0);
	assert_int_equal(scan(m, "anything").lists, 0);
	hd_match_destroy(&m);
	m = build(NULL, NULL, 0);
	assert_int_equal(scan(m, "anything").lists, 0);
	hd_match_destroy(&m);
	hd_match_destroy(NULL);
}

static void test_list_numbers_beyond_64_are_refused(void **state)
{
	(void)state;
	const char *terms[] = {"a"};
	const size_t lens[] = {1};
	const unsigned lists[] = {HD_MATCH_MAX_LISTS};
	hd_match_t *m = NULL;
	char err[256];
	assert_int_equal(hd_match_new(terms, lens, lists, 1, &m, err, sizeof(err)), HD_E_CONFIG);
	assert_null(m);
	assert_non_null(strstr(err, "out of range"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reports_each_list_and_its_first_term),
		cmocka_unit_test(test_ascii_edges_need_word_boundaries_cjk_do_not),
		cmocka_unit_test(test_a_later_occurrence_counts_when_the_first_is_inside_a_word),
		cmocka_unit_test(test_no_terms_matches_nothing_and_empty_terms_are_ignored),
		cmocka_unit_test(test_list_numbers_beyond_64_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
