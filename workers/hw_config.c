/*
 * NAME
 *	hw_config - herald-worker configuration
 * DESCRIPTION
 *	One row per worker setting in hw_config_params; driver groups are
 *	only located here (their content belongs to the drivers). libconfig
 *	tells the line of every setting for error messages.
 */
#include "hw_config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hd_config.h"
#include "hd_err.h"
#include "hd_mem.h"
#include "hd_seal.h"
#include "hd_wire.h"

typedef enum { HW_PARAM_INT, HW_PARAM_STRING } hw_param_type_t;

typedef struct hw_param {
	const char *name;
	hw_param_type_t type;
	size_t offset;
	int64_t int_default, min, max;
	const char *str_default;
	const char *help;
} hw_param_t;

#define HW_OFF(field) offsetof(hw_config_t, field)

static const hw_param_t hw_config_params[] = {
	{"broker", HW_PARAM_STRING, HW_OFF(broker), 0, 0, 0, "tcp://127.0.0.1:7712",
	 "heraldd's dispatch endpoint (its dispatch.listen); --broker overrides"},
	{"name", HW_PARAM_STRING, HW_OFF(name), 0, 0, 0, "",
	 "worker name in heraldd's logs: 1..64 of A-Z a-z 0-9 . _ -; empty = hostname-pid"},
	{"credit", HW_PARAM_INT, HW_OFF(credit), 64, 1, HD_WIRE_MAX_CREDIT, NULL,
	 "jobs this worker holds at once; READY announces the smaller of this and the sum "
	 "of its drivers' capacities (max_jobs, max_in_flight)"},
	{"heartbeat_ms", HW_PARAM_INT, HW_OFF(heartbeat_ms), 1000, HD_WIRE_MIN_HEARTBEAT_MS,
	 HD_WIRE_MAX_HEARTBEAT_MS, NULL,
	 "beat interval; heraldd silent for 3 beats = reconnect"},
	{"shutdown_grace_ms", HW_PARAM_INT, HW_OFF(shutdown_grace_ms), 10000, 0, 600000, NULL,
	 "after SIGTERM, wait this long for jobs in flight before giving them back"},
	{"log_level", HW_PARAM_STRING, HW_OFF(log_level), 0, 0, 0, "info",
	 "debug | info | warn | error"},
};

#define HW_PARAM_COUNT (sizeof hw_config_params / sizeof hw_config_params[0])

static void *hw_config_field(hw_config_t *cfg, size_t offset)
{
	return (char *)cfg + offset;
}

static int hw_config_fail(const config_setting_t *s, const char *file, char *err,
			  size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s:%u: %s: %s", file, config_setting_source_line(s),
		 config_setting_name(s), why);
	return HD_E_CONFIG;
}

static int hw_config_apply(hw_config_t *cfg, const config_setting_t *s, const char *file,
			   const hw_param_t *p, char *err, size_t errlen)
{
	int type = config_setting_type(s);
	if (p->type == HW_PARAM_INT) {
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
			return hw_config_fail(s, file, err, errlen, "expected an integer");
		long long v = config_setting_get_int64(s);
		if (v < p->min || v > p->max) {
			char why[96];
			snprintf(why, sizeof why, "%lld is outside [%lld, %lld]", v,
				 (long long)p->min, (long long)p->max);
			return hw_config_fail(s, file, err, errlen, why);
		}
		*(int64_t *)hw_config_field(cfg, p->offset) = v;
		return HD_OK;
	}
	if (type != CONFIG_TYPE_STRING)
		return hw_config_fail(s, file, err, errlen, "expected a string");
	char **slot = hw_config_field(cfg, p->offset);
	free(*slot);
	*slot = hd_strdup(config_setting_get_string(s));
	return HD_OK;
}

static int hw_config_add_driver(hw_config_t *cfg, const config_setting_t *s, const char *file,
				const hw_driver_t *table, size_t count, char *err, size_t errlen)
{
	const char *name = config_setting_name(s);
	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return hw_config_fail(s, file, err, errlen,
				      "a channel driver's settings must be a group { ... }");
	const hw_driver_t *d = NULL;
	for (size_t i = 0; i < count && !d; i++)
		if (strcmp(table[i].name, name) == 0)
			d = &table[i];
	if (!d)
		return hw_config_fail(s, file, err, errlen,
				      "channel driver not compiled into this herald-worker");
	if (cfg->driver_count == HW_CONFIG_MAX_DRIVERS)
		return hw_config_fail(s, file, err, errlen, "too many driver groups");
	cfg->drivers[cfg->driver_count++] = (hw_config_driver_t){d, s};
	return HD_OK;
}

/* security = { keys = ["ID:PATH", ...]; }: syntax and unique ids; the files are read later. */
static int hw_config_security(hw_config_t *cfg, const config_setting_t *group, const char *file,
			      char *err, size_t errlen)
{
	if (config_setting_type(group) != CONFIG_TYPE_GROUP)
		return hw_config_fail(group, file, err, errlen, "expected a group { keys = [...]; }");
	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		if (strcmp(config_setting_name(s), "keys") != 0)
			return hw_config_fail(s, file, err, errlen,
					      "unknown setting in security (only keys)");
		int type = config_setting_type(s);
		if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
			return hw_config_fail(s, file, err, errlen,
					      "expected a list of \"ID:PATH\" strings");
		int n = config_setting_length(s);
		if (n > HD_SEAL_MAX_KEYS)
			return hw_config_fail(s, file, err, errlen, "more than 16 keys");
		for (size_t k = 0; k < cfg->seal_key_count; k++)
			free(cfg->seal_keys[k]);
		free(cfg->seal_keys);
		cfg->seal_keys = hd_calloc(n > 0 ? (size_t)n : 1, sizeof(char *));
		cfg->seal_key_count = 0;
		char ids[HD_SEAL_MAX_KEYS][HD_SEAL_MAX_ID_BYTES + 1];
		for (int k = 0; k < n; k++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)k);
			char why[192];
			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				return hw_config_fail(s, file, err, errlen,
						      "every item must be a string \"ID:PATH\"");
			const char *spec = config_setting_get_string(e);
			if (hd_seal_parse_key_spec(spec, ids[k], why, sizeof why) != HD_OK)
				return hw_config_fail(s, file, err, errlen, why);
			for (int j = 0; j < k; j++)
				if (strcmp(ids[j], ids[k]) == 0) {
					snprintf(why, sizeof why, "key id \"%.16s\" given twice", ids[k]);
					return hw_config_fail(s, file, err, errlen, why);
				}
			cfg->seal_keys[cfg->seal_key_count++] = hd_strdup(spec);
		}
	}
	return HD_OK;
}

static int hw_config_walk(hw_config_t *cfg, const char *file, const hw_driver_t *table,
			  size_t count, char *err, size_t errlen)
{
	const config_setting_t *root = config_root_setting(cfg->file);
	for (int i = 0; i < config_setting_length(root); i++) {
		const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(s);
		const hw_param_t *p = NULL;
		for (size_t k = 0; k < HW_PARAM_COUNT && !p; k++)
			if (strcmp(hw_config_params[k].name, name) == 0)
				p = &hw_config_params[k];
		int rc;
		if (p)
			rc = hw_config_apply(cfg, s, file, p, err, errlen);
		else if (strcmp(name, "security") == 0)
			rc = hw_config_security(cfg, s, file, err, errlen);
		else if (hw_driver_is_known(name))
			rc = hw_config_add_driver(cfg, s, file, table, count, err, errlen);
		else
			rc = hw_config_fail(s, file, err, errlen, "unknown setting");
		if (rc != HD_OK)
			return rc;
	}
	return HD_OK;
}

static bool hw_is_name(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > HD_WIRE_MAX_NAME_BYTES)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

/* hostname-pid, with anything but A-Z a-z 0-9 . _ - made '-', cut to fit. */
static char *hw_default_name(void)
{
	char host[256] = "";
	if (gethostname(host, sizeof host - 1) != 0 || !*host)
		snprintf(host, sizeof host, "worker");
	host[sizeof host - 1] = '\0';
	char pid[24];
	int plen = snprintf(pid, sizeof pid, "-%ld", (long)getpid());
	size_t keep = HD_WIRE_MAX_NAME_BYTES - (size_t)plen;
	if (strlen(host) > keep)
		host[keep] = '\0';
	for (char *c = host; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr("._-", *c))
			*c = '-';
	/* host was cut to keep bytes, so host + pid fits HD_WIRE_MAX_NAME_BYTES. */
	size_t hlen = strlen(host);
	char *name = hd_malloc(hlen + (size_t)plen + 1);
	memcpy(name, host, hlen);
	memcpy(name + hlen, pid, (size_t)plen + 1);
	return name;
}

static int hw_config_check(hw_config_t *cfg, const char *file, char *err, size_t errlen)
{
	if (strcmp(cfg->log_level, "debug") && strcmp(cfg->log_level, "info") &&
	    strcmp(cfg->log_level, "warn") && strcmp(cfg->log_level, "error")) {
		snprintf(err, errlen, "%s: log_level: expected debug, info, warn or error", file);
		return HD_E_CONFIG;
	}
	if (!*cfg->broker) {
		snprintf(err, errlen, "%s: broker: must not be empty", file);
		return HD_E_CONFIG;
	}
	if (!*cfg->name) {
		free(cfg->name);
		cfg->name = hw_default_name();
	} else if (!hw_is_name(cfg->name)) {
		snprintf(err, errlen, "%s: name: expected 1..%u of A-Z a-z 0-9 . _ -", file,
			 HD_WIRE_MAX_NAME_BYTES);
		return HD_E_CONFIG;
	}
	if (cfg->driver_count == 0) {
		snprintf(err, errlen, "%s: no channel driver enabled: add a group such as "
			 "email = { ... }; or fake = { ... };", file);
		return HD_E_CONFIG;
	}
	return HD_OK;
}

int hw_config_load(const char *path, const hw_driver_t *table, size_t count,
		   hw_config_t **out, char *err, size_t errlen)
{
	*out = NULL;
	hw_config_t *cfg = hd_calloc(1, sizeof *cfg);
	for (size_t i = 0; i < HW_PARAM_COUNT; i++) {
		const hw_param_t *p = &hw_config_params[i];
		if (p->type == HW_PARAM_INT)
			*(int64_t *)hw_config_field(cfg, p->offset) = p->int_default;
		else
			*(char **)hw_config_field(cfg, p->offset) = hd_strdup(p->str_default);
	}
	int rc = HD_OK;
	if (path) {
		cfg->file = hd_malloc(sizeof *cfg->file);
		config_init(cfg->file);
		if (config_read_file(cfg->file, path) != CONFIG_TRUE) {
			if (config_error_type(cfg->file) == CONFIG_ERR_FILE_IO)
				snprintf(err, errlen, "%s: cannot read file", path);
			else
				snprintf(err, errlen, "%s:%d: %s", path, config_error_line(cfg->file),
					 config_error_text(cfg->file));
			rc = HD_E_CONFIG;
		} else {
			rc = hw_config_walk(cfg, path, table, count, err, errlen);
		}
	}
	if (rc == HD_OK)
		rc = hw_config_check(cfg, path ? path : "(defaults)", err, errlen);
	if (rc != HD_OK) {
		hw_config_destroy(&cfg);
		return rc;
	}
	*out = cfg;
	return HD_OK;
}

int hw_config_override(hw_config_t *self, const char *broker, const char *name, char *err,
		       size_t errlen)
{
	if (broker && !*broker) {
		snprintf(err, errlen, "--broker: must not be empty");
		return HD_E_CONFIG;
	}
	if (name && !hw_is_name(name)) {
		snprintf(err, errlen, "--name: expected 1..%u of A-Z a-z 0-9 . _ -",
			 HD_WIRE_MAX_NAME_BYTES);
		return HD_E_CONFIG;
	}
	if (broker) {
		free(self->broker);
		self->broker = hd_strdup(broker);
	}
	if (name) {
		free(self->name);
		self->name = hd_strdup(name);
	}
	return HD_OK;
}

/* ---- printing -------------------------------------------------------------- */

/* Driver settings that look like credentials are not shown (paths to them are). */
static bool hw_is_secret(const char *name)
{
	static const char *const words[] = {"password", "passwd", "secret", "token", "key",
					    "credential"};
	if (!name)
		return false;
	size_t len = strlen(name);
	if ((len > 5 && strcmp(name + len - 5, "_file") == 0) ||
	    (len > 4 && strcmp(name + len - 4, "_env") == 0))
		return false;
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strstr(name, words[i]))
			return true;
	return false;
}

static void hw_print_value(FILE *out, const config_setting_t *s, int depth)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		fprintf(out, "%lld", config_setting_get_int64(s));
		break;
	case CONFIG_TYPE_FLOAT:
		fprintf(out, "%g", config_setting_get_float(s));
		break;
	case CONFIG_TYPE_BOOL:
		fputs(config_setting_get_bool(s) ? "true" : "false", out);
		break;
	case CONFIG_TYPE_STRING:
		hd_config_print_string(out, config_setting_get_string(s));
		break;
	case CONFIG_TYPE_ARRAY:
	case CONFIG_TYPE_LIST: {
		bool list = config_setting_type(s) == CONFIG_TYPE_LIST;
		fputc(list ? '(' : '[', out);
		for (int i = 0; i < config_setting_length(s); i++) {
			fputs(i ? ", " : "", out);
			hw_print_value(out, config_setting_get_elem(s, (unsigned)i), depth + 1);
		}
		fputc(list ? ')' : ']', out);
		break;
	}
	case CONFIG_TYPE_GROUP:
		fputs("{\n", out);
		for (int i = 0; i < config_setting_length(s); i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			fprintf(out, "%*s%s = ", 2 * (depth + 1), "", config_setting_name(e));
			if (hw_is_secret(config_setting_name(e)))
				fputs("\"(set; not shown)\"", out);
			else
				hw_print_value(out, e, depth + 1);
			fputs(";\n", out);
		}
		fprintf(out, "%*s}", 2 * depth, "");
		break;
	default:
		break;
	}
}

void hw_config_print(const hw_config_t *self, FILE *out)
{
	hw_config_t *cfg = (hw_config_t *)self;
	for (size_t i = 0; i < HW_PARAM_COUNT; i++) {
		const hw_param_t *p = &hw_config_params[i];
		fprintf(out, "# %s\n%s = ", p->help, p->name);
		if (p->type == HW_PARAM_INT)
			fprintf(out, "%lld", (long long)*(int64_t *)hw_config_field(cfg, p->offset));
		else
			hd_config_print_string(out, *(char **)hw_config_field(cfg, p->offset));
		fputs(";\n", out);
	}
	/* Key file paths, never their content. */
	fputs("# keys that open confidential content sealed at rest (\"ID:PATH\")\n"
	      "security = {\n  keys = [", out);
	for (size_t i = 0; i < cfg->seal_key_count; i++) {
		fputs(i ? ", " : "", out);
		hd_config_print_string(out, cfg->seal_keys[i]);
	}
	fputs("];\n};\n", out);
	for (size_t i = 0; i < cfg->driver_count; i++) {
		fprintf(out, "# channel driver %s\n%s = ", cfg->drivers[i].driver->name,
			cfg->drivers[i].driver->name);
		hw_print_value(out, cfg->drivers[i].group, 0);
		fputs(";\n", out);
	}
}

void hw_config_destroy(hw_config_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hw_config_t *cfg = *self_p;
	for (size_t i = 0; i < HW_PARAM_COUNT; i++)
		if (hw_config_params[i].type == HW_PARAM_STRING)
			free(*(char **)hw_config_field(cfg, hw_config_params[i].offset));
	for (size_t i = 0; i < cfg->seal_key_count; i++)
		free(cfg->seal_keys[i]);
	free(cfg->seal_keys);
	if (cfg->file) {
		config_destroy(cfg->file);
		free(cfg->file);
	}
	free(cfg);
	*self_p = NULL;
}
