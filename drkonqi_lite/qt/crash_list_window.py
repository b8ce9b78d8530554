"""The crash list window ("Crash Reports"): every crash of the user, grouped, searchable.

A search box, the grouped tree (crash_list_model.py), a context menu and a status line. Enter
or a double click opens the crash's detail window (through the router, via `open_crash`).
Thin: the model groups, sorts and filters; this wires keys and menus to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import (
    QFont,
    QFontMetrics,
    QGuiApplication,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QStackedWidget,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.report import report_text
from drkonqi_lite.qt.crash_list_model import CRASH_ID_ROLE, Column, CrashListModel
from drkonqi_lite.qt.icons import IconSet

#: Initial column widths: a sample of the widest usual content (the Program column stretches).
_SAMPLES = {Column.WHEN: "2026-11-26 06:55:03", Column.REASON: "Segmentation fault (SIGSEGV)",
            Column.PID: "4194304", Column.ORIGIN: "plasma-workspace 6.0.2",
            Column.CORE: "inaccessible", Column.COUNT: "Times"}  # fmt: skip


class CrashListWindow(QWidget):
    """All crashes, newest first, repeats grouped."""

    def __init__(
        self,
        program: Callable[[Crash], Program],
        open_crash: Callable[[str], object],
        is_seen: Callable[[str], bool] = lambda _id: True,
        parent: QWidget | None = None,
        reported: Callable[[str], str] = lambda _id: "",
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Crash Reports")
        self.icons = IconSet(self.palette())
        self.setWindowIcon(self.icons.program(""))
        self._open_crash = open_crash
        self.model = CrashListModel(
            program, lambda p: self.icons.program(p.icon), is_seen, self, reported
        )

        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search by program, reason, PID, package or unit")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.model.set_filter)
        self.search.textChanged.connect(self._update_status)
        self.search.returnPressed.connect(self._focus_first)

        self.view = QTreeView(self)
        self.view.setModel(self.model)
        self.view.setUniformRowHeights(True)  # lets the view skip per-row size queries
        self.view.setAlternatingRowColors(True)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(Column.WHEN, Qt.SortOrder.DescendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)
        self.view.activated.connect(self._activated)  # Enter, and double click (or the style's)
        header = self.view.header()
        header.setStretchLastSection(False)
        bold = QFont(self.font())
        bold.setBold(True)  # unseen crashes are bold
        metrics = QFontMetrics(bold)
        for column, sample in _SAMPLES.items():
            extra = self.view.indentation() + 8 if column == Column.WHEN else 0
            header.resizeSection(column, metrics.horizontalAdvance(sample) + 20 + extra)
        header.setSectionResizeMode(Column.PROGRAM, QHeaderView.ResizeMode.Stretch)

        self.empty = QLabel(self)
        self.empty.setTextFormat(Qt.TextFormat.PlainText)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.view)
        self.stack.addWidget(self.empty)
        self.status = QLabel(self)
        self.status.setTextFormat(Qt.TextFormat.PlainText)

        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.status)
        QShortcut(QKeySequence.StandardKey.Find, self, self._focus_search)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self.search, self.search.clear)
        QShortcut(QKeySequence.StandardKey.Copy, self.view, self.copy_report)
        for signal in (self.model.rowsInserted, self.model.rowsRemoved, self.model.modelReset):
            signal.connect(self._update_status)
        self.resize(1100, 560)
        self._update_status()

    # --- data -------------------------------------------------------------------------------
    def set_crashes(self, crashes: Sequence[Crash]) -> None:
        self.model.set_crashes(crashes)
        self._select_first_if_none()

    def sync(self, crashes: Sequence[Crash]) -> None:
        """New crashes arrived (or old ones went): update in place."""
        self.model.sync(crashes)
        self._select_first_if_none()

    def _select_first_if_none(self) -> None:
        if not self.view.currentIndex().isValid() and self.model.rowCount():
            self.view.setCurrentIndex(self.model.index(0, 0))

    def _update_status(self, *_args: object) -> None:
        groups, crashes = self.model.group_count(), self.model.crash_count()
        if groups:
            self.stack.setCurrentWidget(self.view)
            repeats = f", {groups} distinct" if groups != crashes else ""
            self.status.setText(f"{crashes} crash{'es' if crashes != 1 else ''}{repeats}")
            return
        self.stack.setCurrentWidget(self.empty)
        if self.search.text().strip():
            self.empty.setText("No crash matches the search.")
        else:
            self.empty.setText("No crashes. When a program crashes, it is listed here.")
        self.status.setText("")

    # --- user actions -----------------------------------------------------------------------
    def selected_crash(self) -> Crash | None:
        return self.model.crash_at(self.view.currentIndex())

    def _activated(self, index: QModelIndex) -> None:
        crash_id = self.model.data(index, CRASH_ID_ROLE)
        if isinstance(crash_id, str):
            self._open_crash(crash_id)

    def open_selected(self) -> None:
        self._activated(self.view.currentIndex())

    def copy_report(self) -> None:
        crash = self.selected_crash()
        if crash is not None:
            index = self.view.currentIndex().siblingAtColumn(Column.PROGRAM)
            name = str(self.model.data(index.parent() if index.parent().isValid() else index))
            QGuiApplication.clipboard().setText(report_text(crash, name))

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _focus_first(self) -> None:
        if self.model.rowCount():
            self.view.setFocus()
            self.view.setCurrentIndex(self.model.index(0, 0))

    def _menu(self, position: QPoint) -> None:
        index = self.view.indexAt(position)
        menu = QMenu(self)
        if index.isValid():
            self.view.setCurrentIndex(index)
            menu.addAction(self.icons.get("generate"), "Open details", self.open_selected)
            menu.addAction(self.icons.get("copy"), "Copy report", self.copy_report)
            if self.model.hasChildren(index.siblingAtColumn(0)):
                menu.addSeparator()
                if self.view.isExpanded(index.siblingAtColumn(0)):
                    menu.addAction("Hide repeats", lambda: self.view.collapse(index))
                else:
                    menu.addAction("Show repeats", lambda: self.view.expand(index))
            menu.addSeparator()
        menu.addAction("Expand all", self.view.expandAll)
        menu.addAction("Collapse all", self.view.collapseAll)
        menu.exec(self.view.viewport().mapToGlobal(position))
