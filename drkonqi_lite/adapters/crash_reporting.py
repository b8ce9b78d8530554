"""The app's side of crash reports: D-Bus ReportCrash and the `reported` key of crash dicts.

Sending blocks on the network (up to the transport's timeout), so it runs in a worker thread
and the GUI thread only awaits it; the worker touches no Qt object. Failures become one-line
ReportFailedError values with a D-Bus error name the service passes on.
"""

from __future__ import annotations

import asyncio

from drkonqi_lite.adapters.report_queue import QueueError
from drkonqi_lite.adapters.reporter import Reporter, queue_for
from drkonqi_lite.adapters.sentry_transport import Outcome
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.dsn import DsnError
from drkonqi_lite.domain.reporting_policy import NoDestinationError
from drkonqi_lite.domain.sentry_event import EventOptions


class ReportFailedError(Exception):
    """A report that was neither sent nor queued; `kind` names the D-Bus error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class AppReporting:
    """Sends reports for the app (one at a time per crash: the queue's event id is the key)."""

    def __init__(self, reporter: Reporter | None = None) -> None:
        self.reporter = reporter or Reporter(queue_for())

    def reported(self) -> dict[str, str]:
        """crash id → event id of each delivered report (an unreadable queue: none)."""
        try:
            return self.reporter.sent_ids()
        except OSError:
            return {}

    async def report(self, crash: Crash, options: EventOptions | None = None) -> str:
        """Send (or queue) `crash`'s report; its event id. ReportFailedError otherwise."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                None, self.reporter.report_for_user, crash, "", options or EventOptions()
            )
        except (DsnError, NoDestinationError) as exc:
            raise ReportFailedError("NoDestination", str(exc)) from None
        except QueueError as exc:
            raise ReportFailedError("Failed", exc.strerror or str(exc)) from None
        if result.outcome is Outcome.REJECTED:
            raise ReportFailedError("Refused", result.message)
        return result.event_id
