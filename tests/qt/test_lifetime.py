"""The on-demand app's end (IdleExit) and the resident app's journal fallback, under Qt's loop."""

from __future__ import annotations

from PySide6.QtCore import QObject
from pytestqt.qtbot import QtBot

from drkonqi_lite.adapters.crash_handler import FALLBACK_S
from drkonqi_lite.qt.lifetime import IdleExit, fallback_timer


def test_ends_only_after_a_whole_quiet_grace_period(qtbot: QtBot) -> None:
    parent = QObject()
    reasons: list[str | None] = ["unseen crashes"]
    ended: list[bool] = []
    idle = IdleExit(lambda: reasons[0], lambda: ended.append(True), parent, grace_ms=100)
    idle.check()
    qtbot.wait(250)
    assert not ended, "busy: no timer was even started"
    reasons[0] = None
    idle.check()
    qtbot.wait(50)
    reasons[0] = "a window is open"  # a window opened during the grace period
    idle.check()
    qtbot.wait(200)
    assert not ended
    reasons[0] = None
    idle.check()
    qtbot.waitUntil(lambda: bool(ended), timeout=2000)
    assert ended == [True]


def test_busy_again_when_the_grace_period_ends(qtbot: QtBot) -> None:
    """A crash read without a check() call in between still keeps the app (checked at expiry)."""
    parent = QObject()
    reasons: list[str | None] = [None]
    ended: list[bool] = []
    idle = IdleExit(lambda: reasons[0], lambda: ended.append(True), parent, grace_ms=100)
    idle.check()
    reasons[0] = "unseen crashes"
    qtbot.wait(300)
    assert not ended


def test_fallback_is_a_coarse_bounded_timer() -> None:
    parent = QObject()
    timer = fallback_timer(lambda: None, parent)
    assert timer.isActive()
    assert timer.interval() == FALLBACK_S * 1000
    assert 0 < FALLBACK_S <= 10, "a lost datagram may hide a crash for a few seconds at most"
