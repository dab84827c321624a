#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan, in build-fuzz/) and runs each
# for a bounded time, starting from its checked-in seed corpus (fuzz/corpus/<target>/; what the
# fuzzer finds new goes to build-fuzz/corpus/<target>/, the seeds are not touched).
# Exits non-zero on a finding: a crash, a sanitizer report, a leak, a timeout or a broken
# property; the input that caused it is left in build-fuzz/findings/<target>/ (reproduce with
# `build-fuzz/fuzz/fuzz_<target> build-fuzz/findings/<target>/crash-...`).
#
# Usage: scripts/fuzz.sh [--seconds N] [--target NAME]...
#   --seconds N    run each target for N seconds (default 30, for CI)
#   --target NAME  run only this target (envelope, journal_codec, admin_api, aws_responses);
#                  may repeat
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

seconds=30
targets=()
while (($#)); do
    case "$1" in
        --seconds)
            seconds=${2:?--seconds needs a number}
            shift
            ;;
        --target)
            targets+=("${2:?--target needs a name}")
            shift
            ;;
        -h | --help)
            sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "fuzz.sh: unknown option '$1' (see --help)" >&2
            exit 2
            ;;
    esac
    shift
done
((${#targets[@]})) || targets=(envelope journal_codec aws_responses admin_api)

build="$SAGA_ROOT/build-fuzz"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
echo "==== fuzz: configure and build in build-fuzz/ (clang++, ASan + UBSan + libFuzzer)"
cmake -S "$SAGA_ROOT" -B "$build" \
    -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSAGA_WERROR=ON \
    -DSAGA_BUILD_FUZZ=ON \
    -DSAGA_BUILD_TESTS=OFF -DSAGA_BUILD_EXAMPLES=OFF -DSAGA_BUILD_BENCH=OFF \
    "${launcher[@]}" >/dev/null
cmake --build "$build" -j"$JOBS" --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=()
for t in "${targets[@]}"; do
    bin="$build/fuzz/fuzz_$t"
    work="$build/corpus/$t"
    findings="$build/findings/$t"
    mkdir -p "$work" "$findings"
    dict=()
    [[ -f "$SAGA_ROOT/fuzz/$t.dict" ]] && dict=(-dict="$SAGA_ROOT/fuzz/$t.dict")
    echo "==== fuzz: $t for $seconds s"
    log="$build/fuzz-$t.log"
    # -timeout: one input taking longer is a finding; -rss_limit_mb: so is using more memory
    if "$bin" "$work" "$SAGA_ROOT/fuzz/corpus/$t" "${dict[@]}" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 \
        -print_final_stats=1 -artifact_prefix="$findings/" >"$log" 2>&1; then
        # the figures: executions, coverage (cov) and features (ft) at the end
        { grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true; } | sed "s/^/     $t: /"
        { grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$log" || true; } |
            sed "s/^/     $t: /"
    else
        echo "==== fuzz: $t FOUND SOMETHING (input in build-fuzz/findings/$t/); the end of its log:"
        tail -40 "$log"
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo "==== fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "==== fuzz: no finding in ${targets[*]} ($seconds s each)"
