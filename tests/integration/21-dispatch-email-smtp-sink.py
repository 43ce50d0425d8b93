#!/usr/bin/env python3
"""
NAME
    21-dispatch-email-smtp-sink - submitted email arrives at a real SMTP server

DESCRIPTION
    The whole path with real processes: a producer submits to heraldd,
    heraldd claims and dispatches to herald-worker, whose email driver
    (libesmtp) delivers to Postfix's smtp-sink. Proves a message arrives
    with the right headers and body (UTF-8 subject, attachment intact,
    Message-ID from the delivery id), a 4xx is retried and delivered once
    the server accepts, a 5xx becomes a dead letter, and deliveries made
    while the server is down are retried and sent when it comes back.
"""
import hashlib

from herald_client import email
from herald_harness import Stack, free_port, run_tests, wait_until
from smtp_sink import SmtpSink

CONFIG = """
dispatch = { lease_ms = 10000; heartbeat_ms = 200; poll_ms = 50; };
retry = { min_backoff_ms = 300; max_backoff_ms = 600; max_lifetime_s = 120; };
"""

stack = Stack("email", config_extra=CONFIG)
SINK_PORT = free_port()
sink = None


def restart_sink(options=None):
    global sink
    if sink:
        sink.stop()
    sink = SmtpSink(options, port=SINK_PORT)
    return sink


def deliveries(mid):
    return stack.sql("SELECT id, state, attempts, last_code FROM herald.deliveries "
                     "WHERE message_id = %d ORDER BY id" % mid)


def all_in(mid, state):
    rows = deliveries(mid)
    return rows and all(r[1] == state for r in rows)


def test_A1_email_arrives_with_utf8_subject_attachment_and_message_id():
    restart_sink()
    data = bytes(range(256)) * 300
    p = stack.producer()
    rep = p.submit(email(to=["bob@example.com", "carol@example.com"],
                         subject="季度报告 Q3 ✓ résumé",
                         body="报告见附件 report.bin。\nThe figures are attached.",
                         attachments=[{"name": "report.bin", "type": "application/octet-stream",
                                       "data": data}]))
    assert rep["ok"], rep
    mid = rep["id"]
    wait_until(lambda: all_in(mid, "sent"), 20, what="both deliveries to be sent")
    msgs = [m for m in sink.messages() if "季度报告" in str(m["Subject"])]
    assert len(msgs) == 2, len(msgs)
    ids = {str(r[0]) for r in deliveries(mid)}
    for m in msgs:
        assert str(m["Subject"]) == "季度报告 Q3 ✓ résumé"
        assert m["From"] == "alice@example.com"
        assert "bob@example.com" in str(m["To"]) and "carol@example.com" in str(m["To"])
        mid_header = str(m["Message-ID"])
        assert any(("d%s." % d) in mid_header for d in ids), mid_header
        att = [part for part in m.iter_attachments()]
        assert len(att) == 1 and att[0].get_filename() == "report.bin"
        assert hashlib.sha256(att[0].get_content()).hexdigest() == hashlib.sha256(data).hexdigest()
        assert "The figures are attached." in m.get_body(("plain",)).get_content()
    p.close()


def test_4xx_is_retried_and_delivered_once_the_server_accepts():
    restart_sink(["-r", "RCPT"])
    p = stack.producer()
    mid = p.submit(email(subject="retry me"))["id"]
    wait_until(lambda: any(r[1] == "retry_wait" and (r[3] or "").startswith("4")
                           for r in deliveries(mid)), 20, what="a 4xx retry")
    restart_sink()
    wait_until(lambda: all_in(mid, "sent"), 20, what="delivery after the server recovers")
    assert int(deliveries(mid)[0][2]) >= 2
    assert any(str(m["Subject"]) == "retry me" for m in sink.messages())
    p.close()


def test_5xx_becomes_a_dead_letter_listed_by_heraldctl_dead():
    restart_sink(["-f", "RCPT"])
    p = stack.producer()
    mid = p.submit(email(subject="hard failure"))["id"]
    wait_until(lambda: all_in(mid, "failed"), 20, what="a dead letter")
    row = deliveries(mid)[0]
    assert int(row[2]) == 1 and row[3].startswith("5"), row
    dead = stack.heraldctl("dead", "--json")
    assert str(row[0]) in dead.stdout
    p.close()


def test_server_down_for_a_while_deliveries_are_retried_and_sent_when_it_returns():
    global sink
    restart_sink()
    sink.stop()
    sink = None
    p = stack.producer()
    mids = [p.submit(email(subject="while down %d" % i))["id"] for i in range(20)]
    wait_until(lambda: all(all_in(m, "retry_wait") for m in mids), 20,
               what="all 20 to be waiting for a retry")
    restart_sink()
    wait_until(lambda: all(all_in(m, "sent") for m in mids), 30, what="all 20 to be sent")
    got = [str(m["Subject"]) for m in sink.messages() if str(m["Subject"]).startswith("while down")]
    assert len(got) == 20, len(got)
    p.close()


if __name__ == "__main__":
    with stack:
        stack.start_db()
        stack.start_heraldd()
        stack.start_worker("""
credit = 64;
heartbeat_ms = 200;
email = { relay = "127.0.0.1:%d"; starttls = "off"; timeout_ms = 5000; };
""" % SINK_PORT, name="mail")
        try:
            run_tests([
                ("test_A1_email_arrives_with_utf8_subject_attachment_and_message_id",
                 test_A1_email_arrives_with_utf8_subject_attachment_and_message_id),
                ("test_4xx_is_retried_and_delivered_once_the_server_accepts",
                 test_4xx_is_retried_and_delivered_once_the_server_accepts),
                ("test_5xx_becomes_a_dead_letter_listed_by_heraldctl_dead",
                 test_5xx_becomes_a_dead_letter_listed_by_heraldctl_dead),
                ("test_server_down_for_a_while_deliveries_are_retried_and_sent_when_it_returns",
                 test_server_down_for_a_while_deliveries_are_retried_and_sent_when_it_returns),
            ])
        finally:
            if sink:
                sink.stop()
