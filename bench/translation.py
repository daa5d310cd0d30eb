# SPDX-License-Identifier: BSD-3-Clause
"""Translation benchmark: the same xconnect traffic through vhostd with ACCESS_PLATFORM
translation negotiated (frontend --iommu viommu --iotlb-prefill, devices with
policy.iommu=translate) vs without (--iommu off, policy.iommu=off). Traffic from the project's
frontend driver on CPU 0 (one process driving both devices: device a sends, device b receives
and verifies), vhostd's worker on CPU 1. Reports Mpps, vhostd's cycles/packet, IOTLB hits,
misses and wait, and the on/off ratios (target: Mpps on/off >= 0.85).

A third configuration, "counted", splits the cost: policy.iommu=platform with a frontend that
does not negotiate bit 33, so librte_vhost runs with the same flags as "on" (IOTLB support and
the per-packet vring statistics that carry the IOTLB counters) but translates nothing."""
import shutil
from pathlib import Path

from backends import VhostdBackend
from harness import Frontend
from net import ratio, stats

TARGET = 0.85
MODES = {"on": ("translate", ["--iommu", "viommu", "--iotlb-prefill"]),
         "counted": ("platform", ["--iommu", "off"]),
         "off": ("off", ["--iommu", "off"])}
ORDER = ("on", "counted", "off")


def run_once(workdir, mem, mode, seconds, size):
    policy, fe_args = MODES[mode]
    vd = VhostdBackend(workdir, mem, iommu=policy)
    a, b = vd.start()
    fe = None
    try:
        vd.begin()
        fe = Frontend("--socket", a, "--socket2", b, "--tx", "--rx", "--pkt-size", size,
                      "--duration-s", seconds, "--timeout-s", seconds + 30, *fe_args,
                      cpu=0).run(timeout=seconds + 60)
        if fe.rc != 0 or fe.error:
            raise RuntimeError(f"frontend exit {fe.rc}: {fe.error} {fe.stderr[-500:]}")
        v = vd.end()
        s = fe.summary
        return {"mpps": s["rx_mpps"], "tx_mpps": s["tx_mpps"], "rx_ok": s["rx_ok"],
                "rx_bad": s["rx_bad"], "seq_gaps": s["seq_gaps"],
                "translating": s.get("translating"),
                "frontend_idle_poll_ratio": s.get("idle_poll_ratio"),
                "frontend_iotlb_misses_received": s.get("iotlb_misses_received"),
                "frontend_iotlb_updates_sent": s.get("iotlb_updates_sent"), **v}
    finally:
        if fe is not None:
            fe.kill()
        vd.stop()
        mem.clean()


def run(workdir: Path, mem, repeats=3, seconds=3, size=64):
    runs = {m: [] for m in ORDER}
    for rep in range(repeats):
        for mode in (ORDER if rep % 2 == 0 else ORDER[::-1]):
            w = Path(workdir) / "translation" / f"{mode}-{rep}"
            shutil.rmtree(w, ignore_errors=True)
            w.mkdir(parents=True)
            try:
                r = run_once(w, mem, mode, seconds, size)
                print(f"  rep {rep + 1} translation {mode:7s} {r['mpps']:6.2f} Mpps "
                      f"{r['cycles_per_packet'] or 0:6.1f} cyc/pkt busy {r['busy_percent'] or 0:3.0f}% "
                      f"iotlb hits {r['iotlb_hits']} misses {r['iotlb_misses']} "
                      f"wait {r['iotlb_wait_us']:.0f} us", flush=True)
            except Exception as e:  # noqa: BLE001
                r = {"error": f"{type(e).__name__}: {e}"[:2000]}
                print(f"  rep {rep + 1} translation {mode} FAILED {r['error'][:300]}")
            runs[mode].append(r)
    out = {"memory": str(mem), "size": size, "seconds": seconds, "target_on_off": TARGET}
    for mode, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        out[mode] = {k: stats([r.get(k) for r in ok])
                     for k in ("mpps", "cycles_per_packet", "busy_percent", "iotlb_hits",
                               "iotlb_misses", "iotlb_wait_us", "frontend_idle_poll_ratio")}
        out[mode]["translating"] = [r.get("translating") for r in ok]
        out[mode]["errors"] = [r["error"] for r in rs if "error" in r]
        out[mode]["runs"] = rs
    out["ratio_on_off_mpps"] = ratio(out["on"]["mpps"]["median"], out["off"]["mpps"]["median"])
    # cycles/packet off/on: the share of vhostd's per-packet cost left when translating.
    out["ratio_on_off_cycles"] = ratio(out["off"]["cycles_per_packet"]["median"],
                                       out["on"]["cycles_per_packet"]["median"])
    out["ratio_on_off_mpps_best"] = ratio(out["on"]["mpps"]["max"], out["off"]["mpps"]["max"])
    out["ratio_on_off_cycles_best"] = ratio(out["off"]["cycles_per_packet"]["min"],
                                            out["on"]["cycles_per_packet"]["min"])
    # What translation alone costs (same counters on both sides), and what the counters cost.
    out["ratio_on_counted_mpps"] = ratio(out["on"]["mpps"]["median"],
                                         out["counted"]["mpps"]["median"])
    out["ratio_on_counted_cycles"] = ratio(out["counted"]["cycles_per_packet"]["median"],
                                           out["on"]["cycles_per_packet"]["median"])
    out["ratio_counted_off_cycles"] = ratio(out["off"]["cycles_per_packet"]["median"],
                                            out["counted"]["cycles_per_packet"]["median"])
    r = out["ratio_on_off_mpps"]
    out["meets_target"] = r is not None and r >= TARGET
    return out
