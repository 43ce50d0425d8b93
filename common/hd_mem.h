/*
 * NAME
 *	hd_mem - allocation that succeeds or does not return
 * DESCRIPTION
 *	Every allocation in Herald goes through these wrappers. Out of
 *	memory aborts through hd_panic: sizes that come from input are
 *	bounded by the decoders before they reach here, so running out is
 *	an environment failure nobody can handle locally.
 */
#ifndef HD_MEM_H
#define HD_MEM_H

#include <stddef.h>

/* Abort with a core dump: a broken invariant, i.e. a bug. Never returns. */
_Noreturn void hd_panic(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* Caller owns the result; never NULL. */
void *hd_malloc(size_t size);
void *hd_calloc(size_t count, size_t size);
void *hd_realloc(void *ptr, size_t size);
char *hd_strdup(const char *s);
char *hd_strndup(const char *s, size_t len);

/* free(*p) and set *p to NULL; NULL-safe. */
void hd_free(void *p_);

#endif
