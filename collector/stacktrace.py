"""The collector's stack-trace engine: from the streamed core to systemd-format text.

Flow (DESIGN.md §1 step 3): the collector opens the module files (module.open_module_files)
while the crashed process still exists, feeds every chunk of the core to a CoreTap on its way to
storage, then calls analyze().  analyze() forks a child that drops every privilege and runs
libdwfl (unwind.Unwinder) on the tap's sparse image; the child streams its findings back over a
pipe, one JSON line per module list and per thread, so a child that is killed at the deadline
still yields a partial trace.  This module never raises for a bad core, and never executes or
opens anything the crashed program names.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drkonqi_lite_collector.coretap import CoreTap
from drkonqi_lite_collector.module import ModuleFiles, open_module_files
from drkonqi_lite_collector.package import dpkg_owner
from drkonqi_lite_collector.schema import format_frame, format_thread

__all__ = ["CoreTap", "ModuleFiles", "StackTraceResult", "analyze", "open_module_files"]

NOBODY = 65534
#: Heap of the child (RLIMIT_DATA counts private writable memory, Linux >= 4.7): what libdw
#: may allocate.  Read-only maps of the module files and of the sparse core image (as big as
#: the core, but holes cost nothing) count only against the address-space backstop below.
CHILD_DATA_LIMIT = 512 * 1024 * 1024
CHILD_AS_SLACK = 2 * 1024 * 1024 * 1024
#: Bytes of results accepted from the child (64 threads x 64 frames fit in ~600 KiB).
RESULT_MAX = 4 * 1024 * 1024
DEBUG_ROOT = Path("/usr/lib/debug")


@dataclass(frozen=True, slots=True)
class StackTraceResult:
    """What the collector puts in the journal entry."""

    text: str  # systemd format, crashing thread first; "" when none
    modules: str  # "PATH BUILDID" per line ("-" when no build id)
    status: str  # "ok" | "partial: REASON" | "none: REASON"
    package_name: str | None
    package_version: str | None
    package_json: str | None  # like systemd's COREDUMP_PACKAGE_JSON


def _none(reason: str) -> StackTraceResult:
    return StackTraceResult("", "", f"none: {reason}", None, None, None)


def analyze(tap: CoreTap, modules: ModuleFiles, *, timeout: float = 5.0) -> StackTraceResult:
    """Unwind every thread of the tapped core in a sandboxed child; never raises."""
    try:
        return _analyze(tap, modules, timeout)
    except Exception as e:  # noqa: BLE001 -- a bad core must never fail the collector
        return _none(f"internal error: {type(e).__name__}: {e}")


def _analyze(tap: CoreTap, modules: ModuleFiles, timeout: float) -> StackTraceResult:
    tap.finish()
    if tap.error is not None:
        return _none(tap.error)
    if tap.size == 0:
        return _none("empty core")
    deadline = time.monotonic() + timeout
    # The child chroots into the debug-info tree, so that libdwfl can still find debug files
    # by build-id but cannot open any path the core names (it tries NT_FILE and link-map paths
    # itself, blocking, in the collector's root); without one, into an empty directory.
    empty = None if DEBUG_ROOT.is_dir() else tempfile.mkdtemp(prefix="drkonqi-lite-unwind-")
    jail = str(DEBUG_ROOT) if empty is None else empty
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError as e:
        os.close(r)
        os.close(w)
        return _none(f"fork failed: {e}")
    if pid == 0:  # pragma: no cover -- the child, measured by the integration tests
        os.close(r)
        _child(tap.fd, modules, w, jail, timeout)
    os.close(w)
    try:
        package = dpkg_owner(modules.exe) if modules.same_root and modules.exe else None
        events, reason = _collect(r, pid, deadline)
    finally:
        os.close(r)
        if empty is not None:
            shutil.rmtree(empty, ignore_errors=True)
    if reason is None and tap.truncated:
        reason = "core truncated"
    return _compose(events, reason, modules, package)


def _collect(r: int, pid: int, deadline: float) -> tuple[list[dict[str, Any]], str | None]:
    """Read the child's JSON lines until EOF or the deadline; reap it. Returns (events, why)."""
    buf = bytearray()
    reason = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            reason = "timeout"
            break
        ready, _, _ = select.select([r], [], [], left)
        if not ready:
            continue
        data = os.read(r, 65536)
        if not data:
            break
        buf += data
        if len(buf) > RESULT_MAX:
            reason = "too much output"
            break
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if reason is None and os.WIFSIGNALED(status) and os.WTERMSIG(status) != signal.SIGKILL:
        reason = f"unwinder died of {signal.Signals(os.WTERMSIG(status)).name}"
    events = []
    for line in bytes(buf).split(b"\n"):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events, reason


def _compose(events: list[dict[str, Any]], reason: str | None, modules: ModuleFiles,
             dpkg: dict[str, str] | None) -> StackTraceResult:
    blocks: list[str] = []
    module_lines: list[str] = []
    packages: dict[str, dict[str, str]] = {}
    done = False
    for ev in events:
        if "modules" in ev:
            for name, build_id, start in ev["modules"]:
                path = modules.paths.get(start) or name
                module_lines.append(f"{path} {build_id or '-'}")
            packages = ev.get("packages", {})
        elif "thread" in ev:
            frames = [format_frame(i, pc, fn, mod, off)
                      for i, (pc, fn, mod, off) in enumerate(ev["frames"])]
            blocks.append(format_thread(ev["thread"], frames))
        elif "fatal" in ev and reason is None:
            reason = str(ev["fatal"])
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
    return StackTraceResult(
        text=text,
        modules="\n".join(module_lines),
        status=status,
        package_name=main.get("name") if main else None,
        package_version=main.get("version") if main else None,
        package_json=json.dumps(packages, sort_keys=True) if packages else None,
    )


def _main_module(packages: dict[str, dict[str, str]], exe: str | None) -> dict[str, str] | None:
    """The metadata of the module whose file name is the executable's (as systemd matches)."""
    if not exe:
        return None
    base = Path(exe.removesuffix(" (deleted)")).name
    for name, meta in packages.items():
        if Path(name).name == base and "name" in meta:
            return meta
    return None


def _child(core_fd: int, modules: ModuleFiles, w: int, jail: str, timeout: float) -> None:
    """The sandboxed unwinder process. Never returns."""
    code = 0
    try:
        # Imported here: only the child loads libdw (and ctypes).
        from drkonqi_lite_collector.unwind import Unwinder  # noqa: PLC0415

        _close_other_fds({core_fd, w, *modules.by_start.values()})
        _sandbox_limits(timeout, os.fstat(core_fd).st_size)
        emit = _emitter(w)
        os.environ.pop("DEBUGINFOD_URLS", None)  # never ask the network for debug info
        unwinder = Unwinder(core_fd, modules.by_start, emit=emit,
                            debuginfo_path=b"/" if jail == str(DEBUG_ROOT) else None)
        _drop_privileges(jail)
        unwinder.run()
        emit({"done": True})
    except BaseException as e:  # noqa: BLE001 -- report, then leave without cleanup handlers
        with contextlib.suppress(OSError):
            os.write(w, json.dumps({"fatal": f"{type(e).__name__}: {e}"}).encode() + b"\n")
        code = 1
    os._exit(code)


def _emitter(w: int) -> Any:
    def emit(event: dict[str, Any]) -> None:
        data = json.dumps(event).encode() + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(w, view):]

    return emit


def _close_other_fds(keep: set[int]) -> None:
    """Close every inherited descriptor (the core pipe, storage, journal) but `keep`.

    stdin/stdout/stderr become /dev/null: stdin is the kernel's core pipe in the collector.
    """
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        if std not in keep:
            os.dup2(null, std)
    if null > 2 and null not in keep:
        os.close(null)
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _sandbox_limits(timeout: float, core_size: int) -> None:
    # A crash of the unwinder must not become a core for us to collect (SECURITY.md §7):
    # not dumpable, and no core size.
    import ctypes  # noqa: PLC0415

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_DATA, (CHILD_DATA_LIMIT, CHILD_DATA_LIMIT))
    space = core_size + CHILD_AS_SLACK
    resource.setrlimit(resource.RLIMIT_AS, (space, space))
    cpu = int(timeout) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def _drop_privileges(jail: str) -> None:
    """chroot into `jail`, then become nobody with no groups (only when running as root)."""
    if os.geteuid() != 0:
        return
    os.chroot(jail)
    os.chdir("/")
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
