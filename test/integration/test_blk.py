# SPDX-License-Identifier: BSD-3-Clause
"""vhost-user-blk devices, driven by the project's frontend driver (QEMU's vhost-user-blk-pci
role) on a real backing file: data reaches the file, FLUSH reaches the disk, RO refuses
writes, DISCARD/WRITE_ZEROES zero the range, hostile chains cost only an error, backing
failures become I/O errors, and a vhostd killed mid-load and restarted loses no acknowledged
write."""
import os
import signal
import subprocess
import time

import pytest

from blkutil import check_acked_on_disk, ops, pattern, pread, stop_with_requests_in_flight
from harness import Frontend, RpcError, Vhostd, queue_stats, wait_for

DISK = 64 << 20


def make_disk(path, size=DISK):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def attach_blk(rpc, name, sock, backing, **kw):
    return rpc.call("device_attach", name=name, kind="blk", socket=str(sock),
                    backing=str(backing), **kw)


def blk_fe(sock, *args, **kw):
    return Frontend("--kind", "blk", "--socket", sock, *args, **kw)


def test_writes_reach_the_file_and_read_back(vhostd, rpc, tmp_path):
    img = make_disk(tmp_path / "disk.img")
    dev = attach_blk(rpc, "d", tmp_path / "d.sock", img, queues=2)
    assert dev["state"] == "waiting" and dev["nb_queues"] == 2
    fe = blk_fe(tmp_path / "d.sock", "--blk-ops",
                "write:off=0,len=8192,seed=3;read:off=0,len=8192,seed=3;"
                "write:off=1048576,len=65536,seed=9,segs=7;write:off=2097152,len=4096,seed=5,"
                "indirect=1;read:off=1048576,len=65536,seed=9,segs=3;getid").run()
    assert fe.rc == 0, fe.error
    res = ops(fe.events)
    assert [o["status"] for o in res] == [0] * 6, res
    assert res[1]["verified"] and res[4]["verified"], res
    assert res[5]["id"] == "d"
    cfg = fe.summary["config"]
    assert cfg["capacity"] == DISK // 512 and cfg["num_queues"] == 2 and cfg["seg_max"] >= 7
    for off, length, seed in ((0, 8192, 3), (1048576, 65536, 9), (2097152, 4096, 5)):
        assert pread(img, off, length) == pattern(off, length, seed), f"offset {off}"
    q = queue_stats(rpc, "d")[0]
    assert q["write_ops"] == 3 and q["read_ops"] == 2 and q["io_errors"] == 0, q
    assert q["rx_bytes"] == 8192 + 65536 + 4096, q


def test_discard_and_write_zeroes_zero_the_range(vhostd, rpc, tmp_path):
    img = make_disk(tmp_path / "disk.img")
    attach_blk(rpc, "d", tmp_path / "d.sock", img)
    fe = blk_fe(tmp_path / "d.sock", "--blk-ops",
                "write:off=0,len=65536,seed=1;discard:off=4096,len=8192;"
                "wzeroes:off=20480,len=4096;wzeroes:off=32768,len=4096,unmap=1;"
                "read-zero:off=4096,len=8192;read:off=0,len=4096,seed=1").run()
    assert fe.rc == 0 and all(o["status"] == 0 for o in ops(fe.events)), ops(fe.events)
    assert pread(img, 4096, 8192) == bytes(8192)
    assert pread(img, 20480, 4096) == bytes(4096)
    assert pread(img, 32768, 4096) == bytes(4096)
    # Outside the ranges the data stays.
    assert pread(img, 0, 4096) == pattern(0, 4096, 1)
    assert pread(img, 12288, 8192) == pattern(12288, 8192, 1)
    q = queue_stats(rpc, "d")[0]
    assert q["discard_ops"] == 1 and q["write_zeroes_ops"] == 2


def test_readonly_device_refuses_writes(vhostd, rpc, tmp_path):
    img = make_disk(tmp_path / "disk.img")
    with open(img, "r+b") as f:
        f.write(pattern(0, 4096, 7))
    attach_blk(rpc, "ro", tmp_path / "ro.sock", img, readonly=True)
    fe = blk_fe(tmp_path / "ro.sock", "--blk-ops",
                "read:off=0,len=4096,seed=7;write:off=0,len=4096,seed=8;discard:off=0,len=4096;"
                "wzeroes:off=0,len=4096").run()
    res = ops(fe.events)
    assert res[0]["status"] == 0 and res[0]["verified"]
    assert res[1]["status"] == 1, "a write to a read-only device must fail with IOERR"
    assert res[2]["status"] != 0 and res[3]["status"] != 0, res
    assert int(fe.summary["features_acked"], 16) >> 5 & 1, "RO feature not negotiated"
    assert pread(img, 0, 4096) == pattern(0, 4096, 7), "the read-only disk changed"


def loop_device(path):
    try:
        out = subprocess.run(["losetup", "-f", "--show", str(path)], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"losetup unavailable: {e}")
    if out.returncode != 0:
        pytest.skip(f"cannot set up a loop device: {out.stderr.strip()}")
    return out.stdout.strip()


def flushes(dev):
    fields = open(f"/sys/block/{os.path.basename(dev)}/stat").read().split()
    if len(fields) < 17:
        pytest.skip("this kernel's block stat has no flush counters")
    return int(fields[15])


def test_flush_reaches_the_disk(vhostd, rpc, tmp_path):
    """On a loop block device, a virtio-blk FLUSH shows up as a flush of the block device."""
    dev = loop_device(make_disk(tmp_path / "disk.img", 16 << 20))
    try:
        attach_blk(rpc, "d", tmp_path / "d.sock", dev)
        before = flushes(dev)
        fe = blk_fe(tmp_path / "d.sock", "--blk-ops",
                    "write:off=0,len=4096,seed=2;flush;write:off=8192,len=4096,seed=2;flush").run()
        assert [o["status"] for o in ops(fe.events)] == [0, 0, 0, 0]
        assert flushes(dev) >= before + 2, "FLUSH did not reach the block device"
        assert queue_stats(rpc, "d")[0]["flush_ops"] == 2
        rpc.call("device_detach", name="d")
        assert pread(dev, 8192, 4096) == pattern(8192, 4096, 2)
    finally:
        subprocess.run(["losetup", "-d", dev], timeout=10)


HOSTILE = ["loop", "indirect-loop", "oob-addr", "oob-len", "short-header", "no-status",
           "status-in-readable", "too-many-segs", "beyond-capacity", "unaligned-len",
           "bad-type", "nested-indirect", "head-oob"]
EXPECT_STATUS = {"oob-addr": 1, "oob-len": 1, "short-header": 1, "too-many-segs": 1,
                 "beyond-capacity": 1, "unaligned-len": 1, "bad-type": 2}


def test_hostile_chains_cost_one_request_while_another_device_serves(vhostd, rpc, tmp_path):
    attach_blk(rpc, "victim", tmp_path / "v.sock", make_disk(tmp_path / "v.img"))
    attach_blk(rpc, "other", tmp_path / "o.sock", make_disk(tmp_path / "o.img"))
    other = blk_fe(tmp_path / "o.sock", "--blk-load", "--qd", 8, "--rw-mix", 50, "--verify",
                   "--duration-s", 4, cpu=0).start()
    time.sleep(0.5)
    hostile = blk_fe(tmp_path / "v.sock", "--blk-hostile", ",".join(HOSTILE)).run()
    other.wait()
    events = {e["kind"]: e for e in hostile.events if e.get("event") == "blk_hostile"}
    assert set(events) == set(HOSTILE), events.keys()
    for kind, e in events.items():
        assert e["device_alive"] and not e["backend_closed"], f"{kind}: {e}"
        if kind in EXPECT_STATUS:
            assert e["completed"] and e["status"] == EXPECT_STATUS[kind], f"{kind}: {e}"
        elif kind != "head-oob":
            # No status byte could be found: completed with used length 0.
            assert e["completed"] and e["used_len"] == 0, f"{kind}: {e}"
    assert vhostd.alive()
    q = queue_stats(rpc, "victim")[0]
    assert q["bad_requests"] >= len(HOSTILE) - 1, q
    s = other.summary
    assert other.rc == 0 and s["errors"] == 0 and s["verify_errors"] == 0, s
    assert s["iops"] > 100, s


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], timeout=10)


def test_backing_failures_become_io_errors(vhostd, rpc, tmp_path, small_fs):
    """ENOSPC (a full filesystem) and a file truncated underneath: IOERR to the guest, counted;
    the device stays attached and serves what it still can."""
    img = make_disk(small_fs / "disk.img", 16 << 20)  # sparse, larger than the filesystem
    attach_blk(rpc, "d", tmp_path / "d.sock", img)
    with open(small_fs / "fill", "wb") as f:  # use the filesystem up
        try:
            while True:
                f.write(b"x" * 65536)
                f.flush()
        except OSError:
            pass
    fe = blk_fe(tmp_path / "d.sock", "--blk-ops",
                "write:off=8388608,len=65536,seed=4;read-zero:off=0,len=4096").run()
    res = ops(fe.events)
    assert res[0]["status"] == 1, f"a write into a full filesystem must fail: {res[0]}"
    assert res[1]["status"] == 0, res[1]
    os.truncate(img, 1 << 20)  # shrink the backing underneath the device
    fe = blk_fe(tmp_path / "d.sock", "--blk-ops",
                "read:off=8388608,len=4096;read-zero:off=0,len=4096").run()
    res = ops(fe.events)
    assert res[0]["status"] == 1 and res[1]["status"] == 0, res
    q = queue_stats(rpc, "d")[0]
    assert q["io_errors"] == 2, q
    assert rpc.call("device_get", name="d")["state"] in ("waiting", "running")


def test_restart_mid_load_resubmits_and_loses_no_acknowledged_write(tmp_path):
    """SIGKILL vhostd twice under a qd-32 write load with a flush every 16 requests, each time
    while its inflight region marks requests taken and not completed, and restart it with the
    same config. The restarted vhostd must resubmit exactly those (less the newest, when the
    kill fell between its used-ring publish and its clear: vhost-user.rst has the restart drop
    it), and no acknowledged write may be lost."""
    img = make_disk(tmp_path / "disk.img")
    cfg = tmp_path / "vhostd.json"
    d = Vhostd(tmp_path, name="gen0", config=cfg).start()
    rpc = d.rpc()
    attach_blk(rpc, "d", tmp_path / "d.sock", img)
    rpc.call("config_save")
    ack = tmp_path / "acks.log"
    fe = blk_fe(tmp_path / "d.sock", "--blk-load", "--qd", 32, "--rw-mix", 0, "--flush-every", 16,
                "--verify", "--inflight", "--reconnect-timeout-s", 20, "--ack-log", ack,
                "--duration-s", 12, "--timeout-s", 90).start()
    resubmitted = []
    try:
        for gen in (1, 2):
            wait_for(lambda: queue_stats(rpc, "d")[0]["write_ops"] > 2000, timeout=20,
                     what="writes flowing")
            rpc.close()
            marked = stop_with_requests_in_flight(d.proc)
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
            d.logf.close()
            d = Vhostd(tmp_path, name=f"gen{gen}", config=cfg).start()
            rpc = d.rpc()
            wait_for(lambda: queue_stats(rpc, "d")[0]["write_ops"] > 0, timeout=20,
                     what="the frontend back on the restarted vhostd")
            n = queue_stats(rpc, "d")[0]["resubmitted"]
            assert marked - 1 <= n <= marked and n > 0, (gen, marked, n)
            resubmitted.append(n)
        fe.wait(timeout=90)
        assert d.stop() == 0
    finally:
        fe.kill()
    s = fe.summary
    assert s["reconnects"] == 2 and s["inflight"], s
    # The frontend read the same region at its last reconnect.
    assert s["inflight_pending_at_reconnect"] == marked, (s, marked)
    assert s["verify_errors"] == 0 and s["bad_used_ids"] == 0 and s["unacked_writes"] == 0, s
    assert s["errors"] == 0 and s["flushes"] > 0, s
    checked = check_acked_on_disk(img, ack)
    assert checked > 1000, f"only {checked} acknowledged writes"
    assert s["resubmitted_completions"] >= sum(resubmitted), (s, resubmitted)


def test_multiqueue_load_is_served_on_every_queue(vhostd, rpc, tmp_path):
    img = make_disk(tmp_path / "disk.img")
    attach_blk(rpc, "d", tmp_path / "d.sock", img, queues=2)
    ack = tmp_path / "acks.log"
    fe = blk_fe(tmp_path / "d.sock", "--queues", 2, "--blk-load", "--qd", 8, "--rw-mix", 50,
                "--verify", "--ack-log", ack, "--duration-s", 2).run()
    s = fe.summary
    assert fe.rc == 0 and s["errors"] == 0 and s["verify_errors"] == 0, s
    assert s["reads_verified"] > 0
    qs = queue_stats(rpc, "d")
    assert all(q["read_ops"] > 100 and q["write_ops"] > 100 for q in qs), qs
    assert check_acked_on_disk(img, ack) > 100
