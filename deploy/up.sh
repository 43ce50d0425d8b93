#!/usr/bin/env bash
# NAME
#	deploy/up.sh - bring up the whole Herald stack on this machine
# DESCRIPTION
#	Installs missing packages, builds, starts a private PostgreSQL under
#	./var (unless HERALD_DATABASE_URL names a database), migrates it,
#	starts heraldd, prints the endpoints and a ready-to-paste example,
#	and stops everything cleanly on Ctrl-C.
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
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "$private_pg" ]; then
		./deploy/pg-local.sh stop "$private_pg" >/dev/null || true
	fi
	echo "up: stopped"
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
fi

./build/broker/heraldd -c deploy/heraldd.conf --listen "$endpoint" --db "$broker_url" \
	2>>"$var/log/heraldd.log" &
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
  database:            $db_line
  broker log:          var/log/heraldd.log

Send a message:
  ./build/client/herald-send --endpoint $endpoint --channel email \\
      --from alice@example.com --to bob@example.com \\
      --subject "Quarterly figures" --body "The Q3 figures are attached to the wiki page."

Look at it in the database:
  psql $psql_target -c "select id, class, sender, subject from herald.messages order by id desc limit 5"

Press Ctrl-C to stop everything.
EOT

wait "${pids[@]}"
