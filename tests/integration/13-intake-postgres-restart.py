#!/usr/bin/env python3
"""
NAME
    13-intake-postgres-restart - heraldd rides out a database restart

DESCRIPTION
    Restarts PostgreSQL under a steady stream of submissions. While it is
    down heraldd must answer with retryable errors (not hang, not crash),
    reconnect by itself with backoff, and resume ACKing; the same heraldd
    process serves throughout. Every key ends up stored exactly once.
"""
import subprocess
import time

from herald_harness import Stack, binary, run_tests, wait_until
from herald_stream import Stream

stack = Stack("pgrestart")


def test_postgres_restart_under_load_heraldd_recovers_without_its_own_restart():
    pid = stack.heraldd.pid
    s = Stream(stack.endpoint, "pgr", window=50, timeout_s=2.0)
    s.start()
    wait_until(lambda: len(s.acked_keys()) > 200, 30, what="ACKs to flow")
    stack.pg.stop()
    time.sleep(1.5)
    p = stack.producer()
    assert not p.ping(500), "ping must fail while the database is down"
    from herald_client import email
    rep = p.submit(email(), timeout_ms=2000)
    assert rep is not None and rep["ok"] is False and rep["code"] == "unavailable" \
        and rep["retryable"] is True, rep
    p.close()
    ping = subprocess.run([binary("client/herald-send"), "--endpoint", stack.endpoint, "--ping",
                           "--timeout-ms", "300"], capture_output=True, timeout=30)
    assert ping.returncode == 4, ping
    stack.pg.start()
    acked_at_restart = len(s.acked_keys())
    wait_until(lambda: len(s.acked_keys()) > acked_at_restart + 200, 30,
               what="ACKs to resume after PostgreSQL came back")
    s.stop_sending.set()
    s.join(60)
    assert not s.is_alive() and not s.errors, s.errors[:3]
    assert stack.heraldd.poll() is None and stack.heraldd.pid == pid, "heraldd was restarted"
    keys = s.acked_keys()
    assert len(keys) == s.issued
    rows = int(stack.scalar("SELECT count(*) FROM herald.messages WHERE app = 'pgr'"))
    assert rows == s.issued, (rows, s.issued)
    log = stack.log()
    assert "event=store.down" in log and log.count("event=store.connected") >= 2, log[-2000:]


if __name__ == "__main__":
    with stack:
        stack.start_db()
        stack.start_heraldd()
        run_tests([("test_postgres_restart_under_load_heraldd_recovers_without_its_own_restart",
                    test_postgres_restart_under_load_heraldd_recovers_without_its_own_restart)])
