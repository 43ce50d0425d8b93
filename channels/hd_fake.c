/*
 * NAME
 *	hd_fake - a scriptable channel driver for tests
 * DESCRIPTION
 *	See hd_fake.h for the script. Jobs wait in a list sorted by due
 *	time (ties keep submission order); handle() reports the due ones.
 *	Inserting walks from the tail, so with one delay for every job it
 *	costs O(1).
 * LIMITS
 *	At most max_in_flight jobs are held; record lines are written with
 *	one write(2) on an O_APPEND descriptor, so concurrent workers
 *	sharing a file do not interleave within a line.
 */
#include "hd_fake.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hd_err.h"
#include "hd_mem.h"
#include "hd_time.h"

#define HD_FAKE_MAX_DELAY_MS 3600000

typedef struct fake_timer {
	struct fake_timer *prev, *next;
	hd_channel_job_t *job;
	int64_t due_ms;
	hd_outcome_kind_t outcome;
} fake_timer_t;

typedef struct hd_fake {
	hd_channel_t channel;
	int64_t delay_ms;
	int64_t slow_ms;
	int64_t retry_after_ms;
	size_t max_in_flight;
	int record_fd;             /* -1: no record file */
	hd_channel_done_fn done;
	void *done_arg;
	fake_timer_t *head, *tail; /* sorted by due_ms */
	size_t count;
} hd_fake_t;

/* ---- configuration --------------------------------------------------------- */

__attribute__((format(printf, 4, 5)))
static void *fake_config_error(const config_setting_t *s, char *err, size_t errlen,
			       const char *fmt, ...)
{
	char why[192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	const char *file = config_setting_source_file(s);
	snprintf(err, errlen, "%s:%u: fake.%s: %s", file ? file : "(config)",
		 config_setting_source_line(s), config_setting_name(s) ? config_setting_name(s) : "",
		 why);
	return NULL;
}

static bool fake_int(const config_setting_t *s, int64_t lo, int64_t hi, int64_t *out,
		     char *err, size_t errlen)
{
	int type = config_setting_type(s);
	if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
		fake_config_error(s, err, errlen, "expected an integer");
		return false;
	}
	long long v = config_setting_get_int64(s);
	if (v < lo || v > hi) {
		fake_config_error(s, err, errlen, "%lld is outside [%lld, %lld]", v, (long long)lo,
				  (long long)hi);
		return false;
	}
	*out = v;
	return true;
}

static bool fake_apply(hd_fake_t *f, const config_setting_t *s, char *err, size_t errlen)
{
	const char *key = config_setting_name(s);
	int64_t v;
	if (strcmp(key, "channel") == 0) {
		if (config_setting_type(s) != CONFIG_TYPE_STRING ||
		    hd_channel_parse(config_setting_get_string(s), &f->channel) != HD_OK) {
			fake_config_error(s, err, errlen, "expected \"email\", \"im\" or \"sms\"");
			return false;
		}
		return true;
	}
	if (strcmp(key, "delay_ms") == 0)
		return fake_int(s, 0, HD_FAKE_MAX_DELAY_MS, &f->delay_ms, err, errlen);
	if (strcmp(key, "slow_ms") == 0)
		return fake_int(s, 0, HD_FAKE_MAX_DELAY_MS, &f->slow_ms, err, errlen);
	if (strcmp(key, "retry_after_ms") == 0)
		return fake_int(s, 0, HD_WIRE_MAX_RETRY_AFTER_MS, &f->retry_after_ms, err, errlen);
	if (strcmp(key, "max_in_flight") == 0) {
		if (!fake_int(s, 1, 100000, &v, err, errlen))
			return false;
		f->max_in_flight = (size_t)v;
		return true;
	}
	if (strcmp(key, "record_file") == 0) {
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			fake_config_error(s, err, errlen, "expected a string (a file path)");
			return false;
		}
		const char *path = config_setting_get_string(s);
		if (!*path)
			return true;
		if (f->record_fd >= 0)
			close(f->record_fd);
		f->record_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (f->record_fd < 0) {
			fake_config_error(s, err, errlen, "cannot open \"%s\": %s", path,
					  strerror(errno));
			return false;
		}
		return true;
	}
	fake_config_error(s, err, errlen, "unknown setting (channel, delay_ms, slow_ms, "
			  "retry_after_ms, max_in_flight, record_file)");
	return false;
}

static void *fake_open(const config_setting_t *cfg, void *zmq_ctx, hd_channel_done_fn done,
		       void *done_arg, char *err, size_t errlen)
{
	(void)zmq_ctx;
	hd_fake_t *f = hd_calloc(1, sizeof *f);
	f->channel = HD_CHANNEL_EMAIL;
	f->slow_ms = 1000;
	f->max_in_flight = 10000;
	f->record_fd = -1;
	f->done = done;
	f->done_arg = done_arg;
	if (cfg && config_setting_type(cfg) != CONFIG_TYPE_GROUP) {
		fake_config_error(cfg, err, errlen, "expected a group { ... }");
		free(f);
		return NULL;
	}
	for (int i = 0; cfg && i < config_setting_length(cfg); i++) {
		if (!fake_apply(f, config_setting_get_elem(cfg, (unsigned)i), err, errlen)) {
			if (f->record_fd >= 0)
				close(f->record_fd);
			free(f);
			return NULL;
		}
	}
	return f;
}

/* ---- jobs ------------------------------------------------------------------ */

/* The recipient decides when it carries a marker; the body only otherwise. */
static hd_outcome_kind_t fake_script(const hd_wire_job_t *job, bool *slow)
{
	static const char *const markers[] = {"+fail", "+retry", "+slow"};
	const char *where[] = {job->recipient, job->msg ? job->msg->body : NULL};
	int found = -1;
	for (int w = 0; w < 2 && found < 0; w++)
		for (int i = 0; i < 3 && found < 0 && where[w]; i++)
			if (strstr(where[w], markers[i]))
				found = i;
	*slow = found == 2;
	return found == 0 ? HD_OUTCOME_FAILED : found == 1 ? HD_OUTCOME_RETRY
							   : HD_OUTCOME_DELIVERED;
}

static void fake_insert(hd_fake_t *f, fake_timer_t *t)
{
	fake_timer_t *after = f->tail;
	while (after && after->due_ms > t->due_ms)
		after = after->prev;
	t->prev = after;
	t->next = after ? after->next : f->head;
	if (t->next)
		t->next->prev = t;
	else
		f->tail = t;
	if (after)
		after->next = t;
	else
		f->head = t;
	f->count++;
}

static fake_timer_t *fake_pop(hd_fake_t *f)
{
	fake_timer_t *t = f->head;
	if (!t)
		return NULL;
	f->head = t->next;
	if (f->head)
		f->head->prev = NULL;
	else
		f->tail = NULL;
	f->count--;
	return t;
}

static int fake_submit(void *self, hd_channel_job_t *job)
{
	hd_fake_t *f = self;
	if (f->count >= f->max_in_flight)
		return HD_E_BUSY;
	bool slow;
	fake_timer_t *t = hd_calloc(1, sizeof *t);
	t->job = job;
	t->outcome = fake_script(&job->job, &slow);
	t->due_ms = hd_time_mono_ms() + (slow ? f->slow_ms : f->delay_ms);
	fake_insert(f, t);
	return HD_OK;
}

static void fake_record(hd_fake_t *f, const hd_wire_job_t *job)
{
	if (f->record_fd < 0)
		return;
	char line[HD_MAX_ADDR_BYTES + 64];
	int n = snprintf(line, sizeof line, "%" PRId64 " %s %" PRIu32 "\n", job->delivery_id,
			 job->recipient ? job->recipient : "-", job->attempt);
	if (n > 0) {
		ssize_t w = write(f->record_fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line);
		(void)w; /* a test that counts lines will see a missing one */
	}
}

static void fake_report(hd_fake_t *f, hd_channel_job_t *job, hd_outcome_kind_t outcome,
			const char *code, const char *detail, int64_t retry_after_ms)
{
	hd_wire_result_t r;
	memset(&r, 0, sizeof r);
	r.delivery_id = job->job.delivery_id;
	r.attempt = job->job.attempt;
	r.outcome = outcome;
	r.retry_after_ms = retry_after_ms;
	snprintf(r.provider, sizeof r.provider, "fake");
	snprintf(r.provider_code, sizeof r.provider_code, "%s", code);
	snprintf(r.detail, sizeof r.detail, "%s", detail);
	if (outcome == HD_OUTCOME_DELIVERED)
		snprintf(r.provider_id, sizeof r.provider_id, "fake-%" PRId64 "-%" PRIu32,
			 job->job.delivery_id, job->job.attempt);
	f->done(f->done_arg, job, &r);
}

static void fake_fire(hd_fake_t *f, fake_timer_t *t)
{
	hd_channel_job_t *job = t->job;
	hd_outcome_kind_t outcome = t->outcome;
	free(t);
	switch (outcome) {
	case HD_OUTCOME_DELIVERED:
		fake_record(f, &job->job);
		fake_report(f, job, outcome, "250", "fake: accepted", 0);
		break;
	case HD_OUTCOME_RETRY:
		fake_report(f, job, outcome, "451", "fake: temporary failure (+retry)",
			    f->retry_after_ms);
		break;
	default:
		fake_report(f, job, outcome, "550", "fake: permanent failure (+fail)", 0);
		break;
	}
}

static size_t fake_poll_items(void *self, zmq_pollitem_t *items, size_t max)
{
	(void)self;
	(void)items;
	(void)max;
	return 0;
}

static void fake_handle(void *self, int64_t now_ms, const zmq_pollitem_t *items, size_t count)
{
	(void)items;
	(void)count;
	hd_fake_t *f = self;
	/* Only the jobs due now: done may submit more, which wait for the next turn. */
	size_t due = 0;
	for (fake_timer_t *t = f->head; t && t->due_ms <= now_ms; t = t->next)
		due++;
	while (due-- > 0 && f->head)
		fake_fire(f, fake_pop(f));
}

static int64_t fake_timeout_ms(void *self, int64_t now_ms)
{
	hd_fake_t *f = self;
	if (!f->head)
		return -1;
	return f->head->due_ms > now_ms ? f->head->due_ms - now_ms : 0;
}

static size_t fake_in_flight(void *self)
{
	return ((hd_fake_t *)self)->count;
}

static void fake_close(void **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_fake_t *f = *self_p;
	fake_timer_t *t;
	while ((t = fake_pop(f)) != NULL) {
		hd_channel_job_t *job = t->job;
		free(t);
		fake_report(f, job, HD_OUTCOME_RETRY, "stopping", "worker stopping", 0);
	}
	if (f->record_fd >= 0)
		close(f->record_fd);
	free(f);
	*self_p = NULL;
}

hd_channel_t hd_fake_channel(const void *self)
{
	return ((const hd_fake_t *)self)->channel;
}

static size_t fake_capacity(void *self)
{
	return ((hd_fake_t *)self)->max_in_flight;
}

const hd_channel_ops_t hd_fake_ops = {
	.name = "fake",
	.channel = HD_CHANNEL_EMAIL,
	.open = fake_open,
	.submit = fake_submit,
	.poll_items = fake_poll_items,
	.handle = fake_handle,
	.timeout_ms = fake_timeout_ms,
	.in_flight = fake_in_flight,
	.close = fake_close,
	.capacity = fake_capacity,
};
