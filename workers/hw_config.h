/*
 * NAME
 *	hw_config - herald-worker configuration
 * DESCRIPTION
 *	libconfig syntax. The worker's own settings are rows of a table
 *	(name, type, default, bounds, help): unknown keys, wrong types and
 *	out-of-range values are refused with "file:line: key: reason". Every
 *	other top-level setting must be a group named after a channel
 *	driver (email, im, sms, fake); its content is not read here but
 *	handed to that driver's open(), which validates it. A group for a
 *	driver not compiled into this binary is an error, and so is a file
 *	that enables no driver. The group `security` is the worker's own:
 *	  security = { keys = ["k1:/etc/herald/keys/k1.key", ...]; };
 *	the keys that open confidential content sealed at rest (POLICY K2,
 *	common/hd_seal.h); only the "ID:PATH" syntax is checked here, the
 *	files are read by herald-worker (hd_seal) at start and by
 *	--check-config.
 * OWNERSHIP
 *	hw_config_t owns its strings and the parsed file that the driver
 *	groups point into: keep it alive while drivers are open.
 */
#ifndef HW_CONFIG_H
#define HW_CONFIG_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hw_drivers.h"

#define HW_CONFIG_MAX_DRIVERS 8

typedef struct hw_config_driver {
	const hw_driver_t *driver;
	const config_setting_t *group;  /* borrowed from the parsed file */
} hw_config_driver_t;

typedef struct hw_config {
	char *broker;                 /* heraldd's dispatch endpoint */
	char *name;                   /* worker name; never empty after load */
	int64_t credit;               /* jobs held at once */
	int64_t heartbeat_ms;
	int64_t shutdown_grace_ms;    /* after SIGTERM, wait this long for jobs */
	char *log_level;
	char **seal_keys;             /* security.keys: "ID:PATH" */
	size_t seal_key_count;
	hw_config_driver_t drivers[HW_CONFIG_MAX_DRIVERS];  /* in file order */
	size_t driver_count;
	config_t *file;               /* owned; NULL when loaded without a file */
} hw_config_t;

/*
 * Load path with the drivers of table[0..count) (hw_drivers() in the
 * program; tests pass their own). On success *out is the caller's. On
 * failure returns HD_E_CONFIG with "file:line: reason" in err.
 */
int hw_config_load(const char *path, const hw_driver_t *table, size_t count,
		   hw_config_t **out, char *err, size_t errlen);

/*
 * Command-line overrides (NULL = keep). Returns 0, or HD_E_CONFIG with
 * the reason in err when name is not 1..64 of A-Z a-z 0-9 . _ - or the
 * broker endpoint is empty.
 */
int hw_config_override(hw_config_t *self, const char *broker, const char *name, char *err,
		       size_t errlen);

/* Write the effective configuration in libconfig syntax (secrets masked). */
void hw_config_print(const hw_config_t *self, FILE *out);

/* NULL-safe; sets *self_p to NULL. */
void hw_config_destroy(hw_config_t **self_p);

#endif
