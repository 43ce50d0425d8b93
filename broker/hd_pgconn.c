/*
 * NAME
 *	hd_pgconn - one asynchronous PostgreSQL connection running a queue of queries
 * DESCRIPTION
 *	States: DOWN (waiting to reconnect) -> CONNECTING -> READY <-> BUSY.
 *	The queue is a singly linked FIFO; the head is the query in flight
 *	while BUSY.
 */
#include "hd_pgconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_err.h"
#include "hd_log.h"
#include "hd_mem.h"
#include "hd_time.h"

typedef enum { PGC_DOWN, PGC_CONNECTING, PGC_READY, PGC_BUSY } pgc_state_t;

#define PGC_CONNECT_DEADLINE_MS 10000
#define PGC_STATEMENT_SLACK_MS 5000

typedef struct pgc_query {
	struct pgc_query *next;
	char *sql;
	int nparams;
	char **params;
	hd_pgconn_done_fn done;
	void *arg;
} pgc_query_t;

struct hd_pgconn {
	hd_pgconn_options_t opts;
	char *name;
	char *conninfo;
	pgc_state_t state;
	PGconn *conn;
	PostgresPollingStatusType connect_poll;
	unsigned attempt;
	int64_t reconnect_at_ms;
	bool want_write;
	int64_t deadline_ms;       /* CONNECTING or BUSY for longer than this: give up */
	pgc_query_t *head, *tail;
	size_t queued;
	PGresult *result;          /* first result of the query in flight */
	bool failed;               /* the query in flight got an error */
	bool lost;                 /* ... and it was the connection */
	char why[256];
	hd_pgconn_up_fn up;
	hd_pgconn_notify_fn notify;
	void *hook_arg;
};

static void pgc_query_free(pgc_query_t *q)
{
	for (int i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q->sql);
	free(q);
}

static pgc_query_t *pgc_pop(hd_pgconn_t *self)
{
	pgc_query_t *q = self->head;
	if (q) {
		self->head = q->next;
		if (!self->head)
			self->tail = NULL;
		self->queued--;
	}
	return q;
}

hd_pgconn_t *hd_pgconn_new(const hd_pgconn_options_t *opts)
{
	hd_pgconn_t *self = hd_calloc(1, sizeof(*self));
	self->opts = *opts;
	self->name = hd_strdup(opts->name ? opts->name : "db");
	self->conninfo = hd_strdup(opts->conninfo ? opts->conninfo : "");
	self->opts.name = self->name;
	self->opts.conninfo = self->conninfo;
	self->state = PGC_DOWN;
	return self;
}

void hd_pgconn_set_hooks(hd_pgconn_t *self, hd_pgconn_up_fn up, hd_pgconn_notify_fn notify,
			 void *arg)
{
	self->up = up;
	self->notify = notify;
	self->hook_arg = arg;
}

static void pgc_fail_all(hd_pgconn_t *self, const char *why)
{
	pgc_query_t *q;
	while ((q = pgc_pop(self)) != NULL) {
		q->done(q->arg, HD_E_UNAVAILABLE, NULL, why);
		pgc_query_free(q);
	}
}

static void pgc_down(hd_pgconn_t *self, int64_t now_ms, const char *why)
{
	char reason[256];
	snprintf(reason, sizeof(reason), "%s", why);
	reason[strcspn(reason, "\n")] = '\0';
	if (self->conn) {
		PQfinish(self->conn);
		self->conn = NULL;
	}
	if (self->result) {
		PQclear(self->result);
		self->result = NULL;
	}
	self->want_write = false;
	int64_t delay = hd_time_backoff_ms(self->attempt, self->opts.reconnect_min_ms,
					   self->opts.reconnect_max_ms);
	if (self->attempt < 30)
		self->attempt++;
	self->reconnect_at_ms = now_ms + delay;
	if (self->state != PGC_DOWN || self->attempt == 1)
		hd_warn("db.down", "conn=%s reason=\"%s\" retry_in_ms=%lld", self->name, reason,
			(long long)delay);
	self->state = PGC_DOWN;
	pgc_fail_all(self, "database unavailable");
}

void hd_pgconn_destroy(hd_pgconn_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_pgconn_t *self = *self_p;
	pgc_fail_all(self, "shutting down");
	if (self->result)
		PQclear(self->result);
	if (self->conn)
		PQfinish(self->conn);
	free(self->name);
	free(self->conninfo);
	free(self);
	*self_p = NULL;
}

int hd_pgconn_query(hd_pgconn_t *self, const char *sql, int nparams, const char *const *params,
		    hd_pgconn_done_fn done, void *arg)
{
	if (self->state != PGC_READY && self->state != PGC_BUSY)
		return HD_E_UNAVAILABLE;
	pgc_query_t *q = hd_calloc(1, sizeof(*q));
	q->sql = hd_strdup(sql);
	q->nparams = nparams;
	q->params = hd_calloc(nparams > 0 ? (size_t)nparams : 1, sizeof(char *));
	for (int i = 0; i < nparams; i++)
		q->params[i] = params[i] ? hd_strdup(params[i]) : NULL;
	q->done = done;
	q->arg = arg;
	if (self->tail)
		self->tail->next = q;
	else
		self->head = q;
	self->tail = q;
	self->queued++;
	return HD_OK;
}

bool hd_pgconn_is_up(const hd_pgconn_t *self)
{
	return self->state == PGC_READY || self->state == PGC_BUSY;
}

size_t hd_pgconn_pending(const hd_pgconn_t *self)
{
	return self->queued;
}

static void pgc_connect_start(hd_pgconn_t *self, int64_t now_ms)
{
	char options[128];
	snprintf(options, sizeof(options), "-c synchronous_commit=on -c statement_timeout=%lld",
		 (long long)self->opts.statement_timeout_ms);
	char appname[64];
	snprintf(appname, sizeof(appname), "heraldd-%s", self->name);
	/* TCP keepalives: a database host that vanishes from the network is
	 * noticed in about 25 s instead of never. */
	const char *keys[] = {"dbname", "application_name", "connect_timeout", "options",
			      "keepalives", "keepalives_idle", "keepalives_interval",
			      "keepalives_count", NULL};
	const char *vals[] = {self->conninfo, appname, "5", options, "1", "10", "5", "3", NULL};
	self->conn = PQconnectStartParams(keys, vals, 1);
	if (!self->conn || PQstatus(self->conn) == CONNECTION_BAD) {
		pgc_down(self, now_ms, self->conn ? PQerrorMessage(self->conn) : "out of memory");
		return;
	}
	self->state = PGC_CONNECTING;
	/* PQconnectPoll ignores connect_timeout: the deadline is ours to keep. */
	self->deadline_ms = now_ms + PGC_CONNECT_DEADLINE_MS;
	self->connect_poll = PGRES_POLLING_WRITING;
}

static void pgc_send_next(hd_pgconn_t *self, int64_t now_ms)
{
	pgc_query_t *q = self->head;
	if (!q || self->state != PGC_READY)
		return;
	self->failed = self->lost = false;
	if (!PQsendQueryParams(self->conn, q->sql, q->nparams, NULL,
			       (const char *const *)q->params, NULL, NULL, 0)) {
		pgc_down(self, now_ms, PQerrorMessage(self->conn));
		return;
	}
	self->state = PGC_BUSY;
	self->deadline_ms = now_ms + self->opts.statement_timeout_ms + PGC_STATEMENT_SLACK_MS;
	self->want_write = PQflush(self->conn) == 1;
}

static void pgc_drain_notifies(hd_pgconn_t *self)
{
	PGnotify *n;
	while ((n = PQnotifies(self->conn)) != NULL) {
		if (self->notify)
			self->notify(self->hook_arg, n->relname, n->extra);
		PQfreemem(n);
	}
}

static void pgc_finish_query(hd_pgconn_t *self)
{
	pgc_query_t *q = pgc_pop(self);
	PGresult *res = self->result;
	self->result = NULL;
	self->state = PGC_READY;
	if (self->failed)
		q->done(q->arg, HD_E_INTERNAL, NULL, self->why);
	else
		q->done(q->arg, HD_OK, res, NULL);
	if (res)
		PQclear(res);
	pgc_query_free(q);
}

static void pgc_read(hd_pgconn_t *self, int64_t now_ms)
{
	if (!PQconsumeInput(self->conn)) {
		pgc_down(self, now_ms, PQerrorMessage(self->conn));
		return;
	}
	pgc_drain_notifies(self);
	while (self->state == PGC_BUSY && !PQisBusy(self->conn)) {
		PGresult *res = PQgetResult(self->conn);
		if (!res) {
			if (self->lost) {
				pgc_down(self, now_ms, self->why);
				return;
			}
			pgc_finish_query(self);
			return;
		}
		ExecStatusType st = PQresultStatus(res);
		if ((st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) && !self->result && !self->failed) {
			self->result = res;
			continue;
		}
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			snprintf(self->why, sizeof(self->why), "%s", PQresultErrorMessage(res));
			self->why[strcspn(self->why, "\n")] = '\0';
			const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			self->failed = true;
			self->lost = PQstatus(self->conn) == CONNECTION_BAD || !code ||
				     strncmp(code, "08", 2) == 0 || strncmp(code, "57P", 3) == 0;
			if (self->result) {
				PQclear(self->result);
				self->result = NULL;
			}
		}
		PQclear(res);
	}
	if (PQstatus(self->conn) == CONNECTION_BAD)
		pgc_down(self, now_ms, "connection closed by server");
}

bool hd_pgconn_poll_item(const hd_pgconn_t *self, zmq_pollitem_t *item)
{
	short events;
	switch (self->state) {
	case PGC_CONNECTING:
		events = self->connect_poll == PGRES_POLLING_READING ? ZMQ_POLLIN : ZMQ_POLLOUT;
		break;
	case PGC_READY:
		events = ZMQ_POLLIN;
		break;
	case PGC_BUSY:
		events = (short)(ZMQ_POLLIN | (self->want_write ? ZMQ_POLLOUT : 0));
		break;
	default:
		return false;
	}
	*item = (zmq_pollitem_t){NULL, PQsocket(self->conn), events, 0};
	return true;
}

void hd_pgconn_handle(hd_pgconn_t *self, int64_t now_ms, const zmq_pollitem_t *item)
{
	bool readable = item && (item->revents & ZMQ_POLLIN);
	bool writable = item && (item->revents & ZMQ_POLLOUT);
	if ((self->state == PGC_CONNECTING || self->state == PGC_BUSY) && now_ms > self->deadline_ms) {
		pgc_down(self, now_ms, self->state == PGC_CONNECTING ? "connect timed out"
								     : "no answer from the server");
		return;
	}
	switch (self->state) {
	case PGC_DOWN:
		if (now_ms >= self->reconnect_at_ms)
			pgc_connect_start(self, now_ms);
		return;
	case PGC_CONNECTING:
		if (!readable && !writable)
			return;
		self->connect_poll = PQconnectPoll(self->conn);
		if (self->connect_poll == PGRES_POLLING_FAILED) {
			pgc_down(self, now_ms, PQerrorMessage(self->conn));
			return;
		}
		if (self->connect_poll != PGRES_POLLING_OK)
			return;
		PQsetnonblocking(self->conn, 1);
		self->state = PGC_READY;
		hd_info("db.connected", "conn=%s after_attempts=%u", self->name, self->attempt);
		self->attempt = 0;
		if (self->up)
			self->up(self->hook_arg);
		break;
	case PGC_BUSY:
		if (writable && self->want_write) {
			int rc = PQflush(self->conn);
			if (rc < 0) {
				pgc_down(self, now_ms, PQerrorMessage(self->conn));
				return;
			}
			self->want_write = rc == 1;
		}
		if (readable)
			pgc_read(self, now_ms);
		break;
	case PGC_READY:
		if (readable)
			pgc_read(self, now_ms);
		break;
	}
	if (self->state == PGC_READY)
		pgc_send_next(self, now_ms);
}

int64_t hd_pgconn_timeout_ms(const hd_pgconn_t *self, int64_t now_ms)
{
	if (self->state == PGC_DOWN) {
		int64_t wait = self->reconnect_at_ms - now_ms;
		return wait > 0 ? wait : 0;
	}
	if (self->state == PGC_READY && self->head)
		return 0;
	return -1;
}
