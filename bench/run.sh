#!/usr/bin/env bash
# Builds saga_bench in Release (build-bench/, next to this repository's other build dirs) and
# runs it; every argument goes to saga_bench (see bench/README.md or `bench/run.sh --help`).
#
#   bench/run.sh                   # the full benchmark: both stores, both variants, 3 runs each
#   bench/run.sh --quick           # a smoke run (1 run, 300 sagas)
#   bench/run.sh --store memory --runs 5
#
# Environment: BUILD_DIR (default: build-bench), BUILD_TYPE (default: Release), JOBS (default:
# nproc).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
build_type="${BUILD_TYPE:-Release}"
jobs="${JOBS:-$(nproc)}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="$build_type" -DSAGA_BUILD_TESTS=OFF \
  -DSAGA_BUILD_EXAMPLES=OFF -DSAGA_BUILD_BENCH=ON >&2
cmake --build "$build" --target saga_bench -j "$jobs" >&2

exec "$build/bench/saga_bench" "$@"
