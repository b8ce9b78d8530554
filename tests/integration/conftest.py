from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import which
from tests.integration.harness import Harness, make_prefix
from tests.integration.processes import build_crashme, start_waiting, stop


@pytest.fixture
def harness(root: None, journald: None) -> Iterator[Harness]:
    yield from make_prefix()


@pytest.fixture
def installed(harness: Harness, core_pattern: None) -> Harness:
    """The collector as the kernel's crash handler for the test (core_pattern restored)."""
    harness.install()
    return harness


@pytest.fixture
def t0() -> float:
    """When the test started: only entries journald received since then are this test's."""
    return time.time()


@pytest.fixture(scope="session")
def crashme() -> Path:
    """The C crash target of the security suites (built once, cached by its source)."""
    which("gcc")
    return build_crashme()


@pytest.fixture
def waiting(crashme: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A crash target of uid 1000, waiting; stopped after the test."""
    proc = start_waiting([str(crashme)], 1000, 1000)
    try:
        yield proc
    finally:
        stop(proc)


@pytest.fixture
def suid_dumpable() -> Iterator[None]:
    """fs.suid_dumpable=2: without it the kernel never hands over set-uid cores at all."""
    path = Path("/proc/sys/fs/suid_dumpable")
    saved = path.read_text()
    path.write_text("2\n")
    try:
        yield
    finally:
        path.write_text(saved)
