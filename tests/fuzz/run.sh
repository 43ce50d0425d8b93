#!/bin/sh
# NAME
#	run.sh - a bounded libFuzzer run of the wire codecs
# SYNOPSIS
#	tests/fuzz/run.sh [SECONDS]        (default 30)
# DESCRIPTION
#	Builds two harnesses with clang -fsanitize=fuzzer,address,undefined
#	against the codec sources of common/: fuzz_envelope.c (the producer
#	codec, section 1 of docs/PROTOCOL.md) and fuzz_wire.c (the broker <->
#	worker codec, section 2). Each gets a seed corpus of valid frames
#	written by its *_seeds.c program and half of SECONDS (the envelope
#	the odd second). Exits non-zero on a crash, leak, sanitizer report
#	or violated invariant; the crashing input is kept in the work
#	directory printed at the end (HERALD_FUZZ_DIR overrides it).
#	Needs clang and libclang-rt-*-dev (Debian: apt-get install clang)
#	and libmsgpack-dev.
set -eu

secs=${1:-30}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${HERALD_FUZZ_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/herald-fuzz.XXXXXX")}
mkdir -p "$work"

if ! command -v clang >/dev/null 2>&1; then
	echo "run.sh: clang not found (apt-get install clang)" >&2
	exit 2
fi

srcs="$root/common/hd_envelope.c $root/common/hd_wire.c $root/common/hd_msg.c
      $root/common/hd_mpack.c $root/common/hd_mem.c $root/common/hd_err.c"
cflags="-std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -I$root/common"

wire_secs=$((secs / 2))
[ "$wire_secs" -ge 1 ] || wire_secs=1
env_secs=$((secs - wire_secs))
[ "$env_secs" -ge 1 ] || env_secs=1

# fuzz_one NAME DICT SECONDS: build NAME's harness and seed writer, fuzz it.
fuzz_one() {
	name=$1 dict=$2 t=$3
	# shellcheck disable=SC2086
	clang $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-o "$work/fuzz_$name" "$here/fuzz_$name.c" $srcs -lmsgpackc
	# shellcheck disable=SC2086
	clang $cflags -o "$work/fuzz_${name}_seeds" "$here/fuzz_${name}_seeds.c" $srcs -lmsgpackc
	mkdir -p "$work/$name/corpus" "$work/$name/seeds"
	"$work/fuzz_${name}_seeds" "$work/$name/seeds"
	echo "run.sh: fuzzing $name for ${t}s in $work/$name"
	status=0
	"$work/fuzz_$name" -max_total_time="$t" -timeout=10 -max_len=65536 \
		-dict="$here/$dict" -artifact_prefix="$work/$name/" -print_final_stats=1 \
		"$work/$name/corpus" "$work/$name/seeds" || status=$?
	if [ "$status" -ne 0 ]; then
		echo "run.sh: $name FAILED (exit $status); reproducer(s): $(ls "$work/$name"/crash-* "$work/$name"/leak-* "$work/$name"/timeout-* "$work/$name"/oom-* 2>/dev/null | tr '\n' ' ')" >&2
		exit "$status"
	fi
}

fuzz_one envelope envelope.dict "$env_secs"
fuzz_one wire wire.dict "$wire_secs"
echo "run.sh: no crash in ${secs}s (envelope ${env_secs}s, wire ${wire_secs}s)"
