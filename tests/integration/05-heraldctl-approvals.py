#!/usr/bin/python3
"""
NAME
    05-heraldctl-approvals - heraldctl org import/show, held, show,
    approve and reject, run as each approver's own PostgreSQL login role

DESCRIPTION
    Private PostgreSQL cluster, migrated by heraldctl. An operator imports
    a test organisation from CSV and from YAML (the same people: both give
    the same rows; importing again changes nothing; a broken file is
    refused with FILE:LINE before the database is touched). Messages from
    staff are stored through herald.intake_batch() as heraldd would.
    Then heraldctl runs as each person (--db with user=that role):
    held lists what the right head can decide and nothing to anyone else,
    show prints the content and the approval chain, approve by the wrong
    head fails with the database's own words and exit 1, the right head's
    approval releases the message (or waits for senior leadership when it
    is major), reject needs --reason (usage error, exit 2) and with one
    rejects; every --json output parses. An unreachable database is exit 4.

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
BROKER = "broker_a"
IMPORTER = "importer_a"
PEOPLE = ["carol", "sam", "erin", "ann", "dave", "wangfang"]

ORG_CSV = """\
# test organisation
kind,name,address,department,roles,db_role,notify_channel,notify_address,head
department,Sales,,,,,,,carol@example.com
department,Engineering,,,,,,,erin@example.com
department,Board,,,,,,,dave@example.com
staff,Carol Chen,carol@example.com,Sales,employee;dept_head,carol,im,sales-approvals,
staff,Sam Seller,sam@example.com,Sales,employee,sam,,,
staff,Erin Engineer,erin@example.com,Engineering,employee;dept_head,erin,email,,
staff,"Lee, Ann",ann@example.com,Engineering,employee;operator,ann,,,
staff,Dave Director,dave@example.com,Board,employee;dept_head;senior,dave,email,,
staff,王芳,wang.fang@example.com,Board,employee;senior,wangfang,im,board-group,
"""

ORG_YAML = """\
departments:
  - {name: Sales, head: carol@example.com}
  - {name: Engineering, head: erin@example.com}
  - {name: Board, head: dave@example.com}
staff:
  - address: carol@example.com
    name: Carol Chen
    department: Sales
    roles: [employee, dept_head]
    db_role: carol
    notify: {channel: im, address: sales-approvals}
  - {address: sam@example.com, name: Sam Seller, department: Sales, roles: [employee],
     db_role: sam}
  - address: erin@example.com
    name: Erin Engineer
    department: Engineering
    roles: [employee, dept_head]
    db_role: erin
    notify: {channel: email}
  - {address: ann@example.com, name: "Lee, Ann", department: Engineering,
     roles: [employee, operator], db_role: ann}
  - address: dave@example.com
    name: Dave Director
    department: Board
    roles: [employee, dept_head, senior]
    db_role: dave
    notify: {channel: email}
  - address: wang.fang@example.com
    name: 王芳
    department: Board
    roles: [employee, senior]
    db_role: wangfang
    notify: {channel: im, address: board-group}
"""

pg = None
tmp = None
_ikey = [0]
M = {}  # name -> message id


# ---------------------------------------------------------------- helpers
def sql(query, user=None):
    return pg.sql(query, user=user, dbname=DB)


def value(query, user=None):
    return pg.value(query, user=user, dbname=DB)


def ctl(*args, user=IMPORTER, db=None):
    url = db if db is not None else pg.url(user=user, dbname=DB)
    return subprocess.run([HERALDCTL, "--db", url, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)


def ok(r):
    assert r.returncode == 0, "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout,
                                                                   r.stderr)
    return r.stdout


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def entry(sender, klass="general", subject="hello", to=None, **kw):
    _ikey[0] += 1
    e = {"ord": 1, "app": "ctltest", "ikey": "a-%d" % _ikey[0], "channel": "email",
         "sender": sender, "class": klass, "state": "queued", "subject": subject,
         "body": "body of %s" % subject, "html": None, "cc_reason": None, "purpose": None,
         "reply_by": None, "flags": [], "tags": {},
         "to": to if to is not None else ["to%d@example.net" % _ikey[0]], "cc": [],
         "attachments": [], "bulk": None, "important": klass == "important", "major": False,
         "approval_due_s": 172800, "reminder_s": None}
    e.update(kw)
    return e


def intake(entries):
    for i, e in enumerate(entries):
        e["ord"] = i + 1
    rows = sql("SELECT message_id, error FROM herald.intake_batch(%s)" % jlit(entries),
               user=BROKER)
    for r in rows:
        assert r[1] in (None, ""), rows
    return [int(r[0]) for r in rows]


def states(mid):
    return {r[0]: int(r[1]) for r in sql("SELECT state, count(*) FROM herald.deliveries "
                                         "WHERE message_id = %d GROUP BY state" % mid)}


def staff_rows():
    return sql("SELECT address, name, department, roles, db_role, notify_channel, "
               "notify_address, active FROM herald.staff ORDER BY address")


def held_ids(user, *extra):
    doc = json.loads(ok(ctl("held", "--json", *extra, user=user)))
    assert doc["count"] == len(doc["held"]), doc
    return sorted({h["message_id"] for h in doc["held"]})


# ------------------------------------------------------------------ tests
def test_migrate_and_login_roles_for_every_person():
    r = subprocess.run([HERALDCTL, "--db", pg.url(dbname=DB), "db", "migrate"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "003_approvals" in r.stdout, r.stdout
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_broker" % BROKER)
    pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_operator" % IMPORTER)
    for p in PEOPLE:
        pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_approver" % p)


def test_org_import_csv_prints_counts_and_stores_every_person():
    path = write("org.csv", ORG_CSV)
    out = ok(ctl("org", "import", path))
    assert "3 departments, 6 staff, 2 in senior leadership" in out, out
    rows = staff_rows()
    assert len(rows) == 6, rows
    carol = [r for r in rows if r[0] == "carol@example.com"][0]
    assert list(carol[1:]) == ["Carol Chen", "Sales", "{employee,dept_head}", "carol", "im",
                         "sales-approvals", "t"], carol
    ann = [r for r in rows if r[0] == "ann@example.com"][0]
    assert ann[1] == "Lee, Ann" and ann[5] == "email" and ann[6] is None, ann
    heads = [list(x) for x in sql("SELECT name, head FROM herald.departments ORDER BY name")]
    assert heads == [["Board", "dave@example.com"], ["Engineering", "erin@example.com"],
                     ["Sales", "carol@example.com"]], heads


def test_org_import_again_and_from_yaml_changes_nothing():
    before = staff_rows()
    doc = json.loads(ok(ctl("org", "import", os.path.join(tmp, "org.csv"), "--json")))
    assert doc == {"file": os.path.join(tmp, "org.csv"), "departments": 3, "staff": 6,
                   "senior": 2}, doc
    assert staff_rows() == before
    ypath = write("org.yaml", ORG_YAML)
    doc = json.loads(ok(ctl("org", "import", ypath, "--json")))
    assert (doc["departments"], doc["staff"], doc["senior"]) == (3, 6, 2), doc
    assert staff_rows() == before, (staff_rows(), before)
    assert int(value("SELECT count(*) FROM herald.departments")) == 3


def test_a_broken_org_file_is_refused_with_file_and_line_before_the_database():
    bad_csv = write("bad.csv", ORG_CSV.replace("employee;operator", "employee;boss"))
    r = ctl("org", "import", bad_csv)
    assert r.returncode == 1, r
    assert "bad.csv:9: unknown role 'boss'" in r.stderr, r.stderr
    bad_yaml = write("bad.yaml", ORG_YAML.replace("    department: Engineering\n",
                                                  "    departmnt: Engineering\n"))
    r = ctl("org", "import", bad_yaml)
    assert r.returncode == 1 and "bad.yaml:16: unknown key 'departmnt'" in r.stderr, r.stderr
    syntax = write("syntax.yaml", "departments:\n  - name: [Sales\nstaff: []\n")
    r = ctl("org", "import", syntax)
    assert r.returncode == 1 and "syntax.yaml:3:" in r.stderr, r.stderr
    # Nothing above reached the database: ann is still an operator.
    assert value("SELECT roles FROM herald.staff WHERE address = 'ann@example.com'") == \
        "{employee,operator}"
    r = ctl("org", "import", os.path.join(tmp, "org.txt"))
    assert r.returncode == 2 and "--format" in r.stderr, r.stderr


def test_org_show_lists_heads_staff_and_senior_leadership():
    out = ok(ctl("org", "show"))
    assert "Sales" in out and "carol@example.com" in out and "Carol Chen" in out, out
    assert "senior leadership: dave@example.com (Dave Director), wang.fang@example.com (王芳)" \
        in out, out
    doc = json.loads(ok(ctl("org", "show", "--json")))
    assert sorted(doc["senior"]) == ["dave@example.com", "wang.fang@example.com"], doc
    assert {d["name"]: d["head"] for d in doc["departments"]} == {
        "Sales": "carol@example.com", "Engineering": "erin@example.com",
        "Board": "dave@example.com"}, doc
    assert len(doc["staff"]) == 6


def test_messages_from_staff_are_held_for_their_heads():
    ids = intake([
        entry("sam@example.com", "important", subject="[重要] 季度销售报告和客户名单"),
        entry("ann@example.com", "bulk", subject="Release newsletter",
              to=["r%d@example.net" % i for i in range(3)],
              bulk={"purpose": "release notes", "audience": "customers",
                    "recipient_count": 3, "summary": "what is new"}),
        entry("sam@example.com", "important", subject="Board pay review", major=True),
        entry("carol@example.com", "important", subject="Carol's own"),
        entry("sam@example.com", "important", subject="To be rejected"),
        entry("sam@example.com", "general", subject="Lunch"),
    ])
    for k, mid in zip(["important", "bulk", "major", "own", "reject", "general"], ids):
        M[k] = mid
    for k in ["important", "bulk", "major", "own", "reject"]:
        assert set(states(M[k])) == {"held"}, (k, states(M[k]))
    assert "queued" in states(M["general"])


def test_held_shows_each_head_only_their_departments_messages():
    assert held_ids("carol") == sorted([M["important"], M["major"], M["reject"]])
    assert held_ids("erin") == [M["bulk"]]
    # Seniors wait for level 1 of the major one; employees and the sender
    # see nothing. Carol's own message went up to senior leadership (she
    # heads Sales and may not approve it).
    assert held_ids("dave") == [M["own"]]
    assert held_ids("sam") == []
    assert held_ids("wangfang") == [M["own"]]
    assert held_ids("carol", "--class", "bulk") == []
    assert held_ids("erin", "--class", "bulk", "--department", "Engineering") == [M["bulk"]]
    assert held_ids("carol", "--older-than", "1h") == []


def test_held_table_is_aligned_with_chinese_subjects_and_relative_due_times():
    out = ok(ctl("held", user="carol"))
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "CLASS", "FROM", "DEPT", "SUBJECT", "LEVEL", "DUE"], out
    row = [ln for ln in lines if ln.strip().startswith(str(M["important"]) + " ")][0]
    assert "[重要] 季度销售报告和客户名单" in row and "1 important" in row, out
    assert "in 47h" in row or "in 1d 23h" in row, row

    def width(s):
        return sum(2 if ord(c) >= 0x2E80 else 1 for c in s)
    # LEVEL starts in the same terminal column on every line of the table.
    cols = set()
    for ln in lines[:-1]:
        i = ln.find("LEVEL") if ln.startswith("ID") else ln.rfind(" important") - 1
        assert i > 0, ln
        cols.add(width(ln[:i]))
    assert len(cols) == 1, (cols, out)
    assert "await you" in lines[-1], out


def test_show_prints_content_attachments_and_the_chain():
    out = ok(ctl("show", str(M["major"]), user="carol"))
    assert "Board pay review" in out and "Sam Seller <sam@example.com>" in out, out
    assert "attachments\n  none" in out, out
    assert "approval chain" in out and "level 1 important pending   head of Sales" in out, out
    assert "level 2 important pending   senior leadership" in out, out
    assert "held" in out.split("deliveries")[-1], out
    doc = json.loads(ok(ctl("show", str(M["bulk"]), "--json", user="erin")))
    assert doc["bulk_application"]["purpose"] == "release notes", doc
    assert doc["message"]["id"] == M["bulk"]
    out = ok(ctl("show", str(M["bulk"]), user="erin"))
    assert "bulk application" in out and "customers" in out, out
    r = ctl("show", str(M["bulk"]), user="carol")
    assert r.returncode == 1 and "you may not see message %d" % M["bulk"] in r.stderr, r.stderr
    # Carol heads Sales: her own message went to senior leadership, and
    # show tells the senior why (sql/009, sql/011).
    out = ok(ctl("show", str(M["own"]), user="dave"))
    assert "level 1 important pending   senior leadership (escalated: the sender heads Sales)" \
        in out, out
    doc = json.loads(ok(ctl("show", str(M["own"]), "--json", user="dave")))
    assert doc["approvals"][0]["escalated"] == "the sender heads Sales", doc["approvals"]


def test_approve_by_the_wrong_head_is_refused_with_the_databases_words():
    r = ctl("approve", str(M["important"]), user="erin")
    assert r.returncode == 1, r
    assert r.stderr.strip() == "heraldctl: approve: you are not the head of Sales", r.stderr
    r = ctl("approve", str(M["own"]), user="carol")
    assert r.returncode == 1 and "you cannot approve your own message" in r.stderr, r.stderr
    r = ctl("approve", str(M["major"]), "--json", user="wangfang")
    assert r.returncode == 1, r
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["error"] in r.stderr, (doc, r.stderr)
    assert "held" in states(M["important"])


def test_approve_by_the_right_head_releases_the_message():
    out = ok(ctl("approve", str(M["important"]), "--comment", "fine", user="carol"))
    assert out.strip() == "message %d: approved level 1 (important); released: 1 delivery " \
        "queued" % M["important"], out
    assert states(M["important"]) == {"queued": 1}
    row = sql("SELECT decided_by, comment, state FROM herald.approval_requests "
              "WHERE message_id = %d" % M["important"])
    assert [list(x) for x in row] == [["carol@example.com", "fine", "approved"]], row
    assert M["important"] not in held_ids("carol")


def test_a_major_message_waits_for_senior_leadership_after_level_1():
    doc = json.loads(ok(ctl("approve", str(M["major"]), "--json", user="carol")))
    assert doc["ok"] is True and doc["released"] is False, doc
    assert "waiting for senior leadership (level 2 important)" in doc["summary"], doc
    assert held_ids("dave") == sorted([M["major"], M["own"]])
    assert M["major"] in held_ids("wangfang")
    out = ok(ctl("approve", str(M["major"]), user="wangfang"))
    assert "approved level 2 (important); released: 1 delivery queued" in out, out
    assert states(M["major"]) == {"queued": 1}


def test_reject_needs_a_reason_and_with_one_stops_the_message():
    r = ctl("reject", str(M["reject"]), user="carol")
    assert r.returncode == 2 and "needs a reason" in r.stderr, r
    r = ctl("reject", str(M["reject"]), "--reason", "  ", user="carol")
    assert r.returncode == 2, r
    doc = json.loads(ok(ctl("reject", str(M["reject"]), "--reason", "not now", "--json",
                            user="carol")))
    assert doc["ok"] is True and len(doc["rejected"]) == 1, doc
    assert states(M["reject"]) == {"rejected_by_approver": 1}
    out = ok(ctl("reject", str(M["bulk"]), "--reason", "too many", user="erin"))
    assert "message %d: rejected" % M["bulk"] in out, out
    assert states(M["bulk"]) == {"rejected_by_approver": 3}
    r = ctl("approve", str(M["bulk"]), user="erin")
    assert r.returncode == 1 and "not awaiting approval" in r.stderr, r.stderr


def test_usage_errors_and_an_unreachable_database():
    assert ctl("approve", user="carol").returncode == 2
    assert ctl("approve", "abc", user="carol").returncode == 2
    assert ctl("held", "--older-than", "soon", user="carol").returncode == 2
    r = ctl("held", db="postgresql://carol@127.0.0.1:%d/%s" % (free_port(), DB))
    assert r.returncode == 4, r
    r = ctl("held", user="nobody_at_all")
    assert r.returncode == 4, r


def test_a_person_left_out_of_a_reimport_is_deactivated_not_deleted():
    path = write("smaller.csv", "\n".join(ln for ln in ORG_CSV.splitlines()
                                          if "wang.fang" not in ln) + "\n")
    ok(ctl("org", "import", path))
    assert value("SELECT active FROM herald.staff WHERE address = 'wang.fang@example.com'") == "f"
    out = ok(ctl("org", "show"))
    assert "1 inactive not shown" in out and "senior leadership: dave@example.com" in out, out


TESTS = [
    test_migrate_and_login_roles_for_every_person,
    test_org_import_csv_prints_counts_and_stores_every_person,
    test_org_import_again_and_from_yaml_changes_nothing,
    test_a_broken_org_file_is_refused_with_file_and_line_before_the_database,
    test_org_show_lists_heads_staff_and_senior_leadership,
    test_messages_from_staff_are_held_for_their_heads,
    test_held_shows_each_head_only_their_departments_messages,
    test_held_table_is_aligned_with_chinese_subjects_and_relative_due_times,
    test_show_prints_content_attachments_and_the_chain,
    test_approve_by_the_wrong_head_is_refused_with_the_databases_words,
    test_approve_by_the_right_head_releases_the_message,
    test_a_major_message_waits_for_senior_leadership_after_level_1,
    test_reject_needs_a_reason_and_with_one_stops_the_message,
    test_usage_errors_and_an_unreachable_database,
    test_a_person_left_out_of_a_reimport_is_deactivated_not_deleted,
]


def start(cluster, tmpdir):
    global pg, tmp
    pg, tmp = cluster, tmpdir
    pg.sql("CREATE DATABASE %s" % DB)


if __name__ == "__main__":
    sys.exit(run_suite("05", TESTS, start, needs=[HERALDCTL]))
