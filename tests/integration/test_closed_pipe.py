"""`drkonqi-lite-collector status | head -1` and friends: a reader that goes away early.

The programs run with a stdout pipe whose reading end is already closed, the strictest form of
`| head -1` (every write fails with EPIPE). They must end quietly: status 0, nothing on stderr
(no traceback, no "Exception ignored ... BrokenPipeError").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
COMMANDS = [
    ("drkonqi-lite-collector", "status"),
    ("drkonqi-lite-collector", "--help"),
    ("drkonqi-lite-collector", "--version"),
    ("drkonqi-lite", "list", "--json"),  # prints [] even without crashes
    ("drkonqi-lite", "list", "--since", "yesterday"),
    ("drkonqi-lite", "--help"),
    ("drkonqi-lite", "--version"),
    ("drkonqi-lite", "show", "--help"),
]


def run_into_closed_pipe(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [str(BIN / argv[0]), *argv[1:]],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_closed_stdout_ends_quietly(argv: tuple[str, ...]) -> None:
    out = run_into_closed_pipe(argv)
    assert (out.returncode, out.stderr) == (0, ""), f"{' '.join(argv)}: {out.stderr}"


def test_head_gets_the_first_line() -> None:
    """The real pipeline: head's line is the status's first, and nothing else is printed."""
    script = f"'{BIN}/drkonqi-lite-collector' status | head -1; echo status=${{PIPESTATUS[0]}}"
    out = subprocess.run(
        ["/bin/bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.startswith("core_pattern:    ")
    assert out.stdout.endswith("\nstatus=0\n")
    assert out.stderr == ""
