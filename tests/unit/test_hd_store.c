/*
 * NAME
 *	test_hd_store - the store's connection state machine without a database
 * DESCRIPTION
 *	What can be proved without PostgreSQL: a store that cannot reach its
 *	database refuses submissions with a retryable error instead of
 *	queueing them, schedules reconnects with bounded backoff, and never
 *	blocks. Batching and durability are proved against a real
 *	PostgreSQL by tests/integration/1x-intake-*.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "hd_err.h"
#include "hd_mem.h"
#include "hd_store.h"
#include "hd_time.h"

static int completions;

static void on_done(void *arg, hd_store_item_t *item, const hd_store_result_t *res)
{
	(void)arg;
	(void)res;
	completions++;
	hd_store_item_destroy(&item);
}

static hd_store_t *unreachable_store(void)
{
	/* Port 1 on loopback: connection refused at once. */
	hd_store_options_t o = {
		.conninfo = "host=127.0.0.1 port=1 dbname=none user=none connect_timeout=1",
		.connections = 2, .batch_max = 8, .batch_wait_ms = 1, .max_pending = 4,
		.reconnect_min_ms = 200, .reconnect_max_ms = 400, .statement_timeout_ms = 1000,
		.batch_max_bytes = 1 << 20,
	};
	return hd_store_new(&o, on_done, NULL);
}

static hd_store_item_t *item(void)
{
	hd_store_item_t *it = hd_calloc(1, sizeof(*it));
	it->app = hd_strdup("app");
	it->msg = hd_msg_new(HD_CHANNEL_EMAIL);
	return it;
}

/* Drive the state machine until it gives up this attempt (bounded). */
static void drive_until_down(hd_store_t *s)
{
	for (int i = 0; i < 200; i++) {
		zmq_pollitem_t items[4];
		size_t n = hd_store_poll_items(s, items, 4);
		for (size_t k = 0; k < n; k++)
			items[k].revents = items[k].events;
		hd_store_handle(s, hd_time_mono_ms(), items, n);
		if (n == 0 && i > 0)
			return;
	}
	fail_msg("store never gave up connecting to a closed port");
}

static void test_new_store_is_idle_and_not_ready(void **state)
{
	(void)state;
	hd_store_t *s = unreachable_store();
	assert_false(hd_store_is_ready(s));
	assert_true(hd_store_is_idle(s));
	hd_store_destroy(&s);
	assert_null(s);
	hd_store_destroy(NULL);
}

static void test_submission_while_database_unreachable_is_refused_retryably(void **state)
{
	(void)state;
	hd_store_t *s = unreachable_store();
	drive_until_down(s);
	hd_store_item_t *it = item();
	int rc = hd_store_submit(s, it);
	assert_int_equal(rc, HD_E_UNAVAILABLE);
	assert_true(hd_err_is_retryable(rc));
	assert_true(hd_store_is_idle(s));
	hd_store_item_destroy(&it);
	hd_store_destroy(&s);
	assert_int_equal(completions, 0);
}

static void test_reconnect_is_scheduled_within_the_backoff_bounds(void **state)
{
	(void)state;
	hd_store_t *s = unreachable_store();
	drive_until_down(s);
	int64_t wait = hd_store_timeout_ms(s, hd_time_mono_ms());
	assert_true(wait >= 0);
	assert_true(wait <= 400);
	zmq_pollitem_t items[4];
	assert_int_equal(hd_store_poll_items(s, items, 4), 0);
	hd_store_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_store_is_idle_and_not_ready),
		cmocka_unit_test(test_submission_while_database_unreachable_is_refused_retryably),
		cmocka_unit_test(test_reconnect_is_scheduled_within_the_backoff_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
