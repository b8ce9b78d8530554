"""The collector's stack-trace engine: from the streamed core to systemd-format text.

Flow (DESIGN.md §1 step 3): the collector opens the module files (open_module_files) while the
crashed process still exists, creates a CoreTap, optionally prepare()s the unwinder child (it
then loads libdw while the core streams), feeds every chunk of the core to the tap on its way
to storage, then calls analyze().  The child (sandbox.py) drops every privilege and runs
libdwfl (unwind.Unwinder) on the tap's sparse image; it streams its findings back over a pipe,
one JSON line per module list and per thread, so a child killed at the deadline still yields a
partial trace.  This module never raises for a bad core, and never executes or
opens anything the crashed program names.
"""

from __future__ import annotations

import os
import time

from drkonqi_lite_collector.journal.entry import Trace
from drkonqi_lite_collector.journal.schema import format_frame, format_thread
from drkonqi_lite_collector.log import log
from drkonqi_lite_collector.stage.argv import signal_name
from drkonqi_lite_collector.unwinder import python_core, sandbox
from drkonqi_lite_collector.unwinder.coretap import CoreTap
from drkonqi_lite_collector.unwinder.dpkg import DpkgLookup, dpkg_owner
from drkonqi_lite_collector.unwinder.module import ModuleFiles, open_module_files

# Before the core has streamed, this module stays lean (the crashed process waits, see
# handler.py); json and select are imported once the child unwinds on the other CPU.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any

__all__ = [
    "CoreTap",
    "ModuleFiles",
    "PreparedAnalysis",
    "analyze",
    "open_module_files",
    "prepare",
]

#: Bytes of results accepted from the child (64 threads x 64 frames fit in ~600 KiB).
RESULT_MAX = 4 * 1024 * 1024


def _none(reason: str) -> Trace:
    return Trace(f"none: {reason}")


class PreparedAnalysis:
    """An unwinder child started early by prepare(); hand it to analyze(), or close() it."""

    def __init__(self, process: sandbox.UnwinderProcess, timeout: float) -> None:
        self.process = process
        self.timeout = timeout

    def close(self) -> None:
        """Kill and reap the child if analyze() did not run (idempotent)."""
        self.process.close()

    def __enter__(self) -> PreparedAnalysis:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def prepare(tap: CoreTap, modules: ModuleFiles, *, timeout: float = 5.0) -> PreparedAnalysis | None:
    """Optional: fork the unwinder now, before the core is drained.

    The child imports ctypes and loads libdw while the collector streams the core, so analyze()
    only pays for the unwinding itself.  Call it after
    open_module_files() and CoreTap(); returns None when the child cannot be started.
    """
    try:
        process = sandbox.spawn(tap.fd, modules, timeout=timeout)
    except OSError:
        return None
    return PreparedAnalysis(process, timeout)


def analyze(
    tap: CoreTap,
    modules: ModuleFiles,
    *,
    timeout: float = 5.0,
    prepared: PreparedAnalysis | None = None,
    hidden: frozenset[int] | Callable[[], frozenset[int]] = frozenset(),
    dpkg: Callable[[str], dict[str, str] | None] = dpkg_owner,
) -> Trace:
    """Unwind every thread of the tapped core in a sandboxed child; never raises.

    `prepared` (from prepare() on the same tap and modules) is used and closed. `hidden`: the
    modules (by lowest mapped address) whose names and build-ids `for_user` leaves out, or
    what computes them once the child has its go (so that the checks run beside the unwinding).
    `dpkg`: the lookup of the executable's Debian package (DpkgLookup.owner in the collector).
    """
    try:
        return _analyze(tap, modules, timeout, prepared, hidden, dpkg)
    except Exception as e:  # noqa: BLE001 -- a bad core must never fail the collector
        return _none(f"internal error: {type(e).__name__}: {e}")
    finally:
        if prepared is not None:
            prepared.close()


def _analyze(
    tap: CoreTap,
    modules: ModuleFiles,
    timeout: float,
    prepared: PreparedAnalysis | None,
    hidden: frozenset[int] | Callable[[], frozenset[int]],
    dpkg: Callable[[str], dict[str, str] | None],
) -> Trace:
    tap.finish()
    if tap.error is not None:
        return _none(tap.error)
    if tap.size == 0:
        return _none("empty core")
    deadline = time.monotonic() + timeout
    if prepared is not None:
        process = prepared.process
    else:
        try:
            process = sandbox.spawn(tap.fd, modules, timeout=timeout)
        except OSError as e:
            return _none(f"fork failed: {e}")
    try:
        process.start(tap.size)
        # The dpkg lookup (host database, so only for processes in our root) runs here, on
        # the other CPU, while the child unwinds.
        package = dpkg(modules.exe) if modules.same_root and modules.exe else None
        if callable(hidden):
            hidden = hidden()
        events, reason = _collect(process, deadline)
    finally:
        process.close()
    if reason is None and tap.truncated:
        reason = "core truncated"
    result = _compose(events, reason, modules, package, frozenset())
    if hidden & set(modules.by_start):
        return result.replace(for_user=_compose(events, reason, modules, package, hidden))
    return result


def _collect(
    process: sandbox.UnwinderProcess, deadline: float
) -> tuple[list[dict[str, Any]], str | None]:
    """Read the child's JSON lines until EOF or the deadline; reap it. Returns (events, why)."""
    import select  # noqa: PLC0415

    buf = bytearray()
    reason = None
    # poll, not select: with hundreds of module descriptors open, ours may exceed FD_SETSIZE.
    poller = select.poll()
    poller.register(process.results, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            reason = "timeout"
            break
        if not poller.poll(max(1, int(left * 1000))):
            continue
        data = os.read(process.results, 65536)
        if not data:
            break
        buf += data
        if len(buf) > RESULT_MAX:
            reason = "too much output"
            break
    status = process.reap()
    if reason is None and os.WIFSIGNALED(status) and os.WTERMSIG(status) != 9:  # SIGKILL: ours
        reason = f"unwinder died of {signal_name(os.WTERMSIG(status))}"
    events = []
    for line in bytes(buf).split(b"\n"):
        try:
            event = sandbox.decode_json(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events, reason


def _compose(
    events: list[dict[str, Any]],
    reason: str | None,
    modules: ModuleFiles,
    dpkg: dict[str, str] | None,
    hidden: frozenset[int],
) -> Trace:
    """The result from the child's events; a module in `hidden` keeps its path (the user sees it
    in maps) and offsets, but not its function names, build-id, soname or package note."""
    blocks: list[str] = []
    module_lines: list[str] = []
    packages: dict[str, dict[str, str]] = {}
    done = False
    for ev in events:
        if "modules" in ev:
            concealed = set()
            for name, build_id, start in ev["modules"]:
                path = modules.paths.get(start) or name
                if start in hidden:
                    concealed.add(name)
                shown = build_id if start not in hidden else ""
                module_lines.append(f"{path} {shown or '-'}")
            packages = {k: v for k, v in ev.get("packages", {}).items() if k not in concealed}
        elif "thread" in ev:
            frames = [
                format_frame(i, pc, fn, mod, off)
                if pc - off not in hidden
                else format_frame(i, pc, None, modules.paths.get(pc - off) or None, off)
                for i, (pc, fn, mod, off) in enumerate(ev["frames"])
            ]
            blocks.append(format_thread(ev["thread"], frames))
        elif ("fatal" in ev or "cut" in ev) and reason is None:
            reason = str(ev.get("fatal") or ev.get("cut"))
        elif "done" in ev:
            done = True
    if reason is None and not done:
        reason = "unwinder ended early"
    main = _main_module(packages, modules.exe)
    if main is None and dpkg is not None and modules.exe:
        packages = {**packages, modules.exe: dpkg}
        main = dpkg
    text = "\n\n".join(blocks)
    if not blocks:
        status = f"none: {reason or 'no threads in the core'}"
    else:
        status = "ok" if reason is None else f"partial: {reason}"
    return Trace(
        text=text,
        modules="\n".join(module_lines),
        status=status,
        package_name=main.get("name") if main else None,
        package_version=main.get("version") if main else None,
        package_json=_json_dumps(packages) if packages else None,
    )


def _json_dumps(value: dict[str, dict[str, str]]) -> str:
    """COREDUMP_PACKAGE_JSON, keys sorted (sandbox.encode_json: no json package import)."""
    return sandbox.encode_json({k: dict(sorted(v.items())) for k, v in sorted(value.items())})


def _main_module(packages: dict[str, dict[str, str]], exe: str | None) -> dict[str, str] | None:
    """The metadata of the module whose file name is the executable's (as systemd matches)."""
    if not exe:
        return None
    base = os.path.basename(exe.removesuffix(" (deleted)"))
    for name, meta in packages.items():
        if os.path.basename(name) == base and "name" in meta:
            return meta
    return None


class Engine:
    """The collector's stack-trace engine (handler.Tracer).

    `start` runs while the crashed process still exists: it opens the module files through its
    /proc directory, makes the tap, and forks the unwinder so that it loads libdw while the core
    streams. `finish` unwinds once the core has been read, then releases everything.
    """

    def __init__(self, cache_dir: str | None = None) -> None:
        """`cache_dir`: where the dpkg index is kept (config.Paths.cache_dir)."""
        self._dpkg = DpkgLookup(cache_dir)
        self._modules = ModuleFiles()
        self._tap: CoreTap | None = None
        self._prepared: PreparedAnalysis | None = None
        self._python = False

    def start(self, proc_dir_fd: int | None) -> CoreTap:
        if proc_dir_fd is not None:
            self._modules = open_module_files(proc_dir_fd)
        # A CPython process in our root: keep its heap for the Python stack (python_core.py).
        m = self._modules
        self._python = m.same_root and python_core.is_python(m.exe, m.paths.values())
        self._tap = CoreTap(python_core.KEEP_MAX if self._python else 0)
        self._prepared = prepare(self._tap, self._modules)
        return self._tap

    def finish(
        self, tap: object, timeout: float, hide: Callable[[int, str, bool], bool] | None = None
    ) -> Trace:
        """Unwind the core seen by `tap` (the one `start` returned; any other is refused, so
        its type is the worker's business). `hide(fd, path,
        same_root)` says which module files the crashing user may not read (`for_user`)."""
        mine = self._tap
        if mine is None or tap is not mine:
            raise ValueError("finish() takes the tap that start() returned")
        mods = self._modules

        def hidden() -> frozenset[int]:
            return frozenset(
                start
                for start, fd in mods.by_start.items()
                if hide is not None and hide(fd, mods.paths.get(start, ""), mods.same_root)
            )

        spy = self._start_python(mine, timeout)
        deadline = time.monotonic() + timeout
        try:
            result = analyze(
                mine,
                mods,
                timeout=timeout,
                prepared=self._prepared,
                hidden=hidden,
                dpkg=self._dpkg.owner,
            )
            if spy is not None:
                # py-spy ran on the other CPU while libdw unwound; the first native thread is
                # the one that got the signal.
                first = result.text.partition(":")[0].removeprefix("Stack trace of thread ")
                crashing = int(first) if first.isdigit() else None
                stack, status = spy.result(deadline, crashing)
                if not status.startswith("ok"):
                    log(f"no Python stack: {status}", level=4)
                # The user's own trace has it too: it was read from memory the user could read
                # (the process was dumpable to them: a restricted crash withholds it whole,
                # restriction.WITHHELD).
                users = result.for_user
                result = result.replace(
                    python_stack=stack,
                    for_user=users.replace(python_stack=stack) if users is not None else None,
                )
            return result
        finally:
            if spy is not None:
                spy.close()
            self._prepared = self._tap = None
            self._modules.close()
            mine.close()

    def after_delivery(self) -> None:
        """Work no crash should wait for, once its entry is sent: the dpkg index, if stale."""
        self._dpkg.refresh()

    def _start_python(self, tap: CoreTap, timeout: float) -> python_core.PythonStack | None:
        """The Python stack reader on the complete image of a Python process's core, or None."""
        if not (self._python and tap.complete and self._modules.exe):
            return None
        tap.finish()
        if tap.error is not None or tap.truncated:
            return None
        try:
            return python_core.PythonStack(tap.fd, tap.size, self._modules.exe, timeout)
        except OSError:
            return None
