"""Minimal crash list and crash detail windows (issue 5 replaces them with the full ones).

Everything shown is plain text (Qt.PlainText labels, QPlainTextEdit): comm, exe and the
backtrace are hostile input and must never be rendered as HTML.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QLabel,
    QPlainTextEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash


class CrashLookup(Protocol):
    def newest_first(self) -> list[Crash]: ...
    def get(self, crash_id: str) -> Crash | None: ...


def when(timestamp_us: int) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp_us / 1e6, tz=datetime.UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class CrashListWindow(QWidget):
    """All crashes, newest first; activating a row asks for its detail window."""

    def __init__(
        self,
        crashes: CrashLookup,
        program: Callable[[Crash], Program],
        open_crash: Callable[[str], object],
    ) -> None:
        super().__init__()
        self.setWindowTitle("Crash Reports — drkonqi-lite")
        self.resize(760, 420)
        self._crashes = crashes
        self._program = program
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["When", "Program", "Reason", "PID", "Core"])
        self.tree.setRootIsDecorated(False)
        self.tree.itemActivated.connect(
            lambda item, _col: open_crash(item.data(0, Qt.ItemDataRole.UserRole))
        )
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        self.refresh()

    def refresh(self) -> None:
        self.tree.clear()
        for crash in self._crashes.newest_first():
            item = QTreeWidgetItem(
                [
                    when(crash.timestamp_us),
                    self._program(crash).name,
                    crash.reason,
                    str(crash.pid),
                    str(crash.core_state),
                ]
            )
            item.setData(0, Qt.ItemDataRole.UserRole, crash.id)
            self.tree.addTopLevelItem(item)
        for column in range(4):
            self.tree.resizeColumnToContents(column)


class CrashDetailWindow(QWidget):
    """One crash: what, when, and the quick stack trace."""

    def __init__(self, crash: Crash, program: Program) -> None:
        super().__init__()
        self.setWindowTitle(f"{program.name} crash — drkonqi-lite")
        self.resize(760, 520)
        header = QLabel(self)
        header.setTextFormat(Qt.TextFormat.PlainText)
        header.setText(
            f"{program.name} crashed with {crash.reason} ({crash.signal_name})\n"
            f"{when(crash.timestamp_us)} · PID {crash.pid} · {crash.exe or crash.comm}\n"
            f"Core: {crash.core_state}"
        )
        header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        trace = QPlainTextEdit(self)
        trace.setReadOnly(True)
        trace.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        trace.setPlainText(crash.backtrace or "No stack trace in the journal entry.")
        layout = QVBoxLayout(self)
        layout.addWidget(header)
        layout.addWidget(trace)


class MinimalWindows:
    """The default WindowFactory."""

    def __init__(
        self,
        crashes: CrashLookup,
        program: Callable[[Crash], Program],
        open_crash: Callable[[str], object],
    ) -> None:
        self._crashes = crashes
        self._program = program
        self._open_crash = open_crash
        self._list: CrashListWindow | None = None

    def crash_list(self) -> QWidget:
        self._list = CrashListWindow(self._crashes, self._program, self._open_crash)
        return self._list

    def crash_detail(self, crash_id: str) -> QWidget | None:
        crash = self._crashes.get(crash_id)
        if crash is None:
            return None
        window = CrashDetailWindow(crash, self._program(crash))
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        return window

    def crashes_changed(self) -> None:
        if self._list is not None:
            self._list.refresh()
