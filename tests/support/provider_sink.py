#!/usr/bin/env python3
"""
NAME
    provider_sink - one HTTP server that answers like the IM and SMS providers

DESCRIPTION
    Emulates each provider's webhook/API on its own path prefix, answering
    with the provider's documented status codes and bodies:

      /slack/<name>        Slack incoming webhook: 200 "ok"; 400 "invalid_payload" / "no_text";
                           429 + Retry-After; 500 "rollup_error"
      /mattermost/<name>   200 "ok"; 400 {"id","message","status_code"}
      /teams/<name>        Workflows webhook: 202 (empty) for an Adaptive Card message;
                           400 {"error":{"code","message"}}
      /wecom/<name>        群机器人: 200 {"errcode":0,"errmsg":"ok"}; 93000 bad key, 44004 empty
                           content, 45009 rate limited, -1 system busy (all HTTP 200)
      /dingtalk/<name>     robot: 200 {"errcode":0,"errmsg":"ok"}; 310000 sign not match;
                           130101 send too fast; 300001 token is not exist (all HTTP 200)
      /feishu/<name>       bot: 200 {"code":0,"msg":"success",...}; 19021 sign match fail;
                           9499 too many request; 19002 params error
      /generic/<name>      200 {"id":...}; 400; 429 + Retry-After; 503
      /twilio/2010-04-01/Accounts/<sid>/Messages.json
                           201 message resource {"sid":"SM...","status":"queued",...};
                           401 code 20003 on bad basic auth; 400 code 21211/21604;
                           429 code 20429; 500 code 20500

    Signatures are verified as the providers do when a secret is set for a
    path (DingTalk: timestamp+sign query parameters, HMAC-SHA256 keyed with
    the secret over "<ms>\\n<secret>"; Feishu: "timestamp"/"sign" in the
    body, HMAC-SHA256 keyed with "<s>\\n<secret>" over ""); both refuse
    timestamps more than an hour away. Twilio checks HTTP basic auth
    against the configured sid:token.

    Behaviour is scriptable per path:
      POST /_control {"path": "/slack/ops", "mode": "ok"|"error"|"ratelimit"|"5xx"|"down"|"slow",
                      "count": N (0 = until changed), "retry_after": "7" or an HTTP-date,
                      "delay_ms": N (slow), "secret": "..." (dingtalk/feishu),
                      "auth": "sid:token" (twilio)}
      or per request with the query flag ?_mode=<mode> (and &_retry_after=...).
    "down" reads the request and closes the connection without answering.
    Every request is recorded: GET /_requests[?path=<prefix>] returns a JSON
    list of {id, conn, method, path, query, headers, body, json, auth,
    status, response}; POST /_reset clears records and scripts.

USAGE
    provider_sink.py [--port N] [--secret /dingtalk/ops=SEC...] [--auth /twilio=AC..:token]
    Prints the port on stdout when ready. Sink (below) starts it from tests.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets as pysecrets
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOUR = 3600


def dingtalk_sign(secret, ts_ms):
    mac = hmac.new(secret.encode(), ("%s\n%s" % (ts_ms, secret)).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def feishu_sign(secret, ts_s):
    mac = hmac.new(("%s\n%s" % (ts_s, secret)).encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.scripts = {}     # path -> {"mode", "count", "retry_after", "delay_ms"}
        self.secrets = {}     # path -> secret (dingtalk, feishu)
        self.auth = {}        # path prefix -> "user:password" (twilio)
        self.next_conn = 0

    def script_for(self, path):
        """The mode to use now for path, scripted on it or a parent path (consumes one count)."""
        with self.lock:
            key = self._match(self.scripts, path)
            if key is None:
                return {"mode": "ok"}
            s = self.scripts[key]
            out = dict(s)
            if s.get("count", 0) > 0:
                s["count"] -= 1
                if s["count"] == 0:
                    del self.scripts[key]
            return out

    @staticmethod
    def _match(table, path):
        best = None
        for prefix in table:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                if best is None or len(prefix) > len(best):
                    best = prefix
        return best

    def lookup(self, table, path):
        with self.lock:
            key = self._match(table, path)
            return table[key] if key is not None else None


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, so clients can reuse connections
    server_version = "provider-sink/1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        with STATE.lock:
            STATE.next_conn += 1
            self.conn_id = STATE.next_conn

    # ---- plumbing ------------------------------------------------------

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body=b"", ctype="text/plain; charset=utf-8", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False).encode()
            ctype = "application/json; charset=utf-8"
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if body or status not in (202, 204):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status, body.decode("utf-8", "replace")

    def _record(self, raw, status, response):
        u = urllib.parse.urlsplit(self.path)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        auth = None
        h = self.headers.get("Authorization", "")
        if h.startswith("Basic "):
            try:
                auth = base64.b64decode(h[6:]).decode().split(":", 1)[0]
            except ValueError:
                auth = "(bad)"
        with STATE.lock:
            STATE.requests.append({
                "id": len(STATE.requests) + 1, "conn": self.conn_id, "t": time.time(),
                "method": self.command, "path": u.path,
                "query": dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True)),
                "headers": {k: v for k, v in self.headers.items()},
                "body": raw.decode("utf-8", "replace"), "json": parsed, "auth": auth,
                "status": status, "response": response})

    # ---- dispatch ------------------------------------------------------

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def _dispatch(self):
        raw = self._read_body()
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        query = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        if path == "/_requests":
            prefix = query.get("path", "")
            with STATE.lock:
                out = [r for r in STATE.requests if r["path"].startswith(prefix)]
            self._send(200, out)
            return
        if path == "/_control":
            self._control(raw)
            return
        if path == "/_reset":
            with STATE.lock:
                STATE.requests.clear()
                STATE.scripts.clear()
            self._send(200, {"ok": True})
            return

        script = STATE.script_for(path)
        if "_mode" in query:
            script = {"mode": query["_mode"], "retry_after": query.get("_retry_after")}
        mode = script.get("mode", "ok")
        if mode == "down":
            self._record(raw, 0, "(connection closed)")
            self.close_connection = True
            return
        if mode == "slow":
            time.sleep(float(script.get("delay_ms") or 2000) / 1000.0)
            mode = "ok"
        kind = path.split("/")[1] if path.count("/") >= 2 else ""
        fn = getattr(self, "_p_" + kind, None)
        if fn is None:
            status, resp = self._send(404, "no such provider path")
        else:
            status, resp = fn(path, query, raw, mode, script)
        self._record(raw, status, resp)

    def _control(self, raw):
        try:
            c = json.loads(raw)
            path = c["path"]
        except (ValueError, KeyError, TypeError):
            self._send(400, {"error": "expected {\"path\": ..., \"mode\": ...}"})
            return
        with STATE.lock:
            if "secret" in c:
                STATE.secrets[path] = c["secret"]
            if "auth" in c:
                STATE.auth[path] = c["auth"]
            if "mode" in c:
                if c["mode"] == "ok" and not c.get("count"):
                    STATE.scripts.pop(path, None)
                else:
                    STATE.scripts[path] = {"mode": c["mode"], "count": int(c.get("count") or 0),
                                           "retry_after": c.get("retry_after"),
                                           "delay_ms": c.get("delay_ms")}
        self._send(200, {"ok": True})

    @staticmethod
    def _json(raw):
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _retry_after(self, script, default="30"):
        ra = script.get("retry_after")
        return {"Retry-After": str(ra if ra is not None else default)}

    # ---- providers -----------------------------------------------------

    def _p_slack(self, path, query, raw, mode, script):
        doc = self._json(raw)
        if mode == "ratelimit":
            return self._send(429, "rate_limited", headers=self._retry_after(script))
        if mode == "5xx":
            return self._send(500, "rollup_error")
        if mode == "error" or not isinstance(doc, dict):
            return self._send(400, "invalid_payload")
        if not doc.get("text") and not doc.get("blocks"):
            return self._send(400, "no_text")
        return self._send(200, "ok")

    def _p_mattermost(self, path, query, raw, mode, script):
        doc = self._json(raw)
        err = {"id": "web.incoming_webhook.text.app_error", "message": "No text specified",
               "detailed_error": "", "request_id": pysecrets.token_hex(13), "status_code": 400}
        if mode == "ratelimit":
            return self._send(429, {"id": "api.context.rate_limit", "message": "too many requests",
                                    "status_code": 429}, headers=self._retry_after(script))
        if mode == "5xx":
            return self._send(500, {"id": "web.incoming_webhook.error", "message": "internal",
                                    "status_code": 500})
        if mode == "error" or not isinstance(doc, dict) or not doc.get("text"):
            return self._send(400, err)
        return self._send(200, "ok")

    def _p_teams(self, path, query, raw, mode, script):
        doc = self._json(raw)
        if mode == "ratelimit":
            return self._send(429, {"error": {"code": "TooManyRequests",
                                              "message": "Rate limit is exceeded."}},
                              headers=self._retry_after(script))
        if mode == "5xx":
            return self._send(502, {"error": {"code": "BadGateway", "message": "upstream"}})
        ok = (isinstance(doc, dict) and doc.get("type") == "message"
              and isinstance(doc.get("attachments"), list) and doc["attachments"]
              and doc["attachments"][0].get("contentType") == "application/vnd.microsoft.card.adaptive"
              and doc["attachments"][0].get("content", {}).get("type") == "AdaptiveCard")
        if mode == "error" or not ok:
            return self._send(400, {"error": {"code": "InvalidRequestContent",
                                              "message": "The input body for trigger 'manual' of type 'Request' did not match its schema definition."}})
        return self._send(202, b"")

    def _p_wecom(self, path, query, raw, mode, script):
        doc = self._json(raw)
        if mode == "ratelimit":
            return self._send(200, {"errcode": 45009, "errmsg": "api freq out of limit"})
        if mode == "5xx":
            return self._send(200, {"errcode": -1, "errmsg": "system busy"})
        if mode == "error":
            return self._send(200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [sink]"})
        if not isinstance(doc, dict) or doc.get("msgtype") != "text":
            return self._send(200, {"errcode": 40008, "errmsg": "invalid message type"})
        if not (doc.get("text") or {}).get("content"):
            return self._send(200, {"errcode": 44004, "errmsg": "empty content"})
        return self._send(200, {"errcode": 0, "errmsg": "ok"})

    def _p_dingtalk(self, path, query, raw, mode, script):
        doc = self._json(raw)
        secret = STATE.lookup(STATE.secrets, path)
        if secret is not None:
            ts, sign = query.get("timestamp", ""), query.get("sign", "")
            if not ts.isdigit() or abs(int(ts) / 1000.0 - time.time()) > HOUR:
                return self._send(200, {"errcode": 310000, "errmsg": "invalid timestamp"})
            if not hmac.compare_digest(sign, dingtalk_sign(secret, ts)):
                return self._send(200, {"errcode": 310000,
                                        "errmsg": "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"})
        if mode == "ratelimit":
            return self._send(200, {"errcode": 130101,
                                    "errmsg": "send too fast, exceed 20 times per minute"})
        if mode == "5xx":
            return self._send(502, "<html><body>502 Bad Gateway</body></html>",
                              ctype="text/html")
        if mode == "error":
            return self._send(200, {"errcode": 300001, "errmsg": "token is not exist"})
        if not isinstance(doc, dict) or doc.get("msgtype") != "text" or \
                not (doc.get("text") or {}).get("content"):
            return self._send(200, {"errcode": 40035, "errmsg": "缺少参数 json"})
        return self._send(200, {"errcode": 0, "errmsg": "ok"})

    def _p_feishu(self, path, query, raw, mode, script):
        doc = self._json(raw)
        secret = STATE.lookup(STATE.secrets, path)
        fail = {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time", "data": {}}
        if secret is not None:
            if not isinstance(doc, dict):
                return self._send(200, fail)
            ts, sign = str(doc.get("timestamp", "")), str(doc.get("sign", ""))
            if not ts.isdigit() or abs(int(ts) - time.time()) > HOUR or \
                    not hmac.compare_digest(sign, feishu_sign(secret, ts)):
                return self._send(200, fail)
        if mode == "ratelimit":
            return self._send(200, {"code": 9499, "msg": "too many request", "data": {}})
        if mode == "5xx":
            return self._send(500, "internal error")
        if mode == "error":
            return self._send(200, {"code": 19001, "msg": "param invalid: incoming webhook access token invalid", "data": {}})
        if not isinstance(doc, dict) or doc.get("msg_type") != "text" or \
                not (doc.get("content") or {}).get("text"):
            return self._send(200, {"code": 19002, "msg": "params error, msg_type need", "data": {}})
        return self._send(200, {"StatusCode": 0, "StatusMessage": "success", "code": 0,
                                "data": {}, "msg": "success"})

    def _p_generic(self, path, query, raw, mode, script):
        doc = self._json(raw)
        if mode == "ratelimit":
            return self._send(429, {"error": "slow down"}, headers=self._retry_after(script))
        if mode == "5xx":
            return self._send(503, {"error": "maintenance"}, headers=self._retry_after(script, "5")
                              if script.get("retry_after") is not None else None)
        if mode == "error" or not isinstance(doc, dict):
            return self._send(400, {"error": "rejected"})
        return self._send(200, {"id": "gen-" + pysecrets.token_hex(6)})

    def _p_twilio(self, path, query, raw, mode, script):
        parts = path.split("/")
        # /twilio/2010-04-01/Accounts/<sid>/Messages.json
        if len(parts) != 6 or parts[2] != "2010-04-01" or parts[3] != "Accounts" or \
                parts[5] != "Messages.json" or self.command != "POST":
            return self._send(404, {"code": 20404, "message": "The requested resource was not found",
                                    "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404})
        sid = parts[4]
        want = STATE.lookup(STATE.auth, path)
        got = None
        h = self.headers.get("Authorization", "")
        if h.startswith("Basic "):
            try:
                got = base64.b64decode(h[6:]).decode()
            except ValueError:
                got = None
        if want is not None and (got != want or not got.startswith(sid + ":")):
            return self._send(401, {"code": 20003, "message": "Authentication Error - invalid username",
                                    "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
        if mode == "ratelimit":
            return self._send(429, {"code": 20429, "message": "Too Many Requests",
                                    "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429},
                              headers=self._retry_after(script) if script.get("retry_after") is not None else None)
        if mode == "5xx":
            return self._send(500, {"code": 20500, "message": "An internal server error has occurred",
                                    "more_info": "https://www.twilio.com/docs/errors/20500", "status": 500})
        form = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        to = form.get("To", "")
        if not to:
            return self._send(400, {"code": 21604, "message": "A 'To' phone number is required.",
                                    "more_info": "https://www.twilio.com/docs/errors/21604", "status": 400})
        valid = to.startswith("+") and to[1:].isdigit() and 8 <= len(to) - 1 <= 15
        if mode == "error" or not valid:
            return self._send(400, {"code": 21211, "message": "Invalid 'To' Phone Number: %s" % to,
                                    "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})
        msid = "SM" + pysecrets.token_hex(16)
        now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        return self._send(201, {
            "account_sid": sid, "api_version": "2010-04-01", "body": form.get("Body", ""),
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": form.get("From"), "messaging_service_sid": None, "num_media": "0",
            "num_segments": "1", "price": None, "price_unit": "USD", "sid": msid,
            "status": "queued", "to": to,
            "uri": "/2010-04-01/Accounts/%s/Messages/%s.json" % (sid, msid)})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256   # the default 5 drops SYNs when a driver opens many connections


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--secret", action="append", default=[], help="PATH=SECRET")
    ap.add_argument("--auth", action="append", default=[], help="PATH=USER:PASSWORD")
    a = ap.parse_args()
    for s in a.secret:
        k, v = s.split("=", 1)
        STATE.secrets[k] = v
    for s in a.auth:
        k, v = s.split("=", 1)
        STATE.auth[k] = v
    srv = Server(("127.0.0.1", a.port), Handler)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


class Sink:
    """Start provider_sink.py as a child process; control and inspect it."""

    def __init__(self, secrets=None, auth=None):
        argv = [sys.executable, os.path.abspath(__file__)]
        for k, v in (secrets or {}).items():
            argv += ["--secret", "%s=%s" % (k, v)]
        for k, v in (auth or {}).items():
            argv += ["--auth", "%s=%s" % (k, v)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError("provider_sink did not start")
        self.port = int(line)
        self.base = "http://127.0.0.1:%d" % self.port

    def url(self, path):
        return self.base + path

    def _call(self, method, path, doc=None):
        data = json.dumps(doc).encode() if doc is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def control(self, path, **kw):
        kw["path"] = path
        return self._call("POST", "/_control", kw)

    def requests(self, prefix=""):
        return self._call("GET", "/_requests?path=" + urllib.parse.quote(prefix))

    def reset(self):
        return self._call("POST", "/_reset", {})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


if __name__ == "__main__":
    main()
