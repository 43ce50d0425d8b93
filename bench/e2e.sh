# shellcheck shell=bash
# NAME
#	e2e.sh - the end-to-end modes of bench/run.sh (email, im)
# DESCRIPTION
#	Sourced by bench/run.sh after it has started PostgreSQL and heraldd
#	(with the dispatch endpoint DISPATCH_EP); not runnable on its own.
#	Starts the sink (smtp-sink or nginx), herald-worker processes and,
#	for email, a private Postfix; measures Herald and the anchor against
#	the same sink and prints the table and the RESULT line. Every
#	process it starts is registered in run.sh's WORKER_PIDS / SINK_PIDS /
#	POSTFIX_CONF, so run.sh's EXIT trap stops it.
# shellcheck disable=SC2034 # ok, POSTFIX_CONF: read by run.sh's EXIT trap

E2E_ROWS=()

# tree_ticks PID: CPU ticks of a process, its reaped children and its live
# children (PostgreSQL's postmaster, Postfix's master).
tree_ticks() {
	local total children pid
	total=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0)
	children=$(cat "/proc/$1/task/$1/children" 2>/dev/null || true)
	for pid in $children; do
		total=$((total + $(proc_ticks "$pid")))
	done
	echo "$total"
}

# pids_ticks PID...: CPU ticks of a set of processes.
pids_ticks() {
	local total=0 pid
	for pid in "$@"; do
		total=$((total + $(proc_ticks "$pid")))
	done
	echo "$total"
}

# wait_count KIND FILE TARGET TIMEOUT_S: wait until the sink has counted
# TARGET (KIND smtp: the last "mesg=N" of smtp-sink -c; KIND lines: lines
# of an access log), polling every 5 ms; prints "<epoch s> <count>" at
# that moment. Exit 1 (after printing) when TIMEOUT_S passed first.
wait_count() {
	"$PY" - "$@" <<'EOF'
import re, sys, time
kind, path, target, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
deadline = time.time() + timeout
pat = re.compile(rb"mesg=(\d+)")
count, tail = 0, b""
with open(path, "rb") as f:
    while True:
        data = f.read()
        if data:
            if kind == "lines":
                count += data.count(b"\n")
            else:
                found = pat.findall(tail + data)
                if found:
                    count = int(found[-1])
                tail = data[-32:]
        now = time.time()
        if count >= target or now > deadline:
            print("%.6f %d" % (now, count))
            sys.exit(0 if count >= target else 1)
        if not data:
            time.sleep(0.005)
EOF
}

# smtp_count FILE: smtp-sink's message counter now.
smtp_count() {
	local n
	n=$(tail -c 64 "$1" | tr '\r' '\n' | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -n 1)
	echo "${n:-0}"
}

sent_count() {
	sql "SELECT count(*) FROM herald.deliveries WHERE state = 'sent'"
}

# e2e_run LABEL N KIND FILE BASE SENDER...: run SENDER (in the foreground)
# and wait until the sink counted BASE + N; one table row with the rate
# and the CPU of every part. Sets E2E_RATE (msgs/s) and E2E_SENDER_OUT.
# The sender's CPU comes from the shell that runs it (`times`).
e2e_run() {
	local label=$1 n=$2 kind=$3 file=$4 base=$5
	shift 5
	checkpoint
	local waiter_out=$TMP/waiter.out
	wait_count "$kind" "$file" "$((base + n))" "$E2E_TIMEOUT_S" >"$waiter_out" &
	local waiter=$!
	local h0 p0 w0 s0 x0 m0 t0 rc=0
	h0=$(proc_ticks "$HERALDD_PID")
	p0=$(pg_ticks)
	w0=$(pids_ticks "${WORKER_PIDS[@]}")
	s0=$(pids_ticks "${SINK_TICK_PIDS[@]}")
	x0=0
	[ -z "$POSTFIX_MASTER" ] || x0=$(tree_ticks "$POSTFIX_MASTER")
	m0=$(machine_ticks)
	t0=$(date +%s.%N)
	bash -c '"$@"; rc=$?; times >&2; exit $rc' _ "$@" >"$TMP/sender.out" 2>"$TMP/sender.err" || rc=$?
	local wrc=0
	wait "$waiter" || wrc=$?
	local m1 h1 p1 w1 s1 x1=0
	m1=$(machine_ticks)
	h1=$(proc_ticks "$HERALDD_PID")
	p1=$(pg_ticks)
	w1=$(pids_ticks "${WORKER_PIDS[@]}")
	s1=$(pids_ticks "${SINK_TICK_PIDS[@]}")
	[ -z "$POSTFIX_MASTER" ] || x1=$(tree_ticks "$POSTFIX_MASTER")
	E2E_SENDER_OUT=$(cat "$TMP/sender.out")
	local t1 counted
	read -r t1 counted <"$waiter_out"
	if [ "$rc" -ne 0 ] || [ "$wrc" -ne 0 ]; then
		sed 's/^/# /' "$TMP/sender.out" "$TMP/sender.err" >&2
		die "$label: sender exit $rc; the sink counted $((counted - base)) of $n"
	fi
	# The last line `times` printed: the sender's user and system CPU.
	local sender_s
	sender_s=$(tail -n 1 "$TMP/sender.err" |
		awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }')
	local wall
	wall=$(calc "$t1 - $t0")
	E2E_RATE=$(printf '%.0f' "$(calc "$n / $wall")")
	pct() { printf '%.0f%%' "$(calc "100 * ($1) / $CLK_TCK / $wall")"; }
	local sender_ticks other
	sender_ticks=$(calc "$sender_s * $CLK_TCK")
	other=$(calc "($m1 - $m0) - ($h1 - $h0) - ($p1 - $p0) - ($w1 - $w0) - ($s1 - $s0) - ($x1 - $x0) - $sender_ticks")
	other=$(calc "$other < 0 ? 0 : $other")
	E2E_ROWS+=("$(printf '%-14s %7s %8s %8s %8s %8s %8s %8s %8s %8s %7s' \
		"$label" "$n" "$E2E_RATE" "$(pct "$h1 - $h0")" "$(pct "$p1 - $p0")" \
		"$(pct "$w1 - $w0")" "$(pct "$x1 - $x0")" "$(pct "$s1 - $s0")" \
		"$(pct "$sender_ticks")" "$(pct "$other")" "$(printf '%.2f' "$wall")")")
	log "$label: $n messages counted at the sink in $(printf '%.2f' "$wall") s: $E2E_RATE msgs/s"
}

e2e_table() {
	echo
	printf '%-14s %7s %8s %8s %8s %8s %8s %8s %8s %8s %7s\n' \
		run msgs msgs/s heraldd postgres workers postfix sink sender other wall_s
	local row
	for row in "${E2E_ROWS[@]}"; do
		echo "$row"
	done
	echo "(msgs/s = messages counted at the sink / (sink counted the last one - sender started);"
	echo " CPU columns: % of one core over that time, of $(nproc) cores; workers = all herald-worker"
	echo " processes; postfix = Postfix's master and every daemon it ran; other = the rest of the machine)"
}

# start_workers CONFIG_TEXT: WORKERS herald-worker processes with that
# configuration, each waited for until heraldd logs it ready.
start_workers() {
	local i
	printf '%s\n' "$1" >"$TMP/worker.conf"
	"$WORKER" -c "$TMP/worker.conf" --check-config >"$TMP/worker-check.log" 2>&1 ||
		{ cat "$TMP/worker-check.log" >&2; die "worker configuration refused"; }
	for i in $(seq 1 "$WORKERS"); do
		"$WORKER" -c "$TMP/worker.conf" --broker "$DISPATCH_EP" --name "bench-w$i" \
			>"$TMP/worker-$i.log" 2>&1 &
		WORKER_PIDS+=($!)
	done
	local ready=0
	case "$LOG_LEVEL" in
	info | debug) ;;
	*)
		# heraldd logs dispatch.worker_ready at info only: give the workers
		# a second (the warm-up absorbs a late one anyway).
		sleep 1
		ready=$WORKERS
		;;
	esac
	for _ in $(seq 1 100); do
		[ "$ready" -lt "$WORKERS" ] || break
		ready=$(grep -c 'dispatch.worker_ready' "$TMP/heraldd.log" || true)
		[ "$ready" -lt "$WORKERS" ] || break
		for i in "${WORKER_PIDS[@]}"; do
			kill -0 "$i" 2>/dev/null || die "a herald-worker exited during start-up"
		done
		sleep 0.1
	done
	[ "$ready" -ge "$WORKERS" ] || die "only $ready of $WORKERS workers became ready"
	log "$WORKERS herald-worker(s) ready: credit $WORKER_CREDIT each, log_level $LOG_LEVEL"
}

# herald_send N CHANNEL [--to LIST]: the herald-bench command line (closed loop).
herald_send_args() {
	local n=$1 channel=$2
	shift 2
	echo "$BENCH intake --endpoint $ENDPOINT --channel $channel --driver raw" \
		"--concurrency $E2E_CONCURRENCY --window $(window_for "$E2E_CONCURRENCY")" \
		"--messages $n --size $E2E_SIZE --key-prefix $channel-$n-$RANDOM$RANDOM $*"
}

# check_sent EXPECTED: wait (up to 60 s) for the outcomes to be recorded,
# then print the states; sets SENT_OK=1 when 'sent' == EXPECTED and nothing else.
check_sent() {
	local expected=$1 sent=0
	for _ in $(seq 1 600); do
		sent=$(sent_count)
		[ "$sent" -lt "$expected" ] || break
		sleep 0.1
	done
	local states total
	states=$(sql "SELECT string_agg(state || '=' || n, ' ' ORDER BY state)
		FROM (SELECT state, count(*) AS n FROM herald.deliveries GROUP BY state) s")
	total=$(sql "SELECT count(*) FROM herald.deliveries")
	SENT_OK=0
	if [ "$sent" -eq "$expected" ] && [ "$total" -eq "$expected" ]; then
		SENT_OK=1
		echo "correctness: ok: all $expected deliveries are 'sent' ($states)"
	else
		echo "correctness: FAILED: $sent of $expected deliveries 'sent' ($states)"
	fi
}

# ---- email --------------------------------------------------------------------

start_postfix() { # LISTEN_PORT RELAY_PORT
	local d=$TMP/postfix
	mkdir -p "$d/etc" "$d/queue" "$d/data"
	chown postfix "$d/data"
	cp /etc/postfix/main.cf "$d/etc/main.cf"
	postconf -c "$d/etc" -e "queue_directory = $d/queue" "data_directory = $d/data" \
		"mydestination =" "local_transport = error:local delivery disabled" \
		"inet_interfaces = 127.0.0.1" "inet_protocols = ipv4" "mynetworks = 127.0.0.0/8" \
		"smtpd_relay_restrictions = permit_mynetworks, reject" \
		"relayhost = [127.0.0.1]:$2" "smtp_host_lookup = native" \
		"smtp_tls_security_level = none" "smtpd_tls_security_level = none" \
		"alias_maps =" "alias_database =" "myhostname = bench.localdomain" \
		"syslog_name = postfix-bench" "maillog_file_prefixes = $d" "maillog_file = $d/maillog"
	# The system's smtp listener becomes ours; no chroot (the queue is not
	# under the system's chroot), every other service as shipped.
	awk -v listen="127.0.0.1:$1" '
		/^#/ || /^[ \t]/ || NF < 8 { print; next }
		$1 == "smtp" && $2 == "inet" { print listen " inet n - n - - smtpd"; next }
		{ $5 = "n"; print }' /etc/postfix/master.cf >"$d/etc/master.cf"
	postfix -c "$d/etc" check >"$TMP/postfix-check.log" 2>&1 ||
		{ cat "$TMP/postfix-check.log" "$d/maillog" >&2 2>/dev/null; die "postfix check failed"; }
	POSTFIX_CONF=$d/etc
	postfix -c "$d/etc" start >"$TMP/postfix-start.log" 2>&1 ||
		{ cat "$TMP/postfix-start.log" "$d/maillog" >&2 2>/dev/null; die "postfix did not start"; }
	for _ in $(seq 1 50); do
		[ -s "$d/queue/pid/master.pid" ] && break
		sleep 0.1
	done
	POSTFIX_MASTER=$(tr -d ' ' <"$d/queue/pid/master.pid")
	for _ in $(seq 1 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && break
		sleep 0.1
	done
	log "Postfix $(postconf -h mail_version) (master pid $POSTFIX_MASTER) on 127.0.0.1:$1, relayhost [127.0.0.1]:$2"
}

mode_email() {
	E2E_SIZE=1024
	POSTFIX_MASTER=
	SINK_TICK_PIDS=()
	local sink_port pf_port sink_out=$TMP/smtp-sink.out n=$E2E_MESSAGES
	sink_port=$(free_port)
	pf_port=$(free_port)
	# smtp-sink drops privileges to nobody when run as root.
	local sink_user=()
	[ "$(id -u)" -ne 0 ] || sink_user=(-u nobody)
	: >"$sink_out"
	smtp-sink "${sink_user[@]}" -c -h sink.localdomain "127.0.0.1:$sink_port" 256 >"$sink_out" 2>"$TMP/smtp-sink.err" &
	SINK_PIDS+=($!)
	SINK_TICK_PIDS=("$!")
	for _ in $(seq 1 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$sink_port") 2>/dev/null && break
		sleep 0.1
	done
	log "smtp-sink (pid ${SINK_PIDS[0]}) on 127.0.0.1:$sink_port, counting with -c"
	start_postfix "$pf_port" "$sink_port"

	start_workers "credit = $WORKER_CREDIT;
log_level = \"$LOG_LEVEL\";
email = { relay = \"127.0.0.1:$sink_port\"; starttls = \"off\"; sessions = $EMAIL_SESSIONS;
          max_messages_per_session = 10000; max_jobs = $WORKER_CREDIT; };"

	# The sink alone: how fast it takes mail straight from smtp-source.
	local base
	base=$(smtp_count "$sink_out")
	e2e_run sink-direct "$n" smtp "$sink_out" "$base" \
		smtp-source -s 8 -m "$n" -l "$E2E_SIZE" -d "127.0.0.1:$sink_port"
	local sink_rate=$E2E_RATE

	if [ "$E2E_WARMUP" -gt 0 ]; then
		base=$(smtp_count "$sink_out")
		# shellcheck disable=SC2046 # word splitting of the command line is intended
		e2e_run herald-warmup "$E2E_WARMUP" smtp "$sink_out" "$base" \
			$(herald_send_args "$E2E_WARMUP" email)
	fi
	base=$(smtp_count "$sink_out")
	# shellcheck disable=SC2046
	e2e_run herald "$n" smtp "$sink_out" "$base" $(herald_send_args "$n" email)
	local herald_rate=$E2E_RATE bench_line=$E2E_SENDER_OUT

	base=$(smtp_count "$sink_out")
	e2e_run postfix "$n" smtp "$sink_out" "$base" \
		smtp-source -s 8 -m "$n" -l "$E2E_SIZE" -d "127.0.0.1:$pf_port"
	local anchor=$E2E_RATE

	e2e_table
	echo
	echo "herald-bench: $bench_line"
	echo "sink:        smtp-sink takes $sink_rate msgs/s straight from smtp-source -s 8"
	check_sent "$((n + E2E_WARMUP))"
	local ratio
	ratio=$(printf '%.2f' "$(calc "$herald_rate / $anchor")")
	echo "target:      ratio >= 10 -> $ratio ($(awk "BEGIN { print ($ratio >= 10) ? \"met\" : \"NOT met\" }"))"
	local status=0
	[ "$SENT_OK" = 1 ] || status=1
	[ "$status" -ne 0 ] || ok=1
	echo "RESULT email herald=$herald_rate anchor=$anchor ratio=$ratio"
	exit "$status"
}

# ---- im -------------------------------------------------------------------------

start_nginx() { # PORT
	local d=$TMP/nginx
	mkdir -p "$d/logs" "$d/tmp"
	cat >"$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 1024; }
http {
	client_body_temp_path $d/tmp/body;
	proxy_temp_path $d/tmp/proxy;
	fastcgi_temp_path $d/tmp/fastcgi;
	uwsgi_temp_path $d/tmp/uwsgi;
	scgi_temp_path $d/tmp/scgi;
	log_format bench '\$content_length \$status \$uri';
	access_log $d/logs/access.log bench;
	keepalive_timeout 65s;
	keepalive_requests 10000000;
	client_body_buffer_size 64k;
	server {
		listen 127.0.0.1:$1;
		location / { return 204; }
	}
}
EOF
	: >"$d/logs/access.log"
	nginx -e "$d/logs/error.log" -p "$d" -c "$d/nginx.conf" >"$TMP/nginx.out" 2>&1 &
	SINK_PIDS+=($!)
	local master=$!
	for _ in $(seq 1 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && break
		kill -0 "$master" 2>/dev/null || { cat "$TMP/nginx.out" >&2; die "nginx did not start"; }
		sleep 0.1
	done
	NGINX_LOG=$d/logs/access.log
	# The worker process does the work; the master only forks it.
	local children
	read -r -a children <"/proc/$master/task/$master/children" || true
	SINK_TICK_PIDS=("$master" "${children[@]}")
	log "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') (pid $master) on 127.0.0.1:$1, answering 204"
}

mode_im() {
	E2E_SIZE=600
	POSTFIX_MASTER=
	SINK_TICK_PIDS=()
	local port n=$E2E_MESSAGES i groups="" names=""
	port=$(free_port)
	start_nginx "$port"
	for i in $(seq 0 $((IM_GROUPS - 1))); do
		groups+="${groups:+,
    }{ name = \"bench-$i\"; provider = \"generic\"; url = \"http://127.0.0.1:$port/hook/bench-$i\"; }"
		names+="${names:+,}bench-$i"
	done
	# credit = max_in_flight: the IM driver answers "busy" (a retry, 5 min
	# later by default) to jobs beyond max_in_flight instead of queueing them.
	WORKER_CREDIT=$IM_IN_FLIGHT
	start_workers "credit = $WORKER_CREDIT;
log_level = \"$LOG_LEVEL\";
im = { max_in_flight = $IM_IN_FLIGHT; groups = (
    $groups
  ); };"

	if [ "$E2E_WARMUP" -gt 0 ]; then
		# shellcheck disable=SC2046
		e2e_run herald-warmup "$E2E_WARMUP" lines "$NGINX_LOG" "$(wc -l <"$NGINX_LOG")" \
			$(herald_send_args "$E2E_WARMUP" im --to "$names")
	fi
	# shellcheck disable=SC2046
	e2e_run herald "$n" lines "$NGINX_LOG" "$(wc -l <"$NGINX_LOG")" \
		$(herald_send_args "$n" im --to "$names")
	local herald_rate=$E2E_RATE bench_line=$E2E_SENDER_OUT
	local body_bytes
	body_bytes=$(awk '$3 ~ /^\/hook\// { s += $1; n++ } END { printf "%.0f", n ? s / n : 600 }' "$NGINX_LOG")

	# The anchor: the same nginx, a JSON body as large as Herald's.
	local base s0 c0 c1 t0 t1
	base=$(wc -l <"$NGINX_LOG")
	c0=$(pids_ticks "${SINK_TICK_PIDS[@]}")
	t0=$(date +%s.%N)
	local anchor_line
	anchor_line=$("$CURL_ANCHOR" --url "http://127.0.0.1:$port/anchor" --bytes "$body_bytes" \
		--seconds "$ANCHOR_SECONDS" --count 100000000) || die "curl-anchor failed: $anchor_line"
	t1=$(date +%s.%N)
	c1=$(pids_ticks "${SINK_TICK_PIDS[@]}")
	s0=$(($(wc -l <"$NGINX_LOG") - base))
	local anchor nginx_rate nginx_cpu wall
	anchor=$(field req_per_s "$anchor_line")
	wall=$(calc "$t1 - $t0")
	nginx_rate=$(printf '%.0f' "$(calc "$s0 / $wall")")
	nginx_cpu=$(printf '%.0f' "$(calc "100 * ($c1 - $c0) / $CLK_TCK / $wall")")

	e2e_table
	echo
	echo "herald-bench: $bench_line"
	echo "anchor:      $anchor_line"
	echo "sink:        nginx logged $s0 requests in $(printf '%.1f' "$wall") s under the anchor" \
		"($nginx_rate req/s) at $nginx_cpu% CPU of one core; Herald's webhook bodies averaged $body_bytes bytes"
	local codes
	codes=$(awk '$3 ~ /^\/hook\// { c[$2]++ } END { for (k in c) printf "%s=%d ", k, c[k] }' "$NGINX_LOG")
	echo "statuses:    herald's requests at nginx: $codes"
	check_sent "$((n + E2E_WARMUP))"
	local ratio
	ratio=$(printf '%.2f' "$(calc "$herald_rate / $anchor")")
	echo "target:      ratio >= 0.3 -> $ratio ($(awk "BEGIN { print ($ratio >= 0.3) ? \"met\" : \"NOT met\" }"))"
	local status=0
	[ "$SENT_OK" = 1 ] || status=1
	[ "$status" -ne 0 ] || ok=1
	echo "RESULT im herald=$herald_rate anchor=$anchor ratio=$ratio"
	exit "$status"
}
