# SPDX-License-Identifier: BSD-3-Clause
"""A real QEMU 7.2 guest (TCG, q35) pings through vhostd: its virtio-net device is a vhostd net
device cross-connected to a dpdk-testpmd virtio-user port in icmpecho mode, which answers ARP
and ICMP echo. Without a vIOMMU, with iommu_platform=on (a confidential-guest setup: QEMU
strips bit 33) and behind intel-iommu (vhostd translates through the IOTLB).

CPUs: QEMU on CPU 0; vhostd's worker and the echo peer share CPU 1."""
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))
import guest  # noqa: E402
from harness import Testpmd, Vhostd, queue_stats, wait_for  # noqa: E402

_reason = guest.skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

NET_ARGS = {"ip": "10.0.0.1", "peer": "10.0.0.2", "count": 10, "need": 8, "interval": 0.2}


@pytest.fixture
def setup(tmp_path):
    """vhostd with device 'vm' (the guest's) cross-connected to 'echo' (testpmd icmpecho)."""
    d = Vhostd(tmp_path).start()
    rpc = d.rpc()
    peers = []

    def make(policy):
        vm, echo = tmp_path / "vm.sock", tmp_path / "echo.sock"
        rpc.call("device_attach", name="vm", kind="net", socket=str(vm), policy={"iommu": policy})
        rpc.call("device_attach", name="echo", kind="net", socket=str(echo))
        rpc.call("xconnect_create", a="vm", b="echo")
        tp = Testpmd(tmp_path, [echo], name="echo", fwd="icmpecho", start_cmd="start",
                     cpu=1).start()
        peers.append(tp)
        wait_for(lambda: rpc.call("device_get", name="echo")["state"] == "running",
                 timeout=20, what="the echo peer running")
        return rpc, str(vm)

    yield make
    for tp in peers:
        tp.stop()
    rpc.close()
    assert d.stop() == 0, d.log()[-3000:]


def boot(tmp_path, sock, **kw):
    return guest.boot("net", net_sockets=[sock], args=NET_ARGS, workdir=str(tmp_path / "qemu"),
                      cpu=0, timeout_s=150, **kw)


def test_guest_pings_through_vhostd(setup, tmp_path):
    rpc, sock = setup("off")
    run = boot(tmp_path, sock)
    assert run.ok, run.console[-3000:]
    assert run.result["received"] >= 8 and run.result["access_platform"] is False
    vm = queue_stats(rpc, "vm")[0]
    assert vm["rx_packets"] >= 10 and vm["tx_packets"] >= 8, vm
    assert rpc.call("device_get", name="vm")["sessions"] == 1


def test_confidential_guest_iommu_platform_without_viommu(setup, tmp_path):
    """policy platform offers bit 33, so QEMU accepts iommu_platform=on; with no vIOMMU it
    strips bit 33 from SET_FEATURES and vhostd serves plain guest-physical addresses."""
    rpc, sock = setup("platform")
    run = boot(tmp_path, sock, iommu_platform=True)
    assert run.ok, run.console[-3000:]
    assert run.result["access_platform"] is True  # the guest negotiated it
    assert run.iotlb_misses == 0
    vm = queue_stats(rpc, "vm")[0]
    assert vm["iotlb_misses"] == 0 and vm["rx_packets"] >= 10, vm


def test_guest_behind_viommu_is_translated(setup, tmp_path):
    rpc, sock = setup("translate")
    run = boot(tmp_path, sock, iommu_platform=True, viommu=True)
    assert run.ok, run.console[-3000:]
    assert run.result["access_platform"] is True and run.result["iommu_group"] is True
    assert run.iotlb_misses > 0, "QEMU saw no IOTLB miss from vhostd"
    vm = queue_stats(rpc, "vm")[0]
    assert vm["iotlb_misses"] > 0 and vm["iotlb_hits"] > 0, vm


def test_lazy_flush_guest_behind_viommu(setup, tmp_path):
    """A guest with lazy IOMMU flushing invalidates whole ranges ending at 2^64; vhostd clamps
    them, so no stale translation is used (DPDK 22.11 alone keeps them; see test/qemu/README)."""
    rpc, sock = setup("translate")
    run = boot(tmp_path, sock, iommu_platform=True, viommu=True, iommu_strict=False)
    assert run.ok, run.console[-3000:]
    msgs = rpc.call("device_get", name="vm")["iommu"]["iotlb_messages"]
    assert msgs["invalidations_clamped"] > 0, msgs


def test_iommu_platform_refused_when_policy_is_off(setup, tmp_path):
    """policy off never offers bit 33: QEMU 7.2 refuses iommu_platform=on (operator's choice)."""
    rpc, sock = setup("off")
    with pytest.raises(guest.GuestError) as e:
        boot(tmp_path, sock, iommu_platform=True)
    assert guest.ERR_IOMMU_PLATFORM_UNSUPPORTED in str(e.value)
    assert rpc.call("device_get", name="vm")["sessions"] == 0
