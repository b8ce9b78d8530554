"""Where a start's time goes: stages since the kernel exec'd this process (benchmarks/APP.md).

No Qt: the first stage of the app (notifier.py) marks its stages before Qt is loaded.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def since_process_start_ms() -> float:
    """Milliseconds since the kernel started this process (its exec included; 10 ms ticks)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0.0
    started = ticks / os.sysconf("SC_CLK_TCK")
    return (time.clock_gettime(time.CLOCK_BOOTTIME) - started) * 1000


class StartupClock:
    """Stages of a start, from the process's exec: logged once, to find where a cold start's
    200 ms go (benchmarks/APP.md)."""

    def __init__(self) -> None:
        self._marks: list[tuple[str, float]] = []

    def mark(self, stage: str) -> None:
        self._marks.append((stage, since_process_start_ms()))

    def summary(self) -> str:
        return ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in self._marks)
