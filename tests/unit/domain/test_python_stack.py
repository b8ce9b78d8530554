"""The Python stack on the crash record: parsing, the crash dict, grouping, reports."""

from __future__ import annotations

import dataclasses
import json

from drkonqi_lite.domain.announcement import Announcer, Program
from drkonqi_lite.domain.crash import crash_from_entry
from drkonqi_lite.domain.python_stack import PythonFrame, PythonThread, dumps, parse
from drkonqi_lite.domain.report import report_json, report_text
from drkonqi_lite.domain.signature import group_key, signature
from drkonqi_lite.domain.summary import detail
from drkonqi_lite.domain.trust import TrustPolicy
from drkonqi_lite_collector.journal.schema import Field
from tests.entries import MAIN, entry, exception_entry

WORKER = PythonThread(8, "Thread-1 (work)", False, (PythonFrame("work", "/home/u/app.py", 4),))


def test_round_trip_crashing_thread_first() -> None:
    assert parse(dumps([WORKER, MAIN])) == (MAIN, WORKER)


def test_hostile_text_is_bounded_and_encodable() -> None:
    text = json.dumps([{"tid": 1, "name": "\x1b[31m", "crashed": True, "frames": [
        {"function": "f\udcff" + "x" * 5000, "file": "/tmp/\udcfe.py", "line": "7"},
    ] * 1000}])  # fmt: skip
    (thread,) = parse(text)
    assert len(thread.frames) == 256
    frame = thread.frames[0]
    assert len(frame.function) <= 1024
    assert frame.line == -1  # a string is not a line number
    frame.function.encode()
    frame.file.encode()  # lone surrogates replaced: every later encode works
    assert "\ufffd" in frame.file


def test_garbage_is_no_stack() -> None:
    for text in ("", "{", "[1, 2]", '{"a": 1}', "[" * 100_000):
        assert parse(text) == ()


def test_exception_entry_is_a_trusted_crash_without_core() -> None:
    crash = crash_from_entry(exception_entry())
    assert TrustPolicy.for_user(1000, frozenset()).accepts(crash)
    assert not TrustPolicy.for_user(1000, frozenset()).accepts(
        crash_from_entry(exception_entry(_UID="1001")))
    assert crash.is_exception
    assert crash.signal == 0
    assert crash.reason == "Unhandled exception ValueError"
    assert crash.core_filename == ""  # a core name in a self-reported entry is never opened
    assert crash.program_key == "/home/u/app.py"
    assert crash.program_path == "/home/u/app.py"  # its .desktop entry, not python3.11's
    assert crash_from_entry(entry()).program_path == "/usr/bin/kate"
    assert crash.program_name == "app.py"  # "python3 crashed" would say nothing
    assert crash_from_entry(entry()).program_name == "kate"
    assert crash.backtrace.startswith("Traceback (most recent call last):")


def test_crash_dict_carries_python_stack_outermost_first() -> None:
    info = detail(crash_from_entry(exception_entry()), seen=False)
    assert info["python_stack"] == [
        {"function": "<module>", "file": "/home/u/app.py", "line": 15},
        {"function": "outer", "file": "/home/u/app.py", "line": 10},
        {"function": "do_crash", "file": "/home/u/app.py", "line": 7},
    ]
    assert info["python_threads"][0]["tid"] == 7
    assert info["exception_type"] == "ValueError"
    assert detail(crash_from_entry(entry()), seen=False)["python_stack"] == []


def test_same_python_line_is_one_group_whatever_the_c_frames() -> None:
    native = crash_from_entry(entry(exe="/usr/bin/python3.11"))
    other_c = crash_from_entry(entry(exe="/usr/bin/python3.11", pid=5, MESSAGE="Process 5 (p) of"
                               " user 1000 dumped core.\n\nStack trace of thread 5:\n#0  0x0000000"
                               "000001000 _PyEval_EvalFrameDefault (libpython + 0x10)"))
    assert signature(native) != signature(other_c)
    a = dataclasses.replace(native, python_threads=(MAIN,))
    b = dataclasses.replace(other_c, python_threads=(MAIN, WORKER))
    assert group_key(a) == group_key(b)
    assert signature(a) == "SIGSEGV|py:do_crash@/home/u/app.py:7;outer@/home/u/app.py:10;" \
        "<module>@/home/u/app.py:15"
    moved = PythonThread(7, "MainThread", True, (*MAIN.frames[:2], PythonFrame("do_crash",
                                                                            "/home/u/app.py", 8)))
    assert group_key(dataclasses.replace(native, python_threads=(moved,))) != group_key(a)


def test_exceptions_group_by_type_and_frames() -> None:
    a = crash_from_entry(exception_entry())
    b = crash_from_entry(exception_entry(COREDUMP_PID="99"))
    c = crash_from_entry(exception_entry(**{Field.EXCEPTION_TYPE: "KeyError"}))
    assert group_key(a) == group_key(b) != group_key(c)
    assert signature(a).startswith("ValueError|py:do_crash@")


def test_reports_show_the_python_stack_first() -> None:
    crash = crash_from_entry(exception_entry())
    text = report_text(crash, "app")
    assert text.splitlines()[0] == "app crashed with Unhandled exception ValueError: bad"
    assert text.index('File "/home/u/app.py", line 7, in do_crash') < text.index("Stack trace")
    data = json.loads(report_json(crash, "app"))
    assert data["python_threads"][0]["frames"][-1]["function"] == "do_crash"
    assert data["exception_value"] == "bad"


def test_notification_says_where_in_the_program() -> None:
    ctypes = PythonFrame("string_at", "/usr/lib/python3.11/ctypes/__init__.py", 519)
    thread = dataclasses.replace(MAIN, frames=(*MAIN.frames, ctypes))
    crash = dataclasses.replace(crash_from_entry(entry(exe="/usr/bin/python3.11")),
                                python_threads=(thread,))  # fmt: skip
    a = Announcer(60_000_000).live(crash, Program("app"), muted=False)
    assert a is not None
    assert a.body == "Segmentation fault in do_crash (app.py, line 7)"
    exc = Announcer(60_000_000).live(crash_from_entry(exception_entry()), Program("app"),
                                     muted=False)  # fmt: skip
    assert exc is not None
    assert exc.body == "Unhandled exception ValueError in do_crash (app.py, line 7)"
    plain = Announcer(60_000_000).live(crash_from_entry(entry()), Program("Kate"), muted=False)
    assert plain is not None
    assert plain.body == "Segmentation fault"
