#!/usr/bin/python3
"""
NAME
    bench_dispatch_sql - how fast claim_deliveries() + record_outcomes() go

SYNOPSIS
    bench_dispatch_sql.py [--url CONNINFO] [--deliveries 20000] [--batch 100]
                          [--finished 0] [--backlog-other 0] [--heraldctl PATH]

DESCRIPTION
    Stores DELIVERIES queued email deliveries through herald.intake_batch(),
    then, on one psql session, repeats: claim BATCH deliveries
    (herald.claim_deliveries) and record them all delivered
    (herald.record_outcomes), each call its own transaction
    (synchronous_commit on), until the queue is empty. Prints deliveries
    per second for the pair and the time each call took on average.

    --finished N adds N 'sent' deliveries first (a table that has run for
    a while); --backlog-other N adds N due sms deliveries the email claims
    must not walk through.

    Without --url it starts a private cluster (pgtest.PrivatePostgres),
    migrates it with heraldctl ($HERALD_BUILD_DIR/ctl/heraldctl or
    --heraldctl) and removes it afterwards. Only the claim/record script is
    timed; psql reports each statement's server round trip (\\timing).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgtest  # noqa: E402


def psql(url, script):
    r = subprocess.run([pgtest.PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"],
                       input=script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit("psql failed: " + r.stderr)
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[2].strip())
    ap.add_argument("--url")
    ap.add_argument("--deliveries", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--finished", type=int, default=0)
    ap.add_argument("--backlog-other", type=int, default=0)
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
        # Only staff may send (migration 003). Partial, so an existing
        # organisation (--url) is left alone.
        psql(url, "SELECT * FROM herald.org_import($j$%s$j$::jsonb);" % json.dumps(
            {"partial": True, "departments": [{"name": "Bench", "head": None}],
             "staff": [{"address": a, "name": a, "department": "Bench"}
                       for a in ("bench@example.com", "s")]}))
        run = "%x" % int(time.time() * 1000)
        setup = []
        for b in range(0, args.deliveries, 500):
            n = min(500, args.deliveries - b)
            batch = [{"ord": i + 1, "app": "bench", "ikey": "%s-%d" % (run, b + i),
                      "channel": "email", "sender": "bench@example.com", "class": "general",
                      "state": "queued", "subject": "s", "body": "b" * 200,
                      "to": ["u%d@example.com" % (b + i)]} for i in range(n)]
            setup.append("SELECT count(*) FROM herald.intake_batch($b$%s$b$::jsonb);"
                         % json.dumps(batch))
        if args.finished or args.backlog_other:
            # Finished and foreign rows hang off one message; only their
            # number and state matter here.
            setup.append(
                "SELECT count(*) FROM herald.intake_batch($b$%s$b$::jsonb);" % json.dumps(
                    [{"ord": 1, "app": "bench", "ikey": run + "-anchor", "channel": "sms",
                      "sender": "s", "class": "general", "state": "held", "to": ["+1"]}]))
            setup.append(
                "INSERT INTO herald.deliveries (message_id, channel, recipient, kind, state, "
                "next_attempt_at) SELECT (SELECT max(id) FROM herald.messages), 'email', 'r', "
                "'to', 'sent', now() - interval '1 day' FROM generate_series(1, %d);"
                % args.finished)
            # Older than every email delivery: a claim walking the old
            # single-column index would pass all of them first.
            setup.append(
                "INSERT INTO herald.deliveries (message_id, channel, recipient, kind, state, "
                "next_attempt_at) SELECT (SELECT max(id) FROM herald.messages), 'sms', 'r', "
                "'to', 'queued', now() - interval '1 day' FROM generate_series(1, %d);"
                % args.backlog_other)
        setup.append("VACUUM ANALYZE herald.deliveries;")
        psql(url, "\n".join(setup))

        rounds = (args.deliveries + args.batch - 1) // args.batch
        one = ("SELECT coalesce(jsonb_agg(jsonb_build_object('delivery_id', delivery_id, "
               "'attempt', attempt, 'outcome', 'delivered', 'provider', 'smtp', 'code', '250', "
               "'detail', '2.0.0 ok', 'provider_id', 'id-' || delivery_id)), '[]') AS res "
               "FROM herald.claim_deliveries('bench', '{email}', %d, 60000) \\gset\n"
               "SELECT count(*) FILTER (WHERE applied) FROM herald.record_outcomes('bench', "
               ":'res'::jsonb);\n" % args.batch)
        script = "\\timing on\n" + one * rounds
        t0 = time.monotonic()
        out = psql(url, script)
        elapsed = time.monotonic() - t0
        times = [float(x) for x in re.findall(r"^Time: ([0-9.]+) ms", out, re.M)]
        applied = sum(int(x) for x in re.findall(r"^([0-9]+)$", out, re.M))
        if applied != args.deliveries:
            raise SystemExit("expected %d deliveries recorded, got %d" % (args.deliveries, applied))
        claim_ms = times[0::2]
        record_ms = times[1::2]
        left = psql(url, "SELECT count(*) FROM herald.deliveries WHERE state = 'sent' "
                         "AND lease_owner IS NULL AND provider_id LIKE 'id-%';").strip()
        print("claim+record: %d deliveries in batches of %d on one session "
              "(%d finished rows, %d due sms rows in the way): %.2f s, %.0f deliveries/s; "
              "per call: claim %.2f ms, record_outcomes %.2f ms (server, avg); %s sent"
              % (args.deliveries, args.batch, args.finished, args.backlog_other, elapsed,
                 args.deliveries / elapsed, sum(claim_ms) / len(claim_ms),
                 sum(record_ms) / len(record_ms), left))
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
