/*
 * NAME
 *	hd_http - libcurl multi plumbing shared by the HTTP channel drivers
 * DESCRIPTION
 *	One curl multi handle driven by the worker's zmq_poll loop: curl
 *	tells us (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION) which
 *	sockets to watch and when to wake; hd_http_poll_items exposes those
 *	sockets as zmq_pollitem_t fds, hd_http_handle feeds readiness and
 *	expired timers back with curl_multi_socket_action and completes
 *	finished transfers through their callbacks. No threads, no signals
 *	(CURLOPT_NOSIGNAL), connections are kept alive and reused across
 *	requests by the multi handle's connection cache, at most
 *	max_host_connections per host:port. Requests beyond that wait in
 *	hd_http's own FIFO per host, without an easy handle, and are handed
 *	to curl only when a transfer to that host completes, so a request's
 *	timeout (CURLOPT_TIMEOUT_MS, which curl counts from when it gets the
 *	transfer) never runs while it waits for a connection; the worker's
 *	lease bounds the wait. Easy handles are reset and reused. Redirects
 *	are not followed. Response bodies are captured up to
 *	HD_HTTP_MAX_BODY_BYTES.
 *
 *	Also the small pure helpers both drivers need: Retry-After parsing,
 *	URL redaction for logs, percent-encoding, HMAC-SHA256 + base64
 *	(libsodium) and loading secrets from a file or the environment.
 *	Nothing here logs.
 * OWNERSHIP
 *	hd_http_start copies everything it needs from the request; the
 *	response passed to the done callback is valid only during the call.
 */
#ifndef HD_HTTP_H
#define HD_HTTP_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "hd_wire.h"

#define HD_HTTP_MAX_BODY_BYTES  (64u * 1024u)   /* response bytes kept */
#define HD_HTTP_MAX_SECRET_BYTES 4096u
#define HD_HTTP_MAX_RETRY_AFTER_MS (24LL * 3600 * 1000)
/*
 * Defaults of the drivers' max_host_connections and max_connections.
 * 32 per host: IM and SMS groups mostly share one provider host
 * (hooks.slack.com, qyapi.weixin.qq.com, ...), whose throughput over
 * one worker is connections / round trip: 8 connections at a 150 ms
 * internet round trip give ~50 requests/s for every group of that
 * provider together, 32 give ~200/s. Providers limit per webhook or
 * per account, not per connection, and 32 kept-alive connections are
 * what common HTTP client pools use against one API host.
 */
#define HD_HTTP_DEFAULT_HOST_CONNECTIONS 32   /* open at once to one host:port */
#define HD_HTTP_DEFAULT_CONNECTIONS 64        /* kept alive across all hosts */
#define HD_HTTP_MAX_CONNECTIONS 10000         /* configuration bound for both */

typedef struct hd_http hd_http_t;

typedef struct hd_http_request {
	const char *method;          /* "GET" or "POST" */
	const char *url;
	const char *content_type;    /* POST body type; NULL for none */
	const char *body;            /* POST body; NULL for none */
	size_t body_len;
	const char *userpwd;         /* "user:password" for HTTP basic auth; NULL for none */
	bool https_only;             /* refuse any scheme but https */
} hd_http_request_t;

typedef struct hd_http_response {
	long status;                 /* HTTP status; 0 when no response arrived */
	int transport_error;         /* 0, or the CURLcode that ended the transfer */
	bool timed_out;              /* transport_error was a timeout */
	bool aborted;                /* hd_http_destroy ended it before completion */
	const char *error;           /* transport error text ("" when none) */
	const char *body;            /* NUL-terminated, at most HD_HTTP_MAX_BODY_BYTES */
	size_t body_len;
	int64_t retry_after_ms;      /* Retry-After header; -1 when absent or unparsable */
} hd_http_response_t;

/* Called exactly once per started request. */
typedef void (*hd_http_done_fn)(void *arg, const hd_http_response_t *response);

/*
 * New engine. connect_timeout_ms / timeout_ms apply to every request
 * (CURLOPT_CONNECTTIMEOUT_MS / CURLOPT_TIMEOUT_MS, counted from when a
 * connection slot is free). max_host_connections: transfers at once to
 * one host:port (0 = HD_HTTP_DEFAULT_HOST_CONNECTIONS); max_connections:
 * connections kept alive across all hosts, also the idle easy handles
 * kept for reuse (0 = HD_HTTP_DEFAULT_CONNECTIONS). Caller owns it.
 */
hd_http_t *hd_http_new(int64_t connect_timeout_ms, int64_t timeout_ms, size_t max_host_connections,
		       size_t max_connections);

/*
 * Start a request; never blocks. 0, or HD_E_INVALID (bad request,
 * nothing started, done not called). done is called from
 * hd_http_handle or hd_http_destroy, never from here.
 */
int hd_http_start(hd_http_t *self, const hd_http_request_t *req, hd_http_done_fn done, void *arg);

/* The sockets curl wants watched, at most max; returns the count. */
size_t hd_http_poll_items(hd_http_t *self, zmq_pollitem_t *items, size_t max);

/* Feed readiness of items (as filled by poll_items) and expired timers. */
void hd_http_handle(hd_http_t *self, const zmq_pollitem_t *items, size_t count);

/* Milliseconds until curl's timer fires (0 = now), -1 when none. */
int64_t hd_http_timeout_ms(hd_http_t *self);

/* Requests started and not yet completed (running or waiting). */
size_t hd_http_active(hd_http_t *self);

/* Of those, the ones waiting for a connection to their host (not yet in curl). */
size_t hd_http_waiting(hd_http_t *self);

/* Complete every active request with aborted = true, then free; NULL-safe. */
void hd_http_destroy(hd_http_t **self_p);

/*
 * Parse a Retry-After value: delay-seconds ("120") or an HTTP-date
 * (IMF-fixdate, RFC 850 or asctime), relative to now_unix_s. Returns
 * milliseconds (0 for a date in the past, capped at
 * HD_HTTP_MAX_RETRY_AFTER_MS), or -1 when value is not either form.
 */
int64_t hd_http_parse_retry_after(const char *value, int64_t now_unix_s);

/*
 * Write url without anything that may carry a secret (userinfo, path,
 * query, fragment): "https://hooks.slack.com/...". Always NUL-terminates.
 */
void hd_http_redact_url(const char *url, char *out, size_t outlen);

/* Percent-encode every byte but RFC 3986 unreserved ones. Caller owns the result. */
char *hd_http_urlencode(const char *s, size_t len);

/*
 * base64 (standard alphabet, padded) of HMAC-SHA256(key, msg) into out
 * (at least 45 bytes). Returns 0 or HD_E_INVALID when outlen is short.
 */
int hd_http_hmac_sha256_base64(const void *key, size_t key_len, const void *msg, size_t msg_len,
			       char *out, size_t outlen);

/*
 * Load a secret from file (trailing whitespace stripped) or, when file
 * is NULL, from the environment variable env. Caller owns *out. 0, or
 * HD_E_CONFIG with a reason in err that never contains the secret.
 */
int hd_http_secret_load(const char *file, const char *env, char **out, char *err, size_t errlen);

/* Wipe and free a secret; NULL-safe; sets *secret_p to NULL. */
void hd_http_secret_free(char **secret_p);

/*
 * Copy provider text into a result field of dstlen bytes: control
 * characters become spaces, bytes that are not UTF-8 become '?', and
 * truncation never splits a character. Always NUL-terminates.
 */
void hd_http_copy_text(char *dst, size_t dstlen, const char *src, size_t srclen);

/*
 * Fill out (provider left as is) with outcome, provider code and detail
 * (detail_len bytes, sanitized by hd_http_copy_text).
 */
void hd_http_result_set(hd_wire_result_t *out, hd_outcome_kind_t outcome, const char *code,
			const char *detail, size_t detail_len);

/*
 * Outcome for a response without an HTTP answer: RETRY, code "timeout",
 * "transport" or "worker-stopping" (aborted). Returns false when r has
 * an HTTP answer (out untouched).
 */
bool hd_http_transport_result(const hd_http_response_t *r, hd_wire_result_t *out);

/* True when url is https (confidential messages go nowhere else). */
bool hd_http_is_https(const char *url);

/*
 * Configuration helpers for the drivers (libconfig). All return 0, or
 * HD_E_CONFIG with "file:line: name: reason" in err.
 *   check_keys: refuse members of group not in allowed (NULL-terminated).
 *   int: integer member within [min, max]; def when absent.
 *   string: string member; *out NULL when absent and not required
 *     (borrowed from the config tree).
 *   secret: from secret_file or secret_env (exactly one); *out NULL when
 *     neither is set and not required; caller frees with hd_http_secret_free.
 */
int hd_http_cfg_check_keys(const config_setting_t *group, const char *const *allowed,
			   char *err, size_t errlen);
int hd_http_cfg_int(const config_setting_t *group, const char *name, int64_t def, int64_t min,
		    int64_t max, int64_t *out, char *err, size_t errlen);
int hd_http_cfg_string(const config_setting_t *group, const char *name, bool required,
		       const char **out, char *err, size_t errlen);
int hd_http_cfg_secret(const config_setting_t *group, bool required, char **out,
		       char *err, size_t errlen);

#endif
