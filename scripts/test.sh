#!/usr/bin/env bash
# Builds saga and runs every test through ctest: the plain suite in build/ (g++, RelWithDebInfo,
# warnings as errors), then the whole suite under ASan+UBSan (build-asan/, clang++) and under
# TSan (build-tsan/, clang++). This is the README's test command, and .ci/run runs
# exactly it (with CI=true). ccache is used when installed (SAGA_CCACHE=0: not).
#
# Usage: scripts/test.sh [--quick] [--time-budget SECONDS]
#   --quick               the plain suite only (no sanitizer builds)
#   --time-budget SECONDS skip a sanitizer run (saying so) when this many seconds have passed
#                         before it starts (default 2700, so CI ends inside its 90 minutes)
# Exits non-zero on the first failure (configure, build or test).
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sanitize=1
budget=2700
while (($#)); do
    case "$1" in
        --quick) sanitize=0 ;;
        --sanitize) sanitize=1 ;;
        --time-budget)
            budget=${2:?--time-budget needs a number of seconds}
            shift
            ;;
        -h | --help)
            sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "test.sh: unknown option '$1' (see --help)" >&2
            exit 2
            ;;
    esac
    shift
done

"$SAGA_ROOT/scripts/install-deps.sh"

# Sanitizer reports fail the test that triggers them. The TSan suppressions (tests/tsan.supp)
# name false positives only, each with its reason; ctest sets the same TSAN_OPTIONS for the
# tests of a TSan build (tests/CMakeLists.txt), this export covers running a binary by hand.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$SAGA_ROOT/tests/tsan.supp}

# Both sanitizer trees are built with clang++ (install-deps.sh installs it): its TSan is the one
# tests/tsan.supp was checked with, and it compiles our ASan+UBSan TUs in about a quarter of
# g++'s time (docs/testing.md, "Build time").
CLANG=(-DCMAKE_CXX_COMPILER=clang++)

# run_suite NAME DIR [cmake -D options...]
run_suite() {
    local name=$1 dir=$2
    shift 2
    local start=$SECONDS
    echo "==== $name: configure and build in $dir/"
    saga_build "$dir" "$@"
    echo "==== $name: built in $((SECONDS - start)) s; running ctest"
    ctest --test-dir "$SAGA_ROOT/$dir" --output-on-failure -j2
    echo "==== $name: passed in $((SECONDS - start)) s"
}

# time_left NAME: false (and says so) when the budget is spent.
time_left() {
    if ((budget > 0 && SECONDS >= budget)); then
        echo "==== $1: SKIPPED, ${SECONDS} s used of a ${budget} s budget"
        return 1
    fi
}

run_suite "tests" build

if ((sanitize)); then
    # Examples and benchmarks add nothing under sanitizers; leave them out to save build time.
    if time_left "asan+ubsan"; then
        run_suite "asan+ubsan" build-asan "${CLANG[@]}" -DSAGA_SANITIZE=address,undefined \
            -DSAGA_BUILD_EXAMPLES=OFF -DSAGA_BUILD_BENCH=OFF
    fi
    if time_left "tsan"; then
        run_suite "tsan" build-tsan "${CLANG[@]}" -DSAGA_SANITIZE=thread \
            -DSAGA_BUILD_EXAMPLES=OFF -DSAGA_BUILD_BENCH=OFF
    fi
    # The libFuzzer targets (fuzz/), briefly: a finding fails the run. Started while there is
    # time for their build (clang, ASan + UBSan) and their runs.
    if ((budget <= 0 || SECONDS < budget + 1200)); then
        start=$SECONDS
        echo "==== fuzz: build and run each target for 20 s"
        "$SAGA_ROOT/scripts/fuzz.sh" --seconds 20
        echo "==== fuzz: passed in $((SECONDS - start)) s"
    else
        echo "==== fuzz: SKIPPED, ${SECONDS} s used of a $((budget + 1200)) s budget"
    fi
fi
echo "==== all done in ${SECONDS} s"
