"""
NAME
    herald_harness - real processes for integration tests

DESCRIPTION
    Starts a private PostgreSQL (pgtest.PrivatePostgres), migrates it with
    heraldctl, creates a login role that is a member of herald_broker, and
    runs heraldd on a free port with a generated configuration. Everything
    lives in a temporary directory that is removed unless the test fails
    and HERALD_KEEP_TMP is set. Processes are real and are stopped with
    real signals.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

from herald_client import Producer
from pgtest import PrivatePostgres

BUILD_DIR = os.environ.get("HERALD_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
SOURCE_DIR = os.environ.get("HERALD_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")


def binary(rel):
    path = os.path.join(BUILD_DIR, rel)
    if not os.path.exists(path):
        raise RuntimeError("missing binary %s (build first)" % path)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, step=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


# Every sender the tests use is known staff (POLICY: a submission from
# anyone else is refused). Department heads and a senior leader make the
# approval tests possible; each has a login role of the same name.
TEST_ORG = {
    "departments": [
        {"name": "Sales", "head": "sales-head@example.com"},
        {"name": "Operations", "head": "ops-head@example.com"},
        {"name": "Engineering", "head": "eng-head@example.com"},
    ],
    "staff": [
        {"address": "alice@example.com", "name": "Alice", "department": "Sales",
         "roles": ["employee"], "db_role": "alice"},
        {"address": "bob@example.com", "name": "Bob", "department": "Sales",
         "roles": ["employee"], "db_role": "bob"},
        {"address": "sales-head@example.com", "name": "Sally Head", "department": "Sales",
         "roles": ["employee", "dept_head"], "db_role": "sales_head"},
        {"address": "ops-head@example.com", "name": "Otto Head", "department": "Operations",
         "roles": ["employee", "dept_head"], "db_role": "ops_head"},
        {"address": "eng-head@example.com", "name": "Erin Head", "department": "Engineering",
         "roles": ["employee", "dept_head"], "db_role": "eng_head"},
        {"address": "ceo@example.com", "name": "Cleo Chief", "department": "Operations",
         "roles": ["employee", "senior"], "db_role": "ceo"},
        {"address": "ops@example.com", "name": "Ops Robot", "department": "Operations",
         "roles": ["employee"]},
        {"address": "otp@example.com", "name": "OTP Service", "department": "Operations",
         "roles": ["employee"]},
        {"address": "bench@example.com", "name": "Bench", "department": "Engineering",
         "roles": ["employee"]},
    ],
}
PEOPLE = ["alice", "bob", "sales_head", "ops_head", "eng_head", "ceo"]

# POLICY I3: IM goes only to registered work groups. The groups the
# tests post to as ops@example.com (Operations), with the worker entry
# of the same name as their endpoint.
TEST_GROUPS = [
    ("ops-oncall", "operations on-call", "slack"),
    ("sre-cn", "SRE China", "dingtalk"),
    ("sre", "SRE", "dingtalk"),
    ("cn-ops", "operations China", "wecom"),
    ("gone", "a retired channel", "slack"),
]


class Stack:
    """PostgreSQL + migrated schema + heraldd, in one temp directory."""

    BROKER_ROLE = "heraldd_itest"

    def __init__(self, name, config_extra=""):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="herald-%s-" % name)
        os.chmod(self.tmp, 0o755)
        self.pg = PrivatePostgres(os.path.join(self.tmp, "pg"))
        self.config_extra = config_extra
        self.port = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.dispatch_endpoint = "tcp://127.0.0.1:%d" % free_port()
        self.heraldd = None
        self.log_path = os.path.join(self.tmp, "heraldd.log")
        self.workers = []

    # --- database -------------------------------------------------------
    def start_db(self):
        self.pg.start()
        self.heraldctl("db", "migrate")
        self.pg.sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') "
                    "THEN CREATE ROLE %s LOGIN IN ROLE herald_broker; END IF; END $$"
                    % (self.BROKER_ROLE, self.BROKER_ROLE))
        for person in PEOPLE:
            self.pg.sql("CREATE ROLE %s LOGIN IN ROLE herald_approver" % person)
        self.import_org(TEST_ORG)
        for name, purpose, provider in TEST_GROUPS:
            self.pg.sql("SELECT herald.group_add('%s', '%s', 'ops-head@example.com', '%s', '%s', "
                        "ARRAY['Operations'])" % (name, purpose, provider, name))

    def import_org(self, org):
        doc = json.dumps(org).replace("'", "''")
        self.pg.sql("SELECT * FROM herald.org_import('%s'::jsonb)" % doc)

    def sql(self, query, user=None):
        return [list(r) for r in self.pg.sql(query, user=user)]

    def scalar(self, query):
        rows = self.sql(query)
        return rows[0][0] if rows else None

    def heraldctl(self, *args, check=True):
        cmd = [binary("ctl/heraldctl"), "--db", self.pg.url()] + list(args)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError("heraldctl %s failed (%d): %s%s"
                                 % (" ".join(args), res.returncode, res.stdout, res.stderr))
        return res

    # --- heraldd --------------------------------------------------------
    def write_config(self):
        path = os.path.join(self.tmp, "heraldd.conf")
        with open(path, "w") as f:
            f.write('listen = "%s";\nlog_level = "info";\n%s\n' % (self.endpoint, self.config_extra))
        return path

    def start_heraldd(self, wait=True):
        cfg = self.write_config()
        log = open(self.log_path, "ab")
        self.heraldd = subprocess.Popen(
            [binary("broker/heraldd"), "-c", cfg, "--db", self.pg.url(user=self.BROKER_ROLE),
             "--dispatch-listen", self.dispatch_endpoint],
            stdout=log, stderr=log)
        log.close()
        if wait:
            self.wait_ready()
        return self.heraldd

    def wait_ready(self, timeout=15.0):
        """Ready means answering pings, which heraldd does only while it can
        reach PostgreSQL."""
        p = Producer(self.endpoint, app="harness")
        try:
            wait_until(lambda: p.ping(200), timeout, what="heraldd to answer ping")
        finally:
            p.close()

    def kill_heraldd(self, sig=signal.SIGKILL):
        if self.heraldd and self.heraldd.poll() is None:
            self.heraldd.send_signal(sig)
            self.heraldd.wait(timeout=15)
        code = self.heraldd.returncode if self.heraldd else None
        self.heraldd = None
        # A clean stop exits 0; under ASan a leak at exit makes it non-zero.
        if sig == signal.SIGTERM and code not in (0, None):
            raise AssertionError("heraldd exited with %s on SIGTERM" % code)
        return code

    def start_broker(self, config_extra=None, log_name="heraldd2.log"):
        """A further heraldd on the same database (own ports); returns (proc, endpoint,
        dispatch_endpoint, log_path)."""
        port, dport = free_port(), free_port()
        cfg = os.path.join(self.tmp, "heraldd-%d.conf" % port)
        with open(cfg, "w") as f:
            f.write('listen = "tcp://127.0.0.1:%d";\n%s\n'
                    % (port, self.config_extra if config_extra is None else config_extra))
        log_path = os.path.join(self.tmp, log_name)
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            [binary("broker/heraldd"), "-c", cfg, "--db", self.pg.url(user=self.BROKER_ROLE),
             "--dispatch-listen", "tcp://127.0.0.1:%d" % dport], stdout=log, stderr=log)
        log.close()
        self.workers.append(proc)  # stopped with the workers
        return proc, "tcp://127.0.0.1:%d" % port, "tcp://127.0.0.1:%d" % dport, log_path

    def start_worker(self, config, name="w1", broker=None):
        """Run herald-worker with config text (libconfig); returns the process."""
        path = os.path.join(self.tmp, "worker-%s.conf" % name)
        with open(path, "w") as f:
            f.write(config)
        log = open(os.path.join(self.tmp, "worker-%s.log" % name), "ab")
        proc = subprocess.Popen(
            [binary("workers/herald-worker"), "-c", path, "--name", name,
             "--broker", broker or self.dispatch_endpoint], stdout=log, stderr=log)
        log.close()
        self.workers.append(proc)
        return proc

    def wait_worker_ready(self, timeout=10.0):
        """Until heraldd has logged a worker's READY (which claims at once)."""
        wait_until(lambda: "dispatch.worker_ready" in self.log(), timeout,
                   what="heraldd to see the worker")

    def worker_log(self, name="w1"):
        try:
            with open(os.path.join(self.tmp, "worker-%s.log" % name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def producer(self, app="itest"):
        return Producer(self.endpoint, app=app)

    # --- lifecycle ------------------------------------------------------
    def stop(self):
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.heraldd and self.heraldd.poll() is None:
            self.kill_heraldd(signal.SIGTERM)
        self.pg.stop()

    def cleanup(self, ok):
        self.stop()
        if ok or not os.environ.get("HERALD_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print("kept %s" % self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        ok = exc_type is None or (exc_type is SystemExit and exc.code in (0, None))
        if not ok:
            sys.stderr.write("--- heraldd log (tail) ---\n%s\n" % self.log()[-4000:])
            for name in sorted(os.listdir(self.tmp)):
                if name.startswith("worker-") and name.endswith(".log"):
                    with open(os.path.join(self.tmp, name), errors="replace") as f:
                        sys.stderr.write("--- %s (tail) ---\n%s\n" % (name, f.read()[-2000:]))
        self.cleanup(ok)
        return False


def run_tests(tests):
    """Run (name, fn) pairs; print a summary line; exit non-zero on failure."""
    passed = failed = 0
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
            passed += 1
            print("ok   %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
        except Exception:  # noqa: BLE001 - report every failure the same way
            failed += 1
            print("FAIL %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
