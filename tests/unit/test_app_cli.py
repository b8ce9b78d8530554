from __future__ import annotations

import datetime

import pytest

from drkonqi_lite.cli import UsageError, parse_when
from drkonqi_lite.domain.plain_text import multi_line, one_line

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


def test_inert_escapes_terminal_controls_and_bidi() -> None:
    assert one_line("a\x1b[31mb", None) == "a\\x1b[31mb"
    assert one_line("x\u202ey", None) == "x\\u202ey"
    assert one_line("a\nb", None) == "a\\nb"
    assert one_line("y" * 1000, None) == "y" * 1000  # the terminal gets it whole
    assert multi_line("a\nb\x07") == "a\nb\\x07"
