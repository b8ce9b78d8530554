"""The crash list's rows without Qt: grouping repeats, sort keys, search and the cells' text."""

from __future__ import annotations

from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.qt import crash_rows
from drkonqi_lite.qt.crash_rows import GROUP_SAMPLE, Column, CrashGroup, CrashGroups
from tests import entries


def _grouped(crashes: list[Crash]) -> tuple[CrashGroups, list[str]]:
    looked_up: list[str] = []

    def program(crash: Crash) -> Program:
        looked_up.append(crash.comm)
        return Program(name=crash.comm.title())

    groups = CrashGroups(program)
    for crash in crashes:
        groups.file(crash)
    return groups, looked_up


def test_repeats_share_a_group_and_the_program_is_looked_up_once() -> None:
    first, again = entries.crash(pid=1), entries.crash(pid=2, ts=entries.NOW_US)
    other = entries.crash(pid=3, func="elsewhere")
    groups, looked_up = _grouped([first, again, other])
    assert [len(g.crashes) for g in groups] == [2, 1]
    assert looked_up == ["kwrite"]  # the third crash is kwrite too: its program is cached
    assert groups.of(again) is groups.by_serial(1)
    assert groups.of(entries.crash(comm="kate", exe="/usr/bin/kate")) is None
    assert groups.ids == {first.id, again.id, other.id}
    groups.clear()
    assert list(groups) == []
    assert not groups.ids


def test_child_position_keeps_newest_first() -> None:
    crashes = [entries.crash(pid=p, ts=entries.NOW_US - p) for p in (1, 5, 9)]
    assert crash_rows.child_position(crashes, entries.crash(ts=entries.NOW_US)) == 0
    assert crash_rows.child_position(crashes, entries.crash(ts=entries.NOW_US - 6)) == 2
    assert crash_rows.child_position(crashes, entries.crash(ts=entries.NOW_US - 99)) == 3


def test_sort_keys_by_column_then_time_then_filing_order() -> None:
    group = CrashGroup(7, Program(name="KWrite"), [entries.crash(pid=42, ts=entries.NOW_US)])
    reported = {group.newest.id: "ev1"}.get

    def key(column: Column) -> tuple[object, ...]:
        return crash_rows.sort_key(group, column, lambda i: reported(i) or "")

    assert key(Column.WHEN) == (entries.NOW_US, entries.NOW_US, 7)
    assert key(Column.PROGRAM)[0] == "kwrite"
    assert key(Column.PID)[0] == 42
    assert key(Column.ORIGIN)[0] == "kwrite 4:22.12.3-1"
    assert key(Column.CORE)[0] == "present"
    assert key(Column.REPORTED)[0] == "ev1"
    assert key(Column.COUNT)[0] == 1


def test_search_needs_every_word_in_any_of_the_groups_texts() -> None:
    group = CrashGroup(1, Program(name="KWrite"), [entries.crash(pid=4242)])
    assert crash_rows.matches(group, "")
    assert crash_rows.matches(group, "kwrite 4242")
    assert crash_rows.matches(group, "sigabrt")
    assert not crash_rows.matches(group, "kwrite 9999")
    assert "4242" in group.haystack  # made once, kept for the next keystroke


def test_cells_are_inert_and_groups_count() -> None:
    hostile = entries.crash(comm=entries.HOSTILE_COMM, exe=entries.HOSTILE_EXE)
    group = CrashGroup(1, Program(name="Evil\nname"), [hostile, entries.crash()])
    assert crash_rows.display(group, hostile, Column.PROGRAM, is_group=True) == "Evil\\nname"
    assert "\u202e" not in crash_rows.display(group, hostile, Column.PROGRAM, is_group=False)
    assert crash_rows.display(group, hostile, Column.COUNT, is_group=True) == "2"
    assert crash_rows.display(group, hostile, Column.COUNT, is_group=False) == ""
    assert crash_rows.display(group, hostile, Column.REASON, is_group=False).endswith("(SIGABRT)")


def test_reported_and_seen_sample_a_groups_crashes() -> None:
    crashes = [entries.crash(pid=p) for p in range(GROUP_SAMPLE + 5)]
    group = CrashGroup(1, Program(name="KWrite"), crashes)
    first = crashes[0]

    def reported(crash_id: str) -> str:
        return "ev1" if crash_id == first.id else ""

    assert crash_rows.reported_text(group, first, reported, is_group=True) == "1 reported"
    assert crash_rows.reported_text(group, first, lambda _i: "", is_group=True) == ""
    assert crash_rows.reported_text(group, first, reported, is_group=False) == "ev1"
    assert crash_rows.seen(group, first, lambda i: i == first.id, is_group=False)
    assert not crash_rows.seen(group, first, lambda i: i != first.id, is_group=False)
    assert not crash_rows.seen(group, first, lambda i: i != crashes[1].id, is_group=True)
    late = {c.id for c in crashes[GROUP_SAMPLE:]}
    assert crash_rows.seen(group, first, lambda i: i not in late, is_group=True)  # not sampled
