"""The app's Qt half: the tray, the windows, what wakes the app, and when it ends.

Attached by app.py to the notifier (drkonqi_lite/notifier.py) once Qt is loaded, which is
after the cold start's notification went out. It makes no decisions: the notifier's requests
open windows, the tray's clicks go back to the notifier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from drkonqi_lite.adapters.resources import resource_dir
from drkonqi_lite.domain.report import absolute_when
from drkonqi_lite.qt.crash_signals import CrashSignals
from drkonqi_lite.qt.lifetime import IdleExit
from drkonqi_lite.qt.tray import CrashTray
from drkonqi_lite.qt.window_router import LazyWindows, WindowFactory, WindowRouter

if TYPE_CHECKING:
    from drkonqi_lite.notifier import CrashNotifier

RESOURCES = resource_dir()


def icon(name: str, fallback: str) -> QIcon:
    path = RESOURCES / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon.fromTheme(fallback)


class CrashShell(QObject):
    """notifier.Shell with Qt: tray, windows (built at the first one), crash signals, idle end."""

    def __init__(self, notifier: CrashNotifier) -> None:
        super().__init__()
        self.notifier = notifier
        self.reporting = notifier.ensure_reporting()
        self.router = WindowRouter(LazyWindows(self._windows), self)
        self.tray = CrashTray(
            icon("drkonqi-lite-tray", "dialog-warning"),
            always_visible=notifier.settings.tray_always,
            parent=self,
        )
        self.tray.show_crash.connect(notifier.show_crash)
        self.tray.show_list.connect(notifier.show_crash_list)
        self.tray.unmute.connect(notifier.unmute)
        self.tray.stop_auto_report.connect(notifier.stop_auto_report)
        self.signals = CrashSignals(notifier.source, notifier.drain, notifier.wakeup, self)
        self.idle: IdleExit | None = None

    def start(self, end_when_idle: Callable[[], None] | None) -> None:
        """Watch for crashes; call `end_when_idle` (if any) once there is nothing to do."""
        if end_when_idle is not None:
            self.idle = IdleExit(self.notifier.busy, end_when_idle, self)
        self.signals.settled.connect(self.check_idle)
        self.signals.start()
        if self.notifier.started_by_crash and not self.notifier.new_at_start:
            # A datagram started us, but journald has not written its crash's entry yet.
            self.signals.expect_entry()

    def _windows(self) -> WindowFactory:
        """The crash list and detail windows, imported only when the first one opens."""
        from drkonqi_lite.qt.crash_windows import CrashWindows  # noqa: PLC0415

        notifier = self.notifier
        return CrashWindows.for_user(
            notifier.inbox,
            notifier.program,
            notifier.show_crash,
            notifier.policy,
            debuginfod=notifier.settings.debuginfod,
            remember_debuginfod=lambda on: notifier.store.save_setting(
                "debuginfod", "yes" if on else "no"
            ),
            reporting=self.reporting,
            auto_report=notifier.auto_report,
            remember_auto_report=notifier.remember_auto_report,
        )

    # --- notifier.Shell -------------------------------------------------------------------
    def show_crash(self, crash_id: str) -> bool:
        return self.router.show_crash(crash_id)

    def show_crash_list(self) -> None:
        self.router.show_crash_list()

    def balloon(self, title: str, body: str) -> None:
        self.tray.balloon(title, body)

    def changed(self) -> None:
        n = self.notifier
        recent = [
            (c.id, f"{n.program(c).name} — {c.reason} ({absolute_when(c.timestamp_us)})")
            for c in n.inbox.newest_first()[: n.settings.tray_menu_items]
        ]
        counts = n.announcer.muted_counts
        muted = [
            (key, name + (f" ({counts[key]} crashes not announced)" if counts.get(key) else ""))
            for key, name in sorted(n.inbox.state.muted.items(), key=lambda kv: kv[1])
        ]
        auto = [("", "every program")] if n.auto_report.every_program else []
        auto += [(key, key.rsplit("/", 1)[-1]) for key in sorted(n.auto_report.programs)]
        self.tray.update_state(n.inbox.unseen_count(), recent, muted, auto)
        self.router.crashes_changed()
        self.check_idle()

    def busy(self) -> str | None:
        if any(w.isVisible() for w in QApplication.topLevelWidgets()):
            return "a window is open"
        if self.signals.expecting():
            return "a crash entry is on its way"
        return None

    def check_idle(self) -> None:
        if self.idle is not None:
            self.idle.check()

    def close(self) -> None:
        self.signals.close()
