#!/usr/bin/env python3
"""
NAME
    23-confidential-sealed - POLICY K2: confidential content sealed at rest, sent only over TLS

DESCRIPTION
    Real processes: a private PostgreSQL, heraldd with a sealing key
    (security.keys, security.seal_key), herald-workers with and without
    the key, an aiosmtpd server that refuses MAIL before STARTTLS (its
    certificate made by openssl now) and Postfix's smtp-sink without TLS.
    A confidential message carries a unique marker in its body, html and
    an attachment. Checked as an auditor would: the marker is in no
    table (a pg_dump of the whole database, bytea as hex included), in no
    raw file of the cluster (heap, TOAST and WAL, after a checkpoint) and
    in no log line of heraldd, the workers or PostgreSQL, while every
    sealed part names its key id; the recipient gets the plaintext over
    STARTTLS, also for the largest body and html a producer may send;
    without TLS, or at a worker without the key, the delivery fails and
    nothing is sent; a heraldd without a key refuses confidential
    submissions (policy, msg.flags) and stores nothing; key files others
    may read stop heraldd and herald-worker; heraldctl show gives the
    body to the sender only with the key and redacts it for an operator.
"""
import email as email_pkg
import email.policy
import hashlib
import os
import shutil
import ssl
import subprocess

import tls_pki
from herald_client import Producer, email, random_key
from herald_harness import Stack, binary, free_port, run_tests, wait_until
from smtp_sink import SmtpSink

MARK = "K2MARK-" + os.urandom(6).hex()

stack = Stack("k2")
KEY_DIR = os.path.join(stack.tmp, "keys")
KEY_PATH = os.path.join(KEY_DIR, "k1.key")
PKI = os.path.join(stack.tmp, "pki")
HOME = os.path.join(stack.tmp, "home")
tls_server = None

HERALDD_CONFIG = """
intake = { max_frame_bytes = 33554432; };
dispatch = { lease_ms = 30000; heartbeat_ms = 200; poll_ms = 50; };
retry = { min_backoff_ms = 300; max_backoff_ms = 600; max_lifetime_s = 120; };
security = { keys = ["k1:%s"]; seal_key = "k1"; };
""" % KEY_PATH


def write_key(path, data, mode=0o600):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def make_pki(d):
    """The test CA and localhost certificate, in a new directory d."""
    os.makedirs(d)
    tls_pki.make_pki(d, ca_name="Herald K2 Test CA")


class TlsServer:
    """aiosmtpd that refuses MAIL before STARTTLS; records (rcpts, content, tls)."""

    def __init__(self, d):
        from aiosmtpd.controller import Controller

        class Handler:
            def __init__(self):
                self.messages = []

            async def handle_DATA(self, server, session, envelope):
                self.messages.append((envelope.rcpt_tos, envelope.content,
                                      session.ssl is not None))
                return "250 2.0.0 Ok: queued as K2%d" % len(self.messages)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
        self.handler = Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     tls_context=ctx, require_starttls=True,
                                     data_size_limit=64 * 1024 * 1024)
        self.controller.start()

    def stop(self):
        self.controller.stop()


def worker_config(keys=True, relay=None, starttls="required"):
    security = 'security = { keys = ["k1:%s"]; };\n' % KEY_PATH if keys else ""
    if relay is None:
        relay = "localhost:%d" % tls_server.port
    return ("credit = 16;\nheartbeat_ms = 200;\n%s"
            'email = { relay = "%s"; starttls = "%s"; tls_ca_file = "%s"; helo = "herald.test"; '
            "timeout_ms = 20000; sessions = 1; };\n"
            % (security, relay, starttls, os.path.join(PKI, "ca.pem")))


workers = {}


def start_worker(name, config):
    workers[name] = stack.start_worker(config, name=name)
    wait_until(lambda: "worker.start" in stack.worker_log(name), 10, what="worker %s" % name)


def stop_worker(name):
    proc = workers.pop(name)
    proc.terminate()
    proc.wait(timeout=20)


def deliveries(mid):
    return stack.sql("SELECT state, last_provider, last_code, coalesce(last_error, '') "
                     "FROM herald.deliveries WHERE message_id = %d ORDER BY id" % mid)


def wait_state(mid, state, timeout=30):
    return wait_until(lambda: all(r[0] == state for r in deliveries(mid)) and deliveries(mid),
                      timeout, what="message %d to be %s (now %r)" % (mid, state, deliveries(mid)))


def confidential(subject, body_extra="", **extra):
    msg = email(subject=subject,
                body="Bonus figures for the team: %s %s" % (MARK, body_extra),
                html="<p>Bonus figures: <b>%s</b></p>" % MARK,
                attachments=[{"name": "figures.csv", "type": "text/csv",
                              "data": ("name,amount\n%s,100\n" % MARK).encode()}],
                flags=["confidential"], idempotency_key=random_key())
    msg.update(extra)
    return msg


def submit_ok(msg, producer=None):
    p = producer or stack.producer()
    rep = p.submit(msg, timeout_ms=30000)
    if producer is None:
        p.close()
    assert rep and rep["ok"], rep
    assert rep["state"] == "queued", rep
    return rep["id"]


def received_with(subject):
    """What the TLS server received with this (ASCII) subject."""
    return [m for m in tls_server.handler.messages if subject.encode() in m[1]]


def parsed(raw):
    return email_pkg.message_from_bytes(raw, policy=email_pkg.policy.default)


FIRST = {}


def first_message():
    """One confidential message submitted and delivered (shared by the first tests)."""
    if not FIRST:
        mid = submit_ok(confidential("Bonus plan for Q3"))
        wait_state(mid, "sent")
        FIRST["id"] = mid
    return FIRST["id"]


# ---- at rest -------------------------------------------------------------------

def pg_dump_text():
    r = subprocess.run(["/usr/lib/postgresql/15/bin/pg_dump", "--data-only", "-d", stack.pg.url()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def raw_cluster_files_containing(needle):
    stack.sql("CHECKPOINT")
    hits = []
    for root, _, files in os.walk(os.path.join(stack.pg.dir, "data")):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    if needle in f.read():
                        hits.append(path)
            except OSError:
                pass
    return hits


def all_logs():
    text = stack.log()
    for name in os.listdir(stack.tmp):
        if name.startswith("worker-") and name.endswith(".log"):
            text += stack.worker_log(name[len("worker-"):-len(".log")])
    with open(os.path.join(stack.pg.dir, "server.log"), errors="replace") as f:
        text += f.read()
    return text


def test_K2_confidential_body_never_stored_in_plain_text():
    mid = first_message()
    body, html, flags = stack.sql("SELECT body, html, flags::text FROM herald.messages "
                                  "WHERE id = %d" % mid)[0]
    assert "confidential" in flags, flags
    assert body.startswith("hdseal:1:k1:") and html.startswith("hdseal:1:k1:"), (body, html)
    assert MARK not in body and MARK not in html
    att = stack.sql("SELECT encode(data, 'hex'), name, size FROM herald.attachments "
                    "WHERE message_id = %d" % mid)
    assert len(att) == 1 and att[0][1] == "figures.csv", att
    data = bytes.fromhex(att[0][0])
    assert data.startswith(b"hdseal:1b:k1:"), data[:20]
    assert MARK.encode() not in data
    # The subject is not content: it stays searchable.
    assert stack.scalar("SELECT subject FROM herald.messages WHERE id = %d" % mid) == \
        "Bonus plan for Q3"

    # Every table, as text, bytea as hex and the audit trail included.
    dump = pg_dump_text()
    assert "hdseal:1:k1:" in dump
    assert b"hdseal:1b:k1:".hex() in dump
    assert MARK not in dump, "the marker is in the database dump"
    assert MARK.encode().hex() not in dump, "the marker is in a bytea column"
    assert stack.scalar("SELECT count(*) FROM herald.audit_events WHERE message_id = %d"
                        % mid) != "0"
    # Not even in a heap, TOAST or WAL file of the cluster.
    assert raw_cluster_files_containing(MARK.encode()) == []
    # Nor in any log line of heraldd, the workers or PostgreSQL.
    logs = all_logs()
    assert "event=heraldd.seal seal_key=k1" in logs
    assert MARK not in logs


def test_K2_confidential_delivered_decrypted_over_starttls():
    mid = first_message()
    got = received_with("Bonus plan for Q3")
    assert len(got) == 1, len(got)
    rcpts, raw, over_tls = got[0]
    assert over_tls, "the message arrived without TLS"
    assert rcpts == ["bob@example.com"]
    m = parsed(raw)
    assert MARK in m.get_body(("plain",)).get_content()
    assert MARK in m.get_body(("html",)).get_content()
    att = list(m.iter_attachments())
    assert len(att) == 1 and att[0].get_filename() == "figures.csv"
    content = att[0].get_content()
    assert MARK in (content if isinstance(content, str) else content.decode())
    assert b"hdseal" not in raw
    assert deliveries(mid)[0][1] == "smtp", deliveries(mid)


def test_K2_largest_confidential_body_html_and_attachment_are_delivered():
    # 4 MiB of body and of html (the producer limits), a large attachment
    # (the policy's E3 limit is 10 MiB): sealed, they are larger than a
    # producer may send, and still reach the worker and the recipient.
    line = ("%s abcdefghijklmnopqrstuvwxyz 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ\n" % MARK)
    body = (line * (4 * 1024 * 1024 // len(line) + 1))[:4 * 1024 * 1024]
    html = ("<p>" + body)[:4 * 1024 * 1024]
    data = os.urandom(9 * 1024 * 1024) + MARK.encode()
    msg = confidential("Large bonus file", html=html, body=body,
                       attachments=[{"name": "big.bin", "type": "application/octet-stream",
                                     "data": data}])
    mid = submit_ok(msg)
    stored = stack.sql("SELECT length(body), length(html) FROM herald.messages WHERE id = %d"
                       % mid)[0]
    assert int(stored[0]) > 4 * 1024 * 1024 and int(stored[1]) > 4 * 1024 * 1024, stored
    wait_state(mid, "sent", timeout=90)
    got = received_with("Large bonus file")
    assert len(got) == 1
    m = parsed(got[0][1])
    assert got[0][2], "not over TLS"
    assert m.get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip("\n") == \
        body.rstrip("\n")
    att = list(m.iter_attachments())
    assert hashlib.sha256(att[0].get_content()).hexdigest() == hashlib.sha256(data).hexdigest()
    # sealed at rest like any other
    dump = pg_dump_text()
    assert MARK not in dump and MARK.encode().hex() not in dump


# ---- where it may not go -----------------------------------------------------------

def test_K2_confidential_refused_without_tls():
    stop_worker("tls")
    with SmtpSink() as sink:
        start_worker("plain", worker_config(relay=sink.relay, starttls="off"))
        try:
            mid = submit_ok(confidential("Bonus plan without TLS"))
            wait_state(mid, "failed")
            state, provider, code, error = deliveries(mid)[0]
            assert code == "tls-required", deliveries(mid)
            # ordinary mail still goes through this relay
            p = stack.producer()
            plain_id = submit_ok(email(subject="Canteen menu", idempotency_key=random_key()), p)
            p.close()
            wait_state(plain_id, "sent")
            msgs = sink.messages()
            assert [str(x["Subject"]) for x in msgs] == ["Canteen menu"], \
                [str(x["Subject"]) for x in msgs]
            assert not any(MARK.encode() in raw for raw in sink.raw_messages())
        finally:
            stop_worker("plain")
    start_worker("tls", worker_config())


def test_K2_worker_without_the_key_fails_the_job_and_sends_nothing():
    stop_worker("tls")
    before = len(tls_server.handler.messages)
    start_worker("nokey", worker_config(keys=False))
    try:
        mid = submit_ok(confidential("Bonus plan, no key"))
        wait_state(mid, "failed")
        state, provider, code, error = deliveries(mid)[0]
        assert (provider, code) == ("herald-worker", "seal"), deliveries(mid)
        assert "unknown key id k1" in error, error
        assert len(tls_server.handler.messages) == before
        assert "event=worker.seal_failed" in stack.worker_log("nokey")
        # requeued once a worker with the key is there: delivered
        stop_worker("nokey")
        start_worker("tls", worker_config())
        stack.heraldctl("requeue", str(stack.scalar(
            "SELECT id FROM herald.deliveries WHERE message_id = %d" % mid)))
        wait_state(mid, "sent")
        assert len(received_with("Bonus plan, no key")) == 1
    finally:
        if "nokey" in workers:
            stop_worker("nokey")
        if "tls" not in workers:
            start_worker("tls", worker_config())


def test_K2_heraldd_without_key_refuses_confidential():
    proc, endpoint, _, log_path = stack.start_broker(
        config_extra="dispatch = { poll_ms = 50; };\n", log_name="heraldd-nokey.log")
    p = Producer(endpoint, app="itest")
    try:
        wait_until(lambda: p.ping(200), 15, what="the keyless heraldd")
        key = random_key()
        rep = p.submit(confidential("Bonus plan, keyless broker", idempotency_key=key))
        assert rep is not None and rep["ok"] is False, rep
        assert (rep["code"], rep["field"], rep["retryable"]) == ("policy", "msg.flags", False), rep
        assert "K2" in rep["reason"] and "security.seal_key" in rep["reason"], rep
        assert stack.scalar("SELECT count(*) FROM herald.messages WHERE idempotency_key = '%s'"
                            % key) == "0"
        # anything not confidential is taken as usual
        rep = p.submit(email(subject="Team lunch", idempotency_key=random_key()))
        assert rep["ok"], rep
        with open(log_path, errors="replace") as f:
            log = f.read()
        assert "event=heraldd.seal seal_key=none" in log
        assert "code=policy field=msg.flags" in log
        assert MARK not in log
    finally:
        p.close()
        proc.terminate()
        proc.wait(timeout=15)


def test_K2_key_files_others_may_read_stop_heraldd_and_the_worker():
    loose = os.path.join(KEY_DIR, "loose.key")
    write_key(loose, os.urandom(32), 0o644)
    cfg = os.path.join(stack.tmp, "loose.conf")
    with open(cfg, "w") as f:
        f.write('security = { keys = ["k9:%s"]; seal_key = "k9"; };\n' % loose)
    r = subprocess.run([binary("broker/heraldd"), "-c", cfg, "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "%s: group or others may access it (mode 0644)" % loose in r.stderr, r.stderr
    r = subprocess.run([binary("broker/heraldd"), "-c", cfg, "--db", stack.pg.url()],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "mode 0644" in r.stderr, (r.returncode, r.stderr)
    wcfg = os.path.join(stack.tmp, "loose-worker.conf")
    with open(wcfg, "w") as f:
        f.write('security = { keys = ["k9:%s"]; };\nfake = { channel = "email"; };\n' % loose)
    r = subprocess.run([binary("workers/herald-worker"), "-c", wcfg, "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "mode 0644" in r.stderr, (r.returncode, r.stderr)
    # the same files, mode 0600: valid
    os.chmod(loose, 0o600)
    for cmd in ([binary("broker/heraldd"), "-c", cfg, "--check-config"],
                [binary("workers/herald-worker"), "-c", wcfg, "--check-config"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
        assert "configuration valid" in r.stdout
    # a seal_key that is not among the keys is a configuration error
    with open(cfg, "w") as f:
        f.write('security = { keys = ["k9:%s"]; seal_key = "k1"; };\n' % loose)
    r = subprocess.run([binary("broker/heraldd"), "-c", cfg, "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "security.seal_key" in r.stderr, r.stderr


# ---- heraldctl show --------------------------------------------------------------

def show(user, *args, env=None):
    cmd = [binary("ctl/heraldctl"), "--db", stack.pg.url(user=user), "show"] + list(args)
    e = dict(os.environ)
    for k in ("HERALD_KEY_FILE", "HERALD_KEYS"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=e)


def test_K2_show_redacts_without_key_and_shows_with_key():
    mid = first_message()
    # An operator (the superuser) may see the message, not its confidential body.
    r = show("postgres", str(mid))
    assert r.returncode == 0, r.stderr
    assert "[confidential: redacted]" in r.stdout, r.stdout
    assert MARK not in r.stdout and "hdseal" not in r.stdout
    assert "Bonus plan for Q3" in r.stdout  # the subject is not sealed

    # The sender may read it: sealed, so without a key she reads that it is sealed.
    r = show("alice", str(mid))
    assert r.returncode == 0, r.stderr
    assert "[confidential: sealed, no key]" in r.stdout, r.stdout
    assert MARK not in r.stdout and "hdseal" not in r.stdout

    # With the key: the text itself, from --key-file, HERALD_KEY_FILE or HERALD_KEYS.
    for args, env in ((["--key-file", "k1:" + KEY_PATH], None),
                      ([], {"HERALD_KEY_FILE": KEY_PATH}),
                      ([], {"HERALD_KEYS": "k1:" + KEY_PATH})):
        r = show("alice", str(mid), *args, env=env)
        assert r.returncode == 0, r.stderr
        assert "Bonus figures for the team: %s" % MARK in r.stdout, r.stdout
        assert "sealed with key k1; opened with your key" in r.stdout
        assert "hdseal" not in r.stdout
    r = show("alice", str(mid), "--json", "--key-file", KEY_PATH)
    assert r.returncode == 0, r.stderr
    assert MARK in r.stdout and '"opened": true' in r.stdout, r.stdout

    # A key file others may read is refused, and nothing is shown.
    loose = os.path.join(KEY_DIR, "k1-loose.key")
    shutil.copyfile(KEY_PATH, loose)
    os.chmod(loose, 0o644)
    r = show("alice", str(mid), "--key-file", loose)
    assert r.returncode == 1, (r.returncode, r.stdout)
    assert "group or others may access it" in r.stderr and MARK not in r.stdout


if __name__ == "__main__":
    with stack:
        os.makedirs(KEY_DIR)
        os.chmod(KEY_DIR, 0o700)
        write_key(KEY_PATH, os.urandom(32))
        stack.config_extra = HERALDD_CONFIG
        make_pki(PKI)
        os.makedirs(HOME)
        os.environ["HOME"] = HOME  # libESMTP looks for ~/.authenticate
        tls_server = TlsServer(PKI)
        try:
            stack.start_db()
            stack.start_heraldd()
            start_worker("tls", worker_config())
            run_tests([
                ("test_K2_confidential_body_never_stored_in_plain_text",
                 test_K2_confidential_body_never_stored_in_plain_text),
                ("test_K2_confidential_delivered_decrypted_over_starttls",
                 test_K2_confidential_delivered_decrypted_over_starttls),
                ("test_K2_largest_confidential_body_html_and_attachment_are_delivered",
                 test_K2_largest_confidential_body_html_and_attachment_are_delivered),
                ("test_K2_confidential_refused_without_tls",
                 test_K2_confidential_refused_without_tls),
                ("test_K2_worker_without_the_key_fails_the_job_and_sends_nothing",
                 test_K2_worker_without_the_key_fails_the_job_and_sends_nothing),
                ("test_K2_heraldd_without_key_refuses_confidential",
                 test_K2_heraldd_without_key_refuses_confidential),
                ("test_K2_key_files_others_may_read_stop_heraldd_and_the_worker",
                 test_K2_key_files_others_may_read_stop_heraldd_and_the_worker),
                ("test_K2_show_redacts_without_key_and_shows_with_key",
                 test_K2_show_redacts_without_key_and_shows_with_key),
            ])
        finally:
            tls_server.stop()
