#!/usr/bin/env python3
"""
NAME
    kannel - a real Kannel SMS gateway with a fake phone network, for tests

DESCRIPTION
    Starts bearerbox (with one `smsc = fake` connection), fakesmsc as the
    phone network and smsbox (sendsms HTTP interface) on free loopback
    ports in a temp dir, and stops them. fakesmsc prints every MT it
    receives as "Got message N: <from to type data>"; messages() parses
    those lines and decodes the text (plain "text", or URL-encoded UTF-16BE
    for "ucs-2"; parts of concatenated messages carry their UDH and are
    joined by reassemble()), so a test can assert what a phone would display.

        with Kannel() as k:
            url = k.sendsms_base       # http://127.0.0.1:<port>
            ... k.username, k.password ...
            msgs = k.wait_messages(lambda m: m["to"] == "+8613800138000")

    Needs the Debian packages kannel and kannel-extras (fakesmsc lives in
    /usr/lib/kannel/test). Runs as root or as a normal user.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"

GOT = re.compile(r"Got message (\d+): <(\S+) (\S+) (\S+) ?(.*)>\s*$")


def available():
    return all(os.path.exists(p) for p in (BEARERBOX, SMSBOX, FAKESMSC))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    """n distinct free ports: the sockets stay bound until all are picked."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def decode(kind, data):
    """What the handset shows for one fakesmsc line's type and data."""
    # fakesmsc URL-encodes non-text data with '+' for the byte 0x20
    raw = urllib.parse.unquote_to_bytes(data.replace("+", " "))
    if kind in ("ucs2", "ucs-2"):
        return raw.decode("utf-16-be")
    if kind == "data":
        return raw.decode("latin-1")
    return data


class Kannel:
    def __init__(self, username="herald", password="k4nnel-pw", max_messages=10):
        self.username = username
        self.password = password
        self.max_messages = max_messages
        self.dir = tempfile.mkdtemp(prefix="herald-kannel-")
        self.admin_port, self.box_port, self.smsc_port, self.sendsms_port = free_ports(4)
        self.sendsms_base = "http://127.0.0.1:%d" % self.sendsms_port
        self.procs = {}
        self.fake_out = os.path.join(self.dir, "fakesmsc.out")

    def config(self):
        d = self.dir
        return """
group = core
admin-port = {admin}
admin-password = adminpw
smsbox-port = {box}
box-allow-ip = 127.0.0.1
log-file = "{d}/bearerbox.log"
log-level = 1
access-log = "{d}/access.log"

group = smsc
smsc = fake
smsc-id = fake
host = 127.0.0.1
port = {smsc}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {box}
sendsms-port = {sendsms}
global-sender = 10086
log-file = "{d}/smsbox.log"
log-level = 1

group = sendsms-user
username = {user}
password = {pw}
concatenation = true
max-messages = {maxm}

group = sms-service
keyword = default
catch-all = true
text = "no service"
""".format(d=d, admin=self.admin_port, box=self.box_port, smsc=self.smsc_port,
           sendsms=self.sendsms_port, user=self.username, pw=self.password,
           maxm=self.max_messages)

    def _spawn(self, name, argv, out=None):
        out = out or os.path.join(self.dir, name + ".stdout")
        f = open(out, "wb")
        self.procs[name] = (subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=self.dir,
                                             start_new_session=True), f)

    def _wait(self, pred, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            for name, (p, _) in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError("%s exited (%s) while waiting for %s; logs in %s"
                                       % (name, p.returncode, what, self.dir))
            time.sleep(0.1)
        raise RuntimeError("timed out waiting for %s; logs in %s" % (what, self.dir))

    def start(self):
        if not available():
            raise RuntimeError("kannel / kannel-extras are not installed")
        conf = os.path.join(self.dir, "kannel.conf")
        with open(conf, "w") as f:
            f.write(self.config())
        self._spawn("bearerbox", [BEARERBOX, conf])
        self._wait(lambda: port_open(self.smsc_port) and port_open(self.box_port),
                   "bearerbox ports")
        # fakesmsc exits when it has nothing to send: give it one MO, slowly
        self._spawn("fakesmsc", [FAKESMSC, "-H", "127.0.0.1", "-r", str(self.smsc_port),
                                 "-i", "100000", "-m", "1", "100 200 text mo"],
                    out=self.fake_out)
        self._spawn("smsbox", [SMSBOX, conf])
        self._wait(lambda: port_open(self.sendsms_port), "smsbox sendsms port")
        self._wait(self._smsc_online, "fake smsc online")
        return self

    def _smsc_online(self):
        try:
            url = "http://127.0.0.1:%d/status.txt?password=adminpw" % self.admin_port
            with urllib.request.urlopen(url, timeout=2) as r:
                text = r.read().decode("utf-8", "replace")
            return re.search(r"fake\S*\s+FAKE.*online", text) is not None or \
                "online" in text.split("SMSC connections", 1)[-1]
        except OSError:
            return False

    def messages(self):
        """Every MT fakesmsc received so far: dicts with n, from, to, type, raw, text."""
        out = []
        try:
            with open(self.fake_out, "r", encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            m = GOT.search(line)
            if not m:
                continue
            n, frm, to, kind, data = m.groups()
            msg = {"n": int(n), "from": frm, "to": to, "type": kind, "raw": data}
            if kind == "udh":
                # one part of a concatenated message: "<udh> data|text <payload>"
                udh, _, rest = data.partition(" ")
                _, _, payload = rest.partition(" ")
                msg["udh"] = urllib.parse.unquote_to_bytes(udh)
                msg["payload"] = urllib.parse.unquote_to_bytes(payload.replace("+", " "))
                msg["text"] = None
            else:
                msg["text"] = decode(kind, data)
            out.append(msg)
        return out

    @staticmethod
    def reassemble(parts, ucs2):
        """The text of a concatenated message from its parts (8-bit reference UDH)."""
        def seq(m):
            u = m["udh"]   # 05 00 03 ref total seq
            assert len(u) >= 6 and u[1] == 0, u
            return (u[3], u[5])
        raw = b"".join(m["payload"] for m in sorted(parts, key=seq))
        return raw.decode("utf-16-be") if ucs2 else raw.decode("latin-1")

    def wait_messages(self, pred, count=1, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            got = [m for m in self.messages() if pred(m)]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def stop(self):
        for name in ("smsbox", "fakesmsc", "bearerbox"):
            if name not in self.procs:
                continue
            p, f = self.procs[name]
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            f.close()
        self.procs = {}

    def cleanup(self, keep=False):
        self.stop()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.cleanup(keep=exc_type is not None)
        return False


if __name__ == "__main__":
    with Kannel() as k:
        print("sendsms", k.sendsms_base, "dir", k.dir)
        q = urllib.parse.urlencode({"username": k.username, "password": k.password,
                                    "to": "+8613800138000", "text": "验证码 4821，请勿泄露",
                                    "charset": "UTF-8", "coding": "2"})
        try:
            with urllib.request.urlopen(k.sendsms_base + "/cgi-bin/sendsms?" + q) as r:
                print(r.status, r.read())
        except urllib.error.HTTPError as e:
            print(e.code, e.read())
        print(k.wait_messages(lambda m: m["to"] == "+8613800138000"))
