"""Full backtraces with gdb in batch mode, and gdb in a terminal, on a stored core.

The core is decompressed into a private 0700 directory (stored_core), gdb runs as the user (the
app never runs as root, SECURITY.md 8) in its own process group, and the directory is removed
afterwards. Cancel and the timeout kill the whole group with SIGKILL, so nothing gdb started
(debuginfod helpers, shells) survives (SECURITY.md 7). At most one batch gdb runs at a time
(GdbRunner). Nothing from the entry or the core is executed (SECURITY.md 15): the executable and
core are data files for gdb; gdb auto-loads nothing (no .debug_gdb_scripts, objfile-gdb.py or
.gdb scripts, local .gdbinit, nor a libthread_db next to a library the core names) because the
names it would judge come from the core's link map, which the crashed program wrote, and gdb's
safe-path compares them as text (`/usr/share/gdb/auto-load/../../../tmp/evil.so` passes); no
gdbinit is read; py-bt's helper is sourced by its system path, chosen from the system's files.
debuginfod downloads happen only when the user opted in. Blocking: call `run` off the GUI thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from drkonqi_lite.adapters.stored_core import (
    CancelledError,
    CoreUnavailableError,
    decompress_core,
    private_dir,
    remove_private_dir,
)
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.trust import TrustPolicy

#: The system's gdb helpers (python3-dbg's py-bt among them); none is loaded automatically.
AUTO_LOAD_DIR = "/usr/share/gdb/auto-load"
DEFAULT_TIMEOUT_S = 120.0
#: More gdb output than this is cut (a runaway trace must not eat the user's memory).
MAX_OUTPUT = 16 << 20
_PYTHON = re.compile(r"^python\d*(\.\d+)?(d|-dbg)?$")


class Outcome(enum.StrEnum):
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed-out"


@dataclasses.dataclass(frozen=True, slots=True)
class GdbResult:
    """What a full-backtrace run produced; `message` says what happened in words."""

    outcome: Outcome
    text: str
    message: str
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class GdbOptions:
    gdb: str = "gdb"
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: Download missing debug info from the distribution's debuginfod server (opt-in).
    debuginfod: bool = False


def python_helper(crash: Crash, auto_load_dir: str = AUTO_LOAD_DIR) -> Path | None:
    """The system's py-bt helper for a Python interpreter's crash, else None.

    Only the name's shape is taken from the entry (`python3.11`, `python3.11-dbg`: no `/`, no
    `..`); the file is the one the distribution installed for that interpreter under
    `auto_load_dir`, or its libpython's (Debian links them to one file there), resolved,
    root-owned and not writable by others.
    """
    name = Path(crash.exe).name if crash.exe else crash.comm
    if not _PYTHON.match(name):
        return None
    base = Path(auto_load_dir)
    candidates = [base / "usr/bin" / f"{name}-gdb.py"]
    candidates += sorted(base.glob("usr/lib/*/libpython3*.so*-gdb.py"))
    for candidate in candidates:
        try:
            path = candidate.resolve(strict=True)
            st = path.stat()
        except (OSError, RuntimeError):
            continue
        if not path.is_relative_to(base.resolve()):
            continue
        if stat.S_ISREG(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022:
            return path
    return None


def usable_executable(exe: str) -> str | None:
    """The executable to give gdb: an absolute path to an existing regular file, else None."""
    if not exe.startswith("/") or "\x00" in exe:
        return None
    return exe if Path(exe).is_file() else None


def common_options(debuginfod: bool, helper: Path | None) -> list[str]:
    """Safety options shared by batch and interactive gdb (before anything is loaded: -iex)."""
    options = [
        "--nx",  # no system, user or local gdbinit
        # Nothing auto-loaded, whatever safe-path would say of a name from the core.
        "-iex", "set auto-load off",
        # libthread_db only from the system's library directories ($sdir), never from the
        # directory of the libc the core's link map names ($pdir, in gdb's default).
        "-iex", "set libthread-db-search-path $sdir",
        "-iex", f"set debuginfod enabled {'on' if debuginfod else 'off'}",
    ]  # fmt: skip
    if helper is not None:
        options += ["-iex", f"source {helper}"]
    return options


def batch_argv(
    gdb: str, exe: str | None, core: Path, *, debuginfod: bool, python: Path | None
) -> list[str]:
    """gdb's argv for the full backtrace: all threads with arguments, locals, and the Python
    frames when `python` (the system's py-bt helper) is given."""
    argv = [gdb, "--batch", *common_options(debuginfod, python)]
    argv += ["-ex", "set pagination off", "-ex", "set width 0",
             "-ex", "set print frame-arguments scalars",
             "-ex", "echo \\n=== All threads ===\\n", "-ex", "thread apply all bt",
             "-ex", "echo \\n=== Crashing thread, with locals ===\\n",
             "-ex", "bt full 8"]  # fmt: skip
    if python:
        argv += ["-ex", "echo \\n=== Python frames ===\\n", "-ex", "py-bt"]
    if exe is not None:
        argv += ["-se", exe]  # symbols and executable (plain -e loads no symbols)
    argv += ["-c", str(core)]
    return argv


def gdb_environment(debuginfod: bool) -> dict[str, str]:
    """The user's environment; without DEBUGINFOD_URLS unless the user opted in."""
    env = dict(os.environ)
    if not debuginfod:
        env.pop("DEBUGINFOD_URLS", None)
    env["TERM"] = "dumb"
    return env


def kill_group(pgid: int) -> None:
    """SIGKILL a process group (gdb and everything it started); gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class FullBacktraceJob:
    """One full-backtrace run. `run()` blocks (worker thread); `cancel()` from any thread."""

    def __init__(
        self,
        crash: Crash,
        policy: TrustPolicy,
        options: GdbOptions,
        on_stage: Callable[[str], None] | None = None,
    ) -> None:
        self.crash = crash
        self._policy = policy
        self._options = options
        self._on_stage = on_stage or (lambda _stage: None)
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self.pgid: int | None = None

    def cancel(self) -> None:
        """Stop now: the decompression stops at the next chunk, gdb's group is killed."""
        self._cancelled.set()
        with self._lock:
            if self.pgid is not None:
                kill_group(self.pgid)

    def run(self) -> GdbResult:
        start = time.monotonic()

        def result(outcome: Outcome, text: str, message: str) -> GdbResult:
            return GdbResult(outcome, text, message, time.monotonic() - start)

        if not self.crash.core_filename:
            return result(Outcome.FAILED, "", "This crash has no stored core file.")
        gdb = shutil.which(self._options.gdb)
        if gdb is None:
            return result(Outcome.FAILED, "", "gdb is not installed (apt install gdb).")
        directory = private_dir()
        try:
            self._on_stage("Decompressing the core…")
            try:
                core = decompress_core(
                    self._policy, self.crash.core_filename, directory, self._cancelled
                )
            except CancelledError:
                return result(Outcome.CANCELLED, "", "Cancelled.")
            except CoreUnavailableError as exc:
                return result(Outcome.FAILED, "", f"The core cannot be used: {exc}.")
            except OSError as exc:
                return result(Outcome.FAILED, "", f"The core cannot be unpacked: {exc.strerror}.")
            self._on_stage("Running gdb…")
            argv = batch_argv(
                gdb,
                usable_executable(self.crash.exe),
                core,
                debuginfod=self._options.debuginfod,
                python=python_helper(self.crash),
            )
            return self._gdb(argv, start, result)
        finally:
            remove_private_dir(directory)

    def _gdb(
        self, argv: Sequence[str], start: float, result: Callable[[Outcome, str, str], GdbResult]
    ) -> GdbResult:
        with self._lock:
            if self._cancelled.is_set():
                return result(Outcome.CANCELLED, "", "Cancelled.")
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=gdb_environment(self._options.debuginfod),
                start_new_session=True,  # its own process group: killpg reaches its children
            )
            self.pgid = proc.pid
        # Read in a thread and wait on gdb itself: a child gdb left behind may hold the pipe
        # open, so EOF alone would wait for it; the group kill below ends it.
        chunks: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(proc, chunks), daemon=True)
        reader.start()
        timed_out = False
        try:
            remaining = max(0.0, self._options.timeout_s - (time.monotonic() - start))
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            kill_group(proc.pid)  # sweep gdb and anything it left behind, whatever happened
            proc.wait()
            reader.join()
            with self._lock:
                self.pgid = None
        out = b"".join(chunks)
        text = out[:MAX_OUTPUT].decode("utf-8", errors="replace")
        if timed_out:
            return result(
                Outcome.TIMED_OUT, text, f"gdb took longer than {self._options.timeout_s:g} s "
                "and was stopped."
            )  # fmt: skip
        if self._cancelled.is_set():
            return result(Outcome.CANCELLED, text, "Cancelled.")
        if proc.returncode != 0:
            return result(Outcome.FAILED, text, f"gdb failed (exit status {proc.returncode}).")
        return result(Outcome.DONE, text, "")


def _drain(proc: subprocess.Popen[bytes], chunks: list[bytes]) -> None:
    """Collect gdb's output (bounded) until EOF."""
    pipe = proc.stdout
    if pipe is None:  # pragma: no cover - always a pipe
        return
    size = 0
    with pipe:
        while data := os.read(pipe.fileno(), 1 << 16):
            if size < MAX_OUTPUT:
                chunks.append(data)
            size += len(data)


class GdbRunner:
    """Runs at most one FullBacktraceJob at a time, each in a worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: FullBacktraceJob | None = None

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._job is not None

    @property
    def current(self) -> FullBacktraceJob | None:
        with self._lock:
            return self._job

    def start(self, job: FullBacktraceJob, on_done: Callable[[GdbResult], None]) -> bool:
        """Start `job` in a thread; False (nothing started) while another job runs.

        `on_done` is called in the worker thread: post it to the GUI thread (a Qt signal).
        """
        with self._lock:
            if self._job is not None:
                return False
            self._job = job

        def work() -> None:
            try:
                outcome = job.run()
            except Exception as exc:  # noqa: BLE001 (a worker must always report back)
                outcome = GdbResult(Outcome.FAILED, "", f"Internal error: {exc!r}", 0.0)
            with self._lock:
                self._job = None
            # The window that asked may be gone (closed mid-run: Qt raises RuntimeError for a
            # deleted receiver); gdb is already dead and its directory removed either way.
            with contextlib.suppress(RuntimeError):
                on_done(outcome)

        threading.Thread(target=work, name="drkonqi-lite-gdb", daemon=True).start()
        return True

    def cancel(self) -> None:
        job = self.current
        if job is not None:
            job.cancel()


# --- gdb in a terminal ----------------------------------------------------------------------
#: Terminals that stay in the foreground until their command exits, with how to pass argv.
TERMINALS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("konsole", ("--nofork", "-e")),
    ("gnome-terminal", ("--wait", "--")),
    ("xfce4-terminal", ("--disable-server", "-x")),
    ("xterm", ("-e",)),
)


def find_terminal() -> list[str] | None:
    """The argv prefix of the first installed terminal, or None."""
    for name, args in TERMINALS:
        path = shutil.which(name)
        if path is not None:
            return [path, *args]
    return None


def interactive_argv(terminal: Sequence[str], gdb: str, exe: str | None, core: Path,
                     *, debuginfod: bool, python: Path | None = None) -> list[str]:  # fmt: skip
    """A terminal running an interactive gdb on the executable and core (py-bt available when
    `python`, the system's helper, is given)."""
    argv = [*terminal, gdb, "-q", *common_options(debuginfod, python)]
    if exe is not None:
        argv += ["-se", exe]  # symbols and executable (plain -e loads no symbols)
    return [*argv, "-c", str(core)]


def open_in_debugger(crash: Crash, policy: TrustPolicy, *, debuginfod: bool) -> None:
    """Decompress the core, start a terminal with gdb (as the user), clean up when it exits.

    Blocking (decompression): call off the GUI thread. Raises CoreUnavailableError with the
    reason in words when it cannot start.
    """
    terminal = find_terminal()
    if terminal is None:
        raise CoreUnavailableError(
            "no terminal found (install konsole, gnome-terminal, xfce4-terminal or xterm)"
        )
    gdb = shutil.which("gdb")
    if gdb is None:
        raise CoreUnavailableError("gdb is not installed")
    if not crash.core_filename:
        raise CoreUnavailableError("this crash has no stored core file")
    directory = private_dir()
    try:
        core = decompress_core(policy, crash.core_filename, directory)
        argv = interactive_argv(
            terminal,
            gdb,
            usable_executable(crash.exe),
            core,
            debuginfod=debuginfod,
            python=python_helper(crash),
        )
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, env=gdb_environment(debuginfod), start_new_session=True
        )
    except BaseException:
        remove_private_dir(directory)
        raise

    def clean_up() -> None:
        proc.wait()
        remove_private_dir(directory)

    threading.Thread(target=clean_up, name="drkonqi-lite-debugger", daemon=True).start()
