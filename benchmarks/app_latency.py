"""Crash → Notify received on the bus, median over N (DESIGN.md §5: ≤ 200 ms for a small crash).

Runs as root with the host journald; the app runs as a fresh unprivileged user with its own
session bus and dunst (tests/integration/desktop.py). The Notify call is timestamped by
`dbus-monitor` on that bus (it sees the call when the server does). Modes:
  contract  the collector's contract: the entry is sent as the user, then one wake-up datagram
            (t0 = just before journal.send). This is the app's share of our pipeline.
  nowake    the same entry without the datagram (the journal fd path only).
  systemd   a real `sleep` killed with SIGSEGV through the real systemd-coredump
            (t0 = kill(2)); needs the core_pattern lock, restores the pattern.
  collector the same through our collector (scratch prefix, as tests/integration/harness.py).
Usage: python benchmarks/app_latency.py [--runs 20] [--modes contract,nowake,systemd]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.desktop import (
    User,
    coredump_fields,
    desktop_session,
    send_entry_as,
    wait_for,
)

TOOLS = Path(os.environ.get("DKL_TOOLS", "/work/shared/tools"))
LOCK = Path("/run/lock/drkonqi-lite-core_pattern.lock")
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")
_TIME = re.compile(r"time=(\d+\.\d+)")


class NotifyMonitor:
    def __init__(self, user: User) -> None:
        rule = "type='method_call',interface='org.freedesktop.Notifications',member='Notify'"
        self.proc = subprocess.Popen(user.argv(["dbus-monitor", "--session", rule]),
                                     stdout=subprocess.PIPE, text=True, bufsize=1)  # fmt: skip
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
        self._buf = ""
        time.sleep(0.3)
        self.drain()

    def drain(self) -> list[float]:
        with contextlib.suppress(BlockingIOError, TypeError):
            self._buf += self.proc.stdout.read() or ""  # type: ignore[union-attr]
        times = [float(m) for m in _TIME.findall(self._buf)]
        self._buf = ""
        return [t for t in times if t > 1e9]

    def wait_one(self, timeout: float = 10) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.drain()
            if got:
                return got[0]
            time.sleep(0.002)
        raise TimeoutError("no Notify seen")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def _settle(user: User) -> None:
    user.dunstctl("close-all")
    time.sleep(0.3)


def run_entry_mode(user: User, mon: NotifyMonitor, runs: int, wake: bool) -> list[float]:
    out = []
    wakeup = user.runtime / "drkonqi-lite" / "wakeup"
    for i in range(runs):
        # Distinct programs: each crash is its own notification (no group replacement).
        fields = coredump_fields(user.uid, comm=f"bench{i}", exe=f"/usr/bin/bench{i}")
        t0 = time.time()
        send_entry_as(user.uid, fields, wakeup if wake else None)
        out.append((mon.wait_one() - t0) * 1000)
        _settle(user)
        mon.drain()
    return out


def _systemd_pattern() -> str:
    anchor = subprocess.run([str(TOOLS / "systemd-coredump-anchor"), "start"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    return anchor.stdout.strip().splitlines()[-1]


def _collector_pattern(prefix: Path) -> str:
    from drkonqi_lite_collector import config  # noqa: PLC0415
    from drkonqi_lite_collector.admin import pattern  # noqa: PLC0415

    paths = config.Paths(str(prefix))
    Path("/proc/sys/kernel/core_pipe_limit").write_text("16\n")
    return pattern.make_pattern(pattern.write_launcher(paths), paths.prefix)


def run_kernel_mode(user: User, mon: NotifyMonitor, runs: int, handler: str) -> list[float]:
    prefix = Path(tempfile.mkdtemp(prefix="dkl-", dir="/tmp"))  # short: core_pattern ≤ 128 B
    prefix.chmod(0o755)
    out = []
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = CORE_PATTERN.read_bytes()
        limit = Path("/proc/sys/kernel/core_pipe_limit").read_bytes()
        try:
            pattern = _systemd_pattern() if handler == "systemd" else _collector_pattern(prefix)
            CORE_PATTERN.write_text(pattern)
            for i in range(runs):
                link = user.home / f"sleep{i}"  # a distinct exe per crash: no grouping
                link.unlink(missing_ok=True)
                link.symlink_to("/bin/sleep")
                proc = user.spawn([str(link), "1000"], "sleep")
                comm = Path(f"/proc/{proc.pid}/comm")

                def running(comm: Path = comm) -> bool:
                    return comm.read_text().strip().startswith("sleep")

                wait_for(running)
                time.sleep(0.05)
                t0 = time.time()
                os.kill(proc.pid, signal.SIGSEGV)
                out.append((mon.wait_one(15) - t0) * 1000)
                proc.wait()
                _settle(user)
                mon.drain()
        finally:
            CORE_PATTERN.write_bytes(old)
            Path("/proc/sys/kernel/core_pipe_limit").write_bytes(limit)
            shutil.rmtree(prefix, ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--modes", default="contract,nowake,systemd,collector")
    args = parser.parse_args()
    gen = desktop_session(with_display=True)
    desktop = next(gen)
    results: dict[str, dict[str, float]] = {}
    try:
        user = desktop.user()
        user.start_dunst()
        app = user.start_app()
        user.wait_log("started:")
        time.sleep(0.5)
        mon = NotifyMonitor(user)
        try:
            for mode in args.modes.split(","):
                if mode in {"systemd", "collector"}:
                    ms = run_kernel_mode(user, mon, args.runs, mode)
                else:
                    ms = run_entry_mode(user, mon, args.runs, wake=(mode == "contract"))
                results[mode] = {"median_ms": round(statistics.median(ms), 1),
                                 "min_ms": round(min(ms), 1), "max_ms": round(max(ms), 1),
                                 "runs": len(ms)}  # fmt: skip
                print(mode, results[mode], flush=True)
        finally:
            mon.close()
            user.stop(app)
    finally:
        for _ in gen:
            pass
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
