/*
 * NAME
 *	hd_log - one key=value line per decision, on stderr
 * DESCRIPTION
 *	Log once, where the decision is made. Each line is
 *	"ts=... level=... prog=... event=... <fields>"; journald or a file
 *	collects stderr. Control characters in the formatted line are
 *	replaced so input copied into a field cannot forge a line.
 *	The program name and level are the only global state.
 */
#ifndef HD_LOG_H
#define HD_LOG_H

typedef enum { HD_LOG_DEBUG, HD_LOG_INFO, HD_LOG_WARN, HD_LOG_ERROR } hd_log_level_t;

/* Set the program name (borrowed; must outlive logging) and threshold. */
void hd_log_init(const char *prog, hd_log_level_t threshold);

/* Parse "debug|info|warn|error"; returns -1 for anything else. */
int hd_log_level_parse(const char *name);

/* Emit one line: event is a dotted name, fmt more key=value fields. */
void hd_log(hd_log_level_t level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define hd_debug(ev, ...) hd_log(HD_LOG_DEBUG, ev, __VA_ARGS__)
#define hd_info(ev, ...)  hd_log(HD_LOG_INFO, ev, __VA_ARGS__)
#define hd_warn(ev, ...)  hd_log(HD_LOG_WARN, ev, __VA_ARGS__)
#define hd_error(ev, ...) hd_log(HD_LOG_ERROR, ev, __VA_ARGS__)

#endif
