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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_msg.h"

typedef struct hd_classify hd_classify_t;

/* Caller owns the result. Keyword lists are copied; empty ones are ignored. */
hd_classify_t *hd_classify_new(int64_t bulk_threshold, const char *important_tag,
			       char *const *keywords, size_t keyword_count);

/*
 * Major-keyword list (POLICY A2.1: "when necessary, also approved by
 * senior leadership"): a match makes an important message major. Copied.
 */
void hd_classify_set_major_keywords(hd_classify_t *self, char *const *keywords, size_t count);

/* What the approval rules need besides the class. */
typedef struct hd_classify_result {
	hd_class_t klass;
	bool important;  /* flag, subject tag or sensitive keyword, whatever the class */
	bool major;      /* flag or major keyword: needs senior leadership too */
} hd_classify_result_t;

/* Class plus the important and major signals of msg. */
hd_classify_result_t hd_classify_explain(const hd_classify_t *self, const hd_msg_t *msg);

/* NULL-safe; sets *self_p to NULL. */
void hd_classify_destroy(hd_classify_t **self_p);

/* The class of msg. */
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
