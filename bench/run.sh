#!/usr/bin/env bash
# NAME
#	run.sh - Herald benchmarks on a private, throw-away stack
# SYNOPSIS
#	bench/run.sh intake | email | im | approval | policy
# DESCRIPTION
#	intake: builds herald-bench, heraldd and heraldctl if needed, starts
#	its own PostgreSQL 15 (deploy/pg-local.sh, default durability: fsync,
#	synchronous_commit and full_page_writes on, checked with SHOW),
#	migrates it, creates the broker login role and runs heraldd on free
#	ports in a temporary directory, then:
#	  1. closed-loop runs of herald-bench at each concurrency in
#	     CONCURRENCIES (the peak acks/s is "herald"), then one run at the
#	     peak's concurrency with the other driver (lib <-> raw) to show
#	     how much the client itself costs;
#	  2. an open-loop run at half that peak rate over RATE_CONCURRENCY
#	     connections (its p99 is "p99_ms");
#	  3. the anchor: pgbench, 8 clients (-c 8 -j 2), one single-row
#	     INSERT of a ~500-byte row per transaction, synchronous_commit on,
#	     against the same PostgreSQL, ANCHOR_RUNS times (the best tps is
#	     "anchor");
#	  4. correctness: rows in herald.messages must equal the ACKs counted
#	     by every herald-bench run, else exit 1.
#	Every phase starts after a CHECKPOINT so none pays for another's
#	dirty pages. CPU seconds of heraldd, PostgreSQL (all its processes)
#	and herald-bench are shown per run, with the average group-commit
#	batch (messages per intake_batch call, from herald.audit_links).
#	The last line of output is always
#	  RESULT intake herald=<acks/s> anchor=<tps> ratio=<x.xx> p99_ms=<ms>
#	Targets (ratio >= 3, p99 <= 20 ms at half peak) are printed, not
#	enforced. Everything is stopped and removed on exit, even on failure
#	(KEEP_TMP=1 keeps the directory for a post-mortem).
#
#	email: end to end, submission -> heraldd -> PostgreSQL -> herald-worker
#	(email driver, libESMTP) -> smtp-sink, counted AT THE SINK (smtp-sink
#	-c running counter). In the same run, the anchor: the same number of
#	~1 KB messages through a private Postfix relay (smtp-source -s 8 ->
#	Postfix smtpd on loopback -> relayhost = the same smtp-sink), and the
#	sink's own capacity (smtp-source straight into it). Then every
#	delivery must be in state 'sent' (else exit 1). Last line:
#	  RESULT email herald=<msgs/s> anchor=<postfix msgs/s> ratio=<x.xx>
#	Target ratio >= 10 (printed, not enforced).
#
#	im: end to end to webhooks: IM messages to IM_GROUPS groups of
#	provider "generic" whose URLs point at a private nginx on loopback
#	answering 204 (keep-alive), counted at nginx (its access log). The
#	anchor, same run and same nginx: curl-anchor, one libcurl easy handle
#	reused for keep-alive POSTs of a JSON body as large as Herald's, for
#	ANCHOR_SECONDS; nginx's own rate and CPU during the anchor are shown,
#	so the sink is known not to be the bottleneck. Every delivery must be
#	'sent' at the end (else exit 1). Last line:
#	  RESULT im herald=<msgs/s> anchor=<req/s> ratio=<x.xx>
#	Target ratio >= 0.3 (printed, not enforced).
#
#	approval: APPROVALS important emails are submitted (herald-bench
#	--important) and held, one level-1 request each for the head of
#	Sales (login role sales_head, notified through a fake IM driver);
#	APPROVERS psql sessions as sales_head then approve them, one
#	herald.approve() per transaction, and the released messages go out
#	through herald-worker (email driver) to smtp-sink, which dumps one
#	file per message. Release latency = the file's mtime - the database
#	clock read right after the approval committed, matched by
#	Message-ID. dispatch.poll_ms is 200 here: the release must be
#	driven by NOTIFY herald_released. Every bench delivery must end
#	'sent' and be received once (else exit 1). Last line:
#	  RESULT approval approvals_per_s=<x> release_p99_ms=<y>
#	Targets approvals/s >= 1000, release p99 <= 1000 ms (printed only).
#
#	policy: the sending policy (broker/hd_policy) with 10,000-term lists.
#	  1. herald-policy-bench writes the policy (heraldd's rules; lists
#	     prohibited 5,000 + sensitive 3,000 + civility 2,000 terms from
#	     files, half Chinese, half English, fixed seed) and evaluates
#	     1,000 distinct ~1 KB mixed Chinese/English messages (email, IM,
#	     SMS; 5% with a planted term) on one thread pinned to one CPU for
#	     POLICY_SECONDS: evaluations per CPU second ("evals_per_s"). It
#	     exits 1 when a planted term is missed or a clean message is
#	     rejected or held.
#	  2. intake with the policy against intake without it, same run, same
#	     PostgreSQL: heraldd restarted with that policy ("on") or with
#	     `policy = { enabled = false; };` ("off"), POLICY_ROUNDS rounds in
#	     the order on off / off on / ... (ABBA, so a drift of the machine
#	     or of the growing tables cancels), each a closed-loop herald-bench
#	     run of POLICY_MESSAGES clean ~1 KB mixed texts (--text-file, written by
#	     herald-policy-bench, every one checked clean) at
#	     POLICY_CONCURRENCY with INFLIGHT outstanding, after
#	     POLICY_WARMUP unreported messages. intake_ratio = mean acks/s on
#	     / mean acks/s off.
#	  Correctness: rows in herald.messages == ACKs, no stored message has
#	  a finding, every run without errors (else exit 1). Last line:
#	    RESULT policy evals_per_s=<n> intake_ratio=<on/off>
#	  Targets evals_per_s >= 100000 per core, intake_ratio >= 0.9
#	  (printed, not enforced).
#
#	In email and im, the end-to-end time runs from just before the sender
#	starts to the moment the sink counted the last message (polled every
#	5 ms), so it includes the sender's start-up and connection set-up on
#	both sides alike. heraldd's dispatch settings are tuned for
#	throughput (DISPATCH_CONF); heraldd and the workers log at LOG_LEVEL
#	(default info, as deployed: one line per delivery in each).
# ENVIRONMENT
#	BUILD_DIR        build directory (default: <repo>/build-bench)
#	CONCURRENCIES    closed-loop concurrencies (default "1 4 16 64")
#	MESSAGES         messages per closed-loop run (default 50000)
#	INFLIGHT         total outstanding requests in closed loop; the window
#	                 per connection is INFLIGHT/C, at least 8 (default 1024)
#	RATE_SECONDS     length of the half-peak open-loop run (default 15)
#	RATE_CONCURRENCY connections of the half-peak run (default 4: a fixed
#	                 number, so the client's own CPU does not vary with
#	                 whichever concurrency happened to give the peak)
#	ANCHOR_SECONDS   duration of one pgbench run (default 10)
#	ANCHOR_RUNS      pgbench runs; the best is the anchor (default 2)
#	DRIVER           herald-bench driver: lib (default) or raw
#	HERALDD_CONF     extra libconfig text appended to heraldd's config,
#	                 e.g. 'intake = { batch_max_messages = 512; };'
#	E2E_MESSAGES     email/im: messages per end-to-end run (default 20000)
#	E2E_WARMUP       email/im: warm-up messages, not reported (default 2000)
#	E2E_CONCURRENCY  email/im: herald-bench connections (default 4)
#	WORKERS          email/im: herald-worker processes (default 1)
#	WORKER_CREDIT    email: each worker's credit and max_jobs (default 2000)
#	EMAIL_SESSIONS   email: SMTP sessions per worker (default 8)
#	IM_GROUPS        im: groups the messages are spread over (default 8)
#	IM_IN_FLIGHT     im: webhook requests in flight per worker, also its
#	                 credit (default 256)
#	E2E_TIMEOUT_S    email/im: give up when the sink has not counted every
#	                 message after this long (default 120)
#	LOG_LEVEL        email/im: heraldd's and the workers' log_level (default info)
#	DISPATCH_CONF    email/im/approval: heraldd's dispatch group (default:
#	                 window 10000, claim_batch 1000, poll_ms 10 (approval:
#	                 200), outcome_batch_max 2000, rate_limits [])
#	APPROVALS        approval: messages held and approved (default 10000)
#	APPROVERS        approval: concurrent psql sessions approving (default 4)
#	POLICY_SECONDS   policy: length of the evaluation loop (default 10)
#	POLICY_TERMS     policy: terms of the lists prohibited,sensitive,civility
#	                 (default 5000,3000,2000)
#	POLICY_ROUNDS    policy: rounds of one run with and one without the
#	                 policy, ABBA order (default 5: single runs differ by ±10%)
#	POLICY_CONCURRENCY policy: herald-bench connections (default 16; with
#	                 INFLIGHT 1024 outstanding, intake's peak on this box)
#	POLICY_MESSAGES  policy: messages per intake run (default 100000)
#	POLICY_WARMUP    policy: unreported messages after each heraldd start
#	                 (default 2000)
# EXIT STATUS
#	0 done and consistent; 1 a run failed, rows != ACKs, (email, im,
#	approval) a delivery did not end 'sent', or (policy) a policy
#	evaluation was wrong; 2 usage.
set -euo pipefail

PROG=${0##*/}
REPO=$(cd -- "$(dirname -- "$0")/.." && pwd -P)
BUILD_DIR=${BUILD_DIR:-$REPO/build-bench}
CONCURRENCIES=${CONCURRENCIES:-"1 4 16 64"}
MESSAGES=${MESSAGES:-50000}
INFLIGHT=${INFLIGHT:-1024}
RATE_SECONDS=${RATE_SECONDS:-15}
RATE_CONCURRENCY=${RATE_CONCURRENCY:-4}
ANCHOR_SECONDS=${ANCHOR_SECONDS:-10}
ANCHOR_RUNS=${ANCHOR_RUNS:-2}
DRIVER=${DRIVER:-lib}
HERALDD_CONF=${HERALDD_CONF:-}
E2E_MESSAGES=${E2E_MESSAGES:-20000}
E2E_WARMUP=${E2E_WARMUP:-2000}
E2E_CONCURRENCY=${E2E_CONCURRENCY:-4}
WORKERS=${WORKERS:-1}
WORKER_CREDIT=${WORKER_CREDIT:-2000}
EMAIL_SESSIONS=${EMAIL_SESSIONS:-8}
IM_GROUPS=${IM_GROUPS:-8}
IM_IN_FLIGHT=${IM_IN_FLIGHT:-256}
LOG_LEVEL=${LOG_LEVEL:-info}
E2E_TIMEOUT_S=${E2E_TIMEOUT_S:-120}
APPROVALS=${APPROVALS:-10000}
APPROVERS=${APPROVERS:-4}
POLICY_SECONDS=${POLICY_SECONDS:-10}
POLICY_TERMS=${POLICY_TERMS:-5000,3000,2000}
POLICY_ROUNDS=${POLICY_ROUNDS:-5}
POLICY_CONCURRENCY=${POLICY_CONCURRENCY:-16}
POLICY_MESSAGES=${POLICY_MESSAGES:-100000}
POLICY_WARMUP=${POLICY_WARMUP:-2000}
# approval: a normal poll interval, so only NOTIFY can make releases fast.
DISPATCH_POLL_MS=10
[ "${1:-}" != approval ] || DISPATCH_POLL_MS=200
DISPATCH_CONF=${DISPATCH_CONF:-"dispatch = { window = 10000; claim_batch = 1000; poll_ms = $DISPATCH_POLL_MS;
  outcome_batch_max = 2000; rate_limits = []; };"}
SIZE=500
BROKER_ROLE=heraldd_bench
PY=/usr/bin/python3

die() {
	echo "$PROG: $*" >&2
	exit 1
}

usage() {
	echo "usage: $PROG intake | email | im | approval | policy" >&2
	exit 2
}

log() {
	echo "# $*"
}

[ $# -eq 1 ] || usage
MODE=$1
case "$MODE" in
intake | email | im | approval | policy) ;;
*) usage ;;
esac

# ---- build -------------------------------------------------------------

build() {
	local out
	out=$(mktemp)
	if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
		log "configuring $BUILD_DIR"
		cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$out" 2>&1 ||
			{ cat "$out" >&2; rm -f "$out"; die "cmake configure failed"; }
	fi
	local targets=(herald-bench heraldd heraldctl)
	case "$MODE" in
	email | im | approval) targets+=(herald-worker) ;;
	policy) targets+=(herald-policy-bench) ;;
	esac
	[ "$MODE" != im ] || targets+=(curl-anchor)
	log "building ${targets[*]} in $BUILD_DIR"
	cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${targets[@]}" >"$out" 2>&1 ||
		{ cat "$out" >&2; rm -f "$out"; die "build failed"; }
	rm -f "$out"
}

build
BENCH=$BUILD_DIR/bench/herald-bench
HERALDD=$BUILD_DIR/broker/heraldd
HERALDCTL=$BUILD_DIR/ctl/heraldctl
WORKER=$BUILD_DIR/workers/herald-worker
CURL_ANCHOR=$BUILD_DIR/bench/curl-anchor
POLICY_BENCH=$BUILD_DIR/bench/herald-policy-bench
PGLOCAL=$REPO/deploy/pg-local.sh
NEEDED=("$BENCH" "$HERALDD" "$HERALDCTL")
case "$MODE" in
email | im | approval) NEEDED+=("$WORKER") ;;
policy) NEEDED+=("$POLICY_BENCH") ;;
esac
[ "$MODE" != im ] || NEEDED+=("$CURL_ANCHOR")
for b in "${NEEDED[@]}"; do
	[ -x "$b" ] || die "missing $b after the build"
done
case "$MODE" in
approval) command -v smtp-sink >/dev/null || die "smtp-sink not found (Debian package postfix)" ;;
email) for b in smtp-sink smtp-source postfix postconf; do
	command -v "$b" >/dev/null || die "$b not found (Debian package postfix)"
done ;;
im) command -v nginx >/dev/null || die "nginx not found (Debian package nginx-light)" ;;
esac

# ---- stack -------------------------------------------------------------

TMP=$(mktemp -d /tmp/herald-bench.XXXXXX)
chmod 755 "$TMP" # the postgres user must reach the cluster directory
HERALDD_PID=
WORKER_PIDS=()
SINK_PIDS=()   # smtp-sink, nginx: stopped after heraldd
POSTFIX_CONF=  # set once the private Postfix was started
ok=0

# stop_pid PID: TERM, up to 10 s, then KILL.
stop_pid() {
	kill -0 "$1" 2>/dev/null || return 0
	kill -TERM "$1" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
}

# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local pid
	for pid in "${WORKER_PIDS[@]}"; do
		stop_pid "$pid"
	done
	if [ -n "$HERALDD_PID" ]; then
		stop_pid "$HERALDD_PID"
	fi
	if [ -n "$POSTFIX_CONF" ]; then
		postfix -c "$POSTFIX_CONF" stop >/dev/null 2>&1 || true
	fi
	for pid in "${SINK_PIDS[@]}"; do
		stop_pid "$pid"
	done
	if [ -d "$TMP/pg" ]; then
		"$PGLOCAL" stop "$TMP/pg" >/dev/null 2>&1 || true
	fi
	if [ "$ok" != 1 ]; then
		local f
		for f in "$TMP"/heraldd.log "$TMP"/worker-*.log; do
			[ -f "$f" ] || continue
			echo "--- ${f##*/} (tail) ---" >&2
			tail -n 20 "$f" >&2 || true
		done
	fi
	if [ -n "${KEEP_TMP:-}" ]; then
		echo "$PROG: kept $TMP" >&2
	else
		rm -rf -- "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PGPORT=$(free_port)
"$PGLOCAL" start "$TMP/pg" "$PGPORT" >"$TMP/pg-local.log" 2>&1 ||
	{ cat "$TMP/pg-local.log" >&2; die "PostgreSQL did not start"; }
DB_URL=$("$PGLOCAL" url "$TMP/pg" "$PGPORT")
BROKER_URL="postgresql://$BROKER_ROLE@127.0.0.1:$PGPORT/postgres"

sql() {
	psql "$DB_URL" -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"
}

log "PostgreSQL $(sql 'SHOW server_version') on 127.0.0.1:$PGPORT ($TMP/pg)"
for setting in fsync synchronous_commit full_page_writes; do
	value=$(sql "SHOW $setting")
	log "  $setting = $value"
	[ "$value" = on ] || die "$setting is '$value': the benchmark needs default durability"
done

"$HERALDCTL" --db "$DB_URL" db migrate >"$TMP/migrate.log" 2>&1 ||
	{ cat "$TMP/migrate.log" >&2; die "heraldctl db migrate failed"; }
sql "CREATE ROLE $BROKER_ROLE LOGIN IN ROLE herald_broker"
# Only known staff may send (POLICY): make herald-bench's sender staff
# (approval imports its own organisation).
if [ "$MODE" != approval ] && [ "$(sql "SELECT to_regprocedure('herald.org_import(jsonb)') IS NOT NULL")" = t ]; then
	sql "SELECT * FROM herald.org_import('{\"departments\": [{\"name\": \"Bench\", \"head\": \"bench@example.com\"}],
		\"staff\": [{\"address\": \"bench@example.com\", \"name\": \"Herald Bench\",
		\"department\": \"Bench\", \"roles\": [\"employee\"]}]}'::jsonb)" >/dev/null
	# POLICY I3: IM goes only to registered work groups (the im mode's
	# bench-0 .. bench-N, each a worker entry of the same name).
	if [ "$(sql "SELECT to_regprocedure('herald.group_add(text,text,text,text,text,text[])') IS NOT NULL")" = t ]; then
		sql "SELECT herald.group_add('bench-' || i, 'benchmark', 'bench@example.com', 'webhook',
			'bench-' || i, ARRAY['Bench']) FROM generate_series(0, 63) AS i" >/dev/null
	fi
fi

HPORT=$(free_port)
ENDPOINT=tcp://127.0.0.1:$HPORT
MODE_CONF=
HERALDD_LOG_LEVEL=info
case "$MODE" in
intake | policy) ;;
*)
	MODE_CONF=$DISPATCH_CONF
	HERALDD_LOG_LEVEL=$LOG_LEVEL
	;;
esac

# write_heraldd_conf FILE [EXTRA]: heraldd's configuration for this mode
# (HERALDD_CONF included), plus EXTRA libconfig text.
write_heraldd_conf() {
	cat >"$1" <<EOF
listen = "$ENDPOINT";
log_level = "$HERALDD_LOG_LEVEL";
$MODE_CONF
$HERALDD_CONF
${2:-}
EOF
}

HERALDD_ARGS=(--db "$BROKER_URL")
# The dispatcher's worker endpoint gets a free port too: the default one
# may be taken by another stack on this machine.
HERALDD_HELP=$("$HERALDD" --help 2>&1 || true)
DISPATCH_EP=
case "$HERALDD_HELP" in
*--dispatch-listen*)
	DISPATCH_EP="tcp://127.0.0.1:$(free_port)"
	HERALDD_ARGS+=(--dispatch-listen "$DISPATCH_EP")
	;;
esac
case "$MODE" in
intake | policy) ;;
*) [ -n "$DISPATCH_EP" ] || die "this heraldd has no --dispatch-listen" ;;
esac

# start_heraldd CONF: heraldd with configuration file CONF (its output
# appended to TMP/heraldd.log), once it answers a ping.
start_heraldd() {
	"$HERALDD" -c "$1" "${HERALDD_ARGS[@]}" >>"$TMP/heraldd.log" 2>&1 &
	HERALDD_PID=$!
	local ready=0
	for _ in $(seq 1 30); do
		kill -0 "$HERALDD_PID" 2>/dev/null || die "heraldd exited during start-up"
		if "$BENCH" ping --endpoint "$ENDPOINT" --wait-ms 500 2>/dev/null; then
			ready=1
			break
		fi
	done
	[ "$ready" = 1 ] || die "heraldd did not answer a ping within 15 s"
}

# stop_heraldd: stop the running heraldd (policy restarts it with another
# configuration on the same ports).
stop_heraldd() {
	if [ -n "$HERALDD_PID" ]; then
		stop_pid "$HERALDD_PID"
	fi
	HERALDD_PID=
}

write_heraldd_conf "$TMP/heraldd.conf"
# policy starts heraldd itself, once per configuration it compares.
if [ "$MODE" != policy ]; then
	start_heraldd "$TMP/heraldd.conf"
	log "heraldd pid $HERALDD_PID on $ENDPOINT; config:"
else
	log "heraldd on $ENDPOINT, restarted for every run; config:"
fi
"$HERALDD" -c "$TMP/heraldd.conf" --print-config 2>/dev/null | grep -E '^[[:space:]]*(batch_max_messages|batch_max_wait_ms|max_pending|connections) =' |
	sed 's/^[[:space:]]*/#   /' || true
if [ -n "$MODE_CONF" ]; then
	"$HERALDD" -c "$TMP/heraldd.conf" --print-config 2>/dev/null |
		sed -n '/^dispatch = {/,/^};/p' | grep -E '^[[:space:]]*(window|claim_batch|poll_ms|outcome_batch_max|coalesce_ms|rate_limits) =' |
		sed 's/^[[:space:]]*/#   dispatch./' || true
fi

PG_POSTMASTER=$(head -n 1 "$TMP/pg/data/postmaster.pid")

# ---- measurement helpers ------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)

# CPU ticks used so far by one process (utime + stime).
proc_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# CPU ticks of the whole cluster: the postmaster, the children it has
# reaped and the children alive now (a child moves from the last group
# to the second when it exits, so differences stay right).
pg_ticks() {
	local total children pid
	total=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$PG_POSTMASTER/stat")
	children=$(cat "/proc/$PG_POSTMASTER/task/$PG_POSTMASTER/children" 2>/dev/null || true)
	for pid in $children; do
		total=$((total + $(proc_ticks "$pid")))
	done
	echo "$total"
}

# Busy CPU ticks of the whole machine (every CPU, idle and iowait excluded).
machine_ticks() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

batches() {
	sql "SELECT count(*) FROM herald.audit_links"
}

checkpoint() {
	sql "CHECKPOINT"
}

# calc EXPR: floating-point arithmetic (awk is always there, bc may not be).
calc() {
	awk "BEGIN { printf \"%.6f\", ($1) }"
}

# field NAME LINE: the value of NAME=value in a herald-bench result line.
field() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

TOTAL_ACKS=0
RUN_FAILED=0
ROWS=()

# run_bench LABEL ARGS...: one herald-bench run with CPU and batch accounting.
run_bench() {
	local label=$1
	shift
	checkpoint
	local h0 p0 m0 b0 t0 h1 p1 m1 b1 t1 line rc=0
	b0=$(batches)
	h0=$(proc_ticks "$HERALDD_PID")
	p0=$(pg_ticks)
	m0=$(machine_ticks)
	t0=$(date +%s.%N)
	line=$("$BENCH" intake --endpoint "$ENDPOINT" --size "$SIZE" --driver "$DRIVER" "$@" \
		2>"$TMP/bench.err") || rc=$?
	t1=$(date +%s.%N)
	m1=$(machine_ticks)
	h1=$(proc_ticks "$HERALDD_PID")
	p1=$(pg_ticks)
	b1=$(batches)
	echo "$line"
	if [ -s "$TMP/bench.err" ]; then
		sed 's/^/# /' "$TMP/bench.err"
	fi
	if [ -z "$line" ]; then
		RUN_FAILED=1
		die "herald-bench failed (exit $rc)"
	fi
	[ "$rc" -eq 0 ] || RUN_FAILED=1
	local acks wall heraldd_pct pg_pct bench_pct other_pct batch
	acks=$(field acks "$line")
	TOTAL_ACKS=$((TOTAL_ACKS + acks))
	wall=$(calc "$t1 - $t0")
	heraldd_pct=$(calc "100 * ($h1 - $h0) / $CLK_TCK / $wall")
	pg_pct=$(calc "100 * ($p1 - $p0) / $CLK_TCK / $wall")
	# herald-bench reports its CPU over its own run; scale it to this wall time.
	bench_pct=$(calc "$(field client_cpu_pct "$line") * $(field elapsed_s "$line") / $wall")
	other_pct=$(calc "100 * ($m1 - $m0) / $CLK_TCK / $wall - $heraldd_pct - $pg_pct - $bench_pct")
	other_pct=$(calc "$other_pct < 0 ? 0 : $other_pct")
	if [ "$b1" -gt "$b0" ]; then
		batch=$(calc "$acks / ($b1 - $b0)")
	else
		batch=0
	fi
	ROWS+=("$(printf '%-10s %5s %6s %7s %9s %8s %8s %8s %6s %6s %8s %8s %6s %6s %6s' \
		"$label" "$(field concurrency "$line")" "$(field window "$line")" \
		"$(field messages "$line")" "$(field acks_per_s "$line")" \
		"$(field p50_ms "$line")" "$(field p99_ms "$line")" "$(field max_ms "$line")" \
		"$(printf '%.0f' "$batch")" "$(field errors "$line")" \
		"$(printf '%.0f%%' "$heraldd_pct")" "$(printf '%.0f%%' "$pg_pct")" \
		"$(field client_cpu_pct "$line")%" "$(printf '%.0f%%' "$other_pct")" \
		"$(printf '%.1f' "$wall")")")
	LAST_LINE=$line
}

window_for() {
	local w=$(((INFLIGHT + $1 - 1) / $1))
	[ "$w" -ge 8 ] || w=8
	echo "$w"
}

mode_intake() {
# ---- 1. closed loop ------------------------------------------------------

log "warm-up"
run_bench warmup --concurrency 16 --window "$(window_for 16)" --messages 5000 >/dev/null

PEAK=0
PEAK_C=1
for c in $CONCURRENCIES; do
	log "closed loop: concurrency $c, window $(window_for "$c"), $MESSAGES messages"
	run_bench closed --concurrency "$c" --window "$(window_for "$c")" --messages "$MESSAGES"
	rate=$(field acks_per_s "$LAST_LINE")
	if [ "$rate" -gt "$PEAK" ]; then
		PEAK=$rate
		PEAK_C=$c
	fi
done
[ "$PEAK" -gt 0 ] || die "no closed-loop run acknowledged anything"

# Client check: the same load through the other client. When raw is clearly
# faster than lib, the client's own CPU is limiting the figures.
CHECK_DRIVER=raw
[ "$DRIVER" = lib ] || CHECK_DRIVER=lib
log "client check: driver $CHECK_DRIVER, concurrency $PEAK_C, $MESSAGES messages"
run_bench "$CHECK_DRIVER-check" --concurrency "$PEAK_C" --window "$(window_for "$PEAK_C")" \
	--messages "$MESSAGES" --driver "$CHECK_DRIVER"
CHECK_RATE=$(field acks_per_s "$LAST_LINE")

# ---- 2. open loop at half the peak ---------------------------------------

HALF=$((PEAK / 2))
RATE_MESSAGES=$((HALF * RATE_SECONDS))
[ "$RATE_MESSAGES" -ge 1000 ] || RATE_MESSAGES=1000
RATE_WINDOW=$(((4096 + RATE_CONCURRENCY - 1) / RATE_CONCURRENCY))
[ "$RATE_WINDOW" -ge 64 ] || RATE_WINDOW=64
log "open loop: $HALF msgs/s (half of $PEAK), concurrency $RATE_CONCURRENCY, $RATE_MESSAGES messages"
run_bench half-peak --concurrency "$RATE_CONCURRENCY" --window "$RATE_WINDOW" --rate "$HALF" \
	--messages "$RATE_MESSAGES"
HALF_P99=$(field p99_ms "$LAST_LINE")
HALF_ACHIEVED=$(field acks_per_s "$LAST_LINE")

# ---- 3. anchor -------------------------------------------------------------

sql "CREATE TABLE bench_anchor (id bigserial PRIMARY KEY,
	created_at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL)"
# 15 md5 hex strings: a 480-character payload, a ~520-byte row (as wide as
# a benchmark message row) that TOAST leaves uncompressed.
cat >"$TMP/anchor.sql" <<'EOF'
INSERT INTO bench_anchor (payload) VALUES (repeat(md5(random()::text), 15));
EOF

ANCHOR=0
ANCHOR_LINES=()
# run_anchor N: one pgbench run; the best of the runs is the anchor (the
# stronger the anchor, the more conservative the ratio).
run_anchor() {
	checkpoint
	local p0 p1 m0 m1 tps lat pg_pct machine_pct
	p0=$(pg_ticks)
	m0=$(machine_ticks)
	PGOPTIONS='-c synchronous_commit=on' pgbench -n -M prepared -c 8 -j 2 -T "$ANCHOR_SECONDS" \
		-f "$TMP/anchor.sql" -h 127.0.0.1 -p "$PGPORT" -U postgres postgres \
		>"$TMP/pgbench.out" 2>&1 || { cat "$TMP/pgbench.out" >&2; die "pgbench failed"; }
	m1=$(machine_ticks)
	# Let the pgbench backends exit and be reaped (their CPU then moves into
	# the postmaster's children total) before the second reading.
	for _ in $(seq 1 50); do
		[ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench'")" -eq 0 ] && break
		sleep 0.1
	done
	p1=$(pg_ticks)
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$TMP/pgbench.out" | head -n 1)
	[ -n "$tps" ] || { cat "$TMP/pgbench.out" >&2; die "no tps in pgbench output"; }
	tps=$(printf '%.0f' "$tps")
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$TMP/pgbench.out")
	pg_pct=$(printf '%.0f' "$(calc "100 * ($p1 - $p0) / $CLK_TCK / $ANCHOR_SECONDS")")
	machine_pct=$(printf '%.0f' "$(calc "100 * ($m1 - $m0) / $CLK_TCK / $ANCHOR_SECONDS")")
	ANCHOR_LINES+=("anchor run $1: $tps tps, latency avg $lat ms; CPU: postgres $pg_pct%, whole machine $machine_pct% (of $(nproc)00%)")
	log "${ANCHOR_LINES[-1]}"
	[ "$tps" -le "$ANCHOR" ] || ANCHOR=$tps
}

log "anchor: pgbench -M prepared -c 8 -j 2 -T $ANCHOR_SECONDS, $ANCHOR_RUNS runs (single-row INSERT, synchronous_commit=on)"
for i in $(seq 1 "$ANCHOR_RUNS"); do
	run_anchor "$i"
done
ANCHOR_ROW=$(sql "SELECT round(avg(pg_column_size(a.*))) FROM (SELECT * FROM bench_anchor LIMIT 1000) a")

# ---- 4. correctness --------------------------------------------------------

MSG_ROWS=$(sql "SELECT count(*) FROM herald.messages")
DELIVERY_ROWS=$(sql "SELECT count(*) FROM herald.deliveries")
MSG_ROW_BYTES=$(sql "SELECT round(avg(pg_column_size(m.*))) FROM (SELECT * FROM herald.messages LIMIT 1000) m")

# ---- report ----------------------------------------------------------------

echo
printf '%-10s %5s %6s %7s %9s %8s %8s %8s %6s %6s %8s %8s %6s %6s %6s\n' \
	run conc window msgs acks/s p50_ms p99_ms max_ms batch errors heraldd postgres bench other wall_s
for row in "${ROWS[@]}"; do
	echo "$row"
done
echo "(CPU columns: % of one core over the run, of $(nproc) cores; other = everything else on the"
echo " machine, kernel threads and unrelated processes included: when it is high, the figures are"
echo " noisy; batch = messages per intake_batch call, i.e. per COMMIT)"
echo
echo "peak:        $PEAK acks/s at concurrency $PEAK_C (closed loop, $INFLIGHT requests outstanding, driver $DRIVER)"
echo "client:      $CHECK_RATE acks/s with driver $CHECK_DRIVER at the same concurrency (not used below)"
echo "half peak:   $HALF msgs/s offered, $HALF_ACHIEVED acks/s achieved, p99 $HALF_P99 ms (open loop)"
for l in "${ANCHOR_LINES[@]}"; do
	echo "$l"
done
echo "anchor:      $ANCHOR tps (best of $ANCHOR_RUNS), pgbench -M prepared -c 8 -j 2 -T $ANCHOR_SECONDS," \
	"1 INSERT/txn of a ${ANCHOR_ROW}-byte row"
echo "rows:        herald.messages=$MSG_ROWS (avg ${MSG_ROW_BYTES} bytes) deliveries=$DELIVERY_ROWS" \
	"acks_counted=$TOTAL_ACKS"
RATIO=$(printf '%.2f' "$(calc "$PEAK / $ANCHOR")")
verdict() { # CONDITION
	awk "BEGIN { print (($1) ? \"met\" : \"NOT met\") }"
}
echo "target:      ratio >= 3          -> $RATIO ($(verdict "$RATIO >= 3"))"
echo "target:      p99 <= 20 ms @ half -> $HALF_P99 ms ($(verdict "$HALF_P99 <= 20"))"

status=0
if [ "$MSG_ROWS" -ne "$TOTAL_ACKS" ]; then
	echo "correctness: FAILED: $MSG_ROWS rows in herald.messages but $TOTAL_ACKS ACKs"
	status=1
else
	echo "correctness: ok: rows in herald.messages == ACKs counted ($TOTAL_ACKS)"
fi
if [ "$RUN_FAILED" -ne 0 ]; then
	echo "errors:      some herald-bench run reported errors (see above)"
	status=1
fi
[ "$status" -ne 0 ] || ok=1
echo "RESULT intake herald=$PEAK anchor=$ANCHOR ratio=$RATIO p99_ms=$HALF_P99"
exit "$status"
}

# policy_probe LIST: one message carrying the last term of LIST (a list
# file of the reject rule prohibited-content) must be refused with code
# policy by the running heraldd: proof that it checks the lists, not only
# loads them. The refused message stores nothing.
policy_probe() {
	local term out rc=0
	term=$(tail -n 1 "$1")
	printf 'Policy probe\tThis text carries %s on purpose.\n' "$term" >"$TMP/probe.tsv"
	out=$("$BENCH" intake --endpoint "$ENDPOINT" --messages 1 --text-file "$TMP/probe.tsv" 2>&1) || rc=$?
	if [ "$rc" -ne 1 ] || ! grep -q 'first problem: code=policy ' <<<"$out"; then
		printf '# %s\n' "${out//$'\n'/$'\n'# }"
		die "probe: a message with the prohibited term \"$term\" was not refused (exit $rc)"
	fi
	log "probe: refused as it must be: $(sed -n 's/^herald-bench: first problem: //p' <<<"$out")"
}

mode_policy() {
# ---- 1. evaluations on one core ----------------------------------------------

local pdir=$TMP/policy
log "evaluation: herald-policy-bench, lists prohibited,sensitive,civility of $POLICY_TERMS terms," \
	"$POLICY_SECONDS s on one CPU"
local eval_line rc=0
eval_line=$("$POLICY_BENCH" --write-config "$pdir" --terms "$POLICY_TERMS" --seconds "$POLICY_SECONDS" \
	--write-texts "$pdir/texts.tsv" 2>"$TMP/policy-bench.err") || rc=$?
if [ -s "$TMP/policy-bench.err" ]; then
	sed 's/^/# /' "$TMP/policy-bench.err"
fi
if [ "$rc" -ne 0 ] || [ -z "$eval_line" ]; then
	die "herald-policy-bench failed (exit $rc): the policy evaluated a message wrongly or did not load"
fi
echo "$eval_line"
local evals terms
evals=$(field evals_per_s "$eval_line")
terms=$(field terms "$eval_line")

# ---- 2. intake with and without the policy -----------------------------------

write_heraldd_conf "$pdir/heraldd-on.conf" "$(cat "$pdir/policy.conf")"
write_heraldd_conf "$pdir/heraldd-off.conf" 'policy = { enabled = false; };'
local window order=() r
window=$(window_for "$POLICY_CONCURRENCY")
for r in $(seq 1 "$POLICY_ROUNDS"); do
	if [ $((r % 2)) -eq 1 ]; then
		order+=(on off)
	else
		order+=(off on)
	fi
done
log "intake: ${order[*]}; each after a heraldd restart and $POLICY_WARMUP unreported messages:" \
	"closed loop, concurrency $POLICY_CONCURRENCY, window $window, $POLICY_MESSAGES messages," \
	"texts $(field text_avg_bytes "$eval_line") bytes on average"
local v n=0 t0 t1 h0 h1 us started want rate on_sum=0 off_sum=0 on_us=0 off_us=0 on_n=0 off_n=0
local run_lines=() probed=0
for v in "${order[@]}"; do
	n=$((n + 1))
	stop_heraldd
	t0=$(date +%s.%N)
	start_heraldd "$pdir/heraldd-$v.conf"
	t1=$(date +%s.%N)
	started=$(grep -o 'policy=[a-z]* policy_rules=[0-9]* policy_terms=[0-9]*' "$TMP/heraldd.log" | tail -n 1)
	# The run must measure what it says: the whole policy, or none.
	want="policy=off"
	[ "$v" = off ] || want="policy=on policy_rules=[0-9]* policy_terms=$terms"
	[[ "$started" =~ ^$want ]] || die "run $n ($v): heraldd started with '$started', expected '$want'"
	log "run $n: policy $v: heraldd pid $HERALDD_PID ($started), answering after" \
		"$(printf '%.2f' "$(calc "$t1 - $t0")") s"
	if [ "$v" = on ] && [ "$probed" = 0 ]; then
		policy_probe "$pdir/prohibited.txt"
		probed=1
	fi
	run_bench "warm-$v" --concurrency "$POLICY_CONCURRENCY" --window "$window" \
		--messages "$POLICY_WARMUP" --text-file "$pdir/texts.tsv" >/dev/null
	h0=$(proc_ticks "$HERALDD_PID")
	run_bench "$v" --concurrency "$POLICY_CONCURRENCY" --window "$window" --messages "$POLICY_MESSAGES" \
		--text-file "$pdir/texts.tsv"
	h1=$(proc_ticks "$HERALDD_PID")
	rate=$(field acks_per_s "$LAST_LINE")
	# heraldd's CPU per message does not depend on what else runs on the
	# machine, unlike acks/s: the cross-check of the policy's cost.
	us=$(calc "1000000 * ($h1 - $h0) / $CLK_TCK / $(field acks "$LAST_LINE")")
	run_lines+=("run $n policy $v: $rate acks/s, heraldd $(printf '%.1f' "$us") us CPU per message")
	if [ "$v" = on ]; then
		on_sum=$((on_sum + rate))
		on_us=$(calc "$on_us + $us")
		on_n=$((on_n + 1))
	else
		off_sum=$((off_sum + rate))
		off_us=$(calc "$off_us + $us")
		off_n=$((off_n + 1))
	fi
done

# ---- 3. correctness ------------------------------------------------------------

local msg_rows found_rows=0 has_findings row_bytes
msg_rows=$(sql "SELECT count(*) FROM herald.messages")
row_bytes=$(sql "SELECT round(avg(pg_column_size(m.*))) FROM (SELECT * FROM herald.messages
	ORDER BY id DESC LIMIT 1000) m")
has_findings=$(sql "SELECT count(*) FROM information_schema.columns
	WHERE table_schema = 'herald' AND table_name = 'messages' AND column_name = 'findings'")
if [ "$has_findings" -eq 1 ]; then
	found_rows=$(sql "SELECT count(*) FROM herald.messages WHERE findings <> '[]'::jsonb")
fi

# ---- report --------------------------------------------------------------------

echo
printf '%-10s %5s %6s %7s %9s %8s %8s %8s %6s %6s %8s %8s %6s %6s %6s\n' \
	run conc window msgs acks/s p50_ms p99_ms max_ms batch errors heraldd postgres bench other wall_s
local row
for row in "${ROWS[@]}"; do
	echo "$row"
done
echo "(on = heraldd with the policy of $terms terms, off = policy = { enabled = false; };"
echo " CPU columns: % of one core over the run, of $(nproc) cores; batch = messages per COMMIT)"
echo
local on_mean off_mean ratio
on_mean=$(calc "$on_sum / $on_n")
off_mean=$(calc "$off_sum / $off_n")
ratio=$(printf '%.2f' "$(calc "$on_mean / $off_mean")")
echo "evaluation:  $evals evaluations/s per core ($(field ns_per_eval "$eval_line") ns each," \
	"$(field mb_per_s "$eval_line") MB/s, $(field avg_bytes "$eval_line")-byte messages," \
	"$(field findings_pct "$eval_line")% with findings), pinned to CPU $(field cpu "$eval_line")"
echo "             $terms terms compiled in $(field load_ms "$eval_line") ms (read, fold, Hyperscan)," \
	"$(field rules "$eval_line") rules; $(field wall_evals_per_s "$eval_line") evaluations/s of wall time"
for row in "${run_lines[@]}"; do
	echo "$row"
done
echo "intake:      with policy $(printf '%.0f' "$on_mean") acks/s, without $(printf '%.0f' "$off_mean")" \
	"acks/s (means of $on_n runs each): ratio $ratio"
on_us=$(calc "$on_us / $on_n")
off_us=$(calc "$off_us / $off_n")
echo "heraldd CPU: $(printf '%.1f' "$on_us") us per message with policy, $(printf '%.1f' "$off_us") without:" \
	"the policy adds $(printf '%.1f' "$(calc "$on_us - $off_us")") us" \
	"(herald-policy-bench: $(printf '%.1f' "$(calc "$(field ns_per_eval "$eval_line") / 1000")") us per evaluation)"
echo "rows:        herald.messages=$msg_rows (avg $row_bytes bytes) acks_counted=$TOTAL_ACKS" \
	"with_findings=$found_rows"
verdict() { # CONDITION
	awk "BEGIN { print (($1) ? \"met\" : \"NOT met\") }"
}
echo "target:      evals/s >= 100000 per core -> $evals ($(verdict "$evals >= 100000"))"
echo "target:      intake_ratio >= 0.9        -> $ratio ($(verdict "$ratio >= 0.9"))"

local status=0
if [ "$msg_rows" -ne "$TOTAL_ACKS" ]; then
	echo "correctness: FAILED: $msg_rows rows in herald.messages but $TOTAL_ACKS ACKs"
	status=1
elif [ "$found_rows" -ne 0 ]; then
	echo "correctness: FAILED: $found_rows stored messages have policy findings (the texts must be clean)"
	status=1
else
	echo "correctness: ok: rows in herald.messages == ACKs counted ($TOTAL_ACKS), none with findings"
fi
if [ "$RUN_FAILED" -ne 0 ]; then
	echo "errors:      some herald-bench run reported errors (see above)"
	status=1
fi
[ "$status" -ne 0 ] || ok=1
echo "RESULT policy evals_per_s=$evals intake_ratio=$ratio"
exit "$status"
}

. "$REPO/bench/e2e.sh"
. "$REPO/bench/approval.sh"

case "$MODE" in
intake) mode_intake ;;
email) mode_email ;;
im) mode_im ;;
approval) mode_approval ;;
policy) mode_policy ;;
esac
