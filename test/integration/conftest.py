# SPDX-License-Identifier: BSD-3-Clause
import pytest

from harness import Vhostd


@pytest.fixture
def vhostd(tmp_path):
    """A running vhostd on a private RPC socket; stopped (and checked to exit 0) afterwards."""
    d = Vhostd(tmp_path).start()
    yield d
    rc = d.stop()
    assert rc == 0, f"vhostd exited with {rc}:\n{d.log()[-4000:]}"


@pytest.fixture
def rpc(vhostd):
    r = vhostd.rpc()
    yield r
    r.close()
