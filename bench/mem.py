# SPDX-License-Identifier: BSD-3-Clause
"""Memory modes. Every backend, the generator and OVS run in the same mode within one comparison:

  nohuge: --no-huge -m MB (OVS: --no-huge -m 2048 --legacy-mem, see ovs.py)
  huge:   2 MiB hugepages from a hugetlbfs mount made here (vm.nr_hugepages raised here); both
          are undone by teardown(), which run calls in a finally block.
"""
import os
import subprocess
from pathlib import Path

NR_PATH = Path("/proc/sys/vm/nr_hugepages")
HUGE_PAGES = 1024          # 2 GiB: generator 512 + backend 512 (OVS 512 + its own) at a time


class Memory:
    def __init__(self, mode, workdir):
        assert mode in ("nohuge", "huge"), mode
        self.mode = mode
        self.workdir = Path(workdir)
        self.mnt = None
        self.old_nr = None
        self.mounted = False

    def __repr__(self):
        return self.mode

    def setup(self):
        """huge: reserve pages and mount hugetlbfs. Raises RuntimeError when it cannot."""
        if self.mode == "nohuge":
            return self
        self.old_nr = int(NR_PATH.read_text())
        free = self.free_pages() or 0
        if free < HUGE_PAGES:        # others may hold some: add what is missing
            NR_PATH.write_text(str(self.old_nr + HUGE_PAGES - free))
        got = self.free_pages() or 0
        if got < HUGE_PAGES:
            self.teardown()
            raise RuntimeError(f"asked for {HUGE_PAGES} free hugepages, the kernel gave {got}")
        self.mnt = self.workdir / "hugepages"
        self.mnt.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", str(self.mnt)],
                       check=True, timeout=10)
        self.mounted = True
        return self

    def teardown(self):
        if self.mounted:
            self.clean()
            subprocess.run(["umount", str(self.mnt)], timeout=30, check=False)
            self.mounted = False
            try:
                self.mnt.rmdir()
            except OSError:
                pass
        if self.old_nr is not None:
            NR_PATH.write_text(str(self.old_nr))
            self.old_nr = None

    def clean(self):
        """Drop hugepage files left by processes that have exited (they hold pages otherwise)."""
        if self.mounted:
            for f in self.mnt.iterdir():
                try:
                    f.unlink()
                except OSError:
                    pass

    def eal(self, prefix, mb=512, virtio_user=False):
        """EAL memory options. virtio_user: a vhost-user frontend shares its memory with the
        backend, at most 8 regions, so its hugepages go in one file per segment list."""
        if self.mode == "nohuge":
            return ["--no-huge", "-m", str(mb), "--file-prefix", prefix]
        out = ["--huge-dir", str(self.mnt), "--socket-mem", str(mb), "--file-prefix", prefix]
        return out + (["--single-file-segments"] if virtio_user else [])

    def ovs_config(self, prefix):
        """other_config keys for ovs-vswitchd-dpdk."""
        if self.mode == "nohuge":
            # OVS 3.1 adds --in-memory unless --legacy-mem; -m 1024 is too small for its pools.
            return {"dpdk-extra": f"--no-huge -m 2048 --no-pci --legacy-mem --file-prefix {prefix}"}
        return {"dpdk-socket-mem": "512",
                "dpdk-extra": f"--no-pci --huge-dir {self.mnt} --file-prefix {prefix}"}

    def free_pages(self):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
        return None


def available(mode, workdir):
    """(ok, reason): whether this mode can be set up here (root, hugetlbfs)."""
    if mode == "nohuge":
        return True, ""
    if os.geteuid() != 0:
        return False, "hugepages need root (vm.nr_hugepages, mount)"
    if "hugetlbfs" not in Path("/proc/filesystems").read_text():
        return False, "the kernel has no hugetlbfs"
    return True, ""
