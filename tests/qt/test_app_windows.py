"""The window seam (WindowRouter) and the minimal windows, offscreen with pytest-qt."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QWidget
from pytestqt.qtbot import QtBot

from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash, crash_from_entry
from drkonqi_lite.domain.inbox import CrashInbox
from drkonqi_lite.domain.seen import SeenState
from drkonqi_lite.qt.crash_window import CrashListWindow, MinimalWindows
from drkonqi_lite.qt.tray import menu_text
from drkonqi_lite.qt.window_router import WindowRouter
from tests.unit.domain.entries import entry

HOSTILE = "<b>bold</b><img src=x>\u202eevil"


def _inbox() -> CrashInbox:
    inbox = CrashInbox(SeenState())
    inbox.add(crash_from_entry(entry(pid=1, comm=HOSTILE, exe="")))
    inbox.add(crash_from_entry(entry(pid=2, ts=1_700_000_001_000_000)))
    return inbox


def _program(crash: Crash) -> Program:
    return Program(name=crash.comm)


def test_router_opens_and_raises_one_detail_window(qtbot: QtBot) -> None:
    inbox = _inbox()
    opened: list[str] = []
    router = WindowRouter(MinimalWindows(inbox, _program, opened.append))
    hostile = inbox.by_pid(1)
    assert hostile is not None
    with qtbot.waitSignal(router.crash_shown) as shown:
        assert router.show_crash(hostile.id)
    assert shown.args == [hostile.id]
    windows = [w for w in _top_level() if w.windowTitle().endswith("crash — drkonqi-lite")]
    assert len(windows) == 1
    qtbot.addWidget(windows[0])
    labels = windows[0].findChildren(QLabel)
    assert labels[0].textFormat() == Qt.TextFormat.PlainText
    assert HOSTILE in labels[0].text()  # shown literally
    trace = windows[0].findChild(QPlainTextEdit)
    assert trace is not None
    assert "main (kate + 0x1000)" in trace.toPlainText()
    assert router.show_crash(hostile.id)  # raised, not duplicated
    assert len([w for w in _top_level() if w.windowTitle() == windows[0].windowTitle()]) == 1
    assert not router.show_crash("cunknown")


def test_list_window_newest_first_and_opens_rows(qtbot: QtBot) -> None:
    inbox = _inbox()
    opened: list[str] = []
    window = CrashListWindow(inbox, _program, opened.append)
    qtbot.addWidget(window)
    assert window.tree.topLevelItemCount() == 2
    first = window.tree.topLevelItem(0)
    assert first is not None
    assert first.text(3) == "2"
    window.tree.itemActivated.emit(first, 0)
    second = inbox.by_pid(2)
    assert second is not None
    assert opened == [second.id]
    inbox.add(dataclasses.replace(second, id="cnew", timestamp_us=1_800_000_000_000_000))
    window.refresh()
    assert window.tree.topLevelItemCount() == 3


def test_router_factory_can_be_swapped(qtbot: QtBot) -> None:
    class Fake:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def crash_list(self) -> QWidget:
            widget = QWidget()
            qtbot.addWidget(widget)
            return widget

        def crash_detail(self, crash_id: str) -> QWidget | None:
            self.asked.append(crash_id)
            widget = QWidget()
            qtbot.addWidget(widget)
            return widget

        def crashes_changed(self) -> None:
            return None

    fake = Fake()
    router = WindowRouter(MinimalWindows(_inbox(), _program, print))
    router.set_factory(fake)
    with qtbot.waitSignal(router.list_shown):
        router.show_crash_list()
    assert router.show_crash("cx")
    assert fake.asked == ["cx"]


def test_menu_text_is_inert() -> None:
    assert menu_text("Tom & Jerry\nline2") == "Tom && Jerry line2"
    assert len(menu_text("x" * 500)) == 78


def _top_level() -> list[QWidget]:
    from PySide6.QtWidgets import QApplication  # noqa: PLC0415

    return [w for w in QApplication.topLevelWidgets() if w.isVisible()]
