"""The Details, Process, Environment and Log tabs of the crash detail window.

Every text comes from the crashed process or the journal and is hostile: plain-text widgets
only (QTableWidget items, QPlainTextEdit, PlainText labels), no tooltips with entry text, and
control/bidi characters made visible. The environment and the command line stay withheld
(redaction.SECRET_FIELDS) in every tab until the user presses Reveal.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.plain_text import multi_line, one_line
from drkonqi_lite.domain.redaction import REDACTED, SECRET_FIELDS
from drkonqi_lite.qt.icons import IconSet
from drkonqi_lite_collector.journal.schema import Field

#: The Process tab's sections: label → journal field.
PROCESS_SECTIONS: tuple[tuple[str, str], ...] = (
    ("Status", Field.PROC_STATUS),
    ("Memory maps", Field.PROC_MAPS),
    ("Limits", Field.PROC_LIMITS),
    ("Control group", Field.PROC_CGROUP),
    ("Mounts", Field.PROC_MOUNTINFO),
    ("Open files", Field.OPEN_FDS),
)


def fixed_text(parent: QWidget) -> QPlainTextEdit:
    text = QPlainTextEdit(parent)
    text.setReadOnly(True)
    text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    return text


class DetailsTab(QWidget):
    """Every journal field in a table; the selected field in full below; Ctrl+C copies."""

    def __init__(self, crash: Crash, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._crash = crash
        self._revealed = False
        self.table = QTableWidget(0, 2, self)
        self.table.setHorizontalHeaderLabels(["Field", "Value"])
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(
            0, QHeaderView.ResizeMode.ResizeToContents
        )
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._menu)
        self.table.itemSelectionChanged.connect(self._show_selected)
        QShortcut(QKeySequence.StandardKey.Copy, self.table, self.copy_selected)
        self.value = fixed_text(self)
        self.value.setPlaceholderText("Select a field to see its whole value.")
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.table)
        splitter.addWidget(self.value)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self._fill()

    def _value(self, name: str) -> str:
        if name in SECRET_FIELDS and not self._revealed:
            return REDACTED
        return self._crash.fields.get(name, "")

    def _fill(self) -> None:
        names = sorted(self._crash.fields)
        self.table.setRowCount(len(names))
        for row, name in enumerate(names):
            self.table.setItem(row, 0, QTableWidgetItem(one_line(name, 80)))
            item = QTableWidgetItem(one_line(self._value(name), 300))
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.table.setItem(row, 1, item)
        self._show_selected()

    def set_revealed(self, revealed: bool) -> None:
        self._revealed = revealed
        self._fill()

    def _selected_names(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        out = []
        for row in rows:
            item = self.table.item(row, 1)
            if item is not None:
                out.append(str(item.data(Qt.ItemDataRole.UserRole)))
        return out

    def _show_selected(self) -> None:
        names = self._selected_names()
        self.value.setPlainText(multi_line(self._value(names[0])) if names else "")

    def selected_text(self) -> str:
        """NAME=value lines of the selected rows (secrets withheld until revealed)."""
        return "\n".join(f"{n}={self._value(n)}" for n in self._selected_names())

    def copy_selected(self) -> None:
        text = self.selected_text()
        if text:
            QGuiApplication.clipboard().setText(text)

    def _menu(self, position: QPoint) -> None:
        menu = QMenu(self)
        menu.addAction("Copy", QKeySequence.StandardKey.Copy, self.copy_selected)
        menu.exec(self.table.viewport().mapToGlobal(position))


class ProcessTab(QWidget):
    """The process's /proc files as the collector recorded them, one section at a time."""

    def __init__(self, crash: Crash, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._crash = crash
        self.sections = QListWidget(self)
        for label, _field in PROCESS_SECTIONS:
            self.sections.addItem(label)
        self.sections.setMaximumWidth(self.sections.sizeHintForColumn(0) + 24)
        self.text = fixed_text(self)
        self.sections.currentRowChanged.connect(self._show)
        layout = QHBoxLayout(self)
        layout.addWidget(self.sections)
        layout.addWidget(self.text, 1)
        self.sections.setCurrentRow(0)

    def _show(self, row: int) -> None:
        if not 0 <= row < len(PROCESS_SECTIONS):
            return
        label, field = PROCESS_SECTIONS[row]
        value = self._crash.fields.get(field, "")
        self.text.setPlainText(multi_line(value) if value else f"{label}: not recorded.")


class EnvironmentTab(QWidget):
    """The command line and environment: hidden until the user presses Reveal."""

    reveal_requested = Signal()

    def __init__(self, crash: Crash, icons: IconSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._crash = crash
        self.stack = QStackedWidget(self)
        hidden = QWidget(self.stack)
        note = QLabel(
            "The command line and the environment variables of the crashed program are hidden: "
            "they often contain passwords, access tokens and private paths. They are never put "
            "in copied or saved reports.",
            hidden,
        )
        note.setTextFormat(Qt.TextFormat.PlainText)
        note.setWordWrap(True)
        self.reveal_button = QPushButton(icons.get("reveal"), "Reveal", hidden)
        self.reveal_button.clicked.connect(self.reveal_requested.emit)
        box = QVBoxLayout(hidden)
        box.addStretch(1)
        box.addWidget(note)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.reveal_button)
        row.addStretch(1)
        box.addLayout(row)
        box.addStretch(2)
        self.text = fixed_text(self.stack)
        self.stack.addWidget(hidden)
        self.stack.addWidget(self.text)
        layout = QVBoxLayout(self)
        layout.addWidget(self.stack)

    @property
    def revealed(self) -> bool:
        return self.stack.currentIndex() == 1

    def reveal(self) -> None:
        environ = self._crash.fields.get(Field.ENVIRON, "")
        self.text.setPlainText(
            "Command line:\n"
            + multi_line(self._crash.cmdline or "(not recorded)")
            + "\n\nEnvironment:\n"
            + multi_line(environ or "(not recorded)")
        )
        self.stack.setCurrentIndex(1)


class LogTab(QWidget):
    """Journal lines of the process or its unit around the crash, read when first shown."""

    def __init__(
        self, crash: Crash, read: Callable[[Crash], list[str]], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._crash = crash
        self._read = read
        self.loaded = False
        self.text = fixed_text(self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)

    def load(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        try:
            lines = self._read(self._crash)
        except OSError as exc:
            self.text.setPlainText(f"The journal cannot be read: {exc.strerror or exc}")
            return
        if not lines:
            self.text.setPlainText(
                "No journal lines of this process or its unit are readable around the time of "
                "the crash."
            )
            return
        self.text.setPlainText(multi_line("\n".join(lines)))
