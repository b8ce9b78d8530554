"""Commands in test_deb.py's throw-away systemd container (nsenter into PID 1's namespaces)."""

from __future__ import annotations

import subprocess


def in_container(leader: int, *cmd: str, check: bool = True) -> str:
    """Run `cmd` in the container whose PID 1 is `leader` (all its namespaces)."""
    out = subprocess.run(
        ["nsenter", "-t", str(leader), "-a", *cmd],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 or not check, f"{cmd}: {out.stdout}{out.stderr}"
    return out.stdout
