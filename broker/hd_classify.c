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

typedef struct hd_keywords {
	char **words;          /* ASCII-folded */
	size_t *lens;
	size_t count;
} hd_keywords_t;

struct hd_classify {
	int64_t bulk_threshold;
	char *important_tag;
	hd_keywords_t sensitive;
	hd_keywords_t major;
};

static unsigned char hd_classify_fold(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static void hd_keywords_set(hd_keywords_t *k, char *const *words, size_t count)
{
	for (size_t i = 0; i < k->count; i++)
		free(k->words[i]);
	free(k->words);
	free(k->lens);
	k->words = hd_calloc(count ? count : 1, sizeof(char *));
	k->lens = hd_calloc(count ? count : 1, sizeof(size_t));
	k->count = 0;
	for (size_t i = 0; i < count; i++) {
		size_t len = strlen(words[i]);
		if (len == 0)
			continue;
		char *w = hd_strndup(words[i], len);
		for (size_t j = 0; j < len; j++)
			w[j] = (char)hd_classify_fold((unsigned char)w[j]);
		k->words[k->count] = w;
		k->lens[k->count++] = len;
	}
}

hd_classify_t *hd_classify_new(int64_t bulk_threshold, const char *important_tag,
			       char *const *keywords, size_t keyword_count)
{
	hd_classify_t *self = hd_calloc(1, sizeof(*self));
	self->bulk_threshold = bulk_threshold;
	self->important_tag = hd_strdup(important_tag ? important_tag : "");
	hd_keywords_set(&self->sensitive, keywords, keyword_count);
	hd_keywords_set(&self->major, NULL, 0);
	return self;
}

void hd_classify_set_major_keywords(hd_classify_t *self, char *const *keywords, size_t count)
{
	hd_keywords_set(&self->major, keywords, count);
}

void hd_classify_destroy(hd_classify_t **self_p)
{
	if (!self_p || !*self_p)
		return;
	hd_classify_t *self = *self_p;
	hd_keywords_set(&self->sensitive, NULL, 0);
	hd_keywords_set(&self->major, NULL, 0);
	free(self->sensitive.words);
	free(self->sensitive.lens);
	free(self->major.words);
	free(self->major.lens);
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

static bool hd_classify_any(const hd_keywords_t *k, const hd_msg_t *msg)
{
	for (size_t i = 0; i < k->count; i++)
		if (hd_classify_contains(msg->subject, k->words[i], k->lens[i]) ||
		    hd_classify_contains(msg->body, k->words[i], k->lens[i]))
			return true;
	return false;
}

hd_classify_result_t hd_classify_explain(const hd_classify_t *self, const hd_msg_t *msg)
{
	hd_classify_result_t r = {.klass = HD_CLASS_GENERAL};
	r.major = (msg->flags & HD_FLAG_MAJOR) || hd_classify_any(&self->major, msg);
	r.important = (msg->flags & HD_FLAG_IMPORTANT) || r.major ||
		      (*self->important_tag && msg->subject &&
		       strstr(msg->subject, self->important_tag)) ||
		      hd_classify_any(&self->sensitive, msg);
	if ((msg->flags & HD_FLAG_BULK) ||
	    (int64_t)hd_msg_recipient_count(msg) >= self->bulk_threshold)
		r.klass = HD_CLASS_BULK;
	else if (r.important)
		r.klass = HD_CLASS_IMPORTANT;
	return r;
}

hd_class_t hd_classify_message(const hd_classify_t *self, const hd_msg_t *msg)
{
	return hd_classify_explain(self, msg).klass;
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
