/*
 * NAME
 *	hd_config - heraldd configuration: a table of typed, bounded parameters
 * DESCRIPTION
 *	One row per parameter in hd_config_params; nothing else in Herald
 *	knows the file format. Parsing uses libconfig, which also tells the
 *	line of each setting for error messages.
 */
#include "hd_config.h"

#include <libconfig.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hd_err.h"
#include "hd_limits.h"
#include "hd_mem.h"
#include "hd_seal.h"

typedef enum { HD_PARAM_INT, HD_PARAM_STRING, HD_PARAM_STRING_LIST } hd_param_type_t;

typedef struct hd_param {
	const char *path;
	hd_param_type_t type;
	size_t offset;           /* of the value; for lists, of the char ** */
	size_t count_offset;     /* lists only: of the size_t count */
	int64_t int_default;
	int64_t min, max;
	const char *str_default; /* strings; lists: '\n'-separated items */
	const char *help;
} hd_param_t;

#define HD_OFF(field) offsetof(hd_config_t, field)

static const hd_param_t hd_config_params[] = {
	{"listen", HD_PARAM_STRING, HD_OFF(listen), 0, 0, 0, 0,
	 "tcp://127.0.0.1:7711", "ZeroMQ endpoint where producers connect"},
	{"database_url", HD_PARAM_STRING, HD_OFF(database_url), 0, 0, 0, 0, "",
	 "libpq conninfo; HERALD_DATABASE_URL overrides; empty = libpq defaults"},
	{"log_level", HD_PARAM_STRING, HD_OFF(log_level), 0, 0, 0, 0, "info",
	 "debug | info | warn | error"},
	{"intake.batch_max_messages", HD_PARAM_INT, HD_OFF(intake.batch_max_messages), 0,
	 256, 1, 10000, NULL, "group commit: flush when this many messages wait"},
	{"intake.batch_max_bytes", HD_PARAM_INT, HD_OFF(intake.batch_max_bytes), 0,
	 64 * 1024 * 1024, 1024 * 1024, 512 * 1024 * 1024, NULL,
	 "group commit: a batch holds about this much data at most"},
	{"intake.batch_max_wait_ms", HD_PARAM_INT, HD_OFF(intake.batch_max_wait_ms), 0,
	 0, 0, 1000, NULL,
	 "group commit: flush when the oldest waited this long (0: as soon as a connection is free)"},
	{"intake.max_frame_bytes", HD_PARAM_INT, HD_OFF(intake.max_frame_bytes), 0,
	 16 * 1024 * 1024, 1024, HD_MAX_FRAME_BYTES, NULL,
	 "largest request frame; larger ones drop the connection"},
	{"intake.max_recipients", HD_PARAM_INT, HD_OFF(intake.max_recipients), 0,
	 1000, 1, HD_MAX_RECIPIENTS, NULL, "to + cc per message"},
	{"intake.max_pending", HD_PARAM_INT, HD_OFF(intake.max_pending), 0,
	 20000, 1, 1000000, NULL, "uncommitted submissions before answering busy"},
	{"classify.bulk_threshold", HD_PARAM_INT, HD_OFF(classify.bulk_threshold), 0,
	 50, 2, HD_MAX_RECIPIENTS, NULL, "recipients at or above this make a message bulk"},
	{"classify.important_tag", HD_PARAM_STRING, HD_OFF(classify.important_tag), 0,
	 0, 0, 0, "[重要]", "subject tag that marks a message important"},
	{"approval.due_s", HD_PARAM_INT, HD_OFF(approval.due_s), 0,
	 172800, 1, 31536000, NULL, "POLICY A2.2: an approval request expires after this (48 h)"},
	{"approval.reminder_s", HD_PARAM_INT, HD_OFF(approval.reminder_s), 0,
	 86400, 0, 31536000, NULL, "remind the approvers this long after the request; 0 = never"},
	{"approval.tick_ms", HD_PARAM_INT, HD_OFF(approval.tick_ms), 0,
	 5000, 100, 3600000, NULL, "how often heraldd runs expiries and reminders"},
	{"dispatch.listen", HD_PARAM_STRING, HD_OFF(dispatch.listen), 0, 0, 0, 0,
	 "tcp://127.0.0.1:7712", "ZeroMQ endpoint where herald-worker processes connect"},
	{"dispatch.window", HD_PARAM_INT, HD_OFF(dispatch.window), 0,
	 2000, 1, 100000, NULL, "claimed deliveries held in memory at most"},
	{"dispatch.claim_batch", HD_PARAM_INT, HD_OFF(dispatch.claim_batch), 0,
	 200, 1, 10000, NULL, "deliveries claimed per statement"},
	{"dispatch.poll_ms", HD_PARAM_INT, HD_OFF(dispatch.poll_ms), 0,
	 200, 10, 60000, NULL, "claim interval while nothing is due"},
	{"dispatch.lease_ms", HD_PARAM_INT, HD_OFF(dispatch.lease_ms), 0,
	 60000, 500, 3600000, NULL, "a claimed delivery is claimable again after this"},
	{"dispatch.heartbeat_ms", HD_PARAM_INT, HD_OFF(dispatch.heartbeat_ms), 0,
	 1000, 50, 60000, NULL, "heartbeat to workers; a worker silent for 3 of its beats is dead"},
	{"dispatch.outcome_batch_max", HD_PARAM_INT, HD_OFF(dispatch.outcome_batch_max), 0,
	 500, 1, 10000, NULL, "outcomes recorded per transaction"},
	{"dispatch.coalesce_ms", HD_PARAM_INT, HD_OFF(dispatch.coalesce_ms), 0,
	 10, 0, 1000, NULL,
	 "a wake-up (release, intake) claims, and results are recorded, after at most this long, so work arriving together shares one statement"},
	{"dispatch.rate_limits", HD_PARAM_STRING_LIST, HD_OFF(dispatch.rate_limits),
	 HD_OFF(dispatch.rate_limit_count), 0, 0, 0, "im=20/60",
	 "\"channel=N/S\": at most N deliveries to one recipient in any S seconds"},
	{"retry.min_backoff_ms", HD_PARAM_INT, HD_OFF(retry.min_backoff_ms), 0,
	 300000, 10, 86400000, NULL, "first retry after a temporary failure (Postfix: 300 s)"},
	{"retry.max_backoff_ms", HD_PARAM_INT, HD_OFF(retry.max_backoff_ms), 0,
	 4000000, 10, 86400000, NULL, "retry delay cap (Postfix: 4000 s)"},
	{"retry.max_lifetime_s", HD_PARAM_INT, HD_OFF(retry.max_lifetime_s), 0,
	 432000, 1, 31536000, NULL, "give up this long after submission (Postfix: 5 days)"},
	{"database.connections", HD_PARAM_INT, HD_OFF(database.connections), 0,
	 2, 1, 16, NULL, "connections, i.e. batches that may be committing at once"},
	{"database.reconnect_min_ms", HD_PARAM_INT, HD_OFF(database.reconnect_min_ms), 0,
	 100, 10, 60000, NULL, "first reconnect delay after losing PostgreSQL"},
	{"database.reconnect_max_ms", HD_PARAM_INT, HD_OFF(database.reconnect_max_ms), 0,
	 5000, 10, 600000, NULL, "reconnect delay cap"},
	{"database.statement_timeout_ms", HD_PARAM_INT, HD_OFF(database.statement_timeout_ms), 0,
	 10000, 100, 600000, NULL, "PostgreSQL statement_timeout for broker statements"},
	{"security.keys", HD_PARAM_STRING_LIST, HD_OFF(security.keys), HD_OFF(security.key_count),
	 0, 0, 0, "", "POLICY K2: \"ID:PATH\" key files (32 bytes, mode 0600) that seal "
	 "confidential content at rest; empty = confidential submissions are refused"},
	{"security.seal_key", HD_PARAM_STRING, HD_OFF(security.seal_key), 0, 0, 0, 0, "",
	 "id of the key in security.keys that seals new confidential content"},
};

#define HD_PARAM_COUNT (sizeof(hd_config_params) / sizeof(hd_config_params[0]))

static void *hd_config_field(hd_config_t *cfg, size_t offset)
{
	return (char *)cfg + offset;
}

static void hd_config_set_list(hd_config_t *cfg, const hd_param_t *p, char **items, size_t n)
{
	char ***list = hd_config_field(cfg, p->offset);
	size_t *count = hd_config_field(cfg, p->count_offset);
	for (size_t i = 0; i < *count; i++)
		free((*list)[i]);
	free(*list);
	*list = items;
	*count = n;
}

static void hd_config_set_defaults(hd_config_t *cfg)
{
	for (size_t i = 0; i < HD_PARAM_COUNT; i++) {
		const hd_param_t *p = &hd_config_params[i];
		switch (p->type) {
		case HD_PARAM_INT:
			*(int64_t *)hd_config_field(cfg, p->offset) = p->int_default;
			break;
		case HD_PARAM_STRING:
			*(char **)hd_config_field(cfg, p->offset) = hd_strdup(p->str_default);
			break;
		case HD_PARAM_STRING_LIST: {
			size_t n = 0;
			for (const char *s = p->str_default; s && *s; s++)
				n += (*s == '\n');
			n += (p->str_default && *p->str_default) ? 1 : 0;
			char **items = hd_calloc(n ? n : 1, sizeof(char *));
			const char *s = p->str_default;
			for (size_t k = 0; k < n; k++) {
				const char *nl = strchr(s, '\n');
				size_t len = nl ? (size_t)(nl - s) : strlen(s);
				items[k] = hd_strndup(s, len);
				s += len + (nl ? 1 : 0);
			}
			hd_config_set_list(cfg, p, items, n);
			break;
		}
		}
	}
}

static const hd_param_t *hd_config_find(const char *path)
{
	for (size_t i = 0; i < HD_PARAM_COUNT; i++)
		if (strcmp(hd_config_params[i].path, path) == 0)
			return &hd_config_params[i];
	return NULL;
}

static bool hd_config_is_group_prefix(const char *path)
{
	size_t len = strlen(path);
	for (size_t i = 0; i < HD_PARAM_COUNT; i++)
		if (strncmp(hd_config_params[i].path, path, len) == 0 &&
		    hd_config_params[i].path[len] == '.')
			return true;
	return false;
}

static int hd_config_fail(const config_setting_t *s, const char *file, char *err,
			  size_t errlen, const char *path, const char *why)
{
	snprintf(err, errlen, "%s:%u: %s: %s", file, config_setting_source_line(s), path, why);
	return HD_E_CONFIG;
}

static int hd_config_apply(hd_config_t *cfg, const config_setting_t *s, const char *file,
			   const char *path, const hd_param_t *p, char *err, size_t errlen)
{
	char why[160];
	int type = config_setting_type(s);
	switch (p->type) {
	case HD_PARAM_INT: {
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
			return hd_config_fail(s, file, err, errlen, path, "expected an integer");
		long long v = config_setting_get_int64(s);
		if (v < p->min || v > p->max) {
			snprintf(why, sizeof(why), "%lld is outside [%lld, %lld]", v,
				 (long long)p->min, (long long)p->max);
			return hd_config_fail(s, file, err, errlen, path, why);
		}
		*(int64_t *)hd_config_field(cfg, p->offset) = v;
		return HD_OK;
	}
	case HD_PARAM_STRING: {
		if (type != CONFIG_TYPE_STRING)
			return hd_config_fail(s, file, err, errlen, path, "expected a string");
		char **slot = hd_config_field(cfg, p->offset);
		free(*slot);
		*slot = hd_strdup(config_setting_get_string(s));
		return HD_OK;
	}
	case HD_PARAM_STRING_LIST: {
		if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
			return hd_config_fail(s, file, err, errlen, path,
					      "expected a list of strings [\"a\", \"b\"]");
		int n = config_setting_length(s);
		char **items = hd_calloc(n > 0 ? (size_t)n : 1, sizeof(char *));
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			if (config_setting_type(e) != CONFIG_TYPE_STRING ||
			    !*config_setting_get_string(e)) {
				for (int k = 0; k < i; k++)
					free(items[k]);
				free(items);
				return hd_config_fail(s, file, err, errlen, path,
						      "every item must be a non-empty string");
			}
			items[i] = hd_strdup(config_setting_get_string(e));
		}
		hd_config_set_list(cfg, p, items, (size_t)n);
		return HD_OK;
	}
	}
	return HD_E_INTERNAL;
}

static int hd_config_walk(hd_config_t *cfg, const config_setting_t *group, const char *file,
			  const char *prefix, char *err, size_t errlen)
{
	int n = config_setting_length(group);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		char path[128];
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "",
			 config_setting_name(s));
		const hd_param_t *p = hd_config_find(path);
		int rc;
		if (p)
			rc = hd_config_apply(cfg, s, file, path, p, err, errlen);
		else if (config_setting_type(s) == CONFIG_TYPE_GROUP && hd_config_is_group_prefix(path))
			rc = hd_config_walk(cfg, s, file, path, err, errlen);
		else if (strcmp(path, "policy") == 0 && config_setting_type(s) == CONFIG_TYPE_GROUP)
			rc = HD_OK; /* the policy rules: hd_policy reads and checks them */
		else
			rc = hd_config_fail(s, file, err, errlen, path, "unknown setting");
		if (rc != HD_OK)
			return rc;
	}
	return HD_OK;
}

void hd_config_set_include_dir(struct config_t *lc, const char *path)
{
	/* @include "policy.conf" means the file beside this one. */
	const char *slash = strrchr(path, '/');
	if (!slash) {
		config_set_include_dir(lc, ".");
		return;
	}
	char dir[4096];
	size_t n = (size_t)(slash - path);
	if (n == 0)
		n = 1;
	if (n >= sizeof(dir))
		return;
	memcpy(dir, path, n);
	dir[n] = '\0';
	config_set_include_dir(lc, dir);
}

/* security: "ID:PATH" syntax, unique ids, seal_key one of them (the files are read by heraldd). */
static int hd_config_check_security(const hd_config_t *cfg, char *err, size_t errlen,
				    const char *file)
{
	char why[192], ids[HD_SEAL_MAX_KEYS][HD_SEAL_MAX_ID_BYTES + 1];
	bool found = false;
	if (cfg->security.key_count > HD_SEAL_MAX_KEYS) {
		snprintf(err, errlen, "%s: security.keys: more than %d keys", file, HD_SEAL_MAX_KEYS);
		return HD_E_CONFIG;
	}
	for (size_t i = 0; i < cfg->security.key_count; i++) {
		if (hd_seal_parse_key_spec(cfg->security.keys[i], ids[i], why, sizeof(why)) != HD_OK) {
			snprintf(err, errlen, "%s: security.keys: %s", file, why);
			return HD_E_CONFIG;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(ids[i], ids[j]) == 0) {
				snprintf(err, errlen, "%s: security.keys: key id \"%.16s\" given twice",
					 file, ids[i]);
				return HD_E_CONFIG;
			}
		found = found || strcmp(ids[i], cfg->security.seal_key) == 0;
	}
	if (cfg->security.key_count > 0 && !*cfg->security.seal_key) {
		snprintf(err, errlen, "%s: security.seal_key: required with security.keys "
			 "(the id of the key that seals new content)", file);
		return HD_E_CONFIG;
	}
	if (*cfg->security.seal_key && !found) {
		snprintf(err, errlen, "%s: security.seal_key: \"%.40s\" is not an id in "
			 "security.keys", file, cfg->security.seal_key);
		return HD_E_CONFIG;
	}
	return HD_OK;
}

static int hd_config_check(const hd_config_t *cfg, char *err, size_t errlen, const char *file)
{
	if (hd_config_check_security(cfg, err, errlen, file) != HD_OK)
		return HD_E_CONFIG;
	if (cfg->database.reconnect_min_ms > cfg->database.reconnect_max_ms) {
		snprintf(err, errlen, "%s: database.reconnect_min_ms exceeds database.reconnect_max_ms", file);
		return HD_E_CONFIG;
	}
	if (strcmp(cfg->log_level, "debug") && strcmp(cfg->log_level, "info") &&
	    strcmp(cfg->log_level, "warn") && strcmp(cfg->log_level, "error")) {
		snprintf(err, errlen, "%s: log_level: expected debug, info, warn or error", file);
		return HD_E_CONFIG;
	}
	if (cfg->retry.min_backoff_ms > cfg->retry.max_backoff_ms) {
		snprintf(err, errlen, "%s: retry.min_backoff_ms exceeds retry.max_backoff_ms", file);
		return HD_E_CONFIG;
	}
	for (size_t i = 0; i < cfg->dispatch.rate_limit_count; i++) {
		hd_rate_limit_t rl;
		if (hd_config_parse_rate_limit(cfg->dispatch.rate_limits[i], &rl) != HD_OK) {
			snprintf(err, errlen, "%s: dispatch.rate_limits: \"%s\": expected "
				 "\"email|im|sms=N/S\" with N in 1..1000 and S in 1..86400", file,
				 cfg->dispatch.rate_limits[i]);
			return HD_E_CONFIG;
		}
	}
	if (!*cfg->listen) {
		snprintf(err, errlen, "%s: listen: must not be empty", file);
		return HD_E_CONFIG;
	}
	return HD_OK;
}

int hd_config_load(const char *path, hd_config_t **out, char *err, size_t errlen)
{
	hd_config_t *cfg = hd_calloc(1, sizeof(*cfg));
	hd_config_set_defaults(cfg);
	*out = NULL;
	int rc = HD_OK;

	if (path) {
		config_t lc;
		config_init(&lc);
		hd_config_set_include_dir(&lc, path);
		if (config_read_file(&lc, path) != CONFIG_TRUE) {
			if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
				snprintf(err, errlen, "%s: cannot read file", path);
			else
				snprintf(err, errlen, "%s:%d: %s", path, config_error_line(&lc),
					 config_error_text(&lc));
			rc = HD_E_CONFIG;
		} else {
			rc = hd_config_walk(cfg, config_root_setting(&lc), path, "", err, errlen);
		}
		config_destroy(&lc);
	}
	if (rc == HD_OK)
		rc = hd_config_check(cfg, err, errlen, path ? path : "(defaults)");
	if (rc != HD_OK) {
		hd_config_destroy(&cfg);
		return rc;
	}
	*out = cfg;
	return HD_OK;
}

void hd_config_print_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

void hd_config_print(const hd_config_t *self, FILE *out)
{
	hd_config_t *cfg = (hd_config_t *)self;
	char group[64] = "";
	for (size_t i = 0; i < HD_PARAM_COUNT; i++) {
		const hd_param_t *p = &hd_config_params[i];
		/* Parameters are listed group by group; one level of nesting. */
		const char *dot = strchr(p->path, '.');
		size_t glen = dot ? (size_t)(dot - p->path) : 0;
		if (strlen(group) != glen || strncmp(group, p->path, glen) != 0) {
			if (*group)
				fputs("};\n", out);
			snprintf(group, sizeof(group), "%.*s", (int)glen, p->path);
			if (*group)
				fprintf(out, "%s = {\n", group);
		}
		const char *indent = *group ? "  " : "";
		fprintf(out, "%s# %s\n%s%s = ", indent, p->help, indent, dot ? dot + 1 : p->path);
		switch (p->type) {
		case HD_PARAM_INT:
			fprintf(out, "%lld", (long long)*(int64_t *)hd_config_field(cfg, p->offset));
			break;
		case HD_PARAM_STRING:
			/* The database URL may carry a password: never print it. */
			if (strcmp(p->path, "database_url") == 0 &&
			    **(char **)hd_config_field(cfg, p->offset))
				fputs("\"(set; not shown)\"", out);
			else
				hd_config_print_string(out, *(char **)hd_config_field(cfg, p->offset));
			break;
		case HD_PARAM_STRING_LIST: {
			char **items = *(char ***)hd_config_field(cfg, p->offset);
			size_t n = *(size_t *)hd_config_field(cfg, p->count_offset);
			fputc('[', out);
			for (size_t k = 0; k < n; k++) {
				fputs(k ? ", " : "", out);
				hd_config_print_string(out, items[k]);
			}
			fputc(']', out);
			break;
		}
		}
		fputs(";\n", out);
	}
	if (*group)
		fputs("};\n", out);
}

void hd_config_destroy(hd_config_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_config_t *cfg = *self_p;
	for (size_t i = 0; i < HD_PARAM_COUNT; i++) {
		const hd_param_t *p = &hd_config_params[i];
		if (p->type == HD_PARAM_STRING)
			free(*(char **)hd_config_field(cfg, p->offset));
		else if (p->type == HD_PARAM_STRING_LIST)
			hd_config_set_list(cfg, p, NULL, 0);
	}
	free(cfg);
	*self_p = NULL;
}

int hd_config_parse_rate_limit(const char *spec, hd_rate_limit_t *out)
{
	const char *eq = strchr(spec, '=');
	if (!eq)
		return HD_E_INVALID;
	size_t len = (size_t)(eq - spec);
	if (len == 5 && strncmp(spec, "email", 5) == 0)
		out->channel = HD_CHANNEL_EMAIL;
	else if (len == 2 && strncmp(spec, "im", 2) == 0)
		out->channel = HD_CHANNEL_IM;
	else if (len == 3 && strncmp(spec, "sms", 3) == 0)
		out->channel = HD_CHANNEL_SMS;
	else
		return HD_E_INVALID;
	char *end;
	long n = strtol(eq + 1, &end, 10);
	if (end == eq + 1 || *end != '/' || n < 1 || n > 1000)
		return HD_E_INVALID;
	const char *sec = end + 1;
	long s = strtol(sec, &end, 10);
	if (end == sec || *end != '\0' || s < 1 || s > 86400)
		return HD_E_INVALID;
	out->count = n;
	out->per_seconds = s;
	return HD_OK;
}
