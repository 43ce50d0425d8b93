"""
NAME
    smtp_sink - Postfix's smtp-sink on a free loopback port, for tests

DESCRIPTION
    SmtpSink starts `smtp-sink -c -d DIR/msg. 127.0.0.1:PORT 64` (as root
    with `-u nobody`, which smtp-sink requires), with extra options such
    as ["-r", "RCPT"] (soft 4xx reject) or ["-f", "RCPT"] (hard 5xx
    reject). messages() parses every dumped transaction with Python's
    email package; counters() reads smtp-sink's running counters (-c):
    sess (connections), quit (QUIT commands, i.e. SMTP sessions that
    ended cleanly) and mesg (messages accepted). The dump is what the
    server received after un-dot-stuffing, with LF line ends and
    smtp-sink's own X-Client-*, X-Helo-Args, X-Mail-Args, X-Rcpt-Args and
    Received headers first.
"""
import email
import email.policy
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class SmtpSink:
    def __init__(self, options=None, hostname="sink.test", port=None):
        # A fixed port lets a test replace the server behind one relay address.
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="smtp-sink-")
        os.chmod(self.dir, 0o777)
        self.dump_dir = os.path.join(self.dir, "dump")
        os.mkdir(self.dump_dir)
        os.chmod(self.dump_dir, 0o777)
        self.out_path = os.path.join(self.dir, "counters.txt")
        cmd = ["smtp-sink", "-c", "-h", hostname, "-d", os.path.join(self.dump_dir, "msg.")]
        if os.geteuid() == 0:
            cmd[1:1] = ["-u", "nobody"]
        cmd += list(options or [])
        cmd += ["127.0.0.1:%d" % self.port, "64"]
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("smtp-sink did not start: %r" % cmd)
        # the readiness probe above is a session of its own
        self.base = self._wait_counters(lambda c: c["sess"] >= 1)

    @property
    def relay(self):
        return "127.0.0.1:%d" % self.port

    def _read_counters(self):
        with open(self.out_path, "rb") as f:
            text = f.read().decode("ascii", "replace")
        found = re.findall(r"sess=(\d+) quit=(\d+) mesg=(\d+)", text)
        if not found:
            return {"sess": 0, "quit": 0, "mesg": 0}
        s, q, m = (int(x) for x in found[-1])
        return {"sess": s, "quit": q, "mesg": m}

    def _wait_counters(self, pred, timeout=5.0):
        deadline = time.time() + timeout
        c = self._read_counters()
        while not pred(c) and time.time() < deadline:
            time.sleep(0.05)
            c = self._read_counters()
        return c

    def counters(self, settle=0.3):
        """Counters since start (the readiness probe subtracted)."""
        time.sleep(settle)
        c = self._read_counters()
        return {k: c[k] - self.base[k] for k in c}

    def raw_messages(self):
        out = []
        for name in sorted(os.listdir(self.dump_dir)):
            with open(os.path.join(self.dump_dir, name), "rb") as f:
                out.append(f.read())
        return out

    def messages(self):
        return [email.message_from_bytes(raw, policy=email.policy.default)
                for raw in self.raw_messages()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
