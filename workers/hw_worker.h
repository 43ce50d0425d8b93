/*
 * NAME
 *	hw_worker - the worker side of the broker <-> worker protocol
 * DESCRIPTION
 *	Owns the DEALER socket to heraldd's dispatch ROUTER and the open
 *	channel drivers, and runs one turn of the event loop at a time
 *	(zmq_poll over the socket, an optional wake descriptor and every
 *	driver's poll items) so that main.c and the unit tests drive the
 *	very same code. Protocol behaviour (docs/PROTOCOL.md section 2):
 *	READY on every connection, announcing min(credit, sum of the
 *	drivers' capacities) so that heraldd never sends more than the
 *	drivers can hold; each JOB goes to the driver serving its
 *	channel, or is answered at once (failed "no_channel"; retry
 *	"over_credit" beyond the announced credit, "busy" when the driver
 *	is full, "stopping" after BYE); every driver report becomes one
 *	RESULT; HB after heartbeat_ms without sending; heraldd silent for
 *	3 beats = close, reopen (new identity), READY again, with the jobs
 *	already in drivers reporting on the new connection. hw_worker_stop
 *	sends BYE and refuses further jobs; destroy closes the drivers,
 *	which give back what they still hold as retry.
 *	It logs one line per decision: every job outcome (info), lost and
 *	regained broker, protocol errors.
 *	Confidential content sealed at rest (POLICY K2, hd_seal) is opened
 *	here, after the JOB decoded and before a driver sees it; a job this
 *	worker cannot open (no keys, unknown key id, tampered) fails at once
 *	with code "seal" and is never handed to a driver, so ciphertext is
 *	never sent. Opened content is wiped when the job comes back.
 * OWNERSHIP
 *	The ZeroMQ context, the driver configuration groups and the keyring
 *	are borrowed (they must outlive the worker). Everything else is owned.
 */
#ifndef HW_WORKER_H
#define HW_WORKER_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_seal.h"
#include "hw_drivers.h"

typedef struct hw_worker hw_worker_t;

typedef struct hw_worker_options {
	const char *broker;         /* endpoint to connect to; copied */
	const char *name;           /* announced in READY; copied */
	uint32_t credit;            /* 1..HD_WIRE_MAX_CREDIT; READY announces at most the
				     * sum of the drivers' capacities (hd_channel_ops_t) */
	uint32_t heartbeat_ms;      /* HD_WIRE_MIN_HEARTBEAT_MS..HD_WIRE_MAX_HEARTBEAT_MS */
	int64_t shutdown_grace_ms;  /* how long hw_worker_is_done waits for jobs after stop */
} hw_worker_options_t;

typedef struct hw_worker_stats {
	uint64_t jobs;          /* JOB frames received and decoded */
	uint64_t delivered;     /* RESULTs sent, by outcome */
	uint64_t retried;
	uint64_t failed;
	uint64_t refused;       /* JOBs answered without a driver (no channel, credit, busy, stopping) */
	uint64_t bad_frames;
	uint64_t reconnects;
	size_t in_flight;       /* jobs held by drivers now */
} hw_worker_stats_t;

/* Caller owns the result; nothing is connected until hw_worker_start. */
hw_worker_t *hw_worker_new(void *zmq_ctx, const hw_worker_options_t *opts);

/*
 * Open driver with its configuration group (NULL = driver defaults) and
 * serve its channel. Returns 0, or HD_E_CONFIG with "file:line: reason"
 * in err when the driver refuses its group, or when another driver
 * already serves that channel. Only before hw_worker_start.
 */
int hw_worker_add_driver(hw_worker_t *self, const hw_driver_t *driver,
			 const config_setting_t *group, char *err, size_t errlen);

/*
 * Borrowed keys that open sealed confidential content (NULL = none: such
 * jobs fail with code "seal"). Set once, before jobs arrive.
 */
void hw_worker_attach_seal(hw_worker_t *self, const hd_seal_t *seal);

/* The channels served so far, as bits (1u << hd_channel_t). */
unsigned hw_worker_channels(const hw_worker_t *self);

/* Connect and send READY. 0, or HD_E_IO / HD_E_CONFIG with err filled. */
int hw_worker_start(hw_worker_t *self, char *err, size_t errlen);

/*
 * One turn: poll the socket, wake_fd (if >= 0; drained when readable)
 * and the drivers for at most max_wait_ms (< 0: until the next timer),
 * then handle whatever is ready and run timers. Returns 0, or HD_E_IO
 * when zmq_poll failed for another reason than a signal.
 */
int hw_worker_run_once(hw_worker_t *self, int wake_fd, int64_t max_wait_ms);

/* Send BYE and take no more jobs; starts the shutdown grace period. Idempotent. */
void hw_worker_stop(hw_worker_t *self);

/*
 * True once stopped and either every job has reported and its RESULT
 * was handed to ZeroMQ, or the grace period is over.
 */
bool hw_worker_is_done(const hw_worker_t *self);

hw_worker_stats_t hw_worker_stats(const hw_worker_t *self);

/*
 * NULL-safe. Closes the drivers (each reports the jobs it still holds
 * as retry "worker stopping"; those RESULTs are queued), then closes
 * the socket, lingering at most 1 s so the last frames leave.
 */
void hw_worker_destroy(hw_worker_t **self_p);

#endif
