"""The crash windows as the WindowRouter's factory.

One crash list window for the session (kept, updated in place as crashes arrive) and a detail
window per crash (deleted on close; the router raises an open one). Shares one CrashServices,
so there is one gdb at a time across all detail windows and one debuginfod opt-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from drkonqi_lite.adapters.crash_reporting import AppReporting
from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.report_choices import AutoReport
from drkonqi_lite.domain.trust import TrustPolicy
from drkonqi_lite.qt.crash_detail_window import CrashDetailWindow
from drkonqi_lite.qt.crash_list_window import CrashListWindow
from drkonqi_lite.qt.crash_services import CrashServices


class CrashLookup(Protocol):
    def newest_first(self) -> list[Crash]: ...
    def get(self, crash_id: str) -> Crash | None: ...
    def is_seen(self, crash_id: str) -> bool: ...


class CrashWindows:
    """WindowFactory for the router: the crash list and crash detail windows of issue 5."""

    def __init__(
        self,
        crashes: CrashLookup,
        program: Callable[[Crash], Program],
        open_crash: Callable[[str], object],
        services: CrashServices,
    ) -> None:
        self._crashes = crashes
        self._program = program
        self._open_crash = open_crash
        self.services = services
        self._list: CrashListWindow | None = None

    @classmethod
    def for_user(
        cls,
        crashes: CrashLookup,
        program: Callable[[Crash], Program],
        open_crash: Callable[[str], object],
        policy: TrustPolicy,
        debuginfod: bool = False,
        remember_debuginfod: Callable[[bool], None] = lambda _enabled: None,
        reporting: AppReporting | None = None,
        auto_report: AutoReport | None = None,
        remember_auto_report: Callable[[AutoReport], None] = lambda _auto: None,
    ) -> CrashWindows:
        """The windows with the real adapters (what the app plugs into its router);
        `debuginfod` is the user's saved opt-in, `remember_debuginfod` saves a change,
        `reporting` the app's crash reports (one record of what was sent)."""
        services = CrashServices(
            policy, debuginfod=debuginfod, remember_debuginfod=remember_debuginfod,
            reporting=reporting or AppReporting(), auto_report=auto_report or AutoReport(),
            remember_auto_report=remember_auto_report,
        )  # fmt: skip
        return cls(crashes, program, open_crash, services)

    def crash_list(self) -> QWidget:
        if self._list is None:
            sent = self.services.reporting.sent
            self._list = CrashListWindow(
                self._program, self._open_crash, self._crashes.is_seen,
                reported=lambda crash_id: sent.get(crash_id, ""),
            )  # fmt: skip
            self._list.set_crashes(self._crashes.newest_first())
        return self._list

    def crash_detail(self, crash_id: str) -> QWidget | None:
        crash = self._crashes.get(crash_id)
        if crash is None:
            return None
        window = CrashDetailWindow(crash, self._program(crash), self.services)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        return window

    def crashes_changed(self) -> None:
        if self._list is not None:
            self._list.sync(self._crashes.newest_first())
