"""The real gdb on a real crash's stored core: a Python interpreter (python3-dbg, so gdb has
py-bt) killed by SIGSEGV, its core written by the kernel, stored zstd-compressed like the
collector does, then the full backtrace made in batch mode (all threads, locals, Python frames),
from the adapter and from the detail window; Cancel and the timeout kill the real gdb with
nothing left behind (SECURITY.md 7).

core_pattern is global: the core is written while holding the same lock as the `core_pattern`
fixture (module-scoped here: one crash for the four tests), and the pattern is restored.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses
import fcntl
import resource
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from pytestqt.qtbot import QtBot

from drkonqi_lite.adapters.gdb import (
    FullBacktraceJob,
    GdbOptions,
    GdbResult,
    GdbRunner,
    Outcome,
    open_in_debugger,
)
from drkonqi_lite.adapters.journal import JournalSource, trust_policy_for
from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash, crash_from_entry
from drkonqi_lite.domain.trust import TrustPolicy
from drkonqi_lite.qt.crash_detail_window import CrashDetailWindow
from drkonqi_lite.qt.crash_services import CrashServices
from drkonqi_lite_collector.journal.schema import core_filename
from tests import entries
from tests.conftest import CORE_PATTERN, CORE_PATTERN_LOCK, CORE_PIPE_LIMIT, need, which
from tests.integration.desktop import Display, wait_for
from tests.integration.processes import group_alive

SCRIPT = """
import os, signal, threading
ready = threading.Event()
def idle_worker():
    ready.set()
    threading.Event().wait()
threading.Thread(target=idle_worker, name="idle", daemon=True).start()
ready.wait()
def crash_here(depth):
    if depth:
        return crash_here(depth - 1)
    os.kill(os.getpid(), signal.SIGSEGV)
crash_here(3)
"""


@dataclasses.dataclass
class RealCrash:
    crash: Crash
    policy: TrustPolicy


def _unlimited_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


@pytest.fixture(scope="module")
def real_crash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCrash]:
    need(os.geteuid() == 0, "needs root (core_pattern)")
    which("gdb")
    python = which("python3.11-dbg")
    need(os.access(CORE_PATTERN, os.W_OK), "core_pattern is not writable")
    work = tmp_path_factory.mktemp("gdb")
    dumps = work / "dumps"
    dumps.mkdir()
    storage = work / "coredump"
    storage.mkdir()
    CORE_PATTERN_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with CORE_PATTERN_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved, saved_limit = CORE_PATTERN.read_bytes(), CORE_PIPE_LIMIT.read_bytes()
        try:
            CORE_PATTERN.write_text(f"{dumps}/core.%p")
            proc = subprocess.Popen([python, "-c", SCRIPT], preexec_fn=_unlimited_core)  # noqa: PLW1509
            assert proc.wait(60) == -signal.SIGSEGV
        finally:
            CORE_PATTERN.write_bytes(saved)
            CORE_PIPE_LIMIT.write_bytes(saved_limit)
    raw = dumps / f"core.{proc.pid}"
    assert raw.stat().st_size > 0
    ts = time.time_ns() // 1000
    stored = storage / core_filename(b"python3.11-dbg", 0, entries.BOOT, proc.pid, ts)
    with raw.open("rb") as src, stored.open("wb") as dst:
        zstandard.ZstdCompressor(level=3).copy_stream(src, dst)
    raw.unlink()
    stored.chmod(0o640)
    exe = str(Path(python).resolve())
    fields = entries.full_entry(pid=proc.pid, comm="python3.11-dbg", exe=exe, ts=ts, signo=11,
                                uid=0, COREDUMP_FILENAME=str(stored))  # fmt: skip
    crash = dataclasses.replace(crash_from_entry(fields), core_state=entries.crash().core_state)
    yield RealCrash(crash, TrustPolicy(0, frozenset({0}), (str(storage),)))
    shutil.rmtree(work, ignore_errors=True)




def full_backtrace(qtbot: QtBot, w: CrashDetailWindow) -> GdbResult:
    """Press Generate and wait: real gdb ends with the crashing Python function in the text."""
    with qtbot.waitSignal(w.backtrace.finished, timeout=120_000) as blocker:
        assert w.backtrace.generate()
    result = blocker.args[0]
    assert isinstance(result, GdbResult)
    assert result.outcome is Outcome.DONE, result.message
    assert "crash_here" in w.backtrace.text.toPlainText()
    return result


def test_full_backtrace_of_a_real_core(real_crash: RealCrash) -> None:
    job = FullBacktraceJob(real_crash.crash, real_crash.policy, GdbOptions(timeout_s=120))
    result = job.run()
    assert result.outcome is Outcome.DONE, result.message + result.text[-2000:]
    text = result.text
    assert "=== All threads ===" in text
    assert text.count("Thread 2 ") >= 1  # both threads: the crashing one and the idle worker
    assert "Thread 1 " in text
    assert "kill" in text  # the C frame that raised SIGSEGV
    assert "=== Crashing thread, with locals ===" in text
    assert "=== Python frames ===" in text
    assert "crash_here" in text  # py-bt: the Python function that crashed
    assert "<string>" in text


def test_detail_window_generates_the_real_full_backtrace(
    qtbot: QtBot, real_crash: RealCrash
) -> None:
    services = CrashServices(real_crash.policy, now_us=lambda: entries.NOW_US)
    w = CrashDetailWindow(real_crash.crash, Program("Python (debug)"), services)
    qtbot.addWidget(w)
    full_backtrace(qtbot, w)
    assert "crash_here" in w.report()


def _start(real_crash: RealCrash, options: GdbOptions) -> tuple[FullBacktraceJob, threading.Event,
                                                               list[GdbResult]]:  # fmt: skip
    runner = GdbRunner()
    done = threading.Event()
    results: list[GdbResult] = []
    job = FullBacktraceJob(real_crash.crash, real_crash.policy, options)

    def finished(result: GdbResult) -> None:
        results.append(result)
        done.set()

    assert runner.start(job, finished)
    return job, done, results


def test_cancel_kills_the_real_gdb(real_crash: RealCrash) -> None:
    job, done, results = _start(real_crash, GdbOptions(timeout_s=120))
    deadline = time.monotonic() + 30
    while job.pgid is None and not done.is_set():  # gdb starts after the decompression
        assert time.monotonic() < deadline
        time.sleep(0.005)
    pgid = job.pgid
    assert pgid is not None, "gdb finished before it could be cancelled"
    assert Path(f"/proc/{pgid}/comm").read_text().strip() == "gdb"
    job.cancel()
    assert done.wait(30)
    assert results[0].outcome is Outcome.CANCELLED
    assert group_alive(pgid) == []


def test_timeout_kills_the_real_gdb(real_crash: RealCrash) -> None:
    _job, done, results = _start(real_crash, GdbOptions(timeout_s=0.05))
    assert done.wait(60)
    assert results[0].outcome is Outcome.TIMED_OUT, results[0].message
    assert "was stopped" in results[0].message
    gdbs = subprocess.run(["pgrep", "-f", f"-c {real_crash.crash.core_filename}"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert gdbs.stdout == ""


def test_open_in_debugger_runs_gdb_in_a_terminal_and_cleans_up(
    real_crash: RealCrash, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    which("xterm")
    display = Display(tmp_path)
    try:
        monkeypatch.setenv("DISPLAY", display.display)
        open_in_debugger(real_crash.crash, real_crash.policy, debuginfod=False)

        def gdb_in_xterm() -> list[int]:
            found = []
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        argv = (entry / "cmdline").read_bytes().split(b"\0")
                        parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                        pcomm = Path(f"/proc/{parent}/comm").read_text().strip()
                    except OSError:
                        continue
                    if Path(argv[0].decode()).name == "gdb" and pcomm == "xterm":
                        found.append(int(entry.name))
            return found

        wait_for(gdb_in_xterm, timeout=20, what="gdb inside xterm")
        gdb_pid = gdb_in_xterm()[0]
        argv = Path(f"/proc/{gdb_pid}/cmdline").read_bytes().split(b"\0")
        core = Path(argv[argv.index(b"-c") + 1].decode())
        assert core.exists()
        assert stat.S_IMODE(core.parent.stat().st_mode) == 0o700
        assert b"set debuginfod enabled off" in argv
        assert Path(f"/proc/{gdb_pid}").stat().st_uid == os.getuid()  # as the user, not elevated
        xterm = int(Path(f"/proc/{gdb_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(xterm, signal.SIGTERM)
        wait_for(lambda: not core.parent.exists(), timeout=20, what="the private dir removed")
    finally:
        display.close()


TOOLS = Path(os.environ.get("DKL_TOOLS", "/work/shared/tools"))


@pytest.mark.crash
def test_full_backtrace_from_a_real_systemd_coredump_entry(
    journald: None, core_pattern: None, qtbot: QtBot
) -> None:
    """The whole path with the real systemd-coredump as the kernel's handler: its journal entry
    read by the app's JournalSource, its stored core opened inside /var/lib/systemd/coredump,
    and the detail window's full backtrace made by the real gdb."""
    anchor = TOOLS / "systemd-coredump-anchor"
    need(anchor.exists(), f"{anchor} missing (set DKL_TOOLS)")
    python = which("python3.11-dbg")
    out = subprocess.run([str(anchor), "start"], capture_output=True, text=True, check=True)
    CORE_PATTERN.write_text(out.stdout.strip().splitlines()[-1])
    source = JournalSource(trust_policy_for(os.getuid()))
    source.seek_now()
    proc = subprocess.Popen([python, "-c", SCRIPT], preexec_fn=_unlimited_core)  # noqa: PLW1509
    assert proc.wait(60) == -signal.SIGSEGV
    found: list[Crash] = []

    def entry_arrived() -> bool:
        source.process()
        found.extend(c for c in source.read() if c.pid == proc.pid)
        return bool(found)

    try:
        wait_for(entry_arrived, timeout=30, what="systemd-coredump's journal entry")
    finally:
        source.close()
    crash = found[0]
    assert crash.fields["SYSLOG_IDENTIFIER"] == "systemd-coredump"
    assert crash.core_filename.startswith("/var/lib/systemd/coredump/")
    assert crash.core_state == "present"
    w = CrashDetailWindow(crash, Program("Python (debug)"), CrashServices(trust_policy_for(0)))
    qtbot.addWidget(w)
    full_backtrace(qtbot, w)
    Path(crash.core_filename).unlink()
