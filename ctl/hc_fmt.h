/*
 * NAME
 *	hc_fmt - parsing and formatting of what operators type and read
 * DESCRIPTION
 *	Pure functions shared by heraldctl's operator commands: a point in
 *	time given as ISO 8601 or as an age ("30m" ago), lists of delivery
 *	ids, durations shown as "2h 05m" and rates as "12.5%". No I/O, no
 *	database: everything here is unit-tested on its own.
 * LIMITS
 *	Years 1970..9999; relative ages up to HC_FMT_MAX_AGE_S; at most
 *	HC_FMT_MAX_IDS ids in one list.
 */
#ifndef HC_FMT_H
#define HC_FMT_H

#include <stddef.h>
#include <stdint.h>

#define HC_FMT_MAX_AGE_S (100LL * 366 * 86400)  /* a century */
#define HC_FMT_MAX_IDS 10000

/*
 * Parse a point in time into Unix milliseconds.
 *	relative: one or more NUMBER UNIT pairs, units s, m (minutes), h, d,
 *	          w; "90s", "30m", "1h30m", "2d": that long before now_ms.
 *	absolute: ISO 8601 YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|+HH[:MM]|
 *	          -HH[:MM]|+HHMM]; without an offset it is local time (TZ).
 *	          A date alone is its midnight.
 * Returns 0 and *ms_p, or HD_E_INVALID with a message naming the
 * accepted forms in err.
 */
int hc_fmt_parse_time(const char *text, int64_t now_ms, int64_t *ms_p, char *err, size_t errlen);

/*
 * Days since 1970-01-01 of a proleptic Gregorian date (negative before).
 * month 1..12, day 1..31; no validation.
 */
int64_t hc_fmt_days_from_civil(int64_t year, unsigned month, unsigned day);

/*
 * Parse delivery ids from args: each a positive decimal or a
 * comma-separated list of them ("12 13,14"). Duplicates are kept once,
 * in first-seen order. ids has room for max. Returns 0 and *n_p, or
 * HD_E_INVALID (not a positive integer, naming it) / HD_E_TOOBIG (more
 * than max) with a message in err.
 */
int hc_fmt_parse_ids(int argc, char **argv, int64_t *ids, size_t max, size_t *n_p, char *err,
                     size_t errlen);

/*
 * A duration for people: "45s", "3m 07s", "2h 05m", "3d 04h"; negative
 * values print as "0s". Writes into buf (len > 0); returns buf.
 */
char *hc_fmt_age(double seconds, char *buf, size_t len);

/* A rate in [0, 1] as a percentage with one decimal ("12.5%"); "-" when rate < 0. */
char *hc_fmt_rate(double rate, char *buf, size_t len);

/* Unix milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC). Returns buf. */
char *hc_fmt_iso_ms(int64_t ms, char *buf, size_t len);

#endif
