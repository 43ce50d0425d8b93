/*
 * NAME
 *	hd_classify - general, important or bulk
 * DESCRIPTION
 *	Keywords are folded to ASCII lower case once, at construction; the
 *	text is folded on the fly while searching, so classification does
 *	not allocate. Non-ASCII bytes (e.g. Chinese keywords) compare
 *	exactly. Unicode normalisation belongs to the policy module.
 */
#include "hd_classify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_mem.h"

struct hd_classify {
	int64_t bulk_threshold;
	char *important_tag;
};

hd_classify_t *hd_classify_new(int64_t bulk_threshold, const char *important_tag)
{
	hd_classify_t *self = hd_calloc(1, sizeof(*self));
	self->bulk_threshold = bulk_threshold;
	self->important_tag = hd_strdup(important_tag ? important_tag : "");
	return self;
}

void hd_classify_destroy(hd_classify_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	free((*self_p)->important_tag);
	free(*self_p);
	*self_p = NULL;
}

hd_classify_result_t hd_classify_explain(const hd_classify_t *self, const hd_msg_t *msg,
					 bool content_important, bool content_major)
{
	hd_classify_result_t r = {.klass = HD_CLASS_GENERAL};
	r.major = (msg->flags & HD_FLAG_MAJOR) || content_major;
	r.important = (msg->flags & HD_FLAG_IMPORTANT) || r.major || content_important ||
		      (*self->important_tag && msg->subject &&
		       strstr(msg->subject, self->important_tag));
	if ((msg->flags & HD_FLAG_BULK) ||
	    (int64_t)hd_msg_recipient_count(msg) >= self->bulk_threshold)
		r.klass = HD_CLASS_BULK;
	else if (r.important)
		r.klass = HD_CLASS_IMPORTANT;
	return r;
}

hd_class_t hd_classify_message(const hd_classify_t *self, const hd_msg_t *msg)
{
	return hd_classify_explain(self, msg, false, false).klass;
}

bool hd_classify_tag_subject(const hd_classify_t *self, hd_msg_t *msg, size_t max_bytes)
{
	const char *tag = self->important_tag;
	if (!*tag || msg->channel != HD_CHANNEL_EMAIL)
		return false;
	const char *subject = msg->subject ? msg->subject : "";
	if (strstr(subject, tag))
		return false;
	size_t len = strlen(tag) + 1 + strlen(subject);
	if (len > max_bytes)
		return false;
	char *tagged = hd_malloc(len + 1);
	snprintf(tagged, len + 1, "%s%s%s", tag, *subject ? " " : "", subject);
	free(msg->subject);
	msg->subject = tagged;
	return true;
}

const char *hd_classify_initial_state(hd_class_t klass)
{
	return klass == HD_CLASS_GENERAL ? "queued" : "held";
}
