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

#include <stdlib.h>
#include <string.h>

#include "hd_mem.h"

struct hd_classify {
	int64_t bulk_threshold;
	char *important_tag;
	char **keywords;       /* ASCII-folded */
	size_t *keyword_lens;
	size_t keyword_count;
};

static unsigned char hd_classify_fold(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

hd_classify_t *hd_classify_new(int64_t bulk_threshold, const char *important_tag,
			       char *const *keywords, size_t keyword_count)
{
	hd_classify_t *self = hd_calloc(1, sizeof(*self));
	self->bulk_threshold = bulk_threshold;
	self->important_tag = hd_strdup(important_tag ? important_tag : "");
	self->keywords = hd_calloc(keyword_count ? keyword_count : 1, sizeof(char *));
	self->keyword_lens = hd_calloc(keyword_count ? keyword_count : 1, sizeof(size_t));
	for (size_t i = 0; i < keyword_count; i++) {
		size_t len = strlen(keywords[i]);
		if (len == 0)
			continue;
		char *k = hd_strndup(keywords[i], len);
		for (size_t j = 0; j < len; j++)
			k[j] = (char)hd_classify_fold((unsigned char)k[j]);
		self->keywords[self->keyword_count] = k;
		self->keyword_lens[self->keyword_count++] = len;
	}
	return self;
}

void hd_classify_destroy(hd_classify_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_classify_t *self = *self_p;
	for (size_t i = 0; i < self->keyword_count; i++)
		free(self->keywords[i]);
	free(self->keywords);
	free(self->keyword_lens);
	free(self->important_tag);
	free(self);
	*self_p = NULL;
}

/* Case-insensitive (ASCII) search for a folded needle in text. */
static int hd_classify_contains(const char *text, const char *needle, size_t needle_len)
{
	if (!text)
		return 0;
	unsigned char first = (unsigned char)needle[0];
	for (const char *p = text; *p; p++) {
		if (hd_classify_fold((unsigned char)*p) != first)
			continue;
		size_t i = 1;
		while (i < needle_len && p[i] &&
		       hd_classify_fold((unsigned char)p[i]) == (unsigned char)needle[i])
			i++;
		if (i == needle_len)
			return 1;
	}
	return 0;
}

hd_class_t hd_classify_message(const hd_classify_t *self, const hd_msg_t *msg)
{
	if ((msg->flags & HD_FLAG_BULK) ||
	    (int64_t)hd_msg_recipient_count(msg) >= self->bulk_threshold)
		return HD_CLASS_BULK;
	if (msg->flags & HD_FLAG_IMPORTANT)
		return HD_CLASS_IMPORTANT;
	if (*self->important_tag && msg->subject && strstr(msg->subject, self->important_tag))
		return HD_CLASS_IMPORTANT;
	for (size_t i = 0; i < self->keyword_count; i++)
		if (hd_classify_contains(msg->subject, self->keywords[i], self->keyword_lens[i]) ||
		    hd_classify_contains(msg->body, self->keywords[i], self->keyword_lens[i]))
			return HD_CLASS_IMPORTANT;
	return HD_CLASS_GENERAL;
}

const char *hd_classify_initial_state(hd_class_t klass)
{
	return klass == HD_CLASS_GENERAL ? "queued" : "held";
}
