"""The crash record made from a journal entry: its facts, id and bounds; malformed entries raise."""

from __future__ import annotations

import pytest

from drkonqi_lite.domain.crash import MalformedEntryError, crash_from_entry, crash_id, reason_text
from tests.entries import BOOT, entry


def test_record_from_entry() -> None:
    crash = crash_from_entry(entry())
    assert crash.pid == 4242
    assert crash.uid == 1000
    assert crash.signal_name == "SIGSEGV"
    assert crash.reason == "Segmentation fault"
    assert crash.backtrace.startswith("Stack trace of thread 1:")
    assert crash.id == crash_id(BOOT, 4242, 1_700_000_000_000_000)
    assert not crash.id.isdigit()


def test_id_is_stable_and_distinct() -> None:
    assert crash_from_entry(entry()).id == crash_from_entry(entry()).id
    assert crash_from_entry(entry()).id != crash_from_entry(entry(pid=4243)).id


def test_invalid_utf8_and_huge_argv_are_bounded_text() -> None:
    crash = crash_from_entry(entry(comm=b"\xff\xfe<b>x</b>", exe="/x" * 100_000))  # type: ignore[arg-type]
    assert "\ufffd" in crash.comm
    assert len(crash.exe) <= 4096


@pytest.mark.parametrize("missing", ["COREDUMP_PID", "COREDUMP_UID", "COREDUMP_SIGNAL"])
def test_malformed_entries_raise(missing: str) -> None:
    e = entry()
    del e[missing]
    with pytest.raises(MalformedEntryError):
        crash_from_entry(e)


def test_not_a_number_is_malformed() -> None:
    with pytest.raises(MalformedEntryError):
        crash_from_entry(entry(COREDUMP_PID="12; rm -rf /"))


def test_reason_words() -> None:
    assert reason_text(6) == "Aborted"
    assert reason_text(99) == "Killed by signal 99"

