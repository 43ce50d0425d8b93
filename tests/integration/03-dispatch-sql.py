#!/usr/bin/python3
"""
NAME
    03-dispatch-sql - claiming, outcomes, requeue and the operators' views
    of sql/002_dispatch.sql, and heraldctl stats / dead / requeue, against
    a real PostgreSQL 15

DESCRIPTION
    Starts a private cluster (pgtest.PrivatePostgres), migrates it with
    heraldctl, stores messages through herald.intake_batch() and checks
    what heraldd's dispatcher and an operator rely on: a claim returns due
    deliveries only, of the requested channels, at most max_n, oldest
    first; two sessions claiming at once never get the same delivery and
    the second does not wait for the first (SKIP LOCKED); an expired lease
    is reclaimed with a 'delivery.reclaimed' event; results move
    deliveries to sent / retry_wait / failed with one audit event each,
    but only for the lease holder's current attempt; a retry past the
    maximum lifetime fails; requeue puts failed deliveries back; the
    operator role can requeue and read the views but not write tables;
    both arms of the claim use their partial indexes; the heraldctl
    commands print what the database holds; and the audit trail verifies
    at the end.

    Environment: HERALD_BUILD_DIR (heraldctl in ctl/), HERALD_SOURCE_DIR,
    PYTHONPATH=tests/support. Prints "N passed, M failed" last.
"""
import base64
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from pgtest import run_suite, jlit  # noqa: E402

BUILD_DIR = os.environ.get("HERALD_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
HERALDCTL = os.path.join(BUILD_DIR, "ctl", "heraldctl")
DB = "herald"
BROKER = "broker_d"
OPERATOR = "operator_d"

pg = None
_ikey = [0]


# ---------------------------------------------------------------- helpers
def sql(query, user=None):
    return pg.sql(query, user=user, dbname=DB)


def value(query, user=None):
    return pg.value(query, user=user, dbname=DB)


def expect_error(query, fragment, user=None):
    return pg.expect_error(query, fragment, user=user, dbname=DB)


def ctl(*args, user=OPERATOR):
    return subprocess.run([HERALDCTL, "--db", pg.url(user=user, dbname=DB), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)


def entry(channel="email", to=None, cc=None, state="queued", klass="general", **kw):
    _ikey[0] += 1
    e = {"ord": 1, "app": "dtest", "ikey": "d-%d" % _ikey[0], "channel": channel,
         "sender": "alice@example.com", "class": klass, "state": state,
         "subject": "subject %d" % _ikey[0], "body": "body", "html": None, "cc_reason": None,
         "purpose": None, "reply_by": None, "flags": [], "tags": {},
         "to": to if to is not None else ["to%d@example.com" % _ikey[0]], "cc": cc or [],
         "attachments": [], "bulk": None}
    e.update(kw)
    return e


def intake(entries):
    """Store entries (ord is assigned here); returns the message ids in order."""
    for i, e in enumerate(entries):
        e["ord"] = i + 1
    rows = sql("SELECT message_id FROM herald.intake_batch(%s)" % jlit(entries), user=BROKER)
    return [int(r[0]) for r in rows]


def deliveries_of(mid):
    return [int(r[0]) for r in sql("SELECT id FROM herald.deliveries WHERE message_id = %d "
                                   "ORDER BY id" % mid)]


def claim(owner, channels, max_n, lease_ms=60000, user=BROKER):
    rows = sql("SELECT delivery_id, message_id, attempt, recipient, kind, channel, class "
               "FROM herald.claim_deliveries('%s', ARRAY[%s]::text[], %d, %d)"
               % (owner, ",".join("'%s'" % c for c in channels), max_n, lease_ms), user=user)
    return [{"id": int(r[0]), "message_id": int(r[1]), "attempt": int(r[2]), "recipient": r[3],
             "kind": r[4], "channel": r[5], "class": r[6]} for r in rows]


def record(owner, results, user=BROKER):
    rows = sql("SELECT delivery_id, applied, state FROM herald.record_outcomes('%s', %s)"
               % (owner, jlit(results)), user=user)
    return [(int(r[0]), r[1] == "t", r[2]) for r in rows]


def result(d, outcome, **kw):
    r = {"delivery_id": d["id"], "attempt": d["attempt"], "outcome": outcome,
         "provider": "smtp", "code": "250", "detail": "ok", "provider_id": None,
         "next_attempt_at_ms": None, "max_lifetime_s": 3 * 86400}
    r.update(kw)
    return r


def db_now_ms():
    return int(value("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"))


def state_of(did):
    return value("SELECT state FROM herald.deliveries WHERE id = %d" % did)


def events_of(did, kind=None):
    rows = sql("SELECT actor, kind, message_id, detail FROM herald.audit_events "
               "WHERE delivery_id = %d %s ORDER BY id"
               % (did, "AND kind = '%s'" % kind if kind else ""))
    return [{"actor": r[0], "kind": r[1], "message_id": int(r[2]) if r[2] else None,
             "detail": json.loads(r[3])} for r in rows]


def event_count():
    return int(value("SELECT count(*) FROM herald.audit_events"))


def reset_queue():
    """Take every open delivery out of the way (test fixture, superuser)."""
    sql("UPDATE herald.deliveries SET state = 'cancelled', lease_owner = NULL, lease_until = NULL "
        "WHERE state IN ('queued', 'retry_wait', 'dispatched')")


def verify():
    return sql("SELECT problem, chain_id, seq, event_id FROM herald.audit_verify()")


# ------------------------------------------------------------------ tests
def test_migrate_applies_002_with_its_columns_indexes_and_roles():
    r = subprocess.run([HERALDCTL, "--db", pg.url(dbname=DB), "db", "migrate"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "applied 002_dispatch" in r.stdout, r.stdout
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_broker" % BROKER)
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_operator" % OPERATOR)
    # Only staff may send (003): the sender these tests use, in a
    # department without a head so that no approval notification is queued.
    sql("SELECT * FROM herald.org_import(%s)" % jlit(
        {"departments": [{"name": "Test", "head": None}],
         "staff": [{"address": "alice@example.com", "name": "Alice", "department": "Test"}]}),
        user=OPERATOR)
    cols = {r[0] for r in sql("SELECT column_name FROM information_schema.columns "
                              "WHERE table_schema = 'herald' AND table_name = 'deliveries'")}
    assert cols >= {"sent_at", "failed_at", "provider_id", "last_provider", "last_code",
                    "requeued_at"}, cols
    due = value("SELECT pg_get_indexdef('herald.deliveries_due_idx'::regclass)")
    assert "(channel, next_attempt_at)" in due and "queued" in due and "retry_wait" in due, due
    lease = value("SELECT pg_get_indexdef('herald.deliveries_lease_idx'::regclass)")
    assert "(lease_until)" in lease and "'dispatched'" in lease, lease


def test_record_outcomes_stays_key_lookups_after_the_table_grows_in_the_same_session():
    # heraldd calls record_outcomes for months in one session; its first
    # call may come while deliveries is nearly empty. (Listed right after
    # the migration, so that this session's first call sees a near-empty
    # table, as heraldd's does.) Plans are cached per
    # session, so a plan fit for a tiny table (sequential scans) must not
    # survive into a large one. auto_explain shows the plans actually run.
    (mid,) = intake([entry()])
    out = pg.psql(["-f", "-"], dbname=DB, input="""
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
SELECT * FROM herald.record_outcomes('grow', '[{"delivery_id": 987654321, "attempt": 1,
    "outcome": "delivered"}]');
BEGIN;
INSERT INTO herald.deliveries (message_id, channel, recipient, kind, state)
SELECT %d, 'email', 'grow' || i || '@example.com', 'to', 'sent'
  FROM generate_series(1, 50000) AS i;
DO $$ BEGIN RAISE NOTICE 'GROWN'; END $$;
SELECT * FROM herald.record_outcomes('grow', '[{"delivery_id": 987654321, "attempt": 1,
    "outcome": "delivered"}]');
ROLLBACK;
""" % mid).stderr
    assert "GROWN" in out, out
    grown = out.split("GROWN", 1)[1]
    assert "deliveries" in grown, grown
    assert "Seq Scan on deliveries" not in grown, grown
    assert "deliveries_pkey" in grown, grown


def test_claim_returns_only_due_deliveries_of_the_requested_channels_up_to_max_n():
    reset_queue()
    e1, e2, e3, held, future = intake([entry(), entry(), entry(), entry(state="held", klass="important"),
                                       entry()])
    s1, s2 = intake([entry(channel="sms", to=["+15550001"]), entry(channel="sms", to=["+15550002"])])
    # e1 oldest, then e2, e3; "future" is not due for an hour.
    for mid, age_s in ((e1, 180), (e2, 120), (e3, 60)):
        sql("UPDATE herald.deliveries SET next_attempt_at = now() - make_interval(secs => %d) "
            "WHERE message_id = %d" % (age_s, mid))
    sql("UPDATE herald.deliveries SET next_attempt_at = now() + interval '1 hour' "
        "WHERE message_id = %d" % future)
    before = event_count()

    got = claim("b1", ["email"], 2, lease_ms=30000)
    assert [g["message_id"] for g in got] == [e1, e2], got
    g = got[0]
    assert g["attempt"] == 1 and g["kind"] == "to" and g["channel"] == "email"
    assert g["class"] == "general" and g["recipient"].startswith("to")
    assert event_count() == before + 2
    row = sql("SELECT state, lease_owner, attempts, "
              "round(extract(epoch FROM lease_until - now())) FROM herald.deliveries WHERE id = %d"
              % g["id"])[0]
    assert row[0] == "dispatched" and row[1] == "b1" and row[2] == "1", row
    assert 25 <= float(row[3]) <= 30, row
    ev = events_of(g["id"])
    assert ev[-1]["kind"] == "delivery.dispatched" and ev[-1]["actor"] == "broker:b1", ev
    assert ev[-1]["detail"] == {"attempt": 1, "lease_ms": 30000}, ev
    assert ev[-1]["message_id"] == e1

    rest = claim("b1", ["email"], 10)
    assert [g["message_id"] for g in rest] == [e3], rest  # not held, not future
    assert claim("b1", ["email"], 10) == []
    assert claim("b1", ["im"], 10) == []
    sms = claim("b1", ["sms", "im"], 10)
    assert sorted(g["message_id"] for g in sms) == [s1, s2], sms
    assert state_of(deliveries_of(held)[0]) == "held"
    assert state_of(deliveries_of(future)[0]) == "queued"


def test_claim_takes_the_oldest_due_first_across_channels_and_refuses_bad_arguments():
    reset_queue()
    e, s, i = intake([entry(), entry(channel="sms", to=["+1555"]), entry(channel="im", to=["U1"])])
    sql("UPDATE herald.deliveries SET next_attempt_at = now() - interval '1 minute' "
        "WHERE message_id = %d" % s)
    sql("UPDATE herald.deliveries SET next_attempt_at = now() - interval '30 seconds' "
        "WHERE message_id = %d" % i)
    got = claim("b1", ["email", "sms", "im"], 2)
    assert [g["message_id"] for g in got] == [s, i], got
    assert [g["message_id"] for g in claim("b1", ["email", "sms", "im"], 5)] == [e]
    expect_error("SELECT * FROM herald.claim_deliveries('b1', '{email}', 0, 1000)", "max_n",
                 user=BROKER)
    expect_error("SELECT * FROM herald.claim_deliveries('b1', '{email}', 5, 0)", "lease_ms",
                 user=BROKER)
    expect_error("SELECT * FROM herald.claim_deliveries('', '{email}', 5, 1000)", "owner",
                 user=BROKER)


def test_two_sessions_claiming_at_once_never_share_a_delivery_and_do_not_wait():
    reset_queue()
    intake([entry() for _ in range(150)])
    cmd = [os.path.join(os.environ.get("HERALD_PGBIN", "/usr/lib/postgresql/15/bin"), "psql"),
           "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", pg.url(user=BROKER, dbname=DB)]
    # Separate -c options: one session, one statement each.
    p1 = subprocess.Popen(cmd + ["-c", "BEGIN",
                                 "-c", "SELECT delivery_id FROM herald.claim_deliveries("
                                       "'A', '{email}', 60, 60000)",
                                 "-c", "SELECT pg_sleep(3)", "-c", "COMMIT"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    # Wait until the first session holds its rows (they show as dispatched
    # only after its commit, so watch the locks instead).
    deadline = time.monotonic() + 10
    while value("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE a.query LIKE '%pg_sleep%' AND l.locktype = 'transactionid' "
                "AND a.pid <> pg_backend_pid()") == "0":
        assert time.monotonic() < deadline, "first session never started"
        time.sleep(0.05)
    t0 = time.monotonic()
    p2 = subprocess.run(cmd + ["-c", "SELECT delivery_id FROM herald.claim_deliveries("
                                     "'B', '{email}', 60, 60000)"],
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, timeout=60)
    elapsed = time.monotonic() - t0
    out1, err1 = p1.communicate(timeout=60)
    assert p1.returncode == 0 and p2.returncode == 0, err1 + p2.stderr
    a = [int(x) for x in out1.split()]
    b = [int(x) for x in p2.stdout.split()]
    assert len(a) == 60 and len(b) == 60, (len(a), len(b))
    assert not set(a) & set(b), "the same delivery was claimed twice: %s" % (set(a) & set(b))
    assert elapsed < 2.0, "the second claim waited %.2f s for the first session" % elapsed
    owners = dict(sql("SELECT lease_owner, count(*) FROM herald.deliveries "
                      "WHERE state = 'dispatched' GROUP BY 1"))
    assert owners == {"A": "60", "B": "60"}, owners


def test_many_concurrent_claimers_drain_the_queue_exactly_once():
    reset_queue()
    intake([entry() for _ in range(200)])
    script = "".join("SELECT delivery_id FROM herald.claim_deliveries('w{n}', '{email}', 7, 60000);\n"
                     for _ in range(12))
    cmd = [os.path.join(os.environ.get("HERALD_PGBIN", "/usr/lib/postgresql/15/bin"), "psql"),
           "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", pg.url(user=BROKER, dbname=DB), "-f"]
    files = []
    for n in range(4):
        path = os.path.join(pg.dir, "claimer-%d.sql" % n)
        with open(path, "w") as f:
            f.write(script.replace("{n}", str(n)))
        files.append(path)
    procs = [subprocess.Popen(cmd + [path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for path in files]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids += [int(x) for x in out.split()]
    assert len(ids) == len(set(ids)), "%d claims, %d distinct" % (len(ids), len(set(ids)))
    assert len(ids) == 200, len(ids)
    assert value("SELECT count(*) FROM herald.deliveries WHERE state = 'queued'") == "0"


def test_an_expired_lease_is_reclaimed_with_an_event_naming_the_previous_owner():
    reset_queue()
    (m,) = intake([entry()])
    (a,) = claim("A", ["email"], 5, lease_ms=60000)
    assert claim("B", ["email"], 5) == [], "a live lease was taken over"
    sql("UPDATE herald.deliveries SET lease_until = now() - interval '1 second' WHERE id = %d"
        % a["id"])
    (b,) = claim("B", ["email"], 5, lease_ms=45000)
    assert b["id"] == a["id"] and b["attempt"] == 2, b
    ev = events_of(a["id"], "delivery.reclaimed")
    assert len(ev) == 1, ev
    assert ev[0]["actor"] == "broker:B" and ev[0]["message_id"] == m
    assert ev[0]["detail"] == {"attempt": 2, "lease_ms": 45000, "previous_owner": "A"}, ev
    # A finally answers: its lease is gone, nothing is written.
    before = event_count()
    assert record("A", [result(a, "delivered")]) == [(a["id"], False, "dispatched")]
    assert event_count() == before
    assert record("B", [result(b, "delivered")]) == [(b["id"], True, "sent")]


def test_a_lease_that_expires_without_a_new_claim_still_accepts_its_owners_result():
    reset_queue()
    intake([entry()])
    (a,) = claim("A", ["email"], 1, lease_ms=1)
    time.sleep(0.05)
    assert record("A", [result(a, "delivered")]) == [(a["id"], True, "sent")]


def test_record_outcomes_moves_deliveries_and_writes_one_event_each():
    reset_queue()
    intake([entry(), entry(), entry()])
    d1, d2, d3 = claim("b1", ["email"], 3)
    retry_at = db_now_ms() + 3600 * 1000
    before = event_count()
    rows = record("b1", [
        result(d1, "delivered", provider_id="<abc@mx>", detail="2.0.0 queued as ABC"),
        result(d2, "retry", code="451", detail="4.7.1 try later", next_attempt_at_ms=retry_at),
        result(d3, "failed", code="550", detail="5.1.1 user unknown " + "x" * 1000),
    ])
    assert rows == [(d1["id"], True, "sent"), (d2["id"], True, "retry_wait"),
                    (d3["id"], True, "failed")], rows
    assert event_count() == before + 3
    links = sql("SELECT count(*) FROM herald.audit_links WHERE %d = ANY (event_ids)"
                % int(value("SELECT max(id) FROM herald.audit_events")))
    assert links == [("1",)], "the events were not sealed"

    r1 = sql("SELECT state, provider_id, sent_at IS NOT NULL, lease_owner, lease_until, "
             "last_provider, last_code FROM herald.deliveries WHERE id = %d" % d1["id"])[0]
    assert r1 == ("sent", "<abc@mx>", "t", None, None, "smtp", "250"), r1
    e1 = events_of(d1["id"], "delivery.sent")[0]
    assert e1["actor"] == "broker:b1"
    assert e1["detail"] == {"attempt": 1, "provider": "smtp", "code": "250",
                            "detail": "2.0.0 queued as ABC", "provider_id": "<abc@mx>"}, e1

    r2 = sql("SELECT state, (extract(epoch FROM next_attempt_at) * 1000)::bigint, last_error, "
             "lease_owner FROM herald.deliveries WHERE id = %d" % d2["id"])[0]
    assert r2[0] == "retry_wait" and int(r2[1]) == retry_at, r2
    assert r2[2] == "451 4.7.1 try later" and r2[3] is None, r2
    e2 = events_of(d2["id"], "delivery.retry")[0]["detail"]
    assert e2["code"] == "451" and e2["attempt"] == 1
    assert e2["next_attempt_at"].endswith("Z") and "T" in e2["next_attempt_at"], e2
    want = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(retry_at / 1000))
    assert e2["next_attempt_at"].startswith(want), (e2, want)

    r3 = sql("SELECT state, failed_at IS NOT NULL, last_error FROM herald.deliveries WHERE id = %d"
             % d3["id"])[0]
    assert r3[0] == "failed" and r3[1] == "t" and r3[2].startswith("550 5.1.1 user unknown"), r3
    e3 = events_of(d3["id"], "delivery.failed")[0]["detail"]
    assert len(e3["detail"]) == 512 and "provider_id" not in e3, e3

    # Retry_wait is claimable again only once due, with the next attempt number.
    assert claim("b1", ["email"], 5) == []
    sql("UPDATE herald.deliveries SET next_attempt_at = now() - interval '1 second' WHERE id = %d"
        % d2["id"])
    (again,) = claim("b1", ["email"], 5)
    assert again["id"] == d2["id"] and again["attempt"] == 2, again
    assert events_of(d2["id"], "delivery.dispatched")[-1]["detail"]["attempt"] == 2


def test_a_stale_result_of_another_owner_or_attempt_is_not_applied():
    reset_queue()
    intake([entry(), entry()])
    d, d2 = claim("A", ["email"], 2)
    before = event_count()
    snapshot = sql("SELECT state, attempts, lease_owner, last_error, updated_at "
                   "FROM herald.deliveries WHERE id = %d" % d["id"])
    assert record("B", [result(d, "failed")]) == [(d["id"], False, "dispatched")]
    assert record("A", [result(d, "failed", attempt=2)]) == [(d["id"], False, "dispatched")]
    assert record("A", [result(d, "failed", delivery_id=987654321)]) == [(987654321, False, None)]
    assert event_count() == before
    assert sql("SELECT state, attempts, lease_owner, last_error, updated_at "
               "FROM herald.deliveries WHERE id = %d" % d["id"]) == snapshot
    # In one batch: a stale copy first, then the real one, then a duplicate.
    rows = record("A", [result(d, "failed", attempt=9), result(d, "delivered"),
                        result(d, "failed"), result(d2, "delivered")])
    assert rows == [(d["id"], False, "sent"), (d["id"], True, "sent"), (d["id"], False, "sent"),
                    (d2["id"], True, "sent")], rows
    assert event_count() == before + 2
    # Once applied, replaying the same result changes nothing.
    assert record("A", [result(d, "delivered")]) == [(d["id"], False, "sent")]
    assert event_count() == before + 2


def test_a_retry_past_the_maximum_lifetime_fails_as_expired():
    reset_queue()
    intake([entry(), entry()])
    d1, d2 = claim("b1", ["email"], 2)
    now = db_now_ms()
    rows = record("b1", [
        result(d1, "retry", code="421", detail="busy", next_attempt_at_ms=now + 2 * 3600 * 1000,
               max_lifetime_s=3600),
        result(d2, "retry", code="421", detail="busy", next_attempt_at_ms=now + 60 * 1000,
               max_lifetime_s=3600),
    ])
    assert rows == [(d1["id"], True, "failed"), (d2["id"], True, "retry_wait")], rows
    err = value("SELECT last_error FROM herald.deliveries WHERE id = %d" % d1["id"])
    assert err == "expired: gave up after 1 hour; last: 421 busy", err
    ev = events_of(d1["id"], "delivery.failed")[0]["detail"]
    assert ev["expired"] is True and ev["code"] == "421", ev
    assert value("SELECT duration_text FROM herald.duration_text(259200)") == "3 days"
    # After a requeue the lifetime counts from the requeue.
    sql("UPDATE herald.deliveries SET created_at = now() - interval '2 hours' WHERE id = %d"
        % d1["id"])
    assert [int(r[0]) for r in sql("SELECT * FROM herald.requeue(ARRAY[%d], NULL, 't')"
                                   % d1["id"], user=OPERATOR)] == [d1["id"]]
    (again,) = claim("b1", ["email"], 1)
    assert again["id"] == d1["id"]
    assert record("b1", [result(again, "retry", next_attempt_at_ms=db_now_ms() + 60000,
                                max_lifetime_s=3600)]) == [(d1["id"], True, "retry_wait")]


def test_record_outcomes_refuses_malformed_results_and_writes_nothing():
    reset_queue()
    intake([entry()])
    (d,) = claim("b1", ["email"], 1)
    before = event_count()
    expect_error("SELECT * FROM herald.record_outcomes('b1', '{}')", "must be a JSON array",
                 user=BROKER)
    expect_error("SELECT * FROM herald.record_outcomes('b1', %s)"
                 % jlit([result(d, "delivered"), result(d, "bounced")]), "bounced", user=BROKER)
    expect_error("SELECT * FROM herald.record_outcomes('b1', %s)"
                 % jlit([{"delivery_id": d["id"], "outcome": "delivered"}]), "attempt",
                 user=BROKER)
    assert event_count() == before and state_of(d["id"]) == "dispatched"


def test_message_contents_returns_everything_a_worker_needs():
    big = bytes(range(256)) * 40
    m, plain = intake([
        entry(to=["a@example.com", "b@example.com"], cc=["boss@example.com"],
              cc_reason="the boss asked", html="<p>hi</p>", purpose="service",
              reply_by=1700000000, flags=["confidential"], tags={"team": "hr"},
              attachments=[{"name": "x.bin", "type": "application/octet-stream",
                            "data": base64.b64encode(big).decode()},
                           {"name": "y.txt", "type": "text/plain",
                            "data": base64.b64encode(b"hello").decode()}]),
        entry(channel="sms", to=["+15551234"])])
    rows = sql("SELECT message_id, channel, sender, class, subject, body, html, cc_reason, purpose, "
               "reply_by, flags, tags::text, to_list, cc_list, attachments::text "
               "FROM herald.message_contents(ARRAY[%d, %d, %d, 99999999]::bigint[])"
               % (plain, m, m), user=BROKER)
    assert [int(r[0]) for r in rows] == sorted([m, plain]), rows
    r = rows[0] if int(rows[0][0]) == m else rows[1]
    assert r[1:10] == ("email", "alice@example.com", "general", r[4], "body", "<p>hi</p>",
                       "the boss asked", "service", "1700000000"), r
    assert r[10] == "{confidential}" and json.loads(r[11]) == {"team": "hr"}
    assert r[12] == "{a@example.com,b@example.com}" and r[13] == "{boss@example.com}", r
    att = json.loads(r[14])
    assert [a["name"] for a in att] == ["x.bin", "y.txt"]
    assert att[0]["type"] == "application/octet-stream"
    assert "\n" not in att[0]["data"] and base64.b64decode(att[0]["data"]) == big
    assert base64.b64decode(att[1]["data"]) == b"hello"
    p = rows[0] if int(rows[0][0]) == plain else rows[1]
    assert p[12] == "{+15551234}" and p[13] == "{}" and p[14] == "[]", p
    assert p[6] is None and p[9] is None, p


def test_requeue_puts_failed_deliveries_back_and_audits_the_login_role():
    reset_queue()
    intake([entry(), entry(), entry()])
    d1, d2, d3 = claim("b1", ["email"], 3)
    record("b1", [result(d1, "failed", code="550"), result(d2, "failed", code="551"),
                  result(d3, "delivered")])
    got = sql("SELECT * FROM herald.requeue(ARRAY[%d, %d, 77777777], NULL, 'alice')"
              % (d1["id"], d3["id"]), user=OPERATOR)
    assert [int(x[0]) for x in got] == [d1["id"]], got
    row = sql("SELECT state, attempts, failed_at, requeued_at IS NOT NULL, last_error, "
              "next_attempt_at <= now() FROM herald.deliveries WHERE id = %d" % d1["id"])[0]
    assert row == ("queued", "1", None, "t", "550 ok", "t"), row
    ev = events_of(d1["id"], "delivery.requeued")
    assert len(ev) == 1 and ev[0]["actor"] == "operator:" + OPERATOR, ev
    assert ev[0]["detail"]["requested_by"] == "alice" and ev[0]["detail"]["attempts"] == 1, ev
    assert ev[0]["detail"]["last_error"] == "550 ok"
    assert state_of(d3["id"]) == "sent"
    # By time: every delivery that failed since then (d2), not older ones.
    sql("UPDATE herald.deliveries SET failed_at = now() - interval '3 hours' "
        "WHERE state = 'failed' AND id <> %d" % d2["id"])
    got = sql("SELECT * FROM herald.requeue(NULL, now() - interval '1 hour', NULL)", user=OPERATOR)
    assert [int(x[0]) for x in got] == [d2["id"]], got
    expect_error("SELECT * FROM herald.requeue(NULL, NULL, NULL)", "give delivery ids",
                 user=OPERATOR)
    (back,) = [c for c in claim("b1", ["email"], 10) if c["id"] == d1["id"]]
    assert back["attempt"] == 2


def test_roles_operator_requeues_and_reads_views_broker_claims_neither_writes_tables():
    denied = "permission denied"
    for view in ("delivery_stats", "queue_ages", "outcome_rates", "live_workers", "dead_letters",
                 "workers", "outcome_counts"):
        sql("SELECT count(*) FROM herald.%s" % view, user=OPERATOR)
    expect_error("UPDATE herald.deliveries SET state = 'queued' WHERE state = 'failed'", denied,
                 user=OPERATOR)
    expect_error("INSERT INTO herald.workers (broker, name, connected_at, last_seen_at) "
                 "VALUES ('x', 'y', now(), now())", denied, user=OPERATOR)
    expect_error("DELETE FROM herald.outcome_counts", denied, user=OPERATOR)
    expect_error("SELECT * FROM herald.claim_deliveries('op', '{email}', 1, 1000)", denied,
                 user=OPERATOR)
    expect_error("SELECT * FROM herald.record_outcomes('op', '[]')", denied, user=OPERATOR)
    expect_error("SELECT herald.workers_update('op', '[]')", denied, user=OPERATOR)
    expect_error("SELECT * FROM herald.requeue(NULL, now(), NULL)", denied, user=BROKER)
    expect_error("UPDATE herald.deliveries SET state = 'sent'", denied, user=BROKER)
    expect_error("UPDATE herald.workers SET credit = 0", denied, user=BROKER)
    expect_error("INSERT INTO herald.outcome_counts VALUES (now(), 'email', '', 'failed', 0, 1)",
                 denied, user=BROKER)
    for f in ("claim_deliveries(text, text[], int, int)", "record_outcomes(text, jsonb)",
              "requeue(bigint[], timestamptz, text)", "workers_update(text, jsonb)",
              "message_contents(bigint[])"):
        assert value("SELECT has_function_privilege('public', 'herald.%s', 'EXECUTE')" % f) == "f", f
        assert value("SELECT prosecdef FROM pg_proc WHERE oid = 'herald.%s'::regprocedure"
                     % f) == "t", f


def test_workers_update_replaces_one_brokers_rows_and_live_workers_shows_recent_ones():
    old = db_now_ms() - 60 * 1000
    n = value("SELECT herald.workers_update('b2', %s)" % jlit([
        {"name": "w-old", "channels": ["sms"], "credit": 1, "connected_at_ms": old,
         "last_seen_at_ms": old}]), user=BROKER)
    assert n == "1"
    n = value("SELECT herald.workers_update('b1', %s)" % jlit([
        {"name": "w1", "channels": ["email"], "credit": 10, "connected_at_ms": old},
        {"name": "w2", "channels": ["sms", "im"], "credit": 5}]), user=BROKER)
    assert n == "2"
    n = value("SELECT herald.workers_update('b1', %s)" % jlit([
        {"name": "w2", "channels": ["sms", "im"], "credit": 4},
        {"name": "w3", "channels": ["email"], "credit": 20}]), user=BROKER)
    assert n == "2"
    rows = sql("SELECT broker, name, channels, credit FROM herald.workers ORDER BY 1, 2")
    assert rows == [("b1", "w2", "{sms,im}", "4"), ("b1", "w3", "{email}", "20"),
                    ("b2", "w-old", "{sms}", "1")], rows
    live = sql("SELECT name FROM herald.live_workers ORDER BY 1", user=OPERATOR)
    assert live == [("w2",), ("w3",)], live
    expect_error("SELECT herald.workers_update('b1', '{}')", "JSON array", user=BROKER)


def test_both_arms_of_the_claim_use_their_partial_indexes():
    # Enough finished rows that a sequential scan would be the planner's
    # choice without the indexes.
    mid = intake([entry()])[0]
    sql("INSERT INTO herald.deliveries (message_id, channel, recipient, kind, state) "
        "SELECT %d, (ARRAY['email', 'im', 'sms'])[1 + g %% 3], 'r' || g, 'to', 'sent' "
        "FROM generate_series(1, 30000) AS g; ANALYZE herald.deliveries" % mid)
    script = ("LOAD 'auto_explain';\n"
              "SET auto_explain.log_min_duration = 0;\n"
              "SET auto_explain.log_nested_statements = on;\n"
              "SET auto_explain.log_level = notice;\n"
              "SET client_min_messages = notice;\n"
              "SET plan_cache_mode = %s;\n"
              "BEGIN;\n"
              "SELECT count(*) FROM herald.claim_deliveries('plan', '{email,sms}', 10, 1000);\n"
              "ROLLBACK;\n")
    for mode in ("force_custom_plan", "force_generic_plan"):
        r = pg.psql(["-f", "-"], dbname=DB, input=script % mode)
        plan = r.stderr
        start = plan.find("WITH pick AS MATERIALIZED")
        assert start >= 0, plan[:2000]
        claim_plan = plan[start:]
        assert "Index Scan using deliveries_due_idx" in claim_plan, claim_plan
        assert "Index Scan using deliveries_lease_idx" in claim_plan, claim_plan
        assert "Seq Scan on deliveries" not in claim_plan, claim_plan


def _audit_outcomes(window_sql):
    rows = sql("SELECT e.kind, d.channel, coalesce(e.detail::jsonb->>'provider', ''), count(*) "
               "FROM herald.audit_events AS e JOIN herald.deliveries AS d ON d.id = e.delivery_id "
               "WHERE e.kind IN ('delivery.sent', 'delivery.retry', 'delivery.failed') AND %s "
               "GROUP BY 1, 2, 3" % window_sql)
    name = {"delivery.sent": "delivered", "delivery.retry": "retried", "delivery.failed": "failed"}
    out = {"all": {}, "channels": {}, "providers": {}}
    for kind, channel, provider, n in rows:
        k = name[kind]
        out["all"][k] = out["all"].get(k, 0) + int(n)
        for scope, key in (("channels", channel), ("providers", provider)):
            o = out[scope].setdefault(key, {})
            o[k] = o.get(k, 0) + int(n)
    return out


def test_heraldctl_stats_prints_what_the_database_holds():
    reset_queue()
    intake([entry(), entry(channel="sms", to=["+1999"]), entry(state="held", klass="bulk")])
    sql("UPDATE herald.deliveries SET next_attempt_at = now() - interval '90 seconds' "
        "WHERE state = 'queued'")
    sql("UPDATE herald.deliveries SET created_at = now() - interval '2 hours' WHERE state = 'held'")
    got = claim("b1", ["sms"], 1)
    record("b1", [result(got[0], "retry", provider="kannel", code="429", detail="slow down",
                         next_attempt_at_ms=db_now_ms() + 600000)])
    value("SELECT herald.workers_update('b1', %s)" % jlit([
        {"name": "w-stats", "channels": ["email", "sms"], "credit": 7}]), user=BROKER)

    r = ctl("stats", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    by_state = {s: int(n) for s, n in sql("SELECT state, count(*) FROM herald.deliveries GROUP BY 1")}
    assert st["by_state"] == by_state, (st["by_state"], by_state)
    assert st["total"] == sum(by_state.values())
    for d in st["deliveries"]:
        assert set(d) == {"state", "channel", "class", "count"}, d
    q = {x["channel"]: x for x in st["queues"]}
    assert set(q) == {"email", "im", "sms"}
    assert 85 <= q["email"]["oldest_queued_age_s"] < 200, q
    assert q["im"]["oldest_queued_age_s"] is None and q["sms"]["oldest_queued_age_s"] is None, q
    assert 7190 <= q["email"]["oldest_held_age_s"] < 7400, q
    assert st["oldest_held_age_s"] == q["email"]["oldest_held_age_s"]

    # The counters agree with the audit trail (everything here happened
    # within the hour; the 5-minute window holds at least the last minute).
    want = _audit_outcomes("e.at > now() - interval '1 hour'")
    h = st["outcomes"]["last_1h"]
    for k in ("delivered", "retried", "failed"):
        assert h["all"][k] == want["all"].get(k, 0), (k, h["all"], want["all"])
    for scope in ("channels", "providers"):
        assert set(h[scope]) == set(want[scope]), (scope, h[scope], want[scope])
        for key, counts in want[scope].items():
            for k in ("delivered", "retried", "failed"):
                assert h[scope][key][k] == counts.get(k, 0), (scope, key, k, h[scope][key], counts)
    tot = sum(h["all"][k] for k in ("delivered", "retried", "failed"))
    assert abs(h["all"]["failure_rate"] - (h["all"]["retried"] + h["all"]["failed"]) / tot) < 1e-3
    assert h["providers"]["kannel"]["retried"] >= 1 and h["channels"]["sms"]["retried"] >= 1
    m5 = st["outcomes"]["last_5m"]
    recent = _audit_outcomes("e.at > now() - interval '1 minute'")
    for k in ("delivered", "retried", "failed"):
        assert recent["all"].get(k, 0) <= m5["all"][k] <= h["all"][k], (k, m5, recent)
    w = [x for x in st["workers"] if x["name"] == "w-stats"]
    assert len(w) == 1 and w[0]["channels"] == ["email", "sms"] and w[0]["credit"] == 7, st["workers"]
    assert w[0]["broker"] == "b1" and w[0]["last_seen_age_s"] < 10

    r = ctl("stats")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    for needle in ("deliveries by state, channel and class", "outcomes in the last 5 minutes",
                   "outcomes in the last hour", "w-stats", "kannel", "email,sms",
                   "workers seen in the last 10 s:"):
        assert needle in text, (needle, text)
    held_line = [ln for ln in text.splitlines() if ln.startswith("  email") and "2h 0" in ln]
    assert held_line, text
    assert ctl("stats", "--bogus").returncode == 2


def test_heraldctl_dead_lists_failed_deliveries_with_filters():
    reset_queue()
    intake([entry(subject="Invoice 7"), entry(channel="sms", to=["+1444"], subject=None)])
    e, s = sorted(claim("b1", ["email", "sms"], 2), key=lambda x: x["channel"])
    record("b1", [result(e, "failed", code="550", detail="5.1.1 no such user\nreally"),
                  result(s, "failed", provider="kannel", code="ERR", detail="rejected")])
    r = ctl("dead", "--json", "--limit", "10000")
    assert r.returncode == 0, r.stderr
    dead = json.loads(r.stdout)
    n_failed = int(value("SELECT count(*) FROM herald.deliveries WHERE state = 'failed'"))
    assert dead["total"] == n_failed == dead["shown"] == len(dead["deliveries"]), dead["total"]
    top = {d["delivery_id"]: d for d in dead["deliveries"]}
    de = top[e["id"]]
    assert de["recipient"] == e["recipient"] and de["channel"] == "email" and de["attempts"] == 1
    assert de["last_error"] == "550 5.1.1 no such user\nreally" and de["subject"] == "Invoice 7"
    assert de["message_id"] == e["message_id"] and de["failed_at"].endswith("Z")
    assert de["last_provider"] == "smtp" and de["class"] == "general" and de["kind"] == "to"
    assert top[s["id"]]["subject"] is None

    r = ctl("dead", "--json", "--channel", "sms", "--since", "10m")
    only = json.loads(r.stdout)
    assert {d["channel"] for d in only["deliveries"]} == {"sms"}, only
    assert s["id"] in [d["delivery_id"] for d in only["deliveries"]]
    r = ctl("dead", "--json", "--limit", "1")
    one = json.loads(r.stdout)
    assert one["shown"] == 1 and one["total"] == n_failed
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert json.loads(ctl("dead", "--json", "--since", future).stdout)["total"] == 0

    r = ctl("dead", "--since", "10m")
    assert r.returncode == 0, r.stderr
    assert "550 5.1.1 no such user really" in r.stdout and e["recipient"] in r.stdout, r.stdout
    assert "Invoice 7" in r.stdout
    assert ctl("dead", "--channel", "fax").returncode == 2
    assert ctl("dead", "--since", "soonish").returncode == 2


def test_heraldctl_requeue_by_id_is_all_or_nothing_and_by_time_takes_every_failure():
    reset_queue()
    intake([entry(), entry(), entry()])
    a, b, c = claim("b1", ["email"], 3)
    record("b1", [result(a, "failed"), result(b, "failed"), result(c, "delivered")])

    r = ctl("requeue", str(a["id"]), str(c["id"]), "424242424")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "delivery %d is sent, not failed" % c["id"] in r.stderr, r.stderr
    assert "delivery 424242424 does not exist" in r.stderr, r.stderr
    assert "delivery %d is" % a["id"] not in r.stderr, r.stderr
    assert state_of(a["id"]) == "failed", "a refused requeue changed something"
    r = ctl("requeue", "--json", "%d,%d" % (a["id"], c["id"]))
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"requeued": 0, "delivery_ids": [],
                                    "refused": [{"delivery_id": c["id"], "state": "sent"}]}, r.stdout

    r = ctl("requeue", str(a["id"]))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "requeued 1 delivery: %d" % a["id"], r.stdout
    assert state_of(a["id"]) == "queued"
    ev = events_of(a["id"], "delivery.requeued")[-1]
    assert ev["actor"] == "operator:" + OPERATOR, ev

    failed = sorted(int(x[0]) for x in sql("SELECT id FROM herald.deliveries "
                                           "WHERE state = 'failed' AND failed_at > now() - interval '1 hour'"))
    assert b["id"] in failed
    r = ctl("requeue", "--all-failed", "--since", "1h", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["requeued"] == len(failed) and sorted(j["delivery_ids"]) == failed, (j, failed)
    assert j["refused"] == []
    assert state_of(b["id"]) == "queued"
    r = ctl("requeue", "--all-failed", "--since", "1h")
    assert r.returncode == 0 and r.stdout.strip() == "requeued 0 deliveries", r.stdout
    assert ctl("requeue").returncode == 2
    assert ctl("requeue", "--all-failed").returncode == 2
    assert ctl("requeue", "12", "--all-failed", "--since", "1h").returncode == 2
    r = ctl("requeue", str(a["id"]), user=BROKER)
    assert r.returncode == 1 and "permission denied" in r.stderr, r.stderr


def test_the_audit_trail_verifies_after_all_of_it():
    kinds = {k for (k,) in sql("SELECT DISTINCT kind FROM herald.audit_events")}
    assert kinds >= {"delivery.dispatched", "delivery.reclaimed", "delivery.sent", "delivery.retry",
                     "delivery.failed", "delivery.requeued"}, kinds
    assert verify() == []
    r = subprocess.run([HERALDCTL, "--db", pg.url(dbname=DB), "audit", "verify"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0 and "intact" in r.stdout, r.stdout + r.stderr


TESTS = [
    test_migrate_applies_002_with_its_columns_indexes_and_roles,
    test_record_outcomes_stays_key_lookups_after_the_table_grows_in_the_same_session,
    test_claim_returns_only_due_deliveries_of_the_requested_channels_up_to_max_n,
    test_claim_takes_the_oldest_due_first_across_channels_and_refuses_bad_arguments,
    test_two_sessions_claiming_at_once_never_share_a_delivery_and_do_not_wait,
    test_many_concurrent_claimers_drain_the_queue_exactly_once,
    test_an_expired_lease_is_reclaimed_with_an_event_naming_the_previous_owner,
    test_a_lease_that_expires_without_a_new_claim_still_accepts_its_owners_result,
    test_record_outcomes_moves_deliveries_and_writes_one_event_each,
    test_a_stale_result_of_another_owner_or_attempt_is_not_applied,
    test_a_retry_past_the_maximum_lifetime_fails_as_expired,
    test_record_outcomes_refuses_malformed_results_and_writes_nothing,
    test_message_contents_returns_everything_a_worker_needs,
    test_requeue_puts_failed_deliveries_back_and_audits_the_login_role,
    test_roles_operator_requeues_and_reads_views_broker_claims_neither_writes_tables,
    test_workers_update_replaces_one_brokers_rows_and_live_workers_shows_recent_ones,
    test_both_arms_of_the_claim_use_their_partial_indexes,
    test_heraldctl_stats_prints_what_the_database_holds,
    test_heraldctl_dead_lists_failed_deliveries_with_filters,
    test_heraldctl_requeue_by_id_is_all_or_nothing_and_by_time_takes_every_failure,
    test_the_audit_trail_verifies_after_all_of_it,
]


def start(cluster, tmpdir):
    global pg, tmp
    pg, tmp = cluster, tmpdir
    pg.sql("CREATE DATABASE %s" % DB)


if __name__ == "__main__":
    sys.exit(run_suite("03", TESTS, start, needs=[HERALDCTL]))
