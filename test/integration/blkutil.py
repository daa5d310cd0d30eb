# SPDX-License-Identifier: BSD-3-Clause
"""Helpers for blk tests: the frontend driver's data pattern (test/frontend/README.md), checks
of the backing file with pread, and stopping vhostd with requests in flight."""
import os
import random
import signal
import struct
import time


def pattern(off, length, seed):
    """The bytes the frontend driver writes at disk offset off with this seed."""
    k = ((seed + 1) * 0x9E3779B97F4A7C15) % 2**64
    start = off & ~7
    n = (off + length - start + 7) // 8
    raw = struct.pack("<%dQ" % n, *(((start + 8 * i) ^ k) % 2**64 for i in range(n)))
    return raw[off - start:off - start + length]


def pread(path, off, length):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, off)
    finally:
        os.close(fd)


def acked_writes(ack_log):
    """{offset: (len, seed)}: the last acknowledged write of each block."""
    last = {}
    for line in open(ack_log):
        off, length, seed = (int(x, 0) for x in line.split())
        last[off] = (length, seed)
    return last


def check_acked_on_disk(path, ack_log):
    """Every acknowledged write is in the file. @return how many were checked."""
    last = acked_writes(ack_log)
    fd = os.open(path, os.O_RDONLY)
    try:
        for off, (length, seed) in last.items():
            got = os.pread(fd, length, off)
            assert got == pattern(off, length, seed), \
                f"acknowledged write at {off} (len {length}, seed {seed}) is not on disk"
    finally:
        os.close(fd)
    return len(last)


def ops(events):
    return [e for e in events if e.get("event") == "blk_op"]


def inflight_marked(pid):
    """Requests vhostd's inflight region marks in flight (vhost-user.rst, "Inflight I/O
    tracking", split layout: per queue a 16-byte header {features, version, desc_num,
    last_inflight_io, used_idx} and 16 bytes per descriptor, byte 0 = inflight; queues 64-byte
    aligned). Read through /proc from the memfd librte_vhost made for GET_INFLIGHT_FD."""
    fds = f"/proc/{pid}/fd"
    for fd in os.listdir(fds):
        try:
            if not os.readlink(f"{fds}/{fd}").startswith("/memfd:vhost-inflight"):
                continue
            with open(f"{fds}/{fd}", "rb") as f:
                region = f.read()
        except OSError:
            continue
        marked, at = 0, 0
        while at + 16 <= len(region):
            version, desc_num = struct.unpack_from("<HH", region, at + 8)
            if version == 0 or desc_num == 0:
                break
            marked += sum(region[at + 16 + 16 * d] == 1 for d in range(desc_num))
            at += (16 + 16 * desc_num + 63) & ~63
        return marked
    return 0


def _stopped(pid):
    """Every thread of pid is stopped (io_uring's iou-* workers do not take SIGSTOP)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().startswith("iou-"):
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("T", "t"):
            return False
    return True


def stop_with_requests_in_flight(proc, at_least=2, timeout=30.0):
    """SIGSTOP vhostd at moments until its inflight region marks at least at_least requests
    taken and not completed; return with it stopped, and that count. A kill now lands with
    those requests in flight."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        proc.send_signal(signal.SIGSTOP)
        stop_end = time.monotonic() + 2
        while not _stopped(proc.pid) and time.monotonic() < stop_end:
            time.sleep(0.0005)
        marked = inflight_marked(proc.pid)
        if marked >= at_least and _stopped(proc.pid):
            return marked
        proc.send_signal(signal.SIGCONT)
        time.sleep(random.uniform(0.001, 0.02))
    raise AssertionError(f"vhostd never had {at_least} requests in flight in {timeout} s")
