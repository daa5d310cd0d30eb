"""Peer vhost-user backends for the QEMU guest kit (stdlib only).

- Testpmd: dpdk-testpmd with a net_vhost port in icmpecho mode (answers ARP
  and ICMP echo for any IP, so a guest ping to any peer gets replies).
- StorageDaemon: qemu-storage-daemon exporting a raw file as vhost-user-blk.

Each one is started by the caller, killed only by its own PID, and its
socket/log live in a directory the caller owns (pytest's tmp_path).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from typing import List, Optional

import guest

TESTPMD = os.environ.get("VHTEST_TESTPMD", "dpdk-testpmd")
QSD = os.environ.get("VHTEST_QSD", "qemu-storage-daemon")


def cpus() -> List[int]:
    return sorted(os.sched_getaffinity(0))


def qemu_cpu() -> int:
    """Host CPU for QEMU (the first one); backends get the last one."""
    return cpus()[0]


def backend_cpu() -> int:
    return cpus()[-1]


class Peer:
    name = "peer"

    def __init__(self, workdir: str):
        self.workdir = os.fspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(self.workdir, f"{self.name}.log")
        self.argv: List[str] = []

    def _spawn(self, argv: List[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=open(self.log_path, "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10) -> Optional[int]:
        """SIGTERM our own process (by PID), SIGKILL after timeout_s."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
            except ProcessLookupError:
                pass
        return p.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Testpmd(Peer):
    """dpdk-testpmd, one net_vhost port (server socket), icmpecho forwarding.

    iommu_support: ',iommu-support=1' on the vdev, so the port offers
      VIRTIO_F_ACCESS_PLATFORM (bit 33) and translates through an IOTLB.
    retry: 'set fwd icmpecho retry' + 'set burst tx delay D retry N': a reply
      whose enqueue hit an IOTLB miss is retried instead of dropped.
    """
    name = "testpmd"
    _seq = 0

    def __init__(self, workdir: str, iommu_support: bool = False, retry: bool = False,
                 retry_delay_us: int = 1000, retry_num: int = 50,
                 cpu: Optional[int] = None, sock_name: str = "vhost-net.sock"):
        super().__init__(workdir)
        self.sock = os.path.join(self.workdir, sock_name)
        self.iommu_support = iommu_support
        self.retry = retry
        cpu = backend_cpu() if cpu is None else cpu
        Testpmd._seq += 1
        self.prefix = f"vhtest{os.getpid()}_{Testpmd._seq}"
        vdev = f"net_vhost0,iface={self.sock},queues=1"
        if iommu_support:
            vdev += ",iommu-support=1"
        # Two lcores on one host CPU: testpmd needs a forwarding lcore besides
        # the main one (`-l 1` alone fails: "No cores defined for forwarding").
        argv = ["taskset", "-c", str(cpu), TESTPMD,
                "--lcores", f"0@{cpu},1@{cpu}", "--no-huge", "-m", "512", "--no-pci",
                "--no-shconf", "--file-prefix", self.prefix,
                "--vdev", vdev, "--",
                "--forward-mode=icmpecho", "--stats-period", "1", "--nb-cores=1",
                # the default pool (~155k mbufs) does not fit in -m 512 --no-huge
                "--total-num-mbufs=8192"]
        if retry:
            cmd = os.path.join(self.workdir, "testpmd.cmd")
            with open(cmd, "w") as f:
                f.write("set fwd icmpecho retry\n"
                        f"set burst tx delay {retry_delay_us} retry {retry_num}\n")
            argv += ["--cmdline-file", cmd]
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self._spawn(argv)

    def stop(self, timeout_s: float = 10) -> Optional[int]:
        rc = super().stop(timeout_s)
        # EAL's runtime directory for our own --file-prefix
        base = "/var/run/dpdk" if os.geteuid() == 0 else \
            os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/tmp"), "dpdk")
        shutil.rmtree(os.path.join(base, self.prefix), ignore_errors=True)
        return rc

    def wait_ready(self, timeout_s: float = 30) -> None:
        if not guest.wait_for_socket(self.sock, timeout_s, self.proc):
            self.stop()
            raise RuntimeError("testpmd did not create its vhost socket:\n" + self.log()[-3000:])

    def port_mac(self) -> Optional[str]:
        m = re.search(r"Port 0: ([0-9A-Fa-f:]{17})", self.log())
        return m.group(1).lower() if m else None

    def negotiated_features(self) -> List[int]:
        """Every 'negotiated Virtio features' value librte_vhost logged (SET_FEATURES)."""
        return [int(x, 16) for x in
                re.findall(r"negotiated Virtio features: (0x[0-9a-fA-F]+)", self.log())]

    def forward_stats(self) -> dict:
        """Totals from testpmd's exit report (call after stop())."""
        log = self.log()
        i = log.rfind("Forward statistics for port 0")
        out = {}
        if i >= 0:
            tail = log[i:i + 800]
            for k in ("RX-packets", "RX-dropped", "TX-packets", "TX-dropped"):
                m = re.search(k + r":\s*(\d+)", tail)
                if m:
                    out[k] = int(m.group(1))
        return out


class StorageDaemon(Peer):
    """qemu-storage-daemon exporting `image` (raw file) as vhost-user-blk."""
    name = "qsd"

    def __init__(self, workdir: str, image: str, writable: bool = True,
                 cpu: Optional[int] = None, sock_name: str = "vhost-blk.sock"):
        super().__init__(workdir)
        self.sock = os.path.join(self.workdir, sock_name)
        self.image = os.fspath(image)
        cpu = backend_cpu() if cpu is None else cpu
        argv = ["taskset", "-c", str(cpu), QSD,
                "--blockdev", "driver=file,node-name=f,filename="
                + guest._qemu_escape(self.image),
                "--export", "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,"
                f"addr.path={guest._qemu_escape(self.sock)},writable={'on' if writable else 'off'}"]
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self._spawn(argv)

    def wait_ready(self, timeout_s: float = 30) -> None:
        if not guest.wait_for_socket(self.sock, timeout_s, self.proc):
            self.stop()
            raise RuntimeError("qemu-storage-daemon did not create its socket:\n"
                               + self.log()[-3000:])


def testpmd_skip_reason() -> Optional[str]:
    if not shutil.which(TESTPMD):
        return f"{TESTPMD} not found (apt-get install dpdk-dev)"
    return None


def qsd_skip_reason() -> Optional[str]:
    if not shutil.which(QSD):
        return f"{QSD} not found (apt-get install qemu-system-common)"
    return None


def wait_until(pred, timeout_s: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())
