"""The crash list's item model: repeats of a crash grouped, sorted and searched in the model.

Top-level rows are groups (crash_rows.py: what a row is and says), newest first by default, each
with a count; their children are the single crashes, newest first. Lazy: no item objects;
display text is made in data() for the rows the view paints, and programs are looked up once per
group. Sorting and filtering happen here on plain Python lists (a QSortFilterProxyModel would
call data() from C++ for every comparison, ~10x slower at 10,000 rows). New crashes are inserted
incrementally (beginInsertRows / beginMoveRows), so selection, expansion and scrolling survive a
crash storm.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QFont, QIcon

from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.qt import crash_rows
from drkonqi_lite.qt.crash_rows import HEADERS, Column, CrashGroup, CrashGroups

__all__ = ["CRASH_ID_ROLE", "Column", "CrashListModel"]

AnyIndex = QModelIndex | QPersistentModelIndex
CRASH_ID_ROLE = Qt.ItemDataRole.UserRole + 1
_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_TOP = 0  # internalId of top-level rows; a child's is its group's serial (>= 1)


class CrashListModel(QAbstractItemModel):
    """Groups of crashes (top level) and their crashes (children)."""

    def __init__(
        self,
        program: Callable[[Crash], Program],
        icon: Callable[[Program], QIcon],
        is_seen: Callable[[str], bool] = lambda _id: True,
        parent: QObject | None = None,
        reported: Callable[[str], str] = lambda _id: "",
    ) -> None:
        super().__init__(parent)
        self._groups = CrashGroups(program)
        self._icon = icon
        self._is_seen = is_seen
        #: crash id → event id of its delivered report ("" when not reported).
        self._reported = reported
        #: Visible groups in ascending sort-key order; the view sees them reversed when the
        #: order is descending (so bisect works for both orders).
        self._rows: list[CrashGroup] = []
        self._keys: list[tuple[object, ...]] = []
        self._column = Column.WHEN
        self._order = Qt.SortOrder.DescendingOrder
        self._filter = ""
        self._bold = QFont()
        self._bold.setBold(True)

    # --- feeding ----------------------------------------------------------------------------
    def set_crashes(self, crashes: Iterable[Crash]) -> None:
        """Replace everything (a model reset)."""
        self.beginResetModel()
        self._groups.clear()
        for crash in crashes:
            self._groups.file(crash)
        for group in self._groups:
            group.crashes.sort(key=lambda c: -c.timestamp_us)
        self._rebuild_rows()
        self.endResetModel()

    def sync(self, crashes: Sequence[Crash]) -> None:
        """Catch up with the app's crash list: insert new ones; reset if any went away."""
        new = [c for c in crashes if c.id not in self._groups.ids]
        if len(crashes) - len(new) != len(self._groups.ids):
            self.set_crashes(crashes)
        elif new:
            self.add_crashes(new)
        elif self._rows:  # only the seen-state may have changed (bold rows)
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._rows) - 1, len(Column) - 1)
            )

    def add_crashes(self, crashes: Iterable[Crash]) -> None:
        """Insert new crashes, keeping selection and expansion (rows are inserted or moved)."""
        touched: dict[int, CrashGroup] = {}
        for crash in crashes:
            if crash.id in self._groups.ids:
                continue
            group = self._groups.of(crash)
            if group is None:
                group = self._groups.file(crash)
                self._insert_group(group)
                continue
            self._groups.ids.add(crash.id)
            position = crash_rows.child_position(group.crashes, crash)
            visible = self._row_of(group)
            if visible is not None:
                # A single crash shows no children; its second one shows both.
                first, last = (0, 1) if len(group.crashes) == 1 else (position, position)
                self.beginInsertRows(self.index(visible, 0), first, last)
            group.crashes.insert(position, crash)
            group.haystack = ""
            if visible is not None:
                self.endInsertRows()
                touched[group.serial] = group
            elif self._matches(group):
                self._insert_group(group)
        for group in touched.values():
            self._reposition(group)

    # --- sorting and searching --------------------------------------------------------------
    def _sort_key(self, group: CrashGroup) -> tuple[object, ...]:
        return crash_rows.sort_key(group, self._column, self._reported)

    def _matches(self, group: CrashGroup) -> bool:
        return crash_rows.matches(group, self._filter)

    def _rebuild_rows(self) -> None:
        rows = [g for g in self._groups if self._matches(g)]
        for group in rows:
            group.sort_key = self._sort_key(group)
        rows.sort(key=lambda g: g.sort_key)
        self._rows = rows
        self._keys = [g.sort_key for g in rows]

    def set_filter(self, text: str) -> None:
        """Show only groups whose texts contain every word of `text` (case-insensitive)."""
        needle = text.casefold().strip()
        if needle == self._filter:
            return
        self.beginResetModel()
        self._filter = needle
        self._rebuild_rows()
        self.endResetModel()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Re-sort the groups; selection and expansion survive (a layout change)."""
        self.layoutAboutToBeChanged.emit()
        before = [(p, self._group_at(p)) for p in self.persistentIndexList()]
        self._column = Column(column)
        self._order = order
        self._rebuild_rows()
        rows = {id(g): i for i, g in enumerate(self._rows)}
        for persistent, group in before:
            if persistent.internalId() != _TOP or group is None:
                continue  # children keep their rows; their parent moved with the group
            internal = rows.get(id(group))
            new = (
                self.index(self._view_row(internal), persistent.column())
                if internal is not None
                else QModelIndex()
            )
            self.changePersistentIndex(persistent, new)
        self.layoutChanged.emit()

    # --- row bookkeeping --------------------------------------------------------------------
    def _view_row(self, internal: int) -> int:
        if self._order == Qt.SortOrder.AscendingOrder:
            return internal
        return len(self._rows) - 1 - internal

    def _internal(self, view_row: int) -> int:
        return self._view_row(view_row)  # the mapping is its own inverse

    def _row_of(self, group: CrashGroup) -> int | None:
        """The view row of a visible group, else None."""
        if not group.sort_key:
            return None
        i = bisect.bisect_left(self._keys, group.sort_key)
        if i < len(self._rows) and self._rows[i] is group:
            return self._view_row(i)
        return None

    def _insert_group(self, group: CrashGroup) -> None:
        if not self._matches(group):
            group.sort_key = ()
            return
        group.sort_key = self._sort_key(group)
        i = bisect.bisect_left(self._keys, group.sort_key)
        view = i if self._order == Qt.SortOrder.AscendingOrder else len(self._rows) - i
        self.beginInsertRows(QModelIndex(), view, view)
        self._rows.insert(i, group)
        self._keys.insert(i, group.sort_key)
        self.endInsertRows()

    def _reposition(self, group: CrashGroup) -> None:
        """After a group changed (new crash): move its row to its new sorted place."""
        old = bisect.bisect_left(self._keys, group.sort_key)
        if old >= len(self._rows) or self._rows[old] is not group:
            return
        old_view = self._view_row(old)
        del self._rows[old]
        del self._keys[old]
        group.sort_key = self._sort_key(group)
        new = bisect.bisect_left(self._keys, group.sort_key)
        self._rows.insert(new, group)
        self._keys.insert(new, group.sort_key)
        new_view = self._view_row(new)
        if new_view != old_view:
            # Undo, then redo inside begin/endMoveRows so the view sees a consistent model.
            del self._rows[new]
            del self._keys[new]
            self._rows.insert(old, group)
            self._keys.insert(old, group.sort_key)
            destination = new_view + 1 if new_view > old_view else new_view
            if self.beginMoveRows(QModelIndex(), old_view, old_view, QModelIndex(), destination):
                del self._rows[old]
                del self._keys[old]
                self._rows.insert(new, group)
                self._keys.insert(new, group.sort_key)
                self.endMoveRows()
        row = self._view_row(new)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(Column) - 1))

    def _group_at(self, index: AnyIndex) -> CrashGroup | None:
        if not index.isValid():
            return None
        if index.internalId() == _TOP:
            row = index.row()
            return self._rows[self._internal(row)] if 0 <= row < len(self._rows) else None
        return self._groups.by_serial(int(index.internalId()))

    # --- lookups for the window -------------------------------------------------------------
    def crash_at(self, index: AnyIndex) -> Crash | None:
        """The crash of a child row, or the newest crash of a group row."""
        group = self._group_at(index)
        if group is None:
            return None
        if index.internalId() == _TOP:
            return group.newest
        row = index.row()
        return group.crashes[row] if 0 <= row < len(group.crashes) else None

    def group_count(self) -> int:
        """Visible groups."""
        return len(self._rows)

    def crash_count(self) -> int:
        """Crashes in visible groups."""
        return sum(len(g.crashes) for g in self._rows)

    # --- QAbstractItemModel -----------------------------------------------------------------
    def index(self, row: int, column: int, parent: AnyIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if column < 0 or column >= len(Column) or row < 0:
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, _TOP) if row < len(self._rows) else QModelIndex()
        if parent.internalId() != _TOP:
            return QModelIndex()
        group = self._group_at(parent)
        if group is None or row >= len(group.crashes):
            return QModelIndex()
        return self.createIndex(row, column, group.serial)

    def parent(self, index: AnyIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not index.isValid() or index.internalId() == _TOP:
            return QModelIndex()
        group = self._groups.by_serial(int(index.internalId()))
        row = None if group is None else self._row_of(group)
        return QModelIndex() if row is None else self.createIndex(row, 0, _TOP)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008, N802
        if not parent.isValid():
            return len(self._rows)
        if parent.internalId() != _TOP or parent.column() != 0:
            return 0
        group = self._group_at(parent)
        return 0 if group is None or len(group.crashes) < 2 else len(group.crashes)

    def hasChildren(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008, N802
        return self.rowCount(parent) > 0

    def columnCount(self, _parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return len(Column)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section] if 0 <= section < len(HEADERS) else None
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return _FLAGS

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        group = self._group_at(index)
        if group is None:
            return None
        is_group = index.internalId() == _TOP
        crash = self.crash_at(index)
        if crash is None:
            return None
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == Column.REPORTED:
                return crash_rows.reported_text(group, crash, self._reported, is_group=is_group)
            return crash_rows.display(group, crash, column, is_group=is_group)
        if role == Qt.ItemDataRole.DecorationRole and column == Column.PROGRAM and is_group:
            return self._icon(group.program)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in {Column.PID, Column.COUNT}:
            return _RIGHT
        if role == Qt.ItemDataRole.FontRole and not crash_rows.seen(
            group, crash, self._is_seen, is_group=is_group
        ):
            return self._bold
        if role == CRASH_ID_ROLE:
            return crash.id
        return None
