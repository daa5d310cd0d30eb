# SPDX-License-Identifier: BSD-3-Clause
"""Helpers for blk tests: the frontend driver's data pattern (test/frontend/README.md) and
checks of the backing file with pread."""
import os
import struct


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
