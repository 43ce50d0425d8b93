/*
 * NAME
 *	hd_email - the email channel driver (SMTP submission with libESMTP)
 * DESCRIPTION
 *	Implements hd_channel_ops_t for channel "email". libESMTP blocks, so
 *	the driver runs `sessions` threads; the worker's thread talks to each
 *	over an inproc ZeroMQ PAIR pipe and never shares memory with them.
 *	A session thread opens one SMTP session to the relay and sends the
 *	jobs it holds in sequence (one SMTP transaction, one RCPT per
 *	delivery), keeps the session open for jobs that arrive while it runs
 *	and closes it after idle_ms without work or max_messages_per_session.
 *	Each job's outcome comes from the server's replies: 2xx to the final
 *	"." delivered (provider_id from "queued as X" / "id=X" when given),
 *	4xx retry, 5xx failed, anything that stops the session first
 *	(connect, drop, timeout, protocol error) retry.
 *
 *	When AUTH is configured and the server refuses the credentials
 *	(534/535/538), nothing in that session is failed: the message is not
 *	at fault, so it is retried with provider_code "auth".
 *
 *	Confidential messages (HD_FLAG_CONFIDENTIAL) travel only in sessions
 *	with STARTTLS required (libESMTP Starttls_REQUIRED; a certificate
 *	that does not verify is refused when tls_verify is set): with
 *	starttls = "off", or when the server does not offer STARTTLS, they
 *	fail with provider_code "tls-required" and are never transmitted.
 *
 *	Configuration (libconfig group passed to open; every key optional):
 *	  relay = "host:port"            default "127.0.0.1:25"
 *	  helo = "name"                  default: the host name
 *	  starttls = "off" | "opportunistic" | "required"   default "opportunistic"
 *	  tls_verify = true              verify the server certificate when TLS is required
 *	  auth_user = ""                 AUTH when not empty; the password comes from
 *	  auth_password_file = ""        this file (first line), else $HERALD_SMTP_PASSWORD
 *	  connect_timeout_ms = 10000     TCP connect to the relay
 *	  timeout_ms = 60000             every SMTP protocol step (smtp_set_timeout)
 *	  idle_ms = 2000                 keep an idle session open this long
 *	  sessions = 2                   session threads (parallel SMTP sessions)
 *	  max_messages_per_session = 100
 *	  max_jobs = 1000                jobs held at once; beyond, submit says HD_E_BUSY
 *	  message_id_domain = ""         Message-ID right side; "" = the sender's domain
 *	  tls_ca_file = ""               PEM file of CAs to trust; "" = OpenSSL's default
 *	                                 paths (which honour $SSL_CERT_FILE, $SSL_CERT_DIR)
 *	TLS is capped at 1.2 (tls_context_new in hd_email.c says why).
 * OWNERSHIP
 *	A submitted job is owned by the driver until done() hands it back.
 *	Inside the driver a job pointer travels in a pipe message: whoever
 *	sent the message no longer touches the job (main -> session thread
 *	with a JOB, back with its RESULT). The password is held in memory
 *	only, never logged, and wiped on close.
 * LIMITS
 *	libESMTP has no connect timeout of its own: before each session the
 *	thread makes a non-blocking connect bounded by connect_timeout_ms and
 *	closes it; only then does libESMTP connect. close() waits for each
 *	session thread to finish the SMTP step it is in (at most timeout_ms).
 *	IPv6 literals are not accepted in relay (libESMTP splits at the
 *	first ':'); use a host name.
 */
#ifndef HD_EMAIL_H
#define HD_EMAIL_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_channel.h"
#include "hd_wire.h"

extern const hd_channel_ops_t hd_email_ops;

typedef enum {
	HD_EMAIL_TLS_OFF,
	HD_EMAIL_TLS_OPPORTUNISTIC,
	HD_EMAIL_TLS_REQUIRED
} hd_email_tls_t;

typedef struct hd_email_config {
	char *relay;                   /* "host:port", port always present */
	char *helo;                    /* "" = libESMTP uses the host name */
	hd_email_tls_t starttls;
	bool tls_verify;
	char *auth_user;               /* "" = no AUTH */
	char *auth_password;           /* secret; NULL without auth_user */
	char *message_id_domain;       /* "" = the sender's domain */
	char *tls_ca_file;             /* PEM CAs to trust; "" = OpenSSL's default paths */
	int64_t connect_timeout_ms;
	int64_t timeout_ms;
	int64_t idle_ms;
	int64_t sessions;
	int64_t max_messages_per_session;
	int64_t max_jobs;
} hd_email_config_t;

/*
 * Parse the driver's group (NULL: all defaults) into *out, which the
 * caller clears with hd_email_config_clear. Refuses unknown keys, wrong
 * types, out-of-range values and an unreadable password file with
 * HD_E_CONFIG and "file:line: reason" in err; *out is then cleared.
 */
int hd_email_config_parse(const config_setting_t *cfg, hd_email_config_t *out, char *err,
			  size_t errlen);

/* Free what *cfg owns (wiping the password) and zero it; NULL-safe. */
void hd_email_config_clear(hd_email_config_t *cfg);

/* Why a session ended before it settled a message. */
typedef enum {
	HD_EMAIL_FAULT_NONE,
	HD_EMAIL_FAULT_CONNECT,      /* resolve/connect failed: retry "connect" */
	HD_EMAIL_FAULT_DROPPED,      /* connection lost or timed out: retry "dropped" */
	HD_EMAIL_FAULT_PROTOCOL,     /* greeting/EHLO refused, bad reply: retry "protocol" */
	HD_EMAIL_FAULT_TLS_MISSING,  /* STARTTLS needed, not available: see below */
	HD_EMAIL_FAULT_TLS_FAILED,   /* handshake or certificate refused: retry "tls-failed" */
	HD_EMAIL_FAULT_STOPPING      /* the worker stops: retry "stopping" */
} hd_email_fault_t;

/* One SMTP reply as libESMTP records it (code 0: never received). */
typedef struct hd_email_reply {
	int code;
	const char *text;            /* may be NULL */
	int enh_class, enh_subject, enh_detail;  /* 0.0.0 when absent */
} hd_email_reply_t;

/*
 * Decide one delivery's outcome from the replies to its MAIL, RCPT and
 * final "." (DATA) and, when those do not settle it, from the session
 * fault and fault_detail. The first non-2xx reply in that order decides
 * (4xx retry, 5xx failed, provider_code the SMTP code, detail the
 * enhanced code and text); a 2xx to DATA is delivered. TLS_MISSING is
 * failed "tls-required" for a confidential message and retry
 * "tls-unavailable" otherwise. Fills outcome, provider, provider_code,
 * detail and provider_id of *out; leaves delivery_id and attempt alone.
 */
void hd_email_map_outcome(const hd_email_reply_t *mail, const hd_email_reply_t *rcpt,
			  const hd_email_reply_t *data, hd_email_fault_t fault,
			  const char *fault_detail, bool confidential, hd_wire_result_t *out);

/*
 * The server's message id in a 2xx reply text: the token after
 * "queued as " (Postfix, Sendmail) or "id=" (Exim). Returns true and
 * copies it into out (NUL-terminated, truncated to outlen - 1).
 */
bool hd_email_queue_id(const char *text, char *out, size_t outlen);

#endif
