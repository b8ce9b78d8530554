"""SECURITY.md 12: fair storage.

One user's cores never cause another user's cores to be deleted before that user's own, and no
single core is stored beyond what MaxUse= and KeepFree= leave. The hostile core is cheap to make
and incompressible: one random file mapped many times, with coredump_filter 0x3f so that the
kernel dumps file-backed mappings too (16 MiB of file, a 256 MiB core).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.integration.harness import Harness
from tests.integration.journal_read import field, wait_entry_since
from tests.integration.processes import crash_self, spawn_as
from tests.integration.test_security_hostile_user import ATTACKER, VICTIM, attacker  # noqa: F401

MiB = 1024**2

MAPPER = r"""
import mmap, os, signal, sys
path, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open("/proc/self/coredump_filter", "w") as f:
    f.write("0x3f")
fd = os.open(path, os.O_RDONLY)
maps = [mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) for _ in range(count)]
os.kill(os.getpid(), signal.SIGSEGV)
"""


def _usage(h: Harness) -> int:
    return sum(p.stat().st_blocks * 512 for p in h.cores())


def _victim_crash(t0: float, crashme: Path) -> Path:
    pid = crash_self([str(crashme)], VICTIM, VICTIM, env={"DKL_TOUCH": str(256 * 1024)})
    core = Path(field(wait_entry_since(t0, COREDUMP_PID=pid), "COREDUMP_FILENAME").decode())
    assert core.is_file()
    return core


def test_one_users_huge_core_deletes_no_other_users_cores(
    t0: float, harness: Harness, core_pattern: None, crashme: Path, attacker: int  # noqa: F811
) -> None:
    harness.configure("MaxUse=4M\nKeepFree=0\n")
    harness.install()
    theirs = [_victim_crash(t0, crashme) for _ in range(3)]

    blob = harness.prefix / "mapped"
    blob.write_bytes(os.urandom(16 * MiB))
    blob.chmod(0o644)
    script = harness.prefix / "mapper.py"
    script.write_text(MAPPER)
    script.chmod(0o644)
    proc = spawn_as(
        [sys.executable, "-I", str(script), str(blob), str(16 * MiB), "16"], attacker, attacker
    )
    assert proc.wait(timeout=120) == -11
    e = wait_entry_since(t0, COREDUMP_PID=proc.pid, timeout=60)
    assert field(e, "COREDUMP_TRUNCATED") == b"1", "cut to what the limits leave it"
    mine = Path(field(e, "COREDUMP_FILENAME").decode())
    assert mine.stat().st_blocks * 512 < 4 * MiB
    assert all(p.is_file() for p in theirs), "the other user's cores were deleted"
    assert _usage(harness) <= 4 * MiB

    # The victim's next crash is stored too, within the limits (if room has to be made, it is
    # the heaviest user's: the hostile core).
    later = _victim_crash(t0, crashme)
    assert all(p.is_file() for p in [*theirs, later])
    assert _usage(harness) <= 4 * MiB

