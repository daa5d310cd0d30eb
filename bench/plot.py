# SPDX-License-Identifier: BSD-3-Clause
"""PNG plots of results.json with gnuplot (pngcairo): net.png, translation.png, scale.png,
blk.png (when blk ran). Data and scripts go to a work directory; only the PNGs to out."""
import shutil
import subprocess
from pathlib import Path

HEAD = """set terminal pngcairo size 1200,480 font ",10"
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.75 border -1
set datafile missing "?"
set key outside top center horizontal
set grid ytics
set yrange [0:*]
set xtics rotate by -20
"""


def _v(s, k="median"):
    return "?" if not s or s.get(k) is None else f"{s[k]:.4f}"


def _tri(s):
    return f"{_v(s)} {_v(s, 'min')} {_v(s, 'max')}"


def _gnuplot(script, work):
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True, timeout=60,
                       cwd=work)
    if r.returncode != 0:
        raise RuntimeError(f"gnuplot: {r.stderr[-1000:]}")


def net(res, out, work):
    rows = []
    for mode, m in res.items():
        for size, per in (m.get("sizes") or {}).items() if isinstance(m, dict) else []:
            cols = []
            for b in ("vhostd", "testpmd", "ovs"):
                s = per.get(b, {})
                cols += [_tri(s.get("mpps")), _tri(s.get("cycles_per_packet"))]
            rows.append(f'"{mode} {size}B" ' + " ".join(cols[0::2]) + " " + " ".join(cols[1::2]))
    if not rows:
        return None
    (work / "net.dat").write_text("\n".join(rows) + "\n")
    _gnuplot(HEAD + f"""set output '{out / "net.png"}'
set multiplot layout 1,2 title "net: same generator, backend forwarding lcore on CPU 1 (median, min-max)"
set ylabel "Mpps per direction"
plot 'net.dat' using 2:3:4:xtic(1) title 'vhostd', '' using 5:6:7 title 'testpmd net\\_vhost', '' using 8:9:10 title 'OVS-DPDK'
set ylabel "cycles per packet (own counters)"
plot 'net.dat' using 11:12:13:xtic(1) title 'vhostd', '' using 14:15:16 title 'testpmd net\\_vhost', '' using 17:18:19 title 'OVS-DPDK'
unset multiplot
""", work)
    return "net.png"


def translation(t, out, work):
    if "on" not in t:
        return None
    rows = [f'"{m}" {_tri(t[m]["mpps"])} {_tri(t[m]["cycles_per_packet"])}'
            for m in ("on", "counted", "off") if m in t]
    (work / "translation.dat").write_text("\n".join(rows) + "\n")
    _gnuplot(HEAD.replace("1200,480", "900,420") + f"""set output '{out / "translation.png"}'
set multiplot layout 1,2 title "translation (vIOMMU + IOTLB): on, counted (no translation), off; on/off = {t.get('ratio_on_off_mpps') or 0:.3f}"
set ylabel "Mpps (a -> b)"
plot 'translation.dat' using 2:3:4:xtic(1) title 'Mpps'
set ylabel "vhostd cycles per packet"
plot 'translation.dat' using 5:6:7:xtic(1) title 'cycles/packet' lc 2
unset multiplot
""", work)
    return "translation.png"


def scale(s, out, work):
    tp = (s.get("throughput") or {}).get("idle") or {}
    a = s.get("attach") or {}
    if not tp and not a.get("rpc"):
        return None
    (work / "scale_tp.dat").write_text("".join(
        f'"{n} idle" {_tri(d["mpps"])}\n' for n, d in tp.items()) or '"-" ? ? ?\n')
    lat = []
    for how in ("rpc", "vhostctl"):
        for op in ("attach", "detach"):
            d = (a.get(how) or {}).get(op)
            if d:
                lat.append(f'"{how} {op}" {d["p50_ms"]:.4f} {d["p99_ms"]:.4f}')
    (work / "scale_lat.dat").write_text("\n".join(lat or ['"-" ? ?']) + "\n")
    _gnuplot(HEAD + f"""set output '{out / "scale.png"}'
set multiplot layout 1,2 title "scale: vhostd with idle devices beside the measured pair; attach/detach latency ({a.get('devices')} devices)"
set ylabel "Mpps per direction (64 B)"
plot 'scale_tp.dat' using 2:3:4:xtic(1) title 'measured pair'
set style histogram clustered gap 2
set logscale y
set yrange [0.01:*]
set ylabel "latency per call (ms, log)"
plot 'scale_lat.dat' using 2:xtic(1) title 'p50', '' using 3 title 'p99'
unset multiplot
""", work)
    return "scale.png"


def blk(b, out, work):
    if not isinstance(b, dict) or "skipped" in b or "error" in b:
        return None
    rows = []
    for test, per in b.items():
        if isinstance(per, dict) and "vhostd" in per and "qsd" in per:
            v, q = per["vhostd"], per["qsd"]
            rows.append(f'"{test}" {v.get("iops_median", 0) / 1e3:.3f} '
                        f'{v.get("iops_min", 0) / 1e3:.3f} {v.get("iops_max", 0) / 1e3:.3f} '
                        f'{q.get("iops_median", 0) / 1e3:.3f} {q.get("iops_min", 0) / 1e3:.3f} '
                        f'{q.get("iops_max", 0) / 1e3:.3f}')
    if not rows:
        return None
    (work / "blk.dat").write_text("\n".join(rows) + "\n")
    _gnuplot(HEAD.replace("1200,480", "900,420") + f"""set output '{out / "blk.png"}'
set title "blk 4 KiB: vhostd vs qemu-storage-daemon"
set ylabel "kIOPS"
plot 'blk.dat' using 2:3:4:xtic(1) title 'vhostd', '' using 5:6:7 title 'qemu-storage-daemon'
""", work)
    return "blk.png"


def plot_all(res, out: Path, work: Path):
    """Returns {name: file or error}."""
    out, work = Path(out), Path(work) / "plot"
    work.mkdir(parents=True, exist_ok=True)
    if shutil.which("gnuplot") is None:
        return {"error": "gnuplot is not installed"}
    made = {}
    for key, fn in (("net", net), ("translation", translation), ("scale", scale), ("blk", blk)):
        if key in res:
            try:
                made[key] = fn(res[key], out, work)
            except Exception as e:  # noqa: BLE001
                made[key] = f"error: {type(e).__name__}: {e}"[:500]
    return made
