"""The escaper of hostile text (issue 5): inert one-line and multi-line text, wrappable paths."""

from __future__ import annotations

from drkonqi_lite.domain.plain_text import BREAK, multi_line, one_line, wrappable


def test_inert_escapes_terminal_controls_and_bidi() -> None:
    assert one_line("a\x1b[31mb", None) == "a\\x1b[31mb"
    assert one_line("x\u202ey", None) == "x\\u202ey"
    assert one_line("a\nb", None) == "a\\nb"
    assert one_line("y" * 1000, None) == "y" * 1000  # the terminal gets it whole
    assert multi_line("a\nb\x07") == "a\nb\\x07"


def test_inert_text() -> None:
    assert one_line("<b>x</b>\u202e\n\x1b[31m\t") == "<b>x</b>\\u202e\\n\\x1b[31m\\t"
    assert multi_line("a\nb\u2066c\u200bd") == "a\nb\\u2066c\\u200bd"
    assert one_line("x" * 500, 10) == "x" * 9 + "…"
    long = "/usr/" + "e" * 100
    assert wrappable(long).replace(BREAK, "") == long
    assert wrappable(long).count(BREAK) == 4  # after "/", "usr/", then every 40 characters
