/*
 * NAME
 *	test_hd_policy - every message-level clause of the sending policy
 * DESCRIPTION
 *	Each test names the POLICY clause it proves. Messages are built as
 *	the decoder would leave them; the policy is the built-in default
 *	unless a test writes its own configuration file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hd_err.h"
#include "hd_mem.h"
#include "hd_msg.h"
#include "hd_policy.h"

/* 2026-11-28 12:00:00 UTC, 20:00 in UTC+8. */
#define NOON_UTC INT64_C(1795867200)

static hd_msg_t *email(const char *subject, const char *body)
{
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = hd_strdup("alice@example.com");
	hd_msg_add_to(m, "bob@example.com");
	m->subject = subject ? hd_strdup(subject) : NULL;
	m->body = body ? hd_strdup(body) : NULL;
	return m;
}

static hd_msg_t *im(const char *body)
{
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_IM);
	m->sender = hd_strdup("alice@example.com");
	hd_msg_add_to(m, "ops-oncall");
	m->body = hd_strdup(body);
	return m;
}

static hd_msg_t *sms(const char *body, hd_purpose_t purpose)
{
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_SMS);
	m->sender = hd_strdup("alice@example.com");
	hd_msg_add_to(m, "+8613800138000");
	m->body = hd_strdup(body);
	m->purpose = purpose;
	return m;
}

static hd_policy_t *defaults(void)
{
	hd_policy_t *p = NULL;
	char err[512];
	int rc = hd_policy_load(NULL, &p, err, sizeof(err));
	if (rc != HD_OK)
		fail_msg("built-in policy: %s", err);
	return p;
}

/* Write text to a fresh file in a fresh directory; returns its path. */
static char *write_conf(const char *name, const char *text)
{
	char dir[] = "/tmp/test_hd_policy.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *path = hd_malloc(strlen(dir) + strlen(name) + 2);
	sprintf(path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static int load_text(const char *text, hd_policy_t **p, char *err, size_t errlen)
{
	char *path = write_conf("heraldd.conf", text);
	int rc = hd_policy_load(path, p, err, errlen);
	free(path);
	return rc;
}

/* The finding of rule id, or NULL. */
static const hd_policy_finding_t *finding(const hd_policy_verdict_t *v, const char *rule)
{
	for (size_t i = 0; i < v->count; i++)
		if (strcmp(v->findings[i].rule, rule) == 0)
			return &v->findings[i];
	return NULL;
}

static hd_policy_verdict_t verdict;

static const hd_policy_verdict_t *eval(hd_policy_t *p, const hd_msg_t *m)
{
	assert_int_equal(hd_policy_evaluate(p, m, NOON_UTC, &verdict), HD_OK);
	return &verdict;
}

static void test_clean_email_has_no_findings(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = email("Quarterly planning meeting", "Please join on Monday at 10:00.");
	const hd_policy_verdict_t *v = eval(p, m);
	assert_int_equal(v->count, 0);
	assert_int_equal(v->reject, -1);
	assert_false(v->important);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_G3_1_prohibited_term_rejects_naming_rule_clause_and_field(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = email("Invoices", "We can offer a fake invoice for the trip.");
	const hd_policy_verdict_t *v = eval(p, m);
	assert_true(v->reject >= 0);
	const hd_policy_finding_t *f = &v->findings[v->reject];
	assert_string_equal(f->rule, "prohibited-content");
	assert_string_equal(f->clause, "G3.1");
	assert_int_equal(f->action, HD_POLICY_REJECT);
	assert_int_equal(f->severity, HD_POLICY_MAJOR);
	assert_string_equal(f->field, "msg.body");
	assert_non_null(strstr(f->reason, "\"fake invoice\""));
	assert_non_null(strstr(f->reason, "(POLICY G3.1)"));
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_G3_1_full_width_and_mixed_case_do_not_bypass(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	/* "ＣＯＵＮＴＥＲＦＥＩＴ" in full-width letters, then mixed case. */
	const char *tries[] = {"\xef\xbc\xa3\xef\xbc\xaf\xef\xbc\xb5\xef\xbc\xae\xef\xbc\xb4"
			       "\xef\xbc\xa5\xef\xbc\xb2\xef\xbc\xa6\xef\xbc\xa5\xef\xbc\xa9"
			       "\xef\xbc\xb4 goods",
			       "CounTerFeiT goods", "Fake   Invoice"};
	for (size_t i = 0; i < 3; i++) {
		hd_msg_t *m = email("Goods", tries[i]);
		const hd_policy_verdict_t *v = eval(p, m);
		assert_true(v->reject >= 0);
		assert_string_equal(v->findings[v->reject].rule, "prohibited-content");
		hd_msg_destroy(&m);
	}
	hd_policy_destroy(&p);
}

static void test_G3_1_zero_width_characters_and_accents_do_not_bypass(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	const char *tries[] = {"counter\xe2\x80\x8b" "feit goods",       /* U+200B */
			       "\xe6\xb4\x97\xe2\x80\x8d\xe9\x92\xb1",   /* 洗 U+200D 钱 */
			       "co\xcc\x81unterfeit goods",              /* o + combining acute */
			       "counter\xc2\xad" "feit goods"};          /* soft hyphen */
	for (size_t i = 0; i < 4; i++) {
		hd_msg_t *m = email("Goods", tries[i]);
		const hd_policy_verdict_t *v = eval(p, m);
		assert_true(v->reject >= 0);
		assert_string_equal(v->findings[v->reject].clause, "G3.1");
		hd_msg_destroy(&m);
	}
	hd_policy_destroy(&p);
}

static void test_G3_1_ascii_terms_match_whole_words_only(void **state)
{
	(void)state;
	hd_policy_t *p = NULL;
	char err[512];
	assert_int_equal(load_text("policy = { lists = { prohibited = { terms = [\"ass\", \"赌\"]; }; }; };\n",
				   &p, err, sizeof(err)), HD_OK);
	hd_msg_t *m = email("Classes", "The class assignment is due.");
	assert_int_equal(eval(p, m)->reject, -1);
	hd_msg_destroy(&m);
	m = email("Words", "What an ass.");
	assert_true(eval(p, m)->reject >= 0);
	hd_msg_destroy(&m);
	m = email("Words", "不要赌博");  /* CJK terms match inside words */
	assert_true(eval(p, m)->reject >= 0);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_G3_2_missing_empty_or_meaningless_subject_rejected(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = email(NULL, "Body");
	const hd_policy_verdict_t *v = eval(p, m);
	assert_non_null(finding(v, "subject-required"));
	assert_string_equal(finding(v, "subject-required")->field, "msg.subject");
	hd_msg_destroy(&m);
	const char *meaningless[] = {"Test!!", "  \xe6\xb5\x8b\xe8\xaf\x95 ", "(no subject)", "HI",
				     "\xef\xbd\x94\xef\xbd\x85\xef\xbd\x93\xef\xbd\x94"};  /* ｔｅｓｔ */
	for (size_t i = 0; i < 5; i++) {
		m = email(meaningless[i], "Body");
		v = eval(p, m);
		assert_non_null(finding(v, "subject-meaningless"));
		assert_string_equal(finding(v, "subject-meaningless")->clause, "G3.2");
		assert_true(v->reject >= 0);
		hd_msg_destroy(&m);
	}
	m = email("Test plan for the March release", "Body");
	assert_int_equal(eval(p, m)->count, 0);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_G3_2_empty_body_rejected(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = email("Release notes", " \n\t \xe3\x80\x80");  /* ideographic space */
	const hd_policy_verdict_t *v = eval(p, m);
	assert_non_null(finding(v, "body-required"));
	assert_string_equal(finding(v, "body-required")->field, "msg.body");
	hd_msg_destroy(&m);
	m = email("Release notes", NULL);
	m->html = hd_strdup("<p>See the plan</p>");
	assert_null(finding(eval(p, m), "body-required"));
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_E1_subject_longer_than_limit_rejected(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	char subject[400] = "";
	for (int i = 0; i < 121; i++)
		strcat(subject, "\xe5\xa5\xbd");  /* 121 characters, 363 bytes */
	hd_msg_t *m = email(subject, "Body");
	const hd_policy_finding_t *f = finding(eval(p, m), "subject-length");
	assert_non_null(f);
	assert_string_equal(f->clause, "E1");
	assert_non_null(strstr(f->reason, "121 characters"));
	subject[120 * 3] = '\0';
	free(m->subject);
	m->subject = hd_strdup(subject);
	assert_null(finding(eval(p, m), "subject-length"));
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_E2_needs_reply_without_or_with_past_reply_by_rejected(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = email("Budget sign-off", "Please confirm the budget.");
	m->flags |= HD_FLAG_NEEDS_REPLY;
	const hd_policy_finding_t *f = finding(eval(p, m), "reply-by-required");
	assert_non_null(f);
	assert_string_equal(f->clause, "E2");
	assert_string_equal(f->field, "msg.reply_by");
	m->reply_by = NOON_UTC - 60;
	assert_non_null(strstr(finding(eval(p, m), "reply-by-required")->reason, "past"));
	m->reply_by = NOON_UTC + 86400;
	assert_int_equal(eval(p, m)->count, 0);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_E3_attachment_limits_reject_with_a_share_by_link_hint(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	size_t big = 11u * 1024u * 1024u;
	uint8_t *data = hd_calloc(1, big);
	hd_msg_t *m = email("Design review", "The design is in design.pdf.");
	hd_msg_add_attachment(m, "design.pdf", "application/pdf", data, big);
	const hd_policy_verdict_t *v = eval(p, m);
	const hd_policy_finding_t *f = finding(v, "attachment-size");
	assert_non_null(f);
	assert_string_equal(f->clause, "E3");
	assert_string_equal(f->field, "msg.attachments[0]");
	assert_non_null(strstr(f->reason, "link"));
	assert_non_null(finding(v, "attachments-total-size"));
	hd_msg_destroy(&m);

	/* Each file under the per-file limit, together over the total. */
	m = email("Design review", "Attached: a.pdf and b.pdf.");
	hd_msg_add_attachment(m, "a.pdf", "application/pdf", data, 6u * 1024u * 1024u);
	hd_msg_add_attachment(m, "b.pdf", "application/pdf", data, 6u * 1024u * 1024u);
	v = eval(p, m);
	assert_null(finding(v, "attachment-size"));
	assert_non_null(finding(v, "attachments-total-size"));
	hd_msg_destroy(&m);

	m = email("Photos", "Photos 1 to 11 attached: p.jpg");
	for (int i = 0; i < 11; i++)
		hd_msg_add_attachment(m, "p.jpg", "image/jpeg", data, 10);
	assert_non_null(finding(eval(p, m), "attachment-count"));
	hd_msg_destroy(&m);
	free(data);
	hd_policy_destroy(&p);
}

static void test_E3_body_that_never_names_an_attachment_gets_a_warning(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = email("Contract", "Please review before Friday.");
	hd_msg_add_attachment(m, "contract-v2.pdf", "application/pdf", "x", 1);
	const hd_policy_verdict_t *v = eval(p, m);
	const hd_policy_finding_t *f = finding(v, "attachment-unmentioned");
	assert_non_null(f);
	assert_int_equal(f->action, HD_POLICY_WARN);
	assert_int_equal(v->reject, -1);  /* a warning does not refuse */
	assert_non_null(strstr(f->reason, "contract-v2.pdf"));
	free(m->body);
	m->body = hd_strdup("Please review CONTRACT-V2 before Friday.");  /* the stem, any case */
	assert_null(finding(eval(p, m), "attachment-unmentioned"));
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_E4_cc_needs_a_reason_and_recipients_are_capped(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = email("Offer letter", "Here is the offer.");
	hd_msg_add_cc(m, "hr@example.com");
	const hd_policy_finding_t *f = finding(eval(p, m), "cc-reason");
	assert_non_null(f);
	assert_string_equal(f->clause, "E4");
	assert_string_equal(f->field, "msg.cc_reason");
	m->cc_reason = hd_strdup("  ");
	assert_non_null(finding(eval(p, m), "cc-reason"));
	free(m->cc_reason);
	m->cc_reason = hd_strdup("HR files the signed copy");
	assert_int_equal(eval(p, m)->count, 0);
	for (int i = 0; i < 500; i++)
		hd_msg_add_to(m, "x@example.com");
	assert_non_null(finding(eval(p, m), "max-recipients"));
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_I2_uncivil_im_rejected_but_the_list_applies_to_im_only(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = im("Stop being an IDIOT about the deploy");
	const hd_policy_verdict_t *v = eval(p, m);
	assert_true(v->reject >= 0);
	assert_string_equal(v->findings[v->reject].rule, "civility");
	assert_string_equal(v->findings[v->reject].clause, "I2");
	hd_msg_destroy(&m);
	m = email("Book review", "The Idiot by Dostoevsky is on the shelf.");
	assert_int_equal(eval(p, m)->reject, -1);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_I2_long_im_body_rejected_with_a_document_hint(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	char *body = hd_malloc(2002);
	memset(body, 'a', 2001);
	body[2001] = '\0';
	hd_msg_t *m = im(body);
	const hd_policy_finding_t *f = finding(eval(p, m), "im-body-length");
	assert_non_null(f);
	assert_non_null(strstr(f->reason, "document"));
	body[2000] = '\0';
	free(m->body);
	m->body = hd_strdup(body);
	assert_null(finding(eval(p, m), "im-body-length"));
	free(body);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_S2_sms_longer_than_three_parts_rejected(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	char body[700] = "";
	for (int i = 0; i < 68 * 3 + 1; i++)
		strcat(body, "\xe5\xa5\xbd");  /* 202 UCS-2 characters: 4 parts */
	hd_msg_t *m = sms(body, HD_PURPOSE_SERVICE);
	const hd_policy_finding_t *f = finding(eval(p, m), "sms-length");
	assert_non_null(f);
	assert_string_equal(f->clause, "S2");
	assert_non_null(strstr(f->reason, "4 SMS parts"));
	hd_msg_destroy(&m);
	m = sms("Your parcel arrives today.", HD_PURPOSE_SERVICE);
	assert_int_equal(eval(p, m)->count, 0);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_S2_prohibited_content_applies_to_sms(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = sms("Cheap counterfeit watches", HD_PURPOSE_MARKETING);
	const hd_policy_verdict_t *v = eval(p, m);
	assert_true(v->reject >= 0);
	assert_string_equal(v->findings[v->reject].clause, "G3.1");
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_S3_quiet_hours_defer_non_urgent_sms_to_the_end_of_the_window(void **state)
{
	(void)state;
	hd_policy_t *p = NULL;
	char err[512];
	assert_int_equal(load_text("policy = { rules = ( { id = \"sms-quiet-hours\"; enabled = true; } ); };\n",
				   &p, err, sizeof(err)), HD_OK);
	/* 20:00 in UTC+8: before the 21:00-08:00 window, sent at once. */
	hd_msg_t *m = sms("Your parcel arrives tomorrow.", HD_PURPOSE_SERVICE);
	assert_int_equal(eval(p, m)->not_before_s, 0);
	/* 23:30 local = 15:30 UTC: deferred to 08:00 local = 00:00 UTC next day. */
	assert_int_equal(hd_policy_evaluate(p, m, NOON_UTC + 3 * 3600 + 1800, &verdict), HD_OK);
	assert_int_equal(verdict.not_before_s, NOON_UTC + 12 * 3600);
	const hd_policy_finding_t *f = finding(&verdict, "sms-quiet-hours");
	assert_non_null(f);
	assert_int_equal(f->action, HD_POLICY_DEFER);
	assert_string_equal(f->clause, "S3");
	assert_int_equal(verdict.reject, -1);
	/* 07:59 local = 23:59 UTC: deferred one minute. */
	assert_int_equal(hd_policy_evaluate(p, m, NOON_UTC + 11 * 3600 + 59 * 60, &verdict), HD_OK);
	assert_int_equal(verdict.not_before_s, NOON_UTC + 12 * 3600);
	m->purpose = HD_PURPOSE_URGENT;
	assert_int_equal(hd_policy_evaluate(p, m, NOON_UTC + 3 * 3600 + 1800, &verdict), HD_OK);
	assert_int_equal(verdict.not_before_s, 0);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_A2_1_sensitive_content_marks_important_and_major_content_major(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = email("Salary review", "Numbers attached below.");
	const hd_policy_verdict_t *v = eval(p, m);
	assert_true(v->important);
	assert_false(v->major);
	assert_int_equal(finding(v, "sensitive-content")->action, HD_POLICY_HOLD);
	assert_int_equal(v->reject, -1);
	hd_msg_destroy(&m);
	m = email("\xe8\x91\xa3\xe4\xba\x8b\xe4\xbc\x9a \xe7\xba\xaa\xe8\xa6\x81", "Body");  /* 董事会 纪要 */
	v = eval(p, m);
	assert_true(v->important && v->major);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_database_rules_are_handed_out_per_channel(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	const hd_policy_db_rule_t *const *rules;
	assert_int_equal(hd_policy_db_rules(p, HD_CHANNEL_EMAIL, &rules), 0);
	assert_int_equal(hd_policy_db_rules(p, HD_CHANNEL_IM, &rules), 1);
	assert_string_equal(rules[0]->check, "im_group");
	assert_string_equal(rules[0]->clause, "I3");
	size_t n = hd_policy_db_rules(p, HD_CHANNEL_SMS, &rules);
	assert_int_equal(n, 3);
	assert_string_equal(rules[0]->check, "sms_consent");
	assert_string_equal(rules[1]->check, "sms_cap");
	assert_int_equal(rules[1]->count, 3);
	assert_int_equal(rules[1]->per_s, 3600);
	assert_int_equal(rules[2]->count, 10);
	assert_int_equal(rules[2]->per_s, 86400);
	hd_policy_destroy(&p);
}

static void test_every_problem_is_reported_and_the_first_reject_decides(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = email("test", "counterfeit goods");
	hd_msg_add_cc(m, "carol@example.com");
	const hd_policy_verdict_t *v = eval(p, m);
	assert_non_null(finding(v, "prohibited-content"));
	assert_non_null(finding(v, "subject-meaningless"));
	assert_non_null(finding(v, "cc-reason"));
	assert_string_equal(v->findings[v->reject].rule, "prohibited-content");
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_config_changes_a_built_in_rule_by_id_and_replaces_a_list(void **state)
{
	(void)state;
	hd_policy_t *p = NULL;
	char err[512];
	assert_int_equal(load_text("policy = {\n"
				   "  lists = { sensitive = { terms = [\"project phoenix\"]; }; };\n"
				   "  rules = ( { id = \"subject-length\"; limit = 10; action = \"warn\"; },\n"
				   "            { id = \"no-crypto\"; clause = \"G3.1\"; check = \"terms\";\n"
				   "              list = \"crypto\"; action = \"reject\"; severity = \"minor\"; } );\n"
				   "  lists = { crypto = { terms = [\"bitcoin\"]; }; };\n"
				   "};\n", &p, err, sizeof(err)), HD_E_CONFIG);
	/* libconfig refuses the duplicate "lists" setting, with its line. */
	assert_non_null(strstr(err, ":6:"));
	assert_int_equal(load_text("policy = {\n"
				   "  lists = { sensitive = { terms = [\"project phoenix\"]; };\n"
				   "            crypto = { terms = [\"bitcoin\"]; }; };\n"
				   "  rules = ( { id = \"subject-length\"; limit = 10; action = \"warn\"; },\n"
				   "            { id = \"no-crypto\"; clause = \"G3.1\"; check = \"terms\";\n"
				   "              list = \"crypto\"; action = \"reject\"; severity = \"minor\"; } );\n"
				   "};\n", &p, err, sizeof(err)), HD_OK);
	hd_msg_t *m = email("A long subject line", "About Project  PHOENIX and salary");
	const hd_policy_verdict_t *v = eval(p, m);
	assert_int_equal(finding(v, "subject-length")->action, HD_POLICY_WARN);
	assert_int_equal(v->reject, -1);
	assert_true(v->important);  /* the new list */
	assert_non_null(strstr(finding(v, "sensitive-content")->reason, "project phoenix"));
	free(m->body);
	m->body = hd_strdup("Pay in BitCoin");
	v = eval(p, m);
	assert_false(v->important);  /* "salary" is no longer in the replaced list */
	assert_string_equal(v->findings[v->reject].rule, "no-crypto");
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_config_errors_name_file_line_and_the_problem(void **state)
{
	(void)state;
	hd_policy_t *p = NULL;
	char err[512];
	struct {
		const char *text;
		const char *expect;
	} cases[] = {
		{"policy = {\n rules = ( { id = \"x\"; clause = \"G1\"; check = \"terms\"; colour = 1; } );\n};\n",
		 ":2: policy.rules[0].colour: unknown setting"},
		{"policy = {\n rules = ( { id = \"x\"; check = \"spelling\"; } );\n};\n",
		 ":2: policy.rules[0].check: unknown check \"spelling\""},
		{"policy = {\n\n rules = ( { id = \"x\"; clause = \"S3\"; check = \"sms_cap\"; count = 1;\n"
		 "  per_s = 60; action = \"reject\"; severity = \"info\"; } );\n};\n",
		 ":3: policy.rules[0] (id \"x\"): this check cannot take that action"},
		{"policy = { rules = ( { id = \"x\"; clause = \"A2.1\"; check = \"terms\"; list = \"sensitive\";\n"
		 " action = \"hold\"; severity = \"info\"; } ); };\n",
		 "a hold rule needs marks"},
		{"policy = { rules = ( { id = \"x\"; clause = \"G3.1\"; check = \"terms\"; list = \"nope\";\n"
		 " action = \"reject\"; severity = \"info\"; } ); };\n",
		 "no list named \"nope\""},
		{"policy = { rules = ( { id = \"civility\"; channels = [\"fax\"]; } ); };\n",
		 ":1: policy.rules[0].channels: unknown channel \"fax\""},
		{"policy = { rules = ( { id = \"x\"; clause = \"G1\"; } ); };\n",
		 "(id \"x\"): missing check"},
		{"policy = { colour = 1; };\n", ":1: policy.colour: unknown setting"},
		{"policy = { lists = { a = { terms = [1]; }; }; };\n",
		 ":1: policy.lists.a.terms[0]: expected a string"},
		{"policy = { rules = ( { id = \"sms-quiet-hours\"; start = \"25:00\"; } ); };\n",
		 "policy.rules[0].start: expected \"HH:MM\""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(load_text(cases[i].text, &p, err, sizeof(err)), HD_E_CONFIG);
		assert_null(p);
		if (!strstr(err, cases[i].expect) || !strstr(err, "heraldd.conf:"))
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, cases[i].expect);
	}
}

static void test_list_files_load_beside_the_config_with_line_numbered_errors(void **state)
{
	(void)state;
	char *conf = write_conf("heraldd.conf",
				"policy = { lists = { prohibited = { files = [\"banned.txt\"]; }; }; };\n");
	char *dir = hd_strdup(conf);
	*strrchr(dir, '/') = '\0';
	char list[512];
	snprintf(list, sizeof(list), "%s/banned.txt", dir);
	FILE *f = fopen(list, "w");
	assert_non_null(f);
	fputs("# one term per line\n\nsnake oil\n  \xe5\x81\x87\xe8\x8d\xaf\n", f);  /* 假药 */
	fclose(f);
	hd_policy_t *p = NULL;
	char err[512];
	assert_int_equal(hd_policy_load(conf, &p, err, sizeof(err)), HD_OK);
	hd_msg_t *m = email("Offer", "Genuine SNAKE OIL for sale");
	assert_true(eval(p, m)->reject >= 0);
	free(m->body);
	m->body = hd_strdup("\xe5\x81\x87\xe8\x8d\xaf");
	assert_true(eval(p, m)->reject >= 0);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);

	f = fopen(list, "a");
	fputs("bad \xff byte\n", f);
	fclose(f);
	assert_int_equal(hd_policy_load(conf, &p, err, sizeof(err)), HD_E_CONFIG);
	assert_non_null(strstr(err, "banned.txt line 5: a term is not valid UTF-8"));
	unlink(list);
	assert_int_equal(hd_policy_load(conf, &p, err, sizeof(err)), HD_E_CONFIG);
	assert_non_null(strstr(err, "banned.txt: No such file"));
	free(dir);
	free(conf);
}

static void test_ten_thousand_term_lists_compile_and_match(void **state)
{
	(void)state;
	/* 5,000 English and 5,000 Chinese terms in a list file. */
	char *conf = write_conf("heraldd.conf",
				"policy = { lists = { prohibited = { files = [\"big.txt\"]; }; }; };\n");
	char *dir = hd_strdup(conf);
	*strrchr(dir, '/') = '\0';
	char list[512];
	snprintf(list, sizeof(list), "%s/big.txt", dir);
	FILE *f = fopen(list, "w");
	for (int i = 0; i < 5000; i++) {
		fprintf(f, "forbiddenword%d\n", i);
		/* Two CJK ideographs from the index. */
		unsigned a = 0x4e00u + (unsigned)i % 20000u, b = 0x4e00u + (unsigned)(i * 7) % 20000u;
		fprintf(f, "%c%c%c%c%c%c\n", 0xe0 | (a >> 12), 0x80 | ((a >> 6) & 0x3f),
			0x80 | (a & 0x3f), 0xe0 | (b >> 12), 0x80 | ((b >> 6) & 0x3f), 0x80 | (b & 0x3f));
	}
	fclose(f);
	hd_policy_t *p = NULL;
	char err[512];
	assert_int_equal(hd_policy_load(conf, &p, err, sizeof(err)), HD_OK);
	assert_true(hd_policy_term_count(p) >= 10000);
	hd_msg_t *m = email("Notes", "nothing to see here: forbiddenwordzero is not a term");
	assert_int_equal(eval(p, m)->reject, -1);
	free(m->body);
	m->body = hd_strdup("but ForbiddenWord4999 is");
	assert_true(eval(p, m)->reject >= 0);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
	unlink(list);
	free(dir);
	free(conf);
}

static void test_disabled_policy_finds_nothing(void **state)
{
	(void)state;
	hd_policy_t *p = NULL;
	char err[512];
	assert_int_equal(load_text("policy = { enabled = false; };\n", &p, err, sizeof(err)), HD_OK);
	assert_false(hd_policy_is_enabled(p));
	hd_msg_t *m = email("test", "counterfeit");
	assert_int_equal(eval(p, m)->count, 0);
	const hd_policy_db_rule_t *const *rules;
	assert_int_equal(hd_policy_db_rules(p, HD_CHANNEL_SMS, &rules), 0);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_example_config_loads_and_equals_the_built_in_policy(void **state)
{
	(void)state;
	hd_policy_t *p = NULL;
	char err[512];
	int rc = hd_policy_load(HERALD_SOURCE_DIR "/deploy/heraldd.conf", &p, err, sizeof(err));
	if (rc != HD_OK)
		fail_msg("deploy/heraldd.conf: %s", err);
	hd_policy_t *d = defaults();
	char *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	FILE *fa = open_memstream(&a, &alen), *fb = open_memstream(&b, &blen);
	hd_policy_print(p, fa);
	hd_policy_print(d, fb);
	fclose(fa);
	fclose(fb);
	assert_true(alen > 1000);
	assert_string_equal(a, b);
	free(a);
	free(b);
	hd_policy_destroy(&p);
	hd_policy_destroy(&d);
}

static void test_a_full_verdict_never_loses_a_refusal(void **state)
{
	(void)state;
	hd_policy_verdict_t *v = hd_calloc(1, sizeof(*v));
	hd_policy_verdict_reset(v);
	for (unsigned i = 0; i < HD_POLICY_MAX_FINDINGS; i++)
		assert_non_null(hd_policy_verdict_add(v, "r", "G1", HD_POLICY_WARN, HD_POLICY_INFO, "msg"));
	assert_null(hd_policy_verdict_add(v, "w", "G1", HD_POLICY_WARN, HD_POLICY_INFO, "msg"));
	hd_policy_finding_t *f = hd_policy_verdict_add(v, "x", "G3.1", HD_POLICY_REJECT,
						       HD_POLICY_MAJOR, "msg.body");
	assert_non_null(f);  /* took the last place */
	assert_int_equal(v->count, HD_POLICY_MAX_FINDINGS);
	assert_int_equal(v->reject, (int)HD_POLICY_MAX_FINDINGS - 1);
	assert_string_equal(v->findings[v->reject].rule, "x");
	assert_int_equal(v->dropped, 2);
	free(v);
}

static void test_G3_1_every_rule_can_fire_and_the_refusal_still_decides(void **state)
{
	(void)state;
	/* 100 warn rules on the same word, then the built-in reject. */
	char *text = hd_malloc(100 * 160 + 256);
	strcpy(text, "policy = { lists = { w = { terms = [\"goods\"]; }; }; rules = (\n");
	for (int i = 0; i < 100; i++)
		sprintf(text + strlen(text), "{ id = \"w%d\"; clause = \"G3.1\"; check = \"terms\"; "
			"list = \"w\"; action = \"warn\"; severity = \"info\"; },\n", i);
	strcat(text, "{ id = \"last\"; clause = \"G3.1\"; check = \"terms\"; list = \"w\"; "
		     "action = \"warn\"; severity = \"info\"; } ); };\n");
	hd_policy_t *p = NULL;
	char err[512];
	assert_int_equal(load_text(text, &p, err, sizeof(err)), HD_OK);
	hd_msg_t *m = email("Goods", "counterfeit goods");
	const hd_policy_verdict_t *v = eval(p, m);
	assert_true(v->reject >= 0);
	assert_string_equal(v->findings[v->reject].rule, "prohibited-content");
	assert_int_equal(v->dropped, 0);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
	free(text);
}

static void test_G3_1_html_entities_and_tags_do_not_bypass(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	const char *tries[] = {"<p>We sell c&#111;unterfeit watches</p>",
			       "<p>We sell counter<b></b>feit watches</p>",
			       "<p>fake&nbsp;invoice</p>",
			       "<p>c&#x6F;unterfeit</p>",
			       "<div>counterfeit2024 and counterfeit_goods</div>"};
	for (size_t i = 0; i < 5; i++) {
		hd_msg_t *m = email("Offer", NULL);
		m->html = hd_strdup(tries[i]);
		const hd_policy_verdict_t *v = eval(p, m);
		if (v->reject < 0)
			fail_msg("not refused: %s", tries[i]);
		assert_string_equal(v->findings[v->reject].field, "msg.html");
		hd_msg_destroy(&m);
	}
	/* Block tags separate words; comments and scripts are not text. */
	hd_msg_t *m = email("Offer", NULL);
	m->html = hd_strdup("<p>counter</p><p>feit</p><!-- counterfeit --><script>counterfeit</script>ok");
	assert_int_equal(eval(p, m)->reject, -1);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

static void test_E4_and_G3_2_blank_looking_values_count_as_missing(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	const char *blanks[] = {"\n", "\xe3\x80\x80", "\xe2\x80\x8b"};  /* LF, U+3000, U+200B */
	for (size_t i = 0; i < 3; i++) {
		hd_msg_t *m = email("Offer letter", "Here it is.");
		hd_msg_add_cc(m, "hr@example.com");
		m->cc_reason = hd_strdup(blanks[i]);
		assert_non_null(finding(eval(p, m), "cc-reason"));
		hd_msg_destroy(&m);
	}
	const char *subjects[] = {"...", "!!!", "\xe2\x80\x94"};  /* em dash */
	for (size_t i = 0; i < 3; i++) {
		hd_msg_t *m = email(subjects[i], "Body");
		assert_non_null(finding(eval(p, m), "subject-required"));
		hd_msg_destroy(&m);
	}
	hd_policy_destroy(&p);
}

static void test_E3_long_reasons_keep_whole_characters_and_the_clause(void **state)
{
	(void)state;
	hd_policy_t *p = defaults();
	hd_msg_t *m = email("Sales data", "Please review.");
	for (int i = 0; i < 4; i++)
		hd_msg_add_attachment(m, "\xe7\xac\xac\xe4\xb8\x89\xe5\xad\xa3\xe5\xba\xa6"
				      "\xe9\x94\x80\xe5\x94\xae\xe6\x95\xb0\xe6\x8d\xae"
				      "\xe6\xb1\x87\xe6\x80\xbb\xe8\xa1\xa8\xe6\xa0\xbc"
				      "\xe6\x9c\x80\xe7\xbb\x88\xe7\x89\x88.xlsx",
				      "application/vnd.ms-excel", "x", 1);
	const hd_policy_finding_t *f = finding(eval(p, m), "attachment-unmentioned");
	assert_non_null(f);
	size_t len = strlen(f->reason);
	assert_true(hd_msg_is_utf8(f->reason, len));
	assert_true(len > 12 && strcmp(f->reason + len - 12, " (POLICY E3)") == 0);
	hd_msg_destroy(&m);
	hd_policy_destroy(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_email_has_no_findings),
		cmocka_unit_test(test_G3_1_prohibited_term_rejects_naming_rule_clause_and_field),
		cmocka_unit_test(test_G3_1_full_width_and_mixed_case_do_not_bypass),
		cmocka_unit_test(test_G3_1_zero_width_characters_and_accents_do_not_bypass),
		cmocka_unit_test(test_G3_1_ascii_terms_match_whole_words_only),
		cmocka_unit_test(test_G3_2_missing_empty_or_meaningless_subject_rejected),
		cmocka_unit_test(test_G3_2_empty_body_rejected),
		cmocka_unit_test(test_E1_subject_longer_than_limit_rejected),
		cmocka_unit_test(test_E2_needs_reply_without_or_with_past_reply_by_rejected),
		cmocka_unit_test(test_E3_attachment_limits_reject_with_a_share_by_link_hint),
		cmocka_unit_test(test_E3_body_that_never_names_an_attachment_gets_a_warning),
		cmocka_unit_test(test_E4_cc_needs_a_reason_and_recipients_are_capped),
		cmocka_unit_test(test_I2_uncivil_im_rejected_but_the_list_applies_to_im_only),
		cmocka_unit_test(test_I2_long_im_body_rejected_with_a_document_hint),
		cmocka_unit_test(test_S2_sms_longer_than_three_parts_rejected),
		cmocka_unit_test(test_S2_prohibited_content_applies_to_sms),
		cmocka_unit_test(test_S3_quiet_hours_defer_non_urgent_sms_to_the_end_of_the_window),
		cmocka_unit_test(test_A2_1_sensitive_content_marks_important_and_major_content_major),
		cmocka_unit_test(test_database_rules_are_handed_out_per_channel),
		cmocka_unit_test(test_every_problem_is_reported_and_the_first_reject_decides),
		cmocka_unit_test(test_config_changes_a_built_in_rule_by_id_and_replaces_a_list),
		cmocka_unit_test(test_config_errors_name_file_line_and_the_problem),
		cmocka_unit_test(test_list_files_load_beside_the_config_with_line_numbered_errors),
		cmocka_unit_test(test_ten_thousand_term_lists_compile_and_match),
		cmocka_unit_test(test_disabled_policy_finds_nothing),
		cmocka_unit_test(test_example_config_loads_and_equals_the_built_in_policy),
		cmocka_unit_test(test_a_full_verdict_never_loses_a_refusal),
		cmocka_unit_test(test_G3_1_every_rule_can_fire_and_the_refusal_still_decides),
		cmocka_unit_test(test_G3_1_html_entities_and_tags_do_not_bypass),
		cmocka_unit_test(test_E4_and_G3_2_blank_looking_values_count_as_missing),
		cmocka_unit_test(test_E3_long_reasons_keep_whole_characters_and_the_clause),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
