/*
 * NAME
 *	test_hc_org - reading organisation files (CSV and YAML)
 * DESCRIPTION
 *	Good files in both formats give the same document herald.org_import()
 *	expects; every mistake an administrator can make is reported with the
 *	file name and the line it is on, and nothing is returned.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "hc_org.h"
#include "hd_err.h"

static const char *const good_csv =
	"# comment\n"
	"kind,name,address,department,roles,db_role,notify_channel,notify_address,head\n"
	"department,Sales,,,,,,,carol@example.com\n"
	"\n"
	"department,Board,,,,,,,\n"
	"staff,Carol Chen,carol@example.com,Sales,employee;dept_head,carol,im,sales-approvals,\n"
	"staff,\"Lee, Ann\",ann@example.com,Sales,,,,,\n"
	"staff,王芳,wang@example.com,Board,employee|senior,wang,,,\r\n";

static const char *const good_yaml =
	"departments:\n"
	"  - {name: Sales, head: carol@example.com}\n"
	"  - name: Board\n"
	"    head: ~\n"
	"staff:\n"
	"  - address: carol@example.com\n"
	"    name: Carol Chen\n"
	"    department: Sales\n"
	"    roles: [employee, dept_head]\n"
	"    db_role: carol\n"
	"    notify: {channel: im, address: sales-approvals}\n"
	"  - {address: ann@example.com, name: \"Lee, Ann\", department: Sales}\n"
	"  - address: wang@example.com\n"
	"    name: 王芳\n"
	"    department: Board\n"
	"    roles: [employee, senior]\n"
	"    db_role: wang\n";

static json_t *parse_ok(hc_org_format_t fmt, const char *text)
{
	json_t *doc = NULL;
	char err[512] = "";
	int rc = hc_org_parse(fmt, "org", text, strlen(text), &doc, err, sizeof(err));
	if (rc != 0)
		fail_msg("parse failed: %s", err);
	assert_non_null(doc);
	return doc;
}

/* Parse text expecting a failure whose message is exactly want. */
static void parse_fails(hc_org_format_t fmt, const char *text, const char *want)
{
	json_t *doc = (json_t *)1;
	char err[512] = "";
	int rc = hc_org_parse(fmt, "org", text, strlen(text), &doc, err, sizeof(err));
	assert_int_not_equal(rc, 0);
	assert_null(doc);
	assert_string_equal(err, want);
}

static void test_a_good_csv_file_gives_departments_and_staff_with_roles_and_nulls(void **state)
{
	(void)state;
	json_t *doc = parse_ok(HC_ORG_CSV, good_csv);
	char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(
		s, "{\"departments\":[{\"head\":\"carol@example.com\",\"name\":\"Sales\"},"
		   "{\"head\":null,\"name\":\"Board\"}],"
		   "\"staff\":[{\"address\":\"carol@example.com\",\"db_role\":\"carol\","
		   "\"department\":\"Sales\",\"name\":\"Carol Chen\",\"notify_address\":"
		   "\"sales-approvals\",\"notify_channel\":\"im\",\"roles\":[\"employee\",\"dept_head\"]},"
		   "{\"address\":\"ann@example.com\",\"db_role\":null,\"department\":\"Sales\","
		   "\"name\":\"Lee, Ann\",\"notify_address\":null,\"notify_channel\":null,"
		   "\"roles\":[\"employee\"]},"
		   "{\"address\":\"wang@example.com\",\"db_role\":\"wang\",\"department\":\"Board\","
		   "\"name\":\"王芳\",\"notify_address\":null,\"notify_channel\":null,"
		   "\"roles\":[\"employee\",\"senior\"]}]}");
	free(s);
	json_decref(doc);
}

static void test_the_same_organisation_in_yaml_gives_the_same_document(void **state)
{
	(void)state;
	json_t *a = parse_ok(HC_ORG_CSV, good_csv);
	json_t *b = parse_ok(HC_ORG_YAML, good_yaml);
	assert_true(json_equal(a, b));
	json_decref(a);
	json_decref(b);
}

static void test_csv_columns_may_come_in_any_order_and_be_left_out(void **state)
{
	(void)state;
	json_t *doc = parse_ok(HC_ORG_CSV, "address, kind ,department,name,head\n"
	                                   "x@example.com,staff,D,X,\n"
	                                   ",department,,D,\n"
	                                   "y@example.com,staff,D,\"Y \"\"the\"\" one\",\n");
	json_t *staff = json_object_get(doc, "staff");
	assert_int_equal(json_array_size(staff), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(staff, 1), "name")),
	                    "Y \"the\" one");
	json_decref(doc);
}

static void test_csv_mistakes_name_the_file_and_line(void **state)
{
	(void)state;
	static const char *const head =
		"kind,name,address,department,roles,db_role,notify_channel,notify_address,head\n"
		"department,Sales,,,,,,,\n";
	char text[1024];
	snprintf(text, sizeof(text), "%sstaff,A,a@example.com,Sales,employee;boss,,,,\n", head);
	parse_fails(HC_ORG_CSV, text,
	            "org:3: unknown role 'boss' (roles are employee, dept_head, senior, supervisor, "
	            "operator)");
	snprintf(text, sizeof(text), "%s\n# c\nstaff,A,a@example.com,Sales,,,\n", head);
	parse_fails(HC_ORG_CSV, text, "org:5: 7 fields, the header has 9");
	snprintf(text, sizeof(text), "%sstaff,A,a@example.com,Marketing,,,,,\n", head);
	parse_fails(HC_ORG_CSV, text,
	            "org:3: department 'Marketing' of a@example.com is not in the departments list");
	snprintf(text, sizeof(text), "%sstaff,A,a@example.com,Sales,,,,,\nstaff,B,A@example.com,Sales,,,,,\n",
	         head);
	parse_fails(HC_ORG_CSV, text, "org:4: A@example.com is already listed on line 3");
	snprintf(text, sizeof(text), "%sstaff,A,a@example.com,Sales,,,sms,,\n", head);
	parse_fails(HC_ORG_CSV, text, "org:3: notify channel must be email or im, not 'sms'");
	snprintf(text, sizeof(text), "%sstaff,\"A\nB,a@example.com,Sales,,,,,\n", head);
	parse_fails(HC_ORG_CSV, text, "org:3: a quoted field is not closed");
	snprintf(text, sizeof(text), "%sdepartment,Board,,,,,,,nobody@example.com\n", head);
	parse_fails(HC_ORG_CSV, text, "org:3: head nobody@example.com of Board is not in the staff list");
	snprintf(text, sizeof(text), "%sperson,A,a@example.com,Sales,,,,,\n", head);
	parse_fails(HC_ORG_CSV, text, "org:3: kind must be department or staff, not 'person'");
	parse_fails(HC_ORG_CSV, "kind,name,mail\n", "org:1: unknown column 'mail' (columns are kind, "
	            "name, address, department, roles, db_role, notify_channel, notify_address, head)");
	parse_fails(HC_ORG_CSV, "# only a comment\n",
	            "org: empty file: the first line must name the columns (kind,...)");
	/* A line break inside quotes counts for what follows; a record's errors name its first line. */
	snprintf(text, sizeof(text), "%sstaff,\"A\nB\",a@example.com,Sales,x,,,,\n", head);
	parse_fails(HC_ORG_CSV, text, "org:3: unknown role 'x' (roles are employee, dept_head, senior, "
	            "supervisor, operator)");
	snprintf(text, sizeof(text), "%sstaff,\"A\nB\",a@example.com,Sales,,,,,\nstaff,C,c,Sales,,,,,\n",
	         head);
	parse_fails(HC_ORG_CSV, text, "org:5: 'c' is not an email address");
}

static void test_yaml_mistakes_name_the_file_and_line(void **state)
{
	(void)state;
	parse_fails(HC_ORG_YAML,
	            "departments:\n  - name: Sales\nstaff:\n  - address: a@example.com\n"
	            "    departmnt: Sales\n",
	            "org:5: unknown key 'departmnt' in a staff entry (keys are address, name, "
	            "department, roles, db_role, notify)");
	parse_fails(HC_ORG_YAML, "departments:\n  - name: [Sales\nstaff: []\n",
	            "org:3: YAML: did not find expected ',' or ']' while parsing a flow sequence");
	parse_fails(HC_ORG_YAML,
	            "departments:\n  - name: Sales\nstaff:\n  - address: a@example.com\n"
	            "    department: Sales\n    roles: [employee, chief]\n",
	            "org:6: unknown role 'chief' (roles are employee, dept_head, senior, supervisor, "
	            "operator)");
	parse_fails(HC_ORG_YAML, "departments: Sales\n",
	            "org:1: departments must be a list, not a scalar");
	parse_fails(HC_ORG_YAML,
	            "departments:\n  - name: Sales\nstaff:\n  - name: Nobody\n    department: Sales\n",
	            "org:4: a staff entry needs an address");
	parse_fails(HC_ORG_YAML, "", "org: empty file: expected departments: and staff:");
}

static void test_the_format_comes_from_the_option_or_the_extension(void **state)
{
	(void)state;
	hc_org_format_t f;
	char err[256];
	assert_int_equal(hc_org_format_of("x.CSV", NULL, &f, err, sizeof(err)), 0);
	assert_int_equal(f, HC_ORG_CSV);
	assert_int_equal(hc_org_format_of("x.yml", NULL, &f, err, sizeof(err)), 0);
	assert_int_equal(f, HC_ORG_YAML);
	assert_int_equal(hc_org_format_of("x.txt", "yaml", &f, err, sizeof(err)), 0);
	assert_int_equal(f, HC_ORG_YAML);
	assert_int_equal(hc_org_format_of("x.txt", NULL, &f, err, sizeof(err)), HD_E_INVALID);
	assert_non_null(strstr(err, "--format csv|yaml"));
	assert_int_equal(hc_org_format_of("x.csv", "xml", &f, err, sizeof(err)), HD_E_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_good_csv_file_gives_departments_and_staff_with_roles_and_nulls),
		cmocka_unit_test(test_the_same_organisation_in_yaml_gives_the_same_document),
		cmocka_unit_test(test_csv_columns_may_come_in_any_order_and_be_left_out),
		cmocka_unit_test(test_csv_mistakes_name_the_file_and_line),
		cmocka_unit_test(test_yaml_mistakes_name_the_file_and_line),
		cmocka_unit_test(test_the_format_comes_from_the_option_or_the_extension),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
