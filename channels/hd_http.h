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
 *	Above the engine, hd_http_jobs_* keep the jobs of one driver: the
 *	in-flight count against max_in_flight and the queue of jobs decided
 *	without the network, reported from handle(), never from submit().
 *
 *	Also the small pure helpers both drivers need: Retry-After parsing,
 *	URL redaction for logs, percent-encoding, HMAC-SHA256 + base64
 *	(libsodium) and loading secrets from a file or the environment.
 *	Nothing here logs.
 * OWNERSHIP
 *	hd_http_start copies everything it needs from the request; the
 *	response passed to the done callback is valid only during the call.
 *	hd_http_jobs owns each job from take until it hands it to the
 *	worker's done callback, and owns its engine.
 */
#ifndef HD_HTTP_H
#define HD_HTTP_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "hd_channel.h"
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

/* ---- the jobs of a driver ---------------------------------------------- */

/*
 * What hd_im and hd_sms share above the engine: an hd_http engine, the
 * jobs a driver holds (at most max_in_flight; submit says HD_E_BUSY
 * beyond), and a FIFO of jobs decided without the network ("parked":
 * unknown group, text too long, tls-required, ...), which are reported
 * from hd_http_jobs_op_handle and hd_http_jobs_destroy, never from inside
 * the driver's submit. Each job is reported exactly once through the
 * worker's done callback, with the job's delivery_id and attempt set in
 * its result; a transport failure (no HTTP answer, or aborted by
 * destroy) is mapped by hd_http_transport_result, an HTTP answer by the
 * driver's map callback.
 */
typedef struct hd_http_jobs hd_http_jobs_t;

/* One job a driver holds, from hd_http_jobs_take until it is reported. */
typedef struct hd_http_job {
	hd_channel_job_t *job;       /* the worker's job; handed back to done */
	hd_wire_result_t result;     /* built by the driver (provider, outcome, ...) */
	const void *ctx;             /* the driver's, per job (hd_im: its group); NULL at first */
} hd_http_job_t;

/* Map an HTTP answer (r->status > 0, no transport error) into job->result. */
typedef void (*hd_http_map_fn)(void *driver, hd_http_job_t *job, const hd_http_response_t *r);

/* Called just before a job is handed to done (its result final): the driver's log line. */
typedef void (*hd_http_report_fn)(void *driver, const hd_http_job_t *job);

typedef struct hd_http_driver {
	void *self;                  /* the driver object, passed to map and report */
	hd_http_map_fn map;          /* required */
	hd_http_report_fn report;    /* NULL for none */
	hd_channel_done_fn done;     /* the worker's */
	void *done_arg;
} hd_http_driver_t;

/* The settings every HTTP driver reads the same way (hd_http_cfg_settings). */
typedef struct hd_http_settings {
	int64_t timeout_ms;             /* 10000; 100..600000 */
	int64_t connect_timeout_ms;     /* 3000; 50..120000 */
	int64_t max_in_flight;          /* 64; 1..10000 */
	int64_t max_host_connections;   /* HD_HTTP_DEFAULT_HOST_CONNECTIONS; 1..HD_HTTP_MAX_CONNECTIONS */
	int64_t max_connections;        /* HD_HTTP_DEFAULT_CONNECTIONS; 1..HD_HTTP_MAX_CONNECTIONS */
} hd_http_settings_t;

/*
 * New jobs table with its own engine (hd_http_new with settings' timeouts
 * and connection limits) holding at most settings->max_in_flight jobs.
 * driver is copied. Caller owns the result (hd_http_jobs_destroy).
 */
hd_http_jobs_t *hd_http_jobs_new(const hd_http_settings_t *settings, const hd_http_driver_t *driver);

/*
 * Take job: 0 with *out (borrowed; result zeroed, ctx NULL) until the
 * job is reported, or HD_E_BUSY when max_in_flight jobs are held (job
 * not taken, *out untouched).
 */
int hd_http_jobs_take(hd_http_jobs_t *self, hd_channel_job_t *job, hd_http_job_t **out);

/*
 * Decide a taken job without the network: outcome, code and detail go
 * into its result (hd_http_result_set) and the job waits on the ready
 * queue until the next hd_http_jobs_op_handle or hd_http_jobs_destroy.
 */
void hd_http_jobs_park(hd_http_jobs_t *self, hd_http_job_t *job, hd_outcome_kind_t outcome,
		       const char *code, const char *detail);

/*
 * Send a taken job's request (copied by hd_http_start); its answer is
 * mapped and reported from hd_http_jobs_op_handle. 0, or HD_E_INVALID when
 * the engine refused the request: the job is still the caller's to park.
 */
int hd_http_jobs_start(hd_http_jobs_t *self, hd_http_job_t *job, const hd_http_request_t *req);

/*
 * Ops-table entries (hd_channel_ops_t: poll_items, handle, timeout_ms,
 * in_flight, capacity) for a driver object whose first member is its
 * hd_http_jobs_t * (hd_im, hd_sms; they check it with _Static_assert).
 * poll_items: the engine's sockets. handle: report parked jobs, drive
 * the engine, report what that finished or parked. timeout_ms: 0 while
 * parked jobs wait, else the engine's (-1 for none). in_flight: jobs
 * taken and not yet reported. capacity: max_in_flight. now_ms is unused.
 */
size_t hd_http_jobs_op_poll_items(void *driver, zmq_pollitem_t *items, size_t max);
void hd_http_jobs_op_handle(void *driver, int64_t now_ms, const zmq_pollitem_t *items,
			    size_t count);
int64_t hd_http_jobs_op_timeout_ms(void *driver, int64_t now_ms);
size_t hd_http_jobs_op_in_flight(void *driver);
size_t hd_http_jobs_op_capacity(void *driver);

/*
 * Report every job still held (in the engine as RETRY "worker-stopping",
 * parked ones as parked), then free; NULL-safe, sets *self_p to NULL.
 * Map and report callbacks run during the call: the driver frees what
 * they use only afterwards.
 */
void hd_http_jobs_destroy(hd_http_jobs_t **self_p);

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

/*
 * The shared settings of group (may be NULL: all defaults), in the order
 * timeout_ms, connect_timeout_ms, max_in_flight, max_host_connections,
 * max_connections; the first bad one is reported like hd_http_cfg_int.
 */
int hd_http_cfg_settings(const config_setting_t *group, hd_http_settings_t *out, char *err,
			 size_t errlen);

#endif
