/*
 * NAME
 *	hd_log - one key=value line per decision, on stderr
 * DESCRIPTION
 *	Formats into a stack buffer and writes the line with one write(2)
 *	so concurrent processes sharing stderr do not interleave lines.
 */
#include "hd_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HD_LOG_LINE_MAX 2048

static const char *hd_log_prog = "herald";
static hd_log_level_t hd_log_threshold = HD_LOG_INFO;
static const char *const hd_log_names[] = {"debug", "info", "warn", "error"};

void hd_log_init(const char *prog, hd_log_level_t threshold)
{
	hd_log_prog = prog;
	hd_log_threshold = threshold;
}

int hd_log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, hd_log_names[i]) == 0)
			return i;
	return -1;
}

void hd_log(hd_log_level_t level, const char *event, const char *fmt, ...)
{
	if (level < hd_log_threshold)
		return;

	char line[HD_LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);

	int n = snprintf(line, sizeof(line),
			 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s prog=%s event=%s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
			 hd_log_names[level], hd_log_prog, event);
	if (n < 0)
		return;
	size_t used = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;

	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	va_end(ap);
	if (m > 0)
		used += (size_t)m < sizeof(line) - used ? (size_t)m : sizeof(line) - used - 1;

	for (size_t i = 0; i < used; i++)
		if ((unsigned char)line[i] < 0x20)
			line[i] = ' ';
	if (used >= sizeof(line) - 1)
		used = sizeof(line) - 2;
	line[used++] = '\n';

	ssize_t w = write(STDERR_FILENO, line, used);
	(void)w;
}
