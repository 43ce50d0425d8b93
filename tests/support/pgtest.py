"""
NAME
    pgtest - a private PostgreSQL 15 cluster for one test run

DESCRIPTION
    PrivatePostgres wraps deploy/pg-local.sh: start() creates and starts a
    cluster under a temporary directory on a free loopback port, stop()
    shuts it down, sql() runs SQL through psql and returns the rows.
    run_suite() runs a SQL-level test file's functions against one. It
    owns nothing but that cluster; the test harness (herald_harness.py)
    builds heraldd and friends on top of it.

    Rows come back as tuples of str, with SQL NULL as None. Errors raise
    SqlError carrying psql's stderr, so a test can assert on the message
    ("permission denied", a constraint name, ...).

    The repository root is $HERALD_SOURCE_DIR, else two levels above this
    file. Uses only the standard library (no psycopg on the test machines).
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import traceback

PGBIN = os.environ.get("HERALD_PGBIN", "/usr/lib/postgresql/15/bin")
PSQL = os.path.join(PGBIN, "psql")

# Separators that cannot appear in ordinary test data.
_FIELD_SEP = "\x1f"
_RECORD_SEP = "\x1e"
_NULL = "\x1a"


def source_dir():
    """The repository root."""
    env = os.environ.get("HERALD_SOURCE_DIR")
    if env:
        return env
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SqlError(Exception):
    """psql failed; .stderr holds its message, .returncode its exit code."""

    def __init__(self, query, returncode, stderr):
        self.query = query
        self.returncode = returncode
        self.stderr = stderr
        super().__init__("psql exit %d: %s" % (returncode, stderr.strip()))


class PrivatePostgres:
    """A throw-away cluster: superuser "postgres", trust auth, 127.0.0.1 only.

    tmpdir: directory to create the cluster in (DIR of pg-local.sh);
            created when missing. None makes a fresh temporary directory.
    port:   TCP port; None picks a free one.
    """

    def __init__(self, tmpdir=None, port=None):
        if tmpdir is None:
            tmpdir = tempfile.mkdtemp(prefix="herald-pg-")
        self.dir = os.path.abspath(tmpdir)
        self._port_given = port is not None
        self.port = port if port is not None else free_port()
        self.script = os.path.join(source_dir(), "deploy", "pg-local.sh")
        self.running = False

    # -- lifecycle ---------------------------------------------------------
    def _run_script(self, *args):
        return subprocess.run(["bash", self.script, *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=120)

    def start(self):
        """Create (first time) and start the cluster; returns self."""
        os.makedirs(self.dir, exist_ok=True)
        if os.geteuid() == 0:
            # pg-local.sh runs the server as "postgres", which must be able
            # to enter every parent of the cluster directory.
            parent = os.path.dirname(self.dir)
            if os.stat(parent).st_uid == 0 and parent.startswith(tempfile.gettempdir() + "/"):
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
        for attempt in range(5):
            r = self._run_script("start", self.dir, str(self.port))
            if r.returncode == 0:
                self.running = True
                # From now on the port is part of the cluster's identity:
                # clients reconnect to it after a restart.
                self._port_given = True
                return self
            # Another process may have taken the port between free_port()
            # and the server's bind: pick another one when we chose it.
            if self._port_given or attempt == 4:
                raise RuntimeError("pg-local.sh start failed:\n" + r.stdout + r.stderr)
            self.port = free_port()
        return self

    def stop(self):
        """Fast shutdown; harmless when not running."""
        if os.path.isdir(self.dir):
            r = self._run_script("stop", self.dir)
            if r.returncode != 0:
                raise RuntimeError("pg-local.sh stop failed:\n" + r.stdout + r.stderr)
        self.running = False

    def restart(self):
        """Stop and start again on the same port (data kept)."""
        self.stop()
        r = self._run_script("start", self.dir, str(self.port))
        if r.returncode != 0:
            raise RuntimeError("pg-local.sh start failed:\n" + r.stdout + r.stderr)
        self.running = True
        return self

    def is_running(self):
        return self._run_script("status", self.dir).returncode == 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- access ------------------------------------------------------------
    def url(self, user="postgres", dbname="postgres"):
        """Conninfo URL for libpq (no password: the cluster trusts loopback)."""
        return "postgresql://%s@127.0.0.1:%d/%s" % (user, self.port, dbname)

    def psql(self, args, user=None, dbname="postgres", input=None, check=True):
        """Run psql with extra args; returns the CompletedProcess."""
        cmd = [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1",
               "-d", self.url(user or "postgres", dbname), *args]
        env = dict(os.environ, PGCONNECT_TIMEOUT="10", PGOPTIONS="-c client_min_messages=warning")
        r = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env, timeout=300)
        if check and r.returncode != 0:
            raise SqlError(" ".join(args), r.returncode, r.stderr)
        return r

    def sql(self, query, user=None, dbname="postgres"):
        """Run query (one or more statements, one implicit transaction).

        Returns the rows (of every statement that returned any), each a
        tuple of str with None for NULL. Raises SqlError on failure.
        """
        r = self.psql(["-A", "-t", "-F", _FIELD_SEP, "-R", _RECORD_SEP,
                       "-P", "null=" + _NULL, "-c", query], user=user, dbname=dbname)
        out = r.stdout
        if out.endswith("\n"):
            out = out[:-1]
        if out == "":
            return []
        rows = []
        for rec in out.split(_RECORD_SEP):
            rows.append(tuple(None if f == _NULL else f for f in rec.split(_FIELD_SEP)))
        return rows

    def value(self, query, user=None, dbname="postgres"):
        """The single value of a one-row, one-column query."""
        rows = self.sql(query, user=user, dbname=dbname)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise AssertionError("expected one value from %r, got %r" % (query, rows))
        return rows[0][0]

    def expect_error(self, query, fragment, user=None, dbname="postgres"):
        """Assert that query fails with fragment in its error; return the error."""
        err = self.sql_error(query, user=user, dbname=dbname)
        assert err is not None, "expected %r to fail" % query
        assert fragment in err, "expected %r in the error of %r, got: %s" % (fragment, query, err)
        return err

    def sql_error(self, query, user=None, dbname="postgres"):
        """Run query expecting failure: returns psql's stderr, or None if it succeeded."""
        try:
            self.sql(query, user=user, dbname=dbname)
        except SqlError as e:
            return e.stderr
        return None

    def script(self, text, user=None, dbname="postgres"):
        """Run a multi-statement script from stdin (each statement its own
        transaction unless the script says BEGIN); returns stdout."""
        return self.psql(["-f", "-"], user=user, dbname=dbname, input=text).stdout

    def wait_ready(self, timeout_s=30.0):
        """Poll until the server accepts connections."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.sql("SELECT 1")
                return
            except SqlError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def jlit(doc):
    """doc as a jsonb literal for SQL text (dollar-quoted, no escaping needed)."""
    text = json.dumps(doc)
    assert "$j$" not in text
    return "$j$%s$j$::jsonb" % text


def run_suite(name, tests, on_start, needs=(), first_is_setup=True):
    """Run test functions against one private PostgreSQL cluster.

    on_start(pg, tmp) runs once the cluster is up: it keeps the cluster
    (and the temp directory) where the tests find them and creates what
    they share. When first_is_setup, a failing first test (the one that
    builds the schema) stops the rest. Every binary in needs must exist.
    Prints one line per test and "N passed, M failed"; returns the exit
    status. The directory is removed unless something failed and
    HERALD_KEEP_TMP is set."""
    for path in needs:
        if not os.access(path, os.X_OK):
            print("missing %s (build first)" % path)
            print("0 passed, 1 failed")
            return 1
    tmp = tempfile.mkdtemp(prefix="herald-%s-" % name)
    os.chmod(tmp, 0o755)
    pg = PrivatePostgres(os.path.join(tmp, "pg"))
    passed = failed = 0
    try:
        pg.start()
        on_start(pg, tmp)
        for t in tests:
            try:
                t()
                passed += 1
                print("ok   %s" % t.__name__, flush=True)
            except Exception:  # noqa: BLE001 - report every failure the same way
                failed += 1
                print("FAIL %s" % t.__name__, flush=True)
                traceback.print_exc()
                if first_is_setup and t is tests[0]:
                    break  # nothing else can run without the schema
    except Exception:  # noqa: BLE001
        failed += 1
        traceback.print_exc()
    finally:
        try:
            pg.stop()
        except Exception:  # noqa: BLE001
            traceback.print_exc()
        if failed == 0 or not os.environ.get("HERALD_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept %s" % tmp)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0
