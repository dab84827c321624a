# Shared by scripts/test.sh and scripts/demo.sh; source it, do not run it.
# shellcheck shell=bash

# The repository root, whatever the caller's working directory.
SAGA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=$(nproc 2>/dev/null || echo 2)

# saga_build DIR [cmake -D options...]: configures (RelWithDebInfo, warnings as errors: our
# scripts and CI build with -DSAGA_WERROR=ON, a user's build does not by default) and builds
# everything in DIR. With ccache installed, compilations go through it (optional: without it
# the build is the same, only slower); SAGA_CCACHE=0 turns it off.
saga_build() {
    local dir=$1
    shift
    local launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=)
    if [[ "${SAGA_CCACHE:-1}" != 0 ]] && command -v ccache >/dev/null 2>&1; then
        launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
        # what ccache needs to cache a compilation that uses a precompiled header (ccache's
        # manual, "Precompiled headers"; cmake/saga_pch.cmake)
        export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
    fi
    # Ninja when installed (install-deps.sh installs it) for a new tree; a tree keeps the
    # generator it was configured with.
    local generator=()
    if [[ ! -f "$SAGA_ROOT/$dir/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then
        generator=(-G Ninja)
    fi
    cmake -S "$SAGA_ROOT" -B "$SAGA_ROOT/$dir" "${generator[@]}" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSAGA_WERROR=ON \
        "${launcher[@]}" \
        "$@"
    cmake --build "$SAGA_ROOT/$dir" -j"$JOBS"
}
