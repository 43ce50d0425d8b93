# shellcheck shell=bash
# NAME
#	approval.sh - the approval mode of bench/run.sh
# DESCRIPTION
#	Sourced by bench/run.sh after it has started PostgreSQL and heraldd
#	(dispatch endpoint DISPATCH_EP, poll_ms 200 unless DISPATCH_CONF says
#	otherwise); not runnable on its own. Imports an organisation (Sales,
#	head sales-head@example.com with login role sales_head, sender
#	bench@example.com), starts smtp-sink (-c counting, -d one dump file
#	per message, on tmpfs in /dev/shm when there is one, removed on exit)
#	and one herald-worker with the email driver to the sink plus a fake
#	IM driver that takes the head's notifications, then:
#	  hold     herald-bench submits APPROVALS important emails; each is
#	           held with one pending level-1 request and one notification
#	           to the head (counted in the fake driver's record file);
#	  approve  APPROVERS psql sessions as sales_head call
#	           herald.approve(id, comment), one per transaction, ids dealt
#	           round-robin; after each COMMIT the session reads the
#	           database clock (a second statement, so a time after the
#	           commit); the run ends when the sink counted every message.
#	           Each session ends by printing its backend's CPU ticks, so
#	           PostgreSQL's CPU splits into the approvers' backends and
#	           the rest (heraldd's dispatch connections, background).
#	Release latency of a message = mtime of its dump file at the sink
#	(matched by the Message-ID <d<delivery>.m<message>@...>) minus the
#	post-commit time of its approval. Every process it starts is
#	registered in run.sh's WORKER_PIDS / SINK_PIDS so the EXIT trap stops
#	it.
# LIMITS
#	File mtimes come from the kernel's coarse clock (one tick, 1-4 ms,
#	behind): a latency can read up to one tick short, never long.
# shellcheck disable=SC2034 # ok, WORKERS, E2E_SIZE, SINK_TICK_PIDS...: read by run.sh and e2e.sh

APPROVER_ROLE=sales_head
HEAD=sales-head@example.com

# approval_org: the organisation of this benchmark (a full import: it
# replaces anything imported before).
approval_org() {
	sql "CREATE ROLE $APPROVER_ROLE LOGIN IN ROLE herald_approver"
	sql "SELECT * FROM herald.org_import('{
		\"departments\": [{\"name\": \"Sales\", \"head\": \"$HEAD\"}],
		\"staff\": [
			{\"address\": \"bench@example.com\", \"name\": \"Herald Bench\",
			 \"department\": \"Sales\", \"roles\": [\"employee\"]},
			{\"address\": \"$HEAD\", \"name\": \"Head of Sales\", \"department\": \"Sales\",
			 \"roles\": [\"employee\", \"dept_head\"], \"db_role\": \"$APPROVER_ROLE\",
			 \"notify_channel\": \"im\", \"notify_address\": \"approvers\"}]}'::jsonb)" >/dev/null
	log "organisation: Sales (head $HEAD, login role $APPROVER_ROLE, notified on im" \
		"group 'approvers' = the fake driver), sender bench@example.com in Sales"
}

# approval_exit: the EXIT trap while the dump directory lives outside TMP:
# stops the sink, removes the directory (kept with KEEP_TMP=1), then runs
# run.sh's cleanup with the exit status it would have had.
# shellcheck disable=SC2317 # called through the EXIT trap
approval_exit() {
	local rc=$? pid
	for pid in "${SINK_PIDS[@]}"; do
		stop_pid "$pid"
	done
	if [ -n "${KEEP_TMP:-}" ]; then
		echo "$PROG: kept $SINK_DUMP" >&2
	else
		rm -rf -- "$SINK_DUMP"
	fi
	# cleanup reads the status from $?; errexit would end the shell here.
	set +e
	(exit "$rc")
	cleanup
}

# wal_stats: "<wal_records> <wal_bytes> <wal_sync>" of the cluster so far.
wal_stats() {
	sql "SELECT wal_records, wal_bytes, wal_sync FROM pg_stat_wal" | tr '|' ' '
}

# approval_analyse: the figures of the approve phase as key=value words.
approval_analyse() {
	"$PY" - "$TMP" "$APPROVERS" "$APPROVALS" "$SINK_DUMP" <<'EOF'
import os, re, sys
tmp, sessions, n, dump = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
approved, released = {}, 0
for k in range(sessions):
    with open("%s/approve-%d.out" % (tmp, k)) as f:
        for line in f:
            line = line.strip()
            if "|" in line:
                mid, t = line.split("|")
                approved[int(mid)] = float(t)
            elif line == "t":
                released += 1
decided = {}
with open(tmp + "/decided.txt") as f:
    for line in f:
        mid, t = line.strip().split("|")
        decided[int(mid)] = float(t)
t0 = float(open(tmp + "/approve.t0").read())
t1 = float(open(tmp + "/approve.t1").read())
pat = re.compile(rb"^Message-ID: <d(\d+)\.m(\d+)@", re.M | re.I)
lat, commit_lag, stray, seen = [], [], 0, set()
for name in os.listdir(dump):
    path = os.path.join(dump, name)
    with open(path, "rb") as f:
        m = pat.search(f.read(8192))
    mtime = os.stat(path).st_mtime_ns / 1e9
    mid = int(m.group(2)) if m else -1
    if mid not in approved or mid in seen:
        stray += 1
        continue
    seen.add(mid)
    lat.append((mtime - approved[mid]) * 1000.0)
for mid, t in approved.items():
    if mid in decided:
        commit_lag.append((t - decided[mid]) * 1000.0)
def pct(v, p):
    if not v:
        return 0.0
    v = sorted(v)
    rank = min(len(v), max(1, int(p / 100.0 * len(v) + 0.999999)))
    return v[rank - 1]
span_db = max(approved.values()) - min(decided.values()) if approved and decided else 0
print("approvals=%d released=%d approvals_per_s=%.0f approve_wall_s=%.3f db_approvals_per_s=%.0f "
      "matched=%d stray=%d release_p50_ms=%.1f release_p90_ms=%.1f release_p99_ms=%.1f "
      "release_max_ms=%.1f release_min_ms=%.1f commit_lag_p50_ms=%.2f commit_lag_p99_ms=%.2f"
      % (len(approved), released, len(approved) / (t1 - t0), t1 - t0,
         len(approved) / span_db if span_db > 0 else 0, len(lat), stray,
         pct(lat, 50), pct(lat, 90), pct(lat, 99), max(lat) if lat else 0,
         min(lat) if lat else 0, pct(commit_lag, 50), pct(commit_lag, 99)))
EOF
}

mode_approval() {
	E2E_SIZE=1024
	POSTFIX_MASTER=
	SINK_TICK_PIDS=()
	local n=$APPROVALS sink_port sink_out=$TMP/smtp-sink.out
	approval_org

	sink_port=$(free_port)
	# The dump files go to tmpfs: the sink stands for a remote server, and
	# 10,000 file creations on the disk that holds PostgreSQL's WAL cost
	# ext4 journal commits next to every WAL fsync and the sink 13-22% of a
	# core instead of 6% (measured with 005, 2 cores).
	SINK_DUMP=
	if [ -d /dev/shm ] && [ -w /dev/shm ]; then
		SINK_DUMP=$(mktemp -d /dev/shm/herald-sink.XXXXXX)
		trap approval_exit EXIT
	else
		SINK_DUMP=$TMP/sink-dump
		mkdir -p "$SINK_DUMP"
	fi
	local sink_user=()
	if [ "$(id -u)" -eq 0 ]; then
		# smtp-sink drops privileges to nobody: it must write the dump files.
		sink_user=(-u nobody)
		chown nobody "$SINK_DUMP"
	fi
	: >"$sink_out"
	smtp-sink "${sink_user[@]}" -c -d "$SINK_DUMP/m." -h sink.localdomain "127.0.0.1:$sink_port" 256 \
		>"$sink_out" 2>"$TMP/smtp-sink.err" &
	SINK_PIDS+=($!)
	SINK_TICK_PIDS=("$!")
	for _ in $(seq 1 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$sink_port") 2>/dev/null && break
		sleep 0.1
	done
	log "smtp-sink (pid ${SINK_PIDS[0]}) on 127.0.0.1:$sink_port, counting with -c, one file per message in $SINK_DUMP"

	local notes=$TMP/notifications.log
	: >"$notes"
	WORKERS=1
	start_workers "credit = $WORKER_CREDIT;
log_level = \"$LOG_LEVEL\";
email = { relay = \"127.0.0.1:$sink_port\"; starttls = \"off\"; sessions = $EMAIL_SESSIONS;
          max_messages_per_session = 10000; max_jobs = $WORKER_CREDIT; };
fake = { channel = \"im\"; record_file = \"$notes\"; };"

	# ---- hold: N important emails, each held with one notification ----
	log "hold: $n important emails (herald-bench --important), each notifying $HEAD"
	# shellcheck disable=SC2046 # word splitting of the command line is intended
	e2e_run hold "$n" lines "$notes" 0 $(herald_send_args "$n" email --important)
	local hold_line=$E2E_SENDER_OUT
	local pending held
	pending=$(sql "SELECT count(*) FROM herald.approval_requests
		WHERE state = 'pending' AND level = 1 AND kind = 'important'")
	held=$(sql "SELECT count(*) FROM herald.deliveries d JOIN herald.messages m ON m.id = d.message_id
		WHERE m.app = 'herald-bench' AND d.state = 'held'")
	log "held: $pending pending level-1 requests, $held held deliveries"
	if [ "$pending" -ne "$n" ] || [ "$held" -ne "$n" ]; then
		die "expected $n pending requests and held deliveries, got $pending and $held"
	fi

	# ---- approve: APPROVERS sessions, one approve per transaction ----
	local k
	sql "SELECT format('SELECT released FROM herald.approve(%s, %L); SELECT %s, extract(epoch FROM clock_timestamp());',
			m.id, 'approved by the benchmark', m.id)
		FROM herald.messages m WHERE m.app = 'herald-bench' ORDER BY m.id" >"$TMP/approve-all.sql"
	for k in $(seq 0 $((APPROVERS - 1))); do
		awk -v k="$k" -v s="$APPROVERS" '(NR - 1) % s == k' "$TMP/approve-all.sql" >"$TMP/approve-$k.sql"
		# Last, the CPU its backend used ("cpu_ticks N"): approvers against the rest.
		cat >>"$TMP/approve-$k.sql" <<'EOF'
SELECT pg_backend_pid() AS bench_pid \gset
\setenv BENCH_PID :bench_pid
\! awk '{ sub(/^.*\) /, ""); print "cpu_ticks", $12 + $13 }' "/proc/$BENCH_PID/stat"
EOF
	done
	cat >"$TMP/approve.sh" <<'EOF'
# approve.sh URL SESSIONS DIR: one psql per DIR/approve-K.sql, in parallel.
date +%s.%N >"$3/approve.t0"
pids=()
for k in $(seq 0 $(($2 - 1))); do
	psql "$1" -X -A -t -q -v ON_ERROR_STOP=1 -f "$3/approve-$k.sql" >"$3/approve-$k.out" 2>"$3/approve-$k.err" &
	pids+=($!)
done
rc=0
for p in "${pids[@]}"; do
	wait "$p" || rc=1
done
date +%s.%N >"$3/approve.t1"
[ "$rc" -eq 0 ] || cat "$3"/approve-*.err >&2
exit "$rc"
EOF
	local approver_url="postgresql://$APPROVER_ROLE@127.0.0.1:$PGPORT/postgres"
	if [ -n "${APPROVAL_PROFILE:-}" ]; then
		sql "ALTER SYSTEM SET track_functions = 'all'" && sql "SELECT pg_reload_conf()" >/dev/null
		sql "SELECT pg_stat_reset()" >/dev/null
	fi
	local wal0 wal1 pg0 pg1
	wal0=$(wal_stats)
	pg0=$(pg_ticks)
	log "approve: $APPROVERS psql sessions as $APPROVER_ROLE, herald.approve() one per transaction"
	e2e_run approve+release "$n" smtp "$sink_out" "$(smtp_count "$sink_out")" \
		bash "$TMP/approve.sh" "$approver_url" "$APPROVERS" "$TMP"
	pg1=$(pg_ticks)
	wal1=$(wal_stats)
	sql "SELECT message_id, extract(epoch FROM decided_at) FROM herald.approval_requests
		WHERE state = 'approved'" >"$TMP/decided.txt"

	local line
	line=$(approval_analyse)
	local aps p50 p99
	aps=$(field approvals_per_s "$line")
	p50=$(field release_p50_ms "$line")
	p99=$(field release_p99_ms "$line")
	local r0 b0 s0 r1 b1 s1
	read -r r0 b0 s0 <<<"$wal0"
	read -r r1 b1 s1 <<<"$wal1"

	e2e_table
	echo "(hold: herald-bench submits, msgs/s = the head's notifications counted by the fake IM driver;"
	echo " approve+release: sender = the $APPROVERS psql sessions, msgs/s = released messages counted at"
	echo " smtp-sink; postfix is not used in this mode)"
	echo
	printf '%-10s %9s %9s %8s %8s %8s %8s %8s\n' approvals approvals/s wall_s p50_ms p90_ms p99_ms max_ms matched
	printf '%-10s %9s %9s %8s %8s %8s %8s %8s\n' "$(field approvals "$line")" "$aps" \
		"$(field approve_wall_s "$line")" "$p50" "$(field release_p90_ms "$line")" "$p99" \
		"$(field release_max_ms "$line")" "$(field matched "$line")"
	echo "(approvals/s = approvals / wall time of the $APPROVERS sessions, connection set-up included;"
	echo " *_ms = release latency: the message's file at smtp-sink (mtime) - the database clock read"
	echo " right after its approval committed)"
	echo
	echo "herald-bench: $hold_line"
	echo "approvals:   $line"
	local approver_ticks
	approver_ticks=$(cat "$TMP"/approve-*.out | awk '$1 == "cpu_ticks" { t += $2 } END { print t + 0 }')
	echo "postgres:    $(calc "1000 * $approver_ticks / $CLK_TCK / $n" | xargs printf '%.2f') ms CPU per" \
		"approval in the $APPROVERS approvers' backends (approve, commit, clock read)," \
		"$(calc "1000 * ($pg1 - $pg0 - $approver_ticks) / $CLK_TCK / $n" | xargs printf '%.2f') ms in the" \
		"rest of PostgreSQL (heraldd's claims, contents and outcomes; background processes)"
	echo "wal:         $(calc "($r1 - $r0) / $n" | xargs printf '%.1f') records," \
		"$(calc "($b1 - $b0) / $n" | xargs printf '%.0f') bytes and" \
		"$(calc "($s1 - $s0) / $n" | xargs printf '%.2f') WAL fsyncs per approval (pg_stat_wal, whole phase)"
	if [ -n "${APPROVAL_PROFILE:-}" ]; then
		# Busy backends flush their statistics at most once a second, when idle.
		sleep 2
		echo "profile:     PostgreSQL functions during approve+release (track_functions = all;"
		echo "             wall time inside each call, CPU contention and lock waits included):"
		sql "SELECT format('  %-20s %7s calls %9s ms total %7s ms/call %7s ms/call self',
			funcname, calls, round(total_time::numeric), round((total_time / calls)::numeric, 3),
			round((self_time / calls)::numeric, 3))
			FROM pg_stat_user_functions WHERE calls > 0 ORDER BY total_time DESC LIMIT 12"
	fi
	echo "dispatch:    $(grep -E '^[[:space:]]*poll_ms = ' <<<"$("$HERALDD" -c "$TMP/heraldd.conf" --print-config 2>/dev/null)" |
		tr -d ' ;' | head -n 1) (the release is driven by NOTIFY herald_released)"

	# ---- correctness ----
	local bench_sent=0 notes_sent=0
	for _ in $(seq 1 600); do
		bench_sent=$(sql "SELECT count(*) FROM herald.deliveries d JOIN herald.messages m ON m.id = d.message_id
			WHERE m.app = 'herald-bench' AND d.state = 'sent'")
		[ "$bench_sent" -lt "$n" ] || break
		sleep 0.1
	done
	notes_sent=$(sql "SELECT count(*) FROM herald.deliveries d JOIN herald.messages m ON m.id = d.message_id
		WHERE m.app = 'herald' AND d.state = 'sent'")
	local states
	states=$(sql "SELECT string_agg(app || ':' || state || '=' || n, ' ' ORDER BY app, state)
		FROM (SELECT m.app, d.state, count(*) AS n FROM herald.deliveries d
		      JOIN herald.messages m ON m.id = d.message_id GROUP BY 1, 2) s")
	local status=0
	if [ "$bench_sent" -eq "$n" ] && [ "$(field matched "$line")" -eq "$n" ] &&
		[ "$(field released "$line")" -eq "$n" ] && [ "$(field stray "$line")" -eq 0 ]; then
		echo "correctness: ok: $n approvals released $n messages, all $n deliveries 'sent', each" \
			"received once at the sink; $notes_sent notifications sent ($states)"
	else
		echo "correctness: FAILED: $bench_sent of $n deliveries 'sent' ($states); $line"
		status=1
	fi
	verdict() { awk "BEGIN { print (($1) ? \"met\" : \"NOT met\") }"; }
	echo "target:      release p99 <= 1000 ms -> $p99 ms ($(verdict "$p99 <= 1000"))"
	echo "target:      approvals/s >= 1000    -> $aps ($(verdict "$aps >= 1000"))"
	[ "$status" -ne 0 ] || ok=1
	echo "RESULT approval approvals_per_s=$aps release_p99_ms=$p99"
	exit "$status"
}
