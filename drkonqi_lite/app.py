"""Composition root of the tray app: QApplication + asyncio on Qt's loop (qasync) + wiring.

Sources of crashes: the catch-up read at start (entries after the saved cursor, bounded to the
last `catchup_days`), the collector's wake-up datagram (or the socket unit's, which started
us), after which the journal is drained at once and retried briefly (journald may need a few
ms to write the entry), the core storage watch, and the journal fd or a coarse fallback timer
(lifetime.py says which, and when the app ends). Each new trusted crash: CrashDetected on
D-Bus, a notification (grouped by program; muted ones counted only), the tray.
Decisions live in domain/, I/O in adapters/, widgets in qt/; this module only connects them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Coroutine

import qasync
from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from drkonqi_lite.adapters import session_bus
from drkonqi_lite.adapters.crash_reporting import AppReporting, ReportFailedError
from drkonqi_lite.adapters.desktop_entry import DesktopEntryIndex
from drkonqi_lite.adapters.journal import BATCH, JournalSource, Position, trust_policy_for
from drkonqi_lite.adapters.notification import AnnouncementSender, NotificationsClient
from drkonqi_lite.adapters.resources import resource_dir
from drkonqi_lite.adapters.service import CrashNotifierService
from drkonqi_lite.adapters.state_store import StateStore
from drkonqi_lite.adapters.wakeup import discard_passed
from drkonqi_lite.domain import kcrash
from drkonqi_lite.domain.announcement import Announcer, Kind, Program, catch_up
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.inbox import CrashInbox
from drkonqi_lite.domain.plain_text import one_line
from drkonqi_lite.domain.report import absolute_when
from drkonqi_lite.domain.reporting_policy import AutoReport
from drkonqi_lite.domain.settings import Settings
from drkonqi_lite.domain.summary import CrashDetail, CrashSummary
from drkonqi_lite.qt.crash_signals import CrashSignals
from drkonqi_lite.qt.lifetime import IdleExit, StartupClock, quit_on_signals
from drkonqi_lite.qt.tray import CrashTray
from drkonqi_lite.qt.window_router import LazyWindows, WindowFactory, WindowRouter

log = logging.getLogger("drkonqi_lite")
RESOURCES = resource_dir()
#: Started by a crash's datagram (socket activation): the crashes this recent are why, and get
#: their own "X crashed" notification, not the login's "crashed since you last logged in".
LIVE_AT_START_S = 30


def icon(name: str, fallback: str) -> QIcon:
    path = RESOURCES / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon.fromTheme(fallback)


class CrashApp(QObject):
    """The running app; also the D-Bus service's backend (service.CrashBackend)."""

    def __init__(
        self,
        bus: session_bus.MessageBus,
        store: StateStore,
        settings: Settings,
        *,
        exit_when_idle: bool = False,
        clock: StartupClock | None = None,
    ) -> None:
        super().__init__()
        self.clock = clock or StartupClock()
        self.bus = bus
        self.store = store
        self.settings = settings
        self.inbox = CrashInbox(store.load())
        self.reporting = AppReporting()
        self.auto_report = AutoReport.from_settings(settings.report_always,
                                                    settings.report_programs)  # fmt: skip
        self.inbox.reported = self.reporting.sent  # the same dict: refreshed after each send
        self.announcer = Announcer(int(settings.group_window_s * 1e6))
        self.programs = DesktopEntryIndex.from_environment()
        self.source = JournalSource(trust_policy_for(os.getuid()))
        self.router = WindowRouter(LazyWindows(self._windows), self)
        self.tray = CrashTray(
            icon("drkonqi-lite-tray", "dialog-warning"),
            always_visible=settings.tray_always,
            parent=self,
        )
        self.tray.show_crash.connect(self.show_crash)
        self.tray.show_list.connect(self.show_crash_list)
        self.tray.unmute.connect(self.unmute)
        self.tray.stop_auto_report.connect(self.stop_auto_report)
        self.service = CrashNotifierService(self)
        self.notifications = NotificationsClient(bus, self._on_action, self._on_closed)
        self.quit_event = asyncio.Event()
        self.outbox = AnnouncementSender(
            self.notifications, self.announcer, fallback=self.tray.balloon, after=self._save
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.signals = CrashSignals(self.source, self.drain, self)
        self.idle = IdleExit(self._busy, self.quit_event.set, self) if exit_when_idle else None

    def _windows(self) -> WindowFactory:
        """The crash list and detail windows, imported only when the first one opens."""
        from drkonqi_lite.qt.crash_windows import CrashWindows  # noqa: PLC0415

        store = self.store
        return CrashWindows.for_user(
            self.inbox,
            self.program,
            self.show_crash,
            trust_policy_for(os.getuid()),
            debuginfod=self.settings.debuginfod,
            remember_debuginfod=lambda on: store.save_setting("debuginfod", "yes" if on else "no"),
            reporting=self.reporting,
            auto_report=self.auto_report,
            remember_auto_report=self._remember_auto_report,
        )

    # --- start-up -------------------------------------------------------------------------
    async def start(self) -> bool:
        """Claim the bus name, catch up, start watching. False if another instance runs."""
        if not await session_bus.claim_name(self.bus, self.service):
            return False
        await self.notifications.start()
        self.reporting.start(asyncio.get_running_loop())
        # Parse the installed .desktop files now, not in the first crash's notification path.
        self.programs.refresh()
        since = int((time.time() - self.settings.catchup_days * 86400) * 1e6)
        state = self.inbox.state
        self.clock.mark("bus")
        handled, new = self.source.history(since, state.cursor, state.cursor_realtime_us)
        self.clock.mark("journal")
        for crash in handled + new:
            self.inbox.add(crash)
        self.signals.start()
        self._refresh()
        log.info(
            "started: %d crashes in the last %g days, %d new since last run",
            len(handled) + len(new),
            self.settings.catchup_days,
            len(new),
        )
        self._spawn(self._catch_up(new, self.source.position))
        return True

    async def _catch_up(self, new: list[Crash], position: Position) -> None:
        self.outbox.server = await self.notifications.wait_available(
            self.settings.notification_server_wait_ms / 1000
        )
        if self.settings.catchup_delay_ms:
            await asyncio.sleep(self.settings.catchup_delay_ms / 1000)
        state = self.inbox.state
        announce = []
        live_window_s = LIVE_AT_START_S if self.signals.started_by_crash else 0
        recent_us = int((time.time() - live_window_s) * 1e6)
        for crash in [c for c in new if c.timestamp_us < recent_us]:
            self.service.announce(self.inbox.summary(crash.id) or _never())
            if state.is_muted(crash.program_key):
                self.announcer.muted_counts[crash.program_key] = (
                    self.announcer.muted_counts.get(crash.program_key, 0) + 1
                )
            else:
                announce.append((crash, self.program(crash)))
        grouped = catch_up(announce)
        if grouped is not None:
            await self.outbox.present(grouped)
        for crash in [c for c in new if c.timestamp_us >= recent_us]:
            self._announce_live(crash)
        self.clock.mark("notify sent" if new else "ready")
        log.info("start-up: %s (since exec)", self.clock.summary())
        # Announced (or deliberately not): never again, across restarts.
        state.advance(position.cursor, position.realtime_us)
        self._save()
        self.check_idle()

    # --- live -----------------------------------------------------------------------------
    def drain(self) -> int:
        """Read new entries (a batch; the rest on the next loop iteration); how many."""
        crashes = self.source.read(BATCH)
        for crash in crashes:
            if self.inbox.add(crash):
                self._announce_live(crash)
        if self.source.last_read:
            self.inbox.state.advance(self.source.position.cursor, self.source.position.realtime_us)
            self._refresh()
            if not self.outbox.busy:
                self._save()
        if self.source.last_read == BATCH:
            QTimer.singleShot(0, self.drain)
        return self.source.last_read

    def _announce_live(self, crash: Crash) -> None:
        self.service.announce(self.inbox.summary(crash.id) or _never())
        muted = self.inbox.state.is_muted(crash.program_key)
        announcement = self.announcer.live(crash, self.program(crash), muted=muted)
        log.info(
            "crash %s: %s (pid %d, %s)%s",
            crash.id,
            one_line(crash.comm),
            crash.pid,
            crash.signal_name,
            " [muted]" if muted else "",
        )
        if announcement is not None:
            self._spawn(self.outbox.present(announcement))
        if self.auto_report.applies(crash) and crash.id not in self.reporting.sent:
            self._spawn(self._report_automatically(crash))

    async def _report_automatically(self, crash: Crash) -> None:
        """The user chose "send without asking" for this program (or every program)."""
        try:
            event_id = await self.reporting.report(crash)
        except ReportFailedError as exc:
            log.warning("crash %s not reported automatically: %s", crash.id, exc)
            return
        log.info("crash %s reported automatically: event %s", crash.id, event_id)

    def _remember_auto_report(self, auto: AutoReport) -> None:
        self.store.save_setting("report_always", "yes" if auto.every_program else "no")
        self.store.save_setting("report_programs", auto.programs_setting())
        self._refresh()

    def stop_auto_report(self, key: str) -> None:
        if key:
            self.auto_report.programs.discard(key)
        else:
            self.auto_report.every_program = False
        self._remember_auto_report(self.auto_report)

    # --- notifications --------------------------------------------------------------------
    def _on_action(self, nid: int, action: str) -> None:
        ann = self.outbox.notes.get(nid)
        if ann is None:
            return
        log.info("notification %d action %s", nid, action)
        if action in {"default", "details"}:
            if ann.kind is Kind.CATCHUP or len(ann.crash_ids) != 1:
                self.show_crash_list()
                self._mark_seen(list(ann.crash_ids))
            else:
                self.show_crash(ann.crash_ids[-1])
        elif action == "mute" and ann.kind is Kind.CRASH:
            crash = self.inbox.get(ann.crash_ids[-1])
            if crash is not None:
                self.inbox.state.mute(ann.group_key, self.program(crash).name)
                log.info("muted %s", one_line(ann.group_key))
        elif action == "dismiss":
            self._dismiss(list(ann.crash_ids))
        self._spawn(self.notifications.close(nid))
        self._refresh()
        self._save()

    def _on_closed(self, nid: int, _reason: int) -> None:
        self.announcer.closed(nid)
        self.outbox.notes.pop(nid, None)

    # --- requests (D-Bus backend, tray, notifications) --------------------------------------
    def program(self, crash: Crash) -> Program:
        found = self.programs.lookup(crash.program_path, crash.program_name)
        return kcrash.presented(found, crash.kcrash)

    def list_crashes(self) -> list[CrashSummary]:
        return self.inbox.summaries()

    def get_crash(self, crash_id: str) -> CrashDetail | None:
        return self.inbox.detail(crash_id)

    async def report_crash(self, crash_id: str) -> str:
        crash = self.inbox.get(crash_id)
        if crash is None:
            raise ReportFailedError("Failed", f"no crash {crash_id}")
        return await self.reporting.report(crash)

    def show_crash(self, crash_id: str) -> bool:
        shown = self.router.show_crash(crash_id)
        if shown:
            self._mark_seen([crash_id])
        return shown

    def show_crash_list(self) -> None:
        self.router.show_crash_list()

    def dismiss(self, crash_id: str) -> bool:
        return bool(self._dismiss([crash_id]))

    def dismiss_all(self) -> None:
        self._dismiss([crash.id for crash in self.inbox.unseen()])

    def _dismiss(self, ids: list[str]) -> list[str]:
        """Mark `ids` seen with one tray/model refresh and one state write (not one per crash:
        DismissAll over 1,000 crashes took 4.9 s that way), then announce each dismissal."""
        known = [crash_id for crash_id in ids if self.inbox.get(crash_id) is not None]
        if known:
            self._mark_seen(known)
            for crash_id in known:
                self.service.dismissed(crash_id)
        return known

    def unseen_count(self) -> int:
        return self.inbox.unseen_count()

    def unmute(self, key: str) -> None:
        self.inbox.state.unmute(key)
        self._refresh()
        self._save()

    def _mark_seen(self, ids: list[str]) -> None:
        if self.inbox.mark_seen(ids):
            self._refresh()
            self._save()

    # --- plumbing -------------------------------------------------------------------------
    def _refresh(self) -> None:
        recent = [
            (c.id, f"{self.program(c).name} — {c.reason} ({absolute_when(c.timestamp_us)})")
            for c in self.inbox.newest_first()[: self.settings.tray_menu_items]
        ]
        counts = self.announcer.muted_counts
        muted = [
            (key, name + (f" ({counts[key]} crashes not announced)" if counts.get(key) else ""))
            for key, name in sorted(self.inbox.state.muted.items(), key=lambda kv: kv[1])
        ]
        auto = [("", "every program")] if self.auto_report.every_program else []
        auto += [(key, key.rsplit("/", 1)[-1]) for key in sorted(self.auto_report.programs)]
        self.tray.update_state(self.inbox.unseen_count(), recent, muted, auto)
        self.service.refresh_unseen()
        self.router.crashes_changed()
        self.check_idle()

    def check_idle(self) -> None:
        if self.idle is not None:
            self.idle.check()

    def _busy(self) -> str | None:
        """Why the on-demand app must stay (None: it may end)."""
        if self.inbox.unseen_count():
            return "unseen crashes"
        if any(w.isVisible() for w in QApplication.topLevelWidgets()):
            return "a window is open"
        if self._tasks or self.outbox.busy:
            return "a notification is being sent"
        return None

    def _save(self) -> None:
        self.store.save(self.inbox.state)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("internal error: %r", task.exception())
        self.check_idle()

    def close(self) -> None:
        self._save()
        self.signals.close()
        self.source.close()


def _never() -> CrashSummary:
    raise RuntimeError("a crash just added to the inbox is missing")


async def _main(
    qapp: QApplication,
    settings: Settings,
    store: StateStore,
    autostart: bool,
    on_demand: bool,
    clock: StartupClock,
) -> int:
    bus = await session_bus.connect()
    app = CrashApp(bus, store, settings, exit_when_idle=on_demand, clock=clock)
    if not await app.start():
        discard_passed()
        if not autostart:  # a user's second start means "show me"; a login's means nothing
            log.info("already running: asking it to show the crash list")
            await session_bus.call_running(bus, "ShowCrashList")
        session_bus.disconnect(bus)
        return 0
    keep = quit_on_signals(app.quit_event.set, app)
    app.tray.quit_requested.connect(app.quit_event.set)
    qapp.lastWindowClosed.connect(app.check_idle)
    disconnected = asyncio.ensure_future(session_bus.wait_closed(bus))
    quit_wait = asyncio.ensure_future(app.quit_event.wait())
    await asyncio.wait({disconnected, quit_wait}, return_when=asyncio.FIRST_COMPLETED)
    app.close()
    del keep
    session_bus.disconnect(bus)
    qapp.quit()
    return 0


def run(*, autostart: bool = False, exit_when_idle: bool = False) -> int:
    """The tray app (`drkonqi-lite` without a subcommand; `--autostart` from the session,
    `--exit-when-idle` from the systemd user unit)."""
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
    qapp = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(qapp, QApplication)  # noqa: S101 (narrowing for mypy)
    qapp.setApplicationName("drkonqi-lite")
    qapp.setDesktopFileName("drkonqi-lite")
    qapp.setQuitOnLastWindowClosed(False)
    qapp.setWindowIcon(icon("drkonqi-lite", "dialog-warning"))
    clock.mark("Qt")
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    with loop:
        return int(
            loop.run_until_complete(_main(qapp, settings, store, autostart, exit_when_idle, clock))
        )
