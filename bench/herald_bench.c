/*
 * NAME
 *	herald-bench - producer-side load generator for heraldd
 * SYNOPSIS
 *	herald-bench intake --endpoint EP [--concurrency C] [--messages N]
 *	                    [--size BYTES] [--window W] [--rate MSGS_PER_S]
 *	                    [--driver lib|raw] [--app NAME] [--key-prefix P]
 *	                    [--tick-us US] [--timeout-ms MS] [--latency-log FILE]
 *	                    [--channel email|im] [--to R1,R2,...] [--important]
 *	                    [--text-file FILE]
 *	herald-bench ping --endpoint EP [--wait-ms MS]
 * DESCRIPTION
 *	"intake" opens C producer connections (one DEALER socket each) and
 *	submits N general email messages of about BYTES bytes on the wire
 *	(one recipient, unique idempotency keys), message j going through
 *	connection j mod C. --channel im submits IM messages instead, and
 *	--to gives the recipients (email addresses or IM group names; message
 *	j goes to the (j mod n)-th), required for im; email defaults to 1000
 *	distinct addresses. --important sets the flag "important" on every
 *	message, so each is classified important and held for approval
 *	(the ACK must then say class important, state held). It records, per message, the time from sending
 *	the request to receiving its ACK (monotonic clock) and prints one
 *	machine-readable line:
 *
 *	  intake concurrency=C messages=N acks_per_s=X p50_ms=a p99_ms=b
 *	         max_ms=c errors=E acks=A dups=D ... client_cpu_pct=P
 *
 *	Closed loop (no --rate): each connection keeps up to W requests
 *	outstanding; acks_per_s is ACKs / (last ACK - first send).
 *	Open loop (--rate R): message j is due at start + j/R seconds,
 *	whatever happened to earlier ones, and its latency is measured from
 *	that due time, so a stalled broker shows up in the latency instead
 *	of silently slowing the load (no coordinated omission). Messages
 *	are released on a grid of --tick-us (default 1000 us): one wake-up
 *	sends all messages that fell due within the tick.
 *
 *	Drivers:
 *	  lib  (default) the public libherald pipelined API, one thread and
 *	       one herald_client_t per connection: what producers get.
 *	  raw  one thread polling every DEALER socket, encoding with
 *	       hd_envelope directly, no resend: the cheapest possible client,
 *	       to check that the bench itself is not the bottleneck.
 *
 *	--latency-log FILE writes "message send_ms ack_ms latency_ms state"
 *	per message (times relative to the start) to find when stalls happen.
 *
 *	--text-file FILE gives the texts instead of the --size filler: one
 *	message text per line, "SUBJECT<TAB>BODY" (or BODY alone, with the
 *	usual subject); message j takes line j mod n. The request size is
 *	then whatever the texts make (text_bytes= in the result line gives
 *	their average). bench/run.sh policy submits ~1 KB mixed Chinese and
 *	English texts this way (herald-policy-bench --write-texts).
 *
 *	"ping" waits until heraldd answers a ping (it does only while it can
 *	reach PostgreSQL); exit 0 when it did within MS, else 1.
 * PRECISION
 *	A libherald pipelined call that must wait for a free window slot
 *	sends right after the reply batch that freed it is processed; the
 *	bench takes the time of the first reply of that batch as the send
 *	time (an upper bound on the latency, off by the batch's decode time).
 *	In open loop a message waits for its tick (up to --tick-us after it
 *	fell due), and waits shorter than 1 ms are slept, so an ACK arriving
 *	meanwhile is timestamped up to 1 ms late. All these errors make
 *	latencies look worse, never better.
 * LIMITS
 *	--to: at most 1000 recipients. --text-file: at most 100000 lines,
 *	256 MiB, subjects of at most 998 bytes. concurrency <= 1024, messages <= 20 million (three arrays of N
 *	entries, 17 bytes per message, are allocated before the clock
 *	starts), size <= 1 MiB, window <= 65536.
 * EXIT STATUS
 *	0 every message was acknowledged, 1 some were not (errors > 0),
 *	2 usage or setup error.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "hd_envelope.h"
#include "hd_err.h"
#include "hd_limits.h"
#include "hd_mem.h"
#include "hd_num.h"
#include "herald/herald.h"

#define HB_MAX_CONCURRENCY  1024
#define HB_MAX_MESSAGES     20000000u
#define HB_MAX_SIZE_BYTES   (1024u * 1024u)
#define HB_MAX_WINDOW       65536
#define HB_AUTO_INFLIGHT    1024     /* total outstanding when --window is not given */
#define HB_MIN_AUTO_WINDOW  8
#define HB_PING_RID         UINT64_MAX
#define HB_NS_PER_MS        1000000LL
#define HB_NS_PER_S         1000000000LL
#define HB_APP_DEFAULT      "herald-bench"
#define HB_SENDER           "bench@example.com"
#define HB_RECIPIENT_SPREAD 1000u    /* distinct recipient addresses */
#define HB_MAX_TO           1000     /* --to list entries */
#define HB_MAX_TEXTS        100000   /* --text-file lines */
#define HB_MAX_TEXT_FILE_BYTES (256L * 1024L * 1024L)

typedef enum { HB_DRIVER_LIB, HB_DRIVER_RAW } hb_driver_t;

/* Per-message outcome. */
enum { HB_PENDING = 0, HB_ACKED = 1, HB_ACKED_DUP = 2, HB_FAILED = 3 };

typedef struct hb_opts {
	const char *endpoint;
	const char *app;
	char key_prefix[64];
	int concurrency;
	size_t messages;
	size_t size_bytes;
	int window;               /* per connection; 0 = auto */
	double rate;              /* messages per second in total; 0 = closed loop */
	int tick_us;              /* open loop: release due messages on this grid */
	hb_driver_t driver;
	int timeout_ms;           /* lib: per attempt; raw: stall limit */
	int wait_ms;              /* ping */
	const char *latency_log;  /* NULL or a file for one line per message */
	hd_channel_t channel;     /* email (default) or im */
	char **to;                /* --to entries (owned), NULL = email default spread */
	size_t to_count;
	bool important;           /* flag every message important (held for approval) */
	const char *text_file;    /* NULL or SUBJECT<TAB>BODY lines */
} hb_opts_t;

/* State shared by all connections; each message slot is written by one thread. */
typedef struct hb_run {
	const hb_opts_t *opts;
	char *body;
	char **text_subjects;     /* --text-file: n entries (NULL: the usual subject) */
	char **text_bodies;
	size_t text_count;
	size_t text_bytes;        /* average subject + body bytes of the texts */
	int64_t start_ns;         /* the first send (or the schedule origin) */
	int64_t *send_ns;         /* index: message number */
	int64_t *ack_ns;
	uint8_t *state;           /* HB_PENDING ... */
	pthread_barrier_t barrier;
	pthread_mutex_t lock;     /* first_error only */
	char first_error[384];
} hb_run_t;

typedef struct hb_conn {
	hb_run_t *run;
	int index;                /* connection number k: sends messages k, k+C, ... */
	herald_client_t *client;  /* lib */
	void *sock;               /* raw */
	size_t next;              /* raw: next message number to send */
	size_t inflight;          /* raw */
	bool waiting;             /* lib: the current submit had to wait for a slot */
	int64_t first_cb_ns;      /* lib: first completion while waiting */
} hb_conn_t;

/* ---- small helpers ----------------------------------------------------- */

static int64_t hb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * HB_NS_PER_S + ts.tv_nsec;
}

static void hb_sleep_until_ns(int64_t when_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(when_ns / HB_NS_PER_S),
		.tv_nsec = (long)(when_ns % HB_NS_PER_S),
	};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static double hb_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void hb_note_error(hb_run_t *r, const char *code, const char *field,
			  const char *reason)
{
	pthread_mutex_lock(&r->lock);
	if (!r->first_error[0])
		snprintf(r->first_error, sizeof(r->first_error), "code=%.40s field=%.96s reason=\"%.200s\"",
			 code, field, reason);
	pthread_mutex_unlock(&r->lock);
}

/* When message j is due in open loop (relative to start). */
static int64_t hb_due_offset_ns(const hb_opts_t *o, size_t j)
{
	return (int64_t)((double)j * (double)HB_NS_PER_S / o->rate);
}

/*
 * When a message due at due_ns is actually sent: the next point of the
 * tick grid, so that one wake-up sends every message due in that tick
 * instead of one wake-up per message (which costs the bench more CPU
 * than the broker spends on the message). Latency still counts from
 * due_ns, so the grid can only make latencies look worse.
 */
static int64_t hb_release_ns(const hb_run_t *r, int64_t due_ns)
{
	int64_t tick = (int64_t)r->opts->tick_us * 1000;
	if (tick <= 0)
		return due_ns;
	int64_t off = due_ns - r->start_ns;
	return r->start_ns + (off + tick - 1) / tick * tick;
}

/* The class and stored state every ACK must carry. */
static const char *hb_expected_class(const hb_opts_t *o)
{
	return o->important ? "important" : "general";
}

static const char *hb_expected_state(const hb_opts_t *o)
{
	return o->important ? "held" : "queued";
}

static void hb_format_key(const hb_opts_t *o, size_t j, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%zu", o->key_prefix, j);
}

static void hb_format_to(const hb_opts_t *o, size_t j, char *buf, size_t len)
{
	if (o->to_count > 0)
		snprintf(buf, len, "%s", o->to[j % o->to_count]);
	else
		snprintf(buf, len, "user%zu@example.com", j % HB_RECIPIENT_SPREAD);
}

static void hb_format_subject(size_t j, char *buf, size_t len)
{
	snprintf(buf, len, "herald-bench message %zu", j);
}

/* The subject of message j: its --text-file line's, else the usual one in buf. */
static const char *hb_subject(const hb_run_t *r, size_t j, char *buf, size_t len)
{
	if (r->text_count > 0 && r->text_subjects[j % r->text_count])
		return r->text_subjects[j % r->text_count];
	hb_format_subject(j, buf, len);
	return buf;
}

/* The body of message j: its --text-file line's, else the --size filler. */
static const char *hb_body(const hb_run_t *r, size_t j)
{
	return r->text_count > 0 ? r->text_bodies[j % r->text_count] : r->body;
}

/* The wire form of message j (raw driver and size calibration). */
static hd_msg_t *hb_wire_msg(const hb_run_t *r, size_t j, const char *body)
{
	char key[128], to[HD_MAX_ADDR_BYTES + 1], subject[64];
	hb_format_key(r->opts, j, key, sizeof(key));
	hb_format_to(r->opts, j, to, sizeof(to));
	hd_msg_t *m = hd_msg_new(r->opts->channel);
	m->sender = hd_strdup(HB_SENDER);
	hd_msg_add_to(m, to);
	m->subject = hd_strdup(hb_subject(r, j, subject, sizeof(subject)));
	m->body = hd_strdup(body);
	m->idempotency_key = hd_strdup(key);
	if (r->opts->important)
		m->flags |= HD_FLAG_IMPORTANT;
	return m;
}

/* Encode message j as a submit request; caller frees *buf. */
static void hb_encode(const hb_run_t *r, size_t j, const char *body, uint8_t **buf,
		      size_t *len)
{
	hd_msg_t *m = hb_wire_msg(r, j, body);
	hd_request_t req = {
		.version = HD_PROTOCOL_VERSION,
		.rid = (uint64_t)j,
		.op = HD_OP_SUBMIT,
		.app = (char *)(uintptr_t)r->opts->app,
		.msg = m,
	};
	if (hd_envelope_encode_request(&req, buf, len) != 0)
		hd_panic("herald-bench: cannot encode message %zu", j);
	hd_msg_destroy(&m);
}

/*
 * A body that makes the largest request frame about size_bytes long.
 * Plain ASCII prose without any of the default sensitive keywords, so
 * every message is classified general.
 */
static char *hb_make_body(const hb_run_t *r)
{
	static const char text[] =
		"Your weekly report is ready. The build finished without problems and "
		"the nightly jobs ran on time; nothing needs your attention today. ";
	uint8_t *buf = NULL;
	size_t overhead = 0;
	size_t last = r->opts->messages > 0 ? r->opts->messages - 1 : 0;
	hb_encode(r, last, "", &buf, &overhead);
	free(buf);
	size_t n = r->opts->size_bytes > overhead + 2 ? r->opts->size_bytes - overhead - 2 : 1;
	char *body = hd_malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		body[i] = text[i % (sizeof(text) - 1)];
	body[n] = '\0';
	return body;
}

/* ---- lib driver: libherald, one thread per connection ------------------ */

static void hb_lib_on_result(const herald_result_t *res, void *arg)
{
	hb_conn_t *c = arg;
	hb_run_t *r = c->run;
	int64_t now = hb_now_ns();
	size_t j = (size_t)(uintptr_t)res->user;
	if (c->waiting && c->first_cb_ns == 0)
		c->first_cb_ns = now;
	r->ack_ns[j] = now;
	if (res->status == HERALD_OK) {
		r->state[j] = res->duplicate ? HB_ACKED_DUP : HB_ACKED;
		if (strcmp(res->klass, hb_expected_class(r->opts)) != 0 ||
		    strcmp(res->state, hb_expected_state(r->opts)) != 0)
			hb_note_error(r, "unexpected_class", res->klass, res->state);
	} else {
		r->state[j] = HB_FAILED;
		hb_note_error(r, res->code[0] ? res->code : herald_strerror(res->status),
			      res->field, res->reason);
	}
}

static herald_msg_t *hb_lib_msg(const hb_run_t *r, size_t j)
{
	char key[128], to[HD_MAX_ADDR_BYTES + 1], subject[64];
	hb_format_key(r->opts, j, key, sizeof(key));
	hb_format_to(r->opts, j, to, sizeof(to));
	herald_msg_t *m = herald_msg_new(r->opts->channel == HD_CHANNEL_IM ? HERALD_IM : HERALD_EMAIL);
	if (!m || herald_msg_set_from(m, HB_SENDER) != HERALD_OK ||
	    herald_msg_add_to(m, to) != HERALD_OK ||
	    herald_msg_set_subject(m, hb_subject(r, j, subject, sizeof(subject))) != HERALD_OK ||
	    herald_msg_set_body(m, hb_body(r, j)) != HERALD_OK ||
	    herald_msg_set_idempotency_key(m, key) != HERALD_OK ||
	    (r->opts->important && herald_msg_set_flag(m, HERALD_FLAG_IMPORTANT) != HERALD_OK))
		hd_panic("herald-bench: cannot build message %zu", j);
	return m;
}

/* Open loop: process replies until due_ns, then return. */
static void hb_lib_wait_until(hb_conn_t *c, int64_t due_ns)
{
	for (;;) {
		int64_t now = hb_now_ns();
		if (now >= due_ns)
			return;
		int64_t rem = due_ns - now;
		if (herald_client_outstanding(c->client) > 0 && rem >= HB_NS_PER_MS) {
			/* Returns early when everything outstanding is answered. */
			herald_client_flush(c->client, (int)(rem / HB_NS_PER_MS));
			continue;
		}
		hb_sleep_until_ns(due_ns);
		return;
	}
}

static void *hb_lib_thread(void *arg)
{
	hb_conn_t *c = arg;
	hb_run_t *r = c->run;
	const hb_opts_t *o = r->opts;
	size_t window = (size_t)o->window;
	pthread_barrier_wait(&r->barrier);

	for (size_t j = (size_t)c->index; j < o->messages; j += (size_t)o->concurrency) {
		herald_msg_t *m = hb_lib_msg(r, j);
		int64_t send_ns;
		int rc;
		if (o->rate > 0) {
			int64_t due = r->start_ns + hb_due_offset_ns(o, j);
			hb_lib_wait_until(c, hb_release_ns(r, due));
			send_ns = due;
			rc = herald_submit_async(c->client, &m, (void *)(uintptr_t)j);
		} else {
			c->waiting = herald_client_outstanding(c->client) >= window;
			c->first_cb_ns = 0;
			int64_t t0 = hb_now_ns();
			rc = herald_submit_async(c->client, &m, (void *)(uintptr_t)j);
			send_ns = c->waiting && c->first_cb_ns > t0 ? c->first_cb_ns : t0;
			c->waiting = false;
		}
		r->send_ns[j] = send_ns;
		if (rc != HERALD_OK) {
			r->state[j] = HB_FAILED;
			hb_note_error(r, "submit", "", herald_strerror(rc));
		}
	}
	herald_client_flush(c->client, -1);
	return NULL;
}

static int hb_lib_run(hb_run_t *r, hb_conn_t *conns)
{
	const hb_opts_t *o = r->opts;
	char err[256];
	for (int k = 0; k < o->concurrency; k++) {
		hb_conn_t *c = &conns[k];
		c->client = herald_client_new(o->endpoint, o->app, err, sizeof(err));
		if (!c->client) {
			fprintf(stderr, "herald-bench: %s\n", err);
			return -1;
		}
		if (herald_client_set_window(c->client, o->window) != HERALD_OK ||
		    herald_client_set_timeout_ms(c->client, o->timeout_ms) != HERALD_OK ||
		    herald_client_set_callback(c->client, hb_lib_on_result, c) != HERALD_OK) {
			fprintf(stderr, "herald-bench: cannot configure client %d\n", k);
			return -1;
		}
		/* Connect before the clock starts. */
		if (herald_client_ping(c->client, 10000) != HERALD_OK) {
			fprintf(stderr, "herald-bench: connection %d: heraldd does not answer ping at %s\n",
				k, o->endpoint);
			return -1;
		}
	}
	pthread_t *threads = hd_calloc((size_t)o->concurrency, sizeof(*threads));
	for (int k = 0; k < o->concurrency; k++)
		if (pthread_create(&threads[k], NULL, hb_lib_thread, &conns[k]) != 0)
			hd_panic("herald-bench: pthread_create failed");
	/* The clock origin is fixed before the threads are released; open
	 * loop leaves them 2 ms to wake up before the first message is due. */
	r->start_ns = hb_now_ns() + (o->rate > 0 ? 2 * HB_NS_PER_MS : 0);
	pthread_barrier_wait(&r->barrier);
	for (int k = 0; k < o->concurrency; k++)
		pthread_join(threads[k], NULL);
	free(threads);
	for (int k = 0; k < o->concurrency; k++)
		herald_client_destroy(&conns[k].client);
	return 0;
}

/* ---- raw driver: one thread, every socket in one zmq_poll --------------- */

static void hb_free_frame(void *data, void *hint)
{
	(void)hint;
	free(data);
}

static int hb_raw_send(void *sock, uint8_t *buf, size_t len)
{
	zmq_msg_t frame;
	if (zmq_msg_init_data(&frame, buf, len, hb_free_frame, NULL) != 0) {
		free(buf);
		return -1;
	}
	if (zmq_msg_send(&frame, sock, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&frame);
		return -1;
	}
	return 0;
}

/* Handle every reply waiting on c's socket; returns how many were consumed. */
static size_t hb_raw_drain(hb_run_t *r, hb_conn_t *c)
{
	const hb_opts_t *o = r->opts;
	size_t done = 0;
	for (;;) {
		zmq_msg_t frame;
		zmq_msg_init(&frame);
		if (zmq_msg_recv(&frame, c->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&frame);
			return done;
		}
		int64_t now = hb_now_ns();
		hd_reply_t reply;
		hd_decode_error_t derr;
		memset(&reply, 0, sizeof(reply));
		int rc = hd_envelope_decode_reply(zmq_msg_data(&frame), zmq_msg_size(&frame), &reply,
						  &derr);
		zmq_msg_close(&frame);
		if (rc != 0) {
			hb_note_error(r, "bad_reply", derr.field, derr.reason);
			hd_reply_clear(&reply);
			continue;
		}
		size_t j = (size_t)reply.rid;
		if (reply.rid >= o->messages || j % (size_t)o->concurrency != (size_t)c->index ||
		    r->state[j] != HB_PENDING) {
			hb_note_error(r, "stray_reply", "rid", "reply to a request not outstanding");
			hd_reply_clear(&reply);
			continue;
		}
		r->ack_ns[j] = now;
		if (reply.ok) {
			r->state[j] = reply.duplicate ? HB_ACKED_DUP : HB_ACKED;
			if (strcmp(hd_class_name(reply.klass), hb_expected_class(o)) != 0 ||
			    strcmp(reply.state, hb_expected_state(o)) != 0)
				hb_note_error(r, "unexpected_class", hd_class_name(reply.klass),
					      reply.state);
		} else {
			r->state[j] = HB_FAILED;
			hb_note_error(r, hd_err_name(reply.code), reply.field, reply.reason);
		}
		hd_reply_clear(&reply);
		c->inflight--;
		done++;
	}
}

/* Send one ping on every socket and wait for every pong (connects them). */
static int hb_raw_connect(hb_run_t *r, hb_conn_t *conns, zmq_pollitem_t *items)
{
	const hb_opts_t *o = r->opts;
	for (int k = 0; k < o->concurrency; k++) {
		hd_request_t req = {
			.version = HD_PROTOCOL_VERSION, .rid = HB_PING_RID, .op = HD_OP_PING,
			.app = (char *)(uintptr_t)o->app, .msg = NULL,
		};
		uint8_t *buf = NULL;
		size_t len = 0;
		if (hd_envelope_encode_request(&req, &buf, &len) != 0 ||
		    hb_raw_send(conns[k].sock, buf, len) != 0) {
			fprintf(stderr, "herald-bench: cannot send ping on connection %d\n", k);
			return -1;
		}
	}
	int missing = o->concurrency;
	bool *seen = hd_calloc((size_t)o->concurrency, sizeof(*seen));
	int64_t deadline = hb_now_ns() + 10 * HB_NS_PER_S;
	while (missing > 0 && hb_now_ns() < deadline) {
		if (zmq_poll(items, o->concurrency, 100) < 0 && errno != EINTR)
			break;
		for (int k = 0; k < o->concurrency; k++) {
			if (!(items[k].revents & ZMQ_POLLIN))
				continue;
			zmq_msg_t frame;
			zmq_msg_init(&frame);
			while (zmq_msg_recv(&frame, conns[k].sock, ZMQ_DONTWAIT) >= 0) {
				hd_reply_t reply;
				hd_decode_error_t derr;
				memset(&reply, 0, sizeof(reply));
				if (hd_envelope_decode_reply(zmq_msg_data(&frame), zmq_msg_size(&frame),
							     &reply, &derr) == 0 &&
				    reply.rid == HB_PING_RID && reply.ok && !seen[k]) {
					seen[k] = true;
					missing--;
				}
				hd_reply_clear(&reply);
				zmq_msg_close(&frame);
				zmq_msg_init(&frame);
			}
			zmq_msg_close(&frame);
		}
	}
	free(seen);
	if (missing > 0) {
		fprintf(stderr, "herald-bench: %d connection(s) got no pong from %s\n", missing,
			o->endpoint);
		return -1;
	}
	return 0;
}

static int hb_raw_run(hb_run_t *r, hb_conn_t *conns)
{
	const hb_opts_t *o = r->opts;
	size_t C = (size_t)o->concurrency;
	size_t window = (size_t)o->window;
	void *ctx = zmq_ctx_new();
	zmq_pollitem_t *items = hd_calloc(C, sizeof(*items));
	int rc = -1;
	for (size_t k = 0; k < C; k++) {
		hb_conn_t *c = &conns[k];
		c->sock = zmq_socket(ctx, ZMQ_DEALER);
		int zero = 0, hwm = 0; /* no HWM: the window bounds what is queued */
		zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof(zero));
		zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
		zmq_setsockopt(c->sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
		if (zmq_connect(c->sock, o->endpoint) != 0) {
			fprintf(stderr, "herald-bench: cannot connect to %s: %s\n", o->endpoint,
				zmq_strerror(errno));
			goto out;
		}
		c->next = k;
		items[k] = (zmq_pollitem_t){c->sock, 0, ZMQ_POLLIN, 0};
	}
	if (hb_raw_connect(r, conns, items) != 0)
		goto out;

	size_t remaining = o->messages;
	r->start_ns = hb_now_ns();
	int64_t last_progress = r->start_ns;
	while (remaining > 0) {
		int64_t now = hb_now_ns();
		int64_t next_due = INT64_MAX;
		for (size_t k = 0; k < C; k++) {
			hb_conn_t *c = &conns[k];
			while (c->next < o->messages && c->inflight < window) {
				int64_t due = o->rate > 0 ? r->start_ns + hb_due_offset_ns(o, c->next) : 0;
				int64_t release = o->rate > 0 ? hb_release_ns(r, due) : 0;
				if (release > now) {
					if (release < next_due)
						next_due = release;
					break;
				}
				uint8_t *buf = NULL;
				size_t len = 0;
				hb_encode(r, c->next, hb_body(r, c->next), &buf, &len);
				int64_t t = o->rate > 0 ? due : hb_now_ns();
				if (hb_raw_send(c->sock, buf, len) != 0)
					hd_panic("herald-bench: send failed: %s", zmq_strerror(errno));
				r->send_ns[c->next] = t;
				c->inflight++;
				c->next += C;
			}
		}
		long timeout_ms = 1000;
		now = hb_now_ns();
		if (next_due != INT64_MAX) {
			int64_t rem = next_due - now;
			if (rem < HB_NS_PER_MS) {
				/* Sub-millisecond: check for replies, then sleep the rest. */
				timeout_ms = 0;
			} else {
				timeout_ms = (long)(rem / HB_NS_PER_MS);
			}
		}
		int n = zmq_poll(items, (int)C, timeout_ms);
		if (n < 0 && errno != EINTR)
			hd_panic("herald-bench: zmq_poll: %s", zmq_strerror(errno));
		size_t got = 0;
		for (size_t k = 0; n > 0 && k < C; k++)
			if (items[k].revents & ZMQ_POLLIN)
				got += hb_raw_drain(r, &conns[k]);
		remaining -= got;
		now = hb_now_ns();
		if (got > 0)
			last_progress = now;
		if (n == 0 && timeout_ms == 0 && next_due > now)
			hb_sleep_until_ns(next_due);
		bool waiting_on_replies = false;
		for (size_t k = 0; k < C && !waiting_on_replies; k++)
			waiting_on_replies = conns[k].inflight > 0;
		if (waiting_on_replies && now - last_progress > (int64_t)o->timeout_ms * HB_NS_PER_MS) {
			fprintf(stderr, "herald-bench: no reply for %d ms; %zu message(s) unanswered\n",
				o->timeout_ms, remaining);
			hb_note_error(r, "stall", "", "no reply within --timeout-ms");
			break;
		}
	}
	rc = 0;
out:
	for (size_t k = 0; k < C; k++)
		if (conns[k].sock)
			zmq_close(conns[k].sock);
	zmq_ctx_term(ctx);
	free(items);
	return rc;
}

/* ---- report ------------------------------------------------------------ */

static int hb_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double hb_pct_ms(const int64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0.0;
	size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / (double)HB_NS_PER_MS;
}

static void hb_write_latency_log(const hb_run_t *r)
{
	const hb_opts_t *o = r->opts;
	FILE *f = fopen(o->latency_log, "w");
	if (!f) {
		fprintf(stderr, "herald-bench: cannot write %s: %s\n", o->latency_log,
			strerror(errno));
		return;
	}
	static const char *const names[] = {"pending", "acked", "duplicate", "failed"};
	for (size_t j = 0; j < o->messages; j++) {
		double send_ms = (double)(r->send_ns[j] - r->start_ns) / (double)HB_NS_PER_MS;
		double ack_ms = r->ack_ns[j] ? (double)(r->ack_ns[j] - r->start_ns) /
					       (double)HB_NS_PER_MS : 0.0;
		fprintf(f, "%zu %.3f %.3f %.3f %s\n", j, send_ms, ack_ms,
			r->ack_ns[j] ? ack_ms - send_ms : 0.0, names[r->state[j] & 3]);
	}
	fclose(f);
}

static int hb_report(const hb_run_t *r, double cpu_s, int64_t end_ns)
{
	const hb_opts_t *o = r->opts;
	size_t acks = 0, dups = 0, failed = 0, unanswered = 0;
	int64_t last_ack = r->start_ns;
	int64_t *lat = hd_malloc((o->messages ? o->messages : 1) * sizeof(*lat));
	size_t n = 0;
	for (size_t j = 0; j < o->messages; j++) {
		switch (r->state[j]) {
		case HB_ACKED_DUP:
			dups++;
			/* fall through */
		case HB_ACKED:
			acks++;
			lat[n++] = r->ack_ns[j] - r->send_ns[j];
			if (r->ack_ns[j] > last_ack)
				last_ack = r->ack_ns[j];
			break;
		case HB_FAILED:
			failed++;
			break;
		default:
			unanswered++;
			break;
		}
	}
	qsort(lat, n, sizeof(*lat), hb_cmp_i64);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)lat[i];
	double elapsed_s = (double)(last_ack - r->start_ns) / (double)HB_NS_PER_S;
	double wall_s = (double)(end_ns - r->start_ns) / (double)HB_NS_PER_S;
	double rate = elapsed_s > 0 ? (double)acks / elapsed_s : 0.0;
	size_t errors = failed + unanswered;
	printf("intake concurrency=%d messages=%zu acks_per_s=%.0f p50_ms=%.2f p99_ms=%.2f "
	       "max_ms=%.2f errors=%zu acks=%zu dups=%zu p90_ms=%.2f p999_ms=%.2f mean_ms=%.2f "
	       "window=%d rate=%.0f driver=%s size=%zu elapsed_s=%.3f client_cpu_pct=%.0f "
	       "channel=%s important=%d",
	       o->concurrency, o->messages, rate, hb_pct_ms(lat, n, 50), hb_pct_ms(lat, n, 99),
	       n ? (double)lat[n - 1] / (double)HB_NS_PER_MS : 0.0, errors, acks, dups,
	       hb_pct_ms(lat, n, 90), hb_pct_ms(lat, n, 99.9),
	       n ? sum / (double)n / (double)HB_NS_PER_MS : 0.0, o->window, o->rate,
	       o->driver == HB_DRIVER_LIB ? "lib" : "raw", o->size_bytes, elapsed_s,
	       wall_s > 0 ? 100.0 * cpu_s / wall_s : 0.0, hd_channel_name(o->channel), o->important ? 1 : 0);
	/* Only with --text-file, so other runs print what they always did. */
	if (r->text_count > 0)
		printf(" texts=%zu text_bytes=%zu", r->text_count, r->text_bytes);
	putchar('\n');
	if (r->first_error[0])
		fprintf(stderr, "herald-bench: first problem: %s\n", r->first_error);
	free(lat);
	return errors == 0 ? 0 : 1;
}

/* ---- commands ---------------------------------------------------------- */

static void hb_free_texts(hb_run_t *r)
{
	for (size_t i = 0; i < r->text_count; i++) {
		free(r->text_subjects[i]);
		free(r->text_bodies[i]);
	}
	free(r->text_subjects);
	free(r->text_bodies);
	r->text_subjects = NULL;
	r->text_bodies = NULL;
	r->text_count = 0;
}

/*
 * Read --text-file into r: "SUBJECT<TAB>BODY" or "BODY" lines, empty
 * ones skipped. The file's size is checked first, so no line can be
 * larger than HB_MAX_TEXT_FILE_BYTES. Returns 0, or -1 with a message.
 */
static int hb_load_texts(hb_run_t *r, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "herald-bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || st.st_size > HB_MAX_TEXT_FILE_BYTES) {
		fprintf(stderr, "herald-bench: %s: larger than %ld bytes\n", path,
			HB_MAX_TEXT_FILE_BYTES);
		fclose(f);
		return -1;
	}
	r->text_subjects = hd_calloc(HB_MAX_TEXTS, sizeof(*r->text_subjects));
	r->text_bodies = hd_calloc(HB_MAX_TEXTS, sizeof(*r->text_bodies));
	char *line = NULL;
	size_t cap = 0, total = 0;
	ssize_t n;
	int rc = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		size_t len = (size_t)n;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		if (r->text_count == HB_MAX_TEXTS) {
			fprintf(stderr, "herald-bench: %s: more than %d texts\n", path, HB_MAX_TEXTS);
			rc = -1;
			break;
		}
		const char *tab = memchr(line, '\t', len);
		size_t subject_len = tab ? (size_t)(tab - line) : 0;
		if (subject_len > HD_MAX_SUBJECT_BYTES) {
			fprintf(stderr, "herald-bench: %s: a subject is longer than %u bytes\n", path,
				HD_MAX_SUBJECT_BYTES);
			rc = -1;
			break;
		}
		const char *body = tab ? tab + 1 : line;
		size_t body_len = len - (size_t)(body - line);
		r->text_subjects[r->text_count] = tab ? hd_strndup(line, subject_len) : NULL;
		r->text_bodies[r->text_count] = hd_strndup(body, body_len);
		r->text_count++;
		total += subject_len + body_len;
	}
	free(line);
	fclose(f);
	if (rc == 0 && r->text_count == 0) {
		fprintf(stderr, "herald-bench: %s: no texts\n", path);
		rc = -1;
	}
	if (rc != 0) {
		hb_free_texts(r);
		return -1;
	}
	r->text_bytes = total / r->text_count;
	return 0;
}

static int hb_cmd_intake(hb_opts_t *o)
{
	if (o->window == 0) {
		int w = (HB_AUTO_INFLIGHT + o->concurrency - 1) / o->concurrency;
		o->window = w < HB_MIN_AUTO_WINDOW ? HB_MIN_AUTO_WINDOW : w;
	}
	if (!o->key_prefix[0])
		snprintf(o->key_prefix, sizeof(o->key_prefix), "hb%lx-%ld",
			 (unsigned long)time(NULL), (long)getpid());

	hb_run_t run;
	memset(&run, 0, sizeof(run));
	run.opts = o;
	run.send_ns = hd_calloc(o->messages, sizeof(int64_t));
	run.ack_ns = hd_calloc(o->messages, sizeof(int64_t));
	run.state = hd_calloc(o->messages, sizeof(uint8_t));
	if (o->text_file && hb_load_texts(&run, o->text_file) != 0) {
		free(run.send_ns);
		free(run.ack_ns);
		free(run.state);
		return 2;
	}
	run.body = hb_make_body(&run);
	pthread_mutex_init(&run.lock, NULL);
	pthread_barrier_init(&run.barrier, NULL, (unsigned)o->concurrency + 1);
	hb_conn_t *conns = hd_calloc((size_t)o->concurrency, sizeof(*conns));
	for (int k = 0; k < o->concurrency; k++) {
		conns[k].run = &run;
		conns[k].index = k;
	}

	double cpu0 = hb_cpu_s();
	int rc = o->driver == HB_DRIVER_LIB ? hb_lib_run(&run, conns) : hb_raw_run(&run, conns);
	int64_t end_ns = hb_now_ns();
	double cpu_s = hb_cpu_s() - cpu0;
	int status = 2;
	if (rc == 0) {
		status = hb_report(&run, cpu_s, end_ns);
		if (o->latency_log)
			hb_write_latency_log(&run);
	}
	for (int k = 0; k < o->concurrency; k++)
		herald_client_destroy(&conns[k].client);
	free(conns);
	pthread_barrier_destroy(&run.barrier);
	pthread_mutex_destroy(&run.lock);
	free(run.body);
	hb_free_texts(&run);
	free(run.send_ns);
	free(run.ack_ns);
	free(run.state);
	return status;
}

static int hb_cmd_ping(const hb_opts_t *o)
{
	char err[256];
	herald_client_t *c = herald_client_new(o->endpoint, o->app, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "herald-bench: %s\n", err);
		return 2;
	}
	int64_t deadline = hb_now_ns() + (int64_t)o->wait_ms * HB_NS_PER_MS;
	int status = 1;
	do {
		if (herald_client_ping(c, 250) == HERALD_OK) {
			status = 0;
			break;
		}
		hb_sleep_until_ns(hb_now_ns() + 100 * HB_NS_PER_MS);
	} while (hb_now_ns() < deadline);
	herald_client_destroy(&c);
	if (status != 0)
		fprintf(stderr, "herald-bench: no pong from %s within %d ms\n", o->endpoint,
			o->wait_ms);
	return status;
}

static void hb_usage(FILE *out)
{
	fputs("usage: herald-bench intake --endpoint EP [--concurrency C] [--messages N]\n"
	      "                           [--size BYTES] [--window W] [--rate MSGS_PER_S]\n"
	      "                           [--driver lib|raw] [--app NAME] [--key-prefix P]\n"
	      "                           [--tick-us US] [--timeout-ms MS]\n"
	      "                           [--latency-log FILE] [--channel email|im]\n"
	      "                           [--to R1,R2,...] [--important] [--text-file FILE]\n"
	      "       herald-bench ping --endpoint EP [--wait-ms MS]\n"
	      "  --concurrency C   producer connections (default 1)\n"
	      "  --messages N      messages in total (default 10000)\n"
	      "  --size BYTES      size of one request on the wire (default 500)\n"
	      "  --window W        outstanding requests per connection (default 1024/C, >= 8)\n"
	      "  --rate R          open loop: submit R messages/s in total (default: closed loop)\n"
	      "  --tick-us US      open loop: send what fell due on this grid (default 1000;\n"
	      "                    0: each message at its own due time)\n"
	      "  --driver D        lib: libherald, a thread per connection (default);\n"
	      "                    raw: one thread polling every socket, no resend\n"
	      "  --timeout-ms MS   lib: reply timeout per attempt; raw: give up after MS\n"
	      "                    without any reply (default 30000)\n"
	      "  --latency-log F   write 'message send_ms ack_ms latency_ms state' lines\n"
	      "  --channel CH      email (default) or im\n"
	      "  --to LIST         comma-separated recipients, message j to the (j mod n)-th\n"
	      "                    (required for im: group names; email default:\n"
	      "                    user0..user999@example.com)\n"
	      "  --important       flag every message important: each is held for approval\n"
	      "                    and its ACK must say class important, state held\n"
	      "  --text-file FILE  message texts, one 'SUBJECT<TAB>BODY' (or 'BODY') per line;\n"
	      "                    message j takes line j mod n (replaces the --size filler)\n", out);
}

static void hb_free_to(hb_opts_t *o)
{
	for (size_t i = 0; i < o->to_count; i++)
		free(o->to[i]);
	free(o->to);
	o->to = NULL;
	o->to_count = 0;
}

/* --to: comma-separated, every entry 1..HD_MAX_ADDR_BYTES bytes, at most HB_MAX_TO. */
static int hb_parse_to(hb_opts_t *o, const char *list)
{
	hb_free_to(o);
	o->to = hd_calloc(HB_MAX_TO, sizeof(*o->to));
	const char *p = list;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == 0 || len > HD_MAX_ADDR_BYTES || o->to_count == HB_MAX_TO)
			return -1;
		char *item = hd_malloc(len + 1);
		memcpy(item, p, len);
		item[len] = '\0';
		o->to[o->to_count++] = item;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		hb_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *cmd = argv[1];
	hb_opts_t o = {
		.endpoint = HERALD_DEFAULT_ENDPOINT,
		.app = HB_APP_DEFAULT,
		.concurrency = 1,
		.messages = 10000,
		.size_bytes = 500,
		.window = 0,
		.rate = 0,
		.tick_us = 1000,
		.driver = HB_DRIVER_LIB,
		.timeout_ms = 30000,
		.wait_ms = 15000,
	};
	static const struct option longopts[] = {
		{"endpoint", required_argument, NULL, 'e'},
		{"concurrency", required_argument, NULL, 'c'},
		{"messages", required_argument, NULL, 'n'},
		{"size", required_argument, NULL, 's'},
		{"window", required_argument, NULL, 'w'},
		{"rate", required_argument, NULL, 'r'},
		{"driver", required_argument, NULL, 'd'},
		{"app", required_argument, NULL, 'a'},
		{"key-prefix", required_argument, NULL, 'k'},
		{"timeout-ms", required_argument, NULL, 't'},
		{"wait-ms", required_argument, NULL, 'W'},
		{"latency-log", required_argument, NULL, 'L'},
		{"tick-us", required_argument, NULL, 'T'},
		{"channel", required_argument, NULL, 'C'},
		{"to", required_argument, NULL, 'R'},
		{"important", no_argument, NULL, 'I'},
		{"text-file", required_argument, NULL, 'X'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	optind = 2;
	int opt;
	long v;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'e': o.endpoint = optarg; break;
		case 'a': o.app = optarg; break;
		case 'c':
			if (!hd_num_parse_long(optarg, 1, HB_MAX_CONCURRENCY, &v))
				goto bad;
			o.concurrency = (int)v;
			break;
		case 'n':
			if (!hd_num_parse_long(optarg, 1, HB_MAX_MESSAGES, &v))
				goto bad;
			o.messages = (size_t)v;
			break;
		case 's':
			if (!hd_num_parse_long(optarg, 1, HB_MAX_SIZE_BYTES, &v))
				goto bad;
			o.size_bytes = (size_t)v;
			break;
		case 'w':
			if (!hd_num_parse_long(optarg, 1, HB_MAX_WINDOW, &v))
				goto bad;
			o.window = (int)v;
			break;
		case 'r': {
			char *end = NULL;
			o.rate = strtod(optarg, &end);
			if (!end || *end != '\0' || !(o.rate > 0) || o.rate > 1e7)
				goto bad;
			break;
		}
		case 'd':
			if (strcmp(optarg, "lib") == 0)
				o.driver = HB_DRIVER_LIB;
			else if (strcmp(optarg, "raw") == 0)
				o.driver = HB_DRIVER_RAW;
			else
				goto bad;
			break;
		case 'k':
			if (strlen(optarg) == 0 || strlen(optarg) >= sizeof(o.key_prefix) - 24)
				goto bad;
			snprintf(o.key_prefix, sizeof(o.key_prefix), "%s", optarg);
			break;
		case 't':
			if (!hd_num_parse_long(optarg, 1, 3600000, &v))
				goto bad;
			o.timeout_ms = (int)v;
			break;
		case 'W':
			if (!hd_num_parse_long(optarg, 1, 3600000, &v))
				goto bad;
			o.wait_ms = (int)v;
			break;
		case 'L': o.latency_log = optarg; break;
		case 'T':
			if (!hd_num_parse_long(optarg, 0, 1000000, &v))
				goto bad;
			o.tick_us = (int)v;
			break;
		case 'C':
			if (strcmp(optarg, "email") == 0)
				o.channel = HD_CHANNEL_EMAIL;
			else if (strcmp(optarg, "im") == 0)
				o.channel = HD_CHANNEL_IM;
			else
				goto bad;
			break;
		case 'R':
			if (hb_parse_to(&o, optarg) != 0)
				goto bad;
			break;
		case 'I': o.important = true; break;
		case 'X': o.text_file = optarg; break;
		case 'h': hb_usage(stdout); hb_free_to(&o); return 0;
		default: hb_usage(stderr); hb_free_to(&o); return 2;
		}
	}
	if (optind != argc)
		goto bad_args;
	int status = 2;
	if (strcmp(cmd, "intake") == 0) {
		if (o.channel == HD_CHANNEL_IM && o.to_count == 0) {
			fprintf(stderr, "herald-bench: --channel im needs --to GROUP[,GROUP...]\n");
			goto bad_args;
		}
		status = hb_cmd_intake(&o);
	} else if (strcmp(cmd, "ping") == 0) {
		status = hb_cmd_ping(&o);
	} else {
		fprintf(stderr, "herald-bench: unknown command '%s'\n", cmd);
		hb_usage(stderr);
	}
	hb_free_to(&o);
	return status;
bad:
	fprintf(stderr, "herald-bench: bad value '%s' for an option\n", optarg);
bad_args:
	hb_usage(stderr);
	hb_free_to(&o);
	return 2;
}
