/*
 * NAME
 *	hd-channel-probe - drive one channel driver from JSON lines, for tests
 * SYNOPSIS
 *	hd-channel-probe --driver email [--config FILE] [--group NAME]
 * DESCRIPTION
 *	Opens the driver with the group NAME (default: the driver name) of
 *	the libconfig FILE, reads stdin line by line and runs the driver's
 *	loop (poll_items / zmq_poll / handle / timeout_ms) exactly like
 *	herald-worker does, until stdin is done and every job has reported.
 *	Input lines (JSON objects):
 *	  {"delivery_id":1, "message_id":2, "attempt":1, "recipient":"a@x.example",
 *	   "kind":"to", "class":"general|important|bulk",
 *	   "msg":{"from":"s@x.example", "to":[...], "cc":[...], "subject":"...",
 *	          "body":"...", "html":"...", "flags":["confidential",...],
 *	          "reply_by":1767225600,
 *	          "attachments":[{"name":"a.pdf", "type":"application/pdf",
 *	                          "data_b64":"..."}]}}
 *	  {"sleep_ms":500}   run the loop for 500 ms before reading on
 *	  {"close":true}     close the driver now (jobs still held report)
 *	Output: one JSON line per result on stdout:
 *	  {"delivery_id":1, "attempt":1, "outcome":"delivered", "provider":"smtp",
 *	   "code":"250", "detail":"...", "provider_id":"...", "retry_after_ms":0}
 *	Exit status 0 when every job reported exactly once, 1 otherwise.
 * OWNERSHIP
 *	Jobs are built here, owned by the driver between submit and done,
 *	and freed here when done hands them back.
 */
#include <errno.h>
#include <jansson.h>
#include <libconfig.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hd_channel.h"
#include "hd_email.h"
#include "hd_im.h"
#include "hd_log.h"
#include "hd_mem.h"
#include "hd_msg.h"
#include "hd_sms.h"
#include "hd_time.h"

/* Add a row here to probe another driver. */
static const struct {
	const char *name;
	const hd_channel_ops_t *ops;
} drivers[] = {
	{"email", &hd_email_ops},
	{"im", &hd_im_ops},
	{"sms", &hd_sms_ops},
};

#define MAX_ITEMS 64

typedef struct probe {
	size_t submitted;
	size_t reported;
	size_t duplicates;
	int64_t *seen;          /* delivery ids reported, to catch double reports */
	size_t seen_count, seen_cap;
} probe_t;

static void job_free(hd_channel_job_t *job)
{
	free(job->job.recipient);
	free(job->job.kind);
	hd_msg_destroy(&job->job.msg);
	free(job);
}

static void on_done(void *arg, hd_channel_job_t *job, const hd_wire_result_t *r)
{
	probe_t *p = arg;
	for (size_t i = 0; i < p->seen_count; i++)
		if (p->seen[i] == r->delivery_id)
			p->duplicates++;
	if (p->seen_count == p->seen_cap) {
		p->seen_cap = p->seen_cap ? p->seen_cap * 2 : 64;
		p->seen = hd_realloc(p->seen, p->seen_cap * sizeof *p->seen);
	}
	p->seen[p->seen_count++] = r->delivery_id;
	p->reported++;
	json_t *o = json_pack("{s:I, s:i, s:s, s:s, s:s, s:s, s:s, s:I}", "delivery_id",
			      (json_int_t)r->delivery_id, "attempt", (int)r->attempt, "outcome",
			      hd_outcome_name(r->outcome), "provider", r->provider, "code",
			      r->provider_code, "detail", r->detail, "provider_id", r->provider_id,
			      "retry_after_ms", (json_int_t)r->retry_after_ms);
	char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	printf("%s\n", line);
	fflush(stdout);
	free(line);
	json_decref(o);
	job_free(job);
}

static const char *jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static hd_msg_t *msg_from_json(json_t *jm, char *why, size_t whylen)
{
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	const char *s;
	if ((s = jstr(jm, "from")))
		m->sender = hd_strdup(s);
	if ((s = jstr(jm, "subject")))
		m->subject = hd_strdup(s);
	if ((s = jstr(jm, "body")))
		m->body = hd_strdup(s);
	if ((s = jstr(jm, "html")))
		m->html = hd_strdup(s);
	json_t *v;
	size_t i;
	json_array_foreach(json_object_get(jm, "to"), i, v)
		hd_msg_add_to(m, json_string_value(v));
	json_array_foreach(json_object_get(jm, "cc"), i, v)
		hd_msg_add_cc(m, json_string_value(v));
	json_array_foreach(json_object_get(jm, "flags"), i, v) {
		hd_flag_t f;
		if (!json_is_string(v) || hd_flag_parse(json_string_value(v), &f) != 0) {
			snprintf(why, whylen, "bad flag");
			hd_msg_destroy(&m);
			return NULL;
		}
		m->flags |= (unsigned)f;
	}
	if ((v = json_object_get(jm, "reply_by")) && json_is_integer(v))
		m->reply_by = (int64_t)json_integer_value(v);
	json_array_foreach(json_object_get(jm, "attachments"), i, v) {
		const char *b64 = jstr(v, "data_b64");
		size_t b64len = b64 ? strlen(b64) : 0;
		unsigned char *bin = hd_malloc(b64len / 4 * 3 + 3);
		size_t binlen = 0;
		if (b64 && sodium_base642bin(bin, b64len / 4 * 3 + 3, b64, b64len, "\r\n", &binlen,
					     NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
			snprintf(why, whylen, "bad data_b64");
			free(bin);
			hd_msg_destroy(&m);
			return NULL;
		}
		hd_msg_add_attachment(m, jstr(v, "name"), jstr(v, "type"), bin, binlen);
		free(bin);
	}
	return m;
}

static hd_channel_job_t *job_from_json(json_t *o, char *why, size_t whylen)
{
	json_t *jm = json_object_get(o, "msg");
	if (!json_is_object(jm)) {
		snprintf(why, whylen, "job without msg");
		return NULL;
	}
	hd_msg_t *m = msg_from_json(jm, why, whylen);
	if (!m)
		return NULL;
	hd_channel_job_t *job = hd_calloc(1, sizeof *job);
	job->job.delivery_id = (int64_t)json_integer_value(json_object_get(o, "delivery_id"));
	job->job.message_id = (int64_t)json_integer_value(json_object_get(o, "message_id"));
	json_t *a = json_object_get(o, "attempt");
	job->job.attempt = a ? (uint32_t)json_integer_value(a) : 1u;
	job->job.lease_ms = 60000;
	const char *s = jstr(o, "recipient");
	job->job.recipient = s ? hd_strdup(s) : NULL;
	job->job.kind = hd_strdup((s = jstr(o, "kind")) ? s : "to");
	hd_class_t k = HD_CLASS_GENERAL;
	if ((s = jstr(o, "class")) && hd_class_parse(s, &k) != 0) {
		snprintf(why, whylen, "bad class");
		job_free(job);
		hd_msg_destroy(&m);
		return NULL;
	}
	job->job.klass = k;
	job->job.msg = m;
	return job;
}

/* One turn of the worker loop, waiting at most max_wait_ms. */
static void loop_once(const hd_channel_ops_t *ops, void *drv, int64_t max_wait_ms)
{
	zmq_pollitem_t items[MAX_ITEMS];
	size_t n = ops->poll_items(drv, items, MAX_ITEMS);
	int64_t now = hd_time_mono_ms();
	int64_t t = ops->timeout_ms(drv, now);
	if (t < 0 || t > max_wait_ms)
		t = max_wait_ms;
	int rc = zmq_poll(items, (int)n, (long)t);
	if (rc < 0 && zmq_errno() != EINTR) {
		fprintf(stderr, "zmq_poll: %s\n", zmq_strerror(zmq_errno()));
		exit(2);
	}
	if (rc < 0)
		for (size_t i = 0; i < n; i++)
			items[i].revents = 0;
	ops->handle(drv, hd_time_mono_ms(), items, n);
}

static void run_for(const hd_channel_ops_t *ops, void *drv, int64_t ms)
{
	int64_t end = hd_time_mono_ms() + ms;
	for (int64_t left = ms; left > 0; left = end - hd_time_mono_ms())
		loop_once(ops, drv, left);
}

int main(int argc, char **argv)
{
	const char *driver = NULL, *config_path = NULL, *group = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--driver") && i + 1 < argc)
			driver = argv[++i];
		else if (!strcmp(argv[i], "--config") && i + 1 < argc)
			config_path = argv[++i];
		else if (!strcmp(argv[i], "--group") && i + 1 < argc)
			group = argv[++i];
		else {
			fprintf(stderr, "usage: %s --driver NAME [--config FILE] [--group NAME]\n", argv[0]);
			return 2;
		}
	}
	const hd_channel_ops_t *ops = NULL;
	for (size_t i = 0; driver && i < sizeof drivers / sizeof drivers[0]; i++)
		if (!strcmp(drivers[i].name, driver))
			ops = drivers[i].ops;
	if (!ops) {
		fprintf(stderr, "unknown driver %s\n", driver ? driver : "(none)");
		return 2;
	}
	hd_log_init("hd-channel-probe", HD_LOG_INFO);
	if (sodium_init() < 0)
		return 2;

	config_t cfg;
	config_init(&cfg);
	const config_setting_t *setting = NULL;
	if (config_path) {
		if (!config_read_file(&cfg, config_path)) {
			fprintf(stderr, "%s:%d: %s\n", config_error_file(&cfg) ? config_error_file(&cfg)
			       : config_path, config_error_line(&cfg), config_error_text(&cfg));
			return 2;
		}
		setting = config_lookup(&cfg, group ? group : driver);
	}

	void *zctx = zmq_ctx_new();
	probe_t p = {0};
	char err[512] = "";
	void *drv = ops->open(setting, zctx, on_done, &p, err, sizeof err);
	if (!drv) {
		fprintf(stderr, "open: %s\n", err);
		return 3;
	}

	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	bool closed = false;
	while (!closed && (len = getline(&line, &cap, stdin)) > 0) {
		json_error_t jerr;
		json_t *o = json_loadb(line, (size_t)len, 0, &jerr);
		if (!o) {
			if (strspn(line, " \t\r\n") == (size_t)len)
				continue;
			fprintf(stderr, "bad input line: %s\n", jerr.text);
			return 2;
		}
		json_t *v;
		if ((v = json_object_get(o, "sleep_ms"))) {
			run_for(ops, drv, (int64_t)json_integer_value(v));
		} else if (json_object_get(o, "close")) {
			ops->close(&drv);
			closed = true;
		} else {
			char why[128];
			hd_channel_job_t *job = job_from_json(o, why, sizeof why);
			if (!job) {
				fprintf(stderr, "bad job: %s\n", why);
				return 2;
			}
			int rc;
			while ((rc = ops->submit(drv, job)) != 0)
				loop_once(ops, drv, 100); /* busy: let the driver make room */
			p.submitted++;
			loop_once(ops, drv, 0);
		}
		json_decref(o);
	}
	free(line);
	while (!closed && ops->in_flight(drv) > 0)
		loop_once(ops, drv, 1000);
	if (!closed)
		ops->close(&drv);
	zmq_ctx_term(zctx);
	config_destroy(&cfg);
	free(p.seen);
	fprintf(stderr, "probe: submitted=%zu reported=%zu duplicates=%zu\n", p.submitted, p.reported,
		p.duplicates);
	return (p.reported == p.submitted && p.duplicates == 0) ? 0 : 1;
}
