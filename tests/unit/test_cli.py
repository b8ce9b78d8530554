"""The command line's time arguments."""

from __future__ import annotations

import datetime

import pytest

from drkonqi_lite.cli import UsageError, parse_when

NOW = 1_800_000_000.0


def test_parse_when() -> None:
    assert parse_when("2h", NOW) == int((NOW - 7200) * 1e6)
    assert parse_when("3 days ago", NOW) == int((NOW - 3 * 86400) * 1e6)
    assert parse_when("@1700000000", NOW) == 1_700_000_000_000_000
    midnight = datetime.datetime.fromtimestamp(NOW).replace(hour=0, minute=0, second=0,
                                                            microsecond=0)  # fmt: skip
    assert parse_when("today", NOW) == int(midnight.timestamp() * 1e6)
    assert parse_when("yesterday", NOW) == int(midnight.timestamp() * 1e6) - 86400 * 10**6
    assert parse_when("2026-11-26 10:00", NOW) == int(
        datetime.datetime(2026, 11, 26, 10, 0).timestamp() * 1e6)  # fmt: skip
    with pytest.raises(UsageError):
        parse_when("soon", NOW)

