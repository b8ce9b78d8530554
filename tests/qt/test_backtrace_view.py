"""The Backtrace tab of a Python program (pytest-qt, offscreen): its Python stack first, the
native trace (or Python's traceback) one choice away, hostile names as inert text."""

from __future__ import annotations

import json
from collections.abc import Callable

from drkonqi_lite.domain.python_stack import PythonFrame, PythonThread, dumps
from drkonqi_lite.qt.backtrace_view import PYTHON, QUICK
from drkonqi_lite.qt.crash_detail_window import CrashDetailWindow
from drkonqi_lite_collector.journal.schema import BACKTRACE_MESSAGE_ID, Field
from tests import entries
from tests.qt.test_crash_detail import make, services  # noqa: F401 (fixtures)

APP = "/home/alice/bin/sync.py"
THREADS = [
    PythonThread(4242, "MainThread", True, (
        PythonFrame("<module>", APP, 88), PythonFrame("Syncer.run", APP, 54),
        PythonFrame("apply_delta", APP, 37),
    )),
    PythonThread(4243, "uploader", False, (PythonFrame("upload_loop", APP, 22),)),
]  # fmt: skip


def python_crash(**extra: str) -> object:
    return entries.crash(exe="/usr/bin/python3.11", comm="python3",
                    **{Field.PYTHON_STACK: dumps(THREADS), **extra})  # fmt: skip


def test_python_stack_first_native_trace_one_choice_away(
    make: Callable[..., CrashDetailWindow],  # noqa: F811
) -> None:
    w = make(python_crash())
    view = w.backtrace
    assert view.view_choice.isVisible() or not view.isVisible()
    assert view.view_choice.currentData() == PYTHON
    text = view.text.toPlainText()
    assert text.splitlines()[0] == ("Python stack of thread 4242 (MainThread) — crashed, "
                                    "most recent call last:")  # fmt: skip
    assert f'  File "{APP}", line 37, in apply_delta' in text
    assert "uploader" in text
    # The crashing (innermost) Python frame is the highlighted line.
    assert view.highlighted_line() == f'  File "{APP}", line 37, in apply_delta'
    view.view_choice.setCurrentIndex(view.view_choice.findData(QUICK))
    assert view.text.toPlainText().startswith("Stack trace of thread 4242:")
    assert "Python stack" in view.status.text()


def test_native_crash_of_a_c_program_is_unchanged(
    make: Callable[..., CrashDetailWindow],  # noqa: F811
) -> None:
    w = make()
    view = w.backtrace
    assert view.view_choice.count() == 1
    assert view.view_choice.isHidden()
    assert view.text.toPlainText().startswith("Stack trace of thread 4242:")


def test_unhandled_exception_shows_stack_then_traceback(
    make: Callable[..., CrashDetailWindow],  # noqa: F811
) -> None:
    crash = python_crash(MESSAGE_ID=BACKTRACE_MESSAGE_ID, COREDUMP_SIGNAL="0",
                         DRKONQI_LITE_EXCEPTION_TYPE="KeyError",
                         MESSAGE="Process 4242 (python3) of user 1000 failed with KeyError\n\n"
                                 "Traceback (most recent call last):\nKeyError: 'x'\n")  # fmt: skip
    w = make(crash)
    assert w.title.text().startswith("KWrite crashed with Unhandled exception KeyError")
    view = w.backtrace
    assert view.view_choice.itemText(1) == "Traceback"
    view.view_choice.setCurrentIndex(1)
    assert view.text.toPlainText().startswith("Traceback (most recent call last):")
    assert view.text.extraSelections() == []


def test_hostile_python_names_are_inert(
    make: Callable[..., CrashDetailWindow],  # noqa: F811
) -> None:
    stack = json.dumps([{"tid": 1, "name": "<b>t</b>", "crashed": True, "frames": [
        {"function": "\x1b[2J<i>f</i>", "file": "/tmp/\u202eyp.evil\nx", "line": 3}]}])  # fmt: skip
    w = make(python_crash(**{Field.PYTHON_STACK: stack}))
    text = w.backtrace.text.toPlainText()
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "<i>f</i>" in text  # shown literally (a QPlainTextEdit has no rich text)
