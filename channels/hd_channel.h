/*
 * NAME
 *	hd_channel - the ops table every channel driver implements
 * DESCRIPTION
 *	herald-worker runs one event loop (zmq_poll) over its broker socket
 *	and the sockets its drivers expose. A driver takes jobs without
 *	blocking, works on them asynchronously (libcurl multi; or a thread
 *	it talks to over an inproc ZeroMQ pair when the library blocks, as
 *	libesmtp does), and reports exactly one outcome per job through the
 *	done callback: delivered, retry (with the provider's Retry-After when
 *	given) or failed, plus the provider's code and text. A driver maps
 *	every provider response to exactly one outcome and never logs
 *	secrets (credentials come from files or the environment).
 * OWNERSHIP
 *	submit takes ownership of the job; the done callback hands it back
 *	to the worker, which frees it with hd_wire_frame_clear semantics
 *	(hd_channel_job_destroy).
 */
#ifndef HD_CHANNEL_H
#define HD_CHANNEL_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "hd_wire.h"

typedef struct hd_channel_job {
	hd_wire_job_t job;       /* owned */
	void *user;              /* the worker's bookkeeping; drivers ignore it */
} hd_channel_job_t;

/* Called exactly once per submitted job; the callee takes ownership of job. */
typedef void (*hd_channel_done_fn)(void *arg, hd_channel_job_t *job,
				   const hd_wire_result_t *result);

typedef struct hd_channel_ops {
	const char *name;                    /* "email", "im", "sms", "fake" */
	hd_channel_t channel;

	/*
	 * Open from this driver's configuration group (may be NULL for
	 * defaults). NULL with "file:line: reason" in err on bad config.
	 */
	void *(*open)(const config_setting_t *cfg, void *zmq_ctx, hd_channel_done_fn done,
		      void *done_arg, char *err, size_t errlen);

	/* Take a job; never blocks. 0, or HD_E_BUSY when the driver is full. */
	int (*submit)(void *self, hd_channel_job_t *job);

	/* Fill up to max poll items (sockets or fds) to watch; return count. */
	size_t (*poll_items)(void *self, zmq_pollitem_t *items, size_t max);

	/* After zmq_poll: the same items with revents; also drives timers. */
	void (*handle)(void *self, int64_t now_ms, const zmq_pollitem_t *items, size_t count);

	/* Milliseconds until handle has timed work, -1 for none. */
	int64_t (*timeout_ms)(void *self, int64_t now_ms);

	/* Jobs submitted and not yet reported. */
	size_t (*in_flight)(void *self);

	/* Report every job still held as RETRY ("worker stopping"), free all. */
	void (*close)(void **self_p);

	/*
	 * Optional, last so that positional initializers stay valid: the
	 * most jobs this instance holds at once (submit says HD_E_BUSY once
	 * in_flight reaches it); 0 or a NULL member = no limit of its own.
	 * herald-worker announces min(credit, sum of its drivers'
	 * capacities) in READY: one credit covers every channel, so with a
	 * single driver heraldd never sends a job the driver would have to
	 * refuse as "busy" (with several, one driver can still be full).
	 */
	size_t (*capacity)(void *self);
} hd_channel_ops_t;

/* Free a job and what it owns; NULL-safe. */
void hd_channel_job_destroy(hd_channel_job_t **job_p);

#endif
