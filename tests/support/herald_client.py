"""
NAME
    herald_client - a producer written from docs/PROTOCOL.md alone

DESCRIPTION
    An independent implementation of the producer protocol in Python
    (pyzmq + msgpack), used by the integration tests to drive heraldd the
    way a producer in another language would. It shares no code with
    libherald, so a test that passes through both proves the document,
    not just one implementation.
"""
import itertools
import os
import time

import msgpack
import zmq

PROTOCOL_VERSION = 1


def email(sender="alice@example.com", to=("bob@example.com",), subject="Quarterly report",
          body="Please find the quarterly report below.", **extra):
    msg = {"channel": "email", "from": sender, "to": list(to), "subject": subject, "body": body}
    msg.update(extra)
    return msg


class Producer:
    """One DEALER socket; requests are matched to replies by rid."""

    def __init__(self, endpoint, app="itest", ctx=None):
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.endpoint = endpoint
        self.app = app
        self._rid = itertools.count(1)
        self.replies = {}

    def close(self):
        self.sock.close(0)

    def next_rid(self):
        return next(self._rid)

    def request(self, msg, rid=None, op="submit", app=None, extra=None):
        req = {"v": PROTOCOL_VERSION, "rid": rid if rid is not None else self.next_rid(), "op": op}
        if op == "submit" or app is not None:
            req["app"] = app or self.app
        if msg is not None:
            req["msg"] = msg
        if extra:
            req.update(extra)
        return req

    def send_raw(self, frame):
        self.sock.send(frame)

    def send(self, req):
        self.sock.send(msgpack.packb(req, use_bin_type=True))
        return req["rid"]

    def recv(self, timeout_ms=5000):
        """Next reply as a dict, or None on timeout."""
        if not self.sock.poll(timeout_ms, zmq.POLLIN):
            return None
        frame = self.sock.recv()
        return msgpack.unpackb(frame, raw=False, strict_map_key=False)

    def call(self, req, timeout_ms=5000):
        """Send one request and wait for the reply with its rid."""
        rid = self.send(req)
        deadline = time.monotonic() + timeout_ms / 1000.0
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0:
                return None
            rep = self.recv(left)
            if rep is None:
                return None
            if rep.get("rid") == rid:
                return rep
            self.replies[rep.get("rid")] = rep

    def submit(self, msg, timeout_ms=5000, **kw):
        return self.call(self.request(msg, **kw), timeout_ms)

    def ping(self, timeout_ms=1000):
        rep = self.call(self.request(None, op="ping"), timeout_ms)
        return rep is not None and rep.get("ok") is True


def random_key():
    return os.urandom(16).hex()
