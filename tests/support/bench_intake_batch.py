#!/usr/bin/python3
"""
NAME
    bench_intake_batch - how fast herald.intake_batch() stores messages

SYNOPSIS
    bench_intake_batch.py [--url CONNINFO] [--batches 100] [--size 200]
                          [--body-bytes 500] [--clients 1] [--heraldctl PATH]

DESCRIPTION
    Calls herald.intake_batch() with BATCHES batches of SIZE one-recipient
    messages of BODY_BYTES bytes each (unique idempotency keys), spread
    over CLIENTS concurrent psql sessions, each call its own transaction
    (synchronous_commit stays on), and prints messages per second.

    Without --url it starts a private cluster (pgtest.PrivatePostgres),
    migrates it with heraldctl ($HERALD_BUILD_DIR/ctl/heraldctl or
    --heraldctl) and removes it afterwards. The timing covers only the
    SQL calls: the scripts are generated before the clock starts.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgtest  # noqa: E402


# The benchmark's sender as staff, in a department without a head.
ORG = {"partial": True, "departments": [{"name": "Bench", "head": None}],
       "staff": [{"address": "bench@example.com", "name": "Bench", "department": "Bench"}]}


def make_batch(run, client, b, size, body_bytes):
    body = ("x" * body_bytes)
    entries = []
    for i in range(size):
        entries.append({
            "ord": i + 1, "app": "bench", "ikey": "%s-%d-%d-%d" % (run, client, b, i),
            "channel": "email", "sender": "bench@example.com", "class": "general",
            "state": "queued", "subject": "benchmark message %d" % i, "body": body,
            "html": None, "cc_reason": None, "purpose": None, "reply_by": None,
            "flags": [], "tags": {}, "to": ["user%d@example.com" % i], "cc": [],
            "attachments": [], "bulk": None,
        })
    return json.dumps(entries)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[2].strip())
    ap.add_argument("--url")
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--body-bytes", type=int, default=500)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--heraldctl")
    args = ap.parse_args()

    pg = None
    tmp = tempfile.mkdtemp(prefix="herald-bench-")
    try:
        url = args.url
        if url is None:
            pg = pgtest.PrivatePostgres(os.path.join(tmp, "pg")).start()
            url = pg.url()
            ctl = args.heraldctl or os.path.join(os.environ.get("HERALD_BUILD_DIR", "build"),
                                                 "ctl", "heraldctl")
            subprocess.run([ctl, "--db", url, "db", "migrate"], check=True,
                           stdout=subprocess.DEVNULL)
        # Only staff may send (migration 003): make the benchmark's sender
        # staff. Partial, so an existing organisation (--url) is left alone.
        subprocess.run([pgtest.PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c",
                        "SELECT * FROM herald.org_import($j$%s$j$::jsonb)" % json.dumps(ORG)],
                       check=True, stdout=subprocess.DEVNULL)
        run = "%x" % int(time.time() * 1000)
        per_client = [args.batches // args.clients + (1 if c < args.batches % args.clients else 0)
                      for c in range(args.clients)]
        files = []
        for c, n in enumerate(per_client):
            path = os.path.join(tmp, "client%d.sql" % c)
            with open(path, "w") as f:
                for b in range(n):
                    f.write("SELECT count(*) FILTER (WHERE error IS NULL) "
                            "FROM herald.intake_batch($b$%s$b$::jsonb);\n"
                            % make_batch(run, c, b, args.size, args.body_bytes))
            files.append(path)
        psql = [pgtest.PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url]
        t0 = time.monotonic()
        procs = [subprocess.Popen(psql + ["-f", p], stdout=subprocess.PIPE) for p in files]
        stored = 0
        for p in procs:
            out, _ = p.communicate()
            if p.returncode != 0:
                raise SystemExit("psql failed")
            stored += sum(int(x) for x in out.split())
        elapsed = time.monotonic() - t0
        msgs = args.batches * args.size
        if stored != msgs:
            raise SystemExit("expected %d rows back, got %d" % (msgs, stored))
        print("intake_batch: %d messages in %d batches of %d (%d-byte bodies), %d client(s): "
              "%.2f s, %.0f msgs/s" % (msgs, args.batches, args.size, args.body_bytes,
                                       args.clients, elapsed, msgs / elapsed))
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
