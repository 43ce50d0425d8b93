/*
 * NAME
 *	hd_mem - allocation that succeeds or does not return
 * DESCRIPTION
 *	Thin wrappers over the C allocator that turn failure into hd_panic.
 */
#include "hd_mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hd_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("level=panic msg=\"", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\"\n", stderr);
	va_end(ap);
	abort();
}

void *hd_malloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (!p)
		hd_panic("out of memory allocating %zu bytes", size);
	return p;
}

void *hd_calloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		hd_panic("out of memory allocating %zu x %zu bytes", count, size);
	return p;
}

void *hd_realloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (!p)
		hd_panic("out of memory reallocating %zu bytes", size);
	return p;
}

char *hd_strndup(const char *s, size_t len)
{
	char *p = hd_malloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *hd_strdup(const char *s)
{
	return hd_strndup(s, strlen(s));
}

void hd_free(void *p_)
{
	void **p = p_;
	if (p && *p) {
		free(*p);
		*p = NULL;
	}
}
