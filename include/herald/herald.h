/*
 * NAME
 *	herald.h - libherald, the producer library of Herald
 * DESCRIPTION
 *	Applications build a message (herald_msg_t) and submit it to heraldd
 *	through a client (herald_client_t), either synchronously
 *	(herald_submit) or pipelined (herald_submit_async + a callback).
 *	Delivery to heraldd is at-least-once: a request whose attempt times
 *	out, or that the server answers with a retryable error (unavailable,
 *	busy, timeout), is resent with the same idempotency key, so the
 *	server stores the message once. If the application sets no key the
 *	library generates a random one at the first submit and keeps it on
 *	the message.
 *
 *	HERALD_E_UNAVAILABLE means "no answer": the message may or may not
 *	have been stored. Resubmitting it with the same idempotency key
 *	(herald_result_t.idempotency_key) is always safe.
 * THREADS
 *	A client is used by one thread at a time; different clients are
 *	independent (each owns its own ZeroMQ context and socket). Messages
 *	are plain data and may be built in any thread.
 * ERRORS
 *	Functions return HERALD_OK (0) or a negative HERALD_E_* status.
 *	Out of memory aborts the process (Herald's policy everywhere).
 */
#ifndef HERALD_HERALD_H
#define HERALD_HERALD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(HERALD_BUILDING_LIBRARY)
#define HERALD_EXPORT __attribute__((visibility("default")))
#else
#define HERALD_EXPORT
#endif

#define HERALD_VERSION_STRING    "0.1.0"
#define HERALD_DEFAULT_ENDPOINT  "tcp://127.0.0.1:7711"

/* Protocol ceilings (docs/PROTOCOL.md); setters refuse anything larger. */
#define HERALD_MAX_APP_BYTES         64u
#define HERALD_MAX_ADDR_BYTES        254u
#define HERALD_MAX_RECIPIENTS        10000u                /* to + cc */
#define HERALD_MAX_SUBJECT_BYTES     998u
#define HERALD_MAX_BODY_BYTES        (4u * 1024u * 1024u)
#define HERALD_MAX_HTML_BYTES        (4u * 1024u * 1024u)
#define HERALD_MAX_REASON_BYTES      1024u                 /* cc_reason */
#define HERALD_MAX_ATTACHMENTS       32u
#define HERALD_MAX_ATTACH_NAME_BYTES 255u
#define HERALD_MAX_MIME_BYTES        127u
#define HERALD_MAX_ATTACH_BYTES      (25u * 1024u * 1024u) /* each */
#define HERALD_MAX_IDEM_KEY_BYTES    128u
#define HERALD_MAX_TAGS              32u
#define HERALD_MAX_TAG_KEY_BYTES     64u
#define HERALD_MAX_TAG_VALUE_BYTES   256u
#define HERALD_MAX_BULK_TEXT_BYTES   2048u
#define HERALD_MAX_FINDINGS          16u   /* kept in a herald_result_t */

/* Status codes. */
enum {
	HERALD_OK            = 0,
	HERALD_E_REJECTED    = -1, /* the server refused it; resending won't help */
	HERALD_E_UNAVAILABLE = -2, /* no answer after all retries: outcome unknown */
	HERALD_E_INVAL       = -3, /* local misuse: NULL, over a limit, bad state */
	HERALD_E_TIMEOUT     = -4  /* flush deadline passed, requests still pending */
};

typedef enum { HERALD_EMAIL, HERALD_IM, HERALD_SMS } herald_channel_t;

enum {
	HERALD_FLAG_IMPORTANT    = 1u << 0,
	HERALD_FLAG_MAJOR        = 1u << 1,
	HERALD_FLAG_CONFIDENTIAL = 1u << 2,
	HERALD_FLAG_BULK         = 1u << 3,
	HERALD_FLAG_NEEDS_REPLY  = 1u << 4
};

typedef enum {
	HERALD_PURPOSE_NONE,
	HERALD_PURPOSE_SERVICE,
	HERALD_PURPOSE_URGENT,
	HERALD_PURPOSE_MARKETING
} herald_purpose_t;

typedef struct herald_client herald_client_t;
typedef struct herald_msg herald_msg_t;

/*
 * One policy finding reported with an accepted message, or with a
 * submission the policy refused (code "policy"); strings truncated.
 */
typedef struct herald_finding {
	char rule[64];
	char clause[16];    /* POLICY.md clause ID, e.g. "E1" */
	char action[16];    /* reject | hold | tag | defer | warn */
	char severity[16];  /* info | minor | major | critical */
	char reason[256];
} herald_finding_t;

/*
 * The outcome of one submission. Caller-allocated for herald_submit;
 * library-owned and valid only during the callback for pipelined
 * submissions. Every string is NUL-terminated ("" when absent).
 */
typedef struct herald_result {
	int status;                 /* HERALD_OK or HERALD_E_* */
	/* status == HERALD_OK */
	int64_t id;                 /* message id assigned by heraldd */
	char klass[16];             /* general | important | bulk */
	char state[16];             /* queued | held */
	int duplicate;              /* 1: an earlier attempt was already stored */
	size_t finding_count;       /* entries used in findings[] (also for code "policy") */
	size_t findings_total;      /* findings in the reply (> count: truncated) */
	herald_finding_t findings[HERALD_MAX_FINDINGS];
	/* status != HERALD_OK */
	char code[32];              /* server error name ("invalid", "busy", ...) */
	char field[96];             /* field path, e.g. "msg.to[0]"; "" if none */
	char reason[256];
	int retryable;              /* 1: the last error was retryable */
	/* always */
	unsigned attempts;          /* attempts made (0: refused before sending) */
	char idempotency_key[HERALD_MAX_IDEM_KEY_BYTES + 1];
	void *user;                 /* pipelined: the pointer given at submit */
} herald_result_t;

/* Called once per accepted pipelined submission; res is valid during the call. */
typedef void (herald_result_fn)(const herald_result_t *res, void *arg);

/* Static description of status (never NULL). */
HERALD_EXPORT const char *herald_strerror(int status);

/* ---- client ---------------------------------------------------------- */

/*
 * Connect to heraldd at endpoint (NULL: HERALD_DEFAULT_ENDPOINT) as
 * application app (1..HERALD_MAX_APP_BYTES of UTF-8). The connection is
 * made in the background and re-made whenever heraldd restarts; nothing
 * blocks here. Returns a client the caller owns, or NULL with a message
 * in err (errlen bytes, may be NULL/0).
 */
HERALD_EXPORT herald_client_t *herald_client_new(const char *endpoint, const char *app,
						 char *err, size_t errlen);

/*
 * NULL-safe. Requests still pending are abandoned: each pipelined one is
 * reported to the callback with HERALD_E_UNAVAILABLE first. Sets *self_p
 * to NULL.
 */
HERALD_EXPORT void herald_client_destroy(herald_client_t **self_p);

/* Wait for a reply this long per attempt (1..3600000; default 5000). */
HERALD_EXPORT int herald_client_set_timeout_ms(herald_client_t *self, int timeout_ms);

/* Resends after a timeout or retryable error (0..100; default 3). */
HERALD_EXPORT int herald_client_set_retries(herald_client_t *self, int retries);

/*
 * Delay before resend n (0-based) is min(max_ms, base_ms * 2^n) scaled
 * by a random factor in [0.5, 1] (defaults 100 and 5000). A server's
 * retry_after_ms hint is honoured when longer.
 */
HERALD_EXPORT int herald_client_set_backoff_ms(herald_client_t *self, int base_ms, int max_ms);

/*
 * Most requests outstanding at once (1..65536; default 64). Only while
 * nothing is outstanding, else HERALD_E_INVAL.
 */
HERALD_EXPORT int herald_client_set_window(herald_client_t *self, int window);

/* Where pipelined results go (fn may be NULL: results are discarded). */
HERALD_EXPORT int herald_client_set_callback(herald_client_t *self, herald_result_fn *fn,
					     void *arg);

/* Requests sent and not yet answered or given up. */
HERALD_EXPORT size_t herald_client_outstanding(const herald_client_t *self);

/*
 * Synchronous submit: borrows msg (which keeps its idempotency key for a
 * later resubmit), fills *res, returns res->status. Pipelined results
 * completing meanwhile are delivered to the callback.
 */
HERALD_EXPORT int herald_submit(herald_client_t *self, herald_msg_t *msg, herald_result_t *res);

/*
 * Pipelined submit. Always takes ownership of *msg_p and sets it to
 * NULL. Waits (processing replies) until fewer than window requests are
 * outstanding, then sends. Returns HERALD_OK when the message was
 * queued: its result reaches the callback exactly once, from inside a
 * later herald_submit_async / herald_submit / herald_client_flush /
 * herald_client_destroy. Returns HERALD_E_INVAL (no callback) for bad
 * arguments or a message that cannot be encoded. The callback must not
 * call functions of this client.
 */
HERALD_EXPORT int herald_submit_async(herald_client_t *self, herald_msg_t **msg_p, void *user);

/*
 * Process replies until nothing is outstanding (HERALD_OK) or timeout_ms
 * passes (HERALD_E_TIMEOUT; requests stay pending). timeout_ms < 0 waits
 * as long as retries take.
 */
HERALD_EXPORT int herald_client_flush(herald_client_t *self, int timeout_ms);

/*
 * One ping, no resend: HERALD_OK when heraldd answers within timeout_ms,
 * HERALD_E_REJECTED when it answers with an error, else
 * HERALD_E_UNAVAILABLE.
 */
HERALD_EXPORT int herald_client_ping(herald_client_t *self, int timeout_ms);

/* ---- message --------------------------------------------------------- */

/* Caller owns the result; NULL only for an unknown channel. */
HERALD_EXPORT herald_msg_t *herald_msg_new(herald_channel_t channel);

/* NULL-safe; sets *self_p to NULL. */
HERALD_EXPORT void herald_msg_destroy(herald_msg_t **self_p);

/*
 * Setters copy their arguments. They return HERALD_OK or HERALD_E_INVAL
 * (NULL, empty where a value is required, not UTF-8, over a limit) and
 * leave the message unchanged on failure. Address syntax and channel
 * rules (cc, cc_reason, html and attachments are email only; purpose is
 * required for SMS and refused elsewhere) are checked by heraldd, which
 * names the offending field in its error.
 */
HERALD_EXPORT int herald_msg_set_from(herald_msg_t *self, const char *from);
HERALD_EXPORT int herald_msg_add_to(herald_msg_t *self, const char *addr);
HERALD_EXPORT int herald_msg_add_cc(herald_msg_t *self, const char *addr);
HERALD_EXPORT int herald_msg_set_cc_reason(herald_msg_t *self, const char *reason);
HERALD_EXPORT int herald_msg_set_subject(herald_msg_t *self, const char *subject);
HERALD_EXPORT int herald_msg_set_body(herald_msg_t *self, const char *body);
HERALD_EXPORT int herald_msg_set_html(herald_msg_t *self, const char *html);
/* Copies size bytes of data (data may be NULL only when size is 0). */
HERALD_EXPORT int herald_msg_add_attachment(herald_msg_t *self, const char *name,
					    const char *mime_type, const void *data,
					    size_t size);
/* ORs HERALD_FLAG_* bits into the message's flags. */
HERALD_EXPORT int herald_msg_set_flag(herald_msg_t *self, unsigned flags);
HERALD_EXPORT int herald_msg_set_purpose(herald_msg_t *self, herald_purpose_t purpose);
/* Unix seconds (> 0); 0 clears. */
HERALD_EXPORT int herald_msg_set_reply_by(herald_msg_t *self, int64_t unix_s);
/* The bulk application; each text 1..HERALD_MAX_BULK_TEXT_BYTES. */
HERALD_EXPORT int herald_msg_set_bulk(herald_msg_t *self, const char *purpose,
				      const char *audience, uint32_t recipient_count,
				      const char *summary);
HERALD_EXPORT int herald_msg_set_idempotency_key(herald_msg_t *self, const char *key);
/* Adds a tag, or replaces the value of an existing key. */
HERALD_EXPORT int herald_msg_add_tag(herald_msg_t *self, const char *key, const char *value);

/* The idempotency key (set or generated), or NULL before the first submit. */
HERALD_EXPORT const char *herald_msg_idempotency_key(const herald_msg_t *self);

#ifdef __cplusplus
}
#endif

#endif
