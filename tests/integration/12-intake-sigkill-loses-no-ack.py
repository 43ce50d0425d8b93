#!/usr/bin/env python3
"""
NAME
    12-intake-sigkill-loses-no-ack - an ACK means the message is on disk

DESCRIPTION
    Streams submissions at heraldd from two producers, kills heraldd with
    SIGKILL in the middle, restarts it, and checks that every message a
    producer saw ACKed before the crash is in PostgreSQL with its delivery
    and audit event. Producers then resend what was never ACKed (same
    idempotency keys) and every key ends up stored exactly once.
"""
import signal
import time

from herald_harness import Stack, run_tests, wait_until
from herald_stream import Stream

stack = Stack("sigkill")


def test_sigkill_mid_stream_loses_no_acked_message_and_resends_store_each_once():
    streams = [Stream(stack.endpoint, "kill%d" % i, window=100, timeout_s=1.5) for i in range(2)]
    for s in streams:
        s.start()
    wait_until(lambda: all(len(s.acked_keys()) > 300 for s in streams), 30, what="ACKs to flow")
    stack.kill_heraldd(signal.SIGKILL)
    acked_before_kill = {}
    for s in streams:
        acked_before_kill.update(s.acked_keys())
    # Everything ACKed before the kill must already be durable, before any restart.
    stored = {k: int(i) for k, i in stack.sql(
        "SELECT idempotency_key, id FROM herald.messages WHERE app LIKE 'kill%'")}
    missing = [k for k in acked_before_kill if k not in stored]
    assert not missing, "%d ACKed messages lost, e.g. %s" % (len(missing), missing[:5])
    for k, mid in acked_before_kill.items():
        assert stored[k] == mid, (k, mid, stored[k])
    time.sleep(0.5)
    stack.start_heraldd()
    time.sleep(1.0)
    for s in streams:
        s.stop_sending.set()
    for s in streams:
        s.join(60)
        assert not s.is_alive(), "stream did not drain"
        assert not s.errors, s.errors[:3]
    issued = sum(s.issued for s in streams)
    acked = {}
    for s in streams:
        acked.update(s.acked_keys())
    assert len(acked) == issued, (len(acked), issued)
    rows = int(stack.scalar("SELECT count(*) FROM herald.messages WHERE app LIKE 'kill%'"))
    assert rows == issued, (rows, issued)
    no_delivery = int(stack.scalar(
        "SELECT count(*) FROM herald.messages m WHERE app LIKE 'kill%' AND NOT EXISTS "
        "(SELECT 1 FROM herald.deliveries d WHERE d.message_id = m.id)"))
    no_audit = int(stack.scalar(
        "SELECT count(*) FROM herald.messages m WHERE app LIKE 'kill%' AND NOT EXISTS "
        "(SELECT 1 FROM herald.audit_events a WHERE a.message_id = m.id)"))
    assert no_delivery == 0 and no_audit == 0, (no_delivery, no_audit)
    print("issued=%d acked_before_kill=%d resends=%d" % (
        issued, len(acked_before_kill), sum(s.resends for s in streams)))


if __name__ == "__main__":
    with stack:
        stack.start_db()
        stack.start_heraldd()
        run_tests([("test_sigkill_mid_stream_loses_no_acked_message_and_resends_store_each_once",
                    test_sigkill_mid_stream_loses_no_acked_message_and_resends_store_each_once)])
