"""The tray menu's text, made inert."""

from __future__ import annotations

from drkonqi_lite.qt.tray import menu_text


def test_menu_text_is_inert() -> None:
    assert menu_text("Tom & Jerry\nline2") == "Tom && Jerry line2"
    assert len(menu_text("x" * 500)) == 78

