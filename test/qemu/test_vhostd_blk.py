# SPDX-License-Identifier: BSD-3-Clause
"""A real QEMU 7.2 guest (vhost-user-blk-pci) reads and writes a disk served by vhostd: plain,
and with iommu_platform=on without a vIOMMU (a confidential-guest setup, which
qemu-storage-daemon's export cannot serve: QEMU refuses it at plug). Behind a vIOMMU, a blk
device with policy platform refuses the session, saying why (vhostd's blk path cannot
translate)."""
import hashlib
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))
import guest  # noqa: E402
from harness import Vhostd, queue_stats, wait_for  # noqa: E402

_reason = guest.skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

IMG_SIZE = 16 << 20
HOST_OFF, HOST_LEN = 1 << 20, 4096
HOST = hashlib.sha256(b"vhostd host data").digest() * (HOST_LEN // 32)


@pytest.fixture
def disk(tmp_path):
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(IMG_SIZE)
        f.seek(HOST_OFF)
        f.write(HOST)
    d = Vhostd(tmp_path).start()
    rpc = d.rpc()

    def attach(policy):
        sock = tmp_path / "blk.sock"
        dev = rpc.call("device_attach", name="disk", kind="blk", socket=str(sock),
                       backing=str(img), policy={"iommu": policy})
        return rpc, str(sock), dev

    yield attach, img
    rpc.close()
    assert d.stop() == 0, d.log()[-3000:]


def boot(tmp_path, sock, **kw):
    return guest.boot("blk", blk_sockets=[sock], workdir=str(tmp_path / "qemu"), cpu=0,
                      args={"hostoff": HOST_OFF, "hostlen": HOST_LEN,
                            "hostmd5": hashlib.md5(HOST).hexdigest()}, **kw)


def check_on_disk(img, run):
    """What the guest wrote is in the backing file, read with pread."""
    assert run.result["offsets"], run.result
    fd = os.open(img, os.O_RDONLY)
    try:
        for off in run.result["offsets"]:
            assert os.pread(fd, 4096, off) == guest.blk_pattern(off), f"offset {off}"
    finally:
        os.close(fd)


def test_guest_disk_through_vhostd(disk, tmp_path):
    attach, img = disk
    rpc, sock, dev = attach("off")
    assert dev["iommu"]["offered"] is False
    run = boot(tmp_path, sock, timeout_s=150)
    assert run.ok and run.result["host_ok"], run.console[-3000:]
    check_on_disk(img, run)
    q = queue_stats(rpc, "disk")[0]
    assert q["write_ops"] >= 3 and q["read_ops"] >= 3 and q["io_errors"] == 0, q


def test_confidential_guest_disk_iommu_platform_without_viommu(disk, tmp_path):
    attach, img = disk
    rpc, sock, dev = attach("platform")
    assert dev["iommu"]["offered"] is True
    run = boot(tmp_path, sock, iommu_platform=True, timeout_s=150)
    assert run.ok and run.result["access_platform"] is True, run.console[-3000:]
    check_on_disk(img, run)
    got = rpc.call("device_get", name="disk")
    assert got["refused_sessions"] == 0 and got["sessions"] >= 1, got


def test_blk_behind_viommu_is_refused_with_the_reason(disk, tmp_path):
    attach, img = disk
    rpc, sock, dev = attach("platform")
    with pytest.raises(guest.GuestError):
        boot(tmp_path, sock, iommu_platform=True, viommu=True, timeout_s=40)
    got = rpc.call("device_get", name="disk")
    assert got["refused_sessions"] >= 1, got
    assert "cannot translate" in got["last_refusal"], got["last_refusal"]
    assert queue_stats(rpc, "disk")[0]["rx_packets"] == 0
