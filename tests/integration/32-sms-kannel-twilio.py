#!/usr/bin/env python3
"""
NAME
    32-sms-kannel-twilio - the SMS driver through a real Kannel to a fake
    phone network, and against an emulated Twilio and generic gateway

DESCRIPTION
    Kannel (bearerbox + smsbox, `smsc = fake`, fakesmsc as the phones) is
    started on free ports by tests/support/kannel.py; the driver runs in
    hd-channel-probe exactly as in herald-worker. What the handset shows
    is decoded from fakesmsc's output: a Chinese verification code must
    arrive intact as UCS-2, plain text as GSM-7, a long text as
    concatenated parts. Twilio and a generic gateway are emulated by
    tests/support/provider_sink.py (basic auth, documented error codes).
    Also: too-long texts, bad credentials, a dead gateway, TLS-only
    confidential messages, and no password in any output. One test runs
    the whole path: producer -> heraldd (PostgreSQL) -> herald-worker ->
    Kannel -> phone.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

from channel_probe import probe_path
from herald_harness import Stack, free_port, run_tests, wait_until
from kannel import Kannel
from provider_sink import Sink

TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "tw1l10-auth-t0ken"
PHONE = "+8613800138000"

tmp = tempfile.mkdtemp(prefix="herald-sms-")
kannel = Kannel(password="k4nnel-Pa55")
sink = Sink(auth={"/twilio": "%s:%s" % (TWILIO_SID, TWILIO_TOKEN)})


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def kannel_conf(password=None, url=None, max_segments=4):
    secret = write("kannel.secret", (password or kannel.password) + "\n")
    return ('sms = { provider = "kannel"; url = "%s"; username = "%s"; secret_file = "%s";\n'
            '  from = "+10086"; timeout_ms = 5000; connect_timeout_ms = 1000;\n'
            '  max_segments = %d; };\n' % (url or kannel.sendsms_base, kannel.username, secret,
                                          max_segments))


def twilio_conf(token=TWILIO_TOKEN):
    return ('sms = { provider = "twilio"; url = "%s"; username = "%s"; secret_env = "HD_TWILIO_TOKEN";\n'
            '  from = "+15550001111"; timeout_ms = 5000; };\n' % (sink.url("/twilio"), TWILIO_SID)), token


def run_probe(conf, jobs, token=TWILIO_TOKEN):
    lines = [json.dumps({"delivery_id": j["id"], "message_id": 500 + j["id"], "attempt": 1,
                         "recipient": j.get("to", PHONE), "kind": "to",
                         "msg": {"from": "otp", "body": j["body"], "flags": j.get("flags", [])}},
                        ensure_ascii=False) for j in jobs]
    env = dict(os.environ, HD_TWILIO_TOKEN=token)
    p = subprocess.run([probe_path(), "--driver", "sms", "--config", write("sms.conf", conf)],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120,
                       env=env)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    out = {}
    for line in p.stdout.splitlines():
        r = json.loads(line)
        assert r["delivery_id"] not in out
        out[r["delivery_id"]] = r
    assert len(out) == len(jobs), (out, p.stderr)
    return out, p.stdout + p.stderr


def mt_to(number):
    return lambda m: m["to"] == number


# ---- Kannel ---------------------------------------------------------------

def test_chinese_verification_code_reaches_the_phone_intact_as_ucs2():
    to = "+8613800138001"
    res, _ = run_probe(kannel_conf(), [{"id": 1, "to": to, "body": "验证码 4821，请勿泄露"}])
    assert res[1]["outcome"] == "delivered" and res[1]["provider"] == "kannel", res[1]
    assert res[1]["code"] == "0" and "Accepted for delivery" in res[1]["detail"], res[1]
    got = kannel.wait_messages(mt_to(to))
    assert len(got) == 1, got
    assert got[0]["type"] in ("ucs-2", "ucs2"), got[0]
    assert got[0]["text"] == "验证码 4821，请勿泄露", got[0]
    assert got[0]["from"] == "+10086"


def test_plain_text_goes_as_gsm7_text():
    to = "+8613800138002"
    res, _ = run_probe(kannel_conf(), [{"id": 1, "to": to, "body": "Your code is 4821 {ok}"}])
    assert res[1]["outcome"] == "delivered", res[1]
    got = kannel.wait_messages(mt_to(to))
    assert [(m["type"], m["text"]) for m in got] == [("text", "Your code is 4821 {ok}")], got


def test_long_texts_arrive_as_concatenated_parts_in_both_encodings():
    to_gsm, to_ucs = "+8613800138003", "+8613800138004"
    gsm = "".join(chr(ord("a") + i % 26) for i in range(300))    # 300 septets: 2 parts
    ucs = "第7条。" * 40                                           # 160 UTF-16 units: 3 parts
    res, _ = run_probe(kannel_conf(), [{"id": 1, "to": to_gsm, "body": gsm},
                                       {"id": 2, "to": to_ucs, "body": ucs}])
    assert res[1]["outcome"] == "delivered" and res[2]["outcome"] == "delivered", res
    parts = kannel.wait_messages(mt_to(to_gsm), count=2)
    assert len(parts) == 2 and all(p["type"] == "udh" for p in parts), parts
    assert Kannel.reassemble(parts, ucs2=False) == gsm
    parts = kannel.wait_messages(mt_to(to_ucs), count=3)
    assert len(parts) == 3, parts
    assert Kannel.reassemble(parts, ucs2=True) == ucs


def test_text_over_max_segments_fails_and_never_reaches_kannel():
    to = "+8613800138005"
    res, _ = run_probe(kannel_conf(max_segments=2), [{"id": 1, "to": to, "body": "验" * 140}])
    assert res[1]["outcome"] == "failed" and res[1]["code"] == "too-long", res[1]
    assert "3 ucs2 segments" in res[1]["detail"], res[1]
    time.sleep(1.0)
    assert kannel.wait_messages(mt_to(to), timeout=0.5) == []


def test_wrong_kannel_password_fails_and_the_password_is_not_printed():
    res, text = run_probe(kannel_conf(password="not-the-Pa55"), [{"id": 1, "body": "hello"}])
    assert res[1]["outcome"] == "failed" and res[1]["code"] == "403", res[1]
    assert "Authorization failed" in res[1]["detail"], res[1]
    assert "not-the-Pa55" not in text and kannel.password not in text


def test_dead_gateway_is_retry():
    res, _ = run_probe(kannel_conf(url="http://127.0.0.1:%d" % free_port()),
                       [{"id": 1, "body": "hello"}])
    assert res[1]["outcome"] == "retry" and res[1]["code"] == "transport", res[1]


def test_confidential_sms_refuses_a_plain_http_gateway():
    to = "+8613800138006"
    res, _ = run_probe(kannel_conf(), [{"id": 1, "to": to, "body": "secret", "flags": ["confidential"]}])
    assert res[1]["outcome"] == "failed" and res[1]["code"] == "tls-required", res[1]
    assert kannel.wait_messages(mt_to(to), timeout=0.5) == []


# ---- Twilio (emulated) -----------------------------------------------------

def test_twilio_created_message_is_delivered_with_its_sid():
    sink.reset()
    conf, token = twilio_conf()
    res, text = run_probe(conf, [{"id": 1, "to": "+15551234567", "body": "Code: 4821 & go"}], token)
    r = res[1]
    assert r["outcome"] == "delivered" and r["provider"] == "twilio" and r["code"] == "201", r
    assert r["provider_id"].startswith("SM") and len(r["provider_id"]) == 34, r
    req = sink.requests("/twilio")[-1]
    assert req["path"] == "/twilio/2010-04-01/Accounts/%s/Messages.json" % TWILIO_SID
    assert req["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert req["auth"] == TWILIO_SID
    assert req["response"] and json.loads(req["response"])["sid"] == r["provider_id"]
    form = dict(x.split("=", 1) for x in req["body"].split("&"))
    assert form == {"To": "%2B15551234567", "From": "%2B15550001111",
                    "Body": "Code%3A%204821%20%26%20go"}, form
    assert TWILIO_TOKEN not in text


def test_twilio_errors_map_to_twilio_codes():
    sink.reset()
    conf, _ = twilio_conf()
    res, _ = run_probe(conf, [{"id": 1, "body": "x"}], token="wrong-token")
    assert res[1]["outcome"] == "failed" and res[1]["code"] == "20003", res[1]
    sink.control("/twilio", mode="ratelimit", count=1)
    res, _ = run_probe(conf, [{"id": 2, "to": "+15551234567", "body": "x"}])
    assert res[2]["outcome"] == "retry" and res[2]["code"] == "20429", res[2]
    assert res[2]["detail"] == "Too Many Requests", res[2]
    sink.control("/twilio", mode="5xx", count=1)
    res, _ = run_probe(conf, [{"id": 4, "to": "+15551234567", "body": "x"}])
    assert res[4]["outcome"] == "retry" and res[4]["code"] == "20500", res[4]
    res, _ = run_probe(conf, [{"id": 5, "to": "+1555", "body": "x"}])
    assert res[5]["outcome"] == "failed" and res[5]["code"] == "21211", res[5]
    assert "Invalid 'To' Phone Number" in res[5]["detail"]


# ---- generic ---------------------------------------------------------------

def test_generic_gateway_gets_json_and_honours_retry_after():
    sink.reset()
    conf = 'sms = { provider = "generic"; url = "%s"; from = "HERALD"; };\n' % sink.url("/generic/sms")
    res, _ = run_probe(conf, [{"id": 1, "to": "+15551234567", "body": "验证码 1234"}])
    assert res[1]["outcome"] == "delivered" and res[1]["provider_id"].startswith("gen-"), res[1]
    assert sink.requests("/generic/sms")[-1]["json"] == {"to": "+15551234567", "from": "HERALD",
                                                          "text": "验证码 1234"}
    sink.control("/generic/sms", mode="ratelimit", count=1, retry_after="42")
    res, _ = run_probe(conf, [{"id": 2, "body": "x"}])
    assert res[2]["outcome"] == "retry" and res[2]["retry_after_ms"] == 42000, res[2]
    sink.control("/generic/sms", mode="error", count=1)
    res, _ = run_probe(conf, [{"id": 3, "body": "x"}])
    assert res[3]["outcome"] == "failed" and res[3]["code"] == "400", res[3]


# ---- through heraldd and herald-worker ---------------------------------------

DISPATCH = """
dispatch = { lease_ms = 5000; heartbeat_ms = 200; poll_ms = 50; };
retry = { min_backoff_ms = 200; max_backoff_ms = 400; max_lifetime_s = 60; };
"""


def test_through_heraldd_and_herald_worker_sms_reach_the_phones_via_kannel():
    to_cn, to_us = "+8613800138010", "+15551230010"
    with Stack("sms-e2e", config_extra=DISPATCH) as st:
        st.start_db()
        st.start_heraldd()
        st.start_worker("credit = 16;\nheartbeat_ms = 200;\n" + kannel_conf(max_segments=2))
        p = st.producer()
        ok = p.submit({"channel": "sms", "from": "otp@example.com", "to": [to_cn, to_us],
                       "body": "验证码 4821，请勿泄露", "purpose": "service"})
        long = p.submit({"channel": "sms", "from": "otp@example.com", "to": ["+15551230011"],
                         "body": "x" * 400, "purpose": "service"})
        assert ok["ok"] and long["ok"], (ok, long)
        p.close()

        def states(mid):
            return dict(st.sql("SELECT recipient, state FROM herald.deliveries WHERE message_id = %d"
                               % mid))
        wait_until(lambda: states(ok["id"]) == {to_cn: "sent", to_us: "sent"}, 20,
                   what="SMS deliveries to be sent")
        wait_until(lambda: states(long["id"]) == {"+15551230011": "failed"}, 20,
                   what="the too-long SMS to fail")
        codes = st.sql("SELECT last_provider, last_code FROM herald.deliveries WHERE message_id IN"
                       " (%d, %d) ORDER BY id" % (ok["id"], long["id"]))
        assert codes == [["kannel", "0"], ["kannel", "0"], ["kannel", "too-long"]], codes
        for to in (to_cn, to_us):
            got = kannel.wait_messages(mt_to(to))
            assert [m["text"] for m in got] == ["验证码 4821，请勿泄露"], got
        assert kannel.password not in st.worker_log()


if __name__ == "__main__":
    ok = False
    try:
        kannel.start()
        ok = True
        run_tests([(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")])
    finally:
        sink.stop()
        kannel.cleanup(keep=not ok)
        shutil.rmtree(tmp, ignore_errors=True)
