#!/usr/bin/env bash
# NAME
#	tests/run.sh - the one command that runs every test
# DESCRIPTION
#	Installs missing packages, then: a -Werror build with unit and
#	integration tests; the same under AddressSanitizer + UBSan; a short,
#	bounded fuzzing run of the producer decoder. Each integration test
#	starts its own PostgreSQL and heraldd on free ports. Exit status is
#	non-zero if anything failed.
#	Environment: JOBS (parallel tests, default 2), HERALD_SKIP_ASAN=1 and
#	HERALD_FUZZ_SECONDS (default 30) for quicker local runs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${JOBS:-2}

./deploy/install-deps.sh

step() { printf '\n=== %s ===\n' "$*"; }

step "build (RelWithDebInfo, -Werror)"
cmake -S . -B build -DHERALD_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"

step "unit tests"
ctest --test-dir build -L unit --output-on-failure -j "$jobs"

step "integration tests"
ctest --test-dir build -L integration --output-on-failure -j "$jobs"

if [ "${HERALD_SKIP_ASAN:-0}" != 1 ]; then
	step "build (ASan + UBSan)"
	cmake -S . -B build-asan -DHERALD_WERROR=ON -DHERALD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build build-asan -j "$jobs"
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

	step "unit tests (ASan + UBSan)"
	ctest --test-dir build-asan -L unit --output-on-failure -j "$jobs"

	step "integration tests (ASan + UBSan)"
	ctest --test-dir build-asan -L integration --output-on-failure -j "$jobs"
fi

if [ -x tests/fuzz/run.sh ]; then
	step "fuzz (bounded)"
	tests/fuzz/run.sh "${HERALD_FUZZ_SECONDS:-30}"
fi

step "all tests passed"
