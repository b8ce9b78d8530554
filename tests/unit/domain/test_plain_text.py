"""The escaper of hostile text for terminals."""

from __future__ import annotations

from drkonqi_lite.domain.plain_text import multi_line, one_line


def test_inert_escapes_terminal_controls_and_bidi() -> None:
    assert one_line("a\x1b[31mb", None) == "a\\x1b[31mb"
    assert one_line("x\u202ey", None) == "x\\u202ey"
    assert one_line("a\nb", None) == "a\\nb"
    assert one_line("y" * 1000, None) == "y" * 1000  # the terminal gets it whole
    assert multi_line("a\nb\x07") == "a\nb\\x07"

