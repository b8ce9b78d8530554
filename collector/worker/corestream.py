"""Draining the core from the kernel's pipe: bounded in bytes, in memory and in time.

The kernel writes the core into our stdin from the crashed process's context, page by page. The
crashing user chooses what is mapped, so they can make that slow (a file on their own FUSE
mount stalls every page read): no read here waits without a limit (SECURITY.md 11). A stall of
STALL_TIMEOUT seconds or a total of READ_TIMEOUT seconds ends the core, marked truncated.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from drkonqi_lite_collector.journal.schema import CoreMissing

TYPE_CHECKING = False  # no typing/collections imports at run time: see handler.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class Tap(Protocol):
        """Sees the core's bytes as they stream through (collector/unwinder/stacktrace.py)."""

        def feed(self, chunk: bytes | memoryview) -> None: ...

        #: (si_signo, si_code) from the core's NT_SIGINFO note, once the head streamed past.
        siginfo: tuple[int, int] | None


CHUNK = 1024 * 1024
#: Seconds the kernel may go without writing a byte of the core. Page cache, swap and slow
#: disks deliver within this; a user's stalled FUSE mount does not get to hold us longer.
STALL_TIMEOUT = 10.0
#: Seconds for a whole core: a 32 GiB core (ProcessSizeMax) streams here in about a minute.
READ_TIMEOUT = 300.0


def write_error(e: OSError) -> str:
    """The CoreMissing reason for a failure to write the core: a full disk, or anything else."""
    return (
        CoreMissing.DISK_FULL
        if e.errno in (errno.ENOSPC, errno.EDQUOT)
        else CoreMissing.WRITE_FAILED
    )


class StreamResult:
    """How draining the core went (filled in while streaming)."""

    __slots__ = ("error", "missing", "size", "truncated")

    def __init__(self) -> None:
        self.size = 0
        self.truncated = False
        self.missing: str | None = None  # a CoreMissing value
        self.error = ""


def _enlarge_pipe(fd: int) -> None:
    # Fewer, larger reads: the default 64 KiB pipe means 16 wake-ups per MiB.
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, CHUNK)
    except OSError:
        pass


def _readable(fd: int, deadline: float) -> bool:
    """Wait until `fd` has data or EOF, at most STALL_TIMEOUT and never past `deadline`."""
    import select  # noqa: PLC0415 - a C module; only when a read would block

    wait = min(STALL_TIMEOUT, deadline - time.monotonic())
    if wait <= 0:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(int(wait * 1000) + 1))


def _read_into(fd: int, view: memoryview, deadline: float) -> int | None:
    """One read into `view`; None when the writer stalled or the time is up."""
    while True:
        try:
            return os.readv(fd, [view])
        except BlockingIOError:
            if not _readable(fd, deadline):
                return None


def stream_core(
    stdin: int, sink: Callable[[memoryview], object] | None, limit: int, tap: Tap | None
) -> StreamResult:
    """Read the core from the kernel's pipe in bounded chunks into `sink` and `tap`.

    One buffer is reused for every chunk (no allocation per MiB): sink and tap must copy what
    they keep. Stops at `limit` bytes (truncated), when the sink returns False (its storage
    budget is spent: truncated) or when the kernel stalls (truncated, with the reason in
    `error`). A sink failure (disk full) stops writing but not reading: the
    stack trace still sees the core.
    """
    _enlarge_pipe(stdin)
    try:  # reads never block: each wait is a poll with a limit
        os.set_blocking(stdin, False)
    except OSError:
        pass
    deadline = time.monotonic() + READ_TIMEOUT
    result = StreamResult()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        want = min(CHUNK, limit - result.size)
        if want <= 0:
            # More than the limit? Read one byte to tell "exactly limit" from "truncated".
            if _read_into(stdin, view[:1], deadline) != 0:
                result.truncated = True
            break
        try:
            n = _read_into(stdin, view[:want], deadline)
        except OSError as e:
            result.error = f"reading the core: {os.strerror(e.errno or errno.EIO)}"
            break
        if n is None:
            result.truncated = True
            result.missing = result.missing or CoreMissing.STALLED
            result.error = f"the core stopped arriving after {result.size} bytes; truncated"
            break
        if not n:
            break
        chunk = view[:n]
        result.size += n
        if tap is not None:
            tap.feed(chunk)
        if sink is not None:
            try:
                if sink(chunk) is False:  # a BudgetedSink with its budget spent
                    result.truncated = True
                    result.error = f"storage budget reached after {result.size} bytes; truncated"
                    break
            except OSError as e:
                sink = None
                result.missing = write_error(e)
                result.error = f"writing the core: {os.strerror(e.errno or errno.EIO)}"
    return result
