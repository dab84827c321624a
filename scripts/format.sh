#!/usr/bin/env bash
# Formats the C++ sources with the repository's .clang-format (clang-format 14).
#
# Usage: scripts/format.sh [--check]
#   (no flag)  rewrite files in place
#   --check    change nothing; list unformatted files and exit 1 if there are any (for CI)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mapfile -t files < <(git ls-files --cached --others --exclude-standard -- \
    '*.hpp' '*.cpp' '*.h' '*.cc' | grep -v '^build')
if ((${#files[@]} == 0)); then
    echo "format: no C++ files"
    exit 0
fi

if [[ "${1:-}" == "--check" ]]; then
    bad=()
    for f in "${files[@]}"; do
        if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
            bad+=("$f")
        fi
    done
    if ((${#bad[@]})); then
        echo "format: ${#bad[@]} of ${#files[@]} files need clang-format (scripts/format.sh):"
        printf '  %s\n' "${bad[@]}"
        exit 1
    fi
    echo "format: all ${#files[@]} files formatted"
else
    clang-format -i "${files[@]}"
    echo "format: formatted ${#files[@]} files"
fi
