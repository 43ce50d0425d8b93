/*
 * NAME
 *	hd_intake - the producer-facing ROUTER socket of heraldd
 * DESCRIPTION
 *	Receives request frames, decodes them with hd_envelope (the only
 *	place producer bytes are interpreted), evaluates the policy
 *	(hd_policy), classifies submissions and hands them to hd_store;
 *	answers every request exactly once: an ACK after the store reports
 *	the batch committed, or an ERROR with code, field and reason (and
 *	the policy's findings). Bad input is logged once here (one warn
 *	line) and never reaches the store; a submission the policy refuses
 *	does, so that its violations are committed before the ERROR. It does not block: replies that cannot be
 *	queued to a gone or slow peer are dropped (the producer resends).
 * OWNERSHIP
 *	hd_intake_t owns its socket; the context, configuration, classifier
 *	and store are borrowed and must outlive it.
 */
#ifndef HD_INTAKE_H
#define HD_INTAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "hd_classify.h"
#include "hd_config.h"
#include "hd_seal.h"
#include "hd_store.h"

typedef struct hd_intake hd_intake_t;

typedef struct hd_intake_stats {
	uint64_t received;
	uint64_t accepted;       /* ACKed, duplicates included */
	uint64_t duplicates;
	uint64_t rejected;       /* bad input or refused by the policy */
	uint64_t policy_rejected; /* of which refused by the policy here */
	uint64_t unavailable;    /* retryable refusals (database down, busy) */
} hd_intake_stats_t;

/*
 * Bind a ROUTER socket on cfg->listen. Caller owns the result; NULL with
 * a reason in err when the endpoint cannot be bound.
 */
hd_intake_t *hd_intake_new(void *zmq_ctx, const hd_config_t *cfg,
			   const hd_classify_t *classify, char *err, size_t errlen);

/* NULL-safe; closes the socket and sets *self_p to NULL. */
void hd_intake_destroy(hd_intake_t **self_p);

/* Borrowed store that submissions go to (set once, before the loop). */
void hd_intake_attach_store(hd_intake_t *self, hd_store_t *store);

/*
 * Borrowed keyring (set once, before the loop; must outlive the intake)
 * whose current key seals confidential messages before they are stored
 * (POLICY K2). Without one (or without a current key) a confidential
 * submission is refused with code policy, field msg.flags.
 */
void hd_intake_attach_seal(hd_intake_t *self, const hd_seal_t *seal);

/*
 * Borrowed policy every submission is evaluated against (set once,
 * before the loop; without one only classification and the bulk
 * application check run).
 */
void hd_intake_attach_policy(hd_intake_t *self, hd_policy_t *policy);

/* The ROUTER socket, for zmq_poll. Borrowed. */
void *hd_intake_socket(hd_intake_t *self);

/* Read and handle up to max_requests waiting requests without blocking. */
void hd_intake_on_readable(hd_intake_t *self, int max_requests);

/* hd_store completion callback: sends the ACK or ERROR; arg is the intake. */
void hd_intake_on_stored(void *arg, hd_store_item_t *item, const hd_store_result_t *result);

/* Counters since start. */
hd_intake_stats_t hd_intake_stats(const hd_intake_t *self);

#endif
