"""What the app tells of a crash (summary and detail) never carries its environment."""

from __future__ import annotations

from drkonqi_lite.domain.crash import crash_from_entry
from drkonqi_lite.domain.summary import detail, summary
from tests.entries import entry


def test_environment_never_in_summary_or_detail() -> None:
    crash = crash_from_entry(entry())
    text = repr(summary(crash, seen=False)) + repr(detail(crash, seen=False))
    assert "hunter2" not in text
    assert "COREDUMP_ENVIRON" not in detail(crash, seen=False)["fields"]

