/*
 * NAME
 *	hd_email - the email channel driver (see hd_email.h)
 * DESCRIPTION
 *	Two halves. The main half runs in the worker's thread: it takes
 *	jobs, keeps the queue, hands jobs to session threads over inproc
 *	PAIR pipes and reports their results through done(). The session
 *	half runs one libESMTP session at a time in its own thread. They
 *	share nothing but the ZeroMQ context: each thread gets its own copy
 *	of the configuration, and job pointers cross only inside pipe
 *	messages (the sender gives up the job when the message is sent).
 *	Must not block the worker's thread, and must never log a secret.
 */
#include "hd_email.h"

#include <openssl/ssl.h>   /* before libesmtp.h: declares smtp_starttls_set_ctx */
#include <auth-client.h>   /* before libesmtp.h: declares smtp_auth_set_context */
#include <libesmtp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hd_err.h"
#include "hd_log.h"
#include "hd_mem.h"
#include "hd_mime.h"
#include "hd_time.h"

#define PROVIDER            "smtp"
#define MAX_SESSIONS        32
#define MAX_THREAD_JOBS     500   /* per-thread hand-over cap, below the pipe HWM */
#define PASSWORD_MAX_BYTES  1024
#define CHUNK_BYTES         65536 /* message bytes handed to libESMTP per callback */
#define NONCE_POOL          64    /* MIME boundary nonces drawn per getrandom(2) */

/* ------------------------------------------------------------------ */
/* configuration                                                        */
/* ------------------------------------------------------------------ */

static void cfg_fail(char *err, size_t errlen, const config_setting_t *at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void cfg_fail(char *err, size_t errlen, const config_setting_t *at, const char *fmt, ...)
{
	const char *file = at ? config_setting_source_file(at) : NULL;
	unsigned line = at ? config_setting_source_line(at) : 0;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (err && errlen)
		snprintf(err, errlen, "%s:%u: %s", file ? file : "(config)", line, msg);
}

static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

/* "host[:port]" -> "host:port" (port defaults to 25); NULL when invalid. */
static char *parse_relay(const char *s, const char **why)
{
	const char *colon = strchr(s, ':');
	size_t hlen = colon ? (size_t)(colon - s) : strlen(s);
	if (hlen == 0 || hlen > 253) {
		*why = "relay needs a host (\"host:port\")";
		return NULL;
	}
	for (size_t i = 0; i < hlen; i++)
		if (!is_host_char(s[i])) {
			*why = "relay host must be a name or IPv4 address (no IPv6 literal)";
			return NULL;
		}
	long port = 25;
	if (colon) {
		char *end;
		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (!colon[1] || *end || errno || port < 1 || port > 65535) {
			*why = "relay port must be 1..65535";
			return NULL;
		}
	}
	char *out = hd_malloc(hlen + 8);
	snprintf(out, hlen + 8, "%.*s:%ld", (int)hlen, s, port);
	return out;
}

/* First line of path, without its line end; NULL with errno-ish reason on failure. */
static char *read_secret_file(const char *path, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "cannot open auth_password_file %s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = hd_malloc(PASSWORD_MAX_BYTES + 1);
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, PASSWORD_MAX_BYTES - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, whylen, "cannot read auth_password_file %s: %s", path,
				 strerror(errno));
			close(fd);
			sodium_memzero(buf, PASSWORD_MAX_BYTES + 1);
			free(buf);
			return NULL;
		}
		if (n == 0 || (len += (size_t)n) == PASSWORD_MAX_BYTES)
			break;
	}
	close(fd);
	buf[len] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!*buf) {
		snprintf(why, whylen, "auth_password_file %s is empty", path);
		free(buf);
		return NULL;
	}
	return buf;
}

typedef enum { KEY_STRING, KEY_INT, KEY_BOOL } key_type_t;

typedef struct key_spec {
	const char *name;
	key_type_t type;
	int64_t min, max;
} key_spec_t;

static const key_spec_t keys[] = {
	{"relay", KEY_STRING, 0, 0},
	{"helo", KEY_STRING, 0, 0},
	{"starttls", KEY_STRING, 0, 0},
	{"tls_verify", KEY_BOOL, 0, 0},
	{"auth_user", KEY_STRING, 0, 0},
	{"auth_password_file", KEY_STRING, 0, 0},
	{"message_id_domain", KEY_STRING, 0, 0},
	{"tls_ca_file", KEY_STRING, 0, 0},
	{"connect_timeout_ms", KEY_INT, 100, 600000},
	{"timeout_ms", KEY_INT, 1000, 3600000},
	{"idle_ms", KEY_INT, 0, 600000},
	{"sessions", KEY_INT, 1, MAX_SESSIONS},
	{"max_messages_per_session", KEY_INT, 1, 10000},
	{"max_jobs", KEY_INT, 1, 100000},
};

static int64_t *int_slot(hd_email_config_t *c, const char *name)
{
	if (!strcmp(name, "connect_timeout_ms"))
		return &c->connect_timeout_ms;
	if (!strcmp(name, "timeout_ms"))
		return &c->timeout_ms;
	if (!strcmp(name, "idle_ms"))
		return &c->idle_ms;
	if (!strcmp(name, "sessions"))
		return &c->sessions;
	if (!strcmp(name, "max_messages_per_session"))
		return &c->max_messages_per_session;
	return &c->max_jobs;
}

static bool valid_token(const char *s, size_t max, bool allow_empty)
{
	size_t len = strlen(s);
	if ((!allow_empty && len == 0) || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static bool valid_domain(const char *s)
{
	if (strlen(s) > 253)
		return false;
	for (const char *p = s; *p; p++)
		if (!is_host_char(*p) || *p == '_')
			return false;
	return true;
}

int hd_email_config_parse(const config_setting_t *cfg, hd_email_config_t *out, char *err,
			  size_t errlen)
{
	memset(out, 0, sizeof *out);
	out->relay = hd_strdup("127.0.0.1:25");
	out->helo = hd_strdup("");
	out->starttls = HD_EMAIL_TLS_OPPORTUNISTIC;
	out->tls_verify = true;
	out->auth_user = hd_strdup("");
	out->message_id_domain = hd_strdup("");
	out->tls_ca_file = hd_strdup("");
	out->connect_timeout_ms = 10000;
	out->timeout_ms = 60000;
	out->idle_ms = 2000;
	out->sessions = 2;
	out->max_messages_per_session = 100;
	out->max_jobs = 1000;
	char *password_file = NULL;
	const config_setting_t *password_file_at = cfg;

	if (cfg && !config_setting_is_group(cfg)) {
		cfg_fail(err, errlen, cfg, "email must be a group { ... }");
		goto fail;
	}
	int n = cfg ? config_setting_length(cfg) : 0;
	for (int i = 0; i < n; i++) {
		const config_setting_t *el = config_setting_get_elem(cfg, (unsigned)i);
		const char *name = config_setting_name(el);
		const key_spec_t *spec = NULL;
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
			if (name && !strcmp(keys[k].name, name))
				spec = &keys[k];
		if (!spec) {
			cfg_fail(err, errlen, el, "email.%s: unknown key", name ? name : "?");
			goto fail;
		}
		int type = config_setting_type(el);
		if (spec->type == KEY_STRING) {
			if (type != CONFIG_TYPE_STRING) {
				cfg_fail(err, errlen, el, "email.%s: must be a string", name);
				goto fail;
			}
			const char *v = config_setting_get_string(el);
			const char *why = NULL;
			if (!strcmp(name, "relay")) {
				char *relay = parse_relay(v, &why);
				if (!relay) {
					cfg_fail(err, errlen, el, "email.relay: %s", why);
					goto fail;
				}
				free(out->relay);
				out->relay = relay;
			} else if (!strcmp(name, "helo")) {
				if (!valid_token(v, 253, true)) {
					cfg_fail(err, errlen, el, "email.helo: must be a host name without spaces");
					goto fail;
				}
				free(out->helo);
				out->helo = hd_strdup(v);
			} else if (!strcmp(name, "starttls")) {
				if (!strcmp(v, "off"))
					out->starttls = HD_EMAIL_TLS_OFF;
				else if (!strcmp(v, "opportunistic"))
					out->starttls = HD_EMAIL_TLS_OPPORTUNISTIC;
				else if (!strcmp(v, "required"))
					out->starttls = HD_EMAIL_TLS_REQUIRED;
				else {
					cfg_fail(err, errlen, el,
						 "email.starttls: must be \"off\", \"opportunistic\" or \"required\"");
					goto fail;
				}
			} else if (!strcmp(name, "auth_user")) {
				if (!valid_token(v, 255, true)) {
					cfg_fail(err, errlen, el, "email.auth_user: no spaces or control characters");
					goto fail;
				}
				free(out->auth_user);
				out->auth_user = hd_strdup(v);
			} else if (!strcmp(name, "tls_ca_file")) {
				if (*v && access(v, R_OK) != 0) {
					cfg_fail(err, errlen, el, "email.tls_ca_file: cannot read %s: %s", v,
						 strerror(errno));
					goto fail;
				}
				free(out->tls_ca_file);
				out->tls_ca_file = hd_strdup(v);
			} else if (!strcmp(name, "auth_password_file")) {
				free(password_file);
				password_file = hd_strdup(v);
				password_file_at = el;
			} else {
				if (!valid_domain(v)) {
					cfg_fail(err, errlen, el, "email.message_id_domain: must be a domain name");
					goto fail;
				}
				free(out->message_id_domain);
				out->message_id_domain = hd_strdup(v);
			}
		} else if (spec->type == KEY_BOOL) {
			if (type != CONFIG_TYPE_BOOL) {
				cfg_fail(err, errlen, el, "email.%s: must be true or false", name);
				goto fail;
			}
			out->tls_verify = config_setting_get_bool(el) != 0;
		} else {
			if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
				cfg_fail(err, errlen, el, "email.%s: must be an integer", name);
				goto fail;
			}
			long long v = config_setting_get_int64(el);
			if (v < spec->min || v > spec->max) {
				cfg_fail(err, errlen, el, "email.%s: must be %lld..%lld", name,
					 (long long)spec->min, (long long)spec->max);
				goto fail;
			}
			*int_slot(out, name) = (int64_t)v;
		}
	}

	if (*out->auth_user) {
		char why[512];
		if (password_file && *password_file) {
			out->auth_password = read_secret_file(password_file, why, sizeof why);
			if (!out->auth_password) {
				cfg_fail(err, errlen, password_file_at, "email.auth_password_file: %s", why);
				goto fail;
			}
		} else {
			const char *env = getenv("HERALD_SMTP_PASSWORD");
			if (!env || !*env) {
				cfg_fail(err, errlen, cfg,
					 "email.auth_user is set but there is no password "
					 "(auth_password_file or HERALD_SMTP_PASSWORD)");
				goto fail;
			}
			if (strlen(env) > PASSWORD_MAX_BYTES) {
				cfg_fail(err, errlen, cfg, "HERALD_SMTP_PASSWORD: longer than %d bytes",
					 PASSWORD_MAX_BYTES);
				goto fail;
			}
			out->auth_password = hd_strdup(env);
		}
	}
	free(password_file);
	return 0;
fail:
	free(password_file);
	hd_email_config_clear(out);
	return HD_E_CONFIG;
}

void hd_email_config_clear(hd_email_config_t *cfg)
{
	if (!cfg)
		return;
	free(cfg->relay);
	free(cfg->helo);
	free(cfg->auth_user);
	if (cfg->auth_password) {
		sodium_memzero(cfg->auth_password, strlen(cfg->auth_password));
		free(cfg->auth_password);
	}
	free(cfg->message_id_domain);
	free(cfg->tls_ca_file);
	memset(cfg, 0, sizeof *cfg);
}

static void config_copy(hd_email_config_t *dst, const hd_email_config_t *src)
{
	*dst = *src;
	dst->relay = hd_strdup(src->relay);
	dst->helo = hd_strdup(src->helo);
	dst->auth_user = hd_strdup(src->auth_user);
	dst->auth_password = src->auth_password ? hd_strdup(src->auth_password) : NULL;
	dst->message_id_domain = hd_strdup(src->message_id_domain);
	dst->tls_ca_file = hd_strdup(src->tls_ca_file);
}

/* ------------------------------------------------------------------ */
/* outcome mapping                                                      */
/* ------------------------------------------------------------------ */

/* Copy text without control characters (server text ends up in logs and the database). */
static void copy_clean(char *dst, size_t dstlen, const char *src)
{
	size_t j = 0;
	for (size_t i = 0; src && src[i] && j + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[j++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	while (j > 0 && dst[j - 1] == ' ')
		j--;
	dst[j] = '\0';
}

bool hd_email_queue_id(const char *text, char *out, size_t outlen)
{
	static const char *const marks[] = {"queued as ", "id="};
	if (!text || !outlen)
		return false;
	for (size_t m = 0; m < sizeof marks / sizeof marks[0]; m++) {
		const char *p = NULL;
		/* case-insensitive search for the mark */
		size_t mlen = strlen(marks[m]);
		for (const char *q = text; *q && !p; q++) {
			size_t k = 0;
			while (k < mlen && q[k] && (q[k] | 0x20) == (marks[m][k] | 0x20))
				k++;
			if (k == mlen)
				p = q + mlen;
		}
		if (!p)
			continue;
		size_t len = 0;
		while (p[len] && p[len] != ' ' && p[len] != '\t' && p[len] != '\r' && p[len] != '\n' &&
		       p[len] != ';' && p[len] != ',' && (unsigned char)p[len] > 0x20 &&
		       (unsigned char)p[len] < 0x7f)
			len++;
		if (len == 0)
			continue;
		if (len >= outlen)
			len = outlen - 1;
		memcpy(out, p, len);
		out[len] = '\0';
		return true;
	}
	return false;
}

static void set_from_reply(hd_wire_result_t *out, const hd_email_reply_t *r)
{
	snprintf(out->provider_code, sizeof out->provider_code, "%d", r->code);
	int n = 0;
	if (r->enh_class)
		n = snprintf(out->detail, sizeof out->detail, "%d.%d.%d ", r->enh_class % 10,
			     r->enh_subject % 1000, r->enh_detail % 1000);
	if (n < 0)
		n = 0;
	copy_clean(out->detail + n, sizeof out->detail - (size_t)n, r->text);
}

/* A 4xx or 5xx reply decides; 2xx goes on, other codes (354, none) say nothing. */
static bool settles(const hd_email_reply_t *r)
{
	return r && r->code >= 400 && r->code < 600;
}

void hd_email_map_outcome(const hd_email_reply_t *mail, const hd_email_reply_t *rcpt,
			  const hd_email_reply_t *data, hd_email_fault_t fault,
			  const char *fault_detail, bool confidential, hd_wire_result_t *out)
{
	snprintf(out->provider, sizeof out->provider, "%s", PROVIDER);
	out->provider_code[0] = out->detail[0] = out->provider_id[0] = '\0';
	out->retry_after_ms = 0;

	const hd_email_reply_t *order[] = {mail, rcpt, data};
	for (size_t i = 0; i < 3; i++) {
		const hd_email_reply_t *r = order[i];
		if (!settles(r))
			continue;
		set_from_reply(out, r);
		out->outcome = r->code >= 500 ? HD_OUTCOME_FAILED : HD_OUTCOME_RETRY;
		return;
	}
	if (data && data->code >= 200 && data->code < 300) {
		set_from_reply(out, data);
		out->outcome = HD_OUTCOME_DELIVERED;
		if (!hd_email_queue_id(data->text, out->provider_id, sizeof out->provider_id))
			out->provider_id[0] = '\0';
		return;
	}

	const char *code;
	out->outcome = HD_OUTCOME_RETRY;
	switch (fault) {
	case HD_EMAIL_FAULT_CONNECT:
		code = "connect";
		break;
	case HD_EMAIL_FAULT_PROTOCOL:
		code = "protocol";
		break;
	case HD_EMAIL_FAULT_TLS_MISSING:
		if (confidential) {
			code = "tls-required";
			out->outcome = HD_OUTCOME_FAILED;
		} else {
			code = "tls-unavailable";
		}
		break;
	case HD_EMAIL_FAULT_TLS_FAILED:
		code = "tls-failed";
		break;
	case HD_EMAIL_FAULT_STOPPING:
		code = "stopping";
		break;
	case HD_EMAIL_FAULT_DROPPED:
	case HD_EMAIL_FAULT_NONE:
	default:
		code = "dropped";
		break;
	}
	snprintf(out->provider_code, sizeof out->provider_code, "%s", code);
	copy_clean(out->detail, sizeof out->detail,
		   fault_detail && *fault_detail ? fault_detail : "session ended before a reply");
}

/* ------------------------------------------------------------------ */
/* pipe messages between the worker's thread and the session threads   */
/* ------------------------------------------------------------------ */

typedef enum {
	PIPE_JOB = 1,      /* main -> thread: job (ownership moves to the thread) */
	PIPE_STOP,         /* main -> thread: finish and say BYE */
	PIPE_RESULT,       /* thread -> main: job (ownership moves back) + result */
	PIPE_BYE,          /* thread -> main: last message; the thread exits */
	PIPE_READY         /* thread -> main: first message; its pipe is connected */
} pipe_type_t;

typedef struct pipe_msg {
	uint32_t type;
	hd_channel_job_t *job;
	hd_wire_result_t result;
} pipe_msg_t;

static int pipe_send(void *sock, const pipe_msg_t *m, int flags)
{
	size_t len = m->type == PIPE_RESULT ? sizeof *m : offsetof(pipe_msg_t, result);
	for (;;) {
		int rc = zmq_send(sock, m, len, flags);
		if (rc >= 0)
			return 0;
		if (zmq_errno() != EINTR)
			return -1;
	}
}

/* 1 with *m filled, 0 when nothing (EAGAIN), -1 on error. */
static int pipe_recv(void *sock, pipe_msg_t *m, int flags)
{
	memset(m, 0, sizeof *m);
	for (;;) {
		int rc = zmq_recv(sock, m, sizeof *m, flags);
		if (rc >= 0)
			return rc >= (int)offsetof(pipe_msg_t, result) ? 1 : -1;
		if (zmq_errno() == EAGAIN)
			return 0;
		if (zmq_errno() != EINTR)
			return -1;
	}
}

static bool job_is_confidential(const hd_channel_job_t *job)
{
	return job->job.msg && (job->job.msg->flags & HD_FLAG_CONFIDENTIAL);
}

/* ------------------------------------------------------------------ */
/* session thread                                                       */
/* ------------------------------------------------------------------ */

typedef struct jnode {
	hd_channel_job_t *job;
	struct jnode *next;
} jnode_t;

typedef struct sess_msg {
	hd_channel_job_t *job;
	char *data;            /* the MIME message */
	size_t len, off;
	smtp_message_t msg;
	smtp_recipient_t rcpt;
	bool mail_seen;        /* libESMTP sent MAIL for it */
	bool reported;
	struct sess_msg *next;
} sess_msg_t;

typedef struct worker {
	hd_email_config_t cfg;       /* this thread's own copy */
	SSL_CTX *tls;                /* this thread's TLS settings, lent to each session */
	void *zctx;
	char endpoint[64];
	unsigned index;
	void *sock;
	jnode_t *head, *tail;        /* jobs waiting for a session */
	size_t queued;
	bool stopping;

	/* the session in progress */
	smtp_session_t session;
	bool strict;                 /* STARTTLS required in this session */
	sess_msg_t *msgs, *last;
	size_t nmsgs;
	bool tls_missing, tls_failed, tls_ok, quit_sent;
	bool auth_failed;            /* the server refused our credentials (534/535/538) */
	char auth_why[256];
	char tls_why[160];
	char last_reply[256];
	unsigned delivered, not_delivered;
	uint64_t nonces[NONCE_POOL]; /* unpredictable MIME boundaries, drawn in bulk */
	size_t nonces_left;
} worker_t;

/* A fresh random 64-bit nonce; one system call per NONCE_POOL messages
 * instead of two per message. */
static uint64_t worker_nonce(worker_t *w)
{
	if (w->nonces_left == 0) {
		randombytes_buf(w->nonces, sizeof w->nonces);
		w->nonces_left = NONCE_POOL;
	}
	return w->nonces[--w->nonces_left];
}

static void queue_push(worker_t *w, hd_channel_job_t *job, bool front)
{
	jnode_t *n = hd_malloc(sizeof *n);
	n->job = job;
	n->next = NULL;
	if (front) {
		n->next = w->head;
		w->head = n;
		if (!w->tail)
			w->tail = n;
	} else {
		if (w->tail)
			w->tail->next = n;
		else
			w->head = n;
		w->tail = n;
	}
	w->queued++;
}

static hd_channel_job_t *queue_pop(worker_t *w)
{
	jnode_t *n = w->head;
	if (!n)
		return NULL;
	w->head = n->next;
	if (!w->head)
		w->tail = NULL;
	w->queued--;
	hd_channel_job_t *job = n->job;
	free(n);
	return job;
}

static void worker_report(worker_t *w, hd_channel_job_t *job, hd_wire_result_t *res)
{
	pipe_msg_t m;
	memset(&m, 0, sizeof m);
	m.type = PIPE_RESULT;
	m.job = job;
	m.result = *res;
	m.result.delivery_id = job->job.delivery_id;
	m.result.attempt = job->job.attempt;
	if (res->outcome == HD_OUTCOME_DELIVERED)
		w->delivered++;
	else
		w->not_delivered++;
	if (pipe_send(w->sock, &m, 0) != 0)
		hd_panic("email: result pipe failed: %s", zmq_strerror(zmq_errno()));
}

static void worker_report_fault(worker_t *w, hd_channel_job_t *job, hd_email_fault_t fault,
				const char *detail)
{
	hd_wire_result_t res;
	memset(&res, 0, sizeof res);
	hd_email_map_outcome(NULL, NULL, NULL, fault, detail, job_is_confidential(job), &res);
	worker_report(w, job, &res);
}

/* Read pipe messages: wait up to timeout_ms (-1 forever, 0 not at all) for the first. */
static size_t worker_drain(worker_t *w, long timeout_ms)
{
	size_t jobs = 0;
	zmq_pollitem_t item = {.socket = w->sock, .events = ZMQ_POLLIN};
	if (timeout_ms != 0) {
		int rc = zmq_poll(&item, 1, timeout_ms);
		if (rc <= 0)
			return 0;
	}
	pipe_msg_t m;
	while (pipe_recv(w->sock, &m, ZMQ_DONTWAIT) == 1) {
		if (m.type == PIPE_JOB && m.job) {
			queue_push(w, m.job, false);
			jobs++;
		} else if (m.type == PIPE_STOP) {
			w->stopping = true;
		}
	}
	return jobs;
}

static const char *message_cb(void **ctx, int *len, void *arg)
{
	sess_msg_t *sm = arg;
	(void)ctx; /* libESMTP free()s *ctx; we keep our position in sm instead */
	if (!len) {
		sm->off = 0;
		return NULL;
	}
	size_t n = sm->len - sm->off;
	if (n > CHUNK_BYTES)
		n = CHUNK_BYTES;
	const char *p = sm->data + sm->off;
	sm->off += n;
	*len = (int)n;
	return p;
}

static hd_email_reply_t reply_of(const smtp_status_t *st)
{
	hd_email_reply_t r = {0};
	if (st) {
		r.code = st->code;
		r.text = st->text;
		r.enh_class = st->enh_class;
		r.enh_subject = st->enh_subject;
		r.enh_detail = st->enh_detail;
	}
	return r;
}

/* Report sm from what libESMTP recorded, with fault for what it did not. */
static void settle(worker_t *w, sess_msg_t *sm, hd_email_fault_t fault, const char *detail)
{
	if (sm->reported)
		return;
	hd_email_reply_t mail = reply_of(smtp_reverse_path_status(sm->msg));
	hd_email_reply_t rcpt = reply_of(smtp_recipient_status(sm->rcpt));
	hd_email_reply_t data = reply_of(smtp_message_transfer_status(sm->msg));
	hd_wire_result_t res;
	memset(&res, 0, sizeof res);
	hd_email_map_outcome(&mail, &rcpt, &data, fault, detail, job_is_confidential(sm->job), &res);
	if (w->auth_failed && res.outcome != HD_OUTCOME_DELIVERED) {
		/*
		 * Our credentials were refused: whatever followed (libESMTP tries
		 * the next mechanism, then sends MAIL unauthenticated) is not the
		 * message's fault, so it is retried rather than dead-lettered.
		 */
		res.outcome = HD_OUTCOME_RETRY;
		snprintf(res.provider_code, sizeof res.provider_code, "auth");
		snprintf(res.detail, sizeof res.detail, "authentication failed: %s", w->auth_why);
	}
	sm->reported = true;
	hd_channel_job_t *job = sm->job;
	sm->job = NULL;
	worker_report(w, job, &res);
}

static bool job_fits_session(const worker_t *w, const hd_channel_job_t *job)
{
	if (w->cfg.starttls == HD_EMAIL_TLS_REQUIRED)
		return true;
	return job_is_confidential(job) == w->strict;
}

/* Add one job to the session as its own message; false when it was settled instead. */
static bool session_add(worker_t *w, hd_channel_job_t *job)
{
	const hd_wire_job_t *j = &job->job;
	hd_wire_result_t res;
	memset(&res, 0, sizeof res);
	snprintf(res.provider, sizeof res.provider, "%s", PROVIDER);
	if (!j->msg || !j->msg->sender || !j->recipient) {
		res.outcome = HD_OUTCOME_FAILED;
		snprintf(res.provider_code, sizeof res.provider_code, "invalid");
		snprintf(res.detail, sizeof res.detail, "job without message, sender or recipient");
		worker_report(w, job, &res);
		return false;
	}
	sess_msg_t *sm = hd_calloc(1, sizeof *sm);
	hd_mime_params_t p = {
		.delivery_id = j->delivery_id,
		.message_id = j->message_id,
		.klass = j->klass,
		.date_s = hd_time_now_us() / 1000000,
		.id_domain = w->cfg.message_id_domain,
		.nonce = worker_nonce(w),
	};
	int rc = hd_mime_build(j->msg, &p, &sm->data, &sm->len);
	if (rc != 0) {
		free(sm);
		res.outcome = HD_OUTCOME_FAILED;
		snprintf(res.provider_code, sizeof res.provider_code, "mime");
		snprintf(res.detail, sizeof res.detail, "cannot build the message: %s", hd_strerror(rc));
		worker_report(w, job, &res);
		return false;
	}
	sm->job = job;
	sm->msg = smtp_add_message(w->session);
	if (!sm->msg || !smtp_set_reverse_path(sm->msg, j->msg->sender) ||
	    !smtp_set_messagecb(sm->msg, message_cb, sm) ||
	    !(sm->rcpt = smtp_add_recipient(sm->msg, j->recipient)))
		hd_panic("email: libESMTP refused a message (%d)", smtp_errno());
	smtp_size_set_estimate(sm->msg, sm->len);
	smtp_message_set_application_data_release(sm->msg, sm, NULL);
	smtp_recipient_set_application_data_release(sm->rcpt, sm, NULL);
	if (w->last)
		w->last->next = sm;
	else
		w->msgs = sm;
	w->last = sm;
	w->nmsgs++;
	return true;
}

/* Move queued jobs that fit this session into it, keeping the others in order. */
static size_t session_take_queued(worker_t *w)
{
	size_t added = 0;
	jnode_t **pp = &w->head;
	jnode_t *prev = NULL;
	while (*pp && w->nmsgs < (size_t)w->cfg.max_messages_per_session) {
		jnode_t *n = *pp;
		if (!job_fits_session(w, n->job)) {
			prev = n;
			pp = &n->next;
			continue;
		}
		*pp = n->next;
		if (w->tail == n)
			w->tail = prev;
		w->queued--;
		hd_channel_job_t *job = n->job;
		free(n);
		added += session_add(w, job);
	}
	return added;
}

/*
 * Called when sm has just been settled. If it is the session's last
 * message, give the session more work so libESMTP goes on with the
 * same connection: jobs already queued, jobs waiting in the pipe, or
 * jobs that arrive within idle_ms. Jobs that need another TLS mode end
 * the session at once so they get theirs.
 */
static void session_refill(worker_t *w, const sess_msg_t *sm)
{
	if (sm->next || w->stopping)
		return;
	int64_t deadline = hd_time_mono_ms() + w->cfg.idle_ms;
	for (;;) {
		if (w->nmsgs >= (size_t)w->cfg.max_messages_per_session)
			return;
		worker_drain(w, 0);
		if (session_take_queued(w) > 0 || w->stopping || w->queued > 0)
			return;
		int64_t left = deadline - hd_time_mono_ms();
		if (left <= 0)
			return;
		worker_drain(w, (long)left);
	}
}

static void on_event(smtp_session_t session, int event, void *arg, ...)
{
	worker_t *w = arg;
	va_list ap;
	(void)session;
	va_start(ap, arg);
	switch (event) {
	case SMTP_EV_MAILSTATUS: {
		(void)va_arg(ap, const char *);
		smtp_message_t m = va_arg(ap, smtp_message_t);
		sess_msg_t *sm = smtp_message_get_application_data(m);
		if (!sm)
			break;
		sm->mail_seen = true;
		const smtp_status_t *st = smtp_reverse_path_status(m);
		if (st && st->code / 100 != 2) {
			settle(w, sm, HD_EMAIL_FAULT_NONE, NULL);
			session_refill(w, sm);
		}
		break;
	}
	case SMTP_EV_RCPTSTATUS: {
		(void)va_arg(ap, const char *);
		smtp_recipient_t r = va_arg(ap, smtp_recipient_t);
		sess_msg_t *sm = smtp_recipient_get_application_data(r);
		const smtp_status_t *st = smtp_recipient_status(r);
		if (sm && st && st->code / 100 != 2) {
			/* the DATA that follows can only fail: settle now, keep the session busy */
			settle(w, sm, HD_EMAIL_FAULT_NONE, NULL);
			session_refill(w, sm);
		}
		break;
	}
	case SMTP_EV_MESSAGESENT: {
		smtp_message_t m = va_arg(ap, smtp_message_t);
		sess_msg_t *sm = smtp_message_get_application_data(m);
		if (!sm)
			break;
		const smtp_status_t *st = smtp_message_transfer_status(m);
		bool ok = st && st->code / 100 == 2;
		settle(w, sm, HD_EMAIL_FAULT_DROPPED, w->last_reply);
		/* only after the final "." reply does libESMTP look for the next message later */
		if (ok)
			session_refill(w, sm);
		break;
	}
	case SMTP_EV_EXTNA_STARTTLS:
		w->tls_missing = true;
		break;
	case SMTP_EV_STARTTLS_OK:
		w->tls_ok = true;
		break;
	case SMTP_EV_INVALID_PEER_CERTIFICATE: {
		long vfy = va_arg(ap, long);
		int *ok = va_arg(ap, int *);
		bool accept = !(w->strict && w->cfg.tls_verify);
		*ok = accept;
		if (!accept) {
			w->tls_failed = true;
			snprintf(w->tls_why, sizeof w->tls_why,
				 "server certificate does not verify (X509 error %ld)", vfy);
		}
		break;
	}
	case SMTP_EV_NO_PEER_CERTIFICATE:
	case SMTP_EV_WRONG_PEER_CERTIFICATE: {
		int *ok = va_arg(ap, int *);
		bool accept = !(w->strict && w->cfg.tls_verify);
		*ok = accept;
		if (!accept) {
			w->tls_failed = true;
			snprintf(w->tls_why, sizeof w->tls_why, "%s",
				 event == SMTP_EV_NO_PEER_CERTIFICATE
					 ? "server sent no certificate"
					 : "server certificate does not name the relay host");
		}
		break;
	}
	case SMTP_EV_WEAK_CIPHER: {
		(void)va_arg(ap, int);
		int *ok = va_arg(ap, int *);
		*ok = !w->strict;
		if (w->strict) {
			w->tls_failed = true;
			snprintf(w->tls_why, sizeof w->tls_why, "weak TLS cipher");
		}
		break;
	}
	case SMTP_EV_NO_CLIENT_CERTIFICATE: {
		int *ok = va_arg(ap, int *);
		*ok = 0;
		break;
	}
	case SMTP_EV_UNUSABLE_CLIENT_CERTIFICATE:
	case SMTP_EV_UNUSABLE_CA_LIST:
		w->tls_failed = true;
		snprintf(w->tls_why, sizeof w->tls_why, "%s",
			 event == SMTP_EV_UNUSABLE_CA_LIST
				 ? "unusable CA list (~/.authenticate/ca.pem must be 0600 and ours)"
				 : "unusable client certificate");
		break;
	default:
		break;
	}
	va_end(ap);
}

/* Remember the server's last reply line (for faults) and whether we said QUIT. */
static void on_monitor(const char *buf, int buflen, int writing, void *arg)
{
	worker_t *w = arg;
	if (buflen <= 0)
		return;
	size_t len = (size_t)buflen;
	if (writing == SMTP_CB_WRITING) {
		/* never keep what we write: it may hold AUTH credentials */
		if (len >= 4 && strncmp(buf, "QUIT", 4) == 0)
			w->quit_sent = true;
		return;
	}
	if (writing != SMTP_CB_READING)
		return;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	size_t start = len;
	while (start > 0 && buf[start - 1] != '\n')
		start--;
	size_t n = len - start;
	if (n == 0)
		return;
	if (n >= sizeof w->last_reply)
		n = sizeof w->last_reply - 1;
	char tmp[sizeof w->last_reply];
	memcpy(tmp, buf + start, n);
	tmp[n] = '\0';
	copy_clean(w->last_reply, sizeof w->last_reply, tmp);
	/* RFC 4954 codes only AUTH answers with; libESMTP then goes on unauthenticated */
	if (*w->cfg.auth_user && (!strncmp(tmp, "535", 3) || !strncmp(tmp, "534", 3) ||
				  !strncmp(tmp, "538", 3))) {
		w->auth_failed = true;
		_Static_assert(sizeof w->auth_why == sizeof w->last_reply, "same size");
		memcpy(w->auth_why, w->last_reply, sizeof w->auth_why);
	}
}

static int auth_interact(auth_client_request_t request, char **result, int fields, void *arg)
{
	worker_t *w = arg;
	static char empty[] = "";
	for (int i = 0; i < fields; i++) {
		if (request[i].flags & AUTH_USER)
			result[i] = w->cfg.auth_user;
		else if (request[i].flags & AUTH_PASS)
			result[i] = w->cfg.auth_password;
		else
			result[i] = empty;
	}
	return 1;
}

static pthread_once_t auth_once = PTHREAD_ONCE_INIT;

static void auth_init_once(void)
{
	auth_client_init();
}

/* A bounded TCP connect to the relay; libESMTP's own connect has no timeout. */
static int probe_relay(const worker_t *w, char *why, size_t whylen)
{
	char host[256];
	snprintf(host, sizeof host, "%s", w->cfg.relay);
	char *colon = strrchr(host, ':');
	const char *port = "25";
	if (colon) {
		*colon = '\0';
		port = colon + 1;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0) {
		snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(gai));
		return -1;
	}
	int64_t deadline = hd_time_mono_ms() + w->cfg.connect_timeout_ms;
	int err = ETIMEDOUT;
	int ok = -1;
	for (struct addrinfo *ai = res; ai && ok != 0; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			ok = 0;
		} else if (errno == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int64_t left = deadline - hd_time_mono_ms();
			int rc = left > 0 ? poll(&pfd, 1, (int)left) : 0;
			if (rc > 0) {
				int soerr = 0;
				socklen_t sl = sizeof soerr;
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
				if (soerr == 0)
					ok = 0;
				else
					err = soerr;
			} else {
				err = ETIMEDOUT;
			}
		} else {
			err = errno;
		}
		close(fd);
	}
	freeaddrinfo(res);
	if (ok != 0)
		snprintf(why, whylen, "cannot connect to %s: %s", w->cfg.relay, strerror(err));
	return ok;
}

/*
 * TLS 1.2 at most: with TLS 1.3 the server's post-handshake session
 * tickets make libESMTP 1.1.0 wait for a reply to a command it has not
 * flushed yet, stalling every STARTTLS session for timeout_ms. The
 * certificate is checked after the handshake (SMTP_EV_* events), so the
 * context itself does not verify. NULL (no TLS) if OpenSSL refuses.
 */
static SSL_CTX *tls_context_new(const hd_email_config_t *cfg)
{
	if (cfg->starttls == HD_EMAIL_TLS_OFF)
		return NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	int ok = *cfg->tls_ca_file ? SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, NULL)
				   : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1)
		hd_warn("email.tls", "reason=\"cannot load CA certificates\" tls_ca_file=%s",
			*cfg->tls_ca_file ? cfg->tls_ca_file : "(system)");
	return ctx;
}

static void session_set_timeouts(smtp_session_t s, long ms)
{
	static const int which[] = {Timeout_GREETING, Timeout_ENVELOPE, Timeout_DATA,
				    Timeout_TRANSFER, Timeout_DATA2};
	for (size_t i = 0; i < sizeof which / sizeof which[0]; i++)
		smtp_set_timeout(s, which[i] | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
}

static void session_reset_state(worker_t *w)
{
	w->session = NULL;
	w->msgs = w->last = NULL;
	w->nmsgs = 0;
	w->tls_missing = w->tls_failed = w->tls_ok = w->quit_sent = w->auth_failed = false;
	w->tls_why[0] = w->last_reply[0] = w->auth_why[0] = '\0';
	w->delivered = w->not_delivered = 0;
}

/* One SMTP session: everything queued that fits, plus what arrives while it runs. */
static void worker_run_session(worker_t *w)
{
	session_reset_state(w);
	w->strict = w->cfg.starttls == HD_EMAIL_TLS_REQUIRED || job_is_confidential(w->head->job);
	if (w->strict && w->cfg.starttls == HD_EMAIL_TLS_OFF) {
		/* submit() never lets these through; keep the promise anyway */
		hd_channel_job_t *job = queue_pop(w);
		worker_report_fault(w, job, HD_EMAIL_FAULT_TLS_MISSING, "STARTTLS is off in the configuration");
		return;
	}

	w->session = smtp_create_session();
	if (!w->session)
		hd_panic("email: smtp_create_session failed");
	smtp_set_server(w->session, w->cfg.relay);
	if (*w->cfg.helo)
		smtp_set_hostname(w->session, w->cfg.helo);
	session_set_timeouts(w->session, (long)w->cfg.timeout_ms);
	smtp_starttls_enable(w->session, w->strict ? Starttls_REQUIRED
				    : w->cfg.starttls == HD_EMAIL_TLS_OFF ? Starttls_DISABLED
									   : Starttls_ENABLED);
	/*
	 * Our own SSL_CTX for every session: libESMTP 1.1.0 frees the
	 * context it creates itself when a session is destroyed and then
	 * reuses the freed one in the next session. smtp_starttls_set_ctx
	 * takes a reference that smtp_destroy_session gives back.
	 */
	if (w->tls)
		smtp_starttls_set_ctx(w->session, w->tls);
	smtp_set_eventcb(w->session, on_event, w);
	smtp_set_monitorcb(w->session, on_monitor, w, 0);
	auth_context_t auth = NULL;
	if (*w->cfg.auth_user) {
		auth = auth_create_context();
		auth_set_mechanism_flags(auth, AUTH_PLUGIN_PLAIN, 0);
		auth_set_interact_cb(auth, auth_interact, w);
		smtp_auth_set_context(w->session, auth);
	}

	session_take_queued(w);
	int64_t started = hd_time_mono_ms();
	char why[320] = "";
	hd_email_fault_t fault = HD_EMAIL_FAULT_NONE;
	int rc = 1;
	if (w->nmsgs == 0) {
		rc = -1; /* everything was settled while building */
	} else if (probe_relay(w, why, sizeof why) != 0) {
		fault = HD_EMAIL_FAULT_CONNECT;
	} else {
		rc = smtp_start_session(w->session);
		/* tls_failed first: a local CA problem also makes libESMTP report STARTTLS missing */
		if (w->tls_failed) {
			fault = HD_EMAIL_FAULT_TLS_FAILED;
			snprintf(why, sizeof why, "%s", w->tls_why);
		} else if (w->tls_missing) {
			fault = HD_EMAIL_FAULT_TLS_MISSING;
			snprintf(why, sizeof why, "server does not offer STARTTLS%s%s",
				 *w->last_reply ? "; last reply: " : "", w->last_reply);
		} else if (rc == 0) {
			int e = smtp_errno();
			char ebuf[128];
			const char *etext = smtp_strerror(e, ebuf, sizeof ebuf);
			if (e < 0 || (e >= SMTP_ERR_EAI_ADDRFAMILY && e <= SMTP_ERR_EAI_SOCKTYPE))
				fault = HD_EMAIL_FAULT_CONNECT;
			else if (e == SMTP_ERR_DROPPED_CONNECTION || e == SMTP_ERR_UNTERMINATED_RESPONSE)
				fault = HD_EMAIL_FAULT_DROPPED;
			else
				fault = HD_EMAIL_FAULT_PROTOCOL;
			snprintf(why, sizeof why, "%s%s%s", etext ? etext : "session failed",
				 *w->last_reply ? "; last reply: " : "", w->last_reply);
		} else {
			fault = HD_EMAIL_FAULT_DROPPED;
			snprintf(why, sizeof why, "session ended before a reply%s%s",
				 *w->last_reply ? "; last reply: " : "", w->last_reply);
		}
	}

	/*
	 * Messages libESMTP never started (added after it had decided to
	 * QUIT) go back to the queue when the session otherwise went well;
	 * everything else unsettled is settled with the session's fault.
	 */
	bool went_well = rc == 1 && w->quit_sent && !w->tls_missing && !w->tls_failed;
	bool any_started = false;
	for (sess_msg_t *sm = w->msgs; sm; sm = sm->next)
		any_started |= sm->mail_seen;
	bool requeue = went_well && any_started;
	for (sess_msg_t *sm = w->msgs; sm; sm = sm->next)
		if (!sm->reported && !(requeue && !sm->mail_seen))
			settle(w, sm, fault, why);
	/* back to the front of the queue, last first so the order is kept */
	hd_channel_job_t **re = hd_malloc((w->nmsgs ? w->nmsgs : 1) * sizeof *re);
	size_t nre = 0;
	for (sess_msg_t *sm = w->msgs; sm; sm = sm->next)
		if (!sm->reported && sm->job) {
			re[nre++] = sm->job;
			sm->job = NULL;
		}
	while (nre > 0)
		queue_push(w, re[--nre], true);
	free(re);

	hd_info("email.session", "thread=%u relay=%s tls=%s strict=%d messages=%zu delivered=%u "
		"other=%u queued=%zu ms=%lld", w->index, w->cfg.relay, w->tls_ok ? "yes" : "no",
		w->strict, w->nmsgs, w->delivered, w->not_delivered, w->queued,
		(long long)(hd_time_mono_ms() - started));

	smtp_destroy_session(w->session);
	if (auth)
		auth_destroy_context(auth);
	for (sess_msg_t *sm = w->msgs, *next; sm; sm = next) {
		next = sm->next;
		free(sm->data);
		free(sm);
	}
	session_reset_state(w);
}

static void *worker_main(void *arg)
{
	worker_t *w = arg;
	w->sock = zmq_socket(w->zctx, ZMQ_PAIR);
	if (!w->sock || zmq_connect(w->sock, w->endpoint) != 0)
		hd_panic("email: session thread cannot connect its pipe: %s", zmq_strerror(zmq_errno()));
	int linger = 0;
	zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
	w->tls = tls_context_new(&w->cfg);
	pipe_msg_t ready;
	memset(&ready, 0, sizeof ready);
	ready.type = PIPE_READY;
	pipe_send(w->sock, &ready, 0);
	for (;;) {
		if (w->stopping) {
			hd_channel_job_t *job;
			while ((job = queue_pop(w)))
				worker_report_fault(w, job, HD_EMAIL_FAULT_STOPPING, "worker stopping");
			break;
		}
		if (!w->head) {
			worker_drain(w, -1);
			continue;
		}
		worker_drain(w, 0);
		if (!w->stopping)
			worker_run_session(w);
	}
	pipe_msg_t bye;
	memset(&bye, 0, sizeof bye);
	bye.type = PIPE_BYE;
	pipe_send(w->sock, &bye, 0);
	zmq_close(w->sock);
	SSL_CTX_free(w->tls);
	hd_email_config_clear(&w->cfg);
	free(w);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* the worker-thread half                                               */
/* ------------------------------------------------------------------ */

typedef struct slot {
	pthread_t tid;
	bool running;
	bool bye;
	void *sock;
	size_t outstanding;     /* jobs handed over, not yet back */
} slot_t;

typedef struct ready {
	hd_channel_job_t *job;
	hd_wire_result_t result;
} ready_t;

typedef struct hd_email {
	hd_email_config_t cfg;
	void *zctx;
	hd_channel_done_fn done;
	void *done_arg;
	slot_t slots[MAX_SESSIONS];
	size_t nslots;
	size_t thread_cap;
	hd_channel_job_t **pending;   /* ring of max_jobs */
	size_t pending_head, pending_count;
	ready_t *ready;               /* ring of max_jobs: settled without a thread */
	size_t ready_head, ready_count;
	size_t in_flight;
} hd_email_t;

static void email_dispatch(hd_email_t *e)
{
	size_t cap = (size_t)e->cfg.max_jobs;
	while (e->pending_count > 0) {
		slot_t *best = NULL;
		for (size_t i = 0; i < e->nslots; i++) {
			slot_t *s = &e->slots[i];
			if (s->running && !s->bye && s->outstanding < e->thread_cap &&
			    (!best || s->outstanding < best->outstanding))
				best = s;
		}
		if (!best)
			return;
		pipe_msg_t m;
		memset(&m, 0, sizeof m);
		m.type = PIPE_JOB;
		m.job = e->pending[e->pending_head];
		if (pipe_send(best->sock, &m, ZMQ_DONTWAIT) != 0)
			return; /* pipe full: try again on the next handle() */
		best->outstanding++;
		e->pending_head = (e->pending_head + 1) % cap;
		e->pending_count--;
	}
}

static void email_settle_now(hd_email_t *e, hd_channel_job_t *job, hd_outcome_kind_t outcome,
			     const char *code, const char *detail)
{
	size_t cap = (size_t)e->cfg.max_jobs;
	ready_t *r = &e->ready[(e->ready_head + e->ready_count) % cap];
	memset(r, 0, sizeof *r);
	r->job = job;
	r->result.delivery_id = job->job.delivery_id;
	r->result.attempt = job->job.attempt;
	r->result.outcome = outcome;
	snprintf(r->result.provider, sizeof r->result.provider, "%s", PROVIDER);
	snprintf(r->result.provider_code, sizeof r->result.provider_code, "%s", code);
	snprintf(r->result.detail, sizeof r->result.detail, "%s", detail);
	e->ready_count++;
}

static void email_flush_ready(hd_email_t *e)
{
	size_t cap = (size_t)e->cfg.max_jobs;
	while (e->ready_count > 0) {
		ready_t r = e->ready[e->ready_head];
		e->ready_head = (e->ready_head + 1) % cap;
		e->ready_count--;
		e->in_flight--;
		e->done(e->done_arg, r.job, &r.result);
	}
}

static void email_handle_pipe(hd_email_t *e, slot_t *s, bool wait)
{
	pipe_msg_t m;
	while (pipe_recv(s->sock, &m, wait ? 0 : ZMQ_DONTWAIT) == 1) {
		wait = false;
		if (m.type == PIPE_RESULT && m.job) {
			s->outstanding--;
			e->in_flight--;
			e->done(e->done_arg, m.job, &m.result);
		} else if (m.type == PIPE_BYE) {
			s->bye = true;
			return;
		}
	}
}

static void email_close(void **self_p);

static void *email_open(const config_setting_t *cfg, void *zmq_ctx, hd_channel_done_fn done,
			void *done_arg, char *err, size_t errlen)
{
	if (!zmq_ctx || !done) {
		snprintf(err, errlen, "email: open needs a ZeroMQ context and a done callback");
		return NULL;
	}
	hd_email_t *e = hd_calloc(1, sizeof *e);
	if (hd_email_config_parse(cfg, &e->cfg, err, errlen) != 0) {
		free(e);
		return NULL;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "email: libsodium cannot initialise");
		hd_email_config_clear(&e->cfg);
		free(e);
		return NULL;
	}
	pthread_once(&auth_once, auth_init_once);
	e->zctx = zmq_ctx;
	e->done = done;
	e->done_arg = done_arg;
	e->nslots = (size_t)e->cfg.sessions;
	e->thread_cap = (size_t)e->cfg.max_messages_per_session;
	if (e->thread_cap > MAX_THREAD_JOBS)
		e->thread_cap = MAX_THREAD_JOBS;
	e->pending = hd_calloc((size_t)e->cfg.max_jobs, sizeof *e->pending);
	e->ready = hd_calloc((size_t)e->cfg.max_jobs, sizeof *e->ready);

	/* Session threads get no signals: SIGPIPE from a dead relay then becomes EPIPE. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (size_t i = 0; i < e->nslots; i++) {
		slot_t *s = &e->slots[i];
		worker_t *w = hd_calloc(1, sizeof *w);
		config_copy(&w->cfg, &e->cfg);
		w->zctx = zmq_ctx;
		w->index = (unsigned)i;
		snprintf(w->endpoint, sizeof w->endpoint, "inproc://hd-email-%p-%zu", (void *)e, i);
		s->sock = zmq_socket(zmq_ctx, ZMQ_PAIR);
		int linger = 0;
		if (s->sock)
			zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger);
		if (!s->sock || zmq_bind(s->sock, w->endpoint) != 0 ||
		    pthread_create(&s->tid, NULL, worker_main, w) != 0) {
			snprintf(err, errlen, "email: cannot start session thread %zu: %s", i,
				 zmq_strerror(zmq_errno()));
			hd_email_config_clear(&w->cfg);
			free(w);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			void *self = e;
			email_close(&self);
			return NULL;
		}
		s->running = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Wait until every pipe is connected, so submit() can hand jobs over at once. */
	for (size_t i = 0; i < e->nslots; i++) {
		zmq_pollitem_t item = {.socket = e->slots[i].sock, .events = ZMQ_POLLIN};
		pipe_msg_t m;
		if (zmq_poll(&item, 1, 5000) != 1 || pipe_recv(e->slots[i].sock, &m, 0) != 1 ||
		    m.type != PIPE_READY) {
			snprintf(err, errlen, "email: session thread %zu did not start", i);
			void *self = e;
			email_close(&self);
			return NULL;
		}
	}
	hd_info("email.open", "relay=%s starttls=%s sessions=%zu auth=%s", e->cfg.relay,
		e->cfg.starttls == HD_EMAIL_TLS_OFF ? "off"
		: e->cfg.starttls == HD_EMAIL_TLS_REQUIRED ? "required" : "opportunistic",
		e->nslots, *e->cfg.auth_user ? "yes" : "no");
	return e;
}

static int email_submit(void *self, hd_channel_job_t *job)
{
	hd_email_t *e = self;
	size_t cap = (size_t)e->cfg.max_jobs;
	if (e->in_flight >= cap)
		return HD_E_BUSY;
	e->in_flight++;
	if (!job->job.msg || !job->job.recipient) {
		email_settle_now(e, job, HD_OUTCOME_FAILED, "invalid", "job without message or recipient");
		return 0;
	}
	if (job_is_confidential(job) && e->cfg.starttls == HD_EMAIL_TLS_OFF) {
		email_settle_now(e, job, HD_OUTCOME_FAILED, "tls-required",
				 "confidential message and STARTTLS is off in the configuration");
		return 0;
	}
	e->pending[(e->pending_head + e->pending_count) % cap] = job;
	e->pending_count++;
	email_dispatch(e);
	return 0;
}

static size_t email_poll_items(void *self, zmq_pollitem_t *items, size_t max)
{
	hd_email_t *e = self;
	size_t n = 0;
	for (size_t i = 0; i < e->nslots && n < max; i++) {
		if (!e->slots[i].running || e->slots[i].bye)
			continue;
		items[n].socket = e->slots[i].sock;
		items[n].fd = -1;
		items[n].events = ZMQ_POLLIN;
		items[n].revents = 0;
		n++;
	}
	return n;
}

static void email_handle(void *self, int64_t now_ms, const zmq_pollitem_t *items, size_t count)
{
	hd_email_t *e = self;
	(void)now_ms;
	for (size_t k = 0; k < count; k++) {
		if (!(items[k].revents & ZMQ_POLLIN))
			continue;
		for (size_t i = 0; i < e->nslots; i++)
			if (e->slots[i].running && items[k].socket == e->slots[i].sock)
				email_handle_pipe(e, &e->slots[i], false);
	}
	email_flush_ready(e);
	email_dispatch(e);
}

static int64_t email_timeout_ms(void *self, int64_t now_ms)
{
	hd_email_t *e = self;
	(void)now_ms;
	if (e->ready_count > 0)
		return 0;
	/* a hand-over that found a pipe full is tried again soon */
	for (size_t i = 0; e->pending_count > 0 && i < e->nslots; i++)
		if (e->slots[i].running && !e->slots[i].bye && e->slots[i].outstanding < e->thread_cap)
			return 10;
	return -1;
}

static size_t email_in_flight(void *self)
{
	const hd_email_t *e = self;
	return e->in_flight;
}

static void email_close(void **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_email_t *e = *self_p;
	*self_p = NULL;
	size_t cap = (size_t)e->cfg.max_jobs;

	/* Jobs no thread has yet are answered first: the threads may take a while. */
	while (e->pending_count > 0) {
		hd_channel_job_t *job = e->pending[e->pending_head];
		e->pending_head = (e->pending_head + 1) % cap;
		e->pending_count--;
		email_settle_now(e, job, HD_OUTCOME_RETRY, "stopping", "worker stopping");
	}
	email_flush_ready(e);

	pipe_msg_t stop;
	memset(&stop, 0, sizeof stop);
	stop.type = PIPE_STOP;
	for (size_t i = 0; i < e->nslots; i++)
		if (e->slots[i].running)
			pipe_send(e->slots[i].sock, &stop, 0);
	/* Threads report what they hold (real outcomes, or retry "stopping") then say BYE. */
	for (size_t i = 0; i < e->nslots; i++) {
		slot_t *s = &e->slots[i];
		while (s->running && !s->bye)
			email_handle_pipe(e, s, true);
		if (s->running)
			pthread_join(s->tid, NULL);
		if (s->sock)
			zmq_close(s->sock);
	}
	email_flush_ready(e);
	hd_info("email.close", "in_flight=%zu", e->in_flight);
	free(e->pending);
	free(e->ready);
	hd_email_config_clear(&e->cfg);
	free(e);
}

static size_t email_capacity(void *self)
{
	const hd_email_t *e = self;
	return (size_t)e->cfg.max_jobs;
}

const hd_channel_ops_t hd_email_ops = {
	.name = "email",
	.channel = HD_CHANNEL_EMAIL,
	.open = email_open,
	.submit = email_submit,
	.poll_items = email_poll_items,
	.handle = email_handle,
	.timeout_ms = email_timeout_ms,
	.in_flight = email_in_flight,
	.close = email_close,
	.capacity = email_capacity,
};
