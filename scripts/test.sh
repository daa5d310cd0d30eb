#!/usr/bin/env bash
# README command 2: install, build and run the whole test suite: format check, unit tests
# (cmocka, via meson test) and integration tests (pytest: real vhostd, real dpdk-testpmd
# virtio-user frontends, the project's frontend driver, QEMU 7.2 guests, and a smoke run of
# bench/run --quick that checks only that it works and writes its files). Ends with a line
# "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1
bash scripts/build.sh >/dev/null || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

results=build/test-results
rm -rf "$results"
mkdir -p "$results"

echo "== format (clang-format)"
if bash scripts/check-format.sh >"$results/format.log" 2>&1; then
	echo "format: ok"; echo pass >"$results/format.result"
else
	cat "$results/format.log"; echo fail >"$results/format.result"
fi

echo "== unit tests (cmocka)"
CMOCKA_MESSAGE_OUTPUT=TAP meson test -C build --suite unit --print-errorlogs \
	>"$results/unit.log" 2>&1
grep -E "^ *[0-9]+/[0-9]+ " "$results/unit.log"

echo "== integration tests (pytest)"
/usr/bin/python3 -m pytest -p no:cacheprovider -q -rfEs --junitxml="$results/pytest.xml" \
	${PYTEST_ARGS:-} test/integration test/qemu bench 2>&1 | tee "$results/pytest.log" | \
	grep -vE "^\s*$"

/usr/bin/python3 scripts/summarize.py "$results"
