#!/bin/sh
# NAME
#	run.sh - a bounded libFuzzer run of the producer envelope codec
# SYNOPSIS
#	tests/fuzz/run.sh [SECONDS]        (default 30)
# DESCRIPTION
#	Builds tests/fuzz/fuzz_envelope.c with clang
#	-fsanitize=fuzzer,address,undefined against the codec sources of
#	common/, writes a seed corpus of valid frames (fuzz_envelope_seeds.c)
#	and fuzzes for SECONDS. Exits non-zero on a crash, leak, sanitizer
#	report or violated invariant; the crashing input is kept in the work
#	directory printed at the end (HERALD_FUZZ_DIR overrides it).
#	Needs clang and libclang-rt-*-dev (Debian: apt-get install clang)
#	and libmsgpack-dev.
set -eu

secs=${1:-30}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${HERALD_FUZZ_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/herald-fuzz.XXXXXX")}

if ! command -v clang >/dev/null 2>&1; then
	echo "run.sh: clang not found (apt-get install clang)" >&2
	exit 2
fi

srcs="$root/common/hd_envelope.c $root/common/hd_msg.c $root/common/hd_mpack.c
      $root/common/hd_mem.c $root/common/hd_err.c"
cflags="-std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -I$root/common"

# shellcheck disable=SC2086
clang $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-o "$work/fuzz_envelope" "$here/fuzz_envelope.c" $srcs -lmsgpackc
# shellcheck disable=SC2086
clang $cflags -o "$work/fuzz_envelope_seeds" "$here/fuzz_envelope_seeds.c" $srcs -lmsgpackc

mkdir -p "$work/corpus" "$work/seeds"
"$work/fuzz_envelope_seeds" "$work/seeds"

echo "run.sh: fuzzing for ${secs}s in $work"
status=0
"$work/fuzz_envelope" -max_total_time="$secs" -timeout=10 -max_len=65536 \
	-dict="$here/envelope.dict" -artifact_prefix="$work/" -print_final_stats=1 \
	"$work/corpus" "$work/seeds" || status=$?
if [ "$status" -ne 0 ]; then
	echo "run.sh: FAILED (exit $status); reproducer(s): $(ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null | tr '\n' ' ')" >&2
	exit "$status"
fi
echo "run.sh: no crash in ${secs}s"
