"""Stage 2 of the app (app.py): Qt, loaded after the notification went out.

QApplication on Qt's loop through qasync; the bus connection of stage 1 moves over to it, the
shell (tray, windows, crash signals, idle end) attaches to the notifier, and the app runs until
the session bus goes away, a signal, the tray's Quit, or (on demand) nothing left to do.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import qasync
from PySide6.QtWidgets import QApplication

from drkonqi_lite.adapters import session_bus
from drkonqi_lite.adapters.startup_clock import StartupClock
from drkonqi_lite.notifier import CrashNotifier
from drkonqi_lite.qt.lifetime import quit_on_signals
from drkonqi_lite.qt.shell import CrashShell, icon

log = logging.getLogger("drkonqi_lite")


def _qapplication() -> QApplication:
    qapp = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(qapp, QApplication)  # noqa: S101 (narrowing for mypy)
    qapp.setApplicationName("drkonqi-lite")
    qapp.setDesktopFileName("drkonqi-lite")
    qapp.setQuitOnLastWindowClosed(False)
    qapp.setWindowIcon(icon("drkonqi-lite", "dialog-warning"))
    return qapp


async def _main(qapp: QApplication, notifier: CrashNotifier, exit_when_idle: bool) -> int:
    quit_event = asyncio.Event()
    shell = CrashShell(notifier)
    notifier.attach(shell)
    shell.reporting.start(asyncio.get_running_loop())
    shell.start(quit_event.set if exit_when_idle else None)
    keep = quit_on_signals(quit_event.set, shell)
    shell.tray.quit_requested.connect(quit_event.set)
    qapp.lastWindowClosed.connect(shell.check_idle)
    shell.check_idle()
    disconnected = asyncio.ensure_future(session_bus.wait_closed(notifier.bus))
    quit_wait = asyncio.ensure_future(quit_event.wait())
    await asyncio.wait({disconnected, quit_wait}, return_when=asyncio.FIRST_COMPLETED)
    shell.close()
    notifier.close()
    del keep
    session_bus.disconnect(notifier.bus)
    qapp.quit()
    return 0


def run_qt(
    first: asyncio.AbstractEventLoop,
    notifier: CrashNotifier,
    *,
    exit_when_idle: bool,
    clock: StartupClock,
) -> int:
    """Stage 2: `first` is stage 1's loop (closed here), `notifier` its running half."""
    qapp = _qapplication()
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    session_bus.move_to_loop(notifier.bus, loop)
    first.close()
    clock.mark("Qt")
    log.info("start-up: %s (since exec)", clock.summary())
    with loop:
        return int(loop.run_until_complete(_main(qapp, notifier, exit_when_idle)))
