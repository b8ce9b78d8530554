"""Fixtures shared by every test tier: CI strictness, journald, and core_pattern.

Tests that need root, journald or the kernel's core_pattern skip on a developer's machine
without them, but fail under CI=true (a skipped security test must never pass CI silently).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from drkonqi_lite.session import journald as journald_session

#: The checkout the tests run from.
REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")
CORE_PIPE_LIMIT = Path("/proc/sys/kernel/core_pipe_limit")
#: core_pattern is global: every test (in any checkout) that changes it holds this lock.
CORE_PATTERN_LOCK = Path("/run/lock/drkonqi-lite-core_pattern.lock")


def need(condition: bool, why: str) -> None:
    """Skip when `condition` is false; under CI, fail instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI requires this: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def root() -> None:
    need(os.geteuid() == 0, "needs root")


@pytest.fixture(scope="session")
def journald(root: None) -> None:
    """A journald in the host namespace that files per-user journals (session/journald.py)."""
    binary = journald_session.JOURNALD
    need(binary.exists(), f"{binary} missing (apt-get install systemd)")
    journald_session.start()  # left running: later tests (and other checkouts) share it


@pytest.fixture
def core_pattern(root: None) -> Iterator[None]:
    """Hold the global core_pattern lock; restore core_pattern and core_pipe_limit afterwards."""
    need(os.access(CORE_PATTERN, os.W_OK), "core_pattern is not writable")
    CORE_PATTERN_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with CORE_PATTERN_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pattern = CORE_PATTERN.read_bytes()
        pipe_limit = CORE_PIPE_LIMIT.read_bytes()
        try:
            yield
        finally:
            CORE_PATTERN.write_bytes(pattern)
            CORE_PIPE_LIMIT.write_bytes(pipe_limit)


def which(tool: str) -> str:
    path = shutil.which(tool)
    need(path is not None, f"{tool} not installed")
    assert path is not None
    return path
