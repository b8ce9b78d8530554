"""The app's side of crash reports: D-Bus ReportCrash and the `reported` key of crash dicts.

Sending blocks on the network (up to the transport's timeout), so it runs in a worker thread
and the GUI thread only awaits it; the worker touches no Qt object. Failures become one-line
ReportFailedError values with a D-Bus error name the service passes on.
"""

from __future__ import annotations

import asyncio
import logging
import time

from drkonqi_lite.adapters.report_queue import QueueError
from drkonqi_lite.adapters.reporter import Reporter, ReportResult, host_facts, queue_for
from drkonqi_lite.adapters.sentry_transport import Outcome, event_link
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.dsn import DsnError
from drkonqi_lite.domain.report_choices import ReportFailedError
from drkonqi_lite.domain.reporting_policy import NoDestinationError
from drkonqi_lite.domain.sentry_event import EventOptions, build_event

log = logging.getLogger(__name__)
__all__ = ["AppReporting", "ReportFailedError", "report_outcome_text"]


class AppReporting:
    """Sends reports for the app (one at a time per crash: the queue's event id is the key)."""

    def __init__(self, reporter: Reporter | None = None) -> None:
        self.reporter = reporter or Reporter(queue_for(), find_link=event_link)
        #: crash id → event id of each delivered report; refreshed in place after each send, so
        #: the inbox can hold this very dict.
        self.sent: dict[str, str] = {}
        #: crash id → the event's page on its server, where it has one (a subset of `sent`).
        self.links: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.refresh()

    def refresh(self) -> None:
        try:
            ids, links = self.reporter.sent_ids(), self.reporter.sent_links()
        except OSError:
            ids, links = {}, {}  # an unreadable queue: nothing known as reported
        self.sent.update(ids)  # only ever grows: a reader in another thread never sees it empty
        self.links.update(links)

    # --- retries of queued reports ----------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send queued reports when they are due, on `loop` (the app's)."""
        self._loop = loop
        self.schedule()

    def schedule(self) -> None:
        """(Any thread.) Re-arm the retry timer for the earliest due report; none queued: no
        timer at all, so an idle app with an empty queue never wakes up for it."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._arm)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            waiting = [r for r in self.reporter.queue.reports() if not r.rejected]
        except OSError:
            return
        if waiting and self._loop is not None:
            due = min(max(r.next_attempt, r.not_before) for r in waiting)
            delay = min(max(1.0, due - time.time()), 6 * 3600.0)
            self._timer = self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._loop is not None:
            task = self._loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            counts = await loop.run_in_executor(None, self.reporter.send_queued)
            log.info("queued reports: %s", dict(counts))
        except OSError as exc:  # QueueBusyError: a CLI is sending them right now
            log.info("queued reports not sent now: %s", exc.strerror or exc)
        self.refresh()
        self._arm()

    def destination(self, crash: Crash) -> str:
        """The server a report of `crash` would go to; DsnError / NoDestinationError say why
        there is none."""
        return self.reporter.destination(crash).server

    def preview(self, crash: Crash, options: EventOptions) -> dict[str, object]:
        """Exactly the event `send` sends with the same options (fix options.event_id)."""
        return build_event(crash, host_facts(), options)

    def send(self, crash: Crash, options: EventOptions) -> ReportResult:
        """Blocking: for a worker thread (the crash window) or the executor (`report`)."""
        result = self.reporter.report_for_user(crash, "", options)
        if result.outcome is Outcome.SENT:
            self.refresh()
        elif result.queued:
            self.schedule()
        return result

    async def report(self, crash: Crash, options: EventOptions | None = None) -> str:
        """Send (or queue) `crash`'s report; its event id. ReportFailedError otherwise."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(None, self.send, crash, options or EventOptions())
        except (DsnError, NoDestinationError) as exc:
            raise ReportFailedError("NoDestination", str(exc)) from None
        except QueueError as exc:
            raise ReportFailedError("Failed", exc.strerror or str(exc)) from None
        if result.outcome is Outcome.REJECTED:
            raise ReportFailedError("Refused", result.message)
        return result.event_id


def report_outcome_text(reporting: AppReporting, crash: Crash, options: EventOptions) -> str:
    """Send (blocking) and say what happened, in one sentence for the crash window."""
    try:
        result = reporting.send(crash, options)
    except (DsnError, NoDestinationError) as exc:
        return f"Not sent: {exc}."
    except OSError as exc:  # QueueError included: neither sent nor queued
        return f"Not sent: {exc.strerror or exc}."
    if result.outcome is Outcome.SENT:
        return f"Report {result.message} (event id {result.event_id})."
    if result.outcome is Outcome.REJECTED:
        return f"Not sent: {result.message}."
    why = result.message.removeprefix("queued, will retry: ")
    return (
        f"The server cannot take the report now ({why}); it is queued and sent later "
        f"(event id {result.event_id})."
    )
