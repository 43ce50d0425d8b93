#!/usr/bin/env python3
"""
NAME
    14-policy-intake - every clause of the sending policy, through the real intake

DESCRIPTION
    Real heraldd with its built-in policy (plus quiet hours in a second
    broker), real PostgreSQL, the documented wire protocol
    (tests/support/herald_client.py). For each clause the test checks what
    a supervisor or a sender would: the ERROR's code, field and findings,
    that nothing was stored for a refused message, the violation row
    recorded against the sender and department, the findings stored with
    an accepted message, and for SMS caps the deferred delivery time and
    its audit event. Normalisation bypass attempts (full-width letters,
    mixed case, zero-width characters) are refused like the plain word.
"""
import json

from herald_client import email, random_key, Producer
from herald_harness import Stack, run_tests, wait_until

CONFIG = """
classify = { bulk_threshold = 50; };
"""

stack = Stack("policy", config_extra=CONFIG)


def count(table, where="true"):
    return int(stack.scalar("SELECT count(*) FROM herald.%s WHERE %s" % (table, where)))


def violations_of(sender, rule):
    return stack.sql("SELECT department, app, message_id, clause, severity, action, field, reason "
                     "FROM herald.violations WHERE sender = '%s' AND rule = '%s' ORDER BY id"
                     % (sender, rule))


def finding(rep, rule):
    for f in rep.get("findings", []):
        if f["rule"] == rule:
            return f
    return None


def im(to, body, sender="alice@example.com"):
    return {"channel": "im", "from": sender, "to": to, "body": body}


def sms(to, body, purpose="service", sender="otp@example.com"):
    return {"channel": "sms", "from": sender, "to": to, "body": body, "purpose": purpose}


def refused(rep, rule, clause, field=None):
    assert rep["ok"] is False, rep
    assert rep["code"] == "policy" and rep["retryable"] is False, rep
    if field is not None:
        assert rep["field"] == field, rep
    f = finding(rep, rule)
    assert f and f["clause"] == clause and f["action"] == "reject", rep
    assert ("POLICY %s" % clause) in rep["reason"], rep


def test_G3_1_prohibited_content_refused_nothing_stored_violation_recorded():
    p = stack.producer()
    before = count("messages")
    rep = p.submit(email(subject="Supplies", body="We can sell you a fake invoice."))
    refused(rep, "prohibited-content", "G3.1", "msg.body")
    assert count("messages") == before
    rows = violations_of("alice@example.com", "prohibited-content")
    assert rows and rows[-1][:7] == ["Sales", "itest", None, "G3.1", "major", "reject",
                                     "msg.body"], rows
    assert "fake invoice" in rows[-1][7], rows
    ev = stack.scalar("SELECT count(*) FROM herald.audit_events WHERE kind = 'policy.violation'")
    assert int(ev) >= 1
    p.close()


def test_G3_1_full_width_mixed_case_and_zero_width_spellings_are_refused_too():
    p = stack.producer()
    spellings = [
        "Ｃｏｕｎｔｅｒｆｅｉｔ watches",      # full-width letters
        "CoUnTeRfEiT watches",                 # mixed case
        "counter\u200bfeit watches",           # zero-width space
        "洗\u200d钱 服务",                      # zero-width joiner inside Chinese
    ]
    for body in spellings:
        rep = p.submit(email(subject="Offer", body=body))
        refused(rep, "prohibited-content", "G3.1")
    p.close()


def test_G3_2_meaningless_subject_and_empty_body_refused_with_field():
    p = stack.producer()
    rep = p.submit(email(subject="  Test!! ", body="see above"))
    refused(rep, "subject-meaningless", "G3.2", "msg.subject")
    rep = p.submit(email(subject="Plan for Q3", body=" \n "))
    refused(rep, "body-required", "G3.2", "msg.body")
    p.close()


def test_E1_important_email_tagged_once_and_the_tag_reported():
    p = stack.producer()
    rep = p.submit(email(subject="Price change", flags=["important"]))
    assert rep["ok"] and rep["class"] == "important", rep
    f = finding(rep, "important-tag")
    assert f and f["clause"] == "E1" and f["action"] == "tag", rep
    subj = stack.scalar("SELECT subject FROM herald.messages WHERE id = %d" % rep["id"])
    assert subj == "[重要] Price change", subj
    stored = json.loads(stack.scalar("SELECT findings::text FROM herald.messages WHERE id = %d"
                                     % rep["id"]))
    assert [x["rule"] for x in stored] == ["important-tag"], stored
    p.close()


def test_E1_overlong_subject_refused():
    p = stack.producer()
    rep = p.submit(email(subject="x" * 121))
    refused(rep, "subject-length", "E1", "msg.subject")
    p.close()


def test_E2_needs_reply_without_reply_by_refused():
    p = stack.producer()
    rep = p.submit(email(subject="Sign-off needed", flags=["needs_reply"]))
    refused(rep, "reply-by-required", "E2", "msg.reply_by")
    p.close()


def test_E3_oversize_attachment_refused_with_link_hint():
    p = stack.producer()
    big = b"\0" * (10 * 1024 * 1024 + 1)
    rep = p.submit(email(subject="Design", body="design.bin attached",
                         attachments=[{"name": "design.bin", "type": "application/octet-stream",
                                       "data": big}]))
    refused(rep, "attachment-size", "E3", "msg.attachments[0]")
    assert "link" in rep["reason"], rep
    p.close()


def test_E3_unmentioned_attachment_is_accepted_with_a_warning_recorded():
    p = stack.producer()
    rep = p.submit(email(subject="Contract", body="Please review by Friday.",
                         attachments=[{"name": "contract.pdf", "type": "application/pdf",
                                       "data": b"%PDF"}]))
    assert rep["ok"], rep
    f = finding(rep, "attachment-unmentioned")
    assert f and f["action"] == "warn" and f["clause"] == "E3", rep
    rows = violations_of("alice@example.com", "attachment-unmentioned")
    assert rows and rows[-1][2] == str(rep["id"]) and rows[-1][5] == "warn", rows
    p.close()


def test_E4_cc_without_reason_refused_and_with_reason_kept_in_audit():
    p = stack.producer()
    rep = p.submit(email(subject="Offer letter", cc=["carol@example.com"]))
    refused(rep, "cc-reason", "E4", "msg.cc_reason")
    rep = p.submit(email(subject="Offer letter", cc=["carol@example.com"],
                         cc_reason="Carol files the signed copy"))
    assert rep["ok"], rep
    detail = stack.scalar("SELECT detail FROM herald.audit_events WHERE message_id = %d"
                          " AND kind = 'message.accepted'" % rep["id"])
    assert "Carol files the signed copy" in detail, detail
    p.close()


def test_A2_1_sensitive_term_after_folding_holds_with_a_finding():
    p = stack.producer()
    rep = p.submit(email(subject="Ｓａｌａｒｙ review", body="numbers inside"))
    assert rep["ok"] and (rep["class"], rep["state"]) == ("important", "held"), rep
    f = finding(rep, "sensitive-content")
    assert f and f["action"] == "hold" and f["clause"] == "A2.1", rep
    p.close()


def test_I2_uncivil_im_refused_and_long_im_refused_with_document_hint():
    p = stack.producer()
    stack.sql("SELECT herald.group_add('sales-team', 'sales coordination', "
              "'sales-head@example.com', 'slack', 'sales-team', ARRAY['Sales'])")
    rep = p.submit(im(["sales-team"], "Only an IDIOT would ship this"))
    refused(rep, "civility", "I2", "msg.body")
    rep = p.submit(im(["sales-team"], "a" * 2001))
    refused(rep, "im-body-length", "I2", "msg.body")
    assert "document" in rep["reason"], rep
    rep = p.submit(im(["sales-team"], "Standup moved to 10:00"))
    assert rep["ok"], rep
    p.close()


def test_I3_unregistered_group_and_department_outside_scope_refused():
    p = stack.producer()
    stack.sql("SELECT herald.group_add('eng-oncall', 'engineering on-call', "
              "'eng-head@example.com', 'dingtalk', 'eng-oncall', ARRAY['Engineering'])")
    before = count("messages")
    rep = p.submit(im(["random-chat"], "hello team"))
    refused(rep, "im-registered-group", "I3", "msg.to[0]")
    rep = p.submit(im(["eng-oncall"], "can someone look at the build"))  # alice is Sales
    refused(rep, "im-registered-group", "I3", "msg.to[0]")
    assert count("messages") == before
    rows = violations_of("alice@example.com", "im-registered-group")
    assert len(rows) >= 2 and rows[-1][3] == "I3", rows
    rep = p.submit(im(["eng-oncall"], "deploy done", sender="eng-head@example.com"))
    assert rep["ok"], rep
    p.close()


def test_S1_marketing_sms_needs_live_consent_and_opt_out_revokes_it():
    p = stack.producer()
    number = "+8613900000001"
    rep = p.submit(sms([number], "Spring sale: 20% off", purpose="marketing"))
    refused(rep, "sms-marketing-consent", "S1", "msg.to[0]")
    stack.sql("SELECT herald.consent_add('%s', 'web signup form')" % number)
    rep = p.submit(sms([number], "Spring sale: 20% off", purpose="marketing"))
    assert rep["ok"], rep
    stack.sql("SELECT herald.consent_revoke('%s', 'replied STOP')" % number)
    rep = p.submit(sms([number], "Summer sale", purpose="marketing"))
    refused(rep, "sms-marketing-consent", "S1")
    rep = p.submit(sms([number], "Your order has shipped", purpose="service"))
    assert rep["ok"], rep
    p.close()


def test_S2_sms_over_three_parts_refused():
    p = stack.producer()
    rep = p.submit(sms(["+8613900000002"], "好" * 202))
    refused(rep, "sms-length", "S2", "msg.body")
    p.close()


def test_S3_fourth_sms_in_an_hour_is_deferred_not_dropped_and_audited():
    p = stack.producer()
    number = "+8613900000003"
    ids = []
    for i in range(4):
        rep = p.submit(sms([number], "Your code is %04d" % i))
        assert rep["ok"] and rep["state"] == "queued", rep
        ids.append(rep["id"])
    assert finding(rep, "sms-hourly-cap") and finding(rep, "sms-hourly-cap")["action"] == "defer", rep
    delay = float(stack.scalar("SELECT extract(epoch FROM d.next_attempt_at - m.created_at) "
                               "FROM herald.deliveries d JOIN herald.messages m ON m.id = d.message_id "
                               "WHERE d.message_id = %d" % ids[3]))
    assert 3500 < delay <= 3601, delay
    for mid in ids[:3]:
        first = float(stack.scalar("SELECT extract(epoch FROM d.next_attempt_at - m.created_at) "
                                   "FROM herald.deliveries d JOIN herald.messages m "
                                   "ON m.id = d.message_id WHERE d.message_id = %d" % mid))
        assert first < 5, first
    assert count("audit_events", "kind = 'delivery.deferred' AND message_id = %d" % ids[3]) == 1
    assert count("violations", "rule = 'sms-hourly-cap'") == 0  # a deferral is not a violation
    p.close()


def test_S3_quiet_hours_defer_service_sms_but_not_urgent():
    # A second broker whose quiet hours are the two hours around now (UTC).
    now_min = int(float(stack.scalar("SELECT extract(epoch FROM now())")) // 60) % 1440
    start, end = (now_min - 60) % 1440, (now_min + 60) % 1440
    _, endpoint, _, _ = stack.start_broker(config_extra=CONFIG + """
policy = { rules = ( { id = "sms-quiet-hours"; enabled = true; start = "%02d:%02d"; end = "%02d:%02d";
                       utc_offset_minutes = 0; } ); };
""" % (start // 60, start % 60, end // 60, end % 60), log_name="heraldd-quiet.log")
    p = Producer(endpoint)
    wait_until(p.ping, timeout=15, what="second heraldd ready")
    rep = p.submit(sms(["+8613900000004"], "Your parcel arrives tomorrow"))
    assert rep["ok"], rep
    f = finding(rep, "sms-quiet-hours")
    assert f and f["action"] == "defer" and f["clause"] == "S3", rep
    wait = float(stack.scalar("SELECT extract(epoch FROM next_attempt_at - now()) "
                              "FROM herald.deliveries WHERE message_id = %d" % rep["id"]))
    assert 3000 < wait <= 3660, wait  # until the end of the window, about an hour
    assert count("audit_events", "kind = 'delivery.deferred' AND message_id = %d" % rep["id"]) == 1
    rep = p.submit(sms(["+8613900000005"], "Server down, call back", purpose="urgent"))
    assert rep["ok"] and finding(rep, "sms-quiet-hours") is None, rep
    wait = float(stack.scalar("SELECT extract(epoch FROM next_attempt_at - now()) "
                              "FROM herald.deliveries WHERE message_id = %d" % rep["id"]))
    assert wait < 5, wait
    p.close()


def test_same_key_twice_in_one_batch_each_gets_the_answer_it_would_get_alone():
    # A broker that waits 300 ms before committing, so both land in one batch.
    _, endpoint, _, _ = stack.start_broker(config_extra=CONFIG + """
intake = { batch_max_wait_ms = 300; };
""", log_name="heraldd-batch.log")
    p = Producer(endpoint)
    wait_until(p.ping, timeout=15, what="batching heraldd ready")
    for order in (("clean", "refused"), ("refused", "clean")):
        key = random_key()
        msgs = {"clean": email(subject="Quarterly numbers", body="All good.", idempotency_key=key),
                "refused": email(subject="Quarterly numbers", body="a fake invoice inside",
                                 idempotency_key=key)}
        rids = [p.send(p.request(msgs[k])) for k in order]
        reps = {}
        while len(reps) < 2:
            rep = p.recv(5000)
            assert rep is not None, "no reply"
            reps[rep["rid"]] = rep
        first, second = reps[rids[0]], reps[rids[1]]
        stored = count("messages", "idempotency_key = '%s'" % key)
        if order[0] == "clean":
            # Stored first: the second is a resend of a stored message.
            assert first["ok"] and not first["duplicate"], first
            assert second["ok"] and second["duplicate"] and second["id"] == first["id"], second
            assert second["findings"] == [], second
        else:
            # Refused first (nothing stored): the second is judged on its own.
            assert first["ok"] is False and first["code"] == "policy", first
            assert second["ok"] and not second["duplicate"], second
        assert stored == 1, stored
    p.close()


def test_K2_a_refused_confidential_message_keeps_its_reason_and_violation():
    # The main broker has no sealing key: a confidential message the policy
    # refuses is refused for its content, and recorded, not for the key.
    before = count("violations", "rule = 'prohibited-content'")
    p = stack.producer()
    rep = p.submit(email(subject="Deal", body="fake invoice attached", flags=["confidential"]))
    refused(rep, "prohibited-content", "G3.1", "msg.body")
    assert count("violations", "rule = 'prohibited-content'") == before + 1
    p.close()


def test_V2_violations_name_sender_department_rule_and_time():
    rows = stack.sql("SELECT sender, department, rule, clause, severity, "
                     "to_char(at, 'YYYY') = to_char(now(), 'YYYY') "
                     "FROM herald.violations WHERE clause = 'G3.1' ORDER BY id LIMIT 1")
    assert rows and rows[0] == ["alice@example.com", "Sales", "prohibited-content", "G3.1",
                                "major", "t"], rows


if __name__ == "__main__":
    with stack:
        stack.start_db()
        stack.start_heraldd()
        run_tests([(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")])
