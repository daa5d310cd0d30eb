#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The main job on the embedded default: vhostd with two vhost-user ports cross-connected
(config/xconnect.json), and dpdk-testpmd with two net_virtio_user ports pushing traffic through
it. Prints Mpps per direction every second and a summary at the end."""
import argparse
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test" / "integration"))
from harness import Testpmd, Vhostd, wait_for  # noqa: E402


def tx_packets(rpc):
    return {d["name"]: sum(q["tx_packets"] for q in d["queues"])
            for d in rpc.call("stats_get")["devices"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--size", type=int, default=64, help="frame size in bytes")
    args = ap.parse_args()

    work = REPO / "run" / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = work / "xconnect.json"
    # The embedded default config, with its sockets in this run's folder.
    cfg.write_text((REPO / "config" / "xconnect.json").read_text()
                   .replace("./run/", f"{work}/"))
    d = Vhostd(work, config=cfg).start()
    gen = None
    try:
        rpc = d.rpc()
        socks = [work / "port0.sock", work / "port1.sock"]
        start = f"set txpkts {args.size}\nstart tx_first 8" if args.size != 64 else \
            "start tx_first 8"
        gen = Testpmd(work, socks, name="generator", start_cmd=start).start()
        wait_for(lambda: all(rpc.call("device_get", name=n)["state"] == "running"
                             for n in ("port0", "port1")), timeout=30,
                 what="both ports running")
        print(f"vhostd forwards port0 <-> port1; testpmd generates {args.size} B frames "
              f"for {args.seconds} s (logs in {work})")
        rpc.call("stats_reset")
        w0 = rpc.call("worker_list")[0]
        prev, t_prev = tx_packets(rpc), time.monotonic()
        first, t_first = prev, t_prev
        for i in range(args.seconds):
            time.sleep(1)
            now, t_now = tx_packets(rpc), time.monotonic()
            dt = t_now - t_prev
            a2b = (now["port1"] - prev["port1"]) / dt / 1e6
            b2a = (now["port0"] - prev["port0"]) / dt / 1e6
            print(f"  t={i + 1:2d}s  port0->port1 {a2b:6.2f} Mpps   port1->port0 {b2a:6.2f} Mpps"
                  f"   total {a2b + b2a:6.2f} Mpps", flush=True)
            prev, t_prev = now, t_now
        dt = t_prev - t_first
        a2b = (prev["port1"] - first["port1"]) / dt / 1e6
        b2a = (prev["port0"] - first["port0"]) / dt / 1e6
        w1 = rpc.call("worker_list")[0]
        pkts = w1["packets"] - w0["packets"]
        cpp = (w1["busy_cycles"] - w0["busy_cycles"]) / pkts if pkts else 0
        busy = 100.0 * (w1["busy_cycles"] - w0["busy_cycles"]) / max(
            1, w1["total_cycles"] - w0["total_cycles"])
        stats = rpc.call("stats_get")["devices"]
        drops = sum(q["rx_drops"] + q["tx_drops"] for dev in stats for q in dev["queues"])
        print(f"summary: port0->port1 {a2b:.2f} Mpps, port1->port0 {b2a:.2f} Mpps, "
              f"total {a2b + b2a:.2f} Mpps over {dt:.1f} s; worker busy {busy:.0f}%, "
              f"{cpp:.0f} cycles/packet; drops {drops}")
        ports = gen.stop()
        gen = None
        print("testpmd's own count: " + ", ".join(
            f"port{p} rx {rx} tx {tx}" for p, (rx, tx) in sorted(ports.items())))
    finally:
        if gen is not None:
            gen.stop()
        rc = d.stop()
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
