"""The Python stack of real native crashes of Debian's python3, through the real collector.

Real scripts run by /usr/bin/python3 (stripped, no debug symbols) as an unprivileged user die by
a signal; the kernel hands the core to the collector, which reads the Python stack of every
thread from it (python_core.py) into the entry. Asserted by function names and line numbers, as
the app's crash record sees them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from drkonqi_lite.domain.crash import Crash, crash_from_entry
from drkonqi_lite.domain.signature import group_key
from drkonqi_lite_collector.journal.schema import Field
from tests.conftest import need, which
from tests.integration.harness import Harness
from tests.integration.journal_read import Entry, field, restricted_entries, wait_entry
from tests.integration.processes import crash_self, spawn_as, wait_running

SYSTEM_PYTHON = "/usr/bin/python3"
USER = 1000

WORKERS = """\
import threading, time

def idle(n):
    time.sleep(n)

for i in range(2):
    threading.Thread(target=idle, args=(100,), name=f"idle-{i}", daemon=True).start()
time.sleep(0.2)
"""

SEGV_MAIN = WORKERS + """\
import ctypes

def do_crash():
    ctypes.string_at(0)

def outer():
    do_crash()

outer()
"""

ABORT_IN_C = WORKERS + """\
import ctypes

def give_up():
    ctypes.CDLL(None).abort()

give_up()
"""

SEGV_THREAD = WORKERS + """\
import ctypes, threading

def poke():
    ctypes.memset(16, 0, 8)

t = threading.Thread(target=poke, name="crasher")
t.start()
t.join()
"""

DROP_THEN_CRASH = """\
import ctypes, os

def dropped():
    os.setresgid(1000, 1000, 1000)
    os.setresuid(1000, 1000, 1000)
    ctypes.string_at(0)

dropped()
"""


@pytest.fixture
def scripts() -> Iterator[Path]:
    need(Path(SYSTEM_PYTHON).exists(), "no system python3")
    d = Path(tempfile.mkdtemp(prefix="dkl-py-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


@pytest.fixture
def installed(harness: Harness, core_pattern: None) -> Harness:
    harness.install()
    return harness


def as_crash(e: Entry) -> Crash:
    return crash_from_entry({k: v if isinstance(v, bytes) else str(v) for k, v in e.items()})


def run_crash(d: Path, name: str | bytes, text: str, uid: int = USER) -> Entry:
    path = os.path.join(os.fsencode(d), os.fsencode(name))
    Path(os.fsdecode(path)).write_text(text)
    os.chmod(path, 0o644)
    proc = spawn_as([SYSTEM_PYTHON.encode(), b"-I", path], uid, uid, env={})  # type: ignore[list-item]
    proc.wait(timeout=120)
    assert proc.returncode in (-11, -6), f"{path!r} ended with {proc.returncode}"
    return wait_entry(COREDUMP_PID=proc.pid)


def test_segv_in_ctypes_shows_the_python_frames(installed: Harness, scripts: Path) -> None:
    e = run_crash(scripts, "segv.py", SEGV_MAIN)
    crash = as_crash(e)
    py = str(scripts / "segv.py")
    assert [(f.function, f.file, f.line) for f in crash.python_stack] == [
        ("<module>", py, 17), ("outer", py, 15), ("do_crash", py, 12),
        ("string_at", "/usr/lib/python3.11/ctypes/__init__.py", 519),
    ]  # fmt: skip
    main = crash.python_threads[0]
    assert main.crashed
    assert main.tid == int(field(e, "COREDUMP_PID"))
    idle = sorted(t.name for t in crash.python_threads[1:])
    assert idle == ["idle-0", "idle-1"]
    assert all(t.frames[-1].function == "idle" and t.frames[-1].line == 4
               for t in crash.python_threads[1:])  # fmt: skip
    # The native trace is still there, and the crash is the script, not the interpreter.
    assert crash.backtrace.startswith(f"Stack trace of thread {main.tid}:")
    assert crash.program_key == py


def test_abort_in_a_c_call_without_the_gil(installed: Harness, scripts: Path) -> None:
    """ctypes releases the GIL around a foreign call: the crashing thread is the one that got
    the signal (the native trace's first), not the GIL holder."""
    crash = as_crash(run_crash(scripts, "abort.py", ABORT_IN_C))
    assert crash.signal_name == "SIGABRT"
    assert [(f.function, f.line) for f in crash.python_stack] == [("<module>", 14),
                                                                  ("give_up", 12)]  # fmt: skip


def test_segv_in_a_thread_puts_that_thread_first(installed: Harness, scripts: Path) -> None:
    e = run_crash(scripts, "thread.py", SEGV_THREAD)
    crash = as_crash(e)
    first = crash.python_threads[0]
    assert first.name in {"crasher", ""}  # "": read by pystack (py-spy's fallback), no names
    assert first.crashed
    assert first.tid != int(field(e, "COREDUMP_PID"))
    assert [f.function for f in first.frames][-2:] == ["Thread.run", "poke"]
    assert crash.python_stack[-1].line == 12
    main = next(t for t in crash.python_threads if t.tid == int(field(e, "COREDUMP_PID")))
    assert not main.crashed
    assert main.frames[0].function == "<module>"  # in t.start() or t.join(), as it happened


def test_same_python_line_is_one_group(installed: Harness, scripts: Path) -> None:
    a = as_crash(run_crash(scripts, "segv.py", SEGV_MAIN))
    b = as_crash(run_crash(scripts, "segv.py", SEGV_MAIN))
    assert group_key(a) == group_key(b)
    assert group_key(a)[1].startswith("SIGSEGV|py:string_at@")


def test_hostile_names_stay_text(installed: Harness, scripts: Path) -> None:
    text = SEGV_MAIN.replace("outer()\n", "outer.__code__ = outer.__code__.replace("
                             "co_name='\\x1b[2J<b>x</b>', co_qualname='\\x1b[2J\\u202e')\n"
                             "outer()\n")  # fmt: skip
    e = run_crash(scripts, "\x1b]0;t\x07<i>.py", text)
    crash = as_crash(e)
    assert [f.function for f in crash.python_stack] == ["<module>", "\x1b[2J\u202e", "do_crash",
                                                        "string_at"]  # fmt: skip
    assert crash.python_stack[0].file == str(scripts / "\x1b]0;t\x07<i>.py")


def test_undecodable_file_name_loses_frames_not_the_crash(installed: Harness,
                                                          scripts: Path) -> None:  # fmt: skip
    """py-spy (like pystack) stops at a frame whose file name is not UTF-8: the entry keeps the
    native trace and the frames below it, nothing fails."""
    e = run_crash(scripts, b"bad\xff.py", SEGV_MAIN)
    crash = as_crash(e)
    assert field(e, "DRKONQI_LITE_STACKTRACE") == b"ok"
    assert [f.function for f in crash.python_stack] == ["string_at"]


def test_restricted_crash_keeps_its_python_stack_from_the_user(
    t0: float, installed: Harness, scripts: Path, suid_dumpable: None
) -> None:
    """A root process that dropped to the user: its memory held root's secrets, so the Python
    stack (read from that memory) follows the native trace into the full entry only."""
    path = scripts / "drop.py"
    path.write_text(DROP_THEN_CRASH)
    path.chmod(0o644)
    pid = crash_self([SYSTEM_PYTHON, "-I", str(path)], 0, 0)
    own, full = restricted_entries(t0, pid, USER)
    assert Field.PYTHON_STACK not in own
    assert Field.PYTHON_STACK.encode() in field(own, "DRKONQI_LITE_WITHHELD")
    assert [f.function for f in as_crash(full).python_stack] == ["<module>", "dropped",
                                                                 "string_at"]  # fmt: skip


def test_a_native_program_gets_no_python_stack(installed: Harness) -> None:
    sleep = which("sleep")
    proc = spawn_as([sleep, "1000"], USER, USER)
    wait_running(proc, "sleep")
    os.kill(proc.pid, 11)
    proc.wait()
    e = wait_entry(COREDUMP_PID=proc.pid)
    assert Field.PYTHON_STACK not in e
    assert as_crash(e).python_threads == ()
