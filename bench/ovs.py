# SPDX-License-Identifier: BSD-3-Clause
"""Open vSwitch-DPDK as a backend, started here without systemd: ovsdb-tool create, ovsdb-server
and ovs-vswitchd-dpdk with private run/db/log directories (OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR), both
daemons on CPU 0, the PMD on CPU 1 (pmd-cpu-mask=0x2), a netdev bridge with two dpdkvhostuser
ports and port-to-port flows. Its PMD busy-polls even when idle: stop() kills both daemons by
their pidfiles (checked against the PIDs started here) before anything else is measured."""
import atexit
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from harness import wait_for

VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
_live = set()   # Popen objects of daemons still running, killed at exit whatever happens


def available():
    missing = [p for p in (VSWITCHD, SCHEMA, "/usr/bin/ovsdb-tool", "/usr/sbin/ovsdb-server",
                           "/usr/bin/ovs-vsctl", "/usr/bin/ovs-ofctl", "/usr/bin/ovs-appctl")
               if not os.path.exists(p)]
    return (False, "missing: " + ", ".join(missing)) if missing else (True, "")


@atexit.register
def _kill_leftovers():
    for p in list(_live):
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        _live.discard(p)


def _pmd_block(text, core=1):
    m = re.search(rf"pmd thread numa_id \d+ core_id {core}:\n(.*?)(?=\n\S|\Z)", text, re.S)
    return m.group(1) if m else ""


def parse_pmd_stats(text, core=1):
    """The PMD's counters from dpif-netdev/pmd-stats-show."""
    b = _pmd_block(text, core)

    def num(pat):
        m = re.search(pat, b)
        return float(m.group(1)) if m else None
    return {"packets": num(r"packets received:\s*(\d+)"),
            "idle_cycles": num(r"idle cycles:\s*(\d+)"),
            "processing_cycles": num(r"processing cycles:\s*(\d+)"),
            "avg_processing_cycles_per_packet":
                num(r"avg processing cycles per packet:\s*([\d.]+)")}


class OvsBackend:
    name = "ovs"

    def __init__(self, workdir, mem, start_timeout=60):
        self.workdir = Path(workdir) / "ovs"
        self.mem = mem
        self.start_timeout = start_timeout
        self.run_dir, self.db_dir, self.log_dir = (self.workdir / d for d in ("run", "db", "log"))
        self.env = dict(os.environ, OVS_RUNDIR=str(self.run_dir), OVS_DBDIR=str(self.db_dir),
                        OVS_LOGDIR=str(self.log_dir), OVS_SYSCONFDIR=str(self.workdir / "etc"))
        self.ctl = self.run_dir / "ovs-vswitchd.ctl"
        self.db_sock = self.run_dir / "db.sock"
        self.procs = {}
        self.start_s = None

    def _cmd(self, *argv, timeout=30):
        r = subprocess.run(list(argv), env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def vsctl(self, *args, wait=True, timeout=30):
        opts = [f"--db=unix:{self.db_sock}", f"--timeout={timeout}"] + ([] if wait else ["--no-wait"])
        return self._cmd("ovs-vsctl", *opts, *args, timeout=timeout + 5)

    def appctl(self, *args):
        return self._cmd("ovs-appctl", "-t", str(self.ctl), "--timeout=10", *args, timeout=15)

    def _daemon(self, name, argv):
        log = open(self.log_dir / f"{name}.out", "wb")
        p = subprocess.Popen(["taskset", "-c", "0"] + argv, env=self.env, stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.procs[name] = p
        _live.add(p)
        return p

    def _alive_or_raise(self, name):
        p = self.procs[name]
        if p.poll() is not None:
            tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:] \
                if (self.log_dir / f"{name}.log").exists() else ""
            raise RuntimeError(f"{name} exited {p.returncode}:\n{tail}")

    def start(self):
        t0 = time.monotonic()
        for d in (self.run_dir, self.db_dir, self.log_dir, self.workdir / "etc"):
            d.mkdir(parents=True, exist_ok=True)
        db = self.db_dir / "conf.db"
        self._cmd("ovsdb-tool", "create", str(db), SCHEMA)
        self._daemon("ovsdb-server", [
            "ovsdb-server", str(db), f"--remote=punix:{self.db_sock}",
            f"--pidfile={self.run_dir / 'ovsdb-server.pid'}",
            f"--unixctl={self.run_dir / 'ovsdb-server.ctl'}",
            f"--log-file={self.log_dir / 'ovsdb-server.log'}", "-vconsole:off"])
        wait_for(lambda: self._alive_or_raise("ovsdb-server") or self.db_sock.exists(),
                 timeout=20, what="ovsdb-server socket")
        self.vsctl("init", wait=False)
        cfg = {"dpdk-init": "true", "pmd-cpu-mask": "0x2",
               **self.mem.ovs_config(f"ovs{os.getpid()}")}
        self.vsctl("set", "Open_vSwitch", ".",
                   *[f'other_config:{k}="{v}"' for k, v in cfg.items()], wait=False)
        self._daemon("ovs-vswitchd", [
            VSWITCHD, f"unix:{self.db_sock}", f"--pidfile={self.run_dir / 'ovs-vswitchd.pid'}",
            f"--unixctl={self.ctl}", f"--log-file={self.log_dir / 'ovs-vswitchd.log'}",
            "-vconsole:off"])
        wait_for(lambda: self._alive_or_raise("ovs-vswitchd") or self._dpdk_ready(),
                 timeout=self.start_timeout, interval=0.2, what="ovs-vswitchd DPDK init")
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                   "--", "add-port", "br0", "vhu0", "--", "set", "Interface", "vhu0",
                   "type=dpdkvhostuser", "ofport_request=1",
                   "--", "add-port", "br0", "vhu1", "--", "set", "Interface", "vhu1",
                   "type=dpdkvhostuser", "ofport_request=2", timeout=self.start_timeout)
        self._cmd("ovs-ofctl", "del-flows", "br0")
        self._cmd("ovs-ofctl", "add-flow", "br0", "in_port=vhu0,actions=output:vhu1")
        self._cmd("ovs-ofctl", "add-flow", "br0", "in_port=vhu1,actions=output:vhu0")
        socks = [self.run_dir / "vhu0", self.run_dir / "vhu1"]
        wait_for(lambda: all(s.exists() for s in socks), timeout=20, what="OVS vhost sockets")
        self.start_s = time.monotonic() - t0
        return socks

    def _dpdk_ready(self):
        try:
            return self.vsctl("get", "Open_vSwitch", ".", "dpdk_initialized",
                              wait=False, timeout=5).strip() == "true"
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def wait_running(self):
        """Both vhost ports carrier up (OVS sends to a port only when it runs)."""
        def up():
            self._alive_or_raise("ovs-vswitchd")
            out = self._cmd("ovs-ofctl", "show", "br0")
            st = re.findall(r"^ (\d+)\(vhu\d\):.*?state:\s*(\S+)", out, re.S | re.M)
            return len(st) == 2 and all(s != "LINK_DOWN" for _, s in st)
        wait_for(up, timeout=30, interval=0.1, what="OVS vhost ports up")

    def begin(self):
        self.appctl("dpif-netdev/pmd-stats-clear")

    def end(self):
        text = self.appctl("dpif-netdev/pmd-stats-show")
        (self.workdir / "pmd-stats-show.txt").write_text(text)
        s = parse_pmd_stats(text)
        busy = None
        if s["processing_cycles"] is not None and s["idle_cycles"] is not None:
            tot = s["processing_cycles"] + s["idle_cycles"]
            busy = 100.0 * s["processing_cycles"] / tot if tot else None
        return {"cycles_per_packet": s["avg_processing_cycles_per_packet"],
                "busy_percent": busy, "pmd_packets": s["packets"], "start_s": self.start_s}

    def _pid_of(self, name):
        try:
            return int((self.run_dir / f"{name}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        """vswitchd first (its PMD spins), then ovsdb-server: SIGTERM to the PID in its pidfile
        when that is the process started here, SIGKILL after 15 s."""
        for name in ("ovs-vswitchd", "ovsdb-server"):
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            pid = self._pid_of(name)
            # taskset execs the daemon, so the Popen PID is the daemon's PID.
            target = pid if pid == p.pid else p.pid
            os.kill(target, signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
            _live.discard(p)
