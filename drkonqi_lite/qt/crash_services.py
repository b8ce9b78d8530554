"""What the crash windows may do outside themselves, as one replaceable bundle.

The detail window asks these callables to run gdb, read the process log, restart a program,
delete a core or open a URL; the defaults are the real adapters, tests pass fakes with
`dataclasses.replace`. Holds the per-session debuginfod opt-in (off until the user ticks it).
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import time
from collections.abc import Callable

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices

from drkonqi_lite.adapters import desktop_launch, gdb, stored_core
from drkonqi_lite.adapters.crash_reporting import AppReporting
from drkonqi_lite.adapters.gdb import GdbOptions, GdbRunner
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.report_choices import AutoReport
from drkonqi_lite.domain.trust import TrustPolicy


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _open_url(url: str) -> bool:
    return bool(QDesktopServices.openUrl(QUrl(url)))


def _process_log(crash: Crash) -> list[str]:
    # Imported here: systemd-python is only needed when the Log tab is opened.
    from drkonqi_lite.adapters.process_log import process_log  # noqa: PLC0415

    return process_log(crash)


@dataclasses.dataclass(slots=True)
class CrashServices:
    """The outside world of the crash windows (real adapters by default)."""

    policy: TrustPolicy
    runner: GdbRunner = dataclasses.field(default_factory=GdbRunner)
    gdb_path: str = "gdb"
    gdb_timeout_s: float = gdb.DEFAULT_TIMEOUT_S
    debuginfod: bool = False
    process_log: Callable[[Crash], list[str]] = _process_log
    restart_blocker: Callable[[str, str], str] = desktop_launch.restart_blocker
    restart: Callable[[str, str], int] = desktop_launch.restart
    bug_tracker: Callable[[str], str] = desktop_launch.bug_tracker
    delete_blocker: Callable[[TrustPolicy, str], str] = stored_core.deletable
    delete_core: Callable[[TrustPolicy, str], None] = stored_core.delete_core
    open_in_debugger: Callable[[Crash, TrustPolicy, bool], None] = (
        lambda crash, policy, debuginfod: gdb.open_in_debugger(crash, policy, debuginfod=debuginfod)
    )
    debugger_blocker: Callable[[], str] = lambda: (
        "" if gdb.find_terminal() else "No terminal program (konsole, xterm, …) is installed."
    )
    open_url: Callable[[str], bool] = _open_url
    #: Crash reports to the developers (Sentry protocol): destination, preview, send.
    reporting: AppReporting = dataclasses.field(default_factory=AppReporting)
    #: The user's "always send" choices, and how to save a change (the app: settings.ini).
    auto_report: AutoReport = dataclasses.field(default_factory=AutoReport)
    remember_auto_report: Callable[[AutoReport], None] = lambda _auto: None
    user_name: Callable[[int], str] = _user_name
    now_us: Callable[[], int] = lambda: time.time_ns() // 1000
    own_uid: int = dataclasses.field(default_factory=os.getuid)

    def gdb_options(self) -> GdbOptions:
        return GdbOptions(
            gdb=self.gdb_path, timeout_s=self.gdb_timeout_s, debuginfod=self.debuginfod
        )

    #: Called with the new opt-in when the user changes it (the app saves it in settings.ini).
    remember_debuginfod: Callable[[bool], None] = lambda _enabled: None

    def set_debuginfod(self, enabled: bool) -> None:
        self.debuginfod = enabled
        self.remember_debuginfod(enabled)
