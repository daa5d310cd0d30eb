# SPDX-License-Identifier: BSD-3-Clause
"""Real parts for integration tests: a vhostd process, a JSON-RPC client on its Unix socket,
and dpdk-testpmd with net_virtio_user ports as a frontend / traffic generator.

vhostd runs with its default EAL lcores (control on CPU 0, worker on CPU 1); testpmd runs both
of its lcores on CPU 0 (--lcores 0@0,1@0), so the two busy-pollers never share a core.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("VHOSTD_BUILD", REPO / "build"))
VHOSTD = BUILD / "app" / "vhostd" / "vhostd"
VHOSTCTL = BUILD / "app" / "vhostctl" / "vhostctl"
FRONTEND = BUILD / "test" / "frontend" / "vhost-frontend"
TESTPMD = os.environ.get("TESTPMD", "/usr/bin/dpdk-testpmd")


# Every process started through this module, so that what a failing test left behind (a vhostd
# or a driver busy-polling a core) is ended before the next test runs: reap_leftovers().
_started = []


def _track(proc):
    _started.append(proc)
    return proc


def reap_leftovers():
    """End the processes tests started and left running (SIGTERM, then SIGKILL after 5 s).
    @return their program names."""
    left = [p for p in _started if p.poll() is None]
    for p in left:
        p.terminate()
    for p in left:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    _started.clear()
    return [next((Path(a).name for a in p.args if "/" in str(a)), str(p.args[0])) for p in left]


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    """Poll pred() until it returns something truthy; raise with a message on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class RpcError(Exception):
    def __init__(self, error):
        super().__init__(json.dumps(error))
        self.error = error
        self.code = error.get("code")
        self.data = error.get("data", {})


class Rpc:
    """A persistent JSON-RPC 2.0 connection (newline-terminated replies)."""

    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""
        self.next_id = 1

    def close(self):
        self.sock.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def recv_json(self):
        """Read one newline-terminated JSON reply."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("vhostd closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, method, params=None):
        req = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        self.next_id += 1
        if params is not None:
            req["params"] = params
        self.send_raw(json.dumps(req).encode() + b"\n")
        reply = self.recv_json()
        assert reply.get("id") == req["id"], f"reply id {reply.get('id')} for {req['id']}"
        return reply

    def call(self, method, **params):
        reply = self.request(method, params if params else None)
        if "error" in reply:
            raise RpcError(reply["error"])
        return reply["result"]


class Vhostd:
    def __init__(self, workdir: Path, name="vhostd", config=None, eal=None, extra=None):
        self.workdir = Path(workdir)
        self.rpc_path = self.workdir / f"{name}.sock"
        self.log_path = self.workdir / f"{name}.log"
        self.config = config
        self.eal = eal
        self.extra = extra or []
        self.proc = None
        self.name = name

    def argv(self):
        argv = [str(VHOSTD), "-s", str(self.rpc_path)]
        if self.config:
            argv += ["-c", str(self.config)]
        argv += self.extra
        eal = self.eal or ["--no-huge", "-m", "512", "--no-pci", "-l", "0-1", "--main-lcore",
                           "0", "--file-prefix", f"vt{os.getpid()}{self.name}",
                           "--log-level", "lib.vhost.*:notice"]
        return argv + ["--"] + eal

    def start(self, wait=True):
        self.logf = open(self.log_path, "ab")
        self.proc = _track(subprocess.Popen(self.argv(), stdout=self.logf,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        if wait:
            wait_for(self._ready, timeout=20, what=f"vhostd RPC socket {self.rpc_path}")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"vhostd exited with {self.proc.returncode}:\n{self.log()}")
        try:
            r = Rpc(self.rpc_path, timeout=5)
            r.close()
            return True
        except OSError:
            return False

    def rpc(self):
        return Rpc(self.rpc_path)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM and wait: a clean shutdown exits 0."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"vhostd did not stop within {timeout}s:\n{self.log()}")
        self.logf.close()
        return self.proc.returncode


FWD_STATS = re.compile(
    r"Forward statistics for port (\d+).*?RX-packets:\s*(\d+).*?TX-packets:\s*(\d+)", re.S)
NIC_STATS = re.compile(
    r"NIC statistics for port (\d+)\s*#+\s*RX-packets:\s*(\d+).*?TX-packets:\s*(\d+)", re.S)


class Testpmd:
    __test__ = False  # a helper, not a test class

    """dpdk-testpmd with one net_virtio_user port per socket, pinned to CPU 0.

    start_cmd: what its --cmdline-file holds ('start tx_first 8' generates traffic with eight
    bursts in flight per port; 'start' only forwards what arrives).
    interactive: testpmd -i, driven through its stdin (line-buffered by stdbuf so the log is
    live) instead of --stats-period: it can stop forwarding and keep its ports open.
    """

    def __init__(self, workdir: Path, sockets, name="pmd", fwd="io", start_cmd="start tx_first 8",
                 queues=1, extra_vdev="", extra=None, server=False, cpu=0, interactive=False):
        self.workdir = Path(workdir)
        self.sockets = [str(s) for s in sockets]
        self.name = name
        self.fwd = fwd
        self.start_cmd = start_cmd
        self.queues = queues
        self.extra_vdev = extra_vdev
        self.extra = extra or []
        self.server = server
        self.cpu = cpu
        self.interactive = interactive
        self.log_path = self.workdir / f"{name}.log"
        self.proc = None

    def argv(self):
        cmdfile = self.workdir / f"{self.name}.cmds"
        cmdfile.write_text(self.start_cmd + "\n")
        argv = [TESTPMD, "--lcores", f"0@{self.cpu},1@{self.cpu}", "--main-lcore", "0",
                "--no-huge", "-m", "512",
                "--no-pci", "--file-prefix", f"tp{os.getpid()}{self.name}",
                "--log-level", "pmd.net.virtio.*:warning"]
        for i, s in enumerate(self.sockets):
            vdev = f"net_virtio_user{i},path={s},queues={self.queues}"
            if self.server:
                vdev += ",server=1"
            argv += ["--vdev", vdev + self.extra_vdev]
        mode = ["-i"] if self.interactive else ["--stats-period", "1", f"--cmdline-file={cmdfile}"]
        argv += ["--", f"--forward-mode={self.fwd}", "--nb-cores=1", *mode,
                 "--total-num-mbufs=16384", f"--rxq={self.queues}", f"--txq={self.queues}",
                 "--no-lsc-interrupt"] + self.extra
        return ["stdbuf", "-oL"] + argv if self.interactive else argv

    def start(self):
        self.logf = open(self.log_path, "wb")
        self.proc = _track(subprocess.Popen(self.argv(), stdout=self.logf,
                                            stderr=subprocess.STDOUT,
                                            stdin=subprocess.PIPE if self.interactive else
                                            subprocess.DEVNULL))
        if self.interactive:
            self.command(self.start_cmd)
        return self

    def command(self, line):
        """Interactive only: one testpmd command line."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def live_counts(self):
        """Latest periodic per-port {port: (rx, tx)} from the NIC statistics."""
        out = {}
        for m in NIC_STATS.finditer(self.log()):
            out[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
        return out

    def wait_forwarding(self, min_packets=1000, timeout=30):
        """Wait until every port has received at least min_packets."""
        def ok():
            if self.proc.poll() is not None:
                raise RuntimeError(f"testpmd exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            if self.interactive:
                self.command("show port stats all")  # read on the next poll
            c = self.live_counts()
            return len(c) == len(self.sockets) and all(rx >= min_packets for rx, _ in c.values())
        wait_for(ok, timeout=timeout, what=f"testpmd {self.name} to receive {min_packets} "
                 "packets on every port")

    def forward_stats(self):
        """{port: (rx_packets, tx_packets)} from the forward statistics testpmd printed."""
        return {int(m.group(1)): (int(m.group(2)), int(m.group(3)))
                for m in FWD_STATS.finditer(self.log())}

    def stop_forwarding(self, timeout=20):
        """Interactive only: 'stop'. testpmd stops forwarding and prints its forward statistics
        and keeps its ports open, so the backend can still take what it had queued.
        Returns {port: (rx_packets, tx_packets)}."""
        self.command("stop")
        return wait_for(lambda: len(self.forward_stats()) == len(self.sockets) and
                        self.forward_stats(), timeout=timeout,
                        what=f"testpmd {self.name}'s forward statistics")

    def stop(self, timeout=20):
        """SIGINT (interactive: quit): testpmd stops forwarding, prints its forward statistics
        (unless stop_forwarding() did) and exits. Returns {port: (rx_packets, tx_packets)}."""
        if self.proc.poll() is None:
            if self.interactive:
                self.command("quit")
                self.proc.stdin.close()
            else:
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.forward_stats()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.logf.close()


def queue_stats(rpc, name):
    """Counters of queue 0 of device name, from stats_get."""
    devs = rpc.call("stats_get", name=name)["devices"]
    assert len(devs) == 1 and devs[0]["name"] == name, devs
    return devs[0]["queues"]


def total(rpc, name, key):
    return sum(q[key] for q in queue_stats(rpc, name))


def attach_net(rpc, name, sock, **kw):
    return rpc.call("device_attach", name=name, kind="net", socket=str(sock), **kw)


class Frontend:
    """The project's vhost-user frontend driver (test/frontend), run to completion or in the
    background. Its stdout is JSON lines; the last one is the summary."""

    def __init__(self, *args, cpu=0):
        self.argv = ["taskset", "-c", str(cpu), str(FRONTEND)] + [str(a) for a in args]
        self.proc = None

    def start(self):
        self.proc = _track(subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                            text=True))
        return self

    def wait(self, timeout=120):
        out, err = self.proc.communicate(timeout=timeout)
        self.events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        self.stderr = err
        self.rc = self.proc.returncode
        self.summary = next((e for e in reversed(self.events) if e.get("event") == "summary"), {})
        self.error = next((e for e in self.events if e.get("event") == "error"), None)
        return self

    def run(self, timeout=120):
        return self.start().wait(timeout)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
