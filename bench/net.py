# SPDX-License-Identifier: BSD-3-Clause
"""Net benchmark: the same generator against each backend, interleaved and repeated. run_once()
can profile CPU 1 with perf while it measures (perf_profile.py)."""
import shutil
import statistics
import subprocess
from pathlib import Path

from backends import Generator, TestpmdBackend, VhostdBackend, busy_estimate, testpmd_cycles

BUSY_BOTTLENECK = 90.0   # a backend at least this busy, and busier than the generator, limits


def run_once(backend, workdir, mem, size, warmup_s, seconds, perf=None):
    """One backend, one generator, one measurement. perf: (seconds, output path) to profile
    CPU 1 with perf record -g from the start of the measurement window."""
    socks = backend.start()
    gen = prof = None
    try:
        gen = Generator(workdir, socks, mem, size=size, name=f"gen-{backend.name}-{size}").start()
        gen.wait_reader()
        backend.wait_running()
        gen.go()
        backend.begin()
        if perf:
            prof = subprocess.Popen(["perf", "record", "-C", "1", "-g", "-o", str(perf[1]),
                                     "--", "sleep", str(perf[0])], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        m = gen.measure(warmup_s, seconds)
        if prof:
            prof.wait(timeout=perf[0] + 30)
            prof = None
        extra = backend.end()
        gen.stop()
        gcpp, gmhz = testpmd_cycles(gen.log())
        gen = None
        mhz = extra.pop("mhz", None) or gmhz
        if extra.get("busy_percent") is None:      # testpmd backend: from its cycles/packet
            extra["busy_percent"] = busy_estimate(extra.get("cycles_per_packet"), mhz,
                                                  m["mpps_total_whole_run"])
        return {**m, **extra, "generator_cycles_per_packet": gcpp,
                "generator_busy_percent": busy_estimate(gcpp, gmhz, m["mpps_total_whole_run"])}
    finally:
        if prof and prof.poll() is None:
            prof.kill()
            prof.wait(timeout=10)
        if gen is not None:
            gen.kill()
        backend.stop()
        mem.clean()


def stats(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def summarize(runs):
    ok = [r for r in runs if "error" not in r]
    s = {"mpps": stats([r["mpps"] for r in ok]),
         "cycles_per_packet": stats([r.get("cycles_per_packet") for r in ok]),
         "busy_percent": stats([r.get("busy_percent") for r in ok]),
         "generator_cycles_per_packet": stats([r.get("generator_cycles_per_packet") for r in ok]),
         "generator_busy_percent": stats([r.get("generator_busy_percent") for r in ok]),
         "errors": [r["error"] for r in runs if "error" in r], "runs": runs}
    b, g = s["busy_percent"]["median"], s["generator_busy_percent"]["median"]
    s["backend_is_bottleneck"] = (b is not None and g is not None and b >= BUSY_BOTTLENECK
                                  and b > g)
    return s


def ratio(a, b):
    return a / b if a is not None and b else None


def make_backends(mem, with_ovs, ovs_timeout=60):
    out = [("vhostd", lambda w: VhostdBackend(w, mem)),
           ("testpmd", lambda w: TestpmdBackend(w, mem))]
    if with_ovs:
        from ovs import OvsBackend
        out.append(("ovs", lambda w: OvsBackend(w, mem, start_timeout=ovs_timeout)))
    return out


def compare(workdir: Path, mem, sizes=(64, 1518), repeats=3, warmup_s=1, seconds=3,
            with_ovs=True, ovs_timeout=60):
    """Interleaved: for each repeat, each size, each backend in turn (order rotated per repeat).
    A backend whose run fails is recorded with the error; OVS failing to start is not retried."""
    backends = make_backends(mem, with_ovs, ovs_timeout)
    runs, broken = {}, {}
    for rep in range(repeats):
        order = backends[rep % len(backends):] + backends[:rep % len(backends)]
        for size in sizes:
            for name, make in order:
                if name in broken:
                    continue
                w = workdir / f"{name}-{size}-{rep}"
                shutil.rmtree(w, ignore_errors=True)
                w.mkdir(parents=True)
                try:
                    r = run_once(make(w), w, mem, size, warmup_s, seconds)
                except Exception as e:  # noqa: BLE001 - recorded, the others go on
                    r = {"error": f"{type(e).__name__}: {e}"[:2000]}
                    if name == "ovs" and not any("error" not in x for per in runs.values()
                                                 for x in per.get("ovs", [])):
                        broken[name] = r["error"]     # never worked here: skip the rest
                    print(f"  [{mem}] rep {rep + 1} {size:4d} B {name:8s} FAILED {r['error'][:300]}")
                runs.setdefault(size, {}).setdefault(name, []).append(r)
                if "error" not in r:
                    print(f"  [{mem}] rep {rep + 1} {size:4d} B {name:8s} {r['mpps']:6.2f} Mpps/dir "
                          f"{r.get('cycles_per_packet') or 0:6.1f} cyc/pkt busy "
                          f"{r.get('busy_percent') or 0:3.0f}% | generator "
                          f"{r.get('generator_cycles_per_packet') or 0:.0f} cyc/pkt "
                          f"{r.get('generator_busy_percent') or 0:3.0f}%", flush=True)
    out = {"memory": str(mem), "sizes": {}}
    for size, per in runs.items():
        s = {name: summarize(rs) for name, rs in per.items()}
        v = s["vhostd"]
        for other in ("testpmd", "ovs"):
            if other in s:
                o = s[other]
                # Medians, and best against best (highest Mpps, fewest cycles): this machine's
                # noise only ever slows a run down, so the best runs are the least disturbed.
                s[f"vhostd/{other}"] = {
                    "mpps": ratio(v["mpps"]["median"], o["mpps"]["median"]),
                    "cycles_per_packet": ratio(v["cycles_per_packet"]["median"],
                                               o["cycles_per_packet"]["median"]),
                    "mpps_best": ratio(v["mpps"]["max"], o["mpps"]["max"]),
                    "cycles_per_packet_best": ratio(v["cycles_per_packet"]["min"],
                                                    o["cycles_per_packet"]["min"])}
        out["sizes"][str(size)] = s
    if broken:
        out["ovs_error"] = broken.get("ovs")
    return out
