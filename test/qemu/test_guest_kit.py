"""Proves the QEMU guest kit against PEER vhost-user backends (not vhostd).

    bash test/qemu/build-guest.sh && /usr/bin/python3 -m pytest -v test/qemu/test_guest_kit.py

net: dpdk-testpmd (net_vhost, icmpecho) -- plain, iommu_platform=on without a
     vIOMMU, and behind intel-iommu (testpmd translates through its IOTLB).
blk: qemu-storage-daemon (vhost-user-blk export of a raw file).
QEMU runs on the first host CPU, the backend on the last one.
"""

import hashlib
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest  # noqa: E402
import peers  # noqa: E402

BIT_ACCESS_PLATFORM = 1 << 33

_reason = guest.skip_reason()
needs_guest = pytest.mark.skipif(_reason is not None, reason=_reason or "")

GUEST_IP, PEER_IP = "10.0.0.1", "10.0.0.2"
TIMEOUT_S = 120


def _need_testpmd():
    r = peers.testpmd_skip_reason()
    if r:
        pytest.skip(r)


def _need_qsd():
    r = peers.qsd_skip_reason()
    if r:
        pytest.skip(r)


@pytest.fixture
def testpmd(tmp_path):
    started = []

    def start(**kw):
        _need_testpmd()
        tp = peers.Testpmd(str(tmp_path / f"tp{len(started)}"), **kw)
        started.append(tp)
        tp.wait_ready()
        return tp

    yield start
    for tp in started:
        tp.stop()


@pytest.fixture
def qsd(tmp_path):
    started = []

    def start(image, **kw):
        _need_qsd()
        d = peers.StorageDaemon(str(tmp_path / f"qsd{len(started)}"), image, **kw)
        started.append(d)
        d.wait_ready()
        return d

    yield start
    for d in started:
        d.stop()


def _boot(tmp_path, name, **kw):
    wd = tmp_path / name
    kw.setdefault("timeout_s", TIMEOUT_S)
    kw.setdefault("cpu", peers.qemu_cpu())
    return guest.boot(workdir=str(wd), **kw)


def _net_args(count, need=None):
    a = {"ip": GUEST_IP, "peer": PEER_IP, "count": count}
    if need is not None:
        a["need"] = need
    return a


def _assert_replies_from(tp, run):
    res = run.result
    assert res["peer_mac"] == tp.port_mac(), (res, tp.port_mac())
    assert res["tx_packets"] >= res["sent"]


# ------------------------------------------------------------------ guest alone

@needs_guest
def test_guest_boots_without_devices(tmp_path):
    run = _boot(tmp_path, "info", job="info", timeout_s=60)
    assert run.ok, run.console
    assert run.result["devices"] == []
    assert run.result["dmar"] is False
    assert run.returncode == 0 and not run.killed
    print(f"info boot: init at {run.boot_s}s guest uptime, qemu wall {run.elapsed_s:.1f}s")


# ------------------------------------------------------------------ net (testpmd)

@needs_guest
def test_net_plain(testpmd, tmp_path):
    tp = testpmd()
    run = _boot(tmp_path, "net", job="net", net_sockets=[tp.sock], args=_net_args(5))
    assert run.ok, run.console
    assert run.result["sent"] == 5 and run.result["received"] == 5
    assert run.result["access_platform"] is False
    assert run.result["iommu_group"] is False
    _assert_replies_from(tp, run)
    feats = tp.negotiated_features()
    assert feats and not feats[-1] & BIT_ACCESS_PLATFORM
    tp.stop()
    st = tp.forward_stats()
    assert st.get("RX-packets", 0) >= 5 and st.get("TX-packets", 0) >= 5, st
    print(f"net plain: qemu wall {run.elapsed_s:.1f}s, testpmd {st}")


@needs_guest
def test_net_iommu_platform_refused_without_backend_bit33(testpmd, tmp_path):
    """testpmd without iommu-support does not offer bit 33: QEMU 7.2 refuses the device."""
    tp = testpmd(iommu_support=False)
    run = _boot(tmp_path, "refused", job="net", net_sockets=[tp.sock], iommu_platform=True,
                args=_net_args(1), timeout_s=60, check=False)
    assert run.returncode not in (0, None), run.console
    assert run.result is None
    assert guest.ERR_IOMMU_PLATFORM_UNSUPPORTED in run.stderr, run.stderr
    assert tp.alive(), "testpmd died after QEMU's refusal"
    print("refused:", run.stderr.strip())


@needs_guest
def test_net_iommu_platform_no_viommu(testpmd, tmp_path):
    """Confidential-guest style: guest negotiates bit 33, QEMU clears it towards the backend."""
    tp = testpmd(iommu_support=True)
    run = _boot(tmp_path, "net", job="net", net_sockets=[tp.sock], iommu_platform=True,
                args=_net_args(5))
    assert run.ok, run.console
    assert run.result["received"] == 5
    assert run.result["access_platform"] is True     # guest side: bit 33 negotiated
    assert run.result["iommu_group"] is False        # no vIOMMU
    assert run.result["dmar"] is False
    _assert_replies_from(tp, run)
    feats = tp.negotiated_features()
    assert feats and not feats[-1] & BIT_ACCESS_PLATFORM, [hex(f) for f in feats]
    assert run.iotlb_misses == 0
    print(f"net iommu_platform: qemu wall {run.elapsed_s:.1f}s, backend features {feats[-1]:#x}")


@needs_guest
def test_net_viommu(testpmd, tmp_path):
    """intel-iommu: bit 33 reaches the backend, which translates IOVAs (IOTLB misses)."""
    tp = testpmd(iommu_support=True, retry=True)
    run = _boot(tmp_path, "net", job="net", net_sockets=[tp.sock], iommu_platform=True,
                viommu=True, args=_net_args(10, need=8))
    assert run.ok, run.console
    assert run.result["received"] >= 8
    assert run.result["access_platform"] is True
    assert run.result["iommu_group"] is True
    assert run.result["dmar"] is True
    _assert_replies_from(tp, run)
    feats = tp.negotiated_features()
    assert feats and feats[-1] & BIT_ACCESS_PLATFORM, [hex(f) for f in feats]
    assert run.iotlb_misses > 0, run.trace[-2000:]
    assert run.iotlb_miss_failures == 0, run.trace[-2000:]
    tp.stop()
    print(f"net vIOMMU: qemu wall {run.elapsed_s:.1f}s, received {run.result['received']}/10, "
          f"iotlb misses {run.iotlb_misses}, testpmd {tp.forward_stats()}")


# ------------------------------------------------------------------ blk (qemu-storage-daemon)

IMG_SIZE = 16 << 20
HOST_OFF, HOST_LEN = 1 << 20, 4096


def _make_image(path):
    host = hashlib.sha256(b"vhtest host data").digest() * (HOST_LEN // 32)
    with open(path, "wb") as f:
        f.truncate(IMG_SIZE)
        f.seek(HOST_OFF)
        f.write(host)
    return host


@needs_guest
def test_blk_plain(qsd, tmp_path):
    img = str(tmp_path / "disk.img")
    host = _make_image(img)
    d = qsd(img)
    offs = [0, 3 * 4096, IMG_SIZE // 2, IMG_SIZE - 4096]
    run = _boot(tmp_path, "blk", job="blk", blk_sockets=[d.sock],
                args={"offs": offs, "hostoff": HOST_OFF, "hostlen": HOST_LEN,
                      "hostmd5": hashlib.md5(host).hexdigest()})
    assert run.ok, run.console
    r = run.result
    assert r["size"] == IMG_SIZE
    assert r["written"] == r["verified"] == 4096 * len(offs)
    assert r["host_ok"] is True and r["host_bytes"] == HOST_LEN
    assert r["access_platform"] is False
    # what the guest wrote is in the host file
    fd = os.open(img, os.O_RDONLY)
    try:
        for o in offs:
            assert os.pread(fd, 4096, o) == guest.blk_pattern(o), f"offset {o}"
        assert os.pread(fd, HOST_LEN, HOST_OFF) == host
    finally:
        os.close(fd)
    print(f"blk plain: qemu wall {run.elapsed_s:.1f}s, read mode {r['read_mode']}")


@needs_guest
@pytest.mark.parametrize("viommu", [False, True], ids=["no-viommu", "viommu"])
def test_blk_iommu_platform_refused(qsd, tmp_path, viommu):
    """qemu-storage-daemon does not offer bit 33: QEMU 7.2 refuses iommu_platform=on."""
    img = str(tmp_path / "disk.img")
    _make_image(img)
    d = qsd(img)
    run = _boot(tmp_path, "refused", job="blk", blk_sockets=[d.sock], iommu_platform=True,
                viommu=viommu, timeout_s=60, check=False)
    assert run.returncode not in (0, None), run.console
    assert run.result is None
    assert guest.ERR_IOMMU_PLATFORM_UNSUPPORTED in run.stderr, run.stderr
    assert d.alive(), "qemu-storage-daemon died after QEMU's refusal"
    print("refused:", run.stderr.strip())


# ------------------------------------------------------------------ kit internals

def test_qemu_argv_shape():
    argv = guest.qemu_argv("net", net_sockets=["/s,x"], blk_sockets=["/b"],
                           iommu_platform=True, viommu=True, cpu=None)
    line = " ".join(argv)
    assert "memory-backend-memfd,id=mem,size=256M,share=on" in line
    assert "q35,accel=tcg,memory-backend=mem" in line
    assert "intel-iommu,intremap=on,device-iotlb=on" in line
    assert "path=/s,,x" in line
    assert line.count("vectors=0") == 2 and line.count("disable-legacy=on") == 2
    assert line.count("iommu_platform=on,ats=on") == 2
    assert "intel_iommu=on" in line and "iommu.strict=1" in line
    assert argv.index("-device") < argv.index("intel-iommu,intremap=on,device-iotlb=on") \
        < [i for i, a in enumerate(argv) if a.startswith("virtio-net-pci")][0]


def test_parse_result_tolerates_noise():
    con = ("junk\nVHTEST-RESULT {\"job\":\"net\",\"ok\":true}[    4.7] reboot: Power down\n"
           "VHTEST-RESULT {\"job\":\"net\",\"ok\":false}\r\n")
    assert guest.parse_result(con) == {"job": "net", "ok": False}
    assert guest.parse_result("nothing") is None
