# SPDX-License-Identifier: BSD-3-Clause
"""Scale benchmark (vhostd only):
  - throughput of the measured pair (64 B, the net generator) with 0, 1, 8, 64 idle devices
    attached beside it (attached, no frontend), interleaved within one vhostd and generator
    run; ratio to the single pair (target >= 0.9);
  - attach and detach latency for N (1000) devices, through the vhostctl binary (one process per
    call) and through one persistent RPC connection: p50/p99 and totals (target: 1000 attaches
    in under 5 s in all, detach as fast);
  - memory per idle device: vhostd's VmRSS delta over the N devices / N."""
import os
import shutil
import subprocess
import time
from pathlib import Path

from backends import Generator, VhostdBackend
from harness import VHOSTCTL, Vhostd, wait_for
from net import ratio, stats

IDLE = (0, 1, 8, 64)
TPUT_TARGET = 0.9
ATTACH_TARGET_S = 5.0


def _window(vd, gen, settle_s, seconds):
    """Mpps per direction and vhostd cycles/packet over the generator's statistics periods that
    start settle_s from now and last seconds."""
    time.sleep(settle_s)
    t0 = gen.elapsed()      # the periods out so far end at most one period before now
    vd.begin()
    picked = wait_for(lambda: gen.window(t0 + 0.01, seconds), timeout=seconds + 20,
                      interval=0.2, what="generator statistics")
    v = vd.end()
    dirs = gen.rate(picked)
    return {"mpps": sum(dirs) / 2, "mpps_dir": dirs, "cycles_per_packet": v["cycles_per_packet"],
            "busy_percent": v["busy_percent"], "window_s": sum(x["dt"] for x in picked)}


def throughput(workdir: Path, mem, repeats=3, warmup_s=1, seconds=2, idle=IDLE):
    """One vhostd, one generator (as in net, 64 B) on the measured pair; idle devices attached
    and detached between windows, in the order 0 1 8 64 64 8 1 0 0 1 ...: the same processes
    throughout, so no start-to-start variance."""
    w = Path(workdir) / "scale" / "throughput"
    shutil.rmtree(w, ignore_errors=True)
    w.mkdir(parents=True)
    runs = {n: [] for n in idle}
    vd = VhostdBackend(w, mem)
    socks = vd.start()
    gen = None
    attached = 0
    try:
        gen = Generator(w, socks, mem, size=64, name="gen-scale").start()
        gen.wait_reader()
        vd.wait_running()
        gen.go()
        time.sleep(warmup_s)
        # ABBA passes, an even number of them (but one for --quick): throughput drifts over a
        # long run here (the worker's cycles/packet too), and this order cancels a linear drift.
        passes = 1 if repeats == 1 else repeats + repeats % 2
        for rep in range(passes):
            for n in (idle if rep % 2 == 0 else tuple(reversed(idle))):
                t = time.perf_counter()
                while attached < n:
                    vd.rpc.call("device_attach", name=f"idle{attached}", kind="net",
                                socket=str(w / f"idle{attached}.sock"))
                    attached += 1
                while attached > n:
                    attached -= 1
                    vd.rpc.call("device_detach", name=f"idle{attached}")
                r = _window(vd, gen, max(1, warmup_s), seconds)
                r["change_s"] = time.perf_counter() - t
                runs[n].append(r)
                print(f"  rep {rep + 1} scale {n:2d} idle devices {r['mpps']:6.2f} Mpps/dir "
                      f"{r['cycles_per_packet'] or 0:6.1f} cyc/pkt", flush=True)
        gen.stop()
        gen = None
    finally:
        if gen is not None:
            gen.kill()
        vd.stop()
        mem.clean()
    out = {"memory": str(mem), "size": 64, "target": TPUT_TARGET, "seconds": seconds,
           "method": "one vhostd and one generator; idle devices attached/detached between "
                     "windows", "idle": {}}
    for n, rs in runs.items():
        out["idle"][str(n)] = {"mpps": stats([r["mpps"] for r in rs]),
                               "cycles_per_packet": stats([r.get("cycles_per_packet")
                                                           for r in rs]),
                               "errors": [], "runs": rs}
    base = out["idle"]["0"]
    for n in idle[1:]:
        d = out["idle"][str(n)]
        d["ratio_mpps"] = ratio(d["mpps"]["median"], base["mpps"]["median"])
        d["ratio_cycles"] = ratio(base["cycles_per_packet"]["median"],
                                  d["cycles_per_packet"]["median"])
        d["meets_target"] = d["ratio_mpps"] is not None and d["ratio_mpps"] >= TPUT_TARGET
    return out


def vm_rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def _lat(ts):
    ms = sorted(t * 1e3 for t in ts)
    if not ms:
        return {}
    pct = lambda p: ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))]  # noqa: E731
    return {"n": len(ms), "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": ms[-1],
            "total_s": sum(ms) / 1e3}


def _vhostctl(rpc_sock, *args):
    r = subprocess.run([str(VHOSTCTL), "-s", str(rpc_sock), "-t", "10000", *args],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"vhostctl {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")


def attach_detach(workdir: Path, mem, n=1000):
    """Attach then detach n devices through one RPC connection (VmRSS before, after attach,
    after detach), then the same through vhostctl, one process per call."""
    w = Path(workdir) / "scale" / "attach"
    shutil.rmtree(w, ignore_errors=True)
    (w / "s").mkdir(parents=True)
    eal = mem.eal(f"bs{os.getpid()}") + ["--no-pci", "-l", "0-1", "--main-lcore", "0",
                                        "--log-level", "lib.vhost.*:notice"]
    d = Vhostd(w, name="vhostd", eal=eal).start()
    out = {"devices": n, "memory": str(mem), "target_total_s": ATTACH_TARGET_S}
    try:
        pid = d.proc.pid
        rpc = d.rpc()
        try:
            time.sleep(0.5)
            rss0 = vm_rss_kb(pid)
            att, det = [], []
            wall = time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                rpc.call("device_attach", name=f"r{i}", kind="net", socket=str(w / "s" / f"r{i}"))
                att.append(time.perf_counter() - t)
            att_wall = time.perf_counter() - wall
            time.sleep(0.5)
            rss1 = vm_rss_kb(pid)
            wall = time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                rpc.call("device_detach", name=f"r{i}")
                det.append(time.perf_counter() - t)
            det_wall = time.perf_counter() - wall
            time.sleep(0.5)
            rss2 = vm_rss_kb(pid)
        finally:
            rpc.close()
        out["rpc"] = {"attach": {**_lat(att), "wall_s": att_wall},
                      "detach": {**_lat(det), "wall_s": det_wall}}
        out["memory_per_device"] = {"vmrss_before_kb": rss0, "vmrss_attached_kb": rss1,
                                    "vmrss_after_detach_kb": rss2,
                                    "kb_per_device": (rss1 - rss0) / n}
        print(f"  scale attach/detach x{n} over one RPC connection: attach p50 "
              f"{out['rpc']['attach']['p50_ms']:.2f} ms p99 {out['rpc']['attach']['p99_ms']:.2f}"
              f" ms, {att_wall:.2f} s in all; detach {det_wall:.2f} s; "
              f"{(rss1 - rss0) / n:.1f} KiB VmRSS per idle device", flush=True)
        att, det = [], []
        wall = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            _vhostctl(d.rpc_path, "device_attach", f"name=c{i}", "kind=net",
                      f"socket={w / 's' / f'c{i}'}")
            att.append(time.perf_counter() - t)
        att_wall = time.perf_counter() - wall
        wall = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            _vhostctl(d.rpc_path, "device_detach", f"name=c{i}")
            det.append(time.perf_counter() - t)
        det_wall = time.perf_counter() - wall
        out["vhostctl"] = {"attach": {**_lat(att), "wall_s": att_wall},
                           "detach": {**_lat(det), "wall_s": det_wall}}
        print(f"  scale attach/detach x{n} through vhostctl: attach p50 "
              f"{out['vhostctl']['attach']['p50_ms']:.2f} ms p99 "
              f"{out['vhostctl']['attach']['p99_ms']:.2f} ms, {att_wall:.2f} s in all; "
              f"detach {det_wall:.2f} s", flush=True)
        for k in ("rpc", "vhostctl"):
            out[k]["meets_target"] = (out[k]["attach"]["wall_s"] < ATTACH_TARGET_S and
                                      out[k]["detach"]["wall_s"] < ATTACH_TARGET_S)
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {e}"[:2000]
        print(f"  scale attach/detach FAILED {out['error'][:300]}")
    finally:
        rc = d.stop(timeout=60)
        mem.clean()
        if rc != 0:
            out.setdefault("error", f"vhostd exited {rc}")
    return out


def run(workdir: Path, mem, repeats=3, warmup_s=1, seconds=2, devices=1000):
    try:
        tp = throughput(workdir, mem, repeats, warmup_s, seconds)
    except Exception as e:  # noqa: BLE001
        tp = {"error": f"{type(e).__name__}: {e}"[:2000]}
        print(f"  scale throughput FAILED {tp['error'][:300]}")
    return {"throughput": tp, "attach": attach_detach(workdir, mem, devices)}
