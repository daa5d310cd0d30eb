# SPDX-License-Identifier: BSD-3-Clause
"""Backends and the generator for the net benchmarks. Every backend forwards between two
vhost-user sockets with its forwarding lcore on CPU 1 (control/main lcore on CPU 0); the
generator is dpdk-testpmd with two net_virtio_user ports, io forwarding, both lcores on CPU 0,
started with 'start tx_first 8' (eight bursts in flight per port: capacity, not loop latency).
All of them in the same memory mode (mem.Memory). OVS is in ovs.py."""
import errno
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test" / "integration"))
from harness import TESTPMD, Testpmd, Vhostd, wait_for  # noqa: E402

NIC_B = re.compile(rb"NIC statistics for port (\d+)\s*#+\s*RX-packets:\s*(\d+).*?Rx-pps:\s*(\d+)",
                   re.S)
CYCLES = re.compile(r"CPU cycles/packet=([\d.]+) \(.*?packets=(\d+)\) at (\d+) MHz")
_MEM_ARGS = {"--no-huge": 0, "-m": 1, "--file-prefix": 1}


def testpmd_cycles(log):
    """(cycles per packet, MHz) from testpmd's last --record-core-cycles line. testpmd counts
    only bursts that carried packets, so cycles/packet x packets/s / Hz is its busy share."""
    m = CYCLES.findall(log)
    return (float(m[-1][0]), float(m[-1][2])) if m else (None, None)


def busy_estimate(cpp, mhz, mpps_total):
    return 100.0 * cpp * mpps_total / mhz if cpp and mhz and mpps_total else None


class Generator(Testpmd):
    """testpmd generator whose rate is read from its own per-second Rx-pps figures."""

    def __init__(self, workdir, sockets, mem, size=64, name="gen"):
        cmd = "start tx_first 8" if size == 64 else f"set txpkts {size}\nstart tx_first 8"
        super().__init__(workdir, sockets, name=name, start_cmd=cmd,
                         extra=["--record-core-cycles"])
        self.mem = mem

    def argv(self):
        argv, out, i = super().argv(), ["stdbuf", "-oL"], 0
        # The --cmdline-file is a FIFO: testpmd blocks reading it after its ports are up, and
        # go() writes 'start tx_first 8' once the backend forwards both ways. A backend that
        # is not ready drops the first bursts, and a closed loop never gets them back.
        self.fifo = self.workdir / f"{self.name}.cmds"
        self.fifo.unlink()
        os.mkfifo(self.fifo)
        self.fifo_fd = None
        while i < len(argv):              # the harness' memory options -> this memory mode's
            if argv[i] in _MEM_ARGS:
                i += 1 + _MEM_ARGS[argv[i]]
                continue
            if argv[i] == "--no-pci":
                out += self.mem.eal(f"bg{os.getpid()}{self.name}", mb=256, virtio_user=True)
            out.append(argv[i])
            i += 1
        return out

    def wait_reader(self, timeout=30):
        """Until testpmd has opened its cmdline file (its ports are started)."""
        def opened():
            if self.proc.poll() is not None:
                raise RuntimeError(f"generator exited {self.proc.returncode}:\n{self.log()[-2000:]}")
            try:
                self.fifo_fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                return True
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                return False
        wait_for(opened, timeout=timeout, interval=0.01, what="generator to read its cmdline file")

    def go(self):
        os.write(self.fifo_fd, (self.start_cmd + "\n").encode())
        os.close(self.fifo_fd)
        self.fifo_fd = None

    def kill(self):
        if getattr(self, "fifo_fd", None) is not None:
            os.close(self.fifo_fd)
            self.fifo_fd = None
        super().kill()

    def samples(self):
        """The generator's statistics periods since its first one: [{"dt": s, "rx": {port:
        packets received}}]. testpmd's period is nominally 1 s but its loop often prints every
        2 s; each period's length is recovered as received packets / its Rx-pps (both from the
        same show). Reads only what the log gained since the last call (polled while
        measuring)."""
        if not hasattr(self, "_lines"):
            self._lines, self._cur, self._off = [], {}, 0
        with open(self.log_path, "rb") as f:
            f.seek(self._off)
            chunk = f.read()
        end = 0
        for m in NIC_B.finditer(chunk):
            port, rx, pps = int(m.group(1)), int(m.group(2)), int(m.group(3))
            self._cur[port] = (rx, pps)
            end = m.end()
            if len(self._cur) == 2:
                self._lines.append(self._cur)
                self._cur = {}
        self._off += end
        out = []
        for prev, cur in zip(self._lines, self._lines[1:]):
            rx = {p: cur[p][0] - prev[p][0] for p in cur}
            dts = [rx[p] / cur[p][1] for p in cur if cur[p][1] > 0 and rx[p] > 0]
            out.append({"dt": sum(dts) / len(dts) if dts else 1.0, "rx": rx})
        return out

    def window(self, start_s, seconds, samples=None):
        """The periods that begin at least start_s after the first one and together last at
        least seconds, or None while they are not all out yet."""
        t, picked = 0.0, []
        for smp in samples if samples is not None else self.samples():
            if t >= start_s - 1e-3:
                picked.append(smp)
                if sum(x["dt"] for x in picked) >= seconds - 0.05:
                    return picked
            t += smp["dt"]
        return None

    @staticmethod
    def rate(picked):
        """Mpps per direction (ports in order) over picked periods."""
        dt = sum(x["dt"] for x in picked)
        return [sum(x["rx"][p] for x in picked) / dt / 1e6 for p in sorted(picked[0]["rx"])]

    def elapsed(self):
        return sum(x["dt"] for x in self.samples())

    def measure(self, warmup_s, seconds):
        """Forwarded Mpps per direction over seconds, after warmup_s: {mpps (mean of the two
        directions), mpps_dir (per port received), series_total (per period, both summed)}."""
        def enough():
            if self.proc.poll() is not None:
                raise RuntimeError(f"generator exited {self.proc.returncode}:\n{self.log()[-2000:]}")
            return self.window(warmup_s, seconds)
        picked = wait_for(enough, timeout=warmup_s + seconds + 30, interval=0.2,
                          what="generator statistics")
        dirs = self.rate(picked)
        every = self.samples()
        return {"mpps": sum(dirs) / 2, "mpps_dir": dirs, "window_s": sum(x["dt"] for x in picked),
                "series_total": [sum(x["rx"].values()) / x["dt"] / 1e6 for x in picked],
                "mpps_total_whole_run": sum(self.rate(every))}

    def stop(self, timeout=10):
        """SIGINT; once the final statistics and the cycles line are out (stdout is line
        buffered), SIGKILL instead of waiting for the port teardown."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                wait_for(lambda: self.proc.poll() is not None or "CPU cycles/packet" in self.log(),
                         timeout=timeout, what="generator final statistics")
            finally:
                self.kill()
        elif not self.logf.closed:
            self.logf.close()


def _eal_common(mem, prefix):
    return mem.eal(prefix) + ["--no-pci", "--log-level", "lib.vhost.*:notice"]


class VhostdBackend:
    name = "vhostd"

    def __init__(self, workdir, mem, iommu="off", idle_devices=0):
        self.workdir = Path(workdir)
        self.mem = mem
        self.iommu = iommu
        self.idle_devices = idle_devices
        self.d = None

    def start(self):
        eal = _eal_common(self.mem, f"bv{os.getpid()}") + ["-l", "0-1", "--main-lcore", "0"]
        self.d = Vhostd(self.workdir, name="vhostd", eal=eal).start()
        self.rpc = self.d.rpc()
        for i in range(self.idle_devices):
            self.rpc.call("device_attach", name=f"idle{i}", kind="net",
                          socket=str(self.workdir / f"idle{i}.sock"))
        for n in ("a", "b"):
            self.rpc.call("device_attach", name=n, kind="net",
                          socket=str(self.workdir / f"{n}.sock"), policy={"iommu": self.iommu})
        self.rpc.call("xconnect_create", a="a", b="b")
        return [self.workdir / "a.sock", self.workdir / "b.sock"]

    def wait_running(self):
        wait_for(lambda: all(self.rpc.call("device_get", name=n)["state"] == "running"
                             for n in "ab"), timeout=30, what="vhostd ports running")

    def begin(self):
        self.w0 = self.rpc.call("worker_list")[0]
        self.s0 = self._iotlb()

    def _iotlb(self):
        st = self.rpc.call("stats_get")["devices"]
        qs = [q for d in st if d["name"] in ("a", "b") for q in d["queues"]]
        return {k: sum(q.get(k, 0) for q in qs)
                for k in ("iotlb_hits", "iotlb_misses", "iotlb_wait_cycles", "iotlb_wait_us",
                          "rx_packets", "tx_drops")}

    def end(self):
        w1 = self.rpc.call("worker_list")[0]
        pkts = w1["packets"] - self.w0["packets"]
        busy = w1["busy_cycles"] - self.w0["busy_cycles"]
        total = w1["total_cycles"] - self.w0["total_cycles"]
        s1 = self._iotlb()
        return {"cycles_per_packet": busy / pkts if pkts else None,
                "busy_percent": 100.0 * busy / total if total else None,
                **{k: s1[k] - self.s0[k] for k in s1}}

    def pid(self):
        return self.d.proc.pid

    def stop(self):
        self.rpc.close()
        rc = self.d.stop()
        if rc != 0:
            raise RuntimeError(f"vhostd exited {rc}")


class TestpmdBackend:
    """dpdk-testpmd io forwarding between two net_vhost ports: librte_vhost's practical ceiling.
    Main lcore on CPU 0, forwarding lcore on CPU 1."""
    name = "testpmd"
    __test__ = False

    def __init__(self, workdir, mem):
        self.workdir = Path(workdir)
        self.mem = mem
        self.proc = None

    def start(self):
        socks = [self.workdir / "ta.sock", self.workdir / "tb.sock"]
        argv = ["stdbuf", "-oL", TESTPMD, "--lcores", "0@0,1@1", "--main-lcore", "0"]
        argv += _eal_common(self.mem, f"bt{os.getpid()}")
        for i, s in enumerate(socks):
            argv += ["--vdev", f"net_vhost{i},iface={s},queues=1"]
        # No --stats-period: testpmd then waits for a line on stdin and stops at once (with a
        # stats period it notices SIGINT only after its 1 s sleep).
        argv += ["--", "--forward-mode=io", "--nb-cores=1", "--auto-start",
                 "--total-num-mbufs=16384", "--record-core-cycles", "--no-lsc-interrupt",
                 "--disable-link-check"]
        self.log_path = self.workdir / "testpmd-backend.log"
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.PIPE)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"testpmd backend exited {self.proc.returncode}")
            # Forwarding started (a generator that connects before that gets nothing through,
            # seen with hugepages).
            return "Press enter to exit" in self.log_path.read_text(errors="replace")
        wait_for(up, timeout=20, what="testpmd backend forwarding")
        return socks

    def wait_running(self):
        """Both net_vhost ports up (the PMD's link event for each)."""
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"testpmd backend exited {self.proc.returncode}")
            log = self.log_path.read_text(errors="replace")
            return all(f"Port {p}: link state change event" in log for p in (0, 1))
        wait_for(up, timeout=30, what="testpmd backend ports up")

    def begin(self):
        pass

    def end(self):
        """Enter: testpmd stops forwarding and prints its cycles/packet over the whole run."""
        try:
            self.proc.stdin.write(b"\n")
            self.proc.stdin.flush()
        except OSError:
            pass
        log = lambda: self.log_path.read_text(errors="replace")  # noqa: E731
        try:
            wait_for(lambda: self.proc.poll() is not None or "CPU cycles/packet" in log(),
                     timeout=20, what="testpmd backend final statistics")
        finally:
            self.stop()
        cpp, mhz = testpmd_cycles(log())
        return {"cycles_per_packet": cpp, "mhz": mhz}

    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc.stdin.close()
        if not self.logf.closed:
            self.logf.close()
