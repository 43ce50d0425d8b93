/*
 * NAME
 *	test_hd_seal - confidential content sealed at rest (POLICY K2)
 * DESCRIPTION
 *	What an operator and an auditor would check: a confidential message
 *	comes out of hd_seal_msg with no plaintext left in body, html or
 *	attachments, each part names its key id, and hd_seal_open_msg gives
 *	the exact content back; a flipped byte, a part moved to another
 *	field or an unknown key id is refused with a reason and leaves the
 *	message as it was; rotation seals with the new key while the old one
 *	still opens old content; key files that group or others may read,
 *	short, garbage, all-zero or non-regular files are refused with
 *	"path: reason" and no key material; and a message of the largest
 *	size a producer may send still fits a JOB once sealed, decodes at the
 *	worker and opens, while the producer's own limits stay as they were.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hd_envelope.h"
#include "hd_err.h"
#include "hd_limits.h"
#include "hd_mem.h"
#include "hd_mpack.h"
#include "hd_seal.h"
#include "hd_wire.h"

static const uint8_t KEY1[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t KEY2[32] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
				 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
				 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
				 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf};
#define KEY1_HEX "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test-hd-seal-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write a key file and return its path (static buffer per name). */
static const char *key_file(const char *name, const void *data, size_t len, mode_t mode)
{
	static char paths[8][128];
	static int next;
	char *path = paths[next++ % 8];
	snprintf(path, 128, "%s/%s", tmpdir, name);
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static hd_seal_t *keyring_with(const char *id, const uint8_t key[32], const char *file)
{
	hd_seal_t *s = hd_seal_keyring_new();
	char err[512];
	assert_int_equal(hd_seal_keyring_add_key_file(s, id, key_file(file, key, 32, 0600), err,
						      sizeof err), HD_OK);
	return s;
}

static bool contains(const void *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp((const char *)hay + i, needle, n) == 0)
			return true;
	return false;
}

#define MARK "MARKER-7f3a-secret"

static hd_msg_t *confidential_msg(void)
{
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = hd_strdup("alice@example.com");
	hd_msg_add_to(m, "bob@example.com");
	m->subject = hd_strdup("Salary review");
	m->body = hd_strdup("Body with " MARK " and 薪酬 figures");
	m->html = hd_strdup("<p>" MARK "</p>");
	hd_msg_add_attachment(m, "figures.csv", "text/csv", "a,b\n" MARK "\n", 4 + strlen(MARK) + 1);
	hd_msg_add_attachment(m, "empty.bin", "application/octet-stream", "", 0);
	m->flags = HD_FLAG_CONFIDENTIAL;
	return m;
}

/* ---- round trip ------------------------------------------------------------ */

static void test_a_sealed_message_holds_no_plaintext_and_opens_to_the_same_content(void **state)
{
	(void)state;
	hd_seal_t *s = keyring_with("k1", KEY1, "k1.key");
	assert_int_equal(hd_seal_set_current(s, "k1"), HD_OK);
	assert_string_equal(hd_seal_current(s), "k1");
	hd_msg_t *m = confidential_msg();
	hd_msg_t *orig = confidential_msg();

	assert_int_equal(hd_seal_msg(s, m), HD_OK);
	assert_true(hd_seal_msg_is_sealed(m));
	assert_true(strncmp(m->body, "hdseal:1:k1:", 12) == 0);
	assert_true(strncmp(m->html, "hdseal:1:k1:", 12) == 0);
	assert_false(contains(m->body, strlen(m->body), MARK));
	assert_false(contains(m->html, strlen(m->html), MARK));
	for (size_t i = 0; i < 2; i++) {
		assert_true(hd_seal_is_sealed_bytes(m->attachments[i].data, m->attachments[i].size));
		assert_memory_equal(m->attachments[i].data, "hdseal:1b:k1:", 13);
		assert_false(contains(m->attachments[i].data, m->attachments[i].size, MARK));
		/* bytes stay bytes: the header, the nonce and the tag, no base64 */
		assert_int_equal(m->attachments[i].size, orig->attachments[i].size + 13 + 40);
	}
	/* what is not content stays readable */
	assert_string_equal(m->subject, "Salary review");
	assert_string_equal(m->attachments[0].name, "figures.csv");

	/* sealing twice gives different text (random nonce) */
	hd_msg_t *again = confidential_msg();
	assert_int_equal(hd_seal_msg(s, again), HD_OK);
	assert_string_not_equal(again->body, m->body);
	hd_msg_destroy(&again);

	char why[256] = "";
	assert_int_equal(hd_seal_open_msg(s, m, why, sizeof why), HD_OK);
	assert_string_equal(m->body, orig->body);
	assert_string_equal(m->html, orig->html);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(m->attachments[i].size, orig->attachments[i].size);
		assert_memory_equal(m->attachments[i].data, orig->attachments[i].data,
				    orig->attachments[i].size);
	}
	assert_false(hd_seal_msg_is_sealed(m));

	hd_seal_wipe_msg(m);
	assert_false(contains(m->body, strlen(orig->body), MARK));
	assert_int_equal(m->body[0], '\0');
	assert_false(contains(m->attachments[0].data, m->attachments[0].size, MARK));
	hd_msg_destroy(&m);
	hd_msg_destroy(&orig);
	hd_seal_keyring_destroy(&s);
	assert_null(s);
	hd_seal_keyring_destroy(&s); /* NULL-safe */
}

static void test_a_message_not_flagged_confidential_is_neither_sealed_nor_opened(void **state)
{
	(void)state;
	hd_msg_t *m = confidential_msg();
	m->flags = HD_FLAG_IMPORTANT;
	assert_int_equal(hd_seal_msg(NULL, m), HD_OK);  /* no key needed */
	assert_string_equal(m->body, "Body with " MARK " and 薪酬 figures");
	/* a producer's text that merely looks sealed is not opened either */
	free(m->body);
	m->body = hd_strdup("hdseal:1:k1:AAAA");
	char why[128];
	assert_int_equal(hd_seal_open_msg(NULL, m, why, sizeof why), HD_OK);
	assert_string_equal(m->body, "hdseal:1:k1:AAAA");
	assert_false(hd_seal_msg_is_sealed(m));
	hd_msg_destroy(&m);
}

static void test_without_a_current_key_a_confidential_message_is_not_sealed(void **state)
{
	(void)state;
	hd_msg_t *m = confidential_msg();
	assert_int_equal(hd_seal_msg(NULL, m), HD_E_CONFIG);
	hd_seal_t *s = keyring_with("k1", KEY1, "k1.key");  /* loaded, but not current */
	assert_null(hd_seal_current(s));
	assert_int_equal(hd_seal_msg(s, m), HD_E_CONFIG);
	assert_true(contains(m->body, strlen(m->body), MARK)); /* unchanged */
	assert_int_equal(hd_seal_set_current(s, "k9"), HD_E_NOTFOUND);
	hd_msg_destroy(&m);
	hd_seal_keyring_destroy(&s);
}

static void test_a_producer_text_that_looks_sealed_comes_back_as_it_went_in(void **state)
{
	(void)state;
	hd_seal_t *s = keyring_with("k1", KEY1, "k1.key");
	hd_seal_set_current(s, "k1");
	hd_msg_t *m = confidential_msg();
	free(m->body);
	m->body = hd_strdup("hdseal:1:k1:not really sealed");
	assert_int_equal(hd_seal_msg(s, m), HD_OK);
	char why[128];
	assert_int_equal(hd_seal_open_msg(s, m, why, sizeof why), HD_OK);
	assert_string_equal(m->body, "hdseal:1:k1:not really sealed");
	hd_msg_destroy(&m);
	hd_seal_keyring_destroy(&s);
}

/* ---- refusals ---------------------------------------------------------------- */

static void test_a_tampered_part_fails_authentication_and_nothing_is_opened(void **state)
{
	(void)state;
	hd_seal_t *s = keyring_with("k1", KEY1, "k1.key");
	hd_seal_set_current(s, "k1");
	hd_msg_t *m = confidential_msg();
	assert_int_equal(hd_seal_msg(s, m), HD_OK);
	/* flip one base64 character of the ciphertext in html */
	size_t at = strlen(m->html) - 8;
	char was = m->html[at];
	m->html[at] = was == 'A' ? 'B' : 'A';
	char *sealed_body = hd_strdup(m->body);
	char why[256] = "";
	assert_int_equal(hd_seal_open_msg(s, m, why, sizeof why), HD_E_INVALID);
	assert_string_equal(why, "html: authentication failed");
	/* all or nothing: the body that did open was not put back in */
	assert_string_equal(m->body, sealed_body);

	/* a flipped byte in an attachment */
	m->html[at] = was;
	m->attachments[0].data[m->attachments[0].size - 1] ^= 1;
	assert_int_equal(hd_seal_open_msg(s, m, why, sizeof why), HD_E_INVALID);
	assert_string_equal(why, "attachments[0]: authentication failed");
	free(sealed_body);
	hd_msg_destroy(&m);
	hd_seal_keyring_destroy(&s);
}

static void test_a_part_moved_to_another_field_or_relabelled_does_not_open(void **state)
{
	(void)state;
	hd_seal_t *s = keyring_with("k1", KEY1, "k1.key");
	assert_int_equal(hd_seal_keyring_add_key_file(s, "k2", key_file("k1b.key", KEY1, 32, 0600),
						      NULL, 0), HD_OK);
	hd_seal_set_current(s, "k1");
	hd_msg_t *m = confidential_msg();
	assert_int_equal(hd_seal_msg(s, m), HD_OK);
	char why[256];
	/* the html's sealed text put in the body */
	char *body = m->body;
	m->body = hd_strdup(m->html);
	assert_int_equal(hd_seal_open_msg(s, m, why, sizeof why), HD_E_INVALID);
	assert_string_equal(why, "body: authentication failed");
	free(m->body);
	/* the same key under another id: the key id is bound too */
	body[10] = '2';  /* "hdseal:1:k1:" -> "hdseal:1:k2:" */
	m->body = body;
	assert_int_equal(hd_seal_open_msg(s, m, why, sizeof why), HD_E_INVALID);
	assert_string_equal(why, "body: authentication failed");
	hd_msg_destroy(&m);
	hd_seal_keyring_destroy(&s);
}

static void test_an_unknown_key_id_is_named_in_the_reason(void **state)
{
	(void)state;
	hd_seal_t *s0 = keyring_with("k0", KEY1, "k0.key");
	hd_seal_set_current(s0, "k0");
	hd_msg_t *m = confidential_msg();
	assert_int_equal(hd_seal_msg(s0, m), HD_OK);
	hd_seal_t *s2 = keyring_with("k2", KEY2, "k2.key");
	char why[256];
	assert_int_equal(hd_seal_open_msg(s2, m, why, sizeof why), HD_E_NOTFOUND);
	assert_string_equal(why, "body: unknown key id k0");
	/* no keyring at all: the same answer */
	assert_int_equal(hd_seal_open_msg(NULL, m, why, sizeof why), HD_E_NOTFOUND);
	assert_string_equal(why, "body: unknown key id k0");
	char id[HD_SEAL_MAX_ID_BYTES + 1];
	assert_int_equal(hd_seal_key_id_of((const uint8_t *)m->body, strlen(m->body), id), HD_OK);
	assert_string_equal(id, "k0");
	hd_msg_destroy(&m);
	hd_seal_keyring_destroy(&s0);
	hd_seal_keyring_destroy(&s2);
}

static void test_rotation_seals_with_the_new_key_and_old_content_still_opens(void **state)
{
	(void)state;
	hd_seal_t *s = keyring_with("k1", KEY1, "k1.key");
	hd_seal_set_current(s, "k1");
	hd_msg_t *old = confidential_msg();
	assert_int_equal(hd_seal_msg(s, old), HD_OK);

	char err[512];
	assert_int_equal(hd_seal_keyring_add_key_spec(s, "k2:" "/nonexistent/k2.key", false, err,
						      sizeof err), HD_E_CONFIG);
	char spec[160];
	snprintf(spec, sizeof spec, "k2:%s", key_file("k2.key", KEY2, 32, 0600));
	assert_int_equal(hd_seal_keyring_add_key_spec(s, spec, false, err, sizeof err), HD_OK);
	assert_int_equal(hd_seal_set_current(s, "k2"), HD_OK);
	hd_msg_t *new = confidential_msg();
	assert_int_equal(hd_seal_msg(s, new), HD_OK);
	assert_true(strncmp(new->body, "hdseal:1:k2:", 12) == 0);
	assert_true(strncmp(old->body, "hdseal:1:k1:", 12) == 0);

	char why[256];
	assert_int_equal(hd_seal_open_msg(s, old, why, sizeof why), HD_OK);
	assert_int_equal(hd_seal_open_msg(s, new, why, sizeof why), HD_OK);
	assert_true(contains(old->body, strlen(old->body), MARK));
	assert_true(contains(new->body, strlen(new->body), MARK));

	/* a worker that only has the new key cannot open the old content */
	hd_msg_t *old2 = confidential_msg();
	hd_seal_t *only1 = keyring_with("k1", KEY1, "k1.key");
	hd_seal_set_current(only1, "k1");
	hd_seal_msg(only1, old2);
	hd_seal_t *only2 = keyring_with("k2", KEY2, "k2.key");
	assert_int_equal(hd_seal_open_msg(only2, old2, why, sizeof why), HD_E_NOTFOUND);
	assert_string_equal(why, "body: unknown key id k1");
	hd_msg_destroy(&old);
	hd_msg_destroy(&new);
	hd_msg_destroy(&old2);
	hd_seal_keyring_destroy(&s);
	hd_seal_keyring_destroy(&only1);
	hd_seal_keyring_destroy(&only2);
}

static void test_a_key_without_an_id_opens_content_sealed_under_any_id(void **state)
{
	(void)state;
	hd_seal_t *s = keyring_with("prod-2024", KEY1, "k1.key");
	hd_seal_set_current(s, "prod-2024");
	hd_msg_t *m = confidential_msg();
	hd_seal_msg(s, m);
	hd_seal_t *any = hd_seal_keyring_new();
	char err[512];
	/* heraldctl --key-file PATH: no id */
	assert_int_equal(hd_seal_keyring_add_key_spec(any, key_file("any.key", KEY2, 32, 0600), true,
						      err, sizeof err), HD_OK);
	assert_int_equal(hd_seal_keyring_add_key_spec(any, key_file("any2.key", KEY1, 32, 0600),
						      true, err, sizeof err), HD_OK);
	assert_int_equal(hd_seal_set_current(any, ""), HD_E_NOTFOUND); /* it can never seal */
	char why[256];
	assert_int_equal(hd_seal_open_msg(any, m, why, sizeof why), HD_OK);
	assert_true(contains(m->body, strlen(m->body), MARK));
	hd_msg_destroy(&m);

	/* only wrong keys: authentication failed, not "unknown key id" */
	hd_seal_t *wrong = hd_seal_keyring_new();
	assert_int_equal(hd_seal_keyring_add_key_spec(wrong, key_file("w.key", KEY2, 32, 0600), true,
						      err, sizeof err), HD_OK);
	m = confidential_msg();
	hd_seal_msg(s, m);
	assert_int_equal(hd_seal_open_msg(wrong, m, why, sizeof why), HD_E_INVALID);
	assert_string_equal(why, "body: authentication failed");
	hd_msg_destroy(&m);
	hd_seal_keyring_destroy(&s);
	hd_seal_keyring_destroy(&any);
	hd_seal_keyring_destroy(&wrong);
}

/* ---- key files ------------------------------------------------------------------ */

static void assert_refused(const char *path, const char *reason)
{
	hd_seal_t *s = hd_seal_keyring_new();
	char err[512] = "";
	assert_int_equal(hd_seal_keyring_add_key_file(s, "k1", path, err, sizeof err), HD_E_CONFIG);
	/* "path: reason", and never the key itself */
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_int_equal(err[strlen(path)], ':');
	if (!strstr(err, reason))
		fail_msg("\"%s\" does not say \"%s\"", err, reason);
	assert_null(strstr(err, KEY1_HEX));
	assert_null(strstr(err, "0102030405"));
	assert_int_equal(hd_seal_key_count(s), 0);
	hd_seal_keyring_destroy(&s);
}

static void test_a_key_file_that_group_or_others_may_read_is_refused(void **state)
{
	(void)state;
	assert_refused(key_file("world.key", KEY1, 32, 0644), "group or others may access it (mode 0644)");
	assert_refused(key_file("group.key", KEY1, 32, 0640), "mode 0640");
	assert_refused(key_file("gx.key", KEY1, 32, 0610), "mode 0610");
	assert_refused(key_file("hex.key", KEY1_HEX "\n", 65, 0604), "chmod 600");
	/* 0600 and 0400 are fine */
	hd_seal_t *s = hd_seal_keyring_new();
	char err[512];
	assert_int_equal(hd_seal_keyring_add_key_file(s, "a", key_file("a.key", KEY1, 32, 0600), err,
						      sizeof err), HD_OK);
	assert_int_equal(hd_seal_keyring_add_key_file(s, "b", key_file("b.key", KEY2, 32, 0400), err,
						      sizeof err), HD_OK);
	assert_int_equal(hd_seal_key_count(s), 2);
	hd_seal_keyring_destroy(&s);
}

static void test_short_garbage_zero_missing_and_non_regular_key_files_are_refused(void **state)
{
	(void)state;
	assert_refused(key_file("short.key", KEY1, 31, 0600), "expected 32 raw bytes or 64 hex digits");
	assert_refused(key_file("long.key", "0123456789abcdef0123456789abcdef0", 33, 0600),
		       "found 33 bytes");
	assert_refused(key_file("empty.key", "", 0, 0600), "found 0 bytes");
	char garbage[64];
	memset(garbage, 'z', sizeof garbage);
	assert_refused(key_file("garbage.key", garbage, 64, 0600), "64 hex digits");
	char big[400];
	memset(big, 'a', sizeof big);
	assert_refused(key_file("big.key", big, sizeof big, 0600), "found more than 130 bytes");
	uint8_t zero[32] = {0};
	assert_refused(key_file("zero.key", zero, 32, 0600), "all zeros");
	char missing[128];
	snprintf(missing, sizeof missing, "%s/no-such.key", tmpdir);
	assert_refused(missing, "cannot open");
	char dir[128];
	snprintf(dir, sizeof dir, "%s/adir", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_refused(dir, "not a regular file");
	char fifo[128];
	snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_refused(fifo, "not a regular file");  /* and does not wait for a writer */
}

static void test_hex_and_raw_key_files_hold_the_same_key(void **state)
{
	(void)state;
	hd_seal_t *raw = keyring_with("k1", KEY1, "raw.key");
	hd_seal_set_current(raw, "k1");
	hd_msg_t *m = confidential_msg();
	hd_seal_msg(raw, m);
	static const char *const forms[] = {KEY1_HEX, KEY1_HEX "\n", KEY1_HEX "\r\n"};
	for (size_t i = 0; i < 3; i++) {
		hd_seal_t *hex = hd_seal_keyring_new();
		char err[512];
		assert_int_equal(hd_seal_keyring_add_key_file(hex, "k1",
			key_file("hex.key", forms[i], strlen(forms[i]), 0600), err, sizeof err), HD_OK);
		hd_msg_t *copy = confidential_msg();
		hd_seal_set_current(hex, "k1");
		hd_seal_msg(hex, copy);
		char why[128];
		assert_int_equal(hd_seal_open_msg(raw, copy, why, sizeof why), HD_OK);
		assert_true(contains(copy->body, strlen(copy->body), MARK));
		hd_msg_destroy(&copy);
		hd_seal_keyring_destroy(&hex);
	}
	hd_msg_destroy(&m);
	hd_seal_keyring_destroy(&raw);
}

static void test_key_ids_and_key_specs_are_checked(void **state)
{
	(void)state;
	char id[HD_SEAL_MAX_ID_BYTES + 1], err[256];
	assert_int_equal(hd_seal_parse_key_spec("k1:/etc/herald/k1.key", id, err, sizeof err), HD_OK);
	assert_string_equal(id, "k1");
	assert_int_equal(hd_seal_parse_key_spec("prod_2024-01:/k", id, err, sizeof err), HD_OK);
	assert_int_equal(hd_seal_parse_key_spec("/etc/herald/k1.key", id, err, sizeof err),
			 HD_E_INVALID);
	assert_non_null(strstr(err, "expected \"ID:PATH\""));
	assert_int_equal(hd_seal_parse_key_spec("k1:", id, err, sizeof err), HD_E_INVALID);
	assert_non_null(strstr(err, "the path is empty"));
	assert_int_equal(hd_seal_parse_key_spec("bad id:/x", id, err, sizeof err), HD_E_INVALID);
	assert_int_equal(hd_seal_parse_key_spec("abcdefghijklmnopq:/x", id, err, sizeof err),
			 HD_E_INVALID); /* 17 characters */
	assert_int_equal(hd_seal_parse_key_spec(":/x", id, err, sizeof err), HD_E_INVALID);
	assert_true(hd_seal_is_key_id("abcdefghijklmnop", 16));
	assert_false(hd_seal_is_key_id("k.1", 3));

	hd_seal_t *s = keyring_with("k1", KEY1, "k1.key");
	assert_int_equal(hd_seal_keyring_add_key_file(s, "k1", key_file("k1c.key", KEY2, 32, 0600),
						      err, sizeof err), HD_E_INVALID);
	assert_non_null(strstr(err, "loaded twice"));
	/* a config key (allow_any_id false) needs its id */
	assert_int_equal(hd_seal_keyring_add_key_spec(s, key_file("n.key", KEY2, 32, 0600), false,
						      err, sizeof err), HD_E_INVALID);
	assert_int_equal(hd_seal_key_count(s), 1);
	hd_seal_keyring_destroy(&s);
}

static void test_sealed_headers_are_recognised_and_nothing_else(void **state)
{
	(void)state;
	assert_true(hd_seal_is_sealed("hdseal:1:k1:AAAA"));
	assert_false(hd_seal_is_sealed("hdseal:1b:k1:AAAA"));
	assert_false(hd_seal_is_sealed("hdseal:2:k1:AAAA"));
	assert_false(hd_seal_is_sealed("hdseal:1:k 1:AAAA"));
	assert_false(hd_seal_is_sealed("hdseal:1:abcdefghijklmnopq:AAAA"));
	assert_false(hd_seal_is_sealed("hdseal:1:k1"));
	assert_false(hd_seal_is_sealed("Hello"));
	assert_false(hd_seal_is_sealed(NULL));
	assert_true(hd_seal_is_sealed_bytes((const uint8_t *)"hdseal:1b:k1:\x01", 14));
	assert_false(hd_seal_is_sealed_bytes((const uint8_t *)"hdseal:1:k1:", 12));

	hd_seal_t *s = keyring_with("k1", KEY1, "k1.key");
	char *out;
	size_t len;
	char why[128];
	assert_int_equal(hd_seal_open_text(s, "body", "hdseal:1:k1:!!!!", 16, &out, &len, why,
					   sizeof why), HD_E_INVALID);
	assert_string_equal(why, "malformed sealed text: bad base64");
	assert_int_equal(hd_seal_open_text(s, "body", "hdseal:1:k1:AAAA", 16, &out, &len, why,
					   sizeof why), HD_E_INVALID);
	assert_string_equal(why, "malformed sealed text: too short");
	assert_int_equal(hd_seal_open_text(s, "body", "plain", 5, &out, &len, why, sizeof why),
			 HD_E_INVALID);
	assert_string_equal(why, "not sealed text");
	hd_seal_keyring_destroy(&s);
}

/* ---- sizes ----------------------------------------------------------------------- */

static char *filled_text(size_t len, char c)
{
	char *s = hd_malloc(len + 1);
	memset(s, c, len);
	s[len] = '\0';
	return s;
}

/* Encode msg in a JOB, decode it as the worker does; the decoded msg is the caller's. */
static hd_msg_t *through_a_job(hd_msg_t *msg, size_t *frame_len)
{
	hd_wire_frame_t f = {.type = HD_WIRE_JOB};
	f.u.job.delivery_id = 7;
	f.u.job.message_id = 3;
	f.u.job.attempt = 1;
	f.u.job.lease_ms = 60000;
	f.u.job.recipient = msg->to[0];
	f.u.job.kind = "to";
	f.u.job.klass = HD_CLASS_GENERAL;
	f.u.job.msg = msg;
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_wire_encode(&f, &buf, &len), HD_OK);
	*frame_len = len;
	assert_true(len <= HD_WIRE_MAX_FRAME_BYTES);
	hd_wire_frame_t out;
	hd_decode_error_t err;
	int rc = hd_wire_decode(buf, len, &out, &err);
	if (rc != HD_OK)
		fail_msg("JOB of %zu bytes does not decode: %s: %s", len, err.field, err.reason);
	free(buf);
	hd_msg_t *m = out.u.job.msg;
	out.u.job.msg = NULL;
	hd_wire_frame_clear(&out);
	return m;
}

static void test_the_largest_confidential_message_a_producer_may_send_reaches_the_worker(
	void **state)
{
	(void)state;
	hd_seal_t *s = keyring_with("abcdefghijklmnop", KEY1, "long.key"); /* the longest id */
	hd_seal_set_current(s, "abcdefghijklmnop");
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = hd_strdup("alice@example.com");
	hd_msg_add_to(m, "bob@example.com");
	m->flags = HD_FLAG_CONFIDENTIAL;
	m->body = filled_text(HD_MAX_BODY_BYTES, 'b');
	m->html = filled_text(HD_MAX_HTML_BYTES, 'h');
	/* attachments filling the rest of the largest producer frame */
	hd_request_t req = {.version = 1, .rid = 1, .op = HD_OP_SUBMIT, .app = "test", .msg = m};
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_request(&req, &buf, &len), HD_OK);
	free(buf);
	size_t room = HD_MAX_FRAME_BYTES - len - 2 * 64;
	uint8_t *data = hd_malloc(room);
	memset(data, 0x5a, room);
	hd_msg_add_attachment(m, "a.bin", "application/octet-stream", data, room / 2);
	hd_msg_add_attachment(m, "b.bin", "application/octet-stream", data, room - room / 2);
	assert_int_equal(hd_envelope_encode_request(&req, &buf, &len), HD_OK);
	assert_true(len <= HD_MAX_FRAME_BYTES);
	assert_true(len > HD_MAX_FRAME_BYTES - 256);
	hd_request_t decoded;
	hd_decode_error_t err;
	assert_int_equal(hd_envelope_decode_request(buf, len, 0, &decoded, &err), HD_OK);
	free(buf);
	hd_msg_destroy(&m);
	m = decoded.msg;
	decoded.msg = NULL;
	hd_request_clear(&decoded);

	assert_int_equal(hd_seal_msg(s, m), HD_OK);
	assert_true(strlen(m->body) <= HD_MAX_SEALED_BODY_BYTES);
	assert_true(strlen(m->body) > HD_MAX_BODY_BYTES);
	assert_true(strlen(m->html) <= HD_MAX_SEALED_HTML_BYTES);
	size_t frame_len;
	hd_msg_t *at_worker = through_a_job(m, &frame_len);
	assert_true(frame_len > HD_MAX_FRAME_BYTES); /* it did need the allowance */
	char why[256];
	assert_int_equal(hd_seal_open_msg(s, at_worker, why, sizeof why), HD_OK);
	assert_int_equal(strlen(at_worker->body), HD_MAX_BODY_BYTES);
	assert_int_equal(strlen(at_worker->html), HD_MAX_HTML_BYTES);
	assert_int_equal(at_worker->body[HD_MAX_BODY_BYTES - 1], 'b');
	assert_int_equal(at_worker->attachments[1].size, room - room / 2);
	assert_memory_equal(at_worker->attachments[1].data, data, room - room / 2);
	free(data);
	hd_msg_destroy(&at_worker);
	hd_msg_destroy(&m);
	hd_seal_keyring_destroy(&s);
}

static void test_an_attachment_of_the_largest_size_reaches_the_worker_sealed(void **state)
{
	(void)state;
	hd_seal_t *s = keyring_with("abcdefghijklmnop", KEY1, "long.key");
	hd_seal_set_current(s, "abcdefghijklmnop");
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = hd_strdup("alice@example.com");
	hd_msg_add_to(m, "bob@example.com");
	m->flags = HD_FLAG_CONFIDENTIAL;
	uint8_t *data = hd_malloc(HD_MAX_ATTACH_BYTES);
	for (size_t i = 0; i < HD_MAX_ATTACH_BYTES; i++)
		data[i] = (uint8_t)(i * 7);
	hd_msg_add_attachment(m, "big.bin", "application/octet-stream", data, HD_MAX_ATTACH_BYTES);
	assert_int_equal(hd_seal_msg(s, m), HD_OK);
	assert_int_equal(m->attachments[0].size, HD_SEALED_BIN_BYTES(HD_MAX_ATTACH_BYTES) - 1);
	assert_true(m->attachments[0].size <= HD_MAX_SEALED_ATTACH_BYTES);
	size_t frame_len;
	hd_msg_t *at_worker = through_a_job(m, &frame_len);
	char why[256];
	assert_int_equal(hd_seal_open_msg(s, at_worker, why, sizeof why), HD_OK);
	assert_int_equal(at_worker->attachments[0].size, HD_MAX_ATTACH_BYTES);
	assert_memory_equal(at_worker->attachments[0].data, data, HD_MAX_ATTACH_BYTES);
	free(data);
	hd_msg_destroy(&at_worker);
	hd_msg_destroy(&m);
	hd_seal_keyring_destroy(&s);
}

static void test_the_sealed_allowance_is_only_for_sealed_parts_of_stored_messages(void **state)
{
	(void)state;
	/* a producer may not send a body over 4 MiB even if it looks sealed */
	hd_msg_t *m = hd_msg_new(HD_CHANNEL_EMAIL);
	m->sender = hd_strdup("alice@example.com");
	hd_msg_add_to(m, "bob@example.com");
	m->body = filled_text(HD_MAX_BODY_BYTES + 100, 'A');
	memcpy(m->body, "hdseal:1:k1:", 12);
	hd_request_t req = {.version = 1, .rid = 1, .op = HD_OP_SUBMIT, .app = "test", .msg = m};
	uint8_t *buf;
	size_t len;
	assert_int_equal(hd_envelope_encode_request(&req, &buf, &len), HD_OK);
	hd_request_t decoded;
	hd_decode_error_t err;
	assert_int_equal(hd_envelope_decode_request(buf, len, 0, &decoded, &err), HD_E_TOOBIG);
	assert_string_equal(err.field, "msg.body");
	assert_string_equal(err.reason, "longer than 4194304 bytes");
	free(buf);

	/* a JOB: the sealed-looking body passes, a plain one of the same size does not */
	size_t frame_len;
	hd_msg_t *at_worker = through_a_job(m, &frame_len);
	hd_msg_destroy(&at_worker);
	m->body[0] = 'x';
	hd_wire_frame_t f = {.type = HD_WIRE_JOB};
	f.u.job.delivery_id = 7;
	f.u.job.message_id = 3;
	f.u.job.attempt = 1;
	f.u.job.lease_ms = 60000;
	f.u.job.recipient = m->to[0];
	f.u.job.kind = "to";
	f.u.job.msg = m;
	assert_int_equal(hd_wire_encode(&f, &buf, &len), HD_OK);
	hd_wire_frame_t out;
	assert_int_equal(hd_wire_decode(buf, len, &out, &err), HD_E_TOOBIG);
	assert_string_equal(err.field, "msg.body");
	free(buf);
	/* nor a body longer than the sealed ceiling */
	free(m->body);
	m->body = filled_text(HD_MAX_SEALED_BODY_BYTES + 1, 'A');
	memcpy(m->body, "hdseal:1:k1:", 12);
	f.u.job.msg = m;
	assert_int_equal(hd_wire_encode(&f, &buf, &len), HD_OK);
	assert_int_equal(hd_wire_decode(buf, len, &out, &err), HD_E_TOOBIG);
	assert_string_equal(err.field, "msg.body");
	free(buf);
	hd_msg_destroy(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_sealed_message_holds_no_plaintext_and_opens_to_the_same_content),
		cmocka_unit_test(test_a_message_not_flagged_confidential_is_neither_sealed_nor_opened),
		cmocka_unit_test(test_without_a_current_key_a_confidential_message_is_not_sealed),
		cmocka_unit_test(test_a_producer_text_that_looks_sealed_comes_back_as_it_went_in),
		cmocka_unit_test(test_a_tampered_part_fails_authentication_and_nothing_is_opened),
		cmocka_unit_test(test_a_part_moved_to_another_field_or_relabelled_does_not_open),
		cmocka_unit_test(test_an_unknown_key_id_is_named_in_the_reason),
		cmocka_unit_test(test_rotation_seals_with_the_new_key_and_old_content_still_opens),
		cmocka_unit_test(test_a_key_without_an_id_opens_content_sealed_under_any_id),
		cmocka_unit_test(test_a_key_file_that_group_or_others_may_read_is_refused),
		cmocka_unit_test(test_short_garbage_zero_missing_and_non_regular_key_files_are_refused),
		cmocka_unit_test(test_hex_and_raw_key_files_hold_the_same_key),
		cmocka_unit_test(test_key_ids_and_key_specs_are_checked),
		cmocka_unit_test(test_sealed_headers_are_recognised_and_nothing_else),
		cmocka_unit_test(test_the_largest_confidential_message_a_producer_may_send_reaches_the_worker),
		cmocka_unit_test(test_an_attachment_of_the_largest_size_reaches_the_worker_sealed),
		cmocka_unit_test(test_the_sealed_allowance_is_only_for_sealed_parts_of_stored_messages),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
