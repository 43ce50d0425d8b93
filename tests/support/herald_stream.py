"""
NAME
    herald_stream - a producer that keeps a window of submissions in flight

DESCRIPTION
    Runs in a thread: submits messages with unique idempotency keys,
    keeping `window` requests outstanding, and records which keys were
    ACKed. A request that times out or gets a retryable error is resent
    with the same idempotency key (a new rid), exactly as the protocol
    document tells producers to do. Used by the crash and restart tests
    to count ACKs client-side and compare them with rows in PostgreSQL.
"""
import threading
import time

from herald_client import Producer, email


class Stream(threading.Thread):
    def __init__(self, endpoint, app, window=64, timeout_s=2.0, total=None):
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.app = app
        self.window = window
        self.timeout_s = timeout_s
        self.total = total
        self.stop_sending = threading.Event()
        self.acked = {}          # key -> message id
        self.duplicates = 0
        self.resends = 0
        self.errors = []         # non-retryable errors (must stay empty)
        self.issued = 0
        self.lock = threading.Lock()

    def run(self):
        p = Producer(self.endpoint, app=self.app)
        outstanding = {}         # rid -> (key, sent_at)
        n = 0
        try:
            while True:
                sending = not self.stop_sending.is_set() and (self.total is None or n < self.total)
                while sending and len(outstanding) < self.window:
                    key = "%s-%08d" % (self.app, n)
                    n += 1
                    rid = p.send(p.request(email(idempotency_key=key, subject="stream %d" % n)))
                    outstanding[rid] = (key, time.monotonic())
                    with self.lock:
                        self.issued = n
                    sending = not self.stop_sending.is_set() and (self.total is None or n < self.total)
                if not outstanding and not sending:
                    break
                rep = p.recv(50)
                now = time.monotonic()
                if rep is not None and rep.get("rid") in outstanding:
                    key, _ = outstanding.pop(rep["rid"])
                    if rep.get("ok"):
                        with self.lock:
                            self.acked[key] = rep["id"]
                            self.duplicates += bool(rep.get("duplicate"))
                    elif rep.get("retryable"):
                        time.sleep(min(rep.get("retry_after_ms", 100), 1000) / 1000.0)
                        self._resend(p, outstanding, key)
                    else:
                        self.errors.append(rep)
                for rid, (key, sent_at) in list(outstanding.items()):
                    if now - sent_at > self.timeout_s:
                        del outstanding[rid]
                        self._resend(p, outstanding, key)
        finally:
            p.close()

    def _resend(self, p, outstanding, key):
        self.resends += 1
        rid = p.send(p.request(email(idempotency_key=key, subject="resend")))
        outstanding[rid] = (key, time.monotonic())

    def acked_keys(self):
        with self.lock:
            return dict(self.acked)
