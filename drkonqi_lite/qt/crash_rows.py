"""What the crash list's rows are and say: the columns, groups of repeats, their sort keys, the
text searched and the text shown. Plain Python on plain lists, no Qt: crash_list_model.py keeps
only the bookkeeping Qt's item model needs (row numbers, inserts, moves).

Groups are one program with one signature (signal + top frames, see domain/signature.py); their
crashes are kept newest first. Text is hostile: what is shown is made inert
(plain_text.one_line), and none of it is given to tooltips (which may render rich text).
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
from collections.abc import Callable, Iterator

from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.plain_text import one_line
from drkonqi_lite.domain.report import absolute_when
from drkonqi_lite.domain.signature import group_key

#: How many crashes of a group are looked at for its bold (unseen) and "N reported" cells: a
#: crash loop of thousands must not make painting one row slow.
GROUP_SAMPLE = 50


class Column(enum.IntEnum):
    WHEN = 0
    PROGRAM = 1
    REASON = 2
    PID = 3
    ORIGIN = 4
    CORE = 5
    COUNT = 6
    REPORTED = 7


HEADERS = ("When", "Program", "Reason", "PID", "Package or unit", "Core", "Times", "Reported")


@dataclasses.dataclass(slots=True, eq=False)
class CrashGroup:
    """Crashes of one program with one signature, newest first."""

    serial: int
    program: Program
    crashes: list[Crash]
    sort_key: tuple[object, ...] = ()
    haystack: str = ""

    @property
    def newest(self) -> Crash:
        return self.crashes[0]


def origin(crash: Crash) -> str:
    """The package (with version) or else the unit."""
    if crash.package:
        return f"{crash.package} {crash.package_version}".strip()
    return crash.unit


def child_position(crashes: list[Crash], crash: Crash) -> int:
    """Where `crash` goes among a group's crashes (newest first)."""
    return bisect.bisect_left(crashes, -crash.timestamp_us, key=lambda c: -c.timestamp_us)


class CrashGroups:
    """Every crash filed in its group; the program of each is looked up once."""

    def __init__(self, program: Callable[[Crash], Program]) -> None:
        self._program = program
        self._groups: dict[tuple[str, str], CrashGroup] = {}
        self._by_serial: dict[int, CrashGroup] = {}
        self._programs: dict[str, Program] = {}
        #: Ids of the crashes filed.
        self.ids: set[str] = set()

    def clear(self) -> None:
        self._groups.clear()
        self._by_serial.clear()
        self.ids.clear()

    def __iter__(self) -> Iterator[CrashGroup]:
        return iter(self._groups.values())

    def of(self, crash: Crash) -> CrashGroup | None:
        """The group `crash` belongs in, if there is one yet."""
        return self._groups.get(group_key(crash))

    def by_serial(self, serial: int) -> CrashGroup | None:
        return self._by_serial.get(serial)

    def file(self, crash: Crash) -> CrashGroup:
        """Append `crash` to its group (made when new); the caller keeps the order."""
        key = group_key(crash)
        self.ids.add(crash.id)
        group = self._groups.get(key)
        if group is None:
            program = self._programs.get(crash.program_key)
            if program is None:
                program = self._program(crash)
                self._programs[crash.program_key] = program
            group = CrashGroup(serial=len(self._by_serial) + 1, program=program, crashes=[])
            self._groups[key] = group
            self._by_serial[group.serial] = group
        group.crashes.append(crash)
        return group


def sort_key(
    group: CrashGroup, column: Column, reported: Callable[[str], str]
) -> tuple[object, ...]:
    """The group's place when sorted by `column`; ties broken by time, then filing order."""
    newest = group.newest
    value: object
    if column is Column.WHEN:
        value = newest.timestamp_us
    elif column is Column.PROGRAM:
        value = group.program.name.casefold()
    elif column is Column.REASON:
        value = newest.reason
    elif column is Column.PID:
        value = newest.pid
    elif column is Column.ORIGIN:
        value = origin(newest).casefold()
    elif column is Column.CORE:
        value = str(newest.core_state)
    elif column is Column.REPORTED:
        value = reported(newest.id)
    else:
        value = len(group.crashes)
    return (value, newest.timestamp_us, group.serial)


def matches(group: CrashGroup, needle: str) -> bool:
    """Whether the group's texts contain every word of `needle` (already casefolded)."""
    if not needle:
        return True
    if not group.haystack:
        parts = [group.program.name]
        for crash in group.crashes:
            parts += [crash.comm, crash.exe, crash.reason, crash.signal_name,
                      str(crash.pid), origin(crash), str(crash.core_state)]  # fmt: skip
        group.haystack = "\n".join(parts).casefold()
    return all(word in group.haystack for word in needle.split())


def display(group: CrashGroup, crash: Crash, column: int, *, is_group: bool) -> str:
    """The text of one cell (not the Reported column: see reported_text)."""
    if column == Column.WHEN:
        return absolute_when(crash.timestamp_us)
    if column == Column.PROGRAM:
        return one_line(group.program.name if is_group else crash.comm or crash.exe, 80)
    if column == Column.REASON:
        return f"{crash.reason} ({crash.signal_name})"
    if column == Column.PID:
        return str(crash.pid)
    if column == Column.ORIGIN:
        return one_line(origin(crash), 80)
    if column == Column.CORE:
        return str(crash.core_state)
    return str(len(group.crashes)) if is_group else ""


def reported_text(
    group: CrashGroup, crash: Crash, reported: Callable[[str], str], *, is_group: bool
) -> str:
    """The event id (the server's key for the report); a group counts its reported ones."""
    if is_group and len(group.crashes) > 1:
        n = sum(1 for c in group.crashes[:GROUP_SAMPLE] if reported(c.id))
        return f"{n} reported" if n else ""
    return reported(crash.id)


def seen(
    group: CrashGroup, crash: Crash, is_seen: Callable[[str], bool], *, is_group: bool
) -> bool:
    """A group is seen when its (sampled) crashes all are."""
    if is_group:
        return all(is_seen(c.id) for c in group.crashes[:GROUP_SAMPLE])
    return is_seen(crash.id)
