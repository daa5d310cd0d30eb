# SPDX-License-Identifier: BSD-3-Clause
"""CI smoke test of the benchmark tool: bench/run --quick works and writes its files. It checks
that every section produced numbers (or says why it was skipped), not any target.

  /usr/bin/python3 -m pytest -q bench/test_bench_smoke.py
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BUILD = Path(os.environ.get("VHOSTD_BUILD", REPO / "build"))
NEEDED = [BUILD / "app/vhostd/vhostd", BUILD / "app/vhostctl/vhostctl",
          BUILD / "test/frontend/vhost-frontend", Path("/usr/bin/dpdk-testpmd")]


def numbers(x):
    """Every number (not bool) anywhere in x."""
    if isinstance(x, bool):
        return []
    if isinstance(x, (int, float)):
        return [x]
    if isinstance(x, dict):
        return [n for v in x.values() for n in numbers(v)]
    if isinstance(x, list):
        return [n for v in x for n in numbers(v)]
    return []


def positive(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("bench/run needs root")
    missing = [str(p) for p in NEEDED if not p.exists()]
    if missing:
        pytest.skip(f"not built / not installed: {missing}")
    out = tmp_path_factory.mktemp("bench") / "out"
    r = subprocess.run(["/usr/bin/python3", str(BENCH / "run"), "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, f"bench/run --quick exit {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return out, json.loads((out / "results.json").read_text()), r.stdout


def test_files_exist(quick_run):
    out, res, _ = quick_run
    for name in ("results.json", "results.md", "net.png", "scale.png", "translation.png"):
        f = out / name
        assert f.exists() and f.stat().st_size > 0, f"{name} missing; plots: {res.get('plots')}"
    assert (out / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "results.md").read_text()
    for title in ("## net", "## translation", "## scale", "## blk"):
        assert title in md


def test_every_section_has_numbers(quick_run):
    _, res, stdout = quick_run
    assert res["quick"] is True
    for section in ("net", "translation", "scale", "blk"):
        assert section in res, f"section {section} missing: {sorted(res)}"
    for section in ("net", "translation", "scale"):
        assert numbers(res[section]), f"{section} has no numbers: {res[section]}"
    # blk is another engineer's bench/blk.py: numbers, or the hook says why not.
    assert numbers(res["blk"]) or "skipped" in res["blk"], res["blk"]


def test_net_measured_every_backend(quick_run):
    _, res, _ = quick_run
    nohuge = res["net"]["nohuge"]
    for size in ("64", "1518"):
        per = nohuge["sizes"][size]
        for name in ("vhostd", "testpmd"):
            assert positive(per[name]["mpps"]["median"]), (size, name, per[name]["errors"])
            assert positive(per[name]["cycles_per_packet"]["median"]), (size, name)
        assert positive(per["vhostd/testpmd"]["mpps"])
        # OVS: measured, or the JSON says why not (e.g. it took too long to start).
        if "ovs" in per and per["ovs"]["mpps"]["median"] is not None:
            assert positive(per["vhostd/ovs"]["mpps"])
        else:
            assert nohuge.get("ovs_skipped") or nohuge.get("ovs_error"), nohuge.keys()
    assert "huge" in res["settings"]["modes"] or "--quick" in " ".join(res["notes"])


def test_translation_and_scale(quick_run):
    _, res, _ = quick_run
    t = res["translation"]
    assert positive(t["on"]["mpps"]["median"]) and positive(t["off"]["mpps"]["median"])
    assert positive(t["ratio_on_off_mpps"])
    assert positive(t["on"]["iotlb_hits"]["median"]), "translation on saw no IOTLB hits"
    s = res["scale"]
    for n in ("0", "1", "8", "64"):
        assert positive(s["throughput"]["idle"][n]["mpps"]["median"]), n
    a = s["attach"]
    assert "error" not in a, a.get("error")
    for how in ("rpc", "vhostctl"):
        for op in ("attach", "detach"):
            assert positive(a[how][op]["p50_ms"]) and positive(a[how][op]["p99_ms"]), (how, op)
    assert isinstance(a["memory_per_device"]["kb_per_device"], (int, float))


def test_cleaned_up(quick_run):
    """Nothing of the run left: no hugetlbfs mount of ours, no OVS daemon of ours."""
    out, res, stdout = quick_run
    mounts = Path("/proc/mounts").read_text()
    assert "vhostd-bench-" not in mounts, mounts
    work = stdout.split("work dir ", 1)[1].split(",", 1)[0] if "work dir " in stdout else None
    if work:
        assert not Path(work).exists()
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                assert work not in cmd, f"process {pid} of the run still alive: {cmd}"
