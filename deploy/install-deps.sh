#!/usr/bin/env bash
# NAME
#	install-deps.sh - install every Debian 12 package Herald needs
# DESCRIPTION
#	Build, run and test dependencies in one list. Installs only what is
#	missing, so it is cheap to call from deploy/up.sh and tests/run.sh.
#	Needs root (or sudo) the first time.
set -euo pipefail

packages=(
	# build
	build-essential cmake pkg-config clang libclang-rt-14-dev
	# libraries (see README "Dependencies" for why each is here)
	libzmq3-dev libmsgpack-dev libpq-dev libconfig-dev libjansson-dev libsodium-dev
	libhyperscan-dev libutf8proc-dev
	libcmocka-dev libcurl4-openssl-dev libesmtp-dev libssl-dev libyaml-dev
	# servers and tools used by the local stack, tests and benchmarks
	postgresql postgresql-contrib postfix kannel kannel-extras nginx-light openssl
	python3 python3-zmq python3-msgpack python3-aiosmtpd
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# postfix asks questions at install time; answer them for a machine that
# only uses its smtp-sink and a loopback relay.
echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
