#!/usr/bin/env python3
"""
NAME
    30-email-smtp-sink - the email driver against real SMTP servers

DESCRIPTION
    Runs the email channel driver through hd-channel-probe (the same
    loop herald-worker runs) against Postfix's smtp-sink and, for
    STARTTLS, an aiosmtpd server with a certificate made by openssl at
    test time (no key is ever committed). Checks what a recipient and an
    operator would: the delivered message parsed by Python's email
    package (headers, RFC 2047 subject, Message-ID derived from the
    delivery, body after dot-stuffing, attachment bytes), one outcome
    per job (2xx delivered, 4xx retry, 5xx failed, no server retry),
    several deliveries carried by one SMTP session that stays open
    between batches and closes after idle_ms, and confidential mail
    never sent without TLS.
"""
import asyncio
import base64
import os
import shutil
import ssl
import tempfile
import threading
import time

import tls_pki
from channel_probe import run
from herald_harness import run_tests
from smtp_sink import SmtpSink, free_port

REPLY_BY = 1767312000  # Fri, 02 Jan 2026 00:00:00 +0000


def config(relay, **extra):
    opts = {"relay": relay, "helo": "herald.test", "starttls": "off", "sessions": 1,
            "idle_ms": 1500, "timeout_ms": 5000, "connect_timeout_ms": 2000,
            "message_id_domain": "herald.test"}
    opts.update(extra)
    body = "".join("  %s = %s;\n" % (k, '"%s"' % v if isinstance(v, str) else
                                     ("true" if v is True else "false" if v is False else v))
                   for k, v in opts.items())
    return "email = {\n%s};\n" % body


def job(delivery_id, recipient, message_id=500, klass="general", **msg):
    m = {"from": "finance@corp.example", "to": [recipient], "subject": "Hello",
         "body": "Hello there.\n"}
    m.update(msg)
    return {"delivery_id": delivery_id, "message_id": message_id, "attempt": 1,
            "recipient": recipient, "kind": "to", "class": klass, "msg": m}


def check_probe(results, stderr, rc, count):
    assert rc == 0, "probe exit %d\n%s" % (rc, stderr)
    assert len(results) == count, (results, stderr)


# ---- content ---------------------------------------------------------------

ATTACHMENT = bytes(range(256)) * 300 + os.urandom(4093)
SUBJECT = "[重要] 第三季度薪酬调整通知 — please review the attached figures before Friday"
BODY = ("Dear team,\n.\n..two dots stay two dots\n.single line dot above\n"
        "A long line: " + "x" * 1200 + "\nEnd.\n")


def test_delivered_mail_has_the_right_headers_body_and_attachment():
    with SmtpSink() as sink:
        msg = {"to": ["alice@corp.example", "bob@corp.example"], "cc": ["carol@corp.example"],
               "subject": SUBJECT, "body": BODY, "html": "<p>Dear team</p>",
               "reply_by": REPLY_BY,
               "attachments": [{"name": "预算 2024.bin", "type": "application/octet-stream",
                                "data_b64": base64.b64encode(ATTACHMENT).decode()}]}
        lines = [job(101, "alice@corp.example", 7, "important", **msg),
                 job(102, "bob@corp.example", 7, "important", **msg),
                 job(103, "carol@corp.example", 7, "important", **msg)]
        results, err, rc = run("email", config(sink.relay), lines)
        check_probe(results, err, rc, 3)
        for d in (101, 102, 103):
            r = results[d]
            assert r["outcome"] == "delivered", r
            assert r["provider"] == "smtp" and r["code"] == "250", r
            assert r["attempt"] == 1
        got = {m["X-Herald-Delivery"]: m for m in sink.messages()}
        assert sorted(got) == ["101", "102", "103"], sorted(got)
        for d, rcpt in ((101, "alice"), (102, "bob"), (103, "carol")):
            m = got[str(d)]
            assert m["X-Rcpt-Args"] == "<%s@corp.example>" % rcpt, m["X-Rcpt-Args"]
            assert m["X-Mail-Args"] == "<finance@corp.example>"
            assert m["X-Helo-Args"] == "herald.test"
            assert m["Message-ID"] == "<d%d.m7@herald.test>" % d, m["Message-ID"]
            assert str(m["Subject"]) == SUBJECT, str(m["Subject"])
            assert m["From"] == "finance@corp.example"
            assert m["To"] == "alice@corp.example, bob@corp.example"
            assert m["Cc"] == "carol@corp.example"
            assert m["Importance"] == "high" and m["X-Priority"] == "1"
            assert m["Reply-By"] == "Fri, 02 Jan 2026 00:00:00 +0000"
            assert m.get_all("Date") and len(m.get_all("Date")) == 1
            assert len(m.get_all("Message-ID")) == 1
            assert m.get_content_type() == "multipart/mixed"
            text = m.get_body(preferencelist=("plain",)).get_content()
            assert text.replace("\r\n", "\n") == (
                "Please reply by Fri, 02 Jan 2026 00:00:00 +0000.\n\n" + BODY), text[:200]
            html = m.get_body(preferencelist=("html",)).get_content()
            assert html.strip() == "<p>Dear team</p>"
            atts = list(m.iter_attachments())
            assert len(atts) == 1
            assert atts[0].get_filename() == "预算 2024.bin"
            assert atts[0].get_content_type() == "application/octet-stream"
            assert atts[0].get_payload(decode=True) == ATTACHMENT
            assert not m.defects, m.defects
        # all three deliveries went through one SMTP session
        c = sink.counters()
        assert c["quit"] == 1 and c["mesg"] == 3, c


def test_one_session_carries_batches_until_idle_then_a_new_one_opens():
    with SmtpSink() as sink:
        lines = [job(201, "a@corp.example"), job(202, "b@corp.example"),
                 {"sleep_ms": 400},                      # < idle_ms: same session
                 job(203, "c@corp.example"), job(204, "d@corp.example"),
                 {"sleep_ms": 1500},                     # > idle_ms: session closed
                 job(205, "e@corp.example")]
        results, err, rc = run("email", config(sink.relay, idle_ms=600), lines)
        check_probe(results, err, rc, 5)
        assert all(r["outcome"] == "delivered" for r in results.values()), results
        c = sink.counters()
        assert c["mesg"] == 5, c
        assert c["quit"] == 2, c
        sessions = [l for l in err.splitlines() if "event=email.session " in l]
        assert len(sessions) == 2, err
        assert "messages=4 delivered=4" in sessions[0], sessions[0]
        assert "messages=1 delivered=1" in sessions[1], sessions[1]


def test_soft_rejections_become_retry_with_the_smtp_code():
    with SmtpSink(["-r", "RCPT"]) as sink:
        results, err, rc = run("email", config(sink.relay),
                               [job(301, "a@corp.example"), job(302, "b@corp.example")])
        check_probe(results, err, rc, 2)
        for r in results.values():
            assert r["outcome"] == "retry", r
            assert r["code"] == "450", r
            assert "4.3.0" in r["detail"], r
        # smtp-sink may open a dump file for a pipelined transaction whose
        # recipients it refused; what matters is that no message went in.
        assert not [m for m in sink.messages() if m["Subject"] or m["From"]]
        # a refused recipient does not end the session: both tried in one
        assert sink.counters()["quit"] == 1
    with SmtpSink(["-r", "."]) as sink:
        results, err, rc = run("email", config(sink.relay), [job(303, "a@corp.example")])
        check_probe(results, err, rc, 1)
        assert results[303]["outcome"] == "retry" and results[303]["code"] == "450", results


def test_hard_rejections_become_failed_with_the_smtp_code():
    with SmtpSink(["-f", "RCPT"]) as sink:
        results, err, rc = run("email", config(sink.relay), [job(401, "a@corp.example")])
        check_probe(results, err, rc, 1)
        r = results[401]
        assert r["outcome"] == "failed" and r["code"] == "500", r
        assert "5.3.0" in r["detail"], r
    with SmtpSink(["-f", "MAIL"]) as sink:
        results, err, rc = run("email", config(sink.relay), [job(402, "a@corp.example")])
        check_probe(results, err, rc, 1)
        assert results[402]["outcome"] == "failed" and results[402]["code"] == "500"
    with SmtpSink(["-f", "."]) as sink:
        results, err, rc = run("email", config(sink.relay), [job(403, "a@corp.example")])
        check_probe(results, err, rc, 1)
        assert results[403]["outcome"] == "failed" and results[403]["code"] == "500"


def test_unreachable_relay_is_retry_and_disconnect_mid_session_is_retry():
    port = free_port()  # nothing listens there
    results, err, rc = run("email", config("127.0.0.1:%d" % port), [job(501, "a@corp.example")])
    check_probe(results, err, rc, 1)
    r = results[501]
    assert r["outcome"] == "retry" and r["code"] == "connect", r
    assert "refused" in r["detail"].lower(), r
    with SmtpSink(["-q", "DATA"]) as sink:  # hang up without a reply
        results, err, rc = run("email", config(sink.relay), [job(502, "a@corp.example")])
        check_probe(results, err, rc, 1)
        assert results[502]["outcome"] == "retry", results
        assert results[502]["code"] == "dropped", results


def test_starttls_required_against_a_server_without_tls_sends_nothing():
    with SmtpSink() as sink:
        lines = [job(601, "a@corp.example"), job(602, "b@corp.example", flags=["confidential"])]
        results, err, rc = run("email", config(sink.relay, starttls="required"), lines)
        check_probe(results, err, rc, 2)
        assert results[601]["outcome"] == "retry", results
        assert results[601]["code"] == "tls-unavailable", results
        assert results[602]["outcome"] == "failed", results
        assert results[602]["code"] == "tls-required", results
        assert sink.messages() == []
        assert sink.counters()["mesg"] == 0


def test_confidential_mail_needs_tls_and_other_mail_still_flows():
    with SmtpSink() as sink:
        # opportunistic: plain mail goes in clear, confidential mail never does
        lines = [job(701, "a@corp.example"), job(702, "b@corp.example", flags=["confidential"]),
                 job(703, "c@corp.example")]
        results, err, rc = run("email", config(sink.relay, starttls="opportunistic"), lines)
        check_probe(results, err, rc, 3)
        assert results[701]["outcome"] == "delivered", results
        assert results[703]["outcome"] == "delivered", results
        assert results[702]["outcome"] == "failed", results
        assert results[702]["code"] == "tls-required", results
        assert sorted(m["X-Herald-Delivery"] for m in sink.messages()) == ["701", "703"]
    with SmtpSink() as sink:
        # starttls off: refused at once, the relay is never contacted
        results, err, rc = run("email", config(sink.relay, starttls="off"),
                               [job(704, "a@corp.example", flags=["confidential"])])
        check_probe(results, err, rc, 1)
        assert results[704]["outcome"] == "failed", results
        assert results[704]["code"] == "tls-required", results
        assert sink.counters() == {"sess": 0, "quit": 0, "mesg": 0}


def test_close_settles_the_job_in_progress_and_returns_the_rest_as_retry():
    with SmtpSink(["-W", "DATA:1"]) as sink:  # the server thinks for a second
        lines = [job(901, "a@corp.example"), job(902, "b@corp.example"),
                 job(903, "c@corp.example"), {"sleep_ms": 300}, {"close": True}]
        results, err, rc = run("email", config(sink.relay, max_messages_per_session=1), lines)
        check_probe(results, err, rc, 3)
        # the message on the wire finishes; the queued ones are handed back
        assert results[901]["outcome"] == "delivered", results
        for d in (902, 903):
            assert results[d]["outcome"] == "retry", results
            assert results[d]["code"] == "stopping", results
        assert [m["X-Herald-Delivery"] for m in sink.messages()] == ["901"]


# ---- STARTTLS against aiosmtpd ------------------------------------------------

class TlsServer:
    """aiosmtpd that refuses MAIL before STARTTLS (require_starttls)."""

    def __init__(self, d, users=None):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        class Handler:
            def __init__(self):
                self.messages = []

            async def handle_DATA(self, server, session, envelope):
                self.messages.append((envelope.rcpt_tos, envelope.content))
                return "250 2.0.0 Ok: queued as TLS%d" % len(self.messages)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
        self.handler = Handler()
        self.port = free_port()
        self.logins = []
        auth = {}
        if users is not None:
            def authenticator(server, session, envelope, mechanism, data):
                login, password = data.login.decode(), data.password.decode()
                self.logins.append((mechanism, login))
                return AuthResult(success=users.get(login) == password)
            auth = {"authenticator": authenticator, "auth_required": True,
                    "auth_require_tls": True}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     tls_context=ctx, require_starttls=True, **auth)
        self.controller.start()

    def stop(self):
        self.controller.stop()


def test_starttls_delivers_confidential_mail_only_to_a_verified_server():
    d = tempfile.mkdtemp(prefix="herald-pki-")
    try:
        tls_pki.make_pki(d)
        home = os.path.join(d, "home")
        os.mkdir(home)
        server = TlsServer(d)
        try:
            relay = "localhost:%d" % server.port
            lines = [job(801, "a@corp.example", flags=["confidential"], subject="机密 salary"),
                     job(802, "b@corp.example")]
            results, err, rc = run("email", config(relay, starttls="required",
                                                   tls_ca_file=os.path.join(d, "ca.pem")),
                                   lines, env={"HOME": home})
            check_probe(results, err, rc, 2)
            for d_id in (801, 802):
                r = results[d_id]
                assert r["outcome"] == "delivered", (r, err)
                assert r["provider_id"].startswith("TLS"), r
            assert len(server.handler.messages) == 2
            assert "tls=yes" in err, err

            # a certificate from an unknown CA: confidential mail is held back,
            # ordinary mail still goes (opportunistic TLS does not verify)
            lines = [job(803, "c@corp.example", flags=["confidential"]),
                     job(804, "d@corp.example")]
            results, err, rc = run("email", config(relay, starttls="opportunistic",
                                                   tls_ca_file=os.path.join(d, "other.pem")),
                                   lines, env={"HOME": home})
            check_probe(results, err, rc, 2)
            assert results[803]["outcome"] == "retry", results
            assert results[803]["code"] == "tls-failed", results
            assert results[804]["outcome"] == "delivered", results
            assert len(server.handler.messages) == 3
            assert server.handler.messages[-1][0] == ["d@corp.example"]
        finally:
            server.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_auth_sends_the_credentials_over_tls_and_a_refusal_is_retry():
    d = tempfile.mkdtemp(prefix="herald-pki-")
    try:
        tls_pki.make_pki(d)
        server = TlsServer(d, users={"herald": "pa ss:wörd"})
        try:
            cfg = config("localhost:%d" % server.port, starttls="required",
                         tls_ca_file=os.path.join(d, "ca.pem"), auth_user="herald")
            results, err, rc = run("email", cfg, [job(1001, "a@corp.example")],
                                   env={"HERALD_SMTP_PASSWORD": "pa ss:wörd"})
            check_probe(results, err, rc, 1)
            assert results[1001]["outcome"] == "delivered", (results, err)
            assert server.logins and server.logins[-1][1] == "herald", server.logins
            assert "wörd" not in err and "pa ss" not in err  # never logged

            cfg = config("localhost:%d" % server.port, starttls="required", timeout_ms=2000,
                         tls_ca_file=os.path.join(d, "ca.pem"), auth_user="herald")
            results, err, rc = run("email", cfg, [job(1002, "b@corp.example")],
                                   env={"HERALD_SMTP_PASSWORD": "wrong"})
            check_probe(results, err, rc, 1)
            # refused credentials never dead-letter the message and send nothing
            # (aiosmtpd's AUTH LOGIN exchange then stalls libESMTP until timeout_ms,
            # so the code is "dropped" here; after a 534/535/538 reply it is "auth")
            r = results[1002]
            assert r["outcome"] == "retry" and r["code"] in ("auth", "dropped"), r
            assert len(server.handler.messages) == 1
        finally:
            server.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run_tests([(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")])
