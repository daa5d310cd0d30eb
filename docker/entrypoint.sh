#!/bin/sh
# Start vhostd with its RPC socket and config under /run/vhostd (a volume shared with the host).
# VHOSTD_EAL overrides the EAL options (default: no hugepages, lcores 0-1, see vhostd -h).
set -e
mkdir -p /run/vhostd
exec /usr/bin/vhostd -s /run/vhostd/vhostd.sock -c /run/vhostd/vhostd.json "$@" \
	-- ${VHOSTD_EAL:---no-huge -m 512 --no-pci -l 0-1 --main-lcore 0 --file-prefix vhostd}
