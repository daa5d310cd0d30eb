# SPDX-License-Identifier: BSD-3-Clause
"""blk benchmark: 4 KiB random read and random write at queue depth 1 and 32, vhostd vs
qemu-storage-daemon's vhost-user-blk export, on the same backing file, driven by the same
frontend (test/frontend --kind blk --blk-load) on CPU 0 with each backend on CPU 1, repeats
interleaved. Reports IOPS and p50/p99 latency, and the ratios."""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test" / "integration"))
from harness import Frontend, Vhostd, wait_for  # noqa: E402

QSD = "/usr/bin/qemu-storage-daemon"
DISK_BYTES = 256 << 20
TESTS = [("randread", 1), ("randread", 32), ("randwrite", 1), ("randwrite", 32)]


def make_backing(path):
    """A fully written file, so reads return real data from the page cache for both."""
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(DISK_BYTES >> 20):
            f.write(chunk)


class VhostdBlk:
    name = "vhostd"

    def __init__(self, work, img):
        self.work, self.img = work, img

    def start(self):
        self.d = Vhostd(self.work, name="vhostd-blk").start()
        self.rpc = self.d.rpc()
        sock = self.work / "vblk.sock"
        self.rpc.call("device_attach", name="disk", kind="blk", socket=str(sock),
                      backing=str(self.img))
        return sock

    def stop(self):
        self.rpc.close()
        if self.d.stop() != 0:
            raise RuntimeError("vhostd did not stop cleanly")


class QsdBlk:
    """qemu-storage-daemon (Debian's QEMU 7.2) exporting the same file, pinned to CPU 1."""
    name = "qsd"

    def __init__(self, work, img):
        self.work, self.img = work, img

    def start(self):
        sock = self.work / "qblk.sock"
        argv = ["taskset", "-c", "1", QSD, "--blockdev",
                f"driver=file,node-name=f,filename={self.img},cache.direct=off",
                "--export", "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,"
                f"addr.path={sock},writable=on"]
        self.log = open(self.work / "qsd.log", "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        wait_for(sock.exists, timeout=20, what="qemu-storage-daemon's socket")
        return sock

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def load(sock, kind, qd, seconds):
    fe = Frontend("--kind", "blk", "--socket", sock, "--blk-load", "--qd", qd, "--bs", 4096,
                  "--rw-mix", 100 if kind == "randread" else 0, "--random",
                  "--region-bytes", DISK_BYTES, "--duration-s", seconds,
                  "--timeout-s", seconds + 30, cpu=0).run(timeout=seconds + 60)
    s = fe.summary
    if fe.rc != 0 or s.get("errors"):
        raise RuntimeError(f"blk load failed: rc {fe.rc} {fe.error} {fe.stderr[-500:]}")
    return {"iops": s["iops"], "p50_us": s["lat_us"]["p50"], "p99_us": s["lat_us"]["p99"],
            "avg_us": s["lat_us"]["avg"]}


def run(workdir: Path, quick=False, repeats=3, seconds=5):
    workdir = Path(workdir) / "blk"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    if not os.path.exists(QSD):
        return {"skipped": f"{QSD} is not installed"}
    img = workdir / "disk.img"
    make_backing(img)
    if quick:
        repeats, seconds = 1, 1
    runs = {}
    for rep in range(repeats):
        for kind, qd in TESTS:
            for backend in (VhostdBlk(workdir, img), QsdBlk(workdir, img)):
                sock = backend.start()
                try:
                    time.sleep(0.3)
                    r = load(sock, kind, qd, seconds)
                finally:
                    backend.stop()
                runs.setdefault(f"{kind}-qd{qd}", {}).setdefault(backend.name, []).append(r)
                print(f"  rep {rep + 1} blk {kind:9s} qd{qd:<2d} {backend.name:7s} "
                      f"{r['iops']:9.0f} IOPS  p50 {r['p50_us']:6.1f} us  "
                      f"p99 {r['p99_us']:7.1f} us", flush=True)
    summary = {}
    for test, per in runs.items():
        summary[test] = {}
        for name, rs in per.items():
            summary[test][name] = {
                "iops_median": statistics.median(r["iops"] for r in rs),
                "iops_min": min(r["iops"] for r in rs), "iops_max": max(r["iops"] for r in rs),
                "p50_us_median": statistics.median(r["p50_us"] for r in rs),
                "p99_us_median": statistics.median(r["p99_us"] for r in rs), "runs": rs}
        v, q = summary[test]["vhostd"], summary[test]["qsd"]
        summary[test]["iops_ratio"] = v["iops_median"] / q["iops_median"]
        summary[test]["p99_ratio"] = v["p99_us_median"] / q["p99_us_median"]
    return summary


if __name__ == "__main__":
    import json
    res = run(Path("/tmp/vhostd-bench-blk"), quick="--quick" in sys.argv)
    print(json.dumps({k: {n: v for n, v in t.items() if n != "runs"} if isinstance(t, dict)
                      else t for k, t in res.items()}, indent=1, default=str))
