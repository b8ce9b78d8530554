"""Composition root of the tray app, in two stages so that a crash is announced before Qt loads.

1. On a plain asyncio loop, without Qt (notifier.py): the session bus and our name, the journal
   since the saved cursor, CrashDetected, the notification. A cold start (the socket unit
   started us for a crash) is done with its notification here, ~0.1 s before Qt would be.
2. Qt (QApplication, the tray, the windows, what wakes the app: qt/shell.py) on Qt's loop via
   qasync; the bus connection moves over to that loop, and what arrived meanwhile (a
   notification's action clicked right away, a D-Bus call) is handled then.
Sources of crashes, once both run: the collector's wake-up datagram (or the socket unit's),
after which the journal is drained at once and retried briefly, the core storage watch, and
the journal fd or a coarse fallback timer (qt/lifetime.py says which, and when the app ends).
Decisions live in domain/, I/O in adapters/, widgets in qt/; this module only connects them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from drkonqi_lite.adapters import session_bus
from drkonqi_lite.adapters.resources import resource_dir
from drkonqi_lite.adapters.startup_clock import StartupClock
from drkonqi_lite.adapters.state_store import StateStore
from drkonqi_lite.adapters.wakeup import discard_passed
from drkonqi_lite.domain.settings import Settings
from drkonqi_lite.notifier import CrashNotifier

log = logging.getLogger("drkonqi_lite")
RESOURCES = resource_dir()
#: How long stage 1's loop may still run for a D-Bus call in progress (a report being sent).
LEFTOVER_S = 60


async def _notify_first(
    settings: Settings, store: StateStore, autostart: bool, clock: StartupClock
) -> CrashNotifier | None:
    """Stage 1 (no Qt). None: another instance runs (asked to show its list, unless a login)."""
    bus = await session_bus.connect()
    notifier = CrashNotifier(bus, store, settings, clock)
    clock.mark("bus")
    if await notifier.start():
        clock.mark("notify sent" if notifier.new_at_start else "ready")
        return notifier
    discard_passed()
    if not autostart:  # a user's second start means "show me"; a login's means nothing
        log.info("already running: asking it to show the crash list")
        await session_bus.call_running(bus, "ShowCrashList")
    session_bus.disconnect(bus)
    return None


def run(*, autostart: bool = False, exit_when_idle: bool = False) -> int:
    """The tray app (`drkonqi-lite` without a subcommand; `--autostart` from the session,
    `--exit-when-idle` from the systemd user unit and the resident waiter)."""
    if os.geteuid() == 0:
        print(
            "drkonqi-lite: refusing to run the tray app as root (run it as your user)",
            file=sys.stderr,
        )
        return 1
    logging.basicConfig(level=logging.INFO, format="drkonqi-lite: %(message)s")
    store = StateStore.from_environment()
    settings = store.settings()
    clock = StartupClock()
    clock.mark("imports")
    first = asyncio.new_event_loop()
    asyncio.set_event_loop(first)
    notifier = first.run_until_complete(_notify_first(settings, store, autostart, clock))
    # A D-Bus call's handler still running (dbus-next runs async methods as tasks: ReportCrash,
    # bounded by the transport's timeout) ends on the loop it started on.
    leftover = asyncio.all_tasks(first)
    if leftover:
        first.run_until_complete(asyncio.wait(leftover, timeout=LEFTOVER_S))
    if notifier is None:
        first.close()
        return 0
    from drkonqi_lite.app_qt import run_qt  # noqa: PLC0415 (Qt only after the notification)

    return run_qt(first, notifier, exit_when_idle=exit_when_idle, clock=clock)
