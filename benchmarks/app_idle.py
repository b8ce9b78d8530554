"""Idle cost of the resident app: wake-ups (context switches of all its threads) and RSS.

DESIGN.md §5: where no systemd user manager runs, <= 2 wake-ups per 20 s with a busy journal
and <= 40 MiB. Starts the app as a fresh user (own bus, dunst, Xvfb + trayer), lets it settle,
then counts voluntary + involuntary context switches of every thread over the window, and
reads VmRSS/VmHWM. `--busy` runs `systemd-cat` writing 10 lines/s to the journal meanwhile;
`--handler collector` makes our collector (scratch prefix) the kernel's crash handler for the
run, `other` the kernel itself (core_pattern `core`: the app must then watch the journal fd);
both hold the core_pattern lock and restore the pattern. `--mode waiter` measures what XDG
autostart leaves resident (`drkonqi-lite --autostart`: the Qt-free waiter, drkonqi_lite/
waiter.py), `--mode app` the tray app itself (`drkonqi-lite`: what stays where the tray icon
is always shown).
Usage: python benchmarks/app_idle.py [--seconds 60] [--busy] [--handler collector|other]
                                     [--mode waiter|app]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.desktop import PYTHON, desktop_session

LOCK = Path("/run/lock/drkonqi-lite-core_pattern.lock")
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")
CORE_PIPE_LIMIT = Path("/proc/sys/kernel/core_pipe_limit")


def switches(pid: int) -> dict[str, int]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        total = 0
        for line in status.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
        name = (task / "comm").read_text().strip()
        out[f"{task.name}:{name}"] = total
    return out


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return -1


@contextlib.contextmanager
def crash_handler(kind: str) -> Iterator[None]:
    """Our collector, or not ours, as the handler for the block (under the core_pattern lock)."""
    from tests.integration.harness import make_prefix  # noqa: PLC0415

    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = CORE_PATTERN.read_bytes()
        limit = CORE_PIPE_LIMIT.read_bytes()
        prefixes = make_prefix()
        try:
            harness = next(prefixes)
            if kind == "collector":
                harness.install()
            else:
                CORE_PATTERN.write_text("core\n")
            yield
        finally:
            CORE_PATTERN.write_bytes(old)
            CORE_PIPE_LIMIT.write_bytes(limit)
            for _ in prefixes:
                pass


@contextlib.contextmanager
def busy_journal(on: bool) -> Iterator[None]:
    """Another program logging 10 lines a second through systemd-cat."""
    if not on:
        yield
        return
    writer = subprocess.Popen(
        ["sh", "-c", "while :; do echo busy; sleep 0.1; done | systemd-cat -t dkl-busy"],
        start_new_session=True,
    )
    try:
        yield
    finally:
        os.killpg(writer.pid, signal.SIGTERM)
        writer.wait()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--busy", action="store_true", help="systemd-cat logs 10 lines/s meanwhile")
    p.add_argument("--handler", choices=("collector", "other"), default="other")
    p.add_argument("--mode", choices=("waiter", "app"), default="waiter")
    a = p.parse_args()
    gen = desktop_session(with_display=True)
    desktop = next(gen)
    try:
        user = desktop.user()
        user.start_dunst()
        with crash_handler(a.handler), busy_journal(a.busy):
            if a.mode == "app":
                app = user.start_app()
                user.wait_log("started:")
            else:
                app = user.spawn([PYTHON, "-m", "drkonqi_lite", "--autostart"], "app")
                user.wait_log("waiting for crashes")
            time.sleep(3)  # let the catch-up step and Qt's start-up settle
            before = switches(app.pid)
            time.sleep(a.seconds)
            after = switches(app.pid)
        per_thread = {k: after[k] - before.get(k, 0) for k in after}
        result = {
            "seconds": a.seconds,
            "busy_journal": a.busy,
            "handler": a.handler,
            "mode": a.mode,
            "wakeups_total": sum(per_thread.values()),
            "wakeups_per_thread": {k: v for k, v in per_thread.items() if v},
            "threads": len(after),
            "rss_mib": round(status_kib(app.pid, "VmRSS") / 1024, 1),
            "peak_rss_mib": round(status_kib(app.pid, "VmHWM") / 1024, 1),
        }
        user.stop(app)
        print(json.dumps(result))
    finally:
        for _ in gen:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
