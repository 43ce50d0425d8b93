/*
 * NAME
 *	hw_drivers - the channel drivers compiled into herald-worker
 * DESCRIPTION
 *	One static table of {configuration group name, ops table}. A
 *	configuration group names a driver; the driver serves one channel,
 *	ops->channel, unless it says otherwise per instance (channel_of: the
 *	fake driver serves whichever channel its group names). Nothing else
 *	in the worker knows which drivers exist.
 */
#ifndef HW_DRIVERS_H
#define HW_DRIVERS_H

#include <stdbool.h>
#include <stddef.h>

#include "hd_channel.h"

typedef struct hw_driver {
	const char *name;                  /* configuration group: "email", "fake", ... */
	const hd_channel_ops_t *ops;
	/* The channel an open instance serves; NULL: always ops->channel. */
	hd_channel_t (*channel_of)(const void *self);
} hw_driver_t;

/* The drivers compiled in (static storage); *count gets their number. */
const hw_driver_t *hw_drivers(size_t *count);

/* True for every driver name herald-worker knows, compiled in or not. */
bool hw_driver_is_known(const char *name);

/* The channel an open instance of driver serves. */
hd_channel_t hw_driver_channel(const hw_driver_t *driver, const void *self);

#endif
