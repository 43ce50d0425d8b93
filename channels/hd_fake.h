/*
 * NAME
 *	hd_fake - a scriptable channel driver for tests
 * DESCRIPTION
 *	Sends nothing. The outcome of a job is decided by markers in its
 *	recipient (else in the message body, for channels whose addresses
 *	cannot hold a '+'): "+fail" -> failed, code "550"; "+retry" ->
 *	retry, code "451", with the configured retry_after_ms; "+slow" ->
 *	delivered after slow_ms; anything else -> delivered after delay_ms
 *	(failed and retry also wait delay_ms). Every delivered job appends
 *	one line "DELIVERY_ID RECIPIENT ATTEMPT\n" to record_file when one
 *	is configured, so integration tests can count sends. Timers live in
 *	a sorted list driven by handle/timeout_ms: no threads, no blocking,
 *	and done is never called from inside submit.
 *	Configuration group (every setting optional):
 *	  channel        "email" | "im" | "sms"    (default "email")
 *	  delay_ms       0..3600000                (default 0)
 *	  slow_ms        0..3600000                (default 1000)
 *	  retry_after_ms 0..HD_WIRE_MAX_RETRY_AFTER_MS (default 0 = none)
 *	  max_in_flight  1..100000; beyond, submit says HD_E_BUSY (default 10000)
 *	  record_file    path, opened O_APPEND      (default none)
 * OWNERSHIP
 *	The instance owns its jobs from submit until it hands them to done.
 */
#ifndef HD_FAKE_H
#define HD_FAKE_H

#include "hd_channel.h"

extern const hd_channel_ops_t hd_fake_ops;

/* The channel an open fake instance serves (its "channel" setting). */
hd_channel_t hd_fake_channel(const void *self);

#endif
