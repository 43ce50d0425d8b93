/*
 * NAME
 *	hc_org - the organisation: "heraldctl org import" and "org show"
 * DESCRIPTION
 *	See hc_org.h. Both parsers fill one list of departments and one of
 *	staff, each entry remembering its line; one checker then applies
 *	the same rules to both formats, so a CSV and a YAML file describing
 *	the same organisation give the same document.
 */
#include "hc_org.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "hc_approve.h"
#include "hc_csv.h"
#include "hc_table.h"
#include "hd_err.h"
#include "hd_mem.h"

#define HC_ORG_MAX_ROLES 8
#define HC_ORG_MAX_CSV_FIELDS 32

static const char *const hc_org_roles[] = {"employee", "dept_head", "senior", "supervisor",
                                           "operator"};
#define HC_ORG_NROLES (sizeof(hc_org_roles) / sizeof(hc_org_roles[0]))

/* What the parsers collect: the document being built plus the line of each entry. */
typedef struct hc_org_build {
	const char *name;     /* file name for messages; borrowed */
	json_t *depts;        /* array of {name, head} */
	json_t *staff;        /* array of {address, name, department, roles, ...} */
	int *dept_lines;
	int *staff_lines;
	size_t cap_dept, cap_staff;
	char *err;
	size_t errlen;
} hc_org_build_t;

/* "name:LINE: message" into b->err; returns HD_E_INVALID. */
static int hc_org_fail(hc_org_build_t *b, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int hc_org_fail(hc_org_build_t *b, int line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(b->err, b->errlen, "%s:%d: %s", b->name, line, msg);
	else
		snprintf(b->err, b->errlen, "%s: %s", b->name, msg);
	return HD_E_INVALID;
}

static size_t hc_org_count(const hc_org_build_t *b)
{
	return json_array_size(b->depts) + json_array_size(b->staff);
}

static int hc_org_add(hc_org_build_t *b, bool dept, json_t *obj, int line)
{
	if (hc_org_count(b) >= HC_ORG_MAX_ENTRIES) {
		json_decref(obj);
		hc_org_fail(b, line, "more than %d departments and staff", HC_ORG_MAX_ENTRIES);
		return HD_E_TOOBIG;
	}
	json_t *arr = dept ? b->depts : b->staff;
	int **lines = dept ? &b->dept_lines : &b->staff_lines;
	size_t *cap = dept ? &b->cap_dept : &b->cap_staff;
	size_t n = json_array_size(arr);
	if (n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*lines = hd_realloc(*lines, *cap * sizeof(int));
	}
	(*lines)[n] = line;
	json_array_append_new(arr, obj);
	return 0;
}

static json_t *hc_org_str_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static bool hc_org_is_role(const char *r)
{
	for (size_t i = 0; i < HC_ORG_NROLES; i++)
		if (strcmp(hc_org_roles[i], r) == 0)
			return true;
	return false;
}

/* Append role to roles (a JSON array) after checking it; duplicates are kept once. */
static int hc_org_add_role(hc_org_build_t *b, json_t *roles, const char *role, int line)
{
	if (!hc_org_is_role(role))
		return hc_org_fail(b, line,
		                   "unknown role '%.64s' (roles are employee, dept_head, senior, "
		                   "supervisor, operator)",
		                   role);
	size_t i;
	json_t *v;
	json_array_foreach(roles, i, v)
		if (strcmp(json_string_value(v), role) == 0)
			return 0;
	if (json_array_size(roles) >= HC_ORG_MAX_ROLES)
		return hc_org_fail(b, line, "too many roles");
	json_array_append_new(roles, json_string(role));
	return 0;
}

/* Check the whole organisation once it is read: the rules of hc_org.h. */
static int hc_org_check(hc_org_build_t *b)
{
	size_t nd = json_array_size(b->depts), ns = json_array_size(b->staff);
	if (nd == 0 && ns == 0)
		return hc_org_fail(b, 0, "no departments and no staff: nothing to import");
	for (size_t i = 0; i < nd; i++) {
		const char *name = json_string_value(json_object_get(json_array_get(b->depts, i), "name"));
		for (size_t j = 0; j < i; j++)
			if (strcmp(name, json_string_value(json_object_get(json_array_get(b->depts, j),
			                                                   "name"))) == 0)
				return hc_org_fail(b, b->dept_lines[i],
				                   "department '%.128s' is already defined on line %d", name,
				                   b->dept_lines[j]);
	}
	for (size_t i = 0; i < ns; i++) {
		json_t *s = json_array_get(b->staff, i);
		const char *addr = json_string_value(json_object_get(s, "address"));
		const char *dept = json_string_value(json_object_get(s, "department"));
		const char *role = json_string_value(json_object_get(s, "db_role"));
		bool known = false;
		for (size_t j = 0; j < nd && !known; j++)
			known = strcmp(dept, json_string_value(json_object_get(json_array_get(b->depts, j),
			                                                       "name"))) == 0;
		if (!known)
			return hc_org_fail(b, b->staff_lines[i],
			                   "department '%.128s' of %.128s is not in the departments list",
			                   dept, addr);
		for (size_t j = 0; j < i; j++) {
			json_t *o = json_array_get(b->staff, j);
			if (strcasecmp(addr, json_string_value(json_object_get(o, "address"))) == 0)
				return hc_org_fail(b, b->staff_lines[i],
				                   "%.128s is already listed on line %d", addr,
				                   b->staff_lines[j]);
			const char *orole = json_string_value(json_object_get(o, "db_role"));
			if (role != NULL && orole != NULL && strcmp(role, orole) == 0)
				return hc_org_fail(b, b->staff_lines[i],
				                   "database role '%.64s' is already used on line %d", role,
				                   b->staff_lines[j]);
		}
	}
	for (size_t i = 0; i < nd; i++) {
		json_t *d = json_array_get(b->depts, i);
		const char *head = json_string_value(json_object_get(d, "head"));
		if (head == NULL)
			continue;
		bool found = false;
		for (size_t j = 0; j < ns && !found; j++)
			found = strcasecmp(head, json_string_value(json_object_get(
			                             json_array_get(b->staff, j), "address"))) == 0;
		if (!found)
			return hc_org_fail(b, b->dept_lines[i],
			                   "head %.128s of %.128s is not in the staff list", head,
			                   json_string_value(json_object_get(d, "name")));
	}
	return 0;
}

/* The fields of one person, as both parsers hand them over (NULL = absent). */
typedef struct hc_org_person {
	const char *address, *name, *department, *db_role, *notify_channel, *notify_address;
} hc_org_person_t;

/* Check one person's scalar fields and add them with roles (taken over). */
static int hc_org_add_person(hc_org_build_t *b, const hc_org_person_t *p, json_t *roles, int line)
{
	int rc = HD_E_INVALID;
	if (p->address == NULL || p->address[0] == '\0') {
		hc_org_fail(b, line, "a staff entry needs an address");
		goto fail;
	}
	const char *at = strchr(p->address, '@');
	if (at == NULL || at == p->address || at[1] == '\0' || strchr(p->address, ' ') != NULL) {
		hc_org_fail(b, line, "'%.128s' is not an email address", p->address);
		goto fail;
	}
	if (p->department == NULL || p->department[0] == '\0') {
		hc_org_fail(b, line, "%.128s needs a department", p->address);
		goto fail;
	}
	if (p->notify_channel != NULL && p->notify_channel[0] != '\0' &&
	    strcmp(p->notify_channel, "email") != 0 && strcmp(p->notify_channel, "im") != 0) {
		hc_org_fail(b, line, "notify channel must be email or im, not '%.32s'",
		            p->notify_channel);
		goto fail;
	}
	if (json_array_size(roles) == 0)
		json_array_append_new(roles, json_string("employee"));
	json_t *o = json_object();
	json_object_set_new(o, "address", json_string(p->address));
	json_object_set_new(o, "name", hc_org_str_or_null(p->name));
	json_object_set_new(o, "department", json_string(p->department));
	json_object_set_new(o, "roles", roles);
	json_object_set_new(o, "db_role", hc_org_str_or_null(p->db_role));
	json_object_set_new(o, "notify_channel", hc_org_str_or_null(p->notify_channel));
	json_object_set_new(o, "notify_address", hc_org_str_or_null(p->notify_address));
	return hc_org_add(b, false, o, line);
fail:
	json_decref(roles);
	return rc;
}

static int hc_org_add_department(hc_org_build_t *b, const char *name, const char *head, int line)
{
	if (name == NULL || name[0] == '\0')
		return hc_org_fail(b, line, "a department needs a name");
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(name));
	json_object_set_new(o, "head", hc_org_str_or_null(head));
	return hc_org_add(b, true, o, line);
}

/* ------------------------------------------------------------------ */
/* CSV                                                                 */
/* ------------------------------------------------------------------ */

enum {
	HC_COL_KIND,
	HC_COL_NAME,
	HC_COL_ADDRESS,
	HC_COL_DEPARTMENT,
	HC_COL_ROLES,
	HC_COL_DB_ROLE,
	HC_COL_NOTIFY_CHANNEL,
	HC_COL_NOTIFY_ADDRESS,
	HC_COL_HEAD,
	HC_NCOLS
};

static const char *const hc_org_columns[HC_NCOLS] = {
	"kind", "name", "address", "department", "roles", "db_role", "notify_channel",
	"notify_address", "head"};

/* Split a roles cell on ';', '|', ',' or blanks into roles. */
static int hc_org_csv_roles(hc_org_build_t *b, const char *cell, json_t *roles, int line)
{
	char word[64];
	const char *p = cell;
	while (*p != '\0') {
		size_t skip = strspn(p, ";|, \t");
		p += skip;
		size_t len = strcspn(p, ";|, \t");
		if (len == 0)
			break;
		if (len >= sizeof(word))
			return hc_org_fail(b, line, "unknown role '%.*s'", (int)len, p);
		memcpy(word, p, len);
		word[len] = '\0';
		int rc = hc_org_add_role(b, roles, word, line);
		if (rc != 0)
			return rc;
		p += len;
	}
	return 0;
}

static int hc_org_csv_row(hc_org_build_t *b, const int *col_of, const char *const *f, int line)
{
	const char *v[HC_NCOLS];
	for (int k = 0; k < HC_NCOLS; k++)
		v[k] = col_of[k] >= 0 && f[col_of[k]][0] != '\0' ? f[col_of[k]] : NULL;
	const char *kind = v[HC_COL_KIND] ? v[HC_COL_KIND] : "";
	if (strcasecmp(kind, "department") == 0) {
		static const int unused[] = {HC_COL_ADDRESS, HC_COL_DEPARTMENT, HC_COL_ROLES,
		                             HC_COL_DB_ROLE, HC_COL_NOTIFY_CHANNEL,
		                             HC_COL_NOTIFY_ADDRESS};
		for (size_t i = 0; i < sizeof(unused) / sizeof(unused[0]); i++)
			if (v[unused[i]] != NULL)
				return hc_org_fail(b, line,
				                   "a department row uses only name and head, not %s",
				                   hc_org_columns[unused[i]]);
		return hc_org_add_department(b, v[HC_COL_NAME], v[HC_COL_HEAD], line);
	}
	if (strcasecmp(kind, "staff") == 0) {
		if (v[HC_COL_HEAD] != NULL)
			return hc_org_fail(b, line,
			                   "head belongs on the department's row, not on a staff row");
		json_t *roles = json_array();
		if (v[HC_COL_ROLES] != NULL) {
			int rc = hc_org_csv_roles(b, v[HC_COL_ROLES], roles, line);
			if (rc != 0) {
				json_decref(roles);
				return rc;
			}
		}
		hc_org_person_t p = {v[HC_COL_ADDRESS],     v[HC_COL_NAME],
		                     v[HC_COL_DEPARTMENT],  v[HC_COL_DB_ROLE],
		                     v[HC_COL_NOTIFY_CHANNEL], v[HC_COL_NOTIFY_ADDRESS]};
		return hc_org_add_person(b, &p, roles, line);
	}
	return hc_org_fail(b, line, "kind must be department or staff, not '%.32s'", kind);
}

static int hc_org_parse_csv(hc_org_build_t *b, const char *text, size_t len)
{
	/* A UTF-8 byte order mark, as spreadsheets write it. */
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
		text += 3;
		len -= 3;
	}
	hc_csv_t *c = hc_csv_new(text, len, HC_ORG_MAX_CSV_FIELDS, HC_ORG_MAX_FIELD_BYTES);
	const char *const *f = NULL;
	size_t n = 0, ncols = 0, bad_field = 0, bad_name = 0;
	int line = 0;
	int col_of[HC_NCOLS];
	int rc = hc_csv_next(c, &f, &n, &line);
	if (rc == 0) {
		rc = hc_org_fail(b, 0, "empty file: the first line must name the columns (%s,...)",
		                 hc_org_columns[0]);
		goto out;
	}
	if (rc < 0) {
		rc = hc_org_fail(b, line, "%s", hc_csv_error(c));
		goto out;
	}
	rc = hc_csv_columns(f, n, hc_org_columns, HC_NCOLS, col_of, &bad_field, &bad_name);
	if (rc == HD_E_NOTFOUND) {
		rc = hc_org_fail(b, line,
		                 "unknown column '%.64s' (columns are kind, name, address, "
		                 "department, roles, db_role, notify_channel, notify_address, head)",
		                 f[bad_field]);
		goto out;
	}
	if (rc != 0) {
		rc = hc_org_fail(b, line, "column %s appears twice", hc_org_columns[bad_name]);
		goto out;
	}
	if (col_of[HC_COL_KIND] < 0) {
		rc = hc_org_fail(b, line, "the header has no 'kind' column (department or staff)");
		goto out;
	}
	ncols = n;
	while ((rc = hc_csv_next(c, &f, &n, &line)) == 1) {
		if (n != ncols) {
			rc = hc_org_fail(b, line, "%zu field%s, the header has %zu", n,
			                 n == 1 ? "" : "s", ncols);
			goto out;
		}
		rc = hc_org_csv_row(b, col_of, f, line);
		if (rc != 0)
			goto out;
	}
	if (rc < 0)
		rc = hc_org_fail(b, line, "%s", hc_csv_error(c));
out:
	hc_csv_destroy(&c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* YAML                                                                */
/* ------------------------------------------------------------------ */

static int hc_org_yline(const yaml_node_t *node)
{
	return (int)node->start_mark.line + 1;
}

static const char *hc_org_ykind(const yaml_node_t *node)
{
	switch (node->type) {
	case YAML_SCALAR_NODE: return "a scalar";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "nothing";
	}
}

/*
 * The text of a scalar node into buf, or NULL for a YAML null (~, null,
 * empty plain scalar). Non-scalars and oversized or NUL-holding values
 * are errors (*rc set).
 */
static const char *hc_org_yscalar(hc_org_build_t *b, const yaml_node_t *node, const char *what,
                                  char *buf, size_t buflen, int *rc)
{
	*rc = 0;
	if (node->type != YAML_SCALAR_NODE) {
		*rc = hc_org_fail(b, hc_org_yline(node), "%s must be text, not %s", what,
		                  hc_org_ykind(node));
		return NULL;
	}
	const char *v = (const char *)node->data.scalar.value;
	size_t len = node->data.scalar.length;
	if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (len == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	     strcmp(v, "NULL") == 0))
		return NULL;
	if (len >= buflen || len > HC_ORG_MAX_FIELD_BYTES) {
		*rc = hc_org_fail(b, hc_org_yline(node), "%s is longer than %d bytes", what,
		                  HC_ORG_MAX_FIELD_BYTES);
		return NULL;
	}
	if (memchr(v, '\0', len) != NULL) {
		*rc = hc_org_fail(b, hc_org_yline(node), "%s contains a NUL byte", what);
		return NULL;
	}
	memcpy(buf, v, len);
	buf[len] = '\0';
	return buf;
}

/* Fields of a YAML mapping we look up by key. */
typedef struct hc_org_ykey {
	const char *key;
	yaml_node_t *value;
} hc_org_ykey_t;

/* Match a mapping's keys against keys[] (values set, NULL when absent); unknown keys are errors. */
static int hc_org_ymap(hc_org_build_t *b, yaml_document_t *doc, yaml_node_t *map, const char *what,
                       hc_org_ykey_t *keys, size_t nkeys)
{
	for (size_t i = 0; i < nkeys; i++)
		keys[i].value = NULL;
	if (map->type != YAML_MAPPING_NODE)
		return hc_org_fail(b, hc_org_yline(map), "%s must be a mapping, not %s", what,
		                   hc_org_ykind(map));
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		yaml_node_t *v = yaml_document_get_node(doc, p->value);
		if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE)
			return hc_org_fail(b, k ? hc_org_yline(k) : 0, "%s: keys must be text", what);
		const char *name = (const char *)k->data.scalar.value;
		size_t i = 0;
		while (i < nkeys && strcmp(keys[i].key, name) != 0)
			i++;
		if (i == nkeys) {
			char known[256] = "";
			for (size_t j = 0; j < nkeys; j++)
				snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
				         j ? ", " : "", keys[j].key);
			return hc_org_fail(b, hc_org_yline(k), "unknown key '%.64s' in %s (keys are %s)",
			                   name, what, known);
		}
		if (keys[i].value != NULL)
			return hc_org_fail(b, hc_org_yline(k), "key '%s' appears twice in %s", name, what);
		keys[i].value = v;
	}
	return 0;
}

/* Optional scalar of a looked-up key into buf; NULL when absent or null. */
static const char *hc_org_yopt(hc_org_build_t *b, const hc_org_ykey_t *k, char *buf, size_t len,
                               int *rc)
{
	*rc = 0;
	if (k->value == NULL)
		return NULL;
	return hc_org_yscalar(b, k->value, k->key, buf, len, rc);
}

static int hc_org_ydept(hc_org_build_t *b, yaml_document_t *doc, yaml_node_t *node)
{
	hc_org_ykey_t keys[] = {{"name", NULL}, {"head", NULL}};
	int rc = hc_org_ymap(b, doc, node, "a department", keys, 2);
	if (rc != 0)
		return rc;
	char name[HC_ORG_MAX_FIELD_BYTES + 1], head[HC_ORG_MAX_FIELD_BYTES + 1];
	const char *n = hc_org_yopt(b, &keys[0], name, sizeof(name), &rc);
	if (rc != 0)
		return rc;
	const char *h = hc_org_yopt(b, &keys[1], head, sizeof(head), &rc);
	if (rc != 0)
		return rc;
	return hc_org_add_department(b, n, h, hc_org_yline(node));
}

static int hc_org_yroles(hc_org_build_t *b, yaml_document_t *doc, yaml_node_t *node, json_t *roles)
{
	char buf[HC_ORG_MAX_FIELD_BYTES + 1];
	int rc = 0;
	if (node->type == YAML_SCALAR_NODE) {
		/* "roles: employee" or "roles: employee, senior" */
		const char *v = hc_org_yscalar(b, node, "roles", buf, sizeof(buf), &rc);
		return rc != 0 || v == NULL ? rc : hc_org_csv_roles(b, v, roles, hc_org_yline(node));
	}
	if (node->type != YAML_SEQUENCE_NODE)
		return hc_org_fail(b, hc_org_yline(node), "roles must be a list, not %s",
		                   hc_org_ykind(node));
	for (yaml_node_item_t *it = node->data.sequence.items.start;
	     it < node->data.sequence.items.top; it++) {
		yaml_node_t *r = yaml_document_get_node(doc, *it);
		const char *v = r ? hc_org_yscalar(b, r, "a role", buf, sizeof(buf), &rc) : NULL;
		if (rc != 0)
			return rc;
		if (v == NULL)
			return hc_org_fail(b, r ? hc_org_yline(r) : 0, "an empty role");
		rc = hc_org_add_role(b, roles, v, hc_org_yline(r));
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int hc_org_yperson(hc_org_build_t *b, yaml_document_t *doc, yaml_node_t *node)
{
	enum { K_ADDRESS, K_NAME, K_DEPT, K_ROLES, K_DB_ROLE, K_NOTIFY, NK };
	hc_org_ykey_t keys[NK] = {{"address", NULL}, {"name", NULL},    {"department", NULL},
	                          {"roles", NULL},   {"db_role", NULL}, {"notify", NULL}};
	int rc = hc_org_ymap(b, doc, node, "a staff entry", keys, NK);
	if (rc != 0)
		return rc;
	char bufs[6][HC_ORG_MAX_FIELD_BYTES + 1];
	hc_org_person_t p;
	memset(&p, 0, sizeof(p));
	if ((p.address = hc_org_yopt(b, &keys[K_ADDRESS], bufs[0], sizeof(bufs[0]), &rc), rc) ||
	    (p.name = hc_org_yopt(b, &keys[K_NAME], bufs[1], sizeof(bufs[1]), &rc), rc) ||
	    (p.department = hc_org_yopt(b, &keys[K_DEPT], bufs[2], sizeof(bufs[2]), &rc), rc) ||
	    (p.db_role = hc_org_yopt(b, &keys[K_DB_ROLE], bufs[3], sizeof(bufs[3]), &rc), rc))
		return rc;
	if (keys[K_NOTIFY].value != NULL) {
		hc_org_ykey_t nk[] = {{"channel", NULL}, {"address", NULL}};
		rc = hc_org_ymap(b, doc, keys[K_NOTIFY].value, "notify", nk, 2);
		if (rc != 0)
			return rc;
		if ((p.notify_channel = hc_org_yopt(b, &nk[0], bufs[4], sizeof(bufs[4]), &rc), rc) ||
		    (p.notify_address = hc_org_yopt(b, &nk[1], bufs[5], sizeof(bufs[5]), &rc), rc))
			return rc;
	}
	json_t *roles = json_array();
	if (keys[K_ROLES].value != NULL) {
		rc = hc_org_yroles(b, doc, keys[K_ROLES].value, roles);
		if (rc != 0) {
			json_decref(roles);
			return rc;
		}
	}
	return hc_org_add_person(b, &p, roles, hc_org_yline(node));
}

static int hc_org_ylist(hc_org_build_t *b, yaml_document_t *doc, yaml_node_t *node,
                        const char *what, int (*each)(hc_org_build_t *, yaml_document_t *,
                                                      yaml_node_t *))
{
	if (node->type == YAML_SCALAR_NODE && node->data.scalar.length == 0)
		return 0; /* "staff:" with nothing under it */
	if (node->type != YAML_SEQUENCE_NODE)
		return hc_org_fail(b, hc_org_yline(node), "%s must be a list, not %s", what,
		                   hc_org_ykind(node));
	for (yaml_node_item_t *it = node->data.sequence.items.start;
	     it < node->data.sequence.items.top; it++) {
		yaml_node_t *e = yaml_document_get_node(doc, *it);
		if (e == NULL)
			return hc_org_fail(b, hc_org_yline(node), "%s: a broken entry", what);
		int rc = each(b, doc, e);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int hc_org_parse_yaml(hc_org_build_t *b, const char *text, size_t len)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser))
		hd_panic("hc_org: yaml_parser_initialize failed (out of memory)");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		int line = (int)(parser.problem_mark.line + 1);
		int rc = hc_org_fail(b, line, "YAML: %s%s%s", parser.problem ? parser.problem : "error",
		                     parser.context ? " " : "", parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		return rc;
	}
	int rc = 0;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		rc = hc_org_fail(b, 0, "empty file: expected departments: and staff:");
		goto out;
	}
	hc_org_ykey_t keys[] = {{"departments", NULL}, {"staff", NULL}};
	rc = hc_org_ymap(b, &doc, root, "the file", keys, 2);
	if (rc == 0 && keys[0].value != NULL)
		rc = hc_org_ylist(b, &doc, keys[0].value, "departments", hc_org_ydept);
	if (rc == 0 && keys[1].value != NULL)
		rc = hc_org_ylist(b, &doc, keys[1].value, "staff", hc_org_yperson);
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

/* ------------------------------------------------------------------ */
/* public parsing API                                                  */
/* ------------------------------------------------------------------ */

static bool hc_org_ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

int hc_org_format_of(const char *path, const char *fmt_opt, hc_org_format_t *fmt_p, char *err,
                     size_t errlen)
{
	if (fmt_opt != NULL) {
		if (strcmp(fmt_opt, "csv") == 0) {
			*fmt_p = HC_ORG_CSV;
			return 0;
		}
		if (strcmp(fmt_opt, "yaml") == 0 || strcmp(fmt_opt, "yml") == 0) {
			*fmt_p = HC_ORG_YAML;
			return 0;
		}
		snprintf(err, errlen, "--format must be csv or yaml, not '%.32s'", fmt_opt);
		return HD_E_INVALID;
	}
	if (hc_org_ends_with(path, ".csv")) {
		*fmt_p = HC_ORG_CSV;
		return 0;
	}
	if (hc_org_ends_with(path, ".yaml") || hc_org_ends_with(path, ".yml")) {
		*fmt_p = HC_ORG_YAML;
		return 0;
	}
	snprintf(err, errlen,
	         "cannot tell the format of '%.200s' (.csv, .yaml or .yml); use --format csv|yaml",
	         path);
	return HD_E_INVALID;
}

int hc_org_parse(hc_org_format_t fmt, const char *name, const char *text, size_t len,
                 json_t **doc_p, char *err, size_t errlen)
{
	*doc_p = NULL;
	hc_org_build_t b = {.name = name, .depts = json_array(), .staff = json_array(),
	                    .err = err, .errlen = errlen};
	if (len > HC_ORG_MAX_FILE_BYTES) {
		hc_org_fail(&b, 0, "larger than %u bytes", HC_ORG_MAX_FILE_BYTES);
		json_decref(b.depts);
		json_decref(b.staff);
		return HD_E_TOOBIG;
	}
	int rc = fmt == HC_ORG_CSV ? hc_org_parse_csv(&b, text, len) : hc_org_parse_yaml(&b, text, len);
	if (rc == 0)
		rc = hc_org_check(&b);
	if (rc == 0) {
		json_t *doc = json_object();
		json_object_set_new(doc, "departments", b.depts);
		json_object_set_new(doc, "staff", b.staff);
		*doc_p = doc;
	} else {
		json_decref(b.depts);
		json_decref(b.staff);
	}
	hd_free(&b.dept_lines);
	hd_free(&b.staff_lines);
	return rc;
}

int hc_org_read_file(const char *path, char **text_p, size_t *len_p, char *err, size_t errlen)
{
	*text_p = NULL;
	*len_p = 0;
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return HD_E_IO;
	}
	size_t cap = 64 * 1024, len = 0;
	char *buf = hd_malloc(cap + 1);
	for (;;) {
		if (len == cap) {
			if (cap >= HC_ORG_MAX_FILE_BYTES) {
				snprintf(err, errlen, "%s: larger than %u bytes", path, HC_ORG_MAX_FILE_BYTES);
				hd_free(&buf);
				fclose(f);
				return HD_E_TOOBIG;
			}
			cap *= 2;
			if (cap > HC_ORG_MAX_FILE_BYTES)
				cap = HC_ORG_MAX_FILE_BYTES;
			buf = hd_realloc(buf, cap + 1);
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	/* One byte more than the limit tells a file that is exactly at it from a bigger one. */
	if (len == HC_ORG_MAX_FILE_BYTES && fgetc(f) != EOF) {
		snprintf(err, errlen, "%s: larger than %u bytes", path, HC_ORG_MAX_FILE_BYTES);
		hd_free(&buf);
		fclose(f);
		return HD_E_TOOBIG;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "%s: read error", path);
		hd_free(&buf);
		return HD_E_IO;
	}
	buf[len] = '\0';
	*text_p = buf;
	*len_p = len;
	return 0;
}

/* ------------------------------------------------------------------ */
/* commands                                                            */
/* ------------------------------------------------------------------ */

int hc_org_cmd_import(hc_ctx_t *ctx, int argc, char **argv)
{
	static const hc_opt_t spec[] = {{"format", true}, {"json", false}};
	const char *v[2];
	char *pos[1];
	size_t npos = 0;
	char err[2048];
	if (hc_cli_parse_opts(argc, argv, spec, 2, v, pos, 1, &npos, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: org import: %s\n", err);
		return HC_EXIT_USAGE;
	}
	if (npos != 1) {
		fprintf(ctx->err, "heraldctl: org import: which file? (heraldctl org import FILE)\n");
		return HC_EXIT_USAGE;
	}
	hc_org_format_t fmt;
	if (hc_org_format_of(pos[0], v[0], &fmt, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: org import: %s\n", err);
		return HC_EXIT_USAGE;
	}
	char *text = NULL;
	size_t len = 0;
	if (hc_org_read_file(pos[0], &text, &len, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: org import: %s\n", err);
		return HC_EXIT_FAIL;
	}
	json_t *doc = NULL;
	int rc = hc_org_parse(fmt, pos[0], text, len, &doc, err, sizeof(err));
	hd_free(&text);
	if (rc != 0) {
		fprintf(ctx->err, "heraldctl: org import: %s\n", err);
		return HC_EXIT_FAIL;
	}
	char *doc_text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (doc_text == NULL)
		hd_panic("hc_org: json_dumps failed");

	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK) {
		free(doc_text);
		return exit_code;
	}
	const char *params[1] = {doc_text};
	PGresult *res = NULL;
	exit_code = hc_approve_call(ctx, db, "org import",
	                            "SELECT departments, staff, senior FROM herald.org_import($1::jsonb)",
	                            1, params, &res);
	free(doc_text);
	hc_db_close(&db);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	long long nd = 0, ns = 0, nsen = 0;
	if (PQntuples(res) > 0) {
		nd = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		ns = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		nsen = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	}
	PQclear(res);
	if (v[1] != NULL) {
		json_t *o = json_object();
		json_object_set_new(o, "file", json_string(pos[0]));
		json_object_set_new(o, "departments", json_integer(nd));
		json_object_set_new(o, "staff", json_integer(ns));
		json_object_set_new(o, "senior", json_integer(nsen));
		json_dumpf(o, ctx->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', ctx->out);
		json_decref(o);
	} else {
		fprintf(ctx->out,
		        "imported %s: %lld department%s, %lld staff, %lld in senior leadership\n",
		        pos[0], nd, nd == 1 ? "" : "s", ns, nsen);
	}
	return HC_EXIT_OK;
}

static const char *hc_org_cell(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* {"a","b"} (a text[] in text form) as a JSON array of strings. */
static json_t *hc_org_pg_array(const char *lit)
{
	json_t *arr = json_array();
	if (lit == NULL || lit[0] != '{')
		return arr;
	const char *p = lit + 1;
	char word[128];
	while (*p != '\0' && *p != '}') {
		size_t n = 0;
		bool q = *p == '"';
		if (q)
			p++;
		while (*p != '\0' && (q ? *p != '"' : (*p != ',' && *p != '}'))) {
			if (q && *p == '\\' && p[1] != '\0')
				p++;
			if (n + 1 < sizeof(word))
				word[n++] = *p;
			p++;
		}
		if (q && *p == '"')
			p++;
		word[n] = '\0';
		json_array_append_new(arr, json_string(word));
		if (*p == ',')
			p++;
	}
	return arr;
}

int hc_org_cmd_show(hc_ctx_t *ctx, int argc, char **argv)
{
	static const hc_opt_t spec[] = {{"json", false}};
	const char *v[1];
	size_t npos = 0;
	char err[1024];
	if (hc_cli_parse_opts(argc, argv, spec, 1, v, NULL, 0, &npos, err, sizeof(err)) != 0) {
		fprintf(ctx->err, "heraldctl: org show: %s\n", err);
		return HC_EXIT_USAGE;
	}
	hc_db_t *db = NULL;
	int exit_code = hc_cli_connect(ctx, &db);
	if (exit_code != HC_EXIT_OK)
		return exit_code;
	PGresult *dres = NULL, *sres = NULL;
	/* One snapshot for both lists. */
	exit_code = hc_approve_call(ctx, db, "org show",
	                            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL);
	if (exit_code == HC_EXIT_OK)
		exit_code = hc_approve_call(
			ctx, db, "org show",
			"SELECT d.name, d.head, h.name,"
			" (SELECT count(*) FROM herald.staff s WHERE s.department = d.name AND s.active)"
			" FROM herald.departments d LEFT JOIN herald.staff h ON h.address = d.head"
			" ORDER BY d.name",
			0, NULL, &dres);
	if (exit_code == HC_EXIT_OK)
		exit_code = hc_approve_call(ctx, db, "org show",
		                            "SELECT address, name, department, roles, db_role,"
		                            " notify_channel, notify_address, active"
		                            " FROM herald.staff ORDER BY department, address",
		                            0, NULL, &sres);
	hc_db_close(&db);
	if (exit_code != HC_EXIT_OK) {
		PQclear(dres);
		return exit_code;
	}
	int nd = PQntuples(dres), ns = PQntuples(sres);
	if (v[0] != NULL) {
		json_t *root = json_object(), *da = json_array(), *sa = json_array(), *sen = json_array();
		for (int i = 0; i < nd; i++) {
			json_t *o = json_object();
			json_object_set_new(o, "name", json_string(PQgetvalue(dres, i, 0)));
			json_object_set_new(o, "head", hc_org_str_or_null(hc_org_cell(dres, i, 1)));
			json_object_set_new(o, "head_name", hc_org_str_or_null(hc_org_cell(dres, i, 2)));
			json_object_set_new(o, "staff", json_integer(strtoll(PQgetvalue(dres, i, 3), NULL, 10)));
			json_array_append_new(da, o);
		}
		for (int i = 0; i < ns; i++) {
			json_t *o = json_object();
			json_t *roles = hc_org_pg_array(hc_org_cell(sres, i, 3));
			bool active = strcmp(PQgetvalue(sres, i, 7), "t") == 0;
			json_object_set_new(o, "address", json_string(PQgetvalue(sres, i, 0)));
			json_object_set_new(o, "name", hc_org_str_or_null(hc_org_cell(sres, i, 1)));
			json_object_set_new(o, "department", hc_org_str_or_null(hc_org_cell(sres, i, 2)));
			json_object_set_new(o, "roles", roles);
			json_object_set_new(o, "db_role", hc_org_str_or_null(hc_org_cell(sres, i, 4)));
			json_object_set_new(o, "notify_channel", hc_org_str_or_null(hc_org_cell(sres, i, 5)));
			json_object_set_new(o, "notify_address", hc_org_str_or_null(hc_org_cell(sres, i, 6)));
			json_object_set_new(o, "active", json_boolean(active));
			size_t k;
			json_t *r;
			json_array_foreach(roles, k, r)
				if (active && strcmp(json_string_value(r), "senior") == 0)
					json_array_append_new(sen, json_string(PQgetvalue(sres, i, 0)));
			json_array_append_new(sa, o);
		}
		json_object_set_new(root, "departments", da);
		json_object_set_new(root, "staff", sa);
		json_object_set_new(root, "senior", sen);
		json_dumpf(root, ctx->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', ctx->out);
		json_decref(root);
	} else {
		static const hc_table_col_t dcols[] = {
			{"DEPARTMENT", false, 40}, {"HEAD", false, 48}, {"HEAD NAME", false, 40},
			{"STAFF", true, 0}};
		hc_table_t *t = hc_table_new(dcols, 4);
		for (int i = 0; i < nd; i++) {
			const char *cells[] = {PQgetvalue(dres, i, 0), hc_org_cell(dres, i, 1),
			                       hc_org_cell(dres, i, 2), PQgetvalue(dres, i, 3)};
			hc_table_add(t, cells);
		}
		fprintf(ctx->out, "departments (%d)\n", nd);
		hc_table_print(t, ctx->out, 2);
		hc_table_destroy(&t);

		static const hc_table_col_t scols[] = {
			{"ADDRESS", false, 48}, {"NAME", false, 32}, {"DEPARTMENT", false, 32},
			{"ROLES", false, 0},    {"DB ROLE", false, 32}, {"NOTIFY", false, 48}};
		t = hc_table_new(scols, 6);
		int inactive = 0;
		char senior[4096] = "";
		size_t used = 0;
		for (int i = 0; i < ns; i++) {
			if (strcmp(PQgetvalue(sres, i, 7), "t") != 0) {
				inactive++;
				continue;
			}
			char roles[256], notify[600];
			json_t *ra = hc_org_pg_array(hc_org_cell(sres, i, 3));
			size_t k, rl = 0;
			json_t *r;
			roles[0] = '\0';
			json_array_foreach(ra, k, r) {
				int w = snprintf(roles + rl, sizeof(roles) - rl, "%s%s", k ? "," : "",
				                 json_string_value(r));
				if (w > 0 && (size_t)w < sizeof(roles) - rl)
					rl += (size_t)w;
				if (strcmp(json_string_value(r), "senior") == 0 && used < sizeof(senior)) {
					const char *nm = hc_org_cell(sres, i, 1);
					int sw = snprintf(senior + used, sizeof(senior) - used, "%s%s%s%s%s",
					                  used ? ", " : "", PQgetvalue(sres, i, 0),
					                  nm ? " (" : "", nm ? nm : "", nm ? ")" : "");
					if (sw > 0)
						used += (size_t)sw;
				}
			}
			json_decref(ra);
			const char *ch = hc_org_cell(sres, i, 5), *na = hc_org_cell(sres, i, 6);
			snprintf(notify, sizeof(notify), "%s%s%.512s", ch ? ch : "email", na ? " " : "",
			         na ? na : "");
			const char *cells[] = {PQgetvalue(sres, i, 0), hc_org_cell(sres, i, 1),
			                       hc_org_cell(sres, i, 2), roles, hc_org_cell(sres, i, 4),
			                       notify};
			hc_table_add(t, cells);
		}
		fprintf(ctx->out, "\nstaff (%d active", ns - inactive);
		if (inactive > 0)
			fprintf(ctx->out, ", %d inactive not shown", inactive);
		fprintf(ctx->out, ")\n");
		hc_table_print(t, ctx->out, 2);
		hc_table_destroy(&t);
		fprintf(ctx->out, "\nsenior leadership: %s\n", used ? senior : "nobody");
	}
	PQclear(dres);
	PQclear(sres);
	return HC_EXIT_OK;
}
