/*
 * NAME
 *	hd_http - libcurl multi plumbing shared by the HTTP channel drivers
 * DESCRIPTION
 *	See hd_http.h. The socket table mirrors what curl asked for through
 *	CURLMOPT_SOCKETFUNCTION; the single timer deadline mirrors
 *	CURLMOPT_TIMERFUNCTION, kept on the monotonic clock. Every started
 *	transfer sits on a list until it completes so destroy can abort it.
 * LIMITS
 *	Response bodies beyond HD_HTTP_MAX_BODY_BYTES are dropped (the
 *	transfer still completes); Retry-After values beyond 127 bytes are
 *	ignored; secrets are at most HD_HTTP_MAX_SECRET_BYTES.
 */
#include "hd_http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "hd_err.h"
#include "hd_mem.h"
#include "hd_time.h"

typedef struct hd_http_sock {
	curl_socket_t fd;
	int what;                    /* CURL_POLL_IN / OUT / INOUT */
} hd_http_sock_t;

typedef struct hd_http_host hd_http_host_t;

/* One request, from hd_http_start to its done call. The request fields are
 * owned copies: a queued request gets its easy handle only when launched. */
typedef struct hd_http_xfer {
	CURL *easy;                  /* NULL while queued */
	hd_http_done_fn done;
	void *arg;
	hd_http_host_t *host;
	bool post, https_only;
	char *url;                   /* may carry tokens or signatures: wiped on free */
	char *req_body;
	size_t req_body_len;
	char *userpwd;               /* wiped on free */
	const struct curl_slist *headers;   /* hd_http's cache or own_headers */
	struct curl_slist *own_headers;     /* when the cache is full */
	bool launched;               /* handed to curl (counts in host->running) */
	char *body;                  /* response */
	size_t body_len;
	char retry_after[128];
	char errbuf[CURL_ERROR_SIZE];
	struct hd_http_xfer *prev, *next;   /* every request not yet completed */
	struct hd_http_xfer *wnext;         /* the host's waiting queue */
} hd_http_xfer_t;

/* A host:port with requests running or waiting; freed when it has neither. */
struct hd_http_host {
	char *key;                   /* "scheme://host:port", lower case */
	size_t running;              /* launched into curl, at most max_host_connections */
	hd_http_xfer_t *wait_head, *wait_tail;
	hd_http_host_t *next;
};

#define HD_HTTP_HEADER_CACHE 4   /* distinct Content-Types with a shared header list */

struct hd_http {
	CURLM *multi;
	int64_t connect_timeout_ms;
	int64_t timeout_ms;
	size_t max_host_connections;
	size_t max_idle_handles;     /* easy handles kept for reuse */
	int64_t deadline_ms;         /* curl's timer on hd_time_mono_ms; -1 = none */
	hd_http_sock_t *socks;
	size_t nsocks, capsocks;
	hd_http_xfer_t *xfers;       /* active transfers (running or waiting) */
	size_t active;
	hd_http_host_t *hosts;
	CURL **idle;                 /* reset easy handles, at most max_idle_handles */
	size_t nidle;
	bool closing;                /* destroy: launch nothing more */
	struct {
		char *content_type;      /* NULL: no Content-Type header */
		struct curl_slist *list;
	} headers[HD_HTTP_HEADER_CACHE];
	size_t nheaders;
};

/* ---- curl callbacks ---------------------------------------------------- */

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	(void)socketp;
	hd_http_t *self = userp;
	for (size_t i = 0; i < self->nsocks; i++) {
		if (self->socks[i].fd != fd)
			continue;
		if (what == CURL_POLL_REMOVE)
			self->socks[i] = self->socks[--self->nsocks];
		else
			self->socks[i].what = what;
		return 0;
	}
	if (what == CURL_POLL_REMOVE)
		return 0;
	if (self->nsocks == self->capsocks) {
		self->capsocks = self->capsocks ? self->capsocks * 2 : 8;
		self->socks = hd_realloc(self->socks, self->capsocks * sizeof *self->socks);
	}
	self->socks[self->nsocks].fd = fd;
	self->socks[self->nsocks].what = what;
	self->nsocks++;
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	hd_http_t *self = userp;
	self->deadline_ms = timeout_ms < 0 ? -1 : hd_time_mono_ms() + timeout_ms;
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	hd_http_xfer_t *x = userp;
	size_t n = size * nmemb;
	size_t room = HD_HTTP_MAX_BODY_BYTES - x->body_len;
	size_t take = n < room ? n : room;
	if (take) {
		x->body = hd_realloc(x->body, x->body_len + take + 1);
		memcpy(x->body + x->body_len, data, take);
		x->body_len += take;
		x->body[x->body_len] = '\0';
	}
	return n;   /* keep reading: the status and headers matter more than the tail */
}

static size_t on_header(char *data, size_t size, size_t nitems, void *userp)
{
	hd_http_xfer_t *x = userp;
	size_t n = size * nitems;
	static const char name[] = "retry-after:";

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* a new response (after 100-continue, say): forget the last one's headers */
		x->retry_after[0] = '\0';
		x->body_len = 0;
		return n;
	}
	if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
		const char *v = data + sizeof name - 1;
		const char *end = data + n;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
			end--;
		size_t len = (size_t)(end - v);
		if (len < sizeof x->retry_after) {
			memcpy(x->retry_after, v, len);
			x->retry_after[len] = '\0';
		}
	}
	return n;
}

/* ---- engine ------------------------------------------------------------ */

hd_http_t *hd_http_new(int64_t connect_timeout_ms, int64_t timeout_ms, size_t max_host_connections,
		       size_t max_connections)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		hd_panic("curl_global_init failed");
	hd_http_t *self = hd_calloc(1, sizeof *self);
	self->multi = curl_multi_init();
	if (!self->multi)
		hd_panic("curl_multi_init failed");
	if (max_host_connections == 0)
		max_host_connections = HD_HTTP_DEFAULT_HOST_CONNECTIONS;
	if (max_connections == 0)
		max_connections = HD_HTTP_DEFAULT_CONNECTIONS;
	self->connect_timeout_ms = connect_timeout_ms;
	self->timeout_ms = timeout_ms;
	self->max_host_connections = max_host_connections;
	self->max_idle_handles = max_connections;
	self->idle = hd_calloc(max_connections, sizeof *self->idle);
	self->deadline_ms = -1;
	curl_multi_setopt(self->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(self->multi, CURLMOPT_SOCKETDATA, self);
	curl_multi_setopt(self->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(self->multi, CURLMOPT_TIMERDATA, self);
	/* Requests beyond the per-host limit wait in our own queue (see launch),
	 * so curl never queues one with its CURLOPT_TIMEOUT_MS already running;
	 * the same limit here is a safety net. */
	curl_multi_setopt(self->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_host_connections);
	/* curl's default cache is 4 x the transfers in progress, so a lull would
	 * close the idle connections the next burst wants to reuse */
	curl_multi_setopt(self->multi, CURLMOPT_MAXCONNECTS, (long)max_connections);
	return self;
}

/* Zero and free a string that may carry a secret; NULL-safe. */
static void wipe_string(char *s)
{
	if (!s)
		return;
	sodium_memzero(s, strlen(s));
	free(s);
}

static void xfer_free(hd_http_t *self, hd_http_xfer_t *x)
{
	if (x->easy) {
		/* reused for a later request: curl_easy_init allocates and clears
		 * several kilobytes per call, reset keeps the buffers */
		if (self->nidle < self->max_idle_handles && !self->closing) {
			curl_easy_reset(x->easy);
			self->idle[self->nidle++] = x->easy;
		} else {
			curl_easy_cleanup(x->easy);
		}
	}
	curl_slist_free_all(x->own_headers);
	wipe_string(x->url);
	wipe_string(x->userpwd);
	free(x->req_body);
	free(x->body);
	free(x);
}

static void xfer_unlink(hd_http_t *self, hd_http_xfer_t *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		self->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	self->active--;
}

bool hd_http_is_https(const char *url)
{
	return url && strncasecmp(url, "https://", 8) == 0;
}

/*
 * "scheme://host:port" of url, lower case, userinfo dropped and the
 * scheme's default port made explicit, into out. Used only to count
 * connections per host, so an odd URL costs at worst a shared count.
 */
static void host_key(const char *url, char *out, size_t outlen)
{
	const char *sep = strstr(url, "://");
	const char *auth = sep ? sep + 3 : url;
	size_t alen = strcspn(auth, "/?#");
	const char *host = auth;
	for (const char *p = auth; p < auth + alen; p++)
		if (*p == '@')
			host = p + 1;
	size_t hlen = (size_t)(auth + alen - host);
	const char *bracket = memchr(host, ']', hlen);
	const char *colon = memchr(bracket ? bracket : host, ':', hlen - (size_t)((bracket ? bracket : host) - host));
	bool https = hd_http_is_https(url);
	int n = snprintf(out, outlen, "%.*s://%.*s%s", sep ? (int)(sep - url) : 4, sep ? url : "http",
			 (int)hlen, host, colon ? "" : https ? ":443" : ":80");
	for (int i = 0; i < n && (size_t)i < outlen; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
}

static hd_http_host_t *host_get(hd_http_t *self, const char *url)
{
	char key[512];
	host_key(url, key, sizeof key);
	for (hd_http_host_t *h = self->hosts; h; h = h->next)
		if (strcmp(h->key, key) == 0)
			return h;
	hd_http_host_t *h = hd_calloc(1, sizeof *h);
	h->key = hd_strdup(key);
	h->next = self->hosts;
	self->hosts = h;
	return h;
}

static void host_release(hd_http_t *self, hd_http_host_t *h)
{
	if (h->running || h->wait_head)
		return;
	for (hd_http_host_t **pp = &self->hosts; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	free(h->key);
	free(h);
}

/* "Expect:" (+ Content-Type) for content_type (may be NULL). Caller owns it. */
static struct curl_slist *header_list_new(const char *content_type)
{
	/* one round trip per request: no "Expect: 100-continue" wait */
	struct curl_slist *list = curl_slist_append(NULL, "Expect:");
	if (list && content_type) {
		char ct[256];
		snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
		list = curl_slist_append(list, ct);
	}
	if (!list)
		hd_panic("curl_slist_append failed");
	return list;
}

/* x's header list: shared per Content-Type (drivers use one or two), or
 * x's own once HD_HTTP_HEADER_CACHE types are cached. */
static void set_headers(hd_http_t *self, hd_http_xfer_t *x, const char *content_type)
{
	for (size_t i = 0; i < self->nheaders; i++) {
		const char *ct = self->headers[i].content_type;
		if ((!ct && !content_type) || (ct && content_type && strcmp(ct, content_type) == 0)) {
			x->headers = self->headers[i].list;
			return;
		}
	}
	struct curl_slist *list = header_list_new(content_type);
	if (self->nheaders == HD_HTTP_HEADER_CACHE) {
		x->own_headers = list;
	} else {
		self->headers[self->nheaders].content_type = content_type ? hd_strdup(content_type) : NULL;
		self->headers[self->nheaders].list = list;
		self->nheaders++;
	}
	x->headers = list;
}

/* Give x an easy handle and hand it to curl: its timeout starts now. */
static CURLMcode launch(hd_http_t *self, hd_http_xfer_t *x)
{
	x->easy = self->nidle ? self->idle[--self->nidle] : curl_easy_init();
	if (!x->easy)
		hd_panic("curl_easy_init failed");
	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)self->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)self->timeout_ms);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, x->https_only ? "https" : "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "herald/" HERALD_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	if (x->post) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req_body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->req_body);   /* x owns it until freed */
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	if (x->userpwd) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERPWD, x->userpwd);
	}
	CURLMcode rc = curl_multi_add_handle(self->multi, e);
	if (rc == CURLM_OK) {
		x->launched = true;
		x->host->running++;
	}
	return rc;
}

int hd_http_start(hd_http_t *self, const hd_http_request_t *req, hd_http_done_fn done, void *arg)
{
	if (!req || !req->url || !req->method || !done)
		return HD_E_INVALID;
	bool post = strcmp(req->method, "POST") == 0;
	if (!post && strcmp(req->method, "GET") != 0)
		return HD_E_INVALID;
	if (req->https_only && !hd_http_is_https(req->url))
		return HD_E_INVALID;

	hd_http_xfer_t *x = hd_calloc(1, sizeof *x);
	x->done = done;
	x->arg = arg;
	x->post = post;
	x->https_only = req->https_only;
	x->url = hd_strdup(req->url);
	if (post) {
		x->req_body_len = req->body ? req->body_len : 0;
		x->req_body = hd_malloc(x->req_body_len + 1);
		if (x->req_body_len)
			memcpy(x->req_body, req->body, x->req_body_len);
		x->req_body[x->req_body_len] = '\0';
	}
	x->userpwd = req->userpwd ? hd_strdup(req->userpwd) : NULL;
	set_headers(self, x, post ? req->content_type : NULL);
	x->host = host_get(self, req->url);

	x->next = self->xfers;
	if (self->xfers)
		self->xfers->prev = x;
	self->xfers = x;
	self->active++;
	if (x->host->running < self->max_host_connections) {
		if (launch(self, x) != CURLM_OK) {
			xfer_unlink(self, x);
			host_release(self, x->host);
			xfer_free(self, x);
			return HD_E_INVALID;
		}
	} else {
		/* every connection to this host is busy: wait here, not inside curl */
		if (x->host->wait_tail)
			x->host->wait_tail->wnext = x;
		else
			x->host->wait_head = x;
		x->host->wait_tail = x;
	}
	return 0;
}

static void complete(hd_http_t *self, hd_http_xfer_t *x, CURLcode rc, bool aborted);

/* Launch waiting requests of h while it has free connections. */
static void promote(hd_http_t *self, hd_http_host_t *h)
{
	while (!self->closing && h->wait_head && h->running < self->max_host_connections) {
		hd_http_xfer_t *x = h->wait_head;
		h->wait_head = x->wnext;
		if (!h->wait_head)
			h->wait_tail = NULL;
		x->wnext = NULL;
		if (launch(self, x) != CURLM_OK) {
			snprintf(x->errbuf, sizeof x->errbuf, "curl_multi_add_handle failed");
			complete(self, x, CURLE_FAILED_INIT, false);
		}
	}
}

/* Remove x from its host's waiting queue (it was never launched). */
static void unqueue(hd_http_xfer_t *x)
{
	hd_http_host_t *h = x->host;
	hd_http_xfer_t **pp = &h->wait_head, *prev = NULL;
	while (*pp && *pp != x) {
		prev = *pp;
		pp = &(*pp)->wnext;
	}
	if (!*pp)
		return;
	*pp = x->wnext;
	if (h->wait_tail == x)
		h->wait_tail = prev;
	x->wnext = NULL;
}

static void complete(hd_http_t *self, hd_http_xfer_t *x, CURLcode rc, bool aborted)
{
	hd_http_response_t r = {0};
	long status = 0;
	if (x->launched)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	r.status = aborted ? 0 : status;
	r.transport_error = aborted ? 0 : (int)rc;
	r.timed_out = rc == CURLE_OPERATION_TIMEDOUT;
	r.aborted = aborted;
	if (aborted)
		r.error = "aborted";
	else if (rc != CURLE_OK)
		r.error = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
	else
		r.error = "";
	r.body = x->body ? x->body : "";
	r.body_len = x->body_len;
	r.retry_after_ms = x->retry_after[0]
		? hd_http_parse_retry_after(x->retry_after, (int64_t)time(NULL)) : -1;

	hd_http_host_t *h = x->host;
	if (x->launched) {
		curl_multi_remove_handle(self->multi, x->easy);
		h->running--;
	} else {
		unqueue(x);
	}
	xfer_unlink(self, x);
	x->done(x->arg, &r);
	xfer_free(self, x);
	/* the connection just freed goes to the next request for this host */
	promote(self, h);
	host_release(self, h);
}

static void reap(hd_http_t *self)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(self->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		hd_http_xfer_t *x = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		CURLcode rc = m->data.result;
		if (x)
			complete(self, x, rc, false);
	}
}

size_t hd_http_poll_items(hd_http_t *self, zmq_pollitem_t *items, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < self->nsocks && n < max; i++) {
		short ev = 0;
		if (self->socks[i].what & CURL_POLL_IN)
			ev |= ZMQ_POLLIN;
		if (self->socks[i].what & CURL_POLL_OUT)
			ev |= ZMQ_POLLOUT;
		items[n].socket = NULL;
		items[n].fd = self->socks[i].fd;
		items[n].events = ev;
		items[n].revents = 0;
		n++;
	}
	return n;
}

static bool is_ours(const hd_http_t *self, curl_socket_t fd)
{
	for (size_t i = 0; i < self->nsocks; i++)
		if (self->socks[i].fd == fd)
			return true;
	return false;
}

void hd_http_handle(hd_http_t *self, const zmq_pollitem_t *items, size_t count)
{
	int running = 0;
	for (size_t i = 0; i < count; i++) {
		if (items[i].socket || !items[i].revents || !is_ours(self, items[i].fd))
			continue;
		int ev = 0;
		if (items[i].revents & ZMQ_POLLIN)
			ev |= CURL_CSELECT_IN;
		if (items[i].revents & ZMQ_POLLOUT)
			ev |= CURL_CSELECT_OUT;
		if (items[i].revents & ZMQ_POLLERR)
			ev |= CURL_CSELECT_ERR;
		curl_multi_socket_action(self->multi, items[i].fd, ev, &running);
	}
	if (self->deadline_ms >= 0 && hd_time_mono_ms() >= self->deadline_ms) {
		self->deadline_ms = -1;   /* curl re-arms it from inside the call */
		curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	reap(self);
}

int64_t hd_http_timeout_ms(hd_http_t *self)
{
	if (self->deadline_ms < 0)
		return -1;
	int64_t left = self->deadline_ms - hd_time_mono_ms();
	return left > 0 ? left : 0;
}

size_t hd_http_active(hd_http_t *self)
{
	return self->active;
}

size_t hd_http_waiting(hd_http_t *self)
{
	size_t n = 0;
	for (const hd_http_host_t *h = self->hosts; h; h = h->next)
		for (const hd_http_xfer_t *x = h->wait_head; x; x = x->wnext)
			n++;
	return n;
}

void hd_http_destroy(hd_http_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_http_t *self = *self_p;
	self->closing = true;
	while (self->xfers)
		complete(self, self->xfers, CURLE_ABORTED_BY_CALLBACK, true);
	while (self->nidle)
		curl_easy_cleanup(self->idle[--self->nidle]);
	curl_multi_cleanup(self->multi);
	for (size_t i = 0; i < self->nheaders; i++) {
		free(self->headers[i].content_type);
		curl_slist_free_all(self->headers[i].list);
	}
	free(self->idle);
	free(self->socks);
	free(self);
	*self_p = NULL;
}

/* ---- the jobs of a driver ---------------------------------------------- */

/* The public job first, so a job pointer is an item pointer. */
typedef struct hd_http_item {
	hd_http_job_t pub;
	hd_http_jobs_t *owner;
	struct hd_http_item *next;   /* the ready queue */
} hd_http_item_t;

struct hd_http_jobs {
	hd_http_t *http;
	hd_http_driver_t driver;
	size_t max_in_flight;
	size_t in_flight;
	hd_http_item_t *ready_head, *ready_tail;
};

hd_http_jobs_t *hd_http_jobs_new(const hd_http_settings_t *settings, const hd_http_driver_t *driver)
{
	hd_http_jobs_t *self = hd_calloc(1, sizeof *self);
	self->driver = *driver;
	self->max_in_flight = (size_t)settings->max_in_flight;
	self->http = hd_http_new(settings->connect_timeout_ms, settings->timeout_ms,
				 (size_t)settings->max_host_connections,
				 (size_t)settings->max_connections);
	return self;
}

int hd_http_jobs_take(hd_http_jobs_t *self, hd_channel_job_t *job, hd_http_job_t **out)
{
	if (self->in_flight >= self->max_in_flight)
		return HD_E_BUSY;
	self->in_flight++;
	hd_http_item_t *it = hd_calloc(1, sizeof *it);
	it->owner = self;
	it->pub.job = job;
	*out = &it->pub;
	return 0;
}

static void jobs_report(hd_http_jobs_t *self, hd_http_item_t *it)
{
	it->pub.result.delivery_id = it->pub.job->job.delivery_id;
	it->pub.result.attempt = it->pub.job->job.attempt;
	if (self->driver.report)
		self->driver.report(self->driver.self, &it->pub);
	self->in_flight--;
	hd_channel_job_t *job = it->pub.job;
	hd_wire_result_t result = it->pub.result;
	free(it);
	self->driver.done(self->driver.done_arg, job, &result);
}

void hd_http_jobs_park(hd_http_jobs_t *self, hd_http_job_t *job, hd_outcome_kind_t outcome,
		       const char *code, const char *detail)
{
	hd_http_item_t *it = (hd_http_item_t *)job;
	hd_http_result_set(&it->pub.result, outcome, code, detail, strlen(detail));
	it->next = NULL;
	if (self->ready_tail)
		self->ready_tail->next = it;
	else
		self->ready_head = it;
	self->ready_tail = it;
}

static void jobs_flush_ready(hd_http_jobs_t *self)
{
	while (self->ready_head) {
		hd_http_item_t *it = self->ready_head;
		self->ready_head = it->next;
		if (!self->ready_head)
			self->ready_tail = NULL;
		jobs_report(self, it);
	}
}

static void jobs_on_http_done(void *arg, const hd_http_response_t *r)
{
	hd_http_item_t *it = arg;
	hd_http_jobs_t *self = it->owner;
	if (!hd_http_transport_result(r, &it->pub.result))
		self->driver.map(self->driver.self, &it->pub, r);
	jobs_report(self, it);
}

int hd_http_jobs_start(hd_http_jobs_t *self, hd_http_job_t *job, const hd_http_request_t *req)
{
	return hd_http_start(self->http, req, jobs_on_http_done, job);
}

/* The driver object begins with its hd_http_jobs_t * (see hd_http.h). */
static hd_http_jobs_t *jobs_of(void *driver)
{
	return *(hd_http_jobs_t **)driver;
}

size_t hd_http_jobs_op_poll_items(void *driver, zmq_pollitem_t *items, size_t max)
{
	return hd_http_poll_items(jobs_of(driver)->http, items, max);
}

void hd_http_jobs_op_handle(void *driver, int64_t now_ms, const zmq_pollitem_t *items,
			    size_t count)
{
	(void)now_ms;
	hd_http_jobs_t *self = jobs_of(driver);
	jobs_flush_ready(self);
	hd_http_handle(self->http, items, count);
	jobs_flush_ready(self);
}

int64_t hd_http_jobs_op_timeout_ms(void *driver, int64_t now_ms)
{
	(void)now_ms;
	hd_http_jobs_t *self = jobs_of(driver);
	if (self->ready_head)
		return 0;
	return hd_http_timeout_ms(self->http);
}

size_t hd_http_jobs_op_in_flight(void *driver)
{
	return jobs_of(driver)->in_flight;
}

size_t hd_http_jobs_op_capacity(void *driver)
{
	return jobs_of(driver)->max_in_flight;
}

void hd_http_jobs_destroy(hd_http_jobs_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_http_jobs_t *self = *self_p;
	hd_http_destroy(&self->http);   /* reports every request in flight as RETRY */
	jobs_flush_ready(self);
	free(self);
	*self_p = NULL;
}

/* ---- pure helpers ------------------------------------------------------ */

int64_t hd_http_parse_retry_after(const char *value, int64_t now_unix_s)
{
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	size_t len = strlen(value);
	while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	if (len == 0 || len > 64)
		return -1;

	bool digits = true, alpha = false;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)value[i]))
			digits = false;
		if (isalpha((unsigned char)value[i]))
			alpha = true;
	}
	int64_t ms;
	if (digits) {
		if (len > 9)   /* more than ~31 years: clamp instead of overflowing */
			return HD_HTTP_MAX_RETRY_AFTER_MS;
		ms = strtoll(value, NULL, 10) * 1000;
	} else {
		/* HTTP-dates name the month and the weekday; curl_getdate alone is lenient */
		if (!alpha)
			return -1;
		char buf[65];
		memcpy(buf, value, len);
		buf[len] = '\0';
		time_t t = curl_getdate(buf, NULL);
		if (t == (time_t)-1)
			return -1;
		ms = ((int64_t)t - now_unix_s) * 1000;
		if (ms < 0)
			ms = 0;
	}
	return ms > HD_HTTP_MAX_RETRY_AFTER_MS ? HD_HTTP_MAX_RETRY_AFTER_MS : ms;
}

void hd_http_redact_url(const char *url, char *out, size_t outlen)
{
	if (!outlen)
		return;
	const char *sep = url ? strstr(url, "://") : NULL;
	if (!sep) {
		snprintf(out, outlen, "(url)");
		return;
	}
	const char *auth = sep + 3;
	size_t alen = strcspn(auth, "/?#");
	const char *at = NULL;
	for (const char *p = auth; p < auth + alen; p++)
		if (*p == '@')
			at = p;
	const char *host = at ? at + 1 : auth;
	int hlen = (int)(auth + alen - host);
	bool more = auth[alen] != '\0';
	snprintf(out, outlen, "%.*s://%.*s%s", (int)(sep - url), url, hlen, host, more ? "/..." : "");
}

char *hd_http_urlencode(const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = hd_malloc(len * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}

int hd_http_hmac_sha256_base64(const void *key, size_t key_len, const void *msg, size_t msg_len,
			       char *out, size_t outlen)
{
	if (outlen < sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES,
					       sodium_base64_VARIANT_ORIGINAL))
		return HD_E_INVALID;
	if (sodium_init() < 0)
		hd_panic("sodium_init failed");
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_init(&st, key, key_len);
	crypto_auth_hmacsha256_update(&st, msg, msg_len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2base64(out, outlen, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
	sodium_memzero(&st, sizeof st);
	return 0;
}

static void wipe_free(char *buf, size_t n)
{
	if (!buf)
		return;
	sodium_memzero(buf, n);
	free(buf);
}

int hd_http_secret_load(const char *file, const char *env, char **out, char *err, size_t errlen)
{
	enum { CAP = HD_HTTP_MAX_SECRET_BYTES + 2 };
	char *buf = NULL;
	size_t len = 0;
	const char *what = file ? "secret_file" : "secret_env";
	const char *where = file ? file : env;

	if (file) {
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(err, errlen, "secret_file %s: %s", file, strerror(errno));
			return HD_E_CONFIG;
		}
		buf = hd_calloc(1, CAP);
		int read_errno = 0;
		while (len <= HD_HTTP_MAX_SECRET_BYTES) {
			ssize_t n = read(fd, buf + len, HD_HTTP_MAX_SECRET_BYTES + 1 - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				read_errno = errno;
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		close(fd);
		if (read_errno || len > HD_HTTP_MAX_SECRET_BYTES) {
			if (read_errno)
				snprintf(err, errlen, "secret_file %s: %s", file, strerror(read_errno));
			else
				snprintf(err, errlen, "secret_file %s: larger than %u bytes", file,
					 HD_HTTP_MAX_SECRET_BYTES);
			wipe_free(buf, CAP);
			return HD_E_CONFIG;
		}
	} else if (env) {
		const char *v = getenv(env);
		if (!v || !*v) {
			snprintf(err, errlen, "secret_env %s: not set", env);
			return HD_E_CONFIG;
		}
		len = strlen(v);
		if (len > HD_HTTP_MAX_SECRET_BYTES) {
			snprintf(err, errlen, "secret_env %s: larger than %u bytes", env,
				 HD_HTTP_MAX_SECRET_BYTES);
			return HD_E_CONFIG;
		}
		buf = hd_calloc(1, CAP);
		memcpy(buf, v, len);
	} else {
		snprintf(err, errlen, "no secret_file or secret_env");
		return HD_E_CONFIG;
	}
	while (len && isspace((unsigned char)buf[len - 1]))
		buf[--len] = '\0';
	if (len == 0 || memchr(buf, '\0', len)) {
		snprintf(err, errlen, "%s %s: empty or binary secret", what, where);
		wipe_free(buf, CAP);
		return HD_E_CONFIG;
	}
	*out = buf;
	return 0;
}

void hd_http_secret_free(char **secret_p)
{
	if (!secret_p || !*secret_p)
		return;
	sodium_memzero(*secret_p, strlen(*secret_p));
	free(*secret_p);
	*secret_p = NULL;
}

/* ---- results ----------------------------------------------------------- */

/* Length of the valid UTF-8 character at p (strict), 0 when invalid. */
static size_t utf8_char_len(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (left < need + 1 || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i <= need; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return need + 1;
}

void hd_http_copy_text(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	if (!dstlen)
		return;
	const unsigned char *p = (const unsigned char *)(src ? src : "");
	size_t o = 0;
	if (!src)
		srclen = 0;
	for (size_t i = 0; i < srclen;) {
		size_t n = utf8_char_len(p + i, srclen - i);
		if (n == 0) {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = '?';
			i++;
			continue;
		}
		if (o + n >= dstlen)
			break;
		if (n == 1 && (p[i] < 0x20 || p[i] == 0x7f))
			dst[o++] = ' ';
		else {
			memcpy(dst + o, p + i, n);
			o += n;
		}
		i += n;
	}
	/* trailing spaces (from a final newline) say nothing */
	while (o && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

void hd_http_result_set(hd_wire_result_t *out, hd_outcome_kind_t outcome, const char *code,
			const char *detail, size_t detail_len)
{
	out->outcome = outcome;
	hd_http_copy_text(out->provider_code, sizeof out->provider_code, code, code ? strlen(code) : 0);
	hd_http_copy_text(out->detail, sizeof out->detail, detail, detail_len);
}

bool hd_http_transport_result(const hd_http_response_t *r, hd_wire_result_t *out)
{
	if (r->aborted) {
		static const char why[] = "worker stopping";
		hd_http_result_set(out, HD_OUTCOME_RETRY, "worker-stopping", why, sizeof why - 1);
		return true;
	}
	if (r->transport_error == 0 && r->status > 0)
		return false;
	const char *why = r->error && *r->error ? r->error : "no HTTP response";
	hd_http_result_set(out, HD_OUTCOME_RETRY, r->timed_out ? "timeout" : "transport", why,
			   strlen(why));
	out->retry_after_ms = 0;
	return true;
}

/* ---- configuration helpers --------------------------------------------- */

static void cfg_error(const config_setting_t *s, const char *name, char *err, size_t errlen,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void cfg_error(const config_setting_t *s, const char *name, char *err, size_t errlen,
		      const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	const char *file = s ? config_setting_source_file(s) : NULL;
	unsigned line = s ? config_setting_source_line(s) : 0;
	snprintf(err, errlen, "%s:%u: %s: %s", file ? file : "(config)", line, name ? name : "", why);
}

int hd_http_cfg_check_keys(const config_setting_t *group, const char *const *allowed,
			   char *err, size_t errlen)
{
	if (!group)
		return 0;
	if (!config_setting_is_group(group)) {
		cfg_error(group, config_setting_name(group), err, errlen, "expected a group { ... }");
		return HD_E_CONFIG;
	}
	int n = config_setting_length(group);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(m);
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = name && strcmp(*a, name) == 0;
		if (!ok) {
			cfg_error(m, name, err, errlen, "unknown setting");
			return HD_E_CONFIG;
		}
	}
	return 0;
}

int hd_http_cfg_int(const config_setting_t *group, const char *name, int64_t def, int64_t min,
		    int64_t max, int64_t *out, char *err, size_t errlen)
{
	const config_setting_t *s = group ? config_setting_get_member(group, name) : NULL;
	if (!s) {
		*out = def;
		return 0;
	}
	int type = config_setting_type(s);
	if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
		cfg_error(s, name, err, errlen, "expected an integer");
		return HD_E_CONFIG;
	}
	long long v = config_setting_get_int64(s);
	if (v < min || v > max) {
		cfg_error(s, name, err, errlen, "%lld is outside %lld..%lld", v, (long long)min,
			  (long long)max);
		return HD_E_CONFIG;
	}
	*out = v;
	return 0;
}

int hd_http_cfg_string(const config_setting_t *group, const char *name, bool required,
		       const char **out, char *err, size_t errlen)
{
	const config_setting_t *s = group ? config_setting_get_member(group, name) : NULL;
	*out = NULL;
	if (!s) {
		if (required) {
			cfg_error(group, name, err, errlen, "required");
			return HD_E_CONFIG;
		}
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		cfg_error(s, name, err, errlen, "expected a string");
		return HD_E_CONFIG;
	}
	*out = config_setting_get_string(s);
	if (required && !**out) {
		cfg_error(s, name, err, errlen, "must not be empty");
		return HD_E_CONFIG;
	}
	return 0;
}

int hd_http_cfg_secret(const config_setting_t *group, bool required, char **out,
		       char *err, size_t errlen)
{
	const char *file, *env;
	*out = NULL;
	if (hd_http_cfg_string(group, "secret_file", false, &file, err, errlen) ||
	    hd_http_cfg_string(group, "secret_env", false, &env, err, errlen))
		return HD_E_CONFIG;
	if (file && env) {
		cfg_error(config_setting_get_member(group, "secret_env"), "secret_env", err, errlen,
			  "give secret_file or secret_env, not both");
		return HD_E_CONFIG;
	}
	if (!file && !env) {
		if (required) {
			cfg_error(group, "secret_file", err, errlen,
				  "required (or secret_env) for this provider");
			return HD_E_CONFIG;
		}
		return 0;
	}
	char why[256];
	if (hd_http_secret_load(file, env, out, why, sizeof why)) {
		const char *key = file ? "secret_file" : "secret_env";
		cfg_error(config_setting_get_member(group, key), key, err, errlen, "%s", why);
		return HD_E_CONFIG;
	}
	return 0;
}

int hd_http_cfg_settings(const config_setting_t *group, hd_http_settings_t *out, char *err,
			 size_t errlen)
{
	if (hd_http_cfg_int(group, "timeout_ms", 10000, 100, 600000, &out->timeout_ms, err, errlen) ||
	    hd_http_cfg_int(group, "connect_timeout_ms", 3000, 50, 120000, &out->connect_timeout_ms,
			    err, errlen) ||
	    hd_http_cfg_int(group, "max_in_flight", 64, 1, 10000, &out->max_in_flight, err, errlen) ||
	    hd_http_cfg_int(group, "max_host_connections", HD_HTTP_DEFAULT_HOST_CONNECTIONS, 1,
			    HD_HTTP_MAX_CONNECTIONS, &out->max_host_connections, err, errlen) ||
	    hd_http_cfg_int(group, "max_connections", HD_HTTP_DEFAULT_CONNECTIONS, 1,
			    HD_HTTP_MAX_CONNECTIONS, &out->max_connections, err, errlen))
		return HD_E_CONFIG;
	return 0;
}
