#!/usr/bin/env python3
"""
NAME
    31-im-providers - the IM driver against emulated Slack, Mattermost,
    Teams, WeCom, DingTalk, Feishu and generic webhooks

DESCRIPTION
    Runs the real driver (libcurl multi in the worker's poll loop) through
    hd-channel-probe, against tests/support/provider_sink.py, which answers
    as each provider documents and verifies DingTalk/Feishu signatures
    itself. Checks what an operator would: the outcome per provider for
    success, an error code inside an HTTP 200, 429 with Retry-After (seconds
    and HTTP-date), provider rate-limit codes, 5xx, a dead endpoint, a
    timeout, wrong signing secrets, TLS-only confidential messages, the
    payload each provider received, connection reuse, and that no secret
    or webhook token leaks into results or logs. One test runs the whole
    path: producer -> heraldd (PostgreSQL) -> herald-worker -> provider.
"""
import email.utils
import json
import os
import shutil
import subprocess
import tempfile
import time

from channel_probe import probe_path
from herald_harness import Stack, run_tests, wait_until
from provider_sink import Sink

DING_SECRET = "SECd1ngt4lk0123456789abcdef"
FEISHU_SECRET = "fe1shu-s1gning-secret"
WECOM_KEY = "WECOMKEY-693a91f6-7xx"
SLACK_TOKEN = "XOXSLACKTOKEN42"

sink = Sink(secrets={"/dingtalk/sre": DING_SECRET, "/dingtalk/sre-wrong": DING_SECRET,
                     "/feishu/fs": FEISHU_SECRET, "/feishu/fs-wrong": FEISHU_SECRET})
tmp = tempfile.mkdtemp(prefix="herald-im-")


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


DING_SECRET_FILE = write("ding.secret", DING_SECRET + "\n")
WRONG_SECRET_FILE = write("wrong.secret", "SECnot-the-right-one\n")


def config(timeout_ms=3000):
    u = sink.url
    groups = [
        ("ops", "slack", u("/slack/ops/T000/B000/" + SLACK_TOKEN), ""),
        ("mm", "mattermost", u("/mattermost/mm"), ""),
        ("teams", "teams", u("/teams/teams?sig=TEAMSSIG"), ""),
        ("cn-ops", "wecom", u("/wecom/cn-ops?key=" + WECOM_KEY), ""),
        ("sre", "dingtalk", u("/dingtalk/sre?access_token=DINGTOKEN"),
         'secret_file = "%s";' % DING_SECRET_FILE),
        ("sre-wrong", "dingtalk", u("/dingtalk/sre-wrong?access_token=DINGTOKEN"),
         'secret_file = "%s";' % WRONG_SECRET_FILE),
        ("fs", "feishu", u("/feishu/fs"), 'secret_env = "HD_FEISHU_SECRET";'),
        ("fs-wrong", "feishu", u("/feishu/fs-wrong"), 'secret_env = "HD_WRONG_SECRET";'),
        ("gen", "generic", u("/generic/gen"), ""),
        ("secure", "generic", "https://127.0.0.1:1/generic/secure", ""),
    ]
    body = ",\n".join('    { name = "%s"; provider = "%s"; url = "%s"; %s }' % g for g in groups)
    return write("im.conf", "im = {\n  timeout_ms = %d;\n  connect_timeout_ms = 1000;\n"
                            "  max_in_flight = 64;\n  max_host_connections = 8;\n  groups = (\n%s\n  );\n};\n" % (timeout_ms, body))


def run_probe(jobs, timeout_ms=3000):
    """Submit jobs (dicts); return ({delivery_id: result}, stderr)."""
    lines = []
    for j in jobs:
        if "sleep_ms" in j:
            lines.append(json.dumps(j))
            continue
        lines.append(json.dumps({
            "delivery_id": j["id"], "message_id": j.get("mid", 1000 + j["id"]), "attempt": 1,
            "recipient": j["group"], "kind": "to",
            "msg": {"from": "alerts", "subject": j.get("subject", "Disk almost full"),
                    "body": j.get("body", "db1 /var at 97%"), "flags": j.get("flags", [])}},
            ensure_ascii=False))
    env = dict(os.environ, HD_FEISHU_SECRET=FEISHU_SECRET, HD_WRONG_SECRET="not-it")
    p = subprocess.run([probe_path(), "--driver", "im", "--config", config(timeout_ms)],
                       input="\n".join(lines) + "\n", capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    out = {}
    for line in p.stdout.splitlines():
        r = json.loads(line)
        assert r["delivery_id"] not in out, "reported twice: %s" % line
        out[r["delivery_id"]] = r
    assert len(out) == len([j for j in jobs if "id" in j]), (out, p.stderr)
    return out, p.stdout + p.stderr


ALL = ["ops", "mm", "teams", "cn-ops", "sre", "fs", "gen"]
PATH = {"ops": "/slack/ops", "mm": "/mattermost/mm", "teams": "/teams/teams",
        "cn-ops": "/wecom/cn-ops", "sre": "/dingtalk/sre", "fs": "/feishu/fs", "gen": "/generic/gen"}


def last_request(path):
    reqs = sink.requests(path)
    assert reqs, "the sink saw nothing on %s" % path
    return reqs[-1]


def test_every_provider_delivers_and_receives_its_documented_payload():
    sink.reset()
    jobs = [{"id": i + 1, "group": g, "subject": "磁盘告警", "body": "db1 已用 97%"}
            for i, g in enumerate(ALL)]
    res, _ = run_probe(jobs)
    for i, g in enumerate(ALL):
        r = res[i + 1]
        assert r["outcome"] == "delivered", (g, r)
    assert res[1]["provider"] == "slack" and res[1]["code"] == "200"
    assert res[4]["code"] == "errcode=0" and res[5]["code"] == "errcode=0"
    assert res[6]["code"] == "code=0"
    assert res[7]["provider_id"].startswith("gen-"), res[7]
    text = "磁盘告警\n\ndb1 已用 97%"
    assert last_request("/slack/ops")["json"] == {"text": text}
    assert last_request("/mattermost/mm")["json"] == {"text": text}
    card = last_request("/teams/teams")["json"]
    assert card["type"] == "message"
    att = card["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert att["content"]["type"] == "AdaptiveCard"
    assert [b["text"] for b in att["content"]["body"]] == ["磁盘告警", "db1 已用 97%"]
    assert last_request("/wecom/cn-ops")["json"] == {"msgtype": "text", "text": {"content": text}}
    ding = last_request("/dingtalk/sre")
    assert ding["json"] == {"msgtype": "text", "text": {"content": text}}
    assert ding["query"]["access_token"] == "DINGTOKEN"
    assert abs(int(ding["query"]["timestamp"]) / 1000 - time.time()) < 60
    fei = last_request("/feishu/fs")["json"]
    assert fei["msg_type"] == "text" and fei["content"] == {"text": text}
    assert abs(int(fei["timestamp"]) - time.time()) < 60 and fei["sign"]
    gen = last_request("/generic/gen")["json"]
    assert gen == {"group": "gen", "subject": "磁盘告警", "body": "db1 已用 97%",
                   "delivery_id": 7, "message_id": 1007}, gen
    assert last_request("/slack/ops")["headers"]["Content-Type"].startswith("application/json")


def test_wrong_signing_secret_is_refused_by_the_provider_and_fails():
    sink.reset()
    res, _ = run_probe([{"id": 1, "group": "sre-wrong"}, {"id": 2, "group": "fs-wrong"}])
    assert res[1]["outcome"] == "failed" and res[1]["code"] == "errcode=310000", res[1]
    assert "sign not match" in res[1]["detail"]
    assert res[2]["outcome"] == "failed" and res[2]["code"] == "code=19021", res[2]


def test_error_code_in_a_200_body_and_4xx_errors_fail():
    sink.reset()
    for g in ALL:
        sink.control(PATH[g], mode="error", count=1)
    res, _ = run_probe([{"id": i + 1, "group": g} for i, g in enumerate(ALL)])
    want = {"ops": "400", "mm": "400", "teams": "400", "cn-ops": "errcode=93000",
            "sre": "errcode=300001", "fs": "code=19001", "gen": "400"}
    for i, g in enumerate(ALL):
        r = res[i + 1]
        assert r["outcome"] == "failed" and r["code"] == want[g], (g, r)
    assert res[1]["detail"] == "invalid_payload", res[1]
    # the HTTP status of the body-coded errors was 200
    for path in ("/wecom/cn-ops", "/dingtalk/sre", "/feishu/fs"):
        assert last_request(path)["status"] == 200


def test_429_and_rate_limit_codes_retry_after_the_stated_time():
    sink.reset()
    date = email.utils.formatdate(time.time() + 120, usegmt=True)
    sink.control("/slack/ops", mode="ratelimit", count=1, retry_after="7")
    sink.control("/generic/gen", mode="ratelimit", count=1, retry_after=date)
    sink.control("/teams/teams", mode="ratelimit", count=1, retry_after="3")
    sink.control("/mattermost/mm", mode="ratelimit", count=1, retry_after="11")
    for path in ("/wecom/cn-ops", "/dingtalk/sre", "/feishu/fs"):
        sink.control(path, mode="ratelimit", count=1)
    res, _ = run_probe([{"id": i + 1, "group": g} for i, g in enumerate(ALL)])
    for r in res.values():
        assert r["outcome"] == "retry", r
    assert res[1]["retry_after_ms"] == 7000 and res[1]["code"] == "429", res[1]
    assert res[2]["retry_after_ms"] == 11000, res[2]
    assert res[3]["retry_after_ms"] == 3000, res[3]
    assert res[4]["code"] == "errcode=45009" and res[4]["retry_after_ms"] == 60000, res[4]
    assert res[5]["code"] == "errcode=130101" and res[5]["retry_after_ms"] == 60000, res[5]
    assert res[6]["code"] == "code=9499" and res[6]["retry_after_ms"] == 60000, res[6]
    assert 115000 <= res[7]["retry_after_ms"] <= 121000, res[7]


def test_5xx_and_system_busy_retry():
    sink.reset()
    for g in ALL:
        sink.control(PATH[g], mode="5xx", count=1)
    res, _ = run_probe([{"id": i + 1, "group": g} for i, g in enumerate(ALL)])
    for i, g in enumerate(ALL):
        assert res[i + 1]["outcome"] == "retry", (g, res[i + 1])
    assert res[1]["code"] == "500" and res[3]["code"] == "502"
    assert res[4]["code"] == "errcode=-1", res[4]   # WeCom "system busy" inside a 200


def test_dead_endpoint_and_timeout_retry():
    sink.reset()
    sink.control("/slack/ops", mode="down", count=1)
    sink.control("/generic/gen", mode="slow", count=1, delay_ms=4000)
    t0 = time.monotonic()
    res, _ = run_probe([{"id": 1, "group": "ops"}, {"id": 2, "group": "gen"}], timeout_ms=1000)
    assert res[1]["outcome"] == "retry" and res[1]["code"] == "transport", res[1]
    assert res[2]["outcome"] == "retry" and res[2]["code"] == "timeout", res[2]
    assert time.monotonic() - t0 < 4.0


def test_confidential_goes_only_over_https_and_unknown_groups_fail():
    sink.reset()
    res, _ = run_probe([{"id": 1, "group": "ops", "flags": ["confidential"]},
                        {"id": 2, "group": "nobody"},
                        {"id": 3, "group": "secure", "flags": ["confidential"]}])
    assert res[1]["outcome"] == "failed" and res[1]["code"] == "tls-required", res[1]
    assert res[2]["outcome"] == "failed" and res[2]["code"] == "unknown-group", res[2]
    # https is allowed: nothing listens on port 1, so it is a transport retry, not tls-required
    assert res[3]["outcome"] == "retry" and res[3]["code"] == "transport", res[3]
    assert sink.requests("/slack/ops") == []


def test_many_deliveries_run_concurrently_on_few_kept_alive_connections():
    sink.reset()
    jobs = [{"id": i, "group": "ops", "body": "n=%d" % i} for i in range(1, 41)]
    jobs.append({"sleep_ms": 300})
    jobs += [{"id": i, "group": "ops", "body": "n=%d" % i} for i in range(41, 81)]
    res, _ = run_probe(jobs)
    bad = [r for r in res.values() if r["outcome"] != "delivered"]
    assert not bad, bad
    reqs = sink.requests("/slack/ops")
    assert len(reqs) == 80
    conns = {r["conn"] for r in reqs}
    # at most max_host_connections (8) open at once to one host, kept alive
    # through the lull and reused; the other requests wait in the driver
    assert len(conns) <= 8, len(conns)
    assert sorted(int(r["json"]["text"].split("=")[1]) for r in reqs) == list(range(1, 81))


def test_no_secret_or_webhook_token_in_results_or_logs():
    sink.reset()
    sink.control("/wecom/cn-ops", mode="down", count=1)
    sink.control("/slack/ops", mode="down", count=1)
    res, text = run_probe([{"id": i + 1, "group": g} for i, g in enumerate(ALL)] +
                          [{"id": 20, "group": "sre-wrong"}])
    for secret in (DING_SECRET, FEISHU_SECRET, WECOM_KEY, SLACK_TOKEN, "DINGTOKEN", "TEAMSSIG"):
        assert secret not in text, secret


DISPATCH = """
dispatch = { lease_ms = 5000; heartbeat_ms = 200; poll_ms = 50; };
retry = { min_backoff_ms = 200; max_backoff_ms = 400; max_lifetime_s = 60; };
"""


def test_through_heraldd_and_herald_worker_im_messages_reach_their_groups():
    sink.reset()
    sink.control("/wecom/cn-ops", mode="5xx", count=1)   # first try: errcode -1 "system busy"
    with Stack("im-e2e", config_extra=DISPATCH) as st:
        st.start_db()
        st.start_heraldd()
        st.start_worker("""
credit = 16;
heartbeat_ms = 200;
im = { timeout_ms = 3000; groups = (
  { name = "sre"; provider = "dingtalk"; url = "%s"; secret_file = "%s"; },
  { name = "cn-ops"; provider = "wecom"; url = "%s"; },
  { name = "gone"; provider = "slack"; url = "%s"; }
); };
""" % (sink.url("/dingtalk/sre?access_token=DINGTOKEN"), DING_SECRET_FILE,
       sink.url("/wecom/cn-ops?key=" + WECOM_KEY), sink.url("/slack/gone")))
        sink.control("/slack/gone", mode="error")
        p = st.producer()
        rep = p.submit({"channel": "im", "from": "ops@example.com", "to": ["sre", "cn-ops", "gone"],
                        "subject": "发布完成", "body": "v2.3 已上线"})
        assert rep["ok"] and rep["state"] == "queued", rep
        mid = rep["id"]
        p.close()

        def states():
            return dict(st.sql("SELECT recipient, state FROM herald.deliveries WHERE message_id = %d"
                               % mid))
        wait_until(lambda: states() == {"sre": "sent", "cn-ops": "sent", "gone": "failed"}, 20,
                   what="IM deliveries to settle")
        rows = st.sql("SELECT recipient, attempts, last_provider, last_code FROM herald.deliveries"
                      " WHERE message_id = %d ORDER BY recipient" % mid)
        assert rows == [["cn-ops", "2", "wecom", "errcode=0"], ["gone", "1", "slack", "400"],
                        ["sre", "1", "dingtalk", "errcode=0"]], rows
        texts = [r["json"]["text"]["content"] for r in sink.requests("/dingtalk/sre")]
        assert texts == ["发布完成\n\nv2.3 已上线"], texts
        wecom = sink.requests("/wecom/cn-ops")
        assert "system busy" in wecom[0]["response"], wecom
        assert len(wecom) == 2, wecom
        for secret in (DING_SECRET, WECOM_KEY, "DINGTOKEN"):
            assert secret not in st.worker_log(), secret


if __name__ == "__main__":
    try:
        run_tests([(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")])
    finally:
        sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)
