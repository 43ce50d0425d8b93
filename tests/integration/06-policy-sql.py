#!/usr/bin/python3
"""
NAME
    06-policy-sql - the database half of the sending policy
    (sql/004_policy.sql) against a real PostgreSQL 15, named after the
    POLICY.md clauses it checks

DESCRIPTION
    Starts a private cluster, migrates it with heraldctl, imports an
    organisation, creates login roles (a broker, an operator, staff as
    herald_approver members) and calls herald.intake_batch() as the broker
    exactly as heraldd does, with the optional policy keys of the 004
    contract ("findings", "reject", "db_rules", "not_before"):
    I1/I3 an IM group must be registered, active and admit the sender's
    department, else the item is refused with error 'policy' at
    msg.to[i] and a violation is recorded with its audit event; S1 a
    marketing SMS needs a granted consent for every number, revoked or
    missing is refused; S3 per-recipient caps defer (never drop) the
    excess deliveries to the earliest slot, counting earlier items of the
    same batch and future deferrals, with a 'delivery.deferred' event and
    a defer finding; V2 heraldd's reject and warn findings are violation
    rows (a refused submission stores no message), listed and reported
    per sender and department for supervisors only. Also: quiet hours
    (not_before), release after approval keeps a deferral, an email item
    without the new keys is stored exactly as before, registries are
    written only through the audited functions and only by operators,
    consent import is idempotent and never undoes a later opt-out,
    message_detail shows findings and violations and redacts confidential
    content from operators, and the audit trail verifies at the end.

    Environment: HERALD_BUILD_DIR (heraldctl in ctl/), HERALD_SOURCE_DIR,
    PYTHONPATH=tests/support. Prints "N passed, M failed" last.
"""
import datetime
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from pgtest import run_suite, jlit  # noqa: E402

BUILD_DIR = os.environ.get("HERALD_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
HERALDCTL = os.path.join(BUILD_DIR, "ctl", "heraldctl")
DB = "herald"
BROKER = "broker_po"
OPERATOR = "operator_po"

# Sales: carol heads it, alice and bob work there. Engineering: erin
# heads it, sam is there. gina supervises, otto is staff with role
# operator, nina has no department.
ORG = {
    "departments": [{"name": "Sales", "head": "carol@example.com"},
                    {"name": "Engineering", "head": "erin@example.com"}],
    "staff": [
        {"address": "alice@example.com", "department": "Sales", "roles": ["employee"],
         "db_role": "alice_po"},
        {"address": "bob@example.com", "department": "Sales", "roles": ["employee"],
         "db_role": "bob_po"},
        {"address": "carol@example.com", "department": "Sales",
         "roles": ["employee", "dept_head"], "db_role": "carol_po"},
        {"address": "erin@example.com", "department": "Engineering",
         "roles": ["employee", "dept_head"], "db_role": "erin_po"},
        {"address": "sam@example.com", "department": "Engineering", "roles": ["employee"],
         "db_role": "sam_po"},
        {"address": "gina@example.com", "department": "Engineering",
         "roles": ["employee", "supervisor"], "db_role": "gina_po"},
        {"address": "otto@example.com", "department": "Engineering",
         "roles": ["employee", "operator"], "db_role": "otto_po"},
        {"address": "nina@example.com", "department": None, "roles": ["employee"],
         "db_role": "nina_po"},
    ],
}
ROLE = {s["address"].split("@")[0]: s["db_role"] for s in ORG["staff"]}

IM_RULE = {"rule": "im_group_registry", "clause": "I3", "check": "im_group",
           "action": "reject", "severity": "major"}
CONSENT_RULE = {"rule": "sms_marketing_consent", "clause": "S1", "check": "sms_consent",
                "action": "reject", "severity": "major"}
CAP_HOUR = {"rule": "sms_frequency_hour", "clause": "S3", "check": "sms_cap",
            "action": "defer", "severity": "info", "count": 3, "per_s": 3600}
CAP_DAY = {"rule": "sms_frequency_day", "clause": "S3", "check": "sms_cap",
           "action": "defer", "severity": "info", "count": 10, "per_s": 86400}

pg = None
_ikey = [0]


# ---------------------------------------------------------------- helpers
def sql(query, user=None):
    return pg.sql(query, user=user, dbname=DB)


def value(query, user=None):
    return pg.value(query, user=user, dbname=DB)


def expect_error(query, fragment, user=None):
    return pg.expect_error(query, fragment, user=user, dbname=DB)


def lit(s):
    return "NULL" if s is None else "'%s'" % s.replace("'", "''")


def entry(sender="alice@example.com", channel="email", to=None, klass="general", **kw):
    _ikey[0] += 1
    e = {"ord": 1, "app": "potest", "ikey": "p-%d" % _ikey[0], "channel": channel,
         "sender": sender, "class": klass, "state": "queued" if klass == "general" else "held",
         "subject": "subject %d" % _ikey[0] if channel == "email" else None,
         "body": "body %d" % _ikey[0], "html": None, "cc_reason": None,
         "purpose": "service" if channel == "sms" else None, "reply_by": None, "flags": [],
         "tags": {}, "to": to if to is not None else ["to%d@example.org" % _ikey[0]], "cc": [],
         "attachments": [], "bulk": None, "important": klass == "important", "major": False,
         "approval_due_s": 172800, "reminder_s": None}
    e.update(kw)
    return e


def im(to, sender="alice@example.com", **kw):
    return entry(sender, "im", to, db_rules=[IM_RULE], **kw)


def sms(to, purpose="service", sender="alice@example.com", rules=None, **kw):
    return entry(sender, "sms", to, purpose=purpose,
                 db_rules=rules if rules is not None else [CONSENT_RULE, CAP_HOUR, CAP_DAY], **kw)


COLS = ["ord", "id", "class", "state", "duplicate", "error", "error_field", "error_reason",
        "findings"]


def intake_rows(entries):
    for i, e in enumerate(entries):
        e["ord"] = i + 1
    rows = sql("SELECT ord, message_id, class, state, duplicate, error, error_field, "
               "error_reason, findings FROM herald.intake_batch(%s)" % jlit(entries), user=BROKER)
    out = []
    for r in rows:
        d = dict(zip(COLS, r))
        d["ord"] = int(d["ord"])
        d["id"] = int(d["id"]) if d["id"] else None
        d["duplicate"] = d["duplicate"] == "t"
        d["findings"] = json.loads(d["findings"]) if d["findings"] else None
        out.append(d)
    return out


def intake(entries):
    rows = intake_rows(entries)
    assert all(r["error"] is None for r in rows), rows
    return [r["id"] for r in rows]


def count(table, where="true"):
    return int(value("SELECT count(*) FROM herald.%s WHERE %s" % (table, where)))


def violations(where="true"):
    rows = sql("SELECT sender, department, app, message_id, rule, clause, severity, action, "
               "reason, field FROM herald.violations WHERE %s ORDER BY id" % where)
    keys = ["sender", "department", "app", "message_id", "rule", "clause", "severity", "action",
            "reason", "field"]
    return [dict(zip(keys, r)) for r in rows]


def last_violation():
    return violations("id = (SELECT max(id) FROM herald.violations)")[0]


def events(kind, where="true"):
    rows = sql("SELECT actor, message_id, delivery_id, detail FROM herald.audit_events "
               "WHERE kind = '%s' AND %s ORDER BY id" % (kind, where))
    return [{"actor": r[0], "message_id": int(r[1]) if r[1] else None,
             "delivery_id": int(r[2]) if r[2] else None, "detail": json.loads(r[3])}
            for r in rows]


def deliveries(mid):
    """(recipient, state, seconds from the message's creation to next_attempt_at)."""
    rows = sql("SELECT d.recipient, d.state, "
               "round(extract(epoch FROM d.next_attempt_at - m.created_at))::int "
               "FROM herald.deliveries AS d JOIN herald.messages AS m ON m.id = d.message_id "
               "WHERE d.message_id = %d ORDER BY d.id" % mid)
    return [(r[0], r[1], int(r[2])) for r in rows]


def group_add(name, departments, owner="erin@example.com", provider="slack", endpoint=None,
              user=OPERATOR, purpose="work chat"):
    return value("SELECT herald.group_add(%s, %s, %s, %s, %s, %s)" % (
        lit(name), lit(purpose), lit(owner), lit(provider), lit(endpoint or ("ep-" + name)),
        "ARRAY[%s]::text[]" % ", ".join(lit(d) for d in departments)), user=user)


def consent(verb, number, source="web form", user=OPERATOR):
    return value("SELECT herald.consent_%s(%s, %s)" % (verb, lit(number), lit(source)), user=user)


def age(mid, seconds):
    """Move message mid and its deliveries seconds into the past (test setup as superuser)."""
    sql("UPDATE herald.messages SET created_at = created_at - make_interval(secs => %d) "
        "WHERE id = %d" % (seconds, mid))
    sql("UPDATE herald.deliveries SET created_at = created_at - make_interval(secs => %d), "
        "next_attempt_at = next_attempt_at - make_interval(secs => %d), "
        "sent_at = sent_at - make_interval(secs => %d) WHERE message_id = %d"
        % (seconds, seconds, seconds, mid))


def now_db():
    return float(value("SELECT extract(epoch FROM now())"))


# ------------------------------------------------------------------ tests
def test_migrate_applies_004_with_functions_for_operators_and_no_direct_writes():
    r = subprocess.run([HERALDCTL, "--db", pg.url(dbname=DB), "db", "migrate"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "applied 004_policy" in r.stdout, r.stdout
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_broker" % BROKER)
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_operator" % OPERATOR)
    for role in ROLE.values():
        pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_approver" % role)
    sql("SELECT * FROM herald.org_import(%s)" % jlit(ORG), user=OPERATOR)

    cols = [r[0] for r in sql("SELECT unnest(proargnames) FROM pg_proc "
                              "WHERE oid = 'herald.intake_batch(jsonb)'::regprocedure")]
    assert cols == ["batch", "ord", "message_id", "class", "state", "duplicate", "error",
                    "error_field", "error_reason", "findings"], cols
    assert value("SELECT has_function_privilege('herald_broker', 'herald.intake_batch(jsonb)', "
                 "'EXECUTE')") == "t"
    for fn in ("herald.group_add(text, text, text, text, text, text[])",
               "herald.group_remove(text)", "herald.group_list()",
               "herald.consent_add(text, text)", "herald.consent_revoke(text, text)",
               "herald.consent_import(jsonb)", "herald.consent_show(text)",
               "herald.violations_list(timestamptz, timestamptz, text, text)",
               "herald.violations_report(timestamptz, timestamptz, text)"):
        for who, want in (("herald_operator", "t"), ("herald_approver", "t"),
                          ("herald_broker", "f"), ("public", "f")):
            assert value("SELECT has_function_privilege('%s', '%s', 'EXECUTE')"
                         % (who, fn)) == want, (who, fn)
    for fn in ("herald.intake_policy(jsonb)", "herald.sms_cap_slot(timestamptz[], timestamptz, "
               "int[], int[])", "herald.policy_im_group(jsonb, jsonb, text)"):
        for who in ("herald_operator", "herald_approver", "herald_broker", "public"):
            assert value("SELECT has_function_privilege('%s', '%s', 'EXECUTE')"
                         % (who, fn)) == "f", (who, fn)
    for who in ("herald_broker", "herald_operator", "herald_approver"):
        for t in ("im_groups", "sms_consents", "violations", "messages"):
            for priv in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"):
                assert value("SELECT has_table_privilege('%s', 'herald.%s', '%s')"
                             % (who, t, priv)) == "f", (who, t, priv)
    assert value("SELECT has_table_privilege('herald_approver', 'herald.violations', "
                 "'SELECT')") == "f"
    assert value("SELECT has_table_privilege('herald_operator', 'herald.violations', "
                 "'SELECT')") == "t"


def test_email_item_without_policy_keys_unchanged():
    before = count("violations")
    rows = intake_rows([entry(), entry(klass="important")])
    assert [(r["class"], r["state"], r["duplicate"], r["error"], r["error_field"],
             r["error_reason"], r["findings"]) for r in rows] == [
        ("general", "queued", False, None, None, None, None),
        ("important", "held", False, None, None, None, None)], rows
    mid = rows[0]["id"]
    assert value("SELECT findings FROM herald.messages WHERE id = %d" % mid) == "[]"
    d = sql("SELECT state, abs(extract(epoch FROM next_attempt_at - created_at)) < 0.001 "
            "FROM herald.deliveries WHERE message_id = %d" % mid)
    assert d == [("queued", "t")], d
    assert [e["detail"] for e in events("message.accepted", "message_id = %d" % mid)] == [
        {"class": "general", "state": "queued", "recipients": 1}]
    assert count("audit_events", "message_id = %d" % mid) == 1
    assert count("violations") == before
    # A resend is still a duplicate that writes nothing.
    again = intake_rows([dict(entry(), ikey="p-%d" % (_ikey[0] - 1))])
    assert again[0]["duplicate"] and again[0]["id"] == rows[1]["id"], again


def test_group_registry_is_written_only_by_operators_and_every_change_is_audited():
    assert group_add("eng", ["Engineering"]) == "added"
    assert group_add("eng", ["Engineering"]) == "unchanged"
    assert group_add("eng", ["Engineering", "Sales"], user=ROLE["otto"]) == "updated"
    assert group_add("all-hands", ["*"], provider="wecom", owner="Carol@Example.com") == "added"
    assert group_add("sales.team_1", ["Sales"], provider="dingtalk") == "added"
    expect_error("SELECT herald.group_add('x', 'p', 'erin@example.com', 'slack', 'ep', "
                 "'{Sales}')", "only operators may manage the work group registry",
                 user=ROLE["alice"])
    expect_error("SELECT * FROM herald.group_list()", "only operators", user=ROLE["gina"])
    expect_error("INSERT INTO herald.im_groups (name, purpose, owner, provider, endpoint, "
                 "departments) VALUES ('y', 'p', 'erin@example.com', 'slack', 'e', '{Sales}')",
                 "permission denied", user=OPERATOR)
    rows = sql("SELECT name, owner, provider, departments, active FROM herald.group_list()",
               user=OPERATOR)
    assert rows == [("all-hands", "carol@example.com", "wecom", "{*}", "t"),
                    ("eng", "erin@example.com", "slack", "{Engineering,Sales}", "t"),
                    ("sales.team_1", "erin@example.com", "dingtalk", "{Sales}", "t")], rows
    ev = events("group.added") + events("group.updated")
    assert [(e["actor"], e["detail"]["name"]) for e in ev] == [
        ("operator:" + OPERATOR, "eng"), ("operator:" + OPERATOR, "all-hands"),
        ("operator:" + OPERATOR, "sales.team_1"), ("operator:" + ROLE["otto"], "eng")], ev
    assert ev[3]["detail"]["departments"] == ["Engineering", "Sales"]
    # Restore: eng admits only Engineering.
    assert group_add("eng", ["Engineering"]) == "updated"


def test_group_registry_refuses_bad_entries_and_urls_as_endpoints():
    for args, msg in (
            (("ops alerts", ["Sales"]), "is not 1..64 of A-Z a-z 0-9"),
            (("ops", []), "needs the departments"),
            (("ops", ["*", "Sales"]), "cannot be combined"),
            (("ops", ["Marketing"]), "department Marketing does not exist")):
        expect_error("SELECT herald.group_add(%s, 'p', 'erin@example.com', 'slack', 'ep', %s)"
                     % (lit(args[0]), "ARRAY[%s]::text[]" % ", ".join(lit(d) for d in args[1])
                        if args[1] else "'{}'::text[]"), msg, user=OPERATOR)
    expect_error("SELECT herald.group_add('ops', 'p', 'erin@example.com', 'slack', "
                 "'https://hooks.slack.com/services/T000/B000/XXXX', '{Sales}')",
                 "not a URL or a secret", user=OPERATOR)
    expect_error("SELECT herald.group_add('ops', 'p', 'nobody@example.com', 'slack', 'e', "
                 "'{Sales}')", "owner nobody@example.com is not active staff", user=OPERATOR)
    expect_error("SELECT herald.group_add('ops', 'p', 'erin@example.com', 'icq', 'e', '{Sales}')",
                 "provider icq is not one of", user=OPERATOR)
    expect_error("SELECT herald.group_add('ops', '  ', 'erin@example.com', 'slack', 'e', "
                 "'{Sales}')", "needs a purpose", user=OPERATOR)
    expect_error("SELECT herald.group_remove('nope')", 'group "nope" is not registered',
                 user=OPERATOR)
    assert count("im_groups", "name = 'ops'") == 0


def test_I1_registered_group_admitting_the_department_is_stored():
    rows = intake_rows([im(["eng"], sender="sam@example.com"),
                        im(["all-hands", "eng"], sender="erin@example.com"),
                        im(["all-hands"], sender="nina@example.com")])
    assert [(r["error"], r["state"]) for r in rows] == [(None, "queued")] * 3, rows
    assert [d[0] for d in deliveries(rows[1]["id"])] == ["all-hands", "eng"]


def test_I3_unregistered_group_rejected_and_violation_recorded():
    before = {t: count(t) for t in ("messages", "deliveries", "violations")}
    ev_before = count("audit_events", "kind = 'policy.violation'")
    rows = intake_rows([im(["eng", "ops-alerts"], sender="sam@example.com"), entry()])
    r = rows[0]
    assert (r["id"], r["state"], r["duplicate"], r["error"], r["error_field"]) == \
        (None, None, False, "policy", "msg.to[1]"), r
    assert r["error_reason"] == 'group "ops-alerts" is not a registered work group (POLICY I3)'
    assert rows[1]["error"] is None and rows[1]["id"], rows
    assert count("messages") == before["messages"] + 1
    assert count("deliveries") == before["deliveries"] + 1
    v = last_violation()
    assert v == {"sender": "sam@example.com", "department": "Engineering", "app": "potest",
                 "message_id": None, "rule": "im_group_registry", "clause": "I3",
                 "severity": "major", "action": "reject", "reason": r["error_reason"],
                 "field": "msg.to[1]"}, v
    ev = events("policy.violation")
    assert len(ev) == ev_before + 1 and ev[-1]["message_id"] is None, ev
    assert ev[-1]["actor"] == "app:potest"
    assert (ev[-1]["detail"]["clause"], ev[-1]["detail"]["sender"], ev[-1]["detail"]["field"]) \
        == ("I3", "sam@example.com", "msg.to[1]"), ev[-1]
    # Group names compare case-sensitively, as on the wire.
    assert intake_rows([im(["ENG"], sender="sam@example.com")])[0]["error"] == "policy"


def test_I3_department_outside_scope_rejected():
    r = intake_rows([im(["eng"], sender="alice@example.com")])[0]
    assert (r["error"], r["error_field"]) == ("policy", "msg.to[0]"), r
    assert r["error_reason"] == \
        'Sales may not post to group "eng" (allowed: Engineering) (POLICY I3)', r
    assert last_violation()["department"] == "Sales"
    r = intake_rows([im(["eng"], sender="nina@example.com")])[0]
    assert r["error_reason"].startswith("a sender without a department may not post"), r
    assert last_violation()["department"] is None


def test_I3_removed_group_is_refused_and_adding_it_again_reactivates_it():
    assert group_add("temp", ["*"]) == "added"
    assert value("SELECT herald.group_remove('temp')", user=OPERATOR) == "removed"
    assert value("SELECT herald.group_remove('temp')", user=OPERATOR) == "unchanged"
    assert sql("SELECT active FROM herald.im_groups WHERE name = 'temp'") == [("f",)]
    r = intake_rows([im(["temp"])])[0]
    assert r["error_reason"] == \
        'group "temp" was removed from the work group registry (POLICY I3)', r
    assert group_add("temp", ["*"]) == "updated"
    assert events("group.updated")[-1]["detail"]["reactivated"] is True
    assert intake_rows([im(["temp"])])[0]["error"] is None
    assert [e["detail"] for e in events("group.removed")] == [{"name": "temp"}]


def test_S1_marketing_without_consent_rejected():
    assert consent("add", "+8613800138000") == "granted"
    rows = intake_rows([sms(["+8613800138000", "+8613900139000"], "marketing"),
                        sms(["+8613900139000"], "service")])
    r = rows[0]
    assert (r["error"], r["error_field"]) == ("policy", "msg.to[1]"), r
    assert r["error_reason"] == "+8613900139000 has not consented to marketing SMS (POLICY S1)"
    assert rows[1]["error"] is None, "service SMS need no consent"
    v = last_violation()
    assert (v["clause"], v["rule"], v["action"], v["sender"], v["message_id"]) == \
        ("S1", "sms_marketing_consent", "reject", "alice@example.com", None), v
    ok = intake_rows([sms(["+8613800138000"], "marketing")])[0]
    assert ok["error"] is None and ok["state"] == "queued", ok


def test_S1_revoked_consent_rejected():
    assert consent("add", "+8613700137000") == "granted"
    assert consent("add", "+8613700137000") == "unchanged"
    assert consent("revoke", "+8613700137000", "replied STOP") == "revoked"
    assert consent("revoke", "+8613700137000", "replied STOP") == "unchanged"
    r = intake_rows([sms(["+8613700137000"], "marketing")])[0]
    assert r["error"] == "policy" and "+8613700137000 opted out of marketing SMS on" in \
        r["error_reason"] and r["error_reason"].endswith("UTC (POLICY S1)"), r
    expect_error("SELECT herald.consent_revoke('+8613700137000', ' ')", "needs its source",
                 user=OPERATOR)
    expect_error("SELECT herald.consent_add('+0123456789', 'x')", "is not an E.164 number",
                 user=OPERATOR)
    expect_error("SELECT herald.consent_add('8613800138000', 'x')", "is not an E.164 number",
                 user=OPERATOR)
    expect_error("SELECT herald.consent_add('+8613800138000', 'x')", "only operators may",
                 user=ROLE["gina"])
    assert consent("add", "+8613700137000", "signed the paper form", user=ROLE["otto"]) == \
        "granted"
    show = sql("SELECT state, granted_source, revoked_at, history "
               "FROM herald.consent_show('+8613700137000')", user=OPERATOR)[0]
    assert show[:3] == ("granted", "signed the paper form", None), show
    hist = json.loads(show[3])
    assert [(h["event"], h["source"], h["actor"]) for h in hist] == [
        ("granted", "web form", "operator:" + OPERATOR),
        ("revoked", "replied STOP", "operator:" + OPERATOR),
        ("granted", "signed the paper form", "operator:" + ROLE["otto"])], hist
    none = sql("SELECT state, history FROM herald.consent_show('+4915112345678')",
               user=OPERATOR)
    assert none == [("none", "[]")], none


def test_S1_consent_import_is_idempotent_and_never_undoes_a_later_opt_out():
    assert consent("revoke", "+4917000000001", "opted out by phone") == "revoked"
    doc = [{"number": "+4917000000002", "source": "crm export"},
           {"number": "+4917000000003", "source": "crm export", "granted_at": "2020-01-01T00:00:00Z"},
           {"number": "+4917000000001", "source": "old list", "granted_at": "2020-01-01T00:00:00Z"},
           {"number": "+4917000000002", "source": "crm export, again"}]
    r = sql("SELECT granted, unchanged, kept_revoked FROM herald.consent_import(%s)" % jlit(doc),
            user=OPERATOR)
    assert r == [("2", "0", "1")], r
    r = sql("SELECT granted, unchanged, kept_revoked FROM herald.consent_import(%s)" % jlit(doc),
            user=OPERATOR)
    assert r == [("0", "2", "1")], r
    states = dict(sql("SELECT number, state FROM herald.sms_consents WHERE number LIKE '+4917%'"))
    assert states == {"+4917000000001": "revoked", "+4917000000002": "granted",
                      "+4917000000003": "granted"}, states
    assert value("SELECT granted_source FROM herald.sms_consents "
                 "WHERE number = '+4917000000002'") == "crm export, again"
    assert value("SELECT granted_at FROM herald.sms_consents WHERE number = '+4917000000003'") \
        .startswith("2020-01-01")
    assert len(events("consent.granted", "detail::jsonb->>'imported' = 'true'")) == 2
    # A consent dated after the opt-out does re-grant it.
    later = [{"number": "+4917000000001", "source": "new form",
              "granted_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}]
    assert sql("SELECT granted FROM herald.consent_import(%s)" % jlit(later),
               user=OPERATOR) == [("1",)]
    n = count("sms_consents")
    expect_error("SELECT * FROM herald.consent_import(%s)" % jlit(
        [{"number": "+4917000000009", "source": "x"}, {"number": "12345", "source": "x"}]),
        'entry 2: "12345" is not an E.164 number', user=OPERATOR)
    expect_error("SELECT * FROM herald.consent_import(%s)" % jlit([{"number": "+4917000000009"}]),
                 "entry 1: no source", user=OPERATOR)
    assert count("sms_consents") == n


def test_S3_fourth_sms_in_an_hour_deferred_not_dropped():
    num = "+12025550101"
    first = intake([sms([num]) for _ in range(3)])
    for mid in first:
        assert deliveries(mid)[0][1:] == ("queued", 0)
    for mid, ago in zip(first, (3000, 1200, 600)):
        age(mid, ago)
    rows = intake_rows([sms([num])])
    r = rows[0]
    assert r["error"] is None and r["state"] == "queued", r
    (rcpt, state, delay), = deliveries(r["id"])
    assert (rcpt, state) == (num, "queued")
    # The oldest of the three (50 min ago) leaves the hour in 10 minutes.
    assert abs(delay - 600) <= 1, delay
    f = r["findings"]
    assert len(f) == 1 and (f[0]["clause"], f[0]["action"], f[0]["severity"], f[0]["rule"],
                            f[0]["field"]) == ("S3", "defer", "info", "sms_frequency_hour",
                                               "msg.to[0]"), f
    assert f[0]["reason"].startswith(num + ": 3 SMS in 1 hour already; deferred to ") and \
        f[0]["reason"].endswith(" UTC (POLICY S3)"), f
    stored = json.loads(value("SELECT findings FROM herald.messages WHERE id = %d" % r["id"]))
    assert stored == f, stored
    did = int(value("SELECT id FROM herald.deliveries WHERE message_id = %d" % r["id"]))
    ev = events("delivery.deferred", "delivery_id = %d" % did)
    assert len(ev) == 1 and ev[0]["message_id"] == r["id"], ev
    until = value("SELECT to_char(next_attempt_at AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM herald.deliveries WHERE id = %d" % did)
    assert ev[0]["detail"] == {"rule": "sms_frequency_hour", "clause": "S3", "until": until,
                               "reason": f[0]["reason"]}, ev
    assert count("violations", "message_id = %d" % r["id"]) == 0, "a deferral is no violation"
    # Not counted: another number, and failed or cancelled deliveries.
    other = intake_rows([sms(["+12025550102"])])[0]
    assert deliveries(other["id"])[0][2] == 0 and other["findings"] is None
    sql("UPDATE herald.deliveries SET state = 'failed' WHERE message_id = %d" % first[2])
    again = intake_rows([sms([num])])[0]
    assert again["findings"] is None and deliveries(again["id"])[0][2] == 0, again


def test_S3_same_recipient_twice_in_one_batch():
    num = "+12025550111"
    rows = intake_rows([sms([num, num]), sms([num]), sms([num, "+12025550112"])])
    delays = [[d[2] for d in deliveries(r["id"])] for r in rows]
    assert delays == [[0, 0], [0], [3600, 0]], delays
    assert rows[0]["findings"] is None and rows[1]["findings"] is None
    assert [f["field"] for f in rows[2]["findings"]] == ["msg.to[0]"], rows[2]
    # The deferred one counts too: two more fit in its hour, the third
    # waits another hour.
    nxt = intake_rows([sms([num]), sms([num]), sms([num])])
    assert [deliveries(r["id"])[0][2] for r in nxt] == [3600, 3600, 7200], nxt


def test_S3_a_resend_in_the_same_batch_takes_no_slot():
    num = "+12025550161"
    first, second = sms([num]), sms([num])
    intake([first, second])
    rows = intake_rows([dict(first), sms([num]), sms([num])])
    assert rows[0]["duplicate"] and rows[0]["findings"] is None, rows[0]
    assert [deliveries(r["id"])[0][2] for r in rows[1:]] == [0, 3600], rows
    assert count("deliveries", "recipient = '%s'" % num) == 4


def test_S3_daily_cap_counts_sent_deliveries_at_their_sent_time():
    num = "+12025550121"
    mids = intake([sms([num]) for _ in range(10)])
    # Spread them over the last 20 hours, sent, so the hourly cap is free.
    for i, mid in enumerate(mids):
        sql("UPDATE herald.deliveries SET state = 'sent', sent_at = now() WHERE message_id = %d"
            % mid)
        age(mid, 72000 - i * 7200)
    r = intake_rows([sms([num])])[0]
    delay = deliveries(r["id"])[0][2]
    # The oldest left 20 h ago: the day is full until 4 h from now.
    assert abs(delay - 14400) <= 1, delay
    assert r["findings"][0]["rule"] == "sms_frequency_day"
    assert "10 SMS in 1 day already" in r["findings"][0]["reason"], r


def test_quiet_hours_not_before_defers_deliveries_and_audits():
    later = int(now_db()) + 7200
    finding = {"rule": "quiet_hours", "clause": "S3", "action": "defer", "severity": "info",
               "reason": "quiet hours 22:00-08:00; deferred", "field": "msg"}
    rows = intake_rows([sms(["+12025550131"], rules=[], not_before=later, findings=[finding]),
                        entry(not_before=later - 20000)])
    assert [r["error"] for r in rows] == [None, None], rows
    delay = deliveries(rows[0]["id"])[0][2]
    assert abs(delay - 7200) <= 1, delay
    assert deliveries(rows[1]["id"])[0][2] == 0, "a time in the past means now"
    assert json.loads(value("SELECT findings FROM herald.messages WHERE id = %d"
                            % rows[0]["id"])) == [finding]
    ev = events("delivery.deferred", "message_id = %d" % rows[0]["id"])
    assert len(ev) == 1 and ev[0]["delivery_id"] is None, ev
    assert (ev[0]["detail"]["rule"], ev[0]["detail"]["reason"]) == \
        ("quiet_hours", finding["reason"]), ev
    assert events("delivery.deferred", "message_id = %d" % rows[1]["id"]) == []
    assert count("violations", "message_id = %d" % rows[0]["id"]) == 0


def test_S3_caps_start_from_not_before():
    num = "+12025550141"
    later = int(now_db()) + 1800
    rows = intake_rows([sms([num]) for _ in range(3)] +
                       [sms([num], not_before=later)])
    delays = [deliveries(r["id"])[0][2] for r in rows]
    assert delays[:3] == [0, 0, 0] and abs(delays[3] - 3600) <= 1, delays


def test_V2_reject_finding_writes_violation_without_message():
    reject = {"rule": "civility", "clause": "I2", "severity": "major", "field": "msg.body",
              "reason": "offensive word in the body (POLICY I2)"}
    findings = [dict(reject, action="reject"),
                {"rule": "im_length", "clause": "I2", "action": "warn", "severity": "minor",
                 "reason": "long IM", "field": "msg.body"},
                {"rule": "tagged", "clause": "E1", "action": "tag", "severity": "info",
                 "reason": "tag only", "field": "msg.subject"}]
    before = {t: count(t) for t in ("messages", "deliveries")}
    e = im(["eng"], sender="sam@example.com", findings=findings, reject=reject)
    r = intake_rows([e])[0]
    assert (r["id"], r["state"], r["error"], r["error_field"], r["error_reason"],
            r["findings"]) == (None, None, "policy", "msg.body", reject["reason"], None), r
    assert {t: count(t) for t in before} == before
    v = violations("id > (SELECT max(id) - 2 FROM herald.violations)")
    assert [(x["rule"], x["action"], x["severity"], x["message_id"], x["department"])
            for x in v] == [("civility", "reject", "major", None, "Engineering"),
                            ("im_length", "warn", "minor", None, "Engineering")], v
    # Resent with the same key: recorded and refused again, never a duplicate.
    again = intake_rows([dict(e)])[0]
    assert again["error"] == "policy" and not again["duplicate"], again
    assert count("violations", "rule = 'civility'") == 2


def test_resend_of_a_stored_message_is_a_duplicate_even_if_the_policy_now_refuses_it():
    # Accepted first (a marketing SMS with consent) ...
    number = "+8613900007777"
    sql("SELECT herald.consent_add('%s', 'signup form')" % number)
    e = sms([number], purpose="marketing", ikey="resend-after-revoke")
    first = intake_rows([e])[0]
    assert first["error"] is None and first["id"], first
    sql("SELECT herald.consent_revoke('%s', 'replied STOP')" % number)
    before = count("violations")
    # ... the ACK was lost and the client resends after the opt-out:
    # the same answer, nothing new written, not a violation.
    again = intake_rows([dict(e)])[0]
    assert (again["id"], again["duplicate"], again["error"]) == (first["id"], True, None), again
    # Even when heraldd itself now refuses it (its lists changed).
    reject = {"rule": "prohibited-content", "clause": "G3.1", "severity": "major",
              "field": "msg.body", "reason": "now prohibited"}
    again = intake_rows([dict(e, reject=reject, findings=[dict(reject, action="reject")])])[0]
    assert (again["id"], again["duplicate"], again["error"]) == (first["id"], True, None), again
    assert count("violations") == before
    assert count("messages", "idempotency_key = 'resend-after-revoke'") == 1


def test_V2_refused_submission_of_an_unknown_sender_is_recorded_with_no_department():
    reject = {"rule": "civility", "clause": "I2", "severity": "critical", "field": "msg.body",
              "reason": "threat"}
    r = intake_rows([entry("Mallory@Evil.example", findings=[dict(reject, action="reject")],
                           reject=reject)])[0]
    assert r["error"] == "policy", r
    v = last_violation()
    assert (v["sender"], v["department"], v["severity"]) == \
        ("mallory@evil.example", None, "critical"), v
    # Without a reject, an unknown sender stays unknown_sender and records nothing.
    n = count("violations")
    r = intake_rows([entry("mallory@evil.example", findings=[
        {"rule": "w", "clause": "E2", "action": "warn", "severity": "minor", "reason": "r",
         "field": "msg.body"}], db_rules=[IM_RULE])])[0]
    assert r["error"] == "unknown_sender" and count("violations") == n, r


def test_warn_finding_stored_and_violation():
    warn = {"rule": "external_cc", "clause": "E2", "action": "warn", "severity": "minor",
            "reason": "cc to an external address", "field": "msg.cc[0]"}
    tag = {"rule": "subject_tag", "clause": "E1", "action": "tag", "severity": "info",
           "reason": "tagged [Important]", "field": "msg.subject"}
    e = entry("bob@example.com", findings=[warn, tag])
    r = intake_rows([e])[0]
    assert r["error"] is None and r["findings"] is None, "findings column: only the DB's own"
    mid = r["id"]
    assert json.loads(value("SELECT findings FROM herald.messages WHERE id = %d" % mid)) == \
        [warn, tag]
    v = violations("message_id = %d" % mid)
    assert [(x["rule"], x["action"], x["department"], x["field"]) for x in v] == \
        [("external_cc", "warn", "Sales", "msg.cc[0]")], v
    ev = events("policy.violation", "message_id = %d" % mid)
    assert len(ev) == 1 and ev[0]["detail"]["rule"] == "external_cc", ev
    # A duplicate of it writes no second violation.
    assert intake_rows([dict(e)])[0]["duplicate"]
    assert count("violations", "message_id = %d" % mid) == 1


def test_unknown_db_rule_check_is_a_programming_error():
    n = count("messages")
    expect_error("SELECT * FROM herald.intake_batch(%s)" % jlit(
        [dict(entry(db_rules=[{"rule": "x", "clause": "Z9", "check": "astrology"}]), ord=1)]),
        "unknown db rule check astrology", user=BROKER)
    expect_error("SELECT * FROM herald.intake_batch(%s)" % jlit(
        [dict(sms(["+12025550199"], rules=[dict(CAP_HOUR, count=0)]), ord=1)]),
        "sms_cap needs count >= 1", user=BROKER)
    assert count("messages") == n


def test_release_after_approval_keeps_a_deferral():
    num = "+12025550151"
    later = int(now_db()) + 5400
    (held,) = intake([sms([num], klass="important", not_before=later)])
    (plain,) = intake([entry(klass="important")])
    assert deliveries(held)[0][1] == "held"
    for mid in (held, plain):
        rows = sql("SELECT released FROM herald.approve(%d)" % mid, user=ROLE["carol"])
        assert rows == [("t",)], rows
    d = deliveries(held)[0]
    assert d[1] == "queued" and abs(d[2] - 5400) <= 1, d
    due = float(value("SELECT extract(epoch FROM next_attempt_at - now()) FROM herald.deliveries "
                      "WHERE message_id = %d" % plain))
    assert abs(due) < 1, "a release without deferral is due at once: %s" % due


def test_V2_violations_list_and_report_for_supervisors_and_operators_only():
    rows = sql("SELECT sender, department, rule, clause, severity, action "
               "FROM herald.violations_list(NULL, NULL, 'SAM@example.com', NULL)",
               user=ROLE["gina"])
    assert rows and all(r[0] == "sam@example.com" for r in rows), rows
    assert ("sam@example.com", "Engineering", "im_group_registry", "I3", "major", "reject") in rows
    n_sales = len(sql("SELECT id FROM herald.violations_list(NULL, NULL, NULL, 'Sales')",
                      user=OPERATOR))
    assert n_sales == count("violations", "department = 'Sales'") and n_sales > 0
    assert sql("SELECT id FROM herald.violations_list(now() + interval '1 day', NULL, NULL, NULL)",
               user=OPERATOR) == []
    assert len(sql("SELECT id FROM herald.violations_list(NULL, now() + interval '1 second', "
                   "NULL, NULL)", user=ROLE["otto"])) == count("violations")
    rep = {r[0]: r[1:] for r in sql(
        "SELECT key, department, count, info, minor, major, critical "
        "FROM herald.violations_report(NULL, NULL, 'sender')", user=ROLE["gina"])}
    want = sql("SELECT count(*), count(*) FILTER (WHERE severity = 'major') FROM herald.violations "
               "WHERE sender = 'sam@example.com'")[0]
    assert rep["sam@example.com"][0] == "Engineering"
    assert (rep["sam@example.com"][1], rep["sam@example.com"][4]) == want, (rep, want)
    assert rep["mallory@evil.example"][0] is None and rep["mallory@evil.example"][5] == "1"
    deps = {r[0]: int(r[1]) for r in sql("SELECT key, count FROM "
                                         "herald.violations_report(NULL, NULL, 'department')",
                                         user=OPERATOR)}
    assert deps == {k: int(v) for k, v in sql(
        "SELECT department, count(*) FROM herald.violations GROUP BY department")}, deps
    for who in ("alice", "carol", "erin"):
        expect_error("SELECT * FROM herald.violations_list()",
                     "only supervisors and operators may read violations", user=ROLE[who])
        expect_error("SELECT * FROM herald.violations_report()", "only supervisors", user=ROLE[who])
    expect_error("SELECT * FROM herald.violations_report(NULL, NULL, 'app')",
                 "group_by must be sender or department", user=OPERATOR)
    expect_error("DELETE FROM herald.violations", "permission denied", user=OPERATOR)


def test_message_detail_shows_findings_violations_and_redacts_confidential_content():
    warn = {"rule": "w", "clause": "E2", "action": "warn", "severity": "minor",
            "reason": "external", "field": "msg.to[0]"}
    (mid,) = intake([entry("alice@example.com", klass="important", flags=["confidential"],
                           body="the salary table", findings=[warn])])

    def detail(user):
        return json.loads(value("SELECT herald.message_detail(%d)" % mid, user=user))

    for who in ("alice", "carol", "gina"):  # sender, approver, supervisor
        d = detail(ROLE[who])
        assert d["message"]["body"] == "the salary table" and d["message"]["redacted"] is False, \
            (who, d["message"])
    for who in (OPERATOR, ROLE["otto"]):  # operators see it, redacted
        d = detail(who)
        assert d["message"]["body"] is None and d["message"]["html"] is None \
            and d["message"]["redacted"] is True, (who, d["message"])
        assert d["message"]["subject"] is not None
    for who in ("bob", "erin"):
        expect_error("SELECT herald.message_detail(%d)" % mid, "you may not see message",
                     user=ROLE[who])
    d = detail(ROLE["carol"])
    assert d["findings"] == [warn], d
    assert [(v["rule"], v["action"], v["severity"]) for v in d["violations"]] == \
        [("w", "warn", "minor")], d
    (plain,) = intake([entry("bob@example.com")])
    d = json.loads(value("SELECT herald.message_detail(%d)" % plain, user=OPERATOR))
    assert d["message"]["redacted"] is False and d["message"]["body"] is not None
    assert d["findings"] == [] and d["violations"] == []
    # The sender may read their own message, not anybody else's.
    assert json.loads(value("SELECT herald.message_detail(%d)" % plain,
                            user=ROLE["bob"]))["message"]["id"] == plain
    expect_error("SELECT herald.message_detail(%d)" % plain, "you may not see message",
                 user=ROLE["alice"])


def test_the_audit_trail_verifies_after_all_of_it():
    kinds = {k for (k,) in sql("SELECT DISTINCT kind FROM herald.audit_events")}
    assert kinds >= {"group.added", "group.updated", "group.removed", "consent.granted",
                     "consent.revoked", "policy.violation", "delivery.deferred"}, kinds
    assert sql("SELECT problem, chain_id, seq, event_id FROM herald.audit_verify()") == []


TESTS = [
    test_migrate_applies_004_with_functions_for_operators_and_no_direct_writes,
    test_email_item_without_policy_keys_unchanged,
    test_group_registry_is_written_only_by_operators_and_every_change_is_audited,
    test_group_registry_refuses_bad_entries_and_urls_as_endpoints,
    test_I1_registered_group_admitting_the_department_is_stored,
    test_I3_unregistered_group_rejected_and_violation_recorded,
    test_I3_department_outside_scope_rejected,
    test_I3_removed_group_is_refused_and_adding_it_again_reactivates_it,
    test_S1_marketing_without_consent_rejected,
    test_S1_revoked_consent_rejected,
    test_S1_consent_import_is_idempotent_and_never_undoes_a_later_opt_out,
    test_S3_fourth_sms_in_an_hour_deferred_not_dropped,
    test_S3_same_recipient_twice_in_one_batch,
    test_S3_a_resend_in_the_same_batch_takes_no_slot,
    test_S3_daily_cap_counts_sent_deliveries_at_their_sent_time,
    test_quiet_hours_not_before_defers_deliveries_and_audits,
    test_S3_caps_start_from_not_before,
    test_V2_reject_finding_writes_violation_without_message,
    test_V2_refused_submission_of_an_unknown_sender_is_recorded_with_no_department,
    test_resend_of_a_stored_message_is_a_duplicate_even_if_the_policy_now_refuses_it,
    test_warn_finding_stored_and_violation,
    test_unknown_db_rule_check_is_a_programming_error,
    test_release_after_approval_keeps_a_deferral,
    test_V2_violations_list_and_report_for_supervisors_and_operators_only,
    test_message_detail_shows_findings_violations_and_redacts_confidential_content,
    test_the_audit_trail_verifies_after_all_of_it,
]


def start(cluster, tmpdir):
    global pg, tmp
    pg, tmp = cluster, tmpdir
    pg.sql("CREATE DATABASE %s" % DB)


if __name__ == "__main__":
    sys.exit(run_suite("06", TESTS, start, needs=[HERALDCTL]))
