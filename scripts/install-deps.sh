#!/usr/bin/env bash
# Installs the Debian 12 packages saga needs to build and test. Idempotent: when everything is
# present it does nothing at all (not even `apt-get update`).
#
# Usage: scripts/install-deps.sh
set -euo pipefail

# One list, one place. Never add an unversioned libboost-*-dev here: it is Boost 1.74 and
# installing it removes libboost1.81-dev. Use libboost-<lib>1.81-dev for compiled Boost libs.
PACKAGES=(
    build-essential
    cmake
    # the build tool of scripts/common.sh: unlike make, it compiles a target's sources while the
    # libraries it links are still being built, so -j2 keeps both cores busy
    ninja-build
    g++
    git
    pkg-config
    libboost1.81-dev
    libfmt-dev
    nlohmann-json3-dev
    libsqlitecpp-dev
    libsqlite3-dev
    sqlite3
    catch2
    libssl-dev
    # the allocator of the demo binary and the benchmarks (cmake/saga_allocator.cmake)
    libmimalloc-dev
    chromium
    # the sanitizer builds of scripts/test.sh: clang++ 14 and its sanitizer runtimes
    clang
    libclang-rt-14-dev
)

for pkg in "${PACKAGES[@]}"; do
    case "$pkg" in
        libboost-*-dev | libboost-dev)
            echo "install-deps: refusing to install '$pkg' (unversioned Boost would remove" \
                 "libboost1.81-dev); use the 1.81 variant" >&2
            exit 1
            ;;
    esac
done

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all dependencies present"
    exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: not root and sudo is not available; install them as root with" >&2
    echo "  apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "install-deps: installing: ${missing[*]}"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
