#!/usr/bin/env bash
# NAME
#	pg-local.sh - a private PostgreSQL 15 cluster for tests and the local stack
# SYNOPSIS
#	pg-local.sh start DIR PORT	initdb DIR/data if missing, then start it
#	pg-local.sh stop DIR		fast shutdown (no-op when not running)
#	pg-local.sh status DIR		exit 0 running, 3 stopped, 4 no cluster
#	pg-local.sh url DIR [PORT]	print postgresql://postgres@127.0.0.1:PORT/postgres
# DESCRIPTION
#	The cluster listens only on 127.0.0.1:PORT, keeps its Unix socket in
#	DIR, trusts local and 127.0.0.1 connections, has the superuser
#	"postgres", UTF8 with locale C.UTF-8, and default durability (fsync,
#	synchronous_commit and full_page_writes on): benchmarks against it
#	measure what production would get. The server log is DIR/server.log.
#	initdb refuses to run as root, so as root every server command runs
#	as the "postgres" system user and DIR is chowned to it.
#	It never touches the system cluster (/var/lib/postgresql).
# ENVIRONMENT
#	HERALD_PGBIN	server binaries (default /usr/lib/postgresql/15/bin)
set -euo pipefail

PGBIN=${HERALD_PGBIN:-/usr/lib/postgresql/15/bin}
PROG=${0##*/}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

usage() {
	cat >&2 <<EOF
usage: $PROG start DIR PORT
       $PROG stop DIR
       $PROG status DIR
       $PROG url DIR [PORT]
EOF
	exit "${1:-2}"
}

# Run a server binary as the cluster owner: postgres refuses to run as root.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

check_port() {
	case "$1" in
	'' | *[!0-9]*) die "PORT must be a number, got '$1'" ;;
	esac
	if [ "$1" -lt 1 ] || [ "$1" -gt 65535 ]; then
		die "PORT must be between 1 and 65535, got $1"
	fi
}

abs_dir() {
	mkdir -p -- "$1" || die "cannot create directory $1"
	(cd -- "$1" && pwd -P)
}

# Port of the running postmaster, from line 4 of postmaster.pid.
running_port() {
	sed -n 4p "$1/data/postmaster.pid" 2>/dev/null || true
}

is_running() {
	[ -f "$1/data/PG_VERSION" ] || return 1
	as_owner "$PGBIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

cmd_start() {
	[ $# -eq 2 ] || usage
	check_port "$2"
	local dir port
	dir=$(abs_dir "$1")
	port=$2
	[ -x "$PGBIN/pg_ctl" ] || die "PostgreSQL 15 server binaries not found in $PGBIN (apt-get install postgresql-15)"

	# The socket path DIR/.s.PGSQL.PORT must fit in sun_path (107 bytes).
	local sock="$dir/.s.PGSQL.$port"
	[ ${#sock} -le 100 ] || die "DIR is too long for a Unix socket path ($sock): use a shorter directory"

	if is_running "$dir"; then
		local have
		have=$(running_port "$dir")
		if [ "$have" != "$port" ]; then
			die "cluster in $dir is already running on port $have, not $port"
		fi
		echo "$PROG: cluster in $dir already running on 127.0.0.1:$port"
		return 0
	fi

	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (apt-get install postgresql)"
		chown postgres:postgres "$dir"
		[ ! -d "$dir/data" ] || chown -R postgres:postgres "$dir/data"
		runuser -u postgres -- test -w "$dir" ||
			die "user postgres cannot reach $dir: make its parent directories searchable (chmod o+x)"
	fi

	if [ ! -f "$dir/data/PG_VERSION" ]; then
		[ ! -e "$dir/data" ] || [ -z "$(ls -A "$dir/data")" ] ||
			die "$dir/data exists but is not a PostgreSQL cluster; remove it or choose another DIR"
		if ! as_owner "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust \
			-E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
			cat "$dir/initdb.log" >&2
			die "initdb failed for $dir/data"
		fi
		# Only loopback TCP and the socket in DIR; trust is safe because
		# nothing else can reach it.
		cat >"$dir/data/pg_hba.conf" <<EOF
# Written by pg-local.sh: a private cluster reachable only from this host.
local   all all                trust
host    all all 127.0.0.1/32   trust
EOF
		cat >>"$dir/data/postgresql.conf" <<EOF

# --- pg-local.sh (Herald) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
fsync = on
synchronous_commit = on
full_page_writes = on
# Keep and recycle WAL segments instead of creating (and zero-filling) new
# ones in the middle of a commit, as a long-running server does.
min_wal_size = 1GB
max_wal_size = 2GB
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
		[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir/data/pg_hba.conf"
	fi

	if [ "$(id -u)" -eq 0 ]; then
		touch "$dir/server.log" && chown postgres:postgres "$dir/server.log"
	fi
	if ! as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null; then
		echo "--- last lines of $dir/server.log ---" >&2
		tail -n 20 "$dir/server.log" >&2 || true
		die "PostgreSQL did not start on 127.0.0.1:$port (port in use?)"
	fi
	echo "$PROG: cluster in $dir running on 127.0.0.1:$port"
}

cmd_stop() {
	[ $# -eq 1 ] || usage
	local dir=$1
	[ -d "$dir" ] || die "no such directory: $dir"
	dir=$(cd -- "$dir" && pwd -P)
	if ! is_running "$dir"; then
		echo "$PROG: cluster in $dir is not running"
		return 0
	fi
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null ||
		die "could not stop the cluster in $dir (see $dir/server.log)"
	echo "$PROG: cluster in $dir stopped"
}

cmd_status() {
	[ $# -eq 1 ] || usage
	local dir=$1
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		echo "$PROG: no cluster in $dir"
		exit 4
	fi
	dir=$(cd -- "$dir" && pwd -P)
	if is_running "$dir"; then
		echo "$PROG: cluster in $dir running on 127.0.0.1:$(running_port "$dir")"
		return 0
	fi
	echo "$PROG: cluster in $dir is not running"
	exit 3
}

cmd_url() {
	[ $# -ge 1 ] && [ $# -le 2 ] || usage
	local port=${2:-}
	if [ -z "$port" ]; then
		port=$(running_port "$1")
		[ -n "$port" ] || die "cluster in $1 is not running: give PORT"
	fi
	check_port "$port"
	echo "postgresql://postgres@127.0.0.1:$port/postgres"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
url) cmd_url "$@" ;;
-h | --help | help) usage 0 ;;
*) echo "$PROG: unknown command '$cmd'" >&2; usage ;;
esac
