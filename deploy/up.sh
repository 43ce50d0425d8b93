#!/usr/bin/env bash
# NAME
#	deploy/up.sh - bring up the whole Herald stack on this machine
# DESCRIPTION
#	Installs missing packages, builds, starts a private PostgreSQL under
#	./var (unless HERALD_DATABASE_URL names a database), migrates it,
#	starts heraldd, local sinks that stand in for the outside world
#	(Postfix's smtp-sink for mail, Kannel with its fake phone network for
#	SMS, an HTTP sink answering like the IM providers) and a herald-worker
#	wired to them, prints the endpoints and ready-to-paste examples, and
#	stops everything cleanly on Ctrl-C.
#	Environment: HERALD_DATABASE_URL (use this database instead of a
#	private one; it must already have a login role for heraldd, see
#	README), HERALD_PG_PORT (default 54329), HERALD_PORT (default 7711).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
var="$root/var"
mkdir -p "$var/log"

./deploy/install-deps.sh

echo "up: building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null

pg_port=${HERALD_PG_PORT:-54329}
herald_port=${HERALD_PORT:-7711}
endpoint="tcp://127.0.0.1:$herald_port"
private_pg=""
pids=()

stop_all() {
	trap - INT TERM EXIT
	echo
	echo "up: stopping"
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	# Give everything 15 s to finish cleanly (heraldd commits what it
	# holds, workers report, bearerbox drains), then stop what is left.
	for _ in $(seq 1 150); do
		alive=0
		for pid in "${pids[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then
				alive=1
			fi
		done
		[ "$alive" -eq 1 ] || break
		sleep 0.1
	done
	for pid in "${pids[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	if [ -n "$private_pg" ]; then
		./deploy/pg-local.sh stop "$private_pg" >/dev/null || true
	fi
	echo "up: stopped"
	exit 0
}
trap stop_all INT TERM EXIT

if [ -n "${HERALD_DATABASE_URL:-}" ]; then
	admin_url=$HERALD_DATABASE_URL
	broker_url=$HERALD_DATABASE_URL
	echo "up: using the database in HERALD_DATABASE_URL"
else
	private_pg="$var/pg"
	./deploy/pg-local.sh start "$private_pg" "$pg_port"
	admin_url=$(./deploy/pg-local.sh url "$private_pg" "$pg_port")
	broker_url="postgresql://heraldd@127.0.0.1:$pg_port/postgres"
fi

./build/ctl/heraldctl --db "$admin_url" db migrate
if [ -n "$private_pg" ]; then
	psql -q -X -v ON_ERROR_STOP=1 -d "$admin_url" -c "DO \$\$ BEGIN
	  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'heraldd') THEN
	    CREATE ROLE heraldd LOGIN IN ROLE herald_broker;
	  END IF; END \$\$;"
	# A demo organisation (deploy/org.example.yaml) so the examples below
	# have known senders and approvers, each with a login role of their own.
	./build/ctl/heraldctl --db "$admin_url" org import deploy/org.example.yaml
	psql -q -X -v ON_ERROR_STOP=1 -d "$admin_url" -c "DO \$\$ DECLARE r record; BEGIN
	  FOR r IN SELECT db_role FROM herald.staff WHERE db_role IS NOT NULL LOOP
	    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.db_role) THEN
	      EXECUTE format('CREATE ROLE %I LOGIN IN ROLE herald_approver', r.db_role);
	    END IF;
	  END LOOP; END \$\$;"
fi

dispatch_endpoint="tcp://127.0.0.1:${HERALD_DISPATCH_PORT:-7712}"
./build/broker/heraldd -c deploy/heraldd.conf --listen "$endpoint" \
	--dispatch-listen "$dispatch_endpoint" --db "$broker_url" 2>>"$var/log/heraldd.log" &
pids+=($!)

# ---- local sinks: the outside world, on loopback ---------------------------
smtp_port=${HERALD_SMTP_SINK_PORT:-2525}
http_port=${HERALD_HTTP_SINK_PORT:-8025}
mkdir -p "$var/mail" "$var/kannel"
chmod 777 "$var/mail"   # smtp-sink writes as nobody when started as root
sink_user=()
if [ "$(id -u)" -eq 0 ]; then
	sink_user=(-u nobody)
fi
smtp-sink "${sink_user[@]}" -d "$var/mail/%Y%m%d%H%M%S." "127.0.0.1:$smtp_port" 64 \
	>>"$var/log/smtp-sink.log" 2>&1 &
pids+=($!)

python3 tests/support/provider_sink.py --port "$http_port" >>"$var/log/http-sink.log" 2>&1 &
pids+=($!)

cat >"$var/kannel/kannel.conf" <<EOK
group = core
admin-port = 13000
admin-password = local-admin
admin-interface = 127.0.0.1
smsbox-port = 13001
box-allow-ip = 127.0.0.1
log-file = "$var/log/bearerbox.log"
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
host = 127.0.0.1
port = 13010
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = 13013
sendsms-interface = 127.0.0.1
log-file = "$var/log/smsbox.log"

group = sendsms-user
username = herald
password = local-sms-secret
concatenation = true

group = sms-service
keyword = default
text = "ok"
catch-all = true
EOK
printf 'local-sms-secret' >"$var/kannel/sms.secret"
chmod 600 "$var/kannel/sms.secret"
/usr/sbin/bearerbox -v 1 "$var/kannel/kannel.conf" >>"$var/log/bearerbox.out" 2>&1 &
pids+=($!)
sleep 1
# fakesmsc is the phone network: every SMS that "arrives" is printed to its log.
/usr/lib/kannel/test/fakesmsc -H 127.0.0.1 -r 13010 -i 100000 -m 1 "100 200 text hello" \
	>>"$var/log/phones.log" 2>&1 &
pids+=($!)
/usr/sbin/smsbox -v 1 "$var/kannel/kannel.conf" >>"$var/log/smsbox.out" 2>&1 &
pids+=($!)

cat >"$var/herald-worker.conf" <<EOW
# Generated by deploy/up.sh: a worker wired to the local sinks.
credit = 64;
email = { relay = "127.0.0.1:$smtp_port"; starttls = "off"; };
im = {
  groups = (
    { name = "ops-oncall"; provider = "slack"; url = "http://127.0.0.1:$http_port/slack/ops-oncall"; },
    { name = "sre-cn"; provider = "wecom"; url = "http://127.0.0.1:$http_port/wecom/sre-cn"; },
    { name = "sales-approvals"; provider = "slack"; url = "http://127.0.0.1:$http_port/slack/sales-approvals"; },
    { name = "board-group"; provider = "wecom"; url = "http://127.0.0.1:$http_port/wecom/board-group"; }
  );
};
sms = { provider = "kannel"; url = "http://127.0.0.1:13013"; username = "herald";
        secret_file = "$var/kannel/sms.secret"; from = "+10000000000"; };
EOW
./build/workers/herald-worker -c "$var/herald-worker.conf" --broker "$dispatch_endpoint" \
	--name local-worker 2>>"$var/log/herald-worker.log" &
pids+=($!)

for _ in $(seq 1 100); do
	if ./build/client/herald-send --endpoint "$endpoint" --ping --quiet 2>/dev/null; then
		break
	fi
	sleep 0.1
done

if [ -n "$private_pg" ]; then
	db_line="private PostgreSQL on 127.0.0.1:$pg_port (data in var/pg)"
	psql_target="\"$admin_url\""
else
	# The URL may hold a password: name the variable, never print its value.
	db_line="the database in HERALD_DATABASE_URL"
	psql_target='"$HERALD_DATABASE_URL"'
fi
cat <<EOT

Herald is up.
  producers (ZeroMQ):  $endpoint
  workers (ZeroMQ):    $dispatch_endpoint  (one herald-worker running: var/herald-worker.conf)
  database:            $db_line
  logs:                var/log/ (heraldd.log, herald-worker.log, ...)
  local sinks:         mail -> smtp-sink 127.0.0.1:$smtp_port, files in var/mail/
                       IM   -> http://127.0.0.1:$http_port (groups ops-oncall, sre-cn)
                       SMS  -> Kannel 127.0.0.1:13013 -> fake phones, var/log/phones.log

Send a message and watch it arrive:
  ./build/client/herald-send --endpoint $endpoint --channel email \\
      --from sam@example.com --to bob@example.com \\
      --subject "Quarterly figures" --body "The Q3 figures are attached to the wiki page."
  ls var/mail/

  ./build/client/herald-send --endpoint $endpoint --channel im --from sam@example.com \\
      --to ops-oncall --body "Deploy finished"
  curl -s http://127.0.0.1:$http_port/_requests

  ./build/client/herald-send --endpoint $endpoint --channel sms --from sam@example.com \\
      --to +8613800138000 --purpose service --body "验证码 4821"
  tail var/log/phones.log

  ./build/ctl/heraldctl --db $psql_target stats

An important message waits for the head of Sales (carol), who approves it:
  ./build/client/herald-send --endpoint $endpoint --channel email --from sam@example.com \\
      --to bob@example.com --important --subject "New price list" --body "Prices change on 1 Jan."
  ./build/ctl/heraldctl --db "postgresql://carol@127.0.0.1:$pg_port/postgres" held
  ./build/ctl/heraldctl --db "postgresql://carol@127.0.0.1:$pg_port/postgres" approve ID --comment ok

Look at it in the database:
  psql $psql_target -c "select id, class, sender, subject from herald.messages order by id desc limit 5"

Press Ctrl-C to stop everything.
EOT

# Sleep until Ctrl-C (or SIGTERM) runs stop_all.
while true; do
	sleep 1
done
