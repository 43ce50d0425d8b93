/*
 * NAME
 *	hc_fmt - parsing and formatting of what operators type and read
 * DESCRIPTION
 *	See hc_fmt.h. Dates are converted with days_from_civil (Howard
 *	Hinnant's algorithm) rather than timegm(), which is not POSIX.
 */
#include "hc_fmt.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hd_err.h"

#define HC_FMT_FORMS \
	"expected an age such as 30m, 1h, 2d or 1h30m, or an ISO 8601 time such as " \
	"2024-07-01, 2024-07-01T12:00 or 2024-07-01T12:00:00Z"

int64_t hc_fmt_days_from_civil(int64_t year, unsigned month, unsigned day)
{
	year -= month <= 2;
	int64_t era = (year >= 0 ? year : year - 399) / 400;
	int64_t yoe = year - era * 400;                                  /* [0, 399] */
	int64_t mp = (int64_t)month + (month > 2 ? -3 : 9);              /* [0, 11] */
	int64_t doy = (153 * mp + 2) / 5 + (int64_t)day - 1;             /* [0, 365] */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;             /* [0, 146096] */
	return era * 146097 + doe - 719468;
}

static bool hc_fmt_is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned hc_fmt_days_in_month(int64_t y, unsigned m)
{
	static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && hc_fmt_is_leap(y) ? 29 : days[m - 1];
}

/* Exactly n decimal digits at *p; advances *p. */
static bool hc_fmt_digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static int hc_fmt_parse_relative(const char *text, int64_t now_ms, int64_t *ms_p)
{
	const char *p = text;
	int64_t total_s = 0;
	int pairs = 0;
	while (*p != '\0') {
		int64_t n = 0;
		int ndigits = 0;
		while (isdigit((unsigned char)*p)) {
			if (++ndigits > 12)
				return HD_E_INVALID;
			n = n * 10 + (*p - '0');
			p++;
		}
		if (ndigits == 0)
			return HD_E_INVALID;
		int64_t unit;
		switch (*p) {
		case 's': unit = 1; break;
		case 'm': unit = 60; break;
		case 'h': unit = 3600; break;
		case 'd': unit = 86400; break;
		case 'w': unit = 7 * 86400; break;
		default: return HD_E_INVALID;
		}
		p++;
		if (n > HC_FMT_MAX_AGE_S / unit)
			return HD_E_TOOBIG;
		total_s += n * unit;
		if (total_s > HC_FMT_MAX_AGE_S)
			return HD_E_TOOBIG;
		pairs++;
	}
	if (pairs == 0)
		return HD_E_INVALID;
	*ms_p = now_ms - total_s * 1000;
	return 0;
}

static int hc_fmt_parse_iso(const char *text, int64_t *ms_p)
{
	const char *p = text;
	int y, mo, d, h = 0, mi = 0, s = 0;
	int64_t frac_ms = 0;
	if (!hc_fmt_digits(&p, 4, &y) || *p++ != '-' || !hc_fmt_digits(&p, 2, &mo) ||
	    *p++ != '-' || !hc_fmt_digits(&p, 2, &d))
		return HD_E_INVALID;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 ||
	    (unsigned)d > hc_fmt_days_in_month(y, (unsigned)mo))
		return HD_E_INVALID;

	bool has_zone = false;
	int64_t offset_s = 0;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!hc_fmt_digits(&p, 2, &h) || *p++ != ':' || !hc_fmt_digits(&p, 2, &mi))
			return HD_E_INVALID;
		if (*p == ':') {
			p++;
			if (!hc_fmt_digits(&p, 2, &s))
				return HD_E_INVALID;
			if (*p == '.' || *p == ',') {
				p++;
				int nd = 0;
				int64_t scale = 100;
				while (isdigit((unsigned char)*p)) {
					if (++nd > 9)
						return HD_E_INVALID;
					frac_ms += (*p - '0') * scale;
					scale /= 10;
					p++;
				}
				if (nd == 0)
					return HD_E_INVALID;
			}
		}
		if (h > 23 || mi > 59 || s > 59)
			return HD_E_INVALID;
		if (*p == 'Z' || *p == 'z') {
			has_zone = true;
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1;
			int oh, om = 0;
			if (!hc_fmt_digits(&p, 2, &oh))
				return HD_E_INVALID;
			if (*p == ':')
				p++;
			if (isdigit((unsigned char)*p) && !hc_fmt_digits(&p, 2, &om))
				return HD_E_INVALID;
			if (oh > 23 || om > 59)
				return HD_E_INVALID;
			has_zone = true;
			offset_s = sign * (oh * 3600 + om * 60);
		}
	}
	if (*p != '\0')
		return HD_E_INVALID;

	int64_t epoch_s;
	if (has_zone) {
		epoch_s = hc_fmt_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 +
		          mi * 60 + s - offset_s;
	} else {
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = y - 1900;
		tm.tm_mon = mo - 1;
		tm.tm_mday = d;
		tm.tm_hour = h;
		tm.tm_min = mi;
		tm.tm_sec = s;
		tm.tm_isdst = -1;
		time_t t = mktime(&tm);
		if (t == (time_t)-1)
			return HD_E_INVALID;
		epoch_s = (int64_t)t;
	}
	*ms_p = epoch_s * 1000 + frac_ms;
	return 0;
}

int hc_fmt_parse_time(const char *text, int64_t now_ms, int64_t *ms_p, char *err, size_t errlen)
{
	if (text == NULL || text[0] == '\0') {
		snprintf(err, errlen, "empty time; " HC_FMT_FORMS);
		return HD_E_INVALID;
	}
	/* ISO dates start with four digits and a dash; ages never do. */
	bool iso = strlen(text) >= 5 && isdigit((unsigned char)text[0]) &&
	           isdigit((unsigned char)text[1]) && isdigit((unsigned char)text[2]) &&
	           isdigit((unsigned char)text[3]) && text[4] == '-';
	int rc = iso ? hc_fmt_parse_iso(text, ms_p) : hc_fmt_parse_relative(text, now_ms, ms_p);
	if (rc == HD_E_TOOBIG) {
		snprintf(err, errlen, "'%.64s' is too far back (at most 100 years)", text);
		return HD_E_INVALID;
	}
	if (rc != 0) {
		snprintf(err, errlen, "cannot read '%.64s' as a time: " HC_FMT_FORMS, text);
		return HD_E_INVALID;
	}
	return 0;
}

/* Add id unless present. */
static int hc_fmt_add_id(int64_t id, int64_t *ids, size_t max, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		if (ids[i] == id)
			return 0;
	if (*n >= max)
		return HD_E_TOOBIG;
	ids[(*n)++] = id;
	return 0;
}

int hc_fmt_parse_ids(int argc, char **argv, int64_t *ids, size_t max, size_t *n_p, char *err,
                     size_t errlen)
{
	*n_p = 0;
	for (int a = 0; a < argc; a++) {
		const char *p = argv[a];
		for (;;) {
			const char *start = p;
			int64_t v = 0;
			bool ok = isdigit((unsigned char)*p) != 0;
			while (isdigit((unsigned char)*p)) {
				if (v > (INT64_MAX - 9) / 10) {
					ok = false;
					break;
				}
				v = v * 10 + (*p - '0');
				p++;
			}
			size_t toklen = strcspn(start, ",");
			if (!ok || v <= 0 || (*p != ',' && *p != '\0')) {
				snprintf(err, errlen, "'%.*s' is not a delivery id (a positive integer)",
				         (int)(toklen > 64 ? 64 : toklen), start);
				return HD_E_INVALID;
			}
			if (hc_fmt_add_id(v, ids, max, n_p) != 0) {
				snprintf(err, errlen, "too many delivery ids (at most %zu at once)", max);
				return HD_E_TOOBIG;
			}
			if (*p == '\0')
				break;
			p++; /* the comma; an id must follow */
		}
	}
	return 0;
}

char *hc_fmt_age(double seconds, char *buf, size_t len)
{
	if (!(seconds > 0)) /* also NaN */
		seconds = 0;
	if (seconds > 1e15)
		seconds = 1e15;
	long long s = (long long)seconds; /* truncates: seconds > 0 here */
	if (s < 60)
		snprintf(buf, len, "%llds", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm %02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh %02lldm", s / 3600, (s % 3600) / 60);
	else
		snprintf(buf, len, "%lldd %02lldh", s / 86400, (s % 86400) / 3600);
	return buf;
}

char *hc_fmt_rate(double rate, char *buf, size_t len)
{
	if (!(rate >= 0))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f%%", rate * 100.0);
	return buf;
}

char *hc_fmt_iso_ms(int64_t ms, char *buf, size_t len)
{
	int64_t s = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
	int64_t frac = ms - s * 1000;
	time_t t = (time_t)s;
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "?");
		return buf;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
	return buf;
}
