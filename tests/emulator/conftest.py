"""Fixtures for the emulator's tests (test_*.py beside this file).

The server is started once per session on a free port; when it cannot start
the fixture raises, so every test errors (never skips). Every test starts
from a reset emulator.
"""

from __future__ import annotations

import pytest

from emu_helpers import R1, R2
from harness import Emulator


@pytest.fixture(scope="session")
def emu():
    emulator = Emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(autouse=True)
def clean(emu):
    emu.reset()
    yield


@pytest.fixture
def ec2(emu):
    return emu.client("ec2", R1, retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def ec2_r2(emu):
    return emu.client("ec2", R2, retries={"total_max_attempts": 1, "mode": "standard"})
