/*
 * NAME
 *	hd_time - clocks and backoff
 * DESCRIPTION
 *	Wall-clock microseconds for timestamps that are stored; monotonic
 *	milliseconds for timeouts that are waited on. Backoff is
 *	exponential with full jitter so that many clients retrying after
 *	one outage do not return in lock-step.
 */
#ifndef HD_TIME_H
#define HD_TIME_H

#include <stdint.h>

/* Microseconds since the Unix epoch. */
int64_t hd_time_now_us(void);

/* Milliseconds on a monotonic clock (arbitrary origin). */
int64_t hd_time_mono_ms(void);

/*
 * Delay before retry number attempt (0-based): min(cap, base * 2^attempt)
 * scaled by a random factor in [0.5, 1.0]. Never below 1.
 */
int64_t hd_time_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms);

#endif
