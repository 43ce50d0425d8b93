#!/usr/bin/python3
"""
NAME
    04-approvals-sql - the organisation, approval requests and the
    approvers' functions of sql/003_approvals.sql against a real
    PostgreSQL 15, named after the policy clauses they check

DESCRIPTION
    Starts a private cluster (pgtest.PrivatePostgres), migrates it with
    heraldctl, imports an organisation through herald.org_import() as an
    operator, creates one login role per person (CREATE ROLE x LOGIN IN
    ROLE herald_approver) and stores messages through
    herald.intake_batch() as a broker. Then, as each person's own role:
    A1 general messages are queued at once; A2.1 an important message is
    held with a level 1 request for the sender's department head, major
    adds level 2 for senior leadership, the right head's approval
    releases it (deliveries queued, NOTIFY herald_released heard by a
    LISTENing session), the wrong head, the sender, an employee and a
    senior before level 1 are refused with the exact messages even in
    plain SQL, and nobody can write the tables directly; a rejection
    needs a reason and tells the sender; A2.2 approval_tick expires
    overdue requests and tells the sender, and reminds once; A3 bulk
    needs only the head, bulk + important both sets. Also: org_import
    twice neither duplicates nor misses a change, an unknown sender is
    refused alone, every notification is a queued delivery with its
    audit event, and the audit trail verifies at the end.

    Environment: HERALD_BUILD_DIR (heraldctl in ctl/), HERALD_SOURCE_DIR,
    PYTHONPATH=tests/support. Prints "N passed, M failed" last.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from pgtest import PSQL, run_suite, jlit  # noqa: E402

BUILD_DIR = os.environ.get("HERALD_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
HERALDCTL = os.path.join(BUILD_DIR, "ctl", "heraldctl")
DB = "herald"
BROKER = "broker_ap"
OPERATOR = "operator_ap"
STRANGER = "stranger_ap"  # an approver login role nobody registered as staff

# Sales: carol heads it, alice and bob work there. Engineering: dave
# heads it (and is senior leadership too), gina supervises. Board: erin
# and frank are senior leadership. henry leaves at the second import.
ORG = {
    "departments": [{"name": "Sales", "head": "carol@example.com"},
                    {"name": "Engineering", "head": "dave@example.com"},
                    {"name": "Board", "head": None}],
    "staff": [
        {"address": "alice@example.com", "name": "Alice", "department": "Sales",
         "roles": ["employee"], "db_role": "alice_ap"},
        {"address": "bob@example.com", "name": "Bob", "department": "Sales",
         "roles": ["employee"], "db_role": "bob_ap"},
        {"address": "Carol@Example.com", "name": "Carol", "department": "Sales",
         "roles": ["employee", "dept_head"], "db_role": "carol_ap",
         "notify_channel": "im", "notify_address": "sales-heads"},
        {"address": "dave@example.com", "name": "Dave", "department": "Engineering",
         "roles": ["dept_head", "senior"], "db_role": "dave_ap"},
        {"address": "erin@example.com", "name": "Erin", "department": "Board",
         "roles": ["senior"], "db_role": "erin_ap"},
        {"address": "frank@example.com", "name": "Frank", "department": "Board",
         "roles": ["senior"], "db_role": "frank_ap"},
        {"address": "gina@example.com", "name": "Gina", "department": "Engineering",
         "roles": ["employee", "supervisor"], "db_role": "gina_ap"},
        {"address": "henry@example.com", "name": "Henry", "department": "Sales",
         "roles": ["employee"], "db_role": None},
    ],
}
ROLE = {s["address"].lower(): s["db_role"] for s in ORG["staff"]}

pg = None
_ikey = [0]


# ---------------------------------------------------------------- helpers
def sql(query, user=None):
    return pg.sql(query, user=user, dbname=DB)


def value(query, user=None):
    return pg.value(query, user=user, dbname=DB)


def expect_error(query, fragment, user=None):
    return pg.expect_error(query, fragment, user=user, dbname=DB)


def entry(sender="alice@example.com", klass="general", to=None, **kw):
    _ikey[0] += 1
    e = {"ord": 1, "app": "aptest", "ikey": "a-%d" % _ikey[0], "channel": "email",
         "sender": sender, "class": klass, "state": "queued" if klass == "general" else "held",
         "subject": "subject %d" % _ikey[0], "body": "body", "html": None, "cc_reason": None,
         "purpose": None, "reply_by": None, "flags": [], "tags": {},
         "to": to if to is not None else ["to%d@example.org" % _ikey[0]], "cc": [],
         "attachments": [], "bulk": None, "important": klass == "important", "major": False,
         "approval_due_s": 172800, "reminder_s": None}
    e.update(kw)
    return e


def intake_rows(entries):
    for i, e in enumerate(entries):
        e["ord"] = i + 1
    rows = sql("SELECT ord, message_id, class, state, duplicate, error "
               "FROM herald.intake_batch(%s)" % jlit(entries), user=BROKER)
    return [{"ord": int(r[0]), "id": int(r[1]) if r[1] else None, "class": r[2], "state": r[3],
             "duplicate": r[4] == "t", "error": r[5]} for r in rows]


def intake(entries):
    rows = intake_rows(entries)
    assert all(r["error"] is None for r in rows), rows
    return [r["id"] for r in rows]


def as_(person):
    return ROLE[person + "@example.com"]


def approve(mid, person, comment=None):
    rows = sql("SELECT request_id, kind, level, released FROM herald.approve(%d, %s)"
               % (mid, "NULL" if comment is None else "$c$%s$c$" % comment), user=as_(person))
    return [(int(r[0]), r[1], int(r[2]), r[3] == "t") for r in rows]


def reject_sql(mid, reason):
    return "SELECT request_id FROM herald.reject(%d, %s)" % (
        mid, "NULL" if reason is None else "$c$%s$c$" % reason)


def requests_of(mid):
    rows = sql("SELECT kind, level, approver_role, department, state, decided_by, comment, "
               "round(extract(epoch FROM due_at - created_at)), reminded_at IS NOT NULL "
               "FROM herald.approval_requests WHERE message_id = %d ORDER BY kind, level" % mid)
    return [{"kind": r[0], "level": int(r[1]), "role": r[2], "department": r[3], "state": r[4],
             "decided_by": r[5], "comment": r[6], "due_s": int(float(r[7])),
             "reminded": r[8] == "t"} for r in rows]


def delivery_states(mid):
    return [r[0] for r in sql("SELECT state FROM herald.deliveries WHERE message_id = %d "
                              "ORDER BY id" % mid)]


def notes_about(mid, reason=None):
    """Notification messages Herald stored about message mid."""
    rows = sql("SELECT m.id, m.sender, m.channel, m.subject, m.body, d.recipient, d.state, "
               "m.tags->>'reason' FROM herald.messages AS m "
               "JOIN herald.deliveries AS d ON d.message_id = m.id "
               "WHERE m.app = 'herald' AND (m.tags->>'about')::bigint = %d %s ORDER BY m.id, d.id"
               % (mid, "AND m.tags->>'reason' = '%s'" % reason if reason else ""))
    return [{"id": int(r[0]), "sender": r[1], "channel": r[2], "subject": r[3], "body": r[4],
             "recipient": r[5], "state": r[6], "reason": r[7]} for r in rows]


def events(mid, kind=None):
    rows = sql("SELECT actor, kind, detail FROM herald.audit_events WHERE message_id = %d %s "
               "ORDER BY id" % (mid, "AND kind = '%s'" % kind if kind else ""))
    return [{"actor": r[0], "kind": r[1], "detail": json.loads(r[2])} for r in rows]


def tick():
    r = sql("SELECT expired, reminded FROM herald.approval_tick()", user=BROKER)[0]
    return int(r[0]), int(r[1])


def import_org(doc, user=OPERATOR):
    r = sql("SELECT departments, staff, senior FROM herald.org_import(%s)" % jlit(doc),
            user=user)[0]
    return tuple(int(x) for x in r)


def verify():
    return sql("SELECT problem, chain_id, seq, event_id FROM herald.audit_verify()")


# ------------------------------------------------------------------ tests
def test_migrate_applies_003_and_approvers_get_functions_not_tables():
    r = subprocess.run([HERALDCTL, "--db", pg.url(dbname=DB), "db", "migrate"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "applied 003_approvals" in r.stdout, r.stdout
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_broker" % BROKER)
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_operator" % OPERATOR)
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_approver" % STRANGER)
    for role in ROLE.values():
        if role:
            pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_approver" % role)
    tables = {r[0] for r in sql("SELECT table_name FROM information_schema.tables "
                                "WHERE table_schema = 'herald'")}
    assert tables >= {"departments", "staff", "approval_requests", "settings"}, tables
    assert value("SELECT value FROM herald.settings WHERE key = 'notify_from'") == "herald@localhost.localdomain"
    cols = [r[0] for r in sql("SELECT unnest(proargnames) FROM pg_proc "
                              "WHERE oid = 'herald.intake_batch(jsonb)'::regprocedure")]
    # 004 (policy) adds error_field, error_reason and findings after these.
    assert cols[:7] == ["batch", "ord", "message_id", "class", "state", "duplicate", "error"], cols
    for fn, who in (("herald.approve(bigint, text)", "herald_approver"),
                    ("herald.reject(bigint, text)", "herald_approver"),
                    ("herald.held_for_me(text, text, interval)", "herald_approver"),
                    ("herald.message_detail(bigint)", "herald_approver"),
                    ("herald.message_detail(bigint)", "herald_operator"),
                    ("herald.org_import(jsonb)", "herald_operator"),
                    ("herald.intake_batch(jsonb)", "herald_broker"),
                    ("herald.approval_tick()", "herald_broker")):
        assert value("SELECT has_function_privilege('%s', '%s', 'EXECUTE')" % (who, fn)) == "t", \
            (who, fn)
    for fn, who in (("herald.org_import(jsonb)", "herald_approver"),
                    ("herald.approve(bigint, text)", "herald_broker"),
                    ("herald.approve(bigint, text)", "herald_operator"),
                    ("herald.approval_tick()", "herald_approver"),
                    ("herald.intake_batch(jsonb)", "herald_approver"),
                    ("herald.notify(jsonb)", "herald_broker"),
                    ("herald.approve(bigint, text)", "public")):
        assert value("SELECT has_function_privilege('%s', '%s', 'EXECUTE')" % (who, fn)) == "f", \
            (who, fn)
    for who in ("herald_broker", "herald_operator", "herald_approver"):
        for t in ("departments", "staff", "approval_requests", "settings", "deliveries",
                  "messages", "audit_events"):
            for priv in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"):
                assert value("SELECT has_table_privilege('%s', 'herald.%s', '%s')"
                             % (who, t, priv)) == "f", (who, t, priv)


def test_org_import_twice_does_not_duplicate_and_updates_changed_rows():
    expect_error("SELECT * FROM herald.org_import(%s)" % jlit(ORG), "permission denied",
                 user=as_("carol"))
    assert import_org(ORG) == (3, 8, 3)
    staff = {r[0]: r[1:] for r in sql("SELECT address, department, roles, db_role, notify_channel, "
                                      "notify_address, active FROM herald.staff")}
    assert len(staff) == 8, staff
    assert staff["carol@example.com"] == ("Sales", "{employee,dept_head}", "carol_ap", "im",
                                          "sales-heads", "t"), staff
    assert staff["henry@example.com"] == ("Sales", "{employee}", None, "email", None, "t")
    assert sql("SELECT name, head FROM herald.departments ORDER BY name") == [
        ("Board", None), ("Engineering", "dave@example.com"), ("Sales", "carol@example.com")]
    stamp = dict(sql("SELECT address, updated_at FROM herald.staff"))

    second = json.loads(json.dumps(ORG))
    second["staff"] = [s for s in second["staff"] if s["address"] != "henry@example.com"]
    for s in second["staff"]:
        if s["address"] == "bob@example.com":
            s["name"] = "Robert"
            s["notify_channel"] = "im"
            s["notify_address"] = "bob-im"
    time.sleep(0.01)
    assert import_org(second) == (3, 7, 3)
    assert int(value("SELECT count(*) FROM herald.staff")) == 8, "henry must stay, inactive"
    assert int(value("SELECT count(*) FROM herald.departments")) == 3
    assert value("SELECT active FROM herald.staff WHERE address = 'henry@example.com'") == "f"
    assert sql("SELECT name, notify_channel, notify_address FROM herald.staff "
               "WHERE address = 'bob@example.com'") == [("Robert", "im", "bob-im")]
    after = dict(sql("SELECT address, updated_at FROM herald.staff"))
    assert after["bob@example.com"] != stamp["bob@example.com"]
    assert after["henry@example.com"] != stamp["henry@example.com"]
    assert after["alice@example.com"] == stamp["alice@example.com"], "unchanged row was rewritten"

    ev = [json.loads(d) for (d,) in sql("SELECT detail FROM herald.audit_events "
                                        "WHERE kind = 'org.imported' ORDER BY id")]
    assert len(ev) == 2, ev
    assert ev[1]["deactivated"] == ["henry@example.com"] and ev[1]["staff_changed"] == 1, ev[1]
    assert ev[0]["staff_added"] == 8, ev[0]
    actors = {a for (a,) in sql("SELECT actor FROM herald.audit_events WHERE kind = 'org.imported'")}
    assert actors == {"operator:" + OPERATOR}, actors

    # Refused documents write nothing.
    n = int(value("SELECT count(*) FROM herald.audit_events"))
    bad = json.loads(json.dumps(second))
    bad["staff"][0]["roles"] = ["employee", "king"]
    expect_error("SELECT * FROM herald.org_import(%s)" % jlit(bad), "unknown role", user=OPERATOR)
    bad = {"departments": [{"name": "Ops", "head": "nobody@example.com"}], "staff": second["staff"]}
    expect_error("SELECT * FROM herald.org_import(%s)" % jlit(bad),
                 "the head of Ops, nobody@example.com, is not staff", user=OPERATOR)
    bad = {"departments": [], "staff": second["staff"] + [dict(second["staff"][0])]}
    expect_error("SELECT * FROM herald.org_import(%s)" % jlit(bad), "listed twice", user=OPERATOR)
    assert int(value("SELECT count(*) FROM herald.audit_events")) == n


def test_A1_general_message_is_queued_at_once_without_any_request():
    (mid,) = intake([entry()])
    assert delivery_states(mid) == ["queued"]
    assert requests_of(mid) == []
    assert [e["kind"] for e in events(mid)] == ["message.accepted"]
    assert value("SELECT count(*) FROM herald.messages WHERE app = 'herald' "
                 "AND (tags->>'about')::bigint = %d" % mid) == "0"


def test_unknown_sender_gets_unknown_sender_and_nothing_is_written_for_it():
    before = {t: int(value("SELECT count(*) FROM herald.%s" % t))
              for t in ("messages", "deliveries", "approval_requests", "audit_events")}
    rows = intake_rows([entry(), entry("mallory@evil.example", "important"),
                        entry("henry@example.com"), entry("ALICE@example.com", "important")])
    assert [(r["ord"], r["error"], r["duplicate"]) for r in rows] == [
        (1, None, False), (2, "unknown_sender", False), (3, "unknown_sender", False),
        (4, None, False)], rows
    assert rows[1]["id"] is None and rows[1]["state"] is None and rows[1]["class"] == "important"
    assert rows[0]["state"] == "queued" and rows[3]["state"] == "held", rows
    after = {t: int(value("SELECT count(*) FROM herald.%s" % t))
             for t in ("messages", "deliveries", "approval_requests", "audit_events")}
    # Two messages, one request, and the notification to carol.
    assert after["messages"] - before["messages"] == 3, (before, after)
    assert after["deliveries"] - before["deliveries"] == 3
    assert after["approval_requests"] - before["approval_requests"] == 1
    assert value("SELECT count(*) FROM herald.messages WHERE sender IN "
                 "('mallory@evil.example', 'henry@example.com')") == "0"


def test_A2_1_important_message_is_held_with_a_level_1_request_for_the_senders_head():
    (mid,) = intake([entry(klass="important", state="queued", subject="Quarterly numbers")])
    assert delivery_states(mid) == ["held"], "held whatever state the broker asked for"
    req = requests_of(mid)
    assert [(r["kind"], r["level"], r["role"], r["department"], r["state"]) for r in req] == \
        [("important", 1, "dept_head", "Sales", "pending")], req
    assert req[0]["due_s"] == 172800
    ev = events(mid, "approval.requested")
    assert len(ev) == 1 and ev[0]["actor"] == "app:aptest", ev
    assert ev[0]["detail"]["level"] == 1 and ev[0]["detail"]["department"] == "Sales"
    notes = notes_about(mid)
    assert len(notes) == 1, notes
    n = notes[0]
    assert (n["sender"], n["channel"], n["recipient"], n["state"], n["reason"]) == \
        ("herald@localhost.localdomain", "im", "sales-heads", "queued", "approval.requested"), n
    assert "heraldctl approve %d" % mid in n["body"] and "Quarterly numbers" in n["body"], n
    assert "head of Sales" in n["body"]


def test_A2_1_major_adds_level_2_for_senior_leadership_told_after_level_1():
    (mid,) = intake([entry(klass="important", major=True)])
    req = requests_of(mid)
    assert [(r["kind"], r["level"], r["role"]) for r in req] == \
        [("important", 1, "dept_head"), ("important", 2, "senior")], req
    assert [n["recipient"] for n in notes_about(mid)] == ["sales-heads"], "seniors not yet"
    got = approve(mid, "carol", "fine by Sales")
    assert [(k, lv, rel) for _, k, lv, rel in got] == [("important", 1, False)], got
    assert delivery_states(mid) == ["held"]
    told = sorted(n["recipient"] for n in notes_about(mid) if n["recipient"] != "sales-heads")
    assert told == ["dave@example.com", "erin@example.com", "frank@example.com"], told
    for who in ("carol", "bob"):
        expect_error("SELECT * FROM herald.approve(%d)" % mid, "you are not senior leadership",
                     user=as_(who))
    got = approve(mid, "erin")
    assert [(k, lv, rel) for _, k, lv, rel in got] == [("important", 2, True)], got
    assert delivery_states(mid) == ["queued"]
    req = requests_of(mid)
    assert [(r["state"], r["decided_by"], r["comment"]) for r in req] == [
        ("approved", "carol@example.com", "fine by Sales"), ("approved", "erin@example.com", None)]


def test_A2_1_a_heads_own_important_message_is_escalated_to_senior_leadership():
    # Carol heads Sales: nobody in Sales may approve her message, so its
    # level-1 request goes to senior leadership, and says why.
    (mid,) = intake([entry(sender="carol@example.com", klass="important", subject="Sales plan")])
    req = requests_of(mid)
    assert [(r["kind"], r["level"], r["role"], r["department"]) for r in req] == \
        [("important", 1, "senior", "Sales")], req
    assert value("SELECT escalated FROM herald.approval_requests WHERE message_id = %d"
                 % mid) == "the sender heads Sales"
    kinds = [e["kind"] for e in events(mid)]
    assert kinds.index("approval.requested") < kinds.index("approval.escalated"), kinds
    ev = events(mid, "approval.escalated")[0]["detail"]
    assert ev["reason"] == "the sender heads Sales" and ev["approver_role"] == "senior", ev
    told = sorted(n["recipient"] for n in notes_about(mid))
    assert told == ["dave@example.com", "erin@example.com", "frank@example.com"], told
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "cannot approve your own message",
                 user=as_("carol"))
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "you are not senior leadership",
                 user=as_("alice"))
    got = approve(mid, "erin", "ok for the board")
    assert [(k, lv, rel) for _, k, lv, rel in got] == [("important", 1, True)], got
    assert delivery_states(mid) == ["queued"]


def test_A2_1_a_department_without_a_head_goes_to_two_different_seniors_when_major():
    # The Board has no head: Erin's major message needs one senior for
    # level 1 and another for level 2, and never Erin herself.
    (mid,) = intake([entry(sender="erin@example.com", klass="important", major=True)])
    req = requests_of(mid)
    assert [(r["level"], r["role"], r["department"]) for r in req] == \
        [(1, "senior", "Board"), (2, "senior", "Board")], req
    assert value("SELECT escalated FROM herald.approval_requests WHERE message_id = %d "
                 "AND level = 1" % mid) == "Board has no active head"
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "cannot approve your own message",
                 user=as_("erin"))
    got = approve(mid, "frank")
    assert [(lv, rel) for _, _, lv, rel in got] == [(1, False)], got
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "level 2 needs somebody else",
                 user=as_("frank"))
    got = approve(mid, "dave")
    assert [(lv, rel) for _, _, lv, rel in got] == [(2, True)], got
    assert delivery_states(mid) == ["queued"]
    # An ordinary request of a department with a head is not escalated.
    (other,) = intake([entry(klass="important")])
    assert [(r["role"]) for r in requests_of(other)] == ["dept_head"]
    assert value("SELECT escalated FROM herald.approval_requests WHERE message_id = %d"
                 % other) is None


def test_A2_1_escalations_of_one_batch_are_one_update_and_one_audit_link():
    mids = intake([entry(sender="carol@example.com", klass="important"),
                   entry(sender="erin@example.com", klass="important", major=True),
                   entry(sender="bob@example.com", klass="important")])
    # One link holds the escalations of the batch (009), however many.
    links = value("SELECT count(DISTINCT (l.chain_id, l.seq)) FROM herald.audit_links AS l "
                  "JOIN herald.audit_events AS e ON e.id = ANY (l.event_ids) "
                  "WHERE e.kind = 'approval.escalated' AND e.message_id IN (%s)"
                  % ",".join(str(m) for m in mids))
    assert int(links) == 1, links
    esc = [e for m in mids for e in events(m, "approval.escalated")]
    assert sorted(e["detail"]["reason"] for e in esc) == \
        ["Board has no active head", "the sender heads Sales"], esc
    assert [r["role"] for r in requests_of(mids[2])] == ["dept_head"]
    assert verify() == []


def test_A2_1_approval_by_the_right_head_releases_and_notifies_herald_released():
    (mid,) = intake([entry(klass="important", to=["x@example.org", "y@example.org"])])
    listener = subprocess.Popen(
        [PSQL, "-X", "-d", pg.url(dbname=DB)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        listener.stdin.write("LISTEN herald_released;\nSELECT 'listening';\n")
        listener.stdin.flush()
        line = ""
        deadline = time.monotonic() + 10
        while "listening" not in line:
            assert time.monotonic() < deadline, "listener never started"
            line = listener.stdout.readline()
        before = time.time()
        got = approve(mid, "carol", "ok")
        assert got[0][3] is True, got
        time.sleep(0.2)
        out, _ = listener.communicate(input="SELECT 'done';\n", timeout=10)
    finally:
        if listener.poll() is None:
            listener.kill()
    assert 'notification "herald_released" with payload "%d"' % mid in out, out
    assert delivery_states(mid) == ["queued", "queued"]
    due = float(value("SELECT max(extract(epoch FROM next_attempt_at)) FROM herald.deliveries "
                      "WHERE message_id = %d" % mid))
    assert abs(due - before) < 5, (due, before)
    kinds = [e["kind"] for e in events(mid)]
    assert kinds[-2:] == ["approval.approved", "message.released"], kinds
    ev = events(mid, "approval.approved")[0]
    assert ev["actor"] == "approver:carol_ap" and ev["detail"]["by"] == "carol@example.com", ev
    assert ev["detail"]["comment"] == "ok"
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "is not awaiting approval",
                 user=as_("carol"))


def test_A2_1_wrong_head_sender_employee_and_senior_before_level_1_are_refused():
    (mid,) = intake([entry(klass="important", major=True)])
    (imp,) = intake([entry(klass="important")])
    (own,) = intake([entry("carol@example.com", "important")])
    (plain,) = intake([entry()])
    before = int(value("SELECT count(*) FROM herald.audit_events"))
    # dave heads Engineering (and, being senior, may act on level 2 only).
    e = expect_error("SELECT * FROM herald.approve(%d)" % imp, "you are not the head of Sales",
                     user=as_("dave"))
    assert "42501" in pg.psql(["-v", "VERBOSITY=verbose",
                               "-c", "SELECT * FROM herald.approve(%d)" % imp],
                              user=as_("dave"), dbname=DB, check=False).stderr, e
    expect_error(reject_sql(imp, "no"), "you are not the head of Sales", user=as_("dave"))
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "level 1 not yet approved",
                 user=as_("dave"))
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "you are not the head of Sales",
                 user=as_("bob"))
    expect_error("SELECT * FROM herald.approve(%d)" % imp, "you are not the head of Sales",
                 user=as_("erin"))
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "level 1 not yet approved",
                 user=as_("erin"))
    expect_error(reject_sql(mid, "no"), "level 1 not yet approved", user=as_("erin"))
    expect_error("SELECT * FROM herald.approve(%d)" % own, "you cannot approve your own message",
                 user=as_("carol"))
    expect_error("SELECT * FROM herald.approve(%d)" % plain, "is not held for approval",
                 user=as_("carol"))
    expect_error("SELECT * FROM herald.approve(999999999)", "does not exist", user=as_("carol"))
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "you are not registered as staff",
                 user=STRANGER)
    # Plain SQL as the approvers' roles changes nothing either.
    for who in ("carol", "erin"):
        role = as_(who)
        expect_error("UPDATE herald.deliveries SET state = 'queued' WHERE message_id = %d" % mid,
                     "permission denied", user=role)
        expect_error("UPDATE herald.approval_requests SET state = 'approved' "
                     "WHERE message_id = %d" % mid, "permission denied", user=role)
        expect_error("INSERT INTO herald.approval_requests (message_id, kind, level, "
                     "approver_role, due_at) VALUES (%d, 'bulk', 1, 'dept_head', now())" % mid,
                     "permission denied", user=role)
        expect_error("UPDATE herald.staff SET roles = '{senior}'", "permission denied", user=role)
        expect_error("INSERT INTO herald.audit_events (actor, kind) VALUES ('x', 'y')",
                     "permission denied", user=role)
        expect_error("SELECT * FROM herald.approval_tick()", "permission denied", user=role)
        expect_error("SELECT * FROM herald.notify('[]')", "permission denied", user=role)
        expect_error("SELECT * FROM herald.decidable(NULL, %d, 'approve')" % mid,
                     "permission denied", user=role)
    assert int(value("SELECT count(*) FROM herald.audit_events")) == before
    assert [r["state"] for r in requests_of(mid)] == ["pending", "pending"]
    assert delivery_states(mid) == ["held"]


def test_A2_1_the_level_1_approver_cannot_also_approve_level_2():
    # dave heads Engineering and is senior leadership.
    (mid,) = intake([entry("gina@example.com", "important", major=True)])
    assert approve(mid, "dave")[0][1:] == ("important", 1, False)
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "level 2 needs somebody else",
                 user=as_("dave"))
    assert approve(mid, "frank")[0][1:] == ("important", 2, True)


def test_A2_1_reject_needs_a_reason_marks_deliveries_and_tells_the_sender():
    (mid,) = intake([entry(klass="important", major=True, subject="Price list")])
    for reason in (None, "", "   "):
        expect_error(reject_sql(mid, reason), "a rejection needs a reason", user=as_("carol"))
    expect_error(reject_sql(mid, "no"), "you are not the head of Sales", user=as_("bob"))
    expect_error(reject_sql(mid, "no"), "you cannot reject your own message", user=as_("alice"))
    rows = sql(reject_sql(mid, "prices are confidential"), user=as_("carol"))
    assert len(rows) == 1
    req = requests_of(mid)
    assert [(r["level"], r["state"], r["decided_by"]) for r in req] == [
        (1, "rejected", "carol@example.com"), (2, "cancelled", None)], req
    assert req[0]["comment"] == "prices are confidential"
    assert delivery_states(mid) == ["rejected_by_approver"]
    kinds = [e["kind"] for e in events(mid)]
    assert kinds[-3:] == ["approval.rejected", "approval.cancelled", "message.rejected"], kinds
    told = notes_about(mid, "message.rejected")
    assert len(told) == 1 and told[0]["recipient"] == "alice@example.com", told
    assert "prices are confidential" in told[0]["body"] and "Price list" in told[0]["body"]
    assert told[0]["state"] == "queued"
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "is not awaiting approval",
                 user=as_("carol"))


def test_A2_2_approval_tick_expires_overdue_requests_and_tells_the_sender():
    (mid, later) = intake([entry(klass="important", major=True, approval_due_s=1),
                           entry(klass="important")])
    time.sleep(1.3)
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "expired at", user=as_("carol"))
    held = sql("SELECT message_id FROM herald.held_for_me()", user=as_("carol"))
    assert (str(mid),) not in held and (str(later),) in held, held
    expired, _ = tick()
    assert expired == 2, expired
    req = requests_of(mid)
    assert [(r["level"], r["state"], r["decided_by"]) for r in req] == \
        [(1, "expired", None), (2, "expired", None)], req
    assert delivery_states(mid) == ["expired"]
    assert [r["state"] for r in requests_of(later)] == ["pending"]
    kinds = [e["kind"] for e in events(mid)]
    assert kinds[-3:] == ["approval.expired", "approval.expired", "message.expired"], kinds
    told = notes_about(mid, "message.expired")
    assert len(told) == 1 and told[0]["recipient"] == "alice@example.com", told
    assert "not approved in time" in told[0]["body"] and "head of Sales" in told[0]["body"]
    assert tick()[0] == 0
    assert len(notes_about(mid, "message.expired")) == 1


def test_A2_2_reminders_are_sent_once_to_who_can_act_now():
    (mid,) = intake([entry(klass="important", major=True, reminder_s=1)])
    time.sleep(1.2)
    _, reminded = tick()
    assert reminded == 1, "level 2 cannot be acted on yet"
    rem = notes_about(mid, "approval.reminder")
    assert [n["recipient"] for n in rem] == ["sales-heads"], rem
    assert "Reminder" in rem[0]["subject"]
    assert tick()[1] == 0
    assert len(notes_about(mid, "approval.reminder")) == 1
    assert [r["reminded"] for r in requests_of(mid)] == [True, False]
    approve(mid, "carol")
    assert tick()[1] == 1  # now level 2 is actionable and past remind_at
    assert sorted(n["recipient"] for n in notes_about(mid, "approval.reminder")) == \
        ["dave@example.com", "erin@example.com", "frank@example.com", "sales-heads"]
    assert len(events(mid, "approval.reminded")) == 2


def test_A3_bulk_without_important_needs_only_the_head():
    app = {"purpose": "launch", "audience": "customers", "recipient_count": 3,
           "summary": "new catalogue"}
    (mid,) = intake([entry(klass="bulk", bulk=app, important=False,
                           to=["c1@example.org", "c2@example.org", "c3@example.org"])])
    req = requests_of(mid)
    assert [(r["kind"], r["level"], r["role"]) for r in req] == [("bulk", 1, "dept_head")], req
    expect_error("SELECT * FROM herald.approve(%d)" % mid, "you are not the head of Sales",
                 user=as_("erin"))
    got = approve(mid, "carol")
    assert got[0][1:] == ("bulk", 1, True), got
    assert delivery_states(mid) == ["queued"] * 3


def test_A3_bulk_and_important_need_both_sets_of_approvals():
    app = {"purpose": "p", "audience": "a", "recipient_count": 2, "summary": "s"}
    (mid,) = intake([entry(klass="bulk", bulk=app, important=True, major=True,
                           to=["c1@example.org", "c2@example.org"])])
    req = requests_of(mid)
    assert [(r["kind"], r["level"], r["role"]) for r in req] == [
        ("bulk", 1, "dept_head"), ("important", 1, "dept_head"), ("important", 2, "senior")], req
    notes = notes_about(mid)
    assert len(notes) == 1 and "bulk level 1" in notes[0]["body"] \
        and "important level 1" in notes[0]["body"], notes
    got = approve(mid, "carol")
    assert sorted((k, lv, rel) for _, k, lv, rel in got) == \
        [("bulk", 1, False), ("important", 1, False)], got
    assert delivery_states(mid) == ["held", "held"]
    got = approve(mid, "frank")
    assert [(k, lv, rel) for _, k, lv, rel in got] == [("important", 2, True)], got
    assert delivery_states(mid) == ["queued", "queued"]


def test_one_approval_is_sealed_in_one_audit_link_with_its_events_in_order():
    # 005_approve_fast writes every event of an approval in one statement:
    # one link per approval, request events by request id, release last.
    app = {"purpose": "p", "audience": "a", "recipient_count": 3, "summary": "s"}
    (mid,) = intake([entry(klass="bulk", bulk=app, important=True,
                           to=["r1@example.org", "r2@example.org", "r3@example.org"])])
    req_ids = [int(r) for (r,) in sql("SELECT id FROM herald.approval_requests "
                                      "WHERE message_id = %d ORDER BY id" % mid)]
    assert len(req_ids) == 2, req_ids
    links_before = int(value("SELECT count(*) FROM herald.audit_links"))
    got = approve(mid, "carol", "both")
    assert [(rid, rel) for rid, _, _, rel in got] == [(req_ids[0], True), (req_ids[1], True)], got
    assert int(value("SELECT count(*) FROM herald.audit_links")) == links_before + 1
    rows = sql("SELECT e.id, e.kind, e.detail, l.event_ids FROM herald.audit_events AS e "
               "JOIN herald.audit_links AS l ON e.id = ANY (l.event_ids) "
               "WHERE e.message_id = %d AND e.kind IN ('approval.approved', 'message.released') "
               "ORDER BY e.id" % mid)
    assert [r[1] for r in rows] == ["approval.approved", "approval.approved",
                                    "message.released"], rows
    assert len({r[3] for r in rows}) == 1, "one link holds all three"
    assert rows[0][3] == "{%s}" % ",".join(r[0] for r in rows), rows
    details = [json.loads(r[2]) for r in rows]
    assert [d.get("request_id") for d in details[:2]] == req_ids, details
    assert all(d["by"] == "carol@example.com" and d["comment"] == "both" for d in details[:2])
    assert details[2] == {"deliveries": 3, "by": "carol@example.com"}, details[2]
    assert delivery_states(mid) == ["queued"] * 3
    assert verify() == []


def test_an_approval_reads_its_own_rows_by_key_not_every_pending_request_or_held_delivery():
    # Approvers are busiest when the backlog is longest: an approval must
    # not read the partial indexes of every pending request and held
    # delivery. auto_explain shows the plans approve() really ran, in the
    # approver's own session (loaded for that role only, then removed).
    mids = intake([entry(klass="important") for _ in range(300)])
    role = as_("carol")
    sql("ALTER ROLE %s SET session_preload_libraries = 'auto_explain'" % role)
    for setting, v in (("log_min_duration", "0"), ("log_nested_statements", "on"),
                       ("log_level", "notice")):
        sql("ALTER ROLE %s SET auto_explain.%s = '%s'" % (role, setting, v))
    try:
        out = pg.psql(["-f", "-"], user=role, dbname=DB, input=(
            "SET client_min_messages = notice;\n"
            "SELECT released FROM herald.approve(%d);\n"
            "SELECT released FROM herald.approve(%d);\n" % (mids[0], mids[1]))).stderr
    finally:
        sql("ALTER ROLE %s RESET ALL" % role)
    assert "deliveries_message_id_idx" in out, out
    assert "approval_requests_pending_due_idx" not in out, out
    assert "deliveries_held_idx" not in out, out
    assert delivery_states(mids[0]) == ["queued"] and delivery_states(mids[1]) == ["queued"]


def test_held_for_me_lists_only_what_the_caller_can_act_on_now():
    (imp, maj) = intake([entry("bob@example.com", "important"),
                         entry("bob@example.com", "important", major=True)])
    (eng,) = intake([entry("gina@example.com", "important")])

    def held(person, args=""):
        return {(int(r[0]), r[7], int(r[8])) for r in
                sql("SELECT * FROM herald.held_for_me(%s)" % args, user=as_(person))}

    carol = held("carol")
    assert {(imp, "important", 1), (maj, "important", 1)} <= carol, carol
    assert all(m != eng for m, _, _ in carol)
    assert all(m != maj for m, _, _ in held("erin")), "level 2 before level 1"
    assert (eng, "important", 1) in held("dave")
    assert held("alice") == set() and held("bob") == set()
    assert {m for m, _, _ in held("carol", "'Engineering'")} == set()
    assert {(imp, "important", 1)} <= held("carol", "'Sales', 'important'")
    assert held("carol", "NULL, NULL, interval '1 hour'") == set()
    approve(maj, "carol")
    assert (maj, "important", 2) in held("erin")
    row = sql("SELECT * FROM herald.held_for_me() WHERE message_id = %d" % maj, user=as_("erin"))
    assert row[0][1:7] == ("important", "email", "bob@example.com", "Sales",
                           row[0][5], "1"), row
    expect_error("SELECT * FROM herald.held_for_me()", "not registered as staff", user=STRANGER)


def test_message_detail_for_approvers_supervisors_and_operators_only():
    app = {"purpose": "launch", "audience": "all", "recipient_count": 2, "summary": "sum"}
    (mid,) = intake([entry(klass="bulk", bulk=app, important=True, subject="Detail me",
                           to=["d1@example.org", "d2@example.org"],
                           attachments=[{"name": "a.txt", "type": "text/plain",
                                         "data": "aGVsbG8="}])])
    d = json.loads(value("SELECT herald.message_detail(%d)" % mid, user=as_("carol")))
    assert d["message"]["subject"] == "Detail me" and d["message"]["department"] == "Sales", d
    assert d["attachments"] == [{"name": "a.txt", "type": "text/plain", "size": 5}], d
    assert d["bulk_application"]["summary"] == "sum"
    assert [(a["kind"], a["level"], a["approver_role"], a["state"]) for a in d["approvals"]] == \
        [("bulk", 1, "dept_head", "pending"), ("important", 1, "dept_head", "pending")], d
    assert d["deliveries"] == {"held": 2} and d["recipients"]["to_count"] == 2, d
    for who in ("bob", "dave", "erin"):
        expect_error("SELECT herald.message_detail(%d)" % mid, "you may not see message",
                     user=as_(who))
    assert json.loads(value("SELECT herald.message_detail(%d)" % mid,
                            user=as_("gina")))["message"]["id"] == mid
    assert json.loads(value("SELECT herald.message_detail(%d)" % mid,
                            user=OPERATOR))["message"]["id"] == mid
    approve(mid, "carol", "go")
    d = json.loads(value("SELECT herald.message_detail(%d)" % mid, user=as_("carol")))
    assert {a["decided_by"] for a in d["approvals"]} == {"carol@example.com"}
    assert d["deliveries"] == {"queued": 2}


def test_a_duplicate_of_an_important_message_writes_nothing_more():
    first = entry(klass="important")
    (mid,) = intake([first])
    n = {t: int(value("SELECT count(*) FROM herald.%s" % t))
         for t in ("messages", "approval_requests", "audit_events")}
    again = intake_rows([dict(first)])
    assert again == [{"ord": 1, "id": mid, "class": "important", "state": "held",
                      "duplicate": True, "error": None}], again
    assert {t: int(value("SELECT count(*) FROM herald.%s" % t)) for t in n} == n


def test_notifications_are_queued_deliveries_with_audit_events_and_claimable():
    rows = sql("SELECT m.id, m.sender, m.class, m.initial_state, "
               "(SELECT count(*) FROM herald.deliveries AS d WHERE d.message_id = m.id), "
               "(SELECT count(*) FROM herald.audit_events AS e WHERE e.message_id = m.id "
               " AND e.kind = 'message.accepted' AND e.actor = 'app:herald') "
               "FROM herald.messages AS m WHERE m.app = 'herald'")
    assert len(rows) >= 10, rows
    assert all(r[1:] == ("herald@localhost.localdomain", "general", "queued", "1", "1") for r in rows), rows
    ids = {int(r[0]) for r in rows}
    claimed = sql("SELECT message_id FROM herald.claim_deliveries('b', '{email,im}', 10000, 60000)",
                  user=BROKER)
    assert ids <= {int(m) for (m,) in claimed}


def test_the_audit_trail_verifies_after_all_of_it():
    kinds = {k for (k,) in sql("SELECT DISTINCT kind FROM herald.audit_events")}
    assert kinds >= {"org.imported", "approval.requested", "approval.approved",
                     "approval.rejected", "approval.cancelled", "approval.expired",
                     "approval.reminded", "message.released", "message.rejected",
                     "message.expired"}, kinds
    assert verify() == []


TESTS = [
    test_migrate_applies_003_and_approvers_get_functions_not_tables,
    test_org_import_twice_does_not_duplicate_and_updates_changed_rows,
    test_A1_general_message_is_queued_at_once_without_any_request,
    test_unknown_sender_gets_unknown_sender_and_nothing_is_written_for_it,
    test_A2_1_important_message_is_held_with_a_level_1_request_for_the_senders_head,
    test_A2_1_major_adds_level_2_for_senior_leadership_told_after_level_1,
    test_A2_1_a_heads_own_important_message_is_escalated_to_senior_leadership,
    test_A2_1_a_department_without_a_head_goes_to_two_different_seniors_when_major,
    test_A2_1_escalations_of_one_batch_are_one_update_and_one_audit_link,
    test_A2_1_approval_by_the_right_head_releases_and_notifies_herald_released,
    test_A2_1_wrong_head_sender_employee_and_senior_before_level_1_are_refused,
    test_A2_1_the_level_1_approver_cannot_also_approve_level_2,
    test_A2_1_reject_needs_a_reason_marks_deliveries_and_tells_the_sender,
    test_A2_2_approval_tick_expires_overdue_requests_and_tells_the_sender,
    test_A2_2_reminders_are_sent_once_to_who_can_act_now,
    test_A3_bulk_without_important_needs_only_the_head,
    test_A3_bulk_and_important_need_both_sets_of_approvals,
    test_one_approval_is_sealed_in_one_audit_link_with_its_events_in_order,
    test_an_approval_reads_its_own_rows_by_key_not_every_pending_request_or_held_delivery,
    test_held_for_me_lists_only_what_the_caller_can_act_on_now,
    test_message_detail_for_approvers_supervisors_and_operators_only,
    test_a_duplicate_of_an_important_message_writes_nothing_more,
    test_notifications_are_queued_deliveries_with_audit_events_and_claimable,
    test_the_audit_trail_verifies_after_all_of_it,
]


def start(cluster, tmpdir):
    global pg, tmp
    pg, tmp = cluster, tmpdir
    pg.sql("CREATE DATABASE %s" % DB)


if __name__ == "__main__":
    sys.exit(run_suite("04", TESTS, start, needs=[HERALDCTL]))
