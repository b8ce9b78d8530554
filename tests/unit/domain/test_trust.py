"""Which entries a user's app trusts (SECURITY.md 1), where a stored core may be, and its state."""

from __future__ import annotations

import dataclasses

import pytest

from drkonqi_lite.domain.crash import crash_from_entry
from drkonqi_lite.domain.trust import CoreProbe, TrustPolicy, decide_core_state
from drkonqi_lite_collector.journal.schema import CoreState
from tests.entries import entry


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

