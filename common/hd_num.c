/*
 * NAME
 *	hd_num - whole numbers from command-line text (see hd_num.h)
 */
#include "hd_num.h"

#include <errno.h>
#include <stdlib.h>

bool hd_num_parse_long(const char *s, long lo, long hi, long *out)
{
	if (s == NULL || *s == '\0')
		return false;
	char *end = NULL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}
