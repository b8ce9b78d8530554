"""The supervisor: one crash, processed by a forked worker, recorded even if the worker dies.

The kernel never calls a pipe helper for its own crash (it runs helpers with RLIMIT_CORE=1),
so a collector failure (a bug, a signal, the OOM killer) would lose the crash silently. The
supervisor forks the worker and, should it die before the entry was sent or spooled, records
the crash from the kernel's facts alone, without a core.
"""

from __future__ import annotations

import gc
import os

from drkonqi_lite_collector import config
from drkonqi_lite_collector.journal import entry
from drkonqi_lite_collector.journal.schema import CoreMissing
from drkonqi_lite_collector.log import log
from drkonqi_lite_collector.stage import argv

# Imported here, before the worker's fork, though only the worker uses it: imported after,
# each page the import writes would first be copied from this process (~2 ms more of the
# crashed process's wait than the import itself). _preload() does the same for what the
# worker imports lazily on every crash.
from drkonqi_lite_collector.unwinder.stacktrace import Engine
from drkonqi_lite_collector.worker.corestream import READ_TIMEOUT
from drkonqi_lite_collector.worker.handler import (
    Outcome,
    deliver,
    handle,
    open_state_dir,
)
from drkonqi_lite_collector.worker.procinfo import Process, exit_or_kill

TYPE_CHECKING = False  # see handler.py
if TYPE_CHECKING:
    from drkonqi_lite_collector.worker.handler import Tracer

#: The worker's every wait is bounded (core stream, unwinder, journald's socket); this is the
#: backstop should one not be: past it the worker is killed and the crash recorded without it.
WORKER_TIMEOUT = READ_TIMEOUT + 120.0


def _wait_bounded(pid: int, timeout: float) -> int:
    """waitpid(pid) for at most `timeout` seconds, then SIGKILL it; returns the wait status."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return os.waitpid(pid, 0)[1]
    try:
        if exit_or_kill(pidfd, timeout):
            log(f"worker {pid} still running after {timeout:.0f}s: killed it")
    finally:
        os.close(pidfd)
    return os.waitpid(pid, 0)[1]


def _preload() -> None:
    """The worker's lazy imports of every crash, done before its fork (see the imports)."""
    import _json  # noqa: F401, PLC0415 - sandbox.decode_json, once the unwinder reported
    import select  # noqa: F401, PLC0415 - the drain's and the unwinder's bounded waits

    from drkonqi_lite_collector.unwinder import elfcore  # noqa: F401, PLC0415 - the core tap


def _tracer(paths: config.Paths) -> Tracer | None:
    engine: Tracer = Engine(paths.cache_dir)
    return engine


def supervise(args: argv.KernelArgs, stdin: int, process: Process | None) -> int:
    """Fork the worker that processes the crash; record it ourselves if the worker dies."""
    _preload()
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        code = 1
        try:
            tracer = _tracer(config.Paths(args.prefix))
            # Everything imported stays for the process's life (main.py turned the collector
            # off meanwhile): frozen, no collection looks at it again, and the unwinder's fork
            # shares its pages instead of copying each one a collection would touch.
            gc.freeze()
            gc.enable()
            code = handle(args, stdin, tracer, lambda: os.write(ready_w, b"S"), process)
        except BaseException as e:  # noqa: BLE001 - the supervisor records it; no traceback
            log(f"PID {args.pid}: collector failed: {type(e).__name__}: {e}")
        os._exit(code)
    os.close(ready_w)
    # Only the worker reads the core: if it dies, the kernel sees EPIPE, not a hang.
    os.close(stdin)
    if process is not None:
        process.close()
    status = _wait_bounded(pid, WORKER_TIMEOUT)
    delivered = os.read(ready_r, 1) == b"S"
    os.close(ready_r)
    if delivered:
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 0
    if os.WIFSIGNALED(status):
        why = f"killed by {argv.signal_name(os.WTERMSIG(status))}"
    else:
        why = f"exit status {os.WEXITSTATUS(status)}"
    log(f"PID {args.pid}: worker failed ({why}); recording the crash without a core")
    return fallback_entry(args, why)


def fallback_entry(args: argv.KernelArgs, why: str) -> int:
    """An entry from the kernel's facts alone, saying why there is nothing else."""
    fields = entry.build(
        args,
        None,
        entry.Core(size=None, missing=CoreMissing.COLLECTOR_CRASH),
        entry.Trace(f"none: collector failed ({why})"),
        note=f"The collector failed while processing this crash ({why}).",
    )
    state_fd = open_state_dir(config.Paths(args.prefix))
    try:
        return deliver(args, state_fd, Outcome(fields), lambda: None)
    finally:
        if state_fd is not None:
            os.close(state_fd)
