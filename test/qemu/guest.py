"""Boot a tiny QEMU 7.2 guest against vhost-user backends (stdlib only).

The guest (kernel + busybox initramfs, built by build-guest.sh into
test/qemu/cache/) reads its job from the kernel command line, runs it, prints
one line ``VHTEST-RESULT {json}`` on the serial console and powers off.

    import guest
    reason = guest.skip_reason()          # None when QEMU + guest image are usable
    run = guest.boot("net", net_sockets=[sock],
                     args={"ip": "10.0.0.1", "peer": "10.0.0.2", "count": 5})
    assert run.ok and run.result["received"] == 5
    run.console        # whole serial console
    run.iotlb_misses   # vhost_iotlb_miss requests QEMU answered (traced)

Facts this relies on (measured with Debian 12's QEMU 7.2 under TCG, see
README.md): vhost-user needs shared guest memory (memory-backend-memfd,
share=on); the virtio device sits behind a pcie-root-port with
disable-legacy=on; vectors=0 on the virtio device, because QEMU 7.2 under TCG
segfaults in kvm_virtio_pci_irqfd_use() when a vhost-user device unmasks an
MSI-X vector.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE_DIR = os.environ.get("VHTEST_CACHE", os.path.join(HERE, "cache"))
VMLINUZ = os.path.join(CACHE_DIR, "vmlinuz")
INITRD = os.path.join(CACHE_DIR, "initrd.gz")
BUILD_SCRIPT = os.path.join(HERE, "build-guest.sh")
QEMU = os.environ.get("VHTEST_QEMU", "qemu-system-x86_64")

RESULT_TAG = "VHTEST-RESULT "
BOOTED_TAG = "VHTEST-BOOTED "
# QEMU's message when a device asks for iommu_platform=on and the vhost-user
# backend does not offer VIRTIO_F_ACCESS_PLATFORM (bit 33).
ERR_IOMMU_PLATFORM_UNSUPPORTED = "iommu_platform=true is not supported by the device"

SocketSpec = Union[str, os.PathLike, Dict[str, object]]


class GuestError(RuntimeError):
    """QEMU failed, or the guest produced no VHTEST-RESULT."""

    def __init__(self, message: str, run: "GuestRun"):
        self.run = run
        tail = run.console[-4000:]
        super().__init__(
            f"{message}\n--- qemu argv ---\n{' '.join(run.argv)}"
            f"\n--- qemu stderr ---\n{run.stderr.strip()}"
            f"\n--- console (tail) ---\n{tail}"
        )

    @property
    def stderr(self) -> str:
        return self.run.stderr

    @property
    def console(self) -> str:
        return self.run.console


class GuestTimeout(GuestError):
    """The guest did not finish within timeout_s (QEMU was killed)."""


@dataclass
class GuestRun:
    argv: List[str]
    result: Optional[dict] = None     # parsed VHTEST-RESULT json
    console: str = ""                 # whole serial console
    stderr: str = ""                  # QEMU's stderr
    trace: str = ""                   # QEMU trace output (-D file)
    returncode: Optional[int] = None
    elapsed_s: float = 0.0            # wall time of the QEMU process
    boot_s: Optional[float] = None    # guest uptime when /init started
    killed: bool = False              # QEMU had to be killed (timeout/hang)
    workdir: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.result and self.result.get("ok"))

    @property
    def iotlb_misses(self) -> int:
        """IOTLB misses the backend sent to QEMU (needs trace vhost_iotlb_miss)."""
        return len(re.findall(r"vhost_iotlb_miss \S+ step 1\b", self.trace))

    @property
    def iotlb_miss_failures(self) -> int:
        """Misses QEMU could not answer (lookup/update failed: steps 3 and 4)."""
        return len(re.findall(r"vhost_iotlb_miss \S+ step [34]\b", self.trace))

    def __getitem__(self, key):
        if self.result is None:
            raise KeyError(key)
        return self.result[key]

    def get(self, key, default=None):
        return (self.result or {}).get(key, default)


# --------------------------------------------------------------- availability

def qemu_path() -> Optional[str]:
    return shutil.which(QEMU)


def guest_built() -> bool:
    return os.path.isfile(VMLINUZ) and os.path.isfile(INITRD)


_build_tried = False


def ensure_guest(build: Optional[bool] = None, timeout_s: int = 900) -> Optional[str]:
    """Make sure the guest image exists; run build-guest.sh once if allowed.

    build=None: build when running as root and VHTEST_NO_BUILD is not set.
    Returns None when the image is there, else the reason it is not.
    """
    global _build_tried
    if guest_built():
        return None
    if build is None:
        build = os.geteuid() == 0 and not os.environ.get("VHTEST_NO_BUILD")
    if not build:
        return (f"guest image missing ({VMLINUZ}, {INITRD}); "
                f"run: bash {os.path.relpath(BUILD_SCRIPT)}")
    if not _build_tried:
        _build_tried = True
        try:
            p = subprocess.run(["bash", BUILD_SCRIPT], capture_output=True, text=True,
                               timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"build-guest.sh failed: {e}"
        if p.returncode != 0 or not guest_built():
            return ("build-guest.sh failed (rc %d): %s"
                    % (p.returncode, (p.stderr or p.stdout).strip()[-600:]))
    return None if guest_built() else "guest image missing after build-guest.sh"


def skip_reason(build: Optional[bool] = None) -> Optional[str]:
    """None when a guest can be booted, else a message for pytest.skip()."""
    if not qemu_path():
        return f"{QEMU} not found (apt-get install qemu-system-x86; or run build-guest.sh)"
    r = ensure_guest(build)
    if r:
        return r
    if not os.path.exists("/dev/shm") and not hasattr(os, "memfd_create"):
        return "no memfd support for shared guest memory"
    return None


def qemu_available(build: Optional[bool] = None) -> bool:
    return skip_reason(build) is None


def qemu_storage_daemon_path() -> Optional[str]:
    return shutil.which("qemu-storage-daemon")


# --------------------------------------------------------------- command line

def _sock(spec: SocketSpec) -> Dict[str, object]:
    if isinstance(spec, dict):
        d = dict(spec)
        d["path"] = os.fspath(d["path"])  # type: ignore[arg-type]
        return d
    return {"path": os.fspath(spec)}


def _qemu_escape(s: str) -> str:
    """QEMU option values double commas."""
    return s.replace(",", ",,")


def _onoff(b: bool) -> str:
    return "on" if b else "off"


def guest_cmdline(job: str, args: Optional[Dict[str, object]] = None,
                  viommu: bool = False, extra_cmdline: str = "",
                  quiet: bool = True, iommu_strict: Optional[bool] = None) -> str:
    parts = ["console=ttyS0", "panic=-1"]
    if quiet:
        parts += ["quiet", "loglevel=3"]
    if viommu:
        parts.append("intel_iommu=on")
        # strict: the guest invalidates page by page at every unmap. The lazy
        # default flushes the whole domain, which QEMU 7.2 forwards as an
        # IOTLB invalidation whose end reaches 2^64 (see README.md).
        if iommu_strict is None or iommu_strict:
            parts.append("iommu.strict=1")
        else:
            parts.append("iommu.strict=0")
    parts.append(f"vhtest={job}")
    for k, v in (args or {}).items():
        if isinstance(v, (list, tuple)):
            v = ",".join(str(x) for x in v)
        v = str(v)
        if not v or any(c.isspace() for c in v):
            raise ValueError(f"guest arg {k}={v!r}: empty or has spaces")
        parts.append(f"{k}={v}")
    if extra_cmdline:
        parts.append(extra_cmdline)
    return " ".join(parts)


def qemu_argv(job: str = "info",
              net_sockets: Sequence[SocketSpec] = (),
              blk_sockets: Sequence[SocketSpec] = (),
              iommu_platform: bool = False,
              viommu: bool = False,
              ats: Optional[bool] = None,
              args: Optional[Dict[str, object]] = None,
              extra_cmdline: str = "",
              mem_mb: int = 256,
              cpu: Optional[int] = 0,
              trace: Sequence[str] = ("vhost_iotlb_miss",),
              trace_file: Optional[str] = None,
              quiet: bool = True,
              extra_args: Sequence[str] = (),
              iommu_strict: Optional[bool] = None) -> List[str]:
    """The argv boot() runs (without the taskset prefix when cpu is None).

    Per-socket dicts may hold: path, server (QEMU listens; default False),
    reconnect (seconds, client mode), mac, iommu_platform, ats, num_queues,
    props (extra ",k=v" string for -device).
    """
    if ats is None:
        ats = viommu
    argv: List[str] = []
    if cpu is not None and shutil.which("taskset"):
        argv += ["taskset", "-c", str(cpu)]
    argv += [qemu_path() or QEMU,
             "-machine", "q35,accel=tcg,memory-backend=mem",
             "-object", f"memory-backend-memfd,id=mem,size={mem_mb}M,share=on",
             "-m", f"{mem_mb}M",
             "-smp", "1",
             "-nodefaults", "-no-user-config",
             "-display", "none", "-monitor", "none", "-serial", "stdio",
             "-no-reboot",
             "-kernel", VMLINUZ, "-initrd", INITRD,
             "-append", guest_cmdline(job, args, viommu, extra_cmdline, quiet,
                                        iommu_strict)]
    if viommu:
        # must come before the devices it translates for
        argv += ["-device", "intel-iommu,intremap=on,device-iotlb=on"]
    if trace:
        for t in trace:
            argv += ["-trace", f"enable={t}"]
        if trace_file:
            argv += ["-D", trace_file]
    port = 0

    def dev_common(spec: Dict[str, object]) -> str:
        ip = bool(spec.get("iommu_platform", iommu_platform))
        a = bool(spec.get("ats", ats and ip))
        s = f",bus=rp{port},disable-legacy=on,vectors=0"
        if ip:
            s += ",iommu_platform=on"
        if a:
            s += ",ats=on"
        return s + str(spec.get("props", ""))

    def chardev(spec: Dict[str, object], cid: str) -> str:
        s = f"socket,id={cid},path={_qemu_escape(str(spec['path']))}"
        if spec.get("server"):
            s += ",server=on,wait=off"
        elif spec.get("reconnect"):
            s += f",reconnect={int(spec['reconnect'])}"  # type: ignore[arg-type]
        return s

    for i, raw in enumerate(net_sockets):
        spec = _sock(raw)
        argv += ["-device", f"pcie-root-port,id=rp{port},bus=pcie.0,chassis={port + 1}"]
        argv += ["-chardev", chardev(spec, f"cn{i}")]
        argv += ["-netdev", f"vhost-user,id=n{i},chardev=cn{i}"]
        mac = spec.get("mac", "52:54:00:12:34:%02x" % (0x56 + i))
        argv += ["-device", f"virtio-net-pci,netdev=n{i},mac={mac}" + dev_common(spec)]
        port += 1
    for i, raw in enumerate(blk_sockets):
        spec = _sock(raw)
        argv += ["-device", f"pcie-root-port,id=rp{port},bus=pcie.0,chassis={port + 1}"]
        argv += ["-chardev", chardev(spec, f"cb{i}")]
        nq = int(spec.get("num_queues", 1))  # type: ignore[arg-type]
        argv += ["-device", f"vhost-user-blk-pci,chardev=cb{i},num-queues={nq}" + dev_common(spec)]
        port += 1
    argv += list(extra_args)
    return argv


# --------------------------------------------------------------- boot

def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def parse_result(console: str) -> Optional[dict]:
    """The last VHTEST-RESULT json on the console, or None."""
    found = None
    for line in console.splitlines():
        i = line.find(RESULT_TAG)
        if i < 0:
            continue
        text = line[i + len(RESULT_TAG):].strip()
        try:
            found = json.loads(text)
        except ValueError:
            # a kernel message glued to the end of the line: cut at the last '}'
            j = text.rfind("}")
            try:
                found = json.loads(text[:j + 1])
            except ValueError:
                continue
    return found


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def boot(job: str = "info",
         net_sockets: Sequence[SocketSpec] = (),
         blk_sockets: Sequence[SocketSpec] = (),
         iommu_platform: bool = False,
         viommu: bool = False,
         timeout_s: float = 120,
         extra_cmdline: str = "",
         args: Optional[Dict[str, object]] = None,
         ats: Optional[bool] = None,
         mem_mb: int = 256,
         cpu: Optional[int] = 0,
         trace: Sequence[str] = ("vhost_iotlb_miss",),
         workdir: Optional[Union[str, os.PathLike]] = None,
         quiet: bool = True,
         extra_args: Sequence[str] = (),
         poweroff_grace_s: float = 15,
         iommu_strict: Optional[bool] = None,
         check: bool = True) -> GuestRun:
    """Boot the guest, run `job` (net/blk/info) and return a GuestRun.

    args: the job's parameters, put on the kernel command line as k=v
      net: ip, peer, count, need (replies needed for ok; default count),
           prefix, interval
      blk: dev, offs (list of byte offsets, multiples of 4096), hostoff,
           hostlen, hostmd5
    iommu_platform: iommu_platform=on on every device (no vIOMMU: the
      confidential-guest style; QEMU refuses it when the backend does not offer
      bit 33).
    viommu: add intel-iommu (intremap=on,device-iotlb=on), intel_iommu=on in
      the guest, and ats=on on devices with iommu_platform.
    iommu_strict: with viommu, the guest's iommu.strict (default True:
      page-selective invalidations; False: lazy whole-domain flushes).
    cpu: pin QEMU to this host CPU (taskset); None: no pinning.
    check: raise GuestError when QEMU fails or prints no VHTEST-RESULT
      (GuestTimeout on timeout). A result with ok=false is returned, not raised.
    """
    own_dir = workdir is None
    wd = tempfile.mkdtemp(prefix="vhtest-") if own_dir else os.fspath(workdir)
    os.makedirs(wd, exist_ok=True)
    con_path = os.path.join(wd, "console.log")
    err_path = os.path.join(wd, "qemu.stderr")
    trace_path = os.path.join(wd, "qemu.trace")
    argv = qemu_argv(job, net_sockets, blk_sockets, iommu_platform, viommu, ats, args,
                     extra_cmdline, mem_mb, cpu, trace, trace_path, quiet, extra_args,
                     iommu_strict)
    run = GuestRun(argv=argv, workdir=wd)
    t0 = time.monotonic()
    with open(con_path, "wb") as con, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=con, stderr=err,
                                start_new_session=True)
    timed_out = False
    try:
        result_at = None
        while True:
            if proc.poll() is not None:
                break
            now = time.monotonic()
            if now - t0 > timeout_s:
                timed_out = True
                run.killed = True
                _kill(proc)
                break
            if result_at is None:
                if RESULT_TAG in _read(con_path):
                    result_at = now
            elif now - result_at > poweroff_grace_s:
                # result is in but the guest did not power off: not fatal
                run.killed = True
                _kill(proc)
                break
            time.sleep(0.1)
    finally:
        _kill(proc)
    run.elapsed_s = time.monotonic() - t0
    run.returncode = proc.returncode
    run.console = _read(con_path).replace("\r\n", "\n")
    run.stderr = _read(err_path)
    run.trace = _read(trace_path)
    run.result = parse_result(run.console)
    m = re.search(BOOTED_TAG + r"uptime=([0-9.]+)", run.console)
    if m:
        run.boot_s = float(m.group(1))
    if own_dir:
        shutil.rmtree(wd, ignore_errors=True)
        run.workdir = ""
    if check:
        if timed_out and run.result is None:
            raise GuestTimeout(f"guest timed out after {timeout_s}s", run)
        if run.result is None:
            raise GuestError(f"QEMU exited (rc {run.returncode}) without VHTEST-RESULT", run)
        if run.returncode not in (0, None) and not run.killed:
            raise GuestError(f"QEMU exited with rc {run.returncode}", run)
    return run


def start_qemu_expect_failure(timeout_s: float = 30, **kw) -> GuestRun:
    """Boot with check=False, for configurations QEMU is expected to refuse."""
    return boot(check=False, timeout_s=timeout_s, **kw)


# --------------------------------------------------------------- helpers for tests

def wait_for_socket(path: Union[str, os.PathLike], timeout_s: float = 20,
                    proc: Optional[subprocess.Popen] = None) -> bool:
    """Wait until a unix socket exists at path (False on timeout or if proc died).

    It does not connect: a probe connection would be a (short) vhost-user
    session of its own on the backend.
    """
    import stat
    deadline = time.monotonic() + timeout_s
    p = os.fspath(path)
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if stat.S_ISSOCK(os.stat(p).st_mode):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def blk_pattern(offset: int, size: int = 4096) -> bytes:
    """The block the guest's blk job writes at `offset`."""
    unit = f"vhtest off={offset}\n".encode()
    return (unit * (size // len(unit) + 1))[:size]
