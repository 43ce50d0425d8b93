/*
 * NAME
 *	hd_classify - general, important or bulk
 * DESCRIPTION
 *	Decides a message's class from its flags, recipient count, subject
 *	tag and what the policy found in its content (POLICY A1, A2.1, A3):
 *	bulk when flagged or when to + cc reaches the bulk threshold;
 *	otherwise important when flagged, when the subject carries the
 *	important tag, or when the policy's sensitive-content rules matched
 *	(hd_policy: keyword lists after Unicode folding); otherwise general.
 *	Pure: no I/O, no logging.
 * OWNERSHIP
 *	hd_classify_t copies what it needs from the configuration.
 */
#ifndef HD_CLASSIFY_H
#define HD_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_msg.h"

typedef struct hd_classify hd_classify_t;

/* Caller owns the result. */
hd_classify_t *hd_classify_new(int64_t bulk_threshold, const char *important_tag);

/* What the approval rules need besides the class. */
typedef struct hd_classify_result {
	hd_class_t klass;
	bool important;  /* flag, subject tag or sensitive content, whatever the class */
	bool major;      /* flag or major content: needs senior leadership too */
} hd_classify_result_t;

/*
 * Class plus the important and major signals of msg; content_important
 * and content_major are what the policy's content rules decided.
 */
hd_classify_result_t hd_classify_explain(const hd_classify_t *self, const hd_msg_t *msg,
					 bool content_important, bool content_major);

/* NULL-safe; sets *self_p to NULL. */
void hd_classify_destroy(hd_classify_t **self_p);

/* The class of msg from its flags, recipients and subject tag alone. */
hd_class_t hd_classify_message(const hd_classify_t *self, const hd_msg_t *msg);

/*
 * POLICY E1: an important email carries the important tag before its
 * subject, exactly once. Prefixes "<tag> " when the subject does not
 * already contain the tag and the result fits max_bytes; returns true
 * when it changed msg->subject.
 */
bool hd_classify_tag_subject(const hd_classify_t *self, hd_msg_t *msg, size_t max_bytes);

/* The delivery state a new message of klass starts in: "queued" or "held". */
const char *hd_classify_initial_state(hd_class_t klass);

#endif
