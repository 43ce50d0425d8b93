#!/usr/bin/env python3
"""
NAME
    10-intake-submit-ack - submissions are acknowledged only once stored

DESCRIPTION
    Real heraldd, real PostgreSQL, producers speaking the documented wire
    protocol (tests/support/herald_client.py) and the herald-send CLI.
    Checks what a user would: the ACK's id, class and state, the rows
    behind it (message, one delivery per recipient, an audit event), the
    classification rules (POLICY A1, A2.1, A3), idempotent resends and the
    CLI's exit codes.
"""
import json
import os
import subprocess
import zmq
import msgpack

from herald_client import email, random_key, Producer
from herald_harness import Stack, binary, free_port, run_tests

CONFIG = """
intake = { batch_max_bytes = 1048576; };
classify = {
  bulk_threshold = 5;
  important_tag = "[重要]";
};
policy = { lists = { sensitive = { terms = ["confidential", "机密"]; }; }; };
"""

stack = Stack("intake", config_extra=CONFIG)


def count(table, where="true"):
    return int(stack.scalar("SELECT count(*) FROM herald.%s WHERE %s" % (table, where)))


def test_A1_general_email_is_acked_queued_with_message_delivery_and_audit_rows():
    p = stack.producer()
    rep = p.submit(email(subject="Team lunch on Friday", body="We meet at noon."))
    assert rep["ok"] is True, rep
    assert rep["class"] == "general" and rep["state"] == "queued", rep
    assert rep["duplicate"] is False and rep["findings"] == [], rep
    mid = rep["id"]
    row = stack.sql("SELECT sender, subject, class, channel FROM herald.messages WHERE id = %d" % mid)
    assert row == [["alice@example.com", "Team lunch on Friday", "general", "email"]], row
    dl = stack.sql("SELECT recipient, kind, state FROM herald.deliveries WHERE message_id = %d" % mid)
    assert dl == [["bob@example.com", "to", "queued"]], dl
    ev = stack.sql("SELECT kind, actor FROM herald.audit_events WHERE message_id = %d" % mid)
    assert ev == [["message.accepted", "app:itest"]], ev
    p.close()


def test_one_delivery_per_recipient_including_cc_with_reason_kept_in_audit():
    p = stack.producer()
    rep = p.submit(email(to=["a@example.com", "b@example.com"], cc=["c@example.com"],
                         cc_reason="c owns the budget"))
    assert rep["ok"], rep
    dl = stack.sql("SELECT recipient, kind FROM herald.deliveries WHERE message_id = %d ORDER BY id"
                   % rep["id"])
    assert dl == [["a@example.com", "to"], ["b@example.com", "to"], ["c@example.com", "cc"]], dl
    detail = stack.scalar("SELECT detail FROM herald.audit_events WHERE message_id = %d" % rep["id"])
    assert "c owns the budget" in detail, detail
    p.close()


def test_A2_1_important_flag_holds_the_message():
    p = stack.producer()
    rep = p.submit(email(flags=["important"]))
    assert (rep["class"], rep["state"]) == ("important", "held"), rep
    assert count("deliveries", "message_id = %d AND state = 'held'" % rep["id"]) == 1
    p.close()


def test_A2_1_important_tag_in_subject_holds_the_message():
    p = stack.producer()
    rep = p.submit(email(subject="[重要] 董事会决议"))
    assert (rep["class"], rep["state"]) == ("important", "held"), rep
    p.close()


def test_A2_1_sensitive_keyword_in_body_any_case_holds_the_message():
    p = stack.producer()
    rep = p.submit(email(body="This is CONFIDENTIAL, do not forward."))
    assert rep["class"] == "important", rep
    rep = p.submit(email(subject="周报", body="本周无机密内容以外的事项"))
    assert rep["class"] == "important", rep
    p.close()


def bulk_form(n):
    return {"purpose": "customer notice", "audience": "key accounts", "recipient_count": n,
            "summary": "price list for next year"}


def test_A3_recipient_count_at_bulk_threshold_makes_bulk_and_below_does_not():
    p = stack.producer()
    five = ["u%d@example.com" % i for i in range(5)]
    rep = p.submit(email(to=five, bulk=bulk_form(5)))
    assert (rep["class"], rep["state"]) == ("bulk", "held"), rep
    assert count("deliveries", "message_id = %d" % rep["id"]) == 5
    rep = p.submit(email(to=five[:4]))
    assert rep["class"] == "general", rep
    rep = p.submit(email(flags=["bulk"], bulk=bulk_form(1)))
    assert rep["class"] == "bulk", rep
    p.close()


def test_A3_bulk_without_an_application_or_with_a_wrong_count_is_refused_and_not_stored():
    p = stack.producer()
    before = count("messages")
    five = ["u%d@example.com" % i for i in range(5)]
    rep = p.submit(email(to=five))
    assert rep["ok"] is False and rep["code"] == "policy" and rep["field"] == "msg.bulk", rep
    assert "A3" in rep["reason"], rep
    rep = p.submit(email(to=five, bulk=bulk_form(6)))
    assert rep["ok"] is False and rep["field"] == "msg.bulk.recipient_count", rep
    assert count("messages") == before
    p.close()


def test_a_sender_who_is_not_known_staff_is_refused_and_nothing_is_written():
    p = stack.producer()
    before = (count("messages"), count("deliveries"), count("audit_events"))
    rep = p.submit(email(sender="stranger@example.com"))
    assert rep["ok"] is False and rep["code"] == "invalid" and rep["field"] == "msg.from", rep
    assert "not known staff" in rep["reason"], rep
    assert (count("messages"), count("deliveries"), count("audit_events")) == before
    assert p.submit(email())["ok"], "a known sender is still served"
    p.close()


def test_sms_and_im_submissions_are_stored_on_their_channel():
    p = stack.producer()
    rep = p.submit({"channel": "sms", "from": "ops@example.com", "to": ["+8613800138000"],
                    "body": "Your verification code is 4821", "purpose": "service"})
    assert rep["ok"], rep
    assert stack.scalar("SELECT channel || ',' || purpose FROM herald.messages WHERE id = %d"
                        % rep["id"]) == "sms,service"
    rep = p.submit({"channel": "im", "from": "ops@example.com", "to": ["ops-oncall"],
                    "body": "Deploy finished"})
    assert rep["ok"], rep
    assert stack.scalar("SELECT recipient FROM herald.deliveries WHERE message_id = %d"
                        % rep["id"]) == "ops-oncall"
    p.close()


def test_idempotent_resend_returns_the_original_ack_and_writes_nothing():
    p = stack.producer()
    key = random_key()
    first = p.submit(email(idempotency_key=key, flags=["important"]))
    before = (count("messages"), count("deliveries"), count("audit_events"))
    again = p.submit(email(idempotency_key=key, flags=["important"]))
    assert again["ok"] and again["duplicate"] is True, again
    assert (again["id"], again["class"], again["state"]) == (first["id"], "important", "held")
    assert (count("messages"), count("deliveries"), count("audit_events")) == before
    p.close()


def test_same_key_pipelined_in_one_burst_is_stored_once():
    p = stack.producer()
    key = random_key()
    rids = [p.send(p.request(email(idempotency_key=key))) for _ in range(20)]
    replies = {}
    while len(replies) < len(rids):
        rep = p.recv(5000)
        assert rep is not None, "missing replies"
        replies[rep["rid"]] = rep
    ids = {r["id"] for r in replies.values()}
    assert len(ids) == 1, ids
    assert sum(1 for r in replies.values() if not r["duplicate"]) == 1
    assert count("messages", "idempotency_key = '%s'" % key) == 1
    p.close()


def test_same_key_from_another_application_is_another_message():
    key = random_key()
    a = Producer(stack.endpoint, app="billing")
    b = Producer(stack.endpoint, app="crm")
    ra, rb = a.submit(email(idempotency_key=key)), b.submit(email(idempotency_key=key))
    assert ra["ok"] and rb["ok"] and ra["id"] != rb["id"], (ra, rb)
    a.close()
    b.close()


def test_attachment_bytes_are_stored_intact():
    data = bytes(range(256)) * 40
    p = stack.producer()
    rep = p.submit(email(body="See report.bin attached.",
                         attachments=[{"name": "report.bin", "type": "application/octet-stream",
                                       "data": data}]))
    assert rep["ok"], rep
    got = stack.scalar("SELECT encode(data, 'hex') FROM herald.attachments WHERE message_id = %d"
                       % rep["id"])
    assert got == data.hex()
    p.close()


def test_pipelined_large_attachments_are_split_into_batches_by_size_and_all_stored():
    p = stack.producer()
    data = bytes(range(256)) * 1200  # 300 KB: about three fit one 1 MiB batch
    rids = [p.send(p.request(email(body="report-%d.bin attached" % i, attachments=[
        {"name": "report-%d.bin" % i, "type": "application/octet-stream", "data": data}])))
        for i in range(12)]
    replies = {}
    while len(replies) < len(rids):
        rep = p.recv(10000)
        assert rep is not None, "missing replies"
        replies[rep["rid"]] = rep
    assert all(r["ok"] for r in replies.values()), replies
    ids = ",".join(str(r["id"]) for r in replies.values())
    assert int(stack.scalar("SELECT count(*) FROM herald.attachments WHERE message_id IN (%s) "
                            "AND length(data) = %d" % (ids, len(data)))) == 12
    # More than one transaction carried them (one audit link per batch statement).
    links = int(stack.scalar("SELECT count(DISTINCT l.seq::text || l.chain_id::text) "
                             "FROM herald.audit_links l JOIN herald.audit_events e "
                             "ON e.id = ANY (l.event_ids) WHERE e.message_id IN (%s)" % ids))
    assert links >= 4, links
    p.close()


def test_req_socket_producers_are_answered_too():
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(stack.endpoint)
    s.send(msgpack.packb({"v": 1, "rid": 7, "op": "submit", "app": "itest", "msg": email()}))
    assert s.poll(5000), "no reply to a REQ socket"
    rep = msgpack.unpackb(s.recv(), raw=False)
    assert rep["ok"] and rep["rid"] == 7, rep
    s.close(0)


def herald_send(*args):
    cmd = [binary("client/herald-send"), "--app", "cli"] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_herald_send_exit_codes_accepted_rejected_unreachable():
    ok = herald_send("--endpoint", stack.endpoint, "--channel", "email", "--from", "alice@example.com",
                     "--to", "bob@example.com", "--subject", "CLI test", "--body", "hello", "--json")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["ok"] is True and out["class"] == "general", out
    assert count("messages", "id = %d AND app = 'cli'" % out["id"]) == 1

    bad = herald_send("--endpoint", stack.endpoint, "--channel", "email", "--from", "alice@example.com",
                      "--to", "not-an-address", "--subject", "x", "--body", "y", "--json")
    assert bad.returncode == 3, (bad.returncode, bad.stdout, bad.stderr)
    out = json.loads(bad.stdout)
    assert out["ok"] is False and out["code"] == "invalid" and out["field"] == "msg.to[0]", out

    assert herald_send("--endpoint", stack.endpoint, "--ping").returncode == 0

    gone = herald_send("--endpoint", "tcp://127.0.0.1:%d" % free_port(), "--channel", "email",
                       "--from", "alice@example.com", "--to", "bob@example.com", "--subject", "x",
                       "--body", "y", "--timeout-ms", "300", "--retries", "1")
    assert gone.returncode == 4, (gone.returncode, gone.stderr)


def test_audit_chain_verifies_after_intake():
    res = stack.heraldctl("audit", "verify", check=False)
    assert res.returncode == 0, res.stdout + res.stderr


if __name__ == "__main__":
    with stack:
        stack.start_db()
        stack.start_heraldd()
        run_tests([(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")])
