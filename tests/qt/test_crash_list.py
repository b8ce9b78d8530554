"""The crash list window and its model (pytest-qt, offscreen): grouping, search, sort, keys,
live updates that keep selection and expansion, and hostile names shown literally."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QFont
from PySide6.QtTest import QAbstractItemModelTester
from pytestqt.qtbot import QtBot

from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.qt.crash_list_model import CRASH_ID_ROLE, Column
from drkonqi_lite.qt.crash_list_window import CrashListWindow
from tests import entries


def program(crash: Crash) -> Program:
    return Program(name=crash.comm)


@pytest.fixture
def opened() -> list[str]:
    return []


@pytest.fixture
def window(qtbot: QtBot, opened: list[str]) -> CrashListWindow:
    w = CrashListWindow(program, opened.append)
    qtbot.addWidget(w)
    QAbstractItemModelTester(
        w.model, QAbstractItemModelTester.FailureReportingMode.Fatal, w.model
    )  # checks every signal and index the model emits from here on
    return w


def text(w: CrashListWindow, row: int, column: Column, parent: QModelIndex | None = None) -> str:
    return str(w.model.data(w.model.index(row, column, parent or QModelIndex())))


def test_repeats_grouped_with_counts_newest_first(window: CrashListWindow) -> None:
    crashes = entries.many(30, programs=3)  # 3 programs x 3 crash sites, 30 crashes
    window.set_crashes(crashes)
    model = window.model
    assert model.rowCount() == 9
    assert model.crash_count() == 30
    assert text(window, 0, Column.PROGRAM) == "prog0"  # the newest crash's group on top
    counts = sorted(int(text(window, r, Column.COUNT)) for r in range(9))
    assert sum(counts) == 30
    assert counts == [3, 3, 3, 3, 3, 3, 4, 4, 4]
    top = model.index(0, 0)
    assert model.rowCount(top) == int(text(window, 0, Column.COUNT))
    children = [model.crash_at(model.index(r, 0, top)) for r in range(model.rowCount(top))]
    times = [c.timestamp_us for c in children if c is not None]
    assert times == sorted(times, reverse=True)
    assert window.status.text() == "30 crashes, 9 distinct"


def test_single_crash_has_no_expander(window: CrashListWindow) -> None:
    window.set_crashes([entries.crash()])
    assert window.model.rowCount() == 1
    assert not window.model.hasChildren(window.model.index(0, 0))
    assert window.status.text() == "1 crash"


def test_search_filters_by_name_and_pid_and_says_when_nothing_matches(
    qtbot: QtBot, window: CrashListWindow
) -> None:
    window.set_crashes(entries.many(20, programs=4))
    window.show()
    qtbot.keyClicks(  # type: ignore[no-untyped-call]
        window.search, "prog2"
    )
    assert {text(window, r, Column.PROGRAM) for r in range(window.model.rowCount())} == {"prog2"}
    window.search.setText("10007")  # a PID (of prog3)
    assert window.model.rowCount() == 1
    assert text(window, 0, Column.PROGRAM) == "prog3"
    window.search.setText("no-such-program")
    assert window.model.rowCount() == 0
    assert window.stack.currentWidget() is window.empty
    assert window.empty.text() == "No crash matches the search."
    window.search.clear()
    assert window.model.crash_count() == 20


def test_sort_by_column_keeps_the_selection(window: CrashListWindow) -> None:
    window.set_crashes(entries.many(12, programs=6))
    window.view.setCurrentIndex(window.model.index(3, 0))
    chosen = window.selected_crash()
    window.view.sortByColumn(Column.PROGRAM, Qt.SortOrder.AscendingOrder)
    names = [text(window, r, Column.PROGRAM) for r in range(window.model.rowCount())]
    assert names == sorted(names)
    assert window.selected_crash() is chosen
    window.view.sortByColumn(Column.COUNT, Qt.SortOrder.DescendingOrder)
    counts = [int(text(window, r, Column.COUNT)) for r in range(window.model.rowCount())]
    assert counts == sorted(counts, reverse=True)
    assert window.selected_crash() is chosen


def test_enter_opens_the_detail_and_keyboard_moves(
    qtbot: QtBot, window: CrashListWindow, opened: list[str]
) -> None:
    crashes = entries.many(6, programs=6)
    window.set_crashes(crashes)
    window.show()
    qtbot.waitExposed(window)
    window.view.setFocus()
    window.view.setCurrentIndex(window.model.index(0, 0))
    qtbot.keyClick(  # type: ignore[no-untyped-call]
        window.view, Qt.Key.Key_Down
    )
    qtbot.keyClick(  # type: ignore[no-untyped-call]
        window.view, Qt.Key.Key_Return
    )
    assert opened == [crashes[1].id]  # second newest, one row down


def test_new_crashes_are_inserted_live_keeping_selection_and_expansion(
    qtbot: QtBot, window: CrashListWindow
) -> None:
    crashes = entries.many(40, programs=4)
    window.set_crashes(crashes[10:])
    model = window.model
    window.view.setCurrentIndex(model.index(2, 0))
    chosen = window.selected_crash()
    window.view.expand(model.index(2, 0))
    expanded = model.crash_at(model.index(2, 0))
    assert expanded is not None
    with qtbot.waitSignal(model.rowsInserted):
        window.sync(crashes)  # 10 newer crashes arrive, all into existing groups
    assert model.crash_count() == 40
    assert window.selected_crash() is not None
    assert window.selected_crash().program_key == chosen.program_key  # type: ignore[union-attr]
    rows = [r for r in range(model.rowCount()) if window.view.isExpanded(model.index(r, 0))]
    assert len(rows) == 1
    assert model.crash_at(model.index(rows[0], 0)).program_key == expanded.program_key  # type: ignore[union-attr]
    # A brand-new program goes on top, and the count of a repeat grows.
    fresh = entries.crash(pid=99, comm="newprog", exe="/usr/bin/newprog", ts=entries.NOW_US + 10**6)
    with qtbot.waitSignal(model.rowsInserted):
        window.sync([*crashes, fresh])
    assert text(window, 0, Column.PROGRAM) == "newprog"
    assert model.data(model.index(0, 0), CRASH_ID_ROLE) == fresh.id


def test_group_with_one_crash_gains_children_when_it_repeats(
    qtbot: QtBot, window: CrashListWindow
) -> None:
    first = entries.crash(pid=1, ts=entries.NOW_US - 10**6)
    window.set_crashes([first])
    again = entries.crash(pid=2, ts=entries.NOW_US)
    window.sync([again, first])
    top = window.model.index(0, 0)
    assert window.model.rowCount(top) == 2
    assert text(window, 0, Column.COUNT) == "2"
    assert text(window, 0, Column.PID) == "2"


def test_crash_going_away_resets(window: CrashListWindow) -> None:
    crashes = entries.many(10, programs=10)
    window.set_crashes(crashes)
    window.sync(crashes[:5])
    assert window.model.crash_count() == 5


def test_hostile_names_render_literally(window: CrashListWindow) -> None:
    hostile = entries.crash(comm=entries.HOSTILE_COMM, exe=entries.HOSTILE_EXE)
    window.set_crashes([hostile])
    shown = text(window, 0, Column.PROGRAM)
    assert shown == "<b>evil</b>\\u202egnp.exe"  # markup as characters, bidi made visible
    assert "\u202e" not in shown
    child_free = window.model.data(
        window.model.index(0, Column.PROGRAM), Qt.ItemDataRole.ToolTipRole
    )
    assert child_free is None  # never a tooltip: tooltips may render rich text


def test_empty_list_says_so(window: CrashListWindow) -> None:
    window.set_crashes([])
    assert window.stack.currentWidget() is window.empty
    assert "No crashes" in window.empty.text()


def test_unseen_crashes_are_bold(qtbot: QtBot) -> None:
    crashes = entries.many(2, programs=2)
    w = CrashListWindow(program, lambda _id: None, is_seen=lambda i: i != crashes[0].id)
    qtbot.addWidget(w)
    w.set_crashes(crashes)
    font = w.model.data(w.model.index(0, 0), Qt.ItemDataRole.FontRole)
    assert isinstance(font, QFont)
    assert font.bold()
    assert w.model.data(w.model.index(1, 0), Qt.ItemDataRole.FontRole) is None


def test_fits_small_screens(window: CrashListWindow) -> None:
    window.set_crashes([*entries.many(5), entries.crash(comm="x" * 300, exe="/" + "y" * 4000)])
    hint = window.minimumSizeHint()
    assert hint.width() <= 1280
    assert hint.height() <= 800
