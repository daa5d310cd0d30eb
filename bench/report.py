# SPDX-License-Identifier: BSD-3-Clause
"""results.json -> results.md: Markdown tables of every section."""


def f(x, nd=2):
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        return f"{x:.{nd}f}"
    return str(x)


def spread(s, nd=2):
    """median [min–max] of a stats dict."""
    if not s or s.get("median") is None:
        return "–"
    if s.get("n", 1) <= 1:
        return f(s["median"], nd)
    return f"{f(s['median'], nd)} [{f(s['min'], nd)}–{f(s['max'], nd)}]"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def net_md(net):
    out = ["## net: vhostd xconnect vs testpmd (net_vhost io fwd) vs OVS-DPDK", "",
           "Same generator for every backend (dpdk-testpmd, 2 net_virtio_user ports, io fwd, "
           "`start tx_first 8`, CPU 0); each backend's forwarding lcore on CPU 1. Mpps per "
           "direction, median [min–max] over interleaved repeats. Cycles/packet from each "
           "backend's own counters (vhostd `worker_list` busy cycles, testpmd "
           "`--record-core-cycles`, OVS `pmd-stats-show` avg processing cycles). Busy %: share of "
           "the lcore spent on bursts that carried packets (testpmd's and the generator's: "
           "estimated as cycles/packet x packets/s / clock).", ""]
    ratios = []
    for mode, res in net.items():
        if not isinstance(res, dict) or "sizes" not in res:
            out += [f"### memory: {mode}", "", f"skipped: {res.get('skipped') if isinstance(res, dict) else res}", ""]
            continue
        out += [f"### memory: {mode}", ""]
        if res.get("ovs_error") or res.get("ovs_skipped"):
            out += [f"OVS: {res.get('ovs_skipped') or res.get('ovs_error')}", ""]
        rows = []
        for size, per in res["sizes"].items():
            for name in ("vhostd", "testpmd", "ovs"):
                s = per.get(name)
                if not s:
                    continue
                rows.append([f"{size} B", name, spread(s["mpps"]),
                             spread(s["cycles_per_packet"], 0), f(s["busy_percent"]["median"], 0),
                             f(s["generator_cycles_per_packet"]["median"], 0),
                             f(s["generator_busy_percent"]["median"], 0),
                             f(s["backend_is_bottleneck"]) + (f" ({len(s['errors'])} failed)"
                                                              if s["errors"] else "")])
            for other in ("testpmd", "ovs"):
                r = per.get(f"vhostd/{other}")
                if r:
                    ratios.append([mode, f"{size} B", f"vhostd/{other}", f(r["mpps"], 3),
                                   f(r["cycles_per_packet"], 3), f(r.get("mpps_best"), 3),
                                   f(r.get("cycles_per_packet_best"), 3)])
        out += table(["size", "backend", "Mpps/dir", "cycles/pkt", "busy %", "gen cycles/pkt",
                       "gen busy %", "backend is bottleneck"], rows)
    if ratios:
        out += ["### ratios (Mpps > 1 and cycles < 1 favour vhostd)", "",
                "Of the medians, and best against best (highest Mpps, fewest cycles/packet: "
                "the noise here only slows runs down).", ""]
        out += table(["memory", "size", "ratio", "Mpps (medians)", "cycles/pkt (medians)",
                      "Mpps (best)", "cycles/pkt (best)"], ratios)
    return out


def translation_md(t):
    out = ["## translation: ACCESS_PLATFORM (vIOMMU, IOTLB) on vs off", "",
           f"Frontend driver (test/frontend) on CPU 0 drives both devices, a sends, b receives "
           f"and verifies; {t.get('size')} B, {t.get('seconds')} s per run, memory "
           f"{t.get('memory')}. on = `--iommu viommu --iotlb-prefill` with `policy.iommu: "
           f"translate`; off = `--iommu off` with `iommu: off`; counted = `--iommu off` with "
           f"`policy.iommu: platform` (librte_vhost runs with the same flags as on, including the "
           f"per-packet vring statistics that carry the IOTLB counters, but translates nothing). "
           f"IOTLB counters are vhostd's (librte_vhost per-vring), summed over a and b.", ""]
    rows = []
    for mode in ("on", "counted", "off"):
        s = t.get(mode, {})
        if not s:
            continue
        rows.append([mode, spread(s["mpps"]), spread(s["cycles_per_packet"], 0),
                     f(s["busy_percent"]["median"], 0), f(s["iotlb_hits"]["median"], 0),
                     f(s["iotlb_misses"]["median"], 0), f(s["iotlb_wait_us"]["median"], 0),
                     f(s["frontend_idle_poll_ratio"]["median"], 2)])
    out += table(["translation", "Mpps", "vhostd cycles/pkt", "vhostd busy %", "IOTLB hits",
                  "IOTLB misses", "IOTLB wait us", "frontend idle polls"], rows)
    out += [f"on/off: Mpps **{f(t.get('ratio_on_off_mpps'), 3)}** (target >= "
            f"{t.get('target_on_off')}: {f(t.get('meets_target'))}), cycles/packet off/on "
            f"{f(t.get('ratio_on_off_cycles'), 3)} (medians); best against best: Mpps "
            f"{f(t.get('ratio_on_off_mpps_best'), 3)}, cycles "
            f"{f(t.get('ratio_on_off_cycles_best'), 3)}. vhostd's worker is not saturated by this "
            "generator (busy % above), so Mpps follows the frontend's loop as much as vhostd.",
            ""]
    if t.get("ratio_on_counted_cycles") is not None:
        out += [f"Split of the cost, cycles/packet: counted/on {f(t.get('ratio_on_counted_cycles'), 3)} "
                f"(translation alone; Mpps on/counted {f(t.get('ratio_on_counted_mpps'), 3)}), "
                f"off/counted {f(t.get('ratio_counted_off_cycles'), 3)} (the per-packet counters "
                "alone).", ""]
    return out


def scale_md(s):
    out = ["## scale (vhostd)", ""]
    tp = s.get("throughput", {})
    if tp.get("idle"):
        out += [f"Measured pair at 64 B (net generator), memory {tp.get('memory')}, with idle "
                f"devices (attached, no frontend) beside it; ratio to the pair alone "
                f"(target >= {tp.get('target')}). Method: {tp.get('method', 'one run each')}, "
                "passes in the order 0 1 8 64 64 8 1 0 (a long run drifts here).", ""]
        rows = [[n, spread(d["mpps"]), spread(d["cycles_per_packet"], 0),
                 f(d.get("ratio_mpps"), 3), f(d.get("ratio_cycles"), 3),
                 f(d.get("meets_target")) if "meets_target" in d else "–"]
                for n, d in tp["idle"].items()]
        out += table(["idle devices", "Mpps/dir", "cycles/pkt", "Mpps ratio",
                      "cycles ratio (alone/with)", "meets target"], rows)
    a = s.get("attach", {})
    if a.get("error"):
        out += [f"attach/detach: {a['error']}", ""]
    rows = []
    for how in ("rpc", "vhostctl"):
        for op in ("attach", "detach"):
            d = a.get(how, {}).get(op)
            if d:
                rows.append([how, op, d["n"], f(d["p50_ms"], 3), f(d["p99_ms"], 3),
                             f(d["max_ms"], 2), f(d["wall_s"], 2)])
    if rows:
        out += [f"Attach/detach of {a.get('devices')} devices (target: all attaches in under "
                f"{a.get('target_total_s')} s, detach as fast). rpc = one persistent JSON-RPC "
                "connection; vhostctl = one process per call.", ""]
        out += table(["via", "op", "n", "p50 ms", "p99 ms", "max ms", "total s"], rows)
    m = a.get("memory_per_device")
    if m:
        out += [f"Memory per idle device: **{f(m['kb_per_device'], 1)} KiB** (VmRSS "
                f"{m['vmrss_before_kb']} -> {m['vmrss_attached_kb']} KiB over "
                f"{a.get('devices')} devices; {m['vmrss_after_detach_kb']} KiB after "
                "detaching them).", ""]
    return out


def blk_md(b):
    out = ["## blk: vhostd vs qemu-storage-daemon (bench/blk.py)", ""]
    if not isinstance(b, dict) or "skipped" in b or "error" in b:
        return out + [f"{(b or {}).get('skipped') or (b or {}).get('error')}", ""]
    rows = []
    for test, per in b.items():
        if not isinstance(per, dict):
            continue
        for name, s in per.items():
            if isinstance(s, dict) and "iops_median" in s:
                rows.append([test, name, f(s["iops_median"], 0), f(s.get("p50_us_median"), 1),
                             f(s.get("p99_us_median"), 1)])
        if "iops_ratio" in per:
            rows.append([test, "vhostd/qsd", f(per["iops_ratio"], 3), "",
                         f"p99 ratio {f(per.get('p99_ratio'), 3)}"])
    return out + table(["test", "backend", "IOPS", "p50 us", "p99 us"], rows)


def perf_md(p):
    out = ["## perf (CPU 1 during a 64 B net run)", ""]
    for name, r in (p or {}).items():
        if name == "skipped":
            out += [f"skipped: {r}", ""]
            continue
        if "error" in r:
            out += [f"{name}: {r['error']}", ""]
            continue
        out += [f"{name} ({r['file']}, {f(r['mpps_while_profiled'])} Mpps/dir while profiled):",
                "", "```"] + r["top"] + ["", "by shared object:"] + r.get("by_dso", [])
        out += ["", "unresolved addresses summed per function (.eh_frame ranges):"]
        out += r.get("by_function", []) + ["```", ""]
    return out


def markdown(res):
    out = ["# vhostd benchmarks", "",
           f"Run {res.get('started')} ({'--quick' if res.get('quick') else 'full'}), "
           f"{res.get('duration_s', 0):.0f} s; {res.get('host', {}).get('summary', '')}", ""]
    if res.get("section_s"):
        out += ["Section times: " + ", ".join(f"{k} {v:.0f} s" for k, v in res["section_s"].items())
                + ".", ""]
    cpu = res.get("cpu_during_run") or {}
    if cpu:
        out += ["CPU steal during the run (hypervisor): " + ", ".join(
            f"{c} {v['steal_percent']:.1f}%" for c, v in cpu.items()) + ".", ""]
    for note in res.get("notes", []):
        out.append(f"- {note}")
    out.append("")
    if "net" in res:
        out += net_md(res["net"])
    if "perf" in res:
        out += perf_md(res["perf"])
    if "translation" in res:
        out += translation_md(res["translation"]) if "on" in res["translation"] else \
            ["## translation", "", str(res["translation"]), ""]
    if "scale" in res:
        out += scale_md(res["scale"])
    if "blk" in res:
        out += blk_md(res["blk"])
    return "\n".join(out) + "\n"
