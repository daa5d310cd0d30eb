#!/usr/bin/env bash
# Every C file of ours must match .clang-format (DPDK-like: tabs, 100 columns).
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
while read -r f; do
	if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
		echo "clang-format disagrees with $f (run: clang-format -i $f)"
		bad=1
	fi
done < <(git ls-files '*.c' '*.h')
exit $bad
