#!/usr/bin/env python3
"""
NAME
    22-approvals-end-to-end - important and bulk mail waits for the right people

DESCRIPTION
    Real heraldd, herald-worker (email driver) and Postfix's smtp-sink,
    with approvals recorded in PostgreSQL by each approver's own login
    role. Named with the clauses they prove: A1 general mail goes
    straight out; A2.1 important mail is held until the head of the
    sender's department approves, then delivered with the [重要] tag
    (E1) within a second of the approval (NOTIFY wakes heraldd even with
    slow polling); major mail needs senior leadership too; rejection and
    A2.2 expiry mean never sent and the sender told why; A3 bulk needs its
    application, is held, approved and delivered to all 500 recipients;
    an approval recorded while heraldd is down is dispatched after it
    returns.
"""
import time

from herald_client import email
from herald_harness import Stack, free_port, run_tests, wait_until
from pgtest import SqlError
from smtp_sink import SmtpSink

# poll_ms is long on purpose: a release must reach dispatch through NOTIFY.
CONFIG = """
classify = { bulk_threshold = 50; };
policy = { lists = { major = { terms = ["董事会"]; }; }; };
approval = { due_s = 600; reminder_s = 0; tick_ms = 200; };
dispatch = { lease_ms = 10000; heartbeat_ms = 200; poll_ms = 5000; claim_batch = 500; };
retry = { min_backoff_ms = 300; max_backoff_ms = 600; max_lifetime_s = 120; };
"""

stack = Stack("approvals", config_extra=CONFIG)
SINK_PORT = free_port()
sink = None


def states(mid):
    return sorted({r[0] for r in stack.sql(
        "SELECT state FROM herald.deliveries WHERE message_id = %d" % mid)})


def as_role(role, query):
    return stack.sql(query, user=role)


def mails(pred):
    return [m for m in sink.messages() if pred(m)]


def notifications_to(address, since_id):
    return stack.sql("SELECT m.subject, m.body FROM herald.messages m JOIN herald.deliveries d "
                     "ON d.message_id = m.id WHERE m.app = 'herald' AND d.recipient = '%s' "
                     "AND m.id > %d ORDER BY m.id" % (address, since_id))


def test_A1_general_mail_is_sent_straight_away():
    p = stack.producer()
    mid = p.submit(email(subject="Lunch menu"))["id"]
    wait_until(lambda: states(mid) == ["sent"], 10, what="general mail to be sent")
    p.close()


def test_A2_1_important_mail_is_held_until_the_department_head_approves_then_sent_tagged():
    p = stack.producer()
    rep = p.submit(email(subject="Price change for Q1", flags=["important"]))
    assert (rep["class"], rep["state"]) == ("important", "held"), rep
    mid = rep["id"]
    time.sleep(1.0)
    assert states(mid) == ["held"], states(mid)
    assert not mails(lambda m: "Price change" in str(m["Subject"]))
    t0 = time.monotonic()
    as_role("sales_head", "SELECT * FROM herald.approve(%d, 'fine')" % mid)
    wait_until(lambda: states(mid) == ["sent"], 10, what="release after approval")
    release_s = time.monotonic() - t0
    got = mails(lambda m: "Price change" in str(m["Subject"]))
    assert len(got) == 1
    assert str(got[0]["Subject"]) == "[重要] Price change for Q1", got[0]["Subject"]
    # NOTIFY woke heraldd: without it the claimer would sleep poll_ms = 5 s.
    assert release_s < 2.0, "release took %.2f s" % release_s
    print("release_after_approval_s=%.3f" % release_s)
    p.close()


def test_A2_1_major_mail_needs_senior_leadership_after_the_head():
    p = stack.producer()
    mid = p.submit(email(subject="董事会决议：合并", flags=["important"]))["id"]
    as_role("sales_head", "SELECT * FROM herald.approve(%d, 'ok from sales')" % mid)
    time.sleep(0.5)
    assert states(mid) == ["held"], "released without senior approval"
    as_role("ceo", "SELECT * FROM herald.approve(%d, 'approved by the board')" % mid)
    wait_until(lambda: states(mid) == ["sent"], 10, what="release after senior approval")
    p.close()


def expect_refusal(role, query, *texts):
    """The statement fails and its message contains one of texts."""
    try:
        as_role(role, query)
    except SqlError as e:
        assert any(t in e.stderr for t in texts), (texts, e.stderr)
        return
    raise AssertionError("%s was allowed: %s" % (role, query))


def test_A2_1_wrong_head_sender_and_out_of_order_approvals_are_refused_by_the_database():
    p = stack.producer()
    mid = p.submit(email(subject="Confidential pricing", flags=["important", "major"]))["id"]
    expect_refusal("ops_head", "SELECT * FROM herald.approve(%d)" % mid, "not the head of Sales")
    expect_refusal("ceo", "SELECT * FROM herald.approve(%d)" % mid, "level 1 not yet approved")
    expect_refusal("alice", "SELECT * FROM herald.approve(%d)" % mid, "own message")
    expect_refusal("sales_head", "UPDATE herald.deliveries SET state = 'queued' "
                   "WHERE message_id = %d" % mid, "permission denied")
    # Nor can an approver read other people's messages directly (only the
    # ones they decide, through herald.message_detail).
    expect_refusal("ops_head", "SELECT body FROM herald.messages WHERE id = %d" % mid,
                   "permission denied")
    assert states(mid) == ["held"]
    p.close()


def test_rejection_means_never_sent_and_the_sender_is_told_the_reason():
    last = int(stack.scalar("SELECT coalesce(max(id), 0) FROM herald.messages"))
    p = stack.producer()
    mid = p.submit(email(subject="Discount for ACME", flags=["important"]))["id"]
    expect_refusal("sales_head", "SELECT * FROM herald.reject(%d, '')" % mid, "reason")
    as_role("sales_head", "SELECT * FROM herald.reject(%d, 'discount too deep')" % mid)
    wait_until(lambda: states(mid) == ["rejected_by_approver"], 5, what="rejection")
    note = notifications_to("alice@example.com", last)
    assert note and any("discount too deep" in (r[1] or "") for r in note), note
    # Well within poll_ms (5 s): the rejection's NOTIFY wakes heraldd.
    wait_until(lambda: mails(lambda m: "discount too deep" in m.get_body(("plain",)).get_content()),
               3, what="the sender's notification to arrive")
    assert not mails(lambda m: "Discount for ACME" == str(m["Subject"]).replace("[重要] ", ""))
    p.close()


def test_A2_2_an_expired_request_is_never_sent_and_the_sender_is_told():
    last = int(stack.scalar("SELECT coalesce(max(id), 0) FROM herald.messages"))
    p = stack.producer()
    mid = p.submit(email(subject="Offer valid until Friday", flags=["important"]))["id"]
    # Let the request run out (as the superuser: time passing, not an approver).
    stack.sql("UPDATE herald.approval_requests SET due_at = now() WHERE message_id = %d" % mid)
    wait_until(lambda: states(mid) == ["expired"], 10, what="expiry by the approval tick")
    note = notifications_to("alice@example.com", last)
    assert note and any("expire" in ((r[0] or "") + (r[1] or "")).lower() for r in note), note
    expect_refusal("sales_head", "SELECT * FROM herald.approve(%d)" % mid, "expired", "not held")
    assert states(mid) == ["expired"]
    p.close()


def test_A3_bulk_without_application_is_rejected_with_application_is_held_approved_and_sent():
    p = stack.producer()
    rcpts = ["customer%03d@example.com" % i for i in range(500)]
    rep = p.submit(email(to=rcpts, subject="Spring newsletter"))
    assert rep["ok"] is False and rep["code"] == "policy" and rep["field"] == "msg.bulk", rep
    bad = p.submit(email(to=rcpts, subject="Spring newsletter",
                         bulk={"purpose": "newsletter", "audience": "customers",
                               "recipient_count": 499, "summary": "spring offers"}))
    assert bad["ok"] is False and bad["field"] == "msg.bulk.recipient_count", bad
    rep = p.submit(email(to=rcpts, subject="Spring newsletter",
                         bulk={"purpose": "newsletter", "audience": "customers",
                               "recipient_count": 500, "summary": "spring offers"}))
    assert (rep["class"], rep["state"]) == ("bulk", "held"), rep
    mid = rep["id"]
    app = stack.sql("SELECT purpose, recipient_count FROM herald.bulk_applications "
                    "WHERE message_id = %d" % mid)
    assert app == [["newsletter", "500"]], app
    as_role("sales_head", "SELECT * FROM herald.approve(%d, 'go')" % mid)
    wait_until(lambda: states(mid) == ["sent"], 60, what="500 bulk deliveries")
    assert len(mails(lambda m: str(m["Subject"]) == "Spring newsletter")) == 500
    p.close()


def test_an_approval_recorded_while_heraldd_is_down_is_dispatched_after_it_returns():
    p = stack.producer()
    mid = p.submit(email(subject="Board pack", flags=["important"]))["id"]
    p.close()
    stack.kill_heraldd()
    as_role("sales_head", "SELECT * FROM herald.approve(%d)" % mid)
    time.sleep(0.5)
    stack.start_heraldd()
    wait_until(lambda: states(mid) == ["sent"], 15, what="dispatch after heraldd returns")


if __name__ == "__main__":
    with stack:
        stack.start_db()
        stack.start_heraldd()
        sink = SmtpSink(port=SINK_PORT)
        stack.start_worker("""
credit = 256;
heartbeat_ms = 200;
email = { relay = "127.0.0.1:%d"; starttls = "off"; timeout_ms = 5000; };
""" % SINK_PORT, name="mail")
        try:
            run_tests([(n, f) for n, f in globals().items() if n.startswith("test_")])
        finally:
            sink.stop()
