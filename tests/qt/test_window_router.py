"""The window seam (WindowRouter), offscreen with pytest-qt."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from drkonqi_lite.qt.window_router import WindowRouter


class FakeWindows:
    """A WindowFactory that makes plain widgets and remembers what it was asked for."""

    def __init__(self, qtbot: QtBot, known: set[str]) -> None:
        self.qtbot = qtbot
        self.known = known
        self.asked: list[str] = []
        self.lists = 0

    def _widget(self, title: str) -> QWidget:
        widget = QWidget()
        widget.setWindowTitle(title)
        self.qtbot.addWidget(widget)
        return widget

    def crash_list(self) -> QWidget:
        self.lists += 1
        return self._widget("Crash Reports")

    def crash_detail(self, crash_id: str) -> QWidget | None:
        self.asked.append(crash_id)
        return self._widget(f"{crash_id} crash") if crash_id in self.known else None

    def crashes_changed(self) -> None:
        return None


def test_router_opens_and_raises_one_window_per_crash(qtbot: QtBot) -> None:
    windows = FakeWindows(qtbot, {"ca", "cb"})
    router = WindowRouter(windows)
    with qtbot.waitSignal(router.crash_shown) as shown:
        assert router.show_crash("ca")
    assert shown.args == ["ca"]
    assert router.show_crash("ca")  # raised, not made again
    assert router.show_crash("cb")
    assert windows.asked == ["ca", "cb"]
    assert sorted(w.windowTitle() for w in _top_level()) == ["ca crash", "cb crash"]
    assert not router.show_crash("cunknown")


def test_router_keeps_one_crash_list(qtbot: QtBot) -> None:
    windows = FakeWindows(qtbot, set())
    router = WindowRouter(windows)
    for _ in range(3):
        with qtbot.waitSignal(router.list_shown):
            router.show_crash_list()
    assert windows.lists == 1
    assert [w.windowTitle() for w in _top_level()] == ["Crash Reports"]



def _top_level() -> list[QWidget]:
    from PySide6.QtWidgets import QApplication  # noqa: PLC0415

    return [w for w in QApplication.topLevelWidgets() if w.isVisible()]
