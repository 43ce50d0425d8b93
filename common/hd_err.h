/*
 * NAME
 *	hd_err - the one error space of Herald
 * DESCRIPTION
 *	0 is success; failures are negative HD_E_* codes from one X-macro
 *	table, which also yields the stable wire name sent to producers
 *	(docs/PROTOCOL.md) and a human message. Keep it small: a code exists
 *	only when a caller reacts to it differently from the others.
 */
#ifndef HD_ERR_H
#define HD_ERR_H

#include <stdbool.h>

/*     symbol             wire name        retryable  message */
#define HD_ERRNO_MAP(X)                                                        \
	X(MALFORMED,      "malformed",      0, "malformed frame")              \
	X(VERSION,        "version",        0, "unsupported protocol version") \
	X(UNKNOWN_FIELD,  "unknown_field",  0, "unknown field")                \
	X(TYPE,           "wrong_type",     0, "wrong type")                   \
	X(MISSING,        "missing",        0, "required field missing")       \
	X(TOOBIG,         "too_big",        0, "limit exceeded")               \
	X(INVALID,        "invalid",        0, "invalid value")                \
	X(POLICY,         "policy",         0, "refused by policy")            \
	X(UNAVAILABLE,    "unavailable",    1, "service unavailable")          \
	X(BUSY,           "busy",           1, "too many requests in flight")  \
	X(TIMEOUT,        "timeout",        1, "timed out")                    \
	X(IO,             "io",             1, "input/output error")           \
	X(CONFIG,         "config",         0, "bad configuration")            \
	X(NOTFOUND,       "not_found",      0, "not found")                    \
	X(INTERNAL,       "internal",       0, "internal error")

typedef enum hd_err {
	HD_OK = 0,
#define HD_ERR_ENUM_(sym, wire, retry, text) HD_E_##sym,
	HD_E_FIRST_ = -100,
	HD_ERRNO_MAP(HD_ERR_ENUM_)
#undef HD_ERR_ENUM_
	HD_E_LAST_
} hd_err_t;

/* Human-readable message for code. Never NULL; static storage. */
const char *hd_strerror(int code);

/* Stable wire name for code ("malformed", ...). Never NULL; static storage. */
const char *hd_err_name(int code);

/* Code for a wire name, or HD_E_INTERNAL for an unknown name. */
int hd_err_from_name(const char *name);

/* True when the caller should retry the same request later. */
bool hd_err_is_retryable(int code);

#endif
