"""Waiting for a session's pieces to come up, and ending the processes it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable

#: How often a condition is looked at again: a piece of the session comes up in ~20-500 ms.
POLL_S = 0.02


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "") -> object:
    """`cond()`'s first true value; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or cond}")
        time.sleep(POLL_S)


def _leads_its_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s; to the whole group when `proc` was started in a session
    of its own (start_new_session), so what it started ends with it."""
    if proc.poll() is not None:
        return
    group = _leads_its_group(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        try:
            proc.wait(5)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()
