# SPDX-License-Identifier: BSD-3-Clause
"""perf profiles of CPU 1 (the backend's forwarding lcore) during a 64 B net run of vhostd and of
the testpmd backend: perf record -C 1 -g, perf report --stdio --no-children, top 25 lines into
perf-<backend>.txt. Debian's DPDK libraries have no symbols for their static functions (the
hot paths of librte_vhost), so perf shows their samples as addresses; the file adds them summed
per function, with function ranges from the library's .eh_frame (install librte-vhost23-dbgsym
from debian-debug for names)."""
import bisect
import re
import shutil
import subprocess
import time
from pathlib import Path

from harness import wait_for
from net import make_backends, run_once

LIBDIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0")
LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+(\S+)\s+\[\.\]\s+(\S+)")


def _perf(data, *args):
    r = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "-g",
                        "none", *args], capture_output=True, text=True, timeout=120)
    body = [ln for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    head = [ln for ln in r.stdout.splitlines() if ln.startswith(("# Samples", "# Event count"))]
    return head, body


def _functions(dso):
    """Sorted [(start, end, name)] of dso's functions: .eh_frame FDE ranges, named where a
    dynamic symbol starts there."""
    path = next((Path(d) / dso for d in LIBDIRS if (Path(d) / dso).exists()), None)
    if path is None:
        return []
    fde = subprocess.run(["readelf", "-wf", str(path)], capture_output=True, text=True,
                         timeout=60).stdout
    names = {}
    for ln in subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True,
                             text=True, timeout=60).stdout.splitlines():
        p = ln.split()
        if len(p) == 3:
            names[int(p[0], 16)] = p[2].split("@")[0]
    out = []
    for m in re.finditer(r"pc=([0-9a-f]+)\.\.([0-9a-f]+)", fde):
        a, b = int(m.group(1), 16), int(m.group(2), 16)
        out.append((a, b, names.get(a, f"static fn @0x{a:x}")))
    return sorted(out)


def by_function(lines, top=10):
    """Unresolved (hex) samples of each DSO summed per function range."""
    acc, funcs = {}, {}
    for ln in lines:
        m = LINE.match(ln)
        if not m or not m.group(4).startswith("0x"):
            continue
        pct, dso, addr = float(m.group(1)), m.group(3), int(m.group(4), 16)
        if dso not in funcs:
            funcs[dso] = _functions(dso)
        fs = funcs[dso]
        i = bisect.bisect_right([f[0] for f in fs], addr) - 1
        key = (dso, fs[i][2] + f" (0x{fs[i][0]:x}-0x{fs[i][1]:x})"
               if i >= 0 and addr < fs[i][1] else f"0x{addr:x}")
        acc[key] = acc.get(key, 0.0) + pct
    return [f"{p:8.2f}%  {d}  {n}" for (d, n), p in
            sorted(acc.items(), key=lambda kv: -kv[1])[:top]]


def perf_report(data, out, title, top=25):
    head, lines = _perf(data, "--percent-limit", "0.01")
    _, dsos = _perf(data, "--sort", "comm,dso", "--percent-limit", "0.1")
    fn = by_function(lines)
    Path(out).write_text(
        f"# {title}\n# perf record -C 1 -g; perf report --stdio --no-children (top {top})\n"
        + "\n".join(head + lines[:top])
        + "\n\n# by shared object: perf report --stdio --no-children --sort comm,dso\n"
        + "\n".join(dsos[:8])
        + "\n\n# unresolved addresses summed per function (.eh_frame ranges; static functions "
          "have no name in Debian's stripped DPDK)\n" + "\n".join(fn) + "\n")
    return lines[:top], dsos[:8], fn


def profile(workdir: Path, mem, outdir: Path, seconds=3):
    """One extra 64 B run per backend, not counted in the net results."""
    res = {}
    for name, make in make_backends(mem, with_ovs=False):
        w = workdir / f"perf-{name}"
        shutil.rmtree(w, ignore_errors=True)
        w.mkdir(parents=True)
        data = w / "perf.data"
        try:
            r = run_once(make(w), w, mem, 64, 1, seconds, perf=(seconds, data))
            wait_for(lambda: data.exists(), timeout=10, what="perf.data")
            top, dsos, fn = perf_report(data, outdir / f"perf-{name}.txt",
                                        f"{name}, 64 B, {mem}: {r['mpps']:.2f} Mpps/dir while "
                                        f"profiled, {r['cycles_per_packet'] or 0:.0f} cycles/packet")
            data.unlink()
            res[name] = {"file": f"perf-{name}.txt", "mpps_while_profiled": r["mpps"],
                         "cycles_per_packet_while_profiled": r["cycles_per_packet"],
                         "top": top[:8], "by_dso": dsos[:5], "by_function": fn[:6]}
        except Exception as e:  # noqa: BLE001
            res[name] = {"error": f"{type(e).__name__}: {e}"[:1000]}
        time.sleep(0.2)
    return res
