from __future__ import annotations

import dataclasses

import pytest

from drkonqi_lite.domain.crash import MalformedEntryError, crash_from_entry, crash_id, reason_text
from drkonqi_lite.domain.summary import detail, summary
from drkonqi_lite.domain.trust import CoreProbe, TrustPolicy, decide_core_state
from drkonqi_lite_collector.journal.schema import CoreState
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


def test_environment_never_in_summary_or_detail() -> None:
    crash = crash_from_entry(entry())
    text = repr(summary(crash, seen=False)) + repr(detail(crash, seen=False))
    assert "hunter2" not in text
    assert "COREDUMP_ENVIRON" not in detail(crash, seen=False)["fields"]


def test_trust() -> None:
    policy = TrustPolicy.for_user(1000, frozenset({998}))
    assert policy.accepts(crash_from_entry(entry(sender=0)))
    assert policy.accepts(crash_from_entry(entry(sender=998)))
    assert policy.accepts(crash_from_entry(entry(sender=1000)))
    assert not policy.accepts(crash_from_entry(entry(sender=1001)))  # forged by another user
    assert not policy.accepts(crash_from_entry(entry(uid=1001, sender=0)))  # another user's crash
    assert not policy.accepts(crash_from_entry(entry(uid=1001, sender=1000)))


@pytest.mark.parametrize(
    "path",
    [
        "/etc/shadow",
        "/var/lib/drkonqi-lite/coredump/../../../../etc/shadow",
        "/var/lib/drkonqi-lite/coredump/sub/core",
        "var/lib/drkonqi-lite/coredump/core",
        "/var/lib/drkonqi-lite/coredump//core",
        "/var/lib/drkonqi-lite/coredump/",
        "/var/lib/drkonqi-lite/coredump/.",
    ],
)
def test_core_outside_storage_is_refused(path: str) -> None:
    assert TrustPolicy.for_user(1000, frozenset()).core_location(path) is None


def test_core_inside_storage() -> None:
    loc = TrustPolicy.for_user(1000, frozenset()).core_location("/var/lib/systemd/coredump/core.x")
    assert loc == ("/var/lib/systemd/coredump", "core.x")


def test_core_states() -> None:
    crash = crash_from_entry(entry(COREDUMP_FILENAME="/var/lib/drkonqi-lite/coredump/core.x"))
    assert decide_core_state(crash, CoreProbe.READABLE) == CoreState.PRESENT
    assert decide_core_state(crash, CoreProbe.UNREADABLE) == CoreState.INACCESSIBLE
    assert decide_core_state(crash, CoreProbe.ABSENT) == CoreState.MISSING
    assert decide_core_state(crash, CoreProbe.OUTSIDE_STORAGE) == CoreState.NONE
    assert decide_core_state(crash, None) == CoreState.NONE
    trunc = dataclasses.replace(crash, core_truncated=True)
    assert decide_core_state(trunc, CoreProbe.READABLE) == CoreState.TRUNCATED
    restricted = dataclasses.replace(crash, restricted=True)
    assert decide_core_state(restricted, CoreProbe.READABLE) == CoreState.INACCESSIBLE
