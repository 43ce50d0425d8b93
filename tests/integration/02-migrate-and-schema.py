#!/usr/bin/python3
"""
NAME
    02-migrate-and-schema - heraldctl db migrate, the schema, intake_batch
    and the audit hash chains against a real PostgreSQL 15

DESCRIPTION
    Starts a private cluster (pgtest.PrivatePostgres), migrates a fresh
    database with heraldctl and checks what a deployer, heraldd and an
    auditor rely on: migrations apply once and refuse tampered history;
    the delivery states are constrained; heraldd's role can store batches
    only through herald.intake_batch() (duplicates answered with the
    original and nothing written); nobody, not even the superuser, can
    change the audit trail through SQL; and any change made behind the
    triggers' back is found by herald.audit_verify() and by
    `heraldctl audit verify` (exit 1).

    Environment: HERALD_BUILD_DIR (heraldctl in ctl/), HERALD_SOURCE_DIR,
    PYTHONPATH=tests/support. Prints "N passed, M failed" last.
"""
import base64
import json
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from pgtest import free_port, run_suite  # noqa: E402

BUILD_DIR = os.environ.get("HERALD_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
HERALDCTL = os.path.join(BUILD_DIR, "ctl", "heraldctl")
DB = "herald"
BROKER = "broker_itest"
OPERATOR = "operator_itest"
DELIVERY_STATES = ["held", "queued", "dispatched", "sent", "retry_wait", "failed",
                   "rejected_by_approver", "expired", "cancelled"]

pg = None


# ---------------------------------------------------------------- helpers
def ctl(*args, db=DB, url=None):
    """Run heraldctl against the test database; returns CompletedProcess."""
    target = url or pg.url(dbname=db)
    return subprocess.run([HERALDCTL, "--db", target, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)


def sql(query, user=None, db=DB):
    return pg.sql(query, user=user, dbname=db)


def value(query, user=None, db=DB):
    return pg.value(query, user=user, dbname=db)


def count(table):
    return int(value("SELECT count(*) FROM herald.%s" % table))


def entry(ord_, ikey, **kw):
    e = {"ord": ord_, "app": "itest", "ikey": ikey, "channel": "email",
         "sender": "alice@example.com", "class": "general", "state": "queued",
         "subject": "subject %d" % ord_, "body": "body %d" % ord_, "html": None,
         "cc_reason": None, "purpose": None, "reply_by": None, "flags": [], "tags": {},
         "to": ["to%d@example.com" % ord_], "cc": [], "attachments": [], "bulk": None}
    e.update(kw)
    return e


def intake(entries, user=BROKER):
    """Call herald.intake_batch as user; rows as dicts keyed by column."""
    doc = json.dumps(entries)
    assert "$j$" not in doc
    rows = sql("SELECT ord, message_id, class, state, duplicate "
               "FROM herald.intake_batch($j$%s$j$::jsonb)" % doc, user=user)
    return [{"ord": int(r[0]), "id": int(r[1]), "class": r[2], "state": r[3],
             "duplicate": r[4] == "t"} for r in rows]


def verify():
    return sql("SELECT problem, chain_id, seq, event_id FROM herald.audit_verify()")


def snapshot_counts():
    return {t: count(t) for t in ("messages", "attachments", "bulk_applications",
                                  "deliveries", "audit_events", "audit_links")}


def expect_error(query, fragment, user=None):
    return pg.expect_error(query, fragment, user=user, dbname=DB)


# ------------------------------------------------------------------ tests
def test_status_before_migrate_lists_001_pending():
    r = ctl("db", "status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["version"] == 0 and st["initialized"] is False
    assert 1 in st["pending"] and st["up_to_date"] is False


def test_migrate_applies_001_once_and_second_run_is_up_to_date():
    r = ctl("db", "migrate")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "applied 001_intake" in r.stdout, r.stdout
    r2 = ctl("db", "migrate")
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "up to date" in r2.stdout and "applied 0" not in r2.stdout, r2.stdout
    assert int(value("SELECT count(*) FROM herald.schema_migrations WHERE version = 1")) == 1
    st = json.loads(ctl("db", "status", "--json").stdout)
    assert st["version"] >= 1 and st["up_to_date"] is True and st["pending"] == []
    assert st["migrations"][0]["state"] == "applied"
    assert st["migrations"][0]["sha256"] == st["migrations"][0]["applied_sha256"]


def test_login_roles_join_the_group_roles_the_migration_created():
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_broker" % BROKER)
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_operator" % OPERATOR)
    assert value("SELECT pg_has_role('%s', 'herald_broker', 'USAGE')" % BROKER) == "t"
    assert value("SELECT current_user", user=BROKER) == BROKER
    assert value("SELECT has_function_privilege('%s', 'herald.intake_batch(jsonb)', 'EXECUTE')"
                 % BROKER) == "t"


def test_schema_has_the_tables_roles_and_eight_chain_heads():
    tables = {r[0] for r in sql("SELECT table_name FROM information_schema.tables "
                                "WHERE table_schema = 'herald'")}
    for t in ("messages", "attachments", "bulk_applications", "deliveries", "audit_events",
              "audit_chains", "audit_links", "schema_migrations", "delivery_counts"):
        assert t in tables, "missing herald.%s (have %s)" % (t, sorted(tables))
    roles = {r[0] for r in sql("SELECT rolname FROM pg_roles WHERE rolname LIKE 'herald_%' "
                               "AND NOT rolcanlogin")}
    assert roles >= {"herald_broker", "herald_operator", "herald_approver"}, roles
    heads = sql("SELECT chain_id, seq, encode(head, 'hex') FROM herald.audit_chains ORDER BY 1")
    assert [int(h[0]) for h in heads] == list(range(8))
    assert all(h[1] == "0" and h[2] == "00" * 32 for h in heads), heads
    idx = value("SELECT pg_get_indexdef('herald.deliveries_due_idx'::regclass)")
    assert "WHERE" in idx and "queued" in idx and "retry_wait" in idx, idx


def test_delivery_state_check_rejects_a_bogus_state_and_accepts_every_real_one():
    mid = value("INSERT INTO herald.messages (app, channel, sender, class, initial_state) "
                "VALUES ('direct', 'sms', 's', 'general', 'queued') RETURNING id")
    expect_error("INSERT INTO herald.deliveries (message_id, channel, recipient, kind, state) "
                 "VALUES (%s, 'sms', '+1', 'to', 'bogus')" % mid, "deliveries_state_check")
    for s in DELIVERY_STATES:
        sql("BEGIN; INSERT INTO herald.deliveries (message_id, channel, recipient, kind, state) "
            "VALUES (%s, 'sms', '+1', 'to', '%s'); ROLLBACK" % (mid, s))
    checks = value("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE conname = 'deliveries_state_check'")
    for s in DELIVERY_STATES:
        assert "'%s'" % s in checks, checks
    sql("DELETE FROM herald.messages WHERE id = %s" % mid)


def test_broker_intake_batch_stores_messages_deliveries_attachments_and_one_event_each():
    # Only staff may send (003): the senders these tests use, in a
    # department without a head so that no approval notification is sent.
    sql("SELECT * FROM herald.org_import($j$%s$j$::jsonb)" % json.dumps(
        {"departments": [{"name": "Test", "head": None}],
         "staff": [{"address": "alice@example.com", "name": "Alice", "department": "Test"}]}),
        user=OPERATOR)
    before = snapshot_counts()
    pdf = bytes(range(256)) * 3
    rows = intake([
        entry(1, "k-1", to=["a@example.com", "b@example.com"], cc=["boss@example.com"],
              cc_reason="the boss asked", flags=["confidential"], tags={"team": "hr"},
              reply_by=1700000000,
              attachments=[{"name": "x.pdf", "type": "application/pdf",
                            "data": base64.b64encode(pdf).decode()}]),
        entry(2, None, channel="sms", **{"class": "bulk", "state": "held"}, purpose="marketing",
              to=["+15551234567"], bulk={"purpose": "launch", "audience": "all staff",
                                         "recipient_count": 1, "summary": "new product"}),
    ])
    assert [(r["ord"], r["class"], r["state"], r["duplicate"]) for r in rows] == \
        [(1, "general", "queued", False), (2, "bulk", "held", False)], rows
    m1, m2 = rows[0]["id"], rows[1]["id"]
    after = snapshot_counts()
    assert after["messages"] - before["messages"] == 2
    assert after["deliveries"] - before["deliveries"] == 4
    assert after["attachments"] - before["attachments"] == 1
    assert after["bulk_applications"] - before["bulk_applications"] == 1
    # Two 'message.accepted' and the bulk message's 'approval.requested'
    # (003), in one link per statement; and, since Test has no head, the
    # request's 'approval.escalated' (009), written by its own statement.
    assert after["audit_events"] - before["audit_events"] == 4
    assert after["audit_links"] - before["audit_links"] == 2, "one link per statement"

    d = sql("SELECT recipient, kind, state, channel FROM herald.deliveries "
            "WHERE message_id = %d ORDER BY id" % m1)
    assert d == [("a@example.com", "to", "queued", "email"), ("b@example.com", "to", "queued", "email"),
                 ("boss@example.com", "cc", "queued", "email")], d
    d2 = sql("SELECT recipient, kind, state, channel FROM herald.deliveries WHERE message_id = %d" % m2)
    assert d2 == [("+15551234567", "to", "held", "sms")], d2
    a = sql("SELECT idx, name, mime_type, size, encode(data, 'base64') FROM herald.attachments "
            "WHERE message_id = %d" % m1)
    assert a[0][:4] == ("1", "x.pdf", "application/pdf", str(len(pdf)))
    assert base64.b64decode(a[0][4]) == pdf
    m = sql("SELECT flags, tags::text, extract(epoch FROM reply_by)::bigint, initial_state "
            "FROM herald.messages WHERE id = %d" % m1)[0]
    assert m == ("{confidential}", '{"team": "hr"}', "1700000000", "queued"), m
    b = sql("SELECT purpose, audience, recipient_count, summary, applicant "
            "FROM herald.bulk_applications WHERE message_id = %d" % m2)
    assert b == [("launch", "all staff", "1", "new product", "alice@example.com")], b
    ev = sql("SELECT actor, kind, detail FROM herald.audit_events WHERE message_id = %d" % m1)
    assert len(ev) == 1 and ev[0][0] == "app:itest" and ev[0][1] == "message.accepted", ev
    detail = json.loads(ev[0][2])
    assert detail == {"class": "general", "state": "queued", "recipients": 3,
                      "cc_reason": "the boss asked"}, detail


def test_broker_duplicate_returns_the_original_and_writes_nothing():
    first = intake([entry(1, "dup-1"), entry(2, "dup-2", **{"class": "important", "state": "held"})])
    before = snapshot_counts()
    again = intake([entry(1, "dup-2", **{"class": "general", "state": "queued"}),
                    entry(2, "dup-1", to=["other@example.com"])])
    assert again == [
        {"ord": 1, "id": first[1]["id"], "class": "important", "state": "held", "duplicate": True},
        {"ord": 2, "id": first[0]["id"], "class": "general", "state": "queued", "duplicate": True},
    ], again
    assert snapshot_counts() == before, "a duplicate wrote rows"
    mixed = intake([entry(1, "dup-1"), entry(2, "dup-3")])
    assert mixed[0]["duplicate"] and mixed[0]["id"] == first[0]["id"]
    assert not mixed[1]["duplicate"] and mixed[1]["id"] not in (first[0]["id"], first[1]["id"])
    after = snapshot_counts()
    assert after["messages"] == before["messages"] + 1
    assert after["audit_events"] == before["audit_events"] + 1
    # NULL keys never collide: the same content twice is two messages.
    n1 = intake([entry(1, None)])[0]
    n2 = intake([entry(1, None)])[0]
    assert n1["id"] != n2["id"] and not n2["duplicate"]


def test_broker_cannot_write_any_table_directly():
    denied = "permission denied"
    expect_error("INSERT INTO herald.messages (app, channel, sender, class, initial_state) "
                 "VALUES ('x', 'sms', 's', 'general', 'queued')", denied, user=BROKER)
    expect_error("UPDATE herald.deliveries SET state = 'sent'", denied, user=BROKER)
    expect_error("DELETE FROM herald.messages", denied, user=BROKER)
    expect_error("INSERT INTO herald.audit_events (actor, kind) VALUES ('me', 'forged')", denied,
                 user=BROKER)
    expect_error("UPDATE herald.audit_events SET detail = '{}'", denied, user=BROKER)
    expect_error("DELETE FROM herald.audit_events", denied, user=BROKER)
    expect_error("UPDATE herald.audit_chains SET seq = 0", denied, user=BROKER)
    expect_error("INSERT INTO herald.audit_links SELECT * FROM herald.audit_links LIMIT 1", denied,
                 user=BROKER)
    # ...but it can read what it stored.
    assert int(value("SELECT count(*) FROM herald.messages", user=BROKER)) > 0


def test_operator_reads_everything_but_cannot_call_intake():
    assert int(value("SELECT count(*) FROM herald.audit_events", user=OPERATOR)) > 0
    assert len(sql("SELECT * FROM herald.delivery_counts", user=OPERATOR)) > 0
    expect_error("SELECT * FROM herald.intake_batch('[]')", "permission denied", user=OPERATOR)
    expect_error("UPDATE herald.deliveries SET state = 'sent'", "permission denied", user=OPERATOR)


def test_even_the_superuser_cannot_update_delete_or_truncate_the_audit_trail():
    n = count("audit_events")
    expect_error("UPDATE herald.audit_events SET detail = '{}'", "append-only")
    expect_error("DELETE FROM herald.audit_events", "append-only")
    expect_error("TRUNCATE herald.audit_events", "append-only")
    expect_error("UPDATE herald.audit_links SET digest = digest", "append-only")
    expect_error("DELETE FROM herald.audit_links", "append-only")
    # session_replication_role = replica does not switch the guard off.
    expect_error("SET session_replication_role = replica; DELETE FROM herald.audit_events",
                 "append-only")
    assert count("audit_events") == n


def test_audit_verify_is_empty_after_intake_and_heraldctl_says_intact():
    assert verify() == []
    r = ctl("audit", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "intact" in r.stdout, r.stdout
    j = json.loads(ctl("audit", "verify", "--json").stdout)
    assert j["intact"] is True and j["problems"] == [] and j["events"] == count("audit_events")


def test_row_hash_is_the_documented_canonical_text():
    # The canonical text spelled out independently of herald.audit_event_hash.
    rows = sql("""
        SELECT count(*) FILTER (WHERE herald.audit_event_hash(id, at, actor, kind, message_id,
                                                               delivery_id, detail)
               = sha256(convert_to(concat_ws('|', id, (extract(epoch FROM at) * 1000000)::bigint,
                   actor, kind, coalesce(message_id::text, ''), coalesce(delivery_id::text, ''),
                   detail), 'UTF8'))), count(*)
          FROM herald.audit_events""")
    assert rows[0][0] == rows[0][1] and int(rows[0][1]) > 0, rows


def test_concurrent_intake_seals_into_free_chains_and_stays_verifiable():
    links_before = {(int(c), int(s)) for c, s in sql("SELECT chain_id, seq FROM herald.audit_links")}
    results, errors = {}, []

    def worker(w):
        try:
            batches = []
            for b in range(5):
                batches.append("SELECT count(*) FROM herald.intake_batch($j$%s$j$::jsonb);" % json.dumps(
                    [entry(i + 1, "conc-%d-%d-%d" % (w, b, i)) for i in range(40)]))
            script = "SELECT 'chain', pg_backend_pid() % 8;\n" + "\n".join(batches) + "\n"
            r = pg.psql(["-At", "-f", "-"], user=BROKER, dbname=DB, input=script)
            lines = r.stdout.split()
            results[w] = (int(lines[0].split("|")[1]), [int(x) for x in lines[1:]])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert all(counts == [40] * 5 for _, counts in results.values()), results
    chains_used = {chain for chain, _ in results.values()}
    new_links = [(int(c), int(s)) for c, s in sql("SELECT chain_id, seq FROM herald.audit_links")
                 if (int(c), int(s)) not in links_before]
    assert len(new_links) == 20, new_links
    # A seal takes its session's chain when free, else the next free one:
    # the chains used cover the sessions' own chains, all within 0..7, and
    # each chain's links are numbered without gaps.
    used = {c for c, _ in new_links}
    assert used <= set(range(8)), used
    assert len(used) >= min(2, len(chains_used)), (new_links, chains_used)
    for c in used:
        seqs = sorted(int(s) for (s,) in sql("SELECT seq FROM herald.audit_links WHERE chain_id = %d"
                                              % c))
        assert seqs == list(range(1, len(seqs) + 1)), (c, seqs)
    assert verify() == []


def tamper(statement, table="audit_events", trigger="audit_events_append_only"):
    """Run statement with the append-only guard off, as an attacker with the owner's rights."""
    sql("BEGIN; ALTER TABLE herald.%s DISABLE TRIGGER %s; %s; "
        "ALTER TABLE herald.%s ENABLE ALWAYS TRIGGER %s; COMMIT"
        % (table, trigger, statement, table, trigger))


def test_tampering_with_an_event_is_reported_and_heraldctl_exits_1():
    eid, detail = sql("SELECT id, detail FROM herald.audit_events ORDER BY id LIMIT 1")[0]
    chain, seq = sql("SELECT chain_id, seq FROM herald.audit_links WHERE %s = ANY(event_ids)" % eid)[0]
    tamper("UPDATE herald.audit_events SET detail = '{\"class\": \"bulk\"}' WHERE id = %s" % eid)
    problems = verify()
    assert ("digest_mismatch", chain, seq, None) in problems, problems
    r = ctl("audit", "verify")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "digest_mismatch" in r.stdout and "BROKEN" in r.stdout, r.stdout
    j = json.loads(ctl("audit", "verify", "--json").stdout)
    assert j["intact"] is False and j["problems"][0]["chain_id"] == int(chain)
    # Putting the original text back makes the chain verify again: the
    # check is over content, not over "was the row ever touched".
    tamper("UPDATE herald.audit_events SET detail = $d$%s$d$ WHERE id = %s" % (detail, eid))
    assert verify() == []
    assert ctl("audit", "verify").returncode == 0


def test_a_deleted_event_and_an_unsealed_event_are_reported():
    row = sql("SELECT id, at, actor, kind, message_id, detail FROM herald.audit_events "
              "ORDER BY id DESC LIMIT 1")[0]
    eid = row[0]
    tamper("DELETE FROM herald.audit_events WHERE id = %s" % eid)
    problems = verify()
    assert any(p[0] == "event_missing" and p[3] == eid for p in problems), problems
    assert any(p[0] == "digest_mismatch" for p in problems), problems
    # Put it back exactly, without sealing it again.
    tamper("INSERT INTO herald.audit_events (id, at, actor, kind, message_id, detail) VALUES "
           "(%s, '%s', '%s', '%s', %s, $d$%s$d$)" % row, trigger="audit_events_seal")
    assert verify() == []
    # An event slipped in without a seal.
    tamper("INSERT INTO herald.audit_events (actor, kind, detail) VALUES ('ghost', 'forged', '{}')",
           trigger="audit_events_seal")
    ghost = value("SELECT id FROM herald.audit_events WHERE actor = 'ghost'")
    assert ("event_unsealed", None, None, ghost) in verify(), verify()
    assert ctl("audit", "verify").returncode == 1
    tamper("DELETE FROM herald.audit_events WHERE id = %s" % ghost)
    assert verify() == []


def test_removing_the_last_link_of_a_chain_is_reported():
    link = sql("SELECT chain_id, seq, encode(prev_hash, 'hex'), encode(digest, 'hex'), "
               "encode(hash, 'hex'), event_ids, sealed_at FROM herald.audit_links "
               "ORDER BY sealed_at DESC LIMIT 1")[0]
    chain, seq = link[0], link[1]
    tamper("DELETE FROM herald.audit_links WHERE chain_id = %s AND seq = %s" % (chain, seq),
           table="audit_links", trigger="audit_links_append_only")
    problems = verify()
    assert ("head_mismatch", chain, seq, None) in problems, problems
    assert any(p[0] == "event_unsealed" for p in problems), problems
    tamper("INSERT INTO herald.audit_links VALUES (%s, %s, decode('%s', 'hex'), decode('%s', 'hex'), "
           "decode('%s', 'hex'), '%s', '%s')" % link, table="audit_links",
           trigger="audit_links_append_only")
    assert verify() == []


def test_intake_batch_rejects_a_batch_that_is_not_an_array():
    expect_error("SELECT * FROM herald.intake_batch('{\"ord\": 1}')", "must be a JSON array",
                 user=BROKER)
    assert intake([]) == []


def test_migrate_refuses_an_applied_migration_whose_checksum_changed():
    good = value("SELECT sha256 FROM herald.schema_migrations WHERE version = 1")
    sql("UPDATE herald.schema_migrations SET sha256 = repeat('0', 64) WHERE version = 1")
    try:
        r = ctl("db", "migrate")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "001_intake" in r.stderr and "refusing" in r.stderr, r.stderr
        assert ctl("db", "status").returncode == 1
    finally:
        sql("UPDATE herald.schema_migrations SET sha256 = '%s' WHERE version = 1" % good)
    assert ctl("db", "migrate").returncode == 0


def test_two_concurrent_migrations_of_a_fresh_database_apply_001_exactly_once():
    pg.sql("CREATE DATABASE herald_twin")
    procs = [subprocess.Popen([HERALDCTL, "--db", pg.url(dbname="herald_twin"), "db", "migrate"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _, _, rc in outs), outs
    assert sum(o.count("applied 001_intake") for o, _, _ in outs) == 1, outs
    # Every built-in migration is applied once (001 and whatever follows it).
    known = json.loads(ctl("db", "status", "--json", db="herald_twin").stdout)["migrations"]
    assert all(m["state"] == "applied" for m in known), known
    assert value("SELECT count(*) FROM herald.schema_migrations", db="herald_twin") == \
        str(len(known))


def test_a_failing_migration_is_rolled_back_completely():
    pg.sql("CREATE DATABASE herald_broken")
    # Something in the way: 001 creates herald.deliveries.
    pg.sql("CREATE SCHEMA herald; CREATE TABLE herald.deliveries (x int)", dbname="herald_broken")
    r = ctl("db", "migrate", db="herald_broken")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "001_intake.sql" in r.stderr and "already exists" in r.stderr, r.stderr
    assert "rolled back" in r.stderr, r.stderr
    assert value("SELECT count(*) FROM herald.schema_migrations", db="herald_broken") == "0"
    assert value("SELECT to_regclass('herald.messages') IS NULL", db="herald_broken") == "t"
    st = json.loads(ctl("db", "status", "--json", db="herald_broken").stdout)
    assert st["version"] == 0 and st["pending"][0] == 1, st
    assert st["pending"] == [m["version"] for m in st["migrations"]], st


def test_heraldctl_command_line_errors_exit_2_and_an_unreachable_database_exits_4():
    run = lambda *a: subprocess.run([HERALDCTL, *a], stdout=subprocess.PIPE,  # noqa: E731
                                    stderr=subprocess.PIPE, text=True, timeout=60)
    assert run("--help").returncode == 0
    assert "db migrate" in run("--help").stdout
    assert run("help", "audit", "verify").returncode == 0
    assert run("bogus").returncode == 2
    assert run("db").returncode == 2
    assert run("db", "migrate", "--bogus").returncode == 2
    assert run("db", "status", "extra").returncode == 2
    assert run().returncode == 2
    dead = "postgresql://postgres@127.0.0.1:%d/postgres" % free_port()  # nobody listens
    r = run("--db", dead, "db", "status")
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "cannot connect" in r.stderr
    r = subprocess.run([HERALDCTL, "audit", "verify"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60, env=dict(os.environ, HERALD_DATABASE_URL=dead))
    assert r.returncode == 4, (r.returncode, r.stderr)
    r = run("--db", "host=x password=hunter2 bogus", "db", "status")
    assert r.returncode == 2 and "hunter2" not in r.stderr + r.stdout, r.stderr


TESTS = [
    test_status_before_migrate_lists_001_pending,
    test_migrate_applies_001_once_and_second_run_is_up_to_date,
    test_login_roles_join_the_group_roles_the_migration_created,
    test_schema_has_the_tables_roles_and_eight_chain_heads,
    test_delivery_state_check_rejects_a_bogus_state_and_accepts_every_real_one,
    test_broker_intake_batch_stores_messages_deliveries_attachments_and_one_event_each,
    test_broker_duplicate_returns_the_original_and_writes_nothing,
    test_broker_cannot_write_any_table_directly,
    test_operator_reads_everything_but_cannot_call_intake,
    test_even_the_superuser_cannot_update_delete_or_truncate_the_audit_trail,
    test_audit_verify_is_empty_after_intake_and_heraldctl_says_intact,
    test_row_hash_is_the_documented_canonical_text,
    test_concurrent_intake_seals_into_free_chains_and_stays_verifiable,
    test_tampering_with_an_event_is_reported_and_heraldctl_exits_1,
    test_a_deleted_event_and_an_unsealed_event_are_reported,
    test_removing_the_last_link_of_a_chain_is_reported,
    test_intake_batch_rejects_a_batch_that_is_not_an_array,
    test_migrate_refuses_an_applied_migration_whose_checksum_changed,
    test_two_concurrent_migrations_of_a_fresh_database_apply_001_exactly_once,
    test_a_failing_migration_is_rolled_back_completely,
    test_heraldctl_command_line_errors_exit_2_and_an_unreachable_database_exits_4,
]


def start(cluster, tmpdir):
    global pg, tmp
    pg, tmp = cluster, tmpdir
    pg.sql("CREATE DATABASE %s" % DB)


if __name__ == "__main__":
    sys.exit(run_suite("02", TESTS, start, needs=[HERALDCTL], first_is_setup=False))
