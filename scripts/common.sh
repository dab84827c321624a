# Shared by scripts/test.sh and scripts/demo.sh; source it, do not run it.
# shellcheck shell=bash

# The repository root, whatever the caller's working directory.
SAGA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=$(nproc 2>/dev/null || echo 2)

# saga_build DIR [cmake -D options...]: configures (RelWithDebInfo, warnings as errors: our
# builds and CI use -DSAGA_WERROR=ON, a user's build does not by default) and
# builds everything in DIR.
saga_build() {
    local dir=$1
    shift
    cmake -S "$SAGA_ROOT" -B "$SAGA_ROOT/$dir" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSAGA_WERROR=ON \
        "$@"
    cmake --build "$SAGA_ROOT/$dir" -j"$JOBS"
}
