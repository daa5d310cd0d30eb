# SPDX-License-Identifier: BSD-3-Clause
"""For every test under test/: end what it started through the harness and left running, so
that a failing test's vhostd or driver does not busy-poll a core under the tests after it."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
import harness  # noqa: E402


@pytest.fixture(autouse=True)
def end_leftover_processes():
    yield
    left = harness.reap_leftovers()
    if left:
        print(f"ended processes the test left running: {left}")
