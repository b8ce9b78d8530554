"""The one place where "show crash X" and "show the crash list" requests go.

Notifications (Details), the tray menu, D-Bus ShowCrash/ShowCrashList, a second start of the
app and `drkonqi-lite show` all end here. The windows themselves come from a WindowFactory
(qt/crash_windows.py in the app, a fake in tests). Keeps one window per crash and raises it
when asked again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

log = logging.getLogger(__name__)


class WindowFactory(Protocol):
    """Makes the windows; returns None for a crash it cannot show."""

    def crash_list(self) -> QWidget: ...
    def crash_detail(self, crash_id: str) -> QWidget | None: ...
    def crashes_changed(self) -> None: ...


class LazyWindows:
    """A WindowFactory that makes the real one at the first window: a cold start's
    notification then does not wait for the window modules' imports (~30 ms, issue 12)."""

    def __init__(self, make: Callable[[], WindowFactory]) -> None:
        self._make = make
        self._factory: WindowFactory | None = None

    def _get(self) -> WindowFactory:
        if self._factory is None:
            self._factory = self._make()
        return self._factory

    def crash_list(self) -> QWidget:
        return self._get().crash_list()

    def crash_detail(self, crash_id: str) -> QWidget | None:
        return self._get().crash_detail(crash_id)

    def crashes_changed(self) -> None:
        if self._factory is not None:  # no window was ever made: none to update
            self._factory.crashes_changed()


class WindowRouter(QObject):
    """Opens or raises windows; emits what it showed (tests and the app listen)."""

    crash_shown = Signal(str)
    list_shown = Signal()

    def __init__(self, factory: WindowFactory, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._factory = factory
        self._list: QWidget | None = None
        self._details: dict[str, QWidget] = {}

    @staticmethod
    def _raise(window: QWidget) -> None:
        window.show()
        window.raise_()
        window.activateWindow()

    def show_crash(self, crash_id: str) -> bool:
        window = self._details.get(crash_id)
        if window is None:
            window = self._factory.crash_detail(crash_id)
            if window is None:
                return False
            self._details[crash_id] = window
            window.destroyed.connect(lambda _=None, c=crash_id: self._details.pop(c, None))
        self._raise(window)
        log.info("showing crash %s", crash_id)
        self.crash_shown.emit(crash_id)
        return True

    def show_crash_list(self) -> None:
        if self._list is None:
            self._list = self._factory.crash_list()
        self._raise(self._list)
        log.info("showing the crash list")
        self.list_shown.emit()

    def crashes_changed(self) -> None:
        self._factory.crashes_changed()
