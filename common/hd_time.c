/*
 * NAME
 *	hd_time - clocks and backoff
 * DESCRIPTION
 *	See hd_time.h. Jitter comes from libsodium's randombytes, which is
 *	already a dependency and needs no seeding.
 */
#include "hd_time.h"

#include <sodium.h>
#include <time.h>

int64_t hd_time_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t hd_time_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t hd_time_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms)
{
	int64_t delay = base_ms > 0 ? base_ms : 1;
	for (unsigned i = 0; i < attempt && delay < cap_ms; i++)
		delay *= 2;
	if (delay > cap_ms)
		delay = cap_ms;
	/* Scale into [delay/2, delay]: half fixed, half random. */
	int64_t half = delay / 2;
	int64_t jitter = half > 0 ? (int64_t)randombytes_uniform((uint32_t)(half > 0x7fffffff ? 0x7fffffff : half) + 1) : 0;
	int64_t out = delay - half + jitter;
	return out > 0 ? out : 1;
}
