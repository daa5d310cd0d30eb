#!/usr/bin/env bash
# Install what vhostd needs to build, test and benchmark on Debian 12 (root; Debian packages only).
# Skips apt entirely when everything is already installed.
set -euo pipefail

PACKAGES=(
	build-essential meson ninja-build pkg-config clang-format
	libdpdk-dev dpdk dpdk-dev           # librte_vhost, dpdk-testpmd
	libjansson-dev libnuma-dev liburing-dev
	libcmocka-dev python3-pytest        # unit and integration tests
	qemu-system-x86 qemu-system-common  # QEMU 7.2 guests, qemu-storage-daemon
	qemu-utils cpio xz-utils zstd kmod  # the guest kit (test/qemu/build-guest.sh)
	procps util-linux
	openvswitch-switch-dpdk gnuplot-nox linux-perf  # bench/run: OVS-DPDK, plots, profiles
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PACKAGES[@]} packages present"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing ${missing[*]}; run as root to install them" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
