#!/usr/bin/env bash
# Instructions per saga, counted by callgrind (stable under load, unlike wall time): builds
# saga_bench like bench/run.sh (Release, in build-bench/), runs it under
# `valgrind --tool=callgrind` twice per store, with N and 2N measured sagas and the same
# warm-up, and prints (I(2N) - I(N)) / N: start-up, warm-up and shutdown cancel out.
#
#   bench/instructions.sh                       # N = 300, concurrent, variant A, memory and sqlite
#   bench/instructions.sh --sagas 500 --store memory
#   bench/instructions.sh --scenario sequential --variant B
#   bench/instructions.sh --runtime             # runtime_bench (core v2 runtime alone, memory)
#
# Options: --sagas N (default 300), --store memory|sqlite|all (default all), --runtime (instead
#          of saga_bench: runtime_bench --sagas N and 2N, variant A, 64 in flight, no warm-up),
#          --variant A|B (default A), --scenario concurrent|sequential (default concurrent),
#          --warmup N (default 128: 2 x 64 in flight, what saga_bench uses at this size).
# Environment: BUILD_DIR (default: build-bench), BUILD_TYPE (default: Release), JOBS (default:
# nproc). The callgrind files stay in $BUILD_DIR/callgrind/ for callgrind_annotate.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
build_type="${BUILD_TYPE:-Release}"
jobs="${JOBS:-$(nproc)}"

n=300
stores=(memory sqlite)
variant=A
scenario=concurrent
warmup=128

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
die() {
    echo "instructions.sh: $*" >&2
    exit 2
}
is_count() { [[ "$1" =~ ^[0-9]+$ ]]; }

while (($#)); do
    case "$1" in
        --sagas)
            (($# >= 2)) && is_count "$2" && (($2 >= 1)) || die "--sagas needs a whole number >= 1"
            n="$2"
            shift 2
            ;;
        --store)
            (($# >= 2)) || die "--store needs a value"
            case "$2" in
                memory | sqlite) stores=("$2") ;;
                all) stores=(memory sqlite) ;;
                *) die "--store takes memory, sqlite or all, not '$2'" ;;
            esac
            shift 2
            ;;
        --variant)
            (($# >= 2)) || die "--variant needs a value"
            case "$2" in
                A | a) variant=A ;;
                B | b) variant=B ;;
                *) die "--variant takes A or B, not '$2'" ;;
            esac
            shift 2
            ;;
        --scenario)
            (($# >= 2)) || die "--scenario needs a value"
            case "$2" in
                concurrent | sequential) scenario="$2" ;;
                *) die "--scenario takes concurrent or sequential, not '$2'" ;;
            esac
            shift 2
            ;;
        --warmup)
            (($# >= 2)) && is_count "$2" || die "--warmup needs a whole number"
            warmup="$2"
            shift 2
            ;;
        --runtime)
            stores=(runtime)
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="$build_type" -DSAGA_BUILD_TESTS=OFF \
    -DSAGA_BUILD_EXAMPLES=OFF -DSAGA_BUILD_BENCH=ON >&2
if [[ "${stores[0]}" == runtime ]]; then
    cmake --build "$build" --target runtime_bench -j "$jobs" >&2
else
    cmake --build "$build" --target saga_bench -j "$jobs" >&2
fi

out_dir="$build/callgrind"
mkdir -p "$out_dir"

# The sequential scenario runs --sagas/10 sagas: ask for 10x to measure k.
sagas_arg() {
    if [[ "$scenario" == sequential ]]; then echo $(($1 * 10)); else echo "$1"; fi
}

# Instructions (Ir) of a callgrind output file: its "summary:" line (or "totals:").
instructions_of() {
    local line
    line="$(grep -m1 -E '^(summary|totals):' "$1")" || die "no summary line in $1"
    echo "${line#*: }" | awk '{print $1}'
}

declare -A total
for store in "${stores[@]}"; do
    for k in "$n" $((2 * n)); do
        file="$out_dir/$store.$scenario.$variant.$k.out"
        log="$out_dir/$store.$scenario.$variant.$k.log"
        if [[ "$store" == runtime ]]; then
            echo "instructions.sh: callgrind, runtime_bench, $k sagas..." >&2
            if ! valgrind --tool=callgrind --callgrind-out-file="$file" \
                "$build/bench/runtime_bench" --sagas "$k" >"$log" 2>&1; then
                tail -20 "$log" >&2
                die "runtime_bench failed under callgrind (log: $log)"
            fi
            total[$store.$k]="$(instructions_of "$file")"
            continue
        fi
        echo "instructions.sh: callgrind, $store, $scenario, variant $variant, $k sagas" \
            "(+ $warmup warm-up)..." >&2
        if ! valgrind --tool=callgrind --callgrind-out-file="$file" \
            "$build/bench/saga_bench" --runs 1 --sagas "$(sagas_arg "$k")" --warmup "$warmup" \
            --scenario "$scenario" --variant "$variant" --store "$store" >"$log" 2>&1; then
            tail -20 "$log" >&2
            die "saga_bench failed under callgrind (log: $log)"
        fi
        # the warm-up must be the same size in both runs, or it would not cancel
        warm_line="$(grep -m1 -E 'warm-up sagas, then' "$log")" || die "no warm-up line in $log"
        measured="$(sed -E 's/.*then ([0-9]+) measured.*/\1/' <<<"$warm_line")"
        warm="$(sed -E 's/.*: ([0-9]+) warm-up sagas.*/\1/' <<<"$warm_line")"
        [[ "$warm" == "$warmup" ]] || die "$log: warm-up was $warm sagas, not $warmup"
        [[ "$measured" == "$k" ]] || die "$log: measured $measured sagas, not $k"
        total[$store.$k]="$(instructions_of "$file")"
    done
done

echo
echo "| store | scenario | variant | I($n sagas) | I($((2 * n)) sagas) | instructions per saga |"
echo "|---|---|---|--:|--:|--:|"
for store in "${stores[@]}"; do
    i1="${total[$store.$n]}"
    i2="${total[$store.$((2 * n))]}"
    per=$(((i2 - i1) / n))
    printf '| %s | %s | %s | %s | %s | %s |\n' "$store" "$scenario" "$variant" "$i1" "$i2" \
        "$(awk -v x="$per" 'BEGIN { if (x >= 1e6) printf "%.2f M", x / 1e6; else printf "%.0f k", x / 1e3 }') ($per)"
done
echo
warm_note="warm-up $warmup sagas in both runs"
if [[ "${stores[0]}" == runtime ]]; then
    warm_note="runtime_bench, no warm-up"
fi
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $build_type build in $build; $warm_note;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg); callgrind files in $out_dir"
