#!/usr/bin/env bash
# Builds saga and runs the demo: the campaign-publishing saga when it is there, else the
# hello_saga example. Arguments are passed to the demo binary.
#
# Usage: scripts/demo.sh [demo arguments...]
#
# The demo starts from a fresh installation at --store (default campaign_demo.db in the current
# directory): it replaces an earlier one, and refuses (exit 1, deleting nothing) a file that is
# not one of its own, a read-only one, or an installation a running process uses
# (docs/campaign-publishing.md, "What setup and the demo replace").
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$SAGA_ROOT/scripts/install-deps.sh"
saga_build build -DSAGA_BUILD_EXAMPLES=ON

for demo in examples/campaign_publishing/campaign_publishing examples/hello_saga/hello_saga; do
    if [[ -x "$SAGA_ROOT/build/$demo" ]]; then
        echo "==== running build/$demo"
        exec "$SAGA_ROOT/build/$demo" "$@"
    fi
done
echo "demo.sh: no demo binary was built (looked for campaign_publishing and hello_saga in" \
     "build/examples/)" >&2
exit 1
