/*
 * NAME
 *	hd_dispatch - the scheduler and the worker-facing ROUTER socket of heraldd
 * DESCRIPTION
 *	Jobs move LOADING (claimed, content being fetched) -> READY (in a
 *	per-channel FIFO, or the throttled list while a rate limit holds
 *	them) -> SENT (with a worker) -> gone (outcome queued for recording).
 *	The window bounds how many jobs exist at once, so memory does not
 *	grow with the queue in the database. Two hd_pgconn connections run
 *	the statements: one claims and fetches contents (and reports
 *	workers, runs approval ticks, listens for releases), the other
 *	records outcomes, so neither waits for the other's round trips.
 */
#include "hd_dispatch.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hd_err.h"
#include "hd_log.h"
#include "hd_mem.h"
#include "hd_pgconn.h"
#include "hd_time.h"
#include "hd_wire.h"

#define DP_MAX_WORKERS 256
#define DP_CHANNELS 3
#define DP_WORKERS_REPORT_MS 2000

typedef struct dp_content {
	int64_t message_id;
	unsigned refs;
	hd_msg_t *msg;
} dp_content_t;

typedef enum { JOB_LOADING, JOB_READY, JOB_THROTTLED, JOB_SENT } dp_job_state_t;

typedef struct dp_job {
	struct dp_job *next;          /* ready or throttled list link */
	int64_t delivery_id;
	int64_t message_id;
	uint32_t attempt;
	hd_channel_t channel;
	hd_class_t klass;
	char *recipient;
	char *kind;
	char *endpoint;               /* IM: the group's registered endpoint; NULL = none */
	dp_content_t *content;
	dp_job_state_t state;
	int worker;                   /* index into workers while SENT */
	int64_t not_before_ms;        /* THROTTLED: when a token is due */
	int64_t lease_end_ms;         /* monotonic; the lease was taken at claim time */
} dp_job_t;

typedef struct dp_worker {
	bool live;
	bool leaving;                 /* said BYE: no new jobs, its results still count */
	unsigned char id[256];
	size_t id_len;
	char name[HD_WIRE_MAX_NAME_BYTES + 1];
	unsigned channels;
	uint32_t credit;
	uint32_t in_use;
	int64_t heartbeat_ms;
	int64_t last_recv_ms;
	int64_t last_send_ms;
	int64_t connected_at_us;
} dp_worker_t;

/* The send times of the last `count` deliveries to one recipient. */
typedef struct dp_bucket {
	char *key;                    /* "<channel>\x1f<recipient>"; NULL = empty slot */
	int64_t *sent_ms;             /* ring of rl->count send times */
	size_t next;                  /* oldest entry once full */
	size_t filled;
	int64_t newest_ms;
} dp_bucket_t;

typedef struct dp_list {
	dp_job_t *head, *tail;
	size_t count;
} dp_list_t;

struct hd_dispatch {
	const hd_config_t *cfg;
	void *router;
	hd_pgconn_t *db;              /* claims, contents, workers, ticks, LISTEN */
	hd_pgconn_t *db_out;          /* outcomes, so recording never waits for a claim */
	int poll_db, poll_out;        /* their places in the last poll items, -1 = none */
	char owner[96];

	dp_worker_t workers[DP_MAX_WORKERS];
	size_t worker_count;          /* live ones */
	size_t rr;                    /* round-robin start */

	dp_job_t **map;               /* open addressing by delivery_id */
	size_t map_cap;
	size_t jobs;                  /* all jobs in the window */
	dp_list_t ready[DP_CHANNELS];
	dp_list_t throttled;

	hd_rate_limit_t limits[DP_CHANNELS];
	bool limited[DP_CHANNELS];
	dp_bucket_t *buckets;
	size_t bucket_cap, bucket_count;
	int64_t buckets_pruned_ms;

	bool stopping;
	bool claim_in_flight;
	bool more_due;                /* the last claim came back full */
	bool woken;                   /* new work was announced while a claim ran */
	int64_t claim_requested;      /* max_n of the claim in flight */
	int64_t next_claim_ms;
	dp_job_t **loading;           /* jobs of the claim whose content is being fetched */
	size_t loading_count;

	int64_t next_tick_ms;         /* approval expiries and reminders */
	bool tick_in_flight;
	json_t *outcomes;             /* waiting to be recorded */
	int64_t outcomes_since_ms;    /* when the oldest of them arrived */
	json_t *outcomes_in_flight;   /* being recorded; back to outcomes on failure */
	bool report_in_flight;
	bool outcome_in_flight;
	int64_t next_workers_report_ms;

	hd_dispatch_stats_t stats;
};

static const char dp_claim_sql[] =
	"SELECT delivery_id, message_id, attempt, recipient, kind, channel, class, endpoint "
	"FROM herald.claim_deliveries($1, $2::text[], $3::int, $4::int)";
static const char dp_contents_sql[] =
	"SELECT message_id, channel, sender, subject, body, html, cc_reason, purpose, reply_by, "
	"to_jsonb(flags), tags, to_jsonb(to_list), to_jsonb(cc_list), attachments "
	"FROM herald.message_contents($1::bigint[])";
static const char dp_outcomes_sql[] =
	"SELECT delivery_id, applied, state FROM herald.record_outcomes($1, $2::jsonb)";

/* ---- job map --------------------------------------------------------------- */

static size_t dp_slot(const hd_dispatch_t *self, int64_t id)
{
	uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 20) & (self->map_cap - 1);
}

static dp_job_t *dp_find(const hd_dispatch_t *self, int64_t id)
{
	for (size_t s = dp_slot(self, id); self->map[s]; s = (s + 1) & (self->map_cap - 1))
		if (self->map[s]->delivery_id == id)
			return self->map[s];
	return NULL;
}

static void dp_insert(hd_dispatch_t *self, dp_job_t *job)
{
	size_t s = dp_slot(self, job->delivery_id);
	while (self->map[s])
		s = (s + 1) & (self->map_cap - 1);
	self->map[s] = job;
	self->jobs++;
}

/* Remove with backward-shift deletion, so lookups need no tombstones. */
static void dp_remove(hd_dispatch_t *self, const dp_job_t *job)
{
	size_t s = dp_slot(self, job->delivery_id);
	while (self->map[s] != job)
		s = (s + 1) & (self->map_cap - 1);
	self->map[s] = NULL;
	self->jobs--;
	for (size_t n = (s + 1) & (self->map_cap - 1); self->map[n]; n = (n + 1) & (self->map_cap - 1)) {
		size_t home = dp_slot(self, self->map[n]->delivery_id);
		/* Move the entry back if its home is not in (s, n]. */
		bool between = s <= n ? (home > s && home <= n) : (home > s || home <= n);
		if (!between) {
			self->map[s] = self->map[n];
			self->map[n] = NULL;
			s = n;
		}
	}
}

static void dp_content_release(dp_content_t **c_p)
{
	dp_content_t *c = *c_p;
	*c_p = NULL;
	if (c && --c->refs == 0) {
		hd_msg_destroy(&c->msg);
		free(c);
	}
}

/* Free job and what it owns (it must be out of the map already). */
static void dp_job_dispose(dp_job_t *job)
{
	dp_content_release(&job->content);
	free(job->recipient);
	free(job->kind);
	free(job->endpoint);
	free(job);
}

static void dp_job_free(hd_dispatch_t *self, dp_job_t *job)
{
	dp_remove(self, job);
	dp_job_dispose(job);
}

static void dp_push(dp_list_t *l, dp_job_t *job)
{
	job->next = NULL;
	if (l->tail)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
	l->count++;
}

/* Unlink job from l if it is there (O(n): rare path). */
static void dp_unlink(dp_list_t *l, const dp_job_t *job)
{
	dp_job_t *prev = NULL;
	for (dp_job_t *j = l->head; j; prev = j, j = j->next) {
		if (j != job)
			continue;
		if (prev)
			prev->next = j->next;
		else
			l->head = j->next;
		if (l->tail == j)
			l->tail = prev;
		l->count--;
		j->next = NULL;
		return;
	}
}

static dp_job_t *dp_pop(dp_list_t *l)
{
	dp_job_t *job = l->head;
	if (job) {
		l->head = job->next;
		if (!l->head)
			l->tail = NULL;
		l->count--;
		job->next = NULL;
	}
	return job;
}

/* ---- rate limits ------------------------------------------------------------ */

static uint64_t dp_hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void dp_buckets_resize(hd_dispatch_t *self, size_t cap)
{
	dp_bucket_t *old = self->buckets;
	size_t old_cap = self->bucket_cap;
	self->buckets = hd_calloc(cap, sizeof(dp_bucket_t));
	self->bucket_cap = cap;
	self->bucket_count = 0;
	for (size_t i = 0; i < old_cap; i++) {
		if (!old[i].key)
			continue;
		size_t s = (size_t)dp_hash_str(old[i].key) & (cap - 1);
		while (self->buckets[s].key)
			s = (s + 1) & (cap - 1);
		self->buckets[s] = old[i];
		self->bucket_count++;
	}
	free(old);
}

static dp_bucket_t *dp_bucket(hd_dispatch_t *self, const dp_job_t *job)
{
	char key[HD_MAX_ADDR_BYTES + 8];
	snprintf(key, sizeof(key), "%d\x1f%s", (int)job->channel, job->recipient);
	if (self->bucket_count * 2 >= self->bucket_cap)
		dp_buckets_resize(self, self->bucket_cap * 2);
	size_t s = (size_t)dp_hash_str(key) & (self->bucket_cap - 1);
	while (self->buckets[s].key && strcmp(self->buckets[s].key, key) != 0)
		s = (s + 1) & (self->bucket_cap - 1);
	dp_bucket_t *b = &self->buckets[s];
	if (!b->key) {
		b->key = hd_strdup(key);
		b->sent_ms = hd_calloc((size_t)self->limits[job->channel].count, sizeof(int64_t));
		self->bucket_count++;
	}
	return b;
}

/*
 * A sliding window, not a refilling bucket: at most count sends in any
 * per_seconds, which is how providers count ("20 messages a minute"). A
 * token bucket would allow twice that in the first window.
 */
static bool dp_take_token(hd_dispatch_t *self, const dp_job_t *job, int64_t now_ms,
			  int64_t *due_ms)
{
	if (!self->limited[job->channel])
		return true;
	const hd_rate_limit_t *rl = &self->limits[job->channel];
	dp_bucket_t *b = dp_bucket(self, job);
	int64_t window_ms = rl->per_seconds * 1000;
	if (b->filled == (size_t)rl->count) {
		int64_t oldest = b->sent_ms[b->next];
		if (now_ms - oldest < window_ms) {
			*due_ms = oldest + window_ms;
			return false;
		}
	} else {
		b->filled++;
	}
	b->sent_ms[b->next] = now_ms;
	b->next = (b->next + 1) % (size_t)rl->count;
	b->newest_ms = now_ms;
	return true;
}

/* Windows with no send inside them carry no state: drop them now and then. */
static void dp_buckets_prune(hd_dispatch_t *self, int64_t now_ms)
{
	if (now_ms - self->buckets_pruned_ms < 60000 || self->bucket_count < 1024)
		return;
	self->buckets_pruned_ms = now_ms;
	dp_bucket_t *old = self->buckets;
	size_t cap = self->bucket_cap;
	self->buckets = hd_calloc(cap, sizeof(dp_bucket_t));
	self->bucket_count = 0;
	for (size_t i = 0; i < cap; i++) {
		if (!old[i].key)
			continue;
		int ch = atoi(old[i].key);
		if (now_ms - old[i].newest_ms >= self->limits[ch].per_seconds * 1000) {
			free(old[i].key);
			free(old[i].sent_ms);
			continue;
		}
		size_t s = (size_t)dp_hash_str(old[i].key) & (cap - 1);
		while (self->buckets[s].key)
			s = (s + 1) & (cap - 1);
		self->buckets[s] = old[i];
		self->bucket_count++;
	}
	free(old);
}

/* ---- lifecycle -------------------------------------------------------------- */

static void dp_on_db_up(void *arg);
static void dp_on_notify(void *arg, const char *channel, const char *payload);

hd_dispatch_t *hd_dispatch_new(void *zmq_ctx, const hd_config_t *cfg, const char *conninfo,
			       char *err, size_t errlen)
{
	void *router = zmq_socket(zmq_ctx, ZMQ_ROUTER);
	if (!router) {
		snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
		return NULL;
	}
	int linger = 1000, hwm = 100000;
	int64_t max_size = HD_MAX_FRAME_BYTES;
	zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(router, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(router, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(router, ZMQ_MAXMSGSIZE, &max_size, sizeof(max_size));
	if (zmq_bind(router, cfg->dispatch.listen) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", cfg->dispatch.listen,
			 zmq_strerror(errno));
		zmq_close(router);
		return NULL;
	}
	hd_dispatch_t *self = hd_calloc(1, sizeof(*self));
	self->cfg = cfg;
	self->router = router;
	char host[64] = "host";
	gethostname(host, sizeof(host) - 1);
	snprintf(self->owner, sizeof(self->owner), "%.48s:%ld:%08x", host, (long)getpid(),
		 randombytes_random());
	self->map_cap = 16;
	while (self->map_cap < (size_t)cfg->dispatch.window * 2)
		self->map_cap <<= 1;
	self->map = hd_calloc(self->map_cap, sizeof(dp_job_t *));
	self->loading = hd_calloc((size_t)cfg->dispatch.claim_batch, sizeof(dp_job_t *));
	self->bucket_cap = 64;
	self->buckets = hd_calloc(self->bucket_cap, sizeof(dp_bucket_t));
	for (size_t i = 0; i < cfg->dispatch.rate_limit_count; i++) {
		hd_rate_limit_t rl;
		if (hd_config_parse_rate_limit(cfg->dispatch.rate_limits[i], &rl) == HD_OK) {
			self->limits[rl.channel] = rl;
			self->limited[rl.channel] = true;
		}
	}
	self->outcomes = json_array();
	hd_pgconn_options_t o = {
		.name = "dispatch",
		.conninfo = conninfo,
		.reconnect_min_ms = cfg->database.reconnect_min_ms,
		.reconnect_max_ms = cfg->database.reconnect_max_ms,
		.statement_timeout_ms = cfg->database.statement_timeout_ms,
	};
	self->db = hd_pgconn_new(&o);
	hd_pgconn_set_hooks(self->db, dp_on_db_up, dp_on_notify, self);
	o.name = "outcomes";
	self->db_out = hd_pgconn_new(&o);
	self->poll_db = self->poll_out = -1;
	hd_info("dispatch.start", "listen=%s owner=%s window=%lld lease_ms=%lld",
		cfg->dispatch.listen, self->owner, (long long)cfg->dispatch.window,
		(long long)cfg->dispatch.lease_ms);
	return self;
}

void hd_dispatch_destroy(hd_dispatch_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_dispatch_t *self = *self_p;
	hd_pgconn_destroy(&self->db);
	hd_pgconn_destroy(&self->db_out);
	for (size_t i = 0; i < self->map_cap; i++) {
		dp_job_t *job = self->map[i];
		if (job)
			dp_job_dispose(job);
	}
	free(self->map);
	free(self->loading);
	for (size_t i = 0; i < self->bucket_cap; i++) {
		free(self->buckets[i].key);
		free(self->buckets[i].sent_ms);
	}
	free(self->buckets);
	json_decref(self->outcomes);
	json_decref(self->outcomes_in_flight);
	zmq_close(self->router);
	free(self);
	*self_p = NULL;
}

/* ---- sending to workers ------------------------------------------------------ */

/* Returns HD_OK, or the encoder's error for a frame that cannot be sent. */
static int dp_send(hd_dispatch_t *self, dp_worker_t *w, const hd_wire_frame_t *frame,
		   int64_t now_ms)
{
	uint8_t *buf;
	size_t len;
	int rc = hd_wire_encode(frame, &buf, &len);
	if (rc != HD_OK)
		return rc;
	if (zmq_send(self->router, w->id, w->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
		zmq_send(self->router, buf, len, ZMQ_DONTWAIT);
	free(buf);
	w->last_send_ms = now_ms;
	return HD_OK;
}

static dp_worker_t *dp_pick_worker(hd_dispatch_t *self, hd_channel_t ch)
{
	dp_worker_t *best = NULL;
	double best_load = 2.0;
	for (size_t k = 0; k < DP_MAX_WORKERS; k++) {
		dp_worker_t *w = &self->workers[(self->rr + k) % DP_MAX_WORKERS];
		if (!w->live || w->leaving || !(w->channels & (1u << ch)) || w->in_use >= w->credit)
			continue;
		double load = (double)w->in_use / (double)w->credit;
		if (load < best_load) {
			best = w;
			best_load = load;
		}
	}
	self->rr++;
	return best;
}

static void dp_on_result(hd_dispatch_t *self, const hd_wire_result_t *r);
static void dp_worker_gone(hd_dispatch_t *self, dp_worker_t *w, const char *why);

static void dp_assign(hd_dispatch_t *self, int64_t now_ms)
{
	/* Throttled jobs whose token is due go back to the front of the line. */
	dp_list_t still = {0};
	dp_job_t *job;
	while ((job = dp_pop(&self->throttled)) != NULL) {
		if (job->not_before_ms <= now_ms) {
			job->state = JOB_READY;
			job->next = self->ready[job->channel].head;
			self->ready[job->channel].head = job;
			if (!self->ready[job->channel].tail)
				self->ready[job->channel].tail = job;
			self->ready[job->channel].count++;
		} else {
			dp_push(&still, job);
		}
	}
	self->throttled = still;

	for (int ch = 0; ch < DP_CHANNELS; ch++) {
		dp_list_t *q = &self->ready[ch];
		while (q->head) {
			dp_worker_t *w = dp_pick_worker(self, (hd_channel_t)ch);
			if (!w)
				break;
			job = dp_pop(q);
			/* The lease runs from the claim: give the worker what is left,
			 * and nothing when too little is left to finish safely (the
			 * delivery is claimed again once the lease expires). */
			int64_t lease_left = job->lease_end_ms - now_ms;
			if (lease_left < self->cfg->dispatch.lease_ms / 4) {
				hd_info("dispatch.lease_too_short", "delivery_id=%lld left_ms=%lld",
					(long long)job->delivery_id, (long long)lease_left);
				dp_job_free(self, job);
				continue;
			}
			int64_t due;
			if (!dp_take_token(self, job, now_ms, &due)) {
				job->state = JOB_THROTTLED;
				job->not_before_ms = due;
				dp_push(&self->throttled, job);
				continue;
			}
			hd_wire_frame_t f = {.type = HD_WIRE_JOB};
			f.u.job.delivery_id = job->delivery_id;
			f.u.job.message_id = job->message_id;
			f.u.job.attempt = job->attempt;
			f.u.job.lease_ms = (uint32_t)lease_left;
			f.u.job.recipient = job->recipient;
			f.u.job.kind = job->kind;
			f.u.job.endpoint = job->endpoint;
			f.u.job.klass = job->klass;
			f.u.job.msg = job->content->msg;
			job->state = JOB_SENT;
			job->worker = (int)(w - self->workers);
			w->in_use++;
			if (dp_send(self, w, &f, now_ms) != HD_OK) {
				/* Stored data no worker can be given: a dead letter, not a crash. */
				hd_wire_result_t r = {.delivery_id = job->delivery_id,
						      .attempt = job->attempt,
						      .outcome = HD_OUTCOME_FAILED};
				snprintf(r.provider, sizeof(r.provider), "heraldd");
				snprintf(r.provider_code, sizeof(r.provider_code), "unencodable");
				snprintf(r.detail, sizeof(r.detail), "the stored message cannot be encoded as a job");
				dp_on_result(self, &r);
				continue;
			}
			self->stats.sent_to_workers++;
		}
	}
}

/* New work was announced (a release, an intake): claim within coalesce_ms,
 * so that releases arriving together are claimed by one statement. */
static void dp_claim_soon(hd_dispatch_t *self)
{
	int64_t at = hd_time_mono_ms() + self->cfg->dispatch.coalesce_ms;
	if (self->next_claim_ms > at)
		self->next_claim_ms = at;
}

/* ---- outcomes -------------------------------------------------------------- */

static void dp_outcomes_done(void *arg, int code, const PGresult *res, const char *why)
{
	hd_dispatch_t *self = arg;
	self->outcome_in_flight = false;
	json_t *batch = self->outcomes_in_flight;
	self->outcomes_in_flight = NULL;
	if (code != HD_OK) {
		/* Keep them for the next try: record_outcomes applies a result only
		 * while we still hold that lease and attempt, so repeating is safe,
		 * and dropping them would send delivered messages again. */
		hd_warn("dispatch.outcomes_retry", "count=%zu reason=\"%s\"",
			json_array_size(batch), why ? why : "");
		json_array_extend(batch, self->outcomes);
		json_decref(self->outcomes);
		self->outcomes = batch;
		/* Try again after coalesce_ms, not on the very next turn. */
		self->outcomes_since_ms = hd_time_mono_ms();
		return;
	}
	json_decref(batch);
	int stale = 0;
	for (int r = 0; r < PQntuples(res); r++)
		stale += PQgetvalue(res, r, 1)[0] != 't';
	if (stale)
		hd_info("dispatch.stale_outcomes", "count=%d reason=\"lease no longer ours\"", stale);
}

/* Results wait up to coalesce_ms (or until a full batch) so that the ones
 * arriving together are recorded in one transaction. */
static bool dp_outcomes_due(const hd_dispatch_t *self, int64_t now_ms)
{
	size_t n = json_array_size(self->outcomes);
	return n > 0 && !self->outcome_in_flight && hd_pgconn_is_up(self->db_out) &&
	       (self->stopping || n >= (size_t)self->cfg->dispatch.outcome_batch_max ||
		now_ms >= self->outcomes_since_ms + self->cfg->dispatch.coalesce_ms);
}

static void dp_flush_outcomes(hd_dispatch_t *self, int64_t now_ms)
{
	if (!dp_outcomes_due(self, now_ms))
		return;
	size_t max = (size_t)self->cfg->dispatch.outcome_batch_max;
	json_t *batch = self->outcomes;
	if (json_array_size(batch) > max) {
		/* One forward pass: the first max go now, the rest wait. */
		json_t *now_part = json_array(), *rest = json_array();
		size_t i;
		json_t *v;
		json_array_foreach(batch, i, v)
			json_array_append(i < max ? now_part : rest, v);
		json_decref(batch);
		batch = now_part;
		self->outcomes = rest;   /* they keep their age: due at once if it is up */
	} else {
		self->outcomes = json_array();
	}
	char *text = json_dumps(batch, JSON_COMPACT);
	const char *params[2] = {self->owner, text};
	if (hd_pgconn_query(self->db_out, dp_outcomes_sql, 2, params, dp_outcomes_done, self) == HD_OK) {
		self->outcome_in_flight = true;
		self->outcomes_in_flight = batch;
	} else {
		json_array_extend(batch, self->outcomes);
		json_decref(self->outcomes);
		self->outcomes = batch;
	}
	free(text);
}

static void dp_on_result(hd_dispatch_t *self, const hd_wire_result_t *r)
{
	dp_job_t *job = dp_find(self, r->delivery_id);
	if (!job || job->state != JOB_SENT || job->attempt != r->attempt) {
		self->stats.stale_results++;
		hd_info("dispatch.stale_result", "delivery_id=%lld attempt=%u",
			(long long)r->delivery_id, r->attempt);
		return;
	}
	dp_worker_t *w = &self->workers[job->worker];
	if (w->in_use > 0)
		w->in_use--;
	bool last_of_leaving = w->live && w->leaving && w->in_use == 0;

	int64_t next_ms = 0;
	if (r->outcome == HD_OUTCOME_RETRY) {
		int64_t delay = r->retry_after_ms > 0
			? r->retry_after_ms
			: hd_time_backoff_ms(job->attempt > 0 ? job->attempt - 1 : 0,
					     self->cfg->retry.min_backoff_ms,
					     self->cfg->retry.max_backoff_ms);
		next_ms = hd_time_now_us() / 1000 + delay;
		self->stats.retried++;
	} else if (r->outcome == HD_OUTCOME_DELIVERED) {
		self->stats.delivered++;
	} else {
		self->stats.failed++;
	}
	json_t *o = json_pack("{s:I, s:i, s:s, s:s, s:s, s:s, s:I}",
			      "delivery_id", (json_int_t)r->delivery_id,
			      "attempt", (int)r->attempt,
			      "outcome", hd_outcome_name(r->outcome),
			      "provider", r->provider,
			      "code", r->provider_code,
			      "detail", r->detail,
			      "max_lifetime_s", (json_int_t)self->cfg->retry.max_lifetime_s);
	json_object_set_new(o, "provider_id", r->provider_id[0] ? json_string(r->provider_id)
								  : json_null());
	json_object_set_new(o, "next_attempt_at_ms",
			    next_ms ? json_integer((json_int_t)next_ms) : json_null());
	if (json_array_size(self->outcomes) == 0)
		self->outcomes_since_ms = hd_time_mono_ms();
	json_array_append_new(self->outcomes, o);
	hd_info("dispatch.outcome", "delivery_id=%lld attempt=%u channel=%s outcome=%s provider=%s code=%s worker=%s",
		(long long)r->delivery_id, r->attempt, hd_channel_name(job->channel),
		hd_outcome_name(r->outcome), r->provider, r->provider_code, w->name);
	dp_job_free(self, job);
	if (last_of_leaving)
		dp_worker_gone(self, w, "bye");
	/* Credit came back while deliveries are waiting: claim now. */
	if (self->more_due)
		self->next_claim_ms = 0;
}

/* ---- claiming --------------------------------------------------------------- */

static void dp_fail_loading(hd_dispatch_t *self)
{
	for (size_t i = 0; i < self->loading_count; i++)
		dp_job_free(self, self->loading[i]);
	self->loading_count = 0;
	self->claim_in_flight = false;
}

static hd_msg_t *dp_msg_from_row(const PGresult *res, int r)
{
	hd_channel_t ch = HD_CHANNEL_EMAIL;
	hd_channel_parse(PQgetvalue(res, r, 1), &ch);
	hd_msg_t *m = hd_msg_new(ch);
	m->sender = hd_strdup(PQgetvalue(res, r, 2));
	if (!PQgetisnull(res, r, 3))
		m->subject = hd_strdup(PQgetvalue(res, r, 3));
	if (!PQgetisnull(res, r, 4))
		m->body = hd_strdup(PQgetvalue(res, r, 4));
	if (!PQgetisnull(res, r, 5))
		m->html = hd_strdup(PQgetvalue(res, r, 5));
	if (!PQgetisnull(res, r, 6))
		m->cc_reason = hd_strdup(PQgetvalue(res, r, 6));
	if (!PQgetisnull(res, r, 7))
		hd_purpose_parse(PQgetvalue(res, r, 7), &m->purpose);
	if (!PQgetisnull(res, r, 8))
		m->reply_by = strtoll(PQgetvalue(res, r, 8), NULL, 10);

	json_t *flags = json_loads(PQgetvalue(res, r, 9), 0, NULL);
	size_t i;
	json_t *v;
	json_array_foreach(flags, i, v) {
		hd_flag_t f;
		if (json_is_string(v) && hd_flag_parse(json_string_value(v), &f) == HD_OK)
			m->flags |= (unsigned)f;
	}
	json_decref(flags);
	json_t *tags = json_loads(PQgetvalue(res, r, 10), 0, NULL);
	const char *k;
	json_object_foreach(tags, k, v)
		if (json_is_string(v))
			hd_msg_add_tag(m, k, json_string_value(v));
	json_decref(tags);
	json_t *to = json_loads(PQgetvalue(res, r, 11), 0, NULL);
	json_array_foreach(to, i, v)
		if (json_is_string(v))
			hd_msg_add_to(m, json_string_value(v));
	json_decref(to);
	json_t *cc = json_loads(PQgetvalue(res, r, 12), 0, NULL);
	json_array_foreach(cc, i, v)
		if (json_is_string(v))
			hd_msg_add_cc(m, json_string_value(v));
	json_decref(cc);
	json_t *atts = json_loads(PQgetvalue(res, r, 13), 0, NULL);
	json_array_foreach(atts, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *type = json_string_value(json_object_get(v, "type"));
		const char *b64 = json_string_value(json_object_get(v, "data"));
		if (!name || !type || !b64)
			continue;
		size_t b64_len = strlen(b64);
		uint8_t *bin = hd_malloc(b64_len / 4 * 3 + 3);
		size_t bin_len = 0;
		if (sodium_base642bin(bin, b64_len / 4 * 3 + 3, b64, b64_len, "\n\r ", &bin_len,
				      NULL, sodium_base64_VARIANT_ORIGINAL) == 0)
			hd_msg_add_attachment(m, name, type, bin, bin_len);
		free(bin);
	}
	json_decref(atts);
	return m;
}

static void dp_contents_done(void *arg, int code, const PGresult *res, const char *why)
{
	hd_dispatch_t *self = arg;
	if (code != HD_OK) {
		hd_warn("dispatch.contents_failed", "reason=\"%s\"", why ? why : "");
		dp_fail_loading(self);
		return;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		int64_t mid = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		dp_content_t *c = hd_calloc(1, sizeof(*c));
		c->message_id = mid;
		c->msg = dp_msg_from_row(res, r);
		for (size_t i = 0; i < self->loading_count; i++) {
			dp_job_t *job = self->loading[i];
			if (job->message_id == mid && !job->content) {
				job->content = c;
				c->refs++;
			}
		}
		if (c->refs == 0) {
			hd_msg_destroy(&c->msg);
			free(c);
		}
	}
	for (size_t i = 0; i < self->loading_count; i++) {
		dp_job_t *job = self->loading[i];
		if (!job->content) {
			hd_error("dispatch.no_content", "delivery_id=%lld message_id=%lld",
				 (long long)job->delivery_id, (long long)job->message_id);
			dp_job_free(self, job);
			continue;
		}
		job->state = JOB_READY;
		dp_push(&self->ready[job->channel], job);
	}
	self->loading_count = 0;
	self->claim_in_flight = false;
}

static void dp_claim_done(void *arg, int code, const PGresult *res, const char *why)
{
	hd_dispatch_t *self = arg;
	if (code != HD_OK) {
		hd_warn("dispatch.claim_failed", "reason=\"%s\"", why ? why : "");
		self->claim_in_flight = false;
		return;
	}
	int rows = PQntuples(res);
	self->stats.claimed += (uint64_t)rows;
	/* Work announced while this claim ran may have missed it: look again. */
	if (self->woken) {
		self->woken = false;
		dp_claim_soon(self);
	}
	if (rows == 0) {
		self->more_due = false;
		self->claim_in_flight = false;
		return;
	}
	/* A full claim means more is due: claim again as soon as there is room. */
	self->more_due = rows >= self->claim_requested;
	if (self->more_due)
		self->next_claim_ms = 0;
	json_t *ids = json_array();
	for (int r = 0; r < rows; r++) {
		dp_job_t *job = hd_calloc(1, sizeof(*job));
		job->delivery_id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		job->message_id = strtoll(PQgetvalue(res, r, 1), NULL, 10);
		job->attempt = (uint32_t)strtoul(PQgetvalue(res, r, 2), NULL, 10);
		job->recipient = hd_strdup(PQgetvalue(res, r, 3));
		job->kind = hd_strdup(PQgetvalue(res, r, 4));
		/* Only when it says something the recipient does not: a JOB is then
		 * byte for byte what workers that predate the field accept. */
		if (!PQgetisnull(res, r, 7) && strcmp(PQgetvalue(res, r, 7), job->recipient) != 0)
			job->endpoint = hd_strdup(PQgetvalue(res, r, 7));
		hd_channel_parse(PQgetvalue(res, r, 5), &job->channel);
		hd_class_parse(PQgetvalue(res, r, 6), &job->klass);
		job->state = JOB_LOADING;
		job->worker = -1;
		job->lease_end_ms = hd_time_mono_ms() + self->cfg->dispatch.lease_ms;
		/* A lease we already hold in memory cannot be claimed again unless it
		 * expired: drop our stale copy, the database is the truth. */
		dp_job_t *old = dp_find(self, job->delivery_id);
		if (old) {
			/* Our own lease expired while the job waited (for a worker, a
			 * rate-limit slot or a slow worker): the new claim supersedes it. */
			if (old->state == JOB_READY)
				dp_unlink(&self->ready[old->channel], old);
			else if (old->state == JOB_THROTTLED)
				dp_unlink(&self->throttled, old);
			else if (old->state == JOB_SENT && old->worker >= 0 &&
				 self->workers[old->worker].in_use > 0)
				self->workers[old->worker].in_use--;
			else if (old->state == JOB_LOADING)
				hd_panic("delivery %lld claimed while its claim is loading",
					 (long long)job->delivery_id);
			dp_job_free(self, old);
		}
		dp_insert(self, job);
		self->loading[self->loading_count++] = job;
		bool seen = false;
		for (size_t i = 0; i + 1 < self->loading_count && !seen; i++)
			seen = self->loading[i]->message_id == job->message_id;
		if (!seen)
			json_array_append_new(ids, json_integer((json_int_t)job->message_id));
	}
	char *text = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
	/* JSON [1,2,3] -> SQL array literal {1,2,3}. */
	text[0] = '{';
	text[strlen(text) - 1] = '}';
	const char *params[1] = {text};
	if (hd_pgconn_query(self->db, dp_contents_sql, 1, params, dp_contents_done, self) != HD_OK)
		dp_fail_loading(self);
	free(text);
}

/* How many more jobs the live workers could take right now, per channel. */
static size_t dp_capacity(const hd_dispatch_t *self, char *channels, size_t channels_len)
{
	int64_t cap[DP_CHANNELS] = {0};
	for (size_t k = 0; k < DP_MAX_WORKERS; k++) {
		const dp_worker_t *w = &self->workers[k];
		if (!w->live || w->leaving)
			continue;
		for (int ch = 0; ch < DP_CHANNELS; ch++)
			if (w->channels & (1u << ch))
				cap[ch] += (int64_t)w->credit - (int64_t)w->in_use;
	}
	size_t total = 0, used = 0;
	channels[used++] = '{';
	for (int ch = 0; ch < DP_CHANNELS; ch++) {
		cap[ch] -= (int64_t)self->ready[ch].count;
		if (cap[ch] <= 0)
			continue;
		total += (size_t)cap[ch];
		used += (size_t)snprintf(channels + used, channels_len - used, "%s%s",
					 used > 1 ? "," : "", hd_channel_name((hd_channel_t)ch));
	}
	snprintf(channels + used, channels_len - used, "}");
	return total;
}

static void dp_maybe_claim(hd_dispatch_t *self, int64_t now_ms)
{
	if (self->stopping || self->claim_in_flight || now_ms < self->next_claim_ms ||
	    !hd_pgconn_is_up(self->db))
		return;
	char channels[64];
	size_t cap = dp_capacity(self, channels, sizeof(channels));
	int64_t room = self->cfg->dispatch.window - (int64_t)self->jobs;
	int64_t n = self->cfg->dispatch.claim_batch;
	if ((int64_t)cap < n)
		n = (int64_t)cap;
	if (room < n)
		n = room;
	if (n <= 0) {
		/* No worker can take more now: look again after poll_ms (results
		 * and READY frames wake the claimer earlier). */
		self->next_claim_ms = now_ms + self->cfg->dispatch.poll_ms;
		return;
	}
	char n_text[24], lease_text[24];
	snprintf(n_text, sizeof(n_text), "%lld", (long long)n);
	snprintf(lease_text, sizeof(lease_text), "%lld", (long long)self->cfg->dispatch.lease_ms);
	const char *params[4] = {self->owner, channels, n_text, lease_text};
	if (hd_pgconn_query(self->db, dp_claim_sql, 4, params, dp_claim_done, self) == HD_OK) {
		self->claim_requested = n;
		self->claim_in_flight = true;
		self->next_claim_ms = now_ms + self->cfg->dispatch.poll_ms;
	}
}

/* ---- workers --------------------------------------------------------------- */

static dp_worker_t *dp_worker_by_id(hd_dispatch_t *self, const void *id, size_t len)
{
	for (size_t k = 0; k < DP_MAX_WORKERS; k++) {
		dp_worker_t *w = &self->workers[k];
		if (w->live && w->id_len == len && memcmp(w->id, id, len) == 0)
			return w;
	}
	return NULL;
}

static void dp_worker_gone(hd_dispatch_t *self, dp_worker_t *w, const char *why)
{
	/* Its jobs stay leased in the database and return to the queue when
	 * the lease expires: the worker may have sent them before it died. */
	size_t dropped = 0;
	for (size_t i = 0; i < self->map_cap; i++) {
		dp_job_t *job = self->map[i];
		if (job && job->state == JOB_SENT && job->worker == (int)(w - self->workers)) {
			dp_job_free(self, job);
			dropped++;
			i = (size_t)-1; /* the map shifted: scan again from the start */
		}
	}
	hd_warn("dispatch.worker_gone", "worker=%s reason=%s jobs_left_to_lease_expiry=%zu",
		w->name, why, dropped);
	w->live = false;
	self->worker_count--;
}

static void dp_on_frame(hd_dispatch_t *self, const unsigned char *id, size_t id_len,
			const uint8_t *data, size_t size, int64_t now_ms)
{
	hd_wire_frame_t f;
	hd_decode_error_t derr;
	memset(&f, 0, sizeof(f));
	int rc = hd_wire_decode(data, size, &f, &derr);
	if (rc != HD_OK) {
		hd_warn("dispatch.bad_frame", "code=%s field=%s reason=\"%s\"", hd_err_name(rc),
			derr.field, derr.reason);
		return;
	}
	dp_worker_t *w = dp_worker_by_id(self, id, id_len);
	if (w)
		w->last_recv_ms = now_ms;
	switch (f.type) {
	case HD_WIRE_READY:
		if (!w) {
			for (size_t k = 0; k < DP_MAX_WORKERS && !w; k++)
				if (!self->workers[k].live)
					w = &self->workers[k];
			if (!w) {
				hd_error("dispatch.too_many_workers", "max=%d", DP_MAX_WORKERS);
				break;
			}
			memset(w, 0, sizeof(*w));
			w->live = true;
			memcpy(w->id, id, id_len);
			w->id_len = id_len;
			w->connected_at_us = hd_time_now_us();
			self->worker_count++;
		}
		snprintf(w->name, sizeof(w->name), "%s", f.u.ready.name);
		w->channels = f.u.ready.channels;
		w->credit = f.u.ready.credit;
		w->heartbeat_ms = f.u.ready.heartbeat_ms ? f.u.ready.heartbeat_ms
							 : self->cfg->dispatch.heartbeat_ms;
		w->last_recv_ms = w->last_send_ms = now_ms;
		hd_info("dispatch.worker_ready", "worker=%s channels=%u credit=%u", w->name,
			w->channels, w->credit);
		self->next_claim_ms = 0;
		break;
	case HD_WIRE_RESULT:
		/* Results are matched by delivery and attempt, not by connection: a
		 * worker that reconnected reports on its new identity. */
		dp_on_result(self, &f.u.result);
		break;
	case HD_WIRE_HEARTBEAT:
		break;
	case HD_WIRE_BYE:
		/* A stopping worker finishes what it holds: keep its jobs and take
		 * its results; it is gone once it has none or falls silent. */
		if (w) {
			w->leaving = true;
			hd_info("dispatch.worker_leaving", "worker=%s jobs=%u", w->name, w->in_use);
			if (w->in_use == 0)
				dp_worker_gone(self, w, "bye");
		}
		break;
	case HD_WIRE_JOB:
		hd_warn("dispatch.bad_frame", "code=invalid field=t reason=\"%s\"",
			"workers do not send jobs");
		break;
	}
	hd_wire_frame_clear(&f);
}

static void dp_read(hd_dispatch_t *self, int64_t now_ms)
{
	for (int n = 0; n < 4096; n++) {
		zmq_msg_t id, body;
		zmq_msg_init(&id);
		if (zmq_msg_recv(&id, self->router, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&id);
			return;
		}
		zmq_msg_init(&body);
		if (zmq_msg_more(&id) && zmq_msg_recv(&body, self->router, ZMQ_DONTWAIT) >= 0) {
			if (!zmq_msg_more(&body))
				dp_on_frame(self, zmq_msg_data(&id), zmq_msg_size(&id),
					    zmq_msg_data(&body), zmq_msg_size(&body), now_ms);
			while (zmq_msg_more(&body)) { /* not our protocol: drop the rest */
				zmq_msg_close(&body);
				zmq_msg_init(&body);
				if (zmq_msg_recv(&body, self->router, ZMQ_DONTWAIT) < 0)
					break;
			}
		}
		zmq_msg_close(&body);
		zmq_msg_close(&id);
	}
}

static void dp_beat(hd_dispatch_t *self, int64_t now_ms)
{
	hd_wire_frame_t hb = {.type = HD_WIRE_HEARTBEAT};
	for (size_t k = 0; k < DP_MAX_WORKERS; k++) {
		dp_worker_t *w = &self->workers[k];
		if (!w->live)
			continue;
		if (now_ms - w->last_recv_ms > 3 * w->heartbeat_ms) {
			dp_worker_gone(self, w, "silent for 3 heartbeats");
			continue;
		}
		/* Beat at the faster of the two rates: the worker declares us dead
		 * after 3 of its own beats. */
		int64_t beat = self->cfg->dispatch.heartbeat_ms < w->heartbeat_ms
			? self->cfg->dispatch.heartbeat_ms : w->heartbeat_ms;
		if (now_ms - w->last_send_ms >= beat)
			(void)dp_send(self, w, &hb, now_ms);
	}
}

static void dp_workers_reported(void *arg, int code, const PGresult *res, const char *why)
{
	hd_dispatch_t *self = arg;
	self->report_in_flight = false;
	(void)res;
	if (code != HD_OK)
		hd_warn("dispatch.workers_report_failed", "reason=\"%s\"", why ? why : "");
}

/* Tell the database which workers this broker sees, for heraldctl stats. */
static void dp_report_workers(hd_dispatch_t *self, int64_t now_ms)
{
	if (self->report_in_flight || now_ms < self->next_workers_report_ms ||
	    !hd_pgconn_is_up(self->db))
		return;
	self->next_workers_report_ms = now_ms + DP_WORKERS_REPORT_MS;
	json_t *list = json_array();
	for (size_t k = 0; k < DP_MAX_WORKERS; k++) {
		const dp_worker_t *w = &self->workers[k];
		if (!w->live)
			continue;
		json_t *chs = json_array();
		for (int ch = 0; ch < DP_CHANNELS; ch++)
			if (w->channels & (1u << ch))
				json_array_append_new(chs, json_string(hd_channel_name((hd_channel_t)ch)));
		json_array_append_new(list, json_pack("{s:s, s:o, s:i, s:I, s:n}", "name", w->name,
			"channels", chs, "credit", (int)w->credit,
			"connected_at_ms", (json_int_t)(w->connected_at_us / 1000),
			"last_seen_at_ms"));
	}
	char *text = json_dumps(list, JSON_COMPACT);
	json_decref(list);
	const char *params[2] = {self->owner, text};
	if (hd_pgconn_query(self->db, "SELECT herald.workers_update($1, $2::jsonb)", 2, params,
			    dp_workers_reported, self) == HD_OK)
		self->report_in_flight = true;
	free(text);
}

/* ---- approvals: wake-ups, expiries and reminders --------------------------- */

static void dp_listen_done(void *arg, int code, const PGresult *res, const char *why)
{
	(void)arg;
	(void)res;
	if (code != HD_OK)
		hd_warn("dispatch.listen_failed", "reason=\"%s\"", why ? why : "");
}

static void dp_on_db_up(void *arg)
{
	hd_dispatch_t *self = arg;
	/* NOTIFY is a hint: a release wakes the claimer at once; polling
	 * covers notifications lost while the connection was down. */
	hd_pgconn_query(self->db, "LISTEN herald_released", 0, NULL, dp_listen_done, self);
	self->next_claim_ms = 0;
}

static void dp_on_notify(void *arg, const char *channel, const char *payload)
{
	hd_dispatch_t *self = arg;
	(void)channel;
	hd_debug("dispatch.released", "message_id=%s", payload ? payload : "");
	hd_dispatch_wake(self);
}

static void dp_tick_done(void *arg, int code, const PGresult *res, const char *why)
{
	hd_dispatch_t *self = arg;
	self->tick_in_flight = false;
	if (code != HD_OK) {
		hd_warn("approval.tick_failed", "reason=\"%s\"", why ? why : "");
		return;
	}
	if (PQntuples(res) == 1) {
		long expired = strtol(PQgetvalue(res, 0, 0), NULL, 10);
		long reminded = strtol(PQgetvalue(res, 0, 1), NULL, 10);
		if (expired || reminded) {
			hd_info("approval.tick", "expired=%ld reminded=%ld", expired, reminded);
			hd_dispatch_wake(self); /* the notifications are queued deliveries */
		}
	}
}

static void dp_approval_tick(hd_dispatch_t *self, int64_t now_ms)
{
	if (self->stopping || self->tick_in_flight || now_ms < self->next_tick_ms ||
	    !hd_pgconn_is_up(self->db))
		return;
	self->next_tick_ms = now_ms + self->cfg->approval.tick_ms;
	if (hd_pgconn_query(self->db, "SELECT expired, reminded FROM herald.approval_tick()", 0,
			    NULL, dp_tick_done, self) == HD_OK)
		self->tick_in_flight = true;
}

/* ---- loop glue -------------------------------------------------------------- */

size_t hd_dispatch_poll_items(hd_dispatch_t *self, zmq_pollitem_t *items, size_t max)
{
	if (max < 3)
		return 0;
	size_t n = 0;
	items[n++] = (zmq_pollitem_t){self->router, 0, ZMQ_POLLIN, 0};
	self->poll_db = hd_pgconn_poll_item(self->db, &items[n]) ? (int)n++ : -1;
	self->poll_out = hd_pgconn_poll_item(self->db_out, &items[n]) ? (int)n++ : -1;
	return n;
}

void hd_dispatch_handle(hd_dispatch_t *self, int64_t now_ms, const zmq_pollitem_t *items,
			size_t count)
{
	if (count >= 1 && (items[0].revents & ZMQ_POLLIN))
		dp_read(self, now_ms);
	hd_pgconn_handle(self->db, now_ms,
			 self->poll_db >= 0 && (size_t)self->poll_db < count ? &items[self->poll_db] : NULL);
	hd_pgconn_handle(self->db_out, now_ms,
			 self->poll_out >= 0 && (size_t)self->poll_out < count ? &items[self->poll_out] : NULL);
	dp_beat(self, now_ms);
	dp_assign(self, now_ms);
	dp_flush_outcomes(self, now_ms);
	dp_maybe_claim(self, now_ms);
	dp_report_workers(self, now_ms);
	dp_approval_tick(self, now_ms);
	dp_buckets_prune(self, now_ms);
	/* Anything queued above goes out in this same turn. */
	hd_pgconn_handle(self->db, now_ms, NULL);
	hd_pgconn_handle(self->db_out, now_ms, NULL);
	self->stats.workers = self->worker_count;
	self->stats.window = self->jobs;
}

int64_t hd_dispatch_timeout_ms(const hd_dispatch_t *self, int64_t now_ms)
{
	int64_t best = self->cfg->dispatch.heartbeat_ms / 2;
	int64_t db = hd_pgconn_timeout_ms(self->db, now_ms);
	if (db >= 0 && db < best)
		best = db;
	int64_t out = hd_pgconn_timeout_ms(self->db_out, now_ms);
	if (out >= 0 && out < best)
		best = out;
	if (!self->stopping && !self->claim_in_flight && hd_pgconn_is_up(self->db)) {
		int64_t wait = self->next_claim_ms - now_ms;
		if (wait < best)
			best = wait > 0 ? wait : 0;
	}
	for (const dp_job_t *j = self->throttled.head; j; j = j->next) {
		int64_t wait = j->not_before_ms - now_ms;
		if (wait < best)
			best = wait > 0 ? wait : 0;
	}
	if (json_array_size(self->outcomes) && !self->outcome_in_flight &&
	    hd_pgconn_is_up(self->db_out)) {
		int64_t wait = dp_outcomes_due(self, now_ms)
			? 0 : self->outcomes_since_ms + self->cfg->dispatch.coalesce_ms - now_ms;
		if (wait < best)
			best = wait > 0 ? wait : 0;
	}
	return best;
}

void hd_dispatch_stop(hd_dispatch_t *self)
{
	self->stopping = true;
}

bool hd_dispatch_is_idle(const hd_dispatch_t *self)
{
	for (size_t i = 0; i < self->map_cap; i++)
		if (self->map[i] && self->map[i]->state == JOB_SENT)
			return false;
	return json_array_size(self->outcomes) == 0 && !self->outcome_in_flight;
}

void hd_dispatch_wake(hd_dispatch_t *self)
{
	dp_claim_soon(self);
	self->woken = self->claim_in_flight;
}

hd_dispatch_stats_t hd_dispatch_stats(const hd_dispatch_t *self)
{
	return self->stats;
}
