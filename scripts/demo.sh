#!/usr/bin/env bash
# README command 1: install, build, and run the main job (vhostd cross-connecting two vhost-user
# ports while dpdk-testpmd pushes traffic through them for 10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh >/dev/null
exec /usr/bin/python3 scripts/demo.py "$@"
