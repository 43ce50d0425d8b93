#!/usr/bin/env python3
"""
NAME
    11-intake-malformed-frames - bad input gets a precise error, writes nothing

DESCRIPTION
    Sends 1,000 malformed frames (random bytes, truncated msgpack, wrong
    types, unknown fields, over-limit values, oversize and multipart
    frames) to a real heraldd. Every decodable-or-not frame must get
    exactly one ERROR with the right code and field, except frames over
    max_frame_bytes, which ZeroMQ answers by dropping the connection.
    Afterwards no row was written and heraldd still serves.
"""
import random

import msgpack
import zmq

from herald_client import email
from herald_harness import Stack, run_tests

MAX_FRAME = 65536
stack = Stack("malformed", config_extra="intake = { max_frame_bytes = %d; max_recipients = 100; };"
              % MAX_FRAME)
rng = random.Random(20261128)


def valid_request(rid):
    return {"v": 1, "rid": rid, "op": "submit", "app": "fuzz", "msg": email()}


def expect_error(p, frame, codes, field=None, rid=None):
    p.send_raw(frame)
    rep = p.recv(5000)
    assert rep is not None, "no reply to %r" % frame[:40]
    assert rep["ok"] is False, rep
    assert rep["code"] in codes, (rep, frame[:60])
    if field is not None:
        assert rep["field"] == field, (rep, field)
    if rid is not None:
        assert rep["rid"] == rid, rep
    assert rep["retryable"] is False, rep
    return rep


def wrong_type_cases():
    cases = []
    for key, bad in [("v", "1"), ("rid", "x"), ("op", 3), ("app", 5), ("msg", [1])]:
        r = valid_request(1)
        r[key] = bad
        cases.append((r, key))
    for key, bad in [("channel", 1), ("from", 2), ("to", "bob@example.com"), ("subject", 3),
                     ("body", True), ("flags", "important"), ("reply_by", "tomorrow"),
                     ("tags", ["a"]), ("attachments", {"a": 1}), ("idempotency_key", 9),
                     ("cc", 1), ("bulk", "yes")]:
        r = valid_request(1)
        r["msg"][key] = bad
        cases.append((r, "msg." + key))
    r = valid_request(1)
    r["msg"]["to"] = ["bob@example.com", 7]
    cases.append((r, "msg.to[1]"))
    r = valid_request(1)
    r["msg"]["attachments"] = [{"name": "a.txt", "type": "text/plain", "data": "not-bin"}]
    cases.append((r, "msg.attachments[0].data"))
    return cases


def table_counts():
    return [int(stack.scalar("SELECT count(*) FROM herald.%s" % t))
            for t in ("messages", "deliveries", "audit_events")]


def test_1000_malformed_frames_each_get_the_right_error_and_nothing_is_written():
    before = table_counts()  # the organisation import is audited too
    p = stack.producer()
    sent = 0
    # 300 random byte strings: any error, never a crash, never an ACK.
    for _ in range(300):
        frame = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
        expect_error(p, frame, {"malformed", "wrong_type", "unknown_field", "missing", "version",
                                "invalid", "too_big"})
        sent += 1
    # 200 truncations of a valid request: malformed, rid still echoed when readable.
    full = msgpack.packb(valid_request(4242), use_bin_type=True)
    for i in range(200):
        cut = 1 + (i * (len(full) - 2)) // 199
        expect_error(p, full[:cut], {"malformed", "missing"})
        sent += 1
    # 200 wrong types, each naming its field.
    cases = wrong_type_cases()
    for i in range(200):
        req, field = cases[i % len(cases)]
        # A rid of the wrong type cannot be echoed: the reply carries rid 0.
        rid = 0 if field == "rid" else 1000 + i
        if field != "rid":
            req = dict(req, rid=rid)
        expect_error(p, msgpack.packb(req, use_bin_type=True), {"wrong_type"}, field, rid)
        sent += 1
    # 200 unknown fields at every level.
    for i in range(200):
        req = valid_request(2000 + i)
        where = i % 3
        if where == 0:
            req["x-extra-%d" % i] = 1
            field = "x-extra-%d" % i
        elif where == 1:
            req["msg"]["priority"] = "high"
            field = "msg.priority"
        else:
            req["msg"]["attachments"] = [{"name": "a.txt", "type": "text/plain", "data": b"x",
                                          "size": 1}]
            field = "msg.attachments[0].size"
        expect_error(p, msgpack.packb(req, use_bin_type=True), {"unknown_field"}, field, 2000 + i)
        sent += 1
    # 100 over-limit values within the frame limit.
    for i in range(100):
        req = valid_request(3000 + i)
        kind = i % 4
        if kind == 0:
            req["msg"]["to"] = ["u%d@example.com" % k for k in range(101)]
            field = "msg.to"
        elif kind == 1:
            req["msg"]["subject"] = "s" * 999
            field = "msg.subject"
        elif kind == 2:
            req["msg"]["idempotency_key"] = "k" * 129
            field = "msg.idempotency_key"
        else:
            req["msg"]["tags"] = {"t%d" % k: "v" for k in range(33)}
            field = "msg.tags"
        expect_error(p, msgpack.packb(req, use_bin_type=True), {"too_big"}, field, 3000 + i)
        sent += 1
    assert sent == 1000
    # Invalid values and protocol version.
    req = valid_request(5)
    req["msg"]["to"] = ["bob@@example.com"]
    expect_error(p, msgpack.packb(req), {"invalid"}, "msg.to[0]", 5)
    req = valid_request(6)
    req["v"] = 2
    expect_error(p, msgpack.packb(req), {"version"}, "v", 6)
    req = valid_request(8)
    expect_error(p, msgpack.packb(req) + b"\x00", {"malformed"})
    # A multipart request is malformed.
    p.sock.send_multipart([msgpack.packb(valid_request(9)), b"extra"])
    rep = p.recv(5000)
    assert rep and rep["ok"] is False and rep["code"] == "malformed", rep
    p.close()

    assert before[0] == 0, "no message before the flood"
    assert table_counts() == before, (table_counts(), before)
    assert stack.heraldd.poll() is None, "heraldd died"
    assert stack.log().count("event=intake.reject") >= 1000


def test_frame_over_max_frame_bytes_drops_the_connection_and_heraldd_keeps_serving():
    p = stack.producer()
    req = valid_request(77)
    req["msg"]["body"] = "x" * (MAX_FRAME + 10)
    p.send(req)
    assert p.recv(1500) is None, "an oversize frame must not be answered"
    # The DEALER reconnects by itself; the next request is served.
    rep = p.submit(email(), timeout_ms=10000)
    assert rep is not None and rep["ok"], rep
    p.close()
    assert stack.heraldd.poll() is None


def test_heraldd_still_serves_after_the_flood():
    p = stack.producer()
    rep = p.submit(email(subject="after the flood"))
    assert rep["ok"] and rep["class"] == "general", rep
    p.close()


if __name__ == "__main__":
    with stack:
        stack.start_db()
        stack.start_heraldd()
        run_tests([
            ("test_1000_malformed_frames_each_get_the_right_error_and_nothing_is_written",
             test_1000_malformed_frames_each_get_the_right_error_and_nothing_is_written),
            ("test_frame_over_max_frame_bytes_drops_the_connection_and_heraldd_keeps_serving",
             test_frame_over_max_frame_bytes_drops_the_connection_and_heraldd_keeps_serving),
            ("test_heraldd_still_serves_after_the_flood", test_heraldd_still_serves_after_the_flood),
        ])
