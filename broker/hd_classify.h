/*
 * NAME
 *	hd_classify - general, important or bulk
 * DESCRIPTION
 *	Decides a message's class from its flags, recipient count, subject
 *	tag and sensitive keywords (POLICY A1, A2.1, A3): bulk when flagged
 *	or when to + cc reaches the bulk threshold; otherwise important when
 *	flagged, when the subject carries the important tag, or when the
 *	subject or body contains a sensitive keyword (ASCII case-insensitive);
 *	otherwise general. Pure: no I/O, no logging.
 * OWNERSHIP
 *	hd_classify_t copies what it needs from the configuration.
 */
#ifndef HD_CLASSIFY_H
#define HD_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "hd_msg.h"

typedef struct hd_classify hd_classify_t;

/* Caller owns the result. keywords are copied; empty ones are ignored. */
hd_classify_t *hd_classify_new(int64_t bulk_threshold, const char *important_tag,
			       char *const *keywords, size_t keyword_count);

/* NULL-safe; sets *self_p to NULL. */
void hd_classify_destroy(hd_classify_t **self_p);

/* The class of msg. */
hd_class_t hd_classify_message(const hd_classify_t *self, const hd_msg_t *msg);

/* The delivery state a new message of klass starts in: "queued" or "held". */
const char *hd_classify_initial_state(hd_class_t klass);

#endif
