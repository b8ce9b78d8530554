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
  cold      no app runs: the entry + datagram, then the app is started the way
            drkonqi-lite.socket starts it (a new process with the bound socket as fd 3,
            LISTEN_FDS=1, forked once the socket is readable) and ends after DismissAll; the
            app's own "start-up:" stages (since its fork) are reported too.
  waiter    the same from the resident waiter of XDG autostart (`drkonqi-lite --autostart`,
            drkonqi_lite/waiter.py): it forks the app per crash (no exec) and outlives it.
The tree is byte-compiled first, as the package's postinst does.
Usage: python benchmarks/app_latency.py [--runs 20] [--modes cold,waiter,contract,nowake,systemd]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.entries import live_entry
from tests.integration.desktop import (
    User,
    desktop_session,
    send_entry_as,
    wait_for,
)

TOOLS = Path(os.environ.get("DKL_TOOLS", "/work/shared/tools"))
LOCK = Path("/run/lock/drkonqi-lite-core_pattern.lock")
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")
_TIME = re.compile(r"time=(\d+\.\d+)")
_STAGE = re.compile(r"(\w[\w ]*?) (\d+) ms")


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
        fields = live_entry(user.uid, comm=f"bench{i}", exe=f"/usr/bin/bench{i}")
        t0 = time.time()
        send_entry_as(user.uid, fields, wakeup if wake else None)
        out.append((mon.wait_one() - t0) * 1000)
        _settle(user)
        mon.drain()
    return out


def _socket_unit(user: User) -> socket.socket:
    """drkonqi-lite.socket's socket: bound by root for the user, 0600 (SocketMode=)."""
    path = user.runtime / "drkonqi-lite" / "wakeup"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    os.chown(path.parent, user.uid, user.uid)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    os.chown(path, user.uid, user.uid)
    path.chmod(0o600)
    return sock


def _activate(user: User, sock: socket.socket) -> subprocess.Popen[bytes]:
    """What systemd does on the socket's first datagram: fork, fd 3, LISTEN_PID/LISTEN_FDS."""
    argv = user.argv(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "sh", sys.executable,
                      "-m", "drkonqi_lite", "--autostart", "--exit-when-idle"])  # fmt: skip
    fd = sock.fileno()
    log = (user.logs / "app.log").open("ab")
    # (preexec_fn: this benchmark runs no threads. subprocess closes the fds not in pass_fds
    # after preexec_fn has run, so fd 3 must be named there too.)
    return subprocess.Popen(argv, stdout=log, stderr=log, pass_fds=tuple(sorted({fd, 3})),
                            preexec_fn=lambda: os.dup2(fd, 3))  # noqa: PLW1509  # fmt: skip


def _startup_line(user: User, offset: int) -> str:
    """The app's "start-up:" line logged after `offset`."""
    deadline = time.monotonic() + 10
    while "start-up:" not in user.app_log()[offset:]:
        assert time.monotonic() < deadline, "no start-up line"
        time.sleep(0.02)
    return user.app_log()[offset:].split("start-up:", 1)[1].splitlines()[0]


def run_cold_mode(
    user: User, mon: NotifyMonitor, runs: int
) -> tuple[list[float], dict[str, list[float]]]:
    sock = _socket_unit(user)
    wakeup = user.runtime / "drkonqi-lite" / "wakeup"
    out: list[float] = []
    stages: dict[str, list[float]] = {}
    try:
        for i in range(runs):
            fields = live_entry(user.uid, comm=f"cold{i}", exe=f"/usr/bin/cold{i}")
            logged = len(user.app_log())
            t0 = time.time()
            send_entry_as(user.uid, fields, wakeup)
            select.select([sock], [], [], 5)
            app = _activate(user, sock)
            try:
                out.append((mon.wait_one(15) - t0) * 1000)
            except TimeoutError:
                print(user.app_log()[logged:], file=sys.stderr)
                raise
            line = _startup_line(user, logged)
            for stage, ms in _STAGE.findall(line):
                stages.setdefault(stage.strip(), []).append(float(ms))
            user.dbus_call("DismissAll")
            app.wait(timeout=30)
            _settle(user)
            mon.drain()
    finally:
        sock.close()
    return out, stages


def run_waiter_mode(user: User, mon: NotifyMonitor, runs: int) -> list[float]:
    waiter = user.spawn([sys.executable, "-m", "drkonqi_lite", "--autostart"], "waiter")
    wakeup = user.runtime / "drkonqi-lite" / "wakeup"
    wait_for(wakeup.is_socket, what="the waiter's socket")
    out: list[float] = []

    def children() -> list[str]:
        found = subprocess.run(["pgrep", "-P", str(waiter.pid)], capture_output=True,
                               text=True, check=False)  # fmt: skip
        return found.stdout.split()

    try:
        for i in range(runs):
            fields = live_entry(user.uid, comm=f"wait{i}", exe=f"/usr/bin/wait{i}")
            t0 = time.time()
            send_entry_as(user.uid, fields, wakeup)
            out.append((mon.wait_one(15) - t0) * 1000)
            user.dbus_call("DismissAll")
            wait_for(lambda: not children(), timeout=30, what="the app's end")
            _settle(user)
            mon.drain()
    finally:
        user.stop(waiter)
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


def _resident_mode(user: User, mon: NotifyMonitor, runs: int, mode: str) -> list[float]:
    if mode in {"systemd", "collector"}:
        return run_kernel_mode(user, mon, runs, mode)
    return run_entry_mode(user, mon, runs, wake=(mode == "contract"))


def _byte_compile() -> None:
    """The app runs as a user who cannot write __pycache__ in this tree: without .pyc files it
    would compile every module at every start (~45 ms here), which no installation does (the
    package's postinst byte-compiles, and a user's own checkout is writable by them)."""
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "drkonqi_lite"),
                    str(root / "collector")], check=True, stdout=subprocess.DEVNULL)  # fmt: skip


def _add_applications(user: User, count: int) -> None:
    """`count` installed applications in the user's data dir, copied round-robin from this
    machine's (their localised names and comments are most of a real entry's size)."""
    if not count:
        return
    real = sorted(Path("/usr/share/applications").glob("*.desktop"))
    apps = user.home / ".local/share/applications"
    apps.mkdir(parents=True)
    for i in range(count):
        source = real[i % len(real)]
        (apps / f"bench{i}-{source.name}").write_bytes(source.read_bytes())
    for path in [user.home / ".local", user.home / ".local/share", apps, *apps.iterdir()]:
        os.chown(path, user.uid, user.uid)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--modes", default="cold,waiter,contract,nowake,systemd,collector")
    parser.add_argument("--desktop-entries", type=int, default=0, metavar="N",
                        help="give the user N more applications (copies of this machine's "
                        ".desktop files), as on a full desktop (Plasma installs ~300)")  # fmt: skip
    args = parser.parse_args()
    _byte_compile()
    gen = desktop_session(with_display=True)
    desktop = next(gen)
    results: dict[str, dict[str, float]] = {}
    try:
        user = desktop.user()
        _add_applications(user, args.desktop_entries)
        user.start_dunst()
        mon = NotifyMonitor(user)
        app = None
        try:
            for mode in args.modes.split(","):
                if mode == "waiter":  # before the resident app owns the bus name
                    ms = run_waiter_mode(user, mon, args.runs)
                elif mode == "cold":
                    ms, stages = run_cold_mode(user, mon, args.runs)
                    results["cold_stages_median_ms"] = {
                        k: round(statistics.median(v), 1) for k, v in stages.items()
                    }
                else:
                    if app is None:
                        app = user.start_app(log="resident")
                        user.wait_log("started:", log="resident")
                        time.sleep(0.5)
                        mon.drain()
                    ms = _resident_mode(user, mon, args.runs, mode)
                results[mode] = {"median_ms": round(statistics.median(ms), 1),
                                 "min_ms": round(min(ms), 1), "max_ms": round(max(ms), 1),
                                 "runs": len(ms)}  # fmt: skip
                print(mode, results[mode], results.get("cold_stages_median_ms", ""), flush=True)
        finally:
            mon.close()
            if app is not None:
                user.stop(app)
    finally:
        for _ in gen:
            pass
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
