/*
 * NAME
 *	test_hd_classify - general, important or bulk (POLICY A1, A2.1, A3)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hd_classify.h"
#include "hd_mem.h"
#include "hd_msg.h"


static hd_msg_t *make_msg(const char *subject, const char *body, size_t recipients)
{
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = hd_strdup("alice@example.com");
	m->subject = subject ? hd_strdup(subject) : NULL;
	m->body = body ? hd_strdup(body) : NULL;
	m->to = hd_calloc(recipients, sizeof(char *));
	for (size_t i = 0; i < recipients; i++)
		m->to[i] = hd_strdup("bob@example.com");
	m->to_count = recipients;
	return m;
}

static hd_classify_t *rules(void)
{
	return hd_classify_new(5, "[重要]");
}

static void test_A1_plain_message_is_general_and_queued(void **state)
{
	(void)state;
	hd_classify_t *c = rules();
	hd_msg_t *m = make_msg("Lunch", "At noon", 1);
	assert_int_equal(hd_classify_message(c, m), HD_CLASS_GENERAL);
	assert_string_equal(hd_classify_initial_state(HD_CLASS_GENERAL), "queued");
	hd_msg_destroy(&m);
	hd_classify_destroy(&c);
}

static void test_A2_1_important_flag_tag_or_content_make_important_and_held(void **state)
{
	(void)state;
	hd_classify_t *c = rules();
	hd_msg_t *m = make_msg("Lunch", "At noon", 1);
	m->flags = HD_FLAG_IMPORTANT;
	assert_int_equal(hd_classify_message(c, m), HD_CLASS_IMPORTANT);
	hd_msg_destroy(&m);
	m = make_msg("[重要] 合同", "正文", 1);
	assert_int_equal(hd_classify_message(c, m), HD_CLASS_IMPORTANT);
	hd_msg_destroy(&m);
	m = make_msg("Notes", "this is cONFIDENTIAL material", 1);
	/* Keywords are the policy's business: classify only takes its verdict. */
	assert_int_equal(hd_classify_message(c, m), HD_CLASS_GENERAL);
	assert_int_equal(hd_classify_explain(c, m, true, false).klass, HD_CLASS_IMPORTANT);
	assert_string_equal(hd_classify_initial_state(HD_CLASS_IMPORTANT), "held");
	hd_msg_destroy(&m);
	hd_classify_destroy(&c);
}

static void test_A3_threshold_recipients_or_flag_make_bulk_even_when_important(void **state)
{
	(void)state;
	hd_classify_t *c = rules();
	hd_msg_t *m = make_msg("Newsletter", "Hello", 5);
	assert_int_equal(hd_classify_message(c, m), HD_CLASS_BULK);
	hd_msg_destroy(&m);
	m = make_msg("Newsletter", "Hello", 4);
	assert_int_equal(hd_classify_message(c, m), HD_CLASS_GENERAL);
	m->flags = HD_FLAG_BULK | HD_FLAG_IMPORTANT;
	assert_int_equal(hd_classify_message(c, m), HD_CLASS_BULK);
	assert_string_equal(hd_classify_initial_state(HD_CLASS_BULK), "held");
	hd_msg_destroy(&m);
	hd_classify_destroy(&c);
}

static void test_E1_important_email_gets_the_tag_prefixed_exactly_once(void **state)
{
	(void)state;
	hd_classify_t *c = rules();
	hd_msg_t *m = make_msg("合同审批", "正文", 1);
	assert_true(hd_classify_tag_subject(c, m, 998));
	assert_string_equal(m->subject, "[重要] 合同审批");
	assert_false(hd_classify_tag_subject(c, m, 998));
	assert_string_equal(m->subject, "[重要] 合同审批");
	hd_msg_destroy(&m);
	m = make_msg("Contract [重要]", "x", 1);
	assert_false(hd_classify_tag_subject(c, m, 998));
	assert_string_equal(m->subject, "Contract [重要]");
	hd_msg_destroy(&m);
	m = make_msg("abcdef", "x", 1);
	assert_false(hd_classify_tag_subject(c, m, 10)); /* would not fit */
	assert_string_equal(m->subject, "abcdef");
	m->channel = HD_CHANNEL_IM;
	assert_false(hd_classify_tag_subject(c, m, 998));
	hd_msg_destroy(&m);
	hd_classify_destroy(&c);
}

static void test_A2_1_major_flag_or_content_is_major_and_important_even_in_bulk(void **state)
{
	(void)state;
	hd_classify_t *c = rules();
	hd_msg_t *m = make_msg("董事会纪要", "x", 1);
	hd_classify_result_t r = hd_classify_explain(c, m, false, true);
	assert_int_equal(r.klass, HD_CLASS_IMPORTANT);
	assert_true(r.major && r.important);
	hd_msg_destroy(&m);
	m = make_msg("Plan", "x", 6);
	m->flags = HD_FLAG_MAJOR;
	r = hd_classify_explain(c, m, false, false);
	assert_int_equal(r.klass, HD_CLASS_BULK);
	assert_true(r.major && r.important);
	hd_msg_destroy(&m);
	m = make_msg("Plan", "x", 1);
	r = hd_classify_explain(c, m, false, false);
	assert_false(r.major || r.important);
	hd_msg_destroy(&m);
	hd_classify_destroy(&c);
}

static void test_destroy_is_null_safe(void **state)
{
	(void)state;
	hd_classify_t *c = NULL;
	hd_classify_destroy(&c);
	hd_classify_destroy(NULL);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_A1_plain_message_is_general_and_queued),
		cmocka_unit_test(test_A2_1_important_flag_tag_or_content_make_important_and_held),
		cmocka_unit_test(test_A3_threshold_recipients_or_flag_make_bulk_even_when_important),
		cmocka_unit_test(test_E1_important_email_gets_the_tag_prefixed_exactly_once),
		cmocka_unit_test(test_A2_1_major_flag_or_content_is_major_and_important_even_in_bulk),
		cmocka_unit_test(test_destroy_is_null_safe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
