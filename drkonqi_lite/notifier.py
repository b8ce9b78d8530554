"""The app without its windows: crashes in, D-Bus service and notifications out. No Qt.

A cold start (the socket unit started us for a crash) must notify within 200 ms, and loading
Qt costs more than that (benchmarks/APP.md), so this half runs first, on a plain asyncio loop:
it claims the bus name, reads the journal since the saved cursor, emits CrashDetected and
sends the notification; only then does app.py load Qt and attach the windows and the tray (a
`Shell`). Until then `PendingShell` keeps what they are asked to do (a notification clicked
right away, ShowCrash from the D-Bus caller that activated us) and hands it over. With no
notification server at all, the first stage waits for one (notification_server_wait_ms) before
the tray's balloon, as the single-process app did; the tray and windows come after that.
Decisions live in domain/ (what an action means: the Announcer), I/O in adapters/.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Protocol

from drkonqi_lite.adapters import session_bus
from drkonqi_lite.adapters.desktop_entry import DesktopEntryIndex
from drkonqi_lite.adapters.journal import BATCH, JournalSource, Position, trust_policy_for
from drkonqi_lite.adapters.notification import AnnouncementSender, NotificationsClient
from drkonqi_lite.adapters.service import CrashNotifierService
from drkonqi_lite.adapters.startup_clock import StartupClock
from drkonqi_lite.adapters.state_store import StateStore
from drkonqi_lite.adapters.wakeup import WakeupSocket, open_for_app
from drkonqi_lite.domain import kcrash
from drkonqi_lite.domain.announcement import Act, Announcer, Program, catch_up
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.inbox import CrashInbox
from drkonqi_lite.domain.plain_text import one_line
from drkonqi_lite.domain.report_choices import AutoReport, ReportFailedError
from drkonqi_lite.domain.settings import Settings
from drkonqi_lite.domain.summary import CrashDetail, CrashSummary

if TYPE_CHECKING:
    from drkonqi_lite.adapters.crash_reporting import AppReporting

log = logging.getLogger("drkonqi_lite")
#: Started by a crash's datagram (socket activation): the crashes this recent are why, and get
#: their own "X crashed" notification, not the login's "crashed since you last logged in".
LIVE_AT_START_S = 30


class Shell(Protocol):
    """What the notifier asks of the windows and the tray (qt/shell.py)."""

    def show_crash(self, crash_id: str) -> bool: ...
    def show_crash_list(self) -> None: ...
    def balloon(self, title: str, body: str) -> None: ...
    def changed(self) -> None: ...
    def busy(self) -> str | None: ...


class PendingShell:
    """The shell while Qt is still loading: it keeps the requests for the real one."""

    def __init__(self, inbox: CrashInbox) -> None:
        self._inbox = inbox
        self.crashes: list[str] = []
        self.crash_list = False
        self.balloons: list[tuple[str, str]] = []

    def show_crash(self, crash_id: str) -> bool:
        if self._inbox.get(crash_id) is None:
            return False
        self.crashes.append(crash_id)
        return True

    def show_crash_list(self) -> None:
        self.crash_list = True

    def balloon(self, title: str, body: str) -> None:
        self.balloons.append((title, body))

    def changed(self) -> None:
        pass

    def busy(self) -> str | None:
        return "the windows are loading"

    def hand_over(self, shell: Shell) -> None:
        for title, body in self.balloons:
            shell.balloon(title, body)
        if self.crash_list:
            shell.show_crash_list()
        for crash_id in self.crashes:
            shell.show_crash(crash_id)


class CrashNotifier:
    """The running app's state and decisions' wiring; also the D-Bus service's backend."""

    def __init__(
        self,
        bus: session_bus.MessageBus,
        store: StateStore,
        settings: Settings,
        clock: StartupClock | None = None,
    ) -> None:
        self.bus = bus
        self.clock = clock or StartupClock()
        self.store = store
        self.settings = settings
        self.inbox = CrashInbox(store.load())
        #: The Sentry stack: loaded with the windows, or by the first ReportCrash before them.
        self.reporting: AppReporting | None = None
        self.auto_report = AutoReport.from_settings(settings.report_always,
                                                    settings.report_programs)  # fmt: skip
        self.announcer = Announcer(int(settings.group_window_s * 1e6))
        self.programs = DesktopEntryIndex.from_environment()
        self.policy = trust_policy_for(os.getuid())
        self.source = JournalSource(self.policy)
        self.pending = PendingShell(self.inbox)
        self.shell: Shell = self.pending
        self.service = CrashNotifierService(self)
        self.notifications = NotificationsClient(bus, self._on_action, self._on_closed)
        self.outbox = AnnouncementSender(
            self.notifications, self.announcer, fallback=self._balloon, after=self._save
        )
        self._tasks: set[asyncio.Task[None]] = set()
        #: Crashes to report without asking once the reporting code is loaded.
        self._auto_due: list[Crash] = []
        self.wakeup: WakeupSocket | None = None
        #: The socket unit (or the waiter) started us for a datagram: a crash just happened.
        self.started_by_crash = False
        #: Crashes new since the saved cursor at start (announced then, or muted).
        self.new_at_start = 0

    # --- start-up (before Qt) -------------------------------------------------------------
    async def start(self) -> bool:
        """Claim the bus name and announce what is new. False if another instance runs."""
        # The crashes first: the call that D-Bus activation started us for (GetCrash,
        # ReportCrash of a crash id) is delivered as soon as we own the name.
        since = int((time.time() - self.settings.catchup_days * 86400) * 1e6)
        state = self.inbox.state
        handled, new = self.source.history(since, state.cursor, state.cursor_realtime_us)
        for crash in handled + new:
            self.inbox.add(crash)
        self.clock.mark("journal")
        if not await session_bus.claim_name(self.bus, self.service):
            return False
        self.clock.mark("name")
        await self.notifications.start()
        # Parse the installed .desktop files now, not in the first crash's notification path.
        self.programs.refresh()
        self.clock.mark("desktop entries")
        self.wakeup, self.started_by_crash = open_for_app(os.environ.get("XDG_RUNTIME_DIR", ""))
        # What came meanwhile: its datagram, if any, was just read with the ones that woke us.
        new += [crash for crash in self.source.read() if self.inbox.add(crash)]
        log.info(
            "started: %d crashes in the last %g days, %d new since last run",
            len(handled) + len(new),
            self.settings.catchup_days,
            len(new),
        )
        self.new_at_start = len(new)
        await self._catch_up(new, self.source.position)
        return True

    async def _catch_up(self, new: list[Crash], position: Position) -> None:
        self.outbox.server = await self.notifications.wait_available(
            self.settings.notification_server_wait_ms / 1000
        )
        if self.settings.catchup_delay_ms:
            await asyncio.sleep(self.settings.catchup_delay_ms / 1000)
        announce = []
        live_window_s = LIVE_AT_START_S if self.started_by_crash else 0
        recent_us = int((time.time() - live_window_s) * 1e6)
        for crash in [c for c in new if c.timestamp_us < recent_us]:
            self.service.announce(self.inbox.summary(crash.id) or _never())
            if self.inbox.state.is_muted(crash.program_key):
                self.announcer.count_muted(crash.program_key)
            else:
                announce.append((crash, self.program(crash)))
        grouped = catch_up(announce)
        if grouped is not None:
            self._spawn(self.outbox.present(grouped))
        for crash in [c for c in new if c.timestamp_us >= recent_us]:
            self.announce_live(crash)
        await self.settled()
        # Announced (or deliberately not): never again, across restarts.
        self.inbox.state.advance(position.cursor, position.realtime_us)
        self._save()

    async def settled(self) -> None:
        """Returns once every notification being sent is sent."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def ensure_reporting(self) -> AppReporting:
        if self.reporting is None:
            from drkonqi_lite.adapters.crash_reporting import AppReporting  # noqa: PLC0415

            self.reporting = AppReporting()
            self.inbox.reported = self.reporting.sent  # the same dict: refreshed after each send
        return self.reporting

    def attach(self, shell: Shell) -> None:
        """Qt is loaded: the real windows and tray take over; due automatic reports go out."""
        self.ensure_reporting()
        self.shell = shell
        self.pending.hand_over(shell)
        for crash in self._auto_due:
            self._spawn(self._report_automatically(crash))
        self._auto_due.clear()
        self.refresh()

    # --- live -----------------------------------------------------------------------------
    def drain(self) -> int:
        """Read new entries (a batch; the caller asks again when it was full); how many."""
        crashes = self.source.read(BATCH)
        for crash in crashes:
            if self.inbox.add(crash):
                self.announce_live(crash)
        if self.source.last_read:
            self.inbox.state.advance(self.source.position.cursor, self.source.position.realtime_us)
            self.refresh()
            if not self.outbox.busy:
                self._save()
        if self.source.last_read == BATCH:  # the rest on the loop's next turn
            asyncio.get_event_loop().call_soon(self.drain)
        return self.source.last_read

    def announce_live(self, crash: Crash) -> None:
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
        if self.auto_report.applies(crash):
            if self.reporting is None:
                self._auto_due.append(crash)
            elif crash.id not in self.reporting.sent:
                self._spawn(self._report_automatically(crash))

    async def _report_automatically(self, crash: Crash) -> None:
        """The user chose "send without asking" for this program (or every program)."""
        if self.reporting is None or crash.id in self.reporting.sent:
            return
        try:
            event_id = await self.reporting.report(crash)
        except ReportFailedError as exc:
            log.warning("crash %s not reported automatically: %s", crash.id, exc)
            return
        log.info("crash %s reported automatically: event %s", crash.id, event_id)

    def remember_auto_report(self, auto: AutoReport) -> None:
        self.store.save_setting("report_always", "yes" if auto.every_program else "no")
        self.store.save_setting("report_programs", auto.programs_setting())
        self.refresh()

    def stop_auto_report(self, key: str) -> None:
        if key:
            self.auto_report.programs.discard(key)
        else:
            self.auto_report.every_program = False
        self.remember_auto_report(self.auto_report)

    # --- notifications --------------------------------------------------------------------
    def _on_action(self, nid: int, action: str) -> None:
        reaction = self.announcer.reaction(nid, action)
        if reaction is None:
            return
        log.info("notification %d action %s", nid, action)
        ids = list(reaction.crash_ids)
        if reaction.act is Act.SHOW_LIST:
            self.shell.show_crash_list()
            self._mark_seen(ids)
        elif reaction.act is Act.SHOW_CRASH:
            self.show_crash(ids[0])
        elif reaction.act is Act.MUTE:
            crash = self.inbox.get(ids[0])
            if crash is not None:
                self.inbox.state.mute(reaction.group_key, self.program(crash).name)
                log.info("muted %s", one_line(reaction.group_key))
        elif reaction.act is Act.DISMISS:
            self._dismiss(ids)
        self._spawn(self.notifications.close(nid))
        self.refresh()
        self._save()

    def _on_closed(self, nid: int, _reason: int) -> None:
        self.announcer.closed(nid)

    def _balloon(self, title: str, body: str) -> None:
        self.shell.balloon(title, body)

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
        # (A caller that started us by D-Bus activation may ask before the windows loaded it.)
        return await self.ensure_reporting().report(crash)

    def show_crash(self, crash_id: str) -> bool:
        shown = self.shell.show_crash(crash_id)
        if shown:
            self._mark_seen([crash_id])
        return shown

    def show_crash_list(self) -> None:
        self.shell.show_crash_list()

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
        self.refresh()
        self._save()

    def _mark_seen(self, ids: list[str]) -> None:
        if self.inbox.mark_seen(ids):
            self.refresh()
            self._save()

    # --- plumbing -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Something the tray, the windows, UnseenCount or the idle end look at changed."""
        self.service.refresh_unseen()
        self.shell.changed()

    def busy(self) -> str | None:
        """Why the on-demand app must stay (None: it may end)."""
        if self.inbox.unseen_count():
            return "unseen crashes"
        if self._tasks or self.outbox.busy:
            return "a notification is being sent"
        return self.shell.busy()

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
        self.shell.changed()

    def close(self) -> None:
        self._save()
        if self.wakeup is not None:
            self.wakeup.close()
        self.source.close()


def _never() -> CrashSummary:
    raise RuntimeError("a crash just added to the inbox is missing")
