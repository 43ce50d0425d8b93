#!/usr/bin/env python3
"""
NAME
    24-dispatch-coalescing - work arriving together shares one transaction

DESCRIPTION
    Real heraldd, a real herald-worker running the fake channel, real
    PostgreSQL. heraldd is configured with dispatch.coalesce_ms = 1000 and
    a 10 s poll, so claims come only from wake-ups. Proves what
    dispatch.coalesce_ms promises an operator: messages accepted within
    the window are claimed by one statement (their 'delivery.dispatched'
    events share one audit link), results arriving within the window are
    recorded by one statement (their 'delivery.sent' events share one
    link), and the wait is bounded: everything is sent within a few
    windows, not at the next poll. With coalescing off, five submissions
    50 ms apart are five claims, and fast and slow results are separate
    records, so both assertions fail.
"""
import os
import time

from herald_client import email
from herald_harness import Stack, run_tests, wait_until

COALESCE_MS = 1000
CONFIG = """
dispatch = { poll_ms = 10000; coalesce_ms = %d; rate_limits = []; };
""" % COALESCE_MS

stack = Stack("coalesce", config_extra=CONFIG)
RECORD = os.path.join(stack.tmp, "sent.txt")


def links_of(delivery_ids, kind):
    """The audit links sealing the events of kind for these deliveries."""
    rows = stack.sql(
        "SELECT DISTINCT l.chain_id, l.seq FROM herald.audit_events AS e "
        "JOIN herald.audit_links AS l ON e.id = ANY (l.event_ids) "
        "WHERE e.kind = '%s' AND e.delivery_id IN (%s)"
        % (kind, ",".join(str(d) for d in delivery_ids)))
    return rows


def test_deliveries_accepted_and_results_arriving_within_the_window_share_one_statement():
    p = stack.producer()
    # Two results come back at once, three 300 ms later (the fake
    # channel's "+slow"), all inside one window.
    recipients = ["a@example.com", "b@example.com", "c+slow@example.com",
                  "d+slow@example.com", "e+slow@example.com"]
    # Sent 50 ms apart without waiting for the ACKs, so that a slow
    # commit on a loaded machine cannot push one past the window.
    t0 = time.monotonic()
    rids = []
    for rcpt in recipients:
        rids.append(p.send(p.request(email(to=[rcpt]))))
        time.sleep(0.05)
    acks = {}
    while len(acks) < len(rids):
        rep = p.recv(10000)
        assert rep is not None, "no ACK within 10 s: %s" % acks
        acks[rep["rid"]] = rep
    assert all(a.get("ok") for a in acks.values()), acks
    mids = [acks[r]["id"] for r in rids]
    in_list = ",".join(str(m) for m in mids)
    wait_until(lambda: int(stack.scalar(
        "SELECT count(*) FROM herald.deliveries WHERE message_id IN (%s) AND state = 'sent'"
        % in_list)) == len(mids), 10, what="all five deliveries to be sent")
    elapsed = time.monotonic() - t0
    # Bounded: one window for the claim, the slow sends, one for the results.
    assert elapsed < 0.5 + 2 * COALESCE_MS / 1000.0 + 1.5, elapsed
    dids = [int(r[0]) for r in stack.sql(
        "SELECT id FROM herald.deliveries WHERE message_id IN (%s) ORDER BY id" % in_list)]
    assert len(dids) == 5, dids
    claims = links_of(dids, "delivery.dispatched")
    assert len(claims) == 1, "claimed by %d statements: %s" % (len(claims), claims)
    records = links_of(dids, "delivery.sent")
    assert len(records) == 1, "recorded by %d statements: %s" % (len(records), records)
    p.close()


if __name__ == "__main__":
    with stack:
        stack.start_db()
        stack.start_heraldd()
        stack.start_worker("""
credit = 32;
heartbeat_ms = 200;
fake = { channel = "email"; delay_ms = 0; slow_ms = 300; record_file = "%s"; };
""" % RECORD, name="w1")
        # A worker's READY claims at once: let it arrive before the test
        # starts, or it would split the claim the test is about.
        stack.wait_worker_ready()
        run_tests([
            ("test_deliveries_accepted_and_results_arriving_within_the_window_share_one_statement",
             test_deliveries_accepted_and_results_arriving_within_the_window_share_one_statement),
        ])
