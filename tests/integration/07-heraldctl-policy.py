#!/usr/bin/python3
"""
NAME
    07-heraldctl-policy - heraldctl group, consent and violations as real
    processes, each run as a person's own PostgreSQL login role

DESCRIPTION
    Private PostgreSQL cluster, migrated by heraldctl; an organisation with
    an operator (staff with role operator), a supervisor and employees,
    each with a login role in herald_approver, plus a herald_operator
    login. Then heraldctl is run as each of them: group add/list/remove
    (POLICY I1/I3) by operators only, with the database's refusal printed
    as it is (exit 1), a URL given as --endpoint refused before the
    database is asked (exit 2), and --json that parses; consent
    add/revoke/show (S1) with the history of who recorded what, and
    consent import of a CSV file (idempotent, a broken file refused with
    FILE:LINE before the database is touched); violations (V2) recorded
    by herald.intake_batch() called as heraldd would, listed and counted
    per sender and department for supervisors and operators, refused to
    employees. An unreachable database is exit 4.

    Environment: HERALD_BUILD_DIR (heraldctl in ctl/), HERALD_SOURCE_DIR.
    Prints "N passed, M failed" last.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from pgtest import free_port, run_suite, jlit  # noqa: E402

BUILD_DIR = os.environ.get("HERALD_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
HERALDCTL = os.path.join(BUILD_DIR, "ctl", "heraldctl")
DB = "herald"
BROKER = "broker_hp"
OPS = "ops_hp"  # a herald_operator login that is nobody in staff

ORG = {
    "departments": [{"name": "Sales", "head": "carol@example.com"},
                    {"name": "Engineering", "head": "erin@example.com"}],
    "staff": [
        {"address": "alice@example.com", "department": "Sales", "roles": ["employee"],
         "db_role": "alice_hp"},
        {"address": "carol@example.com", "department": "Sales",
         "roles": ["employee", "dept_head"], "db_role": "carol_hp"},
        {"address": "erin@example.com", "department": "Engineering",
         "roles": ["employee", "dept_head"], "db_role": "erin_hp"},
        {"address": "sam@example.com", "department": "Engineering", "roles": ["employee"],
         "db_role": "sam_hp"},
        {"address": "gina@example.com", "department": "Engineering",
         "roles": ["employee", "supervisor"], "db_role": "gina_hp"},
        {"address": "otto@example.com", "department": "Engineering",
         "roles": ["employee", "operator"], "db_role": "otto_hp"},
    ],
}
PEOPLE = [s["db_role"] for s in ORG["staff"]]

pg = None
tmp = None
_ikey = [0]


# ---------------------------------------------------------------- helpers
def sql(query, user=None):
    return pg.sql(query, user=user, dbname=DB)


def value(query, user=None):
    return pg.value(query, user=user, dbname=DB)


def ctl(*args, user="otto_hp", db=None):
    url = db if db is not None else pg.url(user=user, dbname=DB)
    return subprocess.run([HERALDCTL, "--db", url, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)


def ok(r):
    assert r.returncode == 0, "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout,
                                                                   r.stderr)
    return r.stdout


def refused(r, code, fragment):
    assert r.returncode == code, "expected exit %d, got %d\nstdout: %s\nstderr: %s" % (
        code, r.returncode, r.stdout, r.stderr)
    assert fragment in r.stderr, "expected %r in stderr: %s" % (fragment, r.stderr)
    assert r.stdout == "", r.stdout
    assert "ERROR:" not in r.stderr and "CONTEXT" not in r.stderr, r.stderr
    return r.stderr


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def intake(entries):
    for i, e in enumerate(entries):
        e["ord"] = i + 1
    rows = sql("SELECT ord, message_id, error, error_reason FROM herald.intake_batch(%s)"
               % jlit(entries), user=BROKER)
    return [(r[1], r[2], r[3]) for r in rows]


def item(sender, channel, to, **kw):
    _ikey[0] += 1
    e = {"ord": 1, "app": "ctlpolicy", "ikey": "h-%d" % _ikey[0], "channel": channel,
         "sender": sender, "class": "general", "state": "queued", "body": "hello", "to": to,
         "purpose": "service" if channel == "sms" else None}
    e.update(kw)
    return e


IM_RULE = {"rule": "im_group_registry", "clause": "I3", "check": "im_group", "action": "reject",
           "severity": "major"}
CONSENT_RULE = {"rule": "sms_marketing_consent", "clause": "S1", "check": "sms_consent",
                "action": "reject", "severity": "major"}


# ------------------------------------------------------------------ tests
def test_migrate_and_login_roles_for_every_person():
    r = subprocess.run([HERALDCTL, "--db", pg.url(dbname=DB), "db", "migrate"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "004_policy" in r.stdout, r.stdout
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_broker" % BROKER)
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_operator" % OPS)
    for p in PEOPLE:
        pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_approver" % p)
    sql("SELECT * FROM herald.org_import(%s)" % jlit(ORG), user=OPS)
    out = ok(ctl("help", user=OPS))
    for cmd in ("group add", "group list", "group remove", "consent add", "consent revoke",
                "consent import", "consent show", "violations"):
        assert cmd in out, out
    assert "--endpoint E" in ok(ctl("help", "group", "add"))


def test_I3_group_add_by_an_operator_is_registered_and_audited():
    out = ok(ctl("group", "add", "eng", "--purpose", "engineering chat", "--owner",
                 "erin@example.com", "--provider", "slack", "--endpoint", "slack-eng",
                 "--departments", "Engineering"))
    assert out == "group eng added\n", out
    out = ok(ctl("group", "add", "eng", "--purpose", "engineering chat", "--owner",
                 "erin@example.com", "--provider", "slack", "--endpoint", "slack-eng",
                 "--departments", "Engineering"))
    assert "nothing changed" in out, out
    doc = json.loads(ok(ctl("group", "add", "all-hands", "--purpose", "company news",
                            "--owner", "carol@example.com", "--provider", "wecom", "--endpoint",
                            "wecom-all", "--departments", "*", "--json", user=OPS)))
    assert doc == {"ok": True, "group": "all-hands", "result": "added"}, doc
    ok(ctl("group", "add", "sales", "--purpose", "sales team", "--owner", "carol@example.com",
           "--provider", "dingtalk", "--endpoint", "dt-sales", "--departments", "Sales, Engineering"))
    rows = sql("SELECT name, provider, endpoint, departments, active FROM herald.im_groups "
               "ORDER BY name")
    assert rows == [("all-hands", "wecom", "wecom-all", "{*}", "t"),
                    ("eng", "slack", "slack-eng", "{Engineering}", "t"),
                    ("sales", "dingtalk", "dt-sales", "{Engineering,Sales}", "t")], rows
    actors = [a for (a,) in sql("SELECT actor FROM herald.audit_events "
                                "WHERE kind = 'group.added' ORDER BY id")]
    assert actors == ["operator:otto_hp", "operator:" + OPS, "operator:otto_hp"], actors


def test_I3_group_add_is_refused_to_employees_and_for_bad_input():
    n = int(value("SELECT count(*) FROM herald.im_groups"))
    args = ["group", "add", "ops", "--purpose", "ops", "--owner", "erin@example.com",
            "--provider", "slack", "--endpoint", "slack-ops", "--departments", "Engineering"]
    refused(ctl(*args, user="alice_hp"), 1,
            "heraldctl: group add: only operators may manage the work group registry")
    refused(ctl(*args, user="gina_hp"), 1, "only operators may")
    url = args[:10] + ["https://hooks.slack.com/services/T000/B000/XXXXSECRET"] + args[11:]
    err = refused(ctl(*url), 2, "--endpoint names the worker's endpoint entry")
    assert "herald-worker.conf" in err
    refused(ctl(*(args[:-1] + ["Marketing"])), 1,
            "heraldctl: group add: department Marketing does not exist")
    refused(ctl(*(args[:6] + ["nobody@example.com"] + args[7:])), 1,
            "owner nobody@example.com is not active staff")
    refused(ctl(*(args[:8] + ["icq"] + args[9:])), 2, "--provider must be slack, mattermost")
    refused(ctl("group", "add", "ops", "--purpose", "ops"), 2, "--owner is required")
    refused(ctl("group", "add", "ops alerts"), 2, "group name 'ops alerts' must be")
    assert int(value("SELECT count(*) FROM herald.im_groups")) == n


def test_group_list_shows_each_group_and_remove_deactivates():
    out = ok(ctl("group", "list"))
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PURPOSE", "OWNER", "PROVIDER", "ENDPOINT",
                                "DEPARTMENTS", "STATE"], out
    assert any(ln.startswith("all-hands") and "* (every department)" in ln for ln in lines), out
    assert any(ln.startswith("sales") and "Engineering, Sales" in ln and ln.endswith("active")
               for ln in lines), out
    assert lines[-1] == "3 work groups", out
    out = ok(ctl("group", "remove", "sales", user=OPS))
    assert "group sales removed" in out, out
    assert "removed already" in ok(ctl("group", "remove", "sales"))
    refused(ctl("group", "remove", "nope"), 1, 'heraldctl: group remove: group "nope" is not '
                                               'registered')
    refused(ctl("group", "remove", "sales", user="sam_hp"), 1, "only operators may")
    doc = json.loads(ok(ctl("group", "list", "--json")))
    assert doc["count"] == 3, doc
    g = {x["name"]: x for x in doc["groups"]}
    assert g["sales"]["active"] is False and g["eng"]["active"] is True, doc
    assert g["sales"]["departments"] == ["Engineering", "Sales"], doc
    assert g["eng"]["endpoint"] == "slack-eng" and g["eng"]["owner"] == "erin@example.com"
    assert [x["name"] for x in doc["groups"]][-1] == "sales", "removed groups come last"
    assert ok(ctl("group", "list")).splitlines()[-1] == "2 work groups, 1 removed"


def test_S1_consent_add_revoke_and_show_with_history():
    assert ok(ctl("consent", "add", "+8613800138000", "--source", "web form")) == \
        "+8613800138000: consent to marketing SMS granted\n"
    assert "nothing changed" in ok(ctl("consent", "add", "+8613800138000", "--source", "again"))
    doc = json.loads(ok(ctl("consent", "revoke", "+8613800138000", "--source", "replied STOP",
                            "--json", user=OPS)))
    assert doc == {"ok": True, "number": "+8613800138000", "result": "revoked"}, doc
    out = ok(ctl("consent", "show", "+8613800138000"))
    assert "state    opted out on " in out and "(source: replied STOP)" in out, out
    hist = [ln.split() for ln in out.splitlines() if ln.startswith("  20")]
    assert [(h[1], h[-1]) for h in hist] == [("granted", "operator:otto_hp"),
                                             ("revoked", "operator:" + OPS)], out
    doc = json.loads(ok(ctl("consent", "show", "+8613800138000", "--json")))
    assert doc["state"] == "revoked" and doc["revoked_source"] == "replied STOP", doc
    assert [(h["event"], h["source"]) for h in doc["history"]] == [
        ("granted", "web form"), ("revoked", "replied STOP")], doc
    out = ok(ctl("consent", "show", "+4915112345678"))
    assert "no consent recorded" in out and "history" not in out, out
    refused(ctl("consent", "add", "+86 138 0013 8000", "--source", "x"), 2,
            "is not an E.164 number")
    refused(ctl("consent", "revoke", "+8613800138000"), 2, "--source is required")
    refused(ctl("consent", "add", "+8613900139000", "--source", "x", user="alice_hp"), 1,
            "heraldctl: consent add: only operators may manage SMS consents")
    refused(ctl("consent", "show", "+8613900139000", user="gina_hp"), 1, "only operators may")


def test_S1_consent_import_is_idempotent_and_a_broken_file_touches_nothing():
    path = write("consents.csv", "number,source,granted_at\n"
                                 "# the spring campaign\n"
                                 "+8613900139000,web form,2024-03-01T09:00:00Z\n"
                                 "+8613900139001,\"paper form, signed\",\n"
                                 "+8613800138000,old list,2024-01-01T00:00:00Z\n")
    out = ok(ctl("consent", "import", path))
    assert out == "imported %s: 2 granted, 0 unchanged, 1 kept opted out (the opt-out is later " \
                  "than the consent)\n" % path, out
    doc = json.loads(ok(ctl("consent", "import", path, "--json")))
    assert doc == {"file": path, "lines": 3, "granted": 0, "unchanged": 2, "kept_revoked": 1}, doc
    states = dict(sql("SELECT number, state FROM herald.sms_consents"))
    assert states == {"+8613800138000": "revoked", "+8613900139000": "granted",
                      "+8613900139001": "granted"}, states
    assert value("SELECT granted_source FROM herald.sms_consents "
                 "WHERE number = '+8613900139001'") == "paper form, signed"
    n = int(value("SELECT count(*) FROM herald.audit_events"))
    bad = write("bad.csv", "+8613900139002,web\n+8613900139003\n")
    refused(ctl("consent", "import", bad), 1, "heraldctl: consent import: %s:2: +8613900139003 "
                                              "has no source" % bad)
    refused(ctl("consent", "import", os.path.join(tmp, "missing.csv")), 1, "missing.csv")
    refused(ctl("consent", "import"), 2, "which file?")
    assert int(value("SELECT count(*) FROM herald.audit_events")) == n
    assert value("SELECT count(*) FROM herald.sms_consents WHERE number = '+8613900139002'") == "0"


def test_V2_violations_recorded_at_intake_are_listed_for_supervisors():
    warn = {"rule": "external_cc", "clause": "E2", "action": "warn", "severity": "minor",
            "reason": "cc to an external address", "field": "msg.to[0]"}
    rows = intake([
        item("alice@example.com", "im", ["eng"], db_rules=[IM_RULE]),
        item("sam@example.com", "im", ["ops-alerts"], db_rules=[IM_RULE]),
        item("alice@example.com", "sms", ["+8613800138000"], purpose="marketing",
             db_rules=[CONSENT_RULE]),
        item("sam@example.com", "email", ["x@example.org"], findings=[warn]),
        item("sam@example.com", "im", ["eng"], db_rules=[IM_RULE]),
    ])
    assert [r[1] for r in rows] == ["policy", "policy", "policy", None, None], rows
    assert rows[0][2] == 'Sales may not post to group "eng" (allowed: Engineering) (POLICY I3)'
    stored = int(rows[3][0])

    out = ok(ctl("violations", user="gina_hp"))
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["AT", "(UTC)", "SENDER", "DEPARTMENT"], out
    assert lines[-1] == "4 violations", out
    assert any("sam@example.com" in ln and "E2" in ln and "warn" in ln and str(stored) in ln
               for ln in lines), out
    assert any("alice@example.com" in ln and "Sales" in ln and "I3" in ln and "reject" in ln
               and 'may not post to group "eng"' in ln for ln in lines), out
    assert any("S1" in ln and "has opted out" not in ln and "opted out of marketing SMS" in ln
               for ln in lines), out

    doc = json.loads(ok(ctl("violations", "--sender", "ALICE@example.com", "--json")))
    assert doc["total"] == 2 and doc["shown"] == 2, doc
    assert {v["clause"] for v in doc["violations"]} == {"I3", "S1"}, doc
    assert all(v["message_id"] is None and v["department"] == "Sales" for v in doc["violations"])
    doc = json.loads(ok(ctl("violations", "--department", "Engineering", "--limit", "1",
                            "--json", user=OPS)))
    assert doc["total"] == 2 and doc["shown"] == 1, doc
    out = ok(ctl("violations", "--limit", "1"))
    assert out.splitlines()[-1] == "1 of 4 violations shown (newest first; see --limit)", out
    assert "no violations" in ok(ctl("violations", "--since", "2000-01-01", "--until",
                                     "2000-01-02"))
    assert json.loads(ok(ctl("violations", "--since", "1h", "--json")))["total"] == 4


def test_V2_report_per_sender_and_department():
    out = ok(ctl("violations", "--by", "sender", user="gina_hp"))
    lines = out.splitlines()
    assert lines[0].split() == ["SENDER", "DEPARTMENT", "TOTAL", "CRITICAL", "MAJOR", "MINOR",
                                "INFO", "LAST", "(UTC)"], out
    cells = {ln.split()[0]: ln.split()[1:7] for ln in lines[1:-1]}
    assert cells == {"alice@example.com": ["Sales", "2", "0", "2", "0", "0"],
                     "sam@example.com": ["Engineering", "2", "0", "1", "1", "0"]}, out
    assert lines[-1] == "4 violations, 2 senders", out
    doc = json.loads(ok(ctl("violations", "--by", "department", "--json")))
    assert doc["by"] == "department", doc
    assert {r["department"]: (r["count"], r["major"], r["minor"]) for r in doc["rows"]} == \
        {"Sales": (2, 2, 0), "Engineering": (2, 1, 1)}, doc
    assert json.loads(ok(ctl("violations", "--by", "sender", "--since", "2000-01-01",
                             "--until", "2000-01-02", "--json")))["rows"] == []


def test_V2_violations_are_refused_to_employees_and_options_are_checked():
    for who in ("alice_hp", "carol_hp"):
        refused(ctl("violations", user=who), 1,
                "heraldctl: violations: only supervisors and operators may read violations")
        refused(ctl("violations", "--by", "sender", user=who), 1, "only supervisors")
    refused(ctl("violations", "--by", "app"), 2, "--by must be sender or department")
    refused(ctl("violations", "--by", "sender", "--sender", "a@example.com"), 2,
            "does not go with --sender")
    refused(ctl("violations", "--since", "soon"), 2, "--since:")
    refused(ctl("violations", "--since", "1h", "--until", "2h"), 2,
            "--since must be before --until")


def test_an_unreachable_database_is_exit_4():
    r = ctl("group", "list", db="postgresql://otto_hp@127.0.0.1:%d/%s" % (free_port(), DB))
    assert r.returncode == 4, r
    r = ctl("violations", user="nobody_at_all")
    assert r.returncode == 4, r
    # A usage error is found before any connection is tried.
    r = ctl("consent", "add", "12345", "--source", "x",
            db="postgresql://otto_hp@127.0.0.1:%d/%s" % (free_port(), DB))
    assert r.returncode == 2, r


def test_the_audit_trail_verifies():
    out = ok(ctl("audit", "verify", user=OPS))
    assert "intact" in out, out


TESTS = [
    test_migrate_and_login_roles_for_every_person,
    test_I3_group_add_by_an_operator_is_registered_and_audited,
    test_I3_group_add_is_refused_to_employees_and_for_bad_input,
    test_group_list_shows_each_group_and_remove_deactivates,
    test_S1_consent_add_revoke_and_show_with_history,
    test_S1_consent_import_is_idempotent_and_a_broken_file_touches_nothing,
    test_V2_violations_recorded_at_intake_are_listed_for_supervisors,
    test_V2_report_per_sender_and_department,
    test_V2_violations_are_refused_to_employees_and_options_are_checked,
    test_an_unreachable_database_is_exit_4,
    test_the_audit_trail_verifies,
]


def start(cluster, tmpdir):
    global pg, tmp
    pg, tmp = cluster, tmpdir
    pg.sql("CREATE DATABASE %s" % DB)


if __name__ == "__main__":
    sys.exit(run_suite("07", TESTS, start, needs=[HERALDCTL]))
