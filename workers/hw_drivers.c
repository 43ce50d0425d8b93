/*
 * NAME
 *	hw_drivers - the channel drivers compiled into herald-worker
 * DESCRIPTION
 *	Add a driver here: include its header, add one table row, and add
 *	its name to hw_known_names if it is new.
 */
#include "hw_drivers.h"

#include <string.h>

#include "hd_email.h"
#include "hd_fake.h"
#include "hd_im.h"
#include "hd_sms.h"

static const hw_driver_t hw_driver_table[] = {
	{"email", &hd_email_ops, NULL},
	{"im", &hd_im_ops, NULL},
	{"sms", &hd_sms_ops, NULL},
	{"fake", &hd_fake_ops, hd_fake_channel},
};

/* Names a configuration may use; a group for one not in the table is refused
 * as "not compiled in" rather than "unknown". */
static const char *const hw_known_names[] = {"email", "im", "sms", "fake"};

const hw_driver_t *hw_drivers(size_t *count)
{
	*count = sizeof hw_driver_table / sizeof hw_driver_table[0];
	return hw_driver_table;
}

bool hw_driver_is_known(const char *name)
{
	for (size_t i = 0; i < sizeof hw_known_names / sizeof hw_known_names[0]; i++)
		if (strcmp(hw_known_names[i], name) == 0)
			return true;
	return false;
}

hd_channel_t hw_driver_channel(const hw_driver_t *driver, const void *self)
{
	return driver->channel_of ? driver->channel_of(self) : driver->ops->channel;
}
